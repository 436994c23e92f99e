/* Lua patterns for sandboxed states: string.find, string.match, string.gmatch and
 * string.gsub with the semantics of the Lua 5.4 manual (§6.4.1), but with every matcher step
 * charged to the state's instruction budget (sl_vm_charge), so a backtracking pattern cannot
 * hold a thread in C beyond the budget. */
#ifndef SL_LUA_MATCH_H
#define SL_LUA_MATCH_H

#include <lua.h>

/* Sets find, match, gmatch and gsub in the table at index idx (the real `string` library
 * table, before it is made read-only). The state's thread; may raise (allocates). */
void sl_lua_match_register(lua_State *L, int idx);

#endif
