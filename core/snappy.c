/* Snappy raw block decompressor. */
#include "snappy.h"

#include <stdint.h>
#include <string.h>

#include "error.h"

int sl_snappy_uncompressed_length(const void *src, size_t n, size_t *len)
{
    const unsigned char *p = src;
    uint64_t v = 0;
    for (size_t i = 0; i < 5; i++) {
        if (i >= n)
            return SL_ECORRUPT;
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            if (v > UINT32_MAX)
                return SL_ECORRUPT;
            *len = (size_t)v;
            return 0;
        }
    }
    return SL_ECORRUPT;
}

static inline uint32_t load_le(const unsigned char *p, unsigned nbytes)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < nbytes; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

int sl_snappy_decompress(const void *src, size_t n, void *dst, size_t cap)
{
    const unsigned char *ip = src, *iend = ip + n;
    unsigned char *op = dst, *ostart = dst, *oend = op + cap;
    size_t want;

    if (sl_snappy_uncompressed_length(src, n, &want) != 0 || want != cap)
        return SL_ECORRUPT;
    while (*ip & 0x80)
        ip++;
    ip++;

    while (ip < iend) {
        unsigned tag = *ip++;
        size_t len, off;
        switch (tag & 3) {
        case 0: /* literal */
            len = tag >> 2;
            if (len >= 60) {
                unsigned nb = (unsigned)len - 59;
                if ((size_t)(iend - ip) < nb)
                    return SL_ECORRUPT;
                len = load_le(ip, nb);
                ip += nb;
            }
            len += 1;
            if ((size_t)(iend - ip) < len || (size_t)(oend - op) < len)
                return SL_ECORRUPT;
            memcpy(op, ip, len);
            ip += len;
            op += len;
            continue;
        case 1: /* copy, 11-bit offset */
            if (ip >= iend)
                return SL_ECORRUPT;
            len = 4 + ((tag >> 2) & 7);
            off = ((size_t)(tag >> 5) << 8) | *ip++;
            break;
        case 2: /* copy, 16-bit offset */
            if (iend - ip < 2)
                return SL_ECORRUPT;
            len = (tag >> 2) + 1;
            off = load_le(ip, 2);
            ip += 2;
            break;
        default: /* copy, 32-bit offset */
            if (iend - ip < 4)
                return SL_ECORRUPT;
            len = (tag >> 2) + 1;
            off = load_le(ip, 4);
            ip += 4;
            break;
        }
        if (off == 0 || off > (size_t)(op - ostart) || (size_t)(oend - op) < len)
            return SL_ECORRUPT;
        const unsigned char *from = op - off;
        if (off >= len) {
            memcpy(op, from, len);
            op += len;
        } else {
            /* Overlapping copy repeats the last `off` bytes. */
            for (size_t i = 0; i < len; i++)
                op[i] = from[i];
            op += len;
        }
    }
    return op == oend ? 0 : SL_ECORRUPT;
}
