/* The writer's value cache (wcache.h): two open-addressing hash tables with linear probing. */
#include "wcache.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    uint64_t hash;
    uint32_t klen, vlen;
    char data[]; /* key, then value */
};

struct slot {
    uint64_t hash; /* beside the pointer: a probe rejects other keys without a cache miss */
    struct entry *e;
};

struct gen {
    struct slot *slot;
    size_t cap, n, bytes; /* cap: a power of two, or 0 */
};

struct sl_wcache {
    size_t budget;
    struct gen young, old;
    uint64_t hits, misses;
};

#define ENTRY_OVERHEAD (sizeof(struct entry) + 2 * sizeof(struct slot))

uint64_t sl_wcache_hash(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static void gen_free(struct gen *g)
{
    for (size_t i = 0; i < g->cap; i++)
        free(g->slot[i].e);
    free(g->slot);
    memset(g, 0, sizeof(*g));
}

/* The slot holding key k, or the empty slot where it would go. g->cap > 0. */
static size_t gen_find(const struct gen *g, uint64_t h, const char *k, size_t klen)
{
    size_t mask = g->cap - 1, i = (size_t)h & mask;
    for (;;) {
        const struct slot *sl = &g->slot[i];
        if (!sl->e || (sl->hash == h && sl->e->klen == klen && memcmp(sl->e->data, k, klen) == 0))
            return i;
        i = (i + 1) & mask;
    }
}

static int gen_grow(struct gen *g)
{
    size_t cap = g->cap ? g->cap * 2 : 1024;
    struct slot *slot = calloc(cap, sizeof(*slot));
    if (!slot)
        return -1;
    struct gen ng = {slot, cap, g->n, g->bytes};
    for (size_t i = 0; i < g->cap; i++)
        if (g->slot[i].e) {
            size_t at = (size_t)g->slot[i].hash & (cap - 1);
            while (ng.slot[at].e)
                at = (at + 1) & (cap - 1);
            ng.slot[at] = g->slot[i];
        }
    free(g->slot);
    *g = ng;
    return 0;
}

/* Removes key k from g (backward-shift deletion keeps every probe chain unbroken). */
static void gen_remove(struct gen *g, uint64_t h, const char *k, size_t klen)
{
    if (!g->cap)
        return;
    size_t mask = g->cap - 1, i = gen_find(g, h, k, klen);
    struct entry *e = g->slot[i].e;
    if (!e)
        return;
    g->bytes -= ENTRY_OVERHEAD + e->klen + e->vlen;
    g->n--;
    free(e);
    g->slot[i].e = NULL;
    for (size_t j = (i + 1) & mask; g->slot[j].e; j = (j + 1) & mask) {
        size_t home = (size_t)g->slot[j].hash & mask;
        /* move j back into the hole at i when its home is not in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            g->slot[i] = g->slot[j];
            g->slot[j].e = NULL;
            i = j;
        }
    }
}

struct sl_wcache *sl_wcache_new(size_t budget)
{
    struct sl_wcache *c = calloc(1, sizeof(*c));
    if (c)
        c->budget = budget;
    return c;
}

void sl_wcache_free(struct sl_wcache *c)
{
    if (!c)
        return;
    gen_free(&c->young);
    gen_free(&c->old);
    free(c);
}

static const struct entry *lookup(const struct gen *g, uint64_t h, const char *k, size_t klen)
{
    return g->cap ? g->slot[gen_find(g, h, k, klen)].e : NULL;
}

int sl_wcache_get(struct sl_wcache *c, const char *k, size_t klen, const char **v, size_t *vlen)
{
    uint64_t h = sl_wcache_hash(k, klen);
    const struct entry *e = lookup(&c->young, h, k, klen);
    if (!e)
        e = lookup(&c->old, h, k, klen);
    if (!e) {
        c->misses++;
        return 0;
    }
    c->hits++;
    *v = e->data + e->klen;
    *vlen = e->vlen;
    return 1;
}

void sl_wcache_put(struct sl_wcache *c, const char *k, size_t klen, const char *v, size_t vlen)
{
    uint64_t h = sl_wcache_hash(k, klen);
    size_t size = ENTRY_OVERHEAD + klen + vlen;
    if (c->young.bytes + size > c->budget / 2) { /* the young generation is full: age it */
        gen_free(&c->old);
        c->old = c->young;
        memset(&c->young, 0, sizeof(c->young));
    }
    gen_remove(&c->old, h, k, klen); /* the young entry is the only one from here on */
    if (klen > UINT32_MAX || vlen > UINT32_MAX || size > c->budget / 8) {
        gen_remove(&c->young, h, k, klen);
        return;
    }
    struct entry *e = malloc(sizeof(*e) + klen + vlen);
    if (!e || ((c->young.n + 1) * 2 > c->young.cap && gen_grow(&c->young) != 0)) {
        free(e);
        gen_remove(&c->young, h, k, klen);
        return;
    }
    e->hash = h;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    memcpy(e->data, k, klen);
    if (vlen)
        memcpy(e->data + klen, v, vlen);
    size_t i = gen_find(&c->young, h, k, klen);
    struct entry *was = c->young.slot[i].e;
    if (was) {
        c->young.bytes -= ENTRY_OVERHEAD + was->klen + was->vlen;
        free(was);
    } else {
        c->young.n++;
    }
    c->young.slot[i] = (struct slot){h, e};
    c->young.bytes += size;
}

void sl_wcache_clear(struct sl_wcache *c)
{
    gen_free(&c->young);
    gen_free(&c->old);
}

void sl_wcache_stats(const struct sl_wcache *c, struct sl_wcache_stats *out)
{
    out->hits = c->hits;
    out->misses = c->misses;
    out->bytes = c->young.bytes + c->old.bytes;
    out->entries = c->young.n + c->old.n;
}
