/* libFuzzer target: evaluating arbitrary text as a feature repository in the sandbox, with
 * small limits. Must never crash, hang or leak, whatever the text does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "defs.h"
#include "error.h"
#include "lua_vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_error err = {0};
    struct sl_vm_limits lim = {8u << 20, 200000};
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    lua_State *L = sl_vm_new(&lim, &err);
    if (L) {
        struct sl_file f = {"fuzz.lua", text, size};
        cJSON *repo = NULL;
        if (sl_defs_eval(L, &f, 1, &repo, &err) == 0)
            cJSON_Delete(repo);
        else if (err.code != SL_ESCRIPT && err.code != SL_ENOMEM)
            abort();
        sl_vm_close(L);
    }
    free(text);
    return 0;
}
