/* Unit tests for core/wcache.c: the writer's value cache never answers with a value other
 * than the last one put under a key, keeps recent entries within its budget, and forgets
 * everything on clear. */
#include "check_fast.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wcache.h"

static int get_str(struct sl_wcache *c, const char *k, char *out, size_t cap)
{
    const char *v;
    size_t n;
    if (!sl_wcache_get(c, k, strlen(k), &v, &n))
        return 0;
    ck_assert_uint_lt(n, cap);
    memcpy(out, v, n);
    out[n] = 0;
    return 1;
}

START_TEST(test_put_get_replace_clear)
{
    struct sl_wcache *c = sl_wcache_new(1 << 20);
    char v[64];
    ck_assert_int_eq(get_str(c, "a", v, sizeof(v)), 0);
    sl_wcache_put(c, "a", 1, "one", 3);
    sl_wcache_put(c, "b", 1, "", 0);
    ck_assert_int_eq(get_str(c, "a", v, sizeof(v)), 1);
    ck_assert_str_eq(v, "one");
    ck_assert_int_eq(get_str(c, "b", v, sizeof(v)), 1);
    ck_assert_str_eq(v, "");
    sl_wcache_put(c, "a", 1, "uno", 3);
    ck_assert_int_eq(get_str(c, "a", v, sizeof(v)), 1);
    ck_assert_str_eq(v, "uno");
    struct sl_wcache_stats st;
    sl_wcache_stats(c, &st);
    ck_assert_uint_eq(st.entries, 2);
    ck_assert_uint_eq(st.hits, 3);
    ck_assert_uint_eq(st.misses, 1);
    sl_wcache_clear(c);
    ck_assert_int_eq(get_str(c, "a", v, sizeof(v)), 0);
    ck_assert_int_eq(get_str(c, "b", v, sizeof(v)), 0);
    sl_wcache_free(c);
}
END_TEST

/* A value too large for the budget is not cached, and neither is the older value it replaces. */
START_TEST(test_oversize_value_drops_the_key)
{
    struct sl_wcache *c = sl_wcache_new(8192);
    char v[64], big[4096];
    memset(big, 'x', sizeof(big));
    sl_wcache_put(c, "k", 1, "small", 5);
    ck_assert_int_eq(get_str(c, "k", v, sizeof(v)), 1);
    sl_wcache_put(c, "k", 1, big, sizeof(big));
    ck_assert_int_eq(get_str(c, "k", v, sizeof(v)), 0);
    sl_wcache_free(c);

    c = sl_wcache_new(0); /* a budget of nothing keeps nothing */
    sl_wcache_put(c, "k", 1, "v", 1);
    ck_assert_int_eq(get_str(c, "k", v, sizeof(v)), 0);
    sl_wcache_free(c);
}
END_TEST

/* Removing keys (an oversize put) keeps every other key findable: the probe chains stay whole. */
START_TEST(test_remove_keeps_other_keys)
{
    struct sl_wcache *c = sl_wcache_new(64 << 20);
    char key[32], val[32], v[64];
    size_t nbig = 9 << 20; /* past an eighth of the budget */
    char *big = calloc(1, nbig);
    ck_assert_ptr_nonnull(big);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3000; i++) {
            snprintf(key, sizeof(key), "r%d-%d", round, i);
            snprintf(val, sizeof(val), "v%d", i);
            sl_wcache_put(c, key, strlen(key), val, strlen(val));
        }
        for (int i = 0; i < 3000; i += 3) {
            snprintf(key, sizeof(key), "r%d-%d", round, i);
            sl_wcache_put(c, key, strlen(key), big, nbig);
        }
        for (int i = 0; i < 3000; i++) {
            snprintf(key, sizeof(key), "r%d-%d", round, i);
            snprintf(val, sizeof(val), "v%d", i);
            int hit = get_str(c, key, v, sizeof(v));
            ck_assert_int_eq(hit, i % 3 != 0);
            if (hit)
                ck_assert_str_eq(v, val);
        }
    }
    free(big);
    sl_wcache_free(c);
}
END_TEST

/* Against a model: random puts (some oversize, which remove), gets and rare clears over a
 * key space larger than the budget. A hit must return the model's latest value; the most
 * recently put keys must hit. */
START_TEST(test_model)
{
    enum { KEYS = 5000, OPS = 400000 };
    static char model[KEYS][32];
    static int present[KEYS];
    struct sl_wcache *c = sl_wcache_new(256 * 1024);
    unsigned seed = 12345;
    char key[32], v[64];
    size_t hits = 0;
    char big[40000];
    memset(big, 'z', sizeof(big));
    for (int op = 0; op < OPS; op++) {
        int k = (int)(rand_r(&seed) % KEYS), r = (int)(rand_r(&seed) % 100);
        snprintf(key, sizeof(key), "key-%d", k);
        if (r < 45) {
            snprintf(model[k], sizeof(model[k]), "v%d-%d", k, op);
            sl_wcache_put(c, key, strlen(key), model[k], strlen(model[k]));
            present[k] = 1;
            ck_assert_int_eq(get_str(c, key, v, sizeof(v)), 1); /* just put: cached */
            ck_assert_str_eq(v, model[k]);
        } else if (r < 47) {
            sl_wcache_put(c, key, strlen(key), big, sizeof(big)); /* oversize: forgotten */
            present[k] = 0;
            ck_assert_int_eq(get_str(c, key, v, sizeof(v)), 0);
        } else if (r == 47 && op % 7 == 0) {
            sl_wcache_clear(c);
            memset(present, 0, sizeof(present));
        } else if (get_str(c, key, v, sizeof(v))) {
            ck_assert_msg(present[k], "key %d: a value after it was dropped", k);
            ck_assert_str_eq(v, model[k]);
            hits++;
        }
    }
    ck_assert_uint_gt(hits, 1000);
    struct sl_wcache_stats st;
    sl_wcache_stats(c, &st);
    ck_assert_uint_le(st.bytes, 256 * 1024);
    sl_wcache_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wcache");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_put_get_replace_clear);
    tcase_add_test(tc, test_oversize_value_drops_the_key);
    tcase_add_test(tc, test_remove_keeps_other_keys);
    tcase_add_test(tc, test_model);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
