"""Aggregate features through ingest and get-features, against a reference computed here over
the raw events, with the server's clock under the test's control (--fake-now)."""

import math
import os
import random
import statistics
import time

import harness
from harness import (iso, SRCDIR, Server, expect, expect_eq, run)

srv = None
REPO = os.path.join(SRCDIR, "tests", "data", "repos", "agg")
T0 = 1735732800  # 2025-01-01T12:00:00Z
NS = 10**9
events = []      # (user, ts seconds, amount, qty, merchant, order)


def set_clock(t):
    harness.set_clock(srv, t)


def setup_module():
    global srv
    srv = Server(args=["--fake-now", iso(T0)]).start()
    rc, out, err = srv.cli("workspace", "create", "a", "--live")
    assert rc == 0, err
    rc, out, err = srv.cli("apply", "--workspace", "a", REPO)
    assert rc == 0, out + err


def teardown_module():
    srv.cleanup()


def ingest(evs):
    recs = [{"record": {"user_id": u, "ts": iso(t), "amount": a, "qty": q, "merchant": m}}
            for (u, t, a, q, m) in evs]
    st, b = srv.ingest({"tx": recs}, ws="a")
    expect_eq(st, 200, b)
    for e in evs:
        events.append(e + (len(events),))


def features(user):
    st, b = srv.get_features({"user_id": user}, ws="a", service="svc")
    expect_eq(st, 200, b)
    return {f["name"]: (v, f["status"]) for f, v in zip(b["metadata"]["features"], b["result"]["features"])}


def reference(user, now):
    """Expected values of both views for user at clock time now (seconds)."""
    mine = [e for e in events if e[0] == user]
    end = math.floor(now / 60) * 60
    win = sorted([e for e in mine if end - 3600 <= e[1] < end], key=lambda e: (e[1], e[5]))
    prev = [e for e in mine if end - 7200 <= e[1] < end - 3600]
    d30 = [e for e in mine if end - 30 * 86400 <= e[1] < end]
    life = [e for e in mine if e[1] < end]
    amounts = [e[2] for e in win]
    r = {}
    r["tiled.sum"] = str(sum(e[3] for e in win)) if win else None
    r["tiled.count"] = str(len(win))
    r["tiled.mean"] = statistics.fmean(amounts) if win else None
    r["tiled.min"] = min(amounts) if win else None
    r["tiled.max"] = max(amounts) if win else None
    r["tiled.last"] = win[-1][4] if win else None
    r["tiled.last3"] = [str(e[3]) for e in win[-3:]] if win else None
    r["tiled.first2"] = [str(e[3]) for e in win[:2]] if win else None
    r["tiled.sdev"] = statistics.stdev(amounts) if len(win) > 1 else None
    r["tiled.varp"] = statistics.pvariance(amounts) if win else None
    r["tiled.acd"] = len({e[4] for e in win})
    r["tiled.p50"] = amounts
    r["tiled.sum30d"] = str(sum(e[3] for e in d30)) if d30 else None
    r["tiled.life"] = str(len(life))
    r["tiled.prev_hour"] = str(sum(e[3] for e in prev)) if prev else None
    cwin = sorted([e for e in mine if now - 600 <= e[1] <= now], key=lambda e: (e[1], e[5]))
    r["cont.sum10m"] = str(sum(e[3] for e in cwin)) if cwin else None
    r["cont.last10m"] = cwin[-1][4] if cwin else None
    r["cont.life"] = str(len([e for e in mine if e[1] <= now]))
    return r


def check(user, now):
    got = features(user)
    want = reference(user, now)
    for name, w in want.items():
        g = got[name][0]
        if name in ("tiled.mean", "tiled.sdev", "tiled.varp", "tiled.min", "tiled.max"):
            if w is None:
                expect_eq(g, None, name)
            else:
                expect(abs(g - w) <= 1e-9 * max(1.0, abs(w)), "%s: got %r want %r" % (name, g, w))
        elif name == "tiled.acd":
            expect(abs(int(g) - w) <= max(1, w * 0.1), "%s: got %r want %r" % (name, g, w))
        elif name == "tiled.p50":
            if not w:
                expect_eq(g, None, name)
            else:
                # the documented bound: within 1% (precision 100) of the element of rank
                # floor(q * (n - 1))
                x = sorted(w)[int(0.5 * (len(w) - 1))]
                expect(abs(g - x) <= 0.01 * abs(x) * (1 + 1e-9), "%s: got %r, want %r +- 1%%" % (name, g, x))
        elif name in ("tiled.ldist", "tiled.fdist"):
            continue
        else:
            expect_eq(g, w, name)
    return got


def test_every_function_matches_the_reference():
    rng = random.Random(7)
    evs = []
    for i in range(300):
        u = "u%d" % rng.randrange(3)
        t = T0 - rng.uniform(0, 2.5 * 3600)
        evs.append((u, round(t, 3), round(rng.uniform(1, 500), 2), rng.randrange(-5, 50), "m%d" % rng.randrange(8)))
    for i in range(0, len(evs), 50):  # several requests, out of time order
        ingest(evs[i:i + 50])
    for u in ("u0", "u1", "u2"):
        check(u, T0)


def test_late_event_is_read_at_once():
    """A read, then an acknowledged event in a tile that is already complete, then the same
    read at the same clock: the answer has the event (read-after-write through every cache)."""
    u = "late"
    set_clock(T0)
    ingest([(u, T0 - 1800, 10.0, 1, "a")])
    first = check(u, T0)
    check(u, T0)  # answered again from memory
    for k in range(3):
        ingest([(u, T0 - 1700 + k, 20.0 + k, 2 + k, "b%d" % k)])  # late: its minute is complete
        got = check(u, T0)
        expect(got["tiled.count"][0] != first["tiled.count"][0], got)


def test_distinct_functions_keep_order_and_bound():
    u = "dist"
    base = T0 - 1800
    ingest([(u, base + i, 1.0, i, m) for i, m in enumerate(["a", "b", "a", "c", "d", "c"])])
    f = features(u)
    expect_eq(f["tiled.ldist"][0], ["a", "d", "c"])
    expect_eq(f["tiled.fdist"][0], ["a", "b", "c"])


def test_tile_boundaries_and_window_end():
    u = "edge"
    now = T0 + 30  # window end is T0 (last complete minute)
    set_clock(now)
    ingest([(u, T0 - 3600, 1.0, 1, "x"),      # exactly the window start: in
            (u, T0 - 3600 - 0.001, 1.0, 10, "x"),  # just before: out
            (u, T0 - 0.001, 1.0, 100, "x"),    # last complete tile: in
            (u, T0, 1.0, 1000, "x")])          # the open tile: not yet
    f = features(u)
    expect_eq(f["tiled.sum"][0], "101")
    expect_eq(f["cont.sum10m"][0], "1100")
    set_clock(T0 + 60)
    expect_eq(features(u)["tiled.sum"][0], "1100")
    set_clock(T0)


def test_window_expiry_and_empty_values():
    u = "old"
    ingest([(u, T0 - 60, 2.0, 5, "m")])
    check(u, T0)
    later = T0 + 2 * 3600
    set_clock(later)
    f = features(u)
    expect_eq(f["tiled.count"], ("0", "MISSING_DATA"))
    expect_eq(f["tiled.sum"], (None, "MISSING_DATA"))
    expect_eq(f["tiled.life"], ("1", "PRESENT"))
    expect_eq(f["tiled.sum30d"], ("5", "PRESENT"))
    expect_eq(f["cont.sum10m"][0], None)
    expect_eq(f["cont.life"][0], "1")
    for user in ("u0", "u1", "u2"):
        check(user, later)
    set_clock(T0)


def test_unknown_entity_gets_empty_values():
    f = features("nobody")
    expect_eq(f["tiled.count"][0], "0")
    expect_eq(f["tiled.acd"][0], "0")
    expect_eq(f["tiled.sum"], (None, "MISSING_DATA"))
    expect_eq(f["cont.sum10m"][0], None)


def test_restart_keeps_aggregates():
    before = features("u1")
    srv.stop()
    srv.args = ["--fake-now", iso(T0)]
    srv.start()
    expect_eq(features("u1"), before)
    # regression: aggregate state once shared the service-account key prefix, and every
    # restart tried to load tiles as accounts
    expect("unreadable" not in srv.log_text(), srv.log_text())


def metric(name):
    return harness.metric(srv, name)


def test_retention_deletes_state_no_window_can_read():
    before = features("u1")
    later = T0 + 40 * 86400
    set_clock(later)
    deleted = __import__("harness").wait_for(lambda: metric("sluice_retention_deleted_keys_total"), 15,
                                             "retention to run")
    expect(deleted > 0)
    f = features("u1")
    expect_eq(f["tiled.sum30d"], (None, "MISSING_DATA"))
    expect_eq(f["tiled.count"], ("0", "MISSING_DATA"))
    expect_eq(f["tiled.life"], before["tiled.life"])
    expect_eq(f["cont.life"], before["cont.life"])
    # a late event older than every window still counts in lifetime, and recreates no tile
    ingest([("u1", T0 - 30, 1.0, 7, "late")])
    f = features("u1")
    expect_eq(f["tiled.life"][0], str(int(before["tiled.life"][0]) + 1))
    expect_eq(f["tiled.sum30d"], (None, "MISSING_DATA"))
    set_clock(T0)


def test_clock_endpoint_needs_fake_clock():
    s2 = Server().start()
    try:
        st, b = s2.request("POST", "/v1/test/clock", {"now": iso(T0)})
        expect_eq(st, 404, b)
    finally:
        s2.cleanup()


run(globals())
