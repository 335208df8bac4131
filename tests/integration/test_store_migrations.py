"""Schema migrations: from an empty database, re-run as a no-op, two daemons
(and `ingest-hostctl migrate`) racing on one empty database, a failing step
rolled back on its own, and an unreachable database.

Durability contract under test (issue 3): migrations are embedded, applied at
start and by `ingest-hostctl migrate`, each in its own transaction, recorded in
schema_migrations, and safe when several processes start at once (advisory
lock).
"""
import json
import os
import re
import subprocess

import pytest

from conftest import free_port, wait_for
from store_helpers import q, readyz

LATEST = 8
EXPECTED_TABLES = {
    "schema_migrations", "signals", "cursors", "providers", "connections",
    "connection_secrets", "sync_jobs", "webhook_deliveries", "idempotency_keys",
    "dead_letters",
}
# The signals table is a public contract: exact columns, types, nullability.
SIGNALS_COLUMNS = [
    ("id", "uuid", "NO"),
    ("tenant_id", "uuid", "NO"),
    ("connection_id", "uuid", "YES"),
    ("source", "text", "NO"),
    ("kind", "text", "NO"),
    ("occurred_at", "timestamp with time zone", "NO"),
    ("dedupe_key", "text", "NO"),
    ("payload", "jsonb", "NO"),
    ("raw", "jsonb", "YES"),
    ("provenance", "jsonb", "NO"),
    ("created_at", "timestamp with time zone", "NO"),
]
APPLIED_RE = re.compile(r"store: applied (\d+) migration\(s\)")


# ----------------------------------------------------------------- helpers

def tables(pg, db_url):
    return {r[0] for r in q(pg, db_url, "SELECT tablename FROM pg_tables "
                                        "WHERE schemaname = 'public'")}


def migration_rows(pg, db_url):
    return q(pg, db_url, "SELECT version, name, applied_at FROM schema_migrations "
                         "ORDER BY version")


def ctl_env(db_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env["INGEST_DATABASE_URL"] = db_url
    return env


def migrate_cmd(hostctl, conf, *extra):
    return [str(hostctl), "-c", str(conf), "migrate", *extra]


def run_migrate(hostctl, conf, db_url, *extra, timeout=60):
    return subprocess.run(migrate_cmd(hostctl, conf, *extra), capture_output=True, text=True,
                          env=ctl_env(db_url), stdin=subprocess.DEVNULL, timeout=timeout)


def migrate_json(hostctl, conf, db_url):
    r = run_migrate(hostctl, conf, db_url, "--json")
    assert r.returncode == 0, f"migrate exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    try:
        return json.loads(r.stdout)
    except ValueError:
        pytest.fail(f"migrate --json printed no JSON: {r.stdout!r} {r.stderr!r}")


@pytest.fixture
def conf(tmp_path):
    p = tmp_path / "ctl.conf"
    p.write_text('log_level = "info";\n')
    return p


def wait_ready(d, timeout=20):
    wait_for(lambda: readyz(d) == 200, timeout,
             msg=f"/readyz never 200 within {timeout}s\n{d.log_text()[-4000:]}")


def applied_in_logs(d):
    return sum(int(m.group(1)) for e in d.logs() for m in [APPLIED_RE.search(e.get("msg", ""))]
               if m)


def assert_full_schema(pg, db_url):
    missing = EXPECTED_TABLES - tables(pg, db_url)
    assert not missing, f"tables missing after migration: {sorted(missing)}"
    rows = migration_rows(pg, db_url)
    assert [r[0] for r in rows] == list(range(1, LATEST + 1)), rows
    assert all(r[1] and r[2] for r in rows), f"name/applied_at not recorded: {rows}"


# ------------------------------------------------------------------- tests

def test_migrate_from_empty_database_then_rerun_is_noop(hostctl, pg_cluster, db_url, conf):
    assert tables(pg_cluster, db_url) == set(), "the fresh database is not empty"

    out = migrate_json(hostctl, conf, db_url)
    assert out == {"applied": LATEST, "version": LATEST}
    assert_full_schema(pg_cluster, db_url)

    cols = q(pg_cluster, db_url,
             "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
             "WHERE table_schema = 'public' AND table_name = 'signals' ORDER BY ordinal_position")
    assert [tuple(c) for c in cols] == SIGNALS_COLUMNS

    uniques = q(pg_cluster, db_url, """
        SELECT array_agg(a.attname::text ORDER BY k.ord)
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = 'signals'::regclass AND i.indisunique
        GROUP BY i.indexrelid""")
    assert ["tenant_id", "source", "dedupe_key"] in [u[0] for u in uniques], uniques

    # Indexes for the REST filters: tenant + time, source + kind + time.
    idx = [r[0] for r in q(pg_cluster, db_url,
                           "SELECT indexdef FROM pg_indexes WHERE tablename = 'signals'")]
    assert any(re.search(r"\(tenant_id, occurred_at", d) for d in idx), idx
    assert any(re.search(r"\(source, kind, occurred_at", d) for d in idx), idx

    before = migration_rows(pg_cluster, db_url)
    again = migrate_json(hostctl, conf, db_url)
    assert again == {"applied": 0, "version": LATEST}
    assert migration_rows(pg_cluster, db_url) == before, "a no-op re-run rewrote history"

    # The plain-text form says the same.
    r = run_migrate(hostctl, conf, db_url)
    assert r.returncode == 0, r.stderr
    assert "applied 0 migration(s)" in r.stdout and f"version {LATEST}" in r.stdout, r.stdout


def test_daemon_migrates_at_start_and_restart_is_noop(daemon_factory, hostctl, pg_cluster,
                                                      db_url, conf):
    d1 = daemon_factory.start()
    wait_ready(d1)
    assert_full_schema(pg_cluster, db_url)
    assert applied_in_logs(d1) == LATEST, d1.log_text()
    first = migration_rows(pg_cluster, db_url)
    assert migrate_json(hostctl, conf, db_url) == {"applied": 0, "version": LATEST}
    d1.stop()

    d2 = daemon_factory.start()
    wait_ready(d2)
    assert applied_in_logs(d2) == 0, "a restart re-applied migrations:\n" + d2.log_text()
    assert migration_rows(pg_cluster, db_url) == first


def test_two_daemons_and_ctl_migrate_start_at_once_on_empty_database(
        daemon_factory, hostctl, pg_cluster, db_url, conf):
    """Two daemons (two store connections each) and two `ctl migrate` runs race
    on one empty database: every migration is applied exactly once."""
    assert tables(pg_cluster, db_url) == set()
    env = ctl_env(db_url)
    ctls = []
    daemons = []
    try:
        # Spawn everything back to back before waiting on anything.
        daemons.append(daemon_factory.start(wait_ready=False))
        ctls.append(subprocess.Popen(migrate_cmd(hostctl, conf, "--json"), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL))
        daemons.append(daemon_factory.start(wait_ready=False))
        ctls.append(subprocess.Popen(migrate_cmd(hostctl, conf, "--json"), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL))
        outs = [p.communicate(timeout=60) for p in ctls]
    finally:
        for p in ctls:
            if p.poll() is None:
                p.kill()
                p.wait()
    for d in daemons:
        d.wait_ready()
        wait_ready(d)

    for p, (out, err) in zip(ctls, outs):
        assert p.returncode == 0, f"concurrent migrate exited {p.returncode}: {out} {err}"
    ctl_applied = [json.loads(out)["applied"] for out, _ in outs]

    per_version = q(pg_cluster, db_url, "SELECT version, count(*) FROM schema_migrations "
                                        "GROUP BY version ORDER BY version")
    assert per_version == [(v, 1) for v in range(1, LATEST + 1)]
    assert_full_schema(pg_cluster, db_url)

    # Each migration was applied by exactly one of the six migrators.
    total = sum(ctl_applied) + sum(applied_in_logs(d) for d in daemons)
    assert total == LATEST, (f"migrations applied {total} times in all (ctl: {ctl_applied}, "
                             f"daemons: {[applied_in_logs(d) for d in daemons]})")

    for d in daemons:
        bad = [e for e in d.logs() if e.get("level") in ("warn", "error")
               and ("migration" in e.get("msg", "") or "cannot connect" in e.get("msg", ""))]
        assert not bad, f"migration trouble in {d.dir.name}: {bad}"
        health = d.ctl_json("health")
        assert health["database"]["status"] == "ok", health


def test_failed_migration_step_rolls_back_alone(hostctl, pg_cluster, db_url, conf):
    # A table in the way makes step 2 fail near its end (dead_letters is one of
    # the last objects it creates); step 1 must stay, step 2 must leave nothing.
    q(pg_cluster, db_url, "CREATE TABLE dead_letters (squatter int)")
    r = run_migrate(hostctl, conf, db_url, "--json")
    assert r.returncode == 1, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "migration 2" in r.stderr and "dead_letters" in r.stderr, r.stderr
    assert [row[0] for row in migration_rows(pg_cluster, db_url)] == [1]
    present = tables(pg_cluster, db_url)
    assert {"signals", "cursors", "schema_migrations"} <= present
    leaked = present & {"providers", "connections", "connection_secrets", "sync_jobs",
                        "webhook_deliveries", "idempotency_keys"}
    assert not leaked, f"half of the failed step 2 was committed: {sorted(leaked)}"
    # The lock was released: a retry after fixing the database completes.
    q(pg_cluster, db_url, "DROP TABLE dead_letters")
    assert migrate_json(hostctl, conf, db_url) == {"applied": LATEST - 1, "version": LATEST}
    assert_full_schema(pg_cluster, db_url)


def test_migrate_against_unreachable_database_exits_2(hostctl, conf):
    url = f"postgresql://ingest@127.0.0.1:{free_port()}/nowhere"
    r = run_migrate(hostctl, conf, url, "--json", timeout=30)
    assert r.returncode == 2, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "cannot connect" in r.stderr, r.stderr
    assert "applied" not in r.stdout, r.stdout
