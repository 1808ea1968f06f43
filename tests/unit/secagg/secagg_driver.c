/* Test driver for fedcore/secagg.c's arithmetic: one command per stdin line, hex in and out.
 *   split <secret> <t> <n> <coeff seed>     -> n shares, concatenated
 *   combine <xs, comma separated> <shares>  -> secret, or ERR
 *   mask <seed> <bits> <sign> <u32 values>  -> u32 values
 *   pack <bits> <u32 values>                -> packed bytes
 *   minbits <q bits> <n>                    -> decimal */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedcore/secagg.h"
#include "hex_io.h"

#define MAX_BYTES 8192

static char line[4 * MAX_BYTES];
static uint8_t buf[MAX_BYTES], seed[32];
static uint8_t shares[FC_SECAGG_MAX_PEERS][FC_SECAGG_SHARE_LEN];
static uint32_t values[MAX_BYTES / 4];

static long values_in(const char *tok) {
    long n = hex_field(tok, buf, sizeof buf);
    for (long i = 0; i + 4 <= n; i += 4) {
        values[i / 4] = (uint32_t)buf[i] | (uint32_t)buf[i + 1] << 8 | (uint32_t)buf[i + 2] << 16 |
                        (uint32_t)buf[i + 3] << 24;
    }
    return n < 0 || n % 4 ? -1 : n / 4;
}

static int run(char *text) {
    char *cmd = strtok(text, " \n");
    if (cmd == NULL) {
        return 0;
    }
    if (strcmp(cmd, "split") == 0) {
        uint8_t secret[32];
        fc_rng_t rng;
        long ls = hex_field(strtok(NULL, " \n"), secret, 32);
        unsigned t = (unsigned)atoi(strtok(NULL, " \n"));
        unsigned n = (unsigned)atoi(strtok(NULL, " \n"));
        if (ls != 32 || hex_field(strtok(NULL, " \n"), seed, 32) != 32 || n > FC_SECAGG_MAX_PEERS) {
            return -1;
        }
        fc_rng_seed(&rng, seed);
        fc_shamir_split(secret, t, n, &rng, shares);
        hex_line(&shares[0][0], n * FC_SECAGG_SHARE_LEN);
        return 0;
    }
    if (strcmp(cmd, "combine") == 0) {
        uint32_t xs[FC_SECAGG_MAX_PEERS];
        unsigned k = 0;
        char *list = strtok(NULL, " \n");
        char *hex = strtok(NULL, " \n");
        for (char *x = strtok(list, ","); x && k < FC_SECAGG_MAX_PEERS; x = strtok(NULL, ",")) {
            xs[k++] = (uint32_t)strtoul(x, NULL, 10);
        }
        uint8_t secret[32];
        if (hex_field(hex, &shares[0][0], sizeof shares) != (long)(k * FC_SECAGG_SHARE_LEN)) {
            return -1;
        }
        if (fc_shamir_combine(shares, xs, k, secret) != 0) {
            printf("ERR\n");
        } else {
            hex_line(secret, 32);
        }
        return 0;
    }
    if (strcmp(cmd, "mask") == 0) {
        if (hex_field(strtok(NULL, " \n"), seed, 32) != 32) {
            return -1;
        }
        unsigned bits = (unsigned)atoi(strtok(NULL, " \n"));
        int sign = atoi(strtok(NULL, " \n"));
        long n = values_in(strtok(NULL, " \n"));
        if (n < 0) {
            return -1;
        }
        fc_secagg_apply_mask(values, (size_t)n, seed, sign, bits);
        hex_line((const uint8_t *)values, (size_t)n * 4); /* little-endian host */
        return 0;
    }
    if (strcmp(cmd, "pack") == 0) {
        unsigned bits = (unsigned)atoi(strtok(NULL, " \n"));
        long n = values_in(strtok(NULL, " \n"));
        if (n < 0) {
            return -1;
        }
        hex_line(buf, fc_secagg_pack(values, (size_t)n, bits, buf));
        return 0;
    }
    if (strcmp(cmd, "minbits") == 0) {
        unsigned q = (unsigned)atoi(strtok(NULL, " \n"));
        unsigned n = (unsigned)atoi(strtok(NULL, " \n"));
        printf("%u\n", fc_secagg_min_bits(q, n));
        return 0;
    }
    return -1;
}

int main(void) {
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (run(line) != 0) {
            fprintf(stderr, "bad command\n");
            return 1;
        }
    }
    return 0;
}
