/* Ring buffer of labelled embeddings (see fedcore/examples.h). */
#include "fedcore/examples.h"

#include <math.h>
#include <string.h>

int fc_examples_init(fc_examples_t *ex, uint16_t d, uint16_t c, uint16_t capacity)
{
    if (d < 1 || d > FEDCORE_MAX_D || c < 2 || c > FEDCORE_MAX_C) {
        return FC_ERR_SHAPE;
    }
    if (capacity > FEDCORE_MAX_EXAMPLES) {
        return FC_ERR_PARAM;
    }
    ex->d = d;
    ex->c = c;
    ex->capacity = capacity ? capacity : (uint16_t)FEDCORE_MAX_EXAMPLES;
    fc_examples_clear(ex);
    return FC_OK;
}

int fc_examples_add(fc_examples_t *ex, const float *embedding, uint8_t label)
{
    if (label >= ex->c) {
        return FC_ERR_PARAM;
    }
    for (uint16_t j = 0; j < ex->d; j++) {
        if (!isfinite(embedding[j])) {
            return FC_ERR_NONFINITE;
        }
    }
    memcpy(&ex->emb[(size_t)ex->next * ex->d], embedding, (size_t)ex->d * sizeof(float));
    ex->label[ex->next] = label;
    ex->next = (uint16_t)((ex->next + 1u) % ex->capacity);
    if (ex->count < ex->capacity) {
        ex->count++;
    }
    return FC_OK;
}

void fc_examples_clear(fc_examples_t *ex)
{
    ex->count = 0;
    ex->next = 0;
}

const float *fc_examples_get(const fc_examples_t *ex, uint16_t i, uint8_t *label)
{
    /* The oldest example sits at `next` once the buffer has wrapped, else at slot 0. */
    uint16_t oldest = ex->count < ex->capacity ? 0 : ex->next;
    uint16_t slot = (uint16_t)((oldest + (uint32_t)i) % ex->capacity);
    if (label) {
        *label = ex->label[slot];
    }
    return &ex->emb[(size_t)slot * ex->d];
}
