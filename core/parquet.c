/* Parquet reader: footer metadata (Thrift compact protocol), pages, encodings, codecs, and the
 * conversion of column values into JSON row objects. */
#include "parquet.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "types.h"

/* Physical types, repetitions, codecs, encodings and page types of the format. */
enum { PT_BOOLEAN, PT_INT32, PT_INT64, PT_INT96, PT_FLOAT, PT_DOUBLE, PT_BYTE_ARRAY, PT_FLBA };
enum { REP_REQUIRED, REP_OPTIONAL, REP_REPEATED };
enum { CODEC_NONE = 0, CODEC_SNAPPY = 1, CODEC_GZIP = 2, CODEC_ZSTD = 6 };
enum {
    ENC_PLAIN = 0, ENC_PLAIN_DICT = 2, ENC_RLE = 3, ENC_BIT_PACKED = 4, ENC_DBP = 5,
    ENC_DLBA = 6, ENC_DBA = 7, ENC_RLE_DICT = 8, ENC_BSS = 9,
};
enum { PAGE_DATA = 0, PAGE_INDEX = 1, PAGE_DICT = 2, PAGE_DATA_V2 = 3 };
/* Converted types (the legacy annotation) this reader looks at. */
enum {
    CT_UTF8 = 0, CT_ENUM = 4, CT_DECIMAL = 5, CT_DATE = 6, CT_TIME_MILLIS = 7,
    CT_TIME_MICROS = 8, CT_TS_MILLIS = 9, CT_TS_MICROS = 10, CT_UINT_8 = 11, CT_UINT_16 = 12,
    CT_UINT_32 = 13, CT_UINT_64 = 14, CT_JSON = 19, CT_INTERVAL = 21,
};
/* LogicalType union members (field ids). */
enum {
    LT_STRING = 1, LT_MAP = 2, LT_LIST = 3, LT_ENUM = 4, LT_DECIMAL = 5, LT_DATE = 6,
    LT_TIME = 7, LT_TIMESTAMP = 8, LT_INTEGER = 10, LT_JSON = 12, LT_UUID = 14, LT_FLOAT16 = 15,
};

/* How a leaf's values become JSON. */
enum conv {
    CV_BOOL, CV_I32, CV_U32, CV_I64, CV_U64, CV_FLOAT, CV_DOUBLE, CV_STR, CV_BIN, CV_TS,
    CV_TS96, CV_DATE, CV_TIME, CV_DEC, CV_UUID, CV_F16,
};

#define MAX_FOOTER (256u << 20)      /* footer metadata larger than this is refused */
#define MAX_PAGE (512u << 20)        /* uncompressed page size limit */
#define MAX_PAGE_VALUES (1u << 24)   /* levels per page */
#define MAX_HEADER (16u << 20)       /* page header (with statistics) */
#define CHUNK_PRELOAD (4u << 20)     /* column chunks up to this are read in one pread */
#define MAX_SCHEMA_DEPTH 32
#define MAX_COLUMNS 100000
#define NS_PER_SEC INT64_C(1000000000)

/* ---- Thrift compact protocol ---- */

struct tc {
    const uint8_t *p, *end;
    int bad;   /* malformed, or out of bytes */
    int out;   /* ran out of bytes (a larger window may help) */
    int depth;
};

static void tc_short(struct tc *t)
{
    t->bad = 1;
    t->out = 1;
}

static uint64_t tc_uvarint(struct tc *t)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (t->p >= t->end) {
            tc_short(t);
            return 0;
        }
        uint8_t b = *t->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    t->bad = 1;
    return 0;
}

static int64_t tc_zz(struct tc *t)
{
    uint64_t u = tc_uvarint(t);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static void tc_advance(struct tc *t, uint64_t n)
{
    if (t->bad)
        return;
    if (n > (uint64_t)(t->end - t->p))
        tc_short(t);
    else
        t->p += n;
}

/* Next field header of the struct being read: 1 with *id and *type, 0 at STOP or on error. */
static int tc_field(struct tc *t, int *last, int *id, int *type)
{
    if (t->bad)
        return 0;
    if (t->p >= t->end) {
        tc_short(t);
        return 0;
    }
    uint8_t b = *t->p++;
    if (b == 0)
        return 0;
    *type = b & 0x0f;
    if (b >> 4) { /* field ids are i16 */
        if (*last > 32767 - 15) {
            t->bad = 1;
            return 0;
        }
        *id = *last + (b >> 4);
    } else {
        int64_t v = tc_zz(t);
        if (v < -32768 || v > 32767) {
            t->bad = 1;
            return 0;
        }
        *id = (int)v;
    }
    *last = *id;
    return !t->bad;
}

static uint32_t tc_list(struct tc *t, int *etype)
{
    if (t->bad)
        return 0;
    if (t->p >= t->end) {
        tc_short(t);
        return 0;
    }
    uint8_t b = *t->p++;
    uint64_t n = b >> 4;
    *etype = b & 0x0f;
    if (n == 15)
        n = tc_uvarint(t);
    if (t->bad)
        return 0;
    /* Every element takes at least one byte. */
    if (n > (uint64_t)(t->end - t->p)) {
        tc_short(t);
        return 0;
    }
    return (uint32_t)n;
}

static void tc_skip(struct tc *t, int type);

static void tc_skip_elem(struct tc *t, int type)
{
    if (type == 1 || type == 2)
        tc_advance(t, 1); /* booleans in containers are one byte */
    else
        tc_skip(t, type);
}

static void tc_skip(struct tc *t, int type)
{
    if (t->bad)
        return;
    if (++t->depth > 64) {
        t->bad = 1;
        return;
    }
    switch (type) {
    case 1:
    case 2:
        break;
    case 3:
        tc_advance(t, 1);
        break;
    case 4:
    case 5:
    case 6:
        tc_uvarint(t);
        break;
    case 7:
        tc_advance(t, 8);
        break;
    case 8: {
        uint64_t n = tc_uvarint(t);
        tc_advance(t, n);
        break;
    }
    case 9:
    case 10: {
        int et;
        uint32_t n = tc_list(t, &et);
        for (uint32_t i = 0; i < n && !t->bad; i++)
            tc_skip_elem(t, et);
        break;
    }
    case 11: {
        uint64_t n = tc_uvarint(t);
        if (n && !t->bad) {
            if (t->p >= t->end || n > (uint64_t)(t->end - t->p)) {
                tc_short(t);
                break;
            }
            uint8_t kv = *t->p++;
            for (uint64_t i = 0; i < n && !t->bad; i++) {
                tc_skip_elem(t, kv >> 4);
                tc_skip_elem(t, kv & 0x0f);
            }
        }
        break;
    }
    case 12: {
        int last = 0, id, ft;
        while (tc_field(t, &last, &id, &ft))
            tc_skip(t, ft);
        break;
    }
    default:
        t->bad = 1;
    }
    t->depth--;
}

/* Reads an integer field of any integer wire type into *v; other types are skipped (and *v
 * left alone). */
static void tc_int(struct tc *t, int type, int64_t *v)
{
    if (type == 3) {
        if (t->p >= t->end) {
            tc_short(t);
            return;
        }
        *v = (int8_t)*t->p++;
    } else if (type >= 4 && type <= 6) {
        int64_t x = tc_zz(t);
        if (!t->bad)
            *v = x;
    } else {
        tc_skip(t, type);
    }
}

static void tc_i32(struct tc *t, int type, int32_t *v)
{
    int64_t x = *v;
    tc_int(t, type, &x);
    if (x < INT32_MIN || x > INT32_MAX)
        t->bad = 1;
    else
        *v = (int32_t)x;
}

static const uint8_t *tc_bin(struct tc *t, int type, size_t *n)
{
    if (type != 8) {
        tc_skip(t, type);
        return NULL;
    }
    uint64_t len = tc_uvarint(t);
    if (t->bad)
        return NULL;
    if (len > (uint64_t)(t->end - t->p)) {
        tc_short(t);
        return NULL;
    }
    const uint8_t *s = t->p;
    t->p += len;
    *n = (size_t)len;
    return s;
}

/* 1 when a struct field of wire type `type` is a struct to descend into; else skips it. */
static int tc_is_struct(struct tc *t, int type)
{
    if (type == 12)
        return 1;
    tc_skip(t, type);
    return 0;
}

/* ---- metadata ---- */

struct pq_logical {
    int kind;     /* LT_*, 0 when absent */
    int unit;     /* TIME/TIMESTAMP: 1 millis, 2 micros, 3 nanos */
    int utc;
    int bits, is_signed;
    int32_t scale, precision;
};

struct pq_elem {
    char *name;
    int type;     /* PT_*, -1 for groups */
    int32_t type_length;
    int repetition; /* REP_*, -1 when absent */
    int32_t num_children;
    int converted;  /* CT_*, -1 when absent */
    int32_t scale, precision;
    struct pq_logical logical;
};

struct pq_chunk {
    int has_meta;
    int type;
    int codec;
    int64_t num_values;
    int64_t data_off, dict_off; /* dict_off -1 when absent */
    int64_t total_compressed;
};

struct pq_rg {
    int64_t num_rows;
    uint64_t first_row;
    struct pq_chunk *chunks;
    size_t nchunks;
};

struct pq_leaf {
    char *path;       /* dotted, for messages */
    int ptype;
    int32_t type_length;
    int max_def, max_rep;
    int list_def, elem_def; /* repeated leaves: def level of the list, of an element slot */
    enum conv conv;
    int64_t unit_ns;  /* TIMESTAMP/TIME: nanoseconds per unit */
    int32_t scale;    /* DECIMAL */
    int strict_utf8;  /* STRING annotated */
};

struct pq_col {
    const char *name;
    size_t namelen;
    size_t leaf;
    int list;
};

struct pq_bytes {
    const uint8_t *p;
    size_t n;
};

/* Decoding state of one leaf column within the current row group. */
struct pq_reader {
    const struct pq_chunk *ch;
    uint64_t off, end;   /* next page header, end of the chunk */
    int page_no;         /* 1-based number of the page being read */
    int64_t levels_left; /* of the chunk's num_values */

    uint8_t *cbuf;       /* the whole chunk, when it was small enough to read at once */
    uint64_t cbuf_off;
    size_t cbuf_len, cbuf_cap;

    uint8_t *raw; size_t rawcap;     /* compressed page bytes read with pread */
    uint8_t *pbuf; size_t pcap;      /* decompressed page */
    uint8_t *def, *rep; size_t defcap, repcap;
    uint8_t *vals; size_t valcap;    /* decoded values (esize each) */
    uint32_t *idx; size_t idxcap;
    uint8_t *extra; size_t extracap; /* DELTA_BYTE_ARRAY output, INT96 */
    uint64_t *tmp64; size_t tmpcap;  /* DELTA_BINARY_PACKED output */

    uint8_t *dict; size_t dictcap;   /* dictionary values (esize each) */
    uint32_t ndict;
    int has_dict;
    uint8_t *dict_mem; size_t dict_memcap; /* bytes that byte-array dictionary values point into */

    uint32_t nlev, pos;  /* levels in the current page, next one */
    uint32_t nval, vpos; /* values in the current page, next one */
};

struct sl_parquet {
    char *name;
    int fd;
    const uint8_t *mem;
    uint64_t size;
    uint64_t meta_start; /* first byte of the footer: chunks must end before it */

    uint8_t *footer;
    struct pq_elem *elems;
    size_t nelems;
    struct pq_rg *rgs;
    size_t nrgs;
    uint64_t num_rows;

    struct pq_leaf *leaves;
    size_t nleaves;
    struct pq_col *cols;
    size_t ncols;

    struct pq_reader *rd; /* one per leaf */
    size_t rg;            /* current row group; nrgs when none is loaded */
    int rg_loaded;
    uint64_t rg_row;      /* next row within it */
    uint64_t row;         /* next row in the file */

    int failed;
    struct sl_error ferr;
};

static size_t esize_of(int ptype)
{
    switch (ptype) {
    case PT_BOOLEAN: return 1;
    case PT_INT32:
    case PT_FLOAT: return 4;
    case PT_INT64:
    case PT_DOUBLE: return 8;
    default: return sizeof(struct pq_bytes);
    }
}

static void parse_logical(struct tc *t, struct pq_logical *lg)
{
    int last = 0, id, ft;
    while (tc_field(t, &last, &id, &ft)) {
        if (ft != 12) {
            tc_skip(t, ft);
            continue;
        }
        lg->kind = id;
        int l2 = 0, id2, ft2;
        while (tc_field(t, &l2, &id2, &ft2)) {
            if ((id == LT_TIMESTAMP || id == LT_TIME) && id2 == 1 && (ft2 == 1 || ft2 == 2)) {
                lg->utc = ft2 == 1;
            } else if ((id == LT_TIMESTAMP || id == LT_TIME) && id2 == 2 && ft2 == 12) {
                int l3 = 0, id3, ft3;
                while (tc_field(t, &l3, &id3, &ft3)) {
                    if (ft3 == 12)
                        lg->unit = id3;
                    tc_skip(t, ft3);
                }
            } else if (id == LT_DECIMAL && id2 == 1) {
                tc_i32(t, ft2, &lg->scale);
            } else if (id == LT_DECIMAL && id2 == 2) {
                tc_i32(t, ft2, &lg->precision);
            } else if (id == LT_INTEGER && id2 == 1) {
                int64_t v = 0;
                tc_int(t, ft2, &v);
                lg->bits = (int)v;
            } else if (id == LT_INTEGER && id2 == 2 && (ft2 == 1 || ft2 == 2)) {
                lg->is_signed = ft2 == 1;
            } else {
                tc_skip(t, ft2);
            }
        }
    }
}

static int parse_schema_elem(struct tc *t, struct pq_elem *e)
{
    int last = 0, id, ft;
    size_t nlen = 0;
    const uint8_t *name = NULL;

    e->type = -1;
    e->repetition = -1;
    e->converted = -1;
    while (tc_field(t, &last, &id, &ft)) {
        switch (id) {
        case 1: { int32_t v = -1; tc_i32(t, ft, &v); e->type = v; break; }
        case 2: tc_i32(t, ft, &e->type_length); break;
        case 3: { int32_t v = -1; tc_i32(t, ft, &v); e->repetition = v; break; }
        case 4: name = tc_bin(t, ft, &nlen); break;
        case 5: tc_i32(t, ft, &e->num_children); break;
        case 6: { int32_t v = -1; tc_i32(t, ft, &v); e->converted = v; break; }
        case 7: tc_i32(t, ft, &e->scale); break;
        case 8: tc_i32(t, ft, &e->precision); break;
        case 10:
            if (tc_is_struct(t, ft))
                parse_logical(t, &e->logical);
            break;
        default: tc_skip(t, ft);
        }
    }
    if (t->bad || !name)
        return -1;
    e->name = malloc(nlen + 1);
    if (!e->name)
        return SL_ENOMEM;
    memcpy(e->name, name, nlen);
    e->name[nlen] = '\0';
    return 0;
}

static void parse_column_meta(struct tc *t, struct pq_chunk *c)
{
    int last = 0, id, ft;
    c->has_meta = 1;
    c->type = -1;
    c->codec = -1;
    c->dict_off = -1;
    c->data_off = -1;
    while (tc_field(t, &last, &id, &ft)) {
        switch (id) {
        case 1: { int32_t v = -1; tc_i32(t, ft, &v); c->type = v; break; }
        case 4: { int32_t v = -1; tc_i32(t, ft, &v); c->codec = v; break; }
        case 5: tc_int(t, ft, &c->num_values); break;
        case 7: tc_int(t, ft, &c->total_compressed); break;
        case 9: tc_int(t, ft, &c->data_off); break;
        case 11: tc_int(t, ft, &c->dict_off); break;
        default: tc_skip(t, ft);
        }
    }
}

static void parse_column_chunk(struct tc *t, struct pq_chunk *c, int *external, int *encrypted)
{
    int last = 0, id, ft;
    while (tc_field(t, &last, &id, &ft)) {
        if (id == 1 && ft == 8) {
            *external = 1;
            tc_skip(t, ft);
        } else if (id == 3 && ft == 12) {
            parse_column_meta(t, c);
        } else if ((id == 8 || id == 9) && !t->bad) {
            *encrypted = 1;
            tc_skip(t, ft);
        } else {
            tc_skip(t, ft);
        }
    }
}

/* ---- errors ---- */

static int file_err(struct sl_parquet *pq, struct sl_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int file_err(struct sl_parquet *pq, struct sl_error *err, int code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sl_error_set(err, code, "%s: %s", pq->name, msg);
}

/* An error while reading column leaf li of the current row group; sticky. */
static int col_err(struct sl_parquet *pq, size_t li, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int col_err(struct sl_parquet *pq, size_t li, int code, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pq->failed = 1;
    if (pq->rd && pq->rd[li].page_no > 0)
        return sl_error_set(&pq->ferr, code, "%s: row group %zu, column `%s`, page %d: %s",
                            pq->name, pq->rg, pq->leaves[li].path, pq->rd[li].page_no, msg);
    return sl_error_set(&pq->ferr, code, "%s: row group %zu, column `%s`: %s", pq->name, pq->rg,
                        pq->leaves[li].path, msg);
}

static int fail_oom(struct sl_parquet *pq)
{
    pq->failed = 1;
    return sl_error_set(&pq->ferr, SL_ENOMEM, "%s: out of memory", pq->name);
}

/* ---- footer ---- */

static int parse_footer(struct sl_parquet *pq, const uint8_t *p, size_t n, struct sl_error *err)
{
    struct tc t = {p, p + n, 0, 0, 0};
    int last = 0, id, ft, et;
    int have_schema = 0, have_rgs = 0, external = 0, encrypted = 0;

    while (tc_field(&t, &last, &id, &ft)) {
        if (id == 2 && (ft == 9 || ft == 10) && !have_schema) {
            uint32_t cnt = tc_list(&t, &et);
            if (t.bad || et != 12)
                break;
            if (cnt == 0)
                return file_err(pq, err, SL_ECORRUPT, "corrupt metadata: empty schema");
            pq->elems = calloc(cnt, sizeof *pq->elems);
            if (!pq->elems)
                return file_err(pq, err, SL_ENOMEM, "out of memory");
            pq->nelems = cnt;
            for (uint32_t i = 0; i < cnt; i++) {
                int rc = parse_schema_elem(&t, &pq->elems[i]);
                if (rc == SL_ENOMEM)
                    return file_err(pq, err, SL_ENOMEM, "out of memory");
                if (rc) {
                    t.bad = 1;
                    break;
                }
            }
            have_schema = 1;
        } else if (id == 4 && (ft == 9 || ft == 10) && !have_rgs) {
            uint32_t cnt = tc_list(&t, &et);
            if (t.bad || et != 12)
                break;
            pq->rgs = calloc(cnt ? cnt : 1, sizeof *pq->rgs);
            if (!pq->rgs)
                return file_err(pq, err, SL_ENOMEM, "out of memory");
            pq->nrgs = cnt;
            for (uint32_t i = 0; i < cnt && !t.bad; i++) {
                struct pq_rg *rg = &pq->rgs[i];
                int l2 = 0, id2, ft2;
                rg->num_rows = -1;
                while (tc_field(&t, &l2, &id2, &ft2)) {
                    if (id2 == 1 && (ft2 == 9 || ft2 == 10) && !rg->chunks) {
                        int et2;
                        uint32_t nc = tc_list(&t, &et2);
                        if (t.bad || et2 != 12) {
                            t.bad = 1;
                            break;
                        }
                        rg->chunks = calloc(nc ? nc : 1, sizeof *rg->chunks);
                        if (!rg->chunks)
                            return file_err(pq, err, SL_ENOMEM, "out of memory");
                        rg->nchunks = nc;
                        for (uint32_t k = 0; k < nc && !t.bad; k++)
                            parse_column_chunk(&t, &rg->chunks[k], &external, &encrypted);
                    } else if (id2 == 3) {
                        tc_int(&t, ft2, &rg->num_rows);
                    } else {
                        tc_skip(&t, ft2);
                    }
                }
            }
            have_rgs = 1;
        } else if (id == 3) {
            int64_t v = 0;
            tc_int(&t, ft, &v);
        } else {
            tc_skip(&t, ft);
        }
    }
    if (t.bad)
        return file_err(pq, err, SL_ECORRUPT, "corrupt footer metadata (at byte %zu of %zu)",
                        (size_t)(t.p - p), n);
    if (!have_schema || !have_rgs)
        return file_err(pq, err, SL_ECORRUPT, "corrupt footer metadata: no %s",
                        have_schema ? "row groups" : "schema");
    if (external)
        return file_err(pq, err, SL_EINVAL, "column chunks in external files are not supported");
    if (encrypted)
        return file_err(pq, err, SL_EINVAL, "encrypted columns are not supported");
    return 0;
}

/* ---- schema ---- */

struct walk {
    size_t nleaves;
    size_t leaf;
    int nrep;
    int multi;
    int list_def, elem_def;
    int empty_group;
};

struct buf_path {
    char s[256];
    size_t n;
};

static int walk_node(struct sl_parquet *pq, size_t *idx, int depth, int def, int rep,
                     struct buf_path *path, struct walk *w, struct sl_error *err)
{
    if (*idx >= pq->nelems)
        return file_err(pq, err, SL_ECORRUPT, "corrupt schema: fewer elements than declared");
    if (depth > MAX_SCHEMA_DEPTH)
        return file_err(pq, err, SL_EINVAL, "schema nests deeper than %d levels",
                        MAX_SCHEMA_DEPTH);
    struct pq_elem *e = &pq->elems[(*idx)++];
    size_t saved = path->n;
    int wrote = snprintf(path->s + path->n, sizeof path->s - path->n, "%s%s",
                         path->n ? "." : "", e->name);
    if (wrote > 0)
        path->n = path->n + (size_t)wrote >= sizeof path->s ? sizeof path->s - 1
                                                             : path->n + (size_t)wrote;
    if (e->repetition == REP_OPTIONAL) {
        def++;
    } else if (e->repetition == REP_REPEATED) {
        def++;
        rep++;
        w->nrep++;
        w->list_def = def - 1;
        w->elem_def = def;
    }
    if (e->type < 0 || e->num_children > 0) {
        if (e->num_children <= 0) {
            w->empty_group = 1;
        } else {
            if (e->num_children > 1)
                w->multi = 1;
            if ((size_t)e->num_children > pq->nelems - *idx)
                return file_err(pq, err, SL_ECORRUPT,
                                "corrupt schema: `%s` has more children than elements left",
                                e->name);
            for (int32_t c = 0; c < e->num_children; c++) {
                int rc = walk_node(pq, idx, depth + 1, def, rep, path, w, err);
                if (rc)
                    return rc;
            }
        }
    } else {
        if (e->type > PT_FLBA)
            return file_err(pq, err, SL_ECORRUPT, "corrupt schema: `%s` has unknown type %d",
                            e->name, e->type);
        if (pq->nleaves >= MAX_COLUMNS)
            return file_err(pq, err, SL_EINVAL, "more than %d columns", MAX_COLUMNS);
        struct pq_leaf *lf = &pq->leaves[pq->nleaves];
        lf->path = strdup(path->s);
        if (!lf->path)
            return file_err(pq, err, SL_ENOMEM, "out of memory");
        lf->ptype = e->type;
        lf->type_length = e->type_length;
        lf->max_def = def;
        lf->max_rep = rep;
        lf->list_def = w->list_def;
        lf->elem_def = w->elem_def;
        w->leaf = pq->nleaves++;
        w->nleaves++;
        /* remember the element for typing via the path; set below */
        lf->scale = (int32_t)(e - pq->elems); /* temporarily: element index */
    }
    path->n = saved;
    path->s[saved] = '\0';
    return 0;
}

/* Decides how leaf lf (schema element e) becomes JSON. */
static int leaf_conv(struct sl_parquet *pq, struct pq_leaf *lf, const struct pq_elem *e,
                     struct sl_error *err)
{
    const struct pq_logical *lg = &e->logical;
    int ct = e->converted;
    int dec = lg->kind == LT_DECIMAL || ct == CT_DECIMAL;
    static const int64_t unit_ns[] = {0, 1000000, 1000, 1};

    lf->scale = lg->kind == LT_DECIMAL ? lg->scale : e->scale;
    switch (lf->ptype) {
    case PT_BOOLEAN:
        lf->conv = CV_BOOL;
        break;
    case PT_INT32:
        if (dec)
            lf->conv = CV_DEC;
        else if (lg->kind == LT_DATE || ct == CT_DATE)
            lf->conv = CV_DATE;
        else if (lg->kind == LT_TIME || ct == CT_TIME_MILLIS) {
            lf->conv = CV_TIME;
            lf->unit_ns = 1000000;
        } else if ((lg->kind == LT_INTEGER && !lg->is_signed) ||
                   (ct >= CT_UINT_8 && ct <= CT_UINT_32))
            lf->conv = CV_U32;
        else
            lf->conv = CV_I32;
        break;
    case PT_INT64:
        if (dec) {
            lf->conv = CV_DEC;
        } else if (lg->kind == LT_TIMESTAMP || ct == CT_TS_MILLIS || ct == CT_TS_MICROS) {
            lf->conv = CV_TS;
            lf->unit_ns = lg->kind == LT_TIMESTAMP && lg->unit >= 1 && lg->unit <= 3
                              ? unit_ns[lg->unit]
                              : ct == CT_TS_MILLIS ? 1000000 : 1000;
        } else if (lg->kind == LT_TIME || ct == CT_TIME_MICROS) {
            lf->conv = CV_TIME;
            lf->unit_ns = lg->kind == LT_TIME && lg->unit >= 1 && lg->unit <= 3
                              ? unit_ns[lg->unit] : 1000;
        } else if ((lg->kind == LT_INTEGER && !lg->is_signed) || ct == CT_UINT_64) {
            lf->conv = CV_U64;
        } else {
            lf->conv = CV_I64;
        }
        break;
    case PT_INT96:
        lf->conv = CV_TS96;
        lf->type_length = 12;
        break;
    case PT_FLOAT:
        lf->conv = CV_FLOAT;
        break;
    case PT_DOUBLE:
        lf->conv = CV_DOUBLE;
        break;
    case PT_BYTE_ARRAY:
    case PT_FLBA:
        if (lf->ptype == PT_FLBA && (lf->type_length <= 0 || lf->type_length > (1 << 20)))
            return file_err(pq, err, SL_ECORRUPT, "column `%s`: bad fixed length %d", lf->path,
                            (int)lf->type_length);
        if (ct == CT_INTERVAL)
            return file_err(pq, err, SL_EINVAL, "column `%s`: INTERVAL is not supported",
                            lf->path);
        if (dec) {
            lf->conv = CV_DEC;
        } else if (lg->kind == LT_UUID && lf->type_length == 16) {
            lf->conv = CV_UUID;
        } else if (lg->kind == LT_FLOAT16) {
            if (lf->type_length != 2)
                return file_err(pq, err, SL_ECORRUPT, "column `%s`: FLOAT16 needs 2 bytes",
                                lf->path);
            lf->conv = CV_F16;
        } else if (lg->kind == LT_STRING || lg->kind == LT_ENUM || lg->kind == LT_JSON ||
                   ct == CT_UTF8 || ct == CT_ENUM || ct == CT_JSON) {
            lf->conv = CV_STR;
            lf->strict_utf8 = 1;
        } else {
            lf->conv = CV_BIN;
        }
        break;
    }
    if (lf->conv == CV_DEC && (lf->scale < 0 || lf->scale > 76))
        return file_err(pq, err, SL_ECORRUPT, "column `%s`: bad decimal scale %d", lf->path,
                        (int)lf->scale);
    return 0;
}

static int build_schema(struct sl_parquet *pq, struct sl_error *err)
{
    struct pq_elem *root = &pq->elems[0];
    if (root->num_children <= 0)
        return file_err(pq, err, SL_ECORRUPT, "corrupt schema: the root has no columns");
    pq->leaves = calloc(pq->nelems, sizeof *pq->leaves);
    pq->cols = calloc((size_t)root->num_children, sizeof *pq->cols);
    if (!pq->leaves || !pq->cols)
        return file_err(pq, err, SL_ENOMEM, "out of memory");
    size_t idx = 1;
    for (int32_t c = 0; c < root->num_children; c++) {
        struct walk w = {0};
        struct buf_path path;
        path.n = 0;
        path.s[0] = '\0';
        if (idx >= pq->nelems)
            return file_err(pq, err, SL_ECORRUPT,
                            "corrupt schema: fewer elements than the root declares");
        const struct pq_elem *top = &pq->elems[idx];
        int rc = walk_node(pq, &idx, 1, 0, 0, &path, &w, err);
        if (rc)
            return rc;
        if (w.multi || w.nleaves != 1 || w.empty_group)
            return file_err(pq, err, SL_EINVAL,
                            "column `%s`: struct and map columns are not supported "
                            "(only primitive columns and lists of primitives)", top->name);
        if (w.nrep > 1)
            return file_err(pq, err, SL_EINVAL, "column `%s`: nested lists are not supported",
                            top->name);
        struct pq_col *col = &pq->cols[pq->ncols++];
        col->name = top->name;
        col->namelen = strlen(top->name);
        col->leaf = w.leaf;
        col->list = w.nrep == 1;
    }
    if (idx != pq->nelems)
        return file_err(pq, err, SL_ECORRUPT, "corrupt schema: %zu elements not under the root",
                        pq->nelems - idx);
    for (size_t i = 0; i < pq->nleaves; i++) {
        struct pq_leaf *lf = &pq->leaves[i];
        const struct pq_elem *e = &pq->elems[lf->scale];
        int rc = leaf_conv(pq, lf, e, err);
        if (rc)
            return rc;
    }
    /* Row groups must describe every leaf with a consistent chunk. */
    uint64_t first = 0;
    for (size_t r = 0; r < pq->nrgs; r++) {
        struct pq_rg *rg = &pq->rgs[r];
        if (rg->num_rows < 0)
            return file_err(pq, err, SL_ECORRUPT, "row group %zu: missing or negative row count",
                            r);
        if (rg->nchunks != pq->nleaves)
            return file_err(pq, err, SL_ECORRUPT, "row group %zu: %zu column chunks for %zu columns",
                            r, rg->nchunks, pq->nleaves);
        for (size_t k = 0; k < rg->nchunks; k++) {
            struct pq_chunk *ch = &rg->chunks[k];
            if (!ch->has_meta)
                return file_err(pq, err, SL_ECORRUPT, "row group %zu, column `%s`: no metadata",
                                r, pq->leaves[k].path);
            if (ch->type != pq->leaves[k].ptype)
                return file_err(pq, err, SL_ECORRUPT,
                                "row group %zu, column `%s`: chunk type %d differs from schema",
                                r, pq->leaves[k].path, ch->type);
            if (ch->codec != CODEC_NONE && ch->codec != CODEC_SNAPPY && ch->codec != CODEC_GZIP &&
                ch->codec != CODEC_ZSTD) {
                static const char *const names[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO",
                                                    "BROTLI", "LZ4", "ZSTD", "LZ4_RAW"};
                return file_err(pq, err, SL_EINVAL,
                                "row group %zu, column `%s`: compression %s is not supported "
                                "(use SNAPPY, ZSTD, GZIP or none)", r, pq->leaves[k].path,
                                ch->codec >= 0 && ch->codec <= 7 ? names[ch->codec] : "unknown");
            }
            int64_t start = ch->data_off;
            if (ch->dict_off > 0 && ch->dict_off < start)
                start = ch->dict_off;
            if (start < 4 || ch->total_compressed <= 0 || ch->num_values < 0 ||
                (uint64_t)start > pq->meta_start ||
                (uint64_t)ch->total_compressed > pq->meta_start - (uint64_t)start)
                return file_err(pq, err, SL_ECORRUPT,
                                "row group %zu, column `%s`: chunk [%lld, +%lld) lies outside "
                                "the data area", r, pq->leaves[k].path, (long long)start,
                                (long long)ch->total_compressed);
        }
        rg->first_row = first;
        if ((uint64_t)rg->num_rows > UINT64_MAX / 2 - first)
            return file_err(pq, err, SL_ECORRUPT, "row counts overflow");
        first += (uint64_t)rg->num_rows;
    }
    pq->num_rows = first;
    return 0;
}

/* ---- I/O ---- */

static int read_at(struct sl_parquet *pq, uint64_t off, void *dst, size_t n, struct sl_error *err)
{
    if (off > pq->size || n > pq->size - off)
        return file_err(pq, err, SL_ECORRUPT, "truncated: read of %zu bytes at %llu past the end "
                        "(%llu bytes)", n, (unsigned long long)off,
                        (unsigned long long)pq->size);
    if (pq->mem) {
        memcpy(dst, pq->mem + off, n);
        return 0;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t k = pread(pq->fd, (char *)dst + done, n - done, (off_t)(off + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return file_err(pq, err, SL_EIO, "read failed: %s", strerror(errno));
        if (k == 0)
            return file_err(pq, err, SL_ECORRUPT, "truncated: file ended at %llu while reading",
                            (unsigned long long)(off + done));
        done += (size_t)k;
    }
    return 0;
}

static int grow(uint8_t **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    void *q = realloc(*p, n);
    if (!q)
        return SL_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

/* Points *out at n bytes of the file at off (within reader r's chunk): in memory, in the
 * preloaded chunk, or read into r->raw. */
static int fetch(struct sl_parquet *pq, size_t li, uint64_t off, size_t n, const uint8_t **out)
{
    struct pq_reader *r = &pq->rd[li];
    if (pq->mem) {
        if (off > pq->size || n > pq->size - off)
            return col_err(pq, li, SL_ECORRUPT, "truncated file");
        *out = pq->mem + off;
        return 0;
    }
    if (r->cbuf_len && off >= r->cbuf_off && n <= r->cbuf_len &&
        off - r->cbuf_off <= r->cbuf_len - n) {
        *out = r->cbuf + (off - r->cbuf_off);
        return 0;
    }
    if (grow(&r->raw, &r->rawcap, n ? n : 1))
        return fail_oom(pq);
    struct sl_error e;
    if (read_at(pq, off, r->raw, n, &e) != 0) {
        pq->failed = 1;
        pq->ferr = e;
        return e.code;
    }
    *out = r->raw;
    return 0;
}

/* ---- decompression ---- */

static int decompress(struct sl_parquet *pq, size_t li, int codec, const uint8_t *src, size_t n,
                      uint8_t *dst, size_t cap)
{
    switch (codec) {
    case CODEC_NONE:
        if (n != cap)
            return col_err(pq, li, SL_ECORRUPT, "uncompressed page is %zu bytes, header says %zu",
                           n, cap);
        if (n)
            memcpy(dst, src, n);
        return 0;
    case CODEC_SNAPPY: {
        /* libsnappy checks every element against both buffers; the stored length must be
         * the page header's exactly */
        size_t want = 0, got = cap;
        if (snappy_uncompressed_length((const char *)src, n, &want) != SNAPPY_OK || want != cap ||
            snappy_uncompress((const char *)src, n, (char *)dst, &got) != SNAPPY_OK || got != cap)
            return col_err(pq, li, SL_ECORRUPT, "corrupt Snappy data");
        return 0;
    }
    case CODEC_ZSTD: {
        if (cap == 0 && n == 0)
            return 0;
        size_t k = ZSTD_decompress(dst, cap, src, n);
        if (ZSTD_isError(k))
            return col_err(pq, li, SL_ECORRUPT, "corrupt Zstd data: %s", ZSTD_getErrorName(k));
        if (k != cap)
            return col_err(pq, li, SL_ECORRUPT, "Zstd data is %zu bytes, header says %zu", k,
                           cap);
        return 0;
    }
    case CODEC_GZIP: {
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (n > UINT_MAX || cap > UINT_MAX)
            return col_err(pq, li, SL_ECORRUPT, "GZIP page too large");
        if (inflateInit2(&zs, 15 + 32) != Z_OK)
            return fail_oom(pq);
        zs.next_in = (Bytef *)(uintptr_t)src;
        zs.avail_in = (uInt)n;
        zs.next_out = dst;
        zs.avail_out = (uInt)cap;
        int zr = inflate(&zs, Z_FINISH);
        size_t got = cap - zs.avail_out;
        inflateEnd(&zs);
        if (zr != Z_STREAM_END || got != cap)
            return col_err(pq, li, SL_ECORRUPT, "corrupt GZIP data");
        return 0;
    }
    }
    return col_err(pq, li, SL_EINVAL, "unsupported compression %d", codec);
}

/* ---- encodings ---- */

static int bit_width(unsigned v)
{
    int w = 0;
    while (v) {
        w++;
        v >>= 1;
    }
    return w;
}

static uint32_t load_le(const uint8_t *p, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

/* Reads an unsigned LEB128 varint from [*p, end); -1 when cut short or too long. */
static int uvarint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Decodes n values of bit width bw (0..32) of the RLE / bit-packed hybrid in p[0..len) into
 * out8 (when non-NULL, bw <= 8) or out32. Values above max fail. Returns 0 or -1. */
static int rle_decode(const uint8_t *p, size_t len, int bw, uint32_t n, uint8_t *out8,
                      uint32_t *out32, uint32_t max)
{
    const uint8_t *end = p + len;
    size_t vbytes = ((size_t)bw + 7) / 8;
    uint32_t i = 0;

    if (bw == 0) {
        if (out8)
            memset(out8, 0, n);
        else
            memset(out32, 0, (size_t)n * sizeof *out32);
        return 0;
    }
    if (bw > 32)
        return -1;
    uint32_t mask = bw == 32 ? 0xffffffffu : (1u << bw) - 1;
    while (i < n) {
        uint64_t h;
        if (uvarint(&p, end, &h) != 0)
            return -1;
        if (h & 1) {
            uint64_t groups = h >> 1;
            uint64_t cnt = groups > (1u << 29) ? (1u << 31) : groups * 8;
            uint32_t take = cnt < (uint64_t)(n - i) ? (uint32_t)cnt : n - i;
            size_t need = ((size_t)take * (size_t)bw + 7) / 8;
            if (need > (size_t)(end - p))
                return -1;
            uint64_t acc = 0;
            int nb = 0;
            const uint8_t *q = p;
            for (uint32_t k = 0; k < take; k++) {
                while (nb < bw) {
                    acc |= (uint64_t)*q++ << nb;
                    nb += 8;
                }
                uint32_t v = (uint32_t)acc & mask;
                acc >>= bw;
                nb -= bw;
                if (v > max)
                    return -1;
                if (out8)
                    out8[i + k] = (uint8_t)v;
                else
                    out32[i + k] = v;
            }
            uint64_t full = groups * (uint64_t)bw;
            p += full < (uint64_t)(end - p) && groups <= (1u << 29) ? (size_t)full
                                                                    : (size_t)(end - p);
            i += take;
        } else {
            uint64_t cnt = h >> 1;
            if (vbytes > (size_t)(end - p))
                return -1;
            uint32_t v = load_le(p, vbytes);
            p += vbytes;
            if (v > max)
                return -1;
            uint32_t take = cnt < (uint64_t)(n - i) ? (uint32_t)cnt : n - i;
            if (out8)
                memset(out8 + i, (int)v, take);
            else
                for (uint32_t k = 0; k < take; k++)
                    out32[i + k] = v;
            i += take;
        }
    }
    return 0;
}

static uint64_t get_bits(const uint8_t *p, uint64_t bitoff, int w)
{
    uint64_t v = 0;
    int got = 0;
    while (got < w) {
        uint64_t b = bitoff + (uint64_t)got;
        int sh = (int)(b & 7);
        int take = 8 - sh < w - got ? 8 - sh : w - got;
        v |= (uint64_t)((p[b >> 3] >> sh) & ((1u << take) - 1)) << got;
        got += take;
    }
    return v;
}

/* DELTA_BINARY_PACKED: decodes exactly n values (the header's count must be n) from p[0..len)
 * into out (wrapping 64-bit arithmetic), *used = bytes consumed. Returns 0 or -1. */
static int dbp_decode(const uint8_t *p, size_t len, uint64_t *out, size_t n, size_t *used)
{
    const uint8_t *start = p, *end = p + len;
    uint64_t bs, m, total, zz;
    if (uvarint(&p, end, &bs) || uvarint(&p, end, &m) || uvarint(&p, end, &total) ||
        uvarint(&p, end, &zz))
        return -1;
    if (bs == 0 || bs % 128 || bs > (1u << 20) || m == 0 || bs % m || (bs / m) % 32)
        return -1;
    if (total != n)
        return -1;
    uint64_t vpm = bs / m;
    size_t i = 0;
    uint64_t prev = (zz >> 1) ^ (uint64_t)-(int64_t)(zz & 1);
    if (n > 0)
        out[i++] = prev;
    while (i < n) {
        uint64_t mdz;
        if (uvarint(&p, end, &mdz))
            return -1;
        uint64_t min_delta = (mdz >> 1) ^ (uint64_t)-(int64_t)(mdz & 1);
        if (m > (uint64_t)(end - p))
            return -1;
        const uint8_t *widths = p;
        p += m;
        for (uint64_t j = 0; j < m && i < n; j++) {
            int w = widths[j];
            if (w > 64)
                return -1;
            size_t take = vpm < n - i ? (size_t)vpm : n - i;
            size_t need = (take * (size_t)w + 7) / 8;
            if (need > (size_t)(end - p))
                return -1;
            for (size_t k = 0; k < take; k++) {
                uint64_t d = w ? get_bits(p, (uint64_t)k * (uint64_t)w, w) : 0;
                prev = prev + min_delta + d;
                out[i++] = prev;
            }
            size_t full = (size_t)(vpm * (uint64_t)w / 8);
            p += full < (size_t)(end - p) ? full : (size_t)(end - p);
        }
    }
    *used = (size_t)(p - start);
    return 0;
}

/* ---- pages ---- */

struct pq_page {
    int type;
    int32_t usize, csize;
    int have_type, have_usize, have_csize;
    int have_v1, have_v2, have_dict;
    int32_t num_values, num_nulls, num_rows;
    int32_t encoding, def_enc, rep_enc;
    int32_t def_len, rep_len;
    int is_compressed;
};

static void parse_page_header(struct tc *t, struct pq_page *pg)
{
    int last = 0, id, ft;
    memset(pg, 0, sizeof *pg);
    pg->is_compressed = 1;
    pg->num_values = -1;
    pg->encoding = -1;
    while (tc_field(t, &last, &id, &ft)) {
        if (id == 1) {
            tc_i32(t, ft, &pg->type);
            pg->have_type = 1;
        } else if (id == 2) {
            tc_i32(t, ft, &pg->usize);
            pg->have_usize = 1;
        } else if (id == 3) {
            tc_i32(t, ft, &pg->csize);
            pg->have_csize = 1;
        } else if ((id == 5 || id == 7 || id == 8) && ft == 12) {
            int l2 = 0, id2, ft2;
            if (id == 5)
                pg->have_v1 = 1;
            else if (id == 7)
                pg->have_dict = 1;
            else
                pg->have_v2 = 1;
            while (tc_field(t, &l2, &id2, &ft2)) {
                if (id2 == 1)
                    tc_i32(t, ft2, &pg->num_values);
                else if (id == 5 && id2 == 2)
                    tc_i32(t, ft2, &pg->encoding);
                else if (id == 5 && id2 == 3)
                    tc_i32(t, ft2, &pg->def_enc);
                else if (id == 5 && id2 == 4)
                    tc_i32(t, ft2, &pg->rep_enc);
                else if (id == 7 && id2 == 2)
                    tc_i32(t, ft2, &pg->encoding);
                else if (id == 8 && id2 == 2)
                    tc_i32(t, ft2, &pg->num_nulls);
                else if (id == 8 && id2 == 3)
                    tc_i32(t, ft2, &pg->num_rows);
                else if (id == 8 && id2 == 4)
                    tc_i32(t, ft2, &pg->encoding);
                else if (id == 8 && id2 == 5)
                    tc_i32(t, ft2, &pg->def_len);
                else if (id == 8 && id2 == 6)
                    tc_i32(t, ft2, &pg->rep_len);
                else if (id == 8 && id2 == 7 && (ft2 == 1 || ft2 == 2))
                    pg->is_compressed = ft2 == 1;
                else
                    tc_skip(t, ft2);
            }
        } else {
            tc_skip(t, ft);
        }
    }
}

/* Decodes n PLAIN values of leaf lf from p[0..len) into out; *used = bytes consumed. */
static int plain_decode(const struct pq_leaf *lf, const uint8_t *p, size_t len, uint32_t n,
                        uint8_t *out, size_t *used)
{
    size_t need;
    switch (lf->ptype) {
    case PT_BOOLEAN:
        need = ((size_t)n + 7) / 8;
        if (need > len)
            return -1;
        for (uint32_t i = 0; i < n; i++)
            out[i] = (p[i >> 3] >> (i & 7)) & 1;
        *used = need;
        return 0;
    case PT_INT32:
    case PT_FLOAT:
    case PT_INT64:
    case PT_DOUBLE:
        need = (size_t)n * esize_of(lf->ptype);
        if (need > len)
            return -1;
        memcpy(out, p, need);
        *used = need;
        return 0;
    case PT_BYTE_ARRAY: {
        struct pq_bytes *b = (struct pq_bytes *)(void *)out;
        size_t off = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (len - off < 4)
                return -1;
            uint32_t l = load_le(p + off, 4);
            off += 4;
            if (l > len - off)
                return -1;
            b[i].p = p + off;
            b[i].n = l;
            off += l;
        }
        *used = off;
        return 0;
    }
    default: { /* FLBA, INT96 */
        struct pq_bytes *b = (struct pq_bytes *)(void *)out;
        size_t w = (size_t)lf->type_length;
        if (n && w > len / n)
            return -1;
        for (uint32_t i = 0; i < n; i++) {
            b[i].p = p + (size_t)i * w;
            b[i].n = w;
        }
        *used = (size_t)n * w;
        return 0;
    }
    }
}

static int decode_dict_page(struct sl_parquet *pq, size_t li, const struct pq_page *pg,
                            const uint8_t *src, size_t n)
{
    struct pq_reader *r = &pq->rd[li];
    const struct pq_leaf *lf = &pq->leaves[li];
    if (r->has_dict)
        return col_err(pq, li, SL_ECORRUPT, "a second dictionary page");
    if (!pg->have_dict || pg->num_values < 0 || pg->num_values > (int32_t)MAX_PAGE_VALUES)
        return col_err(pq, li, SL_ECORRUPT, "bad dictionary page header");
    if (pg->encoding != ENC_PLAIN && pg->encoding != ENC_PLAIN_DICT)
        return col_err(pq, li, SL_EINVAL, "dictionary encoding %d is not supported",
                       pg->encoding);
    size_t us = (size_t)pg->usize;
    if (grow(&r->dict_mem, &r->dict_memcap, us ? us : 1))
        return fail_oom(pq);
    int rc = decompress(pq, li, r->ch->codec, src, n, r->dict_mem, us);
    if (rc)
        return rc;
    size_t es = esize_of(lf->ptype);
    if (grow(&r->dict, &r->dictcap, ((size_t)pg->num_values + 1) * es))
        return fail_oom(pq);
    size_t used;
    if (plain_decode(lf, r->dict_mem, us, (uint32_t)pg->num_values, r->dict, &used) != 0)
        return col_err(pq, li, SL_ECORRUPT, "dictionary page ends early");
    r->ndict = (uint32_t)pg->num_values;
    r->has_dict = 1;
    return 0;
}

/* Decodes the nval values of the current data page from p[0..len) with encoding enc. */
static int decode_values(struct sl_parquet *pq, size_t li, int enc, const uint8_t *p, size_t len)
{
    struct pq_reader *r = &pq->rd[li];
    const struct pq_leaf *lf = &pq->leaves[li];
    size_t es = esize_of(lf->ptype);
    uint32_t n = r->nval;
    size_t used;

    if (grow(&r->vals, &r->valcap, ((size_t)n + 1) * es))
        return fail_oom(pq);
    switch (enc) {
    case ENC_PLAIN:
        if (plain_decode(lf, p, len, n, r->vals, &used) != 0)
            return col_err(pq, li, SL_ECORRUPT, "PLAIN values run past the page (%u values in "
                           "%zu bytes)", n, len);
        return 0;
    case ENC_PLAIN_DICT:
    case ENC_RLE_DICT: {
        if (!r->has_dict)
            return col_err(pq, li, SL_ECORRUPT, "dictionary-encoded page without a dictionary");
        if (n == 0)
            return 0;
        if (len < 1 || p[0] > 32)
            return col_err(pq, li, SL_ECORRUPT, "bad dictionary index bit width");
        if (r->ndict == 0)
            return col_err(pq, li, SL_ECORRUPT, "index into an empty dictionary");
        if (grow((uint8_t **)&r->idx, &r->idxcap, (size_t)n * sizeof *r->idx))
            return fail_oom(pq);
        if (rle_decode(p + 1, len - 1, p[0], n, NULL, r->idx, r->ndict - 1) != 0)
            return col_err(pq, li, SL_ECORRUPT, "corrupt dictionary indices (or an index past "
                           "the %u-entry dictionary)", r->ndict);
        switch (es) {
        case 1:
            for (uint32_t i = 0; i < n; i++)
                r->vals[i] = r->dict[r->idx[i]];
            break;
        case 4:
            for (uint32_t i = 0; i < n; i++)
                memcpy(r->vals + (size_t)i * 4, r->dict + (size_t)r->idx[i] * 4, 4);
            break;
        case 8:
            for (uint32_t i = 0; i < n; i++)
                memcpy(r->vals + (size_t)i * 8, r->dict + (size_t)r->idx[i] * 8, 8);
            break;
        default: {
            struct pq_bytes *o = (struct pq_bytes *)(void *)r->vals;
            const struct pq_bytes *d = (const struct pq_bytes *)(const void *)r->dict;
            for (uint32_t i = 0; i < n; i++)
                o[i] = d[r->idx[i]];
        }
        }
        return 0;
    }
    case ENC_RLE:
        if (lf->ptype != PT_BOOLEAN)
            return col_err(pq, li, SL_EINVAL, "RLE values are only supported for booleans");
        if (len < 4 || load_le(p, 4) > len - 4 ||
            rle_decode(p + 4, load_le(p, 4), 1, n, r->vals, NULL, 1) != 0)
            return col_err(pq, li, SL_ECORRUPT, "corrupt RLE boolean values");
        return 0;
    case ENC_DBP:
        if (lf->ptype != PT_INT32 && lf->ptype != PT_INT64)
            return col_err(pq, li, SL_ECORRUPT, "DELTA_BINARY_PACKED on a non-integer column");
        if (grow((uint8_t **)&r->tmp64, &r->tmpcap, ((size_t)n + 1) * 8))
            return fail_oom(pq);
        if (dbp_decode(p, len, r->tmp64, n, &used) != 0)
            return col_err(pq, li, SL_ECORRUPT, "corrupt DELTA_BINARY_PACKED values");
        if (lf->ptype == PT_INT32) {
            for (uint32_t i = 0; i < n; i++) {
                int32_t v = (int32_t)(uint32_t)r->tmp64[i];
                memcpy(r->vals + (size_t)i * 4, &v, 4);
            }
        } else {
            memcpy(r->vals, r->tmp64, (size_t)n * 8);
        }
        return 0;
    case ENC_DLBA:
    case ENC_DBA: {
        if (lf->ptype != PT_BYTE_ARRAY)
            return col_err(pq, li, SL_ECORRUPT, "delta byte-array encoding on a non byte-array "
                           "column");
        /* DBA: prefix lengths, then DLBA suffixes. tmp64 holds prefix lengths in [0, n) and
         * suffix lengths in [n, 2n). */
        if (grow((uint8_t **)&r->tmp64, &r->tmpcap, ((size_t)n * 2 + 1) * 8))
            return fail_oom(pq);
        uint64_t *pre = r->tmp64, *suf = r->tmp64 + n;
        size_t off = 0;
        if (enc == ENC_DBA) {
            if (dbp_decode(p, len, pre, n, &used) != 0)
                return col_err(pq, li, SL_ECORRUPT, "corrupt DELTA_BYTE_ARRAY prefix lengths");
            off = used;
        }
        if (dbp_decode(p + off, len - off, suf, n, &used) != 0)
            return col_err(pq, li, SL_ECORRUPT, "corrupt delta byte-array lengths");
        off += used;
        struct pq_bytes *o = (struct pq_bytes *)(void *)r->vals;
        if (enc == ENC_DLBA) {
            for (uint32_t i = 0; i < n; i++) {
                if (suf[i] > len - off)
                    return col_err(pq, li, SL_ECORRUPT, "byte-array values run past the page");
                o[i].p = p + off;
                o[i].n = (size_t)suf[i];
                off += (size_t)suf[i];
            }
            return 0;
        }
        /* Total output size first, so it is bounded before allocating. */
        uint64_t total = 0, prevlen = 0, sufbytes = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (pre[i] > prevlen || suf[i] > len - off || sufbytes > len - off - suf[i])
                return col_err(pq, li, SL_ECORRUPT, "corrupt DELTA_BYTE_ARRAY values");
            sufbytes += suf[i];
            prevlen = pre[i] + suf[i];
            total += prevlen;
            if (total > MAX_PAGE)
                return col_err(pq, li, SL_ECORRUPT, "DELTA_BYTE_ARRAY page expands past %u bytes",
                               MAX_PAGE);
        }
        if (grow(&r->extra, &r->extracap, (size_t)total + 1))
            return fail_oom(pq);
        uint8_t *w = r->extra;
        const uint8_t *prevp = w;
        for (uint32_t i = 0; i < n; i++) {
            memmove(w, prevp, (size_t)pre[i]);
            memcpy(w + pre[i], p + off, (size_t)suf[i]);
            off += (size_t)suf[i];
            o[i].p = w;
            o[i].n = (size_t)(pre[i] + suf[i]);
            prevp = w;
            w += o[i].n;
        }
        return 0;
    }
    case ENC_BSS: {
        size_t k = lf->ptype == PT_FLBA ? (size_t)lf->type_length : es;
        if (lf->ptype == PT_BOOLEAN || lf->ptype == PT_BYTE_ARRAY || lf->ptype == PT_INT96)
            return col_err(pq, li, SL_ECORRUPT, "BYTE_STREAM_SPLIT on an unsupported type");
        if (n && k > len / n)
            return col_err(pq, li, SL_ECORRUPT, "BYTE_STREAM_SPLIT values run past the page");
        uint8_t *dst = r->vals;
        if (lf->ptype == PT_FLBA) {
            if (grow(&r->extra, &r->extracap, (size_t)n * k + 1))
                return fail_oom(pq);
            dst = r->extra;
        }
        for (uint32_t i = 0; i < n; i++)
            for (size_t b = 0; b < k; b++)
                dst[(size_t)i * k + b] = p[b * n + i];
        if (lf->ptype == PT_FLBA) {
            struct pq_bytes *o = (struct pq_bytes *)(void *)r->vals;
            for (uint32_t i = 0; i < n; i++) {
                o[i].p = r->extra + (size_t)i * k;
                o[i].n = k;
            }
        }
        return 0;
    }
    default:
        return col_err(pq, li, SL_EINVAL, "encoding %d is not supported", enc);
    }
}

/* Loads the next data page of leaf li, decoding dictionary pages met on the way. When *skip
 * is non-zero and the column is flat, data pages whose rows all come before it are passed
 * over unread, reducing *skip. Returns 1 when a page is loaded, 0 at the end of the chunk,
 * or a negative SL_E* (sticky). */
static int load_page(struct sl_parquet *pq, size_t li, uint64_t *skip)
{
    struct pq_reader *r = &pq->rd[li];
    const struct pq_leaf *lf = &pq->leaves[li];
    int rc;

    for (;;) {
        r->nlev = r->pos = r->nval = r->vpos = 0;
        if (r->off >= r->end)
            return 0;
        uint64_t avail = r->end - r->off;
        size_t win = (size_t)(avail < 1024 ? avail : 1024);
        if (pq->mem || r->cbuf_len)
            win = (size_t)avail;
        struct pq_page pg;
        const uint8_t *h;
        size_t hlen;
        r->page_no++;
        for (;;) {
            if ((rc = fetch(pq, li, r->off, win, &h)) != 0)
                return rc;
            struct tc t = {h, h + win, 0, 0, 0};
            parse_page_header(&t, &pg);
            if (!t.bad) {
                hlen = (size_t)(t.p - h);
                break;
            }
            if (t.out && win < avail && win < MAX_HEADER) {
                win = (size_t)(avail < (uint64_t)win * 16 ? avail : (uint64_t)win * 16);
                continue;
            }
            return col_err(pq, li, SL_ECORRUPT, "corrupt page header at offset %llu%s",
                           (unsigned long long)r->off,
                           t.out ? " (runs past the column chunk)" : "");
        }
        if (!pg.have_type || !pg.have_usize || !pg.have_csize || pg.usize < 0 || pg.csize < 0)
            return col_err(pq, li, SL_ECORRUPT, "page header lacks its type or sizes");
        if ((uint64_t)pg.csize > avail - hlen)
            return col_err(pq, li, SL_ECORRUPT, "page of %d bytes runs past the column chunk "
                           "(%llu bytes left)", (int)pg.csize,
                           (unsigned long long)(avail - hlen));
        if ((uint32_t)pg.usize > MAX_PAGE)
            return col_err(pq, li, SL_ECORRUPT, "page of %d bytes exceeds the %u-byte limit",
                           (int)pg.usize, MAX_PAGE);
        uint64_t data_off = r->off + hlen;
        r->off = data_off + (uint64_t)pg.csize;

        if (pg.type == PAGE_DICT) {
            if ((rc = fetch(pq, li, data_off, (size_t)pg.csize, &h)) != 0)
                return rc;
            if ((rc = decode_dict_page(pq, li, &pg, h, (size_t)pg.csize)) != 0)
                return rc;
            continue;
        }
        if (pg.type != PAGE_DATA && pg.type != PAGE_DATA_V2)
            continue; /* index pages and unknown kinds carry no rows */
        int v2 = pg.type == PAGE_DATA_V2;
        if ((v2 && !pg.have_v2) || (!v2 && !pg.have_v1) || pg.num_values < 0 ||
            (v2 && (pg.num_rows < 0 || pg.def_len < 0 || pg.rep_len < 0)))
            return col_err(pq, li, SL_ECORRUPT, "bad data page header");
        if ((uint32_t)pg.num_values > MAX_PAGE_VALUES)
            return col_err(pq, li, SL_ECORRUPT, "page of %d values exceeds the %u-value limit",
                           (int)pg.num_values, MAX_PAGE_VALUES);
        if (pg.num_values > r->levels_left)
            return col_err(pq, li, SL_ECORRUPT, "pages hold more values than the chunk's %lld",
                           (long long)r->ch->num_values);
        r->levels_left -= pg.num_values;
        if (skip && *skip && lf->max_rep == 0 && (uint64_t)pg.num_values <= *skip) {
            *skip -= (uint64_t)pg.num_values;
            continue;
        }

        if ((rc = fetch(pq, li, data_off, (size_t)pg.csize, &h)) != 0)
            return rc;
        uint32_t nlev = (uint32_t)pg.num_values;
        const uint8_t *lv = NULL, *body;
        size_t lvlen = 0, bodylen;
        if (v2) {
            uint64_t lvl = (uint64_t)pg.def_len + (uint64_t)pg.rep_len;
            if (lvl > (uint64_t)pg.csize || lvl > (uint64_t)pg.usize)
                return col_err(pq, li, SL_ECORRUPT, "level lengths exceed the page");
            lv = h;
            lvlen = (size_t)lvl;
            size_t ulen = (size_t)pg.usize - lvlen;
            if (pg.is_compressed && r->ch->codec != CODEC_NONE) {
                if (grow(&r->pbuf, &r->pcap, ulen + 1))
                    return fail_oom(pq);
                if ((rc = decompress(pq, li, r->ch->codec, h + lvlen, (size_t)pg.csize - lvlen,
                                     r->pbuf, ulen)) != 0)
                    return rc;
                body = r->pbuf;
            } else {
                if ((size_t)pg.csize - lvlen != ulen)
                    return col_err(pq, li, SL_ECORRUPT, "page sizes disagree");
                body = h + lvlen;
            }
            bodylen = ulen;
        } else {
            if (r->ch->codec != CODEC_NONE) {
                if (grow(&r->pbuf, &r->pcap, (size_t)pg.usize + 1))
                    return fail_oom(pq);
                if ((rc = decompress(pq, li, r->ch->codec, h, (size_t)pg.csize, r->pbuf,
                                     (size_t)pg.usize)) != 0)
                    return rc;
                body = r->pbuf;
            } else {
                if (pg.csize != pg.usize)
                    return col_err(pq, li, SL_ECORRUPT, "page sizes disagree");
                body = h;
            }
            bodylen = (size_t)pg.usize;
        }

        /* Levels. */
        if (grow(&r->def, &r->defcap, (size_t)nlev + 1) ||
            (lf->max_rep && grow(&r->rep, &r->repcap, (size_t)nlev + 1)))
            return fail_oom(pq);
        for (int which = 0; which < 2; which++) {
            int maxl = which == 0 ? lf->max_rep : lf->max_def;
            uint8_t *out = which == 0 ? r->rep : r->def;
            if (maxl == 0)
                continue;
            const uint8_t *lp;
            size_t ll;
            if (v2) {
                lp = which == 0 ? lv : lv + pg.rep_len;
                ll = (size_t)(which == 0 ? pg.rep_len : pg.def_len);
            } else {
                int le = which == 0 ? pg.rep_enc : pg.def_enc;
                if (le != ENC_RLE)
                    return col_err(pq, li, SL_EINVAL, "%s level encoding %d is not supported",
                                   which ? "definition" : "repetition", le);
                if (bodylen < 4 || load_le(body, 4) > bodylen - 4)
                    return col_err(pq, li, SL_ECORRUPT, "%s levels run past the page",
                                   which ? "definition" : "repetition");
                lp = body + 4;
                ll = load_le(body, 4);
                body += 4 + ll;
                bodylen -= 4 + ll;
            }
            if (rle_decode(lp, ll, bit_width((unsigned)maxl), nlev, out, NULL,
                           (uint32_t)maxl) != 0)
                return col_err(pq, li, SL_ECORRUPT, "corrupt %s levels",
                               which ? "definition" : "repetition");
        }
        uint32_t nval = nlev;
        if (lf->max_def) {
            nval = 0;
            for (uint32_t i = 0; i < nlev; i++)
                nval += r->def[i] == lf->max_def;
        }
        if (lf->max_rep && nlev && r->rep[0] != 0 && r->page_no == 1)
            return col_err(pq, li, SL_ECORRUPT, "first value does not start a row");
        r->nlev = nlev;
        r->nval = nval;
        if ((rc = decode_values(pq, li, pg.encoding, body, bodylen)) != 0)
            return rc;
        return 1;
    }
}

/* ---- values to JSON ---- */


static size_t fmt_u64(uint64_t u, char *o)
{
    char tmp[24];
    size_t n = 0, w = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n)
        o[w++] = tmp[--n];
    return w;
}

static size_t fmt_i64(int64_t v, char *o)
{
    if (v < 0) {
        o[0] = '-';
        return 1 + fmt_u64((uint64_t)0 - (uint64_t)v, o + 1);
    }
    return fmt_u64((uint64_t)v, o);
}

/* Unscaled two's-complement value (up to 128 bits) with `scale` decimal places. */
static size_t fmt_decimal(unsigned __int128 mag, int neg, int scale, char *o)
{
    char digits[80];
    size_t nd = 0, w = 0;
    while (mag > UINT64_MAX) {
        digits[nd++] = (char)('0' + (int)(mag % 10));
        mag /= 10;
    }
    uint64_t m64 = (uint64_t)mag; /* 64-bit division is much cheaper than 128-bit */
    do {
        digits[nd++] = (char)('0' + (int)(m64 % 10));
        m64 /= 10;
    } while (m64);
    while ((int)nd <= scale)
        digits[nd++] = '0';
    if (neg)
        o[w++] = '-';
    while (nd) {
        if ((int)nd == scale)
            o[w++] = '.';
        o[w++] = digits[--nd];
    }
    return w;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static void put2(char *o, unsigned v)
{
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
}

/* RFC 3339 UTC text of secs + ns/1e9 (0 <= ns < 1e9), as sl_time_format writes it: no
 * fraction on whole seconds, else 3, 6 or 9 digits. */
static size_t fmt_timestamp(int64_t secs, uint32_t ns, char *o)
{
    /* Consecutive values mostly fall on the same day: keep its date text. */
    static _Thread_local int64_t cached_days = INT64_MIN;
    static _Thread_local char cached_date[11];
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    size_t w;
    if (days == cached_days) {
        memcpy(o, cached_date, 10);
        w = 10;
        goto time;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (y >= 0 && y <= 9999) {
        o[0] = (char)('0' + y / 1000);
        o[1] = (char)('0' + y / 100 % 10);
        o[2] = (char)('0' + y / 10 % 10);
        o[3] = (char)('0' + y % 10);
        w = 4;
    } else {
        w = (size_t)snprintf(o, 24, "%lld", (long long)y);
    }
    o[w++] = '-';
    put2(o + w, m);
    w += 2;
    o[w++] = '-';
    put2(o + w, d);
    w += 2;
    if (w == 10) {
        memcpy(cached_date, o, 10);
        cached_days = days;
    }
time:
    o[w++] = 'T';
    put2(o + w, (unsigned)(sod / 3600));
    w += 2;
    o[w++] = ':';
    put2(o + w, (unsigned)(sod / 60 % 60));
    w += 2;
    o[w++] = ':';
    put2(o + w, (unsigned)(sod % 60));
    w += 2;
    if (ns) {
        int digits = ns % 1000000 == 0 ? 3 : ns % 1000 == 0 ? 6 : 9;
        uint32_t v = digits == 3 ? ns / 1000000 : digits == 6 ? ns / 1000 : ns;
        o[w++] = '.';
        for (int i = digits - 1; i >= 0; i--) {
            o[w + (size_t)i] = (char)('0' + v % 10);
            v /= 10;
        }
        w += (size_t)digits;
    }
    o[w++] = 'Z';
    o[w] = '\0';
    return w;
}

/* Splits v units of unit_ns nanoseconds into seconds and nanoseconds, flooring. */
static void split_units(int64_t v, int64_t unit_ns, int64_t *secs, uint32_t *ns)
{
    int64_t per = NS_PER_SEC / unit_ns;
    int64_t s = v / per, r = v % per;
    if (r < 0) {
        r += per;
        s--;
    }
    *secs = s;
    *ns = (uint32_t)(r * unit_ns);
}

static int valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = sl_utf8_seqlen((const char *)s + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

static size_t fmt_float_json(double d, int single, char *o, enum sl_json_kind *kind)
{
    if (isnan(d) || isinf(d)) {
        *kind = SL_JSON_STRING;
        const char *s = isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity";
        size_t n = strlen(s);
        memcpy(o, s, n + 1);
        return n;
    }
    *kind = SL_JSON_NUMBER;
    return single ? sl_value_format_float((float)d, o) : sl_value_format_double(d, o);
}

static float half_to_float(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v;
    if (exp == 0)
        v = ldexpf((float)man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexpf((float)(man | 0x400), exp - 25);
    return sign ? -v : v;
}

/* Value k of leaf li's current page as a node (an object member when key is non-NULL).
 * NULL with *rc set on failure. */
static struct sl_json *value_node(struct sl_parquet *pq, size_t li, uint32_t k,
                                  struct sl_arena *a, const char *key, size_t keylen, int *rc)
{
    const struct pq_leaf *lf = &pq->leaves[li];
    const uint8_t *v = pq->rd[li].vals + (size_t)k * esize_of(lf->ptype);
    const struct pq_bytes *b = (const struct pq_bytes *)(const void *)v;
    enum sl_json_kind kind = SL_JSON_NUMBER;
    char tmp[96];
    size_t n = 0;
    int32_t i32;
    int64_t i64, secs;
    uint32_t ns;
    float f;
    double d;
    struct sl_json *j;

    switch (lf->conv) {
    case CV_BOOL:
        j = sl_json_node(a, *v ? SL_JSON_TRUE : SL_JSON_FALSE, key, keylen, NULL, 0);
        goto done;
    case CV_I32:
        memcpy(&i32, v, 4);
        n = fmt_i64(i32, tmp);
        break;
    case CV_U32:
        memcpy(&i32, v, 4);
        n = fmt_u64((uint32_t)i32, tmp);
        break;
    case CV_I64:
        memcpy(&i64, v, 8);
        n = fmt_i64(i64, tmp);
        break;
    case CV_U64:
        memcpy(&i64, v, 8);
        n = fmt_u64((uint64_t)i64, tmp);
        break;
    case CV_FLOAT:
        memcpy(&f, v, 4);
        n = fmt_float_json(f, 1, tmp, &kind);
        break;
    case CV_DOUBLE:
        memcpy(&d, v, 8);
        n = fmt_float_json(d, 0, tmp, &kind);
        break;
    case CV_F16:
        n = fmt_float_json(half_to_float((uint16_t)(b->p[0] | b->p[1] << 8)), 1, tmp, &kind);
        break;
    case CV_STR:
    case CV_BIN:
        if (valid_utf8(b->p, b->n)) {
            j = sl_json_node(a, SL_JSON_STRING, key, keylen, b->p ? (const void *)b->p : "", b->n);
            goto done;
        }
        if (lf->conv == CV_STR) {
            *rc = col_err(pq, li, SL_ECORRUPT, "row %llu: string is not valid UTF-8",
                          (unsigned long long)pq->row);
            return NULL;
        } else {
            if (b->n > SL_BASE64_MAX) {
                *rc = col_err(pq, li, SL_ETOOBIG, "row %llu: binary value of %zu bytes is too "
                              "long to show as base64", (unsigned long long)pq->row, b->n);
                return NULL;
            }
            size_t w = SL_BASE64_LEN(b->n);
            j = sl_json_node(a, SL_JSON_STRING, key, keylen, "", 0);
            char *s = j ? sl_arena_alloc(a, w + 1) : NULL;
            if (!s)
                goto oom;
            sl_base64_encode(s, b->p, b->n);
            j->str = s;
            j->len = w;
            return j;
        }
    case CV_TS:
        memcpy(&i64, v, 8);
        split_units(i64, lf->unit_ns, &secs, &ns);
        n = fmt_timestamp(secs, ns, tmp);
        kind = SL_JSON_STRING;
        break;
    case CV_TS96: {
        int64_t nanos;
        memcpy(&nanos, b->p, 8);
        memcpy(&i32, b->p + 8, 4);
        split_units(nanos, 1, &secs, &ns);
        secs += ((int64_t)i32 - 2440588) * 86400;
        n = fmt_timestamp(secs, ns, tmp);
        kind = SL_JSON_STRING;
        break;
    }
    case CV_DATE:
        memcpy(&i32, v, 4);
        n = fmt_timestamp((int64_t)i32 * 86400, 0, tmp);
        kind = SL_JSON_STRING;
        break;
    case CV_TIME:
        if (lf->ptype == PT_INT32) {
            memcpy(&i32, v, 4);
            i64 = i32;
        } else {
            memcpy(&i64, v, 8);
        }
        split_units(i64, lf->unit_ns, &secs, &ns);
        n = fmt_timestamp(secs, ns, tmp);
        /* keep "hh:mm:ss[.f]" of the formatted instant */
        {
            char *t = strchr(tmp, 'T');
            n = strlen(t + 1) - 1;
            memmove(tmp, t + 1, n);
            tmp[n] = '\0';
        }
        kind = SL_JSON_STRING;
        break;
    case CV_DEC: {
        unsigned __int128 u = 0;
        int neg = 0;
        if (lf->ptype == PT_INT32) {
            memcpy(&i32, v, 4);
            i64 = i32;
            neg = i64 < 0;
            u = neg ? (uint64_t)0 - (uint64_t)i64 : (uint64_t)i64;
        } else if (lf->ptype == PT_INT64) {
            memcpy(&i64, v, 8);
            neg = i64 < 0;
            u = neg ? (uint64_t)0 - (uint64_t)i64 : (uint64_t)i64;
        } else {
            if (b->n > 16) {
                *rc = col_err(pq, li, SL_EINVAL, "decimal wider than 128 bits");
                return NULL;
            }
            if (b->n) {
                neg = b->p[0] >> 7;
                u = neg ? ~(unsigned __int128)0 : 0;
                for (size_t i = 0; i < b->n; i++)
                    u = (u << 8) | b->p[i];
                if (neg)
                    u = ~u + 1;
            }
        }
        n = fmt_decimal(u, neg, lf->scale, tmp);
        break;
    }
    case CV_UUID: {
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                tmp[n++] = '-';
            tmp[n++] = hex[b->p[i] >> 4];
            tmp[n++] = hex[b->p[i] & 15];
        }
        kind = SL_JSON_STRING;
        break;
    }
    }
    j = sl_json_node(a, kind, key, keylen, tmp, n);
done:
    if (j)
        return j;
oom:
    *rc = fail_oom(pq);
    return NULL;
}

/* ---- rows ---- */

static void reset_reader(struct pq_reader *r)
{
    r->page_no = 0;
    r->has_dict = 0;
    r->ndict = 0;
    r->nlev = r->pos = r->nval = r->vpos = 0;
    r->cbuf_len = 0;
}

static int load_rg(struct sl_parquet *pq, size_t g)
{
    struct pq_rg *rg = &pq->rgs[g];
    pq->rg = g;
    pq->rg_loaded = 0;
    pq->rg_row = 0;
    for (size_t li = 0; li < pq->nleaves; li++) {
        struct pq_reader *r = &pq->rd[li];
        const struct pq_chunk *ch = &rg->chunks[li];
        reset_reader(r);
        int64_t start = ch->data_off;
        if (ch->dict_off > 0 && ch->dict_off < start)
            start = ch->dict_off;
        r->ch = ch;
        r->off = (uint64_t)start;
        r->end = (uint64_t)start + (uint64_t)ch->total_compressed;
        r->levels_left = ch->num_values;
        if (!pq->mem && (uint64_t)ch->total_compressed <= CHUNK_PRELOAD) {
            size_t n = (size_t)ch->total_compressed;
            if (grow(&r->cbuf, &r->cbuf_cap, n))
                return fail_oom(pq);
            struct sl_error e;
            if (read_at(pq, r->off, r->cbuf, n, &e) != 0) {
                pq->failed = 1;
                pq->ferr = e;
                return e.code;
            }
            r->cbuf_off = r->off;
            r->cbuf_len = n;
        }
    }
    pq->rg_loaded = 1;
    return 0;
}

/* Ensures leaf li has an unread level: 1, 0 at the end of its chunk, or a negative SL_E*. */
static int ensure(struct sl_parquet *pq, size_t li)
{
    struct pq_reader *r = &pq->rd[li];
    while (r->pos >= r->nlev) {
        int rc = load_page(pq, li, NULL);
        if (rc <= 0)
            return rc;
    }
    return 1;
}

static int chunk_short(struct sl_parquet *pq, size_t li)
{
    return col_err(pq, li, SL_ECORRUPT, "column chunk ends before the row group's %lld rows",
                   (long long)pq->rgs[pq->rg].num_rows);
}

static int read_cell(struct sl_parquet *pq, const struct pq_col *col, struct sl_arena *a,
                     struct sl_json **out)
{
    size_t li = col->leaf;
    struct pq_reader *r = &pq->rd[li];
    const struct pq_leaf *lf = &pq->leaves[li];
    int rc = ensure(pq, li);
    if (rc == 0)
        return chunk_short(pq, li);
    if (rc < 0)
        return rc;
    if (!col->list) {
        int d = lf->max_def ? r->def[r->pos] : 0;
        r->pos++;
        if (d < lf->max_def)
            *out = sl_json_node(a, SL_JSON_NULL, col->name, col->namelen, NULL, 0);
        else if (!(*out = value_node(pq, li, r->vpos++, a, col->name, col->namelen, &rc)))
            return rc;
        return *out ? 0 : fail_oom(pq);
    }
    if (r->rep[r->pos] != 0)
        return col_err(pq, li, SL_ECORRUPT, "a row does not start at repetition level 0");
    int d = r->def[r->pos];
    if (d < lf->list_def) {
        r->pos++;
        *out = sl_json_node(a, SL_JSON_NULL, col->name, col->namelen, NULL, 0);
        return *out ? 0 : fail_oom(pq);
    }
    struct sl_json *arr = sl_json_node(a, SL_JSON_ARRAY, col->name, col->namelen, NULL, 0);
    if (!arr)
        return fail_oom(pq);
    *out = arr;
    if (d < lf->elem_def) {
        r->pos++;
        return 0;
    }
    struct sl_json *last = NULL;
    for (;;) {
        struct sl_json *e;
        d = r->def[r->pos];
        if (d == lf->max_def) {
            if (!(e = value_node(pq, li, r->vpos++, a, NULL, 0, &rc)))
                return rc;
        } else if (d >= lf->elem_def) {
            if (!(e = sl_json_node(a, SL_JSON_NULL, NULL, 0, NULL, 0)))
                return fail_oom(pq);
        } else {
            return col_err(pq, li, SL_ECORRUPT, "an empty-list level inside a list");
        }
        r->pos++;
        if (last)
            last->next = e;
        else
            arr->child = e;
        last = e;
        arr->count++;
        rc = ensure(pq, li);
        if (rc < 0)
            return rc;
        if (rc == 0 || r->rep[r->pos] == 0)
            return 0;
    }
}

/* Passes over n rows of the current row group in every column without building values. */
static int skip_rows(struct sl_parquet *pq, uint64_t n)
{
    for (size_t c = 0; c < pq->ncols; c++) {
        const struct pq_col *col = &pq->cols[c];
        size_t li = col->leaf;
        struct pq_reader *r = &pq->rd[li];
        const struct pq_leaf *lf = &pq->leaves[li];
        uint64_t left = n;
        while (left) {
            if (r->pos >= r->nlev) {
                int rc = load_page(pq, li, &left);
                if (rc < 0)
                    return rc;
                if (rc == 0)
                    return left ? chunk_short(pq, li) : 0;
                continue;
            }
            if (!col->list) {
                uint32_t take = r->nlev - r->pos;
                if (take > left)
                    take = (uint32_t)left;
                if (lf->max_def) {
                    for (uint32_t i = 0; i < take; i++)
                        r->vpos += r->def[r->pos + i] == lf->max_def;
                } else {
                    r->vpos += take;
                }
                r->pos += take;
                left -= take;
                continue;
            }
            /* one list row */
            do {
                r->vpos += r->def[r->pos] == lf->max_def;
                r->pos++;
                int rc = ensure(pq, li);
                if (rc < 0)
                    return rc;
                if (rc == 0)
                    break;
            } while (r->rep[r->pos] != 0);
            left--;
        }
    }
    return 0;
}

int sl_parquet_next(struct sl_parquet *pq, struct sl_arena *a, struct sl_json **row,
                    struct sl_error *err)
{
    if (pq->failed)
        goto failed;
    while (!pq->rg_loaded || pq->rg_row >= (uint64_t)pq->rgs[pq->rg].num_rows) {
        size_t g = pq->rg_loaded ? pq->rg + 1 : pq->rg;
        pq->rg_loaded = 0;
        pq->rg = g;
        if (g >= pq->nrgs)
            return 0;
        if (load_rg(pq, g) != 0)
            goto failed;
    }
    struct sl_json *obj = sl_json_node(a, SL_JSON_OBJECT, NULL, 0, NULL, 0);
    if (!obj) {
        fail_oom(pq);
        goto failed;
    }
    struct sl_json *last = NULL;
    for (size_t c = 0; c < pq->ncols; c++) {
        struct sl_json *m = NULL;
        if (read_cell(pq, &pq->cols[c], a, &m) != 0)
            goto failed;
        if (last)
            last->next = m;
        else
            obj->child = m;
        last = m;
        obj->count++;
    }
    pq->rg_row++;
    pq->row++;
    *row = obj;
    return 1;
failed:
    if (err)
        *err = pq->ferr;
    return pq->ferr.code ? pq->ferr.code : SL_ECORRUPT;
}

uint64_t sl_parquet_tell(const struct sl_parquet *pq)
{
    return pq->row;
}

int sl_parquet_seek(struct sl_parquet *pq, uint64_t row, struct sl_error *err)
{
    if (pq->failed)
        goto failed;
    if (row >= pq->num_rows) {
        pq->rg = pq->nrgs;
        pq->rg_loaded = 0;
        pq->row = pq->num_rows;
        return 0;
    }
    size_t lo = 0, hi = pq->nrgs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (pq->rgs[mid].first_row <= row)
            lo = mid;
        else
            hi = mid;
    }
    while (lo < pq->nrgs && pq->rgs[lo].num_rows == 0)
        lo++; /* empty row groups share first_row with the next */
    if (load_rg(pq, lo) != 0 || skip_rows(pq, row - pq->rgs[lo].first_row) != 0)
        goto failed;
    pq->rg_row = row - pq->rgs[lo].first_row;
    pq->row = row;
    return 0;
failed:
    if (err)
        *err = pq->ferr;
    return pq->ferr.code ? pq->ferr.code : SL_ECORRUPT;
}

/* ---- open / close ---- */

static int open_common(struct sl_parquet *pq, struct sl_error *err)
{
    uint8_t head[4], tail[8];
    int rc;

    if (pq->size < 12)
        return file_err(pq, err, SL_ECORRUPT, "not a Parquet file (%llu bytes is too short)",
                        (unsigned long long)pq->size);
    if ((rc = read_at(pq, 0, head, 4, err)) || (rc = read_at(pq, pq->size - 8, tail, 8, err)))
        return rc;
    if (memcmp(head, "PAR1", 4) != 0)
        return file_err(pq, err, SL_ECORRUPT, "not a Parquet file (no PAR1 magic at the start)");
    if (memcmp(tail + 4, "PARE", 4) == 0)
        return file_err(pq, err, SL_EINVAL, "encrypted Parquet files are not supported");
    if (memcmp(tail + 4, "PAR1", 4) != 0)
        return file_err(pq, err, SL_ECORRUPT, "truncated Parquet file (no PAR1 magic at the end "
                        "of its %llu bytes)", (unsigned long long)pq->size);
    uint32_t flen = load_le(tail, 4);
    if ((uint64_t)flen > pq->size - 12)
        return file_err(pq, err, SL_ECORRUPT, "corrupt Parquet file: footer length %u exceeds "
                        "the %llu-byte file", flen, (unsigned long long)pq->size);
    if (flen > MAX_FOOTER)
        return file_err(pq, err, SL_ETOOBIG, "footer metadata of %u bytes exceeds the limit",
                        flen);
    pq->meta_start = pq->size - 8 - flen;
    pq->footer = malloc(flen ? flen : 1);
    if (!pq->footer)
        return file_err(pq, err, SL_ENOMEM, "out of memory");
    if ((rc = read_at(pq, pq->meta_start, pq->footer, flen, err)) != 0)
        return rc;
    if ((rc = parse_footer(pq, pq->footer, flen, err)) != 0)
        return rc;
    free(pq->footer);
    pq->footer = NULL;
    if ((rc = build_schema(pq, err)) != 0)
        return rc;
    pq->rd = calloc(pq->nleaves ? pq->nleaves : 1, sizeof *pq->rd);
    if (!pq->rd)
        return file_err(pq, err, SL_ENOMEM, "out of memory");
    return 0;
}

int sl_parquet_open(const char *path, struct sl_parquet **out, struct sl_error *err)
{
    struct sl_parquet *pq = calloc(1, sizeof *pq);
    struct stat st;
    int rc;

    *out = NULL;
    if (!pq)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    pq->fd = -1;
    if (!(pq->name = strdup(path))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    pq->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (pq->fd < 0) {
        rc = sl_error_set(err, errno == ENOENT ? SL_ENOTFOUND : SL_EIO, "%s: %s", path,
                          strerror(errno));
        goto fail;
    }
    if (fstat(pq->fd, &st) != 0) {
        rc = sl_error_set(err, SL_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    pq->size = (uint64_t)st.st_size;
    if ((rc = open_common(pq, err)) != 0)
        goto fail;
    *out = pq;
    return 0;
fail:
    sl_parquet_close(pq);
    return rc;
}

int sl_parquet_open_mem(const void *data, size_t len, const char *name, struct sl_parquet **out,
                        struct sl_error *err)
{
    struct sl_parquet *pq = calloc(1, sizeof *pq);
    int rc;

    *out = NULL;
    if (!pq)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    pq->fd = -1;
    pq->mem = data ? data : (const void *)"";
    pq->size = len;
    if (!(pq->name = strdup(name ? name : "(memory)"))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = open_common(pq, err)) != 0)
        goto fail;
    *out = pq;
    return 0;
fail:
    sl_parquet_close(pq);
    return rc;
}

uint64_t sl_parquet_num_rows(const struct sl_parquet *pq)
{
    return pq->num_rows;
}

size_t sl_parquet_num_row_groups(const struct sl_parquet *pq)
{
    return pq->nrgs;
}

size_t sl_parquet_num_columns(const struct sl_parquet *pq)
{
    return pq->ncols;
}

const char *sl_parquet_column_name(const struct sl_parquet *pq, size_t i)
{
    return i < pq->ncols ? pq->cols[i].name : NULL;
}

void sl_parquet_close(struct sl_parquet *pq)
{
    if (!pq)
        return;
    if (pq->fd >= 0)
        close(pq->fd);
    if (pq->rd) {
        for (size_t i = 0; i < pq->nleaves; i++) {
            struct pq_reader *r = &pq->rd[i];
            free(r->cbuf);
            free(r->raw);
            free(r->pbuf);
            free(r->def);
            free(r->rep);
            free(r->vals);
            free(r->idx);
            free(r->extra);
            free(r->tmp64);
            free(r->dict);
            free(r->dict_mem);
        }
        free(pq->rd);
    }
    if (pq->leaves)
        for (size_t i = 0; i < pq->nleaves; i++)
            free(pq->leaves[i].path);
    free(pq->leaves);
    free(pq->cols);
    if (pq->rgs)
        for (size_t i = 0; i < pq->nrgs; i++)
            free(pq->rgs[i].chunks);
    free(pq->rgs);
    if (pq->elems)
        for (size_t i = 0; i < pq->nelems; i++)
            free(pq->elems[i].name);
    free(pq->elems);
    free(pq->footer);
    free(pq->name);
    free(pq);
}
