/* backbone_ref: int8 kernels with TensorFlow Lite Micro's reference integer semantics.
 *
 * Generated graph code (model_gen/refgen.py) calls these with constant parameter blocks whose
 * multipliers, shifts, folded biases and padding were computed at generation time. Every
 * kernel works on one batch element in NHWC layout; results equal TFLM bit for bit
 * (tests/equivalence/backbone/ prove it against the tflite_micro runtime).
 *
 * No heap, no globals: kernels only read their inputs and write their output buffer.
 */
#ifndef BACKBONE_REF_KERNELS_H
#define BACKBONE_REF_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The DSP path: Arm cores with the DSP extension (Cortex-M4/M7/M33) run convolution and fully
 * connected layers on 16-bit weight pairs packed at generation time (SMLAD, two MACs per
 * instruction); every other target, or a build with -DBR_PORTABLE, runs the portable C path.
 * Generated code emits the packed arrays only when BR_DSP is 1. */
#if defined(__ARM_FEATURE_DSP) && !defined(BR_PORTABLE)
#define BR_DSP 1
#else
#define BR_DSP 0
#endif
/* Constants only one path reads: a DSP build of a layer with packed weights leaves its int8
 * arrays out (NULL), a portable build its packed ones. */
#if BR_DSP
#define BR_DSP_ONLY(x) (x)
#define BR_PORTABLE_ONLY(x) NULL
#else
#define BR_DSP_ONLY(x) NULL
#define BR_PORTABLE_ONLY(x) (x)
#endif

/* Per output channel constants of the DSP path, padded to a multiple of 4 channels.
 * The packed weights and the bias are pre-scaled by 2^pre, pre = 1 + max(shift, 0), so the
 * accumulator is acc * 2^pre. With e = max(-shift, 0), TFLM's
 *   MultiplyByQuantizedMultiplier(acc, multiplier, shift) + output_offset
 * is exactly
 *   v = (acc * 2^pre * multiplier + 2^31) >> 32                     (one SMMULR)
 *   (2 * v + round - [v < 0]) >> post_shift,  round = 2^e + (output_offset << (e + 1)),
 *                                             post_shift = e + 1
 * for every accumulator the layer can produce: the generator (refgen.dsp_requant) proves that
 * no intermediate leaves int32, or gives the layer no DSP kernel. */
typedef struct {
    int32_t bias;       /* (bias + input_offset * sum(filter of that channel)) * 2^pre */
    int32_t multiplier;
    int32_t round;
    int8_t post_shift;
    int8_t unused[3];
} br_requant;

/* gemmlowp SaturatingRoundingDoublingHighMul, as TFLM uses it. */
int32_t br_srdhm(int32_t a, int32_t b);
/* gemmlowp RoundingDivideByPOT: round half away from zero. */
int32_t br_rounding_divide_by_pot(int32_t x, int exponent);
/* TFLM MultiplyByQuantizedMultiplier (double rounding, the default build). */
int32_t br_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift);

/* CONV_2D (groups = 1) and DEPTHWISE_CONV_2D. Filter layouts as in the .tflite:
 * conv [out_c][k_h][k_w][in_c], depthwise [k_h][k_w][out_c] with out_c = in_c * depth_mult. */
typedef struct {
    int16_t in_h, in_w, in_c;
    int16_t out_h, out_w, out_c;
    int16_t k_h, k_w;
    int16_t stride_h, stride_w;
    int16_t dil_h, dil_w;
    int16_t pad_top, pad_left;
    int16_t depth_multiplier;      /* depthwise only */
    int32_t input_offset;          /* -input zero point */
    int32_t output_offset;         /* output zero point */
    int32_t act_min, act_max;      /* fused activation range, quantized */
    const int8_t *filter;
    const int32_t *bias;           /* [out_c], zeros when the model has no bias */
    const int32_t *bias_folded;    /* bias + input_offset * sum(filter of that channel) */
    const int32_t *tap_sums;       /* conv: [out_c][k_h * k_w] sum over in_c of the filter */
    const int32_t *multiplier;     /* [out_c] */
    const int8_t *shift;           /* [out_c], positive = left */
    /* DSP path (NULL = portable path): filter (times 2^pre, see br_requant) as 16-bit pairs,
     * conv [out_c/4][(K+1)/2][4] words with K = k_h*k_w*in_c, depthwise [out_c/4][k_h*k_w][2]
     * (channels g, g+2 then g+1, g+3 of each group of 4); requant [out_c rounded up to 4] */
    const int32_t *packed;
    const br_requant *requant;
    int32_t *scratch;              /* DSP path, in the planned arena: conv 2 * ((K+1)/2) words,
                                    * depthwise one k_h*k_w*in_c window */
} br_conv_params;

void br_conv2d(const br_conv_params *p, const int8_t *input, int8_t *output);
void br_depthwise_conv2d(const br_conv_params *p, const int8_t *input, int8_t *output);

/* Two conv/depthwise layers as one call, the producer's output never whole: for each output
 * row of the consumer, the producer computes just the rows the consumer's filter still needs
 * into `band` (rows it already made move down), so `band` holds (k_h - 1) * dil_h + 1 of the
 * producer's output rows instead of all of them. Results are those of the two calls. */
typedef void (*br_conv_kernel)(const br_conv_params *p, const int8_t *input, int8_t *output);
typedef struct {
    const br_conv_params *producer;
    const br_conv_params *consumer;
    br_conv_kernel producer_kernel;
    br_conv_kernel consumer_kernel;
    int8_t *band;
} br_band_params;

void br_conv_banded(const br_band_params *p, const int8_t *input, int8_t *output);

/* FULLY_CONNECTED: filter [out_c][depth]; per-tensor models repeat one multiplier/shift. */
typedef struct {
    int32_t batches, depth, out_c;
    int32_t output_offset;
    int32_t act_min, act_max;
    const int8_t *filter;
    const int32_t *bias_folded;    /* bias + input_offset * sum(filter row); filter zero point is 0 */
    const int32_t *multiplier;     /* [out_c] */
    const int8_t *shift;           /* [out_c] */
    const int32_t *packed;         /* DSP path, as br_conv_params with K = depth; NULL = portable */
    const br_requant *requant;
    int32_t *scratch;              /* DSP path: 2 * ((depth+1)/2) words of the planned arena */
} br_fc_params;

void br_fully_connected(const br_fc_params *p, const int8_t *input, int8_t *output);

/* MAX_POOL_2D and AVERAGE_POOL_2D (input and output share scale and zero point). */
typedef struct {
    int16_t in_h, in_w, c;
    int16_t out_h, out_w;
    int16_t k_h, k_w;
    int16_t stride_h, stride_w;
    int16_t pad_top, pad_left;
    int32_t act_min, act_max;
} br_pool_params;

void br_max_pool(const br_pool_params *p, const int8_t *input, int8_t *output);
void br_average_pool(const br_pool_params *p, const int8_t *input, int8_t *output);

/* MEAN over one contiguous run of axes: input viewed as [outer][reduce][inner].
 * same_quant: input and output share scale and zero point (TFLM then truncates sum / n);
 * otherwise the requantizing path with the 1/n factor folded into multiplier/shift. */
typedef struct {
    int32_t outer, reduce, inner;
    int32_t same_quant;
    int32_t input_zero_point, output_zero_point;
    int32_t multiplier;
    int32_t shift;
} br_mean_params;

void br_mean(const br_mean_params *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* BACKBONE_REF_KERNELS_H */
