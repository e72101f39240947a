/* test_index_optim.c: cat, gather, index_select and topk (forward, errors, gradients against
 * central finite differences in f64) and the fused optimizers (SGD, AdamW, clip_grad_norm)
 * against updates computed by hand below. Exits non-zero on any failure. */
#include "test_util.h"

/* ---- helpers ---- */

static mtt_tensor *tensor1(int64_t n, const double *v, int dtype) { return tensor(1, &n, v, dtype); }

static int lcg_int(int n) { return (int)((lcg() + 1.0) * 0.5 * n) % n; }

static void expect_values(const char *what, const mtt_tensor *t, int64_t n, const double *want, double tol) {
  if (!t) {
    CHECK(0, "%s: no tensor (%s)", what, mtt_last_error());
    return;
  }
  CHECK(t->nelem == n, "%s: %lld elements, expected %lld", what, (long long)t->nelem, (long long)n);
  if (t->nelem != n) return;
  double *got = values_of(t);
  for (int64_t i = 0; i < n; i++)
    CHECK(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i])) || (isnan(got[i]) && isnan(want[i])),
          "%s: element %lld is %.17g, expected %.17g", what, (long long)i, got[i], want[i]);
  free(got);
}

static void expect_shape(const char *what, const mtt_tensor *t, int ndim, const int64_t *shape) {
  if (!t) return;
  int ok = t->ndim == ndim;
  for (int d = 0; ok && d < ndim; d++) ok = t->dims[d] == shape[d];
  CHECK(ok, "%s: wrong shape (ndim %d)", what, t->ndim);
}

static void expect_error(const char *what, int code, int want, const char *must_contain) {
  CHECK(code == want, "%s: error code %d, expected %d (%s)", what, code, want, mtt_last_error());
  if (must_contain) CHECK(strstr(mtt_last_error(), must_contain) != NULL, "%s: message '%s' lacks '%s'", what,
                          mtt_last_error(), must_contain);
  mtt_clear_error();
}

static void index_of(const mtt_tensor *t, int64_t linear, int64_t *idx) {
  for (int d = t->ndim - 1; d >= 0; d--) {
    idx[d] = linear % t->dims[d];
    linear /= t->dims[d];
  }
}

/* ---- gradient check: L = sum(f(inputs) * w) for a fixed random w; dL/dx from backward vs
 * central differences, for every element of every input that requires grad (all f64). ---- */

typedef mtt_tensor *(*op_fn)(mtt_tensor **inputs, void *ctx);

static double weighted_sum(mtt_tensor *y, const double *w) {
  double *v = values_of(y), s = 0;
  for (int64_t i = 0; i < y->nelem; i++) s += v[i] * w[i];
  free(v);
  return s;
}

static void gradcheck(const char *name, int n, mtt_tensor **inputs, op_fn f, void *ctx) {
  mtt_set_grad_enabled(1);
  mtt_tensor *y = f(inputs, ctx);
  if (!y) {
    CHECK(0, "%s: forward failed: %s", name, mtt_last_error());
    return;
  }
  CHECK(mtt_grad_fn_name(y) != NULL, "%s: output has no grad_fn", name);
  double *w = malloc(sizeof(double) * (size_t)(y->nelem ? y->nelem : 1));
  for (int64_t i = 0; i < y->nelem; i++) w[i] = lcg();
  mtt_tensor *wt = tensor(y->ndim, y->dims, w, MTT_F64);
  for (int k = 0; k < n; k++) mtt_set_grad(inputs[k], NULL);
  int rc = mtt_backward(y, wt);
  CHECK(rc == 0, "%s: backward failed: %s", name, mtt_last_error());
  mtt_tensor_release(wt);
  mtt_tensor_release(y);
  mtt_set_grad_enabled(0);
  const double h = 1e-6;
  for (int k = 0; k < n && rc == 0; k++) {
    mtt_tensor *x = inputs[k];
    if (!x->needs_grad) continue;
    mtt_tensor *g = mtt_grad(x);
    if (!g) {
      CHECK(0, "%s: input %d got no gradient", name, k + 1);
      continue;
    }
    double *ga = values_of(g);
    mtt_tensor_release(g);
    for (int64_t e = 0; e < x->nelem; e++) {
      int64_t idx[8];
      double x0;
      index_of(x, e, idx);
      mtt_get(x, idx, &x0);
      mtt_set(x, idx, x0 + h);
      mtt_tensor *yp = f(inputs, ctx);
      mtt_set(x, idx, x0 - h);
      mtt_tensor *ym = f(inputs, ctx);
      mtt_set(x, idx, x0);
      double num = (weighted_sum(yp, w) - weighted_sum(ym, w)) / (2 * h);
      mtt_tensor_release(yp);
      mtt_tensor_release(ym);
      CHECK(fabs(num - ga[e]) <= 1e-6 * (1 + fabs(num)), "%s: d/d input %d [%lld]: backward %.12g, numeric %.12g", name,
            k + 1, (long long)e, ga[e], num);
    }
    free(ga);
  }
  free(w);
  mtt_set_grad_enabled(1);
}

/* ---- cat ---- */

typedef struct cat_ctx {
  int n, dim;
} cat_ctx;

static mtt_tensor *cat_op(mtt_tensor **in, void *ctx) {
  cat_ctx *c = ctx;
  return mtt_cat(c->n, in, c->dim);
}

static void test_cat(void) {
  double av[] = {0, 1, 2, 3, 4, 5}, bv[] = {10, 11, 12, 13};
  int64_t sa[] = {2, 3}, sb[] = {2, 2}, sc[] = {1, 3};
  mtt_tensor *a = tensor(2, sa, av, MTT_F32), *b = tensor(2, sb, bv, MTT_F32);
  mtt_tensor *ab[] = {a, b};
  mtt_tensor *y = mtt_cat(2, ab, 1);
  double want1[] = {0, 1, 2, 10, 11, 3, 4, 5, 12, 13};
  int64_t s25[] = {2, 5};
  expect_shape("cat dim 1", y, 2, s25);
  expect_values("cat dim 1", y, 10, want1, 0);
  CHECK(y && mtt_grad_fn_name(y) == NULL, "cat: constant inputs must not record a node");
  mtt_tensor_release(y);

  mtt_tensor *c = tensor(2, sc, bv, MTT_F32);
  mtt_tensor *ac[] = {a, c, a};
  y = mtt_cat(3, ac, 0);
  double want0[] = {0, 1, 2, 3, 4, 5, 10, 11, 12, 0, 1, 2, 3, 4, 5};
  expect_values("cat dim 0", y, 15, want0, 0);
  mtt_tensor_release(y);

  /* a strided (transposed) input */
  mtt_tensor *at = mtt_transpose(a, 0, 1); /* [3,2]: 0 3 / 1 4 / 2 5 */
  mtt_tensor *tt[] = {at, at};
  y = mtt_cat(2, tt, 1);
  double wantt[] = {0, 3, 0, 3, 1, 4, 1, 4, 2, 5, 2, 5};
  expect_values("cat of transposed views", y, 12, wantt, 0);
  mtt_tensor_release(y);
  mtt_tensor_release(at);

  /* errors */
  CHECK(mtt_cat(2, ab, 0) == NULL, "cat: [2,3] and [2,2] along dim 0 must fail");
  expect_error("cat shapes", mtt_last_error_code(), MTT_ERR_SHAPE, "tensor 2 has shape [2,2]");
  mtt_tensor *d64 = tensor(2, sb, bv, MTT_F64);
  mtt_tensor *ad[] = {a, d64};
  CHECK(mtt_cat(2, ad, 1) == NULL, "cat: mixed dtypes must fail");
  expect_error("cat dtypes", mtt_last_error_code(), MTT_ERR_DTYPE, "tensor 2");
  CHECK(mtt_cat(2, ab, 2) == NULL, "cat: dim 2 of a 2-d tensor must fail");
  expect_error("cat dim", mtt_last_error_code(), MTT_ERR_INDEX, "cat");
  CHECK(mtt_cat(0, ab, 0) == NULL, "cat: an empty list must fail");
  expect_error("cat empty", mtt_last_error_code(), MTT_ERR_ARG, "cat");
  mtt_tensor *an[] = {a, NULL};
  CHECK(mtt_cat(2, an, 0) == NULL, "cat: a nil entry must fail");
  expect_error("cat nil", mtt_last_error_code(), MTT_ERR_ARG, "tensor 2 of 2");
  mtt_tensor_release(d64);
  mtt_tensor_release(a);
  mtt_tensor_release(b);
  mtt_tensor_release(c);

  /* gradients: 3 inputs, the middle one constant */
  int64_t g1[] = {2, 3, 2}, g2[] = {2, 1, 2}, g3[] = {2, 4, 2};
  mtt_tensor *x[17];
  x[0] = random_tensor(3, g1, MTT_F64, 0);
  x[1] = random_tensor(3, g2, MTT_F64, 0);
  x[2] = random_tensor(3, g3, MTT_F64, 0);
  mtt_set_requires_grad(x[0], 1);
  mtt_set_requires_grad(x[2], 1);
  cat_ctx c3 = {3, 1};
  gradcheck("cat (3 inputs)", 3, x, cat_op, &c3);
  for (int k = 0; k < 3; k++) mtt_tensor_release(x[k]);

  /* more inputs than a node holds: recorded as a tree of nodes; 6 and 17 inputs, dim 0 */
  int counts[] = {6, 17};
  for (int q = 0; q < 2; q++) {
    int n = counts[q];
    for (int k = 0; k < n; k++) {
      int64_t s[] = {1 + k % 3, 2};
      x[k] = random_tensor(2, s, MTT_F64, 0);
      if (k % 4 != 1) mtt_set_requires_grad(x[k], 1);
    }
    cat_ctx cn = {n, 0};
    gradcheck(n == 6 ? "cat (6 inputs)" : "cat (17 inputs)", n, x, cat_op, &cn);
    /* the forward of a long cat is still one plain concatenation */
    mtt_tensor *yy = mtt_cat(n, x, 0);
    double *got = values_of(yy);
    int64_t pos = 0;
    for (int k = 0; k < n; k++) {
      double *xv = values_of(x[k]);
      for (int64_t e = 0; e < x[k]->nelem; e++, pos++) CHECK(got[pos] == xv[e], "cat (%d inputs): element %lld", n, (long long)pos);
      free(xv);
    }
    free(got);
    mtt_tensor_release(yy);
    for (int k = 0; k < n; k++) mtt_tensor_release(x[k]);
  }
}

/* ---- gather and index_select ---- */

typedef struct index_ctx {
  int dim;
  mtt_tensor *index;
} index_ctx;

static mtt_tensor *gather_op(mtt_tensor **in, void *ctx) {
  index_ctx *c = ctx;
  return mtt_gather(in[0], c->dim, c->index);
}

static mtt_tensor *index_select_op(mtt_tensor **in, void *ctx) {
  index_ctx *c = ctx;
  return mtt_index_select(in[0], c->dim, c->index);
}

static mtt_tensor *random_index(int ndim, const int64_t *shape, int bound) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  double *v = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = lcg_int(bound);
  mtt_tensor *t = tensor(ndim, shape, v, MTT_I32);
  free(v);
  return t;
}

static void test_gather(void) {
  /* torch's doc example: gather([[1,2],[3,4]], 1, [[0,0],[1,0]]) = [[1,1],[4,3]] */
  int64_t s22[] = {2, 2};
  double xv[] = {1, 2, 3, 4}, iv[] = {0, 0, 1, 0};
  mtt_tensor *x = tensor(2, s22, xv, MTT_F32), *idx = tensor(2, s22, iv, MTT_I32);
  mtt_tensor *y = mtt_gather(x, 1, idx);
  double want[] = {1, 1, 4, 3};
  expect_values("gather dim 1", y, 4, want, 0);
  mtt_tensor_release(y);
  y = mtt_gather(x, 0, idx); /* [[x00, x01], [x10, x01]] */
  double want0[] = {1, 2, 3, 2};
  expect_values("gather dim 0", y, 4, want0, 0);
  mtt_tensor_release(y);

  /* an index smaller than the input in the other dim: [3,4] input, [2,2] index along dim 0 */
  int64_t s34[] = {3, 4};
  double x34[12];
  for (int i = 0; i < 12; i++) x34[i] = i;
  mtt_tensor *x2 = tensor(2, s34, x34, MTT_F64);
  double ivs[] = {2, 0, 1, 2};
  mtt_tensor *small = tensor(2, s22, ivs, MTT_I32);
  y = mtt_gather(x2, 0, small);
  double wants[] = {8, 1, 4, 9};
  expect_values("gather, smaller index", y, 4, wants, 0);
  mtt_tensor_release(y);

  /* i32 data gathers too */
  mtt_tensor *xi = tensor(2, s22, xv, MTT_I32);
  y = mtt_gather(xi, 1, idx);
  expect_values("gather i32", y, 4, want, 0);
  CHECK(y && y->dtype_id == MTT_I32, "gather i32: dtype");
  mtt_tensor_release(y);
  mtt_tensor_release(xi);

  /* errors */
  double bad[] = {0, 5, 1, 0};
  mtt_tensor *bidx = tensor(2, s22, bad, MTT_I32);
  CHECK(mtt_gather(x, 1, bidx) == NULL, "gather: index 5 into size 2 must fail");
  expect_error("gather range", mtt_last_error_code(), MTT_ERR_INDEX, "index 5 out of range for dim 2 of size 2");
  double neg[] = {0, -1, 1, 0};
  mtt_tensor *nidx = tensor(2, s22, neg, MTT_I32);
  CHECK(mtt_gather(x, 1, nidx) == NULL, "gather: a negative index must fail");
  expect_error("gather negative", mtt_last_error_code(), MTT_ERR_INDEX, "index -1");
  mtt_tensor *fidx = tensor(2, s22, iv, MTT_F32);
  CHECK(mtt_gather(x, 1, fidx) == NULL, "gather: an f32 index must fail");
  expect_error("gather index dtype", mtt_last_error_code(), MTT_ERR_DTYPE, "i32");
  mtt_tensor *idx1 = tensor1(2, iv, MTT_I32);
  CHECK(mtt_gather(x, 1, idx1) == NULL, "gather: index with fewer dims must fail");
  expect_error("gather ndim", mtt_last_error_code(), MTT_ERR_SHAPE, "gather");
  int64_t s32[] = {3, 2};
  mtt_tensor *big = random_index(2, s32, 2);
  CHECK(mtt_gather(x, 1, big) == NULL, "gather: index larger than input in dim 0 must fail");
  expect_error("gather larger", mtt_last_error_code(), MTT_ERR_SHAPE, "larger");
  mtt_tensor_release(big);
  mtt_tensor_release(idx1);
  mtt_tensor_release(fidx);
  mtt_tensor_release(nidx);
  mtt_tensor_release(bidx);

  /* gradients: repeated indices, 3-d, each dim; and the smaller-index case */
  int64_t s3[] = {3, 4, 2};
  for (int dim = 0; dim < 3; dim++) {
    mtt_tensor *xg = random_tensor(3, s3, MTT_F64, 0);
    mtt_set_requires_grad(xg, 1);
    int64_t is[] = {3, 4, 2};
    is[dim] = 5; /* more rows than the input: repeats are certain */
    mtt_tensor *gi = random_index(3, is, (int)s3[dim]);
    index_ctx c = {dim, gi};
    char name[64];
    snprintf(name, sizeof name, "gather dim %d", dim);
    gradcheck(name, 1, &xg, gather_op, &c);
    mtt_tensor_release(gi);
    mtt_tensor_release(xg);
  }
  mtt_set_requires_grad(x2, 1);
  index_ctx cs = {0, small};
  gradcheck("gather, smaller index", 1, &x2, gather_op, &cs);
  mtt_tensor_release(small);
  mtt_tensor_release(x2);
  mtt_tensor_release(idx);
  mtt_tensor_release(x);
}

static void test_index_select(void) {
  int64_t s34[] = {3, 4};
  double xv[12];
  for (int i = 0; i < 12; i++) xv[i] = i;
  mtt_tensor *x = tensor(2, s34, xv, MTT_F32);
  double iv[] = {2, 0, 2};
  mtt_tensor *idx = tensor1(3, iv, MTT_I32);
  mtt_tensor *y = mtt_index_select(x, 0, idx);
  double want0[] = {8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11};
  int64_t s0[] = {3, 4};
  expect_shape("index_select dim 0", y, 2, s0);
  expect_values("index_select dim 0", y, 12, want0, 0);
  mtt_tensor_release(y);
  y = mtt_index_select(x, 1, idx);
  double want1[] = {2, 0, 2, 6, 4, 6, 10, 8, 10};
  int64_t s1[] = {3, 3};
  expect_shape("index_select dim 1", y, 2, s1);
  expect_values("index_select dim 1", y, 9, want1, 0);
  mtt_tensor_release(y);

  /* a 0-d index keeps the dim with size 1, as torch does */
  double one = 1;
  mtt_tensor *i0 = tensor(0, NULL, &one, MTT_I32);
  y = mtt_index_select(x, 0, i0);
  int64_t s14[] = {1, 4};
  double want2[] = {4, 5, 6, 7};
  expect_shape("index_select 0-d index", y, 2, s14);
  expect_values("index_select 0-d index", y, 4, want2, 0);
  mtt_tensor_release(y);
  mtt_tensor_release(i0);

  /* a 1-d input */
  double v5[] = {10, 20, 30, 40, 50}, iv4[] = {4, 4, 0, 3};
  mtt_tensor *x1 = tensor1(5, v5, MTT_F64), *i4 = tensor1(4, iv4, MTT_I32);
  y = mtt_index_select(x1, 0, i4);
  double want3[] = {50, 50, 10, 40};
  expect_values("index_select 1-d", y, 4, want3, 0);
  mtt_tensor_release(y);
  mtt_set_requires_grad(x1, 1);
  index_ctx c1 = {0, i4};
  gradcheck("index_select 1-d", 1, &x1, index_select_op, &c1);
  mtt_tensor_release(x1);
  mtt_tensor_release(i4);

  /* errors */
  double bad[] = {0, 3};
  mtt_tensor *bi = tensor1(2, bad, MTT_I32);
  CHECK(mtt_index_select(x, 0, bi) == NULL, "index_select: index 3 into size 3 must fail");
  expect_error("index_select range", mtt_last_error_code(), MTT_ERR_INDEX, "index 3 out of range for dim 1 of size 3");
  mtt_tensor *i2 = tensor(2, s34 + 0, xv, MTT_I32);
  CHECK(mtt_index_select(x, 0, i2) == NULL, "index_select: a 2-d index must fail");
  expect_error("index_select 2-d", mtt_last_error_code(), MTT_ERR_SHAPE, "1-D");
  CHECK(mtt_index_select(x, 2, idx) == NULL, "index_select: dim out of range must fail");
  expect_error("index_select dim", mtt_last_error_code(), MTT_ERR_INDEX, "index_select");
  mtt_tensor_release(i2);
  mtt_tensor_release(bi);

  /* gradients with repeated indices, each dim of a 3-d input */
  int64_t s3[] = {4, 3, 5};
  for (int dim = 0; dim < 3; dim++) {
    mtt_tensor *xg = random_tensor(3, s3, MTT_F64, 0);
    mtt_set_requires_grad(xg, 1);
    int64_t n = 6;
    mtt_tensor *gi = random_index(1, &n, (int)s3[dim]);
    index_ctx c = {dim, gi};
    char name[64];
    snprintf(name, sizeof name, "index_select dim %d", dim);
    gradcheck(name, 1, &xg, index_select_op, &c);
    mtt_tensor_release(gi);
    mtt_tensor_release(xg);
  }
  mtt_tensor_release(idx);
  mtt_tensor_release(x);
}

/* The scatter-add of gradients gives the same bits on 1 and 2 threads (large enough to run in
 * parallel). */
static void test_scatter_determinism(void) {
  int saved_threads = mtt_get_num_threads();
  int64_t xs[] = {2, 40, 300}, is[] = {2, 500, 300}, n = 700;
  mtt_tensor *x = random_tensor(3, xs, MTT_F32, 0);
  mtt_tensor *gi = random_index(3, is, 40), *si = random_index(1, &n, 40);
  mtt_set_requires_grad(x, 1);
  double *grads[2][2];
  for (int t = 0; t < 2; t++) {
    mtt_set_num_threads(t + 1);
    for (int op = 0; op < 2; op++) {
      mtt_set_grad(x, NULL);
      mtt_tensor *y = op == 0 ? mtt_gather(x, 1, gi) : mtt_index_select(x, 1, si);
      mtt_tensor *s = y ? mtt_sum_all(y) : NULL;
      CHECK(s && mtt_backward(s, NULL) == 0, "scatter determinism: backward failed: %s", mtt_last_error());
      mtt_tensor *g = mtt_grad(x);
      grads[t][op] = g ? values_of(g) : NULL;
      mtt_tensor_release(g);
      mtt_tensor_release(s);
      mtt_tensor_release(y);
    }
  }
  for (int op = 0; op < 2; op++) {
    CHECK(grads[0][op] && grads[1][op] && memcmp(grads[0][op], grads[1][op], sizeof(double) * (size_t)x->nelem) == 0,
          "%s: gradients differ between 1 and 2 threads", op == 0 ? "gather" : "index_select");
    free(grads[0][op]);
    free(grads[1][op]);
  }
  mtt_set_num_threads(saved_threads);
  mtt_tensor_release(gi);
  mtt_tensor_release(si);
  mtt_tensor_release(x);
}

/* ---- topk ---- */

/* Reference: the k best of one row by repeated selection of the best remaining element. */
static int better(double a, int ia, double b, int ib, int largest) {
  int an = isnan(a), bn = isnan(b);
  if (an != bn) return largest ? an : bn;
  if (!an && a != b) return largest ? a > b : a < b;
  return ia < ib;
}

static void topk_reference(const double *row, int m, int k, int largest, double *vals, int *idx) {
  char *used = calloc((size_t)m, 1);
  for (int q = 0; q < k; q++) {
    int best = -1;
    for (int i = 0; i < m; i++)
      if (!used[i] && (best < 0 || better(row[i], i, row[best], best, largest))) best = i;
    used[best] = 1;
    vals[q] = row[best];
    idx[q] = best;
  }
  free(used);
}

static void check_topk_against_reference(const char *name, int rows, int m, int k, int largest, int dtype, int levels) {
  double *v = malloc(sizeof(double) * (size_t)(rows * m));
  for (int i = 0; i < rows * m; i++) v[i] = levels > 0 ? lcg_int(levels) : (levels < 0 && i % 17 == 3 ? NAN : lcg());
  int64_t s[] = {rows, m};
  mtt_tensor *x = tensor(2, s, v, dtype), *vals = NULL, *idx = NULL;
  free(v);
  v = values_of(x); /* the reference sees the values as stored (f32 rounds them) */
  /* along dim 1 directly; along dim 0 through a transposed view */
  for (int pass = 0; pass < 2; pass++) {
    mtt_tensor *in = pass == 0 ? x : mtt_transpose(x, 0, 1);
    int rc = mtt_topk(in, k, pass == 0 ? 1 : 0, largest, &vals, &idx);
    CHECK(rc == 0, "%s: topk failed: %s", name, mtt_last_error());
    if (rc == 0) {
      double *gv = values_of(vals), *gi = values_of(idx), *rv = malloc(sizeof(double) * (size_t)k);
      int *ri = malloc(sizeof(int) * (size_t)k);
      for (int r = 0; r < rows; r++) {
        topk_reference(v + r * m, m, k, largest, rv, ri);
        for (int q = 0; q < k; q++) {
          int64_t at = pass == 0 ? (int64_t)r * k + q : (int64_t)q * rows + r;
          CHECK(gi[at] == ri[q] && (gv[at] == rv[q] || (isnan(gv[at]) && isnan(rv[q]))),
                "%s (pass %d): row %d rank %d: got %g at %g, expected %g at %d", name, pass, r, q, gv[at], gi[at], rv[q],
                ri[q]);
        }
      }
      free(gv);
      free(gi);
      free(rv);
      free(ri);
    }
    mtt_tensor_release(vals);
    mtt_tensor_release(idx);
    if (in != x) mtt_tensor_release(in);
  }
  mtt_tensor_release(x);
  free(v);
}

static void test_topk(void) {
  double v[] = {1, 3, 3, 2, 5, 5};
  mtt_tensor *x = tensor1(6, v, MTT_F32), *vals = NULL, *idx = NULL;
  CHECK(mtt_topk(x, 3, 0, 1, &vals, &idx) == 0, "topk largest: %s", mtt_last_error());
  double wv[] = {5, 5, 3}, wi[] = {4, 5, 1};
  expect_values("topk largest values", vals, 3, wv, 0);
  expect_values("topk largest indices", idx, 3, wi, 0);
  CHECK(vals && vals->dtype_id == MTT_F32 && idx && idx->dtype_id == MTT_I32, "topk: dtypes");
  mtt_tensor_release(vals);
  mtt_tensor_release(idx);
  CHECK(mtt_topk(x, 4, 0, 0, &vals, &idx) == 0, "topk smallest: %s", mtt_last_error());
  double sv[] = {1, 2, 3, 3}, si[] = {0, 3, 1, 2};
  expect_values("topk smallest values", vals, 4, sv, 0);
  expect_values("topk smallest indices", idx, 4, si, 0);
  mtt_tensor_release(vals);
  mtt_tensor_release(idx);

  /* k = 0 and k = n */
  CHECK(mtt_topk(x, 0, 0, 1, &vals, &idx) == 0 && vals && vals->nelem == 0, "topk k=0");
  mtt_tensor_release(vals);
  mtt_tensor_release(idx);
  CHECK(mtt_topk(x, 6, 0, 1, &vals, &idx) == 0, "topk k=n: %s", mtt_last_error());
  double av[] = {5, 5, 3, 3, 2, 1}, ai[] = {4, 5, 1, 2, 3, 0};
  expect_values("topk k=n values", vals, 6, av, 0);
  expect_values("topk k=n indices", idx, 6, ai, 0);
  mtt_tensor_release(vals);
  mtt_tensor_release(idx);

  /* NaN counts above every number */
  double nv[] = {1, NAN, 3};
  mtt_tensor *xn = tensor1(3, nv, MTT_F64);
  CHECK(mtt_topk(xn, 2, 0, 1, &vals, &idx) == 0, "topk nan");
  double nwv[] = {NAN, 3}, nwi[] = {1, 2};
  expect_values("topk nan largest", vals, 2, nwv, 0);
  expect_values("topk nan largest indices", idx, 2, nwi, 0);
  mtt_tensor_release(vals);
  mtt_tensor_release(idx);
  CHECK(mtt_topk(xn, 3, 0, 0, &vals, &idx) == 0, "topk nan smallest");
  double nsi[] = {0, 2, 1};
  expect_values("topk nan smallest indices", idx, 3, nsi, 0);
  mtt_tensor_release(vals);
  mtt_tensor_release(idx);
  mtt_tensor_release(xn);

  /* errors */
  CHECK(mtt_topk(x, 7, 0, 1, &vals, &idx) != 0 && vals == NULL && idx == NULL, "topk: k=7 of 6 must fail");
  expect_error("topk k", mtt_last_error_code(), MTT_ERR_INDEX, "k = 7");
  CHECK(mtt_topk(x, -1, 0, 1, &vals, &idx) != 0, "topk: k=-1 must fail");
  expect_error("topk negative k", mtt_last_error_code(), MTT_ERR_INDEX, "topk");
  CHECK(mtt_topk(x, 1, 1, 1, &vals, &idx) != 0, "topk: dim 1 of a 1-d tensor must fail");
  expect_error("topk dim", mtt_last_error_code(), MTT_ERR_INDEX, "topk");

  /* not differentiable: plain tensors even when the input requires grad */
  mtt_tensor *xg = tensor1(6, v, MTT_F64);
  mtt_set_requires_grad(xg, 1);
  CHECK(mtt_topk(xg, 2, 0, 1, &vals, &idx) == 0 && vals && !vals->grad_node && !vals->needs_grad,
        "topk: values must carry no grad_fn");
  mtt_tensor_release(vals);
  mtt_tensor_release(idx);
  mtt_tensor_release(xg);
  mtt_tensor_release(x);

  /* random rows with many ties, both code paths (small k: running buffer; large k: sort) */
  check_topk_against_reference("topk small k, ties", 7, 300, 5, 1, MTT_F32, 20);
  check_topk_against_reference("topk small k smallest", 7, 300, 5, 0, MTT_F64, 20);
  check_topk_against_reference("topk k=1", 3, 100, 1, 1, MTT_F32, 5);
  check_topk_against_reference("topk middle k, ties", 4, 300, 40, 1, MTT_F32, 30);
  check_topk_against_reference("topk middle k smallest", 4, 300, 41, 0, MTT_F64, 0);
  check_topk_against_reference("topk large k, ties", 5, 120, 100, 1, MTT_F32, 10);
  check_topk_against_reference("topk large k smallest", 5, 120, 70, 0, MTT_F64, 0);
  check_topk_against_reference("topk i32", 4, 50, 8, 1, MTT_I32, 6);
  check_topk_against_reference("topk nan rows largest", 4, 200, 20, 1, MTT_F32, -1);
  check_topk_against_reference("topk nan rows smallest", 4, 200, 20, 0, MTT_F64, -1);
  check_topk_against_reference("topk nan rows, sorted", 4, 60, 50, 1, MTT_F32, -1);
  check_topk_against_reference("topk many rows", 700, 64, 3, 1, MTT_F32, 0);
}

/* ---- optimizers ---- */

static mtt_tensor *param(int64_t n, const double *v, int dtype) {
  mtt_tensor *p = tensor1(n, v, dtype);
  mtt_set_requires_grad(p, 1);
  return p;
}

static void set_grad(mtt_tensor *p, int64_t n, const double *g) {
  mtt_tensor *gt = tensor1(n, g, p->dtype_id);
  CHECK(mtt_set_grad(p, gt) == 0, "set_grad: %s", mtt_last_error());
  mtt_tensor_release(gt);
}

/* SGD by hand (torch.optim.SGD), three steps with changing gradients. */
static void test_sgd(void) {
  const double p0[] = {1.0, -2.0, 0.5}, grads[3][3] = {{0.5, 0.25, -1}, {-0.3, 0.1, 2}, {0.2, -0.7, 0.05}};
  const double lr = 0.1, mom = 0.9, wd = 0.01;
  for (int dtype = MTT_F32; dtype <= MTT_F64; dtype++)
    for (int variant = 0; variant < 4; variant++) {
      /* 0: plain, 1: momentum, 2: momentum + dampening 0.5, 3: nesterov */
      double m = variant ? mom : 0, damp = variant == 2 ? 0.5 : 0, decay = variant == 0 ? 0 : wd;
      int nesterov = variant == 3;
      double p[3], buf[3] = {0};
      memcpy(p, p0, sizeof p);
      mtt_tensor *pt = param(3, p0, dtype), *bt = mtt_zeros(1, (int64_t[]){3}, dtype, MTT_CPU);
      mtt_tensor *frozen = param(3, p0, dtype); /* no grad: skipped */
      mtt_tensor *ps[] = {pt, frozen}, *bs[] = {bt, NULL};
      for (int step = 0; step < 3; step++) {
        set_grad(pt, 3, grads[step]);
        int rc = mtt_sgd_step(2, ps, variant ? bs : NULL, lr, m, damp, decay, nesterov, step == 0);
        CHECK(rc == 0, "sgd variant %d: %s", variant, mtt_last_error());
        for (int i = 0; i < 3; i++) {
          double d = grads[step][i] + decay * p[i];
          if (m != 0) {
            buf[i] = step == 0 ? d : m * buf[i] + (1 - damp) * d;
            d = nesterov ? d + m * buf[i] : buf[i];
          }
          p[i] -= lr * d;
        }
        char name[64];
        snprintf(name, sizeof name, "sgd %s variant %d step %d", dtype == MTT_F32 ? "f32" : "f64", variant, step + 1);
        double tol = dtype == MTT_F32 ? 2e-6 : 1e-14;
        expect_values(name, pt, 3, p, tol);
        if (m != 0) expect_values(name, bt, 3, buf, tol);
        expect_values("sgd: a param without grad is unchanged", frozen, 3, p0, 0);
      }
      mtt_tensor_release(pt);
      mtt_tensor_release(bt);
      mtt_tensor_release(frozen);
    }

  /* errors leave every param unchanged */
  mtt_tensor *a = param(3, p0, MTT_F64), *b = param(3, p0, MTT_F64);
  set_grad(a, 3, grads[0]);
  set_grad(b, 3, grads[1]);
  mtt_tensor *wrong = mtt_zeros(1, (int64_t[]){2}, MTT_F64, MTT_CPU), *okbuf = mtt_zeros(1, (int64_t[]){3}, MTT_F64, MTT_CPU);
  mtt_tensor *ps[] = {a, b}, *bs[] = {okbuf, wrong};
  CHECK(mtt_sgd_step(2, ps, bs, lr, mom, 0, 0, 0, 1) != 0, "sgd: a buffer of the wrong shape must fail");
  expect_error("sgd buffer shape", mtt_last_error_code(), MTT_ERR_SHAPE, "momentum buffer 2 has shape [2]");
  expect_values("sgd: failed step leaves param 1 alone", a, 3, p0, 0);
  bs[1] = NULL;
  CHECK(mtt_sgd_step(2, ps, bs, lr, mom, 0, 0, 0, 1) != 0, "sgd: a missing buffer must fail");
  expect_error("sgd missing buffer", mtt_last_error_code(), MTT_ERR_ARG, "momentum buffer 2");
  CHECK(mtt_sgd_step(2, ps, NULL, -1, 0, 0, 0, 0, 1) != 0, "sgd: negative lr must fail");
  expect_error("sgd lr", mtt_last_error_code(), MTT_ERR_ARG, "learning rate");
  CHECK(mtt_sgd_step(2, ps, bs, lr, 0.9, 0.1, 0, 1, 1) != 0, "sgd: nesterov with dampening must fail");
  expect_error("sgd nesterov", mtt_last_error_code(), MTT_ERR_ARG, "nesterov");
  mtt_tensor *g32 = tensor1(3, grads[0], MTT_F32);
  mtt_tensor_release(a->grad_tensor); /* a gradient of another dtype (only possible by hand) */
  a->grad_tensor = g32;
  CHECK(mtt_sgd_step(1, ps, NULL, lr, 0, 0, 0, 0, 1) != 0, "sgd: an f32 grad for an f64 param must fail");
  expect_error("sgd grad dtype", mtt_last_error_code(), MTT_ERR_DTYPE, "gradient 1");
  expect_values("sgd: failed steps leave param 1 alone", a, 3, p0, 0);
  mtt_tensor_release(a);
  mtt_tensor_release(b);
  mtt_tensor_release(wrong);
  mtt_tensor_release(okbuf);
}

/* AdamW by hand (torch.optim.AdamW), three steps. */
static void test_adamw(void) {
  const double p0[] = {1.0, -2.0, 0.5, 0}, grads[3][4] = {{0.5, 0.25, -1, 0}, {-0.3, 0.1, 2, 1e-3}, {0.2, -0.7, 0.05, -4}};
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  for (int dtype = MTT_F32; dtype <= MTT_F64; dtype++) {
    double p[4], m[4] = {0}, v[4] = {0};
    memcpy(p, p0, sizeof p);
    mtt_tensor *pt = param(4, p0, dtype), *frozen = param(4, p0, dtype);
    mtt_tensor *mt = mtt_zeros(1, (int64_t[]){4}, dtype, MTT_CPU), *vt = mtt_zeros(1, (int64_t[]){4}, dtype, MTT_CPU);
    mtt_tensor *ps[] = {frozen, pt}, *ms[] = {NULL, mt}, *vs[] = {NULL, vt};
    for (int step = 1; step <= 3; step++) {
      set_grad(pt, 4, grads[step - 1]);
      int rc = mtt_adamw_step(2, ps, ms, vs, step, lr, b1, b2, eps, wd);
      CHECK(rc == 0, "adamw: %s", mtt_last_error());
      double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
      for (int i = 0; i < 4; i++) {
        double g = grads[step - 1][i];
        p[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        p[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + eps);
      }
      char name[64];
      snprintf(name, sizeof name, "adamw %s step %d", dtype == MTT_F32 ? "f32" : "f64", step);
      double tol = dtype == MTT_F32 ? 2e-6 : 1e-13;
      expect_values(name, pt, 4, p, tol);
      expect_values(name, mt, 4, m, tol);
      expect_values(name, vt, 4, v, tol);
      expect_values("adamw: a param without grad is unchanged", frozen, 4, p0, 0);
    }
    /* errors */
    mtt_tensor *short_v = mtt_zeros(1, (int64_t[]){3}, dtype, MTT_CPU);
    vs[1] = short_v;
    double before[4];
    mtt_to_f64(pt, before, 4);
    CHECK(mtt_adamw_step(2, ps, ms, vs, 4, lr, b1, b2, eps, wd) != 0, "adamw: a short exp_avg_sq must fail");
    expect_error("adamw state shape", mtt_last_error_code(), MTT_ERR_SHAPE, "exp_avg_sq 2 has shape [3]");
    expect_values("adamw: failed step leaves the param alone", pt, 4, before, 0);
    vs[1] = vt;
    CHECK(mtt_adamw_step(2, ps, ms, vs, 0, lr, b1, b2, eps, wd) != 0, "adamw: step 0 must fail");
    expect_error("adamw step", mtt_last_error_code(), MTT_ERR_ARG, "step");
    CHECK(mtt_adamw_step(2, ps, ms, vs, 1, lr, 1.0, b2, eps, wd) != 0, "adamw: beta1 = 1 must fail");
    expect_error("adamw beta1", mtt_last_error_code(), MTT_ERR_ARG, "beta1");
    mtt_tensor_release(short_v);
    mtt_tensor_release(pt);
    mtt_tensor_release(frozen);
    mtt_tensor_release(mt);
    mtt_tensor_release(vt);
  }
}

static void test_clip_grad_norm(void) {
  double z[] = {0, 0, 0};
  mtt_tensor *a = param(2, z, MTT_F32), *b = param(1, z, MTT_F32), *c = param(3, z, MTT_F32);
  mtt_tensor *ps[] = {a, b, c}; /* c has no gradient */
  double total = -1;
  double ga[] = {3, 4}, gb[] = {12};
  set_grad(a, 2, ga);
  set_grad(b, 1, gb);
  CHECK(mtt_clip_grad_norm(3, ps, 100, &total) == 0, "clip: %s", mtt_last_error());
  CHECK(fabs(total - 13) < 1e-12, "clip: total norm %g, expected 13", total);
  expect_values("clip below max_norm leaves grads", a->grad_tensor, 2, ga, 0);
  CHECK(mtt_clip_grad_norm(3, ps, 1.0, &total) == 0, "clip: %s", mtt_last_error());
  double coef = 1.0 / (13 + 1e-6);
  double wa[] = {3 * coef, 4 * coef}, wb[] = {12 * coef};
  expect_values("clip scales grad a", a->grad_tensor, 2, wa, 1e-6);
  expect_values("clip scales grad b", b->grad_tensor, 1, wb, 1e-6);
  CHECK(c->grad_tensor == NULL, "clip: a param without grad keeps none");
  CHECK(mtt_clip_grad_norm(0, NULL, 1.0, &total) == 0 && total == 0, "clip: an empty list has norm 0");
  mtt_tensor_release(a);
  mtt_tensor_release(b);
  mtt_tensor_release(c);

  /* large gradients: the same norm and the same updates on 1 and 2 threads */
  int saved_threads = mtt_get_num_threads();
  int64_t n = 200003;
  double norms[2], *after[2];
  for (int t = 0; t < 2; t++) {
    mtt_set_num_threads(t + 1);
    lcg_state = 777;
    mtt_tensor *p = random_tensor(1, &n, MTT_F32, 0), *g = random_tensor(1, &n, MTT_F32, 0);
    mtt_set_requires_grad(p, 1);
    mtt_set_grad(p, g);
    mtt_tensor *m = mtt_zeros(1, &n, MTT_F32, MTT_CPU), *v = mtt_zeros(1, &n, MTT_F32, MTT_CPU);
    mtt_tensor *pl[] = {p}, *ml[] = {m}, *vl[] = {v};
    CHECK(mtt_clip_grad_norm(1, pl, 1.0, &norms[t]) == 0, "clip large: %s", mtt_last_error());
    CHECK(mtt_adamw_step(1, pl, ml, vl, 1, 1e-3, 0.9, 0.999, 1e-8, 0.01) == 0, "adamw large: %s", mtt_last_error());
    after[t] = values_of(p);
    mtt_tensor_release(p);
    mtt_tensor_release(g);
    mtt_tensor_release(m);
    mtt_tensor_release(v);
  }
  CHECK(norms[0] == norms[1], "clip: norm differs between 1 and 2 threads (%.17g vs %.17g)", norms[0], norms[1]);
  CHECK(memcmp(after[0], after[1], sizeof(double) * (size_t)n) == 0, "adamw: result differs between 1 and 2 threads");
  free(after[0]);
  free(after[1]);
  mtt_set_num_threads(saved_threads);
}

int main(void) {
  lcg_state = 12345;
  test_cat();
  test_gather();
  test_index_select();
  test_scatter_determinism();
  test_topk();
  test_sgd();
  test_adamw();
  test_clip_grad_norm();
  return test_done("test_index_optim");
}
