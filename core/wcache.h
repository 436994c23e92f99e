/* The writer's value cache: the last value the writer thread wrote under a key, so that the
 * read-modify-write of an aggregation tile or the newer-row check of an attribute row reads
 * memory instead of the online store. Two generations approximate LRU at O(1) per call:
 * writes go to the young table; when it holds half the budget, the old table is dropped and
 * the young one becomes old. A key absent from both is read from the store as before.
 *
 * Coherence is the owner's duty: the cache must hold only what the store holds. The writer
 * puts a value when it stages the write and clears the cache when a write fails or when
 * anything else (retention) deletes keys. One thread; not locked. */
#ifndef SL_WCACHE_H
#define SL_WCACHE_H

#include <stddef.h>
#include <stdint.h>

struct sl_wcache;

/* budget: bytes of keys, values and overhead the two generations may hold (0: a cache that
 * keeps nothing). NULL when out of memory. */
struct sl_wcache *sl_wcache_new(size_t budget);
void sl_wcache_free(struct sl_wcache *c);

/* 1 with the value (*v, *vlen: valid until the next put or clear), 0 when not cached. */
int sl_wcache_get(struct sl_wcache *c, const char *k, size_t klen, const char **v, size_t *vlen);

/* Caches value v for key k (replacing any). Out of memory drops the entry; the cache stays
 * coherent (a later get misses). */
void sl_wcache_put(struct sl_wcache *c, const char *k, size_t klen, const char *v, size_t vlen);

/* Forgets every entry. */
void sl_wcache_clear(struct sl_wcache *c);

/* The hash the cache uses, for other tables keyed by the same bytes. */
uint64_t sl_wcache_hash(const char *k, size_t n);

struct sl_wcache_stats {
    uint64_t hits, misses;
    size_t bytes, entries;
};
void sl_wcache_stats(const struct sl_wcache *c, struct sl_wcache_stats *out);

#endif
