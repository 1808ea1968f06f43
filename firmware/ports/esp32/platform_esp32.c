/* ESP-IDF implementation of fedcore's porting contract (the headers in fedcore/platform/).
 *
 * UART: the ESP-IDF UART driver on UART0 (the USB-serial bridge of dev boards), 115200 8N1.
 * Entropy: esp_fill_random() between bootloader_random_enable() and _disable(): without RF
 * running, esp_random() is only truly random while that entropy source is enabled (ESP-IDF
 * "Random Number Generation"); it must be off again before ADC or RF are used.
 * Storage: NVS namespace "fedhead", one blob per key; nvs_set_blob + nvs_commit replace a
 * blob atomically. Clock: esp_timer. Device id: from the factory MAC address. */
#include <string.h>

#include "bootloader_random.h"
#include "driver/uart.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_random.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "fedcore/crc32.h"
#include "fedcore/platform/clock.h"
#include "fedcore/platform/device_id.h"
#include "fedcore/platform/entropy.h"
#include "fedcore/platform/log.h"
#include "fedcore/platform/storage.h"
#include "fedcore/platform/uart.h"
#include "freertos/FreeRTOS.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "esp32_port.h"

#define LINK_UART UART_NUM_0
#define LINK_BAUD 115200
#define UART_RX_BUFFER 4096 /* holds two full frames while training */
#define UART_TX_BUFFER 4096
#define READ_WAIT_MS 5
#define NVS_NAMESPACE "fedhead"

static const char *TAG = "fedhead";
static nvs_handle_t nvs = 0;
static uint32_t device_id = 1;

static void init_device_id(void) {
    uint8_t mac[6] = {0};
    if (esp_efuse_mac_get_default(mac) == ESP_OK) {
        uint32_t id = fc_crc32(mac, sizeof mac); /* stable, spread over 32 bits */
        device_id = (id == 0u || id == 0xFFFFFFFFu) ? 1u : id;
    }
}

static void init_nvs(void) {
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_ERROR_CHECK(nvs_flash_erase()); /* layout changed: start empty, as documented */
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);
    ESP_ERROR_CHECK(nvs_open(NVS_NAMESPACE, NVS_READWRITE, &nvs));
}

static void init_uart(void) {
    const uart_config_t config = {
        .baud_rate = LINK_BAUD,
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
        .source_clk = UART_SCLK_DEFAULT,
    };
    ESP_ERROR_CHECK(uart_driver_install(LINK_UART, UART_RX_BUFFER, UART_TX_BUFFER, 0, NULL, 0));
    ESP_ERROR_CHECK(uart_param_config(LINK_UART, &config));
}

void esp32_platform_init(void) {
    init_uart();
    init_nvs();
    init_device_id();
}

/* ---- uart ---- */

size_t fc_uart_read(uint8_t *buf, size_t cap) {
    int n = uart_read_bytes(LINK_UART, buf, (uint32_t)cap, pdMS_TO_TICKS(READ_WAIT_MS));
    return n > 0 ? (size_t)n : 0;
}

size_t fc_uart_read_now(uint8_t *buf, size_t cap) {
    int n = uart_read_bytes(LINK_UART, buf, (uint32_t)cap, 0);
    return n > 0 ? (size_t)n : 0;
}

void fc_uart_write(const uint8_t *buf, size_t len) {
    (void)uart_write_bytes(LINK_UART, (const char *)buf, len);
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

/* ---- storage ---- */

int fc_storage_save(const char *key, const uint8_t *data, size_t len) {
    if (nvs_set_blob(nvs, key, data, len) != ESP_OK || nvs_commit(nvs) != ESP_OK) {
        ESP_LOGW(TAG, "storing %s failed", key);
        return -1;
    }
    return 0;
}

int fc_storage_load(const char *key, uint8_t *buf, size_t cap, size_t *len) {
    size_t n = cap; /* in: buffer size; out: blob size (ESP_ERR_NVS_INVALID_LENGTH if larger) */
    if (nvs_get_blob(nvs, key, buf, &n) != ESP_OK) {
        return -1;
    }
    *len = n;
    return 0;
}

int fc_storage_persistent(void) { return 1; }

/* ---- system ---- */

void fc_platform_log(const char *msg) { ESP_LOGW(TAG, "%s", msg); }
uint32_t fc_platform_free_ram(void) { return esp_get_free_heap_size(); }
void fc_platform_reset(void) { esp_restart(); }
