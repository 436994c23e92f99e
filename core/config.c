#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "timeutil.h"

#define OFF(f) offsetof(struct sl_config, f)

#ifndef SL_DATA_DIR
#define SL_DATA_DIR "/var/lib/sluice"
#endif

const struct sl_config_entry sl_config_map[] = {
    {"data-dir", SL_CFG_STRING, SL_DATA_DIR, OFF(data_dir), "directory for all state"},
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
    {"log-file", SL_CFG_STRING, "", OFF(log_file), "append the log to this file instead of stderr (reopened on SIGHUP)"},
    {"log-format", SL_CFG_STRING, "text", OFF(log_format), "text, or json for one JSON object per line"},
    {"access-log", SL_CFG_BOOL, "true", OFF(access_log), "log one line per request at info level"},
    {"metrics-allow", SL_CFG_STRING, "", OFF(metrics_allow), "comma-separated addresses or CIDRs that may read /metrics without a key"},
    {"cache-mb", SL_CFG_LONG, "64", OFF(cache_mb), "online store block cache in MiB"},
    {"read-cache-mb", SL_CFG_LONG, "64", OFF(read_cache_mb), "per HTTP thread: cached aggregate feature values, in MiB (0: none)"},
    {"writer-cache-mb", SL_CFG_LONG, "256", OFF(writer_cache_mb), "the writer's cache of the aggregation states and rows it wrote, in MiB (0: none)"},
    {"lua-instructions", SL_CFG_LONG, "5000000", OFF(lua_instructions), "instruction budget per user function call"},
    {"lua-memory-mb", SL_CFG_LONG, "64", OFF(lua_memory_mb), "memory cap per Lua VM in MiB"},
    {"lua-time-ms", SL_CFG_LONG, "2000", OFF(lua_time_ms), "wall-clock bound per user function call (and per apply), in ms"},
    {"batch-root", SL_CFG_LIST, "", OFF(batch_roots), "a folder batch files (FileConfig uri) may be read from; repeatable (default: the repository's own folder)"},
    {"delete-chunk-keys", SL_CFG_LONG, "10000", OFF(delete_chunk_keys), "keys a delete job removes per step (and checkpoint)"},
    {"fake-now", SL_CFG_TIME, "", OFF(fake_now), "tests only: a fixed current time (RFC 3339)"},
    {"plugin", SL_CFG_LIST, "", OFF(plugins), "load the plugin .so at PATH at start (repeatable)"},
    {"plugin-dir", SL_CFG_LIST, "", OFF(plugin_dirs), "load every *.so in DIR at start (repeatable)"},
    {"plugin-config", SL_CFG_LIST, "", OFF(plugin_config), "a plugin setting: <plugin>.<key>=<value> (repeatable)"},
    {"online-store", SL_CFG_STRING, "leveldb", OFF(online_store), "online store by name: leveldb or a store plugin's name"},
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
    case SL_CFG_LIST: {
        char **slot = (char **)(base + e->offset);
        if (!*v && *slot) /* the default: an empty list */
            return 0;
        size_t ol = *slot ? strlen(*slot) : 0, vl = strlen(v);
        if (strchr(v, '\n'))
            return sl_error_set(err, SL_EINVAL, "`%s` wants one value per line", e->key);
        char *p = realloc(*slot, ol + (ol && vl ? 1 : 0) + vl + 1);
        if (!p)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        if (ol && vl)
            p[ol++] = '\n';
        memcpy(p + ol, v, vl + 1);
        *slot = p;
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

/* HOST:PORT with an IPv4 address, [IPv6] or nothing (every address), port 0-65535. */
static int valid_listen(const char *spec)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof(host))
        return 0;
    size_t hl = (size_t)(colon - spec);
    memcpy(host, spec, hl);
    host[hl] = 0;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
        return 0;
    unsigned char a[16];
    if (hl == 0)
        return 1;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = 0;
        return inet_pton(AF_INET6, host + 1, a) == 1;
    }
    return inet_pton(AF_INET, host, a) == 1;
}

int sl_config_cidr_parse(const char *s, unsigned char addr[16], int *family, int *bits)
{
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    if (hl == 0 || hl >= sizeof(host))
        return SL_EINVAL;
    memcpy(host, s, hl);
    host[hl] = 0;
    *family = strchr(host, ':') ? AF_INET6 : AF_INET;
    int max = *family == AF_INET6 ? 128 : 32;
    if (inet_pton(*family, host, addr) != 1)
        return SL_EINVAL;
    *bits = max;
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || b < 0 || b > max)
            return SL_EINVAL;
        *bits = (int)b;
    }
    return 0;
}

int sl_config_addr_allowed(const char *list, const char *addr)
{
    unsigned char a[16], net[16];
    int fam, bits, nfam, nbits;
    if (!addr || !*addr || sl_config_cidr_parse(addr, a, &fam, &bits) != 0)
        return 0;
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", list);
    for (char *save, *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (sl_config_cidr_parse(t, net, &nfam, &nbits) != 0 || nfam != fam)
            continue;
        int full = nbits / 8, rest = nbits % 8;
        if (memcmp(a, net, (size_t)full) == 0 &&
            (!rest || ((a[full] ^ net[full]) & (0xff << (8 - rest))) == 0))
            return 1;
    }
    return 0;
}

int sl_config_validate(const struct sl_config *cfg, struct sl_error *err)
{
    if (!*cfg->data_dir)
        return sl_error_set(err, SL_EINVAL, "`data-dir` must not be empty");
    if (!valid_listen(cfg->listen))
        return sl_error_set(err, SL_EINVAL, "`listen` wants HOST:PORT with an IP address and a port "
                            "0-65535 (127.0.0.1:8080, [::1]:8080, :8080), not `%s`", cfg->listen);
    if (cfg->threads < 1 || cfg->threads > 1024)
        return sl_error_set(err, SL_EINVAL, "`threads` wants 1-1024, not %ld", cfg->threads);
    const char *lv[] = {"debug", "info", "warn", "error"};
    int ok = 0;
    for (size_t i = 0; i < 4; i++)
        ok |= strcmp(cfg->log_level, lv[i]) == 0;
    if (!ok)
        return sl_error_set(err, SL_EINVAL, "`log-level` wants debug, info, warn or error, not `%s`",
                            cfg->log_level);
    if (strcmp(cfg->log_format, "text") != 0 && strcmp(cfg->log_format, "json") != 0)
        return sl_error_set(err, SL_EINVAL, "`log-format` wants text or json, not `%s`", cfg->log_format);
    if (!*cfg->tls_cert != !*cfg->tls_key)
        return sl_error_set(err, SL_EINVAL, "`tls-cert` and `tls-key` go together: TLS needs both "
                            "tls-cert and tls-key, or neither");
    const char *tls[] = {cfg->tls_cert, cfg->tls_key};
    for (size_t i = 0; i < 2; i++)
        if (*tls[i] && access(tls[i], R_OK) != 0)
            return sl_error_set(err, SL_EINVAL, "`%s`: TLS: cannot load the %s %s: %s",
                                i ? "tls-key" : "tls-cert", i ? "private key" : "certificate",
                                tls[i], strerror(errno));
    char list[1024];
    if (strlen(cfg->metrics_allow) >= sizeof(list))
        return sl_error_set(err, SL_EINVAL, "`metrics-allow` is too long");
    strcpy(list, cfg->metrics_allow);
    for (char *save, *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        unsigned char a[16];
        int fam, bits;
        if (sl_config_cidr_parse(t, a, &fam, &bits) != 0)
            return sl_error_set(err, SL_EINVAL, "`metrics-allow` wants IP addresses or CIDRs "
                                "(127.0.0.1, 10.0.0.0/8, ::1), not `%s`", t);
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
        if (e->type == SL_CFG_STRING || e->type == SL_CFG_LIST) {
            char **slot = (char **)((char *)cfg + e->offset);
            free(*slot);
            *slot = NULL;
        }
    free(cfg->config);
    cfg->config = NULL;
}
