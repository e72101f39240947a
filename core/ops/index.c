/* index.c: cat, gather, index_select (forward and backward) and topk.
 *
 * Index tensors are i32 with 0-based values, as in torch. gather and index_select share one
 * kernel pair (backend gather / scatter_add); their backward adds the gradient back at the
 * indexed positions in a fixed order, so repeated indices accumulate deterministically. */
#include <stdbool.h>

#include "backend.h"
#include "internal.h"

/* ---- cat ---- */

/* Gradient of input k: its slice of gy along dim (a contiguous copy). */
static int cat_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  int dim = (int)node->i[0];
  int64_t start = 0;
  for (int k = 0; k < node->n_inputs; k++) {
    const mtt_meta *m = &node->input_meta[k];
    if (mtt_node_needs_grad(node, k)) {
      mtt_tensor *part = mtt_tensor_alias(gy, m->ndim, m->shape, gy->strides, gy->offset + start * gy->strides[dim]);
      gin[k] = part ? mtt_copy_raw(part) : NULL;
      mtt_tensor_release(part);
      if (!gin[k]) return mtt_last_error_code();
    }
    start += m->shape[dim];
  }
  return 0;
}
const mtt_op_def mtt_op_cat = {"cat", cat_backward};

/* Records y = cat(xs) on the tape. A node has at most MTT_NODE_MAX_INPUTS inputs, so a longer
 * list becomes a tree: each group of inputs is recorded on a view of y covering its range (no
 * copy), and y's node concatenates those views. */
static int cat_record(mtt_tensor *y, int n, mtt_tensor **xs, int dim) {
  bool any = false;
  for (int k = 0; k < n; k++) any |= xs[k]->needs_grad != 0;
  if (!any || !mtt_grad_mode()) return 0;
  if (n <= MTT_NODE_MAX_INPUTS) {
    mtt_node *node = mtt_record(&mtt_op_cat, y, n, xs);
    if (node) node->i[0] = dim;
    return 0;
  }
  int group = (n + MTT_NODE_MAX_INPUTS - 1) / MTT_NODE_MAX_INPUTS, np = 0, rc = 0;
  mtt_tensor *parts[MTT_NODE_MAX_INPUTS] = {0};
  int64_t start = 0;
  for (int k0 = 0; k0 < n && !rc; k0 += group, np++) {
    int g = n - k0 < group ? n - k0 : group;
    int64_t len = 0;
    for (int k = k0; k < k0 + g; k++) len += xs[k]->dims[dim];
    if (g == 1) {
      parts[np] = xs[k0];
      mtt_tensor_retain(xs[k0]);
    } else {
      int64_t shape[MTT_MAX_DIMS];
      for (int d = 0; d < y->ndim; d++) shape[d] = y->dims[d];
      shape[dim] = len;
      parts[np] = mtt_tensor_alias(y, y->ndim, shape, y->strides, y->offset + start * y->strides[dim]);
      rc = parts[np] ? cat_record(parts[np], g, xs + k0, dim) : mtt_last_error_code();
    }
    start += len;
  }
  if (!rc) rc = cat_record(y, np, parts, dim);
  for (int k = 0; k < np; k++) mtt_tensor_release(parts[k]);
  return rc;
}

mtt_tensor *mtt_cat(int n, mtt_tensor **tensors, int dim) {
  if (n < 1 || !tensors) MTT_FAIL_NULL(MTT_ERR_ARG, "cat: expected a list of at least one tensor");
  for (int k = 0; k < n; k++) {
    if (!tensors[k]) MTT_FAIL_NULL(MTT_ERR_ARG, "cat: tensor %d of %d is nil", k + 1, n);
    if (mtt_check_live(tensors[k], "cat")) return NULL;
  }
  mtt_tensor *first = tensors[0];
  if (mtt_check_dim(first, dim, "cat")) return NULL;
  int64_t shape[MTT_MAX_DIMS];
  for (int d = 0; d < first->ndim; d++) shape[d] = first->dims[d];
  shape[dim] = 0;
  for (int k = 0; k < n; k++) {
    mtt_tensor *t = tensors[k];
    if (t->dtype_id != first->dtype_id || t->device_id != first->device_id)
      MTT_FAIL_NULL(t->dtype_id != first->dtype_id ? MTT_ERR_DTYPE : MTT_ERR_DEVICE,
                    "cat: tensor %d is %s %s on %s but tensor 1 is %s %s on %s", k + 1, mtt_dtype_name(t->dtype_id),
                    mtt_tshape(t), t->device_id == MTT_CPU ? "cpu" : "cuda", mtt_dtype_name(first->dtype_id),
                    mtt_tshape(first), first->device_id == MTT_CPU ? "cpu" : "cuda");
    bool fits = t->ndim == first->ndim;
    for (int d = 0; fits && d < t->ndim; d++) fits = d == dim || t->dims[d] == first->dims[d];
    if (!fits)
      MTT_FAIL_NULL(MTT_ERR_SHAPE, "cat: tensor %d has shape %s but tensor 1 has shape %s (sizes must match except in dim %d)",
                    k + 1, mtt_tshape(t), mtt_tshape(first), dim + 1);
    shape[dim] += t->dims[dim];
  }
  mtt_tensor *y = mtt_tensor_new(first->ndim, shape, first->dtype_id, first->device_id);
  if (!y) return NULL;
  const mtt_backend *be = mtt_backend_of(y);
  int64_t start = 0;
  for (int k = 0; k < n; k++) {
    mtt_tensor *t = tensors[k];
    if (t->nelem) {
      mtt_tensor *dst = mtt_tensor_alias(y, t->ndim, t->dims, y->strides, start * y->strides[dim]);
      int rc = dst ? be->copy(dst, t) : mtt_last_error_code();
      mtt_tensor_release(dst);
      if (rc) {
        mtt_tensor_release(y);
        return NULL;
      }
    }
    start += t->dims[dim];
  }
  if (cat_record(y, n, tensors, dim)) {
    mtt_tensor_release(y);
    return NULL;
  }
  return y;
}

/* ---- gather and index_select ---- */

/* The adjoint of both: a tensor of the input's shape (meta), zero except for gy added at the
 * indexed positions. gy's other dims may be smaller than the input's (gather); then the kernel
 * fills the matching corner and the rest stays zero. */
static mtt_tensor *scatter_to_input(const mtt_meta *m, mtt_tensor *gy, mtt_tensor *index, int dim, const char *op) {
  int64_t shape[MTT_MAX_DIMS];
  bool whole = true;
  for (int d = 0; d < m->ndim; d++) {
    shape[d] = d == dim ? m->shape[d] : gy->dims[d];
    whole &= shape[d] == m->shape[d];
  }
  mtt_tensor *gx = mtt_tensor_new(m->ndim, shape, m->dtype, m->device);
  if (!gx) return NULL;
  const mtt_backend *be = mtt_backend_of(gx);
  if (be->scatter_add(gx, gy, index, dim, op)) {
    mtt_tensor_release(gx);
    return NULL;
  }
  if (whole) return gx;
  mtt_tensor *full = mtt_zeros(m->ndim, m->shape, m->dtype, m->device);
  mtt_tensor *corner = full ? mtt_tensor_alias(full, m->ndim, shape, full->strides, 0) : NULL;
  int rc = corner ? be->copy(corner, gx) : mtt_last_error_code();
  mtt_tensor_release(corner);
  mtt_tensor_release(gx);
  if (rc) {
    mtt_tensor_release(full);
    return NULL;
  }
  return full;
}

static int gather_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  mtt_tensor *index = mtt_node_saved(node, 0);
  if (!index) return mtt_last_error_code();
  gin[0] = scatter_to_input(&node->input_meta[0], gy, index, (int)node->i[0], node->op->name);
  return gin[0] ? 0 : mtt_last_error_code();
}
const mtt_op_def mtt_op_gather = {"gather", gather_backward};
const mtt_op_def mtt_op_index_select = {"index_select", gather_backward};

static int check_index(const mtt_tensor *t, const mtt_tensor *index, int dim, const char *op) {
  if (mtt_check_live(t, op) || mtt_check_live(index, op) || mtt_check_dim(t, dim, op)) return mtt_last_error_code();
  if (index->dtype_id != MTT_I32)
    return mtt_fail(MTT_ERR_DTYPE, "%s: index must be i32, got %s %s", op, mtt_dtype_name(index->dtype_id),
                    mtt_tshape(index));
  if (index->device_id != t->device_id)
    return mtt_fail(MTT_ERR_DEVICE, "%s: index and input are on different devices", op);
  if (mtt_dtype_size(t->dtype_id) == 0) return mtt_fail(MTT_ERR_DTYPE, "%s: unknown dtype", op);
  return 0;
}

/* Runs the gather kernel for out = op(t, index) and records the node. xview is t restricted to
 * the part that the op reads (t itself except for a smaller gather index). */
static mtt_tensor *gather_run(const mtt_op_def *def, mtt_tensor *t, const mtt_tensor *xview, mtt_tensor *index,
                              int out_ndim, const int64_t *out_shape, int dim) {
  mtt_tensor *xc = mtt_contiguous_raw(xview), *ic = mtt_contiguous_raw(index), *y = NULL;
  if (xc && ic) y = mtt_tensor_new(out_ndim, out_shape, t->dtype_id, t->device_id);
  if (y && mtt_backend_of(y)->gather(y, xc, ic, dim, def->name)) {
    mtt_tensor_release(y);
    y = NULL;
  }
  if (y) {
    mtt_node *node = mtt_record(def, y, 1, &t);
    if (node) {
      node->i[0] = dim;
      mtt_node_save(node, 0, ic);
    }
  }
  mtt_tensor_release(xc);
  mtt_tensor_release(ic);
  return y;
}

mtt_tensor *mtt_gather(mtt_tensor *t, int dim, mtt_tensor *index) {
  if (check_index(t, index, dim, "gather")) return NULL;
  if (index->ndim != t->ndim)
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "gather: index %s must have as many dims as the input %s", mtt_tshape(index),
                  mtt_tshape(t));
  int64_t shape[MTT_MAX_DIMS];
  bool whole = true;
  for (int d = 0; d < t->ndim; d++) {
    if (d != dim && index->dims[d] > t->dims[d])
      MTT_FAIL_NULL(MTT_ERR_SHAPE, "gather: index %s is larger than the input %s in dim %d (%lld > %lld)",
                    mtt_tshape(index), mtt_tshape(t), d + 1, (long long)index->dims[d], (long long)t->dims[d]);
    shape[d] = d == dim ? t->dims[d] : index->dims[d];
    whole &= shape[d] == t->dims[d];
  }
  /* With a smaller index, only the corner of t that it covers is read. */
  mtt_tensor *xview = whole ? t : mtt_tensor_alias(t, t->ndim, shape, t->strides, t->offset);
  if (!xview) return NULL;
  mtt_tensor *y = gather_run(&mtt_op_gather, t, xview, index, index->ndim, index->dims, dim);
  if (xview != t) mtt_tensor_release(xview);
  return y;
}

mtt_tensor *mtt_index_select(mtt_tensor *t, int dim, mtt_tensor *index) {
  if (check_index(t, index, dim, "index_select")) return NULL;
  if (index->ndim > 1)
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "index_select: index must be 1-D, got shape %s", mtt_tshape(index));
  int64_t len = index->nelem, one = 1, shape[MTT_MAX_DIMS];
  for (int d = 0; d < t->ndim; d++) shape[d] = d == dim ? len : t->dims[d];
  /* A 0-d index selects one slice, keeping the dim (as torch does). */
  mtt_tensor *index1 = mtt_tensor_alias(index, 1, &len, index->ndim ? index->strides : &one, index->offset);
  if (!index1) return NULL;
  mtt_tensor *y = gather_run(&mtt_op_index_select, t, t, index1, t->ndim, shape, dim);
  mtt_tensor_release(index1);
  return y;
}

/* ---- topk (not recorded: the Lua layer gathers differentiable values with the indices) ---- */

int mtt_topk(mtt_tensor *t, int64_t k, int dim, int largest, mtt_tensor **values, mtt_tensor **indices) {
  if (!values || !indices) return mtt_fail(MTT_ERR_ARG, "topk: missing output pointers");
  *values = *indices = NULL;
  if (mtt_check_live(t, "topk") || mtt_check_dim(t, dim, "topk")) return mtt_last_error_code();
  if (!mtt_is_float_dtype(t->dtype_id) && t->dtype_id != MTT_I32)
    return mtt_fail(MTT_ERR_DTYPE, "topk: dtype %s is not supported (f32, f64 or i32)", mtt_dtype_name(t->dtype_id));
  if (k < 0 || k > t->dims[dim])
    return mtt_fail(MTT_ERR_INDEX, "topk: k = %lld out of range for dim %d of size %lld (shape %s)", (long long)k,
                    dim + 1, (long long)t->dims[dim], mtt_tshape(t));
  int64_t shape[MTT_MAX_DIMS];
  for (int d = 0; d < t->ndim; d++) shape[d] = d == dim ? k : t->dims[d];
  mtt_tensor *xc = mtt_contiguous_raw(t);
  mtt_tensor *v = xc ? mtt_tensor_new(t->ndim, shape, t->dtype_id, t->device_id) : NULL;
  mtt_tensor *i = v ? mtt_tensor_new(t->ndim, shape, MTT_I32, t->device_id) : NULL;
  int rc = i ? mtt_backend_of(t)->topk(v, i, xc, dim, largest) : mtt_last_error_code();
  mtt_tensor_release(xc);
  if (rc) {
    mtt_tensor_release(v);
    mtt_tensor_release(i);
    return rc;
  }
  *values = v;
  *indices = i;
  return 0;
}
