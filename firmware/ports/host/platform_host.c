/* Host implementation of fedcore's porting contract (the headers in fedcore/platform/). */
#define _GNU_SOURCE /* getrandom */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../common/link_log.h"
#include "../common/ram_store.h"
#include "fedcore/platform/clock.h"
#include "fedcore/platform/device_id.h"
#include "fedcore/platform/entropy.h"
#include "fedcore/platform/log.h"
#include "fedcore/platform/storage.h"
#include "fedcore/platform/system.h"
#include "fedcore/platform/uart.h"
#include "fedcore/protocol.h"
#include "host_port.h"

#define READ_WAIT_MS 50
/* A UART with nobody listening loses bytes instead of stalling the device; so does this one
 * when the host has not read for this long. */
#define WRITE_WAIT_MS 2000

static uint32_t device_id = 1;
static const char *state_path = NULL;
static int uart_fd = -1;

void host_port_set_id(uint32_t id) { device_id = id; }
void host_port_set_state_path(const char *path) { state_path = path; }
void host_port_set_uart_fd(int fd) { uart_fd = fd; }

uint32_t fc_device_id(void) { return device_id; }
const char *fc_board_name(void) { return "host"; }

/* ---- uart ---- */

static size_t uart_read_within(uint8_t *buf, size_t cap, int wait_ms) {
    struct pollfd pfd = {.fd = uart_fd, .events = POLLIN};
    if (poll(&pfd, 1, wait_ms) <= 0) {
        return 0;
    }
    ssize_t n = read(uart_fd, buf, cap);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        usleep((useconds_t)wait_ms * 1000u); /* EIO while no side holds the slave: wait, retry */
    }
    return n > 0 ? (size_t)n : 0;
}

size_t fc_uart_read(uint8_t *buf, size_t cap) { return uart_read_within(buf, cap, READ_WAIT_MS); }
size_t fc_uart_read_now(uint8_t *buf, size_t cap) { return uart_read_within(buf, cap, 0); }

static void write_all(const uint8_t *buf, size_t len) {
    /* Set when the host stopped reading: later frames are dropped at once instead of stalling
     * the device (and its reading) for WRITE_WAIT_MS each, until a write goes through again. */
    static int congested = 0;
    while (len > 0) {
        ssize_t n = write(uart_fd, buf, len);
        if (n > 0) {
            congested = 0;
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || congested) {
            return;
        }
        struct pollfd pfd = {.fd = uart_fd, .events = POLLOUT};
        if (poll(&pfd, 1, WRITE_WAIT_MS) <= 0) {
            fc_platform_log("uart: host not reading, output dropped");
            congested = 1;
            return;
        }
    }
}

void fc_uart_write(const uint8_t *buf, size_t len) {
    link_log_uart_enter(); /* a diagnostic now (congestion) must not start a frame inside one */
    write_all(buf, len);
    link_log_uart_leave();
}

/* ---- entropy, clock, log ---- */

int fc_entropy_fill(uint8_t *buf, size_t len) {
    while (len > 0) {
        ssize_t n = getrandom(buf, len, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t boot_us(void) {
    static uint64_t boot = 0;
    if (boot == 0) {
        boot = now_us();
    }
    return boot;
}

uint32_t fc_clock_us(void) { return (uint32_t)(now_us() - boot_us()); }
uint32_t fc_clock_ms(void) { return (uint32_t)((now_us() - boot_us()) / 1000u); }

/* Like the ESP32 port: a LOG frame on the link (dropped while that is impossible, see
 * ports/common/link_log.h), and a copy on stderr for the process log. */
void fc_platform_log(const char *msg) {
    fprintf(stderr, "fedhead-host[%u]: %s\n", device_id, msg);
    link_log_text(FC_LOG_WARN, msg);
}
uint32_t fc_platform_free_ram(void) { return 0; }
/* The process start is the power-on; RESET restarts in place (a software reset). */
static uint8_t reset_reason = FC_RESET_POWER_ON;

void fc_platform_reset(void) {
    fc_platform_log("reset: restarting in place");
    reset_reason = FC_RESET_SOFTWARE;
}

uint8_t fc_platform_reset_reason(void) { return reset_reason; }

/* ---- storage: RAM, mirrored to PATH.<key> files when --state is given ---- */

static int blob_path(const char *key, const char *suffix, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s.%s%s", state_path, key, suffix);
    return (n > 0 && (size_t)n < cap) ? 0 : -1;
}

static int write_file_atomic(const char *key, const uint8_t *data, size_t len) {
    char path[4096];
    char tmp[4096];
    if (blob_path(key, "", path, sizeof path) != 0 || blob_path(key, ".tmp", tmp, sizeof tmp) != 0) {
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        return -1;
    }
    int ok = write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
    ok = (close(fd) == 0) && ok;
    /* rename() replaces the old file in one step: a crash leaves the old or the new blob. */
    return (ok && rename(tmp, path) == 0) ? 0 : -1;
}

int fc_storage_save(const char *key, const uint8_t *data, size_t len) {
    if (state_path != NULL && write_file_atomic(key, data, len) != 0) {
        return -1;
    }
    return ram_store_put(key, data, len);
}

int fc_storage_load(const char *key, uint8_t *buf, size_t cap, size_t *len) {
    if (state_path == NULL) {
        return ram_store_get(key, buf, cap, len);
    }
    char path[4096];
    if (blob_path(key, "", path, sizeof path) != 0) {
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return -1;
    }
    size_t n = fread(buf, 1, cap, f);
    int too_big = fgetc(f) != EOF;
    fclose(f);
    if (too_big) {
        return -1;
    }
    *len = n;
    return 0;
}

int fc_storage_persistent(void) { return state_path != NULL; }
