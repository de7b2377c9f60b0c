/* Register-tile kernels of the forward pass, for one SIMD width: compiled
 * once per REAL and per instruction set by lstm_template.h.
 *
 * Needs REAL, SFX(name), SFX(step_io), the VM_ constants of lstm_f32.c / lstm_f64.c
 * and, per instruction set,
 *   KVB       vector bytes (64 AVX-512, 32 AVX2, 16 baseline),
 *   KMR       batch rows per register tile,
 *   KACT      activations evaluated together (their state fills the registers),
 *   KINTRIN   1 where this instance may use x86 intrinsics of its width,
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

/* x86 intrinsics of this width: _mm512_*, _mm256_* or _mm_* */
#if CLSTM_X86 && KINTRIN
#if KVB == 64
#define KSFX_MM(op) _mm512_##op
#elif KVB == 32
#define KSFX_MM(op) _mm256_##op
#else
#define KSFX_MM(op) _mm_##op
#endif
typedef float KSFX(mm_ps) __attribute__((vector_size(KVB), may_alias));
typedef double KSFX(mm_pd) __attribute__((vector_size(KVB), may_alias));
#endif

/* m ? a : b, lane by lane (m: all ones or zero per lane, from a comparison) */
static inline __attribute__((always_inline)) KATTR KSFX(vec) KSFX(vsel)(KSFX(vb) m, KSFX(vec) a,
                                                                  KSFX(vec) b)
{
    return (KSFX(vec))(((KSFX(vb))a & m) | ((KSFX(vb))b & ~m));
}

static inline __attribute__((always_inline)) KATTR KSFX(vec) KSFX(vsplat)(REAL v)
{
    return (KSFX(vec)){0} + v;
}

/* max(lo, e) and min(hi, e) lane by lane; NaN in e stays NaN (x86's
 * max/min return their second operand when either is NaN).  One instruction
 * each on x86, where a compare and select took four. */
static inline __attribute__((always_inline)) KATTR KSFX(vec) KSFX(vmax)(REAL lo, KSFX(vec) e)
{
#if CLSTM_X86 && KINTRIN
    if (sizeof(REAL) == 4)
        return (KSFX(vec))KSFX_MM(max_ps)((KSFX(mm_ps))KSFX(vsplat)(lo), (KSFX(mm_ps))e);
    return (KSFX(vec))KSFX_MM(max_pd)((KSFX(mm_pd))KSFX(vsplat)(lo), (KSFX(mm_pd))e);
#else
    return KSFX(vsel)((KSFX(vb))(e < lo), KSFX(vsplat)(lo), e);
#endif
}

static inline __attribute__((always_inline)) KATTR KSFX(vec) KSFX(vmin)(REAL hi, KSFX(vec) e)
{
#if CLSTM_X86 && KINTRIN
    if (sizeof(REAL) == 4)
        return (KSFX(vec))KSFX_MM(min_ps)((KSFX(mm_ps))KSFX(vsplat)(hi), (KSFX(mm_ps))e);
    return (KSFX(vec))KSFX_MM(min_pd)((KSFX(mm_pd))KSFX(vsplat)(hi), (KSFX(mm_pd))e);
#else
    return KSFX(vsel)((KSFX(vb))(e > hi), KSFX(vsplat)(hi), e);
#endif
}

/* Activations of n vectors at once, in place (n and kind constants at every
 * call site): tanh for every vector (kind KSFX_ALL_TANH) or for gate g only
 * (kind KSFX_GATES: v[k] is gate k % 4 of i f g o), sigmoid for the others.
 * Both are one expm1, as in vmath.h: m = expm1(y) with y = -x (sigmoid) or
 * -2|x| (tanh), clamped; sigmoid = 1 / (2 + m), tanh(|x|) = -m / (2 + m).
 * KACT evaluations at a time go stage by stage: one alone is a chain of
 * ~25 dependent operations, and evaluated one after another they left the
 * core idle most of the time (the cell update took ~140 cycles per vector
 * on Zen 3 with AVX2, more than a step's product at K = 50); all of a
 * tile's at once spilled their state to the stack. */
enum { KSFX(GATES) = 1, KSFX(ALL_TANH) = 2 };

/* KSFX(vact) on the n <= KACT vectors v[0 .. n), which are v[k0 ..] of the
 * whole: few enough that each one's state (r, 2^n, p) stays in registers. */
static inline __attribute__((always_inline)) KATTR void KSFX(vact_group)(int n, int kind, int k0,
                                                                          KSFX(vec) *v)
{
    static const REAL coef[] = VM_EXPM1_COEF;
    const int nc = (int)(sizeof coef / sizeof coef[0]);
    const KSFX(vb) sign = (KSFX(vb)){0} + VM_SIGN;
    const KSFX(vec) sh = KSFX(vsplat)(VM_SHIFTER);
    KSFX(vec) r[KACT], two[KACT], p[KACT];
#define KSFX_TANH_AT(k) (kind == KSFX(ALL_TANH) || (k0 + (k)) % 4 == 2)
#pragma GCC unroll 8
    for (int k = 0; k < n; k++) {
        KSFX(vec) e;
        if (KSFX_TANH_AT(k))
            e = KSFX(vmax)(VM_TANH_LO, (KSFX(vec))((KSFX(vb))v[k] | sign) * 2);   /* -2 |x| */
        else
            e = KSFX(vmax)(VM_EXP_LO, KSFX(vmin)(VM_EXP_HI, -v[k]));
        /* e = n ln2 + r, |r| <= ln2/2; two = 2^n from the shifted sum's bits */
        const KSFX(vec) t = e * KSFX(vsplat)(VM_LOG2E) + sh, nn = t - sh;
        two[k] = (KSFX(vec))((((KSFX(vb))t - VM_SHIFT_BITS) + VM_EXP_BIAS) << VM_MANT);
        r[k] = (e - nn * KSFX(vsplat)(VM_LN2_HI)) - nn * KSFX(vsplat)(VM_LN2_LO);
        p[k] = KSFX(vsplat)(coef[0]);
    }
    for (int i = 1; i < nc; i++) {
#pragma GCC unroll 8
        for (int k = 0; k < n; k++) p[k] = p[k] * r[k] + coef[i];
    }
#pragma GCC unroll 8
    for (int k = 0; k < n; k++) {
        const KSFX(vec) m = two[k] * (p[k] * r[k]) + (two[k] - 1);     /* expm1(e) */
        if (KSFX_TANH_AT(k)) {
            const KSFX(vec) t = -m / (2 + m);
            v[k] = (KSFX(vec))(((KSFX(vb))t & ~sign) | ((KSFX(vb))v[k] & sign));
        } else {
            v[k] = KSFX(vsel)((KSFX(vb))(v[k] < VM_EXP_LO), KSFX(vsplat)(0), 1 / (2 + m));
        }
    }
#undef KSFX_TANH_AT
}

static inline __attribute__((always_inline)) KATTR void KSFX(vact)(int n, int kind, KSFX(vec) *v)
{
#pragma GCC unroll 8
    for (int k0 = 0; k0 < n; k0 += KACT)
        KSFX(vact_group)(n - k0 < KACT ? n - k0 : KACT, kind, k0, v + k0);
}

/* The cell update of nr rows from their tiles: x[r][g] holds the
 * pre-activations of gates i f g o (bias and input projection added) and
 * leaves with the activated gates; cp[r] c_{t-1} in; c[r], h[r] out. */
static inline __attribute__((always_inline)) KATTR void KSFX(vcell)(
    int nr, KSFX(vec) x[KMR][4], const KSFX(vec) *cp, KSFX(vec) *c, KSFX(vec) *h)
{
    KSFX(vact)(4 * nr, KSFX(GATES), &x[0][0]);
    KSFX(vec) tc[KMR];
    for (int r = 0; r < nr; r++) tc[r] = c[r] = x[r][1] * cp[r] + x[r][0] * x[r][2];
    KSFX(vact)(nr, KSFX(ALL_TANH), tc);
    for (int r = 0; r < nr; r++) h[r] = x[r][3] * tc[r];
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
 * (ps = PW, bs = VL); backward: nv unit blocks of W_hh (ps = VL, bs = K VL);
 * weight gradients: rows of dG (ps = 4H, bs = VL), not always aligned to a
 * whole vector (VEX loads do not care). */
static inline __attribute__((always_inline)) KATTR void KSFX(tile)(
    int mr, int nv, int zero, int K, const REAL *restrict A, size_t lda,
    const REAL *restrict P, size_t ps, size_t bs, KSFX(vec) acc[KMR][4])
{
    if (zero)
        for (int r = 0; r < mr; r++)
            for (int v = 0; v < nv; v++) acc[r][v] = (KSFX(vec)){0};
    const REAL *p0 = P, *p1 = P + bs, *p2 = P + 2 * bs, *p3 = P + 3 * bs;
    for (int k = 0; k < K; k++) {
        const size_t o = (size_t)k * ps;
        const KSFX(vec) w0 = *(const KSFX(vu) *)(p0 + o);
        KSFX(vec) w1 = w0, w2 = w0, w3 = w0;
        if (nv > 1) w1 = *(const KSFX(vu) *)(p1 + o);
        if (nv > 2) w2 = *(const KSFX(vu) *)(p2 + o);
        if (nv > 3) w3 = *(const KSFX(vu) *)(p3 + o);
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
static inline __attribute__((always_inline)) KATTR void KSFX(proj_rows)(
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
 * into the same tile and the bias is added here).  The cell update runs on
 * the tile's registers for all mr rows at once (KSFX(vcell)); a partial
 * block (w < VL) goes through padded copies so that it still runs as whole
 * vectors. */
static inline __attribute__((always_inline)) KATTR void KSFX(step_rows)(
    int mr, int compact, const SFX(step_io) *s, const REAL *P, int b, int j, int w)
{
    const int H = s->H, I = s->I, full = !compact && w == VL;
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
    if (compact)   /* one vector per row, the gates in quarters: spread them out */
        for (int r = 0; r < mr; r++) {
            REAL t[VL] __attribute__((aligned(KVB))), q4[4][VL] __attribute__((aligned(KVB)));
            *(KSFX(vec) *)t = acc[r][0];
            for (int g = 0; g < 4; g++)
                for (int q = 0; q < VL; q++) q4[g][q] = q < VL / 4 ? t[g * (VL / 4) + q] : 0;
            for (int g = 0; g < 4; g++) acc[r][g] = *(KSFX(vec) *)q4[g];
        }
    /* add what the recurrent product adds to: the rows' input projections,
     * or (fused) the bias; and gather c_{t-1} */
    KSFX(vec) cp[KMR], c[KMR], h[KMR];
    for (int r = 0; r < mr; r++) {
        const size_t row = (size_t)(b + r), o = row * H + j;
        const REAL *add = s->x ? s->bias + j : s->G + row * 4 * H + j;
        if (full) {
            for (int g = 0; g < 4; g++) acc[r][g] += *(const KSFX(vu) *)(add + (size_t)g * H);
            cp[r] = *(const KSFX(vu) *)(s->cp + o);
        } else {
            REAL pa[4][VL] __attribute__((aligned(KVB))), pc[VL] __attribute__((aligned(KVB)));
            for (int q = 0; q < VL; q++) {
                const int in = q < w;
                for (int g = 0; g < 4; g++) pa[g][q] = in ? add[(size_t)g * H + q] : 0;
                pc[q] = in ? s->cp[o + q] : 0;
            }
            for (int g = 0; g < 4; g++) acc[r][g] += *(KSFX(vec) *)pa[g];
            cp[r] = *(KSFX(vec) *)pc;
        }
    }
    KSFX(vcell)(mr, acc, cp, c, h);
    for (int r = 0; r < mr; r++) {
        const size_t row = (size_t)(b + r), o = row * H + j;
        REAL *gout = s->Gout ? s->Gout + row * 4 * H + j : NULL;   /* activated gates, or none */
        REAL *hrow = s->hs + row * s->ldhs + j, *yrow = s->y + row * s->ldy + j;
        REAL *ysep = yrow != hrow ? yrow : NULL;
        if (s->m && !s->m[row]) {    /* padding: state carried, output and gates 0 */
            for (int q = 0; q < w; q++) {
                s->c[o + q] = s->cp[o + q];
                hrow[q] = s->hp ? s->hp[row * s->ldhp + j + q] : 0;
                if (ysep) ysep[q] = 0;
                if (gout)
                    for (int g = 0; g < 4; g++) gout[(size_t)g * H + q] = 0;
            }
            continue;
        }
        if (full) {
            *(KSFX(vu) *)(s->c + o) = c[r];
            *(KSFX(vu) *)hrow = h[r];
            if (ysep) *(KSFX(vu) *)ysep = h[r];
            if (gout)
                for (int g = 0; g < 4; g++) *(KSFX(vu) *)(gout + (size_t)g * H) = acc[r][g];
            continue;
        }
        REAL ga[4][VL] __attribute__((aligned(KVB))), cc[VL] __attribute__((aligned(KVB)));
        REAL hh[VL] __attribute__((aligned(KVB)));
        for (int g = 0; g < 4; g++) *(KSFX(vec) *)ga[g] = acc[r][g];
        *(KSFX(vec) *)cc = c[r];
        *(KSFX(vec) *)hh = h[r];
        for (int q = 0; q < w; q++) {
            if (gout)
                for (int g = 0; g < 4; g++) gout[(size_t)g * H + q] = ga[g][q];
            s->c[o + q] = cc[q];
            hrow[q] = hh[q];
            if (ysep) ysep[q] = hh[q];
        }
    }
}

/* The height of the next register tile with `left` rows to go: KMR, except
 * that a last tile of fewer than KMR/2 rows is avoided by splitting the last
 * KMR + rem rows in two (3 + 1 -> 2 + 2 with AVX2): a one-row tile has too
 * few independent accumulators to keep both FMA units busy. */
static inline int KSFX(tile_rows)(int left)
{
    if (left <= KMR || left >= 2 * KMR || left - KMR >= (KMR + 1) / 2) return left < KMR ? left : KMR;
    return (left + 1) / 2;
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

/* Calls BODY(mr, nv) with both constants: mr up to KMR, nv 1 to 4. */
#define KSFX_ROWS_ARG(mr_var, NV, BODY)                  \
    switch (mr_var) {                                    \
    case 1: BODY(1, NV); break;                          \
    case 2: if (KMR >= 2) { BODY(2, NV); } break;        \
    case 3: if (KMR >= 3) { BODY(3, NV); } break;        \
    case 4: if (KMR >= 4) { BODY(4, NV); } break;        \
    case 5: if (KMR >= 5) { BODY(5, NV); } break;        \
    default: if (KMR >= 6) { BODY(6, NV); } break;       \
    }
#define KSFX_ROWS_NV(mr_var, nv_var, BODY)               \
    switch (nv_var) {                                    \
    case 4: KSFX_ROWS_ARG(mr_var, 4, BODY) break;        \
    case 3: KSFX_ROWS_ARG(mr_var, 3, BODY) break;        \
    case 2: KSFX_ROWS_ARG(mr_var, 2, BODY) break;        \
    default: KSFX_ROWS_ARG(mr_var, 1, BODY) break;       \
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
            for (int b = r0, mr; b < r1; b += mr) {
                mr = KSFX(tile_rows)(r1 - b);
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
        for (int b = b0, mr; b < b1; b += mr) {
            mr = KSFX(tile_rows)(b1 - b);
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

/* Weight gradients where the result is small (it stays in L2 while the
 * k-chunks pass; lstm_template.h decides):
 *   C (M, N) (row stride ldc) = A^T B, or += with acc
 *   A (K, M) row stride lda (x or h_{t-1}: one row per step and batch row),
 *   B (K, N) row stride ldb (dG), N a multiple of VL.
 * BLAS's skinny GEMMs did these at 26-47 GFLOP/s on Zen 3 (M = 50, N = 200,
 * K = 1920: packing the transposed A and C round trips per 256 rows of K);
 * here each k-chunk of B (KC rows) stays in L2 while every row tile of C
 * passes over it, and A's columns are transposed a tile at a time. */
#define KC 256
KATTR static void KSFX(grad_w)(int M, int N, int K, const REAL *A, size_t lda, const REAL *B,
                               size_t ldb, int acc_c, REAL *C, size_t ldc)
{
    REAL at[KMR * KC] __attribute__((aligned(KVB)));
    if (K <= 0 && !acc_c)   /* an empty sum (one step: no h_{t-1} but h0) */
        for (int m = 0; m < M; m++) memset(C + (size_t)m * ldc, 0, (size_t)N * sizeof(REAL));
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC, zero = k0 == 0 && !acc_c;
        for (int m = 0, mr; m < M; m += mr) {
            mr = KSFX(tile_rows)(M - m);
            for (int kk = 0; kk < kc; kk++)          /* A^T's rows m .. m + mr, this chunk */
                for (int r = 0; r < mr; r++) at[r * KC + kk] = A[(size_t)(k0 + kk) * lda + m + r];
            for (int n = 0; n < N; n += 4 * VL) {
                const int nv = (N - n) / VL < 4 ? (N - n) / VL : 4;
                const REAL *P = B + (size_t)k0 * ldb + n;
                REAL *c = C + (size_t)m * ldc + n;
                KSFX(vec) t[KMR][4];
                if (!zero)
                    for (int r = 0; r < mr; r++)
                        for (int v = 0; v < nv; v++) t[r][v] = *(KSFX(vu) *)(c + r * ldc + v * VL);
#define GW(MR, NV) KSFX(tile)(MR, NV, zero, kc, at, KC, P, ldb, VL, t)
                KSFX_ROWS_NV(mr, nv, GW)
#undef GW
                for (int r = 0; r < mr; r++)
                    for (int v = 0; v < nv; v++) *(KSFX(vu) *)(c + r * ldc + v * VL) = t[r][v];
            }
        }
    }
}
#undef KC

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
static inline __attribute__((always_inline)) KATTR void KSFX(back_rows)(
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
        for (int b = b0, mr; b < b1; b += mr) {
            mr = KSFX(tile_rows)(b1 - b);
#define BACK(MR, NV) KSFX(back_rows)(MR, NV, H, dG, P, m, dh, b, j, w)
            KSFX_ROWS_NV(mr, nv, BACK)
#undef BACK
        }
    }
}

/* The sum of a vector's lanes. */
static inline __attribute__((always_inline)) KATTR REAL KSFX(hsum)(KSFX(vec) v)
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
#undef KSFX_ROWS_ARG
#undef KSFX_ROWS_NV
#undef KSFX_MM
#undef VL
#undef PW
