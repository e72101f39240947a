/* test_util.h: what the C tests share. CHECK counts a check and, when it fails, prints the file,
 * line and a printf-style message and lets the test go on; test_done prints the summary line and
 * gives the exit status (non-zero on any failure). A seeded LCG (no clock), and tensors to and
 * from doubles that exit on failure: a test cannot go on without its inputs.
 * Header-only (static functions): each test is one file that includes it once. */
#ifndef MTT_TEST_UTIL_H
#define MTT_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtt.h"

static int test_checks, test_failures;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    test_checks++;                                         \
    if (!(cond)) {                                         \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
      test_failures++;                                     \
    }                                                      \
  } while (0)

/* "name: N checks passed" (exit status 0) or "name: F of N checks failed" (1), for main to return */
static inline int test_done(const char *name) {
  if (test_failures) {
    fprintf(stderr, "%s: %d of %d checks failed\n", name, test_failures, test_checks);
    return 1;
  }
  printf("%s: %d checks passed\n", name, test_checks);
  return 0;
}

/* Deterministic values in [-1, 1): each test sets lcg_state (its seed) before drawing. */
static uint64_t lcg_state;
static inline double lcg(void) {
  lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(lcg_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* t itself; a NULL (what failed: mtt_last_error) ends the test */
static inline mtt_tensor *must(mtt_tensor *t, const char *what) {
  if (!t) {
    fprintf(stderr, "FAIL: %s returned NULL: %s\n", what, mtt_last_error());
    exit(1);
  }
  return t;
}

static inline mtt_tensor *tensor(int ndim, const int64_t *shape, const double *v, int dtype) {
  return must(mtt_from_f64(ndim, shape, v, dtype, MTT_CPU), "from_f64");
}

/* a cpu tensor of lcg() values */
static inline mtt_tensor *random_tensor(int ndim, const int64_t *shape, int dtype, int requires_grad) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) v[i] = lcg();
  mtt_tensor *t = tensor(ndim, shape, v, dtype);
  free(v);
  if (requires_grad) mtt_set_requires_grad(t, 1);
  return t;
}

/* t's elements as doubles, row-major (the caller frees them) */
static inline double *values_of(const mtt_tensor *t) {
  double *v = malloc(sizeof(double) * (size_t)(t->nelem ? t->nelem : 1));
  if (mtt_to_f64(t, v, t->nelem)) {
    fprintf(stderr, "FAIL: to_f64: %s\n", mtt_last_error());
    exit(1);
  }
  return v;
}

#endif
