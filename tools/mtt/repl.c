/*
 * repl.c: the interactive prompt of the mtt command, with libedit for line editing.
 *
 * - A line is first tried as an expression ("return " .. line), so `1 + 1`, `t` and `=expr`
 *   print their values; otherwise it runs as a statement. A chunk the parser finds
 *   unfinished (its error is at '<eof>') continues on the next line.
 * - Errors are printed and the session goes on with its state.
 * - Ctrl-C during a computation: the signal handler sets a debug hook that raises
 *   "interrupted" at the next Lua instruction, call or return, and the prompt comes back (a C
 *   op that is running finishes first). LuaJIT does not check hooks inside compiled loops, so
 *   code typed here runs with the JIT off (library code stays compiled); a second Ctrl-C
 *   before the hook fires ends the process, the way out of a compiled endless loop.
 *   Ctrl-C at the prompt discards the line being typed, even one that comes before libedit
 *   has put the terminal in raw mode (see prompt_getc).
 * - History in ~/.mtt_history (MTT_HISTORY overrides); Tab completes globals, fields and
 *   methods (a.b<Tab>, t:re<Tab>), `:` commands and their arguments through
 *   lua/mtt/complete.lua; results print through lua/mtt/show.lua (tables as constructors,
 *   mtt objects as summaries).
 * - A line starting with ':' and a letter is a command (:help, :runs, :load, :gen, ...),
 *   run by require('mtt.repl').command(line) under the same Ctrl-C handling as Lua code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>
#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>

#include "mtt_tool.h"

static lua_State *repl_L;
static volatile sig_atomic_t prompt_interrupted;

/* ---- Ctrl-C ---- */
static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted");
}

static void on_sigint_running(int sig) {
  signal(sig, SIG_DFL); /* a second Ctrl-C before the hook runs ends the process */
  lua_sethook(repl_L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void on_sigint_prompt(int sig) {
  (void)sig;
  prompt_interrupted = 1;
}

static void set_sigint(void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a read at the prompt returns on Ctrl-C */
  sigaction(SIGINT, &sa, NULL);
}

/* ---- reading keys at the prompt ----
 * libedit's own reader retries a read that a signal interrupted, and a Ctrl-C that lands
 * before it reads (between printing the prompt and switching the terminal to raw mode, which
 * a loaded machine can stretch) would leave readline waiting for Enter. This reader checks
 * the flag with SIGINT blocked and waits with ppoll, which unblocks it atomically, so no
 * Ctrl-C is missed; -1 makes readline return NULL, and the loop sees prompt_interrupted. */
static int read_byte(int fd, const sigset_t *wait_mask) {
  for (;;) {
    if (prompt_interrupted) return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = ppoll(&p, 1, NULL, wait_mask);
    if (r < 0 && errno == EINTR) continue; /* the flag is checked at the top */
    if (r < 0) return -1;
    unsigned char c;
    ssize_t n = read(fd, &c, 1);
    if (n == 1) return c;
    if (n == 0 || errno != EINTR) return -1; /* end of input or an error */
  }
}

/* One key as a code point: libedit's readline layer takes the int as a wide character, so
 * UTF-8 is decoded here (a malformed sequence gives U+FFFD). */
static int prompt_getc(FILE *in) {
  int fd = in ? fileno(in) : STDIN_FILENO;
  sigset_t sigint, old_mask, wait_mask;
  sigemptyset(&sigint);
  sigaddset(&sigint, SIGINT);
  sigprocmask(SIG_BLOCK, &sigint, &old_mask);
  wait_mask = old_mask;
  sigdelset(&wait_mask, SIGINT);
  int c = read_byte(fd, &wait_mask);
  int more = c < 0x80 ? 0 : c >= 0xF8 ? -1 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : -1;
  if (more < 0) c = 0xFFFD;
  else if (more > 0) c &= 0x3F >> more;
  for (int i = 0; i < more && c >= 0; i++) {
    int b = read_byte(fd, &wait_mask);
    c = b < 0 ? -1 : (b & 0xC0) != 0x80 ? 0xFFFD : (c << 6) | (b & 0x3F);
    if (c == 0xFFFD) break;
  }
  sigprocmask(SIG_SETMASK, &old_mask, NULL);
  return c;
}

/* ---- history ---- */
static char history_path[4096];

static void history_open(void) {
  const char *path = getenv("MTT_HISTORY");
  const char *home = getenv("HOME");
  if (path && *path) {
    snprintf(history_path, sizeof history_path, "%s", path);
  } else if (home && *home) {
    snprintf(history_path, sizeof history_path, "%s/.mtt_history", home);
  }
  using_history();
  stifle_history(1000);
  if (history_path[0]) read_history(history_path);
}

static void history_add(const char *line) {
  if (!line[0]) return;
  add_history(line);
  if (history_path[0]) write_history(history_path); /* now, so a killed session keeps it */
}

/* ---- completion (candidates come from Lua: require('mtt.complete')(word, nil, line)) ---- */
static char **candidates;
static int n_candidates, next_candidate;

static void clear_candidates(void) {
  for (int i = 0; i < n_candidates; i++) free(candidates[i]);
  free(candidates);
  candidates = NULL;
  n_candidates = 0;
}

static char *candidate_generator(const char *text, int state) {
  (void)text;
  if (state == 0) next_candidate = 0;
  return next_candidate < n_candidates ? strdup(candidates[next_candidate++]) : NULL;
}

static char **complete(const char *text, int start, int end) {
  (void)start;
  rl_attempted_completion_over = 1; /* never fall back on file names */
  clear_candidates();
  lua_State *L = repl_L;
  int top = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "mtt.complete");
  if (lua_pcall(L, 1, 1, 0) == 0) {
    lua_pushstring(L, text);
    lua_pushnil(L);
    /* the line up to the cursor: `:` commands complete their arguments from it */
    size_t len = strlen(rl_line_buffer);
    lua_pushlstring(L, rl_line_buffer, end >= 0 && (size_t)end <= len ? (size_t)end : len);
    if (lua_pcall(L, 3, 1, 0) == 0 && lua_istable(L, -1)) {
      int n = (int)lua_objlen(L, -1);
      candidates = calloc(n > 0 ? (size_t)n : 1, sizeof(char *));
      for (int i = 1; candidates && i <= n; i++) {
        lua_rawgeti(L, -1, i);
        const char *s = lua_tostring(L, -1);
        if (s) candidates[n_candidates++] = strdup(s);
        lua_pop(L, 1);
      }
    }
  }
  lua_settop(L, top);
  if (n_candidates == 0) return NULL;
  return rl_completion_matches(text, candidate_generator);
}

/* ---- reading and running chunks ---- */
/* The parser stopped at the end of the text: the chunk is unfinished, not wrong. */
static int is_incomplete(lua_State *L, int status) {
  if (status != LUA_ERRSYNTAX) return 0;
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  static const char mark[] = "'<eof>'";
  size_t m = sizeof(mark) - 1;
  return msg && len >= m && strcmp(msg + len - m, mark) == 0;
}

/* Prints the results at base..top: through require('mtt.show') (tables as constructors), or
 * print when that module is missing. */
static void print_results(lua_State *L, int base) {
  int n = lua_gettop(L) - base + 1;
  if (n <= 0) return;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "mtt.show");
  if (lua_pcall(L, 1, 1, 0) != 0 || !lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    lua_getglobal(L, "print");
    lua_insert(L, base);
    if (lua_pcall(L, n, 0, 0) != 0) {
      fprintf(stderr, "error printing the result: %s\n", mtt_tool_errtext(L));
      lua_pop(L, 1);
    }
    return;
  }
  lua_insert(L, base);
  if (lua_pcall(L, n, 1, 0) != 0) {
    fprintf(stderr, "error printing the result: %s\n", mtt_tool_errtext(L));
  } else {
    printf("%s\n", lua_tostring(L, -1));
  }
  lua_pop(L, 1);
}

/* Runs the function below its nargs arguments on top of the stack, prints its results or its
 * error. */
static void run_chunk(lua_State *L, int nargs) {
  luaJIT_setmode(L, -1 - nargs, LUAJIT_MODE_ALLFUNC | LUAJIT_MODE_OFF);
  int base = lua_gettop(L) - nargs;
  set_sigint(on_sigint_running);
  int status = mtt_tool_pcall(L, nargs, LUA_MULTRET, 0);
  set_sigint(on_sigint_prompt);
  lua_sethook(L, NULL, 0, 0); /* in case Ctrl-C came as the chunk ended */
  fflush(stdout);
  if (status != 0) {
    fprintf(stderr, "%s\n", mtt_tool_errtext(L));
    fflush(stderr);
    lua_pop(L, 1);
    return;
  }
  print_results(L, base);
  fflush(stdout);
}

/* Compiles the text: as an expression when it is one, else as statements. Returns 0 and the
 * function on the stack, 1 if unfinished, -1 after printing a syntax error. */
static int compile(lua_State *L, const char *text, int first_line) {
  const char *code = text;
  if (first_line && text[0] == '=') code = text + 1;
  if (first_line) {
    lua_pushfstring(L, "return %s", code);
    int st = luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=stdin");
    lua_remove(L, -2);
    if (st == 0) return 0;
    lua_pop(L, 1);
    if (code != text) { /* "=expr" must be an expression */
      lua_pushfstring(L, "return %s", code);
      luaL_loadbuffer(L, lua_tostring(L, -1), lua_objlen(L, -1), "=stdin");
      lua_remove(L, -2);
      fprintf(stderr, "%s\n", mtt_tool_errtext(L));
      lua_pop(L, 1);
      return -1;
    }
  }
  int st = luaL_loadbuffer(L, text, strlen(text), "=stdin");
  if (st == 0) return 0;
  if (is_incomplete(L, st)) {
    lua_pop(L, 1);
    return 1;
  }
  fprintf(stderr, "%s\n", mtt_tool_errtext(L));
  lua_pop(L, 1);
  return -1;
}

/* A line ":name ..." is a command of lua/mtt/repl (`::label::` stays Lua): pushes
 * require('mtt.repl').command and the line, ready for run_chunk(L, 1). */
static int is_command(const char *line) {
  while (*line == ' ' || *line == '\t') line++;
  return line[0] == ':' && ((line[1] >= 'a' && line[1] <= 'z') || (line[1] >= 'A' && line[1] <= 'Z'));
}

static void push_command(lua_State *L, const char *line) {
  static const char code[] = "return require('mtt.repl').command(...)";
  luaL_loadbuffer(L, code, sizeof(code) - 1, "=repl");
  lua_pushstring(L, line);
}

static void setup_mtt(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "mtt");
  if (mtt_tool_pcall(L, 1, 1, 0) == 0) {
    lua_setglobal(L, "mtt");
  } else {
    fprintf(stderr, "warning: the mtt package did not load: %s\n", mtt_tool_errtext(L));
    lua_pop(L, 1);
  }
}

/* libedit decodes keys and encodes the line by the locale's character set: without this, the
 * C locale's ASCII, "é" typed at the prompt would be dropped. Only LC_CTYPE, so that number
 * formatting stays the C locale's. */
static void use_utf8_keys(void) {
  setlocale(LC_CTYPE, "");
  if (strcmp(nl_langinfo(CODESET), "UTF-8") != 0) setlocale(LC_CTYPE, "C.UTF-8");
}

int mtt_repl(lua_State *L) {
  repl_L = L;
  use_utf8_keys();
  printf("mtt %s (%s). `mtt` is loaded; Ctrl-D exits, Ctrl-C interrupts.\n", MTT_VERSION, LUAJIT_VERSION);
  fflush(stdout);
  setup_mtt(L);

  static char breaks[] = " \t\n\"\\'`@$><=;|&{(,+-*/%^~#[]}";
  rl_completer_word_break_characters = breaks;
  rl_completion_append_character = '\0';
  rl_attempted_completion_function = complete;
  rl_readline_name = "mtt";
  rl_getc_function = prompt_getc; /* before history_open: using_history initializes libedit */
  history_open();
  set_sigint(on_sigint_prompt);

  char *chunk = NULL; /* text of an unfinished chunk */
  size_t chunk_len = 0;
  for (;;) {
    prompt_interrupted = 0;
    char *line = readline(chunk ? "...> " : "mtt> ");
    if (prompt_interrupted) { /* Ctrl-C at the prompt: drop what was typed */
      free(line);
      free(chunk);
      chunk = NULL;
      chunk_len = 0;
      printf("\n");
      fflush(stdout);
      continue;
    }
    if (!line) break; /* Ctrl-D */
    history_add(line);
    if (!chunk && is_command(line)) {
      push_command(L, line);
      free(line);
      run_chunk(L, 1);
      continue;
    }
    int first = chunk == NULL;
    size_t n = strlen(line);
    char *text = realloc(chunk, chunk_len + n + 2);
    if (!text) {
      fprintf(stderr, "out of memory\n");
      free(line);
      break;
    }
    if (chunk_len) text[chunk_len++] = '\n';
    memcpy(text + chunk_len, line, n + 1);
    chunk_len += n;
    free(line);
    int st = compile(L, text, first);
    if (st == 1) { /* unfinished: keep reading */
      chunk = text;
      continue;
    }
    free(text);
    chunk = NULL;
    chunk_len = 0;
    if (st == 0) run_chunk(L, 0);
  }
  free(chunk);
  clear_candidates();
  printf("\n");
  fflush(stdout);
  return 0;
}
