"""Realtime (request-time) views and the rest of the fraud example: a service mixing views of
two entities, request context, and user Lua run at read time."""

import json
import os

from harness import (SRCDIR, Server, check_range_csv, example_dir, expect, expect_eq, run)

srv = None
FS = "/api/v1/feature-service/"
NOW = "2023-03-03T20:00:00Z"
SVC = "fraud_detection_feature_service"


def setup_module():
    global srv
    srv = Server(args=["--fake-now", NOW]).start()
    rc, out, err = srv.cli("workspace", "create", "fraud", "--live")
    assert rc == 0, err
    rc, out, err = srv.cli("apply", "--workspace", "fraud", example_dir("fraud"))
    assert rc == 0, out + err
    with open(os.path.join(example_dir("fraud"), "data", "transactions.jsonl")) as f:
        recs = [{"record": json.loads(l)} for l in f if l.strip()]
    st, b = srv.ingest({"transactions": recs}, ws="fraud")
    assert st == 200, b


def teardown_module():
    srv.cleanup()


def get(user, merchant, amount=None, ctx=None):
    params = {"workspace_name": "fraud", "feature_service_name": SVC,
              "join_key_map": {"user_id": user, "merchant": merchant},
              "request_context_map": ctx if ctx is not None else {"amount": amount}}
    return srv.request("POST", FS + "get-features", {"params": params})


def values(b):
    return {f["name"]: v for f, v in zip(b["metadata"]["features"], b["result"]["features"])}


def test_realtime_view_comes_first_and_computes():
    st, b = get("U1005", "nordic_tech", 5000.0)
    expect_eq(st, 200, b)
    names = [f["name"] for f in b["metadata"]["features"]]
    expect_eq(names[0], "transaction_amount_is_high.transaction_amount_is_high")
    views = [n.split(".")[0] for n in names]
    expect_eq(views[1:], sorted(views[1:]), "after the realtime views, views in alphabetical order")
    expect_eq(values(b)["transaction_amount_is_high.transaction_amount_is_high"], "1")
    st, b = get("U1005", "nordic_tech", 1.0)
    expect_eq(values(b)["transaction_amount_is_high.transaction_amount_is_high"], "0")


def test_realtime_reads_its_input_view():
    st, b = get("U1005", "nordic_tech", 1.0)
    mean = values(b)["user_transaction_aggregates.amount_mean_1d_1h"]
    expect(mean is not None and mean > 0, b)
    amount = round(mean * 3 + 1, 2)
    st, b = get("U1005", "nordic_tech", amount)
    expect_eq(values(b)["transaction_amount_is_high.transaction_amount_is_high"], "1")
    st, b = get("U1005", "nordic_tech", round(mean * 3 - 1, 2))
    expect_eq(values(b)["transaction_amount_is_high.transaction_amount_is_high"], "0")


def test_unknown_user_null_input():
    st, b = get("nobody", "nordic_tech", 10.0)
    expect_eq(st, 200, b)
    expect_eq(values(b)["transaction_amount_is_high.transaction_amount_is_high"], "0")


def test_mixed_entities():
    st, b = get("U1005", "nordic_tech", 10.0)
    v = values(b)
    expect(v["merchant_fraud_rate.fraud_rate_7d"] is not None, v)
    expect(v["user_last_transaction.amount"] is not None, v)
    st, b = srv.request("POST", FS + "get-features", {"params": {
        "workspace_name": "fraud", "feature_service_name": SVC,
        "join_key_map": {"user_id": "U1005"}, "request_context_map": {"amount": 1.0}}})
    expect_eq(st, 400, b)
    expect_eq(b["message"], "Missing required join key: merchant")


def test_request_context_errors():
    st, b = get("U1005", "nordic_tech", ctx={})
    expect_eq(st, 400, b)
    expect_eq((b["code"], b["message"]), (3, "Missing required request context key: amount"))
    st, b = get("U1005", "nordic_tech", ctx={"amount": "lots"})
    expect_eq(st, 400, b)
    expect("Request context key `amount`" in b["message"], b)


def test_metadata_lists_request_keys():
    st, b = srv.request("POST", FS + "metadata", {"params": {"workspace_name": "fraud", "feature_service_name": SVC}})
    expect_eq(st, 200, b)
    expect_eq(b["inputRequestContextKeys"], [{"name": "amount", "dataType": {"type": "float64"}}])
    expect_eq(sorted(k["name"] for k in b["inputJoinKeys"]), ["merchant", "user_id"])


def test_feature_descriptions_and_tags():
    """include_feature_descriptions / include_feature_tags: a feature's own description, else
    its view's; its view's tags overlaid with its own; nothing when empty or not asked."""
    want = {
        "transaction_amount_is_high.transaction_amount_is_high": {"description": "Whether the amount is high for this user"},
        "user_transaction_aggregates.amount_mean_1d_1h": {
            "description": "Spending of a user over several windows",
            "tags": {"stage": "production", "team": "fraud"}},
        "user_transaction_aggregates.transaction_count_30d": {
            "description": "Transactions in the last 30 days", "tags": {"stage": "beta", "team": "fraud"}},
        "user_last_transaction.amount": {
            "description": "Amount of the latest transaction, in the card's currency", "tags": {"unit": "currency"}},
        "user_last_transaction.last_merchant": {"description": "The user's latest transaction"},
    }
    doc = lambda m: {k: m[k] for k in ("description", "tags") if k in m}
    for opts in ({"include_feature_descriptions": True, "include_feature_tags": True},
                 {"includeFeatureDescriptions": True, "includeFeatureTags": True, "includeNames": True}):
        params = {"workspace_name": "fraud", "feature_service_name": SVC,
                  "join_key_map": {"user_id": "U1005", "merchant": "nordic_tech"},
                  "request_context_map": {"amount": 1.0}, "metadata_options": opts}
        st, b = srv.request("POST", FS + "get-features", {"params": params})
        expect_eq(st, 200, b)
        got = {f["name"]: doc(f) for f in b["metadata"]["features"]}
        for name, w in want.items():
            expect_eq(got[name], w, name)
        st, b = srv.request("POST", FS + "get-features-batch", {"params": dict(
            params, request_data=[{"join_key_map": params["join_key_map"], "request_context_map": {"amount": 1.0}}])})
        expect_eq(st, 200, b)
        expect_eq({f["name"]: doc(f) for f in b["metadata"]["features"]}, got)
        st, b = srv.request("POST", FS + "metadata", {"params": params})
        expect_eq(st, 200, b)
        expect_eq({f["name"]: doc(f) for f in b["featureValues"]}, got)
    params = {"workspace_name": "fraud", "feature_service_name": SVC,
              "join_key_map": {"user_id": "U1005", "merchant": "nordic_tech"},
              "request_context_map": {"amount": 1.0},
              "metadata_options": {"include_feature_descriptions": True}}
    st, b = srv.request("POST", FS + "get-features", {"params": params})
    got = {f["name"]: doc(f) for f in b["metadata"]["features"]}
    expect_eq(got["user_last_transaction.amount"], {"description": want["user_last_transaction.amount"]["description"]})
    st, b = get("U1005", "nordic_tech", 1.0)
    expect(all(not doc(f) for f in b["metadata"]["features"]), "not asked: not sent")
    st, b = srv.request("POST", FS + "metadata", {"params": {"workspace_name": "fraud", "feature_service_name": SVC}})
    expect(all(not doc(f) for f in b["featureValues"]), "not asked: not sent")


def test_example_training_events():
    """The example's training events: the realtime view computed per event from the row's own
    request context and input values, and equal to get-features for the events at NOW."""
    out = os.path.join(__import__("tempfile").mkdtemp(), "train.jsonl")
    rc, so, se = srv.cli("get-features-for-events", "--workspace", "fraud", "--feature-service", SVC,
                         "--events", os.path.join(example_dir("fraud"), "data", "training_events.csv"),
                         "--output", out)
    expect_eq(rc, 0, se)
    rows = [json.loads(l) for l in open(out) if l.strip()]
    expect_eq(len(rows), 6)
    rt = "transaction_amount_is_high__transaction_amount_is_high"
    for r in rows:
        mean = r["user_transaction_aggregates__amount_mean_1d_1h"]
        amount = float(r["amount"])
        want = amount > 1000 or (mean is not None and amount > 3 * mean)
        expect_eq(r[rt], "1" if want else "0", r)
        if r["timestamp"] == NOW:
            st, b = get(r["user_id"], r["merchant"], amount)
            expect_eq(st, 200, b)
            for name, v in values(b).items():
                expect_eq(r[name.replace(".", "__")], v, name)
    expect_eq([r[rt] for r in rows], ["0", "1", "0", "1", "0", "0"])


def test_failing_realtime_function_names_file_and_line():
    d = __import__("tempfile").mkdtemp()
    for name in os.listdir(example_dir("fraud")):
        if name.endswith(".lua"):
            src = open(os.path.join(example_dir("fraud"), name)).read()
            src = src.replace("local high = request.amount > 1000", "local high = request.nope.x > 1000")
            open(os.path.join(d, name), "w").write(src)
    rc, out, err = srv.cli("workspace", "create", "fraud2", "--live")
    rc, out, err = srv.cli("apply", "--workspace", "fraud2", d)
    expect_eq(rc, 0, err)
    params = {"workspace_name": "fraud2", "feature_service_name": SVC,
              "join_key_map": {"user_id": "U1005", "merchant": "x"}, "request_context_map": {"amount": 1.0}}
    st, b = srv.request("POST", FS + "get-features", {"params": params})
    expect_eq(st, 400, b)
    expect("transaction_features.lua:79" in b["message"], b)


def test_range_csv_is_one_table_over_both_entities():
    """get-features-in-range --format csv over a service of two entities (user, merchant)
    and a realtime view: one rectangular table whose rows are the JSON Lines rows, the
    other entity's key and the other views' features empty."""
    args = ["get-features-in-range", "--workspace", "fraud", "--feature-service", SVC,
            "--start", "2023-02-01T00:00:00Z", "--end", NOW, "--quiet"]
    rc, out, err = srv.cli(*(args + ["--format", "jsonl"]))
    expect_eq(rc, 0, err)
    rows = [json.loads(l) for l in out.splitlines()]
    expect_eq(sorted({r["_feature_view"] for r in rows}),
              ["merchant_fraud_rate", "user_last_transaction", "user_transaction_aggregates"])
    rc, text, err = srv.cli(*(args + ["--format", "csv", "--page-size", "5"]))
    expect_eq(rc, 0, err)
    header = text.splitlines()[0].split(",")
    expect_eq(header[:5], ["_feature_view", "user_id", "merchant", "_valid_from", "_valid_to"])
    check_range_csv(text, rows)


run(globals())
