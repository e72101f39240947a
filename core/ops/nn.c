/* nn.c: the fused network ops and their gradients: softmax, log_softmax, layer_norm,
 * embedding, cross_entropy, dropout. Each saves what its backward needs (outputs, row
 * statistics, indices) rather than recomputing the forward. */
#include <math.h>

#include "backend.h"

/* Releases up to four tensors (any may be NULL) and returns NULL, for error paths. */
static mtt_tensor *release4(mtt_tensor *a, mtt_tensor *b, mtt_tensor *c, mtt_tensor *d) {
  mtt_tensor_release(a);
  mtt_tensor_release(b);
  mtt_tensor_release(c);
  mtt_tensor_release(d);
  return NULL;
}

/* ---- softmax and log_softmax (over the last dim) ---- */

static int softmax_backward_common(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin, int log) {
  mtt_tensor *y = mtt_node_saved(node, 0);
  if (!y) return mtt_last_error_code();
  gin[0] = mtt_tensor_new_like(y);
  if (!gin[0] || mtt_backend_of(y)->softmax_backward(gin[0], gy, y, log)) return mtt_last_error_code();
  return 0;
}
static int softmax_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  return softmax_backward_common(node, gy, gin, 0);
}
static int log_softmax_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  return softmax_backward_common(node, gy, gin, 1);
}
const mtt_op_def mtt_op_softmax = {"softmax", softmax_backward};
const mtt_op_def mtt_op_log_softmax = {"log_softmax", log_softmax_backward};

static mtt_tensor *softmax_common(mtt_tensor *x, int dim, int log) {
  const char *op = log ? "log_softmax" : "softmax";
  if (mtt_check_live(x, op) || mtt_check_float(x, op)) return NULL;
  if (x->ndim == 0) MTT_FAIL_NULL(MTT_ERR_SHAPE, "%s: needs at least 1 dim, got a scalar", op);
  if (dim < 0) dim += x->ndim; /* -1 is the last dim, for C callers */
  if (mtt_check_dim(x, dim, op)) return NULL;
  if (dim != x->ndim - 1)
    MTT_FAIL_NULL(MTT_ERR_ARG, "%s: only the last dim (%d) is supported, got dim %d of %s; transpose first", op,
                  x->ndim, dim + 1, mtt_tshape(x));
  mtt_tensor *xc = mtt_contiguous_raw(x);
  mtt_tensor *y = xc ? mtt_tensor_new_like(x) : NULL;
  if (!y || mtt_backend_of(x)->softmax(y, xc, log)) return release4(xc, y, NULL, NULL);
  mtt_tensor_release(xc);
  mtt_node *node = mtt_record(log ? &mtt_op_log_softmax : &mtt_op_softmax, y, 1, &x);
  if (node) mtt_node_save(node, 0, y);
  return y;
}

mtt_tensor *mtt_softmax(mtt_tensor *x, int dim) { return softmax_common(x, dim, 0); }
mtt_tensor *mtt_log_softmax(mtt_tensor *x, int dim) { return softmax_common(x, dim, 1); }

/* ---- layer_norm (over the last dim) ---- */

/* saved: 0 x (contiguous), 1 weight (if i[0]), 2 mean, 3 rstd */
static int layer_norm_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  mtt_tensor *x = mtt_node_saved(node, 0), *mean = mtt_node_saved(node, 2), *rstd = mtt_node_saved(node, 3);
  if (!x || !mean || !rstd) return mtt_last_error_code();
  mtt_tensor *w = NULL;
  if (node->i[0] && !(w = mtt_node_saved(node, 1))) return mtt_last_error_code();
  int64_t c = x->dims[x->ndim - 1];
  if (mtt_node_needs_grad(node, 0) && !(gin[0] = mtt_tensor_new_like(x))) return mtt_last_error_code();
  if (mtt_node_needs_grad(node, 1) && !(gin[1] = mtt_tensor_new(1, &c, x->dtype_id, x->device_id)))
    return mtt_last_error_code();
  if (mtt_node_needs_grad(node, 2) && !(gin[2] = mtt_tensor_new(1, &c, x->dtype_id, x->device_id)))
    return mtt_last_error_code();
  return mtt_backend_of(x)->layer_norm_backward(gin[0], gin[1], gin[2], gy, x, w, mean, rstd);
}
const mtt_op_def mtt_op_layer_norm = {"layer_norm", layer_norm_backward};

static int check_ln_param(const mtt_tensor *x, const mtt_tensor *p, const char *what) {
  if (!p) return 0;
  if (mtt_check_live(p, "layer_norm") || mtt_check_same(x, p, "layer_norm")) return mtt_last_error_code();
  int64_t c = x->dims[x->ndim - 1];
  if (p->ndim != 1 || p->dims[0] != c)
    return mtt_fail(MTT_ERR_SHAPE, "layer_norm: %s %s does not match the last dim of input %s (expected [%lld])", what,
                    mtt_tshape(p), mtt_tshape(x), (long long)c);
  return 0;
}

mtt_tensor *mtt_layer_norm(mtt_tensor *x, mtt_tensor *weight, mtt_tensor *bias, double eps) {
  if (mtt_check_live(x, "layer_norm") || mtt_check_float(x, "layer_norm")) return NULL;
  if (x->ndim == 0) MTT_FAIL_NULL(MTT_ERR_SHAPE, "layer_norm: needs at least 1 dim, got a scalar");
  if (check_ln_param(x, weight, "weight") || check_ln_param(x, bias, "bias")) return NULL;
  if (!(eps >= 0) || eps == INFINITY) MTT_FAIL_NULL(MTT_ERR_ARG, "layer_norm: eps must be >= 0 and finite, got %g", eps);
  int64_t c = x->dims[x->ndim - 1], rows = c ? x->nelem / c : 0;
  mtt_tensor *xc = mtt_contiguous_raw(x);
  mtt_tensor *wc = xc && weight ? mtt_contiguous_raw(weight) : NULL;
  mtt_tensor *bc = xc && bias ? mtt_contiguous_raw(bias) : NULL;
  if (!xc || (weight && !wc) || (bias && !bc)) return release4(xc, wc, bc, NULL);
  mtt_tensor *y = mtt_tensor_new_like(x);
  mtt_tensor *mean = y ? mtt_tensor_new(1, &rows, x->dtype_id, x->device_id) : NULL;
  mtt_tensor *rstd = mean ? mtt_tensor_new(1, &rows, x->dtype_id, x->device_id) : NULL;
  if (!rstd || mtt_backend_of(x)->layer_norm(y, mean, rstd, xc, wc, bc, eps)) {
    release4(xc, wc, bc, y);
    return release4(mean, rstd, NULL, NULL);
  }
  mtt_node *node = mtt_record(&mtt_op_layer_norm, y, 3, (mtt_tensor *[]){x, weight, bias});
  if (node) {
    mtt_node_save(node, 0, xc);
    mtt_node_save(node, 1, wc);
    mtt_node_save(node, 2, mean);
    mtt_node_save(node, 3, rstd);
    node->i[0] = weight != NULL;
  }
  release4(xc, wc, bc, mean);
  mtt_tensor_release(rstd);
  return y;
}

/* ---- embedding ---- */

/* saved: 0 indices (contiguous) */
static int embedding_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  mtt_tensor *idx = mtt_node_saved(node, 0);
  if (!idx) return mtt_last_error_code();
  const mtt_meta *m = &node->input_meta[0];
  if (!(gin[0] = mtt_tensor_new(m->ndim, m->shape, m->dtype, m->device))) return mtt_last_error_code();
  return mtt_backend_of(gy)->embedding_backward(gin[0], gy, idx);
}
const mtt_op_def mtt_op_embedding = {"embedding", embedding_backward};

mtt_tensor *mtt_embedding(mtt_tensor *weight, mtt_tensor *indices) {
  if (mtt_check_live(weight, "embedding") || mtt_check_live(indices, "embedding") ||
      mtt_check_float(weight, "embedding"))
    return NULL;
  if (weight->ndim != 2) MTT_FAIL_NULL(MTT_ERR_SHAPE, "embedding: weight must be 2-d [V,C], got %s", mtt_tshape(weight));
  if (indices->dtype_id != MTT_I32)
    MTT_FAIL_NULL(MTT_ERR_DTYPE, "embedding: indices must be i32, got %s %s", mtt_dtype_name(indices->dtype_id),
                  mtt_tshape(indices));
  if (indices->device_id != weight->device_id)
    MTT_FAIL_NULL(MTT_ERR_DEVICE, "embedding: weight %s and indices %s are on different devices", mtt_tshape(weight),
                  mtt_tshape(indices));
  if (indices->ndim >= MTT_MAX_DIMS)
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "embedding: indices %s have too many dims (at most %d)", mtt_tshape(indices),
                  MTT_MAX_DIMS - 1);
  int64_t shape[MTT_MAX_DIMS];
  for (int d = 0; d < indices->ndim; d++) shape[d] = indices->dims[d];
  shape[indices->ndim] = weight->dims[1];
  mtt_tensor *wc = mtt_contiguous_raw(weight);
  mtt_tensor *ic = wc ? mtt_contiguous_raw(indices) : NULL;
  mtt_tensor *y = ic ? mtt_tensor_new(indices->ndim + 1, shape, weight->dtype_id, weight->device_id) : NULL;
  if (!y || mtt_backend_of(weight)->embedding(y, wc, ic)) return release4(wc, ic, y, NULL);
  mtt_node *node = mtt_record(&mtt_op_embedding, y, 1, &weight);
  if (node) mtt_node_save(node, 0, ic);
  release4(wc, ic, NULL, NULL);
  return y;
}

/* ---- cross_entropy (fused log_softmax + nll with a loss mask) ---- */

/* saved: 0 logits, 1 targets, 2 mask (or nothing), 3 per-row logsumexp; i[0] ignore_index */
static int cross_entropy_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  mtt_tensor *logits = mtt_node_saved(node, 0), *targets = mtt_node_saved(node, 1), *lse = mtt_node_saved(node, 3);
  if (!logits || !targets || !lse) return mtt_last_error_code();
  mtt_tensor *mask = NULL;
  if (node->i[1] && !(mask = mtt_node_saved(node, 2))) return mtt_last_error_code();
  if (!(gin[0] = mtt_tensor_new_like(logits))) return mtt_last_error_code();
  return mtt_backend_of(logits)->cross_entropy_backward(gin[0], gy, logits, lse, targets, mask, node->i[0]);
}
const mtt_op_def mtt_op_cross_entropy = {"cross_entropy", cross_entropy_backward};

static bool same_dims(const mtt_tensor *a, int ndim, const int64_t *shape) {
  if (a->ndim != ndim) return false;
  for (int d = 0; d < ndim; d++)
    if (a->dims[d] != shape[d]) return false;
  return true;
}

mtt_tensor *mtt_cross_entropy(mtt_tensor *logits, mtt_tensor *targets, mtt_tensor *mask, int64_t ignore_index) {
  const char *op = "cross_entropy";
  if (mtt_check_live(logits, op) || mtt_check_live(targets, op) || mtt_check_float(logits, op)) return NULL;
  if (mask && mtt_check_live(mask, op)) return NULL;
  if (logits->ndim == 0) MTT_FAIL_NULL(MTT_ERR_SHAPE, "cross_entropy: logits need a class dim, got a scalar");
  if (targets->dtype_id != MTT_I32)
    MTT_FAIL_NULL(MTT_ERR_DTYPE, "cross_entropy: targets must be i32, got %s %s", mtt_dtype_name(targets->dtype_id),
                  mtt_tshape(targets));
  if (!same_dims(targets, logits->ndim - 1, logits->dims))
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "cross_entropy: targets %s do not match logits %s (expected %s)", mtt_tshape(targets),
                  mtt_tshape(logits), mtt_shape_str(logits->ndim - 1, logits->dims));
  if (mask && !mtt_is_float_dtype(mask->dtype_id))
    MTT_FAIL_NULL(MTT_ERR_DTYPE, "cross_entropy: mask must be f32 or f64, got %s %s", mtt_dtype_name(mask->dtype_id),
                  mtt_tshape(mask));
  if (mask && !same_dims(mask, targets->ndim, targets->dims))
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "cross_entropy: mask %s does not match targets %s", mtt_tshape(mask),
                  mtt_tshape(targets));
  if (targets->device_id != logits->device_id || (mask && mask->device_id != logits->device_id))
    MTT_FAIL_NULL(MTT_ERR_DEVICE, "cross_entropy: logits, targets and mask must be on one device");
  mtt_tensor *lc = mtt_contiguous_raw(logits);
  mtt_tensor *tc = lc ? mtt_contiguous_raw(targets) : NULL;
  mtt_tensor *mc = tc && mask ? mtt_contiguous_raw(mask) : NULL;
  if (!tc || (mask && !mc)) return release4(lc, tc, mc, NULL);
  int64_t rows = targets->nelem;
  mtt_tensor *loss = mtt_tensor_new(0, NULL, logits->dtype_id, logits->device_id);
  mtt_tensor *lse = loss ? mtt_tensor_new(1, &rows, logits->dtype_id, logits->device_id) : NULL;
  if (!lse || mtt_backend_of(logits)->cross_entropy(loss, lse, lc, tc, mc, ignore_index)) {
    release4(lc, tc, mc, loss);
    return release4(lse, NULL, NULL, NULL);
  }
  mtt_node *node = mtt_record(&mtt_op_cross_entropy, loss, 1, &logits);
  if (node) {
    mtt_node_save(node, 0, lc);
    mtt_node_save(node, 1, tc);
    mtt_node_save(node, 2, mc);
    mtt_node_save(node, 3, lse);
    node->i[0] = ignore_index;
    node->i[1] = mask != NULL;
  }
  release4(lc, tc, mc, lse);
  return loss;
}

/* ---- dropout ---- */

/* The mask is regenerated from (seed, offset) in i[0], i[1]; p in f[0]. */
static int dropout_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  if (!(gin[0] = mtt_tensor_new_like(gy))) return mtt_last_error_code();
  return mtt_backend_of(gy)->dropout(gin[0], gy, node->f[0], (uint64_t)node->i[0], (uint64_t)node->i[1]);
}
const mtt_op_def mtt_op_dropout = {"dropout", dropout_backward};

mtt_tensor *mtt_dropout(mtt_tensor *x, double p, mtt_generator *gen) {
  if (mtt_check_live(x, "dropout") || mtt_check_float(x, "dropout")) return NULL;
  if (!(p >= 0 && p < 1)) MTT_FAIL_NULL(MTT_ERR_ARG, "dropout: p must be in [0, 1), got %g", p);
  if (p == 0) return mtt_clone(x);
  if (!gen) gen = mtt_default_generator();
  mtt_tensor *xc = mtt_contiguous_raw(x);
  mtt_tensor *y = xc ? mtt_tensor_new_like(x) : NULL;
  if (!y || mtt_backend_of(x)->dropout(y, xc, p, gen->seed, gen->offset)) return release4(xc, y, NULL, NULL);
  mtt_tensor_release(xc);
  mtt_node *node = mtt_record(&mtt_op_dropout, y, 1, &x);
  if (node) {
    node->f[0] = p;
    node->i[0] = (int64_t)gen->seed;
    node->i[1] = (int64_t)gen->offset;
  }
  gen->offset += (uint64_t)x->nelem;
  return y;
}
