/* error.c: errors are values. mtt_fail() records a message for mtt_last_error() and returns
 * the status; nothing in the core aborts or exits, so a REPL session survives any mistake. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char error_message[1024];
static _Thread_local int error_code;

/* The kind of each status, prefixed to nothing: op code writes the whole message. Kept here so
 * that the texts of generic failures live in one place. */
static const char *const status_names[] = {
    "ok", "shape mismatch", "unsupported dtype", "index out of range", "out of memory",
    "device error", "invalid state", "invalid argument",
};

int mtt_fail(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_message, sizeof error_message, fmt, ap);
  va_end(ap);
  error_code = status;
  return status;
}

const char *mtt_last_error(void) {
  if (error_message[0]) return error_message;
  int i = -error_code;
  return (i >= 0 && i < (int)(sizeof status_names / sizeof status_names[0])) ? status_names[i] : "unknown error";
}

int mtt_last_error_code(void) { return error_code ? error_code : MTT_ERR_STATE; }

void mtt_clear_error(void) {
  error_message[0] = 0;
  error_code = 0;
}

const char *mtt_shape_str(int ndim, const int64_t *shape) {
  static _Thread_local char buffers[4][128];
  static _Thread_local int next;
  char *buf = buffers[next];
  next = (next + 1) % 4;
  size_t used = 0;
  buf[used++] = '[';
  for (int d = 0; d < ndim && used < sizeof buffers[0] - 24; d++)
    used += (size_t)snprintf(buf + used, sizeof buffers[0] - used, d ? ",%lld" : "%lld", (long long)shape[d]);
  snprintf(buf + used, sizeof buffers[0] - used, "]");
  return buf;
}

const char *mtt_tshape(const mtt_tensor *t) { return t ? mtt_shape_str(t->ndim, t->dims) : "(null)"; }
