/* libFuzzer target: fedcore's frame receiver (link.c, cobs.c, crc32.c) fed arbitrary bytes.
 * Invariants: every accepted frame is well formed and survives rebuild + decode unchanged;
 * every non-empty block between delimiters is counted exactly once. */
#include <stddef.h>
#include <stdint.h>

#include "fedcore/link.h"
#include "wire_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t counted(const fc_link_counters_t *c) {
    return c->frames_ok + c->bad_cobs + c->bad_crc + c->bad_version + c->oversize;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static fc_rx_t rx;
    fc_rx_init(&rx);
    uint32_t results = 0;
    for (size_t i = 0; i < size; i++) {
        fc_frame_t frame;
        fc_rx_result_t r = fc_rx_feed(&rx, data[i], &frame);
        if (r == FC_RX_NONE) {
            continue;
        }
        results++;
        FUZZ_ASSERT(data[i] == 0, "a result before the delimiter");
        if (r == FC_RX_FRAME) {
            check_frame_roundtrip(&frame);
        }
    }
    FUZZ_ASSERT(counted(&rx.counters) == results, "each bad block is counted exactly once");
    FUZZ_ASSERT(rx.len <= sizeof rx.buf, "receiver buffer bound");
    return 0;
}
