/* The `sluice` Lua module: what user code (definitions, transformations, post-processors,
 * realtime views) gets beside the standard libraries.
 *
 *   sluice.null                     the null sentinel (light userdata NULL = cjson.null)
 *   sluice.json                     lua-cjson (the same table as the global `cjson`)
 *   sluice.time.parse(t)            RFC 3339 string (or integer ns) -> integer ns
 *   sluice.time.format(t)           integer ns (or RFC 3339 string) -> RFC 3339 UTC string
 *   sluice.time.truncate(t, d)      t rounded down to a multiple of d since the epoch
 *   sluice.time.duration(d)         "1h30m" (or integer ns) -> integer ns
 *   sluice.time.now()               integer ns (the server's clock, fake in tests)
 *   sluice.hash(s [, seed])         XXH64 of the bytes of s, as a Lua integer
 *   sluice.hash_bucket(s, n [, seed])  XXH64 mod n, in 0..n-1
 *
 * Times are int64 nanoseconds since the Unix epoch and stay Lua integers throughout: a float
 * is refused rather than rounded. Errors are raised with luaL_error, so they carry the
 * caller's "file:line: " and name the function ("sluice.time.parse: invalid RFC 3339 time
 * \"...\"").
 *
 * The tables are read-only proxies, as lua_vm.c makes the standard libraries: an empty
 * table whose metatable reads through to the real one, refuses writes and is hidden. */
#include "lua_sluice.h"
#include "lua_vm.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <xxhash.h>

#include "timeutil.h"

#define EXCERPT_MAX 64 /* bytes of a bad argument quoted in a message */

/* ---- XXH64 ----
 * Yann Collet's xxHash, 64-bit variant, from Debian's libxxhash: the digest is the same on
 * every platform and never changes (test_lua_sluice pins it against `xxhsum -H64`). */

uint64_t sl_lua_sluice_hash(const void *data, size_t len, uint64_t seed)
{
    return XXH64(data, len, seed);
}

/* ---- arguments ---- */

/* The type of the value at idx as a user would say it: sluice.null is "null". */
static const char *type_name(lua_State *L, int idx)
{
    if (lua_islightuserdata(L, idx) && lua_touserdata(L, idx) == NULL)
        return "null";
    if (lua_type(L, idx) == LUA_TNUMBER && !lua_isinteger(L, idx))
        return "a float";
    return luaL_typename(L, idx);
}

/* Copies at most EXCERPT_MAX bytes of s into out (>= EXCERPT_MAX + 4 bytes) for a message:
 * control bytes become '?', a longer string ends in "...". */
static const char *excerpt(const char *s, size_t len, char *out)
{
    size_t n = len < EXCERPT_MAX ? len : EXCERPT_MAX;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (n < len) {
        memcpy(out + n, "...", 4);
    } else {
        out[n] = '\0';
    }
    return out;
}

/* The time at idx: integer ns, or an RFC 3339 string parsed to ns. Raises otherwise. */
static int64_t check_time(lua_State *L, int idx, const char *fn)
{
    char q[EXCERPT_MAX + 4];
    size_t len;
    const char *s;
    int64_t ns = 0;

    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return (int64_t)lua_tointeger(L, idx);
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        if (sl_time_parse(s, len, &ns) != 0)
            luaL_error(L,
                       "%s: invalid RFC 3339 time \"%s\" (expected e.g. "
                       "\"2024-05-01T12:00:00Z\" or \"2024-05-01T14:00:00.123456789+02:00\")",
                       fn, excerpt(s, len, q));
        return ns;
    default:
        break;
    }
    luaL_error(L, "%s: expected an RFC 3339 string or integer nanoseconds, got %s", fn,
               type_name(L, idx));
    return 0;
}

/* The duration at idx: a duration string ("1h30m") or integer ns > 0. Raises otherwise. */
static int64_t check_duration(lua_State *L, int idx, const char *fn)
{
    char q[EXCERPT_MAX + 4];
    size_t len;
    const char *s;
    int64_t ns = 0;

    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (!lua_isinteger(L, idx))
            break;
        if (lua_tointeger(L, idx) <= 0)
            luaL_error(L, "%s: a duration must be > 0, got %I", fn, lua_tointeger(L, idx));
        return (int64_t)lua_tointeger(L, idx);
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        if (sl_duration_parse(s, len, &ns) != 0)
            luaL_error(L,
                       "%s: invalid duration \"%s\" (expected <integer><unit> groups, units ns "
                       "us ms s m h d w, e.g. \"10m\" or \"1h30m\")",
                       fn, excerpt(s, len, q));
        return ns;
    default:
        break;
    }
    luaL_error(L, "%s: expected a duration string (\"10m\") or integer nanoseconds, got %s", fn,
               type_name(L, idx));
    return 0;
}

/* The bytes to hash at idx: a string, or an integer as its decimal text (written into buf,
 * >= 24 bytes), so hash(42) == hash("42"). Raises otherwise. */
static const char *check_key(lua_State *L, int idx, const char *fn, char *buf, size_t *len)
{
    if (lua_type(L, idx) == LUA_TSTRING)
        return lua_tolstring(L, idx, len);
    if (lua_isinteger(L, idx)) {
        *len = (size_t)snprintf(buf, 24, "%lld", (long long)lua_tointeger(L, idx));
        return buf;
    }
    luaL_error(L, "%s: expected a string or an integer, got %s", fn, type_name(L, idx));
    return NULL;
}

/* The optional seed at idx (absent or nil: 0), an integer taken as its 64 bits. */
static uint64_t opt_seed(lua_State *L, int idx, const char *fn)
{
    if (lua_isnoneornil(L, idx))
        return 0;
    if (!lua_isinteger(L, idx))
        luaL_error(L, "%s: the seed must be an integer, got %s", fn, type_name(L, idx));
    return (uint64_t)lua_tointeger(L, idx);
}

/* The unsigned 64 bits of h as a Lua integer (two's complement). */
static lua_Integer as_integer(uint64_t h)
{
    return h <= (uint64_t)INT64_MAX ? (lua_Integer)h : -(lua_Integer)(UINT64_MAX - h) - 1;
}

/* ---- sluice.time ---- */

static int time_parse(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_time(L, 1, "sluice.time.parse"));
    return 1;
}

static int time_format(lua_State *L)
{
    char out[SL_TIME_MAXLEN];
    size_t len = sl_time_format(check_time(L, 1, "sluice.time.format"), out);
    lua_pushlstring(L, out, len);
    return 1;
}

static int time_truncate(lua_State *L)
{
    static const char fn[] = "sluice.time.truncate";
    int64_t t = check_time(L, 1, fn);
    int64_t d = check_duration(L, 2, fn);
    int64_t r = t % d, out;

    if (r < 0)
        r += d; /* floor: -1ns truncated to 1s is -1s, not 0 */
    if (__builtin_sub_overflow(t, r, &out))
        return luaL_error(L, "%s: the result is out of range", fn);
    lua_pushinteger(L, (lua_Integer)out);
    return 1;
}

static int time_duration(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_duration(L, 1, "sluice.time.duration"));
    return 1;
}

static int time_now(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)sl_now_ns());
    return 1;
}

/* ---- sluice.hash ---- */

static int hash(lua_State *L)
{
    static const char fn[] = "sluice.hash";
    char buf[24];
    size_t len;
    const char *s = check_key(L, 1, fn, buf, &len);
    uint64_t seed = opt_seed(L, 2, fn);

    lua_pushinteger(L, as_integer(sl_lua_sluice_hash(s, len, seed)));
    return 1;
}

static int hash_bucket(lua_State *L)
{
    static const char fn[] = "sluice.hash_bucket";
    char buf[24];
    size_t len;
    const char *s = check_key(L, 1, fn, buf, &len);

    if (!lua_isinteger(L, 2))
        return luaL_error(L, "%s: the bucket count must be an integer >= 1, got %s", fn,
                          type_name(L, 2));
    if (lua_tointeger(L, 2) < 1)
        return luaL_error(L, "%s: the bucket count must be >= 1, got %I", fn,
                          lua_tointeger(L, 2));
    uint64_t n = (uint64_t)lua_tointeger(L, 2);
    uint64_t seed = opt_seed(L, 3, fn);
    lua_pushinteger(L, (lua_Integer)(sl_lua_sluice_hash(s, len, seed) % n));
    return 1;
}

/* ---- the module ---- */

int sl_lua_sluice_open(lua_State *L)
{
    static const luaL_Reg time_fns[] = {
        {"parse", time_parse},       {"format", time_format}, {"truncate", time_truncate},
        {"duration", time_duration}, {"now", time_now},       {NULL, NULL},
    };
    static const luaL_Reg fns[] = {
        {"hash", hash},
        {"hash_bucket", hash_bucket},
        {NULL, NULL},
    };

    luaL_newlib(L, fns);
    lua_pushlightuserdata(L, NULL); /* transform.c's null: a record's null arrives as this */
    lua_setfield(L, -2, "null");
    if (lua_getglobal(L, "cjson") != LUA_TTABLE)
        return luaL_error(L, "sluice module: the cjson module must be loaded first");
    lua_setfield(L, -2, "json");
    luaL_newlib(L, time_fns);
    sl_vm_make_readonly(L);
    lua_setfield(L, -2, "time");
    sl_vm_make_readonly(L);
    return 1;
}
