/* threads.c: one thread count for our OpenMP kernels and OpenBLAS. With Debian's OpenMP build of
 * OpenBLAS both use the same libgomp pool, so they never spin against each other. */
#include <omp.h>

#include "internal.h"

void openblas_set_num_threads(int n);
char *openblas_get_corename(void);
char *openblas_get_config(void);

void mtt_set_num_threads(int n) {
  if (n < 1) n = 1;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int mtt_get_num_threads(void) { return omp_get_max_threads(); }

/* Below ~32k element-ops a parallel region costs more than it saves. */
int mtt_threads_for(int64_t work) {
  if (work < 32768) return 1;
  int n = omp_get_max_threads();
  int64_t useful = work / 16384;
  return useful < n ? (int)useful : n;
}

const char *mtt_blas_info(void) {
  static char info[256];
  const char *core = openblas_get_corename();
  const char *config = openblas_get_config();
  int n = 0;
  for (const char *p = "OpenBLAS core="; *p && n < 200; p++) info[n++] = *p;
  for (const char *p = core ? core : "?"; *p && n < 220; p++) info[n++] = *p;
  info[n++] = ' ';
  for (const char *p = config ? config : ""; *p && n < 254; p++) info[n++] = *p;
  info[n] = 0;
  return info;
}
