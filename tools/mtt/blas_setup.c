/*
 * blas_setup.c: make OpenBLAS use fast kernels on CPUs it does not recognize.
 *
 * Debian's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH: it picks its kernels from cpuid when
 * it loads. On CPUs newer than the library (e.g. an AVX-512 Xeon of family 6 model 207) it
 * falls back to generic "Prescott" SSE3 kernels: sgemm runs at ~40 GFLOP/s instead of ~240 on
 * 2 cores. The choice can be forced with OPENBLAS_CORETYPE, but only before the library
 * initializes (a constructor at load time), i.e. before libmtt is loaded, i.e. before the
 * process starts: so we ask and restart.
 *
 * At startup, unless OPENBLAS_CORETYPE or MTT_NO_CORETYPE is set: dlopen the OpenBLAS libmtt
 * links (MTT_OPENBLAS_PATH, from CMake) and read openblas_get_corename(). If that is one of
 * the old/generic cores while cpuid shows AVX-512 (F, BW, VL, DQ), set
 * OPENBLAS_CORETYPE=SkylakeX; if it shows AVX2 + FMA, Haswell; then re-exec /proc/self/exe
 * with the same argv (MTT_CORETYPE_SET marks the second start, so it can never loop). When
 * OpenBLAS recognized the CPU, nothing changes. Results are the same either way; only speed
 * differs.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include "mtt_tool.h"

#ifndef MTT_OPENBLAS_PATH
#define MTT_OPENBLAS_PATH "libopenblas.so.0"
#endif

/* Cores OpenBLAS falls back on, or that predate AVX2: never the right choice on a CPU with
 * AVX2 + FMA. */
static const char *const generic_cores[] = {
    "Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Yonah", "Atom", "Core2", "Penryn",
    "Dunnington", "Nehalem", "Opteron", "Opteron_SSE3", "Barcelona", "Athlon", "Generic", "Unknown",
};

static int is_generic(const char *core) {
  for (size_t i = 0; i < sizeof(generic_cores) / sizeof(generic_cores[0]); i++)
    if (strcasecmp(core, generic_cores[i]) == 0) return 1;
  return 0;
}

static const char *better_core(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return NULL;
}

void mtt_blas_setup(char **argv) {
  if (getenv("OPENBLAS_CORETYPE") || getenv("MTT_NO_CORETYPE") || getenv("MTT_CORETYPE_SET")) return;
  const char *target = better_core();
  if (!target) return;
  void *blas = dlopen(MTT_OPENBLAS_PATH, RTLD_NOW | RTLD_LOCAL);
  if (!blas) return;
  char *(*corename)(void) = (char *(*)(void))dlsym(blas, "openblas_get_corename");
  const char *core = corename ? corename() : NULL;
  /* Left loaded: libmtt loads the same library anyway, and unloading a BLAS that may have
   * started threads is not safe. */
  if (!core || !is_generic(core)) return;
  setenv("OPENBLAS_CORETYPE", target, 1);
  setenv("MTT_CORETYPE_SET", core, 1);
  execv("/proc/self/exe", argv);
  /* exec failed (no /proc?): go on with the generic kernels. */
  unsetenv("OPENBLAS_CORETYPE");
}
