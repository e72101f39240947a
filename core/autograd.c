/*
 * autograd.c: define-by-run reverse mode.
 *
 * Each op that sees an input requiring grad records one node (mtt_record) owned by its output.
 * A node points to the nodes of its inputs (or, for leaves, to the leaf tensors), so the graph
 * lives exactly as long as the tensors that can still reach it. Saved tensors are stored as
 * detached aliases (no grad_node), so an output saved by its own node forms no cycle.
 *
 * mtt_backward() sorts the nodes reachable from the root by dependency count (Kahn), runs each
 * backward function once with grad mode off, sums gradients arriving at the same node or leaf,
 * and frees every node's saved tensors as soon as it has run: the graph can be walked once.
 * Storage version counters catch tensors modified in place after being saved.
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "internal.h"

static _Thread_local bool grad_enabled = true;

bool mtt_grad_mode(void) { return grad_enabled; }
int mtt_is_grad_enabled(void) { return grad_enabled; }
int mtt_set_grad_enabled(int enabled) {
  int previous = grad_enabled;
  grad_enabled = enabled != 0;
  return previous;
}

static void meta_of(const mtt_tensor *t, mtt_meta *m) {
  m->ndim = t->ndim;
  m->dtype = t->dtype_id;
  m->device = t->device_id;
  memcpy(m->shape, t->dims, sizeof m->shape);
}

mtt_node *mtt_record(const mtt_op_def *op, mtt_tensor *out, int n, mtt_tensor *const *inputs) {
  if (!grad_enabled || !out || !op->backward) return NULL;
  bool any = false;
  for (int i = 0; i < n; i++) any |= inputs[i] && inputs[i]->needs_grad;
  if (!any) return NULL;
  mtt_node *node = calloc(1, sizeof *node);
  if (!node) return NULL; /* out stays a constant; the missing grad surfaces at backward */
  node->op = op;
  node->refcount = 1;
  node->n_inputs = n;
  for (int i = 0; i < n; i++) {
    mtt_tensor *in = inputs[i];
    if (!in) continue;
    meta_of(in, &node->input_meta[i]);
    if (!in->needs_grad) continue;
    node->needs_grad[i] = true;
    if (in->grad_node) {
      node->next[i] = in->grad_node;
      in->grad_node->refcount++;
    } else {
      node->leaf[i] = in;
      mtt_tensor_retain(in);
    }
  }
  meta_of(out, &node->output_meta);
  out->needs_grad = 1;
  out->grad_node = node;
  return node;
}

bool mtt_node_needs_grad(const mtt_node *node, int i) { return i >= 0 && i < node->n_inputs && node->needs_grad[i]; }

void mtt_node_save(mtt_node *node, int slot, mtt_tensor *t) {
  if (!node || !t || slot < 0 || slot >= MTT_NODE_MAX_SAVED) return;
  mtt_tensor_release(node->saved[slot]);
  node->saved[slot] = mtt_tensor_alias(t, t->ndim, t->dims, t->strides, t->offset);
  node->saved_version[slot] = t->storage ? t->storage->version : 0;
}

mtt_tensor *mtt_node_saved(mtt_node *node, int slot) {
  if (node->released) {
    mtt_fail(MTT_ERR_STATE,
             "backward: trying to go through the graph of '%s' a second time (its saved tensors were freed after "
             "the first backward)",
             node->op->name);
    return NULL;
  }
  mtt_tensor *t = node->saved[slot];
  if (!t || !t->storage) {
    mtt_fail(MTT_ERR_STATE, "backward: a tensor saved by '%s' is missing or was freed", node->op->name);
    return NULL;
  }
  if (t->storage->version != node->saved_version[slot]) {
    mtt_fail(MTT_ERR_STATE,
             "backward: a tensor %s needed by '%s' for its gradient was modified in place after it was used "
             "(version %llu, expected %llu)",
             mtt_tshape(t), node->op->name, (unsigned long long)t->storage->version,
             (unsigned long long)node->saved_version[slot]);
    return NULL;
  }
  return t;
}

static void node_free_saved(mtt_node *node) {
  for (int s = 0; s < MTT_NODE_MAX_SAVED; s++) {
    mtt_tensor_release(node->saved[s]);
    node->saved[s] = NULL;
  }
  mtt_tensor_release(node->extra);
  node->extra = NULL;
}

/* Iterative, so that freeing a long chain of nodes cannot overflow the C stack. */
void mtt_node_release(mtt_node *node) {
  size_t cap = 64, len = 0;
  mtt_node **stack = NULL;
  mtt_node *current = node;
  while (current) {
    if (--current->refcount == 0) {
      for (int i = 0; i < current->n_inputs; i++) {
        mtt_tensor_release(current->leaf[i]);
        if (!current->next[i]) continue;
        if (!stack || len == cap) {
          mtt_node **grown = realloc(stack, sizeof *stack * (cap = stack ? cap * 2 : cap));
          if (!grown) { /* cannot happen in practice; fall back to recursion for this edge */
            mtt_node_release(current->next[i]);
            continue;
          }
          stack = grown;
        }
        stack[len++] = current->next[i];
      }
      node_free_saved(current);
      mtt_tensor_release(current->grad_acc);
      free(current);
    }
    current = len ? stack[--len] : NULL;
  }
  free(stack);
}

/* ---- leaves and gradients ---- */

int mtt_set_requires_grad(mtt_tensor *t, int flag) {
  if (mtt_check_live(t, "requires_grad")) return mtt_last_error_code();
  if (t->grad_node)
    return mtt_fail(MTT_ERR_STATE, "requires_grad: only leaf tensors can change requires_grad (this one comes from '%s'; "
                                   "use detach())", t->grad_node->op->name);
  if (flag && !mtt_is_float_dtype(t->dtype_id))
    return mtt_fail(MTT_ERR_DTYPE, "requires_grad: only floating tensors can require grad, got %s %s",
                    mtt_dtype_name(t->dtype_id), mtt_tshape(t));
  t->needs_grad = flag != 0;
  return 0;
}

mtt_tensor *mtt_grad(mtt_tensor *t) {
  if (!t || !t->grad_tensor) return NULL;
  mtt_tensor_retain(t->grad_tensor);
  return t->grad_tensor;
}

static bool same_shape(int ndim, const int64_t *shape, const mtt_tensor *t) {
  if (ndim != t->ndim) return false;
  for (int d = 0; d < ndim; d++)
    if (shape[d] != t->dims[d]) return false;
  return true;
}

int mtt_set_grad(mtt_tensor *t, mtt_tensor *grad) {
  if (mtt_check_live(t, "set_grad")) return mtt_last_error_code();
  if (grad) {
    if (mtt_check_live(grad, "set_grad") || mtt_check_same(t, grad, "set_grad")) return mtt_last_error_code();
    if (!same_shape(t->ndim, t->dims, grad))
      return mtt_fail(MTT_ERR_SHAPE, "set_grad: gradient %s does not match tensor %s", mtt_tshape(grad), mtt_tshape(t));
    mtt_tensor_retain(grad);
  }
  mtt_tensor_release(t->grad_tensor);
  t->grad_tensor = grad;
  return 0;
}

const char *mtt_grad_fn_name(const mtt_tensor *t) { return t && t->grad_node ? t->grad_node->op->name : NULL; }

/* Adds g into a leaf's .grad; takes ownership of the reference g. */
static int accumulate_leaf(mtt_tensor *leaf, mtt_tensor *g) {
  if (!leaf->grad_tensor) {
    /* Keep g only if nothing else can see its storage; otherwise a later in-place accumulation
     * would leak into another tensor. */
    if (g->refcount == 1 && g->storage->refcount == 1 && mtt_is_contiguous(g) && !g->grad_node) {
      leaf->grad_tensor = g;
      return 0;
    }
    leaf->grad_tensor = mtt_copy_raw(g);
    mtt_tensor_release(g);
    return leaf->grad_tensor ? 0 : mtt_last_error_code();
  }
  int rc = mtt_add_(leaf->grad_tensor, g, 1.0);
  mtt_tensor_release(g);
  return rc;
}

/* Adds g into a node's pending gradient; takes ownership of g. */
static int accumulate_node(mtt_node *node, mtt_tensor *g) {
  if (!node->grad_acc) {
    node->grad_acc = g;
    return 0;
  }
  mtt_tensor *sum = mtt_add(node->grad_acc, g);
  mtt_tensor_release(g);
  if (!sum) return mtt_last_error_code();
  mtt_tensor_release(node->grad_acc);
  node->grad_acc = sum;
  return 0;
}

static int check_input_grad(const mtt_node *node, int i, const mtt_tensor *g) {
  const mtt_meta *m = &node->input_meta[i];
  if (!g) return mtt_fail(MTT_ERR_STATE, "backward of '%s': no gradient produced for input %d", node->op->name, i + 1);
  if (!same_shape(m->ndim, m->shape, g) || g->dtype_id != m->dtype)
    return mtt_fail(MTT_ERR_STATE, "backward of '%s': gradient %s %s for input %d does not match the input %s %s",
                    node->op->name, mtt_dtype_name(g->dtype_id), mtt_tshape(g), i + 1, mtt_dtype_name(m->dtype),
                    mtt_shape_str(m->ndim, m->shape));
  return 0;
}

typedef struct node_list {
  mtt_node **items;
  size_t len, cap;
} node_list;

static int list_push(node_list *l, mtt_node *n) {
  if (l->len == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 256;
    mtt_node **grown = realloc(l->items, cap * sizeof *grown);
    if (!grown) return mtt_fail(MTT_ERR_MEMORY, "backward: out of memory");
    l->items = grown;
    l->cap = cap;
  }
  l->items[l->len++] = n;
  return 0;
}

/* Marks every node reachable from root and counts, for each, the edges coming from reachable
 * nodes: a node can run once that many gradients have arrived. */
static int count_dependencies(mtt_node *root, int epoch) {
  node_list stack = {0};
  int rc = list_push(&stack, root);
  root->visited = epoch;
  root->pending = 0;
  while (!rc && stack.len) {
    mtt_node *n = stack.items[--stack.len];
    for (int i = 0; i < n->n_inputs && !rc; i++) {
      mtt_node *next = n->next[i];
      if (!next) continue;
      if (next->visited != epoch) {
        next->visited = epoch;
        next->pending = 0;
        rc = list_push(&stack, next);
      }
      next->pending++;
    }
  }
  free(stack.items);
  return rc;
}

static int run_backward(mtt_node *root_node, mtt_tensor *root_grad) {
  static _Thread_local int epoch;
  int rc = count_dependencies(root_node, ++epoch);
  node_list ready = {0};
  mtt_tensor_retain(root_grad);
  root_node->grad_acc = root_grad;
  if (!rc) rc = list_push(&ready, root_node);
  size_t head = 0;
  while (!rc && head < ready.len) {
    mtt_node *n = ready.items[head++];
    if (n->released) {
      rc = mtt_fail(MTT_ERR_STATE, "backward: trying to go through the graph of '%s' a second time", n->op->name);
      break;
    }
    mtt_tensor *gin[MTT_NODE_MAX_INPUTS] = {0};
    mtt_tensor *gout = mtt_contiguous_raw(n->grad_acc);
    rc = gout ? n->op->backward(n, gout, gin) : mtt_last_error_code();
    mtt_tensor_release(gout);
    for (int i = 0; i < n->n_inputs; i++) {
      if (!rc && n->needs_grad[i]) rc = check_input_grad(n, i, gin[i]);
      if (rc || !n->needs_grad[i]) {
        mtt_tensor_release(gin[i]);
        continue;
      }
      if (n->leaf[i]) {
        rc = accumulate_leaf(n->leaf[i], gin[i]);
      } else if (n->next[i]) {
        mtt_node *next = n->next[i];
        rc = accumulate_node(next, gin[i]);
        if (!rc && --next->pending == 0) rc = list_push(&ready, next);
      } else {
        mtt_tensor_release(gin[i]);
      }
    }
    node_free_saved(n);
    n->released = true;
    mtt_tensor_release(n->grad_acc);
    n->grad_acc = NULL;
  }
  /* On failure, drop the partial gradients still waiting in unprocessed nodes. */
  for (size_t k = head; k < ready.len; k++) {
    mtt_tensor_release(ready.items[k]->grad_acc);
    ready.items[k]->grad_acc = NULL;
  }
  free(ready.items);
  return rc;
}

int mtt_backward(mtt_tensor *root, mtt_tensor *grad_root) {
  if (mtt_check_live(root, "backward")) return mtt_last_error_code();
  if (!root->needs_grad)
    return mtt_fail(MTT_ERR_STATE, "backward: tensor %s does not require grad (no input of the ops that made it requires grad)",
                    mtt_tshape(root));
  mtt_tensor *grad;
  if (grad_root) {
    if (mtt_check_live(grad_root, "backward") || mtt_check_same(root, grad_root, "backward")) return mtt_last_error_code();
    if (!same_shape(root->ndim, root->dims, grad_root))
      return mtt_fail(MTT_ERR_SHAPE, "backward: gradient %s does not match the tensor %s", mtt_tshape(grad_root),
                      mtt_tshape(root));
    grad = mtt_contiguous_raw(grad_root);
  } else {
    if (root->nelem != 1)
      return mtt_fail(MTT_ERR_SHAPE, "backward: called on a non-scalar tensor %s; pass a gradient of the same shape",
                      mtt_tshape(root));
    grad = mtt_full(root->ndim, root->dims, 1.0, root->dtype_id, root->device_id);
  }
  if (!grad) return mtt_last_error_code();
  int previous = mtt_set_grad_enabled(0);
  int rc;
  if (root->grad_node) {
    rc = run_backward(root->grad_node, grad);
    mtt_tensor_release(grad);
  } else {
    rc = accumulate_leaf(root, grad);
  }
  mtt_set_grad_enabled(previous);
  return rc;
}
