/* Writes the generated model array to stdout; exits 3 when it is not 16-byte aligned. */
#include <stdint.h>
#include <stdio.h>

#include "model_data.h"

int main(void) {
    if ((uintptr_t)fedhead_model_tflite % 16u != 0u) {
        return 3;
    }
    size_t written = fwrite(fedhead_model_tflite, 1, fedhead_model_tflite_len, stdout);
    return written == fedhead_model_tflite_len ? 0 : 1;
}
