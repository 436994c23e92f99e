"""Aggregates do not depend on how events arrive: the same events ingested into one workspace in
time order and into another in random order and random batch sizes (late events, many requests
merging into the same tiles at every roll-up level) give the same values, and every value
computable exactly here matches a brute-force reference over the raw events, at several read
times (windows of 1 hour, an hour before that, 30 days, lifetime; tiled and continuous)."""

import math
import os
import random
import statistics
import time

import harness
from harness import SRCDIR, Server, expect, expect_eq, run

srv = None
REPO = os.path.join(SRCDIR, "tests", "data", "repos", "agg")
T0 = 1735732800  # 2025-01-01T12:00:00Z
USERS = ["r%d" % i for i in range(5)]
events = []      # (user, ts in ms, amount, qty, merchant)
READS = [T0, T0 + 1234, T0 + 3 * 86400 + 77]


def ms_text(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def setup_module():
    global srv
    rng = random.Random(18)
    seen = set()
    while len(events) < 1500:
        # most events in the last two hours (the short windows), the rest over 40 days
        age = rng.uniform(0, 2 * 3600) if rng.random() < 0.5 else rng.uniform(0, 40 * 86400)
        ms = (T0 - 1) * 1000 - int(age * 1000)
        if ms in seen:  # distinct times: "last" and the n-functions need no tie-break here
            continue
        seen.add(ms)
        events.append((rng.choice(USERS), ms, round(rng.uniform(-50, 500), 2),
                       rng.randrange(-5, 50), "m%d" % rng.randrange(12)))
    srv = Server(args=["--fake-now", ms_text(T0 * 1000)]).start()
    for ws in ("ordered", "shuffled"):
        rc, out, err = srv.cli("workspace", "create", ws, "--live")
        assert rc == 0, err
        rc, out, err = srv.cli("apply", "--workspace", ws, REPO)
        assert rc == 0, out + err


def teardown_module():
    srv.cleanup()


def ingest(ws, evs):
    recs = [{"record": {"user_id": u, "ts": ms_text(t), "amount": a, "qty": q, "merchant": m}}
            for (u, t, a, q, m) in evs]
    st, b = srv.ingest({"tx": recs}, ws=ws)
    expect_eq(st, 200, b)


def features(ws, user):
    st, b = srv.get_features({"user_id": user}, ws=ws, service="svc")
    expect_eq(st, 200, b)
    return {f["name"]: v for f, v in zip(b["metadata"]["features"], b["result"]["features"])}


def distinct(evs, n, latest):
    """last_distinct / first_distinct over evs (time order): values by their latest / earliest
    occurrence, the n latest / earliest of them, oldest first."""
    at = {}
    for e in evs:
        if latest or e[4] not in at:
            at[e[4]] = e[1]
    order = sorted(at, key=lambda m: at[m])
    return order[-n:] if latest else order[:n]


def reference(user, now):
    mine = sorted((e for e in events if e[0] == user), key=lambda e: e[1])
    end = math.floor(now / 60) * 60 * 1000
    win = [e for e in mine if end - 3600000 <= e[1] < end]
    prev = [e for e in mine if end - 7200000 <= e[1] < end - 3600000]
    d30 = [e for e in mine if end - 30 * 86400000 <= e[1] < end]
    amounts = [e[2] for e in win]
    cwin = [e for e in mine if now * 1000 - 600000 <= e[1] <= now * 1000]
    return {
        "tiled.sum": str(sum(e[3] for e in win)) if win else None,
        "tiled.count": str(len(win)),
        "tiled.mean": statistics.fmean(amounts) if win else None,
        "tiled.min": min(amounts) if win else None,
        "tiled.max": max(amounts) if win else None,
        "tiled.last": win[-1][4] if win else None,
        "tiled.last3": [str(e[3]) for e in win[-3:]] if win else None,
        "tiled.first2": [str(e[3]) for e in win[:2]] if win else None,
        "tiled.ldist": distinct(win, 3, True) if win else None,
        "tiled.fdist": distinct(win, 3, False) if win else None,
        "tiled.sdev": statistics.stdev(amounts) if len(win) > 1 else None,
        "tiled.varp": statistics.pvariance(amounts) if win else None,
        "tiled.sum30d": str(sum(e[3] for e in d30)) if d30 else None,
        "tiled.life": str(len([e for e in mine if e[1] < end])),
        "tiled.prev_hour": str(sum(e[3] for e in prev)) if prev else None,
        "cont.sum10m": str(sum(e[3] for e in cwin)) if cwin else None,
        "cont.last10m": cwin[-1][4] if cwin else None,
        "cont.life": str(len([e for e in mine if e[1] <= now * 1000])),
    }


FLOATS = ("tiled.mean", "tiled.sdev", "tiled.varp", "tiled.min", "tiled.max")


def compare(ws, user, now, got):
    for name, w in reference(user, now).items():
        g = got[name]
        if name in FLOATS and w is not None and g is not None:
            expect(abs(g - w) <= 1e-9 * max(1.0, abs(w)),
                   "%s %s %s at %d: got %r want %r" % (ws, user, name, now, g, w))
        else:
            expect_eq(g, w, "%s %s %s at %d" % (ws, user, name, now))


def test_random_order_and_batches_match_reference():
    rng = random.Random(1818)
    ordered = sorted(events, key=lambda e: e[1])
    for i in range(0, len(ordered), 500):
        ingest("ordered", ordered[i:i + 500])
    shuffled = list(events)
    rng.shuffle(shuffled)
    i = 0
    while i < len(shuffled):
        n = rng.choice((1, 1, 2, 3, 7, 20, 64, 150))
        ingest("shuffled", shuffled[i:i + n])
        i += n
    for now in READS:
        harness.set_clock(srv, now)
        for user in USERS:
            a, b = features("ordered", user), features("shuffled", user)
            compare("ordered", user, now, a)
            compare("shuffled", user, now, b)
            # sketches (approx_count_distinct, approx_percentile) merge exactly: same bytes
            # whatever the order, so the same answer
            for name in ("tiled.acd", "tiled.p50"):
                expect_eq(b[name], a[name], "%s at %d" % (name, now))


def test_random_late_batches_after_reads():
    """More events, at the last read time (the clock never goes back: retention may have
    dropped what no later read needs), in random batches into both workspaces, after a restart
    without the writer's cache: half of them in tiles already read (before T0), half in the
    last two hours. Both still match the reference."""
    now = READS[-1]
    rng = random.Random(99)
    have = {e[1] for e in events}
    extra = []
    while len(extra) < 200:
        ms = ((T0 if len(extra) % 2 else now) - 1) * 1000 - rng.randrange(0, 2 * 3600 * 1000)
        if ms in have:
            continue
        have.add(ms)
        extra.append((rng.choice(USERS), ms, round(rng.uniform(0, 100), 2),
                      rng.randrange(0, 9), "n%d" % rng.randrange(4)))
    for ws in ("ordered", "shuffled"):
        for u in USERS:
            features(ws, u)
    # without the writer's cache every merge reads the stored tiles (and the top-level tile
    # that says whether an entity's finer tiles can exist at all)
    srv.stop()
    srv.args = ["--fake-now", ms_text(now * 1000), "--writer-cache-mb", "0"]
    srv.start()
    i = 0
    while i < len(extra):
        n = rng.randrange(1, 40)
        ingest("ordered", extra[i:i + n])
        ingest("shuffled", list(reversed(extra[i:i + n])))
        i += n
    events.extend(extra)
    for user in USERS:
        compare("ordered", user, now, features("ordered", user))
        compare("shuffled", user, now, features("shuffled", user))


run(globals())
