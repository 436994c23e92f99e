/* Workspace snapshots from canonical repository JSON: references, service order, ids,
 * plans, and persistence. */
#include "check_fast.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "registry.h"
#include "store.h"

static const char *REPO =
    "{\"entities\":[{\"name\":\"user\",\"join_keys\":[{\"name\":\"user_id\",\"dataType\":{\"type\":\"string\"}}],\"file\":\"a.lua\",\"line\":1}],"
    "\"sources\":[{\"kind\":\"stream\",\"name\":\"src\",\"timestamp_field\":\"ts\",\"schema\":["
    "{\"name\":\"user_id\",\"dataType\":{\"type\":\"string\"}},{\"name\":\"ts\",\"dataType\":{\"type\":\"timestamp\"}},"
    "{\"name\":\"x\",\"dataType\":{\"type\":\"int64\"}},{\"name\":\"y\",\"dataType\":{\"type\":\"float64\"}}],\"file\":\"a.lua\",\"line\":3},"
    "{\"kind\":\"request\",\"name\":\"req\",\"schema\":[{\"name\":\"amount\",\"dataType\":{\"type\":\"float64\"}}],\"file\":\"a.lua\",\"line\":4}],"
    "\"feature_views\":["
    "{\"kind\":\"stream\",\"name\":\"zeta\",\"source\":\"src\",\"entities\":[\"user\"],\"join_keys\":[{\"name\":\"user_id\",\"dataType\":{\"type\":\"string\"}}],"
    "\"online\":true,\"offline\":false,\"ttl\":\"1d\",\"timestamp_field\":\"ts\",\"mode\":\"attribute\",\"transformation\":null,"
    "\"features\":[{\"kind\":\"attribute\",\"name\":\"x\",\"column\":\"x\",\"dataType\":{\"type\":\"int64\"}},"
    "{\"kind\":\"attribute\",\"name\":\"y\",\"column\":\"y\",\"dataType\":{\"type\":\"float64\"}}],\"description\":\"d1\",\"file\":\"a.lua\",\"line\":5},"
    "{\"kind\":\"stream\",\"name\":\"alpha\",\"source\":\"src\",\"entities\":[\"user\"],\"join_keys\":[{\"name\":\"user_id\",\"dataType\":{\"type\":\"string\"}}],"
    "\"online\":true,\"offline\":true,\"ttl\":null,\"timestamp_field\":\"ts\",\"mode\":\"attribute\",\"transformation\":null,"
    "\"features\":[{\"kind\":\"attribute\",\"name\":\"x\",\"column\":\"x\",\"dataType\":{\"type\":\"int64\"}}],\"file\":\"a.lua\",\"line\":9},"
    "{\"kind\":\"realtime\",\"name\":\"rt\",\"sources\":[\"req\",\"alpha\"],\"entities\":[],\"join_keys\":[],\"mode\":\"attribute\","
    "\"features\":[{\"kind\":\"attribute\",\"name\":\"big\",\"column\":\"big\",\"dataType\":{\"type\":\"boolean\"}}],\"file\":\"a.lua\",\"line\":12}],"
    "\"feature_services\":[{\"name\":\"svc\",\"features\":[{\"view\":\"zeta\",\"features\":[\"y\"]},{\"view\":\"alpha\",\"features\":null},"
    "{\"view\":\"rt\",\"features\":null}],\"file\":\"a.lua\",\"line\":20}]}";

static struct sl_ws *build(const char *json, struct sl_error *err)
{
    cJSON *repo = cJSON_Parse(json);
    ck_assert_ptr_nonnull(repo);
    struct sl_file f = {"a.lua", "-- text", 7};
    return sl_ws_build("ws", 1, 1, repo, &f, 1, err);
}

START_TEST(builds_views_and_orders_services_as_tecton)
{
    struct sl_error err = {0};
    struct sl_ws *ws = build(REPO, &err);
    ck_assert_msg(ws != NULL, "%s", err.msg);
    struct sl_view *z = sl_ws_view(ws, "zeta");
    ck_assert_ptr_nonnull(z);
    ck_assert_int_eq(z->key_index[0], 0);
    ck_assert_int_eq(z->ts_index, 1);
    ck_assert_int_eq(z->features[1].col_index, 3);
    ck_assert(z->ttl_ns == 86400LL * 1000000000LL);
    ck_assert_uint_eq(strlen(z->id), 32);
    struct sl_source *s = sl_ws_source(ws, "src");
    ck_assert_uint_eq(s->nviews, 2);
    struct sl_service *svc = sl_ws_service(ws, "svc");
    ck_assert_uint_eq(svc->nitems, 3);
    ck_assert_str_eq(svc->items[0].view->name, "rt"); /* realtime first */
    ck_assert_str_eq(svc->items[1].view->name, "alpha");
    ck_assert_str_eq(svc->items[2].view->name, "zeta");
    ck_assert_uint_eq(svc->items[2].nfeat, 1);
    ck_assert_int_eq(svc->items[2].feat[0], 1);
    ck_assert_uint_eq(svc->nkeys, 1);
    ck_assert_uint_eq(svc->nrequest, 1);
    ck_assert_str_eq(svc->request_keys[0].name, "amount");
    ck_assert_ptr_eq(sl_ws_service_by_id(ws, svc->id), svc);
    sl_ws_release(ws);
}
END_TEST

START_TEST(ids_ignore_descriptions_but_not_features)
{
    struct sl_error err = {0};
    struct sl_ws *a = build(REPO, &err);
    char *other = strdup(REPO);
    char *d = strstr(other, "\"d1\"");
    d[1] = 'X'; /* description change */
    struct sl_ws *b = build(other, &err);
    ck_assert_str_eq(sl_ws_view(a, "zeta")->id, sl_ws_view(b, "zeta")->id);
    char *f = strstr(other, "\"column\":\"y\"");
    memcpy(f, "\"column\":\"x\"", 12); /* the feature reads another column */
    struct sl_ws *c = build(other, &err);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_ne(sl_ws_view(a, "zeta")->id, sl_ws_view(c, "zeta")->id);
    ck_assert_str_ne(sl_ws_view(a, "zeta")->id, sl_ws_view(a, "alpha")->id);
    sl_ws_release(a);
    sl_ws_release(b);
    sl_ws_release(c);
    free(other);
}
END_TEST

/* A registry on a new LevelDB store in a temporary directory (its path goes to dir). */
static struct sl_registry *temp_registry(char dir[256], struct sl_store *st)
{
    struct sl_error err = {0};
    snprintf(dir, 256, "/tmp/sl-reg-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(sl_store_leveldb_open(dir, 8, st, &err), 0);
    struct sl_registry *reg = sl_registry_open(st, &err);
    ck_assert_ptr_nonnull(reg);
    return reg;
}

static void remove_dir(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static struct sl_ws *next(const struct sl_ws *prev, const char *json)
{
    struct sl_error err = {0};
    struct sl_file f = {"a.lua", "-- text", 7};
    struct sl_ws *ws = sl_ws_build_next(prev, cJSON_Parse(json), &f, 1, &err);
    ck_assert_msg(ws != NULL, "%s", err.msg);
    return ws;
}

START_TEST(ids_are_never_reused_by_a_redefinition_or_a_recreated_workspace)
{
    char dir[256];
    struct sl_error err = {0};
    struct sl_store st;
    struct sl_registry *reg = temp_registry(dir, &st);
    ck_assert_int_eq(sl_registry_create(reg, "ws", 1, &err), 0);
    struct sl_ws *empty = sl_registry_get(reg, "ws");
    ck_assert(empty->epoch != 0);
    struct sl_ws *v1 = next(empty, REPO);
    char *meta = strdup(REPO), *col = strdup(REPO);
    char *d = strstr(meta, "\"d1\"");
    d[1] = 'X'; /* description change */
    char *f = strstr(col, "\"column\":\"y\"");
    memcpy(f, "\"column\":\"x\"", 12); /* the feature reads another column */
    struct sl_ws *v2 = next(v1, meta), *v3 = next(v2, col), *v4 = next(v3, REPO);
    const char *z1 = sl_ws_view(v1, "zeta")->id;
    ck_assert_str_eq(sl_ws_view(v2, "zeta")->id, z1);                /* metadata only */
    ck_assert_str_ne(sl_ws_view(v3, "zeta")->id, z1);                /* redefined */
    ck_assert_str_eq(sl_ws_view(v3, "alpha")->id, sl_ws_view(v1, "alpha")->id);
    ck_assert_str_ne(sl_ws_view(v4, "zeta")->id, z1);                /* reverted: new id */
    ck_assert_str_ne(sl_ws_view(v4, "zeta")->id, sl_ws_view(v3, "zeta")->id);
    /* the ids survive a restart */
    char z4[33];
    memcpy(z4, sl_ws_view(v4, "zeta")->id, 33);
    sl_ws_retain(v4);
    ck_assert_int_eq(sl_registry_install(reg, v4, &err), 0);
    sl_registry_close(reg);
    reg = sl_registry_open(&st, &err);
    struct sl_ws *back = sl_registry_get(reg, "ws");
    ck_assert_str_eq(sl_ws_view(back, "zeta")->id, z4);
    ck_assert_uint_eq(back->epoch, empty->epoch);
    sl_ws_release(back);
    /* deleted and created again: the same definitions get new ids */
    ck_assert_int_eq(sl_registry_delete(reg, "ws", &err), 0);
    ck_assert_int_eq(sl_registry_create(reg, "ws", 1, &err), 0);
    struct sl_ws *again = sl_registry_get(reg, "ws");
    struct sl_ws *w1 = next(again, REPO);
    ck_assert_str_ne(sl_ws_view(w1, "zeta")->id, z1);
    ck_assert_str_ne(sl_ws_view(w1, "alpha")->id, sl_ws_view(v1, "alpha")->id);
    struct sl_ws *all[] = {empty, v1, v2, v3, v4, again, w1};
    for (size_t i = 0; i < sizeof(all) / sizeof(*all); i++)
        sl_ws_release(all[i]);
    free(meta);
    free(col);
    sl_registry_close(reg);
    sl_store_close(&st);
    remove_dir(dir);
}
END_TEST

START_TEST(bad_references_name_file_and_line)
{
    struct sl_error err = {0};
    char *bad = strdup(REPO);
    char *p = strstr(bad, "\"view\":\"zeta\"");
    memcpy(p, "\"view\":\"zzzz\"", 13);
    ck_assert_ptr_null(build(bad, &err));
    ck_assert_msg(strstr(err.msg, "a.lua:20:") && strstr(err.msg, "zzzz"), "%s", err.msg);
    free(bad);
    bad = strdup(REPO);
    p = strstr(bad, "\"features\":[\"y\"]");
    memcpy(p, "\"features\":[\"q\"]", 16);
    memset(&err, 0, sizeof(err));
    ck_assert_ptr_null(build(bad, &err));
    ck_assert_msg(strstr(err.msg, "unknown feature `q`"), "%s", err.msg);
    free(bad);
}
END_TEST

START_TEST(plan_lists_creates_updates_deletes)
{
    cJSON *old = cJSON_Parse(REPO);
    cJSON *neu = cJSON_Parse(REPO);
    struct sl_buf out = SL_BUF_INIT;
    ck_assert_uint_eq(sl_registry_plan(old, neu, &out), 0);
    ck_assert_str_eq(sl_buf_cstr(&out), "[]");
    sl_buf_reset(&out);
    ck_assert_uint_eq(sl_registry_plan(NULL, neu, &out), 7); /* 1 entity, 2 sources, 3 views, 1 service */
    ck_assert_ptr_nonnull(strstr(sl_buf_cstr(&out), "{\"action\":\"create\",\"kind\":\"entity\",\"name\":\"user\",\"changes\":[],\"diff\":[]}"));
    /* move a file line only: no change; change ttl: update; drop the service: delete */
    cJSON *views = cJSON_GetObjectItem(neu, "feature_views");
    cJSON *z = cJSON_GetArrayItem(views, 0);
    cJSON_ReplaceItemInObject(z, "line", cJSON_CreateNumber(99));
    sl_buf_reset(&out);
    ck_assert_uint_eq(sl_registry_plan(old, neu, &out), 0);
    cJSON_ReplaceItemInObject(z, "ttl", cJSON_CreateString("2d"));
    cJSON_DeleteItemFromObject(neu, "feature_services");
    cJSON_AddItemToObject(neu, "feature_services", cJSON_CreateArray());
    sl_buf_reset(&out);
    ck_assert_uint_eq(sl_registry_plan(old, neu, &out), 2);
    const char *s = sl_buf_cstr(&out);
    ck_assert_ptr_nonnull(strstr(s, "{\"action\":\"update\",\"kind\":\"feature_view\",\"name\":\"zeta\",\"changes\":[\"ttl\"],"
                                  "\"diff\":[{\"field\":\"ttl\",\"old\":\"1d\",\"new\":\"2d\"}]}"));
    ck_assert_ptr_nonnull(strstr(s, "{\"action\":\"delete\",\"kind\":\"feature_service\",\"name\":\"svc\""));
    sl_buf_free(&out);
    cJSON_Delete(old);
    cJSON_Delete(neu);
}
END_TEST

START_TEST(registry_persists_across_reopen)
{
    char dir[256];
    struct sl_error err = {0};
    struct sl_store st;
    struct sl_registry *reg = temp_registry(dir, &st);
    ck_assert_int_eq(sl_registry_create(reg, "ws", 1, &err), 0);
    ck_assert_int_eq(sl_registry_create(reg, "ws", 1, &err), SL_EEXIST);
    ck_assert_int_eq(sl_registry_create(reg, "bad/name", 1, &err), SL_EINVAL);
    struct sl_ws *ws = build(REPO, &err);
    ck_assert_int_eq(sl_registry_install(reg, ws, &err), 0);
    struct sl_ws *held = sl_registry_get(reg, "ws");
    char id[33];
    memcpy(id, sl_ws_view(held, "zeta")->id, 33);
    sl_registry_close(reg);
    /* a snapshot held by a request outlives the registry that handed it out */
    ck_assert_str_eq(sl_ws_view(held, "zeta")->name, "zeta");
    sl_ws_release(held);
    reg = sl_registry_open(&st, &err);
    ck_assert_ptr_nonnull(reg);
    ws = sl_registry_get(reg, "ws");
    ck_assert_ptr_nonnull(ws);
    ck_assert_str_eq(sl_ws_view(ws, "zeta")->id, id);
    ck_assert_uint_eq(ws->nfiles, 1);
    ck_assert_str_eq(ws->files[0].data, "-- text");
    sl_ws_release(ws);
    ck_assert_int_eq(sl_registry_delete(reg, "ws", &err), 0);
    ck_assert_ptr_null(sl_registry_get(reg, "ws"));
    sl_registry_close(reg);
    reg = sl_registry_open(&st, &err);
    ck_assert_ptr_null(sl_registry_get(reg, "ws"));
    sl_registry_close(reg);
    sl_store_close(&st);
    remove_dir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, builds_views_and_orders_services_as_tecton);
    tcase_add_test(tc, ids_ignore_descriptions_but_not_features);
    tcase_add_test(tc, ids_are_never_reused_by_a_redefinition_or_a_recreated_workspace);
    tcase_add_test(tc, bad_references_name_file_and_line);
    tcase_add_test(tc, plan_lists_creates_updates_deletes);
    tcase_add_test(tc, registry_persists_across_reopen);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
