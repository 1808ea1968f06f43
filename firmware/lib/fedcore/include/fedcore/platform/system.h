/* Porting contract: system facts reported in INFO. */
#ifndef FEDCORE_PLATFORM_SYSTEM_H
#define FEDCORE_PLATFORM_SYSTEM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why the device last started: 0 unknown, 1 power-on, 2 software (RESET, esp_restart),
 * 3 watchdog, 4 panic (crash), 5 brownout, 6 external (reset pin, debugger, USB). */
uint8_t fc_platform_reset_reason(void);

#ifdef __cplusplus
}
#endif

#endif
