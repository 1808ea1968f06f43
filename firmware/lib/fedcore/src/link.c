/* Link framing per docs/PROTOCOL.md §1: byte-wise receiver and frame builder. */
#include "fedcore/link.h"

#include <string.h>

#include "fedcore/cobs.h"
#include "fedcore/crc32.h"

float fc_get_f32(const uint8_t *p) {
    uint32_t bits = fc_get_u32(p);
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

void fc_put_f32(uint8_t *p, float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    fc_put_u32(p, bits);
}

void fc_rx_init(fc_rx_t *rx) {
    memset(rx, 0, sizeof *rx);
}

static void parse_header(const uint8_t *p, fc_header_t *hdr) {
    hdr->version = p[0];
    hdr->type = p[1];
    hdr->flags = p[2];
    hdr->key_id = p[3];
    hdr->device_id = fc_get_u32(p + 4);
    hdr->seq = fc_get_u16(p + 8);
    hdr->length = fc_get_u16(p + 10);
}

/* Check one decoded frame of n bytes held in rx->buf. */
static fc_rx_result_t check_frame(fc_rx_t *rx, size_t n, fc_frame_t *frame) {
    const uint8_t *p = rx->buf;
    if (n < FC_HEADER_LEN + FC_CRC_LEN) {
        rx->counters.bad_cobs++;
        return FC_RX_TOO_SHORT;
    }
    if (fc_crc32(p, n - FC_CRC_LEN) != fc_get_u32(p + n - FC_CRC_LEN)) {
        rx->counters.bad_crc++;
        return FC_RX_BAD_CRC;
    }
    parse_header(p, &frame->hdr);
    frame->payload = p + FC_HEADER_LEN;
    frame->auth = NULL;
    if (frame->hdr.version != FC_PROTO_VERSION) {
        rx->counters.bad_version++;
        return FC_RX_BAD_VERSION;
    }
    if ((frame->hdr.flags & FC_FLAG_RESERVED_MASK) != 0 ||
        (frame->hdr.key_id != 0 && !(frame->hdr.flags & FC_FLAG_AUTH))) {
        rx->counters.bad_cobs++; /* a bad frame, like the Python twin counts it */
        return FC_RX_RESERVED;
    }
    size_t auth = (frame->hdr.flags & FC_FLAG_AUTH) ? FC_AUTH_LEN : 0u;
    if (frame->hdr.length > FC_MAX_PAYLOAD ||
        n != FC_HEADER_LEN + frame->hdr.length + auth + FC_CRC_LEN) {
        rx->counters.bad_cobs++; /* counted as a bad frame, like the Python twin */
        return FC_RX_BAD_LENGTH;
    }
    if (auth) {
        frame->auth = p + FC_HEADER_LEN + frame->hdr.length;
    }
    rx->counters.frames_ok++;
    return FC_RX_FRAME;
}

fc_rx_result_t fc_rx_feed(fc_rx_t *rx, uint8_t byte, fc_frame_t *frame) {
    if (byte != 0) {
        if (rx->len < sizeof rx->buf) {
            rx->buf[rx->len++] = byte;
        } else {
            rx->overflowed = true;
        }
        return FC_RX_NONE;
    }
    size_t len = rx->len;
    bool overflowed = rx->overflowed;
    rx->len = 0;
    rx->overflowed = false;
    if (overflowed) {
        rx->counters.oversize++;
        return FC_RX_OVERSIZE;
    }
    if (len == 0) {
        return FC_RX_NONE; /* an empty frame: senders put 0x00 before frames to resynchronise */
    }
    size_t n = 0;
    if (fc_cobs_decode(rx->buf, len, rx->buf, sizeof rx->buf, &n) != 0) {
        rx->counters.bad_cobs++;
        return FC_RX_BAD_COBS;
    }
    return check_frame(rx, n, frame);
}

size_t fc_frame_build(const fc_header_t *hdr, const uint8_t *payload, size_t payload_len,
                      uint8_t *out, size_t out_cap) {
    /* The raw frame is staged at the end of out, then COBS-encoded to the front: encoding
     * writes at most one byte ahead per 254 read, so front and back never collide when the
     * raw frame starts at least FC_COBS_MAX_ENCODED(raw) - raw + 1 bytes in. */
    size_t raw_len = FC_HEADER_LEN + payload_len + FC_CRC_LEN;
    if (payload_len > FC_MAX_PAYLOAD || out_cap < FC_COBS_MAX_ENCODED(raw_len) + 2u) {
        return 0;
    }
    uint8_t *raw = out + out_cap - raw_len;
    raw[0] = hdr->version;
    raw[1] = hdr->type;
    raw[2] = (uint8_t)(hdr->flags & (uint8_t)~FC_FLAG_AUTH);
    raw[3] = hdr->key_id;
    fc_put_u32(raw + 4, hdr->device_id);
    fc_put_u16(raw + 8, hdr->seq);
    fc_put_u16(raw + 10, (uint16_t)payload_len);
    if (payload_len > 0) {
        memmove(raw + FC_HEADER_LEN, payload, payload_len);
    }
    fc_put_u32(raw + FC_HEADER_LEN + payload_len, fc_crc32(raw, FC_HEADER_LEN + payload_len));
    out[0] = 0;
    size_t enc = fc_cobs_encode(raw, raw_len, out + 1, out_cap - 1);
    out[1 + enc] = 0;
    return enc + 2u;
}
