/* Sandboxed Lua 5.4 states for user code: definitions, transformations, realtime views. */
#ifndef SL_LUA_VM_H
#define SL_LUA_VM_H

#include <stddef.h>
#include <lua.h>

struct sl_error;

struct sl_vm_limits {
    size_t mem_bytes;      /* cap on the state's total allocation (0 = 64 MiB) */
    long instructions;     /* cap per sl_vm_pcall (0 = 5,000,000) */
    long wall_ms;          /* wall-clock bound per outermost sl_vm_pcall (0 = 10 s); 5 times
                              longer in AddressSanitizer builds */
};

/* Creates a sandboxed state: base library without dofile/loadfile/load of binary chunks
 * (load accepts text only, mode "t"), string, table, math, utf8, coroutine; os.time,
 * os.clock, os.date only; no io, package, require of files, debug. A memory cap enforced by a
 * custom lua_Alloc, an instruction-count hook. Returns NULL with err on failure. Any thread;
 * the state is then used by one thread at a time.
 * Also: lua-cjson as `cjson`, a table of encode, decode and null only (the raising variant:
 * cjson.decode of bad text raises an error that pcall catches; cjson.null is the JSON null;
 * nesting fixed at 128 levels, the library's settings functions are not reachable); print writes to the debug log, never to
 * stdout; collectgarbage takes "collect", "count" and "step" only; setmetatable refuses a
 * metatable with __gc (no user finalizers: no user code runs outside sl_vm_pcall); warn and
 * string.dump are absent. The `sluice` module (lua_sluice.h: time helpers, hashing,
 * sluice.null, sluice.json = cjson) is a global. The library tables are read-only and
 * getmetatable("") returns false, so user code cannot change the functions other code in the
 * state relies on. */
lua_State *sl_vm_new(const struct sl_vm_limits *lim, struct sl_error *err);
/* Closes L; accepts NULL. */
void sl_vm_close(lua_State *L);

/* Replaces the table on top of L's stack by a read-only proxy of it: reads go through,
 * writes (also rawset) raise "attempt to modify read-only table", pairs iterates the real
 * table, the metatable is hidden. Call inside a protected call (it allocates). */
void sl_vm_make_readonly(lua_State *L);

/* The caller's per-state pointer (kept in the state's context, reached through
 * lua_getextraspace, shared by its coroutines). Borrowed; NULL until set. */
void sl_vm_set_userdata(lua_State *L, void *p);
void *sl_vm_userdata(lua_State *L);

/* Bytes currently allocated by L (counted by the capping allocator). */
size_t sl_vm_memory(lua_State *L);

/* Loads a text chunk named `name` (shown in messages as name:line). Returns 0 with the
 * function pushed, or SL_ESCRIPT with err "name:line: message" and nothing pushed.
 * A name is given "@" (a user file: its frames appear in tracebacks and positions) unless it
 * already starts with "@" or "=" ("=dsl.lua": shown verbatim, hidden from tracebacks). */
int sl_vm_load(lua_State *L, const char *name, const char *src, size_t len,
               struct sl_error *err);

/* lua_pcall with a message handler that yields "file:line: message" (plus a short
 * traceback), under the instruction cap. Returns 0 or SL_ESCRIPT with err set; on error
 * nothing is left on the stack. "instruction limit exceeded" and "memory limit exceeded"
 * are reported as such (the position of a memory error is the user code the instruction
 * hook saw last, else the called function's definition: approximate).
 * Calls may nest (a C function called from Lua calling back into Lua): the budget covers
 * the outermost call. Once the instructions, the wall-clock bound or the memory cap are spent,
 * the call's budget stays spent: the hook raises again at every instruction, pcall/xpcall
 * and coroutine.resume in the sandbox pass the error on, xpcall's handler never sees it,
 * and the message is "file:line: instruction limit exceeded" (or "time limit exceeded",
 * "memory limit exceeded (N MiB)") whatever the unwinding did. Lua API calls that allocate outside sl_vm_pcall can hit the memory
 * cap unprotected, which aborts: do conversions inside a C function run by sl_vm_pcall. */
int sl_vm_pcall(lua_State *L, int nargs, int nresults, struct sl_error *err);

/* Makes the sl_vm_pcall calls until sl_vm_budget_end share one budget (instructions, wall
 * clock): e.g. every file of one apply. Pairs nest as sl_vm_pcall does. The state's thread. */
void sl_vm_budget_begin(lua_State *L);
void sl_vm_budget_end(lua_State *L);

/* Adds units to the instructions counted for the current call, for work a C function does
 * without returning to the VM (copying, scanning, matching); raises the budget error when
 * the budget is spent (also when it was spent before: a caught budget error stays raised).
 * Outside sl_vm_pcall it does nothing. Call from a C function running in L. */
void sl_vm_charge(lua_State *L, long units);

#endif
