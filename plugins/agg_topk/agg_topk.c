/* top_k: the n most frequent values of a column in the window, each with its count — an
 * exact, mergeable aggregation for columns of small cardinality (categories, merchants, item
 * ids of one user), which Tecton lacks.
 *
 *   Aggregate { column = "merchant", fn = "top_k", n = 3, window = "7d" }
 *   -- merchant_top_3_7d_1d = [["m1","12"],["m7","5"],["m2","5"]]
 *
 * Input: String, Int64, Int32 or Bool. Output: Array(Struct{value: <input>, count: Int64}),
 * most frequent first, equal counts by ascending value; null over no values. The state keeps
 * one count per distinct value (so the result is exact after any merge of tiles): its size
 * grows with the column's cardinality within a tile, hence "small cardinalities".
 *
 * Compiles against sluice/plugin.h alone:
 *   cc $(pkg-config --cflags sluice-plugin) -shared -fPIC -O2 -o agg_topk.so agg_topk.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/plugin.h>

#define STATE_VERSION 1

static const struct sl_plugin_api *api;

struct entry {
    int64_t i;      /* Int64, Int32, Bool */
    char *s;        /* String (owned) */
    size_t len;
    int64_t count;
};

struct topk {
    int str;        /* values are strings */
    struct entry *e; /* sorted by value */
    size_t n, cap;
};

static int cmp_val(const struct topk *t, const struct entry *a, const char *s, size_t len,
                   int64_t i)
{
    if (!t->str)
        return a->i < i ? -1 : a->i > i;
    size_t m = a->len < len ? a->len : len;
    int c = m ? memcmp(a->s, s, m) : 0;
    return c ? c : a->len < len ? -1 : a->len > len;
}

/* Adds count to the entry of value (s,len | i), inserting it in order. */
static int add(struct topk *t, const char *s, size_t len, int64_t i, int64_t count)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_val(t, &t->e[mid], s, len, i);
        if (c == 0) {
            t->e[mid].count += count;
            return 0;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct entry *p = api->realloc(t->e, cap * sizeof *p);
        if (!p)
            return SL_ENOMEM;
        t->e = p;
        t->cap = cap;
    }
    struct entry ne = {i, NULL, 0, count};
    if (t->str) {
        if (!(ne.s = api->malloc(len ? len : 1)))
            return SL_ENOMEM;
        if (len)
            memcpy(ne.s, s, len);
        ne.len = len;
    }
    memmove(&t->e[lo + 1], &t->e[lo], (t->n - lo) * sizeof *t->e);
    t->e[lo] = ne;
    t->n++;
    return 0;
}

static int topk_check(const struct cJSON *params_json, const struct sl_agg_params *p,
                      const struct sl_type *in, struct sl_type **out, struct sl_error *err)
{
    enum sl_kind k = api->type_kind(in);
    if (k != SL_STRING && k != SL_INT64 && k != SL_INT32 && k != SL_BOOL)
        return api->error_set(err, SL_ESCHEMA, "top_k is not defined for %s", api->kind_name(k));
    static const char *const names[] = {"value", "count"};
    struct sl_type *f[2] = {api->type_scalar(k), api->type_scalar(SL_INT64)};
    struct sl_type *st = api->type_struct(2, names, f);
    *out = st ? api->type_array(st) : NULL;
    return *out ? 0 : api->error_set(err, SL_ENOMEM, "out of memory");
}

static void topk_name(const struct sl_agg_params *p, struct sl_buf *out)
{
    api->buf_printf(out, "top_%d", p->n);
}

static int topk_init(const struct sl_agg_spec *spec, void **ctx)
{
    struct topk *t = api->calloc(1, sizeof *t);
    if (!t)
        return SL_ENOMEM;
    t->str = api->type_kind(api->agg_input_type(spec)) == SL_STRING;
    *ctx = t;
    return 0;
}

static void topk_clear(struct topk *t)
{
    for (size_t i = 0; i < t->n; i++)
        api->free(t->e[i].s);
    t->n = 0;
}

static void topk_free(void *ctx)
{
    struct topk *t = ctx;
    if (!t)
        return;
    topk_clear(t);
    api->free(t->e);
    api->free(t);
}

static int topk_update(void *ctx, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                       int64_t ts, uint64_t seq)
{
    struct topk *t = ctx;
    return add(t, v->str, t->str ? v->len : 0, v->i, 1);
}

static int topk_merge(void *ctx, const struct sl_agg_spec *spec, const void *other)
{
    struct topk *t = ctx;
    const struct topk *o = other;
    for (size_t i = 0; i < o->n; i++) {
        int rc = add(t, o->e[i].s, o->e[i].len, o->e[i].i, o->e[i].count);
        if (rc)
            return rc;
    }
    return 0;
}

/* Most frequent first; equal counts by ascending value (entries are in value order). */
static int by_count(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int topk_finalize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct topk *t = ctx;
    if (t->n == 0) {
        api->buf_append(out, "null", 4);
        return 0;
    }
    const struct entry **order = api->malloc(t->n * sizeof *order);
    if (!order)
        return SL_ENOMEM;
    for (size_t i = 0; i < t->n; i++)
        order[i] = &t->e[i];
    qsort(order, t->n, sizeof *order, by_count);
    enum sl_kind kind = api->type_kind(api->agg_input_type(spec));
    size_t k = (size_t)api->agg_params(spec)->n;
    api->buf_append(out, "[", 1);
    for (size_t i = 0; i < t->n && i < k; i++) {
        struct sl_scalar v = {kind, 0, order[i]->i, (double)order[i]->i, order[i]->s, order[i]->len};
        api->buf_append(out, i ? ",[" : "[", i ? 2 : 1);
        api->json_scalar(out, kind, &v);
        api->buf_append(out, ",", 1);
        api->json_int64(out, order[i]->count);
        api->buf_append(out, "]", 1);
    }
    api->buf_append(out, "]", 1);
    api->free(order);
    return 0;
}

/* ---- state bytes: version, uvarint entries, then per entry the value (string: uvarint
 * length + bytes; else zigzag varint) and a uvarint count ---- */

static void put_uvarint(struct sl_buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    api->buf_append(b, tmp, n);
}

static int get_uvarint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return SL_ECORRUPT;
        unsigned c = *(*p)++;
        r |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return SL_ECORRUPT;
}

static int topk_serialize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct topk *t = ctx;
    unsigned char ver = STATE_VERSION;
    api->buf_append(out, &ver, 1);
    put_uvarint(out, t->n);
    for (size_t i = 0; i < t->n; i++) {
        if (t->str) {
            put_uvarint(out, t->e[i].len);
            api->buf_append(out, t->e[i].s, t->e[i].len);
        } else {
            put_uvarint(out, ((uint64_t)t->e[i].i << 1) ^ (uint64_t)(t->e[i].i >> 63));
        }
        put_uvarint(out, (uint64_t)t->e[i].count);
    }
    return 0;
}

static int topk_deserialize(void *ctx, const struct sl_agg_spec *spec, const void *p, size_t len)
{
    struct topk *t = ctx;
    const unsigned char *c = p, *end = c + len;
    uint64_t n, v, cnt;
    topk_clear(t);
    if (len < 1 || *c++ != STATE_VERSION || get_uvarint(&c, end, &n))
        return SL_ECORRUPT;
    for (uint64_t i = 0; i < n; i++) {
        const char *s = NULL;
        int64_t iv = 0;
        size_t sl = 0;
        if (get_uvarint(&c, end, &v))
            return SL_ECORRUPT;
        if (t->str) {
            if (v > (uint64_t)(end - c))
                return SL_ECORRUPT;
            s = (const char *)c;
            sl = (size_t)v;
            c += sl;
        } else {
            iv = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
        }
        if (get_uvarint(&c, end, &cnt) || cnt == 0 || cnt > INT64_MAX)
            return SL_ECORRUPT;
        int rc = add(t, s, sl, iv, (int64_t)cnt);
        if (rc)
            return rc;
    }
    return c == end ? 0 : SL_ECORRUPT;
}

static const struct sl_agg_fn topk_fn = {
    .abi_version = SL_AGG_ABI_VERSION,
    .struct_size = sizeof(struct sl_agg_fn),
    .name = "top_k",
    .params = SL_AGG_P_N,
    .cb_check = topk_check,
    .cb_name = topk_name,
    .cb_init = topk_init,
    .cb_update = topk_update,
    .cb_merge = topk_merge,
    .cb_finalize = topk_finalize,
    .cb_serialize = topk_serialize,
    .cb_deserialize = topk_deserialize,
    .cb_free = topk_free,
};

static int plugin_init(const struct sl_plugin_api *a, const struct sl_plugin_handle *self,
                       void **ctx, struct sl_error *err)
{
    api = a;
    return 0;
}

static const struct sl_plugin plugin = {
    .abi_major = SL_PLUGIN_ABI_MAJOR,
    .abi_minor = SL_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(struct sl_plugin),
    .kind = SL_PLUGIN_AGG,
    .name = "top_k",
    .version = "1.0.0",
    .description = "the n most frequent values with their counts (exact)",
    .cb_init = plugin_init,
    .ops = &topk_fn,
};

SL_PLUGIN_EXPORT const struct sl_plugin *SL_PLUGIN_ENTRY(void)
{
    return &plugin;
}
