/* Logging: one line per event, with time and level, to stderr or a log file, as text or as
 * JSON objects (one per line). */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stddef.h>

struct sl_error;

enum sl_log_level { SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR };

/* Only messages at or above level are written. Default SL_LOG_INFO. Any thread. */
void sl_log_set_level(enum sl_log_level level);
/* Whether a message at level would be written. Any thread. */
int sl_log_enabled(enum sl_log_level level);
/* Parses "debug", "info", "warn", "error"; returns 0 or SL_EINVAL. */
int sl_log_parse_level(const char *s, enum sl_log_level *out);
/* The name of a level ("debug" ...). */
const char *sl_log_level_name(enum sl_log_level level);
/* Text (0) or JSON Lines (1). Any thread. */
void sl_log_set_json(int json);
/* Sends the log to path (appended, created 0640), or back to the original stderr when path
 * is NULL or "". The file is put on the process' stderr, so whatever else writes there
 * lands in it too. Calling it again with the same path reopens the file (after a log
 * rotation renamed it). Returns 0 or SL_EIO with err. Main thread. */
int sl_log_open(const char *path, struct sl_error *err);
/* Writes one line "2026-01-02T03:04:05.678Z level message" (text) or
 * {"time":...,"level":...,"msg":...} (JSON). Any thread. */
void sl_log(enum sl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A structured line: msg followed by n key/value pairs (kv[2i], kv[2i+1]), as ` key=value`
 * in text (values with spaces or quotes quoted) or as JSON members (values that are plain
 * decimal numbers stay numbers). Any thread. */
void sl_log_kv(enum sl_log_level level, const char *msg, const char *const *kv, size_t n);

#define sl_debug(...) sl_log(SL_LOG_DEBUG, __VA_ARGS__)
#define sl_info(...) sl_log(SL_LOG_INFO, __VA_ARGS__)
#define sl_warn(...) sl_log(SL_LOG_WARN, __VA_ARGS__)
#define sl_err(...) sl_log(SL_LOG_ERROR, __VA_ARGS__)

#endif
