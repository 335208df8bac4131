"""Helpers shared by the store tests (test_store_*.py).

connection_add, q, readyz and DEFAULT_TENANT come from the SDK's test kit
(sdk/testing/ingest_testing/store.py); the rest is specific to this suite."""
import glob
import json
import os
import shutil
import subprocess

import pytest

from conftest import wait_for
from ingest_testing.store import DEFAULT_TENANT, connection_add, q, readyz  # noqa: F401


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
