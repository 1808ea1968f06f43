/* Test driver for fedcore/platform/crypto.h: one command per stdin line, one answer per line.
 *
 *   pub <sk>                      -> public key
 *   shared <sk> <pk>              -> shared secret, or ERR (low-order point)
 *   seal <key> <nonce> <ad> <pt>  -> cipher text | tag
 *   open <key> <nonce> <ad> <ct|tag> -> plain text, or ERR
 *   hkdf <salt> <ikm> <info> <len> -> okm
 * Byte strings are hex, "-" for empty. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedcore/platform/crypto.h"
#include "hex_io.h"

#define MAX_BYTES 4096
#define MAX_LINE (8 * MAX_BYTES + 64)

static char line[MAX_LINE];

/* The next hex field of the line being parsed (strtok state). */
static long next_hex(char **cursor, uint8_t *out, size_t cap) {
    char *tok = strtok(*cursor, " \n");
    *cursor = NULL;
    return hex_field(tok, out, cap);
}

static uint8_t a[MAX_BYTES], b[MAX_BYTES], c[MAX_BYTES], d[MAX_BYTES], out[MAX_BYTES + 16];

static int run_line(char *text) {
    char *cmd = strtok(text, " \n");
    char *rest = NULL;
    if (cmd == NULL) {
        return 0;
    }
    long la = next_hex(&rest, a, sizeof a);
    if (strcmp(cmd, "pub") == 0 && la == 32) {
        fc_crypto_x25519_public(out, a);
        hex_line(out, 32);
        return 0;
    }
    long lb = next_hex(&rest, b, sizeof b);
    if (strcmp(cmd, "shared") == 0 && la == 32 && lb == 32) {
        if (fc_crypto_x25519_shared(out, a, b) != 0) {
            printf("ERR\n");
        } else {
            hex_line(out, 32);
        }
        return 0;
    }
    long lc = next_hex(&rest, c, sizeof c);
    if (strcmp(cmd, "hkdf") == 0 && la >= 0 && lb >= 0 && lc >= 0) {
        char *len_tok = strtok(NULL, " \n");
        size_t n = len_tok ? (size_t)strtoul(len_tok, NULL, 10) : 0;
        if (n > sizeof out || fc_crypto_hkdf_sha256(out, n, a, (size_t)la, b, (size_t)lb, c,
                                                    (size_t)lc) != 0) {
            printf("ERR\n");
        } else {
            hex_line(out, n);
        }
        return 0;
    }
    long ld = next_hex(&rest, d, sizeof d);
    if (la != FC_AEAD_KEY_LEN || lb != FC_AEAD_NONCE_LEN || lc < 0 || ld < 0) {
        return -1;
    }
    if (strcmp(cmd, "seal") == 0) {
        fc_crypto_aead_seal(out, out + ld, a, b, c, (size_t)lc, d, (size_t)ld);
        hex_line(out, (size_t)ld + FC_AEAD_TAG_LEN);
        return 0;
    }
    if (strcmp(cmd, "open") == 0 && ld >= (long)FC_AEAD_TAG_LEN) {
        size_t n = (size_t)ld - FC_AEAD_TAG_LEN;
        memset(out, 0xA5, n);
        if (fc_crypto_aead_open(out, a, b, d + n, c, (size_t)lc, d, n) != 0) {
            for (size_t i = 0; i < n; i++) {
                if (out[i] != 0xA5) {
                    return -2; /* a failed open must not write plain text */
                }
            }
            printf("ERR\n");
        } else {
            hex_line(out, n);
        }
        return 0;
    }
    return -1;
}

int main(void) {
    while (fgets(line, sizeof line, stdin) != NULL) {
        int rc = run_line(line);
        if (rc != 0) {
            fprintf(stderr, "bad command (rc %d)\n", rc);
            return 1;
        }
    }
    return 0;
}
