/* Hex fields in and out for the C test drivers that talk to Python over stdin/stdout. */
#ifndef FEDHEAD_TESTS_HEX_IO_H
#define FEDHEAD_TESTS_HEX_IO_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Parse a hex token into out ("-" is empty); returns its length, or -1 when malformed,
 * missing or longer than cap. */
static inline long hex_field(const char *tok, uint8_t *out, size_t cap) {
    if (tok == NULL) {
        return -1;
    }
    if (strcmp(tok, "-") == 0) {
        return 0;
    }
    size_t n = strlen(tok);
    if (n % 2 != 0 || n / 2 > cap) {
        return -1;
    }
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(tok + 2 * i, "%2x", &v) != 1) {
            return -1;
        }
        out[i] = (uint8_t)v;
    }
    return (long)(n / 2);
}

/* One line of hex ("-" when empty). */
static inline void hex_line(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        printf("%02x", p[i]);
    }
    printf(n ? "\n" : "-\n");
}

#endif
