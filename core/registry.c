/* Workspace snapshots built from canonical repository JSON, persisted in the store under
 * the 'R' prefix, swapped atomically on apply. */
#include "registry.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "buf.h"
#include "error.h"
#include "log.h"
#include "sl_limits.h"
#include "store.h"
#include "tiles.h"
#include "timeutil.h"

static const char REG_PREFIX[] = {SL_KEY_REGISTRY, 0};

struct slot {
    char *name;
    struct sl_ws *ws;
};

struct sl_registry {
    struct sl_store *store;
    pthread_rwlock_t lock;
    size_t n, cap;
    struct slot *slots; /* sorted by name */
};

/* ---- small cJSON helpers ---- */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static const cJSON *jarr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsArray(v) ? v : NULL;
}

static int where(const cJSON *o, struct sl_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int where(const cJSON *o, struct sl_error *err, const char *fmt, ...)
{
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(o, "line");
    const char *file = jstr(o, "file");
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sl_error_set(err, SL_EINVAL, "%s", msg);
    if (file)
        sl_error_prefix(err, "%s:%d: ", file, cJSON_IsNumber(line) ? line->valueint : 0);
    return SL_EINVAL;
}

static int parse_fields(const cJSON *arr, size_t *n, struct sl_field **out,
                        struct sl_error *err)
{
    size_t cnt = (size_t)cJSON_GetArraySize(arr);
    *n = 0;
    *out = calloc(cnt ? cnt : 1, sizeof(**out));
    if (!*out)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    const cJSON *f;
    cJSON_ArrayForEach(f, arr)
    {
        const char *name = jstr(f, "name");
        struct sl_field *d = &(*out)[*n];
        if (!name)
            return sl_error_set(err, SL_EINVAL, "field without a name");
        d->name = strdup(name);
        (*n)++;
        d->type = sl_type_from_cjson(cJSON_GetObjectItemCaseSensitive(f, "dataType"), err);
        if (!d->name || !d->type)
            return err->code ? err->code : SL_ENOMEM;
    }
    return 0;
}

static void free_fields(size_t n, struct sl_field *f)
{
    for (size_t i = 0; f && i < n; i++) {
        free(f[i].name);
        sl_type_free(f[i].type);
    }
    free(f);
}

static int field_index(size_t n, const struct sl_field *f, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* The id of an object: 32 hex digits of SHA-256 over the workspace, kind, and the parts of
 * its definition that decide what is stored (not descriptions, tags, or files). */
static void object_id(const char *ws, const char *kind, const cJSON *spec, char out[33])
{
    static const char *const skip[] = {"file", "line", "description", "tags", "owner",
                                       "online", "offline", "feature_start_time",
                                       "batch_schedule", "ttl"};
    cJSON *copy = cJSON_Duplicate(spec, 1);
    for (size_t i = 0; copy && i < sizeof(skip) / sizeof(*skip); i++)
        cJSON_DeleteItemFromObjectCaseSensitive(copy, skip[i]);
    cJSON *tr = copy ? cJSON_GetObjectItemCaseSensitive(copy, "transformation") : NULL;
    if (cJSON_IsObject(tr)) {
        cJSON_DeleteItemFromObjectCaseSensitive(tr, "file");
        cJSON_DeleteItemFromObjectCaseSensitive(tr, "line");
    }
    char *text = copy ? cJSON_PrintUnformatted(copy) : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    memset(md, 0, sizeof(md));
    if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL)) {
        EVP_DigestUpdate(c, ws, strlen(ws) + 1);
        EVP_DigestUpdate(c, kind, strlen(kind) + 1);
        if (text)
            EVP_DigestUpdate(c, text, strlen(text));
        EVP_DigestFinal_ex(c, md, &mdlen);
    }
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 16; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
    free(text);
    cJSON_Delete(copy);
}

/* What decides a view's id beyond its definition: the previous snapshot (apply), or the
 * introduction versions persisted with the workspace (load). */
struct build_ctx {
    const struct sl_ws *prev;
    const cJSON *intro;
};

/* The id of a view: its content hash alone for definitions from before versioned ids (epoch
 * and intro 0, so old stored data stays reachable), else that hash with the workspace epoch
 * and the version that introduced the definition, which no other definition shares. */
static void view_id(const struct sl_ws *ws, struct sl_view *v, const cJSON *j,
                    const struct build_ctx *bc)
{
    object_id(ws->name, "feature_view", j, v->base);
    const struct sl_view *old = bc && bc->prev ? sl_ws_view(bc->prev, v->name) : NULL;
    const cJSON *in = bc && bc->intro ? cJSON_GetObjectItemCaseSensitive(bc->intro, v->name) : NULL;
    if (bc && bc->prev)
        v->intro = old && strcmp(old->base, v->base) == 0 ? old->intro : ws->version;
    else
        v->intro = cJSON_IsString(in) ? strtoull(in->valuestring, NULL, 10) : 0;
    if (ws->epoch == 0 && v->intro == 0) {
        memcpy(v->id, v->base, sizeof(v->id));
        return;
    }
    char tag[80];
    snprintf(tag, sizeof(tag), "%s/%016llx/%llu", v->base, (unsigned long long)ws->epoch,
             (unsigned long long)v->intro);
    cJSON *o = cJSON_CreateString(tag);
    object_id(ws->name, "feature_view_instance", o, v->id);
    cJSON_Delete(o);
}

/* ---- building ---- */

static int build_entity(struct sl_entity *e, const cJSON *j, struct sl_error *err)
{
    e->name = strdup(jstr(j, "name") ? jstr(j, "name") : "");
    if (!e->name)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return parse_fields(jarr(j, "join_keys"), &e->nkeys, &e->keys, err);
}

static int build_source(struct sl_source *s, const cJSON *j, struct sl_error *err)
{
    s->name = strdup(jstr(j, "name") ? jstr(j, "name") : "");
    s->is_request = jstr(j, "kind") && strcmp(jstr(j, "kind"), "request") == 0;
    if (!s->name)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    int rc = parse_fields(jarr(j, "schema"), &s->nfields, &s->schema, err);
    if (rc)
        return rc;
    const char *ts = jstr(j, "timestamp_field");
    s->ts_index = ts ? field_index(s->nfields, s->schema, ts) : -1;
    s->has_post_processor = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "post_processor"));
    return 0;
}

static int parse_duration_field(const cJSON *j, const char *k, int64_t *out,
                                struct sl_error *err)
{
    const char *s = jstr(j, k);
    *out = 0;
    if (!s)
        return 0;
    if (strcmp(s, "lifetime") == 0)
        return 0;
    if (sl_duration_parse(s, strlen(s), out) != 0)
        return where(j, err, "bad duration `%s`", s);
    return 0;
}

const struct sl_field *sl_view_row_schema(const struct sl_view *v, size_t *n)
{
    if (v->out_schema) {
        *n = v->nout;
        return v->out_schema;
    }
    *n = v->source ? v->source->nfields : 0;
    return v->source ? v->source->schema : NULL;
}

static int add_out(struct sl_view *v, const char *name, const struct sl_type *t,
                   struct sl_error *err)
{
    if (field_index(v->nout, v->out_schema, name) >= 0)
        return 0;
    struct sl_field *g = realloc(v->out_schema, (v->nout + 1) * sizeof(*g));
    if (!g)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    v->out_schema = g;
    g[v->nout].name = strdup(name);
    g[v->nout].type = sl_type_clone(t);
    v->nout++;
    if (!g[v->nout - 1].name || !g[v->nout - 1].type)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return 0;
}

/* The output schema of a transformed view: join keys, timestamp, feature columns (an
 * attribute's declared type, an aggregate's input type). */
static int output_schema(struct sl_view *v, const cJSON *j, const char *ts, struct sl_error *err)
{
    struct sl_type tstype = {.kind = SL_TIMESTAMP};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < v->nkeys; i++)
        rc = add_out(v, v->join_keys[i].name, v->join_keys[i].type, err);
    if (rc == 0)
        rc = add_out(v, ts, &tstype, err);
    const cJSON *f;
    cJSON_ArrayForEach(f, jarr(j, "features"))
    {
        const char *col = jstr(f, "column");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(f, "input_type");
        if (!t)
            t = cJSON_GetObjectItemCaseSensitive(f, "dataType");
        struct sl_type *type = sl_type_from_cjson(t, err);
        if (!type)
            return err->code ? err->code : SL_ENOMEM;
        if (col && rc == 0)
            rc = add_out(v, col, type, err);
        sl_type_free(type);
        if (rc)
            return rc;
    }
    return rc;
}

static int build_view(struct sl_ws *ws, struct sl_view *v, cJSON *j, const struct build_ctx *bc,
                      struct sl_error *err)
{
    v->spec = j;
    v->name = strdup(jstr(j, "name") ? jstr(j, "name") : "");
    if (!v->name)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    view_id(ws, v, j, bc);
    for (int i = 0; i < 8; i++) {
        unsigned hi = (unsigned)(v->id[2 * i] <= '9' ? v->id[2 * i] - '0' : v->id[2 * i] - 'a' + 10);
        unsigned lo = (unsigned)(v->id[2 * i + 1] <= '9' ? v->id[2 * i + 1] - '0'
                                                          : v->id[2 * i + 1] - 'a' + 10);
        v->key[i] = (unsigned char)(hi << 4 | lo);
    }
    v->is_realtime = jstr(j, "kind") && strcmp(jstr(j, "kind"), "realtime") == 0;
    v->online = jbool(j, "online");
    v->offline = jbool(j, "offline");
    v->ts_index = -1;
    int rc = parse_duration_field(j, "ttl", &v->ttl_ns, err);
    if (rc == 0)
        rc = parse_duration_field(j, "batch_schedule", &v->schedule_ns, err);
    const char *start = jstr(j, "feature_start_time");
    v->start_ns = INT64_MIN;
    if (rc == 0 && start && sl_time_parse(start, strlen(start), &v->start_ns) != 0)
        return where(j, err, "bad feature_start_time `%s`", start);
    if (rc == 0)
        rc = parse_duration_field(j, "aggregation_interval", &v->interval_ns, err);
    if (rc)
        return rc;
    const char *mode = jstr(j, "mode");
    v->mode = !mode || strcmp(mode, "attribute") == 0 ? SL_MODE_ATTRIBUTE
              : strcmp(mode, "time_interval") == 0   ? SL_MODE_TIME_INTERVAL
                                                     : SL_MODE_CONTINUOUS;
    v->has_transformation = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "transformation"));
    rc = parse_fields(jarr(j, "join_keys"), &v->nkeys, &v->join_keys, err);
    if (rc)
        return rc;
    if (v->nkeys > SL_MAX_JOIN_KEYS)
        return where(j, err, "feature view `%s` has %zu join keys; at most %d are allowed",
                     v->name, v->nkeys, SL_MAX_JOIN_KEYS);

    if (!v->is_realtime) {
        const char *src = jstr(j, "source");
        v->source = src ? sl_ws_source(ws, src) : NULL;
        if (!v->source)
            return where(j, err, "feature view refers to unknown source `%s`", src ? src : "?");
        struct sl_source *s = v->source;
        const char *ts = jstr(j, "timestamp_field");
        if (!ts && s->ts_index >= 0)
            ts = s->schema[s->ts_index].name;
        if (!ts || field_index(s->nfields, s->schema, ts) < 0)
            return where(j, err, "timestamp field of feature view `%s` is not in its source", v->name);
        if (v->has_transformation && (rc = output_schema(v, j, ts, err)) != 0)
            return rc;
        size_t nrow;
        const struct sl_field *row = sl_view_row_schema(v, &nrow);
        v->ts_index = field_index(nrow, row, ts);
        v->key_index = calloc(v->nkeys ? v->nkeys : 1, sizeof(int));
        if (!v->key_index)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        for (size_t i = 0; i < v->nkeys; i++) {
            v->key_index[i] = field_index(nrow, row, v->join_keys[i].name);
            if (v->key_index[i] < 0)
                return where(j, err, "join key `%s` is not in the source schema",
                             v->join_keys[i].name);
        }
        struct sl_view **grown = realloc(s->views, (s->nviews + 1) * sizeof(*grown));
        if (!grown)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        s->views = grown;
        s->views[s->nviews++] = v;
    } else {
        const cJSON *srcs = jarr(j, "sources"), *it;
        if (cJSON_GetArraySize(srcs) > SL_MAX_REALTIME_INPUTS)
            return where(j, err, "realtime feature view `%s` has %d sources; at most %d are allowed",
                         v->name, cJSON_GetArraySize(srcs), SL_MAX_REALTIME_INPUTS);
        v->rt_sources = calloc((size_t)cJSON_GetArraySize(srcs) + 1, sizeof(char *));
        if (!v->rt_sources)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        cJSON_ArrayForEach(it, srcs)
        {
            if (cJSON_IsString(it) && !(v->rt_sources[v->nrt_sources++] = strdup(it->valuestring)))
                return sl_error_set(err, SL_ENOMEM, "out of memory");
        }
    }

    const cJSON *feats = jarr(j, "features");
    size_t nf = (size_t)cJSON_GetArraySize(feats);
    if (nf > SL_MAX_VIEW_FEATURES)
        return where(j, err, "feature view `%s` has %zu features; at most %d are allowed",
                     v->name, nf, SL_MAX_VIEW_FEATURES);
    v->features = calloc(nf ? nf : 1, sizeof(*v->features));
    if (!v->features)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    cJSON *f;
    cJSON_ArrayForEach(f, feats)
    {
        struct sl_feature *d = &v->features[v->nfeatures++];
        d->spec = f;
        d->name = strdup(jstr(f, "name") ? jstr(f, "name") : "");
        d->column = strdup(jstr(f, "column") ? jstr(f, "column") : d->name ? d->name : "");
        if (!d->name || !d->column)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        d->type = sl_type_from_cjson(cJSON_GetObjectItemCaseSensitive(f, "dataType"), err);
        if (!d->type)
            return err->code ? err->code : SL_ENOMEM;
        size_t nrow = 0;
        const struct sl_field *row = v->source ? sl_view_row_schema(v, &nrow) : NULL;
        d->col_index = row ? field_index(nrow, row, d->column) : -1;
        if (v->source && d->col_index < 0)
            return where(j, err, "feature column `%s` is not in the source schema", d->column);
    }
    if (v->mode != SL_MODE_ATTRIBUTE && !v->is_realtime) {
        int rc2 = sl_tiles_view_new(v, &v->agg, err);
        if (rc2)
            return where(j, err, "%s", err->msg);
    }
    return 0;
}

static int cmp_item(const void *a, const void *b)
{
    const struct sl_service_item *x = a, *y = b;
    if (x->view->is_realtime != y->view->is_realtime)
        return x->view->is_realtime ? -1 : 1;
    return strcmp(x->view->name, y->view->name);
}

static int add_fields(size_t *n, struct sl_field **arr, size_t nadd, const struct sl_field *add,
                      struct sl_error *err)
{
    for (size_t i = 0; i < nadd; i++) {
        if (field_index(*n, *arr, add[i].name) >= 0)
            continue;
        struct sl_field *g = realloc(*arr, (*n + 1) * sizeof(*g));
        if (!g)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        *arr = g;
        g[*n].name = strdup(add[i].name);
        g[*n].type = sl_type_clone(add[i].type);
        (*n)++;
        if (!g[*n - 1].name || !g[*n - 1].type)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    return 0;
}

static int build_service(struct sl_ws *ws, struct sl_service *s, const cJSON *j,
                         struct sl_error *err)
{
    s->name = strdup(jstr(j, "name") ? jstr(j, "name") : "");
    if (!s->name)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    object_id(ws->name, "feature_service", j, s->id);
    const cJSON *items = jarr(j, "features"), *it;
    s->items = calloc((size_t)cJSON_GetArraySize(items) + 1, sizeof(*s->items));
    if (!s->items)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    cJSON_ArrayForEach(it, items)
    {
        const char *vn = jstr(it, "view");
        struct sl_service_item *d = &s->items[s->nitems];
        d->view = vn ? sl_ws_view(ws, vn) : NULL;
        if (!d->view)
            return where(j, err, "feature service refers to unknown feature view `%s`", vn ? vn : "?");
        s->nitems++;
        const cJSON *sel = jarr(it, "features");
        size_t n = sel ? (size_t)cJSON_GetArraySize(sel) : d->view->nfeatures;
        d->feat = calloc(n ? n : 1, sizeof(int));
        if (!d->feat)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        if (!sel) {
            for (size_t i = 0; i < n; i++)
                d->feat[d->nfeat++] = (int)i;
        } else {
            const cJSON *fn;
            cJSON_ArrayForEach(fn, sel)
            {
                int idx = -1;
                for (size_t i = 0; cJSON_IsString(fn) && i < d->view->nfeatures; i++)
                    if (strcmp(d->view->features[i].name, fn->valuestring) == 0)
                        idx = (int)i;
                if (idx < 0)
                    return where(j, err, "feature service selects unknown feature `%s`",
                                 cJSON_IsString(fn) ? fn->valuestring : "?");
                d->feat[d->nfeat++] = idx;
            }
        }
    }
    qsort(s->items, s->nitems, sizeof(*s->items), cmp_item);
    for (size_t i = 0; i < s->nitems; i++)
        s->nfeatures += s->items[i].nfeat;
    for (size_t i = 0; i < s->nitems; i++) {
        struct sl_view *v = s->items[i].view;
        int rc = add_fields(&s->nkeys, &s->join_keys, v->nkeys, v->join_keys, err);
        for (size_t k = 0; rc == 0 && k < v->nrt_sources; k++) {
            struct sl_source *src = sl_ws_source(ws, v->rt_sources[k]);
            if (src && src->is_request)
                rc = add_fields(&s->nrequest, &s->request_keys, src->nfields, src->schema, err);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static void ws_free(struct sl_ws *ws)
{
    if (!ws)
        return;
    for (size_t i = 0; ws->entities && i < ws->nentities; i++) {
        free(ws->entities[i].name);
        free_fields(ws->entities[i].nkeys, ws->entities[i].keys);
    }
    for (size_t i = 0; ws->sources && i < ws->nsources; i++) {
        free(ws->sources[i].name);
        free_fields(ws->sources[i].nfields, ws->sources[i].schema);
        free(ws->sources[i].views);
    }
    for (size_t i = 0; ws->views && i < ws->nviews; i++) {
        struct sl_view *v = &ws->views[i];
        free(v->name);
        free_fields(v->nkeys, v->join_keys);
        free_fields(v->nout, v->out_schema);
        sl_tiles_view_free(v->agg);
        free(v->key_index);
        for (size_t k = 0; k < v->nfeatures; k++) {
            free(v->features[k].name);
            free(v->features[k].column);
            sl_type_free(v->features[k].type);
        }
        free(v->features);
        for (size_t k = 0; k < v->nrt_sources; k++)
            free(v->rt_sources[k]);
        free(v->rt_sources);
    }
    for (size_t i = 0; ws->services && i < ws->nservices; i++) {
        struct sl_service *s = &ws->services[i];
        free(s->name);
        for (size_t k = 0; k < s->nitems; k++)
            free(s->items[k].feat);
        free(s->items);
        free_fields(s->nkeys, s->join_keys);
        free_fields(s->nrequest, s->request_keys);
    }
    free(ws->entities);
    free(ws->sources);
    free(ws->views);
    free(ws->services);
    for (size_t i = 0; ws->files && i < ws->nfiles; i++) {
        free((char *)ws->files[i].name);
        free((char *)ws->files[i].data);
    }
    free(ws->files);
    cJSON_Delete(ws->repo);
    free(ws->name);
    free(ws);
}

static struct sl_ws *ws_build(const char *name, int live, uint64_t version, uint64_t epoch,
                              cJSON *repo, const struct sl_file *files, size_t nfiles,
                              const struct build_ctx *bc, struct sl_error *err)
{
    struct sl_ws *ws = calloc(1, sizeof(*ws));
    if (!ws) {
        cJSON_Delete(repo);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    ws->repo = repo ? repo : cJSON_CreateObject();
    ws->name = strdup(name);
    ws->live = live;
    ws->version = version;
    ws->epoch = epoch;
    ws->refs = 1;
    if (!ws->name || !ws->repo) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    const cJSON *ents = jarr(ws->repo, "entities"), *srcs = jarr(ws->repo, "sources");
    cJSON *views = cJSON_GetObjectItemCaseSensitive(ws->repo, "feature_views");
    const cJSON *svcs = jarr(ws->repo, "feature_services");
    ws->entities = calloc((size_t)cJSON_GetArraySize(ents) + 1, sizeof(*ws->entities));
    ws->sources = calloc((size_t)cJSON_GetArraySize(srcs) + 1, sizeof(*ws->sources));
    ws->views = calloc((size_t)cJSON_GetArraySize(views) + 1, sizeof(*ws->views));
    ws->services = calloc((size_t)cJSON_GetArraySize(svcs) + 1, sizeof(*ws->services));
    ws->files = calloc(nfiles + 1, sizeof(*ws->files));
    if (!ws->entities || !ws->sources || !ws->views || !ws->services || !ws->files) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nfiles; i++) {
        char *n = strdup(files[i].name), *d = malloc(files[i].len + 1);
        ws->files[i].name = n;
        ws->files[i].data = d;
        ws->nfiles++;
        if (!n || !d) {
            sl_error_set(err, SL_ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(d, files[i].data, files[i].len);
        d[files[i].len] = 0;
        ws->files[i].len = files[i].len;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, ents)
    {
        if (build_entity(&ws->entities[ws->nentities++], it, err))
            goto fail;
    }
    cJSON_ArrayForEach(it, srcs)
    {
        if (build_source(&ws->sources[ws->nsources++], it, err))
            goto fail;
    }
    cJSON *vj;
    cJSON_ArrayForEach(vj, views)
    {
        if (build_view(ws, &ws->views[ws->nviews++], vj, bc, err))
            goto fail;
    }
    cJSON_ArrayForEach(it, svcs)
    {
        if (build_service(ws, &ws->services[ws->nservices++], it, err))
            goto fail;
    }
    return ws;
fail:
    if (!err->code)
        sl_error_set(err, SL_ENOMEM, "out of memory");
    ws_free(ws);
    return NULL;
}

struct sl_ws *sl_ws_build(const char *name, int live, uint64_t version, cJSON *repo,
                          const struct sl_file *files, size_t nfiles, struct sl_error *err)
{
    return ws_build(name, live, version, 0, repo, files, nfiles, NULL, err);
}

struct sl_ws *sl_ws_build_next(const struct sl_ws *prev, cJSON *repo, const struct sl_file *files,
                               size_t nfiles, struct sl_error *err)
{
    struct build_ctx bc = {prev, NULL};
    return ws_build(prev->name, prev->live, prev->version + 1, prev->epoch, repo, files, nfiles,
                    &bc, err);
}

void sl_ws_retain(struct sl_ws *ws)
{
    __atomic_add_fetch(&ws->refs, 1, __ATOMIC_RELAXED);
}

void sl_ws_release(struct sl_ws *ws)
{
    if (ws && __atomic_sub_fetch(&ws->refs, 1, __ATOMIC_ACQ_REL) == 0)
        ws_free(ws);
}

struct sl_source *sl_ws_source(const struct sl_ws *ws, const char *name)
{
    for (size_t i = 0; i < ws->nsources; i++)
        if (strcmp(ws->sources[i].name, name) == 0)
            return &ws->sources[i];
    return NULL;
}

struct sl_view *sl_ws_view(const struct sl_ws *ws, const char *name)
{
    for (size_t i = 0; i < ws->nviews; i++)
        if (strcmp(ws->views[i].name, name) == 0)
            return &ws->views[i];
    return NULL;
}

struct sl_service *sl_ws_service(const struct sl_ws *ws, const char *name)
{
    for (size_t i = 0; i < ws->nservices; i++)
        if (strcmp(ws->services[i].name, name) == 0)
            return &ws->services[i];
    return NULL;
}

struct sl_service *sl_ws_service_by_id(const struct sl_ws *ws, const char *id)
{
    for (size_t i = 0; i < ws->nservices; i++)
        if (strcmp(ws->services[i].id, id) == 0)
            return &ws->services[i];
    return NULL;
}

/* ---- persistence ---- */

static char *serialize_ws(const struct sl_ws *ws)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *files = cJSON_CreateArray();
    if (!o || !files) {
        cJSON_Delete(o);
        cJSON_Delete(files);
        return NULL;
    }
    cJSON_AddStringToObject(o, "name", ws->name);
    cJSON_AddBoolToObject(o, "live", ws->live);
    cJSON_AddNumberToObject(o, "version", (double)ws->version);
    if (ws->epoch) {
        char e[24];
        snprintf(e, sizeof(e), "%016llx", (unsigned long long)ws->epoch);
        cJSON_AddStringToObject(o, "epoch", e);
    }
    cJSON *intro = cJSON_AddObjectToObject(o, "intro");
    for (size_t i = 0; intro && i < ws->nviews; i++) {
        char v[24];
        snprintf(v, sizeof(v), "%llu", (unsigned long long)ws->views[i].intro);
        if (ws->views[i].intro)
            cJSON_AddStringToObject(intro, ws->views[i].name, v);
    }
    cJSON_AddItemToObject(o, "repo", cJSON_Duplicate(ws->repo, 1));
    cJSON_AddItemToObject(o, "files", files);
    for (size_t i = 0; i < ws->nfiles; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", ws->files[i].name);
        cJSON_AddStringToObject(f, "data", ws->files[i].data);
        cJSON_AddItemToArray(files, f);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static struct sl_ws *deserialize_ws(const char *p, size_t len, struct sl_error *err)
{
    cJSON *o = cJSON_ParseWithLength(p, len);
    struct sl_ws *ws = NULL;
    struct sl_file *files = NULL;
    if (!o) {
        sl_error_set(err, SL_ECORRUPT, "unreadable workspace record");
        return NULL;
    }
    const char *name = jstr(o, "name");
    const cJSON *fa = jarr(o, "files"), *f;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(o, "version");
    size_t n = 0;
    files = calloc((size_t)cJSON_GetArraySize(fa) + 1, sizeof(*files));
    if (!name || !files) {
        sl_error_set(err, SL_ECORRUPT, "unreadable workspace record");
        goto out;
    }
    cJSON_ArrayForEach(f, fa)
    {
        const char *fn = jstr(f, "name"), *fd = jstr(f, "data");
        if (fn && fd)
            files[n++] = (struct sl_file){fn, fd, strlen(fd)};
    }
    cJSON *repo = cJSON_DetachItemFromObjectCaseSensitive(o, "repo");
    const char *epoch = jstr(o, "epoch");
    struct build_ctx bc = {NULL, cJSON_GetObjectItemCaseSensitive(o, "intro")};
    ws = ws_build(name, jbool(o, "live"), cJSON_IsNumber(ver) ? (uint64_t)ver->valuedouble : 0,
                  epoch ? strtoull(epoch, NULL, 16) : 0, repo, files, n, &bc, err);
out:
    free(files);
    cJSON_Delete(o);
    return ws;
}

static int persist(struct sl_registry *reg, const struct sl_ws *ws, int del, struct sl_error *err)
{
    struct sl_batch b = {0};
    struct sl_buf key = SL_BUF_INIT;
    sl_buf_puts(&key, REG_PREFIX);
    sl_buf_puts(&key, ws->name);
    char *text = del ? NULL : serialize_ws(ws);
    int rc;
    if (!del && !text) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    if (del)
        sl_batch_delete(&b, key.p, key.len);
    else
        sl_batch_put(&b, key.p, key.len, text, strlen(text));
    rc = key.oom || b.ops.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                              : sl_store_write(reg->store, &b, 1, err);
out:
    free(text);
    sl_buf_free(&key);
    sl_batch_free(&b);
    return rc;
}

static size_t find(const struct sl_registry *reg, const char *name, int *found)
{
    size_t lo = 0, hi = reg->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(reg->slots[mid].name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

/* Puts ws in its slot (replacing and releasing any old one). Caller holds the write lock. */
static int put_slot(struct sl_registry *reg, struct sl_ws *ws)
{
    int found;
    size_t i = find(reg, ws->name, &found);
    if (found) {
        struct sl_ws *old = reg->slots[i].ws;
        reg->slots[i].ws = ws;
        sl_ws_release(old);
        return 0;
    }
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 8;
        struct slot *g = realloc(reg->slots, cap * sizeof(*g));
        if (!g)
            return SL_ENOMEM;
        reg->slots = g;
        reg->cap = cap;
    }
    char *name = strdup(ws->name);
    if (!name)
        return SL_ENOMEM;
    memmove(&reg->slots[i + 1], &reg->slots[i], (reg->n - i) * sizeof(*reg->slots));
    reg->slots[i] = (struct slot){name, ws};
    reg->n++;
    return 0;
}

static int load_one(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct sl_registry *reg = arg;
    struct sl_error err = {0};
    struct sl_ws *ws = deserialize_ws(v, vl, &err);
    if (!ws) {
        sl_err("registry: cannot load workspace `%.*s`: %s", (int)(kl - 1), k + 1, err.msg);
        return 0;
    }
    if (put_slot(reg, ws) != 0) {
        sl_ws_release(ws);
        return SL_ENOMEM;
    }
    return 0;
}

struct sl_registry *sl_registry_open(struct sl_store *store, struct sl_error *err)
{
    struct sl_registry *reg = calloc(1, sizeof(*reg));
    if (!reg) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    reg->store = store;
    pthread_rwlock_init(&reg->lock, NULL);
    int rc = sl_store_scan(store, REG_PREFIX, 1, load_one, reg, err);
    if (rc < 0) {
        if (!err->code)
            sl_error_set(err, rc, "cannot load the registry");
        sl_registry_close(reg);
        return NULL;
    }
    return reg;
}

void sl_registry_close(struct sl_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++) {
        free(reg->slots[i].name);
        sl_ws_release(reg->slots[i].ws);
    }
    free(reg->slots);
    pthread_rwlock_destroy(&reg->lock);
    free(reg);
}

struct sl_ws *sl_registry_get(struct sl_registry *reg, const char *name)
{
    int found;
    struct sl_ws *ws = NULL;
    pthread_rwlock_rdlock(&reg->lock);
    size_t i = find(reg, name, &found);
    if (found) {
        ws = reg->slots[i].ws;
        sl_ws_retain(ws);
    }
    pthread_rwlock_unlock(&reg->lock);
    return ws;
}

void sl_registry_each(struct sl_registry *reg, void (*fn)(void *arg, struct sl_ws *ws), void *arg)
{
    pthread_rwlock_rdlock(&reg->lock);
    size_t n = reg->n;
    struct sl_ws **list = calloc(n + 1, sizeof(*list));
    for (size_t i = 0; list && i < n; i++) {
        list[i] = reg->slots[i].ws;
        sl_ws_retain(list[i]);
    }
    pthread_rwlock_unlock(&reg->lock);
    for (size_t i = 0; list && i < n; i++) {
        fn(arg, list[i]);
        sl_ws_release(list[i]);
    }
    free(list);
}

int sl_registry_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > SL_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int sl_registry_create(struct sl_registry *reg, const char *name, int live, struct sl_error *err)
{
    if (!sl_registry_valid_name(name))
        return sl_error_set(err, SL_EINVAL,
                            "invalid workspace name `%s`: use 1-64 of [A-Za-z0-9_-]", name);
    uint64_t epoch = 0;
    while (epoch == 0 && RAND_bytes((unsigned char *)&epoch, sizeof(epoch)) == 1)
        ; /* 0 is reserved for workspaces created before epochs */
    if (epoch == 0)
        return sl_error_set(err, SL_EIO, "no random bytes for the workspace epoch");
    struct sl_ws *ws = ws_build(name, live, 0, epoch, NULL, NULL, 0, NULL, err);
    if (!ws)
        return err->code;
    pthread_rwlock_wrlock(&reg->lock);
    int found;
    find(reg, name, &found);
    int rc = found ? sl_error_set(err, SL_EEXIST, "workspace `%s` already exists", name)
                   : persist(reg, ws, 0, err);
    if (rc == 0 && put_slot(reg, ws) != 0)
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    pthread_rwlock_unlock(&reg->lock);
    if (rc != 0)
        sl_ws_release(ws);
    return rc;
}

int sl_registry_delete(struct sl_registry *reg, const char *name, struct sl_error *err)
{
    pthread_rwlock_wrlock(&reg->lock);
    int found;
    size_t i = find(reg, name, &found);
    int rc = found ? persist(reg, reg->slots[i].ws, 1, err)
                   : sl_error_set(err, SL_ENOTFOUND, "workspace `%s` not found", name);
    if (rc == 0) {
        free(reg->slots[i].name);
        sl_ws_release(reg->slots[i].ws);
        memmove(&reg->slots[i], &reg->slots[i + 1], (reg->n - i - 1) * sizeof(*reg->slots));
        reg->n--;
    }
    pthread_rwlock_unlock(&reg->lock);
    return rc;
}

int sl_registry_install(struct sl_registry *reg, struct sl_ws *ws, struct sl_error *err)
{
    int rc = persist(reg, ws, 0, err);
    if (rc == 0) {
        pthread_rwlock_wrlock(&reg->lock);
        if (put_slot(reg, ws) != 0)
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        pthread_rwlock_unlock(&reg->lock);
    }
    if (rc != 0)
        sl_ws_release(ws);
    return rc;
}

/* ---- plan ---- */

static const char *const kinds[][2] = {{"entities", "entity"},
                                       {"sources", "source"},
                                       {"feature_views", "feature_view"},
                                       {"feature_services", "feature_service"}};

static const cJSON *by_name(const cJSON *arr, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const char *n = jstr(it, "name");
        if (n && strcmp(n, name) == 0)
            return it;
    }
    return NULL;
}

static int ignored(const char *k)
{
    return strcmp(k, "file") == 0 || strcmp(k, "line") == 0;
}

/* Compares two values ignoring file/line members at any depth. */
static int same(const cJSON *a, const cJSON *b)
{
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, a)
        {
            if (ignored(x->string))
                continue;
            if (!same(x, cJSON_GetObjectItemCaseSensitive(b, x->string)))
                return 0;
        }
        cJSON_ArrayForEach(x, b)
        {
            if (!ignored(x->string) && !cJSON_GetObjectItemCaseSensitive(a, x->string))
                return 0;
        }
        return 1;
    }
    if (cJSON_IsArray(a) && cJSON_IsArray(b)) {
        if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
            return 0;
        for (const cJSON *x = a->child, *y = b->child; x; x = x->next, y = y->next)
            if (!same(x, y))
                return 0;
        return 1;
    }
    return a && b && cJSON_Compare(a, b, 1);
}

/* Appends v as JSON without its file/line members (null when v is NULL). */
static void put_value(struct sl_buf *out, const cJSON *v)
{
    cJSON *c = v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();
    cJSON *stack[64];
    int depth = 0;
    if (c)
        stack[depth++] = c;
    while (depth > 0) {
        cJSON *o = stack[--depth], *k;
        if (cJSON_IsObject(o)) {
            cJSON_DeleteItemFromObjectCaseSensitive(o, "file");
            cJSON_DeleteItemFromObjectCaseSensitive(o, "line");
        }
        for (k = o->child; k && depth < 64; k = k->next)
            stack[depth++] = k;
    }
    char *text = c ? cJSON_PrintUnformatted(c) : NULL;
    if (text)
        sl_buf_puts(out, text);
    else
        out->oom = 1;
    free(text);
    cJSON_Delete(c);
}

static void plan_entry(struct sl_buf *out, size_t *n, const char *action, const char *kind,
                       const char *name, const cJSON *a, const cJSON *b)
{
    sl_buf_puts(out, *n ? "," : "");
    sl_buf_puts(out, "{\"action\":");
    sl_buf_json_str(out, action, strlen(action));
    sl_buf_puts(out, ",\"kind\":");
    sl_buf_json_str(out, kind, strlen(kind));
    sl_buf_puts(out, ",\"name\":");
    sl_buf_json_str(out, name, strlen(name));
    sl_buf_puts(out, ",\"changes\":[");
    struct sl_buf diff = SL_BUF_INIT;
    int first = 1;
    const cJSON *x;
    for (int side = 0; a && b && side < 2; side++) {
        /* fields of b that changed or are new, then fields only a has */
        const cJSON *from = side ? a : b;
        cJSON_ArrayForEach(x, from)
        {
            const cJSON *was = cJSON_GetObjectItemCaseSensitive(a, x->string);
            const cJSON *now = cJSON_GetObjectItemCaseSensitive(b, x->string);
            if (ignored(x->string) || (side ? now != NULL : same(x, was)))
                continue;
            sl_buf_puts(out, first ? "" : ",");
            sl_buf_json_str(out, x->string, strlen(x->string));
            sl_buf_puts(&diff, first ? "{\"field\":" : ",{\"field\":");
            sl_buf_json_str(&diff, x->string, strlen(x->string));
            sl_buf_puts(&diff, ",\"old\":");
            put_value(&diff, was);
            sl_buf_puts(&diff, ",\"new\":");
            put_value(&diff, now);
            sl_buf_putc(&diff, '}');
            first = 0;
        }
    }
    sl_buf_puts(out, "],\"diff\":[");
    sl_buf_append(out, diff.p, diff.len);
    out->oom |= diff.oom;
    sl_buf_free(&diff);
    sl_buf_puts(out, "]}");
    (*n)++;
}

size_t sl_registry_plan(const cJSON *old_repo, const cJSON *new_repo, struct sl_buf *out)
{
    size_t n = 0;
    sl_buf_putc(out, '[');
    for (size_t k = 0; k < sizeof(kinds) / sizeof(*kinds); k++) {
        const cJSON *oa = old_repo ? jarr(old_repo, kinds[k][0]) : NULL;
        const cJSON *na = new_repo ? jarr(new_repo, kinds[k][0]) : NULL;
        const cJSON *it;
        cJSON_ArrayForEach(it, na)
        {
            const char *name = jstr(it, "name");
            const cJSON *old = name ? by_name(oa, name) : NULL;
            if (!name)
                continue;
            if (!old)
                plan_entry(out, &n, "create", kinds[k][1], name, NULL, it);
            else if (!same(old, it))
                plan_entry(out, &n, "update", kinds[k][1], name, old, it);
        }
        cJSON_ArrayForEach(it, oa)
        {
            const char *name = jstr(it, "name");
            if (name && !by_name(na, name))
                plan_entry(out, &n, "delete", kinds[k][1], name, it, NULL);
        }
    }
    sl_buf_putc(out, ']');
    return n;
}
