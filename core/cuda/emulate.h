/*
 * emulate.h: just enough of CUDA (runtime, cuBLAS, CUB, WMMA, kernel launches) to run the cuda
 * backend's own source on the CPU, so that CI machines without a GPU test every kernel against
 * the cpu backend (tests/lua/test_cuda.lua on libmtt_cudaemu.so).
 *
 * It is a test harness, not a backend: slow, single-threaded, exact enough. What it models:
 * - a block's threads are fibers on one OS thread; __syncthreads and the warp primitives
 *   (__shfl_*_sync, __syncwarp) are barriers, and fibers run in a different order after every
 *   barrier, so a missing barrier shows up as a wrong result;
 * - __shared__ is `static`: blocks run one after another, so one copy per kernel is one per block;
 * - device memory is mapped PROT_NONE whenever no kernel or copy runs, so host code that reads a
 *   device pointer crashes at once instead of passing;
 * - WMMA fragments hold whole tiles (each lane computes the full product: same values, no layout).
 * What it does not model: timing, memory coherence between blocks of one launch, warp-synchronous
 * code without primitives, resource limits (registers, shared-memory size).
 */
#ifndef MTT_CUDA_EMULATE_H
#define MTT_CUDA_EMULATE_H

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

/* ---- language ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __grid_constant__

struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
extern uint3 mtt_emu_thread_idx, mtt_emu_block_idx;
extern dim3 mtt_emu_block_dim, mtt_emu_grid_dim;
#define threadIdx mtt_emu_thread_idx
#define blockIdx mtt_emu_block_idx
#define blockDim mtt_emu_block_dim
#define gridDim mtt_emu_grid_dim
static const int warpSize = 32;

/* Barriers and warp exchange (emulate.cc). */
void mtt_emu_syncthreads();
void mtt_emu_syncwarp();
uint64_t mtt_emu_warp_exchange(uint64_t value, int src_lane);
void *mtt_emu_dynamic_shared();
inline void __syncthreads() { mtt_emu_syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { mtt_emu_syncwarp(); }
inline void __threadfence() {}

template <typename T>
inline T mtt_emu_shfl(T v, int src) {
  static_assert(sizeof(T) <= 8, "shuffle of a type larger than 8 bytes");
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof v);
  bits = mtt_emu_warp_exchange(bits, src);
  T out;
  memcpy(&out, &bits, sizeof out);
  return out;
}
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int mask, int = 32) {
  return mtt_emu_shfl(v, (int)(threadIdx.x % 32) ^ mask);
}
template <typename T>
inline T __shfl_sync(unsigned, T v, int src, int = 32) {
  return mtt_emu_shfl(v, src & 31);
}
template <typename T>
inline T __shfl_down_sync(unsigned, T v, int delta, int = 32) {
  int lane = (int)(threadIdx.x % 32) + delta;
  return mtt_emu_shfl(v, lane < 32 ? lane : (int)(threadIdx.x % 32));
}

/* ---- atomics (one OS thread: plain read-modify-write) ---- */
template <typename T>
inline T atomicAdd(T *p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
template <typename T>
inline T atomicMin(T *p, T v) {
  T old = *p;
  if (v < old) *p = v;
  return old;
}
template <typename T>
inline T atomicMax(T *p, T v) {
  T old = *p;
  if (v > old) *p = v;
  return old;
}
template <typename T>
inline T atomicOr(T *p, T v) {
  T old = *p;
  *p = old | v;
  return old;
}
template <typename T>
inline T atomicExch(T *p, T v) {
  T old = *p;
  *p = v;
  return old;
}

/* ---- math intrinsics ---- */
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
template <typename T>
inline T __ldg(const T *p) {
  return *p;
}

/* ---- half and bfloat16 ---- */
struct __nv_bfloat16 {
  uint16_t bits;
};
struct __half {
  uint16_t bits;
};
inline __nv_bfloat16 __float2bfloat16(float f) { /* round to nearest even; NaN stays NaN */
  uint32_t u;
  memcpy(&u, &f, 4);
  __nv_bfloat16 b;
  if ((u & 0x7fffffffu) > 0x7f800000u)
    b.bits = (uint16_t)((u >> 16) | 0x40);
  else
    b.bits = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
  return b;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 b) {
  uint32_t u = (uint32_t)b.bits << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline __half __float2half(float f) {
  _Float16 h = (_Float16)f;
  __half r;
  memcpy(&r.bits, &h, 2);
  return r;
}
inline __half __float2half_rn(float f) { return __float2half(f); }
inline float __half2float(__half h) {
  _Float16 v;
  memcpy(&v, &h.bits, 2);
  return (float)v;
}

/* ---- runtime API ---- */
typedef int cudaError_t;
typedef void *cudaStream_t;
typedef void *cudaEvent_t;
enum {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorNoDevice = 100,
  cudaErrorLaunchFailure = 719,
};
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
enum { cudaStreamNonBlocking = 1 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlockOptin;
  int multiProcessorCount;
  int major, minor;
  int l2CacheSize;
};
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t n);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t s = 0);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
template <typename F>
inline cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int) {
  return cudaSuccess;
}

/* Runs kernel body `fn` for every thread of every block (emulate.cc). */
cudaError_t mtt_emu_launch(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()> &fn);
/* Opens (1) or closes (0) host access to device memory, nested; for the emulated libraries. */
void mtt_emu_device_access(int open);

/* ---- cuBLAS ---- */
typedef void *cublasHandle_t;
typedef int cublasStatus_t;
enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7, CUBLAS_STATUS_NOT_SUPPORTED = 15 };
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType;
typedef enum {
  CUBLAS_COMPUTE_32F = 68,
  CUBLAS_COMPUTE_32F_FAST_16BF = 75,
  CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
  CUBLAS_COMPUTE_64F = 70,
} cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0 } cublasMath_t;
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m);
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *workspace, size_t bytes);
const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *a, cudaDataType at, int lda,
                                          long long sa, const void *b, cudaDataType bt, int ldb, long long sb,
                                          const void *beta, void *c, cudaDataType ct, int ldc, long long sc,
                                          int batch, cublasComputeType_t compute, cublasGemmAlgo_t algo);

/* ---- CUB: stable radix sorts as std::stable_sort ---- */
namespace cub {
struct DeviceRadixSort {
  template <typename K, typename V>
  static cudaError_t SortPairs(void *temp, size_t &bytes, const K *kin, K *kout, const V *vin, V *vout, int n,
                               int begin_bit = 0, int end_bit = (int)sizeof(K) * 8, cudaStream_t = 0) {
    if (!temp) {
      bytes = 16;
      return cudaSuccess;
    }
    mtt_emu_device_access(1);
    std::vector<std::pair<K, V>> items((size_t)n);
    for (int i = 0; i < n; i++) items[(size_t)i] = {kin[i], vin[i]};
    std::stable_sort(items.begin(), items.end(), [](const std::pair<K, V> &a, const std::pair<K, V> &b) {
      return a.first < b.first;
    });
    for (int i = 0; i < n; i++) {
      kout[i] = items[(size_t)i].first;
      vout[i] = items[(size_t)i].second;
    }
    mtt_emu_device_access(0);
    (void)begin_bit;
    (void)end_bit;
    return cudaSuccess;
  }
};
struct DeviceSegmentedRadixSort {
  /* Keys are unsigned (the caller maps values to order-preserving unsigned keys). */
  template <typename K, typename V, typename O>
  static cudaError_t SortPairs(void *temp, size_t &bytes, const K *kin, K *kout, const V *vin, V *vout, int n,
                               int segments, const O *begins, const O *ends, int = 0, int = (int)sizeof(K) * 8,
                               cudaStream_t = 0) {
    if (!temp) {
      bytes = 16;
      return cudaSuccess;
    }
    mtt_emu_device_access(1);
    for (int s = 0; s < segments; s++) {
      std::vector<std::pair<K, V>> items;
      for (O i = begins[s]; i < ends[s]; i++) items.push_back({kin[i], vin[i]});
      std::stable_sort(items.begin(), items.end(),
                       [](const std::pair<K, V> &a, const std::pair<K, V> &b) { return a.first < b.first; });
      for (size_t i = 0; i < items.size(); i++) {
        kout[begins[s] + (O)i] = items[i].first;
        vout[begins[s] + (O)i] = items[i].second;
      }
    }
    mtt_emu_device_access(0);
    (void)n;
    return cudaSuccess;
  }
};
}  // namespace cub

/* ---- WMMA: a fragment holds its whole tile in logical row-major order ----
 * The *_sync calls are collective: every lane loads before any lane goes on (else a lane would
 * load what another already stored), as one warp instruction does on the device. */
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K>
struct tile_size {
  static const int rows = M, cols = N;
};
template <int M, int N, int K>
struct tile_size<matrix_a, M, N, K> {
  static const int rows = M, cols = K;
};
template <int M, int N, int K>
struct tile_size<matrix_b, M, N, K> {
  static const int rows = K, cols = N;
};

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static const int rows = tile_size<Use, M, N, K>::rows, cols = tile_size<Use, M, N, K>::cols;
  static const int num_elements = rows * cols;
  float x[rows * cols]; /* values (bf16 ones already rounded) */
};

inline float mtt_emu_to_float(float v) { return v; }
inline float mtt_emu_to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
inline float mtt_emu_to_float(__half v) { return __half2float(v); }

template <typename Use, int M, int N, int K, typename T, typename Layout, typename P>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout> &f, const P *p, unsigned ldm) {
  typedef fragment<Use, M, N, K, T, Layout> F;
  bool col = std::is_same<Layout, col_major>::value;
  for (int r = 0; r < F::rows; r++)
    for (int c = 0; c < F::cols; c++) f.x[r * F::cols + c] = mtt_emu_to_float(col ? p[c * ldm + r] : p[r * ldm + c]);
  mtt_emu_syncwarp();
}
template <int M, int N, int K, typename T, typename P>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T> &f, const P *p, unsigned ldm, layout_t layout) {
  for (int r = 0; r < M; r++)
    for (int c = 0; c < N; c++)
      f.x[r * N + c] = mtt_emu_to_float(layout == mem_col_major ? p[c * ldm + r] : p[r * ldm + c]);
  mtt_emu_syncwarp();
}
template <int M, int N, int K, typename T>
inline void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, T> &f, unsigned ldm, layout_t layout) {
  mtt_emu_syncwarp();
  for (int r = 0; r < M; r++)
    for (int c = 0; c < N; c++) (layout == mem_col_major ? p[c * ldm + r] : p[r * ldm + c]) = f.x[r * N + c];
  mtt_emu_syncwarp();
}
template <typename Use, int M, int N, int K, typename T, typename Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout> &f, float v) {
  for (int i = 0; i < f.num_elements; i++) f.x[i] = v;
}
/* d = a b + c, products of bf16 values exact in float, sums in float */
template <int M, int N, int K, typename TA, typename LA, typename TB, typename LB, typename TC>
inline void mma_sync(fragment<accumulator, M, N, K, TC> &d, const fragment<matrix_a, M, N, K, TA, LA> &a,
                     const fragment<matrix_b, M, N, K, TB, LB> &b, const fragment<accumulator, M, N, K, TC> &c) {
  float out[M * N];
  for (int r = 0; r < M; r++)
    for (int col = 0; col < N; col++) {
      float s = c.x[r * N + col];
      for (int q = 0; q < K; q++) s += a.x[r * K + q] * b.x[q * N + col];
      out[r * N + col] = s;
    }
  memcpy(d.x, out, sizeof out);
}
}  // namespace wmma
}  // namespace nvcuda

#endif
