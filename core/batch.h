/* Batch loads: the executor of backfill and materialization jobs. Rows of a source's
 * batch_config files go through the same validation, post-processor, transformation and
 * aggregation path as ingested records (ingest.h), in chunks each committed atomically
 * together with the job's checkpoint, so a job killed mid-way and resumed gives the result of
 * an uninterrupted one and never counts a row twice. */
#ifndef SL_BATCH_H
#define SL_BATCH_H

struct sl_error;
struct sl_job;
struct sl_jobs;
struct sl_node;

/* Runs job to completion, cancellation or failure; the caller sets the final state from the
 * result: 0 done, SL_EBUSY stopped (cancelled or shutting down), other negatives failed with
 * err. Runner thread. */
int sl_batch_run(struct sl_node *n, struct sl_jobs *jobs, struct sl_job *job, struct sl_error *err);

/* The apply-time check of ws's batch sources: for each stream source with a batch_config
 * whose first file can be read and has a column list (a CSV header, a Parquet schema; not
 * JSON Lines) inside the folders batch jobs may read (batch-root), every column of the stream
 * schema must be in it, as Tecton requires. Returns
 * 0 (also when a file is absent or unreadable: its jobs report that), or SL_EINVAL with err
 * "file:line: StreamSource `s`: the batch_config file F has no column `c` ..." (the source's
 * definition). Any thread; reads one header per source. */
struct sl_ws;
int sl_batch_check_sources(const struct sl_node *n, const struct sl_ws *ws, struct sl_error *err);

#endif
