/* Link framing: COBS( header | payload | [auth] | crc32 ) 0x00, per docs/PROTOCOL.md §1.
 *
 * The receiver is fed one byte at a time and owns one static-size buffer; decoding happens in
 * place, so a receiver costs FC_MAX_ENCODED bytes and never allocates. */
#ifndef FEDCORE_LINK_H
#define FEDCORE_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fedcore/protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint8_t version;
    uint8_t type;
    uint8_t flags;
    uint8_t key_id;
    uint32_t device_id;
    uint16_t seq;
    uint16_t length;
} fc_header_t;

/* A decoded frame. payload points into the receiver's buffer: valid until the next feed. */
typedef struct {
    fc_header_t hdr;
    const uint8_t *payload;
    const uint8_t *auth; /* FC_AUTH_LEN bytes when hdr.flags has FC_FLAG_AUTH, else NULL */
} fc_frame_t;

/* What one fed byte produced. */
typedef enum {
    FC_RX_NONE = 0,     /* nothing complete yet (or an empty frame between two 0x00) */
    FC_RX_FRAME,        /* a frame passed COBS, CRC and version checks */
    FC_RX_BAD_COBS,     /* bytes between delimiters are not valid COBS */
    FC_RX_TOO_SHORT,    /* decoded fewer bytes than header + CRC */
    FC_RX_BAD_CRC,      /* CRC mismatch: header untrusted */
    FC_RX_BAD_VERSION,  /* CRC fine, version not 1: frame.hdr is valid (NACK with its seq) */
    FC_RX_BAD_LENGTH,   /* CRC fine, header length disagrees with the bytes received */
    FC_RX_OVERSIZE,     /* buffer overflowed before a 0x00: dropped up to the next 0x00 */
    FC_RX_RESERVED      /* CRC fine, a reserved flag bit is set or key_id without AUTH */
} fc_rx_result_t;

typedef struct {
    uint32_t frames_ok;
    uint32_t bad_cobs; /* bad COBS, too short, length field disagreeing, reserved bits set */
    uint32_t bad_crc;
    uint32_t bad_version;
    uint32_t oversize;
} fc_link_counters_t;

typedef struct {
    uint8_t buf[FC_MAX_ENCODED];
    size_t len;
    bool overflowed;
    fc_link_counters_t counters;
} fc_rx_t;

void fc_rx_init(fc_rx_t *rx);

/* Feed one received byte. On FC_RX_FRAME (and FC_RX_BAD_VERSION / FC_RX_BAD_LENGTH /
 * FC_RX_RESERVED, whose header passed the CRC) *frame is filled. Counters are updated here. */
fc_rx_result_t fc_rx_feed(fc_rx_t *rx, uint8_t byte, fc_frame_t *frame);

/* Build a complete wire frame: a leading 0x00 (so anything the other side collected before —
 * boot text, noise — ends as its own bad frame instead of spoiling this one), COBS of header,
 * payload and CRC, and the closing 0x00. hdr->length is taken from payload_len. Returns the
 * number of bytes written to out, or 0 if payload_len > FC_MAX_PAYLOAD or out_cap is too small.
 * FC_LINK_MAX_WIRE bytes always suffice. Never sets FC_FLAG_AUTH (version 1 reserves it). */
#define FC_LINK_MAX_WIRE (FC_MAX_ENCODED + 2u)
size_t fc_frame_build(const fc_header_t *hdr, const uint8_t *payload, size_t payload_len,
                      uint8_t *out, size_t out_cap);

/* Little-endian field access used by every message codec. */
static inline uint16_t fc_get_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t fc_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t fc_get_u64(const uint8_t *p) {
    return (uint64_t)fc_get_u32(p) | ((uint64_t)fc_get_u32(p + 4) << 32);
}
static inline void fc_put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void fc_put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void fc_put_u64(uint8_t *p, uint64_t v) {
    fc_put_u32(p, (uint32_t)v);
    fc_put_u32(p + 4, (uint32_t)(v >> 32));
}
float fc_get_f32(const uint8_t *p);
void fc_put_f32(uint8_t *p, float v);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_LINK_H */
