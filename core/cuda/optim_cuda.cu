/* optim_cuda.cu: fused optimizer updates in place, step by step as cpu/optim_cpu.c (torch's
 * single-tensor formulas in the parameter's dtype), and the scaling behind clipping. */
#include <math.h>

#include "cuda/kernels_cuda.h"

static dim3 stride_grid(int64_t n) {
  int64_t blocks = (n + 255) / 256, most = (int64_t)mtt_cuda_sm_count() * 8;
  return dim3((unsigned)(blocks < most ? blocks : most));
}

/* torch.optim.SGD: d = g + wd*p; buf = first ? d : mom*buf + (1-damp)*d;
 * d = nesterov ? d + mom*buf : buf; p -= lr*d. */
template <typename T>
__global__ void sgd_kernel(T *p, const T *g, T *buf, T lr, T mom, T keep, T wd, int use_wd, int use_mom, int nesterov,
                           int first, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    T d = g[i];
    if (use_wd) d = d + wd * p[i];
    if (use_mom) {
      T b = first ? d : buf[i] * mom + keep * d;
      buf[i] = b;
      d = nesterov ? d + mom * b : b;
    }
    p[i] = p[i] - lr * d;
  }
}

int mtt_cuda_sgd(mtt_tensor *p, const mtt_tensor *g, mtt_tensor *buf, double lr, double momentum, double dampening,
                 double weight_decay, int nesterov, int first_step) {
  int64_t n = p->nelem;
  if (momentum != 0 && !buf) return mtt_fail(MTT_ERR_ARG, "sgd: momentum needs a momentum buffer");
  if (n == 0) return 0;
#define SGD_LAUNCH(T)                                                                                                \
  mtt_cuda_launch("sgd", sgd_kernel<T>, stride_grid(n), dim3(256), 0, (T *)mtt_data_ptr(p), (const T *)mtt_data_ptr(g), \
                  buf ? (T *)mtt_data_ptr(buf) : (T *)NULL, (T)lr, (T)momentum, (T)(1.0 - dampening), (T)weight_decay, \
                  weight_decay != 0, momentum != 0, nesterov, first_step, n)
  if (p->dtype_id == MTT_F32) return SGD_LAUNCH(float);
  if (p->dtype_id == MTT_F64) return SGD_LAUNCH(double);
#undef SGD_LAUNCH
  return mtt_fail(MTT_ERR_DTYPE, "sgd: dtype %s is not supported", mtt_dtype_name(p->dtype_id));
}

/* torch.optim.AdamW: p *= decay; m = m*b1 + (1-b1)*g; v = v*b2 + (1-b2)*g*g;
 * p += -step_size * m / (sqrt(v)/bc2_sqrt + eps). */
template <typename T>
__global__ void adamw_kernel(T *p, const T *g, T *m, T *v, T dec, T b1, T b2, T c1, T c2, T ep, T ss, T bc, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    T gi = g[i];
    T pi = p[i] * dec;
    T mi = m[i] * b1 + c1 * gi;
    T vi = v[i] * b2 + c2 * gi * gi;
    T denom = sqrt(vi) / bc + ep;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + ss * mi / denom;
  }
}

int mtt_cuda_adamw(mtt_tensor *p, const mtt_tensor *g, mtt_tensor *m, mtt_tensor *v, double decay, double beta1,
                   double beta2, double eps, double step_size, double bc2_sqrt) {
  int64_t n = p->nelem;
  if (n == 0) return 0;
#define ADAMW_LAUNCH(T)                                                                                                \
  mtt_cuda_launch("adamw", adamw_kernel<T>, stride_grid(n), dim3(256), 0, (T *)mtt_data_ptr(p),                        \
                  (const T *)mtt_data_ptr(g), (T *)mtt_data_ptr(m), (T *)mtt_data_ptr(v), (T)decay, (T)beta1, (T)beta2, \
                  (T)(1.0 - beta1), (T)(1.0 - beta2), (T)eps, (T)(-step_size), (T)bc2_sqrt, n)
  if (p->dtype_id == MTT_F32) return ADAMW_LAUNCH(float);
  if (p->dtype_id == MTT_F64) return ADAMW_LAUNCH(double);
#undef ADAMW_LAUNCH
  return mtt_fail(MTT_ERR_DTYPE, "adamw: dtype %s is not supported", mtt_dtype_name(p->dtype_id));
}

/* x *= s with s rounded to x's dtype first, as on the cpu. */
template <typename T>
__global__ void scale_kernel(T *x, T s, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) x[i] *= s;
}

int mtt_cuda_scale(mtt_tensor *x, double s) {
  int64_t n = x->nelem;
  if (n == 0) return 0;
  if (x->dtype_id == MTT_F32)
    return mtt_cuda_launch("clip_grad_norm", scale_kernel<float>, stride_grid(n), dim3(256), 0, (float *)mtt_data_ptr(x), (float)s, n);
  if (x->dtype_id == MTT_F64)
    return mtt_cuda_launch("clip_grad_norm", scale_kernel<double>, stride_grid(n), dim3(256), 0, (double *)mtt_data_ptr(x), s, n);
  return mtt_fail(MTT_ERR_DTYPE, "clip_grad_norm: dtype %s is not supported", mtt_dtype_name(x->dtype_id));
}
