/* The few libsodium utilities its HKDF/HMAC/SHA-256 files call, mapped onto Monocypher so the
 * firmware needs no other libsodium file (utils.c pulls in mlock, mprotect and more).
 * None of these is a primitive: wiping, constant-time compare, and a trap for the key
 * generators fedcore never calls (keys come from fc_entropy_fill). */
#include <stddef.h>
#include <stdint.h>

#include "monocypher.h"

void sodium_memzero(void *pnt, size_t len);
int sodium_memcmp(const void *b1, const void *b2, size_t len);
int crypto_verify_32(const unsigned char *x, const unsigned char *y);
void randombytes_buf(void *buf, size_t size);

void sodium_memzero(void *pnt, size_t len) {
    crypto_wipe(pnt, len);
}

int sodium_memcmp(const void *b1, const void *b2, size_t len) {
    const uint8_t *a = b1;
    const uint8_t *b = b2;
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0 ? 0 : -1;
}

int crypto_verify_32(const unsigned char *x, const unsigned char *y) {
    return crypto_verify32(x, y);
}

void randombytes_buf(void *buf, size_t size) {
    (void)buf;
    (void)size;
    __builtin_trap(); /* only libsodium's *_keygen call it, and fedcore never does */
}
