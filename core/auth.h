/* Access control (DESIGN §6): service accounts with API keys stored as HMAC-SHA-256 digests
 * under a server secret, roles per workspace, and the one table of what each role may do. */
#ifndef SL_AUTH_H
#define SL_AUTH_H

#include <stddef.h>

struct sl_error;
struct sl_store;
struct sl_buf;

enum sl_role {
    SL_ROLE_NONE = 0,
    SL_ROLE_VIEWER,
    SL_ROLE_CONSUMER,
    SL_ROLE_OPERATOR,
    SL_ROLE_EDITOR,
    SL_ROLE_OWNER,
};

/* What a request does; the role table maps each to the roles allowed. */
enum sl_action {
    SL_ACT_INGEST,       /* editor, owner */
    SL_ACT_INGEST_DRY,   /* viewer and up */
    SL_ACT_READ,         /* get-features: consumer, editor?, owner (see auth.c table) */
    SL_ACT_APPLY,        /* editor, owner */
    SL_ACT_PLAN,         /* viewer and up */
    SL_ACT_JOBS,         /* operator, owner */
    SL_ACT_MANAGE,       /* owner: role grants in the workspace */
    SL_ACT_ADMIN,        /* admin only: workspaces, service accounts */
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
 * is admin. Returns NULL with err. */
struct sl_auth *sl_auth_open(struct sl_store *store, const char *data_dir, int disabled,
                             struct sl_error *err);
void sl_auth_close(struct sl_auth *a);

/* Authenticates an Authorization header value ("Sluice-key K" or "Tecton-key K"; NULL when
 * absent). Returns 0 and fills *p, or SL_EAUTH with err saying what is wrong. Any thread. */
int sl_auth_check(struct sl_auth *a, const char *header, struct sl_principal *p,
                  struct sl_error *err);

/* 1 when p may do act in workspace ws (ws may be NULL for SL_ACT_ADMIN). Any thread. */
int sl_auth_allowed(struct sl_auth *a, const struct sl_principal *p, const char *ws,
                    enum sl_action act);
/* 1 when p holds any role in ws (or is admin). Used to answer 403 rather than 404 to callers
 * who may not learn whether a workspace exists. */
int sl_auth_any_role(struct sl_auth *a, const struct sl_principal *p, const char *ws);

/* Creates a service account; appends {"id","name","description","apiKey"} to out. The key
 * is shown only here. Returns 0, SL_EINVAL or SL_ESTORE. */
int sl_auth_create_account(struct sl_auth *a, const char *name, const char *description,
                           int admin, struct sl_buf *out, struct sl_error *err);
/* Role names "owner", "editor", "consumer", "operator", "viewer" ↔ enum; NULL/NONE if bad. */
enum sl_role sl_role_parse(const char *s);
const char *sl_role_name(enum sl_role r);
/* Grants (role != NONE) or removes a role. Returns 0, SL_ENOTFOUND (account) or SL_ESTORE. */
int sl_auth_set_role(struct sl_auth *a, const char *account, const char *ws, enum sl_role role,
                     struct sl_error *err);

#endif
