/* Prints the generated model configuration as key=value lines. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "model_config.h"

static uint32_t float_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

int main(void) {
    static const char *const labels[] = FEDHEAD_LABELS;
    static const unsigned char sha[] = FEDHEAD_MODEL_SHA256_BYTES;
    printf("api=%d\ntask=%s\n", FEDHEAD_GENERATED_API, FEDHEAD_TASK);
    printf("embed_dim=%d\nnum_classes=%d\n", FEDHEAD_EMBED_DIM, FEDHEAD_NUM_CLASSES);
    printf("input_len=%d\nshape=%d,%d,%d\n", FEDHEAD_INPUT_LEN, FEDHEAD_INPUT_SHAPE_H,
           FEDHEAD_INPUT_SHAPE_W, FEDHEAD_INPUT_SHAPE_C);
    printf("input_scale_bits=%08" PRIx32 "\ninput_zero_point=%d\n",
           float_bits(FEDHEAD_INPUT_SCALE), FEDHEAD_INPUT_ZERO_POINT);
    printf("embed_scale_bits=%08" PRIx32 "\nembed_zero_point=%d\n",
           float_bits(FEDHEAD_EMBED_SCALE), FEDHEAD_EMBED_ZERO_POINT);
    printf("arena=%d\nsha_hex=%s\nsha_bytes=", FEDHEAD_ARENA_BYTES, FEDHEAD_MODEL_SHA256_HEX);
    for (size_t i = 0; i < sizeof sha; ++i) {
        printf("%02x", sha[i]);
    }
    printf("\nlabels=");
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; ++i) {
        printf("%s%s", i ? "|" : "", labels[i]);
    }
    printf("\n");
    return 0;
}
