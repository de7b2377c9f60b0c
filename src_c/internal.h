/* Shared by the core's translation units; not part of the public API. */
#ifndef CLSTM_INTERNAL_H
#define CLSTM_INTERNAL_H

#include "clstm.h"

/* Run-time choice of SIMD level for the hot elementwise kernels: GCC emits
 * one copy per target and an ifunc picks one at load time, so a portable
 * build still runs AVX-512 or AVX2 code where the CPU has it.  -DCLSTM_NATIVE
 * (a -march=native build) needs no clones. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(CLSTM_NATIVE) && !defined(CLSTM_NO_CLONES)
#define CLSTM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define CLSTM_HAVE_CLONES 1
#else
#define CLSTM_CLONES
#define CLSTM_HAVE_CLONES 0
#endif

/* x86: the tile kernels use a few intrinsics (min/max) of their width. */
#if defined(__x86_64__) || defined(__i386__)
#define CLSTM_X86 1
#include <immintrin.h>
#else
#define CLSTM_X86 0
#endif

/* A step() product with at most this many batch rows and weights of at most
 * this many elements uses the unpacked small kernel (the weights stay in
 * L1/L2 from call to call); others a BLAS call. */
#define CLSTM_STEP_SMALL_BATCH 1
#define CLSTM_STEP_SMALL_WEIGHTS (64 * 1024)

/* Elements of a (K, 4H) gate matrix packed into unit-block panels
 * (tile_template.h) at any SIMD width, for either dtype: float's 16-unit
 * blocks bound the narrower ones.  A multiple of 64 elements. */
#define CLSTM_GATE_PANELS(K, H) ((size_t)(((H) + 15) / 16) * 64 * (size_t)(K))

/* n rounded up to whole 64-byte lines of float (16 elements), so that the
 * parts of a workspace stay aligned; the workspace gets 16 more elements
 * to align its start. */
#define CLSTM_ROUND16(n) (((size_t)(n) + 15) & ~(size_t)15)
#define CLSTM_ALIGN_SLACK 16

/* A forward step below this many flops (8 B H^2) runs on one thread: a
 * barrier per step costs about a microsecond on a shared 2-core machine. */
#define CLSTM_THREAD_MIN_FLOPS (256.0 * 1024)

/* The recurrent products hand their unit blocks out dynamically
 * (lstm_template.h) from this many flops per step: below, an uneven split
 * costs less than the backward's second barrier per step, and than the
 * forward's panels coming from the other core's cache. */
#define CLSTM_DYNAMIC_MIN_FLOPS (4.0e6)

/* Threads split the batch rather than the hidden units when each gets at
 * least this many rows and W_hh has at most this many bytes (both threads
 * then read all of it from their own L2 every step). */
#ifndef CLSTM_BATCH_SPLIT_ROWS
#define CLSTM_BATCH_SPLIT_ROWS 8
#endif
#ifndef CLSTM_BATCH_SPLIT_WEIGHTS
#define CLSTM_BATCH_SPLIT_WEIGHTS (512.0 * 1024)
#endif

/* Split by rows, the rows of one group (lstm_template.h): few, so that a
 * slower core hands over a small share, and one register tile of the
 * AVX-512 kernels (4-row tiles ran as fast as 6-row ones at H = 50). */
#ifndef CLSTM_GROUP_ROWS
#define CLSTM_GROUP_ROWS 4
#endif

/* x_t enters each step's register tile with h_{t-1} (one product over
 * [x_t, h_{t-1}]) instead of a separate input projection when I is at most
 * CLSTM_FUSED_INPUT_MAX or the batch has CLSTM_FUSED_MIN_ROWS rows.  For
 * small I the projection is mostly stores and reloads (22% of the kernel's
 * instructions at I = 1, H = 50); with rows enough, each W_ih panel is
 * reused within the step and fusing saves the G round trip ((100,32,128,256)
 * forward 6-11% faster, (50,64,512,1024) 1-2%).  For B = 1 a projection over
 * many steps' rows at once is better ((50,1,256,256): 0.46 vs 0.66 ms). */
#ifndef CLSTM_FUSED_INPUT_MAX
#define CLSTM_FUSED_INPUT_MAX 32
#endif
#ifndef CLSTM_FUSED_MIN_ROWS
#define CLSTM_FUSED_MIN_ROWS 8
#endif

/* The training forward writes its gates (T, B, 4H) with streaming stores
 * once they are at least this many bytes: the backward reads them only
 * after the whole sequence, so written through the caches they only push
 * out the step's weight panels and cost each line a read for ownership.
 * (Measured in bench/RESULTS.md, session 13.) */
#ifndef CLSTM_STREAM_GATES_BYTES
#define CLSTM_STREAM_GATES_BYTES (4.0 * 1024 * 1024)
#endif

/* Batches of at most this many rows compute the backward's dh = dG W_hh as
 * dot products on w_hh_t (not packed; tile_template.h, dots). */
#ifndef CLSTM_BACK_DOT_ROWS
#define CLSTM_BACK_DOT_ROWS 1
#endif

/* Inputs up to this many: the backward computes dx_t = dG_t W_ih in each
 * step, by dot products while dG_t is in L1 (tile_template.h, dots), not
 * as one product over all steps after the recurrence (which re-read all of
 * dG: a (1920, 200) x (200, 1) product took ~75 us from L3 through BLAS). */
#ifndef CLSTM_STEP_DX_INPUTS
#define CLSTM_STEP_DX_INPUTS 8
#endif

/* The backward's weight gradients go through the core's tile kernel where
 * a chunk of CLSTM_GRAD_CHUNK rows of X and h_{t-1}, (I + H) of them, takes
 * at most CLSTM_OWN_GRAD_BYTES (it is read once per panel of dG and must
 * stay in L2), else through BLAS (lstm_template.h's weight_grads says why).
 * CLSTM_GRAD_CHUNK is the tile kernels' KSFX_KC. */
#define CLSTM_GRAD_CHUNK 256
#ifndef CLSTM_OWN_GRAD_BYTES
#define CLSTM_OWN_GRAD_BYTES (1024.0 * 1024)
#endif

/* The threads of one call meet here once per step.  Not OpenMP's barrier:
 * libgomp's waiters spin for ~300,000 rounds, and when another process holds
 * a core the thread they wait for may not run: calls of 0.5 ms took 200 ms
 * (bench/RESULTS.md).  This one spins CLSTM_BARRIER_SPINS rounds (tens of
 * microseconds, longer than a step's imbalance), then yields its core. */
typedef struct {
    int n;       /* threads */
    int count;   /* arrived in this round */
    int sense;   /* flips when a round completes */
} clstm_barrier;
#ifndef CLSTM_BARRIER_SPINS
#define CLSTM_BARRIER_SPINS 1000
#endif
void clstm_barrier_init(clstm_barrier *b, int n);

/* Work handed out step by step (lstm_template.h): two counters, step s
 * taking its items from next[s & 1].  During step s one thread resets the
 * counter of the step that comes next (its last user, the step before s,
 * finished before s began); the barrier ending step s publishes the reset. */
static inline void clstm_counter_reset(int *next, int s)
{
    __atomic_store_n(&next[s & 1], 0, __ATOMIC_RELAXED);
}
static inline int clstm_counter_take(int *next, int s)
{
    return __atomic_fetch_add(&next[s & 1], 1, __ATOMIC_RELAXED);
}
/* Two threads taking n < 32768 items from both ends of step s's counter:
 * thread 0 from the front, thread 1 from the back, so each keeps mostly the
 * same items from step to step; -1 when none is left.  One atomic add of
 * either half; an item is given out iff the two halves before the add
 * summed to less than n. */
static inline int clstm_counter_take_end(int *next, int s, int tid, int n)
{
    const unsigned old = (unsigned)__atomic_fetch_add(&next[s & 1], tid ? 1 << 16 : 1,
                                                      __ATOMIC_RELAXED);
    const int f = (int)(old & 0xffff), b = (int)(old >> 16);
    if (f + b >= n) return -1;
    return tid ? n - 1 - b : f;
}
/* local_sense: the caller's own flag, 0 before its first wait */
void clstm_barrier_wait(clstm_barrier *b, int *local_sense);

/* The widest instruction set the tile kernels may use on this CPU:
 * 4 (x86-64-v4, AVX-512), 3 (x86-64-v3, AVX2 + FMA) or 0 (baseline). */
int clstm_isa_level(void);

/* Whether one of the backward's products after the recurrence runs on the
 * core's tile kernels, whose vectors are vector_bytes wide, rather than
 * through BLAS:
 *   CLSTM_PRODUCT_DX  dX = dG W_ih over many rows: on any 64-byte kernel;
 *   CLSTM_PRODUCT_DW  the weight gradients where X and h_{t-1} outgrow L2:
 *                     on 64-byte kernels for float32 (real_bytes 4), and for
 *                     float64 where 512-bit FMAs run at full width.
 * On Zen 4 with the tile's C added after its products (session 12), the tile
 * kernels beat OpenBLAS on these but for float64's large dW
 * (bench/RESULTS.md).  clstm_set_large_products (-1: this rule, 0: BLAS,
 * 1: the tile kernels) lets tests reach every route. */
#define CLSTM_PRODUCT_DX 0
#define CLSTM_PRODUCT_DW 1
int clstm_own_large_products(int product, int vector_bytes, int real_bytes);
/* This CPU's routes for one dtype (lstm_template.h): bit 0 dW, bit 1 dX. */
int clstm_large_routes_f32(void);
int clstm_large_routes_f64(void);

#endif
