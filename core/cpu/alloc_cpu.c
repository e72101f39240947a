/*
 * alloc_cpu.c: a caching allocator for the cpu backend.
 *
 * glibc serves large blocks with fresh mmaps and unmaps them on free, so every large op output
 * paid its page faults again (about 3.4 us per 4 KiB page here: 5 ms for a 6 MB tensor, a fifth
 * of a 1024^2 sgemm). Blocks of 64 KiB and more are therefore rounded up to a size class (8
 * classes per power of two, so at most 12.5% is wasted) and, when freed, kept on that class's
 * free list for the next request of the same class. The cache is bounded (a quarter of the
 * machine's memory, at most 4 GiB; MTT_CPU_CACHE_MB overrides); beyond it blocks go back to the
 * system. Smaller blocks go straight to malloc, which already reuses them.
 *
 * Each block starts with a 64-byte header (size class, free-list link), so the user pointer
 * stays 64-byte aligned and free() needs no size.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "cpu/kernels_cpu.h"

#define HEADER 64
#define MIN_CACHED ((size_t)64 << 10)
#define STEPS 8 /* classes per power of two */
#define CLASSES (64 * STEPS)
#define MAGIC 0x6d74746du

typedef struct block {
  struct block *next;
  size_t bytes; /* usable bytes (the class size), 0 for uncached small blocks */
  uint32_t magic;
  int32_t class_index;
} block;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static block *free_lists[CLASSES];
static size_t cached_bytes, cache_limit;

static size_t limit(void) {
  if (!cache_limit) {
    const char *env = getenv("MTT_CPU_CACHE_MB");
    if (env) {
      cache_limit = (size_t)strtoull(env, NULL, 10) << 20;
    } else {
      long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
      size_t quarter = pages > 0 && page > 0 ? (size_t)pages * (size_t)page / 4 : ((size_t)1 << 30);
      cache_limit = quarter < ((size_t)4 << 30) ? quarter : ((size_t)4 << 30);
    }
    if (!cache_limit) cache_limit = 1; /* "0" means: cache nothing */
  }
  return cache_limit;
}

/* Smallest class holding n bytes: classes are 2^k * (1 + j/STEPS). */
static int class_of(size_t n, size_t *class_bytes) {
  int k = 63 - __builtin_clzll((unsigned long long)n);
  size_t base = (size_t)1 << k;
  size_t step = base / STEPS;
  size_t j = (n - base + step - 1) / step;
  if (j == STEPS) {
    k++;
    j = 0;
    base <<= 1;
    step <<= 1;
  }
  *class_bytes = base + j * step;
  return k * STEPS + (int)j;
}

void *mtt_cpu_alloc(size_t nbytes) {
  if (nbytes > SIZE_MAX / 2) return NULL;
  block *b = NULL;
  if (nbytes < MIN_CACHED) {
    b = aligned_alloc(HEADER, HEADER + ((nbytes + 63) & ~(size_t)63));
    if (!b) return NULL;
    b->bytes = 0;
    b->class_index = -1;
  } else {
    size_t bytes;
    int c = class_of(nbytes, &bytes);
    pthread_mutex_lock(&lock);
    b = free_lists[c];
    if (b) {
      free_lists[c] = b->next;
      cached_bytes -= b->bytes;
    }
    pthread_mutex_unlock(&lock);
    if (!b) {
      b = aligned_alloc(HEADER, HEADER + bytes);
      if (!b) return NULL;
    }
    b->bytes = bytes;
    b->class_index = c;
  }
  b->magic = MAGIC;
  b->next = NULL;
  return (char *)b + HEADER;
}

void mtt_cpu_free(void *ptr) {
  if (!ptr) return;
  block *b = (block *)((char *)ptr - HEADER);
  if (b->class_index < 0) {
    free(b);
    return;
  }
  pthread_mutex_lock(&lock);
  bool keep = cached_bytes + b->bytes <= limit();
  if (keep) {
    b->next = free_lists[b->class_index];
    free_lists[b->class_index] = b;
    cached_bytes += b->bytes;
  }
  pthread_mutex_unlock(&lock);
  if (!keep) free(b);
}
