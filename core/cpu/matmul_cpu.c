/* matmul_cpu.c: batched strided gemm on OpenBLAS. Transposed operands reach BLAS as CblasTrans
 * with their own leading dim; only a layout BLAS cannot read (no unit stride) is copied.
 *
 * OpenBLAS rounds an element differently depending on how a product is cut into pieces
 * (measured: computing a product in row or column blocks changes bits), and its own threads cut
 * by the thread count. So every BLAS
 * call here runs single-threaded, and the parallelism is ours: a product is cut into tiles
 * whose sizes depend only on its shape, and the tiles are shared among the threads. The same
 * shape then gives the same bits on any thread count. */
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdbool.h>

#include "cpu/kernels_cpu.h"

int mtt_cpu_blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int *trans, int64_t *ld) {
  int64_t min_row = cols > 1 ? cols : 1, min_col = rows > 1 ? rows : 1;
  /* A size-1 dim has no meaningful stride; the leading dim then only has to be legal. */
  if ((cols <= 1 || cs == 1) && (rows <= 1 || rs >= min_row)) {
    *trans = 0;
    *ld = rows <= 1 ? min_row : rs;
    return 1;
  }
  if ((rows <= 1 || rs == 1) && (cols <= 1 || cs >= min_col)) {
    *trans = 1;
    *ld = cols <= 1 ? min_col : cs;
    return 1;
  }
  return 0;
}

void mtt_cpu_blas_gemm(int dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                       const void *a, int64_t lda, const void *b, int64_t ldb, double beta, void *c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) { /* an empty sum: c = beta * c, done here rather than trusting every BLAS with k = 0 */
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        if (dtype == MTT_F32) {
          float *e = (float *)c + i * ldc + j;
          *e = beta == 0 ? 0.0f : *e * (float)beta;
        } else {
          double *e = (double *)c + i * ldc + j;
          *e = beta == 0 ? 0.0 : *e * beta;
        }
      }
    return;
  }
  /* OpenMP OpenBLAS takes its thread count from this thread's OpenMP setting at each call:
   * 1 keeps this call on this thread (and its rounding independent of the thread count). */
  int threads = omp_get_max_threads();
  if (threads > 1) omp_set_num_threads(1);
  CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
  if (dtype == MTT_F32)
    cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, (float)alpha, a, (int)lda, b, (int)ldb, (float)beta, c,
                (int)ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
  if (threads > 1) omp_set_num_threads(threads);
}

/* Offset of batch element bi (row-major over the first nb dims of shape) in t. */
static int64_t batch_offset(const mtt_tensor *t, int nb, const int64_t *shape, int64_t bi) {
  int64_t off = t->offset;
  for (int d = nb - 1; d >= 0; d--) {
    off += (bi % shape[d]) * t->strides[d];
    bi /= shape[d];
  }
  return off;
}

/* Tiles of an m x n product, from the shape alone: whole matrices when there are many of them
 * or they are small; else up to GEMM_TILES pieces per matrix of at least GEMM_MIN_EDGE rows or
 * columns. Each piece repacks the other operand, so pieces stay few and large: measured on
 * 2 threads, 4 pieces of >= 256 match OpenBLAS's own threading (0.93-1.09x), 16 pieces of
 * >= 128 lose 7-23%. */
#define GEMM_TILES 4
#define GEMM_MIN_EDGE 256
static void plan_tiles(int64_t batch, int64_t m, int64_t n, int64_t k, int64_t *rb, int64_t *cb) {
  int64_t mt = 1, nt = 1;
  if (batch < GEMM_TILES && m * n * k >= ((int64_t)1 << 20)) {
    int64_t want = (GEMM_TILES + batch - 1) / batch;
    int64_t most_m = (m + GEMM_MIN_EDGE - 1) / GEMM_MIN_EDGE, most_n = (n + GEMM_MIN_EDGE - 1) / GEMM_MIN_EDGE;
    mt = want < most_m ? want : most_m;
    nt = (want + mt - 1) / mt;
    if (nt > most_n) nt = most_n;
  }
  /* multiples of 16 keep BLAS's inner kernels on full tiles */
  *rb = ((m + mt - 1) / mt + 15) / 16 * 16;
  *cb = ((n + nt - 1) / nt + 15) / 16 * 16;
}

int mtt_cpu_gemm(mtt_tensor *c, const mtt_tensor *a, const mtt_tensor *b, double alpha, double beta) {
  int nd = c->ndim, dt = c->dtype_id;
  if (dt != MTT_F32 && dt != MTT_F64)
    return mtt_fail(MTT_ERR_DTYPE, "matmul: dtype %s is not supported on the cpu", mtt_dtype_name(dt));
  int64_t m = c->dims[nd - 2], n = c->dims[nd - 1], k = a->dims[nd - 1];
  if (c->nelem == 0) return 0;
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
    return mtt_fail(MTT_ERR_SHAPE, "matmul: %s @ %s has a dim beyond the 32-bit BLAS limit", mtt_tshape(a),
                    mtt_tshape(b));
  const mtt_tensor *A = a, *B = b;
  mtt_tensor *copy_a = NULL, *copy_b = NULL;
  int ta = 0, tb = 0;
  int64_t lda = 1, ldb = 1;
  if (k > 0 && !mtt_cpu_blas_layout(m, k, a->strides[nd - 2], a->strides[nd - 1], &ta, &lda)) {
    if (!(A = copy_a = mtt_copy_raw(a))) return mtt_last_error_code();
    mtt_cpu_blas_layout(m, k, A->strides[nd - 2], A->strides[nd - 1], &ta, &lda);
  }
  if (k > 0 && !mtt_cpu_blas_layout(k, n, b->strides[nd - 2], b->strides[nd - 1], &tb, &ldb)) {
    if (!(B = copy_b = mtt_copy_raw(b))) {
      mtt_tensor_release(copy_a);
      return mtt_last_error_code();
    }
    mtt_cpu_blas_layout(k, n, B->strides[nd - 2], B->strides[nd - 1], &tb, &ldb);
  }
  if (lda > INT_MAX || ldb > INT_MAX) {
    mtt_tensor_release(copy_a);
    mtt_tensor_release(copy_b);
    return mtt_fail(MTT_ERR_SHAPE, "matmul: strides of %s @ %s exceed the 32-bit BLAS limit", mtt_tshape(a),
                    mtt_tshape(b));
  }
  int64_t batch = c->nelem / (m * n), rb, cb;
  plan_tiles(batch, m, n, k, &rb, &cb);
  int64_t mt = (m + rb - 1) / rb, nt = (n + cb - 1) / cb, tiles = batch * mt * nt;
  int64_t row_a = A->strides[nd - 2], col_b = B->strides[nd - 1], ldc = c->strides[nd - 2];
  size_t es = mtt_dtype_size(dt);
  const char *pa = A->storage->data, *pb = B->storage->data;
  char *pc = c->storage->data;
  int threads = mtt_threads_for(batch * m * n * (k ? k : 1));
  if (threads > tiles) threads = (int)tiles;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t t = 0; t < tiles; t++) {
    int64_t bi = t / (mt * nt), i0 = (t / nt % mt) * rb, j0 = t % nt * cb;
    int64_t rows = m - i0 < rb ? m - i0 : rb, cols = n - j0 < cb ? n - j0 : cb;
    int64_t oa = batch_offset(A, nd - 2, c->dims, bi) + i0 * row_a, ob = batch_offset(B, nd - 2, c->dims, bi) + j0 * col_b;
    int64_t oc = batch_offset(c, nd - 2, c->dims, bi) + i0 * ldc + j0;
    mtt_cpu_blas_gemm(dt, ta, tb, rows, cols, k, alpha, pa + oa * es, lda, pb + ob * es, ldb, beta, pc + oc * es, ldc);
  }
  mtt_tensor_release(copy_a);
  mtt_tensor_release(copy_b);
  return 0;
}
