/*
 * bundle.c: writing and safely unpacking mtt bundles (tar + zstd) through libarchive.
 *
 * The writer makes byte-reproducible archives: pax tar, every member with mtime 0, owner 0,
 * mode 0644, in the order the caller adds them (the Lua side sorts). The extractor reads any
 * tar (zstd, gzip, xz, bzip2 or none) in two passes: the first checks every member header and
 * refuses the whole archive, naming the member, on an absolute path, a ".." component, a
 * symlink, a hardlink, a device, fifo or socket, a member over max_file bytes or a total over
 * max_total; the second writes regular files and folders only, through archive_write_disk with
 * libarchive's secure flags (no symlink traversal, no "..", no absolute paths, no overwrite)
 * and counts the bytes again as they are written (a header cannot lie about a size).
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct mtt_bundle_writer {
  struct archive *a;
  char *path;
};

static const char *aerr(struct archive *a) {
  const char *s = archive_error_string(a);
  return s ? s : "unknown error";
}

mtt_bundle_writer *mtt_bundle_writer_open(const char *path, const char *compression) {
  if (!path || !*path) MTT_FAIL_NULL(MTT_ERR_ARG, "bundle: no output path given");
  const char *comp = compression ? compression : "zstd";
  mtt_bundle_writer *w = calloc(1, sizeof *w);
  struct archive *a = archive_write_new();
  if (!w || !a) {
    free(w);
    if (a) archive_write_free(a);
    MTT_FAIL_NULL(MTT_ERR_MEMORY, "bundle: out of memory");
  }
  int rc = archive_write_set_format_pax_restricted(a);
  if (rc == ARCHIVE_OK) {
    if (!strcmp(comp, "zstd")) rc = archive_write_add_filter_zstd(a);
    else if (!strcmp(comp, "gzip")) rc = archive_write_add_filter_gzip(a);
    else if (!strcmp(comp, "none")) rc = archive_write_add_filter_none(a);
    else {
      archive_write_free(a);
      free(w);
      MTT_FAIL_NULL(MTT_ERR_ARG, "bundle: unknown compression '%s' (accepted: zstd, gzip, none)", comp);
    }
  }
  /* gzip stores a timestamp unless told not to: bundles of the same files are the same bytes */
  if (rc == ARCHIVE_OK && !strcmp(comp, "gzip")) archive_write_set_filter_option(a, "gzip", "timestamp", NULL);
  if (rc == ARCHIVE_OK) rc = archive_write_open_filename(a, path);
  if (rc != ARCHIVE_OK) {
    mtt_fail(MTT_ERR_ARG, "bundle: cannot write '%s': %s", path, aerr(a));
    archive_write_free(a);
    free(w);
    return NULL;
  }
  w->a = a;
  w->path = strdup(path);
  return w;
}

static struct archive_entry *plain_entry(const char *name, int64_t size) {
  struct archive_entry *e = archive_entry_new();
  if (!e) return NULL;
  archive_entry_set_pathname(e, name);
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, size);
  archive_entry_set_mtime(e, 0, 0);
  archive_entry_set_uid(e, 0);
  archive_entry_set_gid(e, 0);
  return e;
}

static int check_name(const char *name) {
  if (!name || !*name || name[0] == '/' || strstr(name, "..") == name || strstr(name, "/../") ||
      (strlen(name) >= 3 && !strcmp(name + strlen(name) - 3, "/..")))
    return mtt_fail(MTT_ERR_ARG, "bundle: member name '%s' must be a relative path without '..'", name ? name : "");
  return 0;
}

int mtt_bundle_writer_add_bytes(mtt_bundle_writer *w, const char *name, const void *data, int64_t n) {
  if (!w || !w->a) return mtt_fail(MTT_ERR_STATE, "bundle: the writer is closed");
  if (check_name(name) || n < 0) return n < 0 ? mtt_fail(MTT_ERR_ARG, "bundle: negative size") : MTT_ERR_ARG;
  struct archive_entry *e = plain_entry(name, n);
  if (!e) return mtt_fail(MTT_ERR_MEMORY, "bundle: out of memory");
  int rc = archive_write_header(w->a, e);
  archive_entry_free(e);
  if (rc != ARCHIVE_OK) return mtt_fail(MTT_ERR_ARG, "bundle: '%s': member '%s': %s", w->path, name, aerr(w->a));
  const char *p = data;
  while (n > 0) {
    la_ssize_t k = archive_write_data(w->a, p, (size_t)(n > (1 << 20) ? (1 << 20) : n));
    if (k <= 0) return mtt_fail(MTT_ERR_ARG, "bundle: '%s': member '%s': %s", w->path, name, aerr(w->a));
    p += k;
    n -= k;
  }
  return 0;
}

int mtt_bundle_writer_add_file(mtt_bundle_writer *w, const char *name, const char *src) {
  if (!w || !w->a) return mtt_fail(MTT_ERR_STATE, "bundle: the writer is closed");
  if (check_name(name)) return MTT_ERR_ARG;
  FILE *f = fopen(src, "rb");
  if (!f) return mtt_fail(MTT_ERR_ARG, "bundle: cannot read '%s': %s", src, strerror(errno));
  if (fseeko(f, 0, SEEK_END) != 0) {
    fclose(f);
    return mtt_fail(MTT_ERR_ARG, "bundle: cannot read '%s': %s", src, strerror(errno));
  }
  int64_t size = (int64_t)ftello(f);
  rewind(f);
  struct archive_entry *e = plain_entry(name, size);
  if (!e) {
    fclose(f);
    return mtt_fail(MTT_ERR_MEMORY, "bundle: out of memory");
  }
  int rc = archive_write_header(w->a, e);
  archive_entry_free(e);
  if (rc != ARCHIVE_OK) {
    fclose(f);
    return mtt_fail(MTT_ERR_ARG, "bundle: '%s': member '%s': %s", w->path, name, aerr(w->a));
  }
  char *buf = malloc(1 << 20);
  int64_t left = size;
  int status = buf ? 0 : mtt_fail(MTT_ERR_MEMORY, "bundle: out of memory");
  while (status == 0 && left > 0) {
    size_t got = fread(buf, 1, left > (1 << 20) ? (1 << 20) : (size_t)left, f);
    if (got == 0) {
      status = mtt_fail(MTT_ERR_ARG, "bundle: '%s' changed while it was packed", src);
      break;
    }
    if (archive_write_data(w->a, buf, got) != (la_ssize_t)got)
      status = mtt_fail(MTT_ERR_ARG, "bundle: '%s': member '%s': %s", w->path, name, aerr(w->a));
    left -= (int64_t)got;
  }
  free(buf);
  fclose(f);
  return status;
}

int mtt_bundle_writer_close(mtt_bundle_writer *w) {
  if (!w) return 0;
  int status = 0;
  if (w->a) {
    if (archive_write_close(w->a) != ARCHIVE_OK)
      status = mtt_fail(MTT_ERR_ARG, "bundle: cannot finish '%s': %s", w->path, aerr(w->a));
    archive_write_free(w->a);
    w->a = NULL;
  }
  return status;
}

void mtt_bundle_writer_free(mtt_bundle_writer *w) {
  if (!w) return;
  if (w->a) archive_write_free(w->a);
  free(w->path);
  free(w);
}

/* ---- extraction ---- */

static struct archive *open_reader(const char *path) {
  struct archive *a = archive_read_new();
  if (!a) MTT_FAIL_NULL(MTT_ERR_MEMORY, "bundle: out of memory");
  archive_read_support_filter_zstd(a);
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_xz(a);
  archive_read_support_filter_bzip2(a);
  archive_read_support_filter_none(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
    mtt_fail(MTT_ERR_ARG, "bundle: cannot read '%s': %s", path, aerr(a));
    archive_read_free(a);
    return NULL;
  }
  return a;
}

/* Why a member may not be unpacked, or NULL when it may. */
static const char *refusal(struct archive_entry *e, int64_t max_file, char *why, size_t cap) {
  const char *name = archive_entry_pathname(e);
  if (!name || !*name) return "has no name";
  if (name[0] == '/') return "is an absolute path";
  /* a ".." component anywhere: "..", "../x", "x/../y", "x/.." */
  for (const char *p = name; (p = strstr(p, "..")) != NULL; p += 2) {
    if ((p == name || p[-1] == '/') && (p[2] == 0 || p[2] == '/')) return "has a '..' component (it would leave the folder)";
  }
  if (archive_entry_hardlink(e)) {
    snprintf(why, cap, "is a hardlink (to '%s'); bundles hold plain files only", archive_entry_hardlink(e));
    return why;
  }
  switch (archive_entry_filetype(e)) {
    case AE_IFREG: break;
    case AE_IFDIR: return NULL;
    case AE_IFLNK:
      snprintf(why, cap, "is a symlink (to '%s'); bundles hold plain files only",
               archive_entry_symlink(e) ? archive_entry_symlink(e) : "?");
      return why;
    case AE_IFCHR: case AE_IFBLK: return "is a device file";
    case AE_IFIFO: return "is a fifo";
    case AE_IFSOCK: return "is a socket";
    default: return "is not a plain file or folder";
  }
  if (archive_entry_size_is_set(e) && archive_entry_size(e) > max_file) {
    snprintf(why, cap, "is %lld bytes, over the limit of %lld bytes a file", (long long)archive_entry_size(e),
             (long long)max_file);
    return why;
  }
  return NULL;
}

static int check_pass(const char *path, int64_t max_file, int64_t max_total, int64_t max_entries) {
  struct archive *a = open_reader(path);
  if (!a) return MTT_ERR_ARG;
  struct archive_entry *e;
  int64_t total = 0, count = 0;
  int status = 0, rc;
  char why[512];
  while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
    const char *bad = refusal(e, max_file, why, sizeof why);
    if (bad) {
      status = mtt_fail(MTT_ERR_ARG, "bundle: '%s': member '%s' %s", path,
                        archive_entry_pathname(e) ? archive_entry_pathname(e) : "", bad);
      break;
    }
    total += archive_entry_size(e);
    if (total > max_total) {
      status = mtt_fail(MTT_ERR_ARG, "bundle: '%s': the members add up to more than the limit of %lld bytes (at '%s')",
                        path, (long long)max_total, archive_entry_pathname(e));
      break;
    }
    if (++count > max_entries) {
      status = mtt_fail(MTT_ERR_ARG, "bundle: '%s' has more than %lld members", path, (long long)max_entries);
      break;
    }
    archive_read_data_skip(a);
  }
  if (status == 0 && rc != ARCHIVE_EOF) status = mtt_fail(MTT_ERR_ARG, "bundle: '%s': %s", path, aerr(a));
  archive_read_free(a);
  return status;
}

int mtt_bundle_extract(const char *path, const char *dest, int64_t max_file, int64_t max_total, int64_t max_entries) {
  if (!path || !dest) return mtt_fail(MTT_ERR_ARG, "bundle: extract needs an archive and a folder");
  int status = check_pass(path, max_file, max_total, max_entries);
  if (status) return status;
  struct archive *a = open_reader(path);
  if (!a) return MTT_ERR_ARG;
  struct archive *disk = archive_write_disk_new();
  if (!disk) {
    archive_read_free(a);
    return mtt_fail(MTT_ERR_MEMORY, "bundle: out of memory");
  }
  /* SECURE_NOABSOLUTEPATHS is left out on purpose: the paths written are dest + the member's
   * name, absolute when dest is; the members' own names were refused above if absolute. */
  archive_write_disk_set_options(disk, ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                           ARCHIVE_EXTRACT_NO_OVERWRITE);
  size_t dlen = strlen(dest);
  char *full = NULL, *name = NULL;
  char *buf = malloc(1 << 16);
  struct archive_entry *e;
  int64_t total = 0;
  int rc;
  char why[512];
  if (!buf) status = mtt_fail(MTT_ERR_MEMORY, "bundle: out of memory");
  while (status == 0 && ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN)) {
    /* the same checks again: the archive is read a second time and could differ (a file
     * rewritten in between) */
    const char *bad = refusal(e, max_file, why, sizeof why);
    free(name);
    name = strdup(archive_entry_pathname(e) ? archive_entry_pathname(e) : ""); /* set_pathname frees the original */
    if (!name) {
      status = mtt_fail(MTT_ERR_MEMORY, "bundle: out of memory");
      break;
    }
    if (bad) {
      status = mtt_fail(MTT_ERR_ARG, "bundle: '%s': member '%s' %s", path, name, bad);
      break;
    }
    free(full);
    full = malloc(dlen + strlen(name) + 2);
    if (!full) {
      status = mtt_fail(MTT_ERR_MEMORY, "bundle: out of memory");
      break;
    }
    sprintf(full, "%s/%s", dest, name);
    archive_entry_set_pathname(e, full);
    archive_entry_set_perm(e, archive_entry_filetype(e) == AE_IFDIR ? 0755 : 0644); /* no setuid, no exec */
    if (archive_write_header(disk, e) != ARCHIVE_OK) {
      status = mtt_fail(MTT_ERR_ARG, "bundle: '%s': cannot unpack member '%s': %s", path, name, aerr(disk));
      break;
    }
    int64_t written = 0;
    for (;;) {
      la_ssize_t n = archive_read_data(a, buf, 1 << 16);
      if (n == 0) break;
      if (n < 0) {
        status = mtt_fail(MTT_ERR_ARG, "bundle: '%s': member '%s': %s", path, name, aerr(a));
        break;
      }
      written += n;
      total += n;
      if (written > max_file || total > max_total) {
        status = mtt_fail(MTT_ERR_ARG, "bundle: '%s': member '%s' is over the size limit", path, name);
        break;
      }
      if (archive_write_data(disk, buf, (size_t)n) != n) {
        status = mtt_fail(MTT_ERR_ARG, "bundle: '%s': cannot write member '%s': %s", path, name, aerr(disk));
        break;
      }
    }
    if (status == 0 && archive_write_finish_entry(disk) != ARCHIVE_OK)
      status = mtt_fail(MTT_ERR_ARG, "bundle: '%s': cannot finish member '%s': %s", path, name, aerr(disk));
  }
  if (status == 0 && rc != ARCHIVE_EOF) status = mtt_fail(MTT_ERR_ARG, "bundle: '%s': %s", path, aerr(a));
  free(full);
  free(name);
  free(buf);
  archive_write_free(disk);
  archive_read_free(a);
  return status;
}
