/* QEMU mps2-an386 port internals shared by startup.c and platform_qemu.c. */
#ifndef FEDHEAD_QEMU_PORT_H
#define FEDHEAD_QEMU_PORT_H

#include <stdint.h>

/* CMSDK APB UART0 and its RX interrupt line (QEMU hw/arm/mps2.c: TX is RX + 1). */
#define QEMU_UART0_BASE 0x40004000u
#define QEMU_UART0_RX_IRQ 0

/* Core clock of the board (SysTick counts it). */
#define QEMU_CORE_HZ 25000000u

/* Device id placed by the fleet launcher (see boards/qemu_mps2/mps2_an386.ld). */
#define QEMU_CONFIG_ADDR 0x203FFF00u

void SysTick_Handler(void);
void UART0_RX_Handler(void);
void qemu_platform_init(void);
void qemu_uart_write_text(const char *text);

#endif
