/* Vectorizable sigmoid and tanh for float and double.
 *
 * libm's scalar expf/tanhf cost 15-20 ns each and block vectorization of the
 * gate loop; these are branch-free (clamps are selects) so GCC turns a loop of
 * them into AVX2/AVX-512 code.  Accuracy, measured against float64/long double
 * in tests/test_activations.py: a few ulp over the whole real line (sigmoid
 * gives 0 where its true value is below the smallest normal number).
 *
 * exp(x) = 2^n * e^r with n = round(x / ln2), r = x - n ln2 (Cody-Waite split
 * of ln2 so n*LN2_HI is exact), e^r from its Taylor polynomial on
 * |r| <= ln2/2.  Rounding uses the 1.5*2^(mantissa bits) shifter so the
 * integer n can be read from the float's bits: no float->int conversion, which
 * keeps NaN harmless (it stays NaN through the polynomial).
 *
 * tanh(|x|) = -m / (2 + m) with m = expm1(-2|x|): expm1 keeps full relative
 * accuracy near 0, where 1 - 2/(1+e^2x) would cancel.
 *
 * Must not be compiled with -ffast-math: the shifter trick relies on exact
 * IEEE rounding.
 */
#ifndef CLSTM_VMATH_H
#define CLSTM_VMATH_H

#include <stdint.h>
#include <string.h>
#include <math.h>

/* ---- float ---------------------------------------------------------------- */

/* Splits x (clamped by the caller to [-87, 88], or NaN) into 2^n and r. */
static inline float clstm_reduce_f32(float x, float *two_n)
{
    const float shifter = 12582912.0f;            /* 1.5 * 2^23 */
    float t = x * 1.44269504088896341f + shifter; /* n in the low mantissa bits */
    float n = t - shifter;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    uint32_t eb = (tb - 0x4B400000u + 127u) << 23; /* bits of 2^n */
    memcpy(two_n, &eb, sizeof eb);
    float r = x - n * 0.693359375f;   /* LN2_HI: 9 significant bits, exact product */
    return r - n * -2.12194440e-4f;   /* LN2_LO */
}

/* e^r - 1 on |r| <= ln2/2: Taylor to r^8, relative error < 2e-8. */
static inline float clstm_expm1_poly_f32(float r)
{
    float p = 1.0f / 40320.0f;
    p = p * r + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    return p * r;
}

static inline float clstm_exp_f32(float x)
{
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x;
    float two_n;
    float r = clstm_reduce_f32(x, &two_n);
    return two_n + two_n * clstm_expm1_poly_f32(r);
}

/* Below -87 the true value is under float's smallest normal: 0, which keeps
 * sigmoid(-inf) * inf a NaN as IEEE (and PyTorch) have it; exp's clamp alone
 * would give 1.6e-38 there. */
static inline float clstm_sigmoid_f32(float x)
{
    float s = 1.0f / (1.0f + clstm_exp_f32(-x));
    return x < -87.0f ? 0.0f : s;
}

static inline float clstm_tanh_f32(float x)
{
    float y = -2.0f * fabsf(x);
    y = y < -40.0f ? -40.0f : y;  /* tanh(20) rounds to 1 in float */
    float two_n;
    float r = clstm_reduce_f32(y, &two_n);
    float m = two_n * clstm_expm1_poly_f32(r) + (two_n - 1.0f); /* expm1(y) */
    return copysignf(-m / (2.0f + m), x);
}

/* ---- double --------------------------------------------------------------- */

static inline double clstm_reduce_f64(double x, double *two_n)
{
    const double shifter = 6755399441055744.0;    /* 1.5 * 2^52 */
    double t = x * 1.4426950408889634074 + shifter;
    double n = t - shifter;
    uint64_t tb;
    memcpy(&tb, &t, sizeof tb);
    uint64_t eb = (tb - 0x4338000000000000ull + 1023ull) << 52;
    memcpy(two_n, &eb, sizeof eb);
    double r = x - n * 6.93147180369123816490e-01;  /* LN2_HI: low 32 bits zero */
    return r - n * 1.90821492927058770002e-10;      /* LN2_LO */
}

/* e^r - 1 on |r| <= ln2/2: Taylor to r^14, relative error < 2e-17. */
static inline double clstm_expm1_poly_f64(double r)
{
    double p = 1.0 / 87178291200.0;
    p = p * r + 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    return p * r;
}

static inline double clstm_exp_f64(double x)
{
    x = x > 709.0 ? 709.0 : x;
    x = x < -708.0 ? -708.0 : x;
    double two_n;
    double r = clstm_reduce_f64(x, &two_n);
    return two_n + two_n * clstm_expm1_poly_f64(r);
}

static inline double clstm_sigmoid_f64(double x)   /* 0 below -708: see the float version */
{
    double s = 1.0 / (1.0 + clstm_exp_f64(-x));
    return x < -708.0 ? 0.0 : s;
}

static inline double clstm_tanh_f64(double x)
{
    double y = -2.0 * fabs(x);
    y = y < -80.0 ? -80.0 : y;  /* tanh(40) rounds to 1 in double */
    double two_n;
    double r = clstm_reduce_f64(y, &two_n);
    double m = two_n * clstm_expm1_poly_f64(r) + (two_n - 1.0);
    return copysign(-m / (2.0 + m), x);
}

#endif
