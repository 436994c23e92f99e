"""Every named limit of core/sl_limits.h is refused at plan and at apply, with the file and line
of the offending definition, and nothing of the repository is installed; a definition at the
limit applies and serves."""

import os
import shutil
import tempfile

from harness import Server, expect, expect_eq, run

srv = None
tmp = None


def setup_module():
    global srv, tmp
    srv = Server().start()
    tmp = tempfile.mkdtemp(prefix="sluice-limits-")
    rc, out, err = srv.cli("workspace", "create", "w", "--live")
    assert rc == 0, err


def teardown_module():
    srv.cleanup()
    shutil.rmtree(tmp, ignore_errors=True)


def repo(name, text):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    with open(os.path.join(d, "repo.lua"), "w") as f:
        f.write(text)
    return d


def view_repo(nkeys, nfeat):
    """One stream view with nkeys join keys and nfeat attribute features; the view's
    definition starts on line 6."""
    keys = ", ".join('Field("k%d", String)' % i for i in range(nkeys))
    cols = ", ".join('Field("c%d", Int64)' % i for i in range(nfeat))
    feats = ", ".join('Attribute("c%d", Int64)' % i for i in range(nfeat))
    return ("local e = Entity { name = \"e\", join_keys = { %s } }\n"
            "local s = StreamSource { name = \"s\",\n"
            "  schema = { %s, Field(\"ts\", Timestamp), %s },\n"
            "}\n"
            "\n"
            "local v = StreamFeatureView { name = \"v\", source = s, entities = { e },\n"
            "  online = true, timestamp_field = \"ts\",\n"
            "  features = { %s } }\n"
            "FeatureService { name = \"svc\", features = { v } }\n") % (keys, keys, cols, feats)


def refused(d, want):
    for cmd in ("plan", "apply"):
        rc, out, err = srv.cli(cmd, "--workspace", "w", d)
        expect(rc != 0, "%s accepted %s: %s" % (cmd, d, out + err))
        expect("repo.lua:6:" in out + err, "%s names no file:line: %s" % (cmd, out + err))
        expect(want in out + err, "%s: %r not in %s" % (cmd, want, out + err))


def test_join_keys_limit():
    refused(repo("keys17", view_repo(17, 1)), "has 17 join keys; at most 16 are allowed")


def test_view_features_limit():
    refused(repo("feat257", view_repo(1, 257)), "has 257 features; at most 256 are allowed")


def test_realtime_inputs_limit():
    views = "\n".join(
        "local v%d = StreamFeatureView { name = \"v%d\", source = s, entities = { e }, "
        "online = true, timestamp_field = \"ts\", features = { Attribute(\"c\", Int64) } }" % (i, i)
        for i in range(17))
    text = ("local e = Entity { name = \"e\", join_keys = { Field(\"k\", String) } }\n"
            "local s = StreamSource { name = \"s\", schema = { Field(\"k\", String),"
            " Field(\"ts\", Timestamp), Field(\"c\", Int64) } }\n"
            + views + "\n"
            "local rt = RealtimeFeatureView { name = \"rt\",\n"
            "  sources = { %s },\n"
            "  features = { Attribute(\"x\", Int64) },\n"
            "  transformation = function(request, inputs) return { x = 1 } end }\n"
            "FeatureService { name = \"svc\", features = { rt } }\n") % ", ".join("v%d" % i for i in range(17))
    d = repo("rt17", text)
    line = 3 + 17  # the RealtimeFeatureView starts after the entity, source and 17 views
    for cmd in ("plan", "apply"):
        rc, out, err = srv.cli(cmd, "--workspace", "w", d)
        expect(rc != 0, "%s accepted 17 realtime inputs: %s" % (cmd, out + err))
        expect("repo.lua:%d:" % line in out + err, "%s names no file:line: %s" % (cmd, out + err))
        expect("has 17 sources; at most 16 are allowed" in out + err, out + err)


def test_workspace_name_limit():
    st, b = srv.request("POST", "/v1/workspaces", {"name": "w" * 65, "live": False})
    expect_eq(st, 400, b)
    st, b = srv.request("POST", "/v1/workspaces", {"name": "w" * 64, "live": False})
    expect_eq(st, 201, b)


def test_at_the_limits_applies_and_serves():
    d = repo("atlimit", view_repo(16, 256))
    rc, out, err = srv.cli("apply", "--workspace", "w", d)
    expect_eq(rc, 0, out + err)
    rec = {"ts": "2026-01-01T00:00:00Z"}
    jk = {}
    for i in range(16):
        rec["k%d" % i] = "x%d" % i
        jk["k%d" % i] = "x%d" % i
    for i in range(256):
        rec["c%d" % i] = i
    st, b = srv.ingest({"s": [{"record": rec}]}, ws="w")
    expect_eq(st, 200, b)
    st, b = srv.get_features(jk, ws="w", service="svc")
    expect_eq(st, 200, b)
    expect_eq(b["result"]["features"], [str(i) for i in range(256)])


run(globals())
