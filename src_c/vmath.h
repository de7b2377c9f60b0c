/* Vectorizable sigmoid and tanh for float and double.
 *
 * libm's scalar expf/tanhf cost 15-20 ns each and block vectorization of the
 * gate loop; these are branch-free (clamps are selects) so GCC turns a loop of
 * them into AVX2/AVX-512 code.  Accuracy, measured against float64/long double
 * in tests/test_activations.py: a few ulp over the whole real line (sigmoid
 * gives 0 where its true value is below the smallest normal number).
 *
 * expm1(y) = 2^n (e^r - 1) + (2^n - 1) with n = round(y / ln2),
 * r = y - n ln2 (Cody-Waite split of ln2 so n*LN2_HI is exact), e^r - 1 from
 * a polynomial on |r| <= ln2/2 (fitted, degree 5, for float; Taylor for
 * double).  Rounding uses the 1.5*2^(mantissa bits) shifter so the integer n
 * can be read from the float's bits: no float->int conversion, which keeps
 * NaN harmless (it stays NaN through the polynomial).
 *
 * Both activations are that one expm1 (the tile kernels evaluate all four
 * gates in one pass, tile_template.h): tanh(|x|) = -m / (2 + m) with
 * m = expm1(-2|x|), which keeps full relative accuracy near 0 where
 * 1 - 2/(1+e^2x) would cancel; sigmoid(x) = 1 / (2 + m) with m = expm1(-x).
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

/* e^r - 1 = r p(r) on |r| <= ln2/2, p of degree 5, fitted for least
 * maximum relative error (Chebyshev-weighted): 1.3e-7 relative with float's
 * rounding, about 1 ulp (Taylor to r^8 gave 1.15e-7 with two more
 * multiply-adds).  Highest degree first; the tile kernels use the table too. */
#define CLSTM_EXPM1_COEF_F32 {0.0013888959074392915f, 0.008369076065719128f, \
    0.04166713356971741f, 0.16666506230831146f, 0.4999999701976776f, 1.0f}

static inline float clstm_expm1_poly_f32(float r)
{
    static const float c[] = CLSTM_EXPM1_COEF_F32;
    float p = c[0];
    for (unsigned i = 1; i < sizeof c / sizeof c[0]; i++) p = p * r + c[i];
    return p * r;
}

/* expm1(y) for y clamped by the caller (to [-87, 88], or NaN) */
static inline float clstm_expm1_clamped_f32(float y)
{
    float two_n;
    float r = clstm_reduce_f32(y, &two_n);
    return two_n * clstm_expm1_poly_f32(r) + (two_n - 1.0f);
}

/* sigmoid(x) = 1 / (1 + e^-x) = 1 / (2 + expm1(-x)): the same expm1 as tanh,
 * so that the tile kernels evaluate all four gates in one pass.  Below -87
 * the true value is under float's smallest normal: 0, which keeps
 * sigmoid(-inf) * inf a NaN as IEEE (and PyTorch) have it. */
static inline float clstm_sigmoid_f32(float x)
{
    float y = -x;
    y = y > 88.0f ? 88.0f : y;
    y = y < -87.0f ? -87.0f : y;
    float s = 1.0f / (2.0f + clstm_expm1_clamped_f32(y));
    return x < -87.0f ? 0.0f : s;
}

static inline float clstm_tanh_f32(float x)
{
    float y = -2.0f * fabsf(x);
    y = y < -40.0f ? -40.0f : y;  /* tanh(20) rounds to 1 in float */
    float m = clstm_expm1_clamped_f32(y);
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
#define CLSTM_EXPM1_COEF_F64 {1.0 / 87178291200.0, 1.0 / 6227020800.0, 1.0 / 479001600.0, \
    1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, \
    1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0}

static inline double clstm_expm1_poly_f64(double r)
{
    static const double c[] = CLSTM_EXPM1_COEF_F64;
    double p = c[0];
    for (unsigned i = 1; i < sizeof c / sizeof c[0]; i++) p = p * r + c[i];
    return p * r;
}

static inline double clstm_expm1_clamped_f64(double y)
{
    double two_n;
    double r = clstm_reduce_f64(y, &two_n);
    return two_n * clstm_expm1_poly_f64(r) + (two_n - 1.0);
}

static inline double clstm_sigmoid_f64(double x)   /* 0 below -708: see the float version */
{
    double y = -x;
    y = y > 709.0 ? 709.0 : y;
    y = y < -708.0 ? -708.0 : y;
    double s = 1.0 / (2.0 + clstm_expm1_clamped_f64(y));
    return x < -708.0 ? 0.0 : s;
}

static inline double clstm_tanh_f64(double x)
{
    double y = -2.0 * fabs(x);
    y = y < -80.0 ? -80.0 : y;  /* tanh(40) rounds to 1 in double */
    double m = clstm_expm1_clamped_f64(y);
    return copysign(-m / (2.0 + m), x);
}

#endif
