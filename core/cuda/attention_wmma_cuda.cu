/*
 * attention_wmma_cuda.cu: attention on bf16 tensor cores (MEDIUM float32 matmul precision),
 * the same flash-attention schedule as attention_cuda.cu with the products on WMMA tiles.
 *
 * f32 inputs are rounded to bf16 as tiles enter shared memory; every product accumulates in
 * f32 and the softmax (max, exp, sums, logsumexp) runs in f32. A block is 4 warps; a warp owns
 * 16 rows (query rows in the forward and the dQ kernel, key rows in the dK/dV kernel) and
 * computes their 16 x 64 score tile with m16n16k16 products. The running output and the
 * gradients accumulate in f32 shared memory, because the per-row rescaling of online softmax
 * needs to know which row an element is in (a WMMA accumulator does not say).
 * Head dims must be multiples of 16 (at most 128); others take the exact path.
 */
#include <math.h>

#include "cuda/attention_cuda.h"

#define WARPS 4
#define ROWS 64 /* rows per block: WARPS x 16 */
#define TILE 64 /* keys (forward, dQ) or queries (dK, dV) per tile */

using namespace nvcuda;
typedef __nv_bfloat16 bf16;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> frag_a;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> frag_b_row;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> frag_b_col;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> frag_c;

#ifdef MTT_CUDA_EMULATE
#define WMMA_SHARED(name) unsigned char *name = (unsigned char *)mtt_emu_dynamic_shared()
#else
/* WMMA loads want 32-byte alignment; every buffer below starts at a multiple of 128 bytes */
#define WMMA_SHARED(name)                                      \
  extern __shared__ __align__(128) unsigned char mtt_wmma_[]; \
  unsigned char *name = mtt_wmma_
#endif

/* Shared-memory carving: each piece rounded up to 128 bytes. */
__host__ __device__ static inline size_t piece(size_t bytes) { return (bytes + 127) / 128 * 128; }

/* rows x cols of an f32 operand, rows from row0 (zero past limit), into row-major bf16 dst. */
__device__ void load_bf16(bf16 *dst, const float *src, const att_opnd &o, int64_t row0, int rows, int cols,
                          int64_t limit) {
  for (int e = threadIdx.x; e < rows * cols; e += blockDim.x) {
    int r = e / cols, c = e % cols;
    int64_t row = row0 + r;
    dst[e] = __float2bfloat16(row < limit ? src[row * o.rs + c * o.cs] : 0.0f);
  }
}

/* The same from a contiguous [.., t, cols] f32 array (gout). */
__device__ void load_bf16_flat(bf16 *dst, const float *src, int64_t row0, int rows, int cols, int64_t limit) {
  for (int e = threadIdx.x; e < rows * cols; e += blockDim.x) {
    int r = e / cols, c = e % cols;
    int64_t row = row0 + r;
    dst[e] = __float2bfloat16(row < limit ? src[row * cols + c] : 0.0f);
  }
}

/* One warp: out (16 x n, f32, ld ldo) (+)= a (16 x k, bf16 row-major, lda) times b (k x n), where
 * b is row-major [k][n] (ld ldb) or, when B_T, given as its transpose stored row-major [n][k]. */
template <bool B_T>
__device__ void warp_gemm(float *out, int ldo, const bf16 *a, int lda, const bf16 *b, int ldb, int n, int k,
                          bool accumulate) {
  for (int c = 0; c < n; c += 16) {
    frag_c acc;
    if (accumulate)
      wmma::load_matrix_sync(acc, out + c, ldo, wmma::mem_row_major);
    else
      wmma::fill_fragment(acc, 0.0f);
    for (int kk = 0; kk < k; kk += 16) {
      frag_a fa;
      wmma::load_matrix_sync(fa, a + kk, lda);
      if (B_T) {
        frag_b_col fb;
        wmma::load_matrix_sync(fb, b + c * ldb + kk, ldb);
        wmma::mma_sync(acc, fa, fb, acc);
      } else {
        frag_b_row fb;
        wmma::load_matrix_sync(fb, b + kk * ldb + c, ldb);
        wmma::mma_sync(acc, fa, fb, acc);
      }
    }
    wmma::store_matrix_sync(out + c, acc, ldo, wmma::mem_row_major);
  }
}

/* ---- forward ---- */

static size_t fwd_bytes(int d, int dv) {
  return piece(ROWS * d * 2) + piece(TILE * d * 2) + piece(TILE * dv * 2) + piece(WARPS * 16 * TILE * 4) +
         piece(WARPS * 16 * TILE * 2) + piece(WARPS * 16 * dv * 4) + 2 * piece(ROWS * 4);
}

__global__ void __launch_bounds__(WARPS * 32) attention_fwd_bf16_kernel(float *out, float *lse, att_opnd q, att_opnd k,
                                                                        att_opnd v, att_dims a, float scale) {
  WMMA_SHARED(smem);
  int D = (int)a.d, DV = (int)a.dv, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int64_t n = blockIdx.x, i0 = (int64_t)blockIdx.y * ROWS;
  bf16 *qs = (bf16 *)smem, *ks = (bf16 *)(smem + piece(ROWS * D * 2));
  bf16 *vs = (bf16 *)((unsigned char *)ks + piece(TILE * D * 2));
  float *s_all = (float *)((unsigned char *)vs + piece(TILE * DV * 2));
  bf16 *p_all = (bf16 *)((unsigned char *)s_all + piece(WARPS * 16 * TILE * 4));
  float *o_all = (float *)((unsigned char *)p_all + piece(WARPS * 16 * TILE * 2));
  float *mrow = (float *)((unsigned char *)o_all + piece(WARPS * 16 * DV * 4)), *lrow = mrow + piece(ROWS * 4) / 4;
  float *sw = s_all + warp * 16 * TILE, *ow = o_all + warp * 16 * DV;
  bf16 *pw = p_all + warp * 16 * TILE, *qw = qs + warp * 16 * D;

  const float *qn = opnd_at<float>(q, n), *kn = opnd_at<float>(k, n), *vn = opnd_at<float>(v, n);
  load_bf16(qs, qn, q, i0, ROWS, D, a.tq);
  for (int e = threadIdx.x; e < WARPS * 16 * DV; e += blockDim.x) o_all[e] = 0;
  for (int e = threadIdx.x; e < ROWS; e += blockDim.x) {
    mrow[e] = -INFINITY;
    lrow[e] = 0;
  }
  int64_t last = i0 + ROWS - 1 < a.tq - 1 ? i0 + ROWS - 1 : a.tq - 1, jmax = att_visible(a, last);
  int r = lane >> 1, h = lane & 1, row = warp * 16 + r;
  int64_t i = i0 + row, vis = i < a.tq ? att_visible(a, i) : 0;
  for (int64_t j0 = 0; j0 < jmax; j0 += TILE) {
    __syncthreads(); /* the previous K and V tiles are no longer read */
    load_bf16(ks, kn, k, j0, TILE, D, a.tk);
    load_bf16(vs, vn, v, j0, TILE, DV, a.tk);
    __syncthreads();
    warp_gemm<true>(sw, TILE, qw, D, ks, D, TILE, D, false); /* S = Q K^T */
    __syncwarp();
    /* online softmax: two lanes per row, half the tile's columns each */
    float mx = -INFINITY;
    for (int c = h * TILE / 2; c < (h + 1) * TILE / 2; c++) {
      float s = j0 + c < vis ? sw[r * TILE + c] * scale : -INFINITY;
      sw[r * TILE + c] = s;
      mx = fmaxf(mx, s);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    float m_old = mrow[row], m_new = fmaxf(m_old, mx);
    float corr = m_new == -INFINITY ? 1.0f : expf(m_old - m_new), sum = 0;
    for (int c = h * TILE / 2; c < (h + 1) * TILE / 2; c++) {
      float p = m_new == -INFINITY ? 0.0f : expf(sw[r * TILE + c] - m_new);
      pw[r * TILE + c] = __float2bfloat16(p);
      sum += p;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    for (int c = h * DV / 2; c < (h + 1) * DV / 2; c++) ow[r * DV + c] *= corr;
    if (h == 0) {
      mrow[row] = m_new;
      lrow[row] = lrow[row] * corr + sum;
    }
    __syncwarp();
    warp_gemm<false>(ow, DV, pw, TILE, vs, DV, DV, TILE, true); /* O += P V */
  }
  __syncthreads();
  for (int e = threadIdx.x; e < ROWS * DV; e += blockDim.x) {
    int rr = e / DV, c = e % DV;
    int64_t ii = i0 + rr;
    if (ii >= a.tq) continue;
    float l = lrow[rr];
    out[(n * a.tq + ii) * DV + c] = l > 0 ? o_all[rr * DV + c] / l : 0.0f;
  }
  for (int e = threadIdx.x; e < ROWS; e += blockDim.x)
    if (i0 + e < a.tq) lse[n * a.tq + i0 + e] = lrow[e] > 0 ? mrow[e] + logf(lrow[e]) : -INFINITY;
}

/* ---- backward 1: D_i = sum_j P_ij dP_ij, then dQ = dS K (blocks of query rows) ---- */

static size_t dq_bytes(int d, int dv) {
  return piece(ROWS * d * 2) + piece(ROWS * dv * 2) + piece(TILE * d * 2) + piece(TILE * dv * 2) +
         2 * piece(WARPS * 16 * TILE * 4) + piece(WARPS * 16 * TILE * 2) + piece(WARPS * 16 * d * 4) + 2 * piece(ROWS * 4);
}

__global__ void __launch_bounds__(WARPS * 32) attention_dq_bf16_kernel(float *gq, float *dsum, const float *gout,
                                                                       const float *lse, att_opnd q, att_opnd k,
                                                                       att_opnd v, att_dims a, float scale) {
  WMMA_SHARED(smem);
  int D = (int)a.d, DV = (int)a.dv, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int64_t n = blockIdx.x, i0 = (int64_t)blockIdx.y * ROWS;
  unsigned char *at = smem;
  bf16 *qs = (bf16 *)at;
  at += piece(ROWS * D * 2);
  bf16 *dos = (bf16 *)at;
  at += piece(ROWS * DV * 2);
  bf16 *ks = (bf16 *)at;
  at += piece(TILE * D * 2);
  bf16 *vs = (bf16 *)at;
  at += piece(TILE * DV * 2);
  float *s_all = (float *)at;
  at += piece(WARPS * 16 * TILE * 4);
  float *dp_all = (float *)at;
  at += piece(WARPS * 16 * TILE * 4);
  bf16 *ds_all = (bf16 *)at;
  at += piece(WARPS * 16 * TILE * 2);
  float *dq_all = (float *)at;
  at += piece(WARPS * 16 * D * 4);
  float *lrow = (float *)at, *drow = lrow + piece(ROWS * 4) / 4;
  float *sw = s_all + warp * 16 * TILE, *dpw = dp_all + warp * 16 * TILE, *dqw = dq_all + warp * 16 * D;
  bf16 *dsw = ds_all + warp * 16 * TILE, *qw = qs + warp * 16 * D, *dow = dos + warp * 16 * DV;

  const float *qn = opnd_at<float>(q, n), *kn = opnd_at<float>(k, n), *vn = opnd_at<float>(v, n);
  load_bf16(qs, qn, q, i0, ROWS, D, a.tq);
  load_bf16_flat(dos, gout + n * a.tq * DV, i0, ROWS, DV, a.tq);
  for (int e = threadIdx.x; e < WARPS * 16 * D; e += blockDim.x) dq_all[e] = 0;
  for (int e = threadIdx.x; e < ROWS; e += blockDim.x) {
    lrow[e] = i0 + e < a.tq ? lse[n * a.tq + i0 + e] : 0.0f;
    drow[e] = 0;
  }
  int64_t last = i0 + ROWS - 1 < a.tq - 1 ? i0 + ROWS - 1 : a.tq - 1, jmax = att_visible(a, last);
  int r = lane >> 1, h = lane & 1, row = warp * 16 + r;
  int64_t i = i0 + row, vis = i < a.tq ? att_visible(a, i) : 0;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1 && !gq) break;
    for (int64_t j0 = 0; j0 < jmax; j0 += TILE) {
      __syncthreads();
      load_bf16(ks, kn, k, j0, TILE, D, a.tk);
      load_bf16(vs, vn, v, j0, TILE, DV, a.tk);
      __syncthreads();
      warp_gemm<true>(sw, TILE, qw, D, ks, D, TILE, D, false);   /* S = Q K^T */
      warp_gemm<true>(dpw, TILE, dow, DV, vs, DV, TILE, DV, false); /* dP = dO V^T */
      __syncwarp();
      float li = lrow[row], di = drow[row], part = 0;
      for (int c = h * TILE / 2; c < (h + 1) * TILE / 2; c++) {
        float p = j0 + c < vis ? expf(sw[r * TILE + c] * scale - li) : 0.0f, dp = dpw[r * TILE + c];
        if (pass == 0)
          part += p * dp;
        else
          dsw[r * TILE + c] = __float2bfloat16(scale * p * (dp - di));
      }
      if (pass == 0) {
        part += __shfl_xor_sync(0xffffffffu, part, 1);
        if (h == 0) drow[row] = di + part;
      }
      __syncwarp();
      if (pass == 1) warp_gemm<false>(dqw, D, dsw, TILE, ks, D, D, TILE, true); /* dQ += dS K */
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < ROWS; e += blockDim.x)
    if (i0 + e < a.tq) dsum[n * a.tq + i0 + e] = drow[e];
  if (gq)
    for (int e = threadIdx.x; e < ROWS * D; e += blockDim.x) {
      int rr = e / D, c = e % D;
      if (i0 + rr < a.tq) gq[(n * a.tq + i0 + rr) * D + c] = dq_all[rr * D + c];
    }
}

/* ---- backward 2: dV = P^T dO, dK = dS^T Q (blocks of key rows) ---- */

static size_t dkv_bytes(int d, int dv) {
  return piece(ROWS * d * 2) + piece(ROWS * dv * 2) + piece(TILE * d * 2) + piece(TILE * dv * 2) + 2 * piece(TILE * 4) +
         2 * piece(WARPS * 16 * TILE * 4) + 2 * piece(WARPS * 16 * TILE * 2) + piece(WARPS * 16 * d * 4) +
         piece(WARPS * 16 * dv * 4);
}

__global__ void __launch_bounds__(WARPS * 32) attention_dkv_bf16_kernel(float *gk, float *gv, const float *gout,
                                                                        const float *lse, const float *dsum, att_opnd q,
                                                                        att_opnd k, att_opnd v, att_dims a,
                                                                        float scale) {
  WMMA_SHARED(smem);
  int D = (int)a.d, DV = (int)a.dv, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int64_t n = blockIdx.x, j0 = (int64_t)blockIdx.y * ROWS;
  unsigned char *at = smem;
  bf16 *ks = (bf16 *)at;
  at += piece(ROWS * D * 2);
  bf16 *vs = (bf16 *)at;
  at += piece(ROWS * DV * 2);
  bf16 *qs = (bf16 *)at;
  at += piece(TILE * D * 2);
  bf16 *dos = (bf16 *)at;
  at += piece(TILE * DV * 2);
  float *lt = (float *)at;
  at += piece(TILE * 4);
  float *dt = (float *)at;
  at += piece(TILE * 4);
  float *s_all = (float *)at;
  at += piece(WARPS * 16 * TILE * 4);
  float *dp_all = (float *)at;
  at += piece(WARPS * 16 * TILE * 4);
  bf16 *p_all = (bf16 *)at;
  at += piece(WARPS * 16 * TILE * 2);
  bf16 *ds_all = (bf16 *)at;
  at += piece(WARPS * 16 * TILE * 2);
  float *dk_all = (float *)at;
  at += piece(WARPS * 16 * D * 4);
  float *dv_all = (float *)at;
  float *sw = s_all + warp * 16 * TILE, *dpw = dp_all + warp * 16 * TILE;
  float *dkw = dk_all + warp * 16 * D, *dvw = dv_all + warp * 16 * DV;
  bf16 *pw = p_all + warp * 16 * TILE, *dsw = ds_all + warp * 16 * TILE, *kw = ks + warp * 16 * D,
       *vw = vs + warp * 16 * DV;

  const float *qn = opnd_at<float>(q, n), *kn = opnd_at<float>(k, n), *vn = opnd_at<float>(v, n);
  load_bf16(ks, kn, k, j0, ROWS, D, a.tk);
  load_bf16(vs, vn, v, j0, ROWS, DV, a.tk);
  for (int e = threadIdx.x; e < WARPS * 16 * D; e += blockDim.x) dk_all[e] = 0;
  for (int e = threadIdx.x; e < WARPS * 16 * DV; e += blockDim.x) dv_all[e] = 0;
  int r = lane >> 1, h = lane & 1;
  int64_t j = j0 + warp * 16 + r;
  int64_t imin = a.causal ? (j0 - a.shift > 0 ? j0 - a.shift : 0) : 0;
  for (int64_t i0 = imin; i0 < a.tq; i0 += TILE) {
    __syncthreads();
    load_bf16(qs, qn, q, i0, TILE, D, a.tq);
    load_bf16_flat(dos, gout + n * a.tq * DV, i0, TILE, DV, a.tq);
    for (int e = threadIdx.x; e < TILE; e += blockDim.x) {
      lt[e] = i0 + e < a.tq ? lse[n * a.tq + i0 + e] : 0.0f;
      dt[e] = i0 + e < a.tq ? dsum[n * a.tq + i0 + e] : 0.0f;
    }
    __syncthreads();
    warp_gemm<true>(sw, TILE, kw, D, qs, D, TILE, D, false);    /* S^T = K Q^T */
    warp_gemm<true>(dpw, TILE, vw, DV, dos, DV, TILE, DV, false); /* dP^T = V dO^T */
    __syncwarp();
    for (int c = h * TILE / 2; c < (h + 1) * TILE / 2; c++) {
      int64_t qi = i0 + c;
      bool seen = qi < a.tq && j < a.tk && j < att_visible(a, qi);
      float p = seen ? expf(sw[r * TILE + c] * scale - lt[c]) : 0.0f;
      pw[r * TILE + c] = __float2bfloat16(p);
      dsw[r * TILE + c] = __float2bfloat16(scale * p * (dpw[r * TILE + c] - dt[c]));
    }
    __syncwarp();
    warp_gemm<false>(dvw, DV, pw, TILE, dos, DV, DV, TILE, true); /* dV += P^T dO */
    warp_gemm<false>(dkw, D, dsw, TILE, qs, D, D, TILE, true);    /* dK += dS^T Q */
  }
  __syncthreads();
  for (int e = threadIdx.x; e < ROWS * D && gk; e += blockDim.x) {
    int rr = e / D, c = e % D;
    if (j0 + rr < a.tk) gk[(n * a.tk + j0 + rr) * D + c] = dk_all[rr * D + c];
  }
  for (int e = threadIdx.x; e < ROWS * DV && gv; e += blockDim.x) {
    int rr = e / DV, c = e % DV;
    if (j0 + rr < a.tk) gv[(n * a.tk + j0 + rr) * DV + c] = dv_all[rr * DV + c];
  }
}

/* ---- launching ---- */

template <typename K>
static int prepare(K kernel, size_t bytes, const att_dims &a, int64_t rows, const char *what) {
  if (bytes > mtt_cuda_smem_limit())
    return mtt_fail(MTT_ERR_SHAPE, "%s: head dims %lld and %lld need %zu bytes of shared memory, the device has %zu", what,
                    (long long)a.d, (long long)a.dv, bytes, mtt_cuda_smem_limit());
  if (a.n > 0x7fffffff || (rows + ROWS - 1) / ROWS > 65535)
    return mtt_fail(MTT_ERR_SHAPE, "%s: %lld heads of %lld rows are too many for one launch", what, (long long)a.n,
                    (long long)rows);
  if (bytes <= 48 * 1024) return 0;
  return mtt_cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes), what);
}

int mtt_cuda_attention_bf16(mtt_tensor *out, mtt_tensor *lse, const mtt_tensor *q, const mtt_tensor *k,
                            const mtt_tensor *v, int causal, double scale) {
  att_dims a = dims_of(q, k, v, causal);
  if (a.n == 0 || a.tq == 0) return 0;
  size_t bytes = fwd_bytes((int)a.d, (int)a.dv);
  int rc = prepare(attention_fwd_bf16_kernel, bytes, a, a.tq, "attention");
  if (rc) return rc;
  return mtt_cuda_launch("attention", attention_fwd_bf16_kernel, dim3((unsigned)a.n, (unsigned)((a.tq + ROWS - 1) / ROWS)),
                         dim3(WARPS * 32), bytes, (float *)mtt_data_ptr(out), (float *)mtt_data_ptr(lse), opnd_of(q),
                         opnd_of(k), opnd_of(v), a, (float)scale);
}

int mtt_cuda_attention_backward_bf16(mtt_tensor *gq, mtt_tensor *gk, mtt_tensor *gv, const mtt_tensor *gout,
                                     const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v,
                                     const mtt_tensor *lse, int causal, double scale) {
  att_dims a = dims_of(q, k, v, causal);
  size_t bq = dq_bytes((int)a.d, (int)a.dv), bkv = dkv_bytes((int)a.d, (int)a.dv);
  int rc = prepare(attention_dq_bf16_kernel, bq, a, a.tq, "attention backward");
  if (!rc) rc = prepare(attention_dkv_bf16_kernel, bkv, a, a.tk, "attention backward");
  if (rc) return rc;
  float *dsum = (float *)mtt_cuda_scratch(sizeof(float) * (size_t)(a.n * a.tq + 1), "attention backward");
  if (!dsum) return mtt_last_error_code();
  rc = mtt_cuda_launch("attention backward", attention_dq_bf16_kernel,
                       dim3((unsigned)a.n, (unsigned)((a.tq + ROWS - 1) / ROWS)), dim3(WARPS * 32), bq,
                       gq ? (float *)mtt_data_ptr(gq) : (float *)NULL, dsum, (const float *)mtt_data_ptr(gout),
                       (const float *)mtt_data_ptr(lse), opnd_of(q), opnd_of(k), opnd_of(v), a, (float)scale);
  if (!rc && (gk || gv))
    rc = mtt_cuda_launch("attention backward", attention_dkv_bf16_kernel,
                         dim3((unsigned)a.n, (unsigned)((a.tk + ROWS - 1) / ROWS)), dim3(WARPS * 32), bkv,
                         gk ? (float *)mtt_data_ptr(gk) : (float *)NULL, gv ? (float *)mtt_data_ptr(gv) : (float *)NULL,
                         (const float *)mtt_data_ptr(gout), (const float *)mtt_data_ptr(lse), (const float *)dsum,
                         opnd_of(q), opnd_of(k), opnd_of(v), a, (float)scale);
  mtt_cuda_free(dsum);
  return rc;
}
