#include "metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "sl_version.h"

#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

/* ---- histograms: non-cumulative bucket counts, made cumulative when rendered ---- */

#define NB_SECONDS 18
static const double seconds_le[NB_SECONDS] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                              0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                              5, 10, 0 /* +Inf */};
static const uint64_t seconds_ns[NB_SECONDS - 1] = {
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
    100000000, 250000000, 500000000, 1000000000, 2500000000u, 5000000000u, 10000000000u};
#define NB_SIZE 12
static const double size_le[NB_SIZE] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 0};

struct hist {
    uint64_t bucket[NB_SECONDS];
    uint64_t sum;               /* ns for durations, units for sizes */
};

static void hist_add(struct hist *h, size_t i, uint64_t v)
{
    ADD(&h->bucket[i], 1);
    ADD(&h->sum, v);
}

static size_t seconds_bucket(uint64_t ns)
{
    size_t i = 0;
    while (i < NB_SECONDS - 1 && ns > seconds_ns[i])
        i++;
    return i;
}

/* ---- the registry ---- */

static const int status_codes[] = {200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 429, 500, 503};
#define NSTATUS (sizeof(status_codes) / sizeof(status_codes[0]) + 1) /* + "other" */

/* Series with labels made at run time (workspaces, views): a fixed table that only grows;
 * a lookup reads the published count (acquire) and scans, an insert takes the mutex. The
 * key is the label values joined by a tab. */
struct series {
    char key[144];
    uint64_t a, b;              /* ingest: records, errors; views: rows, newest event (ns) */
};

struct series_tab {
    pthread_mutex_t mu;
    size_t n;                   /* published with release after the key is written */
    size_t cap;
    struct series *s;
};

/* The series of key, or NULL when the table is full or the key too long. */
static struct series *series_get(struct series_tab *t, const char *key)
{
    size_t n = __atomic_load_n(&t->n, __ATOMIC_ACQUIRE);
    for (size_t i = 0; i < n; i++)
        if (strcmp(t->s[i].key, key) == 0)
            return &t->s[i];
    if (strlen(key) >= sizeof(t->s[0].key))
        return NULL;
    pthread_mutex_lock(&t->mu);
    struct series *s = NULL;
    n = t->n;
    for (size_t i = 0; i < n && !s; i++)
        if (strcmp(t->s[i].key, key) == 0)
            s = &t->s[i];
    if (!s && n < t->cap) {
        s = &t->s[n];
        strcpy(s->key, key);
        __atomic_store_n(&t->n, n + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&t->mu);
    return s;
}

static struct series ws_store[SL_METRICS_MAX_WORKSPACES + 1]; /* the last is "other" */
static struct series view_store[SL_METRICS_MAX_VIEWS];

static struct {
    struct hist req[SL_EP_COUNT][NSTATUS];
    uint64_t resp_bytes[SL_EP_COUNT];
    struct hist group_size;
    struct hist fsync;
    uint64_t cache_hits, cache_misses;
    struct series_tab ws, views;
    double start_time;
} reg = {.ws = {PTHREAD_MUTEX_INITIALIZER, 0, SL_METRICS_MAX_WORKSPACES, ws_store},
         .views = {PTHREAD_MUTEX_INITIALIZER, 0, SL_METRICS_MAX_VIEWS, view_store}};

static const char *const ep_names[SL_EP_COUNT] = {
    "ingest", "get-features", "get-features-batch", "metadata", "get-features-for-events",
    "get-features-in-range", "workspaces", "access-control", "jobs", "metrics", "health", "ui",
    "other"};

uint64_t sl_metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sl_metrics_init(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    reg.start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *sl_metrics_endpoint_name(enum sl_endpoint ep)
{
    return (unsigned)ep < SL_EP_COUNT ? ep_names[ep] : "other";
}

static int prefix(const char *path, const char *p)
{
    size_t n = strlen(p);
    return strncmp(path, p, n) == 0 && (path[n] == 0 || path[n] == '/' || path[n] == '?');
}

enum sl_endpoint sl_metrics_endpoint(const char *path)
{
    static const char fs[] = "/api/v1/feature-service/";
    static const struct { const char *name; enum sl_endpoint ep; } calls[] = {
        {"get-features", SL_EP_GET_FEATURES}, {"get-features-batch", SL_EP_GET_FEATURES_BATCH},
        {"metadata", SL_EP_METADATA}, {"get-features-for-events", SL_EP_FOR_EVENTS},
        {"get-features-in-range", SL_EP_IN_RANGE}};
    if (strcmp(path, "/ingest") == 0)
        return SL_EP_INGEST;
    if (strncmp(path, fs, sizeof(fs) - 1) == 0) {
        for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
            if (strcmp(path + sizeof(fs) - 1, calls[i].name) == 0)
                return calls[i].ep;
        return SL_EP_OTHER;
    }
    if (prefix(path, "/v1/workspaces"))
        return strstr(path, "/roles") ? SL_EP_ACCESS : SL_EP_WORKSPACES;
    if (prefix(path, "/v1/service-accounts"))
        return SL_EP_ACCESS;
    if (prefix(path, "/v1/jobs"))
        return SL_EP_JOBS;
    if (strcmp(path, "/metrics") == 0)
        return SL_EP_METRICS;
    if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0)
        return SL_EP_HEALTH;
    if (strcmp(path, "/") == 0 || prefix(path, "/ui"))
        return SL_EP_UI;
    return SL_EP_OTHER;
}

void sl_metrics_request(enum sl_endpoint ep, int status, uint64_t ns, size_t bytes)
{
    size_t s = 0;
    while (s < NSTATUS - 1 && status_codes[s] != status)
        s++;
    if ((unsigned)ep >= SL_EP_COUNT)
        ep = SL_EP_OTHER;
    hist_add(&reg.req[ep][s], seconds_bucket(ns), ns);
    ADD(&reg.resp_bytes[ep], bytes);
}

void sl_metrics_ingest(const char *workspace, uint64_t records, int error)
{
    struct series *s = series_get(&reg.ws, workspace && !strchr(workspace, '\t') ? workspace : "");
    if (!s)
        s = &ws_store[SL_METRICS_MAX_WORKSPACES];
    ADD(error ? &s->b : &s->a, error ? 1 : records);
}

void sl_metrics_view(const char *workspace, const char *view, uint64_t rows, int64_t newest_ns)
{
    char key[160];
    if (!rows || strchr(workspace, '\t') || strchr(view, '\t') ||
        (size_t)snprintf(key, sizeof(key), "%s\t%s", workspace, view) >= sizeof(key))
        return;
    struct series *s = series_get(&reg.views, key);
    if (!s)
        return;
    ADD(&s->a, rows);
    uint64_t cur = LOAD(&s->b);
    while ((int64_t)cur < newest_ns &&
           !__atomic_compare_exchange_n(&s->b, &cur, (uint64_t)newest_ns, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
}

void sl_metrics_group_commit(size_t n, uint64_t fsync_ns)
{
    size_t i = 0;
    while (i < NB_SIZE - 1 && (double)n > size_le[i])
        i++;
    hist_add(&reg.group_size, i, n);
    hist_add(&reg.fsync, seconds_bucket(fsync_ns), fsync_ns);
}

void sl_metrics_read_cache(int hit)
{
    ADD(hit ? &reg.cache_hits : &reg.cache_misses, 1);
}

static uint64_t dir_bytes_at(int dirfd, int depth)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return 0;
    }
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISREG(st.st_mode)) {
            sum += (uint64_t)st.st_size;
        } else if (S_ISDIR(st.st_mode) && depth < 8) {
            int fd = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (fd >= 0)
                sum += dir_bytes_at(fd, depth + 1);
        }
    }
    closedir(d);
    return sum;
}

uint64_t sl_metrics_dir_bytes(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? 0 : dir_bytes_at(fd, 0);
}

/* ---- rendering ---- */

static void header(struct sl_buf *b, const char *name, const char *type, const char *help)
{
    sl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void label_value(struct sl_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            sl_buf_putc(b, '\\');
        if (*v == '\n')
            sl_buf_puts(b, "\\n");
        else
            sl_buf_putc(b, *v);
    }
}

/* One histogram's series; labels is `k="v",` text (may be empty), scale turns sums and
 * bounds into the unit (1e-9 for ns → seconds). Nothing when it has no observation. */
static void hist_render(struct sl_buf *b, const char *name, const char *labels,
                        const struct hist *h, const double *le, size_t nb, double scale)
{
    uint64_t cum = 0, c[NB_SECONDS];
    for (size_t i = 0; i < nb; i++)
        cum += c[i] = LOAD(&h->bucket[i]);
    if (cum == 0)
        return;
    cum = 0;
    for (size_t i = 0; i < nb; i++) {
        cum += c[i];
        if (i == nb - 1)
            sl_buf_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
        else
            sl_buf_printf(b, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, le[i], (unsigned long long)cum);
    }
    size_t ll = strlen(labels);
    char bare[256];
    snprintf(bare, sizeof(bare), "%.*s", ll ? (int)ll - 1 : 0, labels); /* without the last comma */
    sl_buf_printf(b, "%s_sum%s%s%s %.9g\n", name, ll ? "{" : "", bare, ll ? "}" : "",
                  (double)LOAD(&h->sum) * scale);
    sl_buf_printf(b, "%s_count%s%s%s %llu\n", name, ll ? "{" : "", bare, ll ? "}" : "",
                  (unsigned long long)cum);
}

static void process_metrics(struct sl_buf *b)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/stat", "r");
    char line[1024];
    if (f && fgets(line, sizeof(line), f)) {
        /* fields after the command (which may hold spaces) start after the last ')' */
        const char *p = strrchr(line, ')');
        unsigned long utime = 0, stime = 0, vsize = 0;
        long rss = 0;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d "
                        "%*d %*d %*d %*u %lu %ld", &utime, &stime, &vsize, &rss) == 4) {
            header(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.");
            sl_buf_printf(b, "process_cpu_seconds_total %.2f\n", (double)(utime + stime) / (double)tick);
            header(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
            sl_buf_printf(b, "process_virtual_memory_bytes %lu\n", vsize);
            header(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
            sl_buf_printf(b, "process_resident_memory_bytes %ld\n", rss * page);
        }
    }
    if (f)
        fclose(f);
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long n = -1; /* the directory's own descriptor */
        while (readdir(d))
            n++;
        closedir(d);
        header(b, "process_open_fds", "gauge", "Number of open file descriptors.");
        sl_buf_printf(b, "process_open_fds %ld\n", n - 2 /* . and .. */);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        header(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        sl_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    header(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
    sl_buf_printf(b, "process_start_time_seconds %.3f\n", reg.start_time);
}

void sl_metrics_render(struct sl_buf *b, const struct sl_metrics_gauges *g)
{
    char labels[160];
    header(b, "sluice_build_info", "gauge", "The release and commit of the running binary.");
    sl_buf_puts(b, "sluice_build_info{version=\"");
    label_value(b, SL_VERSION);
    sl_buf_puts(b, "\",commit=\"");
    label_value(b, SL_COMMIT);
    sl_buf_puts(b, "\"} 1\n");
    header(b, "sluice_ready", "gauge", "1 once the store is open and the server takes requests.");
    sl_buf_printf(b, "sluice_ready %d\n", g->ready);

    header(b, "sluice_http_request_duration_seconds", "histogram",
           "Time from a request's arrival to its reply, by endpoint and status.");
    for (int e = 0; e < SL_EP_COUNT; e++)
        for (size_t s = 0; s < NSTATUS; s++) {
            char code[8];
            if (s < NSTATUS - 1)
                snprintf(code, sizeof(code), "%d", status_codes[s]);
            else
                strcpy(code, "other");
            snprintf(labels, sizeof(labels), "endpoint=\"%s\",status=\"%s\",", ep_names[e], code);
            hist_render(b, "sluice_http_request_duration_seconds", labels, &reg.req[e][s],
                        seconds_le, NB_SECONDS, 1e-9);
        }
    header(b, "sluice_http_response_bytes_total", "counter", "Response body bytes sent, by endpoint.");
    for (int e = 0; e < SL_EP_COUNT; e++) {
        uint64_t v = LOAD(&reg.resp_bytes[e]);
        if (v)
            sl_buf_printf(b, "sluice_http_response_bytes_total{endpoint=\"%s\"} %llu\n", ep_names[e],
                          (unsigned long long)v);
    }

    size_t nws = __atomic_load_n(&reg.ws.n, __ATOMIC_ACQUIRE);
    static const char *const wsm[2][2] = {
        {"sluice_ingest_workspace_records_total", "Records written by ingest, by workspace."},
        {"sluice_ingest_workspace_errors_total", "Ingest requests answered with an error, by workspace."}};
    for (int k = 0; k < 2; k++) {
        header(b, wsm[k][0], "counter", wsm[k][1]);
        for (size_t i = 0; i <= SL_METRICS_MAX_WORKSPACES; i++) {
            if (i >= nws && i < SL_METRICS_MAX_WORKSPACES)
                continue;
            const struct series *s = &ws_store[i];
            uint64_t v = LOAD(k ? &s->b : &s->a);
            if (i == SL_METRICS_MAX_WORKSPACES && !v)
                continue;
            sl_buf_printf(b, "%s{workspace=\"", wsm[k][0]);
            label_value(b, i == SL_METRICS_MAX_WORKSPACES ? "other" : s->key);
            sl_buf_printf(b, "\"} %llu\n", (unsigned long long)v);
        }
    }
    size_t nviews = __atomic_load_n(&reg.views.n, __ATOMIC_ACQUIRE);
    static const char *const vm[2][3] = {
        {"sluice_ingest_view_rows_total", "counter", "Rows written to a feature view by ingest."},
        {"sluice_view_newest_event_timestamp_seconds", "gauge",
         "Event time of the newest row ingest wrote to a view (freshness: time() minus this)."}};
    for (int k = 0; k < 2; k++) {
        header(b, vm[k][0], vm[k][1], vm[k][2]);
        for (size_t i = 0; i < nviews; i++) {
            const struct series *s = &view_store[i];
            const char *tab = strchr(s->key, '\t');
            uint64_t v = LOAD(k ? &s->b : &s->a);
            if (!tab || (k && !LOAD(&s->a)))
                continue;
            sl_buf_printf(b, "%s{workspace=\"%.*s\",view=\"", vm[k][0], (int)(tab - s->key), s->key);
            label_value(b, tab + 1);
            if (k)
                sl_buf_printf(b, "\"} %.3f\n", (double)(int64_t)v / 1e9);
            else
                sl_buf_printf(b, "\"} %llu\n", (unsigned long long)v);
        }
    }

    header(b, "sluice_commit_group_size", "histogram", "Requests per group commit.");
    hist_render(b, "sluice_commit_group_size", "", &reg.group_size, size_le, NB_SIZE, 1);
    header(b, "sluice_commit_fsync_seconds", "histogram",
           "Time to make a group commit durable (offline fsync and synced online write).");
    hist_render(b, "sluice_commit_fsync_seconds", "", &reg.fsync, seconds_le, NB_SECONDS, 1e-9);
    header(b, "sluice_commit_queue_depth", "gauge", "Ingest requests waiting for the writer.");
    sl_buf_printf(b, "sluice_commit_queue_depth %llu\n", (unsigned long long)g->queue_depth);

    header(b, "sluice_online_store_bytes", "gauge", "Size of the online store's files.");
    sl_buf_printf(b, "sluice_online_store_bytes %llu\n", (unsigned long long)g->online_bytes);
    header(b, "sluice_offline_store_bytes", "gauge", "Size of the offline segment files.");
    sl_buf_printf(b, "sluice_offline_store_bytes %llu\n", (unsigned long long)g->offline_bytes);

    static const char *const states[5] = {"queued", "running", "succeeded", "failed", "cancelled"};
    header(b, "sluice_jobs", "gauge", "Jobs by state.");
    for (int i = 0; i < 5; i++)
        sl_buf_printf(b, "sluice_jobs{state=\"%s\"} %llu\n", states[i], (unsigned long long)g->jobs[i]);

    uint64_t hits = LOAD(&reg.cache_hits), misses = LOAD(&reg.cache_misses);
    header(b, "sluice_read_cache_hits_total", "counter", "Aggregate reads answered from the read cache.");
    sl_buf_printf(b, "sluice_read_cache_hits_total %llu\n", (unsigned long long)hits);
    header(b, "sluice_read_cache_misses_total", "counter", "Aggregate reads the read cache could not answer.");
    sl_buf_printf(b, "sluice_read_cache_misses_total %llu\n", (unsigned long long)misses);
    header(b, "sluice_read_cache_hit_ratio", "gauge", "Hits over lookups of the read cache since start.");
    sl_buf_printf(b, "sluice_read_cache_hit_ratio %.4f\n",
                  hits + misses ? (double)hits / (double)(hits + misses) : 0.0);
    process_metrics(b);
}
