"""Per-connection auth kinds and plugin-minted tokens (ABI minor 2).

The fixture plugin appp (tests/plugins/app_plugin.c) declares auth.kind
TOKEN with OAUTH2 and APP in auth_kinds_also. Its mint_token signs a JWT
with api->jwt_sign_rs256, trades it at a mock of GitHub's "create an
installation access token" endpoint (tests/integration/mock_app_server.py,
which verifies the JWT with the app's public key) and stores the token with
api->secret_put. Each sync job GETs the mock API with
INGEST_HTTP_AUTH_CONNECTION, so the host picks the credentials by the
connection's own auth kind.

  - a plugin declaring the app kind without mint_token is refused at load
  - REST POST /connections takes auth_kind among the plugin's kinds (400
    otherwise), stores app credentials encrypted, and the check mints the
    first token; GET /providers lists the kinds
  - token, oauth2 and app connections of one plugin each send their own
    Authorization header
  - many concurrent jobs of a fresh app connection: one mint (single-flight)
  - a token close to expiry is re-minted before the request; a 401 forces
    one mint and one retry
  - mint_token answering EAUTH marks the connection needs_reauth with a
    reason, and nothing mints again
  - a stored kind the plugin does not accept fails the run (EUNSUPPORTED)
  - no token, JWT or private key appears in the log or in pg_dump
"""
import base64
import json
import re
import secrets
import subprocess
import time

import pytest

from conftest import wait_for
from mock_app_server import MockGitHubApp
from store_helpers import find_pg_dump, plugin_items, q, readyz

TENANT = "7a0c2f4e-1b7d-4c55-9a63-0d7e5b3f4a10"
PROVIDER = "appp"
APP_ID = "12345"
INSTALLATION = "777"
TERMINAL = ("succeeded", "dead")


# ----------------------------------------------------------------- helpers

def tok(prefix):
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def conf_text(mock, threshold_s=300, **plugin):
    opts = {"api_url": mock.api_url, "app_api_base": mock.base_url, **plugin}
    # No scheduled jobs: the tests count mints and API calls.
    return ('log_level = "debug";\njob_poll_ms = 100;\njob_lease_s = 10;\n'
            "schedule_poll_ms = 600000;\n"
            f"oauth_refresh_threshold_s = {threshold_s};\n"
            f"plugins = {{ {PROVIDER} = {{ {plugin_items(opts)} }}; }};\n")


def start(daemon_factory, mock, workers=4, **plugin):
    d = daemon_factory.start(conf_text=conf_text(mock, **plugin), plugins=[PROVIDER],
                             env={"INGEST_WORKERS": workers})
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-4000:]}")
    listed = {p["name"]: p for p in d.ctl_json("list", check=True)}
    assert listed.get(PROVIDER, {}).get("state") == "loaded", listed.get(PROVIDER)
    return d


def rest(d, method, path, body=None):
    headers = {"Authorization": f"Bearer {d.token}", "X-Tenant-Id": TENANT}
    status, hdrs, data = d.http(method, path, body=body, headers=headers)
    return status, (json.loads(data) if data and "json" in hdrs.get("Content-Type", "") else data)


def ctl_add(d, kind, secret_values):
    """`ingest-hostctl connection-add appp --auth-kind KIND` -> CompletedProcess."""
    cmd = [str(d.hostctl), "-s", d.sock, "connection-add", PROVIDER, "--tenant", TENANT,
           "--json"]
    if kind:
        cmd += ["--auth-kind", kind]
    return subprocess.run(cmd, input=json.dumps(secret_values), capture_output=True, text=True,
                          env=d.env, timeout=30)


def add(d, kind, secret_values):
    r = ctl_add(d, kind, secret_values)
    assert r.returncode == 0, f"connection-add exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)["id"]


def app_secrets(mock, **extra):
    return {"app_id": APP_ID, "installation_id": INSTALLATION, "private_key": mock.private_pem,
            **extra}


def enqueue(pg, db_url, cid, n=1, max_attempts=3):
    """n jobs on one connection, one stream each (one live job per stream)."""
    rows = q(pg, db_url,
             "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, max_attempts) "
             "SELECT %s, %s, %s, 'items' || i, %s FROM generate_series(1, %s) AS i "
             "RETURNING id::text",
             (TENANT, cid, PROVIDER, max_attempts, n))
    return [r[0] for r in rows]


def jobs(pg, db_url, ids):
    rows = q(pg, db_url, "SELECT id::text, state, attempts, coalesce(last_error, '') "
                         "FROM sync_jobs WHERE id = ANY(%s::uuid[])", (ids,))
    return {r[0]: {"state": r[1], "attempts": r[2], "last_error": r[3]} for r in rows}


def wait_jobs(pg, db_url, ids, d, states=TERMINAL, timeout=40):
    def done():
        js = jobs(pg, db_url, ids)
        return len(js) == len(ids) and all(j["state"] in states for j in js.values())
    wait_for(done, timeout, msg=f"jobs not {states} within {timeout}s: "
                                f"{jobs(pg, db_url, ids)}\n{d.log_text()[-5000:]}")
    return jobs(pg, db_url, ids)


def connection(pg, db_url, cid):
    status, reason, kind = q(pg, db_url, "SELECT status, status_reason, auth_kind "
                                         "FROM connections WHERE id = %s", (cid,))[0]
    return status, reason or "", kind


def expires_in(pg, db_url, cid):
    r = q(pg, db_url, "SELECT extract(epoch FROM token_expires_at - now()) FROM connections "
                      "WHERE id = %s", (cid,))[0][0]
    return None if r is None else float(r)


def set_expiry(pg, db_url, cid, seconds):
    q(pg, db_url, "UPDATE connections SET token_expires_at = now() + %s * interval '1 second'"
                  " WHERE id = %s", (seconds, cid))


def metric(d, name, **labels):
    status, _, body = d.http_get("/metrics")
    assert status == 200
    want = {f'{k}="{v}"' for k, v in labels.items()}
    for line in body.decode().splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)\{([^}]*)\} (\S+)$", line)
        if m and m.group(1) == name and want <= set(m.group(2).split(",")):
            return float(m.group(3))
    return 0.0


def key_lines(pem):
    """The base64 lines of a PEM key: any of them in clear is a leak."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def assert_absent(text, values, where):
    for v in values:
        for form, s in {"plain": v, "base64": base64.b64encode(v.encode()).decode()}.items():
            assert s not in text, f"a secret ({v[:8]}...) appears in {where} ({form})"


def all_secrets(mock, *extra):
    jwts = [m["jwt"] for m in mock.mints if m["jwt"]]
    return [*extra, *mock.issued, *jwts, *key_lines(mock.private_pem)]


def assert_not_leaked(d, db_url, values):
    assert_absent(d.log_text(), values, "the daemon log")
    dump = subprocess.run([find_pg_dump(), "--no-owner", db_url], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    assert "connection_secrets" in dump
    assert_absent(dump, values, "pg_dump")


@pytest.fixture
def mock():
    m = MockGitHubApp(app_id=APP_ID, installation_id=INSTALLATION).start()
    yield m
    m.stop()


# ------------------------------------------------------------------- tests

def test_app_kind_without_mint_token_is_refused(daemon_factory):
    d = daemon_factory.start(plugins=["appnomint"])
    entry = {p["name"]: p for p in d.ctl_json("list", check=True)}.get("appnomint", {})
    assert entry.get("state") == "failed", entry
    assert "mint_token" in json.dumps(entry) and "app" in json.dumps(entry), entry


def test_rest_connections_by_kind(daemon_factory, pg_cluster, db_url, mock):
    d = start(daemon_factory, mock)
    st, body = rest(d, "GET", "/providers")
    appp = {p["name"]: p for p in body["items"]}[PROVIDER]
    assert appp["auth"]["kind"] == "token" and appp["auth_kinds"] == ["token", "oauth2", "app"]

    # Kinds the plugin does not accept, and fields that do not fit the kind.
    app_auth = {"type": "app", "app_id": APP_ID, "installation_id": INSTALLATION,
                "private_key": mock.private_pem}
    bad = [({"auth_kind": "basic", "auth": {"type": "basic", "username": "u", "password": "p"}},
            "auth_kind"),
           ({"auth_kind": "aws", "auth": {"type": "aws", "access_key_id": "a",
                                          "secret_access_key": "s"}}, "auth_kind"),
           ({"auth_kind": "bogus", "auth": app_auth}, "auth_kind"),
           ({"auth_kind": 5, "auth": app_auth}, "auth_kind"),
           ({"auth": app_auth}, "auth.type"),  # default kind: token
           ({"auth_kind": "app", "auth": {"type": "token", "token": "t"}}, "auth.type"),
           ({"auth_kind": "app", "auth": {k: v for k, v in app_auth.items()
                                          if k != "private_key"}}, "auth.private_key"),
           ({"auth_kind": "app", "auth": {**app_auth, "extra": "x"}}, "auth.extra")]
    for extra, param in bad:
        st, body = rest(d, "POST", "/connections", {"provider": PROVIDER, **extra})
        assert st == 400, (extra, st, body)
        assert body["details"]["parameter"] == param, body
    assert "token, oauth2, app" in rest(d, "POST", "/connections",
                                       {"provider": PROVIDER, **bad[0][0]})[1]["message"]
    refused = ctl_add(d, "basic", {"username": "u", "password": "p"})
    assert refused.returncode != 0 and "does not accept auth_kind basic" in refused.stderr, refused
    assert ctl_add(d, "nonsense", {}).returncode != 0
    assert q(pg_cluster, db_url, "SELECT count(*) FROM connections")[0][0] == 0

    # A token connection (the default kind) and an app connection: the check
    # of the app one mints its first token through the plugin.
    pat = tok("ghp")
    mock.accept(pat)
    st, token_conn = rest(d, "POST", "/connections",
                          {"provider": PROVIDER, "auth": {"type": "token", "token": pat}})
    assert st == 201, token_conn
    st, app_conn = rest(d, "POST", "/connections",
                        {"provider": PROVIDER, "auth_kind": "app", "auth": app_auth,
                         "name": "github app"})
    assert st == 201, (app_conn, d.log_text()[-3000:])
    assert mock.mint_count == 1 and mock.mints[0]["ok"], mock.mints
    assert mock.mints[0]["installation"] == INSTALLATION
    assert mock.mints[0]["claims"]["iss"] == APP_ID

    st, one = rest(d, "GET", f"/connections/{app_conn['id']}")
    assert one["auth_kind"] == "app" and one["status"] == "active", one
    assert one["secret_fields"] == ["access_token", "app_id", "installation_id", "private_key"]
    assert one["token_expires_at"], one
    assert 3500 < expires_in(pg_cluster, db_url, app_conn["id"]) <= 3600
    assert rest(d, "GET", f"/connections/{token_conn['id']}")[1]["auth_kind"] == "token"

    # A refused app check (wrong installation) stores nothing.
    st, body = rest(d, "POST", "/connections",
                    {"provider": PROVIDER, "auth_kind": "app",
                     "auth": {**app_auth, "installation_id": "999"}})
    assert st == 422 and body["code"] == "credentials_rejected", body
    assert q(pg_cluster, db_url, "SELECT count(*) FROM connections")[0][0] == 2
    assert_not_leaked(d, db_url, all_secrets(mock, pat))


def test_each_kind_sends_its_own_credentials(daemon_factory, pg_cluster, db_url, mock):
    d = start(daemon_factory, mock)
    pat, oauth_token = tok("ghp"), tok("gho")
    mock.accept(pat)
    mock.accept(oauth_token)
    token_conn = add(d, None, {"token": pat})  # default: the plugin's own kind
    oauth_conn = add(d, "oauth2", {"access_token": oauth_token})
    app_conn = add(d, "app", app_secrets(mock))
    kinds = {c: connection(pg_cluster, db_url, c)[2] for c in (token_conn, oauth_conn, app_conn)}
    assert kinds == {token_conn: "token", oauth_conn: "oauth2", app_conn: "app"}

    ids = {c: enqueue(pg_cluster, db_url, c, n=2) for c in (token_conn, oauth_conn, app_conn)}
    js = wait_jobs(pg_cluster, db_url, sum(ids.values(), []), d)
    assert all(j["state"] == "succeeded" for j in js.values()), js

    assert mock.mint_count == 1 and len(mock.issued) == 1
    minted = mock.issued[0]
    assert mock.calls_with(pat) == [200, 200]
    assert mock.calls_with(oauth_token) == [200, 200]
    assert mock.calls_with(minted) == [200, 200]
    assert len(mock.api_calls) == 6, mock.api_calls
    rows = q(pg_cluster, db_url, "SELECT payload->>'api_status' FROM signals")
    assert sorted(r[0] for r in rows) == ["200"] * 6
    assert metric(d, "ingest_token_refreshes_total", provider=PROVIDER, kind="app",
                  outcome="ok") == 1
    assert_not_leaked(d, db_url, all_secrets(mock, pat, oauth_token))


def test_app_token_minted_once_for_concurrent_jobs(daemon_factory, pg_cluster, db_url, mock):
    mock.delay = 1.0
    d = start(daemon_factory, mock, workers=8, sync_sleep_ms=200)
    cid = add(d, "app", app_secrets(mock))
    ids = enqueue(pg_cluster, db_url, cid, n=16)
    js = wait_jobs(pg_cluster, db_url, ids, d, timeout=60)
    assert all(j["state"] == "succeeded" for j in js.values()), js
    assert mock.mint_count == 1, f"{mock.mint_count} token requests for one connection (want 1)"
    assert mock.calls_with(mock.issued[0]) == [200] * 16
    assert len(mock.api_calls) == 16
    # The jobs really waited for the one mint: several had started before it ended.
    msgs = [e.get("msg", "") for e in d.logs()]
    minted = [i for i, m in enumerate(msgs) if "access token minted" in m]
    assert len(minted) == 1, minted
    waiting = sum(1 for m in msgs[:minted[0]] if m.startswith("job started"))
    assert waiting >= 4, f"only {waiting} job(s) started before the mint finished"
    assert connection(pg_cluster, db_url, cid)[0] == "active"
    assert_not_leaked(d, db_url, all_secrets(mock))


def test_app_token_reminted_near_expiry_and_after_401(daemon_factory, pg_cluster, db_url, mock):
    d = start(daemon_factory, mock)
    # A: a working token that expires within the threshold (300 s).
    pre = tok("ghs_pre")
    mock.accept(pre)
    near = add(d, "app", app_secrets(mock, access_token=pre))
    set_expiry(pg_cluster, db_url, near, 60)
    ids = enqueue(pg_cluster, db_url, near)
    assert wait_jobs(pg_cluster, db_url, ids, d)[ids[0]]["state"] == "succeeded"
    assert mock.mint_count == 1
    assert mock.calls_with(pre) == [], "the token about to expire was used, not re-minted"
    assert mock.calls_with(mock.issued[0]) == [200]
    assert 3500 < expires_in(pg_cluster, db_url, near) <= 3600

    # B: a stored token of unknown expiry that the provider no longer takes.
    stale = tok("ghs_stale")
    revoked = add(d, "app", app_secrets(mock, access_token=stale))
    ids = enqueue(pg_cluster, db_url, revoked)
    assert wait_jobs(pg_cluster, db_url, ids, d)[ids[0]]["state"] == "succeeded"
    assert mock.mint_count == 2, "a 401 must force exactly one mint"
    assert mock.calls_with(stale) == [401]
    assert mock.calls_with(mock.issued[1]) == [200], "not retried once with the new token"
    assert [c for c in mock.api_calls if c[0] in (stale, mock.issued[1])] == [
        (stale, 401), (mock.issued[1], 200)]
    assert any("minting a new one" in e.get("msg", "") for e in d.logs())
    assert metric(d, "ingest_token_refreshes_total", provider=PROVIDER, kind="app",
                  outcome="ok") == 2
    assert_not_leaked(d, db_url, all_secrets(mock, pre, stale))


def test_mint_refused_marks_needs_reauth(daemon_factory, pg_cluster, db_url, mock):
    mock.mode = "bad_credentials"
    d = start(daemon_factory, mock)
    cid = add(d, "app", app_secrets(mock))
    ids = enqueue(pg_cluster, db_url, cid, max_attempts=1)
    js = wait_jobs(pg_cluster, db_url, ids, d)
    assert js[ids[0]]["state"] == "dead", js
    status, reason, _ = connection(pg_cluster, db_url, cid)
    assert status == "needs_reauth", (status, reason)
    assert "app credentials" in reason and "authorized again" in reason, reason
    assert mock.mint_count == 1
    assert metric(d, "ingest_token_refreshes_total", provider=PROVIDER, kind="app",
                  outcome="invalid_grant") == 1
    listed = d.ctl_json("connections", "--state", "needs_reauth", check=True)
    assert [(c["id"], c["status_reason"]) for c in listed] == [(cid, reason)], listed

    # Later jobs of the connection do not ask the provider again.
    later = enqueue(pg_cluster, db_url, cid, max_attempts=1)
    time.sleep(1.5)
    assert jobs(pg_cluster, db_url, later)[later[0]]["state"] in ("queued", "dead")
    assert mock.mint_count == 1
    assert mock.api_calls == [], "a request went out without credentials"
    assert_not_leaked(d, db_url, all_secrets(mock))


def test_stored_kind_the_plugin_does_not_accept_fails(daemon_factory, pg_cluster, db_url, mock):
    d = start(daemon_factory, mock)
    cid = q(pg_cluster, db_url,
            "INSERT INTO connections (tenant_id, provider, auth_kind) VALUES (%s, %s, 'basic') "
            "RETURNING id::text", (TENANT, PROVIDER))[0][0]
    ids = enqueue(pg_cluster, db_url, cid, max_attempts=1)
    js = wait_jobs(pg_cluster, db_url, ids, d)
    assert js[ids[0]]["state"] == "dead", js
    assert "status -5" in js[ids[0]]["last_error"], js  # INGEST_EUNSUPPORTED
    assert mock.api_calls == [] and mock.mint_count == 0
