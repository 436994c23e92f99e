"""POST /ingest against a real server: the documented 200 body, every request error with its
exact status and body, schema and TTL record errors, all-or-nothing, last write wins."""

import os
import sys

from harness import (Server, expect, expect_eq, now_rfc3339, run, setup_workspace, SRCDIR)

srv = None
TYPES = os.path.join(SRCDIR, "tests", "data", "repos", "types")


def setup_module():
    global srv
    srv = Server().start()
    setup_workspace(srv, "ads", "ads")
    rc, out, err = srv.cli("workspace", "create", "types", "--live")
    assert rc == 0, err
    rc, out, err = srv.cli("apply", "--workspace", "types", TYPES)
    assert rc == 0, out + err
    rc, out, err = srv.cli("workspace", "create", "dev")
    assert rc == 0, err
    rc, out, err = srv.cli("apply", "--workspace", "dev", TYPES)
    assert rc == 0, out + err


def teardown_module():
    srv.cleanup()


def click(user, ts=None, clicked=1):
    return {"record": {"timestamp": ts or now_rfc3339(), "user_id": user, "clicked": clicked}}


def clicked_of(user):
    st, body = srv.get_features({"user_id": user})
    assert st == 200, body
    names = [f["name"] for f in body["metadata"]["features"]]
    i = names.index("click_events_fv.clicked")
    return body["result"]["features"][i], body["metadata"]["features"][i]["status"]


def request_error(st, body, status, type_, fragment):
    expect_eq(st, status, "status (body %r)" % (body,))
    expect(isinstance(body, dict) and "requestError" in body, "requestError body: %r" % (body,))
    expect_eq(sorted(body["requestError"]), ["errorMessage", "errorType"])
    expect_eq(body["requestError"]["errorType"], type_)
    expect(fragment in body["requestError"]["errorMessage"],
           "%r not in %r" % (fragment, body["requestError"]["errorMessage"]))


def test_sample_request_gets_documented_body():
    st, body = srv.ingest({"impressions_event_source": [click("C18947Z5"), click("C98FG569", now_rfc3339(-3 * 86400))]})
    expect_eq(st, 200, body)
    expect_eq(body["workspaceName"], "ads")
    metrics = body["ingestMetrics"]["featureViewIngestMetrics"]
    names = [m["featureViewName"] for m in metrics]
    expect("click_events_fv" in names, names)
    m = metrics[names.index("click_events_fv")]
    expect_eq(sorted(m), ["featureViewId", "featureViewName", "offlineRecordIngestCount", "onlineRecordIngestCount"])
    expect_eq(m["onlineRecordIngestCount"], "2")
    expect(len(m["featureViewId"]) == 32 and all(c in "0123456789abcdef" for c in m["featureViewId"]))


def test_feature_view_id_is_stable():
    ids = []
    for _ in range(2):
        st, body = srv.ingest({"impressions_event_source": [click("U1")]}, dry_run=True)
        expect_eq(st, 200, body)
        ids.append({m["featureViewName"]: m["featureViewId"] for m in body["ingestMetrics"]["featureViewIngestMetrics"]})
    expect_eq(ids[0], ids[1])


def test_read_after_write():
    for i in range(5):
        st, body = srv.ingest({"impressions_event_source": [click("RAW", clicked=i)]})
        expect_eq(st, 200, body)
        expect_eq(clicked_of("RAW"), (str(i), "PRESENT"))


def test_missing_fields():
    for field in ("workspace_name", "dry_run", "records"):
        body = {"workspace_name": "ads", "dry_run": False, "records": {}}
        del body[field]
        st, b = srv.request("POST", "/ingest", body)
        request_error(st, b, 400, "RequestValidationError",
                      "Required field `%s` is missing in the request" % field)


def test_wrong_top_level_types():
    cases = [({"workspace_name": 1, "dry_run": False, "records": {}}, "`workspace_name` must be a string"),
             ({"workspace_name": "ads", "dry_run": "no", "records": {}}, "`dry_run` must be a boolean"),
             ({"workspace_name": "ads", "dry_run": False, "records": []}, "`records` must be an object"),
             ({"workspace_name": "ads", "dry_run": False, "records": {}, "extra": 1}, "Unknown field `extra`")]
    for body, frag in cases:
        st, b = srv.request("POST", "/ingest", body)
        request_error(st, b, 400, "RequestValidationError", frag)


def test_bad_json_says_where():
    st, b = srv.request("POST", "/ingest", raw=b'{"workspace_name": "ads",\n "dry_run": false,, }')
    request_error(st, b, 400, "RequestValidationError", "line 2")
    st, b = srv.request("POST", "/ingest", raw=b"")
    request_error(st, b, 400, "RequestValidationError", "empty")
    st, b = srv.request("POST", "/ingest", raw=b"[1,2]")
    request_error(st, b, 400, "RequestValidationError", "must be a JSON object")


def test_not_found():
    st, b = srv.ingest({"impressions_event_source": [click("X")]}, ws="nope")
    request_error(st, b, 404, "RequestValidationError", "Workspace `nope` not found")
    st, b = srv.ingest({"nope_source": [click("X")]})
    request_error(st, b, 404, "RequestValidationError", "Stream source `nope_source` not found")


def test_development_workspace_needs_dry_run():
    rec = {"events": [types_record("dev-user")]}
    st, b = srv.ingest(rec, ws="dev")
    request_error(st, b, 400, "RequestValidationError", "development workspace")
    st, b = srv.ingest(rec, ws="dev", dry_run=True)
    expect_eq(st, 200, b)


def test_auth_required():
    st, b = srv.ingest({"impressions_event_source": [click("A")]}, key=None)
    request_error(st, b, 401, "UnauthorizedError", "missing Authorization")
    st, b = srv.ingest({"impressions_event_source": [click("A")]}, key="sk_0000")
    request_error(st, b, 401, "UnauthorizedError", "invalid API key")
    st, b = srv.request("POST", "/ingest", {"workspace_name": "ads", "dry_run": False, "records": {}},
                        key=None, headers={"Authorization": "Bearer x"})
    request_error(st, b, 401, "UnauthorizedError", "Sluice-key")


def test_tecton_key_header_accepted():
    st, b = srv.request("POST", "/ingest", {"workspace_name": "ads", "dry_run": True,
                                            "records": {"impressions_event_source": [click("T")]}},
                        key=None, headers={"Authorization": "Tecton-key " + srv.key})
    expect_eq(st, 200, b)


def record_errors(st, b, fragment, view=None):
    expect_eq(st, 400, b)
    expect("recordErrors" in b, b)
    errs = b["recordErrors"]
    expect(errs, b)
    for e in errs:
        expect_eq(sorted(e), ["errorMessage", "errorType", "featureViewName", "pushSourceName"])
    expect(any(fragment in e["errorMessage"] for e in errs), "%r not in %r" % (fragment, errs))
    if view:
        expect(any(e["featureViewName"] == view for e in errs), errs)
    return errs


def test_schema_errors_name_source_record_and_field():
    good = click("S1")
    cases = [
        ({"record": {"timestamp": now_rfc3339(), "user_id": "S1", "clicked": 1, "extra": 2}}, "field `extra` is not in the schema"),
        ({"record": {"timestamp": now_rfc3339(), "user_id": "S1"}}, "field `clicked` is missing"),
        ({"record": {"timestamp": now_rfc3339(), "user_id": "S1", "clicked": "many"}}, "field `clicked`"),
        ({"record": {"timestamp": "yesterday", "user_id": "S1", "clicked": 1}}, "field `timestamp`"),
        ({"record": {"timestamp": now_rfc3339(), "user_id": 12, "clicked": 1}}, "field `user_id`"),
        ({"record": {"timestamp": None, "user_id": "S1", "clicked": 1}}, "must not be null"),
        ({"record": {"timestamp": now_rfc3339(), "user_id": None, "clicked": 1}}, "join key `user_id` must not be null"),
        ({"rec": {}}, "expected an object with a `record` object"),
    ]
    before = clicked_of("S1")
    for bad, frag in cases:
        st, b = srv.ingest({"impressions_event_source": [good, bad]})
        errs = record_errors(st, b, frag)
        expect(any("record 1 of source `impressions_event_source`" in e["errorMessage"] or "record 1:" in e["errorMessage"] for e in errs), errs)
        expect_eq(errs[0]["pushSourceName"], "impressions_event_source")
    expect_eq(clicked_of("S1"), before, "a rejected request wrote something")


def test_ttl_is_checked_per_view_and_nothing_is_written():
    old = now_rfc3339(-31 * 86400)
    st, b = srv.ingest({"impressions_event_source": [click("TTL1"), click("TTL2", old)]})
    errs = record_errors(st, b, "outside of the serving TTL defined for Feature View click_events_fv",
                         view="click_events_fv")
    expect_eq(errs[0]["errorType"], "TectonObjectValidationError")
    expect_eq(clicked_of("TTL1"), (None, "MISSING_DATA"))


def test_future_timestamps_beyond_skew_are_rejected():
    st, b = srv.ingest({"impressions_event_source": [click("FUT", now_rfc3339(3 * 3600))]})
    record_errors(st, b, "future")


def test_dry_run_writes_nothing():
    st, b = srv.ingest({"impressions_event_source": [click("DRY")]}, dry_run=True)
    expect_eq(st, 200, b)
    m = {x["featureViewName"]: x for x in b["ingestMetrics"]["featureViewIngestMetrics"]}
    expect_eq(m["click_events_fv"]["onlineRecordIngestCount"], "1")
    expect_eq(clicked_of("DRY"), (None, "MISSING_DATA"))
    st, b = srv.ingest({"impressions_event_source": [click("DRY", "bad")]}, dry_run=True)
    record_errors(st, b, "field `timestamp`")


def test_last_write_wins_and_older_events_do_not_overwrite():
    t = now_rfc3339(-60)
    st, b = srv.ingest({"impressions_event_source": [click("LWW", t, 1), click("LWW", t, 2)]})
    expect_eq(st, 200, b)
    expect_eq(clicked_of("LWW"), ("2", "PRESENT"))
    st, b = srv.ingest({"impressions_event_source": [click("LWW", t, 3)]})
    expect_eq(clicked_of("LWW"), ("3", "PRESENT"))
    st, b = srv.ingest({"impressions_event_source": [click("LWW", now_rfc3339(-3600), 4)]})
    expect_eq(st, 200, b)
    expect_eq(clicked_of("LWW"), ("3", "PRESENT"), "an older event replaced a newer one")


def types_record(user, **over):
    r = {"user_id": user, "account_id": 42, "ts": now_rfc3339(), "s": "héllo \"q\"", "i64": "9007199254740993",
         "i32": -2147483648, "f64": 0.1, "f32": 1.5, "b": True, "t": "2024-02-29T12:00:00.123456789+02:00",
         "arr": [1, "9223372036854775807", None], "m": {"x": 1.25, "y": None},
         "st": {"a": 7, "b": "z"}}
    r.update(over)
    return {"record": r}


def user_features(user):
    st, b = srv.get_features({"user_id": user}, ws="types", service="user_service")
    expect_eq(st, 200, b)
    names = [f["name"].split(".")[1] for f in b["metadata"]["features"]]
    return dict(zip(names, b["result"]["features"])), b


def test_all_types_round_trip():
    st, b = srv.ingest({"events": [types_record("rt")]}, ws="types")
    expect_eq(st, 200, b)
    f, body = user_features("rt")
    expect_eq(f["s"], "héllo \"q\"")
    expect_eq(f["i64"], "9007199254740993")
    expect_eq(f["i32"], -2147483648)
    expect_eq(f["f64"], 0.1)
    expect_eq(f["f32"], 1.5)
    expect_eq(f["b"], True)
    expect_eq(f["t"], "2024-02-29T10:00:00.123456789Z")
    expect_eq(f["arr"], ["1", "9223372036854775807", None])
    expect_eq(f["m"], {"x": 1.25, "y": None})
    expect_eq(f["st"], ["7", "z"])
    types = {x["name"].split(".")[1]: x["dataType"] for x in body["metadata"]["features"]}
    expect_eq(types["i64"], {"type": "int64"})
    expect_eq(types["b"], {"type": "boolean"})
    expect_eq(types["arr"], {"type": "array", "elementType": {"type": "int64"}})
    expect_eq(types["m"], {"type": "map", "keyType": {"type": "string"}, "valueType": {"type": "float64"}})
    expect_eq(types["st"]["type"], "struct")


def test_int64_exact_beyond_2_53_as_number():
    st, b = srv.request("POST", "/ingest", raw=('{"workspace_name":"types","dry_run":false,"records":{"events":[%s]}}' %
        __import__("json").dumps(types_record("big", i64=0))).replace('"i64": 0', '"i64": 9223372036854775807').encode())
    expect_eq(st, 200, b)
    f, _ = user_features("big")
    expect_eq(f["i64"], "9223372036854775807")


def test_type_errors():
    cases = [("i64", 1.5), ("i64", "12a"), ("i64", "9223372036854775808"), ("i32", 2147483648),
             ("b", "true"), ("f64", "1.0"), ("t", "2023-02-30T00:00:00Z"), ("arr", {"a": 1}),
             ("m", [1]), ("st", {"a": 1, "zz": 2}), ("s", 5)]
    for field, value in cases:
        st, b = srv.ingest({"events": [types_record("te", **{field: value})]}, ws="types")
        record_errors(st, b, "field `%s`" % field)
    f, _ = user_features("te")
    expect_eq(f["s"], None)


def test_nulls_allowed_for_non_key_fields():
    st, b = srv.ingest({"events": [types_record("nul", s=None, f64=None, arr=None)]}, ws="types")
    expect_eq(st, 200, b)
    f, _ = user_features("nul")
    expect_eq((f["s"], f["f64"], f["arr"], f["i64"]), (None, None, None, "9007199254740993"))


def test_int64_join_key_as_number_or_string():
    st, b = srv.ingest({"events": [types_record("k", account_id="77", f64=2.5)]}, ws="types")
    expect_eq(st, 200, b)
    for key in (77, "77"):
        st, b = srv.get_features({"account_id": key}, ws="types", service="account_service")
        expect_eq(st, 200, b)
        expect_eq(b["result"]["features"], [2.5, "héllo \"q\""])


def test_fan_out_reports_every_view():
    st, b = srv.ingest({"events": [types_record("fan"), types_record("fan2")]}, ws="types")
    expect_eq(st, 200, b)
    m = {x["featureViewName"]: x for x in b["ingestMetrics"]["featureViewIngestMetrics"]}
    expect_eq(sorted(m), ["account_attrs", "user_attrs"])
    expect_eq(m["user_attrs"]["onlineRecordIngestCount"], "2")
    expect_eq(m["account_attrs"]["onlineRecordIngestCount"], "2")


def test_large_request_through_transformations():
    """Regression: every record's transformation output stayed in the request's arena, capped
    at 8x the body, so requests of more than ~140 records failed with out of memory."""
    recs = [click("big%d" % i) for i in range(3000)]
    st, b = srv.ingest({"impressions_event_source": recs})
    expect_eq(st, 200, b)
    m = {x["featureViewName"]: x for x in b["ingestMetrics"]["featureViewIngestMetrics"]}
    expect_eq(m["user_click_counts"]["onlineRecordIngestCount"], "3000")
    expect_eq(clicked_of("big2999"), ("1", "PRESENT"))


def test_too_many_records():
    recs = [click("many") for _ in range(10001)]
    st, b = srv.ingest({"impressions_event_source": recs})
    request_error(st, b, 400, "RequestValidationError", "at most 10000")


run(globals())
