/* The online store: a small key-value vtable (LevelDB by default, a plugin can replace it),
 * write batches, and the writer thread that owns every read-modify-write and commits in
 * groups (DESIGN §1, §5). */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "keys.h"
#include "sluice/plugin.h"

struct sl_error;

/* The key kinds (SL_KEY_*), the first byte of every key, are in keys.h. */

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

/* sl_scan_cb and struct sl_store_ops, the online store descriptor, are in sluice/plugin.h:
 * the built-in LevelDB store and store plugins use the same one. */

/* An open store: an implementation and its handle. */
struct sl_store {
    const struct sl_store_ops *ops;
    void *ctx;
};

/* The built-in LevelDB store's descriptor (registered as "leveldb" by plugin.c). */
extern const struct sl_store_ops sl_store_leveldb_ops;

/* Opens (creating if missing) the embedded LevelDB store in dir. cache_mb sizes the block
 * cache. Returns 0 and fills *out, or SL_ESTORE with err. A shorthand for tests and tools;
 * the server opens its store by name (sl_plugin_store_open). */
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
/* 1 when other processes may write s too (its ops offer rmw_begin, ABI 1.1): a node then
 * keeps no cache of what it wrote. */
int sl_store_shared(const struct sl_store *s);
/* Closes the store; accepts a zeroed struct. */
void sl_store_close(struct sl_store *s);

/* ---- the writer thread ---- */

/* One unit of work for the writer, e.g. the mutations of one ingest request. Owned by the
 * submitter until `done` is called; `done` may free it. */
struct sl_commit {
    /* Runs on the writer thread: reads current state from s (which sees every earlier
     * commit, acknowledged or in the same group) and adds its writes to b. Returns 0, or a
     * negative status with err, in which case nothing of b is written. On a store shared
     * with other processes (ops->rmw_begin) it may run again for the same commit when the
     * write of b conflicted: its other effects must happen once. */
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
    uint64_t conflicts; /* writes retried because another process wrote the same entity */
};
void sl_writer_stats(struct sl_writer *w, struct sl_writer_stats *out);

#endif
