/*
 * tensor.c: tensors as strided views on refcounted storage.
 *
 * A tensor owns one reference to its storage; views (views.c) are new tensor structs on the same
 * storage with their own dims/strides/offset. Tensors themselves are refcounted because the
 * autograd graph and the Lua side both hold them. Creation functions here never record
 * autograd: a new tensor is a leaf.
 */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "internal.h"

const char *mtt_version(void) { return MTT_VERSION; }

size_t mtt_dtype_size(int dtype) {
  switch (dtype) {
    case MTT_F32: return 4;
    case MTT_F64: return 8;
    case MTT_I32: return 4;
    case MTT_BF16: return 2;
    case MTT_F16: return 2;
    default: return 0;
  }
}

const char *mtt_dtype_name(int dtype) {
  static const char *const names[] = {"f32", "f64", "i32", "bf16", "f16"};
  return (dtype >= 0 && dtype <= MTT_F16) ? names[dtype] : "?";
}

bool mtt_is_float_dtype(int dtype) { return dtype == MTT_F32 || dtype == MTT_F64; }

void mtt_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d] > 0 ? shape[d] : 1;
  }
}

int64_t mtt_shape_numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  return n;
}

/* Validates a shape and its element count (no overflow); returns the count or -1 with an error. */
static int64_t checked_numel(const char *op, int ndim, const int64_t *shape, int dtype) {
  if (ndim < 0 || ndim > MTT_MAX_DIMS) {
    mtt_fail(MTT_ERR_SHAPE, "%s: %d dims requested, at most %d are supported", op, ndim, MTT_MAX_DIMS);
    return -1;
  }
  if (mtt_dtype_size(dtype) == 0) {
    mtt_fail(MTT_ERR_DTYPE, "%s: unknown dtype %d", op, dtype);
    return -1;
  }
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0) {
      mtt_fail(MTT_ERR_SHAPE, "%s: negative size %lld in shape %s", op, (long long)shape[d], mtt_shape_str(ndim, shape));
      return -1;
    }
    if (shape[d] > 0 && n > (INT64_MAX / 16) / shape[d]) {
      mtt_fail(MTT_ERR_MEMORY, "%s: shape %s has too many elements", op, mtt_shape_str(ndim, shape));
      return -1;
    }
    n *= shape[d];
  }
  return n;
}

static mtt_tensor *tensor_struct(int ndim, const int64_t *shape, int dtype, int device) {
  mtt_tensor *t = calloc(1, sizeof *t);
  if (!t) MTT_FAIL_NULL(MTT_ERR_MEMORY, "out of memory allocating a tensor header");
  t->ndim = ndim;
  t->dtype_id = dtype;
  t->device_id = device;
  t->refcount = 1;
  for (int d = 0; d < ndim; d++) t->dims[d] = shape[d];
  t->nelem = mtt_shape_numel(ndim, shape);
  return t;
}

mtt_tensor *mtt_tensor_new(int ndim, const int64_t *shape, int dtype, int device) {
  int64_t n = checked_numel("empty", ndim, shape, dtype);
  if (n < 0) return NULL;
  const mtt_backend *be = mtt_backend_for(device);
  if (!be) return NULL;
  size_t nbytes = (size_t)n * mtt_dtype_size(dtype);
  mtt_storage *s = calloc(1, sizeof *s);
  void *data = be->alloc(nbytes ? nbytes : 1);
  if (!s || !data) {
    free(s);
    if (data) be->free(data);
    MTT_FAIL_NULL(MTT_ERR_MEMORY, "out of memory allocating %s %s (%zu bytes) on %s", mtt_dtype_name(dtype),
                  mtt_shape_str(ndim, shape), nbytes, be->name);
  }
  s->refcount = 1;
  s->device = device;
  s->nbytes = nbytes;
  s->data = data;
  mtt_tensor *t = tensor_struct(ndim, shape, dtype, device);
  if (!t) {
    be->free(data);
    free(s);
    return NULL;
  }
  t->storage = s;
  mtt_contiguous_strides(ndim, shape, t->strides);
  return t;
}

mtt_tensor *mtt_tensor_new_like(const mtt_tensor *t) { return mtt_tensor_new(t->ndim, t->dims, t->dtype_id, t->device_id); }

mtt_tensor *mtt_tensor_alias(const mtt_tensor *t, int ndim, const int64_t *shape, const int64_t *strides,
                             int64_t offset) {
  mtt_tensor *v = tensor_struct(ndim, shape, t->dtype_id, t->device_id);
  if (!v) return NULL;
  for (int d = 0; d < ndim; d++) v->strides[d] = strides[d];
  v->offset = offset;
  v->storage = t->storage;
  if (v->storage) v->storage->refcount++;
  return v;
}

static void storage_release(mtt_storage *s) {
  if (s && --s->refcount == 0) {
    if (s->release) {
      s->release(s->release_ctx);
    } else {
      const mtt_backend *be = mtt_backend_for(s->device);
      if (be) be->free(s->data);
    }
    free(s);
  }
}

mtt_tensor *mtt_tensor_from_external(int ndim, const int64_t *shape, int dtype, void *data, size_t nbytes,
                                     void (*release)(void *ctx), void *ctx) {
  int64_t n = checked_numel("from_external", ndim, shape, dtype);
  if (n < 0) return NULL;
  if ((size_t)n * mtt_dtype_size(dtype) > nbytes)
    MTT_FAIL_NULL(MTT_ERR_SHAPE, "from_external: %s %s needs %zu bytes, the buffer has %zu", mtt_dtype_name(dtype),
                  mtt_shape_str(ndim, shape), (size_t)n * mtt_dtype_size(dtype), nbytes);
  mtt_storage *s = calloc(1, sizeof *s);
  mtt_tensor *t = s ? tensor_struct(ndim, shape, dtype, MTT_CPU) : NULL;
  if (!t) {
    free(s);
    MTT_FAIL_NULL(MTT_ERR_MEMORY, "from_external: out of memory");
  }
  *s = (mtt_storage){.refcount = 1, .device = MTT_CPU, .nbytes = nbytes, .data = data, .release = release,
                     .release_ctx = ctx};
  t->storage = s;
  mtt_contiguous_strides(ndim, shape, t->strides);
  return t;
}

void mtt_tensor_retain(mtt_tensor *t) {
  if (t) t->refcount++;
}

void mtt_tensor_release(mtt_tensor *t) {
  if (!t || --t->refcount > 0) return;
  storage_release(t->storage);
  mtt_tensor_release(t->grad_tensor);
  mtt_node_release(t->grad_node);
  free(t);
}

int mtt_tensor_free_data(mtt_tensor *t) {
  if (!t) return mtt_fail(MTT_ERR_ARG, "free: null tensor");
  storage_release(t->storage);
  t->storage = NULL;
  mtt_tensor_release(t->grad_tensor);
  t->grad_tensor = NULL;
  return 0;
}

void mtt_storage_bump(mtt_tensor *t) {
  if (t && t->storage) t->storage->version++;
}

/* ---- checks shared by ops ---- */

int mtt_check_live(const mtt_tensor *t, const char *op) {
  if (!t) return mtt_fail(MTT_ERR_ARG, "%s: expected a tensor, got nil", op);
  if (!t->storage) return mtt_fail(MTT_ERR_STATE, "%s: tensor %s was freed (t:free()) and cannot be used", op, mtt_tshape(t));
  return 0;
}

int mtt_check_float(const mtt_tensor *t, const char *op) {
  if (!mtt_is_float_dtype(t->dtype_id))
    return mtt_fail(MTT_ERR_DTYPE, "%s: expected a floating tensor (f32 or f64), got %s %s", op, mtt_dtype_name(t->dtype_id),
                    mtt_tshape(t));
  return 0;
}

int mtt_check_same(const mtt_tensor *a, const mtt_tensor *b, const char *op) {
  if (a->dtype_id != b->dtype_id)
    return mtt_fail(MTT_ERR_DTYPE, "%s: dtypes differ: %s %s and %s %s", op, mtt_dtype_name(a->dtype_id), mtt_tshape(a),
                    mtt_dtype_name(b->dtype_id), mtt_tshape(b));
  if (a->device_id != b->device_id)
    return mtt_fail(MTT_ERR_DEVICE, "%s: tensors are on different devices (%s and %s)", op,
                    a->device_id == MTT_CPU ? "cpu" : "cuda", b->device_id == MTT_CPU ? "cpu" : "cuda");
  return 0;
}

int mtt_check_dim(const mtt_tensor *t, int dim, const char *op) {
  if (dim < 0 || dim >= t->ndim)
    return mtt_fail(MTT_ERR_INDEX, "%s: dim %d out of range for a %d-d tensor %s", op, dim + 1, t->ndim, mtt_tshape(t));
  return 0;
}

int mtt_check_inplace(const mtt_tensor *t, const char *op) {
  if (mtt_check_live(t, op)) return mtt_last_error_code();
  if (t->needs_grad && mtt_grad_mode())
    return mtt_fail(MTT_ERR_STATE,
                    "%s: in-place change of a tensor %s that requires grad (use mtt.no_grad or detach() first)", op,
                    mtt_tshape(t));
  return 0;
}

int mtt_broadcast_shape(const mtt_tensor *a, const mtt_tensor *b, const char *op, int *ndim, int64_t *shape) {
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int d = 0; d < n; d++) {
    int da = d - (n - a->ndim), db = d - (n - b->ndim);
    int64_t sa = da >= 0 ? a->dims[da] : 1, sb = db >= 0 ? b->dims[db] : 1;
    if (sa != sb && sa != 1 && sb != 1)
      return mtt_fail(MTT_ERR_SHAPE, "%s: shapes %s and %s cannot be broadcast (dim %d: %lld vs %lld)", op, mtt_tshape(a),
                      mtt_tshape(b), d + 1, (long long)sa, (long long)sb);
    shape[d] = sa == 1 ? sb : sa;
  }
  *ndim = n;
  return 0;
}

mtt_tensor *mtt_broadcast_to(const mtt_tensor *t, int ndim, const int64_t *shape) {
  int64_t strides[MTT_MAX_DIMS];
  for (int d = 0; d < ndim; d++) {
    int dt = d - (ndim - t->ndim);
    strides[d] = (dt >= 0 && t->dims[dt] == shape[d]) ? t->strides[dt] : 0;
  }
  return mtt_tensor_alias(t, ndim, shape, strides, t->offset);
}

/* ---- layout ---- */

int mtt_is_contiguous(const mtt_tensor *t) {
  int64_t s = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->dims[d] != 1 && t->strides[d] != s) return 0;
    s *= t->dims[d];
  }
  return 1;
}

void *mtt_data_ptr(const mtt_tensor *t) {
  if (!t || !t->storage) return NULL;
  return (char *)t->storage->data + t->offset * (int64_t)mtt_dtype_size(t->dtype_id);
}

mtt_tensor *mtt_copy_raw(const mtt_tensor *t) {
  if (mtt_check_live(t, "copy")) return NULL;
  mtt_tensor *c = mtt_tensor_new_like(t);
  if (!c) return NULL;
  if (mtt_backend_of(t)->copy(c, t)) {
    mtt_tensor_release(c);
    return NULL;
  }
  return c;
}

mtt_tensor *mtt_contiguous_raw(const mtt_tensor *t) {
  if (mtt_check_live(t, "contiguous")) return NULL;
  if (mtt_is_contiguous(t)) {
    /* A fresh struct, so that callers may own it without touching the caller's autograd. */
    return mtt_tensor_alias(t, t->ndim, t->dims, t->strides, t->offset);
  }
  return mtt_copy_raw(t);
}

void mtt_abi_tensor_layout(int64_t *out) {
  out[0] = (int64_t)sizeof(mtt_tensor);
  out[1] = offsetof(mtt_tensor, dims);
  out[2] = offsetof(mtt_tensor, strides);
  out[3] = offsetof(mtt_tensor, offset);
  out[4] = offsetof(mtt_tensor, nelem);
  out[5] = offsetof(mtt_tensor, ndim);
  out[6] = offsetof(mtt_tensor, dtype_id);
  out[7] = offsetof(mtt_tensor, device_id);
  out[8] = offsetof(mtt_tensor, needs_grad);
  out[9] = offsetof(mtt_tensor, refcount);
  out[10] = offsetof(mtt_tensor, reserved);
  out[11] = offsetof(mtt_tensor, storage);
  out[12] = offsetof(mtt_tensor, grad_tensor);
  out[13] = offsetof(mtt_tensor, grad_node);
  out[14] = (int64_t)sizeof(mtt_generator);
  out[15] = offsetof(mtt_generator, offset);
}

/* ---- creation ---- */

mtt_tensor *mtt_empty(int ndim, const int64_t *shape, int dtype, int device) {
  return mtt_tensor_new(ndim, shape, dtype, device);
}

mtt_tensor *mtt_full(int ndim, const int64_t *shape, double value, int dtype, int device) {
  mtt_tensor *t = mtt_tensor_new(ndim, shape, dtype, device);
  if (t && mtt_backend_of(t)->fill(t, value)) {
    mtt_tensor_release(t);
    return NULL;
  }
  return t;
}

mtt_tensor *mtt_zeros(int ndim, const int64_t *shape, int dtype, int device) { return mtt_full(ndim, shape, 0.0, dtype, device); }

mtt_tensor *mtt_arange(double start, double end, double step, int dtype, int device) {
  if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step))
    MTT_FAIL_NULL(MTT_ERR_ARG, "arange: invalid range (start %g, end %g, step %g)", start, end, step);
  double count = ceil((end - start) / step);
  if (count < 0) count = 0;
  if (count > 1e12) MTT_FAIL_NULL(MTT_ERR_MEMORY, "arange: %g elements is too many", count);
  int64_t n = (int64_t)count;
  double *values = malloc(sizeof(double) * (size_t)(n ? n : 1));
  if (!values) MTT_FAIL_NULL(MTT_ERR_MEMORY, "arange: out of memory");
  for (int64_t i = 0; i < n; i++) values[i] = start + (double)i * step;
  mtt_tensor *t = mtt_from_f64(1, &n, values, dtype, device);
  free(values);
  return t;
}

/* Host values into a new tensor: a contiguous f64 view of `values` copied by the backend. */
mtt_tensor *mtt_from_f64(int ndim, const int64_t *shape, const double *values, int dtype, int device) {
  int64_t n = checked_numel("tensor", ndim, shape, dtype);
  if (n < 0) return NULL;
  mtt_tensor *t = mtt_tensor_new(ndim, shape, dtype, device);
  if (!t) return NULL;
  if (dtype == MTT_I32) {
    for (int64_t i = 0; i < n; i++) {
      double v = values[i];
      if (!(v >= -2147483648.0 && v <= 2147483647.0) || v != floor(v)) {
        mtt_tensor_release(t);
        MTT_FAIL_NULL(MTT_ERR_ARG, "tensor: value %g at position %lld is not a 32-bit integer", v, (long long)i + 1);
      }
    }
  }
  mtt_storage host = {.refcount = 1, .device = MTT_CPU, .nbytes = (size_t)n * 8, .data = (void *)values};
  mtt_tensor src = {.ndim = ndim, .dtype_id = MTT_F64, .device_id = MTT_CPU, .nelem = n, .storage = &host};
  for (int d = 0; d < ndim; d++) src.dims[d] = shape[d];
  mtt_contiguous_strides(ndim, shape, src.strides);
  if (mtt_backend_of(t)->copy(t, &src)) {
    mtt_tensor_release(t);
    return NULL;
  }
  return t;
}

mtt_tensor *mtt_from_bytes(int ndim, const int64_t *shape, const void *data, int dtype, int device) {
  mtt_tensor *t = mtt_tensor_new(ndim, shape, dtype, device);
  if (!t) return NULL;
  if (device != MTT_CPU) {
    mtt_tensor_release(t);
    MTT_FAIL_NULL(MTT_ERR_DEVICE, "from_bytes: only cpu tensors can be filled from host memory directly");
  }
  memcpy(t->storage->data, data, t->storage->nbytes);
  return t;
}

/* ---- element access (cpu; reads also from devices, copied down) ---- */

/* any_device: reads may address a device tensor (device_get copies the element down). */
static int element_offset(const mtt_tensor *t, const int64_t *index, const char *op, int any_device, int64_t *off) {
  if (mtt_check_live(t, op)) return mtt_last_error_code();
  if (t->device_id != MTT_CPU && !any_device)
    return mtt_fail(MTT_ERR_DEVICE, "%s: tensor is not on the cpu (move it with :to('cpu'))", op);
  int64_t o = t->offset;
  for (int d = 0; d < t->ndim; d++) {
    if (index[d] < 0 || index[d] >= t->dims[d])
      return mtt_fail(MTT_ERR_INDEX, "%s: index %lld out of range for dim %d of size %lld (shape %s)", op,
                      (long long)index[d] + 1, d + 1, (long long)t->dims[d], mtt_tshape(t));
    o += index[d] * t->strides[d];
  }
  *off = o;
  return 0;
}

static double load_at(const mtt_tensor *t, int64_t o) {
  const void *base = t->storage->data;
  switch (t->dtype_id) {
    case MTT_F32: return ((const float *)base)[o];
    case MTT_F64: return ((const double *)base)[o];
    case MTT_I32: return ((const int32_t *)base)[o];
    default: return NAN;
  }
}

/* Element o of a device tensor: its backend copies that one element (converted to f64 on the
 * device, so bf16/f16 read too) into a host double; this waits for the device. */
static int device_get(const mtt_tensor *t, int64_t o, double *out) {
  const mtt_backend *be = mtt_backend_of(t);
  if (!be) return mtt_last_error_code();
  mtt_tensor one = {.ndim = 0, .dtype_id = t->dtype_id, .device_id = t->device_id, .nelem = 1, .offset = o,
                    .storage = t->storage};
  mtt_storage host = {.refcount = 1, .device = MTT_CPU, .nbytes = sizeof *out, .data = out};
  mtt_tensor dst = {.ndim = 0, .dtype_id = MTT_F64, .device_id = MTT_CPU, .nelem = 1, .storage = &host};
  return be->transfer(&dst, &one);
}

int mtt_get(const mtt_tensor *t, const int64_t *index, double *out) {
  int64_t o = 0;
  if (element_offset(t, index, "get", 1, &o)) return mtt_last_error_code();
  if (t->device_id != MTT_CPU) return device_get(t, o, out);
  if (!mtt_is_float_dtype(t->dtype_id) && t->dtype_id != MTT_I32)
    return mtt_fail(MTT_ERR_DTYPE, "get: dtype %s cannot be read on the cpu yet", mtt_dtype_name(t->dtype_id));
  *out = load_at(t, o);
  return 0;
}

int mtt_set(mtt_tensor *t, const int64_t *index, double value) {
  int64_t o = 0;
  if (element_offset(t, index, "set", 0, &o)) return mtt_last_error_code();
  if (mtt_check_inplace(t, "set")) return mtt_last_error_code();
  void *base = t->storage->data;
  switch (t->dtype_id) {
    case MTT_F32: ((float *)base)[o] = (float)value; break;
    case MTT_F64: ((double *)base)[o] = value; break;
    case MTT_I32:
      if (!(value >= -2147483648.0 && value <= 2147483647.0))
        return mtt_fail(MTT_ERR_ARG, "set: value %g does not fit in i32", value);
      ((int32_t *)base)[o] = (int32_t)value;
      break;
    default: return mtt_fail(MTT_ERR_DTYPE, "set: dtype %s cannot be written on the cpu yet", mtt_dtype_name(t->dtype_id));
  }
  mtt_storage_bump(t);
  return 0;
}

int mtt_item(const mtt_tensor *t, double *out) {
  if (mtt_check_live(t, "item")) return mtt_last_error_code();
  if (t->nelem != 1)
    return mtt_fail(MTT_ERR_SHAPE, "item: tensor %s has %lld elements, item() needs exactly one", mtt_tshape(t),
                    (long long)t->nelem);
  int64_t zeros[MTT_MAX_DIMS] = {0};
  return mtt_get(t, zeros, out);
}

int mtt_to_f64(const mtt_tensor *t, double *out, int64_t n) {
  if (mtt_check_live(t, "totable")) return mtt_last_error_code();
  if (n < t->nelem) return mtt_fail(MTT_ERR_ARG, "totable: buffer of %lld for %lld elements", (long long)n, (long long)t->nelem);
  mtt_storage host = {.refcount = 1, .device = MTT_CPU, .nbytes = (size_t)t->nelem * 8, .data = out};
  mtt_tensor dst = {.ndim = t->ndim, .dtype_id = MTT_F64, .device_id = MTT_CPU, .nelem = t->nelem, .storage = &host};
  for (int d = 0; d < t->ndim; d++) dst.dims[d] = t->dims[d];
  mtt_contiguous_strides(t->ndim, t->dims, dst.strides);
  if (t->device_id == MTT_CPU) return mtt_backend_cpu.copy(&dst, t);
  /* a device tensor comes down through its backend (gathered and converted there; one wait) */
  const mtt_backend *be = mtt_backend_of(t);
  if (!be) return mtt_last_error_code();
  return t->nelem ? be->transfer(&dst, t) : 0;
}

/* ---- random ---- */

static mtt_generator default_generator = {.seed = 0x6d7474, .offset = 0};

mtt_generator *mtt_default_generator(void) { return &default_generator; }

void mtt_manual_seed(uint64_t seed) {
  default_generator.seed = seed;
  default_generator.offset = 0;
}

static mtt_tensor *random_tensor(const char *op, int kind, double a, double b, int ndim, const int64_t *shape, int dtype,
                                 int device, mtt_generator *gen) {
  if (!gen) gen = &default_generator;
  if (kind != MTT_RAND_INT && !mtt_is_float_dtype(dtype))
    MTT_FAIL_NULL(MTT_ERR_DTYPE, "%s: dtype must be f32 or f64, got %s", op, mtt_dtype_name(dtype));
  mtt_tensor *t = mtt_tensor_new(ndim, shape, dtype, device);
  if (!t) return NULL;
  if (mtt_backend_of(t)->rand(t, kind, a, b, gen->seed, gen->offset)) {
    mtt_tensor_release(t);
    return NULL;
  }
  gen->offset += (uint64_t)t->nelem;
  return t;
}

mtt_tensor *mtt_rand(int ndim, const int64_t *shape, int dtype, int device, mtt_generator *gen) {
  return random_tensor("rand", MTT_RAND_UNIFORM, 0, 1, ndim, shape, dtype, device, gen);
}

mtt_tensor *mtt_randn(int ndim, const int64_t *shape, int dtype, int device, mtt_generator *gen) {
  return random_tensor("randn", MTT_RAND_NORMAL, 0, 1, ndim, shape, dtype, device, gen);
}

mtt_tensor *mtt_randint(int64_t low, int64_t high, int ndim, const int64_t *shape, int device, mtt_generator *gen) {
  if (high <= low || low < INT32_MIN || high > (int64_t)INT32_MAX + 1)
    MTT_FAIL_NULL(MTT_ERR_ARG, "randint: need low < high within i32, got [%lld, %lld)", (long long)low, (long long)high);
  return random_tensor("randint", MTT_RAND_INT, (double)low, (double)high, ndim, shape, MTT_I32, device, gen);
}
