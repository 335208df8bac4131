"""A mock OAuth2 authorization server on loopback for the REST connect flow
(RFC 6749 authorization code grant with PKCE S256, RFC 7636).

    GET  /authorize  checks the query, issues a one-time code and answers
                     302 to redirect_uri?code=...&state=... (or
                     ?error=access_denied when .deny is set)
    POST /token      grant_type=authorization_code: checks code, client,
                     redirect_uri and code_verifier; answers the tokens

Every request is recorded in .requests (method, path, params) so a test can
check what the daemon sent.
"""
import base64
import hashlib
import json
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MockOAuthServer:
    def __init__(self, client_id="client-123", client_secret="client-secret-xyz",
                 access_token="good-token", refresh_token="refresh-abc", expires_in=3600):
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.extra_reply = {}
        self.expires_in = expires_in
        self.deny = False
        self.codes = {}  # code -> authorize params
        self.requests = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    # ----------------------------------------------------------- endpoints
    def authorize(self, params):
        if self.deny:
            return 302, {"error": "access_denied", "state": params.get("state", "")}
        for key in ("response_type", "client_id", "redirect_uri", "state"):
            if key not in params:
                return 400, {"error": "invalid_request", "missing": key}
        if params["client_id"] != self.client_id or params["response_type"] != "code":
            return 400, {"error": "unauthorized_client"}
        code = secrets.token_urlsafe(16)
        with self.lock:
            self.codes[code] = params
        return 302, {"code": code, "state": params["state"]}

    def token(self, form):
        def refuse(error, status=400):
            return status, {"error": error}
        if form.get("grant_type") != "authorization_code":
            return refuse("unsupported_grant_type")
        if form.get("client_id") != self.client_id or \
                form.get("client_secret") != self.client_secret:
            return refuse("invalid_client", 401)
        with self.lock:
            issued = self.codes.pop(form.get("code", ""), None)  # one use only
        if not issued or issued["redirect_uri"] != form.get("redirect_uri"):
            return refuse("invalid_grant")
        challenge = issued.get("code_challenge")
        if challenge:
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
                return refuse("invalid_grant")
        reply = {"access_token": self.access_token, "refresh_token": self.refresh_token,
                 "expires_in": self.expires_in, "token_type": "bearer"}
        reply.update(self.extra_reply)  # provider-specific members (Slack's authed_user)
        return 200, reply

    def _handler(self):
        mock = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(url.query))
                mock.requests.append(("GET", url.path, params))
                if url.path != "/authorize":
                    return self._json(404, {"error": "not_found"})
                status, out = mock.authorize(params)
                if status != 302:
                    return self._json(status, out)
                sep = "&" if "?" in params["redirect_uri"] else "?"
                self.send_response(302)
                self.send_header("Location",
                                 params["redirect_uri"] + sep + urllib.parse.urlencode(out))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                url = urllib.parse.urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                mock.requests.append(("POST", url.path, form))
                if url.path != "/token":
                    return self._json(404, {"error": "not_found"})
                self._json(*mock.token(form))

        return Handler
