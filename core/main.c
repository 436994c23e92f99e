/* sluice: the server and its command-line client in one binary. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sluice_config.h"

#include "cli.h"
#include "config.h"
#include "error.h"
#include "log.h"
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
    if (sl_config_defaults(&cfg, &err) != 0 || sl_config_args(&cfg, argc, argv, &err) != 0) {
        fprintf(stderr, "sluice serve: %s\n", err.msg);
        sl_config_free(&cfg);
        return 2;
    }
    enum sl_log_level lvl;
    if (sl_log_parse_level(cfg.log_level, &lvl) != 0) {
        fprintf(stderr, "sluice serve: bad log-level `%s`\n", cfg.log_level);
        sl_config_free(&cfg);
        return 2;
    }
    sl_log_set_level(lvl);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* threads inherit the mask; main waits below */
    signal(SIGPIPE, SIG_IGN);

    struct sl_node *n = sl_server_start(&cfg, &err);
    if (!n) {
        fprintf(stderr, "sluice serve: %s\n", err.msg);
        sl_config_free(&cfg);
        return 1;
    }
    sl_info("sluice %s listening on %s (port %d), data in %s", PACKAGE_VERSION, cfg.listen,
            sl_server_port(n), cfg.data_dir);
    write_listen_file(cfg.data_dir, cfg.listen, sl_server_port(n));
    int sig = 0;
    sigwait(&set, &sig);
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
            printf("sluice %s\n", PACKAGE_VERSION);
            return 0;
        }
    }
    if (strcmp(argv[1], "serve") == 0)
        return serve(argc - 2, argv + 2);
    return sl_cli_main(argc - 1, argv + 1);
}
