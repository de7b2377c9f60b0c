/* Shared by the core's translation units; not part of the public API. */
#ifndef CLSTM_INTERNAL_H
#define CLSTM_INTERNAL_H

#include "clstm.h"

/* Run-time choice of SIMD level for the hot elementwise kernels: GCC emits
 * one copy per target and an ifunc picks one at load time, so a portable
 * build still runs AVX-512 or AVX2 code where the CPU has it.  -DCLSTM_NATIVE
 * (a -march=native build) needs no clones. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(CLSTM_NATIVE) && !defined(CLSTM_NO_CLONES)
#define CLSTM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define CLSTM_HAVE_CLONES 1
#else
#define CLSTM_CLONES
#define CLSTM_HAVE_CLONES 0
/* Batches up to this size take the core's own recurrent kernel (weights
 * packed into panels once per call); larger ones a BLAS GEMM per step.
 * Measured (bench/RESULTS.md): for B = 1 it halves (50,1,256,256)'s forward
 * against OpenBLAS's per-step call; at B = 8 OpenBLAS was 10-40% faster on
 * (60,8,1,50), so the kernel stops at 1 until its multi-row path wins. */
#define CLSTM_SMALL_BATCH 1

/* A step() product whose weights have at most this many elements uses the
 * unpacked small kernel (they stay in L1/L2 from step to step). */
#define CLSTM_STEP_SMALL_WEIGHTS (64 * 1024)

/* Elements of a (K, N) matrix packed into panels (recurrent_template.h),
 * for either dtype (float's 32-wide panels bound double's 16-wide ones). */
#define CLSTM_PACKED_SIZE(K, N) ((size_t)(((N) + 31) / 32) * 32 * (size_t)(K))

#endif

/* Batches up to this size take the core's own recurrent kernel (weights
 * packed into panels once per call); larger ones a BLAS GEMM per step.
 * Measured (bench/RESULTS.md): for B = 1 it halves (50,1,256,256)'s forward
 * against OpenBLAS's per-step call; at B = 8 OpenBLAS was 10-40% faster on
 * (60,8,1,50), so the kernel stops at 1 until its multi-row path wins. */
#define CLSTM_SMALL_BATCH 1

/* A step() product whose weights have at most this many elements uses the
 * unpacked small kernel (they stay in L1/L2 from step to step). */
#define CLSTM_STEP_SMALL_WEIGHTS (64 * 1024)

/* Elements of a (K, N) matrix packed into panels (recurrent_template.h),
 * for either dtype (float's 32-wide panels bound double's 16-wide ones). */
#define CLSTM_PACKED_SIZE(K, N) ((size_t)(((N) + 31) / 32) * 32 * (size_t)(K))

#endif
