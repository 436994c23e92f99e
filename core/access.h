/* The access-control admin API: service accounts and workspace role bindings over HTTP
 * (DESIGN §6), on top of auth.h. */
#ifndef SL_ACCESS_H
#define SL_ACCESS_H

struct sl_node;
struct sl_http_req;
struct sl_principal;

/* Handles /v1/service-accounts<rest> (ws == NULL) and /v1/workspaces/<ws>/roles<rest>
 * (rest is "" or "/..."), checking the caller's rights and answering 403 before anything
 * that would tell whether the workspace or account exists. Loop thread. */
void sl_access_handle(struct sl_node *n, struct sl_http_req *r, const struct sl_principal *p,
                      const char *ws, const char *rest);

#endif
