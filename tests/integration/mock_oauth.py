"""A mock OAuth2 token endpoint (RFC 6749 §6 refresh grant) on loopback.

    with MockOAuth(client_id="cid", client_secret="cs") as m:
        m.add_refresh_token("rt-0")
        url = m.token_url          # http://127.0.0.1:<port>/token
        ...
        m.count                    # token requests received
        m.requests                 # their parsed forms (dicts), in order

GET /api stands for the provider's API: 200 for "Authorization: Bearer <a
token this mock issued>", else 401 (invalid_token), like an API whose token
was revoked or expired; m.api_calls lists the tokens it saw.

Behaviour knobs (attributes, change them at any time):
    rotate      issue a new refresh token with each grant and revoke the one
                used (Atlassian, Slack, GitLab); False: keep it (Google)
    expires_in  seconds put in the response; None omits the member
    delay       seconds to sleep before answering (makes concurrency visible)
    mode        "ok" | "invalid_grant" | "unauthorized_client" | "server_error"
                (HTTP 503) | "no_access_token" (200 without the member)

A refresh token the mock did not issue (or revoked) is answered as RFC 6749
§5.2 says: HTTP 400, application/json, {"error": "invalid_grant", ...}, with
Cache-Control: no-store. Wrong client credentials get 401 invalid_client.
"""
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class MockOAuth:
    def __init__(self, client_id="test-client", client_secret=None, rotate=False,
                 expires_in=3600, delay=0.0):
        self.client_id = client_id
        self.client_secret = client_secret
        self.rotate = rotate
        self.expires_in = expires_in
        self.delay = delay
        self.mode = "ok"
        self.lock = threading.Lock()
        self.requests = []
        self.issued_access = []   # access tokens handed out, in order
        self.issued_refresh = []  # refresh tokens handed out (rotation), in order
        self.valid_refresh = set()
        self.in_flight = 0
        self.api_calls = []       # (bearer token, status) per GET /api
        self.max_in_flight = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ------------------------------------------------------------ lifecycle
    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def token_url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    @property
    def count(self):
        with self.lock:
            return len(self.requests)

    def add_refresh_token(self, token):
        with self.lock:
            self.valid_refresh.add(token)

    # ------------------------------------------------------------- protocol
    def _grant(self, form):
        """(status, body dict) for one parsed form; called under no lock."""
        if self.delay:
            time.sleep(self.delay)
        if form.get("grant_type") != "refresh_token" or "refresh_token" not in form:
            return 400, {"error": "invalid_request",
                         "error_description": "grant_type=refresh_token and refresh_token needed"}
        if form.get("client_id") != self.client_id or (
                self.client_secret is not None and form.get("client_secret") != self.client_secret):
            return 401, {"error": "invalid_client"}
        if self.mode == "server_error":
            return 503, {"error": "temporarily_unavailable"}
        if self.mode in ("invalid_grant", "unauthorized_client"):
            return 400, {"error": self.mode, "error_description": "refused by the mock"}
        with self.lock:
            if form["refresh_token"] not in self.valid_refresh:
                return 400, {"error": "invalid_grant",
                             "error_description": "refresh token unknown, expired or revoked"}
            body = {"token_type": "Bearer"}
            if self.mode != "no_access_token":
                access = f"mock-at-{len(self.issued_access)}-{secrets.token_urlsafe(18)}"
                self.issued_access.append(access)
                body["access_token"] = access
            if self.rotate:
                new = f"mock-rt-{len(self.issued_refresh)}-{secrets.token_urlsafe(18)}"
                self.issued_refresh.append(new)
                self.valid_refresh.discard(form["refresh_token"])
                self.valid_refresh.add(new)
                body["refresh_token"] = new
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return 200, body

    def _handler_class(self):
        mock = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _answer(self, status, body, extra=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Pragma", "no-cache")
                for k, v in extra:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                auth = self.headers.get("Authorization") or ""
                bearer = auth[7:] if auth.startswith("Bearer ") else ""
                with mock.lock:
                    ok = self.path == "/api" and bearer in mock.issued_access
                    mock.api_calls.append((bearer, 200 if ok else 401))
                if ok:
                    self._answer(200, {"ok": True})
                else:
                    self._answer(401, {"error": "invalid_token"},
                                 [("WWW-Authenticate", 'Bearer error="invalid_token"')])

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                with mock.lock:
                    mock.requests.append({"path": self.path, "content_type": ctype,
                                          "accept": self.headers.get("Accept"), "form": form})
                    mock.in_flight += 1
                    mock.max_in_flight = max(mock.max_in_flight, mock.in_flight)
                try:
                    if self.path != "/token":
                        status, body = 404, {"error": "not_found"}
                    elif ctype != "application/x-www-form-urlencoded":
                        status, body = 400, {"error": "invalid_request",
                                             "error_description": "form encoding required"}
                    else:
                        status, body = mock._grant(form)
                finally:
                    with mock.lock:
                        mock.in_flight -= 1
                self._answer(status, body)

        return Handler
