/* store_mem: an online store plugin for tests — a sorted array in memory behind a read-write
 * lock, without the optional iterators. Not durable (a restart starts empty): it exists to
 * show that a server runs on a store it only knows through struct sl_store_ops. Built out of
 * tree by tests/integration/test_plugins.py against the installed sluice/plugin.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/plugin.h>

static const struct sl_plugin_api *api;
static struct sl_metric *writes;

struct ent {
    char *k, *v;
    size_t kl, vl;
};

struct mem {
    pthread_rwlock_t lock;
    struct ent *e;
    size_t n, cap;
};

static int cmp(const char *a, size_t al, const char *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    return c ? c : al < bl ? -1 : al > bl;
}

/* Index of the first entry >= k; *found when equal. */
static size_t seek(const struct mem *m, const char *k, size_t kl, int *found)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp(m->e[mid].k, m->e[mid].kl, k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < m->n && cmp(m->e[lo].k, m->e[lo].kl, k, kl) == 0;
    return lo;
}

static char *dup(const char *p, size_t n)
{
    char *d = api->malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

static int apply_op(void *arg, int op, const char *k, size_t kl, const char *v, size_t vl)
{
    struct mem *m = arg;
    int found;
    size_t i = seek(m, k, kl, &found);
    if (op == 'D') {
        if (found) {
            api->free(m->e[i].k);
            api->free(m->e[i].v);
            memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof *m->e);
            m->n--;
        }
        return 0;
    }
    char *nv = dup(v, vl);
    if (!nv)
        return SL_ENOMEM;
    if (found) {
        api->free(m->e[i].v);
        m->e[i].v = nv;
        m->e[i].vl = vl;
        return 0;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        struct ent *p = api->realloc(m->e, cap * sizeof *p);
        if (!p) {
            api->free(nv);
            return SL_ENOMEM;
        }
        m->e = p;
        m->cap = cap;
    }
    char *nk = dup(k, kl);
    if (!nk) {
        api->free(nv);
        return SL_ENOMEM;
    }
    memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof *m->e);
    m->e[i] = (struct ent){nk, nv, kl, vl};
    m->n++;
    return 0;
}

static int mem_open(void *plugin_ctx, const char *dir, size_t cache_mb, void **ctx,
                    struct sl_error *err)
{
    struct mem *m = api->calloc(1, sizeof *m);
    if (!m)
        return api->error_set(err, SL_ENOMEM, "out of memory");
    pthread_rwlock_init(&m->lock, NULL);
    *ctx = m;
    return 0;
}

static void mem_close(void *ctx)
{
    struct mem *m = ctx;
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        api->free(m->e[i].k);
        api->free(m->e[i].v);
    }
    api->free(m->e);
    pthread_rwlock_destroy(&m->lock);
    api->free(m);
}

static int mem_get(void *ctx, const char *k, size_t kl, struct sl_buf *val, struct sl_error *err)
{
    struct mem *m = ctx;
    int found;
    pthread_rwlock_rdlock(&m->lock);
    size_t i = seek(m, k, kl, &found);
    if (found)
        api->buf_append(val, m->e[i].v, m->e[i].vl);
    pthread_rwlock_unlock(&m->lock);
    return found ? 0 : SL_ENOTFOUND;
}

static int mem_write(void *ctx, const struct sl_batch *b, int sync, struct sl_error *err)
{
    struct mem *m = ctx;
    pthread_rwlock_wrlock(&m->lock);
    int rc = api->batch_each(b, apply_op, m);
    pthread_rwlock_unlock(&m->lock);
    if (rc)
        return api->error_set(err, SL_ESTORE, "store_mem: write failed (%d)", rc);
    api->metric_add(writes, 1);
    return 0;
}

static int mem_scan(void *ctx, const char *prefix, size_t plen, const char *start, size_t slen,
                    sl_scan_cb cb, void *arg, struct sl_error *err)
{
    struct mem *m = ctx;
    int found, rc = 0;
    pthread_rwlock_rdlock(&m->lock);
    for (size_t i = seek(m, start, slen, &found); i < m->n; i++) {
        if (m->e[i].kl < plen || memcmp(m->e[i].k, prefix, plen) != 0)
            break;
        rc = cb(arg, m->e[i].k, m->e[i].kl, m->e[i].v, m->e[i].vl);
        if (rc)
            break;
    }
    pthread_rwlock_unlock(&m->lock);
    return rc < 0 ? rc : 0;
}

static const struct sl_store_ops ops = {
    .abi_version = SL_STORE_ABI_VERSION,
    .struct_size = sizeof(struct sl_store_ops),
    .name = "store_mem",
    .open = mem_open,
    .get = mem_get,
    .write = mem_write,
    .scan = mem_scan,
    .close = mem_close,
};

static int init(const struct sl_plugin_api *a, const struct sl_plugin_handle *self, void **ctx,
                struct sl_error *err)
{
    api = a;
    writes = api->counter_new(self, "writes", "Batches written.");
    return writes ? 0 : api->error_set(err, SL_ENOMEM, "out of memory");
}

static const struct sl_plugin plugin = {
    .abi_major = SL_PLUGIN_ABI_MAJOR,
    .abi_minor = SL_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(struct sl_plugin),
    .kind = SL_PLUGIN_STORE,
    .name = "store_mem",
    .version = "0.1",
    .description = "in-memory online store for tests",
    .cb_init = init,
    .ops = &ops,
};

SL_PLUGIN_EXPORT const struct sl_plugin *SL_PLUGIN_ENTRY(void)
{
    return &plugin;
}
