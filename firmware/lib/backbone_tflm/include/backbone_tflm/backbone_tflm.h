/* What backbone_tflm offers besides fedcore/backbone.h. */
#ifndef BACKBONE_TFLM_H
#define BACKBONE_TFLM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Arena bytes the interpreter actually uses (0 before a successful backbone_init). Compare with
 * FEDHEAD_ARENA_BYTES, the generator's measured need plus margin. */
size_t backbone_tflm_arena_used(void);

#ifdef __cplusplus
}
#endif

#endif /* BACKBONE_TFLM_H */
