"""What a repository or script written for Tecton reaches for: `stream_config = PushConfig {}`,
$TECTON_API_KEY for the CLI, and apply's check that a batch source holds every column of the
stream schema (Tecton's rule), refused with the column's name and the source's file:line."""

import os
import shutil
import tempfile

from harness import SRCDIR, Server, expect, expect_eq, run

srv = None
PARQUET = os.path.join(SRCDIR, "tests", "data", "parquet")

SOURCE = """local user = Entity { name = "user", join_keys = { Field("user_id", String) } }

local clicks = StreamSource {
  name = "clicks",
  schema = { Field("user_id", String), Field("timestamp", Timestamp), Field("clicked", Int64) },
  %s
}

local last_click = StreamFeatureView {
  name = "last_click", source = clicks, entities = { user }, online = true, offline = true,
  timestamp_field = "timestamp", features = { Attribute("clicked", Int64) },
}
"""


def repo(config, files=None):
    """A repository folder: src.lua with the StreamSource's extra arguments, data/ files."""
    d = tempfile.mkdtemp(prefix="sluice-repo-")
    with open(os.path.join(d, "src.lua"), "w") as f:
        f.write(SOURCE % config)
    os.makedirs(os.path.join(d, "data"))
    for name, content in (files or {}).items():
        with open(os.path.join(d, "data", name), "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
    return d


def apply(d, ws="t", plan=False):
    if plan:
        return srv.cli("plan", "--workspace", ws, d)
    return srv.cli("apply", "--workspace", ws, "--yes", "--no-follow", d)


def setup_module():
    global srv
    srv = Server().start()
    for ws in ("t", "u"):
        rc, out, err = srv.cli("workspace", "create", ws, "--live")
        assert rc == 0, err


def teardown_module():
    srv.cleanup()


def test_push_config_is_the_stream_ingest_api():
    for config in ("stream_config = PushConfig {},", "stream_config = PushConfig(),"):
        d = repo(config)
        rc, out, err = apply(d)
        expect_eq(rc, 0, out + err)
        st, b = srv.ingest({"clicks": [{"record": {"user_id": "a", "timestamp": "2025-01-01T00:00:00Z",
                                                   "clicked": 3}}]}, ws="t")
        expect_eq(st, 200, b)
        shutil.rmtree(d)
    for config, msg in (
            ("stream_config = PushConfig { log_offline = true },",
             "src.lua:6: PushConfig: unknown argument `log_offline`"),
            ('stream_config = FileConfig { uri = "x.csv", file_format = "csv" },',
             "src.lua:3: StreamSource `clicks`: `stream_config` must be PushConfig {} (records pushed to "
             "POST /ingest), got FileConfig"),
            ('stream_config = "push",',
             'src.lua:3: StreamSource `clicks`: `stream_config` must be PushConfig {} (records pushed to '
             'POST /ingest), got string "push"')):
        d = repo(config)
        rc, out, err = apply(d, ws="u")
        expect_eq((rc, err), (1, "sluice: %s (HTTP 400)\n" % msg))
        shutil.rmtree(d)


def test_tecton_api_key_after_sluice_api_key():
    rc, out, err = srv.cli("workspace", "list", key=None, env_extra={"TECTON_API_KEY": srv.key})
    expect_eq(rc, 0, err)
    expect("t" in out.split(), out)
    rc, out, err = srv.cli("workspace", "list", key="sk_wrong", env_extra={"TECTON_API_KEY": srv.key})
    expect(rc != 0 and "401" in err, "SLUICE_API_KEY comes first: %r" % err)
    keyfile = os.path.join(tempfile.mkdtemp(), "key")
    with open(keyfile, "w") as f:
        f.write("sk_wrong\n")
    rc, out, err = srv.cli("workspace", "list", key=None,
                           env_extra={"SLUICE_API_KEY_FILE": keyfile, "TECTON_API_KEY": srv.key})
    expect(rc != 0 and "401" in err, "SLUICE_API_KEY_FILE comes first: %r" % err)
    rc, out, err = srv.cli("workspace", "list", key=None, env_extra={"TECTON_API_KEY": "sk_wrong"})
    expect(rc != 0 and "401" in err, err)


def test_apply_refuses_a_batch_file_without_a_stream_column():
    d = repo('batch_config = FileConfig { uri = "data/clicks.csv", file_format = "csv" },',
             {"clicks.csv": "user_id,timestamp,note\na,2025-01-01T00:00:00Z,x\n"})
    path = os.path.join(os.path.realpath(d), "data", "clicks.csv")
    want = ("sluice: src.lua:3: StreamSource `clicks`: the batch_config file %s has no column `clicked`; "
            "a batch source must hold every column of the stream schema (HTTP 400)\n" % path)
    for plan in (True, False):
        rc, out, err = apply(d, ws="u", plan=plan)
        expect_eq((rc, err), (1, want), "plan" if plan else "apply")
    st, b = srv.request("GET", "/v1/workspaces/u/definitions")
    expect(not any(s["name"] == "clicks" for s in b.get("sources", [])), "nothing applied")
    # the header holds every column (in another order, with more): applied
    with open(os.path.join(d, "data", "clicks.csv"), "w") as f:
        f.write("note,clicked,timestamp,user_id\nx,1,2025-01-01T00:00:00Z,a\n")
    rc, out, err = apply(d, ws="u")
    expect_eq(rc, 0, out + err)
    shutil.rmtree(d)


def test_batch_check_reads_parquet_schemas_and_skips_what_it_cannot_read():
    with open(os.path.join(PARQUET, "types_snappy.parquet"), "rb") as f:
        pq = f.read()
    d = repo('batch_config = FileConfig { uri = "data/", file_format = "parquet" },', {"t.parquet": pq})
    rc, out, err = apply(d, ws="u")
    expect_eq(rc, 1, err)
    expect("src.lua:3: StreamSource `clicks`: the batch_config file %s has no column `user_id`;"
           % os.path.join(os.path.realpath(d), "data", "t.parquet") in err, err)
    shutil.rmtree(d)
    # JSON Lines has no header, a file not there yet is the jobs' business: both applied
    for config, files in (('batch_config = FileConfig { uri = "data/c.jsonl", file_format = "jsonl" },',
                           {"c.jsonl": '{"user_id": "a"}\n'}),
                          ('batch_config = FileConfig { uri = "data/later.csv", file_format = "csv" },', {})):
        d = repo(config, files)
        rc, out, err = apply(d, ws="u")
        expect_eq(rc, 0, out + err)
        shutil.rmtree(d)


run(globals())
