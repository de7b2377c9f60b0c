/* The core's sigmoid and tanh over arrays, through the same SIMD clones as
 * the gate kernels: for accuracy tests and for callers who want them. */
#include "internal.h"
#include "vmath.h"

#define ACTIVATION_LOOP(NAME, REAL, FN)                                          \
    CLSTM_CLONES void NAME(size_t n, const REAL *restrict x, REAL *restrict y) \
    {                                                                            \
        for (size_t i = 0; i < n; i++) y[i] = FN(x[i]);                          \
    }

ACTIVATION_LOOP(clstm_sigmoid_array_f32, float, clstm_sigmoid_f32)
ACTIVATION_LOOP(clstm_tanh_array_f32, float, clstm_tanh_f32)
ACTIVATION_LOOP(clstm_sigmoid_array_f64, double, clstm_sigmoid_f64)
ACTIVATION_LOOP(clstm_tanh_array_f64, double, clstm_tanh_f64)
