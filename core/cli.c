/* `sluice plan|apply|workspace|service-account|access-control`: a blocking HTTP/1.1 client
 * for the admin API. */
#include "cli.h"

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "config.h"
#include "defs.h"
#include "error.h"
#include "ingest.h"
#include "json.h"
#include "pit.h"
#include "segment.h"
#include "timeutil.h"
#include "transform.h"
#include "lua_vm.h"
#include "registry.h"

struct client {
    const char *url;
    char *key;
};

struct opt {
    const char *name;  /* "--workspace" */
    int has_value;
    const char *value; /* set when seen ("" for a flag) */
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sluice: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(run `sluice --help`)\n");
    va_end(ap);
    return 2;
}

/* Parses argv against opts; positional arguments are collected in pos. */
static int parse_opts(int argc, char **argv, struct opt *opts, const char **pos, int maxpos,
                      int *npos)
{
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (*npos >= maxpos)
                return usage_error("unexpected argument `%s`", a);
            pos[(*npos)++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        struct opt *o = NULL;
        for (struct opt *p = opts; p->name; p++)
            if (strlen(p->name) == nl && strncmp(p->name, a, nl) == 0)
                o = p;
        if (!o)
            return usage_error("unknown option `%s`", a);
        if (!o->has_value) {
            o->value = "";
        } else if (eq) {
            o->value = eq + 1;
        } else if (i + 1 < argc) {
            o->value = argv[++i];
        } else {
            return usage_error("option `%s` needs a value", a);
        }
    }
    return 0;
}

static const char *optv(struct opt *opts, const char *name)
{
    for (struct opt *p = opts; p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p->value;
    return NULL;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct sl_buf b = SL_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        sl_buf_append(&b, chunk, n);
    fclose(f);
    if (b.oom) {
        sl_buf_free(&b);
        return NULL;
    }
    sl_buf_cstr(&b);
    return sl_buf_detach(&b, len);
}

static int client_init(struct client *c, struct opt *opts)
{
    c->url = optv(opts, "--url");
    if (!c->url)
        c->url = getenv("SLUICE_URL");
    if (!c->url)
        c->url = "http://127.0.0.1:8080";
    /* --api-key-file, $SLUICE_API_KEY, $SLUICE_API_KEY_FILE, then $TECTON_API_KEY (what
     * Tecton's guides tell users to export) */
    const char *kf = optv(opts, "--api-key-file");
    const char *env = getenv("SLUICE_API_KEY");
    if (!kf && !env)
        kf = getenv("SLUICE_API_KEY_FILE");
    if (!kf && !env)
        env = getenv("TECTON_API_KEY");
    if (kf) {
        size_t len;
        c->key = read_file(kf, &len);
        if (!c->key) {
            fprintf(stderr, "sluice: cannot read the API key file %s: %s\n", kf, strerror(errno));
            return 1;
        }
        c->key[strcspn(c->key, "\r\n")] = 0;
    } else if (env) {
        c->key = strdup(env);
    }
    return 0;
}

/* Sends one request; fills *status and body. Returns 0 or 1 (connection failure, printed). */
static int http_call_raw(struct client *c, const char *method, const char *path,
                         const char *ctype, const char *body, size_t blen, int *status,
                         struct sl_buf *resp);

static int http_call(struct client *c, const char *method, const char *path, const char *body,
                     int *status, struct sl_buf *resp)
{
    return http_call_raw(c, method, path, "application/json", body, body ? strlen(body) : 0,
                         status, resp);
}

/* One connection to the server, plain or TLS. */
struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
};

static void conn_close(struct conn *k)
{
    if (k->ssl) {
        SSL_shutdown(k->ssl);
        SSL_free(k->ssl);
    }
    SSL_CTX_free(k->ctx);
    if (k->fd >= 0)
        close(k->fd);
}

static void tls_error(const char *url, const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof(buf));
    fprintf(stderr, "sluice: TLS %s with %s failed: %s\n", what, url, e ? buf : "connection closed");
}

/* Starts TLS on k->fd: the server's certificate must chain to a trusted CA (the system's,
 * $SSL_CERT_FILE, or $SLUICE_CA_FILE) and name host. Returns 0 or 1 (printed). */
static int tls_connect(struct conn *k, const char *url, const char *host)
{
    const char *ca = getenv("SLUICE_CA_FILE");
    k->ctx = SSL_CTX_new(TLS_client_method());
    if (!k->ctx) {
        tls_error(url, "setup");
        return 1;
    }
    SSL_CTX_set_min_proto_version(k->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(k->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_options(k->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (SSL_CTX_set_default_verify_paths(k->ctx) != 1 ||
        (ca && *ca && SSL_CTX_load_verify_locations(k->ctx, ca, NULL) != 1)) {
        tls_error(url, ca ? "loading $SLUICE_CA_FILE" : "loading the trusted CAs");
        return 1;
    }
    k->ssl = SSL_new(k->ctx);
    if (!k->ssl || SSL_set_fd(k->ssl, k->fd) != 1) {
        tls_error(url, "setup");
        return 1;
    }
    X509_VERIFY_PARAM *vp = SSL_get0_param(k->ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
        /* a name, not an address literal */
        SSL_set_tlsext_host_name(k->ssl, host);
        SSL_set1_host(k->ssl, host);
    }
    if (SSL_connect(k->ssl) != 1) {
        long v = SSL_get_verify_result(k->ssl);
        if (v != X509_V_OK)
            fprintf(stderr, "sluice: the certificate of %s is not trusted: %s (set $SLUICE_CA_FILE "
                            "to the CA that signed it)\n",
                    url, X509_verify_cert_error_string(v));
        else
            tls_error(url, "handshake");
        return 1;
    }
    return 0;
}

static int conn_write_all(struct conn *k, const char *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w;
        if (k->ssl) {
            int r = SSL_write(k->ssl, p + off, (int)(n - off > 1 << 30 ? 1 << 30 : n - off));
            w = r > 0 ? r : -1;
        } else {
            w = write(k->fd, p + off, n - off);
            if (w < 0 && errno == EINTR)
                continue;
        }
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

/* Reads until the server closes. Returns 0 or -1. */
static int conn_read_all(struct conn *k, struct sl_buf *raw)
{
    char chunk[65536];
    for (;;) {
        ssize_t r;
        if (k->ssl) {
            int n = SSL_read(k->ssl, chunk, sizeof(chunk));
            if (n <= 0) {
                int e = SSL_get_error(k->ssl, n);
                return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
            }
            r = n;
        } else {
            r = read(k->fd, chunk, sizeof(chunk));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                return r == 0 ? 0 : -1;
        }
        sl_buf_append(raw, chunk, (size_t)r);
    }
}

/* The value of response header `name` in the head raw[0..n) into val (unchanged when absent). */
static void find_header(const char *raw, size_t n, const char *name, struct sl_buf *val)
{
    size_t nl = strlen(name);
    for (const char *l = raw; l && l < raw + n;) {
        const char *e = memchr(l, '\n', (size_t)(raw + n - l));
        if (!e)
            break;
        l = e + 1;
        if ((size_t)(raw + n - l) > nl && strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1, *ve = memchr(v, '\r', (size_t)(raw + n - v));
            while (v < raw + n && *v == ' ')
                v++;
            if (ve && ve >= v) {
                sl_buf_reset(val);
                sl_buf_append(val, v, (size_t)(ve - v));
            }
            return;
        }
    }
}

static int http_call_hdr(struct client *c, const char *method, const char *path,
                         const char *ctype, const char *body, size_t blen, int *status,
                         struct sl_buf *resp, const char *hdr, struct sl_buf *hval);

static int http_call_raw(struct client *c, const char *method, const char *path,
                         const char *ctype, const char *body, size_t blen, int *status,
                         struct sl_buf *resp)
{
    return http_call_hdr(c, method, path, ctype, body, blen, status, resp, NULL, NULL);
}

static int http_call_hdr(struct client *c, const char *method, const char *path,
                         const char *ctype, const char *body, size_t blen, int *status,
                         struct sl_buf *resp, const char *hdr, struct sl_buf *hval)
{
    char host[256], port[16];
    const char *u = c->url;
    int tls = strncmp(u, "https://", 8) == 0;
    if (!tls && strncmp(u, "http://", 7) != 0) {
        fprintf(stderr, "sluice: the server URL must start with http:// or https:// (%s)\n", u);
        return 1;
    }
    u += tls ? 8 : 7;
    snprintf(port, sizeof(port), "%s", tls ? "443" : "80");
    size_t hl = strcspn(u, ":/");
    if (hl == 0 || hl >= sizeof(host)) {
        fprintf(stderr, "sluice: bad server URL %s\n", c->url);
        return 1;
    }
    memcpy(host, u, hl);
    host[hl] = 0;
    if (u[hl] == ':') {
        size_t pl = strcspn(u + hl + 1, "/");
        if (pl == 0 || pl >= sizeof(port)) {
            fprintf(stderr, "sluice: bad server URL %s\n", c->url);
            return 1;
        }
        memcpy(port, u + hl + 1, pl);
        port[pl] = 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) {
        fprintf(stderr, "sluice: cannot resolve %s\n", host);
        return 1;
    }
    struct conn k = {.fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (k.fd < 0 || connect(k.fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "sluice: cannot connect to %s: %s (is `sluice serve` running?)\n",
                c->url, strerror(errno));
        freeaddrinfo(ai);
        conn_close(&k);
        return 1;
    }
    freeaddrinfo(ai);
    if (tls && tls_connect(&k, c->url, host) != 0) {
        conn_close(&k);
        return 1;
    }
    struct sl_buf req = SL_BUF_INIT;
    sl_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n", method, path,
                  host, port);
    if (c->key)
        sl_buf_printf(&req, "Authorization: Sluice-key %s\r\n", c->key);
    sl_buf_printf(&req, "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n", ctype, blen);
    sl_buf_append(&req, body, blen);
    int wrc = req.oom ? -1 : conn_write_all(&k, req.p, req.len);
    if (req.p)
        OPENSSL_cleanse(req.p, req.len); /* it holds the key */
    sl_buf_free(&req);
    struct sl_buf raw = SL_BUF_INIT;
    int rrc = conn_read_all(&k, &raw);
    conn_close(&k);
    const char *p = sl_buf_cstr(&raw);
    const char *hdr_end = p ? strstr(p, "\r\n\r\n") : NULL;
    if (!p || sscanf(p, "HTTP/1.%*d %d", status) != 1 || !hdr_end) {
        if (wrc != 0 || rrc != 0)
            fprintf(stderr, "sluice: the connection to %s failed: %s\n", c->url,
                    tls ? "TLS error" : strerror(errno));
        else
            fprintf(stderr, "sluice: malformed response from %s\n", c->url);
        sl_buf_free(&raw);
        return 1;
    }
    if (hdr && hval)
        find_header(p, (size_t)(hdr_end + 2 - p), hdr, hval);
    sl_buf_append(resp, hdr_end + 4, raw.len - (size_t)(hdr_end + 4 - p));
    sl_buf_cstr(resp);
    sl_buf_free(&raw);
    return 0;
}

/* Prints the server's error message for a failed call. */
static int report(int status, const struct sl_buf *resp)
{
    cJSON *o = cJSON_ParseWithLength(resp->p ? resp->p : "", resp->len);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");
    if (cJSON_IsString(m))
        fprintf(stderr, "sluice: %s (HTTP %d)\n", m->valuestring, status);
    else
        fprintf(stderr, "sluice: HTTP %d: %.*s\n", status, (int)resp->len, resp->p ? resp->p : "");
    cJSON_Delete(o);
    return 1;
}

/* ---- definition files ---- */

struct file_list {
    size_t n, cap;
    char **names;
};

static int collect(const char *root, const char *rel, struct file_list *fl)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "sluice: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096], full[8192];
        snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof(full), "%s/%s", root, sub);
        struct stat st;
        if (stat(full, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rc = collect(root, sub, fl);
        } else if (S_ISREG(st.st_mode)) {
            size_t nl = strlen(sub);
            if (nl < 5 || strcmp(sub + nl - 4, ".lua") != 0)
                continue;
            if (fl->n == fl->cap) {
                fl->cap = fl->cap ? fl->cap * 2 : 16;
                fl->names = realloc(fl->names, fl->cap * sizeof(char *));
                if (!fl->names)
                    return 1;
            }
            fl->names[fl->n++] = strdup(sub);
        }
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* {"files":[{"name","content"}]} of every *.lua file under dir. */
static char *repo_body(const char *dir)
{
    struct file_list fl = {0};
    if (collect(dir, "", &fl) != 0)
        return NULL;
    if (fl.n == 0) {
        fprintf(stderr, "sluice: no .lua files under %s\n", dir);
        return NULL;
    }
    qsort(fl.names, fl.n, sizeof(char *), cmp_str);
    cJSON *o = cJSON_CreateObject();
    char root[PATH_MAX];
    if (realpath(dir, root)) /* batch file URIs in the repository are relative to it */
        cJSON_AddStringToObject(o, "root", root);
    cJSON *arr = cJSON_AddArrayToObject(o, "files");
    int ok = 1;
    for (size_t i = 0; i < fl.n; i++) {
        char path[8192];
        size_t len;
        snprintf(path, sizeof(path), "%s/%s", dir, fl.names[i]);
        char *data = read_file(path, &len);
        if (!data || strlen(data) != len) {
            fprintf(stderr, "sluice: cannot read %s\n", path);
            ok = 0;
        } else {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "name", fl.names[i]);
            cJSON_AddStringToObject(f, "content", data);
            cJSON_AddItemToArray(arr, f);
        }
        free(data);
        free(fl.names[i]);
    }
    free(fl.names);
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

/* Splits text into lines (pointers into it; the caller frees the array). */
static size_t split_lines(const char *text, const char ***lines, size_t **lens)
{
    size_t n = 0, cap = 16;
    *lines = malloc(cap * sizeof(**lines));
    *lens = malloc(cap * sizeof(**lens));
    for (const char *p = text; *lines && *lens && p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (n == cap) {
            cap *= 2;
            const char **g = realloc(*lines, cap * sizeof(*g));
            size_t *h = g ? realloc(*lens, cap * sizeof(*h)) : NULL;
            if (g)
                *lines = g;
            if (!g || !h)
                return n;
            *lens = h;
        }
        (*lines)[n] = p;
        (*lens)[n++] = len;
        p = nl ? nl + 1 : p + len;
    }
    return n;
}

#define DIFF_MAX_LINES 2000
#define DIFF_CONTEXT 2

/* Prints a line diff of a and b (either may be NULL): "-" lines only in a, "+" only in b, and
 * up to DIFF_CONTEXT unchanged lines around each change. */
static void print_line_diff(const char *a, const char *b)
{
    const char **la = NULL, **lb = NULL;
    size_t *za = NULL, *zb = NULL;
    size_t n = split_lines(a, &la, &za), m = split_lines(b, &lb, &zb);
    unsigned *lcs = n <= DIFF_MAX_LINES && m <= DIFF_MAX_LINES
                        ? calloc((n + 1) * (m + 1), sizeof(*lcs)) : NULL;
    char *ops = malloc(n + m + 1);  /* ' ' same, '-' a only, '+' b only */
    size_t *at = malloc((n + m + 1) * sizeof(*at)), nops = 0;
    if (ops && at) {
#define L(i, j) lcs[(i) * (m + 1) + (j)]
        for (size_t i = n; lcs && i-- > 0;)
            for (size_t j = m; j-- > 0;)
                L(i, j) = za[i] == zb[j] && memcmp(la[i], lb[j], za[i]) == 0
                              ? L(i + 1, j + 1) + 1
                              : (L(i + 1, j) > L(i, j + 1) ? L(i + 1, j) : L(i, j + 1));
        size_t i = 0, j = 0;
        while (i < n || j < m) {
            if (lcs && i < n && j < m && za[i] == zb[j] && memcmp(la[i], lb[j], za[i]) == 0) {
                ops[nops] = ' ', at[nops++] = i++, j++;
            } else if (i < n && (j == m || !lcs || L(i + 1, j) >= L(i, j + 1))) {
                ops[nops] = '-', at[nops++] = i++;
            } else {
                ops[nops] = '+', at[nops++] = j++;
            }
        }
#undef L
        int skipped = 0;
        for (size_t k = 0; k < nops; k++) {
            int near = ops[k] != ' ';
            for (size_t d = 1; !near && d <= DIFF_CONTEXT; d++)
                near = (k >= d && ops[k - d] != ' ') || (k + d < nops && ops[k + d] != ' ');
            if (!near) {
                if (!skipped)
                    printf("        ...\n");
                skipped = 1;
                continue;
            }
            skipped = 0;
            const char *line = ops[k] == '+' ? lb[at[k]] : la[at[k]];
            size_t len = ops[k] == '+' ? zb[at[k]] : za[at[k]];
            printf("      %c %.*s\n", ops[k], (int)len, line);
        }
    }
    free(lcs);
    free(ops);
    free(at);
    free(la);
    free(lb);
    free(za);
    free(zb);
}

/* The code of a function value ({"source": ...}) or a multi-line string, else NULL. */
static const char *code_of(const cJSON *v)
{
    const cJSON *src = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "source") : v;
    if (cJSON_IsString(src) && (src != v || strchr(src->valuestring, '\n')))
        return src->valuestring;
    return NULL;
}

static const cJSON *named(const cJSON *arr, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return it;
    }
    return NULL;
}

/* Whether every element of arr is an object with a unique string "name". */
static int all_named(const cJSON *arr)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (!cJSON_IsString(n) || named(arr, n->valuestring) != it)
            return 0;
    }
    return 1;
}

#define DIFF_MAX_DEPTH 16

/* Prints `path: old -> new` for each leaf that differs: objects member by member, arrays of
 * named objects by name (path[name]), other arrays by index when their lengths match. */
static void print_value_diff(const char *path, const cJSON *a, const cJSON *b, int depth)
{
    char sub[512];
    const cJSON *x;
    if (a && b && cJSON_Compare(a, b, 1))
        return;
    if (depth < DIFF_MAX_DEPTH && cJSON_IsObject(a) && cJSON_IsObject(b)) {
        cJSON_ArrayForEach(x, a)
        {
            snprintf(sub, sizeof(sub), "%s.%s", path, x->string);
            print_value_diff(sub, x, cJSON_GetObjectItemCaseSensitive(b, x->string), depth + 1);
        }
        cJSON_ArrayForEach(x, b)
        {
            snprintf(sub, sizeof(sub), "%s.%s", path, x->string);
            if (!cJSON_GetObjectItemCaseSensitive(a, x->string))
                print_value_diff(sub, NULL, x, depth + 1);
        }
        return;
    }
    if (depth < DIFF_MAX_DEPTH && cJSON_IsArray(a) && cJSON_IsArray(b) && all_named(a) &&
        all_named(b)) {
        cJSON_ArrayForEach(x, a)
        {
            const char *n = cJSON_GetObjectItemCaseSensitive(x, "name")->valuestring;
            snprintf(sub, sizeof(sub), "%s[%s]", path, n);
            print_value_diff(sub, x, named(b, n), depth + 1);
        }
        cJSON_ArrayForEach(x, b)
        {
            const char *n = cJSON_GetObjectItemCaseSensitive(x, "name")->valuestring;
            snprintf(sub, sizeof(sub), "%s[%s]", path, n);
            if (!named(a, n))
                print_value_diff(sub, NULL, x, depth + 1);
        }
        return;
    }
    if (depth < DIFF_MAX_DEPTH && cJSON_IsArray(a) && cJSON_IsArray(b) &&
        cJSON_GetArraySize(a) == cJSON_GetArraySize(b)) {
        int i = 0;
        for (const cJSON *p = a->child, *q = b->child; p && q; p = p->next, q = q->next, i++) {
            snprintf(sub, sizeof(sub), "%s[%d]", path, i);
            print_value_diff(sub, p, q, depth + 1);
        }
        return;
    }
    char *ta = a ? cJSON_PrintUnformatted(a) : NULL, *tb = b ? cJSON_PrintUnformatted(b) : NULL;
    printf("      %s: %s -> %s\n", path, ta ? ta : "(none)", tb ? tb : "(none)");
    free(ta);
    free(tb);
}

/* Old → new value of each changed field, and what happens to the stored history. */
static void print_change_detail(const cJSON *c, const char *action)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(c, "diff"))
    {
        const cJSON *field = cJSON_GetObjectItemCaseSensitive(d, "field");
        const cJSON *was = cJSON_GetObjectItemCaseSensitive(d, "old");
        const cJSON *now = cJSON_GetObjectItemCaseSensitive(d, "new");
        const char *ca = code_of(was), *cb = code_of(now);
        if (!cJSON_IsString(field))
            continue;
        if (ca || cb) {
            printf("      %s:\n", field->valuestring);
            print_line_diff(ca, cb);
            continue;
        }
        print_value_diff(field->valuestring, was, now, 0);
    }
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(c, "history");
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(h, "onlineKeys");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(h, "offlineBytes");
    const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
    if (!h)
        return;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "carriedOver")))
        printf("      history of feature_view %s is kept (the change does not alter its data)\n", name);
    else if (strcmp(action, "delete") == 0)
        printf("      ! deletes the history of feature_view %s: %s online keys, %s offline bytes\n",
               name, cJSON_IsString(keys) ? keys->valuestring : "?",
               cJSON_IsString(bytes) ? bytes->valuestring : "?");
    else
        printf("      ! history of feature_view %s is not carried over: %s online keys and %s "
               "offline bytes of the current definition are deleted; the new one starts empty\n",
               name, cJSON_IsString(keys) ? keys->valuestring : "?",
               cJSON_IsString(bytes) ? bytes->valuestring : "?");
}

/* ws NULL: the plan of an offline check, against an empty workspace. */
static void print_plan(const char *ws, const cJSON *changes)
{
    int n = cJSON_GetArraySize(changes);
    if (n == 0) {
        printf("No changes to workspace `%s`.\n", ws);
        return;
    }
    if (!ws)
        printf("Plan for an empty workspace (%d change%s):\n", n, n == 1 ? "" : "s");
    else
        printf("Plan for workspace `%s` (%d change%s):\n", ws, n, n == 1 ? "" : "s");
    const cJSON *c;
    cJSON_ArrayForEach(c, changes)
    {
        const char *action = cJSON_GetObjectItemCaseSensitive(c, "action")->valuestring;
        const char *sym = strcmp(action, "create") == 0 ? "+" : strcmp(action, "delete") == 0 ? "-" : "~";
        printf("  %s %s %s %s", sym, action,
               cJSON_GetObjectItemCaseSensitive(c, "kind")->valuestring,
               cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring);
        const cJSON *ch = cJSON_GetObjectItemCaseSensitive(c, "changes"), *f;
        if (cJSON_GetArraySize(ch) > 0) {
            printf(" (");
            int first = 1;
            cJSON_ArrayForEach(f, ch)
            {
                printf("%s%s", first ? "" : ", ", f->valuestring);
                first = 0;
            }
            printf(")");
        }
        printf("\n");
        print_change_detail(c, action);
    }
}

static int follow_job(struct opt *opts, const char *id);

/* The workspace snapshot of the repository in dir, evaluated and validated as the server's
 * plan does (the same Lua sandbox and limits of cfg, the same snapshot build) but without a
 * server: batch source files are not opened. plan (may be NULL) gets what an empty
 * workspace would be changed by. Returns NULL after printing the error (file:line). */
static struct sl_ws *offline_ws(const char *dir, const struct sl_config *cfg, struct sl_buf *plan)
{
    char *body = repo_body(dir);
    cJSON *o = body ? cJSON_Parse(body) : NULL;
    free(body);
    if (!o)
        return NULL;
    const cJSON *fa = cJSON_GetObjectItemCaseSensitive(o, "files"), *f;
    size_t nfiles = 0;
    struct sl_file *files = calloc((size_t)cJSON_GetArraySize(fa) + 1, sizeof(*files));
    cJSON_ArrayForEach(f, fa)
    {
        const char *fc = cJSON_GetObjectItemCaseSensitive(f, "content")->valuestring;
        if (files)
            files[nfiles++] = (struct sl_file){
                cJSON_GetObjectItemCaseSensitive(f, "name")->valuestring, fc, strlen(fc)};
    }
    struct sl_error err = {0};
    struct sl_vm_limits lim = {(size_t)cfg->lua_memory_mb << 20, cfg->lua_instructions,
                               cfg->lua_time_ms};
    cJSON *repo = NULL;
    struct sl_ws *ws = NULL;
    lua_State *L = files ? sl_vm_new(&lim, &err) : NULL;
    if (!files)
        sl_error_set(&err, SL_ENOMEM, "out of memory");
    if (L && sl_defs_eval(L, files, nfiles, &repo, &err) == 0) {
        if (plan)
            sl_registry_plan(NULL, repo, plan);
        ws = sl_ws_build("offline", 1, 1, repo, files, nfiles, &err);
    }
    if (!ws)
        fprintf(stderr, "sluice: %s\n", err.msg[0] ? err.msg : "invalid repository");
    sl_vm_close(L);
    free(files);
    cJSON_Delete(o);
    return ws;
}

/* `sluice plan --offline DIR`: prints what the valid repository would create in an empty
 * workspace, or the error. */
static int plan_offline(const char *dir)
{
    struct sl_config cfg;
    struct sl_error err = {0};
    if (sl_config_defaults(&cfg, &err) != 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        return 1;
    }
    struct sl_buf plan = SL_BUF_INIT;
    struct sl_ws *ws = offline_ws(dir, &cfg, &plan);
    if (ws) {
        cJSON *changes = cJSON_Parse(sl_buf_cstr(&plan));
        printf("The repository in %s is valid.\n", dir);
        print_plan(NULL, changes);
        cJSON_Delete(changes);
    }
    sl_ws_release(ws);
    sl_buf_free(&plan);
    sl_config_free(&cfg);
    return ws ? 0 : 1;
}

/* ---- test-run: a repository's views over records, without a server ---- */

struct trun_rec {
    const struct sl_view *v;
    struct sl_segment_record r;
};

struct trun {
    struct trun_rec *recs;
    size_t n, cap;
    const char *view;   /* --view, or NULL */
};

static int trun_keep(void *arg, const struct sl_view *v, const char *key, size_t klen, int64_t ts,
                     uint64_t seq, const char *p, size_t n)
{
    struct trun *t = arg;
    if (t->view && strcmp(t->view, v->name) != 0)
        return 0;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct trun_rec *g = realloc(t->recs, cap * sizeof(*g));
        if (!g)
            return SL_ENOMEM;
        t->recs = g;
        t->cap = cap;
    }
    t->recs[t->n++] = (struct trun_rec){v, {key, klen, ts, seq, p, n}};
    return 0;
}

/* View name, entity key, time, write sequence: a view's rows per entity in time order. */
static int cmp_trun(const void *a, const void *b)
{
    const struct trun_rec *x = a, *y = b;
    int c = strcmp(x->v->name, y->v->name);
    if (c)
        return c;
    size_t n = x->r.key_len < y->r.key_len ? x->r.key_len : y->r.key_len;
    if ((c = memcmp(x->r.key, y->r.key, n)) != 0)
        return c;
    if (x->r.key_len != y->r.key_len)
        return x->r.key_len < y->r.key_len ? -1 : 1;
    if (x->r.time_ns != y->r.time_ns)
        return x->r.time_ns < y->r.time_ns ? -1 : 1;
    return x->r.seq < y->r.seq ? -1 : x->r.seq > y->r.seq;
}

/* Prints one row: {"_feature_view", the join keys, "_timestamp", the features}. vals: the
 * features' JSON values, comma-separated (sl_pit_entity_values). */
static int trun_print(const struct sl_view *v, const struct sl_segment_record *r, int64_t t,
                      const struct sl_buf *vals)
{
    struct sl_buf out = SL_BUF_INIT, arr = SL_BUF_INIT;
    struct sl_arena a = {0};
    struct sl_error err = {0};
    char ts[SL_TIME_MAXLEN];
    sl_buf_puts(&out, "{\"_feature_view\":");
    sl_buf_json_str(&out, v->name, strlen(v->name));
    struct sl_cursor c = {(const unsigned char *)r->key + 8, r->key_len - 8};
    for (size_t k = 0; k < v->nkeys; k++) {
        const char *p = "";
        size_t n = 0;
        sl_cur_lenstr(&c, &p, &n);
        sl_buf_putc(&out, ',');
        sl_buf_json_str(&out, v->join_keys[k].name, strlen(v->join_keys[k].name));
        sl_buf_putc(&out, ':');
        if (v->join_keys[k].type->kind != SL_STRING)
            sl_buf_append(&out, p, n);
        else
            sl_buf_json_str(&out, p, n);
    }
    sl_time_format(t, ts);
    sl_buf_printf(&out, ",\"_timestamp\":\"%s\"", ts);
    sl_buf_putc(&arr, '[');
    sl_buf_append(&arr, vals->p, vals->len);
    sl_buf_putc(&arr, ']');
    const struct sl_json *list = sl_json_parse(arr.p, arr.len, &a, &err);
    const struct sl_json *e = list ? list->child : NULL;
    for (size_t f = 0; f < v->nfeatures && e; f++, e = e->next) {
        sl_buf_putc(&out, ',');
        sl_buf_json_str(&out, v->features[f].name, strlen(v->features[f].name));
        sl_buf_putc(&out, ':');
        sl_json_write(&out, e);
    }
    sl_buf_puts(&out, "}\n");
    int rc = out.oom || !list ? SL_ENOMEM : 0;
    if (rc == 0)
        fwrite(out.p, 1, out.len, stdout);
    sl_arena_free(&a);
    sl_buf_free(&arr);
    sl_buf_free(&out);
    return rc;
}

/* The rows of t's records: an attribute view's row per record, an aggregate view's values
 * per entity as of `now` (INT64_MIN: the entity's last event). */
static int trun_output(struct trun *t, int64_t now)
{
    struct sl_buf vals = SL_BUF_INIT;
    struct sl_error err = {0};
    int rc = 0;
    if (t->n > 1)
        qsort(t->recs, t->n, sizeof(*t->recs), cmp_trun);
    for (size_t i = 0; i < t->n && rc == 0;) {
        size_t j = i + 1;
        const struct sl_view *v = t->recs[i].v;
        while (j < t->n && t->recs[j].v == v && t->recs[j].r.key_len == t->recs[i].r.key_len &&
               memcmp(t->recs[j].r.key, t->recs[i].r.key, t->recs[i].r.key_len) == 0)
            j++;
        struct sl_segment_record *rs = malloc((j - i) * sizeof(*rs));
        if (!rs)
            rc = SL_ENOMEM;
        for (size_t k = i; rs && k < j; k++)
            rs[k - i] = t->recs[k].r;
        if (rs && v->agg) {
            int64_t at = now != INT64_MIN ? now : rs[j - i - 1].time_ns;
            rc = sl_pit_entity_values(v, rs, j - i, at, &vals, &err);
            if (rc == 0)
                rc = trun_print(v, &rs[0], at, &vals);
        }
        for (size_t k = 0; rs && !v->agg && k < j - i && rc == 0; k++) {
            /* each row as written: its own values at its own time */
            rc = sl_pit_entity_values(v, &rs[k], 1, rs[k].time_ns, &vals, &err);
            if (rc == 0)
                rc = trun_print(v, &rs[k], rs[k].time_ns, &vals);
        }
        free(rs);
        i = j;
    }
    sl_buf_free(&vals);
    return rc;
}

static int cmd_test_run(int argc, char **argv)
{
    struct opt opts[] = {{"--source", 1, NULL}, {"--input", 1, NULL}, {"--view", 1, NULL},
                         {"--now", 1, NULL}, {"--help", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[1];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 1, &npos))
        return 2;
    if (optv(opts, "--help")) {
        printf("usage: sluice test-run REPO --source S --input RECORDS.jsonl [--view V] [--now TIME]\n\n"
               "Runs the records of source S (JSON Lines: one record object a line) through the\n"
               "repository in REPO without a server, as POST /ingest would: schema checks,\n"
               "post-processor, transformations, aggregations. Prints the rows each view (or\n"
               "only V) would get as JSON Lines: _feature_view, the join keys, _timestamp and\n"
               "the features; an attribute view's row per record, an aggregate view's values\n"
               "per entity as of --now (default: the entity's last event). --now is also the\n"
               "clock of the ttl and clock-skew checks. Record errors (the recordErrors of\n"
               "POST /ingest) go to stderr as one JSON object, and the exit status is then 1.\n");
        return 0;
    }
    const char *sname = optv(opts, "--source"), *input = optv(opts, "--input");
    const char *nowtxt = optv(opts, "--now");
    int64_t now = 0;
    if (!npos || !sname || !input)
        return usage_error("test-run needs REPO, --source and --input");
    if (nowtxt && sl_time_parse(nowtxt, strlen(nowtxt), &now) != 0)
        return usage_error("--now takes an RFC 3339 time, e.g. 2024-05-01T12:00:00Z");
    struct sl_config cfg;
    struct sl_error err = {0};
    if (sl_config_defaults(&cfg, &err) != 0) {
        fprintf(stderr, "sluice: %s\n", err.msg);
        return 1;
    }
    size_t len = 0;
    char *text = read_file(input, &len);
    struct sl_ws *ws = text ? offline_ws(pos[0], &cfg, NULL) : NULL;
    struct sl_source *s = ws ? sl_ws_source(ws, sname) : NULL;
    struct sl_vm_limits lim = {(size_t)cfg.lua_memory_mb << 20, cfg.lua_instructions,
                               cfg.lua_time_ms};
    struct sl_xform_cache *xf = NULL;
    struct sl_ingest *g = NULL;
    struct trun t = {.view = optv(opts, "--view")};
    int rc = 1;
    if (!text)
        fprintf(stderr, "sluice: cannot read %s\n", input);
    else if (ws && (!s || s->is_request))
        fprintf(stderr, "sluice: the repository has no stream source `%s`\n", sname);
    else if (ws && t.view && (!sl_ws_view(ws, t.view) || sl_ws_view(ws, t.view)->source != s))
        fprintf(stderr, "sluice: source `%s` feeds no feature view `%s`\n", sname, t.view);
    else if (ws && (!(xf = sl_xform_cache_new(&lim)) ||
                    !(g = sl_ingest_new_local(ws, xf, t.view ? sl_ws_view(ws, t.view) : NULL,
                                              cfg.future_skew))))
        fprintf(stderr, "sluice: out of memory\n");
    if (g) {
        if (nowtxt)
            sl_time_set_fake(now ? now : 1); /* 0 would restore the real clock */
        rc = 0;
        size_t idx = 0, line = 0;
        for (char *p = text, *e; rc == 0 && p < text + len; p = e + 1) {
            e = memchr(p, '\n', (size_t)(text + len - p));
            if (!e)
                e = text + len;
            line++;
            size_t n = (size_t)(e - p);
            while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
                n--;
            if (n == 0)
                continue;
            struct sl_json *rec = sl_json_parse(p, n, sl_ingest_arena(g), &err);
            if (!rec) {
                fprintf(stderr, "sluice: %s:%zu: %s\n", input, line, err.msg);
                rc = 1;
            } else if (sl_ingest_add(g, s, rec, idx++) != 0) {
                fprintf(stderr, "sluice: out of memory\n");
                rc = 1;
            }
        }
        if (rc == 0 && (rc = sl_ingest_each_record(g, trun_keep, &t)) == 0)
            rc = trun_output(&t, nowtxt ? now : INT64_MIN);
        struct sl_buf errs = SL_BUF_INIT;
        if (sl_ingest_errors(g, &errs) > 0) {
            fprintf(stderr, "{\"recordErrors\":[%.*s]}\n", (int)errs.len, errs.p);
            rc = 1;
        } else if (rc == SL_ENOMEM) {
            fprintf(stderr, "sluice: out of memory\n");
        }
        rc = rc ? 1 : 0;
        sl_buf_free(&errs);
    }
    free(t.recs);
    sl_ingest_free(g);
    sl_xform_cache_free(xf);
    sl_ws_release(ws);
    sl_config_free(&cfg);
    free(text);
    return rc;
}

static int cmd_plan_apply(int argc, char **argv, int apply)
{
    struct opt opts[] = {{"--workspace", 1, NULL}, {"--url", 1, NULL}, {"--api-key-file", 1, NULL},
                         {"--yes", 0, NULL}, {"--no-follow", 0, NULL}, {"--offline", 0, NULL},
                         {"--help", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[1];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 1, &npos))
        return 2;
    if (optv(opts, "--help")) {
        printf("usage: sluice %s --workspace W [DIR]%s\n%s\n"
               "%s the feature repository in DIR (default: the current directory): every *.lua\n"
               "file below it. Options: --url URL (or $SLUICE_URL), --api-key-file F (or\n"
               "$SLUICE_API_KEY)%s.\n",
               apply ? "apply" : "plan", apply ? " [--yes] [--no-follow]" : "",
               apply ? "" : "       sluice plan --offline [DIR]   (validates without a server)\n",
               apply ? "Validates and applies" : "Validates and shows what apply would change in",
               apply ? "; --yes skips the confirmation (asked on a terminal; elsewhere, changes that\n"
                       "delete stored feature data are refused without --yes);\n"
                       "backfill jobs it starts show their progress on a terminal unless --no-follow" : "");
        return 0;
    }
    if (optv(opts, "--offline")) {
        if (apply || optv(opts, "--workspace") || optv(opts, "--url"))
            return usage_error("--offline is a flag of plan alone, without --workspace or --url");
        return plan_offline(npos ? pos[0] : ".");
    }
    const char *ws = optv(opts, "--workspace");
    if (!ws)
        return usage_error("%s needs --workspace", apply ? "apply" : "plan");
    struct client c = {0};
    if (client_init(&c, opts))
        return 1;
    char *body = repo_body(npos ? pos[0] : ".");
    if (!body) {
        free(c.key);
        return 1;
    }
    char path[512];
    snprintf(path, sizeof(path), "/v1/workspaces/%s/plan", ws);
    struct sl_buf resp = SL_BUF_INIT;
    int status = 0, rc = http_call(&c, "POST", path, body, &status, &resp);
    if (rc == 0 && status != 200)
        rc = report(status, &resp);
    cJSON *o = rc == 0 ? cJSON_Parse(resp.p) : NULL;
    const cJSON *changes = cJSON_GetObjectItemCaseSensitive(o, "changes");
    if (rc == 0)
        print_plan(ws, changes);
    if (rc == 0 && apply && cJSON_GetArraySize(changes) > 0) {
        int go = 1;
        int loses = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "losesHistory"));
        if (isatty(0) && !optv(opts, "--yes")) {
            char line[16] = "";
            if (loses)
                printf("These changes delete stored feature data (the lines marked !).\n");
            printf("Apply these changes? [y/N] ");
            fflush(stdout);
            go = fgets(line, sizeof(line), stdin) && (line[0] == 'y' || line[0] == 'Y');
        } else if (loses && !optv(opts, "--yes")) {
            fprintf(stderr, "sluice: not applied: these changes delete stored feature data (the "
                            "lines marked !); pass --yes to apply them anyway\n");
            go = 0;
            rc = 1;
        }
        if (!go) {
            if (rc == 0)
                printf("Not applied.\n");
        } else {
            snprintf(path, sizeof(path), "/v1/workspaces/%s/apply", ws);
            sl_buf_reset(&resp);
            rc = http_call(&c, "POST", path, body, &status, &resp);
            if (rc == 0 && status != 200)
                rc = report(status, &resp);
            cJSON *a = rc == 0 ? cJSON_Parse(resp.p) : NULL;
            const cJSON *ver = cJSON_GetObjectItemCaseSensitive(a, "version");
            if (rc == 0)
                printf("Applied to workspace `%s` (version %d).\n", ws,
                       cJSON_IsNumber(ver) ? ver->valueint : 0);
            const cJSON *job;
            cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(a, "jobs"))
            {
                if (cJSON_IsString(job))
                    printf("Started backfill job %s (sluice jobs show %s --follow).\n",
                           job->valuestring, job->valuestring);
            }
            cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(a, "deleteJobs"))
            {
                if (cJSON_IsString(job))
                    printf("Started job %s deleting the data of a removed or redefined view "
                           "(sluice jobs show %s --follow).\n", job->valuestring, job->valuestring);
            }
            /* on a terminal, show the backfills' progress (Ctrl-C leaves them running) */
            cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(a, "jobs"))
            {
                if (cJSON_IsString(job) && isatty(1) && !optv(opts, "--no-follow")) {
                    printf("%s ", job->valuestring);
                    follow_job(opts, job->valuestring);
                }
            }
            cJSON_Delete(a);
        }
    }
    cJSON_Delete(o);
    sl_buf_free(&resp);
    free(body);
    free(c.key);
    return rc;
}

/* Runs one call and prints the JSON response (pretty) on success. */
static int simple_call(struct opt *opts, const char *method, const char *path, cJSON *req,
                       int want, void (*print)(const cJSON *))
{
    struct client c = {0};
    if (client_init(&c, opts))
        return 1;
    char *body = req ? cJSON_PrintUnformatted(req) : NULL;
    struct sl_buf resp = SL_BUF_INIT;
    int status = 0, rc = http_call(&c, method, path, body, &status, &resp);
    if (rc == 0 && status != want)
        rc = report(status, &resp);
    if (rc == 0) {
        cJSON *o = cJSON_Parse(resp.p ? resp.p : "");
        if (print && o)
            print(o);
        cJSON_Delete(o);
    }
    free(body);
    free(c.key);
    sl_buf_free(&resp);
    return rc;
}

static void print_workspaces(const cJSON *o)
{
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(o, "workspaces"))
    {
        printf("%-32s %s\n", cJSON_GetObjectItemCaseSensitive(w, "name")->valuestring,
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "live")) ? "live" : "development");
    }
}

static void print_created(const cJSON *o)
{
    printf("Created workspace `%s` (%s).\n", cJSON_GetObjectItemCaseSensitive(o, "name")->valuestring,
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "live")) ? "live" : "development");
}

static void print_deleted(const cJSON *o)
{
    const cJSON *job, *ws = cJSON_GetObjectItemCaseSensitive(o, "workspace");
    printf("Deleted workspace `%s`.\n", cJSON_IsString(ws) ? ws->valuestring : "?");
    cJSON_ArrayForEach(job, cJSON_GetObjectItemCaseSensitive(o, "jobs"))
    {
        if (cJSON_IsString(job))
            printf("Started job %s deleting its stored data (sluice jobs show %s --follow).\n",
                   job->valuestring, job->valuestring);
    }
}

static void print_ok(const cJSON *o)
{
    (void)o;
    printf("Successfully updated role.\n");
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void print_account(const cJSON *o)
{
    printf("Save this API Key - you will not be able to get it again.\n");
    printf("API Key: %s\n", str_of(o, "apiKey"));
    printf("Service Account ID: %s\n", str_of(o, "id"));
}

static void print_rotated(const cJSON *o)
{
    printf("Save this API Key - you will not be able to get it again. The old key no longer works.\n");
    printf("API Key: %s\n", str_of(o, "apiKey"));
    printf("Service Account ID: %s\n", str_of(o, "id"));
}

static void print_accounts(const cJSON *o)
{
    const cJSON *a;
    printf("%-32s  %-24s  %-5s  %-20s  %s\n", "ID", "NAME", "ADMIN", "CREATED", "DESCRIPTION");
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(o, "serviceAccounts"))
    {
        printf("%-32s  %-24s  %-5s  %-20s  %s\n", str_of(a, "id"), str_of(a, "name"),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "admin")) ? "yes" : "no",
               str_of(a, "createdAt"), str_of(a, "description"));
    }
}

static void print_workspace_roles(const cJSON *o)
{
    const cJSON *b;
    printf("%-32s  %-24s  %s\n", "SERVICE ACCOUNT", "NAME", "ROLE");
    cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(o, "roles"))
    {
        printf("%-32s  %-24s  %s\n", str_of(b, "serviceAccount"), str_of(b, "name"),
               str_of(b, "role"));
    }
}

static const char *roles_filter; /* get-roles --workspace with --service-account */

static void print_account_roles(const cJSON *o)
{
    const cJSON *b;
    printf("%-32s  %s\n", "WORKSPACE", "ROLE");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "admin")))
        printf("%-32s  %s\n", roles_filter ? roles_filter : "*", "admin");
    cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(o, "roles"))
    {
        if (!roles_filter || strcmp(roles_filter, str_of(b, "workspace")) == 0)
            printf("%-32s  %s\n", str_of(b, "workspace"), str_of(b, "role"));
    }
}

static int cmd_workspace(int argc, char **argv)
{
    struct opt opts[] = {{"--live", 0, NULL}, {"--url", 1, NULL}, {"--api-key-file", 1, NULL},
                         {"--help", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[2];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 2, &npos))
        return 2;
    if (optv(opts, "--help") || npos == 0) {
        printf("usage: sluice workspace create NAME [--live] | list | delete NAME\n\n"
               "A live workspace materializes and serves; a development one only plans and\n"
               "applies (ingest accepts dry runs only).\n");
        return npos == 0 && !optv(opts, "--help") ? 2 : 0;
    }
    if (strcmp(pos[0], "list") == 0)
        return simple_call(opts, "GET", "/v1/workspaces", NULL, 200, print_workspaces);
    if (strcmp(pos[0], "create") == 0 && npos == 2) {
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "name", pos[1]);
        cJSON_AddBoolToObject(req, "live", optv(opts, "--live") != NULL);
        int rc = simple_call(opts, "POST", "/v1/workspaces", req, 201, print_created);
        cJSON_Delete(req);
        return rc;
    }
    if (strcmp(pos[0], "delete") == 0 && npos == 2) {
        char path[512];
        snprintf(path, sizeof(path), "/v1/workspaces/%s", pos[1]);
        return simple_call(opts, "DELETE", path, NULL, 200, print_deleted);
    }
    return usage_error("unknown workspace command `%s`", pos[0]);
}

static void print_plugins(const cJSON *o)
{
    const cJSON *p;
    printf("%-24s %-14s %-10s %-5s %s\n", "NAME", "KIND", "VERSION", "ABI", "FILE");
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(o, "plugins"))
    {
        printf("%-24s %-14s %-10s %-5s %s\n", str_of(p, "name"), str_of(p, "kind"),
               str_of(p, "version"), str_of(p, "abi"), str_of(p, "file"));
    }
}

/* sluice plugins: what the server loaded (GET /v1/plugins), built-ins included. */
static int cmd_plugins(int argc, char **argv)
{
    struct opt opts[] = {{"--url", 1, NULL}, {"--api-key-file", 1, NULL}, {"--help", 0, NULL},
                         {NULL, 0, NULL}};
    const char *pos[1];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 0, &npos))
        return 2;
    if (optv(opts, "--help")) {
        printf("usage: sluice plugins\n\n"
               "Lists the plugins the server runs with: name, kind, version, ABI and file\n"
               "(\"(built-in)\" for the built-in aggregations and the LevelDB store).\n");
        return 0;
    }
    return simple_call(opts, "GET", "/v1/plugins", NULL, 200, print_plugins);
}

/* An account id from --id or the one positional argument after the command. */
static const char *account_arg(struct opt *opts, const char **pos, int npos)
{
    const char *id = optv(opts, "--id");
    return id ? id : npos == 2 ? pos[1] : NULL;
}

static int cmd_service_account(int argc, char **argv)
{
    struct opt opts[] = {{"--name", 1, NULL}, {"--description", 1, NULL}, {"--admin", 0, NULL},
                         {"--id", 1, NULL}, {"--url", 1, NULL}, {"--api-key-file", 1, NULL},
                         {"--help", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[2];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 2, &npos))
        return 2;
    if (optv(opts, "--help") || npos == 0) {
        printf("usage: sluice service-account create --name N [--description D] [--admin]\n"
               "       sluice service-account list\n"
               "       sluice service-account delete ID\n"
               "       sluice service-account rotate-key ID\n\n"
               "create prints the new account's API key once; keep it, it cannot be shown again.\n"
               "--admin makes an admin (every right in every workspace; only admins may do it).\n"
               "delete removes the account and its roles; rotate-key prints a new key once and\n"
               "the old key stops working immediately. All need an admin key.\n");
        return npos == 0 && !optv(opts, "--help") ? 2 : 0;
    }
    const char *cmd = pos[0];
    if (strcmp(cmd, "list") == 0 && npos == 1)
        return simple_call(opts, "GET", "/v1/service-accounts", NULL, 200, print_accounts);
    if (strcmp(cmd, "create") == 0 && npos == 1) {
        if (!optv(opts, "--name"))
            return usage_error("%s needs --name", "service-account create");
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "name", optv(opts, "--name"));
        cJSON_AddStringToObject(req, "description",
                                optv(opts, "--description") ? optv(opts, "--description") : "");
        if (optv(opts, "--admin"))
            cJSON_AddTrueToObject(req, "admin");
        int rc = simple_call(opts, "POST", "/v1/service-accounts", req, 201, print_account);
        cJSON_Delete(req);
        return rc;
    }
    int del = strcmp(cmd, "delete") == 0;
    if (del || strcmp(cmd, "rotate-key") == 0) {
        const char *id = account_arg(opts, pos, npos);
        if (!id || (npos == 2 && optv(opts, "--id")))
            return usage_error("service-account %s needs one account ID", cmd);
        struct sl_buf path = SL_BUF_INIT;
        sl_buf_printf(&path, "/v1/service-accounts/%s%s", id, del ? "" : "/rotate-key");
        int rc = simple_call(opts, del ? "DELETE" : "POST", sl_buf_cstr(&path), NULL, 200,
                             del ? NULL : print_rotated);
        if (rc == 0 && del)
            printf("Deleted service account %s.\n", id);
        sl_buf_free(&path);
        return rc;
    }
    return usage_error("unknown service-account command `%s`", cmd);
}

static int cmd_access_control(int argc, char **argv)
{
    struct opt opts[] = {{"--role", 1, NULL}, {"--workspace", 1, NULL},
                         {"--service-account", 1, NULL}, {"--url", 1, NULL},
                         {"--api-key-file", 1, NULL}, {"--help", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[1];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 1, &npos))
        return 2;
    if (optv(opts, "--help") || npos == 0) {
        printf("usage: sluice access-control assign-role --role R --workspace W --service-account ID\n"
               "       sluice access-control unassign-role [--role R] --workspace W --service-account ID\n"
               "       sluice access-control get-roles [--workspace W] [--service-account ID]\n\n"
               "Roles, weakest first (each has every right of the ones before it): viewer,\n"
               "consumer, operator, editor, owner. An account holds one role per workspace;\n"
               "assigning another replaces it. Owners of a workspace and admins manage its roles.\n");
        return npos == 0 && !optv(opts, "--help") ? 2 : 0;
    }
    const char *ws = optv(opts, "--workspace"), *acc = optv(opts, "--service-account");
    const char *role = optv(opts, "--role");
    char path[512];
    if (strcmp(pos[0], "get-roles") == 0) {
        if (!ws && !acc)
            return usage_error("get-roles needs --workspace, --service-account or both");
        if (acc) {
            roles_filter = ws;
            snprintf(path, sizeof(path), "/v1/service-accounts/%s/roles", acc);
            return simple_call(opts, "GET", path, NULL, 200, print_account_roles);
        }
        snprintf(path, sizeof(path), "/v1/workspaces/%s/roles", ws);
        return simple_call(opts, "GET", path, NULL, 200, print_workspace_roles);
    }
    int grant = strcmp(pos[0], "assign-role") == 0;
    if (!grant && strcmp(pos[0], "unassign-role") != 0)
        return usage_error("unknown access-control command `%s`", pos[0]);
    if (!ws || !acc || (grant && !role))
        return usage_error("%s needs %s--workspace and --service-account", pos[0],
                           grant ? "--role, " : "");
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "service_account", acc);
    if (role)
        cJSON_AddStringToObject(req, "role", role);
    snprintf(path, sizeof(path), "/v1/workspaces/%s/roles", ws);
    int rc = simple_call(opts, grant ? "POST" : "DELETE", path, req, 200, print_ok);
    cJSON_Delete(req);
    return rc;
}

/* Percent-encodes s for a query string. */
static void query_arg(struct sl_buf *b, const char *key, const char *s)
{
    sl_buf_printf(b, "%s%s=", b->len && memchr(b->p, '?', b->len) ? "&" : "?", key);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~')
            sl_buf_putc(b, (char)ch);
        else
            sl_buf_printf(b, "%%%02X", ch);
    }
    sl_buf_cstr(b);
}

/* Writes a response body to --output (default stdout). Returns 0 or 1 (printed). */
static const char *ext_format(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    if (n > 4 && strcmp(path + n - 4, ".csv") == 0)
        return "csv";
    return "jsonl";
}

/* --output written whole or not at all: rows go to PATH.partial, renamed on success and
 * removed on failure; without --output, to stdout. */
struct output {
    const char *path;  /* NULL: stdout */
    struct sl_buf tmp;
    FILE *f;
};

static int output_open(struct output *o, const char *path)
{
    o->path = path;
    o->tmp = (struct sl_buf)SL_BUF_INIT;
    if (!path) {
        o->f = stdout;
        return 0;
    }
    sl_buf_printf(&o->tmp, "%s.partial", path);
    o->f = fopen(sl_buf_cstr(&o->tmp), "wb");
    if (!o->f) {
        fprintf(stderr, "sluice: cannot write %s: %s\n", sl_buf_cstr(&o->tmp), strerror(errno));
        return 1;
    }
    return 0;
}

static int output_write(struct output *o, const char *p, size_t n)
{
    if (n && fwrite(p, 1, n, o->f) != n) {
        fprintf(stderr, "sluice: cannot write %s: %s\n", o->path ? o->path : "stdout", strerror(errno));
        return 1;
    }
    return 0;
}

/* Finishes the output after a run that ended with rc; returns the final status. */
static int output_close(struct output *o, int rc)
{
    if (!o->path) {
        if (o->f && fflush(o->f) != 0 && rc == 0)
            rc = 1;
    } else if (o->f) {
        if (fclose(o->f) != 0 && rc == 0) {
            fprintf(stderr, "sluice: cannot write %s: %s\n", o->path, strerror(errno));
            rc = 1;
        }
        if (rc == 0 && rename(sl_buf_cstr(&o->tmp), o->path) != 0) {
            fprintf(stderr, "sluice: cannot write %s: %s\n", o->path, strerror(errno));
            rc = 1;
        }
        if (rc)
            unlink(sl_buf_cstr(&o->tmp));
    }
    o->f = NULL;
    sl_buf_free(&o->tmp);
    return rc;
}

/* The events file, read in parts that end on a record boundary (a newline outside CSV
 * quotes) so that each part is an events upload of its own: a CSV part starts with the
 * file's header row. Counts lines and non-blank records as the server numbers them. */
struct events_in {
    FILE *f;
    int csv;
    struct sl_buf buf;     /* [0..hdr) the CSV header, then unsent bytes */
    size_t hdr, scanned, boundary; /* boundary: end of the last complete record (0: none) */
    int have_hdr, quoted, content;
    size_t lines, recs, b_lines, b_recs; /* since hdr; b_*: at the boundary */
    int eof;
};

static void scan_records(struct events_in *in)
{
    for (size_t i = in->scanned; i < in->buf.len; i++) {
        char ch = in->buf.p[i];
        if (in->csv && ch == '"')
            in->quoted = !in->quoted;
        if (ch != '\n') {
            in->content |= ch != '\r' && (in->csv || (ch != ' ' && ch != '\t'));
            continue;
        }
        if (in->have_hdr)
            in->lines++;
        if (in->quoted)
            continue;
        if (!in->have_hdr && in->csv) {
            in->hdr = i + 1;
            in->have_hdr = 1;
        } else {
            in->recs += in->content;
            in->boundary = i + 1;
            in->b_lines = in->lines;
            in->b_recs = in->recs;
        }
        in->content = 0;
    }
    in->scanned = in->buf.len;
}

/* Reads on until the unsent bytes hold `want` bytes and a record boundary, or the file ends.
 * Then *len: the part's length at buf.p (header included), *lines and *events: what it holds
 * past the header. Returns 1, 0 when nothing is left, -1 on a read error. */
static int next_part(struct events_in *in, size_t want, size_t *len, size_t *lines, size_t *events)
{
    char chunk[1 << 16];
    while (!in->eof && !(in->boundary && in->buf.len >= in->hdr + want)) {
        size_t n = fread(chunk, 1, sizeof(chunk), in->f);
        if (n == 0) {
            if (ferror(in->f))
                return -1;
            in->eof = 1;
            break;
        }
        sl_buf_append(&in->buf, chunk, n);
        if (in->buf.oom)
            return -1;
        scan_records(in);
    }
    if (in->eof) { /* the rest, a last record without a newline included */
        *len = in->buf.len;
        *lines = in->lines;
        *events = in->recs + in->content;
        return in->buf.len > in->hdr;
    }
    *len = in->boundary;
    *lines = in->b_lines;
    *events = in->b_recs;
    return 1;
}

/* Drops the part next_part returned, keeping the header and what follows the part. */
static void drop_part(struct events_in *in, size_t len)
{
    size_t rest = in->buf.len - len;
    memmove(in->buf.p + in->hdr, in->buf.p + len, rest);
    in->buf.len = in->hdr + rest;
    in->scanned = in->buf.len;
    in->boundary = 0; /* the part ended at the last boundary */
    in->lines -= in->b_lines;
    in->recs -= in->b_recs;
    in->b_lines = in->b_recs = 0;
}

static int parse_size(const char *s, size_t *v)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    unsigned long long mul = *end == 'k' || *end == 'K' ? 1ull << 10
                             : *end == 'm' || *end == 'M' ? 1ull << 20
                             : *end == 'g' || *end == 'G' ? 1ull << 30 : 1;
    if (mul > 1)
        end++;
    if (end == s || *end || errno || n == 0 || *s == '-' || n > (SIZE_MAX >> 2) / mul)
        return -1;
    *v = (size_t)(n * mul);
    return 0;
}

/* Rows done, rate and (when the input's size is known) ETA, on one terminal line. */
static void progress(double t0, size_t events, off_t done, off_t total, int last)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double el = (double)ts.tv_sec + ts.tv_nsec / 1e9 - t0;
    double rate = el > 0 ? events / el : 0;
    fprintf(stderr, "\r%zu events, %.0f events/s, %.1f s", events, rate, el);
    if (total > 0 && !last) {
        double frac = (double)done / (double)total;
        fprintf(stderr, ", %.0f%%, ETA %.0f s", 100 * frac, frac > 0 ? el / frac - el : 0);
    }
    fprintf(stderr, "%s", last ? "\n" : "   ");
    fflush(stderr);
}

/* Length of the first line of a CSV text, its newline included. */
static size_t csv_first_line(const char *p, size_t n)
{
    int quoted = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"')
            quoted = !quoted;
        else if (p[i] == '\n' && !quoted)
            return i + 1;
    }
    return n;
}

static int cmd_pit(int argc, char **argv)
{
    struct opt opts[] = {{"--workspace", 1, NULL}, {"--feature-service", 1, NULL},
                         {"--events", 1, NULL}, {"--timestamp-key", 1, NULL},
                         {"--format", 1, NULL}, {"--input-format", 1, NULL},
                         {"--output", 1, NULL}, {"--chunk-size", 1, NULL}, {"--quiet", 0, NULL},
                         {"--url", 1, NULL}, {"--api-key-file", 1, NULL},
                         {"--help", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[1];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 0, &npos))
        return 2;
    if (optv(opts, "--help")) {
        printf("usage: sluice get-features-for-events --workspace W --feature-service FS\n"
               "       [--events FILE] [--timestamp-key ts] [--format csv|jsonl]\n"
               "       [--input-format csv|jsonl] [--output FILE] [--chunk-size BYTES] [--quiet]\n\n"
               "Training data: for each event (join keys, a timestamp, any other columns), the\n"
               "features as online serving returned them at the event's time. Events are read\n"
               "from FILE (default stdin; format from its extension or --input-format) and the\n"
               "result written to --output (default stdout) as JSON Lines (default) or CSV, one\n"
               "row per event in input order, feature columns named <view>__<feature>.\n\n"
               "The events are sent in parts of --chunk-size bytes (default 64M; k, M, G\n"
               "suffixes), each joined on its own and its rows written as they arrive, so that\n"
               "memory stays bounded whatever the file's size. On a terminal, progress (events,\n"
               "rate, ETA) goes to stderr; --quiet turns it off. --output is written whole or\n"
               "not at all.\n");
        return 0;
    }
    const char *ws = optv(opts, "--workspace"), *fs = optv(opts, "--feature-service");
    if (!ws || !fs)
        return usage_error("get-features-for-events needs --workspace and --feature-service");
    const char *in_path = optv(opts, "--events"), *outp = optv(opts, "--output");
    const char *infmt = optv(opts, "--input-format");
    const char *outfmt = optv(opts, "--format");
    if (!infmt)
        infmt = ext_format(in_path);
    if (!outfmt)
        outfmt = "jsonl";
    if ((strcmp(infmt, "csv") && strcmp(infmt, "jsonl")) || (strcmp(outfmt, "csv") && strcmp(outfmt, "jsonl")))
        return usage_error("formats are csv or jsonl");
    size_t want = 64u << 20;
    if (optv(opts, "--chunk-size") && parse_size(optv(opts, "--chunk-size"), &want) != 0)
        return usage_error("--chunk-size takes a byte count (64M, 512k, 1048576)");
    struct client c = {0};
    if (client_init(&c, opts))
        return 1;
    struct events_in in = {.f = in_path ? fopen(in_path, "rb") : stdin, .csv = !strcmp(infmt, "csv")};
    if (!in.f) {
        fprintf(stderr, "sluice: cannot read the events %s: %s\n", in_path, strerror(errno));
        free(c.key);
        return 1;
    }
    struct stat st;
    off_t total = fstat(fileno(in.f), &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
    int show = !optv(opts, "--quiet") && isatty(STDERR_FILENO);
    struct sl_buf path = SL_BUF_INIT, resp = SL_BUF_INIT, header = SL_BUF_INIT;
    struct output out;
    int rc = output_open(&out, outp), csv_out = !strcmp(outfmt, "csv");
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t0 = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    size_t lines_before = 0, events_before = 0, parts = 0;
    off_t sent = 0;
    while (rc == 0) {
        size_t len = 0, lines = 0, events = 0;
        int got = next_part(&in, want, &len, &lines, &events);
        if (got < 0) {
            fprintf(stderr, "sluice: cannot read the events %s: %s\n", in_path ? in_path : "from stdin",
                    strerror(errno));
            rc = 1;
            break;
        }
        if (got == 0 && parts > 0)
            break;
        sl_buf_reset(&path);
        sl_buf_puts(&path, "/api/v1/feature-service/get-features-for-events");
        query_arg(&path, "workspace_name", ws);
        query_arg(&path, "feature_service_name", fs);
        query_arg(&path, "input_format", infmt);
        query_arg(&path, "format", outfmt);
        if (optv(opts, "--timestamp-key"))
            query_arg(&path, "timestamp_key", optv(opts, "--timestamp-key"));
        if (parts > 0) {
            sl_buf_printf(&path, "&line_offset=%zu&event_offset=%zu", lines_before, events_before);
        }
        sl_buf_reset(&resp);
        int status = 0;
        rc = http_call_raw(&c, "POST", sl_buf_cstr(&path), in.csv ? "text/csv" : "application/x-ndjson",
                           in.buf.p ? in.buf.p : "", len, &status, &resp);
        if (rc == 0 && status != 200)
            rc = report(status, &resp);
        if (rc)
            break;
        const char *body = resp.p ? resp.p : "";
        size_t blen = resp.len;
        if (csv_out) { /* every part's answer starts with the header row: write it once */
            size_t h = csv_first_line(body, blen);
            if (parts == 0) {
                sl_buf_append(&header, body, h);
            } else if (h != header.len || memcmp(body, header.p, h) != 0) {
                fprintf(stderr, "sluice: the events' columns differ between parts of the file; "
                                "use --format jsonl or a larger --chunk-size\n");
                rc = 1;
                break;
            } else {
                body += h;
                blen -= h;
            }
        }
        if ((rc = output_write(&out, body, blen)) != 0)
            break;
        parts++;
        lines_before += lines;
        events_before += events;
        sent += (off_t)(len - in.hdr);
        if (got == 0)
            break;
        drop_part(&in, len);
        if (show)
            progress(t0, events_before, sent + (off_t)in.hdr, total, 0);
    }
    if (show && rc == 0)
        progress(t0, events_before, total, total, 1);
    if (in.f != stdin)
        fclose(in.f);
    rc = output_close(&out, rc);
    free(c.key);
    sl_buf_free(&in.buf);
    sl_buf_free(&path);
    sl_buf_free(&resp);
    sl_buf_free(&header);
    return rc;
}

static int cmd_range(int argc, char **argv)
{
    struct opt opts[] = {{"--workspace", 1, NULL}, {"--feature-service", 1, NULL},
                         {"--start", 1, NULL}, {"--end", 1, NULL}, {"--format", 1, NULL},
                         {"--output", 1, NULL}, {"--page-size", 1, NULL}, {"--quiet", 0, NULL},
                         {"--url", 1, NULL}, {"--api-key-file", 1, NULL},
                         {"--help", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[1];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 0, &npos))
        return 2;
    if (optv(opts, "--help")) {
        printf("usage: sluice get-features-in-range --workspace W --feature-service FS\n"
               "       --start TIME --end TIME [--format csv|jsonl] [--output FILE]\n"
               "       [--page-size ROWS] [--quiet]\n\n"
               "For every entity in the offline store, the feature values online serving returned\n"
               "between --start and --end, as rows with _valid_from / _valid_to (one row per view,\n"
               "entity and interval; equal consecutive values merged). CSV is one table: every\n"
               "join key and feature column of the service, the cells a row's view lacks empty.\n\n"
               "The rows come in pages of about --page-size rows (default 100000), each written\n"
               "as it arrives, so that memory stays bounded whatever the store's size. On a\n"
               "terminal, the rows so far go to stderr; --quiet turns that off. --output is\n"
               "written whole or not at all.\n");
        return 0;
    }
    const char *ws = optv(opts, "--workspace"), *fs = optv(opts, "--feature-service");
    const char *st = optv(opts, "--start"), *en = optv(opts, "--end"), *outp = optv(opts, "--output");
    const char *fmt = optv(opts, "--format") ? optv(opts, "--format") : "jsonl";
    size_t page = 100000;
    if (!ws || !fs || !st || !en)
        return usage_error("get-features-in-range needs --workspace, --feature-service, --start and --end");
    if (strcmp(fmt, "csv") && strcmp(fmt, "jsonl"))
        return usage_error("formats are csv or jsonl");
    if (optv(opts, "--page-size") && parse_size(optv(opts, "--page-size"), &page) != 0)
        return usage_error("--page-size takes a count of rows");
    struct client c = {0};
    if (client_init(&c, opts))
        return 1;
    struct sl_buf path = SL_BUF_INIT, resp = SL_BUF_INIT, token = SL_BUF_INIT;
    struct output out;
    int rc = output_open(&out, outp), show = !optv(opts, "--quiet") && isatty(STDERR_FILENO);
    size_t rows = 0;
    for (int first = 1; rc == 0 && (first || token.len); first = 0) {
        sl_buf_reset(&path);
        sl_buf_puts(&path, "/api/v1/feature-service/get-features-in-range");
        query_arg(&path, "workspace_name", ws);
        query_arg(&path, "feature_service_name", fs);
        query_arg(&path, "start_time", st);
        query_arg(&path, "end_time", en);
        query_arg(&path, "format", fmt);
        sl_buf_printf(&path, "&page_size=%zu", page);
        if (token.len)
            query_arg(&path, "page_token", sl_buf_cstr(&token));
        sl_buf_reset(&token);
        sl_buf_reset(&resp);
        int status = 0;
        rc = http_call_hdr(&c, "POST", sl_buf_cstr(&path), "application/json", "", 0, &status,
                           &resp, "Sluice-Next-Page-Token", &token);
        if (rc == 0 && status != 200)
            rc = report(status, &resp);
        if (rc == 0)
            rc = output_write(&out, resp.p, resp.len);
        for (size_t i = 0; rc == 0 && i < resp.len; i++)
            rows += resp.p[i] == '\n';
        if (show && rc == 0)
            fprintf(stderr, "\r%zu lines%s", rows, token.len ? "   " : "\n");
    }
    rc = output_close(&out, rc);
    free(c.key);
    sl_buf_free(&path);
    sl_buf_free(&resp);
    sl_buf_free(&token);
    return rc;
}

/* ---- jobs ---- */

static void print_job_line(const cJSON *j)
{
    const char *k[] = {"id", "kind", "state", "workspace", "featureView", "rowsRead", "rowsWritten",
                       "rowsRejected", "keysDeleted", "offlineBytesDeleted"};
    const char *v[10];
    for (int i = 0; i < 10; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k[i]);
        v[i] = cJSON_IsString(x) ? x->valuestring : "";
    }
    if (strcmp(v[1], "delete") == 0)
        printf("%-16s  %-11s  %-9s  %s/%s  deleted %s online keys, %s offline bytes\n", v[0], v[1],
               v[2], v[3], v[4], v[8], v[9]);
    else
        printf("%-16s  %-11s  %-9s  %s/%s  read %s, written %s, rejected %s\n", v[0], v[1], v[2],
               v[3], v[4], v[5], v[6], v[7]);
}

static void print_jobs(const cJSON *o)
{
    const cJSON *j;
    cJSON_ArrayForEach(j, cJSON_GetObjectItemCaseSensitive(o, "jobs"))
        print_job_line(j);
}

static void print_job(const cJSON *o)
{
    char *text = cJSON_Print(o);
    if (text)
        printf("%s\n", text);
    free(text);
}

/* Polls the job until it ends, drawing a progress line on a terminal. */
static int follow_job(struct opt *opts, const char *id)
{
    struct client c = {0};
    char path[128];
    int tty = isatty(1), rc = 0;
    if (client_init(&c, opts))
        return 1;
    snprintf(path, sizeof(path), "/v1/jobs/%s", id);
    for (;;) {
        struct sl_buf resp = SL_BUF_INIT;
        int status = 0;
        rc = http_call(&c, "GET", path, NULL, &status, &resp);
        if (rc == 0 && status != 200)
            rc = report(status, &resp);
        cJSON *o = rc == 0 ? cJSON_Parse(resp.p) : NULL;
        sl_buf_free(&resp);
        if (!o) {
            rc = 1;
            break;
        }
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "state"));
        const char *read = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "rowsRead"));
        const char *wr = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "rowsWritten"));
        const char *rej = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "rowsRejected"));
        const char *keys = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "keysDeleted"));
        const char *bytes =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "offlineBytesDeleted"));
        int done = !state || (strcmp(state, "queued") && strcmp(state, "running"));
        if ((tty || done) && keys) /* a delete job */
            printf("%s%s: %s online keys, %s offline bytes deleted%s", tty ? "\r\033[K" : "",
                   state ? state : "?", keys, bytes ? bytes : "0", done || !tty ? "\n" : "");
        else if (tty || done)
            printf("%s%s: %s rows read, %s written, %s rejected%s", tty ? "\r\033[K" : "",
                   state ? state : "?", read ? read : "0", wr ? wr : "0", rej ? rej : "0",
                   done || !tty ? "\n" : "");
        fflush(stdout);
        if (done) {
            const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "error"));
            if (e)
                fprintf(stderr, "sluice: job failed: %s\n", e);
            rc = strcmp(state ? state : "", "succeeded") == 0 ? 0 : 1;
            cJSON_Delete(o);
            break;
        }
        cJSON_Delete(o);
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
    }
    free(c.key);
    return rc;
}

static int cmd_jobs(int argc, char **argv)
{
    struct opt opts[] = {{"--workspace", 1, NULL}, {"--feature-view", 1, NULL},
                         {"--follow", 0, NULL}, {"--url", 1, NULL}, {"--api-key-file", 1, NULL},
                         {"--help", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[2];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 2, &npos))
        return 2;
    if (optv(opts, "--help") || npos == 0) {
        printf("usage: sluice jobs list [--workspace W]\n"
               "       sluice jobs show ID [--follow]\n"
               "       sluice jobs cancel ID | retry ID\n"
               "       sluice jobs backfill --workspace W --feature-view V [--follow]\n\n"
               "Backfill jobs load a source's batch files into a view (started by apply for new\n"
               "or changed views); materialization jobs load new files on the view's\n"
               "batch_schedule. --follow shows progress until the job ends.\n");
        return npos == 0 && !optv(opts, "--help") ? 2 : 0;
    }
    char path[256];
    if (strcmp(pos[0], "list") == 0) {
        struct sl_buf p = SL_BUF_INIT;
        sl_buf_puts(&p, "/v1/jobs");
        if (optv(opts, "--workspace"))
            query_arg(&p, "workspace", optv(opts, "--workspace"));
        int rc = simple_call(opts, "GET", sl_buf_cstr(&p), NULL, 200, print_jobs);
        sl_buf_free(&p);
        return rc;
    }
    if (strcmp(pos[0], "backfill") == 0) {
        const char *ws = optv(opts, "--workspace"), *view = optv(opts, "--feature-view");
        if (!ws || !view)
            return usage_error("jobs backfill needs --workspace and --feature-view");
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "workspace", ws);
        cJSON_AddStringToObject(req, "feature_view", view);
        struct client c = {0};
        if (client_init(&c, opts)) {
            cJSON_Delete(req);
            return 1;
        }
        char *body = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
        struct sl_buf resp = SL_BUF_INIT;
        int status = 0, rc = http_call(&c, "POST", "/v1/jobs", body, &status, &resp);
        free(body);
        free(c.key);
        if (rc == 0 && status != 201)
            rc = report(status, &resp);
        cJSON *o = rc == 0 ? cJSON_Parse(resp.p) : NULL;
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
        char idc[17] = "";
        if (id)
            snprintf(idc, sizeof(idc), "%s", id);
        cJSON_Delete(o);
        sl_buf_free(&resp);
        if (rc || !*idc)
            return rc ? rc : 1;
        printf("Started backfill job %s.\n", idc);
        return optv(opts, "--follow") ? follow_job(opts, idc) : 0;
    }
    if (npos < 2)
        return usage_error("jobs %s needs a job id", pos[0]);
    if (strcmp(pos[0], "show") == 0) {
        if (optv(opts, "--follow"))
            return follow_job(opts, pos[1]);
        snprintf(path, sizeof(path), "/v1/jobs/%s", pos[1]);
        return simple_call(opts, "GET", path, NULL, 200, print_job);
    }
    if (strcmp(pos[0], "cancel") == 0 || strcmp(pos[0], "retry") == 0) {
        snprintf(path, sizeof(path), "/v1/jobs/%s/%s", pos[1], pos[0]);
        return simple_call(opts, "POST", path, NULL, 200, print_job_line);
    }
    return usage_error("unknown jobs command `%s`", pos[0]);
}

static void print_backup(const cJSON *o)
{
    const char *f[] = {"to", "onlineKeys", "offlineDirectories", "offlineBytes"};
    const char *v[4];
    for (int i = 0; i < 4; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, f[i]);
        v[i] = cJSON_IsString(x) ? x->valuestring : "?";
    }
    printf("Backed up to %s: %s online keys, %s offline directories, %s offline bytes.\n"
           "Serve it with: sluice serve --data-dir %s\n", v[0], v[1], v[2], v[3], v[0]);
}

static int cmd_backup(int argc, char **argv)
{
    struct opt opts[] = {{"--to", 1, NULL}, {"--url", 1, NULL}, {"--api-key-file", 1, NULL},
                         {"--help", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[1];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 0, &npos))
        return 2;
    if (optv(opts, "--help")) {
        printf("usage: sluice backup --to DIR\n\n"
               "Writes a consistent copy of the server's data dir into DIR (on the server's\n"
               "machine; a relative path is taken from the current directory; new or empty)\n"
               "while the server keeps running: every write acknowledged before the backup\n"
               "began, nothing after. Restore with sluice serve --data-dir DIR. Needs the\n"
               "admin role.\n");
        return 0;
    }
    const char *to = optv(opts, "--to");
    if (!to)
        return usage_error("backup needs --to DIR");
    char abs[4096];
    if (to[0] != '/' && strlen(to) < sizeof(abs) / 2 && getcwd(abs, sizeof(abs) / 2)) {
        strcat(abs, "/");
        strcat(abs, to);
        to = abs;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "to", to);
    int rc = simple_call(opts, "POST", "/v1/backup", req, 200, print_backup);
    cJSON_Delete(req);
    return rc;
}

void sl_cli_usage(void)
{
    printf("usage: sluice <command> [options]\n\n"
           "Commands:\n"
           "  serve            run the server (sluice serve --help for its settings)\n"
           "  plan             show what applying a feature repository would change\n"
           "                   (--offline: validate it without a server)\n"
           "  apply            apply a feature repository to a workspace\n"
           "  test-run         the rows a repository's views get from records (no server)\n"
           "  workspace        create, list or delete workspaces\n"
           "  service-account  create, list, delete service accounts; rotate their API keys\n"
           "  access-control   assign, remove and show workspace roles\n"
           "  get-features-for-events  point-in-time training data from the offline store\n"
           "  get-features-in-range    feature values with their validity intervals\n"
           "  jobs             list, follow, cancel and retry backfill and materialization jobs\n"
           "  plugins          list the plugins the server loaded (and the built-ins)\n\n"
           "  backup           write a consistent copy of the data dir while the server runs\n\n"
           "Client commands reach the server at $SLUICE_URL (default http://127.0.0.1:8080,\n"
           "or --url) with the API key in $SLUICE_API_KEY (or --api-key-file F, or\n"
           "$SLUICE_API_KEY_FILE, or $TECTON_API_KEY, in that order of precedence). For an\n"
           "https:// URL the server's certificate must be trusted by the system or by the CA\n"
           "file in $SLUICE_CA_FILE.\n"
           "`sluice <command> --help` describes each command; `sluice --version` prints the version.\n");
}

int sl_cli_main(int argc, char **argv)
{
    const char *cmd = argv[0];
    if (strcmp(cmd, "test-run") == 0)
        return cmd_test_run(argc - 1, argv + 1);
    if (strcmp(cmd, "plan") == 0)
        return cmd_plan_apply(argc - 1, argv + 1, 0);
    if (strcmp(cmd, "apply") == 0)
        return cmd_plan_apply(argc - 1, argv + 1, 1);
    if (strcmp(cmd, "workspace") == 0)
        return cmd_workspace(argc - 1, argv + 1);
    if (strcmp(cmd, "service-account") == 0)
        return cmd_service_account(argc - 1, argv + 1);
    if (strcmp(cmd, "access-control") == 0)
        return cmd_access_control(argc - 1, argv + 1);
    if (strcmp(cmd, "get-features-for-events") == 0)
        return cmd_pit(argc - 1, argv + 1);
    if (strcmp(cmd, "jobs") == 0)
        return cmd_jobs(argc - 1, argv + 1);
    if (strcmp(cmd, "get-features-in-range") == 0)
        return cmd_range(argc - 1, argv + 1);
    if (strcmp(cmd, "plugins") == 0)
        return cmd_plugins(argc - 1, argv + 1);
    if (strcmp(cmd, "backup") == 0)
        return cmd_backup(argc - 1, argv + 1);
    return usage_error("unknown command `%s`", cmd);
}
