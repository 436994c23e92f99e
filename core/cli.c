/* `sluice plan|apply|workspace|service-account|access-control`: a blocking HTTP/1.1 client
 * for the admin API. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "buf.h"

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
    const char *kf = optv(opts, "--api-key-file");
    const char *env = getenv("SLUICE_API_KEY");
    if (!kf && !env)
        kf = getenv("SLUICE_API_KEY_FILE");
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

static int http_call_raw(struct client *c, const char *method, const char *path,
                         const char *ctype, const char *body, size_t blen, int *status,
                         struct sl_buf *resp)
{
    char host[256], port[16] = "80";
    const char *u = c->url;
    if (strncmp(u, "http://", 7) != 0) {
        fprintf(stderr, "sluice: only http:// URLs are supported (%s)\n", u);
        return 1;
    }
    u += 7;
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
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "sluice: cannot connect to %s: %s (is `sluice serve` running?)\n",
                c->url, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return 1;
    }
    freeaddrinfo(ai);
    struct sl_buf req = SL_BUF_INIT;
    sl_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n", method, path,
                  host, port);
    if (c->key)
        sl_buf_printf(&req, "Authorization: Sluice-key %s\r\n", c->key);
    sl_buf_printf(&req, "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n", ctype, blen);
    sl_buf_append(&req, body, blen);
    size_t off = 0;
    while (off < req.len) {
        ssize_t w = write(fd, req.p + off, req.len - off);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            break;
        }
        off += (size_t)w;
    }
    sl_buf_free(&req);
    struct sl_buf raw = SL_BUF_INIT;
    char chunk[65536];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        sl_buf_append(&raw, chunk, (size_t)r);
    }
    close(fd);
    const char *p = sl_buf_cstr(&raw);
    const char *hdr_end = p ? strstr(p, "\r\n\r\n") : NULL;
    if (!p || sscanf(p, "HTTP/1.%*d %d", status) != 1 || !hdr_end) {
        fprintf(stderr, "sluice: malformed response from %s\n", c->url);
        sl_buf_free(&raw);
        return 1;
    }
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

static void print_plan(const char *ws, const cJSON *changes)
{
    int n = cJSON_GetArraySize(changes);
    if (n == 0) {
        printf("No changes to workspace `%s`.\n", ws);
        return;
    }
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
    }
}

static int cmd_plan_apply(int argc, char **argv, int apply)
{
    struct opt opts[] = {{"--workspace", 1, NULL}, {"--url", 1, NULL}, {"--api-key-file", 1, NULL},
                         {"--yes", 0, NULL}, {"--help", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[1];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 1, &npos))
        return 2;
    if (optv(opts, "--help")) {
        printf("usage: sluice %s --workspace W [DIR]%s\n\n"
               "%s the feature repository in DIR (default: the current directory): every *.lua\n"
               "file below it. Options: --url URL (or $SLUICE_URL), --api-key-file F (or\n"
               "$SLUICE_API_KEY)%s.\n",
               apply ? "apply" : "plan", apply ? " [--yes]" : "",
               apply ? "Validates and applies" : "Validates and shows what apply would change in",
               apply ? "; --yes skips the confirmation (never asked when stdin is not a terminal)" : "");
        return 0;
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
        if (isatty(0) && !optv(opts, "--yes")) {
            char line[16] = "";
            printf("Apply these changes? [y/N] ");
            fflush(stdout);
            go = fgets(line, sizeof(line), stdin) && (line[0] == 'y' || line[0] == 'Y');
        }
        if (!go) {
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

static void print_ok(const cJSON *o)
{
    (void)o;
    printf("Successfully updated role.\n");
}

static void print_account(const cJSON *o)
{
    printf("Save this API Key - you will not be able to get it again.\n");
    printf("API Key: %s\n", cJSON_GetObjectItemCaseSensitive(o, "apiKey")->valuestring);
    printf("Service Account ID: %s\n", cJSON_GetObjectItemCaseSensitive(o, "id")->valuestring);
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
        int rc = simple_call(opts, "DELETE", path, NULL, 200, NULL);
        if (rc == 0)
            printf("Deleted workspace `%s`.\n", pos[1]);
        return rc;
    }
    return usage_error("unknown workspace command `%s`", pos[0]);
}

static int cmd_service_account(int argc, char **argv)
{
    struct opt opts[] = {{"--name", 1, NULL}, {"--description", 1, NULL}, {"--url", 1, NULL},
                         {"--api-key-file", 1, NULL}, {"--help", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[1];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 1, &npos))
        return 2;
    if (optv(opts, "--help") || npos == 0) {
        printf("usage: sluice service-account create --name N [--description D]\n");
        return npos == 0 && !optv(opts, "--help") ? 2 : 0;
    }
    if (strcmp(pos[0], "create") != 0)
        return usage_error("unknown service-account command `%s`", pos[0]);
    if (!optv(opts, "--name"))
        return usage_error("%s needs --name", "service-account create");
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "name", optv(opts, "--name"));
    cJSON_AddStringToObject(req, "description",
                            optv(opts, "--description") ? optv(opts, "--description") : "");
    int rc = simple_call(opts, "POST", "/v1/service-accounts", req, 201, print_account);
    cJSON_Delete(req);
    return rc;
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
        printf("usage: sluice access-control assign-role|unassign-role --role R --workspace W "
               "--service-account ID\n\nRoles: owner, editor, consumer, operator, viewer.\n");
        return npos == 0 && !optv(opts, "--help") ? 2 : 0;
    }
    int grant = strcmp(pos[0], "assign-role") == 0;
    if (!grant && strcmp(pos[0], "unassign-role") != 0)
        return usage_error("unknown access-control command `%s`", pos[0]);
    const char *ws = optv(opts, "--workspace"), *acc = optv(opts, "--service-account");
    const char *role = optv(opts, "--role");
    if (!ws || !acc || (grant && !role))
        return usage_error("%s needs --role, --workspace and --service-account", pos[0]);
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "service_account", acc);
    if (role)
        cJSON_AddStringToObject(req, "role", role);
    char path[512];
    snprintf(path, sizeof(path), "/v1/workspaces/%s/roles", ws);
    int rc = simple_call(opts, grant ? "POST" : "DELETE", path, req, 200, print_ok);
    cJSON_Delete(req);
    return rc;
}

/* Percent-encodes s for a query string. */
static void query_arg(struct sl_buf *b, const char *key, const char *s)
{
    sl_buf_printf(b, "%s%s=", b->len && strchr(b->p, '?') ? "&" : "?", key);
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

static const char *ext_format(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    if (n > 4 && strcmp(path + n - 4, ".csv") == 0)
        return "csv";
    return "jsonl";
}

static int cmd_pit(int argc, char **argv)
{
    struct opt opts[] = {{"--workspace", 1, NULL}, {"--feature-service", 1, NULL},
                         {"--events", 1, NULL}, {"--timestamp-key", 1, NULL},
                         {"--format", 1, NULL}, {"--input-format", 1, NULL},
                         {"--output", 1, NULL}, {"--url", 1, NULL}, {"--api-key-file", 1, NULL},
                         {"--help", 0, NULL}, {NULL, 0, NULL}};
    const char *pos[1];
    int npos;
    if (parse_opts(argc, argv, opts, pos, 0, &npos))
        return 2;
    if (optv(opts, "--help")) {
        printf("usage: sluice get-features-for-events --workspace W --feature-service FS\n"
               "       [--events FILE] [--timestamp-key ts] [--format csv|jsonl]\n"
               "       [--input-format csv|jsonl] [--output FILE]\n\n"
               "Training data: for each event (join keys, a timestamp, any other columns), the\n"
               "features as online serving returned them at the event's time. Events are read\n"
               "from FILE (default stdin; format from its extension or --input-format) and the\n"
               "result written to --output (default stdout) as JSON Lines (default) or CSV, one\n"
               "row per event in input order, feature columns named <view>__<feature>.\n");
        return 0;
    }
    const char *ws = optv(opts, "--workspace"), *fs = optv(opts, "--feature-service");
    if (!ws || !fs)
        return usage_error("get-features-for-events needs --workspace and --feature-service");
    const char *in = optv(opts, "--events");
    const char *infmt = optv(opts, "--input-format");
    const char *outfmt = optv(opts, "--format");
    if (!infmt)
        infmt = ext_format(in);
    if (!outfmt)
        outfmt = "jsonl";
    if ((strcmp(infmt, "csv") && strcmp(infmt, "jsonl")) || (strcmp(outfmt, "csv") && strcmp(outfmt, "jsonl")))
        return usage_error("formats are csv or jsonl");
    struct client c = {0};
    if (client_init(&c, opts))
        return 1;
    size_t len = 0;
    char *events = NULL;
    if (in) {
        events = read_file(in, &len);
    } else {
        struct sl_buf b = SL_BUF_INIT;
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
            sl_buf_append(&b, chunk, n);
        events = b.oom ? NULL : sl_buf_detach(&b, &len);
        if (!events && !b.oom)
            events = strdup("");
    }
    if (!events) {
        fprintf(stderr, "sluice: cannot read the events %s: %s\n", in ? in : "from stdin",
                strerror(errno));
        free(c.key);
        return 1;
    }
    struct sl_buf path = SL_BUF_INIT;
    sl_buf_puts(&path, "/api/v1/feature-service/get-features-for-events");
    query_arg(&path, "workspace_name", ws);
    query_arg(&path, "feature_service_name", fs);
    query_arg(&path, "input_format", infmt);
    query_arg(&path, "format", outfmt);
    if (optv(opts, "--timestamp-key"))
        query_arg(&path, "timestamp_key", optv(opts, "--timestamp-key"));
    struct sl_buf resp = SL_BUF_INIT;
    int status = 0;
    int rc = http_call_raw(&c, "POST", sl_buf_cstr(&path),
                           strcmp(infmt, "csv") == 0 ? "text/csv" : "application/x-ndjson", events,
                           len, &status, &resp);
    if (rc == 0 && status != 200)
        rc = report(status, &resp);
    if (rc == 0) {
        const char *outp = optv(opts, "--output");
        FILE *f = outp ? fopen(outp, "wb") : stdout;
        if (!f || fwrite(resp.p, 1, resp.len, f) != resp.len || (outp && fclose(f) != 0)) {
            fprintf(stderr, "sluice: cannot write %s: %s\n", outp ? outp : "stdout", strerror(errno));
            rc = 1;
        }
    }
    free(events);
    free(c.key);
    sl_buf_free(&path);
    sl_buf_free(&resp);
    return rc;
}

void sl_cli_usage(void)
{
    printf("usage: sluice <command> [options]\n\n"
           "Commands:\n"
           "  serve            run the server (sluice serve --help for its settings)\n"
           "  plan             show what applying a feature repository would change\n"
           "  apply            apply a feature repository to a workspace\n"
           "  workspace        create, list or delete workspaces\n"
           "  service-account  create service accounts and their API keys\n"
           "  access-control   assign or remove workspace roles\n"
           "  get-features-for-events  point-in-time training data from the offline store\n\n"
           "Client commands reach the server at $SLUICE_URL (default http://127.0.0.1:8080,\n"
           "or --url) with the API key in $SLUICE_API_KEY (or --api-key-file F).\n"
           "`sluice <command> --help` describes each command; `sluice --version` prints the version.\n");
}

int sl_cli_main(int argc, char **argv)
{
    const char *cmd = argv[0];
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
    return usage_error("unknown command `%s`", cmd);
}
