/* Unit tests for core/buf.c and core/error.c. */
#include "check_fast.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"

/* The buffer's contents as a C string, for comparisons. */
static const char *str(struct sl_buf *b)
{
    const char *s = sl_buf_cstr(b);
    ck_assert_ptr_nonnull(s);
    return s;
}

static const char *json_str(struct sl_buf *b, const char *s, size_t n)
{
    sl_buf_reset(b);
    sl_buf_json_str(b, s, n);
    return str(b);
}

START_TEST(test_append_and_grow)
{
    struct sl_buf b = SL_BUF_INIT;
    ck_assert_str_eq(str(&b), "");
    ck_assert_uint_eq(b.len, 0);
    sl_buf_puts(&b, "ab");
    sl_buf_putc(&b, 'c');
    sl_buf_append(&b, "d\0e", 3);
    ck_assert_uint_eq(b.len, 6);
    ck_assert_int_eq(memcmp(b.p, "abcd\0e", 6), 0);
    sl_buf_reset(&b);
    for (int i = 0; i < 10000; i++)
        sl_buf_putc(&b, (char)('a' + i % 26));
    ck_assert_uint_eq(b.len, 10000);
    ck_assert_int_eq(b.p[9999], 'a' + 9999 % 26);
    ck_assert_int_eq(b.oom, 0);
    sl_buf_free(&b);
    ck_assert_ptr_null(b.p);
    sl_buf_puts(&b, "reused");
    ck_assert_str_eq(str(&b), "reused");
    sl_buf_free(&b);
    sl_buf_free(&b); /* twice is fine */
}
END_TEST

START_TEST(test_printf)
{
    struct sl_buf b = SL_BUF_INIT;
    sl_buf_printf(&b, "%d-%s", 42, "x");
    ck_assert_str_eq(str(&b), "42-x");
    /* Longer than the internal 256-byte first attempt. */
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sl_buf_printf(&b, "[%s]", big);
    ck_assert_uint_eq(b.len, 4 + 1 + 999 + 1);
    ck_assert_int_eq(b.p[4], '[');
    ck_assert_int_eq(b.p[b.len - 1], ']');
    ck_assert_int_eq(b.p[500], 'z');
    sl_buf_free(&b);
}
END_TEST

/* vsnprintf writes a NUL after the text: it must fit even when the text fills the buffer. */
START_TEST(test_printf_nul_at_exact_capacity)
{
    for (size_t fill = 600; fill < 800; fill++) {
        struct sl_buf b = SL_BUF_INIT;
        char pad[800];
        memset(pad, 'p', sizeof pad);
        sl_buf_append(&b, pad, fill);
        size_t room = b.cap - b.len;
        if (room < 257) {
            sl_buf_free(&b);
            continue;
        }
        char txt[1100];
        memset(txt, 't', room);
        txt[room] = '\0';
        sl_buf_printf(&b, "%s", txt);
        ck_assert_uint_eq(b.len, fill + room);
        ck_assert_int_eq(b.p[b.len - 1], 't');
        ck_assert_ptr_nonnull(sl_buf_cstr(&b));
        sl_buf_free(&b);
    }
}
END_TEST

START_TEST(test_detach)
{
    struct sl_buf b = SL_BUF_INIT;
    size_t n = 99;
    char *p = sl_buf_detach(&b, &n);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(n, 0);
    ck_assert_str_eq(p, "");
    free(p);
    sl_buf_puts(&b, "hello");
    p = sl_buf_detach(&b, &n);
    ck_assert_uint_eq(n, 5);
    ck_assert_str_eq(p, "hello");
    ck_assert_ptr_null(b.p);
    ck_assert_uint_eq(b.len, 0);
    free(p);
}
END_TEST

START_TEST(test_oom_sticky)
{
    struct sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, "abc");
    ck_assert_int_eq(sl_buf_reserve(&b, SIZE_MAX), SL_ENOMEM);
    ck_assert_int_eq(b.oom, 1);
    sl_buf_puts(&b, "def");
    sl_buf_putc(&b, 'g');
    sl_buf_printf(&b, "%d", 1);
    sl_buf_json_str(&b, "x", 1);
    sl_buf_u32(&b, 1);
    ck_assert_uint_eq(b.len, 3);
    ck_assert_ptr_null(sl_buf_cstr(&b));
    size_t n = 7;
    ck_assert_ptr_null(sl_buf_detach(&b, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(b.oom, 0);
    /* Reserve close to SIZE_MAX with some data must not wrap around. */
    sl_buf_puts(&b, "abc");
    ck_assert_int_eq(sl_buf_reserve(&b, SIZE_MAX - 2), SL_ENOMEM);
    sl_buf_reset(&b);
    ck_assert_int_eq(b.oom, 0);
    sl_buf_puts(&b, "ok");
    ck_assert_str_eq(str(&b), "ok");
    sl_buf_free(&b);
}
END_TEST

START_TEST(test_json_str_escapes)
{
    struct sl_buf b = SL_BUF_INIT;
    ck_assert_str_eq(json_str(&b, "", 0), "\"\"");
    ck_assert_str_eq(json_str(&b, "plain text", 10), "\"plain text\"");
    ck_assert_str_eq(json_str(&b, "a\"b\\c", 5), "\"a\\\"b\\\\c\"");
    ck_assert_str_eq(json_str(&b, "\b\f\n\r\t", 5), "\"\\b\\f\\n\\r\\t\"");
    ck_assert_str_eq(json_str(&b, "\x01\x1f\x7f", 3), "\"\\u0001\\u001f\x7f\"");
    ck_assert_str_eq(json_str(&b, "a\0b", 3), "\"a\\u0000b\"");
    ck_assert_str_eq(json_str(&b, "/", 1), "\"/\"");
    /* Valid multi-byte sequences pass through. */
    ck_assert_str_eq(json_str(&b, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9),
                     "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    ck_assert_str_eq(json_str(&b, "\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7),
                     "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");
    sl_buf_free(&b);
}
END_TEST

START_TEST(test_json_str_invalid_utf8)
{
    struct sl_buf b = SL_BUF_INIT;
#define FFFD "\xef\xbf\xbd"
    ck_assert_str_eq(json_str(&b, "a\x80z", 3), "\"a" FFFD "z\"");    /* lone continuation */
    ck_assert_str_eq(json_str(&b, "\xc0\x80", 2), "\"" FFFD FFFD "\""); /* overlong NUL */
    ck_assert_str_eq(json_str(&b, "\xc1\xbf", 2), "\"" FFFD FFFD "\"");
    ck_assert_str_eq(json_str(&b, "\xe0\x80\xaf", 3), "\"" FFFD FFFD FFFD "\""); /* overlong */
    ck_assert_str_eq(json_str(&b, "\xed\xa0\x80", 3), "\"" FFFD FFFD FFFD "\""); /* surrogate */
    ck_assert_str_eq(json_str(&b, "\xf4\x90\x80\x80", 4),
                     "\"" FFFD FFFD FFFD FFFD "\""); /* above U+10FFFF */
    ck_assert_str_eq(json_str(&b, "\xf8\x88\x80\x80\x80", 5),
                     "\"" FFFD FFFD FFFD FFFD FFFD "\"");
    ck_assert_str_eq(json_str(&b, "\xff", 1), "\"" FFFD "\"");
    /* Cut short at the end of the input, and by an ASCII byte. */
    ck_assert_str_eq(json_str(&b, "x\xe2\x82", 3), "\"x" FFFD FFFD "\"");
    ck_assert_str_eq(json_str(&b, "\xe2\x82\"", 3), "\"" FFFD FFFD "\\\"\"");
    /* The length bounds the read: a valid sequence beyond n is not looked at. */
    ck_assert_str_eq(json_str(&b, "\xc3\xa9", 1), "\"" FFFD "\"");
#undef FFFD
    sl_buf_free(&b);
}
END_TEST

START_TEST(test_utf8_seqlen)
{
    ck_assert_uint_eq(sl_utf8_seqlen("a", 1), 1);
    ck_assert_uint_eq(sl_utf8_seqlen("\xc2\x80", 2), 2);
    ck_assert_uint_eq(sl_utf8_seqlen("\xc2\x80", 1), 0);
    ck_assert_uint_eq(sl_utf8_seqlen("\xdf\xbf", 2), 2);
    ck_assert_uint_eq(sl_utf8_seqlen("\xe0\xa0\x80", 3), 3);
    ck_assert_uint_eq(sl_utf8_seqlen("\xe0\x9f\xbf", 3), 0);
    ck_assert_uint_eq(sl_utf8_seqlen("\xed\x9f\xbf", 3), 3); /* U+D7FF */
    ck_assert_uint_eq(sl_utf8_seqlen("\xed\xbf\xbf", 3), 0); /* U+DFFF */
    ck_assert_uint_eq(sl_utf8_seqlen("\xee\x80\x80", 3), 3); /* U+E000 */
    ck_assert_uint_eq(sl_utf8_seqlen("\xf0\x90\x80\x80", 4), 4);
    ck_assert_uint_eq(sl_utf8_seqlen("\xf0\x8f\xbf\xbf", 4), 0);
    ck_assert_uint_eq(sl_utf8_seqlen("\xf4\x8f\xbf\xbf", 4), 4);
    ck_assert_uint_eq(sl_utf8_seqlen("\xf5\x80\x80\x80", 4), 0);
    ck_assert_uint_eq(sl_utf8_seqlen("\xf0\x90\x80", 3), 0);
    ck_assert_uint_eq(sl_utf8_seqlen("\xf0\x90\x80\x7f", 4), 0);
}
END_TEST

START_TEST(test_binary_roundtrip)
{
    struct sl_buf b = SL_BUF_INIT;
    sl_buf_u32(&b, 0x01020304u);
    ck_assert_int_eq(memcmp(b.p, "\x04\x03\x02\x01", 4), 0);
    sl_buf_u64(&b, UINT64_MAX);
    sl_buf_u64(&b, 0x0102030405060708ull);
    sl_buf_lenstr(&b, "hi\0x", 4);
    sl_buf_lenstr(&b, "", 0);
    ck_assert_uint_eq(b.len, 4 + 8 + 8 + 8 + 4);

    struct sl_cursor c = {(const unsigned char *)b.p, b.len};
    uint32_t u32;
    uint64_t u64;
    const char *s;
    size_t n;
    ck_assert_int_eq(sl_cur_u32(&c, &u32), 0);
    ck_assert_uint_eq(u32, 0x01020304u);
    ck_assert_int_eq(sl_cur_u64(&c, &u64), 0);
    ck_assert(u64 == UINT64_MAX);
    ck_assert_int_eq(sl_cur_u64(&c, &u64), 0);
    ck_assert(u64 == 0x0102030405060708ull);
    ck_assert_int_eq(sl_cur_lenstr(&c, &s, &n), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(memcmp(s, "hi\0x", 4), 0);
    ck_assert_int_eq(sl_cur_lenstr(&c, &s, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(c.left, 0);
    ck_assert_int_eq(sl_cur_u32(&c, &u32), SL_ECORRUPT);
    sl_buf_free(&b);
}
END_TEST

/* The hand-written encoder parquet.c used before OpenSSL's: the reference the new one must
 * match byte for byte. */
static size_t old_base64(char *s, const unsigned char *p, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t w = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            x |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            x |= p[i + 2];
        s[w++] = b64[x >> 18];
        s[w++] = b64[(x >> 12) & 63];
        s[w++] = i + 1 < n ? b64[(x >> 6) & 63] : '=';
        s[w++] = i + 2 < n ? b64[x & 63] : '=';
    }
    s[w] = '\0';
    return w;
}

/* Encodes in[0..n) into a buffer of exactly SL_BASE64_LEN(n) + 1 bytes (ASan sees an
 * overrun) and returns it; the caller frees. */
static char *b64(const void *in, size_t n)
{
    char *out = malloc(SL_BASE64_LEN(n) + 1);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(sl_base64_encode(out, in, n), 0);
    ck_assert_uint_eq(strlen(out), SL_BASE64_LEN(n));
    return out;
}

START_TEST(test_base64)
{
    /* RFC 4648 section 10: every padding case */
    static const char *const vec[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                         {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                         {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        char *s = b64(vec[i][0], strlen(vec[i][0]));
        ck_assert_str_eq(s, vec[i][1]);
        free(s);
    }
    /* binary: NULs, high bytes, the '+' and '/' digits */
    char *s = b64("\0\xff\xfe\0", 4);
    ck_assert_str_eq(s, "AP/+AA==");
    free(s);
    /* every prefix of all 256 byte values, as the previous encoder wrote it */
    unsigned char all[256];
    char want[SL_BASE64_LEN(sizeof(all)) + 1];
    for (size_t i = 0; i < sizeof(all); i++)
        all[i] = (unsigned char)(255 - i * 7);
    for (size_t n = 0; n <= sizeof(all); n++) {
        s = b64(all, n);
        ck_assert_uint_eq(old_base64(want, all, n), SL_BASE64_LEN(n));
        ck_assert_str_eq(s, want);
        free(s);
    }
}
END_TEST

/* A length OpenSSL's int-counted encoder cannot take is refused before anything is read or
 * written (in is one byte here). */
START_TEST(test_base64_too_long)
{
    char out[8] = "xxxxxxx";
    const char in = 'a';
    ck_assert_int_eq(sl_base64_encode(out, &in, SL_BASE64_MAX + 1), SL_EINVAL);
    ck_assert_int_eq(sl_base64_encode(out, &in, SIZE_MAX), SL_EINVAL);
    ck_assert_str_eq(out, "xxxxxxx");
    ck_assert_uint_le(SL_BASE64_LEN(SL_BASE64_MAX), 0x7fffffff);
}
END_TEST

START_TEST(test_cursor_truncated)
{
    /* A length prefix that claims more bytes than remain. */
    const unsigned char rec[] = {10, 0, 0, 0, 'a', 'b', 'c'};
    struct sl_cursor c = {rec, sizeof rec};
    const char *s = NULL;
    size_t n = 0;
    const void *p;
    uint32_t u32;
    uint64_t u64;
    ck_assert_int_eq(sl_cur_lenstr(&c, &s, &n), SL_ECORRUPT);
    ck_assert_ptr_eq(c.p, rec); /* unchanged on failure */
    ck_assert_uint_eq(c.left, sizeof rec);
    ck_assert_int_eq(sl_cur_u64(&c, &u64), SL_ECORRUPT);
    ck_assert_int_eq(sl_cur_bytes(&c, 8, &p), SL_ECORRUPT);
    ck_assert_int_eq(sl_cur_bytes(&c, SIZE_MAX, &p), SL_ECORRUPT);
    ck_assert_int_eq(sl_cur_bytes(&c, 7, &p), 0);
    ck_assert_uint_eq(c.left, 0);
    ck_assert_int_eq(sl_cur_u32(&c, &u32), SL_ECORRUPT);
    /* 0xFFFFFFFF length on a 64-bit size_t must not wrap. */
    const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff, 'x'};
    struct sl_cursor h = {huge, sizeof huge};
    ck_assert_int_eq(sl_cur_lenstr(&h, &s, &n), SL_ECORRUPT);
}
END_TEST

START_TEST(test_error_set_prefix)
{
    struct sl_error e;
    memset(&e, 0, sizeof e);
    ck_assert_int_eq(sl_error_set(&e, SL_ESCHEMA, "bad %s %d", "x", 3), SL_ESCHEMA);
    ck_assert_int_eq(e.code, SL_ESCHEMA);
    ck_assert_str_eq(e.msg, "bad x 3");
    ck_assert_int_eq(sl_error_prefix(&e, "f.lua:%d: ", 12), SL_ESCHEMA);
    ck_assert_str_eq(e.msg, "f.lua:12: bad x 3");
    /* Arguments may alias the message. */
    sl_error_set(&e, SL_EINVAL, "outer: %s", e.msg);
    ck_assert_str_eq(e.msg, "outer: f.lua:12: bad x 3");
    ck_assert_int_eq(sl_error_set(NULL, SL_EIO, "ignored"), SL_EIO);
    ck_assert_int_eq(sl_error_prefix(NULL, "x"), SL_EINVAL);
}
END_TEST

START_TEST(test_error_truncation)
{
    struct sl_error e;
    char long_msg[2000];
    memset(long_msg, 'a', sizeof long_msg - 1);
    long_msg[sizeof long_msg - 1] = '\0';
    sl_error_set(&e, SL_EINVAL, "%s", long_msg);
    ck_assert_uint_eq(strlen(e.msg), sizeof e.msg - 1);
    sl_error_prefix(&e, "ctx: ");
    ck_assert_uint_eq(strlen(e.msg), sizeof e.msg - 1);
    ck_assert(strncmp(e.msg, "ctx: aaa", 8) == 0);
    /* Cutting never leaves half a UTF-8 character: 2-byte "é" repeated, after 1 odd byte. */
    char utf[2000] = "x";
    for (size_t i = 1; i + 2 < sizeof utf; i += 2)
        memcpy(utf + i, "\xc3\xa9", 3);
    sl_error_set(&e, SL_EINVAL, "%s", utf);
    size_t n = strlen(e.msg);
    ck_assert_uint_eq(n % 2, 1);
    ck_assert_uint_eq(sl_utf8_seqlen(e.msg + n - 2, 2), 2);
    sl_error_prefix(&e, "yy"); /* shifts by an even amount: still cut cleanly */
    n = strlen(e.msg);
    ck_assert_uint_eq(sl_utf8_seqlen(e.msg + n - 2, 2), 2);
    sl_error_prefix(&e, "z"); /* odd shift: a dangling lead byte must be dropped */
    n = strlen(e.msg);
    ck_assert_uint_eq(sl_utf8_seqlen(e.msg + n - 2, 2), 2);
}
END_TEST

START_TEST(test_strerror)
{
    ck_assert_str_eq(sl_strerror(SL_OK), "SL_OK");
    ck_assert_str_eq(sl_strerror(SL_ENOMEM), "SL_ENOMEM");
    ck_assert_str_eq(sl_strerror(SL_ECORRUPT), "SL_ECORRUPT");
    ck_assert_str_eq(sl_strerror(-999), "SL_EUNKNOWN");
}
END_TEST

static Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("buf");
    tcase_add_test(tc, test_append_and_grow);
    tcase_add_test(tc, test_printf);
    tcase_add_test(tc, test_printf_nul_at_exact_capacity);
    tcase_add_test(tc, test_detach);
    tcase_add_test(tc, test_oom_sticky);
    tcase_add_test(tc, test_json_str_escapes);
    tcase_add_test(tc, test_json_str_invalid_utf8);
    tcase_add_test(tc, test_utf8_seqlen);
    tcase_add_test(tc, test_binary_roundtrip);
    tcase_add_test(tc, test_cursor_truncated);
    tcase_add_test(tc, test_base64);
    tcase_add_test(tc, test_base64_too_long);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("error");
    tcase_add_test(te, test_error_set_prefix);
    tcase_add_test(te, test_error_truncation);
    tcase_add_test(te, test_strerror);
    suite_add_tcase(s, te);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(buf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
