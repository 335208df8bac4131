"""A mock GitHub App provider on loopback: installation tokens and an API.

    with MockGitHubApp(app_id="12345", installation_id="777") as m:
        m.private_pem               # the app's private key (PKCS#8 PEM), for the connection
        m.base_url                  # http://127.0.0.1:<port>
        m.api_url                   # .../api/items

POST /app/installations/{id}/access_tokens  (as GitHub answers it)
    needs "Authorization: Bearer <JWT>": RS256, verified with the app's
    public key; claims iss == app_id, iat not in the future (60 s slack),
    exp in the future and at most 10 minutes after iat. A good request gets
    201 {"token": "ghs_...", "expires_at": "YYYY-MM-DDTHH:MM:SSZ", ...};
    a bad JWT 401 {"message": "A JSON web token could not be decoded"}; an
    unknown installation 404 {"message": "Not Found"}.
GET /api/items
    200 {"items": []} for "Authorization: Bearer <t>" where t is a token
    this mock issued (and did not revoke) or one added with accept(); else
    401 {"message": "Bad credentials"}, like an expired or revoked token.

Recorded: .mints (one dict per token request: installation, jwt, claims,
ok), .api_calls ((bearer token, status) per API request), .issued (tokens
handed out, in order).

Knobs (attributes, change them at any time):
    mode        "ok" | "bad_credentials" (401 to every token request) |
                "server_error" (503)
    expires_in  lifetime in seconds written into expires_at (default 3600)
    delay       seconds to sleep before answering a token request
"""
import base64
import json
import secrets
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class MockGitHubApp:
    def __init__(self, app_id="12345", installation_id="777", expires_in=3600, delay=0.0):
        self.app_id = app_id
        self.installation_id = installation_id
        self.expires_in = expires_in
        self.delay = delay
        self.mode = "ok"
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        self.lock = threading.Lock()
        self.mints = []
        self.issued = []
        self.valid = set()
        self.api_calls = []
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
    def base_url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self):
        return self.base_url + "/api/items"

    @property
    def mint_count(self):
        with self.lock:
            return len(self.mints)

    def accept(self, token):
        """Let the API accept `token` (a PAT, an OAuth token, a pre-stored one)."""
        with self.lock:
            self.valid.add(token)

    def revoke(self, token):
        with self.lock:
            self.valid.discard(token)

    def calls_with(self, token):
        with self.lock:
            return [s for t, s in self.api_calls if t == token]

    # ------------------------------------------------------------- protocol
    def _verify(self, jwt):
        """The JWT's claims when it is a good app assertion, else None."""
        try:
            head, body, sig = jwt.split(".")
            header = json.loads(b64url_decode(head))
            claims = json.loads(b64url_decode(body))
            if header != {"alg": "RS256", "typ": "JWT"}:
                return None
            self.key.public_key().verify(b64url_decode(sig), f"{head}.{body}".encode(),
                                         padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, InvalidSignature):
            return None
        now = time.time()
        ok = (str(claims.get("iss")) == self.app_id and claims.get("iat", now + 99) <= now + 60
              and now < claims.get("exp", 0) <= claims["iat"] + 660)
        return claims if ok else None

    def _mint(self, installation, auth):
        if self.delay:
            time.sleep(self.delay)
        jwt = auth[7:] if auth.startswith("Bearer ") else ""
        claims = self._verify(jwt)
        record = {"installation": installation, "jwt": jwt, "claims": claims, "ok": False}
        with self.lock:
            self.mints.append(record)
        if self.mode == "server_error":
            return 503, {"message": "Service unavailable"}
        if self.mode == "bad_credentials" or claims is None:
            return 401, {"message": "A JSON web token could not be decoded",
                         "documentation_url": "https://docs.github.com/rest"}
        if installation != self.installation_id:
            return 404, {"message": "Not Found"}
        expires = datetime.fromtimestamp(time.time() + self.expires_in, timezone.utc)
        with self.lock:
            token = f"ghs_{len(self.issued)}{secrets.token_urlsafe(24)}"
            self.issued.append(token)
            self.valid.add(token)
            record["ok"] = True
        return 201, {"token": token, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "permissions": {"issues": "read"}, "repository_selection": "all"}

    def _handler_class(self):
        mock = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                auth = self.headers.get("Authorization") or ""
                bearer = auth[7:] if auth.startswith("Bearer ") else auth
                with mock.lock:
                    ok = self.path == "/api/items" and bearer in mock.valid
                    mock.api_calls.append((bearer, 200 if ok else 401))
                if ok:
                    self._answer(200, {"items": []})
                else:
                    self._answer(401, {"message": "Bad credentials"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                parts = self.path.split("/")
                # /app/installations/{id}/access_tokens
                if len(parts) == 5 and parts[1:3] == ["app", "installations"] \
                        and parts[4] == "access_tokens":
                    self._answer(*mock._mint(parts[3], self.headers.get("Authorization") or ""))
                else:
                    self._answer(404, {"message": "Not Found"})

        return Handler
