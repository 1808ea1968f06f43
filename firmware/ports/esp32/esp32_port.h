/* ESP32 port internals. */
#ifndef FEDHEAD_ESP32_PORT_H
#define FEDHEAD_ESP32_PORT_H

/* UART driver, NVS and the device id; call before fc_device_init(). Aborts (restart) only when
 * the UART driver or NVS cannot start at all. */
void esp32_platform_init(void);

#endif
