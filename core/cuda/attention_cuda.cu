/*
 * attention_cuda.cu: fused scaled dot-product attention on the device, flash-attention style:
 * keys and values stream through shared memory in tiles and each query row keeps a running
 * max and sum (online softmax), so no T x T matrix is ever stored. The forward saves only the
 * row logsumexp; the backward recomputes the probabilities from it.
 *
 * This file is the exact path (f32 or f64 arithmetic on CUDA cores, one thread per query row in
 * the forward, per key row in the backward). With MEDIUM float32 matmul precision, f32 inputs
 * whose head dims are multiples of 16 (up to 128) go to the bf16 tensor-core kernels of
 * attention_wmma_cuda.cu instead.
 *
 * The backward needs D_i = sum_j P_ij dP_ij per query row, which the cpu gets from a whole row
 * of P at once. Here one kernel walks each query row's keys twice: once for D_i, once for dQ
 * (dS = P (dP - D_i) scaled, dQ = dS K). A second kernel walks each key's queries for dK and
 * dV. No atomics: every gradient element is summed by one thread in a fixed order.
 */
#include <math.h>

#include "cuda/attention_cuda.h"

#define KEY_TILE 16 /* keys (forward, dQ) or queries (dK, dV) per shared-memory tile */

/* rows x cols of an operand (rows from row0, zero past `limit`) into dst[c * ld + r]
 * (transposed: thread r then reads its own row without bank conflicts) or dst[r * ld + c]. */
template <typename T>
__device__ void load_rows(T *dst, int ld, bool transposed, const T *src, const att_opnd &o, int64_t row0, int rows,
                          int64_t cols, int64_t limit) {
  for (int64_t e = threadIdx.x; e < rows * cols; e += blockDim.x) {
    int64_t r = e / cols, c = e % cols, row = row0 + r;
    T val = row < limit ? src[row * o.rs + c * o.cs] : (T)0;
    if (transposed)
      dst[c * ld + r] = val;
    else
      dst[r * ld + c] = val;
  }
}

/* ---- forward: block (leading index, tile of blockDim.x query rows), thread = query row ---- */

template <typename T>
__global__ void attention_fwd_kernel(T *out, T *lse, att_opnd q, att_opnd k, att_opnd v, att_dims a, T scale) {
  MTT_DYNAMIC_SHARED(T, smem);
  int R = blockDim.x, r = threadIdx.x;
  int64_t n = blockIdx.x, i0 = (int64_t)blockIdx.y * R, i = i0 + r;
  T *qT = smem, *oT = qT + a.d * R, *kt = oT + a.dv * R, *vt = kt + KEY_TILE * a.d;
  const T *qn = opnd_at<T>(q, n), *kn = opnd_at<T>(k, n), *vn = opnd_at<T>(v, n);
  load_rows(qT, R, true, qn, q, i0, R, a.d, a.tq);
  for (int64_t d = 0; d < a.dv; d++) oT[d * R + r] = 0;
  int64_t last = i0 + R - 1 < a.tq - 1 ? i0 + R - 1 : a.tq - 1;
  int64_t jmax = att_visible(a, last), vis = i < a.tq ? att_visible(a, i) : 0;
  T m = -INFINITY, l = 0;
  for (int64_t j0 = 0; j0 < jmax; j0 += KEY_TILE) {
    __syncthreads(); /* the previous tile is no longer read */
    load_rows(kt, (int)a.d, false, kn, k, j0, KEY_TILE, a.d, a.tk);
    load_rows(vt, (int)a.dv, false, vn, v, j0, KEY_TILE, a.dv, a.tk);
    __syncthreads();
    T s[KEY_TILE], tile_max = -INFINITY;
#pragma unroll
    for (int jj = 0; jj < KEY_TILE; jj++) s[jj] = 0;
    for (int64_t d = 0; d < a.d; d++) { /* q[d] read once for the tile's keys */
      T qd = qT[d * R + r];
#pragma unroll
      for (int jj = 0; jj < KEY_TILE; jj++) s[jj] += qd * kt[jj * a.d + d];
    }
#pragma unroll
    for (int jj = 0; jj < KEY_TILE; jj++) {
      s[jj] = j0 + jj < vis ? s[jj] * scale : (T)-INFINITY;
      tile_max = s[jj] > tile_max ? s[jj] : tile_max;
    }
    T m_new = tile_max > m ? tile_max : m;
    if (m_new == (T)-INFINITY) continue; /* nothing visible yet */
    T corr = mtt_cu_exp(m - m_new);
    l *= corr;
#pragma unroll
    for (int jj = 0; jj < KEY_TILE; jj++) {
      s[jj] = mtt_cu_exp(s[jj] - m_new);
      l += s[jj];
    }
    for (int64_t d = 0; d < a.dv; d++) {
      T acc = oT[d * R + r] * corr;
#pragma unroll
      for (int jj = 0; jj < KEY_TILE; jj++) acc += s[jj] * vt[jj * a.dv + d];
      oT[d * R + r] = acc;
    }
    m = m_new;
  }
  if (i >= a.tq) return;
  lse[n * a.tq + i] = l > 0 ? m + mtt_cu_log(l) : (T)-INFINITY;
  T inv = l > 0 ? 1 / l : (T)0;
  for (int64_t d = 0; d < a.dv; d++) out[(n * a.tq + i) * a.dv + d] = oT[d * R + r] * inv;
}

/* ---- backward 1: block (leading index, query tile), thread = query row: D_i, then dQ ---- */

template <typename T>
__global__ void attention_dq_kernel(T *gq, T *dsum, const T *gout, const T *lse, att_opnd q, att_opnd k, att_opnd v,
                                    att_dims a, T scale) {
  MTT_DYNAMIC_SHARED(T, smem);
  int R = blockDim.x, r = threadIdx.x;
  int64_t n = blockIdx.x, i0 = (int64_t)blockIdx.y * R, i = i0 + r;
  T *qT = smem, *doT = qT + a.d * R, *dqT = doT + a.dv * R, *kt = dqT + a.d * R, *vt = kt + KEY_TILE * a.d;
  const T *qn = opnd_at<T>(q, n), *kn = opnd_at<T>(k, n), *vn = opnd_at<T>(v, n);
  load_rows(qT, R, true, qn, q, i0, R, a.d, a.tq);
  for (int64_t e = threadIdx.x; e < R * a.dv; e += blockDim.x) { /* gout is contiguous [n, tq, dv] */
    int64_t rr = e / a.dv, c = e % a.dv;
    doT[c * R + rr] = i0 + rr < a.tq ? gout[(n * a.tq + i0 + rr) * a.dv + c] : (T)0;
  }
  for (int64_t d = 0; d < a.d; d++) dqT[d * R + r] = 0;
  int64_t last = i0 + R - 1 < a.tq - 1 ? i0 + R - 1 : a.tq - 1;
  int64_t jmax = att_visible(a, last), vis = i < a.tq ? att_visible(a, i) : 0;
  T li = i < a.tq ? lse[n * a.tq + i] : (T)0, di = 0;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1 && !gq) break;
    for (int64_t j0 = 0; j0 < jmax; j0 += KEY_TILE) {
      __syncthreads();
      load_rows(kt, (int)a.d, false, kn, k, j0, KEY_TILE, a.d, a.tk);
      load_rows(vt, (int)a.dv, false, vn, v, j0, KEY_TILE, a.dv, a.tk);
      __syncthreads();
      T sc[KEY_TILE], ds[KEY_TILE];
#pragma unroll
      for (int jj = 0; jj < KEY_TILE; jj++) sc[jj] = ds[jj] = 0;
      for (int64_t d = 0; d < a.d; d++) {
        T qd = qT[d * R + r];
#pragma unroll
        for (int jj = 0; jj < KEY_TILE; jj++) sc[jj] += qd * kt[jj * a.d + d];
      }
      for (int64_t d = 0; d < a.dv; d++) { /* dP, kept in ds until dS replaces it */
        T god = doT[d * R + r];
#pragma unroll
        for (int jj = 0; jj < KEY_TILE; jj++) ds[jj] += god * vt[jj * a.dv + d];
      }
#pragma unroll
      for (int jj = 0; jj < KEY_TILE; jj++) {
        T p = j0 + jj < vis ? mtt_cu_exp(sc[jj] * scale - li) : (T)0;
        if (pass == 0) di += p * ds[jj];
        ds[jj] = scale * p * (ds[jj] - di);
      }
      if (pass == 1)
        for (int64_t d = 0; d < a.d; d++) {
          T acc = dqT[d * R + r];
#pragma unroll
          for (int jj = 0; jj < KEY_TILE; jj++) acc += ds[jj] * kt[jj * a.d + d];
          dqT[d * R + r] = acc;
        }
    }
  }
  if (i >= a.tq) return;
  dsum[n * a.tq + i] = di;
  if (gq)
    for (int64_t d = 0; d < a.d; d++) gq[(n * a.tq + i) * a.d + d] = dqT[d * R + r];
}

/* ---- backward 2: block (leading index, key tile), thread = key row: dK and dV ---- */

template <typename T>
__global__ void attention_dkv_kernel(T *gk, T *gv, const T *gout, const T *lse, const T *dsum, att_opnd q, att_opnd k,
                                     att_opnd v, att_dims a, T scale) {
  MTT_DYNAMIC_SHARED(T, smem);
  int R = blockDim.x, r = threadIdx.x;
  int64_t n = blockIdx.x, j0 = (int64_t)blockIdx.y * R, j = j0 + r;
  T *kT = smem, *vT = kT + a.d * R, *dkT = vT + a.dv * R, *dvT = dkT + a.d * R, *qt = dvT + a.dv * R;
  T *dot = qt + KEY_TILE * a.d, *lt = dot + KEY_TILE * a.dv, *dt = lt + KEY_TILE;
  const T *qn = opnd_at<T>(q, n), *kn = opnd_at<T>(k, n), *vn = opnd_at<T>(v, n);
  load_rows(kT, R, true, kn, k, j0, R, a.d, a.tk);
  load_rows(vT, R, true, vn, v, j0, R, a.dv, a.tk);
  for (int64_t d = 0; d < a.d; d++) dkT[d * R + r] = 0;
  for (int64_t d = 0; d < a.dv; d++) dvT[d * R + r] = 0;
  /* causal: query i reaches key j0 when i + shift >= j0 */
  int64_t imin = a.causal ? (j0 - a.shift > 0 ? j0 - a.shift : 0) : 0;
  for (int64_t i0 = imin; i0 < a.tq; i0 += KEY_TILE) {
    __syncthreads();
    load_rows(qt, (int)a.d, false, qn, q, i0, KEY_TILE, a.d, a.tq);
    for (int64_t e = threadIdx.x; e < KEY_TILE * a.dv; e += blockDim.x) {
      int64_t ii = e / a.dv, c = e % a.dv;
      dot[ii * a.dv + c] = i0 + ii < a.tq ? gout[(n * a.tq + i0 + ii) * a.dv + c] : (T)0;
    }
    for (int e = threadIdx.x; e < KEY_TILE; e += blockDim.x) {
      lt[e] = i0 + e < a.tq ? lse[n * a.tq + i0 + e] : (T)0;
      dt[e] = i0 + e < a.tq ? dsum[n * a.tq + i0 + e] : (T)0;
    }
    __syncthreads();
    T p[KEY_TILE], ds[KEY_TILE];
#pragma unroll
    for (int ii = 0; ii < KEY_TILE; ii++) p[ii] = ds[ii] = 0;
    for (int64_t d = 0; d < a.d; d++) { /* scores; k[d] read once for the tile's queries */
      T kd = kT[d * R + r];
#pragma unroll
      for (int ii = 0; ii < KEY_TILE; ii++) p[ii] += qt[ii * a.d + d] * kd;
    }
    for (int64_t d = 0; d < a.dv; d++) { /* dP */
      T vd = vT[d * R + r];
#pragma unroll
      for (int ii = 0; ii < KEY_TILE; ii++) ds[ii] += dot[ii * a.dv + d] * vd;
    }
#pragma unroll
    for (int ii = 0; ii < KEY_TILE; ii++) {
      int64_t qi = i0 + ii;
      bool seen = qi < a.tq && j < a.tk && j < att_visible(a, qi);
      p[ii] = seen ? mtt_cu_exp(p[ii] * scale - lt[ii]) : (T)0;
      ds[ii] = scale * p[ii] * (ds[ii] - dt[ii]);
    }
    for (int64_t d = 0; d < a.dv; d++) {
      T acc = dvT[d * R + r];
#pragma unroll
      for (int ii = 0; ii < KEY_TILE; ii++) acc += p[ii] * dot[ii * a.dv + d];
      dvT[d * R + r] = acc;
    }
    for (int64_t d = 0; d < a.d; d++) {
      T acc = dkT[d * R + r];
#pragma unroll
      for (int ii = 0; ii < KEY_TILE; ii++) acc += ds[ii] * qt[ii * a.d + d];
      dkT[d * R + r] = acc;
    }
  }
  if (j >= a.tk) return;
  if (gk)
    for (int64_t d = 0; d < a.d; d++) gk[(n * a.tk + j) * a.d + d] = dkT[d * R + r];
  if (gv)
    for (int64_t d = 0; d < a.dv; d++) gv[(n * a.tk + j) * a.dv + d] = dvT[d * R + r];
}

/* ---- launching ---- */

/* Rows per block (64, else 32) for a kernel needing per_row elements per row plus `fixed`, as
 * shared memory allows; 0 when even 32 rows do not fit. */
static int rows_per_block(int64_t per_row, int64_t fixed, size_t es, size_t *bytes) {
  for (int rows = 64; rows >= 32; rows /= 2) {
    *bytes = (size_t)(per_row * rows + fixed) * es;
    if (*bytes <= mtt_cuda_smem_limit()) return rows;
  }
  return 0;
}

template <typename K>
static int allow_smem(K kernel, size_t bytes, const char *what) {
  if (bytes <= 48 * 1024) return 0;
  return mtt_cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes), what);
}

static int too_large(const mtt_tensor *q, const mtt_tensor *v) {
  return mtt_fail(MTT_ERR_SHAPE, "attention: head dims of q %s and v %s need more shared memory than the device has",
                  mtt_tshape(q), mtt_tshape(v));
}

static int grid_fits(const att_dims &a, int rows, int64_t t, const char *what) {
  if (a.n > 0x7fffffff || (t + rows - 1) / rows > 65535)
    return mtt_fail(MTT_ERR_SHAPE, "%s: %lld heads of %lld rows are too many for one launch", what, (long long)a.n,
                    (long long)t);
  return 0;
}

template <typename T>
static int attention_exact(mtt_tensor *out, mtt_tensor *lse, const mtt_tensor *q, const mtt_tensor *k,
                           const mtt_tensor *v, int causal, double scale) {
  att_dims a = dims_of(q, k, v, causal);
  size_t bytes;
  int rows = rows_per_block(a.d + a.dv, KEY_TILE * (a.d + a.dv), sizeof(T), &bytes);
  if (!rows) return too_large(q, v);
  if (grid_fits(a, rows, a.tq, "attention")) return mtt_last_error_code();
  int rc = allow_smem(attention_fwd_kernel<T>, bytes, "attention");
  if (rc) return rc;
  return mtt_cuda_launch("attention", attention_fwd_kernel<T>, dim3((unsigned)a.n, (unsigned)((a.tq + rows - 1) / rows)),
                         dim3(rows), bytes, (T *)mtt_data_ptr(out), (T *)mtt_data_ptr(lse), opnd_of(q), opnd_of(k),
                         opnd_of(v), a, (T)scale);
}

template <typename T>
static int attention_backward_exact(mtt_tensor *gq, mtt_tensor *gk, mtt_tensor *gv, const mtt_tensor *gout,
                                    const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v, const mtt_tensor *lse,
                                    int causal, double scale) {
  att_dims a = dims_of(q, k, v, causal);
  size_t bytes_q, bytes_kv;
  int rows_q = rows_per_block(2 * a.d + a.dv, KEY_TILE * (a.d + a.dv), sizeof(T), &bytes_q);
  int rows_kv = rows_per_block(2 * (a.d + a.dv), KEY_TILE * (a.d + a.dv + 2), sizeof(T), &bytes_kv);
  if (!rows_q || !rows_kv) return too_large(q, v);
  if (grid_fits(a, rows_q, a.tq, "attention backward") || grid_fits(a, rows_kv, a.tk, "attention backward"))
    return mtt_last_error_code();
  T *dsum = (T *)mtt_cuda_scratch(sizeof(T) * (size_t)(a.n * a.tq + 1), "attention backward");
  if (!dsum) return mtt_last_error_code();
  int rc = allow_smem(attention_dq_kernel<T>, bytes_q, "attention backward");
  if (!rc) rc = allow_smem(attention_dkv_kernel<T>, bytes_kv, "attention backward");
  if (!rc)
    rc = mtt_cuda_launch("attention backward", attention_dq_kernel<T>,
                         dim3((unsigned)a.n, (unsigned)((a.tq + rows_q - 1) / rows_q)), dim3(rows_q), bytes_q,
                         gq ? (T *)mtt_data_ptr(gq) : (T *)NULL, dsum, (const T *)mtt_data_ptr(gout),
                         (const T *)mtt_data_ptr(lse), opnd_of(q), opnd_of(k), opnd_of(v), a, (T)scale);
  if (!rc && (gk || gv))
    rc = mtt_cuda_launch("attention backward", attention_dkv_kernel<T>,
                         dim3((unsigned)a.n, (unsigned)((a.tk + rows_kv - 1) / rows_kv)), dim3(rows_kv), bytes_kv,
                         gk ? (T *)mtt_data_ptr(gk) : (T *)NULL, gv ? (T *)mtt_data_ptr(gv) : (T *)NULL,
                         (const T *)mtt_data_ptr(gout), (const T *)mtt_data_ptr(lse), (const T *)dsum, opnd_of(q),
                         opnd_of(k), opnd_of(v), a, (T)scale);
  mtt_cuda_free(dsum);
  return rc;
}

/* The tensor-core path takes f32 under MEDIUM precision when the head dims suit its tiles. */
static bool use_wmma(const mtt_tensor *q, const mtt_tensor *v) {
  int nd = q->ndim;
  int64_t d = q->dims[nd - 1], dv = v->dims[nd - 1];
  return q->dtype_id == MTT_F32 && mtt_get_float32_matmul_precision() == MTT_MATMUL_MEDIUM && d % 16 == 0 &&
         dv % 16 == 0 && d > 0 && dv > 0 && d <= 128 && dv <= 128;
}

int mtt_cuda_attention(mtt_tensor *out, mtt_tensor *lse, const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v,
                       int causal, double scale) {
  if (out->nelem == 0 && lse->nelem == 0) return 0;
  if (use_wmma(q, v)) return mtt_cuda_attention_bf16(out, lse, q, k, v, causal, scale);
  if (q->dtype_id == MTT_F32) return attention_exact<float>(out, lse, q, k, v, causal, scale);
  if (q->dtype_id == MTT_F64) return attention_exact<double>(out, lse, q, k, v, causal, scale);
  return mtt_fail(MTT_ERR_DTYPE, "attention: dtype %s is not supported on cuda", mtt_dtype_name(q->dtype_id));
}

int mtt_cuda_attention_backward(mtt_tensor *gq, mtt_tensor *gk, mtt_tensor *gv, const mtt_tensor *gout,
                                const mtt_tensor *q, const mtt_tensor *k, const mtt_tensor *v, const mtt_tensor *lse,
                                int causal, double scale) {
  int nd = q->ndim;
  if (mtt_shape_numel(nd - 2, q->dims) == 0) return 0;
  if (q->dims[nd - 2] == 0 || k->dims[nd - 2] == 0) { /* nothing flows: the gradients are zero */
    int rc = gq ? mtt_cuda_fill(gq, 0.0) : 0;
    if (!rc && gk) rc = mtt_cuda_fill(gk, 0.0);
    if (!rc && gv) rc = mtt_cuda_fill(gv, 0.0);
    return rc;
  }
  if (use_wmma(q, v)) return mtt_cuda_attention_backward_bf16(gq, gk, gv, gout, q, k, v, lse, causal, scale);
  if (q->dtype_id == MTT_F32) return attention_backward_exact<float>(gq, gk, gv, gout, q, k, v, lse, causal, scale);
  if (q->dtype_id == MTT_F64) return attention_backward_exact<double>(gq, gk, gv, gout, q, k, v, lse, causal, scale);
  return mtt_fail(MTT_ERR_DTYPE, "attention: dtype %s is not supported on cuda", mtt_dtype_name(q->dtype_id));
}
