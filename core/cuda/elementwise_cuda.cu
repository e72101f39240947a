/* elementwise_cuda.cu: unary, binary, masked-fill and in-place kernels, with the formulas of
 * cpu/elementwise_cpu.c (f32 in float arithmetic, f64 in double; binary and in-place ops also
 * take i32, computed through double as on the cpu). */
#include <math.h>

#include "cuda/kernels_cuda.h"

#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_C 0.044715

static dim3 stride_grid(int64_t n) {
  int64_t blocks = (n + 255) / 256, most = (int64_t)mtt_cuda_sm_count() * 8;
  return dim3((unsigned)(blocks < most ? blocks : most));
}

/* ---- unary ---- */

__device__ __forceinline__ double unary_f(int op, double x, double p0, double p1) {
  switch (op) {
    case MTT_U_NEG: return -x;
    case MTT_U_EXP: return exp(x);
    case MTT_U_LOG: return log(x);
    case MTT_U_SQRT: return sqrt(x);
    case MTT_U_TANH: return tanh(x);
    case MTT_U_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case MTT_U_GELU: return 0.5 * x * (1.0 + tanh(GELU_K * (x + GELU_C * x * x * x)));
    case MTT_U_RELU: return x > 0 ? x : 0;
    case MTT_U_CLAMP: return x < p0 ? p0 : (x > p1 ? p1 : x);
    case MTT_U_POW: return pow(x, p0);
    case MTT_U_ADD_S: return x + p0;
    case MTT_U_MUL_S: return x * p0;
    case MTT_U_RSUB_S: return p0 - x;
    case MTT_U_RDIV_S: return p0 / x;
  }
  return NAN;
}

__device__ __forceinline__ float unary_f(int op, float x, float p0, float p1) {
  switch (op) {
    case MTT_U_NEG: return -x;
    case MTT_U_EXP: return expf(x);
    case MTT_U_LOG: return logf(x);
    case MTT_U_SQRT: return sqrtf(x);
    case MTT_U_TANH: return tanhf(x);
    case MTT_U_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case MTT_U_GELU: return 0.5f * x * (1.0f + tanhf((float)GELU_K * (x + (float)GELU_C * x * x * x)));
    case MTT_U_RELU: return x > 0 ? x : 0;
    case MTT_U_CLAMP: return x < p0 ? p0 : (x > p1 ? p1 : x);
    case MTT_U_POW: return powf(x, p0);
    case MTT_U_ADD_S: return x + p0;
    case MTT_U_MUL_S: return x * p0;
    case MTT_U_RSUB_S: return p0 - x;
    case MTT_U_RDIV_S: return p0 / x;
  }
  return NAN;
}

template <typename T>
__global__ void unary_kernel(int op, T *y, const T *x, T p0, T p1, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = unary_f(op, x[i], p0, p1);
}

int mtt_cuda_unary(int op, mtt_tensor *out, const mtt_tensor *x, double p0, double p1) {
  int64_t n = x->nelem;
  if (n == 0) return 0;
  if (x->dtype_id == MTT_F32)
    return mtt_cuda_launch("unary", unary_kernel<float>, stride_grid(n), dim3(256), 0, op, (float *)mtt_data_ptr(out),
                           (const float *)mtt_data_ptr(x), (float)p0, (float)p1, n);
  if (x->dtype_id == MTT_F64)
    return mtt_cuda_launch("unary", unary_kernel<double>, stride_grid(n), dim3(256), 0, op, (double *)mtt_data_ptr(out),
                           (const double *)mtt_data_ptr(x), p0, p1, n);
  return mtt_fail(MTT_ERR_DTYPE, "unary op: dtype %s is not supported on cuda", mtt_dtype_name(x->dtype_id));
}

/* dy/dx from the input x and the output y. */
__device__ __forceinline__ double unary_deriv(int op, double x, double y, double p0, double p1) {
  switch (op) {
    case MTT_U_NEG: return -1;
    case MTT_U_EXP: return y;
    case MTT_U_LOG: return 1.0 / x;
    case MTT_U_SQRT: return 0.5 / y;
    case MTT_U_TANH: return 1.0 - y * y;
    case MTT_U_SIGMOID: return y * (1.0 - y);
    case MTT_U_GELU: {
      double inner = GELU_K * (x + GELU_C * x * x * x), th = tanh(inner);
      return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * GELU_K * (1.0 + 3.0 * GELU_C * x * x);
    }
    case MTT_U_RELU: return x > 0 ? 1 : 0;
    case MTT_U_CLAMP: return (x >= p0 && x <= p1) ? 1 : 0;
    case MTT_U_POW: return p0 == 0 ? 0 : p0 * pow(x, p0 - 1);
    case MTT_U_ADD_S: return 1;
    case MTT_U_MUL_S: return p0;
    case MTT_U_RSUB_S: return -1;
    case MTT_U_RDIV_S: return -p0 / (x * x);
  }
  return NAN;
}

__device__ __forceinline__ float unary_deriv(int op, float x, float y, float p0, float p1) {
  switch (op) {
    case MTT_U_GELU: {
      float inner = (float)GELU_K * (x + (float)GELU_C * x * x * x), th = tanhf(inner);
      return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * (float)GELU_K * (1.0f + 3.0f * (float)GELU_C * x * x);
    }
    case MTT_U_EXP: return y;
    case MTT_U_TANH: return 1.0f - y * y;
    case MTT_U_RELU: return x > 0 ? 1.0f : 0.0f;
    case MTT_U_MUL_S: return p0;
    default: return (float)unary_deriv(op, (double)x, (double)y, (double)p0, (double)p1);
  }
}

template <typename T>
__global__ void unary_backward_kernel(int op, T *gx, const T *gy, const T *x, const T *y, T p0, T p1, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    gx[i] = gy[i] * unary_deriv(op, x ? x[i] : (T)0, y ? y[i] : (T)0, p0, p1);
}

int mtt_cuda_unary_backward(int op, mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *x, const mtt_tensor *y,
                            double p0, double p1) {
  int64_t n = gy->nelem;
  if (n == 0) return 0;
  if (gy->dtype_id == MTT_F32)
    return mtt_cuda_launch("unary backward", unary_backward_kernel<float>, stride_grid(n), dim3(256), 0, op,
                           (float *)mtt_data_ptr(gx), (const float *)mtt_data_ptr(gy),
                           x ? (const float *)mtt_data_ptr(x) : (const float *)NULL,
                           y ? (const float *)mtt_data_ptr(y) : (const float *)NULL, (float)p0, (float)p1, n);
  if (gy->dtype_id == MTT_F64)
    return mtt_cuda_launch("unary backward", unary_backward_kernel<double>, stride_grid(n), dim3(256), 0, op,
                           (double *)mtt_data_ptr(gx), (const double *)mtt_data_ptr(gy),
                           x ? (const double *)mtt_data_ptr(x) : (const double *)NULL,
                           y ? (const double *)mtt_data_ptr(y) : (const double *)NULL, p0, p1, n);
  return mtt_fail(MTT_ERR_DTYPE, "unary op: dtype %s is not supported on cuda", mtt_dtype_name(gy->dtype_id));
}

/* ---- binary (broadcast views) ---- */

template <typename T>
__device__ __forceinline__ T binary_f(int op, T a, T b) {
  switch (op) {
    case MTT_B_ADD: return a + b;
    case MTT_B_SUB: return a - b;
    case MTT_B_MUL: return a * b;
    case MTT_B_DIV: return a / b;
    case MTT_B_EQ: return a == b;
    case MTT_B_GT: return a > b;
    case MTT_B_LT: return a < b;
  }
  return (T)NAN;
}

/* i32 goes through double as on the cpu (so 7 / 2 truncates the double 3.5 to 3). */
template <>
__device__ __forceinline__ int32_t binary_f<int32_t>(int op, int32_t a, int32_t b) {
  return (int32_t)binary_f<double>(op, (double)a, (double)b);
}

/* a and b walk flat (step 1) or stay on one element (step 0). */
template <typename T>
__global__ void binary_flat_kernel(int op, T *out, const T *a, int64_t sa, const T *b, int64_t sb, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = binary_f(op, a[i * sa], b[i * sb]);
}

/* One operand flat, the other a row repeated down the rows (a bias [n] added to [rows, n]). */
template <typename T>
__global__ void binary_row_kernel(int op, T *out, const T *flat, const T *row, uint32_t n, int row_first, int64_t total) {
  bool small = total <= 0xffffffffll; /* then the cheaper 32-bit remainder */
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    T r = row[small ? (uint32_t)i % n : (uint32_t)(i % n)];
    out[i] = row_first ? binary_f(op, r, flat[i]) : binary_f(op, flat[i], r);
  }
}

static bool is_row(const mtt_cu_layout &l) { return l.ndim == 2 && l.strides[0] == 0 && l.strides[1] == 1; }

template <typename T, typename I>
__global__ void binary_strided_kernel(int op, T *out, const T *a, mtt_cu_layout la, const T *b, mtt_cu_layout lb, I n) {
  for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x)
    out[i] = binary_f(op, a[mtt_cu_offset(la, i)], b[mtt_cu_offset(lb, i)]);
}

template <typename T>
static int binary_typed(int op, mtt_tensor *out, const mtt_tensor *a, const mtt_tensor *b) {
  int64_t n = out->nelem;
  const mtt_tensor *ts[3] = {out, a, b};
  mtt_cu_layout l[3];
  mtt_cu_layouts(3, ts, l);
  T *o = (T *)mtt_data_ptr(out);
  bool fa = mtt_cu_is_flat(l[1]), fb = mtt_cu_is_flat(l[2]), za = mtt_cu_is_scalar(l[1]), zb = mtt_cu_is_scalar(l[2]);
  if ((fa || za) && (fb || zb))
    return mtt_cuda_launch("binary op", binary_flat_kernel<T>, stride_grid(n), dim3(256), 0, op, o,
                           (const T *)mtt_data_ptr(a), (int64_t)(fa ? 1 : 0), (const T *)mtt_data_ptr(b),
                           (int64_t)(fb ? 1 : 0), n);
  if ((fa && is_row(l[2])) || (fb && is_row(l[1]))) {
    bool row_first = !fa;
    const mtt_tensor *flat = row_first ? b : a, *row = row_first ? a : b;
    int64_t len = (row_first ? l[1] : l[2]).dims[1];
    if (len < ((int64_t)1 << 31))
      return mtt_cuda_launch("binary op", binary_row_kernel<T>, stride_grid(n), dim3(256), 0, op, o,
                             (const T *)mtt_data_ptr(flat), (const T *)mtt_data_ptr(row), (uint32_t)len, (int)row_first, n);
  }
  if (n < ((int64_t)1 << 31))
    return mtt_cuda_launch("binary op", binary_strided_kernel<T, uint32_t>, stride_grid(n), dim3(256), 0, op, o,
                           (const T *)mtt_cu_base(a), l[1], (const T *)mtt_cu_base(b), l[2], (uint32_t)n);
  return mtt_cuda_launch("binary op", binary_strided_kernel<T, uint64_t>, stride_grid(n), dim3(256), 0, op, o,
                         (const T *)mtt_cu_base(a), l[1], (const T *)mtt_cu_base(b), l[2], (uint64_t)n);
}

int mtt_cuda_binary(int op, mtt_tensor *out, const mtt_tensor *a, const mtt_tensor *b) {
  if (out->nelem == 0) return 0;
  switch (a->dtype_id) {
    case MTT_F32: return binary_typed<float>(op, out, a, b);
    case MTT_F64: return binary_typed<double>(op, out, a, b);
    case MTT_I32: return binary_typed<int32_t>(op, out, a, b);
  }
  return mtt_fail(MTT_ERR_DTYPE, "binary op: dtype %s is not supported on cuda", mtt_dtype_name(a->dtype_id));
}

/* ---- masked fill ---- */

template <typename T>
__global__ void masked_fill_kernel(T *out, const T *a, mtt_cu_layout la, const void *mask, int mdt, mtt_cu_layout lm,
                                   T value, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = mtt_cu_load(mask, mdt, mtt_cu_offset(lm, (uint64_t)i)) != 0 ? value : a[mtt_cu_offset(la, (uint64_t)i)];
}

int mtt_cuda_masked_fill(mtt_tensor *out, const mtt_tensor *a, const mtt_tensor *mask, double value) {
  int64_t n = out->nelem;
  if (n == 0) return 0;
  const mtt_tensor *ts[3] = {out, a, mask};
  mtt_cu_layout l[3];
  mtt_cu_layouts(3, ts, l);
  switch (out->dtype_id) {
    case MTT_F32:
      return mtt_cuda_launch("masked_fill", masked_fill_kernel<float>, stride_grid(n), dim3(256), 0, (float *)mtt_data_ptr(out),
                             (const float *)mtt_cu_base(a), l[1], (const void *)mtt_cu_base(mask), mask->dtype_id, l[2],
                             (float)value, n);
    case MTT_F64:
      return mtt_cuda_launch("masked_fill", masked_fill_kernel<double>, stride_grid(n), dim3(256), 0, (double *)mtt_data_ptr(out),
                             (const double *)mtt_cu_base(a), l[1], (const void *)mtt_cu_base(mask), mask->dtype_id, l[2],
                             value, n);
    case MTT_I32:
      return mtt_cuda_launch("masked_fill", masked_fill_kernel<int32_t>, stride_grid(n), dim3(256), 0,
                             (int32_t *)mtt_data_ptr(out), (const int32_t *)mtt_cu_base(a), l[1],
                             (const void *)mtt_cu_base(mask), mask->dtype_id, l[2], (int32_t)value, n);
  }
  return mtt_fail(MTT_ERR_DTYPE, "masked_fill: dtype %s is not supported on cuda", mtt_dtype_name(out->dtype_id));
}

/* ---- in place: t op= alpha * other ---- */

template <typename T>
__global__ void inplace_kernel(int op, T *t, mtt_cu_layout lt, const T *o, mtt_cu_layout lo, T alpha, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t at = mtt_cu_offset(lt, (uint64_t)i);
    T y = o[mtt_cu_offset(lo, (uint64_t)i)];
    t[at] = op == MTT_B_ADD ? t[at] + alpha * y : t[at] * y;
  }
}

/* Mixed dtypes and i32 through double, as the cpu's slow path. */
__global__ void inplace_any_kernel(int op, void *t, int tdt, mtt_cu_layout lt, const void *o, int odt, mtt_cu_layout lo,
                                   double alpha, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t at = mtt_cu_offset(lt, (uint64_t)i);
    double x = mtt_cu_load(t, tdt, at), y = mtt_cu_load(o, odt, mtt_cu_offset(lo, (uint64_t)i));
    mtt_cu_store(t, tdt, at, op == MTT_B_ADD ? x + alpha * y : x * y);
  }
}

int mtt_cuda_binary_inplace(int op, mtt_tensor *t, const mtt_tensor *other, double alpha) {
  int64_t n = t->nelem;
  if (n == 0) return 0;
  const mtt_tensor *ts[2] = {t, other};
  mtt_cu_layout l[2];
  mtt_cu_layouts(2, ts, l);
  if (t->dtype_id == other->dtype_id && t->dtype_id == MTT_F32)
    return mtt_cuda_launch("in-place op", inplace_kernel<float>, stride_grid(n), dim3(256), 0, op, (float *)mtt_cu_base(t), l[0],
                           (const float *)mtt_cu_base(other), l[1], (float)alpha, n);
  if (t->dtype_id == other->dtype_id && t->dtype_id == MTT_F64)
    return mtt_cuda_launch("in-place op", inplace_kernel<double>, stride_grid(n), dim3(256), 0, op, (double *)mtt_cu_base(t),
                           l[0], (const double *)mtt_cu_base(other), l[1], alpha, n);
  if ((t->dtype_id != MTT_F32 && t->dtype_id != MTT_F64 && t->dtype_id != MTT_I32) ||
      (other->dtype_id != MTT_F32 && other->dtype_id != MTT_F64 && other->dtype_id != MTT_I32))
    return mtt_fail(MTT_ERR_DTYPE, "in-place op: dtypes %s and %s are not supported on cuda", mtt_dtype_name(t->dtype_id),
                    mtt_dtype_name(other->dtype_id));
  return mtt_cuda_launch("in-place op", inplace_any_kernel, stride_grid(n), dim3(256), 0, op, mtt_cu_base(t), t->dtype_id, l[0],
                         (const void *)mtt_cu_base(other), other->dtype_id, l[1], alpha, n);
}
