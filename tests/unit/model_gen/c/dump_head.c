/* Prints the bit pattern of every generated head float: W row-major, then b. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "head_init.h"

static void print_bits(const float *values, size_t count) {
    for (size_t i = 0; i < count; ++i) {
        uint32_t bits;
        memcpy(&bits, &values[i], sizeof bits);
        printf("%08" PRIx32 "\n", bits);
    }
}

int main(void) {
    print_bits(fedhead_head_init_w, (size_t)FEDHEAD_EMBED_DIM * FEDHEAD_NUM_CLASSES);
    print_bits(fedhead_head_init_b, FEDHEAD_NUM_CLASSES);
    return 0;
}
