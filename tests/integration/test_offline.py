"""The offline store and get-features-for-events: parity with online answers recorded while
replaying an event stream, edge cases, formats, and a torn segment tail after kill -9."""

import csv
import io
import json
import os
import random
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import harness
from harness import (iso, BIN, SRCDIR, Server, check_range_csv, expect, expect_eq, parse_jsonl,
                     run, same)

srv = None
REPO = os.path.join(SRCDIR, "tests", "data", "repos", "parity")
T0 = 1735732800  # 2025-01-01T12:00:00Z
recorded = []    # (user, t, {name: value})


def set_clock(t):
    harness.set_clock(srv, t)


def setup_module():
    global srv
    srv = Server(args=["--fake-now", iso(T0)]).start()
    rc, out, err = srv.cli("workspace", "create", "p", "--live")
    assert rc == 0, err
    rc, out, err = srv.cli("apply", "--workspace", "p", REPO)
    assert rc == 0, out + err


def teardown_module():
    srv.cleanup()


def online(user):
    st, b = srv.get_features({"user_id": user}, ws="p", service="svc")
    expect_eq(st, 200, b)
    return {f["name"].replace(".", "__"): v for f, v in zip(b["metadata"]["features"], b["result"]["features"])}


def pit(events, fmt="jsonl", infmt="jsonl", ts_key="timestamp"):
    q = "workspace_name=p&feature_service_name=svc&format=%s&input_format=%s&timestamp_key=%s" % (fmt, infmt, ts_key)
    if infmt == "jsonl":
        body = "".join(json.dumps(e) + "\n" for e in events).encode()
    else:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(events[0].keys()))
        w.writeheader()
        w.writerows(events)
        body = buf.getvalue().encode()
    st, b = srv.request("POST", "/api/v1/feature-service/get-features-for-events?" + q, raw=body)
    expect_eq(st, 200, b)
    return b


def test_parity_with_online_answers():
    rng = random.Random(11)
    users = ["u%d" % i for i in range(4)]
    clock = T0
    for step in range(60):
        nxt = clock + rng.uniform(5, 240)
        evs = []
        for _ in range(rng.randrange(0, 6)):
            t = rng.uniform(clock + 0.001, nxt)
            evs.append({"record": {"user_id": rng.choice(users), "ts": iso(t),
                                   "amount": round(rng.uniform(1, 100), 2), "qty": rng.randrange(0, 9),
                                   "merchant": "m%d" % rng.randrange(5)}})
        set_clock(nxt)
        if evs:
            rng.shuffle(evs)  # out of order within the step
            st, b = srv.ingest({"tx": evs}, ws="p")
            expect_eq(st, 200, b)
        clock = nxt
        for u in rng.sample(users, 2):
            recorded.append((u, clock, online(u)))
    events = [{"user_id": u, "timestamp": iso(t), "tag": i} for i, (u, t, _) in enumerate(recorded)]
    rows = parse_jsonl(pit(events))
    expect_eq(len(rows), len(recorded))
    mismatches = []
    for i, (row, (u, t, want)) in enumerate(zip(rows, recorded)):
        expect_eq((row["user_id"], row["tag"]), (u, i), "input columns kept, input order kept")
        for name, w in want.items():
            if not same(row[name], w):
                mismatches.append("%s at %s: %s offline %r, online %r" % (u, iso(t), name, row[name], w))
    expect(not mismatches, "\n".join(mismatches[:20]))


def test_get_features_in_range_agrees_with_online_answers():
    start, end = T0 - 86400, recorded[-1][1] + 1
    q = ("workspace_name=p&feature_service_name=svc&start_time=%s&end_time=%s&format=jsonl"
         % (iso(start), iso(end)))
    st, b = srv.request("POST", "/api/v1/feature-service/get-features-in-range?" + q, raw=b"")
    expect_eq(st, 200, b)
    rows = parse_jsonl(b)
    expect(rows, "no rows")
    by = {}
    for r in rows:
        by.setdefault((r["_feature_view"], r["user_id"]), []).append(r)
    for rs in by.values():  # intervals of one view and entity follow each other without gaps
        rs.sort(key=lambda r: r["_valid_from"])
        for a, c in zip(rs, rs[1:]):
            expect_eq(a["_valid_to"], c["_valid_from"], rs)
    mismatches = []
    for u, t, want in recorded:
        ts = iso(t)
        for view in ("last_tx", "tiled", "cont"):
            cand = [r for r in by.get((view, u), []) if r["_valid_from"] <= ts < r["_valid_to"]]
            names = [n for n in want if n.startswith(view + "__")]
            if not cand:  # before the entity's first row: online had nothing either
                if any(want[n] not in (None, "0") for n in names):
                    mismatches.append("%s %s at %s: no row, online %r" % (view, u, ts, {n: want[n] for n in names}))
                continue
            for n in names:
                if not same(cand[0][n], want[n]):
                    mismatches.append("%s at %s: %s range %r, online %r" % (u, ts, n, cand[0][n], want[n]))
    expect(not mismatches, "\n".join(mismatches[:20]))
    rc, out, err = srv.cli("get-features-in-range", "--workspace", "p", "--feature-service", "svc",
                           "--start", iso(start), "--end", iso(end), "--format", "csv")
    expect_eq(rc, 0, err)
    expect(out.startswith("_feature_view,user_id,_valid_from,_valid_to,"), out[:200])
    check_range_csv(out, rows)


def test_get_features_in_range_in_pages():
    """Pages of page_size rows, resumed with the Sluice-Next-Page-Token header, put together
    make the whole answer (the CSV table has its header on the first page only); the CLI pages the same way."""
    start, end = T0 - 86400, recorded[-1][1] + 1
    base = ("/api/v1/feature-service/get-features-in-range?workspace_name=p&feature_service_name=svc"
            "&start_time=%s&end_time=%s" % (iso(start), iso(end)))
    d = tempfile.mkdtemp()
    for fmt in ("jsonl", "csv"):
        st, whole = srv.request("POST", base + "&format=" + fmt, raw=b"")
        expect_eq(st, 200, whole)
        pages, token = [], None
        while True:
            path = base + "&format=%s&page_size=3" % fmt
            if token:
                path += "&page_token=" + urllib.parse.quote(token)
            req = urllib.request.Request(srv.url + path, data=b"", method="POST",
                                         headers={"Authorization": "Sluice-key " + srv.key})
            with urllib.request.urlopen(req, timeout=30) as r:
                pages.append(r.read().decode())
                token = r.headers.get("Sluice-Next-Page-Token")
            expect(len(pages) < 10000, "paging does not end")
            if not token:
                break
        expect(len(pages) > 3, len(pages))
        expect_eq("".join(pages), whole)
        out = os.path.join(d, "range." + fmt)
        rc, so, se = srv.cli("get-features-in-range", "--workspace", "p", "--feature-service", "svc",
                             "--start", iso(start), "--end", iso(end), "--format", fmt,
                             "--page-size", "2", "--output", out)
        expect_eq(rc, 0, se)
        expect_eq(open(out).read(), whole)
    for bad in ("x", "0.zz", "0.abc", "99999999999.00"):
        st, b = srv.request("POST", base + "&page_size=2&page_token=" + urllib.parse.quote(bad), raw=b"")
        expect_eq((st, b.get("message") if isinstance(b, dict) else b), (400, "malformed page token"))
    st, b = srv.request("POST", base + "&page_size=0", raw=b"")
    expect_eq(st, 400, b)


def test_edge_cases():
    u = "edge"
    base = T0 + 100000
    set_clock(base)
    st, b = srv.ingest({"tx": [{"record": {"user_id": u, "ts": iso(base - 100), "amount": 5.0, "qty": 1, "merchant": "a"}}]}, ws="p")
    expect_eq(st, 200, b)
    rows = parse_jsonl(pit([
        {"user_id": u, "timestamp": iso(base - 200)},    # before any row
        {"user_id": u, "timestamp": iso(base - 100)},    # exactly at the row's time
        {"user_id": u, "timestamp": iso(base - 100 + 3601)},  # past the 1h ttl
        {"user_id": "nobody", "timestamp": iso(base)},
    ]))
    expect_eq([r["last_tx__amount"] for r in rows], [None, 5.0, None, None])
    expect_eq([r["tiled__life"] for r in rows], ["0", "0", "1", "0"])
    expect_eq([r["cont__sum10m"] for r in rows], [None, "1", None, None])


def test_csv_in_and_out_and_cli():
    u, t = recorded[-1][0], recorded[-1][1]
    text = pit([{"user_id": u, "timestamp": iso(t), "note": "a,b"}], fmt="csv", infmt="csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    expect_eq(rows[0]["note"], "a,b")
    want = recorded[-1][2]
    expect_eq(rows[0]["tiled__sum1h"], want["tiled__sum1h"] or "")
    expect_eq(rows[0]["cont__last10m"], want["cont__last10m"] or "")
    d = tempfile.mkdtemp()
    ev = os.path.join(d, "events.csv")
    with open(ev, "w") as f:
        f.write("user_id,ts\n%s,%s\n" % (u, iso(t)))
    out = os.path.join(d, "out.jsonl")
    rc, so, se = srv.cli("get-features-for-events", "--workspace", "p", "--feature-service", "svc",
                         "--events", ev, "--timestamp-key", "ts", "--output", out)
    expect_eq(rc, 0, se)
    got = parse_jsonl(open(out).read())[0]
    expect_eq(got["tiled__sum1h"], want["tiled__sum1h"])


def cli_pit(*args, stderr_tty=False):
    """Runs `sluice get-features-for-events`; with stderr_tty its stderr is a terminal."""
    env = dict(os.environ, SLUICE_URL=srv.url, SLUICE_API_KEY=srv.key)
    cmd = [BIN, "get-features-for-events", "--workspace", "p", "--feature-service", "svc"] + list(args)
    if not stderr_tty:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    out = p.stdout.read()
    p.wait(timeout=60)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:
            break
        if not b:
            break
        chunks.append(b)
    os.close(master)
    return p.returncode, out, b"".join(chunks).decode(errors="replace")


def test_cli_sends_large_files_in_parts():
    """A file larger than --chunk-size goes in parts: the same rows, in input order, one CSV
    header, quoted newlines and blank lines kept apart correctly; errors number lines and
    events in the whole file; --output is written whole or not at all."""
    d = tempfile.mkdtemp()
    events = [{"user_id": u, "timestamp": iso(t), "note": "n%d,\"x\"\nline two" % i if i % 3 == 0 else "n%d" % i}
              for i, (u, t, _) in enumerate(recorded)]
    ev = os.path.join(d, "events.csv")
    with open(ev, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["user_id", "timestamp", "note"])
        w.writeheader()
        for i, e in enumerate(events):
            w.writerow(e)
            if i % 7 == 0:
                f.write("\n")  # a blank line
    whole = os.path.join(d, "whole.csv")
    rc, so, se = cli_pit("--events", ev, "--format", "csv", "--output", whole)
    expect_eq(rc, 0, se)
    parts = os.path.join(d, "parts.csv")
    rc, so, se = cli_pit("--events", ev, "--format", "csv", "--output", parts, "--chunk-size", "300")
    expect_eq(rc, 0, se)
    expect_eq(se, "", "no progress when stderr is not a terminal")
    a, b = open(whole).read(), open(parts).read()
    expect_eq(b, a)
    rows = list(csv.DictReader(io.StringIO(b)))
    expect_eq([r["note"] for r in rows], [e["note"] for e in events])
    for row, (u, t, want) in zip(rows, recorded):
        expect_eq(row["tiled__sum1h"], want["tiled__sum1h"] or "")

    # JSON Lines, from stdin, to stdout, in parts of one record
    body = "".join(json.dumps({"user_id": u, "timestamp": iso(t), "i": i}) + "\n"
                   for i, (u, t, _) in enumerate(recorded))
    rc, so, se = srv.cli("get-features-for-events", "--workspace", "p", "--feature-service", "svc",
                         "--chunk-size", "1", input=body)
    expect_eq(rc, 0, se)
    got = parse_jsonl(so)
    expect_eq([r["i"] for r in got], list(range(len(recorded))))
    for row, (u, t, want) in zip(got, recorded):
        expect_eq(row["tiled__sum1h"], want["tiled__sum1h"])

    # progress on a terminal
    rc, so, se = cli_pit("--events", ev, "--format", "csv", "--chunk-size", "2k", stderr_tty=True)
    expect_eq(rc, 0, se)
    expect("events/s" in se and ("%d events" % len(events)) in se, se)
    rc, so, se = cli_pit("--events", ev, "--format", "csv", "--chunk-size", "2k", "--quiet", stderr_tty=True)
    expect_eq((rc, se), (0, ""))

    # a bad event in a later part: numbered in the whole file; no output file is left
    lines = ["{\"user_id\": \"u0\", \"timestamp\": \"%s\"}" % iso(T0)] * 40
    lines[30] = "{\"user_id\": \"u0\", \"timestamp\": \"yesterday\"}"
    lines.insert(10, "")
    bad = os.path.join(d, "bad.jsonl")
    with open(bad, "w") as f:
        f.write("\n".join(lines) + "\n")
    out = os.path.join(d, "bad-out.jsonl")
    rc, so, se = cli_pit("--events", bad, "--output", out, "--chunk-size", "200")
    expect_eq(rc, 1, se)
    expect("event 30: `timestamp` must be an RFC 3339 time" in se, se)
    expect(not os.path.exists(out) and not os.path.exists(out + ".partial"), os.listdir(d))
    lines[30] = "{\"user_id\": \"u0\""
    with open(bad, "w") as f:
        f.write("\n".join(lines) + "\n")
    rc, so, se = cli_pit("--events", bad, "--chunk-size", "200")
    expect_eq(rc, 1, se)
    expect("events line 31:" in se, se)  # the 31st line of the file
    rc, so, se = cli_pit("--events", bad, "--chunk-size", "lots")
    expect_eq(rc, 2, se)


def test_errors():
    st, b = srv.request("POST", "/api/v1/feature-service/get-features-for-events?workspace_name=p&feature_service_name=svc",
                        raw=b'{"user_id": "x", "timestamp": 5}\n')
    expect_eq(st, 400, b)
    expect("`timestamp` must be an RFC 3339 time" in b["message"], b)
    for q, col in (("", "timestamp"), ("&timestamp_key=ts", "ts")):
        st, b = srv.request("POST", "/api/v1/feature-service/get-features-for-events?workspace_name=p"
                            "&feature_service_name=svc" + q, raw=b'{"user_id": "x", "time": "2025-01-01T00:00:00Z"}\n')
        expect_eq((st, b["message"]),
                  (400, "event 0 has no `%s` column (the events' time); name the column that holds it "
                        "with --timestamp-key (timestamp_key= over HTTP)" % col))
    st, b = srv.request("POST", "/api/v1/feature-service/get-features-for-events?workspace_name=p&feature_service_name=svc",
                        raw=b'{"timestamp": "2025-01-01T00:00:00Z"}\n')
    expect_eq(st, 400, b)
    expect("missing join key `user_id`" in b["message"], b)
    st, b = srv.request("POST", "/api/v1/feature-service/get-features-for-events?workspace_name=p&feature_service_name=nope", raw=b"")
    expect_eq(st, 404, b)
    st, b = srv.request("POST", "/api/v1/feature-service/get-features-for-events?workspace_name=p&feature_service_name=svc&input_format=csv",
                        raw=b'user_id,timestamp\n"x,2025-01-01T00:00:00Z\n')
    expect_eq(st, 400, b)
    expect("line 2" in b["message"], b)


def test_torn_segment_tail_after_kill_9():
    u = "torn"
    t = T0 + 200000
    set_clock(t)
    st, b = srv.ingest({"tx": [{"record": {"user_id": u, "ts": iso(t - 1), "amount": 7.0, "qty": 3, "merchant": "z"}}]}, ws="p")
    expect_eq(st, 200, b)
    srv.kill9()
    base = os.path.join(srv.data_dir, "offline", "p")
    d = os.path.join(base, [x for x in os.listdir(base) if x.startswith("last_tx@")][0])
    active = sorted(f for f in os.listdir(d) if f.startswith("active"))
    expect(active, os.listdir(d))
    with open(os.path.join(d, active[-1]), "ab") as f:
        f.write(b"\x40\x00\x00\x00torn-record-that-never-finished")
    srv.start()
    set_clock(t)
    rows = parse_jsonl(pit([{"user_id": u, "timestamp": iso(t)}]))
    expect_eq(rows[0]["last_tx__amount"], 7.0)
    expect_eq(rows[0]["tiled__life"], "0")
    st, b = srv.ingest({"tx": [{"record": {"user_id": u, "ts": iso(t), "amount": 8.0, "qty": 3, "merchant": "z"}}]}, ws="p")
    expect_eq(st, 200, b)
    rows = parse_jsonl(pit([{"user_id": u, "timestamp": iso(t)}]))
    expect_eq(rows[0]["last_tx__amount"], 8.0)
    expect("cut 35 bytes" in srv.log_text() and "incomplete record" in srv.log_text(), srv.log_text())


run(globals())
