/*
 * mtt.h: the whole public API of libmtt, the C core of mtt.
 *
 * Everything between MTT_FFI_BEGIN and MTT_FFI_END is read verbatim by LuaJIT's ffi.cdef
 * (lua/mtt/ffi.lua), so that part holds only typedefs, enums and prototypes: no preprocessor
 * lines, no macros, no inline functions.
 *
 * Conventions:
 * - Functions returning mtt_tensor* return a NEW reference (release it with
 *   mtt_tensor_release) or NULL on error. Functions returning int return 0 on success and a
 *   negative mtt_status on error. On error, mtt_last_error() holds a message naming the op
 *   and the shapes involved. Nothing here aborts or exits the process.
 * - Dims are 0-based here; the Lua layer converts its 1-based and negative dims.
 * - Ops record an autograd node when grad mode is on and any input requires grad.
 */
#ifndef MTT_H
#define MTT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MTT_FFI_BEGIN */
typedef enum mtt_dtype { MTT_F32 = 0, MTT_F64 = 1, MTT_I32 = 2, MTT_BF16 = 3, MTT_F16 = 4 } mtt_dtype;
typedef enum mtt_device_kind { MTT_CPU = 0, MTT_CUDA = 1 } mtt_device_kind;
typedef enum mtt_status {
  MTT_OK = 0,
  MTT_ERR_SHAPE = -1,     /* shapes do not fit the op */
  MTT_ERR_DTYPE = -2,     /* dtype not supported or mismatched */
  MTT_ERR_INDEX = -3,     /* index or dim out of range */
  MTT_ERR_MEMORY = -4,    /* allocation failed or size overflow */
  MTT_ERR_DEVICE = -5,    /* wrong or unavailable device */
  MTT_ERR_STATE = -6,     /* misuse: freed tensor, backward twice, in-place on a saved tensor... */
  MTT_ERR_ARG = -7        /* bad argument value */
} mtt_status;

typedef struct mtt_storage mtt_storage;
typedef struct mtt_node mtt_node;

/* A tensor: a strided view on refcounted storage. Fields are readable from Lua; change them
 * only through the functions below. strides and offset count elements, not bytes. Field names
 * differ from the Lua method names on purpose (t:shape(), t.dtype, t.grad are Lua-side). */
typedef struct mtt_tensor {
  int64_t dims[8];           /* size of each dim */
  int64_t strides[8];
  int64_t offset;
  int64_t nelem;
  int32_t ndim;
  int32_t dtype_id;          /* mtt_dtype */
  int32_t device_id;         /* mtt_device_kind */
  int32_t needs_grad;        /* requires_grad */
  int32_t refcount;
  int32_t reserved;
  mtt_storage *storage;      /* NULL once freed with mtt_tensor_free_data */
  struct mtt_tensor *grad_tensor;  /* accumulated gradient of a leaf, or NULL */
  mtt_node *grad_node;       /* node that produced this tensor, or NULL for leaves */
} mtt_tensor;

/* Counter-based random stream (Philox4x32-10): element i of a draw depends only on
 * (seed, offset + i), never on the thread count. */
typedef struct mtt_generator {
  uint64_t seed;
  uint64_t offset;
} mtt_generator;

/* ---- library, errors, threads ---- */
const char *mtt_version(void);
const char *mtt_last_error(void);
int mtt_last_error_code(void);
void mtt_clear_error(void);
void mtt_set_num_threads(int n);
int mtt_get_num_threads(void);
const char *mtt_blas_info(void);
int mtt_cuda_available(void);
int mtt_op_count(void);
const char *mtt_op_name(int i);
int mtt_op_is_differentiable(int i);
void mtt_abi_tensor_layout(int64_t *out16);

/* ---- lifetime ---- */
void mtt_tensor_retain(mtt_tensor *t);
void mtt_tensor_release(mtt_tensor *t);
int mtt_tensor_free_data(mtt_tensor *t);

/* ---- creation ---- */
mtt_tensor *mtt_empty(int ndim, const int64_t *shape, int dtype, int device);
mtt_tensor *mtt_zeros(int ndim, const int64_t *shape, int dtype, int device);
mtt_tensor *mtt_full(int ndim, const int64_t *shape, double value, int dtype, int device);
mtt_tensor *mtt_arange(double start, double end, double step, int dtype, int device);
mtt_tensor *mtt_from_f64(int ndim, const int64_t *shape, const double *values, int dtype, int device);
mtt_tensor *mtt_from_bytes(int ndim, const int64_t *shape, const void *data, int dtype, int device);
mtt_generator *mtt_default_generator(void);
void mtt_manual_seed(uint64_t seed);
mtt_tensor *mtt_rand(int ndim, const int64_t *shape, int dtype, int device, mtt_generator *gen);
mtt_tensor *mtt_randn(int ndim, const int64_t *shape, int dtype, int device, mtt_generator *gen);
mtt_tensor *mtt_randint(int64_t low, int64_t high, int ndim, const int64_t *shape, int device, mtt_generator *gen);

/* ---- reading and writing elements (any layout; CPU) ---- */
int mtt_item(const mtt_tensor *t, double *out);
int mtt_get(const mtt_tensor *t, const int64_t *index, double *out);
int mtt_set(mtt_tensor *t, const int64_t *index, double value);
int mtt_to_f64(const mtt_tensor *t, double *out, int64_t n);
void *mtt_data_ptr(const mtt_tensor *t);
int mtt_is_contiguous(const mtt_tensor *t);
size_t mtt_dtype_size(int dtype);
const char *mtt_dtype_name(int dtype);

/* ---- views (share storage; differentiable) ---- */
mtt_tensor *mtt_view(mtt_tensor *t, int ndim, const int64_t *shape);
mtt_tensor *mtt_reshape(mtt_tensor *t, int ndim, const int64_t *shape);
mtt_tensor *mtt_permute(mtt_tensor *t, const int *dims);
mtt_tensor *mtt_transpose(mtt_tensor *t, int dim0, int dim1);
mtt_tensor *mtt_slice(mtt_tensor *t, int dim, int64_t start, int64_t end, int64_t step);
mtt_tensor *mtt_select(mtt_tensor *t, int dim, int64_t index);
mtt_tensor *mtt_expand(mtt_tensor *t, int ndim, const int64_t *shape);
mtt_tensor *mtt_squeeze(mtt_tensor *t, int dim);
mtt_tensor *mtt_unsqueeze(mtt_tensor *t, int dim);
mtt_tensor *mtt_contiguous(mtt_tensor *t);
mtt_tensor *mtt_clone(mtt_tensor *t);
mtt_tensor *mtt_detach(mtt_tensor *t);
mtt_tensor *mtt_to_dtype(mtt_tensor *t, int dtype);
mtt_tensor *mtt_to_device(mtt_tensor *t, int device);

/* ---- elementwise (broadcasting) ---- */
mtt_tensor *mtt_add(mtt_tensor *a, mtt_tensor *b);
mtt_tensor *mtt_sub(mtt_tensor *a, mtt_tensor *b);
mtt_tensor *mtt_mul(mtt_tensor *a, mtt_tensor *b);
mtt_tensor *mtt_div(mtt_tensor *a, mtt_tensor *b);
mtt_tensor *mtt_add_scalar(mtt_tensor *a, double s);
mtt_tensor *mtt_mul_scalar(mtt_tensor *a, double s);
mtt_tensor *mtt_rsub_scalar(mtt_tensor *a, double s);
mtt_tensor *mtt_rdiv_scalar(mtt_tensor *a, double s);
mtt_tensor *mtt_pow_scalar(mtt_tensor *a, double p);
mtt_tensor *mtt_neg(mtt_tensor *a);
mtt_tensor *mtt_exp(mtt_tensor *a);
mtt_tensor *mtt_log(mtt_tensor *a);
mtt_tensor *mtt_sqrt(mtt_tensor *a);
mtt_tensor *mtt_tanh(mtt_tensor *a);
mtt_tensor *mtt_sigmoid(mtt_tensor *a);
mtt_tensor *mtt_gelu(mtt_tensor *a);
mtt_tensor *mtt_relu(mtt_tensor *a);
mtt_tensor *mtt_clamp(mtt_tensor *a, double lo, double hi);
mtt_tensor *mtt_masked_fill(mtt_tensor *a, mtt_tensor *mask, double value);
mtt_tensor *mtt_eq(mtt_tensor *a, mtt_tensor *b);
mtt_tensor *mtt_gt(mtt_tensor *a, mtt_tensor *b);
mtt_tensor *mtt_lt(mtt_tensor *a, mtt_tensor *b);

/* ---- in place (refused on tensors that need grad while grad mode is on) ---- */
int mtt_add_(mtt_tensor *t, mtt_tensor *other, double alpha);
int mtt_add_scalar_(mtt_tensor *t, double s);
int mtt_mul_(mtt_tensor *t, mtt_tensor *other);
int mtt_mul_scalar_(mtt_tensor *t, double s);
int mtt_fill_(mtt_tensor *t, double value);
int mtt_zero_(mtt_tensor *t);
int mtt_copy_(mtt_tensor *dst, mtt_tensor *src);

/* ---- reductions ---- */
mtt_tensor *mtt_sum(mtt_tensor *t, int dim, int keepdim);
mtt_tensor *mtt_sum_all(mtt_tensor *t);
mtt_tensor *mtt_mean(mtt_tensor *t, int dim, int keepdim);
mtt_tensor *mtt_mean_all(mtt_tensor *t);
mtt_tensor *mtt_max(mtt_tensor *t, int dim, int keepdim);
mtt_tensor *mtt_max_all(mtt_tensor *t);
mtt_tensor *mtt_argmax(mtt_tensor *t, int dim, int keepdim);
int mtt_topk(mtt_tensor *t, int64_t k, int dim, int largest, mtt_tensor **values, mtt_tensor **indices);

/* ---- linear algebra and fused network ops ---- */
mtt_tensor *mtt_matmul(mtt_tensor *a, mtt_tensor *b);
mtt_tensor *mtt_softmax(mtt_tensor *t, int dim);
mtt_tensor *mtt_log_softmax(mtt_tensor *t, int dim);
mtt_tensor *mtt_layer_norm(mtt_tensor *x, mtt_tensor *weight, mtt_tensor *bias, double eps);
mtt_tensor *mtt_embedding(mtt_tensor *weight, mtt_tensor *indices);
mtt_tensor *mtt_cross_entropy(mtt_tensor *logits, mtt_tensor *targets, mtt_tensor *mask, int64_t ignore_index);
mtt_tensor *mtt_attention(mtt_tensor *q, mtt_tensor *k, mtt_tensor *v, int causal, double scale);
mtt_tensor *mtt_dropout(mtt_tensor *x, double p, mtt_generator *gen);
mtt_tensor *mtt_cat(int n, mtt_tensor **tensors, int dim);
mtt_tensor *mtt_gather(mtt_tensor *t, int dim, mtt_tensor *index);
mtt_tensor *mtt_index_select(mtt_tensor *t, int dim, mtt_tensor *index);

/* ---- autograd ---- */
int mtt_set_requires_grad(mtt_tensor *t, int flag);
int mtt_backward(mtt_tensor *root, mtt_tensor *grad_root);
mtt_tensor *mtt_grad(mtt_tensor *t);
int mtt_set_grad(mtt_tensor *t, mtt_tensor *grad);
int mtt_is_grad_enabled(void);
int mtt_set_grad_enabled(int enabled);
const char *mtt_grad_fn_name(const mtt_tensor *t);

/* ---- optimizers (fused, in place on params and state; no autograd) ---- */
int mtt_sgd_step(int n, mtt_tensor **params, mtt_tensor **momentum_bufs, double lr, double momentum,
                 double dampening, double weight_decay, int nesterov, int first_step);
int mtt_adamw_step(int n, mtt_tensor **params, mtt_tensor **exp_avg, mtt_tensor **exp_avg_sq, int64_t step,
                   double lr, double beta1, double beta2, double eps, double weight_decay);
int mtt_clip_grad_norm(int n, mtt_tensor **params, double max_norm, double *total_norm);

/* ---- [cuda section: devices and precision (core/backend.c, core/cuda/)] ----
 * Every function here works in any build: without the CUDA backend or without a device, the
 * queries say so (0, a line of text) and the actions fail with a message that says why.
 * Tensors move with mtt_to_device (the copy is a new leaf: no autograd edge back). */
/* Arithmetic of f32 matrix products and attention on devices that have faster modes (as
 * torch.set_float32_matmul_precision): HIGHEST keeps f32 (the default); HIGH lets cuBLAS use
 * TF32 tensor cores; MEDIUM computes in bf16 on tensor cores with f32 accumulation, while
 * tensors, master weights and optimizer state stay f32 (bf16 mixed precision). The cpu
 * always computes in f32. */
typedef enum mtt_matmul_precision { MTT_MATMUL_HIGHEST = 0, MTT_MATMUL_HIGH = 1, MTT_MATMUL_MEDIUM = 2 } mtt_matmul_precision;
int mtt_set_float32_matmul_precision(int precision);
int mtt_get_float32_matmul_precision(void);
int mtt_cuda_device_count(void);                  /* usable devices; 0 without a device or backend */
const char *mtt_cuda_device_info(void);           /* the device in a line, or why there is none */
int mtt_cuda_is_emulated(void);                   /* 1 in libmtt_cudaemu (kernels run on the CPU) */
int mtt_cuda_synchronize(void);                   /* waits for queued device work; reports its errors */
int mtt_cuda_memory_stats(int64_t *out4);         /* bytes: in use, cached free, peak in use, device total */
int mtt_cuda_empty_cache(void);                   /* returns cached free blocks to the device */
int64_t mtt_cuda_host_waits(void);                /* times the host has waited for the device so far
                                                     (reads, index checks, synchronize); 0 without one */

/* ---- [tokenizer section (core/tokenizer*.c)] ---- */
/* Byte-level BPE as GPT-2's. Ids are 0-based. Functions returning int64_t return a count (>= 0)
 * or a negative mtt_status. Encoding fills a cache: one tokenizer must not be used by two
 * threads at once. */
typedef struct mtt_tokenizer mtt_tokenizer;
typedef struct mtt_bpe_trainer mtt_bpe_trainer;
mtt_tokenizer *mtt_tokenizer_load(const char *path);  /* Hugging Face tokenizer.json */
mtt_tokenizer *mtt_tokenizer_load_gpt2(const char *encoder_json, const char *vocab_bpe);
int mtt_tokenizer_save(const mtt_tokenizer *tok, const char *path);  /* tokenizer.json */
void mtt_tokenizer_free(mtt_tokenizer *tok);
int32_t mtt_tokenizer_vocab_size(const mtt_tokenizer *tok);
int32_t mtt_tokenizer_n_merges(const mtt_tokenizer *tok);
int mtt_tokenizer_merge(const mtt_tokenizer *tok, int32_t rank, int32_t *a, int32_t *b, int32_t *result);
int32_t mtt_tokenizer_token_id(const mtt_tokenizer *tok, const char *bytes, size_t len);  /* -1: none */
const char *mtt_tokenizer_token_bytes(const mtt_tokenizer *tok, int32_t id, size_t *len);  /* NULL: bad id */
int mtt_tokenizer_is_special(const mtt_tokenizer *tok, int32_t id);
/* Text -> ids (at most len + 1 of them). split_special = 1 treats special tokens' text as plain
 * text. Fails if the ids do not fit in capacity. */
int64_t mtt_tokenizer_encode(mtt_tokenizer *tok, const char *text, size_t len, int split_special, int32_t *ids,
                             int64_t capacity);
/* Ids -> bytes: returns the full length, writes at most capacity bytes. */
int64_t mtt_tokenizer_decode(const mtt_tokenizer *tok, const int32_t *ids, int64_t n, char *out, int64_t capacity);
/* GPT-2 pre-tokenization alone: the end offset of each piece (count returned, at most capacity written). */
int64_t mtt_tokenizer_pretokenize(const char *text, size_t len, int64_t *ends, int64_t capacity);
const char *mtt_tokenizer_unicode_version(void);
/* Training: feed text (special tokens in it are taken out), then finish with a vocab size that
 * counts the 256 bytes, the merges and the special tokens (<|endoftext|> is always one). */
mtt_bpe_trainer *mtt_bpe_trainer_new(int n_special, const char *const *specials, const size_t *special_lens);
int mtt_bpe_trainer_feed(mtt_bpe_trainer *tr, const char *text, size_t len);
mtt_tokenizer *mtt_bpe_trainer_finish(mtt_bpe_trainer *tr, int32_t vocab_size, int64_t min_frequency);
void mtt_bpe_trainer_free(mtt_bpe_trainer *tr);


/* ---- [io section: safetensors, archives (core/io/)] ---- */
/* safetensors (core/io/safetensors.c). Open maps the file (MAP_PRIVATE: tensors may be changed
 * in place, the file never is) and validates the whole header; a bad file is refused with a
 * message naming it and the problem. Tensors share the mapping and outlive the handle. Names are
 * listed in file (data offset) order. Dtypes F32 F64 I32 BF16 F16 map onto the file; the format's
 * integer and bool dtypes are copied into i32 (range-checked); others (F8...) are refused. */
typedef struct mtt_safetensors mtt_safetensors;
mtt_safetensors *mtt_safetensors_open(const char *path);
void mtt_safetensors_close(mtt_safetensors *f);
int mtt_safetensors_count(const mtt_safetensors *f);
const char *mtt_safetensors_name(const mtt_safetensors *f, int i);
const char *mtt_safetensors_dtype(const mtt_safetensors *f, int i);   /* as written: "F32", "I64"... */
int mtt_safetensors_shape(const mtt_safetensors *f, int i, int64_t *shape8); /* returns ndim */
int mtt_safetensors_find(const mtt_safetensors *f, const char *name);  /* index or -1 */
mtt_tensor *mtt_safetensors_tensor(mtt_safetensors *f, int i);
/* The same, floating tensors (F16 BF16 F32 F64) converted to dtype (MTT_F32 or MTT_F64; -1: as
 * stored); integer tensors stay i32. A converted tensor is a copy, not a view of the file. */
mtt_tensor *mtt_safetensors_tensor_as(mtt_safetensors *f, int i, int dtype);
int mtt_safetensors_metadata_count(const mtt_safetensors *f);          /* -1: no __metadata__ */
const char *mtt_safetensors_metadata_key(const mtt_safetensors *f, int i);
const char *mtt_safetensors_metadata_value(const mtt_safetensors *f, int i);
/* Writes as the reference writer does (sorted by dtype alignment then name, header padded to 8
 * bytes) into a temporary file of the same folder renamed over path, so path never holds a
 * partial file. durable: fsync the file before the rename and the folder after it. */
int mtt_safetensors_save(const char *path, int n, const char *const *names, mtt_tensor *const *tensors, int n_meta,
                         const char *const *meta_keys, const char *const *meta_values, int durable);

/* Archives and compressed files, streamed through libarchive (core/io/archive.c): tar, zip, 7z,
 * cpio, each possibly gz/bz2/xz/lzma/zst/lz4 compressed, or a single plain or compressed file
 * (one member named after the file without its compression suffix). Only regular files are
 * listed. next: 1 on the next member, 0 at the end, < 0 on error; read: bytes read, 0 at the
 * end of the member, < 0 on error. */
typedef struct mtt_archive mtt_archive;
mtt_archive *mtt_archive_open(const char *path);
int mtt_archive_next(mtt_archive *a);
const char *mtt_archive_name(const mtt_archive *a);
int64_t mtt_archive_size(const mtt_archive *a);   /* -1 when the archive does not record it */
const char *mtt_archive_format(const mtt_archive *a); /* "tar", "zip", "raw" (a single file)... */
int64_t mtt_archive_read(mtt_archive *a, void *buf, int64_t cap);
void mtt_archive_close(mtt_archive *a);

/* File system (core/io/fs.c): what Lua's io and os libraries lack. */
typedef struct mtt_fs_dir mtt_fs_dir;
int mtt_fs_makedirs(const char *path);
int mtt_fs_stat(const char *path, int64_t *size, int64_t *mtime_ns, int *is_dir);
mtt_fs_dir *mtt_fs_dir_open(const char *path);
const char *mtt_fs_dir_next(mtt_fs_dir *d);   /* NULL at the end; skips . and .. */
void mtt_fs_dir_close(mtt_fs_dir *d);
/* ---- [bundle section: sha256, bundle archives, file-system helpers (core/io/sha256.c,
 * core/io/bundle.c, core/io/bundle_fs.c)] ---- */
/* SHA-256 as 64 lowercase hex digits and a NUL in hex65; size (may be NULL) gets the file's bytes. */
int mtt_sha256_bytes(const void *data, size_t n, char *hex65);
int mtt_sha256_file(const char *path, char *hex65, int64_t *size);
/* A reproducible tar (pax; mtime 0, owner 0, mode 0644) compressed with "zstd", "gzip" or "none". */
typedef struct mtt_bundle_writer mtt_bundle_writer;
mtt_bundle_writer *mtt_bundle_writer_open(const char *path, const char *compression);
int mtt_bundle_writer_add_bytes(mtt_bundle_writer *w, const char *name, const void *data, int64_t n);
int mtt_bundle_writer_add_file(mtt_bundle_writer *w, const char *name, const char *src_path);
int mtt_bundle_writer_close(mtt_bundle_writer *w);   /* finishes the archive; free still needed */
void mtt_bundle_writer_free(mtt_bundle_writer *w);
/* Unpacks a tar into the existing folder dest, after checking every member: absolute paths, ".."
 * components, symlinks, hardlinks, devices, fifos, sockets, files over max_file bytes, a total
 * over max_total or more than max_entries members refuse the whole archive, naming the member. */
int mtt_bundle_extract(const char *path, const char *dest, int64_t max_file, int64_t max_total, int64_t max_entries);
/* lstat: 0 missing, 1 file, 2 folder, 3 symlink, 4 other, < 0 error; size/inode/nlink may be NULL. */
int mtt_bundle_fs_lstat(const char *path, int64_t *size, int64_t *inode, int64_t *nlink);
int mtt_bundle_fs_copy(const char *src, const char *dst);     /* dst must not exist */
int mtt_bundle_fs_link(const char *src, const char *dst);     /* 0 linked, 1 copied instead, < 0 error */
int mtt_bundle_fs_rmtree(const char *path);                   /* never follows a symlink */
int mtt_bundle_fs_chdir(const char *path);
const char *mtt_bundle_fs_getcwd(void);
const char *mtt_bundle_fs_realpath(const char *path);         /* NULL when path does not exist */
/* Landlock (core/io/landlock.c): the kernel's ABI version (0: none); confine the process for good:
 * read only under read_paths, write only under write_paths, execute nothing, no TCP. Returns the
 * ABI version applied, 0 when the kernel has no Landlock (nothing done), < 0 on error. */
int mtt_bundle_landlock_abi(void);
int mtt_bundle_confine(int n_read, const char *const *read_paths, int n_write, const char *const *write_paths);
/* ---- [/bundle section] ---- */
/* MTT_FFI_END */

#ifdef __cplusplus
}
#endif
#endif
