/* backend_cpu.c: the cpu kernel table (OpenBLAS + OpenMP kernels in core/cpu/). */
#include <stdlib.h>

#include "backend.h"
#include "cpu/kernels_cpu.h"

static void *cpu_alloc(size_t nbytes) { return aligned_alloc(64, (nbytes + 63) & ~(size_t)63); }
static void cpu_free(void *ptr) { free(ptr); }

const mtt_backend mtt_backend_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy = mtt_cpu_copy,
    .fill = mtt_cpu_fill,
    .rand = mtt_cpu_rand,
    .unary = mtt_cpu_unary,
    .unary_backward = mtt_cpu_unary_backward,
    .binary = mtt_cpu_binary,
    .masked_fill = mtt_cpu_masked_fill,
    .binary_inplace = mtt_cpu_binary_inplace,
    .reduce = mtt_cpu_reduce,
    /* ---- [nn ops section: slots here] ---- */
    /* ---- [indexing section: slots here] ---- */
};
