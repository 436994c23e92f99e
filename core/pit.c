/* Point-in-time joins: events sorted by (entity, time) merged with the view's offline
 * records in (entity, time, sequence) order. */
#include "pit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "buf.h"
#include "error.h"
#include "json.h"
#include "keys.h"
#include "offline.h"
#include "registry.h"
#include "segment.h"
#include "serve.h"
#include "tiles.h"
#include "timeutil.h"
#include "transform.h"
#include "types.h"

struct event {
    const struct sl_json *row;
    int64_t ts;
    size_t key, klen;     /* entity key of the current view, in keys */
    const char *kp;       /* keys.p + key, resolved once keys stops growing, for sorting */
    int null_key;
};

struct run {
    const struct sl_ws *ws;
    const struct sl_service *svc;
    struct sl_arena arena;
    size_t line0, ev0;    /* added to reported line numbers and event indexes */
    struct event *ev;
    size_t nev;
    char **cols;          /* input columns, in order of first appearance */
    size_t ncols;
    struct sl_buf keys;
    /* results: per event, per output feature, a JSON fragment in res */
    struct sl_buf res;
    size_t *frag_off, *frag_len; /* [event * width + feature] */
    size_t width;         /* slots per event: the service's features, then inputs' (rt_plan) */
    int csv;              /* the events are CSV: every cell is text */
    /* realtime views' input views, joined for every event: view i's features have the
     * slots in_fo[i].. of each event (a service item's when it selects them all, in order) */
    size_t nin;
    const struct sl_view **in_view;
    size_t *in_fo;
    struct sl_service_item *hidden; /* the input views joined only as inputs */
    size_t nhidden;
    int *all;             /* 0, 1, 2, ...: the features of a hidden item */
};

/* ---- reading events ---- */

static int add_col(struct run *r, const char *name)
{
    for (size_t i = 0; i < r->ncols; i++)
        if (strcmp(r->cols[i], name) == 0)
            return 0;
    char **g = realloc(r->cols, (r->ncols + 1) * sizeof(*g));
    if (!g)
        return SL_ENOMEM;
    r->cols = g;
    r->cols[r->ncols] = strdup(name);
    return r->cols[r->ncols++] ? 0 : SL_ENOMEM;
}

static int add_event(struct run *r, const struct sl_json *row, size_t *cap)
{
    if (r->nev == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        struct event *g = realloc(r->ev, *cap * sizeof(*g));
        if (!g)
            return SL_ENOMEM;
        r->ev = g;
    }
    r->ev[r->nev++] = (struct event){.row = row};
    return 0;
}

static int read_jsonl(struct run *r, const char *p, size_t len, struct sl_error *err)
{
    size_t cap = 0, line = r->line0;
    while (len > 0) {
        const char *nl = memchr(p, '\n', len);
        size_t n = nl ? (size_t)(nl - p) : len;
        line++;
        size_t k = n;
        while (k > 0 && (p[k - 1] == '\r' || p[k - 1] == ' ' || p[k - 1] == '\t'))
            k--;
        if (k > 0) {
            struct sl_json *row = sl_json_parse(p, k, &r->arena, err);
            if (!row)
                return sl_error_prefix(err, "events line %zu: ", line);
            if (row->kind != SL_JSON_OBJECT)
                return sl_error_set(err, SL_EINVAL, "events line %zu: expected a JSON object", line);
            for (const struct sl_json *m = row->child; m; m = m->next)
                if (add_col(r, m->key) != 0)
                    return sl_error_set(err, SL_ENOMEM, "out of memory");
            if (add_event(r, row, &cap) != 0)
                return sl_error_set(err, SL_ENOMEM, "out of memory");
        }
        if (!nl)
            break;
        len -= n + 1;
        p = nl + 1;
    }
    return 0;
}

/* One RFC 4180 field starting at *p; returns its unquoted text (arena). */
static char *csv_field(struct run *r, const char **p, const char *end, size_t *flen, int *eol,
                       size_t *line, struct sl_error *err)
{
    const char *s = *p;
    struct sl_buf b = SL_BUF_INIT;
    char *out = NULL;
    size_t start = *line;
    *eol = 0;
    if (s < end && *s == '"') {
        s++;
        for (;;) {
            if (s >= end) {
                sl_error_set(err, SL_EINVAL, "events line %zu: unterminated quoted field", start);
                goto done;
            }
            if (*s == '"') {
                if (s + 1 < end && s[1] == '"') {
                    sl_buf_putc(&b, '"');
                    s += 2;
                    continue;
                }
                s++;
                break;
            }
            if (*s == '\n')
                (*line)++;
            sl_buf_putc(&b, *s++);
        }
        if (s < end && *s != ',' && *s != '\n' && *s != '\r') {
            sl_error_set(err, SL_EINVAL, "events line %zu: text after a closing quote", *line);
            goto done;
        }
    } else {
        const char *q = s;
        while (q < end && *q != ',' && *q != '\n' && *q != '\r')
            q++;
        if (memchr(s, '"', (size_t)(q - s))) {
            sl_error_set(err, SL_EINVAL, "events line %zu: a quote inside an unquoted field", *line);
            goto done;
        }
        sl_buf_append(&b, s, (size_t)(q - s));
        s = q;
    }
    if (s < end && *s == '\r')
        s++;
    if (s >= end || *s == '\n') {
        *eol = 1;
        if (s < end)
            s++;
    } else {
        s++; /* comma */
    }
    *p = s;
    *flen = b.len;
    out = sl_arena_strndup(&r->arena, b.p ? b.p : "", b.len);
    if (!out)
        sl_error_set(err, SL_ENOMEM, "out of memory");
done:
    sl_buf_free(&b);
    return out;
}

static int read_csv(struct run *r, const char *p, size_t len, struct sl_error *err)
{
    const char *end = p + len;
    size_t line = 1, cap = 0, flen;
    int header = 1;
    int eol = 0;
    while (p < end && !eol) {
        char *f = csv_field(r, &p, end, &flen, &eol, &line, err);
        if (!f || add_col(r, f) != 0)
            return err->code ? err->code : sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    while (p < end) {
        if (header) { /* the header is line 1; data lines continue at line0 + 2 */
            line += r->line0;
            header = 0;
        }
        line++;
        if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) { /* blank line */
            p += *p == '\r' ? 2 : 1;
            continue;
        }
        struct sl_json *row = sl_arena_alloc(&r->arena, sizeof(*row));
        if (!row)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        memset(row, 0, sizeof(*row));
        row->kind = SL_JSON_OBJECT;
        struct sl_json **tail = &row->child;
        size_t col = 0, at = line;
        eol = 0;
        while (!eol) {
            char *f = csv_field(r, &p, end, &flen, &eol, &line, err);
            if (!f)
                return err->code;
            if (col >= r->ncols)
                return sl_error_set(err, SL_EINVAL, "events line %zu: more fields than the header", at);
            struct sl_json *c = sl_arena_alloc(&r->arena, sizeof(*c));
            if (!c)
                return sl_error_set(err, SL_ENOMEM, "out of memory");
            memset(c, 0, sizeof(*c));
            c->kind = flen ? SL_JSON_STRING : SL_JSON_NULL;
            c->str = f;
            c->len = flen;
            c->key = r->cols[col];
            c->keylen = strlen(r->cols[col]);
            *tail = c;
            tail = &c->next;
            row->count++;
            col++;
        }
        if (col != r->ncols)
            return sl_error_set(err, SL_EINVAL, "events line %zu: %zu fields, the header has %zu", at,
                                col, r->ncols);
        if (add_event(r, row, &cap) != 0)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    return 0;
}

/* ---- the join ---- */

static int cmp_event(const void *a, const void *b)
{
    const struct event *x = *(const struct event *const *)a, *y = *(const struct event *const *)b;
    int c = sl_bytes_cmp(x->kp, x->klen, y->kp, y->klen);
    if (c)
        return c;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}


/* Entity keys of every event for view v (prefix + join key parts). */
static int event_keys(struct run *r, const struct sl_view *v, struct sl_error *err)
{
    char msg[256];
    sl_buf_reset(&r->keys);
    for (size_t i = 0; i < r->nev; i++) {
        struct event *e = &r->ev[i];
        e->key = r->keys.len;
        e->null_key = 0;
        sl_buf_append(&r->keys, v->key, 8);
        for (size_t k = 0; k < v->nkeys; k++) {
            const struct sl_json *val = sl_json_get(e->row, v->join_keys[k].name);
            if (!val)
                return sl_error_set(err, SL_EINVAL, "event %zu: missing join key `%s`", i + r->ev0,
                                    v->join_keys[k].name);
            size_t at = r->keys.len;
            sl_buf_u32(&r->keys, 0);
            int rc = sl_key_join_json(&r->keys, &v->join_keys[k], val, msg, sizeof(msg));
            if (rc < 0)
                return sl_error_set(err, SL_EINVAL, "event %zu: %s", i + r->ev0, msg);
            e->null_key |= rc == 1;
            uint32_t n = (uint32_t)(r->keys.len - at - 4);
            memcpy(r->keys.p + at, &n, 4);
        }
        e->klen = r->keys.len - e->key;
    }
    return r->keys.oom ? sl_error_set(err, SL_ENOMEM, "out of memory") : 0;
}

struct entity_events {
    struct sl_buf bytes;
    size_t n, cap;
    struct { int64_t ts; uint64_t seq; size_t off, len; } *e;
};

static int keep_event(struct entity_events *ee, const struct sl_segment_record *rec)
{
    if (ee->n == ee->cap) {
        size_t cap = ee->cap ? ee->cap * 2 : 64;
        void *g = realloc(ee->e, cap * sizeof(*ee->e));
        if (!g)
            return SL_ENOMEM;
        ee->e = g;
        ee->cap = cap;
    }
    ee->e[ee->n].ts = rec->time_ns;
    ee->e[ee->n].seq = rec->seq;
    ee->e[ee->n].off = ee->bytes.len;
    ee->e[ee->n].len = rec->payload_len;
    ee->n++;
    sl_buf_append(&ee->bytes, rec->payload, rec->payload_len);
    return ee->bytes.oom ? SL_ENOMEM : 0;
}

/* Writes the values of view v's selected features for event e from the current state:
 * an attribute row (row/rowlen, NULL if none) or the entity's events (aggregates). */
static int emit_view(struct run *r, const struct sl_service_item *it, size_t e, size_t fo,
                     const char *row, size_t rowlen, int64_t row_ts,
                     const struct entity_events *ee, struct sl_error *err)
{
    const struct sl_view *v = it->view;
    size_t nf = r->width;
    if (!v->agg) {
        const char *frag[256];
        size_t flen[256];
        int ok = row && !r->ev[e].null_key &&
                 (v->ttl_ns == 0 || row_ts >= r->ev[e].ts - v->ttl_ns) && v->nfeatures <= 256;
        struct sl_cursor c = {(const unsigned char *)row, rowlen};
        for (size_t f = 0; ok && f < v->nfeatures; f++)
            ok = sl_cur_lenstr(&c, &frag[f], &flen[f]) == 0;
        for (size_t f = 0; f < it->nfeat; f++) {
            size_t slot = e * nf + fo + f;
            r->frag_off[slot] = r->res.len;
            if (ok)
                sl_buf_append(&r->res, frag[it->feat[f]], flen[it->feat[f]]);
            else
                sl_buf_puts(&r->res, "null");
            r->frag_len[slot] = r->res.len - r->frag_off[slot];
        }
        return 0;
    }
    const struct sl_tiles_view *tv = v->agg;
    size_t n = ee ? ee->n : 0;
    struct sl_agg_event *evs = calloc(n + 1, sizeof(*evs));
    struct sl_scalar *sc = calloc((n + 1) * tv->nspecs, sizeof(*sc));
    int rc = 0;
    if (!evs || !sc) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)ee->bytes.p + ee->e[i].off;
        size_t left = ee->e[i].len;
        for (size_t s = 0; s < tv->nspecs; s++)
            if (sl_agg_value_decode(&p, &left, &sc[i * tv->nspecs + s]) != 0) {
                rc = sl_error_set(err, SL_ECORRUPT, "corrupt offline record of view `%s`", v->name);
                goto out;
            }
    }
    for (size_t f = 0; f < it->nfeat; f++) {
        size_t fi = (size_t)it->feat[f];
        for (size_t i = 0; i < n; i++)
            evs[i] = (struct sl_agg_event){ee->e[i].ts, ee->e[i].seq, &sc[i * tv->nspecs + fi]};
        size_t slot = e * nf + fo + f;
        r->frag_off[slot] = r->res.len;
        if (r->ev[e].null_key)
            sl_buf_puts(&r->res, "null");
        else if ((rc = sl_agg_eval_events(tv->specs[fi], evs, n, r->ev[e].ts, &r->res)) != 0) {
            sl_error_set(err, rc, "aggregation of view `%s` failed", v->name);
            goto out;
        }
        r->frag_len[slot] = r->res.len - r->frag_off[slot];
    }
out:
    free(evs);
    free(sc);
    return rc;
}

/* Joins one view: events sorted by (entity, time), records in (entity, time, seq) order. */
static int join_view(struct run *r, struct sl_offline *off, const struct sl_service_item *it,
                     size_t fo, struct sl_error *err)
{
    const struct sl_view *v = it->view;
    struct event **order = NULL;
    struct sl_segment_iter *iter = NULL;
    struct entity_events ee = {0};
    struct sl_buf row = SL_BUF_INIT, cur = SL_BUF_INIT;
    int rc;
    if ((rc = event_keys(r, v, err)) != 0)
        return rc;
    order = malloc((r->nev + 1) * sizeof(*order));
    if (!order)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < r->nev; i++) {
        r->ev[i].kp = r->keys.p + r->ev[i].key;
        order[i] = &r->ev[i];
    }
    qsort(order, r->nev, sizeof(*order), cmp_event);

    unsigned char hi[9];
    memcpy(hi, v->key, 8);
    hi[8] = 0xff;
    struct sl_segment_iter_opts io = {.key_lo = v->key, .key_lo_len = 8, .key_hi = hi, .key_hi_len = 9};
    rc = v->is_realtime ? SL_ENOTFOUND : sl_offline_iter(off, r->ws->name, v->name, &io, &iter, err);
    if (rc == SL_ENOTFOUND) {
        rc = 0;
        memset(err, 0, sizeof(*err));
        iter = NULL;
    } else if (rc) {
        goto out;
    }
    struct sl_segment_record rec;
    int have = 0;
    if (iter && (have = sl_segment_iter_next(iter, &rec, err)) < 0) {
        rc = have;
        goto out;
    }
    int64_t row_ts = 0;
    int have_row = 0;
    for (size_t i = 0; i < r->nev; i++) {
        struct event *e = order[i];
        const char *ek = r->keys.p + e->key;
        /* a new entity: forget the previous one's state */
        if (cur.len != e->klen || memcmp(cur.p, ek, e->klen) != 0) {
            sl_buf_reset(&cur);
            sl_buf_append(&cur, ek, e->klen);
            have_row = 0;
            ee.n = 0;
            sl_buf_reset(&ee.bytes);
            /* skip records of smaller entities */
            while (have && sl_bytes_cmp(rec.key, rec.key_len, ek, e->klen) < 0)
                if ((have = sl_segment_iter_next(iter, &rec, err)) < 0) {
                    rc = have;
                    goto out;
                }
        }
        /* take this entity's records up to the event time */
        while (have && sl_bytes_cmp(rec.key, rec.key_len, ek, e->klen) == 0 && rec.time_ns <= e->ts) {
            if (v->agg) {
                if ((rc = keep_event(&ee, &rec)) != 0) {
                    sl_error_set(err, rc, "out of memory");
                    goto out;
                }
            } else {
                sl_buf_reset(&row);
                sl_buf_append(&row, rec.payload, rec.payload_len);
                row_ts = rec.time_ns;
                have_row = 1;
            }
            if ((have = sl_segment_iter_next(iter, &rec, err)) < 0) {
                rc = have;
                goto out;
            }
        }
        rc = emit_view(r, it, (size_t)(e - r->ev), fo, have_row ? row.p : NULL, row.len, row_ts,
                       &ee, err);
        if (rc)
            goto out;
    }
    rc = r->res.oom ? sl_error_set(err, SL_ENOMEM, "out of memory") : 0;
out:
    sl_segment_iter_destroy(iter);
    free(order);
    free(ee.e);
    sl_buf_free(&ee.bytes);
    sl_buf_free(&row);
    sl_buf_free(&cur);
    return rc;
}

/* ---- realtime views ----
 * Computed per event, after the joins, by the code online serving runs
 * (sl_xform_realtime_view): the request context from the event's columns of the same names,
 * the input views' values at the event's time, the same Lua function in a VM with the
 * online budgets. */

static int rt_add_input(struct run *r, const struct sl_view *iv)
{
    for (size_t i = 0; i < r->nin; i++)
        if (r->in_view[i] == iv)
            return 0;
    const struct sl_view **gv = realloc(r->in_view, (r->nin + 1) * sizeof(*gv));
    if (gv)
        r->in_view = gv;
    size_t *gf = gv ? realloc(r->in_fo, (r->nin + 1) * sizeof(*gf)) : NULL;
    if (!gf)
        return SL_ENOMEM;
    r->in_fo = gf;
    /* a service item selecting all of the view's features in order already has them */
    size_t fo = 0;
    for (size_t i = 0; i < r->svc->nitems; i++) {
        const struct sl_service_item *it = &r->svc->items[i];
        int whole = it->view == iv && it->nfeat == iv->nfeatures;
        for (size_t f = 0; whole && f < it->nfeat; f++)
            whole = it->feat[f] == (int)f;
        if (whole) {
            r->in_view[r->nin] = iv;
            r->in_fo[r->nin++] = fo;
            return 0;
        }
        fo += it->nfeat;
    }
    struct sl_service_item *gh = realloc(r->hidden, (r->nhidden + 1) * sizeof(*gh));
    if (!gh)
        return SL_ENOMEM;
    r->hidden = gh;
    r->hidden[r->nhidden++] = (struct sl_service_item){(struct sl_view *)iv, iv->nfeatures, r->all};
    r->in_view[r->nin] = iv;
    r->in_fo[r->nin++] = r->width;
    r->width += iv->nfeatures;
    return 0;
}

/* A view a realtime view can read (as sl_xform_realtime_view passes them). */
static const struct sl_view *rt_input_view(const struct run *r, const char *name)
{
    const struct sl_view *iv = sl_ws_view(r->ws, name);
    return iv && !iv->is_realtime && iv->nfeatures <= SL_MAX_VIEW_FEATURES ? iv : NULL;
}

/* The input views of the service's realtime views and their slots; sets r->width. */
static int rt_plan(struct run *r, struct sl_error *err)
{
    size_t most = 1;
    r->width = r->svc->nfeatures;
    for (size_t i = 0; i < r->svc->nitems; i++) {
        const struct sl_view *v = r->svc->items[i].view;
        for (size_t k = 0; v->is_realtime && k < v->nrt_sources; k++) {
            const struct sl_view *iv = rt_input_view(r, v->rt_sources[k]);
            if (iv && iv->nfeatures > most)
                most = iv->nfeatures;
        }
    }
    if (!(r->all = malloc(most * sizeof(int))))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t f = 0; f < most; f++)
        r->all[f] = (int)f;
    for (size_t i = 0; i < r->svc->nitems; i++) {
        const struct sl_view *v = r->svc->items[i].view;
        for (size_t k = 0; v->is_realtime && k < v->nrt_sources; k++) {
            const struct sl_view *iv = rt_input_view(r, v->rt_sources[k]);
            if (iv && rt_add_input(r, iv) != 0)
                return sl_error_set(err, SL_ENOMEM, "out of memory");
        }
    }
    return 0;
}

struct rt_event {
    struct run *r;
    size_t e;
};

/* The point-in-time values of input view iv for one event (sl_xform_input_fn). */
static int rt_values(void *arg, const struct sl_view *iv, const char **frag, size_t *len,
                     char *msg, size_t cap)
{
    const struct rt_event *re = arg;
    const struct run *r = re->r;
    for (size_t i = 0; i < r->nin; i++)
        if (r->in_view[i] == iv) {
            size_t base = re->e * r->width + r->in_fo[i];
            for (size_t f = 0; f < iv->nfeatures; f++) {
                frag[f] = r->res.p + r->frag_off[base + f];
                len[f] = r->frag_len[base + f];
            }
            return 0;
        }
    snprintf(msg, cap, "input view `%s` was not joined", iv->name);
    return SL_EINVAL;
}

/* The request context of realtime view v for event e: the event's columns named as v's
 * request source fields. A CSV cell (text) becomes the JSON value it spells for a field of a
 * non-text type (12.5, true, [1,2]), so it is checked and converted as online. */
static int rt_context(struct run *r, size_t e, const struct sl_view *v, struct sl_arena *a,
                      const struct sl_json **ctx, struct sl_error *err)
{
    const struct sl_json *row = r->ev[e].row;
    struct sl_json *obj = r->csv ? sl_json_node(a, SL_JSON_OBJECT, NULL, 0, NULL, 0) : NULL;
    struct sl_json **tail = obj ? &obj->child : NULL;
    if (r->csv && !obj)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t k = 0; k < v->nrt_sources; k++) {
        const struct sl_source *src = sl_ws_source(r->ws, v->rt_sources[k]);
        for (size_t f = 0; src && src->is_request && f < src->nfields; f++) {
            const struct sl_field *fd = &src->schema[f];
            const struct sl_json *val = sl_json_get(row, fd->name);
            if (!val)
                return sl_error_set(err, SL_EINVAL,
                                    "event %zu: no column `%s` for the request context of "
                                    "realtime feature view `%s`", e + r->ev0, fd->name, v->name);
            if (!r->csv)
                continue;
            struct sl_error perr = {0};
            struct sl_json *typed = NULL;
            if (val->kind == SL_JSON_STRING && fd->type->kind != SL_STRING &&
                fd->type->kind != SL_TIMESTAMP)
                typed = sl_json_parse(val->str, val->len, a, &perr);
            struct sl_json *c = sl_json_node(a, SL_JSON_NULL, fd->name, strlen(fd->name), NULL, 0);
            if (!c)
                return sl_error_set(err, SL_ENOMEM, "out of memory");
            const char *key = c->key;
            *c = typed ? *typed : *val;
            c->key = key;
            c->keylen = strlen(key);
            c->next = NULL;
            *tail = c;
            tail = &c->next;
            obj->count++;
        }
    }
    *ctx = r->csv ? obj : row;
    return 0;
}

/* Computes the service's realtime views for every event into their slots. */
static int rt_run(struct run *r, const struct sl_pit_opts *o, struct sl_error *err)
{
    static const struct sl_vm_limits online_defaults = {0, 0, 0};
    const struct sl_service *svc = r->svc;
    size_t nrt = 0;
    for (size_t i = 0; i < svc->nitems; i++)
        nrt += svc->items[i].view->is_realtime;
    if (nrt == 0 || r->nev == 0)
        return 0;
    struct sl_xform_cache *xc = sl_xform_cache_new(o->vm_limits ? o->vm_limits : &online_defaults);
    lua_State *L = xc ? sl_xform_vm(xc, r->ws, err) : NULL;
    struct sl_arena a = {0};
    char msg[640];
    int rc = 0;
    if (!L) {
        rc = xc ? err->code : sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t e = 0; e < r->nev && rc == 0; e++) {
        struct rt_event re = {r, e};
        size_t fo = 0;
        for (size_t i = 0; i < svc->nitems && rc == 0; i++) {
            const struct sl_service_item *it = &svc->items[i];
            const struct sl_json *ctx = NULL;
            if (it->view->is_realtime) {
                sl_arena_reset(&a);
                size_t at = e * r->width + fo;
                rc = rt_context(r, e, it->view, &a, &ctx, err);
                sl_time_set_thread_now(r->ev[e].ts); /* sluice.time.now() is the event's time */
                if (rc == 0 &&
                    (rc = sl_xform_realtime_view(L, r->ws, it->view, ctx, rt_values, &re, it->feat,
                                                 it->nfeat, &a, &r->res, &r->frag_off[at],
                                                 &r->frag_len[at], msg, sizeof(msg))) != 0)
                    sl_error_set(err, rc, "event %zu: %s", e + r->ev0, msg);
                sl_time_set_thread_now(0);
            }
            fo += it->nfeat;
        }
    }
out:
    sl_arena_free(&a);
    sl_xform_cache_free(xc);
    return rc;
}

/* ---- output ---- */

static void csv_cell(struct sl_buf *out, const char *p, size_t n)
{
    int quote = 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = p[i] == ',' || p[i] == '"' || p[i] == '\n' || p[i] == '\r';
    if (!quote) {
        sl_buf_append(out, p, n);
        return;
    }
    sl_buf_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"')
            sl_buf_putc(out, '"');
        sl_buf_putc(out, p[i]);
    }
    sl_buf_putc(out, '"');
}

/* A JSON fragment as a CSV cell: strings unquoted, null empty, the rest as JSON text. */
static void csv_value(struct sl_buf *out, const char *p, size_t n)
{
    if (n == 4 && memcmp(p, "null", 4) == 0)
        return;
    if (n > 0 && p[0] == '"') {
        struct sl_error err = {0};
        struct sl_arena a = {0};
        struct sl_json *s = sl_json_parse(p, n, &a, &err);
        if (s && s->kind == SL_JSON_STRING)
            csv_cell(out, s->str, s->len);
        else
            csv_cell(out, p, n);
        sl_arena_free(&a);
        return;
    }
    csv_cell(out, p, n);
}

static void column_name(struct sl_buf *b, const struct sl_view *v, const struct sl_feature *f)
{
    sl_buf_puts(b, v->name);
    sl_buf_puts(b, "__");
    sl_buf_puts(b, f->name);
}

static void write_output(struct run *r, const struct sl_pit_opts *o, struct sl_buf *out)
{
    const struct sl_service *svc = r->svc;
    struct sl_buf name = SL_BUF_INIT;
    if (o->output == SL_PIT_CSV) {
        for (size_t c = 0; c < r->ncols; c++) {
            sl_buf_puts(out, c ? "," : "");
            csv_cell(out, r->cols[c], strlen(r->cols[c]));
        }
        for (size_t i = 0; i < svc->nitems; i++)
            for (size_t f = 0; f < svc->items[i].nfeat; f++) {
                sl_buf_reset(&name);
                column_name(&name, svc->items[i].view, &svc->items[i].view->features[svc->items[i].feat[f]]);
                sl_buf_puts(out, r->ncols || i || f ? "," : "");
                csv_cell(out, name.p, name.len);
            }
        sl_buf_putc(out, '\n');
    }
    for (size_t e = 0; e < r->nev; e++) {
        const struct sl_json *row = r->ev[e].row;
        if (o->output == SL_PIT_CSV) {
            for (size_t c = 0; c < r->ncols; c++) {
                const struct sl_json *v = sl_json_get(row, r->cols[c]);
                sl_buf_puts(out, c ? "," : "");
                if (v && v->kind == SL_JSON_STRING)
                    csv_cell(out, v->str, v->len);
                else if (v && (v->kind == SL_JSON_NUMBER))
                    sl_buf_append(out, v->str, v->len);
                else if (v && v->kind != SL_JSON_NULL) {
                    struct sl_buf t = SL_BUF_INIT;
                    sl_json_write(&t, v);
                    csv_cell(out, t.p, t.len);
                    sl_buf_free(&t);
                }
            }
        } else {
            sl_buf_putc(out, '{');
            int first = 1;
            for (const struct sl_json *m = row->child; m; m = m->next) {
                sl_buf_puts(out, first ? "" : ",");
                first = 0;
                sl_buf_json_str(out, m->key, m->keylen);
                sl_buf_putc(out, ':');
                sl_json_write(out, m);
            }
        }
        size_t fo = 0;
        for (size_t i = 0; i < svc->nitems; i++) {
            const struct sl_service_item *it = &svc->items[i];
            for (size_t f = 0; f < it->nfeat; f++, fo++) {
                size_t slot = e * r->width + fo;
                const char *p = r->res.p + r->frag_off[slot];
                size_t n = r->frag_len[slot];
                if (o->output == SL_PIT_CSV) {
                    sl_buf_puts(out, r->ncols || fo ? "," : "");
                    csv_value(out, p, n);
                } else {
                    sl_buf_puts(out, row->child || fo ? "," : "");
                    sl_buf_putc(out, '"');
                    column_name(out, it->view, &it->view->features[it->feat[f]]);
                    sl_buf_puts(out, "\":");
                    sl_buf_append(out, p, n);
                }
            }
        }
        sl_buf_puts(out, o->output == SL_PIT_CSV ? "\n" : "}\n");
    }
    sl_buf_free(&name);
}

int sl_pit_run(struct sl_offline *off, const struct sl_ws *ws, const struct sl_service *svc,
               const char *events, size_t len, const struct sl_pit_opts *o, struct sl_buf *out,
               struct sl_error *err)
{
    struct run r = {.ws = ws, .svc = svc, .line0 = o->line_offset, .ev0 = o->event_offset,
                    .csv = o->input == SL_PIT_CSV};
    const char *tk = o->timestamp_key ? o->timestamp_key : "timestamp";
    int rc = o->input == SL_PIT_CSV ? read_csv(&r, events, len, err)
                                    : read_jsonl(&r, events, len, err);
    if (rc)
        goto out;
    for (size_t i = 0; i < r.nev; i++) {
        const struct sl_json *t = sl_json_get(r.ev[i].row, tk);
        if (!t) {
            rc = sl_error_set(err, SL_EINVAL,
                              "event %zu has no `%s` column (the events' time); name the column "
                              "that holds it with --timestamp-key (timestamp_key= over HTTP)",
                              i + r.ev0, tk);
            goto out;
        }
        if (t->kind != SL_JSON_STRING || sl_time_parse(t->str, t->len, &r.ev[i].ts) != 0) {
            rc = sl_error_set(err, SL_EINVAL, "event %zu: `%s` must be an RFC 3339 time", i + r.ev0, tk);
            goto out;
        }
    }
    if ((rc = rt_plan(&r, err)) != 0)
        goto out;
    size_t slots = r.nev * r.width + 1;
    r.frag_off = calloc(slots, sizeof(size_t));
    r.frag_len = calloc(slots, sizeof(size_t));
    if (!r.frag_off || !r.frag_len) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    size_t fo = 0;
    for (size_t i = 0; i < svc->nitems && rc == 0; i++) {
        if (!svc->items[i].view->is_realtime)
            rc = join_view(&r, off, &svc->items[i], fo, err);
        fo += svc->items[i].nfeat;
    }
    for (size_t i = 0; i < r.nhidden && rc == 0; i++) { /* their slots follow, in order */
        rc = join_view(&r, off, &r.hidden[i], fo, err);
        fo += r.hidden[i].nfeat;
    }
    if (rc == 0)
        rc = rt_run(&r, o, err);
    if (rc == 0)
        write_output(&r, o, out);
    if (rc == 0 && out->oom)
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
out:
    sl_arena_free(&r.arena);
    free(r.ev);
    for (size_t i = 0; i < r.ncols; i++)
        free(r.cols[i]);
    free(r.cols);
    sl_buf_free(&r.keys);
    sl_buf_free(&r.res);
    free(r.frag_off);
    free(r.frag_len);
    free(r.in_view);
    free(r.in_fo);
    free(r.hidden);
    free(r.all);
    return rc;
}

/* ---- get-features-in-range ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

struct range_out {
    const struct sl_pit_opts *o;
    const struct sl_service *svc;
    struct sl_buf *out;
    size_t rows;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t ceil_to(int64_t t, int64_t step)
{
    int64_t q = t / step;
    if (q * step < t)
        q++;
    return q * step;
}

/* The times at which the view's values for one entity can change (sorted, unique). */
static size_t change_points(const struct sl_view *v, const struct entity_events *ee,
                            int64_t **pts)
{
    size_t cap = ee->n * (v->agg ? 2 * v->agg->nspecs : 2) + 1, n = 0;
    int64_t *p = malloc(cap * sizeof(*p));
    if (!p)
        return 0;
    for (size_t i = 0; i < ee->n; i++) {
        int64_t ts = ee->e[i].ts;
        if (!v->agg) {
            p[n++] = ts;
            if (v->ttl_ns > 0)
                p[n++] = ts + v->ttl_ns + 1; /* older than ttl from then on */
            continue;
        }
        for (size_t s = 0; s < v->agg->nspecs; s++) {
            const struct sl_agg_spec *sp = v->agg->specs[s];
            int lifetime = sp->window == SL_AGG_LIFETIME;
            if (sp->interval > 0) {
                /* the window ends at multiples of the interval (of t + offset) */
                p[n++] = ceil_to(ts + 1, sp->interval) - sp->offset;
                if (!lifetime)
                    p[n++] = ceil_to(ts + sp->window + 1, sp->interval) - sp->offset;
            } else {
                p[n++] = ts - sp->offset;
                if (!lifetime)
                    p[n++] = ts + sp->window - sp->offset + 1;
            }
        }
    }
    qsort(p, n, sizeof(*p), cmp_i64);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || p[i] != p[u - 1])
            p[u++] = p[i];
    *pts = p;
    return u;
}

/* The JSON values of the selected features of view it at time t, comma-separated. */
static int values_at(const struct sl_service_item *it, const struct entity_events *ee, int64_t t,
                     struct sl_buf *vals, struct sl_error *err)
{
    const struct sl_view *v = it->view;
    sl_buf_reset(vals);
    if (!v->agg) {
        /* the latest record at or before t, within ttl */
        long best = -1;
        for (size_t i = 0; i < ee->n; i++)
            if (ee->e[i].ts <= t)
                best = (long)i;
        int ok = best >= 0 && (v->ttl_ns == 0 || ee->e[best].ts >= t - v->ttl_ns);
        const char *frag[256];
        size_t flen[256];
        struct sl_cursor c = {ok ? (const unsigned char *)ee->bytes.p + ee->e[best].off : NULL,
                              ok ? ee->e[best].len : 0};
        for (size_t f = 0; ok && f < v->nfeatures && f < 256; f++)
            ok = sl_cur_lenstr(&c, &frag[f], &flen[f]) == 0;
        for (size_t f = 0; f < it->nfeat; f++) {
            sl_buf_puts(vals, f ? "," : "");
            if (ok)
                sl_buf_append(vals, frag[it->feat[f]], flen[it->feat[f]]);
            else
                sl_buf_puts(vals, "null");
        }
        return 0;
    }
    const struct sl_tiles_view *tv = v->agg;
    struct sl_agg_event *evs = calloc(ee->n + 1, sizeof(*evs));
    struct sl_scalar *sc = calloc((ee->n + 1) * tv->nspecs, sizeof(*sc));
    int rc = 0;
    if (!evs || !sc) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < ee->n; i++) {
        const unsigned char *p = (const unsigned char *)ee->bytes.p + ee->e[i].off;
        size_t left = ee->e[i].len;
        for (size_t s = 0; s < tv->nspecs; s++)
            if (sl_agg_value_decode(&p, &left, &sc[i * tv->nspecs + s]) != 0) {
                rc = sl_error_set(err, SL_ECORRUPT, "corrupt offline record of view `%s`", v->name);
                goto out;
            }
    }
    for (size_t f = 0; f < it->nfeat && rc == 0; f++) {
        size_t fi = (size_t)it->feat[f];
        for (size_t i = 0; i < ee->n; i++)
            evs[i] = (struct sl_agg_event){ee->e[i].ts, ee->e[i].seq, &sc[i * tv->nspecs + fi]};
        sl_buf_puts(vals, f ? "," : "");
        rc = sl_agg_eval_events(tv->specs[fi], evs, ee->n, t, vals);
        if (rc)
            sl_error_set(err, rc, "aggregation of view `%s` failed", v->name);
    }
out:
    free(evs);
    free(sc);
    return rc;
}

int sl_pit_entity_values(const struct sl_view *v, const struct sl_segment_record *recs, size_t n,
                         int64_t t, struct sl_buf *vals, struct sl_error *err)
{
    struct entity_events ee = {0};
    int *feat = calloc(v->nfeatures + 1, sizeof(*feat));
    int rc = feat ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t f = 0; rc == 0 && f < v->nfeatures; f++)
        feat[f] = (int)f;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (keep_event(&ee, &recs[i]) != 0)
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    struct sl_service_item it = {(struct sl_view *)v, v->nfeatures, feat};
    if (rc == 0)
        rc = values_at(&it, &ee, t, vals, err);
    free(feat);
    free(ee.e);
    sl_buf_free(&ee.bytes);
    return rc;
}

/* Appends the entity's join key values (decoded from its key) as JSON members. */
static void entity_columns(const struct sl_view *v, const char *key, size_t klen,
                           struct sl_buf *row)
{
    struct sl_cursor c = {(const unsigned char *)key + 8, klen - 8};
    for (size_t k = 0; k < v->nkeys; k++) {
        const char *p = "";
        size_t n = 0;
        sl_cur_lenstr(&c, &p, &n);
        sl_buf_json_str(row, v->join_keys[k].name, strlen(v->join_keys[k].name));
        sl_buf_putc(row, ':');
        if (v->join_keys[k].type->kind != SL_STRING)
            sl_buf_append(row, p, n);
        else
            sl_buf_json_str(row, p, n);
        sl_buf_putc(row, ',');
    }
}

/* CSV cells of the service's join keys (svc->join_keys, each followed by a comma): the
 * values of the keys view v has (decoded from the entity key), empty cells for the others. */
static void csv_key_columns(const struct sl_service *svc, const struct sl_view *v,
                            const char *key, size_t klen, struct sl_buf *row)
{
    for (size_t s = 0; s < svc->nkeys; s++) {
        struct sl_cursor c = {(const unsigned char *)key + 8, klen - 8};
        for (size_t k = 0; k < v->nkeys; k++) {
            const char *p = "";
            size_t n = 0;
            sl_cur_lenstr(&c, &p, &n);
            if (strcmp(v->join_keys[k].name, svc->join_keys[s].name) == 0) {
                csv_cell(row, p, n);
                break;
            }
        }
        sl_buf_putc(row, ',');
    }
}

/* The header of the CSV table of get-features-in-range: _feature_view, every join key of
 * the service, _valid_from, _valid_to, then the feature columns of every stored view. */
static void range_csv_header(const struct sl_service *svc, struct sl_buf *out)
{
    sl_buf_puts(out, "_feature_view,");
    for (size_t k = 0; k < svc->nkeys; k++) {
        csv_cell(out, svc->join_keys[k].name, strlen(svc->join_keys[k].name));
        sl_buf_putc(out, ',');
    }
    sl_buf_puts(out, "_valid_from,_valid_to");
    for (size_t i = 0; i < svc->nitems; i++) {
        const struct sl_service_item *it = &svc->items[i];
        if (it->view->is_realtime)
            continue;
        for (size_t f = 0; f < it->nfeat; f++) {
            sl_buf_putc(out, ',');
            column_name(out, it->view, &it->view->features[it->feat[f]]);
        }
    }
    sl_buf_putc(out, '\n');
}

/* The first of the comma-separated JSON values in vals, parsed into a (so e->next walks
 * them); NULL when there are none. */
static const struct sl_json *value_list(const struct sl_buf *vals, struct sl_arena *a)
{
    struct sl_error err = {0};
    struct sl_buf arr = SL_BUF_INIT;
    sl_buf_putc(&arr, '[');
    sl_buf_append(&arr, vals->p, vals->len);
    sl_buf_putc(&arr, ']');
    const struct sl_json *list = sl_json_parse(arr.p, arr.len, a, &err);
    sl_buf_free(&arr);
    return list ? list->child : NULL;
}

static void emit_range_row(struct range_out *ro, const struct sl_service_item *it,
                           const char *key, size_t klen, int64_t from, int64_t to,
                           const struct sl_buf *vals)
{
    char f[SL_TIME_MAXLEN], t[SL_TIME_MAXLEN];
    struct sl_buf *out = ro->out;
    const struct sl_view *v = it->view;
    ro->rows++;
    sl_time_format(from, f);
    sl_time_format(to, t);
    if (ro->o->output == SL_PIT_CSV) {
        /* one row per view and interval in the table of range_csv_header: this view's
         * columns filled, the others empty */
        csv_cell(out, v->name, strlen(v->name));
        sl_buf_putc(out, ',');
        csv_key_columns(ro->svc, v, key, klen, out);
        sl_buf_printf(out, "%s,%s", f, t);
        for (size_t i = 0; i < ro->svc->nitems; i++) {
            const struct sl_service_item *other = &ro->svc->items[i];
            if (other->view->is_realtime)
                continue;
            if (other != it) {
                for (size_t k = 0; k < other->nfeat; k++)
                    sl_buf_putc(out, ',');
                continue;
            }
            struct sl_arena a = {0};
            size_t k = 0;
            for (const struct sl_json *e = value_list(vals, &a); e && k < it->nfeat; e = e->next, k++) {
                struct sl_buf one = SL_BUF_INIT;
                sl_json_write(&one, e);
                sl_buf_putc(out, ',');
                csv_value(out, one.p, one.len);
                sl_buf_free(&one);
            }
            for (; k < it->nfeat; k++)
                sl_buf_putc(out, ',');
            sl_arena_free(&a);
        }
        sl_buf_putc(out, '\n');
        return;
    }
    sl_buf_puts(out, "{\"_feature_view\":");
    sl_buf_json_str(out, v->name, strlen(v->name));
    sl_buf_putc(out, ',');
    entity_columns(v, key, klen, out);
    sl_buf_printf(out, "\"_valid_from\":\"%s\",\"_valid_to\":\"%s\"", f, t);
    struct sl_arena a = {0};
    size_t i = 0;
    for (const struct sl_json *e = value_list(vals, &a); e && i < it->nfeat; e = e->next, i++) {
        sl_buf_puts(out, ",\"");
        column_name(out, v, &v->features[it->feat[i]]);
        sl_buf_puts(out, "\":");
        sl_json_write(out, e);
    }
    sl_arena_free(&a);
    sl_buf_puts(out, "}\n");
}

/* Rows of one entity: values at each change point in [start, end) (and at start when the
 * entity had records before it), runs of equal values merged into one row. */
static int range_entity(struct range_out *ro, const struct sl_service_item *it,
                        const char *key, size_t klen, const struct entity_events *ee,
                        int64_t start, int64_t end, struct sl_error *err)
{
    int64_t *pts = NULL;
    size_t n = change_points(it->view, ee, &pts);
    struct sl_buf cur = SL_BUF_INIT, next = SL_BUF_INIT;
    int rc = 0, have = 0;
    int64_t from = 0;
    if (!pts)
        return ee->n ? sl_error_set(err, SL_ENOMEM, "out of memory") : 0;
    int at_start = n > 0 && pts[0] < start;
    for (size_t i = 0; rc == 0 && i < n + (size_t)at_start; i++) {
        int64_t t = at_start ? (i == 0 ? start : pts[i - 1]) : pts[i];
        if (t < start || t >= end || (at_start && i > 0 && t == start))
            continue;
        if ((rc = values_at(it, ee, t, &next, err)) != 0)
            break;
        if (have && next.len == cur.len && memcmp(next.p, cur.p, cur.len) == 0)
            continue;
        if (have)
            emit_range_row(ro, it, key, klen, from, t, &cur);
        struct sl_buf tmp = cur;
        cur = next;
        next = tmp;
        from = t;
        have = 1;
    }
    if (rc == 0 && have)
        emit_range_row(ro, it, key, klen, from, end, &cur);
    free(pts);
    sl_buf_free(&cur);
    sl_buf_free(&next);
    return rc;
}

/* A page token: "<service item index>.<entity key in hex>", the last entity written. */
static int parse_token(const char *tok, size_t *item, struct sl_buf *key)
{
    char *dot;
    errno = 0;
    unsigned long long i = strtoull(tok, &dot, 10);
    if (dot == tok || *dot != '.' || errno || i > 1u << 20)
        return -1;
    const char *h = dot + 1;
    size_t n = strlen(h);
    if (n == 0 || n % 2)
        return -1;
    for (size_t k = 0; k < n; k += 2) {
        int hi = hexval(h[k]), lo = hexval(h[k + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        sl_buf_putc(key, (char)(hi << 4 | lo));
    }
    *item = (size_t)i;
    return key->oom ? -1 : 0;
}

int sl_pit_range(struct sl_offline *off, const struct sl_ws *ws, const struct sl_service *svc,
                 int64_t start, int64_t end, const struct sl_pit_opts *o, struct sl_buf *out,
                 struct sl_buf *next, struct sl_error *err)
{
    struct range_out ro = {.o = o, .svc = svc, .out = out};
    struct sl_buf after = SL_BUF_INIT; /* resume past this entity key of item `first` */
    size_t first = 0;
    int rc = 0, full = 0;
    if (next)
        sl_buf_reset(next);
    if (end <= start)
        return sl_error_set(err, SL_EINVAL, "the end time must be after the start time");
    if (o->page_token && *o->page_token && parse_token(o->page_token, &first, &after) != 0) {
        sl_buf_free(&after);
        return sl_error_set(err, SL_EINVAL, "malformed page token");
    }
    if (o->output == SL_PIT_CSV && !(o->page_token && *o->page_token))
        range_csv_header(svc, out); /* one table: its header on the first page only */
    for (size_t i = first; i < svc->nitems && rc == 0 && !full; i++) {
        const struct sl_service_item *it = &svc->items[i];
        const struct sl_view *v = it->view;
        struct sl_segment_iter *iter = NULL;
        struct entity_events ee = {0};
        struct sl_buf cur = SL_BUF_INIT, lo = SL_BUF_INIT;
        int resume = i == first && after.len > 0;
        if (v->is_realtime)
            continue;
        unsigned char hi[9];
        memcpy(hi, v->key, 8);
        hi[8] = 0xff;
        if (resume) { /* the least key after the last entity written */
            sl_buf_append(&lo, after.p, after.len);
            sl_buf_putc(&lo, 0);
        } else {
            sl_buf_append(&lo, v->key, 8);
        }
        struct sl_segment_iter_opts io = {.key_lo = lo.p, .key_lo_len = lo.len, .key_hi = hi,
                                          .key_hi_len = 9, .has_time_max = 1, .time_max = end};
        rc = lo.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                    : sl_offline_iter(off, ws->name, v->name, &io, &iter, err);
        if (rc == SL_ENOTFOUND) {
            rc = 0;
            memset(err, 0, sizeof(*err));
            sl_buf_free(&lo);
            continue;
        }
        struct sl_segment_record rec;
        int r = 0;
        while (rc == 0 && (r = sl_segment_iter_next(iter, &rec, err)) >= 0) {
            int same = r == 1 && cur.len == rec.key_len && memcmp(cur.p, rec.key, rec.key_len) == 0;
            if (!same && ee.n) {
                rc = range_entity(&ro, it, cur.p, cur.len, &ee, start, end, err);
                if (rc == 0 && o->page_rows && ro.rows >= o->page_rows && next) {
                    /* the page is full: the next one starts after this entity */
                    sl_buf_printf(next, "%zu.", i);
                    for (size_t k = 0; k < cur.len; k++)
                        sl_buf_printf(next, "%02x", (unsigned char)cur.p[k]);
                    full = 1;
                    break;
                }
            }
            if (r == 0 || rc)
                break;
            if (!same) {
                sl_buf_reset(&cur);
                sl_buf_append(&cur, rec.key, rec.key_len);
                ee.n = 0;
                sl_buf_reset(&ee.bytes);
            }
            if (keep_event(&ee, &rec) != 0)
                rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        }
        if (rc == 0 && r < 0)
            rc = r;
        sl_segment_iter_destroy(iter);
        free(ee.e);
        sl_buf_free(&ee.bytes);
        sl_buf_free(&cur);
        sl_buf_free(&lo);
    }
    sl_buf_free(&after);
    if (rc == 0 && (out->oom || (next && next->oom)))
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    return rc;
}
