/* Feature repositories: evaluates the Lua definition files of DESIGN §3 in a sandbox,
 * validates the whole repository and describes it as canonical JSON (defs.md beside this
 * file documents that JSON). */
#ifndef SL_DEFS_H
#define SL_DEFS_H

#include <stddef.h>
#include <cJSON.h>
#include <lua.h>

struct sl_error;

/* One definition file: name relative to the repository root ("features/ads.lua"). Borrowed. */
struct sl_file {
    const char *name;
    const char *data;
    size_t len;
};

/* Evaluates files (in name order) in L, a state from sl_vm_new, validates the repository and
 * on success sets *repo to its canonical JSON (caller frees with cJSON_Delete). Leaves the
 * repository's objects in L's registry so sl_defs_push_function can find user functions.
 * Returns 0, SL_ESCRIPT (Lua error or validation failure; err->msg starts with "file:line: "),
 * or SL_ENOMEM. */
int sl_defs_eval(lua_State *L, const struct sl_file *files, size_t n, cJSON **repo,
                 struct sl_error *err);

/* After a successful sl_defs_eval in L: pushes the user function `what` of object `name`
 * ("transformation" of a feature view, "post_processor" of a source) and returns 0, or
 * pushes nothing and returns SL_ENOTFOUND. */
int sl_defs_push_function(lua_State *L, const char *name, const char *what);

#endif
