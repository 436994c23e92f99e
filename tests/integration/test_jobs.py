"""Batch jobs: backfill from CSV, JSON Lines and Parquet on apply, resume after kill -9 without
double counting, malformed files, rejected rows, scheduled materialization of new files,
cancel and retry."""

import csv
import json
import os
import random
import shutil
import tempfile
import time

from harness import (set_clock, SRCDIR, Server, expect, expect_eq, run, wait_for)

REPO = os.path.join(SRCDIR, "tests", "data", "repos", "batch")
PARQUET = os.path.join(SRCDIR, "tests", "data", "parquet")
NOW = "2024-01-01T00:00:00Z"
PAUSE = "SLUICE_TEST_JOB_PAUSE_ROWS"  # test hook of core/jobs.c: hold a job mid-run
COLS = ["id", "ts", "i64", "f64", "s", "b"]
servers = []


def make_repo(fmt, files):
    """A copy of the batch repository reading `fmt` files; files: name -> bytes."""
    d = tempfile.mkdtemp(prefix="sluice-repo-")
    src = open(os.path.join(REPO, "batch.lua")).read().replace('file_format = "parquet"', 'file_format = "%s"' % fmt)
    with open(os.path.join(d, "batch.lua"), "w") as f:
        f.write(src)
    os.mkdir(os.path.join(d, "data"))
    for name, data in files.items():
        with open(os.path.join(d, "data", name), "wb") as f:
            f.write(data)
    return d


def types_rows():
    with open(os.path.join(PARQUET, "types.jsonl")) as f:
        return [{k: r[k] for k in COLS} for r in map(json.loads, f)]


def as_csv(rows):
    lines = [",".join(COLS)]
    for r in rows:
        cells = []
        for k in COLS:
            v = r[k]
            if v is None:
                cells.append("")
            elif isinstance(v, bool):
                cells.append("true" if v else "false")
            elif isinstance(v, str):
                cells.append('"' + v.replace('"', '""') + '"')
            else:
                cells.append(repr(v) if isinstance(v, float) else str(v))
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode()


def as_jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def start(repo, ws="b", args=(), env=None):
    srv = Server(args=["--fake-now", NOW] + list(args), env=env).start()
    servers.append(srv)
    rc, out, err = srv.cli("workspace", "create", ws, "--live")
    assert rc == 0, err
    rc, out, err = srv.cli("apply", "--workspace", ws, repo)
    assert rc == 0, out + err
    expect("Started backfill job" in out, out)
    return srv


def jobs(srv, ws="b"):
    st, b = srv.request("GET", "/v1/jobs?workspace=" + ws)
    expect_eq(st, 200, b)
    return b["jobs"]


def wait_jobs(srv, states=("succeeded",), timeout=60):
    def done():
        js = jobs(srv)
        return js if js and all(j["state"] not in ("queued", "running") for j in js) else None
    js = wait_for(done, timeout, "jobs to finish")
    for j in js:
        expect(j["state"] in states, j)
    return js


def features(srv, ids):
    st, b = srv.request("POST", "/api/v1/feature-service/get-features-batch", {"params": {
        "workspace_name": "b", "feature_service_name": "svc",
        "request_data": [{"join_key_map": {"id": i}} for i in ids]}})
    expect_eq(st, 200, b)
    names = [f["name"] for f in b["metadata"]["features"]]
    return [dict(zip(names, r["features"])) for r in b["result"]]


def check_against(srv, rows, sample):
    want = {}
    for r in rows:
        if r["ts"] is not None:  # rows without a time are rejected
            want.setdefault(r["id"], []).append(r)
    got = features(srv, sample)
    for i, g in zip(sample, got):
        if i not in want:
            expect_eq(g["attrs.i64"], None, "id %s" % i)
            continue
        rs = sorted(want[i], key=lambda r: r["ts"])
        last = rs[-1]
        expect_eq(g["attrs.i64"], None if last["i64"] is None else str(last["i64"]), "id %s i64" % i)
        expect_eq(g["attrs.s"], last["s"], "id %s s" % i)
        expect_eq(g["attrs.b"], last["b"], "id %s b" % i)
        f = [r["f64"] for r in rs if r["f64"] is not None]
        if f:
            expect(abs(g["totals.total"] - sum(f)) <= 1e-9 * max(1, abs(sum(f))), (i, g, sum(f)))
        expect_eq(g["totals.n"], str(len([r for r in rs if r["i64"] is not None])), "id %s n" % i)


def teardown_module():
    errors = []
    for s in servers:  # every server stops, even after one that exits badly
        try:
            s.cleanup()
        except AssertionError as e:
            errors.append(e)
    if errors:
        raise errors[0]


def test_backfill_parquet_csv_jsonl_agree():
    rows = types_rows()
    sample = list(range(0, 300, 7))
    with open(os.path.join(PARQUET, "types_snappy.parquet"), "rb") as f:
        pq = f.read()
    for fmt, files in (("parquet", {"types.parquet": pq}), ("csv", {"types.csv": as_csv(rows)}),
                       ("jsonl", {"types.jsonl": as_jsonl(rows)})):
        srv = start(make_repo(fmt, files))
        js = wait_jobs(srv)
        expect_eq(sorted(j["featureView"] for j in js), ["attrs", "totals"])
        expect(all(j["rowsRead"] == "300" for j in js), js)
        check_against(srv, rows, sample)
        srv.cleanup()


def big_rows(n, seed=3):
    rng = random.Random(seed)
    out = []
    for k in range(n):
        out.append({"id": rng.randrange(500), "ts": "2023-%02d-%02dT%02d:%02d:00Z" % (
            rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24), rng.randrange(60)),
            "i64": rng.randrange(-1000, 1000), "f64": round(rng.uniform(-100, 100), 3),
            "s": "s%d" % rng.randrange(50), "b": rng.random() < 0.5})
    return out


def test_resume_after_kill_9_counts_every_row_once():
    rows = big_rows(120000)
    # the test hook holds the first job once it has read 10000 rows (and checkpointed them)
    srv = start(make_repo("csv", {"big.csv": as_csv(rows)}), env={PAUSE: "10000"})
    wait_for(lambda: "holds after" in srv.log_text(), 60, "the backfill to hold mid-run")
    expect(any(j["state"] == "running" and int(j["rowsRead"]) >= 10000 for j in jobs(srv)), jobs(srv))
    srv.kill9()
    srv.env = None  # the other view's job must not hold after the restart
    srv.start()
    js = wait_jobs(srv, timeout=120)
    expect(all(j["rowsRead"] == "120000" for j in js), js)
    check_against(srv, rows, list(range(0, 500, 3)))
    expect("resumes from its checkpoint" in srv.log_text(), srv.log_text())


def test_rejected_rows_are_counted_and_reported():
    rows = [r for r in types_rows() if r["ts"] is not None][:50]
    text = as_csv(rows).decode().splitlines()
    text[10] = text[10].replace(text[10].split(",")[2], "notanumber", 1)
    text[20] = text[20].replace(text[20].split(",")[1], "yesterday", 1)
    srv = start(make_repo("csv", {"x.csv": ("\n".join(text) + "\n").encode()}))
    js = wait_jobs(srv)
    for j in js:
        expect_eq(j["rowsRejected"], "2", j)
        expect_eq(len(j["firstErrors"]), 2, j)
        expect(any("field `i64`" in e["errorMessage"] for e in j["firstErrors"]), j)
    srv.cleanup()


def test_malformed_file_fails_the_job_with_a_clear_error():
    rows = [r for r in types_rows() if r["ts"] is not None][:40]
    good = as_csv(rows).decode()
    bad_line = good.count("\n") + 1  # some values hold newlines: count physical lines
    text = good + '7,"2023-01-01T00:00:00Z,1,1.0,x,true\n'
    srv = start(make_repo("csv", {"bad.csv": text.encode()}))
    js = wait_jobs(srv, states=("failed",))
    for j in js:
        expect("bad.csv: line %d: unterminated quoted field" % bad_line in j["error"], j["error"])
    with open(os.path.join(PARQUET, "truncated.parquet"), "rb") as f:
        srv2 = start(make_repo("parquet", {"t.parquet": f.read()}), ws="b")
    js = wait_jobs(srv2, states=("failed",))
    expect(all(j["error"] for j in js), js)
    srv.cleanup()
    srv2.cleanup()


def test_materialization_loads_new_files_once():
    rows = types_rows()
    first, second = rows[:150], rows[150:]
    repo = make_repo("csv", {"a.csv": as_csv(first)})
    srv = start(repo)
    wait_jobs(srv)
    with open(os.path.join(repo, "data", "b.csv"), "wb") as f:
        f.write(as_csv(second))
    set_clock(srv, "2024-01-01T01:00:01Z")
    wait_for(lambda: len([j for j in jobs(srv) if j["kind"] == "materialize"]) == 2, 20,
             "a materialization job per view")
    js = wait_jobs(srv)
    mats = [j for j in js if j["kind"] == "materialize"]
    expect_eq([j["rowsRead"] for j in mats], ["150", "150"], mats)
    check_against(srv, rows, list(range(0, 300, 11)))
    set_clock(srv, "2024-01-01T02:00:02Z")
    wait_for(lambda: len([j for j in jobs(srv) if j["kind"] == "materialize"]) == 4, 20, "a second run")
    js = wait_jobs(srv)
    expect_eq(sorted(j["rowsRead"] for j in js if j["kind"] == "materialize"), ["0", "0", "150", "150"])
    check_against(srv, rows, list(range(0, 300, 11)))
    srv.cleanup()


def test_cancel_then_retry_gives_the_full_result():
    rows = big_rows(150000, seed=5)
    srv = start(make_repo("csv", {"big.csv": as_csv(rows)}), env={PAUSE: "4000"})
    wait_for(lambda: "holds after" in srv.log_text(), 60, "a job to hold mid-run")
    job = next(j for j in jobs(srv) if j["state"] == "running")
    expect(4000 <= int(job["rowsRead"]) < 150000, job)
    st, b = srv.request("POST", "/v1/jobs/%s/cancel" % job["id"])
    expect_eq(st, 200, b)
    wait_for(lambda: next(j for j in jobs(srv) if j["id"] == job["id"])["state"] == "cancelled", 30, "cancel")
    rc, out, err = srv.cli("jobs", "retry", job["id"])
    expect_eq(rc, 0, err)
    rc, out, err = srv.cli("jobs", "show", job["id"], "--follow")
    expect_eq(rc, 0, out + err)
    expect("succeeded" in out, out)
    wait_jobs(srv, states=("succeeded",))
    check_against(srv, rows, list(range(0, 500, 7)))
    st, b = srv.request("POST", "/v1/jobs/%s/retry" % job["id"])
    expect_eq(st, 400, b)


run(globals())
