/* libFuzzer target: arbitrary text as user Lua in the sandbox, under small budgets, the three
 * ways the server runs user code: as a repository file (plan/apply), as a function called
 * with a record (a transformation at /ingest) and as a function called with a request and
 * its inputs (a realtime view at get-features). Whatever the text does it must end with
 * 0 or SL_ESCRIPT, within the budget: no crash, no hang, no leak, and the state must stay
 * usable for the next call. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "defs.h"
#include "error.h"
#include "lua_vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Calls the function on top of L with a record-like table, as transform.c does. */
static void call_with_record(lua_State *L, int nargs)
{
    struct sl_error err = {0};
    for (int i = 0; i < nargs; i++) {
        lua_createtable(L, 0, 3);
        lua_pushliteral(L, "u1");
        lua_setfield(L, -2, "user_id");
        lua_pushinteger(L, INT64_C(1714564800000000000));
        lua_setfield(L, -2, "ts");
        lua_pushlightuserdata(L, NULL);
        lua_setfield(L, -2, "note");
    }
    if (sl_vm_pcall(L, nargs, 1, &err) == 0)
        lua_pop(L, 1);
    else if (err.code != SL_ESCRIPT)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_error err = {0};
    struct sl_vm_limits lim = {8u << 20, 200000, 400}; /* x5 under the sanitizers */
    lua_State *L = sl_vm_new(&lim, &err);
    if (L == NULL)
        return 0;

    /* 1. a repository file */
    struct sl_file f = {"fuzz.lua", (const char *)data, size};
    cJSON *repo = NULL;
    if (sl_defs_eval(L, &f, 1, &repo, &err) == 0)
        cJSON_Delete(repo);
    else if (err.code != SL_ESCRIPT && err.code != SL_ENOMEM)
        abort();

    /* 2. and 3. the chunk's result called as a transformation and as a realtime view */
    if (sl_vm_load(L, "fuzz.lua", (const char *)data, size, &err) == 0) {
        if (sl_vm_pcall(L, 0, 1, &err) == 0) {
            if (lua_isfunction(L, -1)) {
                lua_pushvalue(L, -1);
                call_with_record(L, 1);
                call_with_record(L, 2);
            } else {
                lua_pop(L, 1);
            }
        } else if (err.code != SL_ESCRIPT) {
            abort();
        }
    }
    if (lua_gettop(L) != 0)
        abort();

    /* the state stays usable */
    static const char probe[] = "return ('a,b'):gsub(',', ';')";
    if (sl_vm_load(L, "probe.lua", probe, sizeof(probe) - 1, &err) != 0 ||
        sl_vm_pcall(L, 0, 1, &err) != 0 || strcmp(lua_tostring(L, -1), "a;b") != 0)
        abort();
    sl_vm_close(L);
    return 0;
}
