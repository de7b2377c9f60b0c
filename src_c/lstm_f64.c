/* float64 instance of the layer kernels. */
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "internal.h"
#include "vmath.h"

#define REAL double
#define SFX(name) name##_f64
#define GEMM dgemm
#define SIGMOID clstm_sigmoid_f64
#define TANH clstm_tanh_f64
/* The activations' constants for tile_template.h's vector versions (the same
 * math as vmath.h's scalar ones, written on whole vectors). */
#define VM_UINT uint64_t
#define VM_SHIFTER 6755399441055744.0
#define VM_LOG2E 1.4426950408889634074
#define VM_SHIFT_BITS 0x4338000000000000ull
#define VM_EXP_BIAS 1023ull
#define VM_MANT 52
#define VM_LN2_HI 6.93147180369123816490e-01
#define VM_LN2_LO 1.90821492927058770002e-10
#define VM_SIGN 0x8000000000000000ull
#define VM_EXP_LO -708.0
#define VM_EXP_HI 709.0
#define VM_TANH_LO -80.0
#define VM_EXPM1_COEF CLSTM_EXPM1_COEF_F64
#include "lstm_template.h"
