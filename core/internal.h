/*
 * internal.h: what the files of core/ share and nothing outside core/ sees.
 *
 * - storage: refcounted, with a version counter bumped by every in-place write, so that
 *   autograd can refuse a backward through a tensor that was modified after being saved.
 * - errors: mtt_fail() records a message (thread-local) and returns the status; op code writes
 *   `return mtt_fail(MTT_ERR_SHAPE, "matmul: shapes %s and %s ...", ...)` or uses MTT_FAIL_NULL.
 * - autograd: an op computes its output with grad mode off semantics, then calls
 *   mtt_record(); if that returns a node, the op saves what its backward needs into it.
 * - backends: each device provides a table of kernels (backend.h); ops call
 *   mtt_backend_of(t)->kernel(...). Only backend.c knows which backends exist.
 */
#ifndef MTT_INTERNAL_H
#define MTT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "include/mtt.h"

#define MTT_MAX_DIMS 8
#define MTT_NODE_MAX_INPUTS 4
#define MTT_NODE_MAX_SAVED 6

struct mtt_storage {
  int32_t refcount;
  int32_t device;
  size_t nbytes;
  void *data;
  uint64_t version; /* bumped on every in-place write */
  /* Memory not from the backend (e.g. a memory-mapped file): released by this callback. */
  void (*release)(void *ctx);
  void *release_ctx;
};

/* ---- errors (error.c) ---- */
int mtt_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "[4,3]": formats a shape into one of a few rotating thread-local buffers, so that several
 * calls can appear in one message. */
const char *mtt_shape_str(int ndim, const int64_t *shape);
const char *mtt_tshape(const mtt_tensor *t);
#define MTT_FAIL_NULL(status, ...) \
  do {                             \
    mtt_fail(status, __VA_ARGS__); \
    return NULL;                   \
  } while (0)

/* ---- tensors (tensor.c) ---- */
size_t mtt_dtype_size(int dtype);
bool mtt_is_float_dtype(int dtype);
/* New contiguous tensor, uninitialized; NULL with MTT_ERR_MEMORY on failure. */
mtt_tensor *mtt_tensor_new(int ndim, const int64_t *shape, int dtype, int device);
mtt_tensor *mtt_tensor_new_like(const mtt_tensor *t);
/* A cpu tensor over memory the caller owns (e.g. an mmap of a safetensors file), contiguous at
 * data; release(ctx) runs when the last tensor using it goes. Writes must be safe on that memory
 * (map files MAP_PRIVATE, read-write: copy on write). */
mtt_tensor *mtt_tensor_from_external(int ndim, const int64_t *shape, int dtype, void *data, size_t nbytes,
                                     void (*release)(void *ctx), void *ctx);
/* A view sharing t's storage (retained); no autograd. */
mtt_tensor *mtt_tensor_alias(const mtt_tensor *t, int ndim, const int64_t *shape, const int64_t *strides,
                             int64_t offset);
void mtt_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
int64_t mtt_shape_numel(int ndim, const int64_t *shape);
/* Checks shared by ops: each returns 0 or fails with a message naming op. */
int mtt_check_live(const mtt_tensor *t, const char *op);
int mtt_check_float(const mtt_tensor *t, const char *op);
int mtt_check_same(const mtt_tensor *a, const mtt_tensor *b, const char *op); /* dtype + device */
int mtt_check_dim(const mtt_tensor *t, int dim, const char *op);
int mtt_check_inplace(const mtt_tensor *t, const char *op);
/* Broadcast two shapes (numpy rules); fails naming op on mismatch. */
int mtt_broadcast_shape(const mtt_tensor *a, const mtt_tensor *b, const char *op, int *ndim, int64_t *shape);
/* Stride-0 view of t expanded to shape (no autograd, no checks beyond validity). */
mtt_tensor *mtt_broadcast_to(const mtt_tensor *t, int ndim, const int64_t *shape);
void mtt_storage_bump(mtt_tensor *t);
/* t itself (retained) if contiguous, else a contiguous copy; never records autograd. Ops use
 * these inside their forward; backward functions may call public ops (grad mode is off then). */
mtt_tensor *mtt_contiguous_raw(const mtt_tensor *t);
mtt_tensor *mtt_copy_raw(const mtt_tensor *t); /* always a fresh contiguous copy */
/* Reduce grad (shape of an op output) to the given input shape by summing broadcast dims. */
mtt_tensor *mtt_sum_to_shape(mtt_tensor *grad, int ndim, const int64_t *shape);

/* ---- autograd (autograd.c) ---- */
typedef struct mtt_op_def mtt_op_def;
/* grad_inputs[i] must be set (new reference) for every input i with mtt_node_needs_grad(node, i);
 * others stay NULL. grad_out is the gradient of the node's output (contiguous, same shape). */
typedef int (*mtt_backward_fn)(mtt_node *node, mtt_tensor *grad_out, mtt_tensor **grad_inputs);
struct mtt_op_def {
  const char *name;
  mtt_backward_fn backward; /* NULL: not differentiable */
};

typedef struct mtt_meta {
  int32_t ndim, dtype, device;
  int64_t shape[MTT_MAX_DIMS];
} mtt_meta;

struct mtt_node {
  const mtt_op_def *op;
  int32_t refcount;
  int32_t n_inputs;
  bool needs_grad[MTT_NODE_MAX_INPUTS];
  mtt_node *next[MTT_NODE_MAX_INPUTS];     /* grad_fn of input i (retained), or NULL */
  mtt_tensor *leaf[MTT_NODE_MAX_INPUTS];   /* input i if it is a leaf that requires grad (retained) */
  mtt_meta input_meta[MTT_NODE_MAX_INPUTS];
  mtt_meta output_meta;
  mtt_tensor *saved[MTT_NODE_MAX_SAVED];   /* detached aliases */
  uint64_t saved_version[MTT_NODE_MAX_SAVED];
  double f[4];                             /* op parameters */
  int64_t i[8];
  mtt_tensor *extra;                       /* op-owned (e.g. per-node scratch), released with node */
  /* used by the engine during backward */
  mtt_tensor *grad_acc;
  int32_t pending;
  int32_t visited;
  bool released;                           /* saved tensors already freed by a backward */
};

/* Records a node for out = op(inputs) if grad mode is on and any input requires grad.
 * Returns the node (owned by out) or NULL if nothing was recorded. Inputs may be NULL. */
mtt_node *mtt_record(const mtt_op_def *op, mtt_tensor *out, int n, mtt_tensor *const *inputs);
bool mtt_node_needs_grad(const mtt_node *node, int i);
void mtt_node_save(mtt_node *node, int slot, mtt_tensor *t);
/* Borrowed reference to a saved tensor; NULL with MTT_ERR_STATE if it was modified in place. */
mtt_tensor *mtt_node_saved(mtt_node *node, int slot);
void mtt_node_release(mtt_node *node);
bool mtt_grad_mode(void); /* off inside backward functions */

/* ---- random numbers (rng.c) ---- */
/* 4 uniform 32-bit words for (seed, counter). */
void mtt_philox(uint64_t seed, uint64_t counter, uint32_t out[4]);
float mtt_uniform01(uint32_t word); /* (0, 1] */

/* ---- threading (threads.c) ---- */
int mtt_threads_for(int64_t work); /* threads worth using for this many element-ops */

/* ---- op registry (registry.c) ---- */
extern const mtt_op_def *const mtt_op_table[];
extern const int mtt_op_table_size;

#endif
