/* The elementwise LSTM gate kernel of step(), over one segment of one batch
 * row: compiled once per REAL by lstm_f32.c / lstm_f64.c (the sequence
 * passes, forward and backward, run theirs on whole vectors in
 * tile_template.h).
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
