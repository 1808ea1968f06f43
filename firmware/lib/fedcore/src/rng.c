/* ChaCha20 keystream DRBG (see fedcore/rng.h). */
#include "fedcore/rng.h"

#include <string.h>

static uint32_t rotl32(uint32_t x, unsigned n) { return (x << n) | (x >> (32u - n)); }

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void store_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#define QUARTER(a, b, c, d)                                                                        \
    do {                                                                                           \
        a += b; d ^= a; d = rotl32(d, 16);                                                         \
        c += d; b ^= c; b = rotl32(b, 12);                                                         \
        a += b; d ^= a; d = rotl32(d, 8);                                                          \
        c += d; b ^= c; b = rotl32(b, 7);                                                          \
    } while (0)

/* RFC 8439 2.3: 20 rounds (10 column + diagonal double rounds), then add the input state. */
static void chacha20_words(const uint32_t in[16], uint32_t out[16])
{
    uint32_t x[16];
    memcpy(x, in, sizeof x);
    for (int i = 0; i < 10; i++) {
        QUARTER(x[0], x[4], x[8], x[12]);
        QUARTER(x[1], x[5], x[9], x[13]);
        QUARTER(x[2], x[6], x[10], x[14]);
        QUARTER(x[3], x[7], x[11], x[15]);
        QUARTER(x[0], x[5], x[10], x[15]);
        QUARTER(x[1], x[6], x[11], x[12]);
        QUARTER(x[2], x[7], x[8], x[13]);
        QUARTER(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; i++) {
        out[i] = x[i] + in[i];
    }
}

static void init_state(uint32_t st[16], const uint32_t key[8])
{
    st[0] = 0x61707865u; /* "expand 32-byte k" */
    st[1] = 0x3320646eu;
    st[2] = 0x79622d32u;
    st[3] = 0x6b206574u;
    memcpy(&st[4], key, 8 * sizeof(uint32_t));
}

void fc_chacha20_block(const uint8_t key[32], uint32_t counter, const uint8_t nonce[12],
                       uint8_t out[64])
{
    uint32_t k[8], st[16], ks[16];
    for (int i = 0; i < 8; i++) {
        k[i] = load_le32(key + 4 * i);
    }
    init_state(st, k);
    st[12] = counter;
    for (int i = 0; i < 3; i++) {
        st[13 + i] = load_le32(nonce + 4 * i);
    }
    chacha20_words(st, ks);
    for (int i = 0; i < 16; i++) {
        store_le32(out + 4 * i, ks[i]);
    }
}

void fc_rng_seed(fc_rng_t *rng, const uint8_t seed[32])
{
    for (int i = 0; i < 8; i++) {
        rng->key[i] = load_le32(seed + 4 * i);
    }
    rng->counter = 0;
    rng->used = 16;
    memset(rng->block, 0, sizeof rng->block);
}

void fc_rng_seed_u64(fc_rng_t *rng, uint64_t seed)
{
    uint8_t key[32] = {0};
    store_le32(key, (uint32_t)seed);
    store_le32(key + 4, (uint32_t)(seed >> 32));
    fc_rng_seed(rng, key);
}

static void refill(fc_rng_t *rng)
{
    uint32_t st[16];
    init_state(st, rng->key);
    st[12] = (uint32_t)rng->counter;
    st[13] = (uint32_t)(rng->counter >> 32);
    st[14] = 0;
    st[15] = 0;
    chacha20_words(st, rng->block);
    rng->counter++;
    rng->used = 0;
}

uint32_t fc_rng_u32(fc_rng_t *rng)
{
    if (rng->used >= 16) {
        refill(rng);
    }
    return rng->block[rng->used++];
}

uint64_t fc_rng_u64(fc_rng_t *rng)
{
    uint64_t lo = fc_rng_u32(rng);
    uint64_t hi = fc_rng_u32(rng);
    return lo | (hi << 32);
}

float fc_rng_uniform01(fc_rng_t *rng)
{
    return (float)(fc_rng_u32(rng) >> 8) * 0x1p-24f;
}

uint32_t fc_rng_below(fc_rng_t *rng, uint32_t n)
{
    if (n == 0) {
        return 0;
    }
    uint64_t m = (uint64_t)fc_rng_u32(rng) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        /* (2^32 - n) mod n: the count of products whose low half would bias the result. */
        uint32_t threshold = (uint32_t)(0u - n) % n;
        while (low < threshold) {
            m = (uint64_t)fc_rng_u32(rng) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

int fc_rng_bernoulli(fc_rng_t *rng, double p)
{
    uint64_t u = fc_rng_u64(rng);
    if (!(p > 0.0)) {
        return 0;
    }
    if (p >= 1.0) {
        return 1;
    }
    /* p * 2^64 is exact (power-of-two scaling) and < 2^64; the cast truncates. */
    uint64_t threshold = (uint64_t)(p * 18446744073709551616.0);
    return u < threshold;
}
