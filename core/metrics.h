/* The metrics registry behind GET /metrics, in Prometheus conventions: counters end in
 * _total, durations are _seconds histograms (buckets from 50 µs to 10 s), sizes _bytes.
 * Recording is a few relaxed atomic adds into fixed arrays (no lock, no allocation), so the
 * HTTP loops and the writer call it on every request and every group commit. The registry is
 * process-wide: one server per process. */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct sl_buf;

/* What a request was for: the `endpoint` label. */
enum sl_endpoint {
    SL_EP_INGEST,
    SL_EP_GET_FEATURES,
    SL_EP_GET_FEATURES_BATCH,
    SL_EP_METADATA,
    SL_EP_FOR_EVENTS,
    SL_EP_IN_RANGE,
    SL_EP_WORKSPACES,
    SL_EP_ACCESS,
    SL_EP_JOBS,
    SL_EP_METRICS,
    SL_EP_HEALTH,
    SL_EP_UI,
    SL_EP_OTHER,
    SL_EP_COUNT
};

/* Records the process start time (for process_start_time_seconds). Main thread, once. */
void sl_metrics_init(void);
/* The endpoint a request path belongs to. */
enum sl_endpoint sl_metrics_endpoint(const char *path);
/* The label value of an endpoint ("ingest", "get-features", ...). */
const char *sl_metrics_endpoint_name(enum sl_endpoint ep);
/* One answered request: its endpoint, status, time from arrival to reply, body bytes. Any
 * thread. */
void sl_metrics_request(enum sl_endpoint ep, int status, uint64_t ns, size_t bytes);
/* One ingest request of workspace (NULL or "": not known): records written, or an error.
 * Up to SL_METRICS_MAX_WORKSPACES workspaces get their own series; later ones count under
 * workspace="other". Any thread. */
#define SL_METRICS_MAX_WORKSPACES 256
void sl_metrics_ingest(const char *workspace, uint64_t records, int error);
/* An acknowledged ingest wrote rows to view of workspace, the newest event at newest_ns.
 * Up to SL_METRICS_MAX_VIEWS views get their own series (later ones are not counted).
 * Any thread. */
#define SL_METRICS_MAX_VIEWS 1024
void sl_metrics_view(const char *workspace, const char *view, uint64_t rows, int64_t newest_ns);
/* One group commit of n requests whose durability step (fsync) took ns. Writer thread. */
void sl_metrics_group_commit(size_t n, uint64_t fsync_ns);
/* One cached aggregate read: hit or miss. Any thread. */
void sl_metrics_read_cache(int hit);

/* Gauges read at scrape time, filled by the caller. */
struct sl_metrics_gauges {
    uint64_t queue_depth;      /* ingest requests waiting for the writer */
    uint64_t jobs[5];          /* queued running succeeded failed cancelled */
    int ready;                 /* 1 once serving */
    uint64_t online_bytes;     /* size of the online store's files */
    uint64_t offline_bytes;    /* size of the offline segment files */
};
/* Appends every metric of the registry, the gauges, sluice_build_info and process_* in the
 * text exposition format 0.0.4. Any thread. */
void sl_metrics_render(struct sl_buf *b, const struct sl_metrics_gauges *g);

/* The total size of the regular files below dir (subfolders up to 8 deep), 0 when it cannot
 * be read. Any thread. */
uint64_t sl_metrics_dir_bytes(const char *dir);
/* Monotonic nanoseconds (CLOCK_MONOTONIC). */
uint64_t sl_metrics_now_ns(void);

#endif
