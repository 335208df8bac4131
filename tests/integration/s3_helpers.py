"""An S3-compatible server on loopback for the S3/CSV connector's tests.

S3Server runs tests/integration/s3_server.js under node: the npm package
s3rver (installed by .ci/run into $INGEST_NPM_PREFIX, default
~/.cache/ingest-host/npm) behind a strict AWS Signature V4 check, a
request log and fault injection (cut or slow downloads). The test talks to
it with an admin token (no signing): creating buckets, uploading objects,
registering key pairs, reading the log.

unavailable_reason() says why a test must be skipped: only when node or
s3rver is really not installed (CI installs both).
"""
import hashlib
import http.client
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "s3_server.js"
REGION = "us-east-1"


def npm_prefix():
    return Path(os.environ.get("INGEST_NPM_PREFIX",
                               Path.home() / ".cache" / "ingest-host" / "npm"))


def s3rver_module():
    """Path of the installed s3rver package, or None."""
    p = npm_prefix() / "node_modules" / "s3rver"
    return p if (p / "package.json").is_file() else None


def unavailable_reason():
    if not shutil.which("node"):
        return "node is not installed (.ci/run installs nodejs and s3rver)"
    if not s3rver_module():
        return (f"npm package s3rver is not installed under {npm_prefix()} "
                "(.ci/run installs it: npm install --prefix $INGEST_NPM_PREFIX s3rver@3)")
    return None


class S3Server:
    """One s3_server.js process; stop() ends it and removes its data."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ingest-s3-", dir="/tmp"))
        self.admin_token = secrets.token_hex(16)
        self.proc = None
        self.port = None

    def start(self):
        env = dict(os.environ, S3RVER_MODULE=str(s3rver_module()), S3_DATA_DIR=str(self.dir),
                   S3_ADMIN_TOKEN=self.admin_token, S3_REGION=REGION)
        self.proc = subprocess.Popen(["node", str(SCRIPT)], stdout=subprocess.PIPE,
                                     stderr=open(self.dir / "stderr.log", "wb"), env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line:
            err = (self.dir / "stderr.log").read_text(errors="replace")
            self.stop()
            pytest.fail(f"s3_server.js did not start:\n{err}")
        self.port = json.loads(line)["port"]
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def endpoint(self):
        """Path-style endpoint (an IP address: no virtual hosts)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def vhost_endpoint(self):
        """Endpoint whose virtual hosts (<bucket>.localhost) resolve to loopback."""
        return f"http://localhost:{self.port}"

    # -- admin requests
    def _request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            h = {"X-Admin-Token": self.admin_token, **(headers or {})}
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                h["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            if r.status >= 300:
                raise AssertionError(f"{method} {path}: HTTP {r.status} {data[:500]!r}")
            return r, data
        finally:
            conn.close()

    def add_credentials(self, access_key_id, secret_access_key, session_token=None):
        body = {"access_key_id": access_key_id, "secret_access_key": secret_access_key}
        if session_token is not None:
            body["session_token"] = session_token
        self._request("POST", "/__admin/credentials", body)

    def new_credentials(self, session_token=False):
        """A fresh registered key pair: {"access_key_id", "secret_access_key"[, "session_token"]}."""
        c = {"access_key_id": "AKIA" + secrets.token_hex(8).upper(),
             "secret_access_key": secrets.token_urlsafe(30)}
        if session_token:
            c["session_token"] = "FQoG" + secrets.token_urlsafe(60)
        self.add_credentials(**c)
        return c

    def create_bucket(self, bucket):
        self._request("PUT", f"/{bucket}")

    def put_object(self, bucket, key, data, content_type="text/csv", headers=None):
        """Upload bytes (or a file path); returns the ETag without quotes."""
        if isinstance(data, (str, Path)) and Path(data).is_file():
            size = Path(data).stat().st_size
            with open(data, "rb") as f:
                r, _ = self._request("PUT", self.path(bucket, key), body=f,
                                     headers={"Content-Type": content_type,
                                              "Content-Length": str(size), **(headers or {})})
        else:
            if isinstance(data, str):
                data = data.encode()
            r, _ = self._request("PUT", self.path(bucket, key), body=data,
                                 headers={"Content-Type": content_type, **(headers or {})})
        return (r.getheader("ETag") or "").strip('"')

    def delete_object(self, bucket, key):
        self._request("DELETE", self.path(bucket, key))

    @staticmethod
    def path(bucket, key):
        return f"/{bucket}/" + urllib.parse.quote(key, safe="/~")

    def log(self):
        """Every request the server received (admin ones flagged), oldest first."""
        _, data = self._request("GET", "/__admin/log")
        return json.loads(data)

    def plugin_requests(self):
        return [e for e in self.log() if not e["admin"]]

    def clear_log(self):
        self._request("DELETE", "/__admin/log")

    def set_faults(self, *faults):
        """Each fault: {"key": k, "times": n, "cut_after_bytes": b} or {..., "throttle_bps": r}."""
        self._request("POST", "/__admin/faults", {"faults": list(faults)})


def md5_etag(data):
    return hashlib.md5(data).hexdigest()
