"""Table-driven: malformed or invalid /ingest requests. Each case asserts the status, the error
body's type, a message fragment, and that nothing of the request was written (every case
carries a valid record for a fresh user, which must stay unwritten)."""

import json
import os
import threading
import time

from harness import (SRCDIR, Server, expect, expect_eq, now_rfc3339, run)

srv = None
TYPES = os.path.join(SRCDIR, "tests", "data", "repos", "types")
counter = [0]


def setup_module():
    global srv
    srv = Server(args=["--max-body", "200000", "--max-records", "50"]).start()
    for ws, live in (("t", True), ("dev", False)):
        rc, out, err = srv.cli("workspace", "create", ws, *(["--live"] if live else []))
        assert rc == 0, err
        rc, out, err = srv.cli("apply", "--workspace", ws, TYPES)
        assert rc == 0, out + err


def teardown_module():
    srv.cleanup()


def good(user, **over):
    r = {"user_id": user, "account_id": 1, "ts": now_rfc3339(-1), "s": "x", "i64": 1, "i32": 1,
         "f64": 1.5, "f32": 1.5, "b": True, "t": "2024-01-01T00:00:00Z", "arr": [1], "m": {"a": 1.0},
         "st": {"a": 1, "b": "y"}}
    r.update(over)
    return r


def drop(rec, field):
    r = dict(rec)
    del r[field]
    return r


def written(user):
    st, b = srv.get_features({"user_id": user}, ws="t", service="user_service")
    assert st == 200, b
    return any(v is not None for v in b["result"]["features"])


R = "RequestValidationError"
T = "TectonObjectValidationError"


def body(records, ws="t", dry=False):
    return {"workspace_name": ws, "dry_run": dry, "records": records}


# (name, function(user) -> (raw bytes or dict body), status, errorType, fragment)
CASES = [
    ("empty body", lambda u: b"", 400, R, "empty"),
    ("not json", lambda u: b"hello", 400, R, "Invalid JSON"),
    ("truncated json", lambda u: b'{"workspace_name": "t", "dry_run": false, "records": {', 400, R, "Invalid JSON"),
    ("trailing comma", lambda u: b'{"workspace_name": "t", "dry_run": false, "records": {},}', 400, R, "line 1"),
    ("json array", lambda u: b"[]", 400, R, "must be a JSON object"),
    ("json string", lambda u: b'"x"', 400, R, "must be a JSON object"),
    ("duplicate member", lambda u: ('{"workspace_name":"t","workspace_name":"t","dry_run":false,"records":{"events":[{"record":%s}]}}' % json.dumps(good(u))).encode(), 400, R, "duplicate"),
    ("invalid utf-8", lambda u: b'{"workspace_name": "t\xff", "dry_run": false, "records": {}}', 400, R, "Invalid JSON"),
    ("missing workspace_name", lambda u: {"dry_run": False, "records": {"events": [{"record": good(u)}]}}, 400, R, "Required field `workspace_name` is missing"),
    ("missing dry_run", lambda u: {"workspace_name": "t", "records": {"events": [{"record": good(u)}]}}, 400, R, "Required field `dry_run` is missing"),
    ("missing records", lambda u: {"workspace_name": "t", "dry_run": False}, 400, R, "Required field `records` is missing"),
    ("workspace_name number", lambda u: {"workspace_name": 5, "dry_run": False, "records": {}}, 400, R, "`workspace_name` must be a string"),
    ("workspace_name null", lambda u: {"workspace_name": None, "dry_run": False, "records": {}}, 400, R, "`workspace_name` must be a string"),
    ("dry_run string", lambda u: {"workspace_name": "t", "dry_run": "false", "records": {}}, 400, R, "`dry_run` must be a boolean"),
    ("dry_run number", lambda u: {"workspace_name": "t", "dry_run": 0, "records": {}}, 400, R, "`dry_run` must be a boolean"),
    ("records array", lambda u: {"workspace_name": "t", "dry_run": False, "records": [good(u)]}, 400, R, "`records` must be an object"),
    ("records null", lambda u: {"workspace_name": "t", "dry_run": False, "records": None}, 400, R, "`records` must be an object"),
    ("unknown top field", lambda u: dict(body({"events": [{"record": good(u)}]}), extra=1), 400, R, "Unknown field `extra`"),
    ("unknown workspace", lambda u: body({"events": [{"record": good(u)}]}, ws="nope"), 404, R, "Workspace `nope` not found"),
    ("unknown source", lambda u: body({"events": [{"record": good(u)}], "nope": []}), 404, R, "Stream source `nope` not found"),
    ("source records object", lambda u: body({"events": {"record": good(u)}}), 400, R, "must be an array"),
    ("development workspace", lambda u: body({"events": [{"record": good(u)}]}, ws="dev"), 400, R, "development workspace"),
    ("too many records", lambda u: body({"events": [{"record": good(u)}] * 51}), 400, R, "at most 50"),
    ("body too large", lambda u: body({"events": [{"record": good(u, s="x" * 250000)}]}), 413, "RequestTooLargeError", "at most"),
    ("element not object", lambda u: body({"events": [{"record": good(u)}, 5]}), 400, T, "record 1 of source `events`"),
    ("element without record", lambda u: body({"events": [{"record": good(u)}, {"rec": good(u)}]}), 400, T, "expected an object with a `record`"),
    ("record not object", lambda u: body({"events": [{"record": good(u)}, {"record": [1]}]}), 400, T, "expected an object"),
    ("extra field", lambda u: body({"events": [{"record": good(u, zz=1)}]}), 400, T, "field `zz` is not in the schema"),
    ("missing field", lambda u: body({"events": [{"record": drop(good(u), "f64")}]}), 400, T, "field `f64` is missing"),
    ("missing join key", lambda u: body({"events": [{"record": drop(good(u), "user_id")}]}), 400, T, "field `user_id` is missing"),
    ("missing timestamp", lambda u: body({"events": [{"record": drop(good(u), "ts")}]}), 400, T, "field `ts` is missing"),
    ("null join key", lambda u: body({"events": [{"record": good(u, account_id=None)}, {"record": good(u)}]}), 400, T, "join key `account_id` must not be null"),
    ("null timestamp", lambda u: body({"events": [{"record": good(u, ts=None)}]}), 400, T, "`ts` must not be null"),
    ("string for int64", lambda u: body({"events": [{"record": good(u, i64="ten")}]}), 400, T, "field `i64`"),
    ("float for int64", lambda u: body({"events": [{"record": good(u, i64=1.5)}]}), 400, T, "field `i64`"),
    ("exponent for int64", lambda u: body({"events": [{"record": good(u, i64=1e3)}]}), 400, T, "field `i64`"),
    ("int64 overflow", lambda u: body({"events": [{"record": good(u, i64="9223372036854775808")}]}), 400, T, "field `i64`"),
    ("int64 leading plus", lambda u: body({"events": [{"record": good(u, i64="+5")}]}), 400, T, "field `i64`"),
    ("int32 overflow", lambda u: body({"events": [{"record": good(u, i32=2147483648)}]}), 400, T, "field `i32`"),
    ("int32 as string", lambda u: body({"events": [{"record": good(u, i32="5")}]}), 400, T, "field `i32`"),
    ("bool as string", lambda u: body({"events": [{"record": good(u, b="true")}]}), 400, T, "field `b`"),
    ("bool as number", lambda u: body({"events": [{"record": good(u, b=1)}]}), 400, T, "field `b`"),
    ("float as string", lambda u: body({"events": [{"record": good(u, f64="1.5")}]}), 400, T, "field `f64`"),
    ("float as object", lambda u: body({"events": [{"record": good(u, f32={})}]}), 400, T, "field `f32`"),
    ("string as number", lambda u: body({"events": [{"record": good(u, s=5)}]}), 400, T, "field `s`"),
    ("string as array", lambda u: body({"events": [{"record": good(u, s=["x"])}]}), 400, T, "field `s`"),
    ("timestamp garbage", lambda u: body({"events": [{"record": good(u, t="tomorrow")}]}), 400, T, "field `t`"),
    ("timestamp bad day", lambda u: body({"events": [{"record": good(u, t="2023-02-30T00:00:00Z")}]}), 400, T, "field `t`"),
    ("timestamp bad hour", lambda u: body({"events": [{"record": good(u, t="2023-01-01T24:00:00Z")}]}), 400, T, "field `t`"),
    ("timestamp bad offset", lambda u: body({"events": [{"record": good(u, t="2023-01-01T00:00:00+25:00")}]}), 400, T, "field `t`"),
    ("timestamp 10 fraction digits", lambda u: body({"events": [{"record": good(u, t="2023-01-01T00:00:00.1234567891Z")}]}), 400, T, "field `t`"),
    ("timestamp as number", lambda u: body({"events": [{"record": good(u, t=1700000000)}]}), 400, T, "field `t`"),
    ("array as object", lambda u: body({"events": [{"record": good(u, arr={"a": 1})}]}), 400, T, "field `arr`"),
    ("array bad element", lambda u: body({"events": [{"record": good(u, arr=[1, "x"])}]}), 400, T, "field `arr`"),
    ("map as array", lambda u: body({"events": [{"record": good(u, m=[1.0])}]}), 400, T, "field `m`"),
    ("map bad value", lambda u: body({"events": [{"record": good(u, m={"a": "b"})}]}), 400, T, "field `m`"),
    ("struct unknown field", lambda u: body({"events": [{"record": good(u, st={"a": 1, "zz": 2})}]}), 400, T, "field `st`"),
    ("struct bad field type", lambda u: body({"events": [{"record": good(u, st={"a": "one"})}]}), 400, T, "field `st`"),
    ("struct as array", lambda u: body({"events": [{"record": good(u, st=[1, "y"])}]}), 400, T, "field `st`"),
    ("outside ttl", lambda u: body({"events": [{"record": good(u)}, {"record": good(u, ts=now_rfc3339(-2 * 86400))}]}), 400, T, "outside of the serving TTL defined for Feature View account_attrs"),
    ("far future", lambda u: body({"events": [{"record": good(u, ts=now_rfc3339(7200))}]}), 400, T, "future"),
    ("bad record among good", lambda u: body({"events": [{"record": good(u)}] * 10 + [{"record": good(u, b="no")}]}), 400, T, "record 10 of source `events`"),
    ("dry run still validates", lambda u: body({"events": [{"record": good(u, i64="x")}]}, dry=True), 400, T, "field `i64`"),
]


def run_case(case):
    name, make, status, etype, frag = case
    counter[0] += 1
    user = "err-%d" % counter[0]
    b = make(user)
    raw = b if isinstance(b, bytes) else json.dumps(b).encode()
    st, resp = srv.request("POST", "/ingest", raw=raw)
    expect_eq(st, status, "%s: %r" % (name, resp))
    if "requestError" in resp:
        expect_eq(resp["requestError"]["errorType"], etype, name)
        msg = resp["requestError"]["errorMessage"]
    else:
        expect_eq(etype, T, "%s: %r" % (name, resp))
        types = {e["errorType"] for e in resp["recordErrors"]}
        expect_eq(types, {T}, name)
        msg = " | ".join(e["errorMessage"] for e in resp["recordErrors"])
    expect(frag in msg, "%s: %r not in %r" % (name, frag, msg))
    expect(not written(user), "%s: a rejected request wrote something" % name)


def test_at_least_sixty_cases():
    expect(len(CASES) >= 60, len(CASES))


def test_every_case():
    failures = []
    for case in CASES:
        try:
            run_case(case)
        except AssertionError as e:
            failures.append(str(e))
    expect(not failures, "\n".join(failures))


def test_the_valid_record_is_accepted():
    st, b = srv.request("POST", "/ingest", body({"events": [{"record": good("ok-user")}]}))
    expect_eq(st, 200, b)
    expect(written("ok-user"))


def test_concurrent_clients_lose_nothing():
    n_threads, per = 8, 25
    errors = []

    def client(k):
        for i in range(per):
            st, b = srv.request("POST", "/ingest", body({"events": [
                {"record": good("c-%d-%d" % (k, i), i64=k * 1000 + i)}]}))
            if st != 200:
                errors.append((st, b))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expect(not errors, errors[:3])
    missing = [(k, i) for k in range(n_threads) for i in range(per) if not written("c-%d-%d" % (k, i))]
    expect(not missing, missing[:5])


def test_backpressure_answers_429_with_the_error_body():
    s2 = Server(args=["--queue", "1", "--group-max", "1", "--threads", "4"]).start()
    try:
        rc, out, err = s2.cli("workspace", "create", "t", "--live")
        rc, out, err = s2.cli("apply", "--workspace", "t", TYPES)
        results = []

        def client(k):
            for i in range(20):
                results.append(s2.request("POST", "/ingest", body({"events": [{"record": good("bp-%d-%d" % (k, i))}]})))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = {st for st, _ in results}
        expect(statuses <= {200, 429}, statuses)
        busy = [b for st, b in results if st == 429]
        expect(busy, "no request was turned away with a queue of 1 under 16 concurrent clients")
        expect_eq(busy[0]["requestError"]["errorType"], "ResourceExhaustedError")
    finally:
        s2.cleanup()


run(globals())
