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
#include "recurrent_template.h"

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

/* The per-step passes below run on the calling thread.  Forking an OpenMP
 * team between the per-step GEMMs made things worse, not better: OpenBLAS's
 * workers and OpenMP's both spin after their work, so each team fought the
 * other for the cores (bench/RESULTS.md: (50, 64, 512, 1024) forward at 2
 * threads, 792 ms with a team per step, 265 ms without).  The elementwise
 * work is a few percent of a step where threads matter. */

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

/* One backward step over the batch.
 * G (B, 4H) activated gates -> dG; c, cprev (B, H); dy (B, lddy);
 * dhr (B, H); dc (B, H) in/out; m (B) step mask or NULL: a skipped row's
 * dG is 0 and its dc, dhr pass through (the caller keeps dhr's rows). */
static void SFX(step_backward)(int B, int H, REAL *G, const REAL *c, const REAL *cprev,
                               const REAL *dy, int lddy, const REAL *dhr, REAL *dc,
                               const unsigned char *m)
{
    for (int b = 0; b < B; b++) {
        REAL *g = G + (size_t)b * 4 * H;
        if (m && !m[b]) {
            memset(g, 0, 4 * (size_t)H * sizeof(REAL));
            continue;
        }
        size_t o = (size_t)b * H;
        SFX(cell_backward)(H, g, g + H, g + 2 * (size_t)H, g + 3 * (size_t)H,
                           c + o, cprev + o, dy + (size_t)b * lddy, dhr + o, dc + o);
    }
}

/* Rows of dhr (B, H) of the masked-out sequences, saved to / restored from
 * keep (B, H) around the GEMM that overwrites dhr: through a skipped step
 * the gradient w.r.t. h passes unchanged. */
static void SFX(keep_skipped)(int B, int H, const unsigned char *m, REAL *dhr, REAL *keep,
                              int restore)
{
    for (int b = 0; b < B; b++)
        if (!m[b]) {
            REAL *d = dhr + (size_t)b * H, *k = keep + (size_t)b * H;
            memcpy(restore ? d : k, restore ? k : d, (size_t)H * sizeof(REAL));
        }
}

static void SFX(copy_rows)(int B, int H, const REAL *src, int lds, REAL *dst)
{
    for (int b = 0; b < B; b++)
        memcpy(dst + (size_t)b * H, src + (size_t)b * lds, (size_t)H * sizeof(REAL));
}

int SFX(clstm_lstm_forward)(const clstm_blas *blas, int T, int B, int I, int H,
    int reverse, const REAL *x, const REAL *w_ih_t, const REAL *w_hh_t,
    const REAL *bias, const REAL *h0, const REAL *c0, const unsigned char *mask,
    REAL *y, int ldy, REAL *hn, REAL *cn, REAL *gates, REAL *cs, REAL *hs, REAL *ws)
{
    const int train = gates != NULL;
    const size_t BH = (size_t)B * H, BG = (size_t)B * 4 * H;
    if (T <= 0 || B <= 0) return 0;

    /* ws: [bias 4H][c0 zeros BH] + inference: [c ping-pong 2 BH]
     * [masked: h ping-pong 2 BH][G chunk] */
    REAL *zbias = ws;
    REAL *zc0 = zbias + 4 * (size_t)H;
    REAL *cbuf = zc0 + BH;
    REAL *hbuf = cbuf + 2 * BH;
    if (!bias) { memset(zbias, 0, 4 * (size_t)H * sizeof(REAL)); bias = zbias; }
    if (!c0) { memset(zc0, 0, BH * sizeof(REAL)); c0 = zc0; }
    const int chunk = train ? T : clstm_forward_chunk(T, B, H);
    REAL *gbuf = train ? gates : hbuf + (mask ? 2 * BH : 0);
    /* small batches: W_hh^T (H, 4H) packed into panels after everything else */
    REAL *wpack = NULL;
    if (B <= CLSTM_SMALL_BATCH) {
        wpack = train ? cbuf : gbuf + (size_t)chunk * BG;
        SFX(pack_panels)(H, 4 * H, w_hh_t, 4 * (size_t)H, 1, wpack);
    }
    /* Where step s keeps its hidden state h_t, and the row stride there:
     * without a mask the outputs y are the states; with one, skipped steps
     * output 0 while the state carries on, so states live apart. */
#define HSTATE(s, t) (!mask ? y + (size_t)(t) * B * ldy \
                      : train ? hs + (size_t)(t) * BH : hbuf + ((s) & 1) * BH)
    const int ldh = mask ? H : ldy;

    for (int s0 = 0; s0 < T; s0 += chunk) {
        const int n = T - s0 < chunk ? T - s0 : chunk;
        /* the chunk's steps cover times [tlo, tlo + n) in either direction */
        const int tlo = reverse ? T - s0 - n : s0;
        if (!train || s0 == 0) {
            const int rows = train ? T * B : n * B;
            const REAL *xr = train ? x : x + (size_t)tlo * B * I;
            /* G (rows, 4H) = X (rows, I) W_ih^T (I, 4H) */
            SFX(gemm_rm)(blas, 'N', 'N', rows, 4 * H, I, 1, xr, I, w_ih_t, 4 * H, 0, gbuf, 4 * H);
        }
        for (int s = s0; s < s0 + n; s++) {
            const int t = reverse ? T - 1 - s : s;
            const int tp = reverse ? t + 1 : t - 1;   /* the step before, in time order */
            REAL *Gt = gbuf + (size_t)(train ? t : t - tlo) * BG;
            const REAL *hp = s == 0 ? h0 : HSTATE(s - 1, tp);
            const int ldhp = s == 0 ? H : ldh;
            /* G_t (B, 4H) += h_{t-1} (B, H) W_hh^T (H, 4H) */
            if (hp && wpack)
                SFX(panel_gemm)(B, H, 4 * H, hp, ldhp, wpack, Gt, 4 * H);
            else if (hp)
                SFX(gemm_rm)(blas, 'N', 'N', B, 4 * H, H, 1, hp, ldhp, w_hh_t, 4 * H, 1, Gt, 4 * H);
            const REAL *cp = s == 0 ? c0 : train ? cs + (size_t)tp * BH : cbuf + ((s - 1) & 1) * BH;
            REAL *ct = train ? cs + (size_t)t * BH : cbuf + (s & 1) * BH;
            SFX(step_forward)(B, H, Gt, bias, cp, ct, hp, ldhp, HSTATE(s, t), ldh,
                              y + (size_t)t * B * ldy, ldy, mask ? mask + (size_t)t * B : NULL);
        }
    }
    const int tl = reverse ? 0 : T - 1;
    SFX(copy_rows)(B, H, HSTATE(T - 1, tl), ldh, hn);
    memcpy(cn, train ? cs + (size_t)tl * BH : cbuf + ((T - 1) & 1) * BH, BH * sizeof(REAL));
#undef HSTATE
    return 0;
}

int SFX(clstm_lstm_backward)(const clstm_blas *blas, int T, int B, int I, int H,
    int reverse, const REAL *x, const REAL *w_ih_t, const REAL *w_hh_t,
    const REAL *h0, const REAL *c0, const unsigned char *mask,
    const REAL *y, int ldy, REAL *gates, const REAL *cs, const REAL *hs,
    const REAL *dy, int lddy, const REAL *dhn, const REAL *dcn,
    REAL *dx, REAL dx_beta, REAL *dh0, REAL *dc0,
    REAL *dw_ih_t, REAL *dw_hh_t, REAL *db, REAL *ws)
{
    const size_t BH = (size_t)B * H, BG = (size_t)B * 4 * H;
    if (T <= 0 || B <= 0) return 0;

    /* ws: [dhr BH][dc BH][c0 zeros BH][kept dhr rows BH][small batch: packed W_hh] */
    REAL *dhr = ws, *dc = ws + BH, *zc0 = ws + 2 * BH, *keep = ws + 3 * BH;
    REAL *wpack = NULL;
    if (B <= CLSTM_SMALL_BATCH) {   /* W_hh (4H, H) = the transpose of w_hh_t, packed */
        wpack = ws + 4 * BH;
        SFX(pack_panels)(4 * H, H, w_hh_t, 1, 4 * (size_t)H, wpack);
    }
    if (dhn) memcpy(dhr, dhn, BH * sizeof(REAL)); else memset(dhr, 0, BH * sizeof(REAL));
    if (dcn) memcpy(dc, dcn, BH * sizeof(REAL)); else memset(dc, 0, BH * sizeof(REAL));
    if (!c0) { memset(zc0, 0, BH * sizeof(REAL)); c0 = zc0; }

    for (int s = T - 1; s >= 0; s--) {
        const int t = reverse ? T - 1 - s : s;
        const int tp = reverse ? t + 1 : t - 1;
        const unsigned char *m = mask ? mask + (size_t)t * B : NULL;
        REAL *Gt = gates + (size_t)t * BG;
        const REAL *cp = s == 0 ? c0 : cs + (size_t)tp * BH;
        SFX(step_backward)(B, H, Gt, cs + (size_t)t * BH, cp, dy + (size_t)t * B * lddy, lddy,
                           dhr, dc, m);
        if (m) SFX(keep_skipped)(B, H, m, dhr, keep, 0);
        /* dL/dh_{t-1} through the recurrence: dG_t (B, 4H) W_hh (4H, H) */
        if (wpack) {
            memset(dhr, 0, BH * sizeof(REAL));
            SFX(panel_gemm)(B, 4 * H, H, Gt, 4 * H, wpack, dhr, H);
        } else
            SFX(gemm_rm)(blas, 'N', 'T', B, H, 4 * H, 1, Gt, 4 * H, w_hh_t, 4 * H, 0, dhr, H);
        if (m) SFX(keep_skipped)(B, H, m, dhr, keep, 1);
    }
    memcpy(dh0, dhr, BH * sizeof(REAL));
    memcpy(dc0, dc, BH * sizeof(REAL));

    /* Weight gradients over all steps at once.
     * dW_ih^T (I, 4H) = X^T (I, TB) dG (TB, 4H) */
    SFX(gemm_rm)(blas, 'T', 'N', I, 4 * H, T * B, 1, x, I, gates, 4 * H, 0, dw_ih_t, 4 * H);
    /* dW_hh^T (H, 4H) = sum_t h_{t-1}^T dG_t: every step but the first pairs
     * with the state of the step before it; the first pairs with h0. */
    {
        const REAL *st = mask ? hs : y;                     /* hidden states, (T, B, ldh) */
        const int ldh = mask ? H : ldy;
        const REAL *dg = reverse ? gates : gates + BG;      /* steps with a predecessor */
        const REAL *hp = reverse ? st + (size_t)B * ldh : st;  /* their h_{t-1} */
        SFX(gemm_rm)(blas, 'T', 'N', H, 4 * H, (T - 1) * B, 1, hp, ldh, dg, 4 * H,
                     0, dw_hh_t, 4 * H);
        if (h0) {
            const REAL *dg0 = gates + (size_t)(reverse ? T - 1 : 0) * BG;
            SFX(gemm_rm)(blas, 'T', 'N', H, 4 * H, B, 1, h0, H, dg0, 4 * H, 1, dw_hh_t, 4 * H);
        }
    }
    /* dX (TB, I) = dG (TB, 4H) W_ih (4H, I) */
    SFX(gemm_rm)(blas, 'N', 'T', T * B, I, 4 * H, 1, gates, 4 * H, w_ih_t, 4 * H, dx_beta, dx, I);
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

/* C (B, N) += A (B, K) W (K, N): the step's products, by the unpacked small
 * kernel where W is small and the batch is, else by BLAS. */
static void SFX(step_product)(const clstm_blas *blas, int B, int K, int N, const REAL *A,
                              const REAL *W, REAL *C)
{
    if (B <= CLSTM_SMALL_BATCH && (size_t)K * N <= CLSTM_STEP_SMALL_WEIGHTS)
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
