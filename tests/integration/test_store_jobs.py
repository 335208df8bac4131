"""Sync jobs with leases (FOR UPDATE SKIP LOCKED + lease expiry + fencing).

  - one daemon, 30 jobs: every job succeeds once, exact records/signals/cursors
  - a 'running' job whose lease expired (its host died) is taken over; one
    with a live lease and one for a provider loaded nowhere are left alone
  - two daemons, 200 jobs: every job ran exactly once, on one daemon only
  - two daemons, one SIGKILLed mid-job: the other finishes its jobs after the
    lease expires, with no gap and no duplicate signal
  - a job that keeps failing ends 'dead' with a dead_letters row
"""
import re
import time
from collections import Counter, defaultdict
from datetime import datetime

from conftest import wait_for
from store_helpers import jobs_conf, q, start_ready

def conf_text(lease_s=3, poll_ms=100, **plugin):
    return jobs_conf(lease_s, poll_ms, **plugin)


start = start_ready

TENANT = "3f1e8c2a-6b0d-4e7f-9a51-2c4d6e8f0a1b"
TERMINAL = ("succeeded", "dead")
STARTED_RE = re.compile(r"^job started: stream (\S+), (incremental|full refresh), "
                        r"attempt (\d+)/(\d+), owner (\S+)$")
OWNER_RE = re.compile(r"^jobs: claiming as (\S+) ")


# ----------------------------------------------------------------- helpers

def owner_of(d):
    for e in d.logs():
        m = OWNER_RE.match(e.get("msg", ""))
        if m:
            return m.group(1)
    raise AssertionError(f"no 'jobs: claiming as' line\n{d.log_text()[-2000:]}")


def add_connections(pg, db_url, n, provider="good"):
    rows = q(pg, db_url,
             "INSERT INTO connections (tenant_id, provider, auth_kind) "
             "SELECT %s, %s, 'none' FROM generate_series(1, %s) RETURNING id::text",
             (TENANT, provider, n))
    return [r[0] for r in rows]


def enqueue_for(pg, db_url, connections, provider="good", stream="items", max_attempts=4):
    rows = q(pg, db_url,
             "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, max_attempts) "
             "SELECT %s, c, %s, %s, %s FROM unnest(%s::uuid[]) AS c RETURNING id::text",
             (TENANT, provider, stream, max_attempts, connections))
    return [r[0] for r in rows]


def jobs(pg, db_url):
    rows = q(pg, db_url,
             "SELECT id::text, connection_id::text, state, attempts, records, lease_owner, "
             "lease_expires_at, last_error, started_at, finished_at FROM sync_jobs")
    keys = ("id", "connection_id", "state", "attempts", "records", "lease_owner",
            "lease_expires_at", "last_error", "started_at", "finished_at")
    return {r[0]: dict(zip(keys, r)) for r in rows}


def wait_terminal(pg, db_url, ids, timeout, daemons=()):
    ids = set(ids)

    def done():
        js = jobs(pg, db_url)
        return all(js[i]["state"] in TERMINAL for i in ids)
    if not _poll(done, timeout):
        js = jobs(pg, db_url)
        states = Counter(js[i]["state"] for i in ids)
        logs = "\n".join(d.log_text()[-3000:] for d in daemons)
        raise AssertionError(f"jobs not finished within {timeout}s: {dict(states)}\n{logs}")
    return jobs(pg, db_url)


def _poll(pred, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def job_events(d):
    """job id -> list of (event, entry) from one daemon's log, in order."""
    out = defaultdict(list)
    for e in d.logs():
        jid = e.get("job")
        msg = e.get("msg", "")
        if not jid:
            continue
        if msg.startswith("job started:"):
            out[jid].append(("started", e))
        elif msg.startswith("job succeeded"):
            out[jid].append(("succeeded", e))
        elif msg.startswith("job failed") or msg.startswith("job abandoned"):
            out[jid].append(("failed", e))
        elif msg.startswith("page "):
            out[jid].append(("page", e))
    return out


def count(events, kind):
    return sum(1 for k, _ in events if k == kind)


def seqs_by_connection(pg, db_url):
    out = defaultdict(list)
    for cid, seq in q(pg, db_url, "SELECT connection_id::text, (payload->>'seq')::int "
                                  "FROM signals ORDER BY 1, 2"):
        out[cid].append(seq)
    return out


def cursors(pg, db_url):
    return {r[0]: r[1] for r in q(pg, db_url, "SELECT connection_id::text, value FROM cursors "
                                              "WHERE provider = 'good'")}


def assert_no_duplicate_keys(pg, db_url):
    dup = q(pg, db_url, "SELECT dedupe_key, count(*) FROM signals GROUP BY 1 HAVING count(*) > 1 "
                        "LIMIT 5")
    assert not dup, f"duplicate dedupe keys: {dup}"
    dup = q(pg, db_url, "SELECT connection_id, payload->>'seq', count(*) FROM signals "
                        "GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 5")
    assert not dup, f"a record was stored twice: {dup}"


# ------------------------------------------------------------------- tests

def test_one_daemon_thirty_jobs_each_once(daemon_factory, pg_cluster, db_url):
    pages, size = 3, 5
    d = start(daemon_factory, conf_text(sync_pages=pages, sync_page_size=size))
    conns = add_connections(pg_cluster, db_url, 30)
    ids = enqueue_for(pg_cluster, db_url, conns)
    js = wait_terminal(pg_cluster, db_url, ids, 30, [d])

    per_job = pages * size
    for i in ids:
        j = js[i]
        assert j["state"] == "succeeded", j
        assert j["attempts"] == 1, j
        assert j["records"] == per_job, j
        assert j["lease_owner"] is None and j["lease_expires_at"] is None, j
        assert j["last_error"] is None, j
        assert j["started_at"] and j["finished_at"] and j["finished_at"] >= j["started_at"], j
    total = q(pg_cluster, db_url, "SELECT count(*), count(DISTINCT dedupe_key) FROM signals")[0]
    assert total == (30 * per_job, 30 * per_job)
    assert_no_duplicate_keys(pg_cluster, db_url)
    seqs = seqs_by_connection(pg_cluster, db_url)
    assert set(seqs) == set(conns)
    for c in conns:
        assert seqs[c] == list(range(1, per_job + 1)), (c, seqs[c])
    assert cursors(pg_cluster, db_url) == {c: str(per_job) for c in conns}
    # Each signal is attributed to the job that produced it.
    wrong = q(pg_cluster, db_url,
              "SELECT count(*) FROM signals s JOIN sync_jobs j ON j.connection_id = "
              "s.connection_id WHERE s.payload->>'job' <> j.id::text "
              "OR s.provenance->>'job_id' <> j.id::text")
    assert wrong == [(0,)]
    ev = job_events(d)
    for i in ids:
        assert count(ev[i], "started") == 1 and count(ev[i], "succeeded") == 1, ev[i]
        assert count(ev[i], "page") == pages


def test_expired_lease_is_taken_over(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, conf_text(lease_s=2, sync_pages=3, sync_page_size=5))
    orphan_c, live_c, unknown_c = add_connections(pg_cluster, db_url, 3)
    # A job whose host died: still 'running', lease expired a while ago.
    orphan = q(pg_cluster, db_url,
               "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, state, "
               "attempts, lease_owner, lease_expires_at, started_at) VALUES (%s, %s, 'good', "
               "'items', 'running', 1, 'dead-host:1:deadbeef', now() - interval '5 seconds', "
               "now() - interval '1 minute') RETURNING id::text", (TENANT, orphan_c))[0][0]
    # A job another (live) host holds: its lease is valid for a while yet.
    live = q(pg_cluster, db_url,
             "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, state, "
             "attempts, lease_owner, lease_expires_at, started_at) VALUES (%s, %s, 'good', "
             "'items', 'running', 1, 'alive-host:2:cafebabe', now() + interval '10 minutes', "
             "now()) RETURNING id::text", (TENANT, live_c))[0][0]
    # A job for a provider no daemon has loaded.
    nowhere = enqueue_for(pg_cluster, db_url, [unknown_c], provider="nowhere")[0]

    js = wait_terminal(pg_cluster, db_url, [orphan], 15, [d])
    j = js[orphan]
    assert j["state"] == "succeeded", j
    assert j["attempts"] == 2, f"attempts not incremented on takeover: {j}"
    assert j["lease_owner"] is None and j["records"] == 15, j
    ev = job_events(d)[orphan]
    started = [STARTED_RE.match(e["msg"]) for k, e in ev if k == "started"]
    assert len(started) == 1 and started[0].group(3) == "2", ev
    assert started[0].group(5) == owner_of(d)

    time.sleep(0.5)  # a few more poll cycles
    js = jobs(pg_cluster, db_url)
    assert js[live]["state"] == "running" and js[live]["attempts"] == 1, js[live]
    assert js[live]["lease_owner"] == "alive-host:2:cafebabe", "a live lease was stolen"
    assert not job_events(d).get(live), "the daemon ran a job under someone else's live lease"
    assert js[nowhere]["state"] == "queued" and js[nowhere]["attempts"] == 0, js[nowhere]
    assert not job_events(d).get(nowhere)


def test_two_daemons_two_hundred_jobs_exactly_once(daemon_factory, pg_cluster, db_url):
    pages, size, n = 3, 5, 200
    conf = conf_text(lease_s=3, sync_pages=pages, sync_page_size=size, sync_page_sleep_ms=5)
    a = start(daemon_factory, conf)
    b = start(daemon_factory, conf)
    conns = add_connections(pg_cluster, db_url, n)
    ids = enqueue_for(pg_cluster, db_url, conns)
    js = wait_terminal(pg_cluster, db_url, ids, 60, [a, b])

    per_job = pages * size
    bad = [js[i] for i in ids if js[i]["state"] != "succeeded" or js[i]["records"] != per_job]
    assert not bad, f"{len(bad)} job(s) not succeeded with {per_job} records: {bad[:3]}"
    retried = {i for i in ids if js[i]["attempts"] != 1}

    ev_a, ev_b = job_events(a), job_events(b)
    ran_a = {i for i in ids if count(ev_a[i], "started")}
    ran_b = {i for i in ids if count(ev_b[i], "started")}
    assert ran_a | ran_b == set(ids), f"{len(set(ids) - ran_a - ran_b)} job(s) never started"
    both = (ran_a & ran_b) - retried
    assert not both, f"{len(both)} job(s) started on both daemons, e.g. {sorted(both)[:3]}"
    assert ran_a and ran_b, f"one daemon ran everything (a: {len(ran_a)}, b: {len(ran_b)})"
    for i in set(ids) - retried:
        starts = count(ev_a[i], "started") + count(ev_b[i], "started")
        wins = count(ev_a[i], "succeeded") + count(ev_b[i], "succeeded")
        assert (starts, wins) == (1, 1), (i, ev_a[i], ev_b[i])
    assert not retried, f"{len(retried)} job(s) needed more than one attempt: " \
                        f"{[js[i] for i in sorted(retried)[:3]]}"

    total = q(pg_cluster, db_url, "SELECT count(*), count(DISTINCT dedupe_key) FROM signals")[0]
    assert total == (n * per_job, n * per_job)
    assert_no_duplicate_keys(pg_cluster, db_url)
    seqs = seqs_by_connection(pg_cluster, db_url)
    assert all(seqs[c] == list(range(1, per_job + 1)) for c in conns)
    for d in (a, b):
        lost = [e for e in d.logs() if "lease" in e.get("msg", "")
                and e.get("level") in ("warn", "error")]
        assert not lost, f"lease trouble in {d.dir.name}: {lost[:3]}"


def test_sigkill_daemon_jobs_finished_by_the_other(daemon_factory, pg_cluster, db_url):
    pages, size, n = 6, 5, 6
    per_job = pages * size
    conf = conf_text(lease_s=3, sync_pages=pages, sync_page_size=size, sync_page_sleep_ms=400)
    a = start(daemon_factory, conf)
    b = start(daemon_factory, conf)
    owner_a = owner_of(a)
    conns = add_connections(pg_cluster, db_url, n)
    ids = enqueue_for(pg_cluster, db_url, conns)
    by_conn = dict(zip(ids, conns))

    # Kill A as soon as it has committed a page of a job (mid-job).
    a.wait_for_log(lambda e: e.get("msg", "").startswith("page ") and e.get("job") in ids,
                   timeout=15)
    a.kill()
    # A's leases stay valid for up to lease_s: nobody else can touch its jobs
    # yet, and a COMMIT A sent just before dying has time to land.
    time.sleep(0.5)
    held = {i for i, j in jobs(pg_cluster, db_url).items()
            if j["state"] == "running" and j["lease_owner"] == owner_a}
    seqs_at_kill = seqs_by_connection(pg_cluster, db_url)
    ev_a = job_events(a)
    started_a = {i for i in ids if count(ev_a[i], "started")}
    done_a = {i for i in ids if count(ev_a[i], "succeeded")}
    assert held, f"A held no job when killed (A started {len(started_a)})"
    assert not held & done_a, "a job A reported done is still leased to A"
    assert started_a - done_a <= held, (started_a - done_a, held)
    assert any(seqs_at_kill.get(by_conn[i]) for i in held), "A died before committing a page"

    js = wait_terminal(pg_cluster, db_url, ids, 35, [a, b])
    ev_b = job_events(b)
    for i in ids:
        j = js[i]
        assert j["state"] == "succeeded", j
        assert j["lease_owner"] is None, j
    for i in held:
        j = js[i]
        assert j["attempts"] >= 2, f"job {i} held by the killed daemon: {j}"
        assert count(ev_b[i], "succeeded") == 1, f"B did not finish {i}: {ev_b[i]}"
        m = STARTED_RE.match(next(e for k, e in ev_b[i] if k == "started")["msg"])
        assert int(m.group(3)) >= 2, m.group(0)
        # B resumed after A's last committed page, not from the start.
        committed_by_a = len(seqs_at_kill.get(by_conn[i], []))
        assert committed_by_a % size == 0, f"a partial page of {i} is visible"
        # Every sync emits sync_pages pages after the cursor: B's run stores a
        # full job's worth on top of what A committed.
        assert j["records"] == per_job, (j, committed_by_a)
        attempt1 = q(pg_cluster, db_url, "SELECT count(*) FROM signals WHERE connection_id = %s "
                                         "AND (payload->>'attempt')::int = 1", (by_conn[i],))
        assert attempt1 == [(committed_by_a,)], "signals of the dead attempt were lost or redone"

    seqs = seqs_by_connection(pg_cluster, db_url)
    expect = {c: per_job for c in conns}
    for i in held:
        expect[by_conn[i]] += len(seqs_at_kill.get(by_conn[i], []))
    for c in conns:
        assert seqs[c] == list(range(1, expect[c] + 1)), f"gap or duplicate on {c}: {seqs[c]}"
    assert cursors(pg_cluster, db_url) == {c: str(expect[c]) for c in conns}
    assert_no_duplicate_keys(pg_cluster, db_url)


def test_failing_job_goes_dead_with_a_dead_letter(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, conf_text(sync_fail=True))
    (cid,) = add_connections(pg_cluster, db_url, 1)
    (jid,) = enqueue_for(pg_cluster, db_url, [cid], stream="orders", max_attempts=2)
    js = wait_terminal(pg_cluster, db_url, [jid], 20, [d])
    j = js[jid]
    assert j["state"] == "dead", j
    assert j["attempts"] == 2, j
    assert "status" in (j["last_error"] or ""), j
    assert j["lease_owner"] is None and j["finished_at"] is not None, j

    dl = q(pg_cluster, db_url, "SELECT kind, ref_id::text, tenant_id::text, provider, "
                               "connection_id::text, error, attempts, payload FROM dead_letters")
    assert len(dl) == 1, dl
    kind, ref, tenant, provider, conn, error, attempts, payload = dl[0]
    assert (kind, ref, tenant, provider, conn) == ("job", jid, TENANT, "good", cid)
    assert error == j["last_error"] and attempts == 2
    assert payload == {"stream": "orders", "kind": "incremental"}, payload
    assert q(pg_cluster, db_url, "SELECT count(*) FROM signals") == [(0,)]

    ev = job_events(d)[jid]
    assert count(ev, "started") == 2 and count(ev, "failed") == 2, ev
    msgs = [e["msg"] for k, e in ev if k == "failed"]
    assert "will retry" in msgs[0] and "dead" in msgs[1], msgs
    # The retry waited for the backoff (1 s base, +-25 %).
    ts = [datetime.fromisoformat(e["ts"].replace("Z", "+00:00")) for k, e in ev
          if k in ("started", "failed")]
    gap = (ts[2] - ts[1]).total_seconds()
    assert 0.7 <= gap <= 3.0, f"retry after {gap:.2f}s, expected about 1s"


def test_heartbeat_renews_only_jobs_this_host_is_running(daemon_factory, pg_cluster, db_url):
    """A 'running' row leased to this host that no worker executes (its outcome
    could not be recorded during a database outage, or the claim's answer was
    lost) must expire like any other lease and be taken again - even while the
    host is busy with other jobs. Renewing every lease the host's name is on
    would keep such a job 'running' for as long as the host has any work."""
    conf = conf_text(lease_s=2, sync_pages=20, sync_page_size=1, sync_page_sleep_ms=400)
    d = start(daemon_factory, conf, env={"INGEST_WORKERS": "4"})
    owner = owner_of(d)
    busy = enqueue_for(pg_cluster, db_url, add_connections(pg_cluster, db_url, 2))
    wait_for(lambda: all(count(job_events(d)[i], "page") for i in busy), 10,
             msg="the two long jobs did not start")
    (orphan_c,) = add_connections(pg_cluster, db_url, 1)
    orphan = q(pg_cluster, db_url,
               "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, state, "
               "attempts, lease_owner, lease_expires_at, started_at) VALUES (%s, %s, 'good', "
               "'items', 'running', 1, %s, now() + interval '1 second', now()) "
               "RETURNING id::text", (TENANT, orphan_c, owner))[0][0]
    # Lease ends in 1 s; give it the lease period again plus polling slack.
    taken = _poll(lambda: jobs(pg_cluster, db_url)[orphan]["attempts"] >= 2, 5)
    j = jobs(pg_cluster, db_url)[orphan]
    still_busy = [jobs(pg_cluster, db_url)[i]["state"] for i in busy]
    assert taken, (f"a job this host is not running kept its lease for 5 s "
                   f"(lease_s=2) while the host ran other jobs {still_busy}: "
                   f"state={j['state']} attempts={j['attempts']} "
                   f"lease_expires_at={j['lease_expires_at']} (renewed by the heartbeat)")
