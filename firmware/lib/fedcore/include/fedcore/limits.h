/* Compile-time maxima and status codes shared by fedcore's head, examples and privacy code.
 *
 * Dimensions are runtime values (d, c) bounded by these maxima, so one build can run several
 * model sizes (the benchmarks use D x C = 32x7, 64x7, 64x10). Each maximum can be set with -D;
 * otherwise it follows the generated model_config.h when it is on the include path, else the
 * defaults below. */
#ifndef FEDCORE_LIMITS_H
#define FEDCORE_LIMITS_H

#if !defined(FEDCORE_MAX_D) || !defined(FEDCORE_MAX_C)
#if defined(__has_include)
#if __has_include("model_config.h")
#include "model_config.h"
#endif
#endif
#endif

#ifndef FEDCORE_MAX_D
#ifdef FEDHEAD_EMBED_DIM
#define FEDCORE_MAX_D FEDHEAD_EMBED_DIM
#else
#define FEDCORE_MAX_D 64
#endif
#endif

#ifndef FEDCORE_MAX_C
#ifdef FEDHEAD_NUM_CLASSES
#define FEDCORE_MAX_C FEDHEAD_NUM_CLASSES
#else
#define FEDCORE_MAX_C 10
#endif
#endif

/* Ring buffer capacity (labelled embeddings kept for training). */
#ifndef FEDCORE_MAX_EXAMPLES
#define FEDCORE_MAX_EXAMPLES 256
#endif

/* Parameters of one head: W (D x C, row-major) then b (C). */
#define FEDCORE_MAX_PARAMS (FEDCORE_MAX_D * FEDCORE_MAX_C + FEDCORE_MAX_C)

#if FEDCORE_MAX_D < 1 || FEDCORE_MAX_C < 2 || FEDCORE_MAX_C > 255 || FEDCORE_MAX_D > 65535
#error "fedcore: FEDCORE_MAX_D must be 1..65535 and FEDCORE_MAX_C 2..255"
#endif
#if FEDCORE_MAX_EXAMPLES < 1 || FEDCORE_MAX_EXAMPLES > 65535
#error "fedcore: FEDCORE_MAX_EXAMPLES must be 1..65535"
#endif

/* Status codes returned by fedcore functions (0 = success, negative = refused, nothing changed
 * unless the function's comment says otherwise). */
typedef enum {
    FC_OK = 0,
    FC_ERR_PARAM = -1,     /* a parameter is out of range (maps to NACK BAD_PARAM) */
    FC_ERR_NONFINITE = -2, /* NaN or Inf in an input or a result (NACK NONFINITE) */
    FC_ERR_NO_DATA = -3,   /* no examples to train on (NACK NO_DATA) */
    FC_ERR_SHAPE = -4,     /* d or c outside 1..FEDCORE_MAX_D / 2..FEDCORE_MAX_C (NACK SHAPE) */
    FC_ERR_ABORTED = -5    /* the caller's between-steps callback asked training to stop */
} fc_status_t;

#endif /* FEDCORE_LIMITS_H */
