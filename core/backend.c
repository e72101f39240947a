/* backend.c: the registry of device backends, the one file that knows which devices exist. */
#include "backend.h"

const mtt_backend *mtt_backend_for(int device) {
  switch (device) {
    case MTT_CPU: return &mtt_backend_cpu;
    case MTT_CUDA:
      mtt_fail(MTT_ERR_DEVICE, "cuda: this build of mtt has no CUDA backend (or no CUDA device is present)");
      return NULL;
    default: mtt_fail(MTT_ERR_DEVICE, "unknown device %d", device); return NULL;
  }
}

const mtt_backend *mtt_backend_of(const mtt_tensor *t) { return mtt_backend_for(t->device_id); }

int mtt_cuda_available(void) { return 0; }
