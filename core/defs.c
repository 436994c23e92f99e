/* Feature repositories: runs the DSL prelude (scripts/lua/dsl.lua, embedded at build time)
 * and the repository's files in a sandboxed state, then converts the description the prelude
 * builds into cJSON. Validation lives in the prelude; this file supplies the helpers it needs
 * from C (durations, times, aggregate resolution) and the Lua <-> cJSON conversions.
 *
 * The prelude's module table M stays in the state's registry (key &defs_key) after an
 * evaluation: M.functions holds the user functions sl_defs_push_function hands out. */
#include "defs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "agg.h"
#include "error.h"
#include "lua_vm.h"
#include "timeutil.h"

/* scripts/lua/dsl.lua, generated into core/dsl_lua.c by scripts/embed.sh. */
extern const char sl_dsl_lua[];
extern const size_t sl_dsl_lua_len;

#define DEFS_MAX_DEPTH 64
#define CJSON_BOX "sl.defs.cjson"

static const char defs_key = 'M';

/* The marker metatables of the prelude's JSON trees (absolute stack indexes). */
struct conv {
    lua_State *L;
    int arr, obj, map;
    const char *fail; /* why a conversion failed */
};

/* ---- Lua -> cJSON (reads tables only: no Lua allocation, safe outside lua_pcall) ---- */

static cJSON *to_cjson(struct conv *c, int idx, int depth);

static int cmp_item(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* A string-keyed table as an object with sorted keys. Values are read during lua_next (a
 * lookup by key could allocate a long string outside a protected call). */
static cJSON *map_to_cjson(struct conv *c, int idx, int depth)
{
    lua_State *L = c->L;
    cJSON *o = cJSON_CreateObject();
    size_t n = 0;

    if (o == NULL)
        goto nomem;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            c->fail = "map with a non-string key";
            goto fail;
        }
        cJSON *v = to_cjson(c, lua_gettop(L), depth + 1);
        if (v == NULL || !cJSON_AddItemToObject(o, lua_tostring(L, -2), v)) {
            lua_pop(L, 2);
            cJSON_Delete(v);
            goto fail;
        }
        lua_pop(L, 1);
        n++;
    }
    if (n > 1) {
        cJSON **items = malloc(n * sizeof(*items));
        cJSON *it;
        size_t i = 0;
        if (items == NULL)
            goto nomem;
        cJSON_ArrayForEach(it, o) items[i++] = it;
        qsort(items, n, sizeof(*items), cmp_item);
        for (i = 0; i < n; i++) {
            items[i]->prev = i ? items[i - 1] : items[n - 1]; /* cJSON: head->prev is the tail */
            items[i]->next = i + 1 < n ? items[i + 1] : NULL;
        }
        o->child = items[0];
        free(items);
    }
    return o;

nomem:
    c->fail = "out of memory";
fail:
    cJSON_Delete(o);
    return NULL;
}

static cJSON *table_to_cjson(struct conv *c, int idx, int depth)
{
    lua_State *L = c->L;
    cJSON *out = NULL;

    if (depth > DEFS_MAX_DEPTH || !lua_checkstack(L, 6)) {
        c->fail = "description nested too deeply";
        return NULL;
    }
    if (!lua_getmetatable(L, idx)) {
        c->fail = "unmarked table in the description";
        return NULL;
    }
    int is_arr = lua_rawequal(L, -1, c->arr), is_obj = lua_rawequal(L, -1, c->obj);
    int is_map = lua_rawequal(L, -1, c->map);
    lua_pop(L, 1);

    if (is_map)
        return map_to_cjson(c, idx, depth);
    if (is_arr) {
        lua_Unsigned n = lua_rawlen(L, idx);
        out = cJSON_CreateArray();
        for (lua_Unsigned i = 1; out && i <= n; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i);
            cJSON *v = to_cjson(c, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            if (v == NULL || !cJSON_AddItemToArray(out, v)) {
                cJSON_Delete(v);
                cJSON_Delete(out);
                return NULL;
            }
        }
    } else if (is_obj) {
        lua_getfield(L, idx, "n");
        lua_Integer n = lua_tointeger(L, -1);
        lua_pop(L, 1);
        out = cJSON_CreateObject();
        for (lua_Integer i = 1; out && i + 1 <= n; i += 2) {
            if (lua_rawgeti(L, idx, i) != LUA_TSTRING) {
                lua_pop(L, 1);
                cJSON_Delete(out);
                c->fail = "object with a non-string key";
                return NULL;
            }
            lua_rawgeti(L, idx, i + 1);
            cJSON *v = to_cjson(c, lua_gettop(L), depth + 1);
            if (v == NULL || !cJSON_AddItemToObject(out, lua_tostring(L, -2), v)) {
                lua_pop(L, 2);
                cJSON_Delete(v);
                cJSON_Delete(out);
                return NULL;
            }
            lua_pop(L, 2);
        }
    } else {
        c->fail = "unmarked table in the description";
        return NULL;
    }
    if (out == NULL && c->fail == NULL)
        c->fail = "out of memory";
    return out;
}

static cJSON *to_cjson(struct conv *c, int idx, int depth)
{
    lua_State *L = c->L;
    cJSON *v = NULL;

    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        v = cJSON_CreateNull();
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != NULL) {
            c->fail = "userdata in the description";
            return NULL;
        }
        v = cJSON_CreateNull();
        break;
    case LUA_TBOOLEAN:
        v = cJSON_CreateBool(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        v = cJSON_CreateNumber(lua_isinteger(L, idx) ? (double)lua_tointeger(L, idx)
                                                     : (double)lua_tonumber(L, idx));
        break;
    case LUA_TSTRING:
        v = cJSON_CreateString(lua_tostring(L, idx));
        break;
    case LUA_TTABLE:
        return table_to_cjson(c, idx, depth);
    default:
        c->fail = "unexpected value in the description";
        return NULL;
    }
    if (v == NULL)
        c->fail = "out of memory";
    return v;
}

/* ---- cJSON -> Lua (inside a protected call) ---- */

static void push_cjson(struct conv *c, const cJSON *j, int depth)
{
    lua_State *L = c->L;
    const cJSON *it;

    luaL_checkstack(L, 4, "description nested too deeply");
    if (depth > DEFS_MAX_DEPTH)
        luaL_error(L, "description nested too deeply");
    if (cJSON_IsBool(j)) {
        lua_pushboolean(L, cJSON_IsTrue(j));
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(int64_t)d)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsString(j)) {
        lua_pushstring(L, j->valuestring);
    } else if (cJSON_IsArray(j)) {
        int i = 0;
        lua_createtable(L, cJSON_GetArraySize(j), 0);
        cJSON_ArrayForEach(it, j)
        {
            push_cjson(c, it, depth + 1);
            lua_rawseti(L, -2, ++i);
        }
        lua_pushvalue(L, c->arr);
        lua_setmetatable(L, -2);
    } else if (cJSON_IsObject(j)) {
        int i = 0;
        lua_createtable(L, 2 * cJSON_GetArraySize(j), 1);
        cJSON_ArrayForEach(it, j)
        {
            lua_pushstring(L, it->string);
            lua_rawseti(L, -2, ++i);
            push_cjson(c, it, depth + 1);
            lua_rawseti(L, -2, ++i);
        }
        lua_pushinteger(L, i);
        lua_setfield(L, -2, "n");
        lua_pushvalue(L, c->obj);
        lua_setmetatable(L, -2);
    } else {
        lua_pushlightuserdata(L, NULL);
    }
}

/* Pushes M's marker tables and fills c (their indexes). Errors when M is not loaded. */
static void conv_init(lua_State *L, struct conv *c)
{
    c->L = L;
    c->fail = NULL;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &defs_key);
    if (!lua_istable(L, -1))
        luaL_error(L, "the definitions prelude is not loaded");
    lua_getfield(L, -1, "json_array");
    lua_getfield(L, -2, "json_object");
    lua_getfield(L, -3, "json_map");
    c->map = lua_gettop(L);
    c->obj = c->map - 1;
    c->arr = c->map - 2;
}

/* ---- host helpers for the prelude ---- */

static int box_gc(lua_State *L)
{
    cJSON **box = luaL_checkudata(L, 1, CJSON_BOX);
    cJSON_Delete(*box);
    *box = NULL;
    return 0;
}

/* host.duration(s) -> ns or nil */
static int host_duration(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int64_t ns;
    if (sl_duration_parse(s, n, &ns) != 0)
        return 0;
    lua_pushinteger(L, ns);
    return 1;
}

/* host.format_duration(ns) -> "30d" */
static int host_format_duration(lua_State *L)
{
    char out[32];
    sl_duration_format(luaL_checkinteger(L, 1), out);
    lua_pushstring(L, out);
    return 1;
}

/* host.time(s) -> ns or nil */
static int host_time(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int64_t ns;
    if (sl_time_parse(s, n, &ns) != 0)
        return 0;
    lua_pushinteger(L, ns);
    return 1;
}

/* host.format_time(ns) -> RFC 3339 */
static int host_format_time(lua_State *L)
{
    char out[SL_TIME_MAXLEN];
    sl_time_format(luaL_checkinteger(L, 1), out);
    lua_pushstring(L, out);
    return 1;
}

/* host.agg_resolve(feature, interval_ns) -> the completed feature's members as a table
 * (nested objects as JSON trees), or nil, message. Runs sl_agg_resolve (core/agg.h). */
static int host_agg_resolve(lua_State *L)
{
    struct conv c;
    struct sl_error e = {0};
    lua_Integer interval = luaL_checkinteger(L, 2);

    luaL_checktype(L, 1, LUA_TTABLE);
    conv_init(L, &c);
    cJSON **box = lua_newuserdatauv(L, sizeof(*box), 0);
    *box = NULL;
    luaL_setmetatable(L, CJSON_BOX);
    *box = to_cjson(&c, 1, 0);
    if (*box == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, c.fail ? c.fail : "out of memory");
        return 2;
    }
    if (sl_agg_resolve(*box, interval, &e) != 0) {
        cJSON_Delete(*box);
        *box = NULL;
        lua_pushnil(L);
        lua_pushstring(L, e.msg[0] ? e.msg : "invalid aggregate");
        return 2;
    }
    lua_createtable(L, 0, 12);
    const cJSON *it;
    cJSON_ArrayForEach(it, *box)
    {
        push_cjson(&c, it, 1);
        lua_setfield(L, -2, it->string);
    }
    cJSON_Delete(*box);
    *box = NULL;
    return 1;
}

/* ---- evaluation steps, each run by sl_vm_pcall ---- */

/* Loads the prelude and stores its module in the registry. */
static int defs_setup(lua_State *L)
{
    static const luaL_Reg host[] = {
        {"duration", host_duration},   {"format_duration", host_format_duration},
        {"time", host_time},           {"format_time", host_format_time},
        {"agg_resolve", host_agg_resolve}, {NULL, NULL},
    };

    if (luaL_newmetatable(L, CJSON_BOX)) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_loadbufferx(L, sl_dsl_lua, sl_dsl_lua_len, "=dsl.lua", "t") != LUA_OK)
        return lua_error(L);
    lua_pushcfunction(L, luaopen_debug); /* handed to the prelude only, never registered */
    lua_call(L, 0, 1);
    luaL_newlib(L, host);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_call(L, 2, 1);
    if (!lua_istable(L, -1))
        return luaL_error(L, "dsl.lua did not return its module");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &defs_key);
    return 0;
}

/* Pushes the chunk of one repository file (light userdata: struct sl_file), its _ENV set to
 * the repository environment, after handing the file's text to the prelude. */
static int defs_file(lua_State *L)
{
    const struct sl_file *f = lua_touserdata(L, 1);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &defs_key);
    int m = lua_gettop(L);
    lua_getfield(L, m, "begin_file");
    lua_pushstring(L, f->name);
    lua_pushlstring(L, f->data, f->len);
    lua_call(L, 2, 0);
    const char *chunk = lua_pushfstring(L, "@%s", f->name);
    if (luaL_loadbufferx(L, f->data, f->len, chunk, "t") != LUA_OK)
        return lua_error(L);
    lua_getfield(L, m, "env");
    if (lua_setupvalue(L, -2, 1) == NULL) /* a main chunk's only upvalue is _ENV */
        lua_pop(L, 1);
    return 1;
}

/* Runs the whole-repository checks; returns the description and the three marker tables. */
static int defs_finalize(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &defs_key);
    int m = lua_gettop(L);
    lua_getfield(L, m, "finalize");
    lua_call(L, 0, 1);
    lua_getfield(L, m, "json_array");
    lua_getfield(L, m, "json_object");
    lua_getfield(L, m, "json_map");
    return 4;
}

static int cmp_file(const void *a, const void *b)
{
    const struct sl_file *x = *(const struct sl_file *const *)a;
    const struct sl_file *y = *(const struct sl_file *const *)b;
    return strcmp(x->name, y->name);
}

int sl_defs_eval(lua_State *L, const struct sl_file *files, size_t n, cJSON **repo,
                 struct sl_error *err)
{
    const struct sl_file **order = malloc((n ? n : 1) * sizeof(*order));
    int top = lua_gettop(L);
    int rc;

    *repo = NULL;
    if (order == NULL || !lua_checkstack(L, 8)) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = &files[i];
    qsort(order, n, sizeof(*order), cmp_file);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            rc = sl_error_set(err, SL_ESCRIPT, "%s:1: the file is given twice", order[i]->name);
            goto out;
        }
    }

    sl_vm_budget_begin(L); /* one instruction budget and deadline for the whole repository */
    /* Files may use globals that files after them define: when a file reads an undefined
     * global, the evaluation starts over (a fresh environment) with that file moved last,
     * until it succeeds or the failing file already is last (a name defined nowhere). */
    for (size_t attempt = 0;; attempt++) {
        size_t failed = n;
        lua_settop(L, top);
        lua_pushcfunction(L, defs_setup);
        rc = sl_vm_pcall(L, 0, 0, err);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            lua_pushcfunction(L, defs_file);
            lua_pushlightuserdata(L, (void *)order[i]);
            rc = sl_vm_pcall(L, 1, 1, err);
            if (rc == 0)
                rc = sl_vm_pcall(L, 0, 0, err);
            if (rc != 0)
                failed = i;
        }
        size_t len = failed < n ? strlen(order[failed]->name) : 0;
        if (rc != SL_ESCRIPT || failed + 1 >= n || attempt >= n * n ||
            strncmp(err->msg, order[failed]->name, len) != 0 || err->msg[len] != ':' ||
            !strstr(err->msg, "` is not defined"))
            break;
        const struct sl_file *f = order[failed];
        memmove(&order[failed], &order[failed + 1], (n - failed - 1) * sizeof(*order));
        order[n - 1] = f;
        memset(err, 0, sizeof(*err));
    }
    if (rc == 0) {
        lua_pushcfunction(L, defs_finalize);
        rc = sl_vm_pcall(L, 0, 4, err);
    }
    sl_vm_budget_end(L);
    if (rc == 0) {
        struct conv c = {.L = L, .arr = top + 2, .obj = top + 3, .map = top + 4};
        *repo = to_cjson(&c, top + 1, 0);
        if (*repo == NULL)
            rc = sl_error_set(err, c.fail && strcmp(c.fail, "out of memory") ? SL_ESCRIPT
                                                                              : SL_ENOMEM,
                              "repository description: %s", c.fail ? c.fail : "out of memory");
    }
out:
    lua_settop(L, top);
    free(order);
    return rc;
}

/* Pushes M.functions[what][name] or nil (light userdata arguments). */
static int defs_lookup(lua_State *L)
{
    const char *name = lua_touserdata(L, 1), *what = lua_touserdata(L, 2);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &defs_key);
    if (lua_type(L, -1) != LUA_TTABLE || lua_getfield(L, -1, "functions") != LUA_TTABLE ||
        lua_getfield(L, -1, what) != LUA_TTABLE)
        return 0;
    lua_getfield(L, -1, name);
    return 1;
}

int sl_defs_push_function(lua_State *L, const char *name, const char *what)
{
    int top = lua_gettop(L);

    if (!lua_checkstack(L, 8))
        return SL_ENOTFOUND;
    lua_pushcfunction(L, defs_lookup);
    lua_pushlightuserdata(L, (void *)name);
    lua_pushlightuserdata(L, (void *)what);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK || !lua_isfunction(L, -1)) {
        lua_settop(L, top);
        return SL_ENOTFOUND;
    }
    return 0;
}
