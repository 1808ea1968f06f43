/* Port diagnostics as LOG frames: the one way a port's text reaches the link.
 *
 * A port whose link UART is also its console (ESP32: UART0) must never write raw text between
 * frames. It routes every diagnostic through here: its own messages (fc_platform_log), the
 * ESP-IDF log output (esp_log_set_vprintf) and TFLM's DebugLog. Text is collected into lines
 * (callers may print one line in several pieces, as TFLM's MicroPrintf does), and each line is
 * sent with fc_device_log as one LOG frame (PROTOCOL.md: LOG).
 *
 * Text is dropped and counted, never written raw, when it would break the link:
 *   - before link_log_start() (the device and its frame buffers are not ready yet);
 *   - while the port is inside fc_uart_write (a UART driver or the port logging in the middle
 *     of a frame, or a LOG frame's own send logging again): ports bracket their write with
 *     link_log_uart_enter() / link_log_uart_leave().
 * Not thread-safe: call it only from the task that runs fc_device_poll (ports drop text from
 * other contexts before it gets here). */
#ifndef FEDHEAD_LINK_LOG_H
#define FEDHEAD_LINK_LOG_H

#include <stdarg.h>
#include <stdint.h>

#define LINK_LOG_LINE_MAX 200 /* longer lines are sent in pieces of this size */
#define LINK_LOG_CALL_MAX 512 /* text of one printf-like call beyond this is cut */

/* The device is initialised: from now on lines become LOG frames. Reports (as one LOG frame)
 * how many lines were dropped before. */
void link_log_start(void);

/* printf-like entry (the signature of ESP-IDF's vprintf_like_t). Returns the number of
 * characters the text had, like vprintf, whether or not it could be sent. */
int link_log_vprintf(const char *fmt, va_list args);

/* One line of plain text at a given level (FC_LOG_*). */
void link_log_text(uint8_t level, const char *text);

/* Bracket a port's fc_uart_write: text arriving in between is dropped. */
void link_log_uart_enter(void);
void link_log_uart_leave(void);

/* Texts dropped so far (before start, inside a UART write, or counted here by a port that
 * refused text from another task). */
uint32_t link_log_dropped(void);
void link_log_count_dropped(void);

#endif
