#include "status_page.h"

#include <stddef.h>
#include <string.h>

#include "http.h"

extern const char sl_status_html[];
extern const size_t sl_status_html_len;

int sl_status_page_path(const char *path)
{
    return strcmp(path, "/") == 0 || strcmp(path, "/ui") == 0 || strcmp(path, "/ui/") == 0 ||
           strcmp(path, "/favicon.ico") == 0;
}

void sl_status_page_handle(struct sl_http_req *r)
{
    enum sl_http_method m = sl_http_method(r);
    if (m != SL_HTTP_GET && m != SL_HTTP_HEAD) {
        static const char body[] = "{\"error\":\"method not allowed\",\"code\":12,\"message\":\"method not allowed\"}";
        sl_http_reply(r, 405, "application/json", body, sizeof(body) - 1);
        return;
    }
    if (strcmp(sl_http_path(r), "/favicon.ico") == 0) { /* browsers ask; there is none */
        sl_http_reply(r, 204, "image/x-icon", NULL, 0);
        return;
    }
    /* the page loads nothing from elsewhere and frames nowhere */
    sl_http_set_header(r, "Content-Security-Policy",
                       "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                       "frame-ancestors 'none'");
    sl_http_set_header(r, "Cache-Control", "no-cache");
    sl_http_reply(r, 200, "text/html; charset=utf-8", sl_status_html, sl_status_html_len);
}
