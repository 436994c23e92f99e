/* Segment handles by (workspace, view), opened on first use and kept open. */
#include "offline.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "log.h"
#include "segment.h"
#include "timeutil.h"

struct handle {
    char *ws, *view;
    struct sl_segment *seg;
    int dirty;
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
    for (size_t i = 0; i < o->n; i++) {
        sl_segment_close(o->h[i]->seg);
        free(o->h[i]->ws);
        free(o->h[i]->view);
        free(o->h[i]);
    }
    free(o->h);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

/* The handle of (ws, view), opened (created when create is set) on first use. */
static struct handle *get(struct sl_offline *o, const char *ws, const char *view, int create,
                          struct sl_error *err)
{
    struct handle *h = NULL;
    pthread_mutex_lock(&o->mu);
    for (size_t i = 0; i < o->n && !h; i++)
        if (strcmp(o->h[i]->ws, ws) == 0 && strcmp(o->h[i]->view, view) == 0)
            h = o->h[i];
    if (h) {
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
        *h = (struct handle){strdup(ws), strdup(view), seg, 0};
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
    struct handle *h = get(o, ws, view, 1, err);
    if (!h)
        return err->code ? err->code : SL_EIO;
    struct sl_segment_record r = {key, klen, ts, seq, payload, plen};
    int rc = sl_segment_append(h->seg, &r, err);
    if (rc == 0)
        h->dirty = 1;
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
    struct handle *h = get(o, ws, view, 0, err);
    if (!h)
        return err->code ? err->code : SL_ENOTFOUND;
    return sl_segment_iter_open(h->seg, opts, out, err);
}

void sl_offline_compact(struct sl_offline *o)
{
    pthread_mutex_lock(&o->mu);
    size_t n = o->n;
    struct handle **hs = n ? malloc(n * sizeof(*hs)) : NULL;
    if (hs)
        memcpy(hs, o->h, n * sizeof(*hs));
    pthread_mutex_unlock(&o->mu);
    for (size_t i = 0; hs && i < n; i++) {
        struct sl_error err = {0};
        int rc;
        while ((rc = sl_segment_compact(hs[i]->seg, &err)) == 1)
            ; /* merge every qualifying run */
        if (rc < 0)
            sl_err("offline: compacting %s/%s failed: %s", hs[i]->ws, hs[i]->view, err.msg);
    }
    free(hs);
}
