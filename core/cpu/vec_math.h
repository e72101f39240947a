/* vec_math.h: f32 math written branch-free so that loops calling it vectorize (libm's expf and
 * tanhf are one call per element). The core is compiled with -fno-trapping-math, which lets gcc
 * turn the compares below into vector blends without changing any value. */
#ifndef MTT_VEC_MATH_H
#define MTT_VEC_MATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(x) for f32: x = n ln2 + r with |r| <= ln2/2, exp(r) by the Cephes polynomial (about 2 ulp),
 * times 2^n built in the exponent bits. 0 below -87.33 (no denormals), inf above 88.72, NaN
 * stays NaN. Branch-free, so that loops calling it vectorize; out-of-range x only clamps n
 * (keeping 2^n a normal number) and is then replaced by 0 or inf. */
static inline float mtt_exp_f32(float x) {
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
  n = n < -126.0f ? -126.0f : n;
  n = n > 127.0f ? 127.0f : n;
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  float y = p * scale;
  y = x < -87.33f ? 0.0f : y;
  return x > 88.72f ? INFINITY : y;
}

/* tanh(u) = 1 - 2 / (exp(2u) + 1): absolute error about 1e-7 (GELU's need), exact limits +-1. */
static inline float mtt_tanh_f32(float u) { return 1.0f - 2.0f / (mtt_exp_f32(2.0f * u) + 1.0f); }
#endif
