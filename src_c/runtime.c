/* Thread count, workspace sizes and build facts shared by both dtypes. */
#include "internal.h"
#if CLSTM_X86 && defined(__GNUC__)
#include <cpuid.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#define CLSTM_YIELD() sched_yield()
#else
#define CLSTM_YIELD() ((void)0)
#endif

/* The caller's thread budget: the core's OpenMP team for a call (see
 * lstm_template.h); the caller sets the BLAS's to the same count, and the
 * core holds the BLAS at 1 thread while its own threads call it. */
static int clstm_nthreads = 1;

void clstm_set_num_threads(int n) { clstm_nthreads = n < 1 ? 1 : n; }
int clstm_get_num_threads(void) { return clstm_nthreads; }

int clstm_has_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int clstm_isa_level(void)
{
#if CLSTM_HAVE_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 4;
    if (__builtin_cpu_supports("x86-64-v3")) return 3;
#endif
    return 0;
}

/* 1 where this CPU's AVX-512 FMAs are as wide as its datapath.  Zen 4 (AMD
 * family 19h with AVX-512) runs each 512-bit FMA as two 256-bit halves: there
 * float64's large weight gradients ran faster through OpenBLAS's blocking
 * (bench/RESULTS.md, session 12); on Zen 5 (family 1Ah) the tile kernels ran
 * them at ~170 GFLOP/s a core, OpenBLAS's AVX2 kernels at ~100. */
static int clstm_full_width_avx512(void)
{
    /* AVX-512 kernels: a clone picked at run time, or a native build's */
#if CLSTM_X86 && defined(__GNUC__) && (CLSTM_HAVE_CLONES || defined(__AVX512F__))
    if (CLSTM_HAVE_CLONES && clstm_isa_level() < 4) return 0;
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 1;
    const int amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;  /* AuthenticAMD */
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 1;
    unsigned family = (a >> 8) & 0xf;
    if (family == 0xf) family += (a >> 20) & 0xff;
    return !(amd && family == 0x19);
#else
    return 0;
#endif
}

static int clstm_large_mode = -1;

void clstm_set_large_products(int mode) { clstm_large_mode = mode < 0 ? -1 : mode > 0; }

int clstm_own_large_products(int product, int vector_bytes, int real_bytes)
{
    static int full_width = -1;
    if (clstm_large_mode >= 0) return clstm_large_mode;
    if (vector_bytes < 64) return 0;
    if (product == CLSTM_PRODUCT_DX) return 1;
    if (full_width < 0) full_width = clstm_full_width_avx512();
    return full_width || real_bytes == 4;
}

int clstm_large_products(void)
{
    return clstm_large_routes_f32() | clstm_large_routes_f64() << 2;
}

const char *clstm_simd_level(void)
{
#if CLSTM_HAVE_CLONES
    switch (clstm_isa_level()) {
    case 4: return "avx512 (x86-64-v4 clone)";
    case 3: return "avx2 (x86-64-v3 clone)";
    default: return "baseline (default clone)";
    }
#elif defined(CLSTM_NATIVE)
    return "native (compiled for this CPU)";
#else
    return "compiler default (no run-time dispatch)";
#endif
}

/* Inference computes input projections for this many steps at a time, so its
 * memory does not grow with T: enough rows (about 256) for an efficient GEMM,
 * at most ~4 MiB of float32 gates per chunk. */
int clstm_forward_chunk(int T, int B, int H)
{
    long per_step = (long)B * 4 * H;
    long steps = (256 + B - 1) / B;
    long cap = (1L << 20) / (per_step > 0 ? per_step : 1);
    if (steps > cap) steps = cap;
    if (steps < 1) steps = 1;
    if (steps > T) steps = T;
    return (int)(steps < 1 ? 1 : steps);
}

size_t clstm_forward_workspace(int T, int B, int In, int H, int train, int masked)
{
    size_t BH = (size_t)B * H;
    size_t n = CLSTM_ALIGN_SLACK + CLSTM_GATE_PANELS(In, H) + CLSTM_GATE_PANELS(H, H);
    n += CLSTM_ROUND16(4 * (size_t)H) + CLSTM_ROUND16(BH);      /* zero bias, zero c0 */
    if (!train) {
        n += CLSTM_ROUND16(2 * BH);                             /* c ping-pong */
        n += CLSTM_ROUND16((size_t)clstm_forward_chunk(T, B, H) * B * 4 * H);  /* G chunk */
        if (masked) n += 2 * BH;    /* h states, apart from the zeroed outputs */
    }
    return n;
}

size_t clstm_backward_workspace(int B, int H, int masked)
{
    size_t BH = (size_t)B * H;
    (void)masked;
    /* packed W_hh, dh, dc, zero c0 */
    return CLSTM_ALIGN_SLACK + CLSTM_GATE_PANELS(H, H) + 3 * CLSTM_ROUND16(BH);
}

size_t clstm_step_workspace(int B, int H)
{
    return ((size_t)B * 4 + 4 + B) * H;
}

void clstm_barrier_init(clstm_barrier *b, int n)
{
    b->n = n;
    b->count = 0;
    b->sense = 0;
}

void clstm_barrier_wait(clstm_barrier *b, int *local_sense)
{
    const int s = !*local_sense;
    *local_sense = s;
    if (b->n <= 1) return;
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == b->n) {
        /* the last to arrive opens the next round; the release orders the reset */
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->sense, s, __ATOMIC_RELEASE);
        return;
    }
    for (long i = 0; __atomic_load_n(&b->sense, __ATOMIC_ACQUIRE) != s; i++) {
        if (i < CLSTM_BARRIER_SPINS) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            CLSTM_YIELD();
        }
    }
}
