/* views.c: reshaping ops that share storage (view, permute, slice, select, expand, squeeze,
 * unsqueeze) and the copies around them (contiguous, clone, detach, dtype/device moves), each
 * with its backward. */
#include <string.h>

#include "backend.h"
#include "internal.h"

/* ---- view / reshape / squeeze / unsqueeze: the gradient is reshaped back ---- */

static int view_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  const mtt_meta *m = &node->input_meta[0];
  gin[0] = mtt_reshape(gy, m->ndim, m->shape);
  return gin[0] ? 0 : mtt_last_error_code();
}
const mtt_op_def mtt_op_view = {"view", view_backward};

static mtt_tensor *record_view(const mtt_op_def *op, mtt_tensor *t, mtt_tensor *v) {
  if (v) mtt_record(op, v, 1, &t);
  return v;
}

/* Resolves one -1 in a requested shape against t's element count. */
static int infer_shape(const char *op, const mtt_tensor *t, int ndim, const int64_t *req, int64_t *shape) {
  if (ndim < 0 || ndim > MTT_MAX_DIMS) return mtt_fail(MTT_ERR_SHAPE, "%s: %d dims requested, at most %d", op, ndim, MTT_MAX_DIMS);
  int infer = -1;
  int64_t known = 1;
  for (int d = 0; d < ndim; d++) {
    if (req[d] == -1) {
      if (infer >= 0) return mtt_fail(MTT_ERR_SHAPE, "%s: only one dim can be -1, got %s", op, mtt_shape_str(ndim, req));
      infer = d;
    } else if (req[d] < 0) {
      return mtt_fail(MTT_ERR_SHAPE, "%s: invalid size %lld in %s", op, (long long)req[d], mtt_shape_str(ndim, req));
    } else {
      known *= req[d];
    }
    shape[d] = req[d];
  }
  if (infer >= 0) {
    if (known == 0 || t->nelem % known)
      return mtt_fail(MTT_ERR_SHAPE, "%s: cannot view %s (%lld elements) as %s", op, mtt_tshape(t), (long long)t->nelem,
                      mtt_shape_str(ndim, req));
    shape[infer] = t->nelem / known;
  } else if (known != t->nelem) {
    return mtt_fail(MTT_ERR_SHAPE, "%s: cannot view %s (%lld elements) as %s (%lld elements)", op, mtt_tshape(t),
                    (long long)t->nelem, mtt_shape_str(ndim, req), (long long)known);
  }
  return 0;
}

/* Strides for viewing t as shape without copying, if t's layout allows (each group of new dims
 * must map onto a run of old dims that is contiguous in memory). Returns false if impossible. */
static bool view_strides(const mtt_tensor *t, int ndim, const int64_t *shape, int64_t *strides) {
  if (t->nelem == 0 || mtt_is_contiguous(t)) {
    mtt_contiguous_strides(ndim, shape, strides);
    return true;
  }
  /* Walk old dims from the right, grouping them into chunks that are contiguous among
   * themselves; the new dims must split each chunk exactly. */
  int nd = ndim - 1;
  int64_t base_stride = t->strides[t->ndim - 1], old_count = 1, new_count = 1;
  for (int od = t->ndim - 1; od >= 0; od--) {
    old_count *= t->dims[od];
    bool chunk_ends = od == 0 || (t->dims[od - 1] != 1 && t->strides[od - 1] != old_count * base_stride);
    if (!chunk_ends) continue;
    while (nd >= 0 && (new_count < old_count || shape[nd] == 1)) {
      strides[nd] = new_count * base_stride;
      new_count *= shape[nd];
      nd--;
    }
    if (new_count != old_count) return false;
    if (od > 0) {
      base_stride = t->strides[od - 1];
      old_count = new_count = 1;
    }
  }
  return nd == -1;
}

mtt_tensor *mtt_view(mtt_tensor *t, int ndim, const int64_t *req) {
  if (mtt_check_live(t, "view")) return NULL;
  int64_t shape[MTT_MAX_DIMS], strides[MTT_MAX_DIMS];
  if (infer_shape("view", t, ndim, req, shape)) return NULL;
  if (!view_strides(t, ndim, shape, strides))
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "view: shape %s is not compatible with the memory layout of %s (use reshape or contiguous() first)",
                  mtt_shape_str(ndim, shape), mtt_tshape(t));
  return record_view(&mtt_op_view, t, mtt_tensor_alias(t, ndim, shape, strides, t->offset));
}

mtt_tensor *mtt_reshape(mtt_tensor *t, int ndim, const int64_t *req) {
  if (mtt_check_live(t, "reshape")) return NULL;
  int64_t shape[MTT_MAX_DIMS], strides[MTT_MAX_DIMS];
  if (infer_shape("reshape", t, ndim, req, shape)) return NULL;
  if (view_strides(t, ndim, shape, strides)) return mtt_view(t, ndim, shape);
  mtt_tensor *c = mtt_contiguous(t);
  if (!c) return NULL;
  mtt_tensor *v = mtt_view(c, ndim, shape);
  mtt_tensor_release(c);
  return v;
}

mtt_tensor *mtt_squeeze(mtt_tensor *t, int dim) {
  if (mtt_check_live(t, "squeeze")) return NULL;
  if (dim >= 0 && mtt_check_dim(t, dim, "squeeze")) return NULL;
  int64_t shape[MTT_MAX_DIMS], strides[MTT_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < t->ndim; d++) {
    bool drop = t->dims[d] == 1 && (dim < 0 || dim == d);
    if (drop) continue;
    shape[n] = t->dims[d];
    strides[n++] = t->strides[d];
  }
  return record_view(&mtt_op_view, t, mtt_tensor_alias(t, n, shape, strides, t->offset));
}

mtt_tensor *mtt_unsqueeze(mtt_tensor *t, int dim) {
  if (mtt_check_live(t, "unsqueeze")) return NULL;
  if (dim < 0 || dim > t->ndim || t->ndim >= MTT_MAX_DIMS)
    MTT_FAIL_NULL(MTT_ERR_INDEX, "unsqueeze: dim %d out of range for %s (valid: 1..%d)", dim + 1, mtt_tshape(t), t->ndim + 1);
  int64_t shape[MTT_MAX_DIMS], strides[MTT_MAX_DIMS];
  for (int d = 0, s = 0; d <= t->ndim; d++) {
    if (d == dim) {
      shape[d] = 1;
      strides[d] = s < t->ndim ? t->strides[s] * t->dims[s] : 1;
    } else {
      shape[d] = t->dims[s];
      strides[d] = t->strides[s];
      s++;
    }
  }
  return record_view(&mtt_op_view, t, mtt_tensor_alias(t, t->ndim + 1, shape, strides, t->offset));
}

/* ---- permute / transpose ---- */

static int permute_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  int inverse[MTT_MAX_DIMS];
  for (int d = 0; d < node->input_meta[0].ndim; d++) inverse[node->i[d]] = d;
  gin[0] = mtt_permute(gy, inverse);
  return gin[0] ? 0 : mtt_last_error_code();
}
const mtt_op_def mtt_op_permute = {"permute", permute_backward};

mtt_tensor *mtt_permute(mtt_tensor *t, const int *dims) {
  if (mtt_check_live(t, "permute")) return NULL;
  int64_t shape[MTT_MAX_DIMS], strides[MTT_MAX_DIMS];
  bool seen[MTT_MAX_DIMS] = {0};
  for (int d = 0; d < t->ndim; d++) {
    int s = dims[d];
    if (s < 0 || s >= t->ndim || seen[s])
      MTT_FAIL_NULL(MTT_ERR_INDEX, "permute: dims must be a permutation of 1..%d for %s (bad entry %d at position %d)", t->ndim,
                    mtt_tshape(t), s + 1, d + 1);
    seen[s] = true;
    shape[d] = t->dims[s];
    strides[d] = t->strides[s];
  }
  mtt_tensor *v = mtt_tensor_alias(t, t->ndim, shape, strides, t->offset);
  mtt_node *node = v ? mtt_record(&mtt_op_permute, v, 1, &t) : NULL;
  if (node)
    for (int d = 0; d < t->ndim; d++) node->i[d] = dims[d];
  return v;
}

mtt_tensor *mtt_transpose(mtt_tensor *t, int dim0, int dim1) {
  if (mtt_check_live(t, "transpose") || mtt_check_dim(t, dim0, "transpose") || mtt_check_dim(t, dim1, "transpose")) return NULL;
  int dims[MTT_MAX_DIMS];
  for (int d = 0; d < t->ndim; d++) dims[d] = d;
  dims[dim0] = dim1;
  dims[dim1] = dim0;
  return mtt_permute(t, dims);
}

/* ---- slice / select: the gradient lands in a zero tensor of the input's shape ---- */

static mtt_tensor *slice_alias(mtt_tensor *t, int dim, int64_t start, int64_t end, int64_t step) {
  int64_t shape[MTT_MAX_DIMS], strides[MTT_MAX_DIMS];
  memcpy(shape, t->dims, sizeof shape);
  memcpy(strides, t->strides, sizeof strides);
  shape[dim] = end > start ? (end - start + step - 1) / step : 0;
  strides[dim] = t->strides[dim] * step;
  return mtt_tensor_alias(t, t->ndim, shape, strides, t->offset + start * t->strides[dim]);
}

static int scatter_into_zeros(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin, bool is_select) {
  const mtt_meta *m = &node->input_meta[0];
  mtt_tensor *z = mtt_zeros(m->ndim, m->shape, m->dtype, m->device);
  if (!z) return mtt_last_error_code();
  mtt_tensor *region = is_select ? mtt_select(z, (int)node->i[0], node->i[1])
                                 : slice_alias(z, (int)node->i[0], node->i[1], node->i[2], node->i[3]);
  int rc = region ? mtt_copy_(region, gy) : mtt_last_error_code();
  mtt_tensor_release(region);
  if (rc) {
    mtt_tensor_release(z);
    return rc;
  }
  gin[0] = z;
  return 0;
}

static int slice_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) { return scatter_into_zeros(node, gy, gin, false); }
const mtt_op_def mtt_op_slice = {"slice", slice_backward};

mtt_tensor *mtt_slice(mtt_tensor *t, int dim, int64_t start, int64_t end, int64_t step) {
  if (mtt_check_live(t, "slice") || mtt_check_dim(t, dim, "slice")) return NULL;
  int64_t size = t->dims[dim];
  if (step < 1) MTT_FAIL_NULL(MTT_ERR_ARG, "slice: step must be positive, got %lld", (long long)step);
  if (start < 0 || end > size || start > end)
    MTT_FAIL_NULL(MTT_ERR_INDEX, "slice: range [%lld, %lld] out of bounds for dim %d of size %lld (shape %s)",
                  (long long)start + 1, (long long)end, dim + 1, (long long)size, mtt_tshape(t));
  mtt_tensor *v = slice_alias(t, dim, start, end, step);
  mtt_node *node = v ? mtt_record(&mtt_op_slice, v, 1, &t) : NULL;
  if (node) {
    node->i[0] = dim;
    node->i[1] = start;
    node->i[2] = end;
    node->i[3] = step;
  }
  return v;
}

static int select_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) { return scatter_into_zeros(node, gy, gin, true); }
const mtt_op_def mtt_op_select = {"select", select_backward};

mtt_tensor *mtt_select(mtt_tensor *t, int dim, int64_t index) {
  if (mtt_check_live(t, "select") || mtt_check_dim(t, dim, "select")) return NULL;
  if (index < 0 || index >= t->dims[dim])
    MTT_FAIL_NULL(MTT_ERR_INDEX, "select: index %lld out of range for dim %d of size %lld (shape %s)", (long long)index + 1,
                  dim + 1, (long long)t->dims[dim], mtt_tshape(t));
  int64_t shape[MTT_MAX_DIMS], strides[MTT_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < t->ndim; d++) {
    if (d == dim) continue;
    shape[n] = t->dims[d];
    strides[n++] = t->strides[d];
  }
  mtt_tensor *v = mtt_tensor_alias(t, n, shape, strides, t->offset + index * t->strides[dim]);
  mtt_node *node = v ? mtt_record(&mtt_op_select, v, 1, &t) : NULL;
  if (node) {
    node->i[0] = dim;
    node->i[1] = index;
  }
  return v;
}

/* ---- expand: the gradient sums over the broadcast dims ---- */

static int expand_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  gin[0] = mtt_sum_to_shape(gy, node->input_meta[0].ndim, node->input_meta[0].shape);
  return gin[0] ? 0 : mtt_last_error_code();
}
const mtt_op_def mtt_op_expand = {"expand", expand_backward};

mtt_tensor *mtt_expand(mtt_tensor *t, int ndim, const int64_t *req) {
  if (mtt_check_live(t, "expand")) return NULL;
  if (ndim < t->ndim || ndim > MTT_MAX_DIMS)
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "expand: cannot expand %s to %s (fewer dims)", mtt_tshape(t), mtt_shape_str(ndim, req));
  int64_t shape[MTT_MAX_DIMS];
  for (int d = 0; d < ndim; d++) {
    int dt = d - (ndim - t->ndim);
    int64_t have = dt >= 0 ? t->dims[dt] : 1;
    shape[d] = req[d] == -1 && dt >= 0 ? have : req[d];
    if (shape[d] < 0 || (have != 1 && have != shape[d]))
      MTT_FAIL_NULL(MTT_ERR_SHAPE, "expand: cannot expand %s to %s (dim %d: %lld to %lld)", mtt_tshape(t),
                    mtt_shape_str(ndim, req), d + 1, (long long)have, (long long)req[d]);
  }
  return record_view(&mtt_op_expand, t, mtt_broadcast_to(t, ndim, shape));
}

/* ---- copies ---- */

static int identity_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  mtt_tensor_retain(gy);
  gin[0] = gy;
  return 0;
}
const mtt_op_def mtt_op_contiguous = {"contiguous", identity_backward};
const mtt_op_def mtt_op_clone = {"clone", identity_backward};

mtt_tensor *mtt_contiguous(mtt_tensor *t) {
  if (mtt_check_live(t, "contiguous")) return NULL;
  if (mtt_is_contiguous(t)) {
    mtt_tensor_retain(t);
    return t;
  }
  return record_view(&mtt_op_contiguous, t, mtt_copy_raw(t));
}

mtt_tensor *mtt_clone(mtt_tensor *t) { return record_view(&mtt_op_clone, t, mtt_copy_raw(t)); }

mtt_tensor *mtt_detach(mtt_tensor *t) {
  if (mtt_check_live(t, "detach")) return NULL;
  return mtt_tensor_alias(t, t->ndim, t->dims, t->strides, t->offset);
}

static int to_dtype_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  gin[0] = mtt_to_dtype(gy, node->input_meta[0].dtype);
  return gin[0] ? 0 : mtt_last_error_code();
}
const mtt_op_def mtt_op_to_dtype = {"to_dtype", to_dtype_backward};

mtt_tensor *mtt_to_dtype(mtt_tensor *t, int dtype) {
  if (mtt_check_live(t, "to")) return NULL;
  if (mtt_dtype_size(dtype) == 0) MTT_FAIL_NULL(MTT_ERR_DTYPE, "to: unknown dtype %d", dtype);
  if (dtype == t->dtype_id) {
    mtt_tensor_retain(t);
    return t;
  }
  mtt_tensor *c = mtt_tensor_new(t->ndim, t->dims, dtype, t->device_id);
  if (!c) return NULL;
  if (mtt_backend_of(t)->copy(c, t)) {
    mtt_tensor_release(c);
    return NULL;
  }
  if (mtt_is_float_dtype(dtype)) mtt_record(&mtt_op_to_dtype, c, 1, &t);
  return c;
}

/* [cuda section] The device side of a move does the copy (its backend's transfer slot). The copy
 * is a new leaf, as parameters moved by Module:to must be; inputs moved to a device rarely
 * need a gradient back on the cpu. */
mtt_tensor *mtt_to_device(mtt_tensor *t, int device) {
  if (mtt_check_live(t, "to")) return NULL;
  if (!mtt_backend_for(device)) return NULL;
  if (device == t->device_id) {
    mtt_tensor_retain(t);
    return t;
  }
  const mtt_backend *be = mtt_backend_for(device == MTT_CPU ? t->device_id : device);
  if (!be) return NULL;
  if (!be->transfer)
    MTT_FAIL_NULL(MTT_ERR_DEVICE, "to: the %s backend cannot move tensors between devices", be->name);
  mtt_tensor *c = mtt_tensor_new(t->ndim, t->dims, t->dtype_id, device);
  if (!c) return NULL;
  if (be->transfer(c, t)) {
    mtt_tensor_release(c);
    return NULL;
  }
  return c;
}
