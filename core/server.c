/* Node start/stop, routing, and the admin API behind the CLI. */
#include "server.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <cJSON.h>

#include "access.h"
#include "accesslog.h"
#include "batch.h"
#include "buf.h"
#include "defs.h"
#include "error.h"
#include "http.h"
#include "ingest.h"
#include "jobs.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "offline.h"
#include "pit.h"
#include "plugin.h"
#include "wcache.h"
#include "lua_vm.h"
#include "registry.h"
#include "serve.h"
#include "sl_version.h"
#include "status_page.h"
#include "timeutil.h"
#include "transform.h"

void sl_reply_buf(struct sl_http_req *r, int status, struct sl_buf *b)
{
    if (b->oom) {
        sl_buf_free(b);
        static const char oom[] = "{\"error\":\"out of memory\",\"code\":8,\"message\":\"out of memory\"}";
        sl_http_reply(r, 503, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    sl_http_reply(r, status, "application/json", b->p, b->len);
    sl_buf_free(b);
}

/* The FeatureService error body: {"error":msg,"code":grpc,"message":msg}. */
static void error_body(struct sl_buf *b, int grpc, const char *msg)
{
    sl_buf_puts(b, "{\"error\":");
    sl_buf_json_str(b, msg, strlen(msg));
    sl_buf_printf(b, ",\"code\":%d,\"message\":", grpc);
    sl_buf_json_str(b, msg, strlen(msg));
    sl_buf_putc(b, '}');
}

void sl_reply_error(struct sl_http_req *r, int status, int grpc, const char *msg)
{
    struct sl_buf b = SL_BUF_INIT;
    error_body(&b, grpc, msg);
    sl_reply_buf(r, status, &b);
}

void sl_status_http(int code, int *http, int *grpc)
{
    switch (code) {
    case SL_EINVAL: case SL_ESCHEMA: case SL_ESCRIPT: *http = 400; *grpc = 3; break;
    case SL_ENOTFOUND: *http = 404; *grpc = 5; break;
    case SL_EEXIST: *http = 409; *grpc = 6; break;
    case SL_EAUTH: *http = 401; *grpc = 16; break;
    case SL_EPERM: *http = 403; *grpc = 7; break;
    case SL_EBUSY: *http = 429; *grpc = 8; break;
    case SL_ETOOBIG: *http = 413; *grpc = 8; break;
    case SL_ENOMEM: *http = 503; *grpc = 8; break;
    default: *http = 500; *grpc = 13; break;
    }
}

void sl_reply_status(struct sl_http_req *r, const struct sl_error *err)
{
    int http, grpc;
    sl_status_http(err->code, &http, &grpc);
    sl_reply_error(r, http, grpc, err->msg);
}

static void reply_status_async(struct sl_http_req *r, const struct sl_error *err)
{
    int http, grpc;
    struct sl_buf b = SL_BUF_INIT;
    sl_status_http(err->code, &http, &grpc);
    error_body(&b, grpc, err->msg);
    size_t len;
    char *body = sl_buf_detach(&b, &len);
    sl_http_reply_async(r, http, "application/json", body, len);
}

void sl_reply_forbidden(struct sl_http_req *r, const struct sl_principal *p, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "the service account is not allowed to %s", what);
    sl_auth_audit_denied(p, 403, sl_http_path(r), NULL, msg);
    sl_reply_error(r, 403, 7, msg);
}

/* ---- admin: workspaces ---- */

static void list_one(void *arg, struct sl_ws *ws)
{
    struct sl_buf *b = arg;
    if (b->len > 1)
        sl_buf_putc(b, ',');
    sl_buf_puts(b, "{\"name\":");
    sl_buf_json_str(b, ws->name, strlen(ws->name));
    sl_buf_printf(b, ",\"live\":%s,\"version\":%llu,\"featureViews\":%zu,\"featureServices\":%zu}",
                  ws->live ? "true" : "false", (unsigned long long)ws->version, ws->nviews,
                  ws->nservices);
}

struct list_ctx {
    struct sl_node *n;
    const struct sl_principal *p;
    struct sl_buf *b;
};

static void list_visible(void *arg, struct sl_ws *ws)
{
    struct list_ctx *c = arg;
    if (sl_auth_any_role(c->n->auth, c->p, ws->name))
        list_one(c->b, ws);
}

static void workspaces_list(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p)
{
    struct sl_buf b = SL_BUF_INIT;
    struct list_ctx c = {n, p, &b};
    sl_buf_putc(&b, '[');
    sl_registry_each(n->reg, list_visible, &c);
    sl_buf_putc(&b, ']');
    struct sl_buf out = SL_BUF_INIT;
    sl_buf_puts(&out, "{\"workspaces\":");
    sl_buf_append(&out, b.p, b.len);
    sl_buf_putc(&out, '}');
    sl_buf_free(&b);
    sl_reply_buf(r, 200, &out);
}

/* 1 if the JSON text holds a NUL: a raw byte, or a \u0000 escape (cJSON would cut the
 * string there: "ok\u0000evil" would name workspace "ok"). */
static int json_has_nul(const char *p, size_t len)
{
    if (memchr(p, 0, len) != NULL)
        return 1;
    for (size_t i = 0; i + 6 <= len; i++) {
        if (p[i] != '\\')
            continue;
        if (memcmp(p + i + 1, "u0000", 5) == 0)
            return 1;
        i++; /* skip the escaped character: "\\u0000" is a backslash and text */
    }
    return 0;
}

cJSON *sl_parse_body(struct sl_http_req *r, struct sl_error *err)
{
    size_t len;
    const char *body = sl_http_body(r, &len);
    if (body && json_has_nul(body, len)) {
        sl_error_set(err, SL_EINVAL, "request body: strings must not contain NUL (\\u0000)");
        return NULL;
    }
    cJSON *o = body ? cJSON_ParseWithLength(body, len) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        sl_error_set(err, SL_EINVAL, "request body must be a JSON object");
        return NULL;
    }
    return o;
}

static void workspace_create(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p)
{
    struct sl_error err = {0};
    cJSON *o = sl_parse_body(r, &err);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (o && !cJSON_IsString(name))
        sl_error_set(&err, SL_EINVAL, "Required field `name` is missing");
    if (!err.code)
        sl_registry_create(n->reg, name->valuestring,
                           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "live")), &err);
    if (err.code) {
        cJSON_Delete(o);
        sl_reply_status(r, &err);
        return;
    }
    sl_auth_audit(p, "created workspace %s", name->valuestring);
    struct sl_ws *ws = sl_registry_get(n->reg, name->valuestring);
    struct sl_buf b = SL_BUF_INIT;
    if (ws)
        list_one(&b, ws);
    sl_ws_release(ws);
    cJSON_Delete(o);
    sl_reply_buf(r, 201, &b);
}

/* ---- admin: plan / apply, run on their own thread (Lua evaluation and a synced write) ---- */

struct apply_job {
    struct sl_node *n;
    struct sl_http_req *r;
    char *ws;
    int apply;
    cJSON *body;
    struct sl_principal by;     /* for the audit line */
};

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const struct sl_file *)a)->name, ((const struct sl_file *)b)->name);
}

static void apply_run(struct apply_job *j)
{
    struct sl_node *n = j->n;
    struct sl_error err = {0};
    struct sl_buf b = SL_BUF_INIT;
    struct sl_file *files = NULL;
    size_t nfiles = 0;
    cJSON *repo = NULL;
    lua_State *L = NULL;
    const cJSON *fa = cJSON_GetObjectItemCaseSensitive(j->body, "files"), *f;
    pthread_mutex_lock(&n->apply_mu);
    struct sl_ws *cur = sl_registry_get(n->reg, j->ws);
    if (!cur) {
        sl_error_set(&err, SL_ENOTFOUND, "workspace `%s` not found", j->ws);
        goto out;
    }
    if (!cJSON_IsArray(fa)) {
        sl_error_set(&err, SL_EINVAL, "Required field `files` is missing");
        goto out;
    }
    files = calloc((size_t)cJSON_GetArraySize(fa) + 1, sizeof(*files));
    if (!files) {
        sl_error_set(&err, SL_ENOMEM, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(f, fa)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *fc = cJSON_GetObjectItemCaseSensitive(f, "content");
        if (!cJSON_IsString(fn) || !cJSON_IsString(fc)) {
            sl_error_set(&err, SL_EINVAL, "each file needs a `name` and a `content` string");
            goto out;
        }
        files[nfiles++] = (struct sl_file){fn->valuestring, fc->valuestring, strlen(fc->valuestring)};
    }
    qsort(files, nfiles, sizeof(*files), cmp_file);
    struct sl_vm_limits lim = {(size_t)n->cfg->lua_memory_mb << 20, n->cfg->lua_instructions,
                              n->cfg->lua_time_ms};
    L = sl_vm_new(&lim, &err);
    if (!L || sl_defs_eval(L, files, nfiles, &repo, &err) != 0)
        goto out;
    const cJSON *root = cJSON_GetObjectItemCaseSensitive(j->body, "root");
    if (cJSON_IsString(root) && root->valuestring[0] == '/')
        cJSON_AddStringToObject(repo, "root", root->valuestring);
    struct sl_buf plan = SL_BUF_INIT, jobs = SL_BUF_INIT, deletes = SL_BUF_INIT;
    size_t nchanges = sl_registry_plan(cur->repo, repo, &plan);
    /* Build the snapshot even for a plan: it is the last validation. */
    struct sl_ws *next = sl_ws_build_next(cur, repo, files, nfiles, &err);
    repo = NULL;
    if (next && sl_batch_check_sources(n, next, &err) != 0) {
        sl_ws_release(next);
        next = NULL;
    }
    if (!next) {
        sl_buf_free(&plan);
        sl_buf_free(&jobs);
        sl_buf_free(&deletes);
        goto out;
    }
    int applied = 0, loses = sl_lifecycle_plan_costs(n, cur, next, &plan);
    if (j->apply && nchanges > 0) {
        if (sl_registry_install(n->reg, next, &err) != 0) {
            sl_buf_free(&plan);
            sl_buf_free(&jobs);
            sl_buf_free(&deletes);
            goto out;
        }
        applied = 1;
        sl_auth_audit(&j->by, "applied %zu changes to workspace %s (version %llu)", nchanges,
                      j->ws, (unsigned long long)cur->version + 1);
        struct sl_ws *now = sl_registry_get(n->reg, j->ws);
        if (now) {
            sl_jobs_after_apply(n->jobs, cur, now, &jobs);
            sl_jobs_after_apply_deletes(n->jobs, cur, now, &deletes);
        }
        sl_ws_release(now);
    } else {
        sl_ws_release(next);
    }
    sl_buf_puts(&b, "{\"workspace\":");
    sl_buf_json_str(&b, j->ws, strlen(j->ws));
    sl_buf_printf(&b, ",\"applied\":%s,\"version\":%llu,\"losesHistory\":%s,\"changes\":",
                  applied ? "true" : "false", (unsigned long long)(cur->version + (unsigned)applied),
                  loses ? "true" : "false");
    sl_buf_append(&b, plan.p, plan.len);
    sl_buf_puts(&b, ",\"jobs\":[");
    sl_buf_append(&b, jobs.p, jobs.len);
    sl_buf_puts(&b, "],\"deleteJobs\":[");
    sl_buf_append(&b, deletes.p, deletes.len);
    sl_buf_puts(&b, "]}");
    sl_buf_free(&plan);
    sl_buf_free(&jobs);
    sl_buf_free(&deletes);
out:
    pthread_mutex_unlock(&n->apply_mu);
    if (err.code) {
        sl_buf_free(&b);
        reply_status_async(j->r, &err);
    } else {
        size_t len;
        char *body = sl_buf_detach(&b, &len);
        sl_http_reply_async(j->r, 200, "application/json", body, len);
    }
    sl_vm_close(L);
    cJSON_Delete(repo);
    free(files);
    sl_ws_release(cur);
}

struct bg {
    struct sl_node *n;
    void (*fn)(void *arg);
    void *arg;
};

static void *bg_main(void *p)
{
    struct bg b = *(struct bg *)p;
    free(p);
    b.fn(b.arg);
    pthread_mutex_lock(&b.n->bg_mu);
    b.n->nbg--;
    pthread_cond_broadcast(&b.n->bg_cv);
    pthread_mutex_unlock(&b.n->bg_mu);
    return NULL;
}

/* Runs fn(arg) on a detached thread that shutdown waits for (requests whose work may block:
 * Lua evaluation, synced writes, offline scans). Returns 0, or -1 when stopping or out of
 * resources (fn is then not run). */
static int spawn(struct sl_node *n, void (*fn)(void *), void *arg)
{
    struct bg *b = malloc(sizeof(*b));
    pthread_t t;
    pthread_attr_t attr;
    if (!b)
        return -1;
    *b = (struct bg){n, fn, arg};
    pthread_mutex_lock(&n->bg_mu);
    int stopping = n->stopping;
    n->nbg += !stopping;
    pthread_mutex_unlock(&n->bg_mu);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = stopping ? -1 : pthread_create(&t, &attr, bg_main, b) == 0 ? 0 : -1;
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(b);
        if (!stopping) {
            pthread_mutex_lock(&n->bg_mu);
            n->nbg--;
            pthread_mutex_unlock(&n->bg_mu);
        }
    }
    return rc;
}

static void apply_job_run(void *arg)
{
    struct apply_job *j = arg;
    apply_run(j);
    cJSON_Delete(j->body);
    free(j->ws);
    free(j);
}

static void workspace_plan(struct sl_node *n, struct sl_http_req *r, const char *ws, int apply,
                           const struct sl_principal *p)
{
    struct sl_error err = {0};
    struct apply_job *j = calloc(1, sizeof(*j));
    cJSON *body = sl_parse_body(r, &err);
    if (!j || !body) {
        free(j);
        cJSON_Delete(body);
        if (!err.code)
            sl_error_set(&err, SL_ENOMEM, "out of memory");
        sl_reply_status(r, &err);
        return;
    }
    *j = (struct apply_job){n, r, strdup(ws), apply, body, *p};
    if (!j->ws || spawn(n, apply_job_run, j) != 0) {
        cJSON_Delete(body);
        free(j->ws);
        free(j);
        sl_reply_error(r, 503, 14, "the server is shutting down or out of resources");
    }
}

struct backup_req {
    struct sl_node *n;
    struct sl_http_req *r;
    char *to;
    struct sl_principal by;
};

static void backup_run(void *arg)
{
    struct backup_req *b = arg;
    struct sl_error err = {0};
    struct sl_buf out = SL_BUF_INIT;
    if (sl_lifecycle_backup(b->n, b->to, &out, &err) != 0) {
        sl_buf_free(&out);
        reply_status_async(b->r, &err);
    } else {
        size_t len;
        sl_auth_audit(&b->by, "backed up the data dir to %s", b->to);
        char *body = sl_buf_detach(&out, &len);
        sl_http_reply_async(b->r, 200, "application/json", body, len);
    }
    free(b->to);
    free(b);
}

/* POST /v1/backup {"to": DIR}: on a background thread (lifecycle.h). */
static void backup(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p)
{
    struct sl_error err = {0};
    cJSON *o = sl_parse_body(r, &err);
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(o, "to");
    struct backup_req *b = NULL;
    if (o && !cJSON_IsString(to))
        sl_error_set(&err, SL_EINVAL, "Required field `to` is missing");
    else if (o && (!(b = calloc(1, sizeof(*b))) || !(b->to = strdup(to->valuestring))))
        sl_error_set(&err, SL_ENOMEM, "out of memory");
    cJSON_Delete(o);
    if (err.code) {
        if (b)
            free(b->to);
        free(b);
        sl_reply_status(r, &err);
        return;
    }
    b->n = n;
    b->r = r;
    b->by = *p;
    if (spawn(n, backup_run, b) != 0) {
        free(b->to);
        free(b);
        sl_reply_error(r, 503, 14, "the server is shutting down or out of resources");
    }
}

static void workspace_definitions(struct sl_node *n, struct sl_http_req *r, const char *name)
{
    struct sl_ws *ws = sl_registry_get(n->reg, name);
    if (!ws) {
        struct sl_error err;
        sl_error_set(&err, SL_ENOTFOUND, "workspace `%s` not found", name);
        sl_reply_status(r, &err);
        return;
    }
    char *text = cJSON_PrintUnformatted(ws->repo);
    struct sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, text ? text : "{}");
    free(text);
    sl_ws_release(ws);
    sl_reply_buf(r, 200, &b);
}

/* ---- point-in-time retrieval ---- */

struct pit_job {
    struct sl_node *n;
    struct sl_http_req *r;
    struct sl_ws *ws;
    const struct sl_service *svc;
    char *events;
    size_t len;
    char *ts_key;
    struct sl_pit_opts o;
    int range;             /* get-features-in-range */
    int64_t start, end;
    char *page_token;
    struct sl_vm_limits lim; /* realtime views: online serving's Lua budgets */
};

static void pit_job_run(void *arg)
{
    struct pit_job *j = arg;
    struct sl_error err = {0};
    struct sl_buf out = SL_BUF_INIT, next = SL_BUF_INIT;
    int rc = j->range ? sl_pit_range(j->n->offline, j->ws, j->svc, j->start, j->end, &j->o, &out,
                                     &next, &err)
                      : sl_pit_run(j->n->offline, j->ws, j->svc, j->events, j->len, &j->o, &out, &err);
    if (rc == 0 && next.len && sl_http_set_header(j->r, "Sluice-Next-Page-Token", sl_buf_cstr(&next)) != 0)
        rc = sl_error_set(&err, SL_ENOMEM, "out of memory");
    sl_buf_free(&next);
    if (rc != 0) {
        sl_buf_free(&out);
        reply_status_async(j->r, &err);
    } else {
        size_t len;
        char *body = sl_buf_detach(&out, &len);
        sl_http_reply_async(j->r, 200, j->o.output == SL_PIT_CSV ? "text/csv" : "application/x-ndjson",
                            body, len);
    }
    sl_ws_release(j->ws);
    free(j->events);
    free(j->ts_key);
    free(j->page_token);
    free(j);
}

static int parse_format(const char *s, enum sl_pit_format *f)
{
    if (!s || strcmp(s, "jsonl") == 0)
        *f = SL_PIT_JSONL;
    else if (strcmp(s, "csv") == 0)
        *f = SL_PIT_CSV;
    else
        return -1;
    return 0;
}

static int parse_count(const char *s, size_t *v)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (!*s || *s == '-' || *end || errno || n > SIZE_MAX / 2)
        return -1;
    *v = (size_t)n;
    return 0;
}

/* POST /api/v1/feature-service/get-features-for-events?workspace_name=W&
 * feature_service_name=FS[&timestamp_key=K][&input_format=csv|jsonl][&format=csv|jsonl]
 * [&line_offset=N&event_offset=N: the body is a part of a larger file, after N lines and N
 * events; error messages number lines and events in the whole file]
 * with the events (CSV with a header, or JSON Lines) as the body. */
static void get_features_for_events(struct sl_node *n, struct sl_http_req *r,
                                    const struct sl_principal *p, int range)
{
    const char *wsn = sl_http_query(r, "workspace_name");
    const char *fsn = sl_http_query(r, "feature_service_name");
    struct sl_error err = {0};
    struct pit_job *j = NULL;
    size_t len;
    const char *body = sl_http_body(r, &len);
    if (!wsn || !fsn) {
        sl_reply_error(r, 400, 3, "query parameters `workspace_name` and `feature_service_name` are required");
        return;
    }
    if (len > (size_t)n->cfg->max_events_body) {
        sl_reply_error(r, 413, 8, "the events upload is larger than max-events-body");
        return;
    }
    if (!sl_auth_allowed(n->auth, p, wsn, SL_ACT_READ)) {
        sl_reply_forbidden(r, p, "read features from this workspace");
        return;
    }
    j = calloc(1, sizeof(*j));
    if (!j) {
        sl_reply_error(r, 503, 8, "out of memory");
        return;
    }
    j->n = n;
    j->r = r;
    j->ws = sl_registry_get(n->reg, wsn);
    if (!j->ws) {
        sl_error_set(&err, SL_ENOTFOUND, "Workspace `%s` not found", wsn);
        goto fail;
    }
    j->svc = sl_ws_service(j->ws, fsn);
    if (!j->svc) {
        sl_error_set(&err, SL_ENOTFOUND, "Feature service `%s` not found in workspace `%s`", fsn, wsn);
        goto fail;
    }
    if (parse_format(sl_http_query(r, "input_format"), &j->o.input) != 0 ||
        parse_format(sl_http_query(r, "format"), &j->o.output) != 0) {
        sl_error_set(&err, SL_EINVAL, "formats are `csv` or `jsonl`");
        goto fail;
    }
    if (range) {
        const char *st = sl_http_query(r, "start_time"), *en = sl_http_query(r, "end_time");
        j->range = 1;
        if (!st || !en || sl_time_parse(st, strlen(st), &j->start) != 0 ||
            sl_time_parse(en, strlen(en), &j->end) != 0) {
            sl_error_set(&err, SL_EINVAL, "query parameters `start_time` and `end_time` must be RFC 3339 times");
            goto fail;
        }
        const char *ps = sl_http_query(r, "page_size"), *pt = sl_http_query(r, "page_token");
        if (ps && (parse_count(ps, &j->o.page_rows) != 0 || j->o.page_rows == 0)) {
            sl_error_set(&err, SL_EINVAL, "query parameter `page_size` must be a positive count of rows");
            goto fail;
        }
        if (pt && !(j->page_token = strdup(pt))) {
            sl_error_set(&err, SL_ENOMEM, "out of memory");
            goto fail;
        }
        j->o.page_token = j->page_token;
    }
    const char *lo = sl_http_query(r, "line_offset"), *eo = sl_http_query(r, "event_offset");
    if ((lo && parse_count(lo, &j->o.line_offset) != 0) || (eo && parse_count(eo, &j->o.event_offset) != 0)) {
        sl_error_set(&err, SL_EINVAL, "query parameters `line_offset` and `event_offset` are counts");
        goto fail;
    }
    const char *tk = sl_http_query(r, "timestamp_key");
    j->ts_key = strdup(tk ? tk : "timestamp");
    j->events = malloc(len + 1);
    if (!j->ts_key || !j->events) {
        sl_error_set(&err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    memcpy(j->events, body ? body : "", len);
    j->len = len;
    j->o.timestamp_key = j->ts_key;
    j->lim = (struct sl_vm_limits){(size_t)n->cfg->lua_memory_mb << 20, n->cfg->lua_instructions,
                                   n->cfg->lua_time_ms};
    j->o.vm_limits = &j->lim;
    if (spawn(n, pit_job_run, j) != 0) {
        sl_error_set(&err, SL_EBUSY, "the server is shutting down or out of resources");
        goto fail;
    }
    return;
fail:
    sl_reply_status(r, &err);
    sl_ws_release(j->ws);
    free(j->events);
    free(j->ts_key);
    free(j->page_token);
    free(j);
}

/* ---- metrics ---- */

static void metrics(struct sl_node *n, struct sl_http_req *r)
{
    struct sl_writer_stats ws;
    sl_writer_stats(n->writer, &ws);
    struct sl_buf b = SL_BUF_INIT;
#define COUNTER(name, help, v)                                                             \
    sl_buf_printf(&b, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n", \
                  (unsigned long long)(v))
    COUNTER("sluice_ingest_requests_total", "Ingest requests received.",
            __atomic_load_n(&n->ingest_requests, __ATOMIC_RELAXED));
    COUNTER("sluice_ingest_records_total", "Records accepted by ingest.",
            __atomic_load_n(&n->ingest_records, __ATOMIC_RELAXED));
    COUNTER("sluice_ingest_errors_total", "Ingest requests answered with an error.",
            __atomic_load_n(&n->ingest_errors, __ATOMIC_RELAXED));
    COUNTER("sluice_read_requests_total", "FeatureService requests received.",
            __atomic_load_n(&n->read_requests, __ATOMIC_RELAXED));
    COUNTER("sluice_read_errors_total", "FeatureService requests answered with an error.",
            __atomic_load_n(&n->read_errors, __ATOMIC_RELAXED));
    COUNTER("sluice_commits_total", "Requests committed durably.", ws.commits);
    COUNTER("sluice_retention_deleted_keys_total",
            "Aggregation tiles and events deleted once no window can read them.",
            __atomic_load_n(&n->compacted_keys, __ATOMIC_RELAXED));
    COUNTER("sluice_retention_orphan_keys_total",
            "Online keys of no current feature view (left by older versions) deleted.",
            __atomic_load_n(&n->orphan_keys, __ATOMIC_RELAXED));
    COUNTER("sluice_retention_orphan_bytes_total",
            "Offline bytes of no current feature view (left by older versions) deleted.",
            __atomic_load_n(&n->orphan_bytes, __ATOMIC_RELAXED));
    COUNTER("sluice_commit_groups_total", "Group commits (one fsync each).", ws.groups);
    COUNTER("sluice_commit_failures_total", "Requests whose commit failed.", ws.failures);
    COUNTER("sluice_commit_conflicts_total", "Writes retried because another node wrote the same entity first.", ws.conflicts);
#undef COUNTER
    sl_plugin_metrics(&b);
    sl_buf_printf(&b, "# HELP sluice_commit_queue Requests waiting for the writer.\n"
                      "# TYPE sluice_commit_queue gauge\nsluice_commit_queue %llu\n",
                  (unsigned long long)ws.queued);
    struct sl_metrics_gauges g = {.queue_depth = ws.queued,
                                  .ready = __atomic_load_n(&n->ready, __ATOMIC_ACQUIRE)};
    static const char *const states[5] = {"queued", "running", "succeeded", "failed", "cancelled"};
    sl_jobs_count(n->jobs, states, g.jobs, 5);
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/online", n->cfg->data_dir);
    g.online_bytes = sl_metrics_dir_bytes(dir);
    snprintf(dir, sizeof(dir), "%s/offline", n->cfg->data_dir);
    g.offline_bytes = sl_metrics_dir_bytes(dir);
    sl_metrics_render(&b, &g);
    if (b.oom) {
        sl_buf_free(&b);
        sl_reply_error(r, 503, 8, "out of memory");
        return;
    }
    sl_http_reply(r, 200, "text/plain; version=0.0.4", b.p, b.len);
    sl_buf_free(&b);
}

/* Tests only: moves the fake clock. Exists only when the server started with --fake-now. */
static void set_clock(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p)
{
    struct sl_error err = {0};
    if (!n->cfg->fake_now) {
        sl_reply_error(r, 404, 5, "no such endpoint (start the server with --fake-now)");
        return;
    }
    if (!sl_auth_allowed(n->auth, p, NULL, SL_ACT_ADMIN)) {
        sl_reply_forbidden(r, p, "set the clock");
        return;
    }
    cJSON *o = sl_parse_body(r, &err);
    const cJSON *now = cJSON_GetObjectItemCaseSensitive(o, "now");
    int64_t ns;
    if (!err.code && (!cJSON_IsString(now) || sl_time_parse(now->valuestring, strlen(now->valuestring), &ns) != 0))
        sl_error_set(&err, SL_EINVAL, "`now` must be an RFC 3339 time");
    cJSON_Delete(o);
    if (err.code) {
        sl_reply_status(r, &err);
        return;
    }
    sl_time_set_fake(ns);
    static const char ok[] = "{\"status\":\"ok\"}";
    sl_http_reply(r, 200, "application/json", ok, sizeof(ok) - 1);
}

/* ---- routing ---- */

/* GET /readyz: 200 once the store is open and jobs resumed, 503 while starting or draining;
 * the body names the state and the version. */
static void readyz(struct sl_node *n, struct sl_http_req *r)
{
    int ready = __atomic_load_n(&n->ready, __ATOMIC_ACQUIRE);
    const char *state = ready ? "ready" : __atomic_load_n(&n->stopping, __ATOMIC_RELAXED) ? "draining" : "starting";
    struct sl_buf b = SL_BUF_INIT;
    sl_buf_printf(&b, "{\"status\":\"%s\",\"version\":", state);
    sl_buf_json_str(&b, SL_VERSION, strlen(SL_VERSION));
    sl_buf_puts(&b, ",\"commit\":");
    sl_buf_json_str(&b, SL_COMMIT, strlen(SL_COMMIT));
    sl_buf_putc(&b, '}');
    sl_reply_buf(r, ready ? 200 : 503, &b);
}

/* The Authorization header; for /metrics, `Bearer <key>` (what Prometheus sends) stands for
 * `Sluice-key <key>`. */
static const char *auth_header(struct sl_http_req *r, const char *path)
{
    const char *h = sl_http_header(r, "Authorization");
    if (h && strcmp(path, "/metrics") == 0 && strncasecmp(h, "Bearer ", 7) == 0) {
        static __thread char buf[512];
        snprintf(buf, sizeof(buf), "Sluice-key %s", h + 7);
        return buf;
    }
    return h;
}

/* Matches "/v1/workspaces/<name>/<rest>"; copies name. */
static int ws_route(const char *path, char *name, size_t cap, const char **rest)
{
    static const char pre[] = "/v1/workspaces/";
    if (strncmp(path, pre, sizeof(pre) - 1) != 0)
        return 0;
    const char *s = path + sizeof(pre) - 1;
    size_t l = strcspn(s, "/");
    if (l == 0 || l >= cap)
        return 0;
    memcpy(name, s, l);
    name[l] = 0;
    *rest = s + l;
    return 1;
}

static void route(struct sl_http_req *r, void *arg)
{
    struct sl_node *n = arg;
    const char *path = sl_http_path(r);
    enum sl_http_method m = sl_http_method(r);

    if (strcmp(path, "/healthz") == 0) {
        static const char ok[] = "{\"status\":\"ok\"}";
        sl_http_reply(r, 200, "application/json", ok, sizeof(ok) - 1);
        return;
    }
    if (strcmp(path, "/readyz") == 0) {
        readyz(n, r);
        return;
    }
    if (sl_status_page_path(path)) {
        sl_status_page_handle(r);
        return;
    }
    if (strcmp(path, "/metrics") == 0 && m == SL_HTTP_GET &&
        sl_config_addr_allowed(n->cfg->metrics_allow, sl_http_peer(r))) {
        metrics(n, r);
        return;
    }

    struct sl_principal p;
    struct sl_error aerr = {0};
    int arc = sl_auth_check(n->auth, auth_header(r, path), &p, &aerr);
    if (arc != 0)
        sl_auth_audit_denied(NULL, 401, path, NULL, aerr.msg);
    else
        sl_accesslog_account(r, p.id);
    sl_accesslog_workspace(r, sl_http_query(r, "workspace_name"));

    if (strcmp(path, "/ingest") == 0 && m == SL_HTTP_POST) {
        sl_ingest_handle(n, r, arc, aerr.msg, &p);
        return;
    }
    if (arc != 0) {
        sl_reply_error(r, 401, 16, aerr.msg);
        return;
    }
    static const char fs[] = "/api/v1/feature-service/";
    if (strncmp(path, fs, sizeof(fs) - 1) == 0 && m == SL_HTTP_POST) {
        const char *call = path + sizeof(fs) - 1;
        if (strcmp(call, "get-features") == 0)
            sl_serve_handle(n, r, SL_SERVE_GET, &p);
        else if (strcmp(call, "get-features-batch") == 0)
            sl_serve_handle(n, r, SL_SERVE_BATCH, &p);
        else if (strcmp(call, "metadata") == 0)
            sl_serve_handle(n, r, SL_SERVE_METADATA, &p);
        else if (strcmp(call, "get-features-for-events") == 0)
            get_features_for_events(n, r, &p, 0);
        else if (strcmp(call, "get-features-in-range") == 0)
            get_features_for_events(n, r, &p, 1);
        else
            sl_reply_error(r, 404, 5, "no such FeatureService method");
        return;
    }
    if (strncmp(path, "/v1/jobs", 8) == 0 && (path[8] == 0 || path[8] == '/')) {
        sl_jobs_handle(n, r, &p, path + 8);
        return;
    }
    if (strcmp(path, "/v1/test/clock") == 0 && m == SL_HTTP_POST) {
        set_clock(n, r, &p);
        return;
    }
    if (strcmp(path, "/v1/plugins") == 0 && m == SL_HTTP_GET) {
        struct sl_buf b = SL_BUF_INIT;
        sl_plugin_list_json(&b);
        if (b.oom)
            sl_reply_error(r, 503, 8, "out of memory");
        else
            sl_http_reply(r, 200, "application/json", b.p, b.len);
        sl_buf_free(&b);
        return;
    }
    if (strcmp(path, "/v1/backup") == 0 && m == SL_HTTP_POST) {
        if (!sl_auth_allowed(n->auth, &p, NULL, SL_ACT_ADMIN))
            sl_reply_forbidden(r, &p, "back up the data dir");
        else
            backup(n, r, &p);
        return;
    }
    if (strcmp(path, "/metrics") == 0 && m == SL_HTTP_GET) {
        metrics(n, r);
        return;
    }
    if (strcmp(path, "/v1/recent-errors") == 0 && m == SL_HTTP_GET) {
        struct sl_buf b = SL_BUF_INIT;
        if (!sl_auth_allowed(n->auth, &p, NULL, SL_ACT_ADMIN)) {
            sl_reply_forbidden(r, &p, "read the recent errors");
            return;
        }
        sl_buf_puts(&b, "{\"errors\":");
        sl_accesslog_recent(&b);
        sl_buf_putc(&b, '}');
        sl_reply_buf(r, 200, &b);
        return;
    }
    if (strcmp(path, "/v1/workspaces") == 0) {
        if (m == SL_HTTP_GET) {
            workspaces_list(n, r, &p);
        } else if (m == SL_HTTP_POST) {
            if (!sl_auth_allowed(n->auth, &p, NULL, SL_ACT_ADMIN))
                sl_reply_forbidden(r, &p, "create workspaces");
            else
                workspace_create(n, r, &p);
        } else {
            sl_reply_error(r, 405, 12, "method not allowed");
        }
        return;
    }
    if (strncmp(path, "/v1/service-accounts", 20) == 0 && (path[20] == 0 || path[20] == '/')) {
        sl_access_handle(n, r, &p, NULL, path + 20);
        return;
    }
    char ws[72];
    const char *rest;
    if (ws_route(path, ws, sizeof(ws), &rest)) {
        sl_accesslog_workspace(r, ws);
        int any = sl_auth_any_role(n->auth, &p, ws);
        if (strcmp(rest, "/plan") == 0 && m == SL_HTTP_POST) {
            if (!sl_auth_allowed(n->auth, &p, ws, SL_ACT_PLAN))
                sl_reply_forbidden(r, &p, "plan in this workspace");
            else
                workspace_plan(n, r, ws, 0, &p);
        } else if (strcmp(rest, "/apply") == 0 && m == SL_HTTP_POST) {
            if (!sl_auth_allowed(n->auth, &p, ws, SL_ACT_APPLY))
                sl_reply_forbidden(r, &p, "apply to this workspace");
            else
                workspace_plan(n, r, ws, 1, &p);
        } else if (strcmp(rest, "/definitions") == 0 && m == SL_HTTP_GET) {
            if (!any)
                sl_reply_forbidden(r, &p, "read this workspace");
            else
                workspace_definitions(n, r, ws);
        } else if (strncmp(rest, "/roles", 6) == 0 && (rest[6] == 0 || rest[6] == '/')) {
            sl_access_handle(n, r, &p, ws, rest + 6);
        } else if (*rest == 0 && m == SL_HTTP_DELETE) {
            struct sl_error err = {0};
            if (!sl_auth_allowed(n->auth, &p, ws, SL_ACT_MANAGE)) {
                sl_reply_forbidden(r, &p, "delete this workspace");
            } else {
                struct sl_buf ids = SL_BUF_INIT, b = SL_BUF_INIT;
                if (sl_lifecycle_delete_workspace(n, ws, &ids, &err) != 0) {
                    sl_reply_status(r, &err);
                } else {
                    sl_auth_audit(&p, "deleted workspace %s", ws);
                    sl_buf_puts(&b, "{\"status\":\"ok\",\"workspace\":");
                    sl_buf_json_str(&b, ws, strlen(ws));
                    sl_buf_printf(&b, ",\"jobs\":[%.*s]}", (int)ids.len, ids.p ? ids.p : "");
                    sl_reply_buf(r, 200, &b);
                }
                sl_buf_free(&ids);
            }
        } else {
            sl_reply_error(r, 404, 5, "no such endpoint");
        }
        return;
    }
    sl_reply_error(r, 404, 5, "no such endpoint");
}

static int mkdir_p(const char *dir, struct sl_error *err)
{
    char path[4096];
    size_t len = strlen(dir);
    if (len >= sizeof(path))
        return sl_error_set(err, SL_EINVAL, "data dir path too long");
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] == '/' || path[i] == 0) {
            char c = path[i];
            path[i] = 0;
            if (mkdir(path, 0700) != 0 && errno != EEXIST)
                return sl_error_set(err, SL_EIO, "mkdir %s: %s", path, strerror(errno));
            path[i] = c;
        }
    }
    return 0;
}

static int offline_flush(void *arg, struct sl_error *err)
{
    return sl_offline_sync(((struct sl_node *)arg)->offline, err);
}

static void offline_after(void *arg)
{
    sl_offline_maintain(((struct sl_node *)arg)->offline);
}

struct sl_node *sl_server_start(struct sl_config *cfg, struct sl_error *err)
{
    struct sl_node *n = calloc(1, sizeof(*n));
    char path[4200];
    if (!n) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    n->cfg = cfg;
    /* plugins first: before any Lua VM, store or worker thread exists */
    if (sl_plugin_load_config(cfg->plugins, cfg->plugin_dirs, cfg->plugin_config, err) != 0) {
        sl_plugin_unload_all();
        free(n);
        return NULL;
    }
    pthread_mutex_init(&n->apply_mu, NULL);
    pthread_mutex_init(&n->bg_mu, NULL);
    pthread_cond_init(&n->bg_cv, NULL);
    struct sl_vm_limits lim = {(size_t)cfg->lua_memory_mb << 20, cfg->lua_instructions, cfg->lua_time_ms};
    int nthreads = cfg->threads > 0 ? (int)cfg->threads : 1;
    n->xform = calloc((size_t)nthreads, sizeof(*n->xform));
    n->serve_scratch = calloc((size_t)nthreads, sizeof(*n->serve_scratch));
    for (int i = 0; n->xform && n->serve_scratch && i < nthreads; i++)
        if (!(n->xform[i] = sl_xform_cache_new(&lim)) ||
            !(n->serve_scratch[i] = sl_serve_scratch_new(cfg->read_cache_mb > 0 ? (size_t)cfg->read_cache_mb << 20 : 0)))
            break;
    if (!n->xform || !n->serve_scratch || !n->xform[nthreads - 1] ||
        !n->serve_scratch[nthreads - 1]) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    if (cfg->fake_now)
        sl_time_set_fake(cfg->fake_now);
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        n->seq = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    if (mkdir_p(cfg->data_dir, err) != 0)
        goto fail;
    int format;
    if (sl_lifecycle_check_format(cfg->data_dir, &format, err) != 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/online", cfg->data_dir);
    if (sl_plugin_store_open(cfg->online_store, path, (size_t)cfg->cache_mb, &n->store, err) != 0)
        goto fail;
    /* other nodes write a shared store: caches of what this node wrote would go stale */
    int shared = sl_store_shared(&n->store);
    for (int i = 0; shared && i < nthreads; i++) {
        sl_serve_scratch_free(n->serve_scratch[i]);
        if (!(n->serve_scratch[i] = sl_serve_scratch_new(0))) {
            sl_error_set(err, SL_ENOMEM, "out of memory");
            goto fail;
        }
    }
    n->reg = sl_registry_open(&n->store, err);
    if (!n->reg || sl_lifecycle_upgrade(n, format, err) != 0)
        goto fail;
    n->auth = sl_auth_open(&n->store, cfg->data_dir, cfg->no_auth, err);
    if (!n->auth)
        goto fail;
    if (cfg->no_auth)
        sl_warn("authentication is disabled (--no-auth): every caller is an admin");
    n->offline = sl_offline_new(cfg->data_dir);
    if (!n->offline) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    n->wcache = sl_wcache_new(cfg->writer_cache_mb > 0 && !shared ? (size_t)cfg->writer_cache_mb << 20 : 0);
    n->read_gen = calloc(SL_READ_GENS, sizeof(*n->read_gen));
    if (!n->wcache || !n->read_gen) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    n->writer = sl_writer_start(&n->store, (size_t)cfg->queue, (size_t)cfg->group_max,
                                offline_flush, offline_after, n, err);
    if (!n->writer)
        goto fail;
    n->jobs = sl_jobs_start(n, err);
    if (!n->jobs)
        goto fail;
    struct sl_http_config hc = {
        .listen = cfg->listen,
        .threads = (int)cfg->threads,
        .tls_cert = cfg->tls_cert,
        .tls_key = cfg->tls_key,
        /* the loop's own limit is the largest any endpoint takes; each checks its own */
        .max_body = (size_t)(cfg->max_body > cfg->max_events_body ? cfg->max_body
                                                                   : cfg->max_events_body),
        .on_reply = sl_accesslog_reply,
    };
    if (sl_http_start(&hc, route, n, &n->http, err) != 0)
        goto fail;
    __atomic_store_n(&n->ready, 1, __ATOMIC_RELEASE);
    return n;
fail:
    sl_server_stop(n);
    return NULL;
}

void sl_server_stop(struct sl_node *n)
{
    if (!n)
        return;
    __atomic_store_n(&n->ready, 0, __ATOMIC_RELEASE); /* /readyz: draining */
    /* Background requests and commits reply through the HTTP loops, so they finish first. */
    pthread_mutex_lock(&n->bg_mu);
    n->stopping = 1;
    while (n->nbg > 0)
        pthread_cond_wait(&n->bg_cv, &n->bg_mu);
    pthread_mutex_unlock(&n->bg_mu);
    sl_jobs_stop(n->jobs);
    sl_writer_stop(n->writer);
    sl_wcache_free(n->wcache);
    free(n->read_gen);
    sl_http_stop(n->http);
    sl_offline_free(n->offline);
    for (long i = 0; n->xform && i < (n->cfg->threads > 0 ? n->cfg->threads : 1); i++)
        sl_xform_cache_free(n->xform[i]);
    free(n->xform);
    for (long i = 0; n->serve_scratch && i < (n->cfg->threads > 0 ? n->cfg->threads : 1); i++)
        sl_serve_scratch_free(n->serve_scratch[i]);
    free(n->serve_scratch);
    sl_auth_close(n->auth);
    sl_registry_close(n->reg);
    sl_store_close(&n->store);
    pthread_mutex_destroy(&n->apply_mu);
    pthread_mutex_destroy(&n->bg_mu);
    pthread_cond_destroy(&n->bg_cv);
    free(n);
    sl_plugin_unload_all(); /* last: specs and stores above used the plugins' code */
}

int sl_server_reload_tls(struct sl_node *n, const char *cert, const char *key, struct sl_error *err)
{
    return sl_http_reload_tls(n->http, cert, key, err);
}

int sl_server_port(const struct sl_node *n)
{
    return sl_http_port(n->http);
}
