/* fedcore/platform/crypto.h for the host and QEMU ports: thin calls into vetted libraries.
 *
 * X25519 and ChaCha20-Poly1305 IETF come from Monocypher 4.0.3, HKDF-SHA-256 from libsodium;
 * both are extracted at set-up time from pinned PyPI source distributions into
 * build/third_party/ (boards/scripts/third_party.py) and never committed. Nothing here computes
 * a primitive itself. */
#include <string.h>

#include "crypto_kdf_hkdf_sha256.h"
#include "fedcore/platform/crypto.h"
#include "monocypher.h"

int fc_crypto_x25519_public(uint8_t public_key[FC_X25519_LEN],
                            const uint8_t secret_key[FC_X25519_LEN]) {
    crypto_x25519_public_key(public_key, secret_key);
    return 0;
}

int fc_crypto_x25519_shared(uint8_t shared[FC_X25519_LEN], const uint8_t secret_key[FC_X25519_LEN],
                            const uint8_t peer_public[FC_X25519_LEN]) {
    static const uint8_t kZero[FC_X25519_LEN] = {0};
    crypto_x25519(shared, secret_key, peer_public);
    if (crypto_verify32(shared, kZero) == 0) {
        return -1; /* low-order peer point: the result is public */
    }
    return 0;
}

int fc_crypto_aead_seal(uint8_t *cipher, uint8_t tag[FC_AEAD_TAG_LEN],
                        const uint8_t key[FC_AEAD_KEY_LEN], const uint8_t nonce[FC_AEAD_NONCE_LEN],
                        const uint8_t *ad, size_t ad_len, const uint8_t *plain, size_t len) {
    crypto_aead_ctx ctx;
    crypto_aead_init_ietf(&ctx, key, nonce);
    crypto_aead_write(&ctx, cipher, tag, ad, ad_len, plain, len);
    crypto_wipe(&ctx, sizeof ctx);
    return 0;
}

int fc_crypto_aead_open(uint8_t *plain, const uint8_t key[FC_AEAD_KEY_LEN],
                        const uint8_t nonce[FC_AEAD_NONCE_LEN], const uint8_t tag[FC_AEAD_TAG_LEN],
                        const uint8_t *ad, size_t ad_len, const uint8_t *cipher, size_t len) {
    crypto_aead_ctx ctx;
    crypto_aead_init_ietf(&ctx, key, nonce);
    /* Monocypher checks the tag before it decrypts: on failure plain is not written. */
    int rc = crypto_aead_read(&ctx, plain, tag, ad, ad_len, cipher, len);
    crypto_wipe(&ctx, sizeof ctx);
    return rc == 0 ? 0 : -1;
}

int fc_crypto_hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
                          const uint8_t *ikm, size_t ikm_len, const uint8_t *info,
                          size_t info_len) {
    static const uint8_t kEmpty[1] = {0}; /* libsodium wants non-NULL pointers */
    uint8_t prk[crypto_kdf_hkdf_sha256_KEYBYTES];
    if (out_len == 0 || out_len > FC_HKDF_MAX_OUT) {
        return -1;
    }
    int rc = crypto_kdf_hkdf_sha256_extract(prk, salt_len ? salt : kEmpty, salt_len,
                                            ikm_len ? ikm : kEmpty, ikm_len);
    if (rc == 0) {
        rc = crypto_kdf_hkdf_sha256_expand(out, out_len, (const char *)(info_len ? info : kEmpty),
                                           info_len, prk);
    }
    crypto_wipe(prk, sizeof prk);
    return rc == 0 ? 0 : -1;
}

void fc_crypto_wipe(void *secret, size_t len) {
    crypto_wipe(secret, len);
}
