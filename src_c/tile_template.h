/* Register-tile kernels of the forward pass, for one SIMD width: compiled
 * once per REAL and per instruction set by lstm_template.h.
 *
 * Needs REAL, SFX(name), SFX(step_io), SFX(cell_forward_loop), SIGMOID, TANH
 * and, per instruction set,
 *   KVB       vector bytes (64 AVX-512, 32 AVX2, 16 baseline),
 *   KMR       batch rows per register tile,
 *   KATTR     the target attribute of the entry points (or nothing),
 *   KSFX(n)   the name suffix of this instance.
 *
 * Why our own kernels rather than a BLAS call per step: the recurrent product
 * of one step is small (B rows) against a large W_hh, and a BLAS re-packs W_hh
 * on every call (OpenBLAS ran (64,1024)x(1024,4096) at 63-73 GFLOP/s per core
 * against 102 on 2048^3).  Here the weights are packed once per call, in
 * panels that serve one block of VL hidden units for all four gates:
 *
 *   panel u, row k: [ W(k, i-gate, u*VL .. +VL) | f | g | o ]   (PW = 4 VL)
 *
 * so one register tile (KMR batch rows x 4 vectors) holds every gate of VL
 * hidden units, and the cell update runs on it before anything is stored:
 * the threads each own whole unit blocks (their slice of W stays in their
 * cache for the whole sequence) and meet once per step.
 */

#pragma GCC diagnostic ignored "-Wpsabi"   /* vector helpers are always inlined */

#define VL ((int)(KVB / sizeof(REAL)))
#define PW (4 * VL)

typedef REAL KSFX(vec) __attribute__((vector_size(KVB)));

/* Unaligned whole-vector access, and the lanes as unsigned integers. */
typedef REAL KSFX(vu) __attribute__((vector_size(KVB), aligned(sizeof(REAL))));
typedef VM_UINT KSFX(vb) __attribute__((vector_size(KVB)));

/* m ? a : b, lane by lane (m: all ones or zero per lane, from a comparison) */
static inline __attribute__((always_inline)) KSFX(vec) KSFX(vsel)(KSFX(vb) m, KSFX(vec) a,
                                                                  KSFX(vec) b)
{
    return (KSFX(vec))(((KSFX(vb))a & m) | ((KSFX(vb))b & ~m));
}

static inline __attribute__((always_inline)) KSFX(vec) KSFX(vsplat)(REAL v)
{
    return (KSFX(vec)){0} + v;
}

/* vmath.h's reduction, exp, expm1 polynomial, sigmoid and tanh on whole
 * vectors: the same operations, so the same accuracy (a few ulp). */
static inline __attribute__((always_inline)) KSFX(vec) KSFX(vreduce)(KSFX(vec) x,
                                                                     KSFX(vec) *two_n)
{
    const KSFX(vec) sh = KSFX(vsplat)(VM_SHIFTER);
    KSFX(vec) t = x * KSFX(vsplat)(VM_LOG2E) + sh;
    KSFX(vec) n = t - sh;
    *two_n = (KSFX(vec))((((KSFX(vb))t - VM_SHIFT_BITS) + VM_EXP_BIAS) << VM_MANT);
    KSFX(vec) r = x - n * KSFX(vsplat)(VM_LN2_HI);
    return r - n * KSFX(vsplat)(VM_LN2_LO);
}

static inline __attribute__((always_inline)) KSFX(vec) KSFX(vexpm1_poly)(KSFX(vec) r)
{
    static const REAL c[] = VM_EXPM1_COEF;
    KSFX(vec) p = KSFX(vsplat)(c[0]);
    for (unsigned i = 1; i < sizeof c / sizeof c[0]; i++) p = p * r + c[i];
    return p * r;
}

static inline __attribute__((always_inline)) KSFX(vec) KSFX(vsigmoid)(KSFX(vec) x)
{
    KSFX(vec) e = -x, two_n;
    e = KSFX(vsel)((KSFX(vb))(e > VM_EXP_HI), KSFX(vsplat)(VM_EXP_HI), e);
    e = KSFX(vsel)((KSFX(vb))(e < -VM_EXP_HI + 1), KSFX(vsplat)(VM_EXP_LO), e);
    KSFX(vec) r = KSFX(vreduce)(e, &two_n);
    e = two_n + two_n * KSFX(vexpm1_poly)(r);
    KSFX(vec) s = 1 / (1 + e);
    return KSFX(vsel)((KSFX(vb))(x < VM_EXP_LO), KSFX(vsplat)(0), s);
}

static inline __attribute__((always_inline)) KSFX(vec) KSFX(vtanh)(KSFX(vec) x)
{
    const KSFX(vb) sign = (KSFX(vb)){0} + VM_SIGN;
    KSFX(vec) y = (KSFX(vec))((KSFX(vb))x | sign) * 2;      /* -2 |x| */
    y = KSFX(vsel)((KSFX(vb))(y < VM_TANH_LO), KSFX(vsplat)(VM_TANH_LO), y);
    KSFX(vec) two_n;
    KSFX(vec) r = KSFX(vreduce)(y, &two_n);
    KSFX(vec) m = two_n * KSFX(vexpm1_poly)(r) + (two_n - 1);
    KSFX(vec) t = -m / (2 + m);
    return (KSFX(vec))(((KSFX(vb))t & ~sign) | ((KSFX(vb))x & sign));
}

/* Unit blocks of H hidden units at this width. */
static inline int KSFX(unit_blocks)(int H) { return (H + VL - 1) / VL; }

/* Packs the unit blocks [u0, u1) of two stacked gate matrices, src1 (K1, 4H)
 * over src2 (K2, 4H), row stride 4H, gates i f g o of H columns each
 * (w_ih_t and/or w_hh_t), into panels: block u at dst + u (K1 + K2) PW,
 * row k as drawn above, zero past unit H.  compact: a last block of at most
 * VL/4 units is packed as one vector per row, [i | f | g | o] in quarters
 * (KSFX(compact)), so its tile does a quarter of the work. */
static inline int KSFX(compact)(int w) { return w <= VL / 4; }

static void KSFX(pack_gates)(int K1, const REAL *src1, int K2, const REAL *src2, int H,
                             int u0, int u1, int compact, REAL *dst)
{
    const int K = K1 + K2, Q = VL / 4;
    for (int u = u0; u < u1; u++) {
        const int j = u * VL, w = H - j < VL ? H - j : VL;
        const int cp = compact && KSFX(compact)(w);
        REAL *p = dst + (size_t)u * K * PW;
        for (int k = 0; k < K; k++) {
            const REAL *s = (k < K1 ? src1 + (size_t)k * 4 * H : src2 + (size_t)(k - K1) * 4 * H) + j;
            const int gw = cp ? Q : VL;   /* lanes per gate */
            for (int g = 0; g < 4; g++) {
                for (int q = 0; q < w; q++) p[g * gw + q] = s[(size_t)g * H + q];
                for (int q = w; q < gw; q++) p[g * gw + q] = 0;
            }
            p += cp ? VL : PW;
        }
    }
}

/* acc[r][v] (mr rows, nv vectors) = A (mr, K; row stride lda) x P (+= unless
 * zero), where
 * vector v of row k of P is at P + v bs + k ps.  mr and nv are constants at
 * every call site, so acc lives in registers.  Forward: P a gate panel
 * (ps = PW, bs = VL); backward: nv unit blocks of W_hh (ps = VL, bs = K VL). */
static inline __attribute__((always_inline)) void KSFX(tile)(
    int mr, int nv, int zero, int K, const REAL *restrict A, size_t lda,
    const REAL *restrict P, size_t ps, size_t bs, KSFX(vec) acc[KMR][4])
{
    if (zero)
        for (int r = 0; r < mr; r++)
            for (int v = 0; v < nv; v++) acc[r][v] = (KSFX(vec)){0};
    const REAL *p0 = P, *p1 = P + bs, *p2 = P + 2 * bs, *p3 = P + 3 * bs;
    for (int k = 0; k < K; k++) {
        const size_t o = (size_t)k * ps;
        const KSFX(vec) w0 = *(const KSFX(vec) *)(p0 + o);
        KSFX(vec) w1 = w0, w2 = w0, w3 = w0;
        if (nv > 1) w1 = *(const KSFX(vec) *)(p1 + o);
        if (nv > 2) w2 = *(const KSFX(vec) *)(p2 + o);
        if (nv > 3) w3 = *(const KSFX(vec) *)(p3 + o);
        for (int r = 0; r < mr; r++) {
            const REAL a = A[r * lda + k];
            acc[r][0] += a * w0;
            if (nv > 1) acc[r][1] += a * w1;
            if (nv > 2) acc[r][2] += a * w2;
            if (nv > 3) acc[r][3] += a * w3;
        }
    }
}

/* Input projection of rows [r0, r0 + mr) for unit block u:
 * G (row, g H + j + q) = (X W_ih^T)(row, ...) + bias, q < w. */
static inline __attribute__((always_inline)) void KSFX(proj_rows)(
    int mr, int K, int H, const REAL *X, const REAL *P, const REAL *bias,
    REAL *G, int j, int w)
{
    KSFX(vec) acc[KMR][4];
    KSFX(tile)(mr, 4, 1, K, X, K, P, PW, VL, acc);
    for (int r = 0; r < mr; r++)
        for (int g = 0; g < 4; g++) {
            REAL t[VL] __attribute__((aligned(KVB)));
            *(KSFX(vec) *)t = acc[r][g];
            REAL *out = G + (size_t)r * 4 * H + (size_t)g * H + j;
            const REAL *bg = bias + (size_t)g * H + j;
            if (w == VL)
                for (int q = 0; q < VL; q++) out[q] = t[q] + bg[q];
            else
                for (int q = 0; q < w; q++) out[q] = t[q] + bg[q];
        }
}

/* One step for rows [b, b + mr) and unit block u (units j .. j + w).  P: the
 * block's panel of W_hh^T or, fused, of [W_ih^T; W_hh^T] (then x_t comes
 * into the same tile and the bias is added here). */
static inline __attribute__((always_inline)) void KSFX(step_rows)(
    int mr, int compact, const SFX(step_io) *s, const REAL *P, int b, int j, int w)
{
    const int H = s->H, I = s->I;
    const int nv = compact ? 1 : 4, ps = compact ? VL : PW;   /* panel row: vectors, stride */
    KSFX(vec) acc[KMR][4];
    if (s->x)
        KSFX(tile)(mr, nv, 1, I, s->x + (size_t)b * I, I, P, ps, VL, acc);
    if (s->hp)
        KSFX(tile)(mr, nv, !s->x, H, s->hp + (size_t)b * s->ldhp, s->ldhp,
                   s->x ? P + (size_t)I * ps : P, ps, VL, acc);
    else if (!s->x)
        for (int r = 0; r < mr; r++)
            for (int g = 0; g < nv; g++) acc[r][g] = (KSFX(vec)){0};
    for (int r = 0; r < mr; r++) {
        const size_t row = (size_t)(b + r), o = row * H + j;
        /* what the recurrent product adds to: the row's input projection, or
         * (fused) the bias; where the activated gates go (NULL: nowhere) */
        const REAL *add = s->x ? s->bias + j : s->G + row * 4 * H + j;
        REAL *gout = s->Gout ? s->Gout + row * 4 * H + j : NULL;
        REAL *hrow = s->hs + row * s->ldhs + j, *yrow = s->y + row * s->ldy + j;
        if (s->m && !s->m[row]) {    /* padding: state carried, output and gates 0 */
            for (int q = 0; q < w; q++) {
                s->c[o + q] = s->cp[o + q];
                hrow[q] = s->hp ? s->hp[row * s->ldhp + j + q] : 0;
                if (yrow != hrow) yrow[q] = 0;
                if (gout)
                    for (int g = 0; g < 4; g++) gout[(size_t)g * H + q] = 0;
            }
            continue;
        }
        REAL *ysep = yrow != hrow ? yrow : NULL;
        if (!compact && w == VL) {   /* the cell on the registers */
            const KSFX(vu) *ai = (const KSFX(vu) *)add, *af = (const KSFX(vu) *)(add + H);
            const KSFX(vu) *ag = (const KSFX(vu) *)(add + 2 * (size_t)H);
            const KSFX(vu) *ao = (const KSFX(vu) *)(add + 3 * (size_t)H);
            const KSFX(vec) i = KSFX(vsigmoid)(acc[r][0] + *ai);
            const KSFX(vec) f = KSFX(vsigmoid)(acc[r][1] + *af);
            const KSFX(vec) g = KSFX(vtanh)(acc[r][2] + *ag);
            const KSFX(vec) og = KSFX(vsigmoid)(acc[r][3] + *ao);
            const KSFX(vec) ct = f * *(const KSFX(vu) *)(s->cp + o) + i * g;
            const KSFX(vec) ht = og * KSFX(vtanh)(ct);
            *(KSFX(vu) *)(s->c + o) = ct;
            *(KSFX(vu) *)hrow = ht;
            if (ysep) *(KSFX(vu) *)ysep = ht;
            if (gout) {
                *(KSFX(vu) *)gout = i;
                *(KSFX(vu) *)(gout + H) = f;
                *(KSFX(vu) *)(gout + 2 * (size_t)H) = g;
                *(KSFX(vu) *)(gout + 3 * (size_t)H) = og;
            }
            continue;
        }
        /* the last, partial block: through padded copies, so that the cell
         * still runs as whole vectors (a scalar tail calls the activations
         * out of line, ~5 us per step at H = 50) */
        REAL pre[4][VL] __attribute__((aligned(KVB)));
        if (compact) {   /* one vector, the gates in quarters */
            REAL t[VL] __attribute__((aligned(KVB)));
            *(KSFX(vec) *)t = acc[r][0];
            for (int g = 0; g < 4; g++)
                for (int q = 0; q < VL; q++) pre[g][q] = q < VL / 4 ? t[g * (VL / 4) + q] : 0;
        } else {
            for (int g = 0; g < 4; g++) *(KSFX(vec) *)pre[g] = acc[r][g];
        }
        REAL pg[4 * VL], pc[VL], cc[VL], hh[VL];
        for (int q = 0; q < VL; q++) {
            const int in = q < w;
            for (int g = 0; g < 4; g++) pg[g * VL + q] = in ? add[(size_t)g * H + q] : 0;
            pc[q] = in ? s->cp[o + q] : 0;
        }
        SFX(cell_forward_loop)(VL, pg, pg + VL, pg + 2 * VL, pg + 3 * VL,
                               pre[0], pre[1], pre[2], pre[3], pc, cc, hh);
        for (int q = 0; q < w; q++) {
            if (gout)
                for (int g = 0; g < 4; g++) gout[(size_t)g * H + q] = pg[g * VL + q];
            s->c[o + q] = cc[q];
            hrow[q] = hh[q];
            if (ysep) ysep[q] = hh[q];
        }
    }
}

/* Calls BODY(mr) with mr a constant for every tile height up to KMR. */
#define KSFX_ROWS(mr_var, BODY)                          \
    switch (mr_var) {                                    \
    case 1: BODY(1); break;                              \
    case 2: if (KMR >= 2) { BODY(2); } break;            \
    case 3: if (KMR >= 3) { BODY(3); } break;            \
    case 4: if (KMR >= 4) { BODY(4); } break;            \
    case 5: if (KMR >= 5) { BODY(5); } break;            \
    default: if (KMR >= 6) { BODY(6); } break;           \
    }

/* G rows [0, rows) (row stride 4H) = X (rows, K) W_ih^T + bias for the unit
 * blocks [u0, u1); rows in groups that keep X's group in cache while every
 * panel passes over it. */
KATTR static void KSFX(project)(int rows, int K, int H, const REAL *X, const REAL *Pih,
                                const REAL *bias, REAL *G, int u0, int u1)
{
    const int group = 128;
    for (int r0 = 0; r0 < rows; r0 += group) {
        const int r1 = rows - r0 < group ? rows : r0 + group;
        for (int u = u0; u < u1; u++) {
            const int j = u * VL, w = H - j < VL ? H - j : VL;
            const REAL *P = Pih + (size_t)u * K * PW;
            for (int b = r0; b < r1; b += KMR) {
                const int mr = r1 - b < KMR ? r1 - b : KMR;
                const REAL *Xb = X + (size_t)b * K;
                REAL *Gb = G + (size_t)b * 4 * H;
#define PROJ(MR) KSFX(proj_rows)(MR, K, H, Xb, P, bias, Gb, j, w)
                KSFX_ROWS(mr, PROJ)
#undef PROJ
            }
        }
    }
}

/* One step of the recurrence for the rows [b0, b1) and unit blocks [u0, u1). */
KATTR static void KSFX(step)(int b0, int b1, const SFX(step_io) *s, const REAL *Phh,
                             int u0, int u1)
{
    const int H = s->H;
    for (int u = u0; u < u1; u++) {
        const int j = u * VL, w = H - j < VL ? H - j : VL;
        const REAL *P = Phh + (size_t)u * (s->x ? s->I + H : H) * PW;
        const int cp = KSFX(compact)(w);   /* packed compact by pack_gates(.., 1, ..) */
        for (int b = b0; b < b1; b += KMR) {
            const int mr = b1 - b < KMR ? b1 - b : KMR;
#define STEP(MR) KSFX(step_rows)(MR, 0, s, P, b, j, w)
#define STEPC(MR) KSFX(step_rows)(MR, 1, s, P, b, j, w)
            if (cp) {
                KSFX_ROWS(mr, STEPC)
            } else {
                KSFX_ROWS(mr, STEP)
            }
#undef STEP
#undef STEPC
        }
    }
}

/* Backward: packs the unit blocks [u0, u1) of W_hh (4H, H), the transpose
 * of w_hh_t (H, 4H), one block after another: block u at dst + u 4H VL,
 * row k = W_hh(k, u VL .. u VL + VL), zero past unit H. */
static void KSFX(pack_units)(int H, const REAL *w_hh_t, int u0, int u1, REAL *dst)
{
    const int K = 4 * H;
    for (int u = u0; u < u1; u++) {
        const int j = u * VL, w = H - j < VL ? H - j : VL;
        REAL *p = dst + (size_t)u * K * VL;
        for (int k = 0; k < K; k++, p += VL) {
            for (int q = 0; q < w; q++) p[q] = w_hh_t[(size_t)(j + q) * K + k];
            for (int q = w; q < VL; q++) p[q] = 0;
        }
    }
}

/* Rows [b, b + mr) of dh (B, H), units j .. j + w (nv blocks, w <= nv VL):
 * dh = dG (B, 4H) W_hh, except rows whose step is masked out (the gradient
 * passes through them unchanged). */
static inline __attribute__((always_inline)) void KSFX(back_rows)(
    int mr, int nv, int H, const REAL *dG, const REAL *P, const unsigned char *m,
    REAL *dh, int b, int j, int w)
{
    const int K = 4 * H;
    KSFX(vec) acc[KMR][4];
    KSFX(tile)(mr, nv, 1, K, dG + (size_t)b * K, K, P, VL, (size_t)K * VL, acc);
    for (int r = 0; r < mr; r++) {
        if (m && !m[b + r]) continue;
        REAL t[4 * VL] __attribute__((aligned(KVB)));
        for (int v = 0; v < nv; v++) *(KSFX(vec) *)(t + v * VL) = acc[r][v];
        REAL *out = dh + (size_t)(b + r) * H + j;
        if (w == nv * VL)
            for (int q = 0; q < nv * VL; q++) out[q] = t[q];
        else
            for (int q = 0; q < w; q++) out[q] = t[q];
    }
}

/* dh (B, H) rows [b0, b1), units of blocks [u0, u1) = dG_t (B, 4H) W_hh:
 * the recurrent product of one backward step, on W_hh packed by pack_units. */
KATTR static void KSFX(back_step)(int b0, int b1, int H, const REAL *dG, const REAL *Pw,
                                  const unsigned char *m, REAL *dh, int u0, int u1)
{
    for (int u = u0; u < u1; u += 4) {
        const int nv = u1 - u < 4 ? u1 - u : 4;
        const int j = u * VL, w = (H - j < nv * VL ? H - j : nv * VL);
        const REAL *P = Pw + (size_t)u * 4 * H * VL;
        for (int b = b0; b < b1; b += KMR) {
            const int mr = b1 - b < KMR ? b1 - b : KMR;
#define BACK4(MR) KSFX(back_rows)(MR, 4, H, dG, P, m, dh, b, j, w)
#define BACK3(MR) KSFX(back_rows)(MR, 3, H, dG, P, m, dh, b, j, w)
#define BACK2(MR) KSFX(back_rows)(MR, 2, H, dG, P, m, dh, b, j, w)
#define BACK1(MR) KSFX(back_rows)(MR, 1, H, dG, P, m, dh, b, j, w)
            switch (nv) {
            case 4: KSFX_ROWS(mr, BACK4) break;
            case 3: KSFX_ROWS(mr, BACK3) break;
            case 2: KSFX_ROWS(mr, BACK2) break;
            default: KSFX_ROWS(mr, BACK1) break;
            }
#undef BACK4
#undef BACK3
#undef BACK2
#undef BACK1
        }
    }
}

/* The sum of a vector's lanes. */
static inline __attribute__((always_inline)) REAL KSFX(hsum)(KSFX(vec) v)
{
    REAL t[VL] __attribute__((aligned(KVB)));
    *(KSFX(vec) *)t = v;
    for (int w = VL / 2; w >= 1; w /= 2)
        for (int q = 0; q < w; q++) t[q] += t[q + w];
    return t[0];
}

/* dh (B, H) rows [b0, b1), units [j0, j1) = dG_t (B, 4H) W_hh, as dot
 * products of dG's rows with w_hh_t's rows (H, 4H; W_hh = w_hh_t^T): for a
 * batch of one, where packing W_hh (a transpose, ~0.2 ms at H = 256) costs
 * more than the product gains from it.  Rows masked out are left alone. */
KATTR static void KSFX(back_dot)(int b0, int b1, int H, const REAL *dG, const REAL *w_hh_t,
                                 const unsigned char *m, REAL *dh, int j0, int j1)
{
    const int K = 4 * H;
    for (int b = b0; b < b1; b++) {
        if (m && !m[b]) continue;
        const REAL *g = dG + (size_t)b * K;
        REAL *out = dh + (size_t)b * H;
        for (int j = j0; j < j1; j += 4) {
            const int n = j1 - j < 4 ? j1 - j : 4;
            const REAL *w = w_hh_t + (size_t)j * K;
            KSFX(vec) a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            int k = 0;
            for (; k + VL <= K; k += VL) {
                const KSFX(vec) gv = *(const KSFX(vu) *)(g + k);
                a0 += gv * *(const KSFX(vu) *)(w + k);
                if (n > 1) a1 += gv * *(const KSFX(vu) *)(w + K + k);
                if (n > 2) a2 += gv * *(const KSFX(vu) *)(w + 2 * (size_t)K + k);
                if (n > 3) a3 += gv * *(const KSFX(vu) *)(w + 3 * (size_t)K + k);
            }
            REAL sum[4] = {KSFX(hsum)(a0), KSFX(hsum)(a1), KSFX(hsum)(a2), KSFX(hsum)(a3)};
            for (int q = 0; q < n; q++) {
                for (int kk = k; kk < K; kk++) sum[q] += g[kk] * w[(size_t)q * K + kk];
                out[j + q] = sum[q];
            }
        }
    }
}

#undef KSFX_ROWS
#undef VL
#undef PW
