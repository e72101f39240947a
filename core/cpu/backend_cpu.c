/* backend_cpu.c: the cpu kernel table (OpenBLAS + OpenMP kernels in core/cpu/). */
#include <stdlib.h>

#include "backend.h"
#include "cpu/kernels_cpu.h"


const mtt_backend mtt_backend_cpu = {
    .name = "cpu",
    .alloc = mtt_cpu_alloc,
    .free = mtt_cpu_free,
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
    .gemm = mtt_cpu_gemm,
    .softmax = mtt_cpu_softmax,
    .softmax_backward = mtt_cpu_softmax_backward,
    .layer_norm = mtt_cpu_layer_norm,
    .layer_norm_backward = mtt_cpu_layer_norm_backward,
    .embedding = mtt_cpu_embedding,
    .embedding_backward = mtt_cpu_embedding_backward,
    .cross_entropy = mtt_cpu_cross_entropy,
    .cross_entropy_backward = mtt_cpu_cross_entropy_backward,
    .attention = mtt_cpu_attention,
    .attention_backward = mtt_cpu_attention_backward,
    .dropout = mtt_cpu_dropout,
    /* ---- [indexing section: slots here] ---- */
    .gather = mtt_cpu_gather,
    .scatter_add = mtt_cpu_scatter_add,
    .topk = mtt_cpu_topk,
    .sgd = mtt_cpu_sgd,
    .adamw = mtt_cpu_adamw,
    .sum_squares = mtt_cpu_sum_squares,
    .scale = mtt_cpu_scale,
};
