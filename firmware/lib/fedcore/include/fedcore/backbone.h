/* The backbone contract: one header, several backends.
 *
 * backbone_ref  generated C over firmware/lib/backbone_ref kernels (host, QEMU, any board)
 * backbone_tflm tflite::MicroInterpreter over the generated model array (ESP32)
 *
 * Exactly one backend is linked into a firmware image.
 */
#ifndef FEDCORE_BACKBONE_H
#define FEDCORE_BACKBONE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Prepare the backend (allocate tensors, check the model). 0 on success. Idempotent. */
int backbone_init(void);

/* input: FEDHEAD_INPUT_LEN int8 values, quantized with FEDHEAD_INPUT_SCALE / _ZERO_POINT.
 * embedding: FEDHEAD_EMBED_DIM floats, dequantized from the int8 embedding tensor.
 * Returns 0 on success, nonzero when the backend cannot run. */
int backbone_embed(const int8_t *input, float *embedding);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_BACKBONE_H */
