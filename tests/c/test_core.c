/* test_core.c: tensors, views, elementwise ops, reductions and the autograd engine, driven from
 * C alone (the core knows nothing of Lua). Gradients are checked against central finite
 * differences in f64. Exits non-zero on the first failure. */
#include "test_util.h"

static double get(mtt_tensor *t, int64_t i0, int64_t i1) {
  int64_t idx[2] = {i0, i1};
  double v = NAN;
  mtt_get(t, idx, &v);
  return v;
}

static mtt_tensor *randn64(int ndim, const int64_t *shape) {
  mtt_tensor *t = mtt_randn(ndim, shape, MTT_F64, MTT_CPU, NULL);
  mtt_set_requires_grad(t, 1);
  return t;
}

/* A scalar function of up to 2 inputs: f(x) = sum(op(x) * w) with a fixed random w, so every
 * output element gets a different weight in the gradient. */
typedef mtt_tensor *(*op_fn)(mtt_tensor **in);

static mtt_tensor *weighted_sum(mtt_tensor *y) {
  mtt_generator g = {.seed = 99, .offset = 0};
  mtt_tensor *w = mtt_randn(y->ndim, y->dims, y->dtype_id, MTT_CPU, &g);
  mtt_tensor *p = mtt_mul(y, w);
  mtt_tensor *s = mtt_sum_all(p);
  mtt_tensor_release(w);
  mtt_tensor_release(p);
  return s;
}

static double eval(op_fn f, mtt_tensor **in) {
  int prev = mtt_set_grad_enabled(0);
  mtt_tensor *y = f(in), *s = y ? weighted_sum(y) : NULL;
  double v = NAN;
  if (s) mtt_item(s, &v);
  mtt_tensor_release(y);
  mtt_tensor_release(s);
  mtt_set_grad_enabled(prev);
  return v;
}

static void gradcheck(const char *name, op_fn f, int n, mtt_tensor **in) {
  for (int i = 0; i < n; i++) mtt_set_grad(in[i], NULL);
  mtt_tensor *y = f(in);
  CHECK(y != NULL, "%s: forward failed: %s", name, mtt_last_error());
  if (!y) return;
  mtt_tensor *s = weighted_sum(y);
  CHECK(mtt_backward(s, NULL) == 0, "%s: backward failed: %s", name, mtt_last_error());
  mtt_tensor_release(y);
  mtt_tensor_release(s);
  double worst = 0;
  for (int i = 0; i < n; i++) {
    if (!in[i]->needs_grad) continue;
    mtt_tensor *g = mtt_grad(in[i]);
    CHECK(g != NULL, "%s: no grad for input %d", name, i);
    if (!g) continue;
    double *x = mtt_data_ptr(in[i]), *gd = mtt_data_ptr(g);
    for (int64_t k = 0; k < in[i]->nelem; k++) {
      double keep = x[k], h = 1e-6;
      x[k] = keep + h;
      double up = eval(f, in);
      x[k] = keep - h;
      double down = eval(f, in);
      x[k] = keep;
      double num = (up - down) / (2 * h);
      double err = fabs(num - gd[k]) / fmax(1.0, fabs(num));
      if (err > worst) worst = err;
    }
    mtt_tensor_release(g);
  }
  CHECK(worst < 1e-6, "%s: gradient relative error %.3g", name, worst);
  printf("gradcheck %-14s max rel err %.2e\n", name, worst);
}

static mtt_tensor *f_add(mtt_tensor **in) { return mtt_add(in[0], in[1]); }
static mtt_tensor *f_sub(mtt_tensor **in) { return mtt_sub(in[0], in[1]); }
static mtt_tensor *f_mul(mtt_tensor **in) { return mtt_mul(in[0], in[1]); }
static mtt_tensor *f_div(mtt_tensor **in) { return mtt_div(in[0], in[1]); }
static mtt_tensor *f_gelu(mtt_tensor **in) { return mtt_gelu(in[0]); }
static mtt_tensor *f_tanh(mtt_tensor **in) { return mtt_tanh(in[0]); }
static mtt_tensor *f_sigmoid(mtt_tensor **in) { return mtt_sigmoid(in[0]); }
static mtt_tensor *f_exp(mtt_tensor **in) { return mtt_exp(in[0]); }
static mtt_tensor *f_rdiv(mtt_tensor **in) { return mtt_rdiv_scalar(in[0], 3.0); }
static mtt_tensor *f_sum1(mtt_tensor **in) { return mtt_sum(in[0], 1, 0); }
static mtt_tensor *f_mean0(mtt_tensor **in) { return mtt_mean(in[0], 0, 1); }
static mtt_tensor *f_max1(mtt_tensor **in) { return mtt_max(in[0], 1, 0); }
static mtt_tensor *f_maxall(mtt_tensor **in) { return mtt_max_all(in[0]); }
/* x used twice, through a transpose view and a slice */
static mtt_tensor *f_reuse(mtt_tensor **in) {
  mtt_tensor *t = mtt_transpose(in[0], 0, 1), *c = mtt_contiguous(t);
  mtt_tensor *s0 = mtt_slice(in[0], 1, 0, 3, 1), *s = mtt_transpose(s0, 0, 1); /* [3,2], strided */
  int64_t six = 6, shape[2] = {3, 2};
  mtt_tensor *flat = mtt_reshape(s, 1, &six), *v = mtt_reshape(flat, 2, shape); /* copy, then view */
  mtt_tensor *sq = mtt_mul(v, v), *e = mtt_exp(in[0]);
  mtt_tensor_release(s0);
  mtt_tensor_release(flat);
  mtt_tensor *r = mtt_add(c, sq);
  mtt_tensor *tt = mtt_transpose(r, 0, 1), *out = mtt_mul(tt, e);
  mtt_tensor *list[] = {t, c, s, v, sq, e, r, tt};
  for (int i = 0; i < 8; i++) mtt_tensor_release(list[i]);
  return out;
}
static mtt_tensor *f_expand(mtt_tensor **in) {
  int64_t shape[3] = {4, 2, 3};
  mtt_tensor *e = mtt_expand(in[0], 3, shape), *u = mtt_unsqueeze(in[1], 0), *r = mtt_mul(e, u);
  mtt_tensor_release(e);
  mtt_tensor_release(u);
  return r;
}

static void test_views(void) {
  int64_t shape[2] = {2, 3};
  double vals[6] = {1, 2, 3, 4, 5, 6};
  mtt_tensor *a = mtt_from_f64(2, shape, vals, MTT_F32, MTT_CPU);
  mtt_tensor *t = mtt_transpose(a, 0, 1);
  CHECK(t->dims[0] == 3 && t->dims[1] == 2 && !mtt_is_contiguous(t), "transpose shape");
  CHECK(get(t, 2, 1) == 6 && get(t, 1, 0) == 2, "transpose values");
  int64_t flat = -1;
  CHECK(mtt_view(t, 1, &flat) == NULL, "view of a transposed tensor must fail");
  CHECK(strstr(mtt_last_error(), "view") != NULL, "view error names the op: %s", mtt_last_error());
  mtt_tensor *r = mtt_reshape(t, 1, &flat);
  CHECK(r && r->dims[0] == 6, "reshape copies when needed");
  int64_t i3[1] = {3};
  double v;
  mtt_get(r, i3, &v);
  CHECK(v == 5, "reshape order (got %g)", v);
  mtt_tensor *s = mtt_slice(a, 1, 0, 3, 2);
  CHECK(s->dims[1] == 2 && get(s, 1, 1) == 6, "strided slice");
  int64_t bad[2] = {4, 2};
  CHECK(mtt_view(a, 2, bad) == NULL && mtt_last_error_code() == MTT_ERR_SHAPE, "view with wrong element count");
  mtt_tensor *list[] = {a, t, r, s};
  for (int i = 0; i < 4; i++) mtt_tensor_release(list[i]);
}

static void test_errors_and_inplace(void) {
  int64_t s1[2] = {4, 3}, s2[2] = {5, 2};
  mtt_tensor *a = mtt_zeros(2, s1, MTT_F32, MTT_CPU), *b = mtt_zeros(2, s2, MTT_F32, MTT_CPU);
  CHECK(mtt_add(a, b) == NULL, "broadcast mismatch refused");
  CHECK(strstr(mtt_last_error(), "[4,3]") && strstr(mtt_last_error(), "[5,2]"), "message names shapes: %s", mtt_last_error());
  mtt_tensor *x = mtt_randn(2, s1, MTT_F64, MTT_CPU, NULL);
  mtt_set_requires_grad(x, 1);
  CHECK(mtt_add_scalar_(x, 1.0) != 0, "in-place on a leaf that requires grad is refused");
  mtt_tensor *y = mtt_detach(x), *e = mtt_mul(x, y);
  mtt_set_grad_enabled(0);
  CHECK(mtt_add_scalar_(y, 1.0) == 0, "in-place under no_grad allowed");
  mtt_set_grad_enabled(1);
  mtt_tensor *s = mtt_sum_all(e);
  CHECK(mtt_backward(s, NULL) != 0 && strstr(mtt_last_error(), "modified in place"), "saved tensor changed: %s",
        mtt_last_error());
  CHECK(mtt_backward(e, NULL) != 0 && strstr(mtt_last_error(), "non-scalar"), "non-scalar backward: %s", mtt_last_error());
  mtt_tensor *list[] = {a, b, x, y, e, s};
  for (int i = 0; i < 6; i++) mtt_tensor_release(list[i]);
}

static void test_random_threads(void) {
  int64_t n = 100000;
  mtt_set_num_threads(1);
  mtt_generator g1 = {.seed = 5, .offset = 0}, g2 = {.seed = 5, .offset = 0};
  mtt_tensor *a = mtt_randn(1, &n, MTT_F32, MTT_CPU, &g1);
  mtt_set_num_threads(2);
  mtt_tensor *b = mtt_randn(1, &n, MTT_F32, MTT_CPU, &g2);
  CHECK(memcmp(mtt_data_ptr(a), mtt_data_ptr(b), (size_t)n * 4) == 0, "randn stream independent of threads");
  mtt_tensor *m = mtt_mean_all(a);
  double mean;
  mtt_item(m, &mean);
  CHECK(fabs(mean) < 0.02, "randn mean %g", mean);
  mtt_tensor *list[] = {a, b, m};
  for (int i = 0; i < 3; i++) mtt_tensor_release(list[i]);
}

int main(void) {
  int64_t s23[2] = {2, 3}, s3[1] = {3}, s13[2] = {1, 3}, s32[2] = {3, 2};
  mtt_tensor *a = randn64(2, s23), *b = randn64(2, s23), *c = randn64(1, s3), *d = randn64(2, s13);
  mtt_tensor *p = mtt_randn(2, s23, MTT_F64, MTT_CPU, NULL), *q = mtt_exp(p);
  mtt_set_requires_grad(q, 1);
  mtt_tensor *ab[2] = {a, b}, *ac[2] = {a, c}, *da[2] = {d, a}, *aq[2] = {a, q}, *one[1] = {a};
  gradcheck("add", f_add, 2, ab);
  gradcheck("add-bcast", f_add, 2, ac);
  gradcheck("sub-bcast", f_sub, 2, da);
  gradcheck("mul-bcast", f_mul, 2, ac);
  gradcheck("div", f_div, 2, aq);
  gradcheck("gelu", f_gelu, 1, one);
  gradcheck("tanh", f_tanh, 1, one);
  gradcheck("sigmoid", f_sigmoid, 1, one);
  gradcheck("exp", f_exp, 1, one);
  mtt_tensor *qq[1] = {q};
  gradcheck("rdiv", f_rdiv, 1, qq);
  gradcheck("sum", f_sum1, 1, one);
  gradcheck("mean", f_mean0, 1, one);
  gradcheck("max", f_max1, 1, one);
  gradcheck("max_all", f_maxall, 1, one);
  gradcheck("reuse+views", f_reuse, 1, one);
  mtt_tensor *e = randn64(2, s23), *f = randn64(2, s23);
  (void)s32;
  mtt_tensor *ef[2] = {d, e};
  gradcheck("expand", f_expand, 2, ef);
  test_views();
  test_errors_and_inplace();
  test_random_threads();
  mtt_tensor *list[] = {a, b, c, d, p, q, e, f};
  for (int i = 0; i < 8; i++) mtt_tensor_release(list[i]);
  return test_done("test_core");
}
