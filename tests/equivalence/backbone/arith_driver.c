/* stdin: int32 triples (x, multiplier, shift); stdout per triple: int32 srdhm(x, multiplier),
 * rounding_divide_by_pot(x, shift & 31), multiply_by_quantized_multiplier(x, multiplier, shift). */
#include <stdint.h>
#include <stdio.h>

#include "backbone_ref/kernels.h"

int main(void)
{
    int32_t in[3];
    while (fread(in, sizeof(int32_t), 3, stdin) == 3) {
        const int32_t out[3] = {
            br_srdhm(in[0], in[1]),
            br_rounding_divide_by_pot(in[0], in[2] & 31),
            br_multiply_by_quantized_multiplier(in[0], in[1], in[2]),
        };
        fwrite(out, sizeof(int32_t), 3, stdout);
    }
    return 0;
}
