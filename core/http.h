/* The HTTP front: a pool of event-loop threads sharing one listening socket. The rest of
 * core sees only this API, never libevent. */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct sl_error;
struct sl_http;
struct sl_http_req;

enum sl_http_method {
    SL_HTTP_GET = 1,
    SL_HTTP_POST,
    SL_HTTP_PUT,
    SL_HTTP_DELETE,
    SL_HTTP_HEAD,
    SL_HTTP_OTHER,
};

/* Runs on the worker thread that received the request. It must reply exactly once, either
 * before returning (sl_http_reply) or later from any thread (sl_http_reply_async). */
typedef void (*sl_http_handler)(struct sl_http_req *r, void *arg);

/* What the access log and the metrics learn about a request while it is handled
 * (accesslog.h fills it). */
struct sl_http_note {
    uint64_t start_ns;    /* arrival, CLOCK_MONOTONIC */
    char id[40];          /* request id: the client's X-Request-Id or one made up */
    char workspace[72];
    char account[48];     /* service account id, never a key */
    uint64_t records;     /* ingest: records written */
};

struct sl_http_config {
    const char *listen;   /* "127.0.0.1:8080", "[::1]:0", ":8080" */
    int threads;          /* event-loop threads, >= 1 */
    size_t max_body;      /* larger bodies are refused with 413 */
    /* TLS: both PEM files, or both NULL/"" for plain HTTP. The certificate file may hold
     * the chain (leaf first). */
    const char *tls_cert;
    const char *tls_key;
    /* Optional, run on each worker thread before it serves / after it stops. */
    int (*thread_init)(int worker, void *arg);
    void (*thread_exit)(int worker, void *arg);
    void *thread_arg;
    /* Optional, run on the loop thread just before each reply is sent (may add headers). */
    void (*on_reply)(struct sl_http_req *r, int status, const void *body, size_t len);
};

/* Binds and starts the workers. Returns 0 and *out, or SL_EIO / SL_EINVAL with err (also
 * for TLS files that cannot be read or do not match). */
int sl_http_start(const struct sl_http_config *cfg, sl_http_handler h, void *arg,
                  struct sl_http **out, struct sl_error *err);
/* Loads a new certificate (chain) and key for the connections accepted from now on (a
 * renewed certificate); open connections keep theirs. Only for a listener that started with
 * TLS. Returns 0, or SL_EINVAL / SL_ENOMEM with err and the old certificate stays. Main
 * thread. */
int sl_http_reload_tls(struct sl_http *h, const char *cert, const char *key, struct sl_error *err);
/* The bound TCP port (useful with port 0). */
int sl_http_port(const struct sl_http *h);
/* Stops accepting, finishes the loops and joins the threads. Accepts NULL. */
void sl_http_stop(struct sl_http *h);

/* Request accessors; valid until the reply. Loop thread only (or the thread holding a
 * request between handler return and sl_http_reply_async, which must not touch it after). */
enum sl_http_method sl_http_method(struct sl_http_req *r);
/* The path without query string, e.g. "/api/v1/feature-service/get-features". */
const char *sl_http_path(struct sl_http_req *r);
/* A query-string parameter, decoded, or NULL. */
const char *sl_http_query(struct sl_http_req *r, const char *key);
/* A request header value or NULL. */
const char *sl_http_header(struct sl_http_req *r, const char *name);
/* The whole body made contiguous (not NUL-terminated); *len set. NULL when empty. */
const char *sl_http_body(struct sl_http_req *r, size_t *len);
/* The client's address ("127.0.0.1", "::1"), or "" when not known. */
const char *sl_http_peer(struct sl_http_req *r);
/* The request's note (see struct sl_http_note). */
struct sl_http_note *sl_http_note(struct sl_http_req *r);
/* Index of the worker thread serving r, 0..threads-1. */
int sl_http_worker(struct sl_http_req *r);

/* Sends the reply (status, content type, body copied). Loop thread, inside or after the
 * handler. */
void sl_http_reply(struct sl_http_req *r, int status, const char *ctype, const void *body,
                   size_t len);
/* Same from any thread: takes ownership of body (malloc'd), which is freed after sending.
 * The reply is sent by r's loop thread. */
void sl_http_reply_async(struct sl_http_req *r, int status, const char *ctype, char *body,
                         size_t len);

/* Adds a response header to the reply to come, from the thread that will reply. Returns 0
 * or SL_ENOMEM. */
int sl_http_set_header(struct sl_http_req *r, const char *name, const char *value);

#endif
