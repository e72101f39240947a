/* bundle_fs.c: the file-system calls bundles and the sandbox need and Lua lacks: lstat (links
 * are not followed), hardlinks with a copy as fallback, removal of a folder tree that never
 * follows a symlink out of it, the working folder and realpath. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "io/io.h"

int mtt_bundle_fs_lstat(const char *path, int64_t *size, int64_t *inode, int64_t *nlink) {
  struct stat st;
  if (!path) return mtt_fail(MTT_ERR_ARG, "lstat: no path given");
  if (lstat(path, &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return 0;
    return mtt_fail(MTT_ERR_ARG, "lstat: '%s': %s", path, strerror(errno));
  }
  if (size) *size = (int64_t)st.st_size;
  if (inode) *inode = (int64_t)st.st_ino;
  if (nlink) *nlink = (int64_t)st.st_nlink;
  if (S_ISREG(st.st_mode)) return 1;
  if (S_ISDIR(st.st_mode)) return 2;
  if (S_ISLNK(st.st_mode)) return 3;
  return 4;
}

int mtt_bundle_fs_copy(const char *src, const char *dst) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) return mtt_fail(MTT_ERR_ARG, "copy: cannot read '%s': %s", src, strerror(errno));
  int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    int err = errno;
    close(in);
    return mtt_fail(MTT_ERR_ARG, "copy: cannot create '%s': %s", dst, strerror(err));
  }
  char *buf = malloc(1 << 20);
  int status = buf ? 0 : mtt_fail(MTT_ERR_MEMORY, "copy: out of memory");
  while (status == 0) {
    ssize_t n = read(in, buf, 1 << 20);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) status = mtt_fail(MTT_ERR_ARG, "copy: read error in '%s': %s", src, strerror(errno));
    if (n <= 0) break;
    if (mtt_fs_write_all(out, buf, (size_t)n) != 0)
      status = mtt_fail(MTT_ERR_ARG, "copy: cannot write '%s': %s", dst, strerror(errno));
  }
  free(buf);
  close(in);
  if (close(out) != 0 && status == 0) status = mtt_fail(MTT_ERR_ARG, "copy: cannot write '%s': %s", dst, strerror(errno));
  return status;
}

/* 0: linked, 1: copied (another file system, or links not allowed), < 0: error */
int mtt_bundle_fs_link(const char *src, const char *dst) {
  if (link(src, dst) == 0) return 0;
  if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP) {
    int rc = mtt_bundle_fs_copy(src, dst);
    return rc == 0 ? 1 : rc;
  }
  return mtt_fail(MTT_ERR_ARG, "link: cannot link '%s' to '%s': %s", dst, src, strerror(errno));
}

int mtt_bundle_fs_rmtree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : mtt_fail(MTT_ERR_ARG, "rmtree: '%s': %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path) != 0) return mtt_fail(MTT_ERR_ARG, "rmtree: cannot remove '%s': %s", path, strerror(errno));
    return 0;
  }
  DIR *d = opendir(path);
  if (!d) return mtt_fail(MTT_ERR_ARG, "rmtree: cannot open '%s': %s", path, strerror(errno));
  int status = 0;
  struct dirent *e;
  while (status == 0 && (e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    size_t n = strlen(path) + strlen(e->d_name) + 2;
    char *child = malloc(n);
    if (!child) {
      status = mtt_fail(MTT_ERR_MEMORY, "rmtree: out of memory");
      break;
    }
    snprintf(child, n, "%s/%s", path, e->d_name);
    status = mtt_bundle_fs_rmtree(child); /* lstat inside: a symlink is removed, never followed */
    free(child);
  }
  closedir(d);
  if (status == 0 && rmdir(path) != 0) status = mtt_fail(MTT_ERR_ARG, "rmtree: cannot remove '%s': %s", path, strerror(errno));
  return status;
}

int mtt_bundle_fs_chdir(const char *path) {
  if (!path || chdir(path) != 0) return mtt_fail(MTT_ERR_ARG, "chdir: '%s': %s", path ? path : "", strerror(errno));
  return 0;
}

static _Thread_local char path_buf[PATH_MAX + 1];

const char *mtt_bundle_fs_getcwd(void) {
  if (!getcwd(path_buf, sizeof path_buf)) MTT_FAIL_NULL(MTT_ERR_ARG, "getcwd: %s", strerror(errno));
  return path_buf;
}

/* The canonical absolute path (symlinks resolved); NULL when path does not exist. */
const char *mtt_bundle_fs_realpath(const char *path) {
  if (!path || !realpath(path, path_buf)) MTT_FAIL_NULL(MTT_ERR_ARG, "realpath: '%s': %s", path ? path : "", strerror(errno));
  return path_buf;
}
