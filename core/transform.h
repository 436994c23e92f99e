/* Lua transformations at ingest time: per-worker VMs holding a workspace's definitions, and
 * the exact conversion of records to Lua tables and back (STYLE.md, Lua). */
#ifndef SL_TRANSFORM_H
#define SL_TRANSFORM_H

#include "sl_limits.h"
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "lua_vm.h"

struct sl_arena;
struct sl_buf;
struct sl_error;
struct sl_field;
struct sl_json;
struct sl_ws;

/* The VMs of one worker thread, one per workspace, rebuilt when the workspace's version
 * changes (so an apply reaches every worker atomically: a request uses the snapshot it
 * started with). One thread only. */
struct sl_xform_cache;

struct sl_xform_cache *sl_xform_cache_new(const struct sl_vm_limits *lim);
void sl_xform_cache_free(struct sl_xform_cache *c);

/* The VM of ws (its definition files evaluated), creating or rebuilding it as needed.
 * Returns NULL with err (SL_ESCRIPT, SL_ENOMEM). The state belongs to the cache. */
lua_State *sl_xform_vm(struct sl_xform_cache *c, const struct sl_ws *ws, struct sl_error *err);

/* Calls user function `what` ("transformation" or "post_processor") of object `obj` with rec
 * (a JSON object already valid for schema in[0..nin)) as a Lua table. The result — nil (no
 * row), a table (one row) or an array of tables (several rows) — is converted back to JSON
 * objects guided by schema out[0..nout) (fields not in out are ignored; a field left nil is
 * absent, so the schema check reports it missing; sluice.null, and nil inside arrays, maps
 * and structs, become null), allocated from arena a. Sets *rows / *nrows. Returns 0, or SL_ESCRIPT with
 * err "file:line: message" (runtime error, instruction or memory limit, a value of the wrong
 * shape), or SL_ENOMEM. Values are exact: int64 is a Lua integer; timestamps are RFC 3339
 * strings (an integer is taken as ns since the epoch); null is sluice.null. */
int sl_xform_run(lua_State *L, const char *obj, const char *what, const struct sl_field *in,
                 size_t nin, const struct sl_json *rec, const struct sl_field *out, size_t nout,
                 struct sl_arena *a, struct sl_json ***rows, size_t *nrows, struct sl_error *err);

/* One input of a realtime view: another view's features, as a JSON object mapping feature
 * name to its served value (the get-features encoding). */
struct sl_view;
struct sl_xform_input {
    const struct sl_view *view;
    const struct sl_json *values;
};

/* Calls realtime view `view`'s transformation(request, inputs): request is the request
 * context ctx (a JSON object valid for req[0..nreq)) as a table, inputs a table of tables
 * keyed by input view name. Values cross as for sl_xform_run (int64 exact, null is
 * sluice.null). The returned table is converted to a JSON object guided by out[0..nout)
 * (the view's features). Returns 0 with *row set, or SL_ESCRIPT / SL_ENOMEM with err. */
int sl_xform_realtime(lua_State *L, const char *view, const struct sl_field *req, size_t nreq,
                      const struct sl_json *ctx, const struct sl_xform_input *in, size_t nin,
                      const struct sl_field *out, size_t nout, struct sl_arena *a,
                      struct sl_json **row, struct sl_error *err);

/* The inputs a realtime view reads: at most SL_MAX_REALTIME_INPUTS views, each of at most
 * SL_MAX_VIEW_FEATURES features (sl_limits.h; the registry refuses more). */

/* Gives the values of input view iv of a realtime view: frag[f], len[f] for each of iv's
 * features in declaration order, JSON in the get-features encoding (null when absent),
 * borrowed until the next call. Returns 0, or an SL_E* code with msg. */
typedef int (*sl_xform_input_fn)(void *arg, const struct sl_view *iv, const char **frag,
                                 size_t *len, char *msg, size_t cap);

/* Computes realtime view v for one request, online (get-features) and offline
 * (get-features-for-events) alike: checks the request context ctx (a JSON object, may be
 * NULL) against v's RequestSource ("Missing required request context key: K", "Request
 * context key `K`: ..."), reads each input view through input(arg, ...), runs v's
 * transformation(request, inputs) in L (a workspace VM, sl_xform_vm: the sandbox and budgets
 * of its cache), and appends the get-features encoding of features feat[0..nfeat) to out,
 * feature f at off[f] with length len[f]. Temporaries come from arena a. Returns 0, SL_EINVAL
 * (request context), SL_ESCRIPT (the function failed or returned a wrong value: msg starts
 * "realtime feature view `v`" and names file:line), SL_ENOMEM, or input()'s code. The
 * thread that owns L. */
int sl_xform_realtime_view(lua_State *L, const struct sl_ws *ws, const struct sl_view *v,
                           const struct sl_json *ctx, sl_xform_input_fn input, void *arg,
                           const int *feat, size_t nfeat, struct sl_arena *a,
                           struct sl_buf *out, size_t *off, size_t *len, char *msg, size_t cap);

#endif
