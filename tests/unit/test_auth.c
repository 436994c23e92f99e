/* Service accounts, keys and roles: the role table, key checks, rotation, deletion,
 * bindings, and that all of it survives a reopen. */
#include "check_fast.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "auth.h"
#include "buf.h"
#include "error.h"
#include "store.h"

static char dir[256];
static struct sl_store st;
static struct sl_auth *a;

static void open_auth(void)
{
    struct sl_error err = {0};
    a = sl_auth_open(&st, dir, 0, &err);
    ck_assert_msg(a != NULL, "%s", err.msg);
}

static void setup(void)
{
    struct sl_error err = {0};
    char path[300];
    snprintf(dir, sizeof(dir), "%s/sl-auth-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/online", dir);
    ck_assert_int_eq(sl_store_leveldb_open(path, 8, &st, &err), 0);
    open_auth();
}

static void teardown(void)
{
    char cmd[300];
    sl_auth_close(a);
    sl_store_close(&st);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Creates an account; copies its key ("Sluice-key ..." header) and id. */
static void create(const char *name, int admin, char *header, char *id)
{
    struct sl_buf out = SL_BUF_INIT;
    struct sl_error err = {0};
    ck_assert_int_eq(sl_auth_create_account(a, name, "d", admin, id, &out, &err), 0);
    cJSON *o = cJSON_ParseWithLength(out.p, out.len);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "apiKey");
    ck_assert(cJSON_IsString(k));
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "id")->valuestring, id);
    sprintf(header, "Sluice-key %s", k->valuestring);
    cJSON_Delete(o);
    sl_buf_free(&out);
}

static int check(const char *header, struct sl_principal *p)
{
    struct sl_error err = {0};
    return sl_auth_check(a, header, p, &err);
}

static char *read_text(const char *name)
{
    char path[300];
    static char buf[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    buf[strcspn(buf, "\n")] = 0;
    return buf;
}

START_TEST(role_table_is_cumulative)
{
    /* one row per action: the weakest role allowed (NONE: admins only) */
    static const struct {
        enum sl_action act;
        enum sl_role min;
    } rows[] = {
        {SL_ACT_INGEST, SL_ROLE_EDITOR},   {SL_ACT_INGEST_DRY, SL_ROLE_VIEWER},
        {SL_ACT_READ, SL_ROLE_CONSUMER},   {SL_ACT_APPLY, SL_ROLE_EDITOR},
        {SL_ACT_PLAN, SL_ROLE_VIEWER},     {SL_ACT_JOBS, SL_ROLE_OPERATOR},
        {SL_ACT_MANAGE, SL_ROLE_OWNER},    {SL_ACT_ADMIN, SL_ROLE_NONE},
    };
    char h[128], id[SL_AUTH_ID_LEN + 1];
    struct sl_principal p;
    struct sl_error err = {0};
    create("x", 0, h, id);
    ck_assert_int_eq(check(h, &p), 0);
    for (enum sl_role r = SL_ROLE_NONE; r <= SL_ROLE_OWNER; r++) {
        if (r != SL_ROLE_NONE)
            ck_assert_int_eq(sl_auth_assign(a, id, "w", r, &err), 0);
        ck_assert_int_eq(sl_auth_any_role(a, &p, "w"), r != SL_ROLE_NONE);
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
            int want = rows[i].min != SL_ROLE_NONE && r >= rows[i].min;
            ck_assert_msg(sl_auth_allowed(a, &p, "w", rows[i].act) == want, "action %d role %s",
                          rows[i].act, sl_role_name(r));
            ck_assert_int_eq(sl_auth_allowed(a, &p, "other", rows[i].act), 0);
        }
    }
    struct sl_principal admin = {.admin = 1};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        ck_assert_int_eq(sl_auth_allowed(a, &admin, "any", rows[i].act), 1);
    ck_assert_int_eq(sl_role_parse("owner"), SL_ROLE_OWNER);
    ck_assert_int_eq(sl_role_parse("admin"), SL_ROLE_NONE);
    ck_assert_int_eq(sl_role_parse(NULL), SL_ROLE_NONE);
}
END_TEST

START_TEST(keys_and_headers)
{
    char h[128], id[SL_AUTH_ID_LEN + 1], t[160];
    struct sl_principal p;
    create("x", 0, h, id);
    ck_assert_int_eq(check(h, &p), 0);
    ck_assert_str_eq(p.id, id);
    ck_assert_int_eq(p.admin, 0);
    snprintf(t, sizeof(t), "Tecton-key %s", h + 11);
    ck_assert_int_eq(check(t, &p), 0);
    snprintf(t, sizeof(t), "%s \r", h);
    ck_assert_int_eq(check(t, &p), 0);
    ck_assert_int_eq(check(NULL, &p), SL_EAUTH);
    snprintf(t, sizeof(t), "Bearer %s", h + 11);
    ck_assert_int_eq(check(t, &p), SL_EAUTH);
    snprintf(t, sizeof(t), "%s", h);
    t[strlen(t) - 1] ^= 1;
    ck_assert_int_eq(check(t, &p), SL_EAUTH);
    ck_assert_int_eq(check("Sluice-key ", &p), SL_EAUTH);
    /* the first start's admin key works and is in a private file */
    snprintf(t, sizeof(t), "Sluice-key %s", read_text("admin.key"));
    ck_assert_int_eq(check(t, &p), 0);
    ck_assert_int_eq(p.admin, 1);
    struct stat sb;
    char path[300];
    snprintf(path, sizeof(path), "%s/admin.key", dir);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/secret", dir);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
}
END_TEST

START_TEST(rotate_and_delete)
{
    char h[128], id[SL_AUTH_ID_LEN + 1], nh[160];
    struct sl_principal p;
    struct sl_error err = {0};
    struct sl_buf out = SL_BUF_INIT;
    create("x", 0, h, id);
    ck_assert_int_eq(sl_auth_assign(a, id, "w", SL_ROLE_EDITOR, &err), 0);
    ck_assert_int_eq(sl_auth_rotate_key(a, id, &out, &err), 0);
    cJSON *o = cJSON_ParseWithLength(out.p, out.len);
    snprintf(nh, sizeof(nh), "Sluice-key %s",
             cJSON_GetObjectItemCaseSensitive(o, "apiKey")->valuestring);
    cJSON_Delete(o);
    sl_buf_free(&out);
    ck_assert_int_eq(check(h, &p), SL_EAUTH);
    ck_assert_int_eq(check(nh, &p), 0);
    ck_assert_int_eq(sl_auth_allowed(a, &p, "w", SL_ACT_INGEST), 1);
    ck_assert_int_eq(sl_auth_delete_account(a, id, &err), 0);
    ck_assert_int_eq(check(nh, &p), SL_EAUTH);
    ck_assert_int_eq(sl_auth_delete_account(a, id, &err), SL_ENOTFOUND);
    ck_assert_int_eq(sl_auth_rotate_key(a, id, &out, &err), SL_ENOTFOUND);
    ck_assert_int_eq(sl_auth_assign(a, id, "w", SL_ROLE_VIEWER, &err), SL_ENOTFOUND);
    sl_auth_workspace_roles(a, "w", &out);
    ck_assert_ptr_null(strstr(sl_buf_cstr(&out), id));
    sl_buf_free(&out);
    ck_assert_int_eq(sl_auth_delete_account(a, "../../etc", &err), SL_ENOTFOUND);
}
END_TEST

START_TEST(last_admin_stays)
{
    char h[128], id[SL_AUTH_ID_LEN + 1], root[SL_AUTH_ID_LEN + 1], t[160];
    struct sl_principal p;
    struct sl_error err = {0};
    snprintf(t, sizeof(t), "Sluice-key %s", read_text("admin.key"));
    ck_assert_int_eq(check(t, &p), 0);
    memcpy(root, p.id, sizeof(root));
    ck_assert_int_eq(sl_auth_delete_account(a, root, &err), SL_EINVAL);
    create("boss", 1, h, id);
    ck_assert_int_eq(sl_auth_delete_account(a, id, &err), 0);
    create("boss2", 1, h, id);
    ck_assert_int_eq(sl_auth_delete_account(a, root, &err), 0);
    ck_assert_ptr_null(read_text("admin.key"));
    ck_assert_int_eq(sl_auth_delete_account(a, id, &err), SL_EINVAL);
}
END_TEST

START_TEST(bindings)
{
    char h[128], id[SL_AUTH_ID_LEN + 1];
    struct sl_principal p;
    struct sl_error err = {0};
    create("x", 0, h, id);
    ck_assert_int_eq(check(h, &p), 0);
    ck_assert_int_eq(sl_auth_assign(a, id, "w", SL_ROLE_VIEWER, &err), 0);
    ck_assert_int_eq(sl_auth_assign(a, id, "w", SL_ROLE_OWNER, &err), 0);
    ck_assert_int_eq(sl_auth_assign(a, id, "v", SL_ROLE_CONSUMER, &err), 0);
    ck_assert_int_eq(sl_auth_assign(a, id, "w", SL_ROLE_NONE, &err), SL_EINVAL);
    ck_assert_int_eq(sl_auth_assign(a, id, "a/b", SL_ROLE_VIEWER, &err), SL_EINVAL);
    ck_assert_int_eq(sl_auth_allowed(a, &p, "w", SL_ACT_MANAGE), 1);
    ck_assert_int_eq(sl_auth_unassign(a, id, "w", SL_ROLE_VIEWER, &err), SL_ENOTFOUND);
    ck_assert_int_eq(sl_auth_unassign(a, id, "w", SL_ROLE_OWNER, &err), 0);
    ck_assert_int_eq(sl_auth_unassign(a, id, "w", SL_ROLE_NONE, &err), SL_ENOTFOUND);
    ck_assert_int_eq(sl_auth_any_role(a, &p, "w"), 0);
    ck_assert_int_eq(sl_auth_any_role(a, &p, "v"), 1);
    ck_assert_int_eq(sl_auth_drop_workspace(a, "v", &err), 0);
    ck_assert_int_eq(sl_auth_any_role(a, &p, "v"), 0);
    ck_assert_int_eq(sl_auth_drop_workspace(a, "nothing-here", &err), 0);
}
END_TEST

START_TEST(reopen_keeps_everything)
{
    char h1[128], id1[SL_AUTH_ID_LEN + 1], h2[128], id2[SL_AUTH_ID_LEN + 1], h3[160];
    char admin_key[256];
    struct sl_principal p;
    struct sl_error err = {0};
    struct sl_buf out = SL_BUF_INIT;
    snprintf(admin_key, sizeof(admin_key), "%s", read_text("admin.key"));
    create("one", 0, h1, id1);
    create("two", 0, h2, id2);
    ck_assert_int_eq(sl_auth_assign(a, id1, "w", SL_ROLE_CONSUMER, &err), 0);
    ck_assert_int_eq(sl_auth_assign(a, id2, "w", SL_ROLE_EDITOR, &err), 0);
    ck_assert_int_eq(sl_auth_rotate_key(a, id2, &out, &err), 0);
    cJSON *o = cJSON_ParseWithLength(out.p, out.len);
    snprintf(h3, sizeof(h3), "Sluice-key %s",
             cJSON_GetObjectItemCaseSensitive(o, "apiKey")->valuestring);
    cJSON_Delete(o);
    sl_buf_reset(&out);
    ck_assert_int_eq(sl_auth_delete_account(a, id1, &err), 0);
    sl_auth_close(a);
    open_auth();
    ck_assert_str_eq(read_text("admin.key"), admin_key); /* no second admin minted */
    ck_assert_int_eq(check(h1, &p), SL_EAUTH);
    ck_assert_int_eq(check(h2, &p), SL_EAUTH);
    ck_assert_int_eq(check(h3, &p), 0);
    ck_assert_int_eq(sl_auth_allowed(a, &p, "w", SL_ACT_INGEST), 1);
    sl_auth_list_accounts(a, &out);
    o = cJSON_ParseWithLength(out.p, out.len);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "serviceAccounts")), 2);
    cJSON_Delete(o);
    sl_buf_reset(&out);
    ck_assert_int_eq(sl_auth_account_roles(a, id1, &out, &err), SL_ENOTFOUND);
    ck_assert_int_eq(sl_auth_account_roles(a, id2, &out, &err), 0);
    o = cJSON_ParseWithLength(out.p, out.len);
    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(o, "roles");
    ck_assert_int_eq(cJSON_GetArraySize(roles), 1);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(roles, 0), "role")->valuestring,
                     "editor");
    cJSON_Delete(o);
    sl_buf_free(&out);
}
END_TEST

START_TEST(bad_input)
{
    struct sl_error err = {0};
    struct sl_buf out = SL_BUF_INIT;
    char longname[200];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    ck_assert_int_eq(sl_auth_create_account(a, "", "", 0, NULL, &out, &err), SL_EINVAL);
    ck_assert_int_eq(sl_auth_create_account(a, longname, "", 0, NULL, &out, &err), SL_EINVAL);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_int_eq(sl_auth_account_roles(a, "zz", &out, &err), SL_ENOTFOUND);
    sl_buf_free(&out);
}
END_TEST

START_TEST(no_auth_makes_everyone_admin)
{
    struct sl_error err = {0};
    struct sl_principal p;
    struct sl_auth *open = sl_auth_open(&st, dir, 1, &err);
    ck_assert_ptr_nonnull(open);
    ck_assert_int_eq(sl_auth_check(open, NULL, &p, &err), 0);
    ck_assert_int_eq(p.admin, 1);
    ck_assert_int_eq(sl_auth_allowed(open, &p, "w", SL_ACT_ADMIN), 1);
    sl_auth_close(open);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, role_table_is_cumulative);
    tcase_add_test(tc, keys_and_headers);
    tcase_add_test(tc, rotate_and_delete);
    tcase_add_test(tc, last_admin_stays);
    tcase_add_test(tc, bindings);
    tcase_add_test(tc, reopen_keeps_everything);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, no_auth_makes_everyone_admin);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
