"""A throw-away PostgreSQL cluster for tests, driven by pg.sh (next to this file)."""
import contextlib
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg2

from .util import free_port

PG_SH = Path(__file__).resolve().with_name("pg.sh")


class PgCluster:
    """A throw-away cluster managed by pg.sh (superuser "ingest", trust auth,
    fsync on, listening on 127.0.0.1:port)."""

    def __init__(self, directory, port):
        self.dir = Path(directory)
        self.port = port
        self.url = f"postgresql://ingest@127.0.0.1:{port}/ingest"
        self.admin_url = f"postgresql://ingest@127.0.0.1:{port}/postgres"
        self.running = False

    def _pg_sh(self, *args):
        r = subprocess.run(["bash", str(PG_SH), *args], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"pg.sh {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
        return r.stdout.strip()

    def start(self):
        self._pg_sh("start", str(self.dir), str(self.port))
        self.running = True

    def stop(self, mode="fast"):
        """mode: smart | fast | immediate (immediate = crash, recovery at next start)."""
        self._pg_sh("stop", str(self.dir), mode)
        self.running = False

    def db_url(self, name):
        return f"postgresql://ingest@127.0.0.1:{self.port}/{name}"

    def connect(self, db=None):
        """psycopg2 connection (autocommit) to db: a name, a URL, or None = "ingest"."""
        url = db if db and "://" in db else self.db_url(db or "ingest")
        conn = psycopg2.connect(url, connect_timeout=10)
        conn.autocommit = True
        return conn

    def psql(self, sql, params=None, db=None):
        """Run one statement; returns the rows (list of tuples), [] if none."""
        conn = self.connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def create_db(self, name=None):
        """Create an empty database; returns its URL."""
        name = name or f"t_{secrets.token_hex(6)}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"bad database name {name!r}")
        self.psql(f'CREATE DATABASE "{name}"', db="postgres")
        return self.db_url(name)

    def drop_db(self, name):
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', db="postgres")


@contextlib.contextmanager
def temporary_cluster():
    """A started PgCluster in a fresh directory under /tmp; stopped and removed
    on exit. (The `pg_cluster` fixture is this, once per session.)"""
    # Short path under /tmp: the unix socket path must stay under 108 bytes.
    d = tempfile.mkdtemp(prefix="ingest-pg-", dir="/tmp")
    cluster = None
    for attempt in range(3):  # the free port can be taken between probe and bind
        cluster = PgCluster(d, free_port())
        try:
            cluster.start()
            break
        except RuntimeError:
            if attempt == 2:
                shutil.rmtree(d, ignore_errors=True)
                raise
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def temporary_database(cluster):
    """URL of a fresh, empty database, dropped on exit (restarting the cluster
    first if the test stopped it). (The `db_url` fixture.)"""
    name = f"t_{secrets.token_hex(6)}"
    url = cluster.create_db(name)
    try:
        yield url
    finally:
        if not cluster.running:  # a test stopped the cluster and did not restart it
            cluster.start()
        cluster.drop_db(name)
