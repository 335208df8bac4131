"""Configuration at start: an invalid file or environment value stops
ingest-hostd with exit code 2 and a message naming the file, the line and
the key (or the environment variable). Runs the binary directly.
"""
import base64
import os
import subprocess
from pathlib import Path

import pytest

from conftest import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_hostd(hostd, tmp_path):
    """run_hostd(conf_text or Path or None, *args, env={...}) -> CompletedProcess.
    The environment is isolated (free port, private socket and plugin dir,
    a crypto key, a database nobody listens on); env values of None remove."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(mode=0o755)

    def run(conf, *args, env=None, timeout=15):
        if isinstance(conf, str):
            path = tmp_path / "hostd.conf"
            path.write_text(conf)
        else:
            path = conf
        full = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
        full.update({
            "INGEST_LISTEN": f"127.0.0.1:{free_port()}",
            "INGEST_CONTROL_SOCKET": str(tmp_path / "hostd.sock"),
            "INGEST_PLUGIN_DIR": str(plugins),
            "INGEST_DATABASE_URL": "postgresql://ingest@127.0.0.1:1/ingest",
            "INGEST_CRYPTO_KEY": base64.b64encode(os.urandom(32)).decode(),
        })
        for k, v in (env or {}).items():
            if v is None:
                full.pop(k, None)
            else:
                full[k] = v
        argv = [str(hostd)] + (["-c", str(path)] if path is not None else []) + list(args)
        try:
            return subprocess.run(argv, capture_output=True, text=True, env=full,
                                  timeout=timeout, stdin=subprocess.DEVNULL, cwd=tmp_path)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"ingest-hostd still running after {timeout}s (it should have refused "
                        f"the configuration)\nstderr:\n{e.stderr}")
    run.tmp_path = tmp_path
    return run


HEAD = '# test configuration\nshutdown_timeout_s = 5;\n'  # the case's line is line 3

# name: (line 3 of the file, extra env, substrings the error must contain)
FILE_CASES = {
    "wrong_type": ('workers = "many";', {"INGEST_WORKERS": None}, [":3", "workers"]),
    "out_of_range": ("workers = 0;", {"INGEST_WORKERS": None}, [":3", "workers", "out of range"]),
    "unknown_key": ('log_levl = "debug";', {}, [":3", "log_levl"]),
    "syntax_error": ("database_pool = = 2;", {}, [":3", "syntax"]),
    "plugins_not_a_group": ("plugins = 5;", {}, [":3", "plugins"]),
    "bad_listen": ('listen = "nohost";', {"INGEST_LISTEN": None}, [":3", "listen"]),
    "bad_log_level": ('log_level = "loud";', {"INGEST_LOG_LEVEL": None},
                            [":3", "log_level"]),
}

ENV_CASES = {
    "workers": ("INGEST_WORKERS", "abc"),
    "shutdown_timeout": ("INGEST_SHUTDOWN_TIMEOUT_S", "-1"),
    "listen": ("INGEST_LISTEN", "bogus"),
    "log_level": ("INGEST_LOG_LEVEL", "loud"),
}


@pytest.mark.parametrize("mode", ["start", "check"])
@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_invalid_file_exits_2_naming_file_line_key(case, mode, run_hostd):
    line3, env, needles = FILE_CASES[case]
    args = ["--check-config"] if mode == "check" else []
    r = run_hostd(HEAD + line3 + "\n", *args, env=env)
    assert r.returncode == 2, r
    conf = str(run_hostd.tmp_path / "hostd.conf")
    assert conf in r.stderr, r.stderr
    for needle in needles:
        needle = conf + needle if needle.startswith(":") else needle
        assert needle in r.stderr, f"{needle!r} not in stderr:\n{r.stderr}"
    assert not (run_hostd.tmp_path / "hostd.sock").exists()


@pytest.mark.parametrize("mode", ["start", "check"])
@pytest.mark.parametrize("case", sorted(ENV_CASES))
def test_invalid_environment_exits_2_naming_variable(case, mode, run_hostd):
    var, value = ENV_CASES[case]
    args = ["--check-config"] if mode == "check" else []
    r = run_hostd(HEAD, *args, env={var: value})
    assert r.returncode == 2, r
    assert var in r.stderr, f"{var} not named in stderr:\n{r.stderr}"
    assert value in r.stderr, r.stderr


def test_missing_file_exits_2(run_hostd):
    missing = run_hostd.tmp_path / "does-not-exist.conf"
    for args in ([], ["--check-config"]):
        r = run_hostd(missing, *args)
        assert r.returncode == 2, r
        assert str(missing) in r.stderr, r.stderr


def test_check_config_valid(run_hostd):
    r = run_hostd(HEAD + "workers = 3;\ndatabase_pool = 2;\n", "--check-config")
    assert r.returncode == 0, r
    assert "valid" in r.stdout
    assert r.stderr == ""
    # validating does not start the daemon
    assert not (run_hostd.tmp_path / "hostd.sock").exists()


def test_check_config_shipped_example(run_hostd):
    """etc/ingest/hostd.conf documents every key and must itself be valid."""
    r = run_hostd(REPO / "etc" / "ingest" / "hostd.conf", "--check-config")
    assert r.returncode == 0, r


def test_bad_command_line_exits_2(run_hostd):
    r = run_hostd(HEAD, "--no-such-option")
    assert r.returncode == 2, r
    assert "usage" in r.stderr
    r = run_hostd(HEAD, "--check-config", "extra-argument")
    assert r.returncode == 2, r


def test_version(run_hostd):
    r = run_hostd(None, "--version")
    assert r.returncode == 0, r
    assert r.stdout.startswith("ingest-hostd ")


def test_environment_overrides_file(daemon_factory):
    """File values lose to INGEST_*: the file's listen port is unusable and
    its log level is debug; the environment's win."""
    d = daemon_factory.start(conf_text='listen = "127.0.0.1:1";\nlog_level = "debug";\n'
                             'workers = 1;\n', env={"INGEST_LOG_LEVEL": "warn",
                                                    "INGEST_WORKERS": "3"})
    assert d.http_get("/healthz")[0] == 200  # on the env port
    levels = {e.get("level") for e in d.logs()}
    assert not levels & {"debug", "info"}, levels
