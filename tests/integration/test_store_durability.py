"""Durability of what the store acknowledges.

  - a daemon SIGKILLed between sync pages: signals and cursor always commit
    together, and after a restart the job resumes with no gap and no duplicate
  - the same dedupe key emitted again (full refresh) stores nothing new
  - PostgreSQL restarted under a running daemon: readiness goes false, the
    daemon reconnects, work resumes, nothing acknowledged is lost
"""
import re
import subprocess
import time

import pytest

from conftest import wait_for
from store_helpers import jobs_conf, q, readyz, start_ready

def conf_text(lease_s=2, poll_ms=100, **plugin):
    return jobs_conf(lease_s, poll_ms, **plugin)


start = start_ready

TENANT = "c4b2a1f0-9e8d-4c7b-a6f5-e4d3c2b1a090"
TERMINAL = ("succeeded", "dead")
PAGE_RE = re.compile(r"^page (\d+) committed up to seq (\d+)$")


# ----------------------------------------------------------------- helpers

def add_connection(pg, db_url):
    return q(pg, db_url, "INSERT INTO connections (tenant_id, provider, auth_kind) "
                         "VALUES (%s, 'good', 'none') RETURNING id::text", (TENANT,))[0][0]


def enqueue(pg, db_url, cid, kind="incremental", stream="items"):
    return q(pg, db_url, "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, kind) "
                         "VALUES (%s, %s, 'good', %s, %s) RETURNING id::text",
             (TENANT, cid, stream, kind))[0][0]


def job(pg, db_url, jid):
    r = q(pg, db_url, "SELECT state, attempts, records, last_error, lease_owner FROM sync_jobs "
                      "WHERE id = %s", (jid,))[0]
    return dict(zip(("state", "attempts", "records", "last_error", "lease_owner"), r))


def wait_job(pg, db_url, jid, timeout, daemons=()):
    def done():
        return job(pg, db_url, jid)["state"] in TERMINAL
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            logs = "\n".join(d.log_text()[-3000:] for d in daemons)
            pytest.fail(f"job {jid} not finished in {timeout}s: {job(pg, db_url, jid)}\n{logs}")
        time.sleep(0.1)
    return job(pg, db_url, jid)


def seqs(pg, db_url, cid):
    return [r[0] for r in q(pg, db_url, "SELECT (payload->>'seq')::int FROM signals "
                                        "WHERE connection_id = %s ORDER BY 1", (cid,))]


def snapshot(pg, db_url, cid):
    """(signals stored, cursor) for a connection, read in ONE snapshot."""
    return tuple(q(pg, db_url,
                   "SELECT (SELECT count(*) FROM signals WHERE connection_id = %(c)s),"
                   " (SELECT value::bigint FROM cursors WHERE connection_id = %(c)s)",
                   {"c": cid})[0])


def rows(pg, db_url, cid):
    return {r[0]: r[1:] for r in q(pg, db_url,
                                   "SELECT dedupe_key, id::text, created_at, payload FROM signals "
                                   "WHERE connection_id = %s", (cid,))}


def committed_pages(d, jid):
    """Seqs the plugin was told were committed (its 'page P committed up to seq N')."""
    out = []
    for e in d.logs():
        m = PAGE_RE.match(e.get("msg", ""))
        if m and e.get("job") == jid:
            out.append(int(m.group(2)))
    return out


# ------------------------------------------------------------------- tests

def test_crash_between_pages_resumes_without_gap_or_duplicate(daemon_factory, pg_cluster,
                                                              db_url):
    pages, size = 10, 5
    conf = conf_text(lease_s=2, sync_pages=pages, sync_page_size=size, sync_page_sleep_ms=300)
    a = start(daemon_factory, conf)
    cid = add_connection(pg_cluster, db_url)
    jid = enqueue(pg_cluster, db_url, cid)

    # While the job runs, signals and cursor always move together.
    samples = []

    def page_three():
        s = snapshot(pg_cluster, db_url, cid)
        samples.append(s)
        return s[1] is not None and s[1] >= 3 * size
    wait_for(page_three, 15, interval=0.05,
             msg=f"page 3 never committed\n{a.log_text()[-3000:]}")
    a.kill()
    time.sleep(0.3)  # let a COMMIT sent just before the kill land
    stored, cursor = snapshot(pg_cluster, db_url, cid)
    samples.append((stored, cursor))
    torn = [s for s in samples if (s[1] or 0) != s[0]]
    assert not torn, f"signals and cursor out of step (count, cursor): {torn}"
    assert cursor % size == 0 and 3 * size <= cursor < pages * size, cursor
    assert seqs(pg_cluster, db_url, cid) == list(range(1, cursor + 1))
    told = committed_pages(a, jid)
    assert told and max(told) <= cursor, f"a page reported committed was lost: {told} > {cursor}"
    j = job(pg_cluster, db_url, jid)
    assert j["state"] == "running" and j["attempts"] == 1, j

    before = rows(pg_cluster, db_url, cid)
    b = start(daemon_factory, conf)
    j = wait_job(pg_cluster, db_url, jid, 30, [a, b])
    assert j["state"] == "succeeded", j
    assert j["attempts"] == 2 and j["lease_owner"] is None, j
    # The resumed run continues after the cursor: it stores a full run's pages.
    assert j["records"] == pages * size, j
    final = cursor + pages * size
    assert seqs(pg_cluster, db_url, cid) == list(range(1, final + 1)), "gap or duplicate"
    assert snapshot(pg_cluster, db_url, cid) == (final, final)
    after = rows(pg_cluster, db_url, cid)
    assert {k: after[k] for k in before} == before, "rows committed before the crash changed"
    attempts = q(pg_cluster, db_url, "SELECT payload->>'attempt', count(*) FROM signals "
                                     "WHERE connection_id = %s GROUP BY 1 ORDER BY 1", (cid,))
    assert attempts == [("1", cursor), ("2", pages * size)], attempts
    resumed = committed_pages(b, jid)
    assert resumed[0] == cursor + size and resumed[-1] == final, resumed


def test_same_dedupe_key_twice_stores_one_row(daemon_factory, pg_cluster, db_url):
    pages, size = 3, 5
    d = start(daemon_factory, conf_text(sync_pages=pages, sync_page_size=size))
    cid = add_connection(pg_cluster, db_url)
    first = enqueue(pg_cluster, db_url, cid)
    j = wait_job(pg_cluster, db_url, first, 15, [d])
    assert (j["state"], j["records"]) == ("succeeded", 15), j
    before = rows(pg_cluster, db_url, cid)
    assert len(before) == 15

    # A full refresh re-emits the same 15 keys: all are no-ops.
    full = enqueue(pg_cluster, db_url, cid, kind="full")
    j = wait_job(pg_cluster, db_url, full, 15, [d])
    assert j["state"] == "succeeded", j
    assert j["records"] == 0, f"re-emitted keys counted as new records: {j}"
    assert rows(pg_cluster, db_url, cid) == before, "re-emitted keys changed or added rows"
    assert snapshot(pg_cluster, db_url, cid) == (15, 15)
    started = [e for e in d.logs() if e.get("job") == full
               and e.get("msg", "").startswith("job started")]
    assert started and "full refresh" in started[0]["msg"], started
    assert committed_pages(d, full) == [5, 10, 15], "the full refresh did not re-emit"

    # The next incremental run continues after the cursor.
    nxt = enqueue(pg_cluster, db_url, cid)
    j = wait_job(pg_cluster, db_url, nxt, 15, [d])
    assert (j["state"], j["records"]) == ("succeeded", 15), j
    assert seqs(pg_cluster, db_url, cid) == list(range(1, 31))
    dup = q(pg_cluster, db_url, "SELECT count(*) - count(DISTINCT (tenant_id, source, dedupe_key))"
                                " FROM signals")
    assert dup == [(0,)]


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_database_restart_while_daemon_runs(mode, daemon_factory, pg_cluster, db_url):
    pages, size = 6, 5
    conf = conf_text(lease_s=2, sync_pages=pages, sync_page_size=size, sync_page_sleep_ms=200)
    d = start(daemon_factory, conf, env={"INGEST_DATABASE_RETRY_MAX_S": "2"})

    done_c = add_connection(pg_cluster, db_url)
    done_j = enqueue(pg_cluster, db_url, done_c)
    assert wait_job(pg_cluster, db_url, done_j, 15, [d])["state"] == "succeeded"
    kept = rows(pg_cluster, db_url, done_c)
    assert len(kept) == pages * size

    # A job in flight when the database goes away.
    busy_c = add_connection(pg_cluster, db_url)
    busy_j = enqueue(pg_cluster, db_url, busy_c)
    d.wait_for_log(lambda e: e.get("job") == busy_j and PAGE_RE.match(e.get("msg", "")),
                   timeout=15)
    assert readyz(d) == 200

    try:
        pg_cluster.stop(mode)
        told_at_outage = committed_pages(d, busy_j)
        wait_for(lambda: readyz(d) == 503, 10,
                 msg=f"/readyz still not 503 10 s after PostgreSQL stopped\n"
                     f"{d.log_text()[-3000:]}")
        assert d.http_get("/healthz", timeout=5)[0] == 200, "liveness must not depend on the DB"
        health = d.ctl_json("health")
        assert health["database"]["status"] == "down", health
        assert health["status"] == "degraded" and health["database"].get("error"), health
        assert d.ctl("health").returncode == 1
        r = subprocess.run([str(d.hostctl), "-s", d.sock, "connection-add", "good", "--tenant",
                            TENANT], input="{}", capture_output=True, text=True, env=d.env,
                           timeout=30)
        assert r.returncode == 1, f"connection-add with the database down: {r.returncode}"
        assert d.alive()
    finally:
        if not pg_cluster.running:
            pg_cluster.start()

    wait_for(lambda: readyz(d) == 200, 35,
             msg=f"/readyz not 200 again within 35 s\n{d.log_text()[-3000:]}")
    assert d.ctl_json("health")["database"]["status"] == "ok"

    # Work enqueued after the restart runs.
    new_c = add_connection(pg_cluster, db_url)
    new_j = enqueue(pg_cluster, db_url, new_c)
    j = wait_job(pg_cluster, db_url, new_j, 20, [d])
    assert (j["state"], j["records"]) == ("succeeded", pages * size), j
    assert seqs(pg_cluster, db_url, new_c) == list(range(1, pages * size + 1))

    # The interrupted job is finished (lease expiry or retry), without gap or duplicate.
    j = wait_job(pg_cluster, db_url, busy_j, 30, [d])
    assert j["state"] == "succeeded" and j["attempts"] >= 2, j
    got = seqs(pg_cluster, db_url, busy_c)
    assert got == list(range(1, len(got) + 1)), f"gap or duplicate: {got}"
    assert snapshot(pg_cluster, db_url, busy_c) == (len(got), len(got))
    # Every page the store acknowledged before the outage survived it.
    assert told_at_outage and max(told_at_outage) <= len(got)
    assert len(got) >= pages * size + max(told_at_outage)

    # Signals committed before the outage are all still there, unchanged.
    assert rows(pg_cluster, db_url, done_c) == kept
    msgs = [e.get("msg", "") for e in d.logs()]
    assert any(m.startswith("store: lost the PostgreSQL connection") or
               m.startswith("store: cannot connect") for m in msgs), "outage not logged"
    assert d.alive()
