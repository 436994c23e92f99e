"""Helpers for tests/bench/run.sh: request bodies, preloading, CPU accounting, result records
and the summary table. Standard library only. Usage: bench.py COMMAND [ARGS]; see each cmd_*.
"""

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

WS = "bench"
SOURCE = "impressions_event_source"
SERVICE = "ad_ctr_feature_service"
GET_PATH = "/api/v1/feature-service/get-features"


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def ingest_body(user_ids, now):
    recs = [{"record": {"user_id": u, "timestamp": rfc3339(now - 0.001 * i),
                        "clicked": i % 2}} for i, u in enumerate(user_ids)]
    return {"workspace_name": WS, "dry_run": False, "records": {SOURCE: recs}}


def get_body(user_id):
    return {"params": {"workspace_name": WS, "feature_service_name": SERVICE,
                       "join_key_map": {"user_id": user_id},
                       "metadata_options": {"include_names": True, "include_data_types": True,
                                            "include_effective_times": True,
                                            "include_serving_status": True}}}


def dumps(o):
    return json.dumps(o, separators=(",", ":"))


def cmd_port():
    """port: prints a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def cmd_ingest_bodies(out, per_request, lines, prefix):
    """ingest-bodies OUT PER_REQUEST LINES PREFIX: one ingest body per line, every user id
    distinct across the file, timestamps of now (minus a millisecond per record)."""
    per_request, lines, now = int(per_request), int(lines), time.time()
    with open(out, "w") as f:
        for n in range(lines):
            ids = ["%s%07d" % (prefix, n * per_request + i) for i in range(per_request)]
            f.write(dumps(ingest_body(ids, now)) + "\n")


def cmd_get_bodies(out, keys, prefix):
    """get-bodies OUT KEYS PREFIX: one get-features body per line, for the preloaded users."""
    with open(out, "w") as f:
        for n in range(int(keys)):
            f.write(dumps(get_body("%s%07d" % (prefix, n))) + "\n")


def post(url, key, path, body):
    req = urllib.request.Request(url + path, data=dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Sluice-key " + key)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cmd_preload(url, keyfile, keys, prefix, response_out):
    """preload URL KEYFILE KEYS PREFIX RESPONSE_OUT: ingests KEYS users (100 per request) and
    writes one real get-features response to RESPONSE_OUT (the static file nginx serves)."""
    with open(keyfile) as f:
        key = f.read().strip()
    keys, now = int(keys), time.time()
    views = ""
    for start in range(0, keys, 100):
        ids = ["%s%07d" % (prefix, n) for n in range(start, min(keys, start + 100))]
        status, text = post(url, key, "/ingest", ingest_body(ids, now))
        if status != 200:
            sys.exit("preload: /ingest answered %d: %s" % (status, text[:300]))
        if not views:
            m = json.loads(text)["ingestMetrics"]["featureViewIngestMetrics"]
            views = ", ".join("%s (online %s, offline %s)" % (v["featureViewName"],
                              v["onlineRecordIngestCount"], v["offlineRecordIngestCount"]) for v in m)
    status, text = post(url, key, GET_PATH, get_body("%s%07d" % (prefix, 0)))
    if status != 200:
        sys.exit("preload: get-features answered %d: %s" % (status, text[:300]))
    statuses = [f.get("status") for f in json.loads(text)["metadata"]["features"]]
    with open(response_out, "wb") as f:
        f.write(text)
    print("- preload: %d users; one ingest of 100 records wrote %s" % (keys, views))
    print("- a get-features response: %d bytes, %d features, statuses %s"
          % (len(text), len(statuses), " ".join(statuses)))


def proc_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12]), int(fields[1])
    except (OSError, IndexError, ValueError):
        return 0, -1


def cpu_ticks(pids):
    """CPU time (clock ticks, user + system) of pids and their children (nginx's workers)."""
    want = {int(p) for p in pids}
    total = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            ticks, ppid = proc_ticks(int(name))
            if int(name) in want or ppid in want:
                total += ticks
    return total


def metrics():
    """Sluice's /metrics counters as a dict (BENCH_URL and BENCH_KEYFILE in the environment)."""
    with open(os.environ["BENCH_KEYFILE"]) as f:
        key = f.read().strip()
    req = urllib.request.Request(os.environ["BENCH_URL"] + "/metrics")
    req.add_header("Authorization", "Sluice-key " + key)
    out = {}
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            for line in r.read().decode().splitlines():
                parts = line.split()
                if len(parts) == 2 and not line.startswith("#"):
                    try:
                        out[parts[0]] = float(parts[1])
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def thread_times(pids):
    """{tid: (ns on a CPU, ns runnable but waiting for a CPU)} for every thread of pids and of
    their children, from /proc/<pid>/task/<tid>/schedstat."""
    want = {int(p) for p in pids}
    procs = set(want)
    for name in os.listdir("/proc"):
        if name.isdigit() and proc_ticks(int(name))[1] in want:
            procs.add(int(name))
    out = {}
    for pid in procs:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    run, wait = f.read().split()[:2]
                out[int(tid)] = (int(run), int(wait))
            except (OSError, ValueError):
                pass
    return out


def machine_busy():
    """Busy CPU time of the whole machine (clock ticks, every CPU), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - (v[4] if len(v) > 4 else 0)  # minus idle and iowait


def parse_tool_output(fmt, text):
    """The result object of one tool run, from its stdout."""
    if fmt in ("loadgen", "leveldb"):
        lines = [l for l in text.splitlines() if l.startswith("{")]
        return [json.loads(l) for l in lines]
    if fmt == "wrk":
        for line in text.splitlines():
            if line.startswith("JSON "):
                return [json.loads(line[5:])]
        raise ValueError("no JSON line in wrk output")
    if fmt == "redis":
        import csv
        rows = list(csv.reader([l for l in text.splitlines() if l.startswith('"')]))
        head, out = rows[0], []
        for row in rows[1:]:
            d = dict(zip(head, row))
            out.append({"tool": "redis-benchmark", "test": d["test"], "rps": float(d["rps"]),
                        "latency_ms": {"mean": float(d["avg_latency_ms"]),
                                       "p50": float(d["p50_latency_ms"]),
                                       "p99": float(d["p99_latency_ms"]),
                                       "max": float(d["max_latency_ms"])}})
        return out
    raise ValueError("unknown format " + fmt)


def cmd_measure(results, raw_dir, phase, system, fmt, server_pids, extra, *cmd):
    """measure RESULTS RAW_DIR PHASE SYSTEM FORMAT SERVER_PIDS EXTRA_JSON -- CMD...: runs CMD
    (a load tool), keeps its output under RAW_DIR, and appends its result(s) to RESULTS (JSON
    lines) with EXTRA_JSON merged in and the CPU shares (% of one core) of the servers
    (SERVER_PIDS, comma-separated, and their children) and of CMD over the run. With
    BENCH_PERF=1 the servers are also sampled with `perf record` and the top symbols kept."""
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    pids = [p for p in server_pids.split(",") if p and p != "-"]
    tag = "%s-%s-%s" % (phase, system, json.loads(extra).get("label", fmt))
    tag = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag)
    perf = None
    if os.environ.get("BENCH_PERF") == "1" and pids:
        perf_data = os.path.join(raw_dir, tag + ".perf")
        perf = subprocess.Popen(["perf", "record", "-q", "-F", "499", "-o", perf_data,
                                 "-p", ",".join(pids)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    opts = json.loads(extra)
    scrape = opts.pop("metrics", False)
    m0 = metrics() if scrape else None
    ticks0, busy0, threads0 = cpu_ticks(pids), machine_busy(), thread_times(pids)
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ticks1, busy1, threads1 = cpu_ticks(pids), machine_busy(), thread_times(pids)
    m1 = metrics() if scrape else None
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(30)
        with open(os.path.join(raw_dir, tag + ".perf.txt"), "w") as f:
            subprocess.run(["perf", "report", "-i", perf_data, "--stdio", "--no-children",
                            "--sort", "dso,symbol", "-g", "none", "--percent-limit", "1"],
                           stdout=f, stderr=subprocess.DEVNULL)
    with open(os.path.join(raw_dir, tag + ".out"), "w") as f:
        f.write("$ " + " ".join(cmd) + "\n" + p.stdout + p.stderr)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        sys.exit("bench: %s failed (exit %d)" % (cmd[0], p.returncode))
    for pid in pids:
        try:
            os.kill(int(pid), 0)
        except OSError:
            sys.exit("bench: the %s server (pid %s) exited during phase %s" % (system, pid, phase))
    # Per thread: share of the phase on a CPU and runnable-but-waiting (other load's toll).
    threads = []
    for tid, (run1, wait1) in threads1.items():
        run0, wait0 = threads0.get(tid, (0, 0))
        threads.append((round(100.0 * (run1 - run0) / 1e9 / wall, 1),
                        round(100.0 * (wait1 - wait0) / 1e9 / wall, 1)))
    threads.sort(reverse=True)
    objs = parse_tool_output(fmt, p.stdout)
    hz = os.sysconf("SC_CLK_TCK")
    client = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    server = (ticks1 - ticks0) / hz
    with open(results, "a") as f:
        for o in objs:
            o.update(opts)
            o["phase"], o["system"] = phase, system
            if m0 and m1:
                groups = m1.get("sluice_commit_groups_total", 0) - m0.get("sluice_commit_groups_total", 0)
                commits = m1.get("sluice_commits_total", 0) - m0.get("sluice_commits_total", 0)
                o["group_commit"] = {"groups_per_s": round(groups / wall, 1),
                                     "requests_per_group": round(commits / groups, 1) if groups else None}
            if pids:
                o["server_cpu_pct"] = round(100.0 * server / wall, 1)
                o["server_wait_pct"] = round(sum(w for _, w in threads), 1)
                o["server_threads"] = [{"cpu_pct": c, "wait_pct": w} for c, w in threads[:4]]
            o["client_cpu_pct"] = round(100.0 * client / wall, 1)
            # Everything else the machine ran meanwhile: the noise this row was measured in.
            o["other_cpu_pct"] = round(max(0.0, 100.0 * ((busy1 - busy0) / hz - server - client) / wall), 1)
            f.write(json.dumps(o) + "\n")
            row = row_of(o)
            print("  %-15s %-8s %-15s %-14s %10s %-9s p50 %s  p99 %s ms  errors %s  CPU server %s"
                  " (+%s waiting, %s µs/unit) client %s other %s"
                  % tuple(row[i] for i in (0, 1, 2, 3, 4, 5, 6, 8, 11, 12, 13, 14, 15, 16)),
                  flush=True)


def fmt_ms(v):
    return "" if v is None else ("%.3f" % v if v < 10 else "%.1f" % v)


def fmt_num(v):
    return "" if v is None else "{:,.0f}".format(v)


def row_of(o):
    lat = o.get("latency_ms", {})
    tool = o.get("tool", "")
    if tool == "leveldb_put":
        thr, unit = o["records_per_s"], "records/s"
        target = "saturation"
        extra = "%d rec/write, sync=%s" % (o["records_per_write"], "yes" if o["sync"] else "no")
        errors = ""
    elif tool == "redis-benchmark":
        thr, unit, target, extra, errors = o["rps"], "req/s", "saturation", o["test"], ""
    else:
        per = o.get("records_per_request", 1)
        thr = o.get("ok_rps", o.get("rps", 0)) * per
        unit = "records/s" if per > 1 else "req/s"
        target = "%s req/s" % fmt_num(o["target_rps"]) if o.get("target_rps") else "saturation"
        extra = "%d conns" % o.get("connections", 0)
        if o.get("threads"):
            extra = "%d threads, %s" % (o["threads"], extra)
        if per > 1:
            extra += ", %d rec/req" % per
        errs = dict(o.get("status", {}))
        errs.pop("200", None)
        errors = ", ".join("%s×%s" % (k, v) for k, v in sorted(errs.items()))
        for k, v in sorted(o.get("errors", {}).items()):
            if v:
                errors += (", " if errors else "") + "%s×%d" % (k, v)
        if o.get("unsent"):
            errors += (", " if errors else "") + "unsent×%d" % o["unsent"]
        if o.get("target_rps"):
            extra += ", achieved %s req/s" % fmt_num(o.get("rps", 0))
        gc = o.get("group_commit")
        if gc and gc.get("requests_per_group"):
            extra += ", %s fsync groups/s of %s req" % (fmt_num(gc["groups_per_s"]),
                                                        gc["requests_per_group"])
    return [o["phase"], o["system"], tool, target, fmt_num(thr), unit, fmt_ms(lat.get("p50")),
            fmt_ms(lat.get("p90")), fmt_ms(lat.get("p99")), fmt_ms(lat.get("p999")),
            fmt_ms(lat.get("max")), errors or "0",
            "" if o.get("server_cpu_pct") is None else "%.0f%%" % o["server_cpu_pct"],
            "" if o.get("server_wait_pct") is None else "%.0f%%" % o["server_wait_pct"],
            "" if cpu_per(o) is None else "%.1f" % cpu_per(o),
            "" if o.get("client_cpu_pct") is None else "%.0f%%" % o["client_cpu_pct"],
            "" if o.get("other_cpu_pct") is None else "%.0f%%" % o["other_cpu_pct"],
            extra + busiest(o)]


def cpu_per(o):
    """Server CPU time per unit of throughput (µs per request or per record): the cost of one
    request, which other load on the machine disturbs far less than latency or throughput."""
    t = thr(o)
    if o.get("server_cpu_pct") is None or not t:
        return None
    return o["server_cpu_pct"] / 100.0 * 1e6 / t


def busiest(o):
    """The two busiest server threads: % of the phase on a CPU + % runnable but waiting."""
    t = (o.get("server_threads") or [])[:2]
    if not t or t[0]["cpu_pct"] + t[0]["wait_pct"] < 1:
        return ""
    return "; busiest server threads (on CPU + waiting): " + ", ".join(
        "%.0f%% + %.0f%%" % (x["cpu_pct"], x["wait_pct"]) for x in t)


def find(results, phase, system, **kw):
    for o in results:
        if o["phase"] == phase and o["system"] == system and all(o.get(k) == v for k, v in kw.items()):
            return o
    return None


def thr(o):
    if o is None:
        return None
    if o.get("tool") == "leveldb_put":
        return o["records_per_s"]
    if o.get("tool") == "redis-benchmark":
        return o["rps"]
    return o.get("ok_rps", o.get("rps", 0)) * o.get("records_per_request", 1)


def p99(o):
    return None if o is None else o.get("latency_ms", {}).get("p99")


def cmd_table(results_file, out, header_file):
    """table RESULTS OUT HEADER: prints the markdown summary and writes it to OUT."""
    with open(results_file) as f:
        results = [json.loads(l) for l in f if l.strip()]
    with open(header_file) as f:
        lines = [f.read().rstrip(), ""]
    cols = ["phase", "system", "tool", "target", "throughput", "unit", "p50 ms", "p90 ms",
            "p99 ms", "p99.9 ms", "max ms", "errors", "server CPU", "server wait",
            "server CPU µs/unit", "client CPU", "other CPU", "notes"]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for o in results:
        lines.append("| " + " | ".join(str(c) for c in row_of(o)) + " |")

    ratios = []

    def ratio(name, a, b, fmt="%.2f", goal=None):
        if a is None or b is None or not b:
            return
        ratios.append((name, fmt % (a / b), goal))

    batched = [o for o in results if o["phase"] == "ingest-batched" and o["system"] == "sluice"]
    s_batch = max(batched, key=thr) if batched else None
    l_batch = find(results, "ingest-batched", "leveldb", mode="batch")
    s_single = find(results, "ingest-single", "sluice")
    l_single = find(results, "ingest-single", "leveldb", mode="single")
    s_wrk = find(results, "get-features", "sluice", tool="wrk")
    n_wrk = find(results, "get-features", "nginx", tool="wrk")
    r_get = find(results, "get-features", "redis")
    if s_batch:
        ratio("ingest batched (%d conns): Sluice records/s ÷ LevelDB synced batch records/s"
              % s_batch.get("connections", 0), thr(s_batch), thr(l_batch))
    if s_single and l_single:
        ratio("ingest single: Sluice request p50 ÷ one synced LevelDB put p50 (the flush)",
              s_single["latency_ms"]["p50"], l_single["latency_ms"]["p50"])
    ratio("get-features (wrk, saturation): Sluice req/s ÷ nginx req/s", thr(s_wrk), thr(n_wrk),
          goal="≥ 0.50")
    ratio("get-features (wrk, saturation): Sluice p99 ÷ nginx p99", p99(s_wrk), p99(n_wrk))
    ratio("get-features (saturation): Sluice req/s ÷ Redis GET req/s", thr(s_wrk), thr(r_get))
    ratio("get-features (wrk, saturation): Sluice CPU per request ÷ nginx CPU per request",
          cpu_per(s_wrk) if s_wrk else None, cpu_per(n_wrk) if n_wrk else None)
    for o in results:
        if o["phase"] == "get-features" and o.get("tool") == "loadgen" and o.get("target_rps"):
            n = find(results, "get-features", "nginx", tool="loadgen", target_rps=o["target_rps"])
            if o["system"] == "sluice" and n:
                ratio("get-features at %s req/s: Sluice p99 ÷ nginx p99" % fmt_num(o["target_rps"]),
                      p99(o), p99(n))
                ratio("get-features at %s req/s: Sluice CPU per request ÷ nginx CPU per request"
                      % fmt_num(o["target_rps"]), cpu_per(o), cpu_per(n))
    if ratios:
        lines += ["", "| ratio | value | goal |", "|---|---|---|"]
        lines += ["| %s | %s | %s |" % (n, v, g or "") for n, v, g in ratios]

    goals = []
    if s_batch:
        goals.append(("ingest batched ≥ 200,000 records/s", "%s records/s (%d conns)"
                      % (fmt_num(thr(s_batch)), s_batch.get("connections", 0)),
                      thr(s_batch) >= 200000))
    if s_single and s_single.get("target_rps"):
        ok = p99(s_single) is not None and p99(s_single) <= 2 and s_single["rps"] >= 0.98 * s_single["target_rps"]
        goals.append(("single-record ingest p99 ≤ 2 ms at %s req/s" % fmt_num(s_single["target_rps"]),
                      "p99 %s ms at %s req/s" % (fmt_ms(p99(s_single)), fmt_num(s_single["rps"])), ok))
    if s_wrk and n_wrk:
        goals.append(("get-features ≥ 50% of nginx (saturation)",
                      "%.0f%%" % (100 * thr(s_wrk) / thr(n_wrk)), thr(s_wrk) >= 0.5 * thr(n_wrk)))
    g20 = find(results, "get-features", "sluice", tool="loadgen", target_rps=20000)
    if g20:
        ok = p99(g20) <= 1 and g20["rps"] >= 0.98 * 20000
        goals.append(("get-features p99 ≤ 1 ms at 20,000 req/s",
                      "p99 %s ms at %s req/s" % (fmt_ms(p99(g20)), fmt_num(g20["rps"])), ok))
    if goals:
        lines += ["", "| goal (issues 3, 5) | measured | met |", "|---|---|---|"]
        lines += ["| %s | %s | %s |" % (g, m, "yes" if ok else "no") for g, m, ok in goals]
    if l_single:
        lines += ["", "Disk floor: one synced LevelDB put (one fdatasync) takes p50 %s ms, p99 %s ms"
                  " here; a durably acknowledged request cannot be faster." %
                  (fmt_ms(l_single["latency_ms"]["p50"]), fmt_ms(p99(l_single)))]
    other = [o["other_cpu_pct"] for o in results if o.get("other_cpu_pct") is not None]
    if other and sum(other) / len(other) > 25:
        lines += ["", "Noise: other processes used %.0f%% of a core on average during the phases"
                  " (column `other CPU`); tail latencies include their scheduling delays." %
                  (sum(other) / len(other))]

    text = "\n".join(lines) + "\n"
    with open(out, "w") as f:
        f.write(text)
    sys.stdout.write(text)


COMMANDS = {
    "port": cmd_port,
    "ingest-bodies": cmd_ingest_bodies,
    "get-bodies": cmd_get_bodies,
    "preload": cmd_preload,
    "measure": cmd_measure,
    "table": cmd_table,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit("usage: bench.py " + "|".join(COMMANDS) + " ARGS")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
