/* mtt_tool.h: what the files of the mtt command share (main.c, repl.c, blas_setup.c). */
#ifndef MTT_TOOL_H
#define MTT_TOOL_H

#include <lua.h>

/* blas_setup.c: may re-exec the process with OPENBLAS_CORETYPE set; returns if it does not. */
void mtt_blas_setup(char **argv);

/* main.c: lua_pcall with a traceback message handler; the error text stays on the stack. */
int mtt_tool_pcall(lua_State *L, int narg, int nres, int traceback);
/* Text of the error value on top of the stack (never NULL). */
const char *mtt_tool_errtext(lua_State *L);

/* repl.c: the interactive loop; returns the process exit status. */
int mtt_repl(lua_State *L);

#endif
