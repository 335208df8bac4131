"""ingest_testing: the SDK's test kit for ingest-host connectors.

Real ingest-hostd, real PostgreSQL, a mock of the provider's API:

    PgCluster, temporary_cluster, temporary_database   pg.py (drives pg.sh)
    Daemon, DaemonFactory                               daemon.py
    find_plugin, find_hostd, find_hostctl               build.py (INGEST_* variables)
    wait_for, free_port                                 util.py
    connection_add, q, db_count, readyz, plugin_entries store.py
    MockAPI, Request, Reply, json_reply, error_reply    mock_api.py

and the pytest fixtures in ingest_testing.pytest_plugin (pg_cluster, db_url,
daemon_factory, daemon, build_dir, hostd, hostctl, plugin_path, mock_api).
A connector's conftest.py needs one line:

    pytest_plugins = ["ingest_testing.pytest_plugin"]

with this package's parent directory on sys.path (or PYTHONPATH).
See section 6 of sdk/README.md.
"""
from .build import default_build_dir, find_hostctl, find_hostd, find_plugin, require
from .daemon import DEFAULT_CONF, READY_TIMEOUT, SANITIZER_MARKERS, Daemon, DaemonFactory
from .mock_api import MockAPI, Reply, Request, error_reply, json_reply, send
from .pg import PG_SH, PgCluster, temporary_cluster, temporary_database
from .store import DEFAULT_TENANT, connection_add, db_count, plugin_entries, q, readyz
from .util import free_port, wait_for

__all__ = [
    "DEFAULT_CONF", "DEFAULT_TENANT", "PG_SH", "READY_TIMEOUT", "SANITIZER_MARKERS",
    "Daemon", "DaemonFactory", "MockAPI", "PgCluster", "Reply", "Request",
    "connection_add", "db_count", "default_build_dir", "error_reply", "find_hostctl",
    "find_hostd", "find_plugin", "free_port", "json_reply", "plugin_entries", "q", "readyz",
    "require", "send", "temporary_cluster", "temporary_database", "wait_for",
]
