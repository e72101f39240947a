/*
 * archive.c: members of archives and compressed files, streamed through libarchive; nothing is
 * unpacked to disk. One reader handles a tar/zip/7z/cpio archive (compressed or not), a single
 * compressed file (.gz .bz2 .xz .lzma .zst .lz4 .Z) and a plain file: libarchive's "raw" format
 * bids last and takes whatever no archive format claims, as one member.
 *
 * The formats and filters are listed one by one, not with support_*_all: "all" includes mtree
 * (which claims some plain text files), uuencode (a text starting with "begin 644") and filters
 * that run external programs.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

struct mtt_archive {
  struct archive *a;
  char *path;
  char *raw_name;     /* member name for a single (maybe compressed) file */
  const char *name;   /* current member */
  int64_t size;
  int in_member;      /* 1 between next() and the member's end */
  int done;
};

static const char *const compression_suffixes[] = {".gz", ".tgz", ".bz2", ".xz", ".lzma", ".zst", ".zstd", ".lz4", ".Z", NULL};

/* "dir/data.jsonl.zst" -> "data.jsonl"; ".tgz" -> ".tar" is not needed (a tgz is an archive). */
static char *raw_member_name(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t n = strlen(base);
  for (int i = 0; compression_suffixes[i]; i++) {
    size_t k = strlen(compression_suffixes[i]);
    if (n > k && strcmp(base + n - k, compression_suffixes[i]) == 0) {
      n -= k;
      break;
    }
  }
  return strndup(base, n);
}

mtt_archive *mtt_archive_open(const char *path) {
  if (!path) MTT_FAIL_NULL(MTT_ERR_ARG, "archive: no path given");
  struct stat st;
  if (stat(path, &st) != 0) MTT_FAIL_NULL(MTT_ERR_ARG, "archive: cannot open '%s': %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) MTT_FAIL_NULL(MTT_ERR_ARG, "archive: '%s' is a folder, not a file", path);
  mtt_archive *r = calloc(1, sizeof *r);
  struct archive *a = archive_read_new();
  if (!r || !a) {
    free(r);
    if (a) archive_read_free(a);
    MTT_FAIL_NULL(MTT_ERR_MEMORY, "archive: out of memory opening '%s'", path);
  }
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_bzip2(a);
  archive_read_support_filter_xz(a);
  archive_read_support_filter_lzma(a);
  archive_read_support_filter_zstd(a);
  archive_read_support_filter_lz4(a);
  archive_read_support_filter_compress(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  archive_read_support_format_zip(a);
  archive_read_support_format_7zip(a);
  archive_read_support_format_cpio(a);
  archive_read_support_format_empty(a);
  archive_read_support_format_raw(a);
  r->a = a;
  r->path = strdup(path);
  r->raw_name = raw_member_name(path);
  if (!r->path || !r->raw_name) {
    mtt_archive_close(r);
    MTT_FAIL_NULL(MTT_ERR_MEMORY, "archive: out of memory opening '%s'", path);
  }
  if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
    mtt_fail(MTT_ERR_ARG, "archive: cannot read '%s': %s", path, archive_error_string(a) ? archive_error_string(a) : "unknown error");
    mtt_archive_close(r);
    return NULL;
  }
  return r;
}

int mtt_archive_next(mtt_archive *r) {
  if (!r) return mtt_fail(MTT_ERR_ARG, "archive: not open");
  if (r->done) return 0;
  for (;;) {
    struct archive_entry *e;
    int rc = archive_read_next_header(r->a, &e);
    if (rc == ARCHIVE_EOF) {
      r->done = 1;
      r->in_member = 0;
      r->name = NULL;
      return 0;
    }
    if (rc < ARCHIVE_WARN) {
      r->done = 1;
      return mtt_fail(MTT_ERR_ARG, "archive: '%s': %s", r->path,
                      archive_error_string(r->a) ? archive_error_string(r->a) : "cannot read the next member");
    }
    if (archive_format(r->a) == ARCHIVE_FORMAT_RAW) {
      r->name = r->raw_name;
      r->size = -1;
    } else {
      if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e)) continue; /* folders, links */
      r->name = archive_entry_pathname_utf8(e);
      if (!r->name) r->name = archive_entry_pathname(e);
      if (!r->name) r->name = "?";
      r->size = archive_entry_size_is_set(e) ? (int64_t)archive_entry_size(e) : -1;
    }
    r->in_member = 1;
    return 1;
  }
}

const char *mtt_archive_name(const mtt_archive *r) { return r ? r->name : NULL; }
int64_t mtt_archive_size(const mtt_archive *r) { return r && r->in_member ? r->size : -1; }

const char *mtt_archive_format(const mtt_archive *r) {
  if (!r) return NULL;
  switch (archive_format(r->a) & ARCHIVE_FORMAT_BASE_MASK) {
    case ARCHIVE_FORMAT_TAR: return "tar";
    case ARCHIVE_FORMAT_ZIP: return "zip";
    case ARCHIVE_FORMAT_7ZIP: return "7z";
    case ARCHIVE_FORMAT_CPIO: return "cpio";
    case ARCHIVE_FORMAT_RAW: return "raw";
    case ARCHIVE_FORMAT_EMPTY: return "empty";
    default: return "?";
  }
}

int64_t mtt_archive_read(mtt_archive *r, void *buf, int64_t cap) {
  if (!r) return mtt_fail(MTT_ERR_ARG, "archive: not open");
  if (!r->in_member) return 0;
  if (cap <= 0) return mtt_fail(MTT_ERR_ARG, "archive: read of %lld bytes", (long long)cap);
  la_ssize_t n = archive_read_data(r->a, buf, (size_t)cap);
  if (n < 0) {
    r->done = 1;
    r->in_member = 0;
    return mtt_fail(MTT_ERR_ARG, "archive: '%s': member '%s': %s", r->path, r->name,
                    archive_error_string(r->a) ? archive_error_string(r->a) : "read error");
  }
  if (n == 0) r->in_member = 0;
  return (int64_t)n;
}

void mtt_archive_close(mtt_archive *r) {
  if (!r) return;
  if (r->a) archive_read_free(r->a);
  free(r->path);
  free(r->raw_name);
  free(r);
}
