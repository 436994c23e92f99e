"""Restarts and crashes: the registry and acknowledged writes survive both."""

from harness import (Server, expect, expect_eq, now_rfc3339, run, setup_workspace)

srv = None


def setup_module():
    global srv
    srv = Server().start()
    setup_workspace(srv, "ads", "ads")


def teardown_module():
    srv.cleanup()


def clicked(user):
    st, b = srv.get_features({"user_id": user})
    assert st == 200, b
    i = [f["name"] for f in b["metadata"]["features"]].index("click_events_fv.clicked")
    return b["result"]["features"][i]


def rec(user, clicked_):
    return {"record": {"timestamp": now_rfc3339(), "user_id": user, "clicked": clicked_}}


def test_restart_keeps_registry_and_data():
    key = srv.key
    st, b = srv.ingest({"impressions_event_source": [rec("R1", 7)]})
    expect_eq(st, 200, b)
    srv.stop()
    srv.start()
    expect_eq(srv.key, key, "admin key changed across restarts")
    expect_eq(clicked("R1"), "7")
    rc, out, err = srv.cli("plan", "--workspace", "ads", __import__("harness").example_dir("ads"))
    expect("No changes" in out, out + err)


def test_kill_9_right_after_ack():
    for i in range(20):
        st, b = srv.ingest({"impressions_event_source": [rec("K%d" % i, i)]})
        expect_eq(st, 200, b)
    srv.kill9()
    srv.start()
    for i in range(20):
        expect_eq(clicked("K%d" % i), str(i))


run(globals())
