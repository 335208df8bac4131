"""SIGTERM/SIGINT: stop accepting, let in-flight work finish (up to
shutdown_timeout_s), exit 0 (issue 2: graceful shutdown under in-flight work).
"""
import http.client
import signal
import time

import pytest

from conftest import db_count, plugin_entries


def slow_ticks(sleep_ms):
    return ('log_level = "debug";\n'
            f"plugins = {{ good = {{ interval_ms = 100; tick_sleep_ms = {sleep_ms}; }}; }};\n")


def stored(pg, url):
    return db_count(pg, url, "SELECT count(*) FROM signals WHERE source = 'good'")


def wait_in_flight(d):
    return d.wait_for(lambda: plugin_entries(d, "good")[0]["counts"]["inflight"] >= 1,
                      timeout=10, interval=0.05, msg="no tick ever in flight")


def http_refused(d):
    try:
        d.http_get("/healthz", timeout=2)
    except (ConnectionRefusedError, http.client.RemoteDisconnected, ConnectionResetError):
        return True
    except OSError:
        return True
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_shutdown_waits_for_in_flight_tick(sig, daemon_factory, pg_cluster, db_url):
    d = daemon_factory.start(conf_text=slow_ticks(2000), plugins=["good"])
    wait_in_flight(d)
    before = stored(pg_cluster, db_url)
    t0 = time.monotonic()
    d.send_signal(sig)

    # While the tick finishes: no new HTTP connections, no control socket.
    d.wait_for(lambda: http_refused(d), timeout=2, interval=0.05,
               msg="/healthz still answered during shutdown")
    assert d.alive(), "exited without waiting for the in-flight tick"
    r = d.ctl("ping")
    assert r.returncode == 2, r

    rc = d.wait_exit(timeout=15)
    elapsed = time.monotonic() - t0
    assert rc == 0, d.log_text()[-3000:]
    # The tick's signal (the next sequence number) was stored, and only that one.
    after = stored(pg_cluster, db_url)
    assert after == before + 1, (before, after)
    rows = pg_cluster.psql("SELECT payload->>'seq' FROM signals WHERE source = 'good' AND "
                           "dedupe_key = %s", (f"tick-{before + 1}",), db=db_url)
    assert rows == [(str(before + 1),)], rows
    [(cursor,)] = pg_cluster.psql("SELECT value FROM cursors WHERE provider = 'good' AND "
                                  "stream = 'ticks'", db=db_url)
    assert int(cursor) == before + 1
    assert elapsed < 10, elapsed

    assert http_refused(d)
    name = "SIGTERM" if sig == signal.SIGTERM else "SIGINT"
    msgs = [e.get("msg", "") for e in d.logs()]
    assert any(m.startswith(f"shutting down ({name})") for m in msgs), msgs[-10:]
    assert "stopped" in msgs, msgs[-10:]
    assert not any("abandoned" in m for m in msgs)


def test_shutdown_idle_is_quick(daemon_factory):
    d = daemon_factory.start(conf_text='log_level = "debug";\n'
                             "plugins = { good = { interval_ms = 100; }; };\n",
                             plugins=["good", "other"])
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - t0 < 3
    assert http_refused(d)


def test_shutdown_timeout_abandons_work(daemon_factory, pg_cluster, db_url):
    d = daemon_factory.start(conf_text=slow_ticks(10000), plugins=["good"],
                             env={"INGEST_SHUTDOWN_TIMEOUT_S": "1"})
    wait_in_flight(d)
    before = stored(pg_cluster, db_url)
    t0 = time.monotonic()
    d.send_signal(signal.SIGTERM)
    rc = d.wait_exit(timeout=8)
    elapsed = time.monotonic() - t0
    assert rc == 0, d.log_text()[-3000:]
    assert 0.8 <= elapsed <= 4, f"exited after {elapsed:.1f}s with shutdown_timeout_s = 1"
    lines = [e for e in d.logs() if "abandoned" in e.get("msg", "")]
    assert lines, "no log line about abandoned work"
    assert lines[0]["level"] in ("warn", "warning", "error"), lines
    assert "1 unit" in lines[0]["msg"], lines
    # the abandoned tick stored nothing
    assert stored(pg_cluster, db_url) == before


def test_shutdown_timeout_from_config_file(daemon_factory):
    conf = 'log_level = "debug";\nshutdown_timeout_s = 1;\n' + slow_ticks(10000).split("\n", 1)[1]
    d = daemon_factory.start(conf_text=conf, plugins=["good"])
    wait_in_flight(d)
    t0 = time.monotonic()
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit(timeout=8) == 0
    assert time.monotonic() - t0 <= 4
    assert any("up to 1 s" in e.get("msg", "") for e in d.logs())
