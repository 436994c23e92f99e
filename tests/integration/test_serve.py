"""get-features, get-features-batch and metadata against a real server."""

import time

from harness import (Server, expect, expect_eq, now_rfc3339, run, setup_workspace)

srv = None
FS = "/api/v1/feature-service/"


def setup_module():
    global srv
    srv = Server().start()
    setup_workspace(srv, "ads", "ads")
    st, b = srv.ingest({"impressions_event_source": [
        {"record": {"timestamp": now_rfc3339(-5), "user_id": "C18947Z5", "clicked": 1}},
        {"record": {"timestamp": now_rfc3339(-10), "user_id": "C98FG569", "clicked": 0}}]})
    assert st == 200, b


def teardown_module():
    srv.cleanup()


def error(st, b, status, code, fragment):
    expect_eq(st, status, b)
    expect_eq(sorted(b), ["code", "error", "message"])
    expect_eq(b["code"], code)
    expect(fragment in b["message"], "%r not in %r" % (fragment, b["message"]))


def test_names_types_status_by_default():
    st, b = srv.get_features({"user_id": "C18947Z5"})
    expect_eq(st, 200, b)
    feats = b["metadata"]["features"]
    i = [f["name"] for f in feats].index("click_events_fv.clicked")
    expect_eq(b["result"]["features"][i], "1")
    expect_eq(feats[i]["dataType"], {"type": "int64"})
    expect_eq(feats[i]["status"], "PRESENT")
    expect("effectiveTime" not in feats[i])


def test_unknown_key_is_missing_data():
    st, b = srv.get_features({"user_id": "nobody"})
    expect_eq(st, 200, b)
    i = [f["name"] for f in b["metadata"]["features"]].index("click_events_fv.clicked")
    expect_eq(b["result"]["features"][i], None)
    expect_eq(b["metadata"]["features"][i]["status"], "MISSING_DATA")


def test_metadata_options_respected():
    st, b = srv.get_features({"user_id": "C18947Z5"}, options={
        "include_names": False, "include_data_types": False, "include_serving_status": False,
        "include_effective_times": True, "include_slo_info": True})
    expect_eq(st, 200, b)
    feats = b["metadata"]["features"]
    present = [f for f in feats if "effectiveTime" in f]
    expect(present, feats)
    expect(all("name" not in f and "dataType" not in f and "status" not in f for f in feats), feats)
    expect(present[0]["effectiveTime"].endswith("Z"))
    expect(b["metadata"]["sloInfo"]["serverTimeSeconds"] >= 0)


def test_camel_case_params_like_tectons_client():
    st, b = srv.request("POST", FS + "get-features", {"params": {
        "workspaceName": "ads", "featureServiceName": "ad_ctr_feature_service",
        "joinKeyMap": {"user_id": "C98FG569"}, "requestContextMap": {}, "allowPartialResults": False,
        "metadataOptions": {"includeNames": True, "includeDataTypes": True, "includeEffectiveTimes": True,
                            "includeSloInfo": True, "includeServingStatus": True,
                            "includeFeatureDescriptions": True, "includeFeatureTags": True},
        "requestOptions": {"readFromCache": True, "writeToCache": True}}})
    expect_eq(st, 200, b)
    i = [f["name"] for f in b["metadata"]["features"]].index("click_events_fv.clicked")
    expect_eq(b["result"]["features"][i], "0")


def test_errors():
    st, b = srv.get_features({})
    error(st, b, 400, 3, "Missing required join key: user_id")
    st, b = srv.get_features({"user_id": "x"}, service="nope")
    error(st, b, 404, 5, "Feature service `nope` not found")
    st, b = srv.get_features({"user_id": "x"}, ws="nope")
    error(st, b, 404, 5, "Workspace `nope` not found")
    st, b = srv.get_features({"user_id": "x"}, key=None)
    error(st, b, 401, 16, "missing Authorization")
    st, b = srv.get_features({"user_id": "x"}, key="sk_bad")
    error(st, b, 401, 16, "invalid API key")
    st, b = srv.request("POST", FS + "get-features", raw=b"{nope")
    error(st, b, 400, 3, "Invalid JSON")
    st, b = srv.request("POST", FS + "get-features", {"x": 1})
    error(st, b, 400, 3, "`params`")
    st, b = srv.get_features({"user_id": 5})
    error(st, b, 400, 3, "Join key `user_id` must be a string")


def test_batch():
    st, b = srv.request("POST", FS + "get-features-batch", {"params": {
        "workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service",
        "request_data": [{"join_key_map": {"user_id": "C18947Z5"}},
                         {"join_key_map": {"user_id": "nobody"}},
                         {"joinKeyMap": {"user_id": "C98FG569"}}]}})
    expect_eq(st, 200, b)
    expect_eq(len(b["result"]), 3)
    i = [f["name"] for f in b["metadata"]["features"]].index("click_events_fv.clicked")
    expect_eq([r["features"][i] for r in b["result"]], ["1", None, "0"])
    expect_eq(b["metadata"]["features"][i]["status"], ["PRESENT", "MISSING_DATA", "PRESENT"])


def test_metadata_endpoint():
    st, b = srv.request("POST", FS + "metadata", {"params": {
        "workspace_name": "ads", "feature_service_name": "ad_ctr_feature_service"}})
    expect_eq(st, 200, b)
    expect_eq(b["featureServiceType"], "DEFAULT")
    expect_eq(b["inputJoinKeys"], [{"name": "user_id", "dataType": {"type": "string"}}])
    names = [f["name"] for f in b["featureValues"]]
    expect("click_events_fv.clicked" in names, names)


def test_healthz_and_metrics():
    st, b = srv.request("GET", "/healthz", key=None)
    expect_eq((st, b), (200, {"status": "ok"}))
    st, b = srv.request("GET", "/metrics", key=None)
    expect_eq(st, 401)
    st, b = srv.request("GET", "/metrics")
    expect_eq(st, 200)
    expect("sluice_ingest_requests_total " in b, b)
    expect("sluice_commit_groups_total " in b, b)


def test_ttl_enforced_at_read_time():
    """A value older than the view's ttl is MISSING_DATA, checked with the server's clock set
    forward by --fake-now on a second server over the same data."""
    srv.stop()
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 31 * 86400))
    srv.args = ["--fake-now", later]
    srv.start()
    st, b = srv.get_features({"user_id": "C18947Z5"})
    expect_eq(st, 200, b)
    i = [f["name"] for f in b["metadata"]["features"]].index("click_events_fv.clicked")
    expect_eq((b["result"]["features"][i], b["metadata"]["features"][i]["status"]), (None, "MISSING_DATA"))
    srv.stop()
    srv.args = []
    srv.start()


run(globals())
