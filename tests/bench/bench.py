"""Helpers for tests/bench/run.sh: request bodies, preloading, CPU accounting, result records
and the summary table. Standard library only. Usage: bench.py COMMAND [ARGS]; see each cmd_*.
"""

import calendar
import json
import os
import re
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


def ingest_body(user_ids, now, ws=WS):
    recs = [{"record": {"user_id": u, "timestamp": rfc3339(now - 0.001 * i),
                        "clicked": i % 2}} for i, u in enumerate(user_ids)]
    return {"workspace_name": ws, "dry_run": False, "records": {SOURCE: recs}}


# The serving workload (tests/bench/repos/serve): 2 views, 10 features, 6 of them tiled
# aggregations; each preloaded user has events from 20 minutes to 25 days old, so that every
# window has data to merge.
SERVE_WS = "serve"
SERVE_SOURCE = "events"
SERVE_SERVICE = "serve_service"
SERVE_AGES = [20 * 60, 5 * 3600, 2 * 86400, 10 * 86400, 25 * 86400]


def serve_ingest_body(user_ids, now):
    recs = []
    for i, u in enumerate(user_ids):
        for k, age in enumerate(SERVE_AGES):
            recs.append({"record": {"user_id": u, "timestamp": rfc3339(now - age - 0.001 * i),
                                    "clicked": (i + k) % 2, "amount": round(1 + (i * 7 + k) % 50 * 0.5, 2),
                                    "device": ("ios", "android", "web")[(i + k) % 3],
                                    "category": "c%d" % ((i + 3 * k) % 12)}})
    return {"workspace_name": SERVE_WS, "dry_run": False, "records": {SERVE_SOURCE: recs}}


def get_body(user_id):
    return {"params": {"workspace_name": SERVE_WS, "feature_service_name": SERVE_SERVICE,
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


def cmd_ingest_bodies(out, per_request, lines, prefix, ws=WS):
    """ingest-bodies OUT PER_REQUEST LINES PREFIX [WORKSPACE]: one ingest body per line, every
    user id distinct across the file, timestamps of now (minus a millisecond per record)."""
    per_request, lines, now = int(per_request), int(lines), time.time()
    with open(out, "w") as f:
        for n in range(lines):
            ids = ["%s%07d" % (prefix, n * per_request + i) for i in range(per_request)]
            f.write(dumps(ingest_body(ids, now, ws)) + "\n")


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
        status, text = post(url, key, "/ingest", serve_ingest_body(ids, now))
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
    print("- preload: %d users, %d events each (%s old); one ingest of %d records wrote %s"
          % (keys, len(SERVE_AGES), ", ".join(fmt_age(a) for a in SERVE_AGES),
             100 * len(SERVE_AGES), views))
    print("- a get-features response: %d bytes, %d features, statuses %s"
          % (len(text), len(statuses), " ".join(statuses)))


def fmt_age(s):
    return "%dm" % (s // 60) if s < 3600 else "%dh" % (s // 3600) if s < 86400 else "%dd" % (s // 86400)


def get_json(path):
    """GET path from the server (BENCH_URL and BENCH_KEYFILE in the environment): the JSON body."""
    with open(os.environ["BENCH_KEYFILE"]) as f:
        key = f.read().strip()
    req = urllib.request.Request(os.environ["BENCH_URL"] + path)
    req.add_header("Authorization", "Sluice-key " + key)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def seconds_between(a, b):
    """b - a in seconds for two RFC 3339 UTC times (nanosecond fractions), or None."""
    def parse(t):
        base, _, frac = t.rstrip("Z").partition(".")
        return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))
    try:
        return parse(b) - parse(a)
    except (AttributeError, ValueError):
        return None


def cmd_wait_idle(pid, max_s="60"):
    """wait-idle PID [MAX_S]: waits until process PID (a server, all its threads) used less than
    5% of a core over half a second — e.g. LevelDB compactions after a load are over — or MAX_S
    seconds passed. Prints how long it waited."""
    hz = os.sysconf("SC_CLK_TCK")
    t0 = time.monotonic()
    while time.monotonic() - t0 < float(max_s):
        a = cpu_ticks([pid])
        time.sleep(0.5)
        if (cpu_ticks([pid]) - a) / hz < 0.025:
            break
    print("  (server idle after %.1f s)" % (time.monotonic() - t0))


def cmd_apply_wait(sluice, ws, repo, timeout="1800"):
    """apply-wait SLUICE WS REPO [TIMEOUT_S]: applies REPO to the live workspace WS with the
    CLI ($SLUICE_URL, $SLUICE_API_KEY) and waits for the backfill jobs it started to end,
    polling each job's record every 50 ms. One JSON line per job: its rows and `seconds` from
    the start of apply to the first poll that saw the job ended (`job_seconds`: the job's own
    started..ended). Exits 1 unless every job succeeded."""
    t0 = time.monotonic()
    p = subprocess.run([sluice, "apply", "--workspace", ws, repo], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("apply-wait: sluice apply failed:\n" + p.stdout + p.stderr)
    ids = re.findall(r"Started backfill job ([0-9a-f]+)", p.stdout)
    if not ids:
        sys.exit("apply-wait: apply started no backfill job:\n" + p.stdout)
    ended = {}
    while len(ended) < len(ids):
        for jid in ids:
            if jid not in ended:
                job = get_json("/v1/jobs/" + jid)
                if job["state"] not in ("queued", "running"):
                    ended[jid] = (time.monotonic() - t0, job)
        if time.monotonic() - t0 > float(timeout):
            sys.exit("apply-wait: jobs still running after %s s: %s" % (timeout, ", ".join(
                j for j in ids if j not in ended)))
        if len(ended) < len(ids):
            time.sleep(0.05)
    ok = True
    for jid in ids:
        secs, job = ended[jid]
        ok &= job["state"] == "succeeded"
        print(json.dumps({"tool": "sluice", "step": "backfill job", "job": jid, "view": job["featureView"],
                          "state": job["state"], "error": job.get("error"),
                          "rows": int(job["rowsRead"]), "rows_written": int(job["rowsWritten"]),
                          "rows_rejected": int(job["rowsRejected"]), "seconds": round(secs, 3),
                          "job_seconds": seconds_between(job.get("started"), job.get("ended"))}))
    if not ok:
        sys.exit(1)


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
    if fmt in ("loadgen", "leveldb", "json"):
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
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-o", perf_data,
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
    if fmt == "json" and not objs:
        objs = [{"tool": os.path.basename(cmd[0])}]
    hz = os.sysconf("SC_CLK_TCK")
    client = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    server = (ticks1 - ticks0) / hz
    with open(results, "a") as f:
        for o in objs:
            o.update(opts)
            o["phase"], o["system"] = phase, system
            o["wall_s"] = round(wall, 3)
            o["client_cpu_s"] = round(client, 3)
            if m0 and m1:
                groups = m1.get("sluice_commit_groups_total", 0) - m0.get("sluice_commit_groups_total", 0)
                commits = m1.get("sluice_commits_total", 0) - m0.get("sluice_commits_total", 0)
                o["group_commit"] = {"groups_per_s": round(groups / wall, 1),
                                     "requests_per_group": round(commits / groups, 1) if groups else None}
            if pids:
                o["server_cpu_s"] = round(server, 3)
                o["server_cpu_pct"] = round(100.0 * server / wall, 1)
                o["server_wait_pct"] = round(sum(w for _, w in threads), 1)
                o["server_threads"] = [{"cpu_pct": c, "wait_pct": w} for c, w in threads[:4]]
            o["client_cpu_pct"] = round(100.0 * client / wall, 1)
            # Everything else the machine ran meanwhile: the noise this row was measured in.
            o["other_cpu_pct"] = round(max(0.0, 100.0 * ((busy1 - busy0) / hz - server - client) / wall), 1)
            f.write(json.dumps(o) + "\n")
            if phase in TIMED_PHASES:
                print("  %-9s %-8s %-24s %-8s %s s (process %s s), CPU %s%s s, other %s%%"
                      % (phase, system, o.get("step", ""), o.get("format", ""),
                         fmt_s(o.get("seconds", o["wall_s"])), fmt_s(o["wall_s"]),
                         "" if o.get("server_cpu_s") is None else "server %s s + " % fmt_s(o["server_cpu_s"]),
                         fmt_s(o["client_cpu_s"]), fmt_num(o["other_cpu_pct"])), flush=True)
                continue
            row = row_of(o)
            print("  %-15s %-8s %-15s %-14s %10s %-9s p50 %s  p99 %s ms  errors %s  CPU server %s"
                  " (+%s waiting, %s µs/unit) client %s other %s"
                  % tuple(row[i] for i in (0, 1, 2, 3, 4, 5, 6, 8, 11, 12, 13, 14, 15, 16)),
                  flush=True)


# Phases whose rows are one timed pass over a data set (their own tables in the summary).
TIMED_PHASES = ("pit", "backfill")


def fmt_s(v):
    return "" if v is None else ("%.3f" % v if v < 10 else "%.1f" % v)


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
    elif "rate" in o:
        # a tool that reports its own rate over one pass of its input (agg.py load)
        thr, unit, target, errors = o["rate"], o["unit"], "one pass", ""
        extra = "%s in %.1f s, %d conns, %d rec/req" % (fmt_num(o["records"]), o["seconds"],
                                                       o["connections"], o["records_per_request"])
        if o.get("note"):
            extra += ", " + o["note"]
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
        if o.get("workload"):
            extra += ", " + o["workload"]
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
        if o.get("note"):
            extra += ", " + o["note"]
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
    if "rate" in o and o.get("server_cpu_s") is not None and o.get("records"):
        return o["server_cpu_s"] * 1e6 / o["records"]  # one pass: the whole server CPU over it
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
    if "rate" in o:
        return o["rate"]
    if o.get("tool") == "leveldb_put":
        return o["records_per_s"]
    if o.get("tool") == "redis-benchmark":
        return o["rps"]
    return o.get("ok_rps", o.get("rps", 0)) * o.get("records_per_request", 1)


def p99(o):
    return None if o is None else o.get("latency_ms", {}).get("p99")


def agg_ratios(results, ratio):
    """The agg phase's ratios (30-day window ÷ 1-hour window), added with ratio(); returns its
    goals (issue 4: 30 d within 1.5× of 1 h)."""
    goals = []
    w1 = find(results, "agg-get-features", "sluice-1h", tool="wrk")
    w30 = find(results, "agg-get-features", "sluice-30d", tool="wrk")
    ratio("agg get-features (wrk, saturation): 1h req/s ÷ 30d req/s", thr(w1), thr(w30), goal="≤ 1.5")
    ratio("agg get-features (wrk, saturation): 30d p99 ÷ 1h p99", p99(w30), p99(w1))
    if w1 and w30 and cpu_per(w1) and cpu_per(w30):
        r = cpu_per(w30) / cpu_per(w1)
        ratio("agg get-features (wrk, saturation): 30d CPU per request ÷ 1h CPU per request",
              cpu_per(w30), cpu_per(w1), goal="≤ 1.5")
        goals.append(("30d window within 1.5× of 1h: server CPU per get-features (4)",
                      "%.2f× (%.0f ÷ %.0f µs)" % (r, cpu_per(w30), cpu_per(w1)), r <= 1.5))
    if w1 and w30 and thr(w30):
        r = thr(w1) / thr(w30)
        goals.append(("30d window within 1.5× of 1h: get-features req/s at saturation (4)",
                      "%.2f× (%s ÷ %s req/s)" % (r, fmt_num(thr(w1)), fmt_num(thr(w30))), r <= 1.5))
    for o in results:
        if o["phase"] == "agg-get-features" and o["system"] == "sluice-1h" and o.get("target_rps"):
            o30 = find(results, "agg-get-features", "sluice-30d", tool="loadgen", target_rps=o["target_rps"])
            if not o30:
                continue
            rate = fmt_num(o["target_rps"])
            ratio("agg get-features at %s req/s: 30d p50 ÷ 1h p50" % rate,
                  o30["latency_ms"]["p50"], o["latency_ms"]["p50"], goal="≤ 1.5")
            ratio("agg get-features at %s req/s: 30d p99 ÷ 1h p99" % rate, p99(o30), p99(o), goal="≤ 1.5")
            ratio("agg get-features at %s req/s: 30d CPU per request ÷ 1h" % rate, cpu_per(o30), cpu_per(o))
            p50s = (o30["latency_ms"]["p50"], o["latency_ms"]["p50"])
            if p99(o) and p50s[1]:
                r50, r99 = p50s[0] / p50s[1], p99(o30) / p99(o)
                goals.append(("30d window within 1.5× of 1h: p50 and p99 at %s req/s (4)" % rate,
                              "p50 %.2f× (%s ÷ %s ms), p99 %.2f× (%s ÷ %s ms)"
                              % (r50, fmt_ms(p50s[0]), fmt_ms(p50s[1]), r99, fmt_ms(p99(o30)),
                                 fmt_ms(p99(o))), r50 <= 1.5 and r99 <= 1.5))
    i1 = find(results, "agg-ingest", "sluice-1h")
    i30 = find(results, "agg-ingest", "sluice-30d")
    ratio("agg ingest (3 aggregations per view): 1h records/s ÷ 30d records/s", thr(i1), thr(i30))
    ratio("agg ingest: 30d CPU per record ÷ 1h CPU per record",
          cpu_per(i30) if i30 else None, cpu_per(i1) if i1 else None)
    return goals


def timed_rows(rows, cols, cells):
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(c) for c in cells(o)) + " |" for o in rows]
    return out


def cpu_s(o):
    """CPU seconds of a timed row: the server's (if measured) plus the tool's; for a query the
    tool timed itself (DuckDB's scans), the CPU of that query alone."""
    if o.get("query_cpu_s") is not None:
        return o["query_cpu_s"]
    return (o.get("server_cpu_s") or 0) + (o.get("client_cpu_s") or 0)


def issue_of(goal):
    """The issue a goal row comes from: its name ends with the number, e.g. "(4)"."""
    m = re.search(r"\((\d+)\)$", goal[0])
    return int(m.group(1)) if m else 0


NAMES = {"duckdb": "DuckDB", "pandas": "pandas", "sluice": "Sluice"}


def timed_tables(timed, goals):
    """The pit and backfill sections of the summary: one table each, their ratios and checks;
    appends their goals to goals."""
    lines = []
    pit = [o for o in timed if o["phase"] == "pit" and o.get("step") != "agree"]
    if pit:
        p0 = pit[0]
        lines += ["", "### pit (issue 6): a training set of %s events over %s feature rows of %s users"
                  % (fmt_num(p0.get("events")), fmt_num(p0.get("rows_total")), fmt_num(p0.get("users"))),
                  "", "`seconds`: the whole command, process start to output file written (Sluice's"
                  " backfill: apply to job succeeded); `in-process`: the tool's own timer; CPU ="
                  " server + tool.", ""]

        def cells(o):
            n = o.get("rows") if o.get("step") == "backfill job" else o.get("events")
            secs = o["seconds"] if o.get("step") == "backfill job" else o["wall_s"]
            unit = "rows/s" if o.get("step") == "backfill job" else "events/s"
            inproc = "" if o.get("step") == "backfill job" or o.get("seconds") is None else fmt_s(o["seconds"])
            notes = o.get("what", "")
            if o.get("threads"):
                notes += ", %d threads" % o["threads"]
            if o.get("version"):
                notes += ", pandas %s" % o["version"]
            return [o["system"], o.get("step", ""), fmt_s(secs), inproc,
                    "%s %s" % (fmt_num(n / secs) if n and secs else "", unit), fmt_s(cpu_s(o)),
                    "%.0f%%" % o["other_cpu_pct"], notes]
        lines += timed_rows(pit, ["system", "step", "seconds", "in-process s", "rate", "CPU s",
                                  "other CPU", "notes"], cells)
        load = next((o for o in pit if o["system"] == "sluice" and o.get("step") == "backfill job"), None)
        sl = next((o for o in pit if o["system"] == "sluice" and o.get("step") != "backfill job"), None)
        rt = next((o for o in pit if o.get("label") == "join-rt"), None)
        others = [o for o in pit if o["system"] in ("duckdb", "pandas")]
        rs = []
        for o in others:
            name = NAMES.get(o["system"], o["system"])
            if sl:
                rs.append(("Sluice get-features-for-events ÷ %s (seconds, store loaded)" % name,
                           sl["wall_s"] / o["wall_s"], "< 1"))
            if sl and load:
                rs.append(("Sluice backfill + get-features-for-events ÷ %s (seconds, from the CSV)"
                           % name, (load["seconds"] + sl["wall_s"]) / o["wall_s"], ""))
            if sl and cpu_s(o):
                rs.append(("Sluice CPU ÷ %s CPU (get-features-for-events)" % name,
                           cpu_s(sl) / cpu_s(o), ""))
        if rs:
            lines += ["", "| ratio | value | goal |", "|---|---|---|"]
            lines += ["| %s | %.2f | %s |" % r for r in rs]
        if sl and rt and sl.get("events"):
            n = sl["events"]
            lines += ["", "Realtime view offline: %.2f µs per event (wall), %.2f µs CPU per event"
                      " (get-features-for-events with `tx_score` minus without)."
                      % ((rt["wall_s"] - sl["wall_s"]) / n * 1e6, (cpu_s(rt) - cpu_s(sl)) / n * 1e6)]
        if sl and others:
            goals.append(("training set faster than DuckDB and pandas end to end (6)",
                          "Sluice %s s, DuckDB %s s, pandas %s s (store loaded)" % tuple(
                              fmt_s(x["wall_s"]) if x else "—" for x in (
                                  sl, next((o for o in others if o["system"] == "duckdb"), None),
                                  next((o for o in others if o["system"] == "pandas"), None))),
                          all(sl["wall_s"] < o["wall_s"] for o in others)))
    chk = next((o for o in timed if o["phase"] == "pit" and o.get("step") == "agree"), None)
    if chk:
        lines += ["", "Outputs %s: %s of %s compared events (%s with a feature value) identical in %s;"
                  " row counts %s." % ("agree" if chk["ok"] else "DIFFER",
                                       fmt_num(chk["rows_compared"] - chk["rows_differing"]),
                                       fmt_num(chk["rows_compared"]), fmt_num(chk["with_a_value"]),
                                       " / ".join(chk.get("systems", [])),
                                       " / ".join(fmt_num(c) for c in chk["row_counts"]))]
        lines += ["- " + d for d in chk.get("first_differences", [])]

    bf = [o for o in timed if o["phase"] == "backfill"]
    if bf:
        lines += ["", "### backfill (issue 7): %s rows of %s ids" % (fmt_num(bf[0].get("rows")),
                                                                   fmt_num(bf[0].get("ids"))),
                  "", "Sluice: apply to job succeeded (the job reads, checks and writes every row online"
                  " and offline); DuckDB: the query alone, in-process.", ""]

        def bcells(o):
            secs = o.get("seconds")
            notes = o.get("what", "")
            if o.get("job_seconds"):
                notes += ", job's own started..ended %.1f s" % o["job_seconds"]
            if o.get("threads"):
                notes += ", %d threads" % o["threads"]
            return [o.get("format", ""), o["system"], o.get("step", ""), fmt_num(o.get("rows")),
                    fmt_s(secs), fmt_num(o["rows"] / secs) if secs and o.get("rows") else "",
                    fmt_s(cpu_s(o)), "%.0f%%" % o["other_cpu_pct"], notes]
        lines += timed_rows(bf, ["file", "system", "step", "rows", "seconds", "rows/s", "CPU s",
                                 "other CPU", "notes"], bcells)
        rs = []
        for fmt in ("csv", "parquet"):
            s = next((o for o in bf if o["format"] == fmt and o["system"] == "sluice"), None)
            d = next((o for o in bf if o["format"] == fmt and o["system"] == "duckdb"
                      and o.get("step") == "all"), None)
            if s and d:
                rs.append(("%s: DuckDB all-columns rows/s ÷ Sluice backfill rows/s" % fmt,
                           (d["rows"] / d["seconds"]) / (s["rows"] / s["seconds"])))
                rs.append(("%s: Sluice backfill CPU per row ÷ DuckDB CPU per row (µs %.1f ÷ %.2f)"
                           % (fmt, 1e6 * cpu_s(s) / s["rows"], 1e6 * cpu_s(d) / d["rows"]),
                           (cpu_s(s) / s["rows"]) / (cpu_s(d) / d["rows"]) if cpu_s(d) else None))
        sc = next((o for o in bf if o["format"] == "csv" and o["system"] == "sluice"), None)
        sp = next((o for o in bf if o["format"] == "parquet" and o["system"] == "sluice"), None)
        if sc and sp:
            rs.append(("Sluice backfill: Parquet rows/s ÷ CSV rows/s", sc["seconds"] / sp["seconds"]))
        rs = [r for r in rs if r[1] is not None]
        if rs:
            lines += ["", "| ratio | value |", "|---|---|"]
            lines += ["| %s | %.2f |" % r for r in rs]
    return lines


def cmd_table(results_file, out, header_file):
    """table RESULTS OUT HEADER: prints the markdown summary and writes it to OUT."""
    with open(results_file) as f:
        results = [json.loads(l) for l in f if l.strip()]
    with open(header_file) as f:
        lines = [f.read().rstrip(), ""]
    cols = ["phase", "system", "tool", "target", "throughput", "unit", "p50 ms", "p90 ms",
            "p99 ms", "p99.9 ms", "max ms", "errors", "server CPU", "server wait",
            "server CPU µs/unit", "client CPU", "other CPU", "notes"]
    timed = [o for o in results if o["phase"] in TIMED_PHASES]
    loads = [o for o in results if o["phase"] not in TIMED_PHASES]
    if loads:
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for o in loads:
            lines.append("| " + " | ".join(str(c) for c in row_of(o)) + " |")

    ratios = []

    def ratio(name, a, b, fmt="%.2f", goal=None):
        if a is None or b is None or not b:
            return
        ratios.append((name, fmt % (a / b), goal))

    # the issue's goal is for an attribute view; the other workloads are reported beside it
    batched = [o for o in results if o["phase"] == "ingest-batched" and o["system"] == "sluice"
               and o.get("workload", "attribute view") == "attribute view"]
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
    goals = agg_ratios(results, ratio)
    if ratios:
        lines += ["", "| ratio | value | goal |", "|---|---|---|"]
        lines += ["| %s | %s | %s |" % (n, v, g or "") for n, v, g in ratios]

    if s_batch:
        goals.append(("ingest batched ≥ 200,000 records/s, attribute view (3)", "%s records/s (%d conns)"
                      % (fmt_num(thr(s_batch)), s_batch.get("connections", 0)),
                      thr(s_batch) >= 200000))
    if s_single and s_single.get("target_rps"):
        ok = p99(s_single) is not None and p99(s_single) <= 2 and s_single["rps"] >= 0.98 * s_single["target_rps"]
        goals.append(("single-record ingest p99 ≤ 2 ms at %s req/s (3)" % fmt_num(s_single["target_rps"]),
                      "p99 %s ms at %s req/s" % (fmt_ms(p99(s_single)), fmt_num(s_single["rps"])), ok))
    if s_wrk and n_wrk:
        goals.append(("get-features ≥ 50% of nginx (saturation) (5)",
                      "%.0f%%" % (100 * thr(s_wrk) / thr(n_wrk)), thr(s_wrk) >= 0.5 * thr(n_wrk)))
    g20 = find(results, "get-features", "sluice", tool="loadgen", target_rps=20000)
    if g20:
        ok = p99(g20) <= 1 and g20["rps"] >= 0.98 * 20000
        goals.append(("get-features p99 ≤ 1 ms at 20,000 req/s (5)",
                      "p99 %s ms at %s req/s" % (fmt_ms(p99(g20)), fmt_num(g20["rps"])), ok))
    lines += timed_tables(timed, goals)
    goals.sort(key=issue_of)
    if goals:
        lines += ["", "| goal (issue) | measured | met |", "|---|---|---|"]
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
    "apply-wait": cmd_apply_wait,
    "wait-idle": cmd_wait_idle,
    "table": cmd_table,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit("usage: bench.py " + "|".join(COMMANDS) + " ARGS")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
