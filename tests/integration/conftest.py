"""Fixtures shared by every integration test.

The reusable parts live in the SDK's test kit, sdk/testing/ingest_testing
(see section 6 of sdk/README.md); this file loads its pytest plugin and adds
what is specific to this test suite.

Session:   build_dir, hostd, hostctl, plugin_path, pg_cluster
Function:  db_url, daemon_factory, daemon, mock_api

The daemon is configured through the environment (INGEST_*), a minimal
hostd.conf and a private plugins/ directory; see DaemonFactory.start().
A test fails at teardown if the daemon reported an ASan/UBSan/LSan error or
died from a signal the test did not send.
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "sdk" / "testing"))

# The fixtures: build_dir, hostd, hostctl, plugin_path, pg_cluster, db_url,
# daemon_factory, daemon (with @pytest.mark.daemon(...)), mock_api.
pytest_plugins = ["ingest_testing.pytest_plugin"]

# Re-exported for test modules (`from conftest import ...`).
from ingest_testing import (  # noqa: E402,F401
    DEFAULT_CONF, PG_SH, READY_TIMEOUT, SANITIZER_MARKERS, Daemon, DaemonFactory, PgCluster,
    db_count, find_plugin, free_port, plugin_entries, wait_for)
from ingest_testing.build import default_build_dir as _build_dir  # noqa: E402,F401
from ingest_testing.build import require as _require  # noqa: E402,F401


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")


# ------------------------------------------------------- helpers for test modules
# Plain functions (no fixtures): `from conftest import ...` in a test module.

def is_asan_build(build_dir=None):
    """True when the daemon under test is a sanitizer build (dir name has 'asan')."""
    return "asan" in Path(build_dir or _build_dir()).name.lower()
