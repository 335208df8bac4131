"""Slack credentials: the OAuth v2 installation, token rotation, user tokens
and the connection check.

  - POST /connect/slack hands out Slack's authorize URL (the mock's, through
    the host-reserved oauth_authorize_url) with the descriptor's scopes; the
    callback trades the code at oauth.v2.access; the host stores the bot
    token (access_token, refresh_token, expires_in) and the plugin's
    on_authorized keeps authed_user's token as user_token (and its refresh
    token) and the workspace (team id and name, bot user, app) in the
    connection's settings;
  - rotation: a bot token about to expire is renewed by the host with
    grant_type=refresh_token; the old refresh token is revoked and the new
    one used next time; Slack's HTTP 200 {"ok": false, "error":
    "invalid_refresh_token"} makes the connection needs_reauth;
  - Slack answering token_expired (HTTP 200, ok:false) to an API call: the
    plugin marks the token expired, the job's next attempt renews it first;
  - token "user" in a connection's settings: calls carry the user token;
  - POST /connections runs auth.test with the new token; invalid_auth
    creates no connection;
  - no token, refresh token or client secret in the log.
"""
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import wait_for
from store_helpers import q
from test_slack import TENANT, signals, slack, start, sync, workspace  # noqa: F401


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


def oauth_daemon(daemon_factory, mock, **plugin):
    return start(daemon_factory, mock, oauth_client_id=mock.client_id,
                 oauth_client_secret=mock.client_secret,
                 oauth_authorize_url=f"{mock.root}/oauth/v2/authorize",
                 oauth_token_url=f"{mock.url}/oauth.v2.access", **plugin)


def install(d, mock, config=None):
    """The browser's part of the flow; returns the new connection's id."""
    headers = {"X-Tenant-Id": TENANT}
    body = {"config": dict({"schedule": {"*": {"enabled": False}}}, **(config or {}))}
    status, _, data = d.http_post("/connect/slack", body=body, headers=headers, auth=True)
    assert status == 200, data
    url = urllib.parse.urlsplit(json.loads(data)["authorize_url"])
    params = dict(urllib.parse.parse_qsl(url.query))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{mock.root}/oauth/v2/authorize"
    assert params["client_id"] == mock.client_id
    assert set(params["scope"].split()) >= {"channels:read", "channels:history", "users:read"}
    callback = urllib.parse.urlsplit(follow(json.loads(data)["authorize_url"]))
    status, _, data = d.http_get(f"{callback.path}?{callback.query}")
    assert status == 201, data
    return json.loads(data)["id"]


def connection(pg, db_url, cid):
    row = q(pg, db_url, "SELECT status, coalesce(status_reason, ''), config, "
                        "extract(epoch FROM token_expires_at - now()) FROM connections "
                        "WHERE id = %s", (cid,))[0]
    return {"status": row[0], "reason": row[1], "config": row[2],
            "expires_in": None if row[3] is None else float(row[3])}


def secret_fields(pg, db_url, cid):
    return sorted(r[0] for r in q(pg, db_url, "SELECT field FROM connection_secrets "
                                              "WHERE connection_id = %s", (cid,)))


def set_expiry(pg, db_url, cid, seconds):
    q(pg, db_url, "UPDATE connections SET token_expires_at = now() + %s * interval '1 second' "
                  "WHERE id = %s", (seconds, cid))


def oauth_posts(mock):
    return mock.snapshot("oauth.v2.access")


def assert_no_secrets(d, mock):
    log = d.log_text()
    for s in [*mock.issued, mock.client_secret]:
        assert s not in log, f"a secret ({s[:10]}...) is in the log"


def test_install_keeps_user_token_and_workspace(daemon_factory, pg_cluster, db_url, slack):
    mock = slack()
    general, _, _ = workspace(mock, messages=3)
    d = oauth_daemon(daemon_factory, mock)
    cid = install(d, mock)
    post = oauth_posts(mock)[0]
    assert post.form["grant_type"] == "authorization_code"
    assert post.form["client_id"] == mock.client_id and post.form["code"]
    bot, bot_refresh, user, user_refresh = mock.issued[:4]
    assert bot.startswith("xoxe.xoxb-") and user.startswith("xoxe.xoxp-")

    conn = connection(pg_cluster, db_url, cid)
    assert conn["status"] == "active"
    cfg = conn["config"]
    assert {k: cfg.get(k) for k in ("team_id", "team_name", "bot_user_id", "app_id",
                                    "authed_user_id")} == \
        {"team_id": mock.team_id, "team_name": mock.team_name,
         "bot_user_id": mock.bot_user_id, "app_id": mock.app_id, "authed_user_id": "W0USER0001"}
    assert cfg["user_token_expires_at"].startswith(
        time.strftime("%Y-%m-%d", time.gmtime(time.time() + mock.token_ttl)))
    assert secret_fields(pg_cluster, db_url, cid) == \
        ["access_token", "refresh_token", "user_refresh_token", "user_token"]
    assert 43000 < conn["expires_in"] <= 43200  # the bot token's expires_in

    # Sync with the bot token; the workspace id is in every signal.
    sync(pg_cluster, db_url, d, cid, "messages")
    calls = mock.snapshot("conversations.history")
    assert calls and all(r.token == bot for r in calls)
    rows = signals(pg_cluster, db_url, "message_posted")
    assert rows and all(r[2]["team_id"] == mock.team_id for r in rows)

    # token "user": the same sync as the user, with the user token.
    q(pg_cluster, db_url, "UPDATE connections SET config = config || '{\"token\": \"user\"}' "
                          "WHERE id = %s", (cid,))
    mark = time.monotonic()
    sync(pg_cluster, db_url, d, cid, "messages")
    calls = [r for r in mock.snapshot() if r.mono >= mark and r.api.startswith("conversations")]
    assert calls and all(r.token == user for r in calls), [(r.api, r.token) for r in calls]
    assert_no_secrets(d, mock)


def test_rotation_and_invalid_refresh_token(daemon_factory, pg_cluster, db_url, slack):
    mock = slack()
    workspace(mock, messages=2)
    d = oauth_daemon(daemon_factory, mock)
    cid = install(d, mock)
    bot, bot_refresh = mock.issued[:2]

    set_expiry(pg_cluster, db_url, cid, 60)  # inside the 300 s threshold
    sync(pg_cluster, db_url, d, cid, "channels")
    refresh = [p for p in oauth_posts(mock) if p.form.get("grant_type") == "refresh_token"]
    assert len(refresh) == 1
    assert refresh[0].form["refresh_token"] == bot_refresh
    assert refresh[0].form["client_id"] == mock.client_id
    new_bot, new_refresh = mock.issued[4:6]
    assert [r.token for r in mock.snapshot("conversations.list")] == [new_bot]
    assert bot_refresh in mock.revoked_refresh
    assert 43000 < connection(pg_cluster, db_url, cid)["expires_in"] <= 43200

    # Next rotation sends the rotated refresh token. (The host lets a renewal
    # younger than 10 s satisfy every caller: let this one age.)
    time.sleep(10.5)
    set_expiry(pg_cluster, db_url, cid, 60)
    sync(pg_cluster, db_url, d, cid, "channels")
    refresh = [p for p in oauth_posts(mock) if p.form.get("grant_type") == "refresh_token"]
    assert [p.form["refresh_token"] for p in refresh] == [bot_refresh, new_refresh]

    # Slack revokes the grant: 200 {"ok": false, "error": "invalid_refresh_token"}.
    time.sleep(10.5)
    with mock.lock:
        mock.refresh_tokens.clear()
    set_expiry(pg_cluster, db_url, cid, 60)
    out = sync(pg_cluster, db_url, d, cid, "channels", expect=None)
    assert out["channels"][0] == "dead", out
    conn = connection(pg_cluster, db_url, cid)
    assert conn["status"] == "needs_reauth", conn
    last = oauth_posts(mock)[-1]
    assert last.status == 200 and last.error == "invalid_refresh_token"
    assert_no_secrets(d, mock)


def test_token_expired_answer_renews_the_token(daemon_factory, pg_cluster, db_url, slack):
    """Slack says token_expired (HTTP 200, ok:false) though the stored
    expiry has hours left: the job's next attempt runs with a renewed token."""
    mock = slack()
    general, _, _ = workspace(mock, messages=4)
    d = oauth_daemon(daemon_factory, mock)
    cid = install(d, mock)
    bot = mock.issued[0]
    mock.expire_token(bot)
    out = sync(pg_cluster, db_url, d, cid, "channels")
    assert out["channels"][1] == 2, out  # attempt 1 met token_expired
    calls = mock.snapshot("conversations.list")
    assert [(c.token, c.error) for c in calls] == [(bot, "token_expired"),
                                                   (mock.issued[4], "")]
    assert [p.form.get("grant_type") for p in oauth_posts(mock)] == \
        ["authorization_code", "refresh_token"]
    assert len(signals(pg_cluster, db_url, "channel_created")) == 3
    assert_no_secrets(d, mock)


def test_connection_check_with_auth_test(daemon_factory, pg_cluster, db_url, slack):
    mock = slack()
    d = start(daemon_factory, mock)
    good = mock.add_token()
    headers = {"X-Tenant-Id": TENANT}
    body = {"provider": "slack", "auth": {"type": "token", "token": good}}
    status, _, data = d.http_post("/connections", body=body, headers=headers, auth=True)
    assert status == 201, data
    cid = json.loads(data)["id"]
    assert [(r.api, r.token, r.status) for r in mock.snapshot()] == [("auth.test", good, 200)]
    cfg = connection(pg_cluster, db_url, cid)["config"]
    assert cfg["team_id"] == mock.team_id and cfg["bot_user_id"] == mock.bot_user_id
    bad = {"provider": "slack", "auth": {"type": "token", "token": "xoxb-revoked"}}
    status, _, data = d.http_post("/connections", body=bad, headers=headers, auth=True)
    assert status == 422 and json.loads(data)["code"] == "credentials_rejected", data
    assert mock.snapshot()[-1].error == "invalid_auth"
    n = q(pg_cluster, db_url, "SELECT count(*) FROM connections WHERE provider = 'slack'")
    assert n == [(1,)]
    wait_for(lambda: True, 0.1)
