/* One LSTM layer, one direction: forward and backward (BPTT) over a sequence.
 * Compiled once per REAL by lstm_f32.c and lstm_f64.c; see clstm.h for the
 * contract of the two public functions.
 *
 * Needs REAL, SFX(name), GEMM (the blas table member), SIGMOID, TANH.
 *
 * The shape of the work (DESIGN.md, "How it gets fast"):
 *  forward:  G = X W_ih^T for many steps in one GEMM; per step one GEMM
 *            G_t += h_{t-1} W_hh^T for all four gates, then one fused pass.
 *  backward: per step the fused gate-gradient pass and dh = dG_t W_hh; after
 *            the loop dW_ih = dG^T X, dW_hh = dG^T H_prev, dX = dG W_ih as
 *            three big GEMMs.
 */

#include "cell_template.h"

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

/* Rows x columns (B, H) of elementwise work, split into items for OpenMP:
 * whole rows when there are enough of them, else row segments. */
typedef struct { int nseg, seg; long items; int threads; } SFX(split);

static SFX(split) SFX(split_rows)(int B, int H)
{
    SFX(split) s;
    s.threads = clstm_threads_for((long)B * H);
    s.nseg = 1;
    if (s.threads > 1 && B < 2 * s.threads) s.nseg = 2 * s.threads;
    if (s.nseg > H) s.nseg = H;
    s.seg = (H + s.nseg - 1) / s.nseg;
    s.nseg = (H + s.seg - 1) / s.seg;
    s.items = (long)B * s.nseg;
    return s;
}

/* One forward step over the batch.
 * G (B, 4H) pre-activations -> activated gates; bias (4H);
 * cprev, c (B, H); h (B, ldh). */
static void SFX(step_forward)(int B, int H, REAL *G, const REAL *bias,
                              const REAL *cprev, REAL *c, REAL *h, int ldh)
{
    SFX(split) s = SFX(split_rows)(B, H);
#pragma omp parallel for num_threads(s.threads) if (s.threads > 1) schedule(static)
    for (long it = 0; it < s.items; it++) {
        int b = (int)(it / s.nseg), j0 = (int)(it % s.nseg) * s.seg;
        int n = H - j0 < s.seg ? H - j0 : s.seg;
        REAL *g = G + (size_t)b * 4 * H + j0;
        const REAL *bb = bias + j0;
        size_t o = (size_t)b * H + j0;
        SFX(cell_forward)(n, g, g + H, g + 2 * (size_t)H, g + 3 * (size_t)H,
                          bb, bb + H, bb + 2 * (size_t)H, bb + 3 * (size_t)H,
                          cprev + o, c + o, h + (size_t)b * ldh + j0);
    }
}

/* One backward step over the batch.
 * G (B, 4H) activated gates -> dG; c, cprev (B, H); dy (B, lddy);
 * dhr (B, H); dc (B, H) in/out. */
static void SFX(step_backward)(int B, int H, REAL *G, const REAL *c, const REAL *cprev,
                               const REAL *dy, int lddy, const REAL *dhr, REAL *dc)
{
    SFX(split) s = SFX(split_rows)(B, H);
#pragma omp parallel for num_threads(s.threads) if (s.threads > 1) schedule(static)
    for (long it = 0; it < s.items; it++) {
        int b = (int)(it / s.nseg), j0 = (int)(it % s.nseg) * s.seg;
        int n = H - j0 < s.seg ? H - j0 : s.seg;
        REAL *g = G + (size_t)b * 4 * H + j0;
        size_t o = (size_t)b * H + j0;
        SFX(cell_backward)(n, g, g + H, g + 2 * (size_t)H, g + 3 * (size_t)H,
                           c + o, cprev + o, dy + (size_t)b * lddy + j0, dhr + o, dc + o);
    }
}

static void SFX(copy_rows)(int B, int H, const REAL *src, int lds, REAL *dst)
{
    for (int b = 0; b < B; b++)
        memcpy(dst + (size_t)b * H, src + (size_t)b * lds, (size_t)H * sizeof(REAL));
}

int SFX(clstm_lstm_forward)(const clstm_blas *blas, int T, int B, int I, int H,
    int reverse, const REAL *x, const REAL *w_ih, const REAL *w_hh,
    const REAL *bias, const REAL *h0, const REAL *c0, REAL *y, int ldy,
    REAL *hn, REAL *cn, REAL *gates, REAL *cs, REAL *ws)
{
    const int train = gates != NULL;
    const size_t BH = (size_t)B * H, BG = (size_t)B * 4 * H;
    if (T <= 0 || B <= 0) return 0;

    /* ws: [bias 4H][c0 zeros BH][inference only: c ping-pong 2 BH][G chunk] */
    REAL *zbias = ws;
    REAL *zc0 = zbias + 4 * (size_t)H;
    REAL *cbuf = zc0 + BH;
    if (!bias) { memset(zbias, 0, 4 * (size_t)H * sizeof(REAL)); bias = zbias; }
    if (!c0) { memset(zc0, 0, BH * sizeof(REAL)); c0 = zc0; }
    const int chunk = train ? T : clstm_forward_chunk(T, B, H);
    REAL *gbuf = train ? gates : cbuf + 2 * BH;

    for (int s0 = 0; s0 < T; s0 += chunk) {
        const int n = T - s0 < chunk ? T - s0 : chunk;
        /* the chunk's steps cover times [tlo, tlo + n) in either direction */
        const int tlo = reverse ? T - s0 - n : s0;
        if (!train || s0 == 0) {
            const int rows = train ? T * B : n * B;
            const REAL *xr = train ? x : x + (size_t)tlo * B * I;
            SFX(gemm_rm)(blas, 'N', 'T', rows, 4 * H, I, 1, xr, I, w_ih, I, 0, gbuf, 4 * H);
        }
        for (int s = s0; s < s0 + n; s++) {
            const int t = reverse ? T - 1 - s : s;
            const int tp = reverse ? t + 1 : t - 1;   /* the step before, in time order */
            REAL *Gt = gbuf + (size_t)(train ? t : t - tlo) * BG;
            const REAL *hp = s == 0 ? h0 : y + (size_t)tp * B * ldy;
            if (hp)
                SFX(gemm_rm)(blas, 'N', 'T', B, 4 * H, H, 1, hp, s == 0 ? H : ldy,
                             w_hh, H, 1, Gt, 4 * H);
            const REAL *cp = s == 0 ? c0 : train ? cs + (size_t)tp * BH : cbuf + ((s - 1) & 1) * BH;
            REAL *ct = train ? cs + (size_t)t * BH : cbuf + (s & 1) * BH;
            SFX(step_forward)(B, H, Gt, bias, cp, ct, y + (size_t)t * B * ldy, ldy);
        }
    }
    const int tl = reverse ? 0 : T - 1;
    SFX(copy_rows)(B, H, y + (size_t)tl * B * ldy, ldy, hn);
    memcpy(cn, train ? cs + (size_t)tl * BH : cbuf + ((T - 1) & 1) * BH, BH * sizeof(REAL));
    return 0;
}

int SFX(clstm_lstm_backward)(const clstm_blas *blas, int T, int B, int I, int H,
    int reverse, const REAL *x, const REAL *w_ih, const REAL *w_hh,
    const REAL *h0, const REAL *c0, const REAL *y, int ldy,
    REAL *gates, const REAL *cs, const REAL *dy, int lddy,
    const REAL *dhn, const REAL *dcn, REAL *dx, REAL dx_beta,
    REAL *dh0, REAL *dc0, REAL *dw_ih, REAL *dw_hh, REAL *db, REAL *ws)
{
    const size_t BH = (size_t)B * H, BG = (size_t)B * 4 * H;
    if (T <= 0 || B <= 0) return 0;

    /* ws: [dhr BH][dc BH][c0 zeros BH] */
    REAL *dhr = ws, *dc = ws + BH, *zc0 = ws + 2 * BH;
    if (dhn) memcpy(dhr, dhn, BH * sizeof(REAL)); else memset(dhr, 0, BH * sizeof(REAL));
    if (dcn) memcpy(dc, dcn, BH * sizeof(REAL)); else memset(dc, 0, BH * sizeof(REAL));
    if (!c0) { memset(zc0, 0, BH * sizeof(REAL)); c0 = zc0; }

    for (int s = T - 1; s >= 0; s--) {
        const int t = reverse ? T - 1 - s : s;
        const int tp = reverse ? t + 1 : t - 1;
        REAL *Gt = gates + (size_t)t * BG;
        const REAL *cp = s == 0 ? c0 : cs + (size_t)tp * BH;
        SFX(step_backward)(B, H, Gt, cs + (size_t)t * BH, cp, dy + (size_t)t * B * lddy, lddy,
                           dhr, dc);
        /* dL/dh_{t-1} through the recurrence: dG_t W_hh, (B, 4H) x (4H, H) */
        SFX(gemm_rm)(blas, 'N', 'N', B, H, 4 * H, 1, Gt, 4 * H, w_hh, H, 0, dhr, H);
    }
    memcpy(dh0, dhr, BH * sizeof(REAL));
    memcpy(dc0, dc, BH * sizeof(REAL));

    /* Weight gradients over all steps at once.
     * dW_ih (4H, I) = dG^T (4H, TB) X (TB, I) */
    SFX(gemm_rm)(blas, 'T', 'N', 4 * H, I, T * B, 1, gates, 4 * H, x, I, 0, dw_ih, I);
    /* dW_hh (4H, H) = sum_t dG_t^T h_{t-1}: every step but the first pairs
     * with an output row of y; the first pairs with h0. */
    {
        const REAL *dg = reverse ? gates : gates + BG;      /* steps with a y predecessor */
        const REAL *hp = reverse ? y + (size_t)B * ldy : y;  /* their h_{t-1} */
        SFX(gemm_rm)(blas, 'T', 'N', 4 * H, H, (T - 1) * B, 1, dg, 4 * H, hp, ldy,
                     0, dw_hh, H);
        if (h0) {
            const REAL *dg0 = gates + (size_t)(reverse ? T - 1 : 0) * BG;
            SFX(gemm_rm)(blas, 'T', 'N', 4 * H, H, B, 1, dg0, 4 * H, h0, H, 1, dw_hh, H);
        }
    }
    /* dX (TB, I) = dG (TB, 4H) W_ih (4H, I) */
    SFX(gemm_rm)(blas, 'N', 'N', T * B, I, 4 * H, 1, gates, 4 * H, w_ih, I, dx_beta, dx, I);
    if (db) {
        memset(db, 0, 4 * (size_t)H * sizeof(REAL));
        const size_t rows = (size_t)T * B;
        for (size_t r = 0; r < rows; r++) {
            const REAL *g = gates + r * 4 * H;
            for (int j = 0; j < 4 * H; j++) db[j] += g[j];
        }
    }
    return 0;
}
