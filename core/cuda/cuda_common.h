/*
 * cuda_common.h: what the .cu files of the cuda backend share: the CUDA headers (or the CPU
 * emulation of emulate.h when MTT_CUDA_EMULATE is defined), error reporting through mtt_fail,
 * one kernel-launch helper, strided layouts and dtype access on the device.
 *
 * Every CUDA call goes through mtt_cuda_check(), which turns a failure into an mtt error (a
 * value, never an abort). Every kernel starts through mtt_cuda_launch() on the backend's one
 * stream, so all device work is ordered and the caching allocator can reuse a block as soon as
 * the host frees it.
 */
#ifndef MTT_CUDA_COMMON_H
#define MTT_CUDA_COMMON_H

#ifdef MTT_CUDA_EMULATE
#include "cuda/emulate.h"
#define MTT_DYNAMIC_SHARED(type, name) type *name = reinterpret_cast<type *>(mtt_emu_dynamic_shared())
#else
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>
#define MTT_DYNAMIC_SHARED(type, name)                      \
  extern __shared__ __align__(16) unsigned char mtt_smem_[]; \
  type *name = reinterpret_cast<type *>(mtt_smem_)
#endif

#include <stdint.h>

extern "C" {
#include "backend.h"
#include "internal.h"
}

#include "cuda/cuda_backend.h"

/* ---- the backend's state (backend_cuda.cu) ---- */
cudaStream_t mtt_cuda_stream(void);
cublasHandle_t mtt_cuda_blas(void);
int mtt_cuda_sm_count(void);
size_t mtt_cuda_smem_limit(void); /* dynamic shared memory a block may opt in to */
/* A small pinned host buffer for reading back scalars (flags, sums); 256 bytes. */
void *mtt_cuda_host_scratch(void);

/* 0, or a negative mtt_status with a message naming what failed. */
int mtt_cuda_check(cudaError_t e, const char *what);
int mtt_cuda_blas_check(cublasStatus_t s, const char *what);
/* Waits for the stream; reports an asynchronous kernel failure as an error of `what`. */
int mtt_cuda_sync(const char *what);
/* Device scratch from the caching allocator (freed with mtt_cuda_free). */
void *mtt_cuda_scratch(size_t nbytes, const char *what);
/* Drops the bf16 packings matmul keeps (matmul_cuda.cu). */
void mtt_cuda_pack_cache_clear(void);

/* Kernel launch on the backend's stream. Arguments convert to the kernel's parameter types. An
 * empty grid launches nothing. */
template <typename... P, typename... A>
static inline int mtt_cuda_launch(const char *what, void (*kernel)(P...), dim3 grid, dim3 block, size_t shared,
                                  A... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return 0;
  if (grid.y > 65535 || grid.z > 65535)
    return mtt_fail(MTT_ERR_SHAPE, "cuda: %s: grid %ux%ux%u is too large", what, grid.x, grid.y, grid.z);
#ifdef MTT_CUDA_EMULATE
  cudaError_t e = mtt_emu_launch(grid, block, shared, [&]() { kernel(static_cast<P>(args)...); });
  return mtt_cuda_check(e, what);
#else
  kernel<<<grid, block, shared, mtt_cuda_stream()>>>(static_cast<P>(args)...);
  return mtt_cuda_check(cudaGetLastError(), what);
#endif
}

/* Blocks of `threads` covering n items (at least one block; the caller skips n == 0). */
static inline dim3 mtt_cuda_blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 0x7fffffff) b = 0x7fffffff;
  return dim3((unsigned)b);
}

/* ---- strided layouts ---- */

/* A tensor's layout as kernels see it: dims, strides and offset in elements. */
struct mtt_cu_layout {
  int ndim;
  int64_t dims[MTT_MAX_DIMS];
  int64_t strides[MTT_MAX_DIMS];
  int64_t offset;
};

/* Layouts of n tensors of one shape with dims merged where every tensor allows it (and size-1
 * dims dropped), so that kernels decompose an index over as few dims as possible. */
static inline void mtt_cu_layouts(int n, const mtt_tensor *const *ts, mtt_cu_layout *out) {
  const mtt_tensor *t0 = ts[0];
  int nd = 0;
  int64_t dims[MTT_MAX_DIMS], strides[8][MTT_MAX_DIMS];
  for (int d = 0; d < t0->ndim; d++) {
    if (t0->dims[d] == 1) continue;
    bool merge = nd > 0;
    for (int k = 0; k < n && merge; k++) merge = strides[k][nd - 1] == ts[k]->strides[d] * t0->dims[d];
    if (merge) {
      dims[nd - 1] *= t0->dims[d];
      for (int k = 0; k < n; k++) strides[k][nd - 1] = ts[k]->strides[d];
    } else {
      dims[nd] = t0->dims[d];
      for (int k = 0; k < n; k++) strides[k][nd] = ts[k]->strides[d];
      nd++;
    }
  }
  for (int k = 0; k < n; k++) {
    out[k].ndim = nd;
    out[k].offset = ts[k]->offset;
    for (int d = 0; d < nd; d++) {
      out[k].dims[d] = dims[d];
      out[k].strides[d] = strides[k][d];
    }
  }
}

static inline bool mtt_cu_is_flat(const mtt_cu_layout &l) { return l.ndim == 0 || (l.ndim == 1 && l.strides[0] == 1); }
static inline bool mtt_cu_is_scalar(const mtt_cu_layout &l) {
  for (int d = 0; d < l.ndim; d++)
    if (l.strides[d] != 0) return false;
  return true;
}

/* Element offset of logical (row-major) index i. I is the index type: 32-bit division is much
 * cheaper on the GPU, so kernels use uint32_t when every size fits. */
template <typename I>
__device__ __forceinline__ int64_t mtt_cu_offset(const mtt_cu_layout &l, I i) {
  int64_t off = l.offset;
  for (int d = l.ndim - 1; d >= 0; d--) {
    I size = (I)l.dims[d], q = i / size;
    off += (int64_t)(i - q * size) * l.strides[d];
    i = q;
  }
  return off;
}

/* ---- dtypes on the device ---- */

__device__ __forceinline__ double mtt_cu_load(const void *p, int dtype, int64_t i) {
  switch (dtype) {
    case MTT_F32: return ((const float *)p)[i];
    case MTT_F64: return ((const double *)p)[i];
    case MTT_I32: return ((const int32_t *)p)[i];
    case MTT_BF16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case MTT_F16: return __half2float(((const __half *)p)[i]);
  }
  return 0;
}

__device__ __forceinline__ void mtt_cu_store(void *p, int dtype, int64_t i, double v) {
  switch (dtype) {
    case MTT_F32: ((float *)p)[i] = (float)v; break;
    case MTT_F64: ((double *)p)[i] = v; break;
    case MTT_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case MTT_BF16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16((float)v); break;
    case MTT_F16: ((__half *)p)[i] = __float2half((float)v); break;
  }
}

/* Base pointer of a tensor's storage (kernels add the offset through layouts). */
static inline void *mtt_cu_base(const mtt_tensor *t) { return t->storage->data; }

template <typename T>
__device__ __forceinline__ bool mtt_cu_isnan(T x) {
  return x != x;
}

/* exp and log in the precision of T. */
__device__ __forceinline__ float mtt_cu_exp(float x) { return expf(x); }
__device__ __forceinline__ double mtt_cu_exp(double x) { return exp(x); }
__device__ __forceinline__ float mtt_cu_log(float x) { return logf(x); }
__device__ __forceinline__ double mtt_cu_log(double x) { return log(x); }

/* ---- block reductions in a fixed order (deterministic; blockDim.x a multiple of 32) ---- */

template <typename T>
__device__ __forceinline__ T mtt_cu_warp_sum(T v) {
  for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
  return v;
}
template <typename T>
__device__ __forceinline__ T mtt_cu_warp_max(T v) {
  for (int m = 16; m > 0; m >>= 1) {
    T o = __shfl_xor_sync(0xffffffffu, v, m);
    v = o > v ? o : v;
  }
  return v;
}

/* Sum over the block, the same order every run; every thread gets the result. `buf` holds 32
 * values of T in shared memory. */
template <typename T>
__device__ T mtt_cu_block_sum(T v, T *buf) {
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  v = mtt_cu_warp_sum(v);
  __syncthreads(); /* buf may still be read by a previous call */
  if (lane == 0) buf[warp] = v;
  __syncthreads();
  v = lane < warps ? buf[lane] : (T)0;
  return mtt_cu_warp_sum(v);
}

template <typename T>
__device__ T mtt_cu_block_max(T v, T *buf) {
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  v = mtt_cu_warp_max(v);
  __syncthreads();
  if (lane == 0) buf[warp] = v;
  __syncthreads();
  v = lane < warps ? buf[lane] : buf[0];
  return mtt_cu_warp_max(v);
}

/* Checks that every i32 index lies in [0, size) on the device (one sync): 0, or the position of
 * the first bad one in *pos and its value in *value, returning 1; < 0 on a CUDA error. */
int mtt_cuda_find_bad_index(const int32_t *idx, int64_t n, int64_t size, int64_t ignore, int use_ignore,
                            int64_t *pos, int32_t *value, const char *what);

#endif
