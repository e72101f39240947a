/* sha256.c: SHA-256 (FIPS 180-4) of a buffer or a file, as lowercase hex, for bundle manifests
 * and the content-addressed cache. Written from the standard; checked against Python's hashlib
 * in tests/lua/test_bundle.lua. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct {
  uint32_t h[8];
  uint64_t len;        /* bytes hashed so far */
  unsigned char buf[64];
  size_t fill;
} sha256_ctx;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(sha256_ctx *c, const unsigned char *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
    h = g; g = f; f = e; e = d + t1; d = cc; cc = b; b = a; a = t1 + t2;
  }
  c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
  c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

static void sha256_init(sha256_ctx *c) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->h, h0, sizeof h0);
  c->len = 0;
  c->fill = 0;
}

static void sha256_update(sha256_ctx *c, const void *data, size_t n) {
  const unsigned char *p = data;
  c->len += n;
  if (c->fill) {
    size_t k = 64 - c->fill < n ? 64 - c->fill : n;
    memcpy(c->buf + c->fill, p, k);
    c->fill += k, p += k, n -= k;
    if (c->fill < 64) return;
    sha256_block(c, c->buf);
    c->fill = 0;
  }
  for (; n >= 64; p += 64, n -= 64) sha256_block(c, p);
  memcpy(c->buf, p, n);
  c->fill = n;
}

static void sha256_hex(sha256_ctx *c, char *hex65) {
  uint64_t bits = c->len * 8;
  unsigned char pad[72] = {0x80};
  size_t npad = (c->fill < 56 ? 56 : 120) - c->fill;
  for (int i = 0; i < 8; i++) pad[npad + i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_update(c, pad, npad + 8);
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    unsigned v = (c->h[i / 4] >> (24 - 8 * (i % 4))) & 0xff;
    hex65[2 * i] = digits[v >> 4];
    hex65[2 * i + 1] = digits[v & 15];
  }
  hex65[64] = 0;
}

int mtt_sha256_bytes(const void *data, size_t n, char *hex65) {
  if (!hex65 || (!data && n)) return mtt_fail(MTT_ERR_ARG, "sha256: no buffer given");
  sha256_ctx c;
  sha256_init(&c);
  sha256_update(&c, data, n);
  sha256_hex(&c, hex65);
  return 0;
}

int mtt_sha256_file(const char *path, char *hex65, int64_t *size) {
  if (!path || !hex65) return mtt_fail(MTT_ERR_ARG, "sha256: no path given");
  FILE *f = fopen(path, "rb");
  if (!f) return mtt_fail(MTT_ERR_ARG, "sha256: cannot open '%s': %s", path, strerror(errno));
  sha256_ctx c;
  sha256_init(&c);
  size_t cap = 1 << 20;
  unsigned char *buf = malloc(cap);
  if (!buf) {
    fclose(f);
    return mtt_fail(MTT_ERR_MEMORY, "sha256: out of memory");
  }
  size_t got;
  while ((got = fread(buf, 1, cap, f)) > 0) sha256_update(&c, buf, got);
  int bad = ferror(f);
  free(buf);
  fclose(f);
  if (bad) return mtt_fail(MTT_ERR_ARG, "sha256: read error in '%s'", path);
  if (size) *size = (int64_t)c.len;
  sha256_hex(&c, hex65);
  return 0;
}
