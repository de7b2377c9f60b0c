/* One LSTM layer, one direction: forward and backward (BPTT) over a sequence.
 * Compiled once per REAL by lstm_f32.c and lstm_f64.c; see clstm.h for the
 * contract of the two public functions.
 *
 * Needs REAL, SFX(name), GEMM (the blas table member), SIGMOID, TANH.
 *
 * The shape of the work (DESIGN.md, "How it gets fast"), each call one
 * OpenMP region whose threads split the hidden units or the batch rows:
 *  forward:  weights packed once into gate panels (tile_template.h); per
 *            step one register-tile product over [x_t, h_{t-1}] (or h_{t-1}
 *            after an input projection of many steps) with the cell update
 *            on the tile; no BLAS call.
 *  backward: per step the gate-gradient pass and dh = dG_t W_hh on the same
 *            tiles; after the loop dW_ih = dG^T X, dW_hh = dG^T H_prev, db
 *            and dX = dG W_ih, each thread a slice, on the tile kernel or
 *            through BLAS by shape (weight_grads).
 * step(): one call's products without packing (step_gemm_template.h).
 */

#include "cell_template.h"
#include "step_gemm_template.h"

/* Row-major C (M, N) = alpha op(A) op(B) + beta C, through a column-major
 * BLAS by computing C^T = op(B)^T op(A)^T: swap the operands, keep the flags. */
static void SFX(gemm_rm)(const clstm_blas *blas, char ta, char tb, int M, int N, int K,
                         REAL alpha, const REAL *A, int lda, const REAL *B, int ldb,
                         REAL beta, REAL *C, int ldc)
{
    if (M == 0 || N == 0) return;
    if (K == 0) {  /* some BLAS return early on K == 0 without applying beta */
        for (int r = 0; r < M; r++)
            for (int j = 0; j < N; j++)
                C[(size_t)r * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)r * ldc + j];
        return;
    }
    blas->GEMM(&tb, &ta, &N, &M, &K, &alpha, (REAL *)B, &ldb, (REAL *)A, &lda,
               &beta, C, &ldc);
}

/* What one step of the forward pass reads and writes (tile_template.h). */
typedef struct {
    int H, I;
    const REAL *x, *bias;          /* fused input: x_t (B, I) and the bias; else NULL */
    const REAL *hp; size_t ldhp;   /* h_{t-1} (B, ldhp), NULL for zeros */
    const REAL *G;                 /* (B, 4H): input projection + bias (not fused) */
    REAL *Gout;                    /* (B, 4H): activated gates out, or NULL */
    int stream;                    /* Gout by streaming stores (whole aligned vectors) */
    const REAL *cp; REAL *c;       /* c_{t-1}, c_t (B, H) */
    REAL *hs; size_t ldhs;         /* state h_t */
    REAL *y; size_t ldy;           /* output h_t (0 where masked) */
    const unsigned char *m;        /* step mask (B) or NULL */
} SFX(step_io);

/* The kernels at one SIMD width: blocks of vl hidden units. */
typedef struct {
    int vl;
    int (*unit_blocks)(int H);
    void (*pack_gates)(int K1, const REAL *src1, int K2, const REAL *src2, int H,
                       int u0, int u1, int compact, REAL *dst);
    void (*project)(int rows, int K, int H, const REAL *X, const REAL *Pih,
                    const REAL *bias, REAL *G, int u0, int u1);
    void (*step)(int b0, int b1, const SFX(step_io) *s, const REAL *Phh, int u0, int u1);
    void (*pack_units)(int H, const REAL *w_hh_t, int u0, int u1, REAL *dst);
    void (*cell_back)(int b0, int b1, int H, int j0, int j1, REAL *G, const REAL *c,
                      const REAL *cp, const REAL *dy, size_t lddy, REAL *dhr, REAL *dc,
                      const unsigned char *m);
    void (*back_step)(int b0, int b1, int H, const REAL *dG, const REAL *Pw,
                      const unsigned char *m, REAL *dh, int u0, int u1);
    void (*dots)(int rows, int n, int K, const REAL *A, size_t lda, const REAL *W, size_t ldw,
                 REAL beta, const unsigned char *m, REAL *C, size_t ldc);
    void (*gemm)(int M, int N, int K, const REAL *A, size_t am, size_t ak, const REAL *B,
                 size_t bk, size_t bn, int acc_c, REAL *C, size_t ldc);
    void (*weight_grads)(int TB, int I, int H, const REAL *dG, const REAL *x, const REAL *hp,
                         size_t ldh, int k_lo, int k_hi, int c0, int c1, REAL *dw_ih_t,
                         REAL *dw_hh_t, REAL *db);
} SFX(kernels);

#define KERNEL_TABLE(KS) \
    { (int)(KVB / sizeof(REAL)), KS(unit_blocks), KS(pack_gates), KS(project), KS(step), KS(pack_units), KS(cell_back), KS(back_step), KS(dots), KS(gemm), KS(weight_grads) }

#if CLSTM_HAVE_CLONES
#define KVB 64
#define KMR 6
#define KACT 8
#define KINTRIN 1
#define KATTR __attribute__((target("arch=x86-64-v4")))
#define KSFX(n) SFX(n##_v4)
#include "tile_template.h"
static const SFX(kernels) SFX(kernels_v4) = KERNEL_TABLE(KSFX);
#undef KVB
#undef KMR
#undef KACT
#undef KINTRIN
#undef KATTR
#undef KSFX
#define KVB 32
#define KMR 3
#define KACT 4
#define KINTRIN 1
#define KATTR __attribute__((target("arch=x86-64-v3")))
#define KSFX(n) SFX(n##_v3)
#include "tile_template.h"
static const SFX(kernels) SFX(kernels_v3) = KERNEL_TABLE(KSFX);
#undef KVB
#undef KMR
#undef KACT
#undef KINTRIN
#undef KATTR
#undef KSFX
#endif
/* the compiler's own target: baseline in a portable build, everything in a
 * native one (CLSTM_NATIVE, where this is the only instance).  A test build
 * may set this instance's width with CLSTM_BASE_KVB (generic vector code, no
 * intrinsics; tools/wide_vectors.sh runs the AVX-512 instance's tiling on
 * any CPU that way). */
#if defined(CLSTM_BASE_KVB)
#define KVB CLSTM_BASE_KVB
#define KMR (KVB == 64 ? 6 : KVB == 32 ? 3 : 2)
#define KACT (KVB == 64 ? 8 : 4)
#define KINTRIN 0
#elif defined(__AVX512F__)
#define KVB 64
#define KMR 6
#define KACT 8
#define KINTRIN 1
#elif defined(__AVX__)
#define KVB 32
#define KMR 3
#define KACT 4
#define KINTRIN 1
#else
#define KVB 16
#define KMR 2
#define KACT 4
#define KINTRIN 1
#endif
#define KATTR
#define KSFX(n) SFX(n##_base)
#include "tile_template.h"
static const SFX(kernels) SFX(kernels_base) = KERNEL_TABLE(KSFX);
#undef KVB
#undef KMR
#undef KACT
#undef KINTRIN
#undef KATTR
#undef KSFX
#undef KERNEL_TABLE

/* The kernels for H hidden units on this CPU (H: kept for a choice by size;
 * 32-byte blocks for H that 64-byte ones pad by much measured no faster). */
static const SFX(kernels) *SFX(pick_kernels)(int H)
{
    (void)H;
#if CLSTM_HAVE_CLONES
    switch (clstm_isa_level()) {
    case 4: return &SFX(kernels_v4);
    case 3: return &SFX(kernels_v3);
    default: break;
    }
#endif
    return &SFX(kernels_base);
}

/* Whether kernels k run `product` (CLSTM_PRODUCT_DW or _DX) themselves
 * rather than through BLAS (clstm_own_large_products). */
static int SFX(own_product)(const SFX(kernels) *k, int product)
{
    return clstm_own_large_products(product, k->vl * (int)sizeof(REAL), (int)sizeof(REAL));
}

int SFX(clstm_large_routes)(void)
{
    const SFX(kernels) *k = SFX(pick_kernels)(0);
    return SFX(own_product)(k, CLSTM_PRODUCT_DW) | SFX(own_product)(k, CLSTM_PRODUCT_DX) << 1;
}

/* How a call's work is split between threads.  By hidden units: each
 * thread owns unit blocks (its slice of W stays in its cache) and the
 * threads meet once per step, since the next step reads all of h_t.  By
 * batch rows: each thread runs its own sequences with all of W and never
 * waits for the other; better where W fits each thread's cache twice over
 * and there are rows enough. */
typedef struct {
    int nt;         /* threads */
    int by_batch;   /* 1: split rows, 0: split unit blocks */
} SFX(split);

static SFX(split) SFX(plan_split)(const SFX(kernels) *k, int B, int H)
{
    SFX(split) p;
    const int nb = k->unit_blocks(H);
    p.nt = clstm_get_num_threads();
    if ((double)B * H * 8.0 * H < CLSTM_THREAD_MIN_FLOPS) p.nt = 1;
    p.by_batch = p.nt > 1 && B >= CLSTM_BATCH_SPLIT_ROWS * p.nt &&
                 (double)H * 4 * H * sizeof(REAL) <= CLSTM_BATCH_SPLIT_WEIGHTS;
    if (!p.by_batch && p.nt > nb) p.nt = nb;
    return p;
}

/* [*lo, *hi): share `tid` of n items among nt threads. */
static void SFX(share)(int n, int tid, int nt, int *lo, int *hi)
{
    *lo = (int)((long)n * tid / nt);
    *hi = (int)((long)n * (tid + 1) / nt);
}

/* [*lo, *hi): share `tid` of [0, n) among nt threads in whole blocks of
 * `block` items (the last block may be short). */
static void SFX(share_blocks)(int n, int block, int tid, int nt, int *lo, int *hi)
{
    SFX(share)((n + block - 1) / block, tid, nt, lo, hi);
    *lo *= block;
    *hi = *hi * block < n ? *hi * block : n;
}

/* Where a call's threads meet: clstm_barrier (internal.h, why not OpenMP's). */
/* One thread's share of a call: the unit blocks [u0, u1) it computes when
 * splitting units (splitting rows, it takes groups of rows: take_group),
 * and the blocks [p0, p1) of W it packs (its own blocks when splitting
 * units; a share of all of them, read by every thread, when splitting rows). */
typedef struct { int u0, u1, p0, p1; } SFX(work);

static SFX(work) SFX(work_of)(int nb, int by_batch, int tid, int nt)
{
    SFX(work) w = {0, nb, 0, 0};
    SFX(share)(nb, tid, nt, &w.p0, &w.p1);
    if (!by_batch) { w.u0 = w.p0; w.u1 = w.p1; }
    return w;
}

/* Split by rows, the threads take groups of CLSTM_GROUP_ROWS rows (the
 * last group also the remainder) from a shared counter and run each through
 * the whole sequence, since rows never meet: with a fixed half each, every
 * call waited for the slower core.  Two threads take from either end,
 * more from the front.  Group g's rows: [*b0, *b1); -1 when none is left. */
static int SFX(take_group)(int *next, int tid, int nt, int B, int *b0, int *b1)
{
    const int ng = B / CLSTM_GROUP_ROWS > 0 ? B / CLSTM_GROUP_ROWS : 1;
    int g;
    if (nt == 2 && ng < 32768) g = clstm_counter_take_end(next, 0, tid, ng);
    else if ((g = clstm_counter_take(next, 0)) >= ng) g = -1;
    *b0 = g * CLSTM_GROUP_ROWS;
    *b1 = g == ng - 1 ? B : *b0 + CLSTM_GROUP_ROWS;
    return g;
}

static void SFX(barrier)(clstm_barrier *b, int *sense)
{
    clstm_barrier_wait(b, sense);
}

/* Runs body(job, tid, nt) on nt threads (nt > 1: one OpenMP region; the
 * barrier is set up for the team OpenMP actually gives). */
#ifdef _OPENMP
#define SFX_RUN_TEAM(body, job, nt)                                            \
    do {                                                                       \
        const int team_n_ = (nt);                                              \
        if (team_n_ > 1) {                                                     \
            _Pragma("omp parallel num_threads(team_n_)")                       \
            {                                                                  \
                _Pragma("omp single")                                          \
                clstm_barrier_init((job).bar, omp_get_num_threads());          \
                body(&(job), omp_get_thread_num(), omp_get_num_threads());     \
            }                                                                  \
        } else {                                                               \
            clstm_barrier_init((job).bar, 1);                                  \
            body(&(job), 0, 1);                                                \
        }                                                                      \
    } while (0)
#else
#define SFX_RUN_TEAM(body, job, nt)                                            \
    do { clstm_barrier_init((job).bar, 1); body(&(job), 0, 1); } while (0)
#endif

static REAL *SFX(align64)(REAL *p)
{
    return (REAL *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* step()'s gate pass over the batch (the sequence passes work on tiles). */

/* Copies the state of a skipped (masked) step through unchanged; its output
 * is 0 and its gates are 0 (so backward sees no gradient through them). */
static void SFX(skip_forward)(int H, REAL *g, const REAL *cp, REAL *ct,
                              const REAL *hp, REAL *hs, REAL *y)
{
    const size_t bytes = (size_t)H * sizeof(REAL);
    memcpy(ct, cp, bytes);
    if (hp) memcpy(hs, hp, bytes);
    else memset(hs, 0, bytes);
    if (y != hs) memset(y, 0, bytes);
    memset(g, 0, 4 * bytes);
}

/* One forward step over the batch.
 * G (B, 4H) pre-activations -> activated gates; bias (4H); cp, ct (B, H);
 * hp (B, ldhp) h_{t-1} or NULL (zeros; read only by skipped rows);
 * hs (B, ldhs) receives h_t as state, y (B, ldy) as output (may be the
 * same memory); m (B) step mask or NULL. */
static void SFX(step_forward)(int B, int H, REAL *G, const REAL *bias,
                              const REAL *cp, REAL *ct, const REAL *hp, int ldhp,
                              REAL *hs, int ldhs, REAL *y, int ldy, const unsigned char *m)
{
    for (int b = 0; b < B; b++) {
        REAL *g = G + (size_t)b * 4 * H;
        size_t o = (size_t)b * H;
        REAL *hrow = hs + (size_t)b * ldhs, *yrow = y + (size_t)b * ldy;
        if (m && !m[b]) {
            SFX(skip_forward)(H, g, cp + o, ct + o, hp ? hp + (size_t)b * ldhp : NULL, hrow, yrow);
            continue;
        }
        SFX(cell_forward)(H, g, g + H, g + 2 * (size_t)H, g + 3 * (size_t)H,
                          bias, bias + H, bias + 2 * (size_t)H, bias + 3 * (size_t)H,
                          cp + o, ct + o, hrow);
        if (yrow != hrow) memcpy(yrow, hrow, (size_t)H * sizeof(REAL));
    }
}

static void SFX(copy_rows)(int B, int H, const REAL *src, int lds, REAL *dst)
{
    for (int b = 0; b < B; b++)
        memcpy(dst + (size_t)b * H, src + (size_t)b * lds, (size_t)H * sizeof(REAL));
}

/* The forward pass: one OpenMP region for the whole sequence.  Each thread
 * owns a range of unit blocks (tile_template.h): it packs its slice of the
 * weights, computes its columns of the input projections chunk by chunk and,
 * per step, its units' gates and cell update; the threads meet once per step,
 * because the next step reads all of h_t.  No BLAS call, so no BLAS threads
 * spin beside ours. */
typedef struct {
    const SFX(kernels) *k;
    clstm_barrier *bar;
    int T, B, I, H, reverse, chunk, train, by_batch, fused, stream;
    const REAL *x, *w_ih_t, *w_hh_t, *bias, *h0, *c0;
    const unsigned char *mask;
    REAL *y; int ldy;
    REAL *gates, *cs, *hs;          /* training: (T, B, 4H), (T, B, H), masked (T, B, H) */
    REAL *cbuf, *hbuf, *gbuf;       /* inference: c and h ping-pong, G chunk */
    REAL *pih, *phh;                /* packed W_ih^T, W_hh^T (64-byte aligned) */
    int *next;                      /* split by units: the next block of step s, next[s & 1];
                                       by rows: the next group of rows, next[0] */
} SFX(fwd_job);

/* The whole sequence for rows [b0, b1): all of them split by units (this
 * thread's unit blocks [u0, u1), or blocks from the counter when dyn, with
 * a barrier per step), one group of them split by rows (every block). */
static void SFX(forward_rows)(const SFX(fwd_job) *J, int tid, int nt, int b0, int b1,
                              int u0, int u1, int dyn, int *sense)
{
    const SFX(kernels) *K = J->k;
    const int T = J->T, B = J->B, I = J->I, H = J->H, train = J->train;
    const size_t BH = (size_t)B * H, BG = 4 * BH;
    const int nb = K->unit_blocks(H);
    const int ldh = J->mask ? H : J->ldy;
    /* Where step s keeps its hidden state h_t: without a mask the outputs y
     * are the states; with one, skipped steps output 0 while the state
     * carries on, so states live apart. */
#define HSTATE(s, t) (!J->mask ? J->y + (size_t)(t) * B * J->ldy \
                      : train ? J->hs + (size_t)(t) * BH : J->hbuf + ((s) & 1) * BH)
    for (int s0 = 0; s0 < T; s0 += J->chunk) {
        const int n = T - s0 < J->chunk ? T - s0 : J->chunk;
        const int tlo = J->reverse ? T - s0 - n : s0;   /* the chunk's times: [tlo, tlo + n) */
        REAL *gc = train ? J->gates + (size_t)tlo * BG : J->gbuf;
        const REAL *xc = J->x + (size_t)tlo * B * I;
        if (J->fused)
            ;   /* x_t enters each step's tile */
        else if (J->by_batch)
            for (int i = 0; i < n; i++)
                K->project(b1 - b0, I, H, xc + ((size_t)i * B + b0) * I, J->pih, J->bias,
                           gc + (size_t)i * BG + (size_t)b0 * 4 * H, u0, u1);
        else {
            K->project(n * B, I, H, xc, J->pih, J->bias, gc, u0, u1);
            if (dyn) SFX(barrier)(J->bar, sense);   /* the steps read every block's G */
        }
        for (int s = s0; s < s0 + n; s++) {
            const int t = J->reverse ? T - 1 - s : s;
            const int tp = J->reverse ? t + 1 : t - 1;   /* the step before, in time order */
            SFX(step_io) io;
            io.H = H;
            io.I = I;
            io.x = J->fused ? J->x + (size_t)t * B * I : NULL;
            io.bias = J->bias;
            io.hp = s == 0 ? J->h0 : HSTATE(s - 1, tp);
            io.ldhp = s == 0 ? (size_t)H : (size_t)ldh;
            io.G = gc + (size_t)(t - tlo) * BG;
            io.Gout = train || !J->fused ? gc + (size_t)(t - tlo) * BG : NULL;
            io.stream = J->stream;
            io.cp = s == 0 ? J->c0 : train ? J->cs + (size_t)tp * BH : J->cbuf + ((s - 1) & 1) * BH;
            io.c = train ? J->cs + (size_t)t * BH : J->cbuf + (s & 1) * BH;
            io.hs = HSTATE(s, t);
            io.ldhs = ldh;
            io.y = J->y + (size_t)t * B * J->ldy;
            io.ldy = J->ldy;
            io.m = J->mask ? J->mask + (size_t)t * B : NULL;
            if (dyn) {
                if (tid == 0) clstm_counter_reset(J->next, s + 1);   /* step s - 1 used it */
                if (nt == 2 && nb < 32768)   /* each thread from its own end */
                    for (int u; (u = clstm_counter_take_end(J->next, s, tid, nb)) >= 0;)
                        K->step(b0, b1, &io, J->phh, u, u + 1);
                else
                    for (int u; (u = clstm_counter_take(J->next, s)) < nb;)
                        K->step(b0, b1, &io, J->phh, u, u + 1);
            } else {
                K->step(b0, b1, &io, J->phh, u0, u1);
            }
            if (!J->by_batch) SFX(barrier)(J->bar, sense);
        }
    }
#undef HSTATE
}

static void SFX(forward_thread)(const SFX(fwd_job) *J, int tid, int nt)
{
    const SFX(kernels) *K = J->k;
    const int B = J->B, I = J->I, H = J->H;
    const int nb = K->unit_blocks(H);
    const SFX(work) w = SFX(work_of)(nb, J->by_batch, tid, nt);
    /* Split by units, the threads take a step's unit blocks one at a time
     * from a shared counter rather than a fixed share: on a shared machine
     * one core often runs slower than the other, and with fixed shares
     * every step waited for it (the large shape at 2 threads was 1.34x
     * 1 thread's speed on such a host, ORT's 1.46x).  The same block gives
     * the same numbers whichever thread computes it.  Small steps keep
     * fixed shares: there the product streams each thread's panels from
     * its own L2, and blocks that move between threads come from L3. */
    const int dyn = !J->by_batch && nt > 1 &&
                    2.0 * B * 4 * H * (H + (J->fused ? I : 0)) >= CLSTM_DYNAMIC_MIN_FLOPS;
    /* the step's panels compact (a small last block), the projection's not */
    if (J->fused)   /* one panel per block over [W_ih^T; W_hh^T] */
        K->pack_gates(I, J->w_ih_t, H, J->w_hh_t, H, w.p0, w.p1, 1, J->phh);
    else {
        K->pack_gates(I, J->w_ih_t, 0, NULL, H, w.p0, w.p1, 0, J->pih);
        K->pack_gates(H, J->w_hh_t, 0, NULL, H, w.p0, w.p1, 1, J->phh);
    }
    int sense = 0;
    if (J->by_batch || dyn) SFX(barrier)(J->bar, &sense);   /* threads read others' panels */
    if (!J->by_batch)
        SFX(forward_rows)(J, tid, nt, 0, B, w.u0, w.u1, dyn, &sense);
    else
        for (int g, b0, b1; (g = SFX(take_group)(J->next, tid, nt, B, &b0, &b1)) >= 0;)
            SFX(forward_rows)(J, tid, nt, b0, b1, 0, nb, 0, &sense);
    if (J->stream) __atomic_thread_fence(__ATOMIC_SEQ_CST);   /* streaming stores drained */
}

int SFX(clstm_lstm_forward)(const clstm_blas *blas, int T, int B, int I, int H,
    int reverse, const REAL *x, const REAL *w_ih_t, const REAL *w_hh_t,
    const REAL *bias, const REAL *h0, const REAL *c0, const unsigned char *mask,
    REAL *y, int ldy, REAL *hn, REAL *cn, REAL *gates, REAL *cs, REAL *hs, REAL *ws)
{
    (void)blas;
    const int train = gates != NULL;
    const size_t BH = (size_t)B * H, BG = (size_t)B * 4 * H;
    if (T <= 0 || B <= 0) return 0;

    /* ws, every part 64-byte aligned (whole vectors never straddle cache
     * lines): [packed W_ih^T][packed W_hh^T][bias 4H][c0 zeros BH]
     *     + inference: [c ping-pong 2 BH][G chunk][masked: h ping-pong 2 BH] */
    SFX(fwd_job) J;
    J.k = SFX(pick_kernels)(H);
    J.T = T; J.B = B; J.I = I; J.H = H; J.reverse = reverse; J.train = train;
    J.x = x; J.w_ih_t = w_ih_t; J.w_hh_t = w_hh_t; J.h0 = h0; J.mask = mask;
    J.y = y; J.ldy = ldy; J.gates = gates; J.cs = cs; J.hs = hs;
    J.chunk = clstm_forward_chunk(T, B, H);
    J.fused = I <= CLSTM_FUSED_INPUT_MAX || B >= CLSTM_FUSED_MIN_ROWS;
    /* streaming stores take whole aligned vectors: each gate vector on its
     * own lines (rows 4H apart, unit blocks vl apart) */
    J.stream = train && J.fused && (double)T * BG * sizeof(REAL) >= CLSTM_STREAM_GATES_BYTES &&
               H % J.k->vl == 0 && (uintptr_t)gates % ((size_t)J.k->vl * sizeof(REAL)) == 0;
    J.pih = SFX(align64)(ws);
    REAL *zbias = J.pih + CLSTM_GATE_PANELS(I, H) + CLSTM_GATE_PANELS(H, H);
    /* fused: one set of [W_ih^T; W_hh^T] panels fills both parts */
    J.phh = J.fused ? J.pih : J.pih + CLSTM_GATE_PANELS(I, H);
    REAL *zc0 = zbias + CLSTM_ROUND16(4 * (size_t)H);
    J.cbuf = zc0 + CLSTM_ROUND16(BH);
    J.gbuf = J.cbuf + CLSTM_ROUND16(2 * BH);
    J.hbuf = J.gbuf + CLSTM_ROUND16((size_t)J.chunk * BG);
    if (!bias) { memset(zbias, 0, 4 * (size_t)H * sizeof(REAL)); bias = zbias; }
    if (!c0) { memset(zc0, 0, BH * sizeof(REAL)); c0 = zc0; }
    J.bias = bias; J.c0 = c0;

    const SFX(split) plan = SFX(plan_split)(J.k, B, H);
    J.by_batch = plan.by_batch;
    clstm_barrier bar;
    J.bar = &bar;
    int next[2] = {0, 0};
    J.next = next;
    SFX_RUN_TEAM(SFX(forward_thread), J, plan.nt);

    const int tl = reverse ? 0 : T - 1, sl = T - 1;
    const REAL *hl = !mask ? y + (size_t)tl * B * ldy : train ? hs + (size_t)tl * BH
                                                              : J.hbuf + (sl & 1) * BH;
    SFX(copy_rows)(B, H, hl, mask ? H : ldy, hn);
    memcpy(cn, train ? cs + (size_t)tl * BH : J.cbuf + (sl & 1) * BH, BH * sizeof(REAL));
    return 0;
}

/* The backward recurrence, one OpenMP region: each thread owns the unit
 * blocks it owned in the forward pass; per step it turns its units' gates
 * into gate gradients, meets the others (the product needs every unit's dG),
 * then computes its units' columns of dL/dh_{t-1} = dG_t W_hh. */
typedef struct {
    const SFX(kernels) *k;
    clstm_barrier *bar;
    const clstm_blas *blas;
    int T, B, I, H, reverse, by_batch;
    const REAL *x, *w_ih_t, *w_hh_t, *h0, *c0;
    const unsigned char *mask;
    const REAL *hstates; int ldh;   /* h_t of every step: y, or hs with a mask */
    REAL *gates;
    const REAL *cs, *dy; int lddy;
    REAL *dhr, *dc, *pw;
    REAL *dx, dx_beta, *dw_ih_t, *dw_hh_t, *db;
    int dx_step;                    /* dx_t in the step that made dG_t, not after */
    int *next;                      /* dynamic product: the next group of step s, next[s & 1];
                                       by rows: the next group of rows, next[0] */
} SFX(bwd_job);

/* The weight gradients over all steps and dX, this thread's share (dG
 * complete):
 *   dW_ih^T (I, 4H) = X^T (I, TB) dG (TB, 4H)
 *   dW_hh^T (H, 4H) = sum_t h_{t-1}^T dG_t  (h0 pairs with the first step)
 *   db (4H) = column sums of dG;  dX (TB, I) = dG (TB, 4H) W_ih (4H, I).
 * On the core's tile kernel (tile_template.h) the weight gradients' shares
 * are columns of dG (whole vectors), so each thread reads only its part of
 * dG, once, for both products and db.  Split by rows of dW, as BLAS calls
 * must be, every thread read all of dG twice, and these skinny products ran
 * at ~60 GFLOP/s on Zen 4.  Where a chunk of X and h_{t-1} (I + H rows)
 * no longer fits in L2 with the panel, the tile kernel still won on Zen 4
 * for float32 (the large shape's dW 202-213 ms a thread against 208-227
 * through OpenBLAS's AVX2 kernels) but lost for float64 (430-491 against
 * 391-418); with 512-bit FMAs at full width (Zen 5) it ran them at ~170
 * GFLOP/s a core against ~100, so clstm_own_large_products decides.
 * dX: by dot products of dG's rows with w_ih_t's (K->dots) where its rows
 * are few (shares are columns of dX, rows of w_ih_t, read in place; the
 * tile kernel, packing W_ih transposed, ran at ~53 GFLOP/s at
 * (50,1,256,256)); else by rows of dX on the tile kernel (4.1-4.5 ms a
 * thread at (100,32,128,256) against 4.9-5.3 through BLAS on Zen 4) or
 * through BLAS where the core's vectors are narrower. */
static void SFX(weight_grads)(const SFX(bwd_job) *J, int tid, int nt)
{
    const SFX(kernels) *K = J->k;
    const int T = J->T, B = J->B, I = J->I, H = J->H, G4 = 4 * H, TB = T * B, vl = K->vl;
    const int own_dw = SFX(own_product)(K, CLSTM_PRODUCT_DW);
    const int own_dx = SFX(own_product)(K, CLSTM_PRODUCT_DX);
    const REAL *dg0 = J->gates + (size_t)(J->reverse ? T - 1 : 0) * B * G4;  /* h0's step */
    /* dG's rows with a predecessor step [k_lo, k_hi), and their h_{t-1} */
    const int k_lo = J->reverse ? 0 : B, k_hi = J->reverse ? TB - B : TB;
    const REAL *hp = J->reverse ? J->hstates + (size_t)B * J->ldh : J->hstates;
    if (own_dw || (double)(I + H) * CLSTM_GRAD_CHUNK * sizeof(REAL) <= CLSTM_OWN_GRAD_BYTES) {
        int c0, c1;
        SFX(share_blocks)(G4, vl, tid, nt, &c0, &c1);
        if (c1 > c0) {
            K->weight_grads(TB, I, H, J->gates, J->x, hp, J->ldh, k_lo, k_hi, c0, c1,
                            J->dw_ih_t, J->dw_hh_t, J->db);
            if (J->h0)
                K->gemm(H, c1 - c0, B, J->h0, 1, H, dg0 + c0, G4, 1, 1, J->dw_hh_t + c0, G4);
        }
    } else {
        int i0, i1, m0, m1, c0, c1;
        SFX(share)(I, tid, nt, &i0, &i1);
        SFX(share)(H, tid, nt, &m0, &m1);
        SFX(share)(G4, tid, nt, &c0, &c1);
        SFX(gemm_rm)(J->blas, 'T', 'N', i1 - i0, G4, TB, 1, J->x + i0, I, J->gates, G4, 0,
                     J->dw_ih_t + (size_t)i0 * G4, G4);
        SFX(gemm_rm)(J->blas, 'T', 'N', m1 - m0, G4, k_hi - k_lo, 1, hp + m0, J->ldh,
                     J->gates + (size_t)k_lo * G4, G4, 0, J->dw_hh_t + (size_t)m0 * G4, G4);
        if (J->h0)
            SFX(gemm_rm)(J->blas, 'T', 'N', m1 - m0, G4, B, 1, J->h0 + m0, H, dg0, G4, 1,
                         J->dw_hh_t + (size_t)m0 * G4, G4);
        if (J->db && c1 > c0) {
            REAL *d = J->db + c0;
            memset(d, 0, (size_t)(c1 - c0) * sizeof(REAL));
            for (size_t r = 0; r < (size_t)TB; r++) {
                const REAL *row = J->gates + r * G4 + c0;
                for (int q = 0; q < c1 - c0; q++) d[q] += row[q];
            }
        }
    }
    if (J->dx_step) return;
    if (TB < 4 * I) {   /* not by nt: any thread count takes the same route, the same bits */
        int x0, x1;
        SFX(share_blocks)(I, 4, tid, nt, &x0, &x1);
        if (x1 > x0)
            K->dots(TB, x1 - x0, G4, J->gates, G4, J->w_ih_t + (size_t)x0 * G4, G4, J->dx_beta,
                    NULL, J->dx + x0, I);
    } else {
        int r0, r1;
        SFX(share)(TB, tid, nt, &r0, &r1);
        if (!own_dx)
            SFX(gemm_rm)(J->blas, 'N', 'T', r1 - r0, I, G4, 1, J->gates + (size_t)r0 * G4, G4,
                         J->w_ih_t, G4, J->dx_beta, J->dx + (size_t)r0 * I, I);
        else if (r1 > r0)   /* (no rows: no panels to pack) */
            K->gemm(r1 - r0, I, G4, J->gates + (size_t)r0 * G4, G4, 1, J->w_ih_t, 1, G4,
                    J->dx_beta != 0, J->dx + (size_t)r0 * I, I);
    }
}

/* The recurrence for rows [b0, b1) from the last step to the first: all of
 * them split by units (this thread's units [j0, j1) of unit blocks [u0, u1),
 * or groups of blocks from the counter when dyn), one group of them split
 * by rows (every unit). */
static void SFX(backward_rows)(const SFX(bwd_job) *J, int tid, int nt, int b0, int b1,
                               int u0, int u1, int dyn, int *sense)
{
    const SFX(kernels) *K = J->k;
    const int T = J->T, B = J->B, I = J->I, H = J->H, G4 = 4 * H;
    const size_t BH = (size_t)B * H, BG = 4 * BH;
    const int nb = K->unit_blocks(H);
    const int j0 = u0 * K->vl, j1 = u1 * K->vl < H ? u1 * K->vl : H, n = j1 - j0;
    const int dot = B <= CLSTM_BACK_DOT_ROWS;   /* dh by dot products, W_hh unpacked */
    const int ng = (nb + 3) / 4;                /* dyn: groups of 4 unit blocks */
    int x0 = b0, x1 = b1;   /* the rows of dx_t this thread computes (dx_step) */
    if (!J->by_batch) SFX(share)(B, tid, nt, &x0, &x1);
    for (int s = T - 1; s >= 0; s--) {
        const int t = J->reverse ? T - 1 - s : s;
        const int tp = J->reverse ? t + 1 : t - 1;
        const unsigned char *m = J->mask ? J->mask + (size_t)t * B : NULL;
        REAL *Gt = J->gates + (size_t)t * BG;
        const REAL *ct = J->cs + (size_t)t * BH;
        const REAL *cp = s == 0 ? J->c0 : J->cs + (size_t)tp * BH;
        const REAL *dyt = J->dy ? J->dy + (size_t)t * B * J->lddy : NULL;
        if (dyn) {   /* rows: the barrier after the product lets any thread read any dh */
            if (x1 > x0) K->cell_back(x0, x1, H, 0, H, Gt, ct, cp, dyt, J->lddy, J->dhr, J->dc, m);
        } else if (n > 0) {
            K->cell_back(b0, b1, H, j0, j1, Gt, ct, cp, dyt, J->lddy, J->dhr, J->dc, m);
        }
        if (!J->by_batch) SFX(barrier)(J->bar, sense);   /* the product needs all dG */
        if (J->dx_step && x1 > x0)
            K->dots(x1 - x0, I, G4, Gt + (size_t)x0 * G4, G4, J->w_ih_t, G4, J->dx_beta, NULL,
                    J->dx + ((size_t)t * B + x0) * I, I);
        if (dot) {
            if (n > 0)
                K->dots(b1 - b0, n, G4, Gt + (size_t)b0 * G4, G4, J->w_hh_t + (size_t)j0 * G4, G4,
                        0, m ? m + b0 : NULL, J->dhr + (size_t)b0 * H + j0, H);
        } else if (dyn) {
            if (tid == 0) clstm_counter_reset(J->next, s + 1);   /* step s + 1 used it */
            for (int g; (g = clstm_counter_take(J->next, s)) < ng;)
                K->back_step(b0, b1, H, Gt, J->pw, m, J->dhr, 4 * g, 4 * g + 4 < nb ? 4 * g + 4 : nb);
            SFX(barrier)(J->bar, sense);   /* the next cell pass reads all of dh */
        } else {
            K->back_step(b0, b1, H, Gt, J->pw, m, J->dhr, u0, u1);
        }
    }
}

static void SFX(backward_thread)(const SFX(bwd_job) *J, int tid, int nt)
{
    const SFX(kernels) *K = J->k;
    const int B = J->B, H = J->H;
    const int nb = K->unit_blocks(H);
    const SFX(work) w = SFX(work_of)(nb, J->by_batch, tid, nt);
    const int dot = B <= CLSTM_BACK_DOT_ROWS;
    /* Big products take their groups of 4 unit blocks from a shared counter,
     * as the forward's steps do (why there); a second barrier per step then
     * keeps the next cell pass from reading dh before it is complete.
     * With that barrier, the cell pass splits the rows rather than the
     * units: its ten streams then run a whole row of H units each, and per
     * thread half as many row starts (at (100,32,128,256) the pass took as
     * long on 2 threads as on 1 split by units, 1.3-1.5 ms a thread; by
     * rows 0.85 on this host). */
    const int dyn = !J->by_batch && nt > 1 && !dot &&
                    2.0 * B * 4 * H * H >= CLSTM_DYNAMIC_MIN_FLOPS;
    if (!dot) K->pack_units(H, J->w_hh_t, w.p0, w.p1, J->pw);
    int sense = 0;
    if (J->by_batch || dyn) SFX(barrier)(J->bar, &sense);
    if (!J->by_batch)
        SFX(backward_rows)(J, tid, nt, 0, B, w.u0, w.u1, dyn, &sense);
    else
        for (int g, b0, b1; (g = SFX(take_group)(J->next, tid, nt, B, &b0, &b1)) >= 0;)
            SFX(backward_rows)(J, tid, nt, b0, b1, 0, nb, 0, &sense);
    SFX(barrier)(J->bar, &sense);   /* the weight gradients need all of dG */
    SFX(weight_grads)(J, tid, nt);
}

int SFX(clstm_lstm_backward)(const clstm_blas *blas, int T, int B, int I, int H,
    int reverse, const REAL *x, const REAL *w_ih_t, const REAL *w_hh_t,
    const REAL *h0, const REAL *c0, const unsigned char *mask,
    const REAL *y, int ldy, REAL *gates, const REAL *cs, const REAL *hs,
    const REAL *dy, int lddy, const REAL *dhn, const REAL *dcn,
    REAL *dx, REAL dx_beta, REAL *dh0, REAL *dc0,
    REAL *dw_ih_t, REAL *dw_hh_t, REAL *db, REAL *ws)
{
    const size_t BH = (size_t)B * H;
    if (T <= 0 || B <= 0) return 0;

    /* ws, 64-byte aligned parts: [packed W_hh][dhr BH][dc BH][c0 zeros BH] */
    SFX(bwd_job) J;
    J.k = SFX(pick_kernels)(H);
    J.blas = blas;
    J.T = T; J.B = B; J.I = I; J.H = H; J.reverse = reverse;
    J.x = x; J.w_ih_t = w_ih_t; J.w_hh_t = w_hh_t; J.h0 = h0;
    J.mask = mask; J.gates = gates; J.cs = cs; J.dy = dy; J.lddy = lddy;
    J.hstates = mask ? hs : y; J.ldh = mask ? H : ldy;
    J.dx = dx; J.dx_beta = dx_beta; J.dw_ih_t = dw_ih_t; J.dw_hh_t = dw_hh_t; J.db = db;
    J.dx_step = I <= CLSTM_STEP_DX_INPUTS;
    J.pw = SFX(align64)(ws);
    J.dhr = J.pw + CLSTM_GATE_PANELS(H, H);
    J.dc = J.dhr + CLSTM_ROUND16(BH);
    REAL *zc0 = J.dc + CLSTM_ROUND16(BH);
    if (dhn) memcpy(J.dhr, dhn, BH * sizeof(REAL)); else memset(J.dhr, 0, BH * sizeof(REAL));
    if (dcn) memcpy(J.dc, dcn, BH * sizeof(REAL)); else memset(J.dc, 0, BH * sizeof(REAL));
    if (!c0) { memset(zc0, 0, BH * sizeof(REAL)); c0 = zc0; }
    J.c0 = c0;

    const SFX(split) plan = SFX(plan_split)(J.k, B, H);
    J.by_batch = plan.by_batch;
    clstm_barrier bar;
    J.bar = &bar;
    int next[2] = {0, 0};
    J.next = next;
    const int blas_threads = blas->get_threads && blas->set_threads ? blas->get_threads() : 1;
    if (blas_threads > 1) blas->set_threads(1);
    SFX_RUN_TEAM(SFX(backward_thread), J, plan.nt);
    if (blas_threads > 1) blas->set_threads(blas_threads);
    memcpy(dh0, J.dhr, BH * sizeof(REAL));
    memcpy(dc0, J.dc, BH * sizeof(REAL));
    return 0;
}

/* C (B, N) += A (B, K) W (K, N): the step's products, by the unpacked small
 * kernel where W is small and the batch is, else by BLAS. */
static void SFX(step_product)(const clstm_blas *blas, int B, int K, int N, const REAL *A,
                              const REAL *W, REAL *C)
{
    if (B <= CLSTM_STEP_SMALL_BATCH && (size_t)K * N <= CLSTM_STEP_SMALL_WEIGHTS)
        SFX(small_gemm)(B, K, N, A, K, W, C, N);
    else
        SFX(gemm_rm)(blas, 'N', 'N', B, N, K, 1, A, K, W, N, 1, C, N);
}

int SFX(clstm_lstm_step)(const clstm_blas *blas, int B, int I, int H, const REAL *x,
    const REAL *w_ih_t, const REAL *w_hh_t, const REAL *b_ih, const REAL *b_hh,
    const REAL *h, const REAL *c, REAL *h_out, REAL *c_out, REAL *ws)
{
    const size_t BH = (size_t)B * H, G4 = 4 * (size_t)H;
    if (B <= 0) return 0;
    /* ws: [G (B, 4H)][bias 4H][c_t (B, H)]: c_t apart, so c_out may be c */
    REAL *G = ws, *bias = ws + B * G4, *ct = bias + G4;
    for (size_t j = 0; j < G4; j++) bias[j] = (b_ih ? b_ih[j] : 0) + (b_hh ? b_hh[j] : 0);
    memset(G, 0, B * G4 * sizeof(REAL));
    SFX(step_product)(blas, B, I, 4 * H, x, w_ih_t, G);
    SFX(step_product)(blas, B, H, 4 * H, h, w_hh_t, G);
    /* h is read only by the product above, so h_out may be h */
    SFX(step_forward)(B, H, G, bias, c, ct, NULL, H, h_out, H, h_out, H, NULL);
    memcpy(c_out, ct, BH * sizeof(REAL));
    return 0;
}
