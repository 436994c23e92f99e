/* POST /ingest: the Stream Ingest API (DESIGN §4). */
#ifndef SL_INGEST_H
#define SL_INGEST_H

struct sl_node;
struct sl_http_req;
struct sl_principal;

/* Handles one ingest request: validates it, checks the caller's role, builds the
 * mutations of every view on each source, commits them through the writer and replies once
 * they are durable (or at once for dry runs and errors). auth_rc is the result of
 * authentication (0 or SL_EAUTH with auth_msg). Loop thread. */
void sl_ingest_handle(struct sl_node *n, struct sl_http_req *r, int auth_rc,
                      const char *auth_msg, const struct sl_principal *p);

/* ---- batch loads: the same path for rows read by jobs from batch files ---- */

#include <stddef.h>

struct sl_arena;
struct sl_buf;
struct sl_error;
struct sl_json;
struct sl_source;
struct sl_view;
struct sl_ws;
struct sl_xform_cache;
struct sl_ingest;

/* A batch of rows for ws (retained), written only to view `only` (NULL: every view of each
 * row's source). Batch rows skip the ttl and clock-skew checks and drop rows older than a
 * view's feature_start_time. xf: the calling thread's own VM cache. NULL on ENOMEM. One
 * thread (a job's). */
struct sl_ingest *sl_ingest_new(struct sl_node *n, struct sl_ws *ws, struct sl_xform_cache *xf,
                                const struct sl_view *only);
/* Validates, transforms and stages one record (a JSON object of source s; allocate it from
 * sl_ingest_arena). idx numbers it in messages. Returns 0 (problems become record errors)
 * or SL_ENOMEM. */
int sl_ingest_add(struct sl_ingest *g, struct sl_source *s, const struct sl_json *rec, size_t idx);
/* The arena staged records may be parsed into; freed by sl_ingest_reset. */
struct sl_arena *sl_ingest_arena(struct sl_ingest *g);
/* Record errors so far; appends their JSON array entries to out (may be NULL). */
size_t sl_ingest_errors(struct sl_ingest *g, struct sl_buf *out);
/* Rows staged for online / offline writes so far, and rows dropped by feature_start_time. */
void sl_ingest_counts(struct sl_ingest *g, size_t *online, size_t *offline, size_t *filtered);
/* Adds a put committed atomically with the staged rows (a job's checkpoint). */
void sl_ingest_extra_put(struct sl_ingest *g, const void *k, size_t klen, const void *v,
                         size_t vlen);
/* Commits everything staged as one atomic, durable write through the writer thread and
 * waits for it. Returns 0 or a negative status with err. Not on an HTTP loop. */
int sl_ingest_commit(struct sl_ingest *g, struct sl_error *err);
/* Frees the staged records' memory and record errors (after a commit). */
void sl_ingest_reset(struct sl_ingest *g);
void sl_ingest_free(struct sl_ingest *g);

/* ---- test-run: the ingest path without a node ---- */

#include <stdint.h>
/* A staging of records for ws as POST /ingest checks them (ttl and clock skew against
 * sl_now_ns(), future_skew in ns) that commits nothing: sl_ingest_add stages the rows of
 * every view (only: of that view alone, and only its record errors), stored offline or not,
 * as offline records (segment.md's payloads), read back with sl_ingest_each_record. */
struct sl_ingest *sl_ingest_new_local(struct sl_ws *ws, struct sl_xform_cache *xf,
                                      const struct sl_view *only, int64_t future_skew);
/* Calls fn for each staged record in staging order: its view, key (the view's 8-byte prefix
 * and the entity part), event time, write sequence and payload; stops at fn's non-zero
 * return value and returns it. */
int sl_ingest_each_record(struct sl_ingest *g,
                          int (*fn)(void *arg, const struct sl_view *v, const char *key,
                                    size_t klen, int64_t ts, uint64_t seq, const char *p,
                                    size_t n),
                          void *arg);

#endif
