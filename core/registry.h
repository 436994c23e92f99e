/* The registry: workspaces and the objects applied to them, as immutable, reference-counted
 * snapshots. Apply builds a new snapshot from a repository's canonical JSON (defs.h) and
 * swaps it in atomically; requests hold the snapshot they started with. */
#ifndef SL_REGISTRY_H
#define SL_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "defs.h"
#include "types.h"

struct sl_error;
struct sl_store;
struct sl_batch;
struct sl_agg_spec;
struct sl_tiles_view;

struct sl_entity {
    char *name;
    size_t nkeys;
    struct sl_field *keys;
};

struct sl_source {
    char *name;
    int is_request;          /* RequestSource */
    size_t nfields;
    struct sl_field *schema;
    int ts_index;            /* schema index of the timestamp field, or -1 */
    int has_post_processor;  /* a Lua function applied to each record first */
    size_t nviews;           /* stream views fed by this source */
    struct sl_view **views;
};

enum sl_view_mode { SL_MODE_ATTRIBUTE, SL_MODE_TIME_INTERVAL, SL_MODE_CONTINUOUS };

struct sl_feature {
    char *name;
    struct sl_type *type;    /* output type */
    char *column;
    int col_index;           /* index of the column in the view's rows (see sl_view) */
    cJSON *spec;             /* the canonical JSON of the feature (borrowed from the view's) */
};

struct sl_view {
    char *name;
    char id[33];             /* featureViewId: 32 hex digits */
    unsigned char key[8];    /* storage prefix, the first 8 bytes of the id */
    char base[33];           /* hash of what decides the stored data (not metadata) */
    uint64_t intro;          /* workspace version that introduced this definition (0: a
                                record from before versioned ids) */
    int is_realtime;
    struct sl_source *source;
    size_t nkeys;
    struct sl_field *join_keys;
    /* The rows a view materialises have the source schema, or with a transformation the
     * view's output schema: its join keys, its timestamp field, then its feature columns. */
    size_t nout;
    struct sl_field *out_schema; /* with a transformation only */
    int *key_index;          /* join key i = row field key_index[i] */
    int ts_index;            /* timestamp field in the row */
    int online, offline;
    int64_t ttl_ns;          /* 0 = no ttl */
    int64_t start_ns;        /* feature_start_time (INT64_MIN when unset) */
    int64_t schedule_ns;     /* batch_schedule, 0 when unset */
    int64_t interval_ns;     /* time_interval mode */
    enum sl_view_mode mode;
    int has_transformation;
    size_t nfeatures;
    struct sl_feature *features;
    struct sl_tiles_view *agg; /* aggregate views: compiled aggregations (tiles.h) */
    size_t nrt_sources;      /* realtime views: the sources they read */
    char **rt_sources;
    cJSON *spec;             /* canonical JSON of the view (owned) */
};

/* A feature service item: one view and the indexes of the features it selects. */
struct sl_service_item {
    struct sl_view *view;
    size_t nfeat;
    int *feat;
};

struct sl_service {
    char *name;
    char id[33];
    size_t nitems;
    size_t nfeatures;              /* features served, over all items */
    struct sl_service_item *items; /* Tecton order: realtime views first, then the others,
                                      alphabetical by view name */
    size_t nkeys;
    struct sl_field *join_keys;    /* the union of the items' join keys, first-seen order */
    size_t nrequest;
    struct sl_field *request_keys; /* request context fields of realtime views */
};

/* An immutable snapshot of one workspace. */
struct sl_ws {
    char *name;
    int live;
    uint64_t version;        /* bumps on every apply */
    uint64_t epoch;          /* random, fixed at creation: a re-created workspace of the
                                same name gets new view ids (0: created before epochs) */
    size_t nentities, nsources, nviews, nservices;
    struct sl_entity *entities;
    struct sl_source *sources;
    struct sl_view *views;
    struct sl_service *services;
    cJSON *repo;             /* canonical repository JSON (owned) */
    size_t nfiles;
    struct sl_file *files;   /* the definition files (owned copies) */
    int refs;                /* atomic */
};

/* Builds a workspace snapshot from a repository (repo is consumed: owned by the snapshot
 * even on failure; files are copied). Returns NULL with err (SL_EINVAL naming file:line). */
struct sl_ws *sl_ws_build(const char *name, int live, uint64_t version, cJSON *repo,
                          const struct sl_file *files, size_t nfiles, struct sl_error *err);
/* The snapshot that replaces prev after an apply of repo (consumed as in sl_ws_build): same
 * name, liveness and epoch, version + 1. A view keeps its id while its data-deciding
 * definition is unchanged (metadata such as description, tags, owner, ttl may change); a
 * new, redefined or re-added view gets an id never used before in this workspace, so it
 * never reads state left by an earlier definition. */
struct sl_ws *sl_ws_build_next(const struct sl_ws *prev, cJSON *repo, const struct sl_file *files,
                               size_t nfiles, struct sl_error *err);
/* Reference counting; release frees at zero. Any thread. */
void sl_ws_retain(struct sl_ws *ws);
void sl_ws_release(struct sl_ws *ws);

/* The schema of the rows view v materialises (source schema or output schema). */
const struct sl_field *sl_view_row_schema(const struct sl_view *v, size_t *n);

struct sl_source *sl_ws_source(const struct sl_ws *ws, const char *name);
struct sl_view *sl_ws_view(const struct sl_ws *ws, const char *name);
struct sl_service *sl_ws_service(const struct sl_ws *ws, const char *name);
/* A service by its id (32 hex digits). */
struct sl_service *sl_ws_service_by_id(const struct sl_ws *ws, const char *id);

struct sl_registry;

/* Loads every workspace persisted in store. The registry keeps a borrowed pointer to store
 * for later writes. Returns NULL with err. */
struct sl_registry *sl_registry_open(struct sl_store *store, struct sl_error *err);
void sl_registry_close(struct sl_registry *reg);

/* The current snapshot of a workspace, retained (caller releases), or NULL. Any thread. */
struct sl_ws *sl_registry_get(struct sl_registry *reg, const char *name);
/* Calls fn for each workspace snapshot (retained during the call), in name order. */
void sl_registry_each(struct sl_registry *reg, void (*fn)(void *arg, struct sl_ws *ws),
                      void *arg);

/* Creates an empty workspace. Returns 0, SL_EEXIST, SL_EINVAL (bad name) or SL_ESTORE. */
int sl_registry_create(struct sl_registry *reg, const char *name, int live,
                       struct sl_error *err);
/* Deletes a workspace's definitions. Returns 0, SL_ENOTFOUND or SL_ESTORE. */
int sl_registry_delete(struct sl_registry *reg, const char *name, struct sl_error *err);
/* Persists a new snapshot durably and swaps it in. ws is consumed. Returns 0 or SL_ESTORE.
 * Callers serialise applies per workspace (the server does them on the writer thread). */
int sl_registry_install(struct sl_registry *reg, struct sl_ws *ws, struct sl_error *err);

/* The plan of replacing `old` (may be NULL) with `new_repo`: appends a JSON array of
 * {"action":"create"|"update"|"delete","kind":"entity"|...,"name":N,"changes":[field names],
 * "diff":[{"field":F,"old":V,"new":V}]} (values without file/line; null when absent) to out
 * and returns the number of changes. */
struct sl_buf;
size_t sl_registry_plan(const cJSON *old_repo, const cJSON *new_repo, struct sl_buf *out);

/* Workspace names: [A-Za-z0-9_-]{1,64}. Returns 1 when valid. */
int sl_registry_valid_name(const char *name);

#endif
