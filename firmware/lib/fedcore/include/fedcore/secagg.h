/* Secure aggregation on the device (Bonawitz et al., CCS 2017), docs/PROTOCOL.md §7.
 *
 * Per round the device makes two ephemeral X25519 key pairs (c: encrypts the Shamir shares it
 * sends to peers through the server; s: agrees pairwise mask seeds) and a self-mask seed b.
 * It Shamir-shares s_sk and b (threshold t over GF(2^31 - 1), 3 bytes of secret per field
 * element) to every peer, encrypted with ChaCha20-Poly1305 under HKDF(X25519(c_sk, c_pk_v)).
 * Its upload is y = q + PRG(b) + sum_{v in U2} sign(u, v) PRG(s_uv) mod 2^bits_mod, PRG =
 * ChaCha20 keystream words (fedcore/rng.h) masked to bits_mod, s_uv = HKDF(X25519(s_sk_u,
 * s_pk_v)), sign = + when id_u < id_v. To unmask, it reveals the b-share of each survivor and
 * the s_sk-share of each dropped peer, never both for one peer, and only when at least t
 * survivors remain. All state is static and wiped when the next round starts. */
#ifndef FEDCORE_SECAGG_H
#define FEDCORE_SECAGG_H

#include <stddef.h>
#include <stdint.h>

#include "fedcore/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef FC_SECAGG_MAX_PEERS
#define FC_SECAGG_MAX_PEERS 16u
#endif
#define FC_SECAGG_PRIME 2147483647u /* 2^31 - 1 */
#define FC_SECAGG_CHUNKS 11u        /* ceil(32 / 3) field elements per 32-byte secret */
#define FC_SECAGG_SHARE_LEN (4u * FC_SECAGG_CHUNKS)
#define FC_SECAGG_SHARE_PLAIN_LEN (8u + 2u * FC_SECAGG_SHARE_LEN)   /* from, to, s, b */
#define FC_SECAGG_SHARE_CT_LEN (FC_SECAGG_SHARE_PLAIN_LEN + 16u)    /* + AEAD tag */

/* ---- Shamir sharing of 32-byte secrets over GF(2^31 - 1) (tested against tools/secagg) ---- */

/* Share for x = 1..n of a secret whose polynomial coefficients come from coeff_rng
 * (degree t - 1, coefficients uniform in [0, p) by fc_rng_below, chunk by chunk, coefficient
 * 1 first). shares[i] is FC_SECAGG_SHARE_LEN bytes (u32 LE per chunk) for x = i + 1. */
void fc_shamir_split(const uint8_t secret[32], unsigned t, unsigned n, fc_rng_t *coeff_rng,
                     uint8_t shares[][FC_SECAGG_SHARE_LEN]);

/* Reconstruct from k >= t shares with distinct nonzero xs; 0 on success. */
int fc_shamir_combine(const uint8_t shares[][FC_SECAGG_SHARE_LEN], const uint32_t *xs,
                      unsigned k, uint8_t secret[32]);

/* Add (sign +1) or subtract (-1) the mask PRG(seed) to n values mod 2^bits. */
void fc_secagg_apply_mask(uint32_t *values, size_t n, const uint8_t seed[32], int sign,
                          unsigned bits);

/* Pack n values of `bits` bits little-endian into a bit stream; returns bytes written. */
size_t fc_secagg_pack(const uint32_t *values, size_t n, unsigned bits, uint8_t *out);

/* Smallest modulus bits so that the sum of n signed q of q_bits never wraps. */
unsigned fc_secagg_min_bits(unsigned q_bits, unsigned n);

/* ---- the device's protocol steps: return 0 or a NACK code ---------------------------------- */

/* A released update the round may mask: its noised integers before saturation, mod 2^32
 * (fc_privatize_wrapped), so that the masked sum mod 2^b is the true noised sum mod 2^b
 * (docs/PRIVACY.md, "Modulus rule"); q_bits is the update's wire width (the modulus rule). */
typedef struct {
    uint32_t round;
    const uint8_t *wrapped; /* n_params little-endian uint32 */
    uint8_t q_bits;
    size_t n_params;
} fc_secagg_input_t;

uint8_t fc_secagg_setup(const uint8_t *p, size_t len, fc_rng_t *rng, uint8_t *out,
                        size_t *out_len);
uint8_t fc_secagg_peers(const uint8_t *p, size_t len, uint8_t *out, size_t *out_len);
uint8_t fc_secagg_shares_in(const uint8_t *p, size_t len, uint32_t *count);
uint8_t fc_secagg_mask(const uint8_t *p, size_t len, const fc_secagg_input_t *input,
                       uint8_t *out, size_t *out_len);
uint8_t fc_secagg_unmask(const uint8_t *p, size_t len, uint8_t *out, size_t *out_len);

/* Nonzero when round's update may leave the device only masked (UPDATE_GET is refused). */
int fc_secagg_guards(uint32_t round);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_SECAGG_H */
