/* attention_cpu.c: fused scaled dot-product attention on the cpu.
 *
 * One (batch, head) per thread, BLAS single-threaded inside (OpenMP OpenBLAS does that within a
 * parallel region). Query rows go in blocks of ATT_BLOCK, so that a thread's scores fit in a
 * small buffer and causal blocks skip the keys none of their rows can see. The forward keeps
 * only the row logsumexp; the backward recomputes the probabilities from it (one more q k^T
 * instead of keeping [T, T] per head). q, k, v are read in place with their strides: a head
 * taken out of a fused qkv projection by view and transpose is not copied. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "cpu/kernels_cpu.h"


#define ATT_BLOCK 64

/* One operand as BLAS reads it: a rows x cols matrix per leading index. */
typedef struct att_operand {
  const mtt_tensor *t;
  mtt_tensor *copy; /* owned; set when t's layout had to be copied */
  int trans;
  int64_t ld, rs;   /* leading dim for BLAS; row stride for row blocks */
} att_operand;

static int operand_init(att_operand *o, const mtt_tensor *t) {
  int nd = t->ndim;
  int64_t rows = t->dims[nd - 2], cols = t->dims[nd - 1];
  o->t = t;
  o->copy = NULL;
  if (!mtt_cpu_blas_layout(rows, cols, t->strides[nd - 2], t->strides[nd - 1], &o->trans, &o->ld)) {
    if (!(o->copy = mtt_copy_raw(t))) return mtt_last_error_code();
    o->t = o->copy;
    mtt_cpu_blas_layout(rows, cols, o->t->strides[nd - 2], o->t->strides[nd - 1], &o->trans, &o->ld);
  }
  o->rs = o->t->strides[nd - 2];
  return 0;
}

/* Address of the matrix for leading index n (leading dims as in shape, nlead of them). */
static const char *operand_at(const att_operand *o, int nlead, const int64_t *shape, int64_t n) {
  int64_t off = o->t->offset;
  for (int d = nlead - 1; d >= 0; d--) {
    off += (n % shape[d]) * o->t->strides[d];
    n /= shape[d];
  }
  return (const char *)o->t->storage->data + off * (int64_t)mtt_dtype_size(o->t->dtype_id);
}

/* Softmax in place of s[0, vis), zeros in [vis, n); returns the logsumexp of s[0, vis). */
static double softmax_row(int dt, void *row, int64_t vis, int64_t n) {
  if (dt == MTT_F32) {
    float *s = row, mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < vis; j++) mx = s[j] > mx ? s[j] : mx;
    float sum = mtt_cpu_expsum_f32(s, s, mx, vis), inv = 1 / sum;
    for (int64_t j = 0; j < vis; j++) s[j] *= inv;
    for (int64_t j = vis; j < n; j++) s[j] = 0;
    return (double)(mx + logf(sum));
  }
  double *s = row, mx = -INFINITY;
  for (int64_t j = 0; j < vis; j++) mx = s[j] > mx ? s[j] : mx;
  double sum = mtt_cpu_expsum_f64(s, s, mx, vis), inv = 1 / sum;
  for (int64_t j = 0; j < vis; j++) s[j] *= inv;
  for (int64_t j = vis; j < n; j++) s[j] = 0;
  return mx + log(sum);
}

/* Probabilities again from the scores and the saved logsumexp: p = exp(s - lse), 0 if masked. */
static void probs_row(int dt, void *row, int64_t vis, int64_t n, double lse) {
  if (dt == MTT_F32) {
    float *s = row;
    mtt_cpu_expsum_f32(s, s, (float)lse, vis);
    for (int64_t j = vis; j < n; j++) s[j] = 0;
  } else {
    double *s = row;
    mtt_cpu_expsum_f64(s, s, lse, vis);
    for (int64_t j = vis; j < n; j++) s[j] = 0;
  }
}

/* dS = scale * P * (dP - sum(P * dP)), in place of dP. */
static void dscores_row(int dt, void *dp_row, const void *p_row, int64_t n, double scale) {
  if (dt == MTT_F32) {
    float *dp = dp_row, sum = 0, sc = (float)scale;
    const float *p = p_row;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; j++) sum += p[j] * dp[j];
    for (int64_t j = 0; j < n; j++) dp[j] = sc * p[j] * (dp[j] - sum);
  } else {
    double *dp = dp_row, sum = 0;
    const double *p = p_row;
    for (int64_t j = 0; j < n; j++) sum += p[j] * dp[j];
    for (int64_t j = 0; j < n; j++) dp[j] = scale * p[j] * (dp[j] - sum);
  }
}

/* Shapes shared by forward and backward. */
typedef struct att_dims {
  int nlead, dt;
  int64_t n, tq, tk, d, dv, shift; /* shift = tk - tq: causal row i sees keys j <= i + shift */
  size_t es;
} att_dims;

static att_dims dims_of(const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v) {
  int nd = q->ndim;
  att_dims a = {.nlead = nd - 2, .dt = q->dtype_id, .tq = q->dims[nd - 2], .tk = k->dims[nd - 2],
                .d = q->dims[nd - 1], .dv = v->dims[nd - 1], .es = mtt_dtype_size(q->dtype_id)};
  a.n = mtt_shape_numel(nd - 2, q->dims);
  a.shift = a.tk - a.tq;
  return a;
}

/* Keys visible to row i (causal) or all of them. */
static int64_t visible(const att_dims *a, int causal, int64_t i) {
  if (!causal) return a->tk;
  int64_t v = i + 1 + a->shift;
  return v < a->tk ? v : a->tk;
}

static int check_dtype(int dt) {
  if (dt == MTT_F32 || dt == MTT_F64) return 0;
  return mtt_fail(MTT_ERR_DTYPE, "attention: dtype %s is not supported on the cpu", mtt_dtype_name(dt));
}

/* Threads over the leading index: one per (batch, head), only when there is work for them. */
static int att_threads(const att_dims *a) {
  int t = mtt_threads_for(a->n * a->tq * a->tk * (a->d + a->dv));
  return a->n < t ? (int)a->n : t;
}

int mtt_cpu_attention(mtt_tensor *out, mtt_tensor *lse, const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v,
                      int causal, double scale) {
  if (check_dtype(q->dtype_id)) return mtt_last_error_code();
  att_dims a = dims_of(q, k, v);
  if (out->nelem == 0 && lse->nelem == 0) return 0;
  att_operand oq, ok, ov;
  int rc = operand_init(&oq, q);
  if (!rc && (rc = operand_init(&ok, k))) mtt_tensor_release(oq.copy);
  if (!rc && (rc = operand_init(&ov, v))) {
    mtt_tensor_release(oq.copy);
    mtt_tensor_release(ok.copy);
  }
  if (rc) return rc;
  int threads = att_threads(&a), failed = 0;
  int64_t bq = a.tq < ATT_BLOCK ? a.tq : ATT_BLOCK;
  char *outs = mtt_data_ptr(out), *lses = mtt_data_ptr(lse);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    char *s = malloc(a.es * (size_t)(bq * a.tk + 1));
    if (!s) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(static)
    for (int64_t n = 0; n < a.n; n++) {
      if (!s) continue;
      const char *qn = operand_at(&oq, a.nlead, q->dims, n), *kn = operand_at(&ok, a.nlead, q->dims, n);
      const char *vn = operand_at(&ov, a.nlead, q->dims, n);
      char *on = outs + (size_t)(n * a.tq * a.dv) * a.es, *ln = lses + (size_t)(n * a.tq) * a.es;
      for (int64_t i0 = 0; i0 < a.tq; i0 += bq) {
        int64_t rows = a.tq - i0 < bq ? a.tq - i0 : bq, jmax = visible(&a, causal, i0 + rows - 1);
        mtt_cpu_blas_gemm(a.dt, oq.trans, !ok.trans, rows, jmax, a.d, scale, qn + (size_t)(i0 * oq.rs) * a.es, oq.ld,
                          kn, ok.ld, 0.0, s, jmax);
        for (int64_t r = 0; r < rows; r++) {
          double l = softmax_row(a.dt, s + (size_t)(r * jmax) * a.es, visible(&a, causal, i0 + r), jmax);
          if (a.dt == MTT_F32)
            ((float *)ln)[i0 + r] = (float)l;
          else
            ((double *)ln)[i0 + r] = l;
        }
        mtt_cpu_blas_gemm(a.dt, 0, ov.trans, rows, a.dv, jmax, 1.0, s, jmax, vn, ov.ld, 0.0,
                          on + (size_t)(i0 * a.dv) * a.es, a.dv);
      }
    }
    free(s);
  }
  mtt_tensor_release(oq.copy);
  mtt_tensor_release(ok.copy);
  mtt_tensor_release(ov.copy);
  if (failed) return mtt_fail(MTT_ERR_MEMORY, "attention: out of memory for the scores of q %s", mtt_tshape(q));
  return 0;
}

/* Per block of query rows, with P recomputed and dS = P * (dP - rowsum(P * dP)):
 * dV += P^T dO, dP = dO V^T, dQ = scale dS K, dK += scale dS^T Q. */
int mtt_cpu_attention_backward(mtt_tensor *gq, mtt_tensor *gk, mtt_tensor *gv, const mtt_tensor *gout,
                               const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v, const mtt_tensor *lse,
                               int causal, double scale) {
  if (check_dtype(q->dtype_id)) return mtt_last_error_code();
  att_dims a = dims_of(q, k, v);
  att_operand oq, ok, ov;
  int rc = operand_init(&oq, q);
  if (!rc && (rc = operand_init(&ok, k))) mtt_tensor_release(oq.copy);
  if (!rc && (rc = operand_init(&ov, v))) {
    mtt_tensor_release(oq.copy);
    mtt_tensor_release(ok.copy);
  }
  if (rc) return rc;
  int threads = att_threads(&a), failed = 0;
  int64_t bq = a.tq < ATT_BLOCK ? a.tq : ATT_BLOCK;
  const char *gos = mtt_data_ptr(gout), *lses = mtt_data_ptr(lse);
  char *gqs = gq ? mtt_data_ptr(gq) : NULL, *gks = gk ? mtt_data_ptr(gk) : NULL, *gvs = gv ? mtt_data_ptr(gv) : NULL;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    char *p = malloc(a.es * (size_t)(2 * bq * a.tk + 1)), *dp = p ? p + a.es * (size_t)(bq * a.tk) : NULL;
    if (!p) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(static)
    for (int64_t n = 0; n < a.n; n++) {
      if (!p) continue;
      const char *qn = operand_at(&oq, a.nlead, q->dims, n), *kn = operand_at(&ok, a.nlead, q->dims, n);
      const char *vn = operand_at(&ov, a.nlead, q->dims, n);
      const char *gon = gos + (size_t)(n * a.tq * a.dv) * a.es, *ln = lses + (size_t)(n * a.tq) * a.es;
      char *gqn = gqs ? gqs + (size_t)(n * a.tq * a.d) * a.es : NULL;
      char *gkn = gks ? gks + (size_t)(n * a.tk * a.d) * a.es : NULL;
      char *gvn = gvs ? gvs + (size_t)(n * a.tk * a.dv) * a.es : NULL;
      /* dK and dV add up over the query blocks, and causal blocks do not reach every key */
      if (gkn) mtt_cpu_blas_gemm(a.dt, 0, 0, a.tk, a.d, 0, 0.0, NULL, 1, NULL, 1, 0.0, gkn, a.d);
      if (gvn) mtt_cpu_blas_gemm(a.dt, 0, 0, a.tk, a.dv, 0, 0.0, NULL, 1, NULL, 1, 0.0, gvn, a.dv);
      for (int64_t i0 = 0; i0 < a.tq; i0 += bq) {
        int64_t rows = a.tq - i0 < bq ? a.tq - i0 : bq, jmax = visible(&a, causal, i0 + rows - 1);
        const char *qb = qn + (size_t)(i0 * oq.rs) * a.es, *gob = gon + (size_t)(i0 * a.dv) * a.es;
        mtt_cpu_blas_gemm(a.dt, oq.trans, !ok.trans, rows, jmax, a.d, scale, qb, oq.ld, kn, ok.ld, 0.0, p, jmax);
        for (int64_t r = 0; r < rows; r++) {
          double l = a.dt == MTT_F32 ? ((const float *)ln)[i0 + r] : ((const double *)ln)[i0 + r];
          probs_row(a.dt, p + (size_t)(r * jmax) * a.es, visible(&a, causal, i0 + r), jmax, l);
        }
        if (gvn) mtt_cpu_blas_gemm(a.dt, 1, 0, jmax, a.dv, rows, 1.0, p, jmax, gob, a.dv, 1.0, gvn, a.dv);
        if (!gqn && !gkn) continue;
        mtt_cpu_blas_gemm(a.dt, 0, !ov.trans, rows, jmax, a.dv, 1.0, gob, a.dv, vn, ov.ld, 0.0, dp, jmax);
        for (int64_t r = 0; r < rows; r++)
          dscores_row(a.dt, dp + (size_t)(r * jmax) * a.es, p + (size_t)(r * jmax) * a.es, jmax, scale);
        if (gqn)
          mtt_cpu_blas_gemm(a.dt, 0, ok.trans, rows, a.d, jmax, 1.0, dp, jmax, kn, ok.ld, 0.0,
                            gqn + (size_t)(i0 * a.d) * a.es, a.d);
        if (gkn) mtt_cpu_blas_gemm(a.dt, 1, oq.trans, jmax, a.d, rows, 1.0, dp, jmax, qb, oq.ld, 1.0, gkn, a.d);
      }
    }
    free(p);
  }
  mtt_tensor_release(oq.copy);
  mtt_tensor_release(ok.copy);
  mtt_tensor_release(ov.copy);
  if (failed) return mtt_fail(MTT_ERR_MEMORY, "attention: out of memory for the backward of q %s", mtt_tshape(q));
  return 0;
}
