/* libevent's evhttp behind a small API: N loop threads accept on one shared socket;
 * replies from other threads are queued to the request's loop and sent there. With a
 * certificate and key, every connection speaks TLS (libevent_openssl bufferevents over one
 * shared SSL_CTX). */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "error.h"
#include "log.h"

#define HTTP_MAX_HEADERS ((ev_ssize_t)64 << 10) /* request line + headers: 413/400 past it */
#define ACCEPT_PAUSE_MS 100       /* accepts paused after accept() failed */
#define ACCEPT_LOG_INTERVAL_S 10  /* accept failures are logged at most this often */
#define ACCEPT_SHED_MAX 64        /* clients told 503 per accept failure */
/* Sent on the reserved descriptor to a client accepted while descriptors ran out. */
static const char busy_reply[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    "Retry-After: 1\r\nConnection: close\r\nContent-Length: 80\r\n\r\n"
    "{\"error\":\"too many connections\",\"code\":14,\"message\":\"too many connections\"}\n";

struct worker;

struct sl_http_req {
    struct evhttp_request *ev;
    struct worker *w;
    char *path;            /* decoded-free path without query */
    struct evkeyvalq query;
    int query_parsed;
    /* async reply */
    int status;
    const char *ctype;
    char *body;
    size_t len;
    struct header *headers; /* added to the reply */
    struct sl_http_note note;
    struct sl_http_req *next;
};

struct header {
    struct header *next;
    char *name, *value;
};

struct worker {
    struct sl_http *h;
    int index;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *listener;
    struct evconnlistener *accepting; /* the listener (owned by http), for accept pauses */
    struct event *accept_retry;       /* re-enables accepting after a pause */
    int spare_fd;                     /* reserved descriptor, given up to answer 503 */
    time_t accept_logged;             /* when accept failures were last logged */
    unsigned long accept_errors;      /* failures since then */
    struct event *wake;
    pthread_mutex_t mu;
    struct sl_http_req *done_head, *done_tail;
    int init_ok;
    int started;
};

struct sl_http {
    struct sl_http_config cfg;
    sl_http_handler handler;
    void *arg;
    int *fds;  /* one listening socket per worker */
    int port;
    SSL_CTX *tls;         /* NULL: plain HTTP; swapped atomically by sl_http_reload_tls */
    SSL_CTX **retired;    /* contexts replaced by a reload, freed at stop */
    size_t nretired;
    int nworkers;
    struct worker *workers;
    pthread_mutex_t ready_mu;
    pthread_cond_t ready_cv;
    int nready;
};

static void req_free(struct sl_http_req *r)
{
    if (r->query_parsed)
        evhttp_clear_headers(&r->query);
    for (struct header *h = r->headers, *next; h; h = next) {
        next = h->next;
        free(h->name);
        free(h->value);
        free(h);
    }
    free(r->path);
    free(r->body);
    free(r);
}

static void send_now(struct sl_http_req *r, int status, const char *ctype, const void *body,
                     size_t len)
{
    struct evhttp_request *ev = r->ev;
    struct evkeyvalq *out = evhttp_request_get_output_headers(ev);
    if (r->w->h->cfg.on_reply)
        r->w->h->cfg.on_reply(r, status, body, len);
    evhttp_add_header(out, "Content-Type", ctype ? ctype : "application/json");
    for (const struct header *h = r->headers; h; h = h->next)
        evhttp_add_header(out, h->name, h->value);
    if (len)
        evbuffer_add(evhttp_request_get_output_buffer(ev), body, len);
    evhttp_send_reply(ev, status, NULL, NULL);
    req_free(r);
}

void sl_http_reply(struct sl_http_req *r, int status, const char *ctype, const void *body,
                   size_t len)
{
    send_now(r, status, ctype, body, len);
}

void sl_http_reply_async(struct sl_http_req *r, int status, const char *ctype, char *body,
                         size_t len)
{
    struct worker *w = r->w;
    r->status = status;
    r->ctype = ctype;
    r->body = body;
    r->len = len;
    r->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->done_tail)
        w->done_tail->next = r;
    else
        w->done_head = r;
    w->done_tail = r;
    pthread_mutex_unlock(&w->mu);
    event_active(w->wake, EV_READ, 0);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    pthread_mutex_lock(&w->mu);
    struct sl_http_req *r = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (r) {
        struct sl_http_req *next = r->next;
        char *body = r->body;
        r->body = NULL;
        send_now(r, r->status, r->ctype, body, r->len);
        free(body);
        r = next;
    }
}

int sl_http_set_header(struct sl_http_req *r, const char *name, const char *value)
{
    struct header *h = calloc(1, sizeof(*h));
    if (!h || !(h->name = strdup(name)) || !(h->value = strdup(value))) {
        if (h)
            free(h->name);
        free(h);
        return SL_ENOMEM;
    }
    struct header **tail = &r->headers;
    while (*tail)
        tail = &(*tail)->next;
    *tail = h;
    return 0;
}

enum sl_http_method sl_http_method(struct sl_http_req *r)
{
    switch (evhttp_request_get_command(r->ev)) {
    case EVHTTP_REQ_GET: return SL_HTTP_GET;
    case EVHTTP_REQ_POST: return SL_HTTP_POST;
    case EVHTTP_REQ_PUT: return SL_HTTP_PUT;
    case EVHTTP_REQ_DELETE: return SL_HTTP_DELETE;
    case EVHTTP_REQ_HEAD: return SL_HTTP_HEAD;
    default: return SL_HTTP_OTHER;
    }
}

const char *sl_http_path(struct sl_http_req *r)
{
    return r->path;
}

const char *sl_http_query(struct sl_http_req *r, const char *key)
{
    if (!r->query_parsed) {
        TAILQ_INIT(&r->query);
        const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(r->ev);
        const char *q = u ? evhttp_uri_get_query(u) : NULL;
        if (q)
            evhttp_parse_query_str(q, &r->query);
        r->query_parsed = 1;
    }
    return evhttp_find_header(&r->query, key);
}

const char *sl_http_header(struct sl_http_req *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

const char *sl_http_body(struct sl_http_req *r, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    *len = evbuffer_get_length(in);
    if (*len == 0)
        return NULL;
    return (const char *)evbuffer_pullup(in, -1);
}

const char *sl_http_peer(struct sl_http_req *r)
{
    struct evhttp_connection *c = evhttp_request_get_connection(r->ev);
    const char *addr = NULL;
    ev_uint16_t port;
    if (c)
        evhttp_connection_get_peer(c, (char **)&addr, &port);
    return addr ? addr : "";
}

struct sl_http_note *sl_http_note(struct sl_http_req *r)
{
    return &r->note;
}

int sl_http_worker(struct sl_http_req *r)
{
    return r->w->index;
}

static void on_request(struct evhttp_request *ev, void *arg)
{
    struct worker *w = arg;
    struct sl_http_req *r = calloc(1, sizeof(*r));
    const char *uri = evhttp_request_get_uri(ev);
    if (!r) {
        evhttp_send_error(ev, 503, "out of memory");
        return;
    }
    r->ev = ev;
    r->w = w;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    r->note.start_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    size_t n = strcspn(uri, "?");
    r->path = strndup(uri, n);
    if (!r->path) {
        free(r);
        evhttp_send_error(ev, 503, "out of memory");
        return;
    }
    w->h->handler(r, w->h->arg);
}

/* ---- accept failures ----
 * At the descriptor limit accept() fails while the client stays in the backlog, so the
 * listener would fire again at once: a busy loop writing one log line per try. Instead the
 * reserved descriptor is given up to accept that client and tell it 503, accepting pauses
 * for ACCEPT_PAUSE_MS, and failures are logged once per ACCEPT_LOG_INTERVAL_S with a count. */

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    evconnlistener_enable(w->accepting);
}

/* The worker whose loop runs on this thread (the error callback's argument is evhttp's). */
static __thread struct worker *this_worker;

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct worker *w = this_worker;
    int e = EVUTIL_SOCKET_ERROR();
    (void)arg;
    if (w == NULL || w->accepting != l)
        return;
    time_t now = time(NULL);

    if ((e == EMFILE || e == ENFILE) && w->spare_fd >= 0) {
        close(w->spare_fd);
        for (int i = 0; i < ACCEPT_SHED_MAX; i++) { /* the backlog waiting now, bounded */
            int fd = accept(evconnlistener_get_fd(l), NULL, NULL);
            if (fd < 0)
                break;
            if (!w->h->tls) /* one small write into an empty socket buffer */
                (void)!send(fd, busy_reply, sizeof(busy_reply) - 1, MSG_NOSIGNAL);
            close(fd);
        }
        w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    w->accept_errors++;
    if (now - w->accept_logged >= ACCEPT_LOG_INTERVAL_S) {
        sl_warn("http: accept failed on loop %d: %s (%lu times since the last report); "
                "accepting pauses for %d ms each time",
                w->index, strerror(e), w->accept_errors, ACCEPT_PAUSE_MS);
        w->accept_logged = now;
        w->accept_errors = 0;
    }
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    evconnlistener_disable(l);
    event_add(w->accept_retry, &tv);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct sl_http *h = w->h;
    this_worker = w;
    w->init_ok = !h->cfg.thread_init || h->cfg.thread_init(w->index, h->cfg.thread_arg) == 0;
    pthread_mutex_lock(&h->ready_mu);
    h->nready++;
    pthread_cond_signal(&h->ready_cv);
    pthread_mutex_unlock(&h->ready_mu);
    if (w->init_ok)
        event_base_dispatch(w->base);
    if (h->cfg.thread_exit)
        h->cfg.thread_exit(w->index, h->cfg.thread_arg);
    return NULL;
}

static int parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof(host))
        return SL_EINVAL;
    size_t hl = (size_t)(colon - spec);
    memcpy(host, spec, hl);
    host[hl] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || end == colon + 1)
        return SL_EINVAL;
    memset(ss, 0, sizeof(*ss));
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        host[hl - 1] = 0;
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
            return SL_EINVAL;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*s6);
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (hl == 0)
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return SL_EINVAL;
    *sl = sizeof(*s4);
    return 0;
}

/* One listening socket per worker, all bound to the same address with SO_REUSEPORT, so the
 * kernel spreads new connections over the loops (one shared socket lets whichever loop
 * wakes first take a whole burst). The first socket fixes the port when it is 0. */
static int open_listener(struct sl_http *h, int i, struct sl_error *err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_listen(h->cfg.listen, &ss, &sl) != 0)
        return sl_error_set(err, SL_EINVAL, "bad listen address `%s` (want HOST:PORT)",
                            h->cfg.listen);
    if (i > 0) {
        if (ss.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)h->port);
        else
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)h->port);
    }
    if (i == 0) {
        /* SO_REUSEPORT would let us share a port another server already listens on: make
         * sure nobody does, with a plain bind first */
        int probe = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (probe >= 0) {
            setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            int used = bind(probe, (struct sockaddr *)&ss, sl) != 0 ? errno : 0;
            close(probe);
            if (used)
                return sl_error_set(err, SL_EIO, "bind %s: %s", h->cfg.listen, strerror(used));
        }
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "socket: %s", strerror(errno));
    h->fds[i] = fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0)
        return sl_error_set(err, SL_EIO, "bind %s: %s", h->cfg.listen, strerror(errno));
    if (listen(fd, 1024) != 0)
        return sl_error_set(err, SL_EIO, "listen %s: %s", h->cfg.listen, strerror(errno));
    if (i == 0) {
        struct sockaddr_storage bound;
        socklen_t bl = sizeof(bound);
        getsockname(fd, (struct sockaddr *)&bound, &bl);
        h->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                     : ((struct sockaddr_in *)&bound)->sin_port);
    }
    return 0;
}

/* evhttp's per-connection bufferevent: TLS, accepting. */
static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
    struct sl_http *h = arg;
    SSL *ssl = SSL_new(__atomic_load_n(&h->tls, __ATOMIC_ACQUIRE));
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(base, -1, ssl,
                                                             BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* clients that close without close_notify (most HTTP clients) are not an error */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static int tls_fail(struct sl_error *err, const char *what, const char *path)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return sl_error_set(err, SL_EINVAL, "TLS: %s %s: %s", what, path ? path : "",
                        e ? buf : "unknown error");
}

/* A server context for cert (chain) and key, checked to match. Returns 0 and *out, or
 * SL_EINVAL with err. */
static int tls_ctx_new(const char *cert, const char *key, SSL_CTX **out, struct sl_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int rc = 0;
    if (!ctx)
        return tls_fail(err, "cannot create a context", NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        rc = tls_fail(err, "cannot load the certificate", cert);
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        rc = tls_fail(err, "cannot load the private key", key);
    else if (SSL_CTX_check_private_key(ctx) != 1)
        rc = tls_fail(err, "the private key does not match the certificate", key);
    if (rc) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

static int tls_open(struct sl_http *h, struct sl_error *err)
{
    const char *cert = h->cfg.tls_cert, *key = h->cfg.tls_key;
    if ((!cert || !*cert) && (!key || !*key))
        return 0;
    if (!cert || !*cert || !key || !*key)
        return sl_error_set(err, SL_EINVAL, "TLS needs both tls-cert and tls-key");
    int rc = tls_ctx_new(cert, key, &h->tls, err);
    if (rc == 0)
        sl_info("http: TLS with certificate %s", cert);
    return rc;
}

int sl_http_reload_tls(struct sl_http *h, const char *cert, const char *key, struct sl_error *err)
{
    if (!h->tls)
        return sl_error_set(err, SL_EINVAL, "the listener started without TLS; turning it on needs a restart");
    SSL_CTX *ctx, **retired = realloc(h->retired, (h->nretired + 1) * sizeof(*retired));
    if (!retired)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    h->retired = retired;
    int rc = tls_ctx_new(cert, key, &ctx, err);
    if (rc)
        return rc;
    /* connections accepted from now on use ctx; the old context may still be read by a loop
     * that loaded the pointer just before, so it is freed only at stop */
    h->retired[h->nretired++] = __atomic_exchange_n(&h->tls, ctx, __ATOMIC_ACQ_REL);
    return 0;
}

int sl_http_start(const struct sl_http_config *cfg, sl_http_handler handler, void *arg,
                  struct sl_http **out, struct sl_error *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, (void (*)(void))evthread_use_pthreads);

    struct sl_http *h = calloc(1, sizeof(*h));
    if (!h)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    h->cfg = *cfg;
    h->handler = handler;
    h->arg = arg;
    pthread_mutex_init(&h->ready_mu, NULL);
    pthread_cond_init(&h->ready_cv, NULL);
    h->nworkers = cfg->threads > 0 ? cfg->threads : 1;
    int rc = tls_open(h, err);
    if (rc != 0)
        goto fail;
    h->fds = malloc((size_t)h->nworkers * sizeof(int));
    if (!h->fds) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < h->nworkers; i++)
        h->fds[i] = -1;
    for (int i = 0; i < h->nworkers; i++)
        if ((rc = open_listener(h, i, err)) != 0)
            goto fail;
    h->workers = calloc((size_t)h->nworkers, sizeof(*h->workers));
    if (!h->workers) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < h->nworkers; i++) {
        struct worker *w = &h->workers[i];
        w->h = h;
        w->index = i;
        pthread_mutex_init(&w->mu, NULL);
        w->base = event_base_new();
        w->http = w->base ? evhttp_new(w->base) : NULL;
        w->wake = w->base ? event_new(w->base, -1, 0, on_wake, w) : NULL;
        w->accept_retry = w->base ? evtimer_new(w->base, on_accept_retry, w) : NULL;
        w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        w->listener = w->base ? evconnlistener_new(w->base, NULL, NULL, LEV_OPT_CLOSE_ON_EXEC,
                                                   0, h->fds[i])
                              : NULL;
        if (!w->http || !w->wake || !w->listener || !w->accept_retry) {
            rc = sl_error_set(err, SL_ENOMEM, "cannot create event loop %d", i);
            goto fail;
        }
        if (!evhttp_bind_listener(w->http, w->listener)) {
            rc = sl_error_set(err, SL_EIO, "cannot attach listener to loop %d", i);
            goto fail;
        }
        w->accepting = w->listener;
        evconnlistener_set_error_cb(w->accepting, on_accept_error);
        w->listener = NULL; /* owned by evhttp now */
        evhttp_set_max_headers_size(w->http, HTTP_MAX_HEADERS);
        evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                                EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
        if (cfg->max_body)
            evhttp_set_max_body_size(w->http, (ev_ssize_t)cfg->max_body);
        evhttp_set_timeout(w->http, 60);
        evhttp_set_gencb(w->http, on_request, w);
        if (h->tls)
            evhttp_set_bevcb(w->http, tls_bev, h);
    }
    int started = 0;
    for (int i = 0; i < h->nworkers; i++) {
        if (pthread_create(&h->workers[i].thread, NULL, worker_main, &h->workers[i]) != 0) {
            rc = sl_error_set(err, SL_EIO, "cannot start HTTP worker thread %d", i);
            break;
        }
        h->workers[i].started = 1;
        started++;
    }
    pthread_mutex_lock(&h->ready_mu);
    while (h->nready < started)
        pthread_cond_wait(&h->ready_cv, &h->ready_mu);
    pthread_mutex_unlock(&h->ready_mu);
    if (rc != 0)
        goto fail;
    for (int i = 0; i < h->nworkers; i++) {
        if (!h->workers[i].init_ok) {
            sl_http_stop(h);
            return sl_error_set(err, SL_EINVAL, "worker %d failed to initialise", i);
        }
    }
    *out = h;
    return 0;
fail:
    sl_http_stop(h);
    return rc;
}

int sl_http_port(const struct sl_http *h)
{
    return h->port;
}

void sl_http_stop(struct sl_http *h)
{
    if (!h)
        return;
    for (int i = 0; h->workers && i < h->nworkers; i++)
        if (h->workers[i].base)
            event_base_loopexit(h->workers[i].base, NULL);
    for (int i = 0; h->workers && i < h->nworkers; i++) {
        struct worker *w = &h->workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        if (w->http)
            evhttp_free(w->http);
        if (w->listener)
            evconnlistener_free(w->listener);
        if (w->wake)
            event_free(w->wake);
        if (w->accept_retry)
            event_free(w->accept_retry);
        if (w->h && w->spare_fd >= 0)
            close(w->spare_fd);
        if (w->base)
            event_base_free(w->base);
        if (w->h)
            pthread_mutex_destroy(&w->mu);
    }
    for (int i = 0; h->fds && i < h->nworkers; i++)
        if (h->fds[i] >= 0)
            close(h->fds[i]);
    free(h->fds);
    pthread_mutex_destroy(&h->ready_mu);
    pthread_cond_destroy(&h->ready_cv);
    SSL_CTX_free(h->tls);
    for (size_t i = 0; i < h->nretired; i++)
        SSL_CTX_free(h->retired[i]);
    free(h->retired);
    free(h->workers);
    free(h);
}
