/*
 * tokenizer_train.c: training a byte-level BPE vocabulary.
 *
 * The text is cut into pieces with GPT-2's pattern (special tokens taken out first) and counted
 * as distinct words. Then, merge by merge, the most frequent adjacent pair of tokens becomes a
 * new token. Pair counts are kept up to date incrementally: each pair knows the words it occurs
 * in, so a merge rewrites only those words and adjusts the counts of the pairs around each
 * occurrence; a max-heap of (count, pair) is corrected lazily (an entry whose count is stale is
 * pushed back with the right one when it reaches the top). Ties go to the pair of smaller ids
 * (first token, then second), so a corpus always gives the same vocabulary.
 *
 * Ids: 0..255 are the bytes, in GPT-2's order (the order of their byte-level characters, so
 * they match GPT-2's first 256 ids), then the merges, then the special tokens, <|endoftext|>
 * first.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

struct mtt_bpe_trainer {
  int32_t n_special;
  char **specials;
  size_t *special_lens;
  uint8_t special_first[256];
  mtt_tok_strmap words;  /* piece bytes -> word index */
  char *bytes;       /* the words' bytes, word i at word_off[i] */
  size_t bytes_used, bytes_cap;
  int64_t *word_off;
  int64_t *word_count;
  int32_t *word_len;
  size_t n_words, words_cap;
};

static int grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * size);
  if (!q) return mtt_fail(MTT_ERR_MEMORY, "tokenizer train: out of memory (%zu elements)", c);
  *p = q, *cap = c;
  return 0;
}

void mtt_bpe_trainer_free(mtt_bpe_trainer *tr) {
  if (!tr) return;
  for (int32_t i = 0; i < tr->n_special; i++) free(tr->specials[i]);
  free(tr->specials), free(tr->special_lens);
  mtt_tok_strmap_free(&tr->words);
  free(tr->bytes), free(tr->word_off), free(tr->word_count), free(tr->word_len);
  free(tr);
}

static int add_special(mtt_bpe_trainer *tr, const char *s, size_t n) {
  if (n == 0) return mtt_fail(MTT_ERR_ARG, "tokenizer train: a special token is empty");
  if (!mtt_tok_utf8_valid((const uint8_t *)s, n)) return mtt_fail(MTT_ERR_ARG, "tokenizer train: special token %d is not valid UTF-8", tr->n_special + 1);
  for (int32_t i = 0; i < tr->n_special; i++)
    if (tr->special_lens[i] == n && memcmp(tr->specials[i], s, n) == 0) return 0; /* listed twice: once is enough */
  char *copy = malloc(n + 1);
  if (!copy) return mtt_fail(MTT_ERR_MEMORY, "tokenizer train: out of memory");
  memcpy(copy, s, n);
  copy[n] = 0;
  tr->specials[tr->n_special] = copy, tr->special_lens[tr->n_special] = n;
  tr->n_special++;
  tr->special_first[(uint8_t)s[0]] = 1;
  return 0;
}

mtt_bpe_trainer *mtt_bpe_trainer_new(int n_special, const char *const *specials, const size_t *special_lens) {
  if (n_special < 0 || (n_special && (!specials || !special_lens)))
    MTT_FAIL_NULL(MTT_ERR_ARG, "tokenizer train: bad list of special tokens");
  mtt_bpe_trainer *tr = calloc(1, sizeof *tr);
  if (!tr) MTT_FAIL_NULL(MTT_ERR_MEMORY, "tokenizer train: out of memory");
  tr->specials = calloc((size_t)n_special + 1, sizeof *tr->specials);
  tr->special_lens = calloc((size_t)n_special + 1, sizeof *tr->special_lens);
  int rc = (!tr->specials || !tr->special_lens) ? mtt_fail(MTT_ERR_MEMORY, "tokenizer train: out of memory") : 0;
  if (!rc) rc = add_special(tr, "<|endoftext|>", 13); /* always there, and first */
  for (int i = 0; i < n_special && !rc; i++) {
    if (!specials[i]) rc = mtt_fail(MTT_ERR_ARG, "tokenizer train: special token %d is NULL", i + 1);
    else rc = add_special(tr, specials[i], special_lens[i]);
  }
  if (rc) {
    mtt_bpe_trainer_free(tr);
    return NULL;
  }
  return tr;
}

static int count_piece(mtt_bpe_trainer *tr, const char *s, size_t n) {
  int64_t w;
  if (mtt_tok_strmap_get(&tr->words, s, n, &w)) {
    tr->word_count[w]++;
    return 0;
  }
  if (n > INT32_MAX) return mtt_fail(MTT_ERR_ARG, "tokenizer train: a piece of %zu bytes is too long", n);
  size_t c1 = tr->words_cap, c2 = tr->words_cap, c3 = tr->words_cap;
  if (grow((void **)&tr->word_off, &c1, tr->n_words + 1, sizeof *tr->word_off) ||
      grow((void **)&tr->word_count, &c2, tr->n_words + 1, sizeof *tr->word_count) ||
      grow((void **)&tr->word_len, &c3, tr->n_words + 1, sizeof *tr->word_len) ||
      grow((void **)&tr->bytes, &tr->bytes_cap, tr->bytes_used + n, 1))
    return MTT_ERR_MEMORY;
  tr->words_cap = c1;
  w = (int64_t)tr->n_words;
  if (mtt_tok_strmap_put(&tr->words, s, n, w)) return MTT_ERR_MEMORY;
  memcpy(tr->bytes + tr->bytes_used, s, n);
  tr->word_off[w] = (int64_t)tr->bytes_used, tr->word_len[w] = (int32_t)n, tr->word_count[w] = 1;
  tr->bytes_used += n;
  tr->n_words++;
  return 0;
}

static int count_plain(mtt_bpe_trainer *tr, const char *s, size_t len) {
  for (size_t pos = 0; pos < len;) {
    size_t end = mtt_tok_pretok_next((const uint8_t *)s, len, pos);
    int rc = count_piece(tr, s + pos, end - pos);
    if (rc) return rc;
    pos = end;
  }
  return 0;
}

int mtt_bpe_trainer_feed(mtt_bpe_trainer *tr, const char *text, size_t len) {
  if (!tr || (!text && len)) return mtt_fail(MTT_ERR_ARG, "tokenizer train: no trainer or no text");
  size_t seg = 0;
  for (size_t pos = 0; pos < len; pos++) {
    if (!tr->special_first[(uint8_t)text[pos]]) continue;
    size_t best = 0; /* the longest special token here, which is taken out of the text */
    for (int32_t i = 0; i < tr->n_special; i++)
      if (tr->special_lens[i] > best && tr->special_lens[i] <= len - pos && memcmp(text + pos, tr->specials[i], tr->special_lens[i]) == 0)
        best = tr->special_lens[i];
    if (!best) continue;
    int rc = count_plain(tr, text + seg, pos - seg);
    if (rc) return rc;
    pos += best - 1;
    seg = pos + 1;
  }
  return count_plain(tr, text + seg, len - seg);
}

/* ---- training ---- */

typedef struct pair_rec {
  int32_t a, b;
  int64_t count;
  int32_t *words; /* words the pair has occurred in (may repeat, may be stale) */
  int32_t n_words, cap_words;
  int32_t touched; /* last merge that raised the count */
} pair_rec;

typedef struct heap_entry {
  int64_t count;
  int32_t a, b;
} heap_entry;

typedef struct train_state {
  mtt_tok_u64map index; /* pair -> index in recs */
  pair_rec *recs;
  size_t n_recs, cap_recs;
  heap_entry *heap;
  size_t n_heap, cap_heap;
  int32_t *touched;
  size_t n_touched, cap_touched;
} train_state;

/* higher count first; on ties the smaller pair */
static bool heap_before(const heap_entry *x, const heap_entry *y) {
  if (x->count != y->count) return x->count > y->count;
  if (x->a != y->a) return x->a < y->a;
  return x->b < y->b;
}

static int heap_push(train_state *st, heap_entry e) {
  if (grow((void **)&st->heap, &st->cap_heap, st->n_heap + 1, sizeof *st->heap)) return MTT_ERR_MEMORY;
  size_t i = st->n_heap++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_before(&e, &st->heap[parent])) break;
    st->heap[i] = st->heap[parent];
    i = parent;
  }
  st->heap[i] = e;
  return 0;
}

static heap_entry heap_pop(train_state *st) {
  heap_entry *h = st->heap, top = h[0], last = h[--st->n_heap];
  size_t n = st->n_heap, i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && heap_before(&h[c + 1], &h[c])) c++;
    if (!heap_before(&h[c], &last)) break;
    h[i] = h[c];
    i = c;
  }
  if (n) h[i] = last;
  return top;
}

/* The record of pair (a, b), created if absent; NULL when out of memory. */
static pair_rec *pair_of(train_state *st, int32_t a, int32_t b) {
  int64_t *slot = mtt_tok_u64map_slot(&st->index, mtt_tok_pair_key(a, b), -1);
  if (!slot) return NULL;
  if (*slot < 0) {
    if (grow((void **)&st->recs, &st->cap_recs, st->n_recs + 1, sizeof *st->recs)) return NULL;
    *slot = (int64_t)st->n_recs;
    st->recs[st->n_recs++] = (pair_rec){a, b, 0, NULL, 0, 0, -1};
  }
  return &st->recs[*slot];
}

/* Adds delta occurrences of (a, b) found in word w. */
static int pair_add(train_state *st, int32_t a, int32_t b, int64_t delta, int32_t w, int32_t merge) {
  pair_rec *r = pair_of(st, a, b);
  if (!r) return mtt_fail(MTT_ERR_MEMORY, "tokenizer train: out of memory");
  r->count += delta;
  if (delta <= 0) return 0;
  if (r->n_words == 0 || r->words[r->n_words - 1] != w) {
    size_t cap = (size_t)r->cap_words;
    if (grow((void **)&r->words, &cap, (size_t)r->n_words + 1, sizeof *r->words)) return MTT_ERR_MEMORY;
    r->cap_words = (int32_t)cap;
    r->words[r->n_words++] = w;
  }
  if (merge >= 0 && r->touched != merge) {
    r->touched = merge;
    if (grow((void **)&st->touched, &st->cap_touched, st->n_touched + 1, sizeof *st->touched)) return MTT_ERR_MEMORY;
    st->touched[st->n_touched++] = (int32_t)(r - st->recs);
  }
  return 0;
}

static void state_free(train_state *st) {
  for (size_t i = 0; i < st->n_recs; i++) free(st->recs[i].words);
  free(st->recs), free(st->heap), free(st->touched);
  mtt_tok_u64map_free(&st->index);
}

/* Rewrites every occurrence of (a, b) in word w (symbols sym[0..*len)) as id. */
static int merge_word(train_state *st, int32_t *sym, int32_t *len, int64_t count, int32_t a, int32_t b, int32_t id,
                      int32_t w, int32_t merge) {
  int rc = 0;
  for (int32_t i = 0; i + 1 < *len && !rc; i++) {
    if (sym[i] != a || sym[i + 1] != b) continue;
    if (i > 0) {
      rc |= pair_add(st, sym[i - 1], a, -count, w, merge);
      rc |= pair_add(st, sym[i - 1], id, count, w, merge);
    }
    if (i + 2 < *len) {
      rc |= pair_add(st, b, sym[i + 2], -count, w, merge);
      rc |= pair_add(st, id, sym[i + 2], count, w, merge);
    }
    sym[i] = id;
    memmove(sym + i + 1, sym + i + 2, (size_t)(*len - i - 2) * sizeof *sym);
    (*len)--;
  }
  return rc;
}

mtt_tokenizer *mtt_bpe_trainer_finish(mtt_bpe_trainer *tr, int32_t vocab_size, int64_t min_frequency) {
  if (!tr) MTT_FAIL_NULL(MTT_ERR_ARG, "tokenizer train: no trainer");
  if (vocab_size < 256 + tr->n_special)
    MTT_FAIL_NULL(MTT_ERR_ARG, "tokenizer train: vocab_size %d is below 256 bytes + %d special tokens", vocab_size, tr->n_special);
  if (min_frequency < 1) min_frequency = 1;
  mtt_tokenizer *t = mtt_tokenizer_new_empty();
  if (!t) return NULL;
  int32_t target = vocab_size - tr->n_special; /* regular tokens wanted */
  int32_t byte_of_id[256];
  int rc = 0;
  for (uint32_t cp = 0, k = 0; cp < 0x100 + 68; cp++) { /* bytes in the order of their characters */
    int b = mtt_tok_cp_to_byte(cp);
    if (b >= 0) byte_of_id[k++] = b;
  }
  int32_t id_of_byte[256];
  for (int i = 0; i < 256 && !rc; i++) {
    char c = (char)byte_of_id[i];
    id_of_byte[byte_of_id[i]] = i;
    if (mtt_tokenizer_push(t, &c, 1, false, "tokenizer train") < 0) rc = mtt_last_error_code();
  }

  /* symbols of every word, one id per byte to start with */
  train_state st = {0};
  int32_t *sym = malloc((tr->bytes_used + 1) * sizeof *sym);
  int32_t *len = malloc((tr->n_words + 1) * sizeof *len);
  char *buf = NULL;
  size_t buf_cap = 0;
  if (!rc && (!sym || !len)) rc = mtt_fail(MTT_ERR_MEMORY, "tokenizer train: out of memory");
  for (size_t w = 0; w < tr->n_words && !rc; w++) {
    int32_t *s = sym + tr->word_off[w];
    len[w] = tr->word_len[w];
    for (int32_t i = 0; i < len[w]; i++) s[i] = id_of_byte[(uint8_t)tr->bytes[tr->word_off[w] + i]];
    for (int32_t i = 0; i + 1 < len[w] && !rc; i++) rc = pair_add(&st, s[i], s[i + 1], tr->word_count[w], (int32_t)w, -1);
  }
  for (size_t i = 0; i < st.n_recs && !rc; i++) rc = heap_push(&st, (heap_entry){st.recs[i].count, st.recs[i].a, st.recs[i].b});

  for (int32_t merge = 0; !rc && t->n_tokens < target && st.n_heap;) {
    heap_entry e = heap_pop(&st);
    int64_t r_index;
    mtt_tok_u64map_get(&st.index, mtt_tok_pair_key(e.a, e.b), &r_index);
    pair_rec *r = &st.recs[r_index];
    if (r->count != e.count) { /* stale: the count went down since this entry was pushed */
      if (r->count >= min_frequency) rc = heap_push(&st, (heap_entry){r->count, e.a, e.b});
      continue;
    }
    if (e.count < min_frequency) break;
    /* the new token; its bytes may already be a token made by another pair (then reused) */
    size_t la = (size_t)t->tok_len[e.a], lb = (size_t)t->tok_len[e.b];
    if ((rc = grow((void **)&buf, &buf_cap, la + lb, 1))) break;
    memcpy(buf, t->bytes + t->tok_off[e.a], la);
    memcpy(buf + la, t->bytes + t->tok_off[e.b], lb);
    int64_t existing;
    int32_t id = mtt_tok_strmap_get(&t->vocab, buf, la + lb, &existing) ? (int32_t)existing
                                                                     : mtt_tokenizer_push(t, buf, la + lb, false, "tokenizer train");
    if (id < 0 || (rc = mtt_tokenizer_push_merge(t, e.a, e.b, id))) {
      rc = mtt_last_error_code();
      break;
    }
    int32_t *words = r->words, n = r->n_words; /* r may move as pairs are added; its list does not */
    r->words = NULL, r->n_words = r->cap_words = 0;
    st.n_touched = 0;
    for (int32_t k = 0; k < n && !rc; k++) {
      int32_t w = words[k];
      rc = merge_word(&st, sym + tr->word_off[w], &len[w], tr->word_count[w], e.a, e.b, id, w, merge);
    }
    free(words);
    st.recs[r_index].count = 0; /* every occurrence is gone */
    for (size_t k = 0; k < st.n_touched && !rc; k++) {
      pair_rec *p = &st.recs[st.touched[k]];
      if (p->count >= min_frequency) rc = heap_push(&st, (heap_entry){p->count, p->a, p->b});
    }
    merge++;
  }
  for (int32_t i = 0; i < tr->n_special && !rc; i++)
    if (mtt_tokenizer_push(t, tr->specials[i], tr->special_lens[i], true, "tokenizer train") < 0) rc = mtt_last_error_code();
  if (!rc) rc = mtt_tokenizer_finish(t, "tokenizer train");
  free(sym), free(len), free(buf);
  state_free(&st);
  if (rc) {
    mtt_tokenizer_free(t);
    return NULL;
  }
  return t;
}
