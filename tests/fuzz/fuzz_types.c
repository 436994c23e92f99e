/* libFuzzer target: validating JSON values against types. The first byte picks a type; the
 * rest is a JSON value. An accepted value's encoding must itself be valid JSON, and encoding
 * that output again (as input) must give the same bytes for the scalar types. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "types.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const types[] = {
    "{\"type\":\"string\"}", "{\"type\":\"int64\"}", "{\"type\":\"int32\"}",
    "{\"type\":\"float64\"}", "{\"type\":\"float32\"}", "{\"type\":\"boolean\"}",
    "{\"type\":\"timestamp\"}",
    "{\"type\":\"array\",\"elementType\":{\"type\":\"int64\"}}",
    "{\"type\":\"map\",\"keyType\":{\"type\":\"string\"},\"valueType\":{\"type\":\"float64\"}}",
    "{\"type\":\"struct\",\"fields\":[{\"name\":\"a\",\"dataType\":{\"type\":\"int64\"}},"
    "{\"name\":\"b\",\"dataType\":{\"type\":\"array\",\"elementType\":{\"type\":\"string\"}}}]}",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t ti = data[0] % (sizeof(types) / sizeof(*types));
    struct sl_error err = {0};
    cJSON *tj = cJSON_Parse(types[ti]);
    struct sl_type *t = sl_type_from_cjson(tj, &err);
    cJSON_Delete(tj);
    if (!t)
        abort();
    struct sl_arena a = {0};
    struct sl_json *v = sl_json_parse((const char *)data + 1, size - 1, &a, &err);
    if (v) {
        struct sl_buf out = SL_BUF_INIT;
        if (sl_value_encode(t, v, &out, &err) == 0) {
            struct sl_arena a2 = {0};
            if (!sl_json_parse(out.p ? out.p : "", out.len, &a2, &err))
                abort(); /* encodings are JSON */
            sl_arena_free(&a2);
            if (t->kind < SL_ARRAY && t->kind != SL_INT64 && t->kind != SL_TIMESTAMP) {
                struct sl_arena a3 = {0};
                struct sl_json *again = sl_json_parse(out.p, out.len, &a3, &err);
                struct sl_buf out2 = SL_BUF_INIT;
                if (!again || sl_value_encode(t, again, &out2, &err) != 0 || out2.len != out.len ||
                    memcmp(out2.p, out.p, out.len) != 0)
                    abort(); /* canonical encodings are fixed points */
                sl_buf_free(&out2);
                sl_arena_free(&a3);
            }
        }
        sl_buf_free(&out);
    }
    sl_arena_free(&a);
    sl_type_free(t);
    return 0;
}
