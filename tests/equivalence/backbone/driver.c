/* Test driver: stdin = N int8 windows back to back; stdout = per window the int8 embedding
 * (backbone_embed_int8) followed by the float embedding (backbone_embed), raw bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "backbone_ref/model.h"
#include "fedcore/backbone.h"

int main(void)
{
    int8_t *input = malloc((size_t)backbone_ref_input_len);
    int8_t *q = malloc((size_t)backbone_ref_output_len);
    float *f = malloc(sizeof(float) * (size_t)backbone_ref_output_len);
    int status = (input && q && f && backbone_init() == 0) ? 0 : 2;
    while (status == 0 &&
           fread(input, 1, (size_t)backbone_ref_input_len, stdin) == (size_t)backbone_ref_input_len) {
        if (backbone_embed_int8(input, q) != 0 || backbone_embed(input, f) != 0) {
            status = 3;
            break;
        }
        fwrite(q, 1, (size_t)backbone_ref_output_len, stdout);
        fwrite(f, sizeof(float), (size_t)backbone_ref_output_len, stdout);
    }
    free(input);
    free(q);
    free(f);
    return status;
}
