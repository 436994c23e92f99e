/* Delete jobs and the data dir's format version. */
#include "lifecycle.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "auth.h"
#include "buf.h"
#include "error.h"
#include "jobs.h"
#include "log.h"
#include "offline.h"
#include "registry.h"
#include "server.h"
#include "store.h"
#include "wcache.h"

/* ---- format version ---- */

static const char FORMAT_MAGIC[] = "sluice-data-format";

int sl_lifecycle_check_format(const char *data_dir, int *found, struct sl_error *err)
{
    char path[4096], text[128];
    snprintf(path, sizeof(path), "%s/FORMAT", data_dir);
    *found = 1;
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : sl_error_set(err, SL_EIO, "%s: %s", path, strerror(errno));
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = 0;
    int v = 0;
    size_t ml = sizeof(FORMAT_MAGIC) - 1;
    if (strncmp(text, FORMAT_MAGIC, ml) != 0 || text[ml] != ' ' || (v = atoi(text + ml + 1)) < 1)
        return sl_error_set(err, SL_EINVAL, "%s is not a Sluice data dir format file", path);
    if (v > SL_DATA_FORMAT)
        return sl_error_set(err, SL_EINVAL,
                            "data dir %s has format %d, newer than this sluice reads (%d): run "
                            "the newer sluice that wrote it, or restore a backup",
                            data_dir, v, SL_DATA_FORMAT);
    *found = v;
    return 0;
}

static int write_format(const char *data_dir, struct sl_error *err)
{
    char path[4096], tmp[4200], text[64];
    snprintf(path, sizeof(path), "%s/FORMAT", data_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int len = snprintf(text, sizeof(text), "%s %d\n", FORMAT_MAGIC, SL_DATA_FORMAT);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "%s: %s", tmp, strerror(errno));
    int ok = write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        e = ok ? errno : e;
        unlink(tmp);
        return sl_error_set(err, SL_EIO, "%s: %s", path, strerror(e));
    }
    int dfd = open(data_dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

struct upgrade_ctx {
    const char *dir;
    int rc;
    struct sl_error *err;
};

/* Format 1 kept every definition of a view in `offline/<ws>/<view>/`; the current one's
 * records move with the directory to its incarnation name, older ones stay unreachable in
 * it (as they were). */
static void upgrade_ws(void *arg, struct sl_ws *ws)
{
    struct upgrade_ctx *c = arg;
    for (size_t i = 0; c->rc == 0 && i < ws->nviews; i++) {
        const struct sl_view *v = &ws->views[i];
        char from[4096], to[4200];
        struct stat st;
        snprintf(from, sizeof(from), "%s/offline/%s/%s", c->dir, ws->name, v->name);
        snprintf(to, sizeof(to), "%s@%.16s", from, v->id);
        if (v->is_realtime || stat(from, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (rename(from, to) != 0)
            c->rc = sl_error_set(c->err, SL_EIO, "upgrading %s: %s", from, strerror(errno));
        else
            sl_info("upgrade: offline/%s/%s -> %s@%.16s", ws->name, v->name, v->name, v->id);
    }
}

int sl_lifecycle_upgrade(struct sl_node *n, int found, struct sl_error *err)
{
    if (found >= SL_DATA_FORMAT)
        return 0;
    struct upgrade_ctx c = {n->cfg->data_dir, 0, err};
    sl_registry_each(n->reg, upgrade_ws, &c);
    if (c.rc)
        return c.rc;
    int rc = write_format(n->cfg->data_dir, err);
    if (rc == 0)
        sl_info("data dir %s: format %d upgraded to %d", n->cfg->data_dir, found, SL_DATA_FORMAT);
    return rc;
}

/* ---- what a plan costs ---- */

static int count_key(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    (void)k, (void)kl, (void)v, (void)vl;
    (*(uint64_t *)arg)++;
    return 0;
}

/* Online keys of a view: attribute rows and aggregation state under its storage prefix. */
static uint64_t online_keys(struct sl_node *n, const struct sl_view *v)
{
    uint64_t count = 0;
    const char kinds[] = {SL_KEY_ROW, SL_KEY_AGG};
    for (size_t i = 0; i < sizeof(kinds); i++) {
        char prefix[9];
        struct sl_error err = {0};
        prefix[0] = kinds[i];
        memcpy(prefix + 1, v->key, 8);
        sl_store_scan(&n->store, prefix, sizeof(prefix), count_key, &count, &err);
    }
    return count;
}

int sl_lifecycle_plan_costs(struct sl_node *n, const struct sl_ws *cur, const struct sl_ws *next,
                            struct sl_buf *plan)
{
    cJSON *arr = cJSON_ParseWithLength(plan->p ? plan->p : "[]", plan->len);
    cJSON *e;
    int loses = 0;
    if (!arr)
        return 0;
    cJSON_ArrayForEach(e, arr)
    {
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(e, "kind");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "feature_view") != 0 ||
            !cJSON_IsString(name))
            continue;
        const struct sl_view *old = sl_ws_view(cur, name->valuestring);
        const struct sl_view *now = sl_ws_view(next, name->valuestring);
        if (!old || old->is_realtime)
            continue;
        int carried = now && strcmp(now->id, old->id) == 0;
        uint64_t keys = carried ? 0 : online_keys(n, old);
        uint64_t bytes = carried ? 0 : sl_offline_bytes(n->offline, cur->name, old->name, old->key);
        char num[24];
        cJSON *h = cJSON_AddObjectToObject(e, "history");
        cJSON_AddBoolToObject(h, "carriedOver", carried);
        snprintf(num, sizeof(num), "%llu", (unsigned long long)keys);
        cJSON_AddStringToObject(h, "onlineKeys", num);
        snprintf(num, sizeof(num), "%llu", (unsigned long long)bytes);
        cJSON_AddStringToObject(h, "offlineBytes", num);
        loses |= !carried && (keys > 0 || bytes > 0);
    }
    char *text = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    if (text) {
        sl_buf_reset(plan);
        sl_buf_puts(plan, text);
        free(text);
    }
    return loses;
}

/* ---- deleting ---- */

int sl_lifecycle_delete_workspace(struct sl_node *n, const char *name, struct sl_buf *ids,
                                  struct sl_error *err)
{
    struct sl_ws *ws = sl_registry_get(n->reg, name);
    if (!ws)
        return sl_error_set(err, SL_ENOTFOUND, "workspace `%s` not found", name);
    int rc = sl_registry_delete(n->reg, name, err);
    if (rc == 0)
        rc = sl_auth_drop_workspace(n->auth, name, err);
    for (size_t i = 0; rc == 0 && ws->live && i < ws->nviews; i++) {
        const struct sl_view *v = &ws->views[i];
        struct sl_error jerr = {0};
        if (!v->is_realtime && sl_jobs_create_delete(n->jobs, name, v->name, v->id, ids, &jerr) != 0)
            sl_err("jobs: cannot queue the deletion of `%s` of `%s`: %s", v->name, name, jerr.msg);
    }
    if (rc == 0)
        sl_offline_drop_workspace_dir(n->offline, name); /* one without views */
    sl_ws_release(ws);
    return rc;
}

static int drain(void *arg, struct sl_store *s)
{
    (void)s;
    sl_wcache_clear(arg); /* it may hold values of the keys deleted */
    return 0;
}

struct collect {
    struct sl_batch *b;
    struct sl_buf *last;
    size_t n, max;
};

static int collect_key(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct collect *c = arg;
    (void)v;
    (void)vl;
    sl_batch_delete(c->b, k, kl);
    sl_buf_reset(c->last);
    sl_buf_append(c->last, k, kl);
    return ++c->n >= c->max ? 1 : 0;
}

static void to_hex(const char *p, size_t n, struct sl_buf *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        sl_buf_putc(out, hx[(unsigned char)p[i] >> 4]);
        sl_buf_putc(out, hx[(unsigned char)p[i] & 15]);
    }
}

static int from_hex(const char *s, struct sl_buf *out)
{
    size_t n = strlen(s);
    if (n % 2)
        return -1;
    for (size_t i = 0; i < n; i += 2) {
        char b[3] = {s[i], s[i + 1], 0}, *end;
        long v = strtol(b, &end, 16);
        if (*end)
            return -1;
        sl_buf_putc(out, (char)v);
    }
    return 0;
}

/* Adds the job record as it stands to b. */
static void add_record(struct sl_jobs *j, const struct sl_job *job, struct sl_batch *b)
{
    struct sl_buf k = SL_BUF_INIT, v = SL_BUF_INIT;
    sl_jobs_lock(j);
    sl_job_record(job, &k, &v);
    sl_jobs_unlock(j);
    sl_batch_put(b, k.p, k.len, v.p, v.len);
    sl_buf_free(&k);
    sl_buf_free(&v);
}

/* Moves the job to the next step and records it. */
static int next_step(struct sl_node *n, struct sl_jobs *j, struct sl_job *job, struct sl_error *err)
{
    struct sl_batch b = {0};
    sl_jobs_lock(j);
    job->del_phase++;
    free(job->del_key);
    job->del_key = NULL;
    sl_jobs_unlock(j);
    add_record(j, job, &b);
    int rc = b.ops.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                       : sl_store_write(&n->store, &b, 1, err);
    sl_batch_free(&b);
    return rc;
}

/* Deletes every key under prefix, from the checkpoint on, a chunk per synced write. */
static int delete_prefix(struct sl_node *n, struct sl_jobs *j, struct sl_job *job,
                         const struct sl_buf *prefix, struct sl_error *err)
{
    struct sl_buf start = SL_BUF_INIT, last = SL_BUF_INIT, hex = SL_BUF_INIT;
    struct sl_batch b = {0};
    size_t chunk = n->cfg->delete_chunk_keys > 0 ? (size_t)n->cfg->delete_chunk_keys : 10000;
    int rc = 0;
    if (job->del_key && from_hex(job->del_key, &start) == 0 && start.len >= prefix->len) {
        sl_buf_putc(&start, 0); /* the least key after the last one deleted */
    } else {
        sl_buf_reset(&start);
        sl_buf_append(&start, prefix->p, prefix->len);
    }
    for (;;) {
        if (sl_job_should_stop(j, job)) {
            rc = SL_EBUSY;
            break;
        }
        struct collect c = {&b, &last, 0, chunk};
        sl_batch_reset(&b);
        rc = n->store.ops->scan(n->store.ctx, prefix->p, prefix->len, start.p, start.len,
                                collect_key, &c, err);
        if (rc < 0 || c.n == 0)
            break;
        sl_buf_reset(&hex);
        to_hex(last.p, last.len, &hex);
        sl_buf_putc(&hex, 0);
        char *key = hex.oom ? NULL : strdup(hex.p);
        if (!key) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            break;
        }
        sl_jobs_lock(j);
        free(job->del_key);
        job->del_key = key;
        job->rows_read += c.n;
        job->rows_written += c.n;
        sl_jobs_unlock(j);
        add_record(j, job, &b);
        rc = b.ops.oom || last.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                                   : sl_store_write(&n->store, &b, 1, err);
        if (rc)
            break;
        sl_buf_reset(&start);
        sl_buf_append(&start, last.p, last.len);
        sl_buf_putc(&start, 0);
    }
    if (rc == 0 && n->store.ops->compact) { /* give the space back now */
        struct sl_buf hi = SL_BUF_INIT;
        sl_buf_append(&hi, prefix->p, prefix->len);
        sl_buf_putc(&hi, (char)0xff);
        if (!hi.oom)
            n->store.ops->compact(n->store.ctx, prefix->p, prefix->len, hi.p, hi.len);
        sl_buf_free(&hi);
    }
    sl_buf_free(&start);
    sl_buf_free(&last);
    sl_buf_free(&hex);
    sl_batch_free(&b);
    return rc;
}

enum { STEP_ROWS, STEP_AGG, STEP_FILES, STEP_OFFLINE, STEP_JOBS, STEP_DONE };

int sl_lifecycle_delete_run(struct sl_node *n, struct sl_jobs *j, struct sl_job *job,
                            struct sl_error *err)
{
    unsigned char key[8];
    for (int i = 0; i < 8; i++) {
        unsigned v = 0;
        if (sscanf(job->view_id + 2 * i, "%2x", &v) != 1)
            return sl_error_set(err, SL_EINVAL, "bad feature view id `%s`", job->view_id);
        key[i] = (unsigned char)v;
    }
    struct sl_ws *ws = sl_registry_get(n->reg, job->ws);
    int in_use = 0;
    for (size_t i = 0; ws && i < ws->nviews; i++)
        in_use |= strcmp(ws->views[i].id, job->view_id) == 0;
    sl_ws_release(ws);
    if (in_use)
        return sl_error_set(err, SL_EINVAL,
                            "feature view id %s is in use by workspace `%s`: nothing deleted",
                            job->view_id, job->ws);
    /* every commit queued before the view left the registry is written before we scan */
    sl_writer_call(n->writer, drain, n->wcache);
    int rc = 0;
    while (rc == 0 && job->del_phase < STEP_DONE) {
        struct sl_buf prefix = SL_BUF_INIT;
        switch (job->del_phase) {
        case STEP_ROWS:
        case STEP_AGG:
            sl_buf_putc(&prefix, job->del_phase == STEP_ROWS ? SL_KEY_ROW : SL_KEY_AGG);
            sl_buf_append(&prefix, key, 8);
            rc = prefix.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                            : delete_prefix(n, j, job, &prefix, err);
            break;
        case STEP_FILES: /* batch.c: 'F' + workspace + 0 + view id + 0 + path */
            sl_buf_putc(&prefix, SL_KEY_FILE);
            sl_buf_puts(&prefix, job->ws);
            sl_buf_putc(&prefix, 0);
            sl_buf_puts(&prefix, job->view_id);
            sl_buf_putc(&prefix, 0);
            rc = prefix.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                            : delete_prefix(n, j, job, &prefix, err);
            break;
        case STEP_OFFLINE: {
            uint64_t bytes = 0;
            rc = sl_offline_drop(n->offline, job->ws, job->view, key, &bytes, err);
            sl_jobs_lock(j);
            job->bytes_deleted += bytes;
            sl_jobs_unlock(j);
            break;
        }
        case STEP_JOBS: {
            sl_jobs_forget_view(j, job->ws, job->view_id, job);
            struct sl_ws *now = sl_registry_get(n->reg, job->ws);
            if (!now)
                sl_offline_drop_workspace_dir(n->offline, job->ws);
            sl_ws_release(now);
            break;
        }
        }
        sl_buf_free(&prefix);
        if (rc == 0)
            rc = next_step(n, j, job, err);
    }
    sl_writer_call(n->writer, drain, n->wcache);
    return rc;
}

/* ---- orphans ---- */

struct live_view {
    char *ws;
    char id[33];
    unsigned char key[8];
    char dir[600]; /* offline directory name */
};

struct live {
    size_t n, cap;
    struct live_view *v;
    int oom;
};

static void live_add(void *arg, struct sl_ws *ws)
{
    struct live *l = arg;
    for (size_t i = 0; i < ws->nviews; i++) {
        const struct sl_view *v = &ws->views[i];
        if (v->is_realtime)
            continue;
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 32;
            struct live_view *g = realloc(l->v, cap * sizeof(*g));
            if (!g) {
                l->oom = 1;
                return;
            }
            l->v = g;
            l->cap = cap;
        }
        struct live_view *d = &l->v[l->n];
        if (!(d->ws = strdup(ws->name))) {
            l->oom = 1;
            return;
        }
        memcpy(d->id, v->id, sizeof(d->id));
        memcpy(d->key, v->key, sizeof(d->key));
        snprintf(d->dir, sizeof(d->dir), "%s@%.16s", v->name, v->id);
        l->n++;
    }
}

static void live_free(struct live *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].ws);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* The views of the registry as it is now; 0, or -1 when out of memory (reclaim nothing). */
static int live_load(struct sl_node *n, struct live *l)
{
    live_free(l);
    sl_registry_each(n->reg, live_add, l);
    return l->oom ? -1 : 0;
}

static int live_key(const struct live *l, const unsigned char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (memcmp(l->v[i].key, key, 8) == 0)
            return 1;
    return 0;
}

static int live_id(const struct live *l, const char *ws, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].ws, ws) == 0 && strcmp(l->v[i].id, id) == 0)
            return 1;
    return 0;
}

static int live_dir(const struct live *l, const char *ws, const char *dir)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].ws, ws) == 0 && strcmp(l->v[i].dir, dir) == 0)
            return 1;
    return 0;
}

static int first_key(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    (void)v, (void)vl;
    sl_buf_append(arg, k, kl);
    return 1;
}

/* Deletes every key under prefix in chunks, then compacts the range; adds to *count. */
static int delete_all(struct sl_node *n, const char *prefix, size_t plen, uint64_t *count,
                      struct sl_error *err)
{
    struct sl_buf last = SL_BUF_INIT;
    struct sl_batch b = {0};
    size_t chunk = n->cfg->delete_chunk_keys > 0 ? (size_t)n->cfg->delete_chunk_keys : 10000;
    int rc = 0;
    for (;;) {
        struct collect c = {&b, &last, 0, chunk};
        sl_batch_reset(&b);
        rc = sl_store_scan(&n->store, prefix, plen, collect_key, &c, err);
        if (rc < 0 || c.n == 0)
            break;
        rc = b.ops.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                       : sl_store_write(&n->store, &b, 0, err);
        if (rc)
            break;
        *count += c.n;
    }
    if (rc == 0 && n->store.ops->compact) {
        char hi[16];
        memcpy(hi, prefix, plen < 15 ? plen : 15);
        hi[plen < 15 ? plen : 15] = (char)0xff;
        n->store.ops->compact(n->store.ctx, prefix, plen, hi, (plen < 15 ? plen : 15) + 1);
    }
    sl_buf_free(&last);
    sl_batch_free(&b);
    return rc;
}

/* Storage prefixes under kind (V or G) that no view of l has. */
static size_t orphan_prefixes(struct sl_node *n, char kind, const struct live *l,
                              unsigned char (**out)[8])
{
    size_t cnt = 0, cap = 0;
    char start[9] = {kind};
    size_t slen = 1;
    struct sl_buf k = SL_BUF_INIT;
    *out = NULL;
    for (;;) {
        struct sl_error err = {0};
        sl_buf_reset(&k);
        if (n->store.ops->scan(n->store.ctx, start, 1, start, slen, first_key, &k, &err) < 0 ||
            k.len < 9)
            break;
        unsigned char p8[8];
        memcpy(p8, k.p + 1, 8);
        if (!live_key(l, p8)) {
            if (cnt == cap) {
                cap = cap ? cap * 2 : 16;
                unsigned char(*g)[8] = realloc(*out, cap * sizeof(*g));
                if (!g)
                    break;
                *out = g;
            }
            memcpy((*out)[cnt++], p8, 8);
        }
        int i = 7; /* the next prefix: p8 + 1, big-endian */
        while (i >= 0 && ++p8[i] == 0)
            i--;
        if (i < 0)
            break;
        memcpy(start + 1, p8, 8);
        slen = 9;
    }
    sl_buf_free(&k);
    return cnt;
}

struct file_keys {
    const struct live *l;
    struct sl_batch *b;
};

/* 'F' + workspace + 0 + view id + 0 + path: a key of no live view goes to the batch. */
static int orphan_file_key(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct file_keys *c = arg;
    (void)v, (void)vl;
    const char *ws = k + 1, *end = k + kl;
    const char *z1 = memchr(ws, 0, (size_t)(end - ws));
    const char *id = z1 ? z1 + 1 : NULL;
    const char *z2 = id ? memchr(id, 0, (size_t)(end - id)) : NULL;
    char idb[33];
    if (!z2 || z2 - id != 32)
        return 0;
    memcpy(idb, id, 32);
    idb[32] = 0;
    if (!live_id(c->l, ws, idb))
        sl_batch_delete(c->b, k, kl);
    return 0;
}

struct off_cand {
    char ws[256], dir[600];
};

static void reclaim_offline(struct sl_node *n, struct live *l)
{
    char root[4096];
    snprintf(root, sizeof(root), "%s/offline", n->cfg->data_dir);
    DIR *d = opendir(root);
    struct dirent *e;
    struct off_cand *c = NULL;
    size_t cnt = 0, cap = 0;
    while (d && (e = readdir(d)) != NULL) {
        char wpath[4400];
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof(c->ws))
            continue;
        snprintf(wpath, sizeof(wpath), "%s/%s", root, e->d_name);
        DIR *w = opendir(wpath);
        struct dirent *v;
        while (w && (v = readdir(w)) != NULL) {
            char vpath[5100];
            struct stat st;
            snprintf(vpath, sizeof(vpath), "%s/%s", wpath, v->d_name);
            if (v->d_name[0] == '.' || strlen(v->d_name) >= sizeof(c->dir) ||
                stat(vpath, &st) != 0 || !S_ISDIR(st.st_mode))
                continue;
            if (cnt == cap) {
                cap = cap ? cap * 2 : 16;
                struct off_cand *g = realloc(c, cap * sizeof(*g));
                if (!g)
                    break;
                c = g;
            }
            snprintf(c[cnt].ws, sizeof(c[cnt].ws), "%s", e->d_name);
            snprintf(c[cnt].dir, sizeof(c[cnt].dir), "%s", v->d_name);
            cnt++;
        }
        if (w)
            closedir(w);
    }
    if (d)
        closedir(d);
    if (cnt && live_load(n, l) == 0) {
        for (size_t i = 0; i < cnt; i++) {
            uint64_t bytes = 0;
            struct sl_error err = {0};
            if (live_dir(l, c[i].ws, c[i].dir))
                continue;
            if (sl_offline_drop_dir(n->offline, c[i].ws, c[i].dir, &bytes, &err) != 0)
                sl_err("retention: %s", err.msg);
            else
                sl_info("retention: removed offline/%s/%s of no current feature view (%llu bytes)",
                        c[i].ws, c[i].dir, (unsigned long long)bytes);
            __atomic_add_fetch(&n->orphan_bytes, bytes, __ATOMIC_RELAXED);
            struct sl_ws *ws = sl_registry_get(n->reg, c[i].ws);
            if (!ws)
                sl_offline_drop_workspace_dir(n->offline, c[i].ws);
            sl_ws_release(ws);
        }
    }
    free(c);
}

void sl_lifecycle_reclaim_orphans(struct sl_node *n)
{
    struct live l = {0};
    if (live_load(n, &l) != 0) {
        live_free(&l);
        return;
    }
    const char kinds[] = {SL_KEY_ROW, SL_KEY_AGG};
    for (size_t k = 0; k < sizeof(kinds); k++) {
        unsigned char(*cand)[8] = NULL;
        size_t cnt = orphan_prefixes(n, kinds[k], &l, &cand);
        /* a view applied while we looked is in the registry now */
        if (cnt && live_load(n, &l) == 0) {
            for (size_t i = 0; i < cnt; i++) {
                char prefix[9] = {kinds[k]};
                uint64_t deleted = 0;
                struct sl_error err = {0};
                if (live_key(&l, cand[i]))
                    continue;
                memcpy(prefix + 1, cand[i], 8);
                if (delete_all(n, prefix, sizeof(prefix), &deleted, &err) != 0)
                    sl_err("retention: deleting orphaned keys: %s", err.msg);
                __atomic_add_fetch(&n->orphan_keys, deleted, __ATOMIC_RELAXED);
            }
        }
        free(cand);
    }
    struct sl_batch b = {0};
    struct file_keys fk = {&l, &b};
    const char fprefix[] = {SL_KEY_FILE};
    struct sl_error err = {0};
    if (sl_store_scan(&n->store, fprefix, 1, orphan_file_key, &fk, &err) == 0 && b.count) {
        /* the candidates again, against the registry as it is now */
        struct sl_batch again = {0};
        fk.b = &again;
        if (live_load(n, &l) == 0 &&
            sl_store_scan(&n->store, fprefix, 1, orphan_file_key, &fk, &err) == 0 && again.count &&
            sl_store_write(&n->store, &again, 0, &err) == 0)
            __atomic_add_fetch(&n->orphan_keys, again.count, __ATOMIC_RELAXED);
        sl_batch_free(&again);
    }
    sl_batch_free(&b);
    reclaim_offline(n, &l);
    live_free(&l);
    sl_writer_call(n->writer, drain, n->wcache);
}

/* ---- backups ---- */

struct backup_begin {
    struct sl_node *n;
    void *snap;
    struct sl_offline_snap *off;
    struct sl_error *err;
};

/* On the writer thread between groups: every acknowledged commit is in both stores, no
 * later one has started, so both snapshots hold exactly the acknowledged writes. */
static int backup_begin(void *arg, struct sl_store *s)
{
    struct backup_begin *b = arg;
    b->snap = s->ops->snapshot(s->ctx);
    return sl_offline_snapshot(b->n->offline, &b->off, b->err);
}

/* Copies the regular file name of the data dir into dest (if it exists), mode 0600. */
static int copy_top_file(const char *data_dir, const char *dest, const char *name,
                         struct sl_error *err)
{
    char from[4096], to[4096], buf[4096];
    snprintf(from, sizeof(from), "%s/%s", data_dir, name);
    snprintf(to, sizeof(to), "%s/%s", dest, name);
    FILE *in = fopen(from, "rb");
    if (!in)
        return 0;
    int fd = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600);
    int rc = fd < 0 ? sl_error_set(err, SL_EIO, "%s: %s", to, strerror(errno)) : 0;
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (write(fd, buf, n) != (ssize_t)n)
            rc = sl_error_set(err, SL_EIO, "%s: %s", to, strerror(errno));
    if (rc == 0 && fsync(fd) != 0)
        rc = sl_error_set(err, SL_EIO, "%s: %s", to, strerror(errno));
    if (fd >= 0)
        close(fd);
    fclose(in);
    return rc;
}

static int empty_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int empty = d != NULL;
    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = 0;
    if (d)
        closedir(d);
    return empty;
}

int sl_lifecycle_backup(struct sl_node *n, const char *dest, struct sl_buf *out,
                        struct sl_error *err)
{
    char path[4096];
    if (!n->store.ops->snapshot || !n->store.ops->snapshot_copy)
        return sl_error_set(err, SL_EINVAL, "the online store (%s) cannot take snapshots",
                            n->store.ops->name);
    if (dest[0] != '/')
        return sl_error_set(err, SL_EINVAL, "the backup directory must be an absolute path");
    if (mkdir(dest, 0700) != 0 && (errno != EEXIST || !empty_dir(dest)))
        return sl_error_set(err, errno == EEXIST ? SL_EEXIST : SL_EIO,
                            "cannot back up into %s: %s", dest,
                            errno == EEXIST ? "it exists and is not empty" : strerror(errno));
    struct backup_begin b = {n, NULL, NULL, err};
    int rc = sl_writer_call(n->writer, backup_begin, &b);
    uint64_t keys = 0, dirs = 0, bytes = 0;
    snprintf(path, sizeof(path), "%s/online", dest);
    if (rc == 0)
        rc = n->store.ops->snapshot_copy(n->store.ctx, b.snap, path, &keys, err);
    if (b.snap)
        n->store.ops->snapshot_free(n->store.ctx, b.snap);
    if (rc == 0)
        rc = sl_offline_snap_write(b.off, dest, &dirs, &bytes, err);
    sl_offline_snap_free(b.off);
    if (rc == 0)
        rc = copy_top_file(n->cfg->data_dir, dest, "secret", err);
    if (rc == 0)
        rc = copy_top_file(n->cfg->data_dir, dest, "admin.key", err);
    if (rc == 0)
        rc = write_format(dest, err);
    if (rc == 0) {
        sl_buf_puts(out, "{\"to\":");
        sl_buf_json_str(out, dest, strlen(dest));
        sl_buf_printf(out, ",\"onlineKeys\":\"%llu\",\"offlineDirectories\":\"%llu\","
                           "\"offlineBytes\":\"%llu\"}",
                      (unsigned long long)keys, (unsigned long long)dirs,
                      (unsigned long long)bytes);
        sl_info("backup: %s: %llu online keys, %llu offline directories, %llu offline bytes",
                dest, (unsigned long long)keys, (unsigned long long)dirs,
                (unsigned long long)bytes);
    }
    return rc;
}
