/* Server configuration: one table of {key, type, default, offset, help} drives the config
 * file parser, the command-line flags, `sluice serve --help` and the documentation. */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct sl_error;

struct sl_config {
    char *data_dir;
    char *listen;
    char *tls_cert;          /* PEM certificate (chain); with tls_key, the listener is TLS */
    char *tls_key;           /* PEM private key */
    long threads;
    long max_body;           /* bytes */
    long max_events_body;    /* bytes, get-features-for-events */
    long max_records;        /* records per ingest request */
    long queue;              /* ingest requests waiting for the writer */
    long group_max;          /* requests per group commit */
    int64_t future_skew;     /* ns an event may lie in the future */
    int no_auth;
    char *log_level;
    char *log_file;          /* "" = stderr; reopened on SIGHUP */
    char *log_format;        /* text or json */
    int access_log;          /* one line per request at info */
    char *metrics_allow;     /* addresses/CIDRs that may scrape /metrics without a key */
    long cache_mb;
    long writer_cache_mb;
    long read_cache_mb;       /* per HTTP thread, cached aggregate reads (serve.c) */   /* the writer's value cache (wcache.h) */
    long lua_instructions;
    long lua_memory_mb;
    long lua_time_ms;
    char *batch_roots;       /* batch-root values, one per line ("" = the repository's root) */
    long delete_chunk_keys;  /* keys per step of a delete job (lifecycle.h) */
    int64_t fake_now;        /* tests: fixed "now" in ns since epoch, 0 = real clock */
    char *config;            /* the file read, if any */
    char *plugins;           /* `plugin` paths, one a line (repeatable) */
    char *plugin_dirs;       /* `plugin-dir` folders, one a line (repeatable) */
    char *plugin_config;     /* `plugin-config` <plugin>.<key>=<value> lines (repeatable) */
    char *online_store;      /* online store by registered name */
};

/* SL_CFG_LIST: repeatable; each value is appended to the string as its own line. */
enum sl_config_type { SL_CFG_STRING, SL_CFG_LONG, SL_CFG_BOOL, SL_CFG_DURATION, SL_CFG_TIME,
                      SL_CFG_LIST };

struct sl_config_entry {
    const char *key;
    enum sl_config_type type;
    const char *def;
    size_t offset;
    const char *help;
};

/* The table, terminated by a NULL key. */
extern const struct sl_config_entry sl_config_map[];

/* Fills cfg with the defaults. Returns 0 or SL_ENOMEM. */
int sl_config_defaults(struct sl_config *cfg, struct sl_error *err);
/* Sets key (a table key) from text. Returns 0 or SL_EINVAL naming the key and value. */
int sl_config_set(struct sl_config *cfg, const char *key, const char *value, struct sl_error *err);
/* Reads a `key value` file (# comments, blank lines). Unknown keys are an error that names
 * the file and line. Returns 0, SL_EIO or SL_EINVAL. */
int sl_config_load(struct sl_config *cfg, const char *path, struct sl_error *err);
/* Applies argv flags `--key value`, `--key=value`, bare `--flag` for booleans; `--config F`
 * is read first so flags override the file. Returns 0 or SL_EINVAL. */
int sl_config_args(struct sl_config *cfg, int argc, char **argv, struct sl_error *err);
/* Checks the values together, before anything is opened or written: the listen address,
 * log level and format, the TLS pair, thread count, metrics-allow. Returns 0 or SL_EINVAL
 * naming the setting. */
int sl_config_validate(const struct sl_config *cfg, struct sl_error *err);
/* Parses "10.0.0.0/8", "127.0.0.1", "::1" or "fd00::/8": the address in network order (4 or
 * 16 bytes used), AF_INET or AF_INET6, and the prefix length. Returns 0 or SL_EINVAL. */
int sl_config_cidr_parse(const char *s, unsigned char addr[16], int *family, int *bits);
/* Whether the address text addr lies in one of the comma-separated addresses/CIDRs of
 * list (the metrics-allow setting). */
int sl_config_addr_allowed(const char *list, const char *addr);
/* Prints every key with its default and help. */
void sl_config_usage(FILE *f);
void sl_config_free(struct sl_config *cfg);

#endif
