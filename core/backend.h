/*
 * backend.h: the table of kernels a device provides.
 *
 * Ops (core/ops/*.c) validate arguments, allocate outputs and record autograd; kernels only
 * compute. A kernel receives tensors already checked: same device, supported dtype, shapes that
 * fit. Unless a slot says otherwise, inputs are contiguous and outputs are freshly allocated
 * contiguous tensors. Kernels return 0 or a negative mtt_status (after mtt_fail).
 *
 * The cpu table lives in core/cpu/backend_cpu.c; a cuda table will sit beside it. Only
 * backend.c knows which tables exist.
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

  /* ---- [indexing ops and optimizers: cat, gather, index_select, topk, sgd, adamw, norms] ---- */
  /* (section owned by the indexing/optim work; add slots here) */
} mtt_backend;

const mtt_backend *mtt_backend_for(int device);     /* NULL if that device is not available */
const mtt_backend *mtt_backend_of(const mtt_tensor *t);
extern const mtt_backend mtt_backend_cpu;

#endif
