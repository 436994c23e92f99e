#include "accesslog.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "metrics.h"

static volatile int enabled = 1;
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
    if (!body || len == 0 || len > 65536)
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
    int access = enabled && sl_log_enabled(SL_LOG_INFO);
    if (!access && !(status >= 400 && sl_log_enabled(lvl)))
        return;
    char st[8], bytes[24], dur[32], msg[512];
    snprintf(st, sizeof(st), "%d", status);
    snprintf(bytes, sizeof(bytes), "%zu", len);
    snprintf(dur, sizeof(dur), "%.6f", (double)ns / 1e9);
    const char *kv[] = {"id", id, "method", method_name(r), "path", path, "status", st,
                        "bytes", bytes, "duration", dur, "workspace", n->workspace,
                        "account", n->account, "error", msg};
    if (access)
        sl_log_kv(SL_LOG_INFO, "request", kv, 8);
    if (status >= 400 && sl_log_enabled(lvl)) {
        error_message(body, len, msg, sizeof(msg));
        sl_log_kv(lvl, "request failed", kv, 9);
    }
}
