/* The plugin loader and the kind registries: every built-in and every loaded .so goes through
 * plugin_add(), which checks the descriptor, runs cb_init and only then registers. */
#include "plugin.h"

#include <dirent.h>
#include <errno.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <lauxlib.h>
#include <lua.h>

#include "sluice_config.h"

#include "agg.h"
#include "agg_int.h"
#include "agg_sketch.h"
#include "buf.h"
#include "error.h"
#include "log.h"
#include "lua_vm.h"
#include "store.h"
#include "timeutil.h"
#include "types.h"

/* Sizes of the structures as ABI 1.0 defines them: a descriptor or ops table must be at least
 * this large; members appended in later minors are read only when struct_size covers them. */
#define DESC_SIZE_1_0 (offsetof(struct sl_plugin, ops) + sizeof(const void *))
#define AGG_SIZE_1_0 (offsetof(struct sl_agg_fn, cb_free) + sizeof(void (*)(void *)))
#define STORE_SIZE_1_0 (offsetof(struct sl_store_ops, iter_free) + sizeof(void (*)(void *)))
#define LUA_SIZE_1_0 (offsetof(struct sl_lua_lib, fns) + sizeof(const void *))
#define NAME_MAX_LEN 64
#define BUILTIN_FILE "(built-in)"

struct sl_metric {
    char *name; /* full Prometheus name */
    char *help;
    int gauge;
    int64_t v;
    struct sl_metric *next;
};

struct sl_plugin_handle {
    const struct sl_plugin *desc;
    char *file;
    void *dl; /* NULL for built-ins */
    void *ctx;
    struct sl_metric *metrics;
    /* a store's ops, zero-extended to this build's size: members a plugin built against an
     * older minor lacks read as NULL (not offered) */
    struct sl_store_ops store;
    struct sl_plugin_handle *next;
};

struct setting {
    char *plugin, *key, *value;
};

static struct sl_plugin_handle *plugins, **plugins_tail = &plugins;
static struct setting *settings;
static size_t nsettings;

static const char *kind_name(uint32_t k)
{
    switch (k) {
    case SL_PLUGIN_AGG: return "aggregation";
    case SL_PLUGIN_STORE: return "online-store";
    case SL_PLUGIN_SOURCE: return "stream-source";
    case SL_PLUGIN_LUA: return "lua-library";
    }
    return "unknown";
}

/* ---- the services table ---- */

static void api_log(const struct sl_plugin_handle *self, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    enum sl_log_level l = level <= SL_PLUGIN_DEBUG ? SL_LOG_DEBUG
                          : level == SL_PLUGIN_INFO ? SL_LOG_INFO
                          : level == SL_PLUGIN_WARN ? SL_LOG_WARN
                                                    : SL_LOG_ERROR;
    sl_log(l, "plugin %s: %s", self && self->desc->name ? self->desc->name : "?", msg);
}

static int config_has(const struct sl_plugin *d, const char *key)
{
    for (const struct sl_plugin_config *m = d->config_map; m && m->key; m++)
        if (strcmp(m->key, key) == 0)
            return 1;
    return 0;
}

static const char *api_config_get(const struct sl_plugin_handle *self, const char *key)
{
    const struct sl_plugin_config *m = self ? self->desc->config_map : NULL;
    for (; m && m->key; m++) {
        if (strcmp(m->key, key) != 0)
            continue;
        for (size_t i = 0; i < nsettings; i++)
            if (strcmp(settings[i].plugin, self->desc->name) == 0 &&
                strcmp(settings[i].key, key) == 0)
                return settings[i].value;
        return m->def;
    }
    return NULL;
}

static int metric_name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > NAME_MAX_LEN)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static struct sl_metric *metric_new(const struct sl_plugin_handle *self, const char *name,
                                    const char *help, int gauge)
{
    if (!self || !metric_name_ok(name))
        return NULL;
    struct sl_plugin_handle *h = (struct sl_plugin_handle *)self;
    struct sl_metric *m = calloc(1, sizeof *m);
    struct sl_buf b = SL_BUF_INIT;
    sl_buf_printf(&b, "sluice_plugin_%s_%s", self->desc->name, name);
    if (!m || !(m->help = strdup(help ? help : name)) || !(m->name = sl_buf_detach(&b, &(size_t){0}))) {
        if (m)
            free(m->help);
        free(m);
        sl_buf_free(&b);
        return NULL;
    }
    m->gauge = gauge;
    m->next = h->metrics;
    h->metrics = m;
    return m;
}

static struct sl_metric *api_counter_new(const struct sl_plugin_handle *self, const char *name,
                                         const char *help)
{
    return metric_new(self, name, help, 0);
}

static struct sl_metric *api_gauge_new(const struct sl_plugin_handle *self, const char *name,
                                       const char *help)
{
    return metric_new(self, name, help, 1);
}

static void api_metric_add(struct sl_metric *m, int64_t d)
{
    if (m)
        __atomic_add_fetch(&m->v, d, __ATOMIC_RELAXED);
}

static void api_metric_set(struct sl_metric *m, int64_t v)
{
    if (m)
        __atomic_store_n(&m->v, v, __ATOMIC_RELAXED);
}

static void api_json_int64(struct sl_buf *b, int64_t v)
{
    sl_buf_printf(b, "\"%lld\"", (long long)v);
}

static const struct cJSON *api_json_member(const struct cJSON *j, const char *key)
{
    return cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, key) : NULL;
}

static int api_json_number(const struct cJSON *j, double *out)
{
    if (!cJSON_IsNumber(j)) {
        *out = 0;
        return SL_EINVAL;
    }
    *out = j->valuedouble;
    return 0;
}

static const char *api_json_string_value(const struct cJSON *j)
{
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static enum sl_kind api_type_kind(const struct sl_type *t)
{
    return t->kind;
}

static const struct sl_type *api_type_elem(const struct sl_type *t)
{
    return t->elem;
}

static struct sl_type *api_type_scalar(enum sl_kind k)
{
    if (k < SL_STRING || k > SL_TIMESTAMP)
        return NULL;
    struct sl_type *t = calloc(1, sizeof *t);
    if (t)
        t->kind = k;
    return t;
}

static struct sl_type *api_type_array(struct sl_type *elem)
{
    struct sl_type *t = elem ? calloc(1, sizeof *t) : NULL;
    if (!t) {
        sl_type_free(elem);
        return NULL;
    }
    t->kind = SL_ARRAY;
    t->elem = elem;
    return t;
}

static struct sl_type *api_type_struct(size_t n, const char *const *names, struct sl_type **types)
{
    struct sl_type *t = calloc(1, sizeof *t);
    int ok = t && n > 0 && (t->fields = calloc(n, sizeof *t->fields));
    if (t)
        t->kind = SL_STRUCT;
    if (ok)
        t->nfields = n;
    for (size_t i = 0; i < n; i++) {
        if (ok) {
            t->fields[i].type = types[i];
            if (!types[i] || !names[i] || !(t->fields[i].name = strdup(names[i])))
                ok = 0;
        } else {
            sl_type_free(types[i]);
        }
    }
    if (!ok) {
        sl_type_free(t);
        return NULL;
    }
    return t;
}

static const char *api_kind_name(enum sl_kind k)
{
    return sl_kind_name(k);
}

static const struct sl_agg_params *api_agg_params(const struct sl_agg_spec *s)
{
    return &s->params;
}

static const struct cJSON *api_agg_params_json(const struct sl_agg_spec *s)
{
    return s->params_json;
}

static const struct sl_type *api_agg_input_type(const struct sl_agg_spec *s)
{
    return s->input_type;
}

static const struct sl_plugin_api api = {
    .abi_major = SL_PLUGIN_ABI_MAJOR,
    .abi_minor = SL_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(struct sl_plugin_api),
    .log = api_log,
    .error_set = sl_error_set,
    .malloc = malloc,
    .calloc = calloc,
    .realloc = realloc,
    .free = free,
    .now_ns = sl_now_ns,
    .config_get = api_config_get,
    .counter_new = api_counter_new,
    .gauge_new = api_gauge_new,
    .metric_add = api_metric_add,
    .metric_set = api_metric_set,
    .buf_append = sl_buf_append,
    .buf_printf = sl_buf_printf,
    .json_string = sl_buf_json_str,
    .json_int64 = api_json_int64,
    .json_double = sl_agg_json_double,
    .json_scalar = sl_agg_scalar_json,
    .json_member = api_json_member,
    .json_number = api_json_number,
    .json_string_value = api_json_string_value,
    .type_kind = api_type_kind,
    .type_elem = api_type_elem,
    .type_scalar = api_type_scalar,
    .type_array = api_type_array,
    .type_struct = api_type_struct,
    .type_clone = sl_type_clone,
    .type_free = sl_type_free,
    .kind_name = api_kind_name,
    .agg_params = api_agg_params,
    .agg_params_json = api_agg_params_json,
    .agg_input_type = api_agg_input_type,
    .batch_each = sl_batch_each,
};

/* ---- registries ---- */

static const struct sl_plugin_handle *find_kind(uint32_t kind, const char *name)
{
    for (const struct sl_plugin_handle *h = plugins; h; h = h->next)
        if (h->desc->kind == kind && strcmp(h->desc->name, name) == 0)
            return h;
    return NULL;
}

static int ident_ok(const char *s)
{
    if (!s || !*s || strlen(s) > NAME_MAX_LEN || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return 0;
    return 1;
}

/* Globals of the sandbox a Lua library may not take. */
static int lua_name_taken(const char *s)
{
    static const char *const taken[] = {
        "_G", "_ENV", "_VERSION", "sluice", "string", "table", "math", "utf8", "coroutine", "os",
        "cjson", "io", "debug", "package", "require", "load", "print", "pairs", "ipairs", "next",
        "type", "tostring", "tonumber", "pcall", "xpcall", "error", "assert", "select",
        "rawget", "rawset", "rawequal", "rawlen", "setmetatable", "getmetatable",
        "collectgarbage", NULL};
    for (int i = 0; taken[i]; i++)
        if (strcmp(taken[i], s) == 0)
            return 1;
    return 0;
}

/* Every ops table starts with {uint32_t abi_version, struct_size}: present, and the version
 * this server speaks for the kind. */
static int ops_head(const struct sl_plugin *d, const char *file, uint32_t want,
                    struct sl_error *err)
{
    const uint32_t *head = d->ops;
    if (!head)
        return sl_error_set(err, SL_EINVAL, "plugin %s: no %s ops table", file,
                            kind_name(d->kind));
    if (head[0] != want)
        return sl_error_set(err, SL_EINVAL, "plugin %s: %s ops version %u, this sluice speaks %u",
                            file, kind_name(d->kind), head[0], want);
    return 0;
}

/* Checks the kind's ops table (its version and size first). */
static int check_ops(const struct sl_plugin *d, const char *file, struct sl_error *err)
{
    switch (d->kind) {
    case SL_PLUGIN_AGG: {
        const struct sl_agg_fn *f = d->ops;
        int rc = ops_head(d, file, SL_AGG_ABI_VERSION, err);
        if (rc)
            return rc;
        if (sl_agg_check_fn(f) != 0)
            return sl_error_set(err, SL_EINVAL,
                                "plugin %s: aggregation ops table is %u bytes (at least %zu) or "
                                "lacks a name or a mandatory callback",
                                file, f->struct_size, AGG_SIZE_1_0);
        if (!f->name || strcmp(f->name, d->name) != 0)
            return sl_error_set(err, SL_EINVAL,
                                "plugin %s: aggregation function `%s` must be named as its "
                                "plugin `%s`", file, f->name ? f->name : "", d->name);
        return 0;
    }
    case SL_PLUGIN_STORE: {
        const struct sl_store_ops *s = d->ops;
        int rc = ops_head(d, file, SL_STORE_ABI_VERSION, err);
        if (rc)
            return rc;
        if (s->struct_size < STORE_SIZE_1_0 || !s->open || !s->get || !s->write || !s->scan ||
            !s->close)
            return sl_error_set(err, SL_EINVAL,
                                "plugin %s: online-store ops table is %u bytes (at least %zu) or "
                                "lacks open, get, write, scan or close",
                                file, s->struct_size, STORE_SIZE_1_0);
        int iters = !!s->iter_new + !!s->iter_seek + !!s->iter_next + !!s->iter_key +
                    !!s->iter_value + !!s->iter_free;
        if (iters != 0 && iters != 6)
            return sl_error_set(err, SL_EINVAL,
                                "plugin %s: online-store iterator callbacks must be all set or "
                                "all NULL", file);
        return 0;
    }
    case SL_PLUGIN_LUA: {
        const struct sl_lua_lib *l = d->ops;
        int rc = ops_head(d, file, SL_LUA_LIB_ABI_VERSION, err);
        if (rc)
            return rc;
        if (l->struct_size < LUA_SIZE_1_0 || !l->fns)
            return sl_error_set(err, SL_EINVAL,
                                "plugin %s: lua-library ops table is %u bytes (at least %zu) or "
                                "has no functions", file, l->struct_size, LUA_SIZE_1_0);
        if (!ident_ok(l->table) || lua_name_taken(l->table))
            return sl_error_set(err, SL_EINVAL,
                                "plugin %s: `%s` cannot be a Lua library table name (an "
                                "identifier not used by the sandbox)", file,
                                l->table ? l->table : "");
        for (const struct sl_lua_fn *f = l->fns; f->name; f++)
            if (!ident_ok(f->name) || !f->cb_call)
                return sl_error_set(err, SL_EINVAL,
                                    "plugin %s: Lua function `%s` has a bad name or no cb_call",
                                    file, f->name);
        for (const struct sl_plugin_handle *h = plugins; h; h = h->next)
            if (h->desc->kind == SL_PLUGIN_LUA &&
                strcmp(((const struct sl_lua_lib *)h->desc->ops)->table, l->table) == 0)
                return sl_error_set(err, SL_EEXIST,
                                    "plugin %s: Lua table `%s` is already taken by %s", file,
                                    l->table, h->file);
        return 0;
    }
    case SL_PLUGIN_SOURCE:
        return sl_error_set(err, SL_EINVAL,
                            "plugin %s: stream-source plugins are reserved in ABI %d.%d and not "
                            "loaded by this sluice yet", file, SL_PLUGIN_ABI_MAJOR,
                            SL_PLUGIN_ABI_MINOR);
    }
    return sl_error_set(err, SL_EINVAL, "plugin %s: unknown plugin kind %u", file, d->kind);
}

static void handle_free(struct sl_plugin_handle *h)
{
    if (!h)
        return;
    for (struct sl_metric *m = h->metrics, *next; m; m = next) {
        next = m->next;
        free(m->name);
        free(m->help);
        free(m);
    }
    free(h->file);
    free(h);
}

/* The one way in, for built-ins (dl NULL) and loaded plugins: checks d (versions and sizes
 * before anything else), runs cb_init, registers. On failure nothing stays registered; the
 * caller still owns dl. */
static int plugin_add(const struct sl_plugin *d, const char *file, void *dl, struct sl_error *err)
{
    if (!d)
        return sl_error_set(err, SL_EINVAL, "plugin %s: %s returned no descriptor", file,
                            SL_PLUGIN_ENTRY_NAME);
    if (d->abi_major != SL_PLUGIN_ABI_MAJOR || d->abi_minor > SL_PLUGIN_ABI_MINOR)
        return sl_error_set(err, SL_EINVAL, "plugin %s: ABI %u.%u, this sluice speaks %d.%d",
                            file, d->abi_major, d->abi_minor, SL_PLUGIN_ABI_MAJOR,
                            SL_PLUGIN_ABI_MINOR);
    if (d->struct_size < DESC_SIZE_1_0)
        return sl_error_set(err, SL_EINVAL,
                            "plugin %s: descriptor is %u bytes, ABI %u.%u needs at least %zu",
                            file, d->struct_size, d->abi_major, d->abi_minor, DESC_SIZE_1_0);
    if (!ident_ok(d->name))
        return sl_error_set(err, SL_EINVAL,
                            "plugin %s: name `%s` is not an identifier of at most %d characters",
                            file, d->name ? d->name : "", NAME_MAX_LEN);
    int rc = check_ops(d, file, err);
    if (rc)
        return rc;
    const struct sl_plugin_handle *dup = find_kind(d->kind, d->name);
    if (dup)
        return sl_error_set(err, SL_EEXIST, "plugin %s: %s `%s` is already registered by %s",
                            file, kind_name(d->kind), d->name, dup->file);

    for (size_t i = 0; i < nsettings; i++) /* before init: a typo never runs the plugin */
        if (strcmp(settings[i].plugin, d->name) == 0 && !config_has(d, settings[i].key))
            return sl_error_set(err, SL_EINVAL,
                                "plugin-config `%s.%s`: plugin %s has no setting `%s`",
                                settings[i].plugin, settings[i].key, file, settings[i].key);

    struct sl_plugin_handle *h = calloc(1, sizeof *h);
    if (!h || !(h->file = strdup(file))) {
        free(h);
        return sl_error_set(err, SL_ENOMEM, "plugin %s: out of memory", file);
    }
    h->desc = d;
    if (d->kind == SL_PLUGIN_STORE) {
        const struct sl_store_ops *so = d->ops;
        memcpy(&h->store, so, so->struct_size < sizeof(h->store) ? so->struct_size : sizeof(h->store));
        h->store.struct_size = sizeof(h->store);
    }
    h->dl = dl;
    if (d->cb_init) {
        struct sl_error ierr = {0};
        rc = d->cb_init(&api, h, &h->ctx, &ierr);
        if (rc) {
            handle_free(h);
            return sl_error_set(err, rc < 0 ? rc : SL_EINVAL, "plugin %s: init failed: %s", file,
                                ierr.msg[0] ? ierr.msg : sl_strerror(rc));
        }
    }
    if (d->kind == SL_PLUGIN_AGG) {
        rc = sl_agg_add(d->ops, dl == NULL);
        if (rc) {
            if (d->cb_exit)
                d->cb_exit(h->ctx);
            handle_free(h);
            return sl_error_set(err, rc, "plugin %s: cannot register aggregation function `%s`: %s",
                                file, d->name,
                                rc == SL_EEXIST ? "the name is taken" : sl_strerror(rc));
        }
    }
    *plugins_tail = h;
    plugins_tail = &h->next;
    return 0;
}

/* ---- built-ins ---- */

#define BUILTIN(k, n, d, o)                                                                   \
    {SL_PLUGIN_ABI_MAJOR, SL_PLUGIN_ABI_MINOR, sizeof(struct sl_plugin), k, n, PACKAGE_VERSION, \
     d, NULL, NULL, NULL, o}
#define AGG(fn, d) BUILTIN(SL_PLUGIN_AGG, #fn, d, &sl_agg_fn_##fn)

static const struct sl_plugin builtins[] = {
    AGG(count, "number of non-null values"),
    AGG(sum, "sum"),
    AGG(mean, "arithmetic mean"),
    AGG(min, "smallest value"),
    AGG(max, "largest value"),
    AGG(last, "latest value"),
    AGG(last_n, "latest n values"),
    AGG(first_n, "earliest n values"),
    AGG(last_distinct, "latest n distinct values"),
    AGG(first_distinct, "earliest n distinct values"),
    AGG(stddev_pop, "population standard deviation"),
    AGG(stddev_samp, "sample standard deviation"),
    AGG(var_pop, "population variance"),
    AGG(var_samp, "sample variance"),
    AGG(approx_count_distinct, "distinct values (HyperLogLog)"),
    AGG(approx_percentile, "percentile (mergeable sketch)"),
    BUILTIN(SL_PLUGIN_STORE, "leveldb", "embedded LevelDB online store", &sl_store_leveldb_ops),
};

static pthread_once_t builtins_once = PTHREAD_ONCE_INIT;

static void builtins_register(void)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        struct sl_error err = {0};
        if (plugin_add(&builtins[i], BUILTIN_FILE, NULL, &err) != 0)
            sl_err("%s", err.msg); /* a bug in the built-in table, caught by the unit tests */
    }
}

void sl_plugin_builtins(void)
{
    pthread_once(&builtins_once, builtins_register);
}

/* ---- loading ---- */

int sl_plugin_load(const char *path, struct sl_error *err)
{
    sl_plugin_builtins();
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        /* dlerror usually starts with the path already */
        if (e && strncmp(e, path, strlen(path)) == 0)
            return sl_error_set(err, SL_EINVAL, "plugin %s", e);
        return sl_error_set(err, SL_EINVAL, "plugin %s: %s", path, e ? e : "cannot load");
    }
    sl_plugin_entry_fn entry;
    *(void **)&entry = dlsym(dl, SL_PLUGIN_ENTRY_NAME);
    if (!entry) {
        dlclose(dl);
        return sl_error_set(err, SL_EINVAL,
                            "plugin %s: no entry symbol %s (not a Sluice plugin)", path,
                            SL_PLUGIN_ENTRY_NAME);
    }
    int rc = plugin_add(entry(), path, dl, err);
    if (rc) {
        dlclose(dl);
        return rc;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sl_plugin_load_dir(const char *dir, struct sl_error *err)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return sl_error_set(err, SL_EIO, "plugin-dir %s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(dp))) {
        size_t l = strlen(e->d_name);
        if (l < 4 || strcmp(e->d_name + l - 3, ".so") != 0 || e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory");
                break;
            }
            names = p;
        }
        struct sl_buf b = SL_BUF_INIT;
        sl_buf_printf(&b, "%s/%s", dir, e->d_name);
        if (!(names[n] = sl_buf_detach(&b, &(size_t){0})))
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        else
            n++;
    }
    closedir(dp);
    if (rc == 0 && n > 1)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = sl_plugin_load(names[i], err);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int settings_parse(const char *list, struct sl_error *err)
{
    for (const char *p = list; p && *p;) {
        size_t l = strcspn(p, "\n");
        if (l) {
            char *line = strndup(p, l);
            if (!line)
                return sl_error_set(err, SL_ENOMEM, "out of memory");
            char *dot = strchr(line, '.'), *eq = strchr(line, '=');
            if (!dot || !eq || dot > eq || dot == line || eq == dot + 1) {
                sl_error_set(err, SL_EINVAL,
                             "plugin-config `%s` wants <plugin>.<key>=<value>", line);
                free(line);
                return SL_EINVAL;
            }
            struct setting *s = realloc(settings, (nsettings + 1) * sizeof *s);
            if (!s) {
                free(line);
                return sl_error_set(err, SL_ENOMEM, "out of memory");
            }
            settings = s;
            *dot = 0;
            *eq = 0;
            s[nsettings].plugin = line;
            s[nsettings].key = dot + 1;
            s[nsettings].value = eq + 1;
            nsettings++;
        }
        p += l;
        if (*p)
            p++;
    }
    return 0;
}

static int each_line(const char *list, int (*fn)(const char *, struct sl_error *),
                     struct sl_error *err)
{
    for (const char *p = list; p && *p;) {
        size_t l = strcspn(p, "\n");
        if (l) {
            char *line = strndup(p, l);
            if (!line)
                return sl_error_set(err, SL_ENOMEM, "out of memory");
            int rc = fn(line, err);
            free(line);
            if (rc)
                return rc;
        }
        p += l;
        if (*p)
            p++;
    }
    return 0;
}

int sl_plugin_load_config(const char *paths, const char *dirs, const char *setting_list,
                          struct sl_error *err)
{
    sl_plugin_builtins();
    int rc = settings_parse(setting_list, err);
    if (rc == 0)
        rc = each_line(dirs, sl_plugin_load_dir, err);
    if (rc == 0)
        rc = each_line(paths, sl_plugin_load, err);
    for (size_t i = 0; rc == 0 && i < nsettings; i++) {
        const struct sl_plugin_handle *h = plugins;
        while (h && strcmp(h->desc->name, settings[i].plugin) != 0)
            h = h->next;
        if (!h)
            rc = sl_error_set(err, SL_EINVAL, "plugin-config `%s.%s`: no plugin `%s` is loaded",
                              settings[i].plugin, settings[i].key, settings[i].plugin);
    }
    return rc;
}

void sl_plugin_unload_all(void)
{
    struct sl_plugin_handle **pp = &plugins;
    while (*pp) {
        struct sl_plugin_handle *h = *pp;
        if (!h->dl) {
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        if (h->desc->kind == SL_PLUGIN_AGG)
            sl_agg_remove(h->desc->ops);
        if (h->desc->cb_exit)
            h->desc->cb_exit(h->ctx);
        dlclose(h->dl);
        handle_free(h);
    }
    plugins_tail = pp;
    for (size_t i = 0; i < nsettings; i++)
        free(settings[i].plugin);
    free(settings);
    settings = NULL;
    nsettings = 0;
}

/* ---- online stores ---- */

int sl_plugin_store_open(const char *name, const char *dir, size_t cache_mb,
                         struct sl_store *out, struct sl_error *err)
{
    sl_plugin_builtins();
    const struct sl_plugin_handle *h = find_kind(SL_PLUGIN_STORE, name);
    if (!h) {
        struct sl_buf b = SL_BUF_INIT;
        for (const struct sl_plugin_handle *p = plugins; p; p = p->next)
            if (p->desc->kind == SL_PLUGIN_STORE)
                sl_buf_printf(&b, "%s%s", b.len ? ", " : "", p->desc->name);
        sl_error_set(err, SL_ENOTFOUND, "no online store `%s`; registered: %s", name,
                     b.len && sl_buf_cstr(&b) ? b.p : "none");
        sl_buf_free(&b);
        return SL_ENOTFOUND;
    }
    const struct sl_store_ops *ops = &h->store;
    void *ctx = NULL;
    int rc = ops->open(h->ctx, dir, cache_mb, &ctx, err);
    if (rc)
        return rc;
    out->ops = ops;
    out->ctx = ctx;
    return 0;
}

/* ---- listing and metrics ---- */

void sl_plugin_list_json(struct sl_buf *b)
{
    sl_plugin_builtins();
    sl_buf_puts(b, "{\"plugins\":[");
    for (const struct sl_plugin_handle *h = plugins; h; h = h->next) {
        const struct sl_plugin *d = h->desc;
        sl_buf_puts(b, h == plugins ? "{\"name\":" : ",{\"name\":");
        sl_buf_json_str(b, d->name, strlen(d->name));
        sl_buf_printf(b, ",\"kind\":\"%s\",\"version\":", kind_name(d->kind));
        const char *v = d->version ? d->version : "";
        sl_buf_json_str(b, v, strlen(v));
        sl_buf_printf(b, ",\"abi\":\"%u.%u\",\"file\":", d->abi_major, d->abi_minor);
        sl_buf_json_str(b, h->file, strlen(h->file));
        const char *ds = d->description ? d->description : "";
        sl_buf_puts(b, ",\"description\":");
        sl_buf_json_str(b, ds, strlen(ds));
        sl_buf_putc(b, '}');
    }
    sl_buf_puts(b, "]}");
}

void sl_plugin_metrics(struct sl_buf *b)
{
    for (const struct sl_plugin_handle *h = plugins; h; h = h->next)
        for (const struct sl_metric *m = h->metrics; m; m = m->next)
            sl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", m->name, m->help, m->name,
                          m->gauge ? "gauge" : "counter", m->name,
                          (long long)__atomic_load_n(&m->v, __ATOMIC_RELAXED));
}

/* ---- Lua libraries ---- */

#define BUF_MT "sluice.plugin.buf"

static int buf_gc(lua_State *L)
{
    sl_buf_free(lua_touserdata(L, 1));
    return 0;
}

/* Calls a plugin function: upvalue 1 its struct sl_lua_fn, 2 the plugin's ctx. The result
 * buffer lives in a collectable userdata so a Lua error never leaks it. */
static int lua_call_fn(lua_State *L)
{
    const struct sl_lua_fn *f = lua_touserdata(L, lua_upvalueindex(1));
    void *ctx = lua_touserdata(L, lua_upvalueindex(2));
    int n = lua_gettop(L);
    if (n > SL_LUA_LIB_MAX_ARGS)
        return luaL_error(L, "%s: at most %d arguments", f->name, SL_LUA_LIB_MAX_ARGS);
    struct sl_scalar args[SL_LUA_LIB_MAX_ARGS];
    memset(args, 0, sizeof args);
    for (int i = 0; i < n; i++) {
        struct sl_scalar *a = &args[i];
        switch (lua_type(L, i + 1)) {
        case LUA_TNIL: a->null = 1; break;
        case LUA_TBOOLEAN: a->kind = SL_BOOL; a->i = lua_toboolean(L, i + 1); a->f = (double)a->i; break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, i + 1)) {
                a->kind = SL_INT64;
                a->i = lua_tointeger(L, i + 1);
                a->f = (double)a->i;
            } else {
                a->kind = SL_FLOAT64;
                a->f = lua_tonumber(L, i + 1);
            }
            break;
        case LUA_TSTRING: a->kind = SL_STRING; a->str = lua_tolstring(L, i + 1, &a->len); break;
        default:
            return luaL_error(L, "%s: argument %d: %s is not a number, string, boolean or nil",
                              f->name, i + 1, luaL_typename(L, i + 1));
        }
    }
    struct sl_buf *out = lua_newuserdatauv(L, sizeof *out, 0);
    memset(out, 0, sizeof *out);
    luaL_setmetatable(L, BUF_MT);
    struct sl_scalar ret;
    memset(&ret, 0, sizeof ret);
    struct sl_error err = {0};
    int rc = f->cb_call(ctx, args, n, &ret, out, &err);
    if (rc == 0 && out->oom)
        rc = sl_error_set(&err, SL_ENOMEM, "out of memory");
    if (rc)
        return luaL_error(L, "%s: %s", f->name, err.msg[0] ? err.msg : sl_strerror(rc));
    if (ret.null)
        lua_pushnil(L);
    else if (ret.kind == SL_STRING)
        lua_pushlstring(L, out->p ? out->p : "", out->len);
    else if (ret.kind == SL_INT64 || ret.kind == SL_INT32 || ret.kind == SL_TIMESTAMP)
        lua_pushinteger(L, ret.i);
    else if (ret.kind == SL_FLOAT64 || ret.kind == SL_FLOAT32)
        lua_pushnumber(L, ret.f);
    else if (ret.kind == SL_BOOL)
        lua_pushboolean(L, ret.i != 0);
    else
        lua_pushnil(L);
    sl_buf_free(out);
    return 1;
}

int sl_plugin_lua_open(struct lua_State *L)
{
    if (luaL_newmetatable(L, BUF_MT)) {
        lua_pushcfunction(L, buf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    for (const struct sl_plugin_handle *h = plugins; h; h = h->next) {
        if (h->desc->kind != SL_PLUGIN_LUA)
            continue;
        const struct sl_lua_lib *lib = h->desc->ops;
        if (lua_getglobal(L, lib->table) != LUA_TNIL)
            luaL_error(L, "Lua library %s of %s: global `%s` exists", h->desc->name, h->file,
                       lib->table);
        lua_pop(L, 1);
        lua_newtable(L);
        for (const struct sl_lua_fn *f = lib->fns; f->name; f++) {
            lua_pushlightuserdata(L, (void *)f);
            lua_pushlightuserdata(L, h->ctx);
            lua_pushcclosure(L, lua_call_fn, 2);
            lua_setfield(L, -2, f->name);
        }
        sl_vm_make_readonly(L);
        lua_setglobal(L, lib->table);
    }
    return 0;
}
