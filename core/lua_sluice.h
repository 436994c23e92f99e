/* The `sluice` Lua module offered to user code: time helpers, string hashing, the null
 * sentinel and lua-cjson. Documented for users in core/defs.md ("The sluice module"). */
#ifndef SL_LUA_SLUICE_H
#define SL_LUA_SLUICE_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* A lua_CFunction: pushes the module table, a read-only proxy (as is sluice.time):
 * sluice.null (light userdata NULL, the same value as cjson.null), sluice.json (the value of
 * the global `cjson`, which must be a table when this runs), sluice.time.{parse, format,
 * truncate, duration, now}, sluice.hash, sluice.hash_bucket. The caller sets the global.
 * Allocates and may raise: call it through lua_pcall, or lua_call inside a protected
 * function (as sl_vm_new does). The state's thread. Returns 1. */
int sl_lua_sluice_open(lua_State *L);

/* XXH64 of p[0..len) with seed: the xxHash 64-bit algorithm, the digest `xxhsum -H64`
 * prints. What sluice.hash returns, as unsigned. Fixed for good: buckets users compute and
 * store depend on it. Any thread. */
uint64_t sl_lua_sluice_hash(const void *p, size_t len, uint64_t seed);

#endif
