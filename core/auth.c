/* Service accounts and roles. Keys are 192 random bits, printed once; the store keeps only
 * HMAC-SHA-256(secret, key). Lookups go through an in-memory table loaded at start. */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

struct account {
    char id[SL_AUTH_ID_LEN + 1];
    char *name;
    unsigned char digest[DIGEST_LEN];
    int admin;
    int revoked;
};

struct binding {
    char account[SL_AUTH_ID_LEN + 1];
    char *ws;
    enum sl_role role;
};

struct sl_auth {
    struct sl_store *store;
    int disabled;
    unsigned char secret[32];
    pthread_rwlock_t lock;
    size_t naccounts, nbindings;
    struct account *accounts;
    struct binding *bindings;
};

/* The one table of who may do what: allowed[action][role]. Admins may do everything. */
static const unsigned char allowed[][SL_ROLE_OWNER + 1] = {
    /*                     none viewer consumer operator editor owner */
    [SL_ACT_INGEST] =     {0,   0,     0,       0,       1,     1},
    [SL_ACT_INGEST_DRY] = {0,   1,     1,       1,       1,     1},
    [SL_ACT_READ] =       {0,   0,     1,       0,       0,     1},
    [SL_ACT_APPLY] =      {0,   0,     0,       0,       1,     1},
    [SL_ACT_PLAN] =       {0,   1,     1,       1,       1,     1},
    [SL_ACT_JOBS] =       {0,   0,     0,       1,       0,     1},
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

static void hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
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

static void digest(const struct sl_auth *a, const char *key, size_t len, unsigned char *out)
{
    unsigned int n = DIGEST_LEN;
    HMAC(EVP_sha256(), a->secret, sizeof(a->secret), (const unsigned char *)key, len, out, &n);
}

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
    close(fd);
    if (rc != 0)
        return sl_error_set(err, SL_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

static int load_account(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct sl_auth *a = arg;
    cJSON *o = cJSON_ParseWithLength(v, vl);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *dg = cJSON_GetObjectItemCaseSensitive(o, "digest");
    struct account acc = {0};
    if (!cJSON_IsString(id) || strlen(id->valuestring) != SL_AUTH_ID_LEN || !cJSON_IsString(name) ||
        !cJSON_IsString(dg) || unhex(dg->valuestring, acc.digest, DIGEST_LEN) != 0) {
        sl_err("auth: skipping unreadable account record");
        cJSON_Delete(o);
        return 0;
    }
    memcpy(acc.id, id->valuestring, SL_AUTH_ID_LEN + 1);
    acc.name = strdup(name->valuestring);
    acc.admin = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "admin"));
    acc.revoked = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "revoked"));
    cJSON_Delete(o);
    struct account *g = realloc(a->accounts, (a->naccounts + 1) * sizeof(*g));
    if (!g || !acc.name) {
        free(acc.name);
        return SL_ENOMEM;
    }
    a->accounts = g;
    a->accounts[a->naccounts++] = acc;
    return 0;
}

static int add_binding(struct sl_auth *a, const char *account, const char *ws, enum sl_role role)
{
    for (size_t i = 0; i < a->nbindings; i++) {
        struct binding *b = &a->bindings[i];
        if (strcmp(b->account, account) == 0 && strcmp(b->ws, ws) == 0) {
            if (role == SL_ROLE_NONE) {
                free(b->ws);
                *b = a->bindings[--a->nbindings];
            } else {
                b->role = role;
            }
            return 0;
        }
    }
    if (role == SL_ROLE_NONE)
        return 0;
    struct binding *g = realloc(a->bindings, (a->nbindings + 1) * sizeof(*g));
    char *w = strdup(ws);
    if (!g || !w) {
        free(w);
        return SL_ENOMEM;
    }
    a->bindings = g;
    struct binding *b = &a->bindings[a->nbindings++];
    snprintf(b->account, sizeof(b->account), "%s", account);
    b->ws = w;
    b->role = role;
    return 0;
}

/* Role keys: 'B' account '/' workspace → role name. */
static int load_binding(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
    struct sl_auth *a = arg;
    if (kl < 1 + SL_AUTH_ID_LEN + 2 || k[1 + SL_AUTH_ID_LEN] != '/')
        return 0;
    char account[SL_AUTH_ID_LEN + 1], ws[128], role[32];
    memcpy(account, k + 1, SL_AUTH_ID_LEN);
    account[SL_AUTH_ID_LEN] = 0;
    size_t wl = kl - SL_AUTH_ID_LEN - 2;
    if (wl >= sizeof(ws) || vl >= sizeof(role))
        return 0;
    memcpy(ws, k + SL_AUTH_ID_LEN + 2, wl);
    ws[wl] = 0;
    memcpy(role, v, vl);
    role[vl] = 0;
    return add_binding(a, account, ws, sl_role_parse(role));
}

static int write_key_file(const char *dir, const char *key, struct sl_error *err)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/admin.key", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return sl_error_set(err, SL_EIO, "%s: %s", tmp, strerror(errno));
    size_t len = strlen(key);
    int ok = write(fd, key, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0)
        return sl_error_set(err, SL_EIO, "%s: %s", path, strerror(errno));
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
    if (load_secret(a, data_dir, err) != 0)
        goto fail;
    if (sl_store_scan(store, ACCOUNT_PREFIX, 1, load_account, a, err) < 0 ||
        sl_store_scan(store, ROLE_PREFIX, 1, load_binding, a, err) < 0)
        goto fail;
    int have_admin = 0;
    for (size_t i = 0; i < a->naccounts; i++)
        have_admin |= a->accounts[i].admin && !a->accounts[i].revoked;
    if (!have_admin) {
        struct sl_buf out = SL_BUF_INIT;
        int rc = sl_auth_create_account(a, "admin", "Created at first start", 1, &out, err);
        cJSON *o = rc == 0 ? cJSON_ParseWithLength(out.p, out.len) : NULL;
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(o, "apiKey");
        if (rc == 0)
            rc = cJSON_IsString(key) ? write_key_file(data_dir, key->valuestring, err)
                                     : sl_error_set(err, SL_ENOMEM, "out of memory");
        cJSON_Delete(o);
        sl_buf_free(&out);
        if (rc != 0)
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
        free(a->accounts[i].name);
    for (size_t i = 0; i < a->nbindings; i++)
        free(a->bindings[i].ws);
    free(a->accounts);
    free(a->bindings);
    OPENSSL_cleanse(a->secret, sizeof(a->secret));
    pthread_rwlock_destroy(&a->lock);
    free(a);
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
    digest(a, key, len, d);
    int found = 0;
    pthread_rwlock_rdlock(&a->lock);
    for (size_t i = 0; i < a->naccounts; i++) {
        /* every account is compared in full, so timing does not depend on which matched */
        int eq = CRYPTO_memcmp(d, a->accounts[i].digest, DIGEST_LEN) == 0;
        if (eq && !a->accounts[i].revoked && !found) {
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
    pthread_rwlock_rdlock(&a->lock);
    for (size_t i = 0; ws && i < a->nbindings; i++)
        if (strcmp(a->bindings[i].account, account) == 0 && strcmp(a->bindings[i].ws, ws) == 0)
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

int sl_auth_create_account(struct sl_auth *a, const char *name, const char *description,
                           int admin, struct sl_buf *out, struct sl_error *err)
{
    unsigned char raw[24], idraw[16];
    char key[64], id[SL_AUTH_ID_LEN + 1], dg[2 * DIGEST_LEN + 1];
    if (!name || !*name || strlen(name) > 128)
        return sl_error_set(err, SL_EINVAL, "a service account needs a name of 1-128 characters");
    if (RAND_bytes(raw, sizeof(raw)) != 1 || RAND_bytes(idraw, sizeof(idraw)) != 1)
        return sl_error_set(err, SL_EIO, "no randomness for a new key");
    memcpy(key, "sk_", 3);
    hex(raw, sizeof(raw), key + 3);
    hex(idraw, sizeof(idraw), id);
    struct account acc = {0};
    memcpy(acc.id, id, sizeof(id));
    acc.admin = admin;
    acc.name = strdup(name);
    digest(a, key, strlen(key), acc.digest);
    hex(acc.digest, DIGEST_LEN, dg);
    OPENSSL_cleanse(raw, sizeof(raw));

    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "description", description ? description : "");
    cJSON_AddStringToObject(o, "digest", dg);
    cJSON_AddBoolToObject(o, "admin", admin);
    cJSON_AddBoolToObject(o, "revoked", 0);
    cJSON_AddNumberToObject(o, "created", (double)(sl_now_ns() / SL_NS_PER_SEC));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    struct sl_batch b = {0};
    char k[1 + SL_AUTH_ID_LEN];
    k[0] = SL_KEY_ACCOUNT;
    memcpy(k + 1, id, SL_AUTH_ID_LEN);
    int rc;
    if (!text || !acc.name) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    sl_batch_put(&b, k, sizeof(k), text, strlen(text));
    rc = sl_store_write(a->store, &b, 1, err);
    if (rc != 0)
        goto out;
    pthread_rwlock_wrlock(&a->lock);
    struct account *g = realloc(a->accounts, (a->naccounts + 1) * sizeof(*g));
    if (g) {
        a->accounts = g;
        a->accounts[a->naccounts++] = acc;
        acc.name = NULL;
    }
    pthread_rwlock_unlock(&a->lock);
    if (!g) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    sl_buf_puts(out, "{\"id\":\"");
    sl_buf_puts(out, id);
    sl_buf_puts(out, "\",\"name\":");
    sl_buf_json_str(out, name, strlen(name));
    sl_buf_puts(out, ",\"description\":");
    sl_buf_json_str(out, description ? description : "", description ? strlen(description) : 0);
    sl_buf_puts(out, ",\"apiKey\":\"");
    sl_buf_puts(out, key);
    sl_buf_puts(out, "\"}");
out:
    OPENSSL_cleanse(key, sizeof(key));
    free(acc.name);
    free(text);
    sl_batch_free(&b);
    return rc;
}

int sl_auth_set_role(struct sl_auth *a, const char *account, const char *ws, enum sl_role role,
                     struct sl_error *err)
{
    int known = 0;
    pthread_rwlock_rdlock(&a->lock);
    for (size_t i = 0; i < a->naccounts; i++)
        known |= strcmp(a->accounts[i].id, account) == 0 && !a->accounts[i].revoked;
    pthread_rwlock_unlock(&a->lock);
    if (!known || strlen(account) != SL_AUTH_ID_LEN)
        return sl_error_set(err, SL_ENOTFOUND, "service account `%s` not found", account);
    struct sl_buf k = SL_BUF_INIT;
    struct sl_batch b = {0};
    sl_buf_putc(&k, SL_KEY_ROLE);
    sl_buf_puts(&k, account);
    sl_buf_putc(&k, '/');
    sl_buf_puts(&k, ws);
    if (role == SL_ROLE_NONE)
        sl_batch_delete(&b, k.p, k.len);
    else
        sl_batch_put(&b, k.p, k.len, sl_role_name(role), strlen(sl_role_name(role)));
    int rc = k.oom || b.ops.oom ? sl_error_set(err, SL_ENOMEM, "out of memory")
                                : sl_store_write(a->store, &b, 1, err);
    if (rc == 0) {
        pthread_rwlock_wrlock(&a->lock);
        if (add_binding(a, account, ws, role) != 0)
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        pthread_rwlock_unlock(&a->lock);
    }
    sl_buf_free(&k);
    sl_batch_free(&b);
    return rc;
}
