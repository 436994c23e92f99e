/* Raw LevelDB baseline for the ingest benchmark: what the disk and LevelDB allow before any
 * HTTP, JSON or Lua. Opens a fresh database with the options Sluice's online store uses
 * (32 MiB write buffer, bloom filter, 64 MiB cache) and writes for a fixed time:
 *
 *   batch   one WriteBatch of B keys with ~V-byte values per write, sync=true (one fsync each)
 *   single  one key per write, sync=true
 *   nosync  like batch, sync=false (LevelDB's CPU ceiling, for context)
 *
 * Prints one JSON line per mode: records/s, writes/s, per-write latency p50/p99/max (ms).
 *
 * Build: gcc -O2 -o leveldb_put leveldb_put.c -lleveldb
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <leveldb/c.h>

#define LP_MAX_SECONDS 600
#define LP_MAX_BATCH 100000
#define LP_MAX_VALUE 65536
#define LP_MAX_SAMPLES 4000000

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const uint64_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e6;
}

/* Fills v with len bytes of cheap pseudo-random printable data (so Snappy cannot shrink it to
 * nothing, as it could a run of one byte). */
static void fill_value(char *v, size_t len, uint64_t *seed)
{
    for (size_t i = 0; i < len; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (char)('!' + (*seed >> 33) % 90);
    }
}

/* Runs one mode for `seconds` and prints its JSON line. Returns 0, or -1 on a write error. */
static int run(leveldb_t *db, const char *mode, int batch, int vlen, double seconds,
               uint64_t *next_key)
{
    int sync = strcmp(mode, "nosync") != 0;
    int per = strcmp(mode, "single") == 0 ? 1 : batch;
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(wo, (unsigned char)sync);
    uint64_t *lat = malloc(LP_MAX_SAMPLES * sizeof(*lat));
    char *value = malloc((size_t)vlen);
    if (!lat || !value) {
        fprintf(stderr, "leveldb_put: out of memory\n");
        free(lat);
        free(value);
        leveldb_writeoptions_destroy(wo);
        return -1;
    }
    uint64_t seed = 42;
    size_t n = 0;
    uint64_t records = 0;
    char key[64];
    char *err = NULL;
    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(seconds * 1e9), t = t0;
    while (t < deadline && n < LP_MAX_SAMPLES) {
        leveldb_writebatch_t *wb = leveldb_writebatch_create();
        for (int i = 0; i < per; i++) {
            /* Shaped like Sluice's online keys: view id prefix, then the entity key. */
            int kl = snprintf(key, sizeof(key), "fv:10bd7749551115149744fb9c42fac65c:u%012" PRIu64,
                              (*next_key)++);
            fill_value(value, (size_t)vlen, &seed);
            leveldb_writebatch_put(wb, key, (size_t)kl, value, (size_t)vlen);
        }
        uint64_t s = now_ns();
        leveldb_write(db, wo, wb, &err);
        t = now_ns();
        leveldb_writebatch_destroy(wb);
        if (err) {
            fprintf(stderr, "leveldb_put: write: %s\n", err);
            leveldb_free(err);
            free(lat);
            free(value);
            leveldb_writeoptions_destroy(wo);
            return -1;
        }
        lat[n++] = t - s;
        records += (uint64_t)per;
    }
    double elapsed = (double)(t - t0) / 1e9;
    qsort(lat, n, sizeof(*lat), cmp_u64);
    printf("{\"tool\":\"leveldb_put\",\"mode\":\"%s\",\"sync\":%s,\"records_per_write\":%d,"
           "\"value_bytes\":%d,\"duration_s\":%.3f,\"writes\":%zu,\"records\":%" PRIu64
           ",\"writes_per_s\":%.1f,\"records_per_s\":%.1f,"
           "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}}\n",
           mode, sync ? "true" : "false", per, vlen, elapsed, n, records, (double)n / elapsed,
           (double)records / elapsed, pct_ms(lat, n, 50), pct_ms(lat, n, 90), pct_ms(lat, n, 99),
           n ? (double)lat[n - 1] / 1e6 : 0.0);
    fflush(stdout);
    free(lat);
    free(value);
    leveldb_writeoptions_destroy(wo);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: leveldb_put -d NEW_DIR [-b RECORDS_PER_BATCH] [-v VALUE_BYTES] [-t SECONDS]\n"
               "                   [-m batch|single|nosync]...   (default: -m batch -m single)\n");
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *modes[8];
    int nmodes = 0, batch = 100, vlen = 60, opt;
    double seconds = 5;
    while ((opt = getopt(argc, argv, "d:b:v:t:m:h")) != -1) {
        switch (opt) {
        case 'd': dir = optarg; break;
        case 'b': batch = atoi(optarg); break;
        case 'v': vlen = atoi(optarg); break;
        case 't': seconds = atof(optarg); break;
        case 'm':
            if (nmodes == 8 || (strcmp(optarg, "batch") != 0 && strcmp(optarg, "single") != 0 &&
                                strcmp(optarg, "nosync") != 0)) {
                usage(stderr);
                return 2;
            }
            modes[nmodes++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!dir || optind != argc || batch < 1 || batch > LP_MAX_BATCH || vlen < 1 ||
        vlen > LP_MAX_VALUE || seconds <= 0 || seconds > LP_MAX_SECONDS) {
        usage(stderr);
        return 2;
    }
    if (!nmodes) {
        modes[nmodes++] = "batch";
        modes[nmodes++] = "single";
    }

    leveldb_options_t *opts = leveldb_options_create();
    leveldb_cache_t *cache = leveldb_cache_create_lru(64u << 20);
    leveldb_filterpolicy_t *filter = leveldb_filterpolicy_create_bloom(10);
    leveldb_options_set_create_if_missing(opts, 1);
    leveldb_options_set_error_if_exists(opts, 1);
    leveldb_options_set_cache(opts, cache);
    leveldb_options_set_filter_policy(opts, filter);
    leveldb_options_set_write_buffer_size(opts, 32u << 20);
    leveldb_options_set_max_open_files(opts, 1000);
    char *err = NULL;
    leveldb_t *db = leveldb_open(opts, dir, &err);
    int rc = 0;
    if (err) {
        fprintf(stderr, "leveldb_put: open %s: %s\n", dir, err);
        leveldb_free(err);
        rc = 1;
    } else {
        uint64_t next_key = 0;
        for (int i = 0; i < nmodes && rc == 0; i++)
            rc = run(db, modes[i], batch, vlen, seconds, &next_key) ? 1 : 0;
        leveldb_close(db);
    }
    leveldb_options_destroy(opts);
    leveldb_filterpolicy_destroy(filter);
    leveldb_cache_destroy(cache);
    return rc;
}
