/* Porting contract: the serial link. */
#ifndef FEDCORE_PLATFORM_UART_H
#define FEDCORE_PLATFORM_UART_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Copy up to cap received bytes into buf and return how many. May wait a short while
 * (milliseconds) for the first byte; returns 0 when nothing arrived. Never blocks forever. */
size_t fc_uart_read(uint8_t *buf, size_t cap);

/* Copy up to cap bytes that have already arrived into buf and return how many; never waits
 * (the device polls this between training steps, so it must cost next to nothing). */
size_t fc_uart_read_now(uint8_t *buf, size_t cap);

/* Send len bytes; returns when they are queued or sent. */
void fc_uart_write(const uint8_t *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
