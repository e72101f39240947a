/* rng.c: the Philox4x32-10 generator (philox.h), counter-based: the numbers for element i
 * depend only on (seed, counter), so any thread (or a GPU) can produce any element, and a seed
 * means the same stream everywhere. */
#include "internal.h"
#include "philox.h"

void mtt_philox(uint64_t seed, uint64_t counter, uint32_t out[4]) { mtt_philox_inline(seed, counter, out); }

float mtt_uniform01(uint32_t word) {
  /* 24 random bits -> (0, 1]: never 0, so log() in Box-Muller is safe. */
  return ((float)(word >> 8) + 1.0f) * (1.0f / 16777216.0f);
}
