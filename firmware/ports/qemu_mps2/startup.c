/* Startup of the QEMU mps2-an386 board: vector table, reset handler, fault handlers.
 * The FPU is enabled before any C code runs, because the compiler may use VFP registers
 * anywhere in hard-float code (even to copy memory). */
#include <stdint.h>
#include <string.h>

#include "qemu_port.h"

extern uint32_t __stack_top;
extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end;

int main(void);
void Reset_Handler(void);
void reset_c(void);

/* Naked: enable CP10/CP11 (CPACR, 0xE000ED88) before the first instruction the compiler owns. */
__attribute__((naked, noreturn)) void Reset_Handler(void) {
    __asm volatile(
        "ldr r0, =0xE000ED88\n"
        "ldr r1, [r0]\n"
        "orr r1, r1, #(0xF << 20)\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
        "b reset_c\n");
}

__attribute__((noreturn)) void reset_c(void) {
    uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;) {
        *dst++ = 0;
    }
    (void)main();
    for (;;) {
    }
}

/* A fault is a firmware bug: say so on the UART (the host sees unframed text), then stop. */
static void fault(const char *what) {
    qemu_uart_write_text(what);
    for (;;) {
        __asm volatile("wfi");
    }
}

void HardFault_Handler(void) { fault("\r\nFEDHEAD FAULT: HardFault\r\n"); }
void MemManage_Handler(void) { fault("\r\nFEDHEAD FAULT: MemManage\r\n"); }
void BusFault_Handler(void) { fault("\r\nFEDHEAD FAULT: BusFault\r\n"); }
void UsageFault_Handler(void) { fault("\r\nFEDHEAD FAULT: UsageFault\r\n"); }
void Default_Handler(void) { fault("\r\nFEDHEAD FAULT: unexpected interrupt\r\n"); }

typedef void (*vector_t)(void);

__attribute__((section(".isr_vector"), used)) static const vector_t vectors[16 + 32] = {
    (vector_t)(uintptr_t)&__stack_top,
    Reset_Handler,
    Default_Handler,    /* NMI */
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,
    Default_Handler,    /* SVCall */
    Default_Handler,    /* DebugMonitor */
    0,
    Default_Handler,    /* PendSV */
    SysTick_Handler,
    [16 + QEMU_UART0_RX_IRQ] = UART0_RX_Handler,
    [16 + QEMU_UART0_RX_IRQ + 1] = Default_Handler, /* UART0 TX: not enabled */
};
