/* Records ↔ Lua tables, guided by the schema (never by guessing), and the per-worker VMs
 * that run transformations. */
#include "transform.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "buf.h"
#include "defs.h"
#include "error.h"
#include "json.h"
#include "registry.h"
#include "timeutil.h"
#include "types.h"

#define MAX_ROWS 10000
#define MAX_DEPTH 32

/* ---- the cache ---- */

struct entry {
    char *ws;
    uint64_t version;
    lua_State *L;
};

struct sl_xform_cache {
    struct sl_vm_limits lim;
    size_t n;
    struct entry *e;
};

struct sl_xform_cache *sl_xform_cache_new(const struct sl_vm_limits *lim)
{
    struct sl_xform_cache *c = calloc(1, sizeof(*c));
    if (c)
        c->lim = *lim;
    return c;
}

void sl_xform_cache_free(struct sl_xform_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        sl_vm_close(c->e[i].L);
        free(c->e[i].ws);
    }
    free(c->e);
    free(c);
}

lua_State *sl_xform_vm(struct sl_xform_cache *c, const struct sl_ws *ws, struct sl_error *err)
{
    struct entry *e = NULL;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].ws, ws->name) == 0)
            e = &c->e[i];
    if (e && e->version == ws->version && e->L)
        return e->L;
    if (!e) {
        struct entry *g = realloc(c->e, (c->n + 1) * sizeof(*g));
        char *name = strdup(ws->name);
        if (!g || !name) {
            free(name);
            if (g)
                c->e = g;
            sl_error_set(err, SL_ENOMEM, "out of memory");
            return NULL;
        }
        c->e = g;
        e = &c->e[c->n++];
        *e = (struct entry){name, 0, NULL};
    }
    sl_vm_close(e->L);
    e->L = NULL;
    lua_State *L = sl_vm_new(&c->lim, err);
    cJSON *repo = NULL;
    if (!L)
        return NULL;
    if (sl_defs_eval(L, ws->files, ws->nfiles, &repo, err) != 0) {
        sl_vm_close(L);
        return NULL;
    }
    cJSON_Delete(repo);
    e->L = L;
    e->version = ws->version;
    return L;
}

/* ---- JSON → Lua ---- */

static void push_null(lua_State *L)
{
    lua_pushlightuserdata(L, NULL); /* sluice.null, the same value as cjson.null */
}

static int is_null(lua_State *L, int idx)
{
    return lua_isnil(L, idx) || (lua_islightuserdata(L, idx) && !lua_touserdata(L, idx));
}

static void push_value(lua_State *L, const struct sl_type *t, const struct sl_json *v, int depth)
{
    luaL_checkstack(L, 4, "record nesting");
    if (!v || v->kind == SL_JSON_NULL) {
        push_null(L);
        return;
    }
    switch (t->kind) {
    case SL_STRING:
        lua_pushlstring(L, v->str, v->len);
        return;
    case SL_INT64:
    case SL_INT32: {
        int64_t i = 0;
        sl_json_int64(v, &i);
        lua_pushinteger(L, (lua_Integer)i);
        return;
    }
    case SL_FLOAT64:
    case SL_FLOAT32: {
        double d = 0;
        if (v->kind == SL_JSON_STRING)
            d = strcmp(v->str, "NaN") == 0 ? NAN : v->str[0] == '-' ? -INFINITY : INFINITY;
        else
            sl_json_double(v, &d);
        lua_pushnumber(L, d);
        return;
    }
    case SL_BOOL:
        lua_pushboolean(L, v->kind == SL_JSON_TRUE);
        return;
    case SL_TIMESTAMP: {
        int64_t ns;
        char out[SL_TIME_MAXLEN];
        if (sl_time_parse(v->str, v->len, &ns) == 0) {
            sl_time_format(ns, out);
            lua_pushstring(L, out);
        } else {
            lua_pushlstring(L, v->str, v->len);
        }
        return;
    }
    case SL_ARRAY: {
        lua_createtable(L, (int)v->count, 0);
        lua_Integer i = 1;
        for (const struct sl_json *c = v->child; c; c = c->next, i++) {
            push_value(L, t->elem, c, depth + 1);
            lua_rawseti(L, -2, i);
        }
        return;
    }
    case SL_MAP:
        lua_createtable(L, 0, (int)v->count);
        for (const struct sl_json *c = v->child; c; c = c->next) {
            push_value(L, t->elem, c, depth + 1);
            lua_setfield(L, -2, c->key);
        }
        return;
    case SL_STRUCT:
        lua_createtable(L, 0, (int)t->nfields);
        for (size_t i = 0; i < t->nfields; i++) {
            push_value(L, t->fields[i].type, sl_json_get(v, t->fields[i].name), depth + 1);
            lua_setfield(L, -2, t->fields[i].name);
        }
        return;
    }
    push_null(L);
}

/* ---- Lua → JSON ---- */

struct conv {
    struct sl_arena *a;
    char path[256];
};

static struct sl_json *node(lua_State *L, struct conv *c, enum sl_json_kind k)
{
    struct sl_json *n = sl_arena_alloc(c->a, sizeof(*n));
    if (!n) {
        luaL_error(L, "out of memory"); /* does not return */
        return NULL;
    }
    memset(n, 0, sizeof(*n));
    n->kind = k;
    return n;
}

static void set_text(lua_State *L, struct conv *c, struct sl_json *n, const char *s, size_t len)
{
    char *p = sl_arena_strndup(c->a, s, len);
    if (!p)
        luaL_error(L, "out of memory");
    n->str = p;
    n->len = len;
}

static void bad(lua_State *L, struct conv *c, const char *want, int idx)
{
    luaL_error(L, "transformation output `%s`: expected %s, got %s", c->path, want,
               luaL_typename(L, idx));
}

static struct sl_json *to_json(lua_State *L, struct conv *c, const struct sl_type *t, int idx,
                               int depth);

static void set_key(lua_State *L, struct conv *c, struct sl_json *n, const char *k, size_t kl)
{
    char *p = sl_arena_strndup(c->a, k, kl);
    if (!p)
        luaL_error(L, "out of memory");
    n->key = p;
    n->keylen = kl;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static struct sl_json *to_json(lua_State *L, struct conv *c, const struct sl_type *t, int idx,
                               int depth)
{
    char buf[64];
    idx = lua_absindex(L, idx);
    if (depth > MAX_DEPTH)
        luaL_error(L, "transformation output `%s`: nested too deeply", c->path);
    luaL_checkstack(L, 6, "output nesting");
    if (is_null(L, idx))
        return node(L, c, SL_JSON_NULL);
    struct sl_json *n;
    switch (t->kind) {
    case SL_STRING:
        if (lua_type(L, idx) != LUA_TSTRING)
            bad(L, c, "a string", idx);
        n = node(L, c, SL_JSON_STRING);
        {
            size_t len;
            const char *s = lua_tolstring(L, idx, &len);
            set_text(L, c, n, s, len);
        }
        return n;
    case SL_INT64:
    case SL_INT32: {
        int ok = 0;
        lua_Integer i = lua_type(L, idx) == LUA_TNUMBER ? lua_tointegerx(L, idx, &ok) : 0;
        if (lua_type(L, idx) == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, idx, &len);
            n = node(L, c, SL_JSON_STRING);
            set_text(L, c, n, s, len);
            return n;
        }
        if (!ok)
            bad(L, c, "an integer", idx);
        n = node(L, c, SL_JSON_NUMBER);
        int len = snprintf(buf, sizeof(buf), "%lld", (long long)i);
        set_text(L, c, n, buf, (size_t)len);
        return n;
    }
    case SL_FLOAT64:
    case SL_FLOAT32: {
        if (lua_type(L, idx) != LUA_TNUMBER)
            bad(L, c, "a number", idx);
        if (lua_isinteger(L, idx)) {
            n = node(L, c, SL_JSON_NUMBER);
            int len = snprintf(buf, sizeof(buf), "%lld", (long long)lua_tointeger(L, idx));
            set_text(L, c, n, buf, (size_t)len);
            return n;
        }
        double d = lua_tonumber(L, idx);
        if (isnan(d) || isinf(d)) {
            n = node(L, c, SL_JSON_STRING);
            const char *s = isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity";
            set_text(L, c, n, s, strlen(s));
            return n;
        }
        n = node(L, c, SL_JSON_NUMBER);
        int len = snprintf(buf, sizeof(buf), "%.17g", d);
        set_text(L, c, n, buf, (size_t)len);
        return n;
    }
    case SL_BOOL:
        if (lua_type(L, idx) != LUA_TBOOLEAN)
            bad(L, c, "a boolean", idx);
        return node(L, c, lua_toboolean(L, idx) ? SL_JSON_TRUE : SL_JSON_FALSE);
    case SL_TIMESTAMP:
        if (lua_isinteger(L, idx)) {
            char out[SL_TIME_MAXLEN];
            size_t len = sl_time_format((int64_t)lua_tointeger(L, idx), out);
            n = node(L, c, SL_JSON_STRING);
            set_text(L, c, n, out, len);
            return n;
        }
        if (lua_type(L, idx) != LUA_TSTRING)
            bad(L, c, "an RFC 3339 string or integer nanoseconds", idx);
        n = node(L, c, SL_JSON_STRING);
        {
            size_t len;
            const char *s = lua_tolstring(L, idx, &len);
            set_text(L, c, n, s, len);
        }
        return n;
    case SL_ARRAY: {
        if (lua_type(L, idx) != LUA_TTABLE)
            bad(L, c, "an array (a sequence table)", idx);
        n = node(L, c, SL_JSON_ARRAY);
        lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
        struct sl_json **tail = &n->child;
        size_t plen = strlen(c->path);
        for (lua_Integer i = 1; i <= len; i++) {
            snprintf(c->path + plen, sizeof(c->path) - plen, "[%lld]", (long long)i);
            lua_rawgeti(L, idx, i);
            *tail = to_json(L, c, t->elem, -1, depth + 1);
            tail = &(*tail)->next;
            n->count++;
            lua_pop(L, 1);
        }
        c->path[plen] = 0;
        return n;
    }
    case SL_MAP: {
        if (lua_type(L, idx) != LUA_TTABLE)
            bad(L, c, "a table", idx);
        n = node(L, c, SL_JSON_OBJECT);
        /* keys sorted, so the stored encoding does not depend on hash order */
        size_t cnt = 0, cap = 16;
        const char **keys = sl_arena_alloc(c->a, cap * sizeof(*keys));
        lua_pushnil(L);
        while (keys && lua_next(L, idx) != 0) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "transformation output `%s`: map keys must be strings", c->path);
            if (cnt == cap) {
                const char **g = sl_arena_alloc(c->a, 2 * cap * sizeof(*g));
                if (!g)
                    break;
                memcpy(g, keys, cap * sizeof(*g));
                keys = g;
                cap *= 2;
            }
            keys[cnt++] = lua_tostring(L, -1);
        }
        if (!keys)
            luaL_error(L, "out of memory");
        qsort(keys, cnt, sizeof(*keys), cmp_keys);
        struct sl_json **tail = &n->child;
        size_t plen = strlen(c->path);
        for (size_t i = 0; i < cnt; i++) {
            snprintf(c->path + plen, sizeof(c->path) - plen, ".%s", keys[i]);
            lua_getfield(L, idx, keys[i]);
            *tail = to_json(L, c, t->elem, -1, depth + 1);
            set_key(L, c, *tail, keys[i], strlen(keys[i]));
            tail = &(*tail)->next;
            n->count++;
            lua_pop(L, 1);
        }
        c->path[plen] = 0;
        return n;
    }
    case SL_STRUCT: {
        if (lua_type(L, idx) != LUA_TTABLE)
            bad(L, c, "a table", idx);
        n = node(L, c, SL_JSON_OBJECT);
        struct sl_json **tail = &n->child;
        size_t plen = strlen(c->path);
        for (size_t i = 0; i < t->nfields; i++) {
            snprintf(c->path + plen, sizeof(c->path) - plen, ".%s", t->fields[i].name);
            lua_getfield(L, idx, t->fields[i].name);
            *tail = to_json(L, c, t->fields[i].type, -1, depth + 1);
            set_key(L, c, *tail, t->fields[i].name, strlen(t->fields[i].name));
            tail = &(*tail)->next;
            n->count++;
            lua_pop(L, 1);
        }
        c->path[plen] = 0;
        return n;
    }
    }
    return node(L, c, SL_JSON_NULL);
}

/* One output row: a JSON object with the fields of out present in the table. */
static struct sl_json *row_to_json(lua_State *L, struct conv *c, const struct sl_field *out,
                                   size_t nout, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "a transformation must return a table, an array of tables or nil, not %s",
                   luaL_typename(L, idx));
    struct sl_json *n = node(L, c, SL_JSON_OBJECT), **tail = &n->child;
    for (size_t i = 0; i < nout; i++) {
        if (lua_getfield(L, idx, out[i].name) == LUA_TNIL) {
            lua_pop(L, 1);
            continue; /* absent: reported as a missing field by the schema check */
        }
        snprintf(c->path, sizeof(c->path), "%s", out[i].name);
        *tail = to_json(L, c, out[i].type, -1, 0);
        set_key(L, c, *tail, out[i].name, strlen(out[i].name));
        tail = &(*tail)->next;
        n->count++;
        lua_pop(L, 1);
    }
    return n;
}

struct run {
    const char *obj, *what;
    const struct sl_field *in, *out;
    size_t nin, nout;
    const struct sl_json *rec;
    struct conv c;
    struct sl_json **rows;
    size_t nrows;
};

/* Runs inside sl_vm_pcall, so allocation failures and errors are caught. */
static int run_protected(lua_State *L)
{
    struct run *r = lua_touserdata(L, 1);
    if (sl_defs_push_function(L, r->obj, r->what) != 0)
        return luaL_error(L, "no %s for `%s`", r->what, r->obj);
    lua_createtable(L, 0, (int)r->nin);
    for (size_t i = 0; i < r->nin; i++) {
        push_value(L, r->in[i].type, sl_json_get(r->rec, r->in[i].name), 0);
        lua_setfield(L, -2, r->in[i].name);
    }
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1))
        return 0;
    if (lua_type(L, -1) != LUA_TTABLE)
        return luaL_error(L, "a transformation must return a table, an array of tables or nil, not %s",
                          luaL_typename(L, -1));
    int many = lua_rawgeti(L, -1, 1) == LUA_TTABLE;
    lua_pop(L, 1);
    size_t n = many ? lua_rawlen(L, -1) : 1;
    if (n > MAX_ROWS)
        return luaL_error(L, "a transformation returned %zu rows; at most %d", n, MAX_ROWS);
    r->rows = sl_arena_alloc(r->c.a, (n ? n : 1) * sizeof(*r->rows));
    if (!r->rows)
        return luaL_error(L, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (many)
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
        else
            lua_pushvalue(L, -1);
        r->rows[r->nrows++] = row_to_json(L, &r->c, r->out, r->nout, -1);
        lua_pop(L, 1);
    }
    return 0;
}

int sl_xform_run(lua_State *L, const char *obj, const char *what, const struct sl_field *in,
                 size_t nin, const struct sl_json *rec, const struct sl_field *out, size_t nout,
                 struct sl_arena *a, struct sl_json ***rows, size_t *nrows, struct sl_error *err)
{
    struct run r = {.obj = obj, .what = what, .in = in, .out = out, .nin = nin, .nout = nout,
                    .rec = rec, .c = {.a = a}};
    int top = lua_gettop(L);
    *rows = NULL;
    *nrows = 0;
    if (!lua_checkstack(L, 4))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    lua_pushcfunction(L, run_protected);
    lua_pushlightuserdata(L, &r);
    int rc = sl_vm_pcall(L, 1, 0, err);
    lua_settop(L, top);
    if (rc != 0)
        return rc;
    *rows = r.rows;
    *nrows = r.nrows;
    return 0;
}

/* ---- realtime views ---- */

struct rt_run {
    const char *view;
    const struct sl_field *req, *out;
    size_t nreq, nout, nin;
    const struct sl_json *ctx;
    const struct sl_xform_input *in;
    struct conv c;
    struct sl_json *row;
};

static int rt_protected(lua_State *L)
{
    struct rt_run *r = lua_touserdata(L, 1);
    if (sl_defs_push_function(L, r->view, "transformation") != 0)
        return luaL_error(L, "no transformation for realtime view `%s`", r->view);
    lua_createtable(L, 0, (int)r->nreq);
    for (size_t i = 0; i < r->nreq; i++) {
        push_value(L, r->req[i].type, r->ctx ? sl_json_get(r->ctx, r->req[i].name) : NULL, 0);
        lua_setfield(L, -2, r->req[i].name);
    }
    lua_createtable(L, 0, (int)r->nin);
    for (size_t k = 0; k < r->nin; k++) {
        const struct sl_view *v = r->in[k].view;
        lua_createtable(L, 0, (int)v->nfeatures);
        for (size_t f = 0; f < v->nfeatures; f++) {
            push_value(L, v->features[f].type, sl_json_get(r->in[k].values, v->features[f].name), 0);
            lua_setfield(L, -2, v->features[f].name);
        }
        lua_setfield(L, -2, v->name);
    }
    lua_call(L, 2, 1);
    r->row = row_to_json(L, &r->c, r->out, r->nout, -1);
    return 0;
}

int sl_xform_realtime(lua_State *L, const char *view, const struct sl_field *req, size_t nreq,
                      const struct sl_json *ctx, const struct sl_xform_input *in, size_t nin,
                      const struct sl_field *out, size_t nout, struct sl_arena *a,
                      struct sl_json **row, struct sl_error *err)
{
    struct rt_run r = {.view = view, .req = req, .out = out, .nreq = nreq, .nout = nout,
                       .nin = nin, .ctx = ctx, .in = in, .c = {.a = a}};
    int top = lua_gettop(L);
    *row = NULL;
    if (!lua_checkstack(L, 4))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    lua_pushcfunction(L, rt_protected);
    lua_pushlightuserdata(L, &r);
    int rc = sl_vm_pcall(L, 1, 0, err);
    lua_settop(L, top);
    if (rc == 0)
        *row = r.row;
    return rc;
}

int sl_xform_realtime_view(lua_State *L, const struct sl_ws *ws, const struct sl_view *v,
                           const struct sl_json *ctx, sl_xform_input_fn input, void *arg,
                           const int *feat, size_t nfeat, struct sl_arena *a,
                           struct sl_buf *out, size_t *off, size_t *len, char *msg, size_t cap)
{
    const struct sl_source *req = NULL;
    struct sl_xform_input in[SL_MAX_REALTIME_INPUTS];
    size_t nin = 0;
    struct sl_buf obj = SL_BUF_INIT, scratch = SL_BUF_INIT;
    struct sl_error err = {0};
    struct sl_field *fields = NULL;
    struct sl_json *row = NULL;
    int rc = 0;
    for (size_t k = 0; k < v->nrt_sources && rc == 0; k++) {
        const struct sl_source *src = sl_ws_source(ws, v->rt_sources[k]);
        if (src && src->is_request) {
            req = src;
            for (size_t f = 0; f < src->nfields && rc == 0; f++) {
                const struct sl_json *val = ctx ? sl_json_get(ctx, src->schema[f].name) : NULL;
                sl_buf_reset(&scratch);
                if (!val) {
                    snprintf(msg, cap, "Missing required request context key: %s", src->schema[f].name);
                    rc = SL_EINVAL;
                } else if (sl_value_encode(src->schema[f].type, val, &scratch, &err) != 0) {
                    snprintf(msg, cap, "Request context key `%s`: %s", src->schema[f].name, err.msg);
                    rc = SL_EINVAL;
                }
            }
            continue;
        }
        const struct sl_view *iv = sl_ws_view(ws, v->rt_sources[k]);
        if (!iv || iv->is_realtime || nin == SL_MAX_REALTIME_INPUTS ||
            iv->nfeatures > SL_MAX_VIEW_FEATURES)
            continue;
        const char *frag[SL_MAX_VIEW_FEATURES];
        size_t flen[SL_MAX_VIEW_FEATURES];
        if ((rc = input(arg, iv, frag, flen, msg, cap)) != 0)
            break;
        sl_buf_reset(&obj);
        sl_buf_putc(&obj, '{');
        for (size_t f = 0; f < iv->nfeatures; f++) {
            sl_buf_puts(&obj, f ? "," : "");
            sl_buf_json_str(&obj, iv->features[f].name, strlen(iv->features[f].name));
            sl_buf_putc(&obj, ':');
            sl_buf_append(&obj, frag[f], flen[f]);
        }
        sl_buf_putc(&obj, '}');
        const struct sl_json *o = obj.oom ? NULL : sl_json_parse(obj.p, obj.len, a, &err);
        if (!o) {
            snprintf(msg, cap, "out of memory");
            rc = SL_ENOMEM;
        } else {
            in[nin++] = (struct sl_xform_input){iv, o};
        }
    }
    sl_buf_free(&obj);
    sl_buf_free(&scratch);
    if (rc)
        return rc;
    fields = calloc(v->nfeatures + 1, sizeof(*fields));
    if (!fields) {
        snprintf(msg, cap, "out of memory");
        return SL_ENOMEM;
    }
    for (size_t f = 0; f < v->nfeatures; f++)
        fields[f] = (struct sl_field){v->features[f].name, v->features[f].type};
    rc = sl_xform_realtime(L, v->name, req ? req->schema : NULL, req ? req->nfields : 0, ctx, in,
                           nin, fields, v->nfeatures, a, &row, &err);
    free(fields);
    if (rc) {
        snprintf(msg, cap, "realtime feature view `%s` failed: %s", v->name, err.msg);
        return rc == SL_ENOMEM ? rc : SL_ESCRIPT;
    }
    for (size_t f = 0; f < nfeat; f++) {
        const struct sl_feature *ft = &v->features[feat[f]];
        const struct sl_json *val = sl_json_get(row, ft->name);
        off[f] = out->len;
        if (!val || sl_value_encode(ft->type, val, out, &err) != 0) {
            snprintf(msg, cap, "realtime feature view `%s`: feature `%s`: %s", v->name, ft->name,
                     val ? err.msg : "not returned");
            return SL_ESCRIPT;
        }
        len[f] = out->len - off[f];
    }
    if (out->oom) {
        snprintf(msg, cap, "out of memory");
        return SL_ENOMEM;
    }
    return 0;
}
