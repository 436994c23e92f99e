"""A real Prometheus server scrapes a running Sluice with a bearer token; the ingest counter
and a latency quantile come back through Prometheus' HTTP API."""

import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request

from harness import Server, expect, expect_eq, foreign_port, now_rfc3339, run, setup_workspace, wait_for

PROMETHEUS = shutil.which("prometheus")


def query(port, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q}))
    with urllib.request.urlopen(url, timeout=10) as r:
        b = json.loads(r.read())
    assert b["status"] == "success", b
    return b["data"]["result"]


def test_prometheus_scrapes_sluice():
    expect(PROMETHEUS, "prometheus is not installed (scripts/deps.sh test)")
    srv = Server().start()
    d = tempfile.mkdtemp(prefix="sluice-prom-")
    prom = None
    try:
        setup_workspace(srv)
        for i in range(5):
            st, b = srv.ingest({"impressions_event_source": [
                {"record": {"timestamp": now_rfc3339(-5), "user_id": "u%d" % i, "clicked": 1}},
                {"record": {"timestamp": now_rfc3339(-5), "user_id": "w%d" % i, "clicked": 1}}]})
            expect_eq(st, 200, b)
        with open(os.path.join(d, "key"), "w") as f:
            f.write(srv.key)
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: sluice\n"
                    "    authorization:\n      type: Bearer\n      credentials_file: %s\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
                    % (os.path.join(d, "key"), srv.port))
        port = foreign_port()
        log = open(os.path.join(d, "prometheus.log"), "wb")
        prom = subprocess.Popen([PROMETHEUS, "--config.file", os.path.join(d, "prometheus.yml"),
                                 "--storage.tsdb.path", os.path.join(d, "tsdb"),
                                 "--web.listen-address", "127.0.0.1:%d" % port],
                                stdout=log, stderr=log)
        def records():
            if prom.poll() is not None:
                raise AssertionError("prometheus exited: " + open(os.path.join(d, "prometheus.log")).read()[-2000:])
            try:
                r = query(port, 'sluice_ingest_workspace_records_total{workspace="ads"}')
            except OSError:
                return None
            return r and r[0]["value"][1] == "10" and r
        r = wait_for(records, 60, "Prometheus to scrape the ingest counter")
        expect_eq(r[0]["metric"]["job"], "sluice")
        up = query(port, 'up{job="sluice"}')
        expect_eq(up[0]["value"][1], "1")
        # the histogram: a p99 of ingest latency between 0 and 10 s
        def quantile():
            q = query(port, 'histogram_quantile(0.99, sum by (le) '
                            '(sluice_http_request_duration_seconds_bucket{endpoint="ingest",status="200"}))')
            return q and q[0]["value"][1] not in ("NaN",) and q
        q = wait_for(quantile, 30, "the latency quantile")
        v = float(q[0]["value"][1])
        expect(0 < v <= 10, v)
    finally:
        if prom:
            prom.terminate()
            prom.wait(30)
        srv.cleanup()
        shutil.rmtree(d, ignore_errors=True)


run(globals())
