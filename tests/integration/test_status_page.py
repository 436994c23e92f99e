"""The status page in a real browser: headless Chromium loads /ui with an API key, after an
ingest, and the page shows the live numbers (workspace, records ingested, version)."""

import os
import re
import shutil
import subprocess
import tempfile

from harness import Server, expect, expect_eq, now_rfc3339, run, setup_workspace

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(profile, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--user-data-dir=" + profile,
           # lets the page's fetches finish before the DOM is dumped
           "--virtual-time-budget=10000"] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def cell_rows(dom, table):
    body = re.search(r'<table id="%s">.*?<tbody>(.*?)</tbody>' % table, dom, re.S)
    expect(body, "no table %s in %s" % (table, dom[:2000]))
    return [re.findall(r"<td[^>]*>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", body.group(1))]


def test_status_page_shows_live_numbers_after_ingest():
    expect(CHROMIUM, "chromium is not installed (scripts/deps.sh test)")
    srv = Server().start()
    d = tempfile.mkdtemp(prefix="sluice-chromium-")
    try:
        setup_workspace(srv)
        records = [{"record": {"timestamp": now_rfc3339(-5), "user_id": "u%d" % i, "clicked": 1}}
                   for i in range(7)]
        st, b = srv.ingest({"impressions_event_source": records})
        expect_eq(st, 200, b)
        st, b = srv.ingest({"nope": records})  # a recent error
        expect_eq(st, 404, b)
        url = srv.url + "/ui#key=" + srv.key
        rc, dom, err = chromium(os.path.join(d, "profile"), "--dump-dom", url)
        expect_eq(rc, 0, err[-2000:])
        expect('data-loaded="1"' in dom, dom[:3000])
        expect('<span id="state" class="ready">ready</span>' in dom, dom[:3000])
        expect(re.search(r'<span id="version">\d+\.\d+\.\d+ \(', dom), dom[:3000])
        expect_eq(cell_rows(dom, "ingest"), [["ads", "7", "0", "1"]])  # 7 records, 1 error
        ws = cell_rows(dom, "workspaces")
        expect_eq([r[:3] for r in ws], [["ads", "yes", "1"]])
        views = {r[1]: r for r in cell_rows(dom, "views")}
        expect_eq(sorted(views), ["click_events_fv", "user_click_counts"])
        expect_eq(views["user_click_counts"][:5], ["ads", "user_click_counts", "time_interval", "yes", "yes"])
        expect_eq(views["user_click_counts"][7], "7")  # rows ingested
        age = re.match(r"^(\d+) s ago$", views["user_click_counts"][9])  # freshness: events 5 s old
        expect(age and 5 <= int(age.group(1)) < 120, views["user_click_counts"])
        expect_eq([r[:2] for r in cell_rows(dom, "services")], [["ads", "ad_ctr_feature_service"]])
        errors = cell_rows(dom, "errors")
        expect(errors and errors[0][1] == "404" and "POST /ingest" == errors[0][2]
               and "nope" in errors[0][4], errors)
        reqs = {(r[0], r[1]): r[2] for r in cell_rows(dom, "requests")}
        expect_eq(reqs.get(("ingest", "200")), "1", reqs)
        expect('<span id="err"></span>' in dom, dom[:3000])
        shot = os.path.join(d, "status.png")
        rc, _, err = chromium(os.path.join(d, "profile2"), "--screenshot=" + shot,
                              "--window-size=1024,768", url)
        expect_eq(rc, 0, err[-2000:])
        with open(shot, "rb") as f:
            expect_eq(f.read(8), b"\x89PNG\r\n\x1a\n")
        expect(os.path.getsize(shot) > 5000, os.path.getsize(shot))
        # without a key the page says what is missing
        rc, dom, err = chromium(os.path.join(d, "profile3"), "--dump-dom", srv.url + "/ui")
        expect_eq(rc, 0, err[-2000:])
        expect("HTTP 401" in dom and "give an API key" in dom, dom[:3000])
    finally:
        srv.cleanup()
        shutil.rmtree(d, ignore_errors=True)


run(globals())
