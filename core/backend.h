/*
 * backend.h: the table of kernels a device provides.
 *
 * Ops (core/ops/ files) validate arguments, allocate outputs and record autograd; kernels only
 * compute. A kernel receives tensors already checked: same device, supported dtype, shapes that
 * fit. Unless a slot says otherwise, inputs are contiguous and outputs are freshly allocated
 * contiguous tensors. Kernels return 0 or a negative mtt_status (after mtt_fail).
 *
 * The cpu table lives in core/cpu/backend_cpu.c, the cuda table in core/cuda/backend_cuda.cu.
 * Only backend.c knows which tables exist.
 */
#ifndef MTT_BACKEND_H
#define MTT_BACKEND_H

#include "internal.h"

typedef enum mtt_unary_op {
  MTT_U_NEG, MTT_U_EXP, MTT_U_LOG, MTT_U_SQRT, MTT_U_TANH, MTT_U_SIGMOID, MTT_U_GELU, MTT_U_RELU,
  MTT_U_CLAMP,   /* p0 = lo, p1 = hi */
  MTT_U_POW,     /* p0 = exponent */
  MTT_U_ADD_S,   /* x + p0 */
  MTT_U_MUL_S,   /* x * p0 */
  MTT_U_RSUB_S,  /* p0 - x */
  MTT_U_RDIV_S,  /* p0 / x */
} mtt_unary_op;

typedef enum mtt_binary_op { MTT_B_ADD, MTT_B_SUB, MTT_B_MUL, MTT_B_DIV, MTT_B_EQ, MTT_B_GT, MTT_B_LT } mtt_binary_op;
typedef enum mtt_reduce_op { MTT_R_SUM, MTT_R_MAX, MTT_R_ARGMAX } mtt_reduce_op;
typedef enum mtt_rand_kind { MTT_RAND_UNIFORM, MTT_RAND_NORMAL, MTT_RAND_INT } mtt_rand_kind;

typedef struct mtt_backend {
  const char *name;

  /* ---- memory and data ---- */
  void *(*alloc)(size_t nbytes);           /* NULL on failure (the caller reports it) */
  void (*free)(void *ptr);
  int (*copy)(mtt_tensor *dst, const mtt_tensor *src);  /* any strides, converts dtype */
  int (*fill)(mtt_tensor *dst, double value);           /* any strides */
  /* dst contiguous; element i uses Philox counter offset + i. uniform [a,b), normal(a, b),
   * int [a, b) */
  int (*rand)(mtt_tensor *dst, int kind, double a, double b, uint64_t seed, uint64_t offset);

  /* ---- elementwise ---- */
  int (*unary)(int op, mtt_tensor *out, const mtt_tensor *x, double p0, double p1);
  /* gx = dL/dx given gy, the input x and the output y (all contiguous, same shape) */
  int (*unary_backward)(int op, mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *x, const mtt_tensor *y,
                        double p0, double p1);
  /* a and b are (possibly stride-0) views with out's shape; out contiguous */
  int (*binary)(int op, mtt_tensor *out, const mtt_tensor *a, const mtt_tensor *b);
  /* out = mask != 0 ? value : a; a and mask are views with out's shape */
  int (*masked_fill)(mtt_tensor *out, const mtt_tensor *a, const mtt_tensor *mask, double value);
  /* t (any strides) op= alpha * other (a view with t's shape); op is MTT_B_ADD or MTT_B_MUL
   * (alpha ignored for MUL) */
  int (*binary_inplace)(int op, mtt_tensor *t, const mtt_tensor *other, double alpha);

  /* ---- reductions ---- */
  /* x contiguous; reduce over dim into out (x's shape without dim, contiguous).
   * MAX also writes i32 indices into idx when idx != NULL; ARGMAX writes only idx. Summation
   * order is fixed (independent of the thread count). */
  int (*reduce)(int op, mtt_tensor *out, mtt_tensor *idx, const mtt_tensor *x, int dim);

  /* ---- [nn ops: matmul, softmax, layer norm, embedding, cross-entropy, attention, dropout] ---- */
  /* (section owned by the nn-ops work; add slots here) */
  /* Batched strided gemm: c = alpha * a @ b + beta * c. a [..., m, k], b [..., k, n] and
   * c [..., m, n] have the same ndim (>= 2) and batch dims; a and b may have any strides,
   * stride 0 on broadcast batch dims included (a layout BLAS reads directly, e.g. a transposed
   * view, is used without a copy). c is contiguous; beta == 0 never reads c. */
  int (*gemm)(mtt_tensor *c, const mtt_tensor *a, const mtt_tensor *b, double alpha, double beta);
  /* Softmax (log_softmax if log) over the last dim; out and x contiguous, same shape. */
  int (*softmax)(mtt_tensor *out, const mtt_tensor *x, int log);
  /* gx from gy and the forward output y: gx = y * (gy - sum(gy * y)) for softmax,
   * gx = gy - exp(y) * sum(gy) for log_softmax (sums over the last dim). */
  int (*softmax_backward)(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *y, int log);
  /* Over the last dim C of x (contiguous, rows = nelem / C): out = (x - mean) * rstd * w + b,
   * rstd = 1 / sqrt(var + eps); w and b are [C] or NULL; mean and rstd [rows] are outputs. */
  int (*layer_norm)(mtt_tensor *out, mtt_tensor *mean, mtt_tensor *rstd, const mtt_tensor *x, const mtt_tensor *w,
                    const mtt_tensor *b, double eps);
  /* gx (x's shape), gw and gb ([C]) may each be NULL when not wanted; gw and gb sum over rows
   * in a fixed order. */
  int (*layer_norm_backward)(mtt_tensor *gx, mtt_tensor *gw, mtt_tensor *gb, const mtt_tensor *gy,
                             const mtt_tensor *x, const mtt_tensor *w, const mtt_tensor *mean, const mtt_tensor *rstd);
  /* out [N, C] (contiguous, any shape with N * C elements) = rows idx[0..N) (i32) of weight
   * [V, C]; an index outside [0, V) fails naming it. */
  int (*embedding)(mtt_tensor *out, const mtt_tensor *weight, const mtt_tensor *idx);
  /* gw [V, C] = 0, then gw[idx[r]] += gy[r] with r ascending for every element. */
  int (*embedding_backward)(mtt_tensor *gw, const mtt_tensor *gy, const mtt_tensor *idx);
  /* logits [R, V] (as [..., V]), targets i32 [R], mask [R] (f32 or f64) or NULL, all
   * contiguous. Row r counts if targets[r] != ignore_index and (no mask or mask[r] != 0);
   * loss (0-d) = sum over counted rows of mask[r] * (lse[r] - logits[r, targets[r]]) / count,
   * 0 when nothing counts; lse [R] gets each counted row's logsumexp. A target outside [0, V)
   * other than ignore_index fails naming it. */
  int (*cross_entropy)(mtt_tensor *loss, mtt_tensor *lse, const mtt_tensor *logits, const mtt_tensor *targets,
                       const mtt_tensor *mask, int64_t ignore_index);
  /* gx = (softmax - onehot) * mask * gy / count on counted rows, 0 elsewhere; gy is 0-d. */
  int (*cross_entropy_backward)(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *logits,
                                const mtt_tensor *lse, const mtt_tensor *targets, const mtt_tensor *mask,
                                int64_t ignore_index);
  /* Per leading index (same leading dims for all): out = softmax(scale * q k^T, causal) v.
   * q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv] have any strides; out [..., Tq, Dv] and
   * lse [..., Tq] (row logsumexp of the scaled, masked scores) are contiguous outputs.
   * causal: query i sees keys j <= i + Tk - Tq (Tq <= Tk). */
  int (*attention)(mtt_tensor *out, mtt_tensor *lse, const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v,
                   int causal, double scale);
  /* Gradients from gout (contiguous) recomputing the probabilities from lse; gq, gk, gv are
   * contiguous outputs, each NULL when not wanted. */
  int (*attention_backward)(mtt_tensor *gq, mtt_tensor *gk, mtt_tensor *gv, const mtt_tensor *gout,
                            const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v, const mtt_tensor *lse,
                            int causal, double scale);
  /* out = x * keep / (1 - p), keep[i] = uniform01(philox(seed, offset + i)[0]) > p; x and out
   * contiguous. The same call with gy for x gives the gradient. */
  int (*dropout)(mtt_tensor *out, const mtt_tensor *x, double p, uint64_t seed, uint64_t offset);

  /* ---- [indexing ops and optimizers: cat, gather, index_select, topk, sgd, adamw, norms] ---- */
  /* (section owned by the indexing/optim work; add slots here) */
  /* x contiguous [O,M,I] (M = x->dims[dim]); out contiguous [O,J,I]; index i32 contiguous, either
   * out's shape (gather) or 1-D of length J (index_select; for 1-D out the two agree).
   * out[o,j,i] = x[o, index[o,j,i] or index[j], i]. An index outside [0,M) fails naming op. */
  int (*gather)(mtt_tensor *out, const mtt_tensor *x, const mtt_tensor *index, int dim, const char *op);
  /* The adjoint: gx (contiguous [O,M,I]) = 0, then gx[o,index,i] += gy[o,j,i] with j ascending
   * for every element of gx (deterministic; repeated indices accumulate). */
  int (*scatter_add)(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *index, int dim, const char *op);
  /* x contiguous; values (x's dtype) and indices (i32) contiguous with dims[dim] = k: the k
   * largest (smallest) along dim, sorted, ties to the lower index, NaN above every number. */
  int (*topk)(mtt_tensor *values, mtt_tensor *indices, const mtt_tensor *x, int dim, int largest);
  /* Optimizer updates of one parameter, in place; all tensors contiguous, same float dtype and
   * shape. sgd as torch.optim.SGD (buf may be NULL when momentum == 0). adamw: p *= decay
   * (1 - lr*wd), moments, p -= step_size * m / (sqrt(v)/bc2_sqrt + eps). */
  int (*sgd)(mtt_tensor *p, const mtt_tensor *g, mtt_tensor *buf, double lr, double momentum, double dampening,
             double weight_decay, int nesterov, int first_step);
  int (*adamw)(mtt_tensor *p, const mtt_tensor *g, mtt_tensor *m, mtt_tensor *v, double decay, double beta1,
               double beta2, double eps, double step_size, double bc2_sqrt);
  /* Sum of squares of a contiguous float tensor, in double, in a fixed order; and x *= s in
   * place (for clipping). */
  int (*sum_squares)(const mtt_tensor *x, double *out);
  int (*scale)(mtt_tensor *x, double s);

  /* ---- [cuda section: slots of a device with its own memory; NULL in the cpu table] ---- */
  /* dst and src have the same shape and live on different devices, one of them this backend's;
   * any strides, converts dtype. mtt_to_device (and the cuda copy, for host sources) use it. */
  int (*transfer)(mtt_tensor *dst, const mtt_tensor *src);
  /* The sums of squares of n contiguous float tensors of this device (each as sum_squares would
   * compute it), added in list order in double: the same bits as n sum_squares calls, with one
   * wait for the device instead of one per tensor (gradient clipping over a parameter list). */
  int (*sum_squares_list)(int n, const mtt_tensor *const *xs, double *out);
} mtt_backend;

const mtt_backend *mtt_backend_for(int device);     /* NULL if that device is not available */
const mtt_backend *mtt_backend_of(const mtt_tensor *t);
extern const mtt_backend mtt_backend_cpu;

#endif
