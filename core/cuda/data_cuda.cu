/* data_cuda.cu: kernels that move data on the device: strided copy with dtype conversion, fill,
 * random numbers (the cpu's Philox streams: element i uses counter offset + i, so a seed draws
 * the same numbers on both devices), and f32 -> bf16 packing for tensor-core products. */
#include <math.h>

#include "cuda/kernels_cuda.h"
#include "philox.h"

/* ---- copy ---- */

/* Same dtype: bits move as they are, so one kernel per element size serves every dtype. */
template <typename W, typename I>
__global__ void copy_bits_kernel(W *dst, mtt_cu_layout dl, const W *src, mtt_cu_layout sl, I n) {
  for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x)
    dst[mtt_cu_offset(dl, i)] = src[mtt_cu_offset(sl, i)];
}

/* Different dtypes: through double, which holds every value of every dtype exactly. */
template <typename I>
__global__ void copy_convert_kernel(void *dst, int dt, mtt_cu_layout dl, const void *src, int st, mtt_cu_layout sl, I n) {
  for (I i = blockIdx.x * (I)blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x)
    mtt_cu_store(dst, dt, mtt_cu_offset(dl, i), mtt_cu_load(src, st, mtt_cu_offset(sl, i)));
}

/* Grid for an elementwise kernel with a grid-stride loop: enough blocks to fill the device. */
static dim3 stride_grid(int64_t n) {
  int64_t blocks = (n + 255) / 256, most = (int64_t)mtt_cuda_sm_count() * 8;
  return dim3((unsigned)(blocks < most ? blocks : most));
}

static bool fits32(const mtt_tensor *t) { return t->nelem < ((int64_t)1 << 31); }

template <typename W>
static int copy_bits(mtt_tensor *dst, const mtt_tensor *src, const mtt_cu_layout *l) {
  if (fits32(dst))
    return mtt_cuda_launch("copy", copy_bits_kernel<W, uint32_t>, stride_grid(dst->nelem), dim3(256), 0, (W *)mtt_cu_base(dst),
                           l[0], (const W *)mtt_cu_base(src), l[1], (uint32_t)dst->nelem);
  return mtt_cuda_launch("copy", copy_bits_kernel<W, uint64_t>, stride_grid(dst->nelem), dim3(256), 0, (W *)mtt_cu_base(dst),
                         l[0], (const W *)mtt_cu_base(src), l[1], (uint64_t)dst->nelem);
}

int mtt_cuda_copy(mtt_tensor *dst, const mtt_tensor *src) {
  if (src->device_id != MTT_CUDA || dst->device_id != MTT_CUDA) return mtt_cuda_transfer(dst, src);
  if (dst->nelem != src->nelem) return mtt_fail(MTT_ERR_SHAPE, "copy: %s into %s", mtt_tshape(src), mtt_tshape(dst));
  if (dst->nelem == 0) return 0;
  size_t es = mtt_dtype_size(dst->dtype_id);
  if (dst->dtype_id == src->dtype_id && mtt_is_contiguous(dst) && mtt_is_contiguous(src))
    return mtt_cuda_check(cudaMemcpyAsync(mtt_data_ptr(dst), mtt_data_ptr(src), (size_t)dst->nelem * es,
                                          cudaMemcpyDeviceToDevice, mtt_cuda_stream()),
                          "copy");
  /* src may be a broadcast view of another shape with dst's element count (reshaping copies
   * pass a view with dst's shape, so the layouts line up element by element) */
  mtt_tensor view = *src;
  if (src->ndim != dst->ndim || memcmp(src->dims, dst->dims, sizeof(int64_t) * (size_t)dst->ndim)) {
    if (!mtt_is_contiguous(src))
      return mtt_fail(MTT_ERR_SHAPE, "copy: %s into %s needs a contiguous source", mtt_tshape(src), mtt_tshape(dst));
    view.ndim = dst->ndim;
    memcpy(view.dims, dst->dims, sizeof view.dims);
    mtt_contiguous_strides(dst->ndim, dst->dims, view.strides);
  }
  const mtt_tensor *ts[2] = {dst, &view};
  mtt_cu_layout l[2];
  mtt_cu_layouts(2, ts, l);
  if (dst->dtype_id == src->dtype_id) {
    switch (es) {
      case 2: return copy_bits<uint16_t>(dst, src, l);
      case 4: return copy_bits<uint32_t>(dst, src, l);
      default: return copy_bits<uint64_t>(dst, src, l);
    }
  }
  if (fits32(dst))
    return mtt_cuda_launch("copy", copy_convert_kernel<uint32_t>, stride_grid(dst->nelem), dim3(256), 0, mtt_cu_base(dst),
                           dst->dtype_id, l[0], mtt_cu_base(src), src->dtype_id, l[1], (uint32_t)dst->nelem);
  return mtt_cuda_launch("copy", copy_convert_kernel<uint64_t>, stride_grid(dst->nelem), dim3(256), 0, mtt_cu_base(dst),
                         dst->dtype_id, l[0], mtt_cu_base(src), src->dtype_id, l[1], (uint64_t)dst->nelem);
}

/* ---- fill ---- */

template <typename W>
__global__ void fill_kernel(W *dst, mtt_cu_layout l, W bits, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[mtt_cu_offset(l, (uint64_t)i)] = bits;
}

int mtt_cuda_fill(mtt_tensor *dst, double value) {
  int64_t n = dst->nelem;
  if (n == 0) return 0;
  size_t es = mtt_dtype_size(dst->dtype_id);
  if (value == 0 && !signbit(value) && mtt_is_contiguous(dst)) /* every dtype's zero is all-zero bits */
    return mtt_cuda_check(cudaMemsetAsync(mtt_data_ptr(dst), 0, (size_t)n * es, mtt_cuda_stream()), "fill");
  uint64_t bits = 0;
  switch (dst->dtype_id) {
    case MTT_F32: {
      float v = (float)value;
      memcpy(&bits, &v, 4);
      break;
    }
    case MTT_F64: memcpy(&bits, &value, 8); break;
    case MTT_I32: {
      int32_t v = (int32_t)value;
      memcpy(&bits, &v, 4);
      break;
    }
    case MTT_BF16: {
      __nv_bfloat16 v = __float2bfloat16((float)value);
      memcpy(&bits, &v, 2);
      break;
    }
    case MTT_F16: {
      __half v = __float2half((float)value);
      memcpy(&bits, &v, 2);
      break;
    }
    default: return mtt_fail(MTT_ERR_DTYPE, "fill: dtype %s is not supported on cuda", mtt_dtype_name(dst->dtype_id));
  }
  const mtt_tensor *ts[1] = {dst};
  mtt_cu_layout l;
  mtt_cu_layouts(1, ts, &l);
  switch (es) {
    case 2: return mtt_cuda_launch("fill", fill_kernel<uint16_t>, stride_grid(n), dim3(256), 0, (uint16_t *)mtt_cu_base(dst), l, (uint16_t)bits, n);
    case 4: return mtt_cuda_launch("fill", fill_kernel<uint32_t>, stride_grid(n), dim3(256), 0, (uint32_t *)mtt_cu_base(dst), l, (uint32_t)bits, n);
    default: return mtt_cuda_launch("fill", fill_kernel<uint64_t>, stride_grid(n), dim3(256), 0, (uint64_t *)mtt_cu_base(dst), l, bits, n);
  }
}

/* ---- random ---- */

/* The formulas of cpu/data.c, element for element. */
__global__ void rand_kernel(void *dst, int dtype, int kind, double a, double b, uint64_t seed, uint64_t offset, int64_t n) {
  double span = b - a;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint32_t w[4];
    mtt_philox_inline(seed, offset + (uint64_t)i, w);
    double v;
    if (kind == MTT_RAND_NORMAL) {
      double u1 = ((double)w[0] + 1.0) / 4294967296.0, u2 = (double)w[1] / 4294967296.0;
      v = a + b * sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
    } else if (kind == MTT_RAND_INT) {
      uint64_t r = ((uint64_t)w[0] << 32) | w[1];
      v = a + (double)(r % (uint64_t)span);
    } else {
      double u = dtype == MTT_F64 ? (double)((((uint64_t)w[0] << 32) | w[1]) >> 11) * (1.0 / 9007199254740992.0)
                                  : (double)(w[0] >> 8) * (1.0 / 16777216.0);
      v = a + span * u;
    }
    mtt_cu_store(dst, dtype, i, v);
  }
}

int mtt_cuda_rand(mtt_tensor *dst, int kind, double a, double b, uint64_t seed, uint64_t offset) {
  if (dst->dtype_id != MTT_F32 && dst->dtype_id != MTT_F64 && dst->dtype_id != MTT_I32)
    return mtt_fail(MTT_ERR_DTYPE, "rand: dtype %s is not supported on cuda", mtt_dtype_name(dst->dtype_id));
  if (dst->nelem == 0) return 0;
  return mtt_cuda_launch("rand", rand_kernel, stride_grid(dst->nelem), dim3(256), 0, mtt_data_ptr(dst), dst->dtype_id, kind, a, b,
                         seed, offset, dst->nelem);
}

/* ---- f32 -> bf16 for tensor-core products ---- */

__global__ void to_bf16_flat_kernel(__nv_bfloat16 *dst, const float *src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __float2bfloat16(src[i]);
}

void *mtt_cuda_to_bf16(const mtt_tensor *x, const char *what) {
  __nv_bfloat16 *dst = (__nv_bfloat16 *)mtt_cuda_scratch((size_t)x->nelem * 2, what);
  if (!dst || x->nelem == 0) return dst;
  int rc;
  if (mtt_is_contiguous(x)) {
    rc = mtt_cuda_launch(what, to_bf16_flat_kernel, stride_grid(x->nelem), dim3(256), 0, dst, (const float *)mtt_data_ptr(x), x->nelem);
  } else {
    mtt_tensor packed = *x; /* a struct over the scratch, for the layout only */
    mtt_contiguous_strides(x->ndim, x->dims, packed.strides);
    packed.offset = 0;
    const mtt_tensor *ts[2] = {&packed, x};
    mtt_cu_layout l[2];
    mtt_cu_layouts(2, ts, l);
    rc = mtt_cuda_launch(what, copy_convert_kernel<uint64_t>, stride_grid(x->nelem), dim3(256), 0, (void *)dst, (int)MTT_BF16,
                         l[0], mtt_cu_base(x), (int)MTT_F32, l[1], (uint64_t)x->nelem);
  }
  if (rc) {
    mtt_cuda_free(dst);
    return NULL;
  }
  return dst;
}
