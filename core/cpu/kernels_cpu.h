/* kernels_cpu.h: prototypes of the cpu kernels that backend_cpu.c puts in its table. */
#ifndef MTT_KERNELS_CPU_H
#define MTT_KERNELS_CPU_H
#include "backend.h"

/* data.c */
int mtt_cpu_copy(mtt_tensor *dst, const mtt_tensor *src);
int mtt_cpu_fill(mtt_tensor *dst, double value);
int mtt_cpu_rand(mtt_tensor *dst, int kind, double a, double b, uint64_t seed, uint64_t offset);
/* elementwise_cpu.c */
int mtt_cpu_unary(int op, mtt_tensor *out, const mtt_tensor *x, double p0, double p1);
int mtt_cpu_unary_backward(int op, mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *x, const mtt_tensor *y,
                           double p0, double p1);
int mtt_cpu_binary(int op, mtt_tensor *out, const mtt_tensor *a, const mtt_tensor *b);
int mtt_cpu_masked_fill(mtt_tensor *out, const mtt_tensor *a, const mtt_tensor *mask, double value);
int mtt_cpu_binary_inplace(int op, mtt_tensor *t, const mtt_tensor *other, double alpha);
/* reduce_cpu.c */
int mtt_cpu_reduce(int op, mtt_tensor *out, mtt_tensor *idx, const mtt_tensor *x, int dim);

/* ---- [nn ops section: prototypes here] ---- */
/* ---- [indexing section: prototypes here] ---- */

/* Strided element access helpers shared by kernels (any dtype, as double). */
double mtt_cpu_load(const mtt_tensor *t, int64_t linear_index);
#endif
