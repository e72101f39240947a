/* tokenizer_io.c: tokenizer files. Hugging Face's tokenizer.json (a BPE model with a ByteLevel
 * pre-tokenizer and decoder: vocab, merges, added_tokens) read and written, and GPT-2's own
 * encoder.json + vocab.bpe read. Vocab keys in these files are byte-level strings (each byte
 * shown as one code point, GPT-2's bytes_to_unicode); tokens are kept as raw bytes in memory.
 * Every problem in a file is an error naming the file and what is wrong. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

/* Byte-level string -> bytes; false if some character stands for no byte. out holds n bytes. */
static bool bytelevel_decode(const char *s, size_t n, char *out, size_t *out_len) {
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    i += mtt_tok_utf8_decode((const uint8_t *)s + i, n - i, &cp);
    int b = cp == MTT_TOK_INVALID_CP ? -1 : mtt_tok_cp_to_byte(cp);
    if (b < 0) return false;
    out[k++] = (char)b;
  }
  *out_len = k;
  return true;
}

/* Bytes -> byte-level string; out holds 2n bytes (every stand-in is below U+0800). */
static size_t bytelevel_encode(const char *s, size_t n, char *out) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += mtt_tok_utf8_encode(mtt_tok_byte_to_cp((uint8_t)s[i]), out + k);
  return k;
}

/* A short printable excerpt of a token for messages. */
static const char *shown(const char *s, size_t n) {
  static _Thread_local char buf[4][48];
  static _Thread_local int next;
  char *b = buf[next];
  next = (next + 1) % 4;
  size_t k = 0;
  for (size_t i = 0; i < n && k < 40; i++) b[k++] = ((unsigned char)s[i] < 0x20) ? '?' : s[i];
  if (n > 40) memcpy(b + 40, "...", 3), k = 43;
  b[k] = 0;
  return b;
}

static bool is_int_id(const mtt_tokjson *v) {
  return v && v->type == MTT_TOKJSON_NUMBER && v->number >= 0 && v->number < 2147483647.0 && v->number == (double)(int64_t)v->number;
}

/* One vocabulary slot while a file is read: a token's text as found in the file. */
typedef struct slot {
  const char *text;
  size_t len;
  bool added;    /* from added_tokens: raw text, special */
  bool in_vocab; /* from the vocab (text is byte-level unless added) */
} slot;

/* Resolves a byte-level token string of a merge to an id; -1 with an error if unknown. */
static int32_t merge_token(mtt_tokenizer *t, const char *s, size_t n, char *buf, const char *what, const char *where) {
  size_t k;
  int64_t id;
  if (!bytelevel_decode(s, n, buf, &k) || !mtt_tok_strmap_get(&t->vocab, buf, k, &id)) {
    mtt_fail(MTT_ERR_ARG, "%s: %s: unknown token '%s' (not in the vocabulary)", what, where, shown(s, n));
    return -1;
  }
  return (int32_t)id;
}

/* Adds merge a b; the merged token must be in the vocabulary too. */
static int add_merge(mtt_tokenizer *t, const char *a, size_t na, const char *b, size_t nb, const char *what,
                     const char *where) {
  char buf[2048];
  buf[0] = 0; /* (quiets gcc: an empty token reads nothing) */
  if (na + nb > sizeof buf) return mtt_fail(MTT_ERR_ARG, "%s: %s: merge of over %zu bytes", what, where, sizeof buf);
  int32_t ia = merge_token(t, a, na, buf, what, where);
  if (ia < 0) return MTT_ERR_ARG;
  int32_t ib = merge_token(t, b, nb, buf, what, where);
  if (ib < 0) return MTT_ERR_ARG;
  size_t la = (size_t)t->tok_len[ia], lb = (size_t)t->tok_len[ib];
  memcpy(buf, t->bytes + t->tok_off[ia], la);
  memcpy(buf + la, t->bytes + t->tok_off[ib], lb);
  int64_t r;
  if (!mtt_tok_strmap_get(&t->vocab, buf, la + lb, &r))
    return mtt_fail(MTT_ERR_ARG, "%s: %s: the merged token '%s%s' is not in the vocabulary", what, where, shown(a, na),
                    shown(b, nb));
  return mtt_tokenizer_push_merge(t, ia, ib, (int32_t)r);
}

/* Fills t with the tokens of slots[0..n), in id order. */
static int push_slots(mtt_tokenizer *t, slot *slots, int32_t n, const char *what) {
  char *buf = NULL;
  size_t cap = 0;
  int rc = 0;
  for (int32_t id = 0; id < n && !rc; id++) {
    slot *s = &slots[id];
    if (!s->text) {
      rc = mtt_fail(MTT_ERR_ARG, "%s: no token has id %d (ids must run from 0 to %d without gaps)", what, id, n - 1);
      break;
    }
    if (s->added) {
      if (mtt_tokenizer_push(t, s->text, s->len, true, what) < 0) rc = mtt_last_error_code();
      continue;
    }
    if (s->len > cap) {
      free(buf);
      cap = s->len;
      if (!(buf = malloc(cap))) rc = mtt_fail(MTT_ERR_MEMORY, "%s: out of memory", what);
    }
    size_t k = 0;
    if (!rc && !bytelevel_decode(s->text, s->len, buf, &k))
      rc = mtt_fail(MTT_ERR_ARG, "%s: vocab token '%s' (id %d) is not a byte-level string and not an added token", what,
                    shown(s->text, s->len), id);
    if (!rc && mtt_tokenizer_push(t, buf, k, false, what) < 0) rc = mtt_last_error_code();
  }
  free(buf);
  return rc;
}

/* ---- tokenizer.json ---- */

static const char *type_of(const mtt_tokjson *obj) {
  const mtt_tokjson *ty = mtt_tokjson_get(obj, "type");
  return ty && ty->type == MTT_TOKJSON_STRING ? ty->str : "";
}

static bool is_null(const mtt_tokjson *v) { return !v || v->type == MTT_TOKJSON_NULL; }
static bool is_true(const mtt_tokjson *v) { return v && v->type == MTT_TOKJSON_BOOL && v->boolean; }
static bool is_empty_or_null(const mtt_tokjson *v) { return is_null(v) || (v->type == MTT_TOKJSON_STRING && v->len == 0); }

/* Checks the parts around the model that mtt implements: ByteLevel pre-tokenization and
 * decoding, no normalizer (or NFC, which is assumed of the input), plain BPE options. */
static int check_pipeline(mtt_tokenizer *t, const mtt_tokjson *root, const mtt_tokjson *model, const char *what) {
  const mtt_tokjson *pre = mtt_tokjson_get(root, "pre_tokenizer");
  if (is_null(pre) || pre->type != MTT_TOKJSON_OBJECT || strcmp(type_of(pre), "ByteLevel") != 0)
    return mtt_fail(MTT_ERR_ARG, "%s: pre_tokenizer must be ByteLevel (got %s); only byte-level BPE is supported", what,
                    is_null(pre) ? "none" : *type_of(pre) ? type_of(pre) : mtt_tokjson_type_name(pre->type));
  const mtt_tokjson *use_regex = mtt_tokjson_get(pre, "use_regex");
  if (use_regex && use_regex->type == MTT_TOKJSON_BOOL && !use_regex->boolean)
    return mtt_fail(MTT_ERR_ARG, "%s: pre_tokenizer.use_regex false is not supported (GPT-2's pattern is always used)", what);
  t->add_prefix_space = is_true(mtt_tokjson_get(pre, "add_prefix_space"));
  const mtt_tokjson *norm = mtt_tokjson_get(root, "normalizer");
  if (!is_null(norm)) {
    if (strcmp(type_of(norm), "NFC") != 0)
      return mtt_fail(MTT_ERR_ARG, "%s: normalizer %s is not supported (only none, or NFC, which the input is assumed to be in)",
                      what, *type_of(norm) ? type_of(norm) : mtt_tokjson_type_name(norm->type));
    strcpy(t->normalizer, "NFC");
  }
  const mtt_tokjson *dec = mtt_tokjson_get(root, "decoder");
  if (!is_null(dec) && strcmp(type_of(dec), "ByteLevel") != 0)
    return mtt_fail(MTT_ERR_ARG, "%s: decoder must be ByteLevel (got %s)", what,
                    *type_of(dec) ? type_of(dec) : mtt_tokjson_type_name(dec->type));
  const mtt_tokjson *v;
  if (*type_of(model) && strcmp(type_of(model), "BPE") != 0)
    return mtt_fail(MTT_ERR_ARG, "%s: model.type is %s, only BPE is supported", what, type_of(model));
  if (!is_null(v = mtt_tokjson_get(model, "dropout")) && !(v->type == MTT_TOKJSON_NUMBER && v->number == 0))
    return mtt_fail(MTT_ERR_ARG, "%s: model.dropout (BPE dropout) is not supported", what);
  if (!is_empty_or_null(mtt_tokjson_get(model, "continuing_subword_prefix")) ||
      !is_empty_or_null(mtt_tokjson_get(model, "end_of_word_suffix")))
    return mtt_fail(MTT_ERR_ARG, "%s: model.continuing_subword_prefix and end_of_word_suffix are not supported", what);
  if (is_true(mtt_tokjson_get(model, "byte_fallback")))
    return mtt_fail(MTT_ERR_ARG, "%s: model.byte_fallback is not supported (byte-level BPE needs none)", what);
  t->ignore_merges = is_true(mtt_tokjson_get(model, "ignore_merges"));
  return 0;
}

static int load_tokenizer_json(mtt_tokenizer *t, const mtt_tokjson *root, const char *what) {
  if (root->type != MTT_TOKJSON_OBJECT) return mtt_fail(MTT_ERR_ARG, "%s: expected a JSON object at the top", what);
  const mtt_tokjson *model = mtt_tokjson_get(root, "model");
  if (!model || model->type != MTT_TOKJSON_OBJECT) return mtt_fail(MTT_ERR_ARG, "%s: missing \"model\" object", what);
  int rc = check_pipeline(t, root, model, what);
  if (rc) return rc;
  const mtt_tokjson *vocab = mtt_tokjson_get(model, "vocab");
  if (!vocab || vocab->type != MTT_TOKJSON_OBJECT)
    return mtt_fail(MTT_ERR_ARG, "%s: missing model.vocab (an object of token -> id)", what);
  const mtt_tokjson *merges = mtt_tokjson_get(model, "merges");
  if (!merges || merges->type != MTT_TOKJSON_ARRAY) return mtt_fail(MTT_ERR_ARG, "%s: missing model.merges (an array)", what);
  const mtt_tokjson *added = mtt_tokjson_get(root, "added_tokens");
  if (!is_null(added) && added->type != MTT_TOKJSON_ARRAY) return mtt_fail(MTT_ERR_ARG, "%s: added_tokens must be an array", what);
  size_t n_added = is_null(added) ? 0 : added->len;

  /* ids: the vocab and the added tokens together must cover 0..n-1 */
  int64_t n = 0;
  for (size_t i = 0; i < vocab->len; i++) {
    if (!is_int_id(vocab->items[i]))
      return mtt_fail(MTT_ERR_ARG, "%s: model.vocab: the id of '%s' (line %d) is not an integer >= 0", what,
                      shown(vocab->keys[i], vocab->key_lens[i]), vocab->items[i]->line);
    if ((int64_t)vocab->items[i]->number + 1 > n) n = (int64_t)vocab->items[i]->number + 1;
  }
  for (size_t i = 0; i < n_added; i++) {
    const mtt_tokjson *a = added->items[i], *id = mtt_tokjson_get(a, "id"), *content = mtt_tokjson_get(a, "content");
    if (a->type != MTT_TOKJSON_OBJECT || !is_int_id(id) || !content || content->type != MTT_TOKJSON_STRING || content->len == 0)
      return mtt_fail(MTT_ERR_ARG, "%s: added_tokens[%zu] (line %d) needs an integer \"id\" and a non-empty string \"content\"",
                      what, i, a->line);
    if (is_true(mtt_tokjson_get(a, "lstrip")) || is_true(mtt_tokjson_get(a, "rstrip")) || is_true(mtt_tokjson_get(a, "single_word")))
      return mtt_fail(MTT_ERR_ARG, "%s: added_tokens[%zu] ('%s'): lstrip, rstrip and single_word are not supported", what, i,
                      shown(content->str, content->len));
    if ((int64_t)id->number + 1 > n) n = (int64_t)id->number + 1;
  }
  if (n > (int64_t)(vocab->len + n_added))
    return mtt_fail(MTT_ERR_ARG, "%s: ids go up to %lld but there are only %zu tokens (ids must run from 0 without gaps)", what,
                    (long long)n - 1, vocab->len + n_added);
  slot *slots = calloc((size_t)n + 1, sizeof *slots);
  if (!slots) return mtt_fail(MTT_ERR_MEMORY, "%s: out of memory", what);
  for (size_t i = 0; i < vocab->len && !rc; i++) {
    int32_t id = (int32_t)vocab->items[i]->number;
    if (slots[id].text)
      rc = mtt_fail(MTT_ERR_ARG, "%s: model.vocab: id %d is given to both '%s' and '%s'", what, id,
                    shown(slots[id].text, slots[id].len), shown(vocab->keys[i], vocab->key_lens[i]));
    slots[id] = (slot){vocab->keys[i], vocab->key_lens[i], false, true};
  }
  for (size_t i = 0; i < n_added && !rc; i++) {
    const mtt_tokjson *a = added->items[i], *content = mtt_tokjson_get(a, "content");
    int32_t id = (int32_t)mtt_tokjson_get(a, "id")->number;
    slot *s = &slots[id];
    if (s->added) {
      rc = mtt_fail(MTT_ERR_ARG, "%s: added_tokens: id %d is given twice", what, id);
    } else if (s->in_vocab) {
      /* the vocab may list the added token too (GPT-2's does), as itself or byte-level */
      char *buf = malloc(s->len + 1);
      size_t k = 0;
      bool same = (s->len == content->len && memcmp(s->text, content->str, s->len) == 0) ||
                  (buf && bytelevel_decode(s->text, s->len, buf, &k) && k == content->len && memcmp(buf, content->str, k) == 0);
      free(buf);
      if (!same)
        rc = mtt_fail(MTT_ERR_ARG, "%s: id %d is '%s' in model.vocab but '%s' in added_tokens", what, id,
                      shown(s->text, s->len), shown(content->str, content->len));
    }
    *s = (slot){content->str, content->len, true, s->in_vocab};
  }
  if (!rc) rc = push_slots(t, slots, (int32_t)n, what);
  free(slots);
  if (rc) return rc;

  char where[64];
  for (size_t i = 0; i < merges->len; i++) {
    const mtt_tokjson *m = merges->items[i];
    snprintf(where, sizeof where, "model.merges[%zu] (line %d)", i, m->line);
    if (m->type == MTT_TOKJSON_STRING) { /* "a b" (the classic form) */
      const char *sp = memchr(m->str, ' ', m->len);
      if (!sp || sp == m->str || sp + 1 == m->str + m->len || memchr(sp + 1, ' ', (size_t)(m->str + m->len - sp - 1)))
        return mtt_fail(MTT_ERR_ARG, "%s: %s: '%s' is not two tokens separated by one space", what, where, shown(m->str, m->len));
      rc = add_merge(t, m->str, (size_t)(sp - m->str), sp + 1, (size_t)(m->str + m->len - sp - 1), what, where);
    } else if (m->type == MTT_TOKJSON_ARRAY && m->len == 2 && m->items[0]->type == MTT_TOKJSON_STRING &&
               m->items[1]->type == MTT_TOKJSON_STRING) { /* ["a", "b"] (tokenizers >= 0.20) */
      rc = add_merge(t, m->items[0]->str, m->items[0]->len, m->items[1]->str, m->items[1]->len, what, where);
    } else {
      return mtt_fail(MTT_ERR_ARG, "%s: %s: expected \"a b\" or [\"a\", \"b\"], got %s", what, where, mtt_tokjson_type_name(m->type));
    }
    if (rc) return rc;
  }
  const mtt_tokjson *unk = mtt_tokjson_get(model, "unk_token");
  if (!is_null(unk)) {
    if (unk->type != MTT_TOKJSON_STRING) return mtt_fail(MTT_ERR_ARG, "%s: model.unk_token must be a string or null", what);
    int64_t id;
    char *buf = malloc(unk->len + 1);
    size_t k = 0;
    bool found = buf && (mtt_tok_strmap_get(&t->added, unk->str, unk->len, &id) ||
                         (bytelevel_decode(unk->str, unk->len, buf, &k) && mtt_tok_strmap_get(&t->vocab, buf, k, &id)));
    free(buf);
    if (!found) return mtt_fail(MTT_ERR_ARG, "%s: model.unk_token '%s' is not in the vocabulary", what, shown(unk->str, unk->len));
    t->unk_id = (int32_t)id;
  }
  return 0;
}

mtt_tokenizer *mtt_tokenizer_load(const char *path) {
  if (!path) MTT_FAIL_NULL(MTT_ERR_ARG, "tokenizer load: no path");
  char what[1100];
  snprintf(what, sizeof what, "tokenizer file '%s'", path);
  size_t len;
  char *text = mtt_tokenizer_read_file(path, &len, "tokenizer load");
  if (!text) return NULL;
  mtt_tokjson_doc *doc = mtt_tokjson_parse(text, len, what);
  free(text);
  if (!doc) return NULL;
  mtt_tokenizer *t = mtt_tokenizer_new_empty();
  int rc = t ? load_tokenizer_json(t, mtt_tokjson_root(doc), what) : MTT_ERR_MEMORY;
  mtt_tokjson_free(doc);
  if (!rc) rc = mtt_tokenizer_finish(t, what);
  if (rc) {
    mtt_tokenizer_free(t);
    return NULL;
  }
  return t;
}

/* ---- GPT-2's encoder.json + vocab.bpe ---- */

/* "<|endoftext|>" and its kind are GPT-2's special tokens; they are not byte-level text. */
static bool looks_special(const char *s, size_t n) { return n >= 4 && memcmp(s, "<|", 2) == 0 && memcmp(s + n - 2, "|>", 2) == 0; }

mtt_tokenizer *mtt_tokenizer_load_gpt2(const char *encoder_json, const char *vocab_bpe) {
  if (!encoder_json || !vocab_bpe) MTT_FAIL_NULL(MTT_ERR_ARG, "tokenizer gpt2: need the paths of encoder.json and vocab.bpe");
  char what[1100], what_bpe[1100];
  snprintf(what, sizeof what, "GPT-2 encoder file '%s'", encoder_json);
  snprintf(what_bpe, sizeof what_bpe, "GPT-2 merges file '%s'", vocab_bpe);
  size_t len, bpe_len;
  char *text = mtt_tokenizer_read_file(encoder_json, &len, "tokenizer gpt2");
  if (!text) return NULL;
  mtt_tokjson_doc *doc = mtt_tokjson_parse(text, len, what);
  free(text);
  if (!doc) return NULL;
  char *bpe = mtt_tokenizer_read_file(vocab_bpe, &bpe_len, "tokenizer gpt2");
  mtt_tokenizer *t = bpe ? mtt_tokenizer_new_empty() : NULL;
  int rc = t ? 0 : mtt_last_error_code();
  const mtt_tokjson *root = mtt_tokjson_root(doc);
  slot *slots = NULL;
  if (!rc && root->type != MTT_TOKJSON_OBJECT) rc = mtt_fail(MTT_ERR_ARG, "%s: expected an object of token -> id", what);
  if (!rc && !(slots = calloc(root->len + 1, sizeof *slots))) rc = mtt_fail(MTT_ERR_MEMORY, "%s: out of memory", what);
  for (size_t i = 0; !rc && i < root->len; i++) {
    const mtt_tokjson *v = root->items[i];
    if (!is_int_id(v) || v->number >= (double)root->len) {
      rc = mtt_fail(MTT_ERR_ARG, "%s: the id of '%s' (line %d) is not an integer in [0, %zu)", what,
                    shown(root->keys[i], root->key_lens[i]), v->line, root->len);
      break;
    }
    int32_t id = (int32_t)v->number;
    if (slots[id].text) {
      rc = mtt_fail(MTT_ERR_ARG, "%s: id %d is given to both '%s' and '%s'", what, id, shown(slots[id].text, slots[id].len),
                    shown(root->keys[i], root->key_lens[i]));
      break;
    }
    /* "<|endoftext|>" is byte-level text too, but GPT-2 uses it as a special token */
    bool special = looks_special(root->keys[i], root->key_lens[i]);
    char *probe = malloc(root->key_lens[i] + 1);
    size_t k;
    if (!probe) {
      rc = mtt_fail(MTT_ERR_MEMORY, "%s: out of memory", what);
      break;
    }
    if (!bytelevel_decode(root->keys[i], root->key_lens[i], probe, &k)) special = true;
    free(probe);
    slots[id] = (slot){root->keys[i], root->key_lens[i], special, true};
  }
  if (!rc) rc = push_slots(t, slots, (int32_t)root->len, what);
  free(slots);
  /* vocab.bpe: "#version: 0.2" then one merge "a b" a line */
  char where[64];
  int line = 0;
  for (char *s = bpe, *end = bpe + (bpe ? bpe_len : 0); !rc && s < end;) {
    char *nl = memchr(s, '\n', (size_t)(end - s));
    char *e = nl ? nl : end;
    line++;
    size_t n = (size_t)(e - s);
    if (n && s[n - 1] == '\r') n--;
    if (n == 0 || (line == 1 && s[0] == '#')) {
      s = e + 1;
      continue;
    }
    snprintf(where, sizeof where, "line %d", line);
    char *sp = memchr(s, ' ', n);
    if (!sp || sp == s || sp + 1 == s + n || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
      rc = mtt_fail(MTT_ERR_ARG, "%s: %s: '%s' is not two tokens separated by one space", what_bpe, where, shown(s, n));
    else
      rc = add_merge(t, s, (size_t)(sp - s), sp + 1, (size_t)(s + n - sp - 1), what_bpe, where);
    s = e + 1;
  }
  if (!rc && t->n_merges == 0) rc = mtt_fail(MTT_ERR_ARG, "%s: no merges in the file", what_bpe);
  free(bpe);
  mtt_tokjson_free(doc);
  if (!rc) rc = mtt_tokenizer_finish(t, what);
  if (rc) {
    mtt_tokenizer_free(t);
    return NULL;
  }
  return t;
}

/* ---- save ---- */

static void write_token_bl(FILE *f, const mtt_tokenizer *t, int32_t id, char *buf) {
  const char *s = t->bytes + t->tok_off[id];
  size_t n = (size_t)t->tok_len[id];
  if (t->tok_special[id]) mtt_tokjson_write_string(f, s, n);
  else mtt_tokjson_write_string(f, buf, bytelevel_encode(s, n, buf));
}

int mtt_tokenizer_save(const mtt_tokenizer *t, const char *path) {
  if (!t || !path) return mtt_fail(MTT_ERR_ARG, "tokenizer save: no tokenizer or no path");
  size_t max_len = 1;
  for (int32_t i = 0; i < t->n_tokens; i++)
    if ((size_t)t->tok_len[i] > max_len) max_len = (size_t)t->tok_len[i];
  char *buf = malloc(4 * max_len + 8);
  char *tmp = malloc(strlen(path) + 16);
  if (!buf || !tmp) {
    free(buf), free(tmp);
    return mtt_fail(MTT_ERR_MEMORY, "tokenizer save: out of memory");
  }
  sprintf(tmp, "%s.tmp", path); /* written whole, then renamed: never a half-written file */
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    int rc = mtt_fail(MTT_ERR_ARG, "tokenizer save: cannot create '%s': %s", tmp, strerror(errno));
    free(buf), free(tmp);
    return rc;
  }
  fputs("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [", f);
  bool first = true;
  for (int32_t i = 0; i < t->n_tokens; i++) {
    if (!t->tok_special[i]) continue;
    fprintf(f, "%s\n    {\"id\": %d, \"content\": ", first ? "" : ",", i);
    mtt_tokjson_write_string(f, t->bytes + t->tok_off[i], (size_t)t->tok_len[i]);
    fputs(", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}", f);
    first = false;
  }
  fputs(first ? "],\n" : "\n  ],\n", f);
  fprintf(f, "  \"normalizer\": %s,\n", t->normalizer[0] ? "{\"type\": \"NFC\"}" : "null");
  fprintf(f, "  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": %s, \"trim_offsets\": true, \"use_regex\": true},\n",
          t->add_prefix_space ? "true" : "false");
  fputs("  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, \"use_regex\": true},\n", f);
  fputs("  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n", f);
  fputs("  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": ", f);
  if (t->unk_id >= 0) write_token_bl(f, t, t->unk_id, buf);
  else fputs("null", f);
  fprintf(f, ",\n    \"continuing_subword_prefix\": \"\",\n    \"end_of_word_suffix\": \"\",\n    \"fuse_unk\": false,\n"
             "    \"byte_fallback\": false,\n    \"ignore_merges\": %s,\n    \"vocab\": {",
          t->ignore_merges ? "true" : "false");
  for (int32_t i = 0; i < t->n_tokens; i++) {
    fputs(i ? ",\n      " : "\n      ", f);
    write_token_bl(f, t, i, buf);
    fprintf(f, ": %d", i);
  }
  fputs("\n    },\n    \"merges\": [", f);
  for (int32_t r = 0; r < t->n_merges; r++) {
    fputs(r ? ",\n      " : "\n      ", f);
    int32_t a = t->merge_a[r], b = t->merge_b[r];
    size_t n = bytelevel_encode(t->bytes + t->tok_off[a], (size_t)t->tok_len[a], buf);
    buf[n++] = ' ';
    n += bytelevel_encode(t->bytes + t->tok_off[b], (size_t)t->tok_len[b], buf + n);
    mtt_tokjson_write_string(f, buf, n);
  }
  fputs("\n    ]\n  }\n}\n", f);
  bool bad = ferror(f) != 0;
  bad |= fflush(f) != 0;
  int err = errno;
  bad |= fclose(f) != 0;
  int rc = 0;
  if (bad) {
    rc = mtt_fail(MTT_ERR_ARG, "tokenizer save: cannot write '%s': %s", tmp, strerror(err));
    remove(tmp);
  } else if (rename(tmp, path) != 0) {
    rc = mtt_fail(MTT_ERR_ARG, "tokenizer save: cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    remove(tmp);
  }
  free(buf), free(tmp);
  return rc;
}
