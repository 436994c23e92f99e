/* Time: nanoseconds since the Unix epoch (int64, UTC), RFC 3339 text, durations. */
#ifndef SL_TIMEUTIL_H
#define SL_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define SL_NS_PER_SEC INT64_C(1000000000)
#define SL_TIME_MAXLEN 40

/* Parses RFC 3339 / ISO 8601 `YYYY-MM-DDThh:mm[:ss[.f{1,9}]][Z|z|±hh:mm]` ('T' may also be
 * 't' or a space; no zone means UTC) into *ns. Validates ranges (month days, leap years,
 * hour 0-23, minute 0-59, second 0-60 where 60 folds into the next minute). Years 0001-9999.
 * Returns 0 or SL_EINVAL. */
int sl_time_parse(const char *s, size_t len, int64_t *ns);

/* Writes ns as RFC 3339 UTC with a 'Z' suffix into out (>= SL_TIME_MAXLEN bytes, NUL-
 * terminated): no fraction when whole seconds, otherwise 3, 6 or 9 digits, the fewest that
 * are exact ("2023-01-02T00:25:06Z", "2021-08-21T01:23:58.996Z"). Returns the length. */
size_t sl_time_format(int64_t ns, char *out);

/* Parses a duration: one or more <integer><unit> groups, units ns us ms s m h d w
 * ("90s", "10m", "1h30m", "30d"). Result must be > 0. Returns 0 or SL_EINVAL. */
int sl_duration_parse(const char *s, size_t len, int64_t *ns);

/* Writes the duration in the single largest unit that divides it exactly, among d h m s ms
 * us ns ("30d", "1h", "90m", "10m") into out (>= 32 bytes). Returns the length. */
size_t sl_duration_format(int64_t ns, char *out);

/* The current time in ns: the calling thread's replayed instant when one is set, else the
 * fake clock when one is set, else the real clock. Any thread. */
int64_t sl_now_ns(void);
/* Sets a fake clock for tests (0 restores the real clock). Any thread. */
void sl_time_set_fake(int64_t ns);
/* Makes sl_now_ns() return ns on the calling thread only (0 ends it): code that replays a
 * past instant — a realtime view computed for a training event — sees that instant as now,
 * as serving saw its own. */
void sl_time_set_thread_now(int64_t ns);

#endif
