/* reduce.c: sum, mean and max over one dim or all elements, and argmax, with their backward.
 * Kernels reduce in a fixed order (see cpu/reduce_cpu.c), so results do not depend on threads. */
#include "backend.h"
#include "internal.h"

/* Runs the reduce kernel of x over dim; out gets x's shape without dim (or with size 1 there if
 * keepdim). idx (optional) receives i32 positions for MAX/ARGMAX. */
static int reduce_forward(const char *name, int op, mtt_tensor *x, int dim, int keepdim, mtt_tensor **out, mtt_tensor **idx) {
  if (mtt_check_live(x, name) || mtt_check_dim(x, dim, name)) return mtt_last_error_code();
  if (op != MTT_R_SUM && x->dims[dim] == 0)
    return mtt_fail(MTT_ERR_SHAPE, "%s: cannot reduce over dim %d of size 0 in %s", name, dim + 1, mtt_tshape(x));
  if (x->dtype_id != MTT_F32 && x->dtype_id != MTT_F64 && !(x->dtype_id == MTT_I32 && op != MTT_R_SUM))
    return mtt_fail(MTT_ERR_DTYPE, "%s: dtype %s is not supported", name, mtt_dtype_name(x->dtype_id));
  int64_t shape[MTT_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < x->ndim; d++) {
    if (d != dim)
      shape[n++] = x->dims[d];
    else if (keepdim)
      shape[n++] = 1;
  }
  mtt_tensor *xc = mtt_contiguous_raw(x);
  mtt_tensor *o = (xc && out) ? mtt_tensor_new(n, shape, x->dtype_id, x->device_id) : NULL;
  mtt_tensor *ix = (xc && idx) ? mtt_tensor_new(n, shape, MTT_I32, x->device_id) : NULL;
  int rc = (xc && (!out || o) && (!idx || ix)) ? mtt_backend_of(x)->reduce(op, o, ix, xc, dim) : mtt_last_error_code();
  mtt_tensor_release(xc);
  if (rc) {
    mtt_tensor_release(o);
    mtt_tensor_release(ix);
    return rc;
  }
  if (out) *out = o;
  if (idx) *idx = ix;
  return 0;
}

/* Flattened 1-d alias of x (contiguous copy first if needed), for full reductions. */
static mtt_tensor *flat(mtt_tensor *x, const char *name) {
  if (mtt_check_live(x, name)) return NULL;
  mtt_tensor *c = mtt_contiguous_raw(x);
  if (!c) return NULL;
  int64_t n = x->nelem, one = 1;
  mtt_tensor *f = mtt_tensor_alias(c, 1, &n, &one, c->offset);
  mtt_tensor_release(c);
  return f;
}

/* grad of shape out (dim removed unless keepdim) -> broadcast to the input shape, times scale */
static int spread_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin, double scale) {
  const mtt_meta *m = &node->input_meta[0];
  int dim = (int)node->i[0], keepdim = (int)node->i[1];
  mtt_tensor *g = (dim >= 0 && !keepdim) ? mtt_unsqueeze(gy, dim) : (mtt_tensor_retain(gy), gy);
  mtt_tensor *e = g ? mtt_expand(g, m->ndim, m->shape) : NULL;
  mtt_tensor *r = e ? (scale == 1.0 ? mtt_contiguous(e) : mtt_mul_scalar(e, scale)) : NULL;
  mtt_tensor_release(g);
  mtt_tensor_release(e);
  gin[0] = r;
  return r ? 0 : mtt_last_error_code();
}

static int sum_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) { return spread_backward(node, gy, gin, 1.0); }
static int mean_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  return spread_backward(node, gy, gin, node->f[0]);
}
const mtt_op_def mtt_op_sum = {"sum", sum_backward};
const mtt_op_def mtt_op_sum_all = {"sum_all", sum_backward};
const mtt_op_def mtt_op_mean = {"mean", mean_backward};
const mtt_op_def mtt_op_mean_all = {"mean_all", mean_backward};

static mtt_tensor *sum_like(const mtt_op_def *def, mtt_tensor *x, int dim, int keepdim, bool mean) {
  mtt_tensor *out;
  if (reduce_forward(def->name, MTT_R_SUM, x, dim, keepdim, &out, NULL)) return NULL;
  double scale = mean ? 1.0 / (double)(x->dims[dim] ? x->dims[dim] : 1) : 1.0;
  if (mean && mtt_backend_of(out)->unary(MTT_U_MUL_S, out, out, scale, 0)) {
    mtt_tensor_release(out);
    return NULL;
  }
  mtt_node *node = mtt_record(def, out, 1, &x);
  if (node) {
    node->i[0] = dim;
    node->i[1] = keepdim;
    node->f[0] = scale;
  }
  return out;
}

static mtt_tensor *sum_all_like(const mtt_op_def *def, mtt_tensor *x, bool mean) {
  mtt_tensor *f = flat(x, def->name);
  if (!f) return NULL;
  mtt_tensor *out;
  int rc = reduce_forward(def->name, MTT_R_SUM, f, 0, 0, &out, NULL);
  mtt_tensor_release(f);
  if (rc) return NULL;
  double scale = mean ? 1.0 / (double)(x->nelem ? x->nelem : 1) : 1.0;
  if (mean && mtt_backend_of(out)->unary(MTT_U_MUL_S, out, out, scale, 0)) {
    mtt_tensor_release(out);
    return NULL;
  }
  mtt_node *node = mtt_record(def, out, 1, &x);
  if (node) {
    node->i[0] = -1; /* 0-d grad: expand straight to the input's shape */
    node->f[0] = scale;
  }
  return out;
}

mtt_tensor *mtt_sum(mtt_tensor *t, int dim, int keepdim) { return sum_like(&mtt_op_sum, t, dim, keepdim, false); }
mtt_tensor *mtt_mean(mtt_tensor *t, int dim, int keepdim) { return sum_like(&mtt_op_mean, t, dim, keepdim, true); }
mtt_tensor *mtt_sum_all(mtt_tensor *t) { return sum_all_like(&mtt_op_sum_all, t, false); }
mtt_tensor *mtt_mean_all(mtt_tensor *t) { return sum_all_like(&mtt_op_mean_all, t, true); }

/* ---- max: the gradient goes to the position of the (first) maximum ---- */

/* one_hot(idx along dim) * grad, built from public ops so any backend can run it. */
static int max_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  const mtt_meta *m = &node->input_meta[0];
  mtt_tensor *idx = mtt_node_saved(node, 0);
  if (!idx) return mtt_last_error_code();
  int dim = (int)node->i[0], keepdim = (int)node->i[1];
  bool all = dim < 0;
  int rdim = all ? 0 : dim;
  int64_t size = all ? mtt_shape_numel(m->ndim, m->shape) : m->shape[dim];
  int64_t flat_shape[1] = {size};
  /* positions 0..size-1 laid along rdim */
  mtt_tensor *pos = mtt_arange(0, (double)size, 1, MTT_I32, m->device);
  int64_t pshape[MTT_MAX_DIMS];
  int pnd = all ? 1 : m->ndim;
  for (int d = 0; d < pnd; d++) pshape[d] = (d == rdim) ? size : 1;
  mtt_tensor *posv = pos ? mtt_view(pos, pnd, pshape) : NULL;
  mtt_tensor *ix = (all || keepdim) ? (mtt_tensor_retain(idx), idx) : mtt_unsqueeze(idx, dim);
  mtt_tensor *g = (all || keepdim) ? (mtt_tensor_retain(gy), gy) : mtt_unsqueeze(gy, dim);
  mtt_tensor *hit = (posv && ix) ? mtt_eq(posv, ix) : NULL;
  mtt_tensor *hitf = hit ? mtt_to_dtype(hit, m->dtype) : NULL;
  mtt_tensor *prod = (hitf && g) ? mtt_mul(hitf, g) : NULL;
  mtt_tensor *r = prod ? (all ? mtt_reshape(prod, m->ndim, m->shape) : (mtt_tensor_retain(prod), prod)) : NULL;
  (void)flat_shape;
  mtt_tensor_release(pos);
  mtt_tensor_release(posv);
  mtt_tensor_release(ix);
  mtt_tensor_release(g);
  mtt_tensor_release(hit);
  mtt_tensor_release(hitf);
  mtt_tensor_release(prod);
  gin[0] = r;
  return r ? 0 : mtt_last_error_code();
}
const mtt_op_def mtt_op_max = {"max", max_backward};
const mtt_op_def mtt_op_max_all = {"max_all", max_backward};

static mtt_tensor *max_record(const mtt_op_def *def, mtt_tensor *x, mtt_tensor *out, mtt_tensor *idx, int dim, int keepdim) {
  mtt_node *node = mtt_record(def, out, 1, &x);
  if (node) {
    node->i[0] = dim;
    node->i[1] = keepdim;
    mtt_node_save(node, 0, idx);
  }
  mtt_tensor_release(idx);
  return out;
}

mtt_tensor *mtt_max(mtt_tensor *t, int dim, int keepdim) {
  mtt_tensor *out, *idx;
  if (reduce_forward("max", MTT_R_MAX, t, dim, keepdim, &out, &idx)) return NULL;
  return max_record(&mtt_op_max, t, out, idx, dim, keepdim);
}

mtt_tensor *mtt_max_all(mtt_tensor *t) {
  mtt_tensor *f = flat(t, "max"), *out, *idx;
  if (!f) return NULL;
  int rc = reduce_forward("max", MTT_R_MAX, f, 0, 0, &out, &idx);
  mtt_tensor_release(f);
  if (rc) return NULL;
  return max_record(&mtt_op_max_all, t, out, idx, -1, 0);
}

mtt_tensor *mtt_argmax(mtt_tensor *t, int dim, int keepdim) {
  mtt_tensor *idx;
  if (reduce_forward("argmax", MTT_R_ARGMAX, t, dim, keepdim, NULL, &idx)) return NULL;
  return idx;
}
