/* Running as a daemon: readiness and state messages to the service manager (systemd
 * Type=notify), the logging settings, and the main thread's signal loop (SIGHUP reloads
 * what can change without a restart; SIGINT and SIGTERM stop). */
#ifndef SL_DAEMON_H
#define SL_DAEMON_H

#include <signal.h>

struct sl_config;
struct sl_error;
struct sl_node;

/* Sends state ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...") to the service
 * manager when it asked for it ($NOTIFY_SOCKET); nothing otherwise, or when built
 * --without-systemd. Any thread. */
void sl_daemon_notify(const char *state);
/* Applies cfg's logging settings: level, format, file (opened or reopened), access log.
 * Returns 0 or SL_EIO with err (the log file cannot be opened). Main thread. */
int sl_daemon_logging(const struct sl_config *cfg, struct sl_error *err);
/* Reads the settings again (argv as given to `sluice serve`, which names the --config file)
 * and puts those that can change while running into live: log-level, log-file, log-format,
 * access-log, max-body, max-events-body, max-records, future-skew; the log file is reopened
 * and, on a TLS listener, the certificate and key (tls-cert, tls-key) loaded again in any
 * case. Logs each change, and each other setting that differs as needing a restart. Invalid
 * settings change nothing. Returns 0 or an error with err. Main thread. */
int sl_daemon_reload(struct sl_config *live, struct sl_node *n, int argc, char **argv,
                     struct sl_error *err);
/* The signals the main thread waits for (block them before starting threads). */
void sl_daemon_signals(sigset_t *set);
/* Waits for signals in set: reloads on SIGHUP, returns the stopping signal. Main thread. */
int sl_daemon_wait(const sigset_t *set, struct sl_config *live, struct sl_node *n, int argc,
                   char **argv);

#endif
