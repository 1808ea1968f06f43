/* CRC-32 as in IEEE 802.3 and zlib (reflected poly 0xEDB88320, init and final xor 0xFFFFFFFF). */
#ifndef FEDCORE_CRC32_H
#define FEDCORE_CRC32_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Continue a CRC like zlib.crc32(data, crc): start with crc = 0, feed pieces in order. */
uint32_t fc_crc32_update(uint32_t crc, const uint8_t *data, size_t len);

static inline uint32_t fc_crc32(const uint8_t *data, size_t len) {
    return fc_crc32_update(0u, data, len);
}

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_CRC32_H */
