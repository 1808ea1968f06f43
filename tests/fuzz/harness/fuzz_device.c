/* libFuzzer target: the device message handler (fc_device_feed) with a fuzzing platform.
 *
 * device.c is compiled into this file so the invariants can look at the device's state after
 * every record; the platform below is the porting contract for fuzzing only: UART output
 * captured in memory, RAM storage (firmware/ports/common/ram_store.c) that can be made to fail,
 * a clock that advances one tick per reading, deterministic entropy.
 *
 * Input format (structure-aware, so most inputs reach the handlers past the CRC check): a
 * sequence of records, each starting with an op byte (op % 4):
 *   0 FRAME   u8 type, u8 ctl, u16 seq, u16 len, payload[len]: a valid frame (COBS, CRC) built
 *             with fc_frame_build and fed at once. ctl bits: 0 device_id ANY, 1 another device,
 *             2 REPLY flag, 3 a reserved flag bit, 4 key_id 1, 5 protocol version 2.
 *   1 RAW     u16 len, bytes[len]: fed as they are.
 *   2 BUSY    like FRAME, but queued: the UART delivers it while a TRAIN runs (between steps).
 *   3 PLATFORM u8 ctl: bit0 storage writes fail from now on, bit1 no entropy at the next boot,
 *             bit2 the application adds an example: u8 label and an input window follow (as
 *             many bytes as the input holds, zeros after its end) - the only way a production
 *             build gets examples.
 * Each input starts from empty storage and a RESET. tools/fuzz/seeds.py writes seed inputs of
 * every message type in this format. */
#include "../../../firmware/lib/fedcore/src/device.c"

#include "../../../firmware/ports/common/ram_store.h"
#include "wire_check.h"


#define FUZZ_DEVICE_ID 0x00F022EDu
#define OTHER_DEVICE_ID 0x00F022EEu
/* Polls of an empty UART a TRAIN may make before the harness sends RESET (bounds the work of
 * one input; the RESET path between training steps gets exercised on the way). */
#define IDLE_POLLS_BEFORE_RESET 4u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the fuzzing platform ------------------------------------------------------------------ */

static struct {
    uint8_t out[1u << 20]; /* everything the device wrote since the last check */
    size_t out_len;
    uint8_t busy[1u << 16]; /* bytes the UART delivers while training */
    size_t busy_len, busy_pos;
    uint32_t idle_polls;
    int reset_sent;
    int storage_fails;
    int entropy_missing;
    uint32_t ticks;
    uint32_t entropy_counter;
} plat;

static const uint8_t *wire_of_reset(size_t *len);

size_t fc_uart_read(uint8_t *buf, size_t cap) {
    (void)buf;
    (void)cap;
    return 0; /* the harness feeds bytes itself */
}

size_t fc_uart_read_now(uint8_t *buf, size_t cap) {
    size_t n = plat.busy_len - plat.busy_pos;
    if (n > 0) {
        n = n < cap ? n : cap;
        memcpy(buf, plat.busy + plat.busy_pos, n);
        plat.busy_pos += n;
        return n;
    }
    if (!training.active || plat.reset_sent || ++plat.idle_polls < IDLE_POLLS_BEFORE_RESET) {
        return 0;
    }
    size_t len = 0;
    const uint8_t *reset = wire_of_reset(&len);
    FUZZ_ASSERT(len <= cap, "RESET frame fits one read");
    memcpy(buf, reset, len);
    plat.reset_sent = 1;
    return len;
}

void fc_uart_write(const uint8_t *buf, size_t len) {
    FUZZ_ASSERT(len <= sizeof plat.out - plat.out_len, "device output buffer overflow");
    memcpy(plat.out + plat.out_len, buf, len);
    plat.out_len += len;
}

int fc_storage_save(const char *key, const uint8_t *data, size_t len) {
    return plat.storage_fails ? -1 : ram_store_put(key, data, len);
}

int fc_storage_load(const char *key, uint8_t *buf, size_t cap, size_t *len) {
    return ram_store_get(key, buf, cap, len);
}

int fc_storage_persistent(void) { return 1; }

int fc_entropy_fill(uint8_t *buf, size_t len) {
    if (plat.entropy_missing) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(plat.entropy_counter++ * 131u + 7u);
    }
    return 0;
}

uint32_t fc_clock_us(void) { return ++plat.ticks * 1000u; }
uint32_t fc_clock_ms(void) { return ++plat.ticks; }
uint32_t fc_device_id(void) { return FUZZ_DEVICE_ID; }
const char *fc_board_name(void) { return "fuzz"; }
void fc_platform_log(const char *msg) { (void)msg; }
uint32_t fc_platform_free_ram(void) { return 0; }
void fc_platform_reset(void) {}
uint8_t fc_platform_reset_reason(void) { return 0; }

/* ---- input records ------------------------------------------------------------------------- */

static size_t build_wire(uint8_t type, uint8_t ctl, uint16_t seq, const uint8_t *payload,
                         size_t len, uint8_t *out, size_t cap) {
    fc_header_t hdr = {
        .version = (ctl & 0x20u) ? FC_PROTO_VERSION + 1u : FC_PROTO_VERSION,
        .type = type,
        .flags = (uint8_t)(((ctl & 0x04u) ? FC_FLAG_REPLY : 0u) | ((ctl & 0x08u) ? 0x04u : 0u)),
        .key_id = (ctl & 0x10u) ? 1u : 0u,
        .device_id = (ctl & 0x01u) ? FC_DEVICE_ANY
                     : (ctl & 0x02u) ? OTHER_DEVICE_ID
                                     : FUZZ_DEVICE_ID,
        .seq = seq,
    };
    return fc_frame_build(&hdr, payload, len, out, cap);
}

static const uint8_t *wire_of_reset(size_t *len) {
    static uint8_t wire[64];
    *len = build_wire(FC_MSG_RESET, 0, 0xFFFE, NULL, 0, wire, sizeof wire);
    return wire;
}

/* Parse one FRAME/BUSY record at data[*pos]; returns the wire length written to out. */
static size_t frame_record(const uint8_t *data, size_t size, size_t *pos, uint8_t *out,
                           size_t cap) {
    if (size - *pos < 6) {
        *pos = size;
        return 0;
    }
    const uint8_t *r = data + *pos;
    size_t len = fc_get_u16(r + 4);
    size_t avail = size - *pos - 6;
    len = len < avail ? len : avail;
    len = len < FC_MAX_PAYLOAD ? len : FC_MAX_PAYLOAD;
    *pos += 6 + len;
    return build_wire(r[0], r[1], fc_get_u16(r + 2), r + 6, len, out, cap);
}

/* fc_device_add_example with the label and window at data[*pos] (zeros past the input). */
static void add_application_example(const uint8_t *data, size_t size, size_t *pos) {
    static int8_t window[FEDHEAD_INPUT_LEN];
    uint8_t label = *pos < size ? data[(*pos)++] : 0;
    size_t n = size - *pos < sizeof window ? size - *pos : sizeof window;
    memset(window, 0, sizeof window);
    memcpy(window, data + *pos, n);
    *pos += n;
    int rc = fc_device_add_example(window, label);
    FUZZ_ASSERT(rc == FC_OK || (rc == FC_ERR_PARAM && label >= C), "application example refused");
}

static void run_record(const uint8_t *data, size_t size, size_t *pos) {
    static uint8_t wire[FC_LINK_MAX_WIRE];
    uint8_t op = data[(*pos)++] % 4u;
    if (op == 0) {
        size_t n = frame_record(data, size, pos, wire, sizeof wire);
        fc_device_feed(wire, n);
    } else if (op == 1) {
        size_t len = size - *pos >= 2 ? fc_get_u16(data + *pos) : 0;
        *pos += size - *pos >= 2 ? 2 : size - *pos;
        len = len < size - *pos ? len : size - *pos;
        fc_device_feed(data + *pos, len);
        *pos += len;
    } else if (op == 2) {
        size_t room = sizeof plat.busy - plat.busy_len;
        size_t n = frame_record(data, size, pos, wire, sizeof wire);
        if (n <= room) {
            memcpy(plat.busy + plat.busy_len, wire, n);
            plat.busy_len += n;
        }
    } else if (*pos < size) {
        uint8_t ctl = data[(*pos)++];
        plat.storage_fails = ctl & 1u;
        plat.entropy_missing = (ctl >> 1) & 1u;
        if (ctl & 4u) {
            add_application_example(data, size, pos);
        }
    }
}

/* ---- invariants ----------------------------------------------------------------------------- */

typedef struct {
    int ready;
    uint32_t round;
    uint32_t crc;
} update_seen_t;

static int head_finite(const fc_head_t *h) {
    fc_head_get_params(h, scratch_params);
    return fc_params_within_bound(scratch_params, N_PARAMS, INFINITY, INFINITY);
}

static void check_state(update_seen_t *seen) {
    FUZZ_ASSERT(!training.active && !training.reset_requested, "training left running");
    FUZZ_ASSERT(head_finite(&dev.personal), "personal head not finite");
    fc_head_get_params(&dev.global, scratch_params);
    FUZZ_ASSERT(fc_params_within_bound(scratch_params, N_PARAMS, (float)FC_HEAD_MAX_ABS,
                                       (float)FC_HEAD_MAX_L2),
                "global head beyond the norm bound");
    const fc_examples_t *ex = &dev.examples;
    FUZZ_ASSERT(ex->capacity <= FEDCORE_MAX_EXAMPLES && ex->count <= ex->capacity,
                "example count out of bounds");
    for (uint16_t i = 0; i < ex->count; i++) {
        uint8_t label = 0;
        (void)fc_examples_get(ex, i, &label);
        FUZZ_ASSERT(label < C, "stored label out of range");
    }
    FUZZ_ASSERT(dev.transfer.held <= HEAD_BLOB_LEN, "model transfer beyond the blob");
    const fc_policy_t *policy = fc_policy();
    FUZZ_ASSERT(fc_ledger_epsilon(dev.ledger.rho, policy->delta) <= policy->epsilon_budget,
                "ledger epsilon beyond the lifetime budget");
    const update_t *u = &dev.update;
    if (!u->ready) {
        FUZZ_ASSERT(!seen->ready, "a released update disappeared");
        return;
    }
    FUZZ_ASSERT(u->total_len > 0 && RELEASE_Q_OFFSET + u->total_len <= sizeof u->blob,
                "update length");
    FUZZ_ASSERT(u->round == dev.ledger.last_round, "update round differs from the ledger's");
    uint32_t crc = fc_crc32(u->blob + RELEASE_Q_OFFSET, u->total_len);
    if (seen->ready) {
        /* One update per round, also across RESET: same round, same bytes; rounds increase. */
        FUZZ_ASSERT(u->round != seen->round || crc == seen->crc,
                    "update bytes changed within one round");
        FUZZ_ASSERT(u->round >= seen->round, "update round went back");
    }
    *seen = (update_seen_t){1, u->round, crc};
}

static void check_output(void) {
    (void)check_device_output(plat.out, plat.out_len, FUZZ_DEVICE_ID);
    plat.out_len = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the scalars only: clearing the big buffers for every input would dominate the run */
    plat.out_len = plat.busy_len = plat.busy_pos = 0;
    plat.idle_polls = plat.ticks = plat.entropy_counter = 0;
    plat.reset_sent = plat.storage_fails = plat.entropy_missing = 0;
    ram_store_clear();
    size_t len = 0;
    const uint8_t *reset = wire_of_reset(&len);
    fc_device_feed(reset, len); /* every input starts from a freshly booted device */
    check_output();
    update_seen_t seen = {0};
    size_t pos = 0;
    while (pos < size) {
        plat.idle_polls = 0;
        plat.reset_sent = 0;
        run_record(data, size, &pos);
        check_output();
        check_state(&seen);
    }
    return 0;
}
