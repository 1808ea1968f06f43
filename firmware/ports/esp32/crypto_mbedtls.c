/* fedcore/platform/crypto.h on ESP-IDF's own mbedTLS (3.x): thin calls, no primitive here.
 *
 * Not compiled in this repository's CI (no ESP-IDF toolchain here): written against the
 * mbedTLS 3 API (ecp.h, chachapoly.h, hkdf.h) as ESP-IDF 5 ships it. It needs
 * CONFIG_MBEDTLS_CHACHA20_C, CONFIG_MBEDTLS_POLY1305_C, CONFIG_MBEDTLS_CHACHAPOLY_C and
 * CONFIG_MBEDTLS_HKDF_C (boards/esp32/sdkconfig.defaults) and the `mbedtls` component.
 * On hardware, tests/hil should run tests/unit/crypto's vectors through the device before
 * anything else relies on it. */
#include <string.h>

#include "esp_random.h"
#include "fedcore/platform/crypto.h"
#include "mbedtls/chachapoly.h"
#include "mbedtls/constant_time.h"
#include "mbedtls/ecp.h"
#include "mbedtls/hkdf.h"
#include "mbedtls/md.h"
#include "mbedtls/platform_util.h"

/* mbedTLS 3 blinds scalar multiplications with an RNG it insists on. */
static int blinding_rng(void *ctx, unsigned char *buf, size_t len) {
    (void)ctx;
    esp_fill_random(buf, len);
    return 0;
}

/* out = X25519(secret, u): mbedtls_ecp_read_key clamps the scalar as RFC 7748 asks, and the
 * Montgomery point format is the 32-byte little-endian u coordinate. */
static int x25519(uint8_t out[FC_X25519_LEN], const uint8_t secret[FC_X25519_LEN],
                  const uint8_t u[FC_X25519_LEN]) {
    mbedtls_ecp_keypair key;
    mbedtls_ecp_point peer, result;
    size_t olen = 0;
    mbedtls_ecp_keypair_init(&key);
    mbedtls_ecp_point_init(&peer);
    mbedtls_ecp_point_init(&result);
    int rc = mbedtls_ecp_read_key(MBEDTLS_ECP_DP_CURVE25519, &key, secret, FC_X25519_LEN);
    const mbedtls_ecp_group *grp = &key.MBEDTLS_PRIVATE(grp);
    if (rc == 0) {
        rc = mbedtls_ecp_point_read_binary(grp, &peer, u, FC_X25519_LEN);
    }
    if (rc == 0) {
        rc = mbedtls_ecp_mul((mbedtls_ecp_group *)grp, &result, &key.MBEDTLS_PRIVATE(d), &peer,
                             blinding_rng, NULL);
    }
    if (rc == 0) {
        rc = mbedtls_ecp_point_write_binary(grp, &result, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, out,
                                            FC_X25519_LEN);
    }
    mbedtls_ecp_point_free(&result);
    mbedtls_ecp_point_free(&peer);
    mbedtls_ecp_keypair_free(&key);
    return rc == 0 && olen == FC_X25519_LEN ? 0 : -1;
}

int fc_crypto_x25519_public(uint8_t public_key[FC_X25519_LEN],
                            const uint8_t secret_key[FC_X25519_LEN]) {
    static const uint8_t kBasePoint[FC_X25519_LEN] = {9};
    return x25519(public_key, secret_key, kBasePoint);
}

int fc_crypto_x25519_shared(uint8_t shared[FC_X25519_LEN], const uint8_t secret_key[FC_X25519_LEN],
                            const uint8_t peer_public[FC_X25519_LEN]) {
    static const uint8_t kZero[FC_X25519_LEN] = {0};
    if (x25519(shared, secret_key, peer_public) != 0 ||
        mbedtls_ct_memcmp(shared, kZero, FC_X25519_LEN) == 0) {
        memset(shared, 0, FC_X25519_LEN);
        return -1; /* mbedTLS refuses or yields zero for low-order points: refuse both ways */
    }
    return 0;
}

int fc_crypto_aead_seal(uint8_t *cipher, uint8_t tag[FC_AEAD_TAG_LEN],
                        const uint8_t key[FC_AEAD_KEY_LEN], const uint8_t nonce[FC_AEAD_NONCE_LEN],
                        const uint8_t *ad, size_t ad_len, const uint8_t *plain, size_t len) {
    mbedtls_chachapoly_context ctx;
    mbedtls_chachapoly_init(&ctx);
    int rc = mbedtls_chachapoly_setkey(&ctx, key);
    if (rc == 0) {
        rc = mbedtls_chachapoly_encrypt_and_tag(&ctx, len, nonce, ad, ad_len, plain, cipher, tag);
    }
    mbedtls_chachapoly_free(&ctx);
    return rc == 0 ? 0 : -1;
}

int fc_crypto_aead_open(uint8_t *plain, const uint8_t key[FC_AEAD_KEY_LEN],
                        const uint8_t nonce[FC_AEAD_NONCE_LEN], const uint8_t tag[FC_AEAD_TAG_LEN],
                        const uint8_t *ad, size_t ad_len, const uint8_t *cipher, size_t len) {
    mbedtls_chachapoly_context ctx;
    mbedtls_chachapoly_init(&ctx);
    int rc = mbedtls_chachapoly_setkey(&ctx, key);
    if (rc == 0) {
        /* zeroes plain itself when the tag does not verify */
        rc = mbedtls_chachapoly_auth_decrypt(&ctx, len, nonce, ad, ad_len, tag, cipher, plain);
    }
    mbedtls_chachapoly_free(&ctx);
    return rc == 0 ? 0 : -1;
}

int fc_crypto_hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
                          const uint8_t *ikm, size_t ikm_len, const uint8_t *info,
                          size_t info_len) {
    if (out_len == 0 || out_len > FC_HKDF_MAX_OUT) {
        return -1;
    }
    const mbedtls_md_info_t *sha256 = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    return mbedtls_hkdf(sha256, salt, salt_len, ikm, ikm_len, info, info_len, out, out_len) == 0
               ? 0
               : -1;
}

void fc_crypto_wipe(void *secret, size_t len) {
    mbedtls_platform_zeroize(secret, len);
}
