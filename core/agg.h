/* The aggregation engine (DESIGN §3, §5): aggregate feature specs, a registry of aggregation
 * functions with mergeable partial-aggregate states, and the pure time arithmetic the storage
 * layer uses to write and read them (tiles with a roll-up hierarchy, lifetime states,
 * continuous windows over raw events). agg.md beside this file documents the byte formats and
 * the tile scheme.
 *
 * Nothing here touches storage or threads: a state is owned by one thread at a time; specs and
 * registered functions are immutable and may be shared by every thread. */
#ifndef SL_AGG_H
#define SL_AGG_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "sluice/plugin.h"

struct sl_buf;
struct sl_error;
struct sl_scalar;
struct sl_type;

#define SL_AGG_MAX_N 1000        /* bound of n for last_n, first_n, *_distinct */
#define SL_AGG_MAX_LEVELS 16     /* tile levels of one tiling */
#define SL_AGG_TILE_RATIO 4      /* each tile level is this many tiles of the level below */
#define SL_AGG_PLAN_MAX 128      /* a read plan of a window <= the tiling's window fits */
#define SL_AGG_TILE_KEY_LEN 9    /* bytes written by sl_agg_tile_key */

/* ---- Parameters -------------------------------------------------------------------------- */

/* SL_AGG_P_*, struct sl_agg_params: sluice/plugin.h. */

/* ---- Function registry ------------------------------------------------------------------- */

struct sl_agg_spec;

/* struct sl_agg_fn, the aggregation descriptor, is in sluice/plugin.h (with its contract):
 * built-ins and plugins use the same one. */

/* Adds fn to the registry (borrowed) after the built-ins are registered. Returns 0, SL_EINVAL
 * (sl_agg_check_fn fails), SL_EEXIST (name taken, built-ins and aliases included) or
 * SL_ENOMEM. Call at startup before any thread looks functions up; not thread-safe against
 * lookups. */
int sl_agg_register(const struct sl_agg_fn *fn);

/* 0 when fn is a usable descriptor: abi_version SL_AGG_ABI_VERSION, struct_size at least the
 * size of that version's structure, a name and every mandatory callback; else SL_EINVAL. */
int sl_agg_check_fn(const struct sl_agg_fn *fn);

/* The registry's one way in, for plugin.c (built-ins with builtin = 1, registered first, then
 * loaded plugins): checks fn like sl_agg_register without first registering the built-ins.
 * sl_agg_remove takes a non-built-in function out again (rollback of a failed load); 0 or
 * SL_ENOTFOUND. Start-up only, like sl_agg_register. */
int sl_agg_add(const struct sl_agg_fn *fn, int builtin);
int sl_agg_remove(const struct sl_agg_fn *fn);

/* Forgets every function added with sl_agg_register and frees the registry (built-ins stay).
 * For shutdown and tests, when no thread uses the registry or specs of plugin functions. */
void sl_agg_registry_clear(void);

/* The function registered as name[0..len) (built-ins: count sum mean min max last last_n
 * first_n last_distinct first_distinct stddev_pop stddev_samp var_pop var_samp
 * approx_count_distinct approx_percentile; aliases "variance" = var_samp, "stddev" =
 * stddev_samp), or NULL. Borrowed; any thread. */
const struct sl_agg_fn *sl_agg_fn_find(const char *name, size_t len);

/* ---- Feature specs ----------------------------------------------------------------------- */

#define SL_AGG_LIFETIME INT64_MAX /* spec->window of a lifetime window */

/* Tile levels of a time_interval feature: len[0] is the aggregation interval, each next level
 * SL_AGG_TILE_RATIO times the previous; tiles of level k start at multiples of len[k] since
 * the Unix epoch, so a tile of level k+1 is exactly the union of RATIO tiles of level k. */
struct sl_agg_tiling {
    int64_t interval; /* ns, > 0 */
    int nlevels;      /* 1..SL_AGG_MAX_LEVELS */
    int64_t len[SL_AGG_MAX_LEVELS];
};

/* One tile: the partial aggregate of events with start <= ts < start + len[level]. */
struct sl_agg_tile {
    int level;
    int64_t start;
};

/* A resolved aggregate feature. Immutable after construction; shareable by all threads. */
struct sl_agg_spec {
    char *name;
    char *column;
    const struct sl_agg_fn *fn;
    struct sl_agg_params params;
    cJSON *params_json;         /* the "params" object as given (never NULL; may be empty) */
    int64_t window;             /* ns, or SL_AGG_LIFETIME */
    int64_t offset;             /* ns, <= 0 (0 for lifetime windows) */
    int64_t interval;           /* ns; 0 = continuous mode */
    struct sl_type *input_type;
    struct sl_type *output_type;
    struct sl_agg_tiling tiling; /* time_interval mode with a time window; else nlevels = 0 */
};

/* Builds a spec from an aggregate feature's canonical JSON:
 *   {"kind":"aggregate","name":N,"column":C,"function":F,"params":{...},"window":"1h" |
 *    "lifetime","offset":"-1h","input_type":T,"dataType":T}
 * ("kind", "name", "params", "offset" and "dataType" are optional; a missing name gets the
 * default name, a given dataType must equal the computed output type). interval is the feature
 * view's aggregation_interval in ns, 0 for continuous mode. Validation is sl_agg_resolve's.
 * Returns 0 and sets *out (caller frees with sl_agg_spec_free), or SL_ESCHEMA / SL_EINVAL with
 * a user-facing message in err, or SL_ENOMEM. Any thread. */
int sl_agg_spec_from_cjson(const cJSON *j, int64_t interval, struct sl_agg_spec **out,
                           struct sl_error *err);

/* Frees spec and what it owns; accepts NULL and half-built specs. */
void sl_agg_spec_free(struct sl_agg_spec *spec);

/* Validates a (possibly partial) aggregate feature object and completes it in place, for the
 * definitions loader: canonicalises "function" ("variance" → "var_samp", "stddev" →
 * "stddev_samp", "last" / "first" with params.n → "last_n" / "first_n"), fills default params
 * (precision), the default "name" when absent, "kind":"aggregate" and "dataType" (the output
 * type; replaced if present). "window" and "offset" are rewritten in canonical form ("60m" →
 * "1h"; a zero offset is removed).
 * Checks: known function; parameters it accepts and their ranges (0 < n <= 1000; precision
 * 4..16 for approx_count_distinct, 20..500 for approx_percentile; 0 <= percentile <= 1); input
 * type allowed for the function; window a duration or "lifetime"; offset <= 0 and not with a
 * lifetime window; in time_interval mode (interval > 0) the window a multiple of the interval.
 * Returns 0, or SL_ESCHEMA with a message naming the feature and the problem (e.g. "feature
 * `amount_sum_1h_10m`: sum is not defined for string"), SL_EINVAL when j is not an object,
 * or SL_ENOMEM (j may then be partly completed). Any thread. */
int sl_agg_resolve(cJSON *j, int64_t interval, struct sl_error *err);

/* The output type of function fn_name over input type `in` with parameters p (count → int64;
 * sum → int64 for int64/int32, float64 for float64/float32; mean, stddev_*, var_* → float64;
 * min, max, last → the input type; last_n, first_n, last_distinct, first_distinct → array of
 * the input type; approx_count_distinct → int64; approx_percentile → float64). Validates the
 * combination and p like sl_agg_resolve. Returns 0 and sets *out (caller frees with
 * sl_type_free), or SL_ESCHEMA with a message ("sum is not defined for string", "unknown
 * aggregation function `median`"), or SL_ENOMEM. params_json may be NULL. Any thread. */
int sl_agg_output_type(const char *fn_name, const cJSON *params_json,
                       const struct sl_type *in, struct sl_type **out, struct sl_error *err);

/* Appends the default feature name `<column>_<fn>_<window>_<interval>` (Tecton style) to out:
 * fn is the function's name token (last_n with n=10 → "last_10", first_n → "first_10",
 * last_distinct → "last_distinct_10", first_distinct → "first_distinct_10", approx_percentile
 * with 0.5 → "approx_percentile_p50", 0.999 → "approx_percentile_p99_9", others their name);
 * window is sl_duration_format of window_ns or "lifetime" (window_ns == SL_AGG_LIFETIME);
 * interval is sl_duration_format of interval_ns or "continuous" (0); a non-zero offset adds
 * "_offset_<|offset|>". Examples: amount_sum_1d_1d, clicked_count_30d_10m,
 * amount_mean_lifetime_continuous, clicked_sum_1h_10m_offset_1h. fn_name must be registered
 * (aliases allowed); p may be NULL. Returns 0 or SL_ESCHEMA (unknown function). */
int sl_agg_default_name(const char *column, const char *fn_name, const struct sl_agg_params *p,
                        int64_t window_ns, int64_t offset_ns, int64_t interval_ns,
                        struct sl_buf *out, struct sl_error *err);

/* Parses the "params" object into *p, checking the members fn accepts and their ranges, and
 * filling defaults. Returns 0 or SL_ESCHEMA with a message ("n must be an integer between 1
 * and 1000", "sum takes no parameter `n`"). params_json may be NULL. Any thread. */
int sl_agg_params_parse(const struct sl_agg_fn *fn, const cJSON *params_json,
                        struct sl_agg_params *p, struct sl_error *err);

/* Parses a window ("1h", "30d", "lifetime" → SL_AGG_LIFETIME) or an offset ("-1h", "0s",
 * "-90m"; must be <= 0). Return 0 or SL_EINVAL. */
int sl_agg_parse_window(const char *s, size_t len, int64_t *ns);
int sl_agg_parse_offset(const char *s, size_t len, int64_t *ns);

/* ---- States ------------------------------------------------------------------------------ */

/* A partial aggregate of one spec. Opaque. One thread at a time. */
struct sl_agg_state;

/* A new empty state of spec (borrowed: must outlive the state). Returns 0 and sets *out
 * (caller frees with sl_agg_state_free) or SL_ENOMEM. */
int sl_agg_state_new(const struct sl_agg_spec *spec, struct sl_agg_state **out);
/* Frees st; accepts NULL. */
void sl_agg_state_free(struct sl_agg_state *st);
/* Empties st (as if new). Returns 0 or SL_ENOMEM. */
int sl_agg_state_reset(struct sl_agg_state *st);

/* Adds one input value observed at event time ts (ns since the epoch) and written with
 * sequence number seq (monotonic per writer: on equal ts the larger seq is the later write,
 * so "same timestamp: last write wins" holds for last/last_n/last_distinct).
 * v is a struct sl_scalar as read by sl_value_scalar (its kind must be the spec's input kind;
 * INT32 and INT64 may be mixed, as may FLOAT32 and FLOAT64). Values of Array/Map/Struct
 * columns (accepted by count, last, last_n, first_n) are passed as an sl_scalar with kind
 * SL_ARRAY/SL_MAP/SL_STRUCT, null set for a JSON null, and str/len the value's canonical JSON
 * encoding (the bytes sl_value_encode appends for it); those bytes are copied and emitted
 * verbatim in results. Nulls (v->null) are ignored and return 0. Returns 0, SL_EINVAL (kind
 * does not match), or SL_ENOMEM. v is borrowed. */
int sl_agg_update(struct sl_agg_state *st, const struct sl_scalar *v, int64_t ts, uint64_t seq);

/* dst := dst ⊕ src; both states of the same spec. src is borrowed. Returns 0, SL_EINVAL
 * (different specs' functions) or SL_ENOMEM. Merge is associative and commutative for every
 * built-in and exact except in floating-point rounding (float sum is Neumaier-compensated,
 * mean/variance use Chan's formula: any merge order agrees to ~1e-15 relative, tests hold it
 * to 1e-9). An int64 sum wraps modulo 2^64 on overflow (so it stays associative). */
int sl_agg_merge(struct sl_agg_state *dst, const struct sl_agg_state *src);

/* dst := dst ⊕ the state serialized in p[0..len) (a stored tile). Returns 0, SL_ECORRUPT
 * (not a valid state of this spec) or SL_ENOMEM. */
int sl_agg_merge_bytes(struct sl_agg_state *dst, const void *p, size_t len);

/* Appends the state's compact bytes (format in agg.md: one version byte, then the function's
 * payload). Returns 0 or SL_ENOMEM. */
int sl_agg_serialize(const struct sl_agg_state *st, struct sl_buf *out);

/* Replaces st's contents with the state serialized in p[0..len). Returns 0, SL_ECORRUPT or
 * SL_ENOMEM (st is then empty). */
int sl_agg_deserialize(struct sl_agg_state *st, const void *p, size_t len);

/* Appends the feature value's canonical JSON encoding, as get-features returns it:
 *   count → "n" (int64 as a quoted decimal; "0" when empty);
 *   sum → int64 "n" or float64; mean, stddev_*, var_*, approx_percentile → float64;
 *   min, max, last → the input type's encoding; last_n, first_n, *_distinct → JSON array,
 *   oldest to newest; approx_count_distinct → int64 "n" ("0" when empty).
 *   float64 is the shortest text that round-trips (sl_value_format_double, as attribute
 *   features); NaN, Infinity, -Infinity are the strings "NaN", "Infinity", "-Infinity";
 *   int64 values are quoted decimals, also inside arrays. Every function but count and
 *   approx_count_distinct gives null over no values; stddev_samp / var_samp also over one.
 * Returns 0 or SL_ENOMEM. */
int sl_agg_finalize(const struct sl_agg_state *st, struct sl_buf *out);

/* Read-modify-write for the writer: deserializes old[0..oldlen) (empty: a new state), adds v
 * at (ts, seq) and appends the new state's bytes to out. Returns 0, SL_ECORRUPT, SL_EINVAL or
 * SL_ENOMEM. */
int sl_agg_apply(const struct sl_agg_spec *spec, const void *old, size_t oldlen,
                 const struct sl_scalar *v, int64_t ts, uint64_t seq, struct sl_buf *out);

/* Read-modify-write merge for the writer: merges the serialized state add[0..addlen) into
 * old[0..oldlen) (either may be empty) and appends the result to out. Returns 0,
 * SL_ECORRUPT or SL_ENOMEM. */
int sl_agg_merge_serialized(const struct sl_agg_spec *spec, const void *old, size_t oldlen,
                            const void *add, size_t addlen, struct sl_buf *out);

/* ---- Windows and tiles (pure functions; any thread) -------------------------------------- */

/* Builds the tiling for aggregation interval `interval` whose plans serve windows up to
 * max_window (both ns > 0; max_window a multiple of interval): levels len[k] = interval *
 * RATIO^k for every k with len[k] <= max_window, at most SL_AGG_MAX_LEVELS. A view may share
 * one tiling (built from its longest window) among all its features. Returns 0, or SL_EINVAL
 * for bad arguments or a window so long that a plan could exceed SL_AGG_PLAN_MAX tiles
 * (about 4e10 intervals: ~1250 years of 1 s tiles). */
int sl_agg_tiling_init(struct sl_agg_tiling *t, int64_t interval, int64_t max_window);

/* The half-open window [*start, *end) a read at time t (ns) covers:
 *   time_interval mode: end = the last tile boundary <= t + offset (a multiple of interval),
 *     start = end - window (tiles whose end <= end are complete);
 *   continuous mode: [t + offset - window, t + offset] inclusive at both ends, i.e.
 *     start = t + offset - window, end = t + offset + 1;
 *   lifetime: start = INT64_MIN, end as above.
 * The effective time of the value is *end in time_interval mode and t + offset in continuous
 * mode. Arithmetic saturates at the int64 range. */
void sl_agg_window(const struct sl_agg_spec *spec, int64_t t, int64_t *start, int64_t *end);

/* Write side of time_interval mode: the tiles (one per level, level 0 first) that an event at
 * time ts is merged into. Writes t->nlevels entries to out (room for SL_AGG_MAX_LEVELS).
 * Returns the count. */
int sl_agg_tiles_for_event(const struct sl_agg_tiling *t, int64_t ts, struct sl_agg_tile *out);

/* Read side: the fewest tiles, in time order, whose union is exactly [start, end) with no
 * overlap (greedy: at each position the coarsest aligned tile that fits). start and end must
 * be multiples of t->interval with start <= end. Writes at most cap tiles to out and sets *n.
 * Returns 0, SL_EINVAL (unaligned or reversed range) or SL_ETOOBIG (more than cap tiles;
 * SL_AGG_PLAN_MAX always suffices for end - start <= the tiling's max_window). */
int sl_agg_plan(const struct sl_agg_tiling *t, int64_t start, int64_t end,
                struct sl_agg_tile *out, size_t cap, size_t *n);

/* The read plan of spec at read time t: sl_agg_window then sl_agg_plan. For lifetime windows
 * or continuous mode (no tiles) sets *n = 0 and returns SL_EINVAL. */
int sl_agg_plan_read(const struct sl_agg_spec *spec, int64_t t, struct sl_agg_tile *out,
                     size_t cap, size_t *n);

/* Retention: events with ts < horizon and tiles with start + len <= horizon can never be
 * read again by a read at time >= now (the window start only moves forward), so the store may
 * delete them and drop late events older than it. INT64_MIN for lifetime windows. For a view,
 * take the minimum over its features. */
int64_t sl_agg_horizon(const struct sl_agg_spec *spec, int64_t now);

/* Appends a tile's 9-byte storage key suffix: the level byte, then start as big-endian with
 * the sign bit flipped, so keys sort by (level, start) bytewise. Decode returns 0 or
 * SL_ECORRUPT. */
void sl_agg_tile_key(struct sl_buf *b, const struct sl_agg_tile *tile);
int sl_agg_tile_key_decode(const void *p, size_t len, struct sl_agg_tile *tile);

/* ---- Lifetime windows -------------------------------------------------------------------- */

/* A lifetime window is one running state per entity (one stored value), in both modes. It is
 * kept as a prefix state P of every event before a boundary C plus the state of the open
 * tile [C, C + len) holding the newest events (len = the interval, or 1 ns in continuous
 * mode); when an event lands in a later tile the open tile is folded into P. A read at t thus
 * sees exactly the events of complete tiles (time_interval) or with ts <= t (continuous),
 * provided t is not before the newest event's tile (reads before it see P: documented).
 *
 * sl_agg_lifetime_apply: read-modify-write; old[0..oldlen) may be empty. Appends the new
 * bytes to out. Returns 0, SL_EINVAL (not a lifetime spec, or bad value), SL_ECORRUPT or
 * SL_ENOMEM. */
int sl_agg_lifetime_apply(const struct sl_agg_spec *spec, const void *old, size_t oldlen,
                          const struct sl_scalar *v, int64_t ts, uint64_t seq,
                          struct sl_buf *out);

/* Merges the part of the lifetime value p[0..len) visible at read time t into acc (a state of
 * the same spec). Returns 0, SL_EINVAL, SL_ECORRUPT or SL_ENOMEM. */
int sl_agg_lifetime_read(struct sl_agg_state *acc, const void *p, size_t len, int64_t t);

/* ---- Raw events (continuous mode, offline retrieval) ------------------------------------- */

struct sl_agg_event {
    int64_t ts;
    uint64_t seq;
    const struct sl_scalar *value; /* borrowed */
};

/* Computes spec's value at read time t over raw events (any order; events outside the
 * window sl_agg_window gives are skipped) and appends its JSON encoding to out. This is the
 * continuous-mode read and the offline (point-in-time) computation for both modes, so online
 * and offline share the functions. Returns 0, SL_EINVAL or SL_ENOMEM. */
int sl_agg_eval_events(const struct sl_agg_spec *spec, const struct sl_agg_event *ev, size_t n,
                       int64_t t, struct sl_buf *out);

/* Compact encoding of one event value for an event log: appends a kind byte, a null byte and
 * the payload (int: zigzag varint; float: 8 bytes; string/JSON: varint length + bytes).
 * Decode reads one value from *p (advancing *p and *left); the decoded scalar borrows the
 * bytes. Return 0 / 0 or SL_ECORRUPT. */
void sl_agg_value_encode(struct sl_buf *b, const struct sl_scalar *v);
int sl_agg_value_decode(const unsigned char **p, size_t *left, struct sl_scalar *v);

#endif
