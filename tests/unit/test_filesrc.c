/* Unit tests for core/filesrc.c and core/parquet.c: CSV, JSON Lines and Parquet sources,
 * URIs, errors, and resuming from a saved position. Parquet fixtures (tests/data/parquet,
 * made by generate.mjs there) are found under $SL_SRCDIR (default "."). */
#include "check_fast.h"
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "filesrc.h"
#include "json.h"
#include "parquet.h"
#include "types.h"

static char tmpdir[256];
static struct sl_arena arena;
static struct sl_error err;

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sl_filesrc_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    memset(&arena, 0, sizeof arena);
    memset(&err, 0, sizeof err);
}

static void teardown(void)
{
    char cmd[300];
    sl_arena_free(&arena);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *fixture(const char *name)
{
    static char path[1024];
    const char *dir = getenv("SL_SRCDIR");
    snprintf(path, sizeof path, "%s/tests/data/%s", dir && *dir ? dir : ".", name);
    return path;
}

/* Writes data to tmpdir/name and returns the path (static buffer, one at a time). */
static const char *put_file(const char *name, const char *data, size_t n)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    return path;
}

static const char *put(const char *name, const char *text)
{
    return put_file(name, text, strlen(text));
}

/* ---- a schema built from dataType JSON ---- */

struct schema {
    struct sl_field f[8];
    size_t n;
};

static void schema_add(struct schema *s, const char *name, const char *type_json)
{
    cJSON *j = cJSON_Parse(type_json);
    ck_assert_ptr_nonnull(j);
    struct sl_error e;
    s->f[s->n].type = sl_type_from_cjson(j, &e);
    ck_assert_ptr_nonnull(s->f[s->n].type);
    s->f[s->n].name = strdup(name);
    s->n++;
    cJSON_Delete(j);
}

static void schema_free(struct schema *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->f[i].name);
        sl_type_free(s->f[i].type);
    }
    s->n = 0;
}

/* ---- reading helpers ---- */

static char *to_text(const struct sl_json *j)
{
    struct sl_buf b = SL_BUF_INIT;
    sl_json_write(&b, j);
    char *s = sl_buf_detach(&b, NULL);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* All rows of a source as compact JSON lines (caller frees), or NULL with *rc the error. */
static char *read_all(struct sl_filesrc *src, int *rc, size_t *nrows)
{
    struct sl_buf out = SL_BUF_INIT;
    struct sl_json *row;
    size_t n = 0;
    while ((*rc = sl_filesrc_next(src, &arena, &row, &err)) == 1) {
        sl_json_write(&out, row);
        sl_buf_putc(&out, '\n');
        n++;
        if (n % 1000 == 0)
            sl_arena_free(&arena);
    }
    if (nrows)
        *nrows = n;
    if (*rc < 0) {
        sl_buf_free(&out);
        return NULL;
    }
    sl_buf_putc(&out, '\0');
    return sl_buf_detach(&out, NULL);
}

static char *read_uri(const char *uri, const char *fmt, const struct schema *s, int *rc)
{
    struct sl_filesrc *src;
    *rc = sl_filesrc_open(uri, fmt, s ? s->f : NULL, s ? s->n : 0, NULL, &src, &err);
    if (*rc)
        return NULL;
    char *txt = read_all(src, rc, NULL);
    sl_filesrc_close(src);
    return txt;
}

static void assert_rows(const char *uri, const char *fmt, const struct schema *s,
                        const char *want)
{
    int rc;
    char *got = read_uri(uri, fmt, s, &rc);
    ck_assert_msg(got != NULL, "read failed (%d): %s", rc, err.msg);
    ck_assert_str_eq(got, want);
    free(got);
}

static void assert_fails(const char *uri, const char *fmt, const struct schema *s, int code,
                         const char *msg_part)
{
    int rc;
    char *got = read_uri(uri, fmt, s, &rc);
    ck_assert_msg(got == NULL, "accepted: %s", got ? got : "");
    ck_assert_int_eq(rc, code);
    ck_assert_int_eq(err.code, code);
    ck_assert_msg(strstr(err.msg, msg_part) != NULL, "message \"%s\" lacks \"%s\"", err.msg,
                  msg_part);
}

/* ---- CSV ---- */

START_TEST(test_csv_typed_cells)
{
    struct schema s = {0};
    schema_add(&s, "user_id", "{\"type\":\"string\"}");
    schema_add(&s, "clicked", "{\"type\":\"int64\"}");
    schema_add(&s, "score", "{\"type\":\"float64\"}");
    schema_add(&s, "ok", "{\"type\":\"boolean\"}");
    schema_add(&s, "timestamp", "{\"type\":\"timestamp\"}");
    schema_add(&s, "tags", "{\"type\":\"array\",\"elementType\":{\"type\":\"string\"}}");
    schema_add(&s, "small", "{\"type\":\"int32\"}");
    const char *p = put("t.csv",
                        "user_id,clicked,score,ok,timestamp,tags,small,extra\n"
                        "12,12,0.5,true,2023-01-02T00:25:06Z,\"[\"\"a\"\",\"\"b\"\"]\",-7,x\n"
                        "u2,-9223372036854775808,1e3,F,2023-01-02 00:25:06.5+01:00,[],+007,12\n"
                        "u3,9223372036854775807,nan,1,2024-02-29,,0,\n"
                        "u4,abc,-inf,maybe,yesterday,\"[1,2.5e1]\",99999999999,\"\"\n"
                        "u5,007,1.,0,2024-02-29T10:00:00.123456789Z,\"{\"\"k\"\":1}\",,\"7\"\n");
    assert_rows(p, "csv", &s,
                "{\"user_id\":\"12\",\"clicked\":12,\"score\":0.5,\"ok\":true,"
                "\"timestamp\":\"2023-01-02T00:25:06Z\",\"tags\":[\"a\",\"b\"],\"small\":-7,"
                "\"extra\":\"x\"}\n"
                "{\"user_id\":\"u2\",\"clicked\":-9223372036854775808,\"score\":1e3,"
                "\"ok\":false,\"timestamp\":\"2023-01-01T23:25:06.500Z\",\"tags\":[],"
                "\"small\":7,\"extra\":\"12\"}\n"
                "{\"user_id\":\"u3\",\"clicked\":9223372036854775807,\"score\":\"NaN\","
                "\"ok\":true,\"timestamp\":\"2024-02-29T00:00:00Z\",\"tags\":null,\"small\":0,"
                "\"extra\":null}\n"
                "{\"user_id\":\"u4\",\"clicked\":\"abc\",\"score\":\"-Infinity\","
                "\"ok\":\"maybe\",\"timestamp\":\"yesterday\",\"tags\":[1,2.5e1],"
                "\"small\":99999999999,\"extra\":\"\"}\n"
                "{\"user_id\":\"u5\",\"clicked\":7,\"score\":1,\"ok\":false,"
                "\"timestamp\":\"2024-02-29T10:00:00.123456789Z\",\"tags\":{\"k\":1},"
                "\"small\":null,\"extra\":\"7\"}\n");
    /* Values that do not convert reach validation as strings and fail there clearly. */
    struct sl_filesrc *src;
    ck_assert_int_eq(sl_filesrc_open(p, "csv", s.f, s.n, NULL, &src, &err), 0);
    struct sl_json *row = NULL;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(sl_filesrc_next(src, &arena, &row, &err), 1);
    struct sl_buf out = SL_BUF_INIT;
    ck_assert_int_eq(sl_value_encode_field(s.f[1].type, "clicked", sl_json_get(row, "clicked"),
                                           &out, &err), SL_ESCHEMA);
    ck_assert_str_eq(err.msg, "field `clicked`: expected int64, got string \"abc\"");
    sl_buf_free(&out);
    uint64_t line;
    ck_assert_str_eq(sl_filesrc_where(src, &line), p);
    ck_assert_uint_eq(line, 5);
    sl_filesrc_close(src);
    schema_free(&s);
}
END_TEST

START_TEST(test_csv_quoting_crlf_newlines)
{
    const char *p = put("q.csv",
                        "\xEF\xBB\xBF" "a,\"b,c\",d\r\n"
                        "\"x \"\"quoted\"\"\",\"multi\r\nline\nvalue\",plain\r\n"
                        "\r\n"
                        "\"\",,\"\"\"\"\r\n"
                        "é中,\"a,b\",\"\n\"");
    assert_rows(p, "csv", NULL,
                "{\"a\":\"x \\\"quoted\\\"\",\"b,c\":\"multi\\r\\nline\\nvalue\","
                "\"d\":\"plain\"}\n"
                "{\"a\":\"\",\"b,c\":null,\"d\":\"\\\"\"}\n"
                "{\"a\":\"é中\",\"b,c\":\"a,b\",\"d\":\"\\n\"}\n");
    /* Line numbers count the newlines inside quoted fields. */
    p = put("lines.csv", "a,b\n1,\"x\ny\nz\"\n2,3\n4,5,6\n");
    assert_fails(p, "csv", NULL, SL_EINVAL, "lines.csv: line 6: expected 2 fields as in the "
                                            "header, got 3");
    /* A custom delimiter. */
    struct sl_filesrc *src;
    struct sl_filesrc_opts o = {.delimiter = ';'};
    p = put("semi.csv", "a;b\n1,5;\"x;y\"\n");
    ck_assert_int_eq(sl_filesrc_open(p, "csv", NULL, 0, &o, &src, &err), 0);
    int rc;
    char *txt = read_all(src, &rc, NULL);
    ck_assert_str_eq(txt, "{\"a\":\"1,5\",\"b\":\"x;y\"}\n");
    free(txt);
    sl_filesrc_close(src);
}
END_TEST

START_TEST(test_csv_errors)
{
    const char *p = put("few.csv", "a,b,c\n1,2,3\n4,5\n");
    assert_fails(p, "csv", NULL, SL_EINVAL,
                 "few.csv: line 3: expected 3 fields as in the header, got 2");
    p = put("bare.csv", "a,b\n1,2\n3,x\"y\n");
    assert_fails(p, "csv", NULL, SL_EINVAL, "bare.csv: line 3: quote inside unquoted field 2");
    p = put("after.csv", "a,b\n\"1\"x,2\n");
    assert_fails(p, "csv", NULL, SL_EINVAL,
                 "after.csv: line 2: unexpected character after a closing quote in field 1");
    p = put("open.csv", "a,b\n1,2\n3,\"abc\n\n");
    assert_fails(p, "csv", NULL, SL_EINVAL, "open.csv: line 3: unterminated quoted field");
    p = put("dup.csv", "a,b,a\n1,2,3\n");
    assert_fails(p, "csv", NULL, SL_EINVAL, "dup.csv: line 1: duplicate column name `a`");
    p = put_file("utf.csv", "a\n\xff\xfe\n", 6);
    assert_fails(p, "csv", NULL, SL_EINVAL, "utf.csv: line 2: column `a` is not valid UTF-8");

    /* Errors are sticky. */
    struct sl_filesrc *src;
    struct sl_json *row;
    p = put("sticky.csv", "a\n1\n\"x\"y\n2\n");
    ck_assert_int_eq(sl_filesrc_open(p, "csv", NULL, 0, NULL, &src, &err), 0);
    ck_assert_int_eq(sl_filesrc_next(src, &arena, &row, &err), 1);
    ck_assert_int_eq(sl_filesrc_next(src, &arena, &row, &err), SL_EINVAL);
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(sl_filesrc_next(src, &arena, &row, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "line 3"));
    sl_filesrc_close(src);

    /* A record longer than max_record. */
    struct sl_filesrc_opts o = {.max_record = 1000};
    size_t bign = 600000;
    char *big = malloc(bign);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', bign);
    memcpy(big, "a\n\"", 3);
    p = put_file("big.csv", big, bign);
    free(big);
    ck_assert_int_eq(sl_filesrc_open(p, "csv", NULL, 0, &o, &src, &err), 0);
    ck_assert_int_eq(sl_filesrc_next(src, &arena, &row, &err), SL_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "record longer than 1000 bytes"));
    sl_filesrc_close(src);
}
END_TEST

START_TEST(test_csv_header_edge_cases)
{
    /* pandas writes an unnamed index column; empty header cells get DuckDB-style names. */
    const char *p = put("idx.csv", ",a,\n0,x,y\n");
    assert_rows(p, "csv", NULL, "{\"column0\":\"0\",\"a\":\"x\",\"column2\":\"y\"}\n");
    p = put("empty.csv", "");
    assert_rows(p, "csv", NULL, "");
    p = put("header_only.csv", "a,b\r\n");
    assert_rows(p, "csv", NULL, "");
    p = put("noeol.csv", "a\n1");
    assert_rows(p, "csv", NULL, "{\"a\":\"1\"}\n");
}
END_TEST

/* Many rows through a small buffer: records straddle every read boundary. */
START_TEST(test_csv_streaming)
{
    struct schema s = {0};
    schema_add(&s, "id", "{\"type\":\"int64\"}");
    struct sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, "id,text\n");
    for (int i = 0; i < 50000; i++)
        sl_buf_printf(&b, "%d,\"line %d\nwith \"\"quotes\"\" %s\"\r\n", i, i,
                      i % 7 ? "" : "and a longer tail to vary the record size");
    const char *p = put_file("stream.csv", b.p, b.len);
    sl_buf_free(&b);
    struct sl_filesrc *src;
    ck_assert_int_eq(sl_filesrc_open(p, "csv", s.f, s.n, NULL, &src, &err), 0);
    struct sl_json *row;
    int rc, i = 0;
    while ((rc = sl_filesrc_next(src, &arena, &row, &err)) == 1) {
        int64_t v;
        ck_assert_int_eq(sl_json_int64(sl_json_get(row, "id"), &v), 0);
        ck_assert_int_eq(v, i);
        const struct sl_json *t = sl_json_get(row, "text");
        char want[128];
        snprintf(want, sizeof want, "line %d\nwith \"quotes\" %s", i,
                 i % 7 ? "" : "and a longer tail to vary the record size");
        ck_assert_str_eq(t->str, want);
        uint64_t line;
        sl_filesrc_where(src, &line);
        ck_assert_uint_eq(line, 2 + 2 * (uint64_t)i);
        i++;
        if (i % 1000 == 0)
            sl_arena_free(&arena);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(i, 50000);
    sl_filesrc_close(src);
    schema_free(&s);
}
END_TEST

/* ---- JSON Lines ---- */

START_TEST(test_jsonl)
{
    const char *p = put("a.jsonl", "{\"a\":1,\"b\":\"x\"}\n\n   \r\n{\"a\":12345678901234567890,"
                                   "\"b\":[1,{\"c\":null}]}\r\n{\"a\":true}");
    assert_rows(p, "jsonl", NULL,
                "{\"a\":1,\"b\":\"x\"}\n{\"a\":12345678901234567890,\"b\":[1,{\"c\":null}]}\n"
                "{\"a\":true}\n");
    p = put("bad.jsonl", "{\"a\":1}\n\n{\"a\" 2}\n");
    assert_fails(p, "jsonl", NULL, SL_EINVAL,
                 "bad.jsonl: line 3: JSON syntax error at column 6: expected ':'");
    p = put("arr.jsonl", "{\"a\":1}\n[1]\n");
    assert_fails(p, "jsonl", NULL, SL_EINVAL, "arr.jsonl: line 2: expected a JSON object, "
                                              "got an array");
    p = put("dup.jsonl", "{\"a\":1,\"a\":2}\n");
    assert_fails(p, "jsonl", NULL, SL_EINVAL, "dup.jsonl: line 1: JSON syntax error");
}
END_TEST

/* ---- Parquet ---- */

static int is_integer_text(const struct sl_json *j)
{
    return j->kind == SL_JSON_NUMBER && !strpbrk(j->str, ".eE");
}

/* Compares a decoded value with the generator's: integers and decimals by exact text, floats
 * by value (f32 columns as floats), everything else exactly. */
static void cmp_value(const struct sl_json *want, const struct sl_json *got, const char *col,
                      size_t row)
{
    ck_assert_msg(want->kind == got->kind, "row %zu `%s`: kind %s, want %s", row, col,
                  sl_json_kind_name(got->kind), sl_json_kind_name(want->kind));
    switch (want->kind) {
    case SL_JSON_NUMBER:
        if (is_integer_text(want) || strncmp(col, "dec", 3) == 0) {
            ck_assert_msg(strcmp(want->str, got->str) == 0, "row %zu `%s`: %s, want %s", row,
                          col, got->str, want->str);
        } else {
            double w = strtod(want->str, NULL), g = strtod(got->str, NULL);
            if (strcmp(col, "f32") == 0)
                ck_assert_msg((float)w == strtof(got->str, NULL), "row %zu `%s`: %s, want %s",
                              row, col, got->str, want->str);
            else
                ck_assert_msg(w == g, "row %zu `%s`: %s, want %s", row, col, got->str,
                              want->str);
        }
        break;
    case SL_JSON_STRING:
        ck_assert_msg(want->len == got->len && memcmp(want->str, got->str, want->len) == 0,
                      "row %zu `%s`: \"%s\", want \"%s\"", row, col, got->str, want->str);
        break;
    case SL_JSON_ARRAY:
    case SL_JSON_OBJECT: {
        ck_assert_msg(want->count == got->count, "row %zu `%s`: %zu members, want %zu", row,
                      col, got->count, want->count);
        const struct sl_json *w = want->child, *g = got->child;
        for (; w && g; w = w->next, g = g->next) {
            if (want->kind == SL_JSON_OBJECT)
                ck_assert_msg(strcmp(w->key, g->key) == 0, "row %zu: column `%s`, want `%s`",
                              row, g->key, w->key);
            cmp_value(w, g, want->kind == SL_JSON_OBJECT ? w->key : col, row);
        }
        break;
    }
    default:
        break;
    }
}

/* Reads the Parquet fixture and compares it row by row with the JSON Lines fixture. */
static void check_parquet(const char *pq, const char *jsonl)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", fixture(jsonl));
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: %s (set SL_SRCDIR to the source tree)", path,
                  strerror(errno));
    struct sl_filesrc *src;
    int rc = sl_filesrc_open(fixture(pq), "parquet", NULL, 0, NULL, &src, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    char *line = NULL;
    size_t cap = 0, row = 0;
    ssize_t n;
    struct sl_arena wa = {0};
    while ((n = getline(&line, &cap, f)) > 0) {
        struct sl_json *want = sl_json_parse(line, (size_t)n, &wa, &err);
        ck_assert_msg(want != NULL, "%s:%zu: %s", jsonl, row + 1, err.msg);
        struct sl_json *got;
        rc = sl_filesrc_next(src, &arena, &got, &err);
        ck_assert_msg(rc == 1, "%s: row %zu: rc %d: %s", pq, row, rc, err.msg);
        cmp_value(want, got, "", row);
        row++;
        if (row % 500 == 0) {
            sl_arena_free(&arena);
            sl_arena_free(&wa);
        }
    }
    struct sl_json *extra;
    ck_assert_int_eq(sl_filesrc_next(src, &arena, &extra, &err), 0);
    ck_assert_uint_gt(row, 0);
    free(line);
    fclose(f);
    sl_arena_free(&wa);
    sl_filesrc_close(src);
}

START_TEST(test_parquet_types_uncompressed) { check_parquet("parquet/types_uncompressed.parquet", "parquet/types.jsonl"); }
END_TEST
START_TEST(test_parquet_types_snappy) { check_parquet("parquet/types_snappy.parquet", "parquet/types.jsonl"); }
END_TEST
START_TEST(test_parquet_types_zstd) { check_parquet("parquet/types_zstd.parquet", "parquet/types.jsonl"); }
END_TEST
START_TEST(test_parquet_types_gzip) { check_parquet("parquet/types_gzip.parquet", "parquet/types.jsonl"); }
END_TEST
START_TEST(test_parquet_types_delta_encodings) { check_parquet("parquet/types_v2.parquet", "parquet/types.jsonl"); }
END_TEST
/* multi.parquet holds values the test can compute (see generate.mjs). */
START_TEST(test_parquet_multi_row_groups)
{
    static const char *const tags[] = {"\"alpha\"", "\"beta\"", "\"gamma\"", "\"delta\"", "null"};
    struct sl_filesrc *src;
    ck_assert_int_eq(sl_filesrc_open(fixture("parquet/multi.parquet"), "parquet", NULL, 0, NULL,
                                     &src, &err), 0);
    struct sl_json *row;
    int rc, i = 0;
    while ((rc = sl_filesrc_next(src, &arena, &row, &err)) == 1) {
        char want[256], val[32];
        if (i % 3 == 0)
            snprintf(val, sizeof val, "null");
        else if (i % 2 == 0)
            snprintf(val, sizeof val, "%d", i / 2);
        else
            snprintf(val, sizeof val, "%d.5", i / 2);
        snprintf(want, sizeof want,
                 "{\"id\":%d,\"tag\":%s,\"val\":%s,\"ts\":\"2024-01-%02dT%02d:%02d:%02dZ\"}", i,
                 tags[i % 5], val, 1 + i / 86400, i / 3600 % 24, i / 60 % 60, i % 60);
        char *got = to_text(row);
        ck_assert_str_eq(got, want);
        free(got);
        i++;
        if (i % 1000 == 0)
            sl_arena_free(&arena);
    }
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_int_eq(i, 10000);
    sl_filesrc_close(src);
}
END_TEST
START_TEST(test_parquet_pages) { check_parquet("parquet/pages.parquet", "parquet/pages.jsonl"); }
END_TEST

START_TEST(test_parquet_metadata)
{
    struct sl_parquet *pq;
    ck_assert_int_eq(sl_parquet_open(fixture("parquet/multi.parquet"), &pq, &err), 0);
    ck_assert_uint_eq(sl_parquet_num_rows(pq), 10000);
    ck_assert_uint_gt(sl_parquet_num_row_groups(pq), 1);
    ck_assert_uint_eq(sl_parquet_num_columns(pq), 4);
    ck_assert_str_eq(sl_parquet_column_name(pq, 1), "tag");
    /* Seek into the third row group and read a row. */
    ck_assert_int_eq(sl_parquet_seek(pq, 5002, &err), 0);
    ck_assert_uint_eq(sl_parquet_tell(pq), 5002);
    struct sl_json *row;
    ck_assert_int_eq(sl_parquet_next(pq, &arena, &row, &err), 1);
    char *t = to_text(row);
    ck_assert_str_eq(t, "{\"id\":5002,\"tag\":\"gamma\",\"val\":2501,"
                        "\"ts\":\"2024-01-01T01:23:22Z\"}");
    free(t);
    ck_assert_int_eq(sl_parquet_seek(pq, 10000, &err), 0);
    ck_assert_int_eq(sl_parquet_next(pq, &arena, &row, &err), 0);
    sl_parquet_close(pq);
    sl_parquet_close(NULL);
}
END_TEST

/* The column list apply checks a batch source's header against (sl_filesrc_columns). */
START_TEST(test_columns)
{
    struct sl_filesrc *src;
    size_t n = 99;
    ck_assert_int_eq(sl_filesrc_open(put("c.csv", "\xEF\xBB\xBFuser_id,ts,,x\n1,2,3,4\n"), "csv", NULL, 0,
                                     NULL, &src, &err), 0);
    ck_assert_int_eq(sl_filesrc_columns(src, &n, &err), 1);
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(sl_filesrc_column(src, 0), "user_id");
    ck_assert_str_eq(sl_filesrc_column(src, 2), "column2");
    ck_assert_str_eq(sl_filesrc_column(src, 3), "x");
    struct sl_json *row; /* reading continues with the first row */
    ck_assert_int_eq(sl_filesrc_next(src, &arena, &row, &err), 1);
    char *t = to_text(row);
    ck_assert_str_eq(t, "{\"user_id\":\"1\",\"ts\":\"2\",\"column2\":\"3\",\"x\":\"4\"}");
    free(t);
    sl_filesrc_close(src);

    ck_assert_int_eq(sl_filesrc_open(fixture("parquet/multi.parquet"), "parquet", NULL, 0, NULL,
                                     &src, &err), 0);
    ck_assert_int_eq(sl_filesrc_columns(src, &n, &err), 1);
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(sl_filesrc_column(src, 1), "tag");
    sl_filesrc_close(src);

    /* no list: JSON Lines, an empty CSV file, an empty directory */
    const char *none[][3] = {{"r.jsonl", "{\"a\": 1}\n", "jsonl"}, {"e.csv", "", "csv"},
                             {NULL, NULL, "parquet"}};
    for (size_t i = 0; i < 3; i++) {
        const char *path = none[i][0] ? put(none[i][0], none[i][1]) : tmpdir;
        ck_assert_int_eq(sl_filesrc_open(path, none[i][2], NULL, 0, NULL, &src, &err), 0);
        ck_assert_int_eq(sl_filesrc_columns(src, &n, &err), 0);
        sl_filesrc_close(src);
    }

    /* a broken header is the reading error */
    ck_assert_int_eq(sl_filesrc_open(put("dup.csv", "a,a\n1,2\n"), "csv", NULL, 0, NULL, &src, &err), 0);
    ck_assert_int_eq(sl_filesrc_columns(src, &n, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "duplicate column name `a`"));
    sl_filesrc_close(src);
}
END_TEST

START_TEST(test_parquet_damaged)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", fixture("parquet/truncated.parquet"));
    assert_fails(path, "parquet", NULL, SL_ECORRUPT, "truncated.parquet: truncated Parquet file "
                                                    "(no PAR1 magic at the end");
    snprintf(path, sizeof path, "%s", fixture("parquet/corrupt_page.parquet"));
    assert_fails(path, "parquet", NULL, SL_ECORRUPT,
                 "corrupt_page.parquet: row group 0, column `id`, page 1: corrupt page header");
    snprintf(path, sizeof path, "%s", fixture("parquet/corrupt_footer.parquet"));
    assert_fails(path, "parquet", NULL, SL_ECORRUPT, "corrupt_footer.parquet: corrupt footer");
    const char *p = put("not.parquet", "a,b\n1,2\n");
    assert_fails(p, "parquet", NULL, SL_ECORRUPT, "not a Parquet file");

    /* Every prefix and many single-byte corruptions of a real file fail cleanly or decode:
     * never a crash (the sanitizers watch). */
    FILE *f = fopen(fixture("parquet/types_snappy.parquet"), "rb");
    ck_assert_ptr_nonnull(f);
    static unsigned char img[1 << 17];
    size_t len = fread(img, 1, sizeof img, f);
    fclose(f);
    ck_assert_uint_gt(len, 1000);
    for (size_t cut = 0; cut < len; cut += len / 97 + 1) {
        struct sl_parquet *pq;
        int rc = sl_parquet_open_mem(img, cut, "cut", &pq, &err);
        ck_assert_int_eq(rc, SL_ECORRUPT);
    }
    static unsigned char bad[1 << 17];
    int snappy_errors = 0;
    for (size_t i = 0; i < 400; i++) {
        memcpy(bad, img, len);
        size_t at = (i * 7919) % len;
        bad[at] ^= (unsigned char)(1u << (i % 8));
        bad[(at * 31) % len] = (unsigned char)i;
        struct sl_parquet *pq;
        if (sl_parquet_open_mem(bad, len, "flip", &pq, &err) != 0)
            continue;
        struct sl_json *row;
        int rc;
        while ((rc = sl_parquet_next(pq, &arena, &row, &err)) == 1)
            ;
        ck_assert_int_le(rc, 0);
        if (rc < 0)
            ck_assert_ptr_nonnull(strstr(err.msg, "flip: "));
        snappy_errors += rc < 0 && strstr(err.msg, "corrupt Snappy data") != NULL;
        sl_parquet_close(pq);
        sl_arena_free(&arena);
    }
    /* some flips land in Snappy-compressed pages, and the decoder (libsnappy) refuses them */
    ck_assert_int_gt(snappy_errors, 0);
}
END_TEST

/* ---- URIs ---- */

START_TEST(test_uris)
{
    char dir[400], uri[600];
    snprintf(dir, sizeof dir, "%s/d", tmpdir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    put("d/b.csv", "x\n2\n");
    put("d/a.csv", "x\n1\n");
    put("d/c.txt", "x\n9\n");
    put("d/.hidden.csv", "x\n9\n");
    put("d/_tmp.csv", "x\n9\n");
    put("d/c.CSV", "x\n3\n");
    assert_rows(dir, "csv", NULL, "{\"x\":\"1\"}\n{\"x\":\"2\"}\n{\"x\":\"3\"}\n");
    snprintf(uri, sizeof uri, "file://%s/", dir);
    assert_rows(uri, "csv", NULL, "{\"x\":\"1\"}\n{\"x\":\"2\"}\n{\"x\":\"3\"}\n");
    snprintf(uri, sizeof uri, "%s/[bc].*", dir);
    assert_rows(uri, "csv", NULL, "{\"x\":\"2\"}\n{\"x\":\"3\"}\n{\"x\":\"9\"}\n");
    snprintf(uri, sizeof uri, "file://%s/a.csv", dir);
    assert_rows(uri, "csv", NULL, "{\"x\":\"1\"}\n");
    snprintf(uri, sizeof uri, "%s/*.nothing", dir);
    assert_rows(uri, "csv", NULL, "");

    /* The listing carries each file's identity, and a filter drops files. */
    struct sl_filesrc *src;
    ck_assert_int_eq(sl_filesrc_open(dir, "csv", NULL, 0, NULL, &src, &err), 0);
    size_t n;
    const struct sl_filesrc_file *fs = sl_filesrc_files(src, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_ptr_nonnull(strstr(fs[0].path, "/d/a.csv"));
    ck_assert_uint_eq(fs[0].size, 4);
    ck_assert_int_gt(fs[0].mtime_ns, 0);
    sl_filesrc_close(src);

    snprintf(uri, sizeof uri, "%s/missing.csv", dir);
    int rc;
    ck_assert_ptr_null(read_uri(uri, "csv", NULL, &rc));
    ck_assert_int_eq(rc, SL_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing.csv"));
    ck_assert_int_eq(sl_filesrc_open(dir, "xml", NULL, 0, NULL, &src, &err), SL_EINVAL);
    ck_assert_str_eq(err.msg, "unknown file format \"xml\" (use csv, jsonl or parquet)");
    sl_filesrc_close(NULL);
}
END_TEST

static int skip_a(void *ctx, const struct sl_filesrc_file *f)
{
    (void)ctx;
    return strstr(f->path, "/a.csv") == NULL;
}

START_TEST(test_filter)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/d", tmpdir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    put("d/a.csv", "x\n1\n");
    put("d/b.csv", "x\n2\n");
    struct sl_filesrc_opts o = {.filter = skip_a};
    struct sl_filesrc *src;
    ck_assert_int_eq(sl_filesrc_open(dir, "csv", NULL, 0, &o, &src, &err), 0);
    int rc;
    char *txt = read_all(src, &rc, NULL);
    ck_assert_str_eq(txt, "{\"x\":\"2\"}\n");
    free(txt);
    sl_filesrc_close(src);
}
END_TEST

/* ---- resume ---- */

/* Reading k rows, saving the position, and resuming in a new source gives the same rows as
 * one uninterrupted read, for every k in a spread. */
static void check_resume(const char *uri, const char *fmt)
{
    int rc;
    size_t total;
    struct sl_filesrc *src;
    ck_assert_int_eq(sl_filesrc_open(uri, fmt, NULL, 0, NULL, &src, &err), 0);
    char *full = read_all(src, &rc, &total);
    ck_assert_msg(full != NULL, "%s", err.msg);
    sl_filesrc_close(src);
    ck_assert_uint_gt(total, 3);

    size_t cuts[] = {0, 1, 2, total / 3, total / 2 + 1, total - 1, total};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        struct sl_buf b = SL_BUF_INIT;
        struct sl_json *row;
        ck_assert_int_eq(sl_filesrc_open(uri, fmt, NULL, 0, NULL, &src, &err), 0);
        for (size_t i = 0; i < cuts[c]; i++) {
            ck_assert_int_eq(sl_filesrc_next(src, &arena, &row, &err), 1);
            sl_json_write(&b, row);
            sl_buf_putc(&b, '\n');
        }
        struct sl_filesrc_pos *pos = malloc(sizeof *pos);
        sl_filesrc_tell(src, pos);
        sl_filesrc_close(src);
        ck_assert_int_eq(sl_filesrc_open(uri, fmt, NULL, 0, NULL, &src, &err), 0);
        ck_assert_msg(sl_filesrc_seek(src, pos, &err) == 0, "%s", err.msg);
        free(pos);
        while ((rc = sl_filesrc_next(src, &arena, &row, &err)) == 1) {
            sl_json_write(&b, row);
            sl_buf_putc(&b, '\n');
        }
        ck_assert_msg(rc == 0, "%s", err.msg);
        sl_buf_putc(&b, '\0');
        ck_assert_msg(strcmp(b.p, full) == 0, "resume after %zu rows of %s differs", cuts[c],
                      uri);
        sl_buf_free(&b);
        sl_filesrc_close(src);
        sl_arena_free(&arena);
    }
    free(full);
}

START_TEST(test_resume_csv_jsonl)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/r", tmpdir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    put("r/1.csv", "a,b\n1,\"x\ny\"\n2,\"\"\"\"\n\n3,z\r\n");
    put("r/2.csv", "a,b\n");
    put("r/3.csv", "a,b\n4,w\n5,v");
    check_resume(dir, "csv");
    put("r/1.jsonl", "{\"a\":1}\n\n{\"a\":2}\n");
    put("r/2.jsonl", "{\"a\":3}\n{\"a\":4}");
    check_resume(dir, "jsonl");
}
END_TEST

START_TEST(test_resume_parquet)
{
    char uri[1200];
    snprintf(uri, sizeof uri, "%s", fixture("parquet/multi.parquet"));
    check_resume(uri, "parquet");
    snprintf(uri, sizeof uri, "%s", fixture("parquet/types_[sz]*.parquet"));
    check_resume(uri, "parquet");
    snprintf(uri, sizeof uri, "%s", fixture("parquet/pages.parquet"));
    check_resume(uri, "parquet");
}
END_TEST

START_TEST(test_resume_new_files)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/n", tmpdir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    put("n/b.csv", "a\n1\n2\n");
    struct sl_filesrc *src;
    struct sl_json *row;
    ck_assert_int_eq(sl_filesrc_open(dir, "csv", NULL, 0, NULL, &src, &err), 0);
    ck_assert_int_eq(sl_filesrc_next(src, &arena, &row, &err), 1);
    struct sl_filesrc_pos pos;
    sl_filesrc_tell(src, &pos);
    sl_filesrc_close(src);
    /* A file sorting before the checkpoint appears, and one after it. */
    put("n/a.csv", "a\n9\n");
    put("n/c.csv", "a\n3\n");
    ck_assert_int_eq(sl_filesrc_open(dir, "csv", NULL, 0, NULL, &src, &err), 0);
    ck_assert_int_eq(sl_filesrc_seek(src, &pos, &err), 0);
    int rc;
    char *txt = read_all(src, &rc, NULL);
    ck_assert_str_eq(txt, "{\"a\":\"2\"}\n{\"a\":\"3\"}\n");
    free(txt);
    /* The checkpointed file is gone: resume at the next one. */
    snprintf(pos.file, sizeof pos.file, "%s/bb.csv", dir);
    ck_assert_int_eq(sl_filesrc_seek(src, &pos, &err), 0);
    txt = read_all(src, &rc, NULL);
    ck_assert_str_eq(txt, "{\"a\":\"3\"}\n");
    free(txt);
    /* An offset past the end of a file that shrank. */
    snprintf(pos.file, sizeof pos.file, "%s/c.csv", dir);
    pos.offset = 1000;
    ck_assert_int_eq(sl_filesrc_seek(src, &pos, &err), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "cannot resume at byte 1000"));
    sl_filesrc_close(src);
}
END_TEST

static Suite *filesrc_suite(void)
{
    Suite *s = suite_create("filesrc");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_csv_typed_cells);
    tcase_add_test(tc, test_csv_quoting_crlf_newlines);
    tcase_add_test(tc, test_csv_errors);
    tcase_add_test(tc, test_csv_header_edge_cases);
    tcase_add_test(tc, test_csv_streaming);
    tcase_add_test(tc, test_jsonl);
    tcase_add_test(tc, test_parquet_types_uncompressed);
    tcase_add_test(tc, test_parquet_types_snappy);
    tcase_add_test(tc, test_parquet_types_zstd);
    tcase_add_test(tc, test_parquet_types_gzip);
    tcase_add_test(tc, test_parquet_types_delta_encodings);
    tcase_add_test(tc, test_parquet_multi_row_groups);
    tcase_add_test(tc, test_parquet_pages);
    tcase_add_test(tc, test_parquet_metadata);
    tcase_add_test(tc, test_parquet_damaged);
    tcase_add_test(tc, test_uris);
    tcase_add_test(tc, test_filter);
    tcase_add_test(tc, test_resume_csv_jsonl);
    tcase_add_test(tc, test_resume_parquet);
    tcase_add_test(tc, test_resume_new_files);
    tcase_add_test(tc, test_columns);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(filesrc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
