/* Porting contract: persistent storage of small named blobs (heads). */
#ifndef FEDCORE_PLATFORM_STORAGE_H
#define FEDCORE_PLATFORM_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* key: a short name (<= 15 chars, ESP-IDF NVS limit). Save replaces the blob atomically: after a
 * power loss either the old or the new blob is read back, never a mix. 0 on success. */
int fc_storage_save(const char *key, const uint8_t *data, size_t len);

/* Load the blob saved under key into buf. Returns 0 and sets *len on success, nonzero when
 * there is no such blob or it does not fit in cap. */
int fc_storage_load(const char *key, uint8_t *buf, size_t cap, size_t *len);

/* Nonzero when blobs survive a restart (INFO capability bit4). */
int fc_storage_persistent(void);

#ifdef __cplusplus
}
#endif

#endif
