"""Helpers shared by the store tests (test_store_*.py)."""
import glob
import json
import os
import shutil
import subprocess
import uuid

import pytest

from conftest import wait_for

DEFAULT_TENANT = "7a0c2f4e-1b7d-4c55-9a63-0d7e5b3f4a10"


def q(pg, db_url, sql, params=None):
    """Rows of `sql` run against the test's database."""
    return pg.psql(sql, params, db=db_url)


def readyz(d):
    """/readyz status code, or None while the daemon does not answer."""
    try:
        return d.http_get("/readyz", timeout=2)[0]
    except OSError:
        return None


def plugin_items(opts):
    """libconfig text for a plugin group's members: strings and booleans as
    JSON (true/false), numbers as they are."""
    return " ".join(f"{k} = {json.dumps(v) if isinstance(v, (str, bool)) else v};"
                    for k, v in opts.items())


def jobs_conf(lease_s, poll_ms=100, **plugin):
    """A config with fast job polling, a short lease and a plugins.good group."""
    return (f'log_level = "debug";\njob_poll_ms = {poll_ms};\njob_lease_s = {lease_s};\n'
            f"plugins = {{ good = {{ {plugin_items(plugin)} }}; }};\n")


def start_ready(daemon_factory, conf, **kw):
    """A daemon with the good plugin whose /readyz answers 200."""
    d = daemon_factory.start(conf_text=conf, plugins=["good"], **kw)
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-4000:]}")
    return d


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


def find_pg_dump():
    cands = []
    try:
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        cands.append(os.path.join(bindir, "pg_dump"))
    except OSError:
        pass
    cands += sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"),
                    key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
                    reverse=True)
    if shutil.which("pg_dump"):
        cands.append(shutil.which("pg_dump"))
    for c in cands:
        if os.access(c, os.X_OK):
            return c
    pytest.fail("pg_dump not found (pg_config --bindir, /usr/lib/postgresql/*/bin, PATH)")
