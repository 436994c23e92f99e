/* sluice: the server and its command-line client in one binary. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sluice_config.h"
#include "sl_version.h"

#include "cli.h"
#include "config.h"
#include "daemon.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "server.h"

/* Writes <data-dir>/listen, "HOST:PORT\n" with the port actually bound (--listen HOST:0
 * picks a free one), through a temporary file and a rename, so that a reader (the test
 * harness, a supervisor) sees the whole line or no file. Removed again on a clean stop.
 * Returns 0 or -1 with a message logged. */
static int write_listen_file(const char *dir, const char *listen, int port)
{
    char path[4096], tmp[4200];
    const char *colon = strrchr(listen, ':');
    int hostlen = colon ? (int)(colon - listen) : (int)strlen(listen);
    snprintf(path, sizeof(path), "%s/listen", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL;
    if (f) {
        ok = fprintf(f, "%.*s:%d\n", hostlen, listen, port) > 0;
        ok = fclose(f) == 0 && ok;
    }
    if (!ok || rename(tmp, path) != 0) {
        sl_err("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int serve(int argc, char **argv)
{
    struct sl_config cfg;
    struct sl_error err = {0};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: sluice serve [--config FILE] [--data-dir DIR] [--listen HOST:PORT] "
                   "[--threads N] [settings]\n\n");
            sl_config_usage(stdout);
            return 0;
        }
    }
    /* every setting is checked before anything is opened or written */
    if (sl_config_defaults(&cfg, &err) != 0 || sl_config_args(&cfg, argc, argv, &err) != 0 ||
        sl_config_validate(&cfg, &err) != 0) {
        fprintf(stderr, "sluice serve: %s\n", err.msg);
        sl_config_free(&cfg);
        return 2;
    }
    if (sl_daemon_logging(&cfg, &err) != 0) {
        fprintf(stderr, "sluice serve: %s\n", err.msg);
        sl_config_free(&cfg);
        return 2;
    }
    sl_metrics_init();

    sigset_t set;
    sl_daemon_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* threads inherit the mask; main waits below */
    signal(SIGPIPE, SIG_IGN);

    struct sl_node *n = sl_server_start(&cfg, &err);
    if (!n) {
        fprintf(stderr, "sluice serve: %s\n", err.msg);
        sl_config_free(&cfg);
        return 1;
    }
    sl_info("sluice %s (%s) listening on %s (port %d), data in %s", SL_VERSION, SL_COMMIT,
            cfg.listen, sl_server_port(n), cfg.data_dir);
    char status[128];
    snprintf(status, sizeof(status), "READY=1\nSTATUS=listening on port %d", sl_server_port(n));
    write_listen_file(cfg.data_dir, cfg.listen, sl_server_port(n));
    sl_daemon_notify(status);
    int sig = sl_daemon_wait(&set, &cfg, n, argc, argv);
    sl_daemon_notify("STOPPING=1");
    sl_info("stopping on signal %d", sig);
    sl_server_stop(n);
    char listen_path[4096];
    snprintf(listen_path, sizeof(listen_path), "%s/listen", cfg.data_dir);
    unlink(listen_path);
    sl_config_free(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        sl_cli_usage();
        return argc < 2 ? 2 : 0;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0 || (i == 1 && strcmp(argv[i], "version") == 0)) {
            printf("sluice %s (commit %s)\n", SL_VERSION, SL_COMMIT);
            return 0;
        }
    }
    if (strcmp(argv[1], "serve") == 0)
        return serve(argc - 2, argv + 2);
    return sl_cli_main(argc - 1, argv + 1);
}
