/* The offline store: one segment directory per (workspace, feature view incarnation)
 * (segment.h), `<data-dir>/offline/<workspace>/<view>@<storage prefix in hex>/`, fed by the
 * writer thread in the same group commit as the online store, read by point-in-time
 * retrieval. Records of a view carry an entity key that starts with the view's 8-byte
 * storage prefix, which also picks the directory: a redefined or re-created view (new
 * prefix) never reads its predecessor's records, and deleting one incarnation removes its
 * directory without touching the next.
 *
 * Payloads: attribute views store the row's feature values (u32-length-prefixed JSON
 * encodings, declaration order); aggregate views store the event's column values
 * (sl_agg_value_encode, one per feature). */
#ifndef SL_OFFLINE_H
#define SL_OFFLINE_H

#include <stddef.h>
#include <stdint.h>

struct sl_error;
struct sl_segment;
struct sl_segment_iter;
struct sl_segment_iter_opts;

struct sl_offline;

/* The offline store under data_dir (borrowed string, must outlive it). NULL on ENOMEM. */
struct sl_offline *sl_offline_new(const char *data_dir);
/* Closes every segment; pending (unsynced) records are dropped. Accepts NULL. */
void sl_offline_free(struct sl_offline *o);

/* Writer thread: buffers one record for (ws, view); key starts with the view's 8-byte storage
 * prefix (SL_EINVAL otherwise). Returns 0 or a negative status. */
int sl_offline_append(struct sl_offline *o, const char *ws, const char *view, const void *key,
                      size_t klen, int64_t ts, uint64_t seq, const void *payload, size_t plen,
                      struct sl_error *err);
/* Writer thread, or the writer's flusher while the writer waits (store.h): makes every
 * record appended since the last call durable (fdatasync per touched view). Returns 0 or
 * SL_EIO with err. */
int sl_offline_sync(struct sl_offline *o, struct sl_error *err);
/* Writer thread, after acks: closes segments past their size/age threshold and queues them
 * for the sealing thread. */
void sl_offline_maintain(struct sl_offline *o);

/* A background thread: merges runs of small sealed segments of every open view (concurrent
 * with the writer thread; handles stay open until sl_offline_free). */
void sl_offline_compact(struct sl_offline *o);

/* Any thread: an iterator over the durable records of (ws, view) (see segment.h); opts->key_lo
 * must start with the view's storage prefix (SL_EINVAL otherwise). SL_ENOTFOUND when the
 * view never stored a record. */
int sl_offline_iter(struct sl_offline *o, const char *ws, const char *view,
                    const struct sl_segment_iter_opts *opts, struct sl_segment_iter **out,
                    struct sl_error *err);

/* Any thread: bytes on disk of the incarnation of view with storage prefix `prefix`. */
uint64_t sl_offline_bytes(struct sl_offline *o, const char *ws, const char *view,
                          const unsigned char prefix[8]);

/* Deletes the incarnation's directory and every file in it, adding their bytes to *bytes:
 * closes its handle once no read, seal or compaction uses it (waits for them). The view must
 * no longer be written (removed from the registry; commits queued before drained). Returns 0
 * (also when there was nothing) or SL_EIO with err. Any thread but the writer's. */
int sl_offline_drop(struct sl_offline *o, const char *ws, const char *view,
                    const unsigned char prefix[8], uint64_t *bytes, struct sl_error *err);
/* sl_offline_drop by directory name (`<view>@<prefix>`, or a directory of an older format). */
int sl_offline_drop_dir(struct sl_offline *o, const char *ws, const char *dir, uint64_t *bytes,
                        struct sl_error *err);
/* Removes `<data-dir>/offline/<ws>` if it is empty. Any thread. */
void sl_offline_drop_workspace_dir(struct sl_offline *o, const char *ws);

/* Backups. sl_offline_snapshot records the durable state of every view directory on disk
 * (sl_segment_snapshot; directories not yet open are opened). Call it where no append runs
 * (on the writer thread between groups) so it matches the online store's state. Returns 0
 * and sets *out, or a negative status with err. sl_offline_snap_write writes that state under
 * `<dest_data_dir>/offline/` (any thread), counting directories and bytes. */
struct sl_offline_snap;
int sl_offline_snapshot(struct sl_offline *o, struct sl_offline_snap **out, struct sl_error *err);
int sl_offline_snap_write(struct sl_offline_snap *s, const char *dest_data_dir, uint64_t *dirs,
                          uint64_t *bytes, struct sl_error *err);
void sl_offline_snap_free(struct sl_offline_snap *s);

#endif
