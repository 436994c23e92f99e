/* Logging to stderr: one line per event, with time and level. */
#ifndef SL_LOG_H
#define SL_LOG_H

enum sl_log_level { SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR };

/* Only messages at or above level are written. Default SL_LOG_INFO. Any thread. */
void sl_log_set_level(enum sl_log_level level);
/* Parses "debug", "info", "warn", "error"; returns 0 or SL_EINVAL. */
int sl_log_parse_level(const char *s, enum sl_log_level *out);
/* Writes one line "2026-01-02T03:04:05.678Z level message" to stderr. Any thread. */
void sl_log(enum sl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sl_debug(...) sl_log(SL_LOG_DEBUG, __VA_ARGS__)
#define sl_info(...) sl_log(SL_LOG_INFO, __VA_ARGS__)
#define sl_warn(...) sl_log(SL_LOG_WARN, __VA_ARGS__)
#define sl_err(...) sl_log(SL_LOG_ERROR, __VA_ARGS__)

#endif
