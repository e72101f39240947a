/* nn_cuda.cu: the row-wise network ops on the device: softmax, layer norm, embedding,
 * cross-entropy (fused with its mask), dropout, with the formulas of cpu/nn_cpu.c.
 *
 * A row is one block; its sums go through fixed trees, and sums across rows (layer-norm weight
 * gradients, the loss) through fixed chunks added in order, so results never change from run
 * to run. The embedding gradient adds each vocabulary row's contributions in the cpu's order
 * (positions ascending, after a stable counting sort by id): it is bitwise the cpu's result. */
#include <math.h>

#include "cuda/kernels_cuda.h"
#include "philox.h"

static int row_threads(int64_t n) {
  if (n >= 256) return 256;
  int t = (int)((n + 31) / 32 * 32);
  return t < 32 ? 32 : t;
}

/* rows in grid.x (up to 2^31 - 1) */
static int rows_fit(int64_t rows, const char *op) {
  if (rows > 0x7fffffff) return mtt_fail(MTT_ERR_SHAPE, "%s: %lld rows are too many for one launch", op, (long long)rows);
  return 0;
}

/* ---- softmax and log_softmax ---- */

template <typename T>
__global__ void softmax_kernel(T *y, const T *x, int64_t n, int take_log) {
  __shared__ T buf[32];
  const T *xr = x + blockIdx.x * n;
  T *yr = y + blockIdx.x * n;
  T mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = xr[j] > mx ? xr[j] : mx;
  mx = mtt_cu_block_max(mx, buf);
  T s = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += mtt_cu_exp(xr[j] - mx);
  s = mtt_cu_block_sum(s, buf);
  if (take_log) {
    T l = mtt_cu_log(s);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = (xr[j] - mx) - l;
  } else {
    T inv = 1 / s;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = mtt_cu_exp(xr[j] - mx) * inv;
  }
}

int mtt_cuda_softmax(mtt_tensor *out, const mtt_tensor *x, int take_log) {
  const char *op = take_log ? "log_softmax" : "softmax";
  int64_t n = x->ndim ? x->dims[x->ndim - 1] : 1, rows = n ? x->nelem / n : 0;
  if (rows == 0 || rows_fit(rows, op)) return rows ? mtt_last_error_code() : 0;
  if (x->dtype_id == MTT_F32)
    return mtt_cuda_launch(op, softmax_kernel<float>, dim3((unsigned)rows), dim3(row_threads(n)), 0, (float *)mtt_data_ptr(out),
                           (const float *)mtt_data_ptr(x), n, take_log);
  if (x->dtype_id == MTT_F64)
    return mtt_cuda_launch(op, softmax_kernel<double>, dim3((unsigned)rows), dim3(row_threads(n)), 0,
                           (double *)mtt_data_ptr(out), (const double *)mtt_data_ptr(x), n, take_log);
  return mtt_fail(MTT_ERR_DTYPE, "%s: dtype %s is not supported on cuda", op, mtt_dtype_name(x->dtype_id));
}

template <typename T>
__global__ void softmax_backward_kernel(T *gx, const T *gy, const T *y, int64_t n, int take_log) {
  __shared__ T buf[32];
  int64_t base = blockIdx.x * n;
  T s = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += take_log ? gy[base + j] : gy[base + j] * y[base + j];
  s = mtt_cu_block_sum(s, buf);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
    gx[base + j] = take_log ? gy[base + j] - mtt_cu_exp(y[base + j]) * s : y[base + j] * (gy[base + j] - s);
}

int mtt_cuda_softmax_backward(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *y, int take_log) {
  const char *op = take_log ? "log_softmax" : "softmax";
  int64_t n = y->ndim ? y->dims[y->ndim - 1] : 1, rows = n ? y->nelem / n : 0;
  if (rows == 0 || rows_fit(rows, op)) return rows ? mtt_last_error_code() : 0;
  if (y->dtype_id == MTT_F32)
    return mtt_cuda_launch(op, softmax_backward_kernel<float>, dim3((unsigned)rows), dim3(row_threads(n)), 0,
                           (float *)mtt_data_ptr(gx), (const float *)mtt_data_ptr(gy), (const float *)mtt_data_ptr(y), n,
                           take_log);
  if (y->dtype_id == MTT_F64)
    return mtt_cuda_launch(op, softmax_backward_kernel<double>, dim3((unsigned)rows), dim3(row_threads(n)), 0,
                           (double *)mtt_data_ptr(gx), (const double *)mtt_data_ptr(gy), (const double *)mtt_data_ptr(y),
                           n, take_log);
  return mtt_fail(MTT_ERR_DTYPE, "%s: dtype %s is not supported on cuda", op, mtt_dtype_name(y->dtype_id));
}

/* ---- layer norm ---- */

template <typename T>
__global__ void layer_norm_kernel(T *y, T *mean, T *rstd, const T *x, const T *w, const T *b, int64_t c, T eps) {
  __shared__ T buf[32];
  const T *xr = x + blockIdx.x * c;
  T *yr = y + blockIdx.x * c;
  T s = 0;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) s += xr[j];
  T mu = mtt_cu_block_sum(s, buf) / (T)c, v = 0;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) v += (xr[j] - mu) * (xr[j] - mu);
  T inv = 1 / sqrt(mtt_cu_block_sum(v, buf) / (T)c + eps);
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = mu;
    rstd[blockIdx.x] = inv;
  }
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    T h = (xr[j] - mu) * inv;
    if (w) h = h * w[j];
    if (b) h = h + b[j];
    yr[j] = h;
  }
}

int mtt_cuda_layer_norm(mtt_tensor *out, mtt_tensor *mean, mtt_tensor *rstd, const mtt_tensor *x, const mtt_tensor *w,
                        const mtt_tensor *b, double eps) {
  int64_t c = x->dims[x->ndim - 1], rows = c ? x->nelem / c : 0;
  if (rows == 0 || rows_fit(rows, "layer_norm")) return rows ? mtt_last_error_code() : 0;
#define LN_LAUNCH(T)                                                                                                 \
  mtt_cuda_launch("layer_norm", layer_norm_kernel<T>, dim3((unsigned)rows), dim3(row_threads(c)), 0,               \
                  (T *)mtt_data_ptr(out), (T *)mtt_data_ptr(mean), (T *)mtt_data_ptr(rstd), (const T *)mtt_data_ptr(x), \
                  w ? (const T *)mtt_data_ptr(w) : (const T *)NULL, b ? (const T *)mtt_data_ptr(b) : (const T *)NULL, c, \
                  (T)eps)
  if (x->dtype_id == MTT_F32) return LN_LAUNCH(float);
  if (x->dtype_id == MTT_F64) return LN_LAUNCH(double);
#undef LN_LAUNCH
  return mtt_fail(MTT_ERR_DTYPE, "layer_norm: dtype %s is not supported on cuda", mtt_dtype_name(x->dtype_id));
}

/* gx per row: gx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat)). */
template <typename T>
__global__ void layer_norm_gx_kernel(T *gx, const T *gy, const T *x, const T *w, const T *mean, const T *rstd, int64_t c) {
  __shared__ T buf[32];
  int64_t base = blockIdx.x * c;
  T mu = mean[blockIdx.x], inv = rstd[blockIdx.x], sg = 0, sgx = 0;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    T gj = w ? gy[base + j] * w[j] : gy[base + j];
    sg += gj;
    sgx += gj * ((x[base + j] - mu) * inv);
  }
  sg = mtt_cu_block_sum(sg, buf) / (T)c;
  sgx = mtt_cu_block_sum(sgx, buf) / (T)c;
  for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
    T gj = w ? gy[base + j] * w[j] : gy[base + j];
    gx[base + j] = inv * (gj - sg - ((x[base + j] - mu) * inv) * sgx);
  }
}

/* gw, gb partial sums over a chunk of rows, rows in order: part[chunk][0 or 1][c]. */
template <typename T>
__global__ void layer_norm_gwb_kernel(T *part, const T *gy, const T *x, const T *mean, const T *rstd, int64_t rows,
                                      int64_t c, int64_t chunk) {
  int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= c) return;
  int64_t r0 = blockIdx.y * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
  T pw = 0, pb = 0;
  for (int64_t r = r0; r < r1; r++) {
    T g = gy[r * c + j];
    pw += g * ((x[r * c + j] - mean[r]) * rstd[r]);
    pb += g;
  }
  part[(blockIdx.y * 2) * c + j] = pw;
  part[(blockIdx.y * 2 + 1) * c + j] = pb;
}

template <typename T>
__global__ void layer_norm_gwb_finish_kernel(T *gw, T *gb, const T *part, int64_t c, int chunks) {
  int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= c) return;
  T sw = 0, sb = 0;
  for (int k = 0; k < chunks; k++) {
    sw += part[(k * 2) * c + j];
    sb += part[(k * 2 + 1) * c + j];
  }
  if (gw) gw[j] = sw;
  if (gb) gb[j] = sb;
}

template <typename T>
static int layer_norm_backward_typed(mtt_tensor *gx, mtt_tensor *gw, mtt_tensor *gb, const mtt_tensor *gy,
                                     const mtt_tensor *x, const mtt_tensor *w, const mtt_tensor *mean,
                                     const mtt_tensor *rstd) {
  int64_t c = x->dims[x->ndim - 1], rows = c ? x->nelem / c : 0;
  const T *gys = (const T *)mtt_data_ptr(gy), *xs = (const T *)mtt_data_ptr(x);
  const T *ms = (const T *)mtt_data_ptr(mean), *rs = (const T *)mtt_data_ptr(rstd);
  int rc = 0;
  if (gx && rows)
    rc = mtt_cuda_launch("layer_norm backward", layer_norm_gx_kernel<T>, dim3((unsigned)rows), dim3(row_threads(c)), 0,
                         (T *)mtt_data_ptr(gx), gys, xs, w ? (const T *)mtt_data_ptr(w) : (const T *)NULL, ms, rs, c);
  if (rc || (!gw && !gb) || c == 0) return rc;
  if (rows == 0) {
    if (gw && (rc = mtt_cuda_fill(gw, 0.0))) return rc;
    return gb ? mtt_cuda_fill(gb, 0.0) : 0;
  }
  /* chunks of rows from the shape alone: about 64k threads in all, 32 rows per chunk at least */
  int64_t want = (65536 + c - 1) / c, most = (rows + 31) / 32;
  int chunks = (int)(want < most ? want : most);
  if (chunks < 1) chunks = 1;
  if (chunks > 4096) chunks = 4096;
  int64_t chunk = (rows + chunks - 1) / chunks;
  chunks = (int)((rows + chunk - 1) / chunk);
  T *part = (T *)mtt_cuda_scratch(sizeof(T) * 2 * (size_t)c * (size_t)chunks, "layer_norm backward");
  if (!part) return mtt_last_error_code();
  rc = mtt_cuda_launch("layer_norm backward", layer_norm_gwb_kernel<T>, dim3((unsigned)((c + 255) / 256), (unsigned)chunks),
                       dim3(256), 0, part, gys, xs, ms, rs, rows, c, chunk);
  if (!rc)
    rc = mtt_cuda_launch("layer_norm backward", layer_norm_gwb_finish_kernel<T>, mtt_cuda_blocks(c, 256), dim3(256), 0,
                         gw ? (T *)mtt_data_ptr(gw) : (T *)NULL, gb ? (T *)mtt_data_ptr(gb) : (T *)NULL, (const T *)part, c,
                         chunks);
  mtt_cuda_free(part);
  return rc;
}

int mtt_cuda_layer_norm_backward(mtt_tensor *gx, mtt_tensor *gw, mtt_tensor *gb, const mtt_tensor *gy,
                                 const mtt_tensor *x, const mtt_tensor *w, const mtt_tensor *mean,
                                 const mtt_tensor *rstd) {
  if (x->nelem / (x->dims[x->ndim - 1] ? x->dims[x->ndim - 1] : 1) > 0x7fffffff)
    return mtt_fail(MTT_ERR_SHAPE, "layer_norm: %s has too many rows for one launch", mtt_tshape(x));
  if (x->dtype_id == MTT_F32) return layer_norm_backward_typed<float>(gx, gw, gb, gy, x, w, mean, rstd);
  if (x->dtype_id == MTT_F64) return layer_norm_backward_typed<double>(gx, gw, gb, gy, x, w, mean, rstd);
  return mtt_fail(MTT_ERR_DTYPE, "layer_norm: dtype %s is not supported on cuda", mtt_dtype_name(x->dtype_id));
}

/* ---- embedding ---- */

template <typename T>
__global__ void embedding_kernel(T *y, const T *w, const int32_t *ids, int64_t n, int64_t c) {
  int64_t total = n * c;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = e / c, j = e - r * c;
    y[e] = w[(int64_t)ids[r] * c + j];
  }
}

static dim3 stride_grid(int64_t n) {
  int64_t blocks = (n + 255) / 256, most = (int64_t)mtt_cuda_sm_count() * 8;
  return dim3((unsigned)(blocks < most ? blocks : most));
}

int mtt_cuda_embedding(mtt_tensor *out, const mtt_tensor *weight, const mtt_tensor *idx) {
  int64_t v = weight->dims[0], c = weight->dims[1], n = idx->nelem, pos;
  int32_t bad;
  const int32_t *ids = (const int32_t *)mtt_data_ptr(idx);
  int found = mtt_cuda_find_bad_index(ids, n, v, 0, 0, &pos, &bad, "embedding");
  if (found < 0) return found;
  if (found)
    return mtt_fail(MTT_ERR_INDEX, "embedding: index %d (at position %lld of indices %s) is out of range for %lld rows "
                    "(weight %s)", bad, (long long)pos + 1, mtt_tshape(idx), (long long)v, mtt_tshape(weight));
  if (n * c == 0) return 0;
  if (weight->dtype_id == MTT_F32)
    return mtt_cuda_launch("embedding", embedding_kernel<float>, stride_grid(n * c), dim3(256), 0, (float *)mtt_data_ptr(out),
                           (const float *)mtt_data_ptr(weight), ids, n, c);
  if (weight->dtype_id == MTT_F64)
    return mtt_cuda_launch("embedding", embedding_kernel<double>, stride_grid(n * c), dim3(256), 0,
                           (double *)mtt_data_ptr(out), (const double *)mtt_data_ptr(weight), ids, n, c);
  return mtt_fail(MTT_ERR_DTYPE, "embedding: dtype %s is not supported on cuda", mtt_dtype_name(weight->dtype_id));
}

/* ---- sums by index in a fixed order: a stable counting sort, then one pass per run ---- */

#define SORT_CHUNK 1024 /* rows ranked per block */

/* Block = chunk of rows: rank[r] = earlier rows of the chunk with the same id; hist[chunk][id]
 * counts the chunk's rows per id. */
__global__ void __launch_bounds__(1024) rank_kernel(int32_t *rank, int32_t *hist, const int32_t *ids, int64_t n, int64_t m) {
  __shared__ int32_t chunk_ids[SORT_CHUNK];
  int64_t r0 = (int64_t)blockIdx.x * SORT_CHUNK, r = r0 + threadIdx.x;
  int len = (int)(n - r0 < SORT_CHUNK ? n - r0 : SORT_CHUNK);
  if ((int)threadIdx.x < len) chunk_ids[threadIdx.x] = ids[r];
  __syncthreads();
  if ((int)threadIdx.x >= len) return;
  int32_t id = chunk_ids[threadIdx.x], before = 0;
  for (int q = 0; q < (int)threadIdx.x; q++) before += chunk_ids[q] == id;
  rank[r] = before;
  atomicAdd(&hist[blockIdx.x * m + id], 1);
}

/* Per id: base[chunk][id] = rows of earlier chunks with that id; total[id] = all of them. */
__global__ void chunk_base_kernel(int32_t *base, int32_t *total, const int32_t *hist, int chunks, int64_t m) {
  int64_t id = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (id >= m) return;
  int32_t run = 0;
  for (int c = 0; c < chunks; c++) {
    base[c * m + id] = run;
    run += hist[c * m + id];
  }
  total[id] = run;
}

/* One block: start[id] = exclusive prefix sum of total (each thread a run of ids). */
__global__ void __launch_bounds__(1024) id_start_kernel(int32_t *start, const int32_t *total, int64_t m) {
  __shared__ int32_t sums[1024];
  int64_t per = (m + blockDim.x - 1) / blockDim.x, i0 = threadIdx.x * per, i1 = i0 + per < m ? i0 + per : m;
  int32_t s = 0;
  for (int64_t i = i0; i < i1; i++) s += total[i];
  sums[threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.x == 0)
    for (int t = 0, run = 0; t < (int)blockDim.x; t++) {
      int32_t v = sums[t];
      sums[t] = run;
      run += v;
    }
  __syncthreads();
  s = sums[threadIdx.x];
  for (int64_t i = i0; i < i1; i++) {
    start[i] = s;
    s += total[i];
  }
}

/* Row r goes to its sorted position: ids ascending, rows ascending within an id. */
__global__ void place_kernel(uint32_t *sorted_ids, int32_t *sorted_rows, const int32_t *ids, const int32_t *rank,
                             const int32_t *base, const int32_t *start, int64_t n, int64_t m) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < n; r += (int64_t)gridDim.x * blockDim.x) {
    int32_t id = ids[r];
    int64_t pos = (int64_t)start[id] + base[(r / SORT_CHUNK) * m + id] + rank[r];
    sorted_ids[pos] = (uint32_t)id;
    sorted_rows[pos] = (int32_t)r;
  }
}

/* The first position of each run of equal ids (in sorted order) sums the run, positions
 * ascending, into its row of g: the cpu's order of additions. Blocks of other positions return
 * at once. */
template <typename T>
__global__ void segment_sum_kernel(T *g, const T *src, const uint32_t *ids, const int32_t *rows, int64_t n,
                                   int64_t outer, int64_t m, int64_t j_count, int64_t inner) {
  int64_t pos = blockIdx.x;
  uint32_t id = ids[pos];
  if (pos > 0 && ids[pos - 1] == id) return;
  int64_t end = pos + 1;
  while (end < n && ids[end] == id) end++;
  for (int64_t e = blockIdx.y * (int64_t)blockDim.x + threadIdx.x; e < outer * inner; e += (int64_t)gridDim.y * blockDim.x) {
    int64_t o = e / inner, i = e - o * inner;
    T acc = 0;
    for (int64_t q = pos; q < end; q++) acc += src[(o * j_count + rows[q]) * inner + i];
    g[(o * m + id) * inner + i] = acc;
  }
}

/* The fallback when the per-chunk histograms would be too large: one thread per (o, i) walks
 * j ascending (the cpu's loop; parallel only over outer * inner). */
template <typename T>
__global__ void index_add_columns_kernel(T *g, const T *src, const int32_t *ids, int64_t outer, int64_t m,
                                         int64_t j_count, int64_t inner) {
  int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (e >= outer * inner) return;
  int64_t o = e / inner, i = e - o * inner;
  for (int64_t j = 0; j < j_count; j++) g[(o * m + ids[j]) * inner + i] += src[(o * j_count + j) * inner + i];
}

/* g [outer, m, inner] = 0, then g[o, ids[j], i] += src[o, j, i] for j ascending (ids 1-D of
 * length j_count, all in [0, m)). Shared by the embedding gradient and index_select's. */
int mtt_cuda_index_add_sorted(void *g, const void *src, int dtype, const int32_t *ids, int64_t j_count, int64_t outer,
                              int64_t m, int64_t inner, const char *what) {
  size_t es = mtt_dtype_size(dtype);
  if (dtype != MTT_F32 && dtype != MTT_F64)
    return mtt_fail(MTT_ERR_DTYPE, "%s: gradient dtype %s is not supported", what, mtt_dtype_name(dtype));
  int rc = mtt_cuda_check(cudaMemsetAsync(g, 0, (size_t)(outer * m * inner) * es, mtt_cuda_stream()), what);
  if (rc || j_count == 0 || outer * inner == 0) return rc;
  if (j_count > 0x7fffffff || m > 0x7fffffff)
    return mtt_fail(MTT_ERR_SHAPE, "%s: %lld indices into %lld rows are too many", what, (long long)j_count, (long long)m);
  int chunks = (int)((j_count + SORT_CHUNK - 1) / SORT_CHUNK);
  if ((int64_t)chunks * m > ((int64_t)1 << 26)) {
    if (dtype == MTT_F32)
      return mtt_cuda_launch(what, index_add_columns_kernel<float>, mtt_cuda_blocks(outer * inner, 256), dim3(256), 0,
                             (float *)g, (const float *)src, ids, outer, m, j_count, inner);
    return mtt_cuda_launch(what, index_add_columns_kernel<double>, mtt_cuda_blocks(outer * inner, 256), dim3(256), 0,
                           (double *)g, (const double *)src, ids, outer, m, j_count, inner);
  }
  size_t words = (size_t)j_count * 3 + (size_t)chunks * (size_t)m * 2 + (size_t)m * 2;
  int32_t *scratch = (int32_t *)mtt_cuda_scratch(words * 4, what);
  if (!scratch) return mtt_last_error_code();
  int32_t *rank = scratch, *sorted_rows = rank + j_count, *hist = sorted_rows + j_count;
  uint32_t *sorted_ids = (uint32_t *)(hist + (size_t)chunks * m);
  int32_t *base = (int32_t *)(sorted_ids + j_count), *total = base + (size_t)chunks * m, *start = total + m;
  rc = mtt_cuda_check(cudaMemsetAsync(hist, 0, (size_t)chunks * (size_t)m * 4, mtt_cuda_stream()), what);
  if (!rc) rc = mtt_cuda_launch(what, rank_kernel, dim3(chunks), dim3(SORT_CHUNK), 0, rank, hist, ids, j_count, m);
  if (!rc) rc = mtt_cuda_launch(what, chunk_base_kernel, mtt_cuda_blocks(m, 256), dim3(256), 0, base, total, (const int32_t *)hist, chunks, m);
  if (!rc) rc = mtt_cuda_launch(what, id_start_kernel, dim3(1), dim3(1024), 0, start, (const int32_t *)total, m);
  if (!rc)
    rc = mtt_cuda_launch(what, place_kernel, stride_grid(j_count), dim3(256), 0, sorted_ids, sorted_rows, ids,
                         (const int32_t *)rank, (const int32_t *)base, (const int32_t *)start, j_count, m);
  int64_t tiles = (outer * inner + 255) / 256;
  dim3 grid((unsigned)j_count, (unsigned)(tiles < 65535 ? tiles : 65535));
  if (!rc && dtype == MTT_F32)
    rc = mtt_cuda_launch(what, segment_sum_kernel<float>, grid, dim3(256), 0, (float *)g, (const float *)src,
                         (const uint32_t *)sorted_ids, (const int32_t *)sorted_rows, j_count, outer, m, j_count, inner);
  else if (!rc)
    rc = mtt_cuda_launch(what, segment_sum_kernel<double>, grid, dim3(256), 0, (double *)g, (const double *)src,
                         (const uint32_t *)sorted_ids, (const int32_t *)sorted_rows, j_count, outer, m, j_count, inner);
  mtt_cuda_free(scratch);
  return rc;
}

int mtt_cuda_embedding_backward(mtt_tensor *gw, const mtt_tensor *gy, const mtt_tensor *idx) {
  return mtt_cuda_index_add_sorted(mtt_data_ptr(gw), mtt_data_ptr(gy), gw->dtype_id, (const int32_t *)mtt_data_ptr(idx),
                                   idx->nelem, 1, gw->dims[0], gw->dims[1], "embedding backward");
}

/* ---- cross-entropy ---- */

/* Weight of row r: 0 if it does not count, else its mask value (1 without a mask). */
__device__ __forceinline__ double ce_weight(const void *mask, int mdt, const int32_t *tg, int64_t r, int64_t ignore) {
  if (tg[r] == ignore) return 0;
  return mask ? mtt_cu_load(mask, mdt, r) : 1.0;
}

template <typename T>
__global__ void cross_entropy_kernel(T *lse, double *row_loss, const T *x, const int32_t *tg, const void *mask, int mdt,
                                     int64_t v, int64_t ignore) {
  __shared__ T buf[32];
  int64_t r = blockIdx.x;
  double wr = ce_weight(mask, mdt, tg, r, ignore);
  if (wr == 0) {
    if (threadIdx.x == 0) {
      lse[r] = 0;
      row_loss[r] = 0;
    }
    return;
  }
  const T *xr = x + r * v;
  T mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) mx = xr[j] > mx ? xr[j] : mx;
  mx = mtt_cu_block_max(mx, buf);
  T s = 0;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) s += mtt_cu_exp(xr[j] - mx);
  s = mtt_cu_block_sum(s, buf);
  if (threadIdx.x == 0) {
    T l = mx + mtt_cu_log(s);
    lse[r] = l;
    row_loss[r] = wr * ((double)l - (double)xr[tg[r]]);
  }
}

/* One block: the mean over counted rows, the sums in a fixed order. loss may be NULL (count
 * only, for the backward). */
__global__ void __launch_bounds__(1024) ce_total_kernel(void *loss, int loss_dt, double *count_out, const double *row_loss, const int32_t *tg,
                                const void *mask, int mdt, int64_t rows, int64_t ignore) {
  __shared__ double buf[32];
  double total = 0, count = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    if (row_loss) total += row_loss[r];
    count += ce_weight(mask, mdt, tg, r, ignore) != 0;
  }
  total = mtt_cu_block_sum(total, buf);
  count = mtt_cu_block_sum(count, buf);
  if (threadIdx.x == 0) {
    if (loss) mtt_cu_store(loss, loss_dt, 0, count ? total / count : 0.0);
    if (count_out) *count_out = count;
  }
}

int mtt_cuda_cross_entropy(mtt_tensor *loss, mtt_tensor *lse, const mtt_tensor *logits, const mtt_tensor *targets,
                           const mtt_tensor *mask, int64_t ignore_index) {
  int64_t v = logits->ndim ? logits->dims[logits->ndim - 1] : 1, rows = targets->nelem, pos;
  int32_t bad;
  const int32_t *tg = (const int32_t *)mtt_data_ptr(targets);
  if (rows_fit(rows, "cross_entropy")) return mtt_last_error_code();
  int found = mtt_cuda_find_bad_index(tg, rows, v, ignore_index, 1, &pos, &bad, "cross_entropy");
  if (found < 0) return found;
  if (found)
    return mtt_fail(MTT_ERR_INDEX, "cross_entropy: target %d (at position %lld of targets %s) is out of range for %lld "
                    "classes (logits %s)", bad, (long long)pos + 1, mtt_tshape(targets), (long long)v, mtt_tshape(logits));
  if (logits->dtype_id != MTT_F32 && logits->dtype_id != MTT_F64)
    return mtt_fail(MTT_ERR_DTYPE, "cross_entropy: dtype %s is not supported on cuda", mtt_dtype_name(logits->dtype_id));
  const void *m = mask ? mtt_data_ptr(mask) : NULL;
  int mdt = mask ? mask->dtype_id : MTT_F32;
  double *row_loss = (double *)mtt_cuda_scratch(sizeof(double) * (size_t)(rows ? rows : 1), "cross_entropy");
  if (!row_loss) return mtt_last_error_code();
  int rc = 0;
  if (rows && logits->dtype_id == MTT_F32)
    rc = mtt_cuda_launch("cross_entropy", cross_entropy_kernel<float>, dim3((unsigned)rows), dim3(row_threads(v)), 0,
                         (float *)mtt_data_ptr(lse), row_loss, (const float *)mtt_data_ptr(logits), tg, m, mdt, v,
                         ignore_index);
  else if (rows)
    rc = mtt_cuda_launch("cross_entropy", cross_entropy_kernel<double>, dim3((unsigned)rows), dim3(row_threads(v)), 0,
                         (double *)mtt_data_ptr(lse), row_loss, (const double *)mtt_data_ptr(logits), tg, m, mdt, v,
                         ignore_index);
  if (!rc)
    rc = mtt_cuda_launch("cross_entropy", ce_total_kernel, dim3(1), dim3(1024), 0, mtt_data_ptr(loss), loss->dtype_id,
                         (double *)NULL, (const double *)row_loss, tg, m, mdt, rows, ignore_index);
  mtt_cuda_free(row_loss);
  return rc;
}

template <typename T>
__global__ void cross_entropy_backward_kernel(T *gx, const T *gy, const double *count, const T *x, const T *lse,
                                              const int32_t *tg, const void *mask, int mdt, int64_t v, int64_t ignore) {
  int64_t r = blockIdx.x;
  T *o = gx + r * v;
  double wr = ce_weight(mask, mdt, tg, r, ignore);
  if (wr == 0) {
    for (int64_t j = threadIdx.x; j < v; j += blockDim.x) o[j] = 0;
    return;
  }
  double scale = *count ? (double)gy[0] / *count : 0.0;
  const T *xr = x + r * v;
  T l = lse[r], f = (T)(wr * scale);
  int64_t t = tg[r];
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    T e = mtt_cu_exp(xr[j] - l) * f;
    o[j] = j == t ? e - f : e;
  }
}

int mtt_cuda_cross_entropy_backward(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *logits,
                                    const mtt_tensor *lse, const mtt_tensor *targets, const mtt_tensor *mask,
                                    int64_t ignore_index) {
  int64_t v = logits->ndim ? logits->dims[logits->ndim - 1] : 1, rows = targets->nelem;
  if (rows == 0) return 0;
  if (rows_fit(rows, "cross_entropy")) return mtt_last_error_code();
  const int32_t *tg = (const int32_t *)mtt_data_ptr(targets);
  const void *m = mask ? mtt_data_ptr(mask) : NULL;
  int mdt = mask ? mask->dtype_id : MTT_F32;
  double *count = (double *)mtt_cuda_scratch(sizeof(double), "cross_entropy backward");
  if (!count) return mtt_last_error_code();
  int rc = mtt_cuda_launch("cross_entropy backward", ce_total_kernel, dim3(1), dim3(1024), 0, (void *)NULL, 0, count,
                           (const double *)NULL, tg, m, mdt, rows, ignore_index);
  if (!rc && logits->dtype_id == MTT_F32)
    rc = mtt_cuda_launch("cross_entropy backward", cross_entropy_backward_kernel<float>, dim3((unsigned)rows),
                         dim3(row_threads(v)), 0, (float *)mtt_data_ptr(gx), (const float *)mtt_data_ptr(gy),
                         (const double *)count, (const float *)mtt_data_ptr(logits), (const float *)mtt_data_ptr(lse), tg,
                         m, mdt, v, ignore_index);
  else if (!rc && logits->dtype_id == MTT_F64)
    rc = mtt_cuda_launch("cross_entropy backward", cross_entropy_backward_kernel<double>, dim3((unsigned)rows),
                         dim3(row_threads(v)), 0, (double *)mtt_data_ptr(gx), (const double *)mtt_data_ptr(gy),
                         (const double *)count, (const double *)mtt_data_ptr(logits), (const double *)mtt_data_ptr(lse),
                         tg, m, mdt, v, ignore_index);
  else if (!rc)
    rc = mtt_fail(MTT_ERR_DTYPE, "cross_entropy: dtype %s is not supported on cuda", mtt_dtype_name(logits->dtype_id));
  mtt_cuda_free(count);
  return rc;
}

/* ---- dropout ---- */

/* keep[i] = uniform01(philox(seed, offset + i)[0]) > p, as the integer compare of cpu/nn_cpu.c */
template <typename T>
__global__ void dropout_kernel(T *y, const T *x, uint32_t edge, T scale, uint64_t seed, uint64_t offset, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint32_t w[4];
    mtt_philox_inline(seed, offset + (uint64_t)i, w);
    y[i] = (w[0] >> 8) >= edge ? x[i] * scale : (T)0;
  }
}

int mtt_cuda_dropout(mtt_tensor *out, const mtt_tensor *x, double p, uint64_t seed, uint64_t offset) {
  int64_t n = x->nelem;
  if (n == 0) return 0;
  double scale = 1.0 / (1.0 - p);
  uint32_t edge = (uint32_t)floor(p * 16777216.0);
  if (x->dtype_id == MTT_F32)
    return mtt_cuda_launch("dropout", dropout_kernel<float>, stride_grid(n), dim3(256), 0, (float *)mtt_data_ptr(out),
                           (const float *)mtt_data_ptr(x), edge, (float)scale, seed, offset, n);
  if (x->dtype_id == MTT_F64)
    return mtt_cuda_launch("dropout", dropout_kernel<double>, stride_grid(n), dim3(256), 0, (double *)mtt_data_ptr(out),
                           (const double *)mtt_data_ptr(x), edge, scale, seed, offset, n);
  return mtt_fail(MTT_ERR_DTYPE, "dropout: dtype %s is not supported on cuda", mtt_dtype_name(x->dtype_id));
}
