/* ESP32 / ESP32-S3 firmware (ESP-IDF): the shared device logic over UART0. Thin by design:
 * everything but the platform functions (platform_esp32.c) is fedcore, shared with the host
 * and QEMU builds that are tested here. */
#include "fedcore/device.h"
#include "esp32_port.h"

void app_main(void) {
    esp32_platform_init();
    fc_device_init();
    for (;;) {
        fc_device_poll(); /* blocks in uart_read_bytes for a few ms: other tasks run */
    }
}
