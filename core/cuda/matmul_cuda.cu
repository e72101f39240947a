/*
 * matmul_cuda.cu: batched strided gemm on cuBLAS.
 *
 * cuBLAS is column-major: a row-major m x n matrix with leading dim ld is, to cuBLAS, its n x m
 * transpose. So C = A B (row-major) is computed as C^T = B^T A^T, which cuBLAS sees as plain
 * column-major operands: (B, A) in that order, dims (n, m, k). A transposed view reaches cuBLAS
 * as OP_T with its own leading dim; only a layout with no unit stride is copied. Batch dims
 * that flatten to one stride per operand become one strided-batched call; others loop on the
 * host over the batch dims that do not.
 *
 * f32 precision (mtt_set_float32_matmul_precision): HIGHEST computes in f32, HIGH lets cuBLAS
 * use TF32, MEDIUM uses bf16 tensor cores with f32 accumulation and f32 output. For MEDIUM the
 * operands are packed to bf16 first (one pass over each, the last two packings reused);
 * MTT_CUDA_BF16_GEMM=cublas leaves the down-conversion to cuBLAS instead
 * (CUBLAS_COMPUTE_32F_FAST_16BF), for comparison.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/kernels_cuda.h"

/* How cuBLAS reads a rows x cols row-major-indexed matrix with strides (rs, cs): as stored
 * (trans 0, leading dim rs) or transposed (trans 1, leading dim cs). 0 if neither fits. */
static int blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int *trans, int64_t *ld) {
  int64_t min_row = cols > 1 ? cols : 1, min_col = rows > 1 ? rows : 1;
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

/* Can batch dims [from, nb) of t be walked with one stride? (dims of size 1 never matter) */
static bool batch_flat(const mtt_tensor *t, const int64_t *dims, int from, int nb, int64_t *stride) {
  int64_t s = -1, span = 1;
  for (int d = nb - 1; d >= from; d--) {
    if (dims[d] == 1) continue;
    if (s < 0) {
      s = t->strides[d];
      span = dims[d];
    } else if (t->strides[d] == s * span) {
      span *= dims[d];
    } else {
      return false;
    }
  }
  *stride = s < 0 ? 0 : s;
  return true;
}

static int64_t batch_offset(const mtt_tensor *t, int nb, const int64_t *dims, int64_t bi) {
  int64_t off = 0;
  for (int d = nb - 1; d >= 0; d--) {
    off += (bi % dims[d]) * t->strides[d];
    bi /= dims[d];
  }
  return off;
}

/* ---- bf16 packings of the last operands ----
 * A matmul's backward multiplies the same gradient twice in a row (by each input), so the last
 * two packings are kept: a hit skips a pass over the operand (for the logits' gradient, 2.5 GB
 * of traffic). An entry holds a reference to its tensor's storage, so that the memory cannot be
 * reused under it, and the storage version, which every in-place write bumps. */
#define PACKS 2
struct pack_entry {
  mtt_tensor *ref; /* alias of the packed tensor (retained), NULL when empty */
  uint64_t version;
  void *bf16;
  uint64_t used;
};
static pack_entry packs[PACKS];
static uint64_t pack_clock;

static bool same_view(const mtt_tensor *a, const mtt_tensor *b) {
  if (a->storage != b->storage || a->offset != b->offset || a->ndim != b->ndim) return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->dims[d] != b->dims[d] || (a->dims[d] != 1 && a->strides[d] != b->strides[d])) return false;
  return true;
}

static void pack_drop(pack_entry *e) {
  mtt_tensor_release(e->ref);
  mtt_cuda_free(e->bf16);
  *e = pack_entry();
}

/* x (f32, any strides) as contiguous bf16, owned by the cache. */
static void *pack_bf16(const mtt_tensor *x) {
  pack_entry *victim = &packs[0];
  for (int i = 0; i < PACKS; i++) {
    pack_entry *e = &packs[i];
    if (e->ref && same_view(e->ref, x) && e->version == x->storage->version) {
      e->used = ++pack_clock;
      return e->bf16;
    }
    if (e->used < victim->used) victim = e;
  }
  void *bf = mtt_cuda_to_bf16(x, "matmul");
  mtt_tensor *ref = bf ? mtt_tensor_alias(x, x->ndim, x->dims, x->strides, x->offset) : NULL;
  if (!ref) {
    mtt_cuda_free(bf);
    return NULL;
  }
  pack_drop(victim);
  victim->ref = ref;
  victim->version = x->storage->version;
  victim->bf16 = bf;
  victim->used = ++pack_clock;
  return bf;
}

void mtt_cuda_pack_cache_clear(void) {
  for (int i = 0; i < PACKS; i++) pack_drop(&packs[i]);
}

static int scale_c(mtt_tensor *c, double beta) {
  if (beta == 0) return mtt_cuda_fill(c, 0.0);
  return mtt_cuda_unary(MTT_U_MUL_S, c, c, beta, 0);
}

int mtt_cuda_gemm(mtt_tensor *c, const mtt_tensor *a, const mtt_tensor *b, double alpha, double beta) {
  int nd = c->ndim, dt = c->dtype_id, nb = nd - 2;
  if (dt != MTT_F32 && dt != MTT_F64)
    return mtt_fail(MTT_ERR_DTYPE, "matmul: dtype %s is not supported on cuda", mtt_dtype_name(dt));
  int64_t m = c->dims[nd - 2], n = c->dims[nd - 1], k = a->dims[nd - 1];
  if (c->nelem == 0) return 0;
  if (k == 0) return scale_c(c, beta); /* an empty sum: c = beta * c */
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
    return mtt_fail(MTT_ERR_SHAPE, "matmul: %s @ %s has a dim beyond cuBLAS's 32-bit limit", mtt_tshape(a), mtt_tshape(b));
  int precision = dt == MTT_F32 ? mtt_get_float32_matmul_precision() : MTT_MATMUL_HIGHEST;
  static int cublas_converts = -1; /* MTT_CUDA_BF16_GEMM=cublas, read once */
  if (cublas_converts < 0) {
    const char *mode = getenv("MTT_CUDA_BF16_GEMM");
    cublas_converts = mode && !strcmp(mode, "cublas");
  }
  bool packed = precision == MTT_MATMUL_MEDIUM && !cublas_converts;

  /* Operands as cuBLAS reads them; packed (bf16) or copied ones are contiguous. */
  const mtt_tensor *A = a, *B = b;
  mtt_tensor *copy_a = NULL, *copy_b = NULL, packed_a, packed_b;
  void *bf_a = NULL, *bf_b = NULL;
  int rc = 0;
  if (packed) {
    if (!(bf_a = pack_bf16(a)) || !(bf_b = pack_bf16(b))) return mtt_last_error_code();
    packed_a = *a;
    packed_b = *b;
    mtt_contiguous_strides(nd, a->dims, packed_a.strides);
    mtt_contiguous_strides(nd, b->dims, packed_b.strides);
    packed_a.offset = packed_b.offset = 0; /* (broadcast batch dims are materialized by the packing) */
    A = &packed_a;
    B = &packed_b;
  }
  int ta = 0, tb = 0;
  int64_t lda = 1, ldb = 1;
  if (!blas_layout(m, k, A->strides[nd - 2], A->strides[nd - 1], &ta, &lda)) {
    if (!(A = copy_a = mtt_copy_raw(a))) rc = mtt_last_error_code();
    if (!rc) blas_layout(m, k, A->strides[nd - 2], A->strides[nd - 1], &ta, &lda);
  }
  if (!rc && !blas_layout(k, n, B->strides[nd - 2], B->strides[nd - 1], &tb, &ldb)) {
    if (!(B = copy_b = mtt_copy_raw(b))) rc = mtt_last_error_code();
    if (!rc) blas_layout(k, n, B->strides[nd - 2], B->strides[nd - 1], &tb, &ldb);
  }
  if (!rc && (lda > INT_MAX || ldb > INT_MAX))
    rc = mtt_fail(MTT_ERR_SHAPE, "matmul: strides of %s @ %s exceed cuBLAS's 32-bit limit", mtt_tshape(a), mtt_tshape(b));

  /* the longest run of trailing batch dims that every operand walks with one stride */
  int from = 0;
  int64_t sa = 0, sb = 0, sc = 0;
  while (from < nb && !(batch_flat(A, c->dims, from, nb, &sa) && batch_flat(B, c->dims, from, nb, &sb) &&
                        batch_flat(c, c->dims, from, nb, &sc)))
    from++;
  if (from == nb) sa = sb = sc = 0;
  int64_t inner = mtt_shape_numel(nb - from, c->dims + from), outer = mtt_shape_numel(from, c->dims);
  if (!rc && inner > INT_MAX) rc = mtt_fail(MTT_ERR_SHAPE, "matmul: batch of %lld is beyond cuBLAS's limit", (long long)inner);

  cudaDataType at = CUDA_R_32F, ct = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  size_t es = mtt_dtype_size(dt), eab = es;
  float alpha32 = (float)alpha, beta32 = (float)beta;
  const void *pal = &alpha32, *pbe = &beta32;
  if (dt == MTT_F64) {
    at = ct = CUDA_R_64F;
    compute = CUBLAS_COMPUTE_64F;
    pal = &alpha;
    pbe = &beta;
  } else if (packed) {
    at = CUDA_R_16BF;
    eab = 2;
  } else if (precision == MTT_MATMUL_MEDIUM) {
    compute = CUBLAS_COMPUTE_32F_FAST_16BF;
  } else if (precision == MTT_MATMUL_HIGH) {
    compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  }
  const char *pa = packed ? (const char *)bf_a : (const char *)mtt_cu_base(A);
  const char *pb = packed ? (const char *)bf_b : (const char *)mtt_cu_base(B);
  int64_t oa0 = packed ? 0 : A->offset, ob0 = packed ? 0 : B->offset;
  for (int64_t bo = 0; !rc && bo < outer; bo++) {
    int64_t oa = oa0 + batch_offset(A, from, c->dims, bo), ob = ob0 + batch_offset(B, from, c->dims, bo);
    int64_t oc = c->offset + batch_offset(c, from, c->dims, bo);
    /* row-major C = A B as column-major C^T = B^T A^T: cuBLAS's first operand is B */
    rc = mtt_cuda_blas_check(
        cublasGemmStridedBatchedEx(mtt_cuda_blas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n,
                                   (int)m, (int)k, pal, pb + ob * (int64_t)eab, at, (int)ldb, (long long)sb,
                                   pa + oa * (int64_t)eab, at, (int)lda, (long long)sa, pbe,
                                   (char *)mtt_cu_base(c) + oc * (int64_t)es, ct, (int)(c->strides[nd - 2]),
                                   (long long)sc, (int)inner, compute, CUBLAS_GEMM_DEFAULT),
        "matmul");
  }
  mtt_tensor_release(copy_a);
  mtt_tensor_release(copy_b);
  return rc;
}
