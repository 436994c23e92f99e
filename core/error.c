/* Status codes and the error out-parameter. */
#include "error.h"

#include <stdio.h>
#include <string.h>

/* Drops a UTF-8 sequence cut short at the end of s, so a truncated message stays valid. */
static void trim_partial_utf8(char *s)
{
    size_t n = strlen(s);
    size_t i = n;
    size_t back = 0;

    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need;
    if (lead < 0x80)
        return;
    else if ((lead & 0xE0) == 0xC0)
        need = 1;
    else if ((lead & 0xF0) == 0xE0)
        need = 2;
    else if ((lead & 0xF8) == 0xF0)
        need = 3;
    else
        return;
    if (back < need)
        s[i - 1] = '\0';
}

int sl_error_set(struct sl_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    /* Format into a copy: the arguments may point into err->msg. */
    char tmp[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        tmp[0] = '\0';
    else if ((size_t)n >= sizeof tmp)
        trim_partial_utf8(tmp);
    memcpy(err->msg, tmp, sizeof tmp);
    err->code = code;
    return code;
}

int sl_error_prefix(struct sl_error *err, const char *fmt, ...)
{
    if (!err)
        return SL_EINVAL;
    char pre[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    if (n < 0)
        return err->code;
    if ((size_t)n >= sizeof pre)
        trim_partial_utf8(pre);
    size_t plen = strlen(pre);
    size_t mlen = strnlen(err->msg, sizeof err->msg - 1);
    if (plen + mlen > sizeof err->msg - 1)
        mlen = sizeof err->msg - 1 - plen;
    memmove(err->msg + plen, err->msg, mlen);
    memcpy(err->msg, pre, plen);
    err->msg[plen + mlen] = '\0';
    trim_partial_utf8(err->msg);
    return err->code;
}

const char *sl_strerror(int code)
{
    switch (code) {
    case SL_OK: return "SL_OK";
    case SL_ENOMEM: return "SL_ENOMEM";
    case SL_EINVAL: return "SL_EINVAL";
    case SL_ESCHEMA: return "SL_ESCHEMA";
    case SL_ESCRIPT: return "SL_ESCRIPT";
    case SL_ESTORE: return "SL_ESTORE";
    case SL_EAUTH: return "SL_EAUTH";
    case SL_ENOTFOUND: return "SL_ENOTFOUND";
    case SL_EBUSY: return "SL_EBUSY";
    case SL_EIO: return "SL_EIO";
    case SL_EPERM: return "SL_EPERM";
    case SL_ETOOBIG: return "SL_ETOOBIG";
    case SL_EEXIST: return "SL_EEXIST";
    case SL_ECORRUPT: return "SL_ECORRUPT";
    case SL_ECONFLICT: return "SL_ECONFLICT";
    }
    return "SL_EUNKNOWN";
}
