/* ESP32 / ESP32-S3 firmware (ESP-IDF): the shared device logic over UART0. Thin by design:
 * everything but the platform functions (platform_esp32.c) is fedcore and ports/common, shared
 * with the host and QEMU builds that are tested here. */
#include "fedcore/device.h"
#include "esp32_port.h"

void app_main(void) {
    esp32_platform_init();
    fc_device_init(); /* sends the boot INFO */
    esp32_platform_ready();
    for (;;) {
        esp32_platform_alive();
        fc_device_poll(); /* waits in uart_read_bytes (>= 1 tick): other tasks run */
    }
}
