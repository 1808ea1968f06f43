/* ESP-IDF implementation of fedcore's porting contract (the headers in fedcore/platform/).
 * Every ESP-IDF call here was checked against the v5.3, v5.4 and v5.5 headers (the supported
 * range, firmware/idf_component.yml); docs/ARCHITECTURE.md "ESP32 port" lists them.
 *
 * Start-up order (esp32_platform_init), so that bytes arriving at any moment cannot upset it:
 *   1. the UART driver on UART0: from here on received bytes wait in its RX ring buffer until
 *      the main loop reads them (bytes that came before are flushed: a partial frame would only
 *      be answered with NACK BAD_FRAME);
 *   2. log routing (esp_log_set_vprintf): ESP-IDF's log lines become LOG frames;
 *   3. NVS, then the task watchdog, which this port initialises itself with the main task
 *      subscribed (CONFIG_ESP_TASK_WDT_INIT=n, boards/esp32/sdkconfig.defaults: the watchdog
 *      interrupt is allocated after the UART driver owns UART0's interrupt). A hang resets
 *      the chip through the panic handler (reported as reset reason 3 or 4 in INFO).
 * Nothing aborts: a part that fails is reported as a LOG frame once the link is ready.
 *
 * Link cleanliness: UART0 is console and link. After start-up every byte this app sends is a
 * frame: ESP-IDF logs, TFLM's DebugLog (linked as __wrap_DebugLog, firmware/CMakeLists.txt)
 * and this port's messages go through ports/common/link_log. Only ROM/bootloader text before
 * the app and the panic handler's dump (printed straight to the UART) are unframed; the host
 * decoder skips them and resynchronises (docs/PROTOCOL.md §1).
 *
 * Entropy: esp_fill_random() between bootloader_random_enable() and _disable(): without RF
 * running, esp_random() is only truly random while that entropy source is enabled (ESP-IDF
 * "Random Number Generation"). Storage: NVS namespace "fedhead", one blob per key;
 * nvs_set_blob + nvs_commit replace a blob atomically. Clock: esp_timer. Device id: from the
 * factory MAC address. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bootloader_random.h"
#include "driver/uart.h"
#include "esp_err.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_random.h"
#include "esp_system.h"
#include "esp_task_wdt.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "sdkconfig.h"

#include "../common/link_log.h"
#include "esp32_port.h"
#include "fedcore/crc32.h"
#include "fedcore/platform/clock.h"
#include "fedcore/platform/device_id.h"
#include "fedcore/platform/entropy.h"
#include "fedcore/platform/log.h"
#include "fedcore/platform/storage.h"
#include "fedcore/platform/system.h"
#include "fedcore/platform/uart.h"
#include "fedcore/protocol.h"

#define LINK_UART UART_NUM_0
#define LINK_BAUD 115200
#define UART_RX_BUFFER 4096 /* holds two full frames while the device trains */
#define UART_TX_BUFFER 4096
#define READ_WAIT_MS 10
#define RESET_DRAIN_MS 200
/* Longer than the longest TRAIN the protocol allows on the supported heads; the idle tasks
 * are not watched, because training keeps the main task busy on purpose. */
#define WATCHDOG_TIMEOUT_MS 30000u
#define NVS_NAMESPACE "fedhead"

static TaskHandle_t main_task = NULL;
static esp_err_t uart_status = ESP_FAIL;
static esp_err_t nvs_status = ESP_ERR_NVS_NOT_INITIALIZED;
static bool nvs_erased = false;
static esp_err_t watchdog_status = ESP_ERR_NOT_SUPPORTED;
static nvs_handle_t nvs = 0;
static uint32_t device_id = 1;

/* pdMS_TO_TICKS rounds down: 0 ticks (a busy loop) when the tick is longer than ms. */
static TickType_t ticks_at_least_one(uint32_t ms) {
    TickType_t ticks = pdMS_TO_TICKS(ms);
    return ticks > 0 ? ticks : 1;
}

/* ---- diagnostics: LOG frames, from the main task only ---- */

/* Other tasks and ISRs would race the device's frame buffers: their text is dropped. */
static bool on_main_task(void) {
    return !xPortInIsrContext() && main_task != NULL && xTaskGetCurrentTaskHandle() == main_task;
}

static int log_to_link(const char *fmt, va_list args) {
    if (!on_main_task()) {
        link_log_count_dropped();
        return 0;
    }
    return link_log_vprintf(fmt, args);
}

/* TFLM's DebugLog (MicroPrintf). The link adds -Wl,--wrap=DebugLog, so TFLM's calls land
 * here instead of esp-tflite-micro's debug_log.cc, which would print raw text to UART0. */
void __wrap_DebugLog(const char *format, va_list args);
void __wrap_DebugLog(const char *format, va_list args) { (void)log_to_link(format, args); }

static void report(uint8_t level, const char *fmt, ...) {
    if (!on_main_task()) {
        link_log_count_dropped();
        return;
    }
    char text[LINK_LOG_LINE_MAX];
    va_list args;
    va_start(args, fmt);
    (void)vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    link_log_text(level, text);
}

void fc_platform_log(const char *msg) { report(FC_LOG_WARN, "%s", msg); }

/* ---- start-up ---- */

static esp_err_t init_uart(void) {
    const uart_config_t config = {
        .baud_rate = LINK_BAUD,
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
        .source_clk = UART_SCLK_DEFAULT,
    };
    esp_err_t err = uart_driver_install(LINK_UART, UART_RX_BUFFER, UART_TX_BUFFER, 0, NULL, 0);
    if (err == ESP_OK) {
        err = uart_param_config(LINK_UART, &config);
    }
    if (err == ESP_OK) {
        err = uart_flush_input(LINK_UART);
    }
    return err;
}

static esp_err_t init_nvs(void) {
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        nvs_erased = true; /* layout changed: start empty, as documented (README) */
        err = nvs_flash_erase();
        if (err == ESP_OK) {
            err = nvs_flash_init();
        }
    }
    if (err == ESP_OK) {
        err = nvs_open(NVS_NAMESPACE, NVS_READWRITE, &nvs);
    }
    return err;
}

static esp_err_t init_watchdog(void) {
#if CONFIG_ESP_TASK_WDT_EN
    const esp_task_wdt_config_t config = {
        .timeout_ms = WATCHDOG_TIMEOUT_MS,
        .idle_core_mask = 0,
        .trigger_panic = true, /* a hang restarts the chip instead of printing forever */
    };
    esp_err_t err = esp_task_wdt_init(&config);
    if (err == ESP_ERR_INVALID_STATE) {
        err = esp_task_wdt_reconfigure(&config); /* CONFIG_ESP_TASK_WDT_INIT=y started it */
    }
    if (err == ESP_OK) {
        err = esp_task_wdt_add(NULL);
    }
    return err;
#else
    return ESP_ERR_NOT_SUPPORTED;
#endif
}

static void init_device_id(void) {
    uint8_t mac[6] = {0};
    if (esp_efuse_mac_get_default(mac) == ESP_OK) {
        uint32_t id = fc_crc32(mac, sizeof mac); /* stable, spread over 32 bits */
        device_id = (id == 0u || id == 0xFFFFFFFFu) ? 1u : id;
    }
}

void esp32_platform_init(void) {
    main_task = xTaskGetCurrentTaskHandle();
    uart_status = init_uart();
    (void)esp_log_set_vprintf(log_to_link);
    nvs_status = init_nvs();
    watchdog_status = init_watchdog();
    init_device_id();
}

void esp32_platform_ready(void) {
    link_log_start();
    if (nvs_status != ESP_OK) {
        report(FC_LOG_ERROR, "nvs: %s: heads are not persisted", esp_err_to_name(nvs_status));
    } else if (nvs_erased) {
        report(FC_LOG_WARN, "nvs: layout changed, storage erased: heads start from the model");
    }
    if (watchdog_status != ESP_OK) {
        report(FC_LOG_WARN, "task watchdog: %s: a hang will not restart the chip",
               esp_err_to_name(watchdog_status));
    }
}

void esp32_platform_alive(void) {
#if CONFIG_ESP_TASK_WDT_EN
    if (watchdog_status == ESP_OK) {
        (void)esp_task_wdt_reset();
    }
#endif
}

/* ---- uart ---- */

size_t fc_uart_read(uint8_t *buf, size_t cap) {
    const TickType_t wait = ticks_at_least_one(READ_WAIT_MS);
    if (uart_status != ESP_OK || cap == 0) {
        vTaskDelay(wait);
        return 0;
    }
    /* Take what is buffered at once; wait (at least one tick, so other tasks run) only for
     * the first byte when nothing is there. */
    size_t buffered = 0;
    (void)uart_get_buffered_data_len(LINK_UART, &buffered);
    size_t want = buffered == 0 ? 1u : (buffered < cap ? buffered : cap);
    int n = uart_read_bytes(LINK_UART, buf, (uint32_t)want, buffered == 0 ? wait : 0);
    return n > 0 ? (size_t)n : 0;
}

size_t fc_uart_read_now(uint8_t *buf, size_t cap) {
    size_t buffered = 0;
    if (uart_status != ESP_OK || cap == 0 ||
        uart_get_buffered_data_len(LINK_UART, &buffered) != ESP_OK || buffered == 0) {
        return 0;
    }
    const TickType_t no_wait = 0; /* called between training steps: takes what is buffered */
    int n = uart_read_bytes(LINK_UART, buf, (uint32_t)(buffered < cap ? buffered : cap), no_wait);
    return n > 0 ? (size_t)n : 0;
}

void fc_uart_write(const uint8_t *buf, size_t len) {
    link_log_uart_enter(); /* the driver logging now would land inside this frame */
    if (uart_status == ESP_OK) {
        (void)uart_write_bytes(LINK_UART, buf, len);
    }
    link_log_uart_leave();
}

/* ---- entropy, clock, identity ---- */

int fc_entropy_fill(uint8_t *buf, size_t len) {
    bootloader_random_enable();
    esp_fill_random(buf, len);
    bootloader_random_disable();
    return 0;
}

uint32_t fc_clock_us(void) { return (uint32_t)esp_timer_get_time(); }
uint32_t fc_clock_ms(void) { return (uint32_t)(esp_timer_get_time() / 1000); }
uint32_t fc_device_id(void) { return device_id; }
const char *fc_board_name(void) { return CONFIG_IDF_TARGET; }

/* ---- storage: failures are reported, never ignored ---- */

int fc_storage_save(const char *key, const uint8_t *data, size_t len) {
    if (nvs_status != ESP_OK) {
        return -1; /* reported at start-up; the device answers NACK STORAGE where it matters */
    }
    esp_err_t err = nvs_set_blob(nvs, key, data, len);
    if (err == ESP_OK) {
        err = nvs_commit(nvs);
    }
    if (err != ESP_OK) {
        report(FC_LOG_ERROR, "nvs: storing %s failed: %s", key, esp_err_to_name(err));
        return -1;
    }
    return 0;
}

int fc_storage_load(const char *key, uint8_t *buf, size_t cap, size_t *len) {
    if (nvs_status != ESP_OK) {
        return -1;
    }
    size_t n = cap; /* in: buffer size; out: blob size (ESP_ERR_NVS_INVALID_LENGTH if larger) */
    esp_err_t err = nvs_get_blob(nvs, key, buf, &n);
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        return -1; /* nothing stored yet: the device starts from the generated head */
    }
    if (err != ESP_OK) {
        report(FC_LOG_ERROR, "nvs: loading %s failed: %s", key, esp_err_to_name(err));
        return -1;
    }
    *len = n;
    return 0;
}

int fc_storage_persistent(void) { return nvs_status == ESP_OK; }

/* ---- system ---- */

uint32_t fc_platform_free_ram(void) { return esp_get_free_heap_size(); }

void fc_platform_reset(void) {
    if (uart_status == ESP_OK) {
        (void)uart_wait_tx_done(LINK_UART, ticks_at_least_one(RESET_DRAIN_MS)); /* the ACK */
    }
    esp_restart();
}

uint8_t fc_platform_reset_reason(void) {
    switch (esp_reset_reason()) {
    case ESP_RST_POWERON:
        return 1;
    case ESP_RST_SW:
        return 2;
    case ESP_RST_INT_WDT:
    case ESP_RST_TASK_WDT:
    case ESP_RST_WDT:
        return 3;
    case ESP_RST_PANIC:
    case ESP_RST_CPU_LOCKUP:
        return 4;
    case ESP_RST_BROWNOUT:
    case ESP_RST_PWR_GLITCH:
        return 5;
    case ESP_RST_EXT:
    case ESP_RST_SDIO:
    case ESP_RST_USB:
    case ESP_RST_JTAG:
        return 6;
    default:
        return 0;
    }
}
