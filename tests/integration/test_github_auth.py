"""GitHub credentials: App installation tokens, OAuth app connections,
personal access tokens checked when a connection is created.

GitHub App: the host signs the JWT ({"iat": now-60, "exp": now+540, "iss":
app_id}, RS256) with the connection's private_key secret through
api->jwt_sign_rs256; the plugin trades it at POST
/app/installations/{id}/access_tokens for an installation token, which the
host stores and adds to requests; a 401 for an expired installation token
makes the host mint a new one and retry once; a token that expires within
oauth_refresh_threshold_s is re-minted before the job.

Skip rule (the only one in the github tests): test_app_installation_tokens
is skipped when, and only when, the host under test does not provide
api->jwt_sign_rs256 (ABI minor 2). The plugin checks that with
INGEST_API_HAS at init and logs "GitHub App auth available" or "GitHub App
auth unavailable (host lacks jwt_sign_rs256)"; the test reads that line.
"""
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import wait_for
from store_helpers import q
from test_github import (TENANT, add_connection, expected_sync_keys, github,  # noqa: F401
                         keys, start, sync)

APP_ID = 123456
INSTALLATION = 7890123
RECENT_MINT_S = 10.5  # host/oauth_refresh.c RECENT_OK_MS, plus a margin


def app_auth_available(d):
    line = d.wait_for_log(lambda e: e.get("plugin") == "github" and
                          "GitHub App auth" in e.get("msg", ""), 10)
    return "GitHub App auth available" in line["msg"]


def rsa_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key.public_key()


def token_posts(mock):
    return mock.snapshot("POST", r"^/app/installations/")


def test_app_installation_tokens(daemon_factory, pg_cluster, db_url, github):
    mock = github()
    repo = mock.add_repo("octo/app", prs=3, issues=4)
    d = start(daemon_factory, mock, repositories=["octo/app"], streams=["issues"])
    if not app_auth_available(d):
        pytest.skip("the host does not provide api->jwt_sign_rs256 yet (ABI minor 2)")
    pem, public = rsa_key()
    mock.add_app(APP_ID, public, INSTALLATION)
    cid = add_connection(d, {"app_id": str(APP_ID), "installation_id": str(INSTALLATION),
                             "private_key": pem}, auth_kind="app")

    t0 = int(time.time())
    sync(pg_cluster, db_url, d, cid, "issues")
    posts = token_posts(mock)
    assert [p.status for p in posts] == [201], [(p.path, p.status) for p in posts]
    assert posts[0].path == f"/app/installations/{INSTALLATION}/access_tokens"
    assert posts[0].headers.get("Accept") == "application/vnd.github+json"
    assert posts[0].headers.get("X-GitHub-Api-Version") == "2022-11-28"
    claims = mock.jwt_claims[-1]
    assert claims["iss"] == APP_ID and claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - (t0 - 60)) <= 5
    issued = list(mock.installation_tokens)
    gets = mock.snapshot("GET")
    assert gets and all(g.token == issued[0] for g in gets)
    assert keys(pg_cluster, db_url) == expected_sync_keys(repo, ("issues",))

    # A second job: the token is still fresh, nothing is minted.
    sync(pg_cluster, db_url, d, cid, "issues")
    assert len(token_posts(mock)) == 1

    # GitHub says 401 for the expired token: one new mint, one retry. (The
    # host lets a mint younger than 10 s satisfy every caller, so that many
    # 401s at once cause one mint: let the first one age.)
    time.sleep(RECENT_MINT_S)
    mock.expire_tokens()
    mark = time.monotonic()
    sync(pg_cluster, db_url, d, cid, "issues")
    posts = token_posts(mock)
    assert [p.status for p in posts] == [201, 201]
    after = [r for r in mock.snapshot() if r.mono >= mark]
    assert [r.status for r in after][:3] == [401, 201, after[2].status]
    assert after[2].token == list(mock.installation_tokens)[-1] and after[2].status in (200, 304)

    log = d.log_text()
    for secret in [*mock.installation_tokens, pem.splitlines()[1]]:
        assert secret not in log
    assert "ghs_" not in log


def test_app_token_refreshed_before_expiry(daemon_factory, pg_cluster, db_url, github):
    """Installation tokens last an hour; one that expires within
    oauth_refresh_threshold_s is replaced before a job uses it."""
    mock = github()
    mock.add_repo("octo/app", issues=2)
    mock.token_ttl = 120  # well inside the default 300 s threshold
    d = start(daemon_factory, mock, repositories=["octo/app"], streams=["issues"])
    if not app_auth_available(d):
        pytest.skip("the host does not provide api->jwt_sign_rs256 yet (ABI minor 2)")
    pem, public = rsa_key()
    mock.add_app(APP_ID, public, INSTALLATION)
    cid = add_connection(d, {"app_id": str(APP_ID), "installation_id": str(INSTALLATION),
                             "private_key": pem}, auth_kind="app")
    sync(pg_cluster, db_url, d, cid, "issues")
    time.sleep(RECENT_MINT_S)  # see test_app_installation_tokens
    sync(pg_cluster, db_url, d, cid, "issues")
    assert [p.status for p in token_posts(mock)] == [201, 201]
    assert not [r for r in mock.snapshot("GET") if r.status == 401], "never ran into expiry"


def test_app_with_unknown_installation_needs_reauth(daemon_factory, pg_cluster, db_url, github):
    mock = github()
    mock.add_repo("octo/app", issues=2)
    d = start(daemon_factory, mock, repositories=["octo/app"], streams=["issues"])
    if not app_auth_available(d):
        pytest.skip("the host does not provide api->jwt_sign_rs256 yet (ABI minor 2)")
    pem, public = rsa_key()
    mock.add_app(APP_ID, public, INSTALLATION)
    cid = add_connection(d, {"app_id": str(APP_ID), "installation_id": "42",
                             "private_key": pem}, auth_kind="app")
    out = sync(pg_cluster, db_url, d, cid, "issues", expect=None)
    assert out["issues"][0] != "succeeded", out
    assert [p.status for p in token_posts(mock)][:1] == [404]
    status = q(pg_cluster, db_url, "SELECT status FROM connections WHERE id = %s", (cid,))[0][0]
    assert status == "needs_reauth"
    assert not mock.snapshot("GET"), "no API request without a token"


def follow(url):
    """GET url without following redirects -> the Location header."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)
    try:
        opener.open(url, timeout=10)
    except urllib.error.HTTPError as e:
        assert e.code == 302, e.read()
        return e.headers["Location"]
    pytest.fail(f"{url} did not redirect")


def test_oauth_app_connect_and_sync(daemon_factory, pg_cluster, db_url, github):
    """POST /connect/github hands out GitHub's authorize URL (here the mock's,
    through the host-reserved oauth_authorize_url) with scope "repo read:org";
    the callback trades the code at oauth_token_url; the connection's OAuth
    token is what the sync sends."""
    mock = github()
    repo = mock.add_repo("octo/oauth", prs=2, issues=3)
    client_id, client_secret = "Iv1.8a61f9b3a7aba766", secrets.token_hex(20)
    mock.oauth_app(client_id, client_secret)
    d = start(daemon_factory, mock, repositories=["octo/oauth"], streams=["issues"],
              oauth_client_id=client_id, oauth_client_secret=client_secret,
              oauth_authorize_url=f"{mock.root}/login/oauth/authorize",
              oauth_token_url=f"{mock.root}/login/oauth/access_token")
    headers = {"X-Tenant-Id": TENANT}
    status, _, body = d.http_post("/connect/github", body={"config": {"schedule": {
        "*": {"enabled": False}}}}, headers=headers, auth=True)
    assert status == 200, body
    start_ = json.loads(body)
    url = urllib.parse.urlsplit(start_["authorize_url"])
    params = dict(urllib.parse.parse_qsl(url.query))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{mock.root}/login/oauth/authorize"
    assert params["client_id"] == client_id and params["scope"] == "repo read:org"
    assert "code_challenge" not in params  # GitHub OAuth apps: no PKCE declared
    callback = urllib.parse.urlsplit(follow(start_["authorize_url"]))
    status, _, body = d.http_get(f"{callback.path}?{callback.query}")
    assert status == 201, body
    cid = json.loads(body)["id"]
    form = mock.oauth_requests[-1]
    assert form["client_id"] == client_id and form["grant_type"] == "authorization_code"
    token = [t for t in mock.tokens if t.startswith("gho_")][0]

    sync(pg_cluster, db_url, d, cid, "issues")
    gets = [g for g in mock.snapshot("GET") if not g.path.startswith("/login/")]
    assert gets and all(g.token == token for g in gets)
    assert keys(pg_cluster, db_url) == expected_sync_keys(repo, ("issues",))
    auth = q(pg_cluster, db_url, "SELECT auth_kind FROM connections WHERE id = %s", (cid,))
    assert auth == [("oauth2",)]
    for secret in (token, client_secret):
        assert secret not in d.log_text()


def test_new_connection_is_checked_at_github(daemon_factory, github):
    """POST /connections runs check_connection: GET /rate_limit (free) with
    the new credentials; a token GitHub refuses creates no connection."""
    mock = github()
    d = start(daemon_factory, mock, repositories=["octo/any"])
    good = mock.add_token(f"ghp_{secrets.token_urlsafe(27)[:36]}")
    headers = {"X-Tenant-Id": TENANT}
    body = {"provider": "github", "auth": {"type": "token", "token": good}}
    status, _, data = d.http_post("/connections", body=body, headers=headers, auth=True)
    assert status == 201, data
    assert [(r.path, r.token) for r in mock.snapshot("GET")] == [("/rate_limit", good)]
    bad = {"provider": "github", "auth": {"type": "token", "token": "ghp_" + "x" * 36}}
    status, _, data = d.http_post("/connections", body=bad, headers=headers, auth=True)
    assert 400 <= status < 500, data
    assert "Bad credentials" in data.decode() or "credentials" in data.decode().lower()
    status, _, data = d.http_get("/connections", headers=headers, auth=True)
    listed = json.loads(data)
    items = listed.get("items") or listed.get("connections") or listed.get("data") or []
    assert len(items) == 1, listed
    wait_for(lambda: True, 0.1)


def test_app_tokens_are_minted_at_the_connections_server(daemon_factory, pg_cluster, db_url,
                                                         github):
    """A GitHub Enterprise Server connection (its config's api_base_url)
    mints its installation tokens at its own server, not at the group's."""
    mock = github()
    ghes = github(prefix="/api/v3", first_id=500000)
    repo = ghes.add_repo("corp/app", issues=3)
    d = start(daemon_factory, mock, repositories=["octo/app"], streams=["issues"])
    if not app_auth_available(d):
        pytest.skip("the host does not provide api->jwt_sign_rs256 yet (ABI minor 2)")
    pem, public = rsa_key()
    ghes.add_app(APP_ID, public, INSTALLATION)
    config = {"schedule": {"*": {"enabled": False}}, "api_base_url": ghes.url,
              "repositories": ["corp/app"]}
    cid = add_connection(d, {"app_id": str(APP_ID), "installation_id": str(INSTALLATION),
                             "private_key": pem}, auth_kind="app", config=config)
    sync(pg_cluster, db_url, d, cid, "issues")
    assert [(p.path, p.status) for p in token_posts(ghes)] == \
        [(f"/app/installations/{INSTALLATION}/access_tokens", 201)]
    assert not mock.snapshot(), "nothing at the group's api_base_url"
    assert keys(pg_cluster, db_url) == expected_sync_keys(repo, ("issues",))


def test_new_connection_is_checked_with_its_own_settings(daemon_factory, github):
    """POST /connections with a config: /rate_limit is asked at the
    connection's api_base_url; a config with an invalid setting creates no
    connection."""
    mock = github()
    ghes = github(prefix="/api/v3")
    d = start(daemon_factory, mock, repositories=["octo/any"])
    token = ghes.add_token(f"ghp_{secrets.token_urlsafe(27)[:36]}")
    headers = {"X-Tenant-Id": TENANT}
    body = {"provider": "github", "auth": {"type": "token", "token": token},
            "config": {"api_base_url": ghes.url + "/", "repositories": ["corp/api"],
                       "streams": ["issues", "pull_requests"]}}
    status, _, data = d.http_post("/connections", body=body, headers=headers, auth=True)
    assert status == 201, data
    assert [(r.path, r.token) for r in ghes.snapshot("GET")] == [("/rate_limit", token)]
    assert not mock.snapshot()
    bad = {**body, "config": {"api_base_url": ghes.url, "repositories": "not-a-list"}}
    status, _, data = d.http_post("/connections", body=bad, headers=headers, auth=True)
    assert status == 422, data
    assert len(ghes.snapshot()) == 1, "an invalid config is refused before any request"
    d.wait_for_log(lambda e: e.get("plugin") == "github" and
                   "repositories must be a list of strings" in e.get("msg", ""), 10)
    status, _, data = d.http_get("/connections", headers=headers, auth=True)
    listed = json.loads(data)
    items = listed.get("items") or listed.get("connections") or listed.get("data") or []
    assert len(items) == 1, listed
    assert token not in d.log_text()
