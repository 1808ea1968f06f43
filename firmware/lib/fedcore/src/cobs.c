/* COBS encode/decode; bounds-checked on every access. */
#include "fedcore/cobs.h"

size_t fc_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap) {
    if (out_cap < FC_COBS_MAX_ENCODED(len)) {
        return 0;
    }
    size_t code_pos = 0; /* where the current block's code byte goes */
    size_t out_len = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == 0) {
            out[code_pos] = code;
            code_pos = out_len++;
            code = 1;
            continue;
        }
        out[out_len++] = in[i];
        code++;
        /* A full block of 254 data bytes carries no implied zero; always open a new block
         * (like the Python twin, so both encoders produce identical bytes). */
        if (code == 0xFF) {
            out[code_pos] = code;
            code_pos = out_len++;
            code = 1;
        }
    }
    out[code_pos] = code;
    return out_len;
}

int fc_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap, size_t *out_len) {
    size_t r = 0;
    size_t w = 0;
    while (r < len) {
        uint8_t code = in[r++];
        if (code == 0 || r + (size_t)(code - 1) > len) {
            return -1;
        }
        for (uint8_t k = 1; k < code; k++) {
            uint8_t b = in[r++];
            if (b == 0 || w >= out_cap) {
                return -1;
            }
            out[w++] = b;
        }
        /* A block shorter than 254 data bytes implies a zero, except at the very end. */
        if (code != 0xFF && r < len) {
            if (w >= out_cap) {
                return -1;
            }
            out[w++] = 0;
        }
    }
    *out_len = w;
    return 0;
}
