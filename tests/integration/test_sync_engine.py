"""The sync engine: scheduling, manual runs, caps, fairness, retries and the
per-provider circuit breaker, with the ingest_sched.so fixture (streams
"alpha" on the host default interval and "beta" every 7200 s).

  - interval schedule: a job per active connection and stream, none for a
    needs_reauth connection, never more than one live job per stream (no
    pile-up), and a restart fires nothing that ran recently
  - cron schedule from the connection's config, and "enabled": false
  - `ingest-hostctl sync` (all streams, --stream, --full) and `jobs`
  - per-tenant cap under 100 queued jobs, weighted round-robin fairness
  - retries with backoff, then dead with a dead letter
  - circuit: open defers (jobs stay queued, attempts untouched), one probe
    in half-open, closed on success; in `health` and in /metrics
  - the claim queries use their partial indexes on an unanalyzed table
"""
import hashlib
import hmac
import json
import os
import subprocess
import time
from collections import defaultdict

import pytest

from conftest import wait_for
from store_helpers import connection_add, q, readyz

TENANT_A = "1a2b3c4d-0000-4000-8000-00000000000a"
TENANT_B = "9f8e7d6c-0000-4000-8000-00000000000b"
OFF = {"schedule": {"*": {"enabled": False}}}


# ----------------------------------------------------------------- helpers

@pytest.fixture(autouse=True)
def schema(hostctl, db_url):
    """Tests insert connections before a daemon starts: migrate first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env["INGEST_DATABASE_URL"] = db_url
    r = subprocess.run([str(hostctl), "migrate"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr


def conf(**keys):
    plugin = keys.pop("plugin", {})
    base = {"log_level": "debug", "job_poll_ms": 100, "job_lease_s": 5,
            "schedule_poll_ms": 200}
    base.update(keys)
    lines = [f"{k} = {json.dumps(v)};" for k, v in base.items()]
    items = " ".join(f"{k} = {json.dumps(v)};" for k, v in plugin.items())
    lines.append(f"plugins = {{ sched = {{ {items} }}; }};")
    return "\n".join(lines) + "\n"


def start(daemon_factory, text, workers=4):
    d = daemon_factory.start(conf_text=text, plugins=["sched"],
                             env={"INGEST_WORKERS": workers})
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-4000:]}")
    return d


def add_connection(pg, db_url, tenant=TENANT_A, status="active", config=None):
    return q(pg, db_url,
             "INSERT INTO connections (tenant_id, provider, auth_kind, status, config) "
             "VALUES (%s, 'sched', 'none', %s, %s) RETURNING id::text",
             (tenant, status, json.dumps(config or {})))[0][0]


def enqueue(pg, db_url, cid, tenant=TENANT_A, stream="alpha", max_attempts=4):
    return q(pg, db_url,
             "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, max_attempts) "
             "VALUES (%s, %s, 'sched', %s, %s) RETURNING id::text",
             (tenant, cid, stream, max_attempts))[0][0]


def jobs_of(pg, db_url, cid=None):
    rows = q(pg, db_url,
             "SELECT id::text, connection_id::text, stream, kind, state, attempts, max_attempts, "
             "started_at, finished_at, created_at, last_error FROM sync_jobs "
             "WHERE %s::uuid IS NULL OR connection_id = %s::uuid ORDER BY created_at",
             (cid, cid))
    keys = ("id", "connection_id", "stream", "kind", "state", "attempts", "max_attempts",
            "started_at", "finished_at", "created_at", "last_error")
    return [dict(zip(keys, r)) for r in rows]


def job(pg, db_url, jid):
    return next(j for j in jobs_of(pg, db_url) if j["id"] == jid)


def wait_state(pg, db_url, jid, states, timeout, d):
    states = (states,) if isinstance(states, str) else states
    return wait_for(lambda: (lambda j: j if j["state"] in states else None)(job(pg, db_url, jid)),
                    timeout, msg=f"job {jid} never {states}: {job(pg, db_url, jid)}\n"
                                 f"{d.log_text()[-3000:]}")


def metric(d, name, labels):
    body = d.http_get("/metrics")[2].decode()
    want = name + "{" + labels + "}"
    for line in body.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


def circuit_of(d):
    h = d.ctl_json("health")
    return next(p for p in h["plugins"] if p["name"] == "sched")


# ------------------------------------------------------------- scheduling

def test_interval_schedule_active_connections_no_pile_up(daemon_factory, pg_cluster, db_url):
    a1 = add_connection(pg_cluster, db_url)
    a2 = add_connection(pg_cluster, db_url, tenant=TENANT_B)
    reauth = add_connection(pg_cluster, db_url, status="needs_reauth")
    # alpha every 1 s, but each sync takes 1.5 s: runs must not pile up.
    d = start(daemon_factory, conf(sync_interval_s=1, sync_jitter_pct=0,
                                   plugin={"sleep_ms": 1500}))
    deadline = time.monotonic() + 7
    max_live = 0
    while time.monotonic() < deadline:
        live = q(pg_cluster, db_url,
                 "SELECT connection_id, stream, count(*) FROM sync_jobs "
                 "WHERE state IN ('queued', 'retrying', 'running') GROUP BY 1, 2")
        max_live = max([max_live] + [r[2] for r in live])
        time.sleep(0.1)
    assert max_live == 1, f"{max_live} live jobs for one stream"
    by = defaultdict(list)
    for j in jobs_of(pg_cluster, db_url):
        by[(j["connection_id"], j["stream"])].append(j)
    assert not any(c == reauth for c, _ in by), "a needs_reauth connection was scheduled"
    for c in (a1, a2):
        alpha, beta = by[(c, "alpha")], by[(c, "beta")]
        assert len(beta) == 1, f"beta (7200 s) ran {len(beta)} times: {beta}"
        # 7 s of 1.5 s runs back to back: at most 5 (a pile-up would queue more).
        assert 3 <= len(alpha) <= 5, [(j["state"], j["created_at"]) for j in alpha]
        assert sum(j["state"] == "succeeded" for j in alpha) >= 2, alpha
        assert all(j["kind"] == "incremental" and j["max_attempts"] == 4 for j in alpha)
    d.stop()


def test_restart_does_not_refire_recent_runs(daemon_factory, pg_cluster, db_url):
    cids = [add_connection(pg_cluster, db_url) for _ in range(3)]
    text = conf(sync_interval_s=60)
    d = start(daemon_factory, text)
    wait_for(lambda: q(pg_cluster, db_url, "SELECT count(*) FROM sync_jobs "
                                           "WHERE state = 'succeeded'")[0][0] == 6, 15)
    d.stop()
    d2 = start(daemon_factory, text)
    time.sleep(2.5)  # a dozen scheduler ticks
    n = q(pg_cluster, db_url, "SELECT count(*) FROM sync_jobs")[0][0]
    assert n == 6, f"restart fired {n - 6} job(s) that ran a moment ago"
    assert {j["connection_id"] for j in jobs_of(pg_cluster, db_url)} == set(cids)
    d2.stop()


def test_cron_schedule_and_disabled_streams(daemon_factory, pg_cluster, db_url):
    every_minute = add_connection(pg_cluster, db_url, config={
        "schedule": {"alpha": {"cron": "* * * * *"}, "beta": {"enabled": False}}})
    yearly = add_connection(pg_cluster, db_url, config={
        "schedule": {"*": {"cron": "0 0 1 1 *"}}})
    # Both ran 5 minutes ago. The default interval (3600 s) would wait; the
    # per-minute cron is overdue, the yearly one is not.
    for c in (every_minute, yearly):
        for s in ("alpha", "beta"):
            q(pg_cluster, db_url,
              "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, state, "
              "created_at, finished_at) VALUES (%s, %s, 'sched', %s, 'succeeded', "
              "now() - interval '5 minutes', now() - interval '5 minutes')", (TENANT_A, c, s))
    d = start(daemon_factory, conf())
    wait_for(lambda: any(j["state"] == "succeeded" and j["stream"] == "alpha"
                         and j["attempts"] == 1
                         for j in jobs_of(pg_cluster, db_url, every_minute)), 10)
    time.sleep(1.5)
    new = [j for j in jobs_of(pg_cluster, db_url) if j["attempts"] > 0]
    assert [(j["connection_id"], j["stream"]) for j in new] == [(every_minute, "alpha")], new
    d.stop()


# ------------------------------------------------------------ manual runs

def test_hostctl_sync_and_jobs(daemon_factory, pg_cluster, db_url):
    settings = {**OFF, "repositories": ["octo/hello"], "depth": 3}
    cid = add_connection(pg_cluster, db_url, config=settings)
    reauth = add_connection(pg_cluster, db_url, status="needs_reauth", config=OFF)
    d = start(daemon_factory, conf(plugin={"sleep_ms": 1000}))
    r = d.ctl("sync", cid, check=True)
    lines = r.stdout.split("\n")
    ids = [ln.split()[0] for ln in lines if ln.strip()]
    assert len(ids) == 2, r.stdout
    streams = {ln.split()[1] for ln in lines if ln.strip()}
    assert streams == {"alpha", "beta"}, r.stdout
    # Asking again while they are live returns the same jobs: no pile-up.
    again = d.ctl_json("sync", cid, check=True)
    assert {j["id"] for j in again} == set(ids) and not any(j["created"] for j in again), again
    for i in ids:
        wait_state(pg_cluster, db_url, i, "succeeded", 15, d)

    full = d.ctl_json("sync", cid, "--full", "--stream", "beta", check=True)
    assert len(full) == 1 and full[0]["stream"] == "beta" and full[0]["kind"] == "full", full
    assert full[0]["created"] and full[0]["id"] not in ids
    wait_state(pg_cluster, db_url, full[0]["id"], "succeeded", 15, d)
    payload = q(pg_cluster, db_url, "SELECT payload FROM signals WHERE dedupe_key = %s",
                (full[0]["id"],))[0][0]
    assert payload["full"] == 1 and payload["lookback_us"] == 60_000_000, payload
    assert payload["backfill_since_us"] > 0, payload
    # api->connection_config: the plugin sees its connection's own settings.
    assert payload["config"] == settings, payload

    listed = d.ctl_json("jobs", check=True)
    assert [j["id"] for j in listed][:1] == [full[0]["id"]], listed
    assert {j["id"] for j in listed} == set(ids) | {full[0]["id"]}
    first = next(j for j in listed if j["id"] == full[0]["id"])
    for k in ("tenant_id", "provider", "connection_id", "stream", "kind", "state", "attempts",
              "run_after", "last_error"):
        assert k in first, (k, first)
    assert (first["tenant_id"], first["provider"], first["connection_id"], first["kind"]) == \
        (TENANT_A, "sched", cid, "full")
    assert d.ctl_json("jobs", "--state", "queued", check=True) == []
    assert len(d.ctl_json("jobs", "--provider", "sched", "--limit", "2", check=True)) == 2
    assert d.ctl_json("jobs", "--provider", "nope", check=True) == []
    text = d.ctl("jobs", "--state", "succeeded", check=True).stdout
    assert "ID" in text and full[0]["id"] in text and "sched" in text, text

    bad = d.ctl("sync", reauth)
    assert bad.returncode == 1 and "needs_reauth" in bad.stderr, (bad.stdout, bad.stderr)
    assert d.ctl("sync", "not-a-uuid").returncode == 1
    assert d.ctl("jobs", "--state", "bogus").returncode == 2
    d.stop()


# ------------------------------------------------------- caps and fairness

def test_per_tenant_cap_under_a_hundred_queued_jobs(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, conf(max_jobs=8, max_jobs_per_tenant=2,
                                   plugin={"sleep_ms": 150}), workers=10)
    ids = []
    for tenant in (TENANT_A, TENANT_B):
        for _ in range(50):
            ids.append(enqueue(pg_cluster, db_url, add_connection(pg_cluster, db_url, tenant,
                                                                  config=OFF), tenant))
    peak = defaultdict(int)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = q(pg_cluster, db_url, "SELECT tenant_id::text, count(*) FILTER (WHERE state = "
                                     "'running'), count(*) FILTER (WHERE state IN ('succeeded', "
                                     "'dead')) FROM sync_jobs GROUP BY 1")
        for t, running, _ in rows:
            peak[t] = max(peak[t], running)
            assert running <= 2, f"tenant {t} had {running} jobs running (cap 2)"
        if sum(r[2] for r in rows) == len(ids):
            break
        time.sleep(0.03)
    states = {j["state"] for j in jobs_of(pg_cluster, db_url)}
    assert states == {"succeeded"}, states
    assert peak[TENANT_A] == 2 and peak[TENANT_B] == 2, dict(peak)
    d.stop()


def test_fairness_small_tenant_is_not_starved(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, conf(max_jobs=1, plugin={"sleep_ms": 20}), workers=3)
    # Tenant A (sorts first) has 200 queued jobs, B one, queued last (all
    # in one transaction, so the executor sees them together).
    q(pg_cluster, db_url,
      "INSERT INTO connections (tenant_id, provider, auth_kind, config) SELECT "
      "CASE WHEN g <= 200 THEN %s ELSE %s END::uuid, 'sched', 'none', %s "
      "FROM generate_series(1, 201) g", (TENANT_A, TENANT_B, json.dumps(OFF)))
    q(pg_cluster, db_url,
      "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, created_at) "
      "SELECT tenant_id, id, 'sched', 'alpha', clock_timestamp() FROM connections "
      "ORDER BY tenant_id")
    b_job = q(pg_cluster, db_url, "SELECT id::text FROM sync_jobs WHERE tenant_id = %s",
              (TENANT_B,))[0][0]
    wait_state(pg_cluster, db_url, b_job, "succeeded", 30, d)
    order = [r[0] for r in q(pg_cluster, db_url, "SELECT id::text FROM sync_jobs "
                                                 "WHERE started_at IS NOT NULL "
                                                 "ORDER BY started_at, id")]
    assert order.index(b_job) < 3, f"B's job started as number {order.index(b_job) + 1}"
    d.stop()


def test_tenant_weights_share_claims(daemon_factory, pg_cluster, db_url):
    weights = f"{TENANT_A}=3"
    d = start(daemon_factory, conf(max_jobs=1, tenant_weights=weights,
                                   plugin={"sleep_ms": 10}), workers=3)
    # Queue everything in one transaction: the executor sees both tenants.
    q(pg_cluster, db_url,
      "INSERT INTO connections (tenant_id, provider, auth_kind, config) SELECT "
      "CASE WHEN g <= 12 THEN %s ELSE %s END::uuid, 'sched', 'none', %s "
      "FROM generate_series(1, 24) g", (TENANT_A, TENANT_B, json.dumps(OFF)))
    q(pg_cluster, db_url,
      "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream) "
      "SELECT tenant_id, id, 'sched', 'alpha' FROM connections")
    wait_for(lambda: q(pg_cluster, db_url, "SELECT count(*) FROM sync_jobs "
                                           "WHERE state = 'succeeded'")[0][0] == 24, 30)
    order = [r[0] for r in q(pg_cluster, db_url, "SELECT tenant_id::text FROM sync_jobs "
                                                 "ORDER BY started_at, id")]
    first8 = order[:8]
    assert first8.count(TENANT_A) >= 5, f"weight 3 got {first8.count(TENANT_A)} of 8: {order}"
    assert first8.count(TENANT_B) >= 1, order
    d.stop()


# ---------------------------------------------------- retries and circuit

def test_retries_with_backoff_then_dead_letter(daemon_factory, pg_cluster, db_url):
    cid = add_connection(pg_cluster, db_url, config=OFF)
    d = start(daemon_factory, conf(job_max_retries=2, plugin={"fail": True}))
    (jid,) = [j["id"] for j in d.ctl_json("sync", cid, "--stream", "alpha", check=True)]
    j = wait_state(pg_cluster, db_url, jid, "dead", 20, d)
    assert (j["attempts"], j["max_attempts"]) == (3, 3), j
    assert "status -4" in j["last_error"], j
    dl = q(pg_cluster, db_url, "SELECT kind, ref_id::text, provider, attempts FROM dead_letters")
    assert dl == [("job", jid, "sched", 3)], dl
    starts = [e for e in d.logs() if e.get("job") == jid
              and e.get("msg", "").startswith("job started")]
    assert len(starts) == 3, starts
    retries = metric(d, "ingest_job_retries_total", 'provider="sched",reason="error"')
    assert retries == 2, retries
    assert metric(d, "ingest_sync_jobs_total", 'provider="sched",outcome="dead"') == 1
    d.stop()


def test_replay_of_a_dead_job_respects_one_live_job_per_stream(daemon_factory, pg_cluster,
                                                               db_url, tmp_path):
    """Replaying a dead job whose stream already has a live job is not an
    error: the live job covers it. Without one, the dead job runs again."""
    cid = add_connection(pg_cluster, db_url, config=OFF)
    flag = tmp_path / "fail"
    flag.write_text("x")
    d = start(daemon_factory, conf(job_max_retries=0, plugin={"fail_file": str(flag)}))
    (dead,) = [j["id"] for j in d.ctl_json("sync", cid, "--stream", "alpha", check=True)]
    wait_state(pg_cluster, db_url, dead, "dead", 20, d)
    # a live job for the same stream, due in an hour
    live = q(pg_cluster, db_url,
             "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, run_after) "
             "VALUES (%s, %s, 'sched', 'alpha', now() + interval '1 hour') RETURNING id::text",
             (TENANT_A, cid))[0][0]
    (letter,) = d.ctl_json("deadletters", check=True)
    d.ctl_json("replay", letter["id"], check=True)
    assert job(pg_cluster, db_url, dead)["state"] == "dead"
    assert d.ctl_json("deadletters", check=True) == []  # replayed: covered by the live job
    # without a live job the dead one is queued again and now succeeds
    q(pg_cluster, db_url, "DELETE FROM sync_jobs WHERE id = %s", (live,))
    q(pg_cluster, db_url, "UPDATE dead_letters SET replayed_at = NULL")
    flag.unlink()
    d.ctl_json("replay", "--all", check=True)
    wait_state(pg_cluster, db_url, dead, "succeeded", 20, d)
    d.stop()


def test_webhook_requests_an_incremental_sync(daemon_factory, pg_cluster, db_url):
    """A plugin's webhook handler asks for a sync of its connection's stream
    (api->request_sync): the job is queued and runs; an undeclared stream is
    refused; a repeated request while one is queued adds nothing."""
    d = start(daemon_factory, conf(plugin={"sleep_ms": 1500}))
    secret = "sched-webhook-" + os.urandom(8).hex()
    cid = connection_add(d, "sched", {"webhook_secret": secret}, tenant=TENANT_A)
    q(pg_cluster, db_url, "UPDATE connections SET config = %s WHERE id = %s",
      (json.dumps(OFF), cid))  # no scheduled runs: only requested ones

    def post(body):
        sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return d.http_post(f"/webhooks/sched/{cid}", body=body,
                           headers={"Content-Type": "text/plain", "X-Sched-Signature": sig})[0]

    assert post(b"beta") == 202
    first = wait_for(lambda: [j for j in jobs_of(pg_cluster, db_url, cid) if j["stream"] == "beta"],
                     15, msg=f"no job requested\n{d.log_text()[-3000:]}")
    assert [j["kind"] for j in first] == ["incremental"]
    assert post(b"gamma") == 202
    wait_for(lambda: any("sync of gamma requested: status -6" in e.get("msg", "")
                         for e in d.logs()), 15, msg="undeclared stream not refused")
    assert {j["stream"] for j in jobs_of(pg_cluster, db_url, cid)} == {"beta"}
    wait_state(pg_cluster, db_url, first[0]["id"], "succeeded", 20, d)
    d.stop()


def test_cursor_never_moves_back(daemon_factory, pg_cluster, db_url):
    """A run that sets an older cursor than the stored one (the fixture sets
    the attempt number) leaves the stored cursor; a newer one replaces it.
    Timestamps compare as times, opaque values always replace."""
    pairs = [("5", "1", False), ("5", "5", True), ("5", "12", True), ("-3", "-7", False),
             ("2026-11-22T10:00:00Z", "2026-11-22T09:59:59Z", False),
             ("2026-11-22T10:00:00Z", "2026-11-22T11:00:00+01:00", True),
             ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00.000001Z", True),
             ("2026-11-22T10:00:00Z", "2026-13-45T99:99:99Z", True),  # not a time: opaque
             ("page-token-b", "page-token-a", True), ("5", "2026-11-22T10:00:00Z", True)]
    for stored, proposed, forward in pairs:
        got = q(pg_cluster, db_url, "SELECT ingest_cursor_not_behind(%s, %s)",
                (stored, proposed))[0][0]
        assert got is forward, (stored, proposed, got)

    cid = add_connection(pg_cluster, db_url, config=OFF)
    q(pg_cluster, db_url, "INSERT INTO cursors (provider, connection_id, stream, value) "
                          "VALUES ('sched', %s, 'alpha', '5'), ('sched', %s, 'beta', '0')",
      (cid, cid))
    d = start(daemon_factory, conf())
    ids = [j["id"] for j in d.ctl_json("sync", cid, check=True)]
    for jid in ids:
        wait_state(pg_cluster, db_url, jid, "succeeded", 20, d)
    cursors = dict(q(pg_cluster, db_url, "SELECT stream, value FROM cursors "
                                         "WHERE connection_id = %s", (cid,)))
    assert cursors == {"alpha": "5", "beta": "1"}, cursors
    stored = q(pg_cluster, db_url, "SELECT count(*) FROM signals WHERE source = 'sched' "
                                   "AND payload->>'job' = ANY(%s)", (ids,))[0][0]
    assert stored == 2  # the signals committed even where the cursor stayed
    d.stop()


def test_circuit_opens_defers_probes_and_closes(daemon_factory, pg_cluster, db_url, tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("x")
    d = start(daemon_factory, conf(job_max_retries=0, circuit_failure_threshold=2,
                                   circuit_cooldown_s=3,
                                   plugin={"fail_file": str(flag), "sleep_ms": 700}))
    c = [add_connection(pg_cluster, db_url, config=OFF) for _ in range(4)]
    failing = [enqueue(pg_cluster, db_url, c[i], max_attempts=1) for i in range(2)]
    for jid in failing:
        wait_state(pg_cluster, db_url, jid, "dead", 15, d)
    opened = time.monotonic()
    p = circuit_of(d)
    assert p["circuit"] == "open" and p["circuit_failures"] == 2, p
    assert d.ctl("health").returncode == 1
    assert metric(d, "ingest_circuit_state", 'provider="sched"') == 2

    # Deferred, not failed: stays queued with its attempts untouched.
    deferred = enqueue(pg_cluster, db_url, c[2], max_attempts=1)
    time.sleep(1.5)
    j = job(pg_cluster, db_url, deferred)
    assert (j["state"], j["attempts"]) == ("queued", 0), j
    flag.unlink()

    # After the cooldown one probe runs; a second job waits for its verdict.
    wait_state(pg_cluster, db_url, deferred, ("running", "succeeded"), 10, d)
    assert time.monotonic() - opened >= 2.5, "the probe ran before the cooldown"
    second = enqueue(pg_cluster, db_url, c[3], max_attempts=1)
    p = circuit_of(d)
    if job(pg_cluster, db_url, deferred)["state"] == "running":
        assert p["circuit"] == "half_open", p
        assert metric(d, "ingest_circuit_state", 'provider="sched"') == 1
    probe = wait_state(pg_cluster, db_url, deferred, "succeeded", 10, d)
    after = wait_state(pg_cluster, db_url, second, "succeeded", 10, d)
    assert after["started_at"] >= probe["finished_at"], "a second job ran beside the probe"
    assert probe["attempts"] == 1, probe
    p = circuit_of(d)
    assert p["circuit"] == "closed" and p["circuit_failures"] == 0, p
    assert metric(d, "ingest_circuit_state", 'provider="sched"') == 0
    assert d.ctl("health").returncode == 0
    d.stop()


def test_metrics_exposed(daemon_factory, pg_cluster, db_url):
    cid = add_connection(pg_cluster, db_url, config=OFF)
    d = start(daemon_factory, conf())
    ids = [j["id"] for j in d.ctl_json("sync", cid, check=True)]
    for i in ids:
        wait_state(pg_cluster, db_url, i, "succeeded", 15, d)
    assert metric(d, "ingest_sync_jobs_total", 'provider="sched",outcome="succeeded"') == 2
    assert metric(d, "ingest_records_total", 'provider="sched"') == 2
    assert metric(d, "ingest_job_duration_seconds_count", 'provider="sched"') == 2
    assert metric(d, "ingest_jobs_total", 'outcome="succeeded"') == 2

    def lag():
        v = metric(d, "ingest_connector_lag_seconds", 'provider="sched"')
        return v is not None and v > 0 and v < 60
    wait_for(lag, 10)
    wait_for(lambda: metric(d, "ingest_jobs", 'state="queued"') == 0, 10)
    d.stop()


# ------------------------------------------------------------ query plans

def test_claim_queries_use_partial_indexes_unanalyzed(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, conf())
    d.stop()  # schema only; the plans are checked without a daemon
    conns = q(pg_cluster, db_url,
              "INSERT INTO connections (tenant_id, provider, auth_kind) SELECT "
              "(ARRAY[%s, %s]::uuid[])[1 + g %% 2], 'sched', 'none' "
              "FROM generate_series(1, 10000) g RETURNING id::text, tenant_id::text",
              (TENANT_A, TENANT_B))
    q(pg_cluster, db_url,
      "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream) "
      "SELECT t, c, 'sched', 'alpha' FROM unnest(%s::uuid[], %s::uuid[]) AS x(c, t)",
      ([c[0] for c in conns], [c[1] for c in conns]))
    # The statements of host/jobs.c (claim_one_sql's SELECT and pairs_sql).
    claim = ("EXPLAIN SELECT id FROM sync_jobs WHERE tenant_id = %s::uuid AND provider = 'sched' "
             "AND state IN ('queued', 'retrying') AND run_after <= now() "
             "ORDER BY run_after LIMIT 1 FOR UPDATE SKIP LOCKED")
    pairs = ("EXPLAIN WITH RECURSIVE pairs AS ("
             " (SELECT tenant_id, provider FROM sync_jobs WHERE state IN ('queued', 'retrying')"
             "  ORDER BY tenant_id, provider LIMIT 1)"
             " UNION ALL"
             " SELECT n.tenant_id, n.provider FROM pairs p CROSS JOIN LATERAL ("
             "  SELECT tenant_id, provider FROM sync_jobs WHERE state IN ('queued', 'retrying')"
             "   AND (tenant_id, provider) > (p.tenant_id, p.provider)"
             "  ORDER BY tenant_id, provider LIMIT 1) n)"
             " SELECT tenant_id::text, provider FROM pairs WHERE provider = ANY('{sched}')")
    for sql, params in ((claim, (TENANT_A,)), (pairs, None)):
        plan = "\n".join(r[0] for r in q(pg_cluster, db_url, sql, params))
        assert "Seq Scan" not in plan and "Sort" not in plan, plan
        assert "sync_jobs_claim" in plan, plan
