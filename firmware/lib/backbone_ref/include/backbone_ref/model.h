/* What a generated backbone_ref_model.c defines besides fedcore/backbone.h. */
#ifndef BACKBONE_REF_MODEL_H
#define BACKBONE_REF_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

extern const int32_t backbone_ref_input_len;   /* int8 values of one input window */
extern const int32_t backbone_ref_output_len;  /* D: int8 values of the embedding */
extern const int32_t backbone_ref_arena_bytes; /* planned activation memory */
extern const float backbone_ref_output_scale;
extern const int32_t backbone_ref_output_zero_point;

extern const int32_t backbone_ref_layer_count; /* kernel calls (stages) of the graph */

/* Run only stage `index` on the arena as the previous stages left it (per-layer benchmarks);
 * 0 on success, -1 for an index out of range. */
int backbone_ref_run_layer(int32_t index, const int8_t *input);

/* The quantized embedding exactly as TFLM's output tensor holds it. 0 on success. */
int backbone_embed_int8(const int8_t *input, int8_t *embedding);

#ifdef __cplusplus
}
#endif

#endif /* BACKBONE_REF_MODEL_H */
