#include "daemon.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice_config.h"
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "accesslog.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "server.h"

void sl_daemon_notify(const char *state)
{
#ifdef HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

int sl_daemon_logging(const struct sl_config *cfg, struct sl_error *err)
{
    enum sl_log_level lvl = SL_LOG_INFO;
    if (sl_log_parse_level(cfg->log_level, &lvl) != 0)
        return sl_error_set(err, SL_EINVAL, "bad log-level `%s`", cfg->log_level);
    int rc = sl_log_open(cfg->log_file, err);
    if (rc != 0)
        return rc;
    sl_log_set_level(lvl);
    sl_log_set_json(strcmp(cfg->log_format, "json") == 0);
    sl_accesslog_enable(cfg->access_log);
    return 0;
}

/* Settings that take effect while running. Strings here are read by the main thread only. */
static const char *const reloadable[] = {"log-level", "log-file", "log-format", "access-log",
                                         "max-body", "max-events-body", "max-records",
                                         "future-skew", "tls-cert", "tls-key", NULL};

static int is_reloadable(const char *key)
{
    for (size_t i = 0; reloadable[i]; i++)
        if (strcmp(reloadable[i], key) == 0)
            return 1;
    return 0;
}

static void render(const struct sl_config *cfg, const struct sl_config_entry *e, char *out, size_t cap)
{
    const char *base = (const char *)cfg;
    switch (e->type) {
    case SL_CFG_STRING:
    case SL_CFG_LIST: snprintf(out, cap, "%s", *(char *const *)(base + e->offset)); break;
    case SL_CFG_LONG: snprintf(out, cap, "%ld", *(const long *)(base + e->offset)); break;
    case SL_CFG_BOOL: snprintf(out, cap, "%s", *(const int *)(base + e->offset) ? "true" : "false"); break;
    case SL_CFG_DURATION:
    case SL_CFG_TIME: snprintf(out, cap, "%lld", (long long)*(const int64_t *)(base + e->offset)); break;
    }
}

int sl_daemon_reload(struct sl_config *live, struct sl_node *n, int argc, char **argv,
                     struct sl_error *err)
{
    struct sl_config next;
    if (sl_config_defaults(&next, err) != 0 || sl_config_args(&next, argc, argv, err) != 0 ||
        sl_config_validate(&next, err) != 0) {
        sl_config_free(&next);
        return err->code;
    }
    int rc = sl_daemon_logging(&next, err);
    if (rc != 0) { /* keep logging as it was */
        sl_daemon_logging(live, NULL);
        sl_config_free(&next);
        return rc;
    }
    /* a renewed certificate keeps its file name: load it again whenever TLS is on */
    if (*live->tls_cert && *next.tls_cert) {
        if (sl_server_reload_tls(n, next.tls_cert, next.tls_key, err) != 0) {
            sl_daemon_logging(live, NULL);
            sl_config_free(&next);
            return err->code;
        }
        sl_info("reload: TLS certificate %s loaded", next.tls_cert);
    } else if (!*live->tls_cert != !*next.tls_cert) {
        sl_warn("reload: turning TLS %s takes effect after a restart", *next.tls_cert ? "on" : "off");
        for (int i = 0; i < 2; i++) { /* keep the strings as they are: nothing to swap in */
            char **slot = i ? &next.tls_key : &next.tls_cert;
            free(*slot);
            *slot = strdup(i ? live->tls_key : live->tls_cert);
        }
    }
    char was[1024], now[1024];
    int changes = 0;
    for (const struct sl_config_entry *e = sl_config_map; e->key; e++) {
        render(live, e, was, sizeof(was));
        render(&next, e, now, sizeof(now));
        if (strcmp(was, now) == 0)
            continue;
        changes++;
        if (!is_reloadable(e->key)) {
            sl_warn("reload: `%s` changed (%s -> %s): takes effect after a restart", e->key, was, now);
            continue;
        }
        sl_info("reload: `%s` %s -> %s", e->key, was, now);
        char *base = (char *)live, *from = (char *)&next;
        switch (e->type) {
        case SL_CFG_STRING: { /* main thread only: swap the pointers */
            char *t = *(char **)(base + e->offset);
            *(char **)(base + e->offset) = *(char **)(from + e->offset);
            *(char **)(from + e->offset) = t;
            break;
        }
        case SL_CFG_LONG:
            __atomic_store_n((long *)(base + e->offset), *(long *)(from + e->offset), __ATOMIC_RELAXED);
            break;
        case SL_CFG_BOOL:
            __atomic_store_n((int *)(base + e->offset), *(int *)(from + e->offset), __ATOMIC_RELAXED);
            break;
        case SL_CFG_DURATION:
        case SL_CFG_TIME:
            __atomic_store_n((int64_t *)(base + e->offset), *(int64_t *)(from + e->offset), __ATOMIC_RELAXED);
            break;
        case SL_CFG_LIST: /* read by other threads without a lock: never in the reloadable list */
            break;
        }
    }
    sl_info("reload: log reopened, %d setting%s changed", changes, changes == 1 ? "" : "s");
    sl_config_free(&next);
    return 0;
}

void sl_daemon_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
}

int sl_daemon_wait(const sigset_t *set, struct sl_config *live, struct sl_node *n, int argc,
                   char **argv)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            return sig;
        sl_daemon_notify("RELOADING=1");
        struct sl_error err = {0};
        if (sl_daemon_reload(live, n, argc, argv, &err) != 0)
            sl_err("reload: %s; the settings in use stay", err.msg);
        sl_daemon_notify("READY=1");
    }
}
