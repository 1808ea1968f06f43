/* Benchmark entry points for the device's SecAgg and link crypto, run under unicorn
 * (tools/bench/secagg.py). Each calls the firmware's own code once on fixed inputs, so the
 * instruction counts are those of fedcore/secagg.c and the Monocypher/libsodium build. */
#include <stdint.h>
#include <string.h>

#include "fedcore/limits.h"
#include "fedcore/platform/crypto.h"
#include "fedcore/rng.h"
#include "fedcore/secagg.h"

static uint8_t sk[32] = {1, 2, 3}, pk[32], shared[32], key[32], nonce[12], buf[128], tag[16];
static uint32_t values[FEDCORE_MAX_PARAMS];
static uint8_t packed[4 * FEDCORE_MAX_PARAMS];
static uint8_t shares[FC_SECAGG_MAX_PEERS][FC_SECAGG_SHARE_LEN];

/* Stand-in for the port's device id (secagg.c asks; the benchmarks never use it). */
uint32_t fc_device_id(void) { return 1u; }

int bench_setup(void) {
    return fc_crypto_x25519_public(pk, sk); /* a valid peer key for the key agreement */
}

int bench_x25519_public(void) { return fc_crypto_x25519_public(pk, sk); }

int bench_x25519_shared(void) { return fc_crypto_x25519_shared(shared, sk, pk); }

int bench_hkdf(void) {
    return fc_crypto_hkdf_sha256(key, 32, buf, 4, shared, 32, buf, 31); /* a share key */
}

int bench_seal_share(void) {
    return fc_crypto_aead_seal(buf, tag, key, nonce, buf + 100, 12, buf, FC_SECAGG_SHARE_PLAIN_LEN);
}

int bench_open_share(void) {
    return fc_crypto_aead_open(buf, key, nonce, tag, buf + 100, 12, buf, FC_SECAGG_SHARE_PLAIN_LEN);
}

int bench_split(uint32_t t, uint32_t n) {
    fc_rng_t rng;
    fc_rng_seed(&rng, sk);
    fc_shamir_split(sk, t, n, &rng, shares);
    return 0;
}

int bench_mask(uint32_t n, uint32_t bits) {
    fc_secagg_apply_mask(values, n, sk, 1, bits);
    return 0;
}

int bench_pack(uint32_t n, uint32_t bits) {
    return (int)fc_secagg_pack(values, n, bits, packed);
}
