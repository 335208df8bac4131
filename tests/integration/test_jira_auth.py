"""Jira OAuth 2.0 (3LO) connections.

POST /connect/jira hands out Atlassian's authorize URL (here the mock's,
through the host-reserved oauth_authorize_url) with the connector's scopes;
the callback trades the code at oauth_token_url; the connector's
on_authorized asks accessible-resources for the site with the new token and
keeps its cloud id and URL in the connection's config; every API call then
goes through the gateway, /ex/jira/{cloud_id}/rest/api/3/..., with the
bearer token. When Atlassian says 401 for an expired access token, the host
refreshes it once with the (rotating) refresh token and retries; the old
refresh token is then spent, and its reuse would be refused.
"""
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from store_helpers import q
from test_jira import TENANT, expected_keys, jira, keys, seed, start, sync  # noqa: F401


def follow(url):
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


def connect(d, api, config=None):
    status, _, body = d.http_post("/connect/jira", body={"config": config or {
        "schedule": {"*": {"enabled": False}}}}, headers={"X-Tenant-Id": TENANT}, auth=True)
    assert status == 200, body
    url = json.loads(body)["authorize_url"]
    callback = urllib.parse.urlsplit(follow(url))
    status, _, body = d.http_get(f"{callback.path}?{callback.query}")
    return url, status, body


def test_oauth_connect_site_lookup_and_rotation(daemon_factory, pg_cluster, db_url, jira):
    api = jira()
    seed(api)
    other = "https://other-site.atlassian.net"
    api.add_resource(url=other, name="other", scopes=["read:confluence-content.all"],
                     cloud_id="11111111-2222-3333-4444-555555555555")
    api.add_resource(name="your-domain")
    client_id, client_secret = "vN2kdQ3FzVj8", secrets.token_hex(24)
    api.oauth_app(client_id, client_secret)
    d = start(daemon_factory, api, oauth_client_id=client_id, oauth_client_secret=client_secret,
              oauth_authorize_url=f"{api.url}/authorize?audience=api.atlassian.com&"
                                  "prompt=consent",
              oauth_token_url=f"{api.url}/oauth/token")
    url, status, body = connect(d, api)
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert params["audience"] == "api.atlassian.com" and params["prompt"] == "consent"
    assert params["scope"] == "read:jira-work read:jira-user offline_access"
    assert params["client_id"] == client_id and params["response_type"] == "code"
    assert status == 201, body
    cid = json.loads(body)["id"]
    assert api.oauth_posts[-1]["grant_type"] == "authorization_code"
    # on_authorized: the site with a Jira scope, kept in the config.
    cfg = q(pg_cluster, db_url, "SELECT config FROM connections WHERE id = %s", (cid,))[0][0]
    assert cfg["cloud_id"] == api.cloud_id and cfg["site_url"] == api.site
    first = api.tokens_issued[-1]
    res = api.requests_to("/oauth/token/accessible-resources")
    assert [r.header("Authorization") for r in res] == [f"Bearer {first}"]

    sync(pg_cluster, db_url, d, cid)
    assert keys(pg_cluster, db_url) == expected_keys(api)
    jira_calls = [r for r in api.snapshot() if "/rest/api/3/" in r.path]
    assert jira_calls and all(r.path.startswith(f"/ex/jira/{api.cloud_id}/rest/api/3/")
                              for r in jira_calls)
    assert all(r.header("Authorization") == f"Bearer {first}" for r in jira_calls)

    # The access token expires: 401, one refresh (rotating), one retry.
    before = keys(pg_cluster, db_url)
    time.sleep(10.5)  # the host lets a very recent refresh satisfy callers
    api.expire_access_tokens()
    mark = time.monotonic()
    api.tick(120)
    api.edit(next(iter(api.issues.values())), "After expiry")
    sync(pg_cluster, db_url, d, cid)
    refreshes = [p for p in api.oauth_posts if p.get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1
    assert api.refresh_tokens[refreshes[0]["refresh_token"]] == "used"
    after = [r for r in api.snapshot() if r.mono >= mark and "/rest/api/3/" in r.path]
    assert after[0].status == 401
    second = api.tokens_issued[-1]
    assert second != first and all(r.header("Authorization") == f"Bearer {second}"
                                   for r in after[1:])
    assert keys(pg_cluster, db_url) == before | expected_keys(api)
    log = d.log_text()
    for secret in (first, second, client_secret, refreshes[0]["refresh_token"]):
        assert secret not in log


def test_oauth_grant_without_a_jira_site_is_refused(daemon_factory, pg_cluster, db_url, jira):
    api = jira()
    api.add_resource(url="https://wiki.atlassian.net", scopes=["read:confluence-content.all"])
    client_id, client_secret = "vN2kdQ3FzVj8", secrets.token_hex(24)
    api.oauth_app(client_id, client_secret)
    d = start(daemon_factory, api, oauth_client_id=client_id, oauth_client_secret=client_secret,
              oauth_authorize_url=f"{api.url}/authorize",
              oauth_token_url=f"{api.url}/oauth/token")
    _, status, body = connect(d, api)
    assert 400 <= status < 600 and status != 201, body
    assert q(pg_cluster, db_url, "SELECT count(*) FROM connections")[0][0] == 0
