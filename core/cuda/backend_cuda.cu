/*
 * backend_cuda.cu: the cuda backend: device start-up, its one stream and cuBLAS handle, the
 * kernel table, and moving tensors between host and device.
 *
 * What it is: every slot of backend.h on an NVIDIA GPU (sm_80 and sm_90 binaries), checked
 * against the cpu kernels by tests/lua/test_cuda.lua, on a real device or on the CPU emulation
 * of emulate.h (libmtt_cudaemu). Kernels follow the cpu contracts (same formulas, same Philox
 * streams, sums in a fixed order so results never change from run to run); they are written to
 * be right first and reasonably fast, not tuned per chip.
 * What it is not: multi-GPU (device 0, or MTT_CUDA_DEVICE), multi-stream, or a bf16 tensor
 * store: tensors stay f32/f64/i32 and MEDIUM matmul precision (mtt.h) computes products and
 * attention in bf16.
 *
 * The device starts on first use (mtt_cuda_backend), so a machine without one pays nothing
 * and gets a clear error only when it asks for cuda. All work goes on one non-blocking stream;
 * host reads (item, transfers to the host, index checks) synchronize it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_common.h"
#include "cuda/kernels_cuda.h"

static int state;             /* 0 untried, 1 ready, -1 unusable */
static char why_not[512];     /* the reason when unusable */
static char info_line[512];
static cudaStream_t stream;
static cublasHandle_t blas;
static int sm_count;
static size_t smem_limit;
static void *host_scratch;

cudaStream_t mtt_cuda_stream(void) { return stream; }
cublasHandle_t mtt_cuda_blas(void) { return blas; }
int mtt_cuda_sm_count(void) { return sm_count; }
size_t mtt_cuda_smem_limit(void) { return smem_limit; }
void *mtt_cuda_host_scratch(void) { return host_scratch; }

int mtt_cuda_check(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return 0;
  cudaGetLastError(); /* clears errors that do not stick; a failed kernel's error sticks */
  if (e == cudaErrorMemoryAllocation)
    return mtt_fail(MTT_ERR_MEMORY, "cuda: %s: out of device memory", what);
  return mtt_fail(MTT_ERR_DEVICE, "cuda: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

int mtt_cuda_blas_check(cublasStatus_t s, const char *what) {
  if (s == CUBLAS_STATUS_SUCCESS) return 0;
  return mtt_fail(MTT_ERR_DEVICE, "cuda: %s: cuBLAS failed (%s)", what, cublasGetStatusString(s));
}

static int64_t host_waits; /* mtt_cuda_host_waits(): how often the host has waited on the stream */

int mtt_cuda_sync(const char *what) {
  host_waits++;
  return mtt_cuda_check(cudaStreamSynchronize(stream), what);
}

int64_t mtt_cuda_waits(void) { return host_waits; }

void *mtt_cuda_scratch(size_t nbytes, const char *what) {
  void *p = mtt_cuda_alloc(nbytes ? nbytes : 1);
  if (!p) mtt_fail(MTT_ERR_MEMORY, "cuda: %s: out of device memory for %zu bytes of scratch", what, nbytes);
  return p;
}

static int start(void) {
  int n = 0, dev = 0;
  const char *pick = getenv("MTT_CUDA_DEVICE");
  if (pick) dev = atoi(pick);
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    snprintf(why_not, sizeof why_not, "cuda: no usable CUDA device (%s)",
             e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports none");
    cudaGetLastError();
    return -1;
  }
  if (dev < 0 || dev >= n) {
    snprintf(why_not, sizeof why_not, "cuda: MTT_CUDA_DEVICE=%d but there are %d devices (0..%d)", dev, n, n - 1);
    return -1;
  }
  cudaDeviceProp p;
  if ((e = cudaSetDevice(dev)) != cudaSuccess || (e = cudaGetDeviceProperties(&p, dev)) != cudaSuccess) {
    snprintf(why_not, sizeof why_not, "cuda: cannot open device %d (%s)", dev, cudaGetErrorString(e));
    cudaGetLastError();
    return -1;
  }
  if (p.major < 8) {
    snprintf(why_not, sizeof why_not,
             "cuda: %s has compute capability %d.%d; this build of mtt has kernels for 8.0 and 9.0 and newer",
             p.name, p.major, p.minor);
    return -1;
  }
  sm_count = p.multiProcessorCount;
  smem_limit = p.sharedMemPerBlockOptin;
  snprintf(info_line, sizeof info_line, "%s (device %d, sm_%d%d, %d SMs, %.1f GiB)", p.name, dev, p.major, p.minor,
           p.multiProcessorCount, (double)p.totalGlobalMem / (1 << 30));
  cublasStatus_t bs;
  if ((e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)) != cudaSuccess ||
      (e = cudaMallocHost(&host_scratch, 256)) != cudaSuccess) {
    snprintf(why_not, sizeof why_not, "cuda: cannot start %s (%s)", p.name, cudaGetErrorString(e));
    return -1;
  }
  if ((bs = cublasCreate(&blas)) != CUBLAS_STATUS_SUCCESS || (bs = cublasSetStream(blas, stream)) != CUBLAS_STATUS_SUCCESS) {
    snprintf(why_not, sizeof why_not, "cuda: cannot start cuBLAS on %s (%s)", p.name, cublasGetStatusString(bs));
    return -1;
  }
  /* a workspace of its own (32 MiB, NVIDIA's advice for Hopper) lets cuBLAS pick its fastest kernels */
  void *workspace = NULL;
  size_t workspace_bytes = (size_t)32 << 20;
  if (cudaMalloc(&workspace, workspace_bytes) == cudaSuccess)
    cublasSetWorkspace(blas, workspace, workspace_bytes);
  else
    cudaGetLastError();
  return 1;
}

const mtt_backend *mtt_cuda_backend(void) {
  if (!state) state = start();
  if (state < 0) {
    mtt_fail(MTT_ERR_DEVICE, "%s", why_not);
    return NULL;
  }
  return &mtt_backend_cuda;
}

int mtt_cuda_count(void) {
  if (!state) state = start();
  return state > 0 ? 1 : 0;
}

const char *mtt_cuda_info(void) {
  if (!state) state = start();
  return state > 0 ? info_line : why_not;
}

int mtt_cuda_wait(void) { return mtt_cuda_sync("synchronize"); }

int mtt_cuda_emulated(void) {
#ifdef MTT_CUDA_EMULATE
  return 1;
#else
  return 0;
#endif
}

/* ---- index checks ---- */

__global__ void find_bad_index_kernel(const int32_t *idx, int64_t n, int64_t size, int64_t ignore, int use_ignore,
                                      unsigned long long *first) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int32_t v = idx[i];
    if ((v < 0 || v >= size) && !(use_ignore && v == ignore)) atomicMin(first, (unsigned long long)i);
  }
}

int mtt_cuda_find_bad_index(const int32_t *idx, int64_t n, int64_t size, int64_t ignore, int use_ignore,
                            int64_t *pos, int32_t *value, const char *what) {
  if (n == 0) return 0;
  unsigned long long *first = (unsigned long long *)mtt_cuda_scratch(sizeof *first, what);
  if (!first) return mtt_last_error_code();
  unsigned long long *host = (unsigned long long *)host_scratch;
  int blocks = (int)((n + 255) / 256 < 4 * sm_count ? (n + 255) / 256 : 4 * sm_count);
  int rc = mtt_cuda_check(cudaMemsetAsync(first, 0xff, sizeof *first, stream), what);
  if (!rc) rc = mtt_cuda_launch(what, find_bad_index_kernel, dim3(blocks), dim3(256), 0, idx, n, size, ignore, use_ignore, first);
  if (!rc) rc = mtt_cuda_check(cudaMemcpyAsync(host, first, sizeof *first, cudaMemcpyDeviceToHost, stream), what);
  if (!rc) rc = mtt_cuda_sync(what);
  mtt_cuda_free(first);
  if (rc) return rc;
  if (*host == ~0ull) return 0;
  *pos = (int64_t)*host;
  rc = mtt_cuda_check(cudaMemcpyAsync(host_scratch, idx + *pos, sizeof(int32_t), cudaMemcpyDeviceToHost, stream), what);
  if (!rc) rc = mtt_cuda_sync(what);
  if (rc) return rc;
  *value = *(int32_t *)host_scratch;
  return 1;
}

/* ---- host <-> device ---- */

/* src (cpu) into dst (cuda): bytes go up as they are, the device converts and scatters. */
static int to_device(mtt_tensor *dst, const mtt_tensor *src) {
  mtt_tensor *host = NULL, *staged = NULL;
  const mtt_tensor *s = src;
  if (!mtt_is_contiguous(src)) {
    if (!(host = mtt_tensor_new(src->ndim, src->dims, src->dtype_id, MTT_CPU))) return mtt_last_error_code();
    if (mtt_backend_cpu.copy(host, src)) {
      mtt_tensor_release(host);
      return mtt_last_error_code();
    }
    s = host;
  }
  size_t bytes = (size_t)s->nelem * mtt_dtype_size(s->dtype_id);
  int rc;
  if (mtt_is_contiguous(dst) && dst->dtype_id == s->dtype_id) {
    rc = mtt_cuda_check(cudaMemcpyAsync(mtt_data_ptr(dst), mtt_data_ptr(s), bytes, cudaMemcpyHostToDevice, stream),
                        "copy to the device");
  } else if (!(staged = mtt_tensor_new(s->ndim, s->dims, s->dtype_id, MTT_CUDA))) {
    rc = mtt_last_error_code();
  } else {
    rc = mtt_cuda_check(cudaMemcpyAsync(mtt_data_ptr(staged), mtt_data_ptr(s), bytes, cudaMemcpyHostToDevice, stream),
                        "copy to the device");
    if (!rc) rc = mtt_cuda_copy(dst, staged);
  }
  /* pageable copies return once the source is read, so the host buffers may go now */
  mtt_tensor_release(staged);
  mtt_tensor_release(host);
  return rc;
}

/* src (cuda) into dst (cpu): the device gathers and converts, the bytes come down, the host
 * scatters them if dst is strided. */
static int to_host(mtt_tensor *dst, const mtt_tensor *src) {
  mtt_tensor *packed = NULL, *host = NULL;
  const mtt_tensor *s = src;
  int rc = 0;
  if (!mtt_is_contiguous(src) || src->dtype_id != dst->dtype_id) {
    if (!(packed = mtt_tensor_new(src->ndim, src->dims, dst->dtype_id, MTT_CUDA))) return mtt_last_error_code();
    if ((rc = mtt_cuda_copy(packed, src))) {
      mtt_tensor_release(packed);
      return rc;
    }
    s = packed;
  }
  mtt_tensor *target = dst;
  if (!mtt_is_contiguous(dst) && !(target = host = mtt_tensor_new(dst->ndim, dst->dims, dst->dtype_id, MTT_CPU)))
    rc = mtt_last_error_code();
  size_t bytes = (size_t)s->nelem * mtt_dtype_size(s->dtype_id);
  if (!rc)
    rc = mtt_cuda_check(cudaMemcpyAsync(mtt_data_ptr(target), mtt_data_ptr(s), bytes, cudaMemcpyDeviceToHost, stream),
                        "copy to the host");
  if (!rc) rc = mtt_cuda_sync("copy to the host");
  if (!rc && host) rc = mtt_backend_cpu.copy(dst, host);
  mtt_tensor_release(host);
  mtt_tensor_release(packed);
  return rc;
}

int mtt_cuda_transfer(mtt_tensor *dst, const mtt_tensor *src) {
  if (dst->nelem != src->nelem)
    return mtt_fail(MTT_ERR_SHAPE, "to: %s and %s differ in size", mtt_tshape(src), mtt_tshape(dst));
  if (dst->nelem == 0) return 0;
  if (src->device_id == MTT_CUDA && dst->device_id == MTT_CUDA) return mtt_cuda_copy(dst, src);
  return src->device_id == MTT_CPU ? to_device(dst, src) : to_host(dst, src);
}

/* ---- the table ---- */

const mtt_backend mtt_backend_cuda = {
    .name = "cuda",
    .alloc = mtt_cuda_alloc,
    .free = mtt_cuda_free,
    .copy = mtt_cuda_copy,
    .fill = mtt_cuda_fill,
    .rand = mtt_cuda_rand,
    .unary = mtt_cuda_unary,
    .unary_backward = mtt_cuda_unary_backward,
    .binary = mtt_cuda_binary,
    .masked_fill = mtt_cuda_masked_fill,
    .binary_inplace = mtt_cuda_binary_inplace,
    .reduce = mtt_cuda_reduce,
    .gemm = mtt_cuda_gemm,
    .softmax = mtt_cuda_softmax,
    .softmax_backward = mtt_cuda_softmax_backward,
    .layer_norm = mtt_cuda_layer_norm,
    .layer_norm_backward = mtt_cuda_layer_norm_backward,
    .embedding = mtt_cuda_embedding,
    .embedding_backward = mtt_cuda_embedding_backward,
    .cross_entropy = mtt_cuda_cross_entropy,
    .cross_entropy_backward = mtt_cuda_cross_entropy_backward,
    .attention = mtt_cuda_attention,
    .attention_backward = mtt_cuda_attention_backward,
    .dropout = mtt_cuda_dropout,
    .gather = mtt_cuda_gather,
    .scatter_add = mtt_cuda_scatter_add,
    .topk = mtt_cuda_topk,
    .sgd = mtt_cuda_sgd,
    .adamw = mtt_cuda_adamw,
    .sum_squares = mtt_cuda_sum_squares,
    .scale = mtt_cuda_scale,
    .transfer = mtt_cuda_transfer,
    .sum_squares_list = mtt_cuda_sum_squares_list,
};
