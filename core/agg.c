/* The aggregation engine: function registry, feature specs (validation, names, output
 * types), the state wrapper with its byte format, and the time arithmetic of tiles, read
 * plans, lifetime states and continuous windows. Functions themselves live in agg_fn.c and
 * agg_sketch.c; agg.md documents formats and the tile scheme. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "agg_int.h"
#include "agg_sketch.h"
#include "buf.h"
#include "error.h"
#include "plugin.h"
#include "timeutil.h"
#include "types.h"

#define STATE_VERSION 1    /* first byte of every serialized state */
#define LIFETIME_VERSION 1 /* first byte of a lifetime value */

/* ---- byte codec ---------------------------------------------------------------------------- */

void sl_agg_put_uvarint(struct sl_buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (unsigned char)v;
    sl_buf_append(b, tmp, n);
}

void sl_agg_put_svarint(struct sl_buf *b, int64_t v)
{
    uint64_t u = (uint64_t)v;
    sl_agg_put_uvarint(b, (u << 1) ^ (v < 0 ? UINT64_MAX : 0));
}

void sl_agg_put_f64(struct sl_buf *b, double v)
{
    uint64_t u;
    unsigned char tmp[8];
    memcpy(&u, &v, 8);
    for (int i = 0; i < 8; i++)
        tmp[i] = (unsigned char)(u >> (8 * i));
    sl_buf_append(b, tmp, 8);
}

static int rd_fail(struct sl_agg_rd *r)
{
    r->left = 0;
    return SL_ECORRUPT;
}

int sl_agg_get_u8(struct sl_agg_rd *r, unsigned *v)
{
    if (r->left < 1)
        return rd_fail(r);
    *v = *r->p++;
    r->left--;
    return 0;
}

int sl_agg_get_uvarint(struct sl_agg_rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->left < 1)
            return rd_fail(r);
        unsigned char c = *r->p++;
        r->left--;
        if (shift == 63 && c > 1)
            return rd_fail(r);
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return rd_fail(r);
}

int sl_agg_get_svarint(struct sl_agg_rd *r, int64_t *v)
{
    uint64_t u;
    if (sl_agg_get_uvarint(r, &u))
        return SL_ECORRUPT;
    *v = (int64_t)((u >> 1) ^ (0 - (u & 1)));
    return 0;
}

int sl_agg_get_f64(struct sl_agg_rd *r, double *v)
{
    uint64_t u = 0;
    if (r->left < 8)
        return rd_fail(r);
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)r->p[i] << (8 * i);
    memcpy(v, &u, 8);
    r->p += 8;
    r->left -= 8;
    return 0;
}

int sl_agg_get_bytes(struct sl_agg_rd *r, const char **p, size_t *n)
{
    uint64_t len;
    if (sl_agg_get_uvarint(r, &len) || len > r->left)
        return rd_fail(r);
    *p = (const char *)r->p;
    *n = (size_t)len;
    r->p += len;
    r->left -= (size_t)len;
    return 0;
}

/* ---- JSON encoding of values --------------------------------------------------------------- */

/* Floats are written exactly as sl_value_encode writes them (types.c), so aggregate and
 * attribute features of the same type look the same. */
void sl_agg_json_double(struct sl_buf *b, double v)
{
    char tmp[40];
    if (isnan(v)) {
        sl_buf_puts(b, "\"NaN\"");
    } else if (isinf(v)) {
        sl_buf_puts(b, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    } else {
        size_t n = sl_value_format_double(v, tmp);
        sl_buf_append(b, tmp, n);
    }
}

void sl_agg_json_float32(struct sl_buf *b, float v)
{
    char tmp[40];
    if (isnan(v) || isinf(v)) {
        sl_agg_json_double(b, (double)v);
    } else {
        size_t n = sl_value_format_float(v, tmp);
        sl_buf_append(b, tmp, n);
    }
}

void sl_agg_scalar_json(struct sl_buf *b, enum sl_kind kind, const struct sl_scalar *v)
{
    char tmp[SL_TIME_MAXLEN];
    switch (kind) {
    case SL_STRING:
        sl_buf_json_str(b, v->str ? v->str : "", v->str ? v->len : 0);
        break;
    case SL_INT64:
        sl_buf_printf(b, "\"%lld\"", (long long)v->i);
        break;
    case SL_INT32:
        sl_buf_printf(b, "%lld", (long long)v->i);
        break;
    case SL_FLOAT64:
        sl_agg_json_double(b, v->f);
        break;
    case SL_FLOAT32:
        sl_agg_json_float32(b, (float)v->f);
        break;
    case SL_BOOL:
        sl_buf_puts(b, v->i ? "true" : "false");
        break;
    case SL_TIMESTAMP:
        sl_time_format(v->i, tmp);
        sl_buf_printf(b, "\"%s\"", tmp);
        break;
    case SL_ARRAY:
    case SL_MAP:
    case SL_STRUCT:
        if (v->str && v->len)
            sl_buf_append(b, v->str, v->len);
        else
            sl_buf_puts(b, "null");
        break;
    }
}

int sl_agg_kind_compatible(enum sl_kind ik, enum sl_kind vk)
{
    if (ik == vk)
        return 1;
    if ((ik == SL_INT64 || ik == SL_INT32) && (vk == SL_INT64 || vk == SL_INT32))
        return 1;
    return (ik == SL_FLOAT64 || ik == SL_FLOAT32) && (vk == SL_FLOAT64 || vk == SL_FLOAT32);
}

int sl_agg_check_kinds(const char *fn, const struct sl_type *in, unsigned mask,
                       enum sl_kind out_kind, struct sl_type **out, struct sl_error *err)
{
    struct sl_type *t;
    *out = NULL;
    if (!in)
        return sl_error_set(err, SL_ESCHEMA, "%s needs an input type", fn);
    if (!(mask & SL_AGG_KBIT(in->kind)))
        return sl_error_set(err, SL_ESCHEMA, "%s is not defined for %s", fn,
                            sl_kind_name(in->kind));
    if (out_kind == 0) {
        t = sl_type_clone(in);
    } else {
        t = calloc(1, sizeof *t);
        if (t) {
            t->kind = out_kind;
            if (out_kind == SL_ARRAY && !(t->elem = sl_type_clone(in))) {
                sl_type_free(t);
                t = NULL;
            }
        }
    }
    if (!t)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    *out = t;
    return 0;
}

/* ---- registry ------------------------------------------------------------------------------ */

/* Every function, built-ins first: the built-ins are plugin descriptors too (plugin.c) and
 * reach this table through sl_agg_add, as a loaded plugin's function does. */
static const struct {
    const char *alias, *name;
} aliases[] = {
    {"variance", "var_samp"},
    {"stddev", "stddev_samp"},
};

static const struct sl_agg_fn **fns;
static size_t nfns, capfns, nbuiltin;

static int name_is(const char *name, const char *s, size_t len)
{
    return strlen(name) == len && memcmp(name, s, len) == 0;
}

static const struct sl_agg_fn *find_exact(const char *s, size_t len)
{
    for (size_t i = 0; i < nfns; i++)
        if (name_is(fns[i]->name, s, len))
            return fns[i];
    return NULL;
}

static const struct sl_agg_fn *find_alias(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (name_is(aliases[i].alias, name, len))
            return find_exact(aliases[i].name, strlen(aliases[i].name));
    return find_exact(name, len);
}

const struct sl_agg_fn *sl_agg_fn_find(const char *name, size_t len)
{
    if (!name)
        return NULL;
    sl_plugin_builtins();
    return find_alias(name, len);
}

/* The size of struct sl_agg_fn in ABI version 1 (through cb_free). */
#define AGG_FN_SIZE_V1 (offsetof(struct sl_agg_fn, cb_free) + sizeof(void (*)(void *)))

int sl_agg_check_fn(const struct sl_agg_fn *fn)
{
    if (!fn || fn->abi_version != SL_AGG_ABI_VERSION || fn->struct_size < AGG_FN_SIZE_V1 ||
        !fn->name || !*fn->name || !fn->cb_check || !fn->cb_init || !fn->cb_update ||
        !fn->cb_merge || !fn->cb_finalize || !fn->cb_serialize || !fn->cb_deserialize ||
        !fn->cb_free)
        return SL_EINVAL;
    return 0;
}

int sl_agg_add(const struct sl_agg_fn *fn, int builtin)
{
    int rc = sl_agg_check_fn(fn);
    if (rc)
        return rc;
    if (find_alias(fn->name, strlen(fn->name)))
        return SL_EEXIST;
    if (nfns == capfns) {
        size_t cap = capfns ? capfns * 2 : 32;
        const struct sl_agg_fn **p = realloc(fns, cap * sizeof *p);
        if (!p)
            return SL_ENOMEM;
        fns = p;
        capfns = cap;
    }
    fns[nfns++] = fn;
    if (builtin)
        nbuiltin = nfns;
    return 0;
}

int sl_agg_remove(const struct sl_agg_fn *fn)
{
    for (size_t i = nbuiltin; i < nfns; i++) {
        if (fns[i] == fn) {
            memmove(&fns[i], &fns[i + 1], (nfns - i - 1) * sizeof *fns);
            nfns--;
            return 0;
        }
    }
    return SL_ENOTFOUND;
}

int sl_agg_register(const struct sl_agg_fn *fn)
{
    sl_plugin_builtins();
    return sl_agg_add(fn, 0);
}

void sl_agg_registry_clear(void)
{
    nfns = nbuiltin;
}

/* ---- parameters, windows, names ------------------------------------------------------------ */

static int json_int(const cJSON *j, int *out)
{
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) ||
        j->valuedouble < -1e9 || j->valuedouble > 1e9)
        return -1;
    *out = (int)j->valuedouble;
    return 0;
}

int sl_agg_params_parse(const struct sl_agg_fn *fn, const cJSON *pj, struct sl_agg_params *p,
                        struct sl_error *err)
{
    memset(p, 0, sizeof *p);
    if (pj && !cJSON_IsNull(pj)) {
        if (!cJSON_IsObject(pj))
            return sl_error_set(err, SL_ESCHEMA, "params must be an object");
        for (const cJSON *m = pj->child; m; m = m->next) {
            const char *k = m->string ? m->string : "";
            if (strcmp(k, "n") == 0 && (fn->params & SL_AGG_P_N)) {
                if (json_int(m, &p->n) || p->n < 1 || p->n > SL_AGG_MAX_N)
                    return sl_error_set(err, SL_ESCHEMA,
                                        "n must be an integer between 1 and %d", SL_AGG_MAX_N);
                p->has_n = 1;
            } else if (strcmp(k, "precision") == 0 && (fn->params & SL_AGG_P_PRECISION)) {
                if (json_int(m, &p->precision))
                    return sl_error_set(err, SL_ESCHEMA, "precision must be an integer");
                p->has_precision = 1;
            } else if (strcmp(k, "percentile") == 0 && (fn->params & SL_AGG_P_PERCENTILE)) {
                if (!cJSON_IsNumber(m) || !(m->valuedouble >= 0.0 && m->valuedouble <= 1.0))
                    return sl_error_set(err, SL_ESCHEMA,
                                        "percentile must be a number between 0 and 1");
                p->percentile = m->valuedouble;
                p->has_percentile = 1;
            } else if (!(fn->params & SL_AGG_P_ANY)) {
                return sl_error_set(err, SL_ESCHEMA, "%s takes no parameter `%s`", fn->name, k);
            }
        }
    }
    if ((fn->params & SL_AGG_P_N) && !p->has_n)
        return sl_error_set(err, SL_ESCHEMA, "%s needs parameter n (an integer between 1 and %d)",
                            fn->name, SL_AGG_MAX_N);
    if ((fn->params & SL_AGG_P_PERCENTILE) && !p->has_percentile)
        return sl_error_set(err, SL_ESCHEMA,
                            "%s needs parameter percentile (a number between 0 and 1)", fn->name);
    if (!p->has_precision) {
        if (fn == &sl_agg_fn_approx_count_distinct) {
            p->precision = SL_AGG_HLL_DEFAULT_P;
            p->has_precision = 1;
        } else if (fn == &sl_agg_fn_approx_percentile) {
            p->precision = SL_AGG_PCT_DEFAULT_PRECISION;
            p->has_precision = 1;
        }
    }
    return 0;
}

int sl_agg_parse_window(const char *s, size_t len, int64_t *ns)
{
    if (name_is("lifetime", s, len)) {
        *ns = SL_AGG_LIFETIME;
        return 0;
    }
    if (sl_duration_parse(s, len, ns))
        return SL_EINVAL;
    return *ns == SL_AGG_LIFETIME ? SL_EINVAL : 0;
}

/* 1 when s is a duration made only of zero amounts ("0", "0s", "0h0m"). */
static int is_zero_duration(const char *s, size_t len)
{
    int digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            if (s[i] != '0')
                return 0;
            digits = 1;
        } else if (s[i] < 'a' || s[i] > 'z') {
            return 0;
        }
    }
    return digits && s[0] == '0';
}

int sl_agg_parse_offset(const char *s, size_t len, int64_t *ns)
{
    int neg = len > 0 && s[0] == '-';
    const char *d = s + neg;
    size_t dl = len - (size_t)neg;
    if (is_zero_duration(d, dl)) {
        *ns = 0;
        return 0;
    }
    if (!neg || sl_duration_parse(d, dl, ns))
        return SL_EINVAL;
    *ns = -*ns;
    return 0;
}

static void put_duration(struct sl_buf *b, int64_t ns)
{
    char tmp[40];
    sl_duration_format(ns, tmp);
    sl_buf_puts(b, tmp);
}

int sl_agg_default_name(const char *column, const char *fn_name, const struct sl_agg_params *p,
                        int64_t window_ns, int64_t offset_ns, int64_t interval_ns,
                        struct sl_buf *out, struct sl_error *err)
{
    const struct sl_agg_fn *fn = fn_name ? sl_agg_fn_find(fn_name, strlen(fn_name)) : NULL;
    if (!fn)
        return sl_error_set(err, SL_ESCHEMA, "unknown aggregation function `%s`",
                            fn_name ? fn_name : "");
    sl_buf_puts(out, column ? column : "");
    sl_buf_putc(out, '_');
    if (fn->cb_name)
        fn->cb_name(p, out);
    else
        sl_buf_puts(out, fn->name);
    sl_buf_putc(out, '_');
    if (window_ns == SL_AGG_LIFETIME)
        sl_buf_puts(out, "lifetime");
    else
        put_duration(out, window_ns);
    sl_buf_putc(out, '_');
    if (interval_ns > 0)
        put_duration(out, interval_ns);
    else
        sl_buf_puts(out, "continuous");
    if (offset_ns < 0 && offset_ns != INT64_MIN) {
        sl_buf_puts(out, "_offset_");
        put_duration(out, -offset_ns);
    }
    return out->oom ? sl_error_set(err, SL_ENOMEM, "out of memory") : 0;
}

/* The registered functions' names, built-ins first (plugins included), for messages. */
#define FN_LIST_CAP 480
static const char *fn_list(char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    sl_plugin_builtins();
    for (size_t i = 0; i < nfns && len < cap; i++) {
        int n = snprintf(out + len, cap - len, "%s%s", i ? ", " : "", fns[i]->name);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    return out;
}

int sl_agg_output_type(const char *fn_name, const cJSON *params_json,
                       const struct sl_type *in, struct sl_type **out, struct sl_error *err)
{
    struct sl_agg_params p;
    const struct sl_agg_fn *fn = fn_name ? sl_agg_fn_find(fn_name, strlen(fn_name)) : NULL;
    int rc;
    *out = NULL;
    if (!fn)
        return sl_error_set(err, SL_ESCHEMA, "unknown aggregation function `%s` (known: %s)",
                            fn_name ? fn_name : "", fn_list((char[FN_LIST_CAP]){0}, FN_LIST_CAP));
    if ((rc = sl_agg_params_parse(fn, params_json, &p, err)) != 0)
        return rc;
    return fn->cb_check(params_json, &p, in, out, err);
}

/* ---- resolve: validation and completion of the canonical JSON ------------------------------ */

static int set_member(cJSON *j, const char *key, cJSON *v)
{
    if (!v)
        return SL_ENOMEM;
    if (cJSON_GetObjectItemCaseSensitive(j, key))
        cJSON_ReplaceItemInObjectCaseSensitive(j, key, v);
    else
        cJSON_AddItemToObject(j, key, v);
    return 0;
}

static int set_duration_member(cJSON *j, const char *key, int64_t ns, int neg)
{
    char tmp[40];
    tmp[0] = '-';
    sl_duration_format(ns, tmp + neg);
    return set_member(j, key, cJSON_CreateString(tmp));
}

/* The canonical params object of a built-in (only the members it accepts). */
static cJSON *params_canonical(const struct sl_agg_fn *fn, const struct sl_agg_params *p,
                               const cJSON *given)
{
    if (fn->params & SL_AGG_P_ANY)
        return given ? cJSON_Duplicate(given, 1) : cJSON_CreateObject();
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if ((p->has_n && !cJSON_AddNumberToObject(o, "n", p->n)) ||
        (p->has_precision && !cJSON_AddNumberToObject(o, "precision", p->precision)) ||
        (p->has_percentile && !cJSON_AddNumberToObject(o, "percentile", p->percentile))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

struct resolved {
    const struct sl_agg_fn *fn;
    struct sl_agg_params p;
    int64_t window, offset;
    struct sl_type *in, *out;
    char label[160];
};

static const char *str_member(const cJSON *j, const char *key)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(m) && m->valuestring ? m->valuestring : NULL;
}

static int resolve_inner(cJSON *j, int64_t interval, struct resolved *r, struct sl_error *err)
{
    const cJSON *m;
    const char *column, *fname, *name, *s;
    int rc;

    name = str_member(j, "name");
    if (cJSON_GetObjectItemCaseSensitive(j, "name") && (!name || !*name))
        return sl_error_set(err, SL_ESCHEMA, "name must be a non-empty string");
    m = cJSON_GetObjectItemCaseSensitive(j, "kind");
    if (m && (!cJSON_IsString(m) || strcmp(m->valuestring, "aggregate") != 0))
        return sl_error_set(err, SL_ESCHEMA, "kind must be \"aggregate\"");
    column = str_member(j, "column");
    if (!column || !*column)
        return sl_error_set(err, SL_ESCHEMA, "an aggregate needs a column");
    if (!name)
        snprintf(r->label, sizeof r->label, "aggregate of %s", column);
    fname = str_member(j, "function");
    if (!fname)
        return sl_error_set(err, SL_ESCHEMA, "an aggregate needs a function (one of %s)",
                            fn_list((char[FN_LIST_CAP]){0}, FN_LIST_CAP));

    /* Canonical function name. */
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(j, "params");
    int has_n = cJSON_GetObjectItemCaseSensitive(pj, "n") != NULL;
    if (strcmp(fname, "last") == 0 && has_n)
        r->fn = &sl_agg_fn_last_n;
    else if (strcmp(fname, "first") == 0)
        r->fn = has_n ? &sl_agg_fn_first_n : NULL;
    else
        r->fn = sl_agg_fn_find(fname, strlen(fname));
    if (!r->fn) {
        if (strcmp(fname, "first") == 0)
            return sl_error_set(err, SL_ESCHEMA, "first needs parameter n (first(n))");
        return sl_error_set(err, SL_ESCHEMA, "unknown aggregation function `%s` (known: %s)",
                            fname, fn_list((char[FN_LIST_CAP]){0}, FN_LIST_CAP));
    }
    if (strcmp(fname, r->fn->name) != 0 &&
        set_member(j, "function", cJSON_CreateString(r->fn->name)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");

    if ((rc = sl_agg_params_parse(r->fn, pj, &r->p, err)) != 0)
        return rc;

    s = str_member(j, "window");
    if (!s || sl_agg_parse_window(s, strlen(s), &r->window))
        return sl_error_set(err, SL_ESCHEMA,
                            "window must be a duration such as \"1h\" or \"lifetime\"");
    r->offset = 0;
    m = cJSON_GetObjectItemCaseSensitive(j, "offset");
    if (m && !cJSON_IsNull(m)) {
        s = cJSON_IsString(m) ? m->valuestring : NULL;
        if (!s || sl_agg_parse_offset(s, strlen(s), &r->offset))
            return sl_error_set(err, SL_ESCHEMA,
                                "offset must be a duration <= 0 such as \"-1h\"");
        if (r->offset && r->window == SL_AGG_LIFETIME)
            return sl_error_set(err, SL_ESCHEMA, "a lifetime window takes no offset");
    }
    if (!name) {
        struct sl_buf nb = SL_BUF_INIT;
        sl_agg_default_name(column, r->fn->name, &r->p, r->window, r->offset, interval, &nb,
                            NULL);
        snprintf(r->label, sizeof r->label, "%s", nb.oom ? column : sl_buf_cstr(&nb));
        sl_buf_free(&nb);
    }
    if (interval < 0)
        return sl_error_set(err, SL_EINVAL, "aggregation_interval must be positive");
    if (interval > 0 && r->window != SL_AGG_LIFETIME) {
        char w[40], iv[40];
        struct sl_agg_tiling t;
        sl_duration_format(r->window, w);
        sl_duration_format(interval, iv);
        if (r->window % interval != 0)
            return sl_error_set(err, SL_ESCHEMA,
                                "window %s must be a multiple of aggregation_interval %s", w, iv);
        if (sl_agg_tiling_init(&t, interval, r->window))
            return sl_error_set(err, SL_ESCHEMA,
                                "window %s is too long for aggregation_interval %s", w, iv);
    }

    m = cJSON_GetObjectItemCaseSensitive(j, "input_type");
    if (!cJSON_IsObject(m))
        return sl_error_set(err, SL_ESCHEMA, "an aggregate needs input_type (a dataType object)");
    r->in = sl_type_from_cjson(m, err);
    if (!r->in)
        return sl_error_prefix(err, "input_type: ");
    if ((rc = r->fn->cb_check(pj, &r->p, r->in, &r->out, err)) != 0)
        return rc;

    /* Complete the object. */
    cJSON *cp = params_canonical(r->fn, &r->p, pj);
    if (!cp)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (cp->child || (r->fn->params & SL_AGG_P_ANY)) {
        set_member(j, "params", cp);
    } else {
        cJSON_Delete(cp);
        cJSON_DeleteItemFromObjectCaseSensitive(j, "params");
    }
    if (!cJSON_GetObjectItemCaseSensitive(j, "kind") &&
        !cJSON_AddStringToObject(j, "kind", "aggregate"))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (!name && set_member(j, "name", cJSON_CreateString(r->label)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (r->window == SL_AGG_LIFETIME
            ? set_member(j, "window", cJSON_CreateString("lifetime"))
            : set_duration_member(j, "window", r->window, 0))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (r->offset == 0)
        cJSON_DeleteItemFromObjectCaseSensitive(j, "offset");
    else if (set_duration_member(j, "offset", -r->offset, 1))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (set_member(j, "dataType", sl_type_to_cjson(r->out)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return 0;
}

int sl_agg_resolve(cJSON *j, int64_t interval, struct sl_error *err)
{
    struct resolved r;
    int rc;
    if (!cJSON_IsObject(j))
        return sl_error_set(err, SL_EINVAL, "an aggregate feature must be a JSON object");
    memset(&r, 0, sizeof r);
    const char *name = str_member(j, "name");
    if (name)
        snprintf(r.label, sizeof r.label, "%s", name);
    rc = resolve_inner(j, interval, &r, err);
    if (rc && rc != SL_ENOMEM && r.label[0])
        sl_error_prefix(err, "feature `%s`: ", r.label);
    sl_type_free(r.in);
    sl_type_free(r.out);
    return rc;
}

/* ---- specs --------------------------------------------------------------------------------- */

void sl_agg_spec_free(struct sl_agg_spec *spec)
{
    if (!spec)
        return;
    free(spec->name);
    free(spec->column);
    cJSON_Delete(spec->params_json);
    sl_type_free(spec->input_type);
    sl_type_free(spec->output_type);
    free(spec);
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

int sl_agg_spec_from_cjson(const cJSON *j, int64_t interval, struct sl_agg_spec **out,
                           struct sl_error *err)
{
    struct sl_agg_spec *spec = NULL;
    struct sl_type *given = NULL;
    cJSON *c = NULL;
    int rc;

    *out = NULL;
    if (!cJSON_IsObject(j))
        return sl_error_set(err, SL_EINVAL, "an aggregate feature must be a JSON object");
    rc = SL_ENOMEM;
    c = cJSON_Duplicate(j, 1);
    if (!c)
        goto fail;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dataType");
    if (dt && !(given = sl_type_from_cjson(dt, err))) {
        rc = sl_error_prefix(err, "dataType: ");
        goto fail;
    }
    if ((rc = sl_agg_resolve(c, interval, err)) != 0)
        goto fail;
    rc = SL_ENOMEM;
    spec = calloc(1, sizeof *spec);
    if (!spec)
        goto fail;
    spec->name = xstrdup(str_member(c, "name"));
    spec->column = xstrdup(str_member(c, "column"));
    const char *fname = str_member(c, "function");
    spec->fn = sl_agg_fn_find(fname, strlen(fname));
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(c, "params");
    spec->params_json = pj ? cJSON_Duplicate(pj, 1) : cJSON_CreateObject();
    spec->input_type = sl_type_from_cjson(cJSON_GetObjectItemCaseSensitive(c, "input_type"), err);
    spec->output_type = sl_type_from_cjson(cJSON_GetObjectItemCaseSensitive(c, "dataType"), err);
    if (!spec->name || !spec->column || !spec->params_json || !spec->input_type ||
        !spec->output_type)
        goto fail;
    if ((rc = sl_agg_params_parse(spec->fn, pj, &spec->params, err)) != 0)
        goto fail;
    const char *w = str_member(c, "window"), *o = str_member(c, "offset");
    sl_agg_parse_window(w, strlen(w), &spec->window);
    spec->offset = 0;
    if (o)
        sl_agg_parse_offset(o, strlen(o), &spec->offset);
    spec->interval = interval;
    if (interval > 0 && spec->window != SL_AGG_LIFETIME)
        sl_agg_tiling_init(&spec->tiling, interval, spec->window);
    if (given && !sl_type_equal(given, spec->output_type)) {
        char *want = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "dataType"));
        rc = sl_error_set(err, SL_ESCHEMA,
                          "feature `%s`: dataType does not match the output type of %s (%s)",
                          spec->name, spec->fn->name, want ? want : "?");
        free(want);
        goto fail;
    }
    sl_type_free(given);
    cJSON_Delete(c);
    *out = spec;
    return 0;

fail:
    if (rc == SL_ENOMEM)
        sl_error_set(err, SL_ENOMEM, "out of memory");
    sl_type_free(given);
    cJSON_Delete(c);
    sl_agg_spec_free(spec);
    return rc;
}

/* ---- states -------------------------------------------------------------------------------- */

struct sl_agg_state {
    const struct sl_agg_spec *spec;
    void *ctx;
};

int sl_agg_state_new(const struct sl_agg_spec *spec, struct sl_agg_state **out)
{
    struct sl_agg_state *st = calloc(1, sizeof *st);
    *out = NULL;
    if (!st)
        return SL_ENOMEM;
    st->spec = spec;
    if (spec->fn->cb_init(spec, &st->ctx)) {
        free(st);
        return SL_ENOMEM;
    }
    *out = st;
    return 0;
}

void sl_agg_state_free(struct sl_agg_state *st)
{
    if (!st)
        return;
    st->spec->fn->cb_free(st->ctx);
    free(st);
}

int sl_agg_state_reset(struct sl_agg_state *st)
{
    void *ctx;
    if (st->spec->fn->cb_init(st->spec, &ctx))
        return SL_ENOMEM;
    st->spec->fn->cb_free(st->ctx);
    st->ctx = ctx;
    return 0;
}

int sl_agg_update(struct sl_agg_state *st, const struct sl_scalar *v, int64_t ts, uint64_t seq)
{
    if (!v || v->null)
        return 0;
    if (!sl_agg_kind_compatible(st->spec->input_type->kind, v->kind))
        return SL_EINVAL;
    if ((v->kind == SL_STRING || v->kind >= SL_ARRAY) && !v->str && v->len)
        return SL_EINVAL;
    return st->spec->fn->cb_update(st->ctx, st->spec, v, ts, seq);
}

int sl_agg_merge(struct sl_agg_state *dst, const struct sl_agg_state *src)
{
    if (dst->spec->fn != src->spec->fn)
        return SL_EINVAL;
    return dst->spec->fn->cb_merge(dst->ctx, dst->spec, src->ctx);
}

/* A fresh ctx holding the state serialized in p[0..len) (len 0: empty). */
static int load_ctx(const struct sl_agg_spec *spec, const void *p, size_t len, void **ctx)
{
    const unsigned char *b = p;
    int rc;
    if (spec->fn->cb_init(spec, ctx))
        return SL_ENOMEM;
    if (len == 0)
        return 0;
    if (b[0] != STATE_VERSION)
        rc = SL_ECORRUPT;
    else
        rc = spec->fn->cb_deserialize(*ctx, spec, b + 1, len - 1);
    if (rc) {
        spec->fn->cb_free(*ctx);
        *ctx = NULL;
        return rc == SL_ENOMEM ? SL_ENOMEM : SL_ECORRUPT;
    }
    return 0;
}

int sl_agg_merge_bytes(struct sl_agg_state *dst, const void *p, size_t len)
{
    void *ctx;
    int rc;
    if (len == 0)
        return 0;
    if ((rc = load_ctx(dst->spec, p, len, &ctx)) != 0)
        return rc;
    rc = dst->spec->fn->cb_merge(dst->ctx, dst->spec, ctx);
    dst->spec->fn->cb_free(ctx);
    return rc;
}

int sl_agg_serialize(const struct sl_agg_state *st, struct sl_buf *out)
{
    sl_buf_putc(out, STATE_VERSION);
    int rc = st->spec->fn->cb_serialize(st->ctx, st->spec, out);
    return rc ? rc : out->oom ? SL_ENOMEM : 0;
}

int sl_agg_deserialize(struct sl_agg_state *st, const void *p, size_t len)
{
    void *ctx;
    int rc = load_ctx(st->spec, p, len, &ctx);
    if (rc) {
        sl_agg_state_reset(st);
        return rc;
    }
    st->spec->fn->cb_free(st->ctx);
    st->ctx = ctx;
    return 0;
}

int sl_agg_finalize(const struct sl_agg_state *st, struct sl_buf *out)
{
    int rc = st->spec->fn->cb_finalize(st->ctx, st->spec, out);
    return rc ? rc : out->oom ? SL_ENOMEM : 0;
}

int sl_agg_apply(const struct sl_agg_spec *spec, const void *old, size_t oldlen,
                 const struct sl_scalar *v, int64_t ts, uint64_t seq, struct sl_buf *out)
{
    struct sl_agg_state st = {spec, NULL};
    int rc = load_ctx(spec, old, oldlen, &st.ctx);
    if (rc)
        return rc;
    if ((rc = sl_agg_update(&st, v, ts, seq)) == 0)
        rc = sl_agg_serialize(&st, out);
    spec->fn->cb_free(st.ctx);
    return rc;
}

int sl_agg_merge_serialized(const struct sl_agg_spec *spec, const void *old, size_t oldlen,
                            const void *add, size_t addlen, struct sl_buf *out)
{
    struct sl_agg_state st = {spec, NULL};
    int rc = load_ctx(spec, old, oldlen, &st.ctx);
    if (rc)
        return rc;
    if ((rc = sl_agg_merge_bytes(&st, add, addlen)) == 0)
        rc = sl_agg_serialize(&st, out);
    spec->fn->cb_free(st.ctx);
    return rc;
}

/* ---- time arithmetic ----------------------------------------------------------------------- */

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* The largest multiple of len (> 0) that is <= x, saturating at INT64_MIN. */
static int64_t floor_to(int64_t x, int64_t len)
{
    int64_t r = x % len, out;
    if (r < 0)
        r += len;
    if (__builtin_sub_overflow(x, r, &out))
        return INT64_MIN;
    return out;
}

int sl_agg_tiling_init(struct sl_agg_tiling *t, int64_t interval, int64_t max_window)
{
    memset(t, 0, sizeof *t);
    if (interval <= 0 || max_window < interval || max_window % interval != 0)
        return SL_EINVAL;
    t->interval = interval;
    t->len[0] = interval;
    t->nlevels = 1;
    while (t->nlevels < SL_AGG_MAX_LEVELS) {
        int64_t next;
        if (__builtin_mul_overflow(t->len[t->nlevels - 1], SL_AGG_TILE_RATIO, &next) ||
            next > max_window)
            break;
        t->len[t->nlevels++] = next;
    }
    /* Keep plans within SL_AGG_PLAN_MAX: at most 2 * (RATIO - 1) tiles per level below the
     * top plus the top-level tiles. */
    int64_t top = max_window / t->len[t->nlevels - 1] + 1;
    if (top + 2 * (SL_AGG_TILE_RATIO - 1) * (t->nlevels - 1) > SL_AGG_PLAN_MAX)
        return SL_EINVAL;
    return 0;
}

void sl_agg_window(const struct sl_agg_spec *spec, int64_t t, int64_t *start, int64_t *end)
{
    int64_t x = sat_add(t, spec->offset);
    if (spec->interval > 0) {
        *end = floor_to(x, spec->interval);
        *start = spec->window == SL_AGG_LIFETIME ? INT64_MIN : sat_add(*end, -spec->window);
    } else {
        *end = sat_add(x, 1);
        *start = spec->window == SL_AGG_LIFETIME ? INT64_MIN : sat_add(x, -spec->window);
    }
}

int sl_agg_tiles_for_event(const struct sl_agg_tiling *t, int64_t ts, struct sl_agg_tile *out)
{
    for (int k = 0; k < t->nlevels; k++) {
        out[k].level = k;
        out[k].start = floor_to(ts, t->len[k]);
    }
    return t->nlevels;
}

int sl_agg_plan(const struct sl_agg_tiling *t, int64_t start, int64_t end,
                struct sl_agg_tile *out, size_t cap, size_t *n)
{
    int64_t cur = start;
    *n = 0;
    if (t->nlevels < 1 || start > end || floor_to(start, t->interval) != start ||
        floor_to(end, t->interval) != end)
        return SL_EINVAL;
    while (cur < end) {
        uint64_t left = (uint64_t)end - (uint64_t)cur;
        int k = t->nlevels - 1;
        while (k > 0 && (floor_to(cur, t->len[k]) != cur || (uint64_t)t->len[k] > left))
            k--;
        if (*n == cap)
            return SL_ETOOBIG;
        out[*n].level = k;
        out[*n].start = cur;
        (*n)++;
        cur += t->len[k];
    }
    return 0;
}

int sl_agg_plan_read(const struct sl_agg_spec *spec, int64_t t, struct sl_agg_tile *out,
                     size_t cap, size_t *n)
{
    int64_t s, e;
    *n = 0;
    if (spec->interval <= 0 || spec->window == SL_AGG_LIFETIME || spec->tiling.nlevels < 1)
        return SL_EINVAL;
    sl_agg_window(spec, t, &s, &e);
    if (s == INT64_MIN || e == INT64_MIN)
        return SL_EINVAL;
    return sl_agg_plan(&spec->tiling, s, e, out, cap, n);
}

int64_t sl_agg_horizon(const struct sl_agg_spec *spec, int64_t now)
{
    int64_t s, e;
    if (spec->window == SL_AGG_LIFETIME)
        return INT64_MIN;
    sl_agg_window(spec, now, &s, &e);
    return s;
}

void sl_agg_tile_key(struct sl_buf *b, const struct sl_agg_tile *tile)
{
    unsigned char k[SL_AGG_TILE_KEY_LEN];
    uint64_t u = (uint64_t)tile->start ^ (UINT64_C(1) << 63);
    k[0] = (unsigned char)tile->level;
    for (int i = 0; i < 8; i++)
        k[1 + i] = (unsigned char)(u >> (56 - 8 * i));
    sl_buf_append(b, k, sizeof k);
}

int sl_agg_tile_key_decode(const void *p, size_t len, struct sl_agg_tile *tile)
{
    const unsigned char *k = p;
    uint64_t u = 0;
    if (len != SL_AGG_TILE_KEY_LEN || k[0] >= SL_AGG_MAX_LEVELS)
        return SL_ECORRUPT;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | k[1 + i];
    tile->level = k[0];
    tile->start = (int64_t)(u ^ (UINT64_C(1) << 63));
    return 0;
}

/* ---- lifetime values ----------------------------------------------------------------------- */

struct lifetime {
    int64_t c;          /* start of the open tile */
    const char *p, *o;  /* serialized prefix and open-tile states (borrowed) */
    size_t plen, olen;
};

static int lifetime_decode(const void *data, size_t len, struct lifetime *lt)
{
    struct sl_agg_rd r = {data, len};
    unsigned v;
    if (sl_agg_get_u8(&r, &v) || v != LIFETIME_VERSION || sl_agg_get_svarint(&r, &lt->c) ||
        sl_agg_get_bytes(&r, &lt->p, &lt->plen) || sl_agg_get_bytes(&r, &lt->o, &lt->olen) ||
        r.left)
        return SL_ECORRUPT;
    return 0;
}

static int64_t lifetime_tile_len(const struct sl_agg_spec *spec)
{
    return spec->interval > 0 ? spec->interval : 1;
}

int sl_agg_lifetime_apply(const struct sl_agg_spec *spec, const void *old, size_t oldlen,
                          const struct sl_scalar *v, int64_t ts, uint64_t seq,
                          struct sl_buf *out)
{
    struct lifetime lt = {0, NULL, NULL, 0, 0};
    struct sl_agg_state *pre = NULL, *open = NULL;
    struct sl_buf pb = SL_BUF_INIT, ob = SL_BUF_INIT;
    int64_t tile;
    int rc;

    if (spec->window != SL_AGG_LIFETIME)
        return SL_EINVAL;
    if (!v || v->null) {
        sl_buf_append(out, old, oldlen);
        return out->oom ? SL_ENOMEM : 0;
    }
    if (!sl_agg_kind_compatible(spec->input_type->kind, v->kind))
        return SL_EINVAL;
    tile = floor_to(ts, lifetime_tile_len(spec));
    if (oldlen) {
        if ((rc = lifetime_decode(old, oldlen, &lt)) != 0)
            return rc;
    } else {
        lt.c = tile;
    }
    if ((rc = sl_agg_state_new(spec, &pre)) || (rc = sl_agg_state_new(spec, &open)) ||
        (rc = sl_agg_deserialize(pre, lt.p, lt.plen)) ||
        (rc = sl_agg_deserialize(open, lt.o, lt.olen)))
        goto out;
    if (tile > lt.c) { /* the open tile is complete: fold it into the prefix */
        if ((rc = sl_agg_merge(pre, open)) || (rc = sl_agg_state_reset(open)))
            goto out;
        lt.c = tile;
    }
    if ((rc = sl_agg_update(tile == lt.c ? open : pre, v, ts, seq)) ||
        (rc = sl_agg_serialize(pre, &pb)) || (rc = sl_agg_serialize(open, &ob)))
        goto out;
    sl_buf_putc(out, LIFETIME_VERSION);
    sl_agg_put_svarint(out, lt.c);
    sl_agg_put_uvarint(out, pb.len);
    sl_buf_append(out, pb.p, pb.len);
    sl_agg_put_uvarint(out, ob.len);
    sl_buf_append(out, ob.p, ob.len);
    rc = out->oom ? SL_ENOMEM : 0;
out:
    sl_buf_free(&pb);
    sl_buf_free(&ob);
    sl_agg_state_free(pre);
    sl_agg_state_free(open);
    return rc;
}

int sl_agg_lifetime_read(struct sl_agg_state *acc, const void *p, size_t len, int64_t t)
{
    const struct sl_agg_spec *spec = acc->spec;
    struct lifetime lt;
    int64_t s, e;
    int rc;
    if (spec->window != SL_AGG_LIFETIME)
        return SL_EINVAL;
    if (len == 0)
        return 0;
    if ((rc = lifetime_decode(p, len, &lt)) != 0)
        return rc;
    if ((rc = sl_agg_merge_bytes(acc, lt.p, lt.plen)) != 0)
        return rc;
    /* The open tile counts once it is complete at t: c + len <= window end. */
    sl_agg_window(spec, t, &s, &e);
    int64_t lim;
    if (!__builtin_sub_overflow(e, lifetime_tile_len(spec), &lim) && lt.c <= lim)
        rc = sl_agg_merge_bytes(acc, lt.o, lt.olen);
    return rc;
}

/* ---- raw events ---------------------------------------------------------------------------- */

int sl_agg_eval_events(const struct sl_agg_spec *spec, const struct sl_agg_event *ev, size_t n,
                       int64_t t, struct sl_buf *out)
{
    struct sl_agg_state *st;
    int64_t s, e;
    int rc;
    if ((rc = sl_agg_state_new(spec, &st)) != 0)
        return rc;
    sl_agg_window(spec, t, &s, &e);
    for (size_t i = 0; i < n && rc == 0; i++)
        if (ev[i].ts >= s && ev[i].ts < e)
            rc = sl_agg_update(st, ev[i].value, ev[i].ts, ev[i].seq);
    if (rc == 0)
        rc = sl_agg_finalize(st, out);
    sl_agg_state_free(st);
    return rc;
}

void sl_agg_value_encode(struct sl_buf *b, const struct sl_scalar *v)
{
    sl_buf_putc(b, (char)v->kind);
    sl_buf_putc(b, (char)(v->null ? 1 : 0));
    if (v->null)
        return;
    switch (v->kind) {
    case SL_INT64:
    case SL_INT32:
    case SL_BOOL:
    case SL_TIMESTAMP:
        sl_agg_put_svarint(b, v->i);
        break;
    case SL_FLOAT64:
    case SL_FLOAT32:
        sl_agg_put_f64(b, v->f);
        break;
    default:
        sl_agg_put_uvarint(b, v->len);
        sl_buf_append(b, v->str, v->len);
        break;
    }
}

int sl_agg_value_decode(const unsigned char **p, size_t *left, struct sl_scalar *v)
{
    struct sl_agg_rd r = {*p, *left};
    unsigned kind, null;
    memset(v, 0, sizeof *v);
    if (sl_agg_get_u8(&r, &kind) || kind < SL_STRING || kind > SL_STRUCT ||
        sl_agg_get_u8(&r, &null) || null > 1)
        return SL_ECORRUPT;
    v->kind = (enum sl_kind)kind;
    v->null = (int)null;
    if (!null) {
        switch (v->kind) {
        case SL_INT64:
        case SL_INT32:
        case SL_BOOL:
        case SL_TIMESTAMP:
            if (sl_agg_get_svarint(&r, &v->i))
                return SL_ECORRUPT;
            v->f = (double)v->i;
            break;
        case SL_FLOAT64:
        case SL_FLOAT32:
            if (sl_agg_get_f64(&r, &v->f))
                return SL_ECORRUPT;
            break;
        default:
            if (sl_agg_get_bytes(&r, &v->str, &v->len))
                return SL_ECORRUPT;
            break;
        }
    }
    *p = r.p;
    *left = r.left;
    return 0;
}
