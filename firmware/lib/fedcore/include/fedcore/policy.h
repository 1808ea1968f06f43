/* The device's privacy policy: fixed at build time, never changeable over the link.
 *
 * Every value is a compile-time constant with a documented default that a build may override
 * with -D (platformio.ini build_flags; docs/PRIVACY.md "The device's policy"). The replay
 * profile (fedcore/profile.h) has permissive defaults so simulations can run every privacy
 * mode; production defaults enforce:
 *   noise   sigma >= z_min * clip (checked in grid units, where the device adds the noise:
 *           noise_std/scale >= z_min * clip/scale)
 *   clip    0 < clip <= clip_max (clip 0 would mean "no bound")
 *   quant   bits allowed by bits_mask; scale_min_rel * clip <= scale <= scale_max_rel * clip
 *   work    epochs * example capacity <= max_work (the capacity, not the count held: a refusal
 *           must not tell the host how many examples the user has)
 *   ledger  delta and the lifetime epsilon budget of fedcore/ledger.h
 * The Python twin is tools/fedref/policy.py. */
#ifndef FEDCORE_POLICY_H
#define FEDCORE_POLICY_H

#include <math.h> /* INFINITY */
#include <stdint.h>

#include "fedcore/head.h"
#include "fedcore/privacy.h"
#include "fedcore/profile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Allowed wire widths, bitmask: 1 = 8 bits, 2 = 16 bits, 4 = 32 bits. */
#define FC_POLICY_BITS_8 0x01u
#define FC_POLICY_BITS_16 0x02u
#define FC_POLICY_BITS_32 0x04u

#if FC_PROFILE_IS_REPLAY
/* Replay (simulation) defaults: every mode the aggregator can run, still accounted. */
#define FC_POLICY_DEFAULT_Z_MIN 0.0
#define FC_POLICY_DEFAULT_CLIP_MAX 3.0e38
#define FC_POLICY_DEFAULT_SCALE_MIN_REL 0.0
#define FC_POLICY_DEFAULT_SCALE_MAX_REL 3.0e38
#define FC_POLICY_DEFAULT_EPSILON_BUDGET INFINITY
#define FC_POLICY_DEFAULT_ALLOW_NO_CLIP 1
#else
#define FC_POLICY_DEFAULT_Z_MIN 1.0
#define FC_POLICY_DEFAULT_CLIP_MAX 4.0
#define FC_POLICY_DEFAULT_SCALE_MIN_REL 0.0000152587890625 /* 2^-16 */
#define FC_POLICY_DEFAULT_SCALE_MAX_REL 0.0625             /* 2^-4 */
#define FC_POLICY_DEFAULT_EPSILON_BUDGET 16.0
#define FC_POLICY_DEFAULT_ALLOW_NO_CLIP 0
#endif

#ifndef FEDHEAD_POLICY_Z_MIN
#define FEDHEAD_POLICY_Z_MIN FC_POLICY_DEFAULT_Z_MIN
#endif
#ifndef FEDHEAD_POLICY_CLIP_MAX
#define FEDHEAD_POLICY_CLIP_MAX FC_POLICY_DEFAULT_CLIP_MAX
#endif
#ifndef FEDHEAD_POLICY_SCALE_MIN_REL
#define FEDHEAD_POLICY_SCALE_MIN_REL FC_POLICY_DEFAULT_SCALE_MIN_REL
#endif
#ifndef FEDHEAD_POLICY_SCALE_MAX_REL
#define FEDHEAD_POLICY_SCALE_MAX_REL FC_POLICY_DEFAULT_SCALE_MAX_REL
#endif
#ifndef FEDHEAD_POLICY_BITS_MASK
#define FEDHEAD_POLICY_BITS_MASK (FC_POLICY_BITS_8 | FC_POLICY_BITS_16 | FC_POLICY_BITS_32)
#endif
#ifndef FEDHEAD_POLICY_MAX_WORK
#define FEDHEAD_POLICY_MAX_WORK 8192u /* epochs x example capacity: 32 epochs of 256 */
#endif
#ifndef FEDHEAD_POLICY_DELTA
#define FEDHEAD_POLICY_DELTA 1e-5
#endif
#ifndef FEDHEAD_POLICY_EPSILON_BUDGET
#define FEDHEAD_POLICY_EPSILON_BUDGET FC_POLICY_DEFAULT_EPSILON_BUDGET
#endif
#ifndef FEDHEAD_POLICY_ALLOW_NO_CLIP
#define FEDHEAD_POLICY_ALLOW_NO_CLIP FC_POLICY_DEFAULT_ALLOW_NO_CLIP
#endif

typedef struct {
    double z_min;          /* noise multiplier floor: noise_std >= z_min * clip */
    double clip_max;       /* largest clip C */
    double scale_min_rel;  /* scale >= scale_min_rel * clip */
    double scale_max_rel;  /* scale <= scale_max_rel * clip */
    uint8_t bits_mask;     /* FC_POLICY_BITS_* allowed */
    uint8_t allow_no_clip; /* clip 0 (unbounded) allowed: replay simulations only */
    uint32_t max_work;     /* epochs * example capacity */
    double delta;          /* delta of the ledger's (epsilon, delta) */
    double epsilon_budget; /* lifetime epsilon at delta; INFINITY = no budget */
} fc_policy_t;

/* This build's policy. */
const fc_policy_t *fc_policy(void);

/* Verdicts: 0 = within the policy, else the NACK code (fedcore/protocol.h FC_NACK_POLICY_*). */
uint8_t fc_policy_check(const fc_policy_t *policy, const fc_train_params_t *train,
                        const fc_privacy_params_t *privacy, uint16_t example_capacity);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_POLICY_H */
