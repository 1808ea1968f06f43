/* int8 kernels with TFLM reference integer semantics; see backbone_ref/kernels.h.
 *
 * Speed without changing results: integer sums are exact (no overflow for int8 models), so the
 * input offset is folded into the bias at generation time (acc = bias + sum w*(x - zp) =
 * bias_folded + sum w*x) wherever every filter tap lies inside the input. Only border pixels,
 * where TFLM skips taps, take the slower checked path with the unfolded bias.
 */
#include "backbone_ref/kernels.h"

#include <limits.h>

/* gemmlowp SaturatingRoundingDoublingHighMul. Its nudge-then-truncate equals one floor shift:
 * ab >= 0: trunc((ab + 2^30) / 2^31) = (ab + 2^30) >> 31; ab < 0: trunc((ab + 1 - 2^30) / 2^31)
 * = ceil(...) = floor((ab + 2^30) / 2^31). Fewer instructions, identical results (tested
 * against a literal Python twin in tests/equivalence/backbone/test_arith.py). */
static inline int32_t srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    /* >> of a negative value is arithmetic on every compiler this targets (gcc, clang). */
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp RoundingDivideByPOT (round half away from zero). With q = x >> e and r = x mod 2^e,
 * gemmlowp adds 1 when r > 2^(e-1) - 1 + [x < 0], i.e. when r + 2^(e-1) - [x < 0] >= 2^e;
 * in uint32 that sum cannot overflow (r < 2^31), so no 64-bit shift is needed. */
static inline int32_t rounding_divide_by_pot(int32_t x, int exponent)
{
    if (exponent == 0) {
        return x;
    }
    const uint32_t mask = (1u << exponent) - 1u;
    const uint32_t frac = ((uint32_t)x & mask) + (1u << (exponent - 1)) - (x < 0 ? 1u : 0u);
    return (x >> exponent) + (int32_t)(frac >> exponent);
}

/* TFLM MultiplyByQuantizedMultiplier. The two shift directions are separate paths (a positive
 * shift leaves nothing for the divide; a non-positive one needs no pre-shift) so each compiles to
 * straight-line code; the arithmetic is unchanged. */
static inline int32_t mbqm(int32_t x, int32_t multiplier, int shift)
{
    if (shift > 0) {
        return srdhm(x * (1 << shift), multiplier);
    }
    return rounding_divide_by_pot(srdhm(x, multiplier), -shift);
}

int32_t br_srdhm(int32_t a, int32_t b)
{
    return srdhm(a, b);
}

int32_t br_rounding_divide_by_pot(int32_t x, int exponent)
{
    return rounding_divide_by_pot(x, exponent);
}

int32_t br_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    return mbqm(x, multiplier, shift);
}

static inline int8_t requantize(int32_t acc, int32_t multiplier, int shift, int32_t output_offset,
                                int32_t act_min, int32_t act_max)
{
    int32_t out = mbqm(acc, multiplier, shift) + output_offset;
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

/* ---------------------------------------------------------------- DSP path (SMLAD) */
#if BR_DSP
#include <arm_acle.h>
#include <string.h>

#define BR_INLINE static inline __attribute__((always_inline))

/* The assembly blocks keep up to 14 values in registers, all of r0-r12 and lr: an unoptimized
 * build (r7 then holds the frame pointer), or one with -DBR_NO_ASM (for a build that keeps a
 * frame pointer), takes the C blocks instead, with the same results. */
#if defined(__OPTIMIZE__) && !defined(BR_NO_ASM)
#define BR_DSP_ASM 1
#else
#define BR_DSP_ASM 0
#endif
#if BR_DSP_ASM
#include <stddef.h>
_Static_assert(sizeof(br_requant) == 16 && offsetof(br_requant, multiplier) == 4 &&
                   offsetof(br_requant, round) == 8 && offsetof(br_requant, post_shift) == 12,
               "the assembly blocks read br_requant rows at these offsets");
#endif

/* SMMULR and PKHBT/PKHTB have no ACLE intrinsic in GCC 12; each is one instruction. */
BR_INLINE int32_t smmulr(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

BR_INLINE int32_t pkhbt16(int32_t bottom, int32_t top) /* bottom.lo | top.lo << 16 */
{
    int32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(bottom), "r"(top));
    return r;
}

BR_INLINE int32_t pkhtb16(int32_t top, int32_t bottom) /* top.hi | bottom.hi >> 16 */
{
    int32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(top), "r"(bottom));
    return r;
}

BR_INLINE int32_t load_word(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v); /* one LDR: Cortex-M4 loads unaligned words */
    return v;
}

/* SXTB16 of the word rotated by 8 (bytes 1 and 3), one instruction; GCC 12 does not fold the
 * rotation into __sxtb16. */
BR_INLINE int32_t sxtb16_ror8(int32_t v)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* Which activation bounds are tighter than int8's (SSAT applies int8's): chosen once per
 * layer, so each variant's per-output code has no test it does not need. */
enum { CLAMP_NONE, CLAMP_LOW, CLAMP_BOTH };

typedef struct {
    int mode;
    int32_t lo, hi;
} dsp_clamp;

static dsp_clamp clamp_of(int32_t act_min, int32_t act_max)
{
    const int mode = act_max < 127 ? CLAMP_BOTH : (act_min > -128 ? CLAMP_LOW : CLAMP_NONE);
    return (dsp_clamp){mode, act_min, act_max};
}

/* MultiplyByQuantizedMultiplier + output offset + activation clamp for an accumulator already
 * scaled by 2^pre_shift (see br_requant): SMMULR, two adds, one shift, SSAT. */
BR_INLINE int8_t dsp_requant(int32_t acc, const br_requant *q, int mode, int32_t lo, int32_t hi)
{
    const int32_t v = smmulr(acc, q->multiplier);
    int32_t out = __ssat((2 * v + q->round + (v >> 31)) >> q->post_shift, 8);
    if (mode != CLAMP_NONE) {
        out = out < lo ? lo : out;
    }
    if (mode == CLAMP_BOTH) {
        out = out > hi ? hi : out;
    }
    return (int8_t)out;
}

/* One channel of two pixels: the channel's constants are read once, before either store (an
 * int8 store may alias them as far as the compiler knows). */
BR_INLINE void requant_pair(int32_t a, int32_t b, const br_requant *q, int8_t *oa, int8_t *ob,
                            int mode, int32_t lo, int32_t hi)
{
    const br_requant c = *q;
    const int8_t ra = dsp_requant(a, &c, mode, lo, hi);
    const int8_t rb = dsp_requant(b, &c, mode, lo, hi);
    *oa = ra;
    *ob = rb;
}

/* Columns of two output pixels, interleaved as words: word 2*j + pixel holds elements 2j and
 * 2j+1 of that pixel's window as a 16-bit pair, the pairing the packed weights use. A cursor
 * walks one pixel's column in element order: element k's halfword is at byte
 * 8 * (k / 2) + 2 * (k % 2), so the step after an even k is 2 bytes and after an odd k 6. */
typedef struct {
    char *h;
    int32_t odd; /* parity of the next element */
} col_cursor;

BR_INLINE void put_half(char *h, int32_t value)
{
    const int16_t v = (int16_t)value;
    memcpy(h, &v, sizeof v);
}

BR_INLINE void cursor_put(col_cursor *c, int32_t value)
{
    put_half(c->h, value);
    c->h += c->odd ? 6 : 2;
    c->odd ^= 1;
}

BR_INLINE void put_quad(char *h, int32_t v) /* 4 elements at an even position, one LDR */
{
    const int32_t even = __sxtb16(v);      /* x0, x2 */
    const int32_t odd = sxtb16_ror8(v);    /* x1, x3 */
    const int32_t lo = pkhbt16(even, odd); /* x0, x1 */
    const int32_t hi = pkhtb16(odd, even); /* x2, x3 */
    memcpy(h, &lo, sizeof lo);
    memcpy(h + 8, &hi, sizeof hi);
}

/* n window elements from src, sign-extended: four at a time (one LDR, two SXTB16, two PKH)
 * once the cursor is at a pair boundary, pairs next, single elements last. */
BR_INLINE void cursor_copy(col_cursor *c, const int8_t *src, int32_t n)
{
    int32_t i = 0;
    if (c->odd && n > 0) {
        cursor_put(c, src[0]);
        i = 1;
    }
    char *h = c->h;
    for (; i + 4 <= n; i += 4, h += 16) {
        put_quad(h, load_word(src + i));
    }
    for (; i + 2 <= n; i += 2, h += 8) {
        put_half(h, src[i]);
        put_half(h + 2, src[i + 1]);
    }
    c->h = h;
    if (i < n) {
        cursor_put(c, src[i]);
    }
}

/* n copies of the input zero point: a tap outside the input adds nothing to TFLM's sum, and
 * w * (zp + input_offset) = 0 keeps the folded bias exact. */
BR_INLINE void cursor_fill(col_cursor *c, int32_t zp, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) {
        cursor_put(c, zp);
    }
}

BR_INLINE int32_t pkhbt_top(int32_t bottom, int32_t top) /* bottom.lo | top.hi */
{
    int32_t r;
    __asm__("pkhbt %0, %1, %2" : "=r"(r) : "r"(bottom), "r"(top));
    return r;
}

/* One input channel, three taps per filter row, every row inside the input (the first layer of
 * a spectrogram model): two rows a, b are six elements, three pairs (a0 a1) (a2 b0) (b1 b2),
 * from one word of each row; an odd last row is one more word. Each word reads one byte past
 * its row's three taps, which the caller checked lies in the input; that byte lands on an
 * element of weight 0 (the odd K's padding). */
static void gather_rows3(const int8_t *src, int32_t row_step, int k_h, int32_t *col)
{
    char *h = (char *)col;
    int fy = 0;
    for (; fy + 2 <= k_h; fy += 2, src += 2 * row_step, h += 24) {
        const int32_t a = load_word(src), b = load_word(src + row_step);
        const int32_t ae = __sxtb16(a), ao = sxtb16_ror8(a); /* (a0, a2), (a1, a3) */
        const int32_t be = __sxtb16(b), bo = sxtb16_ror8(b); /* (b0, b2), (b1, b3) */
        const int32_t p0 = pkhbt16(ae, ao);                  /* a0, a1 */
        const int32_t p1 = pkhbt16(ae >> 16, be);            /* a2, b0 */
        const int32_t p2 = pkhbt_top(bo, be);                /* b1, b2 */
        memcpy(h, &p0, sizeof p0);
        memcpy(h + 8, &p1, sizeof p1);
        memcpy(h + 16, &p2, sizeof p2);
    }
    if (fy < k_h) {
        put_quad(h, load_word(src));
    }
}

/* Filter heights up to which a one-channel 3-tap-row border window is copied on the stack. */
#define BR_ROWS3_MAX 8

/* The window of output pixel (oy, ox) of a one-channel filter with rows of 3 taps (k_h at most
 * BR_ROWS3_MAX): read in place when it lies inside the input, else its taps (the zero point
 * outside) are first copied into rows of 4 bytes. */
static void gather_rows3_window(const br_conv_params *p, const int8_t *input, int oy, int ox,
                                int32_t *col)
{
    const int iy0 = oy * p->stride_h - p->pad_top;
    const int ix0 = ox * p->stride_w - p->pad_left;
    const int in_w = p->in_w, in_h = p->in_h, k_h = p->k_h, dil_h = p->dil_h, dil_w = p->dil_w;
    const int last = iy0 + (k_h - 1) * dil_h;
    if (dil_w == 1 && ix0 >= 0 && ix0 + 3 <= in_w && iy0 >= 0 && last < in_h &&
        (int32_t)last * in_w + ix0 + 4 <= (int32_t)in_h * in_w) {
        gather_rows3(input + (int32_t)iy0 * in_w + ix0, (int32_t)dil_h * in_w, k_h, col);
        return;
    }
    const int8_t zp = (int8_t)-p->input_offset;
    int8_t rows[4 * BR_ROWS3_MAX];
    for (int fy = 0; fy < k_h; ++fy) {
        const int iy = iy0 + fy * dil_h;
        const int row_in = iy >= 0 && iy < in_h;
        for (int fx = 0; fx < 4; ++fx) {
            const int ix = ix0 + fx * dil_w;
            const int in = row_in && fx < 3 && ix >= 0 && ix < in_w;
            rows[4 * fy + fx] = in ? input[(int32_t)iy * in_w + ix] : zp;
        }
    }
    gather_rows3(rows, 4, k_h, col);
}

/* The receptive field of output pixel (oy, ox) into one column slot (col + pixel). */
static void dsp_gather(const br_conv_params *p, const int8_t *input, int oy, int ox, int32_t *col)
{
    const int iy0 = oy * p->stride_h - p->pad_top;
    const int ix0 = ox * p->stride_w - p->pad_left;
    const int32_t zp = -p->input_offset, in_c = p->in_c, in_w = p->in_w;
    const int32_t run = (int32_t)p->k_w * in_c;
    const int k_h = p->k_h, k_w = p->k_w, dil_h = p->dil_h, dil_w = p->dil_w, in_h = p->in_h;
    const int inside_x = dil_w == 1 && ix0 >= 0 && ix0 + k_w <= in_w;
    col_cursor c = {(char *)col, 0};
    for (int fy = 0; fy < k_h; ++fy) {
        const int iy = iy0 + fy * dil_h;
        const int8_t *row = input + (int32_t)iy * in_w * in_c;
        if (iy < 0 || iy >= in_h) {
            cursor_fill(&c, zp, run);
        } else if (inside_x) {
            cursor_copy(&c, row + (int32_t)ix0 * in_c, run);
        } else {
            for (int fx = 0; fx < k_w; ++fx) {
                const int ix = ix0 + fx * dil_w;
                if (ix >= 0 && ix < in_w) {
                    cursor_copy(&c, row + (int32_t)ix * in_c, in_c);
                } else {
                    cursor_fill(&c, zp, in_c);
                }
            }
        }
    }
}

/* The columns of two pixels whose windows are contiguous runs of n bytes (a 1x1 convolution
 * without padding, fully connected rows): four elements of each per turn. */
static void gather_runs(const int8_t *xa, const int8_t *xb, int32_t n, int32_t *col)
{
    char *h = (char *)col;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4, h += 16) {
        put_quad(h, load_word(xa + i));
        put_quad(h + 4, load_word(xb + i));
    }
    col_cursor ca = {h, 0}, cb = {h + 4, 0};
    for (; i < n; ++i) {
        cursor_put(&ca, xa[i]);
        cursor_put(&cb, xb[i]);
    }
}

/* Two pixels x four channels, one weight pair: an LDRD of both pixels' column words, two LDRDs
 * of the four channels' weight words, eight SMLADs (16 MACs). Written as assembly because GCC
 * keeps the loop bound and pointers on the stack and loads weights one word at a time (31
 * instructions per two pairs instead of 25). */
#define MAC_2X4_ASM                                                                            \
    "ldrd %[xa], %[xb], [%[col]], #8\n\t"                                                      \
    "ldrd %[w0], %[w1], [%[w]], #8\n\t"                                                        \
    "smlad %[a0], %[xa], %[w0], %[a0]\n\t"                                                     \
    "smlad %[b0], %[xb], %[w0], %[b0]\n\t"                                                     \
    "smlad %[a1], %[xa], %[w1], %[a1]\n\t"                                                     \
    "smlad %[b1], %[xb], %[w1], %[b1]\n\t"                                                     \
    "ldrd %[w0], %[w1], [%[w]], #8\n\t"                                                        \
    "smlad %[a2], %[xa], %[w0], %[a2]\n\t"                                                     \
    "smlad %[b2], %[xb], %[w0], %[b2]\n\t"                                                     \
    "smlad %[a3], %[xa], %[w1], %[a3]\n\t"                                                     \
    "smlad %[b3], %[xb], %[w1], %[b3]\n\t"

#define MAC_2X4_OPERANDS                                                                       \
    [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [b0] "+r"(b0),                 \
        [b1] "+r"(b1), [b2] "+r"(b2), [b3] "+r"(b3), [col] "+r"(col), [w] "+r"(w),             \
        [xa] "=&r"(xa), [xb] "=&r"(xb), [w0] "=&r"(w0), [w1] "=&r"(w1)

BR_INLINE void block_2x4(const int32_t *col, const int32_t *w, int32_t pairs, const br_requant *q,
                         int8_t *oa, int8_t *ob, int n, int mode, int32_t lo, int32_t hi)
{
    int32_t a0 = q[0].bias, a1 = q[1].bias, a2 = q[2].bias, a3 = q[3].bias;
    int32_t b0 = a0, b1 = a1, b2 = a2, b3 = a3;
    int32_t xa, xb, w0, w1;
    const int32_t *const end = col + 2 * pairs; /* read from memory: no register is left */
#if BR_DSP_ASM
    if (pairs & 1) {
        __asm__(MAC_2X4_ASM : MAC_2X4_OPERANDS : : "memory");
    }
    if (col != end) {
        __asm__("1:\n\t" MAC_2X4_ASM MAC_2X4_ASM "ldr %[xa], %[end]\n\t"
                "cmp %[col], %[xa]\n\t"
                "bne 1b"
                : MAC_2X4_OPERANDS
                : [end] "m"(end)
                : "cc", "memory");
    }
#else
    for (; col != end; col += 2, w += 4) {
        xa = col[0], xb = col[1];
        w0 = w[0], w1 = w[1];
        a0 = __smlad(xa, w0, a0), b0 = __smlad(xb, w0, b0);
        a1 = __smlad(xa, w1, a1), b1 = __smlad(xb, w1, b1);
        w0 = w[2], w1 = w[3];
        a2 = __smlad(xa, w0, a2), b2 = __smlad(xb, w0, b2);
        a3 = __smlad(xa, w1, a3), b3 = __smlad(xb, w1, b3);
    }
#endif
    if (n == 4) {
        requant_pair(a0, b0, &q[0], oa, ob, mode, lo, hi);
        requant_pair(a1, b1, &q[1], oa + 1, ob + 1, mode, lo, hi);
        requant_pair(a2, b2, &q[2], oa + 2, ob + 2, mode, lo, hi);
        requant_pair(a3, b3, &q[3], oa + 3, ob + 3, mode, lo, hi);
        return;
    }
    const int32_t acc[8] = {a0, a1, a2, a3, b0, b1, b2, b3};
    for (int j = 0; j < n; ++j) { /* the last block of a channel count not a multiple of 4 */
        oa[j] = dsp_requant(acc[j], &q[j], mode, lo, hi);
        ob[j] = dsp_requant(acc[4 + j], &q[j], mode, lo, hi);
    }
}

#if BR_DSP_ASM
/* Output v = SSAT((2v + round + (v >> 31)) >> shift) stored at out[j], v = SMMULR(acc,
 * multiplier) already (see dsp_requant); tmp is free. */
#define REQUANT_FINISH_ASM(v, round, shift, tmp, out, j)                                       \
    "add %[" #tmp "], %[" #round "], %[" #v "], lsl #1\n\t"                                    \
    "add %[" #v "], %[" #tmp "], %[" #v "], asr #31\n\t"                                       \
    "asr %[" #v "], %[" #v "], %[" #shift "]\n\t"                                              \
    "ssat %[" #v "], #8, %[" #v "]\n\t"                                                        \
    "strb %[" #v "], [%[" #out "], #" #j "]\n\t"

/* Channel 0 of the plain block's requantization (see dsp_requant); then a0 and b0 hold the
 * output pointers (col is free once the MACs are done). */
#define REQUANT_CH0_ASM                                                                        \
    "ldr %[xa], %[q]\n\t"                                                                      \
    "ldrd %[xb], %[w0], [%[xa], #4]\n\t"                                                       \
    "smmulr %[a0], %[a0], %[xb]\n\t"                                                           \
    "smmulr %[b0], %[b0], %[xb]\n\t"                                                           \
    "ldrsb %[xb], [%[xa], #12]\n\t"                                                            \
    "ldr %[col], %[oa]\n\t" REQUANT_FINISH_ASM(a0, w0, xb, w1, col, 0) "mov %[a0], %[col]\n\t" \
    "ldr %[col], %[ob]\n\t" REQUANT_FINISH_ASM(b0, w0, xb, w1, col, 0) "mov %[b0], %[col]\n\t"

/* Channels 1 to 3: the same, stored through a0 and b0. */
#define REQUANT_CH_ASM(a, b, j, multiplier_at, post_shift_at)                                  \
    "ldrd %[xb], %[w0], [%[xa], #" #multiplier_at "]\n\t"                                      \
    "smmulr %[" #a "], %[" #a "], %[xb]\n\t"                                                   \
    "smmulr %[" #b "], %[" #b "], %[xb]\n\t"                                                   \
    "ldrsb %[xb], [%[xa], #" #post_shift_at "]\n\t"                                            \
    REQUANT_FINISH_ASM(a, w0, xb, w1, a0, j) REQUANT_FINISH_ASM(b, w0, xb, w1, b0, j)

#define REQUANT_CH123_ASM                                                                      \
    REQUANT_CH_ASM(a1, b1, 1, 20, 28) REQUANT_CH_ASM(a2, b2, 2, 36, 44)                        \
    REQUANT_CH_ASM(a3, b3, 3, 52, 60)

/* The MAC loops of the plain groups: any number of pairs (an odd one first, then two per
 * turn), or a multiple of 4 (four per turn, no odd check). */
#define MAC_LOOP_ANY                                                                           \
    "ldr %[xa], %[odd]\n\t"                                                                    \
    "cmp %[xa], #0\n\t"                                                                        \
    "beq 2f\n\t" MAC_2X4_ASM "2:\n\t"                                                          \
    "ldr %[xa], %[end]\n\t"                                                                    \
    "cmp %[col], %[xa]\n\t"                                                                    \
    "beq 3f\n\t"                                                                               \
    "1:\n\t" MAC_2X4_ASM MAC_2X4_ASM "ldr %[xa], %[end]\n\t"                                   \
    "cmp %[col], %[xa]\n\t"                                                                    \
    "bne 1b\n\t"                                                                               \
    "3:\n\t"

#define MAC_LOOP_QUADS                                                                         \
    "1:\n\t" MAC_2X4_ASM MAC_2X4_ASM MAC_2X4_ASM MAC_2X4_ASM "ldr %[xa], %[end]\n\t"           \
    "cmp %[col], %[xa]\n\t"                                                                    \
    "bne 1b\n\t"

#define GROUPS_2X4_PLAIN(name, MAC_LOOP)                                                                \
BR_INLINE void name(const int32_t *col, const int32_t *w, int32_t pairs,           \
                                const br_requant *q, int8_t *oa, int8_t *ob, int32_t groups)   \
{                                                                                              \
    int32_t a0, a1, a2, a3, b0, b1, b2, b3, xa, xb, w0, w1;                                    \
    const int32_t *const col0 = col, *const end = col + 2 * pairs;                             \
    const int32_t odd = pairs & 1;                                                             \
    int32_t left = groups;                                                                     \
    __asm__ volatile("0:\n\t"                                                                  \
                     "ldr %[col], %[col0]\n\t"                                                 \
                     "ldr %[xa], %[q]\n\t"                                                     \
                     "ldr %[a0], [%[xa]]\n\t"                                                  \
                     "ldr %[a1], [%[xa], #16]\n\t"                                             \
                     "ldr %[a2], [%[xa], #32]\n\t"                                             \
                     "ldr %[a3], [%[xa], #48]\n\t"                                             \
                     "mov %[b0], %[a0]\n\t"                                                    \
                     "mov %[b1], %[a1]\n\t"                                                    \
                     "mov %[b2], %[a2]\n\t"                                                    \
                     "mov %[b3], %[a3]\n\t"                                                    \
                     MAC_LOOP REQUANT_CH0_ASM REQUANT_CH123_ASM                                \
                     "adds %[a0], #4\n\t"                                                      \
                     "str %[a0], %[oa]\n\t"                                                    \
                     "adds %[b0], #4\n\t"                                                      \
                     "str %[b0], %[ob]\n\t"                                                    \
                     "adds %[xa], #64\n\t"                                                     \
                     "str %[xa], %[q]\n\t"                                                     \
                     "ldr %[xb], %[left]\n\t"                                                  \
                     "subs %[xb], #1\n\t"                                                      \
                     "str %[xb], %[left]\n\t"                                                  \
                     "bne 0b"                                                                  \
                     : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3),         \
                       [b0] "=&r"(b0), [b1] "=&r"(b1), [b2] "=&r"(b2), [b3] "=&r"(b3),         \
                       [xa] "=&r"(xa), [xb] "=&r"(xb), [w0] "=&r"(w0), [w1] "=&r"(w1),         \
                       [col] "=&r"(col), [w] "+r"(w), [q] "+m"(q), [oa] "+m"(oa),              \
                       [ob] "+m"(ob), [left] "+m"(left)                                        \
                     : [col0] "m"(col0), [end] "m"(end), [odd] "m"(odd)                        \
                     : "cc", "memory");                                                        \
}                                                                                              

GROUPS_2X4_PLAIN(groups_2x4_any, MAC_LOOP_ANY)
GROUPS_2X4_PLAIN(groups_2x4_quads, MAC_LOOP_QUADS)
#endif /* BR_DSP_ASM */

typedef struct {
    const int32_t *packed;
    const br_requant *requant;
    int32_t k, out_c;
    dsp_clamp clamp;
} dsp_gemm;

BR_INLINE void gemm_pair_mode(const dsp_gemm *g, const int32_t *col, int8_t *oa, int8_t *ob,
                              int mode)
{
    const int32_t pairs = (g->k + 1) / 2, out_c = g->out_c;
    const int32_t lo = g->clamp.lo, hi = g->clamp.hi;
    const int32_t *w = g->packed;
    const br_requant *q = g->requant;
    int32_t oc = 0;
#if BR_DSP_ASM
    if (mode == CLAMP_NONE && out_c >= 4) {
        const int32_t groups = out_c / 4;
        if (pairs % 4 == 0) {
            groups_2x4_quads(col, w, pairs, q, oa, ob, groups);
        } else {
            groups_2x4_any(col, w, pairs, q, oa, ob, groups);
        }
        oc = 4 * groups;
        w += 4 * pairs * groups;
        q += oc;
    }
#endif
    for (; oc < out_c; oc += 4, w += 4 * pairs, q += 4) {
        const int n = out_c - oc < 4 ? (int)(out_c - oc) : 4;
        block_2x4(col, w, pairs, q, oa + oc, ob + oc, n, mode, lo, hi);
    }
}

/* All output channels of two pixels whose columns are in col (a lone pixel passes the same
 * column twice, ob = oa: the second result overwrites the first with the same bytes). */
static void gemm_pair(const dsp_gemm *g, const int32_t *col, int8_t *oa, int8_t *ob)
{
    switch (g->clamp.mode) {
    case CLAMP_NONE:
        gemm_pair_mode(g, col, oa, ob, CLAMP_NONE);
        break;
    case CLAMP_LOW:
        gemm_pair_mode(g, col, oa, ob, CLAMP_LOW);
        break;
    default:
        gemm_pair_mode(g, col, oa, ob, CLAMP_BOTH);
        break;
    }
}

/* An odd K's last pair has weight 0 in its high half, and the halfword it meets in the column
 * is never written: it is some int16 (the arena is static, zero at start), so it adds 0. */
static void conv2d_dsp(const br_conv_params *p, const int8_t *input, int8_t *output)
{
    int32_t *col = p->scratch;
    const dsp_gemm g = {p->packed, p->requant, (int32_t)p->k_h * p->k_w * p->in_c, p->out_c,
                        clamp_of(p->act_min, p->act_max)};
    const int32_t pixels = (int32_t)p->out_h * p->out_w, out_c = p->out_c;
    /* A 1x1 filter over whole rows (a banded producer's rows start lower: pad_top <= 0):
     * output pixel i's window is input pixel i of the first row used. */
    const int pointwise = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
                          p->pad_top <= 0 && p->pad_left == 0 && p->out_w == p->in_w &&
                          p->out_h - p->pad_top <= p->in_h;
    if (pointwise) {
        const int8_t *first = input - (int32_t)p->pad_top * p->in_w * p->in_c;
        for (int32_t i = 0; i < pixels; i += 2) {
            const int32_t j = i + 1 < pixels ? i + 1 : i;
            gather_runs(first + i * p->in_c, first + j * p->in_c, p->in_c, col);
            gemm_pair(&g, col, output + i * out_c, output + j * out_c);
        }
        return;
    }
    const int rows3 = p->in_c == 1 && p->k_w == 3 && p->k_h <= BR_ROWS3_MAX;
    void (*const gather)(const br_conv_params *, const int8_t *, int, int, int32_t *) =
        rows3 ? gather_rows3_window : dsp_gather;
    int oy = 0, ox = 0; /* pixel i */
    for (int32_t i = 0; i < pixels; i += 2) {
        const int32_t j = i + 1 < pixels ? i + 1 : i;
        const int last_in_row = ox + 1 == p->out_w;
        const int jy = j == i ? oy : oy + last_in_row, jx = j == i ? ox : (last_in_row ? 0 : ox + 1);
        gather(p, input, oy, ox, col);
        gather(p, input, jy, jx, col + 1);
        gemm_pair(&g, col, output + i * out_c, output + j * out_c);
        oy = jy + (jx + 1 == p->out_w);
        ox = jx + 1 == p->out_w ? 0 : jx + 1;
    }
}

static void fully_connected_dsp(const br_fc_params *p, const int8_t *input, int8_t *output)
{
    int32_t *col = p->scratch;
    const dsp_gemm g = {p->packed, p->requant, p->depth, p->out_c,
                        clamp_of(p->act_min, p->act_max)};
    for (int32_t b = 0; b < p->batches; b += 2) {
        const int32_t c = b + 1 < p->batches ? b + 1 : b;
        gather_runs(input + b * p->depth, input + c * p->depth, p->depth, col);
        gemm_pair(&g, col, output + b * p->out_c, output + c * p->out_c);
    }
}

/* Depthwise (depth multiplier 1, channels a multiple of 4): four channels per word, split by
 * SXTB16 into (c0, c2) and (c1, c3); weights packed per tap as the same pairs (read with one
 * LDRD), so SMLABB and SMLATT take each channel's product from its half. Taps outside the
 * input read the zero point (exact with the folded bias, as in the convolution). */
#define DW_TAP(x, wp)                                                                          \
    do {                                                                                       \
        const int32_t even = __sxtb16(x), odd = sxtb16_ror8(x);                                \
        const int32_t w02 = (wp)[0], w13 = (wp)[1];                                            \
        a0 = __smlabb(even, w02, a0);                                                          \
        a2 = __smlatt(even, w02, a2);                                                          \
        a1 = __smlabb(odd, w13, a1);                                                           \
        a3 = __smlatt(odd, w13, a3);                                                           \
    } while (0)

/* Four channels' results as one word store. */
BR_INLINE void dw_store(int8_t *out, const br_requant *q, int32_t a0, int32_t a1, int32_t a2,
                        int32_t a3, int mode, int32_t lo, int32_t hi)
{
    const uint32_t r0 = (uint8_t)dsp_requant(a0, &q[0], mode, lo, hi);
    const uint32_t r1 = (uint8_t)dsp_requant(a1, &q[1], mode, lo, hi);
    const uint32_t r2 = (uint8_t)dsp_requant(a2, &q[2], mode, lo, hi);
    const uint32_t r3 = (uint8_t)dsp_requant(a3, &q[3], mode, lo, hi);
    const uint32_t word = r0 | r1 << 8 | r2 << 16 | r3 << 24;
    memcpy(out, &word, sizeof word);
}

/* One pixel of a 3x3 filter: the nine taps straight-line, rows y_step apart, taps x_step. */
BR_INLINE void dw_pixel_3x3(const br_conv_params *p, const int8_t *window, int32_t x_step,
                            int32_t y_step, int mode, int32_t lo, int32_t hi, int8_t *out)
{
    const int32_t c = p->in_c, x2 = 2 * x_step;
    const int32_t *w = p->packed; /* group by group, tap by tap: two words each */
    const br_requant *q = p->requant;
    for (int32_t g = 0; g < c; g += 4, q += 4, w += 18) {
        int32_t a0 = q[0].bias, a1 = q[1].bias, a2 = q[2].bias, a3 = q[3].bias;
        const int8_t *r0 = window + g, *r1 = r0 + y_step, *r2 = r1 + y_step;
        DW_TAP(load_word(r0), w);
        DW_TAP(load_word(r0 + x_step), w + 2);
        DW_TAP(load_word(r0 + x2), w + 4);
        DW_TAP(load_word(r1), w + 6);
        DW_TAP(load_word(r1 + x_step), w + 8);
        DW_TAP(load_word(r1 + x2), w + 10);
        DW_TAP(load_word(r2), w + 12);
        DW_TAP(load_word(r2 + x_step), w + 14);
        DW_TAP(load_word(r2 + x2), w + 16);
        dw_store(out + g, q, a0, a1, a2, a3, mode, lo, hi);
    }
}

#if BR_DSP_ASM
/* One tap of the 3x3 depthwise group in assembly (DW_TAP's arithmetic), and a row of three. */
#define DW_TAP_ASM(address)                                                                    \
    "ldr %[x], " address "\n\t"                                                                \
    "ldrd %[w02], %[w13], [%[w]], #8\n\t"                                                      \
    "sxtb16 %[e], %[x]\n\t"                                                                    \
    "sxtb16 %[x], %[x], ror #8\n\t"                                                            \
    "smlabb %[a0], %[e], %[w02], %[a0]\n\t"                                                    \
    "smlatt %[a2], %[e], %[w02], %[a2]\n\t"                                                    \
    "smlabb %[a1], %[x], %[w13], %[a1]\n\t"                                                    \
    "smlatt %[a3], %[x], %[w13], %[a3]\n\t"

#define DW_ROW3_ASM                                                                            \
    DW_TAP_ASM("[%[rp]]") DW_TAP_ASM("[%[rp], %[xs]]") DW_TAP_ASM("[%[rp], %[x2]]")

/* One channel's requantization (dsp_requant's arithmetic), rp = requant row, x = out. */
#define DW_REQUANT_ASM(acc, j, multiplier_at, post_shift_at)                                   \
    "ldrd %[e], %[w02], [%[rp], #" #multiplier_at "]\n\t"                                      \
    "smmulr %[" #acc "], %[" #acc "], %[e]\n\t"                                                \
    "ldrsb %[e], [%[rp], #" #post_shift_at "]\n\t"                                             \
    REQUANT_FINISH_ASM(acc, w02, e, w13, x, j)

#define DW_REQUANT4_ASM                                                                        \
    DW_REQUANT_ASM(a0, 0, 4, 12) DW_REQUANT_ASM(a1, 1, 20, 28) DW_REQUANT_ASM(a2, 2, 36, 44)   \
    DW_REQUANT_ASM(a3, 3, 52, 60)

/* A 3x3 pixel, all groups, no clamp tighter than int8's, wholly in assembly: the 13 values
 * the taps need stay in registers; the requant row, output and window pointers and the group
 * count, needed once per group, live in memory. */
BR_INLINE void dw_pixel_3x3_plain(const br_conv_params *p, const int8_t *window, int32_t x_step,
                                  int32_t y_step, int8_t *out)
{
    int32_t a0, a1, a2, a3, x, e, w02, w13, rp;
    const int32_t *w = p->packed;
    const br_requant *q = p->requant;
    const int8_t *base = window;
    int32_t left = p->in_c / 4;
    __asm__ volatile("0:\n\t"
                     "ldr %[rp], %[base]\n\t"
                     "ldr %[x], %[q]\n\t"
                     "ldr %[a0], [%[x]]\n\t"
                     "ldr %[a1], [%[x], #16]\n\t"
                     "ldr %[a2], [%[x], #32]\n\t"
                     "ldr %[a3], [%[x], #48]\n\t" DW_ROW3_ASM "add %[rp], %[rp], %[ys]\n\t"
                     DW_ROW3_ASM "add %[rp], %[rp], %[ys]\n\t" DW_ROW3_ASM
                     "ldr %[rp], %[q]\n\t"
                     "ldr %[x], %[out]\n\t" DW_REQUANT4_ASM "adds %[x], #4\n\t"
                     "str %[x], %[out]\n\t"
                     "adds %[rp], #64\n\t"
                     "str %[rp], %[q]\n\t"
                     "ldr %[rp], %[base]\n\t"
                     "adds %[rp], #4\n\t"
                     "str %[rp], %[base]\n\t"
                     "ldr %[e], %[left]\n\t"
                     "subs %[e], #1\n\t"
                     "str %[e], %[left]\n\t"
                     "bne 0b"
                     : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3),
                       [x] "=&r"(x), [e] "=&r"(e), [w02] "=&r"(w02), [w13] "=&r"(w13),
                       [rp] "=&r"(rp), [w] "+r"(w), [q] "+m"(q), [out] "+m"(out),
                       [base] "+m"(base), [left] "+m"(left)
                     : [xs] "r"(x_step), [x2] "r"(2 * x_step), [ys] "r"(y_step)
                     : "cc", "memory");
}
#endif /* BR_DSP_ASM */

/* One pixel of any other filter size: the same taps in loops. */
BR_INLINE void dw_pixel_any(const br_conv_params *p, const int8_t *window, int32_t x_step,
                            int32_t y_step, int mode, int32_t lo, int32_t hi, int8_t *out)
{
    const int32_t c = p->in_c;
    const int k_h = p->k_h, k_w = p->k_w;
    const int32_t *w = p->packed;
    const br_requant *q = p->requant;
    for (int32_t g = 0; g < c; g += 4, q += 4) {
        int32_t a0 = q[0].bias, a1 = q[1].bias, a2 = q[2].bias, a3 = q[3].bias;
        const int8_t *row = window + g;
        for (int fy = 0; fy < k_h; ++fy, row += y_step) {
            const int8_t *x = row;
            for (int fx = 0; fx < k_w; ++fx, x += x_step, w += 2) {
                const int32_t v = load_word(x);
                DW_TAP(v, w);
            }
        }
        dw_store(out + g, q, a0, a1, a2, a3, mode, lo, hi);
    }
}

BR_INLINE void dw_pixel_mode(const br_conv_params *p, const int8_t *window, int32_t x_step,
                             int32_t y_step, int mode, int32_t lo, int32_t hi, int8_t *out)
{
#if BR_DSP_ASM
    if (p->k_h == 3 && p->k_w == 3 && mode == CLAMP_NONE) {
        dw_pixel_3x3_plain(p, window, x_step, y_step, out);
        return;
    }
#endif
    if (p->k_h == 3 && p->k_w == 3) {
        dw_pixel_3x3(p, window, x_step, y_step, mode, lo, hi, out);
    } else {
        dw_pixel_any(p, window, x_step, y_step, mode, lo, hi, out);
    }
}

static void dw_pixel(const br_conv_params *p, const int8_t *window, int32_t x_step,
                     int32_t y_step, const dsp_clamp *cl, int8_t *out)
{
    switch (cl->mode) {
    case CLAMP_NONE:
        dw_pixel_mode(p, window, x_step, y_step, CLAMP_NONE, cl->lo, cl->hi, out);
        break;
    case CLAMP_LOW:
        dw_pixel_mode(p, window, x_step, y_step, CLAMP_LOW, cl->lo, cl->hi, out);
        break;
    default:
        dw_pixel_mode(p, window, x_step, y_step, CLAMP_BOTH, cl->lo, cl->hi, out);
        break;
    }
}

/* A border pixel's window copied to scratch a word at a time (channels are a multiple of 4 and
 * pixels word-aligned in the arena), taps outside the input set to the zero point. */
static const int8_t *dw_border_window(const br_conv_params *p, const int8_t *input, int iy0,
                                      int ix0, int32_t *window)
{
    const int32_t words = p->in_c / 4;
    const uint32_t zp4 = 0x01010101u * (uint8_t)-p->input_offset;
    int32_t *dst = window;
    for (int fy = 0; fy < p->k_h; ++fy) {
        const int iy = iy0 + fy * p->dil_h;
        for (int fx = 0; fx < p->k_w; ++fx) {
            const int ix = ix0 + fx * p->dil_w;
            if (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w) {
                const int8_t *src = input + ((int32_t)iy * p->in_w + ix) * p->in_c;
                for (int32_t i = 0; i < words; ++i) {
                    dst[i] = load_word(src + 4 * i);
                }
            } else {
                for (int32_t i = 0; i < words; ++i) {
                    dst[i] = (int32_t)zp4;
                }
            }
            dst += words;
        }
    }
    return (const int8_t *)window;
}

static void depthwise_dsp(const br_conv_params *p, const int8_t *input, int8_t *output)
{
    const dsp_clamp cl = clamp_of(p->act_min, p->act_max);
    const int32_t c = p->in_c;
    const int32_t x_step = (int32_t)p->dil_w * c, y_step = (int32_t)p->dil_h * p->in_w * c;
    int32_t *window = p->scratch;
    int y_lo, y_hi, x_lo, x_hi;
    interior_range(p->out_h, p->stride_h, p->pad_top, p->k_h, p->dil_h, p->in_h, &y_lo, &y_hi);
    interior_range(p->out_w, p->stride_w, p->pad_left, p->k_w, p->dil_w, p->in_w, &x_lo, &x_hi);
    for (int oy = 0; oy < p->out_h; ++oy) {
        const int iy0 = oy * p->stride_h - p->pad_top;
        for (int ox = 0; ox < p->out_w; ++ox) {
            const int ix0 = ox * p->stride_w - p->pad_left;
            int8_t *out = output + ((int32_t)oy * p->out_w + ox) * p->out_c;
            if (oy >= y_lo && oy < y_hi && ox >= x_lo && ox < x_hi) {
                dw_pixel(p, input + ((int32_t)iy0 * p->in_w + ix0) * c, x_step, y_step, &cl, out);
            } else {
                const int8_t *copy = dw_border_window(p, input, iy0, ix0, window);
                dw_pixel(p, copy, c, (int32_t)p->k_w * c, &cl, out);
            }
        }
    }
}
#endif /* BR_DSP */

/* ---------------------------------------------------------------- CONV_2D */

/* Filter taps [*lo, *hi) that land inside the input for a window starting at `origin`. */
static inline void valid_taps(int origin, int k, int dil, int in_n, int *lo, int *hi)
{
    int first = 0;
    while (first < k && origin + first * dil < 0) {
        ++first;
    }
    int last = k;
    while (last > first && origin + (last - 1) * dil >= in_n) {
        --last;
    }
    *lo = first;
    *hi = last;
}

/* Initial accumulator of one output channel: TFLM adds input_offset only for taps inside the
 * input, so a full window uses the folded bias and a clipped one adds the offset times the
 * weight sums (tap_sums, per channel and tap) of the taps it keeps. */
static inline int32_t conv_acc_init(const br_conv_params *p, int oc, int fy_lo, int fy_hi,
                                    int fx_lo, int fx_hi, int full)
{
    if (full) {
        return p->bias_folded[oc];
    }
    const int32_t *sums = p->tap_sums + (int32_t)oc * p->k_h * p->k_w;
    int32_t kept = 0;
    for (int fy = fy_lo; fy < fy_hi; ++fy) {
        for (int fx = fx_lo; fx < fx_hi; ++fx) {
            kept += sums[fy * p->k_w + fx];
        }
    }
    return p->bias[oc] + p->input_offset * kept;
}

/* One output pixel, all channels; only the taps inside the input are visited. With dil_w == 1
 * each kept filter row is one contiguous run of (fx_hi - fx_lo) * in_c bytes. */
static void conv_pixel(const br_conv_params *p, const int8_t *input, int oy, int ox, int8_t *out)
{
    const int iy0 = oy * p->stride_h - p->pad_top;
    const int ix0 = ox * p->stride_w - p->pad_left;
    int fy_lo, fy_hi, fx_lo, fx_hi;
    valid_taps(iy0, p->k_h, p->dil_h, p->in_h, &fy_lo, &fy_hi);
    valid_taps(ix0, p->k_w, p->dil_w, p->in_w, &fx_lo, &fx_hi);
    const int full = fy_lo == 0 && fy_hi == p->k_h && fx_lo == 0 && fx_hi == p->k_w;
    const int32_t filter_len = (int32_t)p->k_h * p->k_w * p->in_c;
    const int contiguous = p->dil_w == 1;
    const int segments = fx_hi <= fx_lo ? 0 : (contiguous ? 1 : fx_hi - fx_lo);
    const int32_t seg_len = contiguous ? (int32_t)(fx_hi - fx_lo) * p->in_c : p->in_c;
    int oc = 0;
    for (; oc + 4 <= p->out_c; oc += 4) {
        int32_t acc[4];
        for (int j = 0; j < 4; ++j) {
            acc[j] = conv_acc_init(p, oc + j, fy_lo, fy_hi, fx_lo, fx_hi, full);
        }
        for (int fy = fy_lo; fy < fy_hi; ++fy) {
            const int iy = iy0 + fy * p->dil_h;
            for (int s = 0; s < segments; ++s) {
                const int fx = fx_lo + s;
                const int8_t *x = input + ((int32_t)iy * p->in_w + ix0 + fx * p->dil_w) * p->in_c;
                const int8_t *w = p->filter + oc * filter_len + ((int32_t)fy * p->k_w + fx) * p->in_c;
                dot4(x, w, filter_len, seg_len, acc);
            }
        }
        for (int j = 0; j < 4; ++j) {
            out[oc + j] = requantize(acc[j], p->multiplier[oc + j], p->shift[oc + j],
                                     p->output_offset, p->act_min, p->act_max);
        }
    }
    for (; oc < p->out_c; ++oc) {
        int32_t acc = conv_acc_init(p, oc, fy_lo, fy_hi, fx_lo, fx_hi, full);
        for (int fy = fy_lo; fy < fy_hi; ++fy) {
            const int iy = iy0 + fy * p->dil_h;
            for (int s = 0; s < segments; ++s) {
                const int fx = fx_lo + s;
                const int8_t *x = input + ((int32_t)iy * p->in_w + ix0 + fx * p->dil_w) * p->in_c;
                const int8_t *w = p->filter + oc * filter_len + ((int32_t)fy * p->k_w + fx) * p->in_c;
                acc += dot1(x, w, seg_len);
            }
        }
        out[oc] = requantize(acc, p->multiplier[oc], p->shift[oc], p->output_offset, p->act_min,
                             p->act_max);
    }
}

/* Fast path: each output pixel's receptive field as one contiguous vector of K = k_h*k_w*in_c
 * bytes in filter order, so the pixel is a dense dot product with every filter row. Interior
 * windows that are already contiguous in the input (1xK rows, 1x1) are used in place; others
 * are gathered, with taps outside the input filled with the input zero point. That fill makes
 * the folded bias exact everywhere: w * (zp + input_offset) = 0 is what TFLM's skipped tap
 * contributes. Two pixels share every filter load (2 x 4 accumulators). */
#define BR_CONV_GATHER_MAX 256

/* acc[j] += dot(xa, w + j*n) and acc[4 + j] += dot(xb, w + j*n) for j < 4. */
static inline void dot2x4(const int8_t *xa, const int8_t *xb, const int8_t *w, int32_t n,
                          int32_t *acc)
{
    const int8_t *w0 = w;
    const int8_t *w1 = w0 + n;
    const int8_t *w2 = w1 + n;
    const int8_t *w3 = w2 + n;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t b0 = acc[4], b1 = acc[5], b2 = acc[6], b3 = acc[7];
    for (int32_t i = 0; i < n; ++i) {
        const int32_t xa_i = xa[i];
        const int32_t xb_i = xb[i];
        int32_t wv = w0[i];
        a0 += xa_i * wv;
        b0 += xb_i * wv;
        wv = w1[i];
        a1 += xa_i * wv;
        b1 += xb_i * wv;
        wv = w2[i];
        a2 += xa_i * wv;
        b2 += xb_i * wv;
        wv = w3[i];
        a3 += xa_i * wv;
        b3 += xb_i * wv;
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
    acc[4] = b0, acc[5] = b1, acc[6] = b2, acc[7] = b3;
}

/* Whether every pixel's window fits the gather buffer (else the per-tap path runs). */
static int conv_window_fits(const br_conv_params *p)
{
    return (int32_t)p->k_h * p->k_w * p->in_c <= BR_CONV_GATHER_MAX;
}

/* The window of output pixel (oy, ox) as K contiguous bytes: in place when possible, else
 * copied into buf with the input zero point (-input_offset) where taps fall outside. */
static const int8_t *conv_window(const br_conv_params *p, const int8_t *input, int oy, int ox,
                                 int8_t *buf)
{
    const int iy0 = oy * p->stride_h - p->pad_top;
    const int ix0 = ox * p->stride_w - p->pad_left;
    const int inside_x = ix0 >= 0 && ix0 + (p->k_w - 1) * p->dil_w < p->in_w;
    const int inside_y = iy0 >= 0 && iy0 + (p->k_h - 1) * p->dil_h < p->in_h;
    const int one_run = p->k_h == 1 && (p->k_w == 1 || p->dil_w == 1);
    if (inside_x && inside_y && one_run) {
        return input + ((int32_t)iy0 * p->in_w + ix0) * p->in_c;
    }
    const int8_t zp = (int8_t)-p->input_offset;
    int8_t *dst = buf;
    for (int fy = 0; fy < p->k_h; ++fy) {
        const int iy = iy0 + fy * p->dil_h;
        for (int fx = 0; fx < p->k_w; ++fx) {
            const int ix = ix0 + fx * p->dil_w;
            const int in = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
            const int8_t *src = input + ((int32_t)iy * p->in_w + ix) * p->in_c;
            for (int c = 0; c < p->in_c; ++c) {
                dst[c] = in ? src[c] : zp;
            }
            dst += p->in_c;
        }
    }
    return buf;
}

/* Requantize and store one output channel of a dense-conv pixel. */
static inline void conv_store(const br_conv_params *p, int oc, int32_t acc, int8_t *out)
{
    out[oc] = requantize(acc, p->multiplier[oc], p->shift[oc], p->output_offset, p->act_min,
                         p->act_max);
}

/* Two output pixels (windows xa, xb) -> outputs oa, ob, all channels. */
static void conv_dense_pair(const br_conv_params *p, const int8_t *xa, const int8_t *xb,
                            int8_t *oa, int8_t *ob)
{
    const int32_t n = (int32_t)p->k_h * p->k_w * p->in_c;
    int oc = 0;
    for (; oc + 4 <= p->out_c; oc += 4) {
        int32_t acc[8];
        for (int j = 0; j < 4; ++j) {
            acc[j] = acc[4 + j] = p->bias_folded[oc + j];
        }
        dot2x4(xa, xb, p->filter + oc * n, n, acc);
        for (int j = 0; j < 4; ++j) {
            conv_store(p, oc + j, acc[j], oa);
            conv_store(p, oc + j, acc[4 + j], ob);
        }
    }
    for (; oc < p->out_c; ++oc) {
        const int8_t *w = p->filter + oc * n;
        conv_store(p, oc, p->bias_folded[oc] + dot1(xa, w, n), oa);
        conv_store(p, oc, p->bias_folded[oc] + dot1(xb, w, n), ob);
    }
}

/* One output pixel alone (an odd last one): the same sums, one window. */
static void conv_dense_one(const br_conv_params *p, const int8_t *x, int8_t *out)
{
    const int32_t n = (int32_t)p->k_h * p->k_w * p->in_c;
    int oc = 0;
    for (; oc + 4 <= p->out_c; oc += 4) {
        int32_t acc[4];
        for (int j = 0; j < 4; ++j) {
            acc[j] = p->bias_folded[oc + j];
        }
        dot4(x, p->filter + oc * n, n, n, acc);
        for (int j = 0; j < 4; ++j) {
            conv_store(p, oc + j, acc[j], out);
        }
    }
    for (; oc < p->out_c; ++oc) {
        conv_store(p, oc, p->bias_folded[oc] + dot1(x, p->filter + oc * n, n), out);
    }
}

/* Output pixels in raster order, two at a time. */
static void conv2d_dense(const br_conv_params *p, const int8_t *input, int8_t *output)
{
    int8_t buf_a[BR_CONV_GATHER_MAX], buf_b[BR_CONV_GATHER_MAX];
    const int32_t pixels = (int32_t)p->out_h * p->out_w;
    int32_t i = 0;
    for (; i + 2 <= pixels; i += 2) {
        const int8_t *xa = conv_window(p, input, i / p->out_w, i % p->out_w, buf_a);
        const int8_t *xb = conv_window(p, input, (i + 1) / p->out_w, (i + 1) % p->out_w, buf_b);
        conv_dense_pair(p, xa, xb, output + i * p->out_c, output + (i + 1) * p->out_c);
    }
    if (i < pixels) {
        const int8_t *x = conv_window(p, input, i / p->out_w, i % p->out_w, buf_a);
        conv_dense_one(p, x, output + i * p->out_c);
    }
}

void br_conv2d(const br_conv_params *p, const int8_t *input, int8_t *output)
{
#if BR_DSP
    if (p->packed != NULL) {
        conv2d_dsp(p, input, output);
        return;
    }
#endif
    if (conv_window_fits(p)) {
        conv2d_dense(p, input, output);
        return;
    }
    for (int oy = 0; oy < p->out_h; ++oy) {
        for (int ox = 0; ox < p->out_w; ++ox) {
            conv_pixel(p, input, oy, ox, output + ((int32_t)oy * p->out_w + ox) * p->out_c);
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
#if BR_DSP
    if (p->packed != NULL) {
        depthwise_dsp(p, input, output);
        return;
    }
#endif
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

/* ---------------------------------------------------------------- banded pairs */

/* Copy n bytes between rows of the band (dst below src, possibly overlapping): words while
 * both are aligned, as row sizes usually are. */
static void move_down(int8_t *dst, const int8_t *src, int32_t n)
{
    int32_t i = 0;
    if ((((uintptr_t)dst | (uintptr_t)src) & 3u) == 0) {
        int32_t *d = (int32_t *)(void *)dst;
        const int32_t *s = (const int32_t *)(const void *)src;
        for (; i + 4 <= n; i += 4) {
            *d++ = *s++;
        }
    }
    for (; i < n; ++i) {
        dst[i] = src[i];
    }
}

/* Rows [r0, r0 + n) of a conv/depthwise layer's output: the same kernel on a shorter output
 * whose top padding is shifted by r0 rows (negative padding just starts lower in the input). */
static void run_rows(const br_band_params *p, int32_t r0, int32_t n, const int8_t *input,
                     int8_t *out)
{
    br_conv_params rows = *p->producer;
    rows.out_h = (int16_t)n;
    rows.pad_top = (int16_t)(rows.pad_top - r0 * rows.stride_h);
    p->producer_kernel(&rows, input, out);
}

void br_conv_banded(const br_band_params *p, const int8_t *input, int8_t *output)
{
    const br_conv_params *c = p->consumer;
    const int32_t row_bytes = (int32_t)c->in_w * c->in_c;
    const int32_t eff_k = (int32_t)(c->k_h - 1) * c->dil_h + 1;
    int32_t base = 0, have = 0; /* the band holds producer rows [base, base + have) */
    br_conv_params row = *c;
    row.out_h = 1;
    for (int32_t oy = 0; oy < c->out_h; ++oy) {
        const int32_t top = oy * c->stride_h - c->pad_top;
        const int32_t lo = top < 0 ? 0 : top;
        const int32_t hi = top + eff_k < c->in_h ? top + eff_k : c->in_h;
        const int32_t drop = lo - base < have ? lo - base : have;
        if (drop > 0) {
            move_down(p->band, p->band + drop * row_bytes, (have - drop) * row_bytes);
            base += drop;
            have -= drop;
        }
        if (have == 0) {
            base = lo;
        }
        if (base + have < hi) {
            run_rows(p, base + have, hi - base - have, input, p->band + have * row_bytes);
            have = hi - base;
        }
        /* Band row b is producer row base + b: rows outside [0, have) are the padding. */
        row.in_h = (int16_t)have;
        row.pad_top = (int16_t)(base - top);
        p->consumer_kernel(&row, p->band, output + oy * (int32_t)c->out_w * c->out_c);
    }
}

/* ---------------------------------------------------------------- FULLY_CONNECTED */

void br_fully_connected(const br_fc_params *p, const int8_t *input, int8_t *output)
{
#if BR_DSP
    if (p->packed != NULL) {
        fully_connected_dsp(p, input, output);
        return;
    }
#endif
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

/* Channels innermost over contiguous window rows: the first kept tap is copied, later taps are
 * max-ed in, and the activation clamp runs only when it can change anything. */
static void max_pool_pixel(const br_pool_params *p, const int8_t *restrict input, int iy0,
                           int ix0, int8_t *restrict out)
{
    const int fy_lo = clamp_int(-iy0, 0, p->k_h);
    const int fy_hi = clamp_int(p->in_h - iy0, 0, p->k_h);
    const int fx_lo = clamp_int(-ix0, 0, p->k_w);
    const int fx_hi = clamp_int(p->in_w - ix0, 0, p->k_w);
    if (fy_lo >= fy_hi || fx_lo >= fx_hi) {
        for (int c = 0; c < p->c; ++c) {
            out[c] = (int8_t)clamp_int(-128, p->act_min, p->act_max);
        }
        return;
    }
    int first = 1;
    for (int fy = fy_lo; fy < fy_hi; ++fy) {
        for (int fx = fx_lo; fx < fx_hi; ++fx) {
            const int8_t *x = input + ((int32_t)(iy0 + fy) * p->in_w + ix0 + fx) * p->c;
            if (first) {
                for (int c = 0; c < p->c; ++c) {
                    out[c] = x[c];
                }
                first = 0;
                continue;
            }
            for (int c = 0; c < p->c; ++c) {
                out[c] = x[c] > out[c] ? x[c] : out[c];
            }
        }
    }
    if (p->act_min > -128 || p->act_max < 127) {
        for (int c = 0; c < p->c; ++c) {
            out[c] = (int8_t)clamp_int(out[c], p->act_min, p->act_max);
        }
    }
}

void br_max_pool(const br_pool_params *p, const int8_t *input, int8_t *output)
{
    for (int oy = 0; oy < p->out_h; ++oy) {
        for (int ox = 0; ox < p->out_w; ++ox) {
            max_pool_pixel(p, input, oy * p->stride_h - p->pad_top, ox * p->stride_w - p->pad_left,
                           output + ((int32_t)oy * p->out_w + ox) * p->c);
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

/* One output of MEAN from its sum over the reduced axis. */
static inline int8_t mean_output(const br_mean_params *p, int32_t sum)
{
    if (p->same_quant) {
        return (int8_t)(sum / p->reduce); /* C truncation, exactly TFLM's Mean<int8, int32> */
    }
    const int32_t shifted = sum - p->input_zero_point * p->reduce;
    return (int8_t)clamp_int(mbqm(shifted, p->multiplier, p->shift) + p->output_zero_point, -128,
                             127);
}

#if BR_DSP
/* Sums of four adjacent inner positions at once: each word's four int8 values split by SXTB16
 * into (0, 2) and (1, 3) and added by SADD16 into 16-bit lanes, exact while reduce <= 256
 * (|sum| <= 256 * 128). */
static void mean_sums4(const int8_t *x, int32_t reduce, int32_t inner, int32_t sums[4])
{
    int32_t even = 0, odd = 0;
    for (int32_t r = 0; r < reduce; ++r, x += inner) {
        const int32_t v = load_word(x);
        even = __sadd16(even, __sxtb16(v));
        odd = __sadd16(odd, sxtb16_ror8(v));
    }
    sums[0] = (int16_t)even;
    sums[1] = (int16_t)odd;
    sums[2] = even >> 16;
    sums[3] = odd >> 16;
}
#endif

void br_mean(const br_mean_params *p, const int8_t *input, int8_t *output)
{
    for (int32_t o = 0; o < p->outer; ++o) {
        const int8_t *x = input + o * p->reduce * p->inner;
        int8_t *out = output + o * p->inner;
        int32_t i = 0;
#if BR_DSP
        if (p->reduce <= 256) {
            for (; i + 4 <= p->inner; i += 4) {
                int32_t sums[4];
                mean_sums4(x + i, p->reduce, p->inner, sums);
                for (int j = 0; j < 4; ++j) {
                    out[i + j] = mean_output(p, sums[j]);
                }
            }
        }
#endif
        for (; i < p->inner; ++i) {
            int32_t sum = 0;
            for (int32_t r = 0; r < p->reduce; ++r) {
                sum += x[r * p->inner + i];
            }
            out[i] = mean_output(p, sum);
        }
    }
}
