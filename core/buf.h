/* Growable byte buffers: the one way core builds strings and binary records. */
#ifndef SL_BUF_H
#define SL_BUF_H

#include <stddef.h>
#include <stdint.h>

/* A length-carrying byte buffer. Never assumed NUL-terminated unless sl_buf_cstr() is called.
 * Allocation failures are sticky: after one, appends do nothing and `oom` stays set, so a
 * writer checks once at the end. */
struct sl_buf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
};

#define SL_BUF_INIT {NULL, 0, 0, 0}

/* Ensures room for `extra` more bytes. Returns 0 or SL_ENOMEM (and sets oom). */
int sl_buf_reserve(struct sl_buf *b, size_t extra);
/* Append bytes, a C string, one char, printf-style text. Nothing is appended after oom. */
void sl_buf_append(struct sl_buf *b, const void *p, size_t n);
void sl_buf_puts(struct sl_buf *b, const char *s);
void sl_buf_putc(struct sl_buf *b, char c);
void sl_buf_printf(struct sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a quoted, escaped JSON string. Invalid UTF-8 bytes become U+FFFD. */
void sl_buf_json_str(struct sl_buf *b, const char *s, size_t n);
/* Appends fixed-width little-endian integers and a u32-length-prefixed byte string (n over
 * UINT32_MAX sets oom). */
void sl_buf_u32(struct sl_buf *b, uint32_t v);
void sl_buf_u64(struct sl_buf *b, uint64_t v);
void sl_buf_lenstr(struct sl_buf *b, const void *p, size_t n);
/* NUL-terminates (without counting the NUL in len) and returns p; NULL on oom. */
const char *sl_buf_cstr(struct sl_buf *b);
/* Empties without freeing and clears oom. */
void sl_buf_reset(struct sl_buf *b);
/* Frees the storage; b is reusable after. Accepts a zeroed buffer. */
void sl_buf_free(struct sl_buf *b);
/* Hands the storage to the caller (caller frees with free()); b becomes empty. The result is
 * NUL-terminated (not counted in *len); NULL (and *len = 0) after an allocation failure. */
char *sl_buf_detach(struct sl_buf *b, size_t *len);

/* Length (1-4) of the well-formed UTF-8 sequence starting at s[0..n), n > 0; 0 when it is
 * invalid, overlong, a surrogate, above U+10FFFF or cut short. */
size_t sl_utf8_seqlen(const char *s, size_t n);

/* Standard base64 (RFC 4648: '+' and '/', '=' padding, no line breaks) of in[0..n) into out,
 * which has room for SL_BASE64_LEN(n) + 1 bytes: SL_BASE64_LEN(n) characters, then a NUL.
 * Returns 0, or SL_EINVAL (out untouched) when n is over SL_BASE64_MAX (OpenSSL's encoder,
 * which does the work, counts in int). Any thread. */
#define SL_BASE64_LEN(n) (((n) + 2) / 3 * 4)
#define SL_BASE64_MAX ((size_t)0x7fffffff / 4 * 3)
int sl_base64_encode(char *out, const void *in, size_t n);

/* Orders byte strings as the stores do: memcmp, then the shorter first. */
int sl_bytes_cmp(const void *a, size_t al, const void *b, size_t bl);

/* Little-endian readers over a bounded cursor; return 0 or SL_ECORRUPT when out of bytes
 * (the cursor is then left unchanged). sl_cur_lenstr and sl_cur_bytes borrow from c->p. */
struct sl_cursor {
    const unsigned char *p;
    size_t left;
};
int sl_cur_u32(struct sl_cursor *c, uint32_t *v);
int sl_cur_u64(struct sl_cursor *c, uint64_t *v);
int sl_cur_lenstr(struct sl_cursor *c, const char **p, size_t *n);
int sl_cur_bytes(struct sl_cursor *c, size_t n, const void **p);

#endif
