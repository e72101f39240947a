/* tokenizer_pretok.c: GPT-2's pre-tokenization, written out by hand instead of a regex engine:
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with \s the Unicode White_Space property (as in the Python `regex` module GPT-2 used), plus
 * UTF-8 decoding and GPT-2's bytes_to_unicode. Text is bytes: an ill-formed UTF-8 byte counts
 * as one punctuation-like character, so any input splits into pieces and round-trips. */
#include "tokenizer_internal.h"

int mtt_tok_unicode_class(uint32_t cp) {
  if (cp < 0x80) { /* ASCII: the same answer as the table, without the search */
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return MTT_TOK_CHAR_LETTER;
    if (cp >= '0' && cp <= '9') return MTT_TOK_CHAR_NUMBER;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return MTT_TOK_CHAR_SPACE;
    return MTT_TOK_CHAR_OTHER;
  }
  int lo = 0, hi = mtt_tok_unicode_n_ranges - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (cp < mtt_tok_unicode_ranges[mid].lo) hi = mid - 1;
    else if (cp > mtt_tok_unicode_ranges[mid].hi) lo = mid + 1;
    else return mtt_tok_unicode_ranges[mid].cls;
  }
  return MTT_TOK_CHAR_OTHER;
}

/* Well-formed sequences as in Unicode's table 3-7: no overlongs, no surrogates, <= U+10FFFF. */
size_t mtt_tok_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp) {
  uint8_t c = s[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n;
  uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  uint32_t v;
  if (c >= 0xC2 && c <= 0xDF) n = 2, v = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, v = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, v = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    *cp = MTT_TOK_INVALID_CP;
    return 1;
  }
  if (len < n || s[1] < lo || s[1] > hi) {
    *cp = MTT_TOK_INVALID_CP;
    return 1;
  }
  v = (v << 6) | (s[1] & 0x3F);
  for (size_t i = 2; i < n; i++) {
    if (s[i] < 0x80 || s[i] > 0xBF) {
      *cp = MTT_TOK_INVALID_CP;
      return 1;
    }
    v = (v << 6) | (s[i] & 0x3F);
  }
  *cp = v;
  return n;
}

size_t mtt_tok_utf8_encode(uint32_t cp, char out[4]) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12)), out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18)), out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

bool mtt_tok_utf8_valid(const uint8_t *s, size_t len) {
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    i += mtt_tok_utf8_decode(s + i, len - i, &cp);
    if (cp == MTT_TOK_INVALID_CP) return false;
  }
  return true;
}

static int char_at(const uint8_t *s, size_t len, size_t pos, size_t *n) {
  uint32_t cp;
  *n = mtt_tok_utf8_decode(s + pos, len - pos, &cp);
  return cp == MTT_TOK_INVALID_CP ? MTT_TOK_CHAR_OTHER : mtt_tok_unicode_class(cp);
}

size_t mtt_tok_pretok_next(const uint8_t *s, size_t len, size_t pos) {
  /* 's|'t|'re|'ve|'m|'ll|'d: tried first, and only at the start of a piece */
  if (s[pos] == '\'' && pos + 1 < len) {
    uint8_t c = s[pos + 1];
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return pos + 2;
    if (pos + 2 < len && ((c == 'r' && s[pos + 2] == 'e') || (c == 'v' && s[pos + 2] == 'e') ||
                          (c == 'l' && s[pos + 2] == 'l')))
      return pos + 3;
  }
  size_t start = pos, n;
  int cls = char_at(s, len, pos, &n);
  /* ' ?X+': one ASCII space joins the run of letters, numbers or other characters after it */
  if (s[pos] == ' ' && pos + 1 < len) {
    size_t n2;
    int cls2 = char_at(s, len, pos + 1, &n2);
    if (cls2 != MTT_TOK_CHAR_SPACE) pos += 1, cls = cls2, n = n2;
  }
  if (cls != MTT_TOK_CHAR_SPACE) {
    pos += n;
    while (pos < len && char_at(s, len, pos, &n) == cls) pos += n;
    return pos;
  }
  /* '\s+(?!\S)|\s+': a run of spaces up to the end of the text is one piece; before other text
   * the run leaves its last character, which then starts the next piece (' word') or, if it is
   * not an ASCII space, stands alone. */
  size_t last = pos;
  pos += n;
  while (pos < len && char_at(s, len, pos, &n) == MTT_TOK_CHAR_SPACE) last = pos, pos += n;
  if (pos == len) return pos;
  return last > start ? last : pos;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves; the other 68 bytes
 * (controls, space, DEL, NBSP, soft hyphen) get U+0100 + n in byte order. */
static bool byte_is_printable(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); }

/* The 68 others in order: 0x00-0x20 (n = 0..32), 0x7F-0xA0 (33..66), 0xAD (67). */
uint32_t mtt_tok_byte_to_cp(uint8_t b) {
  if (byte_is_printable(b)) return b;
  if (b <= 0x20) return 0x100 + b;
  if (b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
  return 0x100 + 67;
}

int mtt_tok_cp_to_byte(uint32_t cp) {
  if (cp < 0x100) return byte_is_printable((int)cp) ? (int)cp : -1;
  if (cp < 0x100 + 33) return (int)(cp - 0x100);
  if (cp < 0x100 + 67) return (int)(cp - 0x100 - 33 + 0x7F);
  return cp == 0x100 + 67 ? 0xAD : -1;
}
