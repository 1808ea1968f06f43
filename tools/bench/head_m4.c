/* Benchmark entry points for the head training of fedcore, run under unicorn (tools/bench/head.py).
 * Fills the examples buffer with deterministic embeddings, then trains with the same call the
 * device makes (fc_head_train), so the counts are those of the firmware's code. */
#include <stdint.h>

#include "fedcore/examples.h"
#include "fedcore/head.h"
#include "fedcore/rng.h"

static fc_head_t head;
static fc_examples_t examples;
static fc_train_workspace_t workspace;
static fc_rng_t rng;

int bench_head_setup(uint32_t d, uint32_t c, uint32_t n) {
    float emb[FEDCORE_MAX_D];
    if (fc_head_init(&head, (uint16_t)d, (uint16_t)c, 0, 0) != 0) return -1;
    if (fc_examples_init(&examples, (uint16_t)d, (uint16_t)c, 0) != 0) return -2;
    fc_rng_seed_u64(&rng, 1);
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < d; j++) emb[j] = fc_rng_uniform01(&rng) - 0.5f;
        if (fc_examples_add(&examples, emb, (uint8_t)(i % c)) != 0) return -3;
    }
    return 0;
}

int bench_head_train(uint32_t epochs) {
    const fc_train_params_t params = {.lr = 0.1f, .epochs = (uint16_t)epochs, .batch = 8,
                                      .momentum = 0.0f, .weight_decay = 0.0f,
                                      .example_clip = 0.0f};
    fc_train_result_t result;
    return fc_head_train(&head, &examples, &params, &rng, &workspace, &result);
}
