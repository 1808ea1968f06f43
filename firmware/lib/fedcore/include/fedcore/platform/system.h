/* Porting contract: system facts the device reports in INFO. */
#ifndef FEDCORE_PLATFORM_SYSTEM_H
#define FEDCORE_PLATFORM_SYSTEM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why the device last started, one of FC_RESET_* (fedcore/protocol.h): 0 unknown, 1 power-on,
 * 2 software (RESET or an in-place restart), 3 watchdog, 4 panic, 5 brownout, 6 external.
 * ESP32: esp_reset_reason(); host and QEMU: power-on at process start, software after RESET. */
uint8_t fc_platform_reset_reason(void);

#ifdef __cplusplus
}
#endif

#endif
