"""Running Sluice in production: settings checked before anything is written, --version,
the access log and request ids, SIGHUP (log reopened, settings reloaded) under load,
/readyz, the status page, and /metrics in Prometheus' format (promtool, Bearer, metrics-allow)."""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request

from harness import (BIN, Server, expect, expect_eq, listen_port, now_rfc3339, run, setup_workspace,
                     wait_for)


def sluice(*args):
    p = subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def test_bad_listen_fails_before_admin_key_is_written():
    d = tempfile.mkdtemp(prefix="sluice-test-")
    try:
        for flags, fragment in ((["--listen", "127.0.0.1:80000"], "`listen`"),
                                (["--listen", "localhost"], "`listen`"),
                                (["--log-format", "xml"], "`log-format`"),
                                (["--log-level", "loud"], "`log-level`"),
                                (["--tls-cert", "/nonexistent.pem"], "`tls-cert` and `tls-key`"),
                                (["--metrics-allow", "10.0.0.0/99"], "`metrics-allow`")):
            rc, out, err = sluice("serve", "--data-dir", os.path.join(d, "data"), "--listen",
                                  "127.0.0.1:0", *flags)
            expect_eq(rc, 2, err)
            expect(fragment in err, "%r not in %r" % (fragment, err))
            expect(not os.path.exists(os.path.join(d, "data")), os.listdir(d))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_version_names_release_and_commit():
    rc, out, _ = sluice("--version")
    expect_eq(rc, 0)
    expect(re.match(r"^sluice \d+\.\d+\.\d+ \(commit [0-9a-z.-]+\)\n$", out), out)


def test_access_log_json_with_request_id_and_account_never_key():
    srv = Server(args=["--log-level", "debug", "--log-format", "json"]).start()
    try:
        setup_workspace(srv)
        st, b = srv.ingest({"impressions_event_source": [
            {"record": {"timestamp": now_rfc3339(-5), "user_id": "u1", "clicked": 1}}]})
        expect_eq(st, 200, b)
        st, b = srv.request("GET", "/v1/workspaces/nope/definitions",
                            headers={"X-Request-Id": "req-42"})
        expect_eq(st, 404, b)
        def lines():
            out = []
            for line in srv.log_text().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
            return out
        def ingest_line():
            return [l for l in lines() if l.get("msg") == "request" and l.get("path") == "/ingest"]
        got = wait_for(ingest_line, 10, "the ingest access line")[0]
        expect_eq((got["level"], got["method"], got["status"], got["workspace"]),
                  ("info", "POST", 200, "ads"), got)
        expect(got["account"] and got["bytes"] > 0 and got["duration"] >= 0, got)
        expect(srv.key not in srv.log_text(), "the API key is in the log")
        def failed():
            return [l for l in lines() if l.get("msg") == "request failed" and l.get("id") == "req-42"]
        f = wait_for(failed, 10, "the 404 line at debug")[0]
        expect_eq((f["level"], f["status"]), ("debug", 404), f)
        expect("nope" in f["error"], f)
        # the id goes back to the client
        req = urllib.request.Request(srv.url + "/healthz", headers={"X-Request-Id": "abc-1"})
        with urllib.request.urlopen(req, timeout=10) as r:
            expect_eq(r.headers["X-Request-Id"], "abc-1")
        with urllib.request.urlopen(srv.url + "/healthz", timeout=10) as r:
            expect(r.headers["X-Request-Id"], dict(r.headers))
    finally:
        srv.cleanup()


def test_sighup_under_load_reopens_log_and_reloads_settings():
    d = tempfile.mkdtemp(prefix="sluice-test-")
    conf = os.path.join(d, "sluice.conf")
    log = os.path.join(d, "sluice.log")
    with open(conf, "w") as f:
        f.write("log-level info\naccess-log false\nmax-records 10000\n")
    srv = Server(data_dir=os.path.join(d, "data"), args=["--config", conf, "--log-file", log,
                                                           "--log-level", "info"])
    os.mkdir(srv.data_dir)
    srv.start()
    errors, counts, stop = [], [0], threading.Event()
    def load():
        while not stop.is_set():
            try:
                st, b = srv.ingest({"impressions_event_source": [
                    {"record": {"timestamp": now_rfc3339(-5), "user_id": "u%d" % counts[0], "clicked": 1}}]})
                if st != 200:
                    errors.append((st, b))
                st, b = srv.get_features({"user_id": "u1"})
                if st != 200:
                    errors.append((st, b))
                counts[0] += 1
            except Exception as e:  # a dropped connection is a failure too
                errors.append(repr(e))
    try:
        setup_workspace(srv)
        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        wait_for(lambda: counts[0] > 20, 30, "load to run")
        for i in range(3):
            os.rename(log, log + ".%d" % i)
            with open(conf, "w") as f:  # the flag still wins for log-level; the file's max-records changes
                f.write("log-level debug\naccess-log false\nmax-records %d\n" % (5000 + i))
            before = counts[0]
            srv.proc.send_signal(signal.SIGHUP)
            def reopened():
                try:
                    with open(log) as f:
                        return "reload: log reopened" in f.read()
                except OSError:
                    return False
            wait_for(reopened, 10, "the log file to be reopened")
            wait_for(lambda: counts[0] > before + 5, 30, "requests after the reload")
        stop.set()
        for t in threads:
            t.join(60)
        expect_eq(errors, [])
        expect(srv.proc.poll() is None, "the server exited on SIGHUP")
        with open(log + ".0") as f:
            old = f.read()
        expect("listening on" in old, old[-2000:])
        with open(log) as f:
            new = f.read()
        expect("reload: `max-records` 5001 -> 5002" in new, new)
        expect("`log-level`" not in new, new)  # the command line still says info
        # an invalid file changes nothing and says why
        with open(conf, "w") as f:
            f.write("max-records lots\n")
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "the settings in use stay" in open(log).read(), 10, "the refused reload")
        st, b = srv.ingest({"impressions_event_source": [
            {"record": {"timestamp": now_rfc3339(-5), "user_id": "z", "clicked": 1}}]})
        expect_eq(st, 200, b)
        srv.stop()
        expect("stopping on signal 15" in open(log).read())
    finally:
        stop.set()
        srv.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def cert_subject(port):
    """The CN of the certificate a TLS server on port presents."""
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    p = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem, capture_output=True,
                       text=True, check=True)
    return p.stdout.strip().rsplit("=", 1)[-1].strip()


def test_sighup_loads_a_renewed_tls_certificate():
    d = tempfile.mkdtemp(prefix="sluice-tls-")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    def make(cn):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=" + cn], check=True, capture_output=True)
    make("first")
    log = os.path.join(d, "log")
    srv = Server(data_dir=os.path.join(d, "data"), args=["--tls-cert", cert, "--tls-key", key,
                                                           "--log-file", log, "--log-level", "info"])
    os.mkdir(srv.data_dir)
    # the harness probes /healthz over plain HTTP: start by hand
    srv.proc = subprocess.Popen([BIN, "serve", "--data-dir", srv.data_dir, "--listen",
                                 "127.0.0.1:0"] + srv.args)
    try:
        srv.port = listen_port(srv.data_dir)
        wait_for(lambda: os.path.exists(log) and "listening on" in open(log).read(), 15, "start")
        expect_eq(cert_subject(srv.port), "first")
        make("second")  # renewed in place, as certbot does
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload: TLS certificate" in open(log).read(), 10, "the reload")
        expect_eq(cert_subject(srv.port), "second")
        with open(key, "w") as f:  # a broken key: the old certificate stays
            f.write("junk\n")
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "the settings in use stay" in open(log).read(), 10, "the refused reload")
        expect_eq(cert_subject(srv.port), "second")
    finally:
        srv.cleanup()
        shutil.rmtree(d, ignore_errors=True)


def test_sd_notify_ready_reloading_stopping():
    """What systemd (Type=notify) hears on $NOTIFY_SOCKET: READY once serving, RELOADING and
    READY around a SIGHUP, STOPPING on SIGTERM."""
    d = tempfile.mkdtemp(prefix="sluice-notify-")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = os.path.join(d, "notify")
    sock.bind(path)
    sock.settimeout(30)
    p = subprocess.Popen([BIN, "serve", "--data-dir", os.path.join(d, "data"), "--listen",
                          "127.0.0.1:0", "--log-level", "warn"],
                         env=dict(os.environ, NOTIFY_SOCKET=path))
    try:
        msg = sock.recv(4096).decode()
        port = listen_port(os.path.join(d, "data"))
        expect(msg.startswith("READY=1\n") and "STATUS=listening on port %d" % port in msg, msg)
        with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=10) as r:
            expect_eq(r.status, 200)  # ready means ready: it already answers
        p.send_signal(signal.SIGHUP)
        expect_eq(sock.recv(4096).decode(), "RELOADING=1")
        expect_eq(sock.recv(4096).decode(), "READY=1")
        p.send_signal(signal.SIGTERM)
        expect_eq(sock.recv(4096).decode(), "STOPPING=1")
        expect_eq(p.wait(60), 0)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        sock.close()
        shutil.rmtree(d, ignore_errors=True)


def test_readyz_and_status_page():
    srv = Server().start()
    try:
        st, b = srv.request("GET", "/readyz", key=None)
        expect_eq((st, b["status"]), (200, "ready"), b)
        expect(b["version"] and b["commit"], b)
        for path in ("/", "/ui"):
            req = urllib.request.Request(srv.url + path)
            with urllib.request.urlopen(req, timeout=10) as r:
                page = r.read().decode()
                expect_eq(r.headers["Content-Type"], "text/html; charset=utf-8")
            expect("<title>Sluice status</title>" in page, page[:200])
        st, b = srv.request("POST", "/ui", {}, key=None)
        expect_eq((st, b["code"]), (405, 12), b)
    finally:
        srv.cleanup()


def scrape(srv, headers):
    req = urllib.request.Request(srv.url + "/metrics", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_metrics_bearer_promtool_and_histograms():
    srv = Server().start()
    try:
        setup_workspace(srv)
        for i in range(3):
            st, b = srv.ingest({"impressions_event_source": [
                {"record": {"timestamp": now_rfc3339(-5), "user_id": "u%d" % i, "clicked": 1}},
                {"record": {"timestamp": now_rfc3339(-5), "user_id": "v%d" % i, "clicked": 0}}]})
            expect_eq(st, 200, b)
            st, b = srv.get_features({"user_id": "u%d" % i})
            expect_eq(st, 200, b)
        st, b = srv.ingest({"nope": []})
        expect_eq(st, 404, b)
        expect_eq(scrape(srv, {})[0], 401)
        expect_eq(scrape(srv, {"Authorization": "Bearer wrong"})[0], 401)
        st, text = scrape(srv, {"Authorization": "Bearer " + srv.key})
        expect_eq(st, 200, text)
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                           timeout=30)
        expect_eq(p.returncode, 0, p.stdout + p.stderr)
        for want in ('sluice_ingest_workspace_records_total{workspace="ads"} 6',
                     'sluice_ingest_workspace_errors_total{workspace="ads"} 1',
                     'sluice_http_request_duration_seconds_bucket{endpoint="ingest",status="200",le="5e-05"}',
                     'sluice_http_request_duration_seconds_count{endpoint="ingest",status="200"} 3',
                     'sluice_http_request_duration_seconds_count{endpoint="get-features",status="200"} 3',
                     'sluice_http_request_duration_seconds_count{endpoint="ingest",status="404"} 1',
                     'sluice_commit_group_size_bucket{le="+Inf"}', 'sluice_commit_fsync_seconds_count',
                     'sluice_commit_queue_depth 0', 'sluice_jobs{state="running"}',
                     'sluice_read_cache_hit_ratio', 'sluice_build_info{version="',
                     'process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds',
                     'process_start_time_seconds'):
            expect(want in text, want)
        for view in ("click_events_fv", "user_click_counts"):
            expect('sluice_ingest_view_rows_total{workspace="ads",view="%s"} 6' % view in text, view)
            newest = float(re.search(r'^sluice_view_newest_event_timestamp_seconds\{workspace="ads",'
                                     r'view="%s"\} ([0-9.]+)$' % view, text, re.M).group(1))
            expect(time.time() - 60 < newest < time.time(), newest)  # the records were 5 s old
        for name in ("sluice_online_store_bytes", "sluice_offline_store_bytes"):
            v = int(re.search(r"^%s (\d+)$" % name, text, re.M).group(1))
            expect(v > 0, name)
        groups = int(re.search(r'^sluice_commit_group_size_count (\d+)$', text, re.M).group(1))
        expect(groups >= 3, groups)  # the three ingests, and the apply's registry writes
    finally:
        srv.cleanup()


def test_metrics_allow_lets_listed_addresses_scrape_without_key():
    srv = Server(args=["--metrics-allow", "10.0.0.0/8, 127.0.0.0/8"]).start()
    try:
        st, text = scrape(srv, {})
        expect_eq(st, 200, text)
        expect("sluice_build_info" in text)
    finally:
        srv.cleanup()
    srv = Server(args=["--metrics-allow", "10.0.0.0/8,::1"]).start()
    try:
        expect_eq(scrape(srv, {})[0], 401)
    finally:
        srv.cleanup()


run(globals())
