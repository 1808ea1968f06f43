/* A small key -> blob table in static RAM, for ports without flash storage (QEMU) and as the
 * host port's copy of its state file. Not persistent by itself. */
#ifndef FEDHEAD_RAM_STORE_H
#define FEDHEAD_RAM_STORE_H

#include <stddef.h>
#include <stdint.h>

#define RAM_STORE_SLOTS 8 /* heads, identity, enrollment, and room for more */
#define RAM_STORE_KEY_LEN 16
#ifndef RAM_STORE_BLOB_CAP
#define RAM_STORE_BLOB_CAP 8192 /* a release blob: ledger, wire q and the wrapped q of 650 params */
#endif

/* 0 on success; -1 when the key is too long, the blob too big or every slot is taken. */
int ram_store_put(const char *key, const uint8_t *data, size_t len);

/* 0 and *len on success; -1 when the key is absent or the blob does not fit in cap. */
int ram_store_get(const char *key, uint8_t *buf, size_t cap, size_t *len);

/* Forget every blob (the fuzz harness starts each input from empty storage). */
void ram_store_clear(void);

#endif
