/* reduce_cpu.c: sum / max / argmax over one dim. The input is viewed as [outer, size, inner] and
 * each output element is reduced sequentially in index order, so results never depend on the
 * thread count; sums accumulate in double. A full reduction (outer = inner = 1) sums fixed
 * blocks in parallel and then the block sums in order: still thread-count independent. */
#include <math.h>
#include <stdlib.h>

#include "cpu/kernels_cpu.h"

#define BLOCK 4096
#define INNER_TILE 256

static inline double load(const void *base, int dtype, int64_t i) {
  return dtype == MTT_F32 ? ((const float *)base)[i] : dtype == MTT_F64 ? ((const double *)base)[i] : ((const int32_t *)base)[i];
}

static inline void store(void *base, int dtype, int64_t i, double v) {
  if (dtype == MTT_F32)
    ((float *)base)[i] = (float)v;
  else if (dtype == MTT_F64)
    ((double *)base)[i] = v;
  else
    ((int32_t *)base)[i] = (int32_t)v;
}

static double sum_range(const void *x, int dtype, int64_t start, int64_t n) {
  double acc = 0;
  if (dtype == MTT_F32) {
    const float *p = (const float *)x + start;
    for (int64_t i = 0; i < n; i++) acc += p[i];
  } else {
    for (int64_t i = 0; i < n; i++) acc += load(x, dtype, start + i);
  }
  return acc;
}

static int sum_all(mtt_tensor *out, const mtt_tensor *x) {
  const void *xs = mtt_data_ptr(x);
  int64_t n = x->nelem, blocks = (n + BLOCK - 1) / BLOCK;
  double *partial = malloc(sizeof(double) * (size_t)(blocks ? blocks : 1));
  if (!partial) return mtt_fail(MTT_ERR_MEMORY, "sum: out of memory");
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(n))
  for (int64_t b = 0; b < blocks; b++) {
    int64_t start = b * BLOCK, len = n - start < BLOCK ? n - start : BLOCK;
    partial[b] = sum_range(xs, x->dtype_id, start, len);
  }
  double total = 0;
  for (int64_t b = 0; b < blocks; b++) total += partial[b];
  free(partial);
  store(mtt_data_ptr(out), out->dtype_id, 0, total);
  return 0;
}

int mtt_cpu_reduce(int op, mtt_tensor *out, mtt_tensor *idx, const mtt_tensor *x, int dim) {
  int64_t outer = 1, inner = 1, size = x->ndim ? x->dims[dim] : 1;
  for (int d = 0; d < dim; d++) outer *= x->dims[d];
  for (int d = dim + 1; d < x->ndim; d++) inner *= x->dims[d];
  if (op == MTT_R_SUM && outer == 1 && inner == 1) return sum_all(out, x);
  const void *xs = mtt_data_ptr(x);
  void *os = out ? mtt_data_ptr(out) : NULL;
  int32_t *is = idx ? mtt_data_ptr(idx) : NULL;
  int dt = x->dtype_id;
  int64_t tiles = (inner + INNER_TILE - 1) / INNER_TILE;
  int failed = 0;
#pragma omp parallel for schedule(static) num_threads(mtt_threads_for(x->nelem))
  for (int64_t job = 0; job < outer * tiles; job++) {
    int64_t o = job / tiles, i0 = (job % tiles) * INNER_TILE;
    int64_t ni = inner - i0 < INNER_TILE ? inner - i0 : INNER_TILE;
    double acc[INNER_TILE];
    int32_t arg[INNER_TILE];
    const int64_t base = o * size * inner + i0;
    if (op == MTT_R_SUM) {
      for (int64_t i = 0; i < ni; i++) acc[i] = 0;
      if (dt == MTT_F32) {
        const float *p = (const float *)xs + base;
        for (int64_t k = 0; k < size; k++)
          for (int64_t i = 0; i < ni; i++) acc[i] += p[k * inner + i];
      } else {
        for (int64_t k = 0; k < size; k++)
          for (int64_t i = 0; i < ni; i++) acc[i] += load(xs, dt, base + k * inner + i);
      }
    } else {
      for (int64_t i = 0; i < ni; i++) {
        acc[i] = size ? load(xs, dt, base + i) : -INFINITY;
        arg[i] = 0;
      }
      for (int64_t k = 1; k < size; k++)
        for (int64_t i = 0; i < ni; i++) {
          double v = load(xs, dt, base + k * inner + i);
          /* NaN wins, as in PyTorch; otherwise the first maximum wins */
          if (v > acc[i] || (isnan(v) && !isnan(acc[i]))) {
            acc[i] = v;
            arg[i] = (int32_t)k;
          }
        }
      if (size == 0) failed = 1;
    }
    for (int64_t i = 0; i < ni; i++) {
      int64_t at = o * inner + i0 + i;
      if (os) store(os, out->dtype_id, at, acc[i]);
      if (is && op != MTT_R_SUM) is[at] = arg[i];
    }
  }
  if (failed) return mtt_fail(MTT_ERR_SHAPE, "max: cannot reduce over an empty dim of %s", mtt_tshape(x));
  return 0;
}
