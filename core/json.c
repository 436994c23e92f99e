/* A strict, single-pass JSON reader over an arena, and a compact writer. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"

/* ---- arena ---- */

struct sl_arena_chunk {
    struct sl_arena_chunk *next;
    size_t size; /* usable bytes in data */
    size_t used;
    _Alignas(8) unsigned char data[];
};

#define ARENA_FIRST 4096
#define ARENA_MAX_CHUNK (1024 * 1024)

void *sl_arena_alloc(struct sl_arena *a, size_t n)
{
    if (n > SIZE_MAX / 2)
        return NULL;
    n = (n + 7) & ~(size_t)7;
    if (n == 0)
        n = 8;
    if (a->limit && (n > a->limit || a->used > a->limit - n))
        return NULL;

    struct sl_arena_chunk *c = a->head;
    if (c && c->size - c->used >= n) {
        void *p = c->data + c->used;
        c->used += n;
        a->used += n;
        return p;
    }

    size_t size = c ? c->size * 2 : ARENA_FIRST;
    if (size > ARENA_MAX_CHUNK)
        size = ARENA_MAX_CHUNK;
    int big = n > size / 4;
    if (big)
        size = n; /* a chunk of its own, so the current chunk's tail stays usable */
    struct sl_arena_chunk *nc = malloc(sizeof *nc + size);
    if (!nc)
        return NULL;
    nc->size = size;
    nc->used = n;
    if (big && c) {
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        a->head = nc;
    }
    a->used += n;
    return nc->data;
}

char *sl_arena_strndup(struct sl_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *p = sl_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void sl_arena_free(struct sl_arena *a)
{
    struct sl_arena_chunk *c = a->head;
    while (c) {
        struct sl_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}

void sl_arena_reset(struct sl_arena *a)
{
    struct sl_arena_chunk *keep = a->head;
    if (!keep)
        return;
    struct sl_arena_chunk *c = keep->next;
    while (c) {
        struct sl_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    keep->next = NULL;
    keep->used = 0;
    a->used = 0;
}

struct sl_json *sl_json_node(struct sl_arena *a, enum sl_json_kind k, const char *key,
                             size_t keylen, const void *s, size_t n)
{
    size_t extra = (key ? keylen + 1 : 0) + (s ? n + 1 : 0);
    struct sl_json *j = sl_arena_alloc(a, sizeof *j + extra);
    if (!j)
        return NULL;
    memset(j, 0, sizeof *j);
    j->kind = k;
    char *w = (char *)(j + 1);
    if (key) {
        memcpy(w, key, keylen);
        w[keylen] = '\0';
        j->key = w;
        j->keylen = keylen;
        w += keylen + 1;
    }
    if (s) {
        if (n)
            memcpy(w, s, n);
        w[n] = '\0';
        j->str = w;
        j->len = n;
    }
    return j;
}

/* ---- parser ---- */

struct parser {
    const char *start;
    const char *p;
    const char *end;
    struct sl_arena *a;
    struct sl_error *err;
    int depth;
    int failed;
};

static void *perr(struct parser *ps, const char *at, const char *what)
{
    if (ps->failed)
        return NULL;
    ps->failed = 1;
    size_t line = 1, col = 1;
    for (const char *q = ps->start; q < at; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)*q & 0xC0) != 0x80) {
            col++;
        }
    }
    sl_error_set(ps->err, SL_EINVAL, "JSON syntax error at line %zu, column %zu: %s%s", line,
                 col, what, at >= ps->end ? " (end of input)" : "");
    return NULL;
}

static void *poom(struct parser *ps)
{
    if (!ps->failed) {
        ps->failed = 1;
        sl_error_set(ps->err, SL_ENOMEM, "out of memory parsing JSON");
    }
    return NULL;
}

static void skip_ws(struct parser *ps)
{
    const char *p = ps->p;
    while (p < ps->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    ps->p = p;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads 4 hex digits at p (p + 4 <= end checked by caller); -1 if not hex. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses the string starting at the opening quote ps->p. Escapes never grow the text, so the
 * raw length bounds the decoded one. */
static int parse_string(struct parser *ps, const char **out, size_t *outlen)
{
    const char *q = ps->p + 1;
    const char *end = ps->end;
    int has_esc = 0;

    for (;;) {
        while (q < end) {
            unsigned char c = (unsigned char)*q;
            if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80)
                break;
            q++;
        }
        if (q >= end) {
            perr(ps, q, "unterminated string");
            return -1;
        }
        unsigned char c = (unsigned char)*q;
        if (c == '"')
            break;
        if (c == '\\') {
            has_esc = 1;
            if (end - q < 2) {
                perr(ps, end, "unterminated string");
                return -1;
            }
            if (!strchr("\"\\/bfnrtu", q[1]) || q[1] == '\0') {
                perr(ps, q, "invalid escape in string");
                return -1;
            }
            if (q[1] == 'u' && (end - q < 6 || hex4(q + 2) < 0)) {
                perr(ps, q, "invalid \\u escape (need 4 hex digits)");
                return -1;
            }
            q += q[1] == 'u' ? 6 : 2;
        } else if (c < 0x20) {
            perr(ps, q, "control character in string (escape it)");
            return -1;
        } else {
            size_t k = sl_utf8_seqlen(q, (size_t)(end - q));
            if (!k) {
                perr(ps, q, "invalid UTF-8 in string");
                return -1;
            }
            q += k;
        }
    }

    const char *raw = ps->p + 1;
    size_t rawlen = (size_t)(q - raw);
    char *s = sl_arena_alloc(ps->a, rawlen + 1);
    if (!s) {
        poom(ps);
        return -1;
    }
    size_t n = 0;
    if (!has_esc) {
        memcpy(s, raw, rawlen);
        n = rawlen;
    } else {
        const char *r = raw;
        while (r < q) {
            const char *bs = memchr(r, '\\', (size_t)(q - r));
            if (!bs)
                bs = q;
            memcpy(s + n, r, (size_t)(bs - r));
            n += (size_t)(bs - r);
            r = bs;
            if (r >= q)
                break;
            char e = r[1];
            switch (e) {
            case '"': s[n++] = '"'; r += 2; continue;
            case '\\': s[n++] = '\\'; r += 2; continue;
            case '/': s[n++] = '/'; r += 2; continue;
            case 'b': s[n++] = '\b'; r += 2; continue;
            case 'f': s[n++] = '\f'; r += 2; continue;
            case 'n': s[n++] = '\n'; r += 2; continue;
            case 'r': s[n++] = '\r'; r += 2; continue;
            case 't': s[n++] = '\t'; r += 2; continue;
            case 'u': break;
            default:
                perr(ps, r, "invalid escape in string");
                return -1;
            }
            long cp = q - r >= 6 ? hex4(r + 2) : -1;
            if (cp < 0) {
                perr(ps, r, "invalid \\u escape (need 4 hex digits)");
                return -1;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                perr(ps, r, "unpaired surrogate in \\u escape");
                return -1;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                long lo = q - r >= 12 && r[6] == '\\' && r[7] == 'u' ? hex4(r + 8) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    perr(ps, r, "unpaired surrogate in \\u escape");
                    return -1;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                r += 6;
            }
            n += put_utf8(s + n, (unsigned long)cp);
            r += 6;
        }
    }
    s[n] = '\0';
    *out = s;
    *outlen = n;
    ps->p = q + 1;
    return 0;
}

static int parse_number(struct parser *ps, struct sl_json *node)
{
    const char *p = ps->p, *end = ps->end, *s = p;

    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9') {
            perr(ps, s, "invalid number: leading zero");
            return -1;
        }
    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        perr(ps, p, "invalid number");
        return -1;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9') {
            perr(ps, p, "invalid number: expected digit after '.'");
            return -1;
        }
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9') {
            perr(ps, p, "invalid number: expected digit in exponent");
            return -1;
        }
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    node->kind = SL_JSON_NUMBER;
    node->len = (size_t)(p - s);
    node->str = sl_arena_strndup(ps->a, s, node->len);
    if (!node->str) {
        poom(ps);
        return -1;
    }
    ps->p = p;
    return 0;
}

static int parse_value(struct parser *ps, struct sl_json *node);

#define DUP_LINEAR 16

static uint64_t key_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Open-addressing set of an object's member names, for duplicate detection. */
struct keyset {
    struct sl_json **slot;
    size_t cap;
};

/* Inserts m; returns 1 if a member of that name is already present, 0 if added, -1 on OOM. */
static int keyset_add(struct parser *ps, struct keyset *ks, struct sl_json *m, size_t count)
{
    if ((count + 1) * 2 > ks->cap) {
        size_t ncap = ks->cap ? ks->cap * 2 : 64;
        struct sl_json **ns = sl_arena_alloc(ps->a, ncap * sizeof *ns);
        if (!ns)
            return -1;
        memset(ns, 0, ncap * sizeof *ns);
        struct keyset old = *ks;
        ks->slot = ns;
        ks->cap = ncap;
        for (size_t i = 0; i < old.cap; i++) {
            if (!old.slot[i])
                continue;
            size_t j = key_hash(old.slot[i]->key, old.slot[i]->keylen) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = old.slot[i];
        }
    }
    size_t j = key_hash(m->key, m->keylen) & (ks->cap - 1);
    while (ks->slot[j]) {
        struct sl_json *o = ks->slot[j];
        if (o->keylen == m->keylen && memcmp(o->key, m->key, m->keylen) == 0)
            return 1;
        j = (j + 1) & (ks->cap - 1);
    }
    ks->slot[j] = m;
    return 0;
}

static int parse_object(struct parser *ps, struct sl_json *node)
{
    struct sl_json *last = NULL;
    struct keyset ks = {NULL, 0};

    node->kind = SL_JSON_OBJECT;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return 0;
    }
    for (;;) {
        if (ps->p >= ps->end || *ps->p != '"') {
            perr(ps, ps->p, node->count ? "expected '\"' (member name)" :
                                          "expected '\"' (member name) or '}'");
            return -1;
        }
        struct sl_json *m = sl_arena_alloc(ps->a, sizeof *m);
        if (!m) {
            poom(ps);
            return -1;
        }
        memset(m, 0, sizeof *m);
        const char *keypos = ps->p;
        if (parse_string(ps, &m->key, &m->keylen) != 0)
            return -1;

        int dup = 0;
        if (node->count < DUP_LINEAR) {
            for (struct sl_json *o = node->child; o; o = o->next) {
                if (o->keylen == m->keylen && memcmp(o->key, m->key, m->keylen) == 0) {
                    dup = 1;
                    break;
                }
            }
            if (!dup && node->count + 1 == DUP_LINEAR) {
                size_t i = 0;
                for (struct sl_json *o = node->child; o; o = o->next, i++)
                    if (keyset_add(ps, &ks, o, i) < 0)
                        goto oom;
                if (keyset_add(ps, &ks, m, i) < 0)
                    goto oom;
            }
        } else {
            dup = keyset_add(ps, &ks, m, node->count);
            if (dup < 0)
                goto oom;
        }
        if (dup) {
            char msg[96];
            size_t n = (size_t)snprintf(msg, sizeof msg, "duplicate member name `");
            size_t i = 0;
            while (i < m->keylen && n < 64) {
                size_t k = sl_utf8_seqlen(m->key + i, m->keylen - i);
                if (!k || (unsigned char)m->key[i] < 0x20) {
                    msg[n++] = '?';
                    i++;
                } else {
                    memcpy(msg + n, m->key + i, k);
                    n += k;
                    i += k;
                }
            }
            snprintf(msg + n, sizeof msg - n, "%s`", i < m->keylen ? "..." : "");
            perr(ps, keypos, msg);
            return -1;
        }

        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            perr(ps, ps->p, "expected ':'");
            return -1;
        }
        ps->p++;
        skip_ws(ps);
        if (parse_value(ps, m) != 0)
            return -1;
        if (last)
            last->next = m;
        else
            node->child = m;
        last = m;
        node->count++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            return 0;
        }
        perr(ps, ps->p, "expected ',' or '}'");
        return -1;
    }
oom:
    poom(ps);
    return -1;
}

static int parse_array(struct parser *ps, struct sl_json *node)
{
    struct sl_json *last = NULL;

    node->kind = SL_JSON_ARRAY;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return 0;
    }
    for (;;) {
        struct sl_json *e = sl_arena_alloc(ps->a, sizeof *e);
        if (!e) {
            poom(ps);
            return -1;
        }
        memset(e, 0, sizeof *e);
        if (parse_value(ps, e) != 0)
            return -1;
        if (last)
            last->next = e;
        else
            node->child = e;
        last = e;
        node->count++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return 0;
        }
        perr(ps, ps->p, "expected ',' or ']'");
        return -1;
    }
}

static int literal(struct parser *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        perr(ps, ps->p, "invalid literal (expected a value)");
        return -1;
    }
    ps->p += n;
    return 0;
}

/* Parses the value at ps->p (whitespace already skipped) into node. */
static int parse_value(struct parser *ps, struct sl_json *node)
{
    if (ps->p >= ps->end) {
        perr(ps, ps->p, "expected a value");
        return -1;
    }
    int r;
    switch (*ps->p) {
    case '{':
    case '[':
        if (++ps->depth > SL_JSON_MAX_DEPTH) {
            perr(ps, ps->p, "nesting deeper than 64 levels");
            return -1;
        }
        r = *ps->p == '{' ? parse_object(ps, node) : parse_array(ps, node);
        ps->depth--;
        return r;
    case '"':
        node->kind = SL_JSON_STRING;
        return parse_string(ps, &node->str, &node->len);
    case 't':
        node->kind = SL_JSON_TRUE;
        return literal(ps, "true", 4);
    case 'f':
        node->kind = SL_JSON_FALSE;
        return literal(ps, "false", 5);
    case 'n':
        node->kind = SL_JSON_NULL;
        return literal(ps, "null", 4);
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return parse_number(ps, node);
    default:
        perr(ps, ps->p, "expected a value");
        return -1;
    }
}

struct sl_json *sl_json_parse(const char *p, size_t len, struct sl_arena *a, struct sl_error *err)
{
    if (!p) {
        p = "";
        len = 0;
    }
    struct parser ps = {p, p, p + len, a, err, 0, 0};
    struct sl_json *root = sl_arena_alloc(a, sizeof *root);
    if (!root)
        return poom(&ps);
    memset(root, 0, sizeof *root);
    skip_ws(&ps);
    if (parse_value(&ps, root) != 0)
        return NULL;
    skip_ws(&ps);
    if (ps.p != ps.end)
        return perr(&ps, ps.p, "unexpected data after the value");
    return root;
}

/* ---- accessors ---- */

struct sl_json *sl_json_get(const struct sl_json *obj, const char *key)
{
    if (!obj || obj->kind != SL_JSON_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (struct sl_json *m = obj->child; m; m = m->next)
        if (m->keylen == n && memcmp(m->key, key, n) == 0)
            return m;
    return NULL;
}

int sl_json_int64(const struct sl_json *n, int64_t *out)
{
    if (!n || (n->kind != SL_JSON_NUMBER && n->kind != SL_JSON_STRING))
        return SL_EINVAL;
    const char *s = n->str, *end = n->str + n->len;
    int neg = 0;
    if (s < end && *s == '-') {
        neg = 1;
        s++;
    }
    if (s >= end || (*s == '0' && end - s > 1))
        return SL_EINVAL; /* empty, "-", or a leading zero */
    uint64_t v = 0;
    const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return SL_EINVAL;
        unsigned d = (unsigned)(*s - '0');
        if (v > (lim - d) / 10)
            return SL_EINVAL;
        v = v * 10 + d;
    }
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return 0;
}

int sl_json_double(const struct sl_json *n, double *out)
{
    if (!n || n->kind != SL_JSON_NUMBER || n->len == 0)
        return SL_EINVAL;
    char *endp;
    errno = 0;
    double d = strtod(n->str, &endp);
    if (endp != n->str + n->len)
        return SL_EINVAL;
    if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
        return SL_EINVAL;
    *out = d;
    return 0;
}

/* ---- writer ---- */

void sl_json_write(struct sl_buf *b, const struct sl_json *n)
{
    switch (n->kind) {
    case SL_JSON_NULL:
        sl_buf_append(b, "null", 4);
        return;
    case SL_JSON_FALSE:
        sl_buf_append(b, "false", 5);
        return;
    case SL_JSON_TRUE:
        sl_buf_append(b, "true", 4);
        return;
    case SL_JSON_NUMBER:
        sl_buf_append(b, n->str, n->len);
        return;
    case SL_JSON_STRING:
        sl_buf_json_str(b, n->str, n->len);
        return;
    case SL_JSON_ARRAY:
        sl_buf_putc(b, '[');
        for (const struct sl_json *c = n->child; c; c = c->next) {
            if (c != n->child)
                sl_buf_putc(b, ',');
            sl_json_write(b, c);
        }
        sl_buf_putc(b, ']');
        return;
    case SL_JSON_OBJECT:
        sl_buf_putc(b, '{');
        for (const struct sl_json *c = n->child; c; c = c->next) {
            if (c != n->child)
                sl_buf_putc(b, ',');
            sl_buf_json_str(b, c->key, c->keylen);
            sl_buf_putc(b, ':');
            sl_json_write(b, c);
        }
        sl_buf_putc(b, '}');
        return;
    }
}

const char *sl_json_kind_name(enum sl_json_kind k)
{
    switch (k) {
    case SL_JSON_NULL: return "null";
    case SL_JSON_FALSE:
    case SL_JSON_TRUE: return "boolean";
    case SL_JSON_NUMBER: return "number";
    case SL_JSON_STRING: return "string";
    case SL_JSON_ARRAY: return "array";
    case SL_JSON_OBJECT: return "object";
    }
    return "unknown";
}
