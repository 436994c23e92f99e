/* Backfill and materialization: batch files through the ingest path, chunk by chunk. */
#include "batch.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "buf.h"
#include "error.h"
#include "filesrc.h"
#include "ingest.h"
#include "jobs.h"
#include "json.h"
#include "log.h"
#include "registry.h"
#include "server.h"
#include "store.h"
#include "transform.h"

#define CHUNK_ROWS 2000
#define SL_BATCH_MAX_ROOTS 16 /* batch-root settings honoured */

/* The source's batch_config members, from the workspace's repository description. */
static const cJSON *batch_config(const struct sl_ws *ws, const char *source)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(ws->repo, "sources"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "name");
        if (cJSON_IsString(name) && strcmp(name->valuestring, source) == 0)
            return cJSON_GetObjectItemCaseSensitive(s, "batch_config");
    }
    return NULL;
}

static const char *member(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A relative uri is relative to the repository's root as the client sent it with apply. */
static void resolve(const struct sl_ws *ws, const char *uri, char *out, size_t cap)
{
    const char *root = member(ws->repo, "root");
    if (strncmp(uri, "file://", 7) == 0)
        uri += 7;
    if (uri[0] == '/' || !root)
        snprintf(out, cap, "%s", uri);
    else
        snprintf(out, cap, "%s/%s", root, uri);
}

/* The folders a job may read batch files from (filesrc.h, confine): the batch-root settings,
 * else the repository's root as given to apply; never the server's data dir. Canonical paths
 * (realpath) in r->buf; a root that does not exist is left out. */
struct roots {
    char buf[SL_BATCH_MAX_ROOTS][PATH_MAX];
    const char *list[SL_BATCH_MAX_ROOTS];
    size_t n;
    char deny[PATH_MAX];
};

static void add_root(struct roots *r, const char *dir)
{
    if (r->n < SL_BATCH_MAX_ROOTS && dir[0] == '/' && realpath(dir, r->buf[r->n]) != NULL) {
        r->list[r->n] = r->buf[r->n];
        r->n++;
    }
}

static void allowed_roots(const struct sl_node *n, const struct sl_ws *ws, struct roots *r)
{
    const char *cfg = n->cfg->batch_roots;
    r->n = 0;
    if (cfg && *cfg) {
        for (const char *p = cfg; *p;) {
            size_t len = strcspn(p, "\n");
            char dir[PATH_MAX];
            if (len < sizeof dir) {
                memcpy(dir, p, len);
                dir[len] = '\0';
                add_root(r, dir);
            }
            p += len + (p[len] == '\n');
        }
    } else if (member(ws->repo, "root")) {
        add_root(r, member(ws->repo, "root"));
    }
    if (realpath(n->cfg->data_dir, r->deny) == NULL)
        r->deny[0] = '\0';
}

int sl_batch_check_sources(const struct sl_node *n, const struct sl_ws *ws, struct sl_error *err)
{
    const cJSON *js;
    int rc = 0;
    struct roots *roots = malloc(sizeof(*roots));
    if (!roots)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    allowed_roots(n, ws, roots);
    /* the same confinement as the jobs: a file outside the allowed folders is not opened */
    struct sl_filesrc_opts fo = {.confine = 1, .roots = roots->list, .nroots = roots->n,
                                 .deny = roots->deny[0] ? roots->deny : NULL};
    cJSON_ArrayForEach(js, cJSON_GetObjectItemCaseSensitive(ws->repo, "sources"))
    {
        const char *name = member(js, "name");
        const cJSON *bc = cJSON_GetObjectItemCaseSensitive(js, "batch_config");
        const struct sl_source *s = name ? sl_ws_source(ws, name) : NULL;
        const char *uri = member(bc, "uri"), *fmt = member(bc, "file_format");
        if (!s || s->is_request || !uri)
            continue;
        char path[SL_FILESRC_PATH_MAX];
        struct sl_filesrc *src = NULL;
        struct sl_error ignored = {0};
        size_t ncols = 0;
        resolve(ws, uri, path, sizeof(path));
        if (sl_filesrc_open(path, fmt ? fmt : "csv", s->schema, s->nfields, &fo, &src, &ignored) != 0 ||
            sl_filesrc_columns(src, &ncols, &ignored) != 1) {
            sl_filesrc_close(src);
            continue;
        }
        for (size_t f = 0; f < s->nfields && rc == 0; f++) {
            size_t c = 0;
            while (c < ncols && strcmp(sl_filesrc_column(src, c), s->schema[f].name) != 0)
                c++;
            if (c == ncols) {
                size_t nfiles;
                const cJSON *line = cJSON_GetObjectItemCaseSensitive(js, "line");
                rc = sl_error_set(err, SL_EINVAL,
                                  "%s:%d: StreamSource `%s`: the batch_config file %s has no "
                                  "column `%s`; a batch source must hold every column of the "
                                  "stream schema", member(js, "file") ? member(js, "file") : "?",
                                  cJSON_IsNumber(line) ? line->valueint : 0, s->name,
                                  sl_filesrc_files(src, &nfiles)[0].path, s->schema[f].name);
            }
        }
        sl_filesrc_close(src);
        if (rc)
            break;
    }
    free(roots);
    return rc;
}

/* Key of a loaded file: 'F' + workspace + 0 + view id + 0 + path. */
static void file_key(struct sl_buf *k, const struct sl_job *job, const char *path)
{
    sl_buf_putc(k, SL_KEY_FILE);
    sl_buf_puts(k, job->ws);
    sl_buf_putc(k, 0);
    sl_buf_puts(k, job->view_id);
    sl_buf_putc(k, 0);
    sl_buf_puts(k, path);
}

struct seen_ctx {
    struct sl_node *n;
    const struct sl_job *job;
};

/* Materialization loads only files this view has not loaded yet. */
static int not_seen(void *arg, const struct sl_filesrc_file *f)
{
    struct seen_ctx *c = arg;
    struct sl_buf k = SL_BUF_INIT, v = SL_BUF_INIT;
    struct sl_error err = {0};
    file_key(&k, c->job, f->path);
    int rc = sl_store_get(&c->n->store, k.p, k.len, &v, &err);
    if (rc == 0) {
        unsigned long long size = 0;
        sscanf(sl_buf_cstr(&v), "%llu", &size);
        if (size != f->size)
            sl_warn("jobs: %s changed size since it was loaded (%llu -> %llu bytes); it is not "
                    "loaded again (that would count its rows twice)",
                    f->path, size, (unsigned long long)f->size);
    }
    sl_buf_free(&k);
    sl_buf_free(&v);
    return rc == SL_ENOTFOUND;
}

/* Marks files [from, to) of the listing as loaded, in the chunk's atomic write. */
static void mark_loaded(struct sl_ingest *g, const struct sl_job *job,
                        const struct sl_filesrc_file *files, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        struct sl_buf k = SL_BUF_INIT, v = SL_BUF_INIT;
        file_key(&k, job, files[i].path);
        sl_buf_printf(&v, "%llu %lld", (unsigned long long)files[i].size, (long long)files[i].mtime_ns);
        sl_ingest_extra_put(g, k.p, k.len, v.p, v.len);
        sl_buf_free(&k);
        sl_buf_free(&v);
    }
}

/* Keeps the first SL_JOB_MAX_ERRORS record errors of the job (JSON array text). */
static void keep_errors(struct sl_job *job, const struct sl_buf *entries)
{
    cJSON *have = cJSON_Parse(job->first_errors ? job->first_errors : "[]");
    struct sl_buf arr = SL_BUF_INIT;
    sl_buf_putc(&arr, '[');
    sl_buf_append(&arr, entries->p, entries->len);
    sl_buf_putc(&arr, ']');
    cJSON *add = cJSON_ParseWithLength(arr.p, arr.len);
    cJSON *e;
    while (have && add && cJSON_GetArraySize(have) < SL_JOB_MAX_ERRORS && (e = cJSON_DetachItemFromArray(add, 0)))
        cJSON_AddItemToArray(have, e);
    char *text = have ? cJSON_PrintUnformatted(have) : NULL;
    if (text) {
        free(job->first_errors);
        job->first_errors = text;
    }
    cJSON_Delete(have);
    cJSON_Delete(add);
    sl_buf_free(&arr);
}

int sl_batch_run(struct sl_node *n, struct sl_jobs *jobs, struct sl_job *job, struct sl_error *err)
{
    struct sl_ws *ws = sl_registry_get(n->reg, job->ws);
    struct sl_filesrc *src = NULL;
    struct roots *roots = NULL;
    struct sl_xform_cache *xf = NULL;
    struct sl_ingest *g = NULL;
    struct sl_buf errs = SL_BUF_INIT, key = SL_BUF_INIT, val = SL_BUF_INIT;
    char path[SL_FILESRC_PATH_MAX];
    int rc = 0;
    if (!ws)
        return sl_error_set(err, SL_ENOTFOUND, "workspace `%s` no longer exists", job->ws);
    struct sl_view *v = sl_ws_view(ws, job->view);
    if (!v || strcmp(v->id, job->view_id) != 0) {
        rc = sl_error_set(err, SL_EINVAL,
                          "feature view `%s` was redefined or deleted after the job was queued",
                          job->view);
        goto out;
    }
    const cJSON *bc = batch_config(ws, v->source->name);
    const char *uri = member(bc, "uri"), *fmt = member(bc, "file_format");
    if (!uri) {
        rc = sl_error_set(err, SL_EINVAL, "source `%s` has no batch_config uri", v->source->name);
        goto out;
    }
    resolve(ws, uri, path, sizeof(path));
    struct seen_ctx seen = {n, job};
    struct sl_filesrc_opts fo = {0};
    roots = malloc(sizeof(*roots)); /* borrowed by src until it is closed */
    if (!roots) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    allowed_roots(n, ws, roots);
    fo.confine = 1;
    fo.roots = roots->list;
    fo.nroots = roots->n;
    fo.deny = roots->deny[0] ? roots->deny : NULL;
    if (strcmp(job->kind, "materialize") == 0) {
        fo.filter = not_seen;
        fo.filter_ctx = &seen;
    }
    rc = sl_filesrc_open(path, fmt ? fmt : "csv", v->source->schema, v->source->nfields, &fo, &src, err);
    if (rc)
        goto out;
    size_t nfiles;
    const struct sl_filesrc_file *files = sl_filesrc_files(src, &nfiles);
    if (job->has_pos && (rc = sl_filesrc_seek(src, &job->pos, err)) != 0)
        goto out;
    struct sl_vm_limits lim = {(size_t)n->cfg->lua_memory_mb << 20, n->cfg->lua_instructions,
                              n->cfg->lua_time_ms};
    xf = sl_xform_cache_new(&lim);
    g = xf ? sl_ingest_new(n, ws, xf, v) : NULL;
    if (!g) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    struct sl_filesrc_pos pos;
    sl_filesrc_tell(src, &pos);
    size_t done_files = pos.file_index;
    uint64_t base_written = job->rows_written, base_filtered = job->rows_filtered;
    for (int eof = 0; !eof;) {
        size_t in_chunk = 0;
        while (in_chunk < CHUNK_ROWS) {
            struct sl_json *row;
            int r = sl_filesrc_next(src, sl_ingest_arena(g), &row, err);
            if (r < 0) {
                rc = r;
                goto out;
            }
            if (r == 0) {
                eof = 1;
                break;
            }
            uint64_t line = 0;
            sl_filesrc_where(src, &line);
            if ((rc = sl_ingest_add(g, v->source, row, line ? line : job->rows_read + in_chunk)) != 0) {
                sl_error_set(err, rc, "out of memory");
                goto out;
            }
            in_chunk++;
        }
        size_t online, offline, filtered;
        sl_buf_reset(&errs);
        size_t nerr = sl_ingest_errors(g, &errs);
        sl_ingest_counts(g, &online, &offline, &filtered);
        sl_filesrc_tell(src, &pos);
        if (pos.file_index > done_files) {
            mark_loaded(g, job, files, done_files, pos.file_index < nfiles ? pos.file_index : nfiles);
            done_files = pos.file_index;
        }
        sl_jobs_lock(jobs);
        job->rows_read += in_chunk;
        job->rows_rejected += nerr;
        job->rows_written = base_written + (v->online ? online : offline);
        job->rows_filtered = base_filtered + filtered;
        job->pos = pos;
        job->has_pos = 1;
        if (nerr)
            keep_errors(job, &errs);
        sl_buf_reset(&key);
        sl_buf_reset(&val);
        sl_job_record(job, &key, &val);
        sl_jobs_unlock(jobs);
        sl_ingest_extra_put(g, key.p, key.len, val.p, val.len);
        if ((rc = sl_ingest_commit(g, err)) != 0)
            goto out;
        sl_ingest_reset(g);
        if (!eof && sl_job_should_stop(jobs, job)) {
            rc = SL_EBUSY;
            goto out;
        }
    }
out:
    sl_ingest_free(g);
    sl_xform_cache_free(xf);
    sl_filesrc_close(src);
    free(roots);
    sl_buf_free(&errs);
    sl_buf_free(&key);
    sl_buf_free(&val);
    sl_ws_release(ws);
    return rc;
}
