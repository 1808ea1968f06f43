/* Key -> blob table in static RAM (see ram_store.h). */
#include "ram_store.h"

#include <string.h>

typedef struct {
    char key[RAM_STORE_KEY_LEN];
    size_t len;
    uint8_t data[RAM_STORE_BLOB_CAP];
} slot_t;

static slot_t slots[RAM_STORE_SLOTS];

static slot_t *find(const char *key) {
    for (size_t i = 0; i < RAM_STORE_SLOTS; i++) {
        if (slots[i].key[0] != '\0' && strcmp(slots[i].key, key) == 0) {
            return &slots[i];
        }
    }
    return NULL;
}

int ram_store_put(const char *key, const uint8_t *data, size_t len) {
    size_t key_len = strlen(key);
    if (key_len == 0 || key_len >= RAM_STORE_KEY_LEN || len > RAM_STORE_BLOB_CAP) {
        return -1;
    }
    slot_t *slot = find(key);
    for (size_t i = 0; slot == NULL && i < RAM_STORE_SLOTS; i++) {
        if (slots[i].key[0] == '\0') {
            slot = &slots[i];
        }
    }
    if (slot == NULL) {
        return -1;
    }
    /* Single-threaded firmware: nothing reads the slot while it is rewritten. */
    memcpy(slot->key, key, key_len + 1);
    memcpy(slot->data, data, len);
    slot->len = len;
    return 0;
}

void ram_store_clear(void) { memset(slots, 0, sizeof slots); }

int ram_store_get(const char *key, uint8_t *buf, size_t cap, size_t *len) {
    const slot_t *slot = find(key);
    if (slot == NULL || slot->len > cap) {
        return -1;
    }
    memcpy(buf, slot->data, slot->len);
    *len = slot->len;
    return 0;
}
