/* Test driver for fedcore's cobs, crc32, sha256 and link framing: reads stdin, writes stdout.
 *   cobs_encode | cobs_decode | crc32 | sha256 CHUNK | build TYPE SEQ DEVICE FLAGS | rx */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedcore/cobs.h"
#include "fedcore/crc32.h"
#include "fedcore/link.h"
#include "fedcore/sha256.h"

#define INPUT_CAP (1u << 20)
static uint8_t input[INPUT_CAP];
static uint8_t output[INPUT_CAP + INPUT_CAP / 254u + 16u];

static size_t read_stdin(void) {
    size_t n = fread(input, 1, INPUT_CAP, stdin);
    if (!feof(stdin)) {
        fprintf(stderr, "input too large\n");
        exit(3);
    }
    return n;
}

static int cmd_cobs(int encode, size_t n) {
    size_t out_len = 0;
    if (encode) {
        out_len = fc_cobs_encode(input, n, output, FC_COBS_MAX_ENCODED(n));
    } else if (fc_cobs_decode(input, n, input, n, &out_len) != 0) {
        putchar('E'); /* decoded in place, as the receiver does */
        return 0;
    }
    putchar('K');
    fwrite(encode ? output : input, 1, out_len, stdout);
    return 0;
}

static int cmd_sha256(size_t n, size_t chunk) {
    fc_sha256_t ctx;
    uint8_t digest[FC_SHA256_LEN];
    fc_sha256_init(&ctx);
    for (size_t off = 0; off < n; off += chunk) {
        fc_sha256_update(&ctx, input + off, (n - off < chunk) ? n - off : chunk);
    }
    fc_sha256_final(&ctx, digest);
    for (unsigned i = 0; i < FC_SHA256_LEN; i++) {
        printf("%02x", digest[i]);
    }
    printf("\n");
    return 0;
}

static int cmd_build(char **argv, size_t n) {
    fc_header_t hdr = {
        .version = FC_PROTO_VERSION,
        .type = (uint8_t)strtoul(argv[0], NULL, 0),
        .seq = (uint16_t)strtoul(argv[1], NULL, 0),
        .device_id = (uint32_t)strtoul(argv[2], NULL, 0),
        .flags = (uint8_t)strtoul(argv[3], NULL, 0),
    };
    static uint8_t wire[FC_LINK_MAX_WIRE];
    size_t len = fc_frame_build(&hdr, input, n, wire, sizeof wire);
    if (len == 0) {
        putchar('E');
        return 0;
    }
    putchar('K');
    fwrite(wire, 1, len, stdout);
    return 0;
}

static const char *result_name(fc_rx_result_t r) {
    static const char *const kNames[] = {"none",     "frame",       "bad_cobs",   "too_short",
                                         "bad_crc",  "bad_version", "bad_length", "oversize",
                                         "reserved"};
    return kNames[r];
}

static int cmd_rx(size_t n) {
    static fc_rx_t rx;
    fc_rx_init(&rx);
    for (size_t i = 0; i < n; i++) {
        fc_frame_t frame;
        fc_rx_result_t r = fc_rx_feed(&rx, input[i], &frame);
        if (r == FC_RX_NONE) {
            continue;
        }
        printf("%s", result_name(r));
        if (r == FC_RX_FRAME) {
            printf(" %u %u %u %u %u ", frame.hdr.type, frame.hdr.seq, (unsigned)frame.hdr.device_id,
                   frame.hdr.flags, frame.hdr.length);
            for (unsigned k = 0; k < frame.hdr.length; k++) {
                printf("%02x", frame.payload[k]);
            }
        }
        printf("\n");
    }
    const fc_link_counters_t *c = &rx.counters;
    printf("counters %u %u %u %u %u\n", (unsigned)c->frames_ok, (unsigned)c->bad_cobs,
           (unsigned)c->bad_crc, (unsigned)c->bad_version, (unsigned)c->oversize);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        return 64;
    }
    size_t n = read_stdin();
    const char *cmd = argv[1];
    if (strcmp(cmd, "cobs_encode") == 0 || strcmp(cmd, "cobs_decode") == 0) {
        return cmd_cobs(strcmp(cmd, "cobs_encode") == 0, n);
    }
    if (strcmp(cmd, "crc32") == 0) {
        printf("%08x\n", (unsigned)fc_crc32(input, n));
        return 0;
    }
    if (strcmp(cmd, "sha256") == 0 && argc == 3) {
        return cmd_sha256(n, (size_t)strtoul(argv[2], NULL, 0));
    }
    if (strcmp(cmd, "build") == 0 && argc == 6) {
        return cmd_build(argv + 2, n);
    }
    if (strcmp(cmd, "rx") == 0) {
        return cmd_rx(n);
    }
    return 64;
}
