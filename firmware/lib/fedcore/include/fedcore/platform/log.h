/* Porting contract: diagnostics outside the link, and system services. */
#ifndef FEDCORE_PLATFORM_LOG_H
#define FEDCORE_PLATFORM_LOG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Print a diagnostic line where a developer can see it without disturbing the link (host:
 * stderr; ESP32: ESP_LOG on the console; QEMU: dropped). May be a no-op. */
void fc_platform_log(const char *msg);

/* Free RAM in bytes as the port measures it; 0 when unknown. */
uint32_t fc_platform_free_ram(void);

/* Restart the device (RESET). Returns only on ports that restart in place by re-running init. */
void fc_platform_reset(void);

#ifdef __cplusplus
}
#endif

#endif
