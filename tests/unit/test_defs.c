/* Unit tests of core/defs.c, scripts/lua/dsl.lua and core/lua_vm.c: the example repositories
 * give their canonical JSON, every validation error names file:line, user functions are
 * found again, and the sandbox holds (no io, os.execute, require, bytecode, string.dump,
 * debug, shared-metatable tampering; loops and memory bombs stop at their limits).
 *
 * Fixtures are found under $SL_SRCDIR (default "."): scripts/examples/{ads,fraud} and
 * tests/data/defs/{ads,fraud}.json. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_fast.h"
#include <cJSON.h>

#include "defs.h"
#include "error.h"
#include "lua_vm.h"

#define MAX_FILES 32

static const char *srcdir(void)
{
    const char *d = getenv("SL_SRCDIR");
    return d && *d ? d : ".";
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        *len = fread(buf, 1, (size_t)n, f);
        buf[*len] = '\0';
    }
    fclose(f);
    return buf;
}

/* The *.lua files of a repository folder (relative to SL_SRCDIR), names relative to it. */
struct repo_files {
    size_t n;
    struct sl_file f[MAX_FILES];
    char *names[MAX_FILES];
    char *data[MAX_FILES];
};

static void repo_load(struct repo_files *r, const char *dir)
{
    char path[1024];
    struct dirent *de;

    memset(r, 0, sizeof(*r));
    snprintf(path, sizeof path, "%s/%s", srcdir(), dir);
    DIR *d = opendir(path);
    ck_assert_msg(d != NULL, "cannot open %s (set SL_SRCDIR)", path);
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".lua") != 0)
            continue;
        ck_assert_uint_lt(r->n, MAX_FILES);
        snprintf(path, sizeof path, "%s/%s/%s", srcdir(), dir, de->d_name);
        r->names[r->n] = strdup(de->d_name);
        r->data[r->n] = slurp(path, &r->f[r->n].len);
        ck_assert_ptr_nonnull(r->data[r->n]);
        r->f[r->n].name = r->names[r->n];
        r->f[r->n].data = r->data[r->n];
        r->n++;
    }
    closedir(d);
    ck_assert_uint_gt(r->n, 0);
}

static void repo_free(struct repo_files *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->names[i]);
        free(r->data[i]);
    }
}

static cJSON *load_json(const char *rel)
{
    char path[1024];
    size_t len;
    snprintf(path, sizeof path, "%s/%s", srcdir(), rel);
    char *text = slurp(path, &len);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    ck_assert_msg(j != NULL, "%s is not JSON", path);
    return j;
}

static lua_State *vm(void)
{
    struct sl_error err = {0};
    struct sl_vm_limits lim = {.mem_bytes = 32u << 20, .instructions = 2000000};
    lua_State *L = sl_vm_new(&lim, &err);
    ck_assert_msg(L != NULL, "sl_vm_new: %s", err.msg);
    return L;
}

/* Evaluates one file `name` with text src; returns the status, *repo / err filled. */
static int eval1(lua_State *L, const char *name, const char *src, cJSON **repo,
                 struct sl_error *err)
{
    struct sl_file f = {name, src, strlen(src)};
    memset(err, 0, sizeof(*err));
    return sl_defs_eval(L, &f, 1, repo, err);
}

static const cJSON *get(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(v != NULL, "member %s missing", k);
    return v;
}

static const cJSON *named(const cJSON *arr, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return it;
    }
    ck_abort_msg("no object named %s", name);
    return NULL;
}

static void assert_str(const cJSON *o, const char *k, const char *want)
{
    const cJSON *v = get(o, k);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string", k);
    ck_assert_str_eq(v->valuestring, want);
}

static void assert_null(const cJSON *o, const char *k)
{
    ck_assert_msg(cJSON_IsNull(get(o, k)), "%s is not null", k);
}

/* Objects of each array sorted by name; every object has file and line. */
static void assert_canonical(const cJSON *repo)
{
    static const char *const arrays[] = {"entities", "sources", "feature_views",
                                         "feature_services"};
    ck_assert_int_eq(cJSON_GetArraySize(repo), 4);
    for (size_t i = 0; i < 4; i++) {
        const cJSON *a = get(repo, arrays[i]), *it;
        const char *prev = "";
        ck_assert(cJSON_IsArray(a));
        cJSON_ArrayForEach(it, a)
        {
            const char *name = get(it, "name")->valuestring;
            ck_assert_msg(strcmp(prev, name) < 0, "%s not sorted at %s", arrays[i], name);
            prev = name;
            ck_assert(cJSON_IsString(get(it, "file")));
            ck_assert(cJSON_IsNumber(get(it, "line")));
            ck_assert(cJSON_IsObject(get(it, "tags")));
        }
    }
}

static void assert_golden(const cJSON *repo, const char *fixture)
{
    cJSON *want = load_json(fixture);
    if (!cJSON_Compare(want, repo, 1)) {
        char *got = cJSON_Print(repo);
        fprintf(stderr, "%s differs; got:\n%s\n", fixture, got);
        free(got);
        ck_abort_msg("canonical JSON differs from %s", fixture);
    }
    cJSON_Delete(want);
}

/* ---- valid repositories ---- */

START_TEST(test_ads_example)
{
    struct repo_files r;
    struct sl_error err = {0};
    cJSON *repo = NULL;
    lua_State *L = vm();

    repo_load(&r, "scripts/examples/ads");
    ck_assert_msg(sl_defs_eval(L, r.f, r.n, &repo, &err) == 0, "%s", err.msg);
    assert_canonical(repo);
    assert_golden(repo, "tests/data/defs/ads.json");

    const cJSON *fv = named(get(repo, "feature_views"), "click_events_fv");
    assert_str(fv, "kind", "stream");
    assert_str(fv, "ttl", "30d");
    assert_str(fv, "mode", "attribute");
    assert_str(fv, "feature_start_time", "2022-01-01T00:00:00Z");
    assert_null(fv, "aggregation_interval");
    assert_null(fv, "transformation");
    ck_assert(cJSON_IsTrue(get(fv, "online")));

    const cJSON *agg = named(get(repo, "feature_views"), "user_click_counts");
    assert_str(agg, "mode", "time_interval");
    const cJSON *feats = get(agg, "features");
    named(feats, "clicked_sum_1h_10m");
    named(feats, "clicked_count_30d_10m");
    const cJSON *recent = named(feats, "recent_clicks");
    assert_str(recent, "function", "last_distinct");
    assert_str(get(recent, "dataType"), "type", "array");
    ck_assert_int_eq(get(get(recent, "params"), "n")->valueint, 10);
    const cJSON *tr = get(agg, "transformation");
    ck_assert_str_eq(get(tr, "source")->valuestring,
                     "function(r)                  -- optional; nil drops the record,\n"
                     "    r.clicked = r.clicked > 0 and 1 or 0        -- an array of records "
                     "fans out\n"
                     "    return r\n"
                     "  end");
    assert_str(tr, "file", "ads.lua");

    const cJSON *src = named(get(repo, "sources"), "impressions_event_source");
    assert_str(src, "timestamp_field", "timestamp");
    assert_str(get(src, "batch_config"), "uri", "data/impressions.csv");
    assert_null(src, "post_processor");
    assert_str(get(named(get(repo, "entities"), "user"), "tags"), "release", "production");

    cJSON_Delete(repo);
    repo_free(&r);
    sl_vm_close(L);
}
END_TEST

START_TEST(test_fraud_example)
{
    struct repo_files r;
    struct sl_error err = {0};
    cJSON *repo = NULL;
    lua_State *L = vm();

    repo_load(&r, "scripts/examples/fraud");
    ck_assert_msg(sl_defs_eval(L, r.f, r.n, &repo, &err) == 0, "%s", err.msg);
    assert_canonical(repo);
    assert_golden(repo, "tests/data/defs/fraud.json");

    const cJSON *views = get(repo, "feature_views");
    const cJSON *rt = named(views, "transaction_amount_is_high");
    assert_str(rt, "kind", "realtime");
    assert_null(rt, "source");
    ck_assert_str_eq(cJSON_GetArrayItem(get(rt, "sources"), 0)->valuestring,
                     "transaction_request");
    ck_assert_str_eq(cJSON_GetArrayItem(get(rt, "entities"), 0)->valuestring, "user");

    const cJSON *agg = named(views, "user_transaction_aggregates");
    const cJSON *off = named(get(agg, "features"), "amount_sum_1d_1h_offset_1d");
    assert_str(off, "offset", "-1d");
    const cJSON *life = named(get(agg, "features"), "transaction_count_lifetime");
    assert_str(life, "window", "lifetime");
    const cJSON *pct = named(get(agg, "features"), "amount_approx_percentile_p95_30d_1h");
    ck_assert_int_eq(get(get(pct, "params"), "precision")->valueint, 100);
    const cJSON *last = named(get(agg, "features"), "merchant_last_5_1d_1h");
    assert_str(last, "function", "last_n");

    const cJSON *cont = named(views, "merchant_fraud_rate");
    assert_str(cont, "mode", "continuous");
    assert_str(get(named(get(cont, "features"), "fraud_rate_7d"), "dataType"), "type", "float64");
    named(get(cont, "features"), "fraud_sum_1d_continuous");

    const cJSON *svc = named(get(repo, "feature_services"), "fraud_detection_feature_service");
    ck_assert_int_eq(cJSON_GetArraySize(get(svc, "features")), 4);
    const cJSON *sel = cJSON_GetArrayItem(get(svc, "features"), 1);
    assert_str(sel, "view", "user_transaction_aggregates");
    ck_assert_int_eq(cJSON_GetArraySize(get(sel, "features")), 4);

    const cJSON *src = named(get(repo, "sources"), "transactions");
    assert_str(get(src, "post_processor"), "file", "sources.lua");
    const cJSON *req = named(get(repo, "sources"), "transaction_request");
    assert_str(req, "kind", "request");
    assert_null(req, "timestamp_field");

    cJSON_Delete(repo);
    repo_free(&r);
    sl_vm_close(L);
}
END_TEST

/* A file may use globals of files after it in name order: it runs again after them. A name
 * defined nowhere is still an error in the file that reads it. */
START_TEST(test_forward_references)
{
    struct sl_file f[3] = {
        {"a_service.lua", "FeatureService { name = \"s\", features = { v } }\n", 0},
        {"b_view.lua",
         "v = StreamFeatureView { name = \"v\", source = src, entities = { e },\n"
         "  features = { Attribute(\"x\", Int64) } }\n", 0},
        {"c_base.lua",
         "e = Entity { name = \"e\", join_keys = { Field(\"k\", Int64) } }\n"
         "src = StreamSource { name = \"src\", schema = { Field(\"k\", Int64),\n"
         "  Field(\"t\", Timestamp), Field(\"x\", Int64) } }\n", 0},
    };
    struct sl_error err = {0};
    cJSON *repo = NULL;
    lua_State *L = vm();

    for (int i = 0; i < 3; i++)
        f[i].len = strlen(f[i].data);
    ck_assert_msg(sl_defs_eval(L, f, 3, &repo, &err) == 0, "%s", err.msg);
    assert_str(named(get(repo, "feature_services"), "s"), "file", "a_service.lua");
    assert_str(named(get(repo, "feature_views"), "v"), "file", "b_view.lua");
    cJSON_Delete(repo);
    repo = NULL;
    f[1].data = "v = StreamFeatureView { name = \"v\", source = srcc, entities = { e },\n"
                "  features = { Attribute(\"x\", Int64) } }\n";
    f[1].len = strlen(f[1].data);
    ck_assert_int_eq(sl_defs_eval(L, f, 3, &repo, &err), SL_ESCRIPT);
    ck_assert_str_eq(err.msg, "b_view.lua:1: `srcc` is not defined (did you mean `src`?)");
    ck_assert_ptr_null(repo);
    sl_vm_close(L);
}
END_TEST

/* Files run in name order whatever order they are given in; globals cross files. */
START_TEST(test_file_order)
{
    struct sl_file f[2] = {
        {"b.lua", "FeatureService { name = \"s\", features = { v } }\n", 0},
        {"a.lua",
         "local e = Entity { name = \"e\", join_keys = { Field(\"k\", Int64) } }\n"
         "local s = StreamSource { name = \"src\", schema = { Field(\"k\", Int64),\n"
         "  Field(\"t\", Timestamp), Field(\"x\", Map(String, Array(Float32))) } }\n"
         "v = StreamFeatureView { name = \"v\", source = s, entities = { e },\n"
         "  features = { Attribute(\"x\", Map(String, Array(Float32))) } }\n",
         0},
    };
    struct sl_error err = {0};
    cJSON *repo = NULL;
    lua_State *L = vm();

    f[0].len = strlen(f[0].data);
    f[1].len = strlen(f[1].data);
    ck_assert_msg(sl_defs_eval(L, f, 2, &repo, &err) == 0, "%s", err.msg);
    const cJSON *svc = named(get(repo, "feature_services"), "s");
    assert_str(svc, "file", "b.lua");
    const cJSON *dt = get(cJSON_GetArrayItem(get(named(get(repo, "feature_views"), "v"),
                                                 "features"), 0), "dataType");
    assert_str(dt, "type", "map");
    assert_str(get(dt, "keyType"), "type", "string");
    assert_str(get(get(dt, "valueType"), "elementType"), "type", "float32");
    cJSON_Delete(repo);
    sl_vm_close(L);
}
END_TEST

/* Several functions on one line: the source is the function itself. */
START_TEST(test_function_source)
{
    static const char src[] =
        "local e = Entity { name = \"e\", join_keys = { Field(\"k\", String) } }\n"
        "local s = StreamSource { name = \"s\", schema = { Field(\"k\", String), "
        "Field(\"t\", Timestamp) },\n"
        "  post_processor = function(r) return r end, description = \"x\" }\n"
        "local function tx(r)\n"
        "  return r -- end\n"
        "end\n"
        "StreamFeatureView { name = \"v\", source = s, entities = { e }, transformation = tx,\n"
        "  features = { Attribute(\"k2\", String) } }\n";
    struct sl_error err;
    cJSON *repo = NULL;
    lua_State *L = vm();

    ck_assert_msg(eval1(L, "f.lua", src, &repo, &err) == 0, "%s", err.msg);
    const cJSON *pp = get(named(get(repo, "sources"), "s"), "post_processor");
    assert_str(pp, "source", "function(r) return r end");
    ck_assert_int_eq(get(pp, "line")->valueint, 3);
    const cJSON *tr = get(named(get(repo, "feature_views"), "v"), "transformation");
    assert_str(tr, "source", "function tx(r)\n  return r -- end\nend");
    ck_assert_int_eq(get(tr, "line")->valueint, 4);
    cJSON_Delete(repo);
    sl_vm_close(L);
}
END_TEST

/* ---- validation errors ---- */

static const char base_src[] =
    "local user = Entity { name = \"user\", join_keys = { Field(\"user_id\", String) } }\n"
    "local src = StreamSource { name = \"src\", schema = { Field(\"user_id\", String),\n"
    "  Field(\"ts\", Timestamp), Field(\"clicked\", Int64), Field(\"label\", String) } }\n"
    "local req = RequestSource { name = \"req\", schema = { Field(\"amount\", Float64) } }\n";
/* base_src is 4 lines: the case's first line is line 5. */

#define SFV "StreamFeatureView { name = \"v\", source = src, entities = { user }, "

struct bad_case {
    const char *src;
    int line;
    const char *words[3];
};

static const struct bad_case bad_cases[] = {
    /* arguments */
    {"Entity { name = \"e\", join_keys = { Field(\"user_id\", String) }, descripton = \"x\" }",
     5, {"unknown argument `descripton`", "did you mean `description`"}},
    {"Entity { name = \"e\" }", 5, {"Entity `e`", "missing required argument `join_keys`"}},
    {"Entity { name = \"not ok\", join_keys = { Field(\"a\", String) } }", 5,
     {"`name` must be an identifier"}},
    {"Entity { \"e\", join_keys = { Field(\"a\", String) } }", 5,
     {"unexpected positional argument"}},
    {"Entity \"e\"", 5, {"Entity expects one table of named arguments"}},
    {"Entity { name = \"e\", join_keys = Field(\"a\", String) }", 5,
     {"`join_keys` must be a list"}},
    {"Entity { name = \"e\", join_keys = { Field(\"a\", String) }, tags = { x = 1 } }", 5,
     {"`tags` must map strings to strings"}},
    {"Entity { name = \"e\", join_keys = { Field(\"a\", \"String\") } }", 5,
     {"Field `a`: the type must be a type"}},
    {"local x = Field(\"1a\", String)", 5, {"Field: the name must be an identifier"}},
    {"local t = Map(Int64, String)", 5, {"Map: keys must be String"}},
    {"local t = Struct { Field(\"a\", Int64),\n Field(\"a\", String) }", 6,
     {"duplicate field `a`"}},
    /* names */
    {"Entity { name = \"user\", join_keys = { Field(\"a\", String) } }", 5,
     {"duplicate entity name `user`", "first defined at t.lua:1"}},
    {"StreamSource { name = \"req\", schema = { Field(\"a\", String) } }", 5,
     {"duplicate source name `req`"}},
    {SFV "features = { Attribute(\"clicked\", Int64) } }\n"
         "RealtimeFeatureView { name = \"v\", sources = { req }, features = { Attribute(\"x\", "
         "Int64) }, transformation = function(r, i) return { x = 1 } end }",
     6, {"RealtimeFeatureView `v`", "duplicate feature view name `v`"}},
    {"FeatureService { name = \"s\", features = { \"nope\" } }\n"
     "FeatureService { name = \"s\", features = { \"nope\" } }",
     6, {"duplicate feature service name `s`"}},
    /* sources */
    {"StreamSource { name = \"s2\", schema = { Field(\"a\", String) },\n"
     "  batch_config = FileConfig { uri = \"x.csv\", file_format = \"xls\" } }",
     6, {"`file_format` must be \"csv\", \"jsonl\" or \"parquet\""}},
    {"StreamSource { name = \"s2\", schema = { Field(\"a\", String) },\n"
     "  batch_config = FileConfig { uri = \"x.csv\", file_format = \"csv\", timestamp_field = "
     "\"a\" } }",
     6, {"batch_config timestamp_field `a`", "not Timestamp"}},
    {"StreamSource { name = \"s2\", schema = { Field(\"a\", String) }, post_processor = "
     "string.upper }",
     5, {"`post_processor` must be a Lua function written in the repository"}},
    /* feature views */
    {"local e = Entity { name = \"acct\", join_keys = { Field(\"acct_id\", String) } }\n" SFV
     "entities = { e }, features = { Attribute(\"clicked\", Int64) } }",
     6, {"join key `acct_id` of entity `acct` is not in the schema of StreamSource `src`"}},
    {"local e = Entity { name = \"u2\", join_keys = { Field(\"user_id\", Int64) } }\n"
     "StreamFeatureView { name = \"v\", source = src, entities = { e },\n"
     "  features = { Attribute(\"clicked\", Int64) } }",
     6, {"join key `user_id` is Int64 in entity `u2` but String in StreamSource `src`"}},
    {"local e = Entity { name = \"u2\", join_keys = { Field(\"user_id\", Int64) } }\n" SFV
     "entities = { user, e }, features = { Attribute(\"clicked\", Int64) } }",
     6, {"join key `user_id` is String in entity `user` but Int64 in entity `u2`"}},
    {SFV "source = req, features = { Attribute(\"clicked\", Int64) } }", 5,
     {"`source` must be a StreamSource", "RequestSource `req`"}},
    {"StreamFeatureView { name = \"v\", source = src, entities = { user }, features = { "
     "Attribute(\"clicked\", Int64) }, timestamp_field = \"label\" }",
     5, {"timestamp_field `label` has type String", "not Timestamp"}},
    {SFV "timestamp_field = \"tss\", features = { Attribute(\"clicked\", Int64) } }", 5,
     {"timestamp_field `tss` is not in the schema", "did you mean `ts`"}},
    {"local s2 = StreamSource { name = \"s2\", schema = { Field(\"user_id\", String) } }\n"
     "StreamFeatureView { name = \"v\", source = s2, entities = { user }, features = { "
     "Attribute(\"user_id\", String) } }",
     6, {"`timestamp_field` is required", "no Timestamp field"}},
    {SFV "ttl = \"30 days\", features = { Attribute(\"clicked\", Int64) } }", 5,
     {"`ttl` must be a duration"}},
    {SFV "batch_schedule = 86400, features = { Attribute(\"clicked\", Int64) } }", 5,
     {"`batch_schedule` must be a duration", "number 86400"}},
    {SFV "feature_start_time = \"2022-02-30T00:00:00Z\", features = { Attribute(\"clicked\", "
         "Int64) } }",
     5, {"`feature_start_time` must be an RFC 3339 time"}},
    {SFV "online = \"yes\", features = { Attribute(\"clicked\", Int64) } }", 5,
     {"`online` must be true or false"}},
    {SFV "features = {} }", 5, {"`features` must not be empty"}},
    {SFV "features = { user } }", 5, {"`features`[1] must be an Attribute or an Aggregate"}},
    {SFV "features = {\n  Attribute(\"clickd\", Int64) } }", 6,
     {"column `clickd` is not in the schema", "did you mean `clicked`"}},
    {SFV "features = {\n  Attribute(\"clicked\", Int32) } }", 6,
     {"Attribute `clicked` is declared Int32 but `clicked` is Int64"}},
    {SFV "transformation = function(r) return r end, features = {\n"
         "  Attribute { column = \"new_col\" } } }",
     6, {"column `new_col` is not in the schema", "declare its type"}},
    {SFV "features = {\n  Attribute(\"user_id\", String) } }", 6,
     {"feature `user_id` has the name of a join key"}},
    {SFV "aggregation_interval = \"1h\", features = { Attribute(\"clicked\", Int64) } }", 5,
     {"`aggregation_interval` applies to Aggregate features only"}},
    {SFV "features = { Attribute(\"clicked\", Int64),\n"
         "  Aggregate { column = \"clicked\", fn = \"sum\", window = \"1h\" } } }",
     5, {"either Attribute or Aggregate features, not both"}},
    {SFV "features = { Attribute(\"clicked\", Int64),\n"
         "  Attribute { column = \"label\", name = \"clicked\" } } }",
     6, {"duplicate feature name `clicked`"}},
    /* aggregates */
    {SFV "features = {\n  Aggregate { column = \"clicked\", fn = \"median\", window = \"1h\" } } }",
     6, {"unknown aggregation function `median`"}},
    {SFV "features = {\n  Aggregate { column = \"label\", fn = \"sum\", window = \"1h\" } } }", 6,
     {"Aggregate `label`", "sum is not defined for string"}},
    {SFV "features = {\n  Aggregate { column = \"label\", fn = \"mean\", window = \"1h\" } } }", 6,
     {"mean is not defined for string"}},
    {SFV "features = {\n  Aggregate { column = \"clicked\", fn = \"last_distinct\", "
         "window = \"1h\","
         " n = 1001 } } }",
     6, {"n must be an integer between 1 and 1000"}},
    {SFV "features = {\n  Aggregate { column = \"clicked\", fn = \"first_n\", "
         "window = \"1h\" } } }",
     6, {"needs parameter n"}},
    {SFV "features = {\n  Aggregate { column = \"clicked\", fn = \"sum\", window = \"1h\", "
         "n = 3 } } }",
     6, {"sum takes no parameter `n`"}},
    {SFV "features = {\n  Aggregate { column = \"clicked\", fn = \"approx_percentile\", window = "
         "\"1h\" } } }",
     6, {"needs parameter percentile"}},
    {SFV "features = {\n  Aggregate { column = \"clicked\", fn = \"approx_percentile\", window = "
         "\"1h\", percentile = 1.5 } } }",
     6, {"percentile must be a number between 0 and 1"}},
    {SFV "features = {\n  Aggregate { column = \"label\", fn = \"approx_count_distinct\", window = "
         "\"1h\", precision = 20 } } }",
     6, {"precision must be between 4 and 16"}},
    {SFV "aggregation_interval = \"1h\", features = {\n  Aggregate { column = \"clicked\", fn = "
         "\"sum\", window = \"90m\" } } }",
     6, {"window 90m must be a multiple of aggregation_interval 1h"}},
    {SFV "features = {\n  Aggregate { column = \"clicked\", fn = \"sum\", window = \"1h\", "
         "offset = "
         "\"1h\" } } }",
     6, {"`offset` must be a duration <= 0"}},
    {SFV "features = {\n  Aggregate { column = \"clicked\", fn = \"sum\", window = \"soon\" } } }",
     6, {"`window` must be a duration"}},
    {SFV "features = {\n  Aggregate { column = \"clicked\", fn = \"sum\", window = \"lifetime\", "
         "offset = \"-1h\" } } }",
     6, {"a lifetime window takes no offset"}},
    {SFV "features = {\n  Aggregate { column = \"clickd\", fn = \"sum\", window = \"1h\" } } }", 6,
     {"column `clickd` is not in the schema"}},
    {SFV "features = {\n  Aggregate { colum = \"clicked\", fn = \"sum\", window = \"1h\" } } }", 6,
     {"unknown argument `colum`", "did you mean `column`"}},
    {SFV "features = { Aggregate { column = \"clicked\", fn = \"sum\", window = \"1h\" },\n"
         "  Aggregate { column = \"clicked\", fn = \"sum\", window = \"60m\" } } }",
     6, {"duplicate feature name `clicked_sum_1h_continuous`"}},
    /* realtime views */
    {"RealtimeFeatureView { name = \"rt\", sources = { user }, features = { Attribute(\"x\", "
     "Int64) }, transformation = function(r, i) return { x = 1 } end }",
     5, {"`sources`[1] must be a RequestSource or a StreamFeatureView", "Entity `user`"}},
    {"RealtimeFeatureView { name = \"rt\", sources = { req, req }, features = { Attribute(\"x\", "
     "Int64) }, transformation = function(r, i) return { x = 1 } end }",
     5, {"lists RequestSource `req` twice"}},
    {"RealtimeFeatureView { name = \"rt\", sources = { req }, features = {\n Attribute(\"x\") }, "
     "transformation = function(r, i) return { x = 1 } end }",
     6, {"declare its type"}},
    {"RealtimeFeatureView { name = \"rt\", sources = { req }, features = { "
     "Attribute(\"x\", Int64) } "
     "}",
     5, {"missing required argument `transformation`"}},
    {"local r1 = RealtimeFeatureView { name = \"r1\", sources = { req }, features = { "
     "Attribute(\"x\", Int64) }, transformation = function(r, i) return { x = 1 } end }\n"
     "RealtimeFeatureView { name = \"r2\", sources = { r1 }, features = { Attribute(\"y\", Int64) "
     "}, transformation = function(r, i) return { y = 1 } end }",
     6, {"cannot read another realtime view"}},
    /* feature services */
    {"FeatureService { name = \"s\", features = { \"nope\" } }", 5,
     {"FeatureService `s`", "unknown feature view `nope`"}},
    {"local v = " SFV "features = { Attribute(\"clicked\", Int64) } }\n"
     "FeatureService { name = \"s\", features = { v:select { \"clicks\" } } }",
     6, {"select: no feature `clicks`", "did you mean `clicked`"}},
    {"local v = " SFV "features = { Attribute(\"clicked\", Int64) } }\n"
     "FeatureService { name = \"s\", features = { v, \"v\" } }",
     6, {"feature view `v` is listed twice"}},
    {"FeatureService { name = \"s\", features = { user } }", 5,
     {"must be a feature view, view:select{...} or a view name", "Entity `user`"}},
    {"local e = Entity { name = \"u2\", join_keys = { Field(\"user_id\", Int64) } }\n"
     "local s2 = StreamSource { name = \"s2\", schema = { Field(\"user_id\", Int64), Field(\"t\", "
     "Timestamp), Field(\"x\", Int64) } }\n"
     "local v1 = " SFV "features = { Attribute(\"clicked\", Int64) } }\n"
     "local v2 = StreamFeatureView { name = \"v2\", source = s2, entities = { e }, features = { "
     "Attribute(\"x\", Int64) } }\n"
     "FeatureService { name = \"s\", features = { v1, v2 } }",
     9, {"join key `user_id` is String in entity `user` (view `v`)", "Int64 in entity `u2`"}},
    /* Lua errors keep their position */
    {"local x = nil\nx.y = 1", 6, {"attempt to index a nil value"}},
    {"local x = = 1", 5, {"unexpected symbol"}},
    /* undefined globals are errors naming the name, with the closest local or global */
    {"local user = 1\nlocal x = { usr }", 6, {"`usr` is not defined (did you mean `user`?)"}},
    {"merchant = 1\nlocal x = { marchant }", 6, {"`marchant` is not defined (did you mean `merchant`?)"}},
    {"local x = Entiti { name = \"e\" }", 5, {"`Entiti` is not defined (did you mean `Entity`?)"}},
    {"error(\"custom failure\")", 5, {"custom failure"}},
    {"local ok = pcall(Entity, { name = \"e\" })\nassert(not ok)\nerror({})", 7,
     {"error object is a table value"}},
};

START_TEST(test_validation_error)
{
    const struct bad_case *c = &bad_cases[_i];
    char *src = malloc(sizeof(base_src) + strlen(c->src) + 2);
    char prefix[32];
    struct sl_error err;
    cJSON *repo = NULL;
    lua_State *L = vm();

    sprintf(src, "%s%s\n", base_src, c->src);
    int rc = eval1(L, "t.lua", src, &repo, &err);
    ck_assert_msg(rc == SL_ESCRIPT, "case %d: accepted:\n%s", _i, c->src);
    ck_assert_ptr_null(repo);
    snprintf(prefix, sizeof prefix, "t.lua:%d: ", c->line);
    ck_assert_msg(strncmp(err.msg, prefix, strlen(prefix)) == 0, "case %d: want prefix %s, got %s",
                  _i, prefix, err.msg);
    for (int w = 0; w < 3 && c->words[w]; w++)
        ck_assert_msg(strstr(err.msg, c->words[w]) != NULL, "case %d: want \"%s\" in: %s", _i,
                      c->words[w], err.msg);
    free(src);
    sl_vm_close(L);
}
END_TEST

/* ---- the sandbox ---- */

struct escape_case {
    const char *src;
    const char *word; /* expected in the message */
};

static const struct escape_case escapes[] = {
    {"io.open(\"/etc/passwd\")", "`io` is not defined"},
    {"os.execute(\"id\")", "field 'execute'"},
    {"os.getenv(\"HOME\")", "field 'getenv'"},
    {"os.exit(1)", "field 'exit'"},
    {"require(\"os\")", "`require` is not defined"},
    {"package.loadlib(\"libc.so.6\", \"system\")", "`package` is not defined"},
    {"dofile(\"/etc/passwd\")", "`dofile` is not defined"},
    {"loadfile(\"/etc/passwd\")", "`loadfile` is not defined"},
    {"assert(load(\"\\27LuaT\\0\\25\\147\\r\\n\\26\\n\", \"x\", \"b\"))",
     "attempt to load a binary chunk"},
    {"local f = string.dump(print)", "field 'dump'"},
    {"local f = (\"\").dump(print)", "attempt to call a nil value"},
    {"debug.sethook()", "`debug` is not defined"},
    {"local d = _G.debug.getinfo(1)", "`debug` is not defined"},
    {"collectgarbage(\"stop\")", "invalid option 'stop'"},
    {"getmetatable(\"\").__index.upper = nil", "attempt to index a boolean value"},
    {"string.format = nil", "attempt to modify read-only table"},
    {"setmetatable(string, {})", "cannot change a protected metatable"},
    {"getmetatable(_ENV).__index.Entity = nil", "attempt to index a boolean value"},
    {"local mt = getmetatable(Entity { name = \"e\", join_keys = { Field(\"k\", String) } })\n"
     "mt.__index = nil",
     "attempt to index a string value"},
    {"setmetatable({}, { __gc = function() while true do end end })",
     "__gc metamethods are not allowed"},
    {"while true do end", "instruction limit exceeded"},
    {"while true do pcall(function() while true do end end) end", "instruction limit exceeded"},
    {"while true do pcall(coroutine.wrap(function() for i = 1, 1e12 do end end)) end",
     "instruction limit exceeded"},
    {"local function f() return f() end f()", "instruction limit exceeded"},
    {"local t = {} for i = 1, 1e9 do t[i] = { i } end", "memory limit exceeded"},
    {"local s = string.rep(\"x\", 1 << 30)", "memory limit exceeded"},
    {"local s = \"x\" while true do s = s .. s end", "memory limit exceeded"},
    {"local ok = pcall(string.rep, \"x\", 1 << 30)\nlocal t = {}\n"
     "for i = 1, 1e9 do t[i] = string.rep(\"y\", 1000) .. i end",
     "memory limit exceeded"},
};

START_TEST(test_sandbox_escape)
{
    const struct escape_case *c = &escapes[_i];
    struct sl_error err;
    cJSON *repo = NULL;
    lua_State *L = vm();

    int rc = eval1(L, "evil.lua", c->src, &repo, &err);
    ck_assert_msg(rc == SL_ESCRIPT, "case %d: not stopped:\n%s", _i, c->src);
    ck_assert_msg(strncmp(err.msg, "evil.lua", 8) == 0, "case %d: no position: %s", _i, err.msg);
    ck_assert_msg(strstr(err.msg, c->word) != NULL, "case %d: want \"%s\" in: %s", _i, c->word,
                  err.msg);

    /* The state stays usable and unharmed: the host's string functions still work. */
    rc = eval1(L, "good.lua",
               "assert(string.upper(\"a\") == \"A\" and (\"b\"):upper() == \"B\")\n"
               "Entity { name = \"e\", join_keys = { Field(\"k\", String) } }\n",
               &repo, &err);
    ck_assert_msg(rc == 0, "case %d: state broken: %s", _i, err.msg);
    cJSON_Delete(repo);
    sl_vm_close(L);
}
END_TEST

/* The instruction budget is per call: many calls of a function each using most of it pass. */
START_TEST(test_budget_per_call)
{
    struct sl_error err = {0};
    struct sl_vm_limits lim = {.instructions = 100000};
    lua_State *L = sl_vm_new(&lim, &err);
    static const char spin[] = "local n = ... for i = 1, n do end";

    ck_assert_ptr_nonnull(L);
    ck_assert_int_eq(sl_vm_load(L, "b.lua", spin, sizeof(spin) - 1, &err), 0);
    lua_setglobal(L, "spin");
    for (int i = 0; i < 20; i++) {
        lua_getglobal(L, "spin");
        lua_pushinteger(L, 20000);
        ck_assert_msg(sl_vm_pcall(L, 1, 0, &err) == 0, "call %d: %s", i, err.msg);
    }
    lua_getglobal(L, "spin");
    lua_pushinteger(L, 1000000);
    ck_assert_int_eq(sl_vm_pcall(L, 1, 0, &err), SL_ESCRIPT);
    ck_assert_str_eq(err.msg, "b.lua:1: instruction limit exceeded");
    ck_assert_int_eq(lua_gettop(L), 0);
    /* and a later call has its budget back */
    lua_getglobal(L, "spin");
    lua_pushinteger(L, 20000);
    ck_assert_msg(sl_vm_pcall(L, 1, 0, &err) == 0, "%s", err.msg);
    sl_vm_close(L);
}
END_TEST

START_TEST(test_vm_errors)
{
    struct sl_error err = {0};
    lua_State *L = vm();
    static const char src[] = "local function inner(x)\n"
                              "  return x.field\n"
                              "end\n"
                              "local function outer(x) local v = inner(x) return v end\n"
                              "return outer\n";

    ck_assert_int_eq(sl_vm_load(L, "lib/helpers.lua", src, sizeof(src) - 1, &err), 0);
    ck_assert_int_eq(sl_vm_pcall(L, 0, 1, &err), 0);
    lua_pushnil(L);
    ck_assert_int_eq(sl_vm_pcall(L, 1, 1, &err), SL_ESCRIPT);
    ck_assert_int_eq(lua_gettop(L), 0);
    ck_assert_msg(strncmp(err.msg, "lib/helpers.lua:2: attempt to index a nil value", 47) == 0,
                  "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "stack traceback:\n\tlib/helpers.lua:2: in ") != NULL, "%s",
                  err.msg);
    ck_assert_msg(strstr(err.msg, "lib/helpers.lua:4: in ") != NULL, "%s", err.msg);

    ck_assert_int_eq(sl_vm_load(L, "bad.lua", "x = = 1", 7, &err), SL_ESCRIPT);
    ck_assert_msg(strncmp(err.msg, "bad.lua:1: ", 11) == 0, "%s", err.msg);
    ck_assert_int_eq(lua_gettop(L), 0);

    /* A binary chunk is refused by sl_vm_load too. */
    ck_assert_int_eq(sl_vm_load(L, "bin.lua", "\x1bLua", 4, &err), SL_ESCRIPT);
    ck_assert_msg(strstr(err.msg, "binary chunk") != NULL, "%s", err.msg);

    /* Userdata slot and memory accounting. */
    int token;
    ck_assert_ptr_null(sl_vm_userdata(L));
    sl_vm_set_userdata(L, &token);
    ck_assert_ptr_eq(sl_vm_userdata(L), &token);
    ck_assert_uint_gt(sl_vm_memory(L), 0);
    sl_vm_close(L);
    sl_vm_close(NULL);

    /* A cap too small for the libraries fails cleanly. */
    struct sl_vm_limits tiny = {.mem_bytes = 4096};
    ck_assert_ptr_null(sl_vm_new(&tiny, &err));
    ck_assert_int_eq(err.code, SL_ENOMEM);
}
END_TEST

/* Memory errors inside a function name the function's file. */
START_TEST(test_vm_memory_position)
{
    struct sl_error err = {0};
    struct sl_vm_limits lim = {.mem_bytes = 8u << 20};
    lua_State *L = sl_vm_new(&lim, &err);
    static const char src[] = "return function(n)\n  return string.rep('x', n)\nend\n";

    ck_assert_ptr_nonnull(L);
    ck_assert_int_eq(sl_vm_load(L, "m.lua", src, sizeof(src) - 1, &err), 0);
    ck_assert_int_eq(sl_vm_pcall(L, 0, 1, &err), 0);
    lua_pushvalue(L, -1);
    lua_pushinteger(L, 1 << 30);
    ck_assert_int_eq(sl_vm_pcall(L, 1, 1, &err), SL_ESCRIPT);
    ck_assert_str_eq(err.msg, "m.lua:1: memory limit exceeded (8 MiB)");
    ck_assert_int_eq(lua_gettop(L), 1);
    lua_pushinteger(L, 1000);
    ck_assert_int_eq(sl_vm_pcall(L, 1, 1, &err), 0);
    ck_assert_uint_eq(lua_rawlen(L, -1), 1000);
    sl_vm_close(L);
}
END_TEST

/* ---- user functions ---- */

START_TEST(test_push_function)
{
    struct repo_files r;
    struct sl_error err = {0};
    cJSON *repo = NULL;
    lua_State *L = vm();

    repo_load(&r, "scripts/examples/ads");
    ck_assert_msg(sl_defs_eval(L, r.f, r.n, &repo, &err) == 0, "%s", err.msg);
    cJSON_Delete(repo);
    int top = lua_gettop(L);

    ck_assert_int_eq(sl_defs_push_function(L, "user_click_counts", "transformation"), 0);
    ck_assert_int_eq(lua_gettop(L), top + 1);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, 7);
    lua_setfield(L, -2, "clicked");
    ck_assert_msg(sl_vm_pcall(L, 1, 1, &err) == 0, "%s", err.msg);
    lua_getfield(L, -1, "clicked");
    ck_assert_int_eq(lua_tointeger(L, -1), 1);
    lua_pop(L, 2);

    /* A runtime error in a transformation names its line. */
    ck_assert_int_eq(sl_defs_push_function(L, "user_click_counts", "transformation"), 0);
    lua_createtable(L, 0, 0);
    ck_assert_int_eq(sl_vm_pcall(L, 1, 1, &err), SL_ESCRIPT);
    ck_assert_msg(strncmp(err.msg, "ads.lua:36: attempt to compare", 30) == 0, "%s", err.msg);

    ck_assert_int_eq(sl_defs_push_function(L, "click_events_fv", "transformation"), SL_ENOTFOUND);
    ck_assert_int_eq(sl_defs_push_function(L, "nope", "transformation"), SL_ENOTFOUND);
    ck_assert_int_eq(sl_defs_push_function(L, "user_click_counts", "post_processor"),
                     SL_ENOTFOUND);
    ck_assert_int_eq(lua_gettop(L), top);

    repo_free(&r);
    sl_vm_close(L);
}
END_TEST

/* A user function cannot define objects once the repository is evaluated. */
START_TEST(test_sealed)
{
    static const char src[] =
        "local e = Entity { name = \"e\", join_keys = { Field(\"k\", String) } }\n"
        "local s = StreamSource { name = \"s\", schema = { Field(\"k\", String), "
        "Field(\"t\", Timestamp) } }\n"
        "StreamFeatureView { name = \"v\", source = s, entities = { e },\n"
        "  transformation = function(r)\n"
        "    Entity { name = \"late\", join_keys = { Field(\"k\", String) } }\n"
        "    return r\n"
        "  end,\n"
        "  features = { Attribute(\"k2\", String) } }\n";
    struct sl_error err;
    cJSON *repo = NULL;
    lua_State *L = vm();

    ck_assert_msg(eval1(L, "s.lua", src, &repo, &err) == 0, "%s", err.msg);
    cJSON_Delete(repo);
    ck_assert_int_eq(sl_defs_push_function(L, "v", "transformation"), 0);
    lua_newtable(L);
    ck_assert_int_eq(sl_vm_pcall(L, 1, 1, &err), SL_ESCRIPT);
    ck_assert_msg(strstr(err.msg, "s.lua:5: Entity: definitions can only be made while") == err.msg,
                  "%s", err.msg);
    sl_vm_close(L);
}
END_TEST

START_TEST(test_push_function_fraud)
{
    struct repo_files r;
    struct sl_error err = {0};
    cJSON *repo = NULL;
    lua_State *L = vm();

    repo_load(&r, "scripts/examples/fraud");
    ck_assert_msg(sl_defs_eval(L, r.f, r.n, &repo, &err) == 0, "%s", err.msg);
    cJSON_Delete(repo);

    ck_assert_int_eq(sl_defs_push_function(L, "transactions", "post_processor"), 0);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "ACME_Grocery");
    lua_setfield(L, -2, "merchant");
    ck_assert_msg(sl_vm_pcall(L, 1, 1, &err) == 0, "%s", err.msg);
    lua_getfield(L, -1, "merchant");
    ck_assert_str_eq(lua_tostring(L, -1), "acme_grocery");
    lua_pop(L, 2);

    /* The realtime view: (request, inputs) -> features. */
    ck_assert_int_eq(sl_defs_push_function(L, "transaction_amount_is_high", "transformation"), 0);
    lua_createtable(L, 0, 1);
    lua_pushnumber(L, 500.0);
    lua_setfield(L, -2, "amount");
    lua_createtable(L, 0, 1);
    lua_createtable(L, 0, 1);
    lua_pushnumber(L, 100.0);
    lua_setfield(L, -2, "amount_mean_1d_1h");
    lua_setfield(L, -2, "user_transaction_aggregates");
    ck_assert_msg(sl_vm_pcall(L, 2, 1, &err) == 0, "%s", err.msg);
    lua_getfield(L, -1, "transaction_amount_is_high");
    ck_assert_int_eq(lua_tointeger(L, -1), 1);
    lua_pop(L, 2);
    repo_free(&r);
    sl_vm_close(L);
}
END_TEST

/* A second evaluation in the same state starts from a clean repository environment. */
START_TEST(test_reevaluation)
{
    struct sl_error err;
    cJSON *repo = NULL;
    lua_State *L = vm();

    ck_assert_int_eq(eval1(L, "one.lua",
                           "e = Entity { name = \"e\", join_keys = { Field(\"k\", String) } }",
                           &repo, &err), 0);
    cJSON_Delete(repo);
    ck_assert_int_eq(eval1(L, "two.lua", "assert(rawget(_G, \"e\") == nil)\n"
                           "Entity { name = \"e\", join_keys = { Field(\"k\", Int64) } }",
                           &repo, &err), 0);
    ck_assert_str_eq(get(get(cJSON_GetArrayItem(get(cJSON_GetArrayItem(get(repo, "entities"), 0),
                                                    "join_keys"), 0), "dataType"), "type")
                         ->valuestring,
                     "int64");
    cJSON_Delete(repo);
    ck_assert_int_eq(eval1(L, "three.lua", "", &repo, &err), 0);
    ck_assert_int_eq(cJSON_GetArraySize(get(repo, "entities")), 0);
    cJSON_Delete(repo);
    sl_vm_close(L);
}
END_TEST

static Suite *defs_suite(void)
{
    Suite *s = suite_create("defs");
    TCase *tc = tcase_create("repositories");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ads_example);
    tcase_add_test(tc, test_fraud_example);
    tcase_add_test(tc, test_file_order);
    tcase_add_test(tc, test_forward_references);
    tcase_add_test(tc, test_function_source);
    tcase_add_test(tc, test_push_function);
    tcase_add_test(tc, test_push_function_fraud);
    tcase_add_test(tc, test_sealed);
    tcase_add_test(tc, test_reevaluation);
    suite_add_tcase(s, tc);

    tc = tcase_create("validation");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_validation_error, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("sandbox");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_sandbox_escape, 0, (int)(sizeof(escapes) / sizeof(escapes[0])));
    tcase_add_test(tc, test_budget_per_call);
    tcase_add_test(tc, test_vm_errors);
    tcase_add_test(tc, test_vm_memory_position);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(defs_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
