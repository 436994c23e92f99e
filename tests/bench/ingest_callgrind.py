"""Instructions per ingested record, counted by callgrind: repeatable on a loaded machine where
records/s and CPU time are not. For each workload a `sluice serve` (one HTTP thread, fixed
clock, fresh data directory under a temporary directory) runs under valgrind with collection
off; the first request warms it, then collection covers N records (B per request, sent one
request at a time) and is dumped. Every thread counts (writer, flusher, LevelDB's compaction).

Usage: python3 tests/bench/ingest_callgrind.py SLUICE [WORKLOAD...]
Workloads: attr (tests/bench/repos/ingest), ads (scripts/examples/ads: attribute + 3 tiled
aggregations + Lua), 1h and 30d (tests/bench/repos/agg: count, sum, max on 1-minute tiles).
Environment: N [10000] records per workload, B [100] records per request, KEEP=1 keeps the
profiles (callgrind_annotate them) and prints where.
"""
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOW, NOW_T = "2025-06-01T00:00:00Z", 1748736000
REPOS = {"attr": ("attr", "tests/bench/repos/ingest"), "ads": ("bench", "scripts/examples/ads"),
         "1h": ("agg", "tests/bench/repos/agg"), "30d": ("agg", "tests/bench/repos/agg")}


def ts(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def bodies(kind, n, b, rng):
    ws = REPOS[kind][0]
    for _ in range(0, n, b):
        if kind in ("attr", "ads"):  # many users, as the ingest phase of run.sh
            recs = [{"record": {"user_id": "u%d" % rng.randrange(100000),
                                "timestamp": ts(NOW_T - rng.uniform(0.001, 600)), "clicked": k % 2}}
                    for k in range(b)]
            yield {"workspace_name": ws, "dry_run": False, "records": {"impressions_event_source": recs}}
        else:  # 2000 users, the last 10 minutes, as the agg phase's ingest
            recs = [{"record": {"user_id": "user%d" % rng.randrange(2000),
                                "ts": ts(NOW_T - rng.uniform(0.001, 600)),
                                "amount": round(rng.uniform(1, 500), 2)}} for _ in range(b)]
            yield {"workspace_name": ws, "dry_run": False, "records": {"tx_" + kind: recs}}


def measure(sluice, kind, n, b, work):
    data = os.path.join(work, kind)
    os.makedirs(data)
    log = os.path.join(work, kind + ".log")
    with open(log, "w") as lf:
        p = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                              "--callgrind-out-file=" + os.path.join(work, kind + ".cg.%p"),
                              sluice, "serve", "--data-dir", data, "--listen", "127.0.0.1:0",
                              "--fake-now", NOW, "--threads", "1"], stdout=lf, stderr=subprocess.STDOUT)
    try:
        port = None
        for _ in range(1200):
            m = re.search(r"listening on .* \(port (\d+)\)", open(log).read())
            if m:
                port = int(m.group(1))
                break
            if p.poll() is not None:
                sys.exit("sluice serve exited: " + open(log).read()[-2000:])
            time.sleep(0.1)
        if port is None:
            sys.exit("sluice serve did not start")
        key = open(os.path.join(data, "admin.key")).read().strip()
        env = dict(os.environ, SLUICE_URL="http://127.0.0.1:%d" % port, SLUICE_API_KEY=key)
        ws, repo = REPOS[kind]
        for args in (["workspace", "create", ws, "--live"], ["apply", "--workspace", ws, os.path.join(TOP, repo)]):
            subprocess.run([sluice] + args, env=env, check=True, stdout=subprocess.DEVNULL)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        headers = {"Authorization": "Sluice-key " + key, "Content-Type": "application/json"}

        def post(body):
            conn.request("POST", "/ingest", body=json.dumps(body), headers=headers)
            r = conn.getresponse()
            text = r.read()
            if r.status != 200:
                sys.exit("/ingest answered %d: %s" % (r.status, text[:300]))

        bl = list(bodies(kind, n + b, b, random.Random(5)))
        post(bl[0])
        ctl = ["callgrind_control"]
        subprocess.run(ctl + ["-i", "on", str(p.pid)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        for body in bl[1:]:
            post(body)
        subprocess.run(ctl + ["-d", "measured", str(p.pid)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    finally:
        p.terminate()
        p.wait()
    for name in os.listdir(work):
        if name.startswith(kind + ".cg.") and name.endswith(".1"):
            text = open(os.path.join(work, name)).read()
            m = re.search(r"^totals: (\d+)", text, re.M)
            return int(m.group(1)), os.path.join(work, name)
    sys.exit("no callgrind dump for " + kind)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sluice = os.path.abspath(sys.argv[1])
    kinds = sys.argv[2:] or ["attr", "ads", "1h", "30d"]
    for k in kinds:
        if k not in REPOS:
            sys.exit("unknown workload %s (%s)" % (k, " ".join(REPOS)))
    n, b = int(os.environ.get("N", "10000")), int(os.environ.get("B", "100"))
    work = tempfile.mkdtemp(prefix="sluice-callgrind.")
    try:
        for k in kinds:
            total, path = measure(sluice, k, n, b, work)
            print(json.dumps({"workload": k, "records": n, "records_per_request": b,
                              "instructions": total, "per_record": round(total / n)}))
            if os.environ.get("KEEP") == "1":
                print("  profile:", path)
    finally:
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)


main()
