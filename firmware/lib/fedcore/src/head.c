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

void fc_head_forward(const fc_head_t *head, const float *embedding, float *logits)
{
    const uint16_t c = head->c;
    memcpy(logits, head->b, c * sizeof(float));
    for (uint16_t j = 0; j < head->d; j++) {
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

float fc_softmax_xent(const float *logits, uint16_t c, uint8_t label, float *probs)
{
    float m = logits[argmax(logits, c)];
    float s = 0.0f;
    for (uint16_t k = 0; k < c; k++) {
        probs[k] = (float)exp((double)(logits[k] - m));
        s += probs[k];
    }
    for (uint16_t k = 0; k < c; k++) {
        probs[k] /= s;
    }
    return (float)(log((double)s) - (double)(logits[label] - m));
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
    for (uint16_t j = 0; j < d; j++) {
        float *gw_row = &ws->gw[(size_t)j * c];
        for (uint16_t k = 0; k < c; k++) {
            gw_row[k] += e[j] * g[k];
        }
    }
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
