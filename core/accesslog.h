/* The access log and the per-request metrics: the HTTP layer calls sl_accesslog_reply just
 * before each reply (sl_http_config.on_reply); handlers add what they learn about the
 * request (its workspace, the caller's service account, records written) to its note. */
#ifndef SL_ACCESSLOG_H
#define SL_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

struct sl_http_req;

/* Writes one info line per request (1) or none (0). Errors are logged either way: 4xx at
 * debug, 5xx at error. Any thread. */
void sl_accesslog_enable(int on);
/* The request's id: the client's X-Request-Id (printable, up to 39 bytes) or a new one.
 * Stable for the request; echoed in the X-Request-Id response header. Loop thread. */
const char *sl_accesslog_id(struct sl_http_req *r);
/* Notes the workspace / the caller's service account id (copied; NULL ignored). */
void sl_accesslog_workspace(struct sl_http_req *r, const char *ws);
void sl_accesslog_account(struct sl_http_req *r, const char *account);
/* Notes records written by an ingest request. */
void sl_accesslog_records(struct sl_http_req *r, uint64_t n);
/* The last SL_ACCESSLOG_RECENT requests answered with a 4xx or 5xx, newest first, as a JSON
 * array of {"time","id","status","method","path","workspace","account","error"} appended to
 * out. Any thread. */
#define SL_ACCESSLOG_RECENT 32
struct sl_buf;
void sl_accesslog_recent(struct sl_buf *out);
/* The on_reply hook: records the request's metrics, adds X-Request-Id, writes the access
 * line and the error line. Loop thread. */
void sl_accesslog_reply(struct sl_http_req *r, int status, const void *body, size_t len);

#endif
