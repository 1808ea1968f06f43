/* Bounded ring buffer of labelled embeddings (embedding float[d], label) used for training.
 * Raw sensor windows are never stored: only the backbone's output. When full, the oldest
 * example is overwritten. Storage is static inside the struct (no heap). */
#ifndef FEDCORE_EXAMPLES_H
#define FEDCORE_EXAMPLES_H

#include <stddef.h>
#include <stdint.h>

#include "fedcore/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint16_t d;        /* embedding length */
    uint16_t c;        /* number of classes (labels must be < c) */
    uint16_t capacity; /* <= FEDCORE_MAX_EXAMPLES */
    uint16_t count;    /* examples held, <= capacity */
    uint16_t next;     /* slot the next example is written to */
    uint8_t label[FEDCORE_MAX_EXAMPLES];
    float emb[FEDCORE_MAX_EXAMPLES * FEDCORE_MAX_D]; /* slot i at emb[i * d] */
} fc_examples_t;

/* Empty buffer for d-dim embeddings, c classes, capacity slots (0 = FEDCORE_MAX_EXAMPLES).
 * FC_ERR_SHAPE if d or c is out of range, FC_ERR_PARAM if capacity > FEDCORE_MAX_EXAMPLES. */
int fc_examples_init(fc_examples_t *ex, uint16_t d, uint16_t c, uint16_t capacity);

/* Append (copy) one example; overwrites the oldest when full.
 * FC_ERR_PARAM if label >= c, FC_ERR_NONFINITE if any value is NaN/Inf (nothing stored). */
int fc_examples_add(fc_examples_t *ex, const float *embedding, uint8_t label);

/* Forget every example. */
void fc_examples_clear(fc_examples_t *ex);

static inline uint16_t fc_examples_count(const fc_examples_t *ex) { return ex->count; }

/* The i-th oldest example (0 = oldest), i < count. Returns the embedding and writes the label. */
const float *fc_examples_get(const fc_examples_t *ex, uint16_t i, uint8_t *label);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_EXAMPLES_H */
