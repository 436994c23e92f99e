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
 * and raises "instruction limit exceeded" once the per-call budget is spent. After the budget
 * is spent the hook fires on every instruction, so user code that catches the error with
 * pcall cannot keep running.
 *
 * Per-state context lives behind lua_getextraspace (memcached proxy): a pointer to
 * struct vm_ctx, shared by every coroutine of the state (Lua copies the extra space into new
 * threads). */
#include "lua_vm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lualib.h>

#include "error.h"
#include "log.h"
#include "lua_sluice.h"
#include "plugin.h"

#define VM_DEFAULT_MEM ((size_t)64 << 20)
#define VM_DEFAULT_INSNS 5000000L
#define VM_HOOK_GRAIN 1000 /* instructions between two hook calls */
#define VM_TRACE_FRAMES 8  /* user frames shown in a traceback */

struct vm_ctx {
    size_t used;       /* bytes currently allocated by the state */
    size_t cap;        /* allocation cap */
    long limit;        /* instructions per sl_vm_pcall */
    long executed;     /* instructions counted in the current call */
    int grain;         /* hook period */
    int mem_hit;       /* an allocation was refused during the current call */
    int insn_hit;      /* the instruction budget ran out during the current call */
    int depth;         /* sl_vm_pcall nesting: only the outermost call resets the budget */
    char where[96];    /* "file:line" of user code last seen by the hook, or "" */
    void *user;        /* sl_vm_set_userdata */
};

static struct vm_ctx *ctx_of(lua_State *L)
{
    return *(struct vm_ctx **)lua_getextraspace(L);
}

/* ---- limits ---- */

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

static void vm_hook(lua_State *L, lua_Debug *ar)
{
    struct vm_ctx *c = ctx_of(L);
    int n = lua_gethookcount(L);

    c->executed += n;
    if (lua_getinfo(L, "Sl", ar))
        where_of(ar, c->where, sizeof c->where);
    if (c->executed > c->limit) {
        c->insn_hit = 1;
        if (n != 1)
            lua_sethook(L, vm_hook, LUA_MASKCOUNT, 1);
        if (ar->currentline > 0)
            lua_pushfstring(L, "%s:%d: instruction limit exceeded", ar->short_src,
                            ar->currentline);
        else
            lua_pushliteral(L, "instruction limit exceeded");
        lua_error(L);
    }
    if (n != c->grain) /* a thread left in per-instruction mode by an earlier call */
        lua_sethook(L, vm_hook, LUA_MASKCOUNT, c->grain);
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

/* Message handler: "file:line: message", plus the user frames when there are several. */
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
        for (int level = 1; lua_getstack(L, level, &ar); level++) {
            if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
                lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
                luaL_addvalue(&b);
                break;
            }
        }
    }
    luaL_addstring(&b, msg);

    int nuser = 0;
    for (int level = 1; lua_getstack(L, level, &ar); level++)
        if (lua_getinfo(L, "S", &ar) && ar.source[0] == '@')
            nuser++;
    if (nuser > 1) {
        int shown = 0;
        luaL_addstring(&b, "\nstack traceback:");
        for (int level = 1; shown < VM_TRACE_FRAMES && lua_getstack(L, level, &ar); level++) {
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
        if (shown < nuser)
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
    lua_pop(L, 1);

    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    luaL_requiref(L, LUA_COLIBNAME, luaopen_coroutine, 1);
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
    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1);
    lua_setglobal(L, "cjson");

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

    if (c->depth++ == 0) {
        c->executed = 0;
        c->mem_hit = 0;
        c->insn_hit = 0;
        c->where[0] = '\0';
        lua_sethook(L, vm_hook, LUA_MASKCOUNT, c->grain);
    }
    int st = lua_pcall(L, nargs, nresults, fn);
    if (--c->depth == 0)
        lua_sethook(L, NULL, 0, 0);
    if (st == LUA_OK) {
        lua_remove(L, fn);
        lua_remove(L, fn);
        return 0;
    }

    if (st == LUA_ERRMEM || (st == LUA_ERRERR && c->mem_hit)) {
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
        if (c->cap % ((size_t)1 << 20) == 0)
            sl_error_set(err, SL_ESCRIPT, "%s%smemory limit exceeded (%zu MiB)", where,
                         where[0] ? ": " : "", c->cap >> 20);
        else
            sl_error_set(err, SL_ESCRIPT, "%s%smemory limit exceeded (%zu bytes)", where,
                         where[0] ? ": " : "", c->cap);
    } else {
        const char *msg = lua_tostring(L, -1);
        sl_error_set(err, SL_ESCRIPT, "%s", msg ? msg : "error in Lua code");
    }
    lua_settop(L, fn - 1);
    return SL_ESCRIPT;
}
