/* The status page: one self-contained HTML page (core/status.html, embedded at build time)
 * served at GET / and GET /ui. It reads the existing APIs from the browser with the API key
 * the operator gives it (kept in the browser's localStorage): readiness and version
 * (/readyz), workspaces, jobs, and the live counters of /metrics. */
#ifndef SL_STATUS_PAGE_H
#define SL_STATUS_PAGE_H

struct sl_http_req;

/* Whether path is the status page's ("/", "/ui", "/ui/", and "/favicon.ico", answered 204). */
int sl_status_page_path(const char *path);
/* Replies with the page (200 text/html; 405 for methods other than GET/HEAD). Loop thread. */
void sl_status_page_handle(struct sl_http_req *r);

#endif
