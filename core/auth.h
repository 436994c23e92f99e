/* Access control (DESIGN §6): service accounts with API keys stored as HMAC-SHA-256 digests
 * under a server secret, roles per workspace, the one table of what each role may do, and
 * the audit log. */
#ifndef SL_AUTH_H
#define SL_AUTH_H

#include <stddef.h>

struct sl_error;
struct sl_store;
struct sl_buf;

/* Workspace roles, weakest first; each holds every right of the ones before it. */
enum sl_role {
    SL_ROLE_NONE = 0,
    SL_ROLE_VIEWER,
    SL_ROLE_CONSUMER,
    SL_ROLE_OPERATOR,
    SL_ROLE_EDITOR,
    SL_ROLE_OWNER,
};

/* What a request does; the role table in auth.c maps each to the roles allowed. */
enum sl_action {
    SL_ACT_INGEST,       /* editor and up */
    SL_ACT_INGEST_DRY,   /* viewer and up */
    SL_ACT_READ,         /* get-features, batch, metadata, for-events: consumer and up */
    SL_ACT_APPLY,        /* editor and up */
    SL_ACT_PLAN,         /* viewer and up (also: read definitions) */
    SL_ACT_JOBS,         /* operator and up */
    SL_ACT_MANAGE,       /* owner: role grants in the workspace, deleting it */
    SL_ACT_ADMIN,        /* admin only: creating workspaces, service accounts */
};

#define SL_AUTH_ID_LEN 32

/* Who is calling. */
struct sl_principal {
    char id[SL_AUTH_ID_LEN + 1];
    int admin;
};

struct sl_auth;

/* Opens the auth state in store (borrowed). The server secret is kept in
 * <data_dir>/secret (0600, created on first start). When no admin account exists, creates
 * one and writes its key to <data_dir>/admin.key (0600). disabled = --no-auth: every request
 * is admin. Returns NULL with err. Main thread. */
struct sl_auth *sl_auth_open(struct sl_store *store, const char *data_dir, int disabled,
                             struct sl_error *err);
/* Frees everything; accepts NULL and a half-opened state. Main thread. */
void sl_auth_close(struct sl_auth *a);

/* Authenticates an Authorization header value ("Sluice-key K" or "Tecton-key K"; NULL when
 * absent). Returns 0 and fills *p, or SL_EAUTH with err saying what is wrong. The key is
 * compared by digest in constant time. Any thread. */
int sl_auth_check(struct sl_auth *a, const char *header, struct sl_principal *p,
                  struct sl_error *err);

/* 1 when p may do act in workspace ws (ws may be NULL for SL_ACT_ADMIN). Any thread. */
int sl_auth_allowed(struct sl_auth *a, const struct sl_principal *p, const char *ws,
                    enum sl_action act);
/* 1 when p holds any role in ws (or is admin). Used to answer 403 rather than 404 to callers
 * who may not learn whether a workspace exists. Any thread. */
int sl_auth_any_role(struct sl_auth *a, const struct sl_principal *p, const char *ws);

/* Role names "owner", "editor", "consumer", "operator", "viewer" <-> enum; NONE if bad. */
enum sl_role sl_role_parse(const char *s);
const char *sl_role_name(enum sl_role r);

/* Every change below is persisted (synced) before the in-memory table that requests are
 * checked against changes, so it holds from the next request on. Changes are serialised.
 * Any thread; they block on a synced store write. */

/* Creates a service account; appends {"id","name","description","admin","apiKey"} to out
 * and copies its id to id (SL_AUTH_ID_LEN + 1 bytes; may be NULL). The key is shown only
 * here. Returns 0, SL_EINVAL, SL_ENOMEM or SL_ESTORE. */
int sl_auth_create_account(struct sl_auth *a, const char *name, const char *description,
                           int admin, char *id, struct sl_buf *out, struct sl_error *err);
/* Deletes an account and its role bindings; its key fails from the next request. Refuses
 * to delete the last admin. Returns 0, SL_ENOTFOUND, SL_EINVAL or SL_ESTORE. */
int sl_auth_delete_account(struct sl_auth *a, const char *id, struct sl_error *err);
/* Gives an account a new key and revokes the old one; appends {"id","apiKey"} to out.
 * When the account's key is the one in admin.key, the file is rewritten. Returns 0,
 * SL_ENOTFOUND, SL_ENOMEM or SL_ESTORE. */
int sl_auth_rotate_key(struct sl_auth *a, const char *id, struct sl_buf *out,
                       struct sl_error *err);
/* Grants account the role in ws (replacing the role it held there). Returns 0,
 * SL_ENOTFOUND (account), SL_EINVAL, SL_ENOMEM or SL_ESTORE. The caller checks that ws
 * exists. */
int sl_auth_assign(struct sl_auth *a, const char *account, const char *ws, enum sl_role role,
                   struct sl_error *err);
/* Removes account's role in ws; with role != NONE, only when it is that role. Returns 0,
 * SL_ENOTFOUND (no such binding) or SL_ESTORE. */
int sl_auth_unassign(struct sl_auth *a, const char *account, const char *ws, enum sl_role role,
                     struct sl_error *err);
/* Removes every role binding in ws (the workspace was deleted). Returns 0 or SL_ESTORE. */
int sl_auth_drop_workspace(struct sl_auth *a, const char *ws, struct sl_error *err);

/* Appends {"serviceAccounts":[{"id","name","description","admin","createdAt"}]} to out. */
void sl_auth_list_accounts(struct sl_auth *a, struct sl_buf *out);
/* Appends {"id","name","admin","roles":[{"workspace","role"}]} to out. Returns 0 or
 * SL_ENOTFOUND. */
int sl_auth_account_roles(struct sl_auth *a, const char *id, struct sl_buf *out,
                          struct sl_error *err);
/* Appends {"workspace","roles":[{"serviceAccount","name","role"}]} to out. */
void sl_auth_workspace_roles(struct sl_auth *a, const char *ws, struct sl_buf *out);

/* Writes one audit line, "audit: account=<id> <message>" (account=- when p is NULL), at
 * info level. Control characters in the message become '?', so a line is always one line.
 * Never pass a key. Any thread. */
void sl_auth_audit(const struct sl_principal *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The audit line of a rejected request: status (401 or 403), the path, the workspace asked
 * for (NULL when none or it is in the path) and why. */
void sl_auth_audit_denied(const struct sl_principal *p, int status, const char *path,
                          const char *ws, const char *reason);

#endif
