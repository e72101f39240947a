/* kernels_cpu.h: prototypes of the cpu kernels that backend_cpu.c puts in its table. */
#ifndef MTT_KERNELS_CPU_H
#define MTT_KERNELS_CPU_H
#include "backend.h"

/* alloc_cpu.c: caching allocator (64-byte aligned) */
void *mtt_cpu_alloc(size_t nbytes);
void mtt_cpu_free(void *ptr);
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
/* matmul_cpu.c */
int mtt_cpu_gemm(mtt_tensor *c, const mtt_tensor *a, const mtt_tensor *b, double alpha, double beta);
/* How BLAS reads a rows x cols matrix with strides (rs, cs): row-major with leading dim *ld
 * (*trans = 0) or as the transpose of a row-major cols x rows matrix (*trans = 1). 0 if neither
 * fits (the caller copies). */
int mtt_cpu_blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int *trans, int64_t *ld);
/* One row-major gemm on raw pointers (f32 or f64): c = alpha * op(a) @ op(b) + beta * c. */
void mtt_cpu_blas_gemm(int dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                       const void *a, int64_t lda, const void *b, int64_t ldb, double beta, void *c, int64_t ldc);
/* nn_cpu.c */
int mtt_cpu_softmax(mtt_tensor *out, const mtt_tensor *x, int log);
int mtt_cpu_softmax_backward(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *y, int log);
int mtt_cpu_layer_norm(mtt_tensor *out, mtt_tensor *mean, mtt_tensor *rstd, const mtt_tensor *x, const mtt_tensor *w,
                       const mtt_tensor *b, double eps);
int mtt_cpu_layer_norm_backward(mtt_tensor *gx, mtt_tensor *gw, mtt_tensor *gb, const mtt_tensor *gy,
                                const mtt_tensor *x, const mtt_tensor *w, const mtt_tensor *mean,
                                const mtt_tensor *rstd);
int mtt_cpu_embedding(mtt_tensor *out, const mtt_tensor *weight, const mtt_tensor *idx);
int mtt_cpu_embedding_backward(mtt_tensor *gw, const mtt_tensor *gy, const mtt_tensor *idx);
int mtt_cpu_cross_entropy(mtt_tensor *loss, mtt_tensor *lse, const mtt_tensor *logits, const mtt_tensor *targets,
                          const mtt_tensor *mask, int64_t ignore_index);
int mtt_cpu_cross_entropy_backward(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *logits,
                                   const mtt_tensor *lse, const mtt_tensor *targets, const mtt_tensor *mask,
                                   int64_t ignore_index);
int mtt_cpu_dropout(mtt_tensor *out, const mtt_tensor *x, double p, uint64_t seed, uint64_t offset);
/* y[j] = exp(x[j] - shift) for j < n; returns the sum of y in a fixed order (shared by the
 * softmax-like kernels so that one fast exp serves them all). */
float mtt_cpu_expsum_f32(float *y, const float *x, float shift, int64_t n);
double mtt_cpu_expsum_f64(double *y, const double *x, double shift, int64_t n);
/* attention_cpu.c */
int mtt_cpu_attention(mtt_tensor *out, mtt_tensor *lse, const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v,
                      int causal, double scale);
int mtt_cpu_attention_backward(mtt_tensor *gq, mtt_tensor *gk, mtt_tensor *gv, const mtt_tensor *gout,
                               const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v, const mtt_tensor *lse,
                               int causal, double scale);
/* ---- [indexing section: prototypes here] ---- */
/* index_cpu.c */
int mtt_cpu_gather(mtt_tensor *out, const mtt_tensor *x, const mtt_tensor *index, int dim, const char *op);
int mtt_cpu_scatter_add(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *index, int dim, const char *op);
int mtt_cpu_topk(mtt_tensor *values, mtt_tensor *indices, const mtt_tensor *x, int dim, int largest);
/* optim_cpu.c */
int mtt_cpu_sgd(mtt_tensor *p, const mtt_tensor *g, mtt_tensor *buf, double lr, double momentum, double dampening,
                double weight_decay, int nesterov, int first_step);
int mtt_cpu_adamw(mtt_tensor *p, const mtt_tensor *g, mtt_tensor *m, mtt_tensor *v, double decay, double beta1,
                  double beta2, double eps, double step_size, double bc2_sqrt);
int mtt_cpu_sum_squares(const mtt_tensor *x, double *out);
int mtt_cpu_scale(mtt_tensor *x, double s);

/* Strided element access helpers shared by kernels (any dtype, as double). */
double mtt_cpu_load(const mtt_tensor *t, int64_t linear_index);
#endif
