"""Test harness for integration tests: starts a real `sluice serve` on a loopback port 0
and talks HTTP to it. Each test file calls run(globals()) at the end; every function named
test_* runs in order, and the file ends with the line `N passed, M failed`."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

BIN = os.environ.get("SLUICE_BIN", os.path.abspath("sluice"))
SRCDIR = os.environ.get("SL_SRCDIR", ".")
# Which pass of scripts/test runs this suite: "plain", "asan" or "tsan" (plain when run by
# hand). Multi-process deployment suites run a smaller workload under the sanitizers.
PASS = os.environ.get("SL_TEST_PASS", "plain")
SCHEMAS = os.path.join(SRCDIR, "schemas")
_validators = {}


def validate(body, schema):
    """Checks body against schemas/<schema> (JSON Schema draft 2020-12)."""
    import jsonschema
    v = _validators.get(schema)
    if v is None:
        base = "file://" + os.path.abspath(SCHEMAS) + "/"
        store = {}
        for name in os.listdir(SCHEMAS):
            with open(os.path.join(SCHEMAS, name)) as f:
                store[base + name] = json.load(f)
        doc = store[base + schema]
        resolver = jsonschema.RefResolver(base_uri=base + schema, referrer=doc, store=store)
        v = jsonschema.Draft202012Validator(doc, resolver=resolver)
        _validators[schema] = v
    v.validate(body)


def validate_response(path, status, body):
    """Every /ingest and FeatureService response must match its documented schema."""
    if path == "/ingest":
        if status == 200:
            validate(body, "ingest-response.json")
        elif isinstance(body, dict) and "recordErrors" in body:
            validate(body, "ingest-record-error.json")
        else:
            validate(body, "ingest-request-error.json")
    elif path.startswith("/api/v1/feature-service/"):
        if status != 200:
            validate(body, "feature-service-error.json")
        elif path.endswith("/get-features"):
            validate(body, "get-features-response.json")
        elif path.endswith("/metadata"):
            validate(body, "metadata-response.json")


def listen_port(data_dir, check=None, timeout=15):
    """The port a `sluice serve --listen HOST:0` on data_dir bound, read from the
    <data-dir>/listen file it writes once listening; check() may raise (the process died)."""
    listen_file = os.path.join(data_dir, "listen")
    def bound():
        if check:
            check()
        try:
            with open(listen_file) as f:
                return int(f.read().strip().rsplit(":", 1)[1])
        except (OSError, ValueError, IndexError):
            return None
    return wait_for(bound, timeout, "the server to write its listen file")


def foreign_port():
    """A free loopback port for a third-party server that cannot report a port bound to 0
    (Prometheus). Sluice servers never use this: they listen on port 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=10.0, what="condition"):
    """Polls cond() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def online_store_args(data_dir):
    """With SLUICE_TEST_ONLINE_STORE=redis (and SLUICE_TEST_REDIS_URL), the server keeps its
    online store in Redis through the store_redis plugin, under a key prefix of its own
    derived from data_dir (so a restart on the same dir finds its data again)."""
    if os.environ.get("SLUICE_TEST_ONLINE_STORE", "") != "redis":
        return []
    so = os.environ.get("SLUICE_TEST_REDIS_PLUGIN") or os.path.join(
        os.path.dirname(BIN), "plugins", "store_redis", "store_redis.so")
    url = os.environ.get("SLUICE_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    prefix = "t-" + os.path.basename(os.path.normpath(data_dir)) + ":"
    return ["--plugin", so, "--online-store", "redis",
            "--plugin-config", "redis.redis-url=" + url,
            "--plugin-config", "redis.redis-key-prefix=" + prefix]


class Server:
    """A sluice server process on a temporary data directory."""

    def __init__(self, data_dir=None, args=(), keep=False, env=None):
        self.own_dir = data_dir is None
        self.env = env  # extra environment variables of the server process
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="sluice-test-")
        self.args = list(args)
        self.proc = None
        self.port = None
        self.key = None
        self.log = None

    def start(self):
        """Starts the server on port 0 (the kernel picks a free one, so parallel tests never
        race for a port) and reads the bound port back from <data-dir>/listen."""
        listen_file = os.path.join(self.data_dir, "listen")
        if os.path.exists(listen_file):
            os.unlink(listen_file)  # left by a killed server: not this one's port
        self.port = None
        self.log = open(os.path.join(self.data_dir, "server.log"), "ab")
        cmd = [BIN, "serve", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0",
               "--log-level", "warn"] + self.args
        if "--online-store" not in self.args:  # a test that picks its own store keeps it
            cmd += online_store_args(self.data_dir)
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env)
        def exited():
            if self.proc.poll() is not None:
                raise AssertionError("server exited with %s: %s" % (self.proc.returncode, self.log_text()))
        self.port = listen_port(self.data_dir, exited)
        def up():
            exited()
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_for(up, 15, "the server to listen")
        keyfile = os.path.join(self.data_dir, "admin.key")
        if os.path.exists(keyfile):
            with open(keyfile) as f:
                self.key = f.read().strip()
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def log_text(self):
        try:
            with open(os.path.join(self.data_dir, "server.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        """Stops the server with SIGTERM; it must exit cleanly (status 0 — under the
        sanitizers, also free of leaks and memory errors)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server did not stop on SIGTERM")
            if self.proc.returncode != 0:
                code = self.proc.returncode
                self.proc = None
                raise AssertionError("server exited with status %s on SIGTERM: %s" % (code, self.log_text()))
        self.proc = None
        if self.log:
            self.log.close()
            self.log = None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self.own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def request(self, method, path, body=None, key="admin", raw=None, headers=None):
        """Returns (status, parsed JSON or text). key: "admin", None, or a key string."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        k = self.key if key == "admin" else key
        if k is not None:
            req.add_header("Authorization", "Sluice-key " + k)
        for h, v in (headers or {}).items():
            req.add_header(h, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        if status == 200 and ("get-features-for-events" in path or "get-features-in-range" in path):
            return status, text  # CSV or JSON Lines
        try:
            parsed = json.loads(text)
        except ValueError:
            if path == "/ingest" or path.startswith("/api/v1/feature-service/"):
                raise AssertionError("%s answered %d with a body that is not JSON: %r" % (path, status, text[:200]))
            return status, text
        validate_response(path, status, parsed)
        return status, parsed

    def cli(self, *args, key="admin", input=None, env_extra=None):
        env = dict(os.environ)
        env["SLUICE_URL"] = self.url
        env.pop("SLUICE_API_KEY", None)
        if key == "admin":
            env["SLUICE_API_KEY"] = self.key
        elif key:
            env["SLUICE_API_KEY"] = key
        env.update(env_extra or {})
        p = subprocess.run([BIN] + list(args), env=env, input=input, capture_output=True,
                           text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def ingest(self, records, ws="ads", dry_run=False, key="admin"):
        return self.request("POST", "/ingest", {"workspace_name": ws, "dry_run": dry_run,
                                                "records": records}, key=key)

    def get_features(self, join_key_map, ws="ads", service="ad_ctr_feature_service",
                     options=None, key="admin"):
        params = {"workspace_name": ws, "feature_service_name": service,
                  "join_key_map": join_key_map}
        if options is not None:
            params["metadata_options"] = options
        return self.request("POST", "/api/v1/feature-service/get-features",
                            {"params": params}, key=key)


def example_dir(name):
    return os.path.join(SRCDIR, "scripts", "examples", name)


def setup_workspace(srv, ws="ads", repo="ads", live=True):
    """Creates workspace ws and applies the example repository `repo` to it."""
    args = ["workspace", "create", ws] + (["--live"] if live else [])
    rc, out, err = srv.cli(*args)
    assert rc == 0, err
    rc, out, err = srv.cli("apply", "--workspace", ws, example_dir(repo))
    assert rc == 0, out + err
    return out


def metric(srv, name):
    """The value of counter `name` in the server's /metrics."""
    st, text = srv.request("GET", "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError("no metric " + name)


def iso(t):
    """RFC 3339 UTC text of t (seconds since the epoch), milliseconds kept."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(t))) + ".%03dZ" % int(round((t % 1) * 1000))


def set_clock(srv, t):
    """Moves the fake clock of a server started with --fake-now (t: seconds or RFC 3339)."""
    st, b = srv.request("POST", "/v1/test/clock", {"now": t if isinstance(t, str) else iso(t)})
    assert st == 200, b


def now_rfc3339(offset_s=0.0):
    t = time.time() + offset_s
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def expect(cond, msg=""):
    if not cond:
        raise AssertionError(msg)


def expect_eq(got, want, msg=""):
    if got != want:
        raise AssertionError("%s\n  got:  %r\n  want: %r" % (msg, got, want))


def parse_jsonl(text):
    """The objects of a JSON Lines text (blank lines skipped)."""
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def same(a, b):
    """Feature values equal, floats to 1e-12 relative (online and offline sum in other orders)."""
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-12 * max(1.0, abs(a))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def csv_cell(v):
    """A JSON Lines value as get-features-in-range writes it in a CSV cell."""
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def check_range_csv(text, rows):
    """The CSV of get-features-in-range is one rectangular table (one header; every row as
    many cells as it) holding the JSON Lines rows: a row's own columns filled, the columns
    of other views empty. It loads with pandas when pandas is installed."""
    import csv
    import io
    table = list(csv.reader(io.StringIO(text)))
    header = table[0]
    expect_eq(len(set(header)), len(header), header)
    expect_eq([i for i, r in enumerate(table) if len(r) != len(header)], [])
    expect_eq(sum(1 for r in table if r[:1] == ["_feature_view"]), 1)
    want = sorted(tuple(csv_cell(r.get(c)) for c in header) for r in rows)
    expect_eq(sorted(tuple(r) for r in table[1:]), want)
    for r in rows:
        expect(set(r) <= set(header), (sorted(set(r) - set(header)), header))
    try:
        import pandas
    except ImportError:
        return
    df = pandas.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    expect_eq(list(df.columns), header)
    expect_eq(len(df), len(rows))


def run(ns):
    """Runs every test_* function of the calling module, in definition order."""
    tests = [(n, f) for n, f in ns.items() if n.startswith("test_") and callable(f)]
    passed = failed = 0
    setup = ns.get("setup_module")
    teardown = ns.get("teardown_module")
    try:
        if setup:
            setup()
        for i, (name, fn) in enumerate(tests, 1):
            try:
                fn()
                passed += 1
                print("ok %d - %s" % (i, name), flush=True)
            except Exception:
                failed += 1
                print("not ok %d - %s" % (i, name), flush=True)
                for line in traceback.format_exc().splitlines():
                    print("#   " + line)
    except Exception:
        failed += 1
        print("not ok - setup_module")
        traceback.print_exc()
    finally:
        if teardown:
            try:
                teardown()
            except Exception:
                traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
