"""Data lifecycle: deleting a workspace or removing a view deletes its online keys and offline
files (a resumable job) and gives the disk space back; a re-created workspace or view starts
empty; the data dir's format version is upgraded or refused."""

import json
import os
import shutil
import subprocess
import tempfile
import threading

import harness
from harness import (iso, BIN, SRCDIR, Server, expect, expect_eq, run, wait_for)

REPO = os.path.join(SRCDIR, "tests", "data", "repos", "parity")
T0 = 1735732800  # 2025-01-01T12:00:00Z
USERS = 1500
srv = None


def setup_module():
    global srv
    srv = Server(args=["--fake-now", iso(T0), "--delete-chunk-keys", "4"]).start()


def teardown_module():
    srv.cleanup()


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def make_ws(ws, repo=REPO):
    rc, out, err = srv.cli("workspace", "create", ws, "--live")
    expect_eq(rc, 0, err)
    rc, out, err = srv.cli("apply", "--yes", "--workspace", ws, repo)
    expect_eq(rc, 0, out + err)


def fill(ws, users=USERS):
    """Two events per user for every view of the parity repository."""
    recs = []
    for i in range(users):
        for k in range(2):
            recs.append({"record": {"user_id": "u%d" % i, "ts": iso(T0 - 600 + 300 * k),
                                    "amount": float(i + k), "qty": k + 1, "merchant": "m%d" % (i % 7)}})
    for i in range(0, len(recs), 1000):
        st, b = srv.ingest({"tx": recs[i:i + 1000]}, ws=ws)
        expect_eq(st, 200, b)


def online(ws, user="u1"):
    st, b = srv.get_features({"user_id": user}, ws=ws, service="svc")
    expect_eq(st, 200, b)
    return {m["name"]: v for m, v in zip(b["metadata"]["features"], b["result"]["features"])}


def offline(ws, user="u1"):
    q = "workspace_name=%s&feature_service_name=svc&format=jsonl&input_format=jsonl&timestamp_key=timestamp" % ws
    body = (json.dumps({"user_id": user, "timestamp": iso(T0)}) + "\n").encode()
    st, b = srv.request("POST", "/api/v1/feature-service/get-features-for-events?" + q, raw=body)
    expect_eq(st, 200, b)
    return json.loads(b.splitlines()[0])


def jobs(ws, kind="delete"):
    st, b = srv.request("GET", "/v1/jobs?workspace=" + ws)
    expect_eq(st, 200, b)
    return [j for j in b["jobs"] if j["kind"] == kind]


def job(jid):
    st, b = srv.request("GET", "/v1/jobs/" + jid)
    expect_eq(st, 200, b)
    return b


def wait_jobs_done(ids, timeout=120):
    def done():
        js = [job(i) for i in ids]
        return js if all(j["state"] in ("succeeded", "failed", "cancelled") for j in js) else None
    js = wait_for(done, timeout, "the delete jobs to finish")
    for j in js:
        expect_eq(j["state"], "succeeded", j)
    return js


def expect_empty(ws):
    f = online(ws)
    expect_eq(f["last_tx.amount"], None, f)
    expect_eq(f["tiled.life"], "0", f)
    expect_eq(f["cont.life"], "0", f)
    row = offline(ws)
    expect_eq(row["last_tx__amount"], None, row)
    expect_eq(row["tiled__life"], "0", row)


def test_delete_workspace_deletes_its_data_and_a_recreated_one_starts_empty():
    make_ws("gone")
    fill("gone")
    f = online("gone")
    expect_eq(f["last_tx.amount"], 2.0, f)
    expect_eq(f["tiled.life"], "2", f)
    expect_eq(offline("gone")["tiled__life"], "2")
    off_dir = os.path.join(srv.data_dir, "offline", "gone")
    off_before, on_before = du(off_dir), du(os.path.join(srv.data_dir, "online"))
    expect(off_before > 100000, off_before)

    rc, out, err = srv.cli("workspace", "delete", "gone")
    expect_eq(rc, 0, err)
    st, b = srv.request("GET", "/v1/workspaces")
    expect("gone" not in [w["name"] for w in b["workspaces"]], b)
    ids = [j["id"] for j in jobs("gone")]
    expect_eq(len(ids), 3, ids)  # one per stored view
    # re-created under the same name and re-applied, it reads nothing of the old one, whether
    # or not the deletion has finished
    make_ws("gone")
    expect_empty("gone")
    done = wait_jobs_done(ids)
    expect(sum(int(j["keysDeleted"]) for j in done) >= USERS * 3, done)
    rc, out, err = srv.cli("jobs", "show", done[0]["id"], "--follow")
    expect_eq((rc, out), (0, "succeeded: %s online keys, %s offline bytes deleted\n"
                          % (done[0]["keysDeleted"], done[0]["offlineBytesDeleted"])), err)
    expect(sum(int(j["offlineBytesDeleted"]) for j in done) >= off_before * 9 // 10, done)
    expect_empty("gone")
    off_after, on_after = du(off_dir), du(os.path.join(srv.data_dir, "online"))
    print("workspace delete: offline %d -> %d bytes, online %d -> %d bytes"
          % (off_before, off_after, on_before, on_after))
    expect(off_after < off_before // 20, (off_before, off_after))
    expect(on_after < on_before, (on_before, on_after))
    # the re-created workspace works
    fill("gone", users=3)
    expect_eq(online("gone")["tiled.life"], "2")


def without_view(name):
    d = tempfile.mkdtemp(prefix="sluice-repo-")
    src = open(os.path.join(REPO, "parity.lua")).read()
    start = src.index("local %s = StreamFeatureView" % name)
    end = src.index("\n}\n", start) + 3
    src = src[:start] + src[end:]
    src = src.replace("features = { last_tx, tiled, cont }",
                      "features = { %s }" % ", ".join(v for v in ("last_tx", "tiled", "cont") if v != name))
    with open(os.path.join(d, "parity.lua"), "w") as f:
        f.write(src)
    return d


def test_removing_a_view_deletes_its_data_and_re_adding_starts_empty():
    make_ws("rm")
    fill("rm", users=50)
    expect_eq(online("rm")["cont.life"], "2")
    repo = without_view("cont")
    try:
        rc, out, err = srv.cli("apply", "--yes", "--workspace", "rm", repo)
        expect_eq(rc, 0, out + err)
    finally:
        shutil.rmtree(repo)
    ids = [j["id"] for j in jobs("rm") if j["featureView"] == "cont"]
    expect_eq(len(ids), 1, jobs("rm"))
    rc, out, err = srv.cli("apply", "--yes", "--workspace", "rm", REPO)
    expect_eq(rc, 0, out + err)
    f = online("rm")
    expect_eq(f["cont.life"], "0", f)        # re-added: empty
    expect_eq(f["tiled.life"], "2", f)       # untouched views keep their data
    expect_eq(offline("rm")["cont__life"], "0")
    done = wait_jobs_done(ids)
    expect(int(done[0]["keysDeleted"]) >= 50, done)
    left = [d for d in os.listdir(os.path.join(srv.data_dir, "offline", "rm")) if d.startswith("cont@")]
    expect_eq(left, [], left)


def test_delete_job_resumes_after_kill_9():
    # the same records in two workspaces: one deleted without a crash, one with
    make_ws("calm")
    make_ws("crash")
    fill("calm", users=400)
    fill("crash", users=400)
    rc, out, err = srv.cli("workspace", "delete", "calm")
    expect_eq(rc, 0, err)
    calm = wait_jobs_done([j["id"] for j in jobs("calm")])
    rc, out, err = srv.cli("workspace", "delete", "crash")
    expect_eq(rc, 0, err)
    ids = [j["id"] for j in jobs("crash")]
    wait_for(lambda: any(int(job(i)["keysDeleted"]) >= 40 and job(i)["state"] == "running" for i in ids),
             60, "a delete job to be under way")
    srv.kill9()
    srv.start()
    crash = wait_jobs_done(ids)
    expect("resumes from its checkpoint" in srv.log_text(), srv.log_text())
    # the deletes and the checkpoint commit together: nothing is counted twice or missed
    expect_eq(sorted(int(j["keysDeleted"]) for j in crash), sorted(int(j["keysDeleted"]) for j in calm))
    expect(not os.path.exists(os.path.join(srv.data_dir, "offline", "crash")))
    make_ws("crash")
    expect_empty("crash")


def edited_repo(edit):
    d = tempfile.mkdtemp(prefix="sluice-repo-")
    with open(os.path.join(d, "parity.lua"), "w") as f:
        f.write(edit(open(os.path.join(REPO, "parity.lua")).read()))
    return d


def view_ids(ws):
    st, b = srv.ingest({"tx": [{"record": {"user_id": "probe", "ts": iso(T0 - 1), "amount": 1.0,
                                           "qty": 1, "merchant": "p"}}]}, ws=ws, dry_run=True)
    expect_eq(st, 200, b)
    return {m["featureViewName"]: m["featureViewId"] for m in b["ingestMetrics"]["featureViewIngestMetrics"]}


def test_metadata_only_changes_keep_ids_and_data_without_confirmation():
    make_ws("meta")
    fill("meta", users=20)
    ids = view_ids("meta")
    repo = edited_repo(lambda s: s.replace('timestamp_field = "ts", ttl = "1h",',
                                           'timestamp_field = "ts", ttl = "1h", description = "latest tx",'
                                           ' tags = { team = "risk" }, owner = "ana",', 1))
    try:
        rc, out, err = srv.cli("plan", "--workspace", "meta", repo)
        expect_eq(rc, 0, err)
        expect('      description: null -> "latest tx"' in out, out)
        expect('      tags.team: (none) -> "risk"' in out, out)
        expect("history of feature_view last_tx is kept" in out, out)
        expect("!" not in out, out)
        rc, out, err = srv.cli("apply", "--workspace", "meta", repo, input="")
        expect_eq(rc, 0, out + err)
    finally:
        shutil.rmtree(repo)
    expect_eq(view_ids("meta"), ids)
    expect_eq(online("meta")["last_tx.amount"], 2.0)
    expect_eq(jobs("meta"), [])


CONT_HEAD = '''  name = "cont", source = tx, entities = { user }, online = true, offline = true,
  timestamp_field = "ts",'''
CONT_XFORM = CONT_HEAD + '''
  transformation = function(r)
    r.qty = r.qty * 2
    return r
  end,'''


def test_plan_shows_old_and_new_values_and_what_a_redefinition_deletes():
    make_ws("cost")
    fill("cost", users=30)
    ids = view_ids("cost")
    repo = edited_repo(lambda s: s.replace('window = "1h", name = "sum1h"', 'window = "2h", name = "sum1h"')
                       .replace(CONT_HEAD, CONT_XFORM))
    try:
        rc, out, err = srv.cli("plan", "--workspace", "cost", repo)
        expect_eq(rc, 0, err)
        expect('      features[sum1h].window: "1h" -> "2h"' in out, out)
        expect("      transformation:\n      + function(r)\n      +     r.qty = r.qty * 2\n" in out, out)
        lost = {}
        for line in out.splitlines():
            if line.startswith("      ! history of feature_view "):
                words = line.split()
                lost[words[4]] = (int(words[9]), int(words[13]))
        expect_eq(sorted(lost), ["cont", "tiled"], out)
        for name, (keys, nbytes) in lost.items():
            expect(keys >= 30 and nbytes > 1000, (name, keys, nbytes, out))
        expect("history of feature_view last_tx" not in out, out)  # unchanged: not in the plan
        # not on a terminal and without --yes: refused, nothing applied
        rc, out, err = srv.cli("apply", "--workspace", "cost", repo, input="")
        expect_eq(rc, 1, out + err)
        expect_eq(err, "sluice: not applied: these changes delete stored feature data (the lines "
                       "marked !); pass --yes to apply them anyway\n")
        expect("Applied" not in out, out)
        expect_eq(view_ids("cost"), ids)
        expect_eq(online("cost")["tiled.life"], "2")
        rc, out, err = srv.cli("apply", "--yes", "--workspace", "cost", repo, input="")
        expect_eq(rc, 0, out + err)
        expect("deleting the data of a removed or redefined view" in out, out)
    finally:
        shutil.rmtree(repo)
    now = view_ids("cost")
    expect_eq(now["last_tx"], ids["last_tx"])
    expect(now["tiled"] != ids["tiled"] and now["cont"] != ids["cont"], (ids, now))
    f = online("cost")
    expect_eq(f["tiled.life"], "0", f)
    expect_eq(f["last_tx.amount"], 2.0, f)
    done = wait_jobs_done([j["id"] for j in jobs("cost")])
    expect_eq(sorted(j["featureView"] for j in done), ["cont", "tiled"])
    expect_eq(sorted(int(j["keysDeleted"]) for j in done), sorted(k for k, _ in lost.values()))


def metric(name):
    return harness.metric(srv, name)


def test_retention_reclaims_orphans_and_leaves_live_views_alone():
    make_ws("orph")
    fill("orph", users=300)
    make_ws("keep")
    fill("keep", users=10)
    rc, out, err = srv.cli("workspace", "delete", "orph")
    expect_eq(rc, 0, err)
    for j in jobs("orph"):  # as if an older version had deleted only the definitions
        st, b = srv.request("POST", "/v1/jobs/%s/cancel" % j["id"])
        expect_eq(st, 200, b)
    wait_for(lambda: all(j["state"] in ("cancelled", "succeeded") for j in jobs("orph")), 30,
             "the delete jobs to stop")
    expect(any(j["state"] == "cancelled" for j in jobs("orph")), jobs("orph"))
    orph = os.path.join(srv.data_dir, "offline", "orph")
    expect(os.path.isdir(orph) and os.listdir(orph), orph)
    # a directory of the previous layout whose view is gone
    old = os.path.join(srv.data_dir, "offline", "keep", "retired")
    os.mkdir(old)
    with open(os.path.join(old, "active-0000000000000001.log"), "wb") as f:
        f.write(b"\0" * 4096)
    keys0, bytes0 = metric("sluice_retention_orphan_keys_total"), metric("sluice_retention_orphan_bytes_total")
    harness.set_clock(srv, T0 + 3600)  # retention runs every 10 minutes
    try:
        wait_for(lambda: not os.path.exists(orph) and not os.path.exists(old), 30, "retention to reclaim")
        expect(metric("sluice_retention_orphan_keys_total") > keys0)
        expect(metric("sluice_retention_orphan_bytes_total") >= bytes0 + 4096)
    finally:
        harness.set_clock(srv, T0)
    expect_eq(online("keep")["tiled.life"], "2")
    expect_eq(offline("keep")["tiled__life"], "2")
    expect_eq(sorted(x.split("@")[0] for x in os.listdir(os.path.dirname(old))), ["cont", "last_tx", "tiled"])


def test_backup_under_sustained_ingest_restores_exactly_the_acknowledged_writes():
    global srv
    make_ws("bk")
    users = 50
    state = {"acked": -1, "sent": -1, "stop": False, "error": None}

    def ingest():
        k = 0
        try:
            while not state["stop"]:
                state["sent"] = k
                st, b = srv.ingest({"tx": [{"record": {"user_id": "s%d" % (k % users), "ts": iso(T0 - 3000 + k * 0.5),
                                                       "amount": float(k), "qty": 1, "merchant": "m"}}]}, ws="bk")
                if st != 200:
                    raise AssertionError(b)
                state["acked"] = k
                k += 1
        except Exception as e:  # reported by the main thread
            state["error"] = e

    t = threading.Thread(target=ingest)
    t.start()
    dest = tempfile.mkdtemp(prefix="sluice-backup-")
    copy = None
    try:
        wait_for(lambda: state["acked"] >= 200 or state["error"], 60, "ingest to get going")
        acked_before = state["acked"]
        rc, out, err = srv.cli("backup", "--to", dest)
        not_sent_after = state["sent"] + 1
        expect_eq(rc, 0, out + err)
        expect(out.startswith("Backed up to %s: " % dest), out)
        wait_for(lambda: state["acked"] >= not_sent_after + 20 or state["error"], 60, "ingest to go on")
        state["stop"] = True
        t.join()
        expect(state["error"] is None, state["error"])
        copy = Server(data_dir=dest, args=["--fake-now", iso(T0)]).start()
        keep, srv = srv, copy
        try:
            got = {u: online("bk", "s%d" % u) for u in range(users)}
            rows = {u: offline("bk", "s%d" % u) for u in range(users)}
        finally:
            srv = keep
        last = max(int(f["last_tx.amount"]) for f in got.values() if f["last_tx.amount"] is not None)
        print("backup under ingest: acknowledged before %d, in the copy 0..%d, not sent after %d"
              % (acked_before, last, not_sent_after))
        # the copy holds a prefix of the requests (the ingest is sequential), all of it
        expect(acked_before <= last < not_sent_after, (acked_before, last, not_sent_after))
        for u in range(users):
            ks = [k for k in range(last + 1) if k % users == u]
            f, row = got[u], rows[u]
            expect_eq(f["tiled.life"], str(len(ks)), (u, f))
            expect_eq(f["cont.life"], str(len(ks)), (u, f))
            expect_eq(f["last_tx.amount"], float(ks[-1]) if ks else None, (u, f))
            expect_eq(row["tiled__life"], str(len(ks)), (u, row))
            expect_eq(row["last_tx__amount"], float(ks[-1]) if ks else None, (u, row))
    finally:
        state["stop"] = True
        t.join()
        if copy:
            copy.stop()
        shutil.rmtree(dest, ignore_errors=True)
    # a second backup into a directory that is not empty is refused
    d = tempfile.mkdtemp(prefix="sluice-backup-")
    try:
        open(os.path.join(d, "x"), "w").close()
        st, b = srv.request("POST", "/v1/backup", {"to": d})
        expect_eq(st, 409, b)
        expect_eq(b["message"], "cannot back up into %s: it exists and is not empty" % d)
    finally:
        shutil.rmtree(d)


def test_format_version_written_upgraded_and_refused():
    d = tempfile.mkdtemp(prefix="sluice-test-")
    s = Server(data_dir=d, args=["--fake-now", iso(T0)]).start()
    try:
        with open(os.path.join(d, "FORMAT")) as f:
            expect_eq(f.read(), "sluice-data-format 2\n")
        global srv
        keep, srv = srv, s
        try:
            make_ws("old")
            fill("old", users=5)
        finally:
            srv = keep
        s.stop()
        # the previous release's layout: no FORMAT, offline directories named by the view
        os.unlink(os.path.join(d, "FORMAT"))
        base = os.path.join(d, "offline", "old")
        for name in os.listdir(base):
            os.rename(os.path.join(base, name), os.path.join(base, name.split("@")[0]))
        s.start()
        expect_eq(sorted(x.split("@")[0] for x in os.listdir(base)), ["cont", "last_tx", "tiled"])
        expect(all("@" in x for x in os.listdir(base)), os.listdir(base))
        with open(os.path.join(d, "FORMAT")) as f:
            expect_eq(f.read(), "sluice-data-format 2\n")
        keep, srv = srv, s
        try:
            expect_eq(offline("old")["tiled__life"], "2")
        finally:
            srv = keep
        s.stop()
        # a newer format is refused before anything is opened
        with open(os.path.join(d, "FORMAT"), "w") as f:
            f.write("sluice-data-format 3\n")
        p = subprocess.run([BIN, "serve", "--data-dir", d, "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=30)
        expect_eq(p.returncode, 1, p.stderr)
        expect_eq(p.stderr.strip().splitlines()[-1],
                  "sluice serve: data dir %s has format 3, newer than this sluice reads (2): "
                  "run the newer sluice that wrote it, or restore a backup" % d)
    finally:
        s.cleanup()
        shutil.rmtree(d, ignore_errors=True)


run(globals())
