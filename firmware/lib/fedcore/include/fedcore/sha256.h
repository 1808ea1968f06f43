/* SHA-256 (FIPS 180-4), small and portable: identifies model heads on the link. */
#ifndef FEDCORE_SHA256_H
#define FEDCORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FC_SHA256_LEN 32u

typedef struct {
    uint32_t state[8];
    uint64_t total_len;
    uint8_t block[64];
    size_t block_len;
} fc_sha256_t;

void fc_sha256_init(fc_sha256_t *ctx);
void fc_sha256_update(fc_sha256_t *ctx, const uint8_t *data, size_t len);
void fc_sha256_final(fc_sha256_t *ctx, uint8_t digest[FC_SHA256_LEN]);

/* One-shot digest of a buffer. */
void fc_sha256(const uint8_t *data, size_t len, uint8_t digest[FC_SHA256_LEN]);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_SHA256_H */
