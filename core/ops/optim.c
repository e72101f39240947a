/* optim.c: fused SGD and AdamW steps and global-norm gradient clipping over parameter lists.
 *
 * Updates happen in place, outside autograd (as under torch.no_grad), in backend kernels. Every
 * tensor of the list is checked before any is changed, so an error leaves the model as it was.
 * Parameters without a gradient are skipped, as torch does. */
#include <math.h>
#include <stdlib.h>

#include "backend.h"
#include "internal.h"

/* A state tensor (momentum buffer, exp_avg, ...) must match its parameter exactly. */
static int check_state(const char *op, const char *what, int i, const mtt_tensor *p, const mtt_tensor *s) {
  if (!s) return mtt_fail(MTT_ERR_ARG, "%s: %s %d is missing (parameter %s)", op, what, i + 1, mtt_tshape(p));
  if (mtt_check_live(s, op)) return mtt_last_error_code();
  if (s->dtype_id != p->dtype_id || s->device_id != p->device_id)
    return mtt_fail(MTT_ERR_DTYPE, "%s: %s %d is %s on %s but its parameter is %s on %s", op, what, i + 1,
                    mtt_dtype_name(s->dtype_id), s->device_id == MTT_CPU ? "cpu" : "cuda",
                    mtt_dtype_name(p->dtype_id), p->device_id == MTT_CPU ? "cpu" : "cuda");
  bool same = s->ndim == p->ndim;
  for (int d = 0; same && d < p->ndim; d++) same = s->dims[d] == p->dims[d];
  if (same) return 0;
  return mtt_fail(MTT_ERR_SHAPE, "%s: %s %d has shape %s but its parameter has shape %s", op, what, i + 1, mtt_tshape(s),
                  mtt_tshape(p));
}

/* Parameter i takes part in the step if it has a gradient; 1 = use it, 0 = skip, <0 = error. */
static int check_param(const char *op, int i, mtt_tensor *const *params) {
  if (!params) return mtt_fail(MTT_ERR_ARG, "%s: no parameter list", op);
  mtt_tensor *p = params[i];
  if (!p) return mtt_fail(MTT_ERR_ARG, "%s: parameter %d is nil", op, i + 1);
  if (mtt_check_live(p, op) || mtt_check_float(p, op)) return mtt_last_error_code();
  if (!p->grad_tensor) return 0;
  int rc = check_state(op, "gradient", i, p, p->grad_tensor);
  return rc ? rc : 1;
}

/* Kernels want contiguous tensors. Parameters and state almost always are; for the rare strided
 * one, the step runs on a contiguous copy that is written back afterwards. */
static mtt_tensor *work_copy(mtt_tensor *t) {
  if (!t || mtt_is_contiguous(t)) return t;
  return mtt_copy_raw(t);
}

static int write_back(mtt_tensor *t, mtt_tensor *work, int rc) {
  if (!t) return rc;
  if (work && work != t) {
    if (!rc) rc = mtt_backend_of(t)->copy(t, work);
    mtt_tensor_release(work);
  }
  mtt_storage_bump(t); /* saved copies of the old values must not be used by a later backward */
  return rc;
}

int mtt_sgd_step(int n, mtt_tensor **params, mtt_tensor **momentum_bufs, double lr, double momentum,
                 double dampening, double weight_decay, int nesterov, int first_step) {
  if (!(lr >= 0)) return mtt_fail(MTT_ERR_ARG, "sgd: invalid learning rate %g", lr);
  if (!(momentum >= 0)) return mtt_fail(MTT_ERR_ARG, "sgd: invalid momentum %g", momentum);
  if (!(weight_decay >= 0)) return mtt_fail(MTT_ERR_ARG, "sgd: invalid weight_decay %g", weight_decay);
  if (!isfinite(dampening)) return mtt_fail(MTT_ERR_ARG, "sgd: invalid dampening %g", dampening);
  if (nesterov && (momentum <= 0 || dampening != 0))
    return mtt_fail(MTT_ERR_ARG, "sgd: nesterov momentum requires a momentum > 0 and zero dampening (got %g and %g)",
                    momentum, dampening);
  if (momentum != 0 && !momentum_bufs)
    return mtt_fail(MTT_ERR_ARG, "sgd: momentum %g needs a list of momentum buffers", momentum);
  for (int i = 0; i < n; i++) {
    int use = check_param("sgd", i, params);
    if (use < 0) return use;
    if (use && momentum != 0 && check_state("sgd", "momentum buffer", i, params[i], momentum_bufs[i]))
      return mtt_last_error_code();
  }
  for (int i = 0; i < n; i++) {
    mtt_tensor *p = params[i];
    if (!p->grad_tensor) continue;
    mtt_tensor *buf = momentum != 0 ? momentum_bufs[i] : NULL;
    mtt_tensor *g = mtt_contiguous_raw(p->grad_tensor), *pw = work_copy(p), *bw = work_copy(buf);
    int rc = (g && pw && (bw || !buf)) ? 0 : mtt_last_error_code();
    if (!rc) rc = mtt_backend_of(p)->sgd(pw, g, bw, lr, momentum, dampening, weight_decay, nesterov, first_step);
    mtt_tensor_release(g);
    rc = write_back(p, pw, rc);
    rc = write_back(buf, bw, rc);
    if (rc) return rc;
  }
  return 0;
}

int mtt_adamw_step(int n, mtt_tensor **params, mtt_tensor **exp_avg, mtt_tensor **exp_avg_sq, int64_t step,
                   double lr, double beta1, double beta2, double eps, double weight_decay) {
  if (!(lr >= 0)) return mtt_fail(MTT_ERR_ARG, "adamw: invalid learning rate %g", lr);
  if (!(eps >= 0)) return mtt_fail(MTT_ERR_ARG, "adamw: invalid eps %g", eps);
  if (!(beta1 >= 0 && beta1 < 1)) return mtt_fail(MTT_ERR_ARG, "adamw: invalid beta1 %g (need 0 <= beta1 < 1)", beta1);
  if (!(beta2 >= 0 && beta2 < 1)) return mtt_fail(MTT_ERR_ARG, "adamw: invalid beta2 %g (need 0 <= beta2 < 1)", beta2);
  if (!(weight_decay >= 0)) return mtt_fail(MTT_ERR_ARG, "adamw: invalid weight_decay %g", weight_decay);
  if (step < 1) return mtt_fail(MTT_ERR_ARG, "adamw: step %lld is not a 1-based step count", (long long)step);
  if (n > 0 && (!exp_avg || !exp_avg_sq)) return mtt_fail(MTT_ERR_ARG, "adamw: missing exp_avg or exp_avg_sq list");
  for (int i = 0; i < n; i++) {
    int use = check_param("adamw", i, params);
    if (use < 0) return use;
    if (use && (check_state("adamw", "exp_avg", i, params[i], exp_avg[i]) ||
                check_state("adamw", "exp_avg_sq", i, params[i], exp_avg_sq[i])))
      return mtt_last_error_code();
  }
  /* Scalars as torch computes them, in double. */
  double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  double step_size = lr / bc1, bc2_sqrt = sqrt(bc2), decay = 1.0 - lr * weight_decay;
  for (int i = 0; i < n; i++) {
    mtt_tensor *p = params[i];
    if (!p->grad_tensor) continue;
    mtt_tensor *g = mtt_contiguous_raw(p->grad_tensor), *pw = work_copy(p);
    mtt_tensor *mw = work_copy(exp_avg[i]), *vw = work_copy(exp_avg_sq[i]);
    int rc = (g && pw && mw && vw) ? 0 : mtt_last_error_code();
    if (!rc) rc = mtt_backend_of(p)->adamw(pw, g, mw, vw, decay, beta1, beta2, eps, step_size, bc2_sqrt);
    mtt_tensor_release(g);
    rc = write_back(p, pw, rc);
    rc = write_back(exp_avg[i], mw, rc);
    rc = write_back(exp_avg_sq[i], vw, rc);
    if (rc) return rc;
  }
  return 0;
}

/* The sum of squares of every gradient, in double, added in list order. When all gradients live
 * on one device whose backend sums a whole list (cuda: sum_squares_list), that takes one wait
 * for the device instead of one per tensor; the result has the same bits either way. */
static int grad_sum_squares(int n, mtt_tensor **params, double *sum) {
  int count = 0, device = -1, mixed = 0;
  for (int i = 0; i < n; i++) {
    mtt_tensor *gt = params[i]->grad_tensor;
    if (!gt) continue;
    if (device >= 0 && gt->device_id != device) mixed = 1;
    device = gt->device_id;
    count++;
  }
  *sum = 0;
  if (!count) return 0;
  const mtt_backend *be = mixed ? NULL : mtt_backend_for(device);
  if (!mixed && !be) return mtt_last_error_code();
  if (be && be->sum_squares_list && count > 1) {
    mtt_tensor **gs = calloc((size_t)count, sizeof *gs);
    if (!gs) return mtt_fail(MTT_ERR_MEMORY, "clip_grad_norm: out of memory");
    int rc = 0, k = 0;
    for (int i = 0; i < n && !rc; i++) {
      mtt_tensor *gt = params[i]->grad_tensor;
      if (!gt) continue;
      if (!(gs[k++] = mtt_contiguous_raw(gt))) rc = mtt_last_error_code();
    }
    if (!rc) rc = be->sum_squares_list(count, (const mtt_tensor *const *)gs, sum);
    for (int j = 0; j < k; j++) mtt_tensor_release(gs[j]);
    free(gs);
    return rc;
  }
  for (int i = 0; i < n; i++) {
    mtt_tensor *gt = params[i]->grad_tensor;
    if (!gt) continue;
    mtt_tensor *g = mtt_contiguous_raw(gt);
    double s = 0;
    int rc = g ? mtt_backend_of(g)->sum_squares(g, &s) : mtt_last_error_code();
    mtt_tensor_release(g);
    if (rc) return rc;
    *sum += s;
  }
  return 0;
}

/* torch.nn.utils.clip_grad_norm_: total = sqrt(sum of squares of all gradients) (in double, in
 * list order); when coef = max_norm / (total + 1e-6) is below 1, every gradient is scaled by it. */
int mtt_clip_grad_norm(int n, mtt_tensor **params, double max_norm, double *total_norm) {
  if (isnan(max_norm)) return mtt_fail(MTT_ERR_ARG, "clip_grad_norm: max_norm is NaN");
  if (total_norm) *total_norm = 0;
  for (int i = 0; i < n; i++)
    if (check_param("clip_grad_norm", i, params) < 0) return mtt_last_error_code();
  double sum = 0;
  int rc = grad_sum_squares(n, params, &sum);
  if (rc) return rc;
  double total = sqrt(sum);
  if (total_norm) *total_norm = total;
  double coef = max_norm / (total + 1e-6);
  if (coef >= 1.0) return 0; /* also false for NaN: a non-finite norm spreads, as in torch */
  for (int i = 0; i < n; i++) {
    mtt_tensor *g = params[i]->grad_tensor;
    if (!g) continue;
    mtt_tensor *gw = work_copy(g);
    int rc = gw ? mtt_backend_of(g)->scale(gw, coef) : mtt_last_error_code();
    if ((rc = write_back(g, gw, rc))) return rc;
  }
  return 0;
}
