/* registry.c: the one table of every op that can appear on the tape, so that tests can check
 * that each op has a gradient check and a PyTorch reference check. Adding an op: define its
 * mtt_op_def beside its forward and backward, and add one row here. */
#include "internal.h"

/* views and copies (ops/views.c) */
extern const mtt_op_def mtt_op_view, mtt_op_permute, mtt_op_slice, mtt_op_select, mtt_op_expand,
    mtt_op_contiguous, mtt_op_clone, mtt_op_to_dtype;
/* elementwise (ops/elementwise.c) */
extern const mtt_op_def mtt_op_add, mtt_op_sub, mtt_op_mul, mtt_op_div, mtt_op_add_scalar, mtt_op_mul_scalar,
    mtt_op_rsub_scalar, mtt_op_rdiv_scalar, mtt_op_pow_scalar, mtt_op_neg, mtt_op_exp, mtt_op_log, mtt_op_sqrt,
    mtt_op_tanh, mtt_op_sigmoid, mtt_op_gelu, mtt_op_relu, mtt_op_clamp, mtt_op_masked_fill;
/* reductions (ops/reduce.c) */
extern const mtt_op_def mtt_op_sum, mtt_op_sum_all, mtt_op_mean, mtt_op_mean_all, mtt_op_max, mtt_op_max_all;
/* ---- [nn ops section: declare here] ---- */
/* linear algebra and network ops (ops/matmul.c, ops/nn.c, ops/attention.c) */
extern const mtt_op_def mtt_op_matmul, mtt_op_softmax, mtt_op_log_softmax, mtt_op_layer_norm, mtt_op_embedding,
    mtt_op_cross_entropy, mtt_op_dropout, mtt_op_attention;
/* ---- [indexing section: declare here] ---- */
/* indexing (ops/index.c); topk records nothing (the Lua layer differentiates it via gather) */
extern const mtt_op_def mtt_op_cat, mtt_op_gather, mtt_op_index_select;

const mtt_op_def *const mtt_op_table[] = {
    &mtt_op_view, &mtt_op_permute, &mtt_op_slice, &mtt_op_select, &mtt_op_expand, &mtt_op_contiguous,
    &mtt_op_clone, &mtt_op_to_dtype,
    &mtt_op_add, &mtt_op_sub, &mtt_op_mul, &mtt_op_div, &mtt_op_add_scalar, &mtt_op_mul_scalar,
    &mtt_op_rsub_scalar, &mtt_op_rdiv_scalar, &mtt_op_pow_scalar, &mtt_op_neg, &mtt_op_exp, &mtt_op_log,
    &mtt_op_sqrt, &mtt_op_tanh, &mtt_op_sigmoid, &mtt_op_gelu, &mtt_op_relu, &mtt_op_clamp, &mtt_op_masked_fill,
    &mtt_op_sum, &mtt_op_sum_all, &mtt_op_mean, &mtt_op_mean_all, &mtt_op_max, &mtt_op_max_all,
    /* ---- [nn ops section: rows here] ---- */
    &mtt_op_matmul, &mtt_op_softmax, &mtt_op_log_softmax, &mtt_op_layer_norm, &mtt_op_embedding,
    &mtt_op_cross_entropy, &mtt_op_dropout, &mtt_op_attention,
    /* ---- [indexing section: rows here] ---- */
    &mtt_op_cat, &mtt_op_gather, &mtt_op_index_select,
};
const int mtt_op_table_size = (int)(sizeof(mtt_op_table) / sizeof(mtt_op_table[0]));

int mtt_op_count(void) { return mtt_op_table_size; }
const char *mtt_op_name(int i) { return (i >= 0 && i < mtt_op_table_size) ? mtt_op_table[i]->name : NULL; }
int mtt_op_is_differentiable(int i) {
  return (i >= 0 && i < mtt_op_table_size) ? mtt_op_table[i]->backward != NULL : 0;
}
