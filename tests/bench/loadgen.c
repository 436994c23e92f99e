/* Open-loop HTTP/1.1 load generator for the benchmark suite (loopback only).
 *
 * N keep-alive connections share one request schedule: request k is due at t0 + k/rate.
 * A due request goes out on the first idle connection; when every connection is busy it waits
 * in a backlog (a counter, not a queue: its due time follows from its index). Latency is
 * measured from the due time, not the send time, so a stalled server is charged for the
 * requests it delayed (no coordinated omission). Requests still in the backlog when the run
 * ends are counted as `unsent` and enter the histogram with (end - due) as a lower bound.
 * With rate 0 (saturation) every idle connection sends at once and latency is measured from
 * the send, like wrk.
 *
 * Bounded in time (duration + drain), in count (-n), in connections and in memory.
 * Prints one JSON line on stdout; diagnostics go to stderr.
 *
 * Build: gcc -O2 -o loadgen loadgen.c $(pkg-config --cflags --libs libevent)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/event.h>

#define LG_MAX_CONNS 1024
#define LG_MAX_HEADERS 16
#define LG_MAX_SECONDS 600
#define LG_MAX_RATE 1000000.0
#define LG_MAX_BODY_FILE (256u << 20)
#define LG_MAX_BODIES 1000000
#define LG_MAX_RESPONSE (64u << 20)
#define LG_READ_CHUNK 65536
#define LG_NSTATUS 600

/* ---- latency histogram: log-linear, < 0.8% relative error, 0 ns .. 2^42 ns ---- */

#define H_SUB_BITS 8
#define H_SUB (1 << H_SUB_BITS)
#define H_HALF (H_SUB / 2)
#define H_MAX_MSB 41
#define H_NBUCKETS (H_SUB + (H_MAX_MSB - H_SUB_BITS + 1) * H_HALF)

struct hist {
    uint64_t count[H_NBUCKETS];
    uint64_t total;
    uint64_t max;
    double sum;
};

static int hist_index(uint64_t v)
{
    if (v >= (1ull << (H_MAX_MSB + 1)))
        v = (1ull << (H_MAX_MSB + 1)) - 1;
    if (v < H_SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - (H_SUB_BITS - 1);
    return H_SUB + (shift - 1) * H_HALF + (int)((v >> shift) - H_HALF);
}

/* The highest value that lands in bucket i. */
static uint64_t hist_value(int i)
{
    if (i < H_SUB)
        return (uint64_t)i;
    int shift = (i - H_SUB) / H_HALF + 1;
    uint64_t m = (uint64_t)((i - H_SUB) % H_HALF + H_HALF);
    return ((m + 1) << shift) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->total++;
    h->sum += (double)v;
    if (v > h->max)
        h->max = v;
}

static uint64_t hist_pct(const struct hist *h, double p)
{
    if (!h->total)
        return 0;
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->total);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (int i = 0; i < H_NBUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want) {
            uint64_t v = hist_value(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

/* ---- state ---- */

enum conn_state { C_DOWN, C_CONNECTING, C_IDLE, C_BUSY };
enum parse_state { P_HEAD, P_BODY, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_CRLF, P_TRAILER,
                   P_UNTIL_CLOSE };

struct req {
    char *p;
    size_t len;
};

struct lg;

struct conn {
    struct lg *lg;
    int fd;
    enum conn_state state;
    struct event *rev, *wev;
    const struct req *req;
    size_t woff;
    uint64_t due_ns, sent_ns;
    char *rbuf;
    size_t rlen, rcap, scan;
    enum parse_state ps;
    int status, keep_alive;
    uint64_t left;
    struct conn *next_idle;
};

struct lg {
    struct event_base *base;
    struct sockaddr_in addr;
    struct conn *conns;
    int nconns;
    struct conn *idle;
    struct req *reqs;
    size_t nreqs, next_req;
    double rate;
    double seconds;
    double drain;
    double timeout;
    uint64_t max_requests;
    uint64_t t0, t_end, t_last;
    uint64_t issued;
    int started, stopping;
    struct event *tick, *stop_ev, *drain_ev, *connect_ev, *reaper, *sigint, *sigterm;
    struct hist hist;
    uint64_t completed, unsent, bytes_in;
    uint64_t status[LG_NSTATUS];
    uint64_t e_connect, e_read, e_write, e_timeout, e_closed, e_parse;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct timeval tv_of_ns(uint64_t ns)
{
    struct timeval tv = {(time_t)(ns / 1000000000ull), (suseconds_t)(ns % 1000000000ull / 1000)};
    return tv;
}

static void conn_open(struct conn *c);
static void setup_step(struct lg *lg);
static void dispatch(struct lg *lg);
static void on_stop(evutil_socket_t fd, short what, void *arg);

/* Due time of request k in rate mode. */
static uint64_t due_of(const struct lg *lg, uint64_t k)
{
    return lg->t0 + (uint64_t)((double)k * 1e9 / lg->rate);
}

/* How many requests are due by `now` (rate mode), capped by -n. */
static uint64_t due_count(const struct lg *lg, uint64_t now)
{
    if (now < lg->t0)
        return 0;
    uint64_t n = (uint64_t)((double)(now - lg->t0) * lg->rate / 1e9) + 1;
    if (lg->max_requests && n > lg->max_requests)
        n = lg->max_requests;
    return n;
}

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    c->rev = c->wev = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->state == C_IDLE) {
        struct conn **pp = &c->lg->idle;
        while (*pp && *pp != c)
            pp = &(*pp)->next_idle;
        if (*pp)
            *pp = c->next_idle;
    }
    c->state = C_DOWN;
    c->req = NULL;
    c->rlen = c->scan = 0;
}

static void conn_set_idle(struct conn *c)
{
    c->state = C_IDLE;
    c->req = NULL;
    c->next_idle = c->lg->idle;
    c->lg->idle = c;
}

/* A request failed on c (counted by the caller): the connection is closed and reopened. */
static void conn_fail(struct conn *c)
{
    struct lg *lg = c->lg;
    conn_close(c);
    if (!lg->stopping)
        conn_open(c);
}

static void response_done(struct conn *c)
{
    struct lg *lg = c->lg;
    uint64_t t = now_ns();
    hist_add(&lg->hist, t > c->due_ns ? t - c->due_ns : 0);
    lg->completed++;
    lg->t_last = t;
    lg->status[c->status > 0 && c->status < LG_NSTATUS ? c->status : 0]++;
    size_t used = c->scan;
    memmove(c->rbuf, c->rbuf + used, c->rlen - used);
    c->rlen -= used;
    c->scan = 0;
    c->ps = P_HEAD;
    if (c->rlen) {
        /* Bytes nobody asked for: the stream is out of sync. */
        lg->e_parse++;
        conn_fail(c);
    } else if (!c->keep_alive) {
        conn_close(c);
        if (!lg->stopping)
            conn_open(c);
    } else {
        conn_set_idle(c);
    }
    if (!lg->stopping)
        dispatch(lg);
    int busy = 0;
    for (int i = 0; i < lg->nconns && !busy; i++)
        busy = lg->conns[i].state == C_BUSY;
    if (busy)
        return;
    if (lg->stopping)
        event_base_loopbreak(lg->base);
    else if (lg->max_requests && lg->issued >= lg->max_requests)
        on_stop(-1, 0, lg); /* -n reached and answered */
}

/* Parses the status line and headers in c->rbuf[0..end). Returns 0 or -1. */
static int parse_head(struct conn *c, size_t end)
{
    const char *p = c->rbuf, *e = c->rbuf + end;
    if (end < 12 || strncmp(p, "HTTP/1.", 7) != 0)
        return -1;
    c->keep_alive = p[7] == '1';
    c->status = atoi(p + 9);
    if (c->status < 100 || c->status > 599)
        return -1;
    int64_t clen = -1;
    int chunked = 0;
    const char *line = memchr(p, '\n', (size_t)(e - p));
    while (line && line + 1 < e) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(e - line));
        if (!eol)
            break;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            size_t nlen = (size_t)(colon - line);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vlen = (size_t)(eol - v);
            while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                vlen--;
            if (nlen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
                clen = strtoll(v, NULL, 10);
                if (clen < 0)
                    return -1;
            } else if (nlen == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
                chunked = vlen >= 7 && strncasecmp(v + vlen - 7, "chunked", 7) == 0;
            } else if (nlen == 10 && strncasecmp(line, "Connection", 10) == 0) {
                if (vlen == 5 && strncasecmp(v, "close", 5) == 0)
                    c->keep_alive = 0;
                else if (vlen == 10 && strncasecmp(v, "keep-alive", 10) == 0)
                    c->keep_alive = 1;
            }
        }
        line = eol;
    }
    if (c->status < 200 || c->status == 204 || c->status == 304) {
        c->ps = P_BODY;
        c->left = 0;
    } else if (chunked) {
        c->ps = P_CHUNK_SIZE;
    } else if (clen >= 0) {
        c->ps = P_BODY;
        c->left = (uint64_t)clen;
    } else {
        c->ps = P_UNTIL_CLOSE;
        c->keep_alive = 0;
    }
    return 0;
}

/* Advances the parser over c->rbuf. Returns 1 when a response is complete, 0 when more bytes
 * are needed, -1 on a malformed response. Body bytes are consumed (dropped) as they arrive. */
static int parse(struct conn *c)
{
    for (;;) {
        char *p = c->rbuf + c->scan;
        size_t avail = c->rlen - c->scan;
        switch (c->ps) {
        case P_HEAD: {
            char *end = NULL;
            for (size_t i = c->scan >= 3 ? c->scan - 3 : 0; i + 3 < c->rlen; i++) {
                if (c->rbuf[i] == '\r' && c->rbuf[i + 1] == '\n' && c->rbuf[i + 2] == '\r' &&
                    c->rbuf[i + 3] == '\n') {
                    end = c->rbuf + i + 4;
                    break;
                }
            }
            if (!end) {
                c->scan = c->rlen;
                return 0;
            }
            size_t hlen = (size_t)(end - c->rbuf);
            if (parse_head(c, hlen) != 0)
                return -1;
            /* Drop the head so the buffer holds only what follows it. */
            memmove(c->rbuf, end, c->rlen - hlen);
            c->rlen -= hlen;
            c->scan = 0;
            break;
        }
        case P_BODY: {
            size_t take = avail < c->left ? avail : (size_t)c->left;
            c->scan += take;
            c->left -= take;
            if (c->left)
                goto compact;
            return 1;
        }
        case P_CHUNK_SIZE:
        case P_TRAILER: {
            char *nl = memchr(p, '\n', avail);
            if (!nl)
                goto compact;
            size_t llen = (size_t)(nl - p) + 1;
            if (c->ps == P_TRAILER) {
                c->scan += llen;
                if (llen <= 2)
                    return 1;
                break;
            }
            char *ep;
            unsigned long long n = strtoull(p, &ep, 16);
            if (ep == p)
                return -1;
            c->scan += llen;
            c->left = n;
            c->ps = n ? P_CHUNK_DATA : P_TRAILER;
            break;
        }
        case P_CHUNK_DATA: {
            size_t take = avail < c->left ? avail : (size_t)c->left;
            c->scan += take;
            c->left -= take;
            if (c->left)
                goto compact;
            c->ps = P_CHUNK_CRLF;
            c->left = 2;
            break;
        }
        case P_CHUNK_CRLF: {
            size_t take = avail < c->left ? avail : (size_t)c->left;
            c->scan += take;
            c->left -= take;
            if (c->left)
                goto compact;
            c->ps = P_CHUNK_SIZE;
            break;
        }
        case P_UNTIL_CLOSE:
            c->scan = c->rlen;
            goto compact;
        }
    }
compact:
    /* Body bytes already counted are dropped; only an unfinished line stays buffered. */
    memmove(c->rbuf, c->rbuf + c->scan, c->rlen - c->scan);
    c->rlen -= c->scan;
    c->scan = 0;
    return 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct lg *lg = c->lg;
    (void)what;
    for (;;) {
        if (c->rcap - c->rlen < LG_READ_CHUNK) {
            size_t ncap = c->rcap ? c->rcap * 2 : 2 * LG_READ_CHUNK;
            char *nb = ncap <= LG_MAX_RESPONSE ? realloc(c->rbuf, ncap) : NULL;
            if (!nb) {
                lg->e_parse++;
                conn_fail(c);
                return;
            }
            c->rbuf = nb;
            c->rcap = ncap;
        }
        ssize_t n = read(fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (c->state == C_BUSY && c->ps == P_UNTIL_CLOSE) {
                c->keep_alive = 0;
                response_done(c);
                return;
            }
            if (c->state == C_BUSY) {
                if (n < 0)
                    lg->e_read++;
                else
                    lg->e_closed++;
            }
            conn_fail(c);
            if (!lg->stopping)
                dispatch(lg);
            return;
        }
        lg->bytes_in += (uint64_t)n;
        c->rlen += (size_t)n;
        if (c->state != C_BUSY) {
            lg->e_parse++;
            conn_fail(c);
            return;
        }
        int r = parse(c);
        if (r < 0) {
            lg->e_parse++;
            conn_fail(c);
            if (!lg->stopping)
                dispatch(lg);
            return;
        }
        if (r > 0) {
            response_done(c);
            return;
        }
    }
}

/* Writes what is left of c's request; arms the write event on a short write. */
static void conn_write(struct conn *c)
{
    while (c->woff < c->req->len) {
        ssize_t n = send(c->fd, c->req->p + c->woff, c->req->len - c->woff, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(c->wev, NULL);
            return;
        }
        if (n < 0) {
            c->lg->e_write++;
            conn_fail(c);
            return;
        }
        c->woff += (size_t)n;
    }
}

/* Before the run: a connection attempt ended (either way); once none is pending, leave the
 * setup loop. */
static void setup_step(struct lg *lg)
{
    for (int i = 0; i < lg->nconns; i++)
        if (lg->conns[i].state == C_CONNECTING)
            return;
    event_base_loopbreak(lg->base);
}

static void on_connected(struct conn *c)
{
    struct lg *lg = c->lg;
    conn_set_idle(c);
    if (!lg->started)
        setup_step(lg);
    else if (!lg->stopping)
        dispatch(lg);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)what;
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            /* The reaper retries a closed connection every 100 ms. */
            c->lg->e_connect++;
            conn_close(c);
            if (!c->lg->started)
                setup_step(c->lg);
            return;
        }
        on_connected(c);
        return;
    }
    if (c->state == C_BUSY)
        conn_write(c);
}

/* Opens a non-blocking connection to the target. A failure is counted and leaves the
 * connection down; the reaper retries it every 100 ms once the run has started. */
static void conn_open(struct conn *c)
{
    struct lg *lg = c->lg;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        lg->e_connect++;
        goto failed;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->rev = event_new(lg->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(lg->base, c->fd, EV_WRITE, on_write, c);
    if (!c->rev || !c->wev) {
        lg->e_connect++;
        goto close;
    }
    c->rlen = c->scan = 0;
    c->ps = P_HEAD;
    event_add(c->rev, NULL);
    if (connect(c->fd, (struct sockaddr *)&lg->addr, sizeof(lg->addr)) == 0) {
        on_connected(c);
        return;
    }
    if (errno != EINPROGRESS) {
        lg->e_connect++;
        goto close;
    }
    c->state = C_CONNECTING;
    event_add(c->wev, NULL);
    return;
close:
    conn_close(c);
failed:
    if (!lg->started)
        setup_step(lg);
}

/* ---- scheduling ---- */

static void send_on(struct conn *c, uint64_t due)
{
    struct lg *lg = c->lg;
    lg->idle = c->next_idle;
    c->next_idle = NULL;
    c->state = C_BUSY;
    c->req = &lg->reqs[lg->next_req];
    lg->next_req = (lg->next_req + 1) % lg->nreqs;
    c->woff = 0;
    c->due_ns = due;
    c->sent_ns = now_ns();
    c->ps = P_HEAD;
    lg->issued++;
    conn_write(c);
}

/* Sends every due request an idle connection can take, then arms the timer for the next. */
static void dispatch(struct lg *lg)
{
    if (lg->stopping || !lg->started)
        return;
    uint64_t now = now_ns();
    if (lg->rate <= 0) {
        while (lg->idle && (!lg->max_requests || lg->issued < lg->max_requests))
            send_on(lg->idle, now);
        return;
    }
    uint64_t due = due_count(lg, now);
    while (lg->idle && lg->issued < due)
        send_on(lg->idle, due_of(lg, lg->issued));
    if (lg->issued < due)
        return; /* backlog: the next completion dispatches */
    if (lg->max_requests && lg->issued >= lg->max_requests)
        return;
    uint64_t next = due_of(lg, lg->issued);
    struct timeval tv = tv_of_ns(next > now ? next - now : 0);
    evtimer_add(lg->tick, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dispatch(arg);
}

/* The drain (or the initial connect) took too long: leave the loop. */
static void on_drain_end(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(((struct lg *)arg)->base);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct lg *lg = arg;
    (void)fd;
    (void)what;
    if (lg->stopping)
        return;
    lg->stopping = 1;
    lg->t_end = now_ns();
    evtimer_del(lg->tick);
    /* Requests due but never sent: charged with what they have waited so far. */
    if (lg->rate > 0) {
        uint64_t due = due_count(lg, lg->t_end);
        for (uint64_t k = lg->issued; k < due; k++) {
            hist_add(&lg->hist, lg->t_end - due_of(lg, k));
            lg->unsent++;
        }
    }
    int busy = 0;
    for (int i = 0; i < lg->nconns; i++)
        busy |= lg->conns[i].state == C_BUSY;
    if (!busy) {
        event_base_loopbreak(lg->base);
        return;
    }
    struct timeval tv = tv_of_ns((uint64_t)(lg->drain * 1e9));
    evtimer_add(lg->drain_ev, &tv);
}

/* Every 100 ms: requests older than the timeout fail, and -n ends the run once reached. */
static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct lg *lg = arg;
    (void)fd;
    (void)what;
    uint64_t now = now_ns(), limit = (uint64_t)(lg->timeout * 1e9);
    for (int i = 0; i < lg->nconns; i++) {
        struct conn *c = &lg->conns[i];
        if (c->state == C_BUSY && now - c->sent_ns > limit) {
            lg->e_timeout++;
            conn_fail(c);
        } else if (c->state == C_DOWN && lg->started && !lg->stopping) {
            conn_open(c);
        }
    }
    if (!lg->stopping) {
        if (lg->max_requests && lg->issued >= lg->max_requests) {
            int busy = 0;
            for (int i = 0; i < lg->nconns; i++)
                busy |= lg->conns[i].state == C_BUSY;
            if (!busy)
                on_stop(-1, 0, lg);
        }
        dispatch(lg);
    }
}

/* ---- setup ---- */

/* Reads a whole file of at most LG_MAX_BODY_FILE bytes. Returns a NUL-terminated copy the
 * caller frees, or NULL with errno set. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    char *p = NULL;
    int e = 0;
    if (fstat(fileno(f), &st) != 0)
        e = errno;
    else if (st.st_size < 0 || (uint64_t)st.st_size > LG_MAX_BODY_FILE)
        e = EFBIG;
    else if (!(p = malloc((size_t)st.st_size + 1)))
        e = ENOMEM;
    if (p) {
        *len = fread(p, 1, (size_t)st.st_size, f);
        p[*len] = '\0';
    }
    fclose(f);
    errno = e;
    return p;
}

static int add_req(struct lg *lg, size_t *cap, const char *method, const char *path,
                   const char *hostport, char **headers, int nheaders, int has_ctype,
                   const char *body, size_t blen, int with_body)
{
    if (lg->nreqs == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        struct req *n = realloc(lg->reqs, ncap * sizeof(*n));
        if (!n)
            return -1;
        lg->reqs = n;
        *cap = ncap;
    }
    size_t hlen = 0;
    for (int i = 0; i < nheaders; i++)
        hlen += strlen(headers[i]) + 2;
    size_t size = strlen(method) + strlen(path) + strlen(hostport) + hlen + blen + 160;
    char *p = malloc(size);
    if (!p)
        return -1;
    int n = snprintf(p, size, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, hostport);
    for (int i = 0; i < nheaders; i++)
        n += snprintf(p + n, size - (size_t)n, "%s\r\n", headers[i]);
    if (with_body) {
        if (!has_ctype)
            n += snprintf(p + n, size - (size_t)n, "Content-Type: application/json\r\n");
        n += snprintf(p + n, size - (size_t)n, "Content-Length: %zu\r\n", blen);
    }
    n += snprintf(p + n, size - (size_t)n, "\r\n");
    memcpy(p + n, body, blen);
    lg->reqs[lg->nreqs].p = p;
    lg->reqs[lg->nreqs].len = (size_t)n + blen;
    lg->nreqs++;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loadgen -u http://127.0.0.1:PORT/PATH [-m METHOD] [-c CONNS] [-r RATE]\n"
            "               [-d SECONDS] [-n MAX_REQUESTS] [-b BODY_FILE | -B BODY]\n"
            "               [-H 'Name: value']... [-t TIMEOUT_S] [-D DRAIN_S] [-l LABEL]\n"
            "  -r RATE   target requests/s (open loop, latency from the due time); 0 = saturation\n"
            "  -b FILE   one request body per line, used round-robin\n"
            "Prints one JSON line: throughput, latency percentiles (ms), statuses, errors.\n"
            "Only 127.0.0.1 / localhost targets are accepted.\n");
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void report(struct lg *lg, const char *label)
{
    double elapsed = (double)((lg->t_last > lg->t_end ? lg->t_last : lg->t_end) - lg->t0) / 1e9;
    if (elapsed <= 0)
        elapsed = 1e-9;
    uint64_t ok = 0, non2xx = 0;
    for (int s = 0; s < LG_NSTATUS; s++) {
        if (s >= 200 && s < 300)
            ok += lg->status[s];
        else
            non2xx += lg->status[s];
    }
    uint64_t inflight = 0;
    for (int i = 0; i < lg->nconns; i++)
        inflight += lg->conns[i].state == C_BUSY;
    printf("{\"tool\":\"loadgen\",\"label\":");
    json_str(label);
    printf(",\"connections\":%d,\"target_rps\":", lg->nconns);
    if (lg->rate > 0)
        printf("%.0f", lg->rate);
    else
        printf("null");
    printf(",\"duration_s\":%.3f,\"sent\":%" PRIu64 ",\"completed\":%" PRIu64
           ",\"unsent\":%" PRIu64 ",\"unfinished\":%" PRIu64,
           elapsed, lg->issued, lg->completed, lg->unsent, inflight);
    printf(",\"rps\":%.1f,\"ok_rps\":%.1f,\"non2xx\":%" PRIu64 ",\"bytes_in\":%" PRIu64,
           (double)lg->completed / elapsed, (double)ok / elapsed, non2xx, lg->bytes_in);
    const struct hist *h = &lg->hist;
    printf(",\"latency_ms\":{\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
           "\"p999\":%.3f,\"max\":%.3f}",
           h->total ? h->sum / (double)h->total / 1e6 : 0.0, hist_pct(h, 50) / 1e6,
           hist_pct(h, 90) / 1e6, hist_pct(h, 99) / 1e6, hist_pct(h, 99.9) / 1e6,
           h->max / 1e6);
    printf(",\"status\":{");
    int first = 1;
    for (int s = 0; s < LG_NSTATUS; s++) {
        if (!lg->status[s])
            continue;
        printf("%s\"%d\":%" PRIu64, first ? "" : ",", s, lg->status[s]);
        first = 0;
    }
    printf("},\"errors\":{\"connect\":%" PRIu64 ",\"read\":%" PRIu64 ",\"write\":%" PRIu64
           ",\"timeout\":%" PRIu64 ",\"closed\":%" PRIu64 ",\"parse\":%" PRIu64 "}}\n",
           lg->e_connect, lg->e_read, lg->e_write, lg->e_timeout + inflight, lg->e_closed,
           lg->e_parse);
    fflush(stdout);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    struct lg *lg = arg;
    (void)fd;
    (void)what;
    if (!lg->started || lg->stopping)
        event_base_loopbreak(lg->base);
    else
        on_stop(-1, 0, lg);
}

int main(int argc, char **argv)
{
    static struct lg lg;
    const char *url = NULL, *method = NULL, *body_file = NULL, *body = NULL, *label = "";
    char *headers[LG_MAX_HEADERS];
    int nheaders = 0, has_ctype = 0, opt;
    lg.nconns = 8;
    lg.seconds = 5;
    lg.timeout = 10;
    lg.drain = 2;
    while ((opt = getopt(argc, argv, "u:m:c:r:d:n:b:B:H:t:D:l:h")) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'm': method = optarg; break;
        case 'c': lg.nconns = atoi(optarg); break;
        case 'r': lg.rate = atof(optarg); break;
        case 'd': lg.seconds = atof(optarg); break;
        case 'n': lg.max_requests = strtoull(optarg, NULL, 10); break;
        case 'b': body_file = optarg; break;
        case 'B': body = optarg; break;
        case 'H':
            if (nheaders == LG_MAX_HEADERS || !strchr(optarg, ':')) {
                fprintf(stderr, "loadgen: bad or too many headers (at most %d)\n", LG_MAX_HEADERS);
                return 2;
            }
            if (strncasecmp(optarg, "Content-Type:", 13) == 0)
                has_ctype = 1;
            headers[nheaders++] = optarg;
            break;
        case 't': lg.timeout = atof(optarg); break;
        case 'D': lg.drain = atof(optarg); break;
        case 'l': label = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!url || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (lg.nconns < 1 || lg.nconns > LG_MAX_CONNS || lg.seconds <= 0 ||
        lg.seconds > LG_MAX_SECONDS || lg.rate < 0 || lg.rate > LG_MAX_RATE ||
        lg.timeout <= 0 || lg.drain < 0 || lg.drain > 60 || (body && body_file)) {
        fprintf(stderr, "loadgen: -c 1..%d, -d 0..%d s, -r 0..%.0f, -D 0..60, one of -b/-B\n",
                LG_MAX_CONNS, LG_MAX_SECONDS, LG_MAX_RATE);
        return 2;
    }

    /* Target: loopback only. */
    char host[64], path[2048] = "/";
    int port = 0;
    if (sscanf(url, "http://%63[^:/]:%d%2047s", host, &port, path) < 2 || port < 1 ||
        port > 65535 || (strcmp(host, "127.0.0.1") != 0 && strcmp(host, "localhost") != 0)) {
        fprintf(stderr, "loadgen: the target must be http://127.0.0.1:PORT[/path]\n");
        return 2;
    }
    lg.addr.sin_family = AF_INET;
    lg.addr.sin_port = htons((uint16_t)port);
    lg.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char hostport[80];
    snprintf(hostport, sizeof(hostport), "127.0.0.1:%d", port);
    if (!method)
        method = body || body_file ? "POST" : "GET";

    /* Requests, prebuilt byte for byte. */
    size_t cap = 0;
    if (body_file) {
        size_t len = 0;
        char *all = read_file(body_file, &len);
        if (!all) {
            fprintf(stderr, "loadgen: %s: %s\n", body_file, strerror(errno));
            return 2;
        }
        char *p = all, *end = all + len;
        while (p < end && lg.nreqs < LG_MAX_BODIES) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
            if (l && p[l - 1] == '\r')
                l--;
            if (l && add_req(&lg, &cap, method, path, hostport, headers, nheaders, has_ctype, p,
                             l, 1) != 0) {
                fprintf(stderr, "loadgen: out of memory\n");
                return 1;
            }
            p = nl ? nl + 1 : end;
        }
        free(all);
        if (!lg.nreqs) {
            fprintf(stderr, "loadgen: %s holds no body\n", body_file);
            return 2;
        }
    } else if (add_req(&lg, &cap, method, path, hostport, headers, nheaders, has_ctype,
                       body ? body : "", body ? strlen(body) : 0, body != NULL) != 0) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }

    /* Precise timers (timerfd) so a request goes out at its due microsecond, not the next ms. */
    struct event_config *cfg = event_config_new();
    if (cfg)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    lg.base = cfg ? event_base_new_with_config(cfg) : NULL;
    if (cfg)
        event_config_free(cfg);
    lg.conns = calloc((size_t)lg.nconns, sizeof(*lg.conns));
    if (!lg.base || !lg.conns) {
        fprintf(stderr, "loadgen: cannot set up the event loop\n");
        return 1;
    }
    lg.tick = evtimer_new(lg.base, on_tick, &lg);
    lg.stop_ev = evtimer_new(lg.base, on_stop, &lg);
    lg.drain_ev = evtimer_new(lg.base, on_drain_end, &lg);
    lg.connect_ev = evtimer_new(lg.base, on_drain_end, &lg);
    lg.reaper = event_new(lg.base, -1, EV_PERSIST, on_reap, &lg);
    lg.sigint = evsignal_new(lg.base, SIGINT, on_signal, &lg);
    lg.sigterm = evsignal_new(lg.base, SIGTERM, on_signal, &lg);
    evsignal_add(lg.sigint, NULL);
    evsignal_add(lg.sigterm, NULL);

    /* Connect everything first (at most 3 s), then start the clock. */
    for (int i = 0; i < lg.nconns; i++) {
        lg.conns[i].lg = &lg;
        lg.conns[i].fd = -1;
    }
    for (int i = 0; i < lg.nconns; i++)
        conn_open(&lg.conns[i]);
    struct timeval connect_limit = {3, 0};
    evtimer_add(lg.connect_ev, &connect_limit);
    int pending = 0;
    for (int i = 0; i < lg.nconns; i++)
        pending |= lg.conns[i].state == C_CONNECTING;
    if (pending)
        event_base_dispatch(lg.base);
    evtimer_del(lg.connect_ev);
    if (!lg.idle) {
        fprintf(stderr, "loadgen: cannot connect to %s\n", hostport);
        return 1;
    }

    lg.started = 1;
    lg.t0 = now_ns();
    lg.t_last = lg.t0;
    struct timeval run = tv_of_ns((uint64_t)(lg.seconds * 1e9));
    struct timeval every = {0, 100000};
    evtimer_add(lg.stop_ev, &run);
    event_add(lg.reaper, &every);
    dispatch(&lg);
    event_base_dispatch(lg.base);
    if (!lg.stopping)
        on_stop(-1, 0, &lg);
    /* Requests still unanswered after the drain: charged with what they waited. */
    uint64_t t_final = now_ns();
    for (int i = 0; i < lg.nconns; i++)
        if (lg.conns[i].state == C_BUSY)
            hist_add(&lg.hist, t_final - lg.conns[i].due_ns);
    report(&lg, label);

    for (int i = 0; i < lg.nconns; i++) {
        conn_close(&lg.conns[i]);
        free(lg.conns[i].rbuf);
    }
    for (size_t i = 0; i < lg.nreqs; i++)
        free(lg.reqs[i].p);
    free(lg.reqs);
    free(lg.conns);
    event_free(lg.tick);
    event_free(lg.stop_ev);
    event_free(lg.drain_ev);
    event_free(lg.connect_ev);
    event_free(lg.reaper);
    event_free(lg.sigint);
    event_free(lg.sigterm);
    event_base_free(lg.base);
    return 0;
}
