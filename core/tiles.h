/* Online aggregation state of aggregate feature views (DESIGN §5): partial-aggregate tiles
 * with roll-up levels (time_interval mode), lifetime values, and per-entity event logs
 * (continuous mode) — how ingest writes them and how serving reads them. The functions
 * themselves are the aggregation engine's (agg.h); this file decides keys and layout.
 *
 * Keys, after 'G' (SL_KEY_AGG) + the view's 8-byte prefix + the entity's join key values (u32 length +
 * bytes each):
 *   tile      level byte (0..15) + start (8 bytes, big-endian, sign bit flipped)
 *   lifetime  0xFE
 *   event     0xFD + ts (8 bytes, as tile starts) + write sequence (8 bytes big-endian)
 * A tile or lifetime value holds one u32-length-prefixed state per feature of the view, in
 * declaration order (empty for the features that do not use that kind of key); an event
 * value holds one sl_agg_value_encode'd value per feature. */
#ifndef SL_TILES_H
#define SL_TILES_H

#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "mutation.h"

struct sl_buf;
struct sl_error;
struct sl_scalar;
struct sl_store;
struct sl_view;

struct sl_tiles_view {
    size_t nspecs;
    struct sl_agg_spec **specs;  /* one per feature of the view */
    int continuous;              /* no aggregation interval */
    int has_windowed, has_lifetime;
    struct sl_agg_tiling tiling; /* time_interval mode, over the windowed features */
    int64_t max_span;            /* continuous: how far back a read looks */
};

/* Compiles the aggregate features of v. Returns 0 and *out (free with sl_tiles_view_free),
 * or SL_ESCHEMA / SL_ENOMEM with err. */
int sl_tiles_view_new(const struct sl_view *v, struct sl_tiles_view **out, struct sl_error *err);
void sl_tiles_view_free(struct sl_tiles_view *tv);

/* The mutation kinds tiles emit and apply (SL_MUT_MERGE, SL_MUT_LIFETIME, SL_MUT_PUT) are
 * in mutation.h. */

/* Emitted per mutation by sl_tiles_acc_finish: key, kind and value are borrowed for the call.
 * Return 0 or a negative status to stop. */
typedef int (*sl_tiles_emit)(void *arg, const struct sl_tiles_view *tv, enum sl_mutation_kind kind,
                             const char *key, size_t klen, const char *val, size_t vlen);

/* The events of one request for aggregate views, folded into mutations on the loop thread so
 * the writer does one read-modify-write per touched key. One thread. */
struct sl_tiles_acc;
struct sl_tiles_scratch;
struct sl_tiles_acc *sl_tiles_acc_new(void);
void sl_tiles_acc_free(struct sl_tiles_acc *acc);
/* Adds one event of view tv for entity (the join key parts, u32-length-prefixed, as in the
 * key layout above) with the value of each feature's column in vals[feature]. Returns 0 or
 * SL_ENOMEM. */
int sl_tiles_acc_add(struct sl_tiles_acc *acc, const struct sl_tiles_view *tv,
                     const unsigned char viewkey[8], const char *entity, size_t elen, int64_t ts,
                     uint64_t seq, const struct sl_scalar *vals);
/* Emits the mutations of everything added. Returns 0, SL_ENOMEM or emit's status. */
int sl_tiles_acc_finish(struct sl_tiles_acc *acc, sl_tiles_emit emit, void *arg);

/* Writer thread: applies one mutation of kind to the current stored value cur[0..curlen)
 * (curlen 0 and cur NULL when absent), appending the new value to out. */
int sl_tiles_apply(const struct sl_tiles_view *tv, enum sl_mutation_kind kind, const char *cur,
                   size_t curlen, const char *val, size_t vlen, struct sl_buf *out);

/* Writer thread: the key of the top-level tile that contains the tile of MERGE key
 * k[0..klen) of tv, appended to out. Ingest writes an event's tile at every level (a late
 * event's finer tiles are skipped before its coarser ones) and retention deletes a finer tile
 * no later than the coarser one around it, so when that top-level key is absent, k is too:
 * one lookup answers for all of an entity's new tiles. Returns 0, or -1 when k is itself a
 * top-level tile or not a tile key of tv. */
int sl_tiles_top_key(const struct sl_tiles_view *tv, const char *k, size_t klen,
                     struct sl_buf *out);

/* Serving: appends the JSON values of features feat[0..nfeat) of tv for one entity at read
 * time now to vals, the value of feat[i] at vals->p + off[i] (len[i] bytes); sets present[i]
 * when that feature saw at least one event in its window and eff[i] to the value's
 * effective time. Returns 0, or SL_ESTORE / SL_ECORRUPT / SL_ENOMEM with err. Any thread. */
int sl_tiles_read(const struct sl_tiles_view *tv, struct sl_store *s,
                  const unsigned char viewkey[8], const char *entity, size_t elen, int64_t now,
                  const int *feat, size_t nfeat, struct sl_buf *vals, size_t *off, size_t *len,
                  int *present, int64_t *eff, struct sl_tiles_scratch *sc, struct sl_error *err);

/* Invalidation of cached reads: the bytes that name a view's entity in its keys ('G', the
 * view prefix, the join key parts), and the length of that prefix in the key of a mutation
 * of the given kind (0 for a kind that is not an aggregation mutation). */
void sl_tiles_entity_key(struct sl_buf *out, const unsigned char viewkey[8], const char *entity,
                         size_t elen);
size_t sl_tiles_mutation_entity_len(enum sl_mutation_kind kind, size_t klen);

/* Buffers a read reuses from one call to the next (one per thread; NULL to sl_tiles_read
 * allocates its own). sl_tiles_scratch_trim frees what grew past a large read. */
struct sl_tiles_scratch *sl_tiles_scratch_new(void);
void sl_tiles_scratch_trim(struct sl_tiles_scratch *sc);
void sl_tiles_scratch_free(struct sl_tiles_scratch *sc);

/* Retention: deletes the view's tiles that end at or before the horizon of every windowed
 * feature (no read at now or later covers them) and event-log entries before it; lifetime
 * states stay. nkeys is the view's number of join keys. Sets *deleted. Returns 0 or a store
 * error. Any thread (old keys are never written again by ingest). */
int sl_tiles_compact(const struct sl_tiles_view *tv, const unsigned char viewkey[8],
                     size_t nkeys, struct sl_store *s, int64_t now, size_t *deleted,
                     struct sl_error *err);

#endif
