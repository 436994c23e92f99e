/* Service accounts and role bindings over HTTP. */
#include "access.h"

#include <string.h>

#include <cJSON.h>

#include "auth.h"
#include "buf.h"
#include "error.h"
#include "http.h"
#include "log.h"
#include "registry.h"
#include "server.h"

static void account_create(struct sl_node *n, struct sl_http_req *r)
{
    struct sl_error err = {0};
    cJSON *o = sl_parse_body(r, &err);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(o, "description");
    struct sl_buf b = SL_BUF_INIT;
    if (o && !cJSON_IsString(name))
        sl_error_set(&err, SL_EINVAL, "Required field `name` is missing");
    if (!err.code)
        sl_auth_create_account(n->auth, name->valuestring,
                               cJSON_IsString(desc) ? desc->valuestring : "", 0, &b, &err);
    cJSON_Delete(o);
    if (err.code) {
        sl_buf_free(&b);
        sl_reply_status(r, &err);
        return;
    }
    sl_info("admin: created a service account");
    sl_reply_buf(r, 201, &b);
}

static void role_set(struct sl_node *n, struct sl_http_req *r, const char *ws, int grant)
{
    struct sl_error err = {0};
    cJSON *o = sl_parse_body(r, &err);
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(o, "service_account");
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(o, "role");
    enum sl_role rl = cJSON_IsString(role) ? sl_role_parse(role->valuestring) : SL_ROLE_NONE;
    struct sl_ws *w = sl_registry_get(n->reg, ws);
    if (!err.code && !cJSON_IsString(acc))
        sl_error_set(&err, SL_EINVAL, "Required field `service_account` is missing");
    else if (!err.code && grant && rl == SL_ROLE_NONE)
        sl_error_set(&err, SL_EINVAL, "`role` must be one of owner, editor, consumer, operator, viewer");
    else if (!err.code && !w)
        sl_error_set(&err, SL_ENOTFOUND, "workspace `%s` not found", ws);
    if (!err.code)
        sl_auth_set_role(n->auth, acc->valuestring, ws, grant ? rl : SL_ROLE_NONE, &err);
    sl_ws_release(w);
    cJSON_Delete(o);
    if (err.code) {
        sl_reply_status(r, &err);
        return;
    }
    sl_info("admin: %s role in workspace `%s`", grant ? "granted a" : "removed a", ws);
    struct sl_buf b = SL_BUF_INIT;
    sl_buf_puts(&b, "{\"status\":\"ok\"}");
    sl_reply_buf(r, 200, &b);
}

void sl_access_handle(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p,
                      const char *ws, const char *rest)
{
    enum sl_http_method m = sl_http_method(r);
    if (!ws) {
        if (*rest == 0 && m == SL_HTTP_POST) {
            if (!sl_auth_allowed(n->auth, p, NULL, SL_ACT_ADMIN))
                sl_reply_forbidden(r, "manage service accounts");
            else
                account_create(n, r);
            return;
        }
    } else if (*rest == 0 && (m == SL_HTTP_POST || m == SL_HTTP_DELETE)) {
        if (!sl_auth_allowed(n->auth, p, ws, SL_ACT_MANAGE))
            sl_reply_forbidden(r, "manage roles in this workspace");
        else
            role_set(n, r, ws, m == SL_HTTP_POST);
        return;
    }
    sl_reply_error(r, 404, 5, "no such endpoint");
}
