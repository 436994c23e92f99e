/* Time: RFC 3339 parsing and formatting, durations, a clock that tests can fake. */
#include "timeutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "error.h"

static _Atomic int64_t fake_now;
static _Thread_local int64_t thread_now;

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* Reads exactly n digits at s[*i]; returns -1 if any is not a digit or input ends. */
static int64_t digits(const char *s, size_t len, size_t *i, int n)
{
    int64_t v = 0;
    if (len - *i < (size_t)n)
        return -1;
    for (int k = 0; k < n; k++) {
        char c = s[*i + (size_t)k];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *i += (size_t)n;
    return v;
}

static int expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c)
        return -1;
    (*i)++;
    return 0;
}

int sl_time_parse(const char *s, size_t len, int64_t *ns)
{
    size_t i = 0;
    int64_t year, mon, day, hour, min, sec = 0, frac = 0, off = 0;

    if ((year = digits(s, len, &i, 4)) < 1 || expect(s, len, &i, '-') ||
        (mon = digits(s, len, &i, 2)) < 1 || mon > 12 || expect(s, len, &i, '-') ||
        (day = digits(s, len, &i, 2)) < 1 || day > days_in_month(year, (unsigned)mon))
        return SL_EINVAL;
    if (i >= len || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
        return SL_EINVAL;
    i++;
    if ((hour = digits(s, len, &i, 2)) < 0 || hour > 23 || expect(s, len, &i, ':') ||
        (min = digits(s, len, &i, 2)) < 0 || min > 59)
        return SL_EINVAL;
    if (i < len && s[i] == ':') {
        i++;
        if ((sec = digits(s, len, &i, 2)) < 0 || sec > 60)
            return SL_EINVAL;
        if (i < len && s[i] == '.') {
            i++;
            int nd = 0;
            while (i < len && s[i] >= '0' && s[i] <= '9') {
                if (++nd > 9)
                    return SL_EINVAL;
                frac = frac * 10 + (s[i] - '0');
                i++;
            }
            if (nd == 0)
                return SL_EINVAL;
            for (; nd < 9; nd++)
                frac *= 10;
        }
    }
    if (i < len) {
        char z = s[i];
        if (z == 'Z' || z == 'z') {
            i++;
        } else if (z == '+' || z == '-') {
            i++;
            int64_t oh, om;
            if ((oh = digits(s, len, &i, 2)) < 0 || oh > 23 || expect(s, len, &i, ':') ||
                (om = digits(s, len, &i, 2)) < 0 || om > 59)
                return SL_EINVAL;
            off = (oh * 60 + om) * 60;
            if (z == '-')
                off = -off;
        } else {
            return SL_EINVAL;
        }
    }
    if (i != len)
        return SL_EINVAL;

    int64_t days = days_from_civil(year, (unsigned)mon, (unsigned)day);
    int64_t secs = days * 86400 + hour * 3600 + min * 60 + sec - off;
    int64_t r;
    if (secs < 0 && frac > 0) { /* keep the product in range near INT64_MIN */
        secs++;
        frac -= SL_NS_PER_SEC;
    }
    if (__builtin_mul_overflow(secs, SL_NS_PER_SEC, &r) || __builtin_add_overflow(r, frac, &r))
        return SL_EINVAL;
    *ns = r;
    return 0;
}

/* Writes v as exactly n decimal digits (zero-padded; v < 10^n). */
static void put_digits(char **o, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        (*o)[i] = (char)('0' + v % 10);
        v /= 10;
    }
    *o += n;
}

size_t sl_time_format(int64_t ns, char *out)
{
    int64_t secs = ns / SL_NS_PER_SEC;
    int64_t frac = ns % SL_NS_PER_SEC;
    if (frac < 0) {
        frac += SL_NS_PER_SEC;
        secs--;
    }
    int64_t days = secs / 86400;
    int64_t sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);

    char *o = out;
    put_digits(&o, (uint64_t)y, 4);
    *o++ = '-';
    put_digits(&o, m, 2);
    *o++ = '-';
    put_digits(&o, d, 2);
    *o++ = 'T';
    put_digits(&o, (uint64_t)(sod / 3600), 2);
    *o++ = ':';
    put_digits(&o, (uint64_t)(sod / 60 % 60), 2);
    *o++ = ':';
    put_digits(&o, (uint64_t)(sod % 60), 2);
    if (frac) {
        *o++ = '.';
        if (frac % 1000000 == 0)
            put_digits(&o, (uint64_t)(frac / 1000000), 3);
        else if (frac % 1000 == 0)
            put_digits(&o, (uint64_t)(frac / 1000), 6);
        else
            put_digits(&o, (uint64_t)frac, 9);
    }
    *o++ = 'Z';
    *o = '\0';
    return (size_t)(o - out);
}

static const struct {
    const char *name;
    int64_t ns;
} units[] = {
    {"w", 7 * 86400 * SL_NS_PER_SEC},
    {"d", 86400 * SL_NS_PER_SEC},
    {"h", 3600 * SL_NS_PER_SEC},
    {"m", 60 * SL_NS_PER_SEC},
    {"s", SL_NS_PER_SEC},
    {"ms", 1000000},
    {"us", 1000},
    {"ns", 1},
};

int sl_duration_parse(const char *s, size_t len, int64_t *ns)
{
    size_t i = 0;
    int64_t total = 0;

    if (len == 0)
        return SL_EINVAL;
    while (i < len) {
        int64_t v = 0;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[i] - '0', &v))
                return SL_EINVAL;
            i++;
        }
        if (i == start)
            return SL_EINVAL;
        size_t ustart = i;
        while (i < len && s[i] >= 'a' && s[i] <= 'z')
            i++;
        size_t ulen = i - ustart;
        int64_t mul = 0;
        for (size_t k = 0; k < sizeof units / sizeof units[0]; k++) {
            if (strlen(units[k].name) == ulen && memcmp(units[k].name, s + ustart, ulen) == 0) {
                mul = units[k].ns;
                break;
            }
        }
        if (!mul || __builtin_mul_overflow(v, mul, &v) || __builtin_add_overflow(total, v, &total))
            return SL_EINVAL;
    }
    if (total <= 0)
        return SL_EINVAL;
    *ns = total;
    return 0;
}

size_t sl_duration_format(int64_t ns, char *out)
{
    if (ns == 0) {
        memcpy(out, "0s", 3);
        return 2;
    }
    /* Skip "w": weeks are accepted on input but written as days. */
    for (size_t k = 1; k < sizeof units / sizeof units[0]; k++) {
        if (ns % units[k].ns == 0)
            return (size_t)snprintf(out, 32, "%lld%s", (long long)(ns / units[k].ns),
                                    units[k].name);
    }
    return 0; /* unreachable: every value is a multiple of 1ns */
}

int64_t sl_now_ns(void)
{
    if (thread_now)
        return thread_now;
    int64_t f = atomic_load_explicit(&fake_now, memory_order_relaxed);
    if (f)
        return f;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * SL_NS_PER_SEC + ts.tv_nsec;
}

void sl_time_set_fake(int64_t ns)
{
    atomic_store_explicit(&fake_now, ns, memory_order_relaxed);
}

void sl_time_set_thread_now(int64_t ns)
{
    thread_now = ns;
}
