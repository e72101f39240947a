/* cuda_backend.h: what core/backend.c (C) may call of the cuda backend (core/cuda/, C++ and
 * CUDA). Only backend.c includes it, and only when the backend is compiled in (MTT_HAVE_CUDA). */
#ifndef MTT_CUDA_BACKEND_H
#define MTT_CUDA_BACKEND_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mtt_backend;

/* The kernel table once a device is usable, else NULL with an mtt error saying why (no device,
 * driver too old...). The first call initializes the device, the stream and cuBLAS. */
const struct mtt_backend *mtt_cuda_backend(void);
/* Number of usable devices (0 when none); never leaves an error behind. */
int mtt_cuda_count(void);
/* A line describing the device, or why there is none. */
const char *mtt_cuda_info(void);
int mtt_cuda_wait(void);
/* How many times the host has waited for the device's stream (mtt_cuda_host_waits). */
int64_t mtt_cuda_waits(void);
int mtt_cuda_emulated(void);
/* Caching allocator (alloc_cuda.cu). */
void *mtt_cuda_alloc(size_t nbytes);
void mtt_cuda_free(void *ptr);
/* bytes: in use by tensors, cached free, peak in use, device total */
int mtt_cuda_alloc_stats(int64_t *out4);
int mtt_cuda_release_cached(void);

#ifdef __cplusplus
}
#endif
#endif
