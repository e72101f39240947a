/* tokenizer_map.c: the tokenizer's two hash maps (open addressing, linear probing, power-of-two
 * capacity, grown at 50% load): byte strings -> int64 and uint64 -> int64. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

/* FNV-1a, then a final mix; never 0 (0 marks an empty slot). */
static uint64_t hash_bytes(const void *key, size_t len) {
  const uint8_t *p = key;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ull;
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return h ? h : 1;
}

static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

static int strmap_grow(mtt_tok_strmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 64;
  uint64_t *hashes = calloc(cap, sizeof *hashes);
  int64_t *key_off = malloc(cap * sizeof *key_off);
  uint32_t *key_len = malloc(cap * sizeof *key_len);
  int64_t *values = malloc(cap * sizeof *values);
  if (!hashes || !key_off || !key_len || !values) {
    free(hashes), free(key_off), free(key_len), free(values);
    return mtt_fail(MTT_ERR_MEMORY, "tokenizer: out of memory growing a hash map to %zu slots", cap);
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->hashes[i]) continue;
    size_t j = m->hashes[i] & (cap - 1);
    while (hashes[j]) j = (j + 1) & (cap - 1);
    hashes[j] = m->hashes[i], key_off[j] = m->key_off[i], key_len[j] = m->key_len[i], values[j] = m->values[i];
  }
  free(m->hashes), free(m->key_off), free(m->key_len), free(m->values);
  m->hashes = hashes, m->key_off = key_off, m->key_len = key_len, m->values = values, m->cap = cap;
  return 0;
}

static size_t strmap_find(const mtt_tok_strmap *m, uint64_t h, const void *key, size_t len) {
  size_t j = h & (m->cap - 1);
  while (m->hashes[j]) {
    if (m->hashes[j] == h && m->key_len[j] == len && memcmp(m->arena + m->key_off[j], key, len) == 0) return j;
    j = (j + 1) & (m->cap - 1);
  }
  return j;
}

int mtt_tok_strmap_put(mtt_tok_strmap *m, const void *key, size_t len, int64_t value) {
  if (len > UINT32_MAX) return mtt_fail(MTT_ERR_ARG, "tokenizer: key of %zu bytes is too long", len);
  if ((m->count + 1) * 2 > m->cap) {
    int rc = strmap_grow(m);
    if (rc) return rc;
  }
  uint64_t h = hash_bytes(key, len);
  size_t j = strmap_find(m, h, key, len);
  if (m->hashes[j]) {
    m->values[j] = value;
    return 0;
  }
  if (m->arena_used + len + 1 > m->arena_cap) {
    size_t cap = m->arena_cap ? m->arena_cap : 4096;
    while (m->arena_used + len + 1 > cap) cap *= 2;
    char *arena = realloc(m->arena, cap);
    if (!arena) return mtt_fail(MTT_ERR_MEMORY, "tokenizer: out of memory growing a key arena to %zu bytes", cap);
    m->arena = arena, m->arena_cap = cap;
  }
  if (len) memcpy(m->arena + m->arena_used, key, len);
  m->hashes[j] = h, m->key_off[j] = (int64_t)m->arena_used, m->key_len[j] = (uint32_t)len, m->values[j] = value;
  m->arena_used += len;
  m->count++;
  return 0;
}

bool mtt_tok_strmap_get(const mtt_tok_strmap *m, const void *key, size_t len, int64_t *value) {
  if (!m->cap) return false;
  size_t j = strmap_find(m, hash_bytes(key, len), key, len);
  if (!m->hashes[j]) return false;
  if (value) *value = m->values[j];
  return true;
}

void mtt_tok_strmap_clear(mtt_tok_strmap *m) {
  if (m->cap) memset(m->hashes, 0, m->cap * sizeof *m->hashes);
  m->count = 0;
  m->arena_used = 0;
}

void mtt_tok_strmap_free(mtt_tok_strmap *m) {
  free(m->hashes), free(m->key_off), free(m->key_len), free(m->values), free(m->arena);
  memset(m, 0, sizeof *m);
}

static int u64map_grow(mtt_tok_u64map *m) {
  size_t cap = m->cap ? m->cap * 2 : 64;
  uint64_t *keys = malloc(cap * sizeof *keys);
  int64_t *values = malloc(cap * sizeof *values);
  if (!keys || !values) {
    free(keys), free(values);
    return mtt_fail(MTT_ERR_MEMORY, "tokenizer: out of memory growing a hash map to %zu slots", cap);
  }
  memset(keys, 0xff, cap * sizeof *keys);
  for (size_t i = 0; i < m->cap; i++) {
    if (m->keys[i] == UINT64_MAX) continue;
    size_t j = hash_u64(m->keys[i]) & (cap - 1);
    while (keys[j] != UINT64_MAX) j = (j + 1) & (cap - 1);
    keys[j] = m->keys[i], values[j] = m->values[i];
  }
  free(m->keys), free(m->values);
  m->keys = keys, m->values = values, m->cap = cap;
  return 0;
}

int64_t *mtt_tok_u64map_slot(mtt_tok_u64map *m, uint64_t key, int64_t init) {
  if ((m->count + 1) * 2 > m->cap && u64map_grow(m)) return NULL;
  size_t j = hash_u64(key) & (m->cap - 1);
  while (m->keys[j] != UINT64_MAX) {
    if (m->keys[j] == key) return &m->values[j];
    j = (j + 1) & (m->cap - 1);
  }
  m->keys[j] = key, m->values[j] = init;
  m->count++;
  return &m->values[j];
}

int mtt_tok_u64map_put(mtt_tok_u64map *m, uint64_t key, int64_t value) {
  int64_t *slot = mtt_tok_u64map_slot(m, key, value);
  if (!slot) return MTT_ERR_MEMORY;
  *slot = value;
  return 0;
}

bool mtt_tok_u64map_get(const mtt_tok_u64map *m, uint64_t key, int64_t *value) {
  if (!m->cap) return false;
  size_t j = hash_u64(key) & (m->cap - 1);
  while (m->keys[j] != UINT64_MAX) {
    if (m->keys[j] == key) {
      if (value) *value = m->values[j];
      return true;
    }
    j = (j + 1) & (m->cap - 1);
  }
  return false;
}

void mtt_tok_u64map_free(mtt_tok_u64map *m) {
  free(m->keys), free(m->values);
  memset(m, 0, sizeof *m);
}
