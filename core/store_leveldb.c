/* The embedded online store: LevelDB through its C API. The only file that includes it. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>

#include "error.h"

struct ldb {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *filter;
    leveldb_readoptions_t *ropts;
    leveldb_writeoptions_t *wsync, *wnosync;
};

static int ldb_fail(struct sl_error *err, const char *what, char *lerr)
{
    sl_error_set(err, SL_ESTORE, "leveldb %s: %s", what, lerr ? lerr : "unknown error");
    leveldb_free(lerr);
    return SL_ESTORE;
}

static int ldb_get(void *ctx, const char *k, size_t klen, struct sl_buf *val, struct sl_error *err)
{
    struct ldb *l = ctx;
    char *lerr = NULL;
    size_t vlen = 0;
    char *v = leveldb_get(l->db, l->ropts, k, klen, &vlen, &lerr);
    if (lerr)
        return ldb_fail(err, "get", lerr);
    if (!v)
        return SL_ENOTFOUND;
    sl_buf_append(val, v, vlen);
    leveldb_free(v);
    if (val->oom)
        return sl_error_set(err, SL_ENOMEM, "out of memory reading a value");
    return 0;
}

static int add_op(void *arg, int op, const char *k, size_t kl, const char *v, size_t vl)
{
    leveldb_writebatch_t *wb = arg;
    if (op == 'P')
        leveldb_writebatch_put(wb, k, kl, v, vl);
    else
        leveldb_writebatch_delete(wb, k, kl);
    return 0;
}

static int ldb_write(void *ctx, const struct sl_batch *b, int sync, struct sl_error *err)
{
    struct ldb *l = ctx;
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    char *lerr = NULL;
    if (sl_batch_each(b, add_op, wb) != 0) {
        leveldb_writebatch_destroy(wb);
        return sl_error_set(err, SL_ECORRUPT, "malformed write batch");
    }
    leveldb_write(l->db, sync ? l->wsync : l->wnosync, wb, &lerr);
    leveldb_writebatch_destroy(wb);
    if (lerr)
        return ldb_fail(err, "write", lerr);
    return 0;
}

static int ldb_scan(void *ctx, const char *prefix, size_t plen, const char *start, size_t slen,
                    sl_scan_cb cb, void *arg, struct sl_error *err)
{
    struct ldb *l = ctx;
    leveldb_iterator_t *it = leveldb_create_iterator(l->db, l->ropts);
    int rc = 0;
    for (leveldb_iter_seek(it, start, slen); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl < plen || memcmp(k, prefix, plen) != 0)
            break;
        const char *v = leveldb_iter_value(it, &vl);
        rc = cb(arg, k, kl, v, vl);
        if (rc != 0)
            break;
    }
    if (rc >= 0) {
        char *lerr = NULL;
        leveldb_iter_get_error(it, &lerr);
        if (lerr)
            rc = ldb_fail(err, "scan", lerr);
        else
            rc = 0;
    }
    leveldb_iter_destroy(it);
    return rc;
}

static void ldb_close(void *ctx)
{
    struct ldb *l = ctx;
    if (!l)
        return;
    if (l->db)
        leveldb_close(l->db);
    if (l->opts)
        leveldb_options_destroy(l->opts);
    if (l->cache)
        leveldb_cache_destroy(l->cache);
    if (l->filter)
        leveldb_filterpolicy_destroy(l->filter);
    if (l->ropts)
        leveldb_readoptions_destroy(l->ropts);
    if (l->wsync)
        leveldb_writeoptions_destroy(l->wsync);
    if (l->wnosync)
        leveldb_writeoptions_destroy(l->wnosync);
    free(l);
}

static void *ldb_iter_new(void *ctx)
{
    struct ldb *l = ctx;
    return leveldb_create_iterator(l->db, l->ropts);
}

static int ldb_iter_seek(void *it, const char *k, size_t klen)
{
    leveldb_iter_seek(it, k, klen);
    return leveldb_iter_valid(it);
}

static int ldb_iter_next(void *it)
{
    leveldb_iter_next(it);
    return leveldb_iter_valid(it);
}

static const char *ldb_iter_key(void *it, size_t *len)
{
    return leveldb_iter_key(it, len);
}

static const char *ldb_iter_value(void *it, size_t *len)
{
    return leveldb_iter_value(it, len);
}

static void ldb_iter_free(void *it)
{
    if (it)
        leveldb_iter_destroy(it);
}

static void ldb_compact(void *ctx, const char *lo, size_t lolen, const char *hi, size_t hilen)
{
    struct ldb *l = ctx;
    leveldb_compact_range(l->db, lo, lolen, hi, hilen);
}

static void *ldb_snapshot(void *ctx)
{
    struct ldb *l = ctx;
    return (void *)leveldb_create_snapshot(l->db);
}

static void ldb_snapshot_free(void *ctx, void *snap)
{
    struct ldb *l = ctx;
    if (snap)
        leveldb_release_snapshot(l->db, snap);
}

#define COPY_BATCH_KEYS 4096

static int ldb_snapshot_copy(void *ctx, void *snap, const char *dir, uint64_t *keys,
                             struct sl_error *err)
{
    struct ldb *l = ctx;
    char *lerr = NULL;
    int rc = 0;
    leveldb_options_t *o = leveldb_options_create();
    leveldb_options_set_create_if_missing(o, 1);
    leveldb_options_set_error_if_exists(o, 1);
    leveldb_t *db = leveldb_open(o, dir, &lerr);
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    leveldb_readoptions_set_snapshot(ro, snap);
    leveldb_readoptions_set_fill_cache(ro, 0);
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    if (lerr) {
        rc = ldb_fail(err, "open", lerr);
        sl_error_prefix(err, "%s: ", dir);
    }
    leveldb_iterator_t *it = rc == 0 ? leveldb_create_iterator(l->db, ro) : NULL;
    size_t inbatch = 0;
    for (it ? leveldb_iter_seek_to_first(it) : (void)0; it && leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl), *v = leveldb_iter_value(it, &vl);
        leveldb_writebatch_put(wb, k, kl, v, vl);
        (*keys)++;
        if (++inbatch == COPY_BATCH_KEYS) {
            leveldb_write(db, wo, wb, &lerr);
            leveldb_writebatch_clear(wb);
            inbatch = 0;
            if (lerr) {
                rc = ldb_fail(err, "write", lerr);
                break;
            }
        }
    }
    if (it) {
        leveldb_iter_get_error(it, &lerr);
        if (lerr && rc == 0)
            rc = ldb_fail(err, "iterate", lerr);
        else
            leveldb_free(lerr);
        lerr = NULL;
        leveldb_iter_destroy(it);
    }
    if (rc == 0) { /* the last batch, synced: the copy is durable */
        leveldb_writeoptions_set_sync(wo, 1);
        leveldb_write(db, wo, wb, &lerr);
        if (lerr)
            rc = ldb_fail(err, "write", lerr);
    }
    leveldb_writebatch_destroy(wb);
    leveldb_writeoptions_destroy(wo);
    leveldb_readoptions_destroy(ro);
    if (db)
        leveldb_close(db);
    leveldb_options_destroy(o);
    return rc;
}

static int ldb_open(void *plugin_ctx, const char *dir, size_t cache_mb, void **ctx,
                    struct sl_error *err)
{
    struct ldb *l = calloc(1, sizeof(*l));
    char *lerr = NULL;
    if (!l)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    l->opts = leveldb_options_create();
    l->cache = leveldb_cache_create_lru((cache_mb ? cache_mb : 64) << 20);
    l->filter = leveldb_filterpolicy_create_bloom(10);
    leveldb_options_set_create_if_missing(l->opts, 1);
    leveldb_options_set_cache(l->opts, l->cache);
    leveldb_options_set_filter_policy(l->opts, l->filter);
    leveldb_options_set_write_buffer_size(l->opts, 32u << 20);
    leveldb_options_set_max_open_files(l->opts, 1000);
    l->ropts = leveldb_readoptions_create();
    l->wsync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(l->wsync, 1);
    l->wnosync = leveldb_writeoptions_create();
    l->db = leveldb_open(l->opts, dir, &lerr);
    if (lerr) {
        ldb_fail(err, "open", lerr);
        sl_error_prefix(err, "%s: ", dir);
        ldb_close(l);
        return SL_ESTORE;
    }
    *ctx = l;
    return 0;
}

const struct sl_store_ops sl_store_leveldb_ops = {
    .abi_version = SL_STORE_ABI_VERSION,
    .struct_size = sizeof(struct sl_store_ops),
    .name = "leveldb",
    .open = ldb_open,
    .get = ldb_get,
    .write = ldb_write,
    .scan = ldb_scan,
    .close = ldb_close,
    .iter_new = ldb_iter_new,
    .iter_seek = ldb_iter_seek,
    .iter_next = ldb_iter_next,
    .iter_key = ldb_iter_key,
    .iter_value = ldb_iter_value,
    .iter_free = ldb_iter_free,
    .compact = ldb_compact,
    .snapshot = ldb_snapshot,
    .snapshot_copy = ldb_snapshot_copy,
    .snapshot_free = ldb_snapshot_free,
};

int sl_store_leveldb_open(const char *dir, size_t cache_mb, struct sl_store *out,
                          struct sl_error *err)
{
    void *ctx = NULL;
    int rc = ldb_open(NULL, dir, cache_mb, &ctx, err);
    if (rc)
        return rc;
    out->ops = &sl_store_leveldb_ops;
    out->ctx = ctx;
    return 0;
}
