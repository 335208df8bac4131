"""HTTP server basics: /healthz, /readyz, problem+json errors, /metrics, and
secret redaction in logs."""
import json
import re
import time

import pytest

from conftest import plugin_entries

TICK = 'log_level = "debug";\nplugins = { good = { interval_ms = 100; }; };\n'
CLOSED_DB = "postgresql://ingest@127.0.0.1:1/ingest?connect_timeout=2"


def problem(status, headers, body, code=None):
    """Check an RFC 7807 answer; returns the parsed body."""
    assert headers.get_content_type() == "application/problem+json", dict(headers)
    doc = json.loads(body)
    assert doc["status"] == status, doc
    if code:
        assert doc["code"] == code, doc
    return doc


def test_healthz(daemon_factory):
    d = daemon_factory.start()
    status, headers, body = d.http_get("/healthz")
    assert status == 200
    assert headers.get_content_type() == "application/json"
    assert json.loads(body) == {"status": "ok"}
    # HEAD is allowed on the same routes
    status, _, _ = d.http("HEAD", "/healthz")
    assert status == 200


def test_readyz_ready_with_database(daemon_factory):
    d = daemon_factory.start(conf_text=TICK, plugins=["good"])
    status, headers, body = d.wait_for(
        lambda: (lambda r: r if r[0] == 200 else None)(d.http_get("/readyz")),
        msg="/readyz never 200 with the database up")
    assert headers.get_content_type() == "application/json"
    assert json.loads(body)["status"] in ("ok", "ready")


def test_unknown_path_404(daemon_factory):
    d = daemon_factory.start()
    for path in ("/nope", "/healthz/extra", "/", "/metrics.txt"):
        status, headers, body = d.http_get(path)
        assert status == 404, path
        problem(404, headers, body, "not_found")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_wrong_method_405(method, path, daemon_factory):
    d = daemon_factory.start()
    status, headers, body = d.http(method, path, body=b"{}")
    assert status == 405
    problem(405, headers, body, "method_not_allowed")
    allow = {m.strip() for m in headers.get("Allow", "").split(",")}
    assert "GET" in allow, dict(headers)


def parse_metrics(text):
    """{(name, frozenset(labels)): value} from Prometheus text format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, f"malformed metrics line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def test_metrics(daemon_factory):
    d = daemon_factory.start(conf_text=TICK, plugins=["good"])
    d.wait_for(lambda: d.http_get("/readyz")[0] == 200, msg="never ready")
    # (a tick that fires before the store is connected fails with EIO and is
    # counted; from readiness on, none may fail)
    failed_at_ready = plugin_entries(d, "good")[0]["counts"]["tick_failures"]
    n = plugin_entries(d, "good")[0]["counts"]["ticks"]
    d.wait_for(lambda: plugin_entries(d, "good")[0]["counts"]["ticks"] >= n + 3)
    status, headers, body = d.http_get("/metrics")
    assert status == 200
    assert headers.get_content_type() == "text/plain"
    text = body.decode()
    metrics = parse_metrics(text)
    good = frozenset({("plugin", "good")})
    ticks = metrics[("ingest_plugin_ticks_total", good)]
    assert ticks >= 3
    assert "# TYPE ingest_plugin_ticks_total counter" in text
    assert metrics[("ingest_plugin_tick_failures_total", good)] == failed_at_ready
    assert metrics[("ingest_signals_stored_total", good)] >= 3
    # the plugin's own counter, registered through the API table
    assert metrics[("ingest_plugin_test_ticks_total", good)] >= 3
    # the listing and /metrics count the same ticks (both monotonic: bracket it)
    listed = plugin_entries(d, "good")[0]["counts"]["ticks"]
    assert listed >= ticks
    # a reload is counted
    before = metrics.get(("ingest_reloads_total", frozenset({("result", "ok")})), 0)
    d.ctl("reload", check=True)
    metrics = parse_metrics(d.http_get("/metrics")[2].decode())
    assert metrics[("ingest_reloads_total", frozenset({("result", "ok")}))] == before + 1


def test_metrics_of_unloaded_plugin_disappear(daemon_factory):
    d = daemon_factory.start(conf_text=TICK, plugins=["good"])
    d.wait_for(lambda: plugin_entries(d, "good")[0]["counts"]["ticks"] >= 1)
    d.remove_plugin("ingest_good.so")
    d.ctl("reload", check=True)
    d.wait_for(lambda: not plugin_entries(d, "good"))
    text = d.http_get("/metrics")[2].decode()
    assert 'plugin="good"' not in text, text


def test_readyz_503_when_database_unreachable(daemon_factory):
    d = daemon_factory.start(conf_text=TICK, plugins=["good"],
                             env={"INGEST_DATABASE_URL": CLOSED_DB})
    assert d.http_get("/healthz")[0] == 200
    status, headers, body = d.http_get("/readyz")
    assert status == 503
    doc = problem(503, headers, body, "database_unavailable")
    assert doc.get("message")
    assert headers.get("Retry-After"), dict(headers)
    # still alive and reporting: health degraded with the database down
    h = d.ctl("health", "--json")
    assert h.returncode == 1
    assert json.loads(h.stdout)["database"]["status"] == "down"
    time.sleep(0.3)
    assert d.http_get("/readyz")[0] == 503
    assert d.alive()


def test_readyz_follows_database_outage(daemon_factory, pg_cluster):
    """Readiness goes false while PostgreSQL is down and comes back after a
    reconnect (backoff capped by database_retry_max_s)."""
    d = daemon_factory.start(conf_text=TICK, plugins=["good"],
                             env={"INGEST_DATABASE_RETRY_MAX_S": "1"})
    d.wait_for(lambda: d.http_get("/readyz")[0] == 200, msg="never ready")
    pg_cluster.stop()
    try:
        d.wait_for(lambda: d.http_get("/readyz")[0] == 503, timeout=15,
                   msg="/readyz stayed 200 with PostgreSQL stopped")
        assert d.http_get("/healthz")[0] == 200
        assert d.ctl_json("health")["database"]["status"] == "down"
    finally:
        pg_cluster.start()
    d.wait_for(lambda: d.http_get("/readyz")[0] == 200, timeout=20,
               msg="/readyz never recovered after PostgreSQL came back")
    assert d.ctl_json("health")["database"]["status"] == "ok"
    # ticks store again
    n = plugin_entries(d, "good")[0]["counts"]["signals_stored"]
    d.wait_for(lambda: plugin_entries(d, "good")[0]["counts"]["signals_stored"] >= n + 2,
               timeout=10, msg="no signals stored after the database came back")


def test_secret_redacted(daemon_factory, pg_cluster, db_url):
    token = "tok_Sup3rS3cretValue_9f8e7d"
    conf = ('log_level = "debug";\n'
            f'plugins = {{ good = {{ interval_ms = 100; token = "{token}"; }}; }};\n')
    d = daemon_factory.start(conf_text=conf, plugins=["good"])
    d.wait_for(lambda: any("[REDACTED]" in e.get("msg", "") for e in d.logs()),
               msg="no redacted tick log line")
    lines = [e for e in d.logs() if e.get("plugin") == "good" and "using token" in
             e.get("msg", "")]
    assert lines and all(e["msg"].endswith("using token [REDACTED]") for e in lines), lines
    # nor in what the control socket and /metrics print
    outputs = [d.ctl("list", "--json").stdout, d.ctl("health", "--json").stdout,
               d.ctl("reload", "--json").stdout, d.http_get("/metrics")[2].decode()]
    d.stop()
    text = d.stderr_path.read_text() + d.stdout_path.read_text()
    assert token not in text
    for out in outputs:
        assert token not in out
    stored = pg_cluster.psql("SELECT count(*) FROM signals WHERE payload::text LIKE %s OR "
                             "provenance::text LIKE %s", (f"%{token}%", f"%{token}%"),
                             db=db_url)
    assert stored == [(0,)]


def test_secret_from_environment_redacted(daemon_factory):
    token = "envTok_0123456789abcdef"
    d = daemon_factory.start(conf_text=TICK, plugins=["good"],
                             env={"INGEST_PLUGINS_GOOD_TOKEN": token})
    d.wait_for(lambda: any("using token [REDACTED]" in e.get("msg", "") for e in d.logs()),
               msg="no redacted tick log line")
    d.stop()
    assert token not in d.stderr_path.read_text() + d.stdout_path.read_text()
