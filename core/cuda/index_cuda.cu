/* index_cuda.cu: gather / index_select, their adjoint (scatter-add) and top-k on the device.
 *
 * Tensors are seen as [O, M, I] around the indexed dim, as on the cpu. scatter_add adds the
 * rows j in ascending order for every gradient element: a per-element index walks j in one
 * thread per column; a 1-D index sorts its values once and sums each run (index_add_sorted),
 * so repeated indices accumulate deterministically. top-k sorts each row by a key that orders
 * NaN above every number; the stable sort keeps ties at the lower index (the cpu's rule). */
#include <math.h>

#include "cuda/kernels_cuda.h"
#ifndef MTT_CUDA_EMULATE
#include <cub/cub.cuh>
#endif

static void split_dims(const mtt_tensor *t, int dim, int64_t *outer, int64_t *inner) {
  int64_t o = 1, i = 1;
  for (int d = 0; d < dim; d++) o *= t->dims[d];
  for (int d = dim + 1; d < t->ndim; d++) i *= t->dims[d];
  *outer = o;
  *inner = i;
}

static dim3 stride_grid(int64_t n) {
  int64_t blocks = (n + 255) / 256, most = (int64_t)mtt_cuda_sm_count() * 8;
  return dim3((unsigned)(blocks < most ? blocks : most));
}

static int check_indices(const mtt_tensor *index, int64_t size, int dim, const char *op) {
  int64_t pos;
  int32_t bad;
  int found = mtt_cuda_find_bad_index((const int32_t *)mtt_data_ptr(index), index->nelem, size, 0, 0, &pos, &bad, op);
  if (found <= 0) return found;
  return mtt_fail(MTT_ERR_INDEX, "%s: index %d out of range for dim %d of size %lld (index %s)", op, (int)bad, dim + 1,
                  (long long)size, mtt_tshape(index));
}

/* ---- gather ---- */

template <typename W>
__global__ void gather_kernel(W *out, const W *x, const int32_t *idx, int per_element, int64_t O, int64_t M, int64_t J,
                              int64_t I) {
  int64_t total = O * J * I;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = e % I, oj = e / I, j = oj % J, o = oj / J;
    int64_t m = per_element ? idx[e] : idx[j];
    out[e] = x[(o * M + m) * I + i];
  }
}

int mtt_cuda_gather(mtt_tensor *out, const mtt_tensor *x, const mtt_tensor *index, int dim, const char *op) {
  int64_t O, I, M = x->dims[dim], J = out->dims[dim];
  split_dims(out, dim, &O, &I);
  int rc = check_indices(index, M, dim, op);
  if (rc) return rc;
  int per_element = index->ndim == out->ndim;
  int64_t n = out->nelem;
  if (n == 0) return 0;
  const int32_t *idx = (const int32_t *)mtt_data_ptr(index);
  switch (mtt_dtype_size(x->dtype_id)) {
    case 2:
      return mtt_cuda_launch(op, gather_kernel<uint16_t>, stride_grid(n), dim3(256), 0, (uint16_t *)mtt_data_ptr(out),
                             (const uint16_t *)mtt_data_ptr(x), idx, per_element, O, M, J, I);
    case 4:
      return mtt_cuda_launch(op, gather_kernel<uint32_t>, stride_grid(n), dim3(256), 0, (uint32_t *)mtt_data_ptr(out),
                             (const uint32_t *)mtt_data_ptr(x), idx, per_element, O, M, J, I);
    case 8:
      return mtt_cuda_launch(op, gather_kernel<uint64_t>, stride_grid(n), dim3(256), 0, (uint64_t *)mtt_data_ptr(out),
                             (const uint64_t *)mtt_data_ptr(x), idx, per_element, O, M, J, I);
  }
  return mtt_fail(MTT_ERR_DTYPE, "%s: dtype %s is not supported on cuda", op, mtt_dtype_name(x->dtype_id));
}

/* ---- scatter_add ---- */

/* Per-element index: one thread per (o, i) column adds its rows j in order. */
template <typename T>
__global__ void scatter_columns_kernel(T *gx, const T *gy, const int32_t *idx, int64_t O, int64_t M, int64_t J,
                                       int64_t I) {
  int64_t oi = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (oi >= O * I) return;
  int64_t o = oi / I, i = oi % I;
  for (int64_t j = 0; j < J; j++) {
    int64_t src = (o * J + j) * I + i;
    gx[(o * M + idx[src]) * I + i] += gy[src];
  }
}

int mtt_cuda_scatter_add(mtt_tensor *gx, const mtt_tensor *gy, const mtt_tensor *index, int dim, const char *op) {
  int64_t O, I, M = gx->dims[dim], J = gy->dims[dim];
  split_dims(gy, dim, &O, &I);
  int rc = check_indices(index, M, dim, op);
  if (rc) return rc;
  if (gx->dtype_id != MTT_F32 && gx->dtype_id != MTT_F64)
    return mtt_fail(MTT_ERR_DTYPE, "%s: gradient dtype %s is not supported", op, mtt_dtype_name(gx->dtype_id));
  const int32_t *idx = (const int32_t *)mtt_data_ptr(index);
  if (index->ndim != gy->ndim) /* 1-D: one index per row j */
    return mtt_cuda_index_add_sorted(mtt_data_ptr(gx), mtt_data_ptr(gy), gx->dtype_id, idx, J, O, M, I, op);
  if ((rc = mtt_cuda_fill(gx, 0.0)) || O * I == 0) return rc;
  if (gx->dtype_id == MTT_F32)
    return mtt_cuda_launch(op, scatter_columns_kernel<float>, mtt_cuda_blocks(O * I, 256), dim3(256), 0,
                           (float *)mtt_data_ptr(gx), (const float *)mtt_data_ptr(gy), idx, O, M, J, I);
  return mtt_cuda_launch(op, scatter_columns_kernel<double>, mtt_cuda_blocks(O * I, 256), dim3(256), 0,
                         (double *)mtt_data_ptr(gx), (const double *)mtt_data_ptr(gy), idx, O, M, J, I);
}

/* ---- top-k ---- */

/* An unsigned key in the order of the values, NaN (any sign) above +inf. */
__device__ __forceinline__ uint64_t order_key(const void *x, int dtype, int64_t at) {
  if (dtype == MTT_F32) {
    float v = ((const float *)x)[at];
    if (v != v) return 0xffffffffull;
    uint32_t u;
    memcpy(&u, &v, 4);
    return (u & 0x80000000u) ? (uint64_t)(~u) : (uint64_t)(u | 0x80000000u);
  }
  if (dtype == MTT_F64) {
    double v = ((const double *)x)[at];
    if (v != v) return ~0ull;
    uint64_t u;
    memcpy(&u, &v, 8);
    return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
  }
  return (uint64_t)((uint32_t)((const int32_t *)x)[at] ^ 0x80000000u);
}

/* Row r = (o, i) of x [O, M, I] into keys[r * M + m], positions m alongside; offsets[r] = r*M.
 * For the largest, keys are inverted, so that one ascending stable sort serves both orders (and
 * equal values keep the lower position first either way). */
__global__ void topk_keys_kernel(uint64_t *keys, int32_t *pos, int *offsets, const void *x, int dtype, int largest,
                                 int64_t O, int64_t M, int64_t I) {
  int64_t total = O * M * I;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = e / M, m = e % M, o = r / I, i = r % I;
    uint64_t key = order_key(x, dtype, (o * M + m) * I + i);
    keys[e] = largest ? ~key : key;
    pos[e] = (int32_t)m;
    if (m == 0) offsets[r] = (int)(r * M);
    if (r == O * I - 1 && m == 0) offsets[r + 1] = (int)((r + 1) * M);
  }
}

/* The first k of each sorted row back into [O, k, I], values with their original bits. */
template <typename W>
__global__ void topk_out_kernel(W *values, int32_t *indices, const W *x, const int32_t *sorted, int64_t O, int64_t M,
                                int64_t K, int64_t I) {
  int64_t total = O * K * I;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = e % I, ok = e / I, q = ok % K, o = ok / K;
    int32_t m = sorted[(o * I + i) * M + q];
    values[e] = x[(o * M + m) * I + i];
    indices[e] = m;
  }
}

int mtt_cuda_topk(mtt_tensor *values, mtt_tensor *indices, const mtt_tensor *x, int dim, int largest) {
  int64_t O, I, M = x->dims[dim], k = values->dims[dim];
  split_dims(x, dim, &O, &I);
  int64_t rows = O * I, n = rows * M;
  if (k == 0 || rows == 0) return 0;
  if (n > 0x7fffffff) return mtt_fail(MTT_ERR_SHAPE, "topk: %s has too many elements for one sort", mtt_tshape(x));
  size_t temp_bytes = 0;
  cudaError_t e = cub::DeviceSegmentedRadixSort::SortPairs((void *)NULL, temp_bytes, (const uint64_t *)NULL,
                                                           (uint64_t *)NULL, (const int32_t *)NULL, (int32_t *)NULL,
                                                           (int)n, (int)rows, (const int *)NULL, (const int *)NULL, 0,
                                                           64, mtt_cuda_stream());
  int rc = mtt_cuda_check(e, "topk");
  if (rc) return rc;
  size_t bytes = (size_t)n * (8 + 8 + 4 + 4) + (size_t)(rows + 1) * 4 + temp_bytes + 64;
  char *scratch = (char *)mtt_cuda_scratch(bytes, "topk");
  if (!scratch) return mtt_last_error_code();
  uint64_t *keys = (uint64_t *)scratch, *keys_out = keys + n;
  int32_t *pos = (int32_t *)(keys_out + n), *pos_out = pos + n;
  int *offsets = (int *)(pos_out + n);
  void *temp = (void *)(((uintptr_t)(offsets + rows + 1) + 15) & ~(uintptr_t)15);
  rc = mtt_cuda_launch("topk", topk_keys_kernel, stride_grid(n), dim3(256), 0, keys, pos, offsets,
                       (const void *)mtt_data_ptr(x), x->dtype_id, largest, O, M, I);
  if (!rc)
    rc = mtt_cuda_check(cub::DeviceSegmentedRadixSort::SortPairs(temp, temp_bytes, (const uint64_t *)keys, keys_out,
                                                                 (const int32_t *)pos, pos_out, (int)n, (int)rows,
                                                                 (const int *)offsets, (const int *)offsets + 1, 0, 64,
                                                                 mtt_cuda_stream()),
                        "topk");
  int64_t total = O * k * I;
  int32_t *iout = (int32_t *)mtt_data_ptr(indices);
  if (!rc) switch (mtt_dtype_size(x->dtype_id)) {
      case 4:
        rc = mtt_cuda_launch("topk", topk_out_kernel<uint32_t>, stride_grid(total), dim3(256), 0, (uint32_t *)mtt_data_ptr(values),
                             iout, (const uint32_t *)mtt_data_ptr(x), (const int32_t *)pos_out, O, M, k, I);
        break;
      default:
        rc = mtt_cuda_launch("topk", topk_out_kernel<uint64_t>, stride_grid(total), dim3(256), 0, (uint64_t *)mtt_data_ptr(values),
                             iout, (const uint64_t *)mtt_data_ptr(x), (const int32_t *)pos_out, O, M, k, I);
    }
  mtt_cuda_free(scratch);
  return rc;
}
