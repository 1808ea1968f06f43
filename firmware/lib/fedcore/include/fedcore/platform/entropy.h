/* Porting contract: real entropy to seed fedcore's CSPRNG (privacy noise depends on it). */
#ifndef FEDCORE_PLATFORM_ENTROPY_H
#define FEDCORE_PLATFORM_ENTROPY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fill buf with len bytes of true entropy. Returns 0 on success, nonzero when the platform has
 * no entropy source yet (QEMU before the host sent SEED): the device then refuses TRAIN with
 * noise instead of using predictable noise. */
int fc_entropy_fill(uint8_t *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
