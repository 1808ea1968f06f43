/* Host timing of the generated backbone: stdin = N int8 windows; argv[1] = repetitions.
 * Prints microseconds per inference (monotonic clock, all windows x repetitions) and a
 * checksum of the outputs so the work cannot be optimized away. */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "backbone_ref/model.h"

int main(int argc, char **argv)
{
    const long reps = argc > 1 ? atol(argv[1]) : 100;
    const size_t len = (size_t)backbone_ref_input_len;
    size_t cap = 64, count = 0;
    int8_t *windows = malloc(cap * len);
    int8_t *out = malloc((size_t)backbone_ref_output_len);
    while (windows && out) {
        if (count == cap) {
            int8_t *grown = realloc(windows, 2 * cap * len);
            if (!grown) break;
            windows = grown;
            cap *= 2;
        }
        if (fread(windows + count * len, 1, len, stdin) != len) break;
        ++count;
    }
    if (!windows || !out || count == 0 || reps <= 0) {
        fprintf(stderr, "usage: %s REPS < windows\n", argv[0]);
        return 2;
    }
    long checksum = 0;
    struct timespec start, stop;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long r = 0; r < reps; ++r) {
        for (size_t i = 0; i < count; ++i) {
            backbone_embed_int8(windows + i * len, out);
            checksum += out[i % (size_t)backbone_ref_output_len];
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &stop);
    const double us = (double)(stop.tv_sec - start.tv_sec) * 1e6 +
                      (double)(stop.tv_nsec - start.tv_nsec) / 1e3;
    printf("%.4f %ld\n", us / (double)(reps * (long)count), checksum);
    free(windows);
    free(out);
    return 0;
}
