/* approx_count_distinct (HyperLogLog with Ertl's improved estimator) and approx_percentile (a
 * relative-error bucket sketch in the manner of DDSketch), plus their 64-bit hash. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "agg_int.h"
#include "agg_sketch.h"
#include "buf.h"
#include "error.h"
#include "types.h"

#define ABI SL_AGG_ABI_VERSION, sizeof(struct sl_agg_fn)

/* ---- hash --------------------------------------------------------------------------------- */

#define H_P1 UINT64_C(0x9E3779B185EBCA87)
#define H_P2 UINT64_C(0xC2B2AE3D27D4EB4F)
#define H_P3 UINT64_C(0x165667B19E3779F9)

static uint64_t rotl64(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t load_le64(const unsigned char *p, size_t n)
{
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)p[i] << (8 * i);
    return w;
}

static uint64_t lane(uint64_t w)
{
    w *= H_P2;
    w = rotl64(w, 31);
    return w * H_P1;
}

uint64_t sl_agg_hash64(const void *data, size_t n, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ ((uint64_t)n * H_P1) ^ H_P3;
    while (n >= 8) {
        h ^= lane(load_le64(p, 8));
        h = rotl64(h, 27) * H_P1 + H_P3;
        p += 8;
        n -= 8;
    }
    if (n) {
        /* The tail is tagged with its length so "a" and "a\0" differ. */
        h ^= lane(load_le64(p, n) ^ ((uint64_t)n << 56));
        h = rotl64(h, 27) * H_P1 + H_P3;
    }
    /* Avalanche (the splitmix64 finalizer). */
    h ^= h >> 30;
    h *= UINT64_C(0xBF58476D1CE4E5B9);
    h ^= h >> 27;
    h *= UINT64_C(0x94D049BB133111EB);
    h ^= h >> 31;
    return h;
}

/* The bytes a value is hashed as: integers as 8 little-endian bytes of their int64 value (so
 * int32 and int64 columns agree), strings as their bytes. */
static uint64_t hash_value(const struct sl_agg_spec *spec, const struct sl_scalar *v)
{
    if (spec->input_type->kind == SL_STRING)
        return sl_agg_hash64(v->str, v->len, 0);
    unsigned char b[8];
    uint64_t u = (uint64_t)v->i;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(u >> (8 * i));
    return sl_agg_hash64(b, sizeof b, 0);
}

/* ---- HyperLogLog -------------------------------------------------------------------------- */

/* 2^p registers of 8 bits; register j holds the largest rank (leading zeros + 1 of the hash
 * bits below the p index bits, at most 65 - p) of the values hashed to j. */
struct hll_st {
    unsigned p;
    uint8_t *reg;
};

static unsigned hll_p(const struct sl_agg_spec *spec)
{
    return spec->params.has_precision ? (unsigned)spec->params.precision : SL_AGG_HLL_DEFAULT_P;
}

static int hll_check(const cJSON *pj, const struct sl_agg_params *p, const struct sl_type *in,
                     struct sl_type **out, struct sl_error *err)
{
    (void)pj;
    if (p->has_precision &&
        (p->precision < SL_AGG_HLL_MIN_P || p->precision > SL_AGG_HLL_MAX_P))
        return sl_error_set(err, SL_ESCHEMA,
                            "approx_count_distinct precision must be between %d and %d",
                            SL_AGG_HLL_MIN_P, SL_AGG_HLL_MAX_P);
    return sl_agg_check_kinds("approx_count_distinct", in, SL_AGG_K_INT | SL_AGG_KBIT(SL_STRING),
                              SL_INT64, out, err);
}

static int hll_init(const struct sl_agg_spec *spec, void **ctx)
{
    struct hll_st *st = calloc(1, sizeof *st);
    if (!st)
        return SL_ENOMEM;
    st->p = hll_p(spec);
    if (st->p < SL_AGG_HLL_MIN_P || st->p > SL_AGG_HLL_MAX_P)
        st->p = SL_AGG_HLL_DEFAULT_P;
    st->reg = calloc((size_t)1 << st->p, 1);
    if (!st->reg) {
        free(st);
        return SL_ENOMEM;
    }
    *ctx = st;
    return 0;
}

static void hll_free(void *ctx)
{
    struct hll_st *st = ctx;
    if (!st)
        return;
    free(st->reg);
    free(st);
}

static int hll_update(void *ctx, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                      int64_t ts, uint64_t seq)
{
    struct hll_st *st = ctx;
    uint64_t h = hash_value(spec, v);
    (void)ts;
    (void)seq;
    size_t idx = (size_t)(h >> (64 - st->p));
    uint64_t w = h << st->p;
    unsigned rank = w ? (unsigned)__builtin_clzll(w) + 1 : 65 - st->p;
    if (rank > 65 - st->p)
        rank = 65 - st->p;
    if (st->reg[idx] < rank)
        st->reg[idx] = (uint8_t)rank;
    return 0;
}

static int hll_merge(void *ctx, const struct sl_agg_spec *spec, const void *other)
{
    struct hll_st *st = ctx;
    const struct hll_st *o = other;
    (void)spec;
    if (o->p != st->p)
        return SL_EINVAL;
    for (size_t i = 0, m = (size_t)1 << st->p; i < m; i++)
        if (st->reg[i] < o->reg[i])
            st->reg[i] = o->reg[i];
    return 0;
}

/* Ertl, "New cardinality estimation algorithms for HyperLogLog sketches" (2017): the improved
 * raw estimator, unbiased over the whole range without empirical bias tables. */
static double hll_sigma(double x)
{
    if (x == 1.0)
        return INFINITY;
    double y = 1.0, z = x, zp;
    do {
        x *= x;
        zp = z;
        z += x * y;
        y += y;
    } while (z != zp);
    return z;
}

static double hll_tau(double x)
{
    if (x == 0.0 || x == 1.0)
        return 0.0;
    double y = 1.0, z = 1.0 - x, zp;
    do {
        x = sqrt(x);
        zp = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
    } while (z != zp);
    return z / 3.0;
}

static double hll_estimate(const struct hll_st *st)
{
    unsigned q = 64 - st->p;
    size_t m = (size_t)1 << st->p;
    double c[66] = {0};
    for (size_t i = 0; i < m; i++)
        c[st->reg[i]] += 1.0;
    double dm = (double)m;
    double z = dm * hll_tau(1.0 - c[q + 1] / dm);
    for (unsigned k = q; k >= 1; k--)
        z = 0.5 * (z + c[k]);
    z += dm * hll_sigma(c[0] / dm);
    return dm * dm * (0.5 / log(2.0)) / z;
}

static int hll_finalize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    (void)spec;
    double e = hll_estimate(ctx);
    sl_buf_printf(out, "\"%lld\"", (long long)llround(isfinite(e) ? e : 0.0));
    return out->oom ? SL_ENOMEM : 0;
}

/* Layout: p, then format 0 (sparse: count, then per non-zero register the index delta and
 * the value) or 1 (dense: 2^p bytes), whichever is shorter. */
static int hll_serialize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct hll_st *st = ctx;
    size_t m = (size_t)1 << st->p, nz = 0;
    (void)spec;
    for (size_t i = 0; i < m; i++)
        nz += st->reg[i] != 0;
    sl_buf_putc(out, (char)st->p);
    if (nz * 3 + 3 < m) {
        size_t prev = 0;
        sl_buf_putc(out, 0);
        sl_agg_put_uvarint(out, nz);
        for (size_t i = 0; i < m; i++) {
            if (!st->reg[i])
                continue;
            sl_agg_put_uvarint(out, i - prev);
            sl_buf_putc(out, (char)st->reg[i]);
            prev = i;
        }
    } else {
        sl_buf_putc(out, 1);
        sl_buf_append(out, st->reg, m);
    }
    return out->oom ? SL_ENOMEM : 0;
}

static int hll_deserialize(void *ctx, const struct sl_agg_spec *spec, const void *data,
                           size_t len)
{
    struct hll_st *st = ctx;
    struct sl_agg_rd r = {data, len};
    unsigned p, fmt, v;
    size_t m = (size_t)1 << st->p;
    (void)spec;
    if (sl_agg_get_u8(&r, &p) || p != st->p || sl_agg_get_u8(&r, &fmt) || fmt > 1)
        return SL_ECORRUPT;
    if (fmt == 1) {
        if (r.left != m)
            return SL_ECORRUPT;
        for (size_t i = 0; i < m; i++) {
            if (r.p[i] > 65 - p)
                return SL_ECORRUPT;
            st->reg[i] = r.p[i];
        }
        return 0;
    }
    uint64_t nz, d, idx = 0;
    if (sl_agg_get_uvarint(&r, &nz) || nz > m)
        return SL_ECORRUPT;
    for (uint64_t k = 0; k < nz; k++) {
        if (sl_agg_get_uvarint(&r, &d) || sl_agg_get_u8(&r, &v))
            return SL_ECORRUPT;
        if ((k > 0 && d == 0) || d >= m || idx + d >= m || v == 0 || v > 65 - p)
            return SL_ECORRUPT;
        idx += d;
        st->reg[idx] = (uint8_t)v;
    }
    return r.left == 0 ? 0 : SL_ECORRUPT;
}

const struct sl_agg_fn sl_agg_fn_approx_count_distinct = {
    ABI, "approx_count_distinct", SL_AGG_P_PRECISION, hll_check, NULL, hll_init, hll_update,
    hll_merge, hll_finalize, hll_serialize, hll_deserialize, hll_free,
};

/* ---- approx_percentile -------------------------------------------------------------------- */

/* Values are counted in logarithmic buckets: with alpha = 1 / precision and
 * gamma = (1 + alpha) / (1 - alpha), a positive x falls in bucket k = ceil(log_gamma x), which
 * covers (gamma^(k-1), gamma^k]; its representative 2 gamma^k / (gamma + 1) is within alpha of
 * every value in it. Negative values use a mirrored store, tiny magnitudes (< 1e-300) a zero
 * bucket, and -Infinity, +Infinity and NaN their own counters (ordered -Inf < negatives < 0 <
 * positives < +Inf < NaN). Merging adds counts: exact, associative and commutative. */
#define PCT_TINY 1e-300

struct pct_store {
    int64_t off; /* key of cnt[0] */
    size_t n;    /* keys off .. off + n - 1 */
    uint64_t *cnt;
};

struct pct_st {
    double lng; /* log(gamma) */
    double gamma;
    uint64_t zero, ninf, pinf, nan;
    struct pct_store pos, neg; /* neg is keyed by |x| */
};

static double pct_alpha(const struct sl_agg_spec *spec)
{
    int prec = spec->params.has_precision ? spec->params.precision
                                          : SL_AGG_PCT_DEFAULT_PRECISION;
    if (prec < SL_AGG_PCT_MIN_PRECISION || prec > SL_AGG_PCT_MAX_PRECISION)
        prec = SL_AGG_PCT_DEFAULT_PRECISION;
    return 1.0 / prec;
}

static int pct_check(const cJSON *pj, const struct sl_agg_params *p, const struct sl_type *in,
                     struct sl_type **out, struct sl_error *err)
{
    (void)pj;
    if (!p->has_percentile || !(p->percentile >= 0.0 && p->percentile <= 1.0))
        return sl_error_set(err, SL_ESCHEMA,
                            "approx_percentile needs parameter percentile between 0 and 1");
    if (p->has_precision && (p->precision < SL_AGG_PCT_MIN_PRECISION ||
                             p->precision > SL_AGG_PCT_MAX_PRECISION))
        return sl_error_set(err, SL_ESCHEMA,
                            "approx_percentile precision must be between %d and %d",
                            SL_AGG_PCT_MIN_PRECISION, SL_AGG_PCT_MAX_PRECISION);
    return sl_agg_check_kinds("approx_percentile", in, SL_AGG_K_NUMERIC, SL_FLOAT64, out, err);
}

static void pct_name(const struct sl_agg_params *p, struct sl_buf *out)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.6g", p ? p->percentile * 100.0 : 0.0);
    for (char *c = tmp; *c; c++)
        if (*c == '.')
            *c = '_';
    sl_buf_printf(out, "approx_percentile_p%s", tmp);
}

static int pct_init(const struct sl_agg_spec *spec, void **ctx)
{
    struct pct_st *st = calloc(1, sizeof *st);
    if (!st)
        return SL_ENOMEM;
    double a = pct_alpha(spec);
    st->gamma = (1.0 + a) / (1.0 - a);
    st->lng = log(st->gamma);
    *ctx = st;
    return 0;
}

static void pct_free(void *ctx)
{
    struct pct_st *st = ctx;
    if (!st)
        return;
    free(st->pos.cnt);
    free(st->neg.cnt);
    free(st);
}

/* Adds c to key k, growing the store; past SL_AGG_PCT_MAX_BUCKETS keys the lowest keys fold
 * into the lowest kept one (only the smallest magnitudes lose accuracy). */
static int store_add(struct pct_store *s, int64_t k, uint64_t c)
{
    if (s->n == 0) {
        s->cnt = calloc(16, sizeof *s->cnt);
        if (!s->cnt)
            return SL_ENOMEM;
        s->n = 16;
        s->off = k - 8;
    }
    int64_t hi = s->off + (int64_t)s->n - 1;
    if (k < s->off || k > hi) {
        int64_t nlo = k < s->off ? k : s->off, nhi = k > hi ? k : hi;
        /* Grow with slack on the side that grew. */
        int64_t span = nhi - nlo + 1, slack = span / 2 + 8;
        if (k < s->off)
            nlo -= slack;
        else
            nhi += slack;
        if (nhi - nlo + 1 > SL_AGG_PCT_MAX_BUCKETS) { /* keep the highest keys */
            nhi = k > hi ? k : hi;
            nlo = nhi - SL_AGG_PCT_MAX_BUCKETS + 1;
        }
        size_t nn = (size_t)(nhi - nlo + 1);
        uint64_t *cnt = calloc(nn, sizeof *cnt);
        if (!cnt)
            return SL_ENOMEM;
        for (size_t i = 0; i < s->n; i++) {
            if (!s->cnt[i])
                continue;
            int64_t key = s->off + (int64_t)i;
            if (key < nlo)
                key = nlo; /* collapse */
            cnt[key - nlo] += s->cnt[i];
        }
        free(s->cnt);
        s->cnt = cnt;
        s->n = nn;
        s->off = nlo;
    }
    if (k < s->off)
        k = s->off;
    s->cnt[k - s->off] += c;
    return 0;
}

static int64_t pct_key(const struct pct_st *st, double ax)
{
    double k = ceil(log(ax) / st->lng);
    return (int64_t)k;
}

static double pct_rep(const struct pct_st *st, int64_t k)
{
    double r = 2.0 * exp((double)k * st->lng) / (st->gamma + 1.0);
    return isinf(r) ? DBL_MAX : r;
}

static int pct_add(struct pct_st *st, double x, uint64_t c)
{
    if (isnan(x))
        st->nan += c;
    else if (isinf(x))
        *(x > 0 ? &st->pinf : &st->ninf) += c;
    else if (fabs(x) < PCT_TINY)
        st->zero += c;
    else
        return store_add(x > 0 ? &st->pos : &st->neg, pct_key(st, fabs(x)), c);
    return 0;
}

static int pct_update(void *ctx, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                      int64_t ts, uint64_t seq)
{
    int k = spec->input_type->kind;
    (void)ts;
    (void)seq;
    return pct_add(ctx, (k == SL_INT64 || k == SL_INT32) ? (double)v->i : v->f, 1);
}

static int store_merge(struct pct_store *dst, const struct pct_store *src)
{
    /* Add the highest key first so the destination grows once. */
    for (size_t i = src->n; i-- > 0;) {
        if (src->cnt[i]) {
            int rc = store_add(dst, src->off + (int64_t)i, src->cnt[i]);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int pct_merge(void *ctx, const struct sl_agg_spec *spec, const void *other)
{
    struct pct_st *st = ctx;
    const struct pct_st *o = other;
    int rc;
    (void)spec;
    st->zero += o->zero;
    st->ninf += o->ninf;
    st->pinf += o->pinf;
    st->nan += o->nan;
    if ((rc = store_merge(&st->pos, &o->pos)) != 0)
        return rc;
    return store_merge(&st->neg, &o->neg);
}

static uint64_t store_total(const struct pct_store *s)
{
    uint64_t t = 0;
    for (size_t i = 0; i < s->n; i++)
        t += s->cnt[i];
    return t;
}

/* The value of rank idx (0-based, ascending order). */
static double pct_at(const struct pct_st *st, uint64_t idx)
{
    uint64_t cum = st->ninf;
    if (idx < cum)
        return -INFINITY;
    for (size_t i = st->neg.n; i-- > 0;) {
        cum += st->neg.cnt[i];
        if (idx < cum)
            return -pct_rep(st, st->neg.off + (int64_t)i);
    }
    cum += st->zero;
    if (idx < cum)
        return 0.0;
    for (size_t i = 0; i < st->pos.n; i++) {
        cum += st->pos.cnt[i];
        if (idx < cum)
            return pct_rep(st, st->pos.off + (int64_t)i);
    }
    cum += st->pinf;
    if (idx < cum)
        return INFINITY;
    return NAN;
}

static int pct_finalize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct pct_st *st = ctx;
    uint64_t n = st->zero + st->ninf + st->pinf + st->nan + store_total(&st->pos) +
                 store_total(&st->neg);
    if (n == 0) {
        sl_buf_puts(out, "null");
    } else {
        double q = spec->params.percentile;
        uint64_t idx = (uint64_t)floor(q * (double)(n - 1));
        if (idx > n - 1)
            idx = n - 1;
        sl_agg_json_double(out, pct_at(st, idx));
    }
    return out->oom ? SL_ENOMEM : 0;
}

/* Store layout: count of non-empty keys, then the first key (zigzag) and its count, then per
 * further key the key delta and count. */
static void store_put(struct sl_buf *out, const struct pct_store *s)
{
    size_t nz = 0;
    int64_t prev = 0;
    int first = 1;
    for (size_t i = 0; i < s->n; i++)
        nz += s->cnt[i] != 0;
    sl_agg_put_uvarint(out, nz);
    for (size_t i = 0; i < s->n; i++) {
        if (!s->cnt[i])
            continue;
        int64_t k = s->off + (int64_t)i;
        if (first)
            sl_agg_put_svarint(out, k);
        else
            sl_agg_put_uvarint(out, (uint64_t)(k - prev));
        sl_agg_put_uvarint(out, s->cnt[i]);
        prev = k;
        first = 0;
    }
}

static int store_get(struct sl_agg_rd *r, struct pct_store *s)
{
    uint64_t nz, d, c;
    int64_t k = 0;
    if (sl_agg_get_uvarint(r, &nz) || nz > r->left)
        return SL_ECORRUPT;
    for (uint64_t i = 0; i < nz; i++) {
        if (i == 0) {
            if (sl_agg_get_svarint(r, &k) || k < -(INT64_C(1) << 40) || k > (INT64_C(1) << 40))
                return SL_ECORRUPT;
        } else {
            if (sl_agg_get_uvarint(r, &d) || d == 0 || d > (UINT64_C(1) << 41))
                return SL_ECORRUPT;
            k += (int64_t)d;
        }
        if (sl_agg_get_uvarint(r, &c) || c == 0)
            return SL_ECORRUPT;
        int rc = store_add(s, k, c);
        if (rc)
            return rc;
    }
    return 0;
}

static int pct_serialize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct pct_st *st = ctx;
    (void)spec;
    sl_agg_put_uvarint(out, st->zero);
    sl_agg_put_uvarint(out, st->ninf);
    sl_agg_put_uvarint(out, st->pinf);
    sl_agg_put_uvarint(out, st->nan);
    store_put(out, &st->pos);
    store_put(out, &st->neg);
    return out->oom ? SL_ENOMEM : 0;
}

static int pct_deserialize(void *ctx, const struct sl_agg_spec *spec, const void *p, size_t len)
{
    struct pct_st *st = ctx;
    struct sl_agg_rd r = {p, len};
    int rc;
    (void)spec;
    if (sl_agg_get_uvarint(&r, &st->zero) || sl_agg_get_uvarint(&r, &st->ninf) ||
        sl_agg_get_uvarint(&r, &st->pinf) || sl_agg_get_uvarint(&r, &st->nan))
        return SL_ECORRUPT;
    if ((rc = store_get(&r, &st->pos)) != 0 || (rc = store_get(&r, &st->neg)) != 0)
        return rc;
    return r.left == 0 ? 0 : SL_ECORRUPT;
}

const struct sl_agg_fn sl_agg_fn_approx_percentile = {
    ABI, "approx_percentile", SL_AGG_P_PRECISION | SL_AGG_P_PERCENTILE, pct_check, pct_name,
    pct_init, pct_update, pct_merge, pct_finalize, pct_serialize, pct_deserialize, pct_free,
};
