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
#include "lstm_template.h"
