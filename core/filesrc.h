/* Batch source files read as rows: CSV (RFC 4180), JSON Lines and Parquet, from a file, a
 * directory or a glob. Each row is a JSON object node (core/json.h) in the form the ingest API
 * accepts, so backfilled rows take the same validation and transformation path as ingested
 * records:
 *   strings → STRING; integers → NUMBER with exact decimal text; floats → NUMBER (shortest
 *   round-trip text, non-finite as the STRING "NaN" / "Infinity" / "-Infinity"); booleans →
 *   TRUE/FALSE; timestamps → RFC 3339 UTC STRING; null → NULL; lists → ARRAY; structs and maps
 *   → OBJECT.
 *
 * CSV cells are text, typed by the source schema: for a column declared Int64/Int32 a cell
 * that is a decimal integer becomes a NUMBER ("+007" → 7), Float64/Float32 a NUMBER ("nan",
 * "inf" → the strings above), Bool a TRUE/FALSE (true/false/t/f/1/0/yes/no, any case),
 * Timestamp an RFC 3339 STRING (input as sl_time_parse accepts, or a bare date
 * "YYYY-MM-DD" meaning midnight UTC), Array/Map/Struct the cell parsed as JSON. A cell that
 * does not convert stays a STRING holding its text, so validation reports it
 * ("expected int64, got string \"abc\""). String columns and columns not in the schema are
 * STRINGs. An empty unquoted cell is null; an empty quoted cell ("") is the empty string in a
 * String (or undeclared) column and null in a typed one. JSON Lines rows are passed through as
 * parsed. Parquet: see core/parquet.h.
 *
 * Memory is bounded: CSV and JSON Lines are streamed through a buffer that grows only to the
 * longest record (max_record), Parquet one page per column. Rows are allocated from the
 * caller's arena and borrow nothing from the source, so they stay valid after the source moves
 * to the next file or is closed. A source is used by one thread at a time. */
#ifndef SL_FILESRC_H
#define SL_FILESRC_H

#include <stddef.h>
#include <stdint.h>

struct sl_arena;
struct sl_error;
struct sl_field;
struct sl_json;
struct sl_filesrc;

#define SL_FILESRC_PATH_MAX 4096

/* Identity of one input file as listed at open: a materialization job remembers these to tell
 * new or changed files from ones it has loaded. */
struct sl_filesrc_file {
    const char *path;  /* as opened (the directory or glob prefix included) */
    uint64_t size;     /* bytes */
    int64_t mtime_ns;  /* modification time, ns since the epoch */
};

struct sl_filesrc_opts {
    size_t max_record;  /* CSV/JSONL: longest record in bytes; 0 = 64 MiB */
    char delimiter;     /* CSV field separator; 0 = ',' */
    /* Files for which filter returns 0 are left out of the listing (NULL keeps every file);
     * e.g. a job skips files it has already loaded. */
    int (*filter)(void *ctx, const struct sl_filesrc_file *f);
    void *filter_ctx;
    /* With confine set, only files whose canonical path (realpath: symlinks and ".."
     * resolved) lies inside one of roots[0..nroots) (canonical directories) and not inside
     * deny (canonical, may be NULL) are read: a glob's or a directory's other matches are
     * left out without being named, a uri outside is SL_EPERM that names only the uri, and
     * every file is opened through its checked canonical path. */
    int confine;
    const char *const *roots;
    size_t nroots;
    const char *deny;
};

/* Where the next row comes from; plain data a job can store as a checkpoint. */
struct sl_filesrc_pos {
    size_t file_index;               /* index in the listing; == count at the end */
    char file[SL_FILESRC_PATH_MAX];  /* that file's path ("" at the end) */
    uint64_t offset;                 /* CSV/JSONL: byte offset of the next record (0 = start);
                                        Parquet: index of the next row */
    uint64_t line;                   /* CSV/JSONL: line number of that record (0 = start) */
};

/* Opens the source at uri in format "csv", "jsonl" (also "json", "ndjson") or "parquet".
 * uri is a file path, a directory (every file inside whose name ends in .csv / .jsonl,
 * .json, .ndjson / .parquet, .parq, .pq — not hidden ones or names starting with '_' —
 * sorted by name), or a glob(3) pattern (matches sorted by name); a "file://" prefix is
 * accepted. A directory or glob with no matching file is an empty source, not an error; a
 * path that does not exist is SL_ENOTFOUND. schema[0..n) is the source schema used to type CSV
 * cells (borrowed: it must outlive the source; NULL/0 makes every CSV cell a STRING). opts may
 * be NULL. Returns 0 with *out (close with sl_filesrc_close) or a negative SL_E* with err
 * naming the uri. Files are opened lazily by sl_filesrc_next. */
int sl_filesrc_open(const char *uri, const char *format, const struct sl_field *schema, size_t n,
                    const struct sl_filesrc_opts *opts, struct sl_filesrc **out,
                    struct sl_error *err);

/* Reads the next row into *row (an OBJECT allocated from a). Returns 1 with a row, 0 when every
 * file is read, or a negative SL_E* with a message naming the file and the line (CSV, JSONL:
 * "data/x.csv: line 7: expected 3 fields as in the header, got 4") or the row group, column
 * and page (Parquet). Errors are sticky: later calls return the same error. */
int sl_filesrc_next(struct sl_filesrc *src, struct sl_arena *a, struct sl_json **row,
                    struct sl_error *err);

/* The columns of the file being read (the first one before any row): opens it if needed.
 * Returns 1 with *n columns — a CSV header's names, a Parquet file's top-level columns, each
 * sl_filesrc_column(src, i) (borrowed until the source moves to the next file) —, 0 when
 * there is no such list (JSON Lines, no file, a CSV file without a header), or a negative
 * SL_E* as sl_filesrc_next. */
int sl_filesrc_columns(struct sl_filesrc *src, size_t *n, struct sl_error *err);
const char *sl_filesrc_column(const struct sl_filesrc *src, size_t i);

/* The listing made at open: *n files, borrowed until sl_filesrc_close. */
const struct sl_filesrc_file *sl_filesrc_files(const struct sl_filesrc *src, size_t *n);

/* Path and line (CSV/JSONL; 0 for Parquet) of the row last returned, for messages that point
 * users at it. Borrowed; "" before the first row. */
const char *sl_filesrc_where(const struct sl_filesrc *src, uint64_t *line);

/* Stores in *pos where the next row would come from. */
void sl_filesrc_tell(const struct sl_filesrc *src, struct sl_filesrc_pos *pos);

/* Resumes at pos, as returned by sl_filesrc_tell on a source over the same uri (possibly in
 * another process, after new files appeared): the file is found by name (when the name is no
 * longer listed, reading resumes at the first file sorting after it) and reading continues at
 * the stored offset. Clears a sticky error. Returns 0, or SL_EINVAL when the offset lies past
 * the end of the file (it shrank), or an I/O / format error from reopening the file. */
int sl_filesrc_seek(struct sl_filesrc *src, const struct sl_filesrc_pos *pos,
                    struct sl_error *err);

/* Closes the open file and frees the source; accepts NULL. */
void sl_filesrc_close(struct sl_filesrc *src);

#endif
