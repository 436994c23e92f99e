/* Status codes and the error out-parameter shared by every subsystem. */
#ifndef SL_ERROR_H
#define SL_ERROR_H

#include <stdarg.h>

/* The status codes (0 success, negative SL_E* failure) are part of the plugin ABI and live
 * in the public header. */
#include "sluice/plugin.h"

/* A failure a user must read: a status code and a message. */
struct sl_error {
    int code;
    char msg[512];
};

/* Records code and a printf-style message in err (err may be NULL).
 * Returns code so callers can write `return sl_error_set(err, ...)`. Any thread. */
int sl_error_set(struct sl_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes err->msg with a printf-style context ("file.lua:3: "). Returns err->code
 * (SL_EINVAL when err is NULL). Messages longer than msg are cut at a UTF-8 boundary. */
int sl_error_prefix(struct sl_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A short constant name for a status code ("SL_ENOMEM"). */
const char *sl_strerror(int code);

#endif
