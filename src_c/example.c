/* Standalone use of the core from C, with no Python and no BLAS library:
 * a naive column-major GEMM fills the function-pointer table.  Checks the
 * forward pass against a scalar loop written from the LSTM equations and
 * the backward pass against central finite differences; exits non-zero on
 * a mismatch.  Built and run by `make -C src_c check`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clstm.h"

/* Column-major C = alpha op(A) op(B) + beta C, Fortran calling convention. */
static void naive_dgemm(char *ta, char *tb, int *m, int *n, int *k, double *alpha,
                        double *a, int *lda, double *b, int *ldb, double *beta,
                        double *c, int *ldc)
{
    for (int j = 0; j < *n; j++)
        for (int i = 0; i < *m; i++) {
            double s = 0;
            for (int p = 0; p < *k; p++) {
                double av = *ta == 'N' ? a[i + (size_t)p * *lda] : a[p + (size_t)i * *lda];
                double bv = *tb == 'N' ? b[p + (size_t)j * *ldb] : b[j + (size_t)p * *ldb];
                s += av * bv;
            }
            double *cij = &c[i + (size_t)j * *ldc];
            *cij = *alpha * s + (*beta == 0 ? 0 : *beta * *cij);
        }
}

enum { T = 6, B = 2, I = 3, H = 4 };

static double rnd(void) { return 2.0 * rand() / RAND_MAX - 1.0; }
static double sig(double z) { return 1 / (1 + exp(-z)); }

/* y (T, B, H) from the LSTM equations, one scalar at a time;
 * wi (I, 4H), wh (H, 4H): the transposed weights the core takes. */
static void scalar_lstm(const double *x, const double *wi, const double *wh, const double *b,
                        const double *h0, const double *c0, double *y)
{
    double h[B * H], c[B * H], z[4 * H];
    memcpy(h, h0, sizeof h);
    memcpy(c, c0, sizeof c);
    for (int t = 0; t < T; t++)
        for (int n = 0; n < B; n++) {
            for (int r = 0; r < 4 * H; r++) {
                z[r] = b[r];
                for (int q = 0; q < I; q++) z[r] += wi[q * 4 * H + r] * x[(t * B + n) * I + q];
                for (int q = 0; q < H; q++) z[r] += wh[q * 4 * H + r] * h[n * H + q];
            }
            for (int j = 0; j < H; j++) {
                double cn = sig(z[H + j]) * c[n * H + j] + sig(z[j]) * tanh(z[2 * H + j]);
                c[n * H + j] = cn;
                y[(t * B + n) * H + j] = sig(z[3 * H + j]) * tanh(cn);
            }
            if (n == B - 1) memcpy(h, y + t * B * H, sizeof h);
        }
}

static clstm_blas blas = {NULL, naive_dgemm, NULL, NULL};
static double x[T * B * I], wi[I * 4 * H], wh[H * 4 * H], bias[4 * H], h0[B * H], c0[B * H];
static double ry[T * B * H];

/* Loss sum(y * ry) of a forward pass. */
static double loss(double *ws)
{
    double y[T * B * H], hn[B * H], cn[B * H], l = 0;
    clstm_lstm_forward_f64(&blas, T, B, I, H, 0, x, wi, wh, bias, h0, c0, NULL, y, H, hn, cn,
                           NULL, NULL, NULL, ws);
    for (int i = 0; i < T * B * H; i++) l += y[i] * ry[i];
    return l;
}

int main(void)
{
    int fail = 0;
    double *arrays[] = {x, wi, wh, bias, h0, c0, ry};
    size_t sizes[] = {T * B * I, I * 4 * H, H * 4 * H, 4 * H, B * H, B * H, T * B * H};
    for (int a = 0; a < 7; a++)
        for (size_t i = 0; i < sizes[a]; i++) arrays[a][i] = rnd();

    double *ws = malloc(clstm_forward_workspace(T, B, I, H, 0, 0) * sizeof(double));
    double *bws = malloc(clstm_backward_workspace(B, H, 0) * sizeof(double));
    double y[T * B * H], yref[T * B * H], hn[B * H], cn[B * H];
    clstm_lstm_forward_f64(&blas, T, B, I, H, 0, x, wi, wh, bias, h0, c0, NULL, y, H, hn, cn,
                           NULL, NULL, NULL, ws);
    scalar_lstm(x, wi, wh, bias, h0, c0, yref);
    double err = 0;
    for (int i = 0; i < T * B * H; i++) err = fmax(err, fabs(y[i] - yref[i]));
    printf("forward  max |clstm - scalar| = %.3g\n", err);
    fail |= err > 1e-12;

    double gates[T * B * 4 * H], cs[T * B * H], dx[T * B * I], dh0[B * H], dc0[B * H];
    double dwi[I * 4 * H], dwh[H * 4 * H], db[4 * H];
    clstm_lstm_forward_f64(&blas, T, B, I, H, 0, x, wi, wh, bias, h0, c0, NULL, y, H, hn, cn,
                           gates, cs, NULL, ws);
    clstm_lstm_backward_f64(&blas, T, B, I, H, 0, x, wi, wh, h0, c0, NULL, y, H, gates, cs,
                            NULL, ry, H, NULL, NULL, dx, 0, dh0, dc0, dwi, dwh, db, bws);
    double *wrt[] = {x, wh, h0, c0}, *got[] = {dx, dwh, dh0, dc0};
    size_t n[] = {T * B * I, 4 * H * H, B * H, B * H};
    const char *name[] = {"dx", "dw_hh", "dh0", "dc0"};
    for (int a = 0; a < 4; a++) {
        double num = 0, den = 0;
        for (size_t i = 0; i < n[a]; i++) {
            double old = wrt[a][i], eps = 1e-6;
            wrt[a][i] = old + eps;
            double lp = loss(ws);
            wrt[a][i] = old - eps;
            double lm = loss(ws);
            wrt[a][i] = old;
            double fd = (lp - lm) / (2 * eps);
            num += (got[a][i] - fd) * (got[a][i] - fd);
            den += fd * fd;
        }
        double rel = sqrt(num / den);
        printf("backward %-6s relative error vs finite differences = %.3g\n", name[a], rel);
        fail |= !(rel < 1e-6);
    }
    free(ws);
    free(bws);
    puts(fail ? "FAIL" : "OK");
    return fail;
}
