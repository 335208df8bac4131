"""Loader: every refused plugin is listed with its reason, the daemon keeps
serving the good ones (issue 2, "Tests that must exist and pass": Loader).

A plugin "serves" when its scheduled ticks keep storing signals in PostgreSQL.
"""
import hashlib
import json
import os
from pathlib import Path

import pytest

from conftest import db_count, find_plugin, is_asan_build, plugin_entries

GOOD_TICKING = 'log_level = "debug";\nplugins = { good = { interval_ms = 100; }; };\n'
OTHER_TICKING = "  other = { interval_ms = 100; };\n"


def signals(pg_cluster, db_url, source):
    return db_count(pg_cluster, db_url, "SELECT count(*) FROM signals WHERE source = %s",
                    (source,))


def assert_serving(d, pg_cluster, db_url, source, more=2, timeout=10):
    """`source` is loaded and its ticks keep storing signals."""
    [e] = plugin_entries(d, source)
    assert e["state"] == "loaded" and e["error"] is None, e
    before = signals(pg_cluster, db_url, source)
    d.wait_for(lambda: signals(pg_cluster, db_url, source) >= before + more, timeout=timeout,
               msg=f"plugin {source!r} stopped storing signals (had {before})")


def assert_refused(d, name, *reasons):
    """`name` is listed as failed, its error contains every reason, and both
    `health` and `health --json` report it (exit 1, degraded)."""
    [e] = plugin_entries(d, name)
    assert e["state"] == "failed", e
    assert e["error"], e
    for reason in reasons:
        assert reason in e["error"], (reason, e)
    h = d.ctl("health", "--json")
    assert h.returncode == 1, h
    health = json.loads(h.stdout)
    assert health["status"] == "degraded"
    [hp] = [p for p in health["plugins"] if p["name"] == name]
    assert hp["state"] == "failed" and hp["status"] != "ok", hp
    for reason in reasons:
        assert reason in (hp["detail"] or ""), (reason, hp)
    plain = d.ctl("health")
    assert plain.returncode == 1 and "degraded" in plain.stdout, plain
    return e


def test_bad_files_refused_good_keeps_serving(daemon_factory, pg_cluster, db_url, tmp_path):
    garbage = tmp_path / "ingest_garbage.so"
    garbage.write_text("this is not an ELF file, just text that ends in .so\n" * 4)
    d = daemon_factory.start(
        conf_text=GOOD_TICKING,
        plugins=["good", "nosym", "abi2", "hdrmajor", garbage,
                 ("other", "ingest_mismatch.so")])
    d.wait_for(lambda: signals(pg_cluster, db_url, "good") >= 1, msg="good never ticked")

    entries = {e["name"]: e for e in plugin_entries(d)}
    assert sorted(entries) == ["abi2", "garbage", "good", "hdrmajor", "mismatch", "nosym"]

    good = entries["good"]
    assert good["version"] == "1.0.0"
    assert good["state"] == "loaded"
    assert good["error"] is None
    assert good["description"] == "test plugin good"
    assert good["file"] == str(d.plugin_dir / "ingest_good.so")
    assert good["sha256"] == hashlib.sha256(find_plugin("good").read_bytes()).hexdigest()

    assert_refused(d, "nosym", "entry symbol ingest_plugin_v1 not found")
    assert_refused(d, "abi2", "ABI mismatch", "ingest_plugin_v2")
    assert_refused(d, "hdrmajor", "ABI mismatch")
    assert_refused(d, "garbage", "not a loadable shared object")
    assert_refused(d, "mismatch", "does not match file name", "'other'")
    for name in ("nosym", "abi2", "hdrmajor", "garbage", "mismatch"):
        assert entries[name]["file"] == str(d.plugin_dir / f"ingest_{name}.so")
        assert entries[name]["counts"]["ticks"] == 0

    # Each refusal is logged with the plugin's name and reason.
    logged = {e.get("plugin") for e in d.logs() if e.get("level") == "error"}
    assert {"nosym", "abi2", "hdrmajor", "garbage", "mismatch"} <= logged, logged

    assert_serving(d, pg_cluster, db_url, "good")
    assert d.alive()


@pytest.mark.parametrize("size", [2048, 8192])
def test_truncated_elf_refused(size, daemon_factory, pg_cluster, db_url, tmp_path):
    """A half-copied build (valid ELF header, file cut short) is refused; the
    daemon must not crash on it (glibc's dlopen maps segments past the end
    of such a file and faults with SIGBUS, so the loader has to check the
    program headers against the file size first)."""
    cut = tmp_path / "ingest_cut.so"
    cut.write_bytes(find_plugin("other").read_bytes()[:size])
    d = daemon_factory.start(conf_text=GOOD_TICKING, plugins=["good", cut])
    assert_refused(d, "cut", "not a loadable shared object")
    assert_serving(d, pg_cluster, db_url, "good")


def test_symlink_and_writable_files_refused(daemon_factory, pg_cluster, db_url, plugin_path):
    d = daemon_factory.start(conf_text=GOOD_TICKING, plugins=["good"])
    os.symlink(plugin_path("other"), d.plugin_dir / "ingest_other.so")
    ww = d.add_plugin(plugin_path("good"), "ingest_worldw.so")
    os.chmod(ww, 0o757)
    gw = d.add_plugin(plugin_path("good"), "ingest_groupw.so")
    os.chmod(gw, 0o775)

    r = d.ctl("reload", "--json")
    assert r.returncode == 1, r  # something failed
    reply = json.loads(r.stdout)
    assert reply["ok"] is True
    assert {f["name"] for f in reply["failed"]} == {"other", "worldw", "groupw"}
    assert reply["added"] == []

    e = assert_refused(d, "other", "symlink")
    assert e["version"] is None  # never opened
    assert_refused(d, "worldw", "group- or world-writable")
    assert_refused(d, "groupw", "group- or world-writable")
    assert_serving(d, pg_cluster, db_url, "good")


# name, conf group for `good` (line 3 of the file is the offending key), reasons
CONFIG_CASES = {
    "init_failure": ("  good = { fail_init = true; };", ["init",
                     "refusing to start because fail_init is set"]),
    "wrong_type": ('  good = { interval_ms = "soon"; };', [":3", "interval_ms"]),
    "unknown_key": ("  good = { intervl_ms = 100; };", [":3", "intervl_ms",
                    "did you mean 'interval_ms'"]),
    "out_of_range": ("  good = { interval_ms = -5; };", [":3", "interval_ms", "out of range"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_plugin_config_or_init_refused(case, daemon_factory, pg_cluster, db_url):
    group, reasons = CONFIG_CASES[case]
    conf = f'log_level = "debug";\nplugins = {{\n{group}\n{OTHER_TICKING}}};\n'
    d = daemon_factory.start(conf_text=conf, plugins=["good", "other"])
    e = assert_refused(d, "good", *reasons)
    if reasons[0].startswith(":"):  # config errors name the file and the line
        assert f"{d.conf_path}:3" in e["error"], e
    assert e["counts"]["ticks"] == 0
    assert_serving(d, pg_cluster, db_url, "other")
    assert signals(pg_cluster, db_url, "good") == 0


def test_missing_required_key_refused(daemon_factory, pg_cluster, db_url):
    """The example plugin requires tenant_id."""
    conf = ('log_level = "debug";\nplugins = {\n  example = { interval_ms = 100; };\n'
            f"{OTHER_TICKING}}};\n")
    d = daemon_factory.start(conf_text=conf, plugins=["example", "other"])
    assert_refused(d, "example", "tenant_id")
    assert_serving(d, pg_cluster, db_url, "other")


def test_plugin_key_from_environment(daemon_factory, pg_cluster, db_url):
    """INGEST_PLUGINS_<NAME>_<KEY> sets a plugin key; a bad value is refused
    naming the variable, and does not stop the other plugins."""
    d = daemon_factory.start(plugins=["good", "other"],
                             env={"INGEST_PLUGINS_GOOD_INTERVAL_MS": "100",
                                  "INGEST_PLUGINS_OTHER_INTERVAL_MS": "abc"})
    assert_refused(d, "other", "INGEST_PLUGINS_OTHER_INTERVAL_MS")
    assert_serving(d, pg_cluster, db_url, "good")


def test_footprint_in_tree_plugins_idle(daemon_factory, build_dir):
    """Every in-tree plugin loaded with the shipped example config, idle:
    RSS < 30 MB (issue 2 footprint). Top-level keys come from the environment
    (database, listen, sockets, plugin dir), plugin groups from the file."""
    in_tree = sorted(Path(build_dir, "plugins").glob("*/ingest_*.so"))
    assert in_tree, f"no in-tree plugins under {build_dir}/plugins"
    conf = (Path(__file__).resolve().parents[2] / "etc" / "ingest" / "hostd.conf").read_text()
    d = daemon_factory.start(conf_text=conf, plugins=in_tree)
    names = {p.stem[len("ingest_"):] for p in in_tree}
    entries = d.wait_for(lambda: (lambda es: es if {e["name"] for e in es} >= names else None)(
        plugin_entries(d)))
    for e in entries:
        assert e["state"] == "loaded", e
    d.wait_for(lambda: d.http_get("/readyz")[0] == 200, msg="never ready")
    rss = d.rss_kb()
    print(f"\nidle RSS with {len(in_tree)} in-tree plugin(s) "
          f"({', '.join(sorted(names))}): {rss} kB ({build_dir.name})")
    if is_asan_build(build_dir):
        pytest.skip(f"RSS {rss} kB not comparable under a sanitizer build")
    assert rss < 30 * 1024, f"RSS {rss} kB >= 30 MB"
