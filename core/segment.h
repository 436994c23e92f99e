/* Offline segment files (DESIGN §5): one directory per (workspace, feature view) under
 * `<data-dir>/offline/<workspace>/<view>/`, holding an append-only active segment of
 * CRC-checked records and sealed segments sorted by (entity key, event time, sequence) with a
 * block index in a footer. Records are opaque to this module: the caller encodes the entity key
 * and the payload. segment.md beside this file documents the on-disk format.
 *
 * Threads: one writer thread owns append, sync, seal and (or a background thread) compact;
 * any thread may open iterators and read stats concurrently with it. Records become visible
 * to iterators, and durable, only when sl_segment_sync() returns 0. */
#ifndef SL_SEGMENT_H
#define SL_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

struct sl_error;
struct sl_segment;
struct sl_segment_iter;

/* Limits on one record; larger ones are refused with SL_ETOOBIG. */
#define SL_SEGMENT_MAX_KEY (64u * 1024u)
#define SL_SEGMENT_MAX_PAYLOAD (16u * 1024u * 1024u)

/* sl_segment_opts.flags */
#define SL_SEGMENT_RDONLY 0x1u /* read only: no recovery writes, no appends (shared lock) */

/* Zero fields take the defaults shown. */
struct sl_segment_opts {
    uint64_t seal_bytes;          /* seal the active segment at this size (64 MiB) */
    int64_t seal_age_ns;          /* ... or this long after its first record (1 h; <0 never) */
    uint32_t block_bytes;         /* target block size in sealed segments (64 KiB) */
    uint32_t compact_min_files;   /* compact a run of at least this many small files (4) */
    uint64_t compact_small_bytes; /* a sealed file below this size is small (seal_bytes) */
    uint64_t compact_max_bytes;   /* cap on one compaction's total input (512 MiB) */
    unsigned flags;               /* SL_SEGMENT_* */
};

/* One record. In arguments the pointers are borrowed for the call; from an iterator they
 * point into the iterator's buffers and stay valid until its next call. */
struct sl_segment_record {
    const void *key; /* entity key bytes, compared with memcmp (shorter prefix first) */
    size_t key_len;
    int64_t time_ns; /* event time, ns since the Unix epoch */
    uint64_t seq;    /* write sequence, breaks ties between equal (key, time) */
    const void *payload;
    size_t payload_len;
};

/* What sl_segment_open found and repaired; for the caller to log. */
struct sl_segment_recovery {
    uint64_t active_records;  /* complete records kept in the active segment(s) */
    uint64_t truncated_bytes; /* bytes cut from active tails (torn or corrupt); 0 if none */
    uint64_t truncated_at;    /* file offset where the last cut started */
    unsigned truncated_files; /* active files that had a bad tail */
    unsigned removed_tmp;     /* leftover temporary files removed */
    unsigned removed_superseded; /* files already contained in a sealed segment, removed */
    unsigned sealed_on_open;  /* older active segments sealed during open */
    char msg[512];            /* one-line summary naming the files; "" when nothing happened */
};

struct sl_segment_stats {
    uint64_t sealed_files;
    uint64_t sealed_bytes;
    uint64_t sealed_records;
    uint64_t active_bytes;    /* durable length of the active segment(s), header included */
    uint64_t active_records;  /* durable records in the active segment(s) */
    uint64_t pending_bytes;   /* appended, not yet synced */
    uint64_t pending_records;
};

/* Opens (creating unless SL_SEGMENT_RDONLY) `<data_dir>/offline/<workspace>/<view>/` and
 * recovers it: removes leftover temporary files and files superseded by a sealed segment,
 * truncates a torn or corrupt active tail at its last good record, seals older active segments
 * left by a crash, and checks every sealed footer. workspace and view must be plain file names
 * (no '/', not "." or ".."). With SL_SEGMENT_RDONLY nothing on disk changes: bad tails are
 * only skipped and superseded files ignored. The directory is locked (flock on LOCK): a second
 * writer, or a reader while a writer holds it, gets SL_EBUSY. opts may be NULL; rec may be NULL,
 * otherwise it is filled in on success. Returns 0 and sets *out (caller closes with
 * sl_segment_close), or SL_EINVAL, SL_EBUSY, SL_ENOTFOUND (RDONLY, no directory), SL_ECORRUPT
 * (a sealed footer or an active header failed its check; the message names the file), SL_EIO
 * or SL_ENOMEM with err. Any thread. */
int sl_segment_open(const char *data_dir, const char *workspace, const char *view,
                    const struct sl_segment_opts *opts, struct sl_segment **out,
                    struct sl_segment_recovery *rec, struct sl_error *err);

/* Closes the handle and releases the directory lock. Appends not yet synced are discarded
 * (they were never acknowledged). Iterators opened from seg stay usable. Accepts NULL and
 * half-built handles. Not concurrently with any other call on seg. */
void sl_segment_close(struct sl_segment *seg);

/* The view directory's path; owned by seg, valid until close. Any thread. */
const char *sl_segment_dir(const struct sl_segment *seg);

/* Buffers one record (copied; rec and its bytes are borrowed for the call). Nothing is written
 * until sl_segment_sync. Returns 0, SL_EINVAL (read-only handle), SL_ETOOBIG (key or payload
 * over the limits), SL_ENOMEM, or SL_EIO after an earlier unrecoverable failure. Writer thread
 * only. */
int sl_segment_append(struct sl_segment *seg, const struct sl_segment_record *rec,
                      struct sl_error *err);

/* Writes the buffered records and fdatasyncs (creating the active file on the first records
 * after a seal). On 0 the records are durable and visible to new iterators. On a write failure
 * the group is dropped, the file cut back to its last synced length and SL_EIO returned; the
 * handle stays usable. If fdatasync fails (or the cut does) the handle becomes unusable: every
 * later write call returns SL_EIO and the caller must close and reopen (the records of the
 * failed group may or may not survive). Writer thread only. */
int sl_segment_sync(struct sl_segment *seg, struct sl_error *err);

/* Whether the active segment has passed the size or age threshold at time now_ns (ns since
 * the epoch, normally sl_now_ns()). Writer thread only. */
int sl_segment_seal_due(const struct sl_segment *seg, int64_t now_ns);

/* Seals the active segment (syncing pending records first) into a sorted segment: temp file,
 * fdatasync, rename, directory fsync, then removal of the active file. Blocks while it sorts
 * and writes (up to seal_bytes), so call it after acknowledging a group, not before. Returns 1
 * if a segment was sealed, 0 if there was nothing to seal, or a negative SL_E* with err (the
 * active segment is then left as it was). Writer thread only. */
int sl_segment_seal(struct sl_segment *seg, struct sl_error *err);

/* Sealing off the writer thread, in two steps. sl_segment_rotate (writer thread) makes the
 * pending records durable and closes the active file: later records go to a new one. It
 * returns 1 with the closed file's generation and size, 0 when there was no active file, or
 * a negative SL_E*. sl_segment_seal_rotated (any thread, one at a time per segment) then
 * sorts that file into a sealed segment, which replaces it for readers. Until then readers
 * see it as an active file; a crash in between is recovered by open. Returns as
 * sl_segment_seal. */
int sl_segment_rotate(struct sl_segment *seg, uint64_t *gen, uint64_t *size, struct sl_error *err);
int sl_segment_seal_rotated(struct sl_segment *seg, uint64_t gen, uint64_t size,
                            struct sl_error *err);

/* sl_segment_seal if sl_segment_seal_due(seg, now_ns), else 0. Writer thread only. */
int sl_segment_maybe_seal(struct sl_segment *seg, int64_t now_ns, struct sl_error *err);

/* Merges the first run of at least compact_min_files consecutive small sealed segments (total
 * at most compact_max_bytes) into one, streaming with bounded memory, with the same
 * temp/fsync/rename protocol; the inputs are removed after the output is durable. Returns 1 if
 * it merged, 0 if no run qualifies (or another compaction is running), or a negative SL_E*
 * with err (SL_ECORRUPT if an input block is bad; nothing changes then). May run on a
 * background thread concurrently with the writer thread, not with itself or close. */
int sl_segment_compact(struct sl_segment *seg, struct sl_error *err);

/* Fills *st. Any thread. */
void sl_segment_stats(struct sl_segment *seg, struct sl_segment_stats *st);

/* Sets *seq to the largest durable sequence number and returns 1, or returns 0 when the view
 * holds no records (lets the caller resume numbering after a restart). Any thread. */
int sl_segment_max_seq(struct sl_segment *seg, uint64_t *seq);

/* Iterator bounds. Zeroed (or NULL) means all records. */
struct sl_segment_iter_opts {
    const void *key_lo; /* first entity key, inclusive (NULL: from the start) */
    size_t key_lo_len;
    const void *key_hi; /* last entity key, exclusive (NULL: to the end); to read exactly */
    size_t key_hi_len;  /* key K pass lo = K, hi = K followed by one 0x00 byte */
    int has_time_max;   /* when set, only records with time_ns <= time_max */
    int64_t time_max;
};

/* Opens an iterator over the durable records of seg: every sealed segment plus the active one
 * (read, checked and sorted in memory now: up to seal_bytes of memory and a sort of that many
 * records, so open one iterator per scan and move it with sl_segment_iter_seek rather than
 * opening one per key), merged in (key, time, seq) order. Takes a snapshot: later
 * syncs, seals and compactions do not affect it, and it does not refer to seg after this call
 * returns (it may outlive it). o is copied. Returns 0 and sets *out (caller destroys with
 * sl_segment_iter_destroy), or SL_ECORRUPT / SL_EIO / SL_ENOMEM with err. Any thread; one
 * iterator is used by one thread at a time. */
int sl_segment_iter_open(struct sl_segment *seg, const struct sl_segment_iter_opts *o,
                         struct sl_segment_iter **out, struct sl_error *err);

/* Moves to the next record: returns 1 and fills *rec (pointers valid until the next call on
 * it), 0 at the end, or SL_ECORRUPT (a sealed block failed its checksum or structure check;
 * the message names the file and block) / SL_EIO / SL_ENOMEM with err. Errors are sticky: the
 * iterator returns the same error from then on. Never skips bad data silently. */
int sl_segment_iter_next(struct sl_segment_iter *it, struct sl_segment_record *rec,
                         struct sl_error *err);

/* Repositions at the first record whose key is >= key (forward or backward), using the block
 * index; the upper key bound and time bound of the options still apply. Returns 0 or a
 * negative SL_E* with err (sticky as in next). */
int sl_segment_iter_seek(struct sl_segment_iter *it, const void *key, size_t key_len,
                         struct sl_error *err);

/* Frees it and closes its files. Accepts NULL and half-built iterators. */
void sl_segment_iter_destroy(struct sl_segment_iter *it);

/* Consistent copies. sl_segment_snapshot records the durable files of seg as they are now
 * (sealed files, and active files up to their durable length) and keeps them open, so later
 * seals, compactions and appends do not change what it holds. Returns 0 and sets *out, or
 * SL_EIO / SL_ENOMEM with err. Any thread. sl_segment_snap_write writes that state into dest
 * (an existing, empty directory): sealed files hard-linked (copied when that fails), active
 * files copied up to the recorded length, all synced; adds the bytes to *bytes. src_dir is
 * sl_segment_dir of the segment. Returns 0 or SL_EIO with err. Any thread; s stays valid
 * after seg is closed. sl_segment_snap_free accepts NULL. */
struct sl_segment_snap;
int sl_segment_snapshot(struct sl_segment *seg, struct sl_segment_snap **out, struct sl_error *err);
int sl_segment_snap_write(struct sl_segment_snap *s, const char *src_dir, const char *dest,
                          uint64_t *bytes, struct sl_error *err);
void sl_segment_snap_free(struct sl_segment_snap *s);

/* CRC-32C (Castagnoli) of p[0..n) continued from crc (start with 0). Any thread. */
uint32_t sl_segment_crc32c(uint32_t crc, const void *p, size_t n);

#endif
