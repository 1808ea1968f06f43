/* Porting contract: the device's identity on the link. */
#ifndef FEDCORE_PLATFORM_DEVICE_ID_H
#define FEDCORE_PLATFORM_DEVICE_ID_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A stable id, unique within a fleet; never 0 or 0xFFFFFFFF (reserved on the link). */
uint32_t fc_device_id(void);

/* Board name for INFO (at most 15 characters). */
const char *fc_board_name(void);

#ifdef __cplusplus
}
#endif

#endif
