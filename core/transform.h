/* Lua transformations at ingest time: per-worker VMs holding a workspace's definitions, and
 * the exact conversion of records to Lua tables and back (STYLE.md, Lua). */
#ifndef SL_TRANSFORM_H
#define SL_TRANSFORM_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "lua_vm.h"

struct sl_arena;
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

#endif
