/* Sluice's data types (DESIGN §3) and the validation of JSON input values against them.
 * A type's canonical form is Tecton's `dataType` object, used both in the registry and on the
 * wire: {"type":"int64"}, {"type":"array","elementType":T},
 * {"type":"map","keyType":{"type":"string"},"valueType":T},
 * {"type":"struct","fields":[{"name":N,"dataType":T},...]}. */
#ifndef SL_TYPES_H
#define SL_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "sluice/plugin.h"

struct sl_buf;
struct sl_error;
struct sl_json;

/* enum sl_kind and struct sl_scalar are part of the plugin ABI (sluice/plugin.h). */

struct sl_field;

struct sl_type {
    enum sl_kind kind;
    struct sl_type *elem;    /* ARRAY: element type; MAP: value type (keys are strings) */
    size_t nfields;          /* STRUCT */
    struct sl_field *fields; /* STRUCT */
};

struct sl_field {
    char *name;
    struct sl_type *type;
};

/* The wire name of a kind: "string", "int64", "int32", "float64", "float32", "boolean",
 * "timestamp", "array", "map", "struct". */
const char *sl_kind_name(enum sl_kind k);

/* Types nest at most this deep (an Array of Int64 is 2 levels). */
#define SL_TYPE_MAX_DEPTH 32

/* Builds a type from its dataType object. Returns a new type (caller frees with
 * sl_type_free) or NULL with err set (SL_EINVAL naming what is wrong, or SL_ENOMEM).
 * Unknown members are ignored; struct fields must be non-empty and uniquely named. */
struct sl_type *sl_type_from_cjson(const cJSON *j, struct sl_error *err);
/* The dataType object of t; caller frees with cJSON_Delete. NULL on ENOMEM. */
cJSON *sl_type_to_cjson(const struct sl_type *t);
/* Appends the dataType object of t as compact JSON, members in the order shown above. */
void sl_type_write_json(struct sl_buf *b, const struct sl_type *t);
/* Deep copy, NULL on ENOMEM. */
struct sl_type *sl_type_clone(const struct sl_type *t);
/* 1 if a and b are the same type, else 0. */
int sl_type_equal(const struct sl_type *a, const struct sl_type *b);
/* Frees t and everything it owns; accepts NULL. */
void sl_type_free(struct sl_type *t);

/* Validates the JSON input value `in` against t and appends its canonical output encoding
 * (what get-features returns) to out:
 *   string → JSON string; int64 → decimal string ("123"), accepted as a JSON integer or a
 *   decimal string, exact over the whole int64 range; int32 → JSON number in range;
 *   float64/float32 → JSON number (shortest round-trip text; float32 rounded to float),
 *   accepted as a number or the strings "NaN", "Infinity", "-Infinity", which are also how
 *   non-finite values are written; bool → true/false; timestamp → RFC 3339 UTC string
 *   (input: an RFC 3339 string); array → JSON array; map → JSON object (string keys);
 *   struct → JSON array of the field values in field order (input: a JSON object keyed by
 *   field name; absent fields are null; unknown fields are an error); null → null.
 * Floats are written as the shortest %g text that reads back to the same double (float32:
 * the same float), so integral values carry no ".0": 1 → 1, 0.1 → 0.1, 1e22 → 1e+22.
 * Int32 input must be a JSON integer; int64 string input follows sl_json_int64.
 * Returns 0, or SL_ESCHEMA with a message naming the problem, e.g.
 * "expected int64, got string \"abc\"" or "field `b`: expected boolean, got number 3"
 * (nested paths join struct fields with '.', array indexes as [2], map keys as ["k"]:
 * "field `[2].b`: ...", "field `address.zip`: ..."), or SL_ENOMEM. On failure out is
 * restored to its previous length. Allocates nothing but out's growth. Any thread. */
int sl_value_encode(const struct sl_type *t, const struct sl_json *in, struct sl_buf *out,
                    struct sl_error *err);

/* sl_value_encode for the value of a top-level field `name`: error paths start with it
 * ("field `user.address.zip`: expected int64, got string \"abc\""). Borrows name. */
int sl_value_encode_field(const struct sl_type *t, const char *name, const struct sl_json *in,
                          struct sl_buf *out, struct sl_error *err);

/* Write a finite double / float as its shortest round-trip text (as sl_value_encode does)
 * into out (>= 32 bytes, NUL-terminated). Return the length. Any thread. */
size_t sl_value_format_double(double d, char *out);
size_t sl_value_format_float(float f, char *out);

/* struct sl_scalar (sluice/plugin.h): a scalar input value, for keys and aggregation. Only
 * valid after sl_value_encode accepted the same input. `str`/`len` borrow the input node's
 * bytes. */
/* Reads a scalar (non-ARRAY/MAP/STRUCT) input value of type kind. Returns 0 or SL_ESCHEMA
 * with a message like sl_value_encode's (SL_EINVAL if kind is not scalar). */
int sl_value_scalar(enum sl_kind kind, const struct sl_json *in, struct sl_scalar *out,
                    struct sl_error *err);

#endif
