/* Host port: the firmware as a POSIX process talking over a pseudo-terminal.
 *
 * The process opens its own pty in raw mode and prints "FEDHEAD_PTY <slave path>" on stdout, so
 * the host opens it with pyserial exactly like a USB serial port. Options:
 *   --id N        device id (default 1)
 *   --state PATH  persist storage as files PATH.<key> (default: RAM only, lost at exit)
 *   --sensor PATH the host board's sensor: labelled windows the application collects at boot
 *                 (records of u8 label + fc_device_input_len() int8 values, back to back).
 *                 This is how a production host board gets the user's data: from its own
 *                 "sensor" through fc_device_add_example, never over the link.
 *   --boot-delay-ms N  start like a slow real board: handle nothing for N ms (input waits
 *                 in the pty, as in a UART driver's buffer) and print unframed boot text
 *                 halfway, then start the device, which sends its boot INFO
 * It runs until killed (SIGTERM/SIGINT). */
#define _GNU_SOURCE /* posix_openpt, ptsname, cfmakeraw */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../common/link_log.h"

#include "fedcore/device.h"
#include "fedcore/platform/clock.h"
#include "fedcore/platform/log.h"
#include "host_port.h"

static const char *sensor_path = NULL;
static unsigned long boot_delay_ms = 0;

static void usage(const char *prog) {
    fprintf(stderr, "usage: %s [--id N] [--state PATH] [--sensor PATH] [--boot-delay-ms N]\n",
            prog);
    exit(2);
}

/* The application's data collection: every labelled window of the sensor file, in order. */
static void read_sensor(const char *path) {
    static int8_t window[65536];
    size_t n = fc_device_input_len();
    FILE *f = fopen(path, "rb");
    if (f == NULL || n > sizeof window) {
        perror("--sensor");
        exit(1);
    }
    unsigned char label = 0;
    unsigned added = 0, refused = 0, right = 0;
    float logits[256];
    while (fread(&label, 1, 1, f) == 1 && fread(window, 1, n, f) == n) {
        /* The application's own use of the personal head, on the device (console only). */
        right += fc_device_predict(window, logits) == (int)label;
        if (fc_device_add_example(window, label) == 0) {
            added++;
        } else {
            refused++;
        }
    }
    fclose(f);
    fprintf(stderr, "fedhead-host: sensor %s: %u examples kept, %u refused\n", path, added,
            refused);
    fprintf(stderr, "fedhead-host: application: personal head right on %u of %u windows\n",
            right, added + refused);
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--id") == 0 && i + 1 < argc) {
            char *end = NULL;
            unsigned long id = strtoul(argv[++i], &end, 0);
            if (*end != '\0' || id == 0 || id >= 0xFFFFFFFFul) {
                usage(argv[0]);
            }
            host_port_set_id((uint32_t)id);
        } else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
            host_port_set_state_path(argv[++i]);
        } else if (strcmp(argv[i], "--sensor") == 0 && i + 1 < argc) {
            sensor_path = argv[++i];
        } else if (strcmp(argv[i], "--boot-delay-ms") == 0 && i + 1 < argc) {
            char *end = NULL;
            boot_delay_ms = strtoul(argv[++i], &end, 0);
            if (*end != '\0' || boot_delay_ms > 60000ul) {
                usage(argv[0]);
            }
        } else {
            usage(argv[0]);
        }
    }
}

/* Open a pty pair in raw mode; returns the master fd. The slave stays open here too, so the
 * master never reports EIO while the host closes and reopens the port. */
static int open_pty(void) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        perror("posix_openpt");
        exit(1);
    }
    const char *slave_path = ptsname(master);
    int slave = slave_path ? open(slave_path, O_RDWR | O_NOCTTY) : -1;
    struct termios tio;
    if (slave < 0 || tcgetattr(slave, &tio) != 0) {
        perror("pty slave");
        exit(1);
    }
    cfmakeraw(&tio);
    if (tcsetattr(slave, TCSANOW, &tio) != 0) {
        perror("tcsetattr");
        exit(1);
    }
    int flags = fcntl(master, F_GETFL);
    if (flags < 0 || fcntl(master, F_SETFL, flags | O_NONBLOCK) != 0) {
        perror("fcntl");
        exit(1);
    }
    printf("FEDHEAD_PTY %s\n", slave_path);
    fflush(stdout);
    return master;
}

static void sleep_ms(unsigned long ms) {
    struct timespec pause = {.tv_sec = (time_t)(ms / 1000u),
                             .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
    }
}

/* What a real board does before its firmware runs: silence, ROM text on the link (halfway, so
 * a host that opened the port at once sees it), silence again. The diagnostic below is
 * dropped (the link is not ready) and counted in a LOG frame at start. */
static void slow_boot(int uart_fd) {
    static const char rom_text[] = "fedhead-host boot: ROM banner, not a frame\r\n"
                                   "load:0x40078000,len:15576\r\nentry 0x4008064c\r\n";
    sleep_ms(boot_delay_ms / 2u);
    if (write(uart_fd, rom_text, sizeof rom_text - 1u) < 0) {
        perror("boot text");
    }
    fc_platform_log("slow boot: input waits until the device is ready");
    sleep_ms(boot_delay_ms - boot_delay_ms / 2u);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    (void)fc_clock_us(); /* the first reading marks boot: uptime counts from here */
    parse_args(argc, argv);
    int uart_fd = open_pty();
    host_port_set_uart_fd(uart_fd);
    if (boot_delay_ms > 0) {
        slow_boot(uart_fd);
    }
    fc_device_init();
    if (sensor_path != NULL) {
        read_sensor(sensor_path); /* console (stderr) only: nothing of it goes on the link */
    }
    link_log_start(); /* from here on diagnostics are LOG frames, as on the ESP32 */
    for (;;) {
        fc_device_poll();
    }
}
