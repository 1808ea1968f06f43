/* QEMU mps2-an386 firmware: the shared device logic over the CMSDK UART. */
#include "fedcore/device.h"
#include "qemu_port.h"

int main(void) {
    qemu_platform_init();
    fc_device_init();
    for (;;) {
        fc_device_poll();
    }
}
