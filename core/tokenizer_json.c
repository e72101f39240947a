/* tokenizer_json.c: a small JSON parser for the tokenizer's files (tokenizer.json,
 * encoder.json): the whole document as a tree in one arena, freed at once. Strict RFC 8259:
 * a malformed file gives an error with its line and column, never a crash (nesting depth is
 * bounded, so hostile input cannot exhaust the stack). Also the string writer used by save. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define MAX_DEPTH 256

typedef struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  max_align_t data[];
} arena_block;

struct mtt_tokjson_doc {
  arena_block *blocks;
  mtt_tokjson *root;
};

typedef struct parser {
  const char *s, *end, *what;
  const char *line_start;
  int line;
  mtt_tokjson_doc *doc;
  /* children of the arrays and objects being parsed, copied into the arena when they close */
  mtt_tokjson **stack;
  char **stack_keys;
  size_t *stack_key_lens;
  size_t stack_n, stack_cap;
  bool failed;
} parser;

static void *arena_alloc(mtt_tokjson_doc *doc, size_t n) {
  n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  arena_block *b = doc->blocks;
  if (!b || b->used + n > b->cap) {
    size_t cap = n > (1u << 20) ? n : (1u << 20);
    b = malloc(sizeof *b + cap);
    if (!b) return NULL;
    b->next = doc->blocks, b->used = 0, b->cap = cap;
    doc->blocks = b;
  }
  void *p = (char *)b->data + b->used;
  b->used += n;
  return p;
}

static void *fail(parser *p, const char *msg) {
  if (!p->failed) {
    int col = (int)(p->s - p->line_start) + 1;
    if (p->s >= p->end && strncmp(msg, "unexpected end", 14) != 0) /* a truncated file, most likely */
      mtt_fail(MTT_ERR_ARG, "%s: line %d, column %d: unexpected end of the file (%s)", p->what, p->line, col, msg);
    else
      mtt_fail(MTT_ERR_ARG, "%s: line %d, column %d: %s", p->what, p->line, col, msg);
  }
  p->failed = true;
  return NULL;
}

static void skip_ws(parser *p) {
  while (p->s < p->end) {
    char c = *p->s;
    if (c == '\n') p->line++, p->line_start = p->s + 1;
    else if (c != ' ' && c != '\t' && c != '\r') break;
    p->s++;
  }
}

static mtt_tokjson *new_value(parser *p, mtt_tokjson_type type) {
  mtt_tokjson *v = arena_alloc(p->doc, sizeof *v);
  if (!v) return fail(p, "out of memory");
  memset(v, 0, sizeof *v);
  v->type = type, v->line = p->line;
  return v;
}

static int hex4(const char *s) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/* Parses a string literal at p->s (the opening quote) into the arena. */
static char *parse_string(parser *p, size_t *len_out) {
  const char *s = ++p->s;
  size_t raw = 0; /* the decoded text is never longer than the literal */
  while (s + raw < p->end && s[raw] != '"') raw += (s[raw] == '\\' && s + raw + 1 < p->end) ? 2 : 1;
  if (s + raw >= p->end) return fail(p, "unterminated string");
  char *out = arena_alloc(p->doc, raw + 1);
  if (!out) return fail(p, "out of memory");
  size_t n = 0;
  while (*p->s != '"') {
    unsigned char c = (unsigned char)*p->s;
    if (c < 0x20) return fail(p, "control character in a string (escape it)");
    if (c != '\\') {
      out[n++] = (char)c, p->s++;
      continue;
    }
    char e = p->s[1];
    p->s += 2;
    switch (e) {
      case '"': out[n++] = '"'; break;
      case '\\': out[n++] = '\\'; break;
      case '/': out[n++] = '/'; break;
      case 'b': out[n++] = '\b'; break;
      case 'f': out[n++] = '\f'; break;
      case 'n': out[n++] = '\n'; break;
      case 'r': out[n++] = '\r'; break;
      case 't': out[n++] = '\t'; break;
      case 'u': {
        int u = p->end - p->s >= 4 ? hex4(p->s) : -1;
        if (u < 0) return fail(p, "bad \\u escape (4 hex digits expected)");
        p->s += 4;
        uint32_t cp = (uint32_t)u;
        if (u >= 0xD800 && u <= 0xDBFF) { /* a surrogate pair stands for one code point */
          int lo = (p->end - p->s >= 6 && p->s[0] == '\\' && p->s[1] == 'u') ? hex4(p->s + 2) : -1;
          if (lo < 0xDC00 || lo > 0xDFFF) return fail(p, "lone high surrogate in a \\u escape");
          p->s += 6;
          cp = 0x10000 + (((uint32_t)u - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
          return fail(p, "lone low surrogate in a \\u escape");
        }
        n += mtt_tok_utf8_encode(cp, out + n);
        break;
      }
      default: p->s--; return fail(p, "bad escape in a string");
    }
  }
  p->s++;
  out[n] = 0;
  *len_out = n;
  return out;
}

static bool stack_push(parser *p, mtt_tokjson *v, char *key, size_t key_len) {
  if (p->stack_n == p->stack_cap) {
    size_t cap = p->stack_cap ? p->stack_cap * 2 : 256;
    mtt_tokjson **st = realloc(p->stack, cap * sizeof *st);
    if (st) p->stack = st;
    char **sk = realloc(p->stack_keys, cap * sizeof *sk);
    if (sk) p->stack_keys = sk;
    size_t *sl = realloc(p->stack_key_lens, cap * sizeof *sl);
    if (sl) p->stack_key_lens = sl;
    if (!st || !sk || !sl) return fail(p, "out of memory"), false;
    p->stack_cap = cap;
  }
  p->stack[p->stack_n] = v, p->stack_keys[p->stack_n] = key, p->stack_key_lens[p->stack_n] = key_len;
  p->stack_n++;
  return true;
}

/* Moves the children pushed since `base` into v (an array or object). */
static bool close_container(parser *p, mtt_tokjson *v, size_t base) {
  size_t n = p->stack_n - base;
  v->len = n;
  if (n) {
    v->items = arena_alloc(p->doc, n * sizeof *v->items);
    if (!v->items) return fail(p, "out of memory"), false;
    memcpy(v->items, p->stack + base, n * sizeof *v->items);
    if (v->type == MTT_TOKJSON_OBJECT) {
      v->keys = arena_alloc(p->doc, n * sizeof *v->keys);
      v->key_lens = arena_alloc(p->doc, n * sizeof *v->key_lens);
      if (!v->keys || !v->key_lens) return fail(p, "out of memory"), false;
      memcpy(v->keys, p->stack_keys + base, n * sizeof *v->keys);
      memcpy(v->key_lens, p->stack_key_lens + base, n * sizeof *v->key_lens);
    }
  }
  p->stack_n = base;
  return true;
}

static mtt_tokjson *parse_value(parser *p, int depth);

static mtt_tokjson *parse_container(parser *p, int depth, bool object) {
  if (depth > MAX_DEPTH) return fail(p, "nested too deeply");
  mtt_tokjson *v = new_value(p, object ? MTT_TOKJSON_OBJECT : MTT_TOKJSON_ARRAY);
  if (!v) return NULL;
  char close = object ? '}' : ']';
  size_t base = p->stack_n;
  p->s++;
  skip_ws(p);
  if (p->s < p->end && *p->s == close) {
    p->s++;
    return close_container(p, v, base) ? v : NULL;
  }
  for (;;) {
    char *key = NULL;
    size_t key_len = 0;
    if (object) {
      skip_ws(p);
      if (p->s >= p->end || *p->s != '"') return fail(p, "expected a string key");
      if (!(key = parse_string(p, &key_len))) return NULL;
      skip_ws(p);
      if (p->s >= p->end || *p->s != ':') return fail(p, "expected ':' after a key");
      p->s++;
    }
    mtt_tokjson *item = parse_value(p, depth + 1);
    if (!item || !stack_push(p, item, key, key_len)) return NULL;
    skip_ws(p);
    if (p->s < p->end && *p->s == ',') {
      p->s++;
      continue;
    }
    if (p->s < p->end && *p->s == close) {
      p->s++;
      return close_container(p, v, base) ? v : NULL;
    }
    return fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static mtt_tokjson *parse_number(parser *p) {
  const char *s = p->s;
  if (s < p->end && *s == '-') s++;
  if (s >= p->end || *s < '0' || *s > '9') return fail(p, "unexpected character");
  if (*s == '0') s++;
  else while (s < p->end && *s >= '0' && *s <= '9') s++;
  if (s < p->end && *s == '.') {
    s++;
    if (s >= p->end || *s < '0' || *s > '9') return fail(p, "digit expected after '.'");
    while (s < p->end && *s >= '0' && *s <= '9') s++;
  }
  if (s < p->end && (*s == 'e' || *s == 'E')) {
    s++;
    if (s < p->end && (*s == '+' || *s == '-')) s++;
    if (s >= p->end || *s < '0' || *s > '9') return fail(p, "digit expected in an exponent");
    while (s < p->end && *s >= '0' && *s <= '9') s++;
  }
  char buf[64];
  size_t n = (size_t)(s - p->s);
  if (n >= sizeof buf) return fail(p, "number too long");
  memcpy(buf, p->s, n);
  buf[n] = 0;
  mtt_tokjson *v = new_value(p, MTT_TOKJSON_NUMBER);
  if (!v) return NULL;
  v->number = strtod(buf, NULL);
  p->s = s;
  return v;
}

static mtt_tokjson *parse_word(parser *p, const char *word, mtt_tokjson_type type, bool value) {
  size_t n = strlen(word);
  if ((size_t)(p->end - p->s) < n || memcmp(p->s, word, n) != 0) return fail(p, "unexpected character");
  mtt_tokjson *v = new_value(p, type);
  if (!v) return NULL;
  v->boolean = value;
  p->s += n;
  return v;
}

static mtt_tokjson *parse_value(parser *p, int depth) {
  skip_ws(p);
  if (p->s >= p->end) return fail(p, "unexpected end of the file");
  switch (*p->s) {
    case '{': return parse_container(p, depth, true);
    case '[': return parse_container(p, depth, false);
    case '"': {
      mtt_tokjson *v = new_value(p, MTT_TOKJSON_STRING);
      if (!v || !(v->str = parse_string(p, &v->len))) return NULL;
      return v;
    }
    case 't': return parse_word(p, "true", MTT_TOKJSON_BOOL, true);
    case 'f': return parse_word(p, "false", MTT_TOKJSON_BOOL, false);
    case 'n': return parse_word(p, "null", MTT_TOKJSON_NULL, false);
    default: return parse_number(p);
  }
}

mtt_tokjson_doc *mtt_tokjson_parse(const char *text, size_t len, const char *what) {
  mtt_tokjson_doc *doc = calloc(1, sizeof *doc);
  if (!doc) MTT_FAIL_NULL(MTT_ERR_MEMORY, "%s: out of memory", what);
  parser p = {.s = text, .end = text + len, .what = what, .line_start = text, .line = 1, .doc = doc};
  if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) p.s += 3, p.line_start = p.s; /* a UTF-8 BOM */
  doc->root = parse_value(&p, 0);
  if (doc->root) {
    skip_ws(&p);
    if (p.s < p.end) doc->root = fail(&p, "extra text after the JSON value");
  }
  free(p.stack), free(p.stack_keys), free(p.stack_key_lens);
  if (!doc->root) {
    mtt_tokjson_free(doc);
    return NULL;
  }
  return doc;
}

mtt_tokjson *mtt_tokjson_root(mtt_tokjson_doc *doc) { return doc ? doc->root : NULL; }

void mtt_tokjson_free(mtt_tokjson_doc *doc) {
  if (!doc) return;
  for (arena_block *b = doc->blocks, *next; b; b = next) next = b->next, free(b);
  free(doc);
}

mtt_tokjson *mtt_tokjson_get(const mtt_tokjson *obj, const char *key) {
  if (!obj || obj->type != MTT_TOKJSON_OBJECT) return NULL;
  size_t n = strlen(key);
  for (size_t i = obj->len; i-- > 0;) /* the last of repeated keys wins, as in most parsers */
    if (obj->key_lens[i] == n && memcmp(obj->keys[i], key, n) == 0) return obj->items[i];
  return NULL;
}

const char *mtt_tokjson_type_name(mtt_tokjson_type t) {
  static const char *const names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
  return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

void mtt_tokjson_write_string(FILE *f, const char *s, size_t len) {
  fputc('"', f);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') fputc('\\', f), fputc(c, f);
    else if (c == '\n') fputs("\\n", f);
    else if (c == '\t') fputs("\\t", f);
    else if (c == '\r') fputs("\\r", f);
    else if (c < 0x20 || c == 0x7F) fprintf(f, "\\u%04x", c);
    else fputc(c, f); /* UTF-8 passes through: callers write only valid UTF-8 */
  }
  fputc('"', f);
}

char *mtt_tokenizer_read_file(const char *path, size_t *len, const char *what) {
  FILE *f = fopen(path, "rb");
  if (!f) MTT_FAIL_NULL(MTT_ERR_ARG, "%s: cannot open '%s': %s", what, path, strerror(errno));
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 65536 + 1 > cap) {
      cap = cap ? cap * 2 : 1u << 20;
      char *b = realloc(buf, cap);
      if (!b) {
        free(buf), fclose(f);
        MTT_FAIL_NULL(MTT_ERR_MEMORY, "%s: out of memory reading '%s'", what, path);
      }
      buf = b;
    }
    size_t k = fread(buf + n, 1, cap - n - 1, f);
    n += k;
    if (k == 0) break;
  }
  int err = ferror(f);
  fclose(f);
  if (err) {
    free(buf);
    MTT_FAIL_NULL(MTT_ERR_ARG, "%s: cannot read '%s'", what, path);
  }
  buf[n] = 0;
  *len = n;
  return buf;
}
