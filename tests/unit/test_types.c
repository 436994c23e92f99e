/* Unit tests for core/types.c. */
#include "check_fast.h"
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "timeutil.h"
#include "types.h"

static struct sl_arena arena;
static struct sl_error err;
static struct sl_buf out;

static void setup(void)
{
    memset(&arena, 0, sizeof arena);
    memset(&err, 0, sizeof err);
    memset(&out, 0, sizeof out);
}

static void teardown(void)
{
    sl_arena_free(&arena);
    sl_buf_free(&out);
}

/* A type from its dataType JSON text; must be valid. Caller frees. */
static struct sl_type *type(const char *dt)
{
    cJSON *j = cJSON_Parse(dt);
    ck_assert_msg(j != NULL, "bad test JSON %s", dt);
    struct sl_type *t = sl_type_from_cjson(j, &err);
    ck_assert_msg(t != NULL, "%s: %s", dt, err.msg);
    cJSON_Delete(j);
    return t;
}

static struct sl_json *json(const char *s)
{
    struct sl_json *j = sl_json_parse(s, strlen(s), &arena, &err);
    ck_assert_msg(j != NULL, "bad test JSON %s: %s", s, err.msg);
    return j;
}

/* Encodes input against dataType dt; returns the output text or NULL with err set. */
static const char *enc(const char *dt, const char *input)
{
    struct sl_type *t = type(dt);
    sl_buf_reset(&out);
    memset(&err, 0, sizeof err);
    int rc = sl_value_encode(t, json(input), &out, &err);
    sl_type_free(t);
    if (rc != 0) {
        ck_assert_int_eq(rc, err.code);
        return NULL;
    }
    return sl_buf_cstr(&out);
}

static void assert_enc(const char *dt, const char *input, const char *want)
{
    const char *got = enc(dt, input);
    ck_assert_msg(got != NULL, "%s rejected: %s", input, err.msg);
    ck_assert_str_eq(got, want);
}

static void assert_rej(const char *dt, const char *input, const char *msg)
{
    ck_assert_msg(enc(dt, input) == NULL, "accepted %s as %s", input, dt);
    ck_assert_int_eq(err.code, SL_ESCHEMA);
    ck_assert_str_eq(err.msg, msg);
}

#define T_STR "{\"type\":\"string\"}"
#define T_I64 "{\"type\":\"int64\"}"
#define T_I32 "{\"type\":\"int32\"}"
#define T_F64 "{\"type\":\"float64\"}"
#define T_F32 "{\"type\":\"float32\"}"
#define T_BOOL "{\"type\":\"boolean\"}"
#define T_TS "{\"type\":\"timestamp\"}"
#define T_ARR(e) "{\"type\":\"array\",\"elementType\":" e "}"
#define T_MAP(v) "{\"type\":\"map\",\"keyType\":{\"type\":\"string\"},\"valueType\":" v "}"
#define T_FIELD(n, t) "{\"name\":\"" n "\",\"dataType\":" t "}"

/* ---- types ---- */

START_TEST(test_type_roundtrip)
{
    const char *dts[] = {
        T_STR, T_I64, T_I32, T_F64, T_F32, T_BOOL, T_TS, T_ARR(T_I64), T_ARR(T_ARR(T_STR)),
        T_MAP(T_F64), T_MAP(T_ARR(T_TS)),
        "{\"type\":\"struct\",\"fields\":[" T_FIELD("a", T_I64) "," T_FIELD("b", T_ARR(T_STR)) ","
        T_FIELD("c", "{\"type\":\"struct\",\"fields\":[" T_FIELD("x", T_BOOL) "]}") "]}",
    };
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        struct sl_type *t = type(dts[i]);
        /* The buffer writer, the cJSON builder and the input text all agree. */
        sl_buf_reset(&out);
        sl_type_write_json(&out, t);
        ck_assert_str_eq(sl_buf_cstr(&out), dts[i]);
        cJSON *j = sl_type_to_cjson(t);
        char *txt = cJSON_PrintUnformatted(j);
        ck_assert_str_eq(txt, dts[i]);
        free(txt);
        struct sl_type *back = sl_type_from_cjson(j, &err);
        ck_assert_ptr_nonnull(back);
        ck_assert(sl_type_equal(t, back));
        struct sl_type *c = sl_type_clone(t);
        ck_assert_ptr_nonnull(c);
        ck_assert_ptr_ne(c, t);
        ck_assert(sl_type_equal(c, t));
        cJSON_Delete(j);
        sl_type_free(back);
        sl_type_free(c);
        sl_type_free(t);
    }
    sl_type_free(NULL);
}
END_TEST

START_TEST(test_type_equal)
{
    struct sl_type *a = type(T_ARR(T_I64)), *b = type(T_ARR(T_I32)), *m = type(T_MAP(T_I64));
    struct sl_type *s1 = type("{\"type\":\"struct\",\"fields\":[" T_FIELD("a", T_I64) "]}");
    struct sl_type *s2 = type("{\"type\":\"struct\",\"fields\":[" T_FIELD("b", T_I64) "]}");
    struct sl_type *s3 = type("{\"type\":\"struct\",\"fields\":[" T_FIELD("a", T_I64) ","
                              T_FIELD("b", T_I64) "]}");
    ck_assert(!sl_type_equal(a, b));
    ck_assert(!sl_type_equal(a, m)); /* same element, different container */
    ck_assert(!sl_type_equal(s1, s2));
    ck_assert(!sl_type_equal(s1, s3));
    ck_assert(sl_type_equal(s1, s1));
    sl_type_free(a);
    sl_type_free(b);
    sl_type_free(m);
    sl_type_free(s1);
    sl_type_free(s2);
    sl_type_free(s3);
}
END_TEST

static void assert_bad_type(const char *dt, const char *msg)
{
    cJSON *j = cJSON_Parse(dt);
    ck_assert_msg(j != NULL, "bad test JSON %s", dt);
    memset(&err, 0, sizeof err);
    ck_assert_ptr_null(sl_type_from_cjson(j, &err));
    ck_assert_int_eq(err.code, SL_EINVAL);
    ck_assert_str_eq(err.msg, msg);
    cJSON_Delete(j);
}

START_TEST(test_type_errors)
{
    assert_bad_type("\"int64\"", "dataType: expected an object like {\"type\":\"int64\"}");
    assert_bad_type("{}", "dataType: missing string member \"type\"");
    assert_bad_type("{\"type\":3}", "dataType: missing string member \"type\"");
    assert_bad_type("{\"type\":\"bool\"}", "dataType: unknown type \"bool\"");
    assert_bad_type("{\"type\":\"Int64\"}", "dataType: unknown type \"Int64\"");
    assert_bad_type("{\"type\":\"array\"}", "dataType: array needs \"elementType\"");
    assert_bad_type(T_ARR("{\"type\":\"x\"}"), "dataType.elementType: unknown type \"x\"");
    assert_bad_type("{\"type\":\"map\",\"valueType\":" T_I64 "}",
                    "dataType: map needs \"keyType\": {\"type\":\"string\"}");
    assert_bad_type("{\"type\":\"map\",\"keyType\":" T_I64 ",\"valueType\":" T_I64 "}",
                    "dataType: map needs \"keyType\": {\"type\":\"string\"}");
    assert_bad_type("{\"type\":\"map\",\"keyType\":" T_STR "}", "dataType: map needs \"valueType\"");
    assert_bad_type("{\"type\":\"struct\"}", "dataType: struct needs a non-empty \"fields\" array");
    assert_bad_type("{\"type\":\"struct\",\"fields\":[]}",
                    "dataType: struct needs a non-empty \"fields\" array");
    assert_bad_type("{\"type\":\"struct\",\"fields\":{}}",
                    "dataType: struct needs a non-empty \"fields\" array");
    assert_bad_type("{\"type\":\"struct\",\"fields\":[{\"dataType\":" T_I64 "}]}",
                    "dataType.fields[0]: needs a non-empty \"name\"");
    assert_bad_type("{\"type\":\"struct\",\"fields\":[" T_FIELD("", T_I64) "]}",
                    "dataType.fields[0]: needs a non-empty \"name\"");
    assert_bad_type("{\"type\":\"struct\",\"fields\":[" T_FIELD("a", T_I64) "," T_FIELD("a", T_STR)
                    "]}",
                    "dataType.fields[1]: duplicate field name \"a\"");
    assert_bad_type("{\"type\":\"struct\",\"fields\":[" T_FIELD("a", T_I64) ",{\"name\":\"b\"}]}",
                    "dataType.fields[1].dataType: missing");
    assert_bad_type(T_MAP(T_ARR("{\"type\":\"struct\",\"fields\":[" T_FIELD("a", "{}") "]}")),
                    "dataType.valueType.elementType.fields[0].dataType: missing string member "
                    "\"type\"");

    /* Depth is capped: 32 levels parse, 33 do not. */
    char buf[4096];
    for (int levels = 32; levels <= 33; levels++) {
        size_t w = 0;
        for (int i = 1; i < levels; i++)
            w += (size_t)snprintf(buf + w, sizeof buf - w, "{\"type\":\"array\",\"elementType\":");
        w += (size_t)snprintf(buf + w, sizeof buf - w, "%s", T_I64);
        for (int i = 1; i < levels; i++)
            buf[w++] = '}';
        buf[w] = '\0';
        cJSON *j = cJSON_Parse(buf);
        ck_assert_ptr_nonnull(j);
        struct sl_type *t = sl_type_from_cjson(j, &err);
        if (levels == 32) {
            ck_assert_ptr_nonnull(t);
        } else {
            ck_assert_ptr_null(t);
            ck_assert_ptr_nonnull(strstr(err.msg, "types nest deeper than 32 levels"));
        }
        sl_type_free(t);
        cJSON_Delete(j);
    }
}
END_TEST

START_TEST(test_kind_names)
{
    ck_assert_str_eq(sl_kind_name(SL_BOOL), "boolean");
    ck_assert_str_eq(sl_kind_name(SL_FLOAT32), "float32");
    ck_assert_str_eq(sl_kind_name(SL_STRUCT), "struct");
    ck_assert_str_eq(sl_kind_name((enum sl_kind)0), "unknown");
    ck_assert_str_eq(sl_kind_name((enum sl_kind)99), "unknown");
}
END_TEST

/* ---- scalar values ---- */

START_TEST(test_string)
{
    assert_enc(T_STR, "\"abc\"", "\"abc\"");
    assert_enc(T_STR, "\"a\\u0000\\n\\ud83d\\ude00\"", "\"a\\u0000\\n\xf0\x9f\x98\x80\"");
    assert_enc(T_STR, "\"\"", "\"\"");
    assert_enc(T_STR, "null", "null");
    assert_rej(T_STR, "123", "expected string, got number 123");
    assert_rej(T_STR, "true", "expected string, got boolean true");
    assert_rej(T_STR, "[\"a\"]", "expected string, got array");
    assert_rej(T_STR, "{}", "expected string, got object");
}
END_TEST

START_TEST(test_int64)
{
    assert_enc(T_I64, "0", "\"0\"");
    assert_enc(T_I64, "-0", "\"0\"");
    assert_enc(T_I64, "123", "\"123\"");
    assert_enc(T_I64, "\"123\"", "\"123\"");
    assert_enc(T_I64, "9223372036854775807", "\"9223372036854775807\"");
    assert_enc(T_I64, "-9223372036854775808", "\"-9223372036854775808\"");
    assert_enc(T_I64, "\"-9223372036854775808\"", "\"-9223372036854775808\"");
    assert_enc(T_I64, "9007199254740993", "\"9007199254740993\""); /* 2^53 + 1, exact */
    assert_enc(T_I64, "\"9007199254740993\"", "\"9007199254740993\"");
    assert_enc(T_I64, "null", "null");
    assert_rej(T_I64, "\"abc\"", "expected int64, got string \"abc\"");
    assert_rej(T_I64, "1.5", "expected int64, got number 1.5");
    assert_rej(T_I64, "1.0", "expected int64, got number 1.0");
    assert_rej(T_I64, "1e3", "expected int64, got number 1e3");
    assert_rej(T_I64, "9223372036854775808",
               "expected int64, got number 9223372036854775808 (out of range)");
    assert_rej(T_I64, "-9223372036854775809",
               "expected int64, got number -9223372036854775809 (out of range)");
    assert_rej(T_I64, "\"9223372036854775808\"",
               "expected int64, got string \"9223372036854775808\" (out of range)");
    assert_rej(T_I64, "\" 12\"", "expected int64, got string \" 12\"");
    assert_rej(T_I64, "\"+12\"", "expected int64, got string \"+12\"");
    assert_rej(T_I64, "\"1.0\"", "expected int64, got string \"1.0\"");
    assert_rej(T_I64, "\"\"", "expected int64, got string \"\"");
    assert_rej(T_I64, "true", "expected int64, got boolean true");
    assert_rej(T_I64, "[1]", "expected int64, got array");
}
END_TEST

START_TEST(test_int32)
{
    assert_enc(T_I32, "2147483647", "2147483647");
    assert_enc(T_I32, "-2147483648", "-2147483648");
    assert_enc(T_I32, "-0", "0");
    assert_rej(T_I32, "2147483648", "expected int32, got number 2147483648 (out of range)");
    assert_rej(T_I32, "-2147483649", "expected int32, got number -2147483649 (out of range)");
    assert_rej(T_I32, "99999999999999999999",
               "expected int32, got number 99999999999999999999 (out of range)");
    assert_rej(T_I32, "\"5\"", "expected int32, got string \"5\"");
    assert_rej(T_I32, "5.0", "expected int32, got number 5.0");
}
END_TEST

START_TEST(test_float64)
{
    assert_enc(T_F64, "1", "1");
    assert_enc(T_F64, "1.0", "1");
    assert_enc(T_F64, "1.50", "1.5");
    assert_enc(T_F64, "0.1", "0.1");
    assert_enc(T_F64, "-0.0", "-0");
    assert_enc(T_F64, "216409.0", "216409");
    assert_enc(T_F64, "1e22", "1e+22");
    assert_enc(T_F64, "123456789012345678", "1.2345678901234568e+17");
    assert_enc(T_F64, "9007199254740993", "9007199254740992");
    assert_enc(T_F64, "0.30000000000000004", "0.30000000000000004");
    assert_enc(T_F64, "1.7976931348623157e308", "1.7976931348623157e+308");
    assert_enc(T_F64, "4.9406564584124654e-324", "5e-324");
    assert_enc(T_F64, "2.2250738585072014e-308", "2.2250738585072014e-308");
    assert_enc(T_F64, "1e-400", "0");
    assert_enc(T_F64, "\"NaN\"", "\"NaN\"");
    assert_enc(T_F64, "\"Infinity\"", "\"Infinity\"");
    assert_enc(T_F64, "\"-Infinity\"", "\"-Infinity\"");
    assert_rej(T_F64, "1e400", "expected float64, got number 1e400 (out of range)");
    assert_rej(T_F64, "\"nan\"", "expected float64, got string \"nan\"");
    assert_rej(T_F64, "\"inf\"", "expected float64, got string \"inf\"");
    assert_rej(T_F64, "\"1.5\"", "expected float64, got string \"1.5\"");
    assert_rej(T_F64, "false", "expected float64, got boolean false");
}
END_TEST

START_TEST(test_float32)
{
    assert_enc(T_F32, "0.1", "0.1");
    assert_enc(T_F32, "1", "1");
    assert_enc(T_F32, "16777217", "16777216"); /* rounded to float */
    assert_enc(T_F32, "0.1000000001", "0.1");
    assert_enc(T_F32, "3.14159265358979", "3.1415927");
    assert_enc(T_F32, "3.4028234663852886e38", "3.4028235e+38");
    assert_enc(T_F32, "1e-46", "0");
    assert_enc(T_F32, "1.4e-45", "1e-45");
    assert_enc(T_F32, "\"-Infinity\"", "\"-Infinity\"");
    assert_rej(T_F32, "3.5e38", "expected float32, got number 3.5e38 (out of range)");
    assert_rej(T_F32, "-1e39", "expected float32, got number -1e39 (out of range)");
    assert_rej(T_F32, "1e400", "expected float32, got number 1e400 (out of range)");
}
END_TEST

/* Significant digits of a %g text: leading and trailing zeros do not count. */
static int sig_digits(const char *s)
{
    int n = 0, zeros = 0, started = 0;
    for (; *s && *s != 'e'; s++) {
        if (*s < '0' || *s > '9')
            continue;
        if (*s != '0')
            started = 1;
        if (!started)
            continue;
        n++;
        zeros = *s == '0' ? zeros + 1 : 0;
    }
    return n - zeros;
}

START_TEST(test_float_shortest)
{
    /* Random doubles and floats: the text reads back exactly and no shorter text would. */
    uint64_t x = 0x2545F4914F6CDD1Dull;
    char s[32], shorter[400];
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (!isfinite(d))
            continue;
        if (i % 10 == 0)
            d = ldexp(d, -1000); /* plenty of subnormals too */
        size_t n = sl_value_format_double(d, s);
        ck_assert_uint_eq(n, strlen(s));
        ck_assert_msg(strtod(s, NULL) == d, "%s", s);
        int digits = sig_digits(s);
        if (digits > 1) {
            snprintf(shorter, sizeof shorter, "%.*g", digits - 1, d);
            ck_assert_msg(strtod(shorter, NULL) != d, "%s is not shortest", s);
        }
        float f;
        uint32_t x32 = (uint32_t)(x >> 16);
        memcpy(&f, &x32, sizeof f);
        if (!isfinite(f))
            continue;
        n = sl_value_format_float(f, s);
        ck_assert_uint_eq(n, strlen(s));
        ck_assert_msg(strtof(s, NULL) == f, "%s", s);
        digits = sig_digits(s);
        if (digits > 1) {
            snprintf(shorter, sizeof shorter, "%.*g", digits - 1, (double)f);
            ck_assert_msg(strtof(shorter, NULL) != f, "%s is not shortest", s);
        }
    }
    sl_value_format_double(4.9406564584124654e-324, s);
    ck_assert_str_eq(s, "5e-324");
    sl_value_format_double(-2.2250738585072009e-308, s);
    ck_assert_str_eq(s, "-2.225073858507201e-308");
    sl_value_format_double(0.1, s);
    ck_assert_str_eq(s, "0.1");
    sl_value_format_float(0.1f, s);
    ck_assert_str_eq(s, "0.1");
    sl_value_format_double((double)0.1f, s);
    ck_assert_str_eq(s, "0.10000000149011612");
    sl_value_format_float(FLT_MAX, s);
    ck_assert_str_eq(s, "3.4028235e+38");
}
END_TEST

START_TEST(test_bool_and_timestamp)
{
    assert_enc(T_BOOL, "true", "true");
    assert_enc(T_BOOL, "false", "false");
    assert_rej(T_BOOL, "1", "expected boolean, got number 1");
    assert_rej(T_BOOL, "\"true\"", "expected boolean, got string \"true\"");
    assert_enc(T_TS, "\"2023-01-02T00:25:06Z\"", "\"2023-01-02T00:25:06Z\"");
    assert_enc(T_TS, "\"2023-01-02T05:55:06.5+05:30\"", "\"2023-01-02T00:25:06.500Z\"");
    assert_enc(T_TS, "\"2023-01-02 00:25:06\"", "\"2023-01-02T00:25:06Z\"");
    assert_enc(T_TS, "\"2016-12-31T23:59:60.123456789Z\"", "\"2017-01-01T00:00:00.123456789Z\"");
    assert_rej(T_TS, "\"2023-02-29T00:00:00Z\"",
               "expected timestamp (RFC 3339, like 2023-01-02T00:25:06Z), got string "
               "\"2023-02-29T00:00:00Z\"");
    assert_rej(T_TS, "1672619106",
               "expected timestamp (an RFC 3339 string), got number 1672619106");
}
END_TEST

START_TEST(test_got_excerpt)
{
    /* Long and hostile input is cut and made safe for the message. */
    assert_rej(T_I64, "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
               "expected int64, got string \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"");
    assert_rej(T_I64, "\"a\\\"b`c\\nd\"", "expected int64, got string \"a'b?c?d\"");
    /* Cut at a character boundary: 39 ASCII bytes then a 2-byte character. */
    assert_rej(T_I64, "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9xyz\"",
               "expected int64, got string \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"");
}
END_TEST

/* ---- containers ---- */

#define T_ADDR "{\"type\":\"struct\",\"fields\":[" T_FIELD("street", T_STR) "," \
    T_FIELD("zip", T_I64) "]}"
#define T_USER "{\"type\":\"struct\",\"fields\":[" T_FIELD("name", T_STR) "," \
    T_FIELD("address", T_ADDR) "," T_FIELD("tags", T_ARR(T_STR)) "," \
    T_FIELD("scores", T_MAP(T_F64)) "]}"

START_TEST(test_array_and_map)
{
    assert_enc(T_ARR(T_I64), "[1, \"2\", null, -3]", "[\"1\",\"2\",null,\"-3\"]");
    assert_enc(T_ARR(T_I64), "[]", "[]");
    assert_enc(T_ARR(T_ARR(T_I64)), "[[\"123\", null], null, []]", "[[\"123\",null],null,[]]");
    assert_rej(T_ARR(T_I64), "{\"a\":1}", "expected array, got object");
    assert_rej(T_ARR(T_I64), "[1, 2, 3.5]", "field `[2]`: expected int64, got number 3.5");
    assert_rej(T_ARR(T_ARR(T_I64)), "[[1], [2, \"x\"]]",
               "field `[1][1]`: expected int64, got string \"x\"");
    assert_enc(T_MAP(T_F32), "{\"a\": 0.1, \"b\": null, \"\\u00e9\": \"NaN\"}",
               "{\"a\":0.1,\"b\":null,\"\xc3\xa9\":\"NaN\"}");
    assert_enc(T_MAP(T_I64), "{}", "{}");
    assert_rej(T_MAP(T_I64), "[1]", "expected map (a JSON object), got array");
    assert_rej(T_MAP(T_I64), "{\"math\": true}",
               "field `[\"math\"]`: expected int64, got boolean true");
}
END_TEST

START_TEST(test_struct)
{
    assert_enc(T_ADDR, "{\"street\": \"Main\", \"zip\": 12345}", "[\"Main\",\"12345\"]");
    /* Field order of the type, whatever the input order; absent fields are null. */
    assert_enc(T_ADDR, "{\"zip\": \"9\", \"street\": \"x\"}", "[\"x\",\"9\"]");
    assert_enc(T_ADDR, "{\"zip\": 1}", "[null,\"1\"]");
    assert_enc(T_ADDR, "{}", "[null,null]");
    assert_enc(T_ADDR, "null", "null");
    assert_enc(T_USER,
               "{\"name\":\"ann\",\"address\":{\"street\":\"s\",\"zip\":1},\"tags\":[\"a\",\"b\"],"
               "\"scores\":{\"m\":1.5}}",
               "[\"ann\",[\"s\",\"1\"],[\"a\",\"b\"],{\"m\":1.5}]");
    assert_enc(T_USER, "{\"tags\":null,\"address\":null}", "[null,null,null,null]");
    assert_rej(T_ADDR, "[\"Main\", 1]", "expected struct (a JSON object), got array");
    assert_rej(T_ADDR, "{\"street\": \"x\", \"zipp\": 1}", "unknown field `zipp`");
    assert_rej(T_USER, "{\"address\": {\"zip\": \"abc\"}}",
               "field `address.zip`: expected int64, got string \"abc\"");
    assert_rej(T_USER, "{\"address\": {\"street\": 1, \"zip\": 2}}",
               "field `address.street`: expected string, got number 1");
    assert_rej(T_USER, "{\"address\": {\"city\": \"x\"}}", "field `address`: unknown field `city`");
    assert_rej(T_USER, "{\"tags\": [\"a\", \"b\", 3]}",
               "field `tags[2]`: expected string, got number 3");
    assert_rej(T_USER, "{\"scores\": {\"math\": \"A\"}}",
               "field `scores[\"math\"]`: expected float64, got string \"A\"");
    assert_rej(T_ARR("{\"type\":\"struct\",\"fields\":[" T_FIELD("b", T_BOOL) "]}"),
               "[{\"b\":true}, {}, {\"b\": 3}]",
               "field `[2].b`: expected boolean, got number 3");
}
END_TEST

START_TEST(test_struct_many_fields)
{
    /* Members in reverse order, and a field missing in the middle. */
    struct sl_buf dt = SL_BUF_INIT, in = SL_BUF_INIT, want = SL_BUF_INIT;
    sl_buf_puts(&dt, "{\"type\":\"struct\",\"fields\":[");
    for (int i = 0; i < 50; i++)
        sl_buf_printf(&dt, "%s{\"name\":\"f%d\",\"dataType\":{\"type\":\"int32\"}}", i ? "," : "", i);
    sl_buf_puts(&dt, "]}");
    sl_buf_putc(&in, '{');
    for (int i = 49, first = 1; i >= 0; i--) {
        if (i == 25)
            continue;
        sl_buf_printf(&in, "%s\"f%d\":%d", first ? "" : ",", i, i);
        first = 0;
    }
    sl_buf_putc(&in, '}');
    sl_buf_putc(&want, '[');
    for (int i = 0; i < 50; i++) {
        if (i == 25)
            sl_buf_puts(&want, ",null");
        else
            sl_buf_printf(&want, "%s%d", i ? "," : "", i);
    }
    sl_buf_putc(&want, ']');
    assert_enc(sl_buf_cstr(&dt), sl_buf_cstr(&in), sl_buf_cstr(&want));
    sl_buf_free(&dt);
    sl_buf_free(&in);
    sl_buf_free(&want);
}
END_TEST

START_TEST(test_error_restores_output)
{
    struct sl_type *t = type(T_ARR(T_I64));
    sl_buf_reset(&out);
    sl_buf_puts(&out, "prefix,");
    ck_assert_int_eq(sl_value_encode(t, json("[1,2,3,\"x\"]"), &out, &err), SL_ESCHEMA);
    ck_assert_str_eq(sl_buf_cstr(&out), "prefix,");
    ck_assert_int_eq(sl_value_encode(t, json("[1,2]"), &out, &err), 0);
    ck_assert_str_eq(sl_buf_cstr(&out), "prefix,[\"1\",\"2\"]");
    /* An allocation failure is reported, not mistaken for success. */
    out.oom = 1;
    ck_assert_int_eq(sl_value_encode(t, json("[1]"), &out, &err), SL_ENOMEM);
    sl_type_free(t);
}
END_TEST

START_TEST(test_encode_field)
{
    struct sl_type *t = type(T_USER);
    ck_assert_int_eq(sl_value_encode_field(t, "user", json("{\"address\": {\"zip\": \"abc\"}}"),
                                           &out, &err),
                     SL_ESCHEMA);
    ck_assert_str_eq(err.msg, "field `user.address.zip`: expected int64, got string \"abc\"");
    ck_assert_int_eq(sl_value_encode_field(t, "user", json("{\"bad\": 1}"), &out, &err),
                     SL_ESCHEMA);
    ck_assert_str_eq(err.msg, "field `user`: unknown field `bad`");
    ck_assert_int_eq(sl_value_encode_field(t, "user", json("3"), &out, &err), SL_ESCHEMA);
    ck_assert_str_eq(err.msg, "field `user`: expected struct (a JSON object), got number 3");
    ck_assert_uint_eq(out.len, 0);
    ck_assert_int_eq(sl_value_encode_field(t, "user", json("{\"name\": \"a\"}"), &out, &err), 0);
    ck_assert_str_eq(sl_buf_cstr(&out), "[\"a\",null,null,null]");
    sl_type_free(t);
}
END_TEST

START_TEST(test_scalar)
{
    struct sl_scalar sc;
    ck_assert_int_eq(sl_value_scalar(SL_INT64, json("\"-9223372036854775808\""), &sc, &err), 0);
    ck_assert(sc.i == INT64_MIN && !sc.null && sc.kind == SL_INT64);
    ck_assert_int_eq(sl_value_scalar(SL_INT32, json("-7"), &sc, &err), 0);
    ck_assert(sc.i == -7 && sc.f == -7.0);
    ck_assert_int_eq(sl_value_scalar(SL_FLOAT32, json("0.1"), &sc, &err), 0);
    ck_assert(sc.f == (double)0.1f);
    ck_assert_int_eq(sl_value_scalar(SL_FLOAT64, json("\"NaN\""), &sc, &err), 0);
    ck_assert(isnan(sc.f));
    ck_assert_int_eq(sl_value_scalar(SL_BOOL, json("true"), &sc, &err), 0);
    ck_assert(sc.i == 1);
    ck_assert_int_eq(sl_value_scalar(SL_TIMESTAMP, json("\"1970-01-01T00:00:01.5Z\""), &sc, &err),
                     0);
    ck_assert(sc.i == 1500000000);
    ck_assert_int_eq(sl_value_scalar(SL_STRING, json("\"a\\u0000b\""), &sc, &err), 0);
    ck_assert_uint_eq(sc.len, 3);
    ck_assert_int_eq(memcmp(sc.str, "a\0b", 3), 0);
    ck_assert_int_eq(sl_value_scalar(SL_STRING, json("null"), &sc, &err), 0);
    ck_assert(sc.null);
    ck_assert_int_eq(sl_value_scalar(SL_INT64, json("\"abc\""), &sc, &err), SL_ESCHEMA);
    ck_assert_str_eq(err.msg, "expected int64, got string \"abc\"");
    ck_assert_int_eq(sl_value_scalar(SL_ARRAY, json("[]"), &sc, &err), SL_EINVAL);
    ck_assert_str_eq(err.msg, "array is not a scalar type");
}
END_TEST

static Suite *types_suite(void)
{
    Suite *s = suite_create("types");
    TCase *tt = tcase_create("type");
    tcase_add_checked_fixture(tt, setup, teardown);
    tcase_add_test(tt, test_type_roundtrip);
    tcase_add_test(tt, test_type_equal);
    tcase_add_test(tt, test_type_errors);
    tcase_add_test(tt, test_kind_names);
    suite_add_tcase(s, tt);
    TCase *tv = tcase_create("value");
    tcase_add_checked_fixture(tv, setup, teardown);
    tcase_set_timeout(tv, 60);
    tcase_add_test(tv, test_string);
    tcase_add_test(tv, test_int64);
    tcase_add_test(tv, test_int32);
    tcase_add_test(tv, test_float64);
    tcase_add_test(tv, test_float32);
    tcase_add_test(tv, test_float_shortest);
    tcase_add_test(tv, test_bool_and_timestamp);
    tcase_add_test(tv, test_got_excerpt);
    tcase_add_test(tv, test_array_and_map);
    tcase_add_test(tv, test_struct);
    tcase_add_test(tv, test_struct_many_fields);
    tcase_add_test(tv, test_error_restores_output);
    tcase_add_test(tv, test_encode_field);
    tcase_add_test(tv, test_scalar);
    suite_add_tcase(s, tv);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(types_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
