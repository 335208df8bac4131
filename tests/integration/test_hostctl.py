"""ingest-hostctl against a running daemon: list, reload, health, ping, with
and without --json; exit codes 0 ok, 1 failed/degraded, 2 usage/unreachable.
"""
import json
import os
import re
import socket
import stat
import subprocess
from datetime import datetime

import pytest

from conftest import plugin_entries

TICK = 'log_level = "debug";\nplugins = { good = { interval_ms = 100; }; };\n'
LIST_KEYS = {"name", "version", "file", "state", "since", "error", "description", "sha256",
             "counts"}
COUNT_KEYS = {"inflight", "ticks", "tick_failures", "ticks_skipped", "signals_emitted",
              "signals_stored"}


def hostctl_raw(hostctl, *args, env=None, timeout=30):
    """ingest-hostctl with exactly these arguments and an environment without
    INGEST_* (unless given)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    base.update(env or {})
    return subprocess.run([str(hostctl), *map(str, args)], capture_output=True, text=True,
                          env=base, timeout=timeout, stdin=subprocess.DEVNULL)


def parse_ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def mixed(daemon_factory):
    """good (ticking) + nosym (refused)."""
    d = daemon_factory.start(conf_text=TICK, plugins=["good", "nosym"])
    d.wait_for(lambda: plugin_entries(d, "good")[0]["counts"]["signals_stored"] >= 1)
    return d


def test_list_json(mixed):
    d = mixed
    r = d.ctl("list", "--json")
    assert r.returncode == 0, r
    assert r.stderr == ""
    entries = {e["name"]: e for e in json.loads(r.stdout)}
    assert set(entries) == {"good", "nosym"}
    for e in entries.values():
        assert LIST_KEYS <= set(e), e
        assert set(e["counts"]) >= COUNT_KEYS, e
        assert parse_ts(e["since"]).year >= 2024
    good, nosym = entries["good"], entries["nosym"]
    assert good["version"] == "1.0.0" and good["state"] == "loaded" and good["error"] is None
    assert good["file"] == str(d.plugin_dir / "ingest_good.so")
    assert re.fullmatch(r"[0-9a-f]{64}", good["sha256"])
    assert good["counts"]["ticks"] >= 1
    assert good["counts"]["signals_stored"] >= 1
    # (a tick that ran before the store was connected may have failed)
    assert good["counts"]["ticks"] - good["counts"]["tick_failures"] >= 1
    assert nosym["state"] == "failed" and nosym["version"] is None
    assert "entry symbol ingest_plugin_v1 not found" in nosym["error"]
    # -j is the short form
    assert {e["name"] for e in json.loads(d.ctl("-j", "list", check=True).stdout)} == \
        {"good", "nosym"}


def test_list_plain(mixed):
    d = mixed
    r = d.ctl("list")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "STATE", "SINCE", "TICKS", "SIGNALS", "FILE"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:] if not ln.startswith(" ")}
    assert rows["good"][1:3] == ["1.0.0", "loaded"]
    assert rows["good"][-1] == str(d.plugin_dir / "ingest_good.so")
    assert int(rows["good"][4]) >= 1  # ticks
    assert rows["nosym"][1:3] == ["-", "failed"]
    assert re.search(r"^\s+error: not an ingest plugin: entry symbol ingest_plugin_v1 not found",
                     r.stdout, re.M), r.stdout


def test_list_empty(daemon_factory):
    d = daemon_factory.start()
    assert d.ctl_json("list", check=True) == []
    r = d.ctl("list")
    assert r.returncode == 0 and "(no plugins)" in r.stdout


def test_health_healthy(daemon_factory):
    d = daemon_factory.start(conf_text=TICK, plugins=["good"])
    d.wait_for(lambda: d.ctl("health").returncode == 0, msg="never healthy")
    r = d.ctl("health", "--json")
    assert r.returncode == 0, r
    h = json.loads(r.stdout)
    assert h["status"] == "healthy"
    assert h["daemon"]["status"] == "ok" and h["daemon"]["pid"] == d.pid
    assert isinstance(h["daemon"]["version"], str) and h["daemon"]["version"]
    assert h["daemon"]["uptime_s"] >= 0
    assert h["database"] == {"status": "ok", "error": None} or (
        h["database"]["status"] == "ok" and not h["database"]["error"])
    assert [(p["name"], p["version"], p["state"], p["status"]) for p in h["plugins"]] == [
        ("good", "1.0.0", "loaded", "ok")]
    plain = d.ctl("health")
    assert plain.returncode == 0
    assert re.search(r"^status:\s+healthy$", plain.stdout, re.M), plain.stdout
    assert f"pid {d.pid}" in plain.stdout
    assert re.search(r"^database:\s+ok", plain.stdout, re.M), plain.stdout


def test_health_degraded_by_failed_plugin(mixed):
    d = mixed
    r = d.ctl("health", "--json")
    assert r.returncode == 1, r
    h = json.loads(r.stdout)
    assert h["status"] == "degraded"
    assert h["database"]["status"] == "ok"
    by_name = {p["name"]: p for p in h["plugins"]}
    assert by_name["good"]["status"] == "ok"
    assert by_name["nosym"]["state"] == "failed"
    assert "entry symbol" in by_name["nosym"]["detail"]
    plain = d.ctl("health")
    assert plain.returncode == 1
    assert re.search(r"^status:\s+degraded$", plain.stdout, re.M), plain.stdout
    assert re.search(r"^plugin nosym\s+failed", plain.stdout, re.M), plain.stdout


def test_health_degraded_by_database_down(daemon_factory):
    d = daemon_factory.start(env={"INGEST_DATABASE_URL":
                                  "postgresql://ingest@127.0.0.1:1/ingest?connect_timeout=2"})
    r = d.ctl("health", "--json")
    assert r.returncode == 1, r
    h = json.loads(r.stdout)
    assert h["status"] == "degraded"
    assert h["database"]["status"] == "down"
    assert h["database"]["error"], h
    assert h["daemon"]["status"] == "ok"
    plain = d.ctl("health")
    assert plain.returncode == 1 and re.search(r"^database:\s+down", plain.stdout, re.M), plain


def test_reload_plain_and_json(daemon_factory):
    d = daemon_factory.start(conf_text=TICK, plugins=["good"])
    # nothing to do: exit 0, everything unchanged
    r = d.ctl("reload")
    assert r.returncode == 0, r
    assert re.search(r"^unchanged\s+good$", r.stdout, re.M), r.stdout
    reply = d.ctl_json("reload")
    assert reply == {"ok": True, "added": [], "replaced": [], "removed": [],
                     "unchanged": ["good"], "failed": [], "restart_required": ""}

    d.add_plugin("other")
    r = d.ctl("reload")
    assert r.returncode == 0, r
    assert re.search(r"^added\s+other 0\.3\.0$", r.stdout, re.M), r.stdout

    d.add_plugin("good_v2", "ingest_good.so")
    r = d.ctl("reload")
    assert r.returncode == 0, r
    assert re.search(r"^replaced\s+good 1\.0\.0 -> 2\.0\.0$", r.stdout, re.M), r.stdout

    d.remove_plugin("ingest_other.so")
    r = d.ctl("reload")
    assert r.returncode == 0, r
    assert re.search(r"^removed\s+other 0\.3\.0$", r.stdout, re.M), r.stdout

    # a refused plugin makes reload exit 1, in both output modes
    d.add_plugin("nosym")
    r = d.ctl("reload")
    assert r.returncode == 1, r
    assert re.search(r"^failed\s+nosym: .*entry symbol ingest_plugin_v1 not found", r.stdout,
                     re.M), r.stdout
    r = d.ctl("reload", "--json")
    assert r.returncode == 1
    reply = json.loads(r.stdout)
    assert reply["ok"] is True
    assert [f["name"] for f in reply["failed"]] == ["nosym"]

    # an invalid config: exit 1, nothing changed
    d.conf_path.write_text('log_level = "debug";\nworkers = "many";\n')
    r = d.ctl("reload")
    assert r.returncode == 1, r
    assert r.stdout.startswith("reload refused, running configuration kept: "), r.stdout
    assert f"{d.conf_path}:2" in r.stdout and "workers" in r.stdout
    r = d.ctl("reload", "--json")
    assert r.returncode == 1
    reply = json.loads(r.stdout)
    assert reply["ok"] is False and "workers" in reply["error"]


def test_ping(daemon_factory):
    d = daemon_factory.start()
    r = d.ctl("ping")
    assert r.returncode == 0, r
    assert re.fullmatch(rf"ingest-hostd \S+ answering \(pid {d.pid}\)\n", r.stdout), r.stdout
    p = d.ctl_json("ping", check=True)
    assert p["pid"] == d.pid and p["version"] == d.ctl_json("health")["daemon"]["version"]


@pytest.mark.parametrize("args,message", [
    (["frobnicate"], "unknown command 'frobnicate'"),
    ([], None),
    (["list", "extra"], "unexpected argument 'extra'"),
    (["ping", "list"], "unexpected argument 'list'"),
    (["--bogus", "list"], None),
    (["--timeout", "0", "list"], "timeout"),
    (["-s"], None),
])
def test_usage_errors_exit_2(args, message, daemon_factory):
    d = daemon_factory.start()
    r = d.ctl(*args)
    assert r.returncode == 2, r
    assert "usage" in r.stderr.lower() or (message and message in r.stderr), r.stderr
    if message:
        assert message in r.stderr, r.stderr
    assert r.stdout == "", r.stdout
    assert d.alive() and d.ctl("ping").returncode == 0


def test_help_exit_0(hostctl):
    r = hostctl_raw(hostctl, "--help")
    assert r.returncode == 0
    assert "usage" in r.stdout.lower()
    for cmd in ("list", "reload", "health", "ping"):
        assert re.search(rf"^\s+{cmd}\b", r.stdout, re.M), r.stdout


@pytest.mark.parametrize("command", ["list", "reload", "health", "ping"])
def test_unreachable_exit_2(command, hostctl, tmp_path):
    missing = tmp_path / "nobody-here.sock"
    r = hostctl_raw(hostctl, "-s", missing, command)
    assert r.returncode == 2, r
    assert "unreachable" in r.stderr and str(missing) in r.stderr, r.stderr
    # a stale socket file (bound, nobody listening) is unreachable as well
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    r = hostctl_raw(hostctl, "-s", stale, "--json", command)
    assert r.returncode == 2, r
    assert r.stdout == ""


def test_unreachable_after_shutdown(daemon_factory):
    d = daemon_factory.start()
    assert d.ctl("ping").returncode == 0
    assert d.stop() == 0
    r = d.ctl("health")
    assert r.returncode == 2, r
    assert not os.path.exists(d.sock), "control socket left behind after exit"


def test_socket_from_environment(daemon_factory, hostctl):
    d = daemon_factory.start()
    r = hostctl_raw(hostctl, "--json", "ping", env={"INGEST_CONTROL_SOCKET": d.sock})
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["pid"] == d.pid


def test_socket_from_config_file(daemon_factory, hostctl, tmp_path):
    """-c CONFIG reads control_socket from the daemon's config file; no
    INGEST_* variable (not even the crypto key) is needed for that."""
    d = daemon_factory.start()
    conf = tmp_path / "ctl.conf"
    conf.write_text(f'control_socket = "{d.sock}";\nlog_level = "info";\n')
    r = hostctl_raw(hostctl, "-c", conf, "--json", "ping")
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["pid"] == d.pid
    r = hostctl_raw(hostctl, "--config", conf, "list")
    assert r.returncode == 0, r
    # a config naming a socket nobody listens on: unreachable
    conf2 = tmp_path / "ctl2.conf"
    conf2.write_text(f'control_socket = "{tmp_path}/none.sock";\n')
    r = hostctl_raw(hostctl, "-c", conf2, "ping")
    assert r.returncode == 2 and "none.sock" in r.stderr, r
    # an unreadable / invalid config file: exit 2 with the reason
    r = hostctl_raw(hostctl, "-c", tmp_path / "missing.conf", "ping")
    assert r.returncode == 2 and "missing.conf" in r.stderr, r
    bad = tmp_path / "bad.conf"
    bad.write_text("control_socket = ;\n")
    r = hostctl_raw(hostctl, "-c", bad, "ping")
    assert r.returncode == 2 and f"{bad}:1" in r.stderr, r


def test_socket_mode_0660(daemon_factory):
    d = daemon_factory.start()
    st = os.stat(d.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_uid == os.getuid()

