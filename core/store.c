/* Write batches and the writer thread: group commit over any online store. */
#include "store.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "metrics.h"

void sl_batch_put(struct sl_batch *b, const void *k, size_t klen, const void *v, size_t vlen)
{
    sl_buf_putc(&b->ops, 'P');
    sl_buf_lenstr(&b->ops, k, klen);
    sl_buf_lenstr(&b->ops, v, vlen);
    b->count++;
}

void sl_batch_delete(struct sl_batch *b, const void *k, size_t klen)
{
    sl_buf_putc(&b->ops, 'D');
    sl_buf_lenstr(&b->ops, k, klen);
    b->count++;
}

void sl_batch_reset(struct sl_batch *b)
{
    sl_buf_reset(&b->ops);
    b->ops.oom = 0;
    b->count = 0;
}

void sl_batch_free(struct sl_batch *b)
{
    sl_buf_free(&b->ops);
    b->count = 0;
}

int sl_batch_each(const struct sl_batch *b,
                  int (*fn)(void *arg, int op, const char *k, size_t kl, const char *v, size_t vl),
                  void *arg)
{
    struct sl_cursor c = {(const unsigned char *)b->ops.p, b->ops.len};
    while (c.left > 0) {
        const void *opp;
        const char *k, *v = NULL;
        size_t kl, vl = 0;
        if (sl_cur_bytes(&c, 1, &opp) < 0 || sl_cur_lenstr(&c, &k, &kl) < 0)
            return SL_ECORRUPT;
        int op = *(const unsigned char *)opp;
        if (op == 'P' && sl_cur_lenstr(&c, &v, &vl) < 0)
            return SL_ECORRUPT;
        int rc = fn(arg, op, k, kl, v, vl);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void sl_store_close(struct sl_store *s)
{
    if (s && s->ops && s->ops->close)
        s->ops->close(s->ctx);
    if (s) {
        s->ops = NULL;
        s->ctx = NULL;
    }
}

/* ---- writer ---- */

struct call {
    int (*fn)(void *arg, struct sl_store *s);
    void *arg;
    int result;
    int done;
    struct call *next;
};

struct sl_writer {
    struct sl_store *store;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* work arrived or stop */
    pthread_cond_t called;   /* a call finished */
    struct sl_commit *head, *tail;
    size_t queued, max_queue, group_max;
    struct call *calls;
    int stopping;
    sl_writer_flush_fn flush;
    sl_writer_after_fn after;
    void *hook_arg;
    struct sl_batch batch;
    struct sl_writer_stats stats;
    /* the flusher thread runs the flush hook while the writer makes its synced write, so a
     * group waits for the slower of the two syncs rather than for both in turn */
    pthread_t flusher;
    int flusher_started;
    pthread_mutex_t fmu;
    pthread_cond_t fcv;
    int fwant, fdone, fstop, frc;
    struct sl_error ferr;
};

static void *flusher_main(void *arg)
{
    struct sl_writer *w = arg;
    pthread_mutex_lock(&w->fmu);
    for (;;) {
        while (!w->fwant && !w->fstop)
            pthread_cond_wait(&w->fcv, &w->fmu);
        if (!w->fwant)
            break;
        w->fwant = 0;
        pthread_mutex_unlock(&w->fmu);
        struct sl_error err = {0};
        int rc = w->flush(w->hook_arg, &err);
        pthread_mutex_lock(&w->fmu);
        w->frc = rc;
        w->ferr = err;
        w->fdone = 1;
        pthread_cond_broadcast(&w->fcv);
    }
    pthread_mutex_unlock(&w->fmu);
    return NULL;
}

/* The flush hook and one synced write of the store, at the same time when the flusher
 * runs. Both must succeed. */
static int sync_group(struct sl_writer *w, struct sl_error *err)
{
    if (!w->flush)
        return sl_store_write(w->store, &w->batch, 1, err);
    if (!w->flusher_started) {
        int rc = w->flush(w->hook_arg, err);
        return rc ? rc : sl_store_write(w->store, &w->batch, 1, err);
    }
    pthread_mutex_lock(&w->fmu);
    w->fdone = 0;
    w->fwant = 1;
    pthread_cond_broadcast(&w->fcv);
    pthread_mutex_unlock(&w->fmu);
    int rc = sl_store_write(w->store, &w->batch, 1, err);
    pthread_mutex_lock(&w->fmu);
    while (!w->fdone)
        pthread_cond_wait(&w->fcv, &w->fmu);
    if (rc == 0 && w->frc != 0) {
        rc = w->frc;
        *err = w->ferr;
    }
    pthread_mutex_unlock(&w->fmu);
    return rc;
}

static void run_calls(struct sl_writer *w, struct call *c)
{
    while (c) {
        struct call *next = c->next;
        int r = c->fn(c->arg, w->store);
        pthread_mutex_lock(&w->mu);
        c->result = r;
        c->done = 1;
        pthread_cond_broadcast(&w->called);
        pthread_mutex_unlock(&w->mu);
        c = next;
    }
}

#define SL_WRITER_MAX_CONFLICTS 64

/* The store's rmw_begin when its ops table has one (ABI 1.1), else NULL. */
static int (*store_rmw_begin(const struct sl_store *s))(void *, struct sl_error *)
{
    const struct sl_store_ops *o = s->ops;
    if (o->struct_size < offsetof(struct sl_store_ops, rmw_begin) + sizeof(o->rmw_begin))
        return NULL;
    return o->rmw_begin;
}

int sl_store_shared(const struct sl_store *s)
{
    return store_rmw_begin(s) != NULL;
}

/* Applies one group: each commit writes unsynced (so later commits of the group read it);
 * the flush hook makes the group's other state durable, then one synced write makes the
 * online part durable, before any ack. */
static void run_group(struct sl_writer *w, struct sl_commit *group)
{
    struct sl_error err = {0};
    struct sl_commit *ok_head = NULL, **ok_tail = &ok_head;
    size_t nok = 0;

    int (*rmw_begin)(void *, struct sl_error *) = store_rmw_begin(w->store);
    for (struct sl_commit *c = group, *next; c; c = next) {
        next = c->next;
        c->next = NULL;
        int rc, tries = 0;
        do { /* a shared store: read, merge and write again while another process won */
            sl_batch_reset(&w->batch);
            err.code = 0;
            err.msg[0] = 0;
            rc = rmw_begin ? rmw_begin(w->store->ctx, &err) : 0;
            if (rc == 0)
                rc = c->apply(c, w->store, &w->batch, &err);
            if (rc == 0 && w->batch.ops.oom)
                rc = sl_error_set(&err, SL_ENOMEM, "out of memory building a write batch");
            if (rc == 0 && w->batch.count > 0)
                rc = sl_store_write(w->store, &w->batch, 0, &err);
            if (rc == SL_ECONFLICT)
                w->stats.conflicts++;
        } while (rc == SL_ECONFLICT && ++tries < SL_WRITER_MAX_CONFLICTS);
        if (rc == SL_ECONFLICT)
            rc = sl_error_set(&err, SL_ESTORE, "gave up after %d write conflicts with other "
                              "nodes on the same entities", tries);
        if (rc != 0) {
            w->stats.failures++;
            c->done(c, rc, &err);
            continue;
        }
        *ok_tail = c;
        ok_tail = &c->next;
        nok++;
    }
    if (!ok_head) {
        if (rmw_begin) { /* end the last read-modify-write: later writes are unconditional */
            sl_batch_reset(&w->batch);
            sl_store_write(w->store, &w->batch, 0, &err);
        }
        return;
    }

    sl_batch_reset(&w->batch);
    err.code = 0;
    err.msg[0] = 0;
    uint64_t t0 = sl_metrics_now_ns();
    int rc = sync_group(w, &err);
    sl_metrics_group_commit(nok, sl_metrics_now_ns() - t0);
    if (rc != 0)
        sl_err("group commit of %zu requests failed: %s", nok, err.msg);
    w->stats.groups++;
    for (struct sl_commit *c = ok_head, *next; c; c = next) {
        next = c->next;
        c->next = NULL;
        if (rc == 0)
            w->stats.commits++;
        else
            w->stats.failures++;
        c->done(c, rc, rc == 0 ? NULL : &err);
    }
    if (w->after)
        w->after(w->hook_arg);
}

static void *writer_main(void *arg)
{
    struct sl_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->calls && !w->stopping)
            pthread_cond_wait(&w->wake, &w->mu);
        struct call *calls = w->calls;
        w->calls = NULL;
        struct sl_commit *group = w->head, *last = NULL;
        size_t n = 0;
        for (struct sl_commit *c = w->head; c && n < w->group_max; c = c->next) {
            last = c;
            n++;
        }
        if (last) {
            w->head = last->next;
            if (!w->head)
                w->tail = NULL;
            last->next = NULL;
            w->queued -= n;
        } else {
            group = NULL;
        }
        if (!group && !calls && w->stopping)
            break;
        pthread_mutex_unlock(&w->mu);
        if (calls)
            run_calls(w, calls);
        if (group)
            run_group(w, group);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct sl_writer *sl_writer_start(struct sl_store *s, size_t max_queue, size_t group_max,
                                  sl_writer_flush_fn flush, sl_writer_after_fn after,
                                  void *hook_arg, struct sl_error *err)
{
    struct sl_writer *w = calloc(1, sizeof(*w));
    if (!w) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    w->store = s;
    w->max_queue = max_queue ? max_queue : 1;
    w->group_max = group_max ? group_max : 1;
    w->flush = flush;
    w->after = after;
    w->hook_arg = hook_arg;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->called, NULL);
    pthread_mutex_init(&w->fmu, NULL);
    pthread_cond_init(&w->fcv, NULL);
    w->flusher_started = flush && pthread_create(&w->flusher, NULL, flusher_main, w) == 0;
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        sl_error_set(err, SL_EIO, "cannot start the writer thread");
        goto fail;
    }
    w->started = 1;
    return w;
fail:
    sl_writer_stop(w);
    return NULL;
}

int sl_writer_submit(struct sl_writer *w, struct sl_commit *c)
{
    int rc = 0;
    c->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        rc = SL_EINVAL;
    } else if (w->queued >= w->max_queue) {
        rc = SL_EBUSY;
    } else {
        if (w->tail)
            w->tail->next = c;
        else
            w->head = c;
        w->tail = c;
        w->queued++;
        pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int sl_writer_call(struct sl_writer *w, int (*fn)(void *arg, struct sl_store *s), void *arg)
{
    struct call c = {fn, arg, 0, 0, NULL};
    pthread_mutex_lock(&w->mu);
    struct call **pp = &w->calls;
    while (*pp)
        pp = &(*pp)->next;
    *pp = &c;
    pthread_cond_signal(&w->wake);
    while (!c.done)
        pthread_cond_wait(&w->called, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return c.result;
}

void sl_writer_stop(struct sl_writer *w)
{
    if (!w)
        return;
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->stopping = 1;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    if (w->flusher_started) {
        pthread_mutex_lock(&w->fmu);
        w->fstop = 1;
        pthread_cond_broadcast(&w->fcv);
        pthread_mutex_unlock(&w->fmu);
        pthread_join(w->flusher, NULL);
    }
    pthread_mutex_destroy(&w->fmu);
    pthread_cond_destroy(&w->fcv);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->called);
    sl_batch_free(&w->batch);
    free(w);
}

void sl_writer_stats(struct sl_writer *w, struct sl_writer_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    out->queued = w->queued;
    pthread_mutex_unlock(&w->mu);
}
