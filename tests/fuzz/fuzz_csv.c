/* libFuzzer target for core/filesrc.c's CSV and JSON Lines readers. The first input byte picks
 * the format, the delimiter and the type of the first column; the rest is the file, handed
 * over through a memfd. Reading must end in rows, the end, or an error naming the file and a
 * line; every CSV row has as many members as the header has columns.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Icore tests/fuzz/fuzz_csv.c
 *        core/filesrc.c core/parquet.c core/json.c core/buf.c core/error.c
 *        core/types.c core/timeutil.c $(pkg-config --cflags --libs libcjson libzstd zlib snappy) -lm */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "filesrc.h"
#include "json.h"
#include "types.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum sl_kind kinds[] = {SL_STRING, SL_INT64, SL_INT32, SL_FLOAT64,
                                         SL_FLOAT32, SL_BOOL, SL_TIMESTAMP, SL_ARRAY};
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    data++;
    size--;
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    struct sl_type elem = {SL_STRING, NULL, 0, NULL};
    struct sl_type t = {kinds[(ctl >> 2) & 7], NULL, 0, NULL};
    if (t.kind == SL_ARRAY)
        t.elem = &elem;
    char name[2] = {'a', 0};
    struct sl_field schema[1] = {{name, &t}};
    struct sl_filesrc_opts o = {.max_record = 1u << 20, .delimiter = (ctl & 2) ? ';' : ','};
    const char *fmt = (ctl & 1) ? "jsonl" : "csv";

    struct sl_filesrc *src;
    struct sl_error err;
    struct sl_arena a = {0};
    a.limit = 256u << 20;
    memset(&err, 0, sizeof err);
    if (sl_filesrc_open(path, fmt, schema, 1, &o, &src, &err) != 0)
        abort();
    struct sl_json *row;
    int rc, n = 0;
    size_t cols = SIZE_MAX;
    while ((rc = sl_filesrc_next(src, &a, &row, &err)) == 1) {
        if (row->kind != SL_JSON_OBJECT)
            abort();
        if (!(ctl & 1)) {
            if (cols == SIZE_MAX)
                cols = row->count;
            if (row->count != cols)
                abort();
        }
        if (++n % 256 == 0)
            sl_arena_free(&a);
    }
    if (rc < 0 && !strstr(err.msg, "/proc/self/fd/"))
        abort();
    /* Resume from the middle must not crash either. */
    if (rc == 0 && n > 1) {
        struct sl_filesrc_pos *pos = malloc(sizeof *pos);
        if (pos) {
            sl_filesrc_tell(src, pos);
            pos->offset = size / 2;
            (void)sl_filesrc_seek(src, pos, &err);
            while (sl_filesrc_next(src, &a, &row, &err) == 1)
                ;
            free(pos);
        }
    }
    sl_filesrc_close(src);
    sl_arena_free(&a);
    close(fd);
    return 0;
}
