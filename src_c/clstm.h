/* clstm C core: one LSTM layer, one direction, over a whole sequence.
 *
 * Plain C99, no Python.  BLAS comes in as function pointers with the Fortran
 * signature (scipy.linalg.cython_blas, OpenBLAS, MKL, or a naive loop), so the
 * core links against nothing but libm (and OpenMP where compiled with it).
 *
 * Conventions (PyTorch's): gates in the order i, f, g, o; w_ih is (4H, I),
 * w_hh is (4H, H), all arrays row-major and contiguous unless a leading
 * dimension says otherwise; sequences are time-major (T, B, F).
 *
 * Every function comes in a _f32 and a _f64 flavour compiled from one source
 * (lstm_template.h).  The caller owns all memory: workspaces are sized by the
 * *_workspace functions and nothing is allocated inside.
 */
#ifndef CLSTM_H
#define CLSTM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*clstm_sgemm_fn)(char *transa, char *transb, int *m, int *n, int *k,
                               float *alpha, float *a, int *lda, float *b, int *ldb,
                               float *beta, float *c, int *ldc);
typedef void (*clstm_dgemm_fn)(char *transa, char *transb, int *m, int *n, int *k,
                               double *alpha, double *a, int *lda, double *b, int *ldb,
                               double *beta, double *c, int *ldc);

/* get_threads/set_threads (either may be NULL): the BLAS's own thread count.
 * The core runs its GEMMs from its own OpenMP threads, each on a slice, with
 * the BLAS held at 1 thread meanwhile: a BLAS thread pool spinning beside the
 * core's threads made 2 threads 5x slower than 1 on small shapes. */
typedef int (*clstm_get_threads_fn)(void);
typedef void (*clstm_set_threads_fn)(int n);
typedef struct {
    clstm_sgemm_fn sgemm;
    clstm_dgemm_fn dgemm;
    clstm_get_threads_fn get_threads;
    clstm_set_threads_fn set_threads;
} clstm_blas;

/* Threads (OpenMP) for each call; the BLAS's own count is set by the caller
 * (clstm_blas.set_threads lets the core hold it at 1 while its threads call
 * the BLAS).  n < 1 means 1. */
void clstm_set_num_threads(int n);
int clstm_get_num_threads(void);
int clstm_has_openmp(void);
/* Name of the SIMD clone the elementwise kernels dispatch to on this CPU. */
const char *clstm_simd_level(void);
/* The backward's products after the recurrence: -1 chosen by the CPU
 * (default), 0 through BLAS, 1 on the core's tile kernels.
 * clstm_large_products() reports the routes on this CPU as bits, set where
 * the tile kernels run them: 1 float32 dW, 2 float32 dX, 4 float64 dW,
 * 8 float64 dX. */
void clstm_set_large_products(int mode);
int clstm_large_products(void);
/* y[i] = sigmoid(x[i]) / tanh(x[i]) for i < n, by the gate kernels' own
 * vectorized functions (accuracy: a few ulp, tests/test_activations.py). */
void clstm_sigmoid_array_f32(size_t n, const float *x, float *y);
void clstm_tanh_array_f32(size_t n, const float *x, float *y);
void clstm_sigmoid_array_f64(size_t n, const double *x, double *y);
void clstm_tanh_array_f64(size_t n, const double *x, double *y);
/* One Adam step on n elements in one pass (optim.c): m += (g - m) c1,
 * v += (g g - v) c2, w -= alpha m / (sqrt(v) + eps).  No two arrays overlap. */
void clstm_adam_f32(size_t n, const float *g, float *w, float *m, float *v, float alpha,
                    float c1, float c2, float eps);
void clstm_adam_f64(size_t n, const double *g, double *w, double *m, double *v, double alpha,
                    double c1, double c2, double eps);

/* Workspace, in elements of the dtype, that clstm_lstm_forward needs:
 * train != 0 keeps all gates in the caller's `gates` array and needs less;
 * masked != 0 when a step mask is passed. */
size_t clstm_forward_workspace(int T, int B, int In, int H, int train, int masked);
/* Steps whose input projections the inference path computes in one GEMM. */
int clstm_forward_chunk(int T, int B, int H);
size_t clstm_backward_workspace(int B, int H, int masked);
size_t clstm_step_workspace(int B, int H);

#define CLSTM_DECLARE(REAL, SFX)                                                   \
/* Forward over T steps.                                                        \
 * x is (T, B, In); w_ih_t (In, 4H) and w_hh_t (H, 4H) are the transposed       \
 * PyTorch weights (Keras's kernel and recurrent_kernel); bias (4H) =            \
 * b_ih + b_hh or NULL; h0, c0 (B, H) or NULL for zeros; y is (T, B, ldy), this  \
 * direction's H columns start at y (the caller offsets it); hn, cn (B, H).     \
 * mask (T, B) or NULL: a 0 skips that step of that sequence (state carried,    \
 * output 0): padding, anywhere.  reverse != 0 runs t = T-1 .. 0 (the second   \
 * direction of a bidirectional layer) with no copies.                          \
 * Training (gates != NULL): gates (T, B, 4H) receives the activated gates, cs  \
 * (T, B, H) the cell states and, with a mask only, hs (T, B, H) the hidden     \
 * states (without a mask they are y).  ws: clstm_forward_workspace elements.   \
 * Returns 0. */                                                                \
int clstm_lstm_forward_##SFX(const clstm_blas *blas, int T, int B, int In, int H, \
    int reverse, const REAL *x, const REAL *w_ih_t, const REAL *w_hh_t,         \
    const REAL *bias, const REAL *h0, const REAL *c0, const unsigned char *mask,\
    REAL *y, int ldy, REAL *hn, REAL *cn, REAL *gates, REAL *cs, REAL *hs,      \
    REAL *ws);                                                                   \
/* Backward (BPTT) through the forward above, which ran with gates != NULL,    \
 * given the same x, weights, h0, c0, mask, y, gates, cs, hs.                   \
 * dy (T, B, lddy): gradient of the loss w.r.t. this direction's outputs, or    \
 * NULL where none flows through them (a loss on the final state only);         \
 * dhn, dcn (B, H) or NULL: gradients w.r.t. the final state.                   \
 * Overwrites gates with the pre-activation gate gradients (T, B, 4H).          \
 * dx (T, B, In) = dx_beta * dx + gradient (dx_beta 0 or 1: a bidirectional    \
 * layer's two directions add into one dx); dh0, dc0 (B, H) outputs.            \
 * dw_ih_t (In, 4H), dw_hh_t (H, 4H), db (4H) are overwritten (db may be NULL). \
 * ws: clstm_backward_workspace elements.  Returns 0. */                        \
int clstm_lstm_backward_##SFX(const clstm_blas *blas, int T, int B, int In, int H,\
    int reverse, const REAL *x, const REAL *w_ih_t, const REAL *w_hh_t,         \
    const REAL *h0, const REAL *c0, const unsigned char *mask,                  \
    const REAL *y, int ldy, REAL *gates, const REAL *cs, const REAL *hs,        \
    const REAL *dy, int lddy, const REAL *dhn, const REAL *dcn,                 \
    REAL *dx, REAL dx_beta, REAL *dh0, REAL *dc0,                               \
    REAL *dw_ih_t, REAL *dw_hh_t, REAL *db, REAL *ws);                          \
/* One time step of online inference: x (B, In), h, c (B, H) -> h_out, c_out  \
 * (B, H), which may be h and c themselves.  w_ih_t, w_hh_t as for forward;    \
 * b_ih, b_hh (4H), either NULL.  ws: clstm_step_workspace elements.  No       \
 * allocation, no BLAS call for small weights and batches.  Returns 0. */      \
int clstm_lstm_step_##SFX(const clstm_blas *blas, int B, int In, int H,         \
    const REAL *x, const REAL *w_ih_t, const REAL *w_hh_t, const REAL *b_ih,    \
    const REAL *b_hh, const REAL *h, const REAL *c, REAL *h_out, REAL *c_out,   \
    REAL *ws);

CLSTM_DECLARE(float, f32)
CLSTM_DECLARE(double, f64)
#undef CLSTM_DECLARE

#ifdef __cplusplus
}
#endif

#endif
