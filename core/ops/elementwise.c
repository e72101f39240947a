/* elementwise.c: broadcasting binary ops, unary and scalar ops, masked fill, comparisons and the
 * in-place updates used by optimizers, with their backward. */
#include "backend.h"
#include "internal.h"

/* ---- binary (broadcasting) ---- */

static mtt_tensor *binary_forward(const char *name, int op, mtt_tensor *a, mtt_tensor *b) {
  if (mtt_check_live(a, name) || mtt_check_live(b, name) || mtt_check_same(a, b, name)) return NULL;
  if (a->dtype_id != MTT_F32 && a->dtype_id != MTT_F64 && a->dtype_id != MTT_I32)
    MTT_FAIL_NULL(MTT_ERR_DTYPE, "%s: dtype %s is not supported", name, mtt_dtype_name(a->dtype_id));
  int ndim;
  int64_t shape[MTT_MAX_DIMS];
  if (mtt_broadcast_shape(a, b, name, &ndim, shape)) return NULL;
  mtt_tensor *out = mtt_tensor_new(ndim, shape, a->dtype_id, a->device_id);
  mtt_tensor *av = out ? mtt_broadcast_to(a, ndim, shape) : NULL;
  mtt_tensor *bv = av ? mtt_broadcast_to(b, ndim, shape) : NULL;
  int rc = bv ? mtt_backend_of(a)->binary(op, out, av, bv) : -1;
  mtt_tensor_release(av);
  mtt_tensor_release(bv);
  if (rc) {
    mtt_tensor_release(out);
    return NULL;
  }
  return out;
}

/* Sets gin[i] = sum_to_shape(g, input i) for each input that needs grad; takes ownership of g. */
static int reduce_to_inputs(mtt_node *node, int i, mtt_tensor *g, mtt_tensor **gin) {
  if (!g) return mtt_last_error_code();
  gin[i] = mtt_sum_to_shape(g, node->input_meta[i].ndim, node->input_meta[i].shape);
  mtt_tensor_release(g);
  return gin[i] ? 0 : mtt_last_error_code();
}

static int add_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  for (int i = 0; i < 2; i++) {
    if (!mtt_node_needs_grad(node, i)) continue;
    mtt_tensor_retain(gy);
    int rc = reduce_to_inputs(node, i, gy, gin);
    if (rc) return rc;
  }
  return 0;
}

static int sub_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  int rc = 0;
  if (mtt_node_needs_grad(node, 0)) {
    mtt_tensor_retain(gy);
    rc = reduce_to_inputs(node, 0, gy, gin);
  }
  if (!rc && mtt_node_needs_grad(node, 1)) rc = reduce_to_inputs(node, 1, mtt_neg(gy), gin);
  return rc;
}

static int mul_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  mtt_tensor *a = mtt_node_saved(node, 0), *b = mtt_node_saved(node, 1);
  if (!a || !b) return mtt_last_error_code();
  int rc = 0;
  if (mtt_node_needs_grad(node, 0)) rc = reduce_to_inputs(node, 0, mtt_mul(gy, b), gin);
  if (!rc && mtt_node_needs_grad(node, 1)) rc = reduce_to_inputs(node, 1, mtt_mul(gy, a), gin);
  return rc;
}

static int div_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  mtt_tensor *a = mtt_node_saved(node, 0), *b = mtt_node_saved(node, 1);
  if (!a || !b) return mtt_last_error_code();
  int rc = 0;
  if (mtt_node_needs_grad(node, 0)) rc = reduce_to_inputs(node, 0, mtt_div(gy, b), gin);
  if (!rc && mtt_node_needs_grad(node, 1)) {
    /* d(a/b)/db = -a/b^2 = -(a/b)/b */
    mtt_tensor *q = mtt_div(a, b), *q2 = q ? mtt_div(q, b) : NULL, *t = q2 ? mtt_mul(gy, q2) : NULL;
    mtt_tensor *g = t ? mtt_neg(t) : NULL;
    mtt_tensor_release(q);
    mtt_tensor_release(q2);
    mtt_tensor_release(t);
    rc = reduce_to_inputs(node, 1, g, gin);
  }
  return rc;
}

const mtt_op_def mtt_op_add = {"add", add_backward};
const mtt_op_def mtt_op_sub = {"sub", sub_backward};
const mtt_op_def mtt_op_mul = {"mul", mul_backward};
const mtt_op_def mtt_op_div = {"div", div_backward};

static mtt_tensor *binary_op(const mtt_op_def *def, int op, mtt_tensor *a, mtt_tensor *b, bool save_inputs) {
  mtt_tensor *out = binary_forward(def->name, op, a, b);
  if (!out) return NULL;
  mtt_tensor *inputs[2] = {a, b};
  mtt_node *node = mtt_record(def, out, 2, inputs);
  if (node && save_inputs) {
    mtt_node_save(node, 0, a);
    mtt_node_save(node, 1, b);
  }
  return out;
}

mtt_tensor *mtt_add(mtt_tensor *a, mtt_tensor *b) { return binary_op(&mtt_op_add, MTT_B_ADD, a, b, false); }
mtt_tensor *mtt_sub(mtt_tensor *a, mtt_tensor *b) { return binary_op(&mtt_op_sub, MTT_B_SUB, a, b, false); }
mtt_tensor *mtt_mul(mtt_tensor *a, mtt_tensor *b) { return binary_op(&mtt_op_mul, MTT_B_MUL, a, b, true); }
mtt_tensor *mtt_div(mtt_tensor *a, mtt_tensor *b) { return binary_op(&mtt_op_div, MTT_B_DIV, a, b, true); }

/* Comparisons give 1/0 in a's dtype and are not differentiable. */
mtt_tensor *mtt_eq(mtt_tensor *a, mtt_tensor *b) { return binary_forward("eq", MTT_B_EQ, a, b); }
mtt_tensor *mtt_gt(mtt_tensor *a, mtt_tensor *b) { return binary_forward("gt", MTT_B_GT, a, b); }
mtt_tensor *mtt_lt(mtt_tensor *a, mtt_tensor *b) { return binary_forward("lt", MTT_B_LT, a, b); }

/* ---- unary and scalar ops: one forward, one backward, parameterized by the kernel op ---- */

enum { SAVE_NONE = 0, SAVE_X = 1, SAVE_Y = 2 };

static int unary_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  int kind = (int)node->i[0], saves = (int)node->i[1];
  mtt_tensor *x = NULL, *y = NULL;
  if ((saves & SAVE_X) && !(x = mtt_node_saved(node, 0))) return mtt_last_error_code();
  if ((saves & SAVE_Y) && !(y = mtt_node_saved(node, 1))) return mtt_last_error_code();
  mtt_tensor *xc = x ? mtt_contiguous_raw(x) : NULL, *yc = y ? mtt_contiguous_raw(y) : NULL;
  mtt_tensor *gx = mtt_tensor_new_like(gy);
  int rc = (gx && (!x || xc) && (!y || yc))
               ? mtt_backend_of(gy)->unary_backward(kind, gx, gy, xc, yc, node->f[0], node->f[1])
               : mtt_last_error_code();
  mtt_tensor_release(xc);
  mtt_tensor_release(yc);
  if (rc) {
    mtt_tensor_release(gx);
    return rc;
  }
  gin[0] = gx;
  return 0;
}

#define UNARY_DEF(name) const mtt_op_def mtt_op_##name = {#name, unary_backward}
UNARY_DEF(neg);
UNARY_DEF(exp);
UNARY_DEF(log);
UNARY_DEF(sqrt);
UNARY_DEF(tanh);
UNARY_DEF(sigmoid);
UNARY_DEF(gelu);
UNARY_DEF(relu);
UNARY_DEF(clamp);
UNARY_DEF(pow_scalar);
UNARY_DEF(add_scalar);
UNARY_DEF(mul_scalar);
UNARY_DEF(rsub_scalar);
UNARY_DEF(rdiv_scalar);
#undef UNARY_DEF

static mtt_tensor *unary_op(const mtt_op_def *def, int kind, int saves, mtt_tensor *x, double p0, double p1) {
  if (mtt_check_live(x, def->name) || mtt_check_float(x, def->name)) return NULL;
  mtt_tensor *xc = mtt_contiguous_raw(x);
  mtt_tensor *y = xc ? mtt_tensor_new_like(x) : NULL;
  int rc = y ? mtt_backend_of(x)->unary(kind, y, xc, p0, p1) : -1;
  mtt_tensor_release(xc);
  if (rc) {
    mtt_tensor_release(y);
    return NULL;
  }
  mtt_node *node = mtt_record(def, y, 1, &x);
  if (node) {
    node->i[0] = kind;
    node->i[1] = saves;
    node->f[0] = p0;
    node->f[1] = p1;
    if (saves & SAVE_X) mtt_node_save(node, 0, x);
    if (saves & SAVE_Y) mtt_node_save(node, 1, y);
  }
  return y;
}

mtt_tensor *mtt_neg(mtt_tensor *a) { return unary_op(&mtt_op_neg, MTT_U_NEG, SAVE_NONE, a, 0, 0); }
mtt_tensor *mtt_exp(mtt_tensor *a) { return unary_op(&mtt_op_exp, MTT_U_EXP, SAVE_Y, a, 0, 0); }
mtt_tensor *mtt_log(mtt_tensor *a) { return unary_op(&mtt_op_log, MTT_U_LOG, SAVE_X, a, 0, 0); }
mtt_tensor *mtt_sqrt(mtt_tensor *a) { return unary_op(&mtt_op_sqrt, MTT_U_SQRT, SAVE_Y, a, 0, 0); }
mtt_tensor *mtt_tanh(mtt_tensor *a) { return unary_op(&mtt_op_tanh, MTT_U_TANH, SAVE_Y, a, 0, 0); }
mtt_tensor *mtt_sigmoid(mtt_tensor *a) { return unary_op(&mtt_op_sigmoid, MTT_U_SIGMOID, SAVE_Y, a, 0, 0); }
mtt_tensor *mtt_gelu(mtt_tensor *a) { return unary_op(&mtt_op_gelu, MTT_U_GELU, SAVE_X, a, 0, 0); }
mtt_tensor *mtt_relu(mtt_tensor *a) { return unary_op(&mtt_op_relu, MTT_U_RELU, SAVE_X, a, 0, 0); }
mtt_tensor *mtt_clamp(mtt_tensor *a, double lo, double hi) {
  if (lo > hi) MTT_FAIL_NULL(MTT_ERR_ARG, "clamp: min %g is greater than max %g", lo, hi);
  return unary_op(&mtt_op_clamp, MTT_U_CLAMP, SAVE_X, a, lo, hi);
}
mtt_tensor *mtt_pow_scalar(mtt_tensor *a, double p) { return unary_op(&mtt_op_pow_scalar, MTT_U_POW, SAVE_X, a, p, 0); }
mtt_tensor *mtt_add_scalar(mtt_tensor *a, double s) { return unary_op(&mtt_op_add_scalar, MTT_U_ADD_S, SAVE_NONE, a, s, 0); }
mtt_tensor *mtt_mul_scalar(mtt_tensor *a, double s) { return unary_op(&mtt_op_mul_scalar, MTT_U_MUL_S, SAVE_NONE, a, s, 0); }
mtt_tensor *mtt_rsub_scalar(mtt_tensor *a, double s) { return unary_op(&mtt_op_rsub_scalar, MTT_U_RSUB_S, SAVE_NONE, a, s, 0); }
mtt_tensor *mtt_rdiv_scalar(mtt_tensor *a, double s) { return unary_op(&mtt_op_rdiv_scalar, MTT_U_RDIV_S, SAVE_X, a, s, 0); }

/* ---- masked fill ---- */

static int masked_fill_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  mtt_tensor *mask = mtt_node_saved(node, 0);
  if (!mask) return mtt_last_error_code();
  gin[0] = mtt_masked_fill(gy, mask, 0.0);
  return gin[0] ? 0 : mtt_last_error_code();
}
const mtt_op_def mtt_op_masked_fill = {"masked_fill", masked_fill_backward};

mtt_tensor *mtt_masked_fill(mtt_tensor *a, mtt_tensor *mask, double value) {
  const char *name = "masked_fill";
  if (mtt_check_live(a, name) || mtt_check_live(mask, name)) return NULL;
  if (a->device_id != mask->device_id) MTT_FAIL_NULL(MTT_ERR_DEVICE, "masked_fill: tensor and mask are on different devices");
  int ndim;
  int64_t shape[MTT_MAX_DIMS];
  if (mtt_broadcast_shape(a, mask, name, &ndim, shape)) return NULL;
  if (ndim != a->ndim || mtt_shape_numel(ndim, shape) != a->nelem)
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "masked_fill: mask %s must broadcast to the tensor's shape %s", mtt_tshape(mask), mtt_tshape(a));
  mtt_tensor *out = mtt_tensor_new_like(a);
  mtt_tensor *mv = out ? mtt_broadcast_to(mask, ndim, shape) : NULL;
  int rc = mv ? mtt_backend_of(a)->masked_fill(out, a, mv, value) : -1;
  mtt_tensor_release(mv);
  if (rc) {
    mtt_tensor_release(out);
    return NULL;
  }
  mtt_node *node = mtt_record(&mtt_op_masked_fill, out, 1, &a);
  if (node) mtt_node_save(node, 0, mask);
  return out;
}

/* ---- broadcast gradients back to an input's shape ---- */

mtt_tensor *mtt_sum_to_shape(mtt_tensor *grad, int ndim, const int64_t *shape) {
  mtt_tensor_retain(grad);
  mtt_tensor *g = grad;
  while (g && g->ndim > ndim) {
    mtt_tensor *s = mtt_sum(g, 0, 0);
    mtt_tensor_release(g);
    g = s;
  }
  for (int d = 0; g && d < ndim; d++) {
    if (shape[d] != 1 || g->dims[d] == 1) continue;
    mtt_tensor *s = mtt_sum(g, d, 1);
    mtt_tensor_release(g);
    g = s;
  }
  return g;
}

/* ---- in place ---- */

static int inplace_with(const char *name, int op, mtt_tensor *t, mtt_tensor *other, double alpha) {
  if (mtt_check_inplace(t, name) || mtt_check_live(other, name)) return mtt_last_error_code();
  if (t->device_id != other->device_id) return mtt_fail(MTT_ERR_DEVICE, "%s: tensors are on different devices", name);
  int ndim;
  int64_t shape[MTT_MAX_DIMS];
  if (mtt_broadcast_shape(t, other, name, &ndim, shape)) return mtt_last_error_code();
  if (ndim != t->ndim || mtt_shape_numel(ndim, shape) != t->nelem)
    return mtt_fail(MTT_ERR_SHAPE, "%s: %s cannot be broadcast to the shape %s of the tensor changed in place", name,
                    mtt_tshape(other), mtt_tshape(t));
  mtt_tensor *ov = mtt_broadcast_to(other, ndim, shape);
  int rc = ov ? mtt_backend_of(t)->binary_inplace(op, t, ov, alpha) : mtt_last_error_code();
  mtt_tensor_release(ov);
  mtt_storage_bump(t);
  return rc;
}

int mtt_add_(mtt_tensor *t, mtt_tensor *other, double alpha) { return inplace_with("add_", MTT_B_ADD, t, other, alpha); }
int mtt_mul_(mtt_tensor *t, mtt_tensor *other) { return inplace_with("mul_", MTT_B_MUL, t, other, 1.0); }

static int inplace_scalar(const char *name, int op, mtt_tensor *t, double s) {
  if (mtt_check_inplace(t, name)) return mtt_last_error_code();
  mtt_tensor *scalar = mtt_full(0, NULL, s, t->dtype_id, t->device_id);
  if (!scalar) return mtt_last_error_code();
  int rc = inplace_with(name, op, t, scalar, 1.0);
  mtt_tensor_release(scalar);
  return rc;
}

int mtt_add_scalar_(mtt_tensor *t, double s) { return inplace_scalar("add_", MTT_B_ADD, t, s); }
int mtt_mul_scalar_(mtt_tensor *t, double s) { return inplace_scalar("mul_", MTT_B_MUL, t, s); }

int mtt_fill_(mtt_tensor *t, double value) {
  if (mtt_check_inplace(t, "fill_")) return mtt_last_error_code();
  int rc = mtt_backend_of(t)->fill(t, value);
  mtt_storage_bump(t);
  return rc;
}

int mtt_zero_(mtt_tensor *t) { return mtt_fill_(t, 0.0); }

int mtt_copy_(mtt_tensor *dst, mtt_tensor *src) {
  if (mtt_check_inplace(dst, "copy_") || mtt_check_live(src, "copy_")) return mtt_last_error_code();
  if (dst->device_id != src->device_id) return mtt_fail(MTT_ERR_DEVICE, "copy_: tensors are on different devices");
  int ndim;
  int64_t shape[MTT_MAX_DIMS];
  if (mtt_broadcast_shape(dst, src, "copy_", &ndim, shape)) return mtt_last_error_code();
  if (ndim != dst->ndim || mtt_shape_numel(ndim, shape) != dst->nelem)
    return mtt_fail(MTT_ERR_SHAPE, "copy_: source %s cannot be broadcast to the destination %s", mtt_tshape(src), mtt_tshape(dst));
  mtt_tensor *sv = mtt_broadcast_to(src, ndim, shape);
  int rc = sv ? mtt_backend_of(dst)->copy(dst, sv) : mtt_last_error_code();
  mtt_tensor_release(sv);
  mtt_storage_bump(dst);
  return rc;
}
