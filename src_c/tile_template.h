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
#define KQ (VL >= 4 ? VL / 4 : 1)   /* lanes per quarter of a compact vector */

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

/* The first n <= VL lanes of src (the others 0), and the first n lanes of
 * v stored to dst: a row's partial last vector.  AVX-512 has masked
 * loads and stores; elsewhere through a copy (a memcpy call each). */
static inline __attribute__((always_inline)) KATTR KSFX(vec) KSFX(vload_n)(const REAL *src, int n)
{
#if CLSTM_X86 && KINTRIN && KVB == 64
    const __mmask16 k = (__mmask16)((1u << n) - 1);
    if (sizeof(REAL) == 4) return (KSFX(vec))_mm512_maskz_loadu_ps(k, src);
    return (KSFX(vec))_mm512_maskz_loadu_pd((__mmask8)k, src);
#else
    REAL e[VL] __attribute__((aligned(KVB))) = {0};
    memcpy(e, src, (size_t)n * sizeof(REAL));
    return *(KSFX(vec) *)e;
#endif
}

static inline __attribute__((always_inline)) KATTR void KSFX(vstore_n)(REAL *dst, KSFX(vec) v, int n)
{
#if CLSTM_X86 && KINTRIN && KVB == 64
    const __mmask16 k = (__mmask16)((1u << n) - 1);
    if (sizeof(REAL) == 4) _mm512_mask_storeu_ps(dst, k, (__m512)(KSFX(mm_ps))v);
    else _mm512_mask_storeu_pd(dst, (__mmask8)k, (__m512d)(KSFX(mm_pd))v);
#else
    REAL e[VL] __attribute__((aligned(KVB)));
    *(KSFX(vec) *)e = v;
    memcpy(dst, e, (size_t)n * sizeof(REAL));
#endif
}

/* *dst = v without bringing dst's line into the cache (dst KVB-aligned):
 * for the training forward's gates, which the backward reads only after the
 * whole sequence (KSFX(step_rows)). */
static inline __attribute__((always_inline)) KATTR void KSFX(vstream)(REAL *dst, KSFX(vec) v)
{
#if CLSTM_X86 && KINTRIN
    if (sizeof(REAL) == 4) KSFX_MM(stream_ps)((float *)dst, (KSFX(mm_ps))v);
    else KSFX_MM(stream_pd)((double *)dst, (KSFX(mm_pd))v);
#else
    *(KSFX(vec) *)dst = v;
#endif
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
 * (kind KSFX_GATES: v[k] is gate k % 4 of i f g o) or for quarter 2 of each
 * vector (kind KSFX_QUARTERS: compact [i | f | g | o]), sigmoid for the others.
 * Both are one expm1, as in vmath.h: m = expm1(y) with y = -x (sigmoid) or
 * -2|x| (tanh), clamped; sigmoid = 1 / (2 + m), tanh(|x|) = -m / (2 + m).
 * KACT evaluations at a time go stage by stage: one alone is a chain of
 * ~25 dependent operations, and evaluated one after another they left the
 * core idle most of the time (the cell update took ~140 cycles per vector
 * on Zen 3 with AVX2, more than a step's product at K = 50); all of a
 * tile's at once spilled their state to the stack. */
enum { KSFX(GATES) = 1, KSFX(ALL_TANH) = 2, KSFX(QUARTERS) = 3 };

/* Lane constants: lane l's index, and all ones in the lanes of quarter 2
 * (gate g of a compact vector [i | f | g | o], KSFX(compact)). */
static inline __attribute__((always_inline)) KATTR KSFX(vb) KSFX(iota)(void)
{
    KSFX(vb) v;
    for (int l = 0; l < VL; l++) v[l] = (VM_UINT)l;
    return v;
}

static inline __attribute__((always_inline)) KATTR KSFX(vb) KSFX(quarter2)(void)
{
    return (KSFX(vb))(KSFX(iota)() / (VM_UINT)KQ == 2);
}

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
    const KSFX(vb) q2 = KSFX(quarter2)();   /* QUARTERS: the tanh lanes */
#define KSFX_TANH_AT(k) (kind == KSFX(ALL_TANH) || (kind == KSFX(GATES) && (k0 + (k)) % 4 == 2))
#pragma GCC unroll 8
    for (int k = 0; k < n; k++) {
        KSFX(vec) e;
        const KSFX(vec) et = KSFX(vmax)(VM_TANH_LO, (KSFX(vec))((KSFX(vb))v[k] | sign) * 2);   /* -2 |x| */
        const KSFX(vec) es = KSFX(vmax)(VM_EXP_LO, KSFX(vmin)(VM_EXP_HI, -v[k]));
        if (kind == KSFX(QUARTERS)) e = KSFX(vsel)(q2, et, es);
        else e = KSFX_TANH_AT(k) ? et : es;
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
        if (kind == KSFX(QUARTERS)) {   /* both from one division: -m or 1 over 2 + m */
            const KSFX(vec) d = KSFX(vsel)(q2, -m, KSFX(vsplat)(1)) / (2 + m);
            const KSFX(vec) t = (KSFX(vec))(((KSFX(vb))d & ~sign) | ((KSFX(vb))v[k] & sign));
            const KSFX(vec) sg = KSFX(vsel)((KSFX(vb))(v[k] < VM_EXP_LO), KSFX(vsplat)(0), d);
            v[k] = KSFX(vsel)(q2, t, sg);
        } else if (KSFX_TANH_AT(k)) {
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
    /* row by row of the sources, each read once in order: by blocks, every
     * row's 4 lines of a block sat a row (4H) apart, and the pack waited on
     * them (~100 us a thread for (256, 1024) twice, 7.7% of a fwd+bwd at
     * (50,1,256,256)) */
    const int K = K1 + K2, Q = VL / 4;
    for (int k = 0; k < K; k++) {
        const REAL *row = k < K1 ? src1 + (size_t)k * 4 * H : src2 + (size_t)(k - K1) * 4 * H;
        for (int u = u0; u < u1; u++) {
            const int j = u * VL, w = H - j < VL ? H - j : VL;
            const int cp = compact && KSFX(compact)(w);
            const int gw = cp ? Q : VL;   /* lanes per gate */
            REAL *p = dst + (size_t)u * K * PW + (size_t)k * (cp ? VL : PW);
            const REAL *s = row + j;
            if (w == VL) {
                for (int g = 0; g < 4; g++) memcpy(p + g * VL, s + (size_t)g * H, VL * sizeof(REAL));
                continue;
            }
            for (int g = 0; g < 4; g++) {
                for (int q = 0; q < w; q++) p[g * gw + q] = s[(size_t)g * H + q];
                for (int q = w; q < gw; q++) p[g * gw + q] = 0;
            }
        }
    }
}

/* acc[r][v] (mr rows, nv vectors) = A (mr, K) x P (+= unless zero), where
 * A's element (r, k) is at A + r lda + k ka and vector v of row k of P is at
 * P + v bs + k ps.  mr and nv are constants at every call site, so acc
 * lives in registers.  Forward: A rows of x or h (ka = 1), P a gate panel
 * (ps = PW, bs = VL); backward: nv unit blocks of W_hh (ps = VL, bs = K VL);
 * the backward's other products (KSFX(gemm)): A read in place either way,
 * P a packed panel of B. */
static inline __attribute__((always_inline)) KATTR void KSFX(tile)(
    int mr, int nv, int zero, int K, const REAL *restrict A, size_t lda, size_t ka,
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
        const REAL *a_k = A + (size_t)k * ka;
        for (int r = 0; r < mr; r++) {
            const REAL a = a_k[r * lda];
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
    KSFX(tile)(mr, 4, 1, K, X, K, 1, P, PW, VL, acc);
    for (int r = 0; r < mr; r++)
        for (int g = 0; g < 4; g++) {
            REAL *out = G + (size_t)r * 4 * H + (size_t)g * H + j;
            const REAL *bg = bias + (size_t)g * H + j;
            if (w == VL) *(KSFX(vu) *)out = acc[r][g] + *(const KSFX(vu) *)bg;
            else KSFX(vstore_n)(out, acc[r][g] + KSFX(vload_n)(bg, w), w);
        }
}

/* A row masked out of a step (padding), units j .. j + w: the state is
 * carried (c_t = c_{t-1}, h_t = h_{t-1}), the output and the gates are 0. */
static inline __attribute__((always_inline)) KATTR void KSFX(skip_units)(
    const SFX(step_io) *s, size_t row, int j, int w)
{
    const int H = s->H;
    const size_t o = row * H + j;
    REAL *hrow = s->hs + row * s->ldhs + j, *yrow = s->y + row * s->ldy + j;
    REAL *gout = s->Gout ? s->Gout + row * 4 * H + j : NULL;
    for (int q = 0; q < w; q++) {
        s->c[o + q] = s->cp[o + q];
        hrow[q] = s->hp ? s->hp[row * s->ldhp + j + q] : 0;
        if (yrow != hrow) yrow[q] = 0;
        if (gout)
            for (int g = 0; g < 4; g++) gout[(size_t)g * H + q] = 0;
    }
}

/* A step's product for rows [b, b + mr) of one unit block, into the tile's
 * registers: acc = [x_t h_{t-1}] P, fused, or h_{t-1} P (nv vectors per
 * panel row of stride ps). */
static inline __attribute__((always_inline)) KATTR void KSFX(step_acc)(
    int mr, int nv, const SFX(step_io) *s, const REAL *P, int ps, int b, KSFX(vec) acc[KMR][4])
{
    const int I = s->I;
    if (s->x)
        KSFX(tile)(mr, nv, 1, I, s->x + (size_t)b * I, I, 1, P, ps, VL, acc);
    if (s->hp)
        KSFX(tile)(mr, nv, !s->x, s->H, s->hp + (size_t)b * s->ldhp, s->ldhp, 1,
                   s->x ? P + (size_t)I * ps : P, ps, VL, acc);
    else if (!s->x)
        for (int r = 0; r < mr; r++)
            for (int g = 0; g < nv; g++) acc[r][g] = (KSFX(vec)){0};
}

/* v's lanes rotated down by g quarters: quarter g of v in quarter 0 (a
 * permute; g < 0 rotates up). */
static inline __attribute__((always_inline)) KATTR KSFX(vec) KSFX(quarter_down)(KSFX(vec) v, int g)
{
    return __builtin_shuffle(v, (KSFX(iota)() + (VM_UINT)(g * KQ)) & (VM_UINT)(VL - 1));
}

/* w <= VL/4 units' gates of a row, src[g stride + q], as one vector in
 * quarters [i | f | g | o] (zero past w in each). */
static inline __attribute__((always_inline)) KATTR KSFX(vec) KSFX(load_quarters)(
    const REAL *src, size_t stride, int w)
{
    const KSFX(vb) quarter = KSFX(iota)() / (VM_UINT)KQ;
    KSFX(vec) v = KSFX(vload_n)(src, w);
    for (int g = 1; g < 4; g++)
        v = KSFX(vsel)((KSFX(vb))(quarter == (VM_UINT)g),
                       KSFX(quarter_down)(KSFX(vload_n)(src + g * stride, w), -g), v);
    return v;
}

/* KSFX(step_rows) for a compact last block (w <= VL/4 units, one vector per
 * row: KSFX(compact)).  The gates stay in their quarters through the
 * activations (one vector, tanh in quarter 2), and f, g, o are moved down
 * to quarter 0 by permutes for the cell update: spread into four vectors,
 * as the full blocks are, this block's activations and copies cost 18-23%
 * of a step at H = 50 for 1/13 of its product. */
static inline __attribute__((always_inline)) KATTR void KSFX(step_compact_rows)(
    int mr, const SFX(step_io) *s, const REAL *P, int b, int j, int w)
{
    const int H = s->H;
    KSFX(vec) acc[KMR][4], a[KMR], cp[KMR], c[KMR], h[KMR];
    KSFX(step_acc)(mr, 1, s, P, VL, b, acc);
    const KSFX(vec) bias = s->x ? KSFX(load_quarters)(s->bias + j, (size_t)H, w) : (KSFX(vec)){0};
    for (int r = 0; r < mr; r++) {
        const size_t row = (size_t)(b + r);
        a[r] = acc[r][0] + (s->x ? bias : KSFX(load_quarters)(s->G + row * 4 * H + j, (size_t)H, w));
        cp[r] = KSFX(vload_n)(s->cp + row * H + j, w);
    }
    KSFX(vact)(mr, KSFX(QUARTERS), a);
    for (int r = 0; r < mr; r++) {
        h[r] = c[r] = KSFX(quarter_down)(a[r], 1) * cp[r] + a[r] * KSFX(quarter_down)(a[r], 2);
    }
    KSFX(vact)(mr, KSFX(ALL_TANH), h);
    for (int r = 0; r < mr; r++) {
        const size_t row = (size_t)(b + r), o = row * H + j;
        REAL *hrow = s->hs + row * s->ldhs + j, *yrow = s->y + row * s->ldy + j;
        REAL *gout = s->Gout ? s->Gout + row * 4 * H + j : NULL;   /* activated gates, or none */
        if (s->m && !s->m[row]) {
            KSFX(skip_units)(s, row, j, w);
            continue;
        }
        h[r] *= KSFX(quarter_down)(a[r], 3);
        KSFX(vstore_n)(s->c + o, c[r], w);
        KSFX(vstore_n)(hrow, h[r], w);
        if (yrow != hrow) KSFX(vstore_n)(yrow, h[r], w);
        if (gout)
            for (int g = 0; g < 4; g++)
                KSFX(vstore_n)(gout + (size_t)g * H, KSFX(quarter_down)(a[r], g), w);
    }
}

/* One step for rows [b, b + mr) and unit block u (units j .. j + w).  P: the
 * block's panel of W_hh^T or, fused, of [W_ih^T; W_hh^T] (then x_t comes
 * into the same tile and the bias is added here).  The cell update runs on
 * the tile's registers for all mr rows at once (KSFX(vcell)); a partial
 * block (w < VL) loads and stores its rows' first w lanes (KSFX(vload_n),
 * KSFX(vstore_n)) and still runs as whole vectors. */
static inline __attribute__((always_inline)) KATTR void KSFX(step_rows)(
    int mr, const SFX(step_io) *s, const REAL *P, int b, int j, int w)
{
    const int H = s->H, full = w == VL;
    KSFX(vec) acc[KMR][4];
    KSFX(step_acc)(mr, 4, s, P, PW, b, acc);
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
            for (int g = 0; g < 4; g++) acc[r][g] += KSFX(vload_n)(add + (size_t)g * H, w);
            cp[r] = KSFX(vload_n)(s->cp + o, w);
        }
    }
    KSFX(vcell)(mr, acc, cp, c, h);
    for (int r = 0; r < mr; r++) {
        const size_t row = (size_t)(b + r), o = row * H + j;
        REAL *gout = s->Gout ? s->Gout + row * 4 * H + j : NULL;   /* activated gates, or none */
        REAL *hrow = s->hs + row * s->ldhs + j, *yrow = s->y + row * s->ldy + j;
        REAL *ysep = yrow != hrow ? yrow : NULL;
        if (s->m && !s->m[row]) {
            KSFX(skip_units)(s, row, j, w);
            continue;
        }
        if (full) {
            *(KSFX(vu) *)(s->c + o) = c[r];
            *(KSFX(vu) *)hrow = h[r];
            if (ysep) *(KSFX(vu) *)ysep = h[r];
            if (gout && s->stream)
                for (int g = 0; g < 4; g++) KSFX(vstream)(gout + (size_t)g * H, acc[r][g]);
            else if (gout)
                for (int g = 0; g < 4; g++) *(KSFX(vu) *)(gout + (size_t)g * H) = acc[r][g];
            continue;
        }
        KSFX(vstore_n)(s->c + o, c[r], w);
        KSFX(vstore_n)(hrow, h[r], w);
        if (ysep) KSFX(vstore_n)(ysep, h[r], w);
        if (gout)
            for (int g = 0; g < 4; g++) KSFX(vstore_n)(gout + (size_t)g * H, acc[r][g], w);
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
#define STEP(MR) KSFX(step_rows)(MR, s, P, b, j, w)
#define STEPC(MR) KSFX(step_compact_rows)(MR, s, P, b, j, w)
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

/* The backward's weight gradients after the recurrence (lstm_template.h),
 * on the tile kernel with B's columns packed a panel (4 vectors) at a time:
 *   C (M, N) (row stride ldc) = op(A) B, or += with acc_c
 *   op(A) (M, K): element (m, k) at A + m am + k ak, read in place (the
 *      transposed x or h_{t-1}: am = 1, ak = their row stride, one k's mr
 *      values in one cache line)
 *   B (K, N): rows of dG, row stride bk.
 * A panel of B (kc <= KSFX_KC rows) is copied to a contiguous, zero-padded
 * buffer once and every row tile of C runs over it from L2: read in place,
 * dG's rows 2 KB or more apart fall in few cache sets (the earlier version
 * of this kernel lost to BLAS there). */
#define KSFX_KC CLSTM_GRAD_CHUNK

/* bp (kc, PW) = B's rows [0, kc) (stride bk), columns [0, nw), zero past
 * nw; colsum (nw), if not NULL, += the column sums (db comes free with dG's
 * panels). */
static inline __attribute__((always_inline)) KATTR void KSFX(pack_panel)(
    int kc, int nw, const REAL *B, size_t bk, REAL *bp, REAL *colsum)
{
    const int nv = (nw + VL - 1) / VL, nfull = nw / VL, tail = nw - nfull * VL;
    KSFX(vec) sum[4] = {{0}};
    for (int k = 0; k < kc; k++) {   /* whole vectors, the last partial one masked */
        KSFX(vec) *d = (KSFX(vec) *)(bp + (size_t)k * PW);
        const REAL *src = B + (size_t)k * bk;
        for (int v = 0; v < nfull; v++) {
            d[v] = *(const KSFX(vu) *)(src + v * VL);
            sum[v] += d[v];
        }
        if (tail) {
            d[nfull] = KSFX(vload_n)(src + nfull * VL, tail);
            sum[nfull] += d[nfull];
        }
    }
    if (colsum)
        for (int v = 0; v < nv; v++) {
            REAL e[VL] __attribute__((aligned(KVB)));
            *(KSFX(vec) *)e = sum[v];
            for (int q = 0; q < VL && v * VL + q < nw; q++) colsum[v * VL + q] += e[q];
        }
}

/* bp (kc, PW) = B's rows [0, kc), columns [0, nw), zero past nw, from B
 * stored by columns (element (k, n) at B + k + n bn): W_ih (4H, I) from
 * w_ih_t (I, 4H) for dX.  Columns 8 at a time, few enough streams to stay
 * in L1 when they are 4 KB apart (w_ih_t's rows at H = 256), each row of
 * the 64 KB panel written a line at a time. */
static inline __attribute__((always_inline)) KATTR void KSFX(pack_panel_t)(
    int kc, int nw, const REAL *B, size_t bn, REAL *bp)
{
    const int nv = (nw + VL - 1) / VL;
    for (int q0 = 0; q0 < nw; q0 += 8) {
        const int qn = nw - q0 < 8 ? nw - q0 : 8;
        for (int k = 0; k < kc; k++)
            for (int q = 0; q < qn; q++) bp[(size_t)k * PW + q0 + q] = B[(size_t)(q0 + q) * bn + k];
    }
    if (nw < nv * VL)
        for (int k = 0; k < kc; k++)
            for (int n = nw; n < nv * VL; n++) bp[(size_t)k * PW + n] = 0;
}

/* One register tile of C (mr rows, nv vectors, nw columns in all) =
 * op(A) bp, or += unless zero; mr and nv are constants at every call site,
 * so the tile goes from the accumulators straight to C.  C is added after
 * the products rather than loaded before them, so its lines (prefetched by
 * then) never hold up the first multiply-adds. */
static inline __attribute__((always_inline)) KATTR void KSFX(ctile)(
    int mr, int nv, int zero, int kc, int nw, const REAL *A, size_t am, size_t ak,
    const REAL *bp, REAL *c, size_t ldc)
{
    const int full = nw == nv * VL;
    KSFX(vec) t[KMR][4];
    KSFX(tile)(mr, nv, 1, kc, A, am, ak, bp, PW, VL, t);
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) {
            REAL *o = c + r * ldc + v * VL;
            if (full || v < nv - 1) {
                *(KSFX(vu) *)o = zero ? t[r][v] : t[r][v] + *(const KSFX(vu) *)o;
            } else {
                const int n = nw - v * VL;
                KSFX(vstore_n)(o, zero ? t[r][v] : t[r][v] + KSFX(vload_n)(o, n), n);
            }
        }
}

/* C (M, nw) = op(A) (M, kc) bp (kc, nw), or += unless zero: every row tile
 * over one packed panel (nw <= PW). */
static inline __attribute__((always_inline)) KATTR void KSFX(panel_rows)(
    int M, int kc, int nw, const REAL *A, size_t am, size_t ak, const REAL *bp, int zero,
    REAL *C, size_t ldc)
{
    const int nv = (nw + VL - 1) / VL;
    for (int m = 0, mr; m < M; m += mr) {
        mr = KSFX(tile_rows)(M - m);
        const REAL *Am = A + (size_t)m * am;
        REAL *c = C + (size_t)m * ldc;
        /* the next tile's rows of C, which lie 4H apart (dW) and in L3 by
         * then: fetched during this tile rather than at its start */
        for (int r = mr; r < 2 * mr && m + r < M; r++)
            for (int v = 0; v < nv; v++) __builtin_prefetch(c + r * ldc + v * VL, 1, 3);
#define PANEL_TILE(MR, NV) KSFX(ctile)(MR, NV, zero, kc, nw, Am, am, ak, bp, c, ldc)
        KSFX_ROWS_NV(mr, nv, PANEL_TILE)
#undef PANEL_TILE
    }
}

/* C = op(A) B (+= with acc_c), as above; B by rows (bn = 1: element
 * (k, n) at B + k bk + n) or by columns (bk = 1: at B + k + n bn).  The
 * panel buffer lives on the thread's stack: KSFX_KC x PW elements, 64 KB
 * at most. */
KATTR static void KSFX(gemm)(int M, int N, int K, const REAL *A, size_t am, size_t ak,
                             const REAL *B, size_t bk, size_t bn, int acc_c, REAL *C,
                             size_t ldc)
{
    REAL bp[KSFX_KC * PW] __attribute__((aligned(64)));
    if (K <= 0 && !acc_c)   /* an empty sum */
        for (int m = 0; m < M; m++) memset(C + (size_t)m * ldc, 0, (size_t)N * sizeof(REAL));
    for (int k0 = 0; k0 < K; k0 += KSFX_KC) {
        const int kc = K - k0 < KSFX_KC ? K - k0 : KSFX_KC;
        for (int n0 = 0; n0 < N; n0 += PW) {
            const int nw = N - n0 < PW ? N - n0 : PW;
            const REAL *b = B + (size_t)k0 * bk + (size_t)n0 * bn;
            if (bn == 1) KSFX(pack_panel)(kc, nw, b, bk, bp, NULL);
            else KSFX(pack_panel_t)(kc, nw, b, bn, bp);
            KSFX(panel_rows)(M, kc, nw, A + (size_t)k0 * ak, am, ak, bp, k0 == 0 && !acc_c,
                             C + n0, ldc);
        }
    }
}

/* The weight gradients of columns [c0, c1) of 4H (c0 a multiple of VL),
 * one pass over dG's rows: each panel of dG packed once serves both
 *   dW_ih^T (I, 4H) = X^T (I, TB) dG (TB, 4H)   and
 *   dW_hh^T (H, 4H) = Hp^T dG over the rows [k_lo, k_hi) of dG that have a
 *       h_{t-1} in hp (row k's at hp + (k - k_lo) ldh);
 * db (4H) = dG's column sums.  The caller adds h0's term. */
KATTR static void KSFX(weight_grads)(int TB, int I, int H, const REAL *dG, const REAL *x,
                                     const REAL *hp, size_t ldh, int k_lo, int k_hi, int c0,
                                     int c1, REAL *dw_ih_t, REAL *dw_hh_t, REAL *db)
{
    REAL bp[KSFX_KC * PW] __attribute__((aligned(64)));
    const size_t G4 = 4 * (size_t)H;
    if (TB <= 0)
        for (int m = 0; m < I; m++) memset(dw_ih_t + m * G4 + c0, 0, (size_t)(c1 - c0) * sizeof(REAL));
    if (db) memset(db + c0, 0, (size_t)(c1 - c0) * sizeof(REAL));
    /* dW_hh is stored by the first chunk with rows of h_{t-1}, not zeroed
     * and then added to: zeroing was a pass over it (1.9-3.8% of a fwd+bwd
     * at (50,1,256,256)) */
    int hh_first = 1;
    for (int k0 = 0; k0 < TB; k0 += KSFX_KC) {
        const int kc = TB - k0 < KSFX_KC ? TB - k0 : KSFX_KC;
        const int h0k = k0 > k_lo ? k0 : k_lo, h1k = k0 + kc < k_hi ? k0 + kc : k_hi;
        for (int n0 = c0; n0 < c1; n0 += PW) {
            const int nw = c1 - n0 < PW ? c1 - n0 : PW;
            KSFX(pack_panel)(kc, nw, dG + (size_t)k0 * G4 + n0, G4, bp, db ? db + n0 : NULL);
            KSFX(panel_rows)(I, kc, nw, x + (size_t)k0 * I, 1, I, bp, k0 == 0, dw_ih_t + n0, G4);
            if (h1k > h0k)
                KSFX(panel_rows)(H, h1k - h0k, nw, hp + (size_t)(h0k - k_lo) * ldh, 1, ldh,
                                 bp + (size_t)(h0k - k0) * PW, hh_first, dw_hh_t + n0, G4);
        }
        if (h1k > h0k) hh_first = 0;
    }
    if (hh_first)   /* no step had a predecessor: an empty sum */
        for (int m = 0; m < H; m++) memset(dw_hh_t + m * G4 + c0, 0, (size_t)(c1 - c0) * sizeof(REAL));
}

/* r (VL rows of VL lanes) transposed in place: lane l of row i <-> lane i
 * of row l, by log2(VL) rounds that swap the off-diagonal s x s blocks of
 * every 2s x 2s block (two-source shuffles, constant masks once unrolled). */
static inline __attribute__((always_inline)) KATTR void KSFX(transpose)(KSFX(vec) r[VL])
{
    const KSFX(vb) iota = KSFX(iota)();
#pragma GCC unroll 8
    for (int s = VL / 2; s >= 1; s /= 2) {
        const KSFX(vb) hi = (KSFX(vb))((iota & (VM_UINT)s) != 0);   /* all ones where lane l has bit s */
        const KSFX(vb) ma = iota + (hi & (VM_UINT)(VL - s));          /* (l & s) ? b[l - s] : a[l] */
        const KSFX(vb) mb = iota + (hi & (VM_UINT)VL) + (~hi & (VM_UINT)s);   /* (l & s) ? b[l] : a[l + s] */
#pragma GCC unroll 16
        for (int i = 0; i < VL; i++) {
            if (i & s) continue;
            const KSFX(vec) a = r[i], b = r[i + s];
            r[i] = __builtin_shuffle(a, b, ma);
            r[i + s] = __builtin_shuffle(a, b, mb);
        }
    }
}

/* Backward: packs the unit blocks [u0, u1) of W_hh (4H, H), the transpose
 * of w_hh_t (H, 4H), one block after another: block u at dst + u 4H VL,
 * row k = W_hh(k, u VL .. u VL + VL), zero past unit H. */
KATTR static void KSFX(pack_units)(int H, const REAL *w_hh_t, int u0, int u1, REAL *dst)
{
    const int K = 4 * H;
    for (int u = u0; u < u1; u++) {
        const int j = u * VL, w = H - j < VL ? H - j : VL;
        REAL *p = dst + (size_t)u * K * VL;
        if (KSFX(compact)(w)) {   /* KSFX(back_compact_rows)'s layout, H rows */
            for (int kk = 0; kk < H; kk++, p += VL)
                for (int l = 0; l < VL; l++)
                    p[l] = l / 4 < w ? w_hh_t[(size_t)(j + l / 4) * K + 4 * kk + l % 4] : 0;
            continue;
        }
        /* VL x VL tiles transposed in registers: element by element, the
         * pack read VL rows 4H apart for every k (~130 us a thread for
         * H = 256, more than the dot products it would have saved at B = 1) */
        int k = 0;
        for (; k + VL <= K; k += VL, p += VL * VL) {
            KSFX(vec) r[VL];
            for (int q = 0; q < VL; q++)
                r[q] = q < w ? *(const KSFX(vu) *)(w_hh_t + (size_t)(j + q) * K + k)
                             : (KSFX(vec)){0};
            KSFX(transpose)(r);
            for (int q = 0; q < VL; q++) *(KSFX(vu) *)(p + q * VL) = r[q];
        }
        for (; k < K; k++, p += VL) {
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
    KSFX(tile)(mr, nv, 1, K, dG + (size_t)b * K, K, 1, P, VL, (size_t)K * VL, acc);
    for (int r = 0; r < mr; r++) {
        if (m && !m[b + r]) continue;
        REAL *out = dh + (size_t)(b + r) * H + j;
        for (int v = 0; v < nv; v++)
            if ((v + 1) * VL <= w) *(KSFX(vu) *)(out + v * VL) = acc[r][v];
            else KSFX(vstore_n)(out + v * VL, acc[r][v], w - v * VL);
    }
}

/* nk vectors of one row of KSFX(cell_back), starting at unit j (the last
 * may be partial: units up to j1), the tanh of c_t for all of them at once. */
static inline __attribute__((always_inline)) KATTR void KSFX(cell_back_vecs)(
    int nk, int H, int j, int j1, REAL *g, const REAL *c, const REAL *cp, const REAL *dy,
    const REAL *dhr, REAL *dc)
{
    KSFX(vec) tc[KACT];
#define KSFX_LD(p, k) (j + (k) * VL + VL <= j1 ? *(const KSFX(vu) *)((p) + j + (k) * VL) \
                                               : KSFX(vload_n)((p) + j + (k) * VL, j1 - j - (k) * VL))
#define KSFX_ST(p, k, v) do { if (j + (k) * VL + VL <= j1) *(KSFX(vu) *)((p) + j + (k) * VL) = (v); \
                              else KSFX(vstore_n)((p) + j + (k) * VL, (v), j1 - j - (k) * VL); } while (0)
    for (int k = 0; k < nk; k++) tc[k] = KSFX_LD(c, k);
    KSFX(vact)(nk, KSFX(ALL_TANH), tc);
    for (int k = 0; k < nk; k++) {
        const KSFX(vec) i = KSFX_LD(g, k), f = KSFX_LD(g + H, k), gg = KSFX_LD(g + 2 * H, k);
        const KSFX(vec) o = KSFX_LD(g + 3 * H, k), t = tc[k];
        const KSFX(vec) dh = dy ? KSFX_LD(dy, k) + KSFX_LD(dhr, k) : KSFX_LD(dhr, k);
        const KSFX(vec) dct = KSFX_LD(dc, k) + dh * o * (1 - t * t);
        KSFX_ST(g + 3 * H, k, dh * t * o * (1 - o));
        KSFX_ST(g, k, dct * gg * i * (1 - i));
        KSFX_ST(g + 2 * H, k, dct * i * (1 - gg * gg));
        KSFX_ST(g + H, k, dct * KSFX_LD(cp, k) * f * (1 - f));
        KSFX_ST(dc, k, dct * f);
    }
#undef KSFX_LD
#undef KSFX_ST
}

/* The backward's cell pass of one step, rows [b0, b1), units [j0, j1):
 * G (B, 4H) activated gates in, the gates' pre-activation gradients dG
 * out; c, cp (B, H) c_t and c_{t-1}; dy (B, lddy) dL/dh_t from the output
 * or NULL (none);
 * dhr (B, H) dL/dh_t through h_{t+1}; dc (B, H) dL/dc_t in, dL/dc_{t-1}
 * out.  A row masked out (m[b] = 0) gets dG = 0 and keeps dc.  Whole
 * vectors with tanh(c_t) a group at a time (KSFX(vact)): the scalar loop
 * it replaces ran a partial vector's units one by one (at H = 50, 2 units
 * in scalar cost about as much as the 48 in vectors). */
KATTR static void KSFX(cell_back)(int b0, int b1, int H, int j0, int j1, REAL *G,
                                  const REAL *c, const REAL *cp, const REAL *dy, size_t lddy,
                                  REAL *dhr, REAL *dc, const unsigned char *m)
{
    const int nv = (j1 - j0 + VL - 1) / VL;
    for (int b = b0; b < b1; b++) {
        REAL *g = G + (size_t)b * 4 * H;
        if (m && !m[b]) {   /* no gradient through a skipped step's gates */
            for (int q = 0; q < 4; q++) memset(g + (size_t)q * H + j0, 0, (size_t)(j1 - j0) * sizeof(REAL));
            continue;
        }
        const size_t o = (size_t)b * H;
        for (int v0 = 0; v0 < nv; v0 += KACT) {
            const int nk = nv - v0 < KACT ? nv - v0 : KACT, j = j0 + v0 * VL;
#define CELL(NK) KSFX(cell_back_vecs)(NK, H, j, j1, g, c + o, cp + o, dy ? dy + b * lddy : NULL, \
                                      dhr + o, dc + o)
            switch (nk) {
            case 1: CELL(1); break;
            case 2: CELL(2); break;
            case 3: CELL(3); break;
            case 4: CELL(4); break;
            case 5: if (KACT >= 5) { CELL(5); } break;
            case 6: if (KACT >= 6) { CELL(6); } break;
            case 7: if (KACT >= 7) { CELL(7); } break;
            default: if (KACT >= 8) { CELL(8); } break;
            }
#undef CELL
        }
    }
}

/* p[0 .. 4) in every group of 4 lanes. */
static inline __attribute__((always_inline)) KATTR KSFX(vec) KSFX(bcast4)(const REAL *p)
{
#if CLSTM_X86 && KINTRIN && KVB == 64
    if (sizeof(REAL) == 4) return (KSFX(vec))_mm512_broadcast_f32x4(_mm_loadu_ps((const float *)p));
    return (KSFX(vec))_mm512_broadcast_f64x4(_mm256_loadu_pd((const double *)p));
#elif CLSTM_X86 && KINTRIN && KVB == 32
    if (sizeof(REAL) == 4) return (KSFX(vec))_mm256_broadcast_ps((const __m128 *)(const void *)p);
    return *(const KSFX(vu) *)p;
#else
    KSFX(vec) v;
    for (int l = 0; l < VL; l++) v[l] = p[l % 4];
    return v;
#endif
}

/* KSFX(back_rows) for a compact last block (w <= VL/4 units): its columns
 * would fill a quarter of a vector or less, so the vector holds 4 of K's
 * terms for each unit instead, lane 4q + g taking dG(b, 4kk + g) W_hh(4kk +
 * g, j + q) summed over kk < H (pack_units' layout): H multiply-adds per row
 * where a whole vector of columns took 4H (at H = 50, the block's vector
 * was 2/16 used and a fifth of the step's product).  The groups of 4 are
 * summed at the end. */
static inline __attribute__((always_inline)) KATTR void KSFX(back_compact_rows)(
    int mr, int H, const REAL *dG, const REAL *P, const unsigned char *m, REAL *dh, int b,
    int j, int w)
{
    const size_t K = 4 * (size_t)H;
    KSFX(vec) acc[KMR];
    for (int r = 0; r < mr; r++) acc[r] = (KSFX(vec)){0};
    const REAL *a = dG + (size_t)b * K;
    for (int kk = 0; kk < H; kk++) {
        const KSFX(vec) wv = *(const KSFX(vec) *)(P + (size_t)kk * VL);
        for (int r = 0; r < mr; r++) acc[r] += KSFX(bcast4)(a + r * K + 4 * kk) * wv;
    }
    const KSFX(vb) iota = KSFX(iota)();
    for (int r = 0; r < mr; r++) {
        if (m && !m[b + r]) continue;
        KSFX(vec) v = acc[r];
        v += __builtin_shuffle(v, iota ^ 2);
        v += __builtin_shuffle(v, iota ^ 1);
        v = __builtin_shuffle(v, (iota * 4) & (VM_UINT)(VL - 1));   /* group q's sum to lane q */
        KSFX(vstore_n)(dh + (size_t)(b + r) * H + j, v, w);
    }
}

/* dh (B, H) rows [b0, b1), units of blocks [u0, u1) = dG_t (B, 4H) W_hh:
 * the recurrent product of one backward step, on W_hh packed by pack_units. */
KATTR static void KSFX(back_step)(int b0, int b1, int H, const REAL *dG, const REAL *Pw,
                                  const unsigned char *m, REAL *dh, int u0, int u1)
{
    const int last = KSFX(unit_blocks)(H) - 1;
    if (u1 > last && KSFX(compact)(H - last * VL)) {
        const REAL *P = Pw + (size_t)last * 4 * H * VL;
        for (int b = b0, mr; b < b1; b += mr) {
            mr = KSFX(tile_rows)(b1 - b);
#define BACKC(MR) KSFX(back_compact_rows)(MR, H, dG, P, m, dh, b, last * VL, H - last * VL)
            KSFX_ROWS(mr, BACKC)
#undef BACKC
        }
        u1 = last;
    }
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

/* The sum of a vector's lanes: halves folded onto each other by permutes. */
static inline __attribute__((always_inline)) KATTR REAL KSFX(hsum)(KSFX(vec) v)
{
    for (int w = VL / 2; w >= 1; w /= 2)
        v += __builtin_shuffle(v, (KSFX(iota)() + (VM_UINT)w) & (VM_UINT)(VL - 1));
    return v[0];
}

/* C rows [0, mr), columns [0, nv) of KSFX(dots): mr x nv dot products in
 * registers, K's last partial vector through masked loads. */
static inline __attribute__((always_inline)) KATTR void KSFX(dot_tile)(
    int mr, int nv, int K, const REAL *A, size_t lda, const REAL *W, size_t ldw, REAL beta,
    const unsigned char *m, REAL *C, size_t ldc)
{
    KSFX(vec) acc[KMR][4];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = (KSFX(vec)){0};
    int k = 0;
    for (; k + VL <= K; k += VL) {
        KSFX(vec) w[4];
        for (int v = 0; v < nv; v++) w[v] = *(const KSFX(vu) *)(W + v * ldw + k);
        for (int r = 0; r < mr; r++) {
            const KSFX(vec) a = *(const KSFX(vu) *)(A + r * lda + k);
            for (int v = 0; v < nv; v++) acc[r][v] += a * w[v];
        }
    }
    if (k < K) {
        KSFX(vec) w[4];
        for (int v = 0; v < nv; v++) w[v] = KSFX(vload_n)(W + v * ldw + k, K - k);
        for (int r = 0; r < mr; r++) {
            const KSFX(vec) a = KSFX(vload_n)(A + r * lda + k, K - k);
            for (int v = 0; v < nv; v++) acc[r][v] += a * w[v];
        }
    }
    for (int r = 0; r < mr; r++) {
        if (m && !m[r]) continue;
        for (int v = 0; v < nv; v++) {
            const REAL d = KSFX(hsum)(acc[r][v]);
            C[r * ldc + v] = beta != 0 ? beta * C[r * ldc + v] + d : d;
        }
    }
}

/* C (rows, n) = A (rows, K) W^T, or beta C + A W^T where beta != 0 (beta 0:
 * C is only written): C[r ldc + i] = the dot product of A's row r (stride
 * lda) with W's row i (stride ldw).  Rows r with m && !m[r] are left alone.
 * The backward's products whose weights are used unpacked, by rows:
 *   dh (B, H) = dG_t (B, 4H) W_hh, W's rows those of w_hh_t (H, 4H), for a
 *     batch of one, where packing W_hh (a transpose, ~0.2 ms at H = 256)
 *     costs more than the product gains from it;
 *   dx_t (B, I) = dG_t W_ih, W's rows those of w_ih_t (I, 4H), for few
 *     inputs, in the step that made dG_t (still in L1). */
KATTR static void KSFX(dots)(int rows, int n, int K, const REAL *A, size_t lda, const REAL *W,
                             size_t ldw, REAL beta, const unsigned char *m, REAL *C, size_t ldc)
{
    for (int i = 0; i < n; i += 4) {
        const int nv = n - i < 4 ? n - i : 4;
        for (int b = 0, mr; b < rows; b += mr) {
            mr = KSFX(tile_rows)(rows - b);
#define DOT(MR, NV) KSFX(dot_tile)(MR, NV, K, A + (size_t)b * lda, lda, W + (size_t)i * ldw, ldw, \
                                   beta, m ? m + b : NULL, C + (size_t)b * ldc + i, ldc)
            KSFX_ROWS_NV(mr, nv, DOT)
#undef DOT
        }
    }
}

#undef KSFX_ROWS
#undef KSFX_ROWS_ARG
#undef KSFX_ROWS_NV
#undef KSFX_MM
#undef KSFX_KC
#undef VL
#undef PW
#undef KQ
