/* The plugin loader and the registries of plugin kinds (DESIGN §7). The public side, what a
 * plugin compiles against, is plugins/sluice/plugin.h; this is the core's side: loading .so
 * files at start, the built-in descriptors, opening the online store by name, the Lua
 * libraries of each VM, listing and metrics.
 *
 * Threads: sl_plugin_builtins is thread-safe. Loading and unloading run on the main thread
 * before any worker thread exists and after every one stopped; everything else only reads the
 * registry, which is immutable in between, from any thread. */
#ifndef SL_PLUGIN_H
#define SL_PLUGIN_H

#include <stddef.h>

#include "sluice/plugin.h"

struct lua_State;
struct sl_store;

/* Registers every built-in (the aggregation functions, the LevelDB store) through the same
 * descriptor path as loaded plugins, once. Idempotent; any thread. */
void sl_plugin_builtins(void);

/* Loads the plugin at path: dlopen (RTLD_NOW | RTLD_LOCAL), its SL_PLUGIN_ENTRY, the checks of
 * ABI version and structure sizes, cb_init, then registration in its kind's registry. On any
 * failure nothing of it stays registered or loaded, and err holds one line naming the file
 * ("plugin /x/y.so: ABI 2.0, this sluice speaks 1.0"). Returns 0 or a negative SL_E* code. */
int sl_plugin_load(const char *path, struct sl_error *err);

/* Loads every *.so in dir, in name order. Stops at the first failure (as sl_plugin_load). */
int sl_plugin_load_dir(const char *dir, struct sl_error *err);

/* Start-up: parses settings (newline-separated lists: `plugin-config` lines
 * "<plugin>.<key>=<value>", then `plugin-dir` folders and `plugin` paths, each loaded in
 * turn), and checks every plugin-config line names a loaded plugin's setting. Any list may be
 * NULL. Returns 0 or the first failure with err. */
int sl_plugin_load_config(const char *paths, const char *dirs, const char *settings,
                          struct sl_error *err);

/* Opens the online store registered as name (built-in "leveldb", or a store plugin) on dir.
 * Returns 0 and fills *out, SL_ENOTFOUND ("no online store `x`; loaded: leveldb") or the
 * store's failure, with err. */
int sl_plugin_store_open(const char *name, const char *dir, size_t cache_mb,
                         struct sl_store *out, struct sl_error *err);

/* Appends {"plugins":[{"name","kind","version","abi","file","description"}...]} of every
 * registered plugin, built-ins first (file "(built-in)"). Any thread. */
void sl_plugin_list_json(struct sl_buf *b);

/* Appends the plugins' metrics in the Prometheus text format. Any thread. */
void sl_plugin_metrics(struct sl_buf *b);

/* Sets every plugin Lua library as a read-only global table of L. A lua_CFunction: call it
 * inside a protected call while the VM is being opened. Returns 0 (no results). */
int sl_plugin_lua_open(struct lua_State *L);

/* Runs cb_exit of every loaded plugin, takes its functions out of the registries, dlcloses it
 * and forgets the plugin-config settings. Built-ins stay. For shutdown, after every user
 * (threads, specs, stores) is gone. */
void sl_plugin_unload_all(void);

#endif
