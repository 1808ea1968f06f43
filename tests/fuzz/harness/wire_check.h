/* Checks that the fuzz targets apply to what fedcore emits and decodes. */
#ifndef FEDHEAD_FUZZ_WIRE_CHECK_H
#define FEDHEAD_FUZZ_WIRE_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "fedcore/link.h"

/* Abort (a fuzz finding) with a message when cond is false. */
#define FUZZ_ASSERT(cond, what) fuzz_assert((cond), (what), __FILE__, __LINE__)
void fuzz_assert(int cond, const char *what, const char *file, int line);

/* Every frame in wire (device output) must decode with fedcore's receiver, the C twin of
 * tools/link's StreamDecoder, as a device->host frame from device_id with a payload of its
 * type's layout. Returns the number of frames. */
size_t check_device_output(const uint8_t *wire, size_t len, uint32_t device_id);

/* A decoded frame rebuilt with fc_frame_build and decoded again gives the same frame. */
void check_frame_roundtrip(const fc_frame_t *frame);

#endif
