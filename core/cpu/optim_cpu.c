/* optim_cpu.c: fused optimizer updates and the sum of squares behind gradient clipping.
 *
 * Updates are elementwise, so they parallelize without changing results. The arithmetic follows
 * torch's single-tensor implementations step by step in the parameter's own dtype, so that f32
 * runs stay close to PyTorch's. The sum of squares adds fixed-size blocks in order, so it does
 * not depend on the thread count. */
#include <math.h>
#include <stdlib.h>

#include "cpu/kernels_cpu.h"

/* torch.optim.SGD: d = g + wd*p; buf = first ? d : mom*buf + (1-damp)*d;
 * d = nesterov ? d + mom*buf : buf; p -= lr*d. */
#define SGD_LOOP(T)                                                                      \
  do {                                                                                   \
    T *ps = mtt_data_ptr(p), *bs = buf ? mtt_data_ptr(buf) : NULL;                       \
    const T *gs = mtt_data_ptr(g);                                                       \
    const T lr_ = (T)lr, mom = (T)momentum, keep = (T)(1.0 - dampening), wd = (T)weight_decay; \
    _Pragma("omp parallel for schedule(static) num_threads(mtt_threads_for(n * 4))")     \
    for (int64_t i = 0; i < n; i++) {                                                    \
      T d = gs[i];                                                                       \
      if (weight_decay != 0) d = d + wd * ps[i];                                         \
      if (momentum != 0) {                                                               \
        T b = first_step ? d : bs[i] * mom + keep * d;                                   \
        bs[i] = b;                                                                       \
        d = nesterov ? d + mom * b : b;                                                  \
      }                                                                                  \
      ps[i] = ps[i] - lr_ * d;                                                           \
    }                                                                                    \
  } while (0)

int mtt_cpu_sgd(mtt_tensor *p, const mtt_tensor *g, mtt_tensor *buf, double lr, double momentum, double dampening,
                double weight_decay, int nesterov, int first_step) {
  int64_t n = p->nelem;
  if (momentum != 0 && !buf) return mtt_fail(MTT_ERR_ARG, "sgd: momentum needs a momentum buffer");
  switch (p->dtype_id) {
    case MTT_F32: SGD_LOOP(float); break;
    case MTT_F64: SGD_LOOP(double); break;
    default: return mtt_fail(MTT_ERR_DTYPE, "sgd: dtype %s is not supported", mtt_dtype_name(p->dtype_id));
  }
  return 0;
}

/* torch.optim.AdamW: p *= decay; m = m*b1 + (1-b1)*g; v = v*b2 + (1-b2)*g*g;
 * p += -step_size * m / (sqrt(v)/bc2_sqrt + eps). */
#define ADAMW_LOOP(T, SQRT)                                                             \
  do {                                                                                  \
    T *ps = mtt_data_ptr(p), *ms = mtt_data_ptr(m), *vs = mtt_data_ptr(v);              \
    const T *gs = mtt_data_ptr(g);                                                      \
    const T dec = (T)decay, b1 = (T)beta1, b2 = (T)beta2, c1 = (T)(1.0 - beta1),         \
            c2 = (T)(1.0 - beta2), ep = (T)eps, ss = (T)(-step_size), bc = (T)bc2_sqrt; \
    _Pragma("omp parallel for schedule(static) num_threads(mtt_threads_for(n * 8))")    \
    for (int64_t i = 0; i < n; i++) {                                                   \
      T gi = gs[i];                                                                     \
      T pi = ps[i] * dec;                                                               \
      T mi = ms[i] * b1 + c1 * gi;                                                      \
      T vi = vs[i] * b2 + c2 * gi * gi;                                                 \
      T denom = SQRT(vi) / bc + ep;                                                     \
      ms[i] = mi;                                                                       \
      vs[i] = vi;                                                                       \
      ps[i] = pi + ss * mi / denom;                                                     \
    }                                                                                   \
  } while (0)

int mtt_cpu_adamw(mtt_tensor *p, const mtt_tensor *g, mtt_tensor *m, mtt_tensor *v, double decay, double beta1,
                  double beta2, double eps, double step_size, double bc2_sqrt) {
  int64_t n = p->nelem;
  switch (p->dtype_id) {
    case MTT_F32: ADAMW_LOOP(float, sqrtf); break;
    case MTT_F64: ADAMW_LOOP(double, sqrt); break;
    default: return mtt_fail(MTT_ERR_DTYPE, "adamw: dtype %s is not supported", mtt_dtype_name(p->dtype_id));
  }
  return 0;
}

#define SUMSQ_BLOCK 8192
#define SUMSQ_LANES 8 /* independent accumulators, so the loop vectorizes in a fixed order */

#define SUMSQ_LOOP(T)                                                                 \
  do {                                                                                \
    const T *xs = mtt_data_ptr(x);                                                    \
    _Pragma("omp parallel for schedule(static) num_threads(mtt_threads_for(n))")      \
    for (int64_t b = 0; b < blocks; b++) {                                            \
      int64_t i0 = b * SUMSQ_BLOCK, i1 = i0 + SUMSQ_BLOCK < n ? i0 + SUMSQ_BLOCK : n; \
      double lane[SUMSQ_LANES] = {0}, s = 0;                                          \
      int64_t i = i0;                                                                 \
      for (; i + SUMSQ_LANES <= i1; i += SUMSQ_LANES)                                 \
        for (int l = 0; l < SUMSQ_LANES; l++) lane[l] += (double)xs[i + l] * (double)xs[i + l]; \
      for (; i < i1; i++) s += (double)xs[i] * (double)xs[i];                         \
      for (int l = 0; l < SUMSQ_LANES; l++) s += lane[l];                             \
      partial[b] = s;                                                                 \
    }                                                                                 \
  } while (0)

int mtt_cpu_sum_squares(const mtt_tensor *x, double *out) {
  int64_t n = x->nelem, blocks = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
  *out = 0;
  if (n == 0) return 0;
  double *partial = malloc((size_t)blocks * sizeof *partial);
  if (!partial) return mtt_fail(MTT_ERR_MEMORY, "clip_grad_norm: out of memory");
  switch (x->dtype_id) {
    case MTT_F32: SUMSQ_LOOP(float); break;
    case MTT_F64: SUMSQ_LOOP(double); break;
    default:
      free(partial);
      return mtt_fail(MTT_ERR_DTYPE, "clip_grad_norm: dtype %s is not supported", mtt_dtype_name(x->dtype_id));
  }
  double s = 0;
  for (int64_t b = 0; b < blocks; b++) s += partial[b];
  free(partial);
  *out = s;
  return 0;
}

/* x *= s with s rounded to x's dtype first (torch multiplies by a coefficient tensor). */
int mtt_cpu_scale(mtt_tensor *x, double s) {
  int64_t n = x->nelem;
  switch (x->dtype_id) {
    case MTT_F32: {
      float *xs = mtt_data_ptr(x), c = (float)s;
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n))
      for (int64_t i = 0; i < n; i++) xs[i] *= c;
      break;
    }
    case MTT_F64: {
      double *xs = mtt_data_ptr(x);
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n))
      for (int64_t i = 0; i < n; i++) xs[i] *= s;
      break;
    }
    default: return mtt_fail(MTT_ERR_DTYPE, "clip_grad_norm: dtype %s is not supported", mtt_dtype_name(x->dtype_id));
  }
  return 0;
}
