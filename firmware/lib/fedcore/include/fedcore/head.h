/* The personalization head: logits = b + e . W, W (d x c) row-major, float32 throughout;
 * softmax cross-entropy; mini-batch SGD with momentum, weight decay and optional per-example
 * gradient L2 clipping. The Python twin tools/fedref/head.py follows the same operation order,
 * so C and Python agree to float32 rounding (see docs/PRIVACY.md and the equivalence tests).
 *
 * Training algorithm (fc_head_train), exactly:
 *   order = [0, 1, ..., n-1]           (n = examples held, index 0 = oldest)
 *   v = 0 (momentum buffers for W and b)
 *   for each epoch:
 *     Fisher-Yates shuffle of order in place: for i = n-1 down to 1:
 *         j = fc_rng_below(rng, i + 1); swap(order[i], order[j])
 *     for each batch of `batch` consecutive entries of order (the last one may be shorter):
 *       gW = 0, gb = 0
 *       for each example (e, y) of the batch:
 *         z = forward(e); p = softmax(z); loss += xent; correct += argmax(z) == y
 *         g = p - onehot(y)
 *         if example_clip > 0:   (the example's gradient is the outer product e g^T plus g)
 *             norm = sqrtf(sum_c g_c^2 * (sum_j e_j^2 + 1))
 *             if norm > example_clip: g *= example_clip / norm
 *         gW += e g^T; gb += g
 *       k = 1/B (B = examples in this batch)
 *       W:  grad = gW * k + weight_decay * W;  v = momentum * v + grad;  W = W - lr * v
 *       b:  grad = gb * k;                     v = momentum * v + grad;  b = b - lr * v
 *   loss and accuracy are the means over the last epoch, measured before each step.
 * Weight decay applies to W only. exp and log are fc_expf / fc_logf below: float32 operations
 * in a fixed order (no libm, no double), so the twin replays them bit for bit with numpy. */
#ifndef FEDCORE_HEAD_H
#define FEDCORE_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "fedcore/examples.h"
#include "fedcore/limits.h"
#include "fedcore/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint16_t d, c;
    float w[FEDCORE_MAX_D * FEDCORE_MAX_C]; /* w[j * c + k], only d * c used */
    float b[FEDCORE_MAX_C];
} fc_head_t;

/* The TRAIN fields of docs/PROTOCOL.md section 2.4 that drive the optimizer. */
typedef struct {
    float lr;           /* > 0 */
    uint16_t epochs;    /* >= 1 */
    uint16_t batch;     /* >= 1 */
    float momentum;     /* 0 <= momentum < 1 */
    float weight_decay; /* >= 0 */
    float example_clip; /* per-example gradient L2 bound, 0 = off */
} fc_train_params_t;

typedef struct {
    float loss;        /* mean cross-entropy over the last epoch */
    float acc;         /* fraction of the last epoch's examples predicted right */
    uint32_t examples; /* examples trained on (per epoch) */
    uint32_t steps;    /* optimizer steps taken */
} fc_train_result_t;

/* Scratch memory for training; keep it static (it is about 3x a head plus the order). */
typedef struct {
    float gw[FEDCORE_MAX_D * FEDCORE_MAX_C];
    float gb[FEDCORE_MAX_C];
    float vw[FEDCORE_MAX_D * FEDCORE_MAX_C];
    float vb[FEDCORE_MAX_C];
    float z[FEDCORE_MAX_C];
    float p[FEDCORE_MAX_C];
    uint16_t order[FEDCORE_MAX_EXAMPLES];
} fc_train_workspace_t;

/* Set dims and copy parameters: w (d*c, row-major) and b (c); NULL means zeros.
 * FC_ERR_SHAPE on bad dims, FC_ERR_NONFINITE if a value is NaN/Inf (head left unchanged). */
int fc_head_init(fc_head_t *head, uint16_t d, uint16_t c, const float *w, const float *b);

/* d*c + c. */
size_t fc_head_num_params(const fc_head_t *head);

/* Flat parameters (W row-major, then b): the order of the head blob and of UPDATE's q values. */
void fc_head_get_params(const fc_head_t *head, float *params);
int fc_head_set_params(fc_head_t *head, const float *params); /* FC_ERR_NONFINITE: unchanged */

/* logits[c] = b[c] + sum_j e[j] * w[j*c + k], accumulated over j in order. */
void fc_head_forward(const fc_head_t *head, const float *embedding, float *logits);

/* Index of the largest logit (first on ties); logits may be NULL (scratch inside). */
uint8_t fc_head_predict(const fc_head_t *head, const float *embedding, float *logits);

/* exp(x) for x <= 0 in float32 (x > 0 is clamped to 0, x < -80 or NaN gives 0), relative error
 * about 2 ulp. Exactly: n = (x * log2e + 1.5*2^23) - 1.5*2^23 (round to nearest integer);
 * r = (x - n * 0.693359375) - n * -2.12194440e-4; p = Horner(cephes expf coefficients, r);
 * p = (p * (r * r) + r) + 1; result = p * 2^n, each operation rounded to float32. */
float fc_expf(float x);

/* log(x) in float32 for normal x > 0 (log 0 = -inf, negative or NaN -> NaN, +inf -> +inf,
 * subnormals -> log of the smallest normal): x = 2^e f with f in [sqrt(1/2), sqrt(2)),
 * u = (f - 1) / (f + 1), log f = 2 u (1 + u^2/3 + u^4/5 + u^6/7 + u^8/9) by Horner,
 * result = e * LN2_HI + (e * LN2_LO + log f). Absolute error below 1e-6 on [1, 16]. */
float fc_logf(float x);

/* p = softmax(z) (m = max z; p_k = fc_expf(z_k - m); s = sum p in order; p_k /= s).
 * Returns the cross-entropy -log p[label] as fc_logf(s) - (z[label] - m). */
float fc_softmax_xent(const float *logits, uint16_t c, uint8_t label, float *probs);

/* FC_OK when every field is finite and in range (see fc_train_params_t), else FC_ERR_PARAM
 * (FC_ERR_NONFINITE for NaN/Inf). */
int fc_train_params_check(const fc_train_params_t *params);

/* Train head in place on every example held (algorithm above). Uses the rng for shuffles only.
 * FC_ERR_NO_DATA without examples, FC_ERR_SHAPE if dims of head and examples differ,
 * FC_ERR_PARAM / FC_ERR_NONFINITE for bad params (head unchanged), FC_ERR_NONFINITE if training
 * diverged to NaN/Inf (head then holds the non-finite values: the caller must restore it). */
int fc_head_train(fc_head_t *head, const fc_examples_t *examples, const fc_train_params_t *params,
                  fc_rng_t *rng, fc_train_workspace_t *ws, fc_train_result_t *result);

/* Weight imprinting: add each class's prototype, the mean embedding of the examples held for
 * it, as a nearest-class-mean classifier scaled by `strength` (>= 0):
 *   sum_k = sum of e over the examples of class k, oldest first (float32, in that order)
 *   n_k = number of those examples (float32); classes with n_k = 0 are left unchanged
 *   mean_j = sum_kj / n_k;  W[j][k] += strength * mean_j;  norm2 += mean_j * mean_j (j in order)
 *   b[k] -= (0.5f * strength) * norm2
 * so that logit_k gains strength * (e . mean_k - |mean_k|^2 / 2), i.e. -strength/2 times the
 * squared distance to mean_k up to a term equal for every class. Personalization (TRAIN flag
 * IMPRINT) adds them after training from the global head: the personal head is then the sum of
 * the trained head and a nearest-mean classifier, which beats the trained head alone and
 * training from zero (docs/EVALUATION.md). Uses ws->gw and ws->gb as scratch.
 * FC_ERR_NONFINITE for a NaN/Inf strength (head unchanged) or result (the caller restores the
 * head, as after fc_head_train), FC_ERR_PARAM for strength < 0, FC_ERR_SHAPE / FC_ERR_NO_DATA as
 * fc_head_train. */
int fc_head_imprint(fc_head_t *head, const fc_examples_t *examples, float strength,
                    fc_train_workspace_t *ws);

/* Called by fc_head_train_hooked after every optimizer step (the device serves its link from
 * here while it trains). Return 0 to go on, nonzero to stop training. */
typedef int (*fc_train_step_fn)(void *ctx);

/* fc_head_train, calling between_steps(ctx) after every step (NULL: never). When it returns
 * nonzero, training stops with FC_ERR_ABORTED and head holds a partial result (restore it). */
int fc_head_train_hooked(fc_head_t *head, const fc_examples_t *examples,
                         const fc_train_params_t *params, fc_rng_t *rng, fc_train_workspace_t *ws,
                         fc_train_result_t *result, fc_train_step_fn between_steps, void *ctx);

/* 1 when every one of the n values is finite, |value| <= max_abs, and the L2 norm of all n
 * (accumulated in double) is <= max_l2; else 0. */
int fc_params_within_bound(const float *params, size_t n, float max_abs, float max_l2);

/* delta = local - global, flat (W row-major then b); both heads must have the same dims.
 * Returns the number of parameters written, 0 on a shape mismatch. */
size_t fc_head_delta(const fc_head_t *local, const fc_head_t *global, float *delta);

#ifdef __cplusplus
}
#endif

#endif /* FEDCORE_HEAD_H */
