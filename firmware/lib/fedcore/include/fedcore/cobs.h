/* Consistent Overhead Byte Stuffing (COBS): removes every 0x00 so that 0x00 can end a frame. */
#ifndef FEDCORE_COBS_H
#define FEDCORE_COBS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Worst-case encoded size of n input bytes (without the 0x00 delimiter). */
#define FC_COBS_MAX_ENCODED(n) ((n) + (n) / 254u + 1u)

/* Encode len bytes into out (no delimiter written). Returns the encoded length, or 0 when out_cap
 * is too small. */
size_t fc_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);

/* Decode len encoded bytes (no delimiter). in and out may be the same buffer (decoding never
 * writes ahead of reading). Returns 0 and sets *out_len on success; -1 on malformed input (a
 * 0x00 inside, a code byte pointing past the end) or when out_cap is too small. */
int fc_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap, size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_COBS_H */
