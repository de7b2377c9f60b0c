/* Elementwise LSTM gate kernels, forward and backward, over one segment of
 * one batch row: compiled once per REAL by lstm_f32.c / lstm_f64.c.
 *
 * These loops are where libm would cost most; with vmath.h they vectorize,
 * and CLSTM_CLONES makes GCC emit AVX-512, AVX2 and baseline copies chosen at
 * load time (portable wheels, native speed).
 *
 * Needs REAL, SFX(name), and the activation functions SIGMOID, TANH.
 */

/* Forward, one step, n hidden units of one batch row.
 * gi, gf, gg, go (n): pre-activations of the gates i, f, g, o without bias,
 *   overwritten with the activated gates (backward reads them);
 * bi, bf, bg, bo (n): bias per gate (or any second addend: the tile kernels
 *   pass their recurrent product here);
 * cprev (n): c_{t-1};  c (n): c_t out;  h (n): h_t out.
 * step()'s gate pass (the sequence passes run the cell on their tiles). */
CLSTM_CLONES static void SFX(cell_forward)(int n,
    REAL *restrict gi, REAL *restrict gf, REAL *restrict gg, REAL *restrict go,
    const REAL *restrict bi, const REAL *restrict bf,
    const REAL *restrict bg, const REAL *restrict bo,
    const REAL *restrict cprev, REAL *restrict c, REAL *restrict h)
{
    for (int j = 0; j < n; j++) {
        REAL i = SIGMOID(gi[j] + bi[j]);
        REAL f = SIGMOID(gf[j] + bf[j]);
        REAL g = TANH(gg[j] + bg[j]);
        REAL o = SIGMOID(go[j] + bo[j]);
        REAL ct = f * cprev[j] + i * g;
        c[j] = ct;
        h[j] = o * TANH(ct);
        gi[j] = i;
        gf[j] = f;
        gg[j] = g;
        go[j] = o;
    }
}

/* Backward, one step, n hidden units of one batch row.
 * gi..go (n): activated gates in, pre-activation gradients dG out;
 * c (n): c_t;  cprev (n): c_{t-1};
 * dy (n): dL/dh_t from the output;  dhr (n): dL/dh_t through h_{t+1};
 * dc (n): dL/dc_t through c_{t+1} in, dL/dc_{t-1} out. */
CLSTM_CLONES static void SFX(cell_backward)(int n,
    REAL *restrict gi, REAL *restrict gf, REAL *restrict gg, REAL *restrict go,
    const REAL *restrict c, const REAL *restrict cprev,
    const REAL *restrict dy, const REAL *restrict dhr, REAL *restrict dc)
{
    for (int j = 0; j < n; j++) {
        REAL i = gi[j], f = gf[j], g = gg[j], o = go[j];
        REAL tc = TANH(c[j]);
        REAL dh = dy[j] + dhr[j];
        REAL dct = dc[j] + dh * o * (1 - tc * tc);
        go[j] = dh * tc * o * (1 - o);
        gi[j] = dct * g * i * (1 - i);
        gg[j] = dct * i * (1 - g * g);
        gf[j] = dct * cprev[j] * f * (1 - f);
        dc[j] = dct * f;
    }
}
