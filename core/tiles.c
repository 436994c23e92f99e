/* Tiles, lifetime values and event logs of aggregate views over the online store. */
#define _GNU_SOURCE /* qsort_r */
#include "tiles.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "registry.h"
#include "store.h"
#include "timeutil.h"
#include "types.h"

#define KEY_LIFETIME 0xFE
#define KEY_EVENT 0xFD

/* ---- compiled views ---- */

void sl_tiles_view_free(struct sl_tiles_view *tv)
{
    if (!tv)
        return;
    for (size_t i = 0; tv->specs && i < tv->nspecs; i++)
        sl_agg_spec_free(tv->specs[i]);
    free(tv->specs);
    free(tv);
}

static int windowed(const struct sl_agg_spec *s)
{
    return s->window != SL_AGG_LIFETIME;
}

/* The earliest time any windowed feature of tv can still read at now or later. */
static int64_t view_horizon(const struct sl_tiles_view *tv, int64_t now)
{
    int64_t h = INT64_MAX;
    for (size_t i = 0; i < tv->nspecs; i++) {
        if (!windowed(tv->specs[i]))
            continue;
        int64_t x = sl_agg_horizon(tv->specs[i], now);
        if (x < h)
            h = x;
    }
    return h;
}

int sl_tiles_view_new(const struct sl_view *v, struct sl_tiles_view **out, struct sl_error *err)
{
    struct sl_tiles_view *tv = calloc(1, sizeof(*tv));
    int64_t max_window = 0;
    int rc = 0;
    if (!tv || !(tv->specs = calloc(v->nfeatures + 1, sizeof(*tv->specs)))) {
        sl_tiles_view_free(tv);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    tv->nspecs = v->nfeatures;
    tv->continuous = v->interval_ns == 0;
    for (size_t i = 0; i < v->nfeatures; i++) {
        rc = sl_agg_spec_from_cjson(v->features[i].spec, v->interval_ns, &tv->specs[i], err);
        if (rc)
            goto fail;
        const struct sl_agg_spec *s = tv->specs[i];
        if (!windowed(s)) {
            tv->has_lifetime = 1;
            continue;
        }
        tv->has_windowed = 1;
        if (s->window > max_window)
            max_window = s->window;
        if (s->window - s->offset > tv->max_span)
            tv->max_span = s->window - s->offset;
    }
    if (!tv->continuous && tv->has_windowed &&
        (rc = sl_agg_tiling_init(&tv->tiling, v->interval_ns, max_window)) != 0) {
        sl_error_set(err, SL_ESCHEMA, "feature view `%s`: windows must be multiples of the aggregation interval",
                     v->name);
        goto fail;
    }
    *out = tv;
    return 0;
fail:
    sl_tiles_view_free(tv);
    return rc ? rc : SL_ENOMEM;
}

/* ---- keys ---- */

static void put_be64(struct sl_buf *b, uint64_t v)
{
    unsigned char x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (unsigned char)(v >> (56 - 8 * i));
    sl_buf_append(b, x, 8);
}

static void entity_key(struct sl_buf *k, const unsigned char vk[8], const char *ent, size_t elen)
{
    sl_buf_putc(k, SL_KEY_AGG);
    sl_buf_append(k, vk, 8);
    sl_buf_append(k, ent, elen);
}

void sl_tiles_entity_key(struct sl_buf *out, const unsigned char viewkey[8], const char *entity,
                         size_t elen)
{
    entity_key(out, viewkey, entity, elen);
}

size_t sl_tiles_mutation_entity_len(enum sl_mutation_kind kind, size_t klen)
{
    size_t suffix = kind == SL_MUT_MERGE ? SL_AGG_TILE_KEY_LEN
                    : kind == SL_MUT_LIFETIME ? 1
                    : kind == SL_MUT_PUT ? 17 : klen + 1;
    return suffix < klen ? klen - suffix : 0;
}

static void event_key(struct sl_buf *k, int64_t ts, uint64_t seq)
{
    sl_buf_putc(k, (char)KEY_EVENT);
    put_be64(k, (uint64_t)ts ^ UINT64_C(0x8000000000000000));
    put_be64(k, seq);
}

/* ---- accumulation on the loop thread ---- */

struct ev {
    const struct sl_tiles_view *tv;
    unsigned char vk[8];
    size_t ent, elen;   /* in acc->bytes */
    size_t val, vlen;   /* encoded values, in acc->bytes */
    int64_t ts;
    uint64_t seq;
};

struct sl_tiles_acc {
    struct sl_buf bytes;
    struct ev *evs;
    size_t n, cap;
};

struct sl_tiles_acc *sl_tiles_acc_new(void)
{
    return calloc(1, sizeof(struct sl_tiles_acc));
}

void sl_tiles_acc_free(struct sl_tiles_acc *acc)
{
    if (!acc)
        return;
    sl_buf_free(&acc->bytes);
    free(acc->evs);
    free(acc);
}

int sl_tiles_acc_add(struct sl_tiles_acc *acc, const struct sl_tiles_view *tv,
                     const unsigned char viewkey[8], const char *entity, size_t elen, int64_t ts,
                     uint64_t seq, const struct sl_scalar *vals)
{
    if (acc->n == acc->cap) {
        size_t cap = acc->cap ? acc->cap * 2 : 64;
        struct ev *g = realloc(acc->evs, cap * sizeof(*g));
        if (!g)
            return SL_ENOMEM;
        acc->evs = g;
        acc->cap = cap;
    }
    struct ev *e = &acc->evs[acc->n++];
    e->tv = tv;
    memcpy(e->vk, viewkey, 8);
    e->ts = ts;
    e->seq = seq;
    e->ent = acc->bytes.len;
    e->elen = elen;
    sl_buf_append(&acc->bytes, entity, elen);
    e->val = acc->bytes.len;
    for (size_t i = 0; i < tv->nspecs; i++)
        sl_agg_value_encode(&acc->bytes, &vals[i]);
    e->vlen = acc->bytes.len - e->val;
    return acc->bytes.oom ? SL_ENOMEM : 0;
}

/* Decodes the nspecs values of an event into v. */
static int decode_values(const char *p, size_t len, size_t n, struct sl_scalar *v)
{
    const unsigned char *q = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (sl_agg_value_decode(&q, &len, &v[i]) != 0)
            return SL_ECORRUPT;
    return 0;
}

/* One tile of one event: refs of one entity sort by (level, start, event). */
struct tile_ref {
    struct sl_agg_tile t;
    size_t ev;
};

/* Events by (view, entity), then by position in the request; ctx is the accumulator. */
static int cmp_ev(const void *a, const void *b, void *ctx)
{
    const struct sl_tiles_acc *acc = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const struct ev *x = &acc->evs[i], *y = &acc->evs[j];
    int c = memcmp(x->vk, y->vk, 8);
    if (!c)
        c = sl_bytes_cmp(acc->bytes.p + x->ent, x->elen, acc->bytes.p + y->ent, y->elen);
    if (c)
        return c;
    return i < j ? -1 : i > j;
}

static int same_entity(const struct sl_tiles_acc *acc, size_t i, size_t j)
{
    const struct ev *x = &acc->evs[i], *y = &acc->evs[j];
    return memcmp(x->vk, y->vk, 8) == 0 && x->elen == y->elen &&
           memcmp(acc->bytes.p + x->ent, acc->bytes.p + y->ent, x->elen) == 0;
}

static int cmp_ref(const void *a, const void *b)
{
    const struct tile_ref *x = a, *y = b;
    if (x->t.level != y->t.level)
        return x->t.level < y->t.level ? -1 : 1;
    if (x->t.start != y->t.start)
        return x->t.start < y->t.start ? -1 : 1;
    return x->ev < y->ev ? -1 : x->ev > y->ev;
}

/* One MERGE mutation per touched tile: the partial aggregate of this request's events. The
 * events are grouped by entity first (a sort of events, not of their tiles), then the tiles
 * of each entity's events are sorted by (level, start). */
static int finish_tiles(struct sl_tiles_acc *acc, sl_tiles_emit emit, void *arg)
{
    int64_t now = sl_now_ns();
    struct sl_buf key = SL_BUF_INIT, val = SL_BUF_INIT, tmp = SL_BUF_INIT, memos = SL_BUF_INIT;
    struct memo {
        size_t nev;      /* events of the last tile folded whose first event is this one */
        size_t off, len; /* its partial states, in memos */
    } *memo = NULL;
    struct tile_ref *refs = NULL;
    size_t *order = NULL, nord = 0, cap = 0;
    struct sl_agg_state **st = NULL;
    struct sl_scalar *v = NULL;
    size_t maxspecs = 0;
    int rc = 0;
    order = calloc(acc->n + 1, sizeof(*order));
    memo = calloc(acc->n + 1, sizeof(*memo));
    if (!order || !memo) {
        rc = SL_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < acc->n; i++) {
        const struct ev *e = &acc->evs[i];
        if (e->tv->nspecs > maxspecs)
            maxspecs = e->tv->nspecs;
        if (!e->tv->continuous && e->tv->has_windowed)
            order[nord++] = i;
    }
    if (nord > 1)
        qsort_r(order, nord, sizeof(*order), cmp_ev, acc);
    st = calloc(maxspecs + 1, sizeof(*st));
    v = calloc(maxspecs + 1, sizeof(*v));
    if (!st || !v) {
        rc = SL_ENOMEM;
        goto out;
    }
    for (size_t o = 0; o < nord && rc == 0;) {
        size_t oend = o + 1;
        while (oend < nord && same_entity(acc, order[o], order[oend]))
            oend++;
        const struct ev *first = &acc->evs[order[o]];
        const struct sl_tiles_view *tv = first->tv;
        /* a late event's tiles that no read can cover any more are not recreated */
        int64_t horizon = view_horizon(tv, now);
        size_t need = (oend - o) * (size_t)tv->tiling.nlevels, nrefs = 0;
        if (need > cap) {
            struct tile_ref *g = realloc(refs, need * sizeof(*g));
            if (!g) {
                rc = SL_ENOMEM;
                break;
            }
            refs = g;
            cap = need;
        }
        for (size_t k = o; k < oend; k++) {
            struct sl_agg_tile tiles[SL_AGG_MAX_LEVELS];
            int nt = sl_agg_tiles_for_event(&tv->tiling, acc->evs[order[k]].ts, tiles);
            for (int t = 0; t < nt; t++)
                if (tiles[t].start + tv->tiling.len[tiles[t].level] > horizon)
                    refs[nrefs++] = (struct tile_ref){tiles[t], order[k]};
        }
        if (oend - o > 1) /* one event's tiles come in level order already */
            qsort(refs, nrefs, sizeof(*refs), cmp_ref);
        sl_buf_reset(&key);
        entity_key(&key, first->vk, acc->bytes.p + first->ent, first->elen);
        size_t elen = key.len;
        for (size_t r = 0; r < nrefs && rc == 0;) {
            size_t end = r + 1;
            while (end < nrefs && refs[end].t.level == refs[r].t.level &&
                   refs[end].t.start == refs[r].t.start)
                end++;
            key.len = elen;
            sl_agg_tile_key(&key, &refs[r].t);
            if (key.oom) {
                rc = SL_ENOMEM;
                break;
            }
            /* Tiles of one entity that share an event are nested, so a tile with as many
             * events as an earlier tile around the same first event holds the very same
             * events: its partial states are reused (an event alone in its tiles is folded
             * once, not once per level). */
            struct memo *mo = &memo[refs[r].ev];
            if (mo->nev == end - r) {
                rc = emit(arg, tv, SL_MUT_MERGE, key.p, key.len, memos.p + mo->off, mo->len);
                r = end;
                continue;
            }
            for (size_t i = 0; i < tv->nspecs && rc == 0; i++)
                if (windowed(tv->specs[i]))
                    rc = sl_agg_state_new(tv->specs[i], &st[i]);
            for (size_t k = r; k < end && rc == 0; k++) {
                const struct ev *e = &acc->evs[refs[k].ev];
                rc = decode_values(acc->bytes.p + e->val, e->vlen, tv->nspecs, v);
                for (size_t i = 0; i < tv->nspecs && rc == 0; i++)
                    if (st[i])
                        rc = sl_agg_update(st[i], &v[i], e->ts, e->seq);
            }
            sl_buf_reset(&val);
            for (size_t i = 0; i < tv->nspecs && rc == 0; i++) {
                sl_buf_reset(&tmp);
                if (st[i])
                    rc = sl_agg_serialize(st[i], &tmp);
                sl_buf_lenstr(&val, tmp.p, tmp.len);
            }
            for (size_t i = 0; i < tv->nspecs; i++) {
                sl_agg_state_free(st[i]);
                st[i] = NULL;
            }
            if (rc == 0 && (val.oom || tmp.oom))
                rc = SL_ENOMEM;
            if (rc == 0) {
                *mo = (struct memo){end - r, memos.len, val.len};
                sl_buf_append(&memos, val.p, val.len);
                if (memos.oom)
                    rc = SL_ENOMEM;
            }
            if (rc == 0)
                rc = emit(arg, tv, SL_MUT_MERGE, key.p, key.len, val.p, val.len);
            r = end;
        }
        o = oend;
    }
out:
    free(order);
    free(memo);
    sl_buf_free(&memos);
    free(refs);
    free(st);
    free(v);
    sl_buf_free(&key);
    sl_buf_free(&val);
    sl_buf_free(&tmp);
    return rc;
}

int sl_tiles_acc_finish(struct sl_tiles_acc *acc, sl_tiles_emit emit, void *arg)
{
    int rc = finish_tiles(acc, emit, arg);
    struct sl_buf k = SL_BUF_INIT, val = SL_BUF_INIT;
    for (size_t i = 0; i < acc->n && rc == 0; i++) {
        const struct ev *e = &acc->evs[i];
        const char *ent = acc->bytes.p + e->ent;
        if (e->tv->has_lifetime) {
            sl_buf_reset(&k);
            sl_buf_reset(&val);
            entity_key(&k, e->vk, ent, e->elen);
            sl_buf_putc(&k, (char)KEY_LIFETIME);
            sl_buf_u64(&val, (uint64_t)e->ts);
            sl_buf_u64(&val, e->seq);
            sl_buf_append(&val, acc->bytes.p + e->val, e->vlen);
            rc = k.oom || val.oom ? SL_ENOMEM
                                  : emit(arg, e->tv, SL_MUT_LIFETIME, k.p, k.len, val.p, val.len);
        }
        if (rc == 0 && e->tv->continuous && e->tv->has_windowed &&
            e->ts >= view_horizon(e->tv, sl_now_ns())) {
            sl_buf_reset(&k);
            entity_key(&k, e->vk, ent, e->elen);
            event_key(&k, e->ts, e->seq);
            rc = k.oom ? SL_ENOMEM
                       : emit(arg, e->tv, SL_MUT_PUT, k.p, k.len, acc->bytes.p + e->val, e->vlen);
        }
    }
    sl_buf_free(&k);
    sl_buf_free(&val);
    return rc;
}

/* ---- the writer's read-modify-write ---- */

/* The i-th u32-length-prefixed slot of a stored value (empty when the value is shorter). */
static void slot(const char *p, size_t len, size_t i, const char **s, size_t *n)
{
    struct sl_cursor c = {(const unsigned char *)p, p ? len : 0};
    *s = NULL;
    *n = 0;
    for (size_t k = 0; k <= i; k++)
        if (sl_cur_lenstr(&c, s, n) != 0) {
            *s = NULL;
            *n = 0;
            return;
        }
}

int sl_tiles_apply(const struct sl_tiles_view *tv, enum sl_mutation_kind kind, const char *cur,
                   size_t curlen, const char *val, size_t vlen, struct sl_buf *out)
{
    struct sl_buf tmp = SL_BUF_INIT;
    int rc = 0;
    if (kind == SL_MUT_PUT || (kind == SL_MUT_MERGE && curlen == 0)) {
        sl_buf_append(out, val, vlen);
        return out->oom ? SL_ENOMEM : 0;
    }
    struct sl_scalar *v = NULL;
    int64_t ts = 0;
    uint64_t seq = 0;
    if (kind == SL_MUT_LIFETIME) {
        struct sl_cursor c = {(const unsigned char *)val, vlen};
        uint64_t t;
        v = calloc(tv->nspecs + 1, sizeof(*v));
        if (!v)
            return SL_ENOMEM;
        if (sl_cur_u64(&c, &t) != 0 || sl_cur_u64(&c, &seq) != 0 ||
            decode_values((const char *)c.p, c.left, tv->nspecs, v) != 0) {
            free(v);
            return SL_ECORRUPT;
        }
        ts = (int64_t)t;
    }
    for (size_t i = 0; i < tv->nspecs && rc == 0; i++) {
        const struct sl_agg_spec *spec = tv->specs[i];
        const char *a, *b;
        size_t al, bl;
        slot(cur, curlen, i, &a, &al);
        sl_buf_reset(&tmp);
        if (kind == SL_MUT_MERGE && windowed(spec)) {
            slot(val, vlen, i, &b, &bl);
            rc = sl_agg_merge_serialized(spec, a, al, b, bl, &tmp);
        } else if (kind == SL_MUT_LIFETIME && !windowed(spec)) {
            rc = sl_agg_lifetime_apply(spec, a, al, &v[i], ts, seq, &tmp);
        }
        sl_buf_lenstr(out, tmp.p, tmp.len);
    }
    if (rc == 0 && (out->oom || tmp.oom))
        rc = SL_ENOMEM;
    free(v);
    sl_buf_free(&tmp);
    return rc;
}

int sl_tiles_top_key(const struct sl_tiles_view *tv, const char *k, size_t klen,
                     struct sl_buf *out)
{
    struct sl_agg_tile t;
    int top = tv->tiling.nlevels - 1;
    if (tv->continuous || top < 1 || klen < SL_AGG_TILE_KEY_LEN ||
        sl_agg_tile_key_decode(k + klen - SL_AGG_TILE_KEY_LEN, SL_AGG_TILE_KEY_LEN, &t) != 0 ||
        t.level >= top)
        return -1;
    int64_t len = tv->tiling.len[top], r = t.start % len;
    t.start -= r < 0 ? r + len : r; /* floor to a multiple of len, also before 1970 */
    t.level = top;
    sl_buf_append(out, k, klen - SL_AGG_TILE_KEY_LEN);
    sl_agg_tile_key(out, &t);
    return 0;
}

/* ---- reads ---- */

struct fetched {
    struct sl_agg_tile tile;
    int found;
    size_t off, len;  /* the stored value, in the read's shared value buffer */
};

struct event_rows {
    struct sl_buf bytes;  /* copies of the event values */
    size_t n, cap;
    struct { int64_t ts; uint64_t seq; size_t off, len; } *e;
    size_t prefix;        /* entity key length, to find ts/seq in keys */
};

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int collect_event(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct event_rows *r = arg;
    if (kl != r->prefix + 17 || (unsigned char)k[r->prefix] != KEY_EVENT)
        return 1;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        void *g = realloc(r->e, cap * sizeof(*r->e));
        if (!g)
            return SL_ENOMEM;
        r->e = g;
        r->cap = cap;
    }
    const unsigned char *p = (const unsigned char *)k + r->prefix + 1;
    r->e[r->n].ts = (int64_t)(get_be64(p) ^ UINT64_C(0x8000000000000000));
    r->e[r->n].seq = get_be64(p + 8);
    r->e[r->n].off = r->bytes.len;
    r->e[r->n].len = vl;
    r->n++;
    sl_buf_append(&r->bytes, v, vl);
    return r->bytes.oom ? SL_ENOMEM : 0;
}

/* Continuous windowed features from the entity's event log, in one scan: outs[f] gets the
 * value of feature feat[f]. */
static int read_continuous(const struct sl_tiles_view *tv, struct sl_store *s,
                           const struct sl_buf *ek, int64_t now, const int *feat, size_t nfeat,
                           struct sl_buf *outs, int *present, int64_t *eff, struct sl_error *err)
{
    struct event_rows rows = {.prefix = ek->len};
    struct sl_buf start = SL_BUF_INIT;
    struct sl_agg_event *evs = NULL;
    struct sl_scalar *sc = NULL;
    int rc = 0;
    sl_buf_append(&start, ek->p, ek->len);
    int64_t from = now - tv->max_span;
    if (from > now)
        from = INT64_MIN;
    event_key(&start, from, 0);
    if (start.oom)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    rc = s->ops->scan(s->ctx, ek->p, ek->len, start.p, start.len, collect_event, &rows, err);
    if (rc < 0)
        goto out;
    evs = calloc(rows.n + 1, sizeof(*evs));
    sc = calloc((rows.n + 1) * tv->nspecs, sizeof(*sc));
    if (!evs || !sc) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < rows.n; i++)
        if (decode_values(rows.bytes.p + rows.e[i].off, rows.e[i].len, tv->nspecs,
                          &sc[i * tv->nspecs]) != 0) {
            rc = sl_error_set(err, SL_ECORRUPT, "corrupt event in the online store");
            goto out;
        }
    for (size_t f = 0; f < nfeat && rc == 0; f++) {
        const struct sl_agg_spec *spec = tv->specs[feat[f]];
        if (!windowed(spec))
            continue;
        int64_t ws, we;
        sl_agg_window(spec, now, &ws, &we);
        size_t n = 0;
        for (size_t i = 0; i < rows.n; i++) {
            evs[i] = (struct sl_agg_event){rows.e[i].ts, rows.e[i].seq, &sc[i * tv->nspecs + (size_t)feat[f]]};
            n += rows.e[i].ts >= ws && rows.e[i].ts < we && !sc[i * tv->nspecs + (size_t)feat[f]].null;
        }
        present[f] = n > 0;
        eff[f] = now + spec->offset;
        rc = sl_agg_eval_events(spec, evs, rows.n, now, &outs[f]);
    }
out:
    free(evs);
    free(sc);
    free(rows.e);
    sl_buf_free(&rows.bytes);
    sl_buf_free(&start);
    return rc;
}

static int cmp_tile(const void *a, const void *b)
{
    const struct sl_agg_tile *x = a, *y = b;
    if (x->level != y->level)
        return x->level < y->level ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

static size_t find_fetched(const struct fetched *fx, size_t n, const struct sl_agg_tile *t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* fx is sorted by (level, start) */
        size_t mid = (lo + hi) / 2;
        int c = cmp_tile(&fx[mid].tile, t);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return n;
}

/* A windowed feature's read plan, computed once per read. */
struct plan {
    int ok;
    int64_t end;     /* the window's end: the value's effective time */
    size_t n;
    struct sl_agg_tile t[SL_AGG_PLAN_MAX];
};

/* The planned tiles of every feature in key order (level, start), without repeats. Each plan
 * lists its tiles in time order, so a stable bucketing by level leaves a few ascending runs
 * per level, which an insertion sort puts together quickly. */
static size_t plan_tiles(const struct plan *plans, size_t nfeat, struct sl_agg_tile *all, size_t cap)
{
    size_t count[SL_AGG_MAX_LEVELS + 1] = {0}, n = 0;
    for (size_t f = 0; f < nfeat; f++)
        for (size_t t = 0; plans[f].ok && t < plans[f].n; t++)
            if (plans[f].t[t].level >= 0 && plans[f].t[t].level < SL_AGG_MAX_LEVELS)
                count[plans[f].t[t].level + 1]++;
    for (int l = 0; l < SL_AGG_MAX_LEVELS; l++)
        count[l + 1] += count[l];
    if (count[SL_AGG_MAX_LEVELS] > cap)
        return 0;
    for (size_t f = 0; f < nfeat; f++)
        for (size_t t = 0; plans[f].ok && t < plans[f].n; t++)
            if (plans[f].t[t].level >= 0 && plans[f].t[t].level < SL_AGG_MAX_LEVELS)
                all[count[plans[f].t[t].level]++] = plans[f].t[t];
    n = count[SL_AGG_MAX_LEVELS - 1];
    for (size_t i = 1; i < n; i++) {
        struct sl_agg_tile x = all[i];
        size_t j = i;
        for (; j > 0 && cmp_tile(&all[j - 1], &x) > 0; j--)
            all[j] = all[j - 1];
        all[j] = x;
    }
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || cmp_tile(&all[u - 1], &all[i]) != 0)
            all[u++] = all[i];
    return u;
}

/* Reads every tile the windowed features' plans need with one iterator, in key order. A run
 * of adjacent tiles of one level is read by stepping; between runs the iterator steps over
 * a few stored tiles rather than seek, since a seek costs a search of every memtable and
 * table the iterator merges, where a step costs a comparison or two. */
#define PREFETCH_STEPS 8

static int prefetch(const struct sl_tiles_view *tv, struct sl_store *s, const struct sl_buf *ek,
                    const struct plan *plans, size_t nfeat, struct fetched **fxp, size_t *nfx,
                    size_t *capfx, struct sl_buf *fxv, struct sl_error *err)
{
    struct sl_agg_tile all[SL_AGG_PLAN_MAX * 4];
    if (!s->ops->iter_new)
        return 0;
    size_t n = plan_tiles(plans, nfeat, all, sizeof(all) / sizeof(*all));
    if (n == 0)
        return 0;
    struct fetched *fx = *fxp;
    if (*capfx < n + 64) {
        fx = realloc(*fxp, (n + 64) * sizeof(*fx));
        if (!fx)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        *fxp = fx;
        *capfx = n + 64;
    }
    for (size_t i = 0; i < n; i++)
        fx[i] = (struct fetched){all[i], 0, 0, 0};
    *nfx = n;
    void *it = s->ops->iter_new(s->ctx);
    struct sl_buf key = SL_BUF_INIT;
    int rc = it ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
    int valid = 0, positioned = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        /* a run: adjacent tiles of one level */
        size_t j = i + 1;
        int64_t len = tv->tiling.len[all[i].level];
        while (j < n && all[j].level == all[i].level && all[j].start == all[j - 1].start + len)
            j++;
        sl_buf_reset(&key);
        sl_buf_append(&key, ek->p, ek->len);
        sl_agg_tile_key(&key, &all[i]);
        size_t kl, vl;
        const char *k = NULL;
        if (positioned) { /* the iterator is at or before the run: step to it */
            if (!valid)
                break; /* past the last key: nothing further is stored */
            int steps = 0;
            k = s->ops->iter_key(it, &kl);
            while (valid && sl_bytes_cmp(k, kl, key.p, key.len) < 0 && steps++ < PREFETCH_STEPS)
                if ((valid = s->ops->iter_next(it)))
                    k = s->ops->iter_key(it, &kl);
            if (valid && sl_bytes_cmp(k, kl, key.p, key.len) < 0)
                valid = s->ops->iter_seek(it, key.p, key.len);
        } else {
            valid = s->ops->iter_seek(it, key.p, key.len);
            positioned = 1;
        }
        while (valid) {
            k = s->ops->iter_key(it, &kl);
            struct sl_agg_tile t;
            if (kl < ek->len || memcmp(k, ek->p, ek->len) != 0) {
                valid = 0; /* past the entity: nothing further is stored */
                break;
            }
            if (kl != ek->len + SL_AGG_TILE_KEY_LEN ||
                sl_agg_tile_key_decode(k + ek->len, SL_AGG_TILE_KEY_LEN, &t) != 0 ||
                t.level != all[i].level || t.start > all[j - 1].start)
                break; /* not this run's: perhaps a later run's */
            size_t at = i + (size_t)((t.start - all[i].start) / len);
            if (at < j && fx[at].tile.start == t.start) {
                const char *v = s->ops->iter_value(it, &vl);
                fx[at].off = fxv->len;
                sl_buf_append(fxv, v, vl);
                fx[at].len = vl;
                fx[at].found = 1;
                if (fxv->oom)
                    rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            }
            valid = s->ops->iter_next(it);
        }
        i = j;
    }
    if (it)
        s->ops->iter_free(it);
    sl_buf_free(&key);
    return rc;
}

struct sl_tiles_scratch {
    struct sl_buf ek, key, life, fxv; /* fxv: values of the fetched tiles */
    struct fetched *fx;
    size_t capfx;
    struct plan *plans;
    size_t nplans;
};

struct sl_tiles_scratch *sl_tiles_scratch_new(void)
{
    return calloc(1, sizeof(struct sl_tiles_scratch));
}

static void scratch_release(struct sl_tiles_scratch *x)
{
    sl_buf_free(&x->ek);
    sl_buf_free(&x->key);
    sl_buf_free(&x->life);
    sl_buf_free(&x->fxv);
    free(x->fx);
    free(x->plans);
    memset(x, 0, sizeof(*x));
}

void sl_tiles_scratch_trim(struct sl_tiles_scratch *x)
{
    if (x && (x->fxv.cap > (1u << 20) || x->life.cap > (1u << 20) || x->capfx > 4096 ||
              x->nplans > 64))
        scratch_release(x);
}

void sl_tiles_scratch_free(struct sl_tiles_scratch *x)
{
    if (x) {
        scratch_release(x);
        free(x);
    }
}

int sl_tiles_read(const struct sl_tiles_view *tv, struct sl_store *s,
                  const unsigned char viewkey[8], const char *entity, size_t elen, int64_t now,
                  const int *feat, size_t nfeat, struct sl_buf *vals, size_t *off,
                  size_t *len, int *present, int64_t *eff, struct sl_tiles_scratch *sc,
                  struct sl_error *err)
{
    struct sl_tiles_scratch local = {0}, *x = sc ? sc : &local;
    size_t nfx = 0;
    struct sl_agg_state *st = NULL;
    struct sl_buf *cont = NULL;
    int *cpresent = NULL;
    int64_t *ceff = NULL;
    int rc = 0, have_life = 0;
    sl_buf_reset(&x->ek);
    sl_buf_reset(&x->key);
    sl_buf_reset(&x->life);
    sl_buf_reset(&x->fxv);
    entity_key(&x->ek, viewkey, entity, elen);
    if (x->ek.oom) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }

    /* lifetime value, once */
    for (size_t f = 0; f < nfeat; f++)
        have_life |= !windowed(tv->specs[feat[f]]);
    if (have_life) {
        sl_buf_append(&x->key, x->ek.p, x->ek.len);
        sl_buf_putc(&x->key, (char)KEY_LIFETIME);
        rc = sl_store_get(s, x->key.p, x->key.len, &x->life, err);
        if (rc == SL_ENOTFOUND)
            rc = 0;
        if (rc)
            goto out;
    }
    /* continuous windowed features come from the event log, in one scan */
    if (tv->continuous && tv->has_windowed) {
        cont = calloc(nfeat + 1, sizeof(*cont));
        cpresent = calloc(nfeat + 1, sizeof(int));
        ceff = calloc(nfeat + 1, sizeof(int64_t));
        if (!cont || !cpresent || !ceff) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
        rc = read_continuous(tv, s, &x->ek, now, feat, nfeat, cont, cpresent, ceff, err);
    }

    if (rc == 0 && !tv->continuous && tv->has_windowed) {
        if (x->nplans < nfeat) {
            struct plan *g = realloc(x->plans, nfeat * sizeof(*g));
            if (g) {
                x->plans = g;
                x->nplans = nfeat;
            } else {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            }
        }
        for (size_t f = 0; rc == 0 && f < nfeat; f++) {
            const struct sl_agg_spec *spec = tv->specs[feat[f]];
            int64_t ws;
            x->plans[f].ok = 0;
            x->plans[f].n = 0;
            if (!windowed(spec))
                continue;
            sl_agg_window(spec, now, &ws, &x->plans[f].end);
            x->plans[f].ok = sl_agg_plan(&tv->tiling, ws, x->plans[f].end, x->plans[f].t, SL_AGG_PLAN_MAX,
                                      &x->plans[f].n) == 0;
        }
        if (rc == 0)
            rc = prefetch(tv, s, &x->ek, x->plans, nfeat, &x->fx, &nfx, &x->capfx, &x->fxv, err);
    }
    for (size_t f = 0; f < nfeat && rc == 0; f++) {
        const struct sl_agg_spec *spec = tv->specs[feat[f]];
        off[f] = vals->len;
        present[f] = 0;
        if (tv->continuous && windowed(spec)) {
            sl_buf_append(vals, cont[f].p, cont[f].len);
            len[f] = vals->len - off[f];
            present[f] = cpresent[f];
            eff[f] = ceff[f];
            continue;
        }
        if ((rc = sl_agg_state_new(spec, &st)) != 0)
            break;
        if (!windowed(spec)) {
            const char *p;
            size_t n;
            slot(x->life.p, x->life.len, (size_t)feat[f], &p, &n);
            present[f] = n > 0;
            rc = sl_agg_lifetime_read(st, p, n, now);
            int64_t ws, we;
            sl_agg_window(spec, now, &ws, &we);
            eff[f] = tv->continuous ? now : we;
        } else {
            const struct sl_agg_tile *plan = x->plans[f].t;
            size_t np = x->plans[f].n;
            eff[f] = x->plans[f].end;
            rc = x->plans[f].ok ? 0 : SL_EINVAL;
            for (size_t t = 0; t < np && rc == 0; t++) {
                size_t k = find_fetched(x->fx, nfx, &plan[t]);
                if (k == nfx) { /* not among the prefetched: read it on its own */
                    if (nfx == x->capfx) {
                        x->capfx = x->capfx ? x->capfx * 2 : 64;
                        struct fetched *g = realloc(x->fx, x->capfx * sizeof(*g));
                        if (!g) {
                            rc = SL_ENOMEM;
                            break;
                        }
                        x->fx = g;
                    }
                    x->fx[nfx] = (struct fetched){plan[t], 0, x->fxv.len, 0};
                    sl_buf_reset(&x->key);
                    sl_buf_append(&x->key, x->ek.p, x->ek.len);
                    sl_agg_tile_key(&x->key, &plan[t]);
                    int g = sl_store_get(s, x->key.p, x->key.len, &x->fxv, err);
                    x->fx[nfx].len = x->fxv.len - x->fx[nfx].off;
                    nfx++;
                    if (g == 0)
                        x->fx[k].found = 1;
                    else if (g != SL_ENOTFOUND) {
                        rc = g;
                        break;
                    }
                }
                if (!x->fx[k].found)
                    continue;
                const char *p;
                size_t n;
                slot(x->fxv.p + x->fx[k].off, x->fx[k].len, (size_t)feat[f], &p, &n);
                if (n > 0) {
                    present[f] = 1;
                    rc = sl_agg_merge_bytes(st, p, n);
                }
            }
        }
        if (rc == 0)
            rc = sl_agg_finalize(st, vals);
        len[f] = vals->len - off[f];
        sl_agg_state_free(st);
        st = NULL;
    }
    if (rc && !err->code)
        sl_error_set(err, rc, "aggregation read failed (%s)", sl_strerror(rc));
out:
    for (size_t f = 0; cont && f < nfeat; f++)
        sl_buf_free(&cont[f]);
    free(cont);
    free(cpresent);
    free(ceff);
    if (x == &local)
        scratch_release(&local);
    return rc;
}

/* ---- retention ---- */

struct compact_ctx {
    const struct sl_tiles_view *tv;
    size_t nkeys;     /* join key parts in each entity part */
    int64_t horizon;
    struct sl_batch del;
    size_t deleted;
};

/* Length of the entity part after 'G' + prefix, or 0 when the key is malformed. */
static size_t entity_len(const char *k, size_t kl, size_t nkeys)
{
    struct sl_cursor c = {(const unsigned char *)k + 9, kl - 9};
    for (size_t i = 0; i < nkeys; i++) {
        const char *p;
        size_t n;
        if (sl_cur_lenstr(&c, &p, &n) != 0)
            return 0;
    }
    return kl - 9 - c.left;
}

static int compact_one(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct compact_ctx *c = arg;
    if (kl < 10)
        return 0;
    size_t el = entity_len(k, kl, c->nkeys);
    const unsigned char *suffix = (const unsigned char *)k + 9 + el;
    size_t sl = kl - 9 - el;
    int old = 0;
    if (sl == SL_AGG_TILE_KEY_LEN && suffix[0] < SL_AGG_MAX_LEVELS) {
        struct sl_agg_tile t;
        if (sl_agg_tile_key_decode(suffix, sl, &t) == 0 && t.level < c->tv->tiling.nlevels)
            old = t.start + c->tv->tiling.len[t.level] <= c->horizon;
    } else if (sl == 17 && suffix[0] == KEY_EVENT) {
        old = (int64_t)(get_be64(suffix + 1) ^ UINT64_C(0x8000000000000000)) < c->horizon;
    }
    if (old) {
        sl_batch_delete(&c->del, k, kl);
        c->deleted++;
    }
    (void)v;
    (void)vl;
    return c->del.ops.oom ? SL_ENOMEM : 0;
}

int sl_tiles_compact(const struct sl_tiles_view *tv, const unsigned char viewkey[8],
                     size_t nkeys, struct sl_store *s, int64_t now, size_t *deleted,
                     struct sl_error *err)
{
    struct compact_ctx c = {.tv = tv, .nkeys = nkeys, .horizon = view_horizon(tv, now)};
    char prefix[9];
    *deleted = 0;
    if (!tv->has_windowed)
        return 0;
    prefix[0] = SL_KEY_AGG;
    memcpy(prefix + 1, viewkey, 8);
    int rc = sl_store_scan(s, prefix, sizeof(prefix), compact_one, &c, err);
    if (rc == 0 && c.del.count)
        rc = sl_store_write(s, &c.del, 0, err);
    *deleted = rc == 0 ? c.deleted : 0;
    sl_batch_free(&c.del);
    return rc;
}
