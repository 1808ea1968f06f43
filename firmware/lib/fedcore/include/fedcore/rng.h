/* fedcore CSPRNG: a ChaCha20 (RFC 8439 block function) keystream generator.
 *
 * State: 256-bit key (the seed), 64-bit block counter (state words 12 and 13; words 14 and 15,
 * the nonce, are zero). Outputs are the keystream words in order, block 0 first, each block's
 * 16 little-endian words in order. The Python twin tools/fedref/rng.py produces the same stream.
 *
 * Seeding: the platform passes 32 bytes of real entropy (fc_entropy_fill). fc_rng_seed_u64 exists
 * for the TRAIN seed of test builds only (predictable by design).
 * No backtracking resistance: whoever reads the state can replay past outputs; the device never
 * exports it. */
#ifndef FEDCORE_RNG_H
#define FEDCORE_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t key[8];
    uint64_t counter;    /* next block to generate */
    uint32_t block[16];  /* current keystream block */
    uint8_t used;        /* words of block already returned (16 = empty) */
} fc_rng_t;

/* RFC 8439 section 2.3 block function: out = 64 keystream bytes for (key, counter, nonce). */
void fc_chacha20_block(const uint8_t key[32], uint32_t counter, const uint8_t nonce[12],
                       uint8_t out[64]);

/* Key = seed (little-endian words), counter = 0. */
void fc_rng_seed(fc_rng_t *rng, const uint8_t seed[32]);

/* Test builds: key = the 8 little-endian bytes of seed followed by 24 zero bytes. */
void fc_rng_seed_u64(fc_rng_t *rng, uint64_t seed);

/* Next keystream word. */
uint32_t fc_rng_u32(fc_rng_t *rng);

/* Two words: the first is the low half. */
uint64_t fc_rng_u64(fc_rng_t *rng);

/* Uniform on [0, 1) with resolution 2^-24 (exactly representable in float):
 * (fc_rng_u32 >> 8) * 2^-24. One word. */
float fc_rng_uniform01(fc_rng_t *rng);

/* Uniform integer in [0, n), n >= 1 (n = 0 returns 0), without modulo bias
 * (Lemire's multiply-and-reject: draws words until (u32 * n) mod 2^32 >= (2^32 - n) mod n). */
uint32_t fc_rng_below(fc_rng_t *rng, uint32_t n);

/* Bernoulli(p) for a double p: p <= 0 -> 0, p >= 1 -> 1, else u64 < floor(p * 2^64).
 * Always draws exactly one u64 (two words), so streams stay aligned whatever p is.
 * Exact whenever p * 2^64 is an integer (every float in [2^-40, 1)); otherwise off by < 2^-64. */
int fc_rng_bernoulli(fc_rng_t *rng, double p);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_RNG_H */
