#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "timeutil.h"

#define OFF(f) offsetof(struct sl_config, f)

const struct sl_config_entry sl_config_map[] = {
    {"data-dir", SL_CFG_STRING, "./sluice-data", OFF(data_dir), "directory for all state"},
    {"listen", SL_CFG_STRING, "127.0.0.1:8080", OFF(listen), "HTTP listen address HOST:PORT"},
    {"tls-cert", SL_CFG_STRING, "", OFF(tls_cert), "TLS certificate chain (PEM); with tls-key the listener speaks HTTPS"},
    {"tls-key", SL_CFG_STRING, "", OFF(tls_key), "TLS private key (PEM) for tls-cert"},
    {"threads", SL_CFG_LONG, "2", OFF(threads), "HTTP event-loop threads"},
    {"max-body", SL_CFG_LONG, "8388608", OFF(max_body), "largest request body in bytes (413 past it)"},
    {"max-events-body", SL_CFG_LONG, "268435456", OFF(max_events_body), "largest events upload for get-features-for-events"},
    {"max-records", SL_CFG_LONG, "10000", OFF(max_records), "most records in one ingest request"},
    {"queue", SL_CFG_LONG, "4096", OFF(queue), "ingest requests waiting for commit (429 past it)"},
    {"group-max", SL_CFG_LONG, "256", OFF(group_max), "most requests in one group commit"},
    {"future-skew", SL_CFG_DURATION, "1h", OFF(future_skew), "how far in the future an event time may be"},
    {"no-auth", SL_CFG_BOOL, "false", OFF(no_auth), "disable authentication (local experiments only)"},
    {"log-level", SL_CFG_STRING, "info", OFF(log_level), "debug, info, warn or error"},
    {"cache-mb", SL_CFG_LONG, "64", OFF(cache_mb), "online store block cache in MiB"},
    {"read-cache-mb", SL_CFG_LONG, "64", OFF(read_cache_mb), "per HTTP thread: cached aggregate feature values, in MiB (0: none)"},
    {"writer-cache-mb", SL_CFG_LONG, "256", OFF(writer_cache_mb), "the writer's cache of the aggregation states and rows it wrote, in MiB (0: none)"},
    {"lua-instructions", SL_CFG_LONG, "5000000", OFF(lua_instructions), "instruction budget per user function call"},
    {"lua-memory-mb", SL_CFG_LONG, "64", OFF(lua_memory_mb), "memory cap per Lua VM in MiB"},
    {"delete-chunk-keys", SL_CFG_LONG, "10000", OFF(delete_chunk_keys), "keys a delete job removes per step (and checkpoint)"},
    {"fake-now", SL_CFG_TIME, "", OFF(fake_now), "tests only: a fixed current time (RFC 3339)"},
    {NULL, 0, NULL, 0, NULL},
};

static const struct sl_config_entry *lookup(const char *key)
{
    for (const struct sl_config_entry *e = sl_config_map; e->key; e++)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static int set_entry(struct sl_config *cfg, const struct sl_config_entry *e, const char *v,
                     struct sl_error *err)
{
    char *base = (char *)cfg;
    switch (e->type) {
    case SL_CFG_STRING: {
        char **slot = (char **)(base + e->offset);
        char *copy = strdup(v);
        if (!copy)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        free(*slot);
        *slot = copy;
        return 0;
    }
    case SL_CFG_LONG: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || end == v || *end || n < 0)
            return sl_error_set(err, SL_EINVAL, "`%s` wants a non-negative integer, not `%s`", e->key, v);
        *(long *)(base + e->offset) = n;
        return 0;
    }
    case SL_CFG_BOOL:
        if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "1") == 0)
            *(int *)(base + e->offset) = 1;
        else if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 || strcmp(v, "0") == 0)
            *(int *)(base + e->offset) = 0;
        else
            return sl_error_set(err, SL_EINVAL, "`%s` wants true or false, not `%s`", e->key, v);
        return 0;
    case SL_CFG_DURATION:
        if (sl_duration_parse(v, strlen(v), (int64_t *)(base + e->offset)) != 0)
            return sl_error_set(err, SL_EINVAL, "`%s` wants a duration like 90s or 1h, not `%s`", e->key, v);
        return 0;
    case SL_CFG_TIME:
        if (!*v) {
            *(int64_t *)(base + e->offset) = 0;
            return 0;
        }
        if (sl_time_parse(v, strlen(v), (int64_t *)(base + e->offset)) != 0)
            return sl_error_set(err, SL_EINVAL, "`%s` wants an RFC 3339 time, not `%s`", e->key, v);
        return 0;
    }
    return SL_EINVAL;
}

int sl_config_set(struct sl_config *cfg, const char *key, const char *value, struct sl_error *err)
{
    const struct sl_config_entry *e = lookup(key);
    if (!e)
        return sl_error_set(err, SL_EINVAL, "unknown setting `%s`", key);
    return set_entry(cfg, e, value, err);
}

int sl_config_defaults(struct sl_config *cfg, struct sl_error *err)
{
    memset(cfg, 0, sizeof(*cfg));
    for (const struct sl_config_entry *e = sl_config_map; e->key; e++)
        if (set_entry(cfg, e, e->def, err) != 0)
            return err->code;
    return 0;
}

int sl_config_load(struct sl_config *cfg, const char *path, struct sl_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return sl_error_set(err, SL_EIO, "%s: %s", path, strerror(errno));
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = line + strspn(line, " \t");
        p[strcspn(p, "#\r\n")] = 0;
        if (!*p)
            continue;
        char *key = p;
        p += strcspn(p, " \t");
        if (*p)
            *p++ = 0;
        p += strspn(p, " \t");
        size_t n = strlen(p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            p[--n] = 0;
        rc = sl_config_set(cfg, key, p, err);
        if (rc)
            sl_error_prefix(err, "%s:%d: ", path, lineno);
    }
    fclose(f);
    return rc;
}

int sl_config_args(struct sl_config *cfg, int argc, char **argv, struct sl_error *err)
{
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < argc; i++) {
            const char *a = argv[i];
            if (strncmp(a, "--", 2) != 0)
                return sl_error_set(err, SL_EINVAL, "unexpected argument `%s`", a);
            char key[128];
            const char *eq = strchr(a + 2, '=');
            size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            if (kl >= sizeof(key))
                return sl_error_set(err, SL_EINVAL, "unknown flag `%s`", a);
            memcpy(key, a + 2, kl);
            key[kl] = 0;
            const char *val = eq ? eq + 1 : NULL;
            int is_config = strcmp(key, "config") == 0;
            const struct sl_config_entry *e = is_config ? NULL : lookup(key);
            if (!is_config && !e)
                return sl_error_set(err, SL_EINVAL, "unknown flag `--%s` (see --help)", key);
            if (!val) {
                if (e && e->type == SL_CFG_BOOL)
                    val = "true";
                else if (i + 1 < argc)
                    val = argv[++i];
                else
                    return sl_error_set(err, SL_EINVAL, "flag `--%s` needs a value", key);
            }
            if (pass == 0 && is_config) {
                int rc = sl_config_load(cfg, val, err);
                if (rc)
                    return rc;
                free(cfg->config);
                cfg->config = strdup(val);
            } else if (pass == 1 && !is_config) {
                int rc = set_entry(cfg, e, val, err);
                if (rc)
                    return rc;
            }
        }
    }
    return 0;
}

void sl_config_usage(FILE *f)
{
    fprintf(f, "Settings (in a --config file as `key value`, or as --key value):\n");
    fprintf(f, "  %-20s %s\n", "--config FILE", "read settings from FILE first");
    for (const struct sl_config_entry *e = sl_config_map; e->key; e++)
        fprintf(f, "  --%-18s %s%s%s%s\n", e->key, e->help, *e->def ? " (default " : "",
                e->def, *e->def ? ")" : "");
}

void sl_config_free(struct sl_config *cfg)
{
    for (const struct sl_config_entry *e = sl_config_map; e->key; e++)
        if (e->type == SL_CFG_STRING) {
            char **slot = (char **)((char *)cfg + e->offset);
            free(*slot);
            *slot = NULL;
        }
    free(cfg->config);
    cfg->config = NULL;
}
