/* The products of one step() call (online inference) without a BLAS call:
 * compiled once per REAL by lstm_f32.c / lstm_f64.c.
 *
 * For B = 1 a BLAS sgemm per call is the wrong tool: OpenBLAS spends ~1 us
 * of call overhead on (1, 32) x (32, 128), where the math takes ~0.1 us.
 * The weights are used as they are (no packing: one step cannot amortize
 * it); a tile of RTILE outputs per batch row stays in registers for the
 * reduction.  Plain C that GCC vectorizes (fixed-size inner loops), inlined
 * into CLSTM_CLONES entry points so each SIMD level has its copy.
 *
 * Needs REAL, SFX(name), CLSTM_CLONES. */

#define RTILE (128 / (int)sizeof(REAL))   /* columns per panel: 128 bytes */
#define RROWS 4                           /* batch rows sharing each panel load */

/* Columns [j, j + TW) of c (NR, ldc) += a (NR, lda) W (K, N), W unpacked
 * (row stride N); TW is a constant at every call (vectorized q loops). */
static inline __attribute__((always_inline)) void SFX(tile_rows)(
    int NR, int K, int N, const REAL *restrict a, int lda, const REAL *restrict W,
    REAL *restrict c, int ldc, int j, int TW)
{
    REAL acc[RROWS][RTILE];
    for (int r = 0; r < NR; r++)
        for (int q = 0; q < TW; q++) acc[r][q] = c[(size_t)r * ldc + j + q];
    for (int k = 0; k < K; k++) {
        const REAL *w = W + (size_t)k * N + j;
        for (int r = 0; r < NR; r++) {
            const REAL ak = a[(size_t)r * lda + k];
            for (int q = 0; q < TW; q++) acc[r][q] += ak * w[q];
        }
    }
    for (int r = 0; r < NR; r++)
        for (int q = 0; q < TW; q++) c[(size_t)r * ldc + j + q] = acc[r][q];
}

static inline __attribute__((always_inline)) void SFX(small_rows)(
    int NR, int K, int N, const REAL *a, int lda, const REAL *W, REAL *c, int ldc)
{
    int j = 0;
    for (; j + RTILE <= N; j += RTILE) SFX(tile_rows)(NR, K, N, a, lda, W, c, ldc, j, RTILE);
    if (j + RTILE / 2 <= N) {
        SFX(tile_rows)(NR, K, N, a, lda, W, c, ldc, j, RTILE / 2);
        j += RTILE / 2;
    }
    if (RTILE / 2 > 8 && j + 8 <= N) {
        SFX(tile_rows)(NR, K, N, a, lda, W, c, ldc, j, 8);
        j += 8;
    }
    if (j + 4 <= N) SFX(tile_rows)(NR, K, N, a, lda, W, c, ldc, j, 4);
}

/* C (B, ldc) += A (B, lda) W (K, N) with W as it is (row stride N), N a
 * multiple of 4: for one step of online inference with weights small enough
 * to stay in cache, where packing them would cost more than it saves. */
CLSTM_CLONES static void SFX(small_gemm)(int B, int K, int N, const REAL *A, int lda,
                                         const REAL *W, REAL *C, int ldc)
{
    int b = 0;
    for (; b + RROWS <= B; b += RROWS)
        SFX(small_rows)(RROWS, K, N, A + (size_t)b * lda, lda, W, C + (size_t)b * ldc, ldc);
    for (; b < B; b++)
        SFX(small_rows)(1, K, N, A + (size_t)b * lda, lda, W, C + (size_t)b * ldc, ldc);
}

#undef RTILE
#undef RROWS
