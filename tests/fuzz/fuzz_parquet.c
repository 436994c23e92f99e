/* libFuzzer target for core/parquet.c: arbitrary bytes as a Parquet file image. Opening and
 * reading must fail with a message or succeed; every row must be an object with one member
 * per column; a seek to a row and a read from there must agree with the sequential read.
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Icore tests/fuzz/fuzz_parquet.c
 *        core/parquet.c core/json.c core/buf.c core/error.c core/types.c
 *        core/timeutil.c $(pkg-config --cflags --libs libcjson libzstd zlib snappy) -lm
 * Seeds: the .parquet files of tests/data/parquet. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "parquet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ROWS 5000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_parquet *pq;
    struct sl_error err;
    struct sl_arena a = {0};
    struct sl_buf first = SL_BUF_INIT, again = SL_BUF_INIT;

    a.limit = 256u << 20;
    memset(&err, 0, sizeof err);
    if (sl_parquet_open_mem(data, size, "fuzz", &pq, &err) != 0) {
        if (err.code >= 0 || strncmp(err.msg, "fuzz: ", 6) != 0)
            abort();
        return 0;
    }
    size_t ncols = sl_parquet_num_columns(pq);
    struct sl_json *row;
    int rc;
    uint64_t n = 0, pick = size % 7;
    while (n < MAX_ROWS && (rc = sl_parquet_next(pq, &a, &row, &err)) == 1) {
        if (row->kind != SL_JSON_OBJECT || row->count != ncols)
            abort();
        if (n == pick)
            sl_json_write(&first, row);
        n++;
        if (n % 256 == 0)
            sl_arena_free(&a);
    }
    if (n < MAX_ROWS && rc < 0 && strncmp(err.msg, "fuzz: ", 6) != 0)
        abort();
    if (n > pick && !first.oom && sl_parquet_seek(pq, pick, &err) == 0) {
        sl_arena_free(&a);
        if (sl_parquet_next(pq, &a, &row, &err) == 1) {
            sl_json_write(&again, row);
            if (!again.oom && (again.len != first.len || memcmp(again.p, first.p, first.len)))
                abort();
        }
    }
    sl_buf_free(&first);
    sl_buf_free(&again);
    sl_arena_free(&a);
    sl_parquet_close(pq);
    return 0;
}
