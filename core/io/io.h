/*
 * io.h: what the files of core/io/ share (nothing outside core/io/ includes it).
 *
 * - json.c: a small strict JSON reader, just enough for safetensors headers: strings (escapes
 *   decoded to UTF-8), non-negative integers, and skipping any other value.
 * - fs.c: whole-buffer writes, fsync of a file's folder, error texts naming the path.
 */
#ifndef MTT_IO_H
#define MTT_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- json.c ---- */
typedef struct mtt_json {
  const char *p, *end;
  const char *start;   /* for positions in messages */
  char error[160];     /* what went wrong, set by the first failure */
} mtt_json;

void mtt_json_init(mtt_json *j, const char *text, size_t len);
void mtt_json_ws(mtt_json *j);
/* Consumes c (after whitespace); false without an error message if the next char differs. */
bool mtt_json_eat(mtt_json *j, char c);
bool mtt_json_expect(mtt_json *j, char c, const char *what);
/* A string, decoded into a malloc'ed NUL-terminated buffer (*len without the NUL). Strings with
 * an embedded NUL are refused, since names travel as C strings. */
char *mtt_json_string(mtt_json *j, size_t *len);
/* A JSON integer >= 0 that fits in uint64 (no sign, fraction or exponent). */
bool mtt_json_uint(mtt_json *j, uint64_t *out);
bool mtt_json_skip(mtt_json *j); /* any value */
bool mtt_json_fail(mtt_json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t mtt_json_pos(const mtt_json *j);
/* Well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool mtt_utf8_valid(const char *s, size_t n);

/* ---- fs.c ---- */
/* Writes all n bytes (retrying short writes and EINTR); 0 or -1 with errno set. */
int mtt_fs_write_all(int fd, const void *buf, size_t n);
/* fsync of the folder holding path, so that a rename in it survives a crash. */
int mtt_fs_sync_parent(const char *path);

#endif
