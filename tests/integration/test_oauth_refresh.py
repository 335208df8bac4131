"""OAuth2 token refresh (host/oauth_refresh.c) against a mock token endpoint.

  - a token that expires within oauth_refresh_threshold_s is refreshed before
    the job runs, and the job uses the new one; a fresh or non-expiring token
    is not refreshed
  - a rotated refresh token is stored (ciphertext changes, the old value is
    gone) and the next refresh, by a restarted daemon, sends the new one
  - 20 concurrent jobs on one connection with an expiring token: exactly one
    token request (single-flight), every job used the new token
  - invalid_grant: connection needs_reauth with a reason, the job dead after
    one attempt, no further token request
  - 5xx at the token endpoint: transient, the connection stays active
  - a 401 from the provider's API forces one refresh (even of a token with
    no known expiry) and the request is retried once with the new token
  - no token, refresh token or client secret ever appears in the log
  - oauth_token_url must be an http(s) URL

The job-path tests need the executor hook (host/executor.c calling
oauth_ensure_fresh before each job of an OAuth2 plugin).
"""
import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import time

import pytest

from conftest import wait_for
from mock_oauth import MockOAuth
from store_helpers import connection_add, plugin_items, q, readyz

TENANT = "7a0c2f4e-1b7d-4c55-9a63-0d7e5b3f4a10"
PROVIDER = "oauthp"
CLIENT_ID = "ingest-test-client"
TERMINAL = ("succeeded", "dead")


# ----------------------------------------------------------------- helpers

def token(prefix):
    return f"{prefix}-{secrets.token_urlsafe(24)}"


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def conf_text(token_url, client_secret, threshold_s=300, **plugin):
    opts = {"oauth_client_id": CLIENT_ID, "oauth_client_secret": client_secret,
            "oauth_token_url": token_url, **plugin}
    return ('log_level = "debug";\njob_poll_ms = 100;\njob_lease_s = 10;\n'
            f"oauth_refresh_threshold_s = {threshold_s};\n"
            f"plugins = {{ {PROVIDER} = {{ {plugin_items(opts)} }}; }};\n")


def start(daemon_factory, conf, workers=8, crypto_key=None):
    env = {"INGEST_WORKERS": workers}
    if crypto_key:
        env["INGEST_CRYPTO_KEY"] = crypto_key
    d = daemon_factory.start(conf_text=conf, plugins=[PROVIDER], env=env)
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-4000:]}")
    listed = {p["name"]: p for p in d.ctl_json("list", check=True)}
    assert listed.get(PROVIDER, {}).get("state") == "loaded", listed.get(PROVIDER)
    return d


def set_expiry(pg, db_url, cid, seconds):
    """token_expires_at = now + seconds (None: NULL, no known expiry)."""
    if seconds is None:
        q(pg, db_url, "UPDATE connections SET token_expires_at = NULL WHERE id = %s", (cid,))
    else:
        q(pg, db_url, "UPDATE connections SET token_expires_at = now() + %s * interval '1 second'"
                      " WHERE id = %s", (seconds, cid))


def expires_in(pg, db_url, cid):
    r = q(pg, db_url, "SELECT extract(epoch FROM token_expires_at - now()) FROM connections "
                      "WHERE id = %s", (cid,))[0][0]
    return None if r is None else float(r)


def connection(pg, db_url, cid):
    status, reason = q(pg, db_url, "SELECT status, status_reason FROM connections WHERE id = %s",
                       (cid,))[0]
    return status, reason or ""


def ciphertexts(pg, db_url, cid):
    return {f: bytes(ct) for f, ct in q(pg, db_url, "SELECT field, ciphertext FROM "
                                                    "connection_secrets WHERE connection_id = %s",
                                        (cid,))}


def enqueue(pg, db_url, cid, n=1, max_attempts=3):
    """n jobs on one connection; one stream each, because a connection may
    have only one live job per stream (index sync_jobs_live_once)."""
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


def wait_jobs(pg, db_url, ids, d, states=TERMINAL, timeout=30):
    def done():
        js = jobs(pg, db_url, ids)
        return len(js) == len(ids) and all(j["state"] in states for j in js.values())
    wait_for(done, timeout, msg=f"jobs not {states} within {timeout}s: "
                                f"{jobs(pg, db_url, ids)}\n{d.log_text()[-5000:]}")
    return jobs(pg, db_url, ids)


def used_hashes(pg, db_url, ids):
    """job id -> SHA-256 of the access token the job's sync read."""
    rows = q(pg, db_url, "SELECT payload->>'job', payload->>'token_sha256' FROM signals "
                         "WHERE payload->>'job' = ANY(%s)", (ids,))
    return dict(rows)


def assert_absent(text, values, where):
    for v in values:
        forms = {"plain": v, "base64": base64.b64encode(v.encode()).decode(),
                 "hex": v.encode().hex()}
        for form, s in forms.items():
            assert s not in text, f"a secret ({v[:7]}...) appears in {where} ({form})"


def all_secrets(mock, *extra):
    return [*extra, *mock.issued_access, *mock.issued_refresh]


def metric(d, name, **labels):
    status, _, body = d.http_get("/metrics")
    assert status == 200
    want = {f'{k}="{v}"' for k, v in labels.items()}
    for line in body.decode().splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)\{([^}]*)\} (\S+)$", line)
        if m and m.group(1) == name and want <= set(m.group(2).split(",")):
            return float(m.group(3))
    return 0.0


@pytest.fixture
def mock():
    m = MockOAuth(client_id=CLIENT_ID, client_secret=token("cs")).start()
    yield m
    m.stop()


def setup_connection(d, pg, db_url, mock, expires_s):
    at, rt = token("at"), token("rt")
    mock.add_refresh_token(rt)
    cid = connection_add(d, PROVIDER, {"access_token": at, "refresh_token": rt})
    set_expiry(pg, db_url, cid, expires_s)
    return cid, at, rt


# ------------------------------------------------------------------- tests

def test_token_url_must_be_http(daemon_factory):
    d = daemon_factory.start(conf_text=conf_text("ftp://127.0.0.1/token", "x"),
                             plugins=[PROVIDER])
    listed = {p["name"]: p for p in d.ctl_json("list", check=True)}
    entry = listed.get(PROVIDER, {})
    assert entry.get("state") != "loaded", entry
    assert "oauth_token_url" in json.dumps(entry), entry


def test_expiring_token_refreshed_before_job(daemon_factory, pg_cluster, db_url, mock):
    d = start(daemon_factory, conf_text(mock.token_url, mock.client_secret))
    cid, at, rt = setup_connection(d, pg_cluster, db_url, mock, expires_s=60)
    ids = enqueue(pg_cluster, db_url, cid)
    js = wait_jobs(pg_cluster, db_url, ids, d)
    assert js[ids[0]]["state"] == "succeeded", js

    assert mock.count == 1
    req = mock.requests[0]
    assert req["content_type"] == "application/x-www-form-urlencoded"
    assert req["form"] == {"grant_type": "refresh_token", "refresh_token": rt,
                           "client_id": CLIENT_ID, "client_secret": mock.client_secret}
    new_at = mock.issued_access[0]
    assert used_hashes(pg_cluster, db_url, ids) == {ids[0]: sha(new_at)}, \
        "the job did not use the refreshed access token"
    left = expires_in(pg_cluster, db_url, cid)
    assert 3500 < left <= 3600, f"token_expires_at not now + expires_in: {left}"
    assert connection(pg_cluster, db_url, cid)[0] == "active"
    assert metric(d, "ingest_token_refreshes_total", provider=PROVIDER, outcome="ok") == 1
    assert_absent(d.log_text(), all_secrets(mock, at, rt, mock.client_secret), "the daemon log")


def test_fresh_or_non_expiring_token_not_refreshed(daemon_factory, pg_cluster, db_url, mock):
    d = start(daemon_factory, conf_text(mock.token_url, mock.client_secret))
    fresh, at_fresh, _ = setup_connection(d, pg_cluster, db_url, mock, expires_s=7200)
    never, at_never, _ = setup_connection(d, pg_cluster, db_url, mock, expires_s=None)
    ids = enqueue(pg_cluster, db_url, fresh) + enqueue(pg_cluster, db_url, never)
    js = wait_jobs(pg_cluster, db_url, ids, d)
    assert all(j["state"] == "succeeded" for j in js.values()), js
    assert mock.count == 0, "a token that is not about to expire was refreshed"
    assert used_hashes(pg_cluster, db_url, ids) == {ids[0]: sha(at_fresh), ids[1]: sha(at_never)}


def test_rotated_refresh_token_stored(daemon_factory, pg_cluster, db_url, mock):
    mock.rotate = True
    key = base64.b64encode(os.urandom(32)).decode()
    conf = conf_text(mock.token_url, mock.client_secret)
    d = start(daemon_factory, conf, crypto_key=key)
    cid, at, rt = setup_connection(d, pg_cluster, db_url, mock, expires_s=30)
    before = ciphertexts(pg_cluster, db_url, cid)
    ids = enqueue(pg_cluster, db_url, cid)
    assert wait_jobs(pg_cluster, db_url, ids, d)[ids[0]]["state"] == "succeeded"
    assert mock.count == 1
    rt1 = mock.issued_refresh[0]
    after = ciphertexts(pg_cluster, db_url, cid)
    assert after["refresh_token"] != before["refresh_token"], "rotated refresh token not stored"
    assert after["access_token"] != before["access_token"]
    assert set(after) == {"access_token", "refresh_token"}, "old values kept beside the new"
    log1 = d.log_text()
    d.stop()

    # A restarted daemon (nothing cached) reads the stored, rotated token.
    set_expiry(pg_cluster, db_url, cid, 30)
    d2 = start(daemon_factory, conf, crypto_key=key)
    ids2 = enqueue(pg_cluster, db_url, cid)
    js = wait_jobs(pg_cluster, db_url, ids2, d2)
    assert js[ids2[0]]["state"] == "succeeded", js
    assert mock.count == 2
    assert mock.requests[1]["form"]["refresh_token"] == rt1, \
        "the second refresh did not send the rotated refresh token"
    assert used_hashes(pg_cluster, db_url, ids2) == {ids2[0]: sha(mock.issued_access[1])}
    assert connection(pg_cluster, db_url, cid)[0] == "active"
    for text in (log1, d2.log_text()):
        assert_absent(text, all_secrets(mock, at, rt, mock.client_secret), "the daemon log")


def test_concurrent_jobs_single_refresh(daemon_factory, pg_cluster, db_url, mock):
    # Rotation makes a second request with the old token fail (invalid_grant),
    # so a missing single-flight would also show as dead jobs.
    mock.rotate = True
    mock.delay = 1.0
    d = start(daemon_factory, conf_text(mock.token_url, mock.client_secret, sync_sleep_ms=200),
              workers=8)
    cid, at, rt = setup_connection(d, pg_cluster, db_url, mock, expires_s=60)
    ids = enqueue(pg_cluster, db_url, cid, n=20)
    js = wait_jobs(pg_cluster, db_url, ids, d, timeout=60)
    assert all(j["state"] == "succeeded" for j in js.values()), js
    assert mock.count == 1, f"{mock.count} token requests for one connection (want 1)"
    # The jobs really overlapped the refresh: several had started (and were
    # waiting for it) before the one refresh finished.
    msgs = [e.get("msg", "") for e in d.logs()]
    refreshed = [i for i, m in enumerate(msgs) if "access token refreshed" in m]
    assert len(refreshed) == 1, refreshed
    waiting = sum(1 for m in msgs[:refreshed[0]] if m.startswith("job started"))
    assert waiting >= 4, f"only {waiting} job(s) started before the refresh finished"
    new_at = mock.issued_access[0]
    hashes = used_hashes(pg_cluster, db_url, ids)
    assert set(hashes) == set(ids) and set(hashes.values()) == {sha(new_at)}
    assert connection(pg_cluster, db_url, cid)[0] == "active"
    assert_absent(d.log_text(), all_secrets(mock, at, rt, mock.client_secret), "the daemon log")


def test_invalid_grant_needs_reauth(daemon_factory, pg_cluster, db_url, mock):
    mock.mode = "invalid_grant"
    d = start(daemon_factory, conf_text(mock.token_url, mock.client_secret))
    cid, at, rt = setup_connection(d, pg_cluster, db_url, mock, expires_s=10)
    ids = enqueue(pg_cluster, db_url, cid, max_attempts=3)
    js = wait_jobs(pg_cluster, db_url, ids, d)
    assert js[ids[0]]["state"] == "dead" and js[ids[0]]["attempts"] == 1, \
        f"an invalid_grant job must die without retry: {js}"
    status, reason = connection(pg_cluster, db_url, cid)
    assert status == "needs_reauth"
    assert "invalid_grant" in reason and "authorized again" in reason, reason
    assert mock.count == 1
    assert metric(d, "ingest_token_refreshes_total", provider=PROVIDER,
                  outcome="invalid_grant") == 1

    # The operator sees it, and why, with the CLI.
    listed = d.ctl_json("connections", "--state", "needs_reauth", check=True)
    assert [(c["id"], c["status"], c["status_reason"]) for c in listed] == [
        (cid, "needs_reauth", reason)], listed
    assert d.ctl_json("connections", "--state", "active", check=True) == []
    plain = subprocess.run([str(d.hostctl), "-s", d.sock, "connections"], capture_output=True,
                           text=True, env=d.env, timeout=30)
    assert plain.returncode == 0 and cid in plain.stdout and "needs_reauth" in plain.stdout
    assert_absent(plain.stdout, [at, rt, mock.client_secret], "ingest-hostctl connections")

    # Later jobs of that connection do not ask the provider again.
    later = enqueue(pg_cluster, db_url, cid, max_attempts=3)
    time.sleep(1.0)
    js = jobs(pg_cluster, db_url, later)
    assert js[later[0]]["state"] in ("queued", "dead"), js
    assert mock.count == 1
    assert_absent(d.log_text() + reason, [at, rt, mock.client_secret], "the daemon log")


def test_api_401_forces_refresh_and_retry(daemon_factory, pg_cluster, db_url, mock):
    mock.rotate = True
    api_url = mock.token_url.replace("/token", "/api")
    d = start(daemon_factory, conf_text(mock.token_url, mock.client_secret, api_url=api_url))
    # No known expiry: only the 401 can trigger the refresh.
    cid, at, rt = setup_connection(d, pg_cluster, db_url, mock, expires_s=None)
    ids = enqueue(pg_cluster, db_url, cid)
    js = wait_jobs(pg_cluster, db_url, ids, d)
    assert js[ids[0]]["state"] == "succeeded", js
    assert mock.count == 1, "a 401 must force exactly one refresh"
    new_at = mock.issued_access[0]
    assert mock.api_calls == [(at, 401), (new_at, 200)], \
        "the request was not retried once with the refreshed token"
    rows = q(pg_cluster, db_url, "SELECT payload->>'token_sha256', payload->>'api_status' "
                                 "FROM signals WHERE payload->>'job' = %s", (ids[0],))
    assert rows == [(sha(new_at), "200")], rows
    assert_absent(d.log_text(), all_secrets(mock, at, rt, mock.client_secret), "the daemon log")


def test_server_error_is_transient(daemon_factory, pg_cluster, db_url, mock):
    mock.mode = "server_error"
    d = start(daemon_factory, conf_text(mock.token_url, mock.client_secret))
    cid, at, rt = setup_connection(d, pg_cluster, db_url, mock, expires_s=10)
    ids = enqueue(pg_cluster, db_url, cid, max_attempts=5)
    wait_for(lambda: mock.count >= 1, 20, msg=d.log_text()[-4000:])
    wait_for(lambda: jobs(pg_cluster, db_url, ids)[ids[0]]["attempts"] >= 1
             and jobs(pg_cluster, db_url, ids)[ids[0]]["state"] != "running", 20,
             msg=d.log_text()[-4000:])
    j = jobs(pg_cluster, db_url, ids)[ids[0]]
    assert j["state"] != "succeeded", j
    assert not (j["state"] == "dead" and j["attempts"] == 1), f"a 5xx must be retried: {j}"
    assert connection(pg_cluster, db_url, cid)[0] == "active"
    assert metric(d, "ingest_token_refreshes_total", provider=PROVIDER, outcome="failed") >= 1
    assert_absent(d.log_text(), [at, rt, mock.client_secret], "the daemon log")
