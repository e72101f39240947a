/* backend.c: the registry of device backends, the one file that knows which devices exist.
 *
 * The cuda backend (core/cuda/) is compiled in when CMake finds the CUDA toolkit
 * (MTT_HAVE_CUDA); it is then used when a device is present. Without either, asking for cuda
 * fails with a message that says which of the two is missing, and everything else works. */
#include "backend.h"

#ifdef MTT_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

static int matmul_precision = MTT_MATMUL_HIGHEST;

const mtt_backend *mtt_backend_for(int device) {
  switch (device) {
    case MTT_CPU: return &mtt_backend_cpu;
    case MTT_CUDA:
#ifdef MTT_HAVE_CUDA
      return mtt_cuda_backend(); /* NULL with a message when no device is usable */
#else
      mtt_fail(MTT_ERR_DEVICE, "cuda: this build of mtt has no CUDA backend (the CUDA toolkit was not found when it "
                               "was built)");
      return NULL;
#endif
    default: mtt_fail(MTT_ERR_DEVICE, "unknown device %d", device); return NULL;
  }
}

const mtt_backend *mtt_backend_of(const mtt_tensor *t) { return mtt_backend_for(t->device_id); }

/* ---- [cuda section: the public cuda functions; each works, and says so, without CUDA] ---- */

int mtt_cuda_available(void) { return mtt_cuda_device_count() > 0; }

int mtt_cuda_device_count(void) {
#ifdef MTT_HAVE_CUDA
  return mtt_cuda_count();
#else
  return 0;
#endif
}

const char *mtt_cuda_device_info(void) {
#ifdef MTT_HAVE_CUDA
  return mtt_cuda_info();
#else
  return "no CUDA backend in this build (the CUDA toolkit was not found when it was built)";
#endif
}

int mtt_cuda_is_emulated(void) {
#ifdef MTT_HAVE_CUDA
  return mtt_cuda_emulated();
#else
  return 0;
#endif
}

int mtt_cuda_synchronize(void) {
  if (!mtt_backend_for(MTT_CUDA)) return mtt_last_error_code();
#ifdef MTT_HAVE_CUDA
  return mtt_cuda_wait();
#else
  return 0;
#endif
}

int mtt_cuda_memory_stats(int64_t *out4) {
  for (int i = 0; i < 4; i++) out4[i] = 0;
  if (!mtt_backend_for(MTT_CUDA)) return mtt_last_error_code();
#ifdef MTT_HAVE_CUDA
  return mtt_cuda_alloc_stats(out4);
#else
  return 0;
#endif
}

int mtt_cuda_empty_cache(void) {
  if (!mtt_backend_for(MTT_CUDA)) return mtt_last_error_code();
#ifdef MTT_HAVE_CUDA
  return mtt_cuda_release_cached();
#else
  return 0;
#endif
}

int64_t mtt_cuda_host_waits(void) {
#ifdef MTT_HAVE_CUDA
  return mtt_cuda_waits();
#else
  return 0;
#endif
}

int mtt_set_float32_matmul_precision(int precision) {
  if (precision < MTT_MATMUL_HIGHEST || precision > MTT_MATMUL_MEDIUM)
    return mtt_fail(MTT_ERR_ARG, "set_float32_matmul_precision: unknown precision %d (0 highest, 1 high, 2 medium)",
                    precision);
  matmul_precision = precision;
  return 0;
}

int mtt_get_float32_matmul_precision(void) { return matmul_precision; }
