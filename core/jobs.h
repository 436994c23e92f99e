/* Jobs: batch work users can watch (backfill from a source's files when a view is applied,
 * scheduled materialization of new batch files). Job records live in the online store under
 * SL_KEY_JOB and survive restarts: a job that was running resumes from its checkpoint. One
 * runner thread executes jobs one at a time (bounded resources; ingest and serving go on);
 * it also starts materialization jobs on each view's batch_schedule. */
#ifndef SL_JOBS_H
#define SL_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "filesrc.h"

struct sl_buf;
struct sl_error;
struct sl_http_req;
struct sl_node;
struct sl_principal;
struct sl_ws;

#define SL_JOB_MAX_ERRORS 10

/* A job as the runner sees it. Fields are owned by the jobs module; executors read them and
 * report through sl_job_progress / sl_job_checkpoint. */
struct sl_job {
    char id[17];
    char kind[16];        /* "backfill" | "materialize" | "delete" */
    char *ws, *view;
    char view_id[33];     /* the view definition the job is for */
    char state[12];       /* queued running succeeded failed cancelled */
    int64_t created, started, ended;
    uint64_t rows_read, rows_written, rows_rejected, rows_filtered;
    char *error;
    char *first_errors;   /* JSON array text of the first record errors */
    int has_pos;
    struct sl_filesrc_pos pos;
    int cancel;           /* set by cancel; executors stop at the next chunk */
    /* delete jobs (lifecycle.h): rows_written counts online keys deleted */
    int del_phase;        /* the step reached */
    char *del_key;        /* hex of the last key deleted in that step, or NULL */
    uint64_t bytes_deleted; /* offline bytes removed */
};

struct sl_jobs;

/* Loads the job records in n's store (running ones go back to the queue) and starts the
 * runner thread. Returns NULL with err. */
struct sl_jobs *sl_jobs_start(struct sl_node *n, struct sl_error *err);
/* Stops the runner (the running job stops at its next chunk, resumable). Accepts NULL. */
void sl_jobs_stop(struct sl_jobs *j);

/* Queues a job of kind for view `view` of ws. Appends its id to ids (comma-separated JSON
 * strings) when ids is not NULL. Returns 0 or a negative status. Any thread. */
int sl_jobs_create(struct sl_jobs *j, const char *kind, const struct sl_ws *ws, const char *view,
                   struct sl_buf *ids, struct sl_error *err);

/* Queues a job deleting the data of view `view` (id view_id) of workspace ws, which the
 * registry no longer holds (lifecycle.h), and cancels the view's queued or running jobs.
 * Appends its id to ids when not NULL. Returns 0 or a negative status. Any thread. */
int sl_jobs_create_delete(struct sl_jobs *j, const char *ws, const char *view,
                          const char *view_id, struct sl_buf *ids, struct sl_error *err);
/* Removes the records of the finished jobs of (ws, view_id), except the job keep. Runner
 * thread. */
void sl_jobs_forget_view(struct sl_jobs *j, const char *ws, const char *view_id,
                         const struct sl_job *keep);

/* After an apply that replaced old (may be NULL) with ws: queues a backfill for every view of
 * a live workspace that is new or redefined, is online or offline, and whose source has a
 * batch_config. Appends the job ids to ids. */
void sl_jobs_after_apply(struct sl_jobs *j, const struct sl_ws *old, const struct sl_ws *ws,
                         struct sl_buf *ids);
/* After the same apply, in a live workspace: queues a delete job for every stored view id of
 * old that ws no longer has (removed or redefined views). Appends the job ids to ids. */
void sl_jobs_after_apply_deletes(struct sl_jobs *j, const struct sl_ws *old, const struct sl_ws *ws,
                                 struct sl_buf *ids);

/* The job record as JSON (the GET /v1/jobs/ID body). */
void sl_job_json(const struct sl_job *job, struct sl_buf *out);

/* HTTP: GET /v1/jobs[?workspace=W], POST /v1/jobs (start a backfill), GET /v1/jobs/ID,
 * POST /v1/jobs/ID/cancel, POST /v1/jobs/ID/retry. rest is what follows "/v1/jobs". */
void sl_jobs_handle(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p,
                    const char *rest);

/* For executors (the runner thread): the key and value of the job record as it stands, to
 * commit atomically with a chunk of rows (see sl_ingest_extra_put). */
void sl_job_record(const struct sl_job *job, struct sl_buf *key, struct sl_buf *val);
/* Executors update a job's counters and checkpoint under this lock (readers serve them). */
void sl_jobs_lock(struct sl_jobs *j);
void sl_jobs_unlock(struct sl_jobs *j);
/* Counts the jobs in each state of states[0..n-1] into counts. Any thread. Accepts NULL j. */
void sl_jobs_count(struct sl_jobs *j, const char *const *states, uint64_t *counts, size_t n);
/* Whether the job was cancelled or the server is stopping. Executor thread only; may hold
 * the run under the SLUICE_TEST_JOB_PAUSE_ROWS test hook (jobs.c). */
int sl_job_should_stop(struct sl_jobs *j, const struct sl_job *job);

#endif
