"""Lua transformations and source post-processors at ingest: rows, drops, fan-out, errors,
limits, sandbox escapes; applies reach the workers."""

import os
import shutil
import tempfile

from harness import (SRCDIR, Server, expect, expect_eq, now_rfc3339, run)

srv = None
REPO = os.path.join(SRCDIR, "tests", "data", "repos", "xform")


def setup_module():
    global srv
    srv = Server(args=["--lua-instructions", "2000000", "--lua-memory-mb", "16"]).start()
    rc, out, err = srv.cli("workspace", "create", "x", "--live")
    assert rc == 0, err
    rc, out, err = srv.cli("apply", "--workspace", "x", REPO)
    assert rc == 0, out + err


def teardown_module():
    srv.cleanup()


def rec(user, x=1, mode="plain"):
    return {"record": {"user_id": user, "ts": now_rfc3339(), "x": x, "mode": mode}}


def feats(user):
    st, b = srv.get_features({"user_id": user}, ws="x", service="svc")
    expect_eq(st, 200, b)
    return {f["name"]: v for f, v in zip(b["metadata"]["features"], b["result"]["features"])}


def counts(body):
    return {m["featureViewName"]: m["onlineRecordIngestCount"]
            for m in body["ingestMetrics"]["featureViewIngestMetrics"]}


def transformation_error(st, b, view, fragment):
    expect_eq(st, 400, b)
    errs = [e for e in b["recordErrors"] if e["featureViewName"] == view]
    expect(errs, b)
    expect_eq(errs[0]["errorType"], "TransformationError")
    expect(fragment in errs[0]["errorMessage"], "%r not in %r" % (fragment, errs[0]["errorMessage"]))
    return errs[0]["errorMessage"]


def test_transformation_rewrites_values():
    st, b = srv.ingest({"ev": [rec("u1", 5)]}, ws="x")
    expect_eq(st, 200, b)
    expect_eq(counts(b), {"clamp": "1", "fan": "1", "risky": "1"})
    f = feats("u1")
    expect_eq((f["clamp.x"], f["fan.x"], f["risky.x"]), ("1", "5", "5"))


def test_nil_drops_the_row_for_that_view_only():
    st, b = srv.ingest({"ev": [rec("u2", 3, "drop")]}, ws="x")
    expect_eq(st, 200, b)
    expect_eq(counts(b), {"clamp": "0", "fan": "1", "risky": "1"})
    f = feats("u2")
    expect_eq((f["clamp.x"], f["fan.x"]), (None, "3"))


def test_post_processor_drop():
    st, b = srv.ingest({"ev": [rec("u3", 3, "skip")]}, ws="x")
    expect_eq(st, 200, b)
    expect_eq(counts(b), {"clamp": "0", "fan": "0", "risky": "0"})
    expect_eq(feats("u3")["risky.x"], None)


def test_fan_out_rows():
    st, b = srv.ingest({"ev": [rec("u4", 7, "fan")]}, ws="x")
    expect_eq(st, 200, b)
    expect_eq(counts(b)["fan"], "2")
    expect_eq((feats("u4-a")["fan.x"], feats("u4-b")["fan.x"], feats("u4")["fan.x"]), ("7", "14", None))


def test_runtime_error_names_file_and_line_and_writes_nothing():
    st, b = srv.ingest({"ev": [rec("u5", 1), rec("u5e", 1, "error")]}, ws="x")
    msg = transformation_error(st, b, "risky", "boom u5e")
    expect("xform.lua:36" in msg, msg)
    expect("record 1" in msg, msg)
    expect_eq(feats("u5")["clamp.x"], None, "a rejected request wrote something")


def test_infinite_loop_hits_instruction_limit():
    st, b = srv.ingest({"ev": [rec("u6", 1, "loop")]}, ws="x")
    transformation_error(st, b, "risky", "instruction limit")
    st, b = srv.ingest({"ev": [rec("u6ok", 1)]}, ws="x")
    expect_eq(st, 200, b)


def test_memory_bomb_hits_memory_limit():
    st, b = srv.ingest({"ev": [rec("u7", 1, "mem")]}, ws="x")
    transformation_error(st, b, "risky", "memory")
    st, b = srv.ingest({"ev": [rec("u7ok", 1)]}, ws="x")
    expect_eq(st, 200, b)


def test_sandbox_escapes_fail():
    for mode, frag in (("escape", "io"), ("os", "execute")):
        st, b = srv.ingest({"ev": [rec("u8", 1, mode)]}, ws="x")
        transformation_error(st, b, "risky", frag)


def test_output_shape_and_types_are_checked():
    st, b = srv.ingest({"ev": [rec("u9", 1, "shape")]}, ws="x")
    transformation_error(st, b, "risky", "must return a table")
    st, b = srv.ingest({"ev": [rec("u9", 1, "badtype")]}, ws="x")
    expect_eq(st, 400, b)
    errs = [e for e in b["recordErrors"] if e["featureViewName"] == "risky"]
    expect("field `x`" in errs[0]["errorMessage"], errs)


def test_int64_is_exact_through_lua():
    big = "9223372036854775807"
    st, b = srv.ingest({"ev": [rec("u10", big)]}, ws="x")
    expect_eq(st, 200, b)
    expect_eq(feats("u10")["risky.x"], big)


def test_dry_run_runs_transformations_and_writes_nothing():
    st, b = srv.ingest({"ev": [rec("u11", 4, "fan")]}, ws="x", dry_run=True)
    expect_eq(st, 200, b)
    expect_eq(counts(b)["fan"], "2")
    expect_eq(feats("u11-a")["fan.x"], None)
    st, b = srv.ingest({"ev": [rec("u11", 4, "error")]}, ws="x", dry_run=True)
    transformation_error(st, b, "risky", "boom")


def test_apply_reloads_every_worker():
    d = tempfile.mkdtemp()
    try:
        src = open(os.path.join(REPO, "xform.lua")).read()
        with open(os.path.join(d, "xform.lua"), "w") as f:
            f.write(src.replace("r.x > 0 and 1 or 0", "r.x > 0 and 100 or 0"))
        rc, out, err = srv.cli("apply", "--yes", "--workspace", "x", d)
        expect_eq(rc, 0, err)
        expect("transformation" in out, out)
        for i in range(8):  # several connections, so every worker thread sees it
            st, b = srv.ingest({"ev": [rec("u12-%d" % i, 5)]}, ws="x")
            expect_eq(st, 200, b)
            expect_eq(feats("u12-%d" % i)["clamp.x"], "100")
    finally:
        shutil.rmtree(d)


run(globals())
