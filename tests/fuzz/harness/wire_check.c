/* Invariants on frames (see wire_check.h): the fuzz targets call these after every input. */
#include "wire_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedcore/protocol.h"

void fuzz_assert(int cond, const char *what, const char *file, int line) {
    if (!cond) {
        fprintf(stderr, "fuzz invariant violated at %s:%d: %s\n", file, line, what);
        abort();
    }
}

/* Payload layout of each device->host type: exact length, or the minimum when variable. */
static void check_payload(const fc_frame_t *f) {
    size_t n = f->hdr.length;
    const uint8_t *p = f->payload;
    switch (f->hdr.type) {
    case FC_MSG_INFO: FUZZ_ASSERT(n == FC_INFO_LEN, "INFO length"); break;
    case FC_MSG_LOG: FUZZ_ASSERT(n >= 1 && p[0] <= FC_LOG_ERROR, "LOG level"); break;
    case FC_MSG_ACK:
    case FC_MSG_NACK: FUZZ_ASSERT(n == FC_ACK_LEN, "ACK/NACK length"); break;
    case FC_MSG_STATS: FUZZ_ASSERT(n % 4u == 0 && n > 0, "STATS length"); break;
    case FC_MSG_UPDATE_READY: FUZZ_ASSERT(n >= 8, "UPDATE_READY length"); break;
    case FC_MSG_UPDATE_CHUNK:
        FUZZ_ASSERT(n > FC_UPDATE_CHUNK_HDR_LEN, "UPDATE_CHUNK length");
        break;
    case FC_MSG_RESULT: {
        FUZZ_ASSERT(n >= 4, "RESULT header");
        size_t classes = fc_get_u16(p + 2);
        FUZZ_ASSERT(n >= 4 + 4 * classes + 2, "RESULT logits");
        size_t embed = fc_get_u16(p + 4 + 4 * classes);
        FUZZ_ASSERT(n == 4 + 4 * classes + 2 + 4 * embed + 6, "RESULT layout");
        break;
    }
    case FC_MSG_ENROLL_INFO: FUZZ_ASSERT(n == FC_ENROLL_INFO_LEN, "ENROLL_INFO length"); break;
    /* SecAgg replies only answer sealed requests, which the fuzzer cannot forge (no key): if one
     * ever appears in plain output, the header check above fails first. */
    case FC_MSG_SECAGG_KEYS: FUZZ_ASSERT(n == FC_SECAGG_KEYS_LEN, "SECAGG_KEYS length"); break;
    case FC_MSG_SECAGG_SHARES:
    case FC_MSG_SECAGG_REVEAL:
        FUZZ_ASSERT(n >= FC_SECAGG_LIST_HDR_LEN, "SecAgg list header");
        break;
    case FC_MSG_SECAGG_MASKED:
        FUZZ_ASSERT(n >= FC_SECAGG_MASKED_HDR_LEN, "SECAGG_MASKED header");
        break;
    default: FUZZ_ASSERT(0, "device sent a type that is not device->host");
    }
    if (f->hdr.type == FC_MSG_ACK) {
        FUZZ_ASSERT(p[3] == 0, "ACK reserved byte");
    }
    if (f->hdr.type == FC_MSG_NACK) {
        FUZZ_ASSERT(p[3] != 0, "NACK without a code");
    }
}

size_t check_device_output(const uint8_t *wire, size_t len, uint32_t device_id) {
    static fc_rx_t rx;
    fc_rx_init(&rx);
    size_t frames = 0;
    for (size_t i = 0; i < len; i++) {
        fc_frame_t f;
        fc_rx_result_t r = fc_rx_feed(&rx, wire[i], &f);
        if (r == FC_RX_NONE) {
            continue;
        }
        FUZZ_ASSERT(r == FC_RX_FRAME, "device output does not decode as a frame");
        FUZZ_ASSERT(f.hdr.device_id == device_id, "device output with another device_id");
        FUZZ_ASSERT((f.hdr.flags & ~FC_FLAG_REPLY) == 0 && f.hdr.key_id == 0,
                    "device output with reserved header bits");
        check_payload(&f);
        frames++;
    }
    FUZZ_ASSERT(rx.len == 0, "device output ends inside a frame");
    return frames;
}

void check_frame_roundtrip(const fc_frame_t *frame) {
    static uint8_t wire[FC_LINK_MAX_WIRE];
    static uint8_t payload[FC_MAX_PAYLOAD];
    static fc_rx_t rx;
    FUZZ_ASSERT(frame->hdr.version == FC_PROTO_VERSION, "frame version");
    FUZZ_ASSERT(frame->hdr.length <= FC_MAX_PAYLOAD, "frame length");
    FUZZ_ASSERT((frame->hdr.flags & FC_FLAG_RESERVED_MASK) == 0, "reserved flags accepted");
    FUZZ_ASSERT(frame->hdr.key_id == 0 || (frame->hdr.flags & FC_FLAG_AUTH), "key_id accepted");
    FUZZ_ASSERT((frame->auth != NULL) == ((frame->hdr.flags & FC_FLAG_AUTH) != 0), "auth block");
    if (frame->hdr.flags & FC_FLAG_AUTH) {
        return; /* fc_frame_build never sets AUTH: nothing to rebuild */
    }
    memcpy(payload, frame->payload, frame->hdr.length);
    size_t n = fc_frame_build(&frame->hdr, payload, frame->hdr.length, wire, sizeof wire);
    FUZZ_ASSERT(n > 0, "a decoded frame cannot be rebuilt");
    fc_rx_init(&rx);
    fc_frame_t again;
    fc_rx_result_t last = FC_RX_NONE;
    size_t results = 0;
    for (size_t i = 0; i < n; i++) {
        fc_rx_result_t r = fc_rx_feed(&rx, wire[i], &again);
        if (r != FC_RX_NONE) {
            last = r;
            results++;
        }
    }
    FUZZ_ASSERT(results == 1 && last == FC_RX_FRAME, "rebuilt frame does not decode");
    FUZZ_ASSERT(memcmp(&again.hdr, &frame->hdr, sizeof again.hdr) == 0, "rebuilt header differs");
    FUZZ_ASSERT(memcmp(again.payload, payload, frame->hdr.length) == 0, "rebuilt payload differs");
}
