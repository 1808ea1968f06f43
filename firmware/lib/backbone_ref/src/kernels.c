/* int8 kernels with TFLM reference integer semantics; see backbone_ref/kernels.h.
 *
 * Speed without changing results: integer sums are exact (no overflow for int8 models), so the
 * input offset is folded into the bias at generation time (acc = bias + sum w*(x - zp) =
 * bias_folded + sum w*x) wherever every filter tap lies inside the input. Only border pixels,
 * where TFLM skips taps, take the slower checked path with the unfolded bias.
 */
#include "backbone_ref/kernels.h"

#include <limits.h>

int32_t br_srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

int32_t br_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    /* >> of a negative int is arithmetic on every compiler this targets (gcc, clang). */
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t br_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    const int left_shift = shift > 0 ? shift : 0;
    const int right_shift = shift > 0 ? 0 : -shift;
    return br_rounding_divide_by_pot(br_srdhm(x * (1 << left_shift), multiplier), right_shift);
}

static inline int8_t requantize(int32_t acc, int32_t multiplier, int shift, int32_t output_offset,
                                int32_t act_min, int32_t act_max)
{
    int32_t out = br_multiply_by_quantized_multiplier(acc, multiplier, shift) + output_offset;
    out = out < act_min ? act_min : out;
    out = out > act_max ? act_max : out;
    return (int8_t)out;
}

/* acc[j] += dot(x, w + j*stride) over n elements for four filter rows at once: each input
 * byte is loaded once for four multiply-accumulates (about 3 Cortex-M4 instructions per MAC). */
static inline void dot4(const int8_t *x, const int8_t *w, int32_t stride, int32_t n, int32_t *acc)
{
    const int8_t *w0 = w;
    const int8_t *w1 = w0 + stride;
    const int8_t *w2 = w1 + stride;
    const int8_t *w3 = w2 + stride;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (int32_t i = 0; i < n; ++i) {
        const int32_t xv = x[i];
        a0 += xv * w0[i];
        a1 += xv * w1[i];
        a2 += xv * w2[i];
        a3 += xv * w3[i];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

static inline int32_t dot1(const int8_t *x, const int8_t *w, int32_t n)
{
    int32_t acc = 0;
    for (int32_t i = 0; i < n; ++i) {
        acc += (int32_t)x[i] * w[i];
    }
    return acc;
}

/* Output positions [*lo, *hi) whose whole (dilated) filter window lies inside the input. */
static void interior_range(int out_n, int stride, int pad, int k, int dil, int in_n, int *lo,
                           int *hi)
{
    *lo = out_n;
    *hi = out_n;
    for (int o = 0; o < out_n; ++o) {
        const int first = o * stride - pad;
        const int last = first + (k - 1) * dil;
        if (first >= 0 && last < in_n) {
            if (*lo == out_n) {
                *lo = o;
            }
            *hi = o + 1;
        }
    }
    if (*lo > *hi) {
        *lo = *hi;
    }
}

/* ---------------------------------------------------------------- CONV_2D */

static void conv_border_pixel(const br_conv_params *p, const int8_t *input, int oy, int ox,
                              int8_t *out)
{
    const int iy0 = oy * p->stride_h - p->pad_top;
    const int ix0 = ox * p->stride_w - p->pad_left;
    const int32_t filter_len = (int32_t)p->k_h * p->k_w * p->in_c;
    for (int oc = 0; oc < p->out_c; ++oc) {
        const int8_t *w = p->filter + oc * filter_len;
        int32_t acc = 0;
        for (int fy = 0; fy < p->k_h; ++fy) {
            const int iy = iy0 + fy * p->dil_h;
            for (int fx = 0; fx < p->k_w; ++fx) {
                const int ix = ix0 + fx * p->dil_w;
                if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                    continue;
                }
                const int8_t *x = input + ((int32_t)iy * p->in_w + ix) * p->in_c;
                const int8_t *wt = w + ((int32_t)fy * p->k_w + fx) * p->in_c;
                for (int c = 0; c < p->in_c; ++c) {
                    acc += (int32_t)wt[c] * ((int32_t)x[c] + p->input_offset);
                }
            }
        }
        acc += p->bias[oc];
        out[oc] = requantize(acc, p->multiplier[oc], p->shift[oc], p->output_offset, p->act_min,
                             p->act_max);
    }
}

/* One row segment of the window: contiguous when dil_w == 1 (k_w * in_c bytes), else in_c. */
static void conv_interior_pixel(const br_conv_params *p, const int8_t *input, int oy, int ox,
                                int8_t *out)
{
    const int iy0 = oy * p->stride_h - p->pad_top;
    const int ix0 = ox * p->stride_w - p->pad_left;
    const int32_t filter_len = (int32_t)p->k_h * p->k_w * p->in_c;
    const int contiguous = p->dil_w == 1;
    const int segments = contiguous ? 1 : p->k_w;
    const int32_t seg_len = contiguous ? (int32_t)p->k_w * p->in_c : p->in_c;
    int oc = 0;
    for (; oc + 4 <= p->out_c; oc += 4) {
        int32_t acc[4] = {p->bias_folded[oc], p->bias_folded[oc + 1], p->bias_folded[oc + 2],
                          p->bias_folded[oc + 3]};
        for (int fy = 0; fy < p->k_h; ++fy) {
            const int iy = iy0 + fy * p->dil_h;
            for (int s = 0; s < segments; ++s) {
                const int ix = ix0 + s * p->dil_w;
                const int8_t *x = input + ((int32_t)iy * p->in_w + ix) * p->in_c;
                const int8_t *w = p->filter + oc * filter_len + ((int32_t)fy * p->k_w + s) * p->in_c;
                dot4(x, w, filter_len, seg_len, acc);
            }
        }
        for (int j = 0; j < 4; ++j) {
            out[oc + j] = requantize(acc[j], p->multiplier[oc + j], p->shift[oc + j],
                                     p->output_offset, p->act_min, p->act_max);
        }
    }
    for (; oc < p->out_c; ++oc) {
        int32_t acc = p->bias_folded[oc];
        for (int fy = 0; fy < p->k_h; ++fy) {
            const int iy = iy0 + fy * p->dil_h;
            for (int s = 0; s < segments; ++s) {
                const int ix = ix0 + s * p->dil_w;
                const int8_t *x = input + ((int32_t)iy * p->in_w + ix) * p->in_c;
                const int8_t *w = p->filter + oc * filter_len + ((int32_t)fy * p->k_w + s) * p->in_c;
                acc += dot1(x, w, seg_len);
            }
        }
        out[oc] = requantize(acc, p->multiplier[oc], p->shift[oc], p->output_offset, p->act_min,
                             p->act_max);
    }
}

void br_conv2d(const br_conv_params *p, const int8_t *input, int8_t *output)
{
    int y_lo, y_hi, x_lo, x_hi;
    interior_range(p->out_h, p->stride_h, p->pad_top, p->k_h, p->dil_h, p->in_h, &y_lo, &y_hi);
    interior_range(p->out_w, p->stride_w, p->pad_left, p->k_w, p->dil_w, p->in_w, &x_lo, &x_hi);
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int y_inside = oy >= y_lo && oy < y_hi;
        for (int ox = 0; ox < p->out_w; ++ox) {
            int8_t *out = output + ((int32_t)oy * p->out_w + ox) * p->out_c;
            if (y_inside && ox >= x_lo && ox < x_hi) {
                conv_interior_pixel(p, input, oy, ox, out);
            } else {
                conv_border_pixel(p, input, oy, ox, out);
            }
        }
    }
}

/* ---------------------------------------------------------------- DEPTHWISE_CONV_2D */

static void depthwise_pixel(const br_conv_params *p, const int8_t *input, int oy, int ox,
                            int interior, int8_t *out)
{
    const int iy0 = oy * p->stride_h - p->pad_top;
    const int ix0 = ox * p->stride_w - p->pad_left;
    const int32_t x_step = (int32_t)p->dil_w * p->in_c;
    for (int oc = 0; oc < p->out_c; ++oc) {
        const int ic = oc / p->depth_multiplier;
        int32_t acc;
        if (interior) {
            acc = p->bias_folded[oc];
            for (int fy = 0; fy < p->k_h; ++fy) {
                const int iy = iy0 + fy * p->dil_h;
                const int8_t *x = input + ((int32_t)iy * p->in_w + ix0) * p->in_c + ic;
                const int8_t *w = p->filter + (int32_t)fy * p->k_w * p->out_c + oc;
                for (int fx = 0; fx < p->k_w; ++fx) {
                    acc += (int32_t)x[fx * x_step] * w[fx * p->out_c];
                }
            }
        } else {
            acc = p->bias[oc];
            for (int fy = 0; fy < p->k_h; ++fy) {
                const int iy = iy0 + fy * p->dil_h;
                for (int fx = 0; fx < p->k_w; ++fx) {
                    const int ix = ix0 + fx * p->dil_w;
                    if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                        continue;
                    }
                    const int32_t xv = input[((int32_t)iy * p->in_w + ix) * p->in_c + ic];
                    const int32_t wv = p->filter[((int32_t)fy * p->k_w + fx) * p->out_c + oc];
                    acc += wv * (xv + p->input_offset);
                }
            }
        }
        out[oc] = requantize(acc, p->multiplier[oc], p->shift[oc], p->output_offset, p->act_min,
                             p->act_max);
    }
}

void br_depthwise_conv2d(const br_conv_params *p, const int8_t *input, int8_t *output)
{
    int y_lo, y_hi, x_lo, x_hi;
    interior_range(p->out_h, p->stride_h, p->pad_top, p->k_h, p->dil_h, p->in_h, &y_lo, &y_hi);
    interior_range(p->out_w, p->stride_w, p->pad_left, p->k_w, p->dil_w, p->in_w, &x_lo, &x_hi);
    for (int oy = 0; oy < p->out_h; ++oy) {
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int interior = oy >= y_lo && oy < y_hi && ox >= x_lo && ox < x_hi;
            int8_t *out = output + ((int32_t)oy * p->out_w + ox) * p->out_c;
            depthwise_pixel(p, input, oy, ox, interior, out);
        }
    }
}

/* ---------------------------------------------------------------- FULLY_CONNECTED */

void br_fully_connected(const br_fc_params *p, const int8_t *input, int8_t *output)
{
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = input + b * p->depth;
        int8_t *out = output + b * p->out_c;
        int32_t oc = 0;
        for (; oc + 4 <= p->out_c; oc += 4) {
            int32_t acc[4] = {p->bias_folded[oc], p->bias_folded[oc + 1], p->bias_folded[oc + 2],
                              p->bias_folded[oc + 3]};
            dot4(x, p->filter + oc * p->depth, p->depth, p->depth, acc);
            for (int j = 0; j < 4; ++j) {
                out[oc + j] = requantize(acc[j], p->multiplier[oc + j], p->shift[oc + j],
                                         p->output_offset, p->act_min, p->act_max);
            }
        }
        for (; oc < p->out_c; ++oc) {
            const int32_t acc = p->bias_folded[oc] + dot1(x, p->filter + oc * p->depth, p->depth);
            out[oc] = requantize(acc, p->multiplier[oc], p->shift[oc], p->output_offset,
                                 p->act_min, p->act_max);
        }
    }
}

/* ---------------------------------------------------------------- pooling */

static inline int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

void br_max_pool(const br_pool_params *p, const int8_t *input, int8_t *output)
{
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int iy0 = oy * p->stride_h - p->pad_top;
        const int fy_lo = clamp_int(-iy0, 0, p->k_h);
        const int fy_hi = clamp_int(p->in_h - iy0, 0, p->k_h);
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int ix0 = ox * p->stride_w - p->pad_left;
            const int fx_lo = clamp_int(-ix0, 0, p->k_w);
            const int fx_hi = clamp_int(p->in_w - ix0, 0, p->k_w);
            int8_t *out = output + ((int32_t)oy * p->out_w + ox) * p->c;
            for (int c = 0; c < p->c; ++c) {
                int32_t best = -128;
                for (int fy = fy_lo; fy < fy_hi; ++fy) {
                    for (int fx = fx_lo; fx < fx_hi; ++fx) {
                        const int32_t v =
                            input[((int32_t)(iy0 + fy) * p->in_w + ix0 + fx) * p->c + c];
                        best = v > best ? v : best;
                    }
                }
                best = clamp_int(best, p->act_min, p->act_max);
                out[c] = (int8_t)best;
            }
        }
    }
}

void br_average_pool(const br_pool_params *p, const int8_t *input, int8_t *output)
{
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int iy0 = oy * p->stride_h - p->pad_top;
        const int fy_lo = clamp_int(-iy0, 0, p->k_h);
        const int fy_hi = clamp_int(p->in_h - iy0, 0, p->k_h);
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int ix0 = ox * p->stride_w - p->pad_left;
            const int fx_lo = clamp_int(-ix0, 0, p->k_w);
            const int fx_hi = clamp_int(p->in_w - ix0, 0, p->k_w);
            const int32_t count = (int32_t)(fy_hi - fy_lo) * (fx_hi - fx_lo);
            int8_t *out = output + ((int32_t)oy * p->out_w + ox) * p->c;
            for (int c = 0; c < p->c; ++c) {
                int32_t acc = 0;
                for (int fy = fy_lo; fy < fy_hi; ++fy) {
                    for (int fx = fx_lo; fx < fx_hi; ++fx) {
                        acc += input[((int32_t)(iy0 + fy) * p->in_w + ix0 + fx) * p->c + c];
                    }
                }
                /* TFLM: round half away from zero; an empty window cannot occur for the
                 * shapes the converter emits (refgen checks padding). */
                if (count > 0) {
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                }
                out[c] = (int8_t)clamp_int(acc, p->act_min, p->act_max);
            }
        }
    }
}

/* ---------------------------------------------------------------- MEAN */

void br_mean(const br_mean_params *p, const int8_t *input, int8_t *output)
{
    for (int32_t o = 0; o < p->outer; ++o) {
        for (int32_t i = 0; i < p->inner; ++i) {
            const int8_t *x = input + o * p->reduce * p->inner + i;
            int32_t sum = 0;
            for (int32_t r = 0; r < p->reduce; ++r) {
                sum += x[r * p->inner];
            }
            int32_t out;
            if (p->same_quant) {
                out = sum / p->reduce; /* C truncation, exactly TFLM's Mean<int8, int32> */
            } else {
                const int32_t shifted = sum - p->input_zero_point * p->reduce;
                out = br_multiply_by_quantized_multiplier(shifted, p->multiplier, p->shift) +
                      p->output_zero_point;
                out = clamp_int(out, -128, 127);
            }
            output[o * p->inner + i] = (int8_t)out;
        }
    }
}
