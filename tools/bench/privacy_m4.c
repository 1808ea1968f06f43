/* Entry points for fedcore's privatization built for Cortex-M4 and run under unicorn
 * (tools/bench/privacy.py for instruction counts, tests/unit/fedcore/test_conditional_rounding.py
 * for C-on-M4 against the Python twin). Arguments that are not 32-bit integers arrive through
 * memory; the calls are the firmware's own functions. */
#include <stdint.h>
#include <string.h>

#include "fedcore/privacy.h"
#include "fedcore/rng.h"

/* Layout shared with the Python side (little-endian, no padding before `bound2`). */
typedef struct {
    float scale;
    uint32_t n;
    double bound2;
    uint32_t seed;
    uint32_t runs;
} bench_round_args_t;

/* `runs` conditional roundings of x on one stream seeded with `seed`: per run the accepted
 * attempt, and the accepted integers (replayed as fc_privatize does) into q[run * n + i];
 * returns the stream's next word. */
uint32_t bench_round_conditional(const bench_round_args_t *a, const float *x, uint32_t *attempts,
                                 int64_t *q) {
    fc_rng_t rng;
    fc_rng_seed_u64(&rng, a->seed);
    for (uint32_t r = 0; r < a->runs; r++) {
        fc_rng_t replay;
        attempts[r] = fc_round_conditional(x, a->n, 1.0f, a->scale, a->bound2, &rng, &replay);
        for (uint32_t i = 0; i < a->n; i++) {
            q[r * a->n + i] = attempts[r] ? fc_stochastic_round(&replay, x[i], a->scale) : 0;
        }
    }
    return fc_rng_u32(&rng);
}

/* queries: count records of (f32 clip, f32 scale, u32 n); out: T and B (f64) for each. */
uint32_t bench_norm_bounds(const uint8_t *queries, uint32_t count, double *out) {
    for (uint32_t k = 0; k < count; k++) {
        float clip, scale;
        uint32_t n;
        memcpy(&clip, queries + 12u * k, 4);
        memcpy(&scale, queries + 12u * k + 4u, 4);
        memcpy(&n, queries + 12u * k + 8u, 4);
        out[2u * k] = fc_rounding_norm2_bound(clip, scale, n);
        out[2u * k + 1u] = fc_rounded_norm_bound(clip, scale, n);
    }
    return count;
}

/* One fc_privatize of n values with params, on a stream seeded with seed; returns its status. */
int bench_privatize(const float *delta, uint32_t n, const fc_privacy_params_t *params,
                    int32_t *out_q, uint32_t seed) {
    fc_rng_t rng;
    uint8_t flags = 0;
    fc_rng_seed_u64(&rng, seed);
    return fc_privatize(delta, n, params, &rng, out_q, &flags);
}
