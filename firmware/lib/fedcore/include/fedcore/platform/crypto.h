/* Porting contract: the cryptographic primitives fedcore builds on, from a vetted library.
 *
 * fedcore never implements these itself. Host and QEMU ports implement them with Monocypher
 * (X25519, ChaCha20-Poly1305) and libsodium's HKDF-SHA-256, both extracted at set-up time from
 * PyPI source distributions (boards/scripts/third_party.py, firmware/ports/common/crypto_monocypher.c);
 * the ESP32 port with ESP-IDF's mbedTLS (firmware/ports/esp32/crypto_mbedtls.c). The Python twin
 * uses `cryptography` (tools/link/crypto.py); tests check all of them byte for byte against the
 * RFC 7748, RFC 8439 and RFC 5869 vectors and against each other. */
#ifndef FEDCORE_PLATFORM_CRYPTO_H
#define FEDCORE_PLATFORM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FC_X25519_LEN 32u    /* secret key, public key and shared secret */
#define FC_AEAD_KEY_LEN 32u
#define FC_AEAD_NONCE_LEN 12u /* IETF ChaCha20-Poly1305 (RFC 8439) */
#define FC_AEAD_TAG_LEN 16u
#define FC_HKDF_MAX_OUT (255u * 32u)

/* X25519 (RFC 7748) public key of a 32-byte secret (clamped by X25519 itself). 0 on success. */
int fc_crypto_x25519_public(uint8_t public_key[FC_X25519_LEN],
                            const uint8_t secret_key[FC_X25519_LEN]);

/* X25519 shared secret. Returns nonzero (and a zeroed out) when the result is all zeros, i.e.
 * the peer sent a low-order point: such a "shared" secret is known to everyone. */
int fc_crypto_x25519_shared(uint8_t shared[FC_X25519_LEN], const uint8_t secret_key[FC_X25519_LEN],
                            const uint8_t peer_public[FC_X25519_LEN]);

/* ChaCha20-Poly1305 IETF seal: cipher (len bytes, may equal plain) and a 16-byte tag over
 * ad and the cipher text. 0 on success. */
int fc_crypto_aead_seal(uint8_t *cipher, uint8_t tag[FC_AEAD_TAG_LEN],
                        const uint8_t key[FC_AEAD_KEY_LEN], const uint8_t nonce[FC_AEAD_NONCE_LEN],
                        const uint8_t *ad, size_t ad_len, const uint8_t *plain, size_t len);

/* Open: 0 and the plain text when the tag verifies; nonzero otherwise, and plain then holds no
 * plain text (Monocypher leaves it untouched, mbedTLS zeroes it). */
int fc_crypto_aead_open(uint8_t *plain, const uint8_t key[FC_AEAD_KEY_LEN],
                        const uint8_t nonce[FC_AEAD_NONCE_LEN], const uint8_t tag[FC_AEAD_TAG_LEN],
                        const uint8_t *ad, size_t ad_len, const uint8_t *cipher, size_t len);

/* HKDF-SHA-256 (RFC 5869): extract with salt (may be empty), expand with info into out_len
 * bytes (<= FC_HKDF_MAX_OUT). 0 on success. */
int fc_crypto_hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
                          const uint8_t *ikm, size_t ikm_len, const uint8_t *info,
                          size_t info_len);

/* Erase a secret so the compiler cannot drop the store. */
void fc_crypto_wipe(void *secret, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_PLATFORM_CRYPTO_H */
