/* matmul.c: matrix products as torch.matmul has them (2-D, batched with broadcast batch dims,
 * ND @ 2-D as one gemm over all rows, 1-D operands as vectors) and their gradients. Operands go
 * to the backend's gemm as views; transposes are strides, not copies. */
#include "backend.h"

/* The row stride of t viewed as [rows, last dim] (all leading dims merged), or -1 if the
 * leading dims cannot merge without a copy. */
static int64_t merged_row_stride(const mtt_tensor *t) {
  int64_t stride = -1, span = 1;
  for (int d = t->ndim - 2; d >= 0; d--) {
    if (t->dims[d] == 1) continue;
    if (stride < 0) {
      stride = t->strides[d];
      span = t->dims[d];
    } else if (t->strides[d] == stride * span) {
      span *= t->dims[d];
    } else {
      return -1;
    }
  }
  return stride < 0 ? t->dims[t->ndim - 1] : stride; /* one row: any stride will do */
}

/* t's last two dims swapped (a view; no autograd). */
static mtt_tensor *transposed(const mtt_tensor *t) {
  int nd = t->ndim;
  int64_t shape[MTT_MAX_DIMS], strides[MTT_MAX_DIMS];
  for (int d = 0; d < nd; d++) {
    shape[d] = t->dims[d];
    strides[d] = t->strides[d];
  }
  shape[nd - 2] = t->dims[nd - 1];
  shape[nd - 1] = t->dims[nd - 2];
  strides[nd - 2] = t->strides[nd - 1];
  strides[nd - 1] = t->strides[nd - 2];
  return mtt_tensor_alias(t, nd, shape, strides, t->offset);
}

/* t as a 2-D [rows, last dim] view, copying only if its leading dims do not merge. */
static mtt_tensor *as_rows(const mtt_tensor *t) {
  int nd = t->ndim;
  int64_t k = t->dims[nd - 1], rows = mtt_shape_numel(nd - 1, t->dims);
  int64_t rs = merged_row_stride(t);
  if (rs >= 0) {
    int64_t shape[2] = {rows, k}, strides[2] = {rs, t->strides[nd - 1]};
    return mtt_tensor_alias(t, 2, shape, strides, t->offset);
  }
  mtt_tensor *c = mtt_copy_raw(t);
  if (!c) return NULL;
  int64_t shape[2] = {rows, k}, strides[2] = {k, 1};
  mtt_tensor *v = mtt_tensor_alias(c, 2, shape, strides, c->offset);
  mtt_tensor_release(c);
  return v;
}

/* a @ b for ndim >= 2 operands whose inner dims fit (checked by the caller); no autograd. */
static mtt_tensor *matmul_raw(const mtt_tensor *a, const mtt_tensor *b) {
  const mtt_backend *be = mtt_backend_of(a);
  int na = a->ndim, nb = b->ndim;
  int64_t m = a->dims[na - 2], k = a->dims[na - 1], n = b->dims[nb - 1];
  int64_t shape[MTT_MAX_DIMS];
  if (nb == 2) {
    /* [..., m, k] @ [k, n]: one gemm over all rows of a (the Linear case). */
    for (int d = 0; d < na; d++) shape[d] = a->dims[d];
    shape[na - 1] = n;
    mtt_tensor *out = mtt_tensor_new(na, shape, a->dtype_id, a->device_id);
    mtt_tensor *a2 = out ? as_rows(a) : NULL;
    int64_t rows = mtt_shape_numel(na - 1, a->dims), cshape[2] = {rows, n}, cstrides[2] = {n, 1};
    mtt_tensor *c2 = a2 ? mtt_tensor_alias(out, 2, cshape, cstrides, out->offset) : NULL;
    int rc = c2 ? be->gemm(c2, a2, b, 1.0, 0.0) : -1;
    mtt_tensor_release(a2);
    mtt_tensor_release(c2);
    if (rc) {
      mtt_tensor_release(out);
      return NULL;
    }
    return out;
  }
  /* Batched: broadcast the batch dims; a broadcast operand gets stride 0 there. */
  int nbat = (na > nb ? na : nb) - 2;
  int64_t sa[MTT_MAX_DIMS], sb[MTT_MAX_DIMS], shape_a[MTT_MAX_DIMS], shape_b[MTT_MAX_DIMS];
  for (int d = 0; d < nbat; d++) {
    int da = d - (nbat - (na - 2)), db = d - (nbat - (nb - 2));
    int64_t xa = da >= 0 ? a->dims[da] : 1, xb = db >= 0 ? b->dims[db] : 1;
    if (xa != xb && xa != 1 && xb != 1)
      MTT_FAIL_NULL(MTT_ERR_SHAPE, "matmul: batch dims of %s and %s cannot be broadcast (%lld vs %lld)",
                    mtt_tshape(a), mtt_tshape(b), (long long)xa, (long long)xb);
    shape[d] = xa == 1 ? xb : xa;
    sa[d] = (da >= 0 && xa != 1) ? a->strides[da] : 0;
    sb[d] = (db >= 0 && xb != 1) ? b->strides[db] : 0;
    shape_a[d] = shape_b[d] = shape[d];
  }
  shape[nbat] = m;
  shape[nbat + 1] = n;
  shape_a[nbat] = m;
  shape_a[nbat + 1] = k;
  shape_b[nbat] = k;
  shape_b[nbat + 1] = n;
  sa[nbat] = a->strides[na - 2];
  sa[nbat + 1] = a->strides[na - 1];
  sb[nbat] = b->strides[nb - 2];
  sb[nbat + 1] = b->strides[nb - 1];
  mtt_tensor *out = mtt_tensor_new(nbat + 2, shape, a->dtype_id, a->device_id);
  mtt_tensor *ae = out ? mtt_tensor_alias(a, nbat + 2, shape_a, sa, a->offset) : NULL;
  mtt_tensor *bexp = ae ? mtt_tensor_alias(b, nbat + 2, shape_b, sb, b->offset) : NULL;
  int rc = bexp ? be->gemm(out, ae, bexp, 1.0, 0.0) : -1;
  mtt_tensor_release(ae);
  mtt_tensor_release(bexp);
  if (rc) {
    mtt_tensor_release(out);
    return NULL;
  }
  return out;
}

/* g summed down to the input shape m (broadcast batch dims); takes ownership of g. */
static mtt_tensor *reduce_to(mtt_tensor *g, const mtt_meta *m) {
  if (!g) return NULL;
  bool same = g->ndim == m->ndim;
  for (int d = 0; same && d < m->ndim; d++) same = g->dims[d] == m->shape[d];
  if (same) return g;
  mtt_tensor *r = mtt_sum_to_shape(g, m->ndim, m->shape);
  mtt_tensor_release(g);
  return r;
}

/* dA = dC @ B^T, dB = A^T @ dC, each summed over the batch dims its input was broadcast on. */
static int matmul_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  if (mtt_node_needs_grad(node, 0)) {
    mtt_tensor *b = mtt_node_saved(node, 1);
    if (!b) return mtt_last_error_code();
    mtt_tensor *bt = transposed(b);
    gin[0] = bt ? reduce_to(matmul_raw(gy, bt), &node->input_meta[0]) : NULL;
    mtt_tensor_release(bt);
    if (!gin[0]) return mtt_last_error_code();
  }
  if (mtt_node_needs_grad(node, 1)) {
    mtt_tensor *a = mtt_node_saved(node, 0);
    if (!a) return mtt_last_error_code();
    /* b shared by every row of a: one gemm [k, rows] @ [rows, n] instead of a sum of products */
    bool flat = node->input_meta[1].ndim == 2 && a->ndim > 2;
    mtt_tensor *a2 = flat ? as_rows(a) : a, *g2 = flat ? as_rows(gy) : gy;
    mtt_tensor *at = a2 && g2 ? transposed(a2) : NULL;
    gin[1] = at ? reduce_to(matmul_raw(at, g2), &node->input_meta[1]) : NULL;
    mtt_tensor_release(at);
    if (flat) {
      mtt_tensor_release(a2);
      mtt_tensor_release(g2);
    }
    if (!gin[1]) return mtt_last_error_code();
  }
  return 0;
}
const mtt_op_def mtt_op_matmul = {"matmul", matmul_backward};

/* 1-D operands as torch.matmul treats them: a vector a is a [1, k] row, a vector b a [k, 1]
 * column, and the added dim is removed from the result. Built from differentiable views so
 * that autograd needs nothing more. */
static mtt_tensor *matmul_vector(mtt_tensor *a, mtt_tensor *b) {
  mtt_tensor *a2 = a->ndim == 1 ? mtt_unsqueeze(a, 0) : a;
  mtt_tensor *b2 = a2 ? (b->ndim == 1 ? mtt_unsqueeze(b, 1) : b) : NULL;
  mtt_tensor *y = b2 ? mtt_matmul(a2, b2) : NULL;
  if (y && b->ndim == 1) {
    mtt_tensor *s = mtt_squeeze(y, y->ndim - 1);
    mtt_tensor_release(y);
    y = s;
  }
  if (y && a->ndim == 1) {
    mtt_tensor *s = mtt_squeeze(y, y->ndim - (b->ndim == 1 ? 1 : 2));
    mtt_tensor_release(y);
    y = s;
  }
  if (a2 != a) mtt_tensor_release(a2);
  if (b2 != b) mtt_tensor_release(b2);
  return y;
}

mtt_tensor *mtt_matmul(mtt_tensor *a, mtt_tensor *b) {
  if (mtt_check_live(a, "matmul") || mtt_check_live(b, "matmul") || mtt_check_float(a, "matmul") ||
      mtt_check_same(a, b, "matmul"))
    return NULL;
  if (a->ndim == 0 || b->ndim == 0)
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "matmul: both operands need at least 1 dim, got %s and %s", mtt_tshape(a),
                  mtt_tshape(b));
  int64_t ka = a->dims[a->ndim - 1], kb = b->dims[b->ndim == 1 ? 0 : b->ndim - 2];
  if (ka != kb)
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "matmul: shapes %s and %s do not match (%lld != %lld)", mtt_tshape(a), mtt_tshape(b),
                  (long long)ka, (long long)kb);
  if (a->ndim == 1 || b->ndim == 1) return matmul_vector(a, b);
  mtt_tensor *y = matmul_raw(a, b);
  if (!y) return NULL;
  mtt_node *node = mtt_record(&mtt_op_matmul, y, 2, (mtt_tensor *[]){a, b});
  if (node) {
    if (mtt_node_needs_grad(node, 1)) mtt_node_save(node, 0, a);
    if (mtt_node_needs_grad(node, 0)) mtt_node_save(node, 1, b);
  }
  return y;
}
