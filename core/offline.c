/* Segment handles by (workspace, view incarnation), opened on first use and kept open until
 * the incarnation is deleted. */
#include "offline.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "segment.h"
#include "timeutil.h"

struct handle {
    char *ws, *view; /* view: the directory name, `<view>@<storage prefix in hex>` */
    struct sl_segment *seg;
    int dirty;
    int refs;        /* the table's one, plus one per user outside the table lock */
};

/* A closed active file waiting for its seal on the sealing thread. */
struct seal_job {
    struct seal_job *next;
    struct handle *h;
    uint64_t gen, size;
};

struct sl_offline {
    const char *dir;
    pthread_mutex_t mu;   /* guards the table (not the segments, which are thread-aware) */
    pthread_cond_t cv;    /* a handle's refs dropped */
    size_t n, cap;
    struct handle **h;    /* handles never move once opened */
    /* the sealing thread: sorting a full active file into a sealed segment takes long
     * enough (hundreds of ms for 64 MiB) that the writer must not wait for it */
    pthread_t sealer;
    int sealer_started, stopping;
    pthread_mutex_t seal_mu;
    pthread_cond_t seal_cv;
    struct seal_job *jobs, **jobs_tail;
};

static void handle_free(struct handle *h)
{
    sl_segment_close(h->seg);
    free(h->ws);
    free(h->view);
    free(h);
}

/* Gives back a reference taken by get (or for a seal job or a compaction). */
static void put(struct sl_offline *o, struct handle *h)
{
    pthread_mutex_lock(&o->mu);
    h->refs--;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

/* The directory name of a view incarnation: the view name, '@', its storage prefix (the
 * first 8 bytes of every entity key it stores) in hex. */
static int dir_name(const char *view, const void *key, size_t klen, char *out, size_t cap,
                    struct sl_error *err)
{
    const unsigned char *k = key;
    if (!key || klen < 8)
        return sl_error_set(err, SL_EINVAL, "offline keys start with an 8-byte view prefix");
    int n = snprintf(out, cap, "%s@%02x%02x%02x%02x%02x%02x%02x%02x", view, k[0], k[1], k[2],
                     k[3], k[4], k[5], k[6], k[7]);
    if (n < 0 || (size_t)n >= cap)
        return sl_error_set(err, SL_EINVAL, "feature view name too long");
    return 0;
}

static void *sealer_main(void *arg)
{
    struct sl_offline *o = arg;
    pthread_mutex_lock(&o->seal_mu);
    for (;;) {
        while (!o->jobs && !o->stopping)
            pthread_cond_wait(&o->seal_cv, &o->seal_mu);
        struct seal_job *j = o->jobs;
        if (!j)
            break; /* stopping, and every job done */
        o->jobs = j->next;
        if (!o->jobs)
            o->jobs_tail = &o->jobs;
        pthread_mutex_unlock(&o->seal_mu);
        struct sl_error err = {0};
        if (sl_segment_seal_rotated(j->h->seg, j->gen, j->size, &err) < 0)
            sl_err("offline: sealing %s/%s failed: %s", j->h->ws, j->h->view, err.msg);
        put(o, j->h);
        free(j);
        pthread_mutex_lock(&o->seal_mu);
    }
    pthread_mutex_unlock(&o->seal_mu);
    return NULL;
}

struct sl_offline *sl_offline_new(const char *data_dir)
{
    struct sl_offline *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->dir = data_dir;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    pthread_mutex_init(&o->seal_mu, NULL);
    pthread_cond_init(&o->seal_cv, NULL);
    o->jobs_tail = &o->jobs;
    o->sealer_started = pthread_create(&o->sealer, NULL, sealer_main, o) == 0;
    return o;
}

void sl_offline_free(struct sl_offline *o)
{
    if (!o)
        return;
    if (o->sealer_started) { /* the seals queued finish first */
        pthread_mutex_lock(&o->seal_mu);
        o->stopping = 1;
        pthread_cond_signal(&o->seal_cv);
        pthread_mutex_unlock(&o->seal_mu);
        pthread_join(o->sealer, NULL);
    }
    pthread_mutex_destroy(&o->seal_mu);
    pthread_cond_destroy(&o->seal_cv);
    for (size_t i = 0; i < o->n; i++)
        handle_free(o->h[i]);
    free(o->h);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

/* The handle of directory `view` of ws, opened (created when create is set) on first use,
 * with a reference the caller gives back with put. */
static struct handle *get(struct sl_offline *o, const char *ws, const char *view, int create,
                          struct sl_error *err)
{
    struct handle *h = NULL;
    pthread_mutex_lock(&o->mu);
    for (size_t i = 0; i < o->n && !h; i++)
        if (strcmp(o->h[i]->ws, ws) == 0 && strcmp(o->h[i]->view, view) == 0)
            h = o->h[i];
    if (h) {
        h->refs++;
        pthread_mutex_unlock(&o->mu);
        return h;
    }
    if (!create) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/offline/%s/%s", o->dir, ws, view);
        if (stat(path, &st) != 0) {
            pthread_mutex_unlock(&o->mu);
            sl_error_set(err, SL_ENOTFOUND, "feature view `%s` has no offline records", view);
            return NULL;
        }
    }
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        struct handle **g = realloc(o->h, cap * sizeof(*g));
        if (!g) {
            pthread_mutex_unlock(&o->mu);
            sl_error_set(err, SL_ENOMEM, "out of memory");
            return NULL;
        }
        o->h = g;
        o->cap = cap;
    }
    struct sl_segment *seg = NULL;
    struct sl_segment_recovery rec;
    if (sl_segment_open(o->dir, ws, view, NULL, &seg, &rec, err) != 0) {
        pthread_mutex_unlock(&o->mu);
        return NULL;
    }
    if (rec.msg[0])
        sl_warn("offline: %s", rec.msg);
    h = calloc(1, sizeof(*h));
    if (h)
        *h = (struct handle){strdup(ws), strdup(view), seg, 0, 2};
    if (!h || !h->ws || !h->view) {
        if (h) {
            free(h->ws);
            free(h->view);
            free(h);
        }
        sl_segment_close(seg);
        pthread_mutex_unlock(&o->mu);
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    o->h[o->n++] = h;
    pthread_mutex_unlock(&o->mu);
    return h;
}

int sl_offline_append(struct sl_offline *o, const char *ws, const char *view, const void *key,
                      size_t klen, int64_t ts, uint64_t seq, const void *payload, size_t plen,
                      struct sl_error *err)
{
    char dir[600];
    if (dir_name(view, key, klen, dir, sizeof(dir), err) != 0)
        return err->code;
    struct handle *h = get(o, ws, dir, 1, err);
    if (!h)
        return err->code ? err->code : SL_EIO;
    struct sl_segment_record r = {key, klen, ts, seq, payload, plen};
    int rc = sl_segment_append(h->seg, &r, err);
    if (rc == 0)
        h->dirty = 1;
    put(o, h);
    return rc;
}

/* The table lock is held across the loop: the array may move when another thread opens a
 * view; a reader opening one waits for the fsyncs. */
int sl_offline_sync(struct sl_offline *o, struct sl_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&o->mu);
    for (size_t i = 0; i < o->n; i++) {
        struct handle *h = o->h[i];
        if (!h->dirty)
            continue;
        h->dirty = 0;
        int r = sl_segment_sync(h->seg, err);
        if (r != 0 && rc == 0)
            rc = r;
    }
    pthread_mutex_unlock(&o->mu);
    return rc;
}

void sl_offline_maintain(struct sl_offline *o)
{
    int64_t now = sl_now_ns();
    pthread_mutex_lock(&o->mu);
    for (size_t i = 0; i < o->n; i++) {
        struct handle *h = o->h[i];
        struct sl_error err = {0};
        struct seal_job *j;
        if (!sl_segment_seal_due(h->seg, now))
            continue;
        if (!o->sealer_started || !(j = calloc(1, sizeof(*j)))) { /* seal here, then */
            if (sl_segment_seal(h->seg, &err) < 0)
                sl_err("offline: sealing %s/%s failed: %s", h->ws, h->view, err.msg);
            continue;
        }
        int rc = sl_segment_rotate(h->seg, &j->gen, &j->size, &err);
        if (rc != 1) {
            if (rc < 0)
                sl_err("offline: sealing %s/%s failed: %s", h->ws, h->view, err.msg);
            free(j);
            continue;
        }
        j->h = h;
        h->refs++; /* given back by the sealing thread */
        pthread_mutex_lock(&o->seal_mu);
        *o->jobs_tail = j;
        o->jobs_tail = &j->next;
        pthread_cond_signal(&o->seal_cv);
        pthread_mutex_unlock(&o->seal_mu);
    }
    pthread_mutex_unlock(&o->mu);
}

int sl_offline_iter(struct sl_offline *o, const char *ws, const char *view,
                    const struct sl_segment_iter_opts *opts, struct sl_segment_iter **out,
                    struct sl_error *err)
{
    char dir[600];
    if (dir_name(view, opts ? opts->key_lo : NULL, opts ? opts->key_lo_len : 0, dir, sizeof(dir),
                 err) != 0)
        return err->code;
    struct handle *h = get(o, ws, dir, 0, err);
    if (!h)
        return err->code ? err->code : SL_ENOTFOUND;
    int rc = sl_segment_iter_open(h->seg, opts, out, err);
    put(o, h);
    return rc;
}

void sl_offline_compact(struct sl_offline *o)
{
    pthread_mutex_lock(&o->mu);
    size_t n = o->n;
    struct handle **hs = n ? malloc(n * sizeof(*hs)) : NULL;
    for (size_t i = 0; hs && i < n; i++) {
        hs[i] = o->h[i];
        hs[i]->refs++;
    }
    pthread_mutex_unlock(&o->mu);
    for (size_t i = 0; hs && i < n; i++) {
        struct sl_error err = {0};
        int rc;
        while ((rc = sl_segment_compact(hs[i]->seg, &err)) == 1)
            ; /* merge every qualifying run */
        if (rc < 0)
            sl_err("offline: compacting %s/%s failed: %s", hs[i]->ws, hs[i]->view, err.msg);
        put(o, hs[i]);
    }
    free(hs);
}

/* Removes every file of directory path (no subdirectories are expected), then the directory;
 * adds the bytes of the files to *bytes. */
static int remove_dir(const char *path, uint64_t *bytes, struct sl_error *err)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : sl_error_set(err, SL_EIO, "opendir %s: %s", path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char p[4096];
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            *bytes += (uint64_t)st.st_size;
        if (unlink(p) != 0 && errno != ENOENT)
            rc = sl_error_set(err, SL_EIO, "unlink %s: %s", p, strerror(errno));
    }
    closedir(d);
    if (rc == 0 && rmdir(path) != 0 && errno != ENOENT)
        rc = sl_error_set(err, SL_EIO, "rmdir %s: %s", path, strerror(errno));
    return rc;
}

uint64_t sl_offline_bytes(struct sl_offline *o, const char *ws, const char *view,
                          const unsigned char prefix[8])
{
    char dir[600], path[4096];
    struct sl_error err = {0};
    uint64_t bytes = 0;
    if (dir_name(view, prefix, 8, dir, sizeof(dir), &err) != 0)
        return 0;
    snprintf(path, sizeof(path), "%s/offline/%s/%s", o->dir, ws, dir);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char p[4400];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode))
            bytes += (uint64_t)st.st_size;
    }
    if (d)
        closedir(d);
    return bytes;
}

int sl_offline_drop(struct sl_offline *o, const char *ws, const char *view,
                    const unsigned char prefix[8], uint64_t *bytes, struct sl_error *err)
{
    char dir[600];
    if (dir_name(view, prefix, 8, dir, sizeof(dir), err) != 0)
        return err->code;
    return sl_offline_drop_dir(o, ws, dir, bytes, err);
}

int sl_offline_drop_dir(struct sl_offline *o, const char *ws, const char *dir, uint64_t *bytes,
                        struct sl_error *err)
{
    char path[4096];
    struct handle *h = NULL;
    pthread_mutex_lock(&o->mu);
    for (size_t i = 0; i < o->n && !h; i++) {
        if (strcmp(o->h[i]->ws, ws) == 0 && strcmp(o->h[i]->view, dir) == 0) {
            h = o->h[i];
            o->h[i] = o->h[--o->n];
        }
    }
    while (h && h->refs > 1) /* a read, seal or compaction still uses it */
        pthread_cond_wait(&o->cv, &o->mu);
    if (h)
        handle_free(h);
    pthread_mutex_unlock(&o->mu);
    snprintf(path, sizeof(path), "%s/offline/%s/%s", o->dir, ws, dir);
    return remove_dir(path, bytes, err);
}

void sl_offline_drop_workspace_dir(struct sl_offline *o, const char *ws)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/offline/%s", o->dir, ws);
    rmdir(path); /* only when empty: a re-created workspace may already use it */
}

/* ---- consistent copies (backup) ---- */

struct osnap {
    char *ws, *dir, *src;
    struct sl_segment_snap *s;
};

struct sl_offline_snap {
    size_t n, cap;
    struct osnap *v;
};

void sl_offline_snap_free(struct sl_offline_snap *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].ws);
        free(s->v[i].dir);
        free(s->v[i].src);
        sl_segment_snap_free(s->v[i].s);
    }
    free(s->v);
    free(s);
}

/* Snapshots directory dir of ws (opening its handle if needed) into s. */
static int snap_one(struct sl_offline *o, struct sl_offline_snap *s, const char *ws,
                    const char *dir, struct sl_error *err)
{
    struct handle *h = get(o, ws, dir, 0, err);
    if (!h)
        return err->code ? err->code : SL_EIO;
    int rc = 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct osnap *g = realloc(s->v, cap * sizeof(*g));
        if (!g)
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        else {
            s->v = g;
            s->cap = cap;
        }
    }
    if (rc == 0) {
        struct osnap *d = &s->v[s->n];
        memset(d, 0, sizeof(*d));
        d->ws = strdup(ws);
        d->dir = strdup(dir);
        d->src = strdup(sl_segment_dir(h->seg));
        s->n++;
        rc = !d->ws || !d->dir || !d->src ? sl_error_set(err, SL_ENOMEM, "out of memory")
                                          : sl_segment_snapshot(h->seg, &d->s, err);
    }
    put(o, h);
    return rc;
}

int sl_offline_snapshot(struct sl_offline *o, struct sl_offline_snap **out, struct sl_error *err)
{
    char root[4096];
    struct sl_offline_snap *s = calloc(1, sizeof(*s));
    int rc = s ? 0 : sl_error_set(err, SL_ENOMEM, "out of memory");
    snprintf(root, sizeof(root), "%s/offline", o->dir);
    DIR *d = rc == 0 ? opendir(root) : NULL;
    struct dirent *e;
    while (d && rc == 0 && (e = readdir(d)) != NULL) {
        char wpath[4400];
        if (e->d_name[0] == '.')
            continue;
        snprintf(wpath, sizeof(wpath), "%s/%s", root, e->d_name);
        DIR *w = opendir(wpath);
        struct dirent *v;
        while (w && rc == 0 && (v = readdir(w)) != NULL) {
            char vpath[5100];
            struct stat st;
            snprintf(vpath, sizeof(vpath), "%s/%s", wpath, v->d_name);
            if (v->d_name[0] != '.' && stat(vpath, &st) == 0 && S_ISDIR(st.st_mode))
                rc = snap_one(o, s, e->d_name, v->d_name, err);
        }
        if (w)
            closedir(w);
    }
    if (d)
        closedir(d);
    if (rc != 0) {
        sl_offline_snap_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int mkdir_one(const char *path, struct sl_error *err)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return sl_error_set(err, SL_EIO, "mkdir %s: %s", path, strerror(errno));
    return 0;
}

int sl_offline_snap_write(struct sl_offline_snap *s, const char *dest_data_dir, uint64_t *dirs,
                          uint64_t *bytes, struct sl_error *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/offline", dest_data_dir);
    int rc = mkdir_one(path, err);
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        snprintf(path, sizeof(path), "%s/offline/%s", dest_data_dir, s->v[i].ws);
        rc = mkdir_one(path, err);
        snprintf(path, sizeof(path), "%s/offline/%s/%s", dest_data_dir, s->v[i].ws, s->v[i].dir);
        if (rc == 0)
            rc = mkdir_one(path, err);
        if (rc == 0)
            rc = sl_segment_snap_write(s->v[i].s, s->v[i].src, path, bytes, err);
        (*dirs)++;
    }
    return rc;
}
