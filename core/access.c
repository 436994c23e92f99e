/* Service accounts and role bindings over HTTP:
 *
 *   POST   /v1/service-accounts                 {"name","description","admin"}  admin
 *   GET    /v1/service-accounts                                                 admin
 *   DELETE /v1/service-accounts/ID                                              admin
 *   POST   /v1/service-accounts/ID/rotate-key                                   admin
 *   GET    /v1/service-accounts/ID/roles                              admin or the account
 *   GET    /v1/workspaces/W/roles                                       owner of W, admin
 *   POST   /v1/workspaces/W/roles               {"service_account","role"}  owner, admin
 *   DELETE /v1/workspaces/W/roles               {"service_account"[,"role"]} owner, admin
 *
 * Each change writes one audit line naming the acting account. */
#include "access.h"

#include <string.h>

#include <cJSON.h>

#include "auth.h"
#include "buf.h"
#include "error.h"
#include "http.h"
#include "registry.h"
#include "server.h"

static void reply_ok(struct sl_http_req *r)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    sl_http_reply(r, 200, "application/json", ok, sizeof(ok) - 1);
}

static void reply_result(struct sl_http_req *r, int status, struct sl_buf *b,
                         const struct sl_error *err)
{
    if (err->code) {
        sl_buf_free(b);
        sl_reply_status(r, err);
    } else {
        sl_reply_buf(r, status, b);
    }
}

static void account_create(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p)
{
    struct sl_error err = {0};
    cJSON *o = sl_parse_body(r, &err);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(o, "description");
    const cJSON *admin = cJSON_GetObjectItemCaseSensitive(o, "admin");
    struct sl_buf b = SL_BUF_INIT;
    char id[SL_AUTH_ID_LEN + 1];
    if (o && !cJSON_IsString(name))
        sl_error_set(&err, SL_EINVAL, "Required field `name` is missing");
    else if (o && desc && !cJSON_IsString(desc))
        sl_error_set(&err, SL_EINVAL, "`description` must be a string");
    else if (o && admin && !cJSON_IsBool(admin))
        sl_error_set(&err, SL_EINVAL, "`admin` must be true or false");
    if (!err.code &&
        sl_auth_create_account(n->auth, name->valuestring,
                               cJSON_IsString(desc) ? desc->valuestring : "",
                               cJSON_IsTrue(admin), id, &b, &err) == 0)
        sl_auth_audit(p, "created service account id=%s admin=%s", id,
                      cJSON_IsTrue(admin) ? "true" : "false");
    cJSON_Delete(o);
    reply_result(r, 201, &b, &err);
}

static void account_delete(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p,
                           const char *id)
{
    struct sl_error err = {0};
    if (sl_auth_delete_account(n->auth, id, &err) != 0) {
        sl_reply_status(r, &err);
        return;
    }
    sl_auth_audit(p, "deleted service account id=%s", id);
    reply_ok(r);
}

static void account_rotate(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p,
                           const char *id)
{
    struct sl_error err = {0};
    struct sl_buf b = SL_BUF_INIT;
    if (sl_auth_rotate_key(n->auth, id, &b, &err) == 0)
        sl_auth_audit(p, "rotated the key of service account id=%s", id);
    reply_result(r, 200, &b, &err);
}

/* The role and account of a POST/DELETE .../roles body. */
static void role_set(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p,
                     const char *ws, int grant)
{
    struct sl_error err = {0};
    cJSON *o = sl_parse_body(r, &err);
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(o, "service_account");
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(o, "role");
    enum sl_role rl = cJSON_IsString(role) ? sl_role_parse(role->valuestring) : SL_ROLE_NONE;
    struct sl_ws *w = err.code ? NULL : sl_registry_get(n->reg, ws);
    if (!err.code && !cJSON_IsString(acc))
        sl_error_set(&err, SL_EINVAL, "Required field `service_account` is missing");
    else if (!err.code && (grant || role) && rl == SL_ROLE_NONE)
        sl_error_set(&err, SL_EINVAL, "`role` must be one of owner, editor, consumer, operator, "
                                      "viewer (admin is not a workspace role: create the "
                                      "account as an admin instead)");
    else if (!err.code && !w)
        sl_error_set(&err, SL_ENOTFOUND, "workspace `%s` not found", ws);
    else if (!err.code && grant)
        sl_auth_assign(n->auth, acc->valuestring, ws, rl, &err);
    else if (!err.code)
        sl_auth_unassign(n->auth, acc->valuestring, ws, rl, &err);
    sl_ws_release(w);
    if (!err.code)
        sl_auth_audit(p, "%s role=%s workspace=%s service_account=%s",
                      grant ? "granted" : "revoked", rl ? sl_role_name(rl) : "any", ws,
                      acc->valuestring);
    cJSON_Delete(o);
    if (err.code)
        sl_reply_status(r, &err);
    else
        reply_ok(r);
}

static void workspace_roles(struct sl_node *n, struct sl_http_req *r, const char *ws)
{
    struct sl_ws *w = sl_registry_get(n->reg, ws);
    if (!w) {
        struct sl_error err = {0};
        sl_error_set(&err, SL_ENOTFOUND, "workspace `%s` not found", ws);
        sl_reply_status(r, &err);
        return;
    }
    sl_ws_release(w);
    struct sl_buf b = SL_BUF_INIT;
    sl_auth_workspace_roles(n->auth, ws, &b);
    sl_reply_buf(r, 200, &b);
}

static void service_accounts(struct sl_node *n, struct sl_http_req *r,
                             const struct sl_principal *p, const char *rest)
{
    enum sl_http_method m = sl_http_method(r);
    char id[SL_AUTH_ID_LEN + 1] = "";
    const char *sub = "";
    int bad_id = 0;
    if (*rest == '/') {
        size_t l = strcspn(rest + 1, "/");
        bad_id = l == 0 || l > SL_AUTH_ID_LEN;
        if (!bad_id) {
            memcpy(id, rest + 1, l);
            id[l] = 0;
        }
        sub = rest + 1 + l;
    }
    /* GET .../ID/roles is open to the account itself; all else needs an admin */
    int self_read = id[0] && strcmp(sub, "/roles") == 0 && m == SL_HTTP_GET &&
                    strcmp(id, p->id) == 0;
    if (!self_read && !sl_auth_allowed(n->auth, p, NULL, SL_ACT_ADMIN)) {
        sl_reply_forbidden(r, p, "manage service accounts");
        return;
    }
    if (bad_id) {
        sl_reply_error(r, 404, 5, "service account not found");
        return;
    }
    struct sl_error err = {0};
    struct sl_buf b = SL_BUF_INIT;
    if (!id[0] && *rest == 0) {
        if (m == SL_HTTP_POST) {
            account_create(n, r, p);
        } else if (m == SL_HTTP_GET) {
            sl_auth_list_accounts(n->auth, &b);
            sl_reply_buf(r, 200, &b);
        } else {
            sl_reply_error(r, 405, 12, "method not allowed");
        }
    } else if (id[0] && *sub == 0 && m == SL_HTTP_DELETE) {
        account_delete(n, r, p, id);
    } else if (id[0] && strcmp(sub, "/rotate-key") == 0 && m == SL_HTTP_POST) {
        account_rotate(n, r, p, id);
    } else if (id[0] && strcmp(sub, "/roles") == 0 && m == SL_HTTP_GET) {
        sl_auth_account_roles(n->auth, id, &b, &err);
        reply_result(r, 200, &b, &err);
    } else {
        sl_reply_error(r, 404, 5, "no such endpoint");
    }
}

void sl_access_handle(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p,
                      const char *ws, const char *rest)
{
    enum sl_http_method m = sl_http_method(r);
    if (!ws) {
        service_accounts(n, r, p, rest);
        return;
    }
    if (*rest != 0) {
        sl_reply_error(r, 404, 5, "no such endpoint");
        return;
    }
    if (!sl_auth_allowed(n->auth, p, ws, SL_ACT_MANAGE)) {
        sl_reply_forbidden(r, p, m == SL_HTTP_GET ? "read the roles of this workspace"
                                                  : "manage roles in this workspace");
        return;
    }
    if (m == SL_HTTP_GET)
        workspace_roles(n, r, ws);
    else if (m == SL_HTTP_POST || m == SL_HTTP_DELETE)
        role_set(n, r, p, ws, m == SL_HTTP_POST);
    else
        sl_reply_error(r, 405, 12, "method not allowed");
}
