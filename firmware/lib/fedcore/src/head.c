/* Head forward, softmax cross-entropy and mini-batch SGD (algorithm in fedcore/head.h).
 * The loops keep a fixed operation order because tools/fedref/head.py replays it in float32;
 * builds must not contract a*b+c into FMAs (-ffp-contract=off) where bit-identity matters. */
#include "fedcore/head.h"

#include <math.h>
#include <string.h>

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            return 0;
        }
    }
    return 1;
}

int fc_head_init(fc_head_t *head, uint16_t d, uint16_t c, const float *w, const float *b)
{
    if (d < 1 || d > FEDCORE_MAX_D || c < 2 || c > FEDCORE_MAX_C) {
        return FC_ERR_SHAPE;
    }
    size_t nw = (size_t)d * c;
    if ((w && !all_finite(w, nw)) || (b && !all_finite(b, c))) {
        return FC_ERR_NONFINITE;
    }
    head->d = d;
    head->c = c;
    if (w) {
        memcpy(head->w, w, nw * sizeof(float));
    } else {
        memset(head->w, 0, nw * sizeof(float));
    }
    if (b) {
        memcpy(head->b, b, c * sizeof(float));
    } else {
        memset(head->b, 0, c * sizeof(float));
    }
    return FC_OK;
}

size_t fc_head_num_params(const fc_head_t *head) { return (size_t)head->d * head->c + head->c; }

void fc_head_get_params(const fc_head_t *head, float *params)
{
    size_t nw = (size_t)head->d * head->c;
    memcpy(params, head->w, nw * sizeof(float));
    memcpy(params + nw, head->b, head->c * sizeof(float));
}

int fc_head_set_params(fc_head_t *head, const float *params)
{
    size_t nw = (size_t)head->d * head->c;
    if (!all_finite(params, nw + head->c)) {
        return FC_ERR_NONFINITE;
    }
    memcpy(head->w, params, nw * sizeof(float));
    memcpy(head->b, params + nw, head->c * sizeof(float));
    return FC_OK;
}

/* Rows of W are taken four at a time so each logit is loaded and stored once per four
 * multiply-adds; every logit still sums its terms in row order (the twin's order). */
void fc_head_forward(const fc_head_t *head, const float *embedding, float *logits)
{
    const uint16_t c = head->c, d = head->d;
    memcpy(logits, head->b, c * sizeof(float));
    uint16_t j = 0;
    for (; j + 4u <= d; j = (uint16_t)(j + 4u)) {
        const float e0 = embedding[j], e1 = embedding[j + 1], e2 = embedding[j + 2],
                    e3 = embedding[j + 3];
        const float *r0 = &head->w[(size_t)j * c];
        const float *r1 = r0 + c, *r2 = r1 + c, *r3 = r2 + c;
        for (uint16_t k = 0; k < c; k++) {
            float z = logits[k];
            z += e0 * r0[k];
            z += e1 * r1[k];
            z += e2 * r2[k];
            z += e3 * r3[k];
            logits[k] = z;
        }
    }
    for (; j < d; j++) {
        const float e = embedding[j];
        const float *row = &head->w[(size_t)j * c];
        for (uint16_t k = 0; k < c; k++) {
            logits[k] += e * row[k];
        }
    }
}

static uint8_t argmax(const float *z, uint16_t c)
{
    uint8_t best = 0;
    for (uint16_t k = 1; k < c; k++) {
        if (z[k] > z[best]) {
            best = (uint8_t)k;
        }
    }
    return best;
}

uint8_t fc_head_predict(const fc_head_t *head, const float *embedding, float *logits)
{
    float scratch[FEDCORE_MAX_C];
    float *z = logits ? logits : scratch;
    fc_head_forward(head, embedding, z);
    return argmax(z, head->c);
}

/* Cody-Waite split of ln 2 (the high part has 12 significant bits, so n * LN2_HI is exact for
 * |n| < 2^12) and cephes' degree-5 minimax polynomial for exp on [-ln2/2, ln2/2]. */
#define FC_LOG2E 1.44269504088896341f
#define FC_LN2_HI 0.693359375f
#define FC_LN2_LO -2.12194440e-4f
#define FC_ROUND_MAGIC 12582912.0f /* 1.5 * 2^23: x + M - M rounds x to an integer (|x| < 2^22) */
#define FC_EXP_MIN -80.0f          /* below this exp is taken as 0: results stay normal floats */

static float float_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t bits_from_float(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

float fc_expf(float x)
{
    if (!(x >= FC_EXP_MIN)) {
        return 0.0f; /* also NaN: keeps the float -> int conversion below defined */
    }
    if (x > 0.0f) {
        x = 0.0f; /* softmax only needs x <= 0; clamping keeps 2^n a normal float */
    }
    float n = x * FC_LOG2E + FC_ROUND_MAGIC;
    n = n - FC_ROUND_MAGIC;
    float r = x - n * FC_LN2_HI;
    r = r - n * FC_LN2_LO;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r;
    p = p + 1.0f;
    int32_t e = (int32_t)n; /* in [-116, 0] */
    return p * float_from_bits((uint32_t)(e + 127) << 23);
}

/* atanh series: log(f) = 2 (u + u^3/3 + u^5/5 + u^7/7 + u^9/9), u = (f - 1) / (f + 1). */
float fc_logf(float x)
{
    if (!(x > 0.0f) || !isfinite(x)) {
        return x == 0.0f ? -INFINITY : (x > 0.0f ? x : NAN);
    }
    if (x < 1.17549435e-38f) {
        return -87.3365447f; /* subnormals: log of the smallest normal is close enough here */
    }
    uint32_t bits = bits_from_float(x);
    int32_t e = (int32_t)(bits >> 23) - 127;
    float f = float_from_bits((bits & 0x007FFFFFu) | 0x3F800000u); /* mantissa in [1, 2) */
    if (f > 1.41421356f) {
        f = f * 0.5f; /* mantissa in [sqrt(1/2), sqrt(2)): |u| <= 0.172 */
        e = e + 1;
    }
    float u = (f - 1.0f) / (f + 1.0f);
    float u2 = u * u;
    float s = 0.111111111f;
    s = s * u2 + 0.142857143f;
    s = s * u2 + 0.2f;
    s = s * u2 + 0.333333333f;
    s = s * u2 + 1.0f;
    float log_f = 2.0f * u * s;
    float ef = (float)e;
    return ef * FC_LN2_HI + (ef * FC_LN2_LO + log_f);
}

float fc_softmax_xent(const float *logits, uint16_t c, uint8_t label, float *probs)
{
    float m = logits[argmax(logits, c)];
    float s = 0.0f;
    for (uint16_t k = 0; k < c; k++) {
        probs[k] = fc_expf(logits[k] - m);
        s += probs[k];
    }
    for (uint16_t k = 0; k < c; k++) {
        probs[k] /= s;
    }
    return fc_logf(s) - (logits[label] - m);
}

int fc_train_params_check(const fc_train_params_t *p)
{
    if (!isfinite(p->lr) || !isfinite(p->momentum) || !isfinite(p->weight_decay) ||
        !isfinite(p->example_clip)) {
        return FC_ERR_NONFINITE;
    }
    if (!(p->lr > 0.0f) || p->epochs < 1 || p->batch < 1 || p->momentum < 0.0f ||
        p->momentum >= 1.0f || p->weight_decay < 0.0f || p->example_clip < 0.0f) {
        return FC_ERR_PARAM;
    }
    return FC_OK;
}

static void shuffle(uint16_t *order, uint16_t n, fc_rng_t *rng)
{
    for (uint16_t i = (uint16_t)(n - 1u); i >= 1; i--) {
        uint16_t j = (uint16_t)fc_rng_below(rng, (uint32_t)i + 1u);
        uint16_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* Scale g so that the example's gradient (outer product e g^T, plus g for b) has L2 norm <= clip. */
static void clip_example_grad(float *g, uint16_t c, const float *e, uint16_t d, float clip)
{
    float ee = 0.0f;
    for (uint16_t j = 0; j < d; j++) {
        ee += e[j] * e[j];
    }
    float gg = 0.0f;
    for (uint16_t k = 0; k < c; k++) {
        gg += g[k] * g[k];
    }
    float norm = sqrtf(gg * (ee + 1.0f));
    if (norm > clip) {
        float f = clip / norm;
        for (uint16_t k = 0; k < c; k++) {
            g[k] *= f;
        }
    }
}

/* gw += e g^T (gw is d x c row-major); four rows per pass so each g[k] is loaded once for four
 * updates. Every element gets exactly one multiply and one add, as in the twin. */
static void add_outer_product(float *gw, const float *e, uint16_t d, const float *g, uint16_t c)
{
    uint16_t j = 0;
    for (; j + 4u <= d; j = (uint16_t)(j + 4u)) {
        const float e0 = e[j], e1 = e[j + 1], e2 = e[j + 2], e3 = e[j + 3];
        float *r0 = &gw[(size_t)j * c];
        float *r1 = r0 + c, *r2 = r1 + c, *r3 = r2 + c;
        for (uint16_t k = 0; k < c; k++) {
            const float gk = g[k];
            r0[k] += e0 * gk;
            r1[k] += e1 * gk;
            r2[k] += e2 * gk;
            r3[k] += e3 * gk;
        }
    }
    for (; j < d; j++) {
        float *row = &gw[(size_t)j * c];
        for (uint16_t k = 0; k < c; k++) {
            row[k] += e[j] * g[k];
        }
    }
}

/* Forward, loss and gradient of one example added into ws->gw / ws->gb. Returns 1 if correct. */
static int accumulate_example(const fc_head_t *head, const float *e, uint8_t y, float example_clip,
                              fc_train_workspace_t *ws, float *loss_sum)
{
    const uint16_t d = head->d, c = head->c;
    fc_head_forward(head, e, ws->z);
    *loss_sum += fc_softmax_xent(ws->z, c, y, ws->p);
    int correct = argmax(ws->z, c) == y;
    float *g = ws->p; /* p becomes p - onehot(y) in place */
    g[y] -= 1.0f;
    if (example_clip > 0.0f) {
        clip_example_grad(g, c, e, d, example_clip);
    }
    add_outer_product(ws->gw, e, d, g, c);
    for (uint16_t k = 0; k < c; k++) {
        ws->gb[k] += g[k];
    }
    return correct;
}

static void sgd_step(fc_head_t *head, const fc_train_params_t *p, uint16_t batch_size,
                     fc_train_workspace_t *ws)
{
    const size_t nw = (size_t)head->d * head->c;
    const float k = 1.0f / (float)batch_size;
    for (size_t i = 0; i < nw; i++) {
        float grad = ws->gw[i] * k + p->weight_decay * head->w[i];
        ws->vw[i] = p->momentum * ws->vw[i] + grad;
        head->w[i] = head->w[i] - p->lr * ws->vw[i];
    }
    for (uint16_t i = 0; i < head->c; i++) {
        float grad = ws->gb[i] * k;
        ws->vb[i] = p->momentum * ws->vb[i] + grad;
        head->b[i] = head->b[i] - p->lr * ws->vb[i];
    }
}

int fc_head_train(fc_head_t *head, const fc_examples_t *examples, const fc_train_params_t *params,
                  fc_rng_t *rng, fc_train_workspace_t *ws, fc_train_result_t *result)
{
    return fc_head_train_hooked(head, examples, params, rng, ws, result, NULL, NULL);
}

int fc_head_train_hooked(fc_head_t *head, const fc_examples_t *examples,
                         const fc_train_params_t *params, fc_rng_t *rng, fc_train_workspace_t *ws,
                         fc_train_result_t *result, fc_train_step_fn between_steps, void *ctx)
{
    int status = fc_train_params_check(params);
    if (status != FC_OK) {
        return status;
    }
    if (head->d != examples->d || head->c != examples->c) {
        return FC_ERR_SHAPE;
    }
    const uint16_t n = fc_examples_count(examples);
    if (n == 0) {
        return FC_ERR_NO_DATA;
    }
    const size_t nw = (size_t)head->d * head->c;
    memset(ws->vw, 0, nw * sizeof(float));
    memset(ws->vb, 0, head->c * sizeof(float));
    for (uint16_t i = 0; i < n; i++) {
        ws->order[i] = i;
    }
    float loss_sum = 0.0f;
    uint32_t correct = 0, steps = 0;
    for (uint16_t epoch = 0; epoch < params->epochs; epoch++) {
        shuffle(ws->order, n, rng);
        loss_sum = 0.0f;
        correct = 0;
        for (uint16_t start = 0; start < n; start = (uint16_t)(start + params->batch)) {
            uint16_t end = (uint16_t)((n - start) < params->batch ? n : start + params->batch);
            memset(ws->gw, 0, nw * sizeof(float));
            memset(ws->gb, 0, head->c * sizeof(float));
            for (uint16_t i = start; i < end; i++) {
                uint8_t y;
                const float *e = fc_examples_get(examples, ws->order[i], &y);
                correct += (uint32_t)accumulate_example(head, e, y, params->example_clip, ws,
                                                        &loss_sum);
            }
            sgd_step(head, params, (uint16_t)(end - start), ws);
            steps++;
            if (between_steps != NULL && between_steps(ctx) != 0) {
                return FC_ERR_ABORTED;
            }
            if ((n - start) <= params->batch) {
                break; /* last batch: avoids uint16 overflow of start + batch */
            }
        }
    }
    result->loss = loss_sum / (float)n;
    result->acc = (float)correct / (float)n;
    result->examples = n;
    result->steps = steps;
    if (!all_finite(head->w, nw) || !all_finite(head->b, head->c)) {
        return FC_ERR_NONFINITE;
    }
    return FC_OK;
}

int fc_head_imprint(fc_head_t *head, const fc_examples_t *examples, float strength,
                    fc_train_workspace_t *ws)
{
    if (!isfinite(strength)) {
        return FC_ERR_NONFINITE;
    }
    if (!(strength >= 0.0f)) {
        return FC_ERR_PARAM;
    }
    if (head->d != examples->d || head->c != examples->c) {
        return FC_ERR_SHAPE;
    }
    const uint16_t n = fc_examples_count(examples), d = head->d, c = head->c;
    if (n == 0) {
        return FC_ERR_NO_DATA;
    }
    const size_t nw = (size_t)d * c;
    float *sums = ws->gw; /* class sums, d x c like W */
    float *counts = ws->gb;
    memset(sums, 0, nw * sizeof(float));
    memset(counts, 0, c * sizeof(float));
    for (uint16_t i = 0; i < n; i++) {
        uint8_t y;
        const float *e = fc_examples_get(examples, i, &y);
        for (uint16_t j = 0; j < d; j++) {
            sums[(size_t)j * c + y] += e[j];
        }
        counts[y] += 1.0f;
    }
    const float half_strength = 0.5f * strength;
    for (uint16_t k = 0; k < c; k++) {
        if (counts[k] == 0.0f) {
            continue; /* no prototype for a class the device has not seen */
        }
        float norm2 = 0.0f;
        for (uint16_t j = 0; j < d; j++) {
            const float mean = sums[(size_t)j * c + k] / counts[k];
            head->w[(size_t)j * c + k] += strength * mean;
            norm2 += mean * mean;
        }
        head->b[k] -= half_strength * norm2;
    }
    if (!all_finite(head->w, nw) || !all_finite(head->b, c)) {
        return FC_ERR_NONFINITE;
    }
    return FC_OK;
}

int fc_params_within_bound(const float *params, size_t n, float max_abs, float max_l2)
{
    double sum_sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(params[i]) || fabsf(params[i]) > max_abs) {
            return 0;
        }
        sum_sq += (double)params[i] * (double)params[i];
    }
    return sqrt(sum_sq) <= (double)max_l2;
}

size_t fc_head_delta(const fc_head_t *local, const fc_head_t *global, float *delta)
{
    if (local->d != global->d || local->c != global->c) {
        return 0;
    }
    const size_t nw = (size_t)local->d * local->c;
    for (size_t i = 0; i < nw; i++) {
        delta[i] = local->w[i] - global->w[i];
    }
    for (uint16_t k = 0; k < local->c; k++) {
        delta[nw + k] = local->b[k] - global->b[k];
    }
    return nw + local->c;
}
