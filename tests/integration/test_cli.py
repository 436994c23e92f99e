"""The sluice command line: help, version, settings, workspaces, plan and apply."""

import os
import re
import subprocess
import tempfile

from harness import (BIN, SRCDIR, Server, example_dir, expect, expect_eq, run)

srv = None


def setup_module():
    global srv
    srv = Server().start()


def teardown_module():
    srv.cleanup()


def sluice(*args):
    p = subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def test_help_and_version_everywhere():
    rc, out, _ = sluice("--help")
    expect_eq(rc, 0)
    for cmd in ("serve", "plan", "apply", "workspace"):
        expect(cmd in out, out)
    rc, out, _ = sluice("--version")
    expect_eq(rc, 0)
    expect(out.startswith("sluice "), out)
    for cmd in (["serve"], ["plan"], ["apply"], ["workspace"], ["service-account"], ["access-control"]):
        rc, out, err = sluice(*(cmd + ["--help"]))
        expect_eq(rc, 0, err)
        expect("usage: sluice " + cmd[0] in out, out)
        rc, out, _ = sluice(*(cmd + ["--version"]))
        expect_eq((rc, out.startswith("sluice ")), (0, True))


def test_serve_help_lists_every_setting():
    rc, out, _ = sluice("serve", "--help")
    for key in ("--data-dir", "--listen", "--threads", "--config", "--max-body", "--no-auth"):
        expect(key in out, key)


def test_unknown_settings_are_errors():
    rc, out, err = sluice("serve", "--bogus", "1")
    expect_eq(rc, 2)
    expect("unknown flag `--bogus`" in err, err)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("# comment\nthreads 2\nnot-a-key 5\n")
    rc, out, err = sluice("serve", "--config", f.name)
    os.unlink(f.name)
    expect_eq(rc, 2)
    expect(":3: unknown setting `not-a-key`" in err, err)


def test_config_file_is_read():
    d = tempfile.mkdtemp()
    conf = os.path.join(d, "sluice.conf")
    with open(conf, "w") as f:
        f.write("threads 1\nlog-level warn\n")
    s = Server(args=["--config", conf]).start()
    try:
        st, b = s.request("GET", "/healthz")
        expect_eq(st, 200)
    finally:
        s.cleanup()


def test_listen_file_names_the_bound_port():
    """--listen HOST:0 binds a free port and <data-dir>/listen names it; a clean stop removes
    the file."""
    s = Server().start()
    try:
        path = os.path.join(s.data_dir, "listen")
        with open(path) as f:
            expect_eq(f.read(), "127.0.0.1:%d\n" % s.port)
        expect(s.port > 0)
        expect_eq(s.request("GET", "/healthz", key=None)[0], 200)
        s.stop()
        expect(not os.path.exists(path), "listen file left after a clean stop")
    finally:
        s.cleanup()


def test_a_second_server_cannot_share_the_port():
    """The listeners use SO_REUSEPORT (one socket per loop); that must not let a second
    server bind a port the first one serves."""
    d = tempfile.mkdtemp()
    p = subprocess.run([BIN, "serve", "--data-dir", d, "--listen", "127.0.0.1:%d" % srv.port],
                       capture_output=True, text=True, timeout=30)
    expect_eq(p.returncode, 1, p.stderr)
    expect("Address already in use" in p.stderr, p.stderr)


def test_admin_key_file_is_private():
    path = os.path.join(srv.data_dir, "admin.key")
    expect_eq(os.stat(path).st_mode & 0o777, 0o600)
    expect(srv.key.startswith("sk_") and len(srv.key) >= 40, srv.key)


def test_workspaces():
    rc, out, err = srv.cli("workspace", "create", "w1", "--live")
    expect_eq(rc, 0, err)
    rc, out, err = srv.cli("workspace", "create", "w2")
    expect_eq(rc, 0, err)
    rc, out, err = srv.cli("workspace", "create", "w1")
    expect_eq(rc, 1)
    expect("already exists" in err, err)
    rc, out, err = srv.cli("workspace", "create", "bad name")
    expect_eq(rc, 1)
    rc, out, err = srv.cli("workspace", "list")
    expect_eq(rc, 0, err)
    lines = dict(l.split() for l in out.strip().splitlines())
    expect_eq(lines, {"w1": "live", "w2": "development"})


def test_cli_needs_a_key():
    rc, out, err = srv.cli("workspace", "list", key=None)
    expect_eq(rc, 1)
    expect("401" in err, err)


def test_plan_then_apply():
    rc, out, err = srv.cli("workspace", "create", "ads", "--live")
    expect_eq(rc, 0, err)
    rc, out, err = srv.cli("plan", "--workspace", "ads", example_dir("ads"))
    expect_eq(rc, 0, err)
    expect("+ create entity user" in out, out)
    expect("+ create feature_view click_events_fv" in out, out)
    expect("+ create feature_service ad_ctr_feature_service" in out, out)
    rc, out, err = srv.cli("plan", "--workspace", "ads", example_dir("ads"))
    expect("+ create" in out, "plan must not apply")
    rc, out, err = srv.cli("apply", "--workspace", "ads", example_dir("ads"), input="")
    expect_eq(rc, 0, err)
    expect("Applied to workspace `ads` (version 1)" in out, out)
    rc, out, err = srv.cli("plan", "--workspace", "ads", example_dir("ads"))
    expect("No changes" in out, out)


def test_apply_update_and_delete():
    d = tempfile.mkdtemp()
    src = open(os.path.join(example_dir("ads"), sorted(f for f in os.listdir(example_dir("ads")) if f.endswith(".lua"))[0])).read()
    rc, out, err = srv.cli("workspace", "create", "upd", "--live")
    with open(os.path.join(d, "repo.lua"), "w") as f:
        f.write(src)
    rc, out, err = srv.cli("apply", "--workspace", "upd", d)
    expect_eq(rc, 0, err)
    with open(os.path.join(d, "repo.lua"), "w") as f:
        f.write(src.replace('"30d"', '"7d"').replace("FeatureService", "local _unused = FeatureService", 1))
    rc, out, err = srv.cli("plan", "--workspace", "upd", d)
    expect_eq(rc, 0, err)
    expect("~ update feature_view click_events_fv (ttl)" in out, out)
    with open(os.path.join(d, "repo.lua"), "w") as f:
        f.write(src.replace("FeatureService {", "local _x = {", 1))
    rc, out, err = srv.cli("plan", "--workspace", "upd", d)
    expect("- delete feature_service" in out, out + err)


def test_apply_errors_name_file_and_line():
    rc, out, err = srv.cli("workspace", "create", "badws", "--live")
    rc, out, err = srv.cli("apply", "--workspace", "badws", os.path.join(SRCDIR, "tests", "data", "repos", "bad"))
    expect_eq(rc, 1)
    expect("bad.lua:" in err and "nope" in err, err)
    rc, out, err = srv.cli("workspace", "list")
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "x.lua"), "w") as f:
        f.write("local a = 1\nerror('boom')\n")
    rc, out, err = srv.cli("apply", "--workspace", "badws", d)
    expect_eq(rc, 1)
    expect("x.lua:2:" in err and "boom" in err, err)
    rc, out, err = srv.cli("apply", "--workspace", "missing-ws", example_dir("ads"))
    expect_eq(rc, 1)
    expect("not found" in err, err)


def test_plan_offline_validates_as_the_server_does():
    """`sluice plan --offline DIR` needs no server: a valid repository lists what the server's
    plan of an empty workspace lists; an invalid one fails (exit 1) with the server's
    message, file and line."""
    for name in ("ads", "fraud"):
        rc, out, err = sluice("plan", "--offline", example_dir(name))
        expect_eq(rc, 0, err)
        expect("is valid" in out and "Plan for an empty workspace" in out, out)
        rc, _, err = srv.cli("workspace", "create", "off_" + name)
        expect_eq(rc, 0, err)
        rc, sout, err = srv.cli("plan", "--workspace", "off_" + name, example_dir(name))
        expect_eq(rc, 0, err)
        want = sorted(l for l in sout.splitlines() if l.startswith("  + "))
        expect(want, sout)
        expect_eq(sorted(l for l in out.splitlines() if l.startswith("  + ")), want)
    ent = 'local user = Entity { name = "user", join_keys = { Field("user_id", String) } }\n'
    src = ('local s = StreamSource { name = "s", schema = { Field("user_id", String), '
           'Field("ts", Timestamp), Field("n", Int64) } }\n')
    bad = {
        "syntax": ent + "local x = = 1\n",
        "missing features": ent + src + 'StreamFeatureView { name = "v", source = s, entities = { user } }\n',
        "unknown column": ent + src + ('StreamFeatureView { name = "v", source = s, entities = { user }, '
                                       'timestamp_field = "ts", features = { Attribute("nope", Int64) } }\n'),
        "runtime error": ent + "error('boom')\n",
    }
    for what, text in sorted(bad.items()):
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "repo.lua"), "w") as f:
            f.write(text)
        rc, out, err = sluice("plan", "--offline", d)
        expect_eq(rc, 1, what)
        expect("repo.lua:" in err, (what, err))
        rc, sout, serr = srv.cli("plan", "--workspace", "ads", d)
        expect_eq(rc, 1, (what, serr))
        expect_eq(err.strip(), re.sub(r" \(HTTP 4\d\d\)$", "", serr.strip()), what)
    rc, out, err = sluice("plan", "--offline", "--workspace", "ads", example_dir("ads"))
    expect_eq(rc, 2, err)
    rc, out, err = sluice("apply", "--offline", example_dir("ads"))
    expect_eq(rc, 2, err)


run(globals())
