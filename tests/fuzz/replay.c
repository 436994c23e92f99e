/* Replays a fuzz target's corpus without libFuzzer, so `make check` (plain, ASan/UBSan,
 * valgrind, TSan builds) runs every input the fuzzers kept: the seeds and regression inputs
 * in tests/fuzz/corpus/<target>/. Linked with one tests/fuzz/fuzz_<target>.c; the program's
 * own name (fuzz_json, ...) names the corpus folder, found under $SL_SRCDIR.
 * Exits 0 after the last input; a target that finds a bug aborts, as under libFuzzer. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    long len = -1;
    uint8_t *buf = NULL;
    int rc = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        /* exactly the input's size, so that ASan sees a read past its end */
        buf = malloc(len ? (size_t)len : 1);
        if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len) {
            LLVMFuzzerTestOneInput(buf, (size_t)len);
            rc = 0;
        }
    }
    if (rc != 0)
        fprintf(stderr, "replay: %s: cannot read it\n", path);
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    const char *src = getenv("SL_SRCDIR");
    const char *name = strrchr(argv[0], '/');
    char dir[4096], path[8192];
    name = name ? name + 1 : argv[0];
    if (argc > 1)
        snprintf(dir, sizeof dir, "%s", argv[1]);
    else
        snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", src ? src : ".", name);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **g = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*g));
            if (!g)
                return 1;
            names = g;
        }
        if (!(names[n++] = strdup(de->d_name)))
            return 1;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_name);
    int rc = n ? 0 : 1;
    if (!n)
        fprintf(stderr, "replay: %s is empty\n", dir);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (replay_file(path) != 0)
            rc = 1;
        free(names[i]);
    }
    free(names);
    printf("%s: %zu inputs replayed from %s\n", name, n, dir);
    return rc;
}
