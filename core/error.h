/* Status codes and the error out-parameter shared by every subsystem. */
#ifndef SL_ERROR_H
#define SL_ERROR_H

#include <stdarg.h>

/* 0 is success; failures are negative. */
enum {
    SL_OK = 0,
    SL_ENOMEM = -1,    /* allocation failed */
    SL_EINVAL = -2,    /* malformed input */
    SL_ESCHEMA = -3,   /* input does not match a declared schema */
    SL_ESCRIPT = -4,   /* user Lua code failed */
    SL_ESTORE = -5,    /* storage engine failure */
    SL_EAUTH = -6,     /* missing or invalid credentials */
    SL_ENOTFOUND = -7, /* named object does not exist */
    SL_EBUSY = -8,     /* bounded queue full: try again later */
    SL_EIO = -9,       /* operating system I/O failure */
    SL_EPERM = -10,    /* authenticated but not allowed */
    SL_ETOOBIG = -11,  /* request exceeds a configured limit */
    SL_EEXIST = -12,   /* object already exists */
    SL_ECORRUPT = -13, /* stored data failed an integrity check */
};

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
