/* QEMU mps2-an386 implementation of fedcore's porting contract.
 *
 * UART0 (CMSDK APB UART): RX by interrupt into a ring buffer, TX by polling. QEMU's model holds
 * one received byte and raises the RX interrupt for it; the handler clears the interrupt before
 * reading DATA, because reading lets QEMU deliver the next byte, whose interrupt would otherwise
 * be cleared unseen. Clock: SysTick at 1 kHz from the 25 MHz core clock. Storage: RAM (kept
 * across RESET, which restarts in place; lost when QEMU exits). Entropy: none — TEST ONLY: the
 * host provisions the CSPRNG seed with SEED; until then the device refuses TRAIN. */
#include <stddef.h>
#include <stdint.h>

#include "../common/ram_store.h"
#include "fedcore/platform/clock.h"
#include "fedcore/platform/device_id.h"
#include "fedcore/platform/entropy.h"
#include "fedcore/platform/log.h"
#include "fedcore/platform/storage.h"
#include "fedcore/platform/system.h"
#include "fedcore/platform/uart.h"
#include "fedcore/protocol.h"
#include "qemu_port.h"

#define REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#define UART_DATA REG(QEMU_UART0_BASE + 0x00u)
#define UART_STATE REG(QEMU_UART0_BASE + 0x04u)
#define UART_CTRL REG(QEMU_UART0_BASE + 0x08u)
#define UART_INTCLEAR REG(QEMU_UART0_BASE + 0x0Cu)
#define UART_BAUDDIV REG(QEMU_UART0_BASE + 0x10u)
#define UART_STATE_TX_FULL 0x01u
#define UART_STATE_RX_FULL 0x02u
#define UART_CTRL_TX_EN 0x01u
#define UART_CTRL_RX_EN 0x02u
#define UART_CTRL_RX_INT_EN 0x08u
#define UART_INT_RX 0x02u

#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define NVIC_ISER0 REG(0xE000E100u)
#define TICKS_PER_MS (QEMU_CORE_HZ / 1000u)

#define RX_RING_SIZE 4096u /* power of two */
#define READ_WAIT_MS 10u

static volatile uint8_t rx_ring[RX_RING_SIZE];
static volatile uint32_t rx_head; /* written by the interrupt */
static volatile uint32_t rx_tail; /* written by the main loop */
static volatile uint32_t rx_dropped;
static volatile uint32_t ms_ticks;

void SysTick_Handler(void) { ms_ticks++; }

void UART0_RX_Handler(void) {
    UART_INTCLEAR = UART_INT_RX; /* first clear, then read (see the file comment) */
    while (UART_STATE & UART_STATE_RX_FULL) {
        uint8_t byte = (uint8_t)UART_DATA;
        uint32_t head = rx_head;
        if (head - rx_tail < RX_RING_SIZE) {
            rx_ring[head % RX_RING_SIZE] = byte;
            rx_head = head + 1u;
        } else {
            rx_dropped++;
        }
    }
}

void qemu_platform_init(void) {
    UART_BAUDDIV = QEMU_CORE_HZ / 115200u;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
    NVIC_ISER0 = 1u << QEMU_UART0_RX_IRQ;
    SYST_RVR = TICKS_PER_MS - 1u;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* enable, interrupt, core clock */
    __asm volatile("cpsie i");
}

/* ---- uart ---- */

size_t fc_uart_read(uint8_t *buf, size_t cap) {
    uint32_t start = ms_ticks;
    while (rx_head == rx_tail && ms_ticks - start < READ_WAIT_MS) {
        __asm volatile("wfi"); /* the next UART byte or SysTick wakes us */
    }
    return fc_uart_read_now(buf, cap);
}

size_t fc_uart_read_now(uint8_t *buf, size_t cap) {
    size_t n = 0;
    uint32_t tail = rx_tail;
    while (n < cap && tail != rx_head) {
        buf[n++] = rx_ring[tail % RX_RING_SIZE];
        tail++;
    }
    rx_tail = tail;
    return n;
}

void fc_uart_write(const uint8_t *buf, size_t len) {
    for (size_t i = 0; i < len; i++) {
        while (UART_STATE & UART_STATE_TX_FULL) {
        }
        UART_DATA = buf[i];
    }
}

void qemu_uart_write_text(const char *text) {
    while (*text != '\0') {
        fc_uart_write((const uint8_t *)text++, 1);
    }
}

/* ---- clock ---- */

uint32_t fc_clock_ms(void) { return ms_ticks; }

uint32_t fc_clock_us(void) {
    uint32_t ms;
    uint32_t ticks;
    do { /* retry if SysTick wrapped between the two reads */
        ms = ms_ticks;
        ticks = TICKS_PER_MS - 1u - SYST_CVR;
    } while (ms != ms_ticks);
    return ms * 1000u + ticks / (TICKS_PER_MS / 1000u);
}

/* ---- identity, entropy, storage, system ---- */

uint32_t fc_device_id(void) {
    uint32_t id = REG(QEMU_CONFIG_ADDR);
    return (id == 0u || id == 0xFFFFFFFFu) ? 1u : id;
}

const char *fc_board_name(void) { return "qemu-mps2-an386"; }

int fc_entropy_fill(uint8_t *buf, size_t len) {
    (void)buf;
    (void)len;
    return -1; /* no entropy source: the host must SEED (test builds only) */
}

int fc_storage_save(const char *key, const uint8_t *data, size_t len) {
    return ram_store_put(key, data, len);
}

int fc_storage_load(const char *key, uint8_t *buf, size_t cap, size_t *len) {
    return ram_store_get(key, buf, cap, len);
}

int fc_storage_persistent(void) { return 0; }

void fc_platform_log(const char *msg) { (void)msg; }

uint32_t fc_platform_free_ram(void) {
    extern uint32_t __bss_end;
    uint32_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    return sp - (uint32_t)(uintptr_t)&__bss_end;
}

/* QEMU starting the guest is the power-on; RESET restarts in place (a software reset). */
static uint8_t reset_reason = FC_RESET_POWER_ON;

void fc_platform_reset(void) { reset_reason = FC_RESET_SOFTWARE; } /* fc_device_init runs again */

uint8_t fc_platform_reset_reason(void) { return reset_reason; }
