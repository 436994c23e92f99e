/* The node: the state a running `sluice serve` holds, the HTTP routes, and the admin API
 * behind the CLI (workspaces, plan/apply, service accounts, roles). */
#ifndef SL_SERVER_H
#define SL_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "store.h"

struct sl_http;
struct sl_http_req;
struct sl_registry;
struct sl_buf;
struct sl_error;

struct sl_node {
    struct sl_config *cfg;
    struct sl_store store;
    struct sl_registry *reg;
    struct sl_auth *auth;
    struct sl_writer *writer;
    struct sl_wcache *wcache;   /* the writer's value cache (wcache.h): writer thread only */
    /* Cached aggregate reads (serve.c): a write generation per hash of an entity's key
     * prefix, bumped (release) once a commit is durable and before its ack; a read takes it
     * (acquire) before reading the store and a cached answer serves only while it holds. */
#define SL_READ_GENS 65536
    uint64_t *read_gen;
    struct sl_offline *offline;
    struct sl_jobs *jobs;
    struct sl_http *http;
    pthread_mutex_t apply_mu;   /* one apply at a time */
    pthread_mutex_t bg_mu;      /* background request threads: */
    pthread_cond_t bg_cv;
    int nbg;                    /* running; stop waits for them */
    int stopping;
    int ready;                  /* atomic: serving (for /readyz), 0 while starting/draining */
    struct sl_xform_cache **xform; /* per HTTP worker: Lua VMs for transformations */
    struct sl_serve_scratch **serve_scratch; /* per HTTP worker: buffers of reads */
    uint64_t seq;               /* write sequence of aggregate events (atomic); starts at the
                                   start time in ns so it grows across restarts */
    /* counters for /metrics (atomic) */
    uint64_t ingest_requests, ingest_records, ingest_errors, read_requests, read_errors;
    uint64_t compacted_keys;    /* aggregation state deleted by retention */
    uint64_t orphan_keys, orphan_bytes; /* state of no current view, reclaimed by retention */
};

/* Opens the store, registry and auth under cfg->data_dir, starts the writer and the HTTP
 * workers. Returns NULL with err. Main thread. */
struct sl_node *sl_server_start(struct sl_config *cfg, struct sl_error *err);
/* Stops HTTP, drains the writer, closes everything. Accepts NULL. Main thread. */
void sl_server_stop(struct sl_node *n);
/* Loads the TLS certificate and key again (a renewed certificate) for new connections.
 * Returns 0 or an error (the listener started without TLS, unreadable or mismatched files).
 * Main thread. */
int sl_server_reload_tls(struct sl_node *n, const char *cert, const char *key, struct sl_error *err);
/* The bound port. */
int sl_server_port(const struct sl_node *n);

/* Replies with a JSON body built in b (consumed). Loop thread. */
void sl_reply_buf(struct sl_http_req *r, int status, struct sl_buf *b);
/* Replies {"error":msg,"code":grpc,"message":msg} (the FeatureService error shape). */
void sl_reply_error(struct sl_http_req *r, int status, int grpc, const char *msg);
/* Replies with err's message and the status/gRPC code its code maps to. Loop thread. */
void sl_reply_status(struct sl_http_req *r, const struct sl_error *err);
/* Replies 403/7 "the service account is not allowed to <what>" and writes the audit line
 * naming p (the caller), the path and the reason. Loop thread. */
void sl_reply_forbidden(struct sl_http_req *r, const struct sl_principal *p, const char *what);
/* The request body as a JSON object (cJSON; caller deletes), or NULL with err. */
#include <cJSON.h>
cJSON *sl_parse_body(struct sl_http_req *r, struct sl_error *err);
/* The HTTP status and gRPC code for a status code (SL_EAUTH → 401/16, ...). */
void sl_status_http(int code, int *http, int *grpc);

#endif
