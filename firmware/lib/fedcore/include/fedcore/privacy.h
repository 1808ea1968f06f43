/* Privatizing a head delta on the device: L2 clip, unbiased stochastic rounding to the integer
 * grid of step `scale`, discrete Gaussian noise on that grid, saturation to the wire width.
 * docs/PRIVACY.md ("Device: clipping, noise, quantization") explains the choices; the Python
 * twin is tools/fedref/privacy.py and draws the same random numbers in the same order.
 *
 * fc_privatize, exactly:
 *   norm = sqrt(sum_i (double)delta_i^2)  (double accumulation in index order)
 *   if clip > 0 and norm > clip: f = (float)(clip / norm); x_i = delta_i * f (float); CLIPPED
 *   else x_i = delta_i
 *   sigma = (double)noise_std / (double)scale
 *   T = fc_rounding_norm2_bound(clip, scale, n)   (integer-valued; inf without a clip)
 *   conditional rounding (Kairouz, Liu, Steinke 2021, section 4), at most
 *   FC_ROUND_MAX_ATTEMPTS attempts, each drawing exactly n u64:
 *     for i in order: y = x_i / scale (float); fl = floorf(y); frac = (double)y - (double)fl
 *         (exact, except for negative |y| < 2^-29 where frac rounds by < 2^-53)
 *       r_i = fc_rng_bernoulli(rng, frac)   (always one u64 drawn)
 *       q_i = fl + r_i, held in int64 (|y| >= 2^40 is clamped to +-2^40 and flagged SATURATED)
 *     accept the attempt when sum_i q_i^2 <= T (exact integers); T = inf accepts the first
 *   no attempt accepted (probability <= beta^FC_ROUND_MAX_ATTEMPTS): q_i = 0 for every i
 *   for i in order (the noise draws follow the last attempt's rounding draws):
 *     if sigma > 0: q_i += fc_discrete_gaussian(rng, sigma)
 *     out_q_i = q_i saturated to [-2^(bits-1), 2^(bits-1) - 1]   (SATURATED when it had to)
 * So before noise ||q||_2 <= fc_rounded_norm_bound(clip, scale, n) for every outcome: the
 * sensitivity the device's ledger and the aggregator's accountant use.
 * Decode on the host: delta_i ~= q_i * scale. */
#ifndef FEDCORE_PRIVACY_H
#define FEDCORE_PRIVACY_H

#include <stddef.h>
#include <stdint.h>

#include "fedcore/limits.h"
#include "fedcore/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The TRAIN fields of docs/PROTOCOL.md section 2.4 that drive privatization. */
typedef struct {
    float clip;      /* L2 bound C on delta; 0 = no clipping, < 0 invalid */
    float noise_std; /* sigma in delta units; 0 = no noise */
    float scale;     /* quantization step, > 0 */
    uint8_t bits;    /* 8, 16 or 32 */
} fc_privacy_params_t;

/* Flags reported with an update: the same bits as UPDATE_READY.flags. */
#define FC_PRIV_CLIPPED 0x01u
#define FC_PRIV_SATURATED 0x02u

/* Largest noise sigma in grid units (noise_std / scale) the sampler accepts. */
#define FC_MAX_SIGMA_INT 1048576.0

/* Conditional rounding: sqrt(2 ln(1/beta)) for the acceptance bound's beta = exp(-1/2), the
 * value Kairouz, Liu and Steinke recommend (Prop. 22: every attempt is accepted with
 * probability >= 1 - beta whenever ||x|| <= clip). 1.0 keeps the bound exact in double. */
#define FC_ROUND_TAIL 1.0
/* Attempts before the noised zero vector is released instead: beta^32 = e^-16 < 1.2e-7. */
#define FC_ROUND_MAX_ATTEMPTS 32u
/* Bounds at or above 2^53 are not conditioned on (they are not exact in double; the
 * conditional bound then gains nothing over the plain one either). */
#define FC_ROUND_EXACT_NORM2 9007199254740992.0

/* FC_OK, FC_ERR_NONFINITE (NaN/Inf field) or FC_ERR_PARAM (out of range, including
 * noise_std / scale > FC_MAX_SIGMA_INT). */
int fc_privacy_params_check(const fc_privacy_params_t *params);

/* L2 norm in double, accumulated in index order. */
double fc_l2_norm(const float *x, size_t n);

/* Clip x (n floats) to L2 norm <= clip in place (rule above); returns 1 if it scaled x. */
int fc_clip_l2(float *x, size_t n, float clip);

/* floor(x / scale) + Bernoulli(frac): unbiased, E[q] * scale = x. One u64 drawn. Requires
 * |x / scale| < 2^40 (fc_privatize clamps before calling). */
int64_t fc_stochastic_round(fc_rng_t *rng, float x, float scale);

/* Exact Bernoulli(exp(-num/den)) for integers 0 <= num <= den, den >= 1 (Canonne-Kamath-Steinke
 * Algorithm 1, with Bernoulli(num/(den*k)) drawn as Bernoulli(num/den) AND Bernoulli(1/k)). */
int fc_bernoulli_exp_rational(fc_rng_t *rng, uint32_t num, uint32_t den);

/* Bernoulli(exp(-gamma)) for a double gamma >= 0: floor(gamma) exact Bernoulli(exp(-1)) draws,
 * then the fractional part with fc_rng_bernoulli(frac / k). */
int fc_bernoulli_exp(fc_rng_t *rng, double gamma);

/* Discrete Laplace with scale t >= 1: P(z) proportional to exp(-|z| / t). Exact. */
int64_t fc_discrete_laplace(fc_rng_t *rng, uint32_t t);

/* Discrete Gaussian on the integers: P(z) proportional to exp(-z^2 / (2 sigma^2)),
 * 0 < sigma <= FC_MAX_SIGMA_INT (sigma <= 0 returns 0 and draws nothing).
 * CKS 2020 Algorithm 3: t = floor(sigma) + 1; repeat Y = DLap(t) until
 * Bernoulli(exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2))). */
int64_t fc_discrete_gaussian(fc_rng_t *rng, double sigma);

/* T, the bound on the rounded vector's squared L2 norm in grid units (an integer in a double):
 *   c = clip * (1 + 2^-22) / scale   (the clip's float slack, see fc_clip_l2)
 *   T = floor(min((c + sqrt(n))^2, c^2 + n/4 + FC_ROUND_TAIL * (c + sqrt(n)/2)))
 * (the first term always holds, the second is Kairouz-Liu-Steinke's conditional bound);
 * +inf when clip <= 0 (nothing to condition on) or T >= 2^53. */
double fc_rounding_norm2_bound(float clip, float scale, size_t n);

/* The L2 bound of the rounded vector before noise, in grid units, that fc_privatize enforces:
 * sqrt(T) rounded up (the next double above the correctly rounded sqrt, so never below the
 * real root), or c + sqrt(n) when T is +inf. The device's ledger takes its sensitivity from it. */
double fc_rounded_norm_bound(float clip, float scale, size_t n);

/* Rounding attempts of x_i = delta_i * factor on the grid until sum q_i^2 <= bound2 (rule
 * above). Returns the number of the accepted attempt (1-based), 0 when all
 * FC_ROUND_MAX_ATTEMPTS failed; *accepted gets the generator state the accepted attempt started
 * from (fc_privatize replays the rounding from it). bound2 = +inf accepts the first attempt. */
uint32_t fc_round_conditional(const float *delta, size_t n, float factor, float scale,
                              double bound2, fc_rng_t *rng, fc_rng_t *accepted);

/* Clip, round, add noise, saturate (rule above). out_q gets n values, *out_flags FC_PRIV_*.
 * FC_ERR_NONFINITE if delta has NaN/Inf, FC_ERR_PARAM/NONFINITE for bad params; out_q is then
 * left untouched and nothing is drawn from rng. */
int fc_privatize(const float *delta, size_t n, const fc_privacy_params_t *params, fc_rng_t *rng,
                 int32_t *out_q, uint8_t *out_flags);

/* The decode rule: value = q * scale (float). */
static inline float fc_dequantize(int32_t q, float scale) { return (float)q * scale; }

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_PRIVACY_H */
