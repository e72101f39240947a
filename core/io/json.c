/* json.c: a strict JSON reader for safetensors headers. It reads the pieces a header is made of
 * (objects walked by the caller, strings, integers) and skips anything else; every failure
 * leaves a message with the byte position, so a corrupt header is refused with a reason. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

#define JSON_MAX_DEPTH 64 /* nesting allowed in skipped values: headers are two levels deep */

void mtt_json_init(mtt_json *j, const char *text, size_t len) {
  j->p = j->start = text;
  j->end = text + len;
  j->error[0] = 0;
}

size_t mtt_json_pos(const mtt_json *j) { return (size_t)(j->p - j->start); }

bool mtt_json_fail(mtt_json *j, const char *fmt, ...) {
  if (j->error[0]) return false; /* keep the first, most precise message */
  char what[120];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(j->error, sizeof j->error, "%s at byte %zu of the header", what, mtt_json_pos(j));
  return false;
}

void mtt_json_ws(mtt_json *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

bool mtt_json_eat(mtt_json *j, char c) {
  mtt_json_ws(j);
  if (j->p < j->end && *j->p == c) {
    j->p++;
    return true;
  }
  return false;
}

bool mtt_json_expect(mtt_json *j, char c, const char *what) {
  if (mtt_json_eat(j, c)) return true;
  if (j->p >= j->end) return mtt_json_fail(j, "invalid JSON: the header ends where %s was expected", what);
  return mtt_json_fail(j, "invalid JSON: expected %s, found '%c'", what, *j->p);
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

static size_t utf8_put(char *out, unsigned cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Decodes one escape after the backslash; returns bytes written or 0 on error. */
static size_t unescape(mtt_json *j, char *out) {
  if (j->p >= j->end) return mtt_json_fail(j, "invalid JSON: unterminated escape"), 0;
  char c = *j->p++;
  switch (c) {
    case '"': case '\\': case '/': out[0] = c; return 1;
    case 'b': out[0] = '\b'; return 1;
    case 'f': out[0] = '\f'; return 1;
    case 'n': out[0] = '\n'; return 1;
    case 'r': out[0] = '\r'; return 1;
    case 't': out[0] = '\t'; return 1;
    case 'u': break;
    default: j->p--; return mtt_json_fail(j, "invalid JSON: unknown escape \\%c", c), 0;
  }
  int hi = j->end - j->p >= 4 ? hex4(j->p) : -1;
  if (hi < 0) return mtt_json_fail(j, "invalid JSON: bad \\u escape"), 0;
  j->p += 4;
  unsigned cp = (unsigned)hi;
  if (hi >= 0xD800 && hi <= 0xDBFF) { /* a surrogate pair encodes one code point above U+FFFF */
    int lo = (j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') ? hex4(j->p + 2) : -1;
    if (lo < 0xDC00 || lo > 0xDFFF) return mtt_json_fail(j, "invalid JSON: unpaired surrogate \\u%04X", hi), 0;
    j->p += 6;
    cp = 0x10000 + (((unsigned)hi - 0xD800) << 10) + ((unsigned)lo - 0xDC00);
  } else if (hi >= 0xDC00 && hi <= 0xDFFF) {
    return mtt_json_fail(j, "invalid JSON: unpaired surrogate \\u%04X", hi), 0;
  }
  if (cp == 0) return mtt_json_fail(j, "a string holds a NUL character (\\u0000)"), 0;
  return utf8_put(out, cp);
}

char *mtt_json_string(mtt_json *j, size_t *len) {
  if (!mtt_json_expect(j, '"', "a string")) return NULL;
  const char *s = j->p;
  while (j->p < j->end && *j->p != '"') j->p += (*j->p == '\\' && j->p + 1 < j->end) ? 2 : 1;
  if (j->p >= j->end) {
    mtt_json_fail(j, "invalid JSON: unterminated string");
    return NULL;
  }
  size_t raw = (size_t)(j->p - s);
  if (!mtt_utf8_valid(s, raw)) {
    j->p = s;
    mtt_json_fail(j, "a string is not valid UTF-8");
    return NULL;
  }
  char *out = malloc(raw + 1); /* decoding never grows: \uXXXX (6 bytes) gives at most 3 */
  if (!out) {
    mtt_json_fail(j, "out of memory");
    return NULL;
  }
  size_t n = 0;
  j->p = s;
  while (*j->p != '"') {
    unsigned char c = (unsigned char)*j->p;
    if (c < 0x20) {
      mtt_json_fail(j, "invalid JSON: control character 0x%02x inside a string", c);
      free(out);
      return NULL;
    }
    j->p++;
    if (c != '\\') {
      out[n++] = (char)c;
      continue;
    }
    size_t k = unescape(j, out + n);
    if (!k) {
      free(out);
      return NULL;
    }
    n += k;
  }
  j->p++; /* closing quote */
  out[n] = 0;
  if (len) *len = n;
  return out;
}

bool mtt_json_uint(mtt_json *j, uint64_t *out) {
  mtt_json_ws(j);
  const char *s = j->p;
  if (s >= j->end || *s < '0' || *s > '9') {
    if (s < j->end && *s == '-') return mtt_json_fail(j, "a negative number where a size or offset belongs");
    return mtt_json_fail(j, "expected a non-negative integer");
  }
  uint64_t v = 0;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
    unsigned d = (unsigned)(*j->p - '0');
    if (v > (UINT64_MAX - d) / 10) return mtt_json_fail(j, "an integer does not fit in 64 bits");
    v = v * 10 + d;
    j->p++;
  }
  if (j->p - s > 1 && *s == '0') {
    j->p = s;
    return mtt_json_fail(j, "invalid JSON: a number with a leading zero");
  }
  if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
    return mtt_json_fail(j, "expected an integer, found a fraction or exponent");
  *out = v;
  return true;
}

static bool skip_number(mtt_json *j) {
  const char *s = j->p;
  if (j->p < j->end && *j->p == '-') j->p++;
  const char *digits = j->p;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
  if (j->p == digits || (j->p - digits > 1 && *digits == '0')) {
    j->p = s;
    return mtt_json_fail(j, "invalid JSON: bad number");
  }
  if (j->p < j->end && *j->p == '.') {
    const char *f = ++j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    if (j->p == f) return mtt_json_fail(j, "invalid JSON: bad number");
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
    const char *e = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    if (j->p == e) return mtt_json_fail(j, "invalid JSON: bad number");
  }
  return true;
}

static bool skip_word(mtt_json *j, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0) return mtt_json_fail(j, "invalid JSON: unexpected token");
  j->p += n;
  return true;
}

static bool skip_value(mtt_json *j, int depth) {
  if (depth > JSON_MAX_DEPTH) return mtt_json_fail(j, "JSON nested too deeply");
  mtt_json_ws(j);
  if (j->p >= j->end) return mtt_json_fail(j, "invalid JSON: the header ends where a value was expected");
  char c = *j->p;
  if (c == '"') {
    char *s = mtt_json_string(j, NULL);
    free(s);
    return s != NULL;
  }
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    j->p++;
    if (mtt_json_eat(j, close)) return true;
    do {
      if (c == '{') {
        char *k = mtt_json_string(j, NULL);
        if (!k) return false;
        free(k);
        if (!mtt_json_expect(j, ':', "':'")) return false;
      }
      if (!skip_value(j, depth + 1)) return false;
    } while (mtt_json_eat(j, ','));
    return mtt_json_expect(j, close, c == '{' ? "',' or '}'" : "',' or ']'");
  }
  if (c == 't') return skip_word(j, "true");
  if (c == 'f') return skip_word(j, "false");
  if (c == 'n') return skip_word(j, "null");
  return skip_number(j);
}

bool mtt_json_skip(mtt_json *j) { return skip_value(j, 0); }

bool mtt_utf8_valid(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) k = 1, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) k = 2, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) k = 3, cp = c & 0x07, min = 0x10000;
    else return false;
    if (n - i <= k) return false;
    for (size_t m = 1; m <= k; m++) {
      if ((s[i + m] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + m] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += k + 1;
  }
  return true;
}
