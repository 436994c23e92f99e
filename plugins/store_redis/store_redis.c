/* store_redis — the online store on a standalone Redis server, over hiredis (DESIGN §7).
 *
 * Layout in Redis. Each Sluice key belongs to a group named by its tag: for rows ('V') and
 * aggregation keys ('G') the first byte, the 8-byte view key and the first join key (its
 * u32 length and bytes), so all keys of one entity of one view are in one group; for every
 * other subsystem ('R', 'A', 'B', 'J', 'F') the first byte alone. A group is two Redis keys
 * sharing the hash tag {hex(tag)}: a hash `<prefix>h{..}` of key → value and a sorted set
 * `<prefix>z{..}` of the keys (score 0, so ZRANGEBYLEX orders them bytewise, as the scan
 * contract wants). Groups of rows and aggregates are listed per view in `<prefix>g{hex(first
 * 9 bytes)}` so a scan of a whole view (compaction) visits its groups in order; tags are
 * prefix-free, so groups in tag order then keys in byte order is the global byte order.
 *
 * A write batch is one MULTI/EXEC on the writer's own connection (all or nothing); with a
 * synced write and redis-wait-replicas > 0, WAIT follows it on that connection, which covers
 * every earlier write of the group. Reads take a connection from a small pool, so any
 * thread may read. See README.md for durability and what is not done (Cluster). */
#include <sluice/plugin.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

static const struct sl_plugin_api *api;

#define SCAN_PAGE 256 /* keys fetched per round trip of a scan */

/* The plugin's ctx (cb_init), handed to open. */
struct plugin_state {
    const struct sl_plugin_handle *self;
    struct sl_metric *writes, *errors, *conflicts;
};

struct conn {
    redisContext *c;
    struct conn *next;
};

struct rstore {
    char host[256];
    int port;
    char unix_path[256];
    char prefix[128];
    size_t plen;
    int wait_replicas;
    int wait_timeout_ms;
    int timeout_ms;
    pthread_mutex_t mu; /* guards idle */
    struct conn *idle;
    pthread_mutex_t wmu; /* guards writer */
    redisContext *writer;
    int watching; /* the writer connection has keys under WATCH */
    struct sl_metric *m_writes, *m_errors, *m_conflicts;
};

/* The store whose optimistic read-modify-write the calling thread (the writer) is in, set by
 * rmw_begin and cleared by the next write. */
static __thread struct rstore *txn_of;

/* ---- keys ---- */

static uint32_t get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Length of k's group tag (see the top of the file). */
static size_t tag_len(const char *k, size_t kl)
{
    if (kl == 0)
        return 0;
    if ((k[0] == 'G' || k[0] == 'V') && kl >= 13) {
        uint32_t n = get_u32le((const unsigned char *)k + 9);
        if ((size_t)n <= kl - 13)
            return 13 + (size_t)n;
    }
    return 1;
}

/* Whether keys with this first byte have per-entity tags listed in a view's g-set. */
static int entity_tagged(char first)
{
    return first == 'G' || first == 'V';
}

/* Appends <prefix><kind>{hex(tag)} to out (a plain byte buffer managed here). */
struct bytes {
    char *p;
    size_t len, cap;
    int oom;
};

static void by_add(struct bytes *b, const void *p, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void redis_key(struct bytes *b, const struct rstore *r, char kind, const char *tag,
                      size_t tl)
{
    static const char hex[] = "0123456789abcdef";
    char h[2];
    by_add(b, r->prefix, r->plen);
    by_add(b, &kind, 1);
    by_add(b, "{", 1);
    for (size_t i = 0; i < tl; i++) {
        h[0] = hex[(unsigned char)tag[i] >> 4];
        h[1] = hex[(unsigned char)tag[i] & 15];
        by_add(b, h, 2);
    }
    by_add(b, "}", 1);
}

/* ---- connections ---- */

static redisContext *dial(struct rstore *r, struct sl_error *err)
{
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    redisContext *c = r->unix_path[0] ? redisConnectUnixWithTimeout(r->unix_path, tv)
                                      : redisConnectWithTimeout(r->host, r->port, tv);
    if (!c || c->err) {
        api->error_set(err, SL_ESTORE, "redis: cannot connect to %s%s%d: %s",
                       r->unix_path[0] ? r->unix_path : r->host, r->unix_path[0] ? "" : ":",
                       r->unix_path[0] ? 0 : r->port, c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

static redisContext *conn_take(struct rstore *r, struct sl_error *err)
{
    pthread_mutex_lock(&r->mu);
    struct conn *k = r->idle;
    if (k)
        r->idle = k->next;
    pthread_mutex_unlock(&r->mu);
    if (k) {
        redisContext *c = k->c;
        free(k);
        return c;
    }
    return dial(r, err);
}

/* Returns c to the pool, or frees it when it failed (the next call dials anew). */
static void conn_give(struct rstore *r, redisContext *c)
{
    struct conn *k;
    if (!c)
        return;
    if (c->err || !(k = malloc(sizeof(*k)))) {
        redisFree(c);
        return;
    }
    k->c = c;
    pthread_mutex_lock(&r->mu);
    k->next = r->idle;
    r->idle = k;
    pthread_mutex_unlock(&r->mu);
}

static int reply_fail(struct rstore *r, redisContext *c, redisReply *rep, const char *what,
                      struct sl_error *err)
{
    if (r->m_errors)
        api->metric_add(r->m_errors, 1);
    if (!rep)
        return api->error_set(err, SL_ESTORE, "redis %s: %s", what,
                              c->errstr[0] ? c->errstr : "no reply");
    int rc = api->error_set(err, SL_ESTORE, "redis %s: %.*s", what,
                            rep->type == REDIS_REPLY_ERROR ? (int)rep->len : 16,
                            rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    return rc;
}

/* The writer connection, dialled again after a failure. Call with wmu held. */
static redisContext *writer_conn(struct rstore *r, struct sl_error *err)
{
    if (r->writer && r->writer->err) {
        redisFree(r->writer);
        r->writer = NULL;
        r->watching = 0;
    }
    if (!r->writer && (r->writer = dial(r, err)) != NULL && r->wait_replicas > 0 &&
        r->wait_timeout_ms + 1000 > r->timeout_ms) {
        /* WAIT blocks up to its own timeout: the socket must not give up first */
        int ms = r->wait_timeout_ms + 1000;
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        redisSetTimeout(r->writer, tv);
    }
    return r->writer;
}

/* ---- get ---- */

static int rs_get(void *ctx, const char *k, size_t klen, struct sl_buf *val, struct sl_error *err)
{
    struct rstore *r = ctx;
    struct bytes h = {0};
    redis_key(&h, r, 'h', k, tag_len(k, klen));
    if (h.oom) {
        free(h.p);
        return api->error_set(err, SL_ENOMEM, "out of memory");
    }
    const char *argv[3] = {"HGET", h.p, k};
    size_t argl[3] = {4, h.len, klen};
    redisReply *rep = NULL;
    redisContext *c;
    int txn = txn_of == r;
    if (txn) {
        /* in a read-modify-write: WATCH the entity's hash with the read, one round trip */
        pthread_mutex_lock(&r->wmu);
        c = writer_conn(r, err);
        const char *wv[2] = {"WATCH", h.p};
        size_t wl[2] = {5, h.len};
        void *p = NULL;
        if (c && redisAppendCommandArgv(c, 2, wv, wl) == REDIS_OK &&
            redisAppendCommandArgv(c, 3, argv, argl) == REDIS_OK &&
            redisGetReply(c, &p) == REDIS_OK) {
            r->watching = 1;
            freeReplyObject(p);
            p = NULL;
            if (redisGetReply(c, &p) == REDIS_OK)
                rep = p;
        }
    } else {
        c = conn_take(r, err);
        if (c)
            rep = redisCommandArgv(c, 3, argv, argl);
    }
    if (!c) {
        if (txn)
            pthread_mutex_unlock(&r->wmu);
        free(h.p);
        return SL_ESTORE;
    }
    int rc;
    if (!rep || (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_NIL))
        rc = reply_fail(r, c, rep, "HGET", err);
    else if (rep->type == REDIS_REPLY_NIL)
        rc = SL_ENOTFOUND;
    else {
        api->buf_append(val, rep->str, rep->len);
        rc = 0;
    }
    if (rep)
        freeReplyObject(rep);
    if (txn)
        pthread_mutex_unlock(&r->wmu);
    else
        conn_give(r, c);
    free(h.p);
    return rc;
}

static int rs_rmw_begin(void *ctx, struct sl_error *err)
{
    struct rstore *r = ctx;
    int rc = 0;
    pthread_mutex_lock(&r->wmu);
    redisContext *c = writer_conn(r, err);
    if (!c) {
        rc = SL_ESTORE;
    } else if (r->watching) { /* an earlier read-modify-write that wrote nothing */
        redisReply *rep = redisCommand(c, "UNWATCH");
        if (!rep || rep->type != REDIS_REPLY_STATUS)
            rc = reply_fail(r, c, rep, "UNWATCH", err);
        else
            r->watching = 0;
        if (rep)
            freeReplyObject(rep);
    }
    pthread_mutex_unlock(&r->wmu);
    txn_of = rc == 0 ? r : NULL;
    return rc;
}

/* ---- write ---- */

struct wctx {
    struct rstore *r;
    redisContext *c;
    size_t queued; /* commands appended after MULTI */
    struct bytes key, key2;
    int rc;
};

static int append_argv(struct wctx *w, int argc, const char **argv, const size_t *argl)
{
    if (redisAppendCommandArgv(w->c, argc, argv, argl) != REDIS_OK)
        return SL_ENOMEM;
    w->queued++;
    return 0;
}

static int queue_op(void *arg, int op, const char *k, size_t kl, const char *v, size_t vl)
{
    struct wctx *w = arg;
    size_t tl = tag_len(k, kl);
    w->key.len = w->key2.len = 0;
    redis_key(&w->key, w->r, 'h', k, tl);
    redis_key(&w->key2, w->r, 'z', k, tl);
    if (w->key.oom || w->key2.oom)
        return SL_ENOMEM;
    if (op == 'P') {
        const char *a1[4] = {"HSET", w->key.p, k, v};
        size_t l1[4] = {4, w->key.len, kl, vl};
        const char *a2[4] = {"ZADD", w->key2.p, "0", k};
        size_t l2[4] = {4, w->key2.len, 1, kl};
        if (append_argv(w, 4, a1, l1) || append_argv(w, 4, a2, l2))
            return SL_ENOMEM;
        if (entity_tagged(k[0]) && tl > 9) {
            w->key.len = 0;
            redis_key(&w->key, w->r, 'g', k, 9);
            const char *a3[4] = {"ZADD", w->key.p, "0", k};
            size_t l3[4] = {4, w->key.len, 1, tl};
            if (w->key.oom || append_argv(w, 4, a3, l3))
                return SL_ENOMEM;
        }
    } else {
        const char *a1[3] = {"HDEL", w->key.p, k};
        size_t l1[3] = {4, w->key.len, kl};
        const char *a2[3] = {"ZREM", w->key2.p, k};
        size_t l2[3] = {4, w->key2.len, kl};
        if (append_argv(w, 3, a1, l1) || append_argv(w, 3, a2, l2))
            return SL_ENOMEM;
    }
    return 0;
}

static int count_op(void *arg, int op, const char *k, size_t kl, const char *v, size_t vl)
{
    return 1;
}

static int batch_empty(const struct sl_batch *b)
{
    return api->batch_each(b, count_op, NULL) == 0;
}

static int rs_write(void *ctx, const struct sl_batch *b, int sync, struct sl_error *err)
{
    struct rstore *r = ctx;
    struct wctx w = {.r = r};
    redisReply *rep = NULL;
    int rc = 0;
    int txn = txn_of == r;
    txn_of = NULL;
    pthread_mutex_lock(&r->wmu);
    if (!(w.c = writer_conn(r, err))) {
        pthread_mutex_unlock(&r->wmu);
        return SL_ESTORE;
    }
    size_t pre = 0; /* replies before MULTI's */
    if (r->watching && (!txn || b == NULL || batch_empty(b))) {
        /* nothing to make conditional: drop the watches of a read-modify-write */
        if (redisAppendCommand(w.c, "UNWATCH") != REDIS_OK) {
            rc = api->error_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
        pre = 1;
        txn = 0;
    }
    if (batch_empty(b)) {
        for (size_t i = 0; i < pre; i++) {
            void *p = NULL;
            if (redisGetReply(w.c, &p) != REDIS_OK) {
                rc = reply_fail(r, w.c, NULL, "UNWATCH", err);
                goto out;
            }
            freeReplyObject(p);
        }
        r->watching = 0;
        goto wait;
    }
    if (redisAppendCommand(w.c, "MULTI") != REDIS_OK) {
        rc = api->error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    rc = api->batch_each(b, queue_op, &w);
    if (rc != 0) {
        /* nothing was sent yet: drop the connection with its half-built pipeline */
        redisFree(r->writer);
        r->writer = NULL;
        r->watching = 0;
        rc = api->error_set(err, rc == SL_ENOMEM ? SL_ENOMEM : SL_ECORRUPT,
                            rc == SL_ENOMEM ? "out of memory" : "malformed write batch");
        goto out;
    }
    if (redisAppendCommand(w.c, "EXEC") != REDIS_OK) {
        rc = api->error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    /* [UNWATCH's +OK,] MULTI's +OK, one +QUEUED per command, then EXEC's array, or nil when
     * a watched key changed */
    for (size_t i = 0; i < pre + w.queued + 2; i++) {
        void *p = NULL;
        if (redisGetReply(w.c, &p) != REDIS_OK) {
            rc = reply_fail(r, w.c, NULL, "MULTI/EXEC", err);
            goto out;
        }
        rep = p;
        int last = i == pre + w.queued + 1;
        if (last && rep->type == REDIS_REPLY_NIL && txn) {
            if (rc == 0)
                rc = api->error_set(err, SL_ECONFLICT, "redis: another client wrote an "
                                    "entity this write read");
            if (r->m_conflicts)
                api->metric_add(r->m_conflicts, 1);
        } else if (rep->type == REDIS_REPLY_ERROR || (last && rep->type != REDIS_REPLY_ARRAY)) {
            if (rc == 0)
                rc = reply_fail(r, w.c, rep, last ? "EXEC" : "MULTI", err);
        }
        freeReplyObject(rep);
        rep = NULL;
    }
    r->watching = 0; /* EXEC (or its discarding) ends every WATCH */
    if (rc != 0)
        goto out;
wait:
    if (sync && r->wait_replicas > 0) {
        rep = redisCommand(w.c, "WAIT %d %d", r->wait_replicas, r->wait_timeout_ms);
        if (!rep || rep->type != REDIS_REPLY_INTEGER) {
            rc = reply_fail(r, w.c, rep, "WAIT", err);
        } else if (rep->integer < r->wait_replicas) {
            rc = api->error_set(err, SL_ESTORE,
                                "redis WAIT: %lld of %d replicas acknowledged within %d ms",
                                rep->integer, r->wait_replicas, r->wait_timeout_ms);
        }
    }
    if (rc == 0 && r->m_writes)
        api->metric_add(r->m_writes, 1);
out:
    if (rep)
        freeReplyObject(rep);
    free(w.key.p);
    free(w.key2.p);
    if (rc != 0 && rc != SL_ECONFLICT && r->writer) {
        /* a pipeline may be half sent or half read: start the next write on a fresh one */
        redisFree(r->writer);
        r->writer = NULL;
        r->watching = 0;
    }
    pthread_mutex_unlock(&r->wmu);
    return rc;
}

/* ---- scan ---- */

/* One atomic page of a group: keys in [from, to] by ZRANGEBYLEX and their values. */
static const char PAGE_LUA[] =
    "local ks = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3]) "
    "if #ks == 0 then return {ks, {}} end "
    "return {ks, redis.call('HMGET', KEYS[2], unpack(ks))}";

/* Visits the group of tag in key order from start (inclusive) while keys begin with prefix.
 * Returns 0 when the group is exhausted, 1 when cb stopped or a key left the prefix, or an
 * error. */
static int scan_group(struct rstore *r, redisContext *c, const char *tag, size_t tl,
                      const char *prefix, size_t plen, const char *start, size_t slen,
                      sl_scan_cb cb, void *arg, struct sl_error *err)
{
    struct bytes z = {0}, h = {0}, from = {0}, to = {0};
    int rc = 0;
    redis_key(&z, r, 'z', tag, tl);
    redis_key(&h, r, 'h', tag, tl);
    by_add(&from, "[", 1);
    by_add(&from, start, slen);
    /* every key with the prefix is < prefix + 0xff... only when the prefix is not all 0xff:
     * use "+" and stop on the first key outside the prefix instead */
    by_add(&to, "+", 1);
    char page[16];
    snprintf(page, sizeof page, "%d", SCAN_PAGE);
    if (z.oom || h.oom || from.oom || to.oom) {
        rc = api->error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        const char *argv[8] = {"EVAL", PAGE_LUA, "2", z.p, h.p, from.p, to.p, page};
        size_t argl[8] = {4, sizeof(PAGE_LUA) - 1, 1, z.len, h.len, from.len, to.len,
                          strlen(page)};
        redisReply *rep = redisCommandArgv(c, 8, argv, argl);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_ARRAY ||
            rep->element[1]->type != REDIS_REPLY_ARRAY ||
            rep->element[0]->elements != rep->element[1]->elements) {
            rc = reply_fail(r, c, rep, "scan", err);
            if (rep)
                freeReplyObject(rep);
            goto out;
        }
        redisReply *ks = rep->element[0], *vs = rep->element[1];
        size_t n = ks->elements;
        for (size_t i = 0; i < n && rc == 0; i++) {
            redisReply *k = ks->element[i], *v = vs->element[i];
            if (k->len < plen || memcmp(k->str, prefix, plen) != 0) {
                rc = 1;
                break;
            }
            if (v->type != REDIS_REPLY_STRING)
                continue; /* deleted between index and value: cannot happen in one script */
            rc = cb(arg, k->str, k->len, v->str, v->len);
        }
        if (rc == 0 && n == SCAN_PAGE) {
            from.len = 0;
            by_add(&from, "(", 1);
            by_add(&from, ks->element[n - 1]->str, ks->element[n - 1]->len);
        }
        freeReplyObject(rep);
        if (from.oom) {
            rc = api->error_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
        if (rc != 0 || n < SCAN_PAGE)
            break;
    }
out:
    free(z.p);
    free(h.p);
    free(from.p);
    free(to.p);
    return rc;
}

/* A scan shorter than an entity tag ('G'/'V' + view key): visits the view's groups in order. */
static int scan_view(struct rstore *r, redisContext *c, const char *prefix, size_t plen,
                     const char *start, size_t slen, sl_scan_cb cb, void *arg,
                     struct sl_error *err)
{
    struct bytes g = {0}, from = {0};
    int rc = 0;
    redis_key(&g, r, 'g', prefix, 9);
    by_add(&from, "[", 1);
    /* the group holding start, or the first after it: tags are prefix-free, so a group's
     * tag is <= any of its keys */
    size_t stl = slen >= plen ? tag_len(start, slen) : 0;
    by_add(&from, start, stl > 9 && stl <= slen ? stl : slen);
    if (g.oom || from.oom) {
        rc = api->error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        const char *argv[7] = {"ZRANGEBYLEX", g.p, from.p, "+", "LIMIT", "0", "64"};
        size_t argl[7] = {11, g.len, from.len, 1, 5, 1, 2};
        redisReply *rep = redisCommandArgv(c, 7, argv, argl);
        if (!rep || rep->type != REDIS_REPLY_ARRAY) {
            rc = reply_fail(r, c, rep, "ZRANGEBYLEX", err);
            if (rep)
                freeReplyObject(rep);
            goto out;
        }
        size_t n = rep->elements;
        for (size_t i = 0; i < n && rc == 0; i++) {
            redisReply *t = rep->element[i];
            if (t->len < plen || memcmp(t->str, prefix, plen) != 0) {
                rc = 1;
                break;
            }
            /* keys of this group from max(start, tag) */
            size_t m = slen < t->len ? slen : t->len;
            int cmp = memcmp(start, t->str, m);
            int at_start = cmp > 0 || (cmp == 0 && slen > t->len);
            const char *s0 = at_start ? start : t->str;
            size_t s0l = at_start ? slen : t->len;
            rc = scan_group(r, c, t->str, t->len, prefix, plen, s0, s0l, cb, arg, err);
            if (rc == 1) /* the group left the prefix: impossible, or cb stopped */
                break;
        }
        if (rc == 0 && n == 64) {
            from.len = 0;
            by_add(&from, "(", 1);
            by_add(&from, rep->element[n - 1]->str, rep->element[n - 1]->len);
        }
        freeReplyObject(rep);
        if (from.oom) {
            rc = api->error_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
        if (rc != 0 || n < 64)
            break;
    }
out:
    free(g.p);
    free(from.p);
    return rc;
}

static int rs_scan(void *ctx, const char *prefix, size_t plen, const char *start, size_t slen,
                   sl_scan_cb cb, void *arg, struct sl_error *err)
{
    struct rstore *r = ctx;
    if (plen == 0)
        return api->error_set(err, SL_EINVAL, "redis store: a scan needs a key prefix");
    redisContext *c = conn_take(r, err);
    if (!c)
        return SL_ESTORE;
    int rc;
    size_t tl = tag_len(prefix, plen);
    if (entity_tagged(prefix[0]) && tl == 1) {
        if (plen < 9)
            rc = api->error_set(err, SL_EINVAL,
                                "redis store: a scan of rows or aggregates needs a view key");
        else
            rc = scan_view(r, c, prefix, plen, start, slen, cb, arg, err);
    } else {
        rc = scan_group(r, c, prefix, tl, prefix, plen, start, slen, cb, arg, err);
    }
    conn_give(r, c);
    return rc < 0 ? rc : 0;
}

/* ---- positioned iterator: pages of one group ---- */

#define ITER_PAGE 512

struct riter {
    struct rstore *r;
    redisContext *c;
    redisReply *page;      /* {keys, values} of the current page, or NULL */
    size_t pos, n;
    int more;              /* the page was full: the group may go on */
    struct bytes tag, z, h, from;
};

static void *rs_iter_new(void *ctx)
{
    struct riter *it = calloc(1, sizeof(*it));
    if (it)
        it->r = ctx;
    return it;
}

static void rs_iter_free(void *p)
{
    struct riter *it = p;
    if (!it)
        return;
    if (it->page)
        freeReplyObject(it->page);
    conn_give(it->r, it->c);
    free(it->tag.p);
    free(it->z.p);
    free(it->h.p);
    free(it->from.p);
    free(it);
}

/* Loads the page of keys >= k (or > k when exclusive) of the current group. 1 when the
 * iterator is at a key, 0 when not (end of group or an error: the caller reads on with
 * gets; an iterator cannot report errors). */
static int iter_load(struct riter *it, const char *k, size_t kl, int exclusive)
{
    char page[16];
    if (it->page)
        freeReplyObject(it->page);
    it->page = NULL;
    it->pos = it->n = 0;
    it->more = 0;
    if (!it->c && !(it->c = conn_take(it->r, NULL)))
        return 0;
    it->from.len = 0;
    by_add(&it->from, exclusive ? "(" : "[", 1);
    by_add(&it->from, k, kl);
    snprintf(page, sizeof page, "%d", ITER_PAGE);
    if (it->from.oom || it->z.oom || it->h.oom)
        return 0;
    const char *argv[8] = {"EVAL", PAGE_LUA, "2", it->z.p, it->h.p, it->from.p, "+", page};
    size_t argl[8] = {4, sizeof(PAGE_LUA) - 1, 1, it->z.len, it->h.len, it->from.len, 1,
                      strlen(page)};
    redisReply *rep = redisCommandArgv(it->c, 8, argv, argl);
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_ARRAY ||
        rep->element[1]->type != REDIS_REPLY_ARRAY ||
        rep->element[0]->elements != rep->element[1]->elements) {
        if (it->r->m_errors)
            api->metric_add(it->r->m_errors, 1);
        if (rep)
            freeReplyObject(rep);
        if (it->c->err) {
            redisFree(it->c);
            it->c = NULL;
        }
        return 0;
    }
    it->page = rep;
    it->n = rep->element[0]->elements;
    it->more = it->n == ITER_PAGE;
    /* skip keys deleted between index and value: cannot happen inside one script */
    while (it->pos < it->n && rep->element[1]->element[it->pos]->type != REDIS_REPLY_STRING)
        it->pos++;
    return it->pos < it->n;
}

static int key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

/* Positions at the first key >= k of k's group. Keys of other groups are not visited: every
 * key of one entity is in one group, and the engine's reader stops at the entity's end. */
static int rs_iter_seek(void *p, const char *k, size_t kl)
{
    struct riter *it = p;
    size_t tl = tag_len(k, kl);
    if (it->tag.len == tl && memcmp(it->tag.p, k, tl) == 0 && it->page && it->n > 0) {
        /* within the loaded page: no round trip */
        redisReply **ks = it->page->element[0]->element;
        if (key_cmp(k, kl, ks[0]->str, ks[0]->len) >= 0 &&
            (!it->more || key_cmp(k, kl, ks[it->n - 1]->str, ks[it->n - 1]->len) <= 0)) {
            size_t lo = 0, hi = it->n;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (key_cmp(ks[mid]->str, ks[mid]->len, k, kl) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            it->pos = lo;
            while (it->pos < it->n &&
                   it->page->element[1]->element[it->pos]->type != REDIS_REPLY_STRING)
                it->pos++;
            return it->pos < it->n;
        }
    }
    if (it->tag.len != tl || memcmp(it->tag.p, k, tl) != 0) {
        it->tag.len = it->z.len = it->h.len = 0;
        by_add(&it->tag, k, tl);
        redis_key(&it->z, it->r, 'z', k, tl);
        redis_key(&it->h, it->r, 'h', k, tl);
    }
    return iter_load(it, k, kl, 0);
}

static int rs_iter_next(void *p)
{
    struct riter *it = p;
    if (!it->page)
        return 0;
    do
        it->pos++;
    while (it->pos < it->n && it->page->element[1]->element[it->pos]->type != REDIS_REPLY_STRING);
    if (it->pos < it->n)
        return 1;
    if (!it->more)
        return 0;
    redisReply *last = it->page->element[0]->element[it->n - 1];
    struct bytes k = {0};
    by_add(&k, last->str, last->len);
    int ok = !k.oom && iter_load(it, k.p, k.len, 1);
    free(k.p);
    return ok;
}

static const char *rs_iter_key(void *p, size_t *len)
{
    struct riter *it = p;
    redisReply *k = it->page->element[0]->element[it->pos];
    *len = k->len;
    return k->str;
}

static const char *rs_iter_value(void *p, size_t *len)
{
    struct riter *it = p;
    redisReply *v = it->page->element[1]->element[it->pos];
    *len = v->len;
    return v->str;
}

/* ---- open/close ---- */

static int parse_url(struct rstore *r, const char *url, struct sl_error *err)
{
    if (strncmp(url, "unix:", 5) == 0) {
        if (strlen(url + 5) >= sizeof r->unix_path)
            return api->error_set(err, SL_EINVAL, "redis-url: socket path too long");
        strcpy(r->unix_path, url + 5);
        return 0;
    }
    if (strncmp(url, "redis://", 8) == 0)
        url += 8;
    const char *colon = strrchr(url, ':');
    size_t hl = colon ? (size_t)(colon - url) : strlen(url);
    if (hl == 0 || hl >= sizeof r->host)
        return api->error_set(err, SL_EINVAL, "redis-url `%s`: want redis://HOST:PORT", url);
    memcpy(r->host, url, hl);
    r->host[hl] = 0;
    r->port = 6379;
    if (colon) {
        char *end;
        errno = 0;
        long p = strtol(colon + 1, &end, 10);
        if (errno || p <= 0 || p > 65535 || (*end && *end != '/'))
            return api->error_set(err, SL_EINVAL, "redis-url `%s`: bad port", url);
        r->port = (int)p;
    }
    return 0;
}

static int int_setting(const struct sl_plugin_handle *self, const char *key, int lo, int hi,
                       int *out, struct sl_error *err)
{
    const char *s = api->config_get(self, key);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return api->error_set(err, SL_EINVAL, "%s `%s`: want an integer %d..%d", key, s, lo, hi);
    *out = (int)v;
    return 0;
}

static void rs_close(void *ctx)
{
    struct rstore *r = ctx;
    if (!r)
        return;
    while (r->idle) {
        struct conn *k = r->idle;
        r->idle = k->next;
        redisFree(k->c);
        free(k);
    }
    if (r->writer)
        redisFree(r->writer);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->wmu);
    free(r);
}

static int rs_open(void *plugin_ctx, const char *dir, size_t cache_mb, void **ctx,
                   struct sl_error *err)
{
    struct plugin_state *ps = plugin_ctx;
    const struct sl_plugin_handle *self = ps->self;
    struct rstore *r = calloc(1, sizeof(*r));
    if (!r)
        return api->error_set(err, SL_ENOMEM, "out of memory");
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->wmu, NULL);
    const char *prefix = api->config_get(self, "redis-key-prefix");
    if (strlen(prefix) >= sizeof r->prefix || strpbrk(prefix, "{}")) {
        api->error_set(err, SL_EINVAL, "redis-key-prefix: at most %zu bytes, no braces",
                       sizeof r->prefix - 1);
        goto fail;
    }
    strcpy(r->prefix, prefix);
    r->plen = strlen(prefix);
    if (parse_url(r, api->config_get(self, "redis-url"), err) ||
        int_setting(self, "redis-wait-replicas", 0, 64, &r->wait_replicas, err) ||
        int_setting(self, "redis-wait-timeout-ms", 0, 600000, &r->wait_timeout_ms, err) ||
        int_setting(self, "redis-timeout-ms", 1, 600000, &r->timeout_ms, err))
        goto fail;
    /* reach the server now, so a wrong address stops the start */
    redisContext *c = dial(r, err);
    if (!c)
        goto fail;
    redisReply *rep = redisCommand(c, "PING");
    int ok = rep && rep->type == REDIS_REPLY_STATUS;
    if (!ok)
        reply_fail(r, c, rep, "PING", err);
    if (rep)
        freeReplyObject(rep);
    if (ok) {
        rep = redisCommand(c, "CONFIG GET appendfsync");
        if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
            strcmp(rep->element[1]->str, "always") != 0 && r->wait_replicas == 0)
            api->log(self, SL_PLUGIN_WARN,
                     "redis appendfsync is %s and redis-wait-replicas is 0: an acknowledged "
                     "write can be lost if redis stops (see plugins/store_redis/README.md)",
                     rep->element[1]->str);
        if (rep)
            freeReplyObject(rep);
    }
    conn_give(r, c);
    if (!ok)
        goto fail;
    r->m_writes = ps->writes;
    r->m_errors = ps->errors;
    r->m_conflicts = ps->conflicts;
    *ctx = r;
    return 0;
fail:
    rs_close(r);
    return SL_ESTORE;
}

static const struct sl_store_ops redis_ops = {
    .abi_version = SL_STORE_ABI_VERSION,
    .struct_size = sizeof(struct sl_store_ops),
    .name = "redis",
    .open = rs_open,
    .get = rs_get,
    .write = rs_write,
    .scan = rs_scan,
    .close = rs_close,
    .iter_new = rs_iter_new,
    .iter_seek = rs_iter_seek,
    .iter_next = rs_iter_next,
    .iter_key = rs_iter_key,
    .iter_value = rs_iter_value,
    .iter_free = rs_iter_free,
    .rmw_begin = rs_rmw_begin,
};

static int redis_init(const struct sl_plugin_api *a, const struct sl_plugin_handle *self,
                      void **ctx, struct sl_error *err)
{
    api = a;
    struct plugin_state *p = calloc(1, sizeof(*p));
    if (!p)
        return a->error_set(err, SL_ENOMEM, "out of memory");
    p->self = self;
    p->writes = a->counter_new(self, "writes_total", "write batches committed to redis");
    p->errors = a->counter_new(self, "errors_total", "redis commands that failed");
    p->conflicts = a->counter_new(self, "conflicts_total",
                                  "conditional writes refused: another node wrote first");
    *ctx = p;
    return 0;
}

static void redis_exit(void *ctx)
{
    free(ctx);
}

static const struct sl_plugin_config redis_config[] = {
    {"redis-url", "redis://127.0.0.1:6379", "the redis server: redis://HOST:PORT or unix:PATH"},
    {"redis-key-prefix", "sluice:", "prefix of every redis key this store writes"},
    {"redis-wait-replicas", "0", "a synced write waits (WAIT) for this many replicas"},
    {"redis-wait-timeout-ms", "1000", "how long WAIT waits; fewer replicas fail the write"},
    {"redis-timeout-ms", "5000", "connect and command timeout"},
    {NULL, NULL, NULL},
};

static const struct sl_plugin plugin = {
    .abi_major = SL_PLUGIN_ABI_MAJOR,
    .abi_minor = SL_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(struct sl_plugin),
    .kind = SL_PLUGIN_STORE,
    .name = "redis",
    .version = "0.1.0",
    .description = "online store on a standalone redis server",
    .config_map = redis_config,
    .cb_init = redis_init,
    .cb_exit = redis_exit,
    .ops = &redis_ops,
};

SL_PLUGIN_EXPORT const struct sl_plugin *SL_PLUGIN_ENTRY(void)
{
    return &plugin;
}
