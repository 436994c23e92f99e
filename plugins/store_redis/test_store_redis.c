/* Unit test of the Redis store against the LevelDB store as the reference: random batches of
 * puts and deletes over binary keys (braces, 0xff, empty join keys) go to both; gets, scans
 * from a start key (also stopped early) and positioned iterators must agree. Starts its own
 * redis-server on a free loopback port. Fixed seed: failures reproduce. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "plugin.h"
#include "store.h"

#ifndef REDIS_SO
#error REDIS_SO must name the built plugin
#endif

static uint64_t rs = 88172645463325252u;

static unsigned rnd(unsigned n)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (unsigned)(rs % n);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int can_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static const char byteset[] = {'a', 'b', '{', '}', 0, (char)0xff, (char)0xfe};

/* A random key: 'G'/'V' + one of two view keys + a lenstr join key + a suffix, or another
 * subsystem's byte + a few bytes. */
static void rand_key(struct sl_buf *k)
{
    static const char firsts[] = {'G', 'V', 'A', 'R'};
    sl_buf_reset(k);
    char f = firsts[rnd(4)];
    sl_buf_putc(k, f);
    if (f == 'G' || f == 'V') {
        sl_buf_append(k, rnd(2) ? "viewkey1" : "viewkey2", 8);
        char jk[3];
        size_t jl = rnd(3);
        for (size_t i = 0; i < jl; i++)
            jk[i] = byteset[rnd(sizeof byteset)];
        sl_buf_lenstr(k, jk, jl);
    }
    size_t sl = rnd(4);
    for (size_t i = 0; i < sl; i++)
        sl_buf_putc(k, byteset[rnd(sizeof byteset)]);
}

struct collect {
    struct sl_buf out;
    int stop_after; /* 0: never */
    int n;
};

static int collect_cb(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct collect *c = arg;
    sl_buf_lenstr(&c->out, k, kl);
    sl_buf_lenstr(&c->out, v, vl);
    return c->stop_after && ++c->n >= c->stop_after ? 1 : 0;
}

static int same(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* The group tag length, as the store computes it (the iterator stays inside a group). */
static size_t tag_len(const char *k, size_t kl)
{
    if ((k[0] == 'G' || k[0] == 'V') && kl >= 13) {
        const unsigned char *p = (const unsigned char *)k + 9;
        uint32_t n = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        if (n <= kl - 13)
            return 13 + n;
    }
    return 1;
}

START_TEST(matches_leveldb)
{
    int port = free_port();
    char portstr[16], dir[] = "/tmp/sluice-redis-unit-XXXXXX";
    snprintf(portstr, sizeof portstr, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a failing test must not leave it running */
        execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    ck_assert_int_gt(pid, 0);
    struct timespec t0, now, nap = {0, 20000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!can_connect(port)) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        ck_assert_msg(now.tv_sec - t0.tv_sec < 15, "redis-server did not start");
        nanosleep(&nap, NULL);
    }
    struct sl_error err = {0};
    char settings[128];
    snprintf(settings, sizeof settings,
             "redis.redis-url=redis://127.0.0.1:%d\nredis.redis-key-prefix=unit:", port);
    ck_assert_msg(sl_plugin_load_config(REDIS_SO, NULL, settings, &err) == 0, "%s", err.msg);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct sl_store red = {0}, ref = {0};
    ck_assert_msg(sl_plugin_store_open("redis", dir, 8, &red, &err) == 0, "%s", err.msg);
    ck_assert_msg(sl_store_leveldb_open(dir, 8, &ref, &err) == 0, "%s", err.msg);
    ck_assert_ptr_nonnull(red.ops->iter_new);

    struct sl_batch b = {0};
    struct sl_buf k = SL_BUF_INIT, v = SL_BUF_INIT, v2 = SL_BUF_INIT;
    for (int round = 0; round < 300; round++) {
        sl_batch_reset(&b);
        for (unsigned i = 0, n = 1 + rnd(8); i < n; i++) {
            rand_key(&k);
            if (rnd(4) == 0) {
                sl_batch_delete(&b, k.p, k.len);
            } else {
                char val[24];
                int vl = snprintf(val, sizeof val, "v%d.%u", round, i);
                sl_batch_put(&b, k.p, k.len, val, (size_t)vl);
            }
        }
        ck_assert_msg(sl_store_write(&red, &b, round % 10 == 0, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(sl_store_write(&ref, &b, 0, &err), 0);

        /* get */
        rand_key(&k);
        sl_buf_reset(&v);
        sl_buf_reset(&v2);
        int g1 = sl_store_get(&red, k.p, k.len, &v, &err);
        int g2 = sl_store_get(&ref, k.p, k.len, &v2, &err);
        ck_assert_int_eq(g1, g2);
        ck_assert(same(v.p, v.len, v2.p, v2.len));

        /* scan: a prefix of a random key (at least the view key for rows and aggregates),
         * from the prefix or a random later start, sometimes stopped early */
        rand_key(&k);
        size_t minp = (k.p[0] == 'G' || k.p[0] == 'V') ? 9 : 1;
        size_t plen = minp + rnd((unsigned)(k.len - minp + 1));
        struct sl_buf start = SL_BUF_INIT;
        sl_buf_append(&start, k.p, plen);
        if (rnd(2))
            for (unsigned i = 0, n = rnd(6); i < n; i++)
                sl_buf_putc(&start, byteset[rnd(sizeof byteset)]);
        struct collect c1 = {SL_BUF_INIT, (int)rnd(4), 0}, c2 = {SL_BUF_INIT, c1.stop_after, 0};
        ck_assert_msg(red.ops->scan(red.ctx, k.p, plen, start.p, start.len, collect_cb, &c1,
                                    &err) == 0, "%s", err.msg);
        ck_assert_int_eq(ref.ops->scan(ref.ctx, k.p, plen, start.p, start.len, collect_cb, &c2,
                                       &err), 0);
        ck_assert_msg(same(c1.out.p, c1.out.len, c2.out.p, c2.out.len),
                      "round %d: scans differ (%zu vs %zu bytes)", round, c1.out.len,
                      c2.out.len);
        sl_buf_free(&c1.out);
        sl_buf_free(&c2.out);
        sl_buf_free(&start);

        /* iterator: from a random key, every key of its group in order */
        rand_key(&k);
        size_t tl = tag_len(k.p, k.len);
        void *i1 = red.ops->iter_new(red.ctx), *i2 = ref.ops->iter_new(ref.ctx);
        int ok1 = red.ops->iter_seek(i1, k.p, k.len), ok2 = ref.ops->iter_seek(i2, k.p, k.len);
        for (int step = 0; step < 40; step++) {
            size_t kl1 = 0, kl2 = 0, vl1 = 0, vl2 = 0;
            const char *k2 = ok2 ? ref.ops->iter_key(i2, &kl2) : NULL;
            if (ok2 && (kl2 < tl || memcmp(k2, k.p, tl) != 0))
                ok2 = 0; /* past the group */
            ck_assert_int_eq(ok1, ok2);
            if (!ok1)
                break;
            const char *k1 = red.ops->iter_key(i1, &kl1);
            const char *w1 = red.ops->iter_value(i1, &vl1), *w2 = ref.ops->iter_value(i2, &vl2);
            ck_assert(same(k1, kl1, k2, kl2));
            ck_assert(same(w1, vl1, w2, vl2));
            ok1 = red.ops->iter_next(i1);
            ok2 = ref.ops->iter_next(i2);
        }
        red.ops->iter_free(i1);
        ref.ops->iter_free(i2);
    }
    sl_batch_free(&b);
    sl_buf_free(&k);
    sl_buf_free(&v);
    sl_buf_free(&v2);
    sl_store_close(&red);
    sl_store_close(&ref);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store_redis");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, matches_leveldb);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
