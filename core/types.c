/* Data types, their dataType JSON form, and validation of input values against them. */
#include "types.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "timeutil.h"

static const char *const kind_names[] = {
    [SL_STRING] = "string",       [SL_INT64] = "int64",   [SL_INT32] = "int32",
    [SL_FLOAT64] = "float64",     [SL_FLOAT32] = "float32", [SL_BOOL] = "boolean",
    [SL_TIMESTAMP] = "timestamp", [SL_ARRAY] = "array",   [SL_MAP] = "map",
    [SL_STRUCT] = "struct",
};

const char *sl_kind_name(enum sl_kind k)
{
    if (k >= SL_STRING && k <= SL_STRUCT)
        return kind_names[k];
    return "unknown";
}

static int is_scalar(enum sl_kind k)
{
    return k >= SL_STRING && k <= SL_TIMESTAMP;
}

/* ---- type objects ---- */

void sl_type_free(struct sl_type *t)
{
    if (!t)
        return;
    sl_type_free(t->elem);
    if (t->fields) {
        for (size_t i = 0; i < t->nfields; i++) {
            free(t->fields[i].name);
            sl_type_free(t->fields[i].type);
        }
        free(t->fields);
    }
    free(t);
}

static struct sl_type *from_cjson(const cJSON *j, int depth, const char *path,
                                  struct sl_error *err)
{
    struct sl_type *t = NULL;
    char sub[256];

    if (depth > SL_TYPE_MAX_DEPTH) {
        sl_error_set(err, SL_EINVAL, "%s: types nest deeper than %d levels", path,
                     SL_TYPE_MAX_DEPTH);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        sl_error_set(err, SL_EINVAL, "%s: expected an object like {\"type\":\"int64\"}", path);
        return NULL;
    }
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsString(jt)) {
        sl_error_set(err, SL_EINVAL, "%s: missing string member \"type\"", path);
        return NULL;
    }
    int kind = 0;
    for (int k = SL_STRING; k <= SL_STRUCT; k++)
        if (strcmp(jt->valuestring, kind_names[k]) == 0)
            kind = k;
    if (!kind) {
        sl_error_set(err, SL_EINVAL, "%s: unknown type \"%.40s\"", path, jt->valuestring);
        return NULL;
    }
    t = calloc(1, sizeof *t);
    if (!t)
        goto oom;
    t->kind = (enum sl_kind)kind;

    if (kind == SL_ARRAY) {
        snprintf(sub, sizeof sub, "%s.elementType", path);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "elementType");
        if (!e) {
            sl_error_set(err, SL_EINVAL, "%s: array needs \"elementType\"", path);
            goto fail;
        }
        if (!(t->elem = from_cjson(e, depth + 1, sub, err)))
            goto fail;
    } else if (kind == SL_MAP) {
        const cJSON *kt = cJSON_GetObjectItemCaseSensitive(j, "keyType");
        const cJSON *vt = cJSON_GetObjectItemCaseSensitive(j, "valueType");
        const cJSON *ktt = cJSON_GetObjectItemCaseSensitive(kt, "type");
        if (!cJSON_IsString(ktt) || strcmp(ktt->valuestring, "string") != 0) {
            sl_error_set(err, SL_EINVAL, "%s: map needs \"keyType\": {\"type\":\"string\"}",
                         path);
            goto fail;
        }
        if (!vt) {
            sl_error_set(err, SL_EINVAL, "%s: map needs \"valueType\"", path);
            goto fail;
        }
        snprintf(sub, sizeof sub, "%s.valueType", path);
        if (!(t->elem = from_cjson(vt, depth + 1, sub, err)))
            goto fail;
    } else if (kind == SL_STRUCT) {
        const cJSON *fs = cJSON_GetObjectItemCaseSensitive(j, "fields");
        int n = cJSON_GetArraySize(fs);
        if (!cJSON_IsArray(fs) || n == 0) {
            sl_error_set(err, SL_EINVAL, "%s: struct needs a non-empty \"fields\" array", path);
            goto fail;
        }
        t->fields = calloc((size_t)n, sizeof *t->fields);
        if (!t->fields)
            goto oom;
        t->nfields = (size_t)n;
        size_t i = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, fs) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
            if (!cJSON_IsString(name) || !name->valuestring[0]) {
                sl_error_set(err, SL_EINVAL, "%s.fields[%zu]: needs a non-empty \"name\"", path,
                             i);
                goto fail;
            }
            for (size_t k = 0; k < i; k++) {
                if (strcmp(t->fields[k].name, name->valuestring) == 0) {
                    sl_error_set(err, SL_EINVAL, "%s.fields[%zu]: duplicate field name \"%.40s\"",
                                 path, i, name->valuestring);
                    goto fail;
                }
            }
            if (!(t->fields[i].name = strdup(name->valuestring)))
                goto oom;
            const cJSON *dt = cJSON_GetObjectItemCaseSensitive(f, "dataType");
            snprintf(sub, sizeof sub, "%s.fields[%zu].dataType", path, i);
            if (!dt) {
                sl_error_set(err, SL_EINVAL, "%s: missing", sub);
                goto fail;
            }
            if (!(t->fields[i].type = from_cjson(dt, depth + 1, sub, err)))
                goto fail;
            i++;
        }
    }
    return t;
oom:
    sl_error_set(err, SL_ENOMEM, "out of memory");
fail:
    sl_type_free(t);
    return NULL;
}

struct sl_type *sl_type_from_cjson(const cJSON *j, struct sl_error *err)
{
    return from_cjson(j, 1, "dataType", err);
}

static int add_item(cJSON *obj, const char *key, cJSON *item)
{
    if (!item)
        return -1;
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return -1;
    }
    return 0;
}

cJSON *sl_type_to_cjson(const struct sl_type *t)
{
    cJSON *j = cJSON_CreateObject();
    if (!j || !cJSON_AddStringToObject(j, "type", sl_kind_name(t->kind)))
        goto fail;
    if (t->kind == SL_ARRAY) {
        if (add_item(j, "elementType", sl_type_to_cjson(t->elem)) != 0)
            goto fail;
    } else if (t->kind == SL_MAP) {
        cJSON *kt = cJSON_CreateObject();
        if (kt && !cJSON_AddStringToObject(kt, "type", "string")) {
            cJSON_Delete(kt);
            kt = NULL;
        }
        if (add_item(j, "keyType", kt) != 0 ||
            add_item(j, "valueType", sl_type_to_cjson(t->elem)) != 0)
            goto fail;
    } else if (t->kind == SL_STRUCT) {
        cJSON *fs = cJSON_AddArrayToObject(j, "fields");
        if (!fs)
            goto fail;
        for (size_t i = 0; i < t->nfields; i++) {
            cJSON *f = cJSON_CreateObject();
            if (!f)
                goto fail;
            if (!cJSON_AddItemToArray(fs, f)) {
                cJSON_Delete(f);
                goto fail;
            }
            if (!cJSON_AddStringToObject(f, "name", t->fields[i].name) ||
                add_item(f, "dataType", sl_type_to_cjson(t->fields[i].type)) != 0)
                goto fail;
        }
    }
    return j;
fail:
    cJSON_Delete(j);
    return NULL;
}

void sl_type_write_json(struct sl_buf *b, const struct sl_type *t)
{
    sl_buf_puts(b, "{\"type\":\"");
    sl_buf_puts(b, sl_kind_name(t->kind));
    sl_buf_putc(b, '"');
    if (t->kind == SL_ARRAY) {
        sl_buf_puts(b, ",\"elementType\":");
        sl_type_write_json(b, t->elem);
    } else if (t->kind == SL_MAP) {
        sl_buf_puts(b, ",\"keyType\":{\"type\":\"string\"},\"valueType\":");
        sl_type_write_json(b, t->elem);
    } else if (t->kind == SL_STRUCT) {
        sl_buf_puts(b, ",\"fields\":[");
        for (size_t i = 0; i < t->nfields; i++) {
            if (i)
                sl_buf_putc(b, ',');
            sl_buf_puts(b, "{\"name\":");
            sl_buf_json_str(b, t->fields[i].name, strlen(t->fields[i].name));
            sl_buf_puts(b, ",\"dataType\":");
            sl_type_write_json(b, t->fields[i].type);
            sl_buf_putc(b, '}');
        }
        sl_buf_putc(b, ']');
    }
    sl_buf_putc(b, '}');
}

struct sl_type *sl_type_clone(const struct sl_type *t)
{
    struct sl_type *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->kind = t->kind;
    if (t->elem && !(c->elem = sl_type_clone(t->elem)))
        goto fail;
    if (t->nfields) {
        if (!(c->fields = calloc(t->nfields, sizeof *c->fields)))
            goto fail;
        c->nfields = t->nfields;
        for (size_t i = 0; i < t->nfields; i++) {
            if (!(c->fields[i].name = strdup(t->fields[i].name)) ||
                !(c->fields[i].type = sl_type_clone(t->fields[i].type)))
                goto fail;
        }
    }
    return c;
fail:
    sl_type_free(c);
    return NULL;
}

int sl_type_equal(const struct sl_type *a, const struct sl_type *b)
{
    if (a == b)
        return 1;
    if (!a || !b || a->kind != b->kind)
        return 0;
    if (a->kind == SL_ARRAY || a->kind == SL_MAP)
        return sl_type_equal(a->elem, b->elem);
    if (a->kind == SL_STRUCT) {
        if (a->nfields != b->nfields)
            return 0;
        for (size_t i = 0; i < a->nfields; i++)
            if (strcmp(a->fields[i].name, b->fields[i].name) != 0 ||
                !sl_type_equal(a->fields[i].type, b->fields[i].type))
                return 0;
    }
    return 1;
}

/* ---- error messages ---- */

/* Where a value sits inside the top-level one, as a chain of stack frames; only read when
 * an error message is written. */
enum step { STEP_FIELD, STEP_INDEX, STEP_KEY };
struct frame {
    const struct frame *up;
    enum step step;
    const char *name; /* FIELD, KEY */
    size_t len;
    size_t index; /* INDEX */
};

/* Appends up to max bytes of s[0..n) to o (capacity cap, used *on), cut at a character
 * boundary, control characters as '?', and "..." when cut. */
static void put_excerpt(char *o, size_t cap, size_t *on, const char *s, size_t n, size_t max)
{
    size_t i = 0, w = *on;
    while (i < n && i < max && w + 8 < cap) {
        size_t k = sl_utf8_seqlen(s + i, n - i);
        if (!k || (unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '`') {
            o[w++] = (k && s[i] == '"') ? '\'' : '?';
            i += k ? k : 1;
            continue;
        }
        if (i + k > max)
            break;
        memcpy(o + w, s + i, k);
        w += k;
        i += k;
    }
    if (i < n && w + 4 < cap) {
        memcpy(o + w, "...", 3);
        w += 3;
    }
    o[w] = '\0';
    *on = w;
}

static void format_path(const struct frame *f, char *o, size_t cap)
{
    const struct frame *chain[SL_JSON_MAX_DEPTH + 2];
    size_t n = 0, w = 0;

    for (; f && n < sizeof chain / sizeof chain[0]; f = f->up)
        chain[n++] = f;
    o[0] = '\0';
    while (n > 0 && w + 16 < cap) {
        const struct frame *c = chain[--n];
        if (c->step == STEP_INDEX) {
            w += (size_t)snprintf(o + w, cap - w, "[%zu]", c->index);
        } else if (c->step == STEP_FIELD) {
            if (w)
                o[w++] = '.';
            put_excerpt(o, cap, &w, c->name, c->len, 48);
        } else {
            o[w++] = '[';
            o[w++] = '"';
            put_excerpt(o, cap, &w, c->name, c->len, 32);
            o[w++] = '"';
            o[w++] = ']';
            o[w] = '\0';
        }
    }
}

/* Describes a JSON value for "got ..." ("string \"abc\"", "number 3", "array"). */
static void describe(const struct sl_json *in, char *o, size_t cap)
{
    size_t w = 0;
    switch (in->kind) {
    case SL_JSON_STRING:
        w = (size_t)snprintf(o, cap, "string \"");
        put_excerpt(o, cap, &w, in->str, in->len, 40);
        snprintf(o + w, cap - w, "\"");
        return;
    case SL_JSON_NUMBER:
        w = (size_t)snprintf(o, cap, "number ");
        put_excerpt(o, cap, &w, in->str, in->len, 40);
        return;
    case SL_JSON_TRUE:
        snprintf(o, cap, "boolean true");
        return;
    case SL_JSON_FALSE:
        snprintf(o, cap, "boolean false");
        return;
    default:
        snprintf(o, cap, "%s", sl_json_kind_name(in->kind));
        return;
    }
}

static int fail(struct sl_error *err, const struct frame *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct sl_error *err, const struct frame *at, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!at)
        return sl_error_set(err, SL_ESCHEMA, "%s", msg);
    char path[160];
    format_path(at, path, sizeof path);
    return sl_error_set(err, SL_ESCHEMA, "field `%s`: %s", path, msg);
}

static int mismatch(struct sl_error *err, const struct frame *at, const char *want,
                    const struct sl_json *in, const char *why)
{
    char got[96];
    describe(in, got, sizeof got);
    return fail(err, at, "expected %s, got %s%s", want, got, why);
}

/* ---- scalars ---- */

/* 1 if s[0..n) is "-?[0-9]+": an integer that only failed for being out of range. */
static int all_digits(const char *s, size_t n)
{
    size_t i = n && s[0] == '-';
    if (i == n)
        return 0;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int special_float(const struct sl_json *in, double *out)
{
    if (in->len == 3 && memcmp(in->str, "NaN", 3) == 0)
        *out = NAN;
    else if (in->len == 8 && memcmp(in->str, "Infinity", 8) == 0)
        *out = INFINITY;
    else if (in->len == 9 && memcmp(in->str, "-Infinity", 9) == 0)
        *out = -INFINITY;
    else
        return -1;
    return 0;
}

static int read_scalar(enum sl_kind kind, const struct sl_json *in, struct sl_scalar *sc,
                       const struct frame *at, struct sl_error *err)
{
    memset(sc, 0, sizeof *sc);
    sc->kind = kind;
    if (in->kind == SL_JSON_NULL) {
        sc->null = 1;
        return 0;
    }
    const char *name = sl_kind_name(kind);
    switch (kind) {
    case SL_STRING:
        if (in->kind != SL_JSON_STRING)
            return mismatch(err, at, name, in, "");
        sc->str = in->str;
        sc->len = in->len;
        return 0;
    case SL_INT64:
    case SL_INT32:
        if (in->kind != SL_JSON_NUMBER && (kind == SL_INT32 || in->kind != SL_JSON_STRING))
            return mismatch(err, at, name, in, "");
        if (sl_json_int64(in, &sc->i) != 0)
            return mismatch(err, at, name, in,
                            all_digits(in->str, in->len) ? " (out of range)" : "");
        if (kind == SL_INT32 && (sc->i < INT32_MIN || sc->i > INT32_MAX))
            return mismatch(err, at, name, in, " (out of range)");
        sc->f = (double)sc->i;
        return 0;
    case SL_FLOAT64:
        if (in->kind == SL_JSON_STRING && special_float(in, &sc->f) == 0)
            return 0;
        if (in->kind != SL_JSON_NUMBER)
            return mismatch(err, at, name, in, "");
        if (sl_json_double(in, &sc->f) != 0)
            return mismatch(err, at, name, in, " (out of range)");
        return 0;
    case SL_FLOAT32:
        if (in->kind == SL_JSON_STRING && special_float(in, &sc->f) == 0)
            return 0;
        if (in->kind != SL_JSON_NUMBER)
            return mismatch(err, at, name, in, "");
        {
            /* Decimal straight to float: going through double could round twice. */
            char *endp;
            errno = 0;
            float f = strtof(in->str, &endp);
            if (endp != in->str + in->len || isinf(f))
                return mismatch(err, at, name, in, " (out of range)");
            sc->f = f;
        }
        return 0;
    case SL_BOOL:
        if (in->kind != SL_JSON_TRUE && in->kind != SL_JSON_FALSE)
            return mismatch(err, at, name, in, "");
        sc->i = in->kind == SL_JSON_TRUE;
        sc->f = (double)sc->i;
        return 0;
    case SL_TIMESTAMP:
        if (in->kind != SL_JSON_STRING)
            return mismatch(err, at, "timestamp (an RFC 3339 string)", in, "");
        if (sl_time_parse(in->str, in->len, &sc->i) != 0)
            return mismatch(err, at, "timestamp (RFC 3339, like 2023-01-02T00:25:06Z)", in, "");
        sc->f = (double)sc->i;
        return 0;
    default:
        return sl_error_set(err, SL_EINVAL, "%s is not a scalar type", name);
    }
}

int sl_value_scalar(enum sl_kind kind, const struct sl_json *in, struct sl_scalar *out,
                    struct sl_error *err)
{
    if (!is_scalar(kind))
        return sl_error_set(err, SL_EINVAL, "%s is not a scalar type", sl_kind_name(kind));
    return read_scalar(kind, in, out, NULL, err);
}

/* ---- output encoding ---- */

static size_t fmt_i64(int64_t v, char *o)
{
    char tmp[24];
    size_t n = 0, w = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        o[w++] = '-';
    while (n)
        o[w++] = tmp[--n];
    return w;
}

/* For a normal value the nearest 15-digit (float: 6-digit) decimal is within half a unit of
 * its last digit of any shorter text that reads back, so %g there finds the shortest one;
 * subnormals have fewer significant bits and search from 1 digit. */
size_t sl_value_format_double(double d, char *out)
{
    int n = 0;
    for (int prec = fabs(d) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
        n = snprintf(out, 32, "%.*g", prec, d);
        if (prec == 17 || strtod(out, NULL) == d)
            break;
    }
    return (size_t)n;
}

size_t sl_value_format_float(float f, char *out)
{
    int n = 0;
    for (int prec = fabsf(f) < FLT_MIN ? 1 : 6; prec <= 9; prec++) {
        n = snprintf(out, 32, "%.*g", prec, (double)f);
        if (prec == 9 || strtof(out, NULL) == f)
            break;
    }
    return (size_t)n;
}

static void put_float(struct sl_buf *b, double d, int single)
{
    char tmp[32];
    if (isnan(d)) {
        sl_buf_append(b, "\"NaN\"", 5);
    } else if (isinf(d)) {
        if (d > 0)
            sl_buf_append(b, "\"Infinity\"", 10);
        else
            sl_buf_append(b, "\"-Infinity\"", 11);
    } else {
        size_t n = single ? sl_value_format_float((float)d, tmp) : sl_value_format_double(d, tmp);
        sl_buf_append(b, tmp, n);
    }
}

static int encode(const struct sl_type *t, const struct sl_json *in, struct sl_buf *out,
                  const struct frame *at, struct sl_error *err);

static int encode_struct(const struct sl_type *t, const struct sl_json *in, struct sl_buf *out,
                         const struct frame *at, struct sl_error *err)
{
    if (in->kind != SL_JSON_OBJECT)
        return mismatch(err, at, "struct (a JSON object)", in, "");
    sl_buf_putc(out, '[');
    /* Members usually come in field order, so each search starts after the last match. */
    const struct sl_json *cur = in->child;
    size_t matched = 0;
    for (size_t i = 0; i < t->nfields; i++) {
        const struct sl_field *f = &t->fields[i];
        size_t flen = strlen(f->name);
        const struct sl_json *m = NULL;
        const struct sl_json *c = cur;
        for (size_t k = 0; k < in->count && c; k++) {
            if (c->keylen == flen && memcmp(c->key, f->name, flen) == 0) {
                m = c;
                break;
            }
            c = c->next ? c->next : in->child;
        }
        if (i)
            sl_buf_putc(out, ',');
        if (!m) {
            sl_buf_append(out, "null", 4);
            continue;
        }
        matched++;
        cur = m->next ? m->next : in->child;
        struct frame fr = {at, STEP_FIELD, f->name, flen, 0};
        int rc = encode(f->type, m, out, &fr, err);
        if (rc)
            return rc;
    }
    sl_buf_putc(out, ']');
    if (matched == in->count)
        return 0;
    for (const struct sl_json *c = in->child; c; c = c->next) {
        size_t i;
        for (i = 0; i < t->nfields; i++)
            if (strlen(t->fields[i].name) == c->keylen &&
                memcmp(t->fields[i].name, c->key, c->keylen) == 0)
                break;
        if (i == t->nfields) {
            char name[80];
            size_t w = 0;
            put_excerpt(name, sizeof name, &w, c->key, c->keylen, 48);
            return fail(err, at, "unknown field `%s`", name);
        }
    }
    return fail(err, at, "duplicate field");
}

static int encode(const struct sl_type *t, const struct sl_json *in, struct sl_buf *out,
                  const struct frame *at, struct sl_error *err)
{
    char tmp[SL_TIME_MAXLEN + 2];
    struct sl_scalar sc;
    size_t n, i;
    int rc;

    if (in->kind == SL_JSON_NULL) {
        sl_buf_append(out, "null", 4);
        return 0;
    }
    switch (t->kind) {
    case SL_STRING:
        if (in->kind != SL_JSON_STRING)
            return mismatch(err, at, "string", in, "");
        sl_buf_json_str(out, in->str, in->len);
        return 0;
    case SL_INT64:
        if ((rc = read_scalar(t->kind, in, &sc, at, err)))
            return rc;
        tmp[0] = '"';
        n = fmt_i64(sc.i, tmp + 1) + 1;
        tmp[n++] = '"';
        sl_buf_append(out, tmp, n);
        return 0;
    case SL_INT32:
        if ((rc = read_scalar(t->kind, in, &sc, at, err)))
            return rc;
        sl_buf_append(out, tmp, fmt_i64(sc.i, tmp));
        return 0;
    case SL_FLOAT64:
    case SL_FLOAT32:
        if ((rc = read_scalar(t->kind, in, &sc, at, err)))
            return rc;
        put_float(out, sc.f, t->kind == SL_FLOAT32);
        return 0;
    case SL_BOOL:
        if ((rc = read_scalar(t->kind, in, &sc, at, err)))
            return rc;
        if (sc.i)
            sl_buf_append(out, "true", 4);
        else
            sl_buf_append(out, "false", 5);
        return 0;
    case SL_TIMESTAMP:
        if ((rc = read_scalar(t->kind, in, &sc, at, err)))
            return rc;
        tmp[0] = '"';
        n = sl_time_format(sc.i, tmp + 1) + 1;
        tmp[n++] = '"';
        sl_buf_append(out, tmp, n);
        return 0;
    case SL_ARRAY:
        if (in->kind != SL_JSON_ARRAY)
            return mismatch(err, at, "array", in, "");
        sl_buf_putc(out, '[');
        i = 0;
        for (const struct sl_json *c = in->child; c; c = c->next, i++) {
            if (i)
                sl_buf_putc(out, ',');
            struct frame fr = {at, STEP_INDEX, NULL, 0, i};
            if ((rc = encode(t->elem, c, out, &fr, err)))
                return rc;
        }
        sl_buf_putc(out, ']');
        return 0;
    case SL_MAP:
        if (in->kind != SL_JSON_OBJECT)
            return mismatch(err, at, "map (a JSON object)", in, "");
        sl_buf_putc(out, '{');
        for (const struct sl_json *c = in->child; c; c = c->next) {
            if (c != in->child)
                sl_buf_putc(out, ',');
            sl_buf_json_str(out, c->key, c->keylen);
            sl_buf_putc(out, ':');
            struct frame fr = {at, STEP_KEY, c->key, c->keylen, 0};
            if ((rc = encode(t->elem, c, out, &fr, err)))
                return rc;
        }
        sl_buf_putc(out, '}');
        return 0;
    case SL_STRUCT:
        return encode_struct(t, in, out, at, err);
    }
    return sl_error_set(err, SL_EINVAL, "invalid type");
}

static int encode_root(const struct sl_type *t, const struct sl_json *in, struct sl_buf *out,
                       const struct frame *at, struct sl_error *err)
{
    size_t mark = out->len;
    int rc = encode(t, in, out, at, err);
    if (rc == 0 && out->oom)
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    if (rc != 0 && out->len > mark)
        out->len = mark;
    return rc;
}

int sl_value_encode(const struct sl_type *t, const struct sl_json *in, struct sl_buf *out,
                    struct sl_error *err)
{
    return encode_root(t, in, out, NULL, err);
}

int sl_value_encode_field(const struct sl_type *t, const char *name, const struct sl_json *in,
                          struct sl_buf *out, struct sl_error *err)
{
    struct frame fr = {NULL, STEP_FIELD, name, strlen(name), 0};
    return encode_root(t, in, out, &fr, err);
}
