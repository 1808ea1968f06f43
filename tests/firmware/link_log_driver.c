/* Drives ports/common/link_log.c through what the ESP32 port feeds it: ESP-IDF log lines (one
 * vprintf call per line, ANSI colours), TFLM's MicroPrintf (text, then "\r\n" in a second
 * call), text before start, text inside a UART write and text logged while a LOG frame is being
 * sent. fc_device_log is the recording end: it prints "LOG <level> <text>" per frame. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fedcore/protocol.h"
#include "link_log.h"

static int nest_inside_send = 0;

void fc_device_log(uint8_t level, const char *text) {
    printf("LOG %u %s\n", (unsigned)level, text);
    if (nest_inside_send) {
        link_log_text(FC_LOG_ERROR, "logged while a LOG frame is sent"); /* must be dropped */
    }
}

static int vp(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    int n = link_log_vprintf(fmt, args);
    va_end(args);
    return n;
}

int main(void) {
    link_log_text(FC_LOG_WARN, "before start");
    vp("I (%d) %s: %s\n", 12, "boot", "before start too");
    link_log_start();
    vp("\033[0;33mW (%d) %s: Detected size(%dk) larger\033[0m\n", 312, "spi_flash", 4096);
    vp("\033[0;31mE (%d) %s: %s\033[0m\n", 400, "nvs", "ESP_ERR_NVS_NOT_FOUND");
    vp("I (%d) %s: %s\n", 401, "main_task", "Calling app_main()");
    vp("D (%d) %s: %s\n", 402, "uart", "debug");
    vp("Failed to allocate %d bytes", 100); /* MicroPrintf: the text, */
    vp("\r\n");                              /* then the line end */
    link_log_uart_enter();
    vp("W (%d) %s: %s\n", 500, "uart", "inside a write");
    link_log_uart_leave();
    nest_inside_send = 1;
    link_log_text(FC_LOG_INFO, "outer");
    nest_inside_send = 0;
    char long_line[LINK_LOG_LINE_MAX + 51];
    memset(long_line, 'x', sizeof long_line - 2u);
    long_line[sizeof long_line - 2u] = '\n';
    long_line[sizeof long_line - 1u] = '\0';
    vp("%s", long_line);
    vp("\n"); /* an empty line sends nothing */
    printf("dropped %u\n", (unsigned)link_log_dropped());
    return 0;
}
