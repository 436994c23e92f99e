/* Unit tests of core/lua_sluice.c, the `sluice` Lua module, in states made by sl_vm_new:
 * sluice.null is cjson.null (transform.c's null), sluice.json is cjson, the time helpers are
 * exact to the nanosecond (integers, never a double), truncate floors negative times, hashes
 * are XXH64 (pinned by test vectors that `xxhsum -H64` reproduces), every error message names
 * the function and the caller's file:line, and the tables are read-only. Also the module in
 * a repository's definitions and transformations (defs.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_fast.h"
#include <cJSON.h>
#include <lauxlib.h>
#include <lualib.h>

#include "defs.h"
#include "error.h"
#include "lua_sluice.h"
#include "lua_vm.h"
#include "timeutil.h"

static lua_State *vm(void)
{
    struct sl_error err = {0};
    struct sl_vm_limits lim = {.mem_bytes = 32u << 20, .instructions = 5000000};
    lua_State *L = sl_vm_new(&lim, &err);
    ck_assert_msg(L != NULL, "sl_vm_new: %s", err.msg);
    return L;
}

/* Runs src as chunk "t.lua" leaving nres results; returns the status with err filled. */
static int run(lua_State *L, const char *src, int nres, struct sl_error *err)
{
    memset(err, 0, sizeof(*err));
    int rc = sl_vm_load(L, "t.lua", src, strlen(src), err);
    return rc ? rc : sl_vm_pcall(L, 0, nres, err);
}

/* src must run without error (its assertions hold). */
static void ok(lua_State *L, const char *src)
{
    struct sl_error err;
    ck_assert_msg(run(L, src, 0, &err) == 0, "%s\n--- in:\n%s", err.msg, src);
    ck_assert_int_eq(lua_gettop(L), 0);
}

/* The value of src ("return <expr>"), which must be a Lua integer (not a float). */
static lua_Integer integer(lua_State *L, const char *src)
{
    struct sl_error err;
    ck_assert_msg(run(L, src, 1, &err) == 0, "%s: %s", src, err.msg);
    ck_assert_msg(lua_isinteger(L, -1), "%s: returned a %s, not an integer", src,
                  lua_type(L, -1) == LUA_TNUMBER ? "float" : luaL_typename(L, -1));
    lua_Integer v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The value of src, which must be a string; valid until the next call. */
static const char *string(lua_State *L, const char *src)
{
    static char out[256];
    struct sl_error err;
    ck_assert_msg(run(L, src, 1, &err) == 0, "%s: %s", src, err.msg);
    ck_assert_msg(lua_type(L, -1) == LUA_TSTRING, "%s: returned a %s", src, luaL_typename(L, -1));
    snprintf(out, sizeof out, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return out;
}

/* ---- sluice.null and sluice.json ---- */

START_TEST(test_null)
{
    struct sl_error err;
    lua_State *L = vm();

    ok(L, "assert(sluice.null == cjson.null)\n"
          "assert(sluice.null == sluice.json.null)\n"
          "assert(type(sluice.null) == 'userdata')\n"
          "assert(sluice.null ~= nil and sluice.null)\n" /* a value, and truthy */
          "assert(cjson.decode('null') == sluice.null)\n"
          "assert(cjson.decode('[null]')[1] == sluice.null)\n"
          "assert(cjson.encode({ sluice.null }) == '[null]')\n");

    /* From C: the light userdata NULL, the value transform.c pushes for a null field. */
    ck_assert_int_eq(run(L, "return sluice.null", 1, &err), 0);
    ck_assert(lua_islightuserdata(L, -1));
    ck_assert_ptr_null(lua_touserdata(L, -1));
    lua_pop(L, 1);
    ck_assert_int_eq(run(L, "return function(v) return v == sluice.null end", 1, &err), 0);
    lua_pushlightuserdata(L, NULL);
    ck_assert_int_eq(sl_vm_pcall(L, 1, 1, &err), 0);
    ck_assert(lua_toboolean(L, -1));
    lua_pop(L, 1);
    sl_vm_close(L);
}
END_TEST

START_TEST(test_json)
{
    lua_State *L = vm();

    ok(L, "assert(sluice.json == cjson)\n"
          "local t = sluice.json.decode('{\"a\": [1, 2], \"b\": \"x\"}')\n"
          "assert(t.a[2] == 2 and t.b == 'x')\n"
          "assert(sluice.json.encode({ 'x', true }) == '[\"x\",true]')\n"
          "local ok, e = pcall(sluice.json.decode, '{bad')\n"
          "assert(not ok and e:find('Expected'), e)\n");
    /* Large integers go through a double in lua-cjson; the documented way is a string. */
    ck_assert_str_eq(string(L, "return sluice.json.encode({ t = tostring(1714557600123456789) })"),
                     "{\"t\":\"1714557600123456789\"}");
    sl_vm_close(L);
}
END_TEST

/* ---- sluice.time ---- */

START_TEST(test_time_parse)
{
    lua_State *L = vm();

    ck_assert(integer(L, "return sluice.time.parse('1970-01-01T00:00:00Z')") == 0);
    ck_assert(integer(L, "return sluice.time.parse('2024-05-01T12:00:00Z')") ==
              INT64_C(1714564800000000000));
    ck_assert(integer(L, "return sluice.time.parse('2024-05-01T14:00:00.123456789+02:00')") ==
              INT64_C(1714564800123456789));
    ck_assert(integer(L, "return sluice.time.parse('2024-05-01 12:00:00.5-00:30')") ==
              INT64_C(1714566600500000000));
    ck_assert(integer(L, "return sluice.time.parse('2024-05-01T12:00')") ==
              INT64_C(1714564800000000000));
    ck_assert(integer(L, "return sluice.time.parse('1969-12-31T23:59:59.999999999Z')") == -1);
    /* the int64 range, exactly */
    ck_assert(integer(L, "return sluice.time.parse('2262-04-11T23:47:16.854775807Z')") ==
              INT64_MAX);
    ck_assert(integer(L, "return sluice.time.parse('1677-09-21T00:12:43.145224192Z')") ==
              INT64_MIN);
    /* an integer is already a time */
    ck_assert(integer(L, "return sluice.time.parse(1714564800123456789)") ==
              INT64_C(1714564800123456789));
    ck_assert(integer(L, "return sluice.time.parse(-5)") == -5);
    sl_vm_close(L);
}
END_TEST

START_TEST(test_time_format)
{
    lua_State *L = vm();

    ck_assert_str_eq(string(L, "return sluice.time.format(0)"), "1970-01-01T00:00:00Z");
    ck_assert_str_eq(string(L, "return sluice.time.format(-1)"),
                     "1969-12-31T23:59:59.999999999Z");
    ck_assert_str_eq(string(L, "return sluice.time.format(1714564800123456789)"),
                     "2024-05-01T12:00:00.123456789Z");
    ck_assert_str_eq(string(L, "return sluice.time.format(1714564800123456000)"),
                     "2024-05-01T12:00:00.123456Z");
    ck_assert_str_eq(string(L, "return sluice.time.format(1714564800120000000)"),
                     "2024-05-01T12:00:00.120Z");
    ck_assert_str_eq(string(L, "return sluice.time.format(math.maxinteger)"),
                     "2262-04-11T23:47:16.854775807Z");
    ck_assert_str_eq(string(L, "return sluice.time.format(math.mininteger)"),
                     "1677-09-21T00:12:43.145224192Z");
    /* a string is normalised to UTC */
    ck_assert_str_eq(string(L, "return sluice.time.format('2024-05-01T14:00:00.5+02:00')"),
                     "2024-05-01T12:00:00.500Z");
    sl_vm_close(L);
}
END_TEST

/* format and parse are inverse over the whole int64 range, nanoseconds included. */
START_TEST(test_time_round_trip)
{
    lua_State *L = vm();

    ok(L, "local T = sluice.time\n"
          "local function check(ns)\n"
          "  local s = T.format(ns)\n"
          "  local back = T.parse(s)\n"
          "  assert(math.type(back) == 'integer' and back == ns,\n"
          "         string.format('%d -> %s -> %s', ns, s, tostring(back)))\n"
          "  assert(T.format(s) == s, s)\n"
          "end\n"
          "for _, ns in ipairs({ 0, 1, -1, 999, 1000, 999999999, -999999999, 1000000000,\n"
          "    -1000000001, 1714564800123456789, -1714564800123456789, 86399999999999,\n"
          "    9007199254740993, -9007199254740993, math.maxinteger, math.mininteger }) do\n"
          "  check(ns)\n"
          "end\n"
          "local x = 88172645463325252\n" /* xorshift64: 2000 times over the full range */
          "for _ = 1, 2000 do\n"
          "  x = x ~ (x << 13); x = x ~ (x >> 7); x = x ~ (x << 17)\n"
          "  check(x)\n"
          "  check(x // 1000 * 1000)\n"
          "  check(x // 1000000000 * 1000000000)\n"
          "end\n");
    sl_vm_close(L);
}
END_TEST

START_TEST(test_time_truncate)
{
    lua_State *L = vm();

    ck_assert(integer(L, "return sluice.time.truncate('2024-05-01T12:34:56.789Z', '1h')") ==
              INT64_C(1714564800000000000));
    ck_assert(integer(L, "return sluice.time.truncate('2024-05-01T12:34:56.789Z', '10m')") ==
              INT64_C(1714566600000000000));
    ck_assert(integer(L, "return sluice.time.truncate('2024-05-01T12:34:56.789Z', '1d')") ==
              INT64_C(1714521600000000000));
    /* weeks count from the epoch (a Thursday) */
    ck_assert_str_eq(string(L, "return sluice.time.format(sluice.time.truncate("
                               "'2024-05-01T12:00:00Z', '1w'))"),
                     "2024-04-25T00:00:00Z");
    /* integer durations; nanosecond exactness above 2^53 */
    ck_assert(integer(L, "return sluice.time.truncate(1714564800123456789, 1000)") ==
              INT64_C(1714564800123456000));
    ck_assert(integer(L, "return sluice.time.truncate(1714564800123456789, '1us')") ==
              INT64_C(1714564800123456000));
    ck_assert(integer(L, "return sluice.time.truncate(9007199254740993, 1)") ==
              INT64_C(9007199254740993));
    ck_assert(integer(L, "return sluice.time.truncate(9007199254740993, 2)") ==
              INT64_C(9007199254740992));
    /* negative times floor, they do not round toward zero */
    ck_assert(integer(L, "return sluice.time.truncate(-1, '1s')") == -INT64_C(1000000000));
    ck_assert(integer(L, "return sluice.time.truncate(-1000000000, '1s')") ==
              -INT64_C(1000000000));
    ck_assert(integer(L, "return sluice.time.truncate(-1000000001, '1s')") ==
              -INT64_C(2000000000));
    ck_assert(integer(L, "return sluice.time.truncate(-1500000000, 1000000000)") ==
              -INT64_C(2000000000));
    ck_assert_str_eq(string(L, "return sluice.time.format(sluice.time.truncate("
                               "'1969-12-31T23:59:59.5Z', '1h'))"),
                     "1969-12-31T23:00:00Z");
    ck_assert(integer(L, "return sluice.time.truncate(0, '1h')") == 0);
    ck_assert(integer(L, "return sluice.time.truncate(1, '1d')") == 0);
    /* the edges of the range */
    ck_assert(integer(L, "return sluice.time.truncate(math.mininteger, 1)") == INT64_MIN);
    ck_assert(integer(L, "return sluice.time.truncate(math.maxinteger, '1s')") ==
              INT64_C(9223372036000000000));
    ck_assert(integer(L, "return sluice.time.truncate(math.maxinteger, math.maxinteger)") ==
              INT64_MAX);
    ck_assert(integer(L, "return sluice.time.truncate(-1, math.maxinteger)") ==
              -INT64_MAX);
    sl_vm_close(L);
}
END_TEST

START_TEST(test_time_duration)
{
    lua_State *L = vm();

    ck_assert(integer(L, "return sluice.time.duration('1ns')") == 1);
    ck_assert(integer(L, "return sluice.time.duration('90s')") == INT64_C(90000000000));
    ck_assert(integer(L, "return sluice.time.duration('1h30m')") == INT64_C(5400000000000));
    ck_assert(integer(L, "return sluice.time.duration('2w')") == INT64_C(1209600000000000));
    ck_assert(integer(L, "return sluice.time.duration('1d1ms')") == INT64_C(86400001000000));
    ck_assert(integer(L, "return sluice.time.duration(250)") == 250);
    sl_vm_close(L);
}
END_TEST

START_TEST(test_time_now)
{
    lua_State *L = vm();

    sl_time_set_fake(INT64_C(1714564800123456789));
    ck_assert(integer(L, "return sluice.time.now()") == INT64_C(1714564800123456789));
    ck_assert_str_eq(string(L, "return sluice.time.format(sluice.time.now())"),
                     "2024-05-01T12:00:00.123456789Z");
    sl_time_set_fake(0);
    int64_t before = sl_now_ns();
    lua_Integer now = integer(L, "return sluice.time.now()");
    int64_t after = sl_now_ns();
    ck_assert(before <= now && now <= after);
    sl_vm_close(L);
}
END_TEST

/* ---- sluice.hash ---- */

static const char fox[] = "The quick brown fox jumps over the lazy dog";
static const char hex64[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/* XXH64 digests; `printf %s 'abc' | xxhsum -H64` (seed 0) prints the same. Lengths cover
 * every path: the tail bytes, the 4- and 8-byte steps, one and more 32-byte stripes. */
static const struct {
    const char *s;
    size_t len;
    int64_t seed;
    uint64_t want;
} vectors[] = {
    {"", 0, 0, UINT64_C(0xef46db3751d8e999)},
    {"a", 1, 0, UINT64_C(0xd24ec4f1a98c6e5b)},
    {"42", 2, 0, UINT64_C(0x6de6f5d076d742b9)},
    {"abc", 3, 0, UINT64_C(0x44bc2cf5ad770999)},
    {"abc", 3, 1, UINT64_C(0xbea9ca8199328908)},
    {"abc", 3, 42, UINT64_C(0x13c1d910702770e6)},
    {"abc", 3, -1, UINT64_C(0x28306e589cc02176)}, /* seed 0xffffffffffffffff */
    {"a\0b", 3, 0, UINT64_C(0xb51b25d68d1338c1)},
    {"xxhash", 6, 0, UINT64_C(0x32dd38952c4bc720)},
    {"user_42", 7, 0, UINT64_C(0x42d3acba1377e487)},
    {"user_42", 7, 7, UINT64_C(0xaa0a64344184f7ab)},
    {"abcdefgh", 8, 0, UINT64_C(0x3ad351775b4634b7)},
    {"abcdefghijkl", 12, 0, UINT64_C(0x4b09b7d3a233d4b3)},
    {hex64, 32, 0, UINT64_C(0x642a94958e71e6c5)},
    {"0123456789abcdef0123456789abcdef0", 33, 0, UINT64_C(0xe87684f08d6d0816)},
    {fox, 43, 0, UINT64_C(0x0b242d361fda71bc)},
    {fox, 43, 42, UINT64_C(0xaa9f288a8baa3d3f)},
    {hex64, 64, 0, UINT64_C(0x1af3ac4760fe2f85)},
};

START_TEST(test_hash_vectors)
{
    struct sl_error err;
    lua_State *L = vm();

    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const char *s = vectors[i].s;
        size_t len = vectors[i].len;
        uint64_t want = vectors[i].want;

        ck_assert_msg(sl_lua_sluice_hash(s, len, (uint64_t)vectors[i].seed) == want,
                      "vector %zu: C", i);

        lua_getglobal(L, "sluice");
        lua_getfield(L, -1, "hash");
        lua_remove(L, -2);
        lua_pushlstring(L, s, len);
        lua_pushinteger(L, vectors[i].seed);
        ck_assert_msg(sl_vm_pcall(L, 2, 1, &err) == 0, "vector %zu: %s", i, err.msg);
        ck_assert_msg(lua_isinteger(L, -1), "vector %zu: not an integer", i);
        ck_assert_msg((uint64_t)lua_tointeger(L, -1) == want, "vector %zu: Lua %llx", i,
                      (unsigned long long)lua_tointeger(L, -1));
        lua_pop(L, 1);

        lua_getglobal(L, "sluice");
        lua_getfield(L, -1, "hash_bucket");
        lua_remove(L, -2);
        lua_pushlstring(L, s, len);
        lua_pushinteger(L, 1000);
        lua_pushinteger(L, vectors[i].seed);
        ck_assert_msg(sl_vm_pcall(L, 3, 1, &err) == 0, "vector %zu: %s", i, err.msg);
        ck_assert_msg(lua_isinteger(L, -1) && (uint64_t)lua_tointeger(L, -1) == want % 1000,
                      "vector %zu: bucket", i);
        lua_pop(L, 1);
    }

    /* A long input, from Lua; the seed defaults to 0 (nil too). */
    ck_assert((uint64_t)integer(L, "return sluice.hash(string.rep('sluice', 100))") ==
              UINT64_C(0xed12e057ad90b609));
    ck_assert((uint64_t)integer(L, "return sluice.hash('abc', nil)") ==
              UINT64_C(0x44bc2cf5ad770999));
    ck_assert_str_eq(string(L, "return string.format('%016x', sluice.hash('abc'))"),
                     "44bc2cf5ad770999");
    ck_assert_str_eq(string(L, "return string.format('%016x', sluice.hash(''))"),
                     "ef46db3751d8e999");
    ck_assert(integer(L, "return sluice.hash('')") < 0); /* the top bit: a negative integer */
    sl_vm_close(L);
}
END_TEST

START_TEST(test_hash_keys)
{
    lua_State *L = vm();

    ok(L, "local h = sluice.hash\n"
          "assert(h(42) == h('42'))\n"
          "assert(h(-7) == h('-7'))\n"
          "assert(h(math.mininteger) == h('-9223372036854775808'))\n"
          "assert(h('a\\0b') ~= h('a') and h('a\\0b') ~= h('a\\0c'))\n"
          "assert(h('k', 1) ~= h('k', 2) and h('k', 0) == h('k'))\n"
          "assert(h('k') == h('k'))\n");
    ck_assert((uint64_t)integer(L, "return sluice.hash(42)") == UINT64_C(0x6de6f5d076d742b9));
    ck_assert((uint64_t)integer(L, "return sluice.hash(math.mininteger)") ==
              UINT64_C(0x9e606ab2dd272c10));
    sl_vm_close(L);
}
END_TEST

START_TEST(test_hash_bucket)
{
    lua_State *L = vm();

    ck_assert(integer(L, "return sluice.hash_bucket('abc', 10)") ==
              (lua_Integer)(UINT64_C(0x44bc2cf5ad770999) % 10));
    ck_assert(integer(L, "return sluice.hash_bucket('', 7)") ==
              (lua_Integer)(UINT64_C(0xef46db3751d8e999) % 7));
    ck_assert(integer(L, "return sluice.hash_bucket('', math.maxinteger)") ==
              (lua_Integer)(UINT64_C(0xef46db3751d8e999) % (uint64_t)INT64_MAX));
    ck_assert(integer(L, "return sluice.hash_bucket('abc', 1)") == 0);
    ck_assert(integer(L, "return sluice.hash_bucket('abc', 100, 42)") ==
              (lua_Integer)(UINT64_C(0x13c1d910702770e6) % 100));
    ck_assert(integer(L, "return sluice.hash_bucket(42, 1000)") ==
              (lua_Integer)(UINT64_C(0x6de6f5d076d742b9) % 1000));
    /* in range and spread evenly: 10,000 keys over 10 buckets, each within 15% of 1,000 */
    ok(L, "local counts = {}\n"
          "for b = 0, 9 do counts[b] = 0 end\n"
          "for i = 1, 10000 do\n"
          "  local b = sluice.hash_bucket('user_' .. i, 10)\n"
          "  assert(math.type(b) == 'integer' and b >= 0 and b < 10, b)\n"
          "  counts[b] = counts[b] + 1\n"
          "end\n"
          "for b = 0, 9 do\n"
          "  assert(counts[b] > 850 and counts[b] < 1150, b .. ': ' .. counts[b])\n"
          "end\n");
    sl_vm_close(L);
}
END_TEST

/* ---- errors ---- */

struct error_case {
    const char *src;
    const char *msg; /* the whole message */
};

#define BAD_TIME \
    "\" (expected e.g. \"2024-05-01T12:00:00Z\" or \"2024-05-01T14:00:00.123456789+02:00\")"
#define BAD_DURATION \
    "\" (expected <integer><unit> groups, units ns us ms s m h d w, e.g. \"10m\" or \"1h30m\")"
#define X64 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static const struct error_case errors[] = {
    /* sluice.time.parse */
    {"return sluice.time.parse('2024-13-01T00:00:00Z')",
     "t.lua:1: sluice.time.parse: invalid RFC 3339 time \"2024-13-01T00:00:00Z" BAD_TIME},
    {"return sluice.time.parse('2024-02-30')",
     "t.lua:1: sluice.time.parse: invalid RFC 3339 time \"2024-02-30" BAD_TIME},
    {"return sluice.time.parse('2263-01-01T00:00:00Z')", /* beyond int64 nanoseconds */
     "t.lua:1: sluice.time.parse: invalid RFC 3339 time \"2263-01-01T00:00:00Z" BAD_TIME},
    {"return sluice.time.parse('')",
     "t.lua:1: sluice.time.parse: invalid RFC 3339 time \"" BAD_TIME},
    {"return sluice.time.parse(string.rep('x', 100))",
     "t.lua:1: sluice.time.parse: invalid RFC 3339 time \"" X64 "..." BAD_TIME},
    {"return sluice.time.parse('2024-05-01\\n\\0z')",
     "t.lua:1: sluice.time.parse: invalid RFC 3339 time \"2024-05-01??z" BAD_TIME},
    {"return sluice.time.parse()",
     "t.lua:1: sluice.time.parse: expected an RFC 3339 string or integer nanoseconds, got no "
     "value"},
    {"return sluice.time.parse(nil)",
     "t.lua:1: sluice.time.parse: expected an RFC 3339 string or integer nanoseconds, got nil"},
    {"return sluice.time.parse(1.5e18)",
     "t.lua:1: sluice.time.parse: expected an RFC 3339 string or integer nanoseconds, got a "
     "float"},
    {"return sluice.time.parse(sluice.null)",
     "t.lua:1: sluice.time.parse: expected an RFC 3339 string or integer nanoseconds, got null"},
    {"return sluice.time.parse({})",
     "t.lua:1: sluice.time.parse: expected an RFC 3339 string or integer nanoseconds, got "
     "table"},
    /* sluice.time.format */
    {"return sluice.time.format('yesterday')",
     "t.lua:1: sluice.time.format: invalid RFC 3339 time \"yesterday" BAD_TIME},
    {"return sluice.time.format(os.time() * 1e9)",
     "t.lua:1: sluice.time.format: expected an RFC 3339 string or integer nanoseconds, got a "
     "float"},
    {"return sluice.time.format(true)",
     "t.lua:1: sluice.time.format: expected an RFC 3339 string or integer nanoseconds, got "
     "boolean"},
    /* sluice.time.truncate */
    {"return sluice.time.truncate('soon', '1h')",
     "t.lua:1: sluice.time.truncate: invalid RFC 3339 time \"soon" BAD_TIME},
    {"return sluice.time.truncate(0, '1x')",
     "t.lua:1: sluice.time.truncate: invalid duration \"1x" BAD_DURATION},
    {"return sluice.time.truncate(0, '0s')",
     "t.lua:1: sluice.time.truncate: invalid duration \"0s" BAD_DURATION},
    {"return sluice.time.truncate(0, 0)",
     "t.lua:1: sluice.time.truncate: a duration must be > 0, got 0"},
    {"return sluice.time.truncate(0, -5)",
     "t.lua:1: sluice.time.truncate: a duration must be > 0, got -5"},
    {"return sluice.time.truncate(0, 1.5)",
     "t.lua:1: sluice.time.truncate: expected a duration string (\"10m\") or integer "
     "nanoseconds, got a float"},
    {"return sluice.time.truncate(0)",
     "t.lua:1: sluice.time.truncate: expected a duration string (\"10m\") or integer "
     "nanoseconds, got no value"},
    {"return sluice.time.truncate(math.mininteger, '1s')",
     "t.lua:1: sluice.time.truncate: the result is out of range"},
    /* sluice.time.duration */
    {"return sluice.time.duration('')",
     "t.lua:1: sluice.time.duration: invalid duration \"" BAD_DURATION},
    {"return sluice.time.duration('1h 30m')",
     "t.lua:1: sluice.time.duration: invalid duration \"1h 30m" BAD_DURATION},
    {"return sluice.time.duration('-1h')",
     "t.lua:1: sluice.time.duration: invalid duration \"-1h" BAD_DURATION},
    {"return sluice.time.duration(0)",
     "t.lua:1: sluice.time.duration: a duration must be > 0, got 0"},
    {"return sluice.time.duration(false)",
     "t.lua:1: sluice.time.duration: expected a duration string (\"10m\") or integer "
     "nanoseconds, got boolean"},
    /* sluice.hash */
    {"return sluice.hash()", "t.lua:1: sluice.hash: expected a string or an integer, got no value"},
    {"return sluice.hash(nil)", "t.lua:1: sluice.hash: expected a string or an integer, got nil"},
    {"return sluice.hash(1.5)",
     "t.lua:1: sluice.hash: expected a string or an integer, got a float"},
    {"return sluice.hash({})", "t.lua:1: sluice.hash: expected a string or an integer, got table"},
    {"return sluice.hash(sluice.null)",
     "t.lua:1: sluice.hash: expected a string or an integer, got null"},
    {"return sluice.hash('k', 1.5)",
     "t.lua:1: sluice.hash: the seed must be an integer, got a float"},
    {"return sluice.hash('k', '7')",
     "t.lua:1: sluice.hash: the seed must be an integer, got string"},
    /* sluice.hash_bucket */
    {"return sluice.hash_bucket('k', 0)",
     "t.lua:1: sluice.hash_bucket: the bucket count must be >= 1, got 0"},
    {"return sluice.hash_bucket('k', -3)",
     "t.lua:1: sluice.hash_bucket: the bucket count must be >= 1, got -3"},
    {"return sluice.hash_bucket('k', 2.0)",
     "t.lua:1: sluice.hash_bucket: the bucket count must be an integer >= 1, got a float"},
    {"return sluice.hash_bucket('k')",
     "t.lua:1: sluice.hash_bucket: the bucket count must be an integer >= 1, got no value"},
    {"return sluice.hash_bucket(nil, 3)",
     "t.lua:1: sluice.hash_bucket: expected a string or an integer, got nil"},
    {"return sluice.hash_bucket('k', 3, {})",
     "t.lua:1: sluice.hash_bucket: the seed must be an integer, got table"},
    /* read-only tables */
    {"sluice.x = 1", "t.lua:1: attempt to modify read-only table"},
    {"sluice.null = 1", "t.lua:1: attempt to modify read-only table"},
    {"sluice.hash = function() return 0 end", "t.lua:1: attempt to modify read-only table"},
    {"sluice.time = {}", "t.lua:1: attempt to modify read-only table"},
    {"sluice.time.parse = print", "t.lua:1: attempt to modify read-only table"},
    {"sluice.time.extra = 1", "t.lua:1: attempt to modify read-only table"},
    {"sluice.json.encode = nil", "t.lua:1: attempt to modify read-only table"},
    /* regression: rawset wrote into the proxy and shadowed the library's value */
    {"rawset(sluice, 'null', 5)", "t.lua:1: attempt to modify read-only table"},
    {"rawset(sluice.time, 'parse', print)", "t.lua:1: attempt to modify read-only table"},
    {"rawset(string, 'upper', print)", "t.lua:1: attempt to modify read-only table"},
    {"rawset(math, 'pi', 3)", "t.lua:1: attempt to modify read-only table"},
    {"setmetatable(sluice, {})", "t.lua:1: cannot change a protected metatable"},
    {"setmetatable(sluice.time, {})", "t.lua:1: cannot change a protected metatable"},
};

START_TEST(test_errors)
{
    const struct error_case *c = &errors[_i];
    struct sl_error err;
    lua_State *L = vm();

    ck_assert_msg(run(L, c->src, 0, &err) == SL_ESCRIPT, "case %d accepted: %s", _i, c->src);
    ck_assert_msg(strcmp(err.msg, c->msg) == 0, "case %d: %s\n want: %s\n  got: %s", _i, c->src,
                  c->msg, err.msg);
    ck_assert_int_eq(lua_gettop(L), 0);
    /* the module is unharmed */
    ok(L, "assert(sluice.time.parse('1970-01-01T00:00:01Z') == 1000000000)\n"
          "assert(sluice.null == cjson.null and sluice.json == cjson)\n");
    sl_vm_close(L);
}
END_TEST

/* Errors are ordinary Lua errors: pcall catches them; a nested call names its own line. */
START_TEST(test_error_position)
{
    struct sl_error err;
    lua_State *L = vm();

    ck_assert_str_eq(string(L, "local ok, e = pcall(function()\n"
                               "  return sluice.time.parse('x')\n"
                               "end)\n"
                               "assert(not ok)\n"
                               "return e"),
                     "t.lua:2: sluice.time.parse: invalid RFC 3339 time \"x" BAD_TIME);
    static const char nested[] = "local function bucket(r)\n"
                                 "  return sluice.hash_bucket(r.id, 0)\n"
                                 "end\n"
                                 "local b = bucket({ id = 'a' })\n"
                                 "return b\n";
    static const char want[] = "t.lua:2: sluice.hash_bucket: the bucket count must be >= 1, "
                               "got 0\nstack traceback:\n\tt.lua:2: in ";
    ck_assert_int_eq(run(L, nested, 1, &err), SL_ESCRIPT);
    ck_assert_msg(strncmp(err.msg, want, sizeof(want) - 1) == 0, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "\n\tt.lua:4: in main chunk") != NULL, "%s", err.msg);
    sl_vm_close(L);
}
END_TEST

/* ---- read-only ---- */

START_TEST(test_read_only)
{
    lua_State *L = vm();

    ok(L, "assert(getmetatable(sluice) == false and getmetatable(sluice.time) == false)\n"
          "assert(type(sluice) == 'table' and type(sluice.time) == 'table')\n"
          "local function keys(t)\n"
          "  local k = {}\n"
          "  for name, v in pairs(t) do k[#k + 1] = name .. ':' .. type(v) end\n"
          "  table.sort(k)\n"
          "  return table.concat(k, ' ')\n"
          "end\n"
          "assert(keys(sluice) == 'hash:function hash_bucket:function json:table "
          "null:userdata time:table', keys(sluice))\n"
          "assert(keys(sluice.time) == 'duration:function format:function now:function "
          "parse:function truncate:function', keys(sluice.time))\n"
          "local ok = pcall(function() sluice.time.parse = nil end)\n"
          "assert(not ok and type(sluice.time.parse) == 'function')\n");
    sl_vm_close(L);
}
END_TEST

/* ---- in a repository ---- */

/* Definitions and their transformations see the module: at evaluation time and at ingest. */
START_TEST(test_in_definitions)
{
    static const char src[] =
        "local hour = sluice.time.duration('1h')\n"
        "local start = sluice.time.format('2024-01-01T01:00:00+01:00')\n"
        "local user = Entity { name = 'user', join_keys = { Field('user_id', String) } }\n"
        "local clicks = StreamSource { name = 'clicks',\n"
        "  schema = { Field('user_id', String), Field('ts', Timestamp), Field('note', String) },\n"
        "  post_processor = function(r)\n"
        "    if r.note == sluice.null then r.note = 'none' end\n"
        "    return r\n"
        "  end }\n"
        "StreamFeatureView { name = 'v', source = clicks, entities = { user }, online = true,\n"
        "  feature_start_time = start,\n"
        "  transformation = function(r)\n"
        "    return { user_id = r.user_id, ts = r.ts, note = r.note,\n"
        "             hour = sluice.time.truncate(r.ts, hour),\n"
        "             bucket = sluice.hash_bucket(r.user_id, 16) }\n"
        "  end,\n"
        "  features = { Attribute('hour', Timestamp), Attribute('bucket', Int64) } }\n";
    struct sl_file f = {"repo.lua", src, sizeof(src) - 1};
    struct sl_error err = {0};
    cJSON *repo = NULL;
    lua_State *L = vm();

    ck_assert_msg(sl_defs_eval(L, &f, 1, &repo, &err) == 0, "%s", err.msg);
    const cJSON *fv = cJSON_GetArrayItem(cJSON_GetObjectItem(repo, "feature_views"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(fv, "feature_start_time")->valuestring,
                     "2024-01-01T00:00:00Z");
    cJSON_Delete(repo);

    ck_assert_int_eq(sl_defs_push_function(L, "clicks", "post_processor"), 0);
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "u1");
    lua_setfield(L, -2, "user_id");
    lua_pushliteral(L, "2024-05-01T12:34:56.5Z");
    lua_setfield(L, -2, "ts");
    lua_pushlightuserdata(L, NULL); /* a null field, as transform.c passes it */
    lua_setfield(L, -2, "note");
    ck_assert_msg(sl_vm_pcall(L, 1, 1, &err) == 0, "%s", err.msg);
    lua_getfield(L, -1, "note");
    ck_assert_str_eq(lua_tostring(L, -1), "none");
    lua_pop(L, 1);

    ck_assert_int_eq(sl_defs_push_function(L, "v", "transformation"), 0);
    lua_insert(L, -2); /* the post-processed record is the argument */
    ck_assert_msg(sl_vm_pcall(L, 1, 1, &err) == 0, "%s", err.msg);
    lua_getfield(L, -1, "hour");
    ck_assert(lua_isinteger(L, -1));
    ck_assert(lua_tointeger(L, -1) == INT64_C(1714564800000000000));
    lua_pop(L, 1);
    lua_getfield(L, -1, "bucket");
    ck_assert(lua_isinteger(L, -1));
    ck_assert(lua_tointeger(L, -1) == (lua_Integer)(sl_lua_sluice_hash("u1", 2, 0) % 16));
    lua_pop(L, 2);
    ck_assert_int_eq(lua_gettop(L), 0);

    /* A repository that shadows the name keeps the module for everyone else. */
    static const char shadow[] = "sluice = 5\nassert(sluice == 5)\n";
    struct sl_file g = {"shadow.lua", shadow, sizeof(shadow) - 1};
    ck_assert_msg(sl_defs_eval(L, &g, 1, &repo, &err) == 0, "%s", err.msg);
    cJSON_Delete(repo);
    ok(L, "assert(sluice.time.duration('1s') == 1000000000)");
    sl_vm_close(L);
}
END_TEST


/* ---- hostile code: issue 17's reproductions, each stopped with a Lua error ---- */

struct hostile_case {
    const char *src;
    const char *word; /* expected in the error message */
};

static const struct hostile_case hostile[] = {
    /* lua-cjson's depth knobs are not reachable; deep nesting is an error, not a SIGSEGV */
    {"cjson.decode_max_depth(100000000)", "decode_max_depth"},
    {"cjson.encode_max_depth(1e8)", "encode_max_depth"},
    {"sluice.json.decode_max_depth(100000000)", "decode_max_depth"},
    {"local j = cjson.new() j.decode_max_depth(1e8)", "field 'new'"},
    {"cjson.decode(string.rep('[', 400000) .. string.rep(']', 400000))", "too many nested"},
    {"local t = {} local x = t for i = 1, 250000 do x[1] = {} x = x[1] end cjson.encode(t)",
     "excessive nesting"},
    /* the budget cannot be caught or outlived */
    {"xpcall(function() while true do end end, function() while true do end end)",
     "instruction limit exceeded"},
    {"while true do xpcall(function() while true do end end, function(e) return e end) end",
     "instruction limit exceeded"},
    {"local ok, e = pcall(function() while true do end end) error('caught: ' .. tostring(e))",
     "instruction limit exceeded"},
    {"while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
     "instruction limit exceeded"},
    {"local t = {} local ok = pcall(function() for i = 1, 1e9 do t[i] = {i} end end)\n"
     "while true do end",
     "memory limit exceeded"},
    {"local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
     "while true do end",
     "instruction limit exceeded"},
    /* C library functions that loop without returning to the VM */
    {"string.rep('', 2^40)", "instruction limit exceeded"},
    {"string.rep('', '1099511627776')", "instruction limit exceeded"},
    {"string.rep('', 2^40, '')", "instruction limit exceeded"},
    {"table.move({}, 1, 2^40, 2)", "instruction limit exceeded"},
    {"table.move({}, math.mininteger, math.maxinteger, 2)", "instruction limit exceeded"},
    {"table.move({}, 1, 10, math.maxinteger)", "destination wrap around"},
    {"table.concat({}, '', 1, 2^40)", "instruction limit exceeded"},
    {"table.unpack({}, 1, 2^40)", "instruction limit exceeded"},
    {"table.unpack({}, 1, 2e6)", "too many results"},
    {"local t = {} for i = 1, 1e5 do t[i] = '' end while true do table.concat(t) end",
     "instruction limit exceeded"},
    {"local s = string.rep('x', 1 << 22) while true do utf8.len(s) end",
     "instruction limit exceeded"},
    {"local s = string.rep('x', 1 << 22) while true do s:find('y', 1, true) end",
     "instruction limit exceeded"},
    {"local t = {} for i = 1, 1e5 do t[i] = i end while true do table.insert(t, 1, 0) end",
     "instruction limit exceeded"},
    /* a full collection per step: under valgrind the wall-clock bound can come first */
    {"while true do collectgarbage() end", "limit exceeded"},
    {"string.format('%999999999d', 1)", "invalid conversion"},
    {"string.format('%99.99999f', 1)", "invalid conversion"},
    /* patterns: backtracking is charged step by step */
    {"string.find(string.rep('x', 100000), '.-.-.-.-.-y')", "instruction limit exceeded"},
    {"string.find(('a'):rep(26), ('a?'):rep(26) .. ('a'):rep(26))",
     "instruction limit exceeded"},
    {"string.match(string.rep('a', 5000), '(.*)(.*)(.*)(.*)b')", "instruction limit exceeded"},
    {"string.gsub(string.rep('(', 100000), '%b()', '')", "instruction limit exceeded"},
    {"for w in string.gmatch(string.rep('a', 100000), 'a*a*a*b') do end",
     "instruction limit exceeded"},
    {"string.find('x', string.rep('(', 40))", "too many captures"},
    {"string.find(string.rep('a', 300), string.rep('a?', 300))", "pattern too complex"},
    /* deep recursion: a plain error, found quickly */
    {"local function f(n) return f(n + 1) + 1 end f(1)",
     "t.lua:1: stack overflow (more than 2000 nested calls)"},
    {"local function f(n) return f(n + 1) + 1 end\n"
     "for i = 1, 1e9 do pcall(f, 1) end", "instruction limit exceeded"},
    {"local function f(n) if n == 0 then return 0 end return f(n - 1) + 1 end\n"
     "assert(f(1900) == 1900)\n"
     "local co = coroutine.wrap(function() return f(1e6) end) co()", "stack overflow"},
};

START_TEST(test_hostile)
{
    const struct hostile_case *c = &hostile[_i];
    struct sl_error err;
    lua_State *L = vm();

    int rc = run(L, c->src, 0, &err);
    ck_assert_msg(rc == SL_ESCRIPT, "case %d: not stopped:\n%s", _i, c->src);
    ck_assert_msg(strstr(err.msg, c->word) != NULL, "case %d: want \"%s\" in: %s", _i, c->word,
                  err.msg);
    ck_assert_msg(strlen(err.msg) < 2048, "case %d: message of %zu bytes", _i, strlen(err.msg));
    ck_assert_int_eq(lua_gettop(L), 0);
    /* the next call has a fresh budget and the state works */
    ck_assert_int_eq(integer(L, "local n = 0 for i = 1, 1000 do n = n + i end return n"), 500500);
    ck_assert_str_eq(string(L, "return (('a,b'):gsub(',', ';'))"), "a;b");
    sl_vm_close(L);
}
END_TEST

/* The wall clock bounds a call whose instructions are cheap but whose C work is not. */
START_TEST(test_time_limit)
{
    struct sl_error err = {0};
    struct sl_vm_limits lim = {.mem_bytes = 64u << 20, .instructions = 1L << 60, .wall_ms = 100};
    lua_State *L = sl_vm_new(&lim, &err);
    ck_assert_ptr_nonnull(L);

    int rc = run(L, "local s = string.rep('x', 1 << 22)\n"
                    "while true do local t = s .. 'y' end\n",
                 0, &err);
    ck_assert_int_eq(rc, SL_ESCRIPT);
    ck_assert_msg(strstr(err.msg, "time limit exceeded") != NULL, "%s", err.msg);
    rc = run(L, "while true do pcall(function() while true do end end) end", 0, &err);
    ck_assert_int_eq(rc, SL_ESCRIPT);
    ck_assert_msg(strcmp(err.msg, "t.lua:1: time limit exceeded") == 0, "%s", err.msg);
    ck_assert_int_eq(integer(L, "return 6 * 7"), 42);
    sl_vm_close(L);
}
END_TEST

/* One budget for a whole repository: many files that each fit the budget together do not. */
START_TEST(test_budget_per_apply)
{
    struct sl_error err = {0};
    struct sl_vm_limits lim = {.mem_bytes = 32u << 20, .instructions = 2000000};
    static const char spin[] = "for i = 1, 600000 do end\n"; /* > 600k instructions */
    struct sl_file files[4] = {
        {"a.lua", spin, sizeof(spin) - 1},
        {"b.lua", spin, sizeof(spin) - 1},
        {"c.lua", spin, sizeof(spin) - 1},
        {"d.lua", spin, sizeof(spin) - 1},
    };
    cJSON *repo = NULL;
    lua_State *L = sl_vm_new(&lim, &err);
    ck_assert_ptr_nonnull(L);

    ck_assert_msg(sl_defs_eval(L, files, 1, &repo, &err) == 0, "%s", err.msg);
    cJSON_Delete(repo);
    ck_assert_int_eq(sl_defs_eval(L, files, 4, &repo, &err), SL_ESCRIPT);
    ck_assert_msg(strstr(err.msg, "instruction limit exceeded") != NULL, "%s", err.msg);
    ck_assert_ptr_null(repo);
    sl_vm_close(L);
}
END_TEST

/* The bounded matcher answers as Lua's own string library does. Every expression below runs
 * in a plain state (the standard lstrlib) and in the sandbox; the results must be equal. */
static const char *const pattern_exprs[] = {
    "string.find('hello world', 'o w')",
    "string.find('hello world', 'o', 6)",
    "string.find('hello world', 'l+')",
    "string.find('hello', '')",
    "string.find('hello', '', 10)",
    "string.find('hello', '', 6)",
    "string.find('a.b', '.', 1, true)",
    "string.find('abc', 'b', -1)",
    "string.find('abc', 'b', -10)",
    "string.find('  key = value  ', '^%s*(%w+)%s*=%s*(%w+)%s*$')",
    "string.match('2024-05-01', '(%d+)-(%d+)-(%d+)')",
    "string.match('hello', '()ll()')",
    "string.match('[[x]]', '%[(.-)%]')",
    "string.match('f(a(b)c)d', '%b()')",
    "string.match('THE (quick) fox', '%f[%a]%a+')",
    "string.match('hello', '^(h)(e)')",
    "string.match('abcabc', '(abc)%1')",
    "string.match('x = 10', '(%a+)%s*=%s*(%d+)')",
    "string.match('aaa', 'a-b')",
    "string.match('aaab', 'a-b')",
    "string.match('aaa', '^a-$')",
    "string.match('key]', '[]]')",
    "string.match('a-z', '[a%-z]+')",
    "string.match('Hello123', '[^%d]+')",
    "string.match('x^y', 'x^y')",
    "string.match('abc', 'b$c')",
    "string.match('a.b', '%.')",
    "string.match('abc', '.?.?.?.?')",
    "string.match('', '.*')",
    "string.match('hello', '%u')",
    "string.match('caps LOCK', '%u+')",
    "string.match('tab\\there', '%c')",
    "string.match('x1_y', '[%w_]+')",
    "string.match('0x1F', '0x(%x+)')",
    "string.match('a,b,,c', '([^,]*),([^,]*),([^,]*)')",
    "string.gsub('hello world', 'o', '0')",
    "string.gsub('hello world', 'o', '0', 1)",
    "string.gsub('hello world', '(%w+)', '<%1>')",
    "string.gsub('hello world', '%w+', '%0 %0')",
    "string.gsub('hello', '', '-')",
    "string.gsub('abc', '%w', '%%')",
    "string.gsub('abc', '^a', 'x')",
    "string.gsub('$name is $age', '%$(%w+)', {name = 'ann', age = 7})",
    "string.gsub('$name is $x', '%$(%w+)', {name = 'ann'})",
    "string.gsub('a b c', '%a', function(c) return c:upper() end)",
    "string.gsub('a b c', '%a', function(c) if c == 'b' then return false end return 'z' end)",
    "string.gsub('abc', '()', '%1')",
    "string.gsub('one two', '(%w+) (%w+)', '%2 %1')",
    "string.gsub('x', 'x', 5)",
    "(function() local t = {} for k, v in string.gmatch('a=1, b=2', '(%w+)=(%w+)') do "
    "t[#t + 1] = k .. v end return table.concat(t, ';') end)()",
    "(function() local t = {} for w in string.gmatch('one two  three', '%a+') do "
    "t[#t + 1] = w end return table.concat(t, ';') end)()",
    "(function() local t = {} for p in string.gmatch('abc', '()') do "
    "t[#t + 1] = p end return table.concat(t, ';') end)()",
    "(function() local t = {} for w in string.gmatch('abc', '') do "
    "t[#t + 1] = '[' .. w .. ']' end return table.concat(t) end)()",
    "(function() local t = {} for w in string.gmatch('hello world', '%a+', 3) do "
    "t[#t + 1] = w end return table.concat(t, ';') end)()",
    "(function() local t = {} for w in string.gmatch('^a^b', '^%a') do "
    "t[#t + 1] = w end return table.concat(t, ';') end)()",
    "('x'):rep(3):find('xx', 2)",
    "select('#', string.find('abc', '(a)(b)(c)'))",
    "pcall(string.find, 'a', '%')",
    "pcall(string.find, 'a', '[a')",
    "pcall(string.find, 'a', '(a')",
    "pcall(string.find, 'a', 'a)')",
    "pcall(string.find, 'a', '%1')",
    "pcall(string.find, 'a', '%f')",
    "pcall(string.find, 'a', '%b')",
    "pcall(string.gsub, 'a', 'a', '%2')",
    "pcall(string.gsub, 'a', 'a', '%x')",
    "pcall(string.gsub, 'a', 'a', {a = {}})",
    "pcall(string.gsub, 'a', 'a', true)",
};

/* Runs "return <expr>" in L and describes the results as text into out. */
static void describe(lua_State *L, const char *expr, char *out, size_t size)
{
    char src[1024];
    int top = lua_gettop(L);
    size_t used = 0;

    snprintf(src, sizeof src, "return %s", expr);
    if (luaL_loadstring(L, src) != LUA_OK || lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK) {
        snprintf(out, size, "error: %s", lua_tostring(L, -1));
        lua_settop(L, top);
        return;
    }
    out[0] = '\0';
    for (int i = top + 1; i <= lua_gettop(L) && used < size; i++) {
        const char *v = luaL_tolstring(L, i, NULL);
        used += (size_t)snprintf(out + used, size - used, "%s%s:%s", i > top + 1 ? " " : "",
                                 luaL_typename(L, i), v);
        lua_pop(L, 1);
    }
    lua_settop(L, top);
}

/* The message of a library error without its "file:line:" prefix, which differs. */
static const char *strip_position(const char *s)
{
    const char *p = strstr(s, "string:1: ");
    return p ? p + 10 : s;
}

START_TEST(test_pattern_compat)
{
    lua_State *ref = luaL_newstate();
    lua_State *L = vm();
    char want[1024], got[1024];

    ck_assert_ptr_nonnull(ref);
    luaL_openlibs(ref);
    /* run the sandbox's expressions under its budget, as user code runs */
    sl_vm_budget_begin(L);
    for (size_t i = 0; i < sizeof pattern_exprs / sizeof pattern_exprs[0]; i++) {
        describe(ref, pattern_exprs[i], want, sizeof want);
        describe(L, pattern_exprs[i], got, sizeof got);
        ck_assert_msg(strcmp(strip_position(want), strip_position(got)) == 0,
                      "%s\n  lua:     %s\n  sandbox: %s", pattern_exprs[i], want, got);
    }
    sl_vm_budget_end(L);
    lua_close(ref);
    sl_vm_close(L);
}
END_TEST

static Suite *sluice_suite(void)
{
    Suite *s = suite_create("lua_sluice");
    TCase *tc = tcase_create("module");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_null);
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_time_parse);
    tcase_add_test(tc, test_time_format);
    tcase_add_test(tc, test_time_round_trip);
    tcase_add_test(tc, test_time_truncate);
    tcase_add_test(tc, test_time_duration);
    tcase_add_test(tc, test_time_now);
    tcase_add_test(tc, test_hash_vectors);
    tcase_add_test(tc, test_hash_keys);
    tcase_add_test(tc, test_hash_bucket);
    tcase_add_test(tc, test_read_only);
    tcase_add_test(tc, test_in_definitions);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_errors, 0, (int)(sizeof(errors) / sizeof(errors[0])));
    tcase_add_test(tc, test_error_position);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_hostile, 0, (int)(sizeof(hostile) / sizeof(hostile[0])));
    tcase_add_test(tc, test_time_limit);
    tcase_add_test(tc, test_budget_per_apply);
    tcase_add_test(tc, test_pattern_compat);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sluice_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
