/* Service accounts and roles. Keys are 192 random bits, printed once; the store keeps only
 * HMAC-SHA-256(secret, key). Requests are checked against an in-memory table loaded at
 * start; every change is persisted first and then applied to the table, under one mutex so
 * the two never disagree. */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "buf.h"
#include "error.h"
#include "log.h"
#include "store.h"
#include "timeutil.h"

static const char ACCOUNT_PREFIX[] = {SL_KEY_ACCOUNT, 0};
static const char ROLE_PREFIX[] = {SL_KEY_ROLE, 0};
#define DIGEST_LEN 32
#define KEY_RAW 24                 /* random bytes in a key */
#define KEY_LEN (3 + 2 * KEY_RAW)  /* "sk_" + hex */
#define MAX_NAME 128
#define MAX_DESCRIPTION 1024
#define MAX_WS 128

struct account {
    char id[SL_AUTH_ID_LEN + 1];
    char *name;
    char *description;
    unsigned char digest[DIGEST_LEN];
    int admin;
    int key_file;   /* its key is the one in <data-dir>/admin.key */
    int64_t created; /* seconds since the epoch */
};

struct binding {
    char account[SL_AUTH_ID_LEN + 1];
    char *ws;
    enum sl_role role;
};

struct sl_auth {
    struct sl_store *store;
    char *data_dir;
    int disabled;
    unsigned char secret[32];
    pthread_mutex_t write_mu; /* one change at a time: persist, then update the table */
    pthread_rwlock_t lock;    /* the table */
    size_t naccounts, nbindings, cap_accounts, cap_bindings;
    struct account *accounts;
    struct binding *bindings;
    uint64_t nonce;           /* tells this instance's cached digests from another's */
};

/* The one table of who may do what: allowed[action][role]. Admins may do everything.
 * README.md's "Access control" section shows the same table. */
static const unsigned char allowed[][SL_ROLE_OWNER + 1] = {
    /*                     none viewer consumer operator editor owner */
    [SL_ACT_INGEST] =     {0,   0,     0,       0,       1,     1},
    [SL_ACT_INGEST_DRY] = {0,   1,     1,       1,       1,     1},
    [SL_ACT_READ] =       {0,   0,     1,       1,       1,     1},
    [SL_ACT_APPLY] =      {0,   0,     0,       0,       1,     1},
    [SL_ACT_PLAN] =       {0,   1,     1,       1,       1,     1},
    [SL_ACT_JOBS] =       {0,   0,     0,       1,       1,     1},
    [SL_ACT_MANAGE] =     {0,   0,     0,       0,       0,     1},
    [SL_ACT_ADMIN] =      {0,   0,     0,       0,       0,     0},
};

static const char *const role_names[] = {"none", "viewer", "consumer", "operator", "editor",
                                         "owner"};

enum sl_role sl_role_parse(const char *s)
{
    for (int i = 1; s && i <= SL_ROLE_OWNER; i++)
        if (strcmp(s, role_names[i]) == 0)
            return (enum sl_role)i;
    return SL_ROLE_NONE;
}

const char *sl_role_name(enum sl_role r)
{
    return r <= SL_ROLE_OWNER ? role_names[r] : "none";
}

/* ---- audit ---- */

void sl_auth_audit(const struct sl_principal *p, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *s = msg; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
    sl_info("audit: account=%s %s", p && p->id[0] ? p->id : "-", msg);
}

void sl_auth_audit_denied(const struct sl_principal *p, int status, const char *path,
                          const char *ws, const char *reason)
{
    sl_auth_audit(p, "denied status=%d path=%s%s%s reason=\"%s\"", status, path ? path : "",
                  ws ? " workspace=" : "", ws ? ws : "", reason ? reason : "");
}

/* ---- helpers ---- */

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

static int unhex(const char *s, unsigned char *out, size_t n)
{
    if (!s || strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    return 0;
}

static int valid_id(const char *id)
{
    if (!id || strlen(id) != SL_AUTH_ID_LEN)
        return 0;
    for (const char *s = id; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

static void digest(const struct sl_auth *a, const char *key, size_t len, unsigned char *out)
{
    unsigned int n = DIGEST_LEN;
    HMAC(EVP_sha256(), a->secret, sizeof(a->secret), (const unsigned char *)key, len, out, &n);
}

/* A fresh key (KEY_LEN chars + NUL in key) and its digest. Returns 0 or SL_EIO. */
static int new_key(const struct sl_auth *a, char *key, unsigned char *dg, struct sl_error *err)
{
    unsigned char raw[KEY_RAW];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return sl_error_set(err, SL_EIO, "no randomness for a new key");
    memcpy(key, "sk_", 3);
    hex(raw, sizeof(raw), key + 3);
    OPENSSL_cleanse(raw, sizeof(raw));
    digest(a, key, KEY_LEN, dg);
    return 0;
}

/* Grows *arr to hold n elements of size sz. Returns 0 or SL_ENOMEM. Table write lock held. */
static int reserve(void **arr, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < n)
        ncap *= 2;
    void *g = realloc(*arr, ncap * sz);
    if (!g)
        return SL_ENOMEM;
    *arr = g;
    *cap = ncap;
    return 0;
}

static int reserve_accounts(struct sl_auth *a, size_t n)
{
    pthread_rwlock_wrlock(&a->lock);
    int rc = reserve((void **)&a->accounts, &a->cap_accounts, n, sizeof(*a->accounts));
    pthread_rwlock_unlock(&a->lock);
    return rc;
}

static int reserve_bindings(struct sl_auth *a, size_t n)
{
    pthread_rwlock_wrlock(&a->lock);
    int rc = reserve((void **)&a->bindings, &a->cap_bindings, n, sizeof(*a->bindings));
    pthread_rwlock_unlock(&a->lock);
    return rc;
}

/* Index of account id, or -1. Table lock held. */
static long find_account(const struct sl_auth *a, const char *id)
{
    for (size_t i = 0; i < a->naccounts; i++)
        if (strcmp(a->accounts[i].id, id) == 0)
            return (long)i;
    return -1;
}

static long find_binding(const struct sl_auth *a, const char *account, const char *ws)
{
    for (size_t i = 0; i < a->nbindings; i++)
        if (strcmp(a->bindings[i].account, account) == 0 && strcmp(a->bindings[i].ws, ws) == 0)
            return (long)i;
    return -1;
}

static void free_account(struct account *acc)
{
    free(acc->name);
    free(acc->description);
}

static void account_key(const char *id, char *k)
{
    k[0] = SL_KEY_ACCOUNT;
    memcpy(k + 1, id, SL_AUTH_ID_LEN);
}

/* Role keys: 'B' account '/' workspace -> role name. */
static void binding_key(struct sl_buf *k, const char *account, const char *ws)
{
    sl_buf_putc(k, SL_KEY_ROLE);
    sl_buf_puts(k, account);
    sl_buf_putc(k, '/');
    sl_buf_puts(k, ws);
}

/* The stored record of acc (caller frees), or NULL when out of memory. */
static char *account_record(const struct account *acc)
{
    char dg[2 * DIGEST_LEN + 1];
    hex(acc->digest, DIGEST_LEN, dg);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", acc->id);
    cJSON_AddStringToObject(o, "name", acc->name);
    cJSON_AddStringToObject(o, "description", acc->description);
    cJSON_AddStringToObject(o, "digest", dg);
    cJSON_AddBoolToObject(o, "admin", acc->admin);
    cJSON_AddBoolToObject(o, "keyFile", acc->key_file);
    cJSON_AddNumberToObject(o, "created", (double)acc->created);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static int put_account(struct sl_auth *a, const struct account *acc, struct sl_error *err)
{
    char k[1 + SL_AUTH_ID_LEN];
    char *text = account_record(acc);
    if (!text)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    struct sl_batch b = {0};
    account_key(acc->id, k);
    sl_batch_put(&b, k, sizeof(k), text, strlen(text));
    int rc = b.ops.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                       : sl_store_write(a->store, &b, 1, err);
    sl_batch_free(&b);
    free(text);
    return rc;
}

/* ---- files in the data dir ---- */

static int load_secret(struct sl_auth *a, const char *dir, struct sl_error *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/secret", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, a->secret, sizeof(a->secret));
        close(fd);
        if (n != (ssize_t)sizeof(a->secret))
            return sl_error_set(err, SL_ECORRUPT, "%s: too short", path);
        return 0;
    }
    if (errno != ENOENT)
        return sl_error_set(err, SL_EIO, "%s: %s", path, strerror(errno));
    if (RAND_bytes(a->secret, sizeof(a->secret)) != 1)
        return sl_error_set(err, SL_EIO, "no randomness for the server secret");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "%s: %s", path, strerror(errno));
    ssize_t n = write(fd, a->secret, sizeof(a->secret));
    int rc = n == (ssize_t)sizeof(a->secret) && fsync(fd) == 0 ? 0 : -1;
    int e = errno;
    close(fd);
    if (rc != 0)
        return sl_error_set(err, SL_EIO, "%s: %s", path, strerror(e));
    return 0;
}

/* Writes key to <dir>/admin.key (0600) through a temporary file and a rename. */
static int write_key_file(const char *dir, const char *key, struct sl_error *err)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/admin.key", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "%s: %s", tmp, strerror(errno));
    size_t len = strlen(key);
    int ok = fchmod(fd, 0600) == 0 && write(fd, key, len) == (ssize_t)len &&
             write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            e = errno;
        unlink(tmp);
        return sl_error_set(err, SL_EIO, "%s: %s", path, strerror(e));
    }
    return 0;
}

/* ---- loading ---- */

static int create_account(struct sl_auth *a, const char *name, const char *description,
                          int admin, int key_file, char *id, struct sl_buf *out,
                          struct sl_error *err);

static int load_account(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct sl_auth *a = arg;
    cJSON *o = cJSON_ParseWithLength(v, vl);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(o, "description");
    const cJSON *dg = cJSON_GetObjectItemCaseSensitive(o, "digest");
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(o, "created");
    struct account acc = {0};
    if (!cJSON_IsString(id) || !valid_id(id->valuestring) || !cJSON_IsString(name) ||
        !cJSON_IsString(dg) || unhex(dg->valuestring, acc.digest, DIGEST_LEN) != 0) {
        sl_err("auth: skipping unreadable account record");
        cJSON_Delete(o);
        return 0;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "revoked"))) {
        cJSON_Delete(o); /* an older format's revoked account: its key never authenticates */
        return 0;
    }
    memcpy(acc.id, id->valuestring, SL_AUTH_ID_LEN + 1);
    acc.name = strdup(name->valuestring);
    acc.description = strdup(cJSON_IsString(desc) ? desc->valuestring : "");
    acc.admin = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "admin"));
    acc.key_file = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "keyFile"));
    acc.created = cJSON_IsNumber(created) ? (int64_t)created->valuedouble : 0;
    cJSON_Delete(o);
    if (!acc.name || !acc.description ||
        reserve((void **)&a->accounts, &a->cap_accounts, a->naccounts + 1, sizeof(acc)) != 0) {
        free_account(&acc);
        return SL_ENOMEM;
    }
    a->accounts[a->naccounts++] = acc;
    return 0;
}

static int load_binding(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct sl_auth *a = arg;
    if (kl < 1 + SL_AUTH_ID_LEN + 2 || k[1 + SL_AUTH_ID_LEN] != '/')
        return 0;
    char role[32];
    size_t wl = kl - SL_AUTH_ID_LEN - 2;
    if (wl > MAX_WS || vl >= sizeof(role))
        return 0;
    memcpy(role, v, vl);
    role[vl] = 0;
    struct binding b = {.role = sl_role_parse(role)};
    memcpy(b.account, k + 1, SL_AUTH_ID_LEN);
    b.account[SL_AUTH_ID_LEN] = 0;
    if (b.role == SL_ROLE_NONE)
        return 0;
    b.ws = strndup(k + SL_AUTH_ID_LEN + 2, wl);
    if (!b.ws ||
        reserve((void **)&a->bindings, &a->cap_bindings, a->nbindings + 1, sizeof(b)) != 0) {
        free(b.ws);
        return SL_ENOMEM;
    }
    a->bindings[a->nbindings++] = b;
    return 0;
}

struct sl_auth *sl_auth_open(struct sl_store *store, const char *data_dir, int disabled,
                             struct sl_error *err)
{
    struct sl_auth *a = calloc(1, sizeof(*a));
    if (!a) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    a->store = store;
    a->disabled = disabled;
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->write_mu, NULL);
    a->data_dir = strdup(data_dir);
    if (!a->data_dir) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    if (RAND_bytes((unsigned char *)&a->nonce, sizeof(a->nonce)) != 1) {
        sl_error_set(err, SL_EIO, "no randomness");
        goto fail;
    }
    a->nonce |= 1; /* never 0, the value of an empty cache slot */
    if (load_secret(a, data_dir, err) != 0)
        goto fail;
    if (sl_store_scan(store, ACCOUNT_PREFIX, 1, load_account, a, err) < 0 ||
        sl_store_scan(store, ROLE_PREFIX, 1, load_binding, a, err) < 0)
        goto fail;
    int have_admin = 0;
    for (size_t i = 0; i < a->naccounts; i++)
        have_admin |= a->accounts[i].admin;
    if (!have_admin) {
        if (create_account(a, "admin", "Created at first start", 1, 1, NULL, NULL, err) != 0)
            goto fail;
        sl_info("auth: wrote the admin key to %s/admin.key", data_dir);
    }
    return a;
fail:
    sl_auth_close(a);
    return NULL;
}

void sl_auth_close(struct sl_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->naccounts; i++)
        free_account(&a->accounts[i]);
    for (size_t i = 0; i < a->nbindings; i++)
        free(a->bindings[i].ws);
    free(a->accounts);
    free(a->bindings);
    free(a->data_dir);
    OPENSSL_cleanse(a->secret, sizeof(a->secret));
    pthread_rwlock_destroy(&a->lock);
    pthread_mutex_destroy(&a->write_mu);
    free(a);
}

/* ---- checks ---- */

/* A per-thread cache of key → digest: the HMAC is most of an authenticated request's cost.
 * Only the digest is cached, never the verdict: every request still looks the digest up
 * among the live accounts, so a deleted or rotated key fails on its next use. Keys are
 * compared in constant time over a fixed width. */
#define KEY_CACHE 8
#define KEY_MAX 96
static __thread struct {
    uint64_t owner; /* the sl_auth's nonce: digests depend on its secret */
    unsigned char key[KEY_MAX];
    size_t len;
    unsigned char digest[DIGEST_LEN];
} key_cache[KEY_CACHE];
static __thread unsigned key_cache_next;

static int cached_digest(const struct sl_auth *a, const char *key, size_t len, unsigned char *d)
{
    unsigned char k[KEY_MAX] = {0};
    if (len == 0 || len > KEY_MAX)
        return 0;
    memcpy(k, key, len);
    for (int i = 0; i < KEY_CACHE; i++) {
        if (key_cache[i].owner == a->nonce && key_cache[i].len == len &&
            CRYPTO_memcmp(key_cache[i].key, k, KEY_MAX) == 0) {
            memcpy(d, key_cache[i].digest, DIGEST_LEN);
            return 1;
        }
    }
    return 0;
}

static void remember_digest(const struct sl_auth *a, const char *key, size_t len,
                            const unsigned char *d)
{
    if (len == 0 || len > KEY_MAX)
        return;
    unsigned i = key_cache_next++ % KEY_CACHE;
    memset(key_cache[i].key, 0, KEY_MAX);
    memcpy(key_cache[i].key, key, len);
    key_cache[i].len = len;
    key_cache[i].owner = a->nonce;
    memcpy(key_cache[i].digest, d, DIGEST_LEN);
}

int sl_auth_check(struct sl_auth *a, const char *header, struct sl_principal *p,
                  struct sl_error *err)
{
    memset(p, 0, sizeof(*p));
    if (a->disabled) {
        p->admin = 1;
        snprintf(p->id, sizeof(p->id), "anonymous");
        return 0;
    }
    if (!header)
        return sl_error_set(err, SL_EAUTH, "missing Authorization header");
    const char *key = NULL;
    if (strncmp(header, "Sluice-key ", 11) == 0)
        key = header + 11;
    else if (strncmp(header, "Tecton-key ", 11) == 0)
        key = header + 11;
    if (!key)
        return sl_error_set(err, SL_EAUTH,
                            "Authorization header must be `Sluice-key <key>` or `Tecton-key <key>`");
    while (*key == ' ')
        key++;
    size_t len = strlen(key);
    while (len && (key[len - 1] == ' ' || key[len - 1] == '\r'))
        len--;
    unsigned char d[DIGEST_LEN];
    if (!cached_digest(a, key, len, d)) {
        digest(a, key, len, d);
        remember_digest(a, key, len, d);
    }
    int found = 0;
    pthread_rwlock_rdlock(&a->lock);
    for (size_t i = 0; i < a->naccounts; i++) {
        /* every account is compared in full, so timing does not depend on which matched */
        int eq = CRYPTO_memcmp(d, a->accounts[i].digest, DIGEST_LEN) == 0;
        if (eq && !found) {
            found = 1;
            memcpy(p->id, a->accounts[i].id, sizeof(p->id));
            p->admin = a->accounts[i].admin;
        }
    }
    pthread_rwlock_unlock(&a->lock);
    if (!found)
        return sl_error_set(err, SL_EAUTH, "invalid API key");
    return 0;
}

static enum sl_role role_of(struct sl_auth *a, const char *account, const char *ws)
{
    enum sl_role r = SL_ROLE_NONE;
    if (!ws)
        return r;
    pthread_rwlock_rdlock(&a->lock);
    long i = find_binding(a, account, ws);
    if (i >= 0)
        r = a->bindings[i].role;
    pthread_rwlock_unlock(&a->lock);
    return r;
}

int sl_auth_allowed(struct sl_auth *a, const struct sl_principal *p, const char *ws,
                    enum sl_action act)
{
    if (p->admin)
        return 1;
    return allowed[act][role_of(a, p->id, ws)];
}

int sl_auth_any_role(struct sl_auth *a, const struct sl_principal *p, const char *ws)
{
    return p->admin || role_of(a, p->id, ws) != SL_ROLE_NONE;
}

/* ---- changes ---- */

static void reply_key(struct sl_buf *out, const struct account *acc, const char *key, int full)
{
    sl_buf_puts(out, "{\"id\":\"");
    sl_buf_puts(out, acc->id);
    sl_buf_putc(out, '"');
    if (full) {
        sl_buf_puts(out, ",\"name\":");
        sl_buf_json_str(out, acc->name, strlen(acc->name));
        sl_buf_puts(out, ",\"description\":");
        sl_buf_json_str(out, acc->description, strlen(acc->description));
        sl_buf_printf(out, ",\"admin\":%s", acc->admin ? "true" : "false");
    }
    sl_buf_puts(out, ",\"apiKey\":\"");
    sl_buf_puts(out, key);
    sl_buf_puts(out, "\"}");
}

/* Creates an account. With key_file, its key is written to admin.key before the account is
 * stored, so a failed start never leaves an admin whose key nobody has. id, out may be
 * NULL. */
static int create_account(struct sl_auth *a, const char *name, const char *description,
                          int admin, int key_file, char *id, struct sl_buf *out,
                          struct sl_error *err)
{
    unsigned char idraw[SL_AUTH_ID_LEN / 2];
    char key[KEY_LEN + 1];
    if (!description)
        description = "";
    if (!name || !*name || strlen(name) > MAX_NAME)
        return sl_error_set(err, SL_EINVAL, "a service account needs a name of 1-%d bytes",
                            MAX_NAME);
    if (strlen(description) > MAX_DESCRIPTION)
        return sl_error_set(err, SL_EINVAL, "a description is at most %d bytes",
                            MAX_DESCRIPTION);
    struct account acc = {.admin = admin, .key_file = key_file,
                          .created = sl_now_ns() / SL_NS_PER_SEC};
    if (RAND_bytes(idraw, sizeof(idraw)) != 1)
        return sl_error_set(err, SL_EIO, "no randomness for a new account id");
    hex(idraw, sizeof(idraw), acc.id);
    int rc = new_key(a, key, acc.digest, err);
    if (rc != 0)
        return rc;
    acc.name = strdup(name);
    acc.description = strdup(description);
    pthread_mutex_lock(&a->write_mu);
    if (!acc.name || !acc.description || reserve_accounts(a, a->naccounts + 1) != 0) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    if (key_file && (rc = write_key_file(a->data_dir, key, err)) != 0)
        goto out;
    rc = put_account(a, &acc, err);
    if (rc != 0)
        goto out;
    pthread_rwlock_wrlock(&a->lock);
    a->accounts[a->naccounts++] = acc; /* reserved above */
    pthread_rwlock_unlock(&a->lock);
    if (out)
        reply_key(out, &acc, key, 1);
    if (id)
        memcpy(id, acc.id, sizeof(acc.id));
    acc.name = acc.description = NULL;
out:
    pthread_mutex_unlock(&a->write_mu);
    OPENSSL_cleanse(key, sizeof(key));
    free_account(&acc);
    return rc;
}

int sl_auth_create_account(struct sl_auth *a, const char *name, const char *description,
                           int admin, char *id, struct sl_buf *out, struct sl_error *err)
{
    return create_account(a, name, description, admin, 0, id, out, err);
}

static int collect_delete(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    sl_batch_delete(arg, k, kl);
    return 0;
}

static void remove_bindings(struct sl_auth *a, const char *account, const char *ws)
{
    for (size_t i = 0; i < a->nbindings;) {
        struct binding *b = &a->bindings[i];
        if ((!account || strcmp(b->account, account) == 0) && (!ws || strcmp(b->ws, ws) == 0)) {
            free(b->ws);
            *b = a->bindings[--a->nbindings];
        } else {
            i++;
        }
    }
}

int sl_auth_delete_account(struct sl_auth *a, const char *id, struct sl_error *err)
{
    int rc = 0, key_file = 0;
    struct sl_batch b = {0};
    struct sl_buf prefix = SL_BUF_INIT;
    if (!valid_id(id))
        return sl_error_set(err, SL_ENOTFOUND, "service account `%s` not found", id);
    pthread_mutex_lock(&a->write_mu);
    pthread_rwlock_rdlock(&a->lock);
    long i = find_account(a, id);
    size_t admins = 0;
    for (size_t j = 0; j < a->naccounts; j++)
        admins += a->accounts[j].admin != 0;
    if (i >= 0)
        key_file = a->accounts[i].key_file;
    int last_admin = i >= 0 && a->accounts[i].admin && admins == 1;
    pthread_rwlock_unlock(&a->lock);
    if (i < 0) {
        rc = sl_error_set(err, SL_ENOTFOUND, "service account `%s` not found", id);
        goto out;
    }
    if (last_admin) {
        rc = sl_error_set(err, SL_EINVAL,
                          "service account `%s` is the last admin; create another admin first",
                          id);
        goto out;
    }
    char k[1 + SL_AUTH_ID_LEN];
    account_key(id, k);
    sl_batch_delete(&b, k, sizeof(k));
    /* the bindings as stored, so none survives even if the table missed one */
    binding_key(&prefix, id, "");
    if (prefix.oom) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    rc = sl_store_scan(a->store, prefix.p, prefix.len, collect_delete, &b, err);
    if (rc < 0)
        goto out;
    rc = b.ops.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                   : sl_store_write(a->store, &b, 1, err);
    if (rc != 0)
        goto out;
    pthread_rwlock_wrlock(&a->lock);
    i = find_account(a, id);
    free_account(&a->accounts[i]);
    memmove(&a->accounts[i], &a->accounts[i + 1],
            (a->naccounts - (size_t)i - 1) * sizeof(*a->accounts));
    a->naccounts--;
    remove_bindings(a, id, NULL);
    pthread_rwlock_unlock(&a->lock);
    if (key_file) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/admin.key", a->data_dir);
        if (unlink(path) != 0 && errno != ENOENT)
            sl_err("auth: cannot remove %s: %s", path, strerror(errno));
    }
out:
    pthread_mutex_unlock(&a->write_mu);
    sl_batch_free(&b);
    sl_buf_free(&prefix);
    return rc;
}

int sl_auth_rotate_key(struct sl_auth *a, const char *id, struct sl_buf *out,
                       struct sl_error *err)
{
    char key[KEY_LEN + 1];
    unsigned char dg[DIGEST_LEN];
    struct account copy = {0};
    if (!valid_id(id))
        return sl_error_set(err, SL_ENOTFOUND, "service account `%s` not found", id);
    int rc = new_key(a, key, dg, err);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&a->write_mu);
    pthread_rwlock_rdlock(&a->lock);
    long i = find_account(a, id);
    if (i >= 0) {
        copy = a->accounts[i];
        copy.name = strdup(copy.name);
        copy.description = strdup(copy.description);
    }
    pthread_rwlock_unlock(&a->lock);
    if (i < 0) {
        rc = sl_error_set(err, SL_ENOTFOUND, "service account `%s` not found", id);
        goto out;
    }
    if (!copy.name || !copy.description) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(copy.digest, dg, DIGEST_LEN);
    rc = put_account(a, &copy, err);
    if (rc != 0)
        goto out;
    pthread_rwlock_wrlock(&a->lock);
    memcpy(a->accounts[i].digest, dg, DIGEST_LEN);
    pthread_rwlock_unlock(&a->lock);
    if (copy.key_file) {
        struct sl_error ferr = {0};
        if (write_key_file(a->data_dir, key, &ferr) != 0)
            sl_err("auth: the admin key was rotated but admin.key could not be rewritten: %s",
                   ferr.msg);
    }
    reply_key(out, &copy, key, 0);
out:
    pthread_mutex_unlock(&a->write_mu);
    OPENSSL_cleanse(key, sizeof(key));
    free_account(&copy);
    return rc;
}

int sl_auth_assign(struct sl_auth *a, const char *account, const char *ws, enum sl_role role,
                   struct sl_error *err)
{
    if (role == SL_ROLE_NONE || role > SL_ROLE_OWNER)
        return sl_error_set(err, SL_EINVAL, "unknown role");
    if (!ws || !*ws || strlen(ws) > MAX_WS || strchr(ws, '/'))
        return sl_error_set(err, SL_EINVAL, "bad workspace name");
    if (!valid_id(account))
        return sl_error_set(err, SL_ENOTFOUND, "service account `%s` not found", account);
    struct sl_buf k = SL_BUF_INIT;
    struct sl_batch b = {0};
    char *w = strdup(ws);
    int rc;
    pthread_mutex_lock(&a->write_mu);
    pthread_rwlock_rdlock(&a->lock);
    int known = find_account(a, account) >= 0;
    pthread_rwlock_unlock(&a->lock);
    if (!known) {
        rc = sl_error_set(err, SL_ENOTFOUND, "service account `%s` not found", account);
        goto out;
    }
    binding_key(&k, account, ws);
    sl_batch_put(&b, k.p, k.len, sl_role_name(role), strlen(sl_role_name(role)));
    if (!w || k.oom || b.ops.oom || reserve_bindings(a, a->nbindings + 1) != 0) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    rc = sl_store_write(a->store, &b, 1, err);
    if (rc != 0)
        goto out;
    pthread_rwlock_wrlock(&a->lock);
    long i = find_binding(a, account, ws);
    if (i >= 0) {
        a->bindings[i].role = role;
    } else {
        struct binding *nb = &a->bindings[a->nbindings++]; /* reserved above */
        memcpy(nb->account, account, SL_AUTH_ID_LEN + 1);
        nb->ws = w;
        nb->role = role;
        w = NULL;
    }
    pthread_rwlock_unlock(&a->lock);
out:
    pthread_mutex_unlock(&a->write_mu);
    free(w);
    sl_buf_free(&k);
    sl_batch_free(&b);
    return rc;
}

int sl_auth_unassign(struct sl_auth *a, const char *account, const char *ws, enum sl_role role,
                     struct sl_error *err)
{
    struct sl_buf k = SL_BUF_INIT;
    struct sl_batch b = {0};
    int rc;
    pthread_mutex_lock(&a->write_mu);
    pthread_rwlock_rdlock(&a->lock);
    long i = find_binding(a, account, ws);
    enum sl_role held = i >= 0 ? a->bindings[i].role : SL_ROLE_NONE;
    pthread_rwlock_unlock(&a->lock);
    if (held == SL_ROLE_NONE || (role != SL_ROLE_NONE && held != role)) {
        rc = role != SL_ROLE_NONE
                 ? sl_error_set(err, SL_ENOTFOUND,
                                "service account `%s` does not hold role %s in workspace `%s`",
                                account, sl_role_name(role), ws)
                 : sl_error_set(err, SL_ENOTFOUND,
                                "service account `%s` holds no role in workspace `%s`", account,
                                ws);
        goto out;
    }
    binding_key(&k, account, ws);
    sl_batch_delete(&b, k.p, k.len);
    rc = k.oom || b.ops.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                            : sl_store_write(a->store, &b, 1, err);
    if (rc != 0)
        goto out;
    pthread_rwlock_wrlock(&a->lock);
    remove_bindings(a, account, ws);
    pthread_rwlock_unlock(&a->lock);
out:
    pthread_mutex_unlock(&a->write_mu);
    sl_buf_free(&k);
    sl_batch_free(&b);
    return rc;
}

int sl_auth_drop_workspace(struct sl_auth *a, const char *ws, struct sl_error *err)
{
    struct sl_batch b = {0};
    int rc = 0;
    pthread_mutex_lock(&a->write_mu);
    pthread_rwlock_rdlock(&a->lock);
    for (size_t i = 0; i < a->nbindings; i++) {
        if (strcmp(a->bindings[i].ws, ws) != 0)
            continue;
        struct sl_buf k = SL_BUF_INIT;
        binding_key(&k, a->bindings[i].account, ws);
        sl_batch_delete(&b, k.p, k.len);
        b.ops.oom |= k.oom;
        sl_buf_free(&k);
    }
    pthread_rwlock_unlock(&a->lock);
    if (b.count > 0 || b.ops.oom)
        rc = b.ops.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                       : sl_store_write(a->store, &b, 1, err);
    if (rc == 0) {
        pthread_rwlock_wrlock(&a->lock);
        remove_bindings(a, NULL, ws);
        pthread_rwlock_unlock(&a->lock);
    }
    pthread_mutex_unlock(&a->write_mu);
    sl_batch_free(&b);
    return rc;
}

/* ---- listings ---- */

void sl_auth_list_accounts(struct sl_auth *a, struct sl_buf *out)
{
    sl_buf_puts(out, "{\"serviceAccounts\":[");
    pthread_rwlock_rdlock(&a->lock);
    for (size_t i = 0; i < a->naccounts; i++) {
        const struct account *acc = &a->accounts[i];
        char t[SL_TIME_MAXLEN];
        sl_time_format(acc->created * SL_NS_PER_SEC, t);
        sl_buf_printf(out, "%s{\"id\":\"%s\",\"name\":", i ? "," : "", acc->id);
        sl_buf_json_str(out, acc->name, strlen(acc->name));
        sl_buf_puts(out, ",\"description\":");
        sl_buf_json_str(out, acc->description, strlen(acc->description));
        sl_buf_printf(out, ",\"admin\":%s,\"createdAt\":\"%s\"}", acc->admin ? "true" : "false",
                      t);
    }
    pthread_rwlock_unlock(&a->lock);
    sl_buf_puts(out, "]}");
}

int sl_auth_account_roles(struct sl_auth *a, const char *id, struct sl_buf *out,
                          struct sl_error *err)
{
    pthread_rwlock_rdlock(&a->lock);
    long i = valid_id(id) ? find_account(a, id) : -1;
    if (i < 0) {
        pthread_rwlock_unlock(&a->lock);
        return sl_error_set(err, SL_ENOTFOUND, "service account `%s` not found", id);
    }
    const struct account *acc = &a->accounts[i];
    sl_buf_printf(out, "{\"id\":\"%s\",\"name\":", acc->id);
    sl_buf_json_str(out, acc->name, strlen(acc->name));
    sl_buf_printf(out, ",\"admin\":%s,\"roles\":[", acc->admin ? "true" : "false");
    int first = 1;
    for (size_t j = 0; j < a->nbindings; j++) {
        const struct binding *b = &a->bindings[j];
        if (strcmp(b->account, id) != 0)
            continue;
        sl_buf_puts(out, first ? "{\"workspace\":" : ",{\"workspace\":");
        sl_buf_json_str(out, b->ws, strlen(b->ws));
        sl_buf_printf(out, ",\"role\":\"%s\"}", sl_role_name(b->role));
        first = 0;
    }
    pthread_rwlock_unlock(&a->lock);
    sl_buf_puts(out, "]}");
    return 0;
}

void sl_auth_workspace_roles(struct sl_auth *a, const char *ws, struct sl_buf *out)
{
    sl_buf_puts(out, "{\"workspace\":");
    sl_buf_json_str(out, ws, strlen(ws));
    sl_buf_puts(out, ",\"roles\":[");
    int first = 1;
    pthread_rwlock_rdlock(&a->lock);
    for (size_t j = 0; j < a->nbindings; j++) {
        const struct binding *b = &a->bindings[j];
        if (strcmp(b->ws, ws) != 0)
            continue;
        long i = find_account(a, b->account);
        const char *name = i >= 0 ? a->accounts[i].name : "";
        sl_buf_printf(out, "%s{\"serviceAccount\":\"%s\",\"name\":", first ? "" : ",",
                      b->account);
        sl_buf_json_str(out, name, strlen(name));
        sl_buf_printf(out, ",\"role\":\"%s\"}", sl_role_name(b->role));
        first = 0;
    }
    pthread_rwlock_unlock(&a->lock);
    sl_buf_puts(out, "]}");
}
