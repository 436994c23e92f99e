/* sluice/plugin.h — the one public header of Sluice plugins (DESIGN §7).
 *
 * A plugin is a shared object that exports one function, SL_PLUGIN_ENTRY (sluice_plugin_entry),
 * returning a pointer to a statically initialised `struct sl_plugin` descriptor. The descriptor
 * names the plugin's kind and points at that kind's ops table. The server calls cb_init once,
 * at start, before any worker thread exists, and hands it the core's services as a function
 * table (`struct sl_plugin_api`); a plugin links no core symbol and includes no other Sluice
 * header. The built-ins (the LevelDB store, the aggregation functions) are described by the
 * very same structures.
 *
 * ABI rules. SL_PLUGIN_ABI_MAJOR changes when anything already in this file changes meaning,
 * size or place; a plugin built for another major is refused. SL_PLUGIN_ABI_MINOR grows when
 * something is appended: new members at the end of a structure (the api table, a descriptor, an
 * ops table), new kinds, new enum values. A plugin built for an older minor loads (its
 * structures carry their struct_size, and the core reads no member past it); one built for a
 * newer minor than the server speaks is refused. Every descriptor and ops table starts with its
 * version and its size, checked before any other member is read.
 *
 * Threads: cb_init and cb_exit run on the main thread. Kind callbacks run on any thread, as
 * each ops table below states. Status convention: 0 success, a negative SL_E* code failure;
 * failures a user reads carry a message set with api->error_set. */
#ifndef SL_PLUGIN_PUBLIC_H
#define SL_PLUGIN_PUBLIC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_PLUGIN_ABI_MAJOR 1
#define SL_PLUGIN_ABI_MINOR 1

/* The symbol every plugin exports: `SL_PLUGIN_EXPORT const struct sl_plugin *SL_PLUGIN_ENTRY(void)`. */
#define SL_PLUGIN_ENTRY sluice_plugin_entry
#define SL_PLUGIN_ENTRY_NAME "sluice_plugin_entry"
#define SL_PLUGIN_EXPORT __attribute__((visibility("default")))

/* ---- Status codes (0 is success) ----------------------------------------------------------- */
enum {
    SL_OK = 0,
    SL_ENOMEM = -1,    /* allocation failed */
    SL_EINVAL = -2,    /* malformed input */
    SL_ESCHEMA = -3,   /* input does not match a declared schema */
    SL_ESCRIPT = -4,   /* user Lua code failed */
    SL_ESTORE = -5,    /* storage engine failure */
    SL_EAUTH = -6,     /* missing or invalid credentials */
    SL_ENOTFOUND = -7, /* named object does not exist */
    SL_EBUSY = -8,     /* bounded queue full: try again later */
    SL_EIO = -9,       /* operating system I/O failure */
    SL_EPERM = -10,    /* authenticated but not allowed */
    SL_ETOOBIG = -11,  /* request exceeds a configured limit */
    SL_EEXIST = -12,   /* object already exists */
    SL_ECORRUPT = -13, /* stored data failed an integrity check */
    SL_ECONFLICT = -14, /* ABI 1.1: another process changed what a conditional write read */
};

/* ---- Values -------------------------------------------------------------------------------- */

/* The kinds of feature and column types. */
enum sl_kind {
    SL_STRING = 1,
    SL_INT64,
    SL_INT32,
    SL_FLOAT64,
    SL_FLOAT32,
    SL_BOOL,
    SL_TIMESTAMP,
    SL_ARRAY,
    SL_MAP,
    SL_STRUCT,
};

/* One value. Strings and nested values (Array/Map/Struct: their canonical JSON text) are
 * borrowed for the duration of the call that hands them over. */
struct sl_scalar {
    enum sl_kind kind;
    int null;        /* 1 for a null value */
    int64_t i;       /* INT64, INT32, TIMESTAMP (ns), BOOL (0/1) */
    double f;        /* FLOAT64, FLOAT32; also set for integer kinds */
    const char *str; /* STRING; ARRAY/MAP/STRUCT: canonical JSON */
    size_t len;
};

/* Opaque core objects, reached only through struct sl_plugin_api. */
struct sl_buf;            /* a growable byte buffer (append with api->buf_append) */
struct sl_error;          /* an error out-parameter (set with api->error_set) */
struct sl_type;           /* a feature type */
struct sl_agg_spec;       /* one resolved Aggregate feature */
struct sl_batch;          /* an atomic list of puts and deletes */
struct sl_metric;         /* a counter or gauge exported in /metrics */
struct sl_plugin_handle;  /* the loaded plugin, as the core knows it */
struct cJSON;             /* a parsed JSON value (read with api->json_*) */

/* ---- Kind: aggregation functions ----------------------------------------------------------- */

#define SL_AGG_ABI_VERSION 1 /* struct sl_agg_fn.abi_version */

/* Which parameters a function accepts (struct sl_agg_fn.params). */
#define SL_AGG_P_N 0x1u          /* "n": 1..1000, required */
#define SL_AGG_P_PRECISION 0x2u  /* "precision": optional, default per function */
#define SL_AGG_P_PERCENTILE 0x4u /* "percentile": 0..1, required */
#define SL_AGG_P_ANY 0x80u       /* any member is passed through (read api->agg_params_json) */

/* The parsed "params" object of an Aggregate. has_* tell which members were present. */
struct sl_agg_params {
    int has_n, has_precision, has_percentile;
    int n;
    int precision;
    double percentile;
};

/* One aggregation function, usable as `Aggregate { fn = "<name>", ... }`. The descriptor is
 * borrowed by the registry and must outlive it (a static const object). A state ("ctx") is
 * whatever the function allocates in cb_init; the engine never looks inside. A state is used
 * by one thread at a time; the callbacks may run on any thread, concurrently on different
 * states. Every callback returns 0 or a negative SL_E* code.
 *   cb_check(params_json, p, in, &out_type, err): validates the parameters and the input type
 *     and sets *out_type to a new output type (the core frees it). Failures are SL_ESCHEMA with
 *     a message a user can act on ("sum is not defined for string").
 *   cb_name(p, out): optional; appends the name token used in default feature names
 *     ("last_distinct_10"). NULL means the function's name.
 *   cb_init(spec, &ctx): a new empty state.
 *   cb_update(ctx, spec, v, ts, seq): adds one non-null value observed at event time ts (ns)
 *     with write sequence number seq (larger = written later). Nulls never reach it.
 *   cb_merge(ctx, spec, other): ctx := ctx ⊕ other (another ctx of the same spec, borrowed).
 *     Must be associative and commutative: tiles are merged in any grouping.
 *   cb_finalize(ctx, spec, out): appends the value's canonical JSON encoding (api->json_*).
 *   cb_serialize(ctx, spec, out) / cb_deserialize(ctx, spec, p, len): the state's bytes, stored
 *     online for years: start them with a format version byte. cb_deserialize fills a freshly
 *     initialised ctx and returns SL_ECORRUPT on bad bytes (never trusts them).
 *   cb_free(ctx): releases a state; accepts NULL. */
struct sl_agg_fn {
    uint32_t abi_version; /* SL_AGG_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct sl_agg_fn) */
    const char *name;
    unsigned params; /* SL_AGG_P_* mask */
    int (*cb_check)(const struct cJSON *params_json, const struct sl_agg_params *p,
                    const struct sl_type *in, struct sl_type **out_type, struct sl_error *err);
    void (*cb_name)(const struct sl_agg_params *p, struct sl_buf *out);
    int (*cb_init)(const struct sl_agg_spec *spec, void **ctx);
    int (*cb_update)(void *ctx, const struct sl_agg_spec *spec, const struct sl_scalar *v,
                     int64_t ts, uint64_t seq);
    int (*cb_merge)(void *ctx, const struct sl_agg_spec *spec, const void *other);
    int (*cb_finalize)(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out);
    int (*cb_serialize)(const void *ctx, const struct sl_agg_spec *spec, struct sl_buf *out);
    int (*cb_deserialize)(void *ctx, const struct sl_agg_spec *spec, const void *p, size_t len);
    void (*cb_free)(void *ctx);
};

/* ---- Kind: online stores ------------------------------------------------------------------- */

#define SL_STORE_ABI_VERSION 1 /* struct sl_store_ops.abi_version */

/* Scan callback: return 0 to go on, 1 to stop, negative to fail the scan with that status. */
typedef int (*sl_scan_cb)(void *arg, const char *k, size_t klen, const char *v, size_t vlen);

/* An online store, chosen per server with `online-store NAME`. Keys and values are byte
 * strings ordered bytewise (memcmp, then the shorter first). Every callback may run on any
 * thread concurrently, except that one thread (the writer) calls write in a running server.
 * ctx is what open returned. */
struct sl_store_ops {
    uint32_t abi_version; /* SL_STORE_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct sl_store_ops) */
    const char *name;
    /* Opens the store for data directory dir (a store keeping files puts them there; it exists
     * or may be created) with a cache of cache_mb MiB as a hint. plugin_ctx is the plugin's
     * cb_init ctx (NULL for built-ins). Returns 0 and sets *ctx, or SL_ESTORE with err. */
    int (*open)(void *plugin_ctx, const char *dir, size_t cache_mb, void **ctx,
                struct sl_error *err);
    /* Appends the value of key to val and returns 0, or SL_ENOTFOUND, or SL_ESTORE. */
    int (*get)(void *ctx, const char *k, size_t klen, struct sl_buf *val, struct sl_error *err);
    /* Applies b atomically (all or nothing; iterate with api->batch_each); with sync, durable
     * before it returns. 0 or SL_ESTORE. */
    int (*write)(void *ctx, const struct sl_batch *b, int sync, struct sl_error *err);
    /* Visits keys >= start in order while they begin with prefix. 0 or an error. */
    int (*scan)(void *ctx, const char *prefix, size_t plen, const char *start, size_t slen,
                sl_scan_cb cb, void *arg, struct sl_error *err);
    void (*close)(void *ctx);
    /* Optional (all NULL: not offered): a positioned iterator for reads of nearby keys.
     * iter_seek positions at the first key >= k and returns 1 when there is one; iter_next
     * moves on (1 while valid); iter_key/iter_value borrow until the next move. */
    void *(*iter_new)(void *ctx);
    int (*iter_seek)(void *it, const char *k, size_t klen);
    int (*iter_next)(void *it);
    const char *(*iter_key)(void *it, size_t *len);
    const char *(*iter_value)(void *it, size_t *len);
    void (*iter_free)(void *it);
    /* ABI 1.1, optional: gives back the disk space of keys deleted in [lo, hi) (LevelDB: a range
     * compaction; blocks while it runs). */
    void (*compact)(void *ctx, const char *lo, size_t lolen, const char *hi, size_t hilen);
    /* ABI 1.1, optional (backups): snapshot returns a consistent view of the store as it is now;
     * snapshot_copy writes every key of it into a new store in directory dir (which must not
     * hold one), durably, counting keys (0 or SL_ESTORE with err; any thread, while writes
     * go on); snapshot_free releases it. */
    void *(*snapshot)(void *ctx);
    int (*snapshot_copy)(void *ctx, void *snap, const char *dir, uint64_t *keys,
                         struct sl_error *err);
    void (*snapshot_free)(void *ctx, void *snap);
    /* ABI 1.1, optional: for a store shared by several Sluice processes. rmw_begin starts an
     * optimistic read-modify-write on the calling thread (the writer): the get/scan/iter calls
     * of this thread up to its next write form the read set, and that write applies only if
     * no other client changed anything of the read set since it was read; otherwise it
     * applies nothing and returns SL_ECONFLICT, and the writer reads again, merges again and
     * retries. Any write ends it, an empty one too (the writer makes one when the apply
     * failed, so later writes are unconditional). 0 or SL_ESTORE. */
    int (*rmw_begin)(void *ctx, struct sl_error *err);
};

/* ---- Kind: Lua libraries ------------------------------------------------------------------- */

#define SL_LUA_LIB_ABI_VERSION 1 /* struct sl_lua_lib.abi_version */
#define SL_LUA_LIB_MAX_ARGS 16   /* most arguments one call passes */

/* One function of a Lua library, called from transformation code as `<table>.<name>(...)`
 * inside the same sandbox as the code calling it. The VM's budgets count Lua instructions and
 * Lua memory only: time spent and memory allocated inside cb_call are the plugin's to bound
 * (keep each call short and its allocations freed before it returns). Arguments
 * arrive converted: Lua integer → SL_INT64, float → SL_FLOAT64, string → SL_STRING, boolean →
 * SL_BOOL, nil → null (kind 0); any other type raises a Lua error before the call. The
 * function sets *ret (kind SL_INT64, SL_FLOAT64, SL_BOOL, or null=1 for nil); for a string
 * result it sets ret->kind = SL_STRING and appends the bytes to out. Failing (a negative
 * return, with err) raises a Lua error carrying err's message in the calling code. Runs on any
 * worker thread, concurrently: ctx (the plugin's cb_init ctx) is shared, read-only. */
struct sl_lua_fn {
    const char *name;
    int (*cb_call)(void *ctx, const struct sl_scalar *args, int nargs, struct sl_scalar *ret,
                   struct sl_buf *out, struct sl_error *err);
};

/* A global table of functions (`geo` → geo.distance). The table is read-only to user code. */
struct sl_lua_lib {
    uint32_t abi_version; /* SL_LUA_LIB_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct sl_lua_lib) */
    const char *table;    /* a Lua identifier not taken by the sandbox */
    const struct sl_lua_fn *fns; /* terminated by an entry with name NULL */
};

/* ---- Kind: stream sources (reserved) ------------------------------------------------------- */

#define SL_SOURCE_ABI_VERSION 1 /* struct sl_source_ops.abi_version */

/* RESERVED: this ABI version defines the shape, but the server does not load source plugins
 * yet (the loader refuses them by name). A source pulls records from an external log and
 * feeds them through the /ingest path; the position it reached is committed atomically with
 * the data it produced. */
struct sl_source_ops {
    uint32_t abi_version; /* SL_SOURCE_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct sl_source_ops) */
    const char *type;     /* the StreamSource's stream_config type this serves */
    /* Starts reading after checkpoint[0..len) (empty: from the start). */
    int (*cb_start)(void *plugin_ctx, const struct cJSON *stream_config, const void *checkpoint,
                    size_t len, void **ctx, struct sl_error *err);
    /* Appends up to max records (JSON objects, one per line) to records and the position
     * after them to checkpoint; 0 records is not an error. */
    int (*cb_poll)(void *ctx, size_t max, struct sl_buf *records, struct sl_buf *checkpoint,
                   struct sl_error *err);
    /* Called once the records of a poll are durable (e.g. XACK). */
    int (*cb_ack)(void *ctx, const void *checkpoint, size_t len, struct sl_error *err);
    void (*cb_stop)(void *ctx);
};

/* ---- The core's services ------------------------------------------------------------------- */

enum sl_plugin_log_level { SL_PLUGIN_DEBUG = 0, SL_PLUGIN_INFO, SL_PLUGIN_WARN, SL_PLUGIN_ERROR };

/* Handed to cb_init; valid until the process exits (keep the pointer). Every function may be
 * called from any thread unless it says otherwise. Members are only ever appended; read
 * api->struct_size before a member added in a later minor than the one you were built for. */
struct sl_plugin_api {
    uint32_t abi_major, abi_minor; /* the server's */
    uint32_t struct_size;          /* sizeof(struct sl_plugin_api) in the server */

    /* Logging: one line, prefixed with the plugin's name. */
    void (*log)(const struct sl_plugin_handle *self, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* Errors: records code and message in err (may be NULL); returns code. */
    int (*error_set)(struct sl_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* Memory (the core's allocator; malloc/calloc/realloc return NULL on failure). */
    void *(*malloc)(size_t n);
    void *(*calloc)(size_t n, size_t size);
    void *(*realloc)(void *p, size_t n);
    void (*free)(void *p);

    /* Clock: ns since the Unix epoch (the server's "now", which tests may fix). */
    int64_t (*now_ns)(void);

    /* Configuration: the value of key (one of the descriptor's config_map keys) as set with
     * `plugin-config <plugin>.<key>=<value>`, else its default. Borrowed, process lifetime. */
    const char *(*config_get)(const struct sl_plugin_handle *self, const char *key);

    /* Metrics: a counter or gauge exported in /metrics as sluice_plugin_<name>. Register in
     * cb_init only (returns NULL on a bad name or no memory); add/set from any thread. */
    struct sl_metric *(*counter_new)(const struct sl_plugin_handle *self, const char *name,
                                     const char *help);
    struct sl_metric *(*gauge_new)(const struct sl_plugin_handle *self, const char *name,
                                   const char *help);
    void (*metric_add)(struct sl_metric *m, int64_t delta);
    void (*metric_set)(struct sl_metric *m, int64_t value);

    /* Buffers: append bytes or printf-style text. Allocation failure is sticky in the buffer
     * and reported by the core after the callback returns. */
    void (*buf_append)(struct sl_buf *b, const void *p, size_t n);
    void (*buf_printf)(struct sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

    /* JSON output, in get-features' canonical encoding: a string (escaped, invalid UTF-8
     * replaced), an int64 (a quoted decimal), a float64 (shortest round-trip text; NaN and
     * infinities as strings), and a value of kind `kind` (as the built-ins emit it). */
    void (*json_string)(struct sl_buf *b, const char *s, size_t n);
    void (*json_int64)(struct sl_buf *b, int64_t v);
    void (*json_double)(struct sl_buf *b, double v);
    void (*json_scalar)(struct sl_buf *b, enum sl_kind kind, const struct sl_scalar *v);

    /* JSON input (parameters, stream configs): member of an object (NULL if absent or j is
     * not an object); a number (0, or SL_EINVAL when j is not a number); a string (NULL when
     * not a string). Borrowed from j. */
    const struct cJSON *(*json_member)(const struct cJSON *j, const char *key);
    int (*json_number)(const struct cJSON *j, double *out);
    const char *(*json_string_value)(const struct cJSON *j);

    /* Types: kind of t; element type of an Array (value type of a Map), else NULL; new
     * scalar type (NULL on no memory); new Array of elem (takes elem, also on failure); new
     * Struct of n fields (copies names, takes every types[i], also on failure); copy; free
     * (accepts NULL). A type returned from cb_check belongs to the core. */
    enum sl_kind (*type_kind)(const struct sl_type *t);
    const struct sl_type *(*type_elem)(const struct sl_type *t);
    struct sl_type *(*type_scalar)(enum sl_kind kind);
    struct sl_type *(*type_array)(struct sl_type *elem);
    struct sl_type *(*type_struct)(size_t n, const char *const *names, struct sl_type **types);
    struct sl_type *(*type_clone)(const struct sl_type *t);
    void (*type_free)(struct sl_type *t);
    const char *(*kind_name)(enum sl_kind kind); /* "string", "int64", ... */

    /* Aggregation specs: parsed params, the "params" object as given, the input type. */
    const struct sl_agg_params *(*agg_params)(const struct sl_agg_spec *spec);
    const struct cJSON *(*agg_params_json)(const struct sl_agg_spec *spec);
    const struct sl_type *(*agg_input_type)(const struct sl_agg_spec *spec);

    /* Batches: calls fn for each op of b in order (op 'P' put or 'D' delete, v NULL for a
     * delete); stops at a non-zero return of fn and returns it. */
    int (*batch_each)(const struct sl_batch *b,
                      int (*fn)(void *arg, int op, const char *k, size_t kl, const char *v,
                                size_t vl),
                      void *arg);
};

/* ---- The descriptor ------------------------------------------------------------------------ */

enum sl_plugin_kind {
    SL_PLUGIN_AGG = 1,   /* ops: const struct sl_agg_fn * */
    SL_PLUGIN_STORE = 2, /* ops: const struct sl_store_ops * */
    SL_PLUGIN_SOURCE = 3, /* ops: const struct sl_source_ops * (reserved, see above) */
    SL_PLUGIN_LUA = 4,   /* ops: const struct sl_lua_lib * */
};

/* A setting of the plugin: `plugin-config <name>.<key>=<value>`; terminated by key NULL. */
struct sl_plugin_config {
    const char *key;
    const char *def;  /* default value (not NULL) */
    const char *help;
};

struct sl_plugin {
    uint32_t abi_major;   /* SL_PLUGIN_ABI_MAJOR */
    uint32_t abi_minor;   /* SL_PLUGIN_ABI_MINOR */
    uint32_t struct_size; /* sizeof(struct sl_plugin) */
    uint32_t kind;        /* enum sl_plugin_kind */
    const char *name;     /* unique per kind; for SL_PLUGIN_AGG the function's name */
    const char *version;  /* the plugin's own version, e.g. "1.2.0" */
    const char *description;
    const struct sl_plugin_config *config_map; /* NULL: no settings */
    /* Optional. Runs once on the main thread before any worker thread exists; sets *ctx to
     * plugin-wide state (passed to the kind's callbacks that take plugin_ctx/ctx). A failure
     * (negative return, with err) stops the server's start; nothing of the plugin stays
     * registered. */
    int (*cb_init)(const struct sl_plugin_api *api, const struct sl_plugin_handle *self,
                   void **ctx, struct sl_error *err);
    /* Optional. Runs once at shutdown after every use of the plugin. */
    void (*cb_exit)(void *ctx);
    const void *ops; /* the kind's ops table (see enum sl_plugin_kind) */
};

/* The entry point's type, and the declaration every plugin's definition must match. */
typedef const struct sl_plugin *(*sl_plugin_entry_fn)(void);
SL_PLUGIN_EXPORT const struct sl_plugin *SL_PLUGIN_ENTRY(void);

#ifdef __cplusplus
}
#endif

#endif
