"""Hot reload on SIGHUP and `ingest-hostctl reload` (issue 2, "Tests that
must exist and pass": Reload).

Each test checks the reload reply, the `list --json` view and what the
plugins store in PostgreSQL afterwards (the signal payload carries the
version of the plugin build that stored it).
"""
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import db_count, find_plugin, plugin_entries

TICK_100 = 'log_level = "debug";\nplugins = { good = { interval_ms = 100; }; };\n'
FINISHED = "reload finished: "


# ------------------------------------------------------------------ helpers

def reload_ctl(d, expect_rc=0):
    """`ingest-hostctl reload --json` -> parsed reply; checks the exit code."""
    r = d.ctl("reload", "--json")
    assert r.returncode == expect_rc, f"reload exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


def finished_reloads(d):
    return [json.loads(e["msg"][len(FINISHED):]) for e in d.logs()
            if str(e.get("msg", "")).startswith(FINISHED)]


def reload_sighup(d, timeout=10):
    """SIGHUP, then the reply the daemon logged for that reload."""
    n = len(finished_reloads(d))
    d.sighup()
    return d.wait_for(lambda: (finished_reloads(d)[n:] or [None])[0], timeout=timeout,
                      msg="no 'reload finished' log line after SIGHUP")


def do_reload(d, via, expect_rc=0):
    return reload_ctl(d, expect_rc) if via == "hostctl" else reload_sighup(d)


def signals(pg, url, source="good", version=None):
    if version is None:
        return db_count(pg, url, "SELECT count(*) FROM signals WHERE source = %s", (source,))
    return db_count(pg, url, "SELECT count(*) FROM signals WHERE source = %s "
                    "AND payload->>'version' = %s", (source, version))


def wait_signals(d, pg, url, at_least, **kw):
    return d.wait_for(lambda: signals(pg, url, **kw) >= at_least, timeout=10,
                      msg=f"fewer than {at_least} signals {kw}")


def only_entry(d, name):
    """The one `list` entry of `name` once nothing of it is draining."""
    def one():
        es = plugin_entries(d, name)
        return es[0] if len(es) == 1 and es[0]["state"] != "draining" else None
    return d.wait_for(one, timeout=15, msg=f"{name}: old version never finished draining")


def daemon_pid(d):
    return d.ctl_json("ping", check=True)["pid"]


def write_broken(d, kind):
    """Install a broken build of `good` as ingest_good.so (atomically)."""
    tmp = d.dir / "broken.so"
    if kind == "text":
        tmp.write_text("not a shared object\n")
    elif kind == "truncated_elf":
        tmp.write_bytes(find_plugin("good_v2").read_bytes()[:2048])
    elif kind == "abi_mismatch":
        shutil.copyfile(find_plugin("abi2"), tmp)
    elif kind == "no_entry_symbol":
        shutil.copyfile(find_plugin("nosym"), tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, d.plugin_dir / "ingest_good.so")


def mapped_copies(d, name):
    """Distinct files mapped into the daemon whose name mentions ingest_<name>."""
    paths = set()
    with open(f"/proc/{d.pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and f"ingest_{name}" in parts[5]:
                paths.add(parts[5].strip())
    return paths


# -------------------------------------------------------------------- tests

@pytest.mark.parametrize("via", ["hostctl", "sighup"])
def test_add_plugin(via, daemon_factory, pg_cluster, db_url):
    d = daemon_factory.start(
        conf_text='plugins = { good = { interval_ms = 100; }; other = { interval_ms = 100; }; };\n',
        plugins=["good"])
    assert [e["name"] for e in plugin_entries(d)] == ["good"]
    pid = d.pid
    d.add_plugin("other")
    reply = do_reload(d, via)
    assert reply["ok"] is True
    assert reply["added"] == [{"name": "other", "version": "0.3.0"}]
    assert reply["unchanged"] == ["good"]
    assert reply["replaced"] == [] and reply["removed"] == [] and reply["failed"] == []
    [e] = plugin_entries(d, "other")
    assert (e["version"], e["state"], e["error"]) == ("0.3.0", "loaded", None)
    assert e["file"] == str(d.plugin_dir / "ingest_other.so")
    wait_signals(d, pg_cluster, db_url, 2, source="other")
    assert daemon_pid(d) == pid and d.alive()


@pytest.mark.parametrize("via", ["hostctl", "sighup"])
def test_remove_plugin(via, daemon_factory, pg_cluster, db_url):
    d = daemon_factory.start(
        conf_text='plugins = { good = { interval_ms = 100; }; other = { interval_ms = 100; }; };\n',
        plugins=["good", "other"])
    wait_signals(d, pg_cluster, db_url, 1, source="other")
    d.remove_plugin("ingest_other.so")
    reply = do_reload(d, via)
    assert reply["removed"] == [{"name": "other", "version": "0.3.0"}]
    assert reply["unchanged"] == ["good"]
    assert reply["added"] == [] and reply["replaced"] == [] and reply["failed"] == []
    d.wait_for(lambda: not plugin_entries(d, "other"), timeout=10,
               msg="removed plugin still listed")
    assert any(e.get("plugin") == "other" and "unloaded" in e.get("msg", "")
               for e in d.logs()), "no 'unloaded' log line for the removed plugin"
    stored = signals(pg_cluster, db_url, source="other")
    time.sleep(0.5)  # five tick intervals: an unloaded plugin must not tick
    assert signals(pg_cluster, db_url, source="other") == stored
    # the rest keeps serving
    before = signals(pg_cluster, db_url)
    wait_signals(d, pg_cluster, db_url, before + 2)
    # a second reload does not mention it again
    reply = reload_ctl(d)
    assert reply["removed"] == [] and reply["unchanged"] == ["good"]


@pytest.mark.parametrize("via", ["hostctl", "sighup"])
def test_replace_with_new_version(via, daemon_factory, pg_cluster, db_url):
    d = daemon_factory.start(conf_text=TICK_100, plugins=["good"])
    wait_signals(d, pg_cluster, db_url, 2, version="1.0.0")
    pid = d.pid
    d.add_plugin("good_v2", "ingest_good.so")
    reply = do_reload(d, via)
    assert reply["replaced"] == [{"name": "good", "from": "1.0.0", "to": "2.0.0"}]
    assert reply["added"] == [] and reply["removed"] == [] and reply["failed"] == []

    e = only_entry(d, "good")
    assert (e["version"], e["state"], e["error"]) == ("2.0.0", "loaded", None)
    assert e["sha256"] == hashlib.sha256(find_plugin("good_v2").read_bytes()).hexdigest()
    # no restart
    assert daemon_pid(d) == pid
    assert d.ctl_json("health")["daemon"]["pid"] == pid

    # The new version does the work now, and continues the old one's cursor.
    v2 = signals(pg_cluster, db_url, version="2.0.0")
    wait_signals(d, pg_cluster, db_url, v2 + 2, version="2.0.0")
    rows = pg_cluster.psql("SELECT (payload->>'seq')::int, payload->>'version' FROM signals "
                           "WHERE source = 'good' ORDER BY 1", db=db_url)
    seqs = [s for s, _ in rows]
    assert seqs == list(range(1, len(seqs) + 1)), f"cursor gap or repeat: {seqs}"
    first_v2 = min(s for s, v in rows if v == "2.0.0")
    assert all(v == "2.0.0" for s, v in rows if s > first_v2), rows
    [(cursor,)] = pg_cluster.psql("SELECT value FROM cursors WHERE provider = 'good' AND "
                                  "stream = 'ticks' AND connection_id IS NULL", db=db_url)
    assert int(cursor) >= seqs[-1]
    # the old private copy is unmapped (dlclose'd)
    assert len(mapped_copies(d, "good")) == 1, mapped_copies(d, "good")


@pytest.mark.parametrize("kind", ["text", "truncated_elf", "abi_mismatch", "no_entry_symbol"])
def test_replace_with_broken_build_keeps_old(kind, daemon_factory, pg_cluster, db_url):
    d = daemon_factory.start(conf_text=TICK_100, plugins=["good"])
    wait_signals(d, pg_cluster, db_url, 1)
    pid = d.pid
    write_broken(d, kind)
    reply = reload_ctl(d, expect_rc=1)
    assert reply["ok"] is True
    assert reply["replaced"] == [] and reply["added"] == [] and reply["removed"] == []
    [f] = reply["failed"]
    assert f["name"] == "good" and f["kept_version"] == "1.0.0", f
    assert f["file"] == str(d.plugin_dir / "ingest_good.so")
    expected = {"text": "not a loadable shared object",
                "truncated_elf": "not a loadable shared object",
                "abi_mismatch": "ABI mismatch",
                "no_entry_symbol": "entry symbol ingest_plugin_v1 not found"}[kind]
    assert expected in f["error"], f

    [e] = plugin_entries(d, "good")
    assert (e["version"], e["state"]) == ("1.0.0", "loaded"), e
    assert e["error"].startswith("reload refused, still serving version 1.0.0: "), e
    assert expected in e["error"]
    # still serving: the old build keeps storing signals
    before = signals(pg_cluster, db_url, version="1.0.0")
    wait_signals(d, pg_cluster, db_url, before + 2, version="1.0.0")
    assert signals(pg_cluster, db_url, version="2.0.0") == 0
    assert daemon_pid(d) == pid

    # A later good build replaces it and clears the error.
    d.add_plugin("good_v2", "ingest_good.so")
    reply = reload_ctl(d)
    assert reply["replaced"] == [{"name": "good", "from": "1.0.0", "to": "2.0.0"}]
    e = only_entry(d, "good")
    assert (e["version"], e["state"], e["error"]) == ("2.0.0", "loaded", None)


@pytest.mark.parametrize("case", ["init_failure", "invalid_plugin_config"])
def test_replace_with_failing_config_keeps_old(case, daemon_factory, pg_cluster, db_url):
    """A changed plugin group that the new instance refuses (init failure,
    schema error) leaves the running instance serving with its old config."""
    d = daemon_factory.start(conf_text=TICK_100, plugins=["good"])
    wait_signals(d, pg_cluster, db_url, 1)
    group = {"init_failure": "interval_ms = 100; fail_init = true;",
             "invalid_plugin_config": 'interval_ms = "soon";'}[case]
    d.conf_path.write_text(f'log_level = "debug";\nplugins = {{ good = {{ {group} }}; }};\n')
    reply = reload_ctl(d, expect_rc=1)
    [f] = reply["failed"]
    assert f["name"] == "good" and f["kept_version"] == "1.0.0", f
    reason = ("refusing to start because fail_init is set" if case == "init_failure"
              else "interval_ms")
    assert reason in f["error"], f
    [e] = plugin_entries(d, "good")
    assert e["state"] == "loaded" and e["version"] == "1.0.0", e
    assert e["error"].startswith("reload refused, still serving version 1.0.0: "), e
    before = signals(pg_cluster, db_url)
    wait_signals(d, pg_cluster, db_url, before + 2)


@pytest.mark.parametrize("via", ["hostctl", "sighup"])
@pytest.mark.parametrize("bad_conf", ["syntax", "unknown_key", "bad_value"])
def test_reload_invalid_config_file_keeps_running_config(via, bad_conf, daemon_factory,
                                                         pg_cluster, db_url):
    d = daemon_factory.start(conf_text=TICK_100, plugins=["good"])
    wait_signals(d, pg_cluster, db_url, 1)
    pid = d.pid
    before_list = {(e["name"], e["version"], e["state"], e["sha256"], e["since"])
                   for e in plugin_entries(d)}
    # A change that would be applied if the config were accepted:
    d.add_plugin("other")
    line2 = {"syntax": "workers = = 4;",
             "unknown_key": "plugin_dri = \"/nonexistent\";",
             "bad_value": "workers = \"many\";"}[bad_conf]
    d.conf_path.write_text(f'log_level = "debug";\n{line2}\n')
    if via == "hostctl":
        plain = d.ctl("reload")
        assert plain.returncode == 1, plain
        assert "reload refused, running configuration kept: " in plain.stdout, plain
        assert f"{d.conf_path}:2" in plain.stdout, plain
        reply = reload_ctl(d, expect_rc=1)
    else:
        reply = reload_sighup(d)
    assert reply["ok"] is False, reply
    assert f"{d.conf_path}:2" in reply["error"], reply
    assert "added" not in reply or reply["added"] == []
    errors = [e for e in d.logs() if e.get("level") == "error" and "reload refused" in
              e.get("msg", "")]
    assert errors and str(d.conf_path) in errors[-1]["msg"], errors

    # nothing changed: other not loaded, good untouched and still serving
    after_list = {(e["name"], e["version"], e["state"], e["sha256"], e["since"])
                  for e in plugin_entries(d)}
    assert after_list == before_list
    before = signals(pg_cluster, db_url)
    wait_signals(d, pg_cluster, db_url, before + 3)
    assert daemon_pid(d) == pid
    assert d.http_get("/healthz")[0] == 200

    # a fixed config is then applied
    d.conf_path.write_text(TICK_100)
    reply = do_reload(d, via, expect_rc=0)
    assert reply["ok"] is True
    assert reply["added"] == [{"name": "other", "version": "0.3.0"}]


def test_config_only_change_replaces(daemon_factory, pg_cluster, db_url):
    """Changing a plugin's group replaces the instance (same build) and the
    new settings take effect; other plugins stay unchanged."""
    tenant = "00000000-0000-4000-8000-00000000abcd"
    conf = ('log_level = "debug";\nplugins = {\n'
            f'  example = {{ tenant_id = "{tenant}"; interval_ms = 100; page_size = 2; }};\n'
            '  good = { interval_ms = 100; };\n};\n')
    d = daemon_factory.start(conf_text=conf, plugins=["example", "good"])
    batch_sizes = ("SELECT count(*) FROM signals WHERE source = 'example' "
                   "GROUP BY provenance->>'batch_id' ORDER BY max(created_at) DESC LIMIT 1")
    d.wait_for(lambda: db_count(pg_cluster, db_url, batch_sizes) == 2)
    [old] = plugin_entries(d, "example")
    d.conf_path.write_text(conf.replace("page_size = 2", "page_size = 5"))
    reply = reload_ctl(d)
    assert reply["replaced"] == [{"name": "example", "from": "1.0.0", "to": "1.0.0"}], reply
    assert reply["unchanged"] == ["good"]
    e = only_entry(d, "example")
    assert e["state"] == "loaded" and e["sha256"] == old["sha256"]
    assert e["since"] > old["since"]
    d.wait_for(lambda: db_count(pg_cluster, db_url, batch_sizes) == 5,
               msg="new page_size never took effect")
    # cursor and signals stay in step: the cursor is the highest counter stored
    rows = pg_cluster.psql(
        "SELECT (SELECT value::bigint FROM cursors WHERE provider = 'example' AND "
        "stream = 'counter'), (SELECT max(split_part(dedupe_key, '-', 2)::bigint) FROM "
        "signals WHERE source = 'example')", db=db_url)
    cur, top = rows[0]
    assert cur is not None and top is not None and cur <= top, rows
    assert db_count(pg_cluster, db_url, "SELECT count(*) FROM signals WHERE source = "
                    "'example' AND tenant_id = %s", (tenant,)) > 0


def test_restart_only_key_reported(daemon_factory):
    d = daemon_factory.start(conf_text='log_level = "debug";\nworkers = 2;\n', env={
        "INGEST_WORKERS": None})
    d.conf_path.write_text('log_level = "debug";\nworkers = 3;\n')
    reply = reload_ctl(d)
    assert reply["ok"] is True
    assert "workers" in reply["restart_required"].split(","), reply
    assert d.ctl_json("health")["daemon"]["status"] == "ok"


def test_fifty_reloads_no_leak(daemon_factory, pg_cluster, db_url, build_dir):
    """50 replacements in a row (v1 <-> v2 while ticking): no fd growth, one
    mapped copy left, the private copies are removed, clean exit (LSan at
    exit under the ASan build; conftest fails the test on any report)."""
    d = daemon_factory.start(conf_text='log_level = "info";\n'
                             "plugins = { good = { interval_ms = 20; }; };\n",
                             plugins=["good"])
    d.wait_for(lambda: d.http_get("/readyz")[0] == 200, msg="never ready")
    wait_signals(d, pg_cluster, db_url, 1)
    versions = ["2.0.0", "1.0.0"]
    builds = {"2.0.0": "good_v2", "1.0.0": "good"}
    current = "1.0.0"

    def swap(n):
        nonlocal current
        for _ in range(n):
            nxt = versions[0] if current == "1.0.0" else versions[1]
            d.add_plugin(builds[nxt], "ingest_good.so")
            reply = reload_ctl(d)
            assert reply["replaced"] == [{"name": "good", "from": current, "to": nxt}], reply
            current = nxt

    swap(2)  # warm-up: lazily created fds (store connections, ...) exist now
    e = only_entry(d, "good")
    fds_before = d.fd_count()
    fd_list_before = sorted(os.readlink(f"/proc/{d.pid}/fd/{fd}")
                            for fd in os.listdir(f"/proc/{d.pid}/fd"))
    t0 = time.monotonic()
    swap(50)
    e = only_entry(d, "good")
    assert e["version"] == current and e["state"] == "loaded" and e["error"] is None
    d.wait_for(lambda: len(mapped_copies(d, "good")) == 1, timeout=10,
               msg=f"old copies still mapped: {mapped_copies(d, 'good')}")
    # the private copies of the unloaded versions are gone from disk too
    [copy] = mapped_copies(d, "good")
    copy_dir = Path(copy.removesuffix(" (deleted)")).parent
    leftovers = sorted(p.name for p in copy_dir.iterdir() if "good" in p.name)
    assert len(leftovers) <= 1, leftovers
    fds_after = d.fd_count()
    fd_list_after = sorted(os.readlink(f"/proc/{d.pid}/fd/{fd}")
                           for fd in os.listdir(f"/proc/{d.pid}/fd"))
    print(f"\n50 reloads in {time.monotonic() - t0:.1f}s; fds {fds_before} -> {fds_after}")
    assert fds_after <= fds_before, (fd_list_before, fd_list_after)
    # still serving, with the last version
    before = signals(pg_cluster, db_url, version=current)
    wait_signals(d, pg_cluster, db_url, before + 2, version=current)
    assert d.stop() == 0
    stopped = [e for e in d.logs() if e.get("msg") == "stopped"]
    assert stopped, "no 'stopped' log line"


def test_reload_while_tick_in_flight(daemon_factory, pg_cluster, db_url):
    """The old version drains: it is listed as draining while its tick runs,
    the tick's signal is stored, then the old version is unloaded."""
    d = daemon_factory.start(
        conf_text='log_level = "debug";\n'
                  "plugins = { good = { interval_ms = 100; tick_sleep_ms = 1500; }; };\n",
        plugins=["good"])
    d.wait_for(lambda: plugin_entries(d, "good")[0]["counts"]["inflight"] >= 1, timeout=10,
               interval=0.05, msg="no tick ever in flight")
    stored = signals(pg_cluster, db_url)
    d.add_plugin("good_v2", "ingest_good.so")
    reply = reload_ctl(d)
    assert reply["replaced"] == [{"name": "good", "from": "1.0.0", "to": "2.0.0"}]

    entries = {e["version"]: e for e in plugin_entries(d, "good")}
    assert set(entries) == {"1.0.0", "2.0.0"}, entries
    assert entries["1.0.0"]["state"] == "draining", entries
    assert entries["1.0.0"]["counts"]["inflight"] >= 1, entries
    assert entries["2.0.0"]["state"] == "loaded", entries
    health = d.ctl_json("health")
    assert {(p["version"], p["state"]) for p in health["plugins"]} >= {
        ("1.0.0", "draining"), ("2.0.0", "loaded")}, health

    e = only_entry(d, "good")
    assert e["version"] == "2.0.0"
    # the in-flight tick of 1.0.0 completed and its signal was stored
    rows = pg_cluster.psql("SELECT payload->>'version' FROM signals WHERE source = 'good' "
                           "AND dedupe_key = %s", (f"tick-{stored + 1}",), db=db_url)
    assert rows == [("1.0.0",)], rows
    assert signals(pg_cluster, db_url, version="1.0.0") == stored + 1
    wait_signals(d, pg_cluster, db_url, 1, version="2.0.0")
    assert d.stop() == 0
