/* Offline segment files: see segment.h for the API and segment.md for the on-disk format.
 *
 * A view directory holds at most one active segment being appended to (`active-G.log`,
 * generation G) and sealed segments (`sealed-L-H.sst`) each covering the generations L..H of
 * the active segments whose records it holds. Every change to the set of files is a new file
 * written under a `.tmp` name, fdatasynced, renamed into place and made durable with a
 * directory fsync, and only then are the files it replaces removed. Recovery on open undoes a
 * crash anywhere in that sequence: `.tmp` files are dropped, and a file whose generations are
 * all covered by a sealed file is redundant and removed. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif

#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"

#define DEF_SEAL_BYTES (UINT64_C(64) << 20)
#define DEF_SEAL_AGE_NS (INT64_C(3600) * INT64_C(1000000000))
#define DEF_BLOCK_BYTES (64u << 10)
#define DEF_COMPACT_MIN 4u
#define DEF_COMPACT_MAX (UINT64_C(512) << 20)

#define FORMAT_VERSION 1u
#define LOG_HDR 40u   /* active file header */
#define LOG_REC_HDR 8u /* body length, CRC */
#define SST_HDR 16u   /* sealed file header */
#define SST_FOOTER 96u
#define IDX_FIXED 40u /* index entry without its key */
#define BODY_FIXED 20u /* seq, time, key length */
#define MAX_BODY (BODY_FIXED + SL_SEGMENT_MAX_KEY + SL_SEGMENT_MAX_PAYLOAD)
#define NAME_MAX_LEN 64

static const char LOG_MAGIC[8] = {'S', 'L', 'S', 'E', 'G', 'L', 'O', 'G'};
static const char SST_MAGIC[8] = {'S', 'L', 'S', 'E', 'G', 'S', 'S', 'T'};
static const char END_MAGIC[8] = {'S', 'L', 'S', 'E', 'G', 'E', 'N', 'D'};

/* ---- CRC-32C, slicing by 8 ------------------------------------------------------------ */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            crc_tab[k][i] = (crc_tab[k - 1][i] >> 8) ^ crc_tab[0][crc_tab[k - 1][i] & 0xff];
}

uint32_t sl_segment_crc32c(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;

    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
              crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^
              crc_tab[2][(hi >> 8) & 0xff] ^ crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- little-endian fields and records ------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* A decoded record; pointers into a buffer owned by someone else. */
struct rec {
    const unsigned char *key;
    const unsigned char *pay;
    uint32_t klen;
    uint32_t plen;
    int64_t t;
    uint64_t seq;
};

/* Record body: seq u64 | time i64 | key_len u32 | key | payload. */
static size_t body_size(const struct rec *r)
{
    return BODY_FIXED + (size_t)r->klen + r->plen;
}

static void put_body(unsigned char *p, const struct rec *r)
{
    put64(p, r->seq);
    put64(p + 8, (uint64_t)r->t);
    put32(p + 16, r->klen);
    if (r->klen > 0)
        memcpy(p + BODY_FIXED, r->key, r->klen);
    if (r->plen > 0)
        memcpy(p + BODY_FIXED + r->klen, r->pay, r->plen);
}

/* Decodes a body of exactly n bytes. Returns 0, or -1 if it is malformed. */
static int parse_body(const unsigned char *p, size_t n, struct rec *r)
{
    if (n < BODY_FIXED || n > MAX_BODY)
        return -1;
    r->seq = get64(p);
    r->t = (int64_t)get64(p + 8);
    r->klen = get32(p + 16);
    if (r->klen > SL_SEGMENT_MAX_KEY || r->klen > n - BODY_FIXED)
        return -1;
    r->plen = (uint32_t)(n - BODY_FIXED - r->klen);
    if (r->plen > SL_SEGMENT_MAX_PAYLOAD)
        return -1;
    r->key = p + BODY_FIXED;
    r->pay = r->key + r->klen;
    return 0;
}

static int cmp_key(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n > 0 ? memcmp(a, b, n) : 0;

    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int cmp_rec(const struct rec *a, const struct rec *b)
{
    int c = cmp_key(a->key, a->klen, b->key, b->klen);

    if (c != 0)
        return c;
    if (a->t != b->t)
        return a->t < b->t ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

/* qsort order for records of one buffer: ties keep file order (key pointers grow with it). */
static int cmp_rec_q(const void *pa, const void *pb)
{
    const struct rec *a = pa, *b = pb;
    int c = cmp_rec(a, b);

    if (c != 0)
        return c;
    return a->key < b->key ? -1 : a->key > b->key;
}

/* ---- system call helpers ---------------------------------------------------------------- */

static int sys_err(struct sl_error *err, int e, const char *what, const char *path)
{
    return sl_error_set(err, e == ENOMEM ? SL_ENOMEM : SL_EIO, "segment: %s %s: %s", what, path,
                        strerror(e));
}

static int pread_full(int fd, void *buf, size_t n, uint64_t off, const char *path,
                      struct sl_error *err)
{
    unsigned char *p = buf;

    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return sys_err(err, errno, "read", path);
        }
        if (r == 0)
            return sl_error_set(err, SL_ECORRUPT,
                                "segment: %s: unexpected end of file at offset %" PRIu64, path,
                                off);
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int pwrite_full(int fd, const void *buf, size_t n, uint64_t off, const char *path,
                       struct sl_error *err)
{
    const unsigned char *p = buf;

    while (n > 0) {
        ssize_t r = pwrite(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return sys_err(err, errno, "write", path);
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int fsync_dir(const char *dir, struct sl_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return sys_err(err, errno, "open directory", dir);
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return sys_err(err, e, "fsync directory", dir);
    }
    close(fd);
    return 0;
}

/* Reads [0, len) of fd into a new buffer (caller frees). */
static int read_all(int fd, uint64_t len, const char *path, unsigned char **out,
                    struct sl_error *err)
{
    unsigned char *p;
    int rc;

    *out = NULL;
    if (len > SIZE_MAX - 1)
        return sl_error_set(err, SL_ETOOBIG, "segment: %s: too large to read", path);
    p = malloc(len > 0 ? (size_t)len : 1);
    if (p == NULL)
        return sl_error_set(err, SL_ENOMEM, "segment: %s: out of memory reading %" PRIu64
                            " bytes", path, len);
    rc = pread_full(fd, p, (size_t)len, 0, path, err);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static int64_t realtime_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

/* ---- file names -------------------------------------------------------------------------- */

enum { F_ACTIVE = 1, F_SEALED = 2, F_TMP = 3 };

static void name_active(char *out, uint64_t gen)
{
    snprintf(out, NAME_MAX_LEN, "active-%016" PRIx64 ".log", gen);
}

static void name_sealed(char *out, uint64_t lo, uint64_t hi)
{
    snprintf(out, NAME_MAX_LEN, "sealed-%016" PRIx64 "-%016" PRIx64 ".sst", lo, hi);
}

static int parse_hex16(const char *s, uint64_t *v)
{
    *v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

/* Classifies a directory entry: F_ACTIVE, F_SEALED, F_TMP or 0 (not ours). */
static int parse_name(const char *name, uint64_t *lo, uint64_t *hi)
{
    size_t n = strlen(name);

    if (n > 4 && strcmp(name + n - 4, ".tmp") == 0)
        return (strncmp(name, "active-", 7) == 0 || strncmp(name, "sealed-", 7) == 0) ? F_TMP
                                                                                        : 0;
    if (n == 7 + 16 + 4 && strncmp(name, "active-", 7) == 0 && strcmp(name + 23, ".log") == 0 &&
        parse_hex16(name + 7, lo) == 0) {
        *hi = *lo;
        return F_ACTIVE;
    }
    if (n == 7 + 16 + 1 + 16 + 4 && strncmp(name, "sealed-", 7) == 0 && name[23] == '-' &&
        strcmp(name + 40, ".sst") == 0 && parse_hex16(name + 7, lo) == 0 &&
        parse_hex16(name + 24, hi) == 0 && *lo <= *hi)
        return F_SEALED;
    return 0;
}

/* ---- the handle ----------------------------------------------------------------------------- */

/* One file of the view as the handle knows it. */
struct seg_file {
    int kind;          /* F_ACTIVE or F_SEALED */
    uint64_t lo, hi;   /* generations covered (lo == hi for an active file) */
    uint64_t size;     /* sealed: file size; active: durable length */
    uint64_t nrecords;
    uint64_t max_seq;  /* meaningful when nrecords > 0 */
};

struct sl_segment {
    char *dir;
    struct sl_segment_opts o;
    int rdonly;
    int lock_fd;

    pthread_mutex_t mu;
    int mu_init;
    /* under mu: the files iterators see, sorted by lo (the writer's active file is last) */
    struct seg_file *files;
    size_t nfiles, cap;
    int compacting;

    /* writer thread only */
    int active_fd; /* -1: no active file; the next sync creates one */
    uint64_t active_gen;
    uint64_t active_size; /* durable length */
    uint64_t active_records;
    int64_t active_created_ns;
    uint64_t next_gen;
    struct sl_buf pend;
    uint64_t pend_max_seq;
    int64_t pend_created_ns;
    _Atomic int failed; /* set once, by poison(), from the writer or the compacting thread */
    char fail_msg[sizeof(((struct sl_error *)0)->msg)]; /* under mu */
    /* mirrors of the pending counters for sl_segment_stats */
    _Atomic uint64_t pend_bytes_pub, pend_records_pub;
};

/* snprintf into a PATH_MAX buffer; sl_segment_open bounds every path built here. */
static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
}

static void path_of(char *out, const char *dir, const char *name)
{
    pathf(out, "%s/%s", dir, name);
}

static void file_path(char *out, const char *dir, const struct seg_file *f)
{
    char name[NAME_MAX_LEN];

    if (f->kind == F_ACTIVE)
        name_active(name, f->lo);
    else
        name_sealed(name, f->lo, f->hi);
    path_of(out, dir, name);
}

/* Makes room for `extra` more entries so a later insert cannot fail. Under mu. */
static int files_reserve(struct sl_segment *seg, size_t extra, struct sl_error *err)
{
    struct seg_file *p;
    size_t cap;

    if (seg->nfiles + extra <= seg->cap)
        return 0;
    cap = seg->cap ? seg->cap * 2 : 16;
    while (cap < seg->nfiles + extra)
        cap *= 2;
    p = realloc(seg->files, cap * sizeof(*p));
    if (p == NULL)
        return sl_error_set(err, SL_ENOMEM, "segment %s: out of memory", seg->dir);
    seg->files = p;
    seg->cap = cap;
    return 0;
}

/* Inserts keeping the order by lo; room must have been reserved. Under mu. */
static void files_insert(struct sl_segment *seg, const struct seg_file *f)
{
    size_t i = seg->nfiles;

    while (i > 0 && seg->files[i - 1].lo > f->lo)
        i--;
    memmove(&seg->files[i + 1], &seg->files[i], (seg->nfiles - i) * sizeof(*f));
    seg->files[i] = *f;
    seg->nfiles++;
}

static struct seg_file *files_find(struct sl_segment *seg, int kind, uint64_t lo)
{
    for (size_t i = 0; i < seg->nfiles; i++)
        if (seg->files[i].kind == kind && seg->files[i].lo == lo)
            return &seg->files[i];
    return NULL;
}

static void files_remove(struct sl_segment *seg, struct seg_file *f)
{
    size_t i = (size_t)(f - seg->files);

    memmove(&seg->files[i], &seg->files[i + 1], (seg->nfiles - i - 1) * sizeof(*f));
    seg->nfiles--;
}

static int check_writable(struct sl_segment *seg, struct sl_error *err)
{
    char msg[sizeof(seg->fail_msg)];

    if (seg->rdonly)
        return sl_error_set(err, SL_EINVAL, "segment %s: opened read-only", seg->dir);
    if (seg->failed) {
        pthread_mutex_lock(&seg->mu);
        memcpy(msg, seg->fail_msg, sizeof(msg));
        pthread_mutex_unlock(&seg->mu);
        return sl_error_set(err, SL_EIO, "segment %s: unusable after an earlier failure (%s); "
                            "reopen it", seg->dir, msg);
    }
    return 0;
}

/* Marks the handle unusable: the files on disk may no longer match what it knows, and only
 * the recovery of a reopen can reconcile them. Returns rc. */
static int poison(struct sl_segment *seg, struct sl_error *err, int rc)
{
    pthread_mutex_lock(&seg->mu);
    if (!seg->failed)
        snprintf(seg->fail_msg, sizeof(seg->fail_msg), "%s", err ? err->msg : "I/O error");
    seg->failed = rc;
    pthread_mutex_unlock(&seg->mu);
    return rc;
}

/* ---- active segments ------------------------------------------------------------------------ */

static void log_header(unsigned char *h, uint64_t gen, int64_t created_ns)
{
    memset(h, 0, LOG_HDR);
    memcpy(h, LOG_MAGIC, 8);
    put32(h + 8, FORMAT_VERSION);
    put64(h + 16, gen);
    put64(h + 24, (uint64_t)created_ns);
    put32(h + 36, sl_segment_crc32c(0, h, 36));
}

static int log_check_header(const unsigned char *h, uint64_t gen, int64_t *created_ns,
                            const char *path, struct sl_error *err)
{
    if (memcmp(h, LOG_MAGIC, 8) != 0)
        return sl_error_set(err, SL_ECORRUPT, "segment: %s: bad magic in header", path);
    if (get32(h + 36) != sl_segment_crc32c(0, h, 36))
        return sl_error_set(err, SL_ECORRUPT, "segment: %s: header checksum mismatch", path);
    if (get32(h + 8) != FORMAT_VERSION)
        return sl_error_set(err, SL_ECORRUPT, "segment: %s: unsupported version %" PRIu32, path,
                            get32(h + 8));
    if (get64(h + 16) != gen)
        return sl_error_set(err, SL_ECORRUPT, "segment: %s: header generation %" PRIu64
                            " does not match the file name", path, get64(h + 16));
    *created_ns = (int64_t)get64(h + 24);
    return 0;
}

struct log_scan {
    uint64_t valid_len; /* end of the last good record */
    uint64_t nrecords;
    uint64_t max_seq;
    const char *reason; /* why the scan stopped before the end; NULL if it did not */
};

/* Walks the records of an active file image p[0..n) (header already checked), stopping at the
 * first incomplete or bad one. Appends each good record to *refs when refs is not NULL.
 * Returns 0 or SL_ENOMEM. */
static int log_scan(const unsigned char *p, size_t n, struct log_scan *s, struct rec **refs,
                    size_t *nrefs)
{
    size_t off = LOG_HDR, cap = 0;

    memset(s, 0, sizeof(*s));
    s->valid_len = LOG_HDR;
    while (off < n) {
        struct rec r;
        uint32_t blen, crc;

        if (n - off < LOG_REC_HDR) {
            s->reason = "incomplete record header";
            break;
        }
        blen = get32(p + off);
        if (blen < BODY_FIXED || blen > MAX_BODY) {
            s->reason = "bad record length";
            break;
        }
        if (n - off - LOG_REC_HDR < blen) {
            s->reason = "incomplete record";
            break;
        }
        crc = sl_segment_crc32c(sl_segment_crc32c(0, p + off, 4), p + off + LOG_REC_HDR, blen);
        if (crc != get32(p + off + 4)) {
            s->reason = "checksum mismatch";
            break;
        }
        if (parse_body(p + off + LOG_REC_HDR, blen, &r) != 0) {
            s->reason = "malformed record";
            break;
        }
        if (refs != NULL) {
            if (*nrefs == cap) {
                size_t ncap = cap ? cap * 2 : 1024;
                struct rec *q = realloc(*refs, ncap * sizeof(*q));
                if (q == NULL)
                    return SL_ENOMEM;
                *refs = q;
                cap = ncap;
            }
            (*refs)[(*nrefs)++] = r;
        }
        if (s->nrecords == 0 || r.seq > s->max_seq)
            s->max_seq = r.seq;
        s->nrecords++;
        off += LOG_REC_HDR + blen;
        s->valid_len = off;
    }
    return 0;
}

/* ---- sealed segments: reading the footer and index ---------------------------------------- */

struct sst_ent {
    uint64_t off;
    uint32_t len, crc, nrec, klen;
    int64_t tmin, tmax;
    const unsigned char *key;
};

struct sst_info {
    uint64_t size, nrecords, min_seq, max_seq, lo, hi;
    int64_t tmin, tmax;
    uint32_t nblocks;
};

struct sst_reader {
    struct sst_info info;
    unsigned char *ix;
    struct sst_ent *ents;
};

static void sst_reader_free(struct sst_reader *r)
{
    free(r->ix);
    free(r->ents);
    r->ix = NULL;
    r->ents = NULL;
}

/* Reads and checks the header, footer and index of the sealed file open on fd. */
static int sst_load(int fd, const char *path, struct sst_reader *r, struct sl_error *err)
{
    unsigned char h[SST_HDR], f[SST_FOOTER];
    struct stat st;
    uint64_t ixoff, ixlen, pos = SST_HDR, total = 0;
    const unsigned char *q, *end;
    int rc;

    memset(r, 0, sizeof(*r));
    if (fstat(fd, &st) != 0)
        return sys_err(err, errno, "stat", path);
    r->info.size = (uint64_t)st.st_size;
    if (r->info.size < SST_HDR + SST_FOOTER)
        return sl_error_set(err, SL_ECORRUPT, "segment: %s: too short for a sealed segment "
                            "(%" PRIu64 " bytes)", path, r->info.size);
    if ((rc = pread_full(fd, h, SST_HDR, 0, path, err)) != 0 ||
        (rc = pread_full(fd, f, SST_FOOTER, r->info.size - SST_FOOTER, path, err)) != 0)
        return rc;
    if (memcmp(h, SST_MAGIC, 8) != 0 || get32(h + 12) != sl_segment_crc32c(0, h, 12))
        return sl_error_set(err, SL_ECORRUPT, "segment: %s: bad header", path);
    if (memcmp(f + 88, END_MAGIC, 8) != 0)
        return sl_error_set(err, SL_ECORRUPT, "segment: %s: footer magic missing", path);
    if (get32(f + 84) != sl_segment_crc32c(0, f, 84))
        return sl_error_set(err, SL_ECORRUPT, "segment: %s: footer checksum mismatch", path);
    if (get32(h + 8) != FORMAT_VERSION || get32(f + 80) != FORMAT_VERSION)
        return sl_error_set(err, SL_ECORRUPT, "segment: %s: unsupported version", path);
    ixoff = get64(f);
    ixlen = get64(f + 8);
    r->info.nblocks = get32(f + 20);
    r->info.nrecords = get64(f + 24);
    r->info.min_seq = get64(f + 32);
    r->info.max_seq = get64(f + 40);
    r->info.tmin = (int64_t)get64(f + 48);
    r->info.tmax = (int64_t)get64(f + 56);
    r->info.lo = get64(f + 64);
    r->info.hi = get64(f + 72);
    if (ixoff < SST_HDR || ixoff > r->info.size || ixlen != r->info.size - SST_FOOTER - ixoff ||
        ixlen > SIZE_MAX || (uint64_t)r->info.nblocks > ixlen / IDX_FIXED)
        return sl_error_set(err, SL_ECORRUPT, "segment: %s: footer index bounds are wrong", path);
    r->ix = malloc(ixlen > 0 ? (size_t)ixlen : 1);
    r->ents = calloc(r->info.nblocks > 0 ? r->info.nblocks : 1, sizeof(*r->ents));
    if (r->ix == NULL || r->ents == NULL) {
        sst_reader_free(r);
        return sl_error_set(err, SL_ENOMEM, "segment: %s: out of memory for the index", path);
    }
    if ((rc = pread_full(fd, r->ix, (size_t)ixlen, ixoff, path, err)) != 0)
        goto fail;
    if (sl_segment_crc32c(0, r->ix, (size_t)ixlen) != get32(f + 16)) {
        rc = sl_error_set(err, SL_ECORRUPT, "segment: %s: index checksum mismatch", path);
        goto fail;
    }
    q = r->ix;
    end = r->ix + ixlen;
    for (uint32_t i = 0; i < r->info.nblocks; i++) {
        struct sst_ent *e = &r->ents[i];
        if ((size_t)(end - q) < IDX_FIXED)
            goto bad_index;
        e->off = get64(q);
        e->len = get32(q + 8);
        e->crc = get32(q + 12);
        e->nrec = get32(q + 16);
        e->tmin = (int64_t)get64(q + 20);
        e->tmax = (int64_t)get64(q + 28);
        e->klen = get32(q + 36);
        q += IDX_FIXED;
        if (e->klen > SL_SEGMENT_MAX_KEY || (size_t)(end - q) < e->klen)
            goto bad_index;
        e->key = q;
        q += e->klen;
        if (e->off != pos || e->len == 0 || e->len > ixoff - pos || e->nrec == 0 ||
            e->tmin > e->tmax ||
            (i > 0 && cmp_key(r->ents[i - 1].key, r->ents[i - 1].klen, e->key, e->klen) > 0))
            goto bad_index;
        pos += e->len;
        total += e->nrec;
    }
    if (q != end || pos != ixoff || total != r->info.nrecords)
        goto bad_index;
    return 0;
bad_index:
    rc = sl_error_set(err, SL_ECORRUPT, "segment: %s: index is inconsistent", path);
fail:
    sst_reader_free(r);
    return rc;
}

/* ---- sealed segments: writing ---------------------------------------------------------------- */

struct sst_writer {
    int fd;
    char tmp[PATH_MAX];
    char path[PATH_MAX];
    uint32_t target;
    uint64_t off;
    struct sl_buf blk, ix;
    int renamed; /* the file is in place; a failure after this leaves it there */
    uint32_t bn;
    int64_t btmin, btmax;
    struct sst_info info;
};

static int sstw_begin(struct sst_writer *w, const char *dir, uint64_t lo, uint64_t hi,
                      uint32_t target, struct sl_error *err)
{
    char name[NAME_MAX_LEN];
    unsigned char h[SST_HDR];

    memset(w, 0, sizeof(*w));
    w->fd = -1;
    w->target = target;
    name_sealed(name, lo, hi);
    path_of(w->path, dir, name);
    pathf(w->tmp, "%s.tmp", w->path);
    w->info.lo = lo;
    w->info.hi = hi;
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0)
        return sys_err(err, errno, "create", w->tmp);
    memcpy(h, SST_MAGIC, 8);
    put32(h + 8, FORMAT_VERSION);
    put32(h + 12, sl_segment_crc32c(0, h, 12));
    w->off = SST_HDR;
    return pwrite_full(w->fd, h, SST_HDR, 0, w->tmp, err);
}

static int sstw_flush(struct sst_writer *w, struct sl_error *err)
{
    unsigned char e[IDX_FIXED];
    const unsigned char *b = (const unsigned char *)w->blk.p;
    uint32_t klen;
    int rc;

    if (w->blk.len == 0)
        return 0;
    if (w->blk.oom || w->ix.oom)
        return sl_error_set(err, SL_ENOMEM, "segment: %s: out of memory", w->tmp);
    klen = get32(b + 4 + 16);
    put64(e, w->off);
    put32(e + 8, (uint32_t)w->blk.len);
    put32(e + 12, sl_segment_crc32c(0, b, w->blk.len));
    put32(e + 16, w->bn);
    put64(e + 20, (uint64_t)w->btmin);
    put64(e + 28, (uint64_t)w->btmax);
    put32(e + 36, klen);
    sl_buf_append(&w->ix, e, IDX_FIXED);
    sl_buf_append(&w->ix, b + 4 + BODY_FIXED, klen);
    if (w->ix.oom)
        return sl_error_set(err, SL_ENOMEM, "segment: %s: out of memory", w->tmp);
    if ((rc = pwrite_full(w->fd, b, w->blk.len, w->off, w->tmp, err)) != 0)
        return rc;
    w->off += w->blk.len;
    w->info.nblocks++;
    sl_buf_reset(&w->blk);
    w->bn = 0;
    return 0;
}

/* Adds a record; records must come in (key, time, seq) order. */
static int sstw_add(struct sst_writer *w, const struct rec *r, struct sl_error *err)
{
    size_t n = body_size(r);
    int rc;

    if (w->blk.len > 0 && w->blk.len + 4 + n > w->target && (rc = sstw_flush(w, err)) != 0)
        return rc;
    if (sl_buf_reserve(&w->blk, 4 + n) != 0)
        return sl_error_set(err, SL_ENOMEM, "segment: %s: out of memory", w->tmp);
    put32((unsigned char *)w->blk.p + w->blk.len, (uint32_t)n);
    put_body((unsigned char *)w->blk.p + w->blk.len + 4, r);
    w->blk.len += 4 + n;
    if (w->bn == 0 || r->t < w->btmin)
        w->btmin = r->t;
    if (w->bn == 0 || r->t > w->btmax)
        w->btmax = r->t;
    w->bn++;
    if (w->info.nrecords == 0) {
        w->info.min_seq = w->info.max_seq = r->seq;
        w->info.tmin = w->info.tmax = r->t;
    }
    if (r->seq < w->info.min_seq)
        w->info.min_seq = r->seq;
    if (r->seq > w->info.max_seq)
        w->info.max_seq = r->seq;
    if (r->t < w->info.tmin)
        w->info.tmin = r->t;
    if (r->t > w->info.tmax)
        w->info.tmax = r->t;
    w->info.nrecords++;
    return 0;
}

static void sstw_abort(struct sst_writer *w)
{
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->tmp);
        w->fd = -1;
    }
    sl_buf_free(&w->blk);
    sl_buf_free(&w->ix);
}

/* Writes the index and footer, makes the file durable and renames it into place. */
static int sstw_finish(struct sst_writer *w, const char *dir, struct sl_error *err)
{
    unsigned char f[SST_FOOTER];
    uint64_t ixoff;
    int rc;

    if ((rc = sstw_flush(w, err)) != 0)
        return rc;
    ixoff = w->off;
    put64(f, ixoff);
    put64(f + 8, w->ix.len);
    put32(f + 16, sl_segment_crc32c(0, w->ix.p, w->ix.len));
    put32(f + 20, w->info.nblocks);
    put64(f + 24, w->info.nrecords);
    put64(f + 32, w->info.min_seq);
    put64(f + 40, w->info.max_seq);
    put64(f + 48, (uint64_t)w->info.tmin);
    put64(f + 56, (uint64_t)w->info.tmax);
    put64(f + 64, w->info.lo);
    put64(f + 72, w->info.hi);
    put32(f + 80, FORMAT_VERSION);
    put32(f + 84, sl_segment_crc32c(0, f, 84));
    memcpy(f + 88, END_MAGIC, 8);
    if ((rc = pwrite_full(w->fd, w->ix.p, w->ix.len, ixoff, w->tmp, err)) != 0 ||
        (rc = pwrite_full(w->fd, f, SST_FOOTER, ixoff + w->ix.len, w->tmp, err)) != 0)
        return rc;
    w->info.size = ixoff + w->ix.len + SST_FOOTER;
    if (fdatasync(w->fd) != 0)
        return sys_err(err, errno, "fdatasync", w->tmp);
    if (close(w->fd) != 0) {
        w->fd = -1;
        unlink(w->tmp);
        return sys_err(err, errno, "close", w->tmp);
    }
    w->fd = -1;
    if (rename(w->tmp, w->path) != 0) {
        rc = sys_err(err, errno, "rename", w->tmp);
        unlink(w->tmp);
        return rc;
    }
    w->renamed = 1;
    sl_buf_free(&w->blk);
    sl_buf_free(&w->ix);
    return fsync_dir(dir, err);
}

/* Sorts the active file `gen` (its first len bytes) into sealed-gen-gen.sst. Returns 1 and
 * fills *out, 0 if it holds no records (nothing written), or a negative SL_E*; then *renamed
 * tells whether the sealed file may nevertheless be in place. */
static int seal_file(const char *dir, uint64_t gen, uint64_t len, uint32_t block_bytes,
                     struct seg_file *out, int *renamed, struct sl_error *err)
{
    char name[NAME_MAX_LEN], path[PATH_MAX];
    unsigned char *img = NULL;
    struct rec *refs = NULL;
    size_t nrefs = 0;
    struct log_scan s;
    struct sst_writer w;
    int64_t created;
    int fd, rc;

    memset(&w, 0, sizeof(w));
    w.fd = -1;
    *renamed = 0;
    name_active(name, gen);
    path_of(path, dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sys_err(err, errno, "open", path);
    rc = read_all(fd, len, path, &img, err);
    close(fd);
    if (rc != 0)
        return rc;
    if (len < LOG_HDR) {
        rc = sl_error_set(err, SL_ECORRUPT, "segment: %s: shorter than its header", path);
        goto done;
    }
    if ((rc = log_check_header(img, gen, &created, path, err)) != 0)
        goto done;
    if (log_scan(img, (size_t)len, &s, &refs, &nrefs) != 0) {
        rc = sl_error_set(err, SL_ENOMEM, "segment: %s: out of memory sorting", path);
        goto done;
    }
    if (s.valid_len != len) {
        rc = sl_error_set(err, SL_ECORRUPT, "segment: %s: record at offset %" PRIu64
                          " changed since it was written (%s)", path, s.valid_len, s.reason);
        goto done;
    }
    if (nrefs == 0) {
        rc = 0;
        goto done;
    }
    qsort(refs, nrefs, sizeof(*refs), cmp_rec_q);
    if ((rc = sstw_begin(&w, dir, gen, gen, block_bytes, err)) != 0)
        goto done;
    for (size_t i = 0; i < nrefs; i++)
        if ((rc = sstw_add(&w, &refs[i], err)) != 0)
            goto done;
    rc = sstw_finish(&w, dir, err);
    *renamed = w.renamed;
    if (rc != 0)
        goto done;
    memset(out, 0, sizeof(*out));
    out->kind = F_SEALED;
    out->lo = out->hi = gen;
    out->size = w.info.size;
    out->nrecords = w.info.nrecords;
    out->max_seq = w.info.max_seq;
    rc = 1;
done:
    sstw_abort(&w);
    free(refs);
    free(img);
    return rc;
}

/* ---- open and recovery -------------------------------------------------------------------- */

static int plain_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    return n > 0 && n <= 255 && strchr(s, '/') == NULL && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

/* Creates dir if missing and makes its entry durable in the parent. */
static int mkdir_durable(const char *parent, const char *dir, struct sl_error *err)
{
    struct stat st;

    if (mkdir(dir, 0755) == 0)
        return fsync_dir(parent, err);
    if (errno != EEXIST)
        return sys_err(err, errno, "mkdir", dir);
    if (stat(dir, &st) != 0)
        return sys_err(err, errno, "stat", dir);
    if (!S_ISDIR(st.st_mode))
        return sl_error_set(err, SL_EIO, "segment: %s exists and is not a directory", dir);
    return 0;
}

struct cand {
    int kind;
    uint64_t lo, hi;
    int drop;
    struct seg_file f;
};

static void rec_note(struct sl_segment_recovery *rec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void rec_note(struct sl_segment_recovery *rec, const char *fmt, ...)
{
    size_t n = strlen(rec->msg);
    va_list ap;

    if (n + 2 >= sizeof(rec->msg))
        return;
    if (n > 0) {
        rec->msg[n++] = ';';
        rec->msg[n++] = ' ';
        rec->msg[n] = '\0';
    }
    va_start(ap, fmt);
    vsnprintf(rec->msg + n, sizeof(rec->msg) - n, fmt, ap);
    va_end(ap);
}

static int cmp_cand(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;

    if (a->lo != b->lo)
        return a->lo < b->lo ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind == F_SEALED ? -1 : 1;
    return a->hi > b->hi ? -1 : a->hi < b->hi;
}

/* Checks one sealed file found on open. */
static int open_sealed(struct sl_segment *seg, struct cand *c, struct sl_error *err)
{
    char name[NAME_MAX_LEN], path[PATH_MAX];
    struct sst_reader r;
    int fd, rc;

    name_sealed(name, c->lo, c->hi);
    path_of(path, seg->dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sys_err(err, errno, "open", path);
    rc = sst_load(fd, path, &r, err);
    close(fd);
    if (rc != 0)
        return rc;
    if (r.info.lo != c->lo || r.info.hi != c->hi) {
        sst_reader_free(&r);
        return sl_error_set(err, SL_ECORRUPT, "segment: %s: footer generations do not match "
                            "the file name", path);
    }
    c->f.kind = F_SEALED;
    c->f.lo = c->lo;
    c->f.hi = c->hi;
    c->f.size = r.info.size;
    c->f.nrecords = r.info.nrecords;
    c->f.max_seq = r.info.max_seq;
    sst_reader_free(&r);
    return 0;
}

/* Scans one active file found on open and cuts a bad tail (unless read-only). Sets c->drop
 * when nothing usable is left in a writable directory. */
static int open_active(struct sl_segment *seg, struct cand *c, struct sl_segment_recovery *rec,
                       int *changed, struct sl_error *err)
{
    char name[NAME_MAX_LEN], path[PATH_MAX];
    unsigned char *img = NULL;
    struct log_scan s;
    struct stat st;
    int64_t created = 0;
    int fd, rc;

    name_active(name, c->lo);
    path_of(path, seg->dir, name);
    fd = open(path, (seg->rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return sys_err(err, errno, "open", path);
    if (fstat(fd, &st) != 0) {
        rc = sys_err(err, errno, "stat", path);
        goto done;
    }
    if ((rc = read_all(fd, (uint64_t)st.st_size, path, &img, err)) != 0)
        goto done;
    if ((uint64_t)st.st_size < LOG_HDR) {
        /* Active files appear by rename after their header is durable, so this is not a
         * torn append; with no record possible in it there is nothing to keep either. */
        rec_note(rec, "%s: %lld bytes, shorter than a header; ignored", name,
                 (long long)st.st_size);
        c->drop = 1;
        goto done;
    }
    if ((rc = log_check_header(img, c->lo, &created, path, err)) != 0)
        goto done;
    if ((rc = log_scan(img, (size_t)st.st_size, &s, NULL, NULL)) != 0) {
        rc = sl_error_set(err, SL_ENOMEM, "segment: %s: out of memory", path);
        goto done;
    }
    if (s.valid_len < (uint64_t)st.st_size) {
        uint64_t cut = (uint64_t)st.st_size - s.valid_len;
        rec->truncated_files++;
        rec->truncated_bytes += cut;
        rec->truncated_at = s.valid_len;
        rec_note(rec, "%s: %s %" PRIu64 " bytes at offset %" PRIu64 " (%s), %" PRIu64
                 " records kept", name, seg->rdonly ? "skipped" : "cut", cut, s.valid_len,
                 s.reason, s.nrecords);
        if (!seg->rdonly) {
            if (ftruncate(fd, (off_t)s.valid_len) != 0) {
                rc = sys_err(err, errno, "truncate", path);
                goto done;
            }
            if (fdatasync(fd) != 0) {
                rc = sys_err(err, errno, "fdatasync", path);
                goto done;
            }
            *changed = 1;
        }
    }
    rec->active_records += s.nrecords;
    c->f.kind = F_ACTIVE;
    c->f.lo = c->f.hi = c->lo;
    c->f.size = s.valid_len;
    c->f.nrecords = s.nrecords;
    c->f.max_seq = s.max_seq;
    if (s.nrecords == 0)
        c->drop = 1;
    seg->active_created_ns = created;
done:
    free(img);
    close(fd);
    return rc;
}

static int remove_file(struct sl_segment *seg, const char *name, struct sl_error *err)
{
    char path[PATH_MAX];

    path_of(path, seg->dir, name);
    if (unlink(path) != 0 && errno != ENOENT)
        return sys_err(err, errno, "unlink", path);
    return 0;
}

static int recover(struct sl_segment *seg, struct sl_segment_recovery *rec, struct sl_error *err)
{
    struct cand *cs = NULL;
    size_t n = 0, cap = 0, nactive = 0;
    uint64_t maxgen = 0;
    struct dirent *de;
    int changed = 0, rc = 0;
    DIR *d;
    char name[NAME_MAX_LEN];

    d = opendir(seg->dir);
    if (d == NULL)
        return sys_err(err, errno, "open directory", seg->dir);
    while ((errno = 0, de = readdir(d)) != NULL) {
        uint64_t lo = 0, hi = 0;
        int kind = parse_name(de->d_name, &lo, &hi);
        if (kind == 0)
            continue;
        if (kind == F_TMP) {
            if (!seg->rdonly) {
                if ((rc = remove_file(seg, de->d_name, err)) != 0)
                    goto done;
                rec->removed_tmp++;
                changed = 1;
            }
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct cand *q = realloc(cs, ncap * sizeof(*q));
            if (q == NULL) {
                rc = sl_error_set(err, SL_ENOMEM, "segment %s: out of memory", seg->dir);
                goto done;
            }
            cs = q;
            cap = ncap;
        }
        memset(&cs[n], 0, sizeof(cs[n]));
        cs[n].kind = kind;
        cs[n].lo = lo;
        cs[n].hi = hi;
        n++;
        if (hi > maxgen)
            maxgen = hi;
    }
    if (errno != 0) {
        rc = sys_err(err, errno, "read directory", seg->dir);
        goto done;
    }
    if (rec->removed_tmp > 0)
        rec_note(rec, "removed %u temporary file(s)", rec->removed_tmp);
    if (n > 0)
        qsort(cs, n, sizeof(*cs), cmp_cand);

    /* Sealed files first: every footer must check out. */
    for (size_t i = 0; i < n; i++)
        if (cs[i].kind == F_SEALED && (rc = open_sealed(seg, &cs[i], err)) != 0)
            goto done;

    /* A file whose generations a sealed file covers is redundant: the sealed file was made
     * from it and the crash came before its removal. Partial overlap cannot happen. */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n && !cs[i].drop; j++) {
            if (i == j || cs[j].kind != F_SEALED || cs[j].drop)
                continue;
            if (cs[j].lo <= cs[i].lo && cs[i].hi <= cs[j].hi) {
                cs[i].drop = 2;
            } else if (cs[i].kind == F_SEALED && cs[j].lo <= cs[i].hi && cs[i].lo <= cs[j].hi &&
                       !(cs[i].lo <= cs[j].lo && cs[j].hi <= cs[i].hi)) {
                char a[NAME_MAX_LEN], b[NAME_MAX_LEN];
                name_sealed(a, cs[i].lo, cs[i].hi);
                name_sealed(b, cs[j].lo, cs[j].hi);
                rc = sl_error_set(err, SL_ECORRUPT, "segment %s: %s and %s overlap", seg->dir,
                                  a, b);
                goto done;
            }
        }
        if (cs[i].drop == 2) {
            if (cs[i].kind == F_ACTIVE)
                name_active(name, cs[i].lo);
            else
                name_sealed(name, cs[i].lo, cs[i].hi);
            if (!seg->rdonly) {
                if ((rc = remove_file(seg, name, err)) != 0)
                    goto done;
                changed = 1;
            }
            rec->removed_superseded++;
            rec_note(rec, "%s %s: already in a sealed segment", seg->rdonly ? "ignored" : "removed",
                     name);
        }
    }

    for (size_t i = 0; i < n; i++) {
        if (cs[i].kind != F_ACTIVE || cs[i].drop)
            continue;
        if ((rc = open_active(seg, &cs[i], rec, &changed, err)) != 0)
            goto done;
        if (!cs[i].drop)
            nactive++;
        else if (!seg->rdonly) {
            name_active(name, cs[i].lo);
            if ((rc = remove_file(seg, name, err)) != 0)
                goto done;
            changed = 1;
        }
    }

    /* More than one active file only after a crash mid-seal of an older one: seal all but
     * the newest now, so a writable handle appends to a single file. */
    if (!seg->rdonly && nactive > 1) {
        for (size_t i = 0; i < n && nactive > 1; i++) {
            struct seg_file sf;
            int renamed;
            if (cs[i].kind != F_ACTIVE || cs[i].drop)
                continue;
            rc = seal_file(seg->dir, cs[i].lo, cs[i].f.size, seg->o.block_bytes, &sf, &renamed,
                           err);
            if (rc < 0)
                goto done;
            if (rc == 1) {
                cs[i].f = sf;
                cs[i].kind = F_SEALED;
            } else {
                cs[i].drop = 1;
            }
            name_active(name, cs[i].lo);
            if ((rc = remove_file(seg, name, err)) != 0)
                goto done;
            nactive--;
            rec->sealed_on_open++;
            changed = 1;
        }
        rec_note(rec, "sealed %u older active segment(s)", rec->sealed_on_open);
    }
    if (changed && (rc = fsync_dir(seg->dir, err)) != 0)
        goto done;

    if ((rc = files_reserve(seg, n + 1, err)) != 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        if (cs[i].drop)
            continue;
        files_insert(seg, &cs[i].f);
        if (cs[i].kind == F_ACTIVE && !seg->rdonly) {
            seg->active_gen = cs[i].lo;
            seg->active_size = cs[i].f.size;
            seg->active_records = cs[i].f.nrecords;
        }
    }
    seg->next_gen = maxgen + 1;
    if (!seg->rdonly && seg->active_size > 0) {
        char path[PATH_MAX];
        name_active(name, seg->active_gen);
        path_of(path, seg->dir, name);
        seg->active_fd = open(path, O_WRONLY | O_CLOEXEC);
        if (seg->active_fd < 0) {
            rc = sys_err(err, errno, "open", path);
            goto done;
        }
    }
done:
    closedir(d);
    free(cs);
    return rc;
}

static void resolve_opts(struct sl_segment_opts *o, const struct sl_segment_opts *in)
{
    if (in != NULL)
        *o = *in;
    else
        memset(o, 0, sizeof(*o));
    if (o->seal_bytes == 0)
        o->seal_bytes = DEF_SEAL_BYTES;
    if (o->seal_age_ns == 0)
        o->seal_age_ns = DEF_SEAL_AGE_NS;
    if (o->block_bytes == 0)
        o->block_bytes = DEF_BLOCK_BYTES;
    if (o->compact_min_files < 2)
        o->compact_min_files = o->compact_min_files == 0 ? DEF_COMPACT_MIN : 2;
    if (o->compact_small_bytes == 0)
        o->compact_small_bytes = o->seal_bytes;
    if (o->compact_max_bytes == 0)
        o->compact_max_bytes = DEF_COMPACT_MAX;
}

int sl_segment_open(const char *data_dir, const char *workspace, const char *view,
                    const struct sl_segment_opts *opts, struct sl_segment **out,
                    struct sl_segment_recovery *rec, struct sl_error *err)
{
    struct sl_segment_recovery local;
    struct sl_segment *seg = NULL;
    char p1[PATH_MAX], p2[PATH_MAX], lock[PATH_MAX];
    int rc;

    *out = NULL;
    if (rec == NULL)
        rec = &local;
    memset(rec, 0, sizeof(*rec));
    if (data_dir == NULL || *data_dir == '\0' || !plain_name(workspace) || !plain_name(view))
        return sl_error_set(err, SL_EINVAL, "segment: workspace and view must be plain names");
    if (strlen(data_dir) + strlen(workspace) + strlen(view) + 16 + 2 * NAME_MAX_LEN >= PATH_MAX)
        return sl_error_set(err, SL_EINVAL, "segment: path under %s too long", data_dir);
    seg = calloc(1, sizeof(*seg));
    if (seg == NULL)
        return sl_error_set(err, SL_ENOMEM, "segment: out of memory");
    seg->lock_fd = -1;
    seg->active_fd = -1;
    resolve_opts(&seg->o, opts);
    seg->rdonly = (seg->o.flags & SL_SEGMENT_RDONLY) != 0;
    if (pthread_mutex_init(&seg->mu, NULL) != 0) {
        rc = sl_error_set(err, SL_ENOMEM, "segment: cannot create a mutex");
        goto fail;
    }
    seg->mu_init = 1;

    pathf(p1, "%s/offline", data_dir);
    pathf(p2, "%s/%s", p1, workspace);
    seg->dir = malloc(strlen(p2) + strlen(view) + 2);
    if (seg->dir == NULL) {
        rc = sl_error_set(err, SL_ENOMEM, "segment: out of memory");
        goto fail;
    }
    sprintf(seg->dir, "%s/%s", p2, view);
    if (seg->rdonly) {
        struct stat st;
        if (stat(seg->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            rc = sl_error_set(err, SL_ENOTFOUND, "segment: no directory %s", seg->dir);
            goto fail;
        }
    } else if ((rc = mkdir_durable(data_dir, p1, err)) != 0 ||
               (rc = mkdir_durable(p1, p2, err)) != 0 ||
               (rc = mkdir_durable(p2, seg->dir, err)) != 0) {
        goto fail;
    }

    path_of(lock, seg->dir, "LOCK");
    seg->lock_fd = open(lock, (seg->rdonly ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0644);
    if (seg->lock_fd < 0 && !(seg->rdonly && errno == ENOENT)) {
        rc = sys_err(err, errno, "open", lock);
        goto fail;
    }
    if (seg->lock_fd >= 0 &&
        flock(seg->lock_fd, (seg->rdonly ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            rc = sl_error_set(err, SL_EBUSY, "segment: %s is in use by another writer", seg->dir);
        else
            rc = sys_err(err, errno, "lock", lock);
        goto fail;
    }
    if ((rc = recover(seg, rec, err)) != 0)
        goto fail;
    if (rec->msg[0] != '\0') {
        char tmp[sizeof(rec->msg)];
        memcpy(tmp, rec->msg, sizeof(tmp));
        rec->msg[0] = '\0';
        rec_note(rec, "%s: %s", seg->dir, tmp);
    }
    *out = seg;
    return 0;
fail:
    sl_segment_close(seg);
    return rc;
}

void sl_segment_close(struct sl_segment *seg)
{
    if (seg == NULL)
        return;
    if (seg->active_fd >= 0)
        close(seg->active_fd);
    if (seg->lock_fd >= 0)
        close(seg->lock_fd);
    if (seg->mu_init)
        pthread_mutex_destroy(&seg->mu);
    sl_buf_free(&seg->pend);
    free(seg->files);
    free(seg->dir);
    free(seg);
}

const char *sl_segment_dir(const struct sl_segment *seg)
{
    return seg->dir;
}

/* ---- writing -------------------------------------------------------------------------------- */

int sl_segment_append(struct sl_segment *seg, const struct sl_segment_record *r,
                      struct sl_error *err)
{
    struct rec x;
    unsigned char *p;
    size_t n;
    int rc;

    if ((rc = check_writable(seg, err)) != 0)
        return rc;
    if (r->key_len > SL_SEGMENT_MAX_KEY || r->payload_len > SL_SEGMENT_MAX_PAYLOAD)
        return sl_error_set(err, SL_ETOOBIG, "segment %s: record too large (key %zu, payload "
                            "%zu bytes)", seg->dir, r->key_len, r->payload_len);
    x.key = r->key;
    x.klen = (uint32_t)r->key_len;
    x.pay = r->payload;
    x.plen = (uint32_t)r->payload_len;
    x.t = r->time_ns;
    x.seq = r->seq;
    n = body_size(&x);
    if (sl_buf_reserve(&seg->pend, LOG_REC_HDR + n) != 0)
        return sl_error_set(err, SL_ENOMEM, "segment %s: out of memory buffering a record",
                            seg->dir);
    p = (unsigned char *)seg->pend.p + seg->pend.len;
    put32(p, (uint32_t)n);
    put_body(p + LOG_REC_HDR, &x);
    put32(p + 4, sl_segment_crc32c(sl_segment_crc32c(0, p, 4), p + LOG_REC_HDR, n));
    if (seg->pend.len == 0 || x.seq > seg->pend_max_seq)
        seg->pend_max_seq = x.seq;
    if (seg->pend.len == 0 && seg->active_fd < 0)
        seg->pend_created_ns = realtime_ns();
    seg->pend.len += LOG_REC_HDR + n;
    atomic_store_explicit(&seg->pend_bytes_pub, seg->pend.len, memory_order_relaxed);
    atomic_fetch_add_explicit(&seg->pend_records_pub, 1, memory_order_relaxed);
    return 0;
}

static void pend_clear(struct sl_segment *seg)
{
    sl_buf_reset(&seg->pend);
    atomic_store_explicit(&seg->pend_bytes_pub, 0, memory_order_relaxed);
    atomic_store_explicit(&seg->pend_records_pub, 0, memory_order_relaxed);
}

/* Creates the next active file holding the header and the pending records. */
static int active_create(struct sl_segment *seg, uint64_t nrec, struct sl_error *err)
{
    char name[NAME_MAX_LEN], path[PATH_MAX], tmp[PATH_MAX];
    unsigned char h[LOG_HDR];
    struct seg_file f;
    uint64_t gen = seg->next_gen;
    int fd, rc;

    pthread_mutex_lock(&seg->mu);
    rc = files_reserve(seg, 1, err);
    pthread_mutex_unlock(&seg->mu);
    if (rc != 0)
        return rc;
    name_active(name, gen);
    path_of(path, seg->dir, name);
    pathf(tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sys_err(err, errno, "create", tmp);
    log_header(h, gen, seg->pend_created_ns);
    if ((rc = pwrite_full(fd, h, LOG_HDR, 0, tmp, err)) != 0 ||
        (rc = pwrite_full(fd, seg->pend.p, seg->pend.len, LOG_HDR, tmp, err)) != 0)
        goto fail;
    if (fdatasync(fd) != 0) {
        rc = sys_err(err, errno, "fdatasync", tmp);
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        rc = sys_err(err, errno, "rename", tmp);
        goto fail;
    }
    if ((rc = fsync_dir(seg->dir, err)) != 0) {
        /* The file may or may not be there after a crash: only a reopen can tell. */
        close(fd);
        return poison(seg, err, rc);
    }
    seg->active_fd = fd;
    seg->active_gen = gen;
    seg->active_size = LOG_HDR + seg->pend.len;
    seg->active_records = nrec;
    seg->active_created_ns = seg->pend_created_ns;
    seg->next_gen = gen + 1;
    memset(&f, 0, sizeof(f));
    f.kind = F_ACTIVE;
    f.lo = f.hi = gen;
    f.size = seg->active_size;
    f.nrecords = nrec;
    f.max_seq = seg->pend_max_seq;
    pthread_mutex_lock(&seg->mu);
    files_insert(seg, &f);
    pthread_mutex_unlock(&seg->mu);
    return 0;
fail:
    close(fd);
    unlink(tmp);
    return rc;
}

int sl_segment_sync(struct sl_segment *seg, struct sl_error *err)
{
    char name[NAME_MAX_LEN], path[PATH_MAX];
    uint64_t nrec;
    struct seg_file *f;
    int rc;

    if ((rc = check_writable(seg, err)) != 0)
        return rc;
    if (seg->pend.len == 0)
        return 0;
    nrec = atomic_load_explicit(&seg->pend_records_pub, memory_order_relaxed);
    if (seg->active_fd < 0) {
        rc = active_create(seg, nrec, err);
        pend_clear(seg);
        return rc;
    }
    name_active(name, seg->active_gen);
    path_of(path, seg->dir, name);
    rc = pwrite_full(seg->active_fd, seg->pend.p, seg->pend.len, seg->active_size, path, err);
    if (rc != 0) {
        pend_clear(seg);
        /* Cut back whatever part of the group reached the file; if that fails the file's
         * tail is unknown until a reopen rescans it. */
        if (ftruncate(seg->active_fd, (off_t)seg->active_size) != 0)
            return poison(seg, err, rc);
        return rc;
    }
    if (fdatasync(seg->active_fd) != 0) {
        rc = sys_err(err, errno, "fdatasync", path);
        pend_clear(seg);
        return poison(seg, err, rc);
    }
    seg->active_size += seg->pend.len;
    seg->active_records += nrec;
    pthread_mutex_lock(&seg->mu);
    f = files_find(seg, F_ACTIVE, seg->active_gen);
    if (f != NULL) {
        if (f->nrecords == 0 || seg->pend_max_seq > f->max_seq)
            f->max_seq = seg->pend_max_seq;
        f->size = seg->active_size;
        f->nrecords += nrec;
    }
    pthread_mutex_unlock(&seg->mu);
    pend_clear(seg);
    return 0;
}

int sl_segment_seal_due(const struct sl_segment *seg, int64_t now_ns)
{
    if (seg->rdonly || seg->failed || seg->active_fd < 0 || seg->active_records == 0)
        return 0;
    if (seg->active_size >= seg->o.seal_bytes)
        return 1;
    return seg->o.seal_age_ns > 0 && now_ns > seg->active_created_ns &&
           (uint64_t)now_ns - (uint64_t)seg->active_created_ns >= (uint64_t)seg->o.seal_age_ns;
}

/* After seal_file of the active file gen returned rc >= 0: the sealed file sf (rc 1)
 * replaces it for readers, or it leaves the list (rc 0: it held no records); then the active
 * file goes. The sealed file is durable: should the removal fail, the pair is what a crash
 * at this point leaves, which open resolves, and the seal itself has succeeded. */
static int seal_install(struct sl_segment *seg, uint64_t gen, const struct seg_file *sf, int rc,
                        struct sl_error *err)
{
    char name[NAME_MAX_LEN];
    struct seg_file *f;

    pthread_mutex_lock(&seg->mu);
    f = files_find(seg, F_ACTIVE, gen);
    if (f != NULL) {
        if (rc == 1)
            *f = *sf;
        else
            files_remove(seg, f);
    }
    pthread_mutex_unlock(&seg->mu);
    name_active(name, gen);
    if (remove_file(seg, name, err) == 0)
        fsync_dir(seg->dir, err);
    return rc;
}

int sl_segment_seal(struct sl_segment *seg, struct sl_error *err)
{
    struct seg_file sf;
    int rc, renamed;

    if ((rc = check_writable(seg, err)) != 0 || (rc = sl_segment_sync(seg, err)) != 0)
        return rc;
    if (seg->active_fd < 0)
        return 0;
    rc = seal_file(seg->dir, seg->active_gen, seg->active_size, seg->o.block_bytes, &sf,
                   &renamed, err);
    if (rc < 0)
        /* A sealed file that is in place but not known durable would, after a crash,
         * supersede the active file, including records appended from now on: stop. */
        return renamed ? poison(seg, err, rc) : rc;
    close(seg->active_fd);
    seg->active_fd = -1;
    seg->active_size = 0;
    seg->active_records = 0;
    return seal_install(seg, seg->active_gen, &sf, rc, err);
}

int sl_segment_rotate(struct sl_segment *seg, uint64_t *gen, uint64_t *size, struct sl_error *err)
{
    int rc;

    if ((rc = check_writable(seg, err)) != 0 || (rc = sl_segment_sync(seg, err)) != 0)
        return rc;
    if (seg->active_fd < 0)
        return 0;
    /* The file stays in the list as an active file, readable, until its seal replaces it;
     * the next sync starts a new one. A crash in between leaves two active files, which
     * open seals in order. */
    close(seg->active_fd);
    *gen = seg->active_gen;
    *size = seg->active_size;
    seg->active_fd = -1;
    seg->active_size = 0;
    seg->active_records = 0;
    return 1;
}

int sl_segment_seal_rotated(struct sl_segment *seg, uint64_t gen, uint64_t size,
                            struct sl_error *err)
{
    struct seg_file sf;
    int renamed;
    int rc = seal_file(seg->dir, gen, size, seg->o.block_bytes, &sf, &renamed, err);
    if (rc < 0)
        /* as in sl_segment_seal: a sealed file possibly in place but not durable would
         * supersede records appended since; stop writes until a reopen sorts it out */
        return renamed ? poison(seg, err, rc) : rc;
    return seal_install(seg, gen, &sf, rc, err);
}

int sl_segment_maybe_seal(struct sl_segment *seg, int64_t now_ns, struct sl_error *err)
{
    return sl_segment_seal_due(seg, now_ns) ? sl_segment_seal(seg, err) : 0;
}

void sl_segment_stats(struct sl_segment *seg, struct sl_segment_stats *st)
{
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&seg->mu);
    for (size_t i = 0; i < seg->nfiles; i++) {
        const struct seg_file *f = &seg->files[i];
        if (f->kind == F_SEALED) {
            st->sealed_files++;
            st->sealed_bytes += f->size;
            st->sealed_records += f->nrecords;
        } else {
            st->active_bytes += f->size;
            st->active_records += f->nrecords;
        }
    }
    pthread_mutex_unlock(&seg->mu);
    st->pending_bytes = atomic_load_explicit(&seg->pend_bytes_pub, memory_order_relaxed);
    st->pending_records = atomic_load_explicit(&seg->pend_records_pub, memory_order_relaxed);
}

int sl_segment_max_seq(struct sl_segment *seg, uint64_t *seq)
{
    int any = 0;

    pthread_mutex_lock(&seg->mu);
    for (size_t i = 0; i < seg->nfiles; i++) {
        const struct seg_file *f = &seg->files[i];
        if (f->nrecords > 0 && (!any || f->max_seq > *seq)) {
            *seq = f->max_seq;
            any = 1;
        }
    }
    pthread_mutex_unlock(&seg->mu);
    return any;
}

/* ---- iterators ---------------------------------------------------------------------------- */

/* One input of the merge: a sealed file read block by block, or an active file read whole and
 * sorted in memory. */
struct src {
    char *path;
    int fd;
    int is_mem;
    uint64_t gen;     /* active: generation */
    uint64_t len;     /* active: durable length at snapshot time */
    int valid;        /* cur holds a record */
    struct rec cur;
    /* sealed */
    struct sst_reader sst;
    uint32_t next_blk;
    uint32_t cur_blk; /* block in bbuf, UINT32_MAX when none */
    unsigned char *bbuf;
    size_t bcap, bpos, blen;
    uint32_t bseen;
    int skip_lo;
    int has_prev;
    struct rec prev;
    /* active */
    unsigned char *mbuf;
    struct rec *refs;
    size_t nrefs, idx;
};

struct sl_segment_iter {
    struct src *srcs;
    size_t nsrc;
    size_t *heap;
    size_t nheap;
    long last; /* source returned by the last next, to advance first; -1 none */
    unsigned char *hi;
    size_t hilen;
    int has_hi;
    unsigned char *lo;
    size_t lolen;
    int64_t tmax;
    struct sl_error err; /* sticky; code 0 until the first failure */
};

static int it_fail(struct sl_segment_iter *it, struct sl_error *err)
{
    if (err != NULL && err != &it->err)
        *err = it->err;
    return it->err.code;
}

static int above_hi(const struct sl_segment_iter *it, const unsigned char *k, size_t n)
{
    return it->has_hi && cmp_key(k, n, it->hi, it->hilen) >= 0;
}

/* Reads, checks and parses every record of an active file's durable prefix. */
static int mem_load(struct sl_segment_iter *it, struct src *s)
{
    struct log_scan sc;
    struct rec *all = NULL;
    size_t n = 0, k = 0;
    int64_t created;
    int rc;

    if ((rc = read_all(s->fd, s->len, s->path, &s->mbuf, &it->err)) != 0)
        return rc;
    if (s->len < LOG_HDR)
        return sl_error_set(&it->err, SL_ECORRUPT, "segment: %s: shorter than its header",
                            s->path);
    if ((rc = log_check_header(s->mbuf, s->gen, &created, s->path, &it->err)) != 0)
        return rc;
    if (log_scan(s->mbuf, (size_t)s->len, &sc, &all, &n) != 0) {
        free(all);
        return sl_error_set(&it->err, SL_ENOMEM, "segment: %s: out of memory", s->path);
    }
    if (sc.valid_len != s->len) {
        free(all);
        return sl_error_set(&it->err, SL_ECORRUPT, "segment: %s: record at offset %" PRIu64
                            " changed since it was written (%s)", s->path, sc.valid_len,
                            sc.reason);
    }
    for (size_t i = 0; i < n; i++)
        if (all[i].t <= it->tmax && !above_hi(it, all[i].key, all[i].klen))
            all[k++] = all[i];
    s->refs = all;
    s->nrefs = k;
    if (k > 1)
        qsort(s->refs, k, sizeof(*s->refs), cmp_rec_q);
    return 0;
}

static int blk_corrupt(struct sl_segment_iter *it, struct src *s, const char *what)
{
    const struct sst_ent *e = &s->sst.ents[s->cur_blk];

    return sl_error_set(&it->err, SL_ECORRUPT, "segment: %s: block %" PRIu32 " (offset %" PRIu64
                        ", %" PRIu32 " bytes): %s", s->path, s->cur_blk, e->off, e->len, what);
}

static int blk_load(struct sl_segment_iter *it, struct src *s, uint32_t b)
{
    const struct sst_ent *e = &s->sst.ents[b];
    int rc;

    if (e->len > s->bcap) {
        unsigned char *p = realloc(s->bbuf, e->len);
        if (p == NULL)
            return sl_error_set(&it->err, SL_ENOMEM, "segment: %s: out of memory", s->path);
        s->bbuf = p;
        s->bcap = e->len;
    }
    s->cur_blk = UINT32_MAX;
    if ((rc = pread_full(s->fd, s->bbuf, e->len, e->off, s->path, &it->err)) != 0)
        return rc;
    s->cur_blk = b;
    s->bpos = 0;
    s->blen = e->len;
    s->bseen = 0;
    s->has_prev = 0;
    if (sl_segment_crc32c(0, s->bbuf, e->len) != e->crc) {
        s->blen = 0;
        return blk_corrupt(it, s, "checksum mismatch");
    }
    return 0;
}

/* Moves a sealed source to its next record within the bounds. */
static int sst_next(struct sl_segment_iter *it, struct src *s)
{
    uint32_t nb = s->sst.info.nblocks;
    int rc;

    for (;;) {
        if (s->bpos < s->blen) {
            const struct sst_ent *e = &s->sst.ents[s->cur_blk];
            const unsigned char *p = s->bbuf + s->bpos;
            size_t left = s->blen - s->bpos;
            struct rec r;
            uint32_t n;

            if (left < 4 || (n = get32(p)) > left - 4 || parse_body(p + 4, n, &r) != 0)
                return blk_corrupt(it, s, "malformed record");
            s->bpos += 4 + (size_t)n;
            s->bseen++;
            if (s->bseen == 1 && cmp_key(r.key, r.klen, e->key, e->klen) != 0)
                return blk_corrupt(it, s, "first key differs from the index");
            if (s->has_prev && cmp_rec(&s->prev, &r) > 0)
                return blk_corrupt(it, s, "records out of order");
            if (r.t < e->tmin || r.t > e->tmax)
                return blk_corrupt(it, s, "time outside the index range");
            if (s->bpos == s->blen && s->bseen != e->nrec)
                return blk_corrupt(it, s, "record count differs from the index");
            s->prev = r;
            s->has_prev = 1;
            if (above_hi(it, r.key, r.klen)) {
                s->bpos = s->blen;
                s->next_blk = nb;
                s->valid = 0;
                return 0;
            }
            if (s->skip_lo) {
                if (cmp_key(r.key, r.klen, it->lo, it->lolen) < 0)
                    continue;
                s->skip_lo = 0;
            }
            if (r.t > it->tmax)
                continue;
            s->cur = r;
            s->valid = 1;
            return 0;
        }
        if (s->next_blk >= nb) {
            s->valid = 0;
            return 0;
        }
        if (above_hi(it, s->sst.ents[s->next_blk].key, s->sst.ents[s->next_blk].klen)) {
            s->next_blk = nb;
            continue;
        }
        if (s->sst.ents[s->next_blk].tmin > it->tmax) {
            s->next_blk++;
            continue;
        }
        if ((rc = blk_load(it, s, s->next_blk)) != 0)
            return rc;
        s->next_blk++;
    }
}

static void mem_fill(struct sl_segment_iter *it, struct src *s)
{
    (void)it;
    s->valid = s->idx < s->nrefs;
    if (s->valid)
        s->cur = s->refs[s->idx];
}

/* Positions a source at its first record with key >= it->lo (everything when it->lo is
 * NULL). */
static int src_seek(struct sl_segment_iter *it, struct src *s)
{
    if (s->is_mem) {
        size_t a = 0, b = s->nrefs;
        while (it->lo != NULL && a < b) {
            size_t m = a + (b - a) / 2;
            if (cmp_key(s->refs[m].key, s->refs[m].klen, it->lo, it->lolen) < 0)
                a = m + 1;
            else
                b = m;
        }
        s->idx = a;
        mem_fill(it, s);
        return 0;
    }
    uint32_t start = 0, a = 0, b = s->sst.info.nblocks;
    if (it->lo != NULL) {
        /* First block whose first key is >= lo; the one before may still hold lo. */
        while (a < b) {
            uint32_t m = a + (b - a) / 2;
            if (cmp_key(s->sst.ents[m].key, s->sst.ents[m].klen, it->lo, it->lolen) < 0)
                a = m + 1;
            else
                b = m;
        }
        start = a > 0 ? a - 1 : 0;
    }
    s->skip_lo = it->lo != NULL;
    s->valid = 0;
    if (s->cur_blk != UINT32_MAX && s->cur_blk == start && s->blen > 0) {
        s->bpos = 0;
        s->bseen = 0;
        s->has_prev = 0;
        s->next_blk = start + 1;
    } else {
        s->bpos = s->blen = 0;
        s->next_blk = start;
    }
    return sst_next(it, s);
}

static int src_advance(struct sl_segment_iter *it, struct src *s)
{
    if (s->is_mem) {
        s->idx++;
        mem_fill(it, s);
        return 0;
    }
    return sst_next(it, s);
}

static int heap_less(const struct sl_segment_iter *it, size_t a, size_t b)
{
    int c = cmp_rec(&it->srcs[a].cur, &it->srcs[b].cur);

    return c < 0 || (c == 0 && a < b);
}

static void heap_down(struct sl_segment_iter *it, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i, t;
        if (l < it->nheap && heap_less(it, it->heap[l], it->heap[m]))
            m = l;
        if (r < it->nheap && heap_less(it, it->heap[r], it->heap[m]))
            m = r;
        if (m == i)
            return;
        t = it->heap[i];
        it->heap[i] = it->heap[m];
        it->heap[m] = t;
        i = m;
    }
}

static int it_reposition(struct sl_segment_iter *it)
{
    int rc;

    it->nheap = 0;
    it->last = -1;
    for (size_t i = 0; i < it->nsrc; i++) {
        if ((rc = src_seek(it, &it->srcs[i])) != 0)
            return rc;
        if (it->srcs[i].valid)
            it->heap[it->nheap++] = i;
    }
    for (size_t i = it->nheap / 2; i-- > 0;)
        heap_down(it, i);
    return 0;
}

void sl_segment_iter_destroy(struct sl_segment_iter *it)
{
    if (it == NULL)
        return;
    for (size_t i = 0; it->srcs != NULL && i < it->nsrc; i++) {
        struct src *s = &it->srcs[i];
        if (s->fd >= 0)
            close(s->fd);
        free(s->path);
        sst_reader_free(&s->sst);
        free(s->bbuf);
        free(s->mbuf);
        free(s->refs);
    }
    free(it->srcs);
    free(it->heap);
    free(it->hi);
    free(it->lo);
    free(it);
}

static struct sl_segment_iter *iter_alloc(size_t nfiles, const struct sl_segment_iter_opts *o)
{
    struct sl_segment_iter *it = calloc(1, sizeof(*it));

    if (it == NULL)
        return NULL;
    it->last = -1;
    it->tmax = (o != NULL && o->has_time_max) ? o->time_max : INT64_MAX;
    it->srcs = calloc(nfiles > 0 ? nfiles : 1, sizeof(*it->srcs));
    it->heap = calloc(nfiles > 0 ? nfiles : 1, sizeof(*it->heap));
    if (it->srcs == NULL || it->heap == NULL)
        goto fail;
    if (o != NULL && o->key_hi != NULL) {
        it->hi = malloc(o->key_hi_len > 0 ? o->key_hi_len : 1);
        if (it->hi == NULL)
            goto fail;
        memcpy(it->hi, o->key_hi, o->key_hi_len);
        it->hilen = o->key_hi_len;
        it->has_hi = 1;
    }
    return it;
fail:
    sl_segment_iter_destroy(it);
    return NULL;
}

/* Opens the files of the snapshot (under the handle's mutex when the set can change). */
static int iter_open_files(struct sl_segment_iter *it, const char *dir,
                           const struct seg_file *files, size_t n)
{
    char path[PATH_MAX];

    for (size_t i = 0; i < n; i++) {
        struct src *s = &it->srcs[i];
        s->fd = -1;
        s->cur_blk = UINT32_MAX;
        s->is_mem = files[i].kind == F_ACTIVE;
        s->gen = files[i].lo;
        s->len = files[i].size;
        it->nsrc = i + 1;
        file_path(path, dir, &files[i]);
        s->path = strdup(path);
        if (s->path == NULL)
            return sl_error_set(&it->err, SL_ENOMEM, "segment: out of memory");
        s->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (s->fd < 0)
            return sys_err(&it->err, errno, "open", path);
    }
    return 0;
}

/* Loads indexes and active images, then positions at the lower bound. */
static int iter_start(struct sl_segment_iter *it, const struct sl_segment_iter_opts *o)
{
    int rc;

    for (size_t i = 0; i < it->nsrc; i++) {
        struct src *s = &it->srcs[i];
        rc = s->is_mem ? mem_load(it, s) : sst_load(s->fd, s->path, &s->sst, &it->err);
        if (rc != 0)
            return rc;
    }
    if (o != NULL && o->key_lo != NULL)
        return sl_segment_iter_seek(it, o->key_lo, o->key_lo_len, NULL);
    return it_reposition(it);
}

int sl_segment_iter_open(struct sl_segment *seg, const struct sl_segment_iter_opts *o,
                         struct sl_segment_iter **out, struct sl_error *err)
{
    struct sl_segment_iter *it;
    int rc;

    *out = NULL;
    pthread_mutex_lock(&seg->mu);
    it = iter_alloc(seg->nfiles, o);
    if (it == NULL) {
        pthread_mutex_unlock(&seg->mu);
        return sl_error_set(err, SL_ENOMEM, "segment %s: out of memory", seg->dir);
    }
    rc = iter_open_files(it, seg->dir, seg->files, seg->nfiles);
    pthread_mutex_unlock(&seg->mu);
    if (rc == 0)
        rc = iter_start(it, o);
    if (rc != 0) {
        rc = it_fail(it, err);
        sl_segment_iter_destroy(it);
        return rc;
    }
    *out = it;
    return 0;
}

int sl_segment_iter_next(struct sl_segment_iter *it, struct sl_segment_record *rec,
                         struct sl_error *err)
{
    const struct src *s;

    if (it->err.code != 0)
        return it_fail(it, err);
    if (it->last >= 0) {
        struct src *ls = &it->srcs[it->last];
        it->last = -1;
        if (src_advance(it, ls) != 0)
            return it_fail(it, err);
        if (!ls->valid)
            it->heap[0] = it->heap[--it->nheap];
        heap_down(it, 0);
    }
    if (it->nheap == 0)
        return 0;
    it->last = (long)it->heap[0];
    s = &it->srcs[it->heap[0]];
    rec->key = s->cur.key;
    rec->key_len = s->cur.klen;
    rec->time_ns = s->cur.t;
    rec->seq = s->cur.seq;
    rec->payload = s->cur.pay;
    rec->payload_len = s->cur.plen;
    return 1;
}

int sl_segment_iter_seek(struct sl_segment_iter *it, const void *key, size_t key_len,
                         struct sl_error *err)
{
    unsigned char *p;

    if (it->err.code != 0)
        return it_fail(it, err);
    p = realloc(it->lo, key_len > 0 ? key_len : 1);
    if (p == NULL) {
        sl_error_set(&it->err, SL_ENOMEM, "segment: out of memory");
        return it_fail(it, err);
    }
    if (key_len > 0)
        memcpy(p, key, key_len);
    it->lo = p;
    it->lolen = key_len;
    if (it_reposition(it) != 0)
        return it_fail(it, err);
    return 0;
}

/* ---- compaction ---------------------------------------------------------------------------- */

int sl_segment_compact(struct sl_segment *seg, struct sl_error *err)
{
    struct sl_segment_iter *it = NULL;
    struct seg_file *in = NULL, outf;
    struct sst_writer w;
    size_t start = 0, cnt = 0;
    int rc;

    memset(&w, 0, sizeof(w));
    w.fd = -1;
    if ((rc = check_writable(seg, err)) != 0)
        return rc;
    pthread_mutex_lock(&seg->mu);
    if (!seg->compacting) {
        for (size_t i = 0; i < seg->nfiles && cnt == 0; i++) {
            uint64_t total = 0;
            size_t j = i;
            while (j < seg->nfiles && seg->files[j].kind == F_SEALED &&
                   seg->files[j].size < seg->o.compact_small_bytes &&
                   total + seg->files[j].size <= seg->o.compact_max_bytes)
                total += seg->files[j++].size;
            if (j - i >= seg->o.compact_min_files) {
                start = i;
                cnt = j - i;
            }
        }
    }
    if (cnt > 0) {
        in = malloc(cnt * sizeof(*in));
        it = iter_alloc(cnt, NULL);
        if (in == NULL || it == NULL || files_reserve(seg, 1, err) != 0) {
            pthread_mutex_unlock(&seg->mu);
            rc = sl_error_set(err, SL_ENOMEM, "segment %s: out of memory", seg->dir);
            goto done;
        }
        memcpy(in, &seg->files[start], cnt * sizeof(*in));
        seg->compacting = 1;
    }
    pthread_mutex_unlock(&seg->mu);
    if (cnt == 0)
        return 0;

    /* Only compaction removes sealed files, so the inputs stay put without the lock. */
    if (iter_open_files(it, seg->dir, in, cnt) != 0 || iter_start(it, NULL) != 0) {
        rc = it_fail(it, err);
        goto done;
    }
    if ((rc = sstw_begin(&w, seg->dir, in[0].lo, in[cnt - 1].hi, seg->o.block_bytes, err)) != 0)
        goto done;
    for (;;) {
        struct sl_segment_record r;
        struct rec x;
        rc = sl_segment_iter_next(it, &r, err);
        if (rc <= 0)
            break;
        x.key = r.key;
        x.klen = (uint32_t)r.key_len;
        x.pay = r.payload;
        x.plen = (uint32_t)r.payload_len;
        x.t = r.time_ns;
        x.seq = r.seq;
        if ((rc = sstw_add(&w, &x, err)) != 0)
            break;
    }
    if (rc < 0)
        goto done;
    if ((rc = sstw_finish(&w, seg->dir, err)) != 0) {
        if (w.renamed)
            poison(seg, err, rc);
        goto done;
    }
    memset(&outf, 0, sizeof(outf));
    outf.kind = F_SEALED;
    outf.lo = in[0].lo;
    outf.hi = in[cnt - 1].hi;
    outf.size = w.info.size;
    outf.nrecords = w.info.nrecords;
    outf.max_seq = w.info.max_seq;
    pthread_mutex_lock(&seg->mu);
    for (size_t i = 0; i < cnt; i++) {
        struct seg_file *f = files_find(seg, F_SEALED, in[i].lo);
        if (f != NULL)
            files_remove(seg, f);
    }
    files_insert(seg, &outf); /* room reserved above */
    pthread_mutex_unlock(&seg->mu);
    rc = 1;
    /* The output is durable; leftover inputs would be removed by the next open. */
    for (size_t i = 0; i < cnt; i++) {
        char name[NAME_MAX_LEN];
        name_sealed(name, in[i].lo, in[i].hi);
        if (remove_file(seg, name, err) != 0)
            break;
    }
    fsync_dir(seg->dir, err);
done:
    sstw_abort(&w);
    sl_segment_iter_destroy(it);
    if (in != NULL) {
        pthread_mutex_lock(&seg->mu);
        seg->compacting = 0;
        pthread_mutex_unlock(&seg->mu);
    }
    free(in);
    return rc;
}

/* ---- consistent copies (backup) ---- */

struct snap_file {
    char name[NAME_MAX_LEN];
    int fd;
    int sealed;
    uint64_t len; /* bytes to copy: the sealed size or the active durable length */
};

struct sl_segment_snap {
    size_t n;
    struct snap_file *f;
};

int sl_segment_snapshot(struct sl_segment *seg, struct sl_segment_snap **out, struct sl_error *err)
{
    char path[PATH_MAX];
    int rc = 0;
    struct sl_segment_snap *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (s == NULL)
        return sl_error_set(err, SL_ENOMEM, "segment: out of memory");
    pthread_mutex_lock(&seg->mu);
    s->f = calloc(seg->nfiles + 1, sizeof(*s->f));
    for (size_t i = 0; s->f && i < seg->nfiles && rc == 0; i++) {
        const struct seg_file *f = &seg->files[i];
        struct snap_file *d = &s->f[s->n];
        if (f->kind == F_ACTIVE)
            name_active(d->name, f->lo);
        else
            name_sealed(d->name, f->lo, f->hi);
        d->sealed = f->kind == F_SEALED;
        d->len = f->size;
        path_of(path, seg->dir, d->name);
        d->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (d->fd < 0)
            rc = sys_err(err, errno, "open", path);
        else
            s->n++;
    }
    pthread_mutex_unlock(&seg->mu);
    if (s->f == NULL)
        rc = sl_error_set(err, SL_ENOMEM, "segment: out of memory");
    if (rc != 0) {
        sl_segment_snap_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Copies len bytes of fd into a new file path, fdatasynced. */
static int copy_prefix(int fd, uint64_t len, const char *path, struct sl_error *err)
{
    unsigned char buf[1 << 16];
    int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = 0;
    if (out < 0)
        return sys_err(err, errno, "create", path);
    for (uint64_t off = 0; off < len && rc == 0;) {
        size_t n = len - off < sizeof(buf) ? (size_t)(len - off) : sizeof(buf);
        rc = pread_full(fd, buf, n, off, path, err);
        if (rc == 0)
            rc = pwrite_full(out, buf, n, off, path, err);
        off += n;
    }
    if (rc == 0 && fdatasync(out) != 0)
        rc = sys_err(err, errno, "fdatasync", path);
    close(out);
    return rc;
}

int sl_segment_snap_write(struct sl_segment_snap *s, const char *src_dir, const char *dest,
                          uint64_t *bytes, struct sl_error *err)
{
    char from[PATH_MAX], to[PATH_MAX];
    int rc = 0;
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        const struct snap_file *f = &s->f[i];
        path_of(from, src_dir, f->name);
        path_of(to, dest, f->name);
        /* sealed files never change: a hard link, unless it was compacted away meanwhile or
         * dest is on another file system */
        if (!f->sealed || link(from, to) != 0)
            rc = copy_prefix(f->fd, f->len, to, err);
        *bytes += f->len;
    }
    if (rc == 0)
        rc = fsync_dir(dest, err);
    return rc;
}

void sl_segment_snap_free(struct sl_segment_snap *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        close(s->f[i].fd);
    free(s->f);
    free(s);
}
