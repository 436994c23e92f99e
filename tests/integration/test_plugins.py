"""Plugins as a third party uses them: `make install DESTDIR=...`, the example top_k plugin
built OUT OF TREE with `cc $(pkg-config --cflags sluice-plugin) -shared -fPIC`, loaded with
--plugin, used in Lua definitions; ingest + get-features against a brute-force reference,
offline training data (get-features-for-events) agreeing; the installed lua_geo plugin in a
transformation; GET /v1/plugins and `sluice plugins`; and the one-line refusals at start of a
foreign ABI major, a newer minor, a truncated descriptor, a missing entry symbol, a failing
init and a reserved kind."""

import json
import math
import os
import random
import shutil
import subprocess
import tempfile

import harness
from harness import (iso, BIN, SRCDIR, Server, expect, expect_eq, run)

T0 = 1735732800  # 2025-01-01T12:00:00Z
REPO = os.path.join(SRCDIR, "tests", "data", "repos", "plugins")
tmp = None        # scratch: DESTDIR, out-of-tree builds
destdir = None
pc_env = None     # environment in which pkg-config sees only the installed tree
topk_so = None    # the out-of-tree build of plugins/agg_topk/agg_topk.c
geo_so = None     # the installed lua_geo plugin
srv = None
events = []       # (user, ts seconds, qty, merchant, seq)
recorded = []     # (user, t, {name: value}) online answers

BAD_SRC = r'''
#include <stddef.h>
#include <sluice/plugin.h>
#define UNUSED __attribute__((unused))
UNUSED static int init(const struct sl_plugin_api *api, const struct sl_plugin_handle *self,
                void **ctx, struct sl_error *err)
{
    return api->error_set(err, SL_EINVAL, "cannot reach the moon");
}
static int call(void *ctx, const struct sl_scalar *a, int n, struct sl_scalar *ret,
                struct sl_buf *out, struct sl_error *err)
{
    return 0;
}
static const struct sl_lua_fn fns[] = {{"f", call}, {NULL, NULL}};
UNUSED static const struct sl_agg_fn short_fn = {SL_AGG_ABI_VERSION, 8, "bad", 0};
UNUSED static const struct sl_agg_fn v2_fn = {SL_AGG_ABI_VERSION + 1, sizeof v2_fn, "bad", 0};
UNUSED static const struct sl_lua_lib lib = {SL_LUA_LIB_ABI_VERSION, sizeof lib, "bad", fns};
static const struct sl_plugin desc = {
    MAJOR, MINOR, SIZE, KIND, "bad", "0.1", "a plugin the server must refuse", NULL,
    INIT, NULL, OPS,
};
#ifndef NO_ENTRY
SL_PLUGIN_EXPORT const struct sl_plugin *SL_PLUGIN_ENTRY(void) { return &desc; }
#else
SL_PLUGIN_EXPORT const struct sl_plugin *not_the_entry(void) { return &desc; }
#endif
'''


PROBE_SRC = r'''
#include <string.h>
#include <sluice/plugin.h>
static const struct sl_plugin_api *api;
static struct sl_metric *calls;
static int greet(void *ctx, const struct sl_scalar *a, int n, struct sl_scalar *ret,
                 struct sl_buf *out, struct sl_error *err)
{
    api->metric_add(calls, 1);
    const char *g = ctx;
    api->buf_append(out, g, strlen(g));
    ret->kind = SL_STRING;
    return 0;
}
static int init(const struct sl_plugin_api *a, const struct sl_plugin_handle *self,
                void **ctx, struct sl_error *err)
{
    api = a;
    const char *g = api->config_get(self, "greeting");
    calls = api->counter_new(self, "calls", "greet() calls");
    struct sl_metric *len = api->gauge_new(self, "greeting_len", "length of the greeting");
    if (!calls || !len || api->counter_new(self, "Bad-Name", "refused") != NULL)
        return api->error_set(err, SL_EINVAL, "metrics");
    api->metric_set(len, (int64_t)strlen(g));
    api->metric_add(calls, 40);
    api->log(self, SL_PLUGIN_WARN, "greeting is %s, abi %u.%u", g, api->abi_major, api->abi_minor);
    *ctx = (void *)g;
    return 0;
}
static const struct sl_lua_fn fns[] = {{"greet", greet}, {NULL, NULL}};
static const struct sl_lua_lib lib = {SL_LUA_LIB_ABI_VERSION, sizeof lib, "probe", fns};
static const struct sl_plugin_config cfg[] = {{"greeting", "hello", "what greet() says"},
                                              {NULL, NULL, NULL}};
static const struct sl_plugin desc = {
    SL_PLUGIN_ABI_MAJOR, SL_PLUGIN_ABI_MINOR, sizeof desc, SL_PLUGIN_LUA, "probe", "0.1",
    "services table probe", cfg, init, NULL, &lib,
};
SL_PLUGIN_EXPORT const struct sl_plugin *SL_PLUGIN_ENTRY(void) { return &desc; }
'''


def sh(cmd, env=None, cwd=None):
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    expect(p.returncode == 0, "%s failed (%d):\n%s%s" % (cmd, p.returncode, p.stdout, p.stderr))
    return p.stdout


def cflags():
    return sh(["pkg-config", "--cflags", "sluice-plugin"], env=pc_env).split()


def build_plugin(name, src_path, defines=()):
    """Compiles one plugin source out of tree against the installed header only."""
    out = os.path.join(tmp, "out", name + ".so")
    sh(["cc", "-std=gnu11", "-Wall", "-Werror", "-O2", "-shared", "-fPIC"] + cflags() +
       list(defines) + ["-o", out, src_path])
    return out


def setup_module():
    global tmp, destdir, pc_env, topk_so, geo_so, srv
    tmp = tempfile.mkdtemp(prefix="sluice-plugins-")
    destdir = os.path.join(tmp, "dest")
    os.makedirs(os.path.join(tmp, "out"))
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    sh(["make", "-s", "install", "DESTDIR=" + destdir], env=env, cwd=os.environ["SL_BUILDDIR"])
    pcs = [os.path.join(d, f) for d, _, fs in os.walk(destdir) for f in fs if f == "sluice-plugin.pc"]
    expect_eq(len(pcs), 1, "sluice-plugin.pc installed once")
    pc_env = dict(env, PKG_CONFIG_PATH=os.path.dirname(pcs[0]), PKG_CONFIG_LIBDIR="",
                  PKG_CONFIG_SYSROOT_DIR=destdir)
    libdir = os.path.dirname(os.path.dirname(pcs[0]))
    geo_so = os.path.join(libdir, "sluice", "plugins", "lua_geo.so")
    expect(os.path.exists(os.path.join(libdir, "sluice", "plugins", "agg_topk.so")),
           "make install ships agg_topk.so in $(libdir)/sluice/plugins")
    expect(os.path.exists(geo_so), "make install ships lua_geo.so")
    # the plugin source alone, away from the source tree: only the installed header is visible
    src = os.path.join(tmp, "agg_topk.c")
    shutil.copy(os.path.join(SRCDIR, "plugins", "agg_topk", "agg_topk.c"), src)
    topk_so = build_plugin("topk", src)
    srv = Server(args=["--fake-now", iso(T0), "--plugin", topk_so, "--plugin", geo_so]).start()
    rc, out, err = srv.cli("workspace", "create", "p", "--live")
    assert rc == 0, err
    rc, out, err = srv.cli("apply", "--workspace", "p", REPO)
    assert rc == 0, out + err


def teardown_module():
    if srv:
        srv.cleanup()
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


def test_installed_header_and_pkg_config():
    flags = cflags()
    expect_eq(len(flags), 1, flags)
    inc = flags[0][2:]
    expect(inc.startswith(destdir), "the include path lies in DESTDIR: %s" % inc)
    expect(os.path.exists(os.path.join(inc, "sluice", "plugin.h")), "header installed")


def test_plugins_listed():
    st, b = srv.request("GET", "/v1/plugins")
    expect_eq(st, 200, b)
    harness.validate(b, "plugins-response.json")
    by = {(p["kind"], p["name"]): p for p in b["plugins"]}
    expect_eq(by[("aggregation", "top_k")],
              {"name": "top_k", "kind": "aggregation", "version": "1.0.0", "abi": "1.1",
               "file": topk_so,
               "description": "the n most frequent values with their counts (exact)"})
    expect_eq(by[("lua-library", "geo")]["file"], geo_so)
    expect_eq(by[("online-store", "leveldb")]["file"], "(built-in)")
    builtin_aggs = sorted(p["name"] for p in b["plugins"]
                          if p["kind"] == "aggregation" and p["file"] == "(built-in)")
    expect_eq(len(builtin_aggs), 16, builtin_aggs)
    expect("approx_percentile" in builtin_aggs and "sum" in builtin_aggs, builtin_aggs)
    st, b = srv.request("GET", "/v1/plugins", key=None)
    expect_eq(st, 401, b)
    rc, out, err = srv.cli("plugins")
    expect_eq(rc, 0, err)
    lines = out.splitlines()
    expect(lines[0].split() == ["NAME", "KIND", "VERSION", "ABI", "FILE"], lines[0])
    expect(["top_k", "aggregation", "1.0.0", "1.1", topk_so] in [l.split() for l in lines], out)
    expect(["leveldb", "online-store", sluice_version(), "1.1", "(built-in)"] in
           [l.split() for l in lines], out)


def sluice_version():
    return subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.split()[1]


def top_k(values, n):
    """Brute force: counts, most frequent first, ties by ascending value; None when empty."""
    if not values:
        return None
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [[str(v) if isinstance(v, int) else v, str(c)] for v, c in ranked]


def reference(user, now):
    mine = [e for e in events if e[0] == user]
    end = math.floor(now / 60) * 60
    win = [e for e in mine if end - 3600 <= e[1] < end]
    life = [e for e in mine if e[1] < end]
    cwin = [e for e in mine if now - 600 <= e[1] <= now]
    return {
        "tiled.top3": top_k([e[3] for e in win], 3),
        "tiled.topq": top_k([e[2] for e in life], 2),
        "tiled.merchant_top_2_1h_1m": top_k([e[3] for e in win], 2),
        "cont.top2": top_k([e[3] for e in cwin], 2),
    }


def online(user):
    st, b = srv.get_features({"user_id": user}, ws="p", service="svc")
    expect_eq(st, 200, b)
    return {f["name"]: v for f, v in zip(b["metadata"]["features"], b["result"]["features"])}


def test_ingest_and_get_features_match_the_reference():
    rng = random.Random(5)
    users = ["u%d" % i for i in range(3)]
    clock = T0
    for step in range(50):
        nxt = clock + rng.uniform(5, 200)
        recs = []
        for _ in range(rng.randrange(0, 7)):
            t = rng.uniform(clock + 0.001, nxt)
            u, q, m = rng.choice(users), rng.randrange(-2, 4), "m%d" % rng.randrange(6)
            recs.append({"record": {"user_id": u, "ts": iso(t), "qty": q, "merchant": m}})
            events.append((u, t, q, m, len(events)))
        harness.set_clock(srv, nxt)
        if recs:
            st, b = srv.ingest({"tx": recs}, ws="p")
            expect_eq(st, 200, b)
        clock = nxt
        for u in users:
            got = online(u)
            want = reference(u, clock)
            for name, w in want.items():
                expect_eq(got[name], w, "%s of %s at %s" % (name, u, iso(clock)))
            recorded.append((u, clock, got))
    expect(any(v["tiled.top3"] and len(v["tiled.top3"]) == 3 for _, _, v in recorded),
           "some answer has three values")


def test_offline_training_data_agrees():
    q = ("workspace_name=p&feature_service_name=svc&format=jsonl&input_format=jsonl"
         "&timestamp_key=timestamp")
    body = "".join(json.dumps({"user_id": u, "timestamp": iso(t)}) + "\n"
                   for u, t, _ in recorded).encode()
    st, b = srv.request("POST", "/api/v1/feature-service/get-features-for-events?" + q, raw=body)
    expect_eq(st, 200, b)
    rows = [json.loads(l) for l in b.splitlines() if l.strip()]
    expect_eq(len(rows), len(recorded))
    bad = []
    for row, (u, t, want) in zip(rows, recorded):
        for name, w in want.items():
            col = name.replace(".", "__")
            if row[col] != w:
                bad.append("%s at %s: %s offline %r, online %r" % (u, iso(t), col, row[col], w))
    expect(not bad, "\n".join(bad[:20]))


def test_lua_library_in_a_transformation():
    st, b = srv.ingest({"pos": [{"record": {"user_id": "g", "ts": iso(T0 + 10), "lat": 51.5074,
                                             "lon": -0.1278, "km": None}}]}, ws="p")
    expect_eq(st, 200, b)
    st, b = srv.get_features({"user_id": "g"}, ws="p", service="geo_svc")
    expect_eq(st, 200, b)
    km = b["result"]["features"][0]
    expect(abs(km - 343.5) < 1.0, "London-Paris is about 343.5 km, got %r" % km)


def test_services_settings_metrics_and_log():
    src = os.path.join(tmp, "probe.c")
    with open(src, "w") as f:
        f.write(PROBE_SRC)
    so = build_plugin("probe", src)
    d = tempfile.mkdtemp(prefix="sluice-probe-", dir=tmp)
    s2 = Server(data_dir=d, args=["--plugin", so, "--plugin-config", "probe.greeting=hey"]).start()
    try:
        st, text = s2.request("GET", "/metrics")
        expect_eq(st, 200, text)
        lines = text.splitlines()
        expect("sluice_plugin_probe_calls 40" in lines, text)
        expect("# TYPE sluice_plugin_probe_calls counter" in lines, text)
        expect("sluice_plugin_probe_greeting_len 3" in lines, text)
        expect("# TYPE sluice_plugin_probe_greeting_len gauge" in lines, text)
        expect("warn plugin probe: greeting is hey, abi 1.1" in s2.log_text(), s2.log_text())
    finally:
        s2.cleanup()
    expect_eq(refused(["--plugin", so, "--plugin-config", "probe.colour=red"]),
              "sluice serve: plugin-config `probe.colour`: plugin %s has no setting `colour`\n"
              % so)


def test_an_online_store_plugin_serves():
    so = build_plugin("store_mem", os.path.join(SRCDIR, "tests", "data", "plugins", "store_mem.c"))
    d = tempfile.mkdtemp(prefix="sluice-mem-", dir=tmp)
    s2 = Server(data_dir=d, args=["--fake-now", iso(T0), "--plugin", so, "--plugin", topk_so,
                                  "--plugin", geo_so, "--online-store", "store_mem"]).start()
    try:
        expect(not os.path.exists(os.path.join(d, "online", "CURRENT")), "no LevelDB opened")
        rc, out, err = s2.cli("workspace", "create", "m", "--live")
        expect_eq(rc, 0, err)
        rc, out, err = s2.cli("apply", "--workspace", "m", REPO)
        expect_eq(rc, 0, out + err)
        recs = [{"record": {"user_id": "x", "ts": iso(T0 - 120 + i), "qty": i % 2,
                            "merchant": "m%d" % (i % 3)}} for i in range(7)]
        st, b = s2.ingest({"tx": recs}, ws="m")
        expect_eq(st, 200, b)
        st, b = s2.get_features({"user_id": "x"}, ws="m", service="svc")
        expect_eq(st, 200, b)
        got = {f["name"]: v for f, v in zip(b["metadata"]["features"], b["result"]["features"])}
        expect_eq(got["tiled.top3"], [["m0", "3"], ["m1", "2"], ["m2", "2"]])
        expect_eq(got["tiled.topq"], [["0", "4"], ["1", "3"]])
        st, text = s2.request("GET", "/metrics")
        writes = [l for l in text.splitlines() if l.startswith("sluice_plugin_store_mem_writes ")]
        expect(writes and int(writes[0].split()[1]) >= 2, writes)
    finally:
        s2.cleanup()


def refused(args):
    """Starts sluice serve with args; it must exit non-zero with exactly one line."""
    d = tempfile.mkdtemp(prefix="sluice-refuse-", dir=tmp)
    p = subprocess.run([BIN, "serve", "--data-dir", d, "--listen", "127.0.0.1:0",
                        "--log-level", "warn"] + args, capture_output=True, text=True, timeout=60)
    expect(p.returncode != 0, "the start must fail: %r" % p.stderr)
    return p.stderr


def bad_plugin(name, major="SL_PLUGIN_ABI_MAJOR", minor="SL_PLUGIN_ABI_MINOR",
               size="sizeof(struct sl_plugin)", kind="SL_PLUGIN_AGG", init="NULL", ops="NULL",
               extra=()):
    src = os.path.join(tmp, "bad.c")
    with open(src, "w") as f:
        f.write(BAD_SRC)
    return build_plugin(name, src, ["-DMAJOR=" + major, "-DMINOR=" + minor, "-DSIZE=" + size,
                                    "-DKIND=" + kind, "-DINIT=" + init,
                                    "-DOPS=" + ops] + list(extra))


def test_refuses_another_abi_major():
    so = bad_plugin("major", major="(SL_PLUGIN_ABI_MAJOR + 1)", minor="0")
    expect_eq(refused(["--plugin", so]),
              "sluice serve: plugin %s: ABI 2.0, this sluice speaks 1.1\n" % so)


def test_refuses_a_newer_minor():
    so = bad_plugin("minor", minor="(SL_PLUGIN_ABI_MINOR + 1)")
    expect_eq(refused(["--plugin", so]),
              "sluice serve: plugin %s: ABI 1.2, this sluice speaks 1.1\n" % so)


def test_refuses_a_truncated_descriptor():
    so = bad_plugin("short", size="offsetof(struct sl_plugin, ops)")
    expect_eq(refused(["--plugin", so]),
              "sluice serve: plugin %s: descriptor is 64 bytes, ABI 1.1 needs at least 72\n" % so)


def test_refuses_a_missing_entry_symbol():
    so = bad_plugin("noentry", extra=["-DNO_ENTRY"])
    expect_eq(refused(["--plugin", so]),
              "sluice serve: plugin %s: no entry symbol sluice_plugin_entry "
              "(not a Sluice plugin)\n" % so)


def test_refuses_a_failing_init_missing_ops_and_a_reserved_kind():
    so = bad_plugin("noinit", kind="SL_PLUGIN_LUA", init="init", ops="&lib")
    expect_eq(refused(["--plugin", so]),
              "sluice serve: plugin %s: init failed: cannot reach the moon\n" % so)
    so = bad_plugin("noops")
    expect_eq(refused(["--plugin", so]),
              "sluice serve: plugin %s: no aggregation ops table\n" % so)
    so = bad_plugin("shortops", ops="&short_fn")
    expect_eq(refused(["--plugin", so]),
              "sluice serve: plugin %s: aggregation ops table is 8 bytes (at least 96) or lacks "
              "a name or a mandatory callback\n" % so)
    so = bad_plugin("v2ops", ops="&v2_fn")
    expect_eq(refused(["--plugin", so]),
              "sluice serve: plugin %s: aggregation ops version 2, this sluice speaks 1\n" % so)
    so = bad_plugin("source", kind="SL_PLUGIN_SOURCE")
    expect_eq(refused(["--plugin", so]),
              "sluice serve: plugin %s: stream-source plugins are reserved in ABI 1.1 and not "
              "loaded by this sluice yet\n" % so)


def test_refuses_a_bad_file_in_a_plugin_dir_and_an_unknown_store():
    d = os.path.join(tmp, "pdir")
    os.makedirs(d)
    shutil.copy(topk_so, os.path.join(d, "a_topk.so"))
    shutil.copy(bad_plugin("major2", major="(SL_PLUGIN_ABI_MAJOR + 1)", minor="3"),
                os.path.join(d, "b_bad.so"))
    expect_eq(refused(["--plugin-dir", d]),
              "sluice serve: plugin %s/b_bad.so: ABI 2.3, this sluice speaks 1.1\n" % d)
    expect_eq(refused(["--online-store", "redis"]),
              "sluice serve: no online store `redis`; registered: leveldb\n")
    expect_eq(refused(["--plugin", topk_so, "--plugin", topk_so]),
              "sluice serve: plugin %s: aggregation `top_k` is already registered by %s\n"
              % (topk_so, topk_so))


run(globals())
