/* test_nn_ops.c: matmul, softmax, log_softmax, layer_norm, embedding, cross_entropy, attention
 * and dropout: forwards on small hand-checkable inputs or against naive loops written here,
 * errors, gradients against central finite differences in f64, and results that must not
 * change with the thread count. Exits non-zero on any failure. */
#include "test_util.h"

/* ---- helpers ---- */

static double item(mtt_tensor *t) {
  double v = NAN;
  if (mtt_item(t, &v)) fprintf(stderr, "item: %s\n", mtt_last_error());
  return v;
}

static int same_shape(const mtt_tensor *t, int ndim, const int64_t *shape) {
  if (t->ndim != ndim) return 0;
  for (int d = 0; d < ndim; d++)
    if (t->dims[d] != shape[d]) return 0;
  return 1;
}

/* max |a - b| / (1 + |b|) over n values */
static double max_rel(const double *a, const double *b, int64_t n) {
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = fabs(a[i] - b[i]) / (1 + fabs(b[i]));
    if (!(e <= worst)) worst = e; /* NaN counts as worst */
  }
  return worst;
}

static void check_values(const char *what, mtt_tensor *t, const double *expect, double tol) {
  if (!t) {
    CHECK(0, "%s: NULL (%s)", what, mtt_last_error());
    return;
  }
  double *v = values_of(t);
  double e = max_rel(v, expect, t->nelem);
  CHECK(e <= tol, "%s: max relative error %g > %g", what, e, tol);
  free(v);
}

static void check_error(const char *what, mtt_tensor *t, const char *needle) {
  CHECK(t == NULL, "%s: expected an error", what);
  if (t) {
    mtt_tensor_release(t);
    return;
  }
  CHECK(strstr(mtt_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", what, mtt_last_error(), needle);
  mtt_clear_error();
}

/* ---- gradient check ---- */

/* An op under test: builds its output from the inputs (ctx carries op parameters). */
typedef mtt_tensor *(*op_fn)(mtt_tensor **in, const void *ctx);

/* sum(y * w) with a fixed random w of y's shape: every output element weighs differently. */
static mtt_tensor *weighted_sum(mtt_tensor *y) {
  mtt_generator g = {.seed = 99, .offset = 0};
  mtt_tensor *w = mtt_randn(y->ndim, y->dims, y->dtype_id, MTT_CPU, &g);
  mtt_tensor *p = w ? mtt_mul(y, w) : NULL;
  mtt_tensor *s = p ? mtt_sum_all(p) : NULL;
  mtt_tensor_release(w);
  mtt_tensor_release(p);
  return s;
}

static double eval(op_fn f, mtt_tensor **in, const void *ctx) {
  int prev = mtt_set_grad_enabled(0);
  mtt_tensor *y = f(in, ctx), *s = y ? weighted_sum(y) : NULL;
  double v = s ? item(s) : NAN;
  mtt_tensor_release(y);
  mtt_tensor_release(s);
  mtt_set_grad_enabled(prev);
  return v;
}

/* Compares the gradients autograd gives for every input that requires grad (f64, contiguous)
 * with central differences. */
static void gradcheck(const char *name, op_fn f, int n, mtt_tensor **in, const void *ctx) {
  for (int i = 0; i < n; i++)
    if (in[i]) mtt_set_grad(in[i], NULL);
  mtt_tensor *y = f(in, ctx);
  mtt_tensor *s = y ? weighted_sum(y) : NULL;
  if (!s || mtt_backward(s, NULL)) {
    CHECK(0, "%s: forward/backward failed: %s", name, mtt_last_error());
    mtt_tensor_release(y);
    mtt_tensor_release(s);
    return;
  }
  mtt_tensor_release(y);
  mtt_tensor_release(s);
  const double h = 1e-6;
  for (int i = 0; i < n; i++) {
    if (!in[i] || !in[i]->needs_grad) continue;
    mtt_tensor *g = mtt_grad(in[i]);
    if (!g) {
      CHECK(0, "%s: input %d got no gradient", name, i + 1);
      continue;
    }
    CHECK(same_shape(g, in[i]->ndim, in[i]->dims), "%s: gradient of input %d has the wrong shape", name, i + 1);
    double *ga = values_of(g), worst = 0;
    double *x = mtt_data_ptr(in[i]);
    for (int64_t e = 0; e < in[i]->nelem; e++) {
      double keep = x[e];
      x[e] = keep + h;
      double fp = eval(f, in, ctx);
      x[e] = keep - h;
      double fm = eval(f, in, ctx);
      x[e] = keep;
      double num = (fp - fm) / (2 * h), err = fabs(num - ga[e]) / (1 + fabs(num));
      if (!(err <= worst)) worst = err;
    }
    CHECK(worst < 1e-6, "%s: gradient of input %d is off by %g", name, i + 1, worst);
    free(ga);
    mtt_tensor_release(g);
  }
}

/* ---- matmul ---- */

/* Naive reference: c[b, i, j] = sum_k a[.., i, k] b[.., k, j] with batch broadcasting, reading
 * through mtt_get so that any layout works. */
static double *naive_matmul(mtt_tensor *a, mtt_tensor *b, int nbat, const int64_t *bshape) {
  int na = a->ndim, nb = b->ndim;
  int64_t m = a->dims[na - 2], k = a->dims[na - 1], n = b->dims[nb - 1], batch = 1;
  for (int d = 0; d < nbat; d++) batch *= bshape[d];
  double *c = calloc((size_t)(batch * m * n), sizeof(double));
  for (int64_t bi = 0; bi < batch; bi++) {
    int64_t ia[8] = {0}, ib[8] = {0}, rest = bi;
    for (int d = nbat - 1; d >= 0; d--) {
      int64_t x = rest % bshape[d];
      rest /= bshape[d];
      int da = d - (nbat - (na - 2)), db = d - (nbat - (nb - 2));
      if (da >= 0) ia[da] = a->dims[da] == 1 ? 0 : x;
      if (db >= 0) ib[db] = b->dims[db] == 1 ? 0 : x;
    }
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t l = 0; l < k; l++) {
          double va, vb;
          ia[na - 2] = i;
          ia[na - 1] = l;
          ib[nb - 2] = l;
          ib[nb - 1] = j;
          mtt_get(a, ia, &va);
          mtt_get(b, ib, &vb);
          s += va * vb;
        }
        c[(bi * m + i) * n + j] = s;
      }
  }
  return c;
}

static mtt_tensor *op_matmul(mtt_tensor **in, const void *ctx) { return mtt_matmul(in[0], in[1]); }
/* matmul of transposed views: a^T @ b^T from a [k, m] and b [n, k] */
static mtt_tensor *op_matmul_tt(mtt_tensor **in, const void *ctx) {
  mtt_tensor *at = mtt_transpose(in[0], in[0]->ndim - 2, in[0]->ndim - 1);
  mtt_tensor *bt = mtt_transpose(in[1], in[1]->ndim - 2, in[1]->ndim - 1);
  mtt_tensor *y = mtt_matmul(at, bt);
  mtt_tensor_release(at);
  mtt_tensor_release(bt);
  return y;
}

static void test_matmul_case(const char *name, int na, const int64_t *sa, int nb, const int64_t *sb, int nbat,
                             const int64_t *bshape, int dtype) {
  mtt_tensor *a = random_tensor(na, sa, dtype, dtype == MTT_F64), *b = random_tensor(nb, sb, dtype, dtype == MTT_F64);
  mtt_tensor *c = mtt_matmul(a, b);
  if (!c) {
    CHECK(0, "%s: %s", name, mtt_last_error());
  } else {
    double *ref = naive_matmul(a, b, nbat, bshape);
    check_values(name, c, ref, dtype == MTT_F32 ? 1e-5 : 1e-12);
    int64_t shape[8];
    for (int d = 0; d < nbat; d++) shape[d] = bshape[d];
    shape[nbat] = sa[na - 2];
    shape[nbat + 1] = sb[nb - 1];
    CHECK(same_shape(c, nbat + 2, shape), "%s: result shape", name);
    free(ref);
  }
  if (dtype == MTT_F64) {
    mtt_tensor *in[2] = {a, b};
    gradcheck(name, op_matmul, 2, in, NULL);
  }
  mtt_tensor_release(a);
  mtt_tensor_release(b);
  mtt_tensor_release(c);
}

static void test_matmul(void) {
  int64_t p_b_shape[2] = {4, 5};
  /* hand-checked 2x3 @ 3x2 */
  int64_t s23[2] = {2, 3}, s32[2] = {3, 2};
  double av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {7, 8, 9, 10, 11, 12};
  mtt_tensor *a = tensor(2, s23, av, MTT_F32), *b = tensor(2, s32, bv, MTT_F32);
  mtt_tensor *c = mtt_matmul(a, b);
  double cv[4] = {58, 64, 139, 154};
  check_values("matmul 2x3 @ 3x2", c, cv, 0);
  mtt_tensor_release(c);
  /* b^T @ a^T = (a b)^T, through transposed views (no copies) */
  mtt_tensor *at = mtt_transpose(a, 0, 1), *bt = mtt_transpose(b, 0, 1);
  c = mtt_matmul(bt, at);
  double ctv[4] = {58, 139, 64, 154};
  check_values("matmul transposed views", c, ctv, 0);
  mtt_tensor_release(c);
  mtt_tensor_release(at);
  mtt_tensor_release(bt);
  /* errors */
  int64_t s43[2] = {4, 3}, s52[2] = {5, 2};
  mtt_tensor *e1 = mtt_zeros(2, s43, MTT_F32, MTT_CPU), *e2 = mtt_zeros(2, s52, MTT_F32, MTT_CPU);
  check_error("matmul mismatch", mtt_matmul(e1, e2), "matmul: shapes [4,3] and [5,2] do not match (3 != 5)");
  mtt_tensor *e3 = mtt_zeros(2, s32, MTT_F64, MTT_CPU);
  check_error("matmul dtypes", mtt_matmul(a, e3), "matmul");
  int64_t s234[3] = {2, 3, 4}, s345[3] = {3, 4, 5};
  mtt_tensor *e4 = mtt_zeros(3, s234, MTT_F32, MTT_CPU), *e5 = mtt_zeros(3, s345, MTT_F32, MTT_CPU);
  check_error("matmul batch broadcast", mtt_matmul(e4, e5), "cannot be broadcast");
  mtt_tensor *scalar = mtt_zeros(0, NULL, MTT_F32, MTT_CPU);
  check_error("matmul scalar", mtt_matmul(scalar, a), "at least 1 dim");
  mtt_tensor *ints = mtt_zeros(2, s23, MTT_I32, MTT_CPU);
  check_error("matmul i32", mtt_matmul(ints, ints), "matmul");
  mtt_tensor *tensors[] = {a, b, e1, e2, e3, e4, e5, scalar, ints};
  for (int i = 0; i < 9; i++) mtt_tensor_release(tensors[i]);

  /* shapes: plain, Linear (ND @ 2D), batched, broadcast batch dims */
  for (int dt = 0; dt < 2; dt++) {
    int dtype = dt ? MTT_F64 : MTT_F32;
    int64_t p_a[2] = {3, 4}, p_b[2] = {4, 5};
    test_matmul_case("matmul 2d", 2, p_a, 2, p_b, 0, NULL, dtype);
    int64_t l_a[3] = {2, 3, 4}, l_b[2] = {4, 5}, l_bs[1] = {2};
    test_matmul_case("matmul ND@2D", 3, l_a, 2, l_b, 1, l_bs, dtype);
    int64_t b_a[3] = {2, 3, 4}, b_b[3] = {2, 4, 5};
    test_matmul_case("matmul batched", 3, b_a, 3, b_b, 1, l_bs, dtype);
    int64_t c_a[4] = {2, 1, 3, 4}, c_b[3] = {3, 4, 2}, c_bs[2] = {2, 3};
    test_matmul_case("matmul broadcast batch", 4, c_a, 3, c_b, 2, c_bs, dtype);
    int64_t d_a[2] = {3, 4}, d_b[3] = {2, 4, 5};
    test_matmul_case("matmul 2D@ND", 2, d_a, 3, d_b, 1, l_bs, dtype);
    int64_t e_a[4] = {2, 2, 3, 4}, e_b[4] = {1, 2, 4, 5}, e_bs[2] = {2, 2};
    test_matmul_case("matmul batch 1 broadcast", 4, e_a, 4, e_b, 2, e_bs, dtype);
    int64_t z_a[2] = {3, 0}, z_b[2] = {0, 2};
    test_matmul_case("matmul k = 0", 2, z_a, 2, z_b, 0, NULL, dtype);
  }
  /* non-contiguous views: a^T @ b^T (BLAS transposes) and a permuted batch (copied rows) */
  int64_t ta[3] = {2, 4, 3}, tb[3] = {2, 5, 4};
  mtt_tensor *tin[2] = {random_tensor(3, ta, MTT_F64, 1), random_tensor(3, tb, MTT_F64, 1)};
  gradcheck("matmul transposed batched", op_matmul_tt, 2, tin, NULL);
  mtt_tensor_release(tin[0]);
  mtt_tensor_release(tin[1]);
  int64_t pa[3] = {3, 2, 4}, pb[2] = {4, 3};
  mtt_tensor *p0 = random_tensor(3, pa, MTT_F64, 0), *pbt = random_tensor(2, pb, MTT_F64, 0);
  int perm[3] = {1, 0, 2};
  mtt_tensor *pp = mtt_permute(p0, perm); /* [2,3,4], rows do not merge */
  mtt_tensor *pc = mtt_matmul(pp, pbt);
  int64_t pbs[1] = {2};
  double *pref = naive_matmul(pp, pbt, 1, pbs);
  check_values("matmul permuted ND@2D", pc, pref, 1e-12);
  free(pref);
  mtt_tensor *ppin[2] = {pp, pbt};
  mtt_set_requires_grad(pbt, 1);
  gradcheck("matmul permuted ND@2D grad", op_matmul, 2, ppin, NULL);
  mtt_tensor *rel[] = {p0, pbt, pp, pc};
  for (int i = 0; i < 4; i++) mtt_tensor_release(rel[i]);

  /* a stride-0 (expanded) operand and an inner layout BLAS cannot read (copied by the kernel) */
  int64_t xa[3] = {2, 3, 4}, xb1[3] = {1, 4, 5}, xbe[3] = {2, 4, 5}, xbs[1] = {2};
  mtt_tensor *ea = random_tensor(3, xa, MTT_F64, 0), *eb = random_tensor(3, xb1, MTT_F64, 0);
  mtt_tensor *ebx = mtt_expand(eb, 3, xbe);
  mtt_tensor *ec = mtt_matmul(ea, ebx);
  double *eref = naive_matmul(ea, ebx, 1, xbs);
  check_values("matmul expanded operand", ec, eref, 1e-12);
  free(eref);
  int64_t wide[2] = {3, 8};
  mtt_tensor *w8 = random_tensor(2, wide, MTT_F64, 0), *ws2 = mtt_slice(w8, 1, 0, 8, 2); /* [3,4], col stride 2 */
  mtt_tensor *m45 = random_tensor(2, p_b_shape, MTT_F64, 0);
  mtt_tensor *sc = mtt_matmul(ws2, m45);
  double *sref = naive_matmul(ws2, m45, 0, NULL);
  check_values("matmul strided columns", sc, sref, 1e-12);
  free(sref);
  mtt_tensor *rel3[] = {ea, eb, ebx, ec, w8, ws2, m45, sc};
  for (int i = 0; i < 8; i++) mtt_tensor_release(rel3[i]);

  /* big enough to be cut into tiles in both dims: the tiles must add up to the product */
  int64_t ba[2] = {300, 64}, bb[2] = {64, 600}; /* cut into 2 x 2 tiles */
  mtt_tensor *big_a = random_tensor(2, ba, MTT_F32, 0), *big_b = random_tensor(2, bb, MTT_F32, 0);
  mtt_tensor *big_c = mtt_matmul(big_a, big_b);
  double *va = values_of(big_a), *vb = values_of(big_b), *vref = malloc(sizeof(double) * 300 * 600);
  for (int i = 0; i < 300; i++)
    for (int j = 0; j < 600; j++) {
      double acc = 0;
      for (int l = 0; l < 64; l++) acc += va[i * 64 + l] * vb[l * 600 + j];
      vref[i * 600 + j] = acc;
    }
  check_values("matmul tiled", big_c, vref, 1e-5);
  free(va);
  free(vb);
  free(vref);
  mtt_tensor_release(big_a);
  mtt_tensor_release(big_b);
  mtt_tensor_release(big_c);

  /* 1-D operands as torch.matmul */
  int64_t s3[1] = {3}, s2[1] = {2};
  double v3[3] = {1, 2, 3}, v2[2] = {1, -1};
  mtt_tensor *x3 = tensor(1, s3, v3, MTT_F64), *x2 = tensor(1, s2, v2, MTT_F64);
  mtt_tensor *m23 = tensor(2, s23, av, MTT_F64), *m32 = tensor(2, s32, bv, MTT_F64);
  mtt_tensor *dot = mtt_matmul(x3, x3);
  CHECK(dot && dot->ndim == 0 && item(dot) == 14, "matmul vector . vector");
  mtt_tensor *mv = mtt_matmul(m23, x3);
  double mvv[2] = {14, 32};
  check_values("matmul matrix @ vector", mv, mvv, 0);
  CHECK(mv && same_shape(mv, 1, s2), "matmul matrix @ vector shape");
  mtt_tensor *vm = mtt_matmul(x2, m23);
  double vmv[3] = {-3, -3, -3};
  check_values("matmul vector @ matrix", vm, vmv, 0);
  check_error("matmul vector mismatch", mtt_matmul(x2, x3), "matmul: shapes [2] and [3] do not match (2 != 3)");
  mtt_set_requires_grad(x3, 1);
  mtt_set_requires_grad(m23, 1);
  mtt_tensor *vin[2] = {m23, x3};
  gradcheck("matmul matrix @ vector grad", op_matmul, 2, vin, NULL);
  mtt_tensor *vin2[2] = {x3, m32};
  gradcheck("matmul vector @ matrix grad", op_matmul, 2, vin2, NULL);
  mtt_tensor *rel2[] = {x3, x2, m23, m32, dot, mv, vm};
  for (int i = 0; i < 7; i++) mtt_tensor_release(rel2[i]);
}

/* ---- softmax, log_softmax ---- */

static mtt_tensor *op_softmax(mtt_tensor **in, const void *ctx) { return mtt_softmax(in[0], in[0]->ndim - 1); }
static mtt_tensor *op_log_softmax(mtt_tensor **in, const void *ctx) {
  return mtt_log_softmax(in[0], in[0]->ndim - 1);
}
/* softmax of a transposed (non-contiguous) view */
static mtt_tensor *op_softmax_t(mtt_tensor **in, const void *ctx) {
  mtt_tensor *t = mtt_transpose(in[0], 0, 1), *y = mtt_softmax(t, 1);
  mtt_tensor_release(t);
  return y;
}

static void test_softmax(void) {
  int64_t s[2] = {2, 3};
  double v[6] = {1, 2, 3, 1000, 1000, 1000};
  for (int dt = 0; dt < 2; dt++) {
    mtt_tensor *x = tensor(2, s, v, dt ? MTT_F64 : MTT_F32);
    double e1 = exp(1), e2 = exp(2), e3 = exp(3), z = e1 + e2 + e3;
    double ref[6] = {e1 / z, e2 / z, e3 / z, 1.0 / 3, 1.0 / 3, 1.0 / 3};
    double tol = dt ? 1e-14 : 1e-6;
    mtt_tensor *y = mtt_softmax(x, 1);
    check_values("softmax", y, ref, tol);
    mtt_tensor *l = mtt_log_softmax(x, -1);
    double lref[6];
    for (int i = 0; i < 6; i++) lref[i] = log(ref[i]);
    check_values("log_softmax", l, lref, tol);
    check_error("softmax dim", mtt_softmax(x, 0), "only the last dim");
    check_error("softmax dim range", mtt_softmax(x, 2), "out of range");
    mtt_tensor_release(x);
    mtt_tensor_release(y);
    mtt_tensor_release(l);
  }
  int64_t g[3] = {2, 3, 5};
  mtt_tensor *x = random_tensor(3, g, MTT_F64, 1);
  gradcheck("softmax grad", op_softmax, 1, &x, NULL);
  gradcheck("log_softmax grad", op_log_softmax, 1, &x, NULL);
  mtt_tensor_release(x);
  int64_t g2[2] = {4, 3};
  x = random_tensor(2, g2, MTT_F64, 1);
  gradcheck("softmax of a transposed view", op_softmax_t, 1, &x, NULL);
  mtt_tensor_release(x);
}

/* ---- layer_norm ---- */

static mtt_tensor *op_layer_norm(mtt_tensor **in, const void *ctx) {
  return mtt_layer_norm(in[0], in[1], in[2], *(const double *)ctx);
}

static void test_layer_norm(void) {
  int64_t s[2] = {2, 4}, c4[1] = {4};
  double v[8] = {1, 2, 3, 4, -1, -1, -1, -1}, wv[4] = {1, 2, 3, 4}, bv[4] = {0.5, 0, 0, -0.5};
  for (int dt = 0; dt < 2; dt++) {
    int dtype = dt ? MTT_F64 : MTT_F32;
    mtt_tensor *x = tensor(2, s, v, dtype), *w = tensor(1, c4, wv, dtype), *b = tensor(1, c4, bv, dtype);
    double r = 1 / sqrt(1.25 + 1e-5), rz = 1 / sqrt(1e-5);
    double ref[8] = {-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r, 0, 0, 0, 0};
    mtt_tensor *y = mtt_layer_norm(x, NULL, NULL, 1e-5);
    check_values("layer_norm", y, ref, dt ? 1e-12 : 1e-6);
    (void)rz;
    double refwb[8];
    for (int i = 0; i < 8; i++) refwb[i] = ref[i] * wv[i % 4] + bv[i % 4];
    mtt_tensor *y2 = mtt_layer_norm(x, w, b, 1e-5);
    check_values("layer_norm weight bias", y2, refwb, dt ? 1e-12 : 1e-6);
    int64_t c3[1] = {3};
    mtt_tensor *w3 = mtt_zeros(1, c3, dtype, MTT_CPU);
    check_error("layer_norm weight shape", mtt_layer_norm(x, w3, NULL, 1e-5), "layer_norm: weight [3]");
    check_error("layer_norm eps", mtt_layer_norm(x, NULL, NULL, -1), "eps");
    mtt_tensor *rel[] = {x, w, b, y, y2, w3};
    for (int i = 0; i < 6; i++) mtt_tensor_release(rel[i]);
  }
  int64_t g[3] = {2, 3, 5}, c5[1] = {5};
  double eps = 1e-5;
  mtt_tensor *in[3] = {random_tensor(3, g, MTT_F64, 1), random_tensor(1, c5, MTT_F64, 1),
                       random_tensor(1, c5, MTT_F64, 1)};
  gradcheck("layer_norm grad", op_layer_norm, 3, in, &eps);
  mtt_tensor *in2[3] = {in[0], NULL, NULL};
  gradcheck("layer_norm grad (no weight, no bias)", op_layer_norm, 3, in2, &eps);
  mtt_tensor *in3[3] = {in[0], in[1], NULL};
  gradcheck("layer_norm grad (weight only)", op_layer_norm, 3, in3, &eps);
  mtt_set_requires_grad(in[0], 0);
  gradcheck("layer_norm grad (params only)", op_layer_norm, 3, in, &eps);
  for (int i = 0; i < 3; i++) mtt_tensor_release(in[i]);
}

/* ---- embedding ---- */

static mtt_tensor *op_embedding(mtt_tensor **in, const void *ctx) {
  return mtt_embedding(in[0], (mtt_tensor *)ctx);
}

static void test_embedding(void) {
  int64_t ws[2] = {4, 3}, is[2] = {2, 2};
  double wv[12] = {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32}, iv[4] = {3, 0, 3, 1};
  mtt_tensor *w = tensor(2, ws, wv, MTT_F64), *idx = tensor(2, is, iv, MTT_I32);
  mtt_tensor *y = mtt_embedding(w, idx);
  double ref[12] = {30, 31, 32, 0, 1, 2, 30, 31, 32, 10, 11, 12};
  check_values("embedding", y, ref, 0);
  int64_t ys[3] = {2, 2, 3};
  CHECK(y && same_shape(y, 3, ys), "embedding shape");
  double bad[4] = {0, 1, 4, 2};
  mtt_tensor *ib = tensor(2, is, bad, MTT_I32);
  check_error("embedding range", mtt_embedding(w, ib), "embedding: index 4");
  mtt_tensor *fi = tensor(2, is, iv, MTT_F32);
  check_error("embedding index dtype", mtt_embedding(w, fi), "i32");
  mtt_set_requires_grad(w, 1);
  gradcheck("embedding grad (repeated indices)", op_embedding, 1, &w, idx);
  /* the accumulated rows, exactly: row 3 twice, rows 0 and 1 once, row 2 never */
  mtt_set_grad(w, NULL);
  mtt_tensor *y2 = mtt_embedding(w, idx), *s = mtt_sum_all(y2);
  mtt_backward(s, NULL);
  mtt_tensor *g = mtt_grad(w);
  double gref[12] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 2, 2, 2};
  check_values("embedding grad counts", g, gref, 0);
  mtt_tensor *rel[] = {w, idx, y, ib, fi, y2, s, g};
  for (int i = 0; i < 8; i++) mtt_tensor_release(rel[i]);
}

/* ---- cross_entropy ---- */

typedef struct ce_ctx {
  mtt_tensor *targets, *mask;
  int64_t ignore;
} ce_ctx;

static mtt_tensor *op_cross_entropy(mtt_tensor **in, const void *ctx) {
  const ce_ctx *c = ctx;
  return mtt_cross_entropy(in[0], c->targets, c->mask, c->ignore);
}

static void test_cross_entropy(void) {
  int64_t ls[2] = {3, 3}, ts[1] = {3};
  double lv[9] = {1, 2, 3, 0, 0, 0, 5, -5, 0}, tv[3] = {2, 0, 1};
  double lse0 = log(exp(1) + exp(2) + exp(3)), lse1 = log(3), lse2 = log(exp(5) + exp(-5) + 1);
  double n0 = lse0 - 3, n1 = lse1, n2 = lse2 + 5;
  for (int dt = 0; dt < 2; dt++) {
    int dtype = dt ? MTT_F64 : MTT_F32;
    double tol = dt ? 1e-13 : 1e-6;
    mtt_tensor *x = tensor(2, ls, lv, dtype), *t = tensor(1, ts, tv, MTT_I32);
    mtt_tensor *l = mtt_cross_entropy(x, t, NULL, -100);
    double ref = (n0 + n1 + n2) / 3;
    check_values("cross_entropy", l, &ref, tol);
    CHECK(l && l->ndim == 0, "cross_entropy gives a scalar");
    mtt_tensor_release(l);
    /* ignore_index */
    double tvi[3] = {2, -100, 1};
    mtt_tensor *ti = tensor(1, ts, tvi, MTT_I32);
    l = mtt_cross_entropy(x, ti, NULL, -100);
    ref = (n0 + n2) / 2;
    check_values("cross_entropy ignore_index", l, &ref, tol);
    mtt_tensor_release(l);
    /* mask: a weight, counted where != 0 */
    double mv[3] = {1, 0, 0.5};
    mtt_tensor *m = tensor(1, ts, mv, dtype);
    l = mtt_cross_entropy(x, t, m, -100);
    ref = (n0 + 0.5 * n2) / 2;
    check_values("cross_entropy mask", l, &ref, tol);
    mtt_tensor_release(l);
    /* nothing counts: 0, and a zero gradient */
    double none[3] = {0, 0, 0};
    mtt_tensor *m0 = tensor(1, ts, none, dtype);
    mtt_set_requires_grad(x, 1);
    l = mtt_cross_entropy(x, t, m0, -100);
    ref = 0;
    check_values("cross_entropy nothing counted", l, &ref, 0);
    if (l && !mtt_backward(l, NULL)) {
      mtt_tensor *g = mtt_grad(x);
      double zeros[9] = {0};
      check_values("cross_entropy nothing counted grad", g, zeros, 0);
      mtt_tensor_release(g);
    } else {
      CHECK(0, "cross_entropy nothing counted backward: %s", mtt_last_error());
    }
    mtt_tensor_release(l);
    /* errors */
    double tbad[3] = {2, 3, 0};
    mtt_tensor *tb = tensor(1, ts, tbad, MTT_I32);
    check_error("cross_entropy target range", mtt_cross_entropy(x, tb, NULL, -100), "cross_entropy: target 3");
    int64_t ts2[1] = {2};
    mtt_tensor *t2 = mtt_zeros(1, ts2, MTT_I32, MTT_CPU);
    check_error("cross_entropy shapes", mtt_cross_entropy(x, t2, NULL, -100), "do not match");
    mtt_tensor *tf = tensor(1, ts, tv, MTT_F32);
    check_error("cross_entropy target dtype", mtt_cross_entropy(x, tf, NULL, -100), "i32");
    mtt_tensor *rel[] = {x, t, ti, m, m0, tb, t2, tf};
    for (int i = 0; i < 8; i++) mtt_tensor_release(rel[i]);
  }
  /* gradients: [2,3,5] logits, a weight mask and an ignored position */
  int64_t gs[3] = {2, 3, 5}, gts[2] = {2, 3};
  double gt[6] = {4, 0, -1, 2, 2, 1}, gm[6] = {1, 0.5, 1, 0, 2, 1};
  mtt_tensor *x = random_tensor(3, gs, MTT_F64, 1);
  ce_ctx c = {tensor(2, gts, gt, MTT_I32), tensor(2, gts, gm, MTT_F64), -1};
  gradcheck("cross_entropy grad (mask, ignore)", op_cross_entropy, 1, &x, &c);
  ce_ctx c2 = {c.targets, NULL, -1};
  gradcheck("cross_entropy grad (no mask)", op_cross_entropy, 1, &x, &c2);
  mtt_tensor_release(x);
  mtt_tensor_release(c.targets);
  mtt_tensor_release(c.mask);
}

/* ---- attention ---- */

/* Naive reference in double through mtt_get: q [N?, Tq, D] etc. flattened over leading dims. */
static double *naive_attention(mtt_tensor *q, mtt_tensor *k, mtt_tensor *v, int causal, double scale) {
  int nd = q->ndim;
  int64_t tq = q->dims[nd - 2], tk = k->dims[nd - 2], d = q->dims[nd - 1], dv = v->dims[nd - 1], n = 1;
  for (int i = 0; i < nd - 2; i++) n *= q->dims[i];
  double *out = calloc((size_t)(n * tq * dv), sizeof(double)), *s = malloc(sizeof(double) * (size_t)tk);
  for (int64_t b = 0; b < n; b++) {
    int64_t idx[8], rest = b;
    for (int i = nd - 3; i >= 0; i--) {
      idx[i] = rest % q->dims[i];
      rest /= q->dims[i];
    }
    for (int64_t i = 0; i < tq; i++) {
      double mx = -INFINITY, z = 0;
      for (int64_t j = 0; j < tk; j++) {
        double dot = 0;
        for (int64_t l = 0; l < d; l++) {
          double a, c;
          idx[nd - 2] = i;
          idx[nd - 1] = l;
          mtt_get(q, idx, &a);
          idx[nd - 2] = j;
          mtt_get(k, idx, &c);
          dot += a * c;
        }
        s[j] = (causal && j > i + tk - tq) ? -INFINITY : scale * dot;
        if (s[j] > mx) mx = s[j];
      }
      for (int64_t j = 0; j < tk; j++) z += (s[j] = exp(s[j] - mx));
      for (int64_t l = 0; l < dv; l++) {
        double acc = 0;
        for (int64_t j = 0; j < tk; j++) {
          double val;
          idx[nd - 2] = j;
          idx[nd - 1] = l;
          mtt_get(v, idx, &val);
          acc += s[j] / z * val;
        }
        out[(b * tq + i) * dv + l] = acc;
      }
    }
  }
  free(s);
  return out;
}

typedef struct att_ctx {
  int causal;
  double scale;
  int from_bthd; /* inputs are [B, T, H, D]; attend over their [B, H, T, D] transposes */
} att_ctx;

static mtt_tensor *op_attention(mtt_tensor **in, const void *ctx) {
  const att_ctx *c = ctx;
  if (!c->from_bthd) return mtt_attention(in[0], in[1], in[2], c->causal, c->scale);
  mtt_tensor *t[3];
  for (int i = 0; i < 3; i++) t[i] = mtt_transpose(in[i], 1, 2);
  mtt_tensor *y = mtt_attention(t[0], t[1], t[2], c->causal, c->scale);
  for (int i = 0; i < 3; i++) mtt_tensor_release(t[i]);
  return y;
}

static void attention_case(const char *name, int nd, const int64_t *qs, const int64_t *ks, const int64_t *vs,
                           att_ctx c, int dtype) {
  mtt_tensor *in[3] = {random_tensor(nd, qs, dtype, dtype == MTT_F64), random_tensor(nd, ks, dtype, dtype == MTT_F64),
                       random_tensor(nd, vs, dtype, dtype == MTT_F64)};
  mtt_tensor *y = op_attention(in, &c);
  if (!y) {
    CHECK(0, "%s: %s", name, mtt_last_error());
  } else {
    mtt_tensor *t[3];
    for (int i = 0; i < 3; i++)
      t[i] = c.from_bthd ? mtt_transpose(in[i], 1, 2) : in[i];
    int64_t dq = t[0]->dims[nd - 1];
    double *ref = naive_attention(t[0], t[1], t[2], c.causal, c.scale > 0 ? c.scale : 1 / sqrt((double)dq));
    check_values(name, y, ref, dtype == MTT_F32 ? 1e-5 : 1e-12);
    free(ref);
    if (c.from_bthd)
      for (int i = 0; i < 3; i++) mtt_tensor_release(t[i]);
  }
  mtt_tensor_release(y);
  if (dtype == MTT_F64) gradcheck(name, op_attention, 3, in, &c);
  for (int i = 0; i < 3; i++) mtt_tensor_release(in[i]);
}

static void test_attention(void) {
  /* hand-checked: one query, two keys with equal scores average the values */
  int64_t qs[2] = {1, 2}, ks[2] = {2, 2};
  double qv[2] = {1, 0}, kv[4] = {1, 0, 1, 0}, vv[4] = {1, 2, 3, 4};
  mtt_tensor *q = tensor(2, qs, qv, MTT_F32), *k = tensor(2, ks, kv, MTT_F32), *v = tensor(2, ks, vv, MTT_F32);
  mtt_tensor *y = mtt_attention(q, k, v, 0, 0);
  double ref[2] = {2, 3};
  check_values("attention average", y, ref, 1e-7);
  mtt_tensor_release(y);
  y = mtt_attention(k, k, v, 1, 0); /* causal: the first query sees only the first key */
  double refc[4] = {1, 2, 2, 3};
  check_values("attention causal", y, refc, 1e-7);
  mtt_tensor_release(y);
  check_error("attention causal lengths", mtt_attention(k, q, q, 1, 0), "causal");
  int64_t s3[2] = {2, 3};
  mtt_tensor *k3 = mtt_zeros(2, s3, MTT_F32, MTT_CPU);
  check_error("attention dims", mtt_attention(q, k3, k3, 0, 0), "last dim");
  check_error("attention lengths", mtt_attention(q, k, q, 0, 0), "length");
  mtt_tensor *rel[] = {q, k, v, k3};
  for (int i = 0; i < 4; i++) mtt_tensor_release(rel[i]);

  for (int dt = 0; dt < 2; dt++) {
    int dtype = dt ? MTT_F64 : MTT_F32;
    int64_t a[4] = {2, 2, 5, 3};
    attention_case("attention [B,H,T,D]", 4, a, a, a, (att_ctx){0, 0, 0}, dtype);
    attention_case("attention [B,H,T,D] causal", 4, a, a, a, (att_ctx){1, 0, 0}, dtype);
    int64_t bt[4] = {2, 5, 2, 3};
    attention_case("attention strided heads causal", 4, bt, bt, bt, (att_ctx){1, 0.7, 1}, dtype);
    int64_t q3[3] = {2, 3, 4}, k3s[3] = {2, 6, 4}, v3[3] = {2, 6, 2};
    attention_case("attention Tq != Tk, Dv != D", 3, q3, k3s, v3, (att_ctx){0, 0, 0}, dtype);
    attention_case("attention Tq < Tk causal", 3, q3, k3s, v3, (att_ctx){1, 0, 0}, dtype);
  }
  /* a layout BLAS cannot read (every other column of a wider tensor) is copied first */
  int64_t wq[3] = {2, 5, 6}, nq[3] = {2, 5, 3};
  mtt_tensor *wide = random_tensor(3, wq, MTT_F32, 0), *qs2 = mtt_slice(wide, 2, 0, 6, 2);
  mtt_tensor *kk = random_tensor(3, nq, MTT_F32, 0);
  mtt_tensor *ya = mtt_attention(qs2, kk, qs2, 1, 0);
  double *aref = naive_attention(qs2, kk, qs2, 1, 1 / sqrt(3.0));
  check_values("attention strided columns", ya, aref, 1e-5);
  free(aref);
  mtt_tensor *rel4[] = {wide, qs2, kk, ya};
  for (int i = 0; i < 4; i++) mtt_tensor_release(rel4[i]);
  /* more rows than one block (64), to cover the causal block skipping */
  int64_t big[3] = {1, 70, 2};
  attention_case("attention two blocks causal", 3, big, big, big, (att_ctx){1, 0, 0}, MTT_F32);
  attention_case("attention two blocks", 3, big, big, big, (att_ctx){0, 0, 0}, MTT_F32);
  int64_t bigq[3] = {1, 67, 2}, bigk[3] = {1, 70, 2};
  attention_case("attention two blocks Tq < Tk causal", 3, bigq, bigk, bigk, (att_ctx){1, 0, 0}, MTT_F64);
}

/* ---- dropout ---- */

static mtt_tensor *op_dropout(mtt_tensor **in, const void *ctx) {
  mtt_generator g = {.seed = 7, .offset = 3}; /* the same mask on every call */
  return mtt_dropout(in[0], *(const double *)ctx, &g);
}

static void test_dropout(void) {
  int64_t s[1] = {10000};
  mtt_tensor *x = mtt_full(1, s, 2.0, MTT_F32, MTT_CPU);
  mtt_generator g = {.seed = 1, .offset = 0};
  mtt_tensor *y = must(mtt_dropout(x, 0.25, &g), "dropout");
  CHECK(g.offset == 10000, "dropout advances the generator by nelem (got %llu)", (unsigned long long)g.offset);
  double *v = values_of(y);
  int64_t kept = 0, bad = 0;
  for (int64_t i = 0; i < 10000; i++) {
    if (v[i] != 0) kept++;
    if (v[i] != 0 && fabs(v[i] - 2.0 / 0.75) > 1e-6) bad++;
  }
  CHECK(bad == 0, "dropout scales kept values by 1/(1-p)");
  CHECK(kept > 7300 && kept < 7700, "dropout keeps about 1-p (kept %lld of 10000)", (long long)kept);
  /* the mask follows the documented rule: kept iff uniform01(philox word 0) > p */
  mtt_generator g2 = {.seed = 1, .offset = 0};
  mtt_tensor *y2 = mtt_dropout(x, 0.25, &g2);
  double *v2 = values_of(y2);
  CHECK(memcmp(v, v2, sizeof(double) * 10000) == 0, "dropout is reproducible from (seed, offset)");
  mtt_tensor *y3 = mtt_dropout(x, 0.25, &g2);
  double *v3 = values_of(y3);
  CHECK(memcmp(v, v3, sizeof(double) * 10000) != 0, "dropout draws a new mask after the offset moved");
  free(v);
  free(v2);
  free(v3);
  /* the documented rule: kept iff uniform01(word 0 of philox(seed, offset + i)) > p, with
   * uniform01(w) = ((w >> 8) + 1) / 2^24; mtt_rand gives word 0 as w / 2^32 */
  mtt_generator g3 = {.seed = 1, .offset = 0};
  mtt_tensor *u = mtt_rand(1, s, MTT_F64, MTT_CPU, &g3);
  double *uv = values_of(u), *yv = values_of(y);
  int64_t wrong = 0;
  for (int64_t i = 0; i < 10000; i++) {
    uint32_t w = (uint32_t)(uv[i] * 4294967296.0);
    int keep = ((double)(w >> 8) + 1.0) / 16777216.0 > 0.25;
    wrong += keep != (yv[i] != 0);
  }
  CHECK(wrong == 0, "dropout mask differs from the Philox rule at %lld places", (long long)wrong);
  free(uv);
  free(yv);
  mtt_tensor_release(u);
  mtt_tensor *y0 = mtt_dropout(x, 0.0, NULL);
  CHECK(y0 && y0 != x && y0->nelem == 10000, "dropout p = 0 is a copy");
  if (y0) {
    double *v0 = values_of(y0);
    int64_t changed = 0;
    for (int64_t i = 0; i < 10000; i++) changed += v0[i] != 2.0;
    CHECK(changed == 0, "dropout p = 0 keeps every value");
    free(v0);
  }
  check_error("dropout p = 1", mtt_dropout(x, 1.0, NULL), "dropout: p must be in [0, 1)");
  check_error("dropout p < 0", mtt_dropout(x, -0.1, NULL), "dropout");
  mtt_tensor *rel[] = {x, y, y2, y3, y0};
  for (int i = 0; i < 5; i++) mtt_tensor_release(rel[i]);
  /* gradient: the same mask, scaled */
  int64_t gs[2] = {4, 5};
  double p = 0.4;
  mtt_tensor *xg = random_tensor(2, gs, MTT_F64, 1);
  gradcheck("dropout grad", op_dropout, 1, &xg, &p);
  double p0 = 0;
  gradcheck("dropout p = 0 grad", op_dropout, 1, &xg, &p0);
  mtt_tensor_release(xg);
}

/* ---- results independent of the thread count ---- */

/* Runs a forward and backward of the big ops and returns all outputs and gradients. */
static double *run_all(int64_t *count) {
  lcg_state = 777;
  int64_t xs[3] = {4, 64, 96}, cs[1] = {96}, ws[2] = {96, 80}, es[2] = {50, 96};
  mtt_tensor *x = random_tensor(3, xs, MTT_F32, 1), *lw = random_tensor(1, cs, MTT_F32, 1);
  mtt_tensor *lb = random_tensor(1, cs, MTT_F32, 1), *w = random_tensor(2, ws, MTT_F32, 1);
  mtt_tensor *emb = random_tensor(2, es, MTT_F32, 1);
  int64_t ids_shape[2] = {4, 64};
  double idv[256];
  for (int i = 0; i < 256; i++) idv[i] = (i * 7) % 50;
  mtt_tensor *ids = tensor(2, ids_shape, idv, MTT_I32);
  mtt_tensor *e = mtt_embedding(emb, ids);
  mtt_tensor *h = mtt_add(x, e);
  mtt_tensor *n = mtt_layer_norm(h, lw, lb, 1e-5);
  int64_t qshape[4] = {4, 64, 4, 24};
  mtt_tensor *nv = mtt_view(n, 4, qshape), *qt = mtt_transpose(nv, 1, 2);
  mtt_tensor *att = mtt_attention(qt, qt, qt, 1, 0);
  mtt_tensor *at = mtt_transpose(att, 1, 2), *ac = mtt_contiguous(at);
  mtt_tensor *av = mtt_view(ac, 3, xs);
  mtt_tensor *logits = mtt_matmul(av, w);
  mtt_tensor *logits_d = mtt_dropout(logits, 0.1, &(mtt_generator){.seed = 5});
  double tv[256];
  for (int i = 0; i < 256; i++) tv[i] = (i * 13) % 80;
  mtt_tensor *tg = tensor(2, ids_shape, tv, MTT_I32);
  mtt_tensor *loss = mtt_cross_entropy(logits_d, tg, NULL, -1);
  mtt_tensor *sm = mtt_softmax(logits, 2), *lsm = mtt_log_softmax(logits, 2);
  if (!loss || !sm || !lsm || mtt_backward(loss, NULL)) {
    fprintf(stderr, "FAIL: run_all: %s\n", mtt_last_error());
    exit(1);
  }
  int64_t ba[2] = {300, 64}, bb[2] = {64, 600}; /* a product cut into tiles */
  mtt_tensor *ta = random_tensor(2, ba, MTT_F32, 0), *tb = random_tensor(2, bb, MTT_F32, 0);
  mtt_tensor *tc = mtt_matmul(ta, tb);
  mtt_tensor *parts[] = {loss, sm, lsm, tc, mtt_grad(x), mtt_grad(lw), mtt_grad(lb), mtt_grad(w), mtt_grad(emb)};
  int np = sizeof parts / sizeof parts[0];
  int64_t total = 0;
  for (int i = 0; i < np; i++) total += parts[i]->nelem;
  double *all = malloc(sizeof(double) * (size_t)total), *p = all;
  for (int i = 0; i < np; i++) {
    mtt_to_f64(parts[i], p, parts[i]->nelem);
    p += parts[i]->nelem;
  }
  *count = total;
  for (int i = 4; i < np; i++) mtt_tensor_release(parts[i]);
  mtt_tensor *rel[] = {x, lw, lb, w, emb, ids, e, h, n, nv, qt, att, at,
                       ac, av, logits, logits_d, tg, loss, sm, lsm, ta, tb, tc};
  for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) mtt_tensor_release(rel[i]);
  return all;
}

static void test_thread_independence(void) {
  int before = mtt_get_num_threads();
  int64_t n1, n2;
  mtt_set_num_threads(1);
  double *one = run_all(&n1);
  mtt_set_num_threads(4);
  double *four = run_all(&n2);
  mtt_set_num_threads(before);
  int64_t first = -1;
  for (int64_t i = 0; n1 == n2 && i < n1 && first < 0; i++)
    if (memcmp(&one[i], &four[i], sizeof(double))) first = i;
  CHECK(n1 == n2 && first < 0, "results differ between 1 and 4 threads (first at value %lld of %lld)",
        (long long)first, (long long)n1);
  int nonfinite = 0;
  for (int64_t i = 0; i < n1; i++) nonfinite += !isfinite(one[i]);
  CHECK(nonfinite == 0, "run_all produced %d non-finite values", nonfinite);
  free(one);
  free(four);
}

int main(void) {
  lcg_state = 2024;
  test_matmul();
  test_softmax();
  test_layer_norm();
  test_embedding();
  test_cross_entropy();
  test_attention();
  test_dropout();
  test_thread_independence();
  return test_done("test_nn_ops");
}
