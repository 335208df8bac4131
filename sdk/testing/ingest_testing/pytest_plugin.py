"""pytest fixtures of the test kit. In a connector's conftest.py:

    pytest_plugins = ["ingest_testing.pytest_plugin"]

Session:   build_dir, hostd, hostctl, plugin_path, pg_cluster
Function:  db_url, daemon_factory, daemon, mock_api

The daemon is configured through the environment (INGEST_*), a minimal
hostd.conf and a private plugins/ directory; see DaemonFactory.start().
A test fails at teardown if the daemon reported an ASan/UBSan/LSan error or
died from a signal the test did not send. Where the binaries are comes from
INGEST_BUILD_DIR, INGEST_HOSTD, INGEST_HOSTCTL and INGEST_PLUGIN (build.py).
"""
import pytest

from .build import default_build_dir, find_hostctl, find_hostd, find_plugin
from .daemon import DaemonFactory
from .mock_api import MockAPI
from .pg import temporary_cluster, temporary_database


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "daemon(**kwargs): arguments for the `daemon` fixture's start()")


@pytest.fixture(scope="session")
def build_dir():
    """The ingest-host build directory (INGEST_BUILD_DIR), or None outside a
    source tree when it is not set."""
    return default_build_dir()


@pytest.fixture(scope="session")
def hostd(build_dir):
    return find_hostd(build_dir)


@pytest.fixture(scope="session")
def hostctl(build_dir):
    return find_hostctl(build_dir)


@pytest.fixture(scope="session")
def plugin_path(build_dir):
    """plugin_path("example") -> Path of ingest_example.so (see find_plugin)."""
    return lambda name: find_plugin(name, build_dir)


@pytest.fixture(scope="session")
def pg_cluster():
    """A throw-away PostgreSQL cluster under /tmp for the whole session."""
    with temporary_cluster() as cluster:
        yield cluster


@pytest.fixture
def db_url(pg_cluster):
    """URL of a fresh, empty database for this test only."""
    with temporary_database(pg_cluster) as url:
        yield url


@pytest.fixture
def daemon_factory(tmp_path, hostd, hostctl, db_url, build_dir):
    """daemon_factory.start(...) / daemon_factory(...) -> Daemon; see DaemonFactory.start."""
    factory = DaemonFactory(tmp_path, hostd, hostctl, db_url, build_dir)
    yield factory
    factory.teardown()


@pytest.fixture
def daemon(request, daemon_factory):
    """A started daemon with default settings; customise per test with
    @pytest.mark.daemon(plugins=["example"], env={...}, conf_text=...)."""
    marker = request.node.get_closest_marker("daemon")
    return daemon_factory.start(**(marker.kwargs if marker else {}))


@pytest.fixture
def mock_api():
    """A started MockAPI, stopped after the test."""
    api = MockAPI().start()
    yield api
    api.stop()
