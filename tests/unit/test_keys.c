/* Unit tests for core/keys.c: join key bytes, row keys, the attribute-row codec. */
#include "check_fast.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "keys.h"
#include "registry.h"
#include "types.h"

START_TEST(test_join_part_scalar)
{
    struct sl_buf b = SL_BUF_INIT;
    struct sl_scalar s = {.kind = SL_STRING, .str = "a\0b", .len = 3};
    ck_assert_int_eq(sl_key_join_part(&b, &s), 0);
    s = (struct sl_scalar){.kind = SL_INT64, .i = INT64_MIN};
    ck_assert_int_eq(sl_key_join_part(&b, &s), 0);
    s = (struct sl_scalar){.kind = SL_INT32, .i = 42};
    ck_assert_int_eq(sl_key_join_part(&b, &s), 0);
    ck_assert_uint_eq(b.len, 3 + 20 + 2);
    ck_assert_int_eq(memcmp(b.p, "a\0b-922337203685477580842", b.len), 0);
    size_t len = b.len;
    s = (struct sl_scalar){.kind = SL_FLOAT64, .f = 1.5};
    ck_assert_int_eq(sl_key_join_part(&b, &s), SL_EINVAL);
    s = (struct sl_scalar){.kind = SL_STRING, .null = 1};
    ck_assert_int_eq(sl_key_join_part(&b, &s), SL_EINVAL);
    ck_assert_uint_eq(b.len, len); /* refused values append nothing */
    sl_buf_free(&b);
}
END_TEST

/* A request's values key by the same bytes as ingested ones: an integer sent as a number or
 * as a string, a string as its bytes. */
START_TEST(test_join_part_json)
{
    struct sl_arena a = {0};
    struct sl_error err = {0};
    const char *doc = "{\"n\":-17,\"s\":\"-17\",\"str\":\"x y\",\"nul\":null,\"f\":1.5,\"bad\":\"q\"}";
    struct sl_json *j = sl_json_parse(doc, strlen(doc), &a, &err);
    ck_assert_ptr_nonnull(j);
    struct sl_type ti = {.kind = SL_INT64}, ts = {.kind = SL_STRING}, tb = {.kind = SL_BOOL};
    struct sl_field fi = {"id", &ti}, fs = {"name", &ts}, fb = {"flag", &tb};
    struct sl_buf b = SL_BUF_INIT;
    char msg[128];
    ck_assert_int_eq(sl_key_join_json(&b, &fi, sl_json_get(j, "n"), msg, sizeof(msg)), 0);
    ck_assert_int_eq(sl_key_join_json(&b, &fi, sl_json_get(j, "s"), msg, sizeof(msg)), 0);
    ck_assert_int_eq(sl_key_join_json(&b, &fs, sl_json_get(j, "str"), msg, sizeof(msg)), 0);
    ck_assert_uint_eq(b.len, 9);
    ck_assert_int_eq(memcmp(b.p, "-17-17x y", 9), 0);
    ck_assert_int_eq(sl_key_join_json(&b, &fi, sl_json_get(j, "nul"), msg, sizeof(msg)), 1);
    ck_assert_int_eq(sl_key_join_json(&b, &fi, sl_json_get(j, "f"), msg, sizeof(msg)), SL_EINVAL);
    ck_assert_str_eq(msg, "Join key `id` must be an integer (a JSON number or string)");
    ck_assert_int_eq(sl_key_join_json(&b, &fi, sl_json_get(j, "bad"), msg, sizeof(msg)), SL_EINVAL);
    ck_assert_int_eq(sl_key_join_json(&b, &fs, sl_json_get(j, "n"), msg, sizeof(msg)), SL_EINVAL);
    ck_assert_str_eq(msg, "Join key `name` must be a string");
    ck_assert_int_eq(sl_key_join_json(&b, &fb, sl_json_get(j, "str"), msg, sizeof(msg)), SL_EINVAL);
    ck_assert_str_eq(msg, "Join key `flag` has a type that cannot be served");
    ck_assert_uint_eq(b.len, 9);
    sl_buf_free(&b);
    sl_arena_free(&a);
}
END_TEST

START_TEST(test_row_key)
{
    struct sl_view v = {.nkeys = 2, .key = {1, 2, 3, 4, 5, 6, 7, 8}};
    const char *vals[] = {"ab", "7"};
    size_t lens[] = {2, 1};
    struct sl_buf b = SL_BUF_INIT;
    sl_row_key(&b, &v, vals, lens);
    static const char want[] = "V\1\2\3\4\5\6\7\10"
                               "\2\0\0\0ab"
                               "\1\0\0\0" "7";
    ck_assert_uint_eq(b.len, sizeof(want) - 1);
    ck_assert_int_eq(memcmp(b.p, want, b.len), 0);
    ck_assert_uint_eq(SL_ROW_KEY_HEAD, 9);
    sl_buf_free(&b);
}
END_TEST

/* Asserts that r's next value is want[0..n). */
static void expect_next(struct sl_row *r, const char *want, size_t n)
{
    const char *p;
    size_t len;
    ck_assert_int_eq(sl_row_next(r, &p, &len), 0);
    ck_assert_uint_eq(len, n);
    ck_assert_int_eq(memcmp(p, want, n), 0);
}

START_TEST(test_row_roundtrip)
{
    struct sl_buf b = SL_BUF_INIT;
    const int64_t stamps[] = {0, 1, -1, INT64_MAX, INT64_MIN, 1700000000123456789LL};
    for (size_t t = 0; t < sizeof(stamps) / sizeof(stamps[0]); t++) {
        sl_buf_puts(&b, "junk"); /* sl_row_begin starts afresh */
        sl_row_begin(&b, stamps[t], 3);
        sl_row_value(&b, "1.5", 3);
        sl_row_value(&b, "", 0);
        sl_row_value(&b, "\"x\0y\"", 5);
        struct sl_row r;
        ck_assert_int_eq(sl_row_decode(b.p, b.len, &r), 0);
        ck_assert_int_eq(r.ts, stamps[t]);
        ck_assert_uint_eq(r.n, 3);
        ck_assert_ptr_eq(r.values, b.p + 13);
        ck_assert_uint_eq(r.values_len, b.len - 13);
        expect_next(&r, "1.5", 3);
        expect_next(&r, "", 0);
        expect_next(&r, "\"x\0y\"", 5);
        const char *p;
        size_t n;
        ck_assert_int_eq(sl_row_next(&r, &p, &n), SL_ECORRUPT); /* no fourth value */
    }
    sl_buf_free(&b);
}
END_TEST

/* The bytes the previous code wrote (version 1, little-endian u64 ts and u32 lengths),
 * spelled out: data dirs written before this codec still read, on any host. */
START_TEST(test_row_previous_layout)
{
    static const char old[] = "\1"
                              "\x15\xcd\x5b\x07\0\0\0\0" /* ts 123456789 */
                              "\2\0\0\0"
                              "\2\0\0\0" "42"
                              "\4\0\0\0" "null";
    struct sl_row r;
    ck_assert_int_eq(sl_row_decode(old, sizeof(old) - 1, &r), 0);
    ck_assert_int_eq(r.ts, 123456789);
    ck_assert_uint_eq(r.n, 2);
    expect_next(&r, "42", 2);
    expect_next(&r, "null", 4);
    /* and the encoder writes exactly those bytes */
    struct sl_buf b = SL_BUF_INIT;
    sl_row_begin(&b, 123456789, 2);
    sl_row_value(&b, "42", 2);
    sl_row_value(&b, "null", 4);
    ck_assert_uint_eq(b.len, sizeof(old) - 1);
    ck_assert_int_eq(memcmp(b.p, old, b.len), 0);
    sl_buf_free(&b);
}
END_TEST

START_TEST(test_row_truncated_and_unknown_version)
{
    struct sl_buf b = SL_BUF_INIT;
    sl_row_begin(&b, 5, 1);
    sl_row_value(&b, "abc", 3);
    struct sl_row r;
    const char *p;
    size_t n;
    for (size_t len = 0; len < 13; len++) /* the header cut anywhere */
        ck_assert_int_eq(sl_row_decode(b.p, len, &r), SL_ECORRUPT);
    for (size_t len = 13; len < b.len; len++) { /* a value cut anywhere */
        ck_assert_int_eq(sl_row_decode(b.p, len, &r), 0);
        ck_assert_int_eq(sl_row_next(&r, &p, &n), SL_ECORRUPT);
    }
    ck_assert_int_eq(sl_row_decode(NULL, 0, &r), SL_ECORRUPT);
    for (int ver = 0; ver < 256; ver++) {
        b.p[0] = (char)ver;
        ck_assert_int_eq(sl_row_decode(b.p, b.len, &r), ver == SL_ROW_VERSION ? 0 : SL_ECORRUPT);
    }
    sl_buf_free(&b);
}
END_TEST

START_TEST(test_key_kinds_distinct)
{
    const int kinds[] = {SL_KEY_REGISTRY, SL_KEY_ACCOUNT, SL_KEY_ROLE, SL_KEY_ROW,
                         SL_KEY_AGG,      SL_KEY_JOB,     SL_KEY_FILE};
    const char *stored = "RABVGJF"; /* the bytes in existing data dirs */
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        ck_assert_int_eq(kinds[i], stored[i]);
        for (size_t j = 0; j < i; j++)
            ck_assert_int_ne(kinds[i], kinds[j]);
    }
}
END_TEST

static Suite *keys_suite(void)
{
    Suite *s = suite_create("keys");
    TCase *tc = tcase_create("keys");
    tcase_add_test(tc, test_join_part_scalar);
    tcase_add_test(tc, test_join_part_json);
    tcase_add_test(tc, test_row_key);
    tcase_add_test(tc, test_row_roundtrip);
    tcase_add_test(tc, test_row_previous_layout);
    tcase_add_test(tc, test_row_truncated_and_unknown_version);
    tcase_add_test(tc, test_key_kinds_distinct);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(keys_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
