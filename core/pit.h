/* Point-in-time retrieval (get-features-for-events): for each event, the feature values
 * online serving would have returned at the event's time, computed from the offline store
 * with the aggregation engine's own functions. */
#ifndef SL_PIT_H
#define SL_PIT_H

#include <stddef.h>

struct sl_buf;
struct sl_error;
struct sl_offline;
struct sl_service;
struct sl_vm_limits;
struct sl_ws;

enum sl_pit_format { SL_PIT_CSV = 'c', SL_PIT_JSONL = 'j' };

struct sl_pit_opts {
    const char *timestamp_key;   /* the events' time column ("timestamp") */
    enum sl_pit_format input;    /* events: CSV with a header row, or JSON Lines */
    enum sl_pit_format output;
    size_t line_offset;          /* the events are a part of a larger file: added to the line */
    size_t event_offset;         /* numbers and event indexes that error messages report */
    /* get-features-in-range in pages: stop after the entity that brings the rows to
     * page_rows (0: no limit); resume after a page token (sl_pit_range's *next). */
    size_t page_rows;
    const char *page_token;
    /* the Lua budgets realtime views run with (online serving's); NULL: the defaults */
    const struct sl_vm_limits *vm_limits;
};

/* Joins the events in events[0..len) with the features of svc. Output: one row per event in
 * input order: the event's own columns, then `<view>__<feature>` columns. JSON Lines values
 * are typed as in get-features (int64 as strings); CSV cells are plain text (empty = null,
 * nested values as JSON). Per event: attribute features are the latest value with time <=
 * the event time and within the view's ttl, else null; aggregate features are the window
 * ending at the event time (continuous) or at the last complete tile before it
 * (time_interval), as online serving computes them. Realtime views run per event as online
 * serving runs them (sl_xform_realtime_view, in a VM of this call with o->vm_limits): the
 * request context is the event's columns named as the RequestSource's fields (CSV cells
 * read as the JSON value they spell for non-text types), the inputs are the input views'
 * values at the event's time, and sl_now_ns() (sluice.time.now()) is the event's time
 * during the call. Returns 0, or SL_EINVAL (bad events: message names the line
 * or event, e.g. a missing request context column) / SL_ESCRIPT (a realtime view failed:
 * "event N: realtime feature view `v` failed: file:line: ...") / SL_ECORRUPT / SL_ENOMEM
 * with err. Any thread. */
int sl_pit_run(struct sl_offline *off, const struct sl_ws *ws, const struct sl_service *svc,
               const char *events, size_t len, const struct sl_pit_opts *o, struct sl_buf *out,
               struct sl_error *err);

/* get-features-in-range: for every entity with offline records, rows of feature values with
 * the interval [_valid_from, _valid_to) within [start, end) during which online serving
 * returned them — one row per view, entity and interval, consecutive equal values merged.
 * JSON Lines rows carry `_feature_view`, the join keys, `_valid_from`, `_valid_to` and
 * `<view>__<feature>`; CSV is one rectangular table with the same columns (every join key
 * of the service, every feature column of its stored views; cells of other views' columns
 * empty), its header row on the first page only. With o->page_rows, *next gets the token of the next page
 * (empty after the last): pages written one after another make the whole answer. Returns
 * 0 or SL_EINVAL (also a malformed page token) / SL_ECORRUPT / SL_ENOMEM with err. Any
 * thread. */
#include <stdint.h>
int sl_pit_range(struct sl_offline *off, const struct sl_ws *ws, const struct sl_service *svc,
                 int64_t start, int64_t end, const struct sl_pit_opts *o, struct sl_buf *out,
                 struct sl_buf *next, struct sl_error *err);

/* The JSON values of every feature of stream view v at time t (comma-separated, null for
 * none) from one entity's offline records recs[0..n) in (time, seq) order: the latest
 * attribute row within ttl, or the aggregations over the events, as get-features-in-range
 * computes them. Returns 0 or SL_ECORRUPT / SL_ENOMEM with err. */
struct sl_segment_record;
struct sl_view;
int sl_pit_entity_values(const struct sl_view *v, const struct sl_segment_record *recs, size_t n,
                         int64_t t, struct sl_buf *vals, struct sl_error *err);

#endif
