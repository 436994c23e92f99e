"""Realtime views in training data: get-features-for-events runs every realtime view per
event, as online serving does (request context from the events' columns, input views at the
event's time, the same Lua function, sandbox and budgets). Parity with online answers
recorded while replaying a random event stream, CSV and JSON Lines events, the CLI, and the
errors: a missing request context column, a bad value, a failing or endless function."""

import csv
import io
import json
import os
import random
import tempfile

import harness
from harness import (iso, SRCDIR, Server, expect, expect_eq, parse_jsonl, run, same)

srv = None
REPO = os.path.join(SRCDIR, "tests", "data", "repos", "realtime")
T0 = 1735732800  # 2025-01-01T12:00:00Z
FS = "/api/v1/feature-service/"
recorded = []    # (event columns, {column name: online value})


def setup_module():
    global srv
    srv = Server(args=["--fake-now", iso(T0), "--lua-instructions", "200000"]).start()
    rc, out, err = srv.cli("workspace", "create", "r", "--live")
    assert rc == 0, err
    rc, out, err = srv.cli("apply", "--workspace", "r", REPO)
    assert rc == 0, out + err


def teardown_module():
    srv.cleanup()


def online(user, ctx):
    st, b = srv.request("POST", FS + "get-features", {"params": {
        "workspace_name": "r", "feature_service_name": "svc", "join_key_map": {"user_id": user},
        "request_context_map": ctx}})
    return st, b


def columns(b):
    return {f["name"].replace(".", "__"): v for f, v in zip(b["metadata"]["features"], b["result"]["features"])}


def pit(body, infmt="jsonl", fmt="jsonl"):
    q = "workspace_name=r&feature_service_name=svc&format=%s&input_format=%s" % (fmt, infmt)
    return srv.request("POST", FS + "get-features-for-events?" + q, raw=body)


def jsonl(events):
    return "".join(json.dumps(e) + "\n" for e in events).encode()


def csv_text(events):
    """CSV of the events, each cell the text a user's file holds (true/false for booleans)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    names = list(events[0].keys())
    w.writerow(names)
    for e in events:
        w.writerow(["" if e[n] is None else str(e[n]).lower() if isinstance(e[n], bool) else e[n]
                    for n in names])
    return buf.getvalue().encode()


def compare(rows, label):
    expect_eq(len(rows), len(recorded), label)
    bad = []
    for row, (ev, want) in zip(rows, recorded):
        expect_eq(row["tag"], ev["tag"], "input order kept")
        for name, w in want.items():
            if not same(row[name], w):
                bad.append("%s: %s at %s %s: offline %r, online %r"
                           % (label, ev["user_id"], ev["timestamp"], name, row[name], w))
    expect(not bad, "\n".join(bad[:20]))


def test_parity_with_online_answers():
    """For random events, every training row equals what get-features returned at that time,
    the realtime views' features included (inputs not in the service, in part, and whole)."""
    rng = random.Random(15)
    users = ["u%d" % i for i in range(4)]
    clock = T0
    seen_high = seen_null = 0
    for step in range(50):
        nxt = clock + rng.uniform(5, 300)
        evs = []
        for _ in range(rng.randrange(0, 6)):
            evs.append({"record": {"user_id": rng.choice(users), "ts": iso(rng.uniform(clock + 0.001, nxt)),
                                   "amount": round(rng.uniform(1, 100), 2), "qty": rng.randrange(0, 9),
                                   "merchant": "m%d" % rng.randrange(5)}})
        harness.set_clock(srv, nxt)
        if evs:
            st, b = srv.ingest({"tx": evs}, ws="r")
            expect_eq(st, 200, b)
        clock = nxt
        for u in rng.sample(users + ["nobody"], 2):
            ctx = {"amount": round(rng.uniform(1, 300), 2), "channel": rng.choice(["web", "app", "pos"]),
                   "n": rng.randrange(-5, 12), "flag": rng.random() < 0.5}
            st, b = online(u, ctx)
            expect_eq(st, 200, b)
            want = columns(b)
            seen_high += want["rt__is_high"] == "1"
            seen_null += want["rt__ratio"] is None
            recorded.append((dict({"user_id": u, "timestamp": iso(clock), "tag": len(recorded)}, **ctx), want))
    expect(seen_high > 0 and seen_null > 0, "the stream exercises both branches")
    st, text = pit(jsonl([ev for ev, _ in recorded]))
    expect_eq(st, 200, text)
    compare(parse_jsonl(text), "jsonl events")
    st, text = pit(csv_text([ev for ev, _ in recorded]), infmt="csv")
    expect_eq(st, 200, text)
    rows = parse_jsonl(text)
    for r in rows:
        r["tag"] = int(r["tag"])
    compare(rows, "csv events")


def test_csv_output_and_cli():
    ev, want = recorded[-1]
    st, text = pit(csv_text([ev]), infmt="csv", fmt="csv")
    expect_eq(st, 200, text)
    row = list(csv.DictReader(io.StringIO(text)))[0]
    expect_eq(row["rt__label"], want["rt__label"])
    expect_eq(row["echo__n2"], want["echo__n2"])
    expect_eq(json.loads(row["rt__seen"]), want["rt__seen"])
    d = tempfile.mkdtemp()
    path = os.path.join(d, "events.csv")
    with open(path, "wb") as f:
        f.write(csv_text([e for e, _ in recorded]))
    out = os.path.join(d, "out.jsonl")
    rc, so, se = srv.cli("get-features-for-events", "--workspace", "r", "--feature-service", "svc",
                         "--events", path, "--output", out, "--chunk-size", "1k")
    expect_eq(rc, 0, se)
    rows = parse_jsonl(open(out).read())
    for r in rows:
        r["tag"] = int(r["tag"])
    compare(rows, "cli in parts")


def test_missing_request_context_column():
    events = [{"user_id": "u1", "timestamp": iso(T0 + 60), "amount": 3.5, "n": 1, "flag": True}]
    st, b = pit(jsonl(events))
    expect_eq((st, b), (400, {"error": "event 0: no column `channel` for the request context of realtime feature view `echo`",
                              "code": 3,
                              "message": "event 0: no column `channel` for the request context of realtime feature view `echo`"}))
    events = [{"user_id": "u1", "timestamp": iso(T0 + 60), "amount": 3.5, "channel": "web", "flag": True}]
    st, b = pit(csv_text(events), infmt="csv")
    expect_eq(st, 400, b)
    expect_eq(b["message"], "event 0: no column `n` for the request context of realtime feature view `echo`")


def test_bad_request_context_value():
    events = [{"user_id": "u1", "timestamp": iso(T0 + 60), "amount": 3.5, "channel": "web", "n": 1, "flag": True},
              {"user_id": "u1", "timestamp": iso(T0 + 60), "amount": "lots", "channel": "web", "n": 1, "flag": True}]
    for body, infmt in ((jsonl(events), "jsonl"), (csv_text(events), "csv")):
        st, b = pit(body, infmt=infmt)
        expect_eq(st, 400, b)
        expect(b["message"].startswith("event 1: Request context key `amount`: "), b)
        st, b = online("u1", {k: events[1][k] for k in ("amount", "channel", "n", "flag")})
        expect_eq(st, 400, b)
        expect(b["message"].startswith("Request context key `amount`: "), b)


def test_failing_and_endless_functions_as_online():
    """A failing function names file:line, an endless one hits the online instruction budget
    (--lua-instructions), offline as online; event numbers count from the whole file."""
    for channel, what in (("boom", "realtime.lua:51: no such channel"), ("spin", "instruction limit exceeded")):
        ctx = {"amount": 3.5, "channel": channel, "n": 1, "flag": True}
        st, b = online("u1", ctx)
        expect_eq(st, 400, b)
        expect(what in b["message"], b)
        events = [dict({"user_id": "u1", "timestamp": iso(T0 + 60)}, **ctx)]
        st, b2 = srv.request("POST", FS + "get-features-for-events?workspace_name=r&feature_service_name=svc"
                             "&event_offset=7", raw=jsonl(events))
        expect_eq(st, 400, b2)
        expect_eq(b2["message"], "event 7: " + b["message"])


run(globals())
