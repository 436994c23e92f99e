/* Growable byte buffers and bounded little-endian readers. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "error.h"

int sl_buf_reserve(struct sl_buf *b, size_t extra)
{
    if (b->oom)
        return SL_ENOMEM;
    if (b->p && b->cap - b->len > extra) /* keep a byte for sl_buf_cstr's NUL */
        return 0;
    if (extra > SIZE_MAX - b->len - 1) {
        b->oom = 1;
        return SL_ENOMEM;
    }
    size_t need = b->len + extra + 1;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return SL_ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void sl_buf_append(struct sl_buf *b, const void *p, size_t n)
{
    if (n == 0 || sl_buf_reserve(b, n) != 0)
        return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void sl_buf_puts(struct sl_buf *b, const char *s)
{
    sl_buf_append(b, s, strlen(s));
}

void sl_buf_putc(struct sl_buf *b, char c)
{
    if (sl_buf_reserve(b, 1) != 0)
        return;
    b->p[b->len++] = c;
}

void sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        sl_buf_append(b, small, (size_t)n);
        return;
    }
    if (sl_buf_reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

size_t sl_utf8_seqlen(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char c = p[0];

    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0; /* continuation byte or overlong 2-byte lead */
    if (c < 0xE0) {
        if (n < 2 || (p[1] & 0xC0) != 0x80)
            return 0;
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && p[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0)
            return 0; /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xF4 && p[1] >= 0x90)
            return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

/* 1 for bytes that need no escaping inside a JSON string. */
static int json_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

void sl_buf_json_str(struct sl_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;

    sl_buf_putc(b, '"');
    while (i < n) {
        size_t run = i;
        while (run < n && json_plain((unsigned char)s[run]))
            run++;
        if (run > i) {
            sl_buf_append(b, s + i, run - i);
            i = run;
            if (i == n)
                break;
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t k = sl_utf8_seqlen(s + i, n - i);
            if (k) {
                sl_buf_append(b, s + i, k);
                i += k;
            } else {
                sl_buf_append(b, "\xEF\xBF\xBD", 3);
                i++;
            }
            continue;
        }
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        sl_buf_append(b, esc, elen);
        i++;
    }
    sl_buf_putc(b, '"');
}

void sl_buf_u32(struct sl_buf *b, uint32_t v)
{
    unsigned char x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (unsigned char)(v >> (8 * i));
    sl_buf_append(b, x, sizeof x);
}

void sl_buf_u64(struct sl_buf *b, uint64_t v)
{
    unsigned char x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (unsigned char)(v >> (8 * i));
    sl_buf_append(b, x, sizeof x);
}

void sl_buf_lenstr(struct sl_buf *b, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        b->oom = 1; /* cannot be represented; fail the whole write */
        return;
    }
    sl_buf_u32(b, (uint32_t)n);
    sl_buf_append(b, p, n);
}

const char *sl_buf_cstr(struct sl_buf *b)
{
    if (sl_buf_reserve(b, 1) != 0)
        return NULL;
    b->p[b->len] = '\0';
    return b->p;
}

void sl_buf_reset(struct sl_buf *b)
{
    b->len = 0;
    b->oom = 0;
}

void sl_buf_free(struct sl_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = 0;
}

char *sl_buf_detach(struct sl_buf *b, size_t *len)
{
    char *p = NULL;

    if (sl_buf_cstr(b)) {
        p = b->p;
        if (len)
            *len = b->len;
        b->p = NULL;
    } else if (len) {
        *len = 0;
    }
    sl_buf_free(b);
    return p;
}

int sl_cur_u32(struct sl_cursor *c, uint32_t *v)
{
    if (c->left < 4)
        return SL_ECORRUPT;
    uint32_t x = 0;
    for (int i = 0; i < 4; i++)
        x |= (uint32_t)c->p[i] << (8 * i);
    *v = x;
    c->p += 4;
    c->left -= 4;
    return 0;
}

int sl_cur_u64(struct sl_cursor *c, uint64_t *v)
{
    if (c->left < 8)
        return SL_ECORRUPT;
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)c->p[i] << (8 * i);
    *v = x;
    c->p += 8;
    c->left -= 8;
    return 0;
}

int sl_cur_bytes(struct sl_cursor *c, size_t n, const void **p)
{
    if (c->left < n)
        return SL_ECORRUPT;
    *p = c->p;
    c->p += n;
    c->left -= n;
    return 0;
}

int sl_cur_lenstr(struct sl_cursor *c, const char **p, size_t *n)
{
    struct sl_cursor save = *c;
    uint32_t len;
    const void *q;

    if (sl_cur_u32(c, &len) != 0 || sl_cur_bytes(c, len, &q) != 0) {
        *c = save;
        return SL_ECORRUPT;
    }
    *p = q;
    *n = len;
    return 0;
}

int sl_bytes_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

int sl_base64_encode(char *out, const void *in, size_t n)
{
    if (n > SL_BASE64_MAX)
        return SL_EINVAL;
    /* writes SL_BASE64_LEN(n) characters and a NUL; n == 0 writes just the NUL */
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
    return 0;
}
