"""Plugins' outbound HTTP through the host API (api->http_request): the
rate limiter at a share of the declared quota, Retry-After, 5xx backoff,
transport errors, vendor-reported quotas and credential hygiene.

The fixture plugin mockhub (tests/plugins/mockhub_plugin.c) declares a quota
of 600 requests per 60 s and pages through tests/integration/mock_provider.py
with a cursor taken from each JSON body; every item becomes one signal keyed
by the item's id. Jobs are enqueued by inserting into sync_jobs.
"""
import secrets
import time

import pytest

from conftest import wait_for
from mock_provider import MockProvider
from store_helpers import DEFAULT_TENANT, connection_add, q, readyz

TERMINAL = ("succeeded", "dead", "failed")


# ----------------------------------------------------------------- helpers

@pytest.fixture
def hub():
    providers = []

    def make(**kw):
        p = MockProvider(**kw).start()
        providers.append(p)
        return p
    yield make
    for p in providers:
        p.stop()


def start(daemon_factory, provider, extra=""):
    conf = (f'log_level = "debug";\njob_poll_ms = 100;\n{extra}\n'
            f'plugins = {{ mockhub = {{ base_url = "{provider.url}"; }}; }};\n')
    d = daemon_factory.start(conf_text=conf, plugins=["mockhub"])
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-3000:]}")
    return d


def enqueue(pg, db_url, d, token=None):
    """A connection with a token secret and one sync job for it -> (job id, token)."""
    token = token or f"mh_{secrets.token_urlsafe(24)}"
    cid = connection_add(d, "mockhub", {"token": token})
    rows = q(pg, db_url,
             "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream) "
             "VALUES (%s, %s, 'mockhub', 'items') RETURNING id::text",
             (DEFAULT_TENANT, cid))
    return rows[0][0], token


def wait_job(pg, db_url, d, job_id, timeout):
    def state():
        rows = q(pg, db_url, "SELECT state, attempts, last_error FROM sync_jobs WHERE id = %s",
                 (job_id,))
        return rows[0] if rows and rows[0][0] in TERMINAL else None
    return wait_for(state, timeout, 0.2,
                    msg=f"job {job_id} not finished in {timeout}s\n{d.log_text()[-4000:]}")


def assert_all_stored(pg, db_url, provider):
    rows = q(pg, db_url, "SELECT dedupe_key FROM signals WHERE source = 'mockhub'")
    keys = [r[0] for r in rows]
    assert len(keys) == len(set(keys)), "duplicate signals"
    assert sorted(keys) == provider.item_ids()


def run_job(daemon_factory, pg, db_url, provider, timeout=30, extra=""):
    d = start(daemon_factory, provider, extra)
    job_id, token = enqueue(pg, db_url, d)
    state, attempts, err = wait_job(pg, db_url, d, job_id, timeout)
    assert state == "succeeded", f"{state} after {attempts} attempt(s): {err}\n" \
                                 f"{d.log_text()[-4000:]}"
    return d, token


def requests_for_page(provider, page):
    return [r for r in provider.snapshot() if r.page == page]


# ------------------------------------------------------------------- tests

@pytest.mark.slow
def test_rate_limit_share_of_declared_quota(daemon_factory, pg_cluster, db_url, hub):
    """Declared quota 600/60 s at the default share 0.7: no 60-second window
    ever holds more than 420 requests, and a job needing more than 420
    requests still finishes with every item stored."""
    provider = hub(n_items=900, page_size=2)  # 450 requests
    t0 = time.monotonic()
    run_job(daemon_factory, pg_cluster, db_url, provider, timeout=150)
    reqs = provider.snapshot()
    times = [r.mono for r in reqs]
    assert len(reqs) == 450
    worst = max(sum(1 for t in times if start <= t < start + 60.0) for start in times)
    assert worst <= 420, f"{worst} requests in one 60-second window"
    assert time.monotonic() - t0 >= 60, "450 requests cannot fit in 60 s at 70 % of 600/min"
    assert all(r.status == 200 for r in reqs)
    assert_all_stored(pg_cluster, db_url, provider)


def test_rate_bucket_quota_replaces_the_declared_one(daemon_factory, pg_cluster, db_url, hub):
    """Requests naming a rate bucket (ABI minor 3, Slack's per-method tiers)
    are metered against the bucket's quota, not the plugin's 600/60 s: with
    3 per 2 s at share 1.0, 9 requests take at least two full windows and no
    2-second window holds more than 3."""
    provider = hub(n_items=18, page_size=2)  # 9 requests
    t0 = time.monotonic()
    extra = "rate_limit_share = 1.0;"
    conf = (f'log_level = "debug";\njob_poll_ms = 100;\n{extra}\n'
            f'plugins = {{ mockhub = {{ base_url = "{provider.url}"; bucket_requests = 3;'
            f' bucket_window_s = 2; }}; }};\n')
    daemon = daemon_factory.start(conf_text=conf, plugins=["mockhub"])
    wait_for(lambda: readyz(daemon) == 200, 20)
    job_id, _ = enqueue(pg_cluster, db_url, daemon)
    state, attempts, err = wait_job(pg_cluster, db_url, daemon, job_id, 60)
    assert state == "succeeded", err
    times = [r.mono for r in provider.snapshot()]
    assert len(times) == 9
    worst = max(sum(1 for t in times if s0 <= t < s0 + 2.0) for s0 in times)
    assert worst <= 3, f"{worst} requests in one 2-second window of bucket items.list"
    assert times[-1] - times[0] >= 4.0 - 0.05
    assert time.monotonic() - t0 < 60
    assert_all_stored(pg_cluster, db_url, provider)


def test_429_retry_after_is_honoured(daemon_factory, pg_cluster, db_url, hub):
    provider = hub(n_items=12, page_size=3)
    provider.script_page(2, ("status", 429, {"Retry-After": "2"}))
    run_job(daemon_factory, pg_cluster, db_url, provider)
    reqs = provider.snapshot()
    limited = next(i for i, r in enumerate(reqs) if r.status == 429)
    after = reqs[limited + 1:]
    assert after, "nothing was requested after the 429"
    gap = after[0].mono - reqs[limited].mono
    assert gap >= 2.0 - 0.01, f"next request {gap:.3f}s after a 429 with Retry-After: 2"
    assert after[0].page == 2 and after[0].status == 200
    assert_all_stored(pg_cluster, db_url, provider)


def test_503_twice_then_200_backs_off(daemon_factory, pg_cluster, db_url, hub):
    provider = hub(n_items=12, page_size=3)
    provider.script_page(1, ("status", 503), ("status", 503))
    run_job(daemon_factory, pg_cluster, db_url, provider)
    page1 = requests_for_page(provider, 1)
    assert [r.status for r in page1] == [503, 503, 200], "expected exactly two retries"
    first, second = page1[1].mono - page1[0].mono, page1[2].mono - page1[1].mono
    assert first >= 0.7, f"first retry after {first:.3f}s"
    assert second > first, f"delays did not grow: {first:.3f}s then {second:.3f}s"
    assert_all_stored(pg_cluster, db_url, provider)


def test_transport_error_mid_page_retried_without_duplicates(daemon_factory, pg_cluster,
                                                             db_url, hub):
    provider = hub(n_items=15, page_size=5)
    provider.script_page(1, ("drop",))
    run_job(daemon_factory, pg_cluster, db_url, provider)
    page1 = requests_for_page(provider, 1)
    assert [r.action for r in page1] == ["drop", "ok"], "the cut page was not retried once"
    assert_all_stored(pg_cluster, db_url, provider)
    total = q(pg_cluster, db_url, "SELECT count(*) FROM signals WHERE source = 'mockhub'")[0][0]
    assert total == provider.n_items


def test_header_reported_quota_waits_for_reset(daemon_factory, pg_cluster, db_url, hub):
    """X-RateLimit-Limit: 100 with a reset 3 s ahead. At share 0.7 the host
    spends at most 70 per vendor window; with 50 already used by someone
    else that leaves 20. It then waits for the reset and carries on instead
    of running into 403 or failing."""
    provider = hub(n_items=120, page_size=1, rate_limit=100, window_s=3, used_at_start=50)
    run_job(daemon_factory, pg_cluster, db_url, provider, timeout=60)
    reqs = provider.snapshot()
    assert not [r for r in reqs if r.status == 403], "ran into the vendor's quota"
    per_window = {}
    for r in reqs:
        per_window[r.window] = per_window.get(r.window, 0) + 1
    assert per_window[0] <= 70 - 50, f"{per_window[0]} requests before the first reset"
    assert all(n <= 70 for n in per_window.values()), per_window
    assert max(per_window) >= 1, "nothing was requested after the reset"
    assert_all_stored(pg_cluster, db_url, provider)


def test_connection_token_sent_but_never_logged(daemon_factory, pg_cluster, db_url, hub):
    provider = hub(n_items=6, page_size=2)
    provider.script_page(1, ("status", 503))  # a retry gets logged with its request
    d, token = run_job(daemon_factory, pg_cluster, db_url, provider)
    reqs = provider.snapshot()
    assert reqs and all(r.headers.get("Authorization") == f"Bearer {token}" for r in reqs), \
        "the host did not add the connection's token"
    log = d.log_text()
    assert token not in log
    assert "Bearer" not in log
