"""`make install` lays out the binary, manuals, settings, systemd unit, schemas and examples;
each manual renders; the unit verifies; the manuals and the sample settings cover every
setting and command."""

import os
import re
import shutil
import subprocess
import tempfile

from harness import BIN, SRCDIR, expect, expect_eq, run, wait_for

BUILDDIR = os.path.dirname(os.path.abspath(BIN))
dest = None
prefix = None


def setup_module():
    global dest, prefix
    dest = tempfile.mkdtemp(prefix="sluice-install-")
    p = subprocess.run(["make", "-s", "-C", BUILDDIR, "install", "DESTDIR=" + dest],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    bins = [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs if f == "sluice"]
    assert len(bins) == 1, bins
    prefix = os.path.dirname(os.path.dirname(bins[0]))  # DESTDIR + the configured prefix


def teardown_module():
    shutil.rmtree(dest, ignore_errors=True)


def settings():
    out = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True).stdout
    return [k for k in re.findall(r"^  --([a-z-]+) ", out, re.M) if k != "config"]


def test_layout():
    want = ["bin/sluice", "share/man/man1/sluice.1", "share/man/man5/sluice.conf.5",
            "share/man/man7/sluice-lua.7", "share/doc/sluice/sluice.conf.sample",
            "share/sluice/schemas/ingest-request.json", "share/sluice/schemas/get-features-response.json",
            "share/sluice/examples/ads/ads.lua", "share/sluice/examples/ads/data/impressions.csv",
            "share/sluice/examples/fraud/entities.lua",
            "share/sluice/examples/fraud/data/transactions.jsonl"]
    for w in want:
        expect(os.path.isfile(os.path.join(prefix, w)), w)
    units = [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs if f == "sluice.service"]
    expect_eq(len(units), 1)
    confs = [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs if f == "sluice.conf"]
    expect_eq(len(confs), 1)
    schemas = sorted(os.listdir(os.path.join(prefix, "share/sluice/schemas")))
    expect_eq(schemas, sorted(f for f in os.listdir(os.path.join(SRCDIR, "schemas")) if f.endswith(".json")))


def test_manuals_render_and_cover_everything():
    pages = {}
    for sec, name in (("1", "sluice.1"), ("5", "sluice.conf.5"), ("7", "sluice-lua.7")):
        path = os.path.join(prefix, "share/man/man" + sec, name)
        p = subprocess.run(["man", "-l", path], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, MANWIDTH="100", LC_ALL="C"))
        expect_eq((p.returncode, p.stderr), (0, ""), name)
        pages[name] = p.stdout.replace("\u2010", "-")
        expect(len(pages[name]) > 2000, name)
    for key in settings():
        expect(re.search(r"^\s+%s\s" % re.escape(key), pages["sluice.conf.5"], re.M),
               "sluice.conf(5) does not describe `%s`" % key)
    rc = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
    for cmd in re.findall(r"^  ([a-z-]+)\s", rc, re.M):
        expect(re.search(r"^\s+(sluice )?%s\b" % re.escape(cmd), pages["sluice.1"], re.M),
               "sluice(1) does not describe `%s`" % cmd)
    for ctor in ("Entity", "StreamSource", "RequestSource", "FileConfig", "Attribute", "Aggregate",
                 "StreamFeatureView", "RealtimeFeatureView", "FeatureService", "sluice.time.truncate",
                 "sluice.hash_bucket", "sluice.null"):
        expect(ctor in pages["sluice-lua.7"], ctor)


def test_sample_settings_list_every_setting_and_start_a_server():
    sample = os.path.join(prefix, "share/doc/sluice/sluice.conf.sample")
    text = open(sample).read()
    for key in settings():
        if key != "fake-now":
            expect(re.search(r"^# %s\s" % re.escape(key), text, re.M), "the sample lacks `%s`" % key)
    data = tempfile.mkdtemp(prefix="sluice-test-")
    log = os.path.join(data, "log")
    p = subprocess.Popen([BIN, "serve", "--config", sample, "--data-dir", data, "--listen",
                          "127.0.0.1:0", "--log-file", log])
    try:
        wait_for(lambda: os.path.exists(log) and "listening on" in open(log).read(), 15, "start")
    finally:
        p.terminate()
        expect_eq(p.wait(60), 0)
        shutil.rmtree(data, ignore_errors=True)


def test_unit_verifies():
    analyze = shutil.which("systemd-analyze")
    expect(analyze, "systemd-analyze is not installed (scripts/deps.sh test)")
    unit = [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs if f == "sluice.service"][0]
    text = open(unit).read()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "DynamicUser=yes",
                 "StateDirectory=sluice", "ProtectSystem=strict", "NoNewPrivileges=yes"):
        expect(line in text, line)
    exe = re.search(r"^ExecStart=(\S+)", text, re.M).group(1)
    # verify against the staged binary and manuals (the unit names man pages as Documentation)
    d = tempfile.mkdtemp(prefix="sluice-unit-")
    try:
        with open(os.path.join(d, "sluice.service"), "w") as f:
            f.write(text.replace(exe, dest + exe))
        p = subprocess.run([analyze, "verify", os.path.join(d, "sluice.service")], capture_output=True,
                           text=True, timeout=120,
                           env=dict(os.environ, MANPATH=os.path.join(prefix, "share/man")))
        expect_eq((p.returncode, p.stdout + p.stderr), (0, ""))
    finally:
        shutil.rmtree(d, ignore_errors=True)


run(globals())
