#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"

static volatile int min_level = SL_LOG_INFO;
static volatile int json_lines;
static int saved_stderr = -1;   /* the original stderr while a log file is open */
static const char *const names[] = {"debug", "info", "warn", "error"};

void sl_log_set_level(enum sl_log_level level) { min_level = level; }

int sl_log_enabled(enum sl_log_level level) { return (int)level >= min_level; }

void sl_log_set_json(int json) { json_lines = json; }

const char *sl_log_level_name(enum sl_log_level level)
{
    return (unsigned)level < 4 ? names[level] : "?";
}

int sl_log_parse_level(const char *s, enum sl_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum sl_log_level)i;
            return 0;
        }
    }
    return SL_EINVAL;
}

int sl_log_open(const char *path, struct sl_error *err)
{
    if (!path || !*path) {
        if (saved_stderr >= 0) {
            dup2(saved_stderr, STDERR_FILENO);
            close(saved_stderr);
            saved_stderr = -1;
        }
        return 0;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "log-file %s: %s", path, strerror(errno));
    if (saved_stderr < 0 && (saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3)) < 0) {
        int e = errno;
        close(fd);
        return sl_error_set(err, SL_EIO, "log-file %s: %s", path, strerror(e));
    }
    /* dup2 swaps the file under fd 2 atomically: a writer on another thread writes whole
     * lines either to the old file or to the new one */
    int rc = dup2(fd, STDERR_FILENO) < 0 ? errno : 0;
    close(fd);
    if (rc)
        return sl_error_set(err, SL_EIO, "log-file %s: %s", path, strerror(rc));
    return 0;
}

static void put_time(struct sl_buf *b)
{
    /* the date and time of the last second this thread formatted: gmtime_r takes a lock */
    static __thread time_t sec = -1;
    static __thread char day[24];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(day, sizeof(day), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        sec = ts.tv_sec;
    }
    sl_buf_printf(b, "%s.%03ldZ", day, ts.tv_nsec / 1000000);
}

static void begin(struct sl_buf *b, enum sl_log_level level, const char *msg, size_t len)
{
    if (json_lines) {
        sl_buf_puts(b, "{\"time\":\"");
        put_time(b);
        sl_buf_printf(b, "\",\"level\":\"%s\",\"msg\":", names[level]);
        sl_buf_json_str(b, msg, len);
    } else {
        put_time(b);
        sl_buf_printf(b, " %s ", names[level]);
        sl_buf_append(b, msg, len);
    }
}

static void finish(struct sl_buf *b)
{
    if (json_lines)
        sl_buf_putc(b, '}');
    sl_buf_putc(b, '\n');
    if (!b->oom) {
        /* one call per line keeps lines whole across threads */
        ssize_t w = write(STDERR_FILENO, b->p, b->len);
        (void)w;
    }
    sl_buf_free(b);
}

void sl_log(enum sl_log_level level, const char *fmt, ...)
{
    if ((int)level < min_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t len = m < 0 ? 0 : (size_t)m >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)m;
    struct sl_buf b = SL_BUF_INIT;
    begin(&b, level, msg, len);
    finish(&b);
}

static int is_number(const char *v)
{
    const char *p = v + (*v == '-');
    if (!*p || (*p == '0' && p[1] && p[1] != '.'))
        return 0;
    int dot = 0;
    for (; *p; p++) {
        if (*p == '.' && !dot && p[1])
            dot = 1;
        else if (*p < '0' || *p > '9')
            return 0;
    }
    return 1;
}

void sl_log_kv(enum sl_log_level level, const char *msg, const char *const *kv, size_t n)
{
    if ((int)level < min_level)
        return;
    struct sl_buf b = SL_BUF_INIT;
    begin(&b, level, msg, strlen(msg));
    for (size_t i = 0; i < n; i++) {
        const char *k = kv[2 * i], *v = kv[2 * i + 1] ? kv[2 * i + 1] : "";
        if (json_lines) {
            sl_buf_putc(&b, ',');
            sl_buf_json_str(&b, k, strlen(k));
            sl_buf_putc(&b, ':');
            if (is_number(v))
                sl_buf_puts(&b, v);
            else
                sl_buf_json_str(&b, v, strlen(v));
        } else {
            sl_buf_printf(&b, " %s=", k);
            if (!*v)
                sl_buf_putc(&b, '-');
            else if (strpbrk(v, " \t\"=\n"))
                sl_buf_json_str(&b, v, strlen(v));
            else
                sl_buf_puts(&b, v);
        }
    }
    finish(&b);
}
