/* Unit tests of the top_k plugin, loaded as the server loads it (sl_plugin_load of the built
 * .so): spec validation and naming, random streams against a brute-force reference (one state,
 * random tiles merged in random order, serialized round trips, the offline event path),
 * corrupt state bytes, unloading. Fixed seeds: failures reproduce. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "buf.h"
#include "error.h"
#include "plugin.h"
#include "types.h"

#ifndef TOPK_SO
#error TOPK_SO must name the built plugin
#endif

struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * UINT64_C(2685821657736338717);
}

static void load(void)
{
    struct sl_error err = {0};
    if (!sl_agg_fn_find("top_k", 5))
        ck_assert_msg(sl_plugin_load(TOPK_SO, &err) == 0, "%s", err.msg);
}

static struct sl_agg_spec *mkspec(const char *type, const char *params, const char *window,
                                  int64_t interval, struct sl_error *err)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"column\":\"m\",\"function\":\"top_k\",\"params\":%s,\"window\":\"%s\","
             "\"input_type\":{\"type\":\"%s\"}}", params, window, type);
    cJSON *j = cJSON_Parse(text);
    ck_assert_ptr_nonnull(j);
    struct sl_agg_spec *spec = NULL;
    sl_agg_spec_from_cjson(j, interval, &spec, err);
    cJSON_Delete(j);
    return spec;
}

static char *finalize(const struct sl_agg_state *st)
{
    struct sl_buf b = SL_BUF_INIT;
    ck_assert_int_eq(sl_agg_finalize(st, &b), 0);
    sl_buf_cstr(&b);
    return sl_buf_detach(&b, NULL);
}

START_TEST(test_spec)
{
    load();
    struct sl_error err = {0};
    struct sl_agg_spec *s = mkspec("string", "{\"n\":3}", "1h", 600000000000LL, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    ck_assert_str_eq(s->name, "m_top_3_1h_10m");
    struct sl_buf b = SL_BUF_INIT;
    sl_type_write_json(&b, s->output_type);
    ck_assert_str_eq(sl_buf_cstr(&b),
                     "{\"type\":\"array\",\"elementType\":{\"type\":\"struct\",\"fields\":["
                     "{\"name\":\"value\",\"dataType\":{\"type\":\"string\"}},"
                     "{\"name\":\"count\",\"dataType\":{\"type\":\"int64\"}}]}}");
    sl_buf_free(&b);
    sl_agg_spec_free(s);

    ck_assert_ptr_null(mkspec("float64", "{\"n\":3}", "1h", 0, &err));
    ck_assert_msg(strstr(err.msg, "top_k is not defined for float64"), "%s", err.msg);
    ck_assert_ptr_null(mkspec("string", "{}", "1h", 0, &err));
    ck_assert_msg(strstr(err.msg, "top_k needs parameter n"), "%s", err.msg);
    ck_assert_ptr_null(mkspec("string", "{\"n\":3,\"precision\":5}", "1h", 0, &err));
    ck_assert_msg(strstr(err.msg, "top_k takes no parameter `precision`"), "%s", err.msg);
}
END_TEST

/* The reference: counts per value, most frequent first, ties by ascending value. */
struct ref {
    int64_t v[64];
    int64_t c[64];
    int n;
};

static void ref_add(struct ref *r, int64_t v)
{
    for (int i = 0; i < r->n; i++)
        if (r->v[i] == v) {
            r->c[i]++;
            return;
        }
    r->v[r->n] = v;
    r->c[r->n++] = 1;
}

static char *ref_json(struct ref *r, int k, int str)
{
    for (int i = 0; i < r->n; i++) /* selection sort: count desc, then value asc */
        for (int j = i + 1; j < r->n; j++) {
            char a[32], b[32];
            snprintf(a, sizeof a, "v%02lld", (long long)r->v[i]);
            snprintf(b, sizeof b, "v%02lld", (long long)r->v[j]);
            int later = str ? strcmp(a, b) > 0 : r->v[i] > r->v[j];
            if (r->c[j] > r->c[i] || (r->c[j] == r->c[i] && later)) {
                int64_t t = r->v[i]; r->v[i] = r->v[j]; r->v[j] = t;
                t = r->c[i]; r->c[i] = r->c[j]; r->c[j] = t;
            }
        }
    struct sl_buf b = SL_BUF_INIT;
    if (r->n == 0)
        sl_buf_puts(&b, "null");
    else
        sl_buf_putc(&b, '[');
    for (int i = 0; i < r->n && i < k; i++) {
        if (str)
            sl_buf_printf(&b, "%s[\"v%02lld\",\"%lld\"]", i ? "," : "", (long long)r->v[i],
                          (long long)r->c[i]);
        else
            sl_buf_printf(&b, "%s[\"%lld\",\"%lld\"]", i ? "," : "", (long long)r->v[i],
                          (long long)r->c[i]);
    }
    if (r->n)
        sl_buf_putc(&b, ']');
    sl_buf_cstr(&b);
    return sl_buf_detach(&b, NULL);
}

static void random_streams(int str)
{
    load();
    struct rng g = {str ? 7 : 11};
    for (int round = 0; round < 200; round++) {
        int k = 1 + (int)(rnd(&g) % 5), nv = 1 + (int)(rnd(&g) % 12), n = (int)(rnd(&g) % 60);
        char params[32];
        snprintf(params, sizeof params, "{\"n\":%d}", k);
        struct sl_error err = {0};
        struct sl_agg_spec *spec = mkspec(str ? "string" : "int64", params, "lifetime", 0, &err);
        ck_assert_msg(spec != NULL, "%s", err.msg);
        struct ref r = {.n = 0};
        char text[64][8];
        struct sl_scalar vals[64];
        struct sl_agg_event ev[64];
        int ntiles = 1 + (int)(rnd(&g) % 4);
        struct sl_agg_state *one, *tiles[4], *merged;
        ck_assert_int_eq(sl_agg_state_new(spec, &one), 0);
        ck_assert_int_eq(sl_agg_state_new(spec, &merged), 0);
        for (int t = 0; t < ntiles; t++)
            ck_assert_int_eq(sl_agg_state_new(spec, &tiles[t]), 0);
        for (int i = 0; i < n; i++) {
            int64_t v = (int64_t)(rnd(&g) % (uint64_t)nv) - (str ? 0 : 5);
            ref_add(&r, v);
            snprintf(text[i], sizeof text[i], "v%02lld", (long long)v);
            vals[i] = (struct sl_scalar){.kind = str ? SL_STRING : SL_INT64, .i = v,
                                         .f = (double)v, .str = text[i],
                                         .len = strlen(text[i])};
            ev[i] = (struct sl_agg_event){1000 + i, (uint64_t)i + 1, &vals[i]};
            ck_assert_int_eq(sl_agg_update(one, &vals[i], 1000 + i, (uint64_t)i + 1), 0);
            ck_assert_int_eq(sl_agg_update(tiles[rnd(&g) % (uint64_t)ntiles], &vals[i], 1000 + i,
                                           (uint64_t)i + 1), 0);
        }
        /* tiles go through their stored bytes and merge in a random order */
        for (int t = ntiles; t > 0; t--) {
            int pick = (int)(rnd(&g) % (uint64_t)t);
            struct sl_buf bytes = SL_BUF_INIT;
            ck_assert_int_eq(sl_agg_serialize(tiles[pick], &bytes), 0);
            ck_assert_int_eq(sl_agg_merge_bytes(merged, bytes.p, bytes.len), 0);
            if (bytes.len > 1)
                ck_assert_int_eq(sl_agg_merge_bytes(merged, bytes.p, bytes.len - 1), SL_ECORRUPT);
            sl_buf_free(&bytes);
            sl_agg_state_free(tiles[pick]);
            tiles[pick] = tiles[t - 1];
        }
        char *want = ref_json(&r, k, str), *a = finalize(one), *b = finalize(merged);
        ck_assert_msg(strcmp(a, want) == 0, "round %d: one state %s, reference %s", round, a, want);
        ck_assert_msg(strcmp(b, want) == 0, "round %d: merged tiles %s, reference %s", round, b,
                      want);
        struct sl_buf off = SL_BUF_INIT;
        ck_assert_int_eq(sl_agg_eval_events(spec, ev, (size_t)n, 1000 + n, &off), 0);
        ck_assert_msg(strcmp(sl_buf_cstr(&off) ? off.p : "", want) == 0,
                      "round %d: offline %s, reference %s", round, off.p, want);
        sl_buf_free(&off);
        free(want);
        free(a);
        free(b);
        sl_agg_state_free(one);
        sl_agg_state_free(merged);
        sl_agg_spec_free(spec);
    }
}

START_TEST(test_random_strings)
{
    random_streams(1);
}
END_TEST

START_TEST(test_random_ints)
{
    random_streams(0);
}
END_TEST

START_TEST(test_corrupt_bytes)
{
    load();
    struct sl_error err = {0};
    struct sl_agg_spec *spec = mkspec("string", "{\"n\":2}", "lifetime", 0, &err);
    ck_assert_ptr_nonnull(spec);
    struct sl_agg_state *st;
    ck_assert_int_eq(sl_agg_state_new(spec, &st), 0);
    /* the engine's version byte, then the plugin's bytes */
    struct sl_buf empty = SL_BUF_INIT;
    ck_assert_int_eq(sl_agg_serialize(st, &empty), 0);
    ck_assert_int_eq((int)empty.len, 3); /* engine version, plugin version 1, 0 entries */
    unsigned char e = (unsigned char)empty.p[0];
    sl_buf_free(&empty);
    const unsigned char bad[][7] = {
        {e, 2, 0},                /* unknown plugin state version */
        {e, 1, 1, 5, 'a', 1},     /* string longer than the bytes */
        {e, 1, 1, 1, 'a', 0},     /* a count of zero */
        {e, 1, 1, 1, 'a', 1, 9},  /* trailing bytes */
        {e, 1, 1, 1, 'a', 0x80},  /* count cut short */
    };
    static const size_t lens[] = {3, 6, 6, 7, 6};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        ck_assert_msg(sl_agg_merge_bytes(st, bad[i], lens[i]) == SL_ECORRUPT, "case %zu", i);
    const unsigned char good[] = {e, 1, 1, 1, 'a', 3};
    ck_assert_int_eq(sl_agg_merge_bytes(st, good, sizeof good), 0);
    char *got = finalize(st);
    ck_assert_str_eq(got, "[[\"a\",\"3\"]]");
    free(got);
    sl_agg_state_free(st);
    sl_agg_spec_free(spec);
}
END_TEST

START_TEST(test_unload)
{
    load();
    ck_assert_ptr_nonnull(sl_agg_fn_find("top_k", 5));
    struct sl_error err = {0};
    ck_assert_int_eq(sl_plugin_load(TOPK_SO, &err), SL_EEXIST);
    ck_assert_str_eq(err.msg, "plugin " TOPK_SO ": aggregation `top_k` is already registered by "
                              TOPK_SO);
    sl_plugin_unload_all();
    ck_assert_ptr_null(sl_agg_fn_find("top_k", 5));
    ck_assert_ptr_nonnull(sl_agg_fn_find("sum", 3));
    load();
    ck_assert_ptr_nonnull(sl_agg_fn_find("top_k", 5));
    sl_plugin_unload_all();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("agg_topk");
    TCase *tc = tcase_create("top_k");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_spec);
    tcase_add_test(tc, test_random_strings);
    tcase_add_test(tc, test_random_ints);
    tcase_add_test(tc, test_corrupt_bytes);
    tcase_add_test(tc, test_unload);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    sl_plugin_unload_all();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
