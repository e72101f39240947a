/* index_cpu.c: gather / index_select, their adjoint (scatter-add) and top-k on the cpu.
 *
 * Tensors are seen as [O, M, I] around the indexed dim (O = dims before, I = dims after).
 * scatter_add is deterministic: each task owns whole columns of the gradient (one o, a block of
 * i) and adds the rows j in ascending order, so neither the order nor the thread count matter. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels_cpu.h"

#define COLUMN_BLOCK 64 /* columns of I per scatter task: long enough rows, enough tasks */

static void split_dims(const mtt_tensor *t, int dim, int64_t *outer, int64_t *inner) {
  int64_t o = 1, i = 1;
  for (int d = 0; d < dim; d++) o *= t->dims[d];
  for (int d = dim + 1; d < t->ndim; d++) i *= t->dims[d];
  *outer = o;
  *inner = i;
}

/* Every index value must lie in [0, size); reports the first one that does not. */
static int check_indices(const mtt_tensor *index, int64_t size, int dim, const char *op) {
  const int32_t *idx = mtt_data_ptr(index);
  for (int64_t n = 0; n < index->nelem; n++)
    if (idx[n] < 0 || idx[n] >= size)
      return mtt_fail(MTT_ERR_INDEX, "%s: index %d out of range for dim %d of size %lld (index %s)", op, (int)idx[n],
                      dim + 1, (long long)size, mtt_tshape(index));
  return 0;
}

/* Element moves only copy bits, so one loop per element size serves every dtype. */
#define GATHER_LOOP(T)                                                                  \
  do {                                                                                  \
    const T *xs = mtt_data_ptr(x);                                                      \
    T *ys = mtt_data_ptr(out);                                                          \
    _Pragma("omp parallel for schedule(static) num_threads(mtt_threads_for(rows * I))") \
    for (int64_t r = 0; r < rows; r++) {                                                \
      int64_t o = r / J, j = r % J;                                                     \
      T *dst = ys + r * I;                                                              \
      if (per_element) {                                                                \
        const int32_t *ir = idx + r * I;                                                \
        for (int64_t i = 0; i < I; i++) dst[i] = xs[(o * M + ir[i]) * I + i];           \
      } else {                                                                          \
        memcpy(dst, xs + (o * M + idx[j]) * I, (size_t)I * sizeof(T));                  \
      }                                                                                 \
    }                                                                                   \
  } while (0)

int mtt_cpu_gather(mtt_tensor *out, const mtt_tensor *x, const mtt_tensor *index, int dim, const char *op) {
  int64_t O, I, M = x->dims[dim], J = out->dims[dim];
  split_dims(out, dim, &O, &I);
  if (check_indices(index, M, dim, op)) return mtt_last_error_code();
  int per_element = index->ndim == out->ndim; /* else 1-D: one index per row j */
  const int32_t *idx = mtt_data_ptr(index);
  int64_t rows = O * J;
  switch (mtt_dtype_size(x->dtype_id)) {
    case 2: GATHER_LOOP(uint16_t); break;
    case 4: GATHER_LOOP(uint32_t); break;
    case 8: GATHER_LOOP(uint64_t); break;
    default: return mtt_fail(MTT_ERR_DTYPE, "%s: dtype %s is not supported on the cpu", op, mtt_dtype_name(x->dtype_id));
  }
  return 0;
}

/* Task t = (o, block of columns) adds the rows of gy into its columns of gx, j ascending. */
#define SCATTER_LOOP(T)                                                                   \
  do {                                                                                    \
    T *gxs = mtt_data_ptr(gx);                                                            \
    const T *gys = mtt_data_ptr(gy);                                                      \
    _Pragma("omp parallel for schedule(static) num_threads(mtt_threads_for(n))")          \
    for (int64_t i = 0; i < n; i++) gxs[i] = 0;                                           \
    _Pragma("omp parallel for schedule(static) num_threads(mtt_threads_for(O * J * I))") \
    for (int64_t t = 0; t < tasks; t++) {                                                 \
      int64_t o = t / blocks, i0 = (t % blocks) * bw, i1 = i0 + bw < I ? i0 + bw : I;     \
      for (int64_t j = 0; j < J; j++) {                                                   \
        const T *src = gys + (o * J + j) * I;                                             \
        if (per_element) {                                                                \
          const int32_t *ir = idx + (o * J + j) * I;                                      \
          for (int64_t i = i0; i < i1; i++) gxs[(o * M + ir[i]) * I + i] += src[i];       \
        } else {                                                                          \
          T *dst = gxs + (o * M + idx[j]) * I;                                            \
          for (int64_t i = i0; i < i1; i++) dst[i] += src[i];                             \
        }                                                                                 \
      }                                                                                   \
    }                                                                                     \
  } while (0)

int mtt_cpu_scatter_add(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *index, int dim, const char *op) {
  int64_t O, I, M = gx->dims[dim], J = gy->dims[dim];
  split_dims(gy, dim, &O, &I);
  if (check_indices(index, M, dim, op)) return mtt_last_error_code();
  int per_element = index->ndim == gy->ndim;
  const int32_t *idx = mtt_data_ptr(index);
  int64_t bw = I < COLUMN_BLOCK ? (I ? I : 1) : COLUMN_BLOCK;
  int64_t blocks = (I + bw - 1) / bw, tasks = O * blocks, n = gx->nelem;
  switch (gx->dtype_id) {
    case MTT_F32: SCATTER_LOOP(float); break;
    case MTT_F64: SCATTER_LOOP(double); break;
    default: return mtt_fail(MTT_ERR_DTYPE, "%s: gradient dtype %s is not supported", op, mtt_dtype_name(gx->dtype_id));
  }
  return 0;
}

/* ---- top-k ---- */

typedef struct topk_item {
  double v;
  int32_t i;
} topk_item;

/* Total orders: NaN counts above every number (as in torch), ties go to the lower index. */
static int topk_cmp_largest(const void *pa, const void *pb) {
  const topk_item *a = pa, *b = pb;
  int an = isnan(a->v), bn = isnan(b->v);
  if (an != bn) return an ? -1 : 1;
  if (!an && a->v != b->v) return a->v > b->v ? -1 : 1;
  return (a->i > b->i) - (a->i < b->i);
}

static int topk_cmp_smallest(const void *pa, const void *pb) {
  const topk_item *a = pa, *b = pb;
  int an = isnan(a->v), bn = isnan(b->v);
  if (an != bn) return an ? 1 : -1;
  if (!an && a->v != b->v) return a->v < b->v ? -1 : 1;
  return (a->i > b->i) - (a->i < b->i);
}

static double load_as_double(const void *base, int dtype, int64_t n) {
  switch (dtype) {
    case MTT_F32: return ((const float *)base)[n];
    case MTT_F64: return ((const double *)base)[n];
    default: return ((const int32_t *)base)[n];
  }
}

/* Restores the heap below position at; the root is the worst kept item (cmp > 0 = worse). */
static void heap_sift_down(topk_item *heap, int64_t count, int64_t at, int (*cmp)(const void *, const void *)) {
  for (;;) {
    int64_t worst = at, l = 2 * at + 1, r = l + 1;
    if (l < count && cmp(&heap[l], &heap[worst]) > 0) worst = l;
    if (r < count && cmp(&heap[r], &heap[worst]) > 0) worst = r;
    if (worst == at) return;
    topk_item tmp = heap[at];
    heap[at] = heap[worst];
    heap[worst] = tmp;
    at = worst;
  }
}

/* The best k of items[0..m) into the front of items, sorted. A heap of the k best so far (most
 * items lose against its root at once), then a sort of those k; a large k sorts everything.
 * The heap lives in items[0..k), which only holds items already read. */
static void topk_select(topk_item *items, int64_t m, int64_t k, int (*cmp)(const void *, const void *)) {
  if (4 * k >= m) {
    qsort(items, (size_t)m, sizeof *items, cmp);
    return;
  }
  for (int64_t at = k / 2 - 1; at >= 0; at--) heap_sift_down(items, k, at, cmp);
  for (int64_t n = k; n < m; n++) {
    if (cmp(&items[n], &items[0]) >= 0) continue;
    items[0] = items[n];
    heap_sift_down(items, k, 0, cmp);
  }
  qsort(items, (size_t)k, sizeof *items, cmp);
}

int mtt_cpu_topk(mtt_tensor *values, mtt_tensor *indices, const mtt_tensor *x, int dim, int largest) {
  int64_t O, I, M = x->dims[dim], k = values->dims[dim];
  split_dims(x, dim, &O, &I);
  int64_t rows = O * I;
  if (k == 0 || rows == 0) return 0;
  int dtype = x->dtype_id;
  const char *xs = mtt_data_ptr(x);
  char *vs = mtt_data_ptr(values);
  int32_t *is = mtt_data_ptr(indices);
  size_t es = mtt_dtype_size(dtype);
  int (*cmp)(const void *, const void *) = largest ? topk_cmp_largest : topk_cmp_smallest;
  int failed = 0;
#pragma omp parallel num_threads(mtt_threads_for(rows * M * 4))
  {
    topk_item *items = malloc((size_t)M * sizeof *items);
    if (!items) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(dynamic, 4)
    for (int64_t r = 0; r < rows; r++) {
      if (!items) continue;
      int64_t o = r / I, i = r % I;
      for (int64_t m = 0; m < M; m++) {
        items[m].v = load_as_double(xs, dtype, (o * M + m) * I + i);
        items[m].i = (int32_t)m;
      }
      topk_select(items, M, k, cmp);
      for (int64_t q = 0; q < k; q++) {
        int64_t dst = (o * k + q) * I + i, src = (o * M + items[q].i) * I + i;
        memcpy(vs + dst * es, xs + src * es, es); /* the original bits, not a round trip */
        is[dst] = items[q].i;
      }
    }
    free(items);
  }
  if (failed) return mtt_fail(MTT_ERR_MEMORY, "topk: out of memory for a row of %lld elements", (long long)M);
  return 0;
}
