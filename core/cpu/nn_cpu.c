/* nn_cpu.c: cpu kernels of the row-wise network ops: softmax, layer norm, embedding,
 * cross-entropy, dropout.
 *
 * Rows run in parallel and every sum has a fixed order: a row's own sums stay on one thread
 * (vectorized by `omp simd`, whose order is fixed by the build, not by the thread count), and
 * sums across rows go through fixed blocks added in order. f32 uses a vectorizable exp (libm's
 * expf is one call per element); f64, used by gradient checks, uses libm. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels_cpu.h"
#include "cpu/vec_math.h"
#include "philox.h"


/* ---- exp and max over a row ---- */


float mtt_cpu_expsum_f32(float *y, const float *x, float shift, int64_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; j++) {
    float e = mtt_exp_f32(x[j] - shift);
    y[j] = e;
    s += e;
  }
  return s;
}

double mtt_cpu_expsum_f64(double *y, const double *x, double shift, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; j++) {
    y[j] = exp(x[j] - shift);
    s += y[j];
  }
  return s;
}

static float max_f32(const float *x, int64_t n) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}

static double max_f64(const double *x, int64_t n) {
  double m = -INFINITY;
  for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}

static int check_float(const mtt_tensor *t, const char *op) {
  if (t->dtype_id == MTT_F32 || t->dtype_id == MTT_F64) return 0;
  return mtt_fail(MTT_ERR_DTYPE, "%s: dtype %s is not supported on the cpu", op, mtt_dtype_name(t->dtype_id));
}

/* ---- softmax and log_softmax ---- */

int mtt_cpu_softmax(mtt_tensor *out, const mtt_tensor *x, int take_log) {
  if (check_float(x, take_log ? "log_softmax" : "softmax")) return mtt_last_error_code();
  int64_t n = x->ndim ? x->dims[x->ndim - 1] : 1, rows = n ? x->nelem / n : 0;
#define SOFTMAX_ROWS(T, MAX, EXPSUM, LOG)                                                    \
  do {                                                                                       \
    const T *xs = mtt_data_ptr(x);                                                           \
    T *ys = mtt_data_ptr(out);                                                               \
    _Pragma("omp parallel for schedule(static) num_threads(mtt_threads_for(x->nelem * 8))")  \
    for (int64_t r = 0; r < rows; r++) {                                                     \
      const T *xr = xs + r * n;                                                              \
      T *yr = ys + r * n, mx = MAX(xr, n), s = EXPSUM(yr, xr, mx, n);                        \
      if (take_log) {                                                                        \
        T l = LOG(s); /* (x - max) - l keeps digits that x - (max + l) would lose */         \
        _Pragma("omp simd")                                                                  \
        for (int64_t j = 0; j < n; j++) yr[j] = (xr[j] - mx) - l;                            \
      } else {                                                                               \
        T inv = 1 / s;                                                                       \
        _Pragma("omp simd")                                                                  \
        for (int64_t j = 0; j < n; j++) yr[j] *= inv;                                        \
      }                                                                                      \
    }                                                                                        \
  } while (0)
  if (x->dtype_id == MTT_F32)
    SOFTMAX_ROWS(float, max_f32, mtt_cpu_expsum_f32, logf);
  else
    SOFTMAX_ROWS(double, max_f64, mtt_cpu_expsum_f64, log);
#undef SOFTMAX_ROWS
  return 0;
}

int mtt_cpu_softmax_backward(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *y, int take_log) {
  if (check_float(y, take_log ? "log_softmax" : "softmax")) return mtt_last_error_code();
  int64_t n = y->ndim ? y->dims[y->ndim - 1] : 1, rows = n ? y->nelem / n : 0;
#define SOFTMAX_BACKWARD_ROWS(T, EXP)                                                        \
  do {                                                                                       \
    const T *gys = mtt_data_ptr(gy), *ys = mtt_data_ptr(y);                                  \
    T *gxs = mtt_data_ptr(gx);                                                               \
    _Pragma("omp parallel for schedule(static) num_threads(mtt_threads_for(y->nelem * 4))")  \
    for (int64_t r = 0; r < rows; r++) {                                                     \
      const T *g = gys + r * n, *p = ys + r * n;                                             \
      T *o = gxs + r * n, s = 0;                                                             \
      if (take_log) {                                                                        \
        _Pragma("omp simd reduction(+ : s)")                                                 \
        for (int64_t j = 0; j < n; j++) s += g[j];                                           \
        _Pragma("omp simd")                                                                  \
        for (int64_t j = 0; j < n; j++) o[j] = g[j] - EXP(p[j]) * s;                         \
      } else {                                                                               \
        _Pragma("omp simd reduction(+ : s)")                                                 \
        for (int64_t j = 0; j < n; j++) s += g[j] * p[j];                                    \
        _Pragma("omp simd")                                                                  \
        for (int64_t j = 0; j < n; j++) o[j] = p[j] * (g[j] - s);                            \
      }                                                                                      \
    }                                                                                        \
  } while (0)
  if (y->dtype_id == MTT_F32)
    SOFTMAX_BACKWARD_ROWS(float, mtt_exp_f32);
  else
    SOFTMAX_BACKWARD_ROWS(double, exp);
#undef SOFTMAX_BACKWARD_ROWS
  return 0;
}

/* ---- layer norm ---- */

int mtt_cpu_layer_norm(mtt_tensor *out, mtt_tensor *mean, mtt_tensor *rstd, const mtt_tensor *x, const mtt_tensor *w,
                       const mtt_tensor *b, double eps) {
  if (check_float(x, "layer_norm")) return mtt_last_error_code();
  int64_t c = x->dims[x->ndim - 1], rows = c ? x->nelem / c : 0;
#define LAYER_NORM_ROWS(T, SQRT)                                                             \
  do {                                                                                       \
    const T *xs = mtt_data_ptr(x), *ws = w ? mtt_data_ptr(w) : NULL;                         \
    const T *bs = b ? mtt_data_ptr(b) : NULL;                                                \
    T *ys = mtt_data_ptr(out), *ms = mtt_data_ptr(mean), *rs = mtt_data_ptr(rstd);           \
    _Pragma("omp parallel for schedule(static) num_threads(mtt_threads_for(x->nelem * 4))")  \
    for (int64_t r = 0; r < rows; r++) {                                                     \
      const T *xr = xs + r * c;                                                              \
      T *yr = ys + r * c, s = 0, v = 0;                                                      \
      _Pragma("omp simd reduction(+ : s)")                                                   \
      for (int64_t j = 0; j < c; j++) s += xr[j];                                            \
      T mu = s / (T)c;                                                                       \
      _Pragma("omp simd reduction(+ : v)")                                                   \
      for (int64_t j = 0; j < c; j++) v += (xr[j] - mu) * (xr[j] - mu);                      \
      T inv = 1 / SQRT(v / (T)c + (T)eps);                                                   \
      ms[r] = mu;                                                                            \
      rs[r] = inv;                                                                           \
      _Pragma("omp simd")                                                                    \
      for (int64_t j = 0; j < c; j++) {                                                      \
        T h = (xr[j] - mu) * inv;                                                            \
        h = ws ? h * ws[j] : h;                                                              \
        yr[j] = bs ? h + bs[j] : h;                                                          \
      }                                                                                      \
    }                                                                                        \
  } while (0)
  if (x->dtype_id == MTT_F32)
    LAYER_NORM_ROWS(float, sqrtf);
  else
    LAYER_NORM_ROWS(double, sqrt);
#undef LAYER_NORM_ROWS
  return 0;
}

/* Rows are cut into this many fixed blocks (fewer if there are fewer rows) for the weight and
 * bias gradients: each block sums its rows in order, then the blocks are added in order. The
 * cut depends only on the row count, never on the thread count. */
#define LN_BLOCKS 32

int mtt_cpu_layer_norm_backward(mtt_tensor *gx, mtt_tensor *gw, mtt_tensor *gb, const mtt_tensor *gy,
                                const mtt_tensor *x, const mtt_tensor *w, const mtt_tensor *mean,
                                const mtt_tensor *rstd) {
  if (check_float(x, "layer_norm")) return mtt_last_error_code();
  int64_t c = x->dims[x->ndim - 1], rows = c ? x->nelem / c : 0;
  int64_t nblk = rows < LN_BLOCKS ? rows : LN_BLOCKS;
  size_t es = mtt_dtype_size(x->dtype_id);
  /* per block: partial gw (c) then partial gb (c) */
  void *partial = NULL;
  if ((gw || gb) && nblk > 0) {
    partial = calloc((size_t)(nblk * 2 * c), es);
    if (!partial) return mtt_fail(MTT_ERR_MEMORY, "layer_norm: out of memory for the weight gradient");
  }
#define LAYER_NORM_BACKWARD(T)                                                               \
  do {                                                                                       \
    const T *xs = mtt_data_ptr(x), *gys = mtt_data_ptr(gy), *ws = w ? mtt_data_ptr(w) : NULL; \
    const T *ms = mtt_data_ptr(mean), *rs = mtt_data_ptr(rstd);                              \
    T *gxs = gx ? mtt_data_ptr(gx) : NULL, *part = partial;                                  \
    _Pragma("omp parallel for schedule(static) num_threads(mtt_threads_for(x->nelem * 4))")  \
    for (int64_t k = 0; k < nblk; k++) {                                                     \
      T *pw = part ? part + k * 2 * c : NULL, *pb = pw ? pw + c : NULL;                      \
      for (int64_t r = k * rows / nblk; r < (k + 1) * rows / nblk; r++) {                    \
        const T *xr = xs + r * c, *g = gys + r * c;                                          \
        T mu = ms[r], inv = rs[r];                                                           \
        if (pw) {                                                                            \
          _Pragma("omp simd")                                                                \
          for (int64_t j = 0; j < c; j++) {                                                  \
            pw[j] += g[j] * ((xr[j] - mu) * inv);                                            \
            pb[j] += g[j];                                                                   \
          }                                                                                  \
        }                                                                                    \
        if (!gxs) continue;                                                                  \
        T sg = 0, sgx = 0;                                                                   \
        _Pragma("omp simd reduction(+ : sg, sgx)")                                           \
        for (int64_t j = 0; j < c; j++) {                                                    \
          T gj = ws ? g[j] * ws[j] : g[j];                                                   \
          sg += gj;                                                                          \
          sgx += gj * ((xr[j] - mu) * inv);                                                  \
        }                                                                                    \
        sg /= (T)c;                                                                          \
        sgx /= (T)c;                                                                         \
        T *o = gxs + r * c;                                                                  \
        _Pragma("omp simd")                                                                  \
        for (int64_t j = 0; j < c; j++) {                                                    \
          T gj = ws ? g[j] * ws[j] : g[j];                                                   \
          o[j] = inv * (gj - sg - ((xr[j] - mu) * inv) * sgx);                               \
        }                                                                                    \
      }                                                                                      \
    }                                                                                        \
    T *gws = gw ? mtt_data_ptr(gw) : NULL, *gbs = gb ? mtt_data_ptr(gb) : NULL;              \
    if (gws) memset(gws, 0, (size_t)c * sizeof(T));                                          \
    if (gbs) memset(gbs, 0, (size_t)c * sizeof(T));                                          \
    for (int64_t k = 0; k < nblk && part; k++)                                               \
      for (int64_t j = 0; j < c; j++) {                                                      \
        if (gws) gws[j] += part[k * 2 * c + j];                                              \
        if (gbs) gbs[j] += part[k * 2 * c + c + j];                                          \
      }                                                                                      \
  } while (0)
  if (x->dtype_id == MTT_F32)
    LAYER_NORM_BACKWARD(float);
  else
    LAYER_NORM_BACKWARD(double);
#undef LAYER_NORM_BACKWARD
  free(partial);
  return 0;
}

/* ---- embedding ---- */

int mtt_cpu_embedding(mtt_tensor *out, const mtt_tensor *weight, const mtt_tensor *idx) {
  if (check_float(weight, "embedding")) return mtt_last_error_code();
  int64_t v = weight->dims[0], c = weight->dims[1], n = idx->nelem;
  const int32_t *ids = mtt_data_ptr(idx);
  for (int64_t r = 0; r < n; r++)
    if (ids[r] < 0 || ids[r] >= v)
      return mtt_fail(MTT_ERR_INDEX, "embedding: index %d (at position %lld of indices %s) is out of range for %lld rows "
                      "(weight %s)", ids[r], (long long)r + 1, mtt_tshape(idx), (long long)v, mtt_tshape(weight));
  size_t row_bytes = (size_t)c * mtt_dtype_size(weight->dtype_id);
  const char *ws = mtt_data_ptr(weight);
  char *ys = mtt_data_ptr(out);
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n * c))
  for (int64_t r = 0; r < n; r++) memcpy(ys + (size_t)r * row_bytes, ws + (size_t)ids[r] * row_bytes, row_bytes);
  return 0;
}

/* Threads split the columns, and each walks all indices in order: a column's sums are always
 * added in index order, whatever the thread count, and no two threads touch one element. */
int mtt_cpu_embedding_backward(mtt_tensor *gw, const mtt_tensor *gy, const mtt_tensor *idx) {
  if (check_float(gw, "embedding")) return mtt_last_error_code();
  int64_t v = gw->dims[0], c = gw->dims[1], n = idx->nelem;
  const int32_t *ids = mtt_data_ptr(idx);
  int threads = mtt_threads_for(n * c);
  if (threads > c / 16) threads = c / 16 > 1 ? (int)(c / 16) : 1; /* keep column chunks vector-wide */
#define EMBEDDING_BACKWARD(T)                                                                \
  do {                                                                                       \
    T *g = mtt_data_ptr(gw);                                                                 \
    const T *gys = mtt_data_ptr(gy);                                                         \
    _Pragma("omp parallel num_threads(threads)")                                             \
    {                                                                                        \
      int nt = omp_get_num_threads(), t = omp_get_thread_num();                              \
      int64_t c0 = c * t / nt, c1 = c * (t + 1) / nt;                                        \
      for (int64_t i = 0; i < v; i++)                                                        \
        for (int64_t j = c0; j < c1; j++) g[i * c + j] = 0;                                  \
      for (int64_t r = 0; r < n; r++) {                                                      \
        T *dst = g + (int64_t)ids[r] * c;                                                    \
        const T *src = gys + r * c;                                                          \
        _Pragma("omp simd")                                                                  \
        for (int64_t j = c0; j < c1; j++) dst[j] += src[j];                                  \
      }                                                                                      \
    }                                                                                        \
  } while (0)
  if (gw->dtype_id == MTT_F32)
    EMBEDDING_BACKWARD(float);
  else
    EMBEDDING_BACKWARD(double);
#undef EMBEDDING_BACKWARD
  return 0;
}

/* ---- cross-entropy ---- */

/* Weight of row r: 0 if it does not count, else its mask value (1 without a mask). */
static double ce_weight(const mtt_tensor *mask, const int32_t *tg, int64_t r, int64_t ignore_index) {
  if (tg[r] == ignore_index) return 0;
  if (!mask) return 1;
  const void *m = mtt_data_ptr(mask);
  return mask->dtype_id == MTT_F32 ? (double)((const float *)m)[r] : ((const double *)m)[r];
}

static int64_t ce_count(const mtt_tensor *mask, const int32_t *tg, int64_t rows, int64_t ignore_index) {
  int64_t count = 0;
  for (int64_t r = 0; r < rows; r++) count += ce_weight(mask, tg, r, ignore_index) != 0;
  return count;
}

int mtt_cpu_cross_entropy(mtt_tensor *loss, mtt_tensor *lse, const mtt_tensor *logits, const mtt_tensor *targets,
                          const mtt_tensor *mask, int64_t ignore_index) {
  if (check_float(logits, "cross_entropy")) return mtt_last_error_code();
  if (mask && check_float(mask, "cross_entropy")) return mtt_last_error_code();
  int64_t v = logits->ndim ? logits->dims[logits->ndim - 1] : 1, rows = targets->nelem;
  const int32_t *tg = mtt_data_ptr(targets);
  for (int64_t r = 0; r < rows; r++)
    if (tg[r] != ignore_index && (tg[r] < 0 || tg[r] >= v))
      return mtt_fail(MTT_ERR_INDEX, "cross_entropy: target %d (at position %lld of targets %s) is out of range for %lld "
                      "classes (logits %s)", tg[r], (long long)r + 1, mtt_tshape(targets), (long long)v,
                      mtt_tshape(logits));
  int threads = mtt_threads_for(rows * v * 8);
  size_t es = mtt_dtype_size(logits->dtype_id);
  /* per row: its weighted loss; per thread: a row of exp values */
  double *row_loss = malloc(sizeof(double) * (size_t)(rows ? rows : 1));
  void *scratch = malloc(es * (size_t)(v ? v : 1) * (size_t)threads);
  if (!row_loss || !scratch) {
    free(row_loss);
    free(scratch);
    return mtt_fail(MTT_ERR_MEMORY, "cross_entropy: out of memory for logits %s", mtt_tshape(logits));
  }
#define CE_ROWS(T, MAX, EXPSUM, LOG)                                                         \
  do {                                                                                       \
    const T *xs = mtt_data_ptr(logits);                                                      \
    T *ls = mtt_data_ptr(lse);                                                               \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")                        \
    for (int64_t r = 0; r < rows; r++) {                                                     \
      double wr = ce_weight(mask, tg, r, ignore_index);                                      \
      row_loss[r] = 0;                                                                       \
      ls[r] = 0;                                                                             \
      if (wr == 0) continue;                                                                 \
      const T *xr = xs + r * v;                                                              \
      T mx = MAX(xr, v), *tmp = (T *)scratch + (int64_t)omp_get_thread_num() * v;            \
      T l = mx + LOG(EXPSUM(tmp, xr, mx, v));                                                \
      ls[r] = l;                                                                             \
      row_loss[r] = wr * ((double)l - (double)xr[tg[r]]);                                    \
    }                                                                                        \
  } while (0)
  if (logits->dtype_id == MTT_F32)
    CE_ROWS(float, max_f32, mtt_cpu_expsum_f32, logf);
  else
    CE_ROWS(double, max_f64, mtt_cpu_expsum_f64, log);
#undef CE_ROWS
  double total = 0;
  for (int64_t r = 0; r < rows; r++) total += row_loss[r];
  int64_t count = ce_count(mask, tg, rows, ignore_index);
  free(row_loss);
  free(scratch);
  double value = count ? total / (double)count : 0.0;
  if (loss->dtype_id == MTT_F32)
    *(float *)mtt_data_ptr(loss) = (float)value;
  else
    *(double *)mtt_data_ptr(loss) = value;
  return 0;
}

int mtt_cpu_cross_entropy_backward(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *logits,
                                   const mtt_tensor *lse, const mtt_tensor *targets, const mtt_tensor *mask,
                                   int64_t ignore_index) {
  if (check_float(logits, "cross_entropy")) return mtt_last_error_code();
  int64_t v = logits->ndim ? logits->dims[logits->ndim - 1] : 1, rows = targets->nelem;
  const int32_t *tg = mtt_data_ptr(targets);
  int64_t count = ce_count(mask, tg, rows, ignore_index);
  double g = mtt_cpu_load(gy, 0), scale = count ? g / (double)count : 0.0;
#define CE_BACKWARD_ROWS(T, EXP)                                                             \
  do {                                                                                       \
    const T *xs = mtt_data_ptr(logits), *ls = mtt_data_ptr(lse);                             \
    T *gs = mtt_data_ptr(gx);                                                                \
    _Pragma("omp parallel for schedule(static) num_threads(mtt_threads_for(rows * v * 4))")  \
    for (int64_t r = 0; r < rows; r++) {                                                     \
      T *o = gs + r * v;                                                                     \
      double wr = ce_weight(mask, tg, r, ignore_index);                                      \
      if (wr == 0) {                                                                         \
        memset(o, 0, sizeof(T) * (size_t)v);                                                 \
        continue;                                                                            \
      }                                                                                      \
      const T *xr = xs + r * v;                                                              \
      T l = ls[r], f = (T)(wr * scale);                                                      \
      _Pragma("omp simd")                                                                    \
      for (int64_t j = 0; j < v; j++) o[j] = EXP(xr[j] - l) * f;                             \
      o[tg[r]] -= f;                                                                         \
    }                                                                                        \
  } while (0)
  if (logits->dtype_id == MTT_F32)
    CE_BACKWARD_ROWS(float, mtt_exp_f32);
  else
    CE_BACKWARD_ROWS(double, exp);
#undef CE_BACKWARD_ROWS
  return 0;
}

/* ---- dropout ---- */

/* Word 0 of mtt_philox(seed, counter), inlined so that the loop below vectorizes; the test
 * checks that the two agree. */
static inline uint32_t philox_word0(uint64_t seed, uint64_t counter) {
  uint32_t w[4];
  mtt_philox_inline(seed, counter, w);
  return w[0];
}

int mtt_cpu_dropout(mtt_tensor *out, const mtt_tensor *x, double p, uint64_t seed, uint64_t offset) {
  if (check_float(x, "dropout")) return mtt_last_error_code();
  int64_t n = x->nelem;
  double scale = 1.0 / (1.0 - p);
  /* uniform01(w) = ((w >> 8) + 1) / 2^24 > p  <=>  (w >> 8) >= floor(p * 2^24): an integer compare */
  uint32_t edge = (uint32_t)floor(p * 16777216.0);
#define DROPOUT(T)                                                                           \
  do {                                                                                       \
    const T *xs = mtt_data_ptr(x);                                                           \
    T *ys = mtt_data_ptr(out), s = (T)scale;                                                 \
    _Pragma("omp parallel for simd schedule(static) num_threads(mtt_threads_for(n * 32))")   \
    for (int64_t i = 0; i < n; i++) {                                                        \
      uint32_t w = philox_word0(seed, offset + (uint64_t)i);                                 \
      ys[i] = (w >> 8) >= edge ? xs[i] * s : 0;                                              \
    }                                                                                        \
  } while (0)
  if (x->dtype_id == MTT_F32)
    DROPOUT(float);
  else
    DROPOUT(double);
#undef DROPOUT
  return 0;
}
