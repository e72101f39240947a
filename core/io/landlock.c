/* landlock.c: the operating system's half of the bundle sandbox. After mtt.sandbox has closed
 * the Lua routes, mtt run X.mtt also confines the whole process with Linux Landlock (when the
 * kernel has it): files can be written only under the run folder, read only under the given
 * folders, nothing can be executed, and no TCP connection made or port bound (Landlock ABI 4
 * and later). This holds even against code that got around the Lua sandbox (e.g. by corrupting
 * memory through the FFI). It cannot be undone: the mtt command does it only for a run it ends
 * after. The structures are declared here (Debian's linux/landlock.h predates the network
 * rights); values from the kernel's uapi header. */
#define _GNU_SOURCE /* O_PATH */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

struct ll_ruleset_attr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net; /* ABI 4 */
  uint64_t scoped;             /* ABI 6 */
};
struct ll_path_beneath {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

enum {
  LL_RULE_PATH_BENEATH = 1,
  LL_CREATE_RULESET_VERSION = 1,
  /* fs rights */
  LL_EXECUTE = 1 << 0, LL_WRITE_FILE = 1 << 1, LL_READ_FILE = 1 << 2, LL_READ_DIR = 1 << 3,
  LL_REMOVE_DIR = 1 << 4, LL_REMOVE_FILE = 1 << 5, LL_MAKE_CHAR = 1 << 6, LL_MAKE_DIR = 1 << 7,
  LL_MAKE_REG = 1 << 8, LL_MAKE_SOCK = 1 << 9, LL_MAKE_FIFO = 1 << 10, LL_MAKE_BLOCK = 1 << 11,
  LL_MAKE_SYM = 1 << 12, LL_REFER = 1 << 13, LL_TRUNCATE = 1 << 14, LL_IOCTL_DEV = 1 << 15,
  /* net rights (ABI 4) and scopes (ABI 6) */
  LL_NET_BIND_TCP = 1, LL_NET_CONNECT_TCP = 2,
  LL_SCOPE_ABSTRACT_UNIX = 1, LL_SCOPE_SIGNAL = 2,
};

static uint64_t fs_rights(int abi) {
  uint64_t r = (1u << 13) - 1; /* ABI 1: bits 0..12 */
  if (abi >= 2) r |= LL_REFER;
  if (abi >= 3) r |= LL_TRUNCATE;
  if (abi >= 5) r |= LL_IOCTL_DEV;
  return r;
}

static int add_path(int ruleset, const char *path, uint64_t access, uint64_t handled) {
  int fd = open(path, O_PATH | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : mtt_fail(MTT_ERR_ARG, "landlock: cannot open '%s': %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) /* a file: only the rights that apply to files */
    access &= LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE | LL_IOCTL_DEV;
  struct ll_path_beneath pb = {.allowed_access = access & handled, .parent_fd = fd};
  long rc = syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0);
  int err = errno;
  close(fd);
  if (rc != 0) return mtt_fail(MTT_ERR_ARG, "landlock: cannot add a rule for '%s': %s", path, strerror(err));
  return 0;
}

int mtt_bundle_landlock_abi(void) {
  long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
  return abi < 0 ? 0 : (int)abi;
}

int mtt_bundle_confine(int n_read, const char *const *read_paths, int n_write, const char *const *write_paths) {
  int abi = mtt_bundle_landlock_abi();
  if (abi <= 0) return 0; /* no Landlock in this kernel (or disabled): the Lua sandbox alone */
  uint64_t handled = fs_rights(abi);
  struct ll_ruleset_attr attr = {.handled_access_fs = handled};
  size_t size = sizeof(uint64_t);
  if (abi >= 4) {
    attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
    size = 2 * sizeof(uint64_t);
  }
  if (abi >= 6) {
    attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
    size = sizeof attr;
  }
  int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
  if (ruleset < 0) return mtt_fail(MTT_ERR_ARG, "landlock: cannot create a ruleset: %s", strerror(errno));
  int status = 0;
  uint64_t read = LL_READ_FILE | LL_READ_DIR;
  for (int i = 0; i < n_read && status == 0; i++) status = add_path(ruleset, read_paths[i], read, handled);
  uint64_t write = handled & ~(uint64_t)(LL_EXECUTE | LL_MAKE_CHAR | LL_MAKE_BLOCK | LL_MAKE_SOCK | LL_MAKE_FIFO | LL_MAKE_SYM);
  for (int i = 0; i < n_write && status == 0; i++) status = add_path(ruleset, write_paths[i], write, handled);
  if (status == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    status = mtt_fail(MTT_ERR_ARG, "landlock: cannot set no_new_privs: %s", strerror(errno));
  if (status == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
    status = mtt_fail(MTT_ERR_ARG, "landlock: cannot restrict the process: %s", strerror(errno));
  close(ruleset);
  return status == 0 ? abi : status;
}
