/* Optimizer updates in one pass over the arrays: what clstm.keras's Adam
 * did in eight NumPy expressions, each a pass with a temporary (at the seed
 * model's sizes, ~19 us per array per step, ~10% of a training epoch, for
 * what is a few microseconds of arithmetic). */
#include <math.h>
#include "internal.h"

/* Adam on n elements (g the gradient, w the variable, m and v the moments):
 *   m += (g - m) c1;  v += (g g - v) c2;  w -= alpha m / (sqrt(v) + eps)
 * with c1 = 1 - beta_1, c2 = 1 - beta_2 and alpha the step's bias-corrected
 * rate (clstm/keras/optimizers.py, Adam).  The loop vectorizes (vsqrtps)
 * because the build passes -fno-math-errno (setup.py): with errno to set
 * for a negative argument, GCC calls sqrtf element by element. */
#define ADAM_LOOP(NAME, REAL, SQRT)                                                       \
    CLSTM_CLONES void NAME(size_t n, const REAL *restrict g, REAL *restrict w,            \
                           REAL *restrict m, REAL *restrict v, REAL alpha, REAL c1,       \
                           REAL c2, REAL eps)                                             \
    {                                                                                     \
        for (size_t i = 0; i < n; i++) {                                                  \
            const REAL mi = m[i] + (g[i] - m[i]) * c1, vi = v[i] + (g[i] * g[i] - v[i]) * c2; \
            m[i] = mi;                                                                    \
            v[i] = vi;                                                                    \
            w[i] -= (mi * alpha) / (SQRT(vi) + eps);                                      \
        }                                                                                 \
    }

ADAM_LOOP(clstm_adam_f32, float, sqrtf)
ADAM_LOOP(clstm_adam_f64, double, sqrt)
