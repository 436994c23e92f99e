"""The JSON Schemas in schemas/ accept the documented bodies and reject broken ones (the
other integration tests validate every live response against them)."""

import jsonschema

from harness import expect, run, validate

SAMPLE_REQUEST = {"workspace_name": "ingestapi-test", "dry_run": False, "records": {
    "impressions_event_source": [
        {"record": {"timestamp": "2023-01-02T00:25:06Z", "user_id": "C18947Z5", "clicked": 1}},
        {"record": {"timestamp": "2022-12-29T00:25:06Z", "user_id": "C98FG569", "clicked": 1}}]}}
SAMPLE_RESPONSE = {"workspaceName": "ingestapi-live", "ingestMetrics": {"featureViewIngestMetrics": [
    {"featureViewName": "click_events_fv", "onlineRecordIngestCount": "2",
     "offlineRecordIngestCount": "2", "featureViewId": "b6f14021557d3f2ba95247add3642820"}]}}
SAMPLE_REQUEST_ERROR = {"requestError": {"errorMessage": "Required field `workspace_name` is missing in the request",
                                         "errorType": "RequestValidationError"}}
SAMPLE_RECORD_ERROR = {"workspaceName": "ingestapi-live", "recordErrors": [
    {"featureViewName": "keyword_ingest_fv", "pushSourceName": "click_event_source",
     "errorType": "TectonObjectValidationError",
     "errorMessage": "timestamp value is outside of the serving TTL defined for Feature View keyword_push_fv"}]}
SAMPLE_FEATURES = {"result": {"features": ["0", "1", 216409.0]}, "metadata": {"features": [
    {"name": "transaction_amount_is_high.transaction_amount_is_high", "dataType": {"type": "int64"}, "status": "PRESENT"},
    {"name": "last_transaction_amount.amount", "effectiveTime": "2021-08-21T01:23:58.996Z",
     "dataType": {"type": "float64"}, "status": "PRESENT"},
    {"name": "s.nested", "dataType": {"type": "array", "elementType": {"type": "struct", "fields": [
        {"name": "a", "dataType": {"type": "map", "keyType": {"type": "string"}, "valueType": {"type": "int64"}}}]}}}]}}


def rejects(body, schema):
    try:
        validate(body, schema)
    except jsonschema.ValidationError:
        return True
    return False


def test_documented_bodies_are_valid():
    validate(SAMPLE_REQUEST, "ingest-request.json")
    validate(SAMPLE_RESPONSE, "ingest-response.json")
    validate(SAMPLE_REQUEST_ERROR, "ingest-request-error.json")
    validate(SAMPLE_RECORD_ERROR, "ingest-record-error.json")
    validate(SAMPLE_FEATURES, "get-features-response.json")
    validate({"error": "Missing required join key: merchant", "code": 3, "message": "x"}, "feature-service-error.json")
    validate({"result": {"features": [1.0]}, "metadata": {"features": [
        {"name": "v.f", "description": "d", "tags": {"team": "fraud"}}]}}, "get-features-response.json")
    validate({"featureServiceType": "DEFAULT", "inputJoinKeys": [{"name": "user_id", "dataType": {"type": "string"}}],
              "inputRequestContextKeys": [], "featureValues": [
                  {"name": "v.f", "dataType": {"type": "int64"}, "description": "d", "tags": {"a": "b"}}]},
             "metadata-response.json")


def test_broken_bodies_are_rejected():
    r = dict(SAMPLE_REQUEST)
    del r["dry_run"]
    expect(rejects(r, "ingest-request.json"))
    bad = {"workspaceName": "w", "ingestMetrics": {"featureViewIngestMetrics": [
        dict(SAMPLE_RESPONSE["ingestMetrics"]["featureViewIngestMetrics"][0], onlineRecordIngestCount=2)]}}
    expect(rejects(bad, "ingest-response.json"), "int counts must be strings")
    expect(rejects({"requestError": {"errorMessage": "x", "errorType": "Nope"}}, "ingest-request-error.json"))
    expect(rejects({"workspaceName": "w", "recordErrors": []}, "ingest-record-error.json"))
    expect(rejects({"result": {"features": []}, "metadata": {"features": [{"name": "nodot"}]}},
                   "get-features-response.json"))
    expect(rejects({"result": {"features": []}, "metadata": {"features": [{"dataType": {"type": "array"}}]}},
                   "get-features-response.json"), "array needs elementType")
    expect(rejects({"result": {"features": []}, "metadata": {"features": [{"name": "v.f", "tags": {"a": 1}}]}},
                   "get-features-response.json"), "tag values are strings")
    expect(rejects({"featureServiceType": "DEFAULT", "inputJoinKeys": [], "featureValues": [{"name": "v.f"}]},
                   "metadata-response.json"), "a feature value has a dataType")


run(globals())
