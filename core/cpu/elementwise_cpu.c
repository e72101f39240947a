/* elementwise_cpu.c: unary, binary, masked-fill and in-place kernels for f32/f64 (binary and
 * in-place ops also take i32). Every element is computed independently, so results never depend
 * on the thread count. */
#include <math.h>
#include <string.h>

#include "cpu/kernels_cpu.h"
#include "cpu/strided.h"
#include "cpu/vec_math.h"

#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_C 0.044715

static void gelu_f32(float *y, const float *x, int64_t n) {
  const float k = (float)GELU_K, c = (float)GELU_C;
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n * 8))
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + mtt_tanh_f32(k * (v + c * v * v * v)));
  }
}

static void gelu_backward_f32(float *gx, const float *gy, const float *x, int64_t n) {
  const float k = (float)GELU_K, c = (float)GELU_C;
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n * 8))
  for (int64_t i = 0; i < n; i++) {
    float v = x[i], th = mtt_tanh_f32(k * (v + c * v * v * v));
    gx[i] = gy[i] * (0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * k * (1.0f + 3.0f * c * v * v));
  }
}

static inline double unary_f(int op, double x, double p0, double p1) {
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

/* f32 versions use float math so that gcc can vectorize the hot ones. */
static inline float unary_f32(int op, float x, float p0, float p1) {
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

int mtt_cpu_unary(int op, mtt_tensor *out, const mtt_tensor *x, double p0, double p1) {
  int64_t n = x->nelem;
  if (x->dtype_id == MTT_F32 && op == MTT_U_GELU) {
    gelu_f32(mtt_data_ptr(out), mtt_data_ptr(x), n);
  } else if (x->dtype_id == MTT_F32) {
    const float *xs = mtt_data_ptr(x);
    float *ys = mtt_data_ptr(out);
    float q0 = (float)p0, q1 = (float)p1;
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n * 4))
    for (int64_t i = 0; i < n; i++) ys[i] = unary_f32(op, xs[i], q0, q1);
  } else {
    const double *xs = mtt_data_ptr(x);
    double *ys = mtt_data_ptr(out);
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n * 4))
    for (int64_t i = 0; i < n; i++) ys[i] = unary_f(op, xs[i], p0, p1);
  }
  return 0;
}

/* dy/dx for each op, from the input x and the output y. */
static inline double unary_deriv(int op, double x, double y, double p0, double p1) {
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

static inline float unary_deriv_f32(int op, float x, float y, float p0, float p1) {
  switch (op) {
    case MTT_U_GELU: {
      float inner = (float)GELU_K * (x + (float)GELU_C * x * x * x), th = tanhf(inner);
      return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * (float)GELU_K * (1.0f + 3.0f * (float)GELU_C * x * x);
    }
    case MTT_U_EXP: return y;
    case MTT_U_TANH: return 1.0f - y * y;
    case MTT_U_RELU: return x > 0 ? 1.0f : 0.0f;
    case MTT_U_MUL_S: return p0;
    default: return (float)unary_deriv(op, x, y, p0, p1);
  }
}

int mtt_cpu_unary_backward(int op, mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *x, const mtt_tensor *y,
                           double p0, double p1) {
  int64_t n = gy->nelem;
  if (gy->dtype_id == MTT_F32 && op == MTT_U_GELU) {
    gelu_backward_f32(mtt_data_ptr(gx), mtt_data_ptr(gy), mtt_data_ptr(x), n);
  } else if (gy->dtype_id == MTT_F32) {
    const float *g = mtt_data_ptr(gy), *xs = x ? mtt_data_ptr(x) : NULL, *ys = y ? mtt_data_ptr(y) : NULL;
    float *out = mtt_data_ptr(gx);
    float q0 = (float)p0, q1 = (float)p1;
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n * 4))
    for (int64_t i = 0; i < n; i++) out[i] = g[i] * unary_deriv_f32(op, xs ? xs[i] : 0, ys ? ys[i] : 0, q0, q1);
  } else {
    const double *g = mtt_data_ptr(gy), *xs = x ? mtt_data_ptr(x) : NULL, *ys = y ? mtt_data_ptr(y) : NULL;
    double *out = mtt_data_ptr(gx);
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n * 4))
    for (int64_t i = 0; i < n; i++) out[i] = g[i] * unary_deriv(op, xs ? xs[i] : 0, ys ? ys[i] : 0, p0, p1);
  }
  return 0;
}

static inline double binary_f(int op, double a, double b) {
  switch (op) {
    case MTT_B_ADD: return a + b;
    case MTT_B_SUB: return a - b;
    case MTT_B_MUL: return a * b;
    case MTT_B_DIV: return a / b;
    case MTT_B_EQ: return a == b;
    case MTT_B_GT: return a > b;
    case MTT_B_LT: return a < b;
  }
  return NAN;
}

static inline float binary_f32(int op, float a, float b) {
  switch (op) {
    case MTT_B_ADD: return a + b;
    case MTT_B_SUB: return a - b;
    case MTT_B_MUL: return a * b;
    case MTT_B_DIV: return a / b;
    case MTT_B_EQ: return a == b;
    case MTT_B_GT: return a > b;
    case MTT_B_LT: return a < b;
  }
  return NAN;
}

/* Reads element j of a row through a stride, any dtype, as double (slow path only). */
static inline double load_any(const void *base, int dtype, int64_t off) {
  switch (dtype) {
    case MTT_F32: return ((const float *)base)[off];
    case MTT_F64: return ((const double *)base)[off];
    default: return ((const int32_t *)base)[off];
  }
}

static inline void store_any(void *base, int dtype, int64_t off, double v) {
  switch (dtype) {
    case MTT_F32: ((float *)base)[off] = (float)v; break;
    case MTT_F64: ((double *)base)[off] = v; break;
    default: ((int32_t *)base)[off] = (int32_t)v; break;
  }
}

/* How a broadcast view can be walked as a flat array: 1 = contiguous, 0 = one repeated element
 * (every stride 0), -1 = neither (walk row by row). */
static int flat_step(const mtt_tensor *t) {
  if (mtt_is_contiguous(t)) return 1;
  for (int d = 0; d < t->ndim; d++)
    if (t->strides[d] != 0 && t->dims[d] != 1) return -1;
  return 0;
}

/* Flat f32 loops over the whole tensor, split evenly across threads (rows may be few and long). */
static bool binary_flat_f32(int op, mtt_tensor *out, const mtt_tensor *a, const mtt_tensor *b) {
  int ka = flat_step(a), kb = flat_step(b);
  if (ka < 0 || kb < 0 || out->dtype_id != MTT_F32 || a->dtype_id != MTT_F32) return false;
  const float *x = mtt_data_ptr(a), *y = mtt_data_ptr(b);
  float *z = mtt_data_ptr(out);
  int64_t n = out->nelem;
  int threads = mtt_threads_for(n);
  if (ka && kb) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; i++) z[i] = binary_f32(op, x[i], y[i]);
  } else if (ka) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; i++) z[i] = binary_f32(op, x[i], y[0]);
  } else {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; i++) z[i] = binary_f32(op, x[ka ? i : 0], y[kb ? i : 0]);
  }
  return true;
}

int mtt_cpu_binary(int op, mtt_tensor *out, const mtt_tensor *a, const mtt_tensor *b) {
  if (binary_flat_f32(op, out, a, b)) return 0;
  int64_t rows = mtt_row_count(out), len = mtt_row_len(out);
  int64_t sa = mtt_row_stride(a), sb = mtt_row_stride(b);
  int dt = out->dtype_id, in_dt = a->dtype_id;
  void *ob = out->storage->data;
  const void *ab = a->storage->data, *bb = b->storage->data;
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(out->nelem))
  for (int64_t r = 0; r < rows; r++) {
    int64_t oa = mtt_row_offset(a, r), obo = mtt_row_offset(b, r), oo = out->offset + r * len;
    if (dt == MTT_F32 && in_dt == MTT_F32) {
      const float *x = (const float *)ab + oa, *y = (const float *)bb + obo;
      float *z = (float *)ob + oo;
      if (sa == 1 && sb == 1)
        for (int64_t j = 0; j < len; j++) z[j] = binary_f32(op, x[j], y[j]);
      else if (sa == 1 && sb == 0)
        for (int64_t j = 0; j < len; j++) z[j] = binary_f32(op, x[j], y[0]);
      else if (sa == 0 && sb == 1)
        for (int64_t j = 0; j < len; j++) z[j] = binary_f32(op, x[0], y[j]);
      else
        for (int64_t j = 0; j < len; j++) z[j] = binary_f32(op, x[j * sa], y[j * sb]);
    } else if (dt == MTT_F64 && in_dt == MTT_F64) {
      const double *x = (const double *)ab + oa, *y = (const double *)bb + obo;
      double *z = (double *)ob + oo;
      for (int64_t j = 0; j < len; j++) z[j] = binary_f(op, x[j * sa], y[j * sb]);
    } else {
      for (int64_t j = 0; j < len; j++)
        store_any(ob, dt, oo + j, binary_f(op, load_any(ab, in_dt, oa + j * sa), load_any(bb, in_dt, obo + j * sb)));
    }
  }
  return 0;
}

int mtt_cpu_masked_fill(mtt_tensor *out, const mtt_tensor *a, const mtt_tensor *mask, double value) {
  int64_t rows = mtt_row_count(out), len = mtt_row_len(out);
  int64_t sa = mtt_row_stride(a), sm = mtt_row_stride(mask);
  void *ob = out->storage->data;
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(out->nelem))
  for (int64_t r = 0; r < rows; r++) {
    int64_t oa = mtt_row_offset(a, r), om = mtt_row_offset(mask, r), oo = out->offset + r * len;
    for (int64_t j = 0; j < len; j++) {
      double m = load_any(mask->storage->data, mask->dtype_id, om + j * sm);
      store_any(ob, out->dtype_id, oo + j, m != 0 ? value : load_any(a->storage->data, a->dtype_id, oa + j * sa));
    }
  }
  return 0;
}

int mtt_cpu_binary_inplace(int op, mtt_tensor *t, const mtt_tensor *other, double alpha) {
  int ko = flat_step(other);
  if (t->dtype_id == MTT_F32 && other->dtype_id == MTT_F32 && mtt_is_contiguous(t) && ko >= 0) {
    float *x = mtt_data_ptr(t);
    const float *y = mtt_data_ptr(other);
    float al = (float)alpha;
    int64_t n = t->nelem, so = ko;
    if (op == MTT_B_ADD && so) {
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n))
      for (int64_t i = 0; i < n; i++) x[i] += al * y[i];
    } else if (op == MTT_B_ADD) {
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n))
      for (int64_t i = 0; i < n; i++) x[i] += al * y[0];
    } else {
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n))
      for (int64_t i = 0; i < n; i++) x[i] *= y[i * so];
    }
    return 0;
  }
  int64_t rows = mtt_row_count(t), len = mtt_row_len(t);
  int64_t st = mtt_row_stride(t), so = mtt_row_stride(other);
  void *tb = t->storage->data;
  const void *obase = other->storage->data;
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(t->nelem))
  for (int64_t r = 0; r < rows; r++) {
    int64_t ot = mtt_row_offset(t, r), oo = mtt_row_offset(other, r);
    if (t->dtype_id == MTT_F32 && other->dtype_id == MTT_F32 && st == 1 && so == 1) {
      float *x = (float *)tb + ot;
      const float *y = (const float *)obase + oo;
      float al = (float)alpha;
      if (op == MTT_B_ADD)
        for (int64_t j = 0; j < len; j++) x[j] += al * y[j];
      else
        for (int64_t j = 0; j < len; j++) x[j] *= y[j];
    } else {
      for (int64_t j = 0; j < len; j++) {
        double x = load_any(tb, t->dtype_id, ot + j * st), y = load_any(obase, other->dtype_id, oo + j * so);
        store_any(tb, t->dtype_id, ot + j * st, op == MTT_B_ADD ? x + alpha * y : x * y);
      }
    }
  }
  return 0;
}
