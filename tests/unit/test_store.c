/* The online store and the writer thread: batches, scans, group commit, backpressure. */
#include "check_fast.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "store.h"

static char dir[256];
static struct sl_store st;

static void setup(void)
{
    struct sl_error err = {0};
    snprintf(dir, sizeof(dir), "%s/sl-store-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(sl_store_leveldb_open(dir, 8, &st, &err), 0);
}

static void teardown(void)
{
    char cmd[300];
    sl_store_close(&st);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(batch_put_get_delete)
{
    struct sl_batch b = {0};
    struct sl_error err = {0};
    struct sl_buf v = SL_BUF_INIT;
    sl_batch_put(&b, "a\0b", 3, "v1", 2);
    sl_batch_put(&b, "k", 1, "", 0);
    ck_assert_int_eq(sl_store_write(&st, &b, 1, &err), 0);
    ck_assert_int_eq(sl_store_get(&st, "a\0b", 3, &v, &err), 0);
    ck_assert_uint_eq(v.len, 2);
    ck_assert_int_eq(memcmp(v.p, "v1", 2), 0);
    sl_buf_reset(&v);
    ck_assert_int_eq(sl_store_get(&st, "a", 1, &v, &err), SL_ENOTFOUND);
    ck_assert_int_eq(sl_store_get(&st, "k", 1, &v, &err), 0);
    ck_assert_uint_eq(v.len, 0);
    sl_batch_reset(&b);
    sl_batch_delete(&b, "k", 1);
    ck_assert_int_eq(sl_store_write(&st, &b, 0, &err), 0);
    ck_assert_int_eq(sl_store_get(&st, "k", 1, &v, &err), SL_ENOTFOUND);
    sl_batch_free(&b);
    sl_buf_free(&v);
}
END_TEST

static int count_cb(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    (*(int *)arg)++;
    return 0;
}

START_TEST(scan_stays_in_prefix)
{
    struct sl_batch b = {0};
    struct sl_error err = {0};
    const char *keys[] = {"Pa", "Pb", "Pc", "Q", "O"};
    for (int i = 0; i < 5; i++)
        sl_batch_put(&b, keys[i], strlen(keys[i]), "x", 1);
    ck_assert_int_eq(sl_store_write(&st, &b, 0, &err), 0);
    int n = 0;
    ck_assert_int_eq(sl_store_scan(&st, "P", 1, count_cb, &n, &err), 0);
    ck_assert_int_eq(n, 3);
    sl_batch_free(&b);
}
END_TEST

/* A commit that increments a counter stored under "ctr" by read-modify-write. */
struct incr {
    struct sl_commit c;
    int status;
    int done;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    int *ndone;
};

static int incr_apply(struct sl_commit *c, struct sl_store *s, struct sl_batch *b,
                      struct sl_error *err)
{
    struct sl_buf v = SL_BUF_INIT;
    long n = 0;
    if (sl_store_get(s, "ctr", 3, &v, err) == 0)
        n = strtol(sl_buf_cstr(&v), NULL, 10);
    char text[32];
    int len = snprintf(text, sizeof(text), "%ld", n + 1);
    sl_batch_put(b, "ctr", 3, text, (size_t)len);
    sl_buf_free(&v);
    return 0;
}

static void incr_done(struct sl_commit *c, int status, const struct sl_error *err)
{
    struct incr *x = (struct incr *)c;
    pthread_mutex_lock(x->mu);
    x->status = status;
    x->done = 1;
    (*x->ndone)++;
    pthread_cond_broadcast(x->cv);
    pthread_mutex_unlock(x->mu);
}

START_TEST(writer_serialises_read_modify_write)
{
    enum { N = 2000 };
    struct sl_error err = {0};
    struct sl_writer *w = sl_writer_start(&st, N, 64, NULL, NULL, NULL, &err);
    ck_assert_ptr_nonnull(w);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int ndone = 0;
    struct incr *xs = calloc(N, sizeof(*xs));
    for (int i = 0; i < N; i++) {
        xs[i] = (struct incr){{incr_apply, incr_done, NULL}, -1, 0, &mu, &cv, &ndone};
        ck_assert_int_eq(sl_writer_submit(w, &xs[i].c), 0);
    }
    pthread_mutex_lock(&mu);
    while (ndone < N)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(xs[i].status, 0);
    struct sl_buf v = SL_BUF_INIT;
    ck_assert_int_eq(sl_store_get(&st, "ctr", 3, &v, &err), 0);
    ck_assert_str_eq(sl_buf_cstr(&v), "2000");
    struct sl_writer_stats stats;
    sl_writer_stats(w, &stats);
    ck_assert_uint_eq(stats.commits, N);
    ck_assert_uint_le(stats.groups, N);
    sl_writer_stop(w);
    sl_buf_free(&v);
    free(xs);
}
END_TEST

/* A commit that blocks the writer until released, to fill the queue. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open, gate_entered;

static int gate_apply(struct sl_commit *c, struct sl_store *s, struct sl_batch *b,
                      struct sl_error *err)
{
    pthread_mutex_lock(&gate_mu);
    gate_entered = 1;
    pthread_cond_broadcast(&gate_cv);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    return 0;
}

static int fail_apply(struct sl_commit *c, struct sl_store *s, struct sl_batch *b,
                      struct sl_error *err)
{
    sl_batch_put(b, "never", 5, "x", 1);
    return sl_error_set(err, SL_ESCHEMA, "rejected");
}

START_TEST(full_queue_is_busy_and_failures_write_nothing)
{
    struct sl_error err = {0};
    struct sl_writer *w = sl_writer_start(&st, 2, 8, NULL, NULL, NULL, &err);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int ndone = 0;
    struct incr gate = {{gate_apply, incr_done, NULL}, -1, 0, &mu, &cv, &ndone};
    struct incr a = {{incr_apply, incr_done, NULL}, -1, 0, &mu, &cv, &ndone};
    struct incr bad = {{fail_apply, incr_done, NULL}, -1, 0, &mu, &cv, &ndone};
    struct incr c = {{incr_apply, incr_done, NULL}, -1, 0, &mu, &cv, &ndone};
    ck_assert_int_eq(sl_writer_submit(w, &gate.c), 0);
    pthread_mutex_lock(&gate_mu);
    while (!gate_entered)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    ck_assert_int_eq(sl_writer_submit(w, &a.c), 0);
    ck_assert_int_eq(sl_writer_submit(w, &bad.c), 0);
    ck_assert_int_eq(sl_writer_submit(w, &c.c), SL_EBUSY);
    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    pthread_mutex_lock(&mu);
    while (ndone < 3)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    ck_assert_int_eq(a.status, 0);
    ck_assert_int_eq(bad.status, SL_ESCHEMA);
    struct sl_buf v = SL_BUF_INIT;
    ck_assert_int_eq(sl_store_get(&st, "never", 5, &v, &err), SL_ENOTFOUND);
    sl_writer_stop(w);
    sl_buf_free(&v);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, batch_put_get_delete);
    tcase_add_test(tc, scan_stays_in_prefix);
    tcase_add_test(tc, writer_serialises_read_modify_write);
    tcase_add_test(tc, full_queue_is_busy_and_failures_write_nothing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
