/* A Parquet file reader that yields each row as a JSON object node (core/json.h), in the form
 * the ingest API accepts, so batch rows go through the same validation as ingested records.
 *
 * Written from the Parquet format specification: footer metadata in the Thrift compact
 * protocol; data pages v1 and v2 and dictionary pages; encodings PLAIN, PLAIN_DICTIONARY /
 * RLE_DICTIONARY, RLE / bit-packed hybrid (levels and booleans), DELTA_BINARY_PACKED,
 * DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY and BYTE_STREAM_SPLIT; codecs UNCOMPRESSED,
 * SNAPPY, GZIP and ZSTD. Columns are top-level primitives (optional or required) or a LIST of
 * primitives; struct and map columns are refused at open with a message naming the column.
 *
 * Values: BOOLEAN → true/false; INT32/INT64 → NUMBER with exact decimal text (unsigned
 * annotations read as unsigned); FLOAT/DOUBLE → NUMBER, shortest round-trip text, non-finite
 * as the STRING "NaN" / "Infinity" / "-Infinity"; BYTE_ARRAY → STRING (UTF8 annotated text
 * must be valid UTF-8; un-annotated binary that is not UTF-8 becomes base64); TIMESTAMP
 * (MILLIS/MICROS/NANOS, either isAdjustedToUTC) and INT96 → RFC 3339 UTC STRING (a timestamp
 * without a zone is read as UTC); DATE → midnight UTC RFC 3339 STRING; TIME → "hh:mm:ss[.f]"
 * STRING; DECIMAL → NUMBER with the exact scaled decimal text; UUID → canonical STRING;
 * FLOAT16 → NUMBER; null → NULL; LIST → ARRAY.
 *
 * Every length and offset read from the file is checked against the file and page sizes, so a
 * truncated or corrupt file gives SL_ECORRUPT with a message naming the file and, for data,
 * the row group, column and page — never an out-of-bounds read. Memory is bounded by one page
 * per column (plus its dictionary): pages are read with pread, not the whole file. */
#ifndef SL_PARQUET_H
#define SL_PARQUET_H

#include <stddef.h>
#include <stdint.h>

struct sl_arena;
struct sl_error;
struct sl_json;
struct sl_parquet;

/* Opens the Parquet file at path and reads its footer. Returns 0 with *out (caller closes with
 * sl_parquet_close), or SL_EIO (open/read failure, with errno text), SL_ECORRUPT (not a
 * Parquet file, truncated, bad metadata), SL_EINVAL (a feature this reader does not support,
 * e.g. encryption or a struct column) or SL_ENOMEM, with err naming the file. Borrows path.
 * One thread at a time per reader. */
int sl_parquet_open(const char *path, struct sl_parquet **out, struct sl_error *err);

/* As sl_parquet_open over an in-memory file image data[0..len) (borrowed: it must outlive the
 * reader). name appears in error messages. */
int sl_parquet_open_mem(const void *data, size_t len, const char *name, struct sl_parquet **out,
                        struct sl_error *err);

/* Number of rows the footer declares, and of row groups. */
uint64_t sl_parquet_num_rows(const struct sl_parquet *pq);
size_t sl_parquet_num_row_groups(const struct sl_parquet *pq);
/* Number of top-level columns and the name of column i (borrowed, NUL-terminated). */
size_t sl_parquet_num_columns(const struct sl_parquet *pq);
const char *sl_parquet_column_name(const struct sl_parquet *pq, size_t i);

/* Decodes the next row into an OBJECT node whose members are the top-level columns in schema
 * order, allocated from a (strings are copied: the row does not borrow reader memory).
 * Returns 1 with *row, 0 at the end of the file, or a negative SL_E* with err set
 * ("f.parquet: row group 2, column `price`, page 3: ..."). An error is sticky: later calls
 * return it again. */
int sl_parquet_next(struct sl_parquet *pq, struct sl_arena *a, struct sl_json **row,
                    struct sl_error *err);

/* Index (from 0) of the row the next sl_parquet_next returns. */
uint64_t sl_parquet_tell(const struct sl_parquet *pq);

/* Positions the reader so the next row returned is row `row` (rows past the end position it at
 * the end). Whole pages before the row are skipped without decompressing them where the
 * levels allow. Returns 0 or a negative SL_E* as sl_parquet_next. */
int sl_parquet_seek(struct sl_parquet *pq, uint64_t row, struct sl_error *err);

/* Closes the file and frees the reader; accepts NULL. */
void sl_parquet_close(struct sl_parquet *pq);

#endif
