/* Device logic: answers the link protocol (docs/PROTOCOL.md) for every port.
 *
 * Single-threaded and heap-free: every buffer is static and sized from the generated
 * model_config.h; every length read from the link is checked before use. Each refused input
 * gets a NACK and a counter and leaves all accepted state as it was.
 *
 * This file dispatches; the decisions live in their own modules: what a build may serve
 * (fedcore/profile.h), which TRAIN requests are private enough (fedcore/policy.h) and what the
 * released updates cost (fedcore/ledger.h). Replay-only handlers are compiled out of production
 * builds (#if FC_PROFILE_IS_REPLAY). */
#include "fedcore/version.h" /* defines FEDCORE_GENERATED_API_EXPECTED before model_config.h */

#include "model_config.h"

#if !defined(FEDHEAD_GENERATED_API) || FEDHEAD_GENERATED_API != FEDCORE_GENERATED_API_EXPECTED
#error "generated model_config.h has another FEDHEAD_GENERATED_API than this firmware expects"
#endif

#include <math.h>
#include <string.h>

#include "fedcore/auth.h"
#include "fedcore/backbone.h"
#include "fedcore/crc32.h"
#include "fedcore/device.h"
#include "fedcore/examples.h"
#include "fedcore/head.h"
#include "fedcore/ledger.h"
#include "fedcore/link.h"
#include "fedcore/platform/clock.h"
#include "fedcore/platform/device_id.h"
#include "fedcore/platform/entropy.h"
#include "fedcore/platform/log.h"
#include "fedcore/platform/storage.h"
#include "fedcore/platform/system.h"
#include "fedcore/platform/uart.h"
#include "fedcore/policy.h"
#include "fedcore/privacy.h"
#include "fedcore/secagg.h"
#include "fedcore/profile.h"
#include "fedcore/protocol.h"
#include "fedcore/sha256.h"
#include "head_init.h"

#define D FEDHEAD_EMBED_DIM
#define C FEDHEAD_NUM_CLASSES
#define N_PARAMS (D * C + C)
#define HEAD_BLOB_LEN (4u * N_PARAMS)
#define STORED_GLOBAL_LEN (4u + HEAD_BLOB_LEN)
/* The personal head is stored after the SHA-256 of the global head it was trained from: a
 * stored personal head that does not belong to the current global one is ignored at boot, so
 * installing a global head needs only one (atomic) write. */
#define STORED_PERSONAL_LEN (FC_SHA256_LEN + HEAD_BLOB_LEN)
#define STORAGE_BUF_LEN \
    (STORED_GLOBAL_LEN > STORED_PERSONAL_LEN ? STORED_GLOBAL_LEN : STORED_PERSONAL_LEN)
/* RESULT of a SAMPLE: predicted, head, n_classes, logits, n_embed (0), stored, backbone_us. */
#define SAMPLE_RESULT_LEN (4u + 4u * C + 2u + 6u)

#if D > FEDCORE_MAX_D || C > FEDCORE_MAX_C
#error "the generated model is larger than FEDCORE_MAX_D / FEDCORE_MAX_C"
#endif
#if FEDHEAD_INPUT_LEN + FC_WINDOW_HDR_LEN > FC_MAX_PAYLOAD
#error "one input window does not fit in a SAMPLE frame"
#endif
#if 4u + 4u * C + 2u + 4u * D + 6u > FC_MAX_PAYLOAD
#error "a RESULT with the embedding does not fit in one frame"
#endif

#define STORAGE_KEY_GLOBAL "fh_global"
#define STORAGE_KEY_PERSONAL "fh_personal"
/* The ledger and the update it paid for, in one blob: committed before the update can be
 * fetched, so a restart can neither forget a release nor re-noise its round. */
#define STORAGE_KEY_RELEASE "fh_release"
#define RELEASE_META_OFFSET FC_LEDGER_BLOB_LEN
#define RELEASE_Q_OFFSET (FC_LEDGER_BLOB_LEN + FC_UPDATE_READY_LEN)
#define RELEASE_MAX_LEN (RELEASE_Q_OFFSET + 4u * N_PARAMS)

/* Counters of STATS, in wire order after the link's own: health only, none data-derived. */
typedef struct {
    uint32_t unknown_type, nacks, models_installed, models_rejected;
} device_counters_t;

/* A head transfer in progress (MODEL_BEGIN .. MODEL_COMMIT). */
typedef struct {
    int active;
    uint32_t head_version;
    uint32_t held; /* bytes received, contiguous from offset 0 */
    uint8_t sha256[FC_SHA256_LEN];
    uint8_t blob[HEAD_BLOB_LEN];
} model_transfer_t;

/* The last labelled SAMPLE and its RESULT: a retry (same header seq, same payload) is answered
 * with the same RESULT and stores nothing (docs/PROTOCOL.md, SAMPLE retries). */
typedef struct {
    int valid;
    uint16_t seq;
    uint16_t len;
    uint32_t crc;
    uint8_t result[SAMPLE_RESULT_LEN];
} sample_memo_t;

/* The last released update: the persisted release blob (ledger | UPDATE_READY | q bytes). */
typedef struct {
    int ready;
    uint32_t round;
    uint32_t total_len;
    uint8_t blob[RELEASE_MAX_LEN];
} update_t;

static struct {
    fc_rx_t rx;
    uint16_t tx_seq;
    device_counters_t counters;
    fc_head_t global;
    fc_head_t personal;
    uint32_t head_version;
    uint8_t head_sha256[FC_SHA256_LEN];
    fc_examples_t examples;
    fc_rng_t rng;
    int rng_ready;
    model_transfer_t transfer;
    update_t update;
    fc_ledger_t ledger;
    int ledger_ok; /* 0: the stored ledger is unreadable, so nothing more is released */
    uint8_t reset_reason;
    sample_memo_t sample_memo;
} dev;

/* Bytes given to fc_device_feed and not handled yet: a TRAIN serves the link from between its
 * steps and must take these before newer bytes from the UART. */
static struct {
    const uint8_t *data;
    size_t len;
    size_t next;
} feed_cursor;

/* A TRAIN in progress: the device answers HELLO, STATS_GET and RESET, NACKs the rest busy. */
static struct {
    int active;
    int reset_requested;
    uint32_t last_poll_ms;
} training;

/* Large scratch, not part of the state a reset clears. */
static fc_train_workspace_t train_ws;
static fc_head_t local_head;
static float scratch_params[N_PARAMS];
static int32_t scratch_q[N_PARAMS];
static float embedding[D];
static uint8_t tx_payload[FC_MAX_PAYLOAD];
static uint8_t tx_wire[FC_LINK_MAX_WIRE];
static uint8_t tx_sealed[FC_MAX_PAYLOAD];
static uint8_t storage_buf[STORAGE_BUF_LEN];
static uint8_t staged_release[RELEASE_MAX_LEN]; /* a release until its commit succeeds */
#if FC_PROFILE_IS_REPLAY
static uint32_t replay_backbone_us; /* RESULT.backbone_us of the last SAMPLE/INFER */
#endif

/* ---- sending ------------------------------------------------------------------------------ */

static void send_frame(uint8_t type, uint16_t seq, uint8_t flags, const uint8_t *payload,
                       size_t len) {
    fc_header_t hdr = {
        .version = FC_PROTO_VERSION,
        .type = type,
        .flags = flags,
        .device_id = fc_device_id(),
        .seq = seq,
    };
    uint8_t auth[FC_AUTH_LEN];
    size_t n = fc_auth_seal(&hdr, payload, len, tx_sealed, auth)
                   ? fc_frame_build_auth(&hdr, tx_sealed, len, auth, tx_wire, sizeof tx_wire)
                   : fc_frame_build(&hdr, payload, len, tx_wire, sizeof tx_wire);
    if (n > 0) {
        fc_uart_write(tx_wire, n);
    }
}

static void send_unsolicited(uint8_t type, const uint8_t *payload, size_t len) {
    send_frame(type, ++dev.tx_seq, 0, payload, len);
}

static void send_reply(const fc_header_t *req, uint8_t type, const uint8_t *payload, size_t len) {
    send_frame(type, req->seq, FC_FLAG_REPLY, payload, len);
}

static void send_ack(const fc_header_t *req, uint32_t value) {
    uint8_t p[FC_ACK_LEN] = {0};
    fc_put_u16(p, req->seq);
    p[2] = req->type;
    fc_put_u32(p + 4, value);
    send_reply(req, FC_MSG_ACK, p, sizeof p);
}

/* NACK for a request; req may be NULL when the header cannot be trusted (ack_seq 0). */
static void send_nack(const fc_header_t *req, uint8_t code, uint32_t detail) {
    uint8_t p[FC_ACK_LEN];
    fc_put_u16(p, req ? req->seq : 0);
    p[2] = req ? req->type : 0;
    p[3] = code;
    fc_put_u32(p + 4, detail);
    dev.counters.nacks++;
    if (req) {
        send_reply(req, FC_MSG_NACK, p, sizeof p);
    } else {
        send_frame(FC_MSG_NACK, 0, FC_FLAG_REPLY, p, sizeof p);
    }
}

void fc_device_log(uint8_t level, const char *text) {
    size_t len = strlen(text);
    if (len > FC_MAX_PAYLOAD - 1u) {
        len = FC_MAX_PAYLOAD - 1u;
    }
    tx_payload[0] = level;
    memcpy(tx_payload + 1, text, len);
    send_unsolicited(FC_MSG_LOG, tx_payload, len + 1u);
}

/* ---- heads and storage -------------------------------------------------------------------- */

static void head_to_blob(const fc_head_t *head, uint8_t *blob) {
    fc_head_get_params(head, scratch_params);
    for (size_t i = 0; i < N_PARAMS; i++) {
        fc_put_f32(blob + 4u * i, scratch_params[i]);
    }
}

/* Decode a head blob; FC_ERR_NONFINITE leaves head unchanged. */
static int blob_to_head(const uint8_t *blob, fc_head_t *head) {
    for (size_t i = 0; i < N_PARAMS; i++) {
        scratch_params[i] = fc_get_f32(blob + 4u * i);
    }
    return fc_head_set_params(head, scratch_params);
}

/* Persist head as the personal head of the current global head; 0 on success. Uses
 * scratch_params. */
static int save_personal(const fc_head_t *head) {
    memcpy(storage_buf, dev.head_sha256, FC_SHA256_LEN);
    head_to_blob(head, storage_buf + FC_SHA256_LEN);
    return fc_storage_save(STORAGE_KEY_PERSONAL, storage_buf, STORED_PERSONAL_LEN);
}

static void update_head_hash(void) {
    head_to_blob(&dev.global, storage_buf);
    fc_sha256(storage_buf, HEAD_BLOB_LEN, dev.head_sha256);
}

/* The generated initial head, or the persisted global and personal heads when valid. */
static void load_heads(void) {
    (void)fc_head_init(&dev.global, D, C, fedhead_head_init_w, fedhead_head_init_b);
    dev.head_version = 0;
    size_t len = 0;
    if (fc_storage_load(STORAGE_KEY_GLOBAL, storage_buf, sizeof storage_buf, &len) == 0 &&
        len == STORED_GLOBAL_LEN && blob_to_head(storage_buf + 4, &dev.global) == FC_OK) {
        dev.head_version = fc_get_u32(storage_buf);
    }
    dev.personal = dev.global;
    update_head_hash();
    if (fc_storage_load(STORAGE_KEY_PERSONAL, storage_buf, sizeof storage_buf, &len) == 0 &&
        len == STORED_PERSONAL_LEN &&
        memcmp(storage_buf, dev.head_sha256, FC_SHA256_LEN) == 0) {
        (void)blob_to_head(storage_buf + FC_SHA256_LEN, &dev.personal);
    }
}

/* Make the update current from a release blob (after its commit, or loaded at boot). */
static void adopt_release(const uint8_t *blob, size_t len) {
    memcpy(dev.update.blob, blob, len);
    dev.update.round = fc_get_u32(blob + RELEASE_META_OFFSET);
    dev.update.total_len = fc_get_u32(blob + RELEASE_META_OFFSET + 24);
    dev.update.ready = 1;
}

/* The persisted ledger and last update; no blob yet means a fresh device. */
static void load_release(void) {
    size_t len = 0;
    memset(&dev.ledger, 0, sizeof dev.ledger);
    dev.ledger_ok = 1;
    if (fc_storage_load(STORAGE_KEY_RELEASE, staged_release, sizeof staged_release, &len) != 0) {
        return; /* no blob: this device never released an update */
    }
    if (len < RELEASE_Q_OFFSET || fc_ledger_decode(staged_release, len, &dev.ledger) != 0 ||
        len != RELEASE_Q_OFFSET + fc_get_u32(staged_release + RELEASE_META_OFFSET + 24)) {
        memset(&dev.ledger, 0, sizeof dev.ledger);
        dev.ledger_ok = 0; /* fail closed: TRAIN answers NACK STORAGE */
        return;
    }
    uint32_t q_len = (uint32_t)(len - RELEASE_Q_OFFSET);
    if (fc_crc32(staged_release + RELEASE_Q_OFFSET, q_len) ==
        fc_get_u32(staged_release + RELEASE_META_OFFSET + 28)) {
        adopt_release(staged_release, len); /* else the ledger stands, the update is lost */
    }
}

/* ---- INFO and STATS ----------------------------------------------------------------------- */

static uint32_t capabilities(void) {
    uint32_t caps = FC_CAP_TRAIN | FC_CAP_DISCRETE_GAUSSIAN | FC_CAP_LEDGER;
#if FC_PROFILE_IS_REPLAY
    caps |= FC_CAP_SAMPLE | FC_CAP_SEED | FC_CAP_REPLAY;
#endif
    if (fc_storage_persistent()) {
        caps |= FC_CAP_PERSISTENT_STORAGE;
    }
    return caps;
}

/* Examples held: data-derived, so only a replay (simulation) board reports it. */
static uint16_t reported_example_count(void) {
#if FC_PROFILE_IS_REPLAY
    return fc_examples_count(&dev.examples);
#else
    return 0;
#endif
}

static size_t build_info(uint8_t *p) {
    static const uint8_t kModelSha[FC_SHA256_LEN] = FEDHEAD_MODEL_SHA256_BYTES;
    const fc_policy_t *policy = fc_policy();
    memset(p, 0, FC_INFO_LEN);
    fc_put_u16(p, FEDCORE_FW_VERSION);
    p[2] = FC_PROTO_VERSION;
    const char *board = fc_board_name();
    size_t board_len = strlen(board);
    memcpy(p + 3, board, board_len < FC_BOARD_NAME_LEN ? board_len : FC_BOARD_NAME_LEN);
    memcpy(p + 18, kModelSha, FC_SHA256_LEN);
    memcpy(p + 50, dev.head_sha256, FC_SHA256_LEN);
    fc_put_u32(p + 82, dev.head_version);
    fc_put_u16(p + 86, D);
    fc_put_u16(p + 88, C);
    fc_put_u16(p + 90, FEDHEAD_INPUT_LEN);
    fc_put_u32(p + 92, capabilities());
    fc_put_u32(p + 96, fc_platform_free_ram());
    fc_put_u16(p + 100, reported_example_count());
    fc_put_u16(p + 102, dev.examples.capacity);
    p[104] = FC_PROFILE_ID;
    p[105] = dev.reset_reason;
    p[106] = policy->bits_mask;
    /* an unreadable ledger spent an unknown amount: report it as everything */
    double spent = (double)INFINITY;
    if (dev.ledger_ok) {
        spent = fc_ledger_epsilon(dev.ledger.rho, policy->delta);
    }
    fc_put_f32(p + 108, (float)spent);
    fc_put_f32(p + 112, (float)policy->epsilon_budget);
    fc_put_f32(p + 116, (float)policy->delta);
    fc_put_u32(p + 120, dev.ledger.releases);
    fc_put_u32(p + 124, dev.ledger.last_round);
    fc_put_f32(p + 128, (float)policy->z_min);
    fc_put_f32(p + 132, (float)policy->clip_max);
    fc_put_u32(p + 136, policy->max_work);
    fc_put_f32(p + 140, (float)policy->scale_min_rel);
    return FC_INFO_LEN;
}

static void handle_stats(const fc_header_t *req) {
    const fc_link_counters_t *l = &dev.rx.counters;
    const device_counters_t *c = &dev.counters;
    const uint32_t values[FC_STATS_COUNTERS] = {
        l->frames_ok,    l->bad_cobs,        l->bad_crc,          l->bad_version,
        l->oversize,     c->unknown_type,    c->nacks,            c->models_installed,
        c->models_rejected, fc_clock_ms(),
    };
    for (size_t i = 0; i < FC_STATS_COUNTERS; i++) {
        fc_put_u32(tx_payload + 4u * i, values[i]);
    }
    send_reply(req, FC_MSG_STATS, tx_payload, FC_STATS_LEN);
}

/* ---- MODEL -------------------------------------------------------------------------------- */

static void model_reject(const fc_header_t *req, uint8_t code, uint32_t detail) {
    dev.counters.models_rejected++;
    send_nack(req, code, detail);
}

static void handle_model_begin(const fc_header_t *req, const uint8_t *p) {
    dev.transfer.active = 0; /* a new BEGIN abandons any unfinished transfer */
    uint32_t total = fc_get_u32(p + 4);
    if (fc_get_u16(p + 8) != D || fc_get_u16(p + 10) != C || total != HEAD_BLOB_LEN) {
        model_reject(req, FC_NACK_SHAPE, ((uint32_t)D << 16) | C);
        return;
    }
    dev.transfer.head_version = fc_get_u32(p);
    dev.transfer.held = 0;
    memcpy(dev.transfer.sha256, p + 12, FC_SHA256_LEN);
    dev.transfer.active = 1;
    send_ack(req, 0);
}

static void handle_model_chunk(const fc_header_t *req, const uint8_t *p, size_t len) {
    model_transfer_t *t = &dev.transfer;
    uint32_t offset = fc_get_u32(p + 4);
    const uint8_t *data = p + FC_MODEL_CHUNK_HDR_LEN;
    size_t n = len - FC_MODEL_CHUNK_HDR_LEN;
    if (!t->active || fc_get_u32(p) != t->head_version) {
        send_nack(req, FC_NACK_BAD_STATE, t->held);
        return;
    }
    if (offset > t->held || n > HEAD_BLOB_LEN - offset) {
        /* a gap (an earlier chunk was lost) or bytes past the announced length */
        send_nack(req, offset > t->held ? FC_NACK_BAD_STATE : FC_NACK_BAD_LENGTH, t->held);
        return;
    }
    size_t overlap = t->held - offset < n ? t->held - offset : n;
    if (memcmp(t->blob + offset, data, overlap) != 0) {
        send_nack(req, FC_NACK_MISMATCH, t->held);
        return;
    }
    memcpy(t->blob + t->held, data + overlap, n - overlap);
    t->held += (uint32_t)(n - overlap);
    send_ack(req, t->held);
}

static void handle_model_commit(const fc_header_t *req, const uint8_t *p) {
    model_transfer_t *t = &dev.transfer;
    uint8_t digest[FC_SHA256_LEN];
    if (!t->active || fc_get_u32(p) != t->head_version) {
        send_nack(req, FC_NACK_BAD_STATE, 0);
        return;
    }
    if (t->held != HEAD_BLOB_LEN) {
        send_nack(req, FC_NACK_INCOMPLETE, t->held);
        return;
    }
    t->active = 0; /* whatever happens next, this transfer is finished */
    fc_sha256(t->blob, HEAD_BLOB_LEN, digest);
    if (memcmp(digest, t->sha256, FC_SHA256_LEN) != 0) {
        model_reject(req, FC_NACK_BAD_HASH, 0);
        return;
    }
    local_head = dev.global; /* dimensions; the values come from the blob */
    if (blob_to_head(t->blob, &local_head) != FC_OK) {
        model_reject(req, FC_NACK_NONFINITE, 0);
        return;
    }
    /* blob_to_head left the decoded values in scratch_params */
    if (!fc_params_within_bound(scratch_params, N_PARAMS, (float)FC_HEAD_MAX_ABS,
                                (float)FC_HEAD_MAX_L2)) {
        model_reject(req, FC_NACK_HEAD_NORM, 0);
        return;
    }
    /* Persist first: the switch happens only when the new head survives a restart. */
    fc_put_u32(storage_buf, t->head_version);
    memcpy(storage_buf + 4, t->blob, HEAD_BLOB_LEN);
    if (fc_storage_save(STORAGE_KEY_GLOBAL, storage_buf, STORED_GLOBAL_LEN) != 0) {
        model_reject(req, FC_NACK_STORAGE, 0);
        return;
    }
    dev.global = local_head;
    dev.personal = local_head; /* the stored personal head no longer matches: ignored at boot */
    dev.head_version = t->head_version;
    memcpy(dev.head_sha256, digest, FC_SHA256_LEN);
    dev.counters.models_installed++;
    send_ack(req, dev.head_version);
}

/* ---- the application's examples (on the device, never over the link) ------------------------ */

/* Run the backbone on one input window into `embedding`; 0 when it is ready and finite. */
static int embed_input(const int8_t *window) {
    int rc = backbone_embed(window, embedding);
    for (size_t i = 0; rc == 0 && i < D; i++) {
        rc = isfinite(embedding[i]) ? 0 : 1;
    }
    return rc;
}

size_t fc_device_input_len(void) { return FEDHEAD_INPUT_LEN; }

int fc_device_add_example(const int8_t *window, uint8_t label) {
    if (label >= C) {
        return FC_ERR_PARAM;
    }
    if (embed_input(window) != 0) {
        return FC_ERR_NONFINITE;
    }
    return fc_examples_add(&dev.examples, embedding, label);
}

int fc_device_predict(const int8_t *window, float *logits) {
    if (embed_input(window) != 0) {
        return FC_ERR_NONFINITE;
    }
    return fc_head_predict(&dev.personal, embedding, logits);
}

#if FC_PROFILE_IS_REPLAY
/* ---- SAMPLE and INFER on host-supplied windows (replay profile only) ---------------------- */

/* Run the backbone on the window of a SAMPLE/INFER payload; 0 when the embedding is ready. */
static int embed_window(const fc_header_t *req, const uint8_t *p, size_t len) {
    uint16_t n = fc_get_u16(p + 2);
    if (n != len - FC_WINDOW_HDR_LEN) {
        send_nack(req, FC_NACK_BAD_LENGTH, n);
        return -1;
    }
    if (n != FEDHEAD_INPUT_LEN) {
        send_nack(req, FC_NACK_SHAPE, FEDHEAD_INPUT_LEN);
        return -1;
    }
    uint32_t t0 = fc_clock_us();
    int rc = embed_input((const int8_t *)(p + FC_WINDOW_HDR_LEN));
    replay_backbone_us = fc_clock_us() - t0;
    if (rc != 0) {
        send_nack(req, FC_NACK_BAD_STATE, (uint32_t)rc);
        return -1;
    }
    return 0;
}

static void send_result(const fc_header_t *req, const fc_head_t *head, int personal,
                        int with_embedding, int stored) {
    float logits[C];
    uint8_t predicted = fc_head_predict(head, embedding, logits);
    uint8_t *p = tx_payload;
    p[0] = predicted;
    p[1] = (uint8_t)personal;
    fc_put_u16(p + 2, C);
    p += 4;
    for (size_t k = 0; k < C; k++, p += 4) {
        fc_put_f32(p, logits[k]);
    }
    fc_put_u16(p, with_embedding ? D : 0);
    p += 2;
    for (size_t j = 0; with_embedding && j < D; j++, p += 4) {
        fc_put_f32(p, embedding[j]);
    }
    fc_put_u16(p, (uint16_t)stored);
    fc_put_u32(p + 2, replay_backbone_us);
    p += 6;
    send_reply(req, FC_MSG_RESULT, tx_payload, (size_t)(p - tx_payload));
}

/* 1 when this labelled SAMPLE repeats the last one (a retry whose RESULT was lost). */
static int is_sample_retry(const fc_header_t *req, const uint8_t *p, size_t len) {
    const sample_memo_t *memo = &dev.sample_memo;
    return memo->valid && memo->seq == req->seq && memo->len == len &&
           memo->crc == fc_crc32(p, len);
}

static void remember_sample(const fc_header_t *req, const uint8_t *p, size_t len) {
    sample_memo_t *memo = &dev.sample_memo;
    memo->seq = req->seq;
    memo->len = (uint16_t)len;
    memo->crc = fc_crc32(p, len);
    memcpy(memo->result, tx_payload, SAMPLE_RESULT_LEN); /* send_result just built it */
    memo->valid = 1;
}

static void handle_sample(const fc_header_t *req, const uint8_t *p, size_t len) {
    uint8_t labelled = p[0] & FC_SAMPLE_LABELLED;
    if ((p[0] & ~FC_SAMPLE_LABELLED) != 0 || (!labelled && p[1] != 0)) {
        send_nack(req, FC_NACK_BAD_PARAM, p[0]); /* reserved flag bits, or a label unused */
        return;
    }
    if (labelled && p[1] >= C) {
        send_nack(req, FC_NACK_BAD_PARAM, p[1]);
        return;
    }
    if (labelled && is_sample_retry(req, p, len)) {
        send_reply(req, FC_MSG_RESULT, dev.sample_memo.result, SAMPLE_RESULT_LEN);
        return;
    }
    if (embed_window(req, p, len) != 0) {
        return;
    }
    int stored = labelled && fc_examples_add(&dev.examples, embedding, p[1]) == FC_OK;
    send_result(req, &dev.personal, 1, 0, stored);
    if (labelled) {
        remember_sample(req, p, len);
    }
}

static void handle_infer(const fc_header_t *req, const uint8_t *p, size_t len) {
    if ((p[0] & ~(FC_INFER_USE_GLOBAL | FC_INFER_WANT_EMBEDDING)) != 0 || p[1] != 0) {
        send_nack(req, FC_NACK_BAD_PARAM, p[0]); /* reserved flag bits or the zero byte */
        return;
    }
    if (embed_window(req, p, len) != 0) {
        return;
    }
    int use_global = p[0] & FC_INFER_USE_GLOBAL;
    send_result(req, use_global ? &dev.global : &dev.personal, !use_global,
                p[0] & FC_INFER_WANT_EMBEDDING, 0);
}
#endif /* FC_PROFILE_IS_REPLAY */

/* ---- TRAIN and UPDATE --------------------------------------------------------------------- */

typedef struct {
    uint32_t round;
    fc_train_params_t train;
    fc_privacy_params_t privacy;
    uint8_t flags;
    uint64_t seed;
} train_request_t;

static void parse_train(const uint8_t *p, train_request_t *r) {
    r->round = fc_get_u32(p);
    r->train.lr = fc_get_f32(p + 4);
    r->train.epochs = fc_get_u16(p + 8);
    r->train.batch = fc_get_u16(p + 10);
    r->train.momentum = fc_get_f32(p + 12);
    r->train.weight_decay = fc_get_f32(p + 16);
    r->train.example_clip = fc_get_f32(p + 20);
    r->privacy.clip = fc_get_f32(p + 24);
    r->privacy.noise_std = fc_get_f32(p + 28);
    r->privacy.scale = fc_get_f32(p + 32);
    r->privacy.bits = p[36];
    r->flags = p[37];
    r->seed = fc_get_u64(p + 40);
}

static int wants_seeded_noise(const train_request_t *r) {
#if FC_PROFILE_IS_REPLAY
    return (r->flags & FC_TRAIN_USE_SEED) != 0;
#else
    (void)r;
    return 0;
#endif
}

/* NACK code for a malformed TRAIN (or one this profile cannot serve), 0 when well formed. */
static uint8_t check_train_fields(const train_request_t *r, const uint8_t *p) {
    int rc = fc_train_params_check(&r->train);
    if (rc == FC_OK) {
        rc = fc_privacy_params_check(&r->privacy);
    }
    if (rc == FC_ERR_NONFINITE) {
        return FC_NACK_NONFINITE;
    }
    if (rc != FC_OK || fc_get_u16(p + 38) != 0 ||
        (r->flags & ~(FC_TRAIN_USE_SEED | FC_TRAIN_IMPRINT)) != 0) {
        return FC_NACK_BAD_PARAM;
    }
    if ((r->flags & FC_TRAIN_USE_SEED) && !FC_PROFILE_IS_REPLAY) {
        return FC_NACK_UNSUPPORTED; /* seeded noise is known noise: replay profile only */
    }
    return 0;
}

/* NACK code when the device's own policy or ledger refuses this release, 0 when it may go. */
static uint8_t check_train_privacy(const train_request_t *r) {
    const fc_policy_t *policy = fc_policy();
    if (!dev.ledger_ok) {
        return FC_NACK_STORAGE; /* an unreadable ledger: never release without accounting */
    }
    if (dev.ledger.releases > 0 && r->round <= dev.ledger.last_round) {
        /* older, or the last round whose update is gone: never noise a round twice */
        return FC_NACK_ROUND_OLD;
    }
    uint8_t code = fc_policy_check(policy, &r->train, &r->privacy, dev.examples.capacity);
    if (code != 0) {
        return code;
    }
    double rho = fc_ledger_release_rho(&r->privacy, N_PARAMS);
    if (fc_ledger_epsilon(dev.ledger.rho + rho, policy->delta) > policy->epsilon_budget) {
        return FC_NACK_BUDGET;
    }
    return 0;
}

static uint8_t check_train_resources(const train_request_t *r) {
    if (!wants_seeded_noise(r) && !dev.rng_ready) {
        return FC_NACK_BAD_STATE; /* no entropy yet: never privatize with predictable noise */
    }
#if FC_PROFILE_IS_REPLAY
    if (fc_examples_count(&dev.examples) == 0) {
        return FC_NACK_NO_DATA; /* production trains anyway: the refusal would tell the count */
    }
#endif
    return 0;
}

static void pack_q(const int32_t *q, uint8_t bits, uint8_t *out) {
    for (size_t i = 0; i < N_PARAMS; i++) {
        uint32_t v = (uint32_t)q[i]; /* two's complement bytes, little-endian */
        for (unsigned b = 0; b < bits / 8u; b++) {
            *out++ = (uint8_t)(v >> (8u * b));
        }
    }
}

/* SATURATED from the released integers alone (some q at the edge of the wire width): a
 * function of the update, so it tells nothing the update does not. */
static uint8_t released_flags(const int32_t *q, uint8_t bits) {
    int64_t hi = (int64_t)((UINT64_C(1) << (bits - 1u)) - 1u);
    for (size_t i = 0; i < N_PARAMS; i++) {
        if ((int64_t)q[i] >= hi || (int64_t)q[i] <= -hi - 1) {
            return FC_UPDATE_SATURATED;
        }
    }
    return 0;
}

static void build_update_meta(uint8_t *m, const train_request_t *r, uint8_t flags,
                              uint32_t total_len, uint32_t crc, double epsilon) {
    fc_put_u32(m, r->round);
    fc_put_u32(m + 4, dev.head_version);
    fc_put_u16(m + 8, N_PARAMS);
    m[10] = r->privacy.bits;
    m[11] = flags;
    fc_put_f32(m + 12, r->privacy.scale);
    fc_put_f32(m + 16, r->privacy.clip);
    fc_put_f32(m + 20, r->privacy.noise_std);
    fc_put_u32(m + 24, total_len);
    fc_put_u32(m + 28, crc);
    fc_put_f32(m + 32, (float)epsilon);
}

static void feed_byte(uint8_t byte);
static void restart(void);

/* The link while a TRAIN runs: called after every training step, it reads what arrived (at most
 * every BUSY_POLL_MS, without waiting) and answers it; nonzero stops training (RESET). */
#define BUSY_POLL_MS 5u
static int serve_link_while_training(void *ctx) {
    static uint8_t chunk[256];
    (void)ctx;
    uint32_t now = fc_clock_ms();
    if (now - training.last_poll_ms < BUSY_POLL_MS) {
        return 0;
    }
    training.last_poll_ms = now;
    while (feed_cursor.next < feed_cursor.len && !training.reset_requested) {
        feed_byte(feed_cursor.data[feed_cursor.next++]);
    }
    size_t n = 0;
    while (!training.reset_requested && (n = fc_uart_read_now(chunk, sizeof chunk)) > 0) {
        for (size_t i = 0; i < n && !training.reset_requested; i++) {
            feed_byte(chunk[i]);
        }
    }
    return training.reset_requested;
}

/* Train from the global head into local_head and scratch_params (the delta); 0 or a NACK
 * code; *trained says whether local_head is a new personal head. Production releases a noised
 * zero delta when there is nothing to learn from or training diverged: a refusal there would be
 * an un-noised bit about the user's data. */
static uint8_t train_delta(const train_request_t *r, fc_rng_t *rng, int *trained) {
    fc_train_result_t res;
    memset(scratch_params, 0, sizeof scratch_params);
    *trained = 0;
    if (fc_examples_count(&dev.examples) == 0) {
        return 0;
    }
    local_head = dev.global;
    int rc = fc_head_train_hooked(&local_head, &dev.examples, &r->train, rng, &train_ws, &res,
                                  serve_link_while_training, NULL);
    if (rc == FC_OK && (r->flags & FC_TRAIN_IMPRINT)) {
        /* personalization: the trained head plus the class prototypes, an ensemble of the
         * discriminative head and a nearest-mean classifier (docs/EVALUATION.md) */
        rc = fc_head_imprint(&local_head, &dev.examples, FC_TRAIN_IMPRINT_STRENGTH, &train_ws);
    }
    if (rc == FC_ERR_ABORTED) {
        return FC_NACK_BAD_STATE; /* a RESET arrived: nothing of this round is kept */
    }
    size_t n = rc == FC_OK ? fc_head_delta(&local_head, &dev.global, scratch_params) : 0;
    for (size_t i = 0; n == N_PARAMS && i < n; i++) {
        n = isfinite(scratch_params[i]) ? n : 0;
    }
    if (n != N_PARAMS) {
        memset(scratch_params, 0, sizeof scratch_params);
        return FC_PROFILE_IS_REPLAY ? FC_NACK_NONFINITE : 0;
    }
    *trained = 1;
    return 0;
}

/* Train, privatize, account, persist: 0 once the update can be fetched, else a NACK code. */
static uint8_t release_update(const train_request_t *r) {
    fc_rng_t *rng = &dev.rng;
#if FC_PROFILE_IS_REPLAY
    fc_rng_t seeded;
    if (wants_seeded_noise(r)) {
        fc_rng_seed_u64(&seeded, r->seed); /* shuffles, then rounding and noise, one stream */
        rng = &seeded;
    }
#endif
    int trained = 0;
    uint8_t code = train_delta(r, rng, &trained);
    uint8_t priv_flags = 0;
    if (code == 0 &&
        fc_privatize(scratch_params, N_PARAMS, &r->privacy, rng, scratch_q, &priv_flags) != FC_OK) {
        code = FC_NACK_NONFINITE;
    }
    if (code != 0) {
        return code;
    }
    /* After privatizing (saving reuses scratch_params); before the release, so a failure
     * leaves everything as it was: nothing charged, nothing fetchable, the old personal head. */
    if (trained && save_personal(&local_head) != 0) {
        return FC_NACK_STORAGE;
    }
    fc_ledger_t next = dev.ledger;
    fc_ledger_add(&next, r->round, fc_ledger_release_rho(&r->privacy, N_PARAMS));
    uint32_t total_len = N_PARAMS * (r->privacy.bits / 8u);
    uint8_t *q_bytes = staged_release + RELEASE_Q_OFFSET;
    pack_q(scratch_q, r->privacy.bits, q_bytes);
    fc_ledger_encode(&next, staged_release);
    double epsilon = fc_ledger_epsilon(next.rho, fc_policy()->delta);
    build_update_meta(staged_release + RELEASE_META_OFFSET, r,
                      released_flags(scratch_q, r->privacy.bits), total_len,
                      fc_crc32(q_bytes, total_len), epsilon);
    size_t blob_len = RELEASE_Q_OFFSET + total_len;
    if (fc_storage_save(STORAGE_KEY_RELEASE, staged_release, blob_len) != 0) {
        if (trained && save_personal(&dev.personal) != 0) {
            fc_device_log(FC_LOG_ERROR, "storage: the untrained personal head was not restored");
        }
        return FC_NACK_STORAGE; /* not accounted, so never fetchable */
    }
    if (trained) {
        dev.personal = local_head;
    }
    dev.ledger = next;
    adopt_release(staged_release, blob_len);
    return 0;
}

static void send_update_ready(const fc_header_t *req) {
    const uint8_t *meta = dev.update.blob + RELEASE_META_OFFSET;
    if (req) {
        send_reply(req, FC_MSG_UPDATE_READY, meta, FC_UPDATE_READY_LEN);
    } else {
        send_unsolicited(FC_MSG_UPDATE_READY, meta, FC_UPDATE_READY_LEN);
    }
}

/* release_update with the link served between training steps. */
static uint8_t release_serving_link(const train_request_t *r) {
    training.active = 1;
    training.reset_requested = 0;
    training.last_poll_ms = fc_clock_ms();
    uint8_t code = release_update(r);
    training.active = 0;
    return code;
}

static void handle_train(const fc_header_t *req, const uint8_t *p) {
    train_request_t r;
    parse_train(p, &r);
    uint8_t code = check_train_fields(&r, p);
    if (code == 0 && dev.update.ready && dev.ledger.releases > 0 &&
        r.round == dev.ledger.last_round) {
        /* One update per round: a repeated TRAIN gets the same bytes, never fresh noise. */
        send_ack(req, r.round);
        send_update_ready(NULL);
        return;
    }
    if (code == 0) {
        code = check_train_privacy(&r);
    }
    if (code == 0) {
        code = check_train_resources(&r);
    }
    if (code != 0) {
        send_nack(req, code, 0);
        return;
    }
    send_ack(req, r.round);
    code = release_serving_link(&r);
    if (training.reset_requested) {
        restart(); /* RESET was ACKed between two training steps */
        return;
    }
    if (code != 0) {
        send_nack(req, code, r.round); /* a second answer to the same seq: no update */
        return;
    }
    send_update_ready(NULL);
}

static void handle_update_get(const fc_header_t *req, const uint8_t *p) {
    uint32_t round = fc_get_u32(p);
    uint32_t offset = fc_get_u32(p + 4);
    uint16_t max_len = fc_get_u16(p + 8);
    if (!dev.update.ready) {
        send_nack(req, FC_NACK_NO_DATA, 0);
        return;
    }
    if (round != dev.update.round) {
        send_nack(req, FC_NACK_BAD_STATE, dev.update.round);
        return;
    }
    if (offset != FC_UPDATE_GET_READY && fc_secagg_guards(round)) {
        send_nack(req, FC_NACK_SECAGG_ACTIVE, round); /* this round's update leaves masked */
        return;
    }
    if (offset == FC_UPDATE_GET_READY) {
        send_update_ready(req);
        return;
    }
    if (offset > dev.update.total_len || max_len == 0) {
        send_nack(req, FC_NACK_BAD_PARAM, dev.update.total_len);
        return;
    }
    size_t n = dev.update.total_len - offset;
    size_t cap = FC_MAX_PAYLOAD - FC_UPDATE_CHUNK_HDR_LEN;
    n = n < max_len ? n : max_len;
    n = n < cap ? n : cap;
    fc_put_u32(tx_payload, round);
    fc_put_u32(tx_payload + 4, offset);
    memcpy(tx_payload + FC_UPDATE_CHUNK_HDR_LEN, dev.update.blob + RELEASE_Q_OFFSET + offset, n);
    send_reply(req, FC_MSG_UPDATE_CHUNK, tx_payload, FC_UPDATE_CHUNK_HDR_LEN + n);
}

/* ---- CLEAR, RESET, SEED ------------------------------------------------------------------- */

/* Validate, persist, then change RAM state: a refused or failed CLEAR changes nothing. */
static void handle_clear(const fc_header_t *req, const uint8_t *p) {
    if (p[0] & ~(FC_CLEAR_EXAMPLES | FC_CLEAR_PERSONAL_HEAD)) {
        send_nack(req, FC_NACK_BAD_PARAM, p[0]);
        return;
    }
    if ((p[0] & FC_CLEAR_PERSONAL_HEAD) && save_personal(&dev.global) != 0) {
        send_nack(req, FC_NACK_STORAGE, 0);
        return;
    }
    if (p[0] & FC_CLEAR_PERSONAL_HEAD) {
        dev.personal = dev.global;
    }
    if (p[0] & FC_CLEAR_EXAMPLES) {
        fc_examples_clear(&dev.examples);
        dev.sample_memo.valid = 0; /* a retry of an earlier SAMPLE must be stored again */
    }
    send_ack(req, p[0]);
}

#if FC_PROFILE_IS_REPLAY
/* SEED: whoever sends it knows the noise, so replay profile only (QEMU has no entropy). */
static void handle_seed(const fc_header_t *req, const uint8_t *p) {
    fc_rng_seed(&dev.rng, p);
    dev.rng_ready = 1;
    fc_auth_randomness(&dev.rng);
    send_ack(req, 0);
}
#endif

static void restart(void) {
    training.reset_requested = 0;
    fc_platform_reset(); /* ports that restart in place now report FC_RESET_SOFTWARE */
    /* The port restarts in place: forget RAM state, boot again from storage. */
    memset(&dev, 0, sizeof dev);
    fc_device_init();
}

/* ---- ENROLL (fedcore/auth.h) ---- */

static void handle_enroll_get(const fc_header_t *req) {
    size_t n = fc_enroll_info(tx_payload);
    if (n == 0) {
        send_nack(req, FC_NACK_NO_IDENTITY, 0);
        return;
    }
    send_reply(req, FC_MSG_ENROLL_INFO, tx_payload, n);
}

static void handle_enroll_set(const fc_header_t *req, const uint8_t *p) {
    uint32_t key_id = 0;
    uint8_t code = fc_enroll_set(p, &key_id);
    if (code != 0) {
        send_nack(req, code, 0);
        return;
    }
    send_ack(req, key_id);
}

/* ---- SECAGG (fedcore/secagg.h) ---- */

static void handle_secagg(const fc_header_t *req, const uint8_t *p) {
    size_t n = 0;
    uint32_t count = 0;
    uint8_t code = FC_NACK_BAD_STATE, reply = 0;
    const uint8_t *meta = dev.update.blob + RELEASE_META_OFFSET; /* UPDATE_READY: bits at 10 */
    const fc_secagg_input_t input = {dev.update.round, dev.update.blob + RELEASE_Q_OFFSET,
                                     meta[10], N_PARAMS};
    switch (req->type) {
    case FC_MSG_SECAGG_SETUP:
        reply = FC_MSG_SECAGG_KEYS; /* ephemeral keys need entropy (QEMU: SEED first) */
        code = dev.rng_ready ? fc_secagg_setup(p, req->length, &dev.rng, tx_payload, &n)
                             : FC_NACK_BAD_STATE;
        break;
    case FC_MSG_SECAGG_PEERS:
        reply = FC_MSG_SECAGG_SHARES;
        code = fc_secagg_peers(p, req->length, tx_payload, &n);
        break;
    case FC_MSG_SECAGG_SHARES_IN: code = fc_secagg_shares_in(p, req->length, &count); break;
    case FC_MSG_SECAGG_MASK:
        reply = FC_MSG_SECAGG_MASKED;
        code = dev.update.ready ? fc_secagg_mask(p, req->length, &input, tx_payload, &n)
                                : FC_NACK_NO_DATA;
        break;
    case FC_MSG_SECAGG_UNMASK:
        reply = FC_MSG_SECAGG_REVEAL;
        code = fc_secagg_unmask(p, req->length, tx_payload, &n);
        break;
    default: break;
    }
    if (code != 0) {
        send_nack(req, code, 0);
    } else if (reply != 0) {
        send_reply(req, reply, tx_payload, n);
    } else {
        send_ack(req, count);
    }
}

static void handle_reset(const fc_header_t *req) {
    send_ack(req, 0);
    if (training.active) {
        training.reset_requested = 1; /* training stops at its next step, then restart() */
        return;
    }
    restart();
}

/* ---- dispatch ----------------------------------------------------------------------------- */

/* Exact payload length of each host->device type; -1: variable (checked by the handler). */
static int expected_length(uint8_t type, size_t *min_len) {
    *min_len = 0;
    switch (type) {
    case FC_MSG_HELLO:
    case FC_MSG_STATS_GET:
    case FC_MSG_RESET: return 0;
    case FC_MSG_MODEL_BEGIN: return FC_MODEL_BEGIN_LEN;
    case FC_MSG_MODEL_COMMIT: return FC_MODEL_COMMIT_LEN;
    case FC_MSG_TRAIN: return FC_TRAIN_LEN;
    case FC_MSG_UPDATE_GET: return FC_UPDATE_GET_LEN;
    case FC_MSG_CLEAR: return 1;
    case FC_MSG_SEED: return FC_SEED_LEN;
    case FC_MSG_ENROLL_GET: return 0;
    case FC_MSG_ENROLL_SET: return FC_ENROLL_SET_LEN;
    case FC_MSG_SECAGG_SETUP: return FC_SECAGG_SETUP_LEN;
    case FC_MSG_SECAGG_MASK: *min_len = FC_SECAGG_MASK_HDR_LEN; return -1;
    case FC_MSG_SECAGG_PEERS:
    case FC_MSG_SECAGG_SHARES_IN:
    case FC_MSG_SECAGG_UNMASK: *min_len = FC_SECAGG_LIST_HDR_LEN; return -1;
    case FC_MSG_MODEL_CHUNK: *min_len = FC_MODEL_CHUNK_HDR_LEN; return -1;
    case FC_MSG_SAMPLE:
    case FC_MSG_INFER: *min_len = FC_WINDOW_HDR_LEN; return -1;
    default: return -2; /* not a request this device understands */
    }
}

static void dispatch(const fc_header_t *h, const uint8_t *p) {
    switch (h->type) {
    case FC_MSG_HELLO: send_reply(h, FC_MSG_INFO, tx_payload, build_info(tx_payload)); break;
    case FC_MSG_STATS_GET: handle_stats(h); break;
    case FC_MSG_RESET: handle_reset(h); break;
    case FC_MSG_MODEL_BEGIN: handle_model_begin(h, p); break;
    case FC_MSG_MODEL_CHUNK: handle_model_chunk(h, p, h->length); break;
    case FC_MSG_MODEL_COMMIT: handle_model_commit(h, p); break;
#if FC_PROFILE_IS_REPLAY
    case FC_MSG_SAMPLE: handle_sample(h, p, h->length); break;
    case FC_MSG_INFER: handle_infer(h, p, h->length); break;
    case FC_MSG_SEED: handle_seed(h, p); break;
#else
    case FC_MSG_SAMPLE: /* host windows: replay profile only */
    case FC_MSG_INFER:
    case FC_MSG_SEED: send_nack(h, FC_NACK_UNSUPPORTED, 0); break;
#endif
    case FC_MSG_TRAIN: handle_train(h, p); break;
    case FC_MSG_UPDATE_GET: handle_update_get(h, p); break;
    case FC_MSG_CLEAR: handle_clear(h, p); break;
    case FC_MSG_ENROLL_GET: handle_enroll_get(h); break;
    case FC_MSG_ENROLL_SET: handle_enroll_set(h, p); break;
    case FC_MSG_SECAGG_SETUP:
    case FC_MSG_SECAGG_PEERS:
    case FC_MSG_SECAGG_SHARES_IN:
    case FC_MSG_SECAGG_MASK:
    case FC_MSG_SECAGG_UNMASK: handle_secagg(h, p); break;
    default: break;
    }
}

static void handle_frame(const fc_frame_t *f) {
    const fc_header_t *h = &f->hdr;
    if (h->device_id != fc_device_id() && h->device_id != FC_DEVICE_ANY) {
        return; /* for another device on a shared line */
    }
    if (h->type == FC_MSG_ACK) {
        return; /* the host acknowledging something: nothing to do */
    }
    const uint8_t *payload = NULL;
    uint8_t code = fc_auth_accept(f, &payload); /* decrypts authenticated frames */
    if (code != 0) {
        send_nack(h, code, 0);
        return;
    }
    size_t min_len = 0;
    int want = expected_length(h->type, &min_len);
    if (want == -2) {
        dev.counters.unknown_type++;
        send_nack(h, FC_NACK_UNKNOWN_TYPE, h->type);
        return;
    }
    if ((want >= 0 && h->length != (size_t)want) || h->length < min_len) {
        send_nack(h, FC_NACK_BAD_LENGTH, h->length);
    } else if (training.active && h->type != FC_MSG_HELLO && h->type != FC_MSG_STATS_GET &&
               h->type != FC_MSG_RESET) {
        send_nack(h, FC_NACK_BAD_STATE, FC_BUSY_DETAIL);
    } else {
        dispatch(h, payload);
    }
    fc_auth_request_done();
}

static void handle_rx_result(fc_rx_result_t r, const fc_frame_t *f) {
    switch (r) {
    case FC_RX_FRAME: handle_frame(f); break;
    case FC_RX_BAD_CRC: send_nack(NULL, FC_NACK_BAD_CRC, 0); break;
    case FC_RX_BAD_VERSION: send_nack(&f->hdr, FC_NACK_BAD_VERSION, f->hdr.version); break;
    case FC_RX_BAD_LENGTH: send_nack(&f->hdr, FC_NACK_BAD_FRAME, f->hdr.length); break;
    case FC_RX_RESERVED: send_nack(&f->hdr, FC_NACK_BAD_FRAME, f->hdr.flags); break;
    case FC_RX_BAD_COBS:
    case FC_RX_TOO_SHORT:
    case FC_RX_OVERSIZE: send_nack(NULL, FC_NACK_BAD_FRAME, (uint32_t)r); break;
    case FC_RX_NONE: break;
    }
}

static void feed_byte(uint8_t byte) {
    fc_frame_t f;
    fc_rx_result_t r = fc_rx_feed(&dev.rx, byte, &f);
    if (r != FC_RX_NONE) {
        handle_rx_result(r, &f);
    }
}

void fc_device_feed(const uint8_t *data, size_t len) {
    feed_cursor.data = data;
    feed_cursor.len = len;
    feed_cursor.next = 0;
    /* a TRAIN among these bytes may consume the ones after it (serve_link_while_training) */
    while (feed_cursor.next < feed_cursor.len) {
        feed_byte(feed_cursor.data[feed_cursor.next++]);
    }
    feed_cursor.data = NULL;
    feed_cursor.len = feed_cursor.next = 0;
}

void fc_device_poll(void) {
    static uint8_t chunk[256];
    size_t n = fc_uart_read(chunk, sizeof chunk);
    fc_device_feed(chunk, n);
}

void fc_device_init(void) {
    fc_rx_init(&dev.rx);
    (void)fc_examples_init(&dev.examples, D, C, 0);
    uint8_t seed[32];
    if (fc_entropy_fill(seed, sizeof seed) == 0) {
        fc_rng_seed(&dev.rng, seed);
        dev.rng_ready = 1;
    }
    memset(seed, 0, sizeof seed);
    dev.reset_reason = fc_platform_reset_reason();
    load_release();
    /* FORCE re-enrollment needs someone at the board: a power-on or external reset, never a
     * link RESET, a watchdog or a panic a remote peer might provoke. */
    fc_auth_init(dev.rng_ready ? &dev.rng : NULL,
                 dev.reset_reason == FC_RESET_POWER_ON || dev.reset_reason == FC_RESET_EXTERNAL);
    load_heads();
    int rc = backbone_init();
    send_unsolicited(FC_MSG_INFO, tx_payload, build_info(tx_payload));
    if (rc != 0) {
        fc_device_log(FC_LOG_ERROR, "backbone_init failed: examples cannot be embedded");
    }
}
