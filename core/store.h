/* The online store: a small key-value vtable (LevelDB by default, a plugin can replace it),
 * write batches, and the writer thread that owns every read-modify-write and commits in
 * groups (DESIGN §1, §5). */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct sl_error;

/* The first byte of every key in the online store says what it holds; subsystems never
 * scan outside their own prefix. */
#define SL_KEY_REGISTRY 'R' /* registry.c: workspace snapshots */
#define SL_KEY_ACCOUNT 'A'  /* auth.c: service accounts */
#define SL_KEY_ROLE 'B'     /* auth.c: role bindings */
#define SL_KEY_ROW 'V'      /* serve.c: latest row of an attribute view per entity */
#define SL_KEY_AGG 'G'      /* tiles.c: tiles, lifetime states, event logs */
#define SL_KEY_JOB 'J'      /* jobs.c: job records */
#define SL_KEY_FILE 'F'     /* batch.c: batch files loaded per view */

/* A list of puts and deletes applied atomically by one write. */
struct sl_batch {
    struct sl_buf ops; /* encoded: u8 op ('P' or 'D'), lenstr key, [lenstr value] */
    size_t count;
};

void sl_batch_put(struct sl_batch *b, const void *k, size_t klen, const void *v, size_t vlen);
void sl_batch_delete(struct sl_batch *b, const void *k, size_t klen);
void sl_batch_reset(struct sl_batch *b);
void sl_batch_free(struct sl_batch *b);

/* Calls fn for each op of b in order (v is NULL for deletes); stops at a non-zero return,
 * which it returns. */
int sl_batch_each(const struct sl_batch *b,
                  int (*fn)(void *arg, int op, const char *k, size_t kl, const char *v, size_t vl),
                  void *arg);

/* Scan callback: return 0 to go on, 1 to stop, negative to fail the scan with that status. */
typedef int (*sl_scan_cb)(void *arg, const char *k, size_t klen, const char *v, size_t vlen);

/* An online store implementation. All functions are safe to call from any thread
 * concurrently, except that only the writer thread calls write in a running server. */
struct sl_store_ops {
    const char *name;
    /* Appends the value of key to val and returns 0, or SL_ENOTFOUND, or SL_ESTORE. */
    int (*get)(void *ctx, const char *k, size_t klen, struct sl_buf *val, struct sl_error *err);
    /* Applies b atomically; with sync, durable before it returns. 0 or SL_ESTORE. */
    int (*write)(void *ctx, const struct sl_batch *b, int sync, struct sl_error *err);
    /* Visits keys >= start in order while they begin with prefix. 0 or an error. */
    int (*scan)(void *ctx, const char *prefix, size_t plen, const char *start, size_t slen,
                sl_scan_cb cb, void *arg, struct sl_error *err);
    void (*close)(void *ctx);
    /* Optional: a positioned iterator for reads of several nearby keys (NULL: not offered).
     * iter_seek positions at the first key >= k and returns 1 when there is one; iter_next
     * moves on (1 while valid); iter_key/iter_value borrow until the next move. */
    void *(*iter_new)(void *ctx);
    int (*iter_seek)(void *it, const char *k, size_t klen);
    int (*iter_next)(void *it);
    const char *(*iter_key)(void *it, size_t *len);
    const char *(*iter_value)(void *it, size_t *len);
    void (*iter_free)(void *it);
    /* Optional: gives back the disk space of keys deleted in [lo, hi) (LevelDB: a range
     * compaction; blocks while it runs). */
    void (*compact)(void *ctx, const char *lo, size_t lolen, const char *hi, size_t hilen);
    /* Optional (backups): snapshot returns a consistent view of the store as it is now;
     * snapshot_copy writes every key of it into a new store in directory dir (which must not
     * hold one), durably, counting keys (0 or SL_ESTORE with err; any thread, while writes
     * go on); snapshot_free releases it. */
    void *(*snapshot)(void *ctx);
    int (*snapshot_copy)(void *ctx, void *snap, const char *dir, uint64_t *keys,
                         struct sl_error *err);
    void (*snapshot_free)(void *ctx, void *snap);
};

struct sl_store {
    const struct sl_store_ops *ops;
    void *ctx;
};

/* Opens (creating if missing) the embedded LevelDB store in dir. cache_mb sizes the block
 * cache. Returns 0 and fills *out, or SL_ESTORE with err. */
int sl_store_leveldb_open(const char *dir, size_t cache_mb, struct sl_store *out,
                          struct sl_error *err);

static inline int sl_store_get(struct sl_store *s, const char *k, size_t klen, struct sl_buf *v,
                               struct sl_error *err)
{
    return s->ops->get(s->ctx, k, klen, v, err);
}
static inline int sl_store_write(struct sl_store *s, const struct sl_batch *b, int sync,
                                 struct sl_error *err)
{
    return s->ops->write(s->ctx, b, sync, err);
}
static inline int sl_store_scan(struct sl_store *s, const char *prefix, size_t plen,
                                sl_scan_cb cb, void *arg, struct sl_error *err)
{
    return s->ops->scan(s->ctx, prefix, plen, prefix, plen, cb, arg, err);
}
/* Closes the store; accepts a zeroed struct. */
void sl_store_close(struct sl_store *s);

/* ---- the writer thread ---- */

/* One unit of work for the writer, e.g. the mutations of one ingest request. Owned by the
 * submitter until `done` is called; `done` may free it. */
struct sl_commit {
    /* Runs on the writer thread: reads current state from s (which sees every earlier
     * commit, acknowledged or in the same group) and adds its writes to b. Returns 0, or a
     * negative status with err, in which case nothing of b is written. */
    int (*apply)(struct sl_commit *c, struct sl_store *s, struct sl_batch *b,
                 struct sl_error *err);
    /* Runs on the writer thread once the commit is durable (status 0) or failed. Must not
     * block: hand the result to another thread. */
    void (*done)(struct sl_commit *c, int status, const struct sl_error *err);
    struct sl_commit *next; /* queue link, owned by the writer */
};

/* Hooks for each group. `flush` makes other state of the group durable (offline segments)
 * while the writer makes the online store's synced write, failing the group on error; it
 * runs on a helper thread while the writer thread waits for it, so it may touch what only
 * the writer thread touches. `after` runs on the writer thread once the group is
 * acknowledged (maintenance such as sealing segments). */
typedef int (*sl_writer_flush_fn)(void *arg, struct sl_error *err);
typedef void (*sl_writer_after_fn)(void *arg);

struct sl_writer;

/* Starts the writer thread over s (borrowed; must outlive the writer). max_queue bounds the
 * commits waiting; group_max bounds commits per group. Returns NULL with err on failure. */
struct sl_writer *sl_writer_start(struct sl_store *s, size_t max_queue, size_t group_max,
                                  sl_writer_flush_fn flush, sl_writer_after_fn after,
                                  void *hook_arg, struct sl_error *err);
/* Queues c. Returns 0, or SL_EBUSY when max_queue commits are waiting (the caller answers
 * 429), or SL_EINVAL after stop. Any thread. */
int sl_writer_submit(struct sl_writer *w, struct sl_commit *c);
/* Runs fn(arg) on the writer thread between groups and waits for it (for maintenance that
 * must not race with commits, e.g. registry changes). Returns fn's result. Any thread but
 * the writer's. */
int sl_writer_call(struct sl_writer *w, int (*fn)(void *arg, struct sl_store *s), void *arg);
/* Commits still queued are completed, then the thread exits. Accepts NULL. */
void sl_writer_stop(struct sl_writer *w);

/* Counters for metrics. */
struct sl_writer_stats {
    uint64_t commits, groups, failures, queued;
};
void sl_writer_stats(struct sl_writer *w, struct sl_writer_stats *out);

#endif
