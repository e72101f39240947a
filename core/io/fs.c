/* fs.c: the few file-system calls Lua lacks (creating folders, listing one), and the durable
 * write helpers the safetensors writer uses. Errors name the path and the system's reason. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "io/io.h"

struct mtt_fs_dir {
  DIR *d;
};

int mtt_fs_write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int mtt_fs_sync_parent(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  if (!dir) {
    errno = ENOMEM;
    return -1;
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  /* Some file systems cannot fsync a folder (EINVAL); the rename is then as durable as it gets. */
  if (rc != 0 && errno == EINVAL) rc = 0;
  int saved = errno;
  close(fd);
  errno = saved;
  return rc;
}

static int make_one(const char *path) {
  struct stat st;
  if (mkdir(path, 0777) == 0) return 0;
  int err = errno;
  if (err == EEXIST && stat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode)) return 0;
    return mtt_fail(MTT_ERR_ARG, "makedirs: '%s' exists and is not a folder", path);
  }
  return mtt_fail(MTT_ERR_ARG, "makedirs: cannot create '%s': %s", path, strerror(err));
}

int mtt_fs_makedirs(const char *path) {
  if (!path || !*path) return mtt_fail(MTT_ERR_ARG, "makedirs: empty path");
  char *p = strdup(path);
  if (!p) return mtt_fail(MTT_ERR_MEMORY, "makedirs: out of memory");
  int rc = 0;
  /* Each prefix ending before a '/', then the whole path. */
  for (char *s = p + 1; *s && rc == 0; s++) {
    if (*s != '/' || s[-1] == '/') continue;
    *s = 0;
    rc = make_one(p);
    *s = '/';
  }
  if (rc == 0) rc = make_one(p);
  free(p);
  return rc;
}

mtt_fs_dir *mtt_fs_dir_open(const char *path) {
  DIR *d = opendir(path);
  if (!d) MTT_FAIL_NULL(MTT_ERR_ARG, "listdir: cannot open the folder '%s': %s", path, strerror(errno));
  mtt_fs_dir *dir = malloc(sizeof *dir);
  if (!dir) {
    closedir(d);
    MTT_FAIL_NULL(MTT_ERR_MEMORY, "listdir: out of memory");
  }
  dir->d = d;
  return dir;
}

const char *mtt_fs_dir_next(mtt_fs_dir *dir) {
  if (!dir) return NULL;
  for (;;) {
    struct dirent *e = readdir(dir->d);
    if (!e) return NULL;
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) return e->d_name;
  }
}

void mtt_fs_dir_close(mtt_fs_dir *dir) {
  if (!dir) return;
  closedir(dir->d);
  free(dir);
}

int mtt_fs_stat(const char *path, int64_t *size, int64_t *mtime_ns, int *is_dir) {
  struct stat st;
  if (stat(path, &st) != 0) return mtt_fail(MTT_ERR_ARG, "stat: cannot stat '%s': %s", path, strerror(errno));
  if (size) *size = (int64_t)st.st_size;
  if (mtime_ns) *mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  if (is_dir) *is_dir = S_ISDIR(st.st_mode) ? 1 : 0;
  return 0;
}
