/* attention.c: fused scaled dot-product attention, out = softmax(scale * q k^T [causal]) v,
 * per leading index (typically [B, H]), and its gradient. Saves q, k, v and the row
 * logsumexp; the backward recomputes the probabilities. */
#include <math.h>

#include "backend.h"

/* saved: 0 q, 1 k, 2 v, 3 lse; f[0] scale, i[0] causal */
static int attention_backward(mtt_node *node, mtt_tensor *gy, mtt_tensor **gin) {
  mtt_tensor *q = mtt_node_saved(node, 0), *k = mtt_node_saved(node, 1), *v = mtt_node_saved(node, 2);
  mtt_tensor *lse = mtt_node_saved(node, 3);
  if (!q || !k || !v || !lse) return mtt_last_error_code();
  mtt_tensor *in[3] = {q, k, v};
  for (int i = 0; i < 3; i++)
    if (mtt_node_needs_grad(node, i) && !(gin[i] = mtt_tensor_new_like(in[i]))) return mtt_last_error_code();
  return mtt_backend_of(q)->attention_backward(gin[0], gin[1], gin[2], gy, q, k, v, lse, (int)node->i[0], node->f[0]);
}
const mtt_op_def mtt_op_attention = {"attention", attention_backward};

mtt_tensor *mtt_attention(mtt_tensor *q, mtt_tensor *k, mtt_tensor *v, int causal, double scale) {
  const char *op = "attention";
  if (mtt_check_live(q, op) || mtt_check_live(k, op) || mtt_check_live(v, op) || mtt_check_float(q, op) ||
      mtt_check_same(q, k, op) || mtt_check_same(q, v, op))
    return NULL;
  int nd = q->ndim;
  if (nd < 2 || k->ndim != nd || v->ndim != nd)
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "attention: q %s, k %s and v %s must have the same number of dims (at least 2: [..., T, D])",
                  mtt_tshape(q), mtt_tshape(k), mtt_tshape(v));
  for (int d = 0; d < nd - 2; d++)
    if (k->dims[d] != q->dims[d] || v->dims[d] != q->dims[d])
      MTT_FAIL_NULL(MTT_ERR_SHAPE, "attention: leading dims of q %s, k %s and v %s differ (dim %d)", mtt_tshape(q),
                    mtt_tshape(k), mtt_tshape(v), d + 1);
  int64_t tq = q->dims[nd - 2], tk = k->dims[nd - 2], d = q->dims[nd - 1];
  if (k->dims[nd - 1] != d)
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "attention: q %s and k %s differ in the last dim (%lld != %lld)", mtt_tshape(q),
                  mtt_tshape(k), (long long)d, (long long)k->dims[nd - 1]);
  if (v->dims[nd - 2] != tk)
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "attention: k %s and v %s differ in length (%lld != %lld)", mtt_tshape(k),
                  mtt_tshape(v), (long long)tk, (long long)v->dims[nd - 2]);
  if (causal && tq > tk)
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "attention: causal attention needs at least as many keys as queries (q %s, k %s)",
                  mtt_tshape(q), mtt_tshape(k));
  if (!isfinite(scale)) MTT_FAIL_NULL(MTT_ERR_ARG, "attention: scale must be finite, got %g", scale);
  if (scale <= 0) scale = d > 0 ? 1.0 / sqrt((double)d) : 1.0;
  int64_t shape[MTT_MAX_DIMS];
  for (int i = 0; i < nd; i++) shape[i] = q->dims[i];
  shape[nd - 1] = v->dims[nd - 1];
  mtt_tensor *y = mtt_tensor_new(nd, shape, q->dtype_id, q->device_id);
  mtt_tensor *lse = y ? mtt_tensor_new(nd - 1, shape, q->dtype_id, q->device_id) : NULL;
  if (!lse || mtt_backend_of(q)->attention(y, lse, q, k, v, causal != 0, scale)) {
    mtt_tensor_release(y);
    mtt_tensor_release(lse);
    return NULL;
  }
  mtt_node *node = mtt_record(&mtt_op_attention, y, 3, (mtt_tensor *[]){q, k, v});
  if (node) {
    mtt_node_save(node, 0, q);
    mtt_node_save(node, 1, k);
    mtt_node_save(node, 2, v);
    mtt_node_save(node, 3, lse);
    node->f[0] = scale;
    node->i[0] = causal != 0;
  }
  mtt_tensor_release(lse);
  return y;
}
