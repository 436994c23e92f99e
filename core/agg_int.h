/* Internals shared by agg.c, agg_fn.c and agg_sketch.c: the byte codec of partial-aggregate
 * states, canonical JSON encoding of values, input-type checks, and the built-in function
 * descriptors. Not part of the engine's API (agg.h is). */
#ifndef SL_AGG_INT_H
#define SL_AGG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "types.h"

struct sl_buf;

/* Appends v as an unsigned LEB128 varint / a zigzag varint / 8 little-endian IEEE bytes. */
void sl_agg_put_uvarint(struct sl_buf *b, uint64_t v);
void sl_agg_put_svarint(struct sl_buf *b, int64_t v);
void sl_agg_put_f64(struct sl_buf *b, double v);

/* A bounded reader over state bytes. Every getter returns 0 or SL_ECORRUPT (out of bytes,
 * overlong varint) and leaves the reader unusable after a failure. */
struct sl_agg_rd {
    const unsigned char *p;
    size_t left;
};
int sl_agg_get_u8(struct sl_agg_rd *r, unsigned *v);
int sl_agg_get_uvarint(struct sl_agg_rd *r, uint64_t *v);
int sl_agg_get_svarint(struct sl_agg_rd *r, int64_t *v);
int sl_agg_get_f64(struct sl_agg_rd *r, double *v);
/* A varint length then that many bytes; *p borrows the reader's buffer. */
int sl_agg_get_bytes(struct sl_agg_rd *r, const char **p, size_t *n);

/* Appends a float64 / float32 as get-features writes it: shortest round-trip text (types.c's
 * sl_value_format_*), "NaN" / "Infinity" / "-Infinity" as JSON strings. */
void sl_agg_json_double(struct sl_buf *b, double v);
void sl_agg_json_float32(struct sl_buf *b, float v);

/* Appends the canonical JSON encoding of v read as a value of kind `kind` (the spec's input
 * kind): string → JSON string, int64 → quoted decimal, int32 → number, floats as above,
 * bool → true/false, timestamp → quoted RFC 3339, array/map/struct → v->str verbatim. */
void sl_agg_scalar_json(struct sl_buf *b, enum sl_kind kind, const struct sl_scalar *v);

/* 1 when a value of kind vk may be fed to a spec whose input kind is ik (equal kinds; INT32
 * and INT64 mix). */
int sl_agg_kind_compatible(enum sl_kind ik, enum sl_kind vk);

/* Bit of kind k in a kind mask. */
#define SL_AGG_KBIT(k) (1u << (unsigned)(k))
#define SL_AGG_K_INT (SL_AGG_KBIT(SL_INT64) | SL_AGG_KBIT(SL_INT32))
#define SL_AGG_K_NUMERIC (SL_AGG_K_INT | SL_AGG_KBIT(SL_FLOAT64) | SL_AGG_KBIT(SL_FLOAT32))
#define SL_AGG_K_SCALAR                                                                       \
    (SL_AGG_K_NUMERIC | SL_AGG_KBIT(SL_STRING) | SL_AGG_KBIT(SL_BOOL) |                       \
     SL_AGG_KBIT(SL_TIMESTAMP))
#define SL_AGG_K_NESTED (SL_AGG_KBIT(SL_ARRAY) | SL_AGG_KBIT(SL_MAP) | SL_AGG_KBIT(SL_STRUCT))

/* Checks that in's kind is in mask and sets *out to a copy of the output type: `in` itself
 * (out_kind 0), an array of `in` (out_kind SL_ARRAY), or a scalar of out_kind. Fails with
 * SL_ESCHEMA "<fn> is not defined for <kind>" or SL_ENOMEM. */
int sl_agg_check_kinds(const char *fn, const struct sl_type *in, unsigned mask,
                       enum sl_kind out_kind, struct sl_type **out, struct sl_error *err);

/* The built-in functions (agg_fn.c and agg_sketch.c). */
extern const struct sl_agg_fn sl_agg_fn_count;
extern const struct sl_agg_fn sl_agg_fn_sum;
extern const struct sl_agg_fn sl_agg_fn_mean;
extern const struct sl_agg_fn sl_agg_fn_min;
extern const struct sl_agg_fn sl_agg_fn_max;
extern const struct sl_agg_fn sl_agg_fn_last;
extern const struct sl_agg_fn sl_agg_fn_last_n;
extern const struct sl_agg_fn sl_agg_fn_first_n;
extern const struct sl_agg_fn sl_agg_fn_last_distinct;
extern const struct sl_agg_fn sl_agg_fn_first_distinct;
extern const struct sl_agg_fn sl_agg_fn_stddev_pop;
extern const struct sl_agg_fn sl_agg_fn_stddev_samp;
extern const struct sl_agg_fn sl_agg_fn_var_pop;
extern const struct sl_agg_fn sl_agg_fn_var_samp;

#endif
