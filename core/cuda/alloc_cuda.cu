/*
 * alloc_cuda.cu: a caching allocator for device memory.
 *
 * cudaMalloc and cudaFree synchronize the device and cost tens of microseconds, so a training
 * step must not call them per op. Sizes are rounded up to a class (8 per power of two, at most
 * 12.5% wasted, 512 bytes at least) and freed blocks wait on their class's free list for the
 * next request of that class. Reuse is safe without events because all device work runs on
 * the backend's one stream: work that used a block is queued before any work of its next owner.
 * When cudaMalloc fails, the cached blocks go back to the device and the request is retried
 * once; the cache is otherwise unbounded (as PyTorch's), mtt_cuda_empty_cache() empties it.
 */
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda/cuda_common.h"

#define STEPS 8 /* classes per power of two */
#define MIN_BYTES 512

namespace {
std::mutex lock;
std::unordered_map<void *, size_t> live; /* block -> class bytes */
std::unordered_map<size_t, std::vector<void *>> free_lists;
int64_t in_use, cached, peak;

size_t class_bytes(size_t n) {
  if (n < MIN_BYTES) n = MIN_BYTES;
  int k = 63 - __builtin_clzll((unsigned long long)n);
  size_t base = (size_t)1 << k, step = base / STEPS;
  size_t j = (n - base + step - 1) / step;
  return base + j * step; /* j == STEPS gives the next power of two */
}

/* Returns every cached block to the device (the lock held). */
void release_cached() {
  for (auto &kv : free_lists)
    for (void *p : kv.second) cudaFree(p);
  free_lists.clear();
  cached = 0;
}
}  // namespace

void *mtt_cuda_alloc(size_t nbytes) {
  if (nbytes > ((size_t)1 << 50)) return NULL;
  size_t bytes = class_bytes(nbytes);
  std::lock_guard<std::mutex> guard(lock);
  void *p = NULL;
  auto it = free_lists.find(bytes);
  if (it != free_lists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    cached -= (int64_t)bytes;
  } else if (cudaMalloc(&p, bytes) != cudaSuccess) {
    cudaGetLastError();
    cudaStreamSynchronize(mtt_cuda_stream()); /* cudaFree would wait anyway */
    release_cached();
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      return NULL; /* the caller reports the tensor it wanted */
    }
  }
  live[p] = bytes;
  in_use += (int64_t)bytes;
  if (in_use > peak) peak = in_use;
  return p;
}

void mtt_cuda_free(void *ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> guard(lock);
  auto it = live.find(ptr);
  if (it == live.end()) return; /* not ours: never happens through tensors */
  size_t bytes = it->second;
  live.erase(it);
  in_use -= (int64_t)bytes;
  free_lists[bytes].push_back(ptr);
  cached += (int64_t)bytes;
}

int mtt_cuda_alloc_stats(int64_t *out4) {
  std::lock_guard<std::mutex> guard(lock);
  out4[0] = in_use;
  out4[1] = cached;
  out4[2] = peak;
  size_t free_bytes = 0, total = 0;
  int rc = mtt_cuda_check(cudaMemGetInfo(&free_bytes, &total), "memory_stats");
  out4[3] = (int64_t)total;
  return rc;
}

int mtt_cuda_release_cached(void) {
  mtt_cuda_pack_cache_clear(); /* its blocks join the free lists first */
  int rc = mtt_cuda_sync("empty_cache");
  std::lock_guard<std::mutex> guard(lock);
  release_cached();
  return rc;
}
