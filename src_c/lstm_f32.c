/* float32 instance of the layer kernels. */
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "internal.h"
#include "vmath.h"

#define REAL float
#define SFX(name) name##_f32
#define GEMM sgemm
#define SIGMOID clstm_sigmoid_f32
#define TANH clstm_tanh_f32
/* The activations' constants for tile_template.h's vector versions (the same
 * math as vmath.h's scalar ones, written on whole vectors). */
#define VM_UINT uint32_t
#define VM_SHIFTER 12582912.0f
#define VM_LOG2E 1.44269504088896341f
#define VM_SHIFT_BITS 0x4B400000u
#define VM_EXP_BIAS 127u
#define VM_MANT 23
#define VM_LN2_HI 0.693359375f
#define VM_LN2_LO -2.12194440e-4f
#define VM_SIGN 0x80000000u
#define VM_EXP_LO -87.0f
#define VM_EXP_HI 88.0f
#define VM_TANH_LO -40.0f
#define VM_EXPM1_COEF CLSTM_EXPM1_COEF_F32
#include "lstm_template.h"
