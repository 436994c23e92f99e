"""Hostile Lua (issue 17) through the three places user code runs on a real server: plan
(definitions), a transformation at /ingest and a realtime view at get-features. Each
reproduction gets a clear 4xx naming the limit, the server stays up, and /healthz keeps
answering while the hostile requests run."""

import os
import threading
import time
import urllib.request

from harness import SRCDIR, Server, expect, expect_eq, now_rfc3339, run

srv = None
REPO = os.path.join(SRCDIR, "tests", "data", "repos", "hostile")
FS = "/api/v1/feature-service/get-features"

# (code, fragment of the error message). Every one of these crashed the server (SIGSEGV) or
# ran for more than 15 s before.
CASES = [
    ("cjson.decode_max_depth(100000000) "
     "cjson.decode(string.rep('[', 400000) .. string.rep(']', 400000))", "decode_max_depth"),
    ("cjson.decode(string.rep('[', 400000) .. string.rep(']', 400000))", "too many nested"),
    ("local t = {} local x = t for i = 1, 250000 do x[1] = {} x = x[1] end cjson.encode(t)",
     "excessive nesting"),
    ("xpcall(function() while true do end end, function() while true do end end)",
     "instruction limit exceeded"),
    ("string.rep('', 2^40)", "instruction limit exceeded"),
    ("table.move({}, 1, 2^40, 2)", "instruction limit exceeded"),
    ("string.find(string.rep('x', 100000), '.-.-.-.-.-y')", "instruction limit exceeded"),
    ("string.find(('a'):rep(26), ('a?'):rep(26) .. ('a'):rep(26))", "instruction limit exceeded"),
    ("local function f(n) return f(n + 1) + 1 end f(1)", "limit exceeded"),
]


class Prober:
    """Polls /healthz from a thread and keeps the slowest answer (or failure)."""

    def __init__(self):
        self.worst = 0.0
        self.failures = 0
        self.count = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(srv.url + "/healthz", timeout=5) as r:
                    ok = r.status == 200
            except OSError:
                ok = False
            dt = time.monotonic() - t0
            self.count += 1
            self.worst = max(self.worst, dt)
            if not ok:
                self.failures += 1
            self.stop.wait(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def setup_module():
    global srv
    srv = Server(args=["--lua-instructions", "2000000", "--lua-memory-mb", "32"]).start()
    rc, out, err = srv.cli("workspace", "create", "h", "--live")
    assert rc == 0, err
    rc, out, err = srv.cli("apply", "--workspace", "h", REPO)
    assert rc == 0, out + err


def teardown_module():
    srv.cleanup()


def alive():
    st, b = srv.request("GET", "/healthz", key=None)
    expect_eq(st, 200, b)
    expect(srv.proc.poll() is None, "the server exited")


def check_all(send, what):
    """send(code) -> (status, message); every case must fail with a 4xx naming its limit,
    within the budget, while /healthz keeps answering."""
    with Prober() as p:
        for code, frag in CASES:
            t0 = time.monotonic()
            st, msg = send(code)
            dt = time.monotonic() - t0
            expect(400 <= st < 500, "%s: %s -> %d %s" % (what, code, st, msg))
            expect(frag in msg, "%s: %s: %r not in %r" % (what, code, frag, msg))
            expect(dt < 5, "%s: %s took %.1f s" % (what, code, dt))
            alive()
    print("# %s: %d /healthz probes, slowest %.0f ms" % (what, p.count, p.worst * 1000))
    expect_eq(p.failures, 0, "%s: /healthz probes failed" % what)
    expect(p.worst < 1.0, "%s: /healthz took %.0f ms" % (what, p.worst * 1000))


def test_plan():
    def send(code):
        st, b = srv.request("POST", "/v1/workspaces/h/plan",
                            {"files": [{"name": "evil.lua", "content": code}]})
        return st, str(b)
    check_all(send, "plan")


def test_ingest_transformation():
    def send(code):
        st, b = srv.ingest({"ev": [{"record": {"user_id": "u", "ts": now_rfc3339(),
                                               "code": code}}]}, ws="h")
        errs = (b.get("recordErrors") if isinstance(b, dict) else None) or [{}]
        expect_eq(errs[0].get("errorType"), "TransformationError", b)
        return st, errs[0].get("errorMessage", "")
    check_all(send, "ingest")
    # nothing was written, and a harmless record still goes through
    st, b = srv.ingest({"ev": [{"record": {"user_id": "ok", "ts": now_rfc3339(),
                                           "code": "return 1"}}]}, ws="h")
    expect_eq(st, 200, b)


def test_realtime_view():
    def send(code):
        st, b = srv.request("POST", FS, {"params": {
            "workspace_name": "h", "feature_service_name": "svc",
            "join_key_map": {"user_id": "u"}, "request_context_map": {"code": code}}})
        return st, str(b)
    check_all(send, "get-features")
    st, b = srv.request("POST", FS, {"params": {
        "workspace_name": "h", "feature_service_name": "svc",
        "join_key_map": {"user_id": "ok"}, "request_context_map": {"code": "return 1"}}})
    expect_eq(st, 200, b)


def test_plan_budget_is_per_apply():
    # 40 files of ~1.2M instructions each: each fits the 2M budget, all together do not.
    spin = "for i = 1, 1200000 do end\n"
    files = [{"name": "f%02d.lua" % i, "content": spin} for i in range(40)]
    st, b = srv.request("POST", "/v1/workspaces/h/plan", {"files": files[:1]})
    expect_eq(st, 200, b)
    st, b = srv.request("POST", "/v1/workspaces/h/plan", {"files": files})
    expect(400 <= st < 500, (st, b))
    expect("instruction limit exceeded" in str(b), b)


def test_server_still_serves_and_stops():
    alive()
    st, b = srv.ingest({"ev": [{"record": {"user_id": "end", "ts": now_rfc3339(),
                                           "code": "return 1"}}]}, ws="h")
    expect_eq(st, 200, b)
    srv.stop()  # must exit 0 on SIGTERM


run(globals())
