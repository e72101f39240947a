/* reduce_cuda.cu: sum / max / argmax over one dim, and the sum of squares behind gradient
 * clipping. The input is [outer, size, inner]; sums accumulate in double (as on the cpu).
 *
 * Deterministic: each output element is cut into a number of chunks that depends only on the
 * shape, each chunk is reduced in a fixed order (a thread walks its elements in order, a block
 * combines its threads by a fixed tree) and the chunks are combined in order. max picks by a
 * total order (NaN above everything, then the larger value, then the lower index), so its
 * result is the cpu's "first maximum, NaN wins" whatever the order. */
#include <math.h>

#include "cuda/kernels_cuda.h"

enum { R_SUM, R_SUMSQ, R_MAX };

struct partial {
  double v;
  int64_t i;
};

/* b better than a as the maximum (NaN first, then value, then lower index). */
__device__ __forceinline__ bool max_better(const partial &b, const partial &a) {
  bool bn = b.v != b.v, an = a.v != a.v;
  if (bn != an) return bn;
  if (!bn && b.v != a.v) return b.v > a.v;
  return b.i < a.i;
}

template <int OP>
__device__ __forceinline__ partial combine(partial a, partial b) {
  if (OP == R_MAX) return max_better(b, a) ? b : a;
  a.v += b.v;
  return a;
}

template <int OP>
__device__ __forceinline__ partial identity() {
  partial p;
  p.v = OP == R_MAX ? -INFINITY : 0.0;
  p.i = OP == R_MAX ? INT64_MAX : 0;
  return p;
}

template <typename T, int OP>
__device__ __forceinline__ partial element(const T *x, int64_t at, int64_t k) {
  partial p;
  double v = (double)x[at];
  p.v = OP == R_SUMSQ ? v * v : v;
  p.i = k;
  return p;
}

/* A block's partials combined in a fixed tree; thread 0 gets the result. */
template <int OP>
__device__ partial block_combine(partial p) {
  __shared__ partial buf[256];
  buf[threadIdx.x] = p;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) buf[threadIdx.x] = combine<OP>(buf[threadIdx.x], buf[threadIdx.x + s]);
    __syncthreads();
  }
  return buf[0];
}

/* inner == 1: block (c, row) reduces chunk c of a contiguous row into part[row * chunks + c]. */
template <typename T, int OP>
__global__ void row_reduce_kernel(const T *x, int64_t size, int64_t chunk, int chunks, partial *part) {
  int64_t row = blockIdx.y, k0 = blockIdx.x * chunk, k1 = k0 + chunk < size ? k0 + chunk : size;
  const T *xr = x + row * size;
  partial acc = identity<OP>();
  for (int64_t k = k0 + threadIdx.x; k < k1; k += blockDim.x) acc = combine<OP>(acc, element<T, OP>(xr, k, k));
  acc = block_combine<OP>(acc);
  if (threadIdx.x == 0) part[row * chunks + blockIdx.x] = acc;
}

/* inner > 1: thread (o*inner + i, chunk c) walks k over its chunk (coalesced along i). */
template <typename T, int OP>
__global__ void col_reduce_kernel(const T *x, int64_t outer, int64_t size, int64_t inner, int64_t chunk, int chunks,
                                  partial *part) {
  int64_t oi = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (oi >= outer * inner) return;
  int64_t o = oi / inner, i = oi % inner, k0 = blockIdx.y * chunk, k1 = k0 + chunk < size ? k0 + chunk : size;
  partial acc = identity<OP>();
  for (int64_t k = k0; k < k1; k++) acc = combine<OP>(acc, element<T, OP>(x, (o * size + k) * inner + i, k));
  part[oi * chunks + blockIdx.y] = acc;
}

/* Chunks of each output combined in order; the results stored in out's dtype and idx. */
template <int OP>
__global__ void finish_kernel(const partial *part, int chunks, int64_t n, void *out, int out_dt, int32_t *idx,
                              double *sum_out) {
  int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (r >= n) return;
  partial acc = part[r * chunks];
  for (int c = 1; c < chunks; c++) acc = combine<OP>(acc, part[r * chunks + c]);
  if (sum_out) sum_out[r] = acc.v;
  if (out) mtt_cu_store(out, out_dt, r, acc.v);
  if (idx) idx[r] = (int32_t)acc.i;
}

/* Chunks per output from the shape alone (never the device), so results never change. */
static int plan_chunks(int64_t outputs, int64_t size, int64_t min_chunk, int64_t target_work) {
  int64_t want = (target_work + outputs - 1) / (outputs ? outputs : 1), most = (size + min_chunk - 1) / min_chunk;
  int64_t c = want < most ? want : most;
  if (c > 4096) c = 4096;
  return c < 1 ? 1 : (int)c;
}

template <typename T, int OP>
static int reduce_typed(const T *x, int64_t outer, int64_t size, int64_t inner, void *out, int out_dt, int32_t *idx,
                        double *sum_out, const char *what) {
  int64_t outputs = outer * inner;
  if (outputs == 0) return 0;
  int chunks;
  if (inner == 1)
    chunks = plan_chunks(outputs, size, 4096, 1024); /* blocks of 256 threads */
  else
    chunks = plan_chunks(outputs, size, 64, 65536); /* threads */
  int64_t chunk = (size + chunks - 1) / chunks;
  if (chunk < 1) chunk = 1;
  partial *part = (partial *)mtt_cuda_scratch(sizeof(partial) * (size_t)(outputs * chunks), what);
  if (!part) return mtt_last_error_code();
  int rc;
  if (inner == 1) {
    if (outputs > 65535) { /* rows go in grid.y */
      rc = 0;
      for (int64_t r0 = 0; r0 < outputs && !rc; r0 += 65535) {
        int64_t rows = outputs - r0 < 65535 ? outputs - r0 : 65535;
        rc = mtt_cuda_launch(what, row_reduce_kernel<T, OP>, dim3((unsigned)chunks, (unsigned)rows), dim3(256), 0, x + r0 * size,
                             size, chunk, chunks, part + r0 * chunks);
      }
    } else {
      rc = mtt_cuda_launch(what, row_reduce_kernel<T, OP>, dim3((unsigned)chunks, (unsigned)outputs), dim3(256), 0, x, size,
                           chunk, chunks, part);
    }
  } else {
    rc = mtt_cuda_launch(what, col_reduce_kernel<T, OP>, dim3((unsigned)((outputs + 255) / 256), (unsigned)chunks), dim3(256), 0,
                         x, outer, size, inner, chunk, chunks, part);
  }
  if (!rc)
    rc = mtt_cuda_launch(what, finish_kernel<OP>, mtt_cuda_blocks(outputs, 256), dim3(256), 0, (const partial *)part, chunks,
                         outputs, out, out_dt, idx, sum_out);
  mtt_cuda_free(part);
  return rc;
}

template <typename T>
static int reduce_op(int op, const T *x, int64_t outer, int64_t size, int64_t inner, void *out, int out_dt, int32_t *idx) {
  if (op == MTT_R_SUM) return reduce_typed<T, R_SUM>(x, outer, size, inner, out, out_dt, NULL, NULL, "sum");
  return reduce_typed<T, R_MAX>(x, outer, size, inner, op == MTT_R_ARGMAX ? NULL : out, out_dt, idx, NULL, "max");
}

int mtt_cuda_reduce(int op, mtt_tensor *out, mtt_tensor *idx, const mtt_tensor *x, int dim) {
  int64_t outer = 1, inner = 1, size = x->ndim ? x->dims[dim] : 1;
  for (int d = 0; d < dim; d++) outer *= x->dims[d];
  for (int d = dim + 1; d < x->ndim; d++) inner *= x->dims[d];
  if (size == 0) {
    if (op != MTT_R_SUM) return mtt_fail(MTT_ERR_SHAPE, "max: cannot reduce over an empty dim of %s", mtt_tshape(x));
    return out ? mtt_cuda_fill(out, 0.0) : 0;
  }
  void *o = out ? mtt_data_ptr(out) : NULL;
  int odt = out ? out->dtype_id : MTT_F32;
  int32_t *ix = idx && op != MTT_R_SUM ? (int32_t *)mtt_data_ptr(idx) : NULL;
  switch (x->dtype_id) {
    case MTT_F32: return reduce_op<float>(op, (const float *)mtt_data_ptr(x), outer, size, inner, o, odt, ix);
    case MTT_F64: return reduce_op<double>(op, (const double *)mtt_data_ptr(x), outer, size, inner, o, odt, ix);
    case MTT_I32:
      if (op != MTT_R_SUM) return reduce_op<int32_t>(op, (const int32_t *)mtt_data_ptr(x), outer, size, inner, o, odt, ix);
  }
  return mtt_fail(MTT_ERR_DTYPE, "reduce: dtype %s is not supported on cuda", mtt_dtype_name(x->dtype_id));
}

/* Queues the sum of squares of x (contiguous) into the device double *d; no wait. */
static int queue_sum_squares(const mtt_tensor *x, double *d) {
  if (x->nelem == 0) return mtt_cuda_check(cudaMemsetAsync(d, 0, sizeof(double), mtt_cuda_stream()), "clip_grad_norm");
  if (x->dtype_id == MTT_F32)
    return reduce_typed<float, R_SUMSQ>((const float *)mtt_data_ptr(x), 1, x->nelem, 1, NULL, 0, NULL, d, "clip_grad_norm");
  if (x->dtype_id == MTT_F64)
    return reduce_typed<double, R_SUMSQ>((const double *)mtt_data_ptr(x), 1, x->nelem, 1, NULL, 0, NULL, d, "clip_grad_norm");
  return mtt_fail(MTT_ERR_DTYPE, "clip_grad_norm: dtype %s is not supported", mtt_dtype_name(x->dtype_id));
}

/* One thread adds the n sums in list order, from 0.0, as the host loop over sum_squares does. */
__global__ void ordered_sum_kernel(const double *sums, int n, double *out) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  double s = 0;
  for (int i = 0; i < n; i++) s += sums[i];
  *out = s;
}

/* sums[0..n) on the device, their ordered total in sums[n]; one copy down, one wait. */
static int read_total(double *sums, int n, double *out) {
  double *host = (double *)mtt_cuda_host_scratch();
  int rc = mtt_cuda_launch("clip_grad_norm", ordered_sum_kernel, dim3(1), dim3(32), 0, (const double *)sums, n, sums + n);
  if (!rc)
    rc = mtt_cuda_check(cudaMemcpyAsync(host, sums + n, sizeof(double), cudaMemcpyDeviceToHost, mtt_cuda_stream()),
                        "clip_grad_norm");
  if (!rc) rc = mtt_cuda_sync("clip_grad_norm");
  if (!rc) *out = *host;
  return rc;
}

int mtt_cuda_sum_squares(const mtt_tensor *x, double *out) {
  *out = 0;
  if (x->nelem == 0) return 0;
  double *d = (double *)mtt_cuda_scratch(2 * sizeof(double), "clip_grad_norm");
  if (!d) return mtt_last_error_code();
  int rc = queue_sum_squares(x, d);
  if (!rc) rc = read_total(d, 1, out);
  mtt_cuda_free(d);
  return rc;
}

/* Every tensor's reduction is queued (each into its own slot), then one ordered total comes
 * down: one wait for the whole list. The bits equal n mtt_cuda_sum_squares calls added in
 * order on the host (0 + s0 + s1 + ..., in double, the same per-tensor reductions). */
int mtt_cuda_sum_squares_list(int n, const mtt_tensor *const *xs, double *out) {
  *out = 0;
  if (n <= 0) return 0;
  double *sums = (double *)mtt_cuda_scratch(((size_t)n + 1) * sizeof(double), "clip_grad_norm");
  if (!sums) return mtt_last_error_code();
  int rc = 0;
  for (int i = 0; i < n && !rc; i++) rc = queue_sum_squares(xs[i], sums + i);
  if (!rc) rc = read_total(sums, n, out);
  mtt_cuda_free(sums);
  return rc;
}
