#include "accesslog.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"

#include "http.h"
#include "log.h"
#include "metrics.h"

static volatile int enabled = 1;

struct recent {
    time_t time;
    int status;
    char id[40], method[8], path[128], workspace[72], account[48], error[256];
};
static pthread_mutex_t recent_mu = PTHREAD_MUTEX_INITIALIZER;
static struct recent recent[SL_ACCESSLOG_RECENT];
static size_t nrecent; /* ever recorded; the ring holds the last SL_ACCESSLOG_RECENT */
static uint64_t next_id; /* atomic */

void sl_accesslog_enable(int on) { enabled = on; }

static void copy(char *dst, size_t cap, const char *s)
{
    if (s)
        snprintf(dst, cap, "%s", s);
}

void sl_accesslog_workspace(struct sl_http_req *r, const char *ws)
{
    struct sl_http_note *n = sl_http_note(r);
    copy(n->workspace, sizeof(n->workspace), ws);
}

void sl_accesslog_account(struct sl_http_req *r, const char *account)
{
    struct sl_http_note *n = sl_http_note(r);
    copy(n->account, sizeof(n->account), account);
}

void sl_accesslog_records(struct sl_http_req *r, uint64_t n)
{
    sl_http_note(r)->records = n;
}

const char *sl_accesslog_id(struct sl_http_req *r)
{
    struct sl_http_note *n = sl_http_note(r);
    if (n->id[0])
        return n->id;
    const char *given = sl_http_header(r, "X-Request-Id");
    size_t len = given ? strlen(given) : 0;
    int ok = len > 0 && len < sizeof(n->id);
    for (size_t i = 0; ok && i < len; i++)
        ok = given[i] > ' ' && given[i] < 127 && given[i] != '"' && given[i] != '\\';
    if (ok)
        memcpy(n->id, given, len + 1);
    else /* unique in the process; the arrival time keeps ids apart across restarts */
        snprintf(n->id, sizeof(n->id), "%08llx-%llu",
                 (unsigned long long)(n->start_ns & 0xffffffffu),
                 (unsigned long long)__atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED));
    return n->id;
}

/* The message of an error body (every error shape Sluice answers with), or "". */
static void error_message(const void *body, size_t len, char *out, size_t cap)
{
    out[0] = 0;
    if (!body || len == 0 || len > 8192) /* the message of a large record error list is left out */
        return;
    cJSON *o = cJSON_ParseWithLength(body, len);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");
    if (!cJSON_IsString(m))
        m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "requestError"),
                                             "errorMessage");
    if (!cJSON_IsString(m))
        m = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "recordErrors"), 0), "errorMessage");
    if (cJSON_IsString(m))
        snprintf(out, cap, "%s", m->valuestring);
    cJSON_Delete(o);
}

static const char *method_name(struct sl_http_req *r)
{
    switch (sl_http_method(r)) {
    case SL_HTTP_GET: return "GET";
    case SL_HTTP_POST: return "POST";
    case SL_HTTP_PUT: return "PUT";
    case SL_HTTP_DELETE: return "DELETE";
    case SL_HTTP_HEAD: return "HEAD";
    default: return "OTHER";
    }
}

static void remember(const struct recent *e)
{
    pthread_mutex_lock(&recent_mu);
    recent[nrecent++ % SL_ACCESSLOG_RECENT] = *e;
    pthread_mutex_unlock(&recent_mu);
}

void sl_accesslog_recent(struct sl_buf *out)
{
    pthread_mutex_lock(&recent_mu);
    size_t n = nrecent < SL_ACCESSLOG_RECENT ? nrecent : SL_ACCESSLOG_RECENT;
    sl_buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        const struct recent *e = &recent[(nrecent - 1 - i) % SL_ACCESSLOG_RECENT];
        struct tm tm;
        char t[32];
        gmtime_r(&e->time, &tm);
        strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
        const char *kv[] = {"time", t, "id", e->id, "method", e->method, "path", e->path,
                            "workspace", e->workspace, "account", e->account, "error", e->error};
        sl_buf_puts(out, i ? ",{" : "{");
        for (size_t k = 0; k < sizeof(kv) / sizeof(kv[0]); k += 2) {
            sl_buf_json_str(out, kv[k], strlen(kv[k]));
            sl_buf_putc(out, ':');
            sl_buf_json_str(out, kv[k + 1], strlen(kv[k + 1]));
            sl_buf_putc(out, ',');
        }
        sl_buf_printf(out, "\"status\":%d}", e->status);
    }
    sl_buf_putc(out, ']');
    pthread_mutex_unlock(&recent_mu);
}

void sl_accesslog_reply(struct sl_http_req *r, int status, const void *body, size_t len)
{
    struct sl_http_note *n = sl_http_note(r);
    uint64_t ns = sl_metrics_now_ns() - n->start_ns;
    const char *path = sl_http_path(r);
    enum sl_endpoint ep = sl_metrics_endpoint(path);
    sl_metrics_request(ep, status, ns, len);
    if (ep == SL_EP_INGEST)
        sl_metrics_ingest(n->workspace, n->records, status >= 300);
    const char *id = sl_accesslog_id(r);
    sl_http_set_header(r, "X-Request-Id", id); /* out of memory: the reply goes without it */

    enum sl_log_level lvl = status >= 500 ? SL_LOG_ERROR : status >= 400 ? SL_LOG_DEBUG : SL_LOG_INFO;
    char st[8], bytes[24], dur[32], msg[512];
    msg[0] = 0;
    if (status >= 400) {
        struct recent e = {.time = time(NULL), .status = status};
        error_message(body, len, msg, sizeof(msg));
        snprintf(e.id, sizeof(e.id), "%s", id);
        snprintf(e.method, sizeof(e.method), "%s", method_name(r));
        snprintf(e.path, sizeof(e.path), "%s", path);
        snprintf(e.workspace, sizeof(e.workspace), "%s", n->workspace);
        snprintf(e.account, sizeof(e.account), "%s", n->account);
        snprintf(e.error, sizeof(e.error), "%s", msg);
        remember(&e);
    }
    int access = enabled && sl_log_enabled(SL_LOG_INFO);
    if (!access && !(status >= 400 && sl_log_enabled(lvl)))
        return;
    snprintf(st, sizeof(st), "%d", status);
    snprintf(bytes, sizeof(bytes), "%zu", len);
    snprintf(dur, sizeof(dur), "%.6f", (double)ns / 1e9);
    const char *kv[] = {"id", id, "method", method_name(r), "path", path, "status", st,
                        "bytes", bytes, "duration", dur, "workspace", n->workspace,
                        "account", n->account, "error", msg};
    if (access)
        sl_log_kv(SL_LOG_INFO, "request", kv, 8);
    if (status >= 400 && sl_log_enabled(lvl))
        sl_log_kv(lvl, "request failed", kv, 9);
}
