/* The FeatureService HTTP API over the online store. Each view's value for a key is one
 * LevelDB read; the stored row already holds every feature's JSON encoding, so a response is
 * assembled by copying bytes. */
#include "serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accesslog.h"
#include "auth.h"
#include "buf.h"
#include "error.h"
#include "http.h"
#include "json.h"
#include "keys.h"
#include "metrics.h"
#include "config.h"
#include "registry.h"
#include "sl_limits.h"
#include "server.h"
#include "store.h"
#include "tiles.h"
#include "timeutil.h"
#include "transform.h"
#include "types.h"
#include "wcache.h"

enum { OPT_NAMES, OPT_TYPES, OPT_TIMES, OPT_STATUS, OPT_SLO, OPT_DESC, OPT_TAGS, OPT_N };

/* Per HTTP worker: what a request needs from one call to the next, reused rather than
 * allocated and freed per request. */
struct sl_serve_scratch {
    struct sl_arena arena;
    struct sl_buf out, vals, frag, kvtmp, key, row, ckey, cval;
    void *st, *slots, *kvoff, *kvnull; /* grown by grow() */
    size_t st_cap, slots_cap, kvoff_cap, kvnull_cap;
    struct sl_tiles_scratch *tiles;
    struct sl_wcache *rcache;          /* cached aggregate reads; NULL: none */
};

struct sl_serve_scratch *sl_serve_scratch_new(size_t read_cache)
{
    struct sl_serve_scratch *sc = calloc(1, sizeof(*sc));
    if (sc && (!(sc->tiles = sl_tiles_scratch_new()) ||
               (read_cache && !(sc->rcache = sl_wcache_new(read_cache))))) {
        sl_tiles_scratch_free(sc->tiles);
        free(sc);
        sc = NULL;
    }
    return sc;
}

static void scratch_release(struct sl_serve_scratch *sc)
{
    sl_arena_free(&sc->arena);
    struct sl_buf *bufs[] = {&sc->out, &sc->vals, &sc->frag, &sc->kvtmp, &sc->key, &sc->row,
                             &sc->ckey, &sc->cval};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(*bufs); i++)
        sl_buf_free(bufs[i]);
    free(sc->st);
    free(sc->slots);
    free(sc->kvoff);
    free(sc->kvnull);
    sc->st = sc->slots = sc->kvoff = sc->kvnull = NULL;
    sc->st_cap = sc->slots_cap = sc->kvoff_cap = sc->kvnull_cap = 0;
}

void sl_serve_scratch_free(struct sl_serve_scratch *sc)
{
    if (sc) {
        scratch_release(sc);
        sl_tiles_scratch_free(sc->tiles);
        sl_wcache_free(sc->rcache);
        free(sc);
    }
}

/* After a request: what a large request grew is freed, the rest kept for the next. */
static void scratch_trim(struct sl_serve_scratch *sc)
{
    if (sc->out.cap > (1u << 20) || sc->vals.cap > (1u << 20) || sc->frag.cap > (1u << 20) ||
        sc->arena.used > (1u << 20) || sc->st_cap > 65536)
        scratch_release(sc);
    else
        sl_arena_reset(&sc->arena);
    sl_tiles_scratch_trim(sc->tiles);
}

/* *p holds at least n zeroed elements of size sz (n > 0). */
static void *grow(void **p, size_t *cap, size_t n, size_t sz)
{
    if (*cap < n) {
        size_t c = n < 16 ? 16 : n;
        void *g = realloc(*p, c * sz);
        if (!g)
            return NULL;
        *p = g;
        *cap = c;
    }
    memset(*p, 0, n * sz);
    return *p;
}

struct serve_req {
    struct sl_node *n;
    struct sl_serve_scratch *sc;
    struct sl_xform_cache *xf;
    struct sl_ws *ws;
    struct sl_service *svc;
    int opt[OPT_N];
    int64_t start_ns;
    struct sl_arena *arena; /* the scratch's */
};

/* A member by its snake_case or camelCase name. */
static const struct sl_json *param(const struct sl_json *o, const char *snake, const char *camel)
{
    const struct sl_json *v = sl_json_get(o, snake);
    return v ? v : sl_json_get(o, camel);
}

static void fail(struct sl_http_req *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct sl_http_req *r, int code, const char *fmt, ...)
{
    char msg[640];
    int http, grpc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sl_status_http(code, &http, &grpc);
    sl_reply_error(r, http, grpc, msg);
}

/* Reads the metadata options; names, data types and serving status default to on. Returns
 * 0, or -1 when metadata_options is present but not an object or an option not a boolean. */
static int read_options(const struct sl_json *params, int *opt)
{
    static const char *const snake[] = {"include_names", "include_data_types",
                                        "include_effective_times", "include_serving_status",
                                        "include_slo_info", "include_feature_descriptions",
                                        "include_feature_tags"};
    static const char *const camel[] = {"includeNames", "includeDataTypes",
                                        "includeEffectiveTimes", "includeServingStatus",
                                        "includeSloInfo", "includeFeatureDescriptions",
                                        "includeFeatureTags"};
    static const int defaults[] = {1, 1, 0, 1, 0, 0, 0};
    const struct sl_json *mo = param(params, "metadata_options", "metadataOptions");
    if (mo && mo->kind != SL_JSON_OBJECT && mo->kind != SL_JSON_NULL)
        return -1;
    if (mo && mo->kind == SL_JSON_NULL)
        mo = NULL;
    for (int i = 0; i < OPT_N; i++) {
        const struct sl_json *v = mo ? param(mo, snake[i], camel[i]) : NULL;
        if (v && v->kind != SL_JSON_TRUE && v->kind != SL_JSON_FALSE && v->kind != SL_JSON_NULL)
            return -1;
        opt[i] = v && v->kind != SL_JSON_NULL ? v->kind == SL_JSON_TRUE : defaults[i];
    }
    return 0;
}

/* The key part of one join key value from the request, as an offset/length in tmp. */
static int join_part(const struct sl_field *f, const struct sl_json *v, struct sl_buf *tmp,
                     size_t *off, size_t *len, char *msg, size_t cap)
{
    *off = tmp->len;
    int rc = sl_key_join_json(tmp, f, v, msg, cap);
    *len = tmp->len - *off;
    return rc;
}

struct row_status {
    int present;
    int64_t ts;
};

/* The request's join key values: key bytes in tmp at off[2k] (length off[2k+1]) for the
 * service's join key k; null[k] when the value was null. */
struct keyvals {
    const struct sl_service *svc;
    struct sl_buf *tmp;
    size_t *off;
    int *null;
};

struct slot {
    size_t off, len; /* a feature's JSON value in the row's fragment buffer */
};

/* The aggregate features feat[0..nfeat) of a tiled view for one entity, through the worker's
 * read cache. An entry, keyed by (entity key prefix, features), holds the values with the
 * entity's write generation, read before the store, and each feature's window end; it
 * answers while neither has changed, which is until a write to the entity is durable or a
 * tile completes. Continuous views (a window ending at every instant) read the store. */
static int read_agg(struct serve_req *q, const struct sl_view *v, const char *ent, size_t elen,
                    int64_t now, const int *feat, size_t nfeat, struct sl_buf *frag,
                    size_t *off, size_t *len, int *pres, int64_t *eff, struct sl_error *err)
{
    const struct sl_tiles_view *tv = v->agg;
    struct sl_serve_scratch *sc = q->sc;
    if (!sc->rcache || tv->continuous || nfeat > SL_MAX_VIEW_FEATURES)
        return sl_tiles_read(tv, &q->n->store, v->key, ent, elen, now, feat, nfeat, frag, off,
                             len, pres, eff, sc->tiles, err);
    struct sl_buf *ck = &sc->ckey, *cv = &sc->cval;
    sl_buf_reset(ck);
    sl_tiles_entity_key(ck, v->key, ent, elen);
    uint64_t *slot = &q->n->read_gen[sl_wcache_hash(ck->p, ck->len) & (SL_READ_GENS - 1)];
    uint64_t gen = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    int64_t ends[SL_MAX_VIEW_FEATURES];
    for (size_t f = 0; f < nfeat; f++) {
        int64_t ws;
        sl_agg_window(tv->specs[feat[f]], now, &ws, &ends[f]);
        sl_buf_u32(ck, (uint32_t)feat[f]);
    }
    const char *p;
    size_t n;
    if (!ck->oom && sl_wcache_get(sc->rcache, ck->p, ck->len, &p, &n)) {
        struct sl_cursor c = {(const unsigned char *)p, n};
        uint64_t g, e, ef;
        uint32_t pr;
        const char *val;
        size_t vl, at = frag->len;
        int ok = sl_cur_u64(&c, &g) == 0 && g == gen;
        for (size_t f = 0; ok && f < nfeat; f++) {
            ok = sl_cur_u64(&c, &e) == 0 && (int64_t)e == ends[f] && sl_cur_u32(&c, &pr) == 0 &&
                 sl_cur_u64(&c, &ef) == 0 && sl_cur_lenstr(&c, &val, &vl) == 0;
            if (ok) {
                off[f] = frag->len;
                sl_buf_append(frag, val, vl);
                len[f] = vl;
                pres[f] = (int)pr;
                eff[f] = (int64_t)ef;
            }
        }
        sl_metrics_read_cache(ok);
        if (ok)
            return frag->oom ? sl_error_set(err, SL_ENOMEM, "out of memory") : 0;
        frag->len = at; /* stale: read the store */
    } else if (!ck->oom) {
        sl_metrics_read_cache(0);
    }
    int rc = sl_tiles_read(tv, &q->n->store, v->key, ent, elen, now, feat, nfeat, frag, off, len,
                           pres, eff, sc->tiles, err);
    if (rc == 0 && !ck->oom) {
        sl_buf_reset(cv);
        sl_buf_u64(cv, gen);
        for (size_t f = 0; f < nfeat; f++) {
            sl_buf_u64(cv, (uint64_t)ends[f]);
            sl_buf_u32(cv, (uint32_t)pres[f]);
            sl_buf_u64(cv, (uint64_t)eff[f]);
            sl_buf_lenstr(cv, frag->p + off[f], len[f]);
        }
        if (!cv->oom)
            sl_wcache_put(sc->rcache, ck->p, ck->len, cv->p, cv->len);
    }
    return rc;
}

/* Reads features feat[0..nfeat) of stream view v into frag, one slot and status each. */
static int read_view(struct serve_req *q, const struct sl_view *v, const struct keyvals *kv,
                     const int *feat, size_t nfeat, int64_t now, struct sl_buf *frag,
                     struct slot *slots, struct row_status *fs, char *msg, size_t cap)
{
    const char *parts[SL_MAX_JOIN_KEYS];
    size_t lens[SL_MAX_JOIN_KEYS];
    struct sl_buf *key = &q->sc->key, *row = &q->sc->row;
    struct sl_error err = {0};
    sl_buf_reset(key);
    sl_buf_reset(row);
    int rc = 0, have = v->nkeys <= SL_MAX_JOIN_KEYS && nfeat <= SL_MAX_VIEW_FEATURES;
    for (size_t k = 0; have && k < v->nkeys; k++) {
        size_t idx = 0;
        while (idx < kv->svc->nkeys && strcmp(kv->svc->join_keys[idx].name, v->join_keys[k].name) != 0)
            idx++;
        if (idx == kv->svc->nkeys || kv->null[idx])
            have = 0;
        else {
            parts[k] = kv->tmp->p + kv->off[2 * idx];
            lens[k] = kv->off[2 * idx + 1];
        }
    }
    if (have && v->agg) {
        int pres[SL_MAX_VIEW_FEATURES];
        int64_t eff[SL_MAX_VIEW_FEATURES];
        size_t off[SL_MAX_VIEW_FEATURES], len[SL_MAX_VIEW_FEATURES];
        for (size_t k = 0; k < v->nkeys; k++)
            sl_buf_lenstr(key, parts[k], lens[k]);
        rc = read_agg(q, v, key->p, key->len, now, feat, nfeat, frag, off, len, pres, eff, &err);
        if (rc != 0) {
            snprintf(msg, cap, "online store read failed: %s", err.msg);
            rc = SL_ESTORE;
            goto out;
        }
        for (size_t f = 0; f < nfeat; f++) {
            slots[f] = (struct slot){off[f], len[f]};
            fs[f] = (struct row_status){pres[f], eff[f]};
        }
        goto out;
    }
    int present = 0;
    int64_t present_ts = 0;
    struct sl_row rw = {0};
    if (have) {
        sl_row_key(key, v, parts, lens);
        int g = sl_store_get(&q->n->store, key->p, key->len, row, &err);
        if (g != 0 && g != SL_ENOTFOUND) {
            snprintf(msg, cap, "online store read failed: %s", err.msg);
            rc = SL_ESTORE;
            goto out;
        }
        if (g == 0 && sl_row_decode(row->p, row->len, &rw) == 0 && rw.n == v->nfeatures &&
            (v->ttl_ns == 0 || rw.ts >= now - v->ttl_ns)) {
            present = 1;
            present_ts = rw.ts;
        }
    }
    const char *fr[SL_MAX_VIEW_FEATURES];
    size_t fl[SL_MAX_VIEW_FEATURES];
    size_t nf = v->nfeatures < SL_MAX_VIEW_FEATURES ? v->nfeatures : SL_MAX_VIEW_FEATURES;
    for (size_t f = 0; present && f < nf; f++)
        if (sl_row_next(&rw, &fr[f], &fl[f]) != 0)
            present = 0;
    for (size_t f = 0; f < nfeat; f++) {
        size_t fi = (size_t)feat[f];
        slots[f].off = frag->len;
        if (present && fi < nf)
            sl_buf_append(frag, fr[fi], fl[fi]);
        else
            sl_buf_puts(frag, "null");
        slots[f].len = frag->len - slots[f].off;
        fs[f] = (struct row_status){present, present_ts};
    }
out:
    return rc;
}

/* Reads a realtime view's input views from the online store (sl_xform_input_fn). */
struct rt_inputs {
    struct serve_req *q;
    const struct keyvals *kv;
    int64_t now;
    struct sl_buf vals;
    struct slot sl[SL_MAX_VIEW_FEATURES];
};

static int rt_input(void *arg, const struct sl_view *iv, const char **frag, size_t *len,
                    char *msg, size_t cap)
{
    struct rt_inputs *ri = arg;
    int all[SL_MAX_VIEW_FEATURES];
    struct row_status st[SL_MAX_VIEW_FEATURES];
    for (size_t f = 0; f < iv->nfeatures; f++)
        all[f] = (int)f;
    sl_buf_reset(&ri->vals);
    int rc = read_view(ri->q, iv, ri->kv, all, iv->nfeatures, ri->now, &ri->vals, ri->sl, st,
                       msg, cap);
    for (size_t f = 0; rc == 0 && f < iv->nfeatures; f++) {
        frag[f] = ri->vals.p + ri->sl[f].off;
        len[f] = ri->sl[f].len;
    }
    return rc;
}

/* Computes realtime view v's selected features from the request context and its input
 * views, into frag. Returns 0, or SL_EINVAL (a missing request context key) / SL_ESCRIPT
 * (the function failed: msg names file:line) / SL_ENOMEM. */
static int realtime_view(struct serve_req *q, const struct sl_service_item *it,
                         const struct keyvals *kv, const struct sl_json *ctx, int64_t now,
                         struct sl_buf *frag, struct slot *slots, struct row_status *fs,
                         char *msg, size_t cap)
{
    const struct sl_view *v = it->view;
    struct sl_error err = {0};
    lua_State *L = sl_xform_vm(q->xf, q->ws, &err);
    if (!L) {
        snprintf(msg, cap, "realtime feature view `%s` failed: %s", v->name, err.msg);
        return err.code == SL_ENOMEM ? SL_ENOMEM : SL_ESCRIPT;
    }
    struct rt_inputs ri = {.q = q, .kv = kv, .now = now, .vals = SL_BUF_INIT};
    size_t *off = calloc(2 * it->nfeat + 1, sizeof(*off));
    if (!off) {
        snprintf(msg, cap, "out of memory");
        return SL_ENOMEM;
    }
    int rc = sl_xform_realtime_view(L, q->ws, v, ctx, rt_input, &ri, it->feat, it->nfeat,
                                    q->arena, frag, off, off + it->nfeat, msg, cap);
    sl_buf_free(&ri.vals);
    for (size_t f = 0; rc == 0 && f < it->nfeat; f++) {
        slots[f] = (struct slot){off[f], off[it->nfeat + f]};
        fs[f] = (struct row_status){1, now};
    }
    free(off);
    return rc;
}

/* Appends the features of one request row to vals (comma-separated JSON values) and fills
 * st[feature] for each output feature. Stream views are read first, realtime views (which
 * come first in the output) after, since they may read the same views. Returns 0, or
 * SL_EINVAL / SL_ESTORE / SL_ESCRIPT with msg. */
static int serve_row(struct serve_req *q, const struct sl_json *jkm, const struct sl_json *ctx,
                     struct sl_buf *vals, struct row_status *st, char *msg, size_t cap)
{
    struct sl_service *svc = q->svc;
    struct sl_serve_scratch *sc = q->sc;
    struct keyvals kv = {.svc = svc, .tmp = &sc->kvtmp};
    struct sl_buf *frag = &sc->frag;
    int64_t now = sl_now_ns();
    int rc = 0;
    sl_buf_reset(kv.tmp);
    sl_buf_reset(frag);
    kv.off = grow(&sc->kvoff, &sc->kvoff_cap, 2 * svc->nkeys + 1, sizeof(size_t));
    kv.null = grow(&sc->kvnull, &sc->kvnull_cap, svc->nkeys + 1, sizeof(int));
    struct slot *slots = grow(&sc->slots, &sc->slots_cap, svc->nfeatures + 1, sizeof(*slots));
    if (!kv.off || !kv.null || !slots)
        return SL_ENOMEM;
    for (size_t k = 0; k < svc->nkeys; k++) {
        const struct sl_json *v = jkm && jkm->kind == SL_JSON_OBJECT ? sl_json_get(jkm, svc->join_keys[k].name) : NULL;
        if (!v) {
            snprintf(msg, cap, "Missing required join key: %s", svc->join_keys[k].name);
            return SL_EINVAL;
        }
        int jr = join_part(&svc->join_keys[k], v, kv.tmp, &kv.off[2 * k], &kv.off[2 * k + 1], msg, cap);
        if (jr < 0)
            return jr;
        kv.null[k] = jr == 1;
    }
    for (const struct sl_json *m = jkm ? jkm->child : NULL; m; m = m->next) {
        size_t k = 0;
        while (k < svc->nkeys && (strlen(svc->join_keys[k].name) != m->keylen ||
                                  memcmp(svc->join_keys[k].name, m->key, m->keylen) != 0))
            k++;
        if (k == svc->nkeys) {
            snprintf(msg, cap, "Unknown join key: %.64s (not a join key of feature service %s)",
                     m->key, svc->name);
            return SL_EINVAL;
        }
    }
    if (ctx && ctx->kind != SL_JSON_OBJECT) {
        snprintf(msg, cap, "`request_context_map` must be an object");
        return SL_EINVAL;
    }
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        size_t fo = 0;
        for (size_t i = 0; i < svc->nitems && rc == 0; i++) {
            const struct sl_service_item *it = &svc->items[i];
            if (it->view->is_realtime == (pass == 1))
                rc = it->view->is_realtime
                         ? realtime_view(q, it, &kv, ctx, now, frag, slots + fo, st + fo, msg, cap)
                         : read_view(q, it->view, &kv, it->feat, it->nfeat, now, frag, slots + fo,
                                     st + fo, msg, cap);
            fo += it->nfeat;
        }
    }
    for (size_t f = 0; rc == 0 && f < svc->nfeatures; f++) {
        if (vals->len)
            sl_buf_putc(vals, ',');
        sl_buf_append(vals, frag->p + slots[f].off, slots[f].len);
    }
    if (rc == 0 && (frag->oom || kv.tmp->oom))
        rc = SL_ENOMEM;
    return rc;
}

static void feature_name(struct sl_buf *b, const struct sl_view *v, const struct sl_feature *f)
{
    sl_buf_putc(b, '"');
    sl_buf_puts(b, v->name);
    sl_buf_putc(b, '.');
    sl_buf_puts(b, f->name);
    sl_buf_putc(b, '"');
}

/* With the options asked for, a feature's "description" (its own, else its view's) and
 * "tags" (its view's, overlaid with its own) as members of the object being written, each
 * preceded by a comma when *sep; an empty description or tag set is left out, as Tecton's
 * JSON leaves out empty fields. */
static void write_doc(struct serve_req *q, struct sl_buf *b, const struct sl_view *v,
                      const struct sl_feature *f, int *sep)
{
    if (q->opt[OPT_DESC]) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(f->spec, "description");
        if (!cJSON_IsString(d))
            d = cJSON_GetObjectItemCaseSensitive(v->spec, "description");
        if (cJSON_IsString(d) && *d->valuestring) {
            sl_buf_puts(b, *sep ? ",\"description\":" : "\"description\":");
            sl_buf_json_str(b, d->valuestring, strlen(d->valuestring));
            *sep = 1;
        }
    }
    if (q->opt[OPT_TAGS]) {
        const cJSON *own = cJSON_GetObjectItemCaseSensitive(f->spec, "tags");
        const cJSON *vt = cJSON_GetObjectItemCaseSensitive(v->spec, "tags");
        const cJSON *sets[2] = {vt, own};
        int n = 0;
        for (int k = 0; k < 2; k++)
            for (const cJSON *t = sets[k] ? sets[k]->child : NULL; t; t = t->next) {
                if (!cJSON_IsString(t) || (k == 0 && cJSON_GetObjectItemCaseSensitive(own, t->string)))
                    continue; /* the feature's own tag of that name wins */
                sl_buf_puts(b, n ? "," : *sep ? ",\"tags\":{" : "\"tags\":{");
                sl_buf_json_str(b, t->string, strlen(t->string));
                sl_buf_putc(b, ':');
                sl_buf_json_str(b, t->valuestring, strlen(t->valuestring));
                n++;
            }
        if (n) {
            sl_buf_putc(b, '}');
            *sep = 1;
        }
    }
}

/* metadata.features for nrows rows; statuses become arrays when batch is set. */
static void write_metadata(struct serve_req *q, struct sl_buf *b, struct row_status *st,
                           size_t nrows, int batch)
{
    struct sl_service *svc = q->svc;
    sl_buf_puts(b, "\"metadata\":{\"features\":[");
    int first = 1;
    size_t fo = 0;
    for (size_t i = 0; i < svc->nitems; i++) {
        const struct sl_service_item *it = &svc->items[i];
        for (size_t f = 0; f < it->nfeat; f++) {
            const struct sl_feature *feat = &it->view->features[it->feat[f]];
            sl_buf_puts(b, first ? "{" : ",{");
            first = 0;
            int sep = 0;
            if (q->opt[OPT_NAMES]) {
                sl_buf_puts(b, "\"name\":");
                feature_name(b, it->view, feat);
                sep = 1;
            }
            if (q->opt[OPT_TYPES]) {
                sl_buf_puts(b, sep ? ",\"dataType\":" : "\"dataType\":");
                sl_type_write_json(b, feat->type);
                sep = 1;
            }
            if (q->opt[OPT_STATUS]) {
                sl_buf_puts(b, sep ? ",\"status\":" : "\"status\":");
                if (batch)
                    sl_buf_putc(b, '[');
                for (size_t r = 0; r < nrows; r++) {
                    sl_buf_puts(b, r ? "," : "");
                    sl_buf_puts(b, st[r * svc->nfeatures + fo].present ? "\"PRESENT\"" : "\"MISSING_DATA\"");
                }
                if (batch)
                    sl_buf_putc(b, ']');
                sep = 1;
            }
            if (q->opt[OPT_TIMES] && !batch && st[fo].present) {
                char t[SL_TIME_MAXLEN];
                size_t tl = sl_time_format(st[fo].ts, t);
                sl_buf_puts(b, sep ? ",\"effectiveTime\":\"" : "\"effectiveTime\":\"");
                sl_buf_append(b, t, tl);
                sl_buf_putc(b, '"');
                sep = 1;
            }
            write_doc(q, b, it->view, feat, &sep);
            sl_buf_putc(b, '}');
            fo++;
        }
    }
    sl_buf_putc(b, ']');
    if (q->opt[OPT_SLO]) {
        double secs = (double)(sl_now_ns() - q->start_ns) / 1e9;
        if (secs < 0)
            secs = 0;
        sl_buf_printf(b, ",\"sloInfo\":{\"sloEligible\":true,\"serverTimeSeconds\":%.6f,"
                         "\"sloServerTimeSeconds\":%.6f,\"storeResponseSizeBytes\":0}",
                      secs, secs);
    }
    sl_buf_putc(b, '}');
}

static void write_fields(struct sl_buf *b, const char *name, size_t n, const struct sl_field *f)
{
    sl_buf_printf(b, "\"%s\":[", name);
    for (size_t i = 0; i < n; i++) {
        sl_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        sl_buf_json_str(b, f[i].name, strlen(f[i].name));
        sl_buf_puts(b, ",\"dataType\":");
        sl_type_write_json(b, f[i].type);
        sl_buf_putc(b, '}');
    }
    sl_buf_putc(b, ']');
}

static void metadata_call(struct serve_req *q, struct sl_buf *b)
{
    struct sl_service *svc = q->svc;
    sl_buf_puts(b, "{\"featureServiceType\":\"DEFAULT\",");
    write_fields(b, "inputJoinKeys", svc->nkeys, svc->join_keys);
    sl_buf_putc(b, ',');
    write_fields(b, "inputRequestContextKeys", svc->nrequest, svc->request_keys);
    sl_buf_puts(b, ",\"featureValues\":[");
    int first = 1;
    for (size_t i = 0; i < svc->nitems; i++) {
        const struct sl_service_item *it = &svc->items[i];
        for (size_t f = 0; f < it->nfeat; f++) {
            const struct sl_feature *feat = &it->view->features[it->feat[f]];
            sl_buf_puts(b, first ? "{\"name\":" : ",{\"name\":");
            first = 0;
            feature_name(b, it->view, feat);
            sl_buf_puts(b, ",\"dataType\":");
            sl_type_write_json(b, feat->type);
            int sep = 1;
            write_doc(q, b, it->view, feat, &sep);
            sl_buf_putc(b, '}');
        }
    }
    sl_buf_puts(b, "]}");
}

void sl_serve_handle(struct sl_node *n, struct sl_http_req *r, enum sl_serve_call call,
                     const struct sl_principal *p)
{
    int worker = sl_http_worker(r);
    struct serve_req q = {.n = n, .sc = n->serve_scratch[worker], .xf = n->xform[worker],
                          .start_ns = sl_now_ns()};
    struct sl_error err = {0};
    struct sl_buf *out = &q.sc->out, *vals = &q.sc->vals;
    struct row_status *st = NULL;
    char msg[512];
    int ok = 0;
    __atomic_add_fetch(&n->read_requests, 1, __ATOMIC_RELAXED);

    size_t len;
    const char *body = sl_http_body(r, &len);
    if (len > (size_t)n->cfg->max_body) {
        fail(r, SL_ETOOBIG, "The request body is %zu bytes; at most %ld are accepted", len,
             n->cfg->max_body);
        goto out;
    }
    q.arena = &q.sc->arena;
    q.arena->limit = len * 40 + 65536; /* a node per two bytes, at worst */
    sl_buf_reset(out);
    sl_buf_reset(vals);
    const struct sl_json *root = body ? sl_json_parse(body, len, q.arena, &err) : NULL;
    if (!root) {
        if (!body)
            fail(r, SL_EINVAL, "The request body is empty");
        else
            fail(r, SL_EINVAL, "Invalid JSON in the request body: %s", err.msg);
        goto out;
    }
    const struct sl_json *params = sl_json_get(root, "params");
    if (!params || params->kind != SL_JSON_OBJECT) {
        fail(r, SL_EINVAL, "Required field `params` is missing");
        goto out;
    }
    const struct sl_json *wsn = param(params, "workspace_name", "workspaceName");
    const struct sl_json *fsn = param(params, "feature_service_name", "featureServiceName");
    const struct sl_json *fsid = param(params, "feature_service_id", "featureServiceId");
    if (!wsn || wsn->kind != SL_JSON_STRING) {
        fail(r, SL_EINVAL, "Required field `workspace_name` is missing");
        goto out;
    }
    sl_accesslog_workspace(r, wsn->str);
    if ((!fsn || fsn->kind != SL_JSON_STRING) && (!fsid || fsid->kind != SL_JSON_STRING)) {
        fail(r, SL_EINVAL, "Required field `feature_service_name` is missing");
        goto out;
    }
    if (!sl_auth_allowed(n->auth, p, wsn->str, SL_ACT_READ)) {
        sl_auth_audit_denied(p, 403, sl_http_path(r), wsn->str, "not allowed to read features");
        fail(r, SL_EPERM, "The service account is not authorized to read features from workspace `%s`",
             wsn->str);
        goto out;
    }
    q.ws = sl_registry_get(n->reg, wsn->str);
    if (!q.ws) {
        fail(r, SL_ENOTFOUND, "Workspace `%s` not found", wsn->str);
        goto out;
    }
    q.svc = fsn && fsn->kind == SL_JSON_STRING ? sl_ws_service(q.ws, fsn->str)
                                                : sl_ws_service_by_id(q.ws, fsid->str);
    if (!q.svc) {
        fail(r, SL_ENOTFOUND, "Feature service `%s` not found in workspace `%s`",
             fsn && fsn->kind == SL_JSON_STRING ? fsn->str : fsid->str, wsn->str);
        goto out;
    }
    if (read_options(params, q.opt) != 0) {
        fail(r, SL_EINVAL, "`metadata_options` must be an object of booleans");
        goto out;
    }

    if (call == SL_SERVE_METADATA) {
        metadata_call(&q, out);
        ok = 1;
        goto out;
    }
    if (call == SL_SERVE_GET) {
        st = grow(&q.sc->st, &q.sc->st_cap, q.svc->nfeatures + 1, sizeof(*st));
        int rc = st ? serve_row(&q, param(params, "join_key_map", "joinKeyMap"),
                                param(params, "request_context_map", "requestContextMap"), vals,
                                st, msg, sizeof(msg))
                    : SL_ENOMEM;
        if (rc != 0) {
            fail(r, rc, "%s", rc == SL_ENOMEM ? "out of memory" : msg);
            goto out;
        }
        sl_buf_puts(out, "{\"result\":{\"features\":[");
        sl_buf_append(out, vals->p, vals->len);
        sl_buf_puts(out, "]},");
        write_metadata(&q, out, st, 1, 0);
        sl_buf_putc(out, '}');
        ok = 1;
        goto out;
    }
    /* batch */
    const struct sl_json *rows = param(params, "request_data", "requestData");
    if (!rows || rows->kind != SL_JSON_ARRAY) {
        fail(r, SL_EINVAL, "Required field `request_data` is missing");
        goto out;
    }
    st = grow(&q.sc->st, &q.sc->st_cap, rows->count * q.svc->nfeatures + 1, sizeof(*st));
    if (!st) {
        fail(r, SL_ENOMEM, "out of memory");
        goto out;
    }
    sl_buf_puts(out, "{\"result\":[");
    size_t i = 0;
    for (const struct sl_json *row = rows->child; row; row = row->next, i++) {
        sl_buf_reset(vals);
        int rc = serve_row(&q, row->kind == SL_JSON_OBJECT ? param(row, "join_key_map", "joinKeyMap") : NULL,
                           row->kind == SL_JSON_OBJECT ? param(row, "request_context_map", "requestContextMap") : NULL,
                           vals, st + i * q.svc->nfeatures, msg, sizeof(msg));
        if (rc != 0) {
            fail(r, rc, "request_data[%zu]: %s", i, msg);
            goto out;
        }
        sl_buf_puts(out, i ? ",{\"features\":[" : "{\"features\":[");
        sl_buf_append(out, vals->p, vals->len);
        sl_buf_puts(out, "]}");
    }
    sl_buf_puts(out, "],");
    write_metadata(&q, out, st, rows->count, 1);
    sl_buf_putc(out, '}');
    ok = 1;
out:
    if (ok && !out->oom && !vals->oom) {
        sl_http_reply(r, 200, "application/json", out->p, out->len);
    } else if (ok) {
        fail(r, SL_ENOMEM, "out of memory");
    } else {
        __atomic_add_fetch(&n->read_errors, 1, __ATOMIC_RELAXED);
    }
    sl_ws_release(q.ws);
    scratch_trim(q.sc);
}
