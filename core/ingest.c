/* POST /ingest. The loop thread parses, validates and encodes; the writer thread only merges
 * rows into the online store; the reply goes out once the group holding it is durable. */
#include "ingest.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "accesslog.h"
#include "auth.h"
#include "buf.h"
#include "error.h"
#include "http.h"
#include "json.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "mutation.h"
#include "offline.h"
#include "registry.h"
#include "sl_limits.h"
#include "serve.h"
#include "server.h"
#include "store.h"
#include "tiles.h"
#include "timeutil.h"
#include "transform.h"
#include "types.h"
#include "wcache.h"

#define SL_INGEST_MAX_KEY (32u * 1024u) /* bytes of a row's join key values together */

#define MAX_RECORD_ERRORS 100
#define SCRATCH_LIMIT (64u << 20) /* one record's transformation output */

/* One online row to merge: the newest event per key wins; equal times, the later write. */
struct mutation {
    const char *key;
    size_t klen;
    int64_t ts;
    size_t seq;       /* order in the request */
    const char *row;
    size_t rowlen;
    enum sl_mutation_kind kind;
    const struct sl_tiles_view *tv;
    const struct sl_view *v; /* SL_MUT_OFFLINE */
    uint64_t wseq;           /* SL_MUT_OFFLINE: the record's write sequence */
};

struct ingest_commit {
    struct sl_commit c;
    struct sl_http_req *r;
    struct sl_node *n;
    struct sl_ws *ws;
    size_t nmut;
    struct mutation *mut;
    struct sl_buf keys, rows;  /* storage behind mut[].key / .row */
    struct sl_buf reply;       /* the 200 body */
    size_t nrecords;
    struct sl_batch extra;     /* written in the same atomic batch (job checkpoints) */
    struct waiter *w;          /* synchronous commits (no HTTP request) */
    struct view_out *views;    /* rows per view, for the metrics once acknowledged */
    size_t nviews;
    int offline_done;          /* offline rows appended: a retried apply skips them */
};

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    struct sl_error err;
};

/* Per view of a source in this request. */
struct view_out {
    struct sl_view *v;
    size_t online, offline;
    int64_t newest;            /* the newest event time written, ns */
};

struct field_val {
    size_t off, len;          /* canonical JSON encoding in enc */
    struct sl_scalar s;       /* scalar fields */
    int null;
};

struct req {
    struct sl_node *n;
    struct sl_http_req *r;
    struct sl_ws *ws;
    int dry_run;
    const char *ws_name;
    struct sl_arena arena;    /* the parsed request */
    struct sl_arena scratch;  /* one record's transformation output; emptied per record */
    struct sl_buf enc;        /* encoded field values of the current source row */
    struct sl_buf enc2;       /* ... of the current transformed row */
    struct sl_xform_cache *xf; /* this worker's VMs */
    struct sl_tiles_acc *acc;  /* events for aggregate views */
    struct sl_buf errors;     /* recordErrors entries */
    size_t nerrors;
    size_t nviews;
    struct view_out *views;
    struct ingest_commit *ic;
    size_t mut_cap;
    size_t seq;
    int backfill;              /* batch loads: no ttl/skew checks; feature_start_time applies */
    const struct sl_view *only; /* batch loads of one view */
    size_t filtered;           /* rows before a view's feature_start_time */
    int local;                 /* test-run (no node): every view's rows become 'O' records */
    uint64_t local_seq;        /* ... numbered here */
    int64_t future_skew;       /* the node's setting, or test-run's */
};

/* The request-level error body: {"requestError":{"errorMessage","errorType"}}. */
static void request_error_body(struct sl_buf *b, const char *type, const char *msg)
{
    sl_buf_puts(b, "{\"requestError\":{\"errorMessage\":");
    sl_buf_json_str(b, msg, strlen(msg));
    sl_buf_puts(b, ",\"errorType\":");
    sl_buf_json_str(b, type, strlen(type));
    sl_buf_puts(b, "}}");
}

static void request_error(struct sl_http_req *r, int status, const char *type, const char *msg)
{
    struct sl_buf b = SL_BUF_INIT;
    request_error_body(&b, type, msg);
    sl_reply_buf(r, status, &b);
}

static void record_error(struct req *q, const struct sl_view *v, const struct sl_source *s,
                         const char *type, const char *msg)
{
    if (q->nerrors++ >= MAX_RECORD_ERRORS)
        return;
    struct sl_buf *b = &q->errors;
    sl_buf_puts(b, q->nerrors > 1 ? ",{\"featureViewName\":" : "{\"featureViewName\":");
    sl_buf_json_str(b, v->name, strlen(v->name));
    sl_buf_puts(b, ",\"pushSourceName\":");
    sl_buf_json_str(b, s->name, strlen(s->name));
    sl_buf_puts(b, ",\"errorType\":");
    sl_buf_json_str(b, type, strlen(type));
    sl_buf_puts(b, ",\"errorMessage\":");
    sl_buf_json_str(b, msg, strlen(msg));
    sl_buf_putc(b, '}');
}

static struct view_out *view_out(struct req *q, struct sl_view *v)
{
    for (size_t i = 0; i < q->nviews; i++)
        if (q->views[i].v == v)
            return &q->views[i];
    return NULL;
}

static int add_mutation(struct req *q, enum sl_mutation_kind kind, const struct sl_tiles_view *tv,
                        const char *key, size_t klen, int64_t ts, const char *row, size_t rowlen)
{
    struct ingest_commit *ic = q->ic;
    if (ic->nmut == q->mut_cap) {
        size_t cap = q->mut_cap ? q->mut_cap * 2 : 16;
        struct mutation *g = realloc(ic->mut, cap * sizeof(*g));
        if (!g)
            return SL_ENOMEM;
        ic->mut = g;
        q->mut_cap = cap;
    }
    /* keys and rows are appended to growable buffers: store offsets now, fix up later */
    struct mutation *m = &ic->mut[ic->nmut++];
    m->key = (const char *)(uintptr_t)ic->keys.len;
    m->klen = klen;
    m->row = (const char *)(uintptr_t)ic->rows.len;
    m->rowlen = rowlen;
    m->ts = ts;
    m->seq = q->seq++;
    m->kind = kind;
    m->tv = tv;
    m->v = NULL;
    m->wseq = 0;
    sl_buf_append(&ic->keys, key, klen);
    sl_buf_append(&ic->rows, row, rowlen);
    return ic->keys.oom || ic->rows.oom ? SL_ENOMEM : 0;
}

/* Appends the key part of a join key value to tmp (sl_key_join_part) at *off, *n bytes.
 * Kinds that cannot key a served row keep their encoded bytes: such a view still ingests,
 * though get-features refuses its join key. */
static void key_part(const struct field_val *f, const char *enc, struct sl_buf *tmp, size_t *off,
                     size_t *n)
{
    *off = tmp->len;
    if (sl_key_join_part(tmp, &f->s) != 0)
        sl_buf_append(tmp, enc + f->off, f->len);
    *n = tmp->len - *off;
}

/* Where a row came from, for error messages: a source record, or a view's transformation. */
struct origin {
    struct sl_source *s;
    struct sl_view *v;   /* NULL: the problem concerns every view of the source */
    size_t idx;
};

static void row_error(struct req *q, const struct origin *o, const char *type, const char *msg)
{
    if (o->v)
        record_error(q, o->v, o->s, type, msg);
    else
        for (size_t i = 0; i < o->s->nviews; i++)
            if (!q->only || o->s->views[i] == q->only)
                record_error(q, o->s->views[i], o->s, type, msg);
}

/* Validates a row against schema[0..n), encoding its values into enc and vals (one per
 * field). Returns 0, 1 when the row had errors (already reported), negative on ENOMEM. */
static int check_row(struct req *q, const struct origin *o, const struct sl_field *schema,
                     size_t n, const struct sl_json *rec, struct sl_buf *enc,
                     struct field_val *vals)
{
    char msg[768], where[256];
    struct sl_error err = {0};
    if (o->v)
        snprintf(where, sizeof(where), "record %zu of source `%s`, transformed by feature view `%s`",
                 o->idx, o->s->name, o->v->name);
    else
        snprintf(where, sizeof(where), "record %zu of source `%s`", o->idx, o->s->name);
    if (!rec || rec->kind != SL_JSON_OBJECT) {
        snprintf(msg, sizeof(msg), "%s: expected an object with a `record` object", where);
        row_error(q, o, "TectonObjectValidationError", msg);
        return 1;
    }
    /* batch files may carry more columns than the source schema; pushed records may not */
    for (const struct sl_json *m = q->backfill ? NULL : rec->child; m; m = m->next) {
        int known = 0;
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(schema[i].name, m->key) == 0;
        if (!known) {
            snprintf(msg, sizeof(msg), "%s: field `%s` is not in the schema", where, m->key);
            row_error(q, o, "TectonObjectValidationError", msg);
            return 1;
        }
    }
    sl_buf_reset(enc);
    for (size_t i = 0; i < n; i++) {
        const struct sl_field *f = &schema[i];
        const struct sl_json *v = sl_json_get(rec, f->name);
        struct field_val *fv = &vals[i];
        memset(fv, 0, sizeof(*fv));
        if (!v) {
            snprintf(msg, sizeof(msg), "%s: field `%s` is missing", where, f->name);
            row_error(q, o, "TectonObjectValidationError", msg);
            return 1;
        }
        fv->off = enc->len;
        if (sl_value_encode(f->type, v, enc, &err) != 0 ||
            (f->type->kind < SL_ARRAY && v->kind != SL_JSON_NULL &&
             sl_value_scalar(f->type->kind, v, &fv->s, &err) != 0)) {
            snprintf(msg, sizeof(msg), "%s: field `%s`: %s", where, f->name, err.msg);
            row_error(q, o, "TectonObjectValidationError", msg);
            return 1;
        }
        fv->len = enc->len - fv->off;
        fv->null = v->kind == SL_JSON_NULL;
        fv->s.kind = f->type->kind;
    }
    return enc->oom ? SL_ENOMEM : 0;
}

/* Builds the online row of an attribute view from a checked row (vals index the view's row
 * schema, their bytes in enc). */
static int view_record(struct req *q, const struct origin *o, struct sl_view *v,
                       const struct field_val *vals, const char *enc, int64_t now,
                       struct sl_buf *key, struct sl_buf *row, struct sl_buf *tmp)
{
    char msg[768];
    size_t nrow;
    const struct sl_field *schema = sl_view_row_schema(v, &nrow);
    if (vals[v->ts_index].null) {
        snprintf(msg, sizeof(msg), "record %zu of source `%s`: the timestamp field `%s` must not be null",
                 o->idx, o->s->name, schema[v->ts_index].name);
        record_error(q, v, o->s, "TectonObjectValidationError", msg);
        return 1;
    }
    int64_t ts = vals[v->ts_index].s.i;
    if (q->backfill && ts < v->start_ns) {
        q->filtered++;
        return 1;
    }
    if (!q->backfill && v->ttl_ns > 0 && ts < now - v->ttl_ns) {
        snprintf(msg, sizeof(msg),
                 "record %zu: timestamp value is outside of the serving TTL defined for Feature View %s",
                 o->idx, v->name);
        record_error(q, v, o->s, "TectonObjectValidationError", msg);
        return 1;
    }
    if (!q->backfill && ts > now + (q->n ? q->n->cfg->future_skew : q->future_skew)) {
        snprintf(msg, sizeof(msg),
                 "record %zu: timestamp value is further in the future than the allowed clock skew for Feature View %s",
                 o->idx, v->name);
        record_error(q, v, o->s, "TectonObjectValidationError", msg);
        return 1;
    }
    const char *parts[SL_MAX_JOIN_KEYS];
    size_t lens[SL_MAX_JOIN_KEYS], offs[SL_MAX_JOIN_KEYS];
    if (v->nkeys > SL_MAX_JOIN_KEYS) /* the registry refuses such a view */
        return SL_EINVAL;
    sl_buf_reset(tmp);
    for (size_t k = 0; k < v->nkeys; k++) {
        const struct field_val *f = &vals[v->key_index[k]];
        if (f->null) {
            snprintf(msg, sizeof(msg), "record %zu of source `%s`: join key `%s` must not be null",
                     o->idx, o->s->name, v->join_keys[k].name);
            record_error(q, v, o->s, "TectonObjectValidationError", msg);
            return 1;
        }
        key_part(f, enc, tmp, &offs[k], &lens[k]);
    }
    if (tmp->oom)
        return SL_ENOMEM;
    for (size_t k = 0; k < v->nkeys; k++) /* the parts live in tmp, which may have moved */
        parts[k] = tmp->p + offs[k];
    size_t key_bytes = 0;
    for (size_t k = 0; k < v->nkeys; k++)
        key_bytes += lens[k];
    if (key_bytes > SL_INGEST_MAX_KEY) { /* the stores' keys must stay under 64 KiB */
        snprintf(msg, sizeof(msg),
                 "record %zu of source `%s`: the join key values are %zu bytes; at most %u "
                 "are allowed", o->idx, o->s->name, key_bytes, SL_INGEST_MAX_KEY);
        record_error(q, v, o->s, "TectonObjectValidationError", msg);
        return 1;
    }
    sl_buf_reset(key);
    if (v->agg) { /* aggregate views: the entity part of the key; the caller adds the event */
        for (size_t k = 0; k < v->nkeys; k++)
            sl_buf_lenstr(key, parts[k], lens[k]);
        return key->oom || tmp->oom ? SL_ENOMEM : 0;
    }
    sl_row_key(key, v, parts, lens); /* 'V' + prefix + the entity part */
    sl_row_begin(row, ts, (uint32_t)v->nfeatures);
    for (size_t f = 0; f < v->nfeatures; f++) {
        const struct field_val *fv = &vals[v->features[f].col_index];
        sl_row_value(row, enc + fv->off, fv->len);
    }
    return key->oom || row->oom || tmp->oom ? SL_ENOMEM : 0;
}

/* The entity part of a view's key as view_record left it in key: the whole buffer for
 * aggregate views, after 'V' and the 8-byte prefix for attribute views. */
static struct sl_buf vals_key(const struct sl_view *v, const struct sl_buf *key)
{
    size_t skip = v->agg ? 0 : SL_ROW_KEY_HEAD;
    struct sl_buf b = {key->p + skip, key->len - skip, 0, 0};
    return b;
}

/* Queues the offline record of one row: key = view prefix + entity part; payload = the
 * feature values (attribute views: the online row's value part) or the event's encoded
 * column values (aggregate views). */
static int offline_record(struct req *q, const struct sl_view *v, struct sl_buf ent, int64_t ts,
                          uint64_t seq, const struct sl_scalar *sc, const struct sl_buf *row,
                          struct sl_buf *tmp)
{
    sl_buf_reset(tmp);
    sl_buf_append(tmp, v->key, 8);
    sl_buf_append(tmp, ent.p, ent.len);
    size_t klen = tmp->len;
    struct sl_row rw;
    if (row && sl_row_decode(row->p, row->len, &rw) != 0) /* view_record built it whole */
        return SL_EINVAL;
    if (row)
        sl_buf_append(tmp, rw.values, rw.values_len); /* the values, after the row header */
    else
        for (size_t f = 0; f < v->nfeatures; f++)
            sl_agg_value_encode(tmp, &sc[f]);
    if (tmp->oom || add_mutation(q, SL_MUT_OFFLINE, NULL, tmp->p, klen, ts, tmp->p + klen,
                                 tmp->len - klen) != 0)
        return SL_ENOMEM;
    q->ic->mut[q->ic->nmut - 1].v = v;
    q->ic->mut[q->ic->nmut - 1].wseq = seq;
    return 0;
}

/* Runs a user function; on failure reports a TransformationError and returns 1. */
static int run_user(struct req *q, const struct origin *o, const char *obj, const char *what,
                    const struct sl_field *in, size_t nin, const struct sl_json *rec,
                    const struct sl_field *out, size_t nout, struct sl_json ***rows,
                    size_t *nrows)
{
    struct sl_error err = {0};
    char msg[900];
    lua_State *L = sl_xform_vm(q->xf, q->ws, &err);
    int rc = L ? sl_xform_run(L, obj, what, in, nin, rec, out, nout, &q->scratch, rows, nrows, &err)
               : err.code;
    if (rc == SL_ENOMEM && !L)
        return rc;
    if (rc != 0) {
        snprintf(msg, sizeof(msg), "record %zu of source `%s`: %s of %s `%s` failed: %s", o->idx,
                 o->s->name, what, o->v ? "feature view" : "source", obj, err.msg);
        row_error(q, o, "TransformationError", msg);
        return 1;
    }
    return 0;
}

/* Materialises one checked source row into every view of the source. */
static int fan_out(struct req *q, struct origin *o, const struct sl_json *rec,
                   const struct field_val *vals, struct sl_buf *bufs)
{
    struct sl_source *s = o->s;
    int64_t now = sl_now_ns();
    for (size_t i = 0; i < s->nviews; i++) {
        struct sl_view *v = s->views[i];
        struct view_out *vo = view_out(q, v);
        if (q->only && v != q->only)
            continue;
        struct sl_json **rows = (struct sl_json **)&rec;
        size_t nrows = 1;
        const struct field_val *rv = vals;
        const char *enc = q->enc.p;
        struct origin vo_origin = {s, v, o->idx};
        if (v->has_transformation) {
            int bad = run_user(q, &vo_origin, v->name, "transformation", s->schema, s->nfields,
                               rec, v->out_schema, v->nout, &rows, &nrows);
            if (bad)
                continue;
        }
        for (size_t r = 0; r < nrows; r++) {
            if (v->has_transformation) {
                struct field_val *tv = sl_arena_alloc(&q->scratch, (v->nout + 1) * sizeof(*tv));
                if (!tv)
                    return SL_ENOMEM;
                int bad = check_row(q, &vo_origin, v->out_schema, v->nout, rows[r], &q->enc2, tv);
                if (bad < 0)
                    return bad;
                if (bad)
                    continue;
                rv = tv;
                enc = q->enc2.p;
            }
            int vr = view_record(q, o, v, rv, enc, now, &bufs[0], &bufs[1], &bufs[2]);
            if (vr < 0)
                return vr;
            if (vr > 0)
                continue;
            vo->online += v->online != 0;
            vo->offline += v->offline != 0;
            if (q->dry_run)
                continue;
            int64_t ts = rv[v->ts_index].s.i;
            if (ts > vo->newest)
                vo->newest = ts;
            uint64_t seq = q->local ? q->local_seq++
                                    : __atomic_fetch_add(&q->n->seq, 1, __ATOMIC_RELAXED);
            struct sl_scalar *sc = NULL;
            if (v->agg) {
                sc = sl_arena_alloc(&q->scratch, (v->nfeatures + 1) * sizeof(*sc));
                if (!sc)
                    return SL_ENOMEM;
                for (size_t f = 0; f < v->nfeatures; f++) {
                    const struct field_val *fv = &rv[v->features[f].col_index];
                    sc[f] = fv->s;
                    sc[f].null = fv->null;
                    if (fv->s.kind >= SL_ARRAY) { /* nested values travel as their JSON */
                        sc[f].str = enc + fv->off;
                        sc[f].len = fv->len;
                    }
                }
            }
            if (q->local) { /* test-run: the view's record, whether stored offline or not */
                if (offline_record(q, v, vals_key(v, &bufs[0]), ts, seq, sc,
                                   v->agg ? NULL : &bufs[1], &bufs[2]) != 0)
                    return SL_ENOMEM;
                continue;
            }
            if (v->online && v->agg) {
                if (!q->acc && !(q->acc = sl_tiles_acc_new()))
                    return SL_ENOMEM;
                if (sl_tiles_acc_add(q->acc, v->agg, v->key, bufs[0].p, bufs[0].len, ts, seq, sc))
                    return SL_ENOMEM;
            } else if (v->online && add_mutation(q, SL_MUT_ROW, NULL, bufs[0].p, bufs[0].len, ts,
                                                 bufs[1].p, bufs[1].len) != 0) {
                return SL_ENOMEM;
            }
            if (v->offline && offline_record(q, v, vals_key(v, &bufs[0]), ts, seq, sc,
                                             v->agg ? NULL : &bufs[1], &bufs[2]) != 0)
                return SL_ENOMEM;
        }
    }
    return 0;
}

/* Checks and encodes every record of one source. Returns 0, or negative on ENOMEM. */
/* Checks, transforms and materialises one record of source s. vals has room for the
 * source's fields; bufs are scratch. Returns 0 (errors are recorded) or negative on ENOMEM. */
static int ingest_record_in(struct req *q, struct sl_source *s, const struct sl_json *rec,
                            size_t idx, struct field_val *vals, struct sl_buf *bufs);

/* Everything a record's processing allocates besides its mutations (which are copied) lives
 * in the scratch arena, emptied after each record, so memory stays bounded by the largest
 * record, not the request. */
static int ingest_record(struct req *q, struct sl_source *s, const struct sl_json *rec, size_t idx,
                         struct field_val *vals, struct sl_buf *bufs)
{
    q->scratch.limit = SCRATCH_LIMIT;
    int rc = ingest_record_in(q, s, rec, idx, vals, bufs);
    sl_arena_reset(&q->scratch);
    return rc;
}

static int ingest_record_in(struct req *q, struct sl_source *s, const struct sl_json *rec,
                            size_t idx, struct field_val *vals, struct sl_buf *bufs)
{
    struct origin o = {s, NULL, idx};
    int bad = check_row(q, &o, s->schema, s->nfields, rec, &q->enc, vals);
    if (bad)
        return bad < 0 ? bad : 0;
    if (!s->has_post_processor)
        return fan_out(q, &o, rec, vals, bufs);
    struct sl_json **rows;
    size_t nrows;
    if (run_user(q, &o, s->name, "post_processor", s->schema, s->nfields, rec, s->schema,
                 s->nfields, &rows, &nrows))
        return 0;
    int rc = 0;
    for (size_t r = 0; r < nrows && rc == 0; r++) {
        bad = check_row(q, &o, s->schema, s->nfields, rows[r], &q->enc, vals);
        rc = bad < 0 ? bad : bad ? 0 : fan_out(q, &o, rows[r], vals, bufs);
    }
    return rc;
}

static int ingest_source(struct req *q, struct sl_source *s, const struct sl_json *arr)
{
    struct field_val *vals = sl_arena_alloc(&q->arena, (s->nfields + 1) * sizeof(*vals));
    struct sl_buf bufs[3] = {SL_BUF_INIT, SL_BUF_INIT, SL_BUF_INIT};
    int rc = 0;
    size_t idx = 0;
    if (!vals)
        return SL_ENOMEM;
    for (const struct sl_json *el = arr->child; el && rc == 0; el = el->next, idx++)
        rc = ingest_record(q, s, el->kind == SL_JSON_OBJECT ? sl_json_get(el, "record") : NULL,
                           idx, vals, bufs);
    for (int i = 0; i < 3; i++)
        sl_buf_free(&bufs[i]);
    return rc;
}

static int emit_tiles(void *arg, const struct sl_tiles_view *tv, enum sl_mutation_kind kind,
                      const char *key, size_t klen, const char *val, size_t vlen)
{
    struct req *q = arg;
    int64_t ts = 0;
    if (kind == SL_MUT_LIFETIME && vlen >= 8)
        memcpy(&ts, val, 8); /* apply lifetime events in time order */
    return add_mutation(q, kind, tv, key, klen, ts, val, vlen);
}

static int cmp_mut(const void *a, const void *b)
{
    const struct mutation *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    int c = sl_bytes_cmp(x->key, x->klen, y->key, y->klen);
    if (c)
        return c;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Resolves buffer offsets to pointers, sorts, and keeps the winner of each key. */
static void finish_mutations(struct ingest_commit *ic)
{
    for (size_t i = 0; i < ic->nmut; i++) {
        ic->mut[i].key = ic->keys.p + (uintptr_t)ic->mut[i].key;
        ic->mut[i].row = ic->rows.p + (uintptr_t)ic->mut[i].row;
    }
    if (ic->nmut > 1)
        qsort(ic->mut, ic->nmut, sizeof(*ic->mut), cmp_mut);
    size_t out = 0;
    for (size_t i = 0; i < ic->nmut; i++) {
        int last_of_key = i + 1 == ic->nmut || ic->mut[i + 1].klen != ic->mut[i].klen ||
                          memcmp(ic->mut[i + 1].key, ic->mut[i].key, ic->mut[i].klen) != 0;
        if (last_of_key || ic->mut[i].kind != SL_MUT_ROW)
            ic->mut[out++] = ic->mut[i];
    }
    ic->nmut = out;
}

static int same_key(const struct mutation *a, const struct mutation *b)
{
    return a->klen == b->klen && memcmp(a->key, b->key, a->klen) == 0;
}

/* For a tile merge whose key is not in the writer's cache: 0 when the top-level tile around
 * it is absent, so the tile is too (sl_tiles_top_key), 1 when its own key must be read, or a
 * store error. The top tile's value (or its absence) goes into the cache, where its own merge
 * finds it. buf is scratch. */
static int top_absent(struct sl_wcache *wc, struct sl_store *s, const struct mutation *m,
                      struct sl_buf *buf, struct sl_error *err)
{
    struct sl_buf top = SL_BUF_INIT;
    const char *cv;
    size_t cvlen;
    int rc = 1;
    if (sl_tiles_top_key(m->tv, m->key, m->klen, &top) == 0 && !top.oom) {
        if (sl_wcache_get(wc, top.p, top.len, &cv, &cvlen)) {
            rc = cvlen ? 1 : 0;
        } else {
            sl_buf_reset(buf);
            int g = sl_store_get(s, top.p, top.len, buf, err);
            if (g == 0 || g == SL_ENOTFOUND)
                sl_wcache_put(wc, top.p, top.len, buf->p, g == 0 ? buf->len : 0);
            rc = g == SL_ENOTFOUND ? 0 : g == 0 ? 1 : g;
        }
    }
    sl_buf_reset(buf);
    sl_buf_free(&top);
    return rc;
}

/* Writer thread: attribute rows keep the stored row when it is newer than ours; aggregate
 * mutations merge into the stored state (one read per key: runs of one key chain in memory). */
static int commit_apply(struct sl_commit *c, struct sl_store *s, struct sl_batch *b,
                        struct sl_error *err)
{
    struct ingest_commit *ic = (struct ingest_commit *)c;
    struct sl_wcache *wc = ic->n->wcache;
    struct sl_buf cur = SL_BUF_INIT, next = SL_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < ic->nmut && rc == 0; i++) {
        const struct mutation *m = &ic->mut[i];
        if (m->kind == SL_MUT_OFFLINE) {
            if (ic->offline_done)
                continue;
            rc = sl_offline_append(ic->n->offline, ic->ws->name, m->v->name, m->key, m->klen,
                                   m->ts, m->wseq, m->row, m->rowlen, err);
            continue;
        }
        if (m->kind == SL_MUT_PUT) {
            sl_batch_put(b, m->key, m->klen, m->row, m->rowlen);
            continue;
        }
        sl_buf_reset(&cur);
        const char *cv;
        size_t cvlen;
        int g;
        if (sl_wcache_get(wc, m->key, m->klen, &cv, &cvlen)) {
            sl_buf_append(&cur, cv, cvlen);
            g = cvlen ? 0 : SL_ENOTFOUND; /* an empty entry: known absent */
        } else if (m->kind == SL_MUT_MERGE && (g = top_absent(wc, s, m, &cur, err)) != 1) {
            if (g < 0) {
                rc = g;
                break;
            }
            g = SL_ENOTFOUND;
        } else {
            g = sl_store_get(s, m->key, m->klen, &cur, err);
            if (g != 0 && g != SL_ENOTFOUND) {
                rc = g;
                break;
            }
            if (g == SL_ENOTFOUND)
                sl_buf_reset(&cur);
        }
        if (m->kind == SL_MUT_ROW) {
            struct sl_row old;
            if (g == 0 && sl_row_decode(cur.p, cur.len, &old) == 0 && old.ts > m->ts) {
                sl_wcache_put(wc, m->key, m->klen, cur.p, cur.len);
                continue;
            }
            sl_batch_put(b, m->key, m->klen, m->row, m->rowlen);
            sl_wcache_put(wc, m->key, m->klen, m->row, m->rowlen);
            continue;
        }
        size_t end = i;
        for (;;) {
            sl_buf_reset(&next);
            rc = sl_tiles_apply(ic->mut[end].tv, ic->mut[end].kind, cur.p, cur.len,
                                ic->mut[end].row, ic->mut[end].rowlen, &next);
            if (rc) {
                sl_error_set(err, rc, "cannot merge aggregation state (%s)", sl_strerror(rc));
                break;
            }
            struct sl_buf t = cur;
            cur = next;
            next = t;
            if (end + 1 == ic->nmut || !same_key(&ic->mut[end + 1], m))
                break;
            end++;
        }
        if (rc == 0) {
            sl_batch_put(b, m->key, m->klen, cur.p, cur.len);
            sl_wcache_put(wc, m->key, m->klen, cur.p, cur.len);
        }
        i = end;
    }
    if (rc == 0)
        ic->offline_done = 1;
    if (rc == 0 && ic->extra.count) {
        sl_buf_append(&b->ops, ic->extra.ops.p, ic->extra.ops.len);
        b->count += ic->extra.count;
    }
    sl_buf_free(&cur);
    sl_buf_free(&next);
    return rc;
}

static void commit_free(struct ingest_commit *ic)
{
    if (!ic)
        return;
    sl_ws_release(ic->ws);
    free(ic->views);
    free(ic->mut);
    sl_buf_free(&ic->keys);
    sl_buf_free(&ic->rows);
    sl_buf_free(&ic->reply);
    sl_batch_free(&ic->extra);
    free(ic);
}

static void commit_done(struct sl_commit *c, int status, const struct sl_error *err)
{
    struct ingest_commit *ic = (struct ingest_commit *)c;
    if (status != 0) /* the cache may hold values of this commit that the store does not */
        sl_wcache_clear(ic->n->wcache);
    /* cached aggregate reads of the entities written are stale from now on: before the ack */
    for (size_t i = 0; i < ic->nmut; i++) {
        size_t el = sl_tiles_mutation_entity_len(ic->mut[i].kind, ic->mut[i].klen);
        if (el && (i == 0 || ic->mut[i - 1].klen < el ||
                   memcmp(ic->mut[i - 1].key, ic->mut[i].key, el) != 0)) {
            uint64_t h = sl_wcache_hash(ic->mut[i].key, el) & (SL_READ_GENS - 1);
            __atomic_add_fetch(&ic->n->read_gen[h], 1, __ATOMIC_RELEASE);
        }
    }
    if (ic->w) { /* a synchronous commit: wake the waiting thread, which frees ic */
        pthread_mutex_lock(&ic->w->mu);
        ic->w->status = status;
        if (err)
            ic->w->err = *err;
        ic->w->done = 1;
        pthread_cond_signal(&ic->w->cv);
        pthread_mutex_unlock(&ic->w->mu);
        return;
    }
    if (status == 0) {
        __atomic_add_fetch(&ic->n->ingest_records, ic->nrecords, __ATOMIC_RELAXED);
        sl_accesslog_records(ic->r, ic->nrecords);
        for (size_t i = 0; i < ic->nviews; i++) {
            const struct view_out *vo = &ic->views[i];
            sl_metrics_view(ic->ws->name, vo->v->name, vo->online > vo->offline ? vo->online : vo->offline,
                            vo->newest);
        }
        size_t len;
        char *body = sl_buf_detach(&ic->reply, &len);
        sl_http_reply_async(ic->r, 200, "application/json", body, len);
    } else {
        __atomic_add_fetch(&ic->n->ingest_errors, 1, __ATOMIC_RELAXED);
        sl_err("ingest: commit failed: %s", err ? err->msg : "unknown");
        struct sl_buf b = SL_BUF_INIT;
        request_error_body(&b, "InternalError",
                           "the write could not be committed; nothing was written");
        size_t len;
        char *body = sl_buf_detach(&b, &len);
        sl_http_reply_async(ic->r, 500, "application/json", body, len);
    }
    commit_free(ic);
}

static int cmp_view_out(const void *a, const void *b)
{
    return strcmp(((const struct view_out *)a)->v->name, ((const struct view_out *)b)->v->name);
}

static void metrics_body(struct req *q, struct sl_buf *b)
{
    if (q->nviews > 1)
        qsort(q->views, q->nviews, sizeof(*q->views), cmp_view_out);
    sl_buf_puts(b, "{\"workspaceName\":");
    sl_buf_json_str(b, q->ws_name, strlen(q->ws_name));
    sl_buf_puts(b, ",\"ingestMetrics\":{\"featureViewIngestMetrics\":[");
    for (size_t i = 0; i < q->nviews; i++) {
        const struct view_out *vo = &q->views[i];
        sl_buf_puts(b, i ? ",{\"featureViewName\":" : "{\"featureViewName\":");
        sl_buf_json_str(b, vo->v->name, strlen(vo->v->name));
        sl_buf_printf(b, ",\"onlineRecordIngestCount\":\"%zu\",\"offlineRecordIngestCount\":\"%zu\","
                         "\"featureViewId\":\"%s\"}",
                      vo->online, vo->offline, vo->v->id);
    }
    sl_buf_puts(b, "]}}");
}

static void req_free(struct req *q)
{
    sl_arena_free(&q->arena);
    sl_arena_free(&q->scratch);
    sl_buf_free(&q->enc);
    sl_buf_free(&q->enc2);
    sl_tiles_acc_free(q->acc);
    sl_buf_free(&q->errors);
    free(q->views);
    commit_free(q->ic);
    sl_ws_release(q->ws);
}

/* Returns a validation message for the top-level fields, or NULL. */
static const char *check_top(const struct sl_json *root, char *msg, size_t cap)
{
    static const char *const fields[] = {"workspace_name", "dry_run", "records"};
    static const enum sl_json_kind want[] = {SL_JSON_STRING, SL_JSON_TRUE, SL_JSON_OBJECT};
    static const char *const want_name[] = {"a string", "a boolean", "an object"};
    for (size_t i = 0; i < 3; i++) {
        const struct sl_json *v = sl_json_get(root, fields[i]);
        if (!v) {
            snprintf(msg, cap, "Required field `%s` is missing in the request", fields[i]);
            return msg;
        }
        int ok = v->kind == want[i] || (want[i] == SL_JSON_TRUE && v->kind == SL_JSON_FALSE);
        if (!ok) {
            snprintf(msg, cap, "Field `%s` must be %s, not %s", fields[i], want_name[i],
                     sl_json_kind_name(v->kind));
            return msg;
        }
    }
    for (const struct sl_json *m = root->child; m; m = m->next) {
        int known = 0;
        for (size_t i = 0; i < 3; i++)
            known |= strcmp(m->key, fields[i]) == 0;
        if (!known) {
            snprintf(msg, cap, "Unknown field `%s` in the request", m->key);
            return msg;
        }
    }
    return NULL;
}

void sl_ingest_handle(struct sl_node *n, struct sl_http_req *r, int auth_rc,
                      const char *auth_msg, const struct sl_principal *p)
{
    struct req q = {.n = n, .r = r, .xf = n->xform[sl_http_worker(r)]};
    struct sl_error err = {0};
    char msg[1024];
    __atomic_add_fetch(&n->ingest_requests, 1, __ATOMIC_RELAXED);
    int status = 0;
#define FAIL(st, type, ...)                                  \
    do {                                                     \
        snprintf(msg, sizeof(msg), __VA_ARGS__);             \
        request_error(r, st, type, msg);                     \
        status = st;                                         \
        goto out;                                            \
    } while (0)

    if (auth_rc != 0)
        FAIL(401, "UnauthorizedError", "%s", auth_msg);
    size_t len;
    const char *body = sl_http_body(r, &len);
    if (!body)
        FAIL(400, "RequestValidationError", "The request body is empty");
    if (len > (size_t)n->cfg->max_body)
        FAIL(413, "RequestTooLargeError", "The request body is %zu bytes; at most %ld are accepted",
             len, n->cfg->max_body);
    q.arena.limit = len * 40 + 65536; /* a node per two bytes, at worst */
    const struct sl_json *root = sl_json_parse(body, len, &q.arena, &err);
    if (!root) {
        if (err.code == SL_ENOMEM)
            FAIL(413, "RequestTooLargeError", "The request is too large to process");
        FAIL(400, "RequestValidationError", "Invalid JSON in the request body: %s", err.msg);
    }
    if (root->kind != SL_JSON_OBJECT)
        FAIL(400, "RequestValidationError", "The request body must be a JSON object");
    char top[256];
    if (check_top(root, top, sizeof(top)))
        FAIL(400, "RequestValidationError", "%s", top);
    q.ws_name = sl_json_get(root, "workspace_name")->str;
    sl_accesslog_workspace(r, q.ws_name);
    q.dry_run = sl_json_get(root, "dry_run")->kind == SL_JSON_TRUE;
    const struct sl_json *records = sl_json_get(root, "records");

    if (!sl_auth_allowed(n->auth, p, q.ws_name, q.dry_run ? SL_ACT_INGEST_DRY : SL_ACT_INGEST))
        FAIL(403, "ForbiddenError",
             "The service account is not authorized to %s workspace `%s`",
             q.dry_run ? "validate records for" : "write to", q.ws_name);
    q.ws = sl_registry_get(n->reg, q.ws_name);
    if (!q.ws)
        FAIL(404, "RequestValidationError", "Workspace `%s` not found", q.ws_name);
    if (!q.dry_run && !q.ws->live)
        FAIL(400, "RequestValidationError",
             "Workspace `%s` is a development workspace: records can only be written to a live "
             "workspace (use dry_run to validate them)",
             q.ws_name);

    size_t total = 0, nviews = 0;
    for (const struct sl_json *m = records->child; m; m = m->next) {
        struct sl_source *s = sl_ws_source(q.ws, m->key);
        if (!s || s->is_request)
            FAIL(404, "RequestValidationError", "Stream source `%s` not found in workspace `%s`",
                 m->key, q.ws_name);
        if (m->kind != SL_JSON_ARRAY)
            FAIL(400, "RequestValidationError", "Records of stream source `%s` must be an array",
                 m->key);
        size_t online = 0;
        for (size_t i = 0; i < s->nviews; i++)
            online += s->views[i]->online != 0;
        if (s->nviews == 0 || (!q.dry_run && online == 0))
            FAIL(404, "RequestValidationError",
                 "No %sfeature views subscribed to stream source `%s` in workspace `%s`",
                 q.dry_run ? "" : "online ", m->key, q.ws_name);
        total += m->count;
        nviews += s->nviews;
    }
    if (total > (size_t)n->cfg->max_records)
        FAIL(400, "RequestValidationError",
             "The request has %zu records; at most %ld are accepted in one request", total,
             n->cfg->max_records);

    q.views = calloc(nviews + 1, sizeof(*q.views));
    q.ic = calloc(1, sizeof(*q.ic));
    if (!q.views || !q.ic)
        FAIL(503, "ResourceExhaustedError", "Out of memory");
    for (const struct sl_json *m = records->child; m; m = m->next) {
        struct sl_source *s = sl_ws_source(q.ws, m->key);
        for (size_t i = 0; i < s->nviews; i++)
            if (!view_out(&q, s->views[i]))
                q.views[q.nviews++].v = s->views[i];
    }
    for (const struct sl_json *m = records->child; m; m = m->next) {
        int rc = ingest_source(&q, sl_ws_source(q.ws, m->key), m);
        if (rc == SL_ENOMEM)
            FAIL(503, "ResourceExhaustedError", "Out of memory");
        if (rc != 0)
            FAIL(500, "InternalError", "ingest failed: %s; nothing was written", sl_strerror(rc));
    }

    if (q.nerrors) {
        struct sl_buf b = SL_BUF_INIT;
        sl_buf_puts(&b, "{\"workspaceName\":");
        sl_buf_json_str(&b, q.ws_name, strlen(q.ws_name));
        sl_buf_puts(&b, ",\"recordErrors\":[");
        sl_buf_append(&b, q.errors.p, q.errors.len);
        sl_buf_puts(&b, "]}");
        sl_reply_buf(r, 400, &b);
        status = 400;
        goto out;
    }
    if (q.dry_run || (q.ic->nmut == 0 && !q.acc)) {
        struct sl_buf b = SL_BUF_INIT;
        metrics_body(&q, &b);
        sl_reply_buf(r, 200, &b);
        goto out;
    }

    struct ingest_commit *ic = q.ic;
    int frc = q.acc ? sl_tiles_acc_finish(q.acc, emit_tiles, &q) : 0;
    if (frc == SL_ENOMEM)
        FAIL(503, "ResourceExhaustedError", "Out of memory");
    if (frc != 0)
        FAIL(500, "InternalError", "aggregation failed: %s; nothing was written", sl_strerror(frc));
    metrics_body(&q, &ic->reply);
    if (ic->reply.oom || ic->keys.oom || ic->rows.oom)
        FAIL(503, "ResourceExhaustedError", "Out of memory");
    finish_mutations(ic);
    ic->c.apply = commit_apply;
    ic->c.done = commit_done;
    ic->r = r;
    ic->n = n;
    ic->nrecords = total;
    if (q.nviews && (ic->views = malloc(q.nviews * sizeof(*ic->views))) != NULL) {
        memcpy(ic->views, q.views, q.nviews * sizeof(*ic->views));
        ic->nviews = q.nviews; /* out of memory: the metrics miss this request's views */
    }
    ic->ws = q.ws;
    q.ws = NULL;
    int rc = sl_writer_submit(n->writer, &ic->c);
    if (rc == SL_EBUSY) {
        FAIL(429, "ResourceExhaustedError",
             "Too many ingest requests are waiting to be committed; retry with backoff");
    } else if (rc != 0) {
        FAIL(503, "UnavailableError", "The server is shutting down");
    }
    q.ic = NULL; /* the writer owns it now and replies */
out:
    if (status >= 400)
        __atomic_add_fetch(&n->ingest_errors, 1, __ATOMIC_RELAXED);
    if (status == 403)
        sl_auth_audit_denied(p, 403, "/ingest", q.ws_name, msg);
    req_free(&q);
#undef FAIL
}

/* ---- batch loads (jobs) ---- */

struct sl_ingest *sl_ingest_new(struct sl_node *n, struct sl_ws *ws, struct sl_xform_cache *xf,
                                const struct sl_view *only)
{
    struct req *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->n = n;
    q->xf = xf;
    q->backfill = 1;
    q->only = only;
    q->ws = ws;
    q->ws_name = ws->name;
    sl_ws_retain(ws);
    q->ic = calloc(1, sizeof(*q->ic));
    size_t nv = only ? 1 : 0;
    for (size_t i = 0; !only && i < ws->nviews; i++)
        nv++;
    q->views = calloc(nv + 1, sizeof(*q->views));
    if (!q->ic || !q->views) {
        sl_ingest_free((struct sl_ingest *)q);
        return NULL;
    }
    for (size_t i = 0; i < ws->nviews; i++)
        if (!only || &ws->views[i] == only)
            q->views[q->nviews++].v = &ws->views[i];
    sl_ws_retain(ws); /* the commit holds its own reference, as for HTTP requests */
    q->ic->ws = ws;
    return (struct sl_ingest *)q;
}

struct sl_ingest *sl_ingest_new_local(struct sl_ws *ws, struct sl_xform_cache *xf,
                                      const struct sl_view *only, int64_t future_skew)
{
    struct req *q = (struct req *)sl_ingest_new(NULL, ws, xf, only);
    if (q) {
        q->backfill = 0; /* the checks of POST /ingest */
        q->local = 1;
        q->future_skew = future_skew;
    }
    return (struct sl_ingest *)q;
}

int sl_ingest_each_record(struct sl_ingest *g,
                          int (*fn)(void *arg, const struct sl_view *v, const char *key,
                                    size_t klen, int64_t ts, uint64_t seq, const char *p,
                                    size_t n),
                          void *arg)
{
    struct ingest_commit *ic = ((struct req *)g)->ic;
    int rc = 0;
    for (size_t i = 0; i < ic->nmut && rc == 0; i++) {
        const struct mutation *m = &ic->mut[i]; /* key and row still offsets (add_mutation) */
        if (m->kind == 'O')
            rc = fn(arg, m->v, ic->keys.p + (uintptr_t)m->key, m->klen, m->ts, m->wseq,
                    ic->rows.p + (uintptr_t)m->row, m->rowlen);
    }
    return rc;
}

int sl_ingest_add(struct sl_ingest *g, struct sl_source *s, const struct sl_json *rec, size_t idx)
{
    struct req *q = (struct req *)g;
    struct sl_buf bufs[3] = {SL_BUF_INIT, SL_BUF_INIT, SL_BUF_INIT};
    struct field_val *vals = sl_arena_alloc(&q->arena, (s->nfields + 1) * sizeof(*vals));
    int rc = vals ? ingest_record(q, s, rec, idx, vals, bufs) : SL_ENOMEM;
    for (int i = 0; i < 3; i++)
        sl_buf_free(&bufs[i]);
    return rc;
}

struct sl_arena *sl_ingest_arena(struct sl_ingest *g)
{
    return &((struct req *)g)->arena;
}

size_t sl_ingest_errors(struct sl_ingest *g, struct sl_buf *out)
{
    struct req *q = (struct req *)g;
    if (out)
        sl_buf_append(out, q->errors.p, q->errors.len);
    return q->nerrors;
}

void sl_ingest_counts(struct sl_ingest *g, size_t *online, size_t *offline, size_t *filtered)
{
    struct req *q = (struct req *)g;
    *online = *offline = 0;
    for (size_t i = 0; i < q->nviews; i++) {
        *online += q->views[i].online;
        *offline += q->views[i].offline;
    }
    *filtered = q->filtered;
}

void sl_ingest_extra_put(struct sl_ingest *g, const void *k, size_t klen, const void *v, size_t vlen)
{
    sl_batch_put(&((struct req *)g)->ic->extra, k, klen, v, vlen);
}

int sl_ingest_commit(struct sl_ingest *g, struct sl_error *err)
{
    struct req *q = (struct req *)g;
    struct ingest_commit *ic = q->ic;
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, {0}};
    if (q->acc && sl_tiles_acc_finish(q->acc, emit_tiles, q) != 0)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (ic->keys.oom || ic->rows.oom || ic->extra.ops.oom)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    finish_mutations(ic);
    ic->c.apply = commit_apply;
    ic->c.done = commit_done;
    ic->n = q->n;
    ic->w = &w;
    int rc;
    /* the queue may be full of ingest requests: wait for room rather than fail a job */
    while ((rc = sl_writer_submit(q->n->writer, &ic->c)) == SL_EBUSY) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    if (rc != 0)
        return sl_error_set(err, rc, "the server is shutting down");
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    /* ready for the next chunk */
    ic->nmut = 0;
    ic->w = NULL;
    sl_buf_reset(&ic->keys);
    sl_buf_reset(&ic->rows);
    sl_batch_reset(&ic->extra);
    sl_tiles_acc_free(q->acc);
    q->acc = NULL;
    if (w.status != 0) {
        *err = w.err;
        return w.status;
    }
    return 0;
}

void sl_ingest_reset(struct sl_ingest *g)
{
    struct req *q = (struct req *)g;
    sl_arena_reset(&q->arena);
    sl_buf_reset(&q->errors);
    q->nerrors = 0;
}

void sl_ingest_free(struct sl_ingest *g)
{
    struct req *q = (struct req *)g;
    if (!q)
        return;
    req_free(q);
    free(q);
}
