/* Batch source files (CSV, JSON Lines, Parquet) read as JSON rows; file listing and resume. */
#include "filesrc.h"

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "parquet.h"
#include "timeutil.h"
#include "types.h"

enum fmt { FMT_CSV, FMT_JSONL, FMT_PARQUET };

#define DEFAULT_MAX_RECORD ((size_t)64 << 20)
#define READ_CHUNK ((size_t)256 << 10)

struct csv_field {
    size_t start, len; /* offsets into buf, relative to head */
    int quoted, escaped;
};

struct sl_filesrc {
    enum fmt fmt;
    const struct sl_field *schema;
    size_t nschema;
    struct sl_filesrc_opts opts;

    struct sl_filesrc_file *files;
    size_t nfiles;
    size_t cur;    /* file being read; nfiles at the end */
    int open;      /* files[cur] is open */

    /* CSV / JSON Lines: a window [head, tail) of the file in buf; buf[0] is at buf_off. */
    int fd;
    char *buf;
    size_t cap, head, tail;
    uint64_t buf_off;
    int eof;
    uint64_t line;     /* line number at buf[head] */
    uint64_t rec_line; /* line of the row last returned */
    size_t scanned;    /* JSONL: bytes after head known to hold no newline */
    size_t rec_next;   /* CSV: end of the record scanned at head */
    uint64_t rec_nl;   /* CSV: newlines in it */

    /* CSV header of the open file */
    size_t ncols;
    char **names;
    size_t *namelens;
    const struct sl_type **types;
    uint64_t data_off; /* first record after the header */
    struct csv_field *flds;
    size_t fldcap;
    struct sl_buf scratch;

    struct sl_parquet *pq;

    int failed;
    struct sl_error ferr;
};

/* ---- errors ---- */

static int src_fail(struct sl_filesrc *src, struct sl_error *err, int code, uint64_t line,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Records a sticky error about the current file ("path: line N: msg") and copies it to err. */
static int src_fail(struct sl_filesrc *src, struct sl_error *err, int code, uint64_t line,
                    const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *path = src->cur < src->nfiles ? src->files[src->cur].path : "";
    if (line)
        sl_error_set(&src->ferr, code, "%s: line %llu: %s", path, (unsigned long long)line, msg);
    else
        sl_error_set(&src->ferr, code, "%s: %s", path, msg);
    src->failed = 1;
    if (err)
        *err = src->ferr;
    return code;
}

static int src_fail_err(struct sl_filesrc *src, struct sl_error *err, const struct sl_error *e)
{
    src->ferr = *e;
    src->failed = 1;
    if (err)
        *err = src->ferr;
    return e->code ? e->code : SL_EINVAL;
}

/* ---- listing ---- */

static const char *const exts[][4] = {
    [FMT_CSV] = {".csv", NULL},
    [FMT_JSONL] = {".jsonl", ".json", ".ndjson", NULL},
    [FMT_PARQUET] = {".parquet", ".parq", ".pq", NULL},
};

static int has_ext(enum fmt f, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; exts[f][i]; i++) {
        size_t k = strlen(exts[f][i]);
        if (n > k && strcasecmp(name + n - k, exts[f][i]) == 0)
            return 1;
    }
    return 0;
}

static int add_file(struct sl_filesrc *src, size_t *cap, const char *path, const struct stat *st)
{
    if (src->nfiles == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        void *p = realloc(src->files, nc * sizeof *src->files);
        if (!p)
            return SL_ENOMEM;
        src->files = p;
        *cap = nc;
    }
    char *dup = strdup(path);
    if (!dup)
        return SL_ENOMEM;
    struct sl_filesrc_file *f = &src->files[src->nfiles++];
    f->path = dup;
    f->size = (uint64_t)st->st_size;
    f->mtime_ns = (int64_t)st->st_mtim.tv_sec * SL_NS_PER_SEC + st->st_mtim.tv_nsec;
    return 0;
}

static int cmp_files(const void *a, const void *b)
{
    return strcmp(((const struct sl_filesrc_file *)a)->path,
                  ((const struct sl_filesrc_file *)b)->path);
}

/* ---- allowed roots ---- */

/* 1 if the canonical path real is dir or lies inside it. */
static int inside(const char *real, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return 1;
    return strncmp(real, dir, n) == 0 && (real[n] == '\0' || real[n] == '/');
}

static int canonical_allowed(const struct sl_filesrc *src, const char *real)
{
    if (src->opts.deny && inside(real, src->opts.deny))
        return 0;
    for (size_t i = 0; i < src->opts.nroots; i++)
        if (inside(real, src->opts.roots[i]))
            return 1;
    return 0;
}

/* "a/./b/../c" → "a/c" for an absolute path, without looking at the file system (for a path
 * that does not exist, so realpath cannot resolve it). */
static void lexical_clean(const char *path, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        if (len == 0)
            break;
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
        } else if (!(len == 1 && p[0] == '.') && n + len + 2 < cap) {
            out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
        }
        out[n] = '\0';
        p += len;
    }
    if (n == 0 && cap > 1)
        strcpy(out, "/");
}

/* Whether path may be read; its canonical path goes into real (PATH_MAX bytes). Without
 * confinement every path may, and real is a copy. */
static int path_allowed(const struct sl_filesrc *src, const char *path, char *real)
{
    if (!src->opts.confine) {
        snprintf(real, PATH_MAX, "%s", path);
        return 1;
    }
    return realpath(path, real) != NULL && canonical_allowed(src, real);
}

/* For a uri naming one path: 0 if it may be listed, else SL_EPERM or SL_ENOTFOUND with err
 * naming the uri only. A missing path outside the roots reads as outside, not as missing. */
static int check_uri(const struct sl_filesrc *src, const char *uri, const char *path,
                     struct sl_error *err)
{
    char real[PATH_MAX];
    if (!src->opts.confine)
        return 0;
    if (realpath(path, real) != NULL) {
        if (canonical_allowed(src, real))
            return 0;
    } else if (errno == ENOENT && path[0] == '/') {
        lexical_clean(path, real, sizeof real);
        if (canonical_allowed(src, real))
            return sl_error_set(err, SL_ENOTFOUND, "%s: %s", uri, strerror(ENOENT));
    }
    return sl_error_set(err, SL_EPERM,
                        "%s: outside the folders batch files may be read from (the "
                        "repository's folder, or the server's batch-root settings)",
                        uri);
}

static int list_files(struct sl_filesrc *src, const char *uri, struct sl_error *err)
{
    char real[PATH_MAX];
    const char *path = uri;
    size_t cap = 0;
    struct stat st;
    int rc = 0;

    if (strncmp(path, "file://", 7) == 0) {
        path += 7;
        if (strncmp(path, "localhost/", 10) == 0)
            path += 9;
        if (path[0] != '/')
            return sl_error_set(err, SL_EINVAL, "%s: a file:// URI needs an absolute path", uri);
    }
    if (!path[0])
        return sl_error_set(err, SL_EINVAL, "empty source uri");
    if (strlen(path) >= SL_FILESRC_PATH_MAX)
        return sl_error_set(err, SL_EINVAL, "%.64s...: path too long", path);

    if (strpbrk(path, "*?[")) {
        glob_t g;
        int gr = glob(path, GLOB_NOSORT, NULL, &g);
        if (gr == GLOB_NOMATCH)
            return 0;
        if (gr == GLOB_NOSPACE)
            return sl_error_set(err, SL_ENOMEM, "%s: out of memory expanding the glob", uri);
        if (gr != 0)
            return sl_error_set(err, SL_EIO, "%s: cannot read a directory of the glob", uri);
        for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
            if (strlen(g.gl_pathv[i]) < SL_FILESRC_PATH_MAX &&
                path_allowed(src, g.gl_pathv[i], real) && stat(real, &st) == 0 &&
                S_ISREG(st.st_mode))
                rc = add_file(src, &cap, g.gl_pathv[i], &st);
        globfree(&g);
    } else if ((rc = check_uri(src, uri, path, err)) != 0) {
        return rc;
    } else if (stat(path, &st) != 0) {
        return sl_error_set(err, errno == ENOENT ? SL_ENOTFOUND : SL_EIO, "%s: %s", uri,
                            strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d)
            return sl_error_set(err, SL_EIO, "%s: %s", uri, strerror(errno));
        struct dirent *de;
        char full[SL_FILESRC_PATH_MAX];
        size_t plen = strlen(path);
        while (rc == 0 && (de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.' || de->d_name[0] == '_' || !has_ext(src->fmt, de->d_name))
                continue;
            int k = snprintf(full, sizeof full, "%s%s%s", path,
                             plen && path[plen - 1] == '/' ? "" : "/", de->d_name);
            if (k < 0 || (size_t)k >= sizeof full)
                continue;
            struct stat fst;
            if (path_allowed(src, full, real) && stat(real, &fst) == 0 && S_ISREG(fst.st_mode))
                rc = add_file(src, &cap, full, &fst);
        }
        closedir(d);
    } else if (S_ISREG(st.st_mode)) {
        rc = add_file(src, &cap, path, &st);
    } else {
        return sl_error_set(err, SL_EINVAL, "%s: not a regular file or directory", uri);
    }
    if (rc)
        return sl_error_set(err, SL_ENOMEM, "out of memory listing %s", uri);
    if (src->nfiles > 1) /* none when every match was left out: files is NULL */
        qsort(src->files, src->nfiles, sizeof *src->files, cmp_files);
    if (src->opts.filter) {
        size_t w = 0;
        for (size_t i = 0; i < src->nfiles; i++) {
            if (src->opts.filter(src->opts.filter_ctx, &src->files[i]))
                src->files[w++] = src->files[i];
            else
                free((char *)src->files[i].path);
        }
        src->nfiles = w;
    }
    return 0;
}

/* ---- text buffer ---- */

/* Reads more of the file after tail, first moving [head, tail) to the front, growing the
 * buffer when it is full. Returns 1 when bytes were added, 0 at end of file, or a negative
 * SL_E* (err set) — SL_ETOOBIG when a record would exceed max_record. */
static int fill(struct sl_filesrc *src, struct sl_error *err)
{
    if (src->eof)
        return 0;
    if (src->head > 0) {
        memmove(src->buf, src->buf + src->head, src->tail - src->head);
        src->buf_off += src->head;
        src->tail -= src->head;
        src->head = 0;
    }
    if (src->cap - src->tail < READ_CHUNK / 4) {
        if (src->tail >= src->opts.max_record)
            return src_fail(src, err, SL_ETOOBIG, src->line,
                            "record longer than %zu bytes (unterminated quote?)",
                            src->opts.max_record);
        size_t nc = src->cap ? src->cap * 2 : READ_CHUNK;
        if (nc > src->opts.max_record + READ_CHUNK)
            nc = src->opts.max_record + READ_CHUNK;
        char *p = realloc(src->buf, nc);
        if (!p)
            return src_fail(src, err, SL_ENOMEM, 0, "out of memory");
        src->buf = p;
        src->cap = nc;
    }
    for (;;) {
        ssize_t k = read(src->fd, src->buf + src->tail, src->cap - src->tail);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return src_fail(src, err, SL_EIO, 0, "read failed: %s", strerror(errno));
        if (k == 0) {
            src->eof = 1;
            return 0;
        }
        src->tail += (size_t)k;
        return 1;
    }
}

/* ---- nodes ---- */


static int valid_utf8(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = sl_utf8_seqlen(s + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* ---- CSV cells ---- */

/* Parses [+-]digits into an int64; 0 or -1. */
static int parse_int(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return -1;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

/* 1 when s[0..n) is a JSON number literal. */
static int is_json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return 0;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9')
            return 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || s[i] < '0' || s[i] > '9')
            return 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return i == n;
}

static int word_eq(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

/* The node for one CSV cell of column col; NULL on out of memory. */
static struct sl_json *csv_cell(struct sl_filesrc *src, struct sl_arena *a, size_t col,
                                const char *s, size_t n, int quoted, int *bad_utf8)
{
    const char *key = src->names[col];
    size_t kl = src->namelens[col];
    const struct sl_type *t = src->types[col];
    enum sl_kind kind = t ? t->kind : SL_STRING;
    char tmp[64];
    int64_t v;

    if (n == 0 && (!quoted || kind != SL_STRING))
        return sl_json_node(a, SL_JSON_NULL, key, kl, NULL, 0);
    switch (kind) {
    case SL_INT64:
    case SL_INT32:
        if (parse_int(s, n, &v) == 0) {
            char *w = tmp + sizeof tmp;
            uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            do {
                *--w = (char)('0' + u % 10);
                u /= 10;
            } while (u);
            if (v < 0)
                *--w = '-';
            return sl_json_node(a, SL_JSON_NUMBER, key, kl, w, (size_t)(tmp + sizeof tmp - w));
        }
        break;
    case SL_FLOAT64:
    case SL_FLOAT32:
        if (is_json_number(s, n))
            return sl_json_node(a, SL_JSON_NUMBER, key, kl, s, n);
        if (word_eq(s, n, "nan") || word_eq(s, n, "-nan") || word_eq(s, n, "+nan"))
            return sl_json_node(a, SL_JSON_STRING, key, kl, "NaN", 3);
        if (word_eq(s, n, "inf") || word_eq(s, n, "+inf") || word_eq(s, n, "infinity") ||
            word_eq(s, n, "+infinity"))
            return sl_json_node(a, SL_JSON_STRING, key, kl, "Infinity", 8);
        if (word_eq(s, n, "-inf") || word_eq(s, n, "-infinity"))
            return sl_json_node(a, SL_JSON_STRING, key, kl, "-Infinity", 9);
        if (n < sizeof tmp) {
            memcpy(tmp, s, n);
            tmp[n] = '\0';
            char *end;
            double d = strtod(tmp, &end);
            if (end == tmp + n && isfinite(d) && !strpbrk(tmp, "xXpP")) {
                size_t k = kind == SL_FLOAT32 ? sl_value_format_float((float)d, tmp)
                                              : sl_value_format_double(d, tmp);
                return sl_json_node(a, SL_JSON_NUMBER, key, kl, tmp, k);
            }
        }
        break;
    case SL_BOOL:
        if (word_eq(s, n, "true") || word_eq(s, n, "t") || word_eq(s, n, "1") ||
            word_eq(s, n, "yes"))
            return sl_json_node(a, SL_JSON_TRUE, key, kl, NULL, 0);
        if (word_eq(s, n, "false") || word_eq(s, n, "f") || word_eq(s, n, "0") ||
            word_eq(s, n, "no"))
            return sl_json_node(a, SL_JSON_FALSE, key, kl, NULL, 0);
        break;
    case SL_TIMESTAMP: {
        int64_t ns;
        int ok = sl_time_parse(s, n, &ns) == 0;
        if (!ok && n == 10 && s[4] == '-' && s[7] == '-') {
            memcpy(tmp, s, 10);
            memcpy(tmp + 10, "T00:00:00Z", 10);
            ok = sl_time_parse(tmp, 20, &ns) == 0;
        }
        if (ok) {
            size_t k = sl_time_format(ns, tmp);
            return sl_json_node(a, SL_JSON_STRING, key, kl, tmp, k);
        }
        break;
    }
    case SL_ARRAY:
    case SL_MAP:
    case SL_STRUCT: {
        struct sl_error e;
        struct sl_json *j = sl_json_parse(s, n, a, &e);
        if (j && (j->kind == SL_JSON_ARRAY || j->kind == SL_JSON_OBJECT)) {
            char *k = sl_arena_strndup(a, key, kl);
            if (!k)
                return NULL;
            j->key = k;
            j->keylen = kl;
            return j;
        }
        if (!j && e.code == SL_ENOMEM)
            return NULL;
        break;
    }
    default:
        break;
    }
    if (!valid_utf8(s, n)) {
        *bad_utf8 = 1;
        return NULL;
    }
    return sl_json_node(a, SL_JSON_STRING, key, kl, s, n);
}

/* ---- CSV records ---- */

enum { REC_NEED = 0, REC_OK = 1, REC_BLANK = 2, REC_END = 3 };

static int add_field(struct sl_filesrc *src, size_t nf, const struct csv_field *f)
{
    if (nf >= src->fldcap) {
        size_t nc = src->fldcap ? src->fldcap * 2 : 32;
        void *p = realloc(src->flds, nc * sizeof *src->flds);
        if (!p)
            return SL_ENOMEM;
        src->flds = p;
        src->fldcap = nc;
    }
    src->flds[nf] = *f;
    return 0;
}

/* Scans one record at buf[head]: REC_OK (fields in flds, *nf of them, *next after the record,
 * *nl newlines it spans), REC_BLANK (an empty line, *next after it), REC_END (end of file),
 * REC_NEED (more bytes needed), or a negative SL_E* with err set. */
static int csv_scan(struct sl_filesrc *src, size_t *nfp, size_t *next, uint64_t *nlp,
                    struct sl_error *err)
{
    const char *b = src->buf;
    size_t p = src->head, end = src->tail, nf = 0;
    uint64_t nl = 0;
    char delim = src->opts.delimiter;
    int eof = src->eof;

    if (p >= end)
        return eof ? REC_END : REC_NEED;
    if (b[p] == '\n' || b[p] == '\r') {
        if (b[p] == '\r') {
            if (p + 1 >= end && !eof)
                return REC_NEED;
            if (p + 1 < end && b[p + 1] == '\n')
                p++;
        }
        *next = p + 1;
        *nlp = 1;
        return REC_BLANK;
    }
    for (;;) {
        struct csv_field f = {0, 0, 0, 0};
        if (p < end && b[p] == '"') {
            f.quoted = 1;
            f.start = ++p;
            for (;;) {
                const char *q = memchr(b + p, '"', end - p);
                if (!q) {
                    if (!eof)
                        return REC_NEED;
                    return src_fail(src, err, SL_EINVAL, src->line,
                                    "unterminated quoted field (a '\"' is missing)");
                }
                for (const char *c = b + p; (c = memchr(c, '\n', (size_t)(q - c))) != NULL; c++)
                    nl++;
                p = (size_t)(q - b);
                if (p + 1 >= end && !eof)
                    return REC_NEED;
                if (p + 1 < end && b[p + 1] == '"') {
                    f.escaped = 1;
                    p += 2;
                    continue;
                }
                f.len = p - f.start;
                p++;
                break;
            }
            if (p < end && b[p] != delim && b[p] != '\n' && b[p] != '\r')
                return src_fail(src, err, SL_EINVAL, src->line + nl,
                                "unexpected character after a closing quote in field %zu "
                                "(quotes inside a quoted field must be doubled)", nf + 1);
        } else {
            f.start = p;
            while (p < end) {
                char c = b[p];
                if (c == delim || c == '\n' || c == '\r' || c == '"')
                    break;
                p++;
            }
            if (p < end && b[p] == '"')
                return src_fail(src, err, SL_EINVAL, src->line + nl,
                                "quote inside unquoted field %zu (quote the whole field and "
                                "double the quote)", nf + 1);
            if (p >= end && !eof)
                return REC_NEED;
            f.len = p - f.start;
        }
        f.start -= src->head;
        if (add_field(src, nf, &f) != 0)
            return src_fail(src, err, SL_ENOMEM, 0, "out of memory");
        nf++;
        if (p >= end)
            break;
        if (b[p] == delim) {
            p++;
            continue;
        }
        if (b[p] == '\r') {
            if (p + 1 >= end && !eof)
                return REC_NEED;
            p++;
            if (p < end && b[p] == '\n')
                p++;
            nl++;
            break;
        }
        p++; /* '\n' */
        nl++;
        break;
    }
    *nfp = nf;
    *next = p;
    *nlp = nl;
    return REC_OK;
}

/* Reads the next non-blank record: REC_OK / REC_END or a negative SL_E*. */
static int csv_record(struct sl_filesrc *src, size_t *nf, struct sl_error *err)
{
    for (;;) {
        size_t next = 0;
        uint64_t nl = 0;
        int rc = csv_scan(src, nf, &next, &nl, err);
        if (rc < 0)
            return rc;
        if (rc == REC_NEED) {
            if ((rc = fill(src, err)) < 0)
                return rc;
            continue;
        }
        if (rc == REC_BLANK) {
            src->head = next;
            src->line += nl;
            continue;
        }
        if (rc == REC_OK) {
            src->rec_line = src->line;
            /* Consumed later by csv_advance, so fields stay addressable. */
            src->rec_next = next;
            src->rec_nl = nl;
        }
        return rc;
    }
}

static void csv_advance(struct sl_filesrc *src)
{
    src->head = src->rec_next;
    src->line += src->rec_nl;
    src->rec_nl = 0;
}

/* Text of field i (unescaping doubled quotes into scratch). */
static const char *field_text(struct sl_filesrc *src, size_t i, size_t *n)
{
    const struct csv_field *f = &src->flds[i];
    const char *s = src->buf + src->head + f->start;
    if (!f->escaped) {
        *n = f->len;
        return s;
    }
    sl_buf_reset(&src->scratch);
    for (size_t k = 0; k < f->len; k++) {
        sl_buf_putc(&src->scratch, s[k]);
        if (s[k] == '"')
            k++;
    }
    if (src->scratch.oom)
        return NULL;
    *n = src->scratch.len;
    return src->scratch.p ? src->scratch.p : "";
}

static void free_header(struct sl_filesrc *src)
{
    if (src->names)
        for (size_t i = 0; i < src->ncols; i++)
            free(src->names[i]);
    free(src->names);
    free(src->namelens);
    free(src->types);
    src->names = NULL;
    src->namelens = NULL;
    src->types = NULL;
    src->ncols = 0;
}

static int csv_header(struct sl_filesrc *src, struct sl_error *err)
{
    size_t nf;
    /* A UTF-8 byte order mark is not part of the first column's name. */
    while (src->tail - src->head < 3 && !src->eof) {
        int rc = fill(src, err);
        if (rc < 0)
            return rc;
    }
    if (src->tail - src->head >= 3 && memcmp(src->buf + src->head, "\xEF\xBB\xBF", 3) == 0)
        src->head += 3;
    int rc = csv_record(src, &nf, err);
    if (rc < 0)
        return rc;
    if (rc == REC_END) {
        src->ncols = 0;
        src->data_off = src->buf_off + src->head;
        return 0;
    }
    src->names = calloc(nf, sizeof *src->names);
    src->namelens = calloc(nf, sizeof *src->namelens);
    src->types = calloc(nf, sizeof *src->types);
    if (!src->names || !src->namelens || !src->types)
        return src_fail(src, err, SL_ENOMEM, 0, "out of memory");
    src->ncols = nf;
    for (size_t i = 0; i < nf; i++) {
        size_t n;
        const char *s = field_text(src, i, &n);
        char gen[32];
        if (!s)
            return src_fail(src, err, SL_ENOMEM, 0, "out of memory");
        if (n == 0) {
            n = (size_t)snprintf(gen, sizeof gen, "column%zu", i);
            s = gen;
        }
        if (!valid_utf8(s, n))
            return src_fail(src, err, SL_EINVAL, src->line,
                            "header field %zu is not valid UTF-8", i + 1);
        if (!(src->names[i] = malloc(n + 1)))
            return src_fail(src, err, SL_ENOMEM, 0, "out of memory");
        memcpy(src->names[i], s, n);
        src->names[i][n] = '\0';
        src->namelens[i] = n;
        for (size_t k = 0; k < i; k++)
            if (src->namelens[k] == n && memcmp(src->names[k], s, n) == 0)
                return src_fail(src, err, SL_EINVAL, src->line,
                                "duplicate column name `%.64s` in the header", src->names[i]);
        for (size_t k = 0; k < src->nschema; k++)
            if (strlen(src->schema[k].name) == n && memcmp(src->schema[k].name, s, n) == 0)
                src->types[i] = src->schema[k].type;
    }
    csv_advance(src);
    src->data_off = src->buf_off + src->head;
    return 0;
}

static int csv_next(struct sl_filesrc *src, struct sl_arena *a, struct sl_json **row,
                    struct sl_error *err)
{
    size_t nf;
    int rc = csv_record(src, &nf, err);
    if (rc < 0)
        return rc;
    if (rc == REC_END)
        return 0;
    if (nf != src->ncols) {
        return src_fail(src, err, SL_EINVAL, src->rec_line, "expected %zu field%s as in the header, got %zu",
                        src->ncols, src->ncols == 1 ? "" : "s", nf);
    }
    struct sl_json *obj = sl_json_node(a, SL_JSON_OBJECT, NULL, 0, NULL, 0);
    if (!obj)
        goto oom;
    struct sl_json *last = NULL;
    for (size_t i = 0; i < nf; i++) {
        size_t n;
        int bad = 0;
        const char *s = field_text(src, i, &n);
        if (!s)
            goto oom;
        struct sl_json *m = csv_cell(src, a, i, s, n, src->flds[i].quoted, &bad);
        if (bad)
            return src_fail(src, err, SL_EINVAL, src->rec_line,
                            "column `%.64s` is not valid UTF-8", src->names[i]);
        if (!m)
            goto oom;
        if (last)
            last->next = m;
        else
            obj->child = m;
        last = m;
        obj->count++;
    }
    csv_advance(src);
    *row = obj;
    return 1;
oom:
    return src_fail(src, err, SL_ENOMEM, 0, "out of memory");
}

/* ---- JSON Lines ---- */

static int jsonl_next(struct sl_filesrc *src, struct sl_arena *a, struct sl_json **row,
                      struct sl_error *err)
{
    for (;;) {
        const char *b = src->buf + src->head;
        size_t avail = src->tail - src->head;
        const char *nlp = avail > src->scanned
                              ? memchr(b + src->scanned, '\n', avail - src->scanned) : NULL;
        if (!nlp && !src->eof) {
            src->scanned = avail;
            int rc = fill(src, err);
            if (rc < 0)
                return rc;
            continue;
        }
        if (!nlp && avail == 0)
            return 0;
        size_t len = nlp ? (size_t)(nlp - b) : avail;
        size_t adv = nlp ? len + 1 : len;
        uint64_t line = src->line;
        src->scanned = 0;
        size_t i = 0;
        while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r'))
            i++;
        if (i == len) {
            src->head += adv;
            src->line++;
            continue;
        }
        struct sl_error e;
        struct sl_json *j = sl_json_parse(b, len, a, &e);
        if (!j) {
            const char *m = e.msg;
            static const char pre[] = "JSON syntax error at line 1, column ";
            if (strncmp(m, pre, sizeof pre - 1) == 0)
                return src_fail(src, err, e.code, line, "JSON syntax error at column %s",
                                m + sizeof pre - 1);
            return src_fail(src, err, e.code, line, "%s", m);
        }
        if (j->kind != SL_JSON_OBJECT)
            return src_fail(src, err, SL_EINVAL, line, "expected a JSON object, got %s %s",
                            j->kind == SL_JSON_ARRAY || j->kind == SL_JSON_OBJECT ? "an" : "a",
                            sl_json_kind_name(j->kind));
        src->head += adv;
        src->line++;
        src->rec_line = line;
        *row = j;
        return 1;
    }
}

/* ---- files ---- */

static void close_file(struct sl_filesrc *src)
{
    if (src->fd >= 0)
        close(src->fd);
    src->fd = -1;
    sl_parquet_close(src->pq);
    src->pq = NULL;
    free_header(src);
    src->head = src->tail = 0;
    src->buf_off = 0;
    src->eof = 0;
    src->scanned = 0;
    src->rec_nl = 0;
    src->open = 0;
}

/* Opens files[cur]: for CSV reads the header. */
static int open_file(struct sl_filesrc *src, struct sl_error *err)
{
    char path[PATH_MAX];
    /* checked again at open, and opened by its canonical path: a symlink swapped in since
     * the listing does not lead outside */
    if (!path_allowed(src, src->files[src->cur].path, path))
        return src_fail(src, err, SL_EPERM, 0,
                        "outside the folders batch files may be read from");
    src->line = 1;
    src->rec_line = 0;
    if (src->fmt == FMT_PARQUET) {
        struct sl_error e;
        if (sl_parquet_open(path, &src->pq, &e) != 0)
            return src_fail_err(src, err, &e);
        src->open = 1;
        return 0;
    }
    if (!src->buf) {
        if (!(src->buf = malloc(READ_CHUNK)))
            return src_fail(src, err, SL_ENOMEM, 0, "out of memory");
        src->cap = READ_CHUNK;
    }
    src->fd = open(path, O_RDONLY | O_CLOEXEC | (src->opts.confine ? O_NOFOLLOW : 0));
    if (src->fd < 0)
        return src_fail(src, err, errno == ENOENT ? SL_ENOTFOUND : SL_EIO, 0, "%s",
                        strerror(errno));
    src->open = 1;
    if (src->fmt == FMT_CSV)
        return csv_header(src, err);
    return 0;
}

int sl_filesrc_columns(struct sl_filesrc *src, size_t *n, struct sl_error *err)
{
    int rc;
    if (src->failed) {
        if (err)
            *err = src->ferr;
        return src->ferr.code;
    }
    if (src->cur >= src->nfiles || src->fmt == FMT_JSONL)
        return 0;
    if (!src->open && (rc = open_file(src, err)) != 0)
        return rc;
    *n = src->fmt == FMT_CSV ? src->ncols : sl_parquet_num_columns(src->pq);
    return *n > 0;
}

const char *sl_filesrc_column(const struct sl_filesrc *src, size_t i)
{
    return src->fmt == FMT_CSV ? src->names[i] : sl_parquet_column_name(src->pq, i);
}

int sl_filesrc_next(struct sl_filesrc *src, struct sl_arena *a, struct sl_json **row,
                    struct sl_error *err)
{
    if (src->failed) {
        if (err)
            *err = src->ferr;
        return src->ferr.code;
    }
    for (;;) {
        if (src->cur >= src->nfiles)
            return 0;
        int rc;
        if (!src->open && (rc = open_file(src, err)) != 0)
            return rc;
        if (src->fmt == FMT_CSV) {
            rc = csv_next(src, a, row, err);
        } else if (src->fmt == FMT_JSONL) {
            rc = jsonl_next(src, a, row, err);
        } else {
            struct sl_error e;
            rc = sl_parquet_next(src->pq, a, row, &e);
            if (rc < 0)
                return src_fail_err(src, err, &e);
        }
        if (rc != 0)
            return rc;
        close_file(src);
        src->cur++;
    }
}

/* ---- position ---- */

void sl_filesrc_tell(const struct sl_filesrc *src, struct sl_filesrc_pos *pos)
{
    memset(pos, 0, sizeof *pos);
    pos->file_index = src->cur;
    if (src->cur < src->nfiles)
        snprintf(pos->file, sizeof pos->file, "%s", src->files[src->cur].path);
    if (!src->open)
        return;
    if (src->fmt == FMT_PARQUET) {
        pos->offset = sl_parquet_tell(src->pq);
    } else {
        pos->offset = src->buf_off + src->head;
        pos->line = src->line;
    }
}

int sl_filesrc_seek(struct sl_filesrc *src, const struct sl_filesrc_pos *pos,
                    struct sl_error *err)
{
    size_t idx = src->nfiles;
    uint64_t off = pos->offset;

    if (pos->file[0]) {
        if (pos->file_index < src->nfiles && strcmp(src->files[pos->file_index].path,
                                                    pos->file) == 0) {
            idx = pos->file_index;
        } else {
            for (idx = 0; idx < src->nfiles; idx++) {
                int c = strcmp(src->files[idx].path, pos->file);
                if (c == 0)
                    break;
                if (c > 0) {
                    off = 0; /* the file is gone: start the next one from its beginning */
                    break;
                }
            }
        }
    }
    close_file(src);
    src->failed = 0;
    memset(&src->ferr, 0, sizeof src->ferr);
    src->cur = idx;
    if (idx >= src->nfiles || off == 0)
        return 0;
    int rc = open_file(src, err);
    if (rc)
        return rc;
    if (src->fmt == FMT_PARQUET) {
        struct sl_error e;
        if (sl_parquet_seek(src->pq, off, &e) != 0)
            return src_fail_err(src, err, &e);
        return 0;
    }
    struct stat st;
    if (fstat(src->fd, &st) != 0)
        return src_fail(src, err, SL_EIO, 0, "%s", strerror(errno));
    if (off > (uint64_t)st.st_size)
        return src_fail(src, err, SL_EINVAL, 0,
                        "cannot resume at byte %llu: the file has only %lld bytes (rewritten?)",
                        (unsigned long long)off, (long long)st.st_size);
    if (src->fmt == FMT_CSV && off <= src->data_off)
        return 0; /* already right after the header */
    if (lseek(src->fd, (off_t)off, SEEK_SET) < 0)
        return src_fail(src, err, SL_EIO, 0, "seek failed: %s", strerror(errno));
    src->head = src->tail = 0;
    src->buf_off = off;
    src->eof = 0;
    src->scanned = 0;
    src->line = pos->line ? pos->line : 1;
    return 0;
}

/* ---- open / close ---- */

const struct sl_filesrc_file *sl_filesrc_files(const struct sl_filesrc *src, size_t *n)
{
    *n = src->nfiles;
    return src->files;
}

const char *sl_filesrc_where(const struct sl_filesrc *src, uint64_t *line)
{
    if (line)
        *line = src->fmt == FMT_PARQUET ? 0 : src->rec_line;
    return src->cur < src->nfiles && src->open ? src->files[src->cur].path : "";
}

int sl_filesrc_open(const char *uri, const char *format, const struct sl_field *schema, size_t n,
                    const struct sl_filesrc_opts *opts, struct sl_filesrc **out,
                    struct sl_error *err)
{
    struct sl_filesrc *src = NULL;
    enum fmt f;
    int rc;

    *out = NULL;
    if (!format || !uri)
        return sl_error_set(err, SL_EINVAL, "source needs a uri and a file format");
    if (strcmp(format, "csv") == 0)
        f = FMT_CSV;
    else if (strcmp(format, "jsonl") == 0 || strcmp(format, "json") == 0 ||
             strcmp(format, "ndjson") == 0)
        f = FMT_JSONL;
    else if (strcmp(format, "parquet") == 0)
        f = FMT_PARQUET;
    else
        return sl_error_set(err, SL_EINVAL,
                            "unknown file format \"%.32s\" (use csv, jsonl or parquet)", format);
    if (!(src = calloc(1, sizeof *src)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    src->fd = -1;
    src->fmt = f;
    src->schema = schema;
    src->nschema = schema ? n : 0;
    if (opts)
        src->opts = *opts;
    if (!src->opts.max_record)
        src->opts.max_record = DEFAULT_MAX_RECORD;
    if (!src->opts.delimiter)
        src->opts.delimiter = ',';
    if (src->opts.delimiter == '"' || src->opts.delimiter == '\n' ||
        src->opts.delimiter == '\r') {
        rc = sl_error_set(err, SL_EINVAL, "invalid CSV delimiter");
        goto fail;
    }
    if ((rc = list_files(src, uri, err)) != 0)
        goto fail;
    *out = src;
    return 0;
fail:
    sl_filesrc_close(src);
    return rc;
}

void sl_filesrc_close(struct sl_filesrc *src)
{
    if (!src)
        return;
    close_file(src);
    for (size_t i = 0; i < src->nfiles; i++)
        free((char *)src->files[i].path);
    free(src->files);
    free(src->buf);
    free(src->flds);
    sl_buf_free(&src->scratch);
    free(src);
}
