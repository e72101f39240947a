/*
 * tokenizer.c: byte-level BPE as GPT-2 does it: the tokenizer object, encode and decode.
 *
 * A token is a byte string. Encoding splits the text at added (special) tokens, which map to
 * their ids whole, cuts the rest into pieces with GPT-2's pattern (tokenizer_pretok.c) and
 * turns each piece into tokens by merges: start from one token per byte and repeatedly apply
 * the merge of lowest rank present, all its occurrences left to right, as GPT-2's encoder.py
 * does. A heap over (rank, position) makes a piece O(n log n) instead of O(n^2); pieces of up
 * to 64 bytes are cached. Decoding concatenates the tokens' bytes, so any byte sequence
 * (invalid UTF-8 included) round-trips.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define CACHE_MAX_PIECE 64        /* longer pieces are rare and not worth caching */
#define CACHE_MAX_ENTRIES 500000  /* then the cache starts over (bounded memory on big corpora) */

mtt_tokenizer *mtt_tokenizer_new_empty(void) {
  mtt_tokenizer *t = calloc(1, sizeof *t);
  if (!t) MTT_FAIL_NULL(MTT_ERR_MEMORY, "tokenizer: out of memory");
  t->unk_id = -1;
  for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
  return t;
}

void mtt_tokenizer_free(mtt_tokenizer *t) {
  if (!t) return;
  free(t->tok_off), free(t->tok_len), free(t->tok_special), free(t->bytes);
  mtt_tok_strmap_free(&t->vocab), mtt_tok_strmap_free(&t->added), mtt_tok_strmap_free(&t->cache);
  free(t->merge_a), free(t->merge_b), free(t->merge_result);
  mtt_tok_u64map_free(&t->merge_rank);
  free(t->added_ids), free(t->cache_ids), free(t->scratch);
  free(t);
}

/* Grows *p (of elements of size `size`) to hold at least `need`; 0 or MTT_ERR_MEMORY. */
static int grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * size);
  if (!q) return mtt_fail(MTT_ERR_MEMORY, "tokenizer: out of memory (%zu elements)", c);
  *p = q, *cap = c;
  return 0;
}

int32_t mtt_tokenizer_push(mtt_tokenizer *t, const void *bytes, size_t len, bool special, const char *what) {
  if (t->n_tokens == INT32_MAX) return mtt_fail(MTT_ERR_ARG, "%s: too many tokens", what);
  if (len == 0) return mtt_fail(MTT_ERR_ARG, "%s: token %d is empty", what, t->n_tokens);
  if (len > (1u << 30)) return mtt_fail(MTT_ERR_ARG, "%s: token %d is too long (%zu bytes)", what, t->n_tokens, len);
  mtt_tok_strmap *map = special ? &t->added : &t->vocab;
  int64_t prev;
  if (mtt_tok_strmap_get(map, bytes, len, &prev))
    return mtt_fail(MTT_ERR_ARG, "%s: token %d repeats token %lld", what, t->n_tokens, (long long)prev);
  if (special && !mtt_tok_utf8_valid(bytes, len))
    return mtt_fail(MTT_ERR_ARG, "%s: special token %d is not valid UTF-8", what, t->n_tokens);
  size_t cap = t->tok_cap, need = (size_t)t->n_tokens + 1;
  if (need > cap) {
    size_t c1 = cap, c2 = cap, c3 = cap;
    if (grow((void **)&t->tok_off, &c1, need, sizeof *t->tok_off) ||
        grow((void **)&t->tok_len, &c2, need, sizeof *t->tok_len) ||
        grow((void **)&t->tok_special, &c3, need, sizeof *t->tok_special))
      return MTT_ERR_MEMORY;
    t->tok_cap = c1;
  }
  if (grow((void **)&t->bytes, &t->bytes_cap, t->bytes_used + len, 1)) return MTT_ERR_MEMORY;
  int32_t id = t->n_tokens;
  memcpy(t->bytes + t->bytes_used, bytes, len);
  t->tok_off[id] = (int64_t)t->bytes_used, t->tok_len[id] = (int32_t)len, t->tok_special[id] = special;
  t->bytes_used += len;
  if (mtt_tok_strmap_put(map, bytes, len, id)) return MTT_ERR_MEMORY;
  t->n_tokens++;
  return id;
}

int mtt_tokenizer_push_merge(mtt_tokenizer *t, int32_t a, int32_t b, int32_t result) {
  int64_t *rank = mtt_tok_u64map_slot(&t->merge_rank, mtt_tok_pair_key(a, b), t->n_merges);
  if (!rank) return MTT_ERR_MEMORY;
  if (*rank != t->n_merges) return 0; /* a repeated merge: the first (lowest) rank wins */
  size_t cap = (size_t)t->merges_cap, need = (size_t)t->n_merges + 1;
  if (need > cap) {
    size_t c1 = cap, c2 = cap, c3 = cap;
    if (grow((void **)&t->merge_a, &c1, need, sizeof(int32_t)) || grow((void **)&t->merge_b, &c2, need, sizeof(int32_t)) ||
        grow((void **)&t->merge_result, &c3, need, sizeof(int32_t)))
      return MTT_ERR_MEMORY;
    t->merges_cap = (int32_t)c1;
  }
  t->merge_a[t->n_merges] = a, t->merge_b[t->n_merges] = b, t->merge_result[t->n_merges] = result;
  t->n_merges++;
  return 0;
}

/* Added tokens are tried longest first, so that "<|a|>x" wins over its prefix "<|a|>". */
static bool added_before(const mtt_tokenizer *t, int32_t a, int32_t b) {
  return t->tok_len[a] != t->tok_len[b] ? t->tok_len[a] > t->tok_len[b] : a < b;
}

int mtt_tokenizer_finish(mtt_tokenizer *t, const char *what) {
  for (int b = 0; b < 256; b++) {
    uint8_t c = (uint8_t)b;
    int64_t id;
    t->byte_id[b] = mtt_tok_strmap_get(&t->vocab, &c, 1, &id) ? (int32_t)id : -1;
  }
  free(t->added_ids);
  t->added_ids = malloc(((size_t)t->n_added + (size_t)t->added.count + 1) * sizeof *t->added_ids);
  if (!t->added_ids) return mtt_fail(MTT_ERR_MEMORY, "%s: out of memory", what);
  t->n_added = 0;
  memset(t->first_bytes, 0, sizeof t->first_bytes);
  for (int32_t i = 0; i < t->n_tokens; i++) {
    if (!t->tok_special[i]) continue;
    t->added_ids[t->n_added++] = i;
    t->first_bytes[(uint8_t)t->bytes[t->tok_off[i]]] = 1;
  }
  for (int32_t i = 1; i < t->n_added; i++) { /* insertion sort: there are only a few */
    int32_t id = t->added_ids[i], j = i;
    for (; j > 0 && added_before(t, id, t->added_ids[j - 1]); j--) t->added_ids[j] = t->added_ids[j - 1];
    t->added_ids[j] = id;
  }
  return 0;
}

/* ---- encode ---- */

typedef struct bpe_entry {
  int32_t rank, pos, a, b;
} bpe_entry;

static bool entry_less(const bpe_entry *x, const bpe_entry *y) {
  return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(bpe_entry *h, size_t *n, bpe_entry e) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!entry_less(&e, &h[parent])) break;
    h[i] = h[parent];
    i = parent;
  }
  h[i] = e;
}

static bpe_entry heap_pop(bpe_entry *h, size_t *n) {
  bpe_entry top = h[0], last = h[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && entry_less(&h[c + 1], &h[c])) c++;
    if (!entry_less(&h[c], &last)) break;
    h[i] = h[c];
    i = c;
  }
  if (*n) h[i] = last;
  return top;
}

static bool merge_rank_of(const mtt_tokenizer *t, int32_t a, int32_t b, int32_t *rank) {
  int64_t r;
  if (!mtt_tok_u64map_get(&t->merge_rank, mtt_tok_pair_key(a, b), &r)) return false;
  *rank = (int32_t)r;
  return true;
}

/* BPE on one piece of n >= 1 bytes; *out points at the ids (in the scratch, valid until the next
 * call). Returns the count or a status. */
static int64_t bpe_piece(mtt_tokenizer *t, const uint8_t *p, size_t n, const int32_t **out) {
  /* Layout of the scratch: heap (3n), pending (2n), then ids, next, prev (n each). Each merge
   * pushes at most 2 entries, and there are at most n - 1 merges. */
  size_t need = (5 * n + 4) * sizeof(bpe_entry) + 3 * n * sizeof(int32_t);
  if (need > t->scratch_cap) {
    void *s = realloc(t->scratch, need);
    if (!s) return mtt_fail(MTT_ERR_MEMORY, "tokenizer: out of memory encoding a piece of %zu bytes", n);
    t->scratch = s, t->scratch_cap = need;
  }
  bpe_entry *heap = t->scratch, *pending = heap + 3 * n + 2;
  int32_t *ids = (int32_t *)(pending + 2 * n + 2), *next = ids + n, *prev = next + n;
  for (size_t i = 0; i < n; i++) {
    int32_t id = t->byte_id[p[i]];
    if (id < 0) {
      if (t->unk_id < 0)
        return mtt_fail(MTT_ERR_ARG, "tokenizer: byte 0x%02x has no token in the vocabulary (and there is no unk_token)", p[i]);
      id = t->unk_id;
    }
    ids[i] = id, next[i] = (int32_t)i + 1, prev[i] = (int32_t)i - 1;
  }
  next[n - 1] = -1;
  size_t hn = 0, pn = 0;
  int32_t rank, cur = -1;
  for (size_t i = 0; i + 1 < n; i++)
    if (merge_rank_of(t, ids[i], ids[i + 1], &rank)) heap_push(heap, &hn, (bpe_entry){rank, (int32_t)i, ids[i], ids[i + 1]});
  for (;;) {
    /* Pairs created with a rank below the one being applied wait until all occurrences of the
     * current merge are done, as in GPT-2's loop (which re-picks the minimum only then). */
    if (hn == 0 || (pn && heap[0].rank != cur)) {
      if (!pn) break;
      for (size_t i = 0; i < pn; i++) heap_push(heap, &hn, pending[i]);
      pn = 0;
      continue;
    }
    bpe_entry e = heap_pop(heap, &hn);
    int32_t r = next[e.pos];
    if (ids[e.pos] != e.a || r < 0 || ids[r] != e.b) continue; /* stale: a neighbour merged */
    cur = e.rank;
    ids[e.pos] = t->merge_result[e.rank];
    ids[r] = -1;
    next[e.pos] = next[r];
    if (next[r] >= 0) prev[next[r]] = e.pos;
    int32_t l = prev[e.pos], nx = next[e.pos];
    bpe_entry fresh[2];
    int nf = 0;
    if (l >= 0 && merge_rank_of(t, ids[l], ids[e.pos], &rank)) fresh[nf++] = (bpe_entry){rank, l, ids[l], ids[e.pos]};
    if (nx >= 0 && merge_rank_of(t, ids[e.pos], ids[nx], &rank)) fresh[nf++] = (bpe_entry){rank, e.pos, ids[e.pos], ids[nx]};
    for (int k = 0; k < nf; k++) {
      if (fresh[k].rank > cur) heap_push(heap, &hn, fresh[k]);
      else pending[pn++] = fresh[k];
    }
  }
  int64_t count = 0; /* compact in place: the k-th live node sits at index >= k */
  for (int32_t i = 0; i >= 0; i = next[i]) ids[count++] = ids[i];
  *out = ids;
  return count;
}

/* One pre-token into ids; *out points at them (cache, scratch or *one). Count or a status. */
static int64_t encode_piece(mtt_tokenizer *t, const uint8_t *p, size_t n, const int32_t **out, int32_t *one) {
  int64_t v;
  bool cacheable = n <= CACHE_MAX_PIECE;
  if (cacheable && mtt_tok_strmap_get(&t->cache, p, n, &v)) {
    *out = t->cache_ids + (v >> 8);
    return v & 0xFF;
  }
  if (n == 1 && t->byte_id[p[0]] >= 0) {
    *one = t->byte_id[p[0]], *out = one;
    return 1;
  }
  if (t->ignore_merges && mtt_tok_strmap_get(&t->vocab, p, n, &v)) {
    *one = (int32_t)v, *out = one;
    return 1;
  }
  int64_t count = bpe_piece(t, p, n, out);
  if (count < 0 || !cacheable) return count;
  if (t->cache.count >= CACHE_MAX_ENTRIES) mtt_tok_strmap_clear(&t->cache), t->cache_ids_used = 0;
  if (grow((void **)&t->cache_ids, &t->cache_ids_cap, t->cache_ids_used + (size_t)count, sizeof *t->cache_ids) == 0 &&
      mtt_tok_strmap_put(&t->cache, p, n, ((int64_t)t->cache_ids_used << 8) | count) == 0) {
    memcpy(t->cache_ids + t->cache_ids_used, *out, (size_t)count * sizeof **out);
    t->cache_ids_used += (size_t)count;
  } else {
    mtt_clear_error(); /* a failed cache insert only costs speed */
  }
  return count;
}

static int fail_capacity(int64_t capacity) {
  return mtt_fail(MTT_ERR_ARG, "tokenizer encode: the ids do not fit in a buffer of %lld", (long long)capacity);
}

/* Plain text (no added tokens in it) into out[0..capacity); count or a status. */
static int64_t encode_plain(mtt_tokenizer *t, const uint8_t *s, size_t len, int32_t *out, int64_t capacity) {
  if (len == 0) return 0;
  uint8_t *owned = NULL;
  if (t->add_prefix_space && s[0] != ' ') { /* as Hugging Face's ByteLevel(add_prefix_space=true) */
    owned = malloc(len + 1);
    if (!owned) return mtt_fail(MTT_ERR_MEMORY, "tokenizer: out of memory");
    owned[0] = ' ';
    memcpy(owned + 1, s, len);
    s = owned, len++;
  }
  int64_t count = 0;
  for (size_t pos = 0; pos < len;) {
    size_t end = mtt_tok_pretok_next(s, len, pos);
    const int32_t *ids = NULL;
    int32_t one = 0;
    int64_t k = encode_piece(t, s + pos, end - pos, &ids, &one);
    if (k >= 0 && k > capacity - count) k = fail_capacity(capacity);
    if (k < 0) {
      free(owned);
      return k;
    }
    memcpy(out + count, ids, (size_t)k * sizeof *out);
    count += k;
    pos = end;
  }
  free(owned);
  return count;
}

/* Id of the longest added token that starts at s (len bytes left), or -1. */
static int32_t added_at(const mtt_tokenizer *t, const uint8_t *s, size_t len) {
  if (!t->first_bytes[s[0]]) return -1;
  for (int32_t k = 0; k < t->n_added; k++) {
    int32_t id = t->added_ids[k];
    size_t n = (size_t)t->tok_len[id];
    if (n <= len && memcmp(s, t->bytes + t->tok_off[id], n) == 0) return id;
  }
  return -1;
}

int64_t mtt_tokenizer_encode(mtt_tokenizer *t, const char *text, size_t len, int split_special, int32_t *ids,
                             int64_t capacity) {
  if (!t) return mtt_fail(MTT_ERR_ARG, "tokenizer encode: no tokenizer");
  if (!text && len) return mtt_fail(MTT_ERR_ARG, "tokenizer encode: NULL text");
  if (capacity < 0 || (!ids && capacity)) return mtt_fail(MTT_ERR_ARG, "tokenizer encode: bad output buffer");
  const uint8_t *s = (const uint8_t *)text;
  int64_t count = 0;
  size_t seg = 0; /* start of the plain text not yet encoded */
  for (size_t pos = 0; pos < len; pos++) {
    int32_t id = (!split_special && t->n_added) ? added_at(t, s + pos, len - pos) : -1;
    if (id < 0) continue;
    int64_t k = encode_plain(t, s + seg, pos - seg, ids + count, capacity - count);
    if (k < 0) return k;
    count += k;
    if (count >= capacity) return fail_capacity(capacity);
    ids[count++] = id;
    pos += (size_t)t->tok_len[id] - 1;
    seg = pos + 1;
  }
  int64_t k = encode_plain(t, s + seg, len - seg, ids + count, capacity - count);
  return k < 0 ? k : count + k;
}

int64_t mtt_tokenizer_decode(const mtt_tokenizer *t, const int32_t *ids, int64_t n, char *out, int64_t capacity) {
  if (!t) return mtt_fail(MTT_ERR_ARG, "tokenizer decode: no tokenizer");
  if (n < 0 || (!ids && n)) return mtt_fail(MTT_ERR_ARG, "tokenizer decode: bad id list");
  int64_t used = 0;
  for (int64_t i = 0; i < n; i++) {
    int32_t id = ids[i];
    if (id < 0 || id >= t->n_tokens)
      return mtt_fail(MTT_ERR_INDEX, "tokenizer decode: id %d at position %lld is out of range (vocab size %d)", id,
                      (long long)i + 1, t->n_tokens);
    int64_t k = t->tok_len[id];
    if (used + k <= capacity) memcpy(out + used, t->bytes + t->tok_off[id], (size_t)k);
    else if (used < capacity) memcpy(out + used, t->bytes + t->tok_off[id], (size_t)(capacity - used));
    used += k;
  }
  return used;
}

int64_t mtt_tokenizer_pretokenize(const char *text, size_t len, int64_t *ends, int64_t capacity) {
  if (!text && len) return mtt_fail(MTT_ERR_ARG, "pretokenize: NULL text");
  int64_t count = 0;
  for (size_t pos = 0; pos < len; count++) {
    pos = mtt_tok_pretok_next((const uint8_t *)text, len, pos);
    if (count < capacity) ends[count] = (int64_t)pos;
  }
  return count;
}

/* ---- queries ---- */

int32_t mtt_tokenizer_vocab_size(const mtt_tokenizer *t) { return t ? t->n_tokens : 0; }
int32_t mtt_tokenizer_n_merges(const mtt_tokenizer *t) { return t ? t->n_merges : 0; }

int32_t mtt_tokenizer_token_id(const mtt_tokenizer *t, const char *bytes, size_t len) {
  int64_t id;
  if (!t || (!bytes && len)) return -1;
  if (mtt_tok_strmap_get(&t->added, bytes, len, &id) || mtt_tok_strmap_get(&t->vocab, bytes, len, &id)) return (int32_t)id;
  return -1;
}

const char *mtt_tokenizer_token_bytes(const mtt_tokenizer *t, int32_t id, size_t *len) {
  if (!t || id < 0 || id >= t->n_tokens) {
    mtt_fail(MTT_ERR_INDEX, "tokenizer: id %d is out of range (vocab size %d)", id, t ? t->n_tokens : 0);
    return NULL;
  }
  if (len) *len = (size_t)t->tok_len[id];
  return t->bytes + t->tok_off[id];
}

int mtt_tokenizer_is_special(const mtt_tokenizer *t, int32_t id) {
  return t && id >= 0 && id < t->n_tokens && t->tok_special[id];
}

int mtt_tokenizer_merge(const mtt_tokenizer *t, int32_t rank, int32_t *a, int32_t *b, int32_t *result) {
  if (!t || rank < 0 || rank >= t->n_merges)
    return mtt_fail(MTT_ERR_INDEX, "tokenizer: merge %d is out of range (%d merges)", rank, t ? t->n_merges : 0);
  *a = t->merge_a[rank], *b = t->merge_b[rank], *result = t->merge_result[rank];
  return 0;
}

const char *mtt_tokenizer_unicode_version(void) { return mtt_tok_unicode_version; }
