/* Online store key and attribute-row formats (keys.h). */
#include "keys.h"

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "json.h"
#include "registry.h"
#include "types.h"

int sl_key_join_part(struct sl_buf *out, const struct sl_scalar *s)
{
    if (s->null)
        return SL_EINVAL;
    switch (s->kind) {
    case SL_STRING:
        sl_buf_append(out, s->str, s->len);
        return 0;
    case SL_INT64:
    case SL_INT32:
        sl_buf_printf(out, "%lld", (long long)s->i);
        return 0;
    default:
        return SL_EINVAL;
    }
}

int sl_key_join_json(struct sl_buf *out, const struct sl_field *f, const struct sl_json *v,
                     char *msg, size_t cap)
{
    struct sl_scalar s = {.kind = f->type->kind};
    if (v->kind == SL_JSON_NULL)
        return 1;
    if (s.kind == SL_INT64 || s.kind == SL_INT32) {
        if (sl_json_int64(v, &s.i) != 0) {
            snprintf(msg, cap, "Join key `%s` must be an integer (a JSON number or string)", f->name);
            return SL_EINVAL;
        }
    } else if (s.kind == SL_STRING) {
        if (v->kind != SL_JSON_STRING) {
            snprintf(msg, cap, "Join key `%s` must be a string", f->name);
            return SL_EINVAL;
        }
        s.str = v->str;
        s.len = v->len;
    } else {
        snprintf(msg, cap, "Join key `%s` has a type that cannot be served", f->name);
        return SL_EINVAL;
    }
    return sl_key_join_part(out, &s);
}

void sl_row_key(struct sl_buf *out, const struct sl_view *v, const char *const *vals,
                const size_t *lens)
{
    sl_buf_putc(out, SL_KEY_ROW);
    sl_buf_append(out, v->key, sizeof(v->key));
    for (size_t i = 0; i < v->nkeys; i++)
        sl_buf_lenstr(out, vals[i], lens[i]);
}

void sl_row_begin(struct sl_buf *out, int64_t ts, uint32_t n)
{
    sl_buf_reset(out);
    sl_buf_putc(out, SL_ROW_VERSION);
    sl_buf_u64(out, (uint64_t)ts);
    sl_buf_u32(out, n);
}

void sl_row_value(struct sl_buf *out, const char *p, size_t n)
{
    sl_buf_lenstr(out, p, n);
}

int sl_row_decode(const char *p, size_t len, struct sl_row *out)
{
    struct sl_cursor c = {(const unsigned char *)p, len};
    const void *ver;
    uint64_t ts;
    if (sl_cur_bytes(&c, 1, &ver) != 0 || *(const unsigned char *)ver != SL_ROW_VERSION ||
        sl_cur_u64(&c, &ts) != 0 || sl_cur_u32(&c, &out->n) != 0)
        return SL_ECORRUPT;
    out->ts = (int64_t)ts;
    out->values = (const char *)c.p;
    out->values_len = c.left;
    out->cur = c;
    return 0;
}

int sl_row_next(struct sl_row *r, const char **p, size_t *n)
{
    return sl_cur_lenstr(&r->cur, p, n) == 0 ? 0 : SL_ECORRUPT;
}
