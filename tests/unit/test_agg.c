/* Unit tests of the aggregation engine (core/agg.h): every function against a brute-force
 * reference over random event streams (one state vs random tiles merged in random order),
 * byte round trips and corrupt input, tiles and read plans, lifetime and continuous windows,
 * spec validation and names, the registry. Fixed seeds: failures reproduce. */
#include "check_fast.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "agg_sketch.h"
#include "buf.h"
#include "error.h"
#include "timeutil.h"
#include "types.h"

#define MIN_NS (60 * SL_NS_PER_SEC)
#define HOUR_NS (60 * MIN_NS)
#define DAY_NS (24 * HOUR_NS)

/* ---- helpers ------------------------------------------------------------------------------ */

struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    /* xorshift64* */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * UINT64_C(2685821657736338717);
}

static uint64_t rnd_below(struct rng *r, uint64_t n)
{
    return n ? rnd(r) % n : 0;
}

static double rnd_unit(struct rng *r)
{
    return (double)(rnd(r) >> 11) / 9007199254740992.0;
}

static void shuffle(struct rng *r, size_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rnd_below(r, i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

static const char *type_json(enum sl_kind k)
{
    switch (k) {
    case SL_STRING: return "{\"type\":\"string\"}";
    case SL_INT64: return "{\"type\":\"int64\"}";
    case SL_INT32: return "{\"type\":\"int32\"}";
    case SL_FLOAT64: return "{\"type\":\"float64\"}";
    case SL_FLOAT32: return "{\"type\":\"float32\"}";
    case SL_BOOL: return "{\"type\":\"boolean\"}";
    case SL_TIMESTAMP: return "{\"type\":\"timestamp\"}";
    case SL_ARRAY: return "{\"type\":\"array\",\"elementType\":{\"type\":\"int64\"}}";
    default: return "{\"type\":\"string\"}";
    }
}

static struct sl_agg_spec *spec_from_text(const char *text, int64_t interval)
{
    struct sl_error err = {0, ""};
    struct sl_agg_spec *spec = NULL;
    cJSON *j = cJSON_Parse(text);
    ck_assert_msg(j != NULL, "bad test JSON: %s", text);
    int rc = sl_agg_spec_from_cjson(j, interval, &spec, &err);
    ck_assert_msg(rc == 0, "spec %s: %s", text, err.msg);
    cJSON_Delete(j);
    return spec;
}

static struct sl_agg_spec *mkspec(const char *fn, const char *params, enum sl_kind k,
                                  const char *window, const char *offset, int64_t interval)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"kind\":\"aggregate\",\"column\":\"x\",\"function\":\"%s\",\"params\":%s,"
             "\"window\":\"%s\",\"offset\":\"%s\",\"input_type\":%s}",
             fn, params ? params : "{}", window, offset ? offset : "0s", type_json(k));
    return spec_from_text(text, interval);
}

/* Expects resolve to fail with a message containing `want`. */
static void expect_invalid(const char *text, int64_t interval, const char *want)
{
    struct sl_error err = {0, ""};
    struct sl_agg_spec *spec = NULL;
    cJSON *j = cJSON_Parse(text);
    ck_assert(j != NULL);
    int rc = sl_agg_spec_from_cjson(j, interval, &spec, &err);
    ck_assert_msg(rc == SL_ESCHEMA, "expected SL_ESCHEMA for %s, got %d", text, rc);
    ck_assert_msg(spec == NULL, "no spec on failure");
    ck_assert_msg(strstr(err.msg, want) != NULL, "message \"%s\" lacks \"%s\"", err.msg, want);
    cJSON_Delete(j);
}

/* One test event. Values borrow bytes from the event itself, so events are never copied:
 * tests shuffle index arrays instead. */
struct tev {
    int64_t ts;
    uint64_t seq;
    struct sl_scalar v;
    char str[48];
};

static void set_value(struct rng *r, struct tev *e, enum sl_kind k, int domain)
{
    memset(&e->v, 0, sizeof e->v);
    e->v.kind = k;
    if (rnd_below(r, 10) == 0) {
        e->v.null = 1;
        return;
    }
    int64_t x = (int64_t)rnd_below(r, (uint64_t)domain) - domain / 3;
    switch (k) {
    case SL_INT64:
        if (rnd_below(r, 50) == 0)
            x = rnd_below(r, 2) ? INT64_MAX - (int64_t)rnd_below(r, 5)
                                : INT64_MIN + (int64_t)rnd_below(r, 5);
        e->v.i = x;
        e->v.f = (double)x;
        break;
    case SL_INT32:
    case SL_BOOL:
        e->v.i = k == SL_BOOL ? (x & 1) : x;
        e->v.f = (double)e->v.i;
        break;
    case SL_TIMESTAMP:
        e->v.i = INT64_C(1672531200000000000) + x * 1000000;
        e->v.f = (double)e->v.i;
        break;
    case SL_FLOAT64:
        e->v.f = (rnd_unit(r) - 0.4) * 2000.0;
        if (rnd_below(r, 4) == 0)
            e->v.f = (double)x / 8.0; /* repeats, for distinct-ish inputs */
        break;
    case SL_FLOAT32:
        e->v.f = (float)((rnd_unit(r) - 0.4) * 2000.0);
        break;
    case SL_STRING:
        snprintf(e->str, sizeof e->str, "s%03lld", (long long)(x + domain));
        e->v.str = e->str;
        e->v.len = strlen(e->str);
        break;
    case SL_ARRAY:
        snprintf(e->str, sizeof e->str, "[\"%lld\",\"%lld\"]", (long long)x, (long long)(x % 7));
        e->v.str = e->str;
        e->v.len = strlen(e->str);
        break;
    default:
        break;
    }
}

/* n events with ts in [t0, t0 + span); some share a timestamp, some sit on tile boundaries
 * (multiples of `grid`). seq is the write order. */
static void gen_events(struct rng *r, struct tev *ev, size_t n, enum sl_kind k, int domain,
                       int64_t t0, int64_t span, int64_t grid)
{
    for (size_t i = 0; i < n; i++) {
        struct tev *e = &ev[i];
        uint64_t c = rnd_below(r, 10);
        if (c == 0 && i > 0)
            e->ts = ev[rnd_below(r, i)].ts;
        else if (c == 1 && grid > 0)
            e->ts = t0 + (int64_t)rnd_below(r, (uint64_t)(span / grid)) * grid -
                    (int64_t)rnd_below(r, 2);
        else
            e->ts = t0 + (int64_t)rnd_below(r, (uint64_t)span);
        e->seq = i + 1;
        set_value(r, e, k, domain);
    }
}

/* The reference encoding of a value of kind k (independent of the engine's code). */
static void ref_enc(struct sl_buf *b, enum sl_kind k, const struct sl_scalar *v)
{
    char tmp[64];
    switch (k) {
    case SL_INT64: sl_buf_printf(b, "\"%lld\"", (long long)v->i); break;
    case SL_INT32: sl_buf_printf(b, "%lld", (long long)v->i); break;
    case SL_BOOL: sl_buf_puts(b, v->i ? "true" : "false"); break;
    case SL_STRING: sl_buf_printf(b, "\"%.*s\"", (int)v->len, v->str); break;
    case SL_ARRAY: sl_buf_append(b, v->str, v->len); break;
    case SL_TIMESTAMP: sl_time_format(v->i, tmp); sl_buf_printf(b, "\"%s\"", tmp); break;
    case SL_FLOAT64:
    case SL_FLOAT32:
        if (isnan(v->f))
            sl_buf_puts(b, "\"NaN\"");
        else if (isinf(v->f))
            sl_buf_puts(b, v->f > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        else if (k == SL_FLOAT32)
            sl_buf_append(b, tmp, sl_value_format_float((float)v->f, tmp));
        else
            sl_buf_append(b, tmp, sl_value_format_double(v->f, tmp));
        break;
    default: break;
    }
}

static int fn_is(const struct sl_agg_spec *spec, const char *name)
{
    return strcmp(spec->fn->name, name) == 0;
}

static int total_cmp(double a, double b)
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

static int dbl_cmp_q(const void *a, const void *b)
{
    return total_cmp(*(const double *)a, *(const double *)b);
}

/* Reference items for ordered functions. */
struct ritem {
    int64_t ts;
    uint64_t seq;
    char enc[64];
};

static int ritem_cmp(const void *a, const void *b)
{
    const struct ritem *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    size_t lx = strlen(x->enc), ly = strlen(y->enc);
    int c = memcmp(x->enc, y->enc, lx < ly ? lx : ly);
    return c ? c : (lx < ly ? -1 : lx > ly);
}

static int ritem_enc_cmp(const void *a, const void *b)
{
    const struct ritem *x = a, *y = b;
    int c = strcmp(x->enc, y->enc);
    return c ? c : ritem_cmp(a, b);
}

static int str_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static double num(const struct sl_scalar *v, enum sl_kind k)
{
    return (k == SL_INT64 || k == SL_INT32) ? (double)v->i : v->f;
}

/* Parses an engine float output: returns 0 for null, 1 for a value in *x. */
static int parse_float(const char *got, double *x)
{
    if (strcmp(got, "null") == 0)
        return 0;
    if (strcmp(got, "\"NaN\"") == 0)
        *x = NAN;
    else if (strcmp(got, "\"Infinity\"") == 0)
        *x = INFINITY;
    else if (strcmp(got, "\"-Infinity\"") == 0)
        *x = -INFINITY;
    else {
        char *end;
        *x = strtod(got, &end);
        ck_assert_msg(*end == 0, "not a JSON number: %s", got);
    }
    return 1;
}

static void check_float(const char *what, const char *got, int has, long double want,
                        long double scale)
{
    double x;
    int g = parse_float(got, &x);
    ck_assert_msg(g == has, "%s: got %s, want %s", what, got, has ? "a value" : "null");
    if (!has)
        return;
    if (isnan((double)want) || isinf((double)want)) {
        ck_assert_msg(total_cmp(x, (double)want) == 0, "%s: got %s want %Lg", what, got, want);
        return;
    }
    long double tol = 1e-9L * fmaxl(fabsl(want), scale);
    ck_assert_msg(fabsl((long double)x - want) <= tol, "%s: got %s want %.17Lg (tol %Lg)", what,
                  got, want, tol);
}

/* Checks the engine's output `got` for the non-null values among w[0..m) (events inside the
 * window) against a brute-force computation. */
static void check_result(const struct sl_agg_spec *spec, struct tev *const *w, size_t m,
                         const char *got, const char *what)
{
    enum sl_kind k = spec->input_type->kind;
    struct sl_buf exp = SL_BUF_INIT;
    size_t nn = 0;
    struct tev **v = malloc((m ? m : 1) * sizeof *v);
    ck_assert(v != NULL);
    for (size_t i = 0; i < m; i++)
        if (!w[i]->v.null)
            v[nn++] = w[i];

    if (fn_is(spec, "count")) {
        sl_buf_printf(&exp, "\"%zu\"", nn);
    } else if (fn_is(spec, "sum") && (k == SL_INT64 || k == SL_INT32)) {
        uint64_t s = 0;
        for (size_t i = 0; i < nn; i++)
            s += (uint64_t)v[i]->v.i;
        if (nn)
            sl_buf_printf(&exp, "\"%lld\"", (long long)(int64_t)s);
        else
            sl_buf_puts(&exp, "null");
    } else if (fn_is(spec, "sum") || fn_is(spec, "mean") || fn_is(spec, "var_pop") ||
               fn_is(spec, "var_samp") || fn_is(spec, "stddev_pop") ||
               fn_is(spec, "stddev_samp")) {
        long double s = 0, mag = 0, mean, m2 = 0, maxdev = 0;
        int nan = 0, pinf = 0, ninf = 0;
        size_t nf = 0;
        for (size_t i = 0; i < nn; i++) {
            double x = num(&v[i]->v, k);
            if (isnan(x))
                nan = 1;
            else if (isinf(x))
                *(x > 0 ? &pinf : &ninf) = 1;
            else {
                s += x;
                mag += fabsl((long double)x);
                nf++;
            }
        }
        mean = nf ? s / nf : 0;
        for (size_t i = 0; i < nn; i++) {
            double x = num(&v[i]->v, k);
            if (isfinite(x)) {
                m2 += (x - mean) * (x - mean);
                maxdev = fmaxl(maxdev, fabsl(x - mean));
            }
        }
        int nonfinite = nan || pinf || ninf;
        long double special = (nan || (pinf && ninf)) ? NAN : pinf ? INFINITY : -INFINITY;
        if (fn_is(spec, "sum"))
            check_float(what, got, nn > 0, nonfinite ? special : s, mag);
        else if (fn_is(spec, "mean"))
            check_float(what, got, nn > 0, nonfinite ? special : mean, mag / (nf ? nf : 1));
        else {
            int samp = strstr(spec->fn->name, "samp") != NULL;
            int sd = strncmp(spec->fn->name, "stddev", 6) == 0;
            int has = samp ? nn >= 2 : nn >= 1;
            long double var = nonfinite || !has ? NAN : m2 / (samp ? nf - 1 : nf);
            long double want = nonfinite ? NAN : sd ? sqrtl(var) : var;
            check_float(what, got, has, want, sd ? maxdev * 1e-4L : maxdev * maxdev * 1e-8L);
        }
        free(v);
        sl_buf_free(&exp);
        return;
    } else if (fn_is(spec, "min") || fn_is(spec, "max")) {
        int want = fn_is(spec, "max") ? 1 : -1;
        const struct tev *best = NULL;
        for (size_t i = 0; i < nn; i++) {
            const struct tev *e = v[i];
            int c;
            if (!best)
                c = 1;
            else if (k == SL_FLOAT64 || k == SL_FLOAT32)
                c = total_cmp(e->v.f, best->v.f) * want;
            else if (k == SL_STRING)
                c = strcmp(e->str, best->str) * want;
            else
                c = (e->v.i < best->v.i ? -1 : e->v.i > best->v.i) * want;
            if (c > 0)
                best = e;
        }
        if (best)
            ref_enc(&exp, k, &best->v);
        else
            sl_buf_puts(&exp, "null");
    } else if (fn_is(spec, "last") || fn_is(spec, "last_n") || fn_is(spec, "first_n") ||
               fn_is(spec, "last_distinct") || fn_is(spec, "first_distinct")) {
        struct ritem *it = calloc(nn ? nn : 1, sizeof *it);
        ck_assert(it != NULL);
        size_t ni = nn;
        for (size_t i = 0; i < nn; i++) {
            struct sl_buf b = SL_BUF_INIT;
            ref_enc(&b, k, &v[i]->v);
            ck_assert(b.len < sizeof it[i].enc);
            memcpy(it[i].enc, b.p, b.len);
            it[i].ts = v[i]->ts;
            it[i].seq = v[i]->seq;
            sl_buf_free(&b);
        }
        int last = fn_is(spec, "last") || fn_is(spec, "last_n") || fn_is(spec, "last_distinct");
        if (strstr(spec->fn->name, "distinct")) {
            /* One item per value: its latest (last_) or earliest (first_) occurrence. */
            qsort(it, nn, sizeof *it, ritem_enc_cmp);
            size_t o = 0;
            for (size_t i = 0; i < nn;) {
                size_t j = i;
                while (j + 1 < nn && strcmp(it[j + 1].enc, it[i].enc) == 0)
                    j++;
                it[o++] = it[last ? j : i];
                i = j + 1;
            }
            ni = o;
        }
        qsort(it, ni, sizeof *it, ritem_cmp);
        size_t lim = fn_is(spec, "last") ? 1 : (size_t)spec->params.n;
        size_t keep = ni < lim ? ni : lim, from = last ? ni - keep : 0;
        if (keep == 0)
            sl_buf_puts(&exp, "null");
        else if (fn_is(spec, "last"))
            sl_buf_puts(&exp, it[ni - 1].enc);
        else {
            sl_buf_putc(&exp, '[');
            for (size_t i = 0; i < keep; i++) {
                if (i)
                    sl_buf_putc(&exp, ',');
                sl_buf_puts(&exp, it[from + i].enc);
            }
            sl_buf_putc(&exp, ']');
        }
        free(it);
    } else if (fn_is(spec, "approx_count_distinct")) {
        char **keys = calloc(nn ? nn : 1, sizeof *keys);
        size_t d = 0;
        ck_assert(keys != NULL);
        for (size_t i = 0; i < nn; i++) {
            struct sl_buf b = SL_BUF_INIT;
            if (k == SL_STRING)
                sl_buf_append(&b, v[i]->v.str, v[i]->v.len);
            else
                sl_buf_printf(&b, "%lld", (long long)v[i]->v.i);
            keys[i] = (char *)sl_buf_cstr(&b);
        }
        qsort(keys, nn, sizeof *keys, str_ptr_cmp);
        for (size_t i = 0; i < nn; i++)
            d += i == 0 || strcmp(keys[i], keys[i - 1]) != 0;
        for (size_t i = 0; i < nn; i++)
            free(keys[i]);
        free(keys);
        char *end;
        ck_assert_msg(got[0] == '"', "%s: int64 must be quoted: %s", what, got);
        double e = strtod(got + 1, &end);
        double sigma = 1.04 / sqrt((double)(1 << spec->params.precision));
        ck_assert_msg(fabs(e - (double)d) <= 5 * sigma * (double)d + 1.0,
                      "%s: approx_count_distinct %s vs exact %zu", what, got, d);
        free(v);
        sl_buf_free(&exp);
        return;
    } else if (fn_is(spec, "approx_percentile")) {
        double *xs = malloc((nn ? nn : 1) * sizeof *xs), x;
        ck_assert(xs != NULL);
        for (size_t i = 0; i < nn; i++)
            xs[i] = num(&v[i]->v, k);
        qsort(xs, nn, sizeof *xs, dbl_cmp_q);
        int has = parse_float(got, &x);
        ck_assert_msg(has == (nn > 0), "%s: got %s for %zu values", what, got, nn);
        if (nn) {
            size_t idx = (size_t)floor(spec->params.percentile * (double)(nn - 1));
            double want = xs[idx], alpha = 1.0 / spec->params.precision;
            if (!isfinite(want))
                ck_assert_msg(total_cmp(x, want) == 0, "%s: %s vs %g", what, got, want);
            else if (fabs(want) < 1e-300)
                ck_assert_msg(x == 0.0, "%s: %s vs %g", what, got, want);
            else
                ck_assert_msg(fabs(x - want) <= alpha * fabs(want) * (1 + 1e-9),
                              "%s: p%g of %zu values: got %s, exact %.17g, alpha %g", what,
                              spec->params.percentile, nn, got, want, alpha);
        }
        free(xs);
        free(v);
        sl_buf_free(&exp);
        return;
    } else {
        ck_abort_msg("no reference for %s", spec->fn->name);
    }
    ck_assert_msg(strcmp(got, sl_buf_cstr(&exp)) == 0, "%s: %s over %zu values: got %s want %s",
                  what, spec->fn->name, nn, got, sl_buf_cstr(&exp));
    free(v);
    sl_buf_free(&exp);
}

static int exact_output(const struct sl_agg_spec *spec)
{
    enum sl_kind k = spec->input_type->kind;
    if (fn_is(spec, "sum"))
        return k == SL_INT64 || k == SL_INT32;
    return !(fn_is(spec, "mean") || strstr(spec->fn->name, "var_") ||
             strstr(spec->fn->name, "stddev_"));
}

/* Finalizes st into a NUL-terminated string (caller frees). */
static char *final_str(struct sl_agg_state *st)
{
    struct sl_buf b = SL_BUF_INIT;
    ck_assert_int_eq(sl_agg_finalize(st, &b), 0);
    sl_buf_cstr(&b);
    return sl_buf_detach(&b, NULL);
}

/* Feeds the events idx[0..n) into a new state of spec. */
static struct sl_agg_state *feed(const struct sl_agg_spec *spec, struct tev *ev,
                                 const size_t *idx, size_t n)
{
    struct sl_agg_state *st;
    ck_assert_int_eq(sl_agg_state_new(spec, &st), 0);
    for (size_t i = 0; i < n; i++) {
        struct tev *e = &ev[idx[i]];
        ck_assert_int_eq(sl_agg_update(st, &e->v, e->ts, e->seq), 0);
    }
    return st;
}

static void serialize(const struct sl_agg_state *st, struct sl_buf *b)
{
    sl_buf_reset(b);
    ck_assert_int_eq(sl_agg_serialize(st, b), 0);
}

/* Truncations and byte flips of a valid state never crash; a truncation that still parses
 * must finalize. */
static void abuse_bytes(const struct sl_agg_spec *spec, const struct sl_buf *b, struct rng *r)
{
    struct sl_agg_state *st;
    struct sl_buf out = SL_BUF_INIT;
    char *copy = malloc(b->len ? b->len : 1);
    ck_assert(copy != NULL);
    ck_assert_int_eq(sl_agg_state_new(spec, &st), 0);
    for (size_t cut = 1; cut < b->len; cut += 1 + cut / 8) {
        int rc = sl_agg_deserialize(st, b->p, cut);
        ck_assert(rc == 0 || rc == SL_ECORRUPT);
        sl_buf_reset(&out);
        ck_assert_int_eq(sl_agg_finalize(st, &out), 0);
    }
    for (int k = 0; k < 16 && b->len > 1; k++) {
        memcpy(copy, b->p, b->len);
        copy[1 + rnd_below(r, b->len - 1)] ^= (char)(1 + rnd_below(r, 255));
        int rc = sl_agg_deserialize(st, copy, b->len);
        ck_assert(rc == 0 || rc == SL_ECORRUPT);
        sl_buf_reset(&out);
        ck_assert_int_eq(sl_agg_finalize(st, &out), 0);
        ck_assert_int_eq(sl_agg_merge_bytes(st, copy, b->len) <= 0, 1);
    }
    copy[0] = 99; /* unknown version */
    ck_assert_int_eq(sl_agg_deserialize(st, copy, b->len), SL_ECORRUPT);
    sl_agg_state_free(st);
    sl_buf_free(&out);
    free(copy);
}

/* The core property test: one state over all events == random tiles serialized and merged in
 * random order == a pairwise tree of serialized merges == the brute-force reference. */
static void property_run(const struct sl_agg_spec *spec, uint64_t seed, size_t maxn,
                         int domain)
{
    struct rng r = {seed * 0x9E3779B97F4A7C15ull + 1};
    size_t n = (size_t)rnd_below(&r, maxn + 1);
    struct tev *ev = calloc(n ? n : 1, sizeof *ev);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    struct tev **all = malloc((n ? n : 1) * sizeof *all);
    struct sl_buf b = SL_BUF_INIT;
    char what[160];
    ck_assert(ev && idx && all);
    gen_events(&r, ev, n, spec->input_type->kind, domain, 1000 * MIN_NS, 100 * MIN_NS, MIN_NS);
    for (size_t i = 0; i < n; i++) {
        idx[i] = i;
        all[i] = &ev[i];
    }
    snprintf(what, sizeof what, "%s seed %llu n %zu", spec->name, (unsigned long long)seed, n);

    /* (a) one state, events in random arrival order. */
    shuffle(&r, idx, n);
    struct sl_agg_state *one = feed(spec, ev, idx, n);
    char *got_a = final_str(one);
    check_result(spec, all, n, got_a, what);

    /* Round trip: deserialize(serialize(s)) serializes to the same bytes and value. */
    struct sl_buf b2 = SL_BUF_INIT;
    struct sl_agg_state *rt;
    serialize(one, &b);
    ck_assert_int_eq(sl_agg_state_new(spec, &rt), 0);
    ck_assert_int_eq(sl_agg_deserialize(rt, b.p, b.len), 0);
    serialize(rt, &b2);
    ck_assert_msg(b.len == b2.len && memcmp(b.p, b2.p, b.len) == 0, "%s: round trip bytes",
                  what);
    char *got_rt = final_str(rt);
    ck_assert_str_eq(got_rt, got_a);
    abuse_bytes(spec, &b, &r);

    /* (b) random tiles: each event to one of k parts, parts serialized, merged in random
     * order into an accumulator. */
    size_t k = 1 + (size_t)rnd_below(&r, 8);
    struct sl_buf *parts = calloc(k, sizeof *parts);
    size_t *pidx = malloc((n ? n : 1) * sizeof *pidx), *order = malloc(k * sizeof *order);
    ck_assert(parts && pidx && order);
    size_t *owner = malloc((n ? n : 1) * sizeof *owner);
    ck_assert(owner != NULL);
    for (size_t i = 0; i < n; i++)
        owner[i] = (size_t)rnd_below(&r, k);
    for (size_t p = 0; p < k; p++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (owner[idx[i]] == p)
                pidx[m++] = idx[i];
        struct sl_agg_state *st = feed(spec, ev, pidx, m);
        serialize(st, &parts[p]);
        sl_agg_state_free(st);
        order[p] = p;
    }
    shuffle(&r, order, k);
    struct sl_agg_state *acc;
    ck_assert_int_eq(sl_agg_state_new(spec, &acc), 0);
    for (size_t p = 0; p < k; p++)
        ck_assert_int_eq(sl_agg_merge_bytes(acc, parts[order[p]].p, parts[order[p]].len), 0);
    char *got_b = final_str(acc);
    check_result(spec, all, n, got_b, what);
    if (exact_output(spec))
        ck_assert_msg(strcmp(got_a, got_b) == 0, "%s: single %s vs merged %s", what, got_a,
                      got_b);

    /* (c) pairwise tree of serialized merges in another order (associativity). */
    shuffle(&r, order, k);
    struct sl_buf *lvl = calloc(k, sizeof *lvl);
    ck_assert(lvl != NULL);
    for (size_t p = 0; p < k; p++)
        sl_buf_append(&lvl[p], parts[order[p]].p, parts[order[p]].len);
    size_t cnt = k;
    while (cnt > 1) {
        size_t o = 0;
        for (size_t p = 0; p < cnt; p += 2) {
            struct sl_buf nb = SL_BUF_INIT;
            if (p + 1 < cnt)
                ck_assert_int_eq(sl_agg_merge_serialized(spec, lvl[p].p, lvl[p].len,
                                                         lvl[p + 1].p, lvl[p + 1].len, &nb),
                                 0);
            else
                sl_buf_append(&nb, lvl[p].p, lvl[p].len);
            sl_buf_free(&lvl[p]);
            if (p + 1 < cnt)
                sl_buf_free(&lvl[p + 1]);
            lvl[o++] = nb;
        }
        cnt = o;
    }
    struct sl_agg_state *tree;
    ck_assert_int_eq(sl_agg_state_new(spec, &tree), 0);
    ck_assert_int_eq(sl_agg_deserialize(tree, lvl[0].p, lvl[0].len), 0);
    char *got_c = final_str(tree);
    check_result(spec, all, n, got_c, what);
    if (exact_output(spec))
        ck_assert_str_eq(got_c, got_a);

    /* (d) in-memory merge of states equals too. */
    struct sl_agg_state *m1, *m2;
    size_t half = n / 2;
    m1 = feed(spec, ev, idx, half);
    m2 = feed(spec, ev, idx + half, n - half);
    ck_assert_int_eq(sl_agg_merge(m2, m1), 0);
    char *got_d = final_str(m2);
    check_result(spec, all, n, got_d, what);

    free(got_a);
    free(got_b);
    free(got_c);
    free(got_d);
    free(got_rt);
    sl_agg_state_free(one);
    sl_agg_state_free(rt);
    sl_agg_state_free(acc);
    sl_agg_state_free(tree);
    sl_agg_state_free(m1);
    sl_agg_state_free(m2);
    sl_buf_free(&lvl[0]);
    free(lvl);
    for (size_t p = 0; p < k; p++)
        sl_buf_free(&parts[p]);
    free(parts);
    free(pidx);
    free(owner);
    free(order);
    sl_buf_free(&b);
    sl_buf_free(&b2);
    free(ev);
    free(idx);
    free(all);
}

struct fcase {
    const char *fn;
    const char *params;
    enum sl_kind kind;
    int domain;
};

static const struct fcase fcases[] = {
    {"count", NULL, SL_INT64, 1000},
    {"count", NULL, SL_STRING, 50},
    {"count", NULL, SL_ARRAY, 50},
    {"count", NULL, SL_FLOAT64, 50},
    {"sum", NULL, SL_INT64, 100000},
    {"sum", NULL, SL_INT32, 1000},
    {"sum", NULL, SL_FLOAT64, 1000},
    {"sum", NULL, SL_FLOAT32, 1000},
    {"mean", NULL, SL_INT64, 1000},
    {"mean", NULL, SL_FLOAT64, 1000},
    {"var_pop", NULL, SL_FLOAT64, 1000},
    {"var_samp", NULL, SL_FLOAT64, 1000},
    {"var_samp", NULL, SL_INT32, 1000},
    {"stddev_pop", NULL, SL_FLOAT64, 1000},
    {"stddev_samp", NULL, SL_INT32, 1000},
    {"min", NULL, SL_INT64, 1000},
    {"min", NULL, SL_FLOAT64, 1000},
    {"min", NULL, SL_STRING, 300},
    {"min", NULL, SL_TIMESTAMP, 300},
    {"max", NULL, SL_INT64, 1000},
    {"max", NULL, SL_FLOAT32, 1000},
    {"max", NULL, SL_STRING, 300},
    {"max", NULL, SL_INT32, 300},
    {"last", NULL, SL_INT64, 1000},
    {"last", NULL, SL_STRING, 20},
    {"last", NULL, SL_ARRAY, 20},
    {"last", NULL, SL_BOOL, 2},
    {"last", NULL, SL_FLOAT64, 20},
    {"last_n", "{\"n\":1}", SL_INT64, 1000},
    {"last_n", "{\"n\":3}", SL_STRING, 20},
    {"last_n", "{\"n\":10}", SL_ARRAY, 20},
    {"last_n", "{\"n\":1000}", SL_INT64, 30},
    {"first_n", "{\"n\":1}", SL_STRING, 1000},
    {"first_n", "{\"n\":5}", SL_INT64, 20},
    {"first_n", "{\"n\":10}", SL_ARRAY, 20},
    {"first_n", "{\"n\":7}", SL_FLOAT64, 20},
    {"last_distinct", "{\"n\":1}", SL_STRING, 10},
    {"last_distinct", "{\"n\":5}", SL_STRING, 30},
    {"last_distinct", "{\"n\":10}", SL_INT64, 15},
    {"last_distinct", "{\"n\":1000}", SL_INT32, 2000},
    {"first_distinct", "{\"n\":1}", SL_INT64, 10},
    {"first_distinct", "{\"n\":5}", SL_STRING, 30},
    {"first_distinct", "{\"n\":10}", SL_INT64, 15},
    {"approx_count_distinct", NULL, SL_STRING, 300},
    {"approx_count_distinct", "{\"precision\":4}", SL_INT64, 1000},
    {"approx_count_distinct", "{\"precision\":12}", SL_INT32, 100000},
    {"approx_count_distinct", "{\"precision\":16}", SL_STRING, 100000},
    {"approx_percentile", "{\"percentile\":0.5}", SL_FLOAT64, 1000},
    {"approx_percentile", "{\"percentile\":0.99,\"precision\":20}", SL_FLOAT64, 1000},
    {"approx_percentile", "{\"percentile\":0,\"precision\":500}", SL_INT64, 100000},
    {"approx_percentile", "{\"percentile\":1}", SL_INT32, 1000},
    {"approx_percentile", "{\"percentile\":0.9,\"precision\":333}", SL_FLOAT32, 1000},
};
#define NFCASES (sizeof fcases / sizeof fcases[0])

START_TEST(test_property)
{
    const struct fcase *c = &fcases[_i];
    struct sl_agg_spec *spec = mkspec(c->fn, c->params, c->kind, "1h", NULL, 10 * MIN_NS);
    for (uint64_t seed = 1; seed <= 25; seed++)
        property_run(spec, seed + 1000 * (uint64_t)_i, seed < 20 ? 120 : 1500, c->domain);
    sl_agg_spec_free(spec);
}
END_TEST

/* ---- non-finite floats, empties, formats -------------------------------------------------- */

static char *eval_values(const struct sl_agg_spec *spec, const double *xs, size_t n)
{
    struct sl_agg_state *st;
    ck_assert_int_eq(sl_agg_state_new(spec, &st), 0);
    for (size_t i = 0; i < n; i++) {
        struct sl_scalar v = {.kind = spec->input_type->kind, .f = xs[i],
                              .i = isfinite(xs[i]) ? (int64_t)xs[i] : 0};
        ck_assert_int_eq(sl_agg_update(st, &v, (int64_t)i, i), 0);
    }
    char *s = final_str(st);
    sl_agg_state_free(st);
    return s;
}

static void expect_values(const char *fn, const char *params, enum sl_kind k, const double *xs,
                          size_t n, const char *want)
{
    struct sl_agg_spec *spec = mkspec(fn, params, k, "1h", NULL, 0);
    char *got = eval_values(spec, xs, n);
    ck_assert_msg(strcmp(got, want) == 0, "%s over %zu values: got %s want %s", fn, n, got,
                  want);
    free(got);
    sl_agg_spec_free(spec);
}

START_TEST(test_nonfinite_and_empty)
{
    double nan_mix[] = {1.0, NAN, 2.0};
    double pinf[] = {1.0, INFINITY, 2.0};
    double both[] = {-INFINITY, 1.0, INFINITY};
    double one[] = {4.5};
    double ints[] = {3, 4};
    double zero_mix[] = {-0.0, 0.0};
    double big[] = {1e308, 1e308};

    expect_values("sum", NULL, SL_FLOAT64, nan_mix, 3, "\"NaN\"");
    expect_values("sum", NULL, SL_FLOAT64, pinf, 3, "\"Infinity\"");
    expect_values("sum", NULL, SL_FLOAT64, both, 3, "\"NaN\"");
    expect_values("sum", NULL, SL_FLOAT64, big, 2, "\"Infinity\"");
    expect_values("mean", NULL, SL_FLOAT64, pinf, 3, "\"Infinity\"");
    expect_values("var_pop", NULL, SL_FLOAT64, pinf, 3, "\"NaN\"");
    expect_values("max", NULL, SL_FLOAT64, nan_mix, 3, "\"NaN\"");
    expect_values("min", NULL, SL_FLOAT64, nan_mix, 3, "1");
    expect_values("min", NULL, SL_FLOAT64, both, 3, "\"-Infinity\"");
    expect_values("min", NULL, SL_FLOAT64, zero_mix, 2, "-0");
    expect_values("max", NULL, SL_FLOAT64, zero_mix, 2, "0");
    expect_values("approx_percentile", "{\"percentile\":1}", SL_FLOAT64, nan_mix, 3, "\"NaN\"");
    expect_values("approx_percentile", "{\"percentile\":0}", SL_FLOAT64, both, 3,
                  "\"-Infinity\"");
    expect_values("approx_percentile", "{\"percentile\":0.5}", SL_FLOAT64, zero_mix, 2, "0");

    /* Empty windows: count 0, the others null. */
    static const char *nulls[] = {"sum", "mean", "min", "max", "last", "var_pop", "var_samp",
                                  "stddev_pop", "stddev_samp"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        expect_values(nulls[i], NULL, SL_FLOAT64, NULL, 0, "null");
    expect_values("count", NULL, SL_FLOAT64, NULL, 0, "\"0\"");
    expect_values("approx_count_distinct", NULL, SL_INT64, NULL, 0, "\"0\"");
    expect_values("approx_percentile", "{\"percentile\":0.5}", SL_FLOAT64, NULL, 0, "null");
    expect_values("last_n", "{\"n\":3}", SL_INT64, NULL, 0, "null");
    expect_values("first_distinct", "{\"n\":3}", SL_INT64, NULL, 0, "null");

    /* One value: sample statistics are null, population ones defined. */
    expect_values("var_samp", NULL, SL_FLOAT64, one, 1, "null");
    expect_values("stddev_samp", NULL, SL_FLOAT64, one, 1, "null");
    expect_values("var_pop", NULL, SL_FLOAT64, one, 1, "0");
    expect_values("stddev_pop", NULL, SL_FLOAT64, one, 1, "0");
    expect_values("mean", NULL, SL_FLOAT64, one, 1, "4.5");

    /* Output encodings. */
    expect_values("sum", NULL, SL_INT64, ints, 2, "\"7\"");
    expect_values("sum", NULL, SL_INT32, ints, 2, "\"7\"");
    expect_values("mean", NULL, SL_INT64, ints, 2, "3.5");
    expect_values("max", NULL, SL_INT32, ints, 2, "4");
    expect_values("max", NULL, SL_INT64, ints, 2, "\"4\"");
    expect_values("last_n", "{\"n\":2}", SL_INT64, ints, 2, "[\"3\",\"4\"]");
    expect_values("count", NULL, SL_INT64, ints, 2, "\"2\"");
    expect_values("approx_count_distinct", NULL, SL_INT64, ints, 2, "\"2\"");
    double f32[] = {(double)0.1f};
    expect_values("max", NULL, SL_FLOAT32, f32, 1, "0.1");
    expect_values("sum", NULL, SL_FLOAT32, f32, 1, "0.10000000149011612");
}
END_TEST

START_TEST(test_ties_and_nulls)
{
    /* Same timestamp: the later write (larger seq) wins, whatever the arrival order and
     * however the events are split into tiles. */
    struct sl_agg_spec *spec = mkspec("last", NULL, SL_STRING, "1h", NULL, 10 * MIN_NS);
    struct sl_agg_spec *ln = mkspec("last_n", "{\"n\":2}", SL_STRING, "1h", NULL, 10 * MIN_NS);
    struct sl_agg_spec *fn = mkspec("first_n", "{\"n\":2}", SL_STRING, "1h", NULL, 10 * MIN_NS);
    struct sl_scalar a = {.kind = SL_STRING, .str = "a", .len = 1};
    struct sl_scalar b = {.kind = SL_STRING, .str = "b", .len = 1};
    struct sl_scalar c = {.kind = SL_STRING, .str = "c", .len = 1};
    struct sl_scalar nul = {.kind = SL_STRING, .null = 1};
    struct sl_agg_state *s1, *s2, *s3;
    const struct sl_agg_spec *specs[] = {spec, ln, fn};
    const char *want[] = {"\"b\"", "[\"a\",\"b\"]", "[\"c\",\"a\"]"};
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(sl_agg_state_new(specs[k], &s1), 0);
        ck_assert_int_eq(sl_agg_state_new(specs[k], &s2), 0);
        ck_assert_int_eq(sl_agg_state_new(specs[k], &s3), 0);
        ck_assert_int_eq(sl_agg_update(s1, &b, 100, 7), 0);
        ck_assert_int_eq(sl_agg_update(s1, &nul, 500, 9), 0); /* nulls are excluded */
        ck_assert_int_eq(sl_agg_update(s2, &a, 100, 3), 0);
        ck_assert_int_eq(sl_agg_update(s3, &c, 50, 8), 0);
        ck_assert_int_eq(sl_agg_merge(s1, s2), 0);
        ck_assert_int_eq(sl_agg_merge(s3, s1), 0);
        char *got = final_str(s3);
        ck_assert_msg(strcmp(got, want[k]) == 0, "%s: %s", specs[k]->fn->name, got);
        free(got);
        sl_agg_state_free(s1);
        sl_agg_state_free(s2);
        sl_agg_state_free(s3);
    }
    /* The same event fed twice (equal ts, seq and value) is kept twice and survives a byte
     * round trip. */
    struct sl_buf bytes = SL_BUF_INIT;
    ck_assert_int_eq(sl_agg_state_new(ln, &s1), 0);
    ck_assert_int_eq(sl_agg_update(s1, &a, 5, 0), 0);
    ck_assert_int_eq(sl_agg_update(s1, &a, 5, 0), 0);
    serialize(s1, &bytes);
    ck_assert_int_eq(sl_agg_deserialize(s1, bytes.p, bytes.len), 0);
    char *dup = final_str(s1);
    ck_assert_str_eq(dup, "[\"a\",\"a\"]");
    free(dup);
    sl_buf_free(&bytes);
    sl_agg_state_free(s1);
    /* A value of the wrong kind is refused. */
    struct sl_scalar i = {.kind = SL_INT64, .i = 3};
    ck_assert_int_eq(sl_agg_state_new(spec, &s1), 0);
    ck_assert_int_eq(sl_agg_update(s1, &i, 1, 1), SL_EINVAL);
    sl_agg_state_free(s1);
    /* States of different functions do not merge. */
    ck_assert_int_eq(sl_agg_state_new(spec, &s1), 0);
    ck_assert_int_eq(sl_agg_state_new(fn, &s2), 0);
    ck_assert_int_eq(sl_agg_merge(s1, s2), SL_EINVAL);
    sl_agg_state_free(s1);
    sl_agg_state_free(s2);
    sl_agg_spec_free(spec);
    sl_agg_spec_free(ln);
    sl_agg_spec_free(fn);
}
END_TEST

START_TEST(test_distinct_semantics)
{
    /* last_distinct keeps each value's latest occurrence, oldest → newest. */
    struct sl_agg_spec *ld = mkspec("last_distinct", "{\"n\":2}", SL_STRING, "1h", NULL, 0);
    struct sl_agg_spec *fd = mkspec("first_distinct", "{\"n\":2}", SL_STRING, "1h", NULL, 0);
    const char *seqv[] = {"a", "b", "a", "c", "b", "a"};
    struct sl_agg_state *s, *f;
    ck_assert_int_eq(sl_agg_state_new(ld, &s), 0);
    ck_assert_int_eq(sl_agg_state_new(fd, &f), 0);
    for (int i = 0; i < 6; i++) {
        struct sl_scalar v = {.kind = SL_STRING, .str = seqv[i], .len = 1};
        ck_assert_int_eq(sl_agg_update(s, &v, 10 * i, (uint64_t)i), 0);
        ck_assert_int_eq(sl_agg_update(f, &v, 10 * i, (uint64_t)i), 0);
    }
    char *g1 = final_str(s), *g2 = final_str(f);
    ck_assert_str_eq(g1, "[\"b\",\"a\"]");
    ck_assert_str_eq(g2, "[\"a\",\"b\"]");
    free(g1);
    free(g2);
    sl_agg_state_free(s);
    sl_agg_state_free(f);
    sl_agg_spec_free(ld);
    sl_agg_spec_free(fd);
}
END_TEST

/* ---- sketches' accuracy ------------------------------------------------------------------- */

START_TEST(test_hll_accuracy)
{
    static const int ps[] = {4, 6, 8, 12, 16};
    for (size_t pi = 0; pi < sizeof ps / sizeof ps[0]; pi++) {
        char params[64];
        int p = ps[pi];
        snprintf(params, sizeof params, "{\"precision\":%d}", p);
        struct sl_agg_spec *spec = mkspec("approx_count_distinct", params, SL_INT64,
                                          "1h", NULL, 0);
        double sigma = 1.04 / sqrt((double)(1 << p));
        static const int64_t cards[] = {1, 3, 10, 50, 200, 1000, 5000, 30000};
        double sum_rel = 0;
        int trials = 0;
        for (size_t ci = 0; ci < sizeof cards / sizeof cards[0]; ci++) {
            int64_t card = cards[ci];
            int ntr = card > 20000 ? 3 : 6;
            for (int t = 0; t < ntr; t++) {
                struct sl_agg_state *st, *half;
                ck_assert_int_eq(sl_agg_state_new(spec, &st), 0);
                ck_assert_int_eq(sl_agg_state_new(spec, &half), 0);
                for (int64_t i = 0; i < card; i++) {
                    struct sl_scalar v = {.kind = SL_INT64,
                                          .i = i * 7919 + (int64_t)t * 1000003 + ci * 77};
                    /* every value twice, split over two states */
                    ck_assert_int_eq(sl_agg_update(st, &v, 0, 0), 0);
                    ck_assert_int_eq(sl_agg_update(i & 1 ? st : half, &v, 0, 0), 0);
                }
                ck_assert_int_eq(sl_agg_merge(st, half), 0);
                char *got = final_str(st);
                double e = strtod(got + 1, NULL), rel = fabs(e - (double)card) / (double)card;
                ck_assert_msg(rel <= 4 * sigma + 1.0 / (double)card,
                              "p=%d card=%lld: estimate %s (rel %.3f, sigma %.3f)", p,
                              (long long)card, got, rel, sigma);
                if (card >= 1000) {
                    sum_rel += rel;
                    trials++;
                }
                free(got);
                sl_agg_state_free(st);
                sl_agg_state_free(half);
            }
        }
        /* The mean absolute error of an unbiased estimator with standard error sigma is about
         * 0.8 sigma; allow sigma. */
        fprintf(stderr, "hll p=%d: mean relative error %.4f (1.04/sqrt(m) = %.4f)\n", p,
                sum_rel / trials, sigma);
        ck_assert_msg(sum_rel / trials <= sigma * 1.1, "p=%d: mean relative error %.4f > %.4f",
                      p, sum_rel / trials, sigma);
        sl_agg_spec_free(spec);
    }
}
END_TEST

START_TEST(test_percentile_accuracy)
{
    static const char *params[] = {
        "{\"percentile\":0.5,\"precision\":20}",  "{\"percentile\":0.01}",
        "{\"percentile\":0.999,\"precision\":500}", "{\"percentile\":0.25,\"precision\":57}",
    };
    struct rng r = {42};
    for (size_t pi = 0; pi < sizeof params / sizeof params[0]; pi++) {
        struct sl_agg_spec *spec = mkspec("approx_percentile", params[pi], SL_FLOAT64, "1h",
                                          NULL, 0);
        for (int dist = 0; dist < 4; dist++) {
            size_t n = 20000;
            struct tev *ev = calloc(n, sizeof *ev);
            struct tev **all = malloc(n * sizeof *all);
            size_t *idx = malloc(n * sizeof *idx);
            ck_assert(ev && all && idx);
            for (size_t i = 0; i < n; i++) {
                double u = rnd_unit(&r) + 1e-12, x;
                switch (dist) {
                case 0: x = u * 1000; break;                                   /* uniform */
                case 1: x = exp(10 * (u - 0.3)); break;                         /* log-uniform */
                case 2: x = (rnd_below(&r, 2) ? -1 : 1) * exp(20 * u - 10); break; /* signed */
                default: x = rnd_below(&r, 5) == 0 ? 0.0 : -log(u) * 1e-3; break; /* exp+0s */
                }
                ev[i].v = (struct sl_scalar){.kind = SL_FLOAT64, .f = x};
                ev[i].ts = (int64_t)i;
                ev[i].seq = i;
                all[i] = &ev[i];
                idx[i] = i;
            }
            struct sl_agg_state *st = feed(spec, ev, idx, n);
            char *got = final_str(st);
            check_result(spec, all, n, got, params[pi]);
            free(got);
            sl_agg_state_free(st);
            free(ev);
            free(all);
            free(idx);
        }
        sl_agg_spec_free(spec);
    }
}
END_TEST

START_TEST(test_state_sizes)
{
    /* Compactness of typical states (bytes). */
    struct sl_agg_spec *c = mkspec("count", NULL, SL_INT64, "1h", NULL, 0);
    struct sl_agg_spec *h = mkspec("approx_count_distinct", NULL, SL_STRING, "1h", NULL, 0);
    struct sl_agg_state *st;
    struct sl_buf b = SL_BUF_INIT;
    struct sl_scalar v = {.kind = SL_INT64, .i = 5};
    ck_assert_int_eq(sl_agg_state_new(c, &st), 0);
    for (int i = 0; i < 100; i++)
        sl_agg_update(st, &v, 0, 0);
    serialize(st, &b);
    ck_assert_uint_eq(b.len, 2); /* version + varint(100) */
    sl_agg_state_free(st);
    ck_assert_int_eq(sl_agg_state_new(h, &st), 0);
    struct sl_scalar s = {.kind = SL_STRING, .str = "x", .len = 1};
    sl_agg_update(st, &s, 0, 0);
    serialize(st, &b);
    ck_assert_uint_le(b.len, 8); /* sparse */
    sl_agg_state_free(st);
    sl_buf_free(&b);
    sl_agg_spec_free(c);
    sl_agg_spec_free(h);
}
END_TEST

/* ---- tiles and plans ---------------------------------------------------------------------- */

static void check_plan_covers(const struct sl_agg_tiling *t, int64_t s, int64_t e,
                              const struct sl_agg_tile *p, size_t n)
{
    int64_t cur = s;
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_ge(p[i].level, 0);
        ck_assert_int_lt(p[i].level, t->nlevels);
        int64_t len = t->len[p[i].level];
        ck_assert_msg(p[i].start == cur, "gap or overlap at tile %zu: %lld vs %lld", i,
                      (long long)p[i].start, (long long)cur);
        int64_t r = p[i].start % len;
        ck_assert_msg(r == 0, "unaligned tile %lld of level %d", (long long)p[i].start,
                      p[i].level);
        cur += len;
    }
    ck_assert_msg(cur == e, "plan ends at %lld, window at %lld", (long long)cur, (long long)e);
}

START_TEST(test_plan_cover)
{
    struct rng r = {7};
    static const int64_t ivs[] = {MIN_NS, 10 * MIN_NS, HOUR_NS, DAY_NS, SL_NS_PER_SEC};
    static const int64_t ws[] = {1, 6, 24, 60, 1440, 10080, 43200};
    for (size_t a = 0; a < sizeof ivs / sizeof ivs[0]; a++) {
        for (size_t b = 0; b < sizeof ws / sizeof ws[0]; b++) {
            struct sl_agg_tiling t;
            int64_t w = ivs[a] * ws[b];
            ck_assert_int_eq(sl_agg_tiling_init(&t, ivs[a], w), 0);
            for (int k = 1; k < t.nlevels; k++)
                ck_assert_int_eq(t.len[k], t.len[k - 1] * SL_AGG_TILE_RATIO);
            for (int it = 0; it < 300; it++) {
                struct sl_agg_tile p[SL_AGG_PLAN_MAX];
                size_t n;
                /* windows end anywhere, including before the epoch */
                int64_t range = (INT64_C(1) << 61) / ivs[a];
                int64_t e = ((int64_t)rnd_below(&r, (uint64_t)range) - range / 4) * ivs[a];
                int64_t s = e - w;
                ck_assert_int_eq(sl_agg_plan(&t, s, e, p, SL_AGG_PLAN_MAX, &n), 0);
                check_plan_covers(&t, s, e, p, n);
                /* every event inside lies in exactly one planned tile, and that tile is one
                 * the write side merges the event into */
                for (int q = 0; q < 5; q++) {
                    int64_t ts = s + (int64_t)rnd_below(&r, (uint64_t)w);
                    struct sl_agg_tile wt[SL_AGG_MAX_LEVELS];
                    int nw = sl_agg_tiles_for_event(&t, ts, wt);
                    int hits = 0;
                    for (size_t i = 0; i < n; i++) {
                        if (ts >= p[i].start && ts < p[i].start + t.len[p[i].level]) {
                            hits++;
                            ck_assert_int_lt(p[i].level, nw);
                            ck_assert_int_eq(wt[p[i].level].start, p[i].start);
                        }
                    }
                    ck_assert_int_eq(hits, 1);
                }
            }
            /* empty range, unaligned range, small capacity */
            struct sl_agg_tile p[4];
            size_t n;
            ck_assert_int_eq(sl_agg_plan(&t, 0, 0, p, 4, &n), 0);
            ck_assert_uint_eq(n, 0);
            if (ivs[a] > 1) {
                ck_assert_int_eq(sl_agg_plan(&t, 1, ivs[a], p, 4, &n), SL_EINVAL);
                ck_assert_int_eq(sl_agg_plan(&t, ivs[a], 0, p, 4, &n), SL_EINVAL);
            }
        }
    }
}
END_TEST

START_TEST(test_plan_30d_1m)
{
    /* A 30-day window over 1-minute tiles reads a few dozen partials, never thousands. */
    struct sl_agg_spec *spec = mkspec("sum", NULL, SL_INT64, "30d", NULL, MIN_NS);
    struct rng r = {11};
    size_t worst = 0, total = 0;
    int runs = 5000;
    ck_assert_str_eq(spec->name, "x_sum_30d_1m");
    for (int i = 0; i < runs; i++) {
        struct sl_agg_tile p[SL_AGG_PLAN_MAX];
        size_t n;
        int64_t t = INT64_C(1700000000000000000) + (int64_t)rnd_below(&r, 400 * (uint64_t)DAY_NS);
        int64_t s, e;
        ck_assert_int_eq(sl_agg_plan_read(spec, t, p, SL_AGG_PLAN_MAX, &n), 0);
        sl_agg_window(spec, t, &s, &e);
        check_plan_covers(&spec->tiling, s, e, p, n);
        worst = n > worst ? n : worst;
        total += n;
    }
    ck_assert_msg(worst <= 100, "30d/1m plan read %zu keys", worst);
    ck_assert_msg(total / runs <= 40, "30d/1m plans average %zu keys", total / runs);
    fprintf(stderr, "30d/1m read plan: %d levels, worst %zu keys, mean %.1f\n",
            spec->tiling.nlevels, worst, (double)total / runs);
    /* 1h over 1m for comparison */
    struct sl_agg_spec *h = mkspec("sum", NULL, SL_INT64, "1h", NULL, MIN_NS);
    size_t worst_h = 0;
    for (int i = 0; i < 2000; i++) {
        struct sl_agg_tile p[SL_AGG_PLAN_MAX];
        size_t n;
        int64_t t = INT64_C(1700000000000000000) + (int64_t)rnd_below(&r, 40 * (uint64_t)DAY_NS);
        ck_assert_int_eq(sl_agg_plan_read(h, t, p, SL_AGG_PLAN_MAX, &n), 0);
        worst_h = n > worst_h ? n : worst_h;
    }
    fprintf(stderr, "1h/1m read plan: %d levels, worst %zu keys\n", h->tiling.nlevels, worst_h);
    ck_assert_uint_le(worst_h, 20);
    sl_agg_spec_free(spec);
    sl_agg_spec_free(h);
}
END_TEST

START_TEST(test_window_bounds)
{
    int64_t s, e;
    /* time_interval: the window ends at the last complete tile boundary <= t + offset */
    struct sl_agg_spec *sp = mkspec("count", NULL, SL_INT64, "1h", NULL, 10 * MIN_NS);
    int64_t T = 1000 * HOUR_NS;
    sl_agg_window(sp, T, &s, &e);
    ck_assert_int_eq(e, T);
    ck_assert_int_eq(s, T - HOUR_NS);
    sl_agg_window(sp, T - 1, &s, &e);
    ck_assert_int_eq(e, T - 10 * MIN_NS);
    sl_agg_window(sp, T + 10 * MIN_NS - 1, &s, &e);
    ck_assert_int_eq(e, T);
    sl_agg_window(sp, -1, &s, &e); /* before the epoch: floor, not truncation */
    ck_assert_int_eq(e, -10 * MIN_NS);
    ck_assert_int_eq(sl_agg_horizon(sp, T + 5), T - HOUR_NS);
    sl_agg_spec_free(sp);

    sp = mkspec("count", NULL, SL_INT64, "1h", "-25m", 10 * MIN_NS);
    ck_assert_str_eq(sp->name, "x_count_1h_10m_offset_25m");
    sl_agg_window(sp, T, &s, &e);
    ck_assert_int_eq(e, T - 30 * MIN_NS);
    ck_assert_int_eq(s, T - 90 * MIN_NS);
    sl_agg_spec_free(sp);

    /* continuous: [t + offset - window, t + offset], both ends inclusive */
    sp = mkspec("count", NULL, SL_INT64, "1h", "-1m", 0);
    ck_assert_str_eq(sp->name, "x_count_1h_continuous_offset_1m");
    sl_agg_window(sp, T, &s, &e);
    ck_assert_int_eq(s, T - MIN_NS - HOUR_NS);
    ck_assert_int_eq(e, T - MIN_NS + 1);
    struct sl_scalar v = {.kind = SL_INT64, .i = 1};
    struct sl_agg_event ev[] = {
        {T - MIN_NS - HOUR_NS, 1, &v},     /* start: in */
        {T - MIN_NS - HOUR_NS - 1, 2, &v}, /* out */
        {T - MIN_NS, 3, &v},               /* end: in */
        {T - MIN_NS + 1, 4, &v},           /* out */
        {T - 30 * MIN_NS, 5, &v},          /* in */
    };
    struct sl_buf b = SL_BUF_INIT;
    ck_assert_int_eq(sl_agg_eval_events(sp, ev, 5, T, &b), 0);
    ck_assert_str_eq(sl_buf_cstr(&b), "\"3\"");
    ck_assert_int_eq(sl_agg_horizon(sp, T), T - MIN_NS - HOUR_NS);
    sl_buf_free(&b);
    ck_assert_int_eq(sl_agg_plan_read(sp, T, NULL, 0, &(size_t){0}), SL_EINVAL);
    sl_agg_spec_free(sp);

    /* lifetime */
    sp = mkspec("count", NULL, SL_INT64, "lifetime", NULL, 10 * MIN_NS);
    ck_assert_str_eq(sp->name, "x_count_lifetime_10m");
    sl_agg_window(sp, T + 1, &s, &e);
    ck_assert_int_eq(s, INT64_MIN);
    ck_assert_int_eq(e, T);
    ck_assert_int_eq(sl_agg_horizon(sp, T), INT64_MIN);
    sl_agg_spec_free(sp);

    /* tile keys sort like (level, start), negative starts included */
    struct sl_agg_tile tiles[] = {{0, -5}, {0, -1}, {0, 0}, {0, 7}, {0, INT64_MAX}, {1, INT64_MIN}};
    struct sl_buf kb[6];
    for (int i = 0; i < 6; i++) {
        struct sl_agg_tile back;
        kb[i] = (struct sl_buf)SL_BUF_INIT;
        sl_agg_tile_key(&kb[i], &tiles[i]);
        ck_assert_uint_eq(kb[i].len, SL_AGG_TILE_KEY_LEN);
        ck_assert_int_eq(sl_agg_tile_key_decode(kb[i].p, kb[i].len, &back), 0);
        ck_assert_int_eq(back.level, tiles[i].level);
        ck_assert_int_eq(back.start, tiles[i].start);
        if (i)
            ck_assert_int_lt(memcmp(kb[i - 1].p, kb[i].p, SL_AGG_TILE_KEY_LEN), 0);
    }
    for (int i = 0; i < 6; i++)
        sl_buf_free(&kb[i]);
}
END_TEST

/* A simulated online store: tile key → state bytes. */
struct kv {
    struct sl_agg_tile t;
    struct sl_buf v;
};

struct store {
    struct kv *kv;
    size_t n, cap;
};

static struct sl_buf *store_get(struct store *s, const struct sl_agg_tile *t, int create)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->kv[i].t.level == t->level && s->kv[i].t.start == t->start)
            return &s->kv[i].v;
    if (!create)
        return NULL;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->kv = realloc(s->kv, s->cap * sizeof *s->kv);
        ck_assert(s->kv != NULL);
    }
    s->kv[s->n].t = *t;
    s->kv[s->n].v = (struct sl_buf)SL_BUF_INIT;
    return &s->kv[s->n++].v;
}

static void store_free(struct store *s)
{
    for (size_t i = 0; i < s->n; i++)
        sl_buf_free(&s->kv[i].v);
    free(s->kv);
}

/* Events written out of order into tiles with the read-modify-write helper; reads at many
 * times through the read plan must equal the raw-event evaluation and the reference. */
static void tiled_run(const char *fn, const char *params, enum sl_kind k, const char *window,
                      const char *offset, int64_t interval, uint64_t seed)
{
    struct sl_agg_spec *spec = mkspec(fn, params, k, window, offset, interval);
    struct rng r = {seed};
    size_t n = 600;
    struct tev *ev = calloc(n, sizeof *ev);
    size_t *idx = malloc(n * sizeof *idx);
    struct tev **win = malloc(n * sizeof *win);
    struct sl_agg_event *raw = malloc(n * sizeof *raw);
    struct store store = {NULL, 0, 0};
    int64_t t0 = 500 * DAY_NS, span = spec->window * 3;
    ck_assert(ev && idx && win && raw);
    gen_events(&r, ev, n, k, 50, t0, span, interval);
    for (size_t i = 0; i < n; i++) {
        idx[i] = i;
        raw[i] = (struct sl_agg_event){ev[i].ts, ev[i].seq, &ev[i].v};
    }
    shuffle(&r, idx, n); /* arrival order differs from time order */
    for (size_t i = 0; i < n; i++) {
        struct tev *e = &ev[idx[i]];
        struct sl_agg_tile tiles[SL_AGG_MAX_LEVELS];
        int nt = sl_agg_tiles_for_event(&spec->tiling, e->ts, tiles);
        ck_assert_int_eq(nt, spec->tiling.nlevels);
        for (int l = 0; l < nt; l++) {
            struct sl_buf *old = store_get(&store, &tiles[l], 1), nb = SL_BUF_INIT;
            ck_assert_int_eq(sl_agg_apply(spec, old->p, old->len, &e->v, e->ts, e->seq, &nb), 0);
            sl_buf_free(old);
            *old = nb;
        }
    }
    /* Reads at boundaries and in between. */
    for (int q = 0; q < 120; q++) {
        int64_t t;
        if (q % 3 == 0)
            t = t0 + (int64_t)rnd_below(&r, (uint64_t)(span + spec->window));
        else
            t = t0 + (int64_t)rnd_below(&r, (uint64_t)((span + spec->window) / interval)) *
                         interval + (q % 3 == 1 ? 0 : -1);
        struct sl_agg_tile p[SL_AGG_PLAN_MAX];
        size_t np, m = 0;
        int64_t s, e;
        ck_assert_int_eq(sl_agg_plan_read(spec, t, p, SL_AGG_PLAN_MAX, &np), 0);
        struct sl_agg_state *acc;
        ck_assert_int_eq(sl_agg_state_new(spec, &acc), 0);
        for (size_t i = 0; i < np; i++) {
            struct sl_buf *v = store_get(&store, &p[i], 0);
            if (v)
                ck_assert_int_eq(sl_agg_merge_bytes(acc, v->p, v->len), 0);
        }
        char *got = final_str(acc);
        /* the window, computed here independently */
        int64_t x = t + spec->offset, end = x - (((x % interval) + interval) % interval);
        sl_agg_window(spec, t, &s, &e);
        ck_assert_int_eq(e, end);
        ck_assert_int_eq(s, end - spec->window);
        for (size_t i = 0; i < n; i++)
            if (ev[i].ts >= s && ev[i].ts < e)
                win[m++] = &ev[i];
        char what[128];
        snprintf(what, sizeof what, "%s tiled read at %lld (%zu tiles)", spec->name,
                 (long long)t, np);
        check_result(spec, win, m, got, what);
        struct sl_buf b = SL_BUF_INIT;
        ck_assert_int_eq(sl_agg_eval_events(spec, raw, n, t, &b), 0);
        if (exact_output(spec))
            ck_assert_msg(strcmp(got, sl_buf_cstr(&b)) == 0, "%s: tiles %s vs raw %s", what,
                          got, sl_buf_cstr(&b));
        else
            check_result(spec, win, m, sl_buf_cstr(&b), what);
        sl_buf_free(&b);
        free(got);
        sl_agg_state_free(acc);
    }
    store_free(&store);
    free(ev);
    free(idx);
    free(win);
    free(raw);
    sl_agg_spec_free(spec);
}

START_TEST(test_tiled_windows)
{
    tiled_run("count", NULL, SL_INT64, "1h", NULL, 10 * MIN_NS, 1);
    tiled_run("sum", NULL, SL_INT64, "2h", "-30m", 10 * MIN_NS, 2);
    tiled_run("sum", NULL, SL_FLOAT64, "1d", "-7m", HOUR_NS, 3);
    tiled_run("mean", NULL, SL_FLOAT64, "6h", NULL, 5 * MIN_NS, 4);
    tiled_run("stddev_samp", NULL, SL_INT64, "6h", NULL, 5 * MIN_NS, 5);
    tiled_run("max", NULL, SL_STRING, "1h", NULL, MIN_NS, 6);
    tiled_run("last", NULL, SL_INT64, "1h", "-1h", MIN_NS, 7);
    tiled_run("last_n", "{\"n\":5}", SL_STRING, "3h", NULL, 10 * MIN_NS, 8);
    tiled_run("first_n", "{\"n\":4}", SL_INT64, "3h", NULL, 10 * MIN_NS, 9);
    tiled_run("last_distinct", "{\"n\":3}", SL_STRING, "2h", NULL, MIN_NS, 10);
    tiled_run("first_distinct", "{\"n\":6}", SL_INT64, "2h", NULL, MIN_NS, 11);
    tiled_run("approx_count_distinct", NULL, SL_STRING, "1d", NULL, HOUR_NS, 12);
    tiled_run("approx_percentile", "{\"percentile\":0.75}", SL_FLOAT64, "1d", NULL, 10 * MIN_NS,
              13);
    tiled_run("var_pop", NULL, SL_FLOAT64, "30d", NULL, DAY_NS, 14);
}
END_TEST

/* ---- lifetime windows --------------------------------------------------------------------- */

static void lifetime_run(const char *fn, const char *params, enum sl_kind k, int64_t interval,
                         uint64_t seed)
{
    struct sl_agg_spec *spec = mkspec(fn, params, k, "lifetime", NULL, interval);
    struct rng r = {seed};
    size_t n = 400;
    struct tev *ev = calloc(n, sizeof *ev);
    struct tev **win = malloc(n * sizeof *win);
    struct sl_buf val = SL_BUF_INIT;
    int64_t t0 = 100 * DAY_NS, span = 3 * DAY_NS, maxts = INT64_MIN;
    int64_t len = interval > 0 ? interval : 1;
    ck_assert(ev && win);
    gen_events(&r, ev, n, k, 40, t0, span, interval);
    /* Mostly increasing with late events: sort by ts, then swap some neighbours. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && ev[j - 1].ts > ev[j].ts; j--) {
            struct tev tmp = ev[j];
            ev[j] = ev[j - 1];
            ev[j - 1] = tmp;
        }
    for (size_t i = 0; i < n; i++) {
        if (ev[i].v.kind == SL_STRING || ev[i].v.kind == SL_ARRAY)
            ev[i].v.str = ev[i].str; /* re-point after the moves */
        ev[i].seq = i + 1;
    }
    for (size_t i = 0; i + 1 < n; i += 7) { /* late arrivals */
        int64_t a = ev[i].ts;
        ev[i].ts = ev[i + 1].ts;
        ev[i + 1].ts = a;
    }
    for (size_t i = 0; i < n; i++) {
        struct sl_buf nb = SL_BUF_INIT;
        ck_assert_int_eq(sl_agg_lifetime_apply(spec, val.p, val.len, &ev[i].v, ev[i].ts,
                                               ev[i].seq, &nb), 0);
        sl_buf_free(&val);
        val = nb;
        maxts = ev[i].ts > maxts ? ev[i].ts : maxts;
        /* Read now and then at times >= the newest event's tile. */
        if (i % 37 == 0 || i == n - 1) {
            int64_t reads[] = {maxts, maxts - maxts % len + len, maxts + 5 * len + 3};
            for (int q = 0; q < 3; q++) {
                int64_t t = reads[q], s, e;
                size_t m = 0;
                sl_agg_window(spec, t, &s, &e);
                for (size_t j = 0; j <= i; j++)
                    if (ev[j].ts < e)
                        win[m++] = &ev[j];
                struct sl_agg_state *acc;
                ck_assert_int_eq(sl_agg_state_new(spec, &acc), 0);
                ck_assert_int_eq(sl_agg_lifetime_read(acc, val.p, val.len, t), 0);
                char *got = final_str(acc);
                char what[96];
                snprintf(what, sizeof what, "%s after %zu events, read %d", spec->name, i + 1, q);
                check_result(spec, win, m, got, what);
                free(got);
                sl_agg_state_free(acc);
            }
        }
    }
    /* A null changes nothing; a non-lifetime spec is refused; corrupt bytes are reported. */
    struct sl_scalar nul = {.kind = k, .null = 1};
    struct sl_buf nb = SL_BUF_INIT;
    ck_assert_int_eq(sl_agg_lifetime_apply(spec, val.p, val.len, &nul, 0, 0, &nb), 0);
    ck_assert(nb.len == val.len && memcmp(nb.p, val.p, val.len) == 0);
    sl_buf_reset(&nb);
    ck_assert_int_eq(sl_agg_lifetime_apply(spec, val.p, val.len - 1, &ev[0].v, 0, 0, &nb),
                     SL_ECORRUPT);
    sl_buf_free(&nb);
    sl_buf_free(&val);
    free(ev);
    free(win);
    sl_agg_spec_free(spec);
}

START_TEST(test_lifetime)
{
    lifetime_run("count", NULL, SL_INT64, 10 * MIN_NS, 1);
    lifetime_run("sum", NULL, SL_FLOAT64, HOUR_NS, 2);
    lifetime_run("last", NULL, SL_STRING, 10 * MIN_NS, 3);
    lifetime_run("first_n", "{\"n\":3}", SL_INT64, 10 * MIN_NS, 4);
    lifetime_run("max", NULL, SL_INT64, 0, 5);
    lifetime_run("last_distinct", "{\"n\":4}", SL_STRING, 0, 6);
    lifetime_run("approx_count_distinct", NULL, SL_INT64, 0, 7);
    lifetime_run("var_samp", NULL, SL_FLOAT64, 0, 8);

    /* time_interval: events of the still-open tile are not visible yet */
    struct sl_agg_spec *spec = mkspec("count", NULL, SL_INT64, "lifetime", NULL, HOUR_NS);
    struct sl_scalar v = {.kind = SL_INT64, .i = 1};
    struct sl_buf a = SL_BUF_INIT, b = SL_BUF_INIT;
    int64_t T = 1000 * HOUR_NS;
    ck_assert_int_eq(sl_agg_lifetime_apply(spec, NULL, 0, &v, T - 1, 1, &a), 0);
    ck_assert_int_eq(sl_agg_lifetime_apply(spec, a.p, a.len, &v, T + 5, 2, &b), 0);
    struct sl_agg_state *acc;
    ck_assert_int_eq(sl_agg_state_new(spec, &acc), 0);
    ck_assert_int_eq(sl_agg_lifetime_read(acc, b.p, b.len, T + 10), 0);
    char *got = final_str(acc);
    ck_assert_str_eq(got, "\"1\"");
    free(got);
    ck_assert_int_eq(sl_agg_state_reset(acc), 0);
    ck_assert_int_eq(sl_agg_lifetime_read(acc, b.p, b.len, T + HOUR_NS), 0);
    got = final_str(acc);
    ck_assert_str_eq(got, "\"2\"");
    free(got);
    sl_agg_state_free(acc);
    sl_buf_reset(&a);
    struct sl_agg_spec *win = mkspec("count", NULL, SL_INT64, "1h", NULL, HOUR_NS);
    ck_assert_int_eq(sl_agg_lifetime_apply(win, NULL, 0, &v, T, 1, &a), SL_EINVAL);
    sl_buf_free(&a);
    sl_buf_free(&b);
    sl_agg_spec_free(spec);
    sl_agg_spec_free(win);
}
END_TEST

/* ---- specs, names, types, errors ---------------------------------------------------------- */

static void expect_name(const char *json, int64_t interval, const char *name)
{
    struct sl_agg_spec *spec = spec_from_text(json, interval);
    ck_assert_str_eq(spec->name, name);
    sl_agg_spec_free(spec);
}

START_TEST(test_names)
{
    expect_name("{\"column\":\"amount\",\"function\":\"sum\",\"window\":\"1d\","
                "\"input_type\":{\"type\":\"float64\"}}", DAY_NS, "amount_sum_1d_1d");
    expect_name("{\"column\":\"clicked\",\"function\":\"count\",\"window\":\"30d\","
                "\"input_type\":{\"type\":\"int64\"}}", 10 * MIN_NS, "clicked_count_30d_10m");
    expect_name("{\"column\":\"clicked\",\"function\":\"sum\",\"window\":\"60m\","
                "\"input_type\":{\"type\":\"int64\"}}", 10 * MIN_NS, "clicked_sum_1h_10m");
    expect_name("{\"column\":\"amt\",\"function\":\"last_distinct\",\"params\":{\"n\":10},"
                "\"window\":\"1h\",\"input_type\":{\"type\":\"string\"}}", 10 * MIN_NS,
                "amt_last_distinct_10_1h_10m");
    expect_name("{\"column\":\"p\",\"function\":\"last_distinct\",\"params\":{\"n\":10},"
                "\"window\":\"1h\",\"input_type\":{\"type\":\"string\"}}", 0,
                "p_last_distinct_10_1h_continuous");
    expect_name("{\"column\":\"a\",\"function\":\"last\",\"params\":{\"n\":3},"
                "\"window\":\"2h\",\"input_type\":{\"type\":\"int64\"}}", HOUR_NS,
                "a_last_3_2h_1h");
    expect_name("{\"column\":\"a\",\"function\":\"first\",\"params\":{\"n\":3},"
                "\"window\":\"2h\",\"input_type\":{\"type\":\"int64\"}}", HOUR_NS,
                "a_first_3_2h_1h");
    expect_name("{\"column\":\"a\",\"function\":\"mean\",\"window\":\"lifetime\","
                "\"input_type\":{\"type\":\"int64\"}}", 0, "a_mean_lifetime_continuous");
    expect_name("{\"column\":\"a\",\"function\":\"approx_percentile\","
                "\"params\":{\"percentile\":0.5},\"window\":\"1d\","
                "\"input_type\":{\"type\":\"int64\"}}", HOUR_NS, "a_approx_percentile_p50_1d_1h");
    expect_name("{\"column\":\"a\",\"function\":\"approx_percentile\","
                "\"params\":{\"percentile\":0.999},\"window\":\"1d\","
                "\"input_type\":{\"type\":\"int64\"}}", HOUR_NS,
                "a_approx_percentile_p99_9_1d_1h");
    expect_name("{\"name\":\"recent_clicks\",\"column\":\"a\",\"function\":\"count\","
                "\"window\":\"1d\",\"input_type\":{\"type\":\"int64\"}}", HOUR_NS,
                "recent_clicks");
    expect_name("{\"column\":\"a\",\"function\":\"variance\",\"window\":\"90m\","
                "\"input_type\":{\"type\":\"int64\"}}", 0, "a_var_samp_90m_continuous");

    struct sl_buf b = SL_BUF_INIT;
    struct sl_error err;
    ck_assert_int_eq(sl_agg_default_name("amount", "sum", NULL, DAY_NS, 0, DAY_NS, &b, &err), 0);
    ck_assert_str_eq(sl_buf_cstr(&b), "amount_sum_1d_1d");
    sl_buf_reset(&b);
    ck_assert_int_eq(sl_agg_default_name("a", "median", NULL, DAY_NS, 0, DAY_NS, &b, &err),
                     SL_ESCHEMA);
    sl_buf_free(&b);
}
END_TEST

static void expect_type(const char *fn, const char *params, enum sl_kind in, const char *want)
{
    struct sl_error err = {0, ""};
    cJSON *tj = cJSON_Parse(type_json(in)), *pj = params ? cJSON_Parse(params) : NULL;
    struct sl_type *t = sl_type_from_cjson(tj, &err), *out = NULL;
    ck_assert(t != NULL);
    ck_assert_msg(sl_agg_output_type(fn, pj, t, &out, &err) == 0, "%s: %s", fn, err.msg);
    cJSON *oj = sl_type_to_cjson(out);
    char *txt = cJSON_PrintUnformatted(oj);
    ck_assert_msg(strcmp(txt, want) == 0, "%s over %s: %s", fn, type_json(in), txt);
    free(txt);
    cJSON_Delete(oj);
    cJSON_Delete(tj);
    cJSON_Delete(pj);
    sl_type_free(t);
    sl_type_free(out);
}

START_TEST(test_output_types)
{
    expect_type("count", NULL, SL_STRING, "{\"type\":\"int64\"}");
    expect_type("count", NULL, SL_ARRAY, "{\"type\":\"int64\"}");
    expect_type("sum", NULL, SL_INT32, "{\"type\":\"int64\"}");
    expect_type("sum", NULL, SL_INT64, "{\"type\":\"int64\"}");
    expect_type("sum", NULL, SL_FLOAT32, "{\"type\":\"float64\"}");
    expect_type("mean", NULL, SL_INT64, "{\"type\":\"float64\"}");
    expect_type("stddev", NULL, SL_INT64, "{\"type\":\"float64\"}");
    expect_type("var_pop", NULL, SL_FLOAT32, "{\"type\":\"float64\"}");
    expect_type("min", NULL, SL_STRING, "{\"type\":\"string\"}");
    expect_type("max", NULL, SL_INT32, "{\"type\":\"int32\"}");
    expect_type("last", NULL, SL_ARRAY,
                "{\"type\":\"array\",\"elementType\":{\"type\":\"int64\"}}");
    expect_type("last", NULL, SL_BOOL, "{\"type\":\"boolean\"}");
    expect_type("last_n", "{\"n\":2}", SL_FLOAT64,
                "{\"type\":\"array\",\"elementType\":{\"type\":\"float64\"}}");
    expect_type("first_n", "{\"n\":2}", SL_ARRAY,
                "{\"type\":\"array\",\"elementType\":{\"type\":\"array\",\"elementType\":"
                "{\"type\":\"int64\"}}}");
    expect_type("last_distinct", "{\"n\":2}", SL_STRING,
                "{\"type\":\"array\",\"elementType\":{\"type\":\"string\"}}");
    expect_type("approx_count_distinct", NULL, SL_STRING, "{\"type\":\"int64\"}");
    expect_type("approx_percentile", "{\"percentile\":0.5}", SL_INT32, "{\"type\":\"float64\"}");
}
END_TEST

#define FEAT(fn, extra, window, type)                                                         \
    "{\"column\":\"c\",\"function\":\"" fn "\"" extra ",\"window\":\"" window                 \
    "\",\"input_type\":{\"type\":\"" type "\"}}"

START_TEST(test_validation)
{
    expect_invalid(FEAT("sum", "", "1h", "string"), 0, "sum is not defined for string");
    expect_invalid(FEAT("sum", "", "1h", "string"), 0, "feature `c_sum_1h_continuous`");
    expect_invalid(FEAT("mean", "", "1h", "boolean"), 0, "mean is not defined for boolean");
    expect_invalid(FEAT("last_distinct", ",\"params\":{\"n\":3}", "1h", "float64"), 0,
                   "last_distinct is not defined for float64");
    expect_invalid(FEAT("median", "", "1h", "int64"), 0, "unknown aggregation function `median`");
    expect_invalid(FEAT("last_n", "", "1h", "int64"), 0, "last_n needs parameter n");
    expect_invalid(FEAT("last_n", ",\"params\":{\"n\":0}", "1h", "int64"), 0,
                   "n must be an integer between 1 and 1000");
    expect_invalid(FEAT("first_distinct", ",\"params\":{\"n\":1001}", "1h", "int64"), 0,
                   "between 1 and 1000");
    expect_invalid(FEAT("last_n", ",\"params\":{\"n\":2.5}", "1h", "int64"), 0, "integer");
    expect_invalid(FEAT("sum", ",\"params\":{\"n\":2}", "1h", "int64"), 0,
                   "sum takes no parameter `n`");
    expect_invalid(FEAT("approx_count_distinct", ",\"params\":{\"precision\":3}", "1h", "int64"),
                   0, "precision must be between 4 and 16");
    expect_invalid(FEAT("approx_count_distinct", ",\"params\":{\"precision\":17}", "1h",
                        "string"), 0, "between 4 and 16");
    expect_invalid(FEAT("approx_count_distinct", "", "1h", "float64"), 0,
                   "approx_count_distinct is not defined for float64");
    expect_invalid(FEAT("approx_percentile", "", "1h", "int64"), 0, "needs parameter percentile");
    expect_invalid(FEAT("approx_percentile", ",\"params\":{\"percentile\":1.5}", "1h", "int64"),
                   0, "between 0 and 1");
    expect_invalid(FEAT("approx_percentile",
                        ",\"params\":{\"percentile\":0.5,\"precision\":10}", "1h", "int64"),
                   0, "precision must be between 20 and 500");
    expect_invalid(FEAT("first", "", "1h", "int64"), 0, "first needs parameter n");
    expect_invalid(FEAT("sum", "", "1x", "int64"), 0, "window must be a duration");
    expect_invalid(FEAT("sum", "", "90s", "int64"), MIN_NS,
                   "window 90s must be a multiple of aggregation_interval 1m");
    expect_invalid(FEAT("sum", "", "5m", "int64"), 10 * MIN_NS, "multiple");
    expect_invalid(FEAT("sum", ",\"offset\":\"1h\"", "1h", "int64"), 0, "offset must be");
    expect_invalid(FEAT("sum", ",\"offset\":\"-1h\"", "lifetime", "int64"), 0,
                   "a lifetime window takes no offset");
    expect_invalid(FEAT("sum", ",\"name\":\"\"", "1h", "int64"), 0, "name must be");
    expect_invalid(FEAT("sum", ",\"kind\":\"attribute\"", "1h", "int64"), 0, "kind must be");
    expect_invalid(FEAT("sum", ",\"dataType\":{\"type\":\"float64\"}", "1h", "int64"), 0,
                   "dataType does not match");
    expect_invalid("{\"column\":\"c\",\"function\":\"sum\",\"window\":\"1h\"}", 0,
                   "needs input_type");
    expect_invalid("{\"function\":\"sum\",\"window\":\"1h\",\"input_type\":{\"type\":\"int64\"}}",
                   0, "needs a column");
    expect_invalid(FEAT("sum", "", "10000d", "int64"), SL_NS_PER_SEC / 1000, "too long");
}
END_TEST

START_TEST(test_resolve_canonical)
{
    struct sl_error err = {0, ""};
    cJSON *j = cJSON_Parse("{\"column\":\"amt\",\"function\":\"stddev\",\"window\":\"60m\","
                           "\"offset\":\"-0s\",\"input_type\":{\"type\":\"int32\"}}");
    ck_assert_int_eq(sl_agg_resolve(j, 10 * MIN_NS, &err), 0);
    char *t = cJSON_PrintUnformatted(j);
    ck_assert_str_eq(t, "{\"column\":\"amt\",\"function\":\"stddev_samp\",\"window\":\"1h\","
                        "\"input_type\":{\"type\":\"int32\"},\"kind\":\"aggregate\","
                        "\"name\":\"amt_stddev_samp_1h_10m\",\"dataType\":{\"type\":\"float64\"}}");
    free(t);
    /* idempotent */
    cJSON *again = cJSON_Duplicate(j, 1);
    ck_assert_int_eq(sl_agg_resolve(again, 10 * MIN_NS, &err), 0);
    ck_assert(cJSON_Compare(j, again, 1));
    cJSON_Delete(again);
    cJSON_Delete(j);

    j = cJSON_Parse("{\"column\":\"u\",\"function\":\"approx_count_distinct\",\"window\":\"1d\","
                    "\"offset\":\"-120m\",\"input_type\":{\"type\":\"string\"}}");
    ck_assert_int_eq(sl_agg_resolve(j, HOUR_NS, &err), 0);
    t = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "params"));
    ck_assert_str_eq(t, "{\"precision\":8}");
    free(t);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "offset")->valuestring, "-2h");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "name")->valuestring,
                     "u_approx_count_distinct_1d_1h_offset_2h");
    cJSON_Delete(j);

    j = cJSON_Parse("{\"column\":\"u\",\"function\":\"last\",\"params\":{\"n\":4},"
                    "\"window\":\"1d\",\"input_type\":{\"type\":\"string\"}}");
    ck_assert_int_eq(sl_agg_resolve(j, 0, &err), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "function")->valuestring, "last_n");
    cJSON_Delete(j);

    j = cJSON_Parse("[1]");
    ck_assert_int_eq(sl_agg_resolve(j, 0, &err), SL_EINVAL);
    cJSON_Delete(j);

    /* spec fields */
    struct sl_agg_spec *spec = spec_from_text(
        "{\"kind\":\"aggregate\",\"name\":\"p\",\"column\":\"lat\",\"function\":"
        "\"approx_percentile\",\"params\":{\"percentile\":0.9,\"precision\":200},\"window\":"
        "\"30d\",\"offset\":\"-1d\",\"input_type\":{\"type\":\"float64\"},\"dataType\":"
        "{\"type\":\"float64\"}}",
        MIN_NS);
    ck_assert_str_eq(spec->column, "lat");
    ck_assert_int_eq(spec->window, 30 * DAY_NS);
    ck_assert_int_eq(spec->offset, -DAY_NS);
    ck_assert_int_eq(spec->interval, MIN_NS);
    ck_assert_int_eq(spec->params.precision, 200);
    ck_assert(spec->params.percentile == 0.9);
    ck_assert_int_eq(spec->tiling.len[0], MIN_NS);
    ck_assert_int_gt(spec->tiling.nlevels, 5);
    sl_agg_spec_free(spec);

    int64_t ns;
    ck_assert_int_eq(sl_agg_parse_offset("0", 1, &ns), 0);
    ck_assert_int_eq(ns, 0);
    ck_assert_int_eq(sl_agg_parse_offset("-1h30m", 6, &ns), 0);
    ck_assert_int_eq(ns, -90 * MIN_NS);
    ck_assert_int_eq(sl_agg_parse_offset("1h", 2, &ns), SL_EINVAL);
    ck_assert_int_eq(sl_agg_parse_offset("-", 1, &ns), SL_EINVAL);
    ck_assert_int_eq(sl_agg_parse_window("lifetime", 8, &ns), 0);
    ck_assert_int_eq(ns, SL_AGG_LIFETIME);
    ck_assert_int_eq(sl_agg_parse_window("0s", 2, &ns), SL_EINVAL);
}
END_TEST

/* ---- registry: a plugin function ---------------------------------------------------------- */

/* bit_or over int64: the OR of all values. */
struct bor {
    int has;
    uint64_t v;
};

static int bor_check(const cJSON *pj, const struct sl_agg_params *p, const struct sl_type *in,
                     struct sl_type **out, struct sl_error *err)
{
    (void)pj;
    (void)p;
    if (in->kind != SL_INT64)
        return sl_error_set(err, SL_ESCHEMA, "bit_or is not defined for %s",
                            sl_kind_name(in->kind));
    *out = sl_type_clone(in);
    return *out ? 0 : SL_ENOMEM;
}

static int bor_init(const struct sl_agg_spec *spec, void **ctx)
{
    (void)spec;
    *ctx = calloc(1, sizeof(struct bor));
    return *ctx ? 0 : SL_ENOMEM;
}

static int bor_update(void *ctx, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                      int64_t ts, uint64_t seq)
{
    struct bor *b = ctx;
    (void)spec;
    (void)ts;
    (void)seq;
    b->has = 1;
    b->v |= (uint64_t)v->i;
    return 0;
}

static int bor_merge(void *ctx, const struct sl_agg_spec *spec, const void *other)
{
    struct bor *b = ctx;
    const struct bor *o = other;
    (void)spec;
    b->has |= o->has;
    b->v |= o->v;
    return 0;
}

static int bor_finalize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct bor *b = ctx;
    (void)spec;
    if (b->has)
        sl_buf_printf(out, "\"%lld\"", (long long)b->v);
    else
        sl_buf_puts(out, "null");
    return 0;
}

static int bor_serialize(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out)
{
    const struct bor *b = ctx;
    (void)spec;
    sl_buf_putc(out, (char)b->has);
    sl_buf_u64(out, b->v);
    return 0;
}

static int bor_deserialize(void *ctx, const struct sl_agg_spec *spec, const void *p, size_t len)
{
    struct bor *b = ctx;
    struct sl_cursor c = {(const unsigned char *)p + 1, len ? len - 1 : 0};
    (void)spec;
    if (len != 9)
        return SL_ECORRUPT;
    b->has = ((const unsigned char *)p)[0];
    return sl_cur_u64(&c, &b->v);
}

static const struct sl_agg_fn bit_or_fn = {
    SL_AGG_ABI_VERSION, sizeof(struct sl_agg_fn), "bit_or", 0, bor_check, NULL, bor_init,
    bor_update, bor_merge, bor_finalize, bor_serialize, bor_deserialize, free,
};

START_TEST(test_registry)
{
    struct sl_agg_fn bad = bit_or_fn;
    bad.abi_version = 99;
    ck_assert_int_eq(sl_agg_register(&bad), SL_EINVAL);
    bad = bit_or_fn;
    bad.struct_size = 8;
    ck_assert_int_eq(sl_agg_register(&bad), SL_EINVAL);
    bad = bit_or_fn;
    bad.name = "sum";
    ck_assert_int_eq(sl_agg_register(&bad), SL_EEXIST);
    if (!sl_agg_fn_find("bit_or", 6))
        ck_assert_int_eq(sl_agg_register(&bit_or_fn), 0);
    ck_assert_int_eq(sl_agg_register(&bit_or_fn), SL_EEXIST);
    ck_assert_ptr_eq(sl_agg_fn_find("bit_or", 6), &bit_or_fn);
    ck_assert_ptr_eq(sl_agg_fn_find("variance", 8), sl_agg_fn_find("var_samp", 8));
    ck_assert_ptr_null(sl_agg_fn_find("bit", 3));

    struct sl_agg_spec *spec = mkspec("bit_or", NULL, SL_INT64, "1h", NULL, 10 * MIN_NS);
    ck_assert_str_eq(spec->name, "x_bit_or_1h_10m");
    struct sl_scalar v1 = {.kind = SL_INT64, .i = 1}, v4 = {.kind = SL_INT64, .i = 4};
    struct sl_buf a = SL_BUF_INIT, b = SL_BUF_INIT, c = SL_BUF_INIT;
    ck_assert_int_eq(sl_agg_apply(spec, NULL, 0, &v1, 0, 1, &a), 0);
    ck_assert_int_eq(sl_agg_apply(spec, NULL, 0, &v4, 0, 2, &b), 0);
    ck_assert_int_eq(sl_agg_merge_serialized(spec, a.p, a.len, b.p, b.len, &c), 0);
    struct sl_agg_state *st;
    ck_assert_int_eq(sl_agg_state_new(spec, &st), 0);
    ck_assert_int_eq(sl_agg_merge_bytes(st, c.p, c.len), 0);
    char *got = final_str(st);
    ck_assert_str_eq(got, "\"5\"");
    free(got);
    ck_assert_int_eq(sl_agg_merge_bytes(st, c.p, c.len - 1), SL_ECORRUPT);
    sl_agg_state_free(st);
    sl_buf_free(&a);
    sl_buf_free(&b);
    sl_buf_free(&c);
    sl_agg_spec_free(spec);
    expect_invalid(FEAT("bit_or", "", "1h", "string"), 0, "bit_or is not defined for string");
    sl_agg_registry_clear();
    ck_assert_ptr_null(sl_agg_fn_find("bit_or", 6));
    ck_assert_ptr_nonnull(sl_agg_fn_find("sum", 3));
}
END_TEST

START_TEST(test_value_codec)
{
    struct sl_scalar in[] = {
        {.kind = SL_INT64, .i = INT64_MIN},
        {.kind = SL_INT32, .i = -7},
        {.kind = SL_FLOAT64, .f = -0.25},
        {.kind = SL_FLOAT32, .f = NAN},
        {.kind = SL_BOOL, .i = 1},
        {.kind = SL_TIMESTAMP, .i = INT64_C(1672531200123456789)},
        {.kind = SL_STRING, .str = "héllo", .len = 6},
        {.kind = SL_STRING, .null = 1},
        {.kind = SL_ARRAY, .str = "[\"1\",null]", .len = 10},
        {.kind = SL_STRING, .str = "", .len = 0},
    };
    size_t n = sizeof in / sizeof in[0];
    struct sl_buf b = SL_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        sl_agg_value_encode(&b, &in[i]);
    const unsigned char *p = (const unsigned char *)b.p;
    size_t left = b.len;
    for (size_t i = 0; i < n; i++) {
        struct sl_scalar v;
        ck_assert_int_eq(sl_agg_value_decode(&p, &left, &v), 0);
        ck_assert_int_eq(v.kind, in[i].kind);
        ck_assert_int_eq(v.null, in[i].null);
        if (v.null)
            continue;
        ck_assert_int_eq(v.i, in[i].i);
        ck_assert(total_cmp(v.f, in[i].f) == 0 || v.kind == SL_INT64 || v.kind == SL_INT32 ||
                  v.kind == SL_BOOL || v.kind == SL_TIMESTAMP);
        ck_assert_uint_eq(v.len, in[i].len);
        if (v.len)
            ck_assert(memcmp(v.str, in[i].str, v.len) == 0);
    }
    ck_assert_uint_eq(left, 0);
    /* truncated input is reported, never over-read */
    for (size_t cut = 0; cut < b.len; cut++) {
        p = (const unsigned char *)b.p;
        left = cut;
        struct sl_scalar v;
        while (left && sl_agg_value_decode(&p, &left, &v) == 0)
            ;
    }
    sl_buf_free(&b);
}
END_TEST

START_TEST(test_hash)
{
    /* Stable values: stored HyperLogLog registers depend on them, so these digests must never
     * change (a value hashes as its bytes; an integer as 8 little-endian bytes). */
    static const struct {
        const char *s;
        size_t len;
        uint64_t seed, want;
    } pinned[] = {
        {"", 0, 0, UINT64_C(0xb39362cb946013e3)},
        {"a", 1, 0, UINT64_C(0xf69c769c7f77f2d2)},
        {"abc", 3, 0, UINT64_C(0xd88bf90ffe38a4ba)},
        {"abc", 3, 7, UINT64_C(0x538ba096258c2caa)},
        {"user_42", 7, 0, UINT64_C(0x0a4e66a323882cb9)},
        {"0123456789abcdef0123", 20, 0, UINT64_C(0x621211530cff84e1)},
        {"\x2a\0\0\0\0\0\0\0", 8, 0, UINT64_C(0x647bef8b379f1478)},
    };
    for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++)
        ck_assert_msg(sl_agg_hash64(pinned[i].s, pinned[i].len, pinned[i].seed) == pinned[i].want,
                      "hash of pinned[%zu] changed", i);
    /* avalanche sanity */
    uint64_t h0 = 0, h1 = 0;
    h0 = sl_agg_hash64("a", 1, 0);
    h1 = sl_agg_hash64("a\0", 2, 0);
    ck_assert(h0 != h1);
    ck_assert(sl_agg_hash64("", 0, 0) != sl_agg_hash64("", 0, 1));
    /* flipping one input bit flips about half of the output bits */
    double total = 0;
    int trials = 0;
    for (int len = 1; len <= 24; len++) {
        unsigned char buf[24] = {0};
        for (int i = 0; i < len; i++)
            buf[i] = (unsigned char)(i * 37 + len);
        uint64_t base = sl_agg_hash64(buf, (size_t)len, 0);
        for (int bit = 0; bit < len * 8; bit++) {
            buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            total += __builtin_popcountll(base ^ sl_agg_hash64(buf, (size_t)len, 0));
            trials++;
            buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
    }
    ck_assert_msg(fabs(total / trials - 32.0) < 1.0, "avalanche %.2f bits", total / trials);
}
END_TEST

static Suite *agg_suite(void)
{
    Suite *s = suite_create("agg");
    TCase *tc = tcase_create("functions");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_property, 0, (int)NFCASES);
    tcase_add_test(tc, test_nonfinite_and_empty);
    tcase_add_test(tc, test_ties_and_nulls);
    tcase_add_test(tc, test_distinct_semantics);
    tcase_add_test(tc, test_state_sizes);
    tcase_add_test(tc, test_value_codec);
    tcase_add_test(tc, test_hash);
    suite_add_tcase(s, tc);

    tc = tcase_create("sketches");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_hll_accuracy);
    tcase_add_test(tc, test_percentile_accuracy);
    suite_add_tcase(s, tc);

    tc = tcase_create("windows");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_plan_cover);
    tcase_add_test(tc, test_plan_30d_1m);
    tcase_add_test(tc, test_window_bounds);
    tcase_add_test(tc, test_tiled_windows);
    tcase_add_test(tc, test_lifetime);
    suite_add_tcase(s, tc);

    tc = tcase_create("specs");
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_output_types);
    tcase_add_test(tc, test_validation);
    tcase_add_test(tc, test_resolve_canonical);
    tcase_add_test(tc, test_registry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(agg_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
