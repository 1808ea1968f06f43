/* The one platform function secagg.c calls besides crypto: a fixed id for the math driver. */
#include "fedcore/platform/device_id.h"

uint32_t fc_device_id(void) { return 1u; }
