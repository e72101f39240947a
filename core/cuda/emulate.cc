/* emulate.cc: the emulated device of emulate.h: fibers for threads, barriers, a guarded device
 * memory, and the runtime and cuBLAS calls the backend makes. Built only into libmtt_cudaemu. */
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>

#include "cuda/emulate.h"

#ifndef __x86_64__
#error "the cuda emulator switches fibers with x86-64 code (CMake builds it on x86-64 only)"
#endif

uint3 mtt_emu_thread_idx, mtt_emu_block_idx;
dim3 mtt_emu_block_dim, mtt_emu_grid_dim;

namespace {

/* ---- device memory: one reserved arena; live blocks are PROT_NONE while no kernel or copy
 * runs, free ranges always (so a kernel reading freed memory crashes too) ---- */

const size_t device_bytes = (size_t)8 << 30, arena_bytes = (size_t)16 << 30;
char *arena, *arena_top;                 /* [arena, arena_top) has been handed out at some point */
std::map<char *, size_t> allocations;    /* live blocks */
std::map<char *, size_t> holes;          /* free ranges below arena_top, coalesced */
int access_depth;
bool guard = true; /* MTT_EMU_GUARD=0 turns the protection off (faster, catches less) */
size_t allocated_bytes;

/* Live blocks, adjacent ones merged into one call. */
void protect_all(int prot) {
  char *run = NULL, *end = NULL;
  for (auto &a : allocations) {
    if (a.first != end) {
      if (run) mprotect(run, (size_t)(end - run), prot);
      run = a.first;
    }
    end = a.first + a.second;
  }
  if (run) mprotect(run, (size_t)(end - run), prot);
}

char *arena_take(size_t bytes) {
  for (auto it = holes.begin(); it != holes.end(); ++it) /* first fit */
    if (it->second >= bytes) {
      char *p = it->first;
      size_t rest = it->second - bytes;
      holes.erase(it);
      if (rest) holes[p + bytes] = rest;
      return p;
    }
  if ((size_t)(arena_top - arena) + bytes > arena_bytes) return NULL;
  char *p = arena_top;
  arena_top += bytes;
  return p;
}

void arena_give(char *p, size_t bytes) {
  mprotect(p, bytes, PROT_NONE);
  madvise(p, bytes, MADV_DONTNEED); /* the pages go back; the range stays reserved */
  auto next = holes.lower_bound(p);
  if (next != holes.end() && p + bytes == next->first) { /* merge with the hole above */
    bytes += next->second;
    next = holes.erase(next);
  }
  if (next != holes.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == p) { /* and with the one below */
      prev->second += bytes;
      return;
    }
  }
  holes[p] = bytes;
}

/* ---- fibers ---- */

/* A context switch without system calls (swapcontext saves the signal mask with one, which made
 * barriers cost a microsecond each): push the callee-saved registers, swap stack pointers, pop. */
extern "C" void mtt_emu_switch(void **save_sp, void *load_sp);
asm(".text\n"
    ".globl mtt_emu_switch\n"
    ".type mtt_emu_switch,@function\n"
    "mtt_emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size mtt_emu_switch, .-mtt_emu_switch\n");

enum { READY, WAIT_BLOCK, WAIT_WARP, DONE };
const size_t stack_bytes = 256 << 10;

struct fiber {
  void *sp;
  char *stack;
  int state;
  uint3 tid;
  int shfl_parity; /* which of the two exchange buffers its next shuffle uses */
};

std::vector<fiber> fibers;
void *scheduler_sp;
int current;
const std::function<void()> *body;
std::vector<unsigned char> dynamic_shared;
uint64_t exchange[2][1024];
bool deadlock;

[[noreturn]] void fiber_main() {
  (*body)();
  fibers[current].state = DONE;
  mtt_emu_switch(&fibers[current].sp, scheduler_sp);
  __builtin_unreachable(); /* a finished fiber is never resumed */
}

void yield(int state) {
  fibers[current].state = state;
  mtt_emu_switch(&fibers[current].sp, scheduler_sp);
}

/* A fresh stack whose first switch "returns" into fiber_main, aligned as after a call. */
void fiber_start(fiber &f) {
  uintptr_t top = ((uintptr_t)f.stack + stack_bytes) & ~(uintptr_t)15;
  void **sp = (void **)(top - 64);
  for (int i = 0; i < 6; i++) sp[i] = 0;
  sp[6] = (void *)&fiber_main;
  f.sp = sp;
}

void run_block(int nthreads) {
  if ((int)fibers.size() < nthreads) {
    size_t old = fibers.size();
    fibers.resize(nthreads);
    for (size_t i = old; i < fibers.size(); i++) {
      fibers[i].stack = (char *)mmap(NULL, stack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (fibers[i].stack == MAP_FAILED) {
        fprintf(stderr, "mtt emulator: cannot map a fiber stack\n");
        abort(); /* a test harness only: no memory for stacks leaves nothing to report to */
      }
    }
  }
  for (int i = 0; i < nthreads; i++) {
    fiber &f = fibers[i];
    f.tid.x = (unsigned)i % mtt_emu_block_dim.x;
    f.tid.y = (unsigned)i / mtt_emu_block_dim.x % mtt_emu_block_dim.y;
    f.tid.z = (unsigned)i / (mtt_emu_block_dim.x * mtt_emu_block_dim.y);
    f.state = READY;
    f.shfl_parity = 0;
    fiber_start(f);
  }
  for (int round = 0;; round++) {
    /* Alternate the order after each barrier, so that a missing barrier reads stale data in one
     * of the two orders. */
    for (int n = 0; n < nthreads; n++) {
      int i = (round & 1) ? nthreads - 1 - n : n;
      if (fibers[i].state != READY) continue;
      current = i;
      mtt_emu_thread_idx = fibers[i].tid;
      mtt_emu_switch(&scheduler_sp, fibers[i].sp);
    }
    int done = 0, at_block = 0;
    for (int i = 0; i < nthreads; i++) {
      done += fibers[i].state == DONE;
      at_block += fibers[i].state == WAIT_BLOCK;
    }
    if (done == nthreads) return;
    bool released = false;
    for (int w = 0; w * 32 < nthreads; w++) {
      int lo = w * 32, hi = lo + 32 < nthreads ? lo + 32 : nthreads, live = 0, waiting = 0;
      for (int i = lo; i < hi; i++) {
        live += fibers[i].state != DONE;
        waiting += fibers[i].state == WAIT_WARP;
      }
      if (live && waiting == live) {
        for (int i = lo; i < hi; i++)
          if (fibers[i].state == WAIT_WARP) fibers[i].state = READY;
        released = true;
      }
    }
    if (at_block + done == nthreads) {
      for (int i = 0; i < nthreads; i++)
        if (fibers[i].state == WAIT_BLOCK) fibers[i].state = READY;
      released = true;
    }
    if (!released) {
      deadlock = true; /* threads wait at different barriers: a divergent __syncthreads */
      return;
    }
  }
}

}  // namespace

void mtt_emu_syncthreads() { yield(WAIT_BLOCK); }
void mtt_emu_syncwarp() { yield(WAIT_WARP); }

uint64_t mtt_emu_warp_exchange(uint64_t value, int src_lane) {
  fiber &f = fibers[current];
  int parity = f.shfl_parity, lane = current % 32, warp_base = current - lane;
  f.shfl_parity ^= 1;
  exchange[parity][current] = value;
  yield(WAIT_WARP);
  return exchange[parity][warp_base + src_lane];
}

void *mtt_emu_dynamic_shared() { return dynamic_shared.data(); }

void mtt_emu_device_access(int open) {
  if (!guard) return;
  if (open) {
    if (access_depth++ == 0) protect_all(PROT_READ | PROT_WRITE);
  } else if (--access_depth == 0) {
    protect_all(PROT_NONE);
  }
}

cudaError_t mtt_emu_launch(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()> &fn) {
  int nthreads = (int)(block.x * block.y * block.z);
  if (nthreads <= 0 || nthreads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0) return cudaErrorInvalidValue;
  mtt_emu_device_access(1);
  body = &fn;
  mtt_emu_block_dim = block;
  mtt_emu_grid_dim = grid;
  deadlock = false;
  for (unsigned z = 0; z < grid.z && !deadlock; z++)
    for (unsigned y = 0; y < grid.y && !deadlock; y++)
      for (unsigned x = 0; x < grid.x && !deadlock; x++) {
        mtt_emu_block_idx.x = x;
        mtt_emu_block_idx.y = y;
        mtt_emu_block_idx.z = z;
        dynamic_shared.assign(shared_bytes + 16, 0xff); /* NaN-filled: unwritten reads show */
        run_block(nthreads);
      }
  mtt_emu_device_access(0);
  return deadlock ? cudaErrorLaunchFailure : cudaSuccess;
}

/* ---- runtime API ---- */

const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulator: threads of a block wait at different barriers)";
    default: return "unknown error";
  }
}
const char *cudaGetErrorName(cudaError_t e) { return e ? "cudaError" : "cudaSuccess"; }

cudaError_t cudaGetDeviceCount(int *n) {
  const char *g = getenv("MTT_EMU_GUARD");
  guard = !(g && g[0] == '0');
  *n = getenv("MTT_EMU_NO_DEVICE") ? 0 : 1;
  return *n ? cudaSuccess : cudaErrorNoDevice;
}
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "mtt emulated device (CPU)");
  p->totalGlobalMem = device_bytes;
  p->sharedMemPerBlockOptin = 227 << 10;
  p->multiProcessorCount = 4;
  p->major = 9;
  p->l2CacheSize = 1 << 20;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t n) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), bytes = (n + page - 1) / page * page;
  if (bytes == 0) bytes = page;
  if (allocated_bytes + bytes > device_bytes) return cudaErrorMemoryAllocation;
  if (!arena) {
    arena = (char *)mmap(NULL, arena_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (arena == MAP_FAILED) {
      arena = NULL;
      return cudaErrorMemoryAllocation;
    }
    arena_top = arena;
  }
  char *m = arena_take(bytes);
  if (!m) return cudaErrorMemoryAllocation;
  mprotect(m, bytes, PROT_READ | PROT_WRITE);
  memset(m, 0xff, bytes); /* fresh device memory reads as NaN, so unwritten outputs show */
  if (guard && access_depth == 0) mprotect(m, bytes, PROT_NONE);
  allocations[m] = bytes;
  allocated_bytes += bytes;
  *p = m;
  return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
  if (!p) return cudaSuccess;
  auto it = allocations.find((char *)p);
  if (it == allocations.end()) return cudaErrorInvalidValue;
  arena_give(it->first, it->second);
  allocated_bytes -= it->second;
  allocations.erase(it);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t n) {
  *p = malloc(n ? n : 1);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void *p) {
  free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind, cudaStream_t) {
  mtt_emu_device_access(1);
  memmove(dst, src, n);
  mtt_emu_device_access(0);
  return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind, cudaStream_t) {
  mtt_emu_device_access(1);
  for (size_t r = 0; r < height; r++) memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
  mtt_emu_device_access(0);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t) {
  mtt_emu_device_access(1);
  memset(p, value, n);
  mtt_emu_device_access(0);
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) {
  *s = (cudaStream_t)&scheduler_sp;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaGetLastError() { return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
  *free_bytes = device_bytes - allocated_bytes;
  *total_bytes = device_bytes;
  return cudaSuccess;
}

/* ---- cuBLAS ---- */

cublasStatus_t cublasCreate(cublasHandle_t *h) {
  *h = (cublasHandle_t)&scheduler_sp;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace(cublasHandle_t, void *, size_t) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusString(cublasStatus_t s) { return s ? "CUBLAS_STATUS_INVALID_VALUE" : "CUBLAS_STATUS_SUCCESS"; }

namespace {
double load_elem(const void *p, cudaDataType t, long long i) {
  switch (t) {
    case CUDA_R_32F: return ((const float *)p)[i];
    case CUDA_R_64F: return ((const double *)p)[i];
    case CUDA_R_16BF: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case CUDA_R_16F: return __half2float(((const __half *)p)[i]);
  }
  return NAN;
}
void store_elem(void *p, cudaDataType t, long long i, double v) {
  switch (t) {
    case CUDA_R_32F: ((float *)p)[i] = (float)v; break;
    case CUDA_R_64F: ((double *)p)[i] = v; break;
    case CUDA_R_16BF: ((__nv_bfloat16 *)p)[i] = __float2bfloat16((float)v); break;
    case CUDA_R_16F: ((__half *)p)[i] = __float2half((float)v); break;
  }
}
/* The rounding the tensor cores apply to f32 inputs in the fast modes. */
float round_input(float v, cublasComputeType_t compute) {
  if (compute == CUBLAS_COMPUTE_32F_FAST_16BF) return __bfloat162float(__float2bfloat16(v));
  if (compute == CUBLAS_COMPUTE_32F_FAST_TF32) {
    uint32_t u;
    memcpy(&u, &v, 4);
    u = (u + 0xfffu + ((u >> 13) & 1)) & ~0x1fffu;
    memcpy(&v, &u, 4);
  }
  return v;
}
}  // namespace

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *a, cudaDataType at, int lda,
                                          long long sa, const void *b, cudaDataType bt, int ldb, long long sb,
                                          const void *beta, void *c, cudaDataType ct, int ldc, long long sc,
                                          int batch, cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (m < 0 || n < 0 || k < 0 || batch < 0 || ldc < (m > 1 ? m : 1)) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < ((ta == CUBLAS_OP_N ? m : k) > 1 ? (ta == CUBLAS_OP_N ? m : k) : 1)) return CUBLAS_STATUS_INVALID_VALUE;
  if (ldb < ((tb == CUBLAS_OP_N ? k : n) > 1 ? (tb == CUBLAS_OP_N ? k : n) : 1)) return CUBLAS_STATUS_INVALID_VALUE;
  bool f64 = compute == CUBLAS_COMPUTE_64F;
  double al = f64 ? *(const double *)alpha : *(const float *)alpha;
  double be = f64 ? *(const double *)beta : *(const float *)beta;
  mtt_emu_device_access(1);
  for (int q = 0; q < batch; q++)
    for (int j = 0; j < n; j++)
      for (int i = 0; i < m; i++) {
        double acc64 = 0;
        float acc32 = 0;
        for (int l = 0; l < k; l++) {
          long long ia = q * sa + (ta == CUBLAS_OP_N ? i + (long long)l * lda : l + (long long)i * lda);
          long long ib = q * sb + (tb == CUBLAS_OP_N ? l + (long long)j * ldb : j + (long long)l * ldb);
          if (f64)
            acc64 += load_elem(a, at, ia) * load_elem(b, bt, ib);
          else
            acc32 += round_input((float)load_elem(a, at, ia), compute) * round_input((float)load_elem(b, bt, ib), compute);
        }
        double acc = f64 ? acc64 : acc32;
        long long ic = q * sc + i + (long long)j * ldc;
        double out = al * acc + (be != 0 ? be * load_elem(c, ct, ic) : 0.0);
        store_elem(c, ct, ic, out);
      }
  mtt_emu_device_access(0);
  return CUBLAS_STATUS_SUCCESS;
}
