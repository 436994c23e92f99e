/* Job records, the runner thread and the jobs API. */
#include "jobs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "auth.h"
#include "batch.h"
#include "buf.h"
#include "error.h"
#include "http.h"
#include "lifecycle.h"
#include "log.h"
#include "offline.h"
#include "registry.h"
#include "server.h"
#include "store.h"
#include "tiles.h"
#include "timeutil.h"
#include "wcache.h"

struct sched {
    char *key;       /* workspace '/' view id */
    int64_t last;    /* when materialization last ran (or was first seen) */
};

struct sl_jobs {
    struct sl_node *n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started, stopping;
    size_t njobs, cap;
    struct sl_job **jobs;
    size_t nsched;
    struct sched *sched;
    uint64_t counter;
    int64_t last_retention;
    /* test hook, from $SLUICE_TEST_JOB_PAUSE_ROWS (0: off): see sl_job_should_stop */
    uint64_t pause_rows, run_start_rows;
    int paused;
};

#define RETENTION_EVERY (600 * SL_NS_PER_SEC)

static int forget_written(void *arg, struct sl_store *s)
{
    (void)s;
    sl_wcache_clear(arg);
    return 0;
}

/* Deletes aggregation state no read can reach any more (tiles.h) in one workspace, and then
 * empties the writer's cache, which may hold deleted keys. */
static void retain_ws(void *arg, struct sl_ws *ws)
{
    struct sl_jobs *j = arg;
    int64_t now = sl_now_ns();
    int touched = 0;
    for (size_t i = 0; i < ws->nviews; i++) {
        const struct sl_view *v = &ws->views[i];
        size_t deleted = 0;
        struct sl_error err = {0};
        if (!v->agg)
            continue;
        if (sl_tiles_compact(v->agg, v->key, v->nkeys, &j->n->store, now, &deleted, &err) != 0) {
            sl_err("retention: feature view `%s` of `%s`: %s", v->name, ws->name, err.msg);
            touched = 1; /* a part may have been deleted */
        } else if (deleted) {
            __atomic_add_fetch(&j->n->compacted_keys, deleted, __ATOMIC_RELAXED);
            touched = 1;
        }
    }
    if (touched)
        sl_writer_call(j->n->writer, forget_written, j->n->wcache);
}

/* ---- records ---- */

void sl_job_json(const struct sl_job *job, struct sl_buf *out)
{
    char t[SL_TIME_MAXLEN];
    sl_buf_printf(out, "{\"id\":\"%s\",\"kind\":\"%s\",\"workspace\":", job->id, job->kind);
    sl_buf_json_str(out, job->ws, strlen(job->ws));
    sl_buf_puts(out, ",\"featureView\":");
    sl_buf_json_str(out, job->view, strlen(job->view));
    sl_buf_printf(out, ",\"featureViewId\":\"%s\",\"state\":\"%s\"", job->view_id, job->state);
    const int64_t *times[] = {&job->created, &job->started, &job->ended};
    const char *names[] = {"created", "started", "ended"};
    for (int i = 0; i < 3; i++) {
        if (*times[i]) {
            sl_time_format(*times[i], t);
            sl_buf_printf(out, ",\"%s\":\"%s\"", names[i], t);
        } else {
            sl_buf_printf(out, ",\"%s\":null", names[i]);
        }
    }
    sl_buf_printf(out, ",\"rowsRead\":\"%llu\",\"rowsWritten\":\"%llu\",\"rowsRejected\":\"%llu\","
                       "\"rowsFiltered\":\"%llu\",\"error\":",
                  (unsigned long long)job->rows_read, (unsigned long long)job->rows_written,
                  (unsigned long long)job->rows_rejected, (unsigned long long)job->rows_filtered);
    if (job->error)
        sl_buf_json_str(out, job->error, strlen(job->error));
    else
        sl_buf_puts(out, "null");
    sl_buf_puts(out, ",\"firstErrors\":");
    sl_buf_puts(out, job->first_errors ? job->first_errors : "[]");
    sl_buf_puts(out, ",\"checkpoint\":");
    if (job->has_pos) {
        sl_buf_printf(out, "{\"fileIndex\":%zu,\"file\":", job->pos.file_index);
        sl_buf_json_str(out, job->pos.file, strlen(job->pos.file));
        sl_buf_printf(out, ",\"offset\":%llu,\"line\":%llu}", (unsigned long long)job->pos.offset,
                      (unsigned long long)job->pos.line);
    } else {
        sl_buf_puts(out, "null");
    }
    if (strcmp(job->kind, "delete") == 0) {
        sl_buf_printf(out, ",\"keysDeleted\":\"%llu\",\"offlineBytesDeleted\":\"%llu\","
                           "\"deleteCheckpoint\":{\"step\":%d,\"key\":",
                      (unsigned long long)job->rows_written, (unsigned long long)job->bytes_deleted,
                      job->del_phase);
        if (job->del_key)
            sl_buf_json_str(out, job->del_key, strlen(job->del_key));
        else
            sl_buf_puts(out, "null");
        sl_buf_putc(out, '}');
    }
    sl_buf_putc(out, '}');
}

void sl_job_record(const struct sl_job *job, struct sl_buf *key, struct sl_buf *val)
{
    sl_buf_putc(key, SL_KEY_JOB);
    sl_buf_puts(key, job->id);
    sl_job_json(job, val);
}

static int64_t time_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    int64_t ns = 0;
    if (cJSON_IsString(v))
        sl_time_parse(v->valuestring, strlen(v->valuestring), &ns);
    return ns;
}

static uint64_t count_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? strtoull(v->valuestring, NULL, 10) : 0;
}

static void job_free(struct sl_job *job)
{
    if (!job)
        return;
    free(job->ws);
    free(job->view);
    free(job->error);
    free(job->first_errors);
    free(job->del_key);
    free(job);
}

static struct sl_job *job_parse(const char *p, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(p, len);
    struct sl_job *job = calloc(1, sizeof(*job));
    const char *s;
#define STR(k) (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, k)) ? cJSON_GetObjectItemCaseSensitive(o, k)->valuestring : NULL)
    if (!o || !job || !(s = STR("id")) || strlen(s) != 16 || !STR("workspace") || !STR("featureView"))
        goto fail;
    snprintf(job->id, sizeof(job->id), "%s", s);
    snprintf(job->kind, sizeof(job->kind), "%s", STR("kind") ? STR("kind") : "backfill");
    snprintf(job->view_id, sizeof(job->view_id), "%s", STR("featureViewId") ? STR("featureViewId") : "");
    snprintf(job->state, sizeof(job->state), "%s", STR("state") ? STR("state") : "failed");
    const char *ws = STR("workspace"), *view = STR("featureView"), *error = STR("error");
#undef STR
    job->ws = strdup(ws);
    job->view = strdup(view);
    job->error = error ? strdup(error) : NULL;
    job->created = time_of(o, "created");
    job->started = time_of(o, "started");
    job->ended = time_of(o, "ended");
    job->rows_read = count_of(o, "rowsRead");
    job->rows_written = count_of(o, "rowsWritten");
    job->rows_rejected = count_of(o, "rowsRejected");
    job->rows_filtered = count_of(o, "rowsFiltered");
    const cJSON *fe = cJSON_GetObjectItemCaseSensitive(o, "firstErrors");
    job->first_errors = fe ? cJSON_PrintUnformatted(fe) : NULL;
    const cJSON *cp = cJSON_GetObjectItemCaseSensitive(o, "checkpoint");
    if (cJSON_IsObject(cp)) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(cp, "file");
        job->has_pos = 1;
        job->pos.file_index = (size_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(cp, "fileIndex"));
        job->pos.offset = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(cp, "offset"));
        job->pos.line = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(cp, "line"));
        snprintf(job->pos.file, sizeof(job->pos.file), "%s", cJSON_IsString(f) ? f->valuestring : "");
    }
    const cJSON *dc = cJSON_GetObjectItemCaseSensitive(o, "deleteCheckpoint");
    if (cJSON_IsObject(dc)) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(dc, "key");
        job->del_phase = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(dc, "step"));
        job->del_key = cJSON_IsString(k) ? strdup(k->valuestring) : NULL;
        job->bytes_deleted = count_of(o, "offlineBytesDeleted");
    }
    if (!job->ws || !job->view)
        goto fail;
    cJSON_Delete(o);
    return job;
fail:
    cJSON_Delete(o);
    job_free(job);
    return NULL;
}

/* Writes the job record durably. Caller holds j->mu. */
static int persist(struct sl_jobs *j, const struct sl_job *job, struct sl_error *err)
{
    struct sl_buf k = SL_BUF_INIT, v = SL_BUF_INIT;
    struct sl_batch b = {0};
    sl_job_record(job, &k, &v);
    sl_batch_put(&b, k.p, k.len, v.p, v.len);
    int rc = k.oom || v.oom || b.ops.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                                          : sl_store_write(&j->n->store, &b, 1, err);
    sl_buf_free(&k);
    sl_buf_free(&v);
    sl_batch_free(&b);
    return rc;
}

static int load_job(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct sl_jobs *j = arg;
    struct sl_job *job = job_parse(v, vl);
    if (!job) {
        sl_err("jobs: skipping an unreadable job record");
        return 0;
    }
    if (j->njobs == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 32;
        struct sl_job **g = realloc(j->jobs, cap * sizeof(*g));
        if (!g) {
            job_free(job);
            return SL_ENOMEM;
        }
        j->jobs = g;
        j->cap = cap;
    }
    if (strcmp(job->state, "running") == 0) {
        snprintf(job->state, sizeof(job->state), "queued"); /* resumes from its checkpoint */
        sl_warn("jobs: job %s was running at shutdown; it resumes from its checkpoint", job->id);
    }
    j->jobs[j->njobs++] = job;
    return 0;
}

static struct sl_job *find(struct sl_jobs *j, const char *id)
{
    for (size_t i = 0; i < j->njobs; i++)
        if (strcmp(j->jobs[i]->id, id) == 0)
            return j->jobs[i];
    return NULL;
}

void sl_jobs_lock(struct sl_jobs *j)
{
    pthread_mutex_lock(&j->mu);
}

void sl_jobs_unlock(struct sl_jobs *j)
{
    pthread_mutex_unlock(&j->mu);
}

int sl_job_should_stop(struct sl_jobs *j, const struct sl_job *job)
{
    pthread_mutex_lock(&j->mu);
    /* Test hook: with SLUICE_TEST_JOB_PAUSE_ROWS=N in the server's environment, the first run
     * (in this process) that started below N rows read and has now read N or more waits here
     * until it is cancelled or the server stops, so a test can cancel or kill a job mid-run
     * without racing it. A resumed or retried run past N does not wait. */
    if (j->pause_rows && !j->paused && j->run_start_rows < j->pause_rows &&
        job->rows_read >= j->pause_rows) {
        j->paused = 1;
        sl_warn("jobs: test hook: job %s holds after %llu rows until cancelled or stopped",
                job->id, (unsigned long long)job->rows_read);
        while (!j->stopping && !job->cancel)
            pthread_cond_wait(&j->cv, &j->mu);
    }
    int stop = j->stopping || job->cancel;
    pthread_mutex_unlock(&j->mu);
    return stop;
}

/* ---- creating ---- */

static int has_batch_config(const struct sl_ws *ws, const struct sl_view *v)
{
    const cJSON *s;
    if (!v->source)
        return 0;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(ws->repo, "sources"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "name");
        if (cJSON_IsString(name) && strcmp(name->valuestring, v->source->name) == 0)
            return cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "batch_config"));
    }
    return 0;
}

/* Queues a new job record; with `before` (called under the lock) first. */
static int job_queue(struct sl_jobs *j, const char *kind, const char *ws, const char *view,
                     const char *view_id, struct sl_buf *ids,
                     void (*before)(struct sl_jobs *j, const struct sl_job *job),
                     struct sl_error *err)
{
    struct sl_job *job = calloc(1, sizeof(*job));
    if (!job || !(job->ws = strdup(ws)) || !(job->view = strdup(view))) {
        job_free(job);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    snprintf(job->kind, sizeof(job->kind), "%s", kind);
    snprintf(job->view_id, sizeof(job->view_id), "%s", view_id);
    snprintf(job->state, sizeof(job->state), "queued");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    job->created = sl_now_ns();
    pthread_mutex_lock(&j->mu);
    if (before)
        before(j, job);
    /* ids sort by creation: real time in ns plus a counter */
    snprintf(job->id, sizeof(job->id), "%016llx",
             (unsigned long long)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + j->counter++));
    int rc = 0;
    /* A second backfill of the same definition while one is queued or running would load
     * the files twice and count every row twice. */
    for (size_t i = 0; strcmp(kind, "backfill") == 0 && i < j->njobs; i++) {
        const struct sl_job *o = j->jobs[i];
        if (strcmp(o->kind, "backfill") == 0 && strcmp(o->ws, job->ws) == 0 &&
            strcmp(o->view_id, job->view_id) == 0 &&
            (strcmp(o->state, "queued") == 0 || strcmp(o->state, "running") == 0)) {
            rc = sl_error_set(err, SL_EEXIST,
                              "a backfill of feature view `%s` is already %s (job %s)", view,
                              o->state, o->id);
            break;
        }
    }
    if (rc == 0 && j->njobs == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 32;
        struct sl_job **g = realloc(j->jobs, cap * sizeof(*g));
        if (!g)
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        else {
            j->jobs = g;
            j->cap = cap;
        }
    }
    if (rc == 0)
        rc = persist(j, job, err);
    if (rc == 0) {
        j->jobs[j->njobs++] = job;
        pthread_cond_signal(&j->cv);
        sl_info("jobs: queued %s job %s for feature view `%s` of workspace `%s`", kind, job->id,
                view, ws);
        if (ids) {
            sl_buf_puts(ids, ids->len ? ",\"" : "\"");
            sl_buf_puts(ids, job->id);
            sl_buf_putc(ids, '"');
        }
    }
    pthread_mutex_unlock(&j->mu);
    if (rc)
        job_free(job);
    return rc;
}

int sl_jobs_create(struct sl_jobs *j, const char *kind, const struct sl_ws *ws, const char *view,
                   struct sl_buf *ids, struct sl_error *err)
{
    const struct sl_view *v = sl_ws_view(ws, view);
    if (!v || v->is_realtime)
        return sl_error_set(err, SL_ENOTFOUND, "Feature view `%s` not found in workspace `%s`",
                            view, ws->name);
    if (!has_batch_config(ws, v))
        return sl_error_set(err, SL_EINVAL, "the source of feature view `%s` has no batch_config",
                            view);
    return job_queue(j, kind, ws->name, view, v->id, ids, NULL, err);
}

/* Under the lock: a queued job is cancelled now, a running one at its next chunk. */
static void cancel_job(struct sl_jobs *j, struct sl_job *job, struct sl_error *err)
{
    if (strcmp(job->state, "queued") == 0) {
        snprintf(job->state, sizeof(job->state), "cancelled");
        job->ended = sl_now_ns();
        persist(j, job, err);
    } else if (strcmp(job->state, "running") == 0) {
        job->cancel = 1;
        pthread_cond_broadcast(&j->cv); /* wakes a run held by the test hook */
    }
}

/* Under the lock: the jobs of the view a delete job is for stop. */
static void cancel_view_jobs(struct sl_jobs *j, const struct sl_job *del)
{
    for (size_t i = 0; i < j->njobs; i++) {
        struct sl_job *job = j->jobs[i];
        struct sl_error err = {0};
        if (strcmp(job->ws, del->ws) == 0 && strcmp(job->view_id, del->view_id) == 0 &&
            strcmp(job->kind, "delete") != 0)
            cancel_job(j, job, &err);
    }
}

int sl_jobs_create_delete(struct sl_jobs *j, const char *ws, const char *view,
                          const char *view_id, struct sl_buf *ids, struct sl_error *err)
{
    return job_queue(j, "delete", ws, view, view_id, ids, cancel_view_jobs, err);
}

void sl_jobs_forget_view(struct sl_jobs *j, const char *ws, const char *view_id,
                         const struct sl_job *keep)
{
    struct sl_batch b = {0};
    struct sl_buf key = SL_BUF_INIT;
    pthread_mutex_lock(&j->mu);
    size_t out = 0;
    for (size_t i = 0; i < j->njobs; i++) {
        struct sl_job *job = j->jobs[i];
        if (job != keep && strcmp(job->ws, ws) == 0 && strcmp(job->view_id, view_id) == 0 &&
            strcmp(job->state, "queued") != 0 && strcmp(job->state, "running") != 0) {
            sl_buf_reset(&key);
            sl_buf_putc(&key, SL_KEY_JOB);
            sl_buf_puts(&key, job->id);
            sl_batch_delete(&b, key.p, key.len);
            job_free(job);
            continue;
        }
        j->jobs[out++] = job;
    }
    j->njobs = out;
    struct sl_error err = {0};
    if (b.count && sl_store_write(&j->n->store, &b, 1, &err) != 0)
        sl_err("jobs: cannot delete the job records of a deleted view: %s", err.msg);
    pthread_mutex_unlock(&j->mu);
    sl_buf_free(&key);
    sl_batch_free(&b);
}

void sl_jobs_after_apply(struct sl_jobs *j, const struct sl_ws *old, const struct sl_ws *ws,
                         struct sl_buf *ids)
{
    if (!ws->live)
        return;
    for (size_t i = 0; i < ws->nviews; i++) {
        const struct sl_view *v = &ws->views[i];
        if (v->is_realtime || (!v->online && !v->offline) || !has_batch_config(ws, v))
            continue;
        const struct sl_view *prev = old ? sl_ws_view(old, v->name) : NULL;
        if (prev && strcmp(prev->id, v->id) == 0)
            continue;
        struct sl_error err = {0};
        if (sl_jobs_create(j, "backfill", ws, v->name, ids, &err) != 0)
            sl_err("jobs: cannot queue a backfill of `%s`: %s", v->name, err.msg);
    }
}

void sl_jobs_after_apply_deletes(struct sl_jobs *j, const struct sl_ws *old, const struct sl_ws *ws,
                                 struct sl_buf *ids)
{
    if (!ws->live)
        return; /* a development workspace stores nothing */
    for (size_t i = 0; old && i < old->nviews; i++) {
        const struct sl_view *v = &old->views[i];
        const struct sl_view *now = sl_ws_view(ws, v->name);
        struct sl_error err = {0};
        if (v->is_realtime || (now && strcmp(now->id, v->id) == 0))
            continue;
        if (sl_jobs_create_delete(j, ws->name, v->name, v->id, ids, &err) != 0)
            sl_err("jobs: cannot queue the deletion of `%s`: %s", v->name, err.msg);
    }
}

/* ---- the runner ---- */

struct sched_ctx {
    struct sl_jobs *j;
    int64_t now;
};

static int busy_for(struct sl_jobs *j, const char *ws, const char *view_id)
{
    for (size_t i = 0; i < j->njobs; i++) {
        const struct sl_job *job = j->jobs[i];
        if (strcmp(job->ws, ws) == 0 && strcmp(job->view_id, view_id) == 0 &&
            (strcmp(job->state, "queued") == 0 || strcmp(job->state, "running") == 0))
            return 1;
    }
    return 0;
}

/* Starts due materializations of one workspace. */
static void schedule_ws(void *arg, struct sl_ws *ws)
{
    struct sched_ctx *c = arg;
    struct sl_jobs *j = c->j;
    if (!ws->live)
        return;
    for (size_t i = 0; i < ws->nviews; i++) {
        const struct sl_view *v = &ws->views[i];
        if (v->schedule_ns <= 0 || v->is_realtime || !has_batch_config(ws, v))
            continue;
        char key[200];
        snprintf(key, sizeof(key), "%s/%s", ws->name, v->id);
        pthread_mutex_lock(&j->mu);
        struct sched *sc = NULL;
        for (size_t k = 0; k < j->nsched && !sc; k++)
            if (strcmp(j->sched[k].key, key) == 0)
                sc = &j->sched[k];
        int due = 0;
        if (!sc) {
            struct sched *g = realloc(j->sched, (j->nsched + 1) * sizeof(*g));
            char *kd = strdup(key);
            if (g && kd) {
                j->sched = g;
                j->sched[j->nsched++] = (struct sched){kd, c->now};
            } else {
                free(kd);
                if (g)
                    j->sched = g;
            }
        } else if (c->now - sc->last >= v->schedule_ns && !busy_for(j, ws->name, v->id)) {
            sc->last = c->now;
            due = 1;
        }
        pthread_mutex_unlock(&j->mu);
        struct sl_error err = {0};
        if (due && sl_jobs_create(j, "materialize", ws, v->name, NULL, &err) != 0)
            sl_err("jobs: cannot queue a materialization of `%s`: %s", v->name, err.msg);
    }
}

static struct sl_job *next_queued(struct sl_jobs *j)
{
    struct sl_job *best = NULL;
    for (size_t i = 0; i < j->njobs; i++)
        if (strcmp(j->jobs[i]->state, "queued") == 0 && (!best || strcmp(j->jobs[i]->id, best->id) < 0))
            best = j->jobs[i];
    return best;
}

static void *runner(void *arg)
{
    struct sl_jobs *j = arg;
    pthread_mutex_lock(&j->mu);
    while (!j->stopping) {
        struct sl_job *job = next_queued(j);
        if (!job) {
            pthread_mutex_unlock(&j->mu);
            struct sched_ctx c = {j, sl_now_ns()};
            sl_registry_each(j->n->reg, schedule_ws, &c);
            if (c.now - j->last_retention >= RETENTION_EVERY) {
                j->last_retention = c.now;
                sl_registry_each(j->n->reg, retain_ws, j);
                sl_lifecycle_reclaim_orphans(j->n);
                sl_offline_compact(j->n->offline);
            }
            pthread_mutex_lock(&j->mu);
            if (next_queued(j) || j->stopping)
                continue;
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&j->cv, &j->mu, &until);
            continue;
        }
        struct sl_error err = {0};
        snprintf(job->state, sizeof(job->state), "running");
        job->started = sl_now_ns();
        job->ended = 0;
        free(job->error);
        job->error = NULL;
        persist(j, job, &err);
        j->run_start_rows = job->rows_read;
        pthread_mutex_unlock(&j->mu);
        sl_info("jobs: running %s job %s (feature view `%s` of workspace `%s`)", job->kind,
                job->id, job->view, job->ws);
        int rc = strcmp(job->kind, "delete") == 0 ? sl_lifecycle_delete_run(j->n, j, job, &err)
                                                   : sl_batch_run(j->n, j, job, &err);
        pthread_mutex_lock(&j->mu);
        if (rc == SL_EBUSY && !job->cancel) {
            snprintf(job->state, sizeof(job->state), "queued"); /* shutting down: resume later */
        } else {
            snprintf(job->state, sizeof(job->state), "%s",
                     rc == 0 ? "succeeded" : rc == SL_EBUSY ? "cancelled" : "failed");
            job->ended = sl_now_ns();
            if (rc != 0 && rc != SL_EBUSY)
                job->error = strdup(err.msg);
        }
        job->cancel = 0;
        struct sl_error perr = {0};
        if (persist(j, job, &perr) != 0)
            sl_err("jobs: cannot record job %s: %s", job->id, perr.msg);
        sl_info("jobs: job %s %s: %llu rows read, %llu written, %llu rejected%s%s", job->id,
                job->state, (unsigned long long)job->rows_read,
                (unsigned long long)job->rows_written, (unsigned long long)job->rows_rejected,
                job->error ? ": " : "", job->error ? job->error : "");
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

struct sl_jobs *sl_jobs_start(struct sl_node *n, struct sl_error *err)
{
    struct sl_jobs *j = calloc(1, sizeof(*j));
    char prefix[] = {SL_KEY_JOB, 0};
    if (!j) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    j->n = n;
    j->last_retention = sl_now_ns();
    const char *pause = getenv("SLUICE_TEST_JOB_PAUSE_ROWS");
    j->pause_rows = pause ? strtoull(pause, NULL, 10) : 0;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    if (sl_store_scan(&n->store, prefix, 1, load_job, j, err) < 0)
        goto fail;
    if (pthread_create(&j->thread, NULL, runner, j) != 0) {
        sl_error_set(err, SL_EIO, "cannot start the job runner");
        goto fail;
    }
    j->started = 1;
    return j;
fail:
    sl_jobs_stop(j);
    return NULL;
}

void sl_jobs_stop(struct sl_jobs *j)
{
    if (!j)
        return;
    if (j->started) {
        pthread_mutex_lock(&j->mu);
        j->stopping = 1;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->thread, NULL);
    }
    for (size_t i = 0; i < j->njobs; i++)
        job_free(j->jobs[i]);
    for (size_t i = 0; i < j->nsched; i++)
        free(j->sched[i].key);
    free(j->sched);
    free(j->jobs);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* ---- HTTP ---- */

static void reply_job(struct sl_http_req *r, int status, const struct sl_job *job)
{
    struct sl_buf b = SL_BUF_INIT;
    sl_job_json(job, &b);
    sl_reply_buf(r, status, &b);
}

void sl_jobs_handle(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p,
                    const char *rest)
{
    struct sl_jobs *j = n->jobs;
    enum sl_http_method m = sl_http_method(r);
    struct sl_error err = {0};
    if (*rest == 0 && m == SL_HTTP_GET) {
        const char *only = sl_http_query(r, "workspace");
        struct sl_buf b = SL_BUF_INIT;
        sl_buf_puts(&b, "{\"jobs\":[");
        int first = 1;
        pthread_mutex_lock(&j->mu);
        for (size_t i = 0; i < j->njobs; i++) {
            const struct sl_job *job = j->jobs[i];
            if ((only && strcmp(only, job->ws) != 0) ||
                !sl_auth_allowed(n->auth, p, job->ws, SL_ACT_JOBS))
                continue;
            sl_buf_puts(&b, first ? "" : ",");
            first = 0;
            sl_job_json(job, &b);
        }
        pthread_mutex_unlock(&j->mu);
        sl_buf_puts(&b, "]}");
        sl_reply_buf(r, 200, &b);
        return;
    }
    if (*rest == 0 && m == SL_HTTP_POST) {
        cJSON *o = sl_parse_body(r, &err);
        const cJSON *ws = cJSON_GetObjectItemCaseSensitive(o, "workspace");
        const cJSON *view = cJSON_GetObjectItemCaseSensitive(o, "feature_view");
        struct sl_ws *w = NULL;
        struct sl_buf ids = SL_BUF_INIT;
        if (o && (!cJSON_IsString(ws) || !cJSON_IsString(view)))
            sl_error_set(&err, SL_EINVAL, "Required fields `workspace` and `feature_view`");
        else if (o && !sl_auth_allowed(n->auth, p, ws->valuestring, SL_ACT_JOBS))
            sl_error_set(&err, SL_EPERM, "the service account is not allowed to run jobs in this workspace");
        else if (o && !(w = sl_registry_get(n->reg, ws->valuestring)))
            sl_error_set(&err, SL_ENOTFOUND, "Workspace `%s` not found", ws->valuestring);
        else if (o && !w->live)
            sl_error_set(&err, SL_EINVAL, "Workspace `%s` is a development workspace", ws->valuestring);
        if (!err.code)
            sl_jobs_create(j, "backfill", w, view->valuestring, &ids, &err);
        sl_ws_release(w);
        cJSON_Delete(o);
        if (err.code) {
            sl_buf_free(&ids);
            sl_reply_status(r, &err);
            return;
        }
        struct sl_buf b = SL_BUF_INIT;
        sl_buf_puts(&b, "{\"id\":");
        sl_buf_append(&b, ids.p, ids.len);
        sl_buf_putc(&b, '}');
        sl_buf_free(&ids);
        sl_reply_buf(r, 201, &b);
        return;
    }
    char id[17];
    const char *action = "";
    size_t idlen = rest[0] == '/' ? strcspn(rest + 1, "/") : 0;
    if (idlen == 0) {
        sl_reply_error(r, 404, 5, "no such endpoint");
        return;
    }
    if (idlen != 16 || strspn(rest + 1, "0123456789abcdef") < 16) {
        sl_reply_error(r, 400, 3, "malformed job id (a job id is 16 hexadecimal digits)");
        return;
    }
    memcpy(id, rest + 1, 16);
    id[16] = 0;
    action = rest + 17;
    pthread_mutex_lock(&j->mu);
    struct sl_job *job = find(j, id);
    if (!job || !sl_auth_allowed(n->auth, p, job->ws, SL_ACT_JOBS)) {
        /* a job of a workspace the caller cannot see answers like a job that does not
         * exist, so ids do not reveal what other workspaces run */
        pthread_mutex_unlock(&j->mu);
        sl_reply_error(r, 404, 5, "no such job");
        return;
    }
    if (*action == 0 && m == SL_HTTP_GET) {
        reply_job(r, 200, job);
    } else if (strcmp(action, "/cancel") == 0 && m == SL_HTTP_POST) {
        cancel_job(j, job, &err);
        sl_auth_audit(p, "cancelled job %s", job->id);
        reply_job(r, 200, job);
    } else if (strcmp(action, "/retry") == 0 && m == SL_HTTP_POST) {
        if (strcmp(job->state, "failed") != 0 && strcmp(job->state, "cancelled") != 0) {
            pthread_mutex_unlock(&j->mu);
            sl_reply_error(r, 400, 9, "only failed or cancelled jobs can be retried");
            return;
        }
        snprintf(job->state, sizeof(job->state), "queued");
        free(job->error);
        job->error = NULL;
        job->ended = 0;
        persist(j, job, &err);
        pthread_cond_signal(&j->cv);
        sl_auth_audit(p, "retried job %s", job->id);
        reply_job(r, 200, job);
    } else {
        sl_reply_error(r, 404, 5, "no such endpoint");
    }
    pthread_mutex_unlock(&j->mu);
}

void sl_jobs_count(struct sl_jobs *j, const char *const *states, uint64_t *counts, size_t n)
{
    memset(counts, 0, n * sizeof(*counts));
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < j->njobs; i++)
        for (size_t s = 0; s < n; s++)
            if (strcmp(j->jobs[i]->state, states[s]) == 0)
                counts[s]++;
    pthread_mutex_unlock(&j->mu);
}
