/* POST /ingest: the Stream Ingest API (DESIGN §4). */
#ifndef SL_INGEST_H
#define SL_INGEST_H

struct sl_node;
struct sl_http_req;
struct sl_principal;

/* Handles one ingest request: validates it, checks the caller's role, builds the
 * mutations of every view on each source, commits them through the writer and replies once
 * they are durable (or at once for dry runs and errors). auth_rc is the result of
 * authentication (0 or SL_EAUTH with auth_msg). Loop thread. */
void sl_ingest_handle(struct sl_node *n, struct sl_http_req *r, int auth_rc,
                      const char *auth_msg, const struct sl_principal *p);

#endif
