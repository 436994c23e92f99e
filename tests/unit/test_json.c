/* Unit tests for core/json.c. */
#include "check_fast.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "json.h"

static struct sl_arena arena;
static struct sl_error err;

static void setup(void)
{
    memset(&arena, 0, sizeof arena);
    memset(&err, 0, sizeof err);
}

static void teardown(void)
{
    sl_arena_free(&arena);
}

static struct sl_json *parse_n(const char *s, size_t n)
{
    return sl_json_parse(s, n, &arena, &err);
}

static struct sl_json *parse(const char *s)
{
    return parse_n(s, strlen(s));
}

/* Parses s, which must succeed, and writes it back compactly. */
static char *rewrite(const char *s, size_t n)
{
    struct sl_json *j = parse_n(s, n);
    ck_assert_msg(j != NULL, "parse failed: %s", err.msg);
    struct sl_buf b = SL_BUF_INIT;
    sl_json_write(&b, j);
    char *out = sl_buf_detach(&b, NULL);
    ck_assert_ptr_nonnull(out);
    return out;
}

/* Asserts that s fails to parse with exactly the message msg. */
static void assert_error_n(const char *s, size_t n, const char *msg)
{
    memset(&err, 0, sizeof err);
    ck_assert_msg(parse_n(s, n) == NULL, "accepted: %s", s);
    ck_assert_int_eq(err.code, SL_EINVAL);
    ck_assert_str_eq(err.msg, msg);
}

static void assert_error(const char *s, const char *msg)
{
    assert_error_n(s, strlen(s), msg);
}

START_TEST(test_arena_reset_reuses_and_respects_the_limit)
{
    struct sl_arena a = {0};
    a.limit = 100000;
    for (int round = 0; round < 3; round++) {
        char *first = NULL;
        for (int i = 0; i < 2000; i++) { /* several chunks, one big allocation */
            char *p = sl_arena_alloc(&a, i == 1000 ? 20000 : 24);
            ck_assert_ptr_nonnull(p);
            memset(p, 'x', i == 1000 ? 20000 : 24);
            if (!first)
                first = p;
        }
        ck_assert_uint_eq(a.used, 1999 * 24 + 20000);
        ck_assert_ptr_null(sl_arena_alloc(&a, 60000)); /* over the limit */
        sl_arena_reset(&a);
        ck_assert_uint_eq(a.used, 0);
    }
    sl_arena_free(&a);
    sl_arena_reset(&a); /* on an empty arena */
    ck_assert_ptr_null(a.head);
}
END_TEST

START_TEST(test_scalars)
{
    struct sl_json *j = parse(" null ");
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(j->kind, SL_JSON_NULL);
    ck_assert_int_eq(parse("true")->kind, SL_JSON_TRUE);
    ck_assert_int_eq(parse("\t\r\nfalse\n")->kind, SL_JSON_FALSE);
    j = parse("\"h\\u00e9llo\"");
    ck_assert_int_eq(j->kind, SL_JSON_STRING);
    ck_assert_str_eq(j->str, "h\xc3\xa9llo");
    ck_assert_uint_eq(j->len, 6);
    /* Number text is kept verbatim and NUL-terminated. */
    const char *nums[] = {"0", "-0", "1.50", "-12.0e+05", "1E-7", "123456789012345678901234567890",
                          "0.000", "-0.0e0"};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        j = parse(nums[i]);
        ck_assert_msg(j != NULL, "%s: %s", nums[i], err.msg);
        ck_assert_int_eq(j->kind, SL_JSON_NUMBER);
        ck_assert_str_eq(j->str, nums[i]);
        ck_assert_uint_eq(j->len, strlen(nums[i]));
    }
}
END_TEST

START_TEST(test_containers)
{
    struct sl_json *j = parse("{\"a\": [1, 2, {\"b\": null}], \"c\": {}, \"d\": []}");
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(j->kind, SL_JSON_OBJECT);
    ck_assert_uint_eq(j->count, 3);
    struct sl_json *a = sl_json_get(j, "a");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->kind, SL_JSON_ARRAY);
    ck_assert_uint_eq(a->count, 3);
    ck_assert_str_eq(a->child->str, "1");
    ck_assert_str_eq(a->child->next->str, "2");
    ck_assert_ptr_null(a->child->key);
    struct sl_json *b = sl_json_get(a->child->next->next, "b");
    ck_assert_int_eq(b->kind, SL_JSON_NULL);
    ck_assert_str_eq(b->key, "b");
    ck_assert_uint_eq(b->keylen, 1);
    ck_assert_uint_eq(sl_json_get(j, "c")->count, 0);
    ck_assert_ptr_null(sl_json_get(j, "c")->child);
    ck_assert_int_eq(sl_json_get(j, "d")->kind, SL_JSON_ARRAY);
    ck_assert_ptr_null(sl_json_get(j, "missing"));
    ck_assert_ptr_null(sl_json_get(a, "a")); /* not an object */
    ck_assert_ptr_null(sl_json_get(NULL, "a"));
}
END_TEST

START_TEST(test_keys_with_escapes_and_nul)
{
    struct sl_json *j = parse("{\"a\\u0000b\": 1, \"a\": 2, \"\\u00e9\": 3, \"\": 4}");
    ck_assert_ptr_nonnull(j);
    struct sl_json *m = j->child;
    ck_assert_uint_eq(m->keylen, 3);
    ck_assert_int_eq(memcmp(m->key, "a\0b", 4), 0);
    /* A key with an embedded NUL does not match its prefix. */
    ck_assert_str_eq(sl_json_get(j, "a")->str, "2");
    ck_assert_str_eq(sl_json_get(j, "\xc3\xa9")->str, "3");
    ck_assert_str_eq(sl_json_get(j, "")->str, "4");
    /* Members that differ only after a NUL are distinct, not duplicates. */
    ck_assert_ptr_nonnull(parse("{\"a\\u0000b\": 1, \"a\\u0000c\": 2}"));
}
END_TEST

START_TEST(test_string_escapes)
{
    struct sl_json *j = parse("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"");
    ck_assert_ptr_nonnull(j);
    const char want[] = "\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    ck_assert_uint_eq(j->len, sizeof want - 1);
    ck_assert_int_eq(memcmp(j->str, want, sizeof want), 0);
    /* Upper-case hex, the edges of the surrogate ranges. */
    j = parse("\"\\uD800\\uDC00\\uDBFF\\uDFFF\\uFFFF\\u0000\"");
    ck_assert_ptr_nonnull(j);
    const char want2[] = "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\xef\xbf\xbf\0";
    ck_assert_uint_eq(j->len, sizeof want2 - 1);
    ck_assert_int_eq(memcmp(j->str, want2, sizeof want2), 0);
    /* Raw UTF-8 and DEL are fine unescaped. */
    j = parse("\"\xf0\x9f\x98\x80\x7f\"");
    ck_assert_uint_eq(j->len, 5);
}
END_TEST

START_TEST(test_syntax_errors)
{
    assert_error("", "JSON syntax error at line 1, column 1: expected a value (end of input)");
    assert_error("   \n ",
                 "JSON syntax error at line 2, column 2: expected a value (end of input)");
    assert_error("{\"a\":1 \"b\":2}",
                 "JSON syntax error at line 1, column 8: expected ',' or '}'");
    assert_error("{\"user_id\": \"x\" ]",
                 "JSON syntax error at line 1, column 17: expected ',' or '}'");
    assert_error("[1 2]", "JSON syntax error at line 1, column 4: expected ',' or ']'");
    assert_error("[1,]", "JSON syntax error at line 1, column 4: expected a value");
    assert_error("{\"a\":1,}",
                 "JSON syntax error at line 1, column 8: expected '\"' (member name)");
    assert_error("{,}",
                 "JSON syntax error at line 1, column 2: expected '\"' (member name) or '}'");
    assert_error("{a:1}",
                 "JSON syntax error at line 1, column 2: expected '\"' (member name) or '}'");
    assert_error("{'a':1}",
                 "JSON syntax error at line 1, column 2: expected '\"' (member name) or '}'");
    assert_error("{\"a\" 1}", "JSON syntax error at line 1, column 6: expected ':'");
    assert_error("{\"a\":}", "JSON syntax error at line 1, column 6: expected a value");
    assert_error("{\"a\":1",
                 "JSON syntax error at line 1, column 7: expected ',' or '}' (end of input)");
    assert_error("[", "JSON syntax error at line 1, column 2: expected a value (end of input)");
    assert_error("{\n  \"k\": tru\n}",
                 "JSON syntax error at line 2, column 8: invalid literal (expected a value)");
    assert_error("nul", "JSON syntax error at line 1, column 1: invalid literal (expected a value)");
    assert_error("True", "JSON syntax error at line 1, column 1: expected a value");
    assert_error("[1] x", "JSON syntax error at line 1, column 5: unexpected data after the value");
    assert_error("{} {}", "JSON syntax error at line 1, column 4: unexpected data after the value");
    assert_error("1 2", "JSON syntax error at line 1, column 3: unexpected data after the value");
    assert_error("nulll", "JSON syntax error at line 1, column 5: unexpected data after the value");
    assert_error("/* c */ 1", "JSON syntax error at line 1, column 1: expected a value");
    assert_error("[1] // c", "JSON syntax error at line 1, column 5: unexpected data after the value");
    assert_error("\xef\xbb\xbf{}", "JSON syntax error at line 1, column 1: expected a value");
    assert_error("[\f1]", "JSON syntax error at line 1, column 2: expected a value");
    /* Columns count characters, not bytes. */
    assert_error("{\"\xc3\xa9\xc3\xa9\": x}",
                 "JSON syntax error at line 1, column 8: expected a value");
    /* NUL inside the given length is data, not an end. */
    assert_error_n("[1]\0", 4, "JSON syntax error at line 1, column 4: unexpected data after the value");
    assert_error_n("[1,\0]", 5, "JSON syntax error at line 1, column 4: expected a value");
}
END_TEST

START_TEST(test_number_errors)
{
    assert_error("01", "JSON syntax error at line 1, column 1: invalid number: leading zero");
    assert_error("-01", "JSON syntax error at line 1, column 1: invalid number: leading zero");
    assert_error("+1", "JSON syntax error at line 1, column 1: expected a value");
    assert_error("-", "JSON syntax error at line 1, column 2: invalid number (end of input)");
    assert_error("-a", "JSON syntax error at line 1, column 2: invalid number");
    assert_error(".5", "JSON syntax error at line 1, column 1: expected a value");
    assert_error("1.", "JSON syntax error at line 1, column 3: invalid number: expected digit "
                       "after '.' (end of input)");
    assert_error("1.e5", "JSON syntax error at line 1, column 3: invalid number: expected digit "
                         "after '.'");
    assert_error("1e", "JSON syntax error at line 1, column 3: invalid number: expected digit in "
                       "exponent (end of input)");
    assert_error("1e+", "JSON syntax error at line 1, column 4: invalid number: expected digit "
                        "in exponent (end of input)");
    assert_error("[1e+x]", "JSON syntax error at line 1, column 5: invalid number: expected "
                           "digit in exponent");
    assert_error("NaN", "JSON syntax error at line 1, column 1: expected a value");
    assert_error("-Infinity", "JSON syntax error at line 1, column 2: invalid number");
    assert_error("Infinity", "JSON syntax error at line 1, column 1: expected a value");
    assert_error("0x10", "JSON syntax error at line 1, column 2: unexpected data after the value");
}
END_TEST

START_TEST(test_string_errors)
{
    assert_error("\"abc", "JSON syntax error at line 1, column 5: unterminated string (end of input)");
    assert_error("\"abc\\", "JSON syntax error at line 1, column 6: unterminated string (end of input)");
    assert_error("\"a\nb\"", "JSON syntax error at line 1, column 3: control character in string "
                             "(escape it)");
    assert_error("\"a\tb\"", "JSON syntax error at line 1, column 3: control character in string "
                             "(escape it)");
    assert_error_n("\"a\0b\"", 5, "JSON syntax error at line 1, column 3: control character in "
                                  "string (escape it)");
    assert_error("\"\\x41\"", "JSON syntax error at line 1, column 2: invalid escape in string");
    assert_error("\"\\'\"", "JSON syntax error at line 1, column 2: invalid escape in string");
    assert_error("\"\\u12\"", "JSON syntax error at line 1, column 2: invalid \\u escape (need 4 "
                              "hex digits)");
    assert_error("\"\\u12g4\"", "JSON syntax error at line 1, column 2: invalid \\u escape (need "
                                "4 hex digits)");
    assert_error("\"\\u", "JSON syntax error at line 1, column 2: invalid \\u escape (need 4 hex "
                          "digits)");
    /* Surrogates must pair. */
    const char *lone = "JSON syntax error at line 1, column 3: unpaired surrogate in \\u escape";
    assert_error("[\"\\ud800\"]", lone);
    assert_error("[\"\\udc00\"]", lone);
    assert_error("[\"\\ud800x\"]", lone);
    assert_error("[\"\\ud800\\n\"]", lone);
    assert_error("[\"\\ud800\\ud800\"]", lone);
    assert_error("[\"\\udbff\\ue000\"]", lone);
    assert_error("[\"\\udc00\\ud800\"]", lone);
    /* Invalid UTF-8: lone continuation, overlong, encoded surrogate, above U+10FFFF,
     * truncated, 0xFF. */
    const char *bad[] = {"\"\x80\"", "\"\xc0\xaf\"", "\"\xe0\x80\xaf\"", "\"\xed\xa0\x80\"",
                         "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "\"\xff\"", "\"\xf0\x9f\x98\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_error(bad[i], "JSON syntax error at line 1, column 2: invalid UTF-8 in string");
    assert_error("{\"k\xc3\": 1}", "JSON syntax error at line 1, column 4: invalid UTF-8 in string");
    assert_error("[\xc3\xa9]", "JSON syntax error at line 1, column 2: expected a value");
}
END_TEST

START_TEST(test_depth)
{
    char doc[2 * (SL_JSON_MAX_DEPTH + 1) + 1];
    /* Exactly the maximum depth parses. */
    memset(doc, '[', SL_JSON_MAX_DEPTH);
    memset(doc + SL_JSON_MAX_DEPTH, ']', SL_JSON_MAX_DEPTH);
    struct sl_json *j = parse_n(doc, 2 * SL_JSON_MAX_DEPTH);
    ck_assert_msg(j != NULL, "%s", err.msg);
    int depth = 0;
    for (struct sl_json *c = j; c; c = c->child)
        depth++;
    ck_assert_int_eq(depth, SL_JSON_MAX_DEPTH);
    /* One more does not. */
    memset(doc, '[', SL_JSON_MAX_DEPTH + 1);
    memset(doc + SL_JSON_MAX_DEPTH + 1, ']', SL_JSON_MAX_DEPTH + 1);
    assert_error_n(doc, 2 * (SL_JSON_MAX_DEPTH + 1),
                   "JSON syntax error at line 1, column 65: nesting deeper than 64 levels");
    /* Mixed objects and arrays count the same; a huge depth fails fast, not by stack. */
    size_t big = 1000000;
    char *deep = malloc(big);
    for (size_t i = 0; i < big; i += 6)
        memcpy(deep + i, "{\"a\":[", i + 6 <= big ? 6 : big - i);
    assert_error_n(deep, big, "JSON syntax error at line 1, column 193: nesting deeper than 64 levels");
    free(deep);
    /* Depth is per path, not per document: many siblings at depth 64 are fine. */
    struct sl_buf b = SL_BUF_INIT;
    sl_buf_putc(&b, '[');
    for (int k = 0; k < 100; k++) {
        if (k)
            sl_buf_putc(&b, ',');
        for (int i = 0; i < SL_JSON_MAX_DEPTH - 1; i++)
            sl_buf_putc(&b, '[');
        for (int i = 0; i < SL_JSON_MAX_DEPTH - 1; i++)
            sl_buf_putc(&b, ']');
    }
    sl_buf_putc(&b, ']');
    ck_assert_ptr_nonnull(parse_n(b.p, b.len));
    sl_buf_free(&b);
}
END_TEST

START_TEST(test_duplicate_keys)
{
    assert_error("{\"a\":1,\"a\":2}",
                 "JSON syntax error at line 1, column 8: duplicate member name `a`");
    assert_error("{\"a\":1,\"\\u0061\":2}",
                 "JSON syntax error at line 1, column 8: duplicate member name `a`");
    /* Past the linear scan: a hashed set catches it too, at any position. */
    for (int n = 15; n <= 200; n += 37) {
        for (int dup = 0; dup < n; dup += 7) {
            struct sl_buf b = SL_BUF_INIT;
            sl_buf_putc(&b, '{');
            for (int i = 0; i < n; i++)
                sl_buf_printf(&b, "\"key%d\":%d,", i, i);
            sl_buf_printf(&b, "\"key%d\":0}", dup);
            memset(&err, 0, sizeof err);
            ck_assert_ptr_null(parse_n(b.p, b.len));
            ck_assert_ptr_nonnull(strstr(err.msg, "duplicate member name"));
            /* Without the duplicate it parses. */
            b.len -= 4;
            sl_buf_printf(&b, "x\":0}");
            struct sl_json *j = parse_n(b.p, b.len);
            ck_assert_msg(j != NULL, "%s", err.msg);
            ck_assert_uint_eq(j->count, (size_t)n + 1);
            sl_buf_free(&b);
        }
    }
    /* The same name in different objects is fine. */
    ck_assert_ptr_nonnull(parse("{\"a\":{\"a\":1},\"b\":{\"a\":2}}"));
    assert_error("{\"a\":{\"b\":1,\"b\":1}}",
                 "JSON syntax error at line 1, column 13: duplicate member name `b`");
    /* Long and odd names are cut and sanitised in the message. */
    assert_error("{\"x\\ny\":1,\"x\\ny\":2}",
                 "JSON syntax error at line 1, column 11: duplicate member name `x?y`");
}
END_TEST

START_TEST(test_int64)
{
    static const struct {
        const char *json;
        int64_t v;
    } ok[] = {
        {"0", 0},
        {"-0", 0},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
        {"9007199254740993", INT64_C(9007199254740993)}, /* 2^53 + 1: not a double */
        {"-9007199254740993", -INT64_C(9007199254740993)},
        {"\"9223372036854775807\"", INT64_MAX},
        {"\"-9223372036854775808\"", INT64_MIN},
        {"\"123\"", 123},
        {"\"-0\"", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct sl_json *j = parse(ok[i].json);
        ck_assert_ptr_nonnull(j);
        int64_t v = 1;
        ck_assert_msg(sl_json_int64(j, &v) == 0, "%s", ok[i].json);
        ck_assert_msg(v == ok[i].v, "%s", ok[i].json);
    }
    static const char *bad[] = {
        "9223372036854775808", "-9223372036854775809", "18446744073709551616",
        "99999999999999999999999", "1.0", "1e3", "1E3", "-1.5", "0.0", "1e0",
        "\"9223372036854775808\"", "\"-9223372036854775809\"", "\"abc\"", "\"\"", "\"-\"",
        "\"+5\"", "\" 5\"", "\"5 \"", "\"05\"", "\"1.0\"", "\"1e3\"", "\"0x10\"", "\"--1\"",
        "\"1\\u00002\"", "true", "null", "[1]", "{}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sl_json *j = parse(bad[i]);
        ck_assert_msg(j != NULL, "%s", bad[i]);
        int64_t v = 7;
        ck_assert_msg(sl_json_int64(j, &v) == SL_EINVAL, "accepted %s", bad[i]);
        ck_assert(v == 7);
    }
    ck_assert_int_eq(sl_json_int64(NULL, NULL), SL_EINVAL);
}
END_TEST

START_TEST(test_double)
{
    double d;
    ck_assert_int_eq(sl_json_double(parse("0.1"), &d), 0);
    ck_assert(d == 0.1);
    ck_assert_int_eq(sl_json_double(parse("-2.5e-3"), &d), 0);
    ck_assert(d == -2.5e-3);
    ck_assert_int_eq(sl_json_double(parse("9007199254740993"), &d), 0);
    ck_assert(d == 9007199254740992.0);
    ck_assert_int_eq(sl_json_double(parse("1.7976931348623157e308"), &d), 0);
    ck_assert(d == 1.7976931348623157e308);
    ck_assert_int_eq(sl_json_double(parse("-0"), &d), 0);
    ck_assert(d == 0 && signbit(d));
    ck_assert_int_eq(sl_json_double(parse("4.9e-324"), &d), 0);
    ck_assert(d > 0);
    ck_assert_int_eq(sl_json_double(parse("1e-400"), &d), 0); /* underflow rounds to 0 */
    ck_assert(d == 0);
    ck_assert_int_eq(sl_json_double(parse("1e400"), &d), SL_EINVAL);
    ck_assert_int_eq(sl_json_double(parse("-1e400"), &d), SL_EINVAL);
    ck_assert_int_eq(sl_json_double(parse("1.8e308"), &d), SL_EINVAL);
    ck_assert_int_eq(sl_json_double(parse("\"1.5\""), &d), SL_EINVAL);
    ck_assert_int_eq(sl_json_double(parse("true"), &d), SL_EINVAL);
}
END_TEST

START_TEST(test_write_roundtrip)
{
    const char *doc =
        "{ \"a\" : [ 1 , -0.50e+10 , true , false , null , \"x\\u0001\\\"\\\\\\/\\u00e9\" ],\n"
        "  \"nested\": { \"empty_obj\": {}, \"empty_arr\": [] , \"s\": \"\\ud83d\\ude00\"},"
        "  \"\\u0000k\": \"\\u001f\\t\" }";
    const char *want = "{\"a\":[1,-0.50e+10,true,false,null,\"x\\u0001\\\"\\\\/\xc3\xa9\"],"
                       "\"nested\":{\"empty_obj\":{},\"empty_arr\":[],\"s\":\"\xf0\x9f\x98\x80\"},"
                       "\"\\u0000k\":\"\\u001f\\t\"}";
    char *once = rewrite(doc, strlen(doc));
    ck_assert_str_eq(once, want);
    char *twice = rewrite(once, strlen(once));
    ck_assert_str_eq(twice, once);
    free(once);
    free(twice);
    char *s = rewrite("\"\"", 2);
    ck_assert_str_eq(s, "\"\"");
    free(s);
}
END_TEST

START_TEST(test_large_values)
{
    /* Strings and arrays bigger than any arena chunk. */
    size_t n = 3 * 1024 * 1024;
    char *doc = malloc(n + 2);
    doc[0] = '"';
    for (size_t i = 1; i <= n; i++)
        doc[i] = (char)('a' + i % 26);
    doc[n + 1] = '"';
    struct sl_json *j = parse_n(doc, n + 2);
    ck_assert_ptr_nonnull(j);
    ck_assert_uint_eq(j->len, n);
    ck_assert_int_eq(memcmp(j->str, doc + 1, n), 0);
    free(doc);

    struct sl_buf b = SL_BUF_INIT;
    sl_buf_putc(&b, '[');
    for (int i = 0; i < 100000; i++)
        sl_buf_printf(&b, "%s%d", i ? "," : "", i);
    sl_buf_putc(&b, ']');
    j = parse_n(b.p, b.len);
    ck_assert_ptr_nonnull(j);
    ck_assert_uint_eq(j->count, 100000);
    int64_t v = -1, i = 0;
    for (struct sl_json *c = j->child; c; c = c->next, i++) {
        ck_assert_int_eq(sl_json_int64(c, &v), 0);
        ck_assert(v == i);
    }
    ck_assert(i == 100000);
    sl_buf_free(&b);
}
END_TEST

START_TEST(test_arena)
{
    struct sl_arena a = {0};
    void *p = sl_arena_alloc(&a, 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 8, 0);
    ck_assert_uint_eq((uintptr_t)sl_arena_alloc(&a, 3) % 8, 0);
    ck_assert_ptr_nonnull(sl_arena_alloc(&a, 0));
    ck_assert_ptr_null(sl_arena_alloc(&a, SIZE_MAX));
    ck_assert_ptr_null(sl_arena_alloc(&a, SIZE_MAX - 3));
    char *s = sl_arena_strndup(&a, "hello world", 5);
    ck_assert_str_eq(s, "hello");
    /* A big allocation keeps the current chunk usable. */
    ck_assert_ptr_nonnull(sl_arena_alloc(&a, 5 * 1024 * 1024));
    char *t = sl_arena_strndup(&a, "x", 1);
    ck_assert_str_eq(t, "x");
    ck_assert_str_eq(s, "hello");
    sl_arena_free(&a);
    ck_assert_ptr_null(a.head);
    ck_assert_uint_eq(a.used, 0);
    sl_arena_free(&a);

    /* A limit turns into SL_ENOMEM from the parser, never a crash. */
    struct sl_arena lim = {0};
    lim.limit = 1024;
    ck_assert_ptr_nonnull(sl_arena_alloc(&lim, 1000));
    ck_assert_ptr_null(sl_arena_alloc(&lim, 100));
    ck_assert_ptr_nonnull(sl_arena_alloc(&lim, 24));
    ck_assert_ptr_null(sl_arena_alloc(&lim, 1));
    sl_arena_free(&lim);
    lim.limit = 4096;
    struct sl_buf b = SL_BUF_INIT;
    sl_buf_putc(&b, '[');
    for (int i = 0; i < 1000; i++)
        sl_buf_printf(&b, "%s\"v%d\"", i ? "," : "", i);
    sl_buf_putc(&b, ']');
    memset(&err, 0, sizeof err);
    ck_assert_ptr_null(sl_json_parse(b.p, b.len, &lim, &err));
    ck_assert_int_eq(err.code, SL_ENOMEM);
    ck_assert_str_eq(err.msg, "out of memory parsing JSON");
    ck_assert_uint_le(lim.used, lim.limit);
    sl_arena_free(&lim);
    sl_buf_free(&b);
}
END_TEST

START_TEST(test_null_input)
{
    assert_error_n(NULL, 0, "JSON syntax error at line 1, column 1: expected a value (end of input)");
}
END_TEST

START_TEST(test_kind_names)
{
    ck_assert_str_eq(sl_json_kind_name(SL_JSON_NULL), "null");
    ck_assert_str_eq(sl_json_kind_name(SL_JSON_TRUE), "boolean");
    ck_assert_str_eq(sl_json_kind_name(SL_JSON_FALSE), "boolean");
    ck_assert_str_eq(sl_json_kind_name(SL_JSON_NUMBER), "number");
    ck_assert_str_eq(sl_json_kind_name(SL_JSON_STRING), "string");
    ck_assert_str_eq(sl_json_kind_name(SL_JSON_ARRAY), "array");
    ck_assert_str_eq(sl_json_kind_name(SL_JSON_OBJECT), "object");
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_arena_reset_reuses_and_respects_the_limit);
    tcase_add_test(tc, test_scalars);
    tcase_add_test(tc, test_containers);
    tcase_add_test(tc, test_keys_with_escapes_and_nul);
    tcase_add_test(tc, test_string_escapes);
    tcase_add_test(tc, test_syntax_errors);
    tcase_add_test(tc, test_number_errors);
    tcase_add_test(tc, test_string_errors);
    tcase_add_test(tc, test_depth);
    tcase_add_test(tc, test_duplicate_keys);
    tcase_add_test(tc, test_int64);
    tcase_add_test(tc, test_double);
    tcase_add_test(tc, test_write_roundtrip);
    tcase_add_test(tc, test_large_values);
    tcase_add_test(tc, test_arena);
    tcase_add_test(tc, test_null_input);
    tcase_add_test(tc, test_kind_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(json_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
