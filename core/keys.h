/* The byte formats of the online store's keys and attribute rows, written and read only
 * here: the one-byte key kinds, the bytes a join key value keys by, and the attribute-row
 * codec. All integers are fixed-width little-endian. */
#ifndef SL_KEYS_H
#define SL_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct sl_field;
struct sl_json;
struct sl_scalar;
struct sl_view;

/* The first byte of every key in the online store says what it holds; subsystems never
 * scan outside their own prefix. */
enum sl_key_kind {
    SL_KEY_REGISTRY = 'R', /* registry.c: workspace snapshots */
    SL_KEY_ACCOUNT = 'A',  /* auth.c: service accounts */
    SL_KEY_ROLE = 'B',     /* auth.c: role bindings */
    SL_KEY_ROW = 'V',      /* attribute rows (sl_row_key): latest row of a view per entity */
    SL_KEY_AGG = 'G',      /* tiles.c: tiles, lifetime states, event logs */
    SL_KEY_JOB = 'J',      /* jobs.c: job records */
    SL_KEY_FILE = 'F',     /* batch.c: batch files loaded per view */
};

/* Appends the key bytes of one join key value: a string's bytes, an integer's (INT32,
 * INT64) decimal text. Returns 0, or SL_EINVAL for a null value or any other kind (those
 * cannot key a served row). Any thread. */
int sl_key_join_part(struct sl_buf *out, const struct sl_scalar *s);

/* sl_key_join_part for join key f's value v in a request (an integer as a JSON number or
 * string). Returns 0, 1 when v is null (nothing appended), or SL_EINVAL with msg (cap
 * bytes). Any thread. */
int sl_key_join_json(struct sl_buf *out, const struct sl_field *f, const struct sl_json *v,
                     char *msg, size_t cap);

/* Appends the online key of an attribute view's row: SL_KEY_ROW, the view's 8-byte prefix,
 * then each join key part vals[i] (lens[i] bytes, from sl_key_join_part) as u32 length +
 * bytes. The part after the prefix is the entity part offline records key by. */
void sl_row_key(struct sl_buf *out, const struct sl_view *v, const char *const *vals,
                const size_t *lens);
/* Bytes of SL_KEY_ROW + the view prefix at the start of a row key. */
#define SL_ROW_KEY_HEAD 9

/* An attribute row (the value under a row key), version 1:
 *   u8 version (1), u64 event timestamp (ns, two's complement), u32 value count,
 *   then per feature value a u32 length + the value's encoded bytes.
 * Every row ever written has this layout (the version byte was there from the first
 * format); a decoder meeting another version refuses the row. */
#define SL_ROW_VERSION 1

/* Starts a row in out (which it resets): the header for n values with timestamp ts. Append
 * exactly n values with sl_row_value. */
void sl_row_begin(struct sl_buf *out, int64_t ts, uint32_t n);
void sl_row_value(struct sl_buf *out, const char *p, size_t n);

/* A decoded row header; values/values_len borrow the row's bytes after the header (the
 * part offline records carry). */
struct sl_row {
    int64_t ts;
    uint32_t n;
    const char *values;
    size_t values_len;
    struct sl_cursor cur; /* at the next value, for sl_row_next */
};

/* Decodes the header of row p[0..len). Returns 0, or SL_ECORRUPT when the row is truncated
 * or of an unknown version. Borrows p. */
int sl_row_decode(const char *p, size_t len, struct sl_row *out);
/* The next value of r (borrowed). Returns 0, or SL_ECORRUPT when the row is truncated. */
int sl_row_next(struct sl_row *r, const char **p, size_t *n);

#endif
