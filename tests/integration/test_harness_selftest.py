"""Tests of the test harness itself (conftest.py); they need no ingest-hostd.

The daemon fixtures are exercised against a tiny fake daemon written in
Python, so harness bugs show up here and not as mysterious daemon failures.
"""
import sys
import textwrap

import psycopg2
import pytest

from conftest import DaemonFactory

FAKE_HOSTD = textwrap.dedent("""\
    import http.server, json, os, signal, sys
    host, port = os.environ["INGEST_LISTEN"].rsplit(":", 1)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if self.path == "/healthz" else 404
            self.send_response(code); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a):
            print(json.dumps({"level": "debug", "msg": "http", "path": self.path}),
                  file=sys.stderr, flush=True)
    def term(*_):
        if os.environ.get("FAKE_ASAN"):
            print("==1==ERROR: AddressSanitizer: heap-use-after-free", file=sys.stderr)
        sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    print("not json: sanitizer or other noise", file=sys.stderr)
    print(json.dumps({"level": "info", "msg": "started",
                      "plugins": sorted(os.listdir(os.environ["INGEST_PLUGIN_DIR"]))}),
          file=sys.stderr, flush=True)
    http.server.HTTPServer((host, int(port)), H).serve_forever()
""")

FAKE_HOSTCTL = textwrap.dedent("""\
    import json, sys
    print(json.dumps({"argv": sys.argv[1:]}))
""")


def script(path, body):
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_factory(tmp_path, db_url):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    hostd = script(bindir / "hostd", FAKE_HOSTD)
    hostctl = script(bindir / "hostctl", FAKE_HOSTCTL)
    return DaemonFactory(tmp_path / "run", hostd, hostctl, db_url, tmp_path)


def test_cluster_answers(pg_cluster):
    assert pg_cluster.psql("SELECT 1") == [(1,)]
    assert pg_cluster.psql("SHOW fsync") == [("on",)]
    with psycopg2.connect(pg_cluster.url) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, current_database()")
        assert cur.fetchone() == ("ingest", "ingest")


def test_create_db_is_isolated(pg_cluster, db_url):
    other = pg_cluster.create_db()
    assert other != db_url
    pg_cluster.psql("CREATE TABLE t (x int)", db=db_url)
    pg_cluster.psql("INSERT INTO t VALUES (%s)", (42,), db=db_url)
    assert pg_cluster.psql("SELECT x FROM t", db=db_url) == [(42,)]
    assert pg_cluster.psql("SELECT to_regclass('t')", db=other) == [(None,)]
    pg_cluster.drop_db(other.rsplit("/", 1)[1])


def test_stop_start_keeps_data(pg_cluster, db_url):
    pg_cluster.psql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)", db=db_url)
    pg_cluster.stop()
    try:
        with pytest.raises(psycopg2.OperationalError):
            pg_cluster.psql("SELECT 1")
    finally:
        pg_cluster.start()
    assert pg_cluster.psql("SELECT x FROM kept", db=db_url) == [(7,)]


def test_immediate_stop_recovers(pg_cluster, db_url):
    pg_cluster.psql("CREATE TABLE c (x int); INSERT INTO c VALUES (1)", db=db_url)
    pg_cluster.stop("immediate")  # crash: committed rows must survive recovery
    pg_cluster.start()
    assert pg_cluster.psql("SELECT x FROM c", db=db_url) == [(1,)]


def test_daemon_factory_with_fake_daemon(fake_factory, tmp_path, db_url):
    so = tmp_path / "libthing.so"
    so.write_bytes(b"\x7fELF fake")
    d = fake_factory.start(plugins=[so, (so, "ingest_renamed.so")])
    assert d.env["INGEST_DATABASE_URL"] == db_url
    assert sorted(p.name for p in d.plugin_dir.iterdir()) == ["ingest_renamed.so",
                                                              "libthing.so"]
    status, _, body = d.http_get("/healthz")
    assert (status, body) == (200, b"ok")
    assert d.http_get("/nope")[0] == 404
    started = d.wait_for_log({"msg": "started"})
    assert started["plugins"] == ["ingest_renamed.so", "libthing.so"]
    assert all(isinstance(e, dict) for e in d.logs())  # the non-JSON line is skipped
    assert d.ctl_json("list") == {"argv": ["-s", str(d.sock), "list", "--json"]}
    assert d.rss_kb() > 0 and d.fd_count() >= 3
    assert d.stop() == 0
    fake_factory.teardown()  # clean: must not fail


def test_teardown_reports_sanitizer_errors(fake_factory):
    fake_factory.start(env={"FAKE_ASAN": "1"})
    with pytest.raises(pytest.fail.Exception, match="AddressSanitizer"):
        fake_factory.teardown()


def test_teardown_reports_unexpected_crash(fake_factory):
    import signal
    d = fake_factory.start()
    d.proc.send_signal(signal.SIGSEGV)  # behind the harness's back, like a real crash
    d.proc.wait(10)
    with pytest.raises(pytest.fail.Exception, match="signal 11"):
        fake_factory.teardown()
