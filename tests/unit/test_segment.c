/* Unit tests for core/segment.c: append/sync/reopen, torn and corrupt tails, sealing, sealed
 * block corruption, crash states around sealing and compaction, and a randomized comparison
 * against an in-memory model. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif

#include "check_fast.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "segment.h"

static char g_root[PATH_MAX]; /* per-run temporary directory */

/* snprintf into a PATH_MAX buffer (paths here are short). */
static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
}

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* A fresh data directory for one test. */
static void new_data_dir(char *out, const char *name)
{
    pathf(out, "%s/%s", g_root, name);
    ck_assert_int_eq(mkdir(out, 0755), 0);
}

static void view_dir(char *out, const char *data)
{
    pathf(out, "%s/offline/ws/fv", data);
}

static struct sl_segment *open_seg(const char *data, const struct sl_segment_opts *o,
                                   struct sl_segment_recovery *rec)
{
    struct sl_segment *seg = NULL;
    struct sl_error err = {0, ""};
    int rc = sl_segment_open(data, "ws", "fv", o, &seg, rec, &err);

    ck_assert_msg(rc == 0, "open: %d %s", rc, err.msg);
    return seg;
}

/* Payload derived from seq so any record can be checked on its own. */
static size_t payload_of(uint64_t seq, unsigned char *buf)
{
    size_t n = (size_t)(seq % 41);

    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(seq * 31 + i);
    return n;
}

struct mrec {
    unsigned char key[16];
    size_t klen;
    int64_t t;
    uint64_t seq;
};

static int mrec_cmp(const void *pa, const void *pb)
{
    const struct mrec *a = pa, *b = pb;
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = n ? memcmp(a->key, b->key, n) : 0;

    if (c != 0)
        return c;
    if (a->klen != b->klen)
        return a->klen < b->klen ? -1 : 1;
    if (a->t != b->t)
        return a->t < b->t ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void append_m(struct sl_segment *seg, const struct mrec *m)
{
    unsigned char pay[64];
    struct sl_segment_record r;
    struct sl_error err = {0, ""};
    int rc;

    r.key = m->key;
    r.key_len = m->klen;
    r.time_ns = m->t;
    r.seq = m->seq;
    r.payload = pay;
    r.payload_len = payload_of(m->seq, pay);
    rc = sl_segment_append(seg, &r, &err);
    ck_assert_msg(rc == 0, "append: %d %s", rc, err.msg);
}

static void sync_ok(struct sl_segment *seg)
{
    struct sl_error err = {0, ""};
    int rc = sl_segment_sync(seg, &err);

    ck_assert_msg(rc == 0, "sync: %d %s", rc, err.msg);
}

static int seal_ok(struct sl_segment *seg)
{
    struct sl_error err = {0, ""};
    int rc = sl_segment_seal(seg, &err);

    ck_assert_msg(rc >= 0, "seal: %d %s", rc, err.msg);
    return rc;
}

static void mk(struct mrec *m, const char *key, int64_t t, uint64_t seq)
{
    m->klen = strlen(key);
    memcpy(m->key, key, m->klen);
    m->t = t;
    m->seq = seq;
}

/* Checks that iterating seg with o yields exactly the model records (already sorted) that
 * satisfy the same bounds. Returns the number of records seen. */
static size_t expect_iter(struct sl_segment *seg, const struct sl_segment_iter_opts *o,
                          const struct mrec *model, size_t n)
{
    struct sl_segment_iter *it = NULL;
    struct sl_segment_record r;
    struct sl_error err = {0, ""};
    unsigned char pay[64];
    size_t i = 0, seen = 0;
    int rc = sl_segment_iter_open(seg, o, &it, &err);

    ck_assert_msg(rc == 0, "iter_open: %d %s", rc, err.msg);
    for (;;) {
        struct mrec want;
        rc = sl_segment_iter_next(it, &r, &err);
        ck_assert_msg(rc >= 0, "iter_next: %d %s", rc, err.msg);
        /* the next model record within bounds */
        while (i < n) {
            const struct mrec *m = &model[i];
            struct mrec lo, hi;
            int ok = 1;
            if (o != NULL && o->key_lo != NULL) {
                lo.klen = o->key_lo_len;
                memcpy(lo.key, o->key_lo, lo.klen);
                lo.t = INT64_MIN;
                lo.seq = 0;
                ok = ok && mrec_cmp(m, &lo) >= 0;
            }
            if (o != NULL && o->key_hi != NULL) {
                hi.klen = o->key_hi_len;
                memcpy(hi.key, o->key_hi, hi.klen);
                hi.t = INT64_MIN;
                hi.seq = 0;
                ok = ok && mrec_cmp(m, &hi) < 0;
            }
            if (o != NULL && o->has_time_max)
                ok = ok && m->t <= o->time_max;
            if (ok)
                break;
            i++;
        }
        if (rc == 0) {
            ck_assert_msg(i == n, "iterator ended early: %zu of %zu model records", i, n);
            break;
        }
        ck_assert_msg(i < n, "iterator returned more records than the model (seq %" PRIu64 ")",
                      r.seq);
        want = model[i++];
        ck_assert_uint_eq(r.key_len, want.klen);
        ck_assert(r.key_len == 0 || memcmp(r.key, want.key, want.klen) == 0);
        ck_assert_int_eq(r.time_ns, want.t);
        ck_assert_uint_eq(r.seq, want.seq);
        ck_assert_uint_eq(r.payload_len, payload_of(want.seq, pay));
        ck_assert(r.payload_len == 0 || memcmp(r.payload, pay, r.payload_len) == 0);
        seen++;
    }
    ck_assert_int_eq(sl_segment_iter_next(it, &r, &err), 0); /* stays at the end */
    sl_segment_iter_destroy(it);
    return seen;
}

static size_t count_iter(struct sl_segment *seg)
{
    struct sl_segment_iter *it = NULL;
    struct sl_segment_record r;
    struct sl_error err = {0, ""};
    size_t n = 0;
    int rc = sl_segment_iter_open(seg, NULL, &it, &err);

    ck_assert_msg(rc == 0, "iter_open: %d %s", rc, err.msg);
    while ((rc = sl_segment_iter_next(it, &r, &err)) == 1)
        n++;
    ck_assert_msg(rc == 0, "iter_next: %d %s", rc, err.msg);
    sl_segment_iter_destroy(it);
    return n;
}

/* Name of the only file in dir starting with prefix (and not ending in .tmp), into out. */
static int find_file(const char *dir, const char *prefix, char *out)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int found = 0;

    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
            (n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0))
            continue;
        pathf(out, "%s/%s", dir, de->d_name);
        found++;
    }
    closedir(d);
    return found;
}

static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL)
        n += strstr(de->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

static int count_files(const char *dir, const char *prefix)
{
    char tmp[PATH_MAX];
    return find_file(dir, prefix, tmp);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    struct stat st;
    unsigned char *p;
    int fd = open(path, O_RDONLY);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fstat(fd, &st), 0);
    p = malloc((size_t)st.st_size + 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return p;
}

static void spit(const char *path, const unsigned char *p, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, p, len), (ssize_t)len);
    close(fd);
}

static void flip_byte(const char *path, size_t off)
{
    size_t len;
    unsigned char *p = slurp(path, &len);

    ck_assert_uint_lt(off, len);
    p[off] ^= 0x5a;
    spit(path, p, len);
    free(p);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- tests ---------------------------------------------------------------------------- */

START_TEST(test_crc32c_vectors)
{
    unsigned char z[32], f[32];

    memset(z, 0, sizeof(z));
    memset(f, 0xff, sizeof(f));
    ck_assert_uint_eq(sl_segment_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(sl_segment_crc32c(0, z, 32), 0x8A9136AAu);
    ck_assert_uint_eq(sl_segment_crc32c(0, f, 32), 0x62A8AB43u);
    ck_assert_uint_eq(sl_segment_crc32c(0, "", 0), 0u);
    /* chunked equals whole, at every split and alignment */
    for (size_t split = 0; split <= 9; split++) {
        uint32_t c = sl_segment_crc32c(0, "123456789", split);
        c = sl_segment_crc32c(c, &"123456789"[split], 9 - split);
        ck_assert_uint_eq(c, 0xE3069283u);
    }
}
END_TEST

START_TEST(test_bad_names)
{
    struct sl_segment *seg = NULL;
    struct sl_error err = {0, ""};
    char data[PATH_MAX];

    new_data_dir(data, "names");
    ck_assert_int_eq(sl_segment_open(data, "..", "fv", NULL, &seg, NULL, &err), SL_EINVAL);
    ck_assert_int_eq(sl_segment_open(data, "ws", "a/b", NULL, &seg, NULL, &err), SL_EINVAL);
    ck_assert_int_eq(sl_segment_open(data, "", "fv", NULL, &seg, NULL, &err), SL_EINVAL);
    ck_assert_ptr_null(seg);
    sl_segment_close(NULL);
    sl_segment_iter_destroy(NULL);
}
END_TEST

START_TEST(test_roundtrip)
{
    char data[PATH_MAX], dir[PATH_MAX];
    struct sl_segment_recovery rec;
    struct sl_segment_stats st;
    struct mrec m[300];
    struct sl_segment *seg;
    uint64_t maxseq = 0;
    size_t n = 0;

    new_data_dir(data, "roundtrip");
    view_dir(dir, data);
    seg = open_seg(data, NULL, &rec);
    ck_assert_int_eq(rec.truncated_bytes, 0);
    ck_assert_str_eq(rec.msg, "");
    ck_assert_int_eq(sl_segment_max_seq(seg, &maxseq), 0);
    ck_assert_uint_eq(count_iter(seg), 0);
    ck_assert_str_eq(sl_segment_dir(seg), dir);

    for (; n < 100; n++) {
        char k[8];
        snprintf(k, sizeof(k), "u%zu", (n * 7) % 13);
        mk(&m[n], n == 5 ? "" : k, (int64_t)(1000 - n) * 1000000000, n + 1);
        append_m(seg, &m[n]);
    }
    /* not visible before sync */
    ck_assert_uint_eq(count_iter(seg), 0);
    sl_segment_stats(seg, &st);
    ck_assert_uint_eq(st.pending_records, 100);
    sync_ok(seg);
    sl_segment_stats(seg, &st);
    ck_assert_uint_eq(st.pending_records, 0);
    ck_assert_uint_eq(st.active_records, 100);
    ck_assert_int_eq(count_files(dir, "active-"), 1);
    qsort(m, n, sizeof(m[0]), mrec_cmp);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, n), 100);
    ck_assert_int_eq(sl_segment_max_seq(seg, &maxseq), 1);
    ck_assert_uint_eq(maxseq, 100);

    /* unsynced appends are discarded by close */
    mk(&m[n], "lost", 1, 999);
    append_m(seg, &m[n]);
    sl_segment_close(seg);

    seg = open_seg(data, NULL, &rec);
    ck_assert_uint_eq(rec.active_records, 100);
    ck_assert_uint_eq(rec.truncated_bytes, 0);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, n), 100);
    /* appends continue in the same file after reopen */
    for (; n < 150; n++) {
        mk(&m[n], "zz", (int64_t)n, n + 1);
        append_m(seg, &m[n]);
    }
    sync_ok(seg);
    ck_assert_int_eq(count_files(dir, "active-"), 1);
    sl_segment_close(seg);
    seg = open_seg(data, NULL, &rec);
    qsort(m, n, sizeof(m[0]), mrec_cmp);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, n), 150);
    ck_assert_int_eq(sl_segment_max_seq(seg, &maxseq), 1);
    ck_assert_uint_eq(maxseq, 150);
    sl_segment_close(seg);
}
END_TEST

START_TEST(test_limits_and_lock)
{
    char data[PATH_MAX];
    struct sl_segment *seg, *other = NULL;
    struct sl_segment_opts ro;
    struct sl_segment_record r;
    struct sl_error err = {0, ""};
    static unsigned char big[SL_SEGMENT_MAX_KEY + 1];

    new_data_dir(data, "limits");
    seg = open_seg(data, NULL, NULL);
    memset(&r, 0, sizeof(r));
    r.key = big;
    r.key_len = sizeof(big);
    ck_assert_int_eq(sl_segment_append(seg, &r, &err), SL_ETOOBIG);
    r.key_len = SL_SEGMENT_MAX_KEY;
    ck_assert_int_eq(sl_segment_append(seg, &r, &err), 0);
    sync_ok(seg);

    /* a second handle on the same directory, writer or reader, is refused */
    ck_assert_int_eq(sl_segment_open(data, "ws", "fv", NULL, &other, NULL, &err), SL_EBUSY);
    ck_assert_ptr_null(other);
    memset(&ro, 0, sizeof(ro));
    ro.flags = SL_SEGMENT_RDONLY;
    ck_assert_int_eq(sl_segment_open(data, "ws", "fv", &ro, &other, NULL, &err), SL_EBUSY);
    sl_segment_close(seg);

    /* read-only: serves, refuses writes; missing view is SL_ENOTFOUND */
    other = open_seg(data, &ro, NULL);
    ck_assert_uint_eq(count_iter(other), 1);
    ck_assert_int_eq(sl_segment_append(other, &r, &err), SL_EINVAL);
    ck_assert_int_eq(sl_segment_compact(other, &err), SL_EINVAL);
    sl_segment_close(other);
    ck_assert_int_eq(sl_segment_open(data, "ws", "nope", &ro, &other, NULL, &err), SL_ENOTFOUND);
}
END_TEST

/* Writes k records, syncs and closes; returns the active path and its size before the last
 * record in *s0. */
static void write_k(const char *data, struct mrec *m, size_t k, char *active, size_t *s0)
{
    char dir[PATH_MAX];
    struct sl_segment *seg = open_seg(data, NULL, NULL);
    struct stat st;

    view_dir(dir, data);
    for (size_t i = 0; i < k; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%zu", i % 3);
        mk(&m[i], key, (int64_t)i * 10, i + 1);
        append_m(seg, &m[i]);
        if (i + 1 == k - 1)
            sync_ok(seg);
    }
    ck_assert_int_eq(find_file(dir, "active-", active), 1);
    ck_assert_int_eq(stat(active, &st), 0);
    *s0 = (size_t)st.st_size;
    sync_ok(seg);
    sl_segment_close(seg);
}

START_TEST(test_torn_tail_every_offset)
{
    char data[PATH_MAX], active[PATH_MAX];
    struct mrec m[8], sorted[9];
    unsigned char *img;
    size_t k = 8, s0, len;

    new_data_dir(data, "torn");
    write_k(data, m, k, active, &s0);
    img = slurp(active, &len);
    ck_assert_uint_gt(len, s0);

    for (size_t cut = s0; cut < len; cut++) {
        struct sl_segment_recovery rec;
        struct sl_segment *seg;
        struct stat st;
        struct mrec extra;

        spit(active, img, cut);
        seg = open_seg(data, NULL, &rec);
        ck_assert_uint_eq(rec.active_records, k - 1);
        ck_assert_uint_eq(rec.truncated_bytes, cut - s0);
        if (cut > s0) {
            ck_assert_uint_eq(rec.truncated_at, s0);
            ck_assert_uint_eq(rec.truncated_files, 1);
            ck_assert_ptr_nonnull(strstr(rec.msg, "active-"));
        }
        ck_assert_int_eq(stat(active, &st), 0);
        ck_assert_uint_eq((size_t)st.st_size, s0);
        memcpy(sorted, m, (k - 1) * sizeof(m[0]));
        qsort(sorted, k - 1, sizeof(m[0]), mrec_cmp);
        ck_assert_uint_eq(expect_iter(seg, NULL, sorted, k - 1), k - 1);

        /* appends continue correctly after the cut */
        mk(&extra, "k1", 5, 100);
        append_m(seg, &extra);
        sync_ok(seg);
        sl_segment_close(seg);
        seg = open_seg(data, NULL, &rec);
        ck_assert_uint_eq(rec.truncated_bytes, 0);
        memcpy(sorted, m, (k - 1) * sizeof(m[0]));
        sorted[k - 1] = extra;
        qsort(sorted, k, sizeof(m[0]), mrec_cmp);
        ck_assert_uint_eq(expect_iter(seg, NULL, sorted, k), k);
        sl_segment_close(seg);
    }
    /* and the full file loses nothing */
    spit(active, img, len);
    {
        struct sl_segment_recovery rec;
        struct sl_segment *seg = open_seg(data, NULL, &rec);
        ck_assert_uint_eq(rec.active_records, k);
        ck_assert_uint_eq(rec.truncated_bytes, 0);
        sl_segment_close(seg);
    }
    free(img);
}
END_TEST

/* Cuts anywhere in the file, header included: never an error, never a partial record. */
START_TEST(test_torn_any_length)
{
    char data[PATH_MAX], active[PATH_MAX], dir[PATH_MAX];
    struct mrec m[4];
    unsigned char *img;
    size_t s0, len, prev_count = 0;

    new_data_dir(data, "tornany");
    view_dir(dir, data);
    write_k(data, m, 4, active, &s0);
    img = slurp(active, &len);
    for (size_t cut = 0; cut <= len; cut++) {
        struct sl_segment_recovery rec;
        struct sl_segment *seg;
        size_t n;

        spit(active, img, cut);
        seg = open_seg(data, NULL, &rec);
        n = count_iter(seg);
        ck_assert_uint_ge(n, prev_count);
        ck_assert_uint_le(n, 4);
        ck_assert_uint_eq(n, rec.active_records);
        prev_count = n;
        if (n == 0)
            ck_assert_int_eq(count_files(dir, "active-"), 0);
        sl_segment_close(seg);
    }
    ck_assert_uint_eq(prev_count, 4);
    free(img);
}
END_TEST

START_TEST(test_corrupt_middle)
{
    char data[PATH_MAX], dir[PATH_MAX], active[PATH_MAX];
    struct sl_segment_recovery rec;
    struct sl_segment *seg;
    struct mrec m[100];
    size_t off, len, rsize;
    unsigned char *img;

    new_data_dir(data, "mid");
    view_dir(dir, data);
    seg = open_seg(data, NULL, NULL);
    /* fixed-size records: key "kk", payload length 0 (seq multiple of 41 is not needed:
     * payload_of gives seq % 41 bytes, so use seq = 41 * i) */
    for (size_t i = 0; i < 100; i++) {
        mk(&m[i], "kk", (int64_t)i, 41 * (i + 1));
        append_m(seg, &m[i]);
    }
    sync_ok(seg);
    sl_segment_close(seg);
    ck_assert_int_eq(find_file(dir, "active-", active), 1);
    img = slurp(active, &len);
    rsize = (len - 40) / 100;
    ck_assert_uint_eq(40 + rsize * 100, len);
    free(img);

    /* a flipped payload-region byte of record 50: records 50.. are dropped and reported */
    off = 40 + 50 * rsize + rsize - 3;
    flip_byte(active, off);
    seg = open_seg(data, NULL, &rec);
    ck_assert_uint_eq(rec.active_records, 50);
    ck_assert_uint_eq(rec.truncated_at, 40 + 50 * rsize);
    ck_assert_uint_eq(rec.truncated_bytes, 50 * rsize);
    ck_assert_ptr_nonnull(strstr(rec.msg, "checksum"));
    ck_assert_uint_eq(expect_iter(seg, NULL, m, 50), 50);
    sl_segment_close(seg);

    /* a corrupted length field of record 20 */
    flip_byte(active, 40 + 20 * rsize + 3);
    seg = open_seg(data, NULL, &rec);
    ck_assert_uint_eq(rec.active_records, 20);
    ck_assert_uint_eq(rec.truncated_at, 40 + 20 * rsize);
    ck_assert_ptr_nonnull(strstr(rec.msg, "length"));
    ck_assert_uint_eq(expect_iter(seg, NULL, m, 20), 20);
    sl_segment_close(seg);

    /* a corrupt header is an error naming the file, not a silent reset */
    flip_byte(active, 3);
    {
        struct sl_segment *s2 = NULL;
        struct sl_error err = {0, ""};
        ck_assert_int_eq(sl_segment_open(data, "ws", "fv", NULL, &s2, NULL, &err), SL_ECORRUPT);
        ck_assert_ptr_nonnull(strstr(err.msg, "active-"));
    }
}
END_TEST

START_TEST(test_seal_and_iterate)
{
    char data[PATH_MAX], dir[PATH_MAX];
    struct sl_segment_opts o;
    struct sl_segment_stats st;
    struct sl_segment *seg;
    struct mrec m[3000];
    size_t n = 0;

    new_data_dir(data, "seal");
    view_dir(dir, data);
    memset(&o, 0, sizeof(o));
    o.block_bytes = 256; /* many blocks */
    o.compact_min_files = 100;
    seg = open_seg(data, &o, NULL);
    ck_assert_int_eq(seal_ok(seg), 0); /* nothing to seal */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 1000; i++, n++) {
            char k[8];
            /* few keys, few times: plenty of duplicate (key, time) pairs */
            snprintf(k, sizeof(k), "e%d", (int)(rnd() % 7));
            mk(&m[n], k, (int64_t)(rnd() % 5) - 2, 3000 - n);
            append_m(seg, &m[n]);
            if (i % 100 == 99)
                sync_ok(seg);
        }
        if (round < 2)
            ck_assert_int_eq(seal_ok(seg), 1);
    }
    sync_ok(seg);
    ck_assert_int_eq(count_files(dir, "sealed-"), 2);
    ck_assert_int_eq(count_files(dir, "active-"), 1);
    sl_segment_stats(seg, &st);
    ck_assert_uint_eq(st.sealed_files, 2);
    ck_assert_uint_eq(st.sealed_records, 2000);
    ck_assert_uint_eq(st.active_records, 1000);
    qsort(m, n, sizeof(m[0]), mrec_cmp);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, n), n);

    /* key ranges, exact key, time bounds */
    {
        struct sl_segment_iter_opts io;
        memset(&io, 0, sizeof(io));
        io.key_lo = "e2";
        io.key_lo_len = 2;
        io.key_hi = "e5";
        io.key_hi_len = 2;
        expect_iter(seg, &io, m, n);
        io.key_lo = "e3";
        io.key_hi = "e3\0";
        io.key_hi_len = 3;
        ck_assert_uint_gt(expect_iter(seg, &io, m, n), 0);
        io.has_time_max = 1;
        io.time_max = 0;
        expect_iter(seg, &io, m, n);
        io.key_lo = NULL;
        io.key_hi = NULL;
        io.time_max = -2;
        expect_iter(seg, &io, m, n);
        io.time_max = -3;
        ck_assert_uint_eq(expect_iter(seg, &io, m, n), 0);
    }
    /* everything survives reopen and a final seal */
    sl_segment_close(seg);
    seg = open_seg(data, &o, NULL);
    ck_assert_int_eq(seal_ok(seg), 1);
    ck_assert_int_eq(count_files(dir, "active-"), 0);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, n), n);
    sl_segment_close(seg);
}
END_TEST

/* Sealing off the writer thread: rotate closes the active file, appends go on into a new
 * one, iterators see every record throughout, and seal_rotated (from another thread) turns
 * the closed file into a sealed segment. A crash between rotate and seal leaves two active
 * files, which open recovers. */
struct seal_arg {
    struct sl_segment *seg;
    uint64_t gen, size;
    int rc;
};

/* Appends count records of random keys and times after m[0..n); returns the new n. */
static size_t append_random(struct sl_segment *seg, struct mrec *m, size_t n, int count)
{
    for (int i = 0; i < count; i++, n++) {
        char k[8];
        snprintf(k, sizeof(k), "e%d", (int)(rnd() % 9));
        mk(&m[n], k, (int64_t)(rnd() % 50), n + 1);
        append_m(seg, &m[n]);
    }
    return n;
}

static void *seal_thread(void *p)
{
    struct seal_arg *a = p;
    struct sl_error err = {0, ""};
    a->rc = sl_segment_seal_rotated(a->seg, a->gen, a->size, &err);
    return NULL;
}

START_TEST(test_rotate_then_seal_elsewhere)
{
    char data[PATH_MAX], dir[PATH_MAX];
    struct sl_segment_opts o;
    struct sl_segment *seg;
    struct sl_error err = {0, ""};
    struct mrec m[2000];
    size_t n = 0;
    uint64_t gen = 0, size = 0;

    new_data_dir(data, "rotate");
    view_dir(dir, data);
    memset(&o, 0, sizeof(o));
    o.block_bytes = 256;
    o.compact_min_files = 100;
    seg = open_seg(data, &o, NULL);
    ck_assert_int_eq(sl_segment_rotate(seg, &gen, &size, &err), 0); /* no active file yet */
    n = append_random(seg, m, n, 1000);
    /* rotate makes the pending records durable, then closes the file */
    ck_assert_int_eq(sl_segment_rotate(seg, &gen, &size, &err), 1);
    ck_assert_int_eq(count_files(dir, "active-"), 1);
    n = append_random(seg, m, n, 500);
    sync_ok(seg);
    ck_assert_int_eq(count_files(dir, "active-"), 2); /* the closed one and the new one */
    qsort(m, n, sizeof(m[0]), mrec_cmp);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, n), n);

    struct seal_arg a = {seg, gen, size, 0};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, seal_thread, &a), 0);
    for (int i = 0; i < 20; i++) /* readers meanwhile see every record */
        ck_assert_uint_eq(expect_iter(seg, NULL, m, n), n);
    pthread_join(t, NULL);
    ck_assert_int_eq(a.rc, 1);
    ck_assert_int_eq(count_files(dir, "sealed-"), 1);
    ck_assert_int_eq(count_files(dir, "active-"), 1);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, n), n);

    /* a crash between rotate and seal: two active files; open seals the older */
    ck_assert_int_eq(sl_segment_rotate(seg, &gen, &size, &err), 1);
    n = append_random(seg, m, n, 300);
    sync_ok(seg);
    sl_segment_close(seg);
    ck_assert_int_eq(count_files(dir, "active-"), 2);
    seg = open_seg(data, &o, NULL);
    ck_assert_int_eq(count_files(dir, "active-"), 1);
    ck_assert_int_eq(count_files(dir, "sealed-"), 2);
    qsort(m, n, sizeof(m[0]), mrec_cmp);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, n), n);
    sl_segment_close(seg);
}
END_TEST

/* One key spanning many blocks: a seek to it must start in the block before the first block
 * whose first key is that key. */
START_TEST(test_seek_across_blocks)
{
    char data[PATH_MAX];
    struct sl_segment_opts o;
    struct sl_segment *seg;
    struct sl_segment_iter *it = NULL;
    struct sl_segment_record r;
    struct sl_error err = {0, ""};
    struct mrec m[1200];
    size_t n = 0, got;
    int rc;

    new_data_dir(data, "seek");
    memset(&o, 0, sizeof(o));
    o.block_bytes = 200;
    seg = open_seg(data, &o, NULL);
    for (int i = 0; i < 100; i++, n++) {
        mk(&m[n], "a", i, n + 1000);
        append_m(seg, &m[n]);
    }
    for (int i = 0; i < 1000; i++, n++) {
        mk(&m[n], "k", 1000 - i, n + 1000);
        append_m(seg, &m[n]);
    }
    for (int i = 0; i < 100; i++, n++) {
        mk(&m[n], "z", i, n + 1000);
        append_m(seg, &m[n]);
    }
    ck_assert_int_eq(seal_ok(seg), 1);
    qsort(m, n, sizeof(m[0]), mrec_cmp);

    ck_assert_int_eq(sl_segment_iter_open(seg, NULL, &it, &err), 0);
    for (int pass = 0; pass < 3; pass++) {
        /* seek forward, backward, and to a key between the stored ones */
        const char *key = pass == 0 ? "k" : pass == 1 ? "a" : "b";
        ck_assert_int_eq(sl_segment_iter_seek(it, key, 1, &err), 0);
        got = 0;
        while ((rc = sl_segment_iter_next(it, &r, &err)) == 1 && r.key_len == 1 &&
               ((const char *)r.key)[0] == (pass == 2 ? 'k' : key[0]))
            got++;
        ck_assert_int_eq(rc, 1);
        ck_assert_uint_eq(got, pass == 1 ? 100 : 1000);
    }
    ck_assert_int_eq(sl_segment_iter_seek(it, "zz", 2, &err), 0);
    ck_assert_int_eq(sl_segment_iter_next(it, &r, &err), 0);
    sl_segment_iter_destroy(it);
    sl_segment_close(seg);
}
END_TEST

START_TEST(test_corrupt_sealed_block)
{
    char data[PATH_MAX], dir[PATH_MAX], sealed[PATH_MAX];
    struct sl_segment_opts o;
    struct sl_segment *seg;
    struct sl_segment_iter *it = NULL;
    struct sl_segment_record r;
    struct sl_error err = {0, ""};
    struct mrec m;
    size_t len, seen = 0;
    unsigned char *img;
    int rc;

    new_data_dir(data, "badblock");
    view_dir(dir, data);
    memset(&o, 0, sizeof(o));
    o.block_bytes = 1024;
    seg = open_seg(data, &o, NULL);
    for (int i = 0; i < 500; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%03d", i);
        mk(&m, k, i, (uint64_t)i);
        append_m(seg, &m);
    }
    ck_assert_int_eq(seal_ok(seg), 1);
    ck_assert_int_eq(find_file(dir, "sealed-", sealed), 1);
    img = slurp(sealed, &len);
    free(img);
    flip_byte(sealed, len / 3); /* inside some block past the first */

    ck_assert_int_eq(sl_segment_iter_open(seg, NULL, &it, &err), 0);
    while ((rc = sl_segment_iter_next(it, &r, &err)) == 1)
        seen++;
    ck_assert_int_eq(rc, SL_ECORRUPT);
    ck_assert_uint_gt(seen, 0);
    ck_assert_uint_lt(seen, 500);
    ck_assert_ptr_nonnull(strstr(err.msg, "sealed-"));
    ck_assert_ptr_nonnull(strstr(err.msg, "block"));
    /* sticky */
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sl_segment_iter_next(it, &r, &err), SL_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "block"));
    sl_segment_iter_destroy(it);

    /* a seek that lands on the bad block reports it too */
    ck_assert_int_eq(sl_segment_iter_open(seg, NULL, &it, &err), 0);
    rc = 0;
    for (int i = 0; i < 500 && rc == 0; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%03d", i);
        rc = sl_segment_iter_seek(it, k, 4, &err);
        if (rc == 0)
            rc = sl_segment_iter_next(it, &r, &err) < 0 ? SL_ECORRUPT : 0;
    }
    ck_assert_int_eq(rc, SL_ECORRUPT);
    sl_segment_iter_destroy(it);

    sl_segment_close(seg);

    /* a damaged footer fails the open, naming the file */
    flip_byte(sealed, len - 20);
    {
        struct sl_segment *s2 = NULL;
        ck_assert_int_eq(sl_segment_open(data, "ws", "fv", &o, &s2, NULL, &err), SL_ECORRUPT);
        ck_assert_ptr_nonnull(strstr(err.msg, "sealed-"));
    }
}
END_TEST

/* Builds records 1..n in a view with one active file and closes; returns the model sorted. */
static void fill(const char *data, struct mrec *m, size_t n, uint64_t first_seq)
{
    struct sl_segment *seg = open_seg(data, NULL, NULL);

    for (size_t i = 0; i < n; i++) {
        char k[8];
        snprintf(k, sizeof(k), "c%zu", (size_t)(rnd() % 9));
        mk(&m[i], k, (int64_t)(rnd() % 50), first_seq + i);
        append_m(seg, &m[i]);
    }
    sync_ok(seg);
    sl_segment_close(seg);
}

START_TEST(test_crash_during_seal)
{
    char data[PATH_MAX], dir[PATH_MAX], active[PATH_MAX], sealed[PATH_MAX], tmp[PATH_MAX];
    unsigned char *aimg, *simg;
    size_t alen, slen;
    struct mrec m[400];
    struct sl_segment *seg;
    struct sl_segment_recovery rec;

    new_data_dir(data, "crashseal");
    view_dir(dir, data);
    fill(data, m, 400, 1);
    qsort(m, 400, sizeof(m[0]), mrec_cmp);
    ck_assert_int_eq(find_file(dir, "active-", active), 1);
    aimg = slurp(active, &alen);
    seg = open_seg(data, NULL, NULL);
    ck_assert_int_eq(seal_ok(seg), 1);
    sl_segment_close(seg);
    ck_assert_int_eq(find_file(dir, "sealed-", sealed), 1);
    ck_assert_int_eq(count_files(dir, "active-"), 0);
    simg = slurp(sealed, &slen);
    pathf(tmp, "%s.tmp", sealed);

    /* 1: crash while writing the temp file */
    unlink(sealed);
    spit(tmp, simg, slen / 2);
    spit(active, aimg, alen);
    seg = open_seg(data, NULL, &rec);
    ck_assert_uint_eq(rec.removed_tmp, 1);
    ck_assert_uint_eq(rec.removed_superseded, 0);
    ck_assert_int_eq(access(tmp, F_OK), -1);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, 400), 400);
    sl_segment_close(seg);

    /* 2: temp complete and synced, not yet renamed */
    spit(tmp, simg, slen);
    seg = open_seg(data, NULL, &rec);
    ck_assert_uint_eq(rec.removed_tmp, 1);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, 400), 400);
    ck_assert_int_eq(seal_ok(seg), 1); /* the seal can be redone */
    ck_assert_uint_eq(expect_iter(seg, NULL, m, 400), 400);
    sl_segment_close(seg);

    /* 3: renamed, active not yet removed: sealed wins, active dropped, nothing doubled */
    spit(active, aimg, alen);
    seg = open_seg(data, NULL, &rec);
    ck_assert_uint_eq(rec.removed_superseded, 1);
    ck_assert_int_eq(count_files(dir, "active-"), 0);
    ck_assert_int_eq(count_files(dir, "sealed-"), 1);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, 400), 400);
    sl_segment_close(seg);

    /* read-only open of state 3 ignores the redundant active file without touching it */
    spit(active, aimg, alen);
    {
        struct sl_segment_opts ro;
        memset(&ro, 0, sizeof(ro));
        ro.flags = SL_SEGMENT_RDONLY;
        seg = open_seg(data, &ro, &rec);
        ck_assert_uint_eq(rec.removed_superseded, 1);
        ck_assert_uint_eq(expect_iter(seg, NULL, m, 400), 400);
        sl_segment_close(seg);
        ck_assert_int_eq(count_files(dir, "active-"), 1);
    }
    unlink(active);

    /* 4: a crash while creating a new active file leaves only its temp */
    {
        char atmp[PATH_MAX];
        pathf(atmp, "%s/active-00000000000000ff.log.tmp", dir);
        spit(atmp, aimg, alen / 2);
        seg = open_seg(data, NULL, &rec);
        ck_assert_uint_eq(rec.removed_tmp, 1);
        ck_assert_uint_eq(expect_iter(seg, NULL, m, 400), 400);
        sl_segment_close(seg);
    }
    free(aimg);
    free(simg);
}
END_TEST

START_TEST(test_two_actives_after_crash)
{
    char data[PATH_MAX], dir[PATH_MAX], a1[PATH_MAX], sealed[PATH_MAX];
    unsigned char *img;
    size_t len;
    struct mrec m[300];
    struct sl_segment *seg;
    struct sl_segment_recovery rec;

    new_data_dir(data, "twoactive");
    view_dir(dir, data);
    fill(data, m, 150, 1);
    ck_assert_int_eq(find_file(dir, "active-", a1), 1);
    img = slurp(a1, &len);
    seg = open_seg(data, NULL, NULL);
    ck_assert_int_eq(seal_ok(seg), 1);
    sl_segment_close(seg);
    fill(data, m + 150, 150, 151);
    /* the sealed copy is lost but the first active file is back: two active files */
    ck_assert_int_eq(find_file(dir, "sealed-", sealed), 1);
    unlink(sealed);
    spit(a1, img, len);
    ck_assert_int_eq(count_files(dir, "active-"), 2);
    seg = open_seg(data, NULL, &rec);
    ck_assert_uint_eq(rec.sealed_on_open, 1);
    ck_assert_int_eq(count_files(dir, "active-"), 1);
    ck_assert_int_eq(count_files(dir, "sealed-"), 1);
    qsort(m, 300, sizeof(m[0]), mrec_cmp);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, 300), 300);
    sl_segment_close(seg);
    free(img);
}
END_TEST

START_TEST(test_compact_and_crash)
{
    char data[PATH_MAX], dir[PATH_MAX];
    struct sl_segment_opts o;
    struct sl_segment_stats st;
    struct sl_segment *seg;
    struct sl_segment_recovery rec;
    struct sl_error err = {0, ""};
    struct mrec m[1000];
    char names[5][PATH_MAX];
    unsigned char *imgs[5];
    size_t lens[5], n = 0;
    int nf = 0;

    new_data_dir(data, "compact");
    view_dir(dir, data);
    memset(&o, 0, sizeof(o));
    o.block_bytes = 512;
    o.compact_min_files = 4;
    seg = open_seg(data, &o, NULL);
    ck_assert_int_eq(sl_segment_compact(seg, &err), 0); /* nothing to merge */
    for (int f = 0; f < 5; f++) {
        for (int i = 0; i < 200; i++, n++) {
            char k[8];
            snprintf(k, sizeof(k), "q%d", (int)(rnd() % 30));
            mk(&m[n], k, (int64_t)(rnd() % 100), n + 1);
            append_m(seg, &m[n]);
        }
        ck_assert_int_eq(seal_ok(seg), 1);
    }
    qsort(m, n, sizeof(m[0]), mrec_cmp);
    /* keep copies of the inputs to recreate the crash state */
    {
        DIR *d = opendir(dir);
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strncmp(de->d_name, "sealed-", 7) != 0)
                continue;
            pathf(names[nf], "%s/%s", dir, de->d_name);
            imgs[nf] = slurp(names[nf], &lens[nf]);
            nf++;
        }
        closedir(d);
    }
    ck_assert_int_eq(nf, 5);

    /* an iterator opened before compaction keeps its snapshot */
    {
        struct sl_segment_iter *it = NULL;
        struct sl_segment_record r;
        size_t c = 0;
        int rc;
        ck_assert_int_eq(sl_segment_iter_open(seg, NULL, &it, &err), 0);
        ck_assert_int_eq(sl_segment_compact(seg, &err), 1);
        while ((rc = sl_segment_iter_next(it, &r, &err)) == 1)
            c++;
        ck_assert_int_eq(rc, 0);
        ck_assert_uint_eq(c, n);
        sl_segment_iter_destroy(it);
    }
    sl_segment_stats(seg, &st);
    ck_assert_uint_eq(st.sealed_files, 1);
    ck_assert_uint_eq(st.sealed_records, n);
    ck_assert_int_eq(count_files(dir, "sealed-"), 1);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, n), n);
    ck_assert_int_eq(sl_segment_compact(seg, &err), 0); /* one file left: nothing to do */
    sl_segment_close(seg);

    /* crash after the output was renamed, before the inputs were removed */
    for (int i = 0; i < nf; i++)
        spit(names[i], imgs[i], lens[i]);
    seg = open_seg(data, &o, &rec);
    ck_assert_uint_eq(rec.removed_superseded, 5);
    ck_assert_int_eq(count_files(dir, "sealed-"), 1);
    ck_assert_uint_eq(expect_iter(seg, NULL, m, n), n);
    sl_segment_close(seg);

    /* crash before the rename: output still a temp file, inputs intact */
    {
        char out[PATH_MAX], tmp[PATH_MAX];
        size_t olen;
        unsigned char *oimg;
        ck_assert_int_eq(find_file(dir, "sealed-", out), 1);
        oimg = slurp(out, &olen);
        pathf(tmp, "%s.tmp", out);
        unlink(out);
        spit(tmp, oimg, olen);
        for (int i = 0; i < nf; i++)
            spit(names[i], imgs[i], lens[i]);
        seg = open_seg(data, &o, &rec);
        ck_assert_uint_eq(rec.removed_tmp, 1);
        ck_assert_int_eq(count_files(dir, "sealed-"), 5);
        ck_assert_uint_eq(expect_iter(seg, NULL, m, n), n);
        sl_segment_close(seg);
        free(oimg);
    }

    /* a bad input block: compaction fails with SL_ECORRUPT and changes nothing */
    flip_byte(names[2], lens[2] / 3);
    seg = open_seg(data, &o, NULL);
    ck_assert_int_eq(sl_segment_compact(seg, &err), SL_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "block"));
    ck_assert_int_eq(count_files(dir, "sealed-"), 5);
    ck_assert_int_eq(count_tmp(dir), 0);
    sl_segment_close(seg);
    for (int i = 0; i < nf; i++)
        free(imgs[i]);
}
END_TEST

START_TEST(test_thresholds)
{
    char data[PATH_MAX], dir[PATH_MAX];
    struct sl_segment_opts o;
    struct sl_segment *seg;
    struct sl_error err = {0, ""};
    struct mrec m;
    struct timespec ts;
    int64_t now;

    new_data_dir(data, "thresh");
    view_dir(dir, data);
    memset(&o, 0, sizeof(o));
    o.seal_bytes = 4096;
    o.seal_age_ns = INT64_C(3600) * 1000000000;
    seg = open_seg(data, &o, NULL);
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    ck_assert_int_eq(sl_segment_seal_due(seg, now), 0); /* empty */
    mk(&m, "a", 1, 1);
    append_m(seg, &m);
    sync_ok(seg);
    ck_assert_int_eq(sl_segment_seal_due(seg, now), 0);
    ck_assert_int_eq(sl_segment_maybe_seal(seg, now, &err), 0);
    /* age */
    ck_assert_int_eq(sl_segment_seal_due(seg, now + o.seal_age_ns + 1000000000), 1);
    ck_assert_int_eq(sl_segment_maybe_seal(seg, now + o.seal_age_ns + 1000000000, &err), 1);
    ck_assert_int_eq(count_files(dir, "sealed-"), 1);
    /* size */
    for (uint64_t i = 2; !sl_segment_seal_due(seg, now); i++) {
        ck_assert_uint_lt(i, 1000);
        mk(&m, "b", (int64_t)i, i);
        append_m(seg, &m);
        sync_ok(seg);
    }
    ck_assert_int_eq(sl_segment_maybe_seal(seg, now, &err), 1);
    ck_assert_int_eq(count_files(dir, "sealed-"), 2);
    ck_assert_int_eq(count_files(dir, "active-"), 0);
    sl_segment_close(seg);
}
END_TEST

/* Writes past RLIMIT_FSIZE fail with EFBIG: the failed group is cut back, the handle stays
 * usable, a failed seal leaves the active file and no temp file. The limit is lifted before
 * any assertion (the test framework writes files too). */
static struct rlimit g_saved_fsize;

static void limit_fsize(rlim_t n)
{
    struct rlimit rl;

    getrlimit(RLIMIT_FSIZE, &g_saved_fsize);
    rl = g_saved_fsize;
    rl.rlim_cur = n;
    setrlimit(RLIMIT_FSIZE, &rl);
}

static void unlimit_fsize(void)
{
    setrlimit(RLIMIT_FSIZE, &g_saved_fsize);
}

START_TEST(test_write_failure)
{
    char data[PATH_MAX], dir[PATH_MAX], active[PATH_MAX];
    struct sl_segment *seg;
    struct sl_segment_stats st;
    struct sl_error err = {0, ""};
    struct mrec m[60];
    struct stat sb;
    off_t size0;
    int rc;

    signal(SIGXFSZ, SIG_IGN);
    new_data_dir(data, "wfail");
    view_dir(dir, data);
    seg = open_seg(data, NULL, NULL);
    for (int i = 0; i < 20; i++) {
        mk(&m[i], "a", i, (uint64_t)i);
        append_m(seg, &m[i]);
    }
    sync_ok(seg);
    ck_assert_int_eq(find_file(dir, "active-", active), 1);
    ck_assert_int_eq(stat(active, &sb), 0);
    size0 = sb.st_size;

    /* a group that only partly fits */
    for (int i = 20; i < 40; i++) {
        mk(&m[i], "b", i, (uint64_t)i);
        append_m(seg, &m[i]);
    }
    limit_fsize((rlim_t)size0 + 50);
    rc = sl_segment_sync(seg, &err);
    unlimit_fsize();
    ck_assert_int_eq(rc, SL_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, active));
    ck_assert_int_eq(stat(active, &sb), 0);
    ck_assert_int_eq(sb.st_size, size0);
    sl_segment_stats(seg, &st);
    ck_assert_uint_eq(st.pending_records, 0);
    ck_assert_uint_eq(st.active_records, 20);

    /* still usable */
    mk(&m[20], "c", 99, 99);
    append_m(seg, &m[20]);
    sync_ok(seg);

    /* a seal whose temp file cannot be written changes nothing */
    limit_fsize(100);
    rc = sl_segment_seal(seg, &err);
    unlimit_fsize();
    ck_assert_int_eq(rc, SL_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, ".tmp"));
    ck_assert_int_eq(count_tmp(dir), 0);
    ck_assert_int_eq(count_files(dir, "active-"), 1);
    ck_assert_int_eq(count_files(dir, "sealed-"), 0);
    ck_assert_int_eq(seal_ok(seg), 1);

    /* creating the next active file fails: the group is dropped, nothing is left behind */
    mk(&m[21], "d", 1, 100);
    append_m(seg, &m[21]);
    limit_fsize(20);
    rc = sl_segment_sync(seg, &err);
    unlimit_fsize();
    ck_assert_int_eq(rc, SL_EIO);
    ck_assert_int_eq(count_tmp(dir), 0);
    ck_assert_int_eq(count_files(dir, "active-"), 0);
    mk(&m[21], "d", 2, 101);
    append_m(seg, &m[21]);
    sync_ok(seg);
    sl_segment_close(seg);

    seg = open_seg(data, NULL, NULL);
    qsort(m, 22, sizeof(m[0]), mrec_cmp);
    /* m[0..19] "a", m[20] "c", m[21] "d": the "b" group was never acknowledged */
    ck_assert_uint_eq(expect_iter(seg, NULL, m, 22), 22);
    sl_segment_close(seg);
}
END_TEST

/* The iterator snapshot is independent of later writes and of the handle's lifetime. */
START_TEST(test_snapshot)
{
    char data[PATH_MAX];
    struct sl_segment *seg;
    struct sl_segment_iter *it = NULL;
    struct sl_segment_record r;
    struct sl_error err = {0, ""};
    struct mrec m;
    size_t c = 0;
    int rc;

    new_data_dir(data, "snap");
    seg = open_seg(data, NULL, NULL);
    for (uint64_t i = 0; i < 50; i++) {
        mk(&m, i % 2 ? "x" : "y", (int64_t)i, i);
        append_m(seg, &m);
    }
    sync_ok(seg);
    ck_assert_int_eq(sl_segment_iter_open(seg, NULL, &it, &err), 0);
    for (uint64_t i = 50; i < 80; i++) {
        mk(&m, "w", (int64_t)i, i);
        append_m(seg, &m);
    }
    sync_ok(seg);
    ck_assert_int_eq(seal_ok(seg), 1);
    sl_segment_close(seg);
    while ((rc = sl_segment_iter_next(it, &r, &err)) == 1) {
        ck_assert(((const char *)r.key)[0] != 'w');
        c++;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(c, 50);
    sl_segment_iter_destroy(it);
}
END_TEST

/* A backup copy holds exactly the durable records at the time of the snapshot: sealed files
 * hard-linked, the active file cut at its durable length. */
START_TEST(test_backup_copy)
{
    char data[PATH_MAX], copy[PATH_MAX], dest[PATH_MAX], src[PATH_MAX];
    struct sl_segment *seg;
    struct sl_segment_snap *snap = NULL;
    struct sl_segment_iter *it = NULL;
    struct sl_segment_record r;
    struct sl_error err = {0, ""};
    struct mrec m;
    uint64_t bytes = 0, n = 0;
    int rc, links = 0;

    new_data_dir(data, "backup");
    new_data_dir(copy, "backup-copy");
    seg = open_seg(data, NULL, NULL);
    for (uint64_t i = 0; i < 60; i++) {
        mk(&m, i % 3 ? "a" : "b", (int64_t)i, i);
        append_m(seg, &m);
        if (i == 39) {
            sync_ok(seg);
            ck_assert_int_eq(seal_ok(seg), 1);
        }
    }
    sync_ok(seg);
    mk(&m, "c", 60, 60); /* pending, never synced: not in the copy */
    append_m(seg, &m);
    ck_assert_int_eq(sl_segment_snapshot(seg, &snap, &err), 0);
    sync_ok(seg); /* after the snapshot: not in the copy either */
    ck_assert_int_eq(seal_ok(seg), 1);
    pathf(dest, "%s/offline", copy);
    ck_assert_int_eq(mkdir(dest, 0700), 0);
    pathf(dest, "%s/offline/ws", copy);
    ck_assert_int_eq(mkdir(dest, 0700), 0);
    pathf(dest, "%s/offline/ws/fv", copy);
    ck_assert_int_eq(mkdir(dest, 0700), 0);
    view_dir(src, data);
    ck_assert_msg(sl_segment_snap_write(snap, src, dest, &bytes, &err) == 0, "%s", err.msg);
    sl_segment_snap_free(snap);
    sl_segment_close(seg);
    ck_assert(bytes > 0);
    DIR *d = opendir(dest);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        char p[PATH_MAX];
        pathf(p, "%s/%s", dest, e->d_name);
        if (strncmp(e->d_name, "sealed-", 7) == 0 && stat(p, &st) == 0)
            links += st.st_nlink == 2;
    }
    closedir(d);
    ck_assert_int_eq(links, 1);
    seg = open_seg(copy, NULL, NULL);
    ck_assert_int_eq(sl_segment_iter_open(seg, NULL, &it, &err), 0);
    while ((rc = sl_segment_iter_next(it, &r, &err)) == 1) {
        ck_assert(r.seq < 60);
        n++;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(n, 60);
    sl_segment_iter_destroy(it);
    sl_segment_close(seg);
}
END_TEST

/* Readers on other threads while the writer appends, syncs and seals. */
struct conc {
    struct sl_segment *seg;
    _Atomic int stop;
    _Atomic uint64_t synced;
    _Atomic int bad;
};

static void *reader_main(void *arg)
{
    struct conc *c = arg;

    while (!c->stop) {
        uint64_t before = c->synced, n = 0;
        struct sl_segment_iter *it = NULL;
        struct sl_segment_record r, prev;
        struct sl_error err = {0, ""};
        int rc;

        memset(&prev, 0, sizeof(prev));
        if (sl_segment_iter_open(c->seg, NULL, &it, &err) != 0) {
            c->bad = 1;
            break;
        }
        while ((rc = sl_segment_iter_next(it, &r, &err)) == 1) {
            if (n > 0 && (prev.time_ns > r.time_ns ||
                          (prev.time_ns == r.time_ns && prev.seq >= r.seq)))
                c->bad = 2;
            prev = r;
            n++;
        }
        if (rc != 0 || n < before)
            c->bad = 3;
        sl_segment_iter_destroy(it);
    }
    return NULL;
}

START_TEST(test_concurrent_readers)
{
    char data[PATH_MAX];
    struct sl_segment_opts o;
    struct conc c;
    pthread_t th[2];
    struct mrec m;

    new_data_dir(data, "conc");
    memset(&o, 0, sizeof(o));
    o.seal_bytes = 16 * 1024;
    o.compact_min_files = 3;
    memset(&c, 0, sizeof(c));
    c.seg = open_seg(data, &o, NULL);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader_main, &c), 0);
    for (uint64_t i = 0; i < 20000; i++) {
        struct sl_error err = {0, ""};
        mk(&m, "one", (int64_t)(i / 3), i);
        append_m(c.seg, &m);
        if (i % 50 == 49) {
            sync_ok(c.seg);
            c.synced = i + 1;
            ck_assert_int_ge(sl_segment_maybe_seal(c.seg, 0, &err), 0);
            if (i % 1000 == 999)
                ck_assert_int_ge(sl_segment_compact(c.seg, &err), 0);
        }
    }
    c.stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(c.bad, 0);
    ck_assert_uint_eq(count_iter(c.seg), 20000);
    sl_segment_close(c.seg);
}
END_TEST

/* 100k random records with random syncs, seals, compactions and reopens, checked against a
 * sorted model, with random range and time-bounded reads. */
START_TEST(test_random_model)
{
    enum { N = 100000 };
    char data[PATH_MAX];
    struct sl_segment_opts o;
    struct sl_segment *seg;
    struct mrec *model = calloc(N, sizeof(*model)), *sorted = calloc(N, sizeof(*model));
    struct sl_error err = {0, ""};
    size_t n = 0, synced = 0;
    int reopens = 0, seals = 0, compactions = 0;

    ck_assert_ptr_nonnull(model);
    ck_assert_ptr_nonnull(sorted);
    new_data_dir(data, "random");
    memset(&o, 0, sizeof(o));
    o.seal_bytes = 256 * 1024;
    o.block_bytes = 4096;
    o.compact_min_files = 3;
    o.compact_max_bytes = 2 << 20;
    seg = open_seg(data, &o, NULL);
    while (n < N) {
        size_t group = 1 + (size_t)(rnd() % 300);
        for (size_t i = 0; i < group && n < N; i++, n++) {
            struct mrec *m = &model[n];
            uint64_t kid = rnd() % 3000;
            m->klen = (size_t)(kid % 11);
            for (size_t j = 0; j < m->klen; j++)
                m->key[j] = (unsigned char)((kid * 2654435761u) >> (j * 3));
            m->t = (int64_t)(rnd() % 100000) - 50000;
            m->seq = n;
            append_m(seg, m);
        }
        if (rnd() % 20 == 0) {
            /* a crash before sync: the group is never acknowledged */
            sl_segment_close(seg);
            n = synced;
            seg = open_seg(data, &o, NULL);
            reopens++;
            continue;
        }
        sync_ok(seg);
        synced = n;
        if (sl_segment_maybe_seal(seg, 0, &err) == 1)
            seals++;
        if (rnd() % 10 == 0) {
            int rc = sl_segment_compact(seg, &err);
            ck_assert_msg(rc >= 0, "compact: %s", err.msg);
            compactions += rc;
        }
        if (rnd() % 200 == 0) {
            sl_segment_close(seg);
            seg = open_seg(data, &o, NULL);
            reopens++;
        }
    }
    ck_assert_int_gt(seals, 5);
    ck_assert_int_gt(compactions, 0);
    ck_assert_int_gt(reopens, 0);
    memcpy(sorted, model, n * sizeof(*model));
    qsort(sorted, n, sizeof(*sorted), mrec_cmp);
    ck_assert_uint_eq(expect_iter(seg, NULL, sorted, n), n);
    for (int q = 0; q < 20; q++) {
        struct sl_segment_iter_opts io;
        const struct mrec *a = &sorted[rnd() % n], *b = &sorted[rnd() % n];
        memset(&io, 0, sizeof(io));
        if (mrec_cmp(a, b) > 0) {
            const struct mrec *t = a;
            a = b;
            b = t;
        }
        if (q % 3 != 0) {
            io.key_lo = a->key;
            io.key_lo_len = a->klen;
        }
        if (q % 4 != 0) {
            io.key_hi = b->key;
            io.key_hi_len = b->klen;
        }
        if (q % 2 == 0) {
            io.has_time_max = 1;
            io.time_max = (int64_t)(rnd() % 100000) - 50000;
        }
        expect_iter(seg, &io, sorted, n);
    }
    sl_segment_close(seg);
    /* and once more from disk */
    seg = open_seg(data, &o, NULL);
    ck_assert_uint_eq(expect_iter(seg, NULL, sorted, n), n);
    sl_segment_close(seg);
    free(model);
    free(sorted);
}
END_TEST

static Suite *segment_suite(void)
{
    Suite *s = suite_create("segment");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_crc32c_vectors);
    tcase_add_test(tc, test_bad_names);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_limits_and_lock);
    tcase_add_test(tc, test_torn_tail_every_offset);
    tcase_add_test(tc, test_torn_any_length);
    tcase_add_test(tc, test_corrupt_middle);
    tcase_add_test(tc, test_seal_and_iterate);
    tcase_add_test(tc, test_rotate_then_seal_elsewhere);
    tcase_add_test(tc, test_seek_across_blocks);
    tcase_add_test(tc, test_corrupt_sealed_block);
    tcase_add_test(tc, test_crash_during_seal);
    tcase_add_test(tc, test_two_actives_after_crash);
    tcase_add_test(tc, test_compact_and_crash);
    tcase_add_test(tc, test_thresholds);
    tcase_add_test(tc, test_write_failure);
    tcase_add_test(tc, test_snapshot);
    tcase_add_test(tc, test_backup_copy);
    tcase_add_test(tc, test_concurrent_readers);
    tcase_add_test(tc, test_random_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    const char *seed = getenv("SEGMENT_TEST_SEED");
    SRunner *sr;
    int failed;

    if (base == NULL || *base == '\0')
        base = "/tmp";
    snprintf(g_root, sizeof(g_root), "%s/sl_segment_test.XXXXXX", base);
    if (mkdtemp(g_root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    if (seed != NULL)
        rng_state = strtoull(seed, NULL, 0) | 1;
    sr = srunner_create(segment_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    nftw(g_root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return failed == 0 ? 0 : 1;
}
