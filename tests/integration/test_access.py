"""Access control: every endpoint x every role (and no key, a bad key, a rotated key, a
deleted account's key) -> the expected status and error body; 403, never 404, to callers
without a role in the workspace; keys never stored in clear text; key rotation and account
deletion take effect on the next request and survive a restart; the last admin cannot be
deleted; audit lines; --no-auth; TLS."""

import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import urllib.request

from harness import (BIN, Server, example_dir, expect, expect_eq, now_rfc3339, run,
                     setup_workspace, wait_for)

srv = None
ROLES = ["owner", "editor", "consumer", "operator", "viewer"]
CALLERS = ROLES + ["admin", "none"]
UNAUTHENTICATED = ["no key", "bad key", "rotated key", "deleted key"]
keys = {}       # caller -> API key
ids = {}        # caller -> account id
issued = []     # every key the server ever handed out
FS = "/api/v1/feature-service/"

# Who may do what: README.md "Access control" (roles are cumulative, admin may do anything).
VIEWER_UP = {"viewer", "consumer", "operator", "editor", "owner", "admin"}
RIGHTS = {
    "ingest": {"editor", "owner", "admin"},
    "ingest-dry": VIEWER_UP,
    "read": {"consumer", "operator", "editor", "owner", "admin"},
    "apply": {"editor", "owner", "admin"},
    "jobs": {"operator", "editor", "owner", "admin"},
    "plan": VIEWER_UP,
    "definitions": VIEWER_UP,
    "manage": {"owner", "admin"},
    "admin": {"admin"},
    "any": set(CALLERS),
}


def cli_ok(*args, key="admin", env_extra=None):
    rc, out, err = srv.cli(*args, key=key, env_extra=env_extra)
    expect_eq(rc, 0, "sluice %s: %s%s" % (" ".join(args), out, err))
    return out


def create_account(name, *extra, key="admin"):
    out = cli_ok("service-account", "create", "--name", name, "--description", "test " + name,
                 *extra, key=key)
    k = re.search(r"^API Key: (\S+)$", out, re.M).group(1)
    i = re.search(r"^Service Account ID: (\S+)$", out, re.M).group(1)
    issued.append(k)
    return k, i


def repo_files():
    d = example_dir("ads")
    files = []
    for root, _, names in os.walk(d):
        for n in sorted(names):
            if n.endswith(".lua"):
                p = os.path.join(root, n)
                with open(p) as f:
                    files.append({"name": os.path.relpath(p, d), "content": f.read()})
    return {"files": files}


def setup_module():
    global srv
    srv = Server(args=["--log-level", "info"]).start()
    issued.append(srv.key)
    setup_workspace(srv, "ads", "ads")
    for role in ROLES:
        keys[role], ids[role] = create_account(role)
        cli_ok("access-control", "assign-role", "--role", role, "--workspace", "ads",
               "--service-account", ids[role])
    keys["admin"], ids["admin"] = create_account("second-admin", "--admin")
    keys["none"], ids["none"] = create_account("nobody")
    # a key replaced by rotate-key, and the key of a deleted account (both were consumers)
    keys["rotated key"], rid = create_account("rotated")
    cli_ok("access-control", "assign-role", "--role", "consumer", "--workspace", "ads",
           "--service-account", rid)
    out = cli_ok("service-account", "rotate-key", rid)
    issued.append(re.search(r"^API Key: (\S+)$", out, re.M).group(1))
    keys["deleted key"], did = create_account("deleted")
    cli_ok("access-control", "assign-role", "--role", "consumer", "--workspace", "ads",
           "--service-account", did)
    cli_ok("service-account", "delete", did)
    keys["no key"] = None
    keys["bad key"] = "sk_" + "0" * 48


def teardown_module():
    srv.cleanup()


def click(user="U1"):
    return {"record": {"timestamp": now_rfc3339(), "user_id": user, "clicked": 1}}


def fs_params(ws):
    return {"params": {"workspace_name": ws, "feature_service_name": "ad_ctr_feature_service",
                       "join_key_map": {"user_id": "U1"}}}


def endpoints(ws):
    """(name, right, method, path, body or raw bytes, status on success) for workspace ws."""
    events = (json.dumps({"user_id": "U1", "timestamp": now_rfc3339(-60)}) + "\n").encode()
    batch = {"params": {"workspace_name": ws, "feature_service_name": "ad_ctr_feature_service",
                        "request_data": [{"join_key_map": {"user_id": "U1"}}]}}
    return [
        ("ingest", "ingest", "POST", "/ingest",
         {"workspace_name": ws, "dry_run": False, "records": {"impressions_event_source": [click()]}}, 200),
        ("ingest dry run", "ingest-dry", "POST", "/ingest",
         {"workspace_name": ws, "dry_run": True, "records": {"impressions_event_source": [click()]}}, 200),
        ("get-features", "read", "POST", FS + "get-features", fs_params(ws), 200),
        ("get-features-batch", "read", "POST", FS + "get-features-batch", batch, 200),
        ("metadata", "read", "POST", FS + "metadata", fs_params(ws), 200),
        ("get-features-for-events", "read", "POST",
         FS + "get-features-for-events?workspace_name=%s&feature_service_name=ad_ctr_feature_service" % ws,
         events, 200),
        ("plan", "plan", "POST", "/v1/workspaces/%s/plan" % ws, repo_files(), 200),
        ("apply", "apply", "POST", "/v1/workspaces/%s/apply" % ws, repo_files(), 200),
        ("definitions", "definitions", "GET", "/v1/workspaces/%s/definitions" % ws, None, 200),
        ("get roles", "manage", "GET", "/v1/workspaces/%s/roles" % ws, None, 200),
        ("assign role", "manage", "POST", "/v1/workspaces/%s/roles" % ws,
         {"service_account": ids["none"], "role": "viewer"}, 200),
        ("unassign role", "manage", "DELETE", "/v1/workspaces/%s/roles" % ws,
         {"service_account": ids["none"], "role": "viewer"}, 200),
        # a backfill of a view that does not exist: 404 once the caller may run jobs
        ("start a job", "jobs", "POST", "/v1/jobs", {"workspace": ws, "feature_view": "no_such_view"}, 404),
    ]


def call(caller, method, path, body):
    raw = body if isinstance(body, bytes) else None
    return srv.request(method, path, None if raw is not None else body, key=keys[caller], raw=raw)


def check_401(caller, path, st, b):
    expect_eq(st, 401, "%s %s: %r" % (caller, path, b))
    if path == "/ingest":
        expect_eq(sorted(b), ["requestError"], b)
        expect_eq(b["requestError"]["errorType"], "UnauthorizedError", b)
    else:
        expect_eq(sorted(b), ["code", "error", "message"], b)
        expect_eq(b["code"], 16, b)


def check_403(caller, path, st, b):
    expect_eq(st, 403, "%s %s: %r" % (caller, path, b))
    text = json.dumps(b)
    expect("not found" not in text, text)
    if path == "/ingest":
        expect_eq(b["requestError"]["errorType"], "ForbiddenError", b)
    else:
        expect_eq(b["code"], 7, b)


def test_workspace_endpoints_by_role():
    failures = []
    for caller in CALLERS + UNAUTHENTICATED:
        for name, right, method, path, body, ok in endpoints("ads"):
            st, b = call(caller, method, path, body)
            try:
                if caller in UNAUTHENTICATED:
                    check_401(caller, path, st, b)
                elif caller in RIGHTS[right]:
                    expect_eq(st, ok, "%s as %s: %r" % (name, caller, b))
                else:
                    check_403(caller, path, st, b)
            except AssertionError as e:
                failures.append("%s as %s: %s" % (name, caller, e))
    expect(not failures, "\n".join(failures))


def test_unknown_workspace_is_403_without_a_role_and_404_for_admin():
    """A caller without a role in a workspace learns nothing about whether it exists."""
    failures = []
    for caller in CALLERS + UNAUTHENTICATED:
        for name, right, method, path, body, ok in endpoints("ghost"):
            st, b = call(caller, method, path, body)
            try:
                if caller in UNAUTHENTICATED:
                    check_401(caller, path, st, b)
                elif caller == "admin":
                    expect_eq(st, 404, "%s as admin: %r" % (name, b))
                else:
                    check_403(caller, path, st, b)
            except AssertionError as e:
                failures.append("%s as %s: %s" % (name, caller, e))
        st, b = srv.request("DELETE", "/v1/workspaces/ghost", key=keys[caller])
        if caller in UNAUTHENTICATED:
            check_401(caller, "/v1/workspaces/ghost", st, b)
        else:
            expect_eq(st, 404 if caller == "admin" else 403, "delete ghost as %s: %r" % (caller, b))
    expect(not failures, "\n".join(failures))
    # the same caller gets the same answer for a workspace that exists and one that does not
    for caller in ["none"]:
        for (name, _, m1, p1, b1, _), (_, _, m2, p2, b2, _) in zip(endpoints("ads"), endpoints("ghost")):
            s1, r1 = call(caller, m1, p1, b1)
            s2, r2 = call(caller, m2, p2, b2)
            expect_eq(s1, s2, name)
            expect_eq(json.dumps(r1).replace("ads", "W"), json.dumps(r2).replace("ghost", "W"), name)


def test_global_endpoints_by_role():
    failures = []

    def check(caller, name, right, st, b, ok, path):
        try:
            if caller in UNAUTHENTICATED:
                check_401(caller, path, st, b)
            elif caller in RIGHTS[right]:
                expect_eq(st, ok, "%r" % (b,))
            else:
                check_403(caller, path, st, b)
        except AssertionError as e:
            failures.append("%s as %s: %s" % (name, caller, e))

    for caller in CALLERS + UNAUTHENTICATED:
        k = keys[caller]
        st, b = srv.request("GET", "/v1/workspaces", key=k)
        check(caller, "list workspaces", "any", st, b, 200, "/v1/workspaces")
        if st == 200:  # only the workspaces where the caller holds a role
            names = [w["name"] for w in b["workspaces"]]
            expect_eq("ads" in names, caller != "none", (caller, names))
        st, b = srv.request("GET", "/metrics", key=k)
        check(caller, "metrics", "any", st, b, 200, "/metrics")
        st, b = srv.request("GET", "/v1/jobs?workspace=ads", key=k)
        check(caller, "list jobs", "any", st, b, 200, "/v1/jobs")
        ws = "made_by_" + caller.replace(" ", "_")
        st, b = srv.request("POST", "/v1/workspaces", {"name": ws}, key=k)
        check(caller, "create workspace", "admin", st, b, 201, "/v1/workspaces")
        # deleting a workspace: the caller holds its role there too
        st, _ = srv.request("POST", "/v1/workspaces", {"name": ws})
        expect(st in (201, 409), st)
        if caller in ROLES:
            cli_ok("access-control", "assign-role", "--role", caller, "--workspace", ws,
                   "--service-account", ids[caller])
        st, b = srv.request("DELETE", "/v1/workspaces/" + ws, key=k)
        check(caller, "delete workspace", "manage", st, b, 200, "/v1/workspaces/" + ws)
        srv.request("DELETE", "/v1/workspaces/" + ws)
        # service accounts
        st, b = srv.request("POST", "/v1/service-accounts", {"name": "made-by-" + caller}, key=k)
        check(caller, "create service account", "admin", st, b, 201, "/v1/service-accounts")
        if st == 201:
            issued.append(b["apiKey"])
        st, b = srv.request("POST", "/v1/service-accounts", {"name": "x", "admin": True}, key=k)
        check(caller, "create admin account", "admin", st, b, 201, "/v1/service-accounts")
        if st == 201:
            issued.append(b["apiKey"])
            expect_eq(b["admin"], True)
        st, b = srv.request("GET", "/v1/service-accounts", key=k)
        check(caller, "list service accounts", "admin", st, b, 200, "/v1/service-accounts")
        _, victim = create_account("victim-of-" + caller)
        st, b = srv.request("GET", "/v1/service-accounts/%s/roles" % victim, key=k)
        check(caller, "another account's roles", "admin", st, b, 200, "/v1/service-accounts")
        st, b = srv.request("POST", "/v1/service-accounts/%s/rotate-key" % victim, key=k)
        check(caller, "rotate key", "admin", st, b, 200, "/v1/service-accounts")
        if st == 200:
            issued.append(b["apiKey"])
        st, b = srv.request("DELETE", "/v1/service-accounts/" + victim, key=k)
        check(caller, "delete service account", "admin", st, b, 200, "/v1/service-accounts")
        srv.request("DELETE", "/v1/service-accounts/" + victim)
        # unknown accounts: 403 to non-admins, 404 to admins
        for method, path in [("DELETE", "/v1/service-accounts/" + "f" * 32),
                             ("POST", "/v1/service-accounts/%s/rotate-key" % ("f" * 32)),
                             ("GET", "/v1/service-accounts/%s/roles" % ("f" * 32))]:
            st, b = srv.request(method, path, key=k)
            if caller in UNAUTHENTICATED:
                check_401(caller, path, st, b)
            else:
                expect_eq(st, 404 if caller == "admin" else 403, (caller, path, b))
    expect(not failures, "\n".join(failures))


def test_an_account_reads_its_own_roles():
    for caller in CALLERS:
        st, b = srv.request("GET", "/v1/service-accounts/%s/roles" % ids[caller], key=keys[caller])
        expect_eq(st, 200, (caller, b))
        expect_eq(b["id"], ids[caller])
        want = [{"workspace": "ads", "role": caller}] if caller in ROLES else []
        expect_eq(b["roles"], want, caller)
        expect_eq(b["admin"], caller == "admin")


def test_cli_lists_accounts_and_roles():
    out = cli_ok("service-account", "list")
    for caller in CALLERS:
        expect(ids[caller] in out, out)
    expect("second-admin" in out and "yes" in out, out)
    expect(keys["owner"] not in out and "apiKey" not in out, out)
    out = cli_ok("access-control", "get-roles", "--workspace", "ads")
    for role in ROLES:
        expect(re.search(r"^%s\s+%s\s+%s$" % (ids[role], role, role), out, re.M), out)
    expect(ids["none"] not in out, out)
    out = cli_ok("access-control", "get-roles", "--service-account", ids["editor"])
    expect(re.search(r"^ads\s+editor$", out, re.M), out)
    out = cli_ok("access-control", "get-roles", "--service-account", ids["admin"])
    expect(re.search(r"^\*\s+admin$", out, re.M), out)
    out = cli_ok("access-control", "get-roles", "--service-account", ids["editor"], "--workspace", "other")
    expect("editor" not in out, out)
    # an owner manages the roles of its workspace through the CLI
    cli_ok("access-control", "assign-role", "--role", "consumer", "--workspace", "ads",
           "--service-account", ids["none"], key=keys["owner"])
    st, _ = srv.get_features({"user_id": "U1"}, key=keys["none"])
    expect_eq(st, 200)
    rc, out, err = srv.cli("access-control", "unassign-role", "--role", "viewer", "--workspace",
                           "ads", "--service-account", ids["none"], key=keys["owner"])
    expect(rc != 0 and "does not hold role viewer" in err, err)
    cli_ok("access-control", "unassign-role", "--workspace", "ads", "--service-account", ids["none"],
           key=keys["owner"])
    st, _ = srv.get_features({"user_id": "U1"}, key=keys["none"])
    expect_eq(st, 403)
    rc, out, err = srv.cli("access-control", "assign-role", "--role", "admin", "--workspace", "ads",
                           "--service-account", ids["none"])
    expect(rc != 0 and "not a workspace role" in err, err)
    rc, out, err = srv.cli("service-account", "create", "--name", "x", key=keys["owner"])
    expect(rc != 0 and "403" in err, err)
    rc, out, err = srv.cli("service-account", "list", key=keys["bad key"])
    expect(rc != 0 and "401" in err, err)


def test_rotate_key_revokes_the_old_key_on_the_next_request():
    old, i = create_account("rotating")
    cli_ok("access-control", "assign-role", "--role", "consumer", "--workspace", "ads",
           "--service-account", i)
    expect_eq(srv.get_features({"user_id": "U1"}, key=old)[0], 200)
    out = cli_ok("service-account", "rotate-key", i)
    new = re.search(r"^API Key: (\S+)$", out, re.M).group(1)
    issued.append(new)
    expect(new != old and len(new) == len(old), (old, new))
    expect_eq(srv.get_features({"user_id": "U1"}, key=old)[0], 401)
    expect_eq(srv.get_features({"user_id": "U1"}, key=new)[0], 200)  # the roles stay
    # an account's own old key cannot rotate again
    st, _ = srv.request("POST", "/v1/service-accounts/%s/rotate-key" % i, key=old)
    expect_eq(st, 401)


def test_deleting_an_account_removes_its_key_and_roles():
    k, i = create_account("short-lived")
    cli_ok("access-control", "assign-role", "--role", "editor", "--workspace", "ads",
           "--service-account", i)
    expect_eq(srv.ingest({"impressions_event_source": [click()]}, key=k)[0], 200)
    out = cli_ok("service-account", "delete", i)
    expect("Deleted" in out, out)
    st, b = srv.ingest({"impressions_event_source": [click()]}, key=k)
    check_401("deleted", "/ingest", st, b)
    st, b = srv.request("GET", "/v1/workspaces/ads/roles")
    expect(i not in [r["serviceAccount"] for r in b["roles"]], b)
    st, b = srv.request("GET", "/v1/service-accounts/%s/roles" % i)
    expect_eq(st, 404, b)
    st, b = srv.request("POST", "/v1/workspaces/ads/roles", {"service_account": i, "role": "viewer"})
    expect_eq(st, 404, b)
    rc, out, err = srv.cli("service-account", "delete", i)
    expect(rc != 0 and "not found" in err, err)


def test_deleting_a_workspace_drops_its_role_bindings():
    k, i = create_account("ws-owner")
    expect_eq(srv.request("POST", "/v1/workspaces", {"name": "doomed"})[0], 201)
    cli_ok("access-control", "assign-role", "--role", "owner", "--workspace", "doomed",
           "--service-account", i)
    expect_eq(srv.request("DELETE", "/v1/workspaces/doomed", key=k)[0], 200)
    expect_eq(srv.request("POST", "/v1/workspaces", {"name": "doomed"})[0], 201)
    # a new workspace of the same name does not inherit the old grants
    expect_eq(srv.request("GET", "/v1/workspaces/doomed/definitions", key=k)[0], 403)
    st, b = srv.request("GET", "/v1/service-accounts/%s/roles" % i)
    expect_eq(b["roles"], [])
    srv.request("DELETE", "/v1/workspaces/doomed")


def test_keys_are_not_stored_in_clear_text():
    srv.stop()  # every file complete, LevelDB logs included
    try:
        admin_file = os.path.join(srv.data_dir, "admin.key")
        expect_eq(os.stat(admin_file).st_mode & 0o777, 0o600)
        expect_eq(os.stat(os.path.join(srv.data_dir, "secret")).st_mode & 0o777, 0o600)
        expect(len(issued) > 20, len(issued))
        checked = 0
        for root, _, names in os.walk(srv.data_dir):
            for n in names:
                p = os.path.join(root, n)
                with open(p, "rb") as f:
                    data = f.read()
                checked += 1
                for k in issued:
                    kb = k.encode()
                    if p == admin_file and k == srv.key:
                        continue
                    expect(kb not in data, "a key in clear text in %s" % p)
                    expect(kb[3:] not in data, "a key's random part in %s" % p)
        expect(checked >= 5, checked)
        with open(admin_file) as f:
            expect_eq(f.read().strip(), srv.key)
    finally:
        srv.start()


def test_changes_survive_a_restart():
    """After the restart of the previous test: roles, rotations and deletions persisted."""
    expect_eq(srv.get_features({"user_id": "U1"}, key=keys["consumer"])[0], 200)
    expect_eq(srv.get_features({"user_id": "U1"}, key=keys["viewer"])[0], 403)
    expect_eq(srv.get_features({"user_id": "U1"}, key=keys["rotated key"])[0], 401)
    expect_eq(srv.get_features({"user_id": "U1"}, key=keys["deleted key"])[0], 401)
    expect_eq(srv.request("GET", "/v1/service-accounts", key=keys["admin"])[0], 200)


def test_audit_log():
    with open(os.path.join(srv.data_dir, "server.log"), encoding="utf-8", errors="replace") as f:
        log = f.read()
    lines = [l for l in log.splitlines() if "audit:" in l]
    admin_id = ids["admin"]
    root = [a for a in srv.request("GET", "/v1/service-accounts")[1]["serviceAccounts"]
            if a["name"] == "admin"][0]["id"]

    def has(pattern):
        expect(any(re.search(pattern, l) for l in lines), "no audit line matches %r" % pattern)

    has(r"audit: account=%s created workspace ads$" % root)
    has(r"audit: account=%s applied \d+ changes to workspace ads" % root)
    has(r"audit: account=%s created service account id=%s admin=false$" % (root, ids["owner"]))
    has(r"audit: account=%s created service account id=%s admin=true$" % (root, ids["admin"]))
    has(r"audit: account=%s granted role=owner workspace=ads service_account=%s$" % (root, ids["owner"]))
    has(r"audit: account=%s revoked role=any workspace=ads service_account=%s$" % (ids["owner"], ids["none"]))
    has(r"audit: account=%s rotated the key of service account id=[0-9a-f]{32}$" % root)
    has(r"audit: account=%s deleted service account id=[0-9a-f]{32}$" % root)
    has(r"audit: account=%s deleted workspace made_by_admin$" % admin_id)
    has(r"audit: account=- denied status=401 path=/ingest reason=\"missing Authorization header\"")
    has(r"audit: account=- denied status=401 path=/api/v1/feature-service/get-features reason=\"invalid API key\"")
    has(r"audit: account=%s denied status=403 path=/ingest workspace=ads reason=" % ids["viewer"])
    has(r"audit: account=%s denied status=403 path=/api/v1/feature-service/get-features workspace=ads" % ids["viewer"])
    has(r"audit: account=%s denied status=403 path=/v1/workspaces/ads/apply reason=" % ids["consumer"])
    has(r"audit: account=%s denied status=403 path=/v1/service-accounts reason=" % ids["owner"])
    for l in lines:
        for k in issued:
            expect(k not in l and k[3:] not in l, "a key in the audit line %r" % l)
    for k in issued:
        expect(k[3:] not in log, "a key in the server log")


def test_last_admin_cannot_be_deleted_and_rotating_the_admin_key_rewrites_admin_key():
    s = Server().start()
    try:
        me = s.request("GET", "/v1/service-accounts")[1]["serviceAccounts"][0]["id"]
        st, b = s.request("DELETE", "/v1/service-accounts/" + me)
        expect_eq(st, 400, b)
        expect("last admin" in b["message"], b)
        old = s.key
        rc, out, err = s.cli("service-account", "rotate-key", me)
        expect_eq(rc, 0, err)
        new = re.search(r"^API Key: (\S+)$", out, re.M).group(1)
        with open(os.path.join(s.data_dir, "admin.key")) as f:
            expect_eq(f.read().strip(), new)
        expect_eq(os.stat(os.path.join(s.data_dir, "admin.key")).st_mode & 0o777, 0o600)
        expect_eq(s.request("GET", "/v1/workspaces", key=old)[0], 401)
        s.key = new
        rc, out, err = s.cli("service-account", "create", "--name", "boss", "--admin")
        expect_eq(rc, 0, err)
        boss = re.search(r"^API Key: (\S+)$", out, re.M).group(1)
        st, b = s.request("DELETE", "/v1/service-accounts/" + me, key=boss)
        expect_eq(st, 200, b)
        expect(not os.path.exists(os.path.join(s.data_dir, "admin.key")), "admin.key of a deleted account")
        expect_eq(s.request("GET", "/v1/workspaces", key=new)[0], 401)
        # a restart does not mint a new admin while one exists
        s.stop()
        s.start()
        expect(not os.path.exists(os.path.join(s.data_dir, "admin.key")), "a new admin.key")
        expect_eq(s.request("GET", "/v1/service-accounts", key=boss)[0], 200)
    finally:
        s.cleanup()


def test_no_auth_serves_everyone_as_admin_and_says_so():
    s = Server(args=["--no-auth"]).start()
    try:
        wait_for(lambda: "authentication is disabled" in s.log_text(), 5, "the --no-auth warning")
        expect_eq(s.request("POST", "/v1/workspaces", {"name": "open"}, key=None)[0], 201)
        expect_eq(s.request("GET", "/v1/workspaces/open/definitions", key="sk_whatever")[0], 200)
        expect_eq(s.request("GET", "/v1/service-accounts", key=None)[0], 200)
        rc, out, err = s.cli("workspace", "list", key=None)
        expect(rc == 0 and "open" in out, out + err)
    finally:
        s.cleanup()


class TlsServer(Server):
    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def test_tls_listener():
    d = tempfile.mkdtemp(prefix="sluice-tls-")
    try:
        tls_checks(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def tls_checks(d):
    cert, key = make_cert(d)
    ctx = ssl.create_default_context(cafile=cert)
    urllib.request.install_opener(urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx)))
    s = TlsServer(args=["--tls-cert", cert, "--tls-key", key, "--threads", "2"]).start()
    try:
        expect_eq(s.request("GET", "/healthz", key=None)[0], 200)
        expect_eq(s.request("POST", "/v1/workspaces", {"name": "secure", "live": True})[0], 201)
        expect_eq(s.request("GET", "/v1/workspaces", key=None)[0], 401)
        # plain HTTP to the TLS port gets no answer
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % s.port, timeout=5)
            expect(False, "plain HTTP answered on the TLS port")
        except Exception:
            pass
        # the CLI over https, trusting the certificate through $SLUICE_CA_FILE
        env = {"SLUICE_CA_FILE": cert}
        rc, out, err = s.cli("apply", "--workspace", "secure", example_dir("ads"), env_extra=env)
        expect_eq(rc, 0, out + err)
        rc, out, err = s.cli("workspace", "list", env_extra=env)
        expect(rc == 0 and "secure" in out, out + err)
        # ...and refusing it without
        rc, out, err = s.cli("workspace", "list", env_extra={"SLUICE_CA_FILE": "", "SSL_CERT_FILE": "/nonexistent"})
        expect(rc != 0 and "not trusted" in err, err)
        for i in range(20):  # several connections over both loops
            expect_eq(s.request("GET", "/v1/workspaces/secure/definitions")[0], 200)
    finally:
        s.cleanup()
        urllib.request.install_opener(None)
    # a key that does not match the certificate, or only one of the two, stops the start
    os.mkdir(os.path.join(d, "other"))
    _, other = make_cert(os.path.join(d, "other"))
    for args, msg in [(["--tls-cert", cert, "--tls-key", other], "key values mismatch"),
                      (["--tls-cert", cert], "both tls-cert and tls-key"),
                      (["--tls-cert", "/nonexistent.pem", "--tls-key", key], "cannot load the certificate")]:
        p = subprocess.run([BIN, "serve", "--data-dir", os.path.join(d, "data"),
                            "--listen", "127.0.0.1:0"] + args, capture_output=True, text=True, timeout=30)
        expect(p.returncode != 0 and msg in p.stderr, (args, p.returncode, p.stderr))


run(globals())
