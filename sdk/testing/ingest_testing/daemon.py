"""Run ingest-hostd for a test: Daemon (one process) and DaemonFactory (starts
them in per-test directories and checks them at teardown)."""
import base64
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .build import find_plugin
from .util import free_port, wait_for

DEFAULT_CONF = 'log_level = "debug";\n'
READY_TIMEOUT = 15.0
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # tests look at 3xx themselves


# No proxy from the environment (CI machines often set http_proxy), no redirects.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


class Daemon:
    """One running ingest-hostd. Created by DaemonFactory.start()."""

    def __init__(self, directory, hostd, hostctl, env, port):
        self.dir = Path(directory)
        self.hostd = hostd
        self.hostctl = hostctl
        self.env = env
        self.plugin_dir = Path(env["INGEST_PLUGIN_DIR"])
        self.sock = env["INGEST_CONTROL_SOCKET"]
        self.conf_path = self.dir / "hostd.conf"
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.token = env.get("INGEST_OPERATOR_TOKEN")
        self.stdout_path = self.dir / "stdout.log"
        self.stderr_path = self.dir / "stderr.log"
        self.proc = None
        self._signals_sent = set()

    # -- process
    def _spawn(self, args=()):
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen([str(self.hostd), "-c", str(self.conf_path), *args],
                                         cwd=self.dir, env=self.env, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Wait for GET /healthz == 200; fail with the logs if it never comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                pytest.fail(f"ingest-hostd exited with {self.proc.returncode} before "
                            f"becoming ready\n{self.log_text()}")
            try:
                if self.http_get("/healthz", timeout=2)[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass  # not listening yet
            time.sleep(0.1)
        pytest.fail(f"ingest-hostd not ready (GET /healthz != 200) after {timeout}s\n"
                    f"{self.log_text()}")

    def send_signal(self, sig):
        self._signals_sent.add(sig)
        self.proc.send_signal(sig)

    def sighup(self):
        self.send_signal(signal.SIGHUP)

    def wait_exit(self, timeout=30):
        """Wait for the process to exit by itself; returns its returncode."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ingest-hostd did not exit within {timeout}s\n{self.log_text()}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Send sig and wait; returns the returncode. SIGKILLs and fails the test
        if the daemon does not exit within timeout."""
        if self.alive():
            self.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"ingest-hostd ignored signal {sig} for {timeout}s; killed\n"
                            f"{self.log_text()}")
        return self.proc.returncode

    def kill(self):
        """SIGKILL (crash simulation); returns the returncode."""
        if self.alive():
            self.send_signal(signal.SIGKILL)
        return self.proc.wait(30)

    def rss_kb(self):
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def wait_for(self, predicate, timeout=10.0, interval=0.1, msg=None):
        return wait_for(predicate, timeout, interval, msg)

    # -- plugins
    def add_plugin(self, src, dest_name=None):
        """Copy a plugin (name or path) into plugin_dir atomically (copy + rename),
        the way an operator should. Does not reload; call sighup() or ctl("reload")."""
        src = Path(src) if ("/" in str(src) or str(src).endswith(".so")) else find_plugin(src)
        dest = self.plugin_dir / (dest_name or src.name)
        tmp = self.dir / f".{dest.name}.tmp"  # same filesystem, outside plugin_dir
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o755)  # the loader refuses group/world-writable files
        os.replace(tmp, dest)
        return dest

    def remove_plugin(self, name):
        (self.plugin_dir / name).unlink()

    # -- logs
    def log_text(self):
        parts = []
        for p in (self.stderr_path, self.stdout_path):
            if p.exists():
                parts.append(f"--- {p.name} ---\n{p.read_text(errors='replace')}")
        return "\n".join(parts)

    def logs(self):
        """Parsed JSON log lines (stderr, then stdout); other lines are skipped."""
        out = []
        for p in (self.stderr_path, self.stdout_path):
            if not p.exists():
                continue
            for line in p.read_text(errors="replace").splitlines():
                line = line.strip()
                if line.startswith("{"):
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(obj, dict):
                        out.append(obj)
        return out

    def wait_for_log(self, match, timeout=10.0):
        """Wait for a log entry matching `match`: a callable(entry) -> bool, or a
        dict whose items must all be present in the entry. Returns the entry."""
        pred = match if callable(match) else (
            lambda e: all(e.get(k) == v for k, v in match.items()))
        return wait_for(lambda: next((e for e in self.logs() if pred(e)), None), timeout,
                        msg=f"no log entry matching {match!r} within {timeout}s")

    def sanitizer_reports(self):
        """Sanitizer error lines in the daemon's output, each with some context."""
        lines = []
        for p in (self.stderr_path, self.stdout_path):
            if p.exists():
                lines += p.read_text(errors="replace").splitlines()
        reports = []
        for i, line in enumerate(lines):
            if any(m in line for m in SANITIZER_MARKERS):
                reports.append("\n".join(lines[i:i + 30]))
        return reports

    # -- control socket
    def ctl(self, *args, check=None, timeout=30):
        """Run ingest-hostctl -s <sock> *args -> CompletedProcess (text).
        check=True fails the test on a non-zero exit (default: no check)."""
        r = subprocess.run([str(self.hostctl), "-s", self.sock, *map(str, args)],
                           capture_output=True, text=True, timeout=timeout,
                           env=self.env, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            pytest.fail(f"ingest-hostctl {' '.join(map(str, args))} exited {r.returncode}\n"
                        f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        return r

    def ctl_json(self, *args, check=None):
        """Parsed JSON output of ctl(*args, "--json")."""
        r = self.ctl(*args, "--json", check=check)
        try:
            return json.loads(r.stdout)
        except ValueError:
            pytest.fail(f"ingest-hostctl {' '.join(map(str, args))} --json (exit "
                        f"{r.returncode}) printed no JSON\nstdout:\n{r.stdout}\n"
                        f"stderr:\n{r.stderr}")

    # -- HTTP
    def http(self, method, path, body=None, headers=None, auth=False, timeout=30):
        """-> (status, headers, body bytes); 4xx/5xx do not raise.
        body: bytes, str, or a dict/list (sent as JSON). auth=True adds the
        operator bearer token."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        if auth:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        req = urllib.request.Request(self.url + path, data=body, headers=headers,
                                     method=method)
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.headers, e.read()

    def http_get(self, path, headers=None, auth=False, timeout=30):
        return self.http("GET", path, headers=headers, auth=auth, timeout=timeout)

    def http_post(self, path, body=None, headers=None, auth=False, timeout=30):
        return self.http("POST", path, body=body, headers=headers, auth=auth, timeout=timeout)


class DaemonFactory:
    """Starts daemons for one test (the `daemon_factory` fixture) and checks
    them in teardown(): stops those still running, and fails if one reported
    an ASan/UBSan/LSan error or died from a signal the test did not send.

    hostd, hostctl  the binaries (see build.find_hostd / find_hostctl)
    db_url          INGEST_DATABASE_URL of every daemon it starts
    build_dir       where plugin names are looked up (find_plugin); may be None
    """

    def __init__(self, tmp_path, hostd, hostctl, db_url, build_dir):
        self.tmp_path = tmp_path
        self.hostd = hostd
        self.hostctl = hostctl
        self.db_url = db_url
        self.build_dir = build_dir
        self.daemons = []

    def _plugin_source(self, spec):
        """name -> built plugin; path -> as is; (src, dest_name) -> renamed copy."""
        if isinstance(spec, tuple):
            src, dest = spec
            return self._plugin_source(src)[0], dest
        s = str(spec)
        if "/" in s or s.endswith(".so"):
            return Path(s), Path(s).name
        path = find_plugin(s, self.build_dir)
        return path, path.name

    def start(self, conf_text=None, env=None, plugins=(), wait_ready=True, args=()):
        """Start ingest-hostd in a new directory under tmp_path.

        conf_text  hostd.conf contents (default: 'log_level = "debug";')
        env        overrides of the INGEST_* defaults; a value of None removes it
        plugins    names ("example"), paths, or (src, dest_name) tuples; copied
                   into <dir>/plugins
        wait_ready wait for GET /healthz == 200 (fails the test after 15 s)
        args       extra command-line arguments for ingest-hostd
        """
        d = self.tmp_path / f"daemon{len(self.daemons)}"
        (d / "plugins").mkdir(parents=True)
        os.chmod(d / "plugins", 0o755)
        sock = d / "hostd.sock"
        if len(str(sock)) > 100:  # sun_path limit; tmp_path can be long
            sock = Path(tempfile.mkdtemp(prefix="ingest-sock-", dir="/tmp")) / "hostd.sock"
        port = free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
        full_env.update({
            "INGEST_DATABASE_URL": self.db_url,
            "INGEST_LISTEN": f"127.0.0.1:{port}",
            "INGEST_PLUGIN_DIR": str(d / "plugins"),
            "INGEST_CONTROL_SOCKET": str(sock),
            "INGEST_CRYPTO_KEY": base64.b64encode(os.urandom(32)).decode(),
            "INGEST_OPERATOR_TOKEN": secrets.token_hex(24),
            "INGEST_WORKERS": "2",
        })
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = str(v)
        if "INGEST_LISTEN" in full_env:  # keep .url in step with an overridden port
            port = int(full_env["INGEST_LISTEN"].rsplit(":", 1)[-1])

        daemon = Daemon(d, self.hostd, self.hostctl, full_env, port)
        daemon.conf_path.write_text(DEFAULT_CONF if conf_text is None else conf_text)
        for spec in plugins:
            src, dest = self._plugin_source(spec)
            daemon.add_plugin(src, dest)
        daemon._spawn(args)
        self.daemons.append(daemon)
        if wait_ready:
            daemon.wait_ready()
        return daemon

    __call__ = start

    def teardown(self):
        problems = []
        for dmn in self.daemons:
            if dmn.proc is None:
                continue
            if dmn.alive():
                try:
                    dmn.stop()
                except BaseException as e:  # pytest.fail in stop(): report, go on
                    problems.append(f"[{dmn.dir.name}] {e}")
            rc = dmn.proc.returncode
            if rc is not None and rc < 0 and -rc not in dmn._signals_sent:
                problems.append(f"[{dmn.dir.name}] ingest-hostd died from signal {-rc} "
                                f"({signal.Signals(-rc).name})\n{dmn.log_text()[-4000:]}")
            for rep in dmn.sanitizer_reports():
                problems.append(f"[{dmn.dir.name}] sanitizer report:\n{rep}")
            if str(dmn.sock).startswith("/tmp/ingest-sock-"):
                shutil.rmtree(Path(dmn.sock).parent, ignore_errors=True)
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)

