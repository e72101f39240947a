/* attention_cuda.h: what the two attention files share: operands with any strides, the shape,
 * and which keys a query row sees. */
#ifndef MTT_ATTENTION_CUDA_H
#define MTT_ATTENTION_CUDA_H
#include "cuda/kernels_cuda.h"

/* One operand [..., T, D] with any strides; kernels add the leading index's offset. */
struct att_opnd {
  const void *base;
  int nlead;
  int64_t lead_dims[MTT_MAX_DIMS], lead_strides[MTT_MAX_DIMS];
  int64_t offset, rs, cs;
};

struct att_dims {
  int64_t n, tq, tk, d, dv, shift; /* shift = tk - tq: causal row i sees keys j <= i + shift */
  int causal;
};

static inline att_opnd opnd_of(const mtt_tensor *t) {
  att_opnd o;
  int nd = t->ndim;
  o.base = mtt_cu_base(t);
  o.nlead = nd - 2;
  for (int d = 0; d < nd - 2; d++) {
    o.lead_dims[d] = t->dims[d];
    o.lead_strides[d] = t->strides[d];
  }
  o.offset = t->offset;
  o.rs = t->strides[nd - 2];
  o.cs = t->strides[nd - 1];
  return o;
}

template <typename T>
__device__ __forceinline__ const T *opnd_at(const att_opnd &o, int64_t n) {
  int64_t off = o.offset;
  for (int d = o.nlead - 1; d >= 0; d--) {
    off += (n % o.lead_dims[d]) * o.lead_strides[d];
    n /= o.lead_dims[d];
  }
  return (const T *)o.base + off;
}

/* Keys visible to query row i: [0, visible). */
__device__ __forceinline__ int64_t att_visible(const att_dims &a, int64_t i) {
  if (!a.causal) return a.tk;
  int64_t v = i + 1 + a.shift;
  return v < a.tk ? v : a.tk;
}

static inline att_dims dims_of(const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v, int causal) {
  int nd = q->ndim;
  att_dims a;
  a.n = mtt_shape_numel(nd - 2, q->dims);
  a.tq = q->dims[nd - 2];
  a.tk = k->dims[nd - 2];
  a.d = q->dims[nd - 1];
  a.dv = v->dims[nd - 1];
  a.shift = a.tk - a.tq;
  a.causal = causal;
  return a;
}

#endif
