/* The build-time privacy policy (rules in fedcore/policy.h; twin: tools/fedref/policy.py). */
#include "fedcore/policy.h"

#include <math.h>

#include "fedcore/protocol.h"

static const fc_policy_t kPolicy = {
    .z_min = FEDHEAD_POLICY_Z_MIN,
    .clip_max = FEDHEAD_POLICY_CLIP_MAX,
    .scale_min_rel = FEDHEAD_POLICY_SCALE_MIN_REL,
    .scale_max_rel = FEDHEAD_POLICY_SCALE_MAX_REL,
    .bits_mask = FEDHEAD_POLICY_BITS_MASK,
    .allow_no_clip = FEDHEAD_POLICY_ALLOW_NO_CLIP,
    .max_work = FEDHEAD_POLICY_MAX_WORK,
    .delta = FEDHEAD_POLICY_DELTA,
    .epsilon_budget = FEDHEAD_POLICY_EPSILON_BUDGET,
};

const fc_policy_t *fc_policy(void) { return &kPolicy; }

static uint8_t bits_flag(uint8_t bits) {
    return bits == 8 ? FC_POLICY_BITS_8 : bits == 16 ? FC_POLICY_BITS_16
                                        : bits == 32 ? FC_POLICY_BITS_32 : 0u;
}

static uint8_t check_clip(const fc_policy_t *policy, double clip) {
    if (clip == 0.0) {
        return policy->allow_no_clip ? 0u : (uint8_t)FC_NACK_POLICY_CLIP;
    }
    return clip > policy->clip_max ? (uint8_t)FC_NACK_POLICY_CLIP : 0u;
}

/* In grid units, as fc_privatize noises: sigma_int = noise_std / scale. */
static uint8_t check_noise(const fc_policy_t *policy, const fc_privacy_params_t *p) {
    double sigma_int = (double)p->noise_std / (double)p->scale;
    double floor_int = policy->z_min * (double)p->clip / (double)p->scale;
    return sigma_int >= floor_int ? 0u : (uint8_t)FC_NACK_POLICY_NOISE;
}

static uint8_t check_quant(const fc_policy_t *policy, const fc_privacy_params_t *p) {
    if ((bits_flag(p->bits) & policy->bits_mask) == 0u) {
        return FC_NACK_POLICY_QUANT;
    }
    double scale = (double)p->scale;
    double clip = (double)p->clip;
    int outside = scale < policy->scale_min_rel * clip || scale > policy->scale_max_rel * clip;
    if (clip > 0.0 && outside) {
        return FC_NACK_POLICY_QUANT;
    }
    return 0u;
}

uint8_t fc_policy_check(const fc_policy_t *policy, const fc_train_params_t *train,
                        const fc_privacy_params_t *privacy, uint16_t example_capacity) {
    uint8_t code = check_clip(policy, (double)privacy->clip);
    if (code == 0u) {
        code = check_noise(policy, privacy);
    }
    if (code == 0u) {
        code = check_quant(policy, privacy);
    }
    if (code == 0u && (uint64_t)train->epochs * example_capacity > policy->max_work) {
        code = FC_NACK_POLICY_WORK;
    }
    return code;
}
