/* libFuzzer target: RFC 3339 times and durations. Whatever parses must format and parse back
 * to the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t ns, back;
    char out[64];
    if (sl_time_parse((const char *)data, size, &ns) == 0) {
        size_t n = sl_time_format(ns, out);
        if (sl_time_parse(out, n, &back) != 0 || back != ns)
            abort();
    }
    if (sl_duration_parse((const char *)data, size, &ns) == 0) {
        if (ns <= 0)
            abort();
        size_t n = sl_duration_format(ns, out);
        if (sl_duration_parse(out, n, &back) != 0 || back != ns)
            abort();
    }
    return 0;
}
