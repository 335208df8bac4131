"""MockAPI: a small mock of a provider's HTTP API for connector tests.

A threaded HTTP/1.1 server on 127.0.0.1 (a free port) with:

  - routes: exact paths or templates ("/repos/{owner}/{repo}/pulls"), each
    answered by a function of the Request, or by fixed JSON (add_json);
  - Link rel="next" pagination over a list (add_paginated), by page number
    or opaque cursor, with the list bare or in an envelope of your shape;
  - rate-limit headers (X-RateLimit-Limit / -Remaining / -Used / -Reset) over
    a fixed window, and an over-quota answer with Retry-After (rate_limit);
  - scripted failures for the next requests to a path (fail_next): a status
    with headers (429 + Retry-After, 503, ...) or a connection dropped in the
    middle of the body;
  - a log of every request (times, method, path, query, headers, body, the
    status answered) in .requests.

    api = MockAPI().start()
    api.add_paginated("/items", [{"id": i} for i in range(25)], page_size=10)
    api.fail_next("/items", ("status", 429, {"Retry-After": "1"}))
    ... api.url ... api.requests ... api.stop()

It is also a base class: a subclass can set `methods` and override
`_serve(handler)` to answer requests itself, using send() for the answer.
"""
import json
import math
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class Request:
    """One request as the mock saw it (and what it answered)."""
    mono: float  # time.monotonic() at arrival
    wall: float  # time.time() at arrival
    method: str
    path: str  # without the query
    query: dict  # name -> last value
    headers: dict
    body: bytes
    target: str = ""  # the request line's target, query included
    params: dict = field(default_factory=dict)  # from the route's {placeholders}
    status: int = 0  # answered status; 0 = connection dropped
    action: str = "ok"  # ok | scripted | drop | over_quota | not_found

    def json(self):
        return json.loads(self.body or b"null")

    def header(self, name, default=None):
        """A request header, case-insensitively."""
        low = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == low), default)


@dataclass
class Reply:
    """An answer. body: bytes, str, or anything JSON-serialisable (sent as
    application/json). drop=True sends the headers and half the body, then
    closes the connection."""
    status: int = 200
    body: object = b""
    headers: dict = field(default_factory=dict)
    drop: bool = False


def json_reply(obj, status=200, headers=None):
    return Reply(status, obj, dict(headers or {}))


def error_reply(status, message=None, retry_after=None, headers=None):
    """A JSON error {"message": ...}, with Retry-After when given."""
    h = dict(headers or {})
    if retry_after is not None:
        h["Retry-After"] = str(retry_after)
    return Reply(status, {"message": message or f"HTTP {status}"}, h)


def send(h, status, body=b"", headers=(), partial=False):
    """Write one answer on a BaseHTTPRequestHandler. A body that is not bytes
    or str is sent as JSON. partial=True: half the body, then close."""
    if isinstance(body, bytes):
        data, ctype = body, "application/octet-stream"
    elif isinstance(body, str):
        data, ctype = body.encode(), "text/plain; charset=utf-8"
    else:
        data, ctype = json.dumps(body).encode(), "application/json; charset=utf-8"
    headers = dict(headers)
    h.send_response(status)
    if data or not isinstance(body, bytes):
        if not any(k.lower() == "content-type" for k in headers):
            h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(data)))
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    if partial:  # a transport error mid-response: half the body, then close
        h.wfile.write(data[:len(data) // 2])
        h.wfile.flush()
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)
        return
    if h.command != "HEAD":
        h.wfile.write(data)


def _compile(path):
    if isinstance(path, re.Pattern):
        return path
    parts = re.split(r"\{(\w+)\}", path)
    rx = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)"
                 for i, p in enumerate(parts))
    return re.compile(f"^{rx}$")


def _as_reply(value):
    if isinstance(value, Reply):
        return value
    if isinstance(value, tuple):
        return Reply(*value)
    return Reply(200, value)


def _action_reply(action):
    """A scripted action -> Reply, or None for ("drop",)."""
    if isinstance(action, Reply):
        return action
    if isinstance(action, int):
        return error_reply(action)
    kind = action[0]
    if kind == "status":
        r = error_reply(action[1])
        r.headers.update(action[2] if len(action) > 2 else {})
        return r
    if kind == "drop":
        return None
    raise ValueError(f"unknown scripted action {action!r}")


class MockAPI:
    methods = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")

    def __init__(self):
        self.requests = []
        self._lock = threading.Lock()
        self._routes = []  # (method, regex, handler)
        self._failures = []  # (method or None, regex, deque of actions)
        self._rate = None
        self._server = None
        self._thread = None

    # ---------------------------------------------------------------- control
    def start(self):
        """Start serving on 127.0.0.1 (a free port); returns self."""
        def dispatch(h):
            self._serve(h)
        ns = {"api": self, "protocol_version": "HTTP/1.1",
              "log_message": lambda h, fmt, *args: None}  # keep pytest output clean
        for m in self.methods:
            ns[f"do_{m}"] = dispatch
        handler = type("Handler", (BaseHTTPRequestHandler,), ns)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self if self._server else self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def snapshot(self):
        """A copy of the request log."""
        with self._lock:
            return list(self.requests)

    def requests_to(self, path, method=None):
        """Logged requests whose path matches `path` (exact or template)."""
        rx = _compile(path)
        return [r for r in self.snapshot()
                if rx.match(r.path) and (method is None or r.method == method)]

    # ----------------------------------------------------------------- routes
    def route(self, method, path, handler=None):
        """Answer `method path` with handler(request) -> Reply, a tuple
        (status, body[, headers]) or a JSON-serialisable body (200). path is
        exact, a template with {name} parts (-> request.params) or a regex.
        Without handler: a decorator. A later route wins over an earlier one."""
        if handler is None:
            return lambda fn: self.route(method, path, fn) or fn
        with self._lock:
            self._routes.insert(0, (method.upper(), _compile(path), handler))
        return None

    def add_json(self, method, path, body, status=200, headers=None):
        """Answer `method path` always with the same JSON."""
        self.route(method, path, lambda req: json_reply(body, status, headers))

    def add_paginated(self, path, items, page_size=10, param="cursor", envelope=None,
                      method="GET", link=True):
        """Serve `items` in pages of page_size at `path`.

        param     "page": 1-based page numbers (?page=2); anything else: an
                  opaque cursor in that query parameter (?cursor=...)
        envelope  envelope(page_items, next_token) -> body; default: the bare
                  list. next_token is the next page's param value or None.
        link      add Link: <url?param=next>; rel="next" while there is a next
                  page (other query parameters of the request are kept)

        The items list is read at request time: append to it to add data.
        """
        def page_token(index):
            return str(index + 1) if param == "page" else f"c{index * 7919:08x}"

        def page_index(token):
            if not token:
                return 0
            try:
                if param == "page":
                    return int(token) - 1
                n = int(token[1:], 16)
                return n // 7919 if token[0] == "c" and n % 7919 == 0 else -1
            except ValueError:
                return -1

        def handler(req):
            index = page_index(req.query.get(param))
            if index < 0:
                return error_reply(400, f"bad {param}")
            start = index * page_size
            chunk = list(items[start:start + page_size])
            nxt = page_token(index + 1) if start + page_size < len(items) else None
            headers = {}
            if nxt and link:
                query = {**req.query, param: nxt}
                headers["Link"] = f'<{self.url}{req.path}?{urlencode(query)}>; rel="next"'
            body = envelope(chunk, nxt) if envelope else chunk
            return json_reply(body, 200, headers)

        self.route(method, path, handler)

    # --------------------------------------------------------------- failures
    def fail_next(self, path, *actions, method=None):
        """Answer the next requests to `path` with `actions`, one per request,
        then normally. An action is ("status", code[, headers]) such as
        ("status", 429, {"Retry-After": "2"}), ("drop",) (half of the normal
        answer's body, then the connection is closed), a bare status code, or
        a Reply."""
        with self._lock:
            self._failures.append((method and method.upper(), _compile(path),
                                   deque(actions)))

    def rate_limit(self, limit, window_s=3600.0, used=0, over_status=429,
                   prefix="X-RateLimit-"):
        """Count requests in fixed windows of window_s seconds (`used` already
        spent in the first) and add {prefix}Limit / Remaining / Used / Reset
        (epoch seconds) to every answer; over the limit, answer over_status
        with Retry-After until the window resets. rate_limit(None) turns it off."""
        with self._lock:
            if limit is None:  # rate_limit(None): no more counting
                self._rate = None
                return
            self._rate = {"limit": limit, "window_s": window_s, "used": used,
                          "reset": 0.0, "over_status": over_status, "prefix": prefix}

    # ---------------------------------------------------------------- serving
    def _count(self, now):
        r = self._rate
        if not r["reset"]:
            r["reset"] = math.ceil(now + r["window_s"])
        while now >= r["reset"]:
            r["used"] = 0
            r["reset"] += r["window_s"]
        r["used"] += 1
        p = r["prefix"]
        headers = {f"{p}Limit": str(r["limit"]),
                   f"{p}Remaining": str(max(0, r["limit"] - r["used"])),
                   f"{p}Used": str(min(r["used"], r["limit"])),
                   f"{p}Reset": str(int(r["reset"]))}
        over = r["used"] > r["limit"]
        return headers, (over, max(1, math.ceil(r["reset"] - now)), r["over_status"])

    def _serve(self, h):
        mono, wall = time.monotonic(), time.time()
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        req = Request(mono, wall, h.command, parts.path, query, dict(h.headers.items()), body,
                      h.path)
        with self._lock:
            self.requests.append(req)
            rate, (over, retry_after, over_status) = (
                self._count(wall) if self._rate else ({}, (False, 0, 0)))
            action = None
            for method, rx, queue in (() if over else self._failures):
                if queue and (method is None or method == req.method) and rx.match(req.path):
                    action = queue.popleft()
                    break
            handler = None
            path_known = False
            for method, rx, fn in self._routes:
                m = rx.match(req.path)
                if m:
                    path_known = True
                    if method == req.method or (req.method == "HEAD" and method == "GET"):
                        handler, req.params = fn, m.groupdict()
                        break
        drop = False
        if over:
            reply, req.action = error_reply(over_status, "API rate limit exceeded",
                                            retry_after), "over_quota"
        elif action is not None and _action_reply(action) is not None:
            reply, req.action = _action_reply(action), "scripted"
        elif handler is None:
            reply = error_reply(405 if path_known else 404,
                                "Method Not Allowed" if path_known else "Not Found")
            req.action = "not_found"
        else:
            reply = _as_reply(handler(req))
            if action is not None:  # ("drop",)
                drop, req.action = True, "drop"
        drop = drop or reply.drop
        req.status = 0 if drop else reply.status
        send(h, reply.status, reply.body, {**rate, **reply.headers}, partial=drop)
