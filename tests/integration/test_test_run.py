"""sluice test-run: a repository's views over records without a server print the rows that
ingest writes. Checked on the fraud example (two entities, attribute and aggregate views, a
realtime view) against a real server given the same records, and for bad input against the
record errors of POST /ingest."""

import json
import os
import subprocess
import tempfile

from harness import (BIN, Server, example_dir, expect, expect_eq, run, same)

srv = None
NOW = "2023-03-03T20:00:00Z"
SVC = "fraud_detection_feature_service"
FS = "/api/v1/feature-service/"
RECORDS = os.path.join(example_dir("fraud"), "data", "transactions.jsonl")


def setup_module():
    global srv
    srv = Server(args=["--fake-now", NOW]).start()
    rc, out, err = srv.cli("workspace", "create", "fraud", "--live")
    assert rc == 0, err
    # the example also loads its records from a batch file: here they come by ingest alone
    repo = tempfile.mkdtemp()
    for name in os.listdir(example_dir("fraud")):
        if name.endswith(".lua"):
            with open(os.path.join(example_dir("fraud"), name)) as f:
                text = f.read()
            text = text.replace('batch_config = FileConfig { uri = "data/transactions.jsonl", file_format = "jsonl",\n'
                                '                              timestamp_field = "timestamp" },', "")
            with open(os.path.join(repo, name), "w") as f:
                f.write(text)
    rc, out, err = srv.cli("apply", "--workspace", "fraud", repo)
    assert rc == 0 and "backfill" not in out, out + err
    st, b = srv.ingest({"transactions": [{"record": r} for r in records()]}, ws="fraud")
    assert st == 200, b


def teardown_module():
    srv.cleanup()


def records():
    with open(RECORDS) as f:
        return [json.loads(l) for l in f if l.strip()]


def trun(*args):
    p = subprocess.run([BIN, "test-run", example_dir("fraud"), "--source", "transactions"] + list(args),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, [json.loads(l) for l in p.stdout.splitlines()], p.stderr


def served(user, merchant):
    params = {"workspace_name": "fraud", "feature_service_name": SVC,
              "join_key_map": {"user_id": user, "merchant": merchant},
              "request_context_map": {"amount": 1.0}}
    st, b = srv.request("POST", FS + "get-features", {"params": params})
    expect_eq(st, 200, b)
    return {f["name"]: v for f, v in zip(b["metadata"]["features"], b["result"]["features"])}


def test_rows_match_what_the_server_serves():
    """Aggregate views as of --now and the newest attribute row of each entity are what
    get-features answers for the same records."""
    rc, rows, err = trun("--input", RECORDS, "--now", NOW)
    expect_eq(rc, 0, err)
    views = sorted({r["_feature_view"] for r in rows})
    expect_eq(views, ["merchant_fraud_rate", "user_last_transaction", "user_transaction_aggregates"])
    recs = records()
    users = sorted({r["user_id"] for r in recs})
    merchants = sorted({r["merchant"] for r in rows if r["_feature_view"] == "merchant_fraud_rate"})
    expect_eq(sorted(r["user_id"] for r in rows if r["_feature_view"] == "user_transaction_aggregates"), users)
    expect_eq(len(merchants), len({r["merchant"].lower() for r in recs}), merchants)
    expect_eq(len([r for r in rows if r["_feature_view"] == "user_last_transaction"]), len(recs))
    last = {}
    for r in rows:
        if r["_feature_view"] == "user_last_transaction":
            if r["user_id"] not in last or r["_timestamp"] >= last[r["user_id"]]["_timestamp"]:
                last[r["user_id"]] = r
    compared, mismatches = 0, []
    for r in rows:
        view = r["_feature_view"]
        if view == "user_last_transaction" and last[r["user_id"]] is not r:
            continue
        expect_eq(r["_timestamp"], NOW if view != "user_last_transaction" else r["_timestamp"])
        got = served(r.get("user_id", users[0]), r.get("merchant", merchants[0]))
        for name, want in got.items():
            v, f = name.split(".", 1)
            if v != view:
                continue
            expect(f in r, (f, r))
            compared += 1
            if not same(r[f], want):
                mismatches.append("%s %s: test-run %r, served %r" % (view, f, r[f], want))
    expect(not mismatches, "\n".join(mismatches))
    expect(compared > 30, compared)


def test_attribute_rows_are_the_offline_rows():
    """Each row of the attribute view is a row get-features-in-range shows from its time."""
    rc, rows, err = trun("--input", RECORDS, "--now", NOW, "--view", "user_last_transaction")
    expect_eq(rc, 0, err)
    expect_eq({r["_feature_view"] for r in rows}, {"user_last_transaction"})
    rc, out, err = srv.cli("get-features-in-range", "--workspace", "fraud", "--feature-service", SVC,
                           "--start", "2023-01-01T00:00:00Z", "--end", NOW, "--quiet")
    expect_eq(rc, 0, err)
    ranged = [json.loads(l) for l in out.splitlines()]
    ranged = {(r["user_id"], r["_valid_from"]): r for r in ranged
              if r["_feature_view"] == "user_last_transaction"}
    expect(ranged, out[:300])
    latest = {}
    for r in rows:  # equal consecutive rows are merged in the range answer
        key = (r["user_id"], r["_timestamp"])
        feats = {k: v for k, v in r.items() if not k.startswith("_") and k != "user_id"}
        prev = latest.get(r["user_id"])
        latest[r["user_id"]] = feats
        if prev == feats:
            continue
        expect(key in ranged, (key, sorted(ranged)[:5]))
        for k, v in feats.items():
            expect(same(ranged[key]["user_last_transaction__" + k], v), (key, k, v, ranged[key]))
    expect_eq(len(latest), len({r["user_id"] for r in records()}))


def test_aggregates_default_to_the_last_event():
    """Without --now, an aggregate view's values are as of each entity's last event: what
    --now at that time gives (with --view, only that view's rows and errors)."""
    rc, rows, err = trun("--input", RECORDS, "--view", "user_transaction_aggregates")
    expect_eq((rc, err), (0, ""))
    newest = {}
    for r in records():
        newest[r["user_id"]] = max(newest.get(r["user_id"], ""), r["timestamp"])
    expect_eq(sorted(r["user_id"] for r in rows), sorted(newest))
    for r in rows:
        expect(r["_timestamp"].startswith(newest[r["user_id"]][:19]), (r, newest[r["user_id"]]))
        rc, at, err = trun("--input", RECORDS, "--view", "user_transaction_aggregates",
                           "--now", r["_timestamp"])
        # later events of other users are too far in the future for that clock
        expect(rc == 0 or all("allowed clock skew" in e["errorMessage"]
                              for e in json.loads(err)["recordErrors"]), err)
        expect_eq([x for x in at if x["user_id"] == r["user_id"]], [r])


def test_bad_input_gives_the_ingest_record_errors():
    good = records()[0]
    bad = [dict(good, amount="lots"), {k: v for k, v in good.items() if k != "merchant"},
           dict(good, extra=1), dict(good, timestamp="2031-01-01T00:00:00Z"),
           dict(good, timestamp="2020-01-01T00:00:00Z"), dict(good, user_id=None), good]
    d = tempfile.mkdtemp()
    path = os.path.join(d, "bad.jsonl")
    with open(path, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in bad))
    rc, rows, err = trun("--input", path, "--now", NOW)
    expect_eq(rc, 1, err)
    got = json.loads(err)["recordErrors"]
    st, b = srv.ingest({"transactions": [{"record": r} for r in bad]}, ws="fraud", dry_run=True)
    want = b.get("recordErrors") if isinstance(b, dict) else None
    expect(want, (st, b))
    expect_eq(got, want)
    expect_eq(len({r["_feature_view"] for r in rows}), 3, rows)  # the good record's rows
    with open(path, "w") as f:
        f.write(json.dumps(good) + "\n{not json\n")
    rc, rows, err = trun("--input", path)
    expect_eq(rc, 1)
    expect(err.startswith("sluice: " + path + ":2: "), err)
    for args, msg in ((["--input", RECORDS, "--view", "nope"], "feeds no feature view `nope`"),
                      (["--input", RECORDS, "--now", "yesterday"], "--now takes an RFC 3339 time"),
                      (["--input", os.path.join(d, "missing.jsonl")], "cannot read")):
        rc, rows, err = trun(*args)
        expect(rc in (1, 2) and msg in err, (args, rc, err))


run(globals())
