/*
 * safetensors.c: the safetensors format, read through mmap and written atomically.
 *
 * Layout (as published by Hugging Face): 8 bytes little-endian header length N, N bytes of JSON
 * {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...},
 * then the data region; offsets count from its start. The reference writer sorts tensors by
 * dtype alignment (largest first) then name, packs them without gaps and pads the header with
 * spaces to a multiple of 8, so every tensor is aligned for its dtype. The reader refuses what
 * the reference refuses (gaps, overlaps, bytes after the last tensor, a size that does not match
 * dtype x shape) plus what mtt cannot hold (more than 8 dims, float dtypes it lacks).
 *
 * Tensors read from a file point into one private mapping, shared and refcounted: the file is
 * unmapped when the handle and the last tensor are gone. MAP_PRIVATE makes in-place writes copy
 * the touched pages, so a loaded checkpoint can be trained on without changing the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "io/io.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data are little-endian; so is this code");

#define ST_MAX_HEADER 100000000ull /* the reference's limit */

enum { KIND_FLOAT, KIND_SIGNED, KIND_UNSIGNED, KIND_NONE };

/* The format's dtypes in the reference's order, which is increasing alignment: writers sort
 * by this rank, descending. mtt: the dtype the bytes map onto, or -1 (converted or refused). */
static const struct {
  const char *name;
  int size, mtt, kind;
} st_dtypes[] = {
    {"BOOL", 1, -1, KIND_UNSIGNED}, {"U8", 1, -1, KIND_UNSIGNED},  {"I8", 1, -1, KIND_SIGNED},
    {"F8_E5M2", 1, -1, KIND_NONE},  {"F8_E4M3", 1, -1, KIND_NONE}, {"I16", 2, -1, KIND_SIGNED},
    {"U16", 2, -1, KIND_UNSIGNED},  {"F16", 2, MTT_F16, KIND_FLOAT}, {"BF16", 2, MTT_BF16, KIND_FLOAT},
    {"I32", 4, MTT_I32, KIND_SIGNED}, {"U32", 4, -1, KIND_UNSIGNED}, {"F32", 4, MTT_F32, KIND_FLOAT},
    {"F64", 8, MTT_F64, KIND_FLOAT}, {"I64", 8, -1, KIND_SIGNED},  {"U64", 8, -1, KIND_UNSIGNED},
};
#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

static int st_dtype_of_mtt(int dtype) {
  for (int i = 0; i < ST_NDTYPES; i++)
    if (st_dtypes[i].mtt == dtype) return i;
  return -1;
}

typedef struct st_map {
  void *base;
  size_t size;
  int refs;
} st_map;

typedef struct st_entry {
  char *name;
  int dtype; /* index into st_dtypes */
  int ndim;
  int64_t shape[MTT_MAX_DIMS];
  uint64_t begin, end;
} st_entry;

struct mtt_safetensors {
  char *path;
  st_map *map;
  const char *data; /* start of the data region */
  uint64_t data_len;
  int n, cap;
  st_entry *e;
  int n_meta, meta_cap, has_meta;
  char **keys, **values;
};

static void map_release(void *ctx) {
  st_map *m = ctx;
  if (--m->refs == 0) {
    munmap(m->base, m->size);
    free(m);
  }
}

static void st_free(mtt_safetensors *f) {
  if (!f) return;
  for (int i = 0; i < f->n; i++) free(f->e[i].name);
  for (int i = 0; i < f->n_meta; i++) free(f->keys[i]), free(f->values[i]);
  free(f->e);
  free(f->keys);
  free(f->values);
  if (f->map) map_release(f->map);
  free(f->path);
  free(f);
}

/* ---- header parsing ---- */

static bool parse_shape(mtt_json *j, st_entry *e) {
  if (!mtt_json_expect(j, '[', "'[' (a shape)")) return false;
  e->ndim = 0;
  if (mtt_json_eat(j, ']')) return true;
  do {
    uint64_t v;
    if (!mtt_json_uint(j, &v)) return false;
    if (e->ndim == MTT_MAX_DIMS) return mtt_json_fail(j, "tensor '%.40s' has more than %d dims, mtt supports at most %d", e->name, MTT_MAX_DIMS, MTT_MAX_DIMS);
    if (v > (uint64_t)INT64_MAX) return mtt_json_fail(j, "tensor '%.40s': size %llu is too large", e->name, (unsigned long long)v);
    e->shape[e->ndim++] = (int64_t)v;
  } while (mtt_json_eat(j, ','));
  return mtt_json_expect(j, ']', "',' or ']'");
}

static bool parse_offsets(mtt_json *j, st_entry *e) {
  if (!mtt_json_expect(j, '[', "'[' (data_offsets)")) return false;
  if (!mtt_json_uint(j, &e->begin) || !mtt_json_expect(j, ',', "',' (data_offsets holds two numbers)") ||
      !mtt_json_uint(j, &e->end))
    return false;
  return mtt_json_expect(j, ']', "']' (data_offsets holds two numbers)");
}

static bool parse_entry(mtt_json *j, st_entry *e) {
  if (!mtt_json_expect(j, '{', "'{' (a tensor's description)")) return false;
  bool seen_dtype = false, seen_shape = false, seen_offsets = false;
  if (!mtt_json_eat(j, '}')) {
    do {
      char *key = mtt_json_string(j, NULL);
      if (!key || !mtt_json_expect(j, ':', "':'")) return free(key), false;
      bool ok;
      if (strcmp(key, "dtype") == 0 && !seen_dtype) {
        seen_dtype = true;
        char *d = mtt_json_string(j, NULL);
        ok = d != NULL;
        e->dtype = -1;
        for (int i = 0; ok && i < ST_NDTYPES; i++)
          if (strcmp(d, st_dtypes[i].name) == 0) e->dtype = i;
        if (ok && e->dtype < 0) ok = mtt_json_fail(j, "tensor '%.40s' has unknown dtype '%.20s'", e->name, d);
        free(d);
      } else if (strcmp(key, "shape") == 0 && !seen_shape) {
        seen_shape = true;
        ok = parse_shape(j, e);
      } else if (strcmp(key, "data_offsets") == 0 && !seen_offsets) {
        seen_offsets = true;
        ok = parse_offsets(j, e);
      } else if (strcmp(key, "dtype") == 0 || strcmp(key, "shape") == 0 || strcmp(key, "data_offsets") == 0) {
        ok = mtt_json_fail(j, "tensor '%.40s' gives '%s' twice", e->name, key);
      } else {
        ok = mtt_json_skip(j); /* fields a later writer may add: ignored, as the reference does */
      }
      free(key);
      if (!ok) return false;
    } while (mtt_json_eat(j, ','));
    if (!mtt_json_expect(j, '}', "',' or '}'")) return false;
  }
  const char *missing = !seen_dtype ? "dtype" : !seen_shape ? "shape" : !seen_offsets ? "data_offsets" : NULL;
  if (missing) return mtt_json_fail(j, "tensor '%.40s' lacks '%s'", e->name, missing);
  return true;
}

static bool parse_metadata(mtt_json *j, mtt_safetensors *f) {
  if (f->has_meta) return mtt_json_fail(j, "'__metadata__' appears twice");
  f->has_meta = 1;
  if (!mtt_json_expect(j, '{', "'{' (__metadata__ is an object of strings)")) return false;
  if (mtt_json_eat(j, '}')) return true;
  do {
    if (f->n_meta == f->meta_cap) {
      int cap = f->meta_cap ? 2 * f->meta_cap : 8;
      char **k = realloc(f->keys, (size_t)cap * sizeof *k);
      if (k) f->keys = k;
      char **v = k ? realloc(f->values, (size_t)cap * sizeof *v) : NULL;
      if (v) f->values = v;
      if (!k || !v) return mtt_json_fail(j, "out of memory");
      f->meta_cap = cap;
    }
    char *key = mtt_json_string(j, NULL);
    if (!key) return false;
    if (!mtt_json_expect(j, ':', "':'")) return free(key), false;
    mtt_json_ws(j);
    if (j->p >= j->end || *j->p != '"') {
      mtt_json_fail(j, "__metadata__ value of '%.40s' is not a string", key);
      return free(key), false;
    }
    char *value = mtt_json_string(j, NULL);
    if (!value) return free(key), false;
    for (int i = 0; i < f->n_meta; i++)
      if (strcmp(f->keys[i], key) == 0) {
        mtt_json_fail(j, "__metadata__ key '%.40s' appears twice", key);
        return free(key), free(value), false;
      }
    f->keys[f->n_meta] = key;
    f->values[f->n_meta++] = value;
  } while (mtt_json_eat(j, ','));
  return mtt_json_expect(j, '}', "',' or '}'");
}

static bool parse_header(mtt_json *j, mtt_safetensors *f) {
  if (!mtt_json_expect(j, '{', "'{' (the header is a JSON object)")) return false;
  if (!mtt_json_eat(j, '}')) {
    do {
      char *key = mtt_json_string(j, NULL);
      if (!key) return false;
      if (!mtt_json_expect(j, ':', "':'")) return free(key), false;
      if (strcmp(key, "__metadata__") == 0) {
        free(key);
        if (!parse_metadata(j, f)) return false;
        continue;
      }
      if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 64;
        st_entry *e = realloc(f->e, (size_t)cap * sizeof *e);
        if (!e) return free(key), mtt_json_fail(j, "out of memory");
        f->e = e;
        f->cap = cap;
      }
      st_entry *e = &f->e[f->n++];
      memset(e, 0, sizeof *e);
      e->name = key;
      if (!parse_entry(j, e)) return false;
    } while (mtt_json_eat(j, ','));
    if (!mtt_json_expect(j, '}', "',' or '}'")) return false;
  }
  mtt_json_ws(j);
  if (j->p != j->end) return mtt_json_fail(j, "unexpected bytes after the header's JSON object");
  return true;
}

/* ---- validation ---- */

static int cmp_offsets(const void *a, const void *b) {
  const st_entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

static int cmp_name_ptr(const void *a, const void *b) {
  return strcmp((*(const st_entry *const *)a)->name, (*(const st_entry *const *)b)->name);
}

static int validate(mtt_safetensors *f) {
  const char *path = f->path;
  for (int i = 0; i < f->n; i++) {
    st_entry *e = &f->e[i];
    uint64_t bytes = (uint64_t)st_dtypes[e->dtype].size;
    for (int d = 0; d < e->ndim; d++) {
      if (e->shape[d] != 0 && bytes > UINT64_MAX / (uint64_t)e->shape[d])
        return mtt_fail(MTT_ERR_ARG, "safetensors: '%s': tensor '%s': shape %s overflows", path, e->name,
                        mtt_shape_str(e->ndim, e->shape));
      bytes *= (uint64_t)e->shape[d];
    }
    if (e->end < e->begin)
      return mtt_fail(MTT_ERR_ARG, "safetensors: '%s': tensor '%s': data_offsets [%llu, %llu] are reversed", path,
                      e->name, (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > f->data_len)
      return mtt_fail(MTT_ERR_ARG,
                      "safetensors: '%s': tensor '%s': data_offsets [%llu, %llu] go past the end of the data "
                      "(%llu bytes): the file is truncated or corrupt",
                      path, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                      (unsigned long long)f->data_len);
    if (e->end - e->begin != bytes)
      return mtt_fail(MTT_ERR_ARG,
                      "safetensors: '%s': tensor '%s': %s %s needs %llu bytes, data_offsets [%llu, %llu] hold %llu",
                      path, e->name, st_dtypes[e->dtype].name, mtt_shape_str(e->ndim, e->shape),
                      (unsigned long long)bytes, (unsigned long long)e->begin, (unsigned long long)e->end,
                      (unsigned long long)(e->end - e->begin));
  }
  /* file order = offset order (the reference reads them so too); then no overlap, no gap */
  if (f->n > 1) qsort(f->e, (size_t)f->n, sizeof *f->e, cmp_offsets);
  uint64_t at = 0;
  for (int i = 0; i < f->n; i++) {
    st_entry *e = &f->e[i];
    if (e->begin < at)
      return mtt_fail(MTT_ERR_ARG, "safetensors: '%s': tensors '%s' and '%s' overlap (data_offsets [%llu, %llu] and [%llu, %llu])",
                      path, f->e[i - 1].name, e->name, (unsigned long long)f->e[i - 1].begin,
                      (unsigned long long)f->e[i - 1].end, (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->begin > at)
      return mtt_fail(MTT_ERR_ARG, "safetensors: '%s': %llu unused bytes before tensor '%s' (data_offsets [%llu, %llu])",
                      path, (unsigned long long)(e->begin - at), e->name, (unsigned long long)e->begin,
                      (unsigned long long)e->end);
    at = e->end;
  }
  if (at != f->data_len)
    return mtt_fail(MTT_ERR_ARG, "safetensors: '%s': %llu bytes after the last tensor (the data region has %llu, the tensors cover %llu)",
                    path, (unsigned long long)(f->data_len - at), (unsigned long long)f->data_len, (unsigned long long)at);
  st_entry **by_name = malloc((f->n > 0 ? (size_t)f->n : 1) * sizeof *by_name);
  if (!by_name) return mtt_fail(MTT_ERR_MEMORY, "safetensors: '%s': out of memory", path);
  for (int i = 0; i < f->n; i++) by_name[i] = &f->e[i];
  qsort(by_name, (size_t)f->n, sizeof *by_name, cmp_name_ptr);
  for (int i = 1; i < f->n; i++)
    if (strcmp(by_name[i - 1]->name, by_name[i]->name) == 0) {
      int rc = mtt_fail(MTT_ERR_ARG, "safetensors: '%s': the tensor name '%s' appears twice", path, by_name[i]->name);
      free(by_name);
      return rc;
    }
  free(by_name);
  return 0;
}

/* ---- reading ---- */

mtt_safetensors *mtt_safetensors_open(const char *path) {
  if (!path) MTT_FAIL_NULL(MTT_ERR_ARG, "safetensors: no path given");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) MTT_FAIL_NULL(MTT_ERR_ARG, "safetensors: cannot open '%s': %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    MTT_FAIL_NULL(MTT_ERR_ARG, "safetensors: '%s' is not a regular file", path);
  }
  uint64_t size = (uint64_t)st.st_size;
  if (size < 8) {
    close(fd);
    MTT_FAIL_NULL(MTT_ERR_ARG, "safetensors: '%s' has %llu bytes, too few for the 8-byte header length (truncated?)",
                  path, (unsigned long long)size);
  }
  mtt_safetensors *f = calloc(1, sizeof *f);
  st_map *m = calloc(1, sizeof *m);
  char *p = strdup(path);
  void *base = (f && m && p) ? mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) : NULL;
  int map_errno = errno;
  close(fd);
  if (!f || !m || !p || base == MAP_FAILED || !base) {
    free(f), free(m), free(p);
    MTT_FAIL_NULL(MTT_ERR_MEMORY, "safetensors: cannot map '%s': %s", path, strerror(map_errno));
  }
  *m = (st_map){.base = base, .size = (size_t)size, .refs = 1};
  f->map = m;
  f->path = p;
  uint64_t n;
  memcpy(&n, base, 8);
  if (n > size - 8) {
    mtt_fail(MTT_ERR_ARG,
             "safetensors: '%s': header length %llu goes past the end of the file (%llu bytes): truncated or not a "
             "safetensors file",
             path, (unsigned long long)n, (unsigned long long)size);
    st_free(f);
    return NULL;
  }
  if (n > ST_MAX_HEADER) {
    mtt_fail(MTT_ERR_ARG, "safetensors: '%s': header length %llu is over the format's limit of %llu bytes", path,
             (unsigned long long)n, ST_MAX_HEADER);
    st_free(f);
    return NULL;
  }
  const char *header = (const char *)base + 8;
  f->data = header + n;
  f->data_len = size - 8 - n;
  mtt_json j;
  mtt_json_init(&j, header, (size_t)n);
  if (!parse_header(&j, f)) {
    mtt_fail(MTT_ERR_ARG, "safetensors: '%s': bad header: %s", path, j.error);
    st_free(f);
    return NULL;
  }
  if (validate(f) != 0) {
    st_free(f);
    return NULL;
  }
  return f;
}

void mtt_safetensors_close(mtt_safetensors *f) { st_free(f); }

int mtt_safetensors_count(const mtt_safetensors *f) { return f ? f->n : 0; }

const char *mtt_safetensors_name(const mtt_safetensors *f, int i) {
  return (f && i >= 0 && i < f->n) ? f->e[i].name : NULL;
}

const char *mtt_safetensors_dtype(const mtt_safetensors *f, int i) {
  return (f && i >= 0 && i < f->n) ? st_dtypes[f->e[i].dtype].name : NULL;
}

int mtt_safetensors_shape(const mtt_safetensors *f, int i, int64_t *shape8) {
  if (!f || i < 0 || i >= f->n) return mtt_fail(MTT_ERR_INDEX, "safetensors: tensor index %d out of range", i);
  memcpy(shape8, f->e[i].shape, (size_t)f->e[i].ndim * sizeof *shape8);
  return f->e[i].ndim;
}

int mtt_safetensors_find(const mtt_safetensors *f, const char *name) {
  for (int i = 0; f && name && i < f->n; i++)
    if (strcmp(f->e[i].name, name) == 0) return i;
  return -1;
}

int mtt_safetensors_metadata_count(const mtt_safetensors *f) { return (f && f->has_meta) ? f->n_meta : -1; }
const char *mtt_safetensors_metadata_key(const mtt_safetensors *f, int i) {
  return (f && i >= 0 && i < f->n_meta) ? f->keys[i] : NULL;
}
const char *mtt_safetensors_metadata_value(const mtt_safetensors *f, int i) {
  return (f && i >= 0 && i < f->n_meta) ? f->values[i] : NULL;
}

/* Integer and bool dtypes mtt lacks become i32 copies; a value outside i32 is an error rather
 * than a silent wrap. */
static mtt_tensor *convert_to_i32(mtt_safetensors *f, const st_entry *e) {
  mtt_tensor *t = mtt_tensor_new(e->ndim, e->shape, MTT_I32, MTT_CPU);
  if (!t) return NULL;
  int32_t *out = mtt_data_ptr(t);
  const unsigned char *in = (const unsigned char *)f->data + e->begin;
  int size = st_dtypes[e->dtype].size, kind = st_dtypes[e->dtype].kind;
  for (int64_t k = 0; k < t->nelem; k++, in += size) {
    int64_t v;
    if (kind == KIND_SIGNED) {
      if (size == 1) v = (int8_t)in[0];
      else if (size == 2) { int16_t x; memcpy(&x, in, 2); v = x; }
      else { memcpy(&v, in, 8); }
    } else {
      uint64_t u = 0;
      memcpy(&u, in, (size_t)size);
      v = u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
    }
    if (v < INT32_MIN || v > INT32_MAX) {
      mtt_tensor_release(t);
      MTT_FAIL_NULL(MTT_ERR_DTYPE, "safetensors: '%s': tensor '%s' (%s) holds %lld, outside the i32 range mtt keeps integers in",
                    f->path, e->name, st_dtypes[e->dtype].name, (long long)v);
    }
    out[k] = (int32_t)v;
  }
  return t;
}

static double half_to_double(uint16_t h) {
  int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
  return (h & 0x8000) ? -v : v;
}

/* One stored float element as a double (exact for every float dtype of the format we read);
 * mtt_dtype is the stored dtype in mtt's terms. */
static double load_float(const unsigned char *p, int mtt_dtype) {
  double d;
  float x;
  uint16_t h;
  uint32_t bits;
  switch (mtt_dtype) {
    case MTT_F64: memcpy(&d, p, 8); return d;
    case MTT_F32: memcpy(&x, p, 4); return x;
    case MTT_BF16:
      memcpy(&h, p, 2);
      bits = (uint32_t)h << 16;
      memcpy(&x, &bits, 4);
      return x;
    default: memcpy(&h, p, 2); return half_to_double(h);
  }
}

mtt_tensor *mtt_safetensors_tensor_as(mtt_safetensors *f, int i, int dtype) {
  if (!f || i < 0 || i >= f->n) MTT_FAIL_NULL(MTT_ERR_INDEX, "safetensors: tensor index %d out of range", i);
  const st_entry *e = &f->e[i];
  int stored = st_dtypes[e->dtype].mtt;
  if (dtype < 0 || dtype == stored || st_dtypes[e->dtype].kind != KIND_FLOAT) return mtt_safetensors_tensor(f, i);
  if (dtype != MTT_F32 && dtype != MTT_F64)
    MTT_FAIL_NULL(MTT_ERR_DTYPE, "safetensors: '%s': tensor '%s' is %s; it can be converted to f32 or f64, not %s", f->path,
                  e->name, st_dtypes[e->dtype].name, mtt_dtype_name(dtype));
  mtt_tensor *t = mtt_tensor_new(e->ndim, e->shape, dtype, MTT_CPU);
  if (!t) return NULL;
  const unsigned char *in = (const unsigned char *)f->data + e->begin;
  int size = st_dtypes[e->dtype].size;
  if (dtype == MTT_F32) {
    float *out = mtt_data_ptr(t);
    for (int64_t k = 0; k < t->nelem; k++) out[k] = (float)load_float(in + k * size, stored);
  } else {
    double *out = mtt_data_ptr(t);
    for (int64_t k = 0; k < t->nelem; k++) out[k] = load_float(in + k * size, stored);
  }
  return t;
}

mtt_tensor *mtt_safetensors_tensor(mtt_safetensors *f, int i) {
  if (!f || i < 0 || i >= f->n) MTT_FAIL_NULL(MTT_ERR_INDEX, "safetensors: tensor index %d out of range", i);
  const st_entry *e = &f->e[i];
  int dt = st_dtypes[e->dtype].mtt;
  if (dt < 0) {
    if (st_dtypes[e->dtype].kind == KIND_NONE)
      MTT_FAIL_NULL(MTT_ERR_DTYPE, "safetensors: '%s': tensor '%s' has dtype %s, which mtt cannot hold (it reads F32 F64 I32 BF16 F16, and integer and bool dtypes as i32)",
                    f->path, e->name, st_dtypes[e->dtype].name);
    return convert_to_i32(f, e);
  }
  char *ptr = (char *)f->data + e->begin;
  size_t nbytes = (size_t)(e->end - e->begin);
  if ((uintptr_t)ptr % (uintptr_t)st_dtypes[e->dtype].size != 0) {
    /* Only files from writers that do not align: a copy keeps kernels on aligned memory. */
    mtt_tensor *t = mtt_tensor_new(e->ndim, e->shape, dt, MTT_CPU);
    if (t) memcpy(mtt_data_ptr(t), ptr, nbytes);
    return t;
  }
  f->map->refs++;
  mtt_tensor *t = mtt_tensor_from_external(e->ndim, e->shape, dt, ptr, nbytes, map_release, f->map);
  if (!t) f->map->refs--;
  return t;
}

/* ---- writing ---- */

typedef struct {
  char *s;
  size_t n, cap;
  bool oom;
} buf_t;

static void put(buf_t *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->s, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->s = p;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
}

static void puts_(buf_t *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string as serde_json (the reference's serializer) escapes it. */
static void put_json_string(buf_t *b, const char *s) {
  put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"') put(b, "\\\"", 2);
    else if (c == '\\') put(b, "\\\\", 2);
    else if (c == '\n') put(b, "\\n", 2);
    else if (c == '\r') put(b, "\\r", 2);
    else if (c == '\t') put(b, "\\t", 2);
    else if (c == '\b') put(b, "\\b", 2);
    else if (c == '\f') put(b, "\\f", 2);
    else if (c < 0x20) put(b, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", c));
    else put(b, (const char *)&c, 1);
  }
  put(b, "\"", 1);
}

typedef struct {
  const char *name;
  mtt_tensor *t; /* contiguous cpu tensor (new reference) */
  int rank;      /* index into st_dtypes */
} save_item;

static int cmp_items(const void *a, const void *b) {
  const save_item *x = a, *y = b;
  if (x->rank != y->rank) return y->rank - x->rank; /* largest alignment first */
  return strcmp(x->name, y->name);
}

static int cmp_strptr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static bool check_text(const char *s, const char *path, const char *what) {
  if (!s) return mtt_fail(MTT_ERR_ARG, "save_safetensors: '%s': a %s is missing", path, what), false;
  if (!mtt_utf8_valid(s, strlen(s)))
    return mtt_fail(MTT_ERR_ARG, "save_safetensors: '%s': the %s '%s' is not valid UTF-8", path, what, s), false;
  return true;
}

/* The header: metadata (keys sorted), then tensors in data order, padded with spaces to 8. */
static int build_header(buf_t *h, const char *path, const save_item *items, int n, int n_meta,
                        const char *const *keys, const char *const *values) {
  puts_(h, "{");
  bool first = true;
  if (n_meta > 0) {
    int *order = malloc((size_t)n_meta * sizeof *order);
    if (!order) return mtt_fail(MTT_ERR_MEMORY, "save_safetensors: out of memory");
    for (int i = 0; i < n_meta; i++) order[i] = i;
    for (int i = 1; i < n_meta; i++) /* insertion sort: metadata are a handful of keys */
      for (int k = i; k > 0 && strcmp(keys[order[k - 1]], keys[order[k]]) > 0; k--) {
        int t = order[k];
        order[k] = order[k - 1];
        order[k - 1] = t;
      }
    for (int i = 1; i < n_meta; i++)
      if (strcmp(keys[order[i - 1]], keys[order[i]]) == 0) {
        int rc = mtt_fail(MTT_ERR_ARG, "save_safetensors: '%s': metadata key '%s' given twice", path, keys[order[i]]);
        free(order);
        return rc;
      }
    puts_(h, "\"__metadata__\":{");
    for (int i = 0; i < n_meta; i++) {
      if (i) puts_(h, ",");
      put_json_string(h, keys[order[i]]);
      puts_(h, ":");
      put_json_string(h, values[order[i]]);
    }
    puts_(h, "}");
    free(order);
    first = false;
  }
  uint64_t offset = 0;
  char num[48];
  for (int i = 0; i < n; i++) {
    const mtt_tensor *t = items[i].t;
    uint64_t nbytes = (uint64_t)t->nelem * (uint64_t)mtt_dtype_size(t->dtype_id);
    if (!first) puts_(h, ",");
    first = false;
    put_json_string(h, items[i].name);
    puts_(h, ":{\"dtype\":\"");
    puts_(h, st_dtypes[items[i].rank].name);
    puts_(h, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) put(h, num, (size_t)snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->dims[d]));
    put(h, num, (size_t)snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                                 (unsigned long long)(offset + nbytes)));
    offset += nbytes;
  }
  puts_(h, "}");
  while (h->n % 8) puts_(h, " ");
  if (h->oom) return mtt_fail(MTT_ERR_MEMORY, "save_safetensors: out of memory building the header");
  return 0;
}

static int write_file(const char *path, const char *tmp, const buf_t *h, const save_item *items, int n, int durable) {
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0)
    return mtt_fail(MTT_ERR_ARG, "save_safetensors: '%s': cannot create the temporary file '%s': %s", path, tmp,
                    strerror(errno));
  uint64_t n_header = h->n;
  const char *step = "writing";
  int rc = mtt_fs_write_all(fd, &n_header, 8);
  if (rc == 0) rc = mtt_fs_write_all(fd, h->s, h->n);
  for (int i = 0; rc == 0 && i < n; i++) {
    const mtt_tensor *t = items[i].t;
    rc = mtt_fs_write_all(fd, mtt_data_ptr(t), (size_t)t->nelem * mtt_dtype_size(t->dtype_id));
  }
  if (rc == 0 && durable) step = "syncing", rc = fsync(fd);
  int err = errno;
  if (close(fd) != 0 && rc == 0) step = "closing", rc = -1, err = errno;
  if (rc == 0) step = "renaming", rc = rename(tmp, path), err = errno;
  if (rc != 0) {
    unlink(tmp);
    return mtt_fail(MTT_ERR_ARG, "save_safetensors: '%s': %s failed: %s (nothing was written under that name)", path,
                    step, strerror(err));
  }
  if (durable && mtt_fs_sync_parent(path) != 0)
    return mtt_fail(MTT_ERR_ARG, "save_safetensors: '%s': syncing its folder failed: %s", path, strerror(errno));
  return 0;
}

int mtt_safetensors_save(const char *path, int n, const char *const *names, mtt_tensor *const *tensors, int n_meta,
                         const char *const *meta_keys, const char *const *meta_values, int durable) {
  if (!path || !*path) return mtt_fail(MTT_ERR_ARG, "save_safetensors: no path given");
  if (n < 0 || n_meta < 0) return mtt_fail(MTT_ERR_ARG, "save_safetensors: negative count");
  for (int i = 0; i < n_meta; i++)
    if (!check_text(meta_keys[i], path, "metadata key") || !check_text(meta_values[i], path, "metadata value"))
      return mtt_last_error_code();
  save_item *items = calloc(n > 0 ? (size_t)n : 1, sizeof *items);
  const char **sorted = calloc(n > 0 ? (size_t)n : 1, sizeof *sorted);
  int rc = (items && sorted) ? 0 : mtt_fail(MTT_ERR_MEMORY, "save_safetensors: out of memory");
  for (int i = 0; rc == 0 && i < n; i++) {
    mtt_tensor *t = tensors[i];
    if (!check_text(names[i], path, "tensor name")) rc = mtt_last_error_code();
    else if (strcmp(names[i], "__metadata__") == 0)
      rc = mtt_fail(MTT_ERR_ARG, "save_safetensors: '%s': '__metadata__' cannot name a tensor", path);
    else if (!t || !t->storage)
      rc = mtt_fail(MTT_ERR_STATE, "save_safetensors: '%s': tensor '%s' has been freed", path, names[i]);
    if (rc) break;
    mtt_tensor *c = NULL;
    if (t->device_id != MTT_CPU) {
      mtt_tensor *d = mtt_detach(t);
      mtt_tensor *h = d ? mtt_to_device(d, MTT_CPU) : NULL;
      c = h ? mtt_contiguous_raw(h) : NULL;
      mtt_tensor_release(h);
      mtt_tensor_release(d);
    } else {
      c = mtt_contiguous_raw(t);
    }
    if (!c) {
      rc = mtt_last_error_code();
      break;
    }
    items[i] = (save_item){.name = names[i], .t = c, .rank = st_dtype_of_mtt(t->dtype_id)};
    sorted[i] = names[i];
  }
  if (rc == 0) {
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_strptr);
    for (int i = 1; i < n && rc == 0; i++)
      if (strcmp(sorted[i - 1], sorted[i]) == 0)
        rc = mtt_fail(MTT_ERR_ARG, "save_safetensors: '%s': the tensor name '%s' is given twice", path, sorted[i]);
  }
  buf_t h = {0};
  char *tmp = NULL;
  if (rc == 0) {
    qsort(items, (size_t)n, sizeof *items, cmp_items);
    rc = build_header(&h, path, items, n, n_meta, meta_keys, meta_values);
  }
  if (rc == 0) {
    /* same folder as path, so that the rename is atomic; pid + counter keep writers apart */
    static unsigned counter;
    size_t len = strlen(path) + 64;
    tmp = malloc(len);
    if (!tmp) rc = mtt_fail(MTT_ERR_MEMORY, "save_safetensors: out of memory");
    else snprintf(tmp, len, "%s.tmp-%ld-%u", path, (long)getpid(), counter++);
  }
  if (rc == 0) rc = write_file(path, tmp, &h, items, n, durable);
  for (int i = 0; i < n && items; i++) mtt_tensor_release(items[i].t);
  free(items);
  free(sorted);
  free(h.s);
  free(tmp);
  return rc;
}
