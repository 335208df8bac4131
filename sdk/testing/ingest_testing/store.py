"""Helpers over a running daemon and its database: connections, queries,
readiness, the plugin list."""
import json
import subprocess
import uuid

DEFAULT_TENANT = "7a0c2f4e-1b7d-4c55-9a63-0d7e5b3f4a10"


def q(pg, db_url, sql, params=None):
    """Rows of `sql` run against the test's database."""
    return pg.psql(sql, params, db=db_url)


def db_count(pg_cluster, db_url, sql, params=None):
    """First column of the first row of `sql` on the test's database; 0 while
    the daemon has not created the table yet."""
    import psycopg2.errors
    try:
        rows = pg_cluster.psql(sql, params, db=db_url)
    except psycopg2.errors.UndefinedTable:
        return 0
    return rows[0][0] if rows else 0


def readyz(d):
    """/readyz status code, or None while the daemon does not answer."""
    try:
        return d.http_get("/readyz", timeout=2)[0]
    except OSError:
        return None


def connection_add(d, provider, secret_values, tenant=DEFAULT_TENANT, name=None):
    """`ingest-hostctl connection-add` with the secrets on stdin; returns the id."""
    cmd = [str(d.hostctl), "-s", d.sock, "connection-add", provider, "--tenant", tenant,
           "--json"]
    if name:
        cmd += ["--name", name]
    r = subprocess.run(cmd, input=json.dumps(secret_values), capture_output=True, text=True,
                       env=d.env, timeout=30)
    assert r.returncode == 0, f"connection-add exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    for v in secret_values.values():
        assert v not in r.stdout + r.stderr, "connection-add echoed a secret"
    cid = json.loads(r.stdout)["id"]
    uuid.UUID(cid)
    return cid


def plugin_entries(daemon, name=None):
    """`list --json` entries, all or those named `name` (a replaced plugin can
    have two: the draining old version and the new one)."""
    entries = daemon.ctl_json("list", check=True)
    assert isinstance(entries, list), entries
    return [e for e in entries if name is None or e["name"] == name]
