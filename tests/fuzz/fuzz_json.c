/* libFuzzer target for core/json.c: arbitrary bytes through sl_json_parse. Whatever parses
 * must write back, parse again and write identically; number accessors must agree with the
 * literal text. Build: clang -fsanitize=fuzzer,address,undefined -Icore ... */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_numbers(const struct sl_json *n, int depth)
{
    if (depth > SL_JSON_MAX_DEPTH)
        abort();
    for (; n; n = n->next) {
        if (n->kind == SL_JSON_NUMBER || n->kind == SL_JSON_STRING) {
            if (n->str[n->len] != '\0')
                abort();
            int64_t v;
            if (sl_json_int64(n, &v) == 0) {
                /* An accepted integer prints back as its own text, except "-0". */
                char txt[32];
                int k = snprintf(txt, sizeof txt, "%" PRId64, v);
                int negzero = n->len == 2 && memcmp(n->str, "-0", 2) == 0;
                if (!negzero && ((size_t)k != n->len || memcmp(txt, n->str, n->len) != 0))
                    abort();
            }
            double d;
            if (n->kind == SL_JSON_NUMBER)
                (void)sl_json_double(n, &d);
        }
        if (n->kind == SL_JSON_OBJECT || n->kind == SL_JSON_ARRAY) {
            size_t count = 0;
            for (const struct sl_json *c = n->child; c; c = c->next) {
                count++;
                if ((n->kind == SL_JSON_OBJECT) != (c->key != NULL))
                    abort();
                if (c->key && c->key[c->keylen] != '\0')
                    abort();
            }
            if (count != n->count)
                abort();
            check_numbers(n->child, depth + 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_arena a1 = {0}, a2 = {0};
    struct sl_error err;
    struct sl_buf w1 = SL_BUF_INIT, w2 = SL_BUF_INIT;

    a1.limit = a2.limit = 64u << 20;
    err.code = 0;
    err.msg[0] = '\0';
    struct sl_json *j = sl_json_parse((const char *)data, size, &a1, &err);
    if (!j) {
        /* Every failure explains itself with a position. */
        if (err.code == SL_EINVAL && strncmp(err.msg, "JSON syntax error at line ", 26) != 0)
            abort();
        if (err.code != SL_EINVAL && err.code != SL_ENOMEM)
            abort();
        goto done;
    }
    check_numbers(j, 1);
    sl_json_write(&w1, j);
    if (w1.oom)
        goto done;
    struct sl_json *j2 = sl_json_parse(w1.p, w1.len, &a2, &err);
    if (!j2) {
        fprintf(stderr, "written JSON does not parse: %s\n", err.msg);
        abort();
    }
    sl_json_write(&w2, j2);
    if (w2.oom)
        goto done;
    if (w1.len != w2.len || memcmp(w1.p, w2.p, w1.len) != 0) {
        fprintf(stderr, "second write differs\n");
        abort();
    }
done:
    sl_buf_free(&w1);
    sl_buf_free(&w2);
    sl_arena_free(&a1);
    sl_arena_free(&a2);
    return 0;
}
