/* ESP32 port internals (main.c <-> platform_esp32.c). */
#ifndef FEDHEAD_ESP32_PORT_H
#define FEDHEAD_ESP32_PORT_H

/* Start-up before fc_device_init(), in an order that early input cannot upset: the UART
 * driver first (bytes that arrive from now on wait in its RX buffer), then log routing, NVS
 * and the task watchdog with this task subscribed. Never aborts: a failing part is reported
 * as a LOG frame once the link is ready (esp32_platform_ready). */
void esp32_platform_init(void);

/* After fc_device_init(): diagnostics become LOG frames; start-up problems are reported. */
void esp32_platform_ready(void);

/* Once per main-loop turn: tells the task watchdog this task is alive. */
void esp32_platform_alive(void);

#endif
