/* Device identity, enrollment and the authenticated link: see fedcore/auth.h and
 * docs/PROTOCOL.md §6. Every primitive comes from fedcore/platform/crypto.h. */
#include "fedcore/auth.h"

#include <string.h>

#include "fedcore/platform/clock.h"
#include "fedcore/platform/crypto.h"
#include "fedcore/platform/device_id.h"
#include "fedcore/platform/storage.h"
#include "fedcore/profile.h"
#include "fedcore/protocol.h"

#define REPLAY_PROFILE FC_PROFILE_IS_REPLAY

#define STORAGE_KEY_IDENTITY "fh_identity"
#define STORAGE_KEY_ENROLLED "fh_enrolled"
#define STORAGE_KEY_BOOTS "fh_boots"
#define ENROLLED_LEN (FC_X25519_LEN + 1u) /* server public key, key_id */
#define AD_LEN (FC_HEADER_LEN + 8u)       /* header, counter, reserved */

static const char kLabelH2D[] = "fedhead link v1 host->device";
static const char kLabelD2H[] = "fedhead link v1 device->host";

static struct {
    int have_identity;
    uint8_t device_sk[FC_X25519_LEN];
    uint8_t device_pk[FC_X25519_LEN];
    int enrolled;
    uint8_t key_id;
    uint8_t server_pk[FC_X25519_LEN];
    int have_nonce;
    uint8_t session_nonce[FC_SESSION_NONCE_LEN];
    int have_keys;
    uint8_t key_h2d[FC_AEAD_KEY_LEN];
    uint8_t key_d2h[FC_AEAD_KEY_LEN];
    uint32_t rx_counter; /* last host->device counter accepted */
    uint32_t tx_counter; /* last device->host counter sent */
    uint32_t rejected_required, rejected_tag, rejected_replay, rejected_key;
    int power_on;
    uint32_t boot_ms;
    int request_authenticated;
} st;

static uint8_t plain[FC_MAX_PAYLOAD]; /* the decrypted payload of the current request */

/* ---- keys --------------------------------------------------------------------------------- */

static void random_bytes(fc_rng_t *rng, uint8_t *out, size_t len) {
    for (size_t i = 0; i < len; i += 4) {
        uint32_t w = fc_rng_u32(rng);
        for (size_t k = 0; k < 4 && i + k < len; k++) {
            out[i + k] = (uint8_t)(w >> (8u * k));
        }
    }
}

static void make_identity(fc_rng_t *rng) {
    random_bytes(rng, st.device_sk, FC_X25519_LEN);
    if (fc_storage_save(STORAGE_KEY_IDENTITY, st.device_sk, FC_X25519_LEN) != 0) {
        fc_crypto_wipe(st.device_sk, FC_X25519_LEN);
        return; /* no identity rather than one that changes at every boot */
    }
    st.have_identity = fc_crypto_x25519_public(st.device_pk, st.device_sk) == 0;
}

static int derive_direction(const uint8_t shared[FC_X25519_LEN], const char *label,
                            uint8_t key[FC_AEAD_KEY_LEN]) {
    /* key_id too: re-enrolling an earlier server key in the same boot gives new keys. */
    uint8_t info[sizeof kLabelH2D - 1u + 5u + 2u * FC_X25519_LEN];
    size_t n = strlen(label);
    memcpy(info, label, n);
    fc_put_u32(info + n, fc_device_id());
    info[n + 4u] = st.key_id;
    memcpy(info + n + 5u, st.device_pk, FC_X25519_LEN);
    memcpy(info + n + 5u + FC_X25519_LEN, st.server_pk, FC_X25519_LEN);
    return fc_crypto_hkdf_sha256(key, FC_AEAD_KEY_LEN, st.session_nonce, FC_SESSION_NONCE_LEN,
                                 shared, FC_X25519_LEN, info, sizeof info);
}

/* Session keys for this boot, once identity, enrollment and nonce are all there. */
static void derive_session(void) {
    uint8_t shared[FC_X25519_LEN];
    st.have_keys = 0;
    st.rx_counter = 0;
    st.tx_counter = 0;
    if (!st.have_identity || !st.enrolled || !st.have_nonce ||
        fc_crypto_x25519_shared(shared, st.device_sk, st.server_pk) != 0) {
        return;
    }
    st.have_keys = derive_direction(shared, kLabelH2D, st.key_h2d) == 0 &&
                   derive_direction(shared, kLabelD2H, st.key_d2h) == 0;
    fc_crypto_wipe(shared, sizeof shared);
}

/* This boot's session nonce: it must never repeat under one key pair (counters restart with
 * it). A persisted boot counter guarantees that without entropy (QEMU after a RESET); random
 * bytes fill the rest when there is entropy, or all of it when the counter cannot be saved. */
static void make_session_nonce(fc_rng_t *rng) {
    uint8_t boots[4] = {0};
    size_t len = 0;
    uint32_t n = 0;
    if (fc_storage_load(STORAGE_KEY_BOOTS, boots, sizeof boots, &len) == 0 && len == 4) {
        n = fc_get_u32(boots);
    }
    fc_put_u32(boots, n + 1u);
    int counted = fc_storage_save(STORAGE_KEY_BOOTS, boots, sizeof boots) == 0;
    memset(st.session_nonce, 0, FC_SESSION_NONCE_LEN);
    if (rng != NULL) {
        random_bytes(rng, st.session_nonce, FC_SESSION_NONCE_LEN);
    }
    if (counted) {
        memcpy(st.session_nonce, boots, sizeof boots);
    }
    st.have_nonce = counted || rng != NULL;
    derive_session();
}

void fc_auth_randomness(fc_rng_t *rng) {
    if (!st.have_identity) {
        make_identity(rng);
    }
    if (!st.have_nonce) {
        make_session_nonce(rng);
    } else if (!st.have_keys) {
        derive_session(); /* an identity made just now completes the session */
    }
}

void fc_auth_init(fc_rng_t *rng, int power_on) {
    fc_crypto_wipe(&st, sizeof st);
    st.power_on = power_on;
    st.boot_ms = fc_clock_ms();
    uint8_t buf[ENROLLED_LEN];
    size_t len = 0;
    if (fc_storage_load(STORAGE_KEY_IDENTITY, st.device_sk, FC_X25519_LEN, &len) == 0 &&
        len == FC_X25519_LEN) {
        st.have_identity = fc_crypto_x25519_public(st.device_pk, st.device_sk) == 0;
    }
    if (fc_storage_load(STORAGE_KEY_ENROLLED, buf, sizeof buf, &len) == 0 &&
        len == ENROLLED_LEN && buf[FC_X25519_LEN] != 0) {
        memcpy(st.server_pk, buf, FC_X25519_LEN);
        st.key_id = buf[FC_X25519_LEN];
        st.enrolled = 1;
    }
    if (rng != NULL) {
        fc_auth_randomness(rng);
    } else {
        make_session_nonce(NULL); /* no entropy: the boot counter alone */
    }
}

/* ---- frames ------------------------------------------------------------------------------- */

static int is_protected(uint8_t type) {
    switch (type) {
    case FC_MSG_MODEL_BEGIN:
    case FC_MSG_MODEL_CHUNK:
    case FC_MSG_MODEL_COMMIT:
    case FC_MSG_TRAIN:
    case FC_MSG_UPDATE_GET:
    case FC_MSG_SECAGG_SETUP:
    case FC_MSG_SECAGG_PEERS:
    case FC_MSG_SECAGG_SHARES_IN:
    case FC_MSG_SECAGG_MASK:
    case FC_MSG_SECAGG_UNMASK: return 1;
    default: return 0;
    }
}

static void make_nonce(uint32_t counter, uint8_t nonce[FC_AEAD_NONCE_LEN]) {
    memset(nonce, 0, FC_AEAD_NONCE_LEN);
    fc_put_u32(nonce, counter);
}

static void make_ad(const fc_header_t *hdr, size_t len, const uint8_t auth[FC_AUTH_LEN],
                    uint8_t ad[AD_LEN]) {
    fc_header_pack(hdr, len, ad);
    memcpy(ad + FC_HEADER_LEN, auth, 4);                   /* counter */
    memcpy(ad + FC_HEADER_LEN + 4u, auth + 20, 4);         /* reserved */
}

static uint8_t accept_authenticated(const fc_frame_t *f, const uint8_t **payload) {
    const fc_header_t *h = &f->hdr;
    if (!st.enrolled) {
        return FC_NACK_NOT_ENROLLED;
    }
    if (!st.have_keys) {
        return FC_NACK_NO_IDENTITY; /* no session nonce yet (QEMU before SEED) */
    }
    if (h->key_id != st.key_id) {
        st.rejected_key++;
        return FC_NACK_AUTH_KEY;
    }
    uint8_t ad[AD_LEN], nonce[FC_AEAD_NONCE_LEN];
    uint32_t counter = fc_get_u32(f->auth);
    make_ad(h, h->length, f->auth, ad);
    make_nonce(counter, nonce);
    if (fc_crypto_aead_open(plain, st.key_h2d, nonce, f->auth + 4, ad, sizeof ad, f->payload,
                            h->length) != 0) {
        st.rejected_tag++;
        return FC_NACK_AUTH_TAG;
    }
    if (counter <= st.rx_counter) {
        st.rejected_replay++; /* authentic, but already seen or older than one seen */
        return FC_NACK_AUTH_REPLAY;
    }
    st.rx_counter = counter;
    st.request_authenticated = 1;
    *payload = plain;
    return 0;
}

uint8_t fc_auth_accept(const fc_frame_t *f, const uint8_t **payload) {
    st.request_authenticated = 0;
    *payload = f->payload;
    if (f->hdr.flags & FC_FLAG_AUTH) {
        return accept_authenticated(f, payload);
    }
    if (!is_protected(f->hdr.type)) {
        return 0;
    }
    if (st.enrolled) {
        st.rejected_required++;
        return FC_NACK_AUTH_REQUIRED;
    }
    /* A production device takes models and training only from its enrolled server. */
    return REPLAY_PROFILE ? 0 : FC_NACK_NOT_ENROLLED;
}

void fc_auth_request_done(void) {
    st.request_authenticated = 0;
}

int fc_auth_seal(fc_header_t *hdr, const uint8_t *payload, size_t len, uint8_t *cipher,
                 uint8_t auth[FC_AUTH_LEN]) {
    int carries_update = hdr->type == FC_MSG_UPDATE_READY || hdr->type == FC_MSG_UPDATE_CHUNK;
    if (!st.have_keys || !(st.request_authenticated || carries_update) ||
        st.tx_counter == UINT32_MAX) {
        return 0; /* 2^32 frames in one boot would need a new session: never in practice */
    }
    uint8_t ad[AD_LEN], nonce[FC_AEAD_NONCE_LEN];
    memset(auth, 0, FC_AUTH_LEN);
    fc_put_u32(auth, ++st.tx_counter);
    hdr->flags |= FC_FLAG_AUTH;
    hdr->key_id = st.key_id;
    make_ad(hdr, len, auth, ad);
    make_nonce(st.tx_counter, nonce);
    return fc_crypto_aead_seal(cipher, auth + 4, st.key_d2h, nonce, ad, sizeof ad, payload,
                               len) == 0;
}

/* ---- enrollment --------------------------------------------------------------------------- */

static int force_window_open(void) {
    return st.power_on && (uint32_t)(fc_clock_ms() - st.boot_ms) < FC_ENROLL_FORCE_WINDOW_MS;
}

size_t fc_enroll_info(uint8_t *out) {
    if (!st.have_identity) {
        return 0;
    }
    memset(out, 0, FC_ENROLL_INFO_LEN);
    memcpy(out, st.device_pk, FC_X25519_LEN);
    if (st.enrolled) {
        memcpy(out + 32, st.server_pk, FC_X25519_LEN);
    }
    memcpy(out + 64, st.session_nonce, FC_SESSION_NONCE_LEN);
    out[80] = (uint8_t)((st.enrolled ? FC_ENROLL_INFO_ENROLLED : 0u) |
                        (force_window_open() ? FC_ENROLL_INFO_FORCE_WINDOW : 0u) |
                        (REPLAY_PROFILE ? FC_ENROLL_INFO_REPLAY_PROFILE : 0u));
    out[81] = st.enrolled ? st.key_id : 0u;
    fc_put_u32(out + 84, st.rx_counter);
    fc_put_u32(out + 88, st.tx_counter);
    fc_put_u32(out + 92, st.rejected_required);
    fc_put_u32(out + 96, st.rejected_tag);
    fc_put_u32(out + 100, st.rejected_replay);
    fc_put_u32(out + 104, st.rejected_key);
    return FC_ENROLL_INFO_LEN;
}

uint8_t fc_enroll_set(const uint8_t *p, uint32_t *key_id) {
    const uint8_t *server_pk = p;
    uint8_t flags = p[FC_X25519_LEN];
    uint8_t shared[FC_X25519_LEN];
    if ((flags & ~FC_ENROLL_FORCE) != 0 || p[33] != 0 || p[34] != 0 || p[35] != 0) {
        return FC_NACK_BAD_PARAM;
    }
    if (!st.have_identity) {
        return FC_NACK_NO_IDENTITY;
    }
    if (fc_crypto_x25519_shared(shared, st.device_sk, server_pk) != 0) {
        return FC_NACK_BAD_KEY;
    }
    fc_crypto_wipe(shared, sizeof shared);
    if (st.enrolled && memcmp(st.server_pk, server_pk, FC_X25519_LEN) == 0) {
        *key_id = st.key_id; /* the same server again: nothing changes */
        return 0;
    }
    if (st.enrolled && !(flags & FC_ENROLL_FORCE)) {
        return FC_NACK_ENROLLED;
    }
    if (st.enrolled && !st.request_authenticated && !force_window_open()) {
        return FC_NACK_FORCE_REFUSED;
    }
    uint8_t next_id = (uint8_t)(st.enrolled ? st.key_id + 1u : 1u);
    uint8_t buf[ENROLLED_LEN];
    memcpy(buf, server_pk, FC_X25519_LEN);
    buf[FC_X25519_LEN] = next_id ? next_id : 1u; /* key_id 0 means "no key" */
    if (fc_storage_save(STORAGE_KEY_ENROLLED, buf, sizeof buf) != 0) {
        return FC_NACK_STORAGE;
    }
    memcpy(st.server_pk, server_pk, FC_X25519_LEN);
    st.key_id = buf[FC_X25519_LEN];
    st.enrolled = 1;
    derive_session();
    st.request_authenticated = 0; /* the ACK goes out plain: the host switches keys on it */
    *key_id = st.key_id;
    return 0;
}
