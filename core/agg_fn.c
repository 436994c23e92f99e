/* The exact built-in aggregation functions: count, sum, mean, the variance family, min, max,
 * last, last_n, first_n, last_distinct, first_distinct. Each is a struct sl_agg_fn; the state
 * byte layouts are documented in agg.md (the engine prefixes them with a version byte). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "agg_int.h"
#include "buf.h"
#include "error.h"
#include "types.h"

#define ABI SL_AGG_ABI_VERSION, sizeof(struct sl_agg_fn)

static int input_kind(const struct sl_agg_spec *spec)
{
    return (int)spec->input_type->kind;
}

static int done(struct sl_agg_rd *r)
{
    return r->left == 0 ? 0 : SL_ECORRUPT;
}

/* ---- count -------------------------------------------------------------------------------- */

struct count_st {
    int64_t n;
};

static int count_check(const cJSON *pj, const struct sl_agg_params *p, const struct sl_type *in,
                       struct sl_type **out, struct sl_error *err)
{
    (void)pj;
    (void)p;
    return sl_agg_check_kinds("count", in, ~0u, SL_INT64, out, err);
}

static int count_init(const struct sl_agg_spec *spec, void **ctx)
{
    (void)spec;
    *ctx = calloc(1, sizeof(struct count_st));
    return *ctx ? 0 : SL_ENOMEM;
}

static int count_update(void *ctx, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                        int64_t ts, uint64_t seq)
{
    (void)spec;
    (void)v;
    (void)ts;
    (void)seq;
    ((struct count_st *)ctx)->n++;
    return 0;
}

static int count_merge(void *ctx, const struct sl_agg_spec *spec, const void *other)
{
    (void)spec;
    ((struct count_st *)ctx)->n += ((const struct count_st *)other)->n;
    return 0;
}

static int count_finalize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    (void)spec;
    sl_buf_printf(out, "\"%lld\"", (long long)((const struct count_st *)ctx)->n);
    return out->oom ? SL_ENOMEM : 0;
}

static int count_serialize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    (void)spec;
    sl_agg_put_uvarint(out, (uint64_t)((const struct count_st *)ctx)->n);
    return out->oom ? SL_ENOMEM : 0;
}

static int count_deserialize(void *ctx, const struct sl_agg_spec *spec, const void *p, size_t len)
{
    struct sl_agg_rd r = {p, len};
    uint64_t n;
    (void)spec;
    if (sl_agg_get_uvarint(&r, &n) || n > INT64_MAX)
        return SL_ECORRUPT;
    ((struct count_st *)ctx)->n = (int64_t)n;
    return done(&r);
}

const struct sl_agg_fn sl_agg_fn_count = {
    ABI, "count", 0, count_check, NULL, count_init, count_update, count_merge,
    count_finalize, count_serialize, count_deserialize, free,
};

/* ---- sum ---------------------------------------------------------------------------------- */

/* Non-finite inputs are tracked as flags so the finite sum stays compensated. */
#define NF_NAN 1u
#define NF_PINF 2u
#define NF_NINF 4u

struct sum_st {
    int64_t n;
    uint64_t i;  /* integer inputs: wrapping two's-complement sum (associative) */
    double s, c; /* float inputs: Neumaier-compensated sum s + c */
    unsigned flags;
};

static int is_float_kind(int k)
{
    return k == SL_FLOAT64 || k == SL_FLOAT32;
}

static unsigned nonfinite_flag(double x)
{
    if (isnan(x))
        return NF_NAN;
    if (isinf(x))
        return x > 0 ? NF_PINF : NF_NINF;
    return 0;
}

/* Neumaier's compensated addition of x into (s, c). */
static void kahan_add(double *s, double *c, double x)
{
    double t = *s + x;
    if (!isfinite(t)) { /* overflowed: the compensation is meaningless now */
        *s = t;
        return;
    }
    if (fabs(*s) >= fabs(x))
        *c += (*s - t) + x;
    else
        *c += (x - t) + *s;
    *s = t;
}

static double kahan_value(double s, double c)
{
    return isfinite(s) ? s + c : s;
}

static int sum_check(const cJSON *pj, const struct sl_agg_params *p, const struct sl_type *in,
                     struct sl_type **out, struct sl_error *err)
{
    (void)pj;
    (void)p;
    int rc = sl_agg_check_kinds("sum", in, SL_AGG_K_NUMERIC, SL_INT64, out, err);
    if (rc == 0 && is_float_kind(in->kind))
        (*out)->kind = SL_FLOAT64;
    return rc;
}

static int zalloc_init(size_t size, void **ctx)
{
    *ctx = calloc(1, size);
    return *ctx ? 0 : SL_ENOMEM;
}

static int sum_init(const struct sl_agg_spec *spec, void **ctx)
{
    (void)spec;
    return zalloc_init(sizeof(struct sum_st), ctx);
}

static int sum_update(void *ctx, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                      int64_t ts, uint64_t seq)
{
    struct sum_st *st = ctx;
    (void)ts;
    (void)seq;
    st->n++;
    if (!is_float_kind(input_kind(spec))) {
        st->i += (uint64_t)v->i;
        return 0;
    }
    unsigned f = nonfinite_flag(v->f);
    if (f)
        st->flags |= f;
    else
        kahan_add(&st->s, &st->c, v->f);
    return 0;
}

static int sum_merge(void *ctx, const struct sl_agg_spec *spec, const void *other)
{
    struct sum_st *st = ctx;
    const struct sum_st *o = other;
    (void)spec;
    st->n += o->n;
    st->i += o->i;
    st->flags |= o->flags;
    kahan_add(&st->s, &st->c, o->s);
    if (isfinite(st->s))
        st->c += o->c;
    return 0;
}

/* Appends the float result given the non-finite flags. */
static void float_result(struct sl_buf *out, double v, unsigned flags)
{
    if ((flags & NF_NAN) || ((flags & NF_PINF) && (flags & NF_NINF)))
        sl_agg_json_double(out, NAN);
    else if (flags & NF_PINF)
        sl_agg_json_double(out, INFINITY);
    else if (flags & NF_NINF)
        sl_agg_json_double(out, -INFINITY);
    else
        sl_agg_json_double(out, v);
}

static int sum_finalize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct sum_st *st = ctx;
    if (st->n == 0)
        sl_buf_puts(out, "null");
    else if (!is_float_kind(input_kind(spec)))
        sl_buf_printf(out, "\"%lld\"", (long long)(int64_t)st->i);
    else
        float_result(out, kahan_value(st->s, st->c), st->flags);
    return out->oom ? SL_ENOMEM : 0;
}

static int sum_serialize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct sum_st *st = ctx;
    sl_agg_put_uvarint(out, (uint64_t)st->n);
    if (!is_float_kind(input_kind(spec))) {
        sl_agg_put_svarint(out, (int64_t)st->i);
    } else {
        sl_buf_putc(out, (char)st->flags);
        sl_agg_put_f64(out, st->s);
        sl_agg_put_f64(out, st->c);
    }
    return out->oom ? SL_ENOMEM : 0;
}

static int sum_deserialize(void *ctx, const struct sl_agg_spec *spec, const void *p, size_t len)
{
    struct sum_st *st = ctx;
    struct sl_agg_rd r = {p, len};
    uint64_t n;
    if (sl_agg_get_uvarint(&r, &n) || n > INT64_MAX)
        return SL_ECORRUPT;
    st->n = (int64_t)n;
    if (!is_float_kind(input_kind(spec))) {
        int64_t i;
        if (sl_agg_get_svarint(&r, &i))
            return SL_ECORRUPT;
        st->i = (uint64_t)i;
    } else {
        unsigned f;
        if (sl_agg_get_u8(&r, &f) || f > 7 || sl_agg_get_f64(&r, &st->s) ||
            sl_agg_get_f64(&r, &st->c))
            return SL_ECORRUPT;
        st->flags = f;
    }
    return done(&r);
}

const struct sl_agg_fn sl_agg_fn_sum = {
    ABI, "sum", 0, sum_check, NULL, sum_init, sum_update, sum_merge,
    sum_finalize, sum_serialize, sum_deserialize, free,
};

/* ---- mean, var_*, stddev_* ---------------------------------------------------------------- */

/* Welford's running mean and sum of squared deviations over the finite values; Chan et al.'s
 * pairwise formula to merge. n counts every value, nf the finite ones. */
struct mom_st {
    int64_t n, nf;
    double mean, m2;
    unsigned flags;
};

static int mom_check_named(const char *name, const struct sl_type *in, struct sl_type **out,
                           struct sl_error *err)
{
    return sl_agg_check_kinds(name, in, SL_AGG_K_NUMERIC, SL_FLOAT64, out, err);
}

#define MOM_CHECK(fname, label)                                                               \
    static int fname(const cJSON *pj, const struct sl_agg_params *p,                          \
                     const struct sl_type *in, struct sl_type **out, struct sl_error *err)    \
    {                                                                                         \
        (void)pj;                                                                             \
        (void)p;                                                                              \
        return mom_check_named(label, in, out, err);                                          \
    }
MOM_CHECK(mean_check, "mean")
MOM_CHECK(var_pop_check, "var_pop")
MOM_CHECK(var_samp_check, "var_samp")
MOM_CHECK(stddev_pop_check, "stddev_pop")
MOM_CHECK(stddev_samp_check, "stddev_samp")

static int mom_init(const struct sl_agg_spec *spec, void **ctx)
{
    (void)spec;
    return zalloc_init(sizeof(struct mom_st), ctx);
}

static int mom_update(void *ctx, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                      int64_t ts, uint64_t seq)
{
    struct mom_st *st = ctx;
    double x = v->f;
    (void)spec;
    (void)ts;
    (void)seq;
    if (input_kind(spec) == SL_INT64 || input_kind(spec) == SL_INT32)
        x = (double)v->i;
    st->n++;
    unsigned f = nonfinite_flag(x);
    if (f) {
        st->flags |= f;
        return 0;
    }
    st->nf++;
    double d = x - st->mean;
    st->mean += d / (double)st->nf;
    st->m2 += d * (x - st->mean);
    return 0;
}

static int mom_merge(void *ctx, const struct sl_agg_spec *spec, const void *other)
{
    struct mom_st *st = ctx;
    const struct mom_st *o = other;
    (void)spec;
    st->n += o->n;
    st->flags |= o->flags;
    if (o->nf == 0)
        return 0;
    if (st->nf == 0) {
        st->nf = o->nf;
        st->mean = o->mean;
        st->m2 = o->m2;
        return 0;
    }
    double na = (double)st->nf, nb = (double)o->nf, n = na + nb;
    double d = o->mean - st->mean;
    /* Weighted mean written symmetrically so merge order does not bias it; Chan's form
     * when the products overflow. */
    double mean = (na * st->mean + nb * o->mean) / n;
    st->mean = isfinite(mean) ? mean : st->mean + d * (nb / n);
    st->m2 = st->m2 + o->m2 + d * d * (na * nb / n);
    st->nf += o->nf;
    return 0;
}

enum mom_out { MOM_MEAN, MOM_VAR_POP, MOM_VAR_SAMP, MOM_STD_POP, MOM_STD_SAMP };

static int mom_result(const struct mom_st *st, enum mom_out what, struct sl_buf *out)
{
    int samp = what == MOM_VAR_SAMP || what == MOM_STD_SAMP;
    if (st->n == 0 || (samp && st->n < 2)) {
        sl_buf_puts(out, "null");
    } else if (what == MOM_MEAN) {
        float_result(out, st->mean, st->flags);
    } else if (st->flags) {
        sl_agg_json_double(out, NAN);
    } else {
        double m2 = st->m2 < 0 ? 0 : st->m2;
        double var = m2 / (double)(samp ? st->nf - 1 : st->nf);
        sl_agg_json_double(out, what == MOM_STD_POP || what == MOM_STD_SAMP ? sqrt(var) : var);
    }
    return out->oom ? SL_ENOMEM : 0;
}

#define MOM_FINAL(fname, what)                                                                \
    static int fname(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)     \
    {                                                                                         \
        (void)spec;                                                                           \
        return mom_result(ctx, what, out);                                                    \
    }
MOM_FINAL(mean_finalize, MOM_MEAN)
MOM_FINAL(var_pop_finalize, MOM_VAR_POP)
MOM_FINAL(var_samp_finalize, MOM_VAR_SAMP)
MOM_FINAL(stddev_pop_finalize, MOM_STD_POP)
MOM_FINAL(stddev_samp_finalize, MOM_STD_SAMP)

static int mom_serialize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct mom_st *st = ctx;
    (void)spec;
    sl_agg_put_uvarint(out, (uint64_t)st->n);
    sl_buf_putc(out, (char)st->flags);
    if (st->flags)
        sl_agg_put_uvarint(out, (uint64_t)st->nf);
    if (st->nf) {
        sl_agg_put_f64(out, st->mean);
        sl_agg_put_f64(out, st->m2);
    }
    return out->oom ? SL_ENOMEM : 0;
}

static int mom_deserialize(void *ctx, const struct sl_agg_spec *spec, const void *p, size_t len)
{
    struct mom_st *st = ctx;
    struct sl_agg_rd r = {p, len};
    uint64_t n, nf;
    unsigned f;
    (void)spec;
    if (sl_agg_get_uvarint(&r, &n) || n > INT64_MAX || sl_agg_get_u8(&r, &f) || f > 7)
        return SL_ECORRUPT;
    nf = n;
    if (f && sl_agg_get_uvarint(&r, &nf))
        return SL_ECORRUPT;
    if (nf > n)
        return SL_ECORRUPT;
    st->n = (int64_t)n;
    st->nf = (int64_t)nf;
    st->flags = f;
    if (nf && (sl_agg_get_f64(&r, &st->mean) || sl_agg_get_f64(&r, &st->m2)))
        return SL_ECORRUPT;
    return done(&r);
}

#define MOM_FN(var, label, check, final)                                                      \
    const struct sl_agg_fn var = {                                                            \
        ABI, label, 0, check, NULL, mom_init, mom_update, mom_merge,                         \
        final, mom_serialize, mom_deserialize, free,                                          \
    };
MOM_FN(sl_agg_fn_mean, "mean", mean_check, mean_finalize)
MOM_FN(sl_agg_fn_var_pop, "var_pop", var_pop_check, var_pop_finalize)
MOM_FN(sl_agg_fn_var_samp, "var_samp", var_samp_check, var_samp_finalize)
MOM_FN(sl_agg_fn_stddev_pop, "stddev_pop", stddev_pop_check, stddev_pop_finalize)
MOM_FN(sl_agg_fn_stddev_samp, "stddev_samp", stddev_samp_check, stddev_samp_finalize)

/* ---- min, max ----------------------------------------------------------------------------- */

#define MM_KINDS                                                                              \
    (SL_AGG_K_NUMERIC | SL_AGG_KBIT(SL_STRING) | SL_AGG_KBIT(SL_TIMESTAMP))

/* The extreme value so far, stored typed: integers (int64, int32, timestamp) exactly, floats
 * under a total order (-0.0 < +0.0, NaN above +Infinity), strings bytewise (UTF-8 byte order
 * is code point order). */
struct mm_st {
    int has;
    int64_t i;
    double f;
    char *s;
    size_t len;
};

static int min_check(const cJSON *pj, const struct sl_agg_params *p, const struct sl_type *in,
                     struct sl_type **out, struct sl_error *err)
{
    (void)pj;
    (void)p;
    return sl_agg_check_kinds("min", in, MM_KINDS, 0, out, err);
}

static int max_check(const cJSON *pj, const struct sl_agg_params *p, const struct sl_type *in,
                     struct sl_type **out, struct sl_error *err)
{
    (void)pj;
    (void)p;
    return sl_agg_check_kinds("max", in, MM_KINDS, 0, out, err);
}

static int mm_init(const struct sl_agg_spec *spec, void **ctx)
{
    (void)spec;
    return zalloc_init(sizeof(struct mm_st), ctx);
}

static void mm_free(void *ctx)
{
    struct mm_st *st = ctx;
    if (!st)
        return;
    free(st->s);
    free(st);
}

static int fcmp_total(double a, double b)
{
    int na = isnan(a), nb = isnan(b);
    if (na || nb)
        return na - nb;
    if (a < b)
        return -1;
    if (a > b)
        return 1;
    return (int)(signbit(b) != 0) - (int)(signbit(a) != 0);
}

static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

/* Compares candidate (i, f, s, len) with the state's value. */
static int mm_cmp(const struct sl_agg_spec *spec, const struct mm_st *st, int64_t i, double f,
                  const char *s, size_t len)
{
    int k = input_kind(spec);
    if (is_float_kind(k))
        return fcmp_total(f, st->f);
    if (k == SL_STRING)
        return bytes_cmp(s, len, st->s, st->len);
    return i < st->i ? -1 : i > st->i;
}

static int mm_offer(struct mm_st *st, const struct sl_agg_spec *spec, int want, int64_t i,
                    double f, const char *s, size_t len)
{
    if (st->has && mm_cmp(spec, st, i, f, s, len) * want <= 0)
        return 0;
    if (input_kind(spec) == SL_STRING) {
        char *copy = malloc(len ? len : 1);
        if (!copy)
            return SL_ENOMEM;
        memcpy(copy, s, len);
        free(st->s);
        st->s = copy;
        st->len = len;
    }
    st->i = i;
    st->f = f;
    st->has = 1;
    return 0;
}

static int min_update(void *ctx, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                      int64_t ts, uint64_t seq)
{
    (void)ts;
    (void)seq;
    return mm_offer(ctx, spec, -1, v->i, v->f, v->str, v->len);
}

static int max_update(void *ctx, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                      int64_t ts, uint64_t seq)
{
    (void)ts;
    (void)seq;
    return mm_offer(ctx, spec, 1, v->i, v->f, v->str, v->len);
}

static int min_merge(void *ctx, const struct sl_agg_spec *spec, const void *other)
{
    const struct mm_st *o = other;
    return o->has ? mm_offer(ctx, spec, -1, o->i, o->f, o->s, o->len) : 0;
}

static int max_merge(void *ctx, const struct sl_agg_spec *spec, const void *other)
{
    const struct mm_st *o = other;
    return o->has ? mm_offer(ctx, spec, 1, o->i, o->f, o->s, o->len) : 0;
}

static int mm_finalize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct mm_st *st = ctx;
    if (!st->has) {
        sl_buf_puts(out, "null");
    } else {
        struct sl_scalar v = {.kind = spec->input_type->kind, .i = st->i, .f = st->f,
                              .str = st->s, .len = st->len};
        sl_agg_scalar_json(out, spec->input_type->kind, &v);
    }
    return out->oom ? SL_ENOMEM : 0;
}

static int mm_serialize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct mm_st *st = ctx;
    int k = input_kind(spec);
    sl_buf_putc(out, (char)st->has);
    if (st->has) {
        if (is_float_kind(k)) {
            sl_agg_put_f64(out, st->f);
        } else if (k == SL_STRING) {
            sl_agg_put_uvarint(out, st->len);
            sl_buf_append(out, st->s, st->len);
        } else {
            sl_agg_put_svarint(out, st->i);
        }
    }
    return out->oom ? SL_ENOMEM : 0;
}

static int mm_deserialize(void *ctx, const struct sl_agg_spec *spec, const void *p, size_t len)
{
    struct mm_st *st = ctx;
    struct sl_agg_rd r = {p, len};
    unsigned has;
    int k = input_kind(spec);
    if (sl_agg_get_u8(&r, &has) || has > 1)
        return SL_ECORRUPT;
    if (has) {
        if (is_float_kind(k)) {
            if (sl_agg_get_f64(&r, &st->f))
                return SL_ECORRUPT;
        } else if (k == SL_STRING) {
            const char *s;
            size_t n;
            if (sl_agg_get_bytes(&r, &s, &n))
                return SL_ECORRUPT;
            free(st->s);
            st->s = malloc(n ? n : 1);
            if (!st->s)
                return SL_ENOMEM;
            memcpy(st->s, s, n);
            st->len = n;
        } else if (sl_agg_get_svarint(&r, &st->i)) {
            return SL_ECORRUPT;
        }
        if (!is_float_kind(k))
            st->f = (double)st->i;
    }
    st->has = (int)has;
    return done(&r);
}

const struct sl_agg_fn sl_agg_fn_min = {
    ABI, "min", 0, min_check, NULL, mm_init, min_update, min_merge,
    mm_finalize, mm_serialize, mm_deserialize, mm_free,
};

const struct sl_agg_fn sl_agg_fn_max = {
    ABI, "max", 0, max_check, NULL, mm_init, max_update, max_merge,
    mm_finalize, mm_serialize, mm_deserialize, mm_free,
};

/* ---- ordered items: last, last_n, first_n, last_distinct, first_distinct ------------------ */

/* One kept value: its event time, write sequence number and canonical JSON encoding. Items
 * are totally ordered by (ts, seq, enc), so merges are commutative even for duplicates. */
struct item {
    int64_t ts;
    uint64_t seq;
    char *enc;
    size_t len;
};

static int item_cmp(const struct item *a, const struct item *b)
{
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return bytes_cmp(a->enc, a->len, b->enc, b->len);
}

static int enc_cmp_q(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    int c = bytes_cmp(x->enc, x->len, y->enc, y->len);
    return c ? c : item_cmp(x, y);
}

/* Encodes v as the spec's input type into a new item (caller frees it->enc). */
static int item_make(struct item *it, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                     int64_t ts, uint64_t seq)
{
    struct sl_buf b = SL_BUF_INIT;
    sl_agg_scalar_json(&b, spec->input_type->kind, v);
    if (b.oom) {
        sl_buf_free(&b);
        return SL_ENOMEM;
    }
    it->ts = ts;
    it->seq = seq;
    it->enc = sl_buf_detach(&b, &it->len);
    if (!it->enc) { /* empty encodings do not occur, but keep the invariant enc != NULL */
        it->enc = malloc(1);
        if (!it->enc)
            return SL_ENOMEM;
        it->len = 0;
    }
    return 0;
}

static int item_copy(struct item *dst, const struct item *src)
{
    *dst = *src;
    dst->enc = malloc(src->len ? src->len : 1);
    if (!dst->enc)
        return SL_ENOMEM;
    memcpy(dst->enc, src->enc, src->len);
    return 0;
}

static void item_put(struct sl_buf *out, const struct item *it, int64_t prev_ts)
{
    sl_agg_put_svarint(out, (int64_t)((uint64_t)it->ts - (uint64_t)prev_ts));
    sl_agg_put_uvarint(out, it->seq);
    sl_agg_put_uvarint(out, it->len);
    sl_buf_append(out, it->enc, it->len);
}

static int item_get(struct sl_agg_rd *r, struct item *it, int64_t prev_ts)
{
    int64_t d;
    const char *s;
    if (sl_agg_get_svarint(r, &d) || sl_agg_get_uvarint(r, &it->seq) ||
        sl_agg_get_bytes(r, &s, &it->len))
        return SL_ECORRUPT;
    it->ts = (int64_t)((uint64_t)prev_ts + (uint64_t)d);
    it->enc = malloc(it->len ? it->len : 1);
    if (!it->enc)
        return SL_ENOMEM;
    memcpy(it->enc, s, it->len);
    return 0;
}

/* last: the item with the greatest (ts, seq). */
struct last_st {
    int has;
    struct item it;
};

static int last_check(const cJSON *pj, const struct sl_agg_params *p, const struct sl_type *in,
                      struct sl_type **out, struct sl_error *err)
{
    (void)pj;
    (void)p;
    return sl_agg_check_kinds("last", in, SL_AGG_K_SCALAR | SL_AGG_K_NESTED, 0, out, err);
}

static int last_init(const struct sl_agg_spec *spec, void **ctx)
{
    (void)spec;
    return zalloc_init(sizeof(struct last_st), ctx);
}

static void last_free(void *ctx)
{
    struct last_st *st = ctx;
    if (!st)
        return;
    free(st->it.enc);
    free(st);
}

/* Takes ownership of it (frees it when not kept). */
static void last_offer(struct last_st *st, struct item *it)
{
    if (st->has && item_cmp(it, &st->it) <= 0) {
        free(it->enc);
        return;
    }
    free(st->it.enc);
    st->it = *it;
    st->has = 1;
}

static int last_update(void *ctx, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                       int64_t ts, uint64_t seq)
{
    struct item it;
    int rc = item_make(&it, spec, v, ts, seq);
    if (rc)
        return rc;
    last_offer(ctx, &it);
    return 0;
}

static int last_merge(void *ctx, const struct sl_agg_spec *spec, const void *other)
{
    const struct last_st *o = other;
    struct item it;
    (void)spec;
    if (!o->has)
        return 0;
    if (item_copy(&it, &o->it))
        return SL_ENOMEM;
    last_offer(ctx, &it);
    return 0;
}

static int last_finalize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct last_st *st = ctx;
    (void)spec;
    if (st->has)
        sl_buf_append(out, st->it.enc, st->it.len);
    else
        sl_buf_puts(out, "null");
    return out->oom ? SL_ENOMEM : 0;
}

static int last_serialize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct last_st *st = ctx;
    (void)spec;
    sl_buf_putc(out, (char)st->has);
    if (st->has)
        item_put(out, &st->it, 0);
    return out->oom ? SL_ENOMEM : 0;
}

static int last_deserialize(void *ctx, const struct sl_agg_spec *spec, const void *p, size_t len)
{
    struct last_st *st = ctx;
    struct sl_agg_rd r = {p, len};
    unsigned has;
    int rc;
    (void)spec;
    if (sl_agg_get_u8(&r, &has) || has > 1)
        return SL_ECORRUPT;
    if (has) {
        if ((rc = item_get(&r, &st->it, 0)) != 0)
            return rc;
        st->has = 1;
    }
    return done(&r);
}

const struct sl_agg_fn sl_agg_fn_last = {
    ABI, "last", 0, last_check, NULL, last_init, last_update, last_merge,
    last_finalize, last_serialize, last_deserialize, last_free,
};

/* Lists: up to `limit` items sorted ascending by (ts, seq, enc).
 *   last_n / first_n: the limit greatest / smallest items;
 *   last_distinct / first_distinct: one item per distinct encoding carrying its latest /
 *   earliest occurrence, the limit greatest / smallest of those.
 * Truncating each partial to its limit loses nothing for the merged result: an item outside
 * a partial's top `limit` has `limit` better items in that same partial. */
struct list_st {
    size_t n, cap, limit;
    int keep_last; /* keep the greatest items (last_*) rather than the smallest (first_*) */
    int distinct;
    struct item *v;
};

static int list_is_last(const struct sl_agg_spec *spec)
{
    return spec->fn == &sl_agg_fn_last_n || spec->fn == &sl_agg_fn_last_distinct;
}

static int list_is_distinct(const struct sl_agg_spec *spec)
{
    return spec->fn == &sl_agg_fn_last_distinct || spec->fn == &sl_agg_fn_first_distinct;
}

static int list_check_named(const char *name, const struct sl_agg_params *p,
                            const struct sl_type *in, unsigned kinds, struct sl_type **out,
                            struct sl_error *err)
{
    if (!p->has_n || p->n < 1 || p->n > SL_AGG_MAX_N)
        return sl_error_set(err, SL_ESCHEMA, "%s needs parameter n between 1 and %d", name,
                            SL_AGG_MAX_N);
    return sl_agg_check_kinds(name, in, kinds, SL_ARRAY, out, err);
}

#define LIST_CHECK(fname, label, kinds)                                                       \
    static int fname(const cJSON *pj, const struct sl_agg_params *p,                          \
                     const struct sl_type *in, struct sl_type **out, struct sl_error *err)    \
    {                                                                                         \
        (void)pj;                                                                             \
        return list_check_named(label, p, in, kinds, out, err);                               \
    }
LIST_CHECK(last_n_check, "last_n", SL_AGG_K_SCALAR | SL_AGG_K_NESTED)
LIST_CHECK(first_n_check, "first_n", SL_AGG_K_SCALAR | SL_AGG_K_NESTED)
LIST_CHECK(last_distinct_check, "last_distinct", SL_AGG_K_INT | SL_AGG_KBIT(SL_STRING))
LIST_CHECK(first_distinct_check, "first_distinct", SL_AGG_K_INT | SL_AGG_KBIT(SL_STRING))

#define LIST_NAME(fname, fmt)                                                                 \
    static void fname(const struct sl_agg_params *p, struct sl_buf *out)                      \
    {                                                                                         \
        sl_buf_printf(out, fmt, p ? p->n : 0);                                                \
    }
LIST_NAME(last_n_name, "last_%d")
LIST_NAME(first_n_name, "first_%d")
LIST_NAME(last_distinct_name, "last_distinct_%d")
LIST_NAME(first_distinct_name, "first_distinct_%d")

static int list_init(const struct sl_agg_spec *spec, void **ctx)
{
    struct list_st *st = calloc(1, sizeof *st);
    if (!st)
        return SL_ENOMEM;
    st->limit = spec->params.n > 0 ? (size_t)spec->params.n : 1;
    st->keep_last = list_is_last(spec);
    st->distinct = list_is_distinct(spec);
    *ctx = st;
    return 0;
}

static void list_clear(struct list_st *st)
{
    for (size_t i = 0; i < st->n; i++)
        free(st->v[i].enc);
    st->n = 0;
}

static void list_free(void *ctx)
{
    struct list_st *st = ctx;
    if (!st)
        return;
    list_clear(st);
    free(st->v);
    free(st);
}

static int list_reserve(struct list_st *st, size_t want)
{
    if (want <= st->cap)
        return 0;
    size_t cap = st->cap ? st->cap * 2 : 8;
    while (cap < want)
        cap *= 2;
    struct item *v = realloc(st->v, cap * sizeof *v);
    if (!v)
        return SL_ENOMEM;
    st->v = v;
    st->cap = cap;
    return 0;
}

/* Position of the first item > it (binary search). */
static size_t list_upper(const struct list_st *st, const struct item *it)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (item_cmp(&st->v[mid], it) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void list_remove(struct list_st *st, size_t i, int free_enc)
{
    if (free_enc)
        free(st->v[i].enc);
    memmove(st->v + i, st->v + i + 1, (st->n - i - 1) * sizeof *st->v);
    st->n--;
}

/* Inserts it (ownership taken) in order, then trims to the limit from the dropped end. */
static int list_insert(struct list_st *st, struct item *it)
{
    if (st->n == st->limit) {
        /* Full: a new item beyond the kept end would be dropped straight away. */
        if (st->keep_last ? item_cmp(it, &st->v[0]) <= 0
                          : item_cmp(it, &st->v[st->n - 1]) >= 0) {
            free(it->enc);
            return 0;
        }
    }
    if (list_reserve(st, st->n + 1)) {
        free(it->enc);
        return SL_ENOMEM;
    }
    size_t pos = list_upper(st, it);
    memmove(st->v + pos + 1, st->v + pos, (st->n - pos) * sizeof *st->v);
    st->v[pos] = *it;
    st->n++;
    if (st->n > st->limit)
        list_remove(st, st->keep_last ? 0 : st->n - 1, 1);
    return 0;
}

/* Distinct lists: finds the item with encoding enc, or returns n. */
static size_t list_find_enc(const struct list_st *st, const char *enc, size_t len)
{
    for (size_t i = 0; i < st->n; i++)
        if (st->v[i].len == len && memcmp(st->v[i].enc, enc, len) == 0)
            return i;
    return st->n;
}

/* Offers an occurrence (ownership of it taken) to a distinct list. */
static int list_offer_distinct(struct list_st *st, struct item *it)
{
    size_t j = list_find_enc(st, it->enc, it->len);
    if (j == st->n)
        return list_insert(st, it);
    int c = item_cmp(it, &st->v[j]);
    if (st->keep_last ? c <= 0 : c >= 0) {
        free(it->enc);
        return 0;
    }
    list_remove(st, j, 1);
    return list_insert(st, it);
}

static int list_update(void *ctx, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                       int64_t ts, uint64_t seq)
{
    struct list_st *st = ctx;
    struct item it;
    int rc = item_make(&it, spec, v, ts, seq);
    if (rc)
        return rc;
    return st->distinct ? list_offer_distinct(st, &it) : list_insert(st, &it);
}

/* A merge candidate: an item of either list; `mine` items are owned by the destination. */
struct cand {
    struct item it;
    int mine;
    int drop;
};

static int cand_cmp_enc(const void *a, const void *b)
{
    return enc_cmp_q(&((const struct cand *)a)->it, &((const struct cand *)b)->it);
}

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->drop != y->drop)
        return x->drop - y->drop;
    return item_cmp(&x->it, &y->it);
}

/* Merges by sorting the union and keeping the limit best; for distinct lists each value keeps
 * its best occurrence first. Leaves the destination unchanged on SL_ENOMEM. */
static int list_merge(void *ctx, const struct sl_agg_spec *spec, const void *other)
{
    struct list_st *st = ctx;
    const struct list_st *o = other;
    size_t total = st->n + o->n, m = 0, nk, keep, from, i;
    struct cand *c;
    struct item *nv;
    (void)spec;
    if (o->n == 0)
        return 0;
    c = malloc(total * sizeof *c);
    if (!c)
        return SL_ENOMEM;
    for (i = 0; i < st->n; i++)
        c[m++] = (struct cand){st->v[i], 1, 0};
    for (i = 0; i < o->n; i++)
        c[m++] = (struct cand){o->v[i], 0, 0};
    if (st->distinct) {
        qsort(c, total, sizeof *c, cand_cmp_enc);
        for (i = 0; i < total;) {
            size_t j = i;
            while (j + 1 < total &&
                   bytes_cmp(c[j + 1].it.enc, c[j + 1].it.len, c[i].it.enc, c[i].it.len) == 0)
                j++;
            size_t best = st->keep_last ? j : i;
            for (size_t k = i; k <= j; k++)
                c[k].drop = k != best;
            i = j + 1;
        }
    }
    qsort(c, total, sizeof *c, cand_cmp);
    for (nk = 0; nk < total && !c[nk].drop; nk++)
        ;
    keep = nk < st->limit ? nk : st->limit;
    from = st->keep_last ? nk - keep : 0;
    nv = malloc((keep ? keep : 1) * sizeof *nv);
    if (!nv) {
        free(c);
        return SL_ENOMEM;
    }
    for (i = 0; i < keep; i++) {
        const struct cand *x = &c[from + i];
        if (x->mine) {
            nv[i] = x->it;
        } else if (item_copy(&nv[i], &x->it)) {
            while (i-- > 0)
                if (!c[from + i].mine)
                    free(nv[i].enc);
            free(nv);
            free(c);
            return SL_ENOMEM;
        }
    }
    for (i = 0; i < total; i++)
        if ((i < from || i >= from + keep) && c[i].mine)
            free(c[i].it.enc);
    free(c);
    free(st->v);
    st->v = nv;
    st->n = keep;
    st->cap = keep ? keep : 1;
    return 0;
}

static int list_finalize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct list_st *st = ctx;
    (void)spec;
    if (st->n == 0) {
        sl_buf_puts(out, "null");
        return out->oom ? SL_ENOMEM : 0;
    }
    sl_buf_putc(out, '[');
    for (size_t i = 0; i < st->n; i++) {
        if (i)
            sl_buf_putc(out, ',');
        sl_buf_append(out, st->v[i].enc, st->v[i].len);
    }
    sl_buf_putc(out, ']');
    return out->oom ? SL_ENOMEM : 0;
}

static int list_serialize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct list_st *st = ctx;
    int64_t prev = 0;
    (void)spec;
    sl_agg_put_uvarint(out, st->n);
    for (size_t i = 0; i < st->n; i++) {
        item_put(out, &st->v[i], prev);
        prev = st->v[i].ts;
    }
    return out->oom ? SL_ENOMEM : 0;
}

static int list_deserialize(void *ctx, const struct sl_agg_spec *spec, const void *p, size_t len)
{
    struct list_st *st = ctx;
    struct sl_agg_rd r = {p, len};
    uint64_t n;
    int64_t prev = 0;
    int rc;
    (void)spec;
    if (sl_agg_get_uvarint(&r, &n) || n > st->limit)
        return SL_ECORRUPT;
    if (list_reserve(st, (size_t)n))
        return SL_ENOMEM;
    for (uint64_t i = 0; i < n; i++) {
        struct item *it = &st->v[st->n];
        if ((rc = item_get(&r, it, prev)) != 0)
            return rc;
        st->n++;
        /* Ascending; equal neighbours are legitimate (the same event fed twice). */
        if (st->n > 1 && item_cmp(&st->v[st->n - 2], it) > 0)
            return SL_ECORRUPT;
        prev = it->ts;
    }
    if (st->distinct && st->n > 1) {
        /* Encodings must be unique. */
        struct item *tmp = malloc(st->n * sizeof *tmp);
        if (!tmp)
            return SL_ENOMEM;
        memcpy(tmp, st->v, st->n * sizeof *tmp);
        qsort(tmp, st->n, sizeof *tmp, enc_cmp_q);
        for (size_t i = 1; i < st->n; i++) {
            if (bytes_cmp(tmp[i - 1].enc, tmp[i - 1].len, tmp[i].enc, tmp[i].len) == 0) {
                free(tmp);
                return SL_ECORRUPT;
            }
        }
        free(tmp);
    }
    return done(&r);
}

#define LIST_FN(var, label, params, check, name)                                              \
    const struct sl_agg_fn var = {                                                            \
        ABI, label, params, check, name, list_init, list_update, list_merge,                 \
        list_finalize, list_serialize, list_deserialize, list_free,                           \
    };
LIST_FN(sl_agg_fn_last_n, "last_n", SL_AGG_P_N, last_n_check, last_n_name)
LIST_FN(sl_agg_fn_first_n, "first_n", SL_AGG_P_N, first_n_check, first_n_name)
LIST_FN(sl_agg_fn_last_distinct, "last_distinct", SL_AGG_P_N, last_distinct_check,
        last_distinct_name)
LIST_FN(sl_agg_fn_first_distinct, "first_distinct", SL_AGG_P_N, first_distinct_check,
        first_distinct_name)
