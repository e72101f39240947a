/* strided.h: walking tensors of any layout on the cpu, a row (last dim) at a time. */
#ifndef MTT_CPU_STRIDED_H
#define MTT_CPU_STRIDED_H
#include "internal.h"

/* Element offset (in elements, including t->offset) of the first element of row `row`, where a
 * row is the last dim and rows are numbered in logical (row-major) order. */
static inline int64_t mtt_row_offset(const mtt_tensor *t, int64_t row) {
  int64_t off = t->offset;
  for (int d = t->ndim - 2; d >= 0; d--) {
    int64_t size = t->dims[d];
    off += (row % size) * t->strides[d];
    row /= size;
  }
  return off;
}

static inline int64_t mtt_row_len(const mtt_tensor *t) { return t->ndim ? t->dims[t->ndim - 1] : 1; }
static inline int64_t mtt_row_stride(const mtt_tensor *t) { return t->ndim ? t->strides[t->ndim - 1] : 1; }
static inline int64_t mtt_row_count(const mtt_tensor *t) {
  int64_t len = mtt_row_len(t);
  return len ? t->nelem / len : 0;
}
#endif
