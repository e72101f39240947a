/* kernels_cuda.h: the cuda kernels that backend_cuda.cu puts in its table (contracts in
 * backend.h), one file per family as on the cpu. */
#ifndef MTT_KERNELS_CUDA_H
#define MTT_KERNELS_CUDA_H
#include "cuda/cuda_common.h"

extern const mtt_backend mtt_backend_cuda;

/* backend_cuda.cu */
int mtt_cuda_transfer(mtt_tensor *dst, const mtt_tensor *src);
/* data_cuda.cu */
int mtt_cuda_copy(mtt_tensor *dst, const mtt_tensor *src);
int mtt_cuda_fill(mtt_tensor *dst, double value);
int mtt_cuda_rand(mtt_tensor *dst, int kind, double a, double b, uint64_t seed, uint64_t offset);
/* elementwise_cuda.cu */
int mtt_cuda_unary(int op, mtt_tensor *out, const mtt_tensor *x, double p0, double p1);
int mtt_cuda_unary_backward(int op, mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *x, const mtt_tensor *y,
                            double p0, double p1);
int mtt_cuda_binary(int op, mtt_tensor *out, const mtt_tensor *a, const mtt_tensor *b);
int mtt_cuda_masked_fill(mtt_tensor *out, const mtt_tensor *a, const mtt_tensor *mask, double value);
int mtt_cuda_binary_inplace(int op, mtt_tensor *t, const mtt_tensor *other, double alpha);
/* reduce_cuda.cu */
int mtt_cuda_reduce(int op, mtt_tensor *out, mtt_tensor *idx, const mtt_tensor *x, int dim);
int mtt_cuda_sum_squares(const mtt_tensor *x, double *out);
int mtt_cuda_sum_squares_list(int n, const mtt_tensor *const *xs, double *out);
/* matmul_cuda.cu */
int mtt_cuda_gemm(mtt_tensor *c, const mtt_tensor *a, const mtt_tensor *b, double alpha, double beta);
/* nn_cuda.cu */
int mtt_cuda_softmax(mtt_tensor *out, const mtt_tensor *x, int log);
int mtt_cuda_softmax_backward(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *y, int log);
int mtt_cuda_layer_norm(mtt_tensor *out, mtt_tensor *mean, mtt_tensor *rstd, const mtt_tensor *x, const mtt_tensor *w,
                        const mtt_tensor *b, double eps);
int mtt_cuda_layer_norm_backward(mtt_tensor *gx, mtt_tensor *gw, mtt_tensor *gb, const mtt_tensor *gy,
                                 const mtt_tensor *x, const mtt_tensor *w, const mtt_tensor *mean,
                                 const mtt_tensor *rstd);
int mtt_cuda_embedding(mtt_tensor *out, const mtt_tensor *weight, const mtt_tensor *idx);
int mtt_cuda_embedding_backward(mtt_tensor *gw, const mtt_tensor *gy, const mtt_tensor *idx);
int mtt_cuda_cross_entropy(mtt_tensor *loss, mtt_tensor *lse, const mtt_tensor *logits, const mtt_tensor *targets,
                           const mtt_tensor *mask, int64_t ignore_index);
int mtt_cuda_cross_entropy_backward(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *logits,
                                    const mtt_tensor *lse, const mtt_tensor *targets, const mtt_tensor *mask,
                                    int64_t ignore_index);
int mtt_cuda_dropout(mtt_tensor *out, const mtt_tensor *x, double p, uint64_t seed, uint64_t offset);
/* attention_cuda.cu (f32/f64 on CUDA cores) and attention_wmma_cuda.cu (bf16 tensor cores) */
int mtt_cuda_attention(mtt_tensor *out, mtt_tensor *lse, const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v,
                       int causal, double scale);
int mtt_cuda_attention_backward(mtt_tensor *gq, mtt_tensor *gk, mtt_tensor *gv, const mtt_tensor *gout,
                                const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v, const mtt_tensor *lse,
                                int causal, double scale);
int mtt_cuda_attention_bf16(mtt_tensor *out, mtt_tensor *lse, const mtt_tensor *q, const mtt_tensor *k,
                            const mtt_tensor *v, int causal, double scale);
int mtt_cuda_attention_backward_bf16(mtt_tensor *gq, mtt_tensor *gk, mtt_tensor *gv, const mtt_tensor *gout,
                                     const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v,
                                     const mtt_tensor *lse, int causal, double scale);
/* index_cuda.cu */
int mtt_cuda_gather(mtt_tensor *out, const mtt_tensor *x, const mtt_tensor *index, int dim, const char *op);
int mtt_cuda_scatter_add(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *index, int dim, const char *op);
int mtt_cuda_topk(mtt_tensor *values, mtt_tensor *indices, const mtt_tensor *x, int dim, int largest);
/* optim_cuda.cu */
int mtt_cuda_sgd(mtt_tensor *p, const mtt_tensor *g, mtt_tensor *buf, double lr, double momentum, double dampening,
                 double weight_decay, int nesterov, int first_step);
int mtt_cuda_adamw(mtt_tensor *p, const mtt_tensor *g, mtt_tensor *m, mtt_tensor *v, double decay, double beta1,
                   double beta2, double eps, double step_size, double bc2_sqrt);
int mtt_cuda_scale(mtt_tensor *x, double s);

/* Helpers shared across files. */
/* g [outer, m, inner] = 0, then g[o, ids[j], i] += src[o, j, i] with j ascending for each
 * element (ids: j_count values in [0, m)); deterministic. nn_cuda.cu. */
int mtt_cuda_index_add_sorted(void *g, const void *src, int dtype, const int32_t *ids, int64_t j_count, int64_t outer,
                              int64_t m, int64_t inner, const char *what);
/* f32 (any strides) into a new contiguous bf16 buffer of x's shape, from the allocator. */
void *mtt_cuda_to_bf16(const mtt_tensor *x, const char *what);
#endif
