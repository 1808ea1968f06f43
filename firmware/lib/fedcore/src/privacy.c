/* Clip, stochastic rounding and discrete Gaussian noise (rules in fedcore/privacy.h).
 * The samplers follow Canonne, Kamath, Steinke, "The Discrete Gaussian for Differential
 * Privacy" (NeurIPS 2020), Algorithms 1-3; docs/PRIVACY.md says where floating point enters. */
#include "fedcore/privacy.h"

#include <math.h>

/* |y| beyond this is saturated before rounding: it keeps every intermediate inside int64 and
 * is far outside every wire width (32 bits at most). */
#define FC_Q_CLAMP 1099511627776.0f /* 2^40 */

int fc_privacy_params_check(const fc_privacy_params_t *p)
{
    if (!isfinite(p->clip) || !isfinite(p->noise_std) || !isfinite(p->scale)) {
        return FC_ERR_NONFINITE;
    }
    if (p->clip < 0.0f || p->noise_std < 0.0f || !(p->scale > 0.0f)) {
        return FC_ERR_PARAM;
    }
    if (p->bits != 8 && p->bits != 16 && p->bits != 32) {
        return FC_ERR_PARAM;
    }
    if ((double)p->noise_std / (double)p->scale > FC_MAX_SIGMA_INT) {
        return FC_ERR_PARAM;
    }
    return FC_OK;
}

double fc_l2_norm(const float *x, size_t n)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) {
        acc += (double)x[i] * (double)x[i];
    }
    return sqrt(acc);
}

int fc_clip_l2(float *x, size_t n, float clip)
{
    double norm = fc_l2_norm(x, n);
    if (!(clip > 0.0f) || !(norm > (double)clip)) {
        return 0;
    }
    float f = (float)((double)clip / norm);
    for (size_t i = 0; i < n; i++) {
        x[i] *= f;
    }
    return 1;
}

int64_t fc_stochastic_round(fc_rng_t *rng, float x, float scale)
{
    float y = x / scale;
    float fl = floorf(y);
    double frac = (double)y - (double)fl;
    return (int64_t)fl + fc_rng_bernoulli(rng, frac);
}

int fc_bernoulli_exp_rational(fc_rng_t *rng, uint32_t num, uint32_t den)
{
    /* Alg. 1 for gamma = num/den in [0, 1]: K = 1; while Bernoulli(gamma / K): K++;
     * the result is K odd. Bernoulli(gamma / K) = Bernoulli(num/den) AND Bernoulli(1/K), so every
     * draw is an exact integer comparison and nothing overflows. */
    uint32_t k = 1;
    while (k < UINT32_MAX) {
        int a = fc_rng_below(rng, den) < num;
        if (a) {
            a = fc_rng_below(rng, k) == 0;
        }
        if (!a) {
            break;
        }
        k++;
    }
    return (int)(k & 1u);
}

int fc_bernoulli_exp(fc_rng_t *rng, double gamma)
{
    double whole = floor(gamma);
    for (double i = 0.0; i < whole; i += 1.0) {
        if (!fc_bernoulli_exp_rational(rng, 1, 1)) {
            return 0;
        }
    }
    double frac = gamma - whole;
    uint32_t k = 1;
    while (k < UINT32_MAX && fc_rng_bernoulli(rng, frac / (double)k)) {
        k++;
    }
    return (int)(k & 1u);
}

int64_t fc_discrete_laplace(fc_rng_t *rng, uint32_t t)
{
    for (;;) {
        uint32_t u = fc_rng_below(rng, t);
        if (!fc_bernoulli_exp_rational(rng, u, t)) {
            continue;
        }
        int64_t v = 0;
        while (fc_bernoulli_exp_rational(rng, 1, 1)) {
            v++;
        }
        int negative = (int)(fc_rng_u32(rng) & 1u);
        if (negative && u == 0 && v == 0) {
            continue; /* -0 and +0 would double-count zero */
        }
        int64_t z = (int64_t)u + (int64_t)t * v;
        return negative ? -z : z;
    }
}

int64_t fc_discrete_gaussian(fc_rng_t *rng, double sigma)
{
    if (!(sigma > 0.0)) {
        return 0;
    }
    if (sigma > FC_MAX_SIGMA_INT) {
        sigma = FC_MAX_SIGMA_INT;
    }
    uint32_t t = (uint32_t)floor(sigma) + 1u;
    double sigma2 = sigma * sigma;
    for (;;) {
        int64_t y = fc_discrete_laplace(rng, t);
        double dev = fabs((double)y) - sigma2 / (double)t;
        if (fc_bernoulli_exp(rng, dev * dev / (2.0 * sigma2))) {
            return y;
        }
    }
}

static int32_t saturate(int64_t q, uint8_t bits, int *saturated)
{
    int64_t hi = (int64_t)((UINT64_C(1) << (bits - 1u)) - 1u);
    int64_t lo = -hi - 1;
    if (q > hi) {
        *saturated = 1;
        return (int32_t)hi;
    }
    if (q < lo) {
        *saturated = 1;
        return (int32_t)lo;
    }
    return (int32_t)q;
}

double fc_rounding_norm2_bound(float clip, float scale, size_t n)
{
    if (!(clip > 0.0f) || !(scale > 0.0f)) {
        return INFINITY;
    }
    double c = (double)clip * (1.0 + 0x1p-22) / (double)scale;
    double root_n = sqrt((double)n);
    double plain = (c + root_n) * (c + root_n);
    double conditional = c * c + (double)n / 4.0 + FC_ROUND_TAIL * (c + root_n / 2.0);
    double bound = conditional < plain ? conditional : plain;
    return bound < FC_ROUND_EXACT_NORM2 ? floor(bound) : INFINITY;
}

double fc_rounded_norm_bound(float clip, float scale, size_t n)
{
    double bound2 = fc_rounding_norm2_bound(clip, scale, n);
    if (isinf(bound2)) {
        return (double)clip * (1.0 + 0x1p-22) / (double)scale + sqrt((double)n);
    }
    return nextafter(sqrt(bound2), INFINITY); /* never below the real sqrt(T) */
}

/* Rounding of one coordinate as it goes on the wire: |y| >= 2^40 (possible only without a
 * clip) is clamped and flagged, still drawing the u64 so the stream stays aligned. */
static int64_t round_coordinate(fc_rng_t *rng, float x, float scale, int *saturated)
{
    float y = x / scale;
    if (fabsf(y) >= FC_Q_CLAMP) {
        (void)fc_rng_u64(rng);
        *saturated = 1;
        return y > 0.0f ? (int64_t)FC_Q_CLAMP : -(int64_t)FC_Q_CLAMP;
    }
    return fc_stochastic_round(rng, x, scale);
}

/* One rounding attempt's sum of squares, exact up to cap (< 2^53), cap + 1 beyond it. */
static uint64_t attempt_norm2(const float *delta, size_t n, float factor, float scale,
                              fc_rng_t *rng, uint64_t cap)
{
    uint64_t sum = 0;
    int ignored = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t q = round_coordinate(rng, delta[i] * factor, scale, &ignored);
        uint64_t mag = q < 0 ? (uint64_t)(-q) : (uint64_t)q;
        if (sum > cap) {
            continue; /* already rejected; the remaining draws keep the stream's length fixed */
        }
        sum = mag >= (UINT64_C(1) << 27) ? cap + 1u : sum + mag * mag; /* no overflow: < 2^55 */
        if (sum > cap) {
            sum = cap + 1u;
        }
    }
    return sum;
}

uint32_t fc_round_conditional(const float *delta, size_t n, float factor, float scale,
                              double bound2, fc_rng_t *rng, fc_rng_t *accepted)
{
    int conditioned = !isinf(bound2);
    uint64_t cap = conditioned ? (uint64_t)bound2 : 0u;
    for (uint32_t attempt = 1; attempt <= FC_ROUND_MAX_ATTEMPTS; attempt++) {
        *accepted = *rng;
        uint64_t norm2 = attempt_norm2(delta, n, factor, scale, rng, cap);
        if (!conditioned || norm2 <= cap) {
            return attempt;
        }
    }
    return 0;
}

int fc_privatize(const float *delta, size_t n, const fc_privacy_params_t *params, fc_rng_t *rng,
                 int32_t *out_q, uint8_t *out_flags)
{
    int status = fc_privacy_params_check(params);
    if (status != FC_OK) {
        return status;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(delta[i])) {
            return FC_ERR_NONFINITE;
        }
    }
    double norm = fc_l2_norm(delta, n);
    int clipped = params->clip > 0.0f && norm > (double)params->clip;
    float factor = clipped ? (float)((double)params->clip / norm) : 1.0f; /* x * 1.0f == x */
    double sigma = (double)params->noise_std / (double)params->scale;
    double bound2 = fc_rounding_norm2_bound(params->clip, params->scale, n);
    /* Draw roundings until one fits the bound; the accepted one is replayed from its saved
     * generator state below, so no buffer of n int64 is needed. All attempts failing
     * (probability < beta^FC_ROUND_MAX_ATTEMPTS) releases the noised zero vector, whose norm
     * is within the bound too: the ledger's sensitivity holds for every outcome. */
    fc_rng_t replay;
    uint32_t attempt = fc_round_conditional(delta, n, factor, params->scale, bound2, rng, &replay);
    int saturated = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t q = 0;
        if (attempt != 0) {
            q = round_coordinate(&replay, delta[i] * factor, params->scale, &saturated);
        }
        if (sigma > 0.0) {
            q += fc_discrete_gaussian(rng, sigma);
        }
        out_q[i] = saturate(q, params->bits, &saturated);
    }
    *out_flags = (uint8_t)((clipped ? FC_PRIV_CLIPPED : 0u) | (saturated ? FC_PRIV_SATURATED : 0u));
    return FC_OK;
}
