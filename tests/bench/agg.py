"""The agg benchmark's data (tests/bench/run.sh agg): 30 days of events for the views of
tests/bench/repos/agg, request bodies for loadgen and wrk, and a look at the served values.
Standard library only.

Usage:
  agg.py history-bodies OUT USERS EVENTS NOW BATCH
      Ingest bodies for EVENTS events of USERS users at random times of the 30 days before NOW
      (RFC 3339, the server's --fake-now), in time order, BATCH records per request for each of
      tx_1h and tx_30d (both in one request), one body per line.
  agg.py load URL KEYFILE BODIES CONNS
      Ingests each body of BODIES once, in order, over CONNS connections. One JSON line:
      records/s.
  agg.py ingest-bodies OUT USERS NOW BATCH LINES SOURCE
      LINES ingest bodies of BATCH records for SOURCE: random users, times in the 10 minutes
      before NOW.
  agg.py get-bodies OUT USERS SERVICE
      One get-features body per user for SERVICE.
  agg.py look URL KEYFILE USERS
      One line per service: a response, and how many of 200 users have a value in the window.
"""

import http.client
import json
import random
import sys
import threading
import time
import urllib.parse

WS = "agg"
SOURCES = ("tx_1h", "tx_30d")
SERVICES = ("spend_1h_svc", "spend_30d_svc")
GET_PATH = "/api/v1/feature-service/get-features"
DAYS = 30


def parse_time(text):
    """Seconds since the epoch of an RFC 3339 UTC time like 2025-06-01T00:00:00Z."""
    import calendar
    base = text.rstrip("Z").split(".")[0]
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def user(n):
    return "u%06d" % n


def dumps(o):
    return json.dumps(o, separators=(",", ":"))


def record(rng, users, t):
    return {"record": {"user_id": user(rng.randrange(users)), "ts": rfc3339(t),
                       "amount": round(rng.uniform(1, 500), 2)}}


def ingest_body(records, sources):
    return dumps({"workspace_name": WS, "dry_run": False,
                  "records": {s: records for s in sources}}).encode()


class Client:
    """One keep-alive connection to the server."""

    def __init__(self, url, key):
        u = urllib.parse.urlsplit(url)
        if u.hostname != "127.0.0.1":
            sys.exit("agg.py: only 127.0.0.1 is a target")
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        self.headers = {"Authorization": "Sluice-key " + key, "Content-Type": "application/json"}

    def post(self, path, body):
        self.conn.request("POST", path, body=body, headers=self.headers)
        r = self.conn.getresponse()
        return r.status, r.read()


def read_key(keyfile):
    with open(keyfile) as f:
        return f.read().strip()


def cmd_history_bodies(out, users, events, now, batch):
    users, events, batch = int(users), int(events), int(batch)
    end = parse_time(now)
    rng = random.Random(4)
    times = sorted(rng.uniform(end - DAYS * 86400, end) for _ in range(events))
    with open(out, "wb") as f:
        for i in range(0, events, batch):
            f.write(ingest_body([record(rng, users, t) for t in times[i:i + batch]], SOURCES) + b"\n")


def cmd_load(url, keyfile, bodies_file, conns):
    conns = int(conns)
    with open(bodies_file, "rb") as f:
        bodies = [l.rstrip(b"\n") for l in f if l.strip()]
    records = sum(sum(len(v) for v in json.loads(b)["records"].values()) for b in bodies)
    key = read_key(keyfile)
    lock = threading.Lock()
    state = {"next": 0, "error": None}

    def work():
        c = Client(url, key)
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
                if i >= len(bodies) or state["error"]:
                    return
            status, text = c.post("/ingest", bodies[i])
            if status != 200:
                with lock:
                    state["error"] = "/ingest answered %d: %s" % (status, text[:300])
                return

    t0 = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    if state["error"]:
        sys.exit("agg.py load: " + state["error"])
    print(dumps({"tool": "agg.py", "rate": records / secs, "unit": "records/s",
                 "records": records, "seconds": round(secs, 3), "requests": len(bodies),
                 "records_per_request": records // max(1, len(bodies)), "connections": conns}))


def cmd_ingest_bodies(out, users, now, batch, lines, source):
    users, batch, lines, end = int(users), int(batch), int(lines), parse_time(now)
    rng = random.Random(5)
    with open(out, "w") as f:
        for _ in range(lines):
            recs = [record(rng, users, end - rng.uniform(0.001, 600)) for _ in range(batch)]
            f.write(ingest_body(recs, (source,)).decode() + "\n")


def get_body(n, service, metadata=False):
    p = {"workspace_name": WS, "feature_service_name": service, "join_key_map": {"user_id": user(n)}}
    if metadata:
        p["metadata_options"] = {"include_names": True, "include_serving_status": True}
    return {"params": p}


def cmd_get_bodies(out, users, service):
    with open(out, "w") as f:
        for n in range(int(users)):
            f.write(dumps(get_body(n, service)) + "\n")


def cmd_look(url, keyfile, users):
    c = Client(url, read_key(keyfile))
    users = int(users)
    sample = sorted(random.Random(6).sample(range(users), min(200, users)))
    for svc in SERVICES:
        present, example = 0, None
        for n in sample:
            status, text = c.post(GET_PATH, dumps(get_body(n, svc, True)).encode())
            if status != 200:
                sys.exit("agg.py look: get-features answered %d: %s" % (status, text[:300]))
            b = json.loads(text)
            st = [f.get("status") for f in b["metadata"]["features"]]
            present += st[0] == "PRESENT"
            if example is None or (st[0] == "PRESENT" and example[1][0] != "PRESENT"):
                example = (b["result"]["features"], st, len(text))
        print("- agg: `%s`: %d of %d users have events in the window; a response: %d bytes,"
              " features %s" % (svc, present, len(sample), example[2], dumps(example[0])))


if __name__ == "__main__":
    cmds = {"history-bodies": cmd_history_bodies, "load": cmd_load, "ingest-bodies": cmd_ingest_bodies, "get-bodies": cmd_get_bodies,
            "look": cmd_look}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
