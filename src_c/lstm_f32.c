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
#include "lstm_template.h"
