"""The Redis online store (plugins/store_redis): a redis-server started here on a free
loopback port, the other integration suites run against it, and several sluice nodes writing
the same entities at once, compared with a brute-force reference."""

import importlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

import harness
from harness import (iso, BIN, SRCDIR, Server, expect, expect_eq, foreign_port, wait_for, run)

REDIS = shutil.which("redis-server")
PLUGIN = os.path.join(os.path.dirname(BIN), "plugins", "store_redis", "store_redis.so")
# the suites that run again on Redis (SL_REDIS_SUITES overrides, space-separated)
SUITES = os.environ.get("SL_REDIS_SUITES", "test_ingest test_serve test_aggregate test_durability "
                        "test_ingest_errors test_access test_jobs test_offline test_realtime "
                        "test_transform test_cli test_schemas test_plugins").split()

redis = None
rdir = None
url = None


def redis_cmd(*args):
    """One command over RESP; returns the decoded reply (ints, bytes, lists, None)."""
    with socket.create_connection(("127.0.0.1", redis_port()), timeout=10) as s:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        return read_reply(f)


def read_reply(f):
    line = f.readline()
    t, rest = line[:1], line[1:].rstrip(b"\r\n")
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise AssertionError("redis error: " + rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:n]
        return data
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise AssertionError("bad reply %r" % line)


def redis_port():
    return int(url.rsplit(":", 1)[1])


def setup_module():
    global redis, rdir, url
    if not REDIS:
        raise AssertionError("redis-server not found: apt-get install redis-server")
    rdir = tempfile.mkdtemp(prefix="sluice-redis-")
    port = foreign_port()
    url = "redis://127.0.0.1:%d" % port
    redis = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "yes", "--appendfsync", "always", "--dir", rdir],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        if redis.poll() is not None:
            raise AssertionError("redis-server exited with %s" % redis.returncode)
        try:
            return redis_cmd("PING") == "PONG"
        except OSError:
            return False
    wait_for(up, 15, "redis-server to listen")


def teardown_module():
    if redis and redis.poll() is None:
        redis.terminate()
        redis.wait(30)
    if rdir:
        shutil.rmtree(rdir, ignore_errors=True)


def store_args(prefix):
    return ["--plugin", PLUGIN, "--online-store", "redis",
            "--plugin-config", "redis.redis-url=" + url,
            "--plugin-config", "redis.redis-key-prefix=" + prefix]


def test_a_bad_address_stops_the_start():
    d = tempfile.mkdtemp(prefix="sluice-test-")
    try:
        p = subprocess.run([BIN, "serve", "--data-dir", d, "--listen", "127.0.0.1:0",
                            "--plugin", PLUGIN, "--online-store", "redis",
                            "--plugin-config", "redis.redis-url=redis://127.0.0.1:%d" % foreign_port()],
                           capture_output=True, text=True, timeout=60)
        expect_eq(p.returncode, 1, p.stderr)
        expect("redis: cannot connect to 127.0.0.1:" in p.stderr, p.stderr)
        p = subprocess.run([BIN, "serve", "--data-dir", d, "--listen", "127.0.0.1:0",
                            "--plugin", PLUGIN, "--online-store", "redis",
                            "--plugin-config", "redis.redis-wait-replicas=x"],
                           capture_output=True, text=True, timeout=60)
        expect_eq(p.returncode, 1, p.stderr)
        expect("redis-wait-replicas `x`: want an integer 0..64" in p.stderr, p.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_keys_of_one_entity_share_a_hash_tag():
    """Every Redis key the store writes carries a {hash tag}, and the keys of one entity of
    one view are in one group (one hash + one sorted set), so Redis Cluster keeps them in one
    slot."""
    s = Server(args=["--fake-now", iso(1735732800)] + store_args("tag-test:")).start()
    try:
        rc, out, err = s.cli("workspace", "create", "a", "--live")
        expect_eq(rc, 0, err)
        rc, out, err = s.cli("apply", "--workspace", "a",
                             os.path.join(SRCDIR, "tests", "data", "repos", "agg"))
        expect_eq(rc, 0, out + err)
        recs = [{"record": {"user_id": "solo", "ts": iso(1735732800 - 60 * i), "amount": 1.5,
                            "qty": i, "merchant": "m"}} for i in range(20)]
        st, b = s.ingest({"tx": recs}, ws="a")
        expect_eq(st, 200, b)
        keys = redis_cmd("KEYS", "tag-test:*")
        expect(keys, "no keys written")
        for k in keys:
            expect(b"{" in k and k.endswith(b"}"), k)
        # the user's groups: hex of 'G' / 'V' + view key + u32 len + "solo"
        solo = (4).to_bytes(4, "little").hex() + b"solo".hex()
        groups = {k for k in keys if k.decode().endswith(solo + "}")}
        kinds = sorted({k[len(b"tag-test:"):len(b"tag-test:") + 1] for k in groups})
        expect_eq(kinds, [b"h", b"z"], groups)
        for k in groups:
            if k.startswith(b"tag-test:h"):
                expect(redis_cmd("HLEN", k) > 1, "one group holds the tiles of the entity")
    finally:
        s.cleanup()


def test_suites_on_redis():
    """The other integration suites, each on its own key prefix in this redis-server."""
    env = dict(os.environ, SLUICE_TEST_ONLINE_STORE="redis", SLUICE_TEST_REDIS_URL=url)
    here = os.path.dirname(os.path.abspath(__file__))
    failed = []
    for name in SUITES:
        p = subprocess.run([sys.executable, os.path.join(here, name + ".py")], env=env,
                           capture_output=True, text=True, timeout=1800)
        last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        print("# %s on redis: %s" % (name, last), flush=True)
        if p.returncode != 0 or not last.endswith(" 0 failed"):
            failed.append(name)
            for line in (p.stdout + p.stderr).splitlines():
                if line.startswith("not ok") or "Error" in line:
                    print("#   " + line)
    expect_eq(failed, [])


def test_concurrent_writers_stay_exact():
    """Three nodes on one Redis ingest overlapping users at once, every event through exactly
    one node; afterwards every node's get-features equals the reference of test_aggregate
    (every aggregation function, tiled and continuous) over all acknowledged events."""
    harness_run = harness.run
    harness.run = lambda ns: None  # import test_aggregate for its reference, not to run it
    try:
        agg = importlib.import_module("test_aggregate")
    finally:
        harness.run = harness_run
    T0 = agg.T0
    # the default cache sizes: a node on a shared store turns its caches off by itself
    shared = ["--fake-now", iso(T0)] + store_args("multi:")
    nodes = [Server(args=shared).start()]
    try:
        rc, out, err = nodes[0].cli("workspace", "create", "a", "--live")
        expect_eq(rc, 0, err)
        rc, out, err = nodes[0].cli("apply", "--workspace", "a", agg.REPO)
        expect_eq(rc, 0, out + err)
        for _ in range(2):  # later nodes read the registry and the accounts from Redis
            d = tempfile.mkdtemp(prefix="sluice-test-")
            # API keys are HMACs under <data-dir>/secret: every node needs the same one
            shutil.copy(os.path.join(nodes[0].data_dir, "secret"), os.path.join(d, "secret"))
            n = Server(data_dir=d, args=shared)
            n.own_dir = True
            nodes.append(n.start())
            n.key = nodes[0].key
        rng = random.Random(11)
        events = []
        stamps = rng.sample(range(0, int(2.5 * 3600 * 1000)), 600)  # distinct ms offsets
        for i, ms in enumerate(stamps):
            events.append(("u%d" % rng.randrange(3), round(T0 - ms / 1000.0, 3),
                           round(rng.uniform(1, 500), 2), rng.randrange(-5, 50),
                           "m%d" % rng.randrange(8), i))
        errors = []

        def feed(node, evs):
            try:
                for j in range(0, len(evs), 10):
                    recs = [{"record": {"user_id": u, "ts": iso(t), "amount": a, "qty": q,
                                        "merchant": m}} for (u, t, a, q, m, _) in evs[j:j + 10]]
                    st, b = node.ingest({"tx": recs}, ws="a")
                    if st != 200:
                        errors.append((st, b))
                        return
            except Exception as e:  # reported below, on the main thread
                errors.append(repr(e))
        threads = [threading.Thread(target=feed, args=(nodes[k], events[k::3])) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expect_eq(errors, [])
        agg.events = events
        for node in nodes:
            agg.srv = node
            for u in ("u0", "u1", "u2"):
                agg.check(u, T0)
        conflicts = 0
        for node in nodes:
            st, text = node.request("GET", "/metrics")
            for line in text.splitlines():
                if line.startswith("sluice_commit_conflicts_total "):
                    conflicts += int(line.split()[1])
        print("# write conflicts retried: %d" % conflicts)
    finally:
        for n in nodes:
            n.cleanup()


def test_wait_policy_needs_the_replicas():
    """With redis-wait-replicas=1 a write is acknowledged only once a replica has it: with a
    replica attached the ingest succeeds; once it is gone the ingest fails with a JSON error
    and the log names the shortfall."""
    T0 = 1735732800
    rep_dir = tempfile.mkdtemp(prefix="sluice-redis-")
    port = foreign_port()
    replica = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--dir", rep_dir, "--replicaof", "127.0.0.1", str(redis_port())],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s = None
    try:
        wait_for(lambda: b"state=online" in redis_cmd("INFO", "replication"), 30,
                 "the replica to attach")
        s = Server(args=["--fake-now", iso(T0)] + store_args("wait:") +
                   ["--plugin-config", "redis.redis-wait-replicas=1",
                    "--plugin-config", "redis.redis-wait-timeout-ms=5000"]).start()
        rc, out, err = s.cli("workspace", "create", "a", "--live")
        expect_eq(rc, 0, err)
        rc, out, err = s.cli("apply", "--workspace", "a",
                             os.path.join(SRCDIR, "tests", "data", "repos", "agg"))
        expect_eq(rc, 0, out + err)
        recs = [{"record": {"user_id": "w", "ts": iso(T0 - 60), "amount": 1.0, "qty": 1,
                            "merchant": "m"}}]
        st, b = s.ingest({"tx": recs}, ws="a")
        expect_eq(st, 200, b)
        replica.terminate()
        replica.wait(30)
        wait_for(lambda: b"connected_slaves:0" in redis_cmd("INFO", "replication"), 30,
                 "the replica to leave")
        st, b = s.ingest({"tx": recs}, ws="a")
        expect_eq(st, 500, b)
        expect_eq(b["requestError"]["errorType"], "InternalError", b)
        expect("redis WAIT: 0 of 1 replicas acknowledged within 5000 ms" in s.log_text(),
               s.log_text())
    finally:
        if replica.poll() is None:
            replica.terminate()
            replica.wait(30)
        shutil.rmtree(rep_dir, ignore_errors=True)
        if s:
            s.cleanup()


def test_kill_9_during_ingest_loses_no_acknowledged_record():
    """A node killed while requests are in flight: after a restart every acknowledged request
    is there whole, and a request without an answer is there whole or not at all."""
    T0 = 1735732800
    s = Server(args=["--fake-now", iso(T0)] + store_args("kill9:")).start()
    try:
        rc, out, err = s.cli("workspace", "create", "a", "--live")
        expect_eq(rc, 0, err)
        rc, out, err = s.cli("apply", "--workspace", "a",
                             os.path.join(SRCDIR, "tests", "data", "repos", "agg"))
        expect_eq(rc, 0, out + err)
        acked, sent = [], []

        def feed():
            for i in range(100000):
                u = "k%d" % i
                recs = [{"record": {"user_id": u, "ts": iso(T0 - 60 * j - 1), "amount": 1.0,
                                    "qty": 1, "merchant": "m"}} for j in range(5)]
                sent.append(u)
                try:
                    st, b = s.ingest({"tx": recs}, ws="a")
                except Exception:
                    return
                if st != 200:
                    return
                acked.append(u)
        t = threading.Thread(target=feed)
        t.start()
        wait_for(lambda: len(acked) >= 30, 60, "30 acknowledged requests")
        s.kill9()
        t.join()
        s.start()

        def life(u):
            st, b = s.get_features({"user_id": u}, ws="a", service="svc")
            expect_eq(st, 200, b)
            names = [f["name"] for f in b["metadata"]["features"]]
            return b["result"]["features"][names.index("cont.life")]
        for u in acked:
            expect_eq(life(u), "5", u)
        for u in sent[len(acked):]:
            expect(life(u) in (None, "0", "5"), "%s: a request applied in part" % u)
    finally:
        s.cleanup()


run(globals())
