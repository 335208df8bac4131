"""The operator REST API: auth, tenant isolation, connections (checked through
the plugin), the OAuth2 connect flow, manual sync, reads with keyset
pagination, dead-letter replay, and the OpenAPI document.

Fixture plugins (tests/plugins/rest_plugin.c): restp (OAuth2 + PKCE,
webhooks), restt (token / API key), restb (basic), resta (AWS). Each one's
check_connection accepts only known-good credentials.
"""
import base64
import json
import os
import shutil
import subprocess
import urllib.parse
import uuid
from pathlib import Path

import pytest

from conftest import wait_for
from mock_oauth_server import MockOAuthServer
from store_helpers import find_pg_dump, q, readyz

REPO = Path(__file__).resolve().parents[2]
TENANT_A = "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
TENANT_B = "9e8d7c6b-5a49-4838-a726-15f4e3d2c1b0"
PLUGINS = ["restp", "restt", "restb", "resta"]
GOOD = {
    "restt": {"type": "token", "token": "good-token"},
    "restb": {"type": "basic", "username": "operator", "password": "good-password"},
    "resta": {"type": "aws", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "good-secret",
              "session_token": "session-tok-123"},
    "restp": {"type": "token", "token": "good-token"},
}

# Every operator route the daemon answers (method, path template).
ROUTES = [
    ("GET", "/providers"), ("POST", "/connect/{provider}"),
    ("GET", "/connect/{provider}/callback"), ("POST", "/connections"),
    ("GET", "/connections"), ("GET", "/connections/{id}"), ("DELETE", "/connections/{id}"),
    ("POST", "/sync/{provider}"), ("GET", "/jobs"), ("GET", "/signals"),
    ("GET", "/deadletters"), ("POST", "/deadletters/{id}/replay"), ("GET", "/openapi.json"),
    ("GET", "/docs"), ("GET", "/docs/{asset}"), ("GET", "/healthz"), ("GET", "/readyz"),
    ("GET", "/metrics"), ("POST", "/webhooks/{provider}"),
    ("POST", "/webhooks/{provider}/{connection_id}"),
]
OPEN = {"/connect/{provider}/callback", "/docs", "/docs/{asset}", "/healthz", "/readyz",
        "/metrics", "/webhooks/{provider}", "/webhooks/{provider}/{connection_id}"}


# ------------------------------------------------------------------ helpers

class Api:
    def __init__(self, d):
        self.d = d

    def call(self, method, path, body=None, tenant=TENANT_A, token="default", params=None,
             headers=None):
        h = dict(headers or {})
        if token == "default":
            token = self.d.token
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if tenant is not None:
            h["X-Tenant-Id"] = tenant
        if params:
            path += "?" + urllib.parse.urlencode(params)
        status, hdrs, data = self.d.http(method, path, body=body, headers=h)
        ctype = hdrs.get("Content-Type", "")
        parsed = json.loads(data) if data and "json" in ctype else data
        return status, hdrs, parsed

    def ok(self, method, path, expect=200, **kw):
        status, _, body = self.call(method, path, **kw)
        assert status == expect, (method, path, status, body)
        return body

    def create(self, provider, auth=None, tenant=TENANT_A, **extra):
        body = {"provider": provider, "auth": auth or GOOD[provider], **extra}
        return self.ok("POST", "/connections", 201, body=body, tenant=tenant)["id"]

    def all_pages(self, path, params=None, tenant=TENANT_A, between=None):
        """Follow next_cursor to the end; between(page_no) runs after each page."""
        items, params, n = [], dict(params or {}), 0
        while True:
            page = self.ok("GET", path, params=params, tenant=tenant)
            items += page["items"]
            n += 1
            if between:
                between(n)
            if not page["next_cursor"]:
                return items, n
            params["cursor"] = page["next_cursor"]


def problem_of(status_hdrs_body, status, param=None):
    st, hdrs, body = status_hdrs_body
    assert st == status, (st, body)
    assert hdrs.get("Content-Type", "").startswith("application/problem+json"), hdrs
    assert {"code", "message"} <= set(body), body
    if param:
        assert body.get("details", {}).get("parameter") == param, body
        assert param in body["message"] or param.split(".")[-1] in body["message"], body
    return body


def rest_conf(oauth=None, extra=""):
    restp = ""
    if oauth:
        restp = (f'restp = {{ oauth_client_id = "{oauth.client_id}"; '
                 f'oauth_client_secret = "{oauth.client_secret}"; '
                 f'oauth_authorize_url = "{oauth.url}/authorize"; '
                 f'oauth_token_url = "{oauth.url}/token"; }};')
    # The scheduler must not add jobs of its own while tests count them.
    return (f'log_level = "debug";\nschedule_poll_ms = 600000;\njob_poll_ms = 100;\n{extra}\n'
            f"plugins = {{ {restp} }};\n")


def start(daemon_factory, oauth=None, env=None, extra=""):
    d = daemon_factory.start(conf_text=rest_conf(oauth, extra), plugins=PLUGINS, env=env)
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-3000:]}")
    return Api(d)


@pytest.fixture
def oauth():
    server = MockOAuthServer().start()
    yield server
    server.stop()


@pytest.fixture
def api(daemon_factory, oauth):
    return start(daemon_factory, oauth)


def insert_signals(pg, db_url, tenant, n, source="restt", kind="k", connection=None,
                   start_us=1_700_000_000_000_000, step_us=1_000_000, prefix="s"):
    """n signals with occurred_at start, start+step, ...; returns their ids."""
    rows = q(pg, db_url,
             "INSERT INTO signals (tenant_id, connection_id, source, kind, occurred_at,"
             " dedupe_key, payload, provenance)"
             " SELECT %s, %s, %s, %s, to_timestamp((%s + g * %s) / 1e6), %s || g, '{}', '{}'"
             " FROM generate_series(0, %s - 1) g RETURNING id::text",
             (tenant, connection, source, kind, start_us, step_us, prefix, n))
    return [r[0] for r in rows]


# -------------------------------------------------------------------- auth

def path_for(template, cid=None):
    return (template.replace("{provider}", "restt").replace("{id}", cid or str(uuid.uuid4()))
            .replace("{asset}", "swagger-ui.css")
            .replace("{connection_id}", str(uuid.uuid4())))


def test_every_operator_route_needs_the_bearer_token(api):
    for method, template in ROUTES:
        if template in OPEN:
            continue
        path = path_for(template)
        problem_of(api.call(method, path, token=None), 401)
        problem_of(api.call(method, path, token="wrong-" + api.d.token), 401)
        problem_of(api.call(method, path, token=api.d.token + "x"), 401)
        problem_of(api.call(method, path, headers={"Authorization": "Basic Zm9vOmJhcg=="},
                            token=None), 401)
    # Health, metrics, the OAuth callback and the docs page stay open.
    for path in ("/healthz", "/readyz", "/metrics", "/docs"):
        assert api.call("GET", path, token=None, tenant=None)[0] == 200, path
    st, _, body = api.call("GET", "/connect/restp/callback", token=None, tenant=None,
                           params={"code": "x", "state": "forged"})
    assert st == 400 and body["details"]["parameter"] == "state"


def test_api_disabled_without_operator_token(daemon_factory):
    d = daemon_factory.start(conf_text=rest_conf(), plugins=["restt"],
                             env={"INGEST_OPERATOR_TOKEN": None})
    api = Api(d)
    body = problem_of(api.call("GET", "/providers", token="anything"), 503)
    assert body["message"] == "operator API disabled: set operator_token"
    problem_of(api.call("GET", "/connections", token=None), 503)
    assert api.call("GET", "/healthz", token=None)[0] == 200


def test_tenant_header_is_required_and_checked(api):
    for method, template in ROUTES:
        if template in OPEN or template in ("/providers", "/openapi.json"):
            continue
        path = path_for(template)
        problem_of(api.call(method, path, tenant=None), 400, "X-Tenant-Id")
        problem_of(api.call(method, path, tenant="not-a-uuid"), 400, "X-Tenant-Id")


def test_unknown_routes_and_methods(api):
    problem_of(api.call("GET", "/nope"), 404)
    st, hdrs, _ = api.call("PUT", "/connections")
    assert st == 405 and "GET" in hdrs["Allow"] and "POST" in hdrs["Allow"]


# --------------------------------------------------------------- providers

def test_providers_lists_every_loaded_plugin(api):
    body = api.ok("GET", "/providers", tenant=None)
    by_name = {p["name"]: p for p in body["items"]}
    assert set(by_name) == set(PLUGINS)
    p = by_name["restp"]
    assert p["version"] == "1.2.3"
    assert p["auth"] == {"kind": "oauth2", "scopes": ["read", "write"], "pkce": True}
    assert [s["name"] for s in p["streams"]] == ["items", "events"]
    assert p["streams"][0]["incremental"] is True and p["streams"][1]["incremental"] is False
    assert p["webhooks"] is True and by_name["restt"]["webhooks"] is False
    assert by_name["restb"]["auth"]["kind"] == "basic"
    assert by_name["resta"]["auth"]["kind"] == "aws"
    problem_of(api.call("GET", "/providers", params={"x": "1"}), 400, "x")


# ------------------------------------------------------------- connections

def test_connections_are_checked_stored_encrypted_and_never_echoed(api, pg_cluster, db_url):
    ids = {name: api.create(name, name=f"label {name}", config={"org": "acme"})
           for name in GOOD}
    api_key_id = api.create("restt", {"type": "api_key", "api_key": "good-key"})
    secret_values = [v for auth in GOOD.values() for k, v in auth.items() if k != "type"]
    secret_values += ["good-key"]

    # Refused credentials are never stored.
    before = q(pg_cluster, db_url, "SELECT count(*) FROM connections")[0][0]
    for provider, auth in [("restt", {"type": "token", "token": "bad-token-zzz"}),
                           ("restb", {"type": "basic", "username": "operator",
                                      "password": "wrong-pw-zzz"}),
                           ("restp", {"type": "token", "token": "bad-oauth-zzz"})]:
        body = problem_of(api.call("POST", "/connections",
                                   body={"provider": provider, "auth": auth}), 422)
        assert body["code"] == "credentials_rejected"
        assert "zzz" not in json.dumps(body)
    assert q(pg_cluster, db_url, "SELECT count(*) FROM connections")[0][0] == before
    assert q(pg_cluster, db_url,
             "SELECT count(*) FROM connection_secrets s LEFT JOIN connections c"
             " ON c.id = s.connection_id WHERE c.id IS NULL")[0][0] == 0

    # Reads show secret names, never values.
    one = api.ok("GET", f"/connections/{ids['resta']}")
    assert one["status"] == "active" and one["auth_kind"] == "aws"
    assert one["secret_fields"] == ["access_key_id", "secret_access_key", "session_token"]
    assert one["config"] == {"org": "acme"} and one["name"] == "label resta"
    assert api.ok("GET", f"/connections/{ids['restp']}")["secret_fields"] == ["access_token"]
    listed = api.ok("GET", "/connections")
    assert {c["id"] for c in listed["items"]} == set(ids.values()) | {api_key_id}
    responses = json.dumps([listed, one])
    for v in secret_values:
        assert v not in responses

    # Nothing in a dump of the whole database is a plaintext token.
    dump = subprocess.run([find_pg_dump(), "--no-owner", db_url], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    assert "connection_secrets" in dump
    for v in secret_values:
        assert v not in dump, f"plaintext secret {v!r} in pg_dump"
    for v in secret_values:
        assert v not in api.d.log_text()


def test_connection_bad_bodies(api):
    cases = [
        ({"auth": GOOD["restt"]}, "provider"),
        ({"provider": "nope", "auth": GOOD["restt"]}, "provider"),
        ({"provider": "restt"}, "auth"),
        ({"provider": "restt", "auth": {"type": "basic", "username": "a", "password": "b"}},
         "auth.type"),
        ({"provider": "restt", "auth": {"type": "token"}}, "auth.token"),
        ({"provider": "restt", "auth": {"type": "token", "token": ""}}, "auth.token"),
        ({"provider": "restt", "auth": {"type": "token", "token": "t", "extra": "x"}},
         "auth.extra"),
        ({"provider": "restb", "auth": {"type": "basic", "username": "a"}}, "auth.password"),
        ({"provider": "resta", "auth": {"type": "aws", "access_key_id": "a"}},
         "auth.secret_access_key"),
        ({"provider": "restt", "auth": GOOD["restt"], "config": []}, "config"),
        ({"provider": "restt", "auth": GOOD["restt"], "name": 5}, "name"),
        ({"provider": "restt", "auth": GOOD["restt"], "tenant": TENANT_B}, "tenant"),
    ]
    for body, param in cases:
        problem_of(api.call("POST", "/connections", body=body), 400, param)
    problem_of(api.call("POST", "/connections", body="{not json",
                        headers={"Content-Type": "application/json"}), 400, "body")
    problem_of(api.call("POST", "/connections", body="[]",
                        headers={"Content-Type": "application/json"}), 400, "body")
    st, _, _ = api.call("POST", "/connections", body=b"provider=restt",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 415
    problem_of(api.call("GET", "/connections/not-a-uuid"), 400, "id")
    problem_of(api.call("DELETE", "/connections/not-a-uuid"), 400, "id")
    problem_of(api.call("GET", "/connections", params={"status": "weird"}), 400, "status")


def test_tenants_never_see_each_others_rows(api, pg_cluster, db_url):
    a = api.create("restt")
    b = api.create("restt", tenant=TENANT_B)
    insert_signals(pg_cluster, db_url, TENANT_A, 3, connection=a, prefix="a")
    insert_signals(pg_cluster, db_url, TENANT_B, 2, connection=b, prefix="b")
    for cid, other in ((a, TENANT_B), (b, TENANT_A)):
        problem_of(api.call("GET", f"/connections/{cid}", tenant=other), 404)
        problem_of(api.call("DELETE", f"/connections/{cid}", tenant=other), 404)
        problem_of(api.call("POST", "/sync/restt", body={"connection_id": cid}, tenant=other),
                   404)
    assert [c["id"] for c in api.ok("GET", "/connections", tenant=TENANT_B)["items"]] == [b]
    assert len(api.ok("GET", "/signals")["items"]) == 3
    assert len(api.ok("GET", "/signals", tenant=TENANT_B)["items"]) == 2
    assert api.ok("GET", "/signals", tenant=TENANT_B, params={"connection_id": a})["items"] == []
    # Both still exist: nothing was deleted across tenants.
    assert q(pg_cluster, db_url, "SELECT count(*) FROM connections")[0][0] == 2
    # A cursor from one tenant's list is refused in another's.
    insert_signals(pg_cluster, db_url, TENANT_A, 3, prefix="more")
    cursor = api.ok("GET", "/signals", params={"limit": 2})["next_cursor"]
    problem_of(api.call("GET", "/signals", tenant=TENANT_B,
                        params={"limit": 2, "cursor": cursor}), 400, "cursor")


def test_delete_connection(api, pg_cluster, db_url):
    cid = api.create("restt")
    assert api.call("DELETE", f"/connections/{cid}")[0] == 204
    problem_of(api.call("GET", f"/connections/{cid}"), 404)
    problem_of(api.call("DELETE", f"/connections/{cid}"), 404)
    assert q(pg_cluster, db_url, "SELECT count(*) FROM connection_secrets")[0][0] == 0


# --------------------------------------------------------------- pagination

def test_signals_pages_are_stable_under_inserts(api, pg_cluster, db_url):
    ids = insert_signals(pg_cluster, db_url, TENANT_A, 11)
    insert_signals(pg_cluster, db_url, TENANT_B, 5, prefix="other")
    # Same timestamp for several rows: the id breaks the tie.
    ids += insert_signals(pg_cluster, db_url, TENANT_A, 4, start_us=1_700_000_005_000_000,
                          step_us=0, prefix="tie")
    counter = iter(range(1000))

    def insert_newer(_page):
        insert_signals(pg_cluster, db_url, TENANT_A, 2, start_us=1_800_000_000_000_000,
                       prefix=f"new{next(counter)}-")

    items, pages = api.all_pages("/signals", {"limit": 3}, between=insert_newer)
    assert pages == 5
    got = [i["id"] for i in items]
    assert len(got) == len(set(got)) == 15
    assert set(got) == set(ids)
    keys = [(i["occurred_at"], i["id"]) for i in items]
    times = [i["occurred_at"] for i in items]
    assert times == sorted(times, reverse=True)
    assert len(set(keys)) == len(keys)


def test_list_parameters_are_validated(api, pg_cluster, db_url):
    insert_signals(pg_cluster, db_url, TENANT_A, 4)
    for path in ("/signals", "/jobs", "/deadletters", "/connections"):
        problem_of(api.call("GET", path, params={"limit": 0}), 400, "limit")
        problem_of(api.call("GET", path, params={"limit": 201}), 400, "limit")
        problem_of(api.call("GET", path, params={"limit": "ten"}), 400, "limit")
        problem_of(api.call("GET", path, params={"bogus": "1"}), 400, "bogus")
        problem_of(api.call("GET", path, params={"cursor": "AAAA"}), 400, "cursor")
        problem_of(api.call("GET", f"{path}?limit=1&limit=2"), 400, "limit")
        assert len(api.ok("GET", path, params={"limit": 200})["items"]) <= 200
    for path in ("/signals", "/jobs", "/deadletters"):
        problem_of(api.call("GET", path, params={"since": "yesterday"}), 400, "since")
        problem_of(api.call("GET", path, params={"until": "2024-13-01T00:00:00Z"}), 400, "until")
    for path in ("/signals", "/jobs"):
        problem_of(api.call("GET", path, params={"connection_id": "x"}), 400, "connection_id")
    problem_of(api.call("GET", "/jobs", params={"state": "sleeping"}), 400, "state")
    problem_of(api.call("GET", "/deadletters", params={"kind": "other"}), 400, "kind")
    # A cursor with one byte changed is refused.
    cursor = api.ok("GET", "/signals", params={"limit": 1})["next_cursor"]
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[-1] ^= 1
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    problem_of(api.call("GET", "/signals", params={"limit": 1, "cursor": forged}), 400,
               "cursor")
    # A cursor of one list is refused by another.
    problem_of(api.call("GET", "/jobs", params={"cursor": cursor}), 400, "cursor")


def test_signal_filters(api, pg_cluster, db_url):
    cid = api.create("restt")
    insert_signals(pg_cluster, db_url, TENANT_A, 5, source="restt", kind="a", connection=cid)
    insert_signals(pg_cluster, db_url, TENANT_A, 3, source="restb", kind="b", prefix="b")
    assert len(api.ok("GET", "/signals", params={"source": "restb"})["items"]) == 3
    assert len(api.ok("GET", "/signals", params={"kind": "a"})["items"]) == 5
    assert len(api.ok("GET", "/signals", params={"connection_id": cid})["items"]) == 5
    # start 1_700_000_000 s, one per second: [+1 s, +3 s) holds two of each.
    items = api.ok("GET", "/signals", params={"since": "2023-11-14T22:13:21Z",
                                              "until": "2023-11-14T22:13:23Z"})["items"]
    assert len(items) == 4


# ------------------------------------------------------------------- sync

def test_manual_sync_queues_jobs_and_jobs_are_listed(api, pg_cluster, db_url):
    c1 = api.create("restt")
    c2 = api.create("restt")
    api.create("restt", tenant=TENANT_B)
    out = api.ok("POST", "/sync/restt", 202, body={"connection_id": c1, "mode": "full"})
    assert len(out["job_ids"]) == 2
    assert {j["kind"] for j in out["jobs"]} == {"full"}
    rows = q(pg_cluster, db_url, "SELECT tenant_id::text, connection_id::text, kind"
             " FROM sync_jobs WHERE id = ANY(%s::uuid[])", (out["job_ids"],))
    assert {(r[0], r[1], r[2]) for r in rows} == {(TENANT_A, c1, "full")}

    wait_for(lambda: q(pg_cluster, db_url, "SELECT count(*) FROM sync_jobs WHERE state"
                       " IN ('queued', 'running', 'retrying')")[0][0] == 0, 20)
    every = api.ok("POST", "/sync/restt", 202)  # no body: every connection of the tenant
    assert len(every["job_ids"]) == 4
    assert {j["connection_id"] for j in every["jobs"]} == {c1, c2}

    jobs, pages = api.all_pages("/jobs", {"limit": 2, "provider": "restt"})
    assert pages == 3 and len({j["id"] for j in jobs}) == 6
    assert all(j["provider"] == "restt" for j in jobs)
    assert len(api.ok("GET", "/jobs", tenant=TENANT_B)["items"]) == 0
    assert {j["connection_id"] for j in api.ok("GET", "/jobs", params={"connection_id": c2})
            ["items"]} == {c2}
    wait_for(lambda: len(api.ok("GET", "/jobs", params={"state": "succeeded"})["items"]) == 6,
             20)
    assert api.ok("GET", "/jobs", params={"since": "2999-01-01T00:00:00Z"})["items"] == []

    problem_of(api.call("POST", "/sync/restt", body={"mode": "sometimes"}), 400, "mode")
    problem_of(api.call("POST", "/sync/restt", body={"connection_id": "abc"}), 400,
               "connection_id")
    problem_of(api.call("POST", "/sync/restt", body={"connection_id": c1, "x": 1}), 400, "x")
    problem_of(api.call("POST", "/sync/nope", body={}), 404)
    problem_of(api.call("POST", "/sync/restt", body={"connection_id": str(uuid.uuid4())}), 404)


# ------------------------------------------------------------- dead letters

def test_deadletters_list_and_replay(api, pg_cluster, db_url):
    cid = api.create("restt")
    job = q(pg_cluster, db_url,
            "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, state, attempts)"
            " VALUES (%s, %s, 'restt', 'items', 'dead', 4) RETURNING id::text",
            (TENANT_A, cid))[0][0]
    dl = q(pg_cluster, db_url,
           "INSERT INTO dead_letters (kind, tenant_id, provider, connection_id, ref_id, error,"
           " attempts) VALUES ('job', %s, 'restt', %s, %s, 'boom', 4) RETURNING id::text",
           (TENANT_A, cid, job))[0][0]
    for i in range(4):
        q(pg_cluster, db_url, "INSERT INTO dead_letters (kind, tenant_id, provider, error)"
          " VALUES ('webhook', %s, 'restb', %s)", (TENANT_A, f"e{i}"))
    other = q(pg_cluster, db_url, "INSERT INTO dead_letters (kind, tenant_id, provider, error)"
              " VALUES ('webhook', %s, 'restt', 'x') RETURNING id::text", (TENANT_B,))[0][0]

    items, pages = api.all_pages("/deadletters", {"limit": 2})
    assert pages == 3 and len(items) == 5 and other not in {i["id"] for i in items}
    assert [i["id"] for i in api.ok("GET", "/deadletters", params={"kind": "job"})["items"]] \
        == [dl]
    assert len(api.ok("GET", "/deadletters", params={"provider": "restb"})["items"]) == 4

    problem_of(api.call("POST", f"/deadletters/{other}/replay"), 404)
    problem_of(api.call("POST", f"/deadletters/{dl}/replay", tenant=TENANT_B), 404)
    problem_of(api.call("POST", "/deadletters/nope/replay"), 400, "id")
    out = api.ok("POST", f"/deadletters/{dl}/replay", 202)
    assert out == {"id": dl, "replayed": 1}
    assert q(pg_cluster, db_url, "SELECT replayed_at IS NOT NULL FROM dead_letters"
             " WHERE id = %s", (other,))[0][0] is False
    problem_of(api.call("POST", f"/deadletters/{dl}/replay"), 409)
    wait_for(lambda: q(pg_cluster, db_url, "SELECT state FROM sync_jobs WHERE id = %s",
                       (job,))[0][0] == "succeeded", 20)


# -------------------------------------------------------------------- OAuth

def follow_authorize(url):
    """The user's browser at the mock: returns the redirect's path + query."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)
    try:
        opener.open(url, timeout=10)
    except urllib.error.HTTPError as e:
        assert e.code == 302, e.read()
        loc = urllib.parse.urlsplit(e.headers["Location"])
        return f"{loc.path}?{loc.query}"
    pytest.fail("the mock authorization server did not redirect")


def test_oauth_connect_flow(api, oauth, pg_cluster, db_url):
    # Slack-like extras the plugin's on_authorized keeps (ABI minor 3).
    oauth.extra_reply = {"team": {"id": "T0001", "name": "Acme"},
                         "authed_user": {"id": "U1", "access_token": "xoxp-user-secret"}}
    start_ = api.ok("POST", "/connect/restp",
                    body={"name": "my org", "config": {"org": "x", "drop_me": 1}})
    url = urllib.parse.urlsplit(start_["authorize_url"])
    params = dict(urllib.parse.parse_qsl(url.query))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{oauth.url}/authorize"
    assert params["response_type"] == "code" and params["client_id"] == oauth.client_id
    assert params["redirect_uri"] == f"{api.d.url}/connect/restp/callback"
    assert params["scope"] == "read write"
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["state"] == start_["state"]
    assert oauth.client_secret not in json.dumps(start_)

    callback = follow_authorize(start_["authorize_url"])
    # No bearer token, no tenant header: the state says whose it is.
    st, _, body = api.call("GET", callback, token=None, tenant=None)
    assert st == 201, body
    cid = body["id"]
    token_req = [r for r in oauth.requests if r[1] == "/token"][-1][2]
    assert token_req["code_verifier"] and token_req["redirect_uri"] == params["redirect_uri"]

    conn = api.ok("GET", f"/connections/{cid}")
    assert conn["status"] == "active" and conn["auth_kind"] == "oauth2"
    assert conn["name"] == "my org" and conn["config"] == {"org": "x", "team_id": "T0001"}
    assert conn["secret_fields"] == ["access_token", "refresh_token", "user_token"]
    assert conn["token_expires_at"] is not None
    problem_of(api.call("GET", f"/connections/{cid}", tenant=TENANT_B), 404)
    dump = subprocess.run([find_pg_dump(), db_url], capture_output=True, text=True, timeout=60,
                          check=True).stdout
    for secret in (oauth.access_token, oauth.refresh_token, oauth.client_secret,
                   token_req["code_verifier"], "xoxp-user-secret"):
        assert secret not in dump
        assert secret not in api.d.log_text()

    # The code is single-use at the provider; the state's provider is checked.
    problem_of(api.call("GET", callback, token=None, tenant=None), 400)
    problem_of(api.call("GET", callback.replace("/connect/restp/", "/connect/restt/"),
                        token=None, tenant=None), 400, "state")
    problem_of(api.call("GET", "/connect/restp/callback", token=None, tenant=None,
                        params={"state": start_["state"]}), 400, "code")
    problem_of(api.call("GET", "/connect/restp/callback", token=None, tenant=None,
                        params={"error": "access_denied", "state": "x"}), 400)


def test_oauth_connect_errors(api, oauth):
    problem_of(api.call("POST", "/connect/restt"), 409)
    problem_of(api.call("POST", "/connect/nope"), 404)
    problem_of(api.call("POST", "/connect/restp", body={"bogus": 1}), 400, "bogus")
    problem_of(api.call("POST", "/connect/restp", tenant=None), 400, "X-Tenant-Id")
    oauth.deny = True
    start_ = api.ok("POST", "/connect/restp")
    callback = follow_authorize(start_["authorize_url"])
    body = problem_of(api.call("GET", callback, token=None, tenant=None), 400)
    assert body["code"] == "oauth_denied"


def test_oauth_reply_refused_by_the_plugin(api, oauth, pg_cluster, db_url):
    """on_authorized refusing the token reply: 422, and no connection left."""
    oauth.extra_reply = {"ok": False}
    start_ = api.ok("POST", "/connect/restp", body={"name": "refused"})
    callback = follow_authorize(start_["authorize_url"])
    body = problem_of(api.call("GET", callback, token=None, tenant=None), 422)
    assert body["code"] == "credentials_rejected"
    assert q(pg_cluster, db_url, "SELECT count(*) FROM connections WHERE name = 'refused'",
             ())[0][0] == 0


def test_oauth_not_configured(daemon_factory):
    api = start(daemon_factory)
    body = problem_of(api.call("POST", "/connect/restp"), 503)
    assert "oauth_client_id" in body["message"]


# ------------------------------------------------------------------ OpenAPI

def npm_prefix():
    return Path(os.environ.get("INGEST_NPM_PREFIX",
                               Path.home() / ".cache" / "ingest-host" / "npm"))


def validator_dir():
    """A directory whose node_modules has the validator (installed if missing)."""
    prefix = npm_prefix()
    pkg = prefix / "node_modules" / "@seriousme" / "openapi-schema-validator"
    if not pkg.is_dir():
        if not shutil.which("npm"):
            pytest.fail("npm is needed to validate the OpenAPI document (see .ci/run)")
        r = subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                            "@seriousme/openapi-schema-validator@2"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    return prefix


def test_openapi_document_is_valid_and_complete(api, tmp_path):
    st, hdrs, doc = api.call("GET", "/openapi.json", tenant=None)
    assert st == 200 and doc["openapi"].startswith("3.1")
    assert doc == json.loads((REPO / "etc" / "openapi.json").read_text())
    problem_of(api.call("GET", "/openapi.json", token=None), 401)

    prefix = validator_dir()
    script = prefix / "openapi_check.mjs"
    shutil.copyfile(REPO / "tests" / "integration" / "openapi_check.mjs", script)
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(doc))
    r = subprocess.run(["node", str(script), str(path)], capture_output=True, text=True,
                       timeout=60, cwd=prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["valid"] is True

    # Every route the server answers is documented, and nothing more.
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops
                  if m in ("get", "post", "put", "delete", "patch")}
    assert documented == set(ROUTES)
    # ... and every documented route is answered (not 404 "no such route").
    for method, template in ROUTES:
        st, _, body = api.call(method, path_for(template, str(uuid.uuid4())))
        assert not (st == 404 and isinstance(body, dict) and body.get("code") == "not_found"
                    and body.get("message") == "no such route"), (method, template)
    open_ops = {(m.upper(), p) for p, ops in doc["paths"].items() for m, op in ops.items()
                if op.get("security") == []}
    assert {p for _, p in open_ops} == OPEN


def test_docs_page(api):
    st, hdrs, body = api.call("GET", "/docs", token=None, tenant=None)
    assert st == 200 and hdrs["Content-Type"].startswith("text/html")
    assert b"/openapi.json" in body and b"swagger-ui-bundle.js" in body
    problem_of(api.call("GET", "/docs/other.js", token=None, tenant=None), 404)


def test_docs_assets_served_from_docs_dir(daemon_factory, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "swagger-ui-bundle.js").write_text("window.SwaggerUIBundle = function () {};\n")
    api = start(daemon_factory, extra=f'docs_dir = "{docs}";')
    st, hdrs, body = api.call("GET", "/docs/swagger-ui-bundle.js", token=None, tenant=None)
    assert st == 200 and body.startswith(b"window.SwaggerUIBundle")
    assert hdrs["Content-Type"].startswith("text/javascript")
    problem_of(api.call("GET", "/docs/swagger-ui.css", token=None, tenant=None), 404)
