/* data.c: cpu kernels that move data: strided copy with dtype conversion, fill, random. */
#include <math.h>
#include <string.h>

#include "cpu/kernels_cpu.h"
#include "cpu/strided.h"

double mtt_cpu_load(const mtt_tensor *t, int64_t linear_index) {
  int64_t len = mtt_row_len(t);
  int64_t off = mtt_row_offset(t, linear_index / len) + (linear_index % len) * mtt_row_stride(t);
  const void *base = t->storage->data;
  switch (t->dtype_id) {
    case MTT_F32: return ((const float *)base)[off];
    case MTT_F64: return ((const double *)base)[off];
    case MTT_I32: return ((const int32_t *)base)[off];
    default: return NAN;
  }
}

static int check_dtype(const mtt_tensor *t, const char *op) {
  if (t->dtype_id == MTT_F32 || t->dtype_id == MTT_F64 || t->dtype_id == MTT_I32) return 0;
  return mtt_fail(MTT_ERR_DTYPE, "%s: dtype %s is not supported on the cpu", op, mtt_dtype_name(t->dtype_id));
}

/* One row of a copy: every dtype pair, converting through the destination type. */
static void copy_row(void *dst, int64_t doff, int64_t ds, int dt, const void *src, int64_t soff, int64_t ss, int st,
                     int64_t n) {
#define COPY_LOOP(DT, ST)                                                         \
  do {                                                                            \
    DT *d = (DT *)dst + doff;                                                     \
    const ST *s = (const ST *)src + soff;                                         \
    if (ds == 1 && ss == 1)                                                       \
      for (int64_t j = 0; j < n; j++) d[j] = (DT)s[j];                            \
    else                                                                          \
      for (int64_t j = 0; j < n; j++) d[j * ds] = (DT)s[j * ss];                  \
  } while (0)
  switch (dt * 8 + st) {
    case MTT_F32 * 8 + MTT_F32: COPY_LOOP(float, float); break;
    case MTT_F32 * 8 + MTT_F64: COPY_LOOP(float, double); break;
    case MTT_F32 * 8 + MTT_I32: COPY_LOOP(float, int32_t); break;
    case MTT_F64 * 8 + MTT_F32: COPY_LOOP(double, float); break;
    case MTT_F64 * 8 + MTT_F64: COPY_LOOP(double, double); break;
    case MTT_F64 * 8 + MTT_I32: COPY_LOOP(double, int32_t); break;
    case MTT_I32 * 8 + MTT_F32: COPY_LOOP(int32_t, float); break;
    case MTT_I32 * 8 + MTT_F64: COPY_LOOP(int32_t, double); break;
    case MTT_I32 * 8 + MTT_I32: COPY_LOOP(int32_t, int32_t); break;
  }
#undef COPY_LOOP
}

int mtt_cpu_copy(mtt_tensor *dst, const mtt_tensor *src) {
  if (check_dtype(dst, "copy") || check_dtype(src, "copy")) return mtt_last_error_code();
  if (dst->nelem != src->nelem)
    return mtt_fail(MTT_ERR_SHAPE, "copy: %s into %s", mtt_tshape(src), mtt_tshape(dst));
  if (dst->nelem == 0) return 0;
  size_t es = mtt_dtype_size(dst->dtype_id);
  if (dst->dtype_id == src->dtype_id && mtt_is_contiguous(dst) && mtt_is_contiguous(src)) {
    memmove((char *)dst->storage->data + dst->offset * es, (const char *)src->storage->data + src->offset * es,
            (size_t)dst->nelem * es);
    return 0;
  }
  int64_t rows = mtt_row_count(dst), len = mtt_row_len(dst);
  int64_t ds = mtt_row_stride(dst), ss = mtt_row_stride(src);
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(dst->nelem))
  for (int64_t r = 0; r < rows; r++)
    copy_row(dst->storage->data, mtt_row_offset(dst, r), ds, dst->dtype_id, src->storage->data, mtt_row_offset(src, r), ss,
             src->dtype_id, len);
  return 0;
}

int mtt_cpu_fill(mtt_tensor *dst, double value) {
  if (check_dtype(dst, "fill")) return mtt_last_error_code();
  int64_t rows = mtt_row_count(dst), len = mtt_row_len(dst), ds = mtt_row_stride(dst);
  void *base = dst->storage->data;
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(dst->nelem))
  for (int64_t r = 0; r < rows; r++) {
    int64_t off = mtt_row_offset(dst, r);
    switch (dst->dtype_id) {
      case MTT_F32: for (int64_t j = 0; j < len; j++) ((float *)base)[off + j * ds] = (float)value; break;
      case MTT_F64: for (int64_t j = 0; j < len; j++) ((double *)base)[off + j * ds] = value; break;
      case MTT_I32: for (int64_t j = 0; j < len; j++) ((int32_t *)base)[off + j * ds] = (int32_t)value; break;
    }
  }
  return 0;
}

/* Element i draws from Philox counter offset + i: the same numbers on any thread count. */
int mtt_cpu_rand(mtt_tensor *dst, int kind, double a, double b, uint64_t seed, uint64_t offset) {
  if (check_dtype(dst, "rand")) return mtt_last_error_code();
  int64_t n = dst->nelem;
  void *base = mtt_data_ptr(dst);
  double span = b - a;
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n * 8))
  for (int64_t i = 0; i < n; i++) {
    uint32_t w[4];
    mtt_philox(seed, offset + (uint64_t)i, w);
    double v;
    if (kind == MTT_RAND_NORMAL) {
      /* Box-Muller in double from two 32-bit words: u1 in (0,1] keeps log finite. */
      double u1 = ((double)w[0] + 1.0) / 4294967296.0, u2 = (double)w[1] / 4294967296.0;
      v = a + b * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    } else if (kind == MTT_RAND_INT) {
      uint64_t r = ((uint64_t)w[0] << 32) | w[1];
      v = a + (double)(r % (uint64_t)span);
    } else {
      /* 24 bits for f32 (exactly representable, so never rounds up to b), 53 for f64 */
      double u = dst->dtype_id == MTT_F64 ? (double)((((uint64_t)w[0] << 32) | w[1]) >> 11) * 0x1.0p-53
                                          : (double)(w[0] >> 8) * 0x1.0p-24;
      v = a + span * u;
    }
    switch (dst->dtype_id) {
      case MTT_F32: ((float *)base)[i] = (float)v; break;
      case MTT_F64: ((double *)base)[i] = v; break;
      case MTT_I32: ((int32_t *)base)[i] = (int32_t)v; break;
    }
  }
  return 0;
}
