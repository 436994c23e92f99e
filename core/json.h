/* A small JSON reader for request bodies. Unlike cJSON it keeps number literals as text, so
 * int64 values above 2^53 survive exactly, and it reports where a syntax error is. Nodes are
 * allocated from an arena that the caller frees in one go. Output is written with sl_buf. */
#ifndef SL_JSON_H
#define SL_JSON_H

#include <stddef.h>
#include <stdint.h>

struct sl_error;

enum sl_json_kind {
    SL_JSON_NULL,
    SL_JSON_FALSE,
    SL_JSON_TRUE,
    SL_JSON_NUMBER,
    SL_JSON_STRING,
    SL_JSON_ARRAY,
    SL_JSON_OBJECT,
};

struct sl_json {
    enum sl_json_kind kind;
    const char *str;  /* STRING: unescaped UTF-8; NUMBER: literal text (both NUL-terminated) */
    size_t len;       /* length of str */
    const char *key;  /* member name when inside an object (unescaped, NUL-terminated) */
    size_t keylen;
    size_t count;     /* ARRAY/OBJECT: number of children */
    struct sl_json *child; /* first child */
    struct sl_json *next;  /* next sibling */
};

/* Chunked bump allocator. Zero-initialise (`struct sl_arena a = {0};`), free with
 * sl_arena_free. Not thread-safe; one per request. */
struct sl_arena {
    struct sl_arena_chunk *head;
    size_t used; /* total bytes handed out */
    size_t limit; /* 0 = unlimited; otherwise sl_arena_alloc fails past it */
};
/* Returns 8-byte aligned memory or NULL (out of memory or over limit). */
void *sl_arena_alloc(struct sl_arena *a, size_t n);
/* Copies s[0..n) and a NUL into a; NULL as sl_arena_alloc. */
char *sl_arena_strndup(struct sl_arena *a, const char *s, size_t n);
/* Frees every chunk; a stays usable with the same limit. */
void sl_arena_free(struct sl_arena *a);
/* Forgets every allocation but keeps the newest chunk for reuse (loops that fill and empty
 * an arena avoid a malloc/free per round). Earlier pointers become invalid. */
void sl_arena_reset(struct sl_arena *a);

#define SL_JSON_MAX_DEPTH 64

/* Parses p[0..len) (one value, optional surrounding whitespace) into nodes from arena a.
 * Returns the root, or NULL with err set: SL_EINVAL and a message such as
 * "JSON syntax error at line 3, column 14: expected ':'" (also for nesting past
 * SL_JSON_MAX_DEPTH), or SL_ENOMEM. Strict RFC 8259: no comments, no trailing commas, no
 * NaN; strings must be valid UTF-8; \u escapes with surrogate pairs are decoded (a lone
 * surrogate is an error). Duplicate member names in one object are rejected, so every reader
 * of the tree sees the same value. Columns count UTF-8 characters from 1. */
struct sl_json *sl_json_parse(const char *p, size_t len, struct sl_arena *a, struct sl_error *err);

/* A node of kind k allocated from a, with copies (NUL-terminated) of key[0..keylen) when key
 * is not NULL and of s[0..n) when s is not NULL; links and counts zeroed. NULL on ENOMEM.
 * For code that builds JSON values itself (file readers, transformations). */
struct sl_json *sl_json_node(struct sl_arena *a, enum sl_json_kind k, const char *key,
                             size_t keylen, const void *s, size_t n);

/* Member of an object by name, or NULL (also when obj is not an object). Borrows. */
struct sl_json *sl_json_get(const struct sl_json *obj, const char *key);

/* Exact integer value of a NUMBER node written without fraction or exponent, or of a STRING
 * holding a decimal integer (optional '-'): 0, or SL_EINVAL if not an integer or out of
 * int64 range. A STRING must match the JSON integer grammar: no '+', spaces or leading
 * zeros ("-0" is 0). */
int sl_json_int64(const struct sl_json *n, int64_t *out);
/* Double value of a NUMBER node (correctly rounded; tiny values round to 0): 0, or SL_EINVAL
 * when it is not a NUMBER or overflows a double. Assumes the "C" LC_NUMERIC locale. */
int sl_json_double(const struct sl_json *n, double *out);

/* Writes node (and children) back as compact JSON: numbers verbatim, strings re-escaped
 * (only '"', '\\' and control characters). Parse, write, parse, write is byte-identical. */
struct sl_buf;
void sl_json_write(struct sl_buf *b, const struct sl_json *n);

/* A short name of the kind ("string", "number", "object", ...), for error messages. */
const char *sl_json_kind_name(enum sl_json_kind k);

#endif
