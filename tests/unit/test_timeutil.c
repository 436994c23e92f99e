/* Unit tests for core/timeutil.c. */
#include "check_fast.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "timeutil.h"

static int parse(const char *s, int64_t *ns)
{
    return sl_time_parse(s, strlen(s), ns);
}

/* Parses s (must succeed) and returns its canonical form. */
static const char *canon(const char *s)
{
    static char out[SL_TIME_MAXLEN];
    int64_t ns;
    ck_assert_msg(parse(s, &ns) == 0, "failed to parse %s", s);
    ck_assert_uint_eq(sl_time_format(ns, out), strlen(out));
    return out;
}

static void assert_invalid(const char *s)
{
    int64_t ns = 12345;
    ck_assert_msg(parse(s, &ns) == SL_EINVAL, "accepted %s", s);
    ck_assert_msg(ns == 12345, "wrote output for %s", s);
}

START_TEST(test_parse_basic)
{
    int64_t ns;
    ck_assert_int_eq(parse("1970-01-01T00:00:00Z", &ns), 0);
    ck_assert(ns == 0);
    ck_assert_int_eq(parse("2023-01-02T00:25:06Z", &ns), 0);
    ck_assert(ns == INT64_C(1672619106) * SL_NS_PER_SEC);
    ck_assert_str_eq(canon("2023-01-02T00:25:06Z"), "2023-01-02T00:25:06Z");
    ck_assert_str_eq(canon("2021-08-21T01:23:58.996Z"), "2021-08-21T01:23:58.996Z");
    /* Separators and zone spellings. */
    ck_assert_str_eq(canon("2023-01-02t00:25:06z"), "2023-01-02T00:25:06Z");
    ck_assert_str_eq(canon("2023-01-02 00:25:06Z"), "2023-01-02T00:25:06Z");
    ck_assert_str_eq(canon("2023-01-02T00:25:06"), "2023-01-02T00:25:06Z"); /* no zone = UTC */
    ck_assert_str_eq(canon("2023-01-02T00:25"), "2023-01-02T00:25:00Z");   /* no seconds */
    ck_assert_str_eq(canon("2023-01-02T00:25+00:00"), "2023-01-02T00:25:00Z");
    ck_assert_str_eq(canon("2023-01-02T00:25:06-00:00"), "2023-01-02T00:25:06Z");
    ck_assert_int_eq(parse("1969-12-31T23:59:59Z", &ns), 0);
    ck_assert(ns == -SL_NS_PER_SEC);
}
END_TEST

START_TEST(test_parse_fraction_digits)
{
    static const struct {
        const char *in;
        int64_t frac;
    } cases[] = {
        {"2000-01-01T00:00:00.1Z", 100000000},
        {"2000-01-01T00:00:00.12Z", 120000000},
        {"2000-01-01T00:00:00.123Z", 123000000},
        {"2000-01-01T00:00:00.1234Z", 123400000},
        {"2000-01-01T00:00:00.12345Z", 123450000},
        {"2000-01-01T00:00:00.123456Z", 123456000},
        {"2000-01-01T00:00:00.1234567Z", 123456700},
        {"2000-01-01T00:00:00.12345678Z", 123456780},
        {"2000-01-01T00:00:00.123456789Z", 123456789},
        {"2000-01-01T00:00:00.000000001Z", 1},
        {"2000-01-01T00:00:00.000000000Z", 0},
        {"2000-01-01T00:00:00.999999999", 999999999},
    };
    const int64_t base = INT64_C(946684800) * SL_NS_PER_SEC;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ns;
        ck_assert_msg(parse(cases[i].in, &ns) == 0, "%s", cases[i].in);
        ck_assert_msg(ns - base == cases[i].frac, "%s", cases[i].in);
    }
    assert_invalid("2000-01-01T00:00:00.1234567890Z"); /* 10 digits */
    assert_invalid("2000-01-01T00:00:00.Z");
    assert_invalid("2000-01-01T00:00:00.");
    assert_invalid("2000-01-01T00:00.5Z"); /* fraction needs seconds */
    assert_invalid("2000-01-01T00:00:00,5Z");
}
END_TEST

START_TEST(test_parse_ranges)
{
    int64_t ns;
    /* Leap years. */
    ck_assert_int_eq(parse("2024-02-29T00:00:00Z", &ns), 0);
    ck_assert_int_eq(parse("2000-02-29T00:00:00Z", &ns), 0);
    assert_invalid("2023-02-29T00:00:00Z");
    assert_invalid("1900-02-29T00:00:00Z"); /* divisible by 100, not 400 */
    assert_invalid("2100-02-29T00:00:00Z");
    assert_invalid("2024-02-30T00:00:00Z");
    ck_assert_int_eq(parse("2023-04-30T00:00:00Z", &ns), 0);
    assert_invalid("2023-04-31T00:00:00Z");
    assert_invalid("2023-06-31T00:00:00Z");
    ck_assert_int_eq(parse("2023-12-31T00:00:00Z", &ns), 0);
    assert_invalid("2023-12-32T00:00:00Z");
    assert_invalid("2023-13-01T00:00:00Z");
    assert_invalid("2023-00-01T00:00:00Z");
    assert_invalid("2023-01-00T00:00:00Z");
    assert_invalid("2023-01-01T24:00:00Z");
    assert_invalid("2023-01-01T23:60:00Z");
    assert_invalid("2023-01-01T23:59:61Z");
    assert_invalid("0000-01-01T00:00:00Z");
    /* Years the parser accepts but int64 ns cannot hold. */
    assert_invalid("0001-01-01T00:00:00Z");
    assert_invalid("9999-12-31T23:59:59Z");
}
END_TEST

START_TEST(test_parse_leap_second)
{
    /* :60 folds into the next minute, even across a year boundary. */
    ck_assert_str_eq(canon("2016-12-31T23:59:60Z"), "2017-01-01T00:00:00Z");
    ck_assert_str_eq(canon("2016-12-31T23:59:60.5Z"), "2017-01-01T00:00:00.500Z");
    ck_assert_str_eq(canon("2015-06-30T23:59:60+00:00"), "2015-07-01T00:00:00Z");
}
END_TEST

START_TEST(test_parse_offsets)
{
    /* Offsets crossing midnight, month, year and Feb 29. */
    ck_assert_str_eq(canon("2023-01-01T01:00:00+05:30"), "2022-12-31T19:30:00Z");
    ck_assert_str_eq(canon("2022-12-31T23:30:00-01:00"), "2023-01-01T00:30:00Z");
    ck_assert_str_eq(canon("2024-02-28T23:30:00-01:00"), "2024-02-29T00:30:00Z");
    ck_assert_str_eq(canon("2024-03-01T00:30:00+01:00"), "2024-02-29T23:30:00Z");
    ck_assert_str_eq(canon("2023-03-01T00:30:00+01:00"), "2023-02-28T23:30:00Z");
    ck_assert_str_eq(canon("2023-06-15T12:00:00+23:59"), "2023-06-14T12:01:00Z");
    ck_assert_str_eq(canon("2023-06-15T12:00:00-23:59"), "2023-06-16T11:59:00Z");
    ck_assert_str_eq(canon("1970-01-01T00:00:00.000000001+00:01"),
                     "1969-12-31T23:59:00.000000001Z");
    assert_invalid("2023-01-01T00:00:00+24:00");
    assert_invalid("2023-01-01T00:00:00+05:60");
    assert_invalid("2023-01-01T00:00:00+0530");
    assert_invalid("2023-01-01T00:00:00+05");
    assert_invalid("2023-01-01T00:00:00+5:30");
    assert_invalid("2023-01-01T00:00:00 +05:30");
    assert_invalid("2023-01-01T00:00:00UTC");
    assert_invalid("2023-01-01T00:00:00ZZ");
}
END_TEST

START_TEST(test_parse_syntax)
{
    int64_t ns;
    assert_invalid("");
    assert_invalid("2023");
    assert_invalid("2023-01-02");
    assert_invalid("2023-01-02T");
    assert_invalid("2023-01-02T00");
    assert_invalid("2023-01-02T00:2");
    assert_invalid("2023-1-02T00:25:06Z");
    assert_invalid("23-01-02T00:25:06Z");
    assert_invalid("+2023-01-02T00:25:06Z");
    assert_invalid("12023-01-02T00:25:06Z");
    assert_invalid("2023/01/02T00:25:06Z");
    assert_invalid("2023-01-02X00:25:06Z");
    assert_invalid("2023-01-02T00:25:06Z ");
    assert_invalid(" 2023-01-02T00:25:06Z");
    assert_invalid("2023-01-02T00:25:06Zjunk");
    assert_invalid("2023-01-02T0a:25:06Z");
    assert_invalid("2023-01-02T00:25:6Z");
    assert_invalid("1672619106");
    /* The length bounds the input: no reading past it, and embedded NUL is rejected. */
    ck_assert_int_eq(sl_time_parse("2023-01-02T00:25:06Zxyz", 20, &ns), 0);
    ck_assert_int_eq(sl_time_parse("2023-01-02T00:25:06Z", 19, &ns), 0); /* no zone */
    ck_assert_int_eq(sl_time_parse("2023-01-02T00:25:06Z", 10, &ns), SL_EINVAL);
    ck_assert_int_eq(sl_time_parse("2023-01-02T00:25:06\0Z", 21, &ns), SL_EINVAL);
    ck_assert_int_eq(sl_time_parse("2023-01-02T00:25:06.1\0", 22, &ns), SL_EINVAL);
}
END_TEST

START_TEST(test_int64_bounds)
{
    int64_t ns;
    ck_assert_int_eq(parse("2262-04-11T23:47:16.854775807Z", &ns), 0);
    ck_assert(ns == INT64_MAX);
    assert_invalid("2262-04-11T23:47:16.854775808Z");
    ck_assert_int_eq(parse("1677-09-21T00:12:43.145224192Z", &ns), 0);
    ck_assert(ns == INT64_MIN);
    assert_invalid("1677-09-21T00:12:43.145224191Z");
    /* The same instants through offsets. */
    ck_assert_int_eq(parse("2262-04-12T00:47:16.854775807+01:00", &ns), 0);
    ck_assert(ns == INT64_MAX);
    assert_invalid("2262-04-11T23:47:16.854775807-00:01");
    ck_assert_int_eq(parse("1677-09-20T23:12:43.145224192-01:00", &ns), 0);
    ck_assert(ns == INT64_MIN);

    char out[SL_TIME_MAXLEN];
    sl_time_format(INT64_MAX, out);
    ck_assert_str_eq(out, "2262-04-11T23:47:16.854775807Z");
    sl_time_format(INT64_MIN, out);
    ck_assert_str_eq(out, "1677-09-21T00:12:43.145224192Z");
}
END_TEST

START_TEST(test_format)
{
    char out[SL_TIME_MAXLEN];
    ck_assert_uint_eq(sl_time_format(0, out), 20);
    ck_assert_str_eq(out, "1970-01-01T00:00:00Z");
    sl_time_format(-1, out);
    ck_assert_str_eq(out, "1969-12-31T23:59:59.999999999Z");
    sl_time_format(-SL_NS_PER_SEC, out);
    ck_assert_str_eq(out, "1969-12-31T23:59:59Z");
    sl_time_format(-1000000, out);
    ck_assert_str_eq(out, "1969-12-31T23:59:59.999Z");
    /* Fewest of 3, 6 or 9 digits that are exact. */
    int64_t base = INT64_C(1629509038) * SL_NS_PER_SEC;
    sl_time_format(base + 996000000, out);
    ck_assert_str_eq(out, "2021-08-21T01:23:58.996Z");
    sl_time_format(base + 500000000, out);
    ck_assert_str_eq(out, "2021-08-21T01:23:58.500Z");
    sl_time_format(base + 1000000, out);
    ck_assert_str_eq(out, "2021-08-21T01:23:58.001Z");
    sl_time_format(base + 1000, out);
    ck_assert_str_eq(out, "2021-08-21T01:23:58.000001Z");
    sl_time_format(base + 123456000, out);
    ck_assert_str_eq(out, "2021-08-21T01:23:58.123456Z");
    sl_time_format(base + 1, out);
    ck_assert_str_eq(out, "2021-08-21T01:23:58.000000001Z");
    sl_time_format(base + 100, out);
    ck_assert_str_eq(out, "2021-08-21T01:23:58.000000100Z");
}
END_TEST

START_TEST(test_every_day_against_libc)
{
    /* Each day from 1679 to 2260 through our parser and formatter against gmtime_r. */
    char in[64], out[SL_TIME_MAXLEN];
    for (int64_t day = -106000; day <= 106000; day++) {
        time_t t = (time_t)(day * 86400 + 3723); /* 01:02:03 */
        struct tm tm;
        ck_assert_ptr_nonnull(gmtime_r(&t, &tm));
        snprintf(in, sizeof in, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        int64_t ns;
        ck_assert_msg(parse(in, &ns) == 0, "%s", in);
        ck_assert_msg(ns == (int64_t)t * SL_NS_PER_SEC, "%s", in);
        sl_time_format(ns, out);
        ck_assert_str_eq(out, in);
    }
}
END_TEST

START_TEST(test_roundtrip_random)
{
    /* Format then parse is the identity over the whole int64 range. */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    char out[SL_TIME_MAXLEN];
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t v = (int64_t)x;
        if (i % 3 == 1)
            v -= v % 1000000; /* exercise the 3- and 6-digit forms */
        else if (i % 3 == 2)
            v -= v % 1000;
        size_t n = sl_time_format(v, out);
        ck_assert_uint_lt(n, SL_TIME_MAXLEN);
        int64_t back;
        ck_assert_msg(sl_time_parse(out, n, &back) == 0, "%s", out);
        ck_assert_msg(back == v, "%s", out);
    }
}
END_TEST

START_TEST(test_duration_parse)
{
    static const struct {
        const char *in;
        int64_t ns;
    } ok[] = {
        {"90s", 90 * SL_NS_PER_SEC},
        {"10m", 600 * SL_NS_PER_SEC},
        {"1h", 3600 * SL_NS_PER_SEC},
        {"1h30m", 5400 * SL_NS_PER_SEC},
        {"30d", INT64_C(30) * 86400 * SL_NS_PER_SEC},
        {"2w", INT64_C(14) * 86400 * SL_NS_PER_SEC},
        {"500ms", 500000000},
        {"250us", 250000},
        {"7ns", 7},
        {"1d2h3m4s5ms6us7ns",
         ((INT64_C(86400) + 7200 + 180 + 4) * SL_NS_PER_SEC) + 5000000 + 6000 + 7},
        {"0h1m", 60 * SL_NS_PER_SEC},
        {"1m1m", 120 * SL_NS_PER_SEC},
        {"9223372036854775807ns", INT64_MAX},
        {"106751d", INT64_C(106751) * 86400 * SL_NS_PER_SEC},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ns = 0;
        ck_assert_msg(sl_duration_parse(ok[i].in, strlen(ok[i].in), &ns) == 0, "%s", ok[i].in);
        ck_assert_msg(ns == ok[i].ns, "%s", ok[i].in);
    }
    static const char *bad[] = {
        "", "0s", "0h0m", "10", "s", "h1", "1H", "1S", "1.5h", "-1h", "+1h", " 1h", "1h ",
        "1 h", "1hour", "1sec", "1y", "1mo", "1µs", "9223372036854775808ns", "106752d",
        "9223372036854775807ns1ns", "99999999999999999999s", "1m30", "1h-30m", "1_000s",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ns = 42;
        ck_assert_msg(sl_duration_parse(bad[i], strlen(bad[i]), &ns) == SL_EINVAL, "%s",
                      bad[i]);
        ck_assert(ns == 42);
    }
    int64_t ns;
    ck_assert_int_eq(sl_duration_parse("10mjunk", 3, &ns), 0);
    ck_assert(ns == 600 * SL_NS_PER_SEC);
    ck_assert_int_eq(sl_duration_parse("10ms", 3, &ns), 0); /* "10m": the length bounds it */
    ck_assert(ns == 600 * SL_NS_PER_SEC);
}
END_TEST

START_TEST(test_duration_format)
{
    static const struct {
        int64_t ns;
        const char *out;
    } cases[] = {
        {INT64_C(30) * 86400 * SL_NS_PER_SEC, "30d"},
        {INT64_C(14) * 86400 * SL_NS_PER_SEC, "14d"},
        {3600 * SL_NS_PER_SEC, "1h"},
        {5400 * SL_NS_PER_SEC, "90m"},
        {600 * SL_NS_PER_SEC, "10m"},
        {90 * SL_NS_PER_SEC, "90s"},
        {1500000000, "1500ms"},
        {1000, "1us"},
        {1001, "1001ns"},
        {0, "0s"},
        {INT64_MAX, "9223372036854775807ns"},
        {-3600 * SL_NS_PER_SEC, "-1h"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        size_t n = sl_duration_format(cases[i].ns, out);
        ck_assert_str_eq(out, cases[i].out);
        ck_assert_uint_eq(n, strlen(cases[i].out));
    }
    /* Positive durations round-trip. */
    const int64_t samples[] = {1, 999, 1000, 60 * SL_NS_PER_SEC + 1, INT64_C(86400000000000),
                               INT64_MAX, INT64_MAX - INT64_MAX % 1000};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char out[32];
        int64_t back;
        size_t n = sl_duration_format(samples[i], out);
        ck_assert_int_eq(sl_duration_parse(out, n, &back), 0);
        ck_assert(back == samples[i]);
    }
}
END_TEST

START_TEST(test_clock)
{
    int64_t before = (int64_t)time(NULL) * SL_NS_PER_SEC;
    int64_t now = sl_now_ns();
    int64_t after = ((int64_t)time(NULL) + 1) * SL_NS_PER_SEC;
    ck_assert(now >= before && now <= after);
    sl_time_set_fake(INT64_C(1672619106) * SL_NS_PER_SEC);
    ck_assert(sl_now_ns() == INT64_C(1672619106) * SL_NS_PER_SEC);
    ck_assert(sl_now_ns() == INT64_C(1672619106) * SL_NS_PER_SEC);
    sl_time_set_fake(-5);
    ck_assert(sl_now_ns() == -5);
    sl_time_set_fake(0);
    ck_assert(sl_now_ns() >= before);
}
END_TEST

static void *other_thread_now(void *out)
{
    *(int64_t *)out = sl_now_ns();
    return NULL;
}

/* A replayed instant is the calling thread's only; 0 ends it. */
START_TEST(test_thread_now)
{
    pthread_t t;
    int64_t other = 0;
    sl_time_set_fake(1000);
    sl_time_set_thread_now(42);
    ck_assert(sl_now_ns() == 42);
    ck_assert_int_eq(pthread_create(&t, NULL, other_thread_now, &other), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert(other == 1000);
    sl_time_set_thread_now(0);
    ck_assert(sl_now_ns() == 1000);
    sl_time_set_fake(0);
}
END_TEST

static Suite *timeutil_suite(void)
{
    Suite *s = suite_create("timeutil");
    TCase *tc = tcase_create("time");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_parse_basic);
    tcase_add_test(tc, test_parse_fraction_digits);
    tcase_add_test(tc, test_parse_ranges);
    tcase_add_test(tc, test_parse_leap_second);
    tcase_add_test(tc, test_parse_offsets);
    tcase_add_test(tc, test_parse_syntax);
    tcase_add_test(tc, test_int64_bounds);
    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_every_day_against_libc);
    tcase_add_test(tc, test_roundtrip_random);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("duration");
    tcase_add_test(td, test_duration_parse);
    tcase_add_test(td, test_duration_format);
    tcase_add_test(td, test_clock);
    tcase_add_test(td, test_thread_now);
    suite_add_tcase(s, td);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(timeutil_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
