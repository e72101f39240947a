/*
 * main.c: the mtt command, a LuaJIT interpreter with the mtt package on its path.
 *
 *   mtt run FILE.lua [args...]   run a script (also: mtt FILE.lua [args...], mtt - for stdin)
 *   mtt -e 'code' [args...]      run a string (mtt is preloaded as a global)
 *   mtt repl                     interactive (also: mtt with no arguments on a terminal)
 *   mtt report RUN_DIR...        render a run's report again (lua/mtt/report/init.lua, R.main)
 *   mtt --version | --help
 *
 * Scripts see `arg` (arg[0] the script, arg[1..] its arguments, as lua.c sets it) and the same
 * arguments as `...`. A script error prints "mtt: file:line: message" and a traceback on
 * stderr and exits 1. Before anything else, blas_setup.c may restart the process so that
 * OpenBLAS uses the right kernels; MTT_LIBRARY is exported so that libmtt is found by this
 * process and its children wherever they run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>

#include "mtt_tool.h"

#ifndef MTT_SOURCE_ROOT
#define MTT_SOURCE_ROOT "."
#endif
#ifndef MTT_LIBRARY_PATH
#define MTT_LIBRARY_PATH "libmtt.so"
#endif
#ifndef MTT_VERSION
#define MTT_VERSION "?"
#endif

static const char usage[] =
    "usage: mtt run FILE.lua [args...]   run a script (also: mtt FILE.lua, mtt - for stdin)\n"
    "       mtt -e CODE [args...]        run a string of Lua (mtt is preloaded)\n"
    "       mtt repl                     interactive prompt (default on a terminal)\n"
    "       mtt report RUN_DIR...        render RUN_DIR/report/ again (from report.json, or\n"
    "                                    from metrics.jsonl for any training run)\n"
    "       mtt pack RECIPE.lua -o X.mtt [--with-results RUN_DIR] [--with-checkpoints] [-- args]\n"
    "       mtt run X.mtt [-o OUT] [--trust]   rerun a bundle (sandboxed unless trusted)\n"
    "       mtt verify X.mtt [--rerun]       check a bundle's files (and rerun, compare metrics)\n"
    "       mtt unpack X.mtt [-o DIR]        unpack a bundle, checking every file\n"
    "       mtt --version                versions of mtt, LuaJIT and the BLAS in use\n"
    "       mtt --help                   this text\n"
    "environment: MTT_LIBRARY (libmtt.so to load), MTT_ROOT (folder holding lua/ and core/),\n"
    "             MTT_HISTORY (REPL history file),\n"
    "             OPENBLAS_CORETYPE / MTT_NO_CORETYPE (BLAS kernel choice), OMP_NUM_THREADS\n";

const char *mtt_tool_errtext(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  if (msg) return msg;
  if (luaL_callmeta(L, -1, "__tostring") && lua_isstring(L, -1)) {
    lua_replace(L, -2);
    return lua_tostring(L, -1);
  }
  msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, -1));
  lua_replace(L, -2);
  return msg;
}

static int traceback_handler(lua_State *L) {
  const char *msg = mtt_tool_errtext(L);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int mtt_tool_pcall(lua_State *L, int narg, int nres, int traceback) {
  int base = lua_gettop(L) - narg; /* the function's slot */
  int handler = 0;
  if (traceback) {
    lua_pushcfunction(L, traceback_handler);
    lua_insert(L, base);
    handler = base;
  }
  int status = lua_pcall(L, narg, nres, handler);
  if (traceback) lua_remove(L, base);
  return status;
}

static int report(lua_State *L, int status) {
  if (status != 0) {
    fprintf(stderr, "mtt: %s\n", mtt_tool_errtext(L));
    fflush(stderr);
    lua_pop(L, 1);
  }
  return status != 0; /* exit status 1 for any Lua error */
}

/* package.path = <root>/lua/?.lua;<root>/lua/?/init.lua;<previous path> */
static void set_paths(lua_State *L, const char *root) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  const char *old = lua_tostring(L, -1);
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s", root, root, old ? old : "");
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

/* arg = {[-k..-1] = command words before the script, [0] = script, [1..] = its args} */
static void set_arg_table(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script - 1, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int push_args(lua_State *L, char **argv, int argc, int first) {
  luaL_checkstack(L, argc - first + 1, "too many arguments");
  for (int i = first; i < argc; i++) lua_pushstring(L, argv[i]);
  return argc > first ? argc - first : 0;
}

/* mtt = require 'mtt' as a global (for -e) */
static int preload_mtt(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "mtt");
  int status = mtt_tool_pcall(L, 1, 1, 0);
  if (status != 0) return report(L, status);
  lua_setglobal(L, "mtt");
  return 0;
}

static int run_file(lua_State *L, const char *path, char **argv, int argc, int script) {
  set_arg_table(L, argv, argc, script);
  int status = luaL_loadfile(L, strcmp(path, "-") == 0 ? NULL : path);
  if (status == 0) {
    int n = push_args(L, argv, argc, script + 1);
    status = mtt_tool_pcall(L, n, 0, 1);
  }
  return report(L, status);
}

static int run_string(lua_State *L, const char *code, char **argv, int argc, int script) {
  set_arg_table(L, argv, argc, script);
  if (preload_mtt(L)) return 1;
  int status = luaL_loadbuffer(L, code, strlen(code), "=(command line)");
  if (status == 0) {
    int n = push_args(L, argv, argc, script + 1);
    status = mtt_tool_pcall(L, n, 0, 1);
  }
  return report(L, status);
}

/* ---- [bundle: mtt pack | unpack | verify, and mtt run BUNDLE (lua/mtt/bundle/cli.lua)] ---- */
static int is_bundle_path(const char *p) {
  size_t n = strlen(p);
  return (n > 4 && !strcmp(p + n - 4, ".mtt")) || (n > 8 && !strcmp(p + n - 8, ".tar.zst"));
}

/* pack, unpack, verify, or run with a bundle (not a .lua script) */
static int is_bundle_command(const char *cmd, int argc, char **argv) {
  if (!strcmp(cmd, "pack") || !strcmp(cmd, "unpack") || !strcmp(cmd, "verify")) return 1;
  if (strcmp(cmd, "run") != 0) return 0;
  for (int i = 2; i < argc; i++) /* the first operand: mtt run --trust X.mtt */
    if (argv[i][0] != '-') return is_bundle_path(argv[i]);
  return 0;
}

/* require('mtt.bundle.cli').main(argv[1], argv[2], ...) -> exit status */
static int run_bundle_command(lua_State *L, char **argv, int argc) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "mtt.bundle.cli");
  int status = mtt_tool_pcall(L, 1, 1, 0);
  if (status != 0) return report(L, status);
  lua_getfield(L, -1, "main");
  lua_remove(L, -2);
  int n = push_args(L, argv, argc, 1);
  status = mtt_tool_pcall(L, n, 1, 0); /* messages to the user (a recipe's error names its line) */
  if (status != 0) return report(L, status);
  int rc = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return rc;
}
/* ---- [/bundle] ---- */

/* a built-in chunk run like a script whose arguments are argv[script + 1..]; a command's errors
 * are messages to its user, printed without a traceback */
static int run_chunk(lua_State *L, const char *code, const char *name, char **argv, int argc,
                     int script) {
  set_arg_table(L, argv, argc, script);
  int status = luaL_loadbuffer(L, code, strlen(code), name);
  if (status == 0) {
    int n = push_args(L, argv, argc, script + 1);
    status = mtt_tool_pcall(L, n, 0, 0);
  }
  return report(L, status);
}

static int print_version(lua_State *L) {
  printf("mtt %s\n%s\n", MTT_VERSION, LUAJIT_VERSION);
  fflush(stdout);
  static const char code[] =
      "local mtt = require 'mtt'\n"
      "print('library: ' .. mtt.library)\n"
      "print('BLAS: ' .. mtt.blas_info())\n"
      "local forced = os.getenv('MTT_CORETYPE_SET')\n"
      "if forced then print('BLAS core: ' .. os.getenv('OPENBLAS_CORETYPE') ..\n"
      "  ' (OpenBLAS detected ' .. forced .. ', set by mtt)') end\n"
      "print('threads: ' .. mtt.threads())\n";
  int status = luaL_loadbuffer(L, code, sizeof(code) - 1, "=(version)");
  if (status == 0) status = mtt_tool_pcall(L, 0, 0, 0);
  return report(L, status);
}

/* Debian 12's LuaJIT (a 2022 snapshot) miscompiles some loads from a table made by a constructor
 * inside a loop (upstream issues 980 and 994, fixed in 2023): a hot loop such as
 * `for _, k in ipairs({'a', 'b'}) do n = n + (t[k] and 1 or 0) end` can read wrong values
 * under the JIT. Turning off load forwarding ("fwd") avoids it; measured cost on mtt's Lua-heavy
 * code (task loading, prompt encoding, metrics) is within noise to a few hundredths of a second.
 * lua/mtt/init.lua does the same for plain luajit; tests/lua/test_jit_safety.lua checks it. */
static void avoid_jit_load_forwarding(lua_State *L) {
  if (luaL_dostring(L, "if jit and jit.opt then jit.opt.start('-fwd') end") != 0) lua_pop(L, 1);
}

int main(int argc, char **argv) {
  mtt_blas_setup(argv);
  /* OpenMP threads that finish a parallel region sleep instead of spinning: on a machine shared
   * with other work, spinning workers steal the cores the next region needs (measured: 2-thread
   * training 506 -> 1,391 tokens/s under load). libgomp reads this when libmtt loads it, which
   * is after this line; a value the user set wins. */
  setenv("OMP_WAIT_POLICY", "passive", 0);
  setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines show up at once, also through a pipe */
  if (!getenv("MTT_LIBRARY")) setenv("MTT_LIBRARY", MTT_LIBRARY_PATH, 1);
  const char *root = getenv("MTT_ROOT") ? getenv("MTT_ROOT") : MTT_SOURCE_ROOT;

  const char *cmd = argc > 1 ? argv[1] : NULL;
  if (cmd && (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help"))) {
    fputs(usage, stdout);
    return 0;
  }

  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "mtt: cannot create a Lua state (out of memory)\n");
    return 1;
  }
  luaL_openlibs(L);
  avoid_jit_load_forwarding(L);
  set_paths(L, root);

  int status;
  if (!cmd) {
    status = isatty(STDIN_FILENO) ? mtt_repl(L) : run_file(L, "-", argv, argc, 0);
  } else if (!strcmp(cmd, "--version") || !strcmp(cmd, "-v") || !strcmp(cmd, "version")) {
    status = print_version(L);
  } else if (!strcmp(cmd, "repl")) {
    status = mtt_repl(L);
  } else if (!strcmp(cmd, "-e")) {
    if (argc < 3) {
      fprintf(stderr, "mtt: -e needs an argument\n%s", usage);
      status = 2;
    } else {
      status = run_string(L, argv[2], argv, argc, 2);
    }
  } else if (is_bundle_command(cmd, argc, argv)) { /* [bundle] */
    status = run_bundle_command(L, argv, argc);
  } else if (!strcmp(cmd, "report")) {
    /* all of it is Lua: mtt.report.main(RUN_DIR...) */
    static const char code[] = "return require('mtt.report').main(...)";
    status = run_chunk(L, code, "=(mtt report)", argv, argc, 1);
  } else if (!strcmp(cmd, "run")) {
    if (argc < 3) {
      fprintf(stderr, "mtt: run needs a script\n%s", usage);
      status = 2;
    } else {
      status = run_file(L, argv[2], argv, argc, 2);
    }
  } else if (cmd[0] != '-' || !strcmp(cmd, "-")) {
    size_t n = strlen(cmd);
    if (!strcmp(cmd, "-") || (n > 4 && !strcmp(cmd + n - 4, ".lua")) || access(cmd, R_OK) == 0) {
      status = run_file(L, cmd, argv, argc, 1);
    } else {
      fprintf(stderr, "mtt: unknown command '%s' (try mtt --help)\n", cmd);
      status = 2;
    }
  } else {
    fprintf(stderr, "mtt: unknown option '%s'\n%s", cmd, usage);
    status = 2;
  }
  fflush(stdout);
  lua_close(L);
  return status;
}
