"""Concurrent ingest into aggregate views from several clients, with get-features reads and
applies running meanwhile, on a server with four HTTP threads. Every acknowledged record must
be counted exactly once, and in a ThreadSanitizer build (--enable-tsan, run by scripts/test)
the server must report no data race: the server's log is checked for ThreadSanitizer
reports, and a report also makes the server exit non-zero on SIGTERM."""

import os
import random
import threading

import harness
from harness import iso, SRCDIR, Server, expect, expect_eq, run

srv = None
REPO = os.path.join(SRCDIR, "tests", "data", "repos", "agg")
T0 = 1735732800  # 2025-01-01T12:00:00Z, the server's fixed clock
USERS = ["u%d" % i for i in range(6)]  # few users: clients collide on the same tiles
CLIENTS = 6
REQUESTS = 12   # per client
RECORDS = 8     # per request


def setup_module():
    global srv
    srv = Server(args=["--fake-now", iso(T0), "--threads", "4"]).start()
    rc, out, err = srv.cli("workspace", "create", "a", "--live")
    assert rc == 0, err
    rc, out, err = srv.cli("apply", "--workspace", "a", REPO)
    assert rc == 0, out + err
    rc, out, err = srv.cli("workspace", "create", "b", "--live")
    assert rc == 0, err


def teardown_module():
    srv.cleanup()


def features(user):
    st, b = srv.get_features({"user_id": user}, ws="a", service="svc")
    expect_eq(st, 200, b)
    return {f["name"]: v for f, v in zip(b["metadata"]["features"], b["result"]["features"])}


def test_concurrent_ingest_reads_and_apply():
    sent = []           # (user, qty) of every acknowledged record
    lock = threading.Lock()
    errors = []
    done = threading.Event()

    def client(seed):
        rnd = random.Random(seed)
        try:
            for _ in range(REQUESTS):
                recs, mine = [], []
                for _ in range(RECORDS):
                    u = rnd.choice(USERS)
                    q = rnd.randint(1, 9)
                    # within the last 50 minutes: several 1-minute tiles, all in the 1h window
                    t = T0 - rnd.randint(1, 3000)
                    recs.append({"record": {"user_id": u, "ts": iso(t), "amount": float(q),
                                            "qty": q, "merchant": "m%d" % rnd.randint(0, 3)}})
                    mine.append((u, q))
                st, b = srv.ingest({"tx": recs}, ws="a")
                expect_eq(st, 200, b)
                with lock:
                    sent.extend(mine)
        except Exception as e:  # reported by the main thread
            errors.append(e)

    def reader():
        try:
            while not done.is_set():
                for u in USERS:
                    f = features(u)
                    expect("tiled.count" in f, f)
        except Exception as e:
            errors.append(e)

    def applier():
        try:
            for _ in range(3):
                rc, out, err = srv.cli("apply", "--workspace", "a", REPO)
                expect_eq(rc, 0, out + err)
                rc, out, err = srv.cli("apply", "--workspace", "b", REPO)
                expect_eq(rc, 0, out + err)
        except Exception as e:
            errors.append(e)

    writers = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    others = [threading.Thread(target=reader) for _ in range(2)] + [threading.Thread(target=applier)]
    for t in writers + others:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in others:
        t.join()
    if errors:
        raise errors[0]
    expect_eq(len(sent), CLIENTS * REQUESTS * RECORDS)
    for u in USERS:
        qs = [q for (v, q) in sent if v == u]
        f = features(u)
        expect_eq(f["tiled.count"], str(len(qs)), u + " count over 1h")
        expect_eq(f["tiled.sum"], str(sum(qs)) if qs else None, u + " sum over 1h")
        expect_eq(f["tiled.sum30d"], str(sum(qs)) if qs else None, u + " sum over 30d")
        expect_eq(f["tiled.life"], str(len(qs)), u + " lifetime count")
        expect_eq(f["cont.life"], str(len(qs)), u + " continuous lifetime count")


def test_no_race_reported():
    """The server stops cleanly (a ThreadSanitizer report makes it exit non-zero) and its log
    holds no report."""
    srv.stop()
    text = open(os.path.join(srv.data_dir, "server.log"), "rb").read().decode("utf-8", "replace")
    if "ThreadSanitizer" in text:
        summary = [l for l in text.splitlines() if l.startswith("SUMMARY: ThreadSanitizer")]
        first = text.find("WARNING: ThreadSanitizer")
        raise AssertionError("\n".join(summary) + "\n\n" + text[first:first + 12000])


run(globals())
