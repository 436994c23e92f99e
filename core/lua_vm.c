/* Sandboxed Lua 5.4 states for user code.
 *
 * The sandbox is an allow-list (Redis script_lua.c): the base library without dofile, loadfile,
 * warn, with load restricted to text chunks and setmetatable refusing __gc (a finalizer would
 * run user code outside the instruction hook); string (without dump), table, math, utf8,
 * coroutine; os.time/clock/date; lua-cjson as `cjson`; the `sluice` module (lua_sluice.c).
 * The library tables are read-only proxies and the string metatable is hidden, so one piece of
 * user code cannot change the functions another piece (or the DSL prelude) relies on.
 *
 * Limits: a custom lua_Alloc counts every byte the state holds and refuses allocations past
 * the cap (Lua then raises its memory error, which sl_vm_pcall reports as "memory limit
 * exceeded"); a count hook adds up executed instructions over every coroutine of the state
 * and raises "instruction limit exceeded" once the per-call budget is spent; a wall-clock
 * deadline is checked there too. Once spent, the budget stays spent for the call (vm_ctx
 * .exhausted): the hook fires on every instruction and raises again, the sandbox's pcall,
 * xpcall and coroutine.resume pass the error on, and xpcall's handler runs as an ordinary
 * call after the unwinding (a message handler would run with the hook off). C library
 * functions that loop or copy without returning to the VM are charged by their work before
 * they run (guards[]); patterns use lua_match.c, which charges every matcher step.
 *
 * Per-state context lives behind lua_getextraspace (memcached proxy): a pointer to
 * struct vm_ctx, shared by every coroutine of the state (Lua copies the extra space into new
 * threads). */
#include "lua_vm.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lualib.h>

#include "error.h"
#include "log.h"
#include "lua_match.h"
#include "lua_sluice.h"
#include "plugin.h"

#define VM_DEFAULT_MEM ((size_t)64 << 20)
#define VM_DEFAULT_INSNS 5000000L
#define VM_HOOK_GRAIN 1000 /* instructions between two hook calls */
#define VM_TRACE_FRAMES 8  /* user frames shown in a traceback */
#define VM_MAX_DEPTH 2000  /* nested Lua calls: a deep stack makes every GC step slow */
#define VM_TRACE_LEVELS 64 /* stack levels a message handler looks at (getstack is O(level)) */
#define VM_DEFAULT_WALL_MS 10000L /* without a configured bound (the server's is 2000) */
/* Sanitizer builds run user code several times slower: the same code must pass there. */
#if defined(__SANITIZE_ADDRESS__)
#define VM_WALL_SCALE 5
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VM_WALL_SCALE 5
#endif
#endif
#ifndef VM_WALL_SCALE
#define VM_WALL_SCALE 1
#endif
#define VM_JSON_DEPTH 128  /* cjson nesting limits, fixed: the C parser recurses per level */
#define VM_BYTES_PER_INSN 64 /* bytes a C library function handles for one instruction */
#define VM_DEADLINE_ALLOC ((size_t)1 << 20) /* allocations this large check the deadline */
#define VM_REP_PER_INSN 16 /* string.rep copies counted as one instruction */
#define VM_COST_MAX (LONG_MAX / 4) /* costs saturate here: sums of a few never overflow */

/* Why a call's budget is spent for good (vm_ctx.exhausted). */
enum { VM_LIVE, VM_OUT_OF_INSNS, VM_OUT_OF_MEMORY, VM_OUT_OF_TIME };

struct vm_ctx {
    size_t used;       /* bytes currently allocated by the state */
    size_t cap;        /* allocation cap */
    long limit;        /* instructions per sl_vm_pcall */
    long executed;     /* instructions counted in the current call */
    int grain;         /* hook period */
    int mem_hit;       /* an allocation was refused during the current call */
    int insn_hit;      /* the instruction budget ran out during the current call */
    int depth;         /* sl_vm_pcall nesting: only the outermost call resets the budget */
    int exhausted;     /* VM_OUT_OF_*: set once, raised again at every hook until the end */
    long wall_ms;      /* wall-clock bound of an outermost call */
    int64_t deadline;  /* CLOCK_MONOTONIC ns the current outermost call must end by */
    char where[96];    /* "file:line" of user code last seen by the hook, or "" */
    char hit[96];      /* "file:line" where the budget ran out, or "" */
    void *user;        /* sl_vm_set_userdata */
};

static struct vm_ctx *ctx_of(lua_State *L)
{
    return *(struct vm_ctx **)lua_getextraspace(L);
}

/* ---- limits ---- */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct vm_ctx *c = ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize encodes the object type */

    if (nsize == 0) {
        free(ptr);
        c->used -= old;
        return NULL;
    }
    if (nsize > old && nsize - old > c->cap - c->used) {
        c->mem_hit = 1;
        return NULL; /* Lua runs an emergency collection, then raises LUA_ERRMEM */
    }
    /* A C function copying large strings in a loop may not reach the hook for long: large
     * allocations check the deadline too, and fail once it has passed. */
    if (c->depth > 0 && nsize > old && nsize - old >= VM_DEADLINE_ALLOC &&
        (c->exhausted || mono_ns() > c->deadline)) {
        if (!c->exhausted)
            c->exhausted = VM_OUT_OF_TIME;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    c->used = c->used - old + nsize;
    return p;
}

/* Copies "file:line" of a Lua function of a repository file into out, or leaves it. */
static void where_of(const lua_Debug *ar, char *out, size_t size)
{
    if (ar->source[0] == '@' && ar->currentline > 0)
        snprintf(out, size, "%s:%d", ar->short_src, ar->currentline);
}

static const char *const exhausted_msg[] = {
    [VM_OUT_OF_INSNS] = "instruction limit exceeded",
    [VM_OUT_OF_MEMORY] = "memory limit exceeded",
    [VM_OUT_OF_TIME] = "time limit exceeded",
};

static void vm_hook(lua_State *L, lua_Debug *ar);

/* Marks the call's budget spent (why: VM_OUT_OF_*), remembers where, switches L's hook to
 * every instruction and raises. Every later hook tick, in any coroutine, raises again, so
 * neither pcall nor a message handler can outlive the budget. */
static void exhaust(lua_State *L, int why, lua_Debug *ar)
{
    struct vm_ctx *c = ctx_of(L);
    lua_Debug here;

    if (!c->exhausted) {
        c->exhausted = why;
        c->hit[0] = '\0';
        if (ar == NULL && lua_getstack(L, 1, &here))
            ar = &here;
        if (ar != NULL && lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
            snprintf(c->hit, sizeof c->hit, "%s:%d", ar->short_src, ar->currentline);
    }
    if (lua_gethookcount(L) != 1 || lua_gethook(L) != vm_hook)
        lua_sethook(L, vm_hook, LUA_MASKCOUNT, 1);
    if (c->hit[0] != '\0')
        lua_pushfstring(L, "%s: %s", c->hit, exhausted_msg[c->exhausted]);
    else
        lua_pushstring(L, exhausted_msg[c->exhausted]);
    lua_error(L);
}

static void vm_hook(lua_State *L, lua_Debug *ar)
{
    struct vm_ctx *c = ctx_of(L);
    int n = lua_gethookcount(L);

    c->executed += n;
    if (c->exhausted)
        exhaust(L, c->exhausted, ar);
    if (lua_getinfo(L, "Sl", ar))
        where_of(ar, c->where, sizeof c->where);
    if (c->executed > c->limit)
        exhaust(L, VM_OUT_OF_INSNS, ar);
    if (mono_ns() > c->deadline)
        exhaust(L, VM_OUT_OF_TIME, ar);
    lua_Debug deep; /* O(min(depth, VM_MAX_DEPTH)): cheap unless the recursion is deep */
    if (lua_getstack(L, VM_MAX_DEPTH, &deep)) {
        if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
            lua_pushfstring(L, "%s:%d: stack overflow (more than %d nested calls)",
                            ar->short_src, ar->currentline, VM_MAX_DEPTH);
        else
            lua_pushfstring(L, "stack overflow (more than %d nested calls)", VM_MAX_DEPTH);
        lua_error(L);
    }
    if (n != c->grain) /* a thread left in per-instruction mode by an earlier call */
        lua_sethook(L, vm_hook, LUA_MASKCOUNT, c->grain);
}

void sl_vm_charge(lua_State *L, long units)
{
    struct vm_ctx *c = ctx_of(L);

    if (c->depth == 0)
        return;
    if (units > 0)
        c->executed = units > c->limit - c->executed ? c->limit + 1 : c->executed + units;
    if (c->exhausted)
        exhaust(L, c->exhausted, NULL);
    if (c->executed > c->limit)
        exhaust(L, VM_OUT_OF_INSNS, NULL);
}

/* ---- errors ---- */

/* 1 if msg already starts with "something:123: ". */
static int has_position(const char *msg)
{
    const char *p = msg;
    while (*p && *p != ':' && *p != '\n')
        p++;
    if (*p != ':' || p == msg)
        return 0;
    p++;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    return p[0] == ':' && p[1] == ' ';
}

/* Message handler: "file:line: message", plus the user frames when there are several.
 * It may run with hooks off (an error raised by the hook): it looks at VM_TRACE_LEVELS
 * levels at most, so a deep recursion costs no more than a shallow one. */
static int vm_msgh(lua_State *L)
{
    struct vm_ctx *c = ctx_of(L);
    const char *msg = lua_tostring(L, 1);
    lua_Debug ar;
    luaL_Buffer b;

    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    if (c->mem_hit && strstr(msg, "not enough memory") != NULL)
        msg = "memory limit exceeded";
    luaL_buffinit(L, &b);
    if (!has_position(msg)) {
        for (int level = 1; level <= VM_TRACE_LEVELS && lua_getstack(L, level, &ar); level++) {
            if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
                lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
                luaL_addvalue(&b);
                break;
            }
        }
    }
    luaL_addstring(&b, msg);

    int nuser = 0, more = 0;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (level > VM_TRACE_LEVELS) {
            more = 1;
            break;
        }
        if (lua_getinfo(L, "S", &ar) && ar.source[0] == '@')
            nuser++;
    }
    if (nuser > 1) {
        int shown = 0;
        luaL_addstring(&b, "\nstack traceback:");
        for (int level = 1; shown < VM_TRACE_FRAMES && level <= VM_TRACE_LEVELS &&
                            lua_getstack(L, level, &ar);
             level++) {
            if (!lua_getinfo(L, "Sln", &ar) || ar.source[0] != '@')
                continue;
            if (*ar.what == 'm')
                lua_pushfstring(L, "\n\t%s:%d: in main chunk", ar.short_src, ar.currentline);
            else if (ar.name != NULL)
                lua_pushfstring(L, "\n\t%s:%d: in function '%s'", ar.short_src,
                                ar.currentline, ar.name);
            else
                lua_pushfstring(L, "\n\t%s:%d: in function <%s:%d>", ar.short_src,
                                ar.currentline, ar.short_src, ar.linedefined);
            luaL_addvalue(&b);
            shown++;
        }
        if (shown < nuser || more)
            luaL_addstring(&b, "\n\t...");
    }
    luaL_pushresult(&b);
    return 1;
}

/* ---- the sandbox ---- */

/* load(chunk [, chunkname [, mode [, env]]]) with mode forced to "t". */
static int vm_load(lua_State *L)
{
    int n = lua_gettop(L);
    size_t len = 0;
    if (lua_type(L, 1) == LUA_TSTRING)
        lua_tolstring(L, 1, &len);
    sl_vm_charge(L, 1 + (long)(len / VM_BYTES_PER_INSN)); /* the parser reads it all */
    if (n < 3)
        lua_settop(L, 3); /* env stays "none" when absent: load keeps the global env */
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* setmetatable(t, mt) refusing a __gc field: a finalizer could run user code outside any
 * sl_vm_pcall (in lua_close, or during an allocation by the host), beyond the hook's reach. */
static int vm_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* ---- catching errors without outliving the budget ---- */

/* After a protected call inside user code failed: re-raises when the budget is spent (or the
 * memory cap was hit: status LUA_ERRMEM), so no pcall can swallow the budget error. */
static void rethrow_if_exhausted(lua_State *L, int status)
{
    struct vm_ctx *c = ctx_of(L);

    if (status == LUA_ERRMEM && c->depth > 0 && !c->exhausted)
        c->exhausted = VM_OUT_OF_MEMORY;
    if (c->exhausted && c->depth > 0)
        lua_error(L); /* the error object on top */
}

static int pcall_done(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        rethrow_if_exhausted(L, status);
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

/* pcall(f, ...): as the base library's, but the budget error passes through. */
static int vm_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    int st = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, pcall_done);
    return pcall_done(L, st, 0);
}

static int xpcall_done(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        rethrow_if_exhausted(L, status);
        /* The handler runs as an ordinary call after the unwinding, under the hook and the
         * budget (a real message handler may run with the hook off). Stack: h, true, err. */
        lua_pushvalue(L, 1);
        lua_insert(L, -2);
        int st = lua_pcall(L, 1, 1, 0);
        if (st != LUA_OK)
            rethrow_if_exhausted(L, st);
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

/* xpcall(f, h, ...): h gets the error object once f has failed, never as a message handler,
 * so the tracebacks it could build are lost (there is no debug library anyway) but it runs
 * under the budget; the budget error itself is never handed to it. */
static int vm_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushboolean(L, 1); /* f h a... true */
    lua_pushvalue(L, 1);   /* f h a... true f */
    lua_rotate(L, 3, 2);   /* f h true f a... */
    lua_remove(L, 1);      /* h true f a... */
    int st = lua_pcallk(L, n - 2, LUA_MULTRET, 0, 1, xpcall_done);
    return xpcall_done(L, st, 1);
}

/* coroutine.resume: as the library's, but a coroutine that spent the budget does not hand
 * its error back as a value. */
static int vm_resume(lua_State *L)
{
    lua_CFunction orig = lua_tocfunction(L, lua_upvalueindex(1));
    int n = orig(L);
    struct vm_ctx *c = ctx_of(L);
    if (c->exhausted && c->depth > 0)
        exhaust(L, c->exhausted, NULL);
    return n;
}

/* ---- C library functions that loop or allocate: charged before they run ---- */

static long cost_bytes(size_t n)
{
    return (long)(n / VM_BYTES_PER_INSN);
}

/* Elements from i to j inclusive (0 when j < i), without overflow. */
static long cost_range(lua_Integer i, lua_Integer j)
{
    if (j < i)
        return 0;
    lua_Unsigned n = (lua_Unsigned)j - (lua_Unsigned)i;
    return n >= (lua_Unsigned)VM_COST_MAX ? VM_COST_MAX : (long)n + 1;
}

/* The integer at idx as the library will read it (a float with an integral value too), or
 * def when absent or not a number (the library then raises its own error). Never
 * converts in place (lua_tointegerx leaves strings as they are). */
static lua_Integer opt_int(lua_State *L, int idx, lua_Integer def)
{
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, idx, &ok); /* numeric strings convert, as in the library */
    return ok ? v : def;
}

/* string.rep(s, n [, sep]): n copies even when s and sep are empty. A result larger than
 * the memory left is left to the allocator (a memory error, as before). */
static long cost_rep(lua_State *L)
{
    size_t l = 0, lsep = 0;
    if (lua_type(L, 1) != LUA_TSTRING)
        return 1;
    lua_tolstring(L, 1, &l);
    if (lua_type(L, 3) == LUA_TSTRING)
        lua_tolstring(L, 3, &lsep);
    lua_Integer n = opt_int(L, 2, 0);
    if (n <= 0)
        return 1;
    struct vm_ctx *c = ctx_of(L);
    if (l + lsep > 0 && (lua_Unsigned)n > (c->cap - c->used) / (l + lsep))
        return 1;
    return cost_range(1, n) / VM_REP_PER_INSN + cost_bytes((size_t)n * (l + lsep));
}

static long cost_len(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return 0;
    return (long)lua_rawlen(L, idx);
}

/* table.concat(t, sep, i, j) and table.unpack(t, i, j): one unit per element. */
static long cost_concat(lua_State *L)
{
    return 1 + cost_range(opt_int(L, 3, 1), opt_int(L, 4, cost_len(L, 1)));
}

static long cost_unpack(lua_State *L)
{
    return 1 + cost_range(opt_int(L, 2, 1), opt_int(L, 3, cost_len(L, 1)));
}

static long cost_move(lua_State *L)
{
    return 1 + cost_range(opt_int(L, 2, 1), opt_int(L, 3, 0));
}

/* table.insert/remove shift the elements after the position. */
static long cost_shift(lua_State *L)
{
    return 1 + cost_len(L, 1);
}

static long cost_sort(lua_State *L)
{
    long n = cost_len(L, 1), lg = 1;
    while (lg < 62 && (1L << lg) < n)
        lg++;
    return 1 + (n > VM_COST_MAX / lg ? VM_COST_MAX : n * lg);
}

/* Functions scanning their string argument 1. */
static long cost_str1(lua_State *L)
{
    size_t l = 0;
    if (lua_type(L, 1) == LUA_TSTRING)
        lua_tolstring(L, 1, &l);
    return 1 + cost_bytes(l);
}

/* string.byte(s, i, j) and utf8.codepoint(s, i, j): one value pushed per position. */
static long cost_bytes_out(lua_State *L)
{
    lua_Integer i = opt_int(L, 2, 1);
    return cost_str1(L) + cost_range(i, opt_int(L, 3, i));
}

/* collectgarbage: a full collection walks the whole heap. */
static long cost_gc(lua_State *L)
{
    return 1 + (long)(ctx_of(L)->used / 1024);
}

struct guard {
    const char *lib; /* global table, or NULL for the base library */
    const char *name;
    long (*cost)(lua_State *L);
};

static const struct guard guards[] = {
    {"string", "rep", cost_rep},          {"string", "byte", cost_bytes_out},
    {"string", "upper", cost_str1},       {"string", "lower", cost_str1},
    {"string", "reverse", cost_str1},     {"string", "sub", cost_str1},
    {"string", "format", cost_str1},      {"string", "pack", cost_str1},
    {"string", "unpack", cost_str1},      {"table", "concat", cost_concat},
    {"table", "unpack", cost_unpack},     {"table", "move", cost_move},
    {"table", "insert", cost_shift},      {"table", "remove", cost_shift},
    {"table", "sort", cost_sort},         {"utf8", "len", cost_str1},
    {"utf8", "offset", cost_str1},        {"utf8", "codepoint", cost_bytes_out},
    {NULL, "tonumber", cost_str1},        {NULL, "collectgarbage", cost_gc},
};

/* A guarded library function: charges guards[upvalue 2].cost, then runs the original C
 * function (upvalue 1) in this same frame, so its argument errors read as before. */
static int vm_guarded(lua_State *L)
{
    const struct guard *g = &guards[lua_tointeger(L, lua_upvalueindex(2))];
    lua_CFunction orig = lua_tocfunction(L, lua_upvalueindex(1));

    sl_vm_charge(L, g->cost(L));
    return orig(L);
}

/* Wraps every guards[] function that is a plain C function (no upvalues of its own). */
static void install_guards(lua_State *L)
{
    for (size_t i = 0; i < sizeof guards / sizeof guards[0]; i++) {
        if (guards[i].lib)
            lua_getglobal(L, guards[i].lib);
        else
            lua_pushglobaltable(L);
        lua_getfield(L, -1, guards[i].name);
        lua_CFunction f = lua_tocfunction(L, -1);
        int plain = f != NULL && lua_getupvalue(L, -1, 1) == NULL;
        lua_pop(L, f != NULL && !plain ? 2 : 1);
        if (plain) {
            lua_pushcfunction(L, f);
            lua_pushinteger(L, (lua_Integer)i);
            lua_pushcclosure(L, vm_guarded, 2);
            lua_setfield(L, -2, guards[i].name);
        }
        lua_pop(L, 1);
    }
}

/* cjson.encode/decode: charged by the text they read or write; the library's own table
 * (with encode_max_depth, decode_max_depth, new and the other knobs) stays hidden. */
static int vm_json_call(lua_State *L, int decode)
{
    size_t l = 0;
    if (decode && lua_type(L, 1) == LUA_TSTRING)
        lua_tolstring(L, 1, &l);
    sl_vm_charge(L, 1 + cost_bytes(l));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    if (!decode && lua_type(L, -1) == LUA_TSTRING) {
        lua_tolstring(L, -1, &l);
        sl_vm_charge(L, cost_bytes(l));
    }
    return 1;
}

static int vm_json_encode(lua_State *L)
{
    return vm_json_call(L, 0);
}

static int vm_json_decode(lua_State *L)
{
    return vm_json_call(L, 1);
}

/* Pushes the `cjson` table user code sees: encode, decode, null, _NAME, _VERSION of a
 * lua-cjson instance whose nesting limits are fixed at VM_JSON_DEPTH. */
static void open_json(lua_State *L)
{
    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1);
    int lib = lua_gettop(L);
    static const char *const knobs[] = {"encode_max_depth", "decode_max_depth", NULL};
    for (int i = 0; knobs[i]; i++) {
        lua_getfield(L, lib, knobs[i]);
        lua_pushinteger(L, VM_JSON_DEPTH);
        lua_call(L, 1, 0);
    }
    lua_createtable(L, 0, 5);
    lua_getfield(L, lib, "encode");
    lua_pushcclosure(L, vm_json_encode, 1);
    lua_setfield(L, -2, "encode");
    lua_getfield(L, lib, "decode");
    lua_pushcclosure(L, vm_json_decode, 1);
    lua_setfield(L, -2, "decode");
    static const char *const keep[] = {"null", "_NAME", "_VERSION", NULL};
    for (int i = 0; keep[i]; i++) {
        lua_getfield(L, lib, keep[i]);
        lua_setfield(L, -2, keep[i]);
    }
    lua_remove(L, lib);
}

/* print(...): the line goes to the debug log, never to stdout. */
static int vm_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    lua_Debug ar;
    char where[96] = "lua";

    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar))
        snprintf(where, sizeof where, "%s:%d", ar.short_src, ar.currentline);
    sl_debug("%s: print: %s", where, lua_tostring(L, -1));
    return 0;
}

/* collectgarbage limited to "collect", "count" and "step". */
static int vm_collectgarbage(lua_State *L)
{
    static const char *const opts[] = {"collect", "count", "step", NULL};
    int o = luaL_checkoption(L, 1, "collect", opts);
    switch (o) {
    case 1: {
        int k = lua_gc(L, LUA_GCCOUNT, 0);
        int rem = lua_gc(L, LUA_GCCOUNTB, 0);
        lua_pushnumber(L, (lua_Number)k + ((lua_Number)rem / 1024));
        return 1;
    }
    case 2:
        lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, (int)luaL_optinteger(L, 2, 0)));
        return 1;
    default:
        lua_gc(L, LUA_GCCOLLECT, 0);
        lua_pushinteger(L, 0);
        return 1;
    }
}

static int ro_newindex(lua_State *L)
{
    return luaL_error(L, "attempt to modify read-only table");
}

static int ro_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushnil(L);
    return 3;
}

/* The metatable field that marks a read-only proxy (checked by the rawset guard). */
#define RO_MARK "__sl_readonly"

void sl_vm_make_readonly(lua_State *L)
{
    lua_newtable(L);                  /* real proxy */
    lua_createtable(L, 0, 5);         /* real proxy mt */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, -3);
    lua_getglobal(L, "next");
    lua_pushcclosure(L, ro_pairs, 2);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, RO_MARK);
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
}

/* Replaces global `name` (a table) by its read-only proxy. */
static void protect_global(lua_State *L, const char *name)
{
    lua_getglobal(L, name);
    sl_vm_make_readonly(L);
    lua_setglobal(L, name);
}

/* rawset that refuses read-only proxies (a raw write would shadow the library's value). */
static int vm_rawset(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
        int ro = lua_getfield(L, -1, RO_MARK) == LUA_TBOOLEAN && lua_toboolean(L, -1);
        lua_pop(L, 2);
        if (ro)
            return luaL_error(L, "attempt to modify read-only table");
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Opens the allowed libraries; runs under lua_pcall so allocation failures are caught. */
static int vm_open(lua_State *L)
{
    static const char *const base_off[] = {"dofile", "loadfile", "warn", NULL};
    static const char *const libs[] = {"string", "table", "math", "utf8", "coroutine",
                                       "os", "cjson", NULL};

    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    for (int i = 0; base_off[i]; i++) {
        lua_pushnil(L);
        lua_setfield(L, -2, base_off[i]);
    }
    lua_getfield(L, -1, "load");
    lua_pushcclosure(L, vm_load, 1);
    lua_setfield(L, -2, "load");
    lua_getfield(L, -1, "setmetatable");
    lua_pushcclosure(L, vm_setmetatable, 1);
    lua_setfield(L, -2, "setmetatable");
    lua_getfield(L, -1, "rawset");
    lua_pushcclosure(L, vm_rawset, 1);
    lua_setfield(L, -2, "rawset");
    lua_pushcfunction(L, vm_print);
    lua_setfield(L, -2, "print");
    lua_pushcfunction(L, vm_collectgarbage);
    lua_setfield(L, -2, "collectgarbage");
    lua_pushcfunction(L, vm_pcall);
    lua_setfield(L, -2, "pcall");
    lua_pushcfunction(L, vm_xpcall);
    lua_setfield(L, -2, "xpcall");
    lua_pop(L, 1);

    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    sl_lua_match_register(L, -1);
    lua_pop(L, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 1);
    lua_getfield(L, -1, "resume");
    lua_pushcclosure(L, vm_resume, 1);
    lua_setfield(L, -2, "resume");
    lua_pop(L, 4);

    /* os: time, clock and date only; the full library is never registered anywhere. */
    lua_pushcfunction(L, luaopen_os);
    lua_call(L, 0, 1);
    lua_createtable(L, 0, 3);
    static const char *const os_keep[] = {"time", "clock", "date", NULL};
    for (int i = 0; os_keep[i]; i++) {
        lua_getfield(L, -2, os_keep[i]);
        lua_setfield(L, -2, os_keep[i]);
    }
    lua_setglobal(L, "os");
    lua_pop(L, 1);

    /* cjson: the raising variant; decode errors are catchable with pcall. */
    open_json(L);
    lua_setglobal(L, "cjson");
    install_guards(L);

    for (int i = 0; libs[i]; i++)
        protect_global(L, libs[i]);

    /* sluice (lua_sluice.h): read-only already; its `json` is the cjson proxy above. */
    lua_pushcfunction(L, sl_lua_sluice_open);
    lua_call(L, 0, 1);
    lua_setglobal(L, "sluice");

    /* Lua libraries of plugins (plugin.h): read-only global tables, same budgets. */
    sl_plugin_lua_open(L);

    /* Hide the string metatable: getmetatable("") returns false. */
    lua_pushliteral(L, "");
    if (lua_getmetatable(L, -1)) {
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* ---- public ---- */

lua_State *sl_vm_new(const struct sl_vm_limits *lim, struct sl_error *err)
{
    struct vm_ctx *c = calloc(1, sizeof(*c));
    lua_State *L = NULL;

    if (c == NULL)
        goto fail;
    c->cap = lim && lim->mem_bytes ? lim->mem_bytes : VM_DEFAULT_MEM;
    c->limit = lim && lim->instructions > 0 ? lim->instructions : VM_DEFAULT_INSNS;
    c->grain = c->limit < VM_HOOK_GRAIN ? (int)c->limit : VM_HOOK_GRAIN;
    c->wall_ms = (lim && lim->wall_ms > 0 ? lim->wall_ms : VM_DEFAULT_WALL_MS) * VM_WALL_SCALE;
    L = lua_newstate(vm_alloc, c);
    if (L == NULL)
        goto fail;
    *(struct vm_ctx **)lua_getextraspace(L) = c;
    lua_pushcfunction(L, vm_open);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        sl_error_set(err, SL_ENOMEM, "cannot create Lua state: %s",
                     lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
        lua_close(L);
        free(c);
        return NULL;
    }
    c->mem_hit = 0;
    return L;

fail:
    free(c);
    sl_error_set(err, SL_ENOMEM, "cannot create Lua state: out of memory");
    return NULL;
}

void sl_vm_close(lua_State *L)
{
    if (L == NULL)
        return;
    struct vm_ctx *c = ctx_of(L);
    lua_close(L);
    free(c);
}

void sl_vm_set_userdata(lua_State *L, void *p)
{
    ctx_of(L)->user = p;
}

void *sl_vm_userdata(lua_State *L)
{
    return ctx_of(L)->user;
}

size_t sl_vm_memory(lua_State *L)
{
    return ctx_of(L)->used;
}

int sl_vm_load(lua_State *L, const char *name, const char *src, size_t len,
               struct sl_error *err)
{
    struct vm_ctx *c = ctx_of(L);
    char chunk[512];

    if (name[0] == '=' || name[0] == '@')
        snprintf(chunk, sizeof chunk, "%s", name);
    else
        snprintf(chunk, sizeof chunk, "@%s", name);
    c->mem_hit = 0;
    int st = luaL_loadbufferx(L, src, len, chunk, "t");
    if (st == LUA_OK)
        return 0;
    if (st == LUA_ERRMEM)
        sl_error_set(err, SL_ESCRIPT, "%s: memory limit exceeded", chunk + 1);
    else
        sl_error_set(err, SL_ESCRIPT, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 1);
    return SL_ESCRIPT;
}

/* Starts an outermost call (or budget): fresh counters, the hook, the deadline. */
static void budget_begin(lua_State *L, struct vm_ctx *c)
{
    if (c->depth++ == 0) {
        c->executed = 0;
        c->mem_hit = 0;
        c->insn_hit = 0;
        c->exhausted = VM_LIVE;
        c->where[0] = '\0';
        c->hit[0] = '\0';
        c->deadline = mono_ns() + (int64_t)c->wall_ms * 1000000;
        lua_sethook(L, vm_hook, LUA_MASKCOUNT, c->grain);
    }
}

static void budget_end(lua_State *L, struct vm_ctx *c)
{
    if (--c->depth == 0)
        lua_sethook(L, NULL, 0, 0);
}

void sl_vm_budget_begin(lua_State *L)
{
    budget_begin(L, ctx_of(L));
}

void sl_vm_budget_end(lua_State *L)
{
    budget_end(L, ctx_of(L));
}

int sl_vm_pcall(lua_State *L, int nargs, int nresults, struct sl_error *err)
{
    struct vm_ctx *c = ctx_of(L);
    int fn = lua_gettop(L) - nargs;

    if (!lua_checkstack(L, 4)) {
        lua_settop(L, fn - 1);
        return sl_error_set(err, SL_ESCRIPT, "Lua stack overflow");
    }
    /* [msgh, copy of fn, fn, args]: the copy names the function if memory runs out. */
    lua_pushvalue(L, fn);
    lua_insert(L, fn);
    lua_pushcfunction(L, vm_msgh);
    lua_insert(L, fn);

    budget_begin(L, c);
    int st = lua_pcall(L, nargs, nresults, fn);
    budget_end(L, c);
    if (st == LUA_OK) {
        lua_remove(L, fn);
        lua_remove(L, fn);
        return 0;
    }

    if (st == LUA_ERRMEM || (st == LUA_ERRERR && c->mem_hit) ||
        c->exhausted == VM_OUT_OF_MEMORY) {
        char where[96] = "";
        lua_Debug ar;
        if (c->where[0] != '\0') {
            snprintf(where, sizeof where, "%s", c->where);
        } else {
            lua_pushvalue(L, fn + 1);
            if (lua_getinfo(L, ">S", &ar) && ar.source[0] == '@') {
                if (*ar.what == 'm') /* a main chunk: the file, no line */
                    snprintf(where, sizeof where, "%s", ar.short_src);
                else
                    snprintf(where, sizeof where, "%s:%d", ar.short_src, ar.linedefined);
            }
        }
        if (c->exhausted == VM_OUT_OF_TIME || c->exhausted == VM_OUT_OF_INSNS)
            sl_error_set(err, SL_ESCRIPT, "%s%s%s", where, where[0] ? ": " : "",
                         exhausted_msg[c->exhausted]);
        else if (c->cap % ((size_t)1 << 20) == 0)
            sl_error_set(err, SL_ESCRIPT, "%s%smemory limit exceeded (%zu MiB)", where,
                         where[0] ? ": " : "", c->cap >> 20);
        else
            sl_error_set(err, SL_ESCRIPT, "%s%smemory limit exceeded (%zu bytes)", where,
                         where[0] ? ": " : "", c->cap);
    } else if (c->exhausted) {
        /* Whatever object the unwinding ended with: the budget is the cause. */
        if (c->hit[0] != '\0')
            sl_error_set(err, SL_ESCRIPT, "%s: %s", c->hit, exhausted_msg[c->exhausted]);
        else
            sl_error_set(err, SL_ESCRIPT, "%s", exhausted_msg[c->exhausted]);
    } else {
        const char *msg = lua_tostring(L, -1);
        sl_error_set(err, SL_ESCRIPT, "%s", msg ? msg : "error in Lua code");
    }
    lua_settop(L, fn - 1);
    return SL_ESCRIPT;
}
