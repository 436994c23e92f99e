/* Unit tests of the plugin loader (core/plugin.h): built-ins registered through the
 * descriptors and listed, the online store opened by name, a Lua library plugin (the lua_geo
 * example) inside the sandbox, load failures that leave nothing registered, the repeatable
 * settings. The refusals of foreign .so files at server start are in
 * tests/integration/test_plugins.py. */
#include <check.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agg.h"
#include "buf.h"
#include "config.h"
#include "error.h"
#include "lua_vm.h"
#include "plugin.h"
#include "store.h"

#ifndef GEO_SO
#error GEO_SO must name the built lua_geo plugin
#endif

START_TEST(test_builtins_listed)
{
    struct sl_buf b = SL_BUF_INIT;
    sl_plugin_list_json(&b);
    cJSON *j = cJSON_Parse(sl_buf_cstr(&b));
    ck_assert_ptr_nonnull(j);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "plugins"), *p;
    int aggs = 0, stores = 0;
    cJSON_ArrayForEach(p, arr) {
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(p, "kind"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(p, "name"));
        ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(p, "file")), "(built-in)");
        ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(p, "abi")), "1.1");
        if (strcmp(kind, "aggregation") == 0) {
            aggs++;
            ck_assert_msg(sl_agg_fn_find(name, strlen(name)) != NULL, "%s not registered", name);
        } else if (strcmp(kind, "online-store") == 0) {
            stores++;
            ck_assert_str_eq(name, "leveldb");
        }
    }
    ck_assert_int_eq(aggs, 16);
    ck_assert_int_eq(stores, 1);
    cJSON_Delete(j);
    sl_buf_free(&b);
}
END_TEST

START_TEST(test_store_by_name)
{
    char dir[] = "/tmp/sl_test_plugin_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct sl_store s = {0};
    struct sl_error err = {0};
    ck_assert_int_eq(sl_plugin_store_open("redis", dir, 8, &s, &err), SL_ENOTFOUND);
    ck_assert_str_eq(err.msg, "no online store `redis`; registered: leveldb");
    ck_assert_int_eq(sl_plugin_store_open("leveldb", dir, 8, &s, &err), 0);
    ck_assert_str_eq(s.ops->name, "leveldb");
    ck_assert(s.ops->get == sl_store_leveldb_ops.get && s.ops->write == sl_store_leveldb_ops.write);
    struct sl_batch b = {SL_BUF_INIT, 0};
    sl_batch_put(&b, "k", 1, "v", 1);
    ck_assert_int_eq(sl_store_write(&s, &b, 1, &err), 0);
    struct sl_buf v = SL_BUF_INIT;
    ck_assert_int_eq(sl_store_get(&s, "k", 1, &v, &err), 0);
    ck_assert_int_eq((int)v.len, 1);
    sl_buf_free(&v);
    sl_batch_free(&b);
    sl_store_close(&s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Runs src in L; returns the error message ("" on success) and leaves one result on top. */
static const char *run(lua_State *L, const char *src, struct sl_error *err)
{
    memset(err, 0, sizeof *err);
    if (sl_vm_load(L, "t.lua", src, strlen(src), err) != 0 || sl_vm_pcall(L, 0, 1, err) != 0)
        return err->msg;
    return "";
}

START_TEST(test_lua_library)
{
    struct sl_error err = {0};
    ck_assert_msg(sl_plugin_load(GEO_SO, &err) == 0, "%s", err.msg);
    lua_State *L = sl_vm_new(NULL, &err);
    ck_assert_ptr_nonnull(L);
    ck_assert_str_eq(run(L, "return geo.distance(0, 0, 0, 1)", &err), "");
    ck_assert_msg(fabs(lua_tonumber(L, -1) - 111.19508) < 1e-3, "%f", lua_tonumber(L, -1));
    lua_pop(L, 1);
    ck_assert_str_eq(run(L, "return geo.cell(48.85, 2.35, 0.5)", &err), "");
    ck_assert_str_eq(lua_tostring(L, -1), "97:4");
    lua_pop(L, 1);
    ck_assert_msg(strstr(run(L, "geo.distance = nil", &err), "attempt to modify read-only table"),
                  "%s", err.msg);
    ck_assert_msg(strstr(run(L, "return geo.distance(91, 0, 0, 0)", &err),
                         "t.lua:1: distance: argument 1 (lat1) must be between -90 and 90"),
                  "%s", err.msg);
    ck_assert_msg(strstr(run(L, "return geo.distance({}, 0, 0, 0)", &err),
                         "distance: argument 1: table is not a number, string, boolean or nil"),
                  "%s", err.msg);
    /* caught like any Lua error */
    ck_assert_str_eq(run(L, "return pcall(geo.cell, 1, 2)", &err), "");
    sl_vm_close(L);

    /* the same table twice is refused and leaves the first in place */
    ck_assert_int_eq(sl_plugin_load(GEO_SO, &err), SL_EEXIST);
    ck_assert_str_eq(err.msg, "plugin " GEO_SO ": Lua table `geo` is already taken by " GEO_SO);
    sl_plugin_unload_all();
    L = sl_vm_new(NULL, &err);
    ck_assert_str_eq(run(L, "return geo == nil", &err), "");
    ck_assert(lua_toboolean(L, -1));
    sl_vm_close(L);
}
END_TEST

START_TEST(test_load_failures)
{
    struct sl_error err = {0};
    ck_assert_int_ne(sl_plugin_load("/nonexistent/x.so", &err), 0);
    ck_assert_msg(strncmp(err.msg, "plugin /nonexistent/x.so: ", 26) == 0, "%s", err.msg);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    ck_assert_int_ne(sl_plugin_load_dir("/nonexistent", &err), 0);
    ck_assert_str_eq(err.msg, "plugin-dir /nonexistent: No such file or directory");
    ck_assert_int_eq(sl_plugin_load_config(NULL, NULL, "nope.key=1", &err), SL_EINVAL);
    ck_assert_str_eq(err.msg, "plugin-config `nope.key`: no plugin `nope` is loaded");
    sl_plugin_unload_all();
    ck_assert_int_eq(sl_plugin_load_config(NULL, NULL, "bad", &err), SL_EINVAL);
    ck_assert_str_eq(err.msg, "plugin-config `bad` wants <plugin>.<key>=<value>");
    sl_plugin_unload_all();
    ck_assert_int_eq(sl_plugin_load_config(GEO_SO, NULL, "geo.radius=1", &err), SL_EINVAL);
    ck_assert_str_eq(err.msg, "plugin-config `geo.radius`: plugin " GEO_SO " has no setting `radius`");
    sl_plugin_unload_all();
}
END_TEST

START_TEST(test_settings_repeat)
{
    struct sl_config cfg;
    struct sl_error err = {0};
    ck_assert_int_eq(sl_config_defaults(&cfg, &err), 0);
    ck_assert_str_eq(cfg.plugins, "");
    ck_assert_str_eq(cfg.online_store, "leveldb");
    char *argv[] = {"--plugin", "/a.so", "--plugin=/b.so", "--plugin-dir", "/d"};
    ck_assert_int_eq(sl_config_args(&cfg, 5, argv, &err), 0);
    ck_assert_str_eq(cfg.plugins, "/a.so\n/b.so");
    ck_assert_str_eq(cfg.plugin_dirs, "/d");
    sl_config_free(&cfg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("plugin");
    TCase *tc = tcase_create("loader");
    tcase_add_test(tc, test_builtins_listed);
    tcase_add_test(tc, test_store_by_name);
    tcase_add_test(tc, test_lua_library);
    tcase_add_test(tc, test_load_failures);
    tcase_add_test(tc, test_settings_repeat);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
