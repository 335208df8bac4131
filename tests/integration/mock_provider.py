"""A mock SaaS provider for the HTTP API tests: GET /items, cursor-paginated.

It answers like a real API (shaped after GitHub's REST API):
  - 200 with {"items": [...], "meta": {"next_cursor": "..."|null}} and a
    Link: <...?cursor=...>; rel="next" header;
  - X-RateLimit-Limit / -Remaining / -Used / -Reset (Reset in unix epoch
    seconds) and X-RateLimit-Resource: core on every response;
  - over the quota: 403 with GitHub's primary-rate-limit body and
    X-RateLimit-Remaining: 0;
  - scripted failures per page: 429 + Retry-After (GitHub's secondary rate
    limit), 5xx, or a connection closed in the middle of the body.

Every request is recorded (monotonic and wall time, cursor, page, status,
headers) so tests can check rates, gaps and retries.

The server itself (threads, start/stop/url, the dropped connection) is the
SDK test kit's MockAPI (sdk/testing/ingest_testing/mock_api.py); this class
answers every request itself (_serve) instead of using MockAPI's routes.

    hub = MockProvider(n_items=40, page_size=4).start()
    hub.script_page(2, ("status", 503), ("status", 503))   # then normal
    ... hub.url ... hub.requests ... hub.stop()
"""
import math
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from ingest_testing.mock_api import MockAPI, send

PRIMARY_LIMIT_BODY = {
    "message": "API rate limit exceeded for installation ID 1. If you reach out to GitHub "
               "Support for help, please include the request ID.",
    "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api"
                         "#rate-limiting",
}
SECONDARY_LIMIT_BODY = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before "
               "you try again.",
    "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api"
                         "#secondary-rate-limits",
}


@dataclass
class Request:
    mono: float  # time.monotonic() at arrival
    wall: float  # time.time() at arrival
    path: str
    cursor: str
    page: int
    headers: dict
    status: int = 0  # 0 = connection dropped
    action: str = "ok"
    window: int = 0  # index of the vendor rate-limit window it counted in


@dataclass
class _Window:
    limit: int
    length_s: float
    used_at_start: int = 0  # spent by "other clients" in the first window
    index: int = -1
    reset: float = 0.0  # epoch seconds
    used: int = 0


@dataclass
class MockProvider(MockAPI):
    methods = ("GET",)  # anything else: 501, as BaseHTTPRequestHandler answers
    n_items: int = 20
    page_size: int = 5
    rate_limit: int = 5000  # X-RateLimit-Limit
    window_s: float = 3600.0  # length of the vendor's window
    used_at_start: int = 0  # requests "someone else" spent in the first window
    requests: list = field(default_factory=list)

    def __post_init__(self):
        requests = self.requests
        MockAPI.__init__(self)  # lock, server; start(), stop(), url, snapshot()
        self.requests = requests
        self._scripts = {}
        self._win = _Window(self.rate_limit, self.window_s, self.used_at_start)

    # ---------------------------------------------------------------- control
    def script_page(self, page, *actions):
        """Answer the next requests for `page` (0-based) with `actions`, one per
        request, then normally. An action is ("status", code[, headers]) or
        ("drop",): send half of a 200 body, then close the connection."""
        with self._lock:
            self._scripts.setdefault(page, []).extend(actions)

    def item_ids(self):
        return [self._item(i)["id"] for i in range(self.n_items)]

    # ------------------------------------------------------------- responses
    @staticmethod
    def _item(i):
        return {"id": f"item-{i:05d}", "number": i, "title": f"Item number {i}",
                "state": "open", "updated_at": f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z"}

    @staticmethod
    def cursor_of(page):
        return f"c{page * 7919:08x}"  # opaque to the client

    @staticmethod
    def page_of(cursor):
        if not cursor:
            return 0
        try:
            return int(cursor[1:], 16) // 7919
        except ValueError:
            return -1

    def page_body(self, page):
        start = page * self.page_size
        items = [self._item(i) for i in range(start, min(start + self.page_size, self.n_items))]
        has_next = start + self.page_size < self.n_items
        nxt = self.cursor_of(page + 1) if has_next else None
        return {"items": items, "meta": {"next_cursor": nxt, "total": self.n_items}}, nxt

    def _count(self, now):
        """Count one request in the vendor window; returns (window index, used,
        reset epoch) after counting it."""
        w = self._win
        if w.index < 0:
            w.index, w.used = 0, w.used_at_start
            w.reset = math.ceil(now + w.length_s)
        while now >= w.reset:
            w.index += 1
            w.used = 0
            w.reset += w.length_s
        w.used += 1
        return w.index, w.used, w.reset

    def _record(self, handler, now_mono, now_wall):
        q = parse_qs(urlsplit(handler.path).query)
        cursor = q.get("cursor", [""])[0]
        page = self.page_of(cursor)
        with self._lock:
            index, used, reset = self._count(now_wall)
            script = self._scripts.get(page)
            action = script.pop(0) if script else ("ok",)
            req = Request(now_mono, now_wall, urlsplit(handler.path).path, cursor, page,
                          dict(handler.headers.items()), window=index)
            self.requests.append(req)
        return req, action, used, reset

    def rate_headers(self, used, reset):
        return {"X-RateLimit-Limit": str(self._win.limit),
                "X-RateLimit-Remaining": str(max(0, self._win.limit - used)),
                "X-RateLimit-Used": str(min(used, self._win.limit)),
                "X-RateLimit-Reset": str(int(reset)),
                "X-RateLimit-Resource": "core"}

    # ---------------------------------------------------------------- serving
    def _serve(self, h):
        """Answer one GET (MockAPI calls this for every request)."""
        hub = self
        req, action, used, reset = hub._record(h, time.monotonic(), time.time())
        rate = hub.rate_headers(used, reset)
        if req.path != "/items" or req.page < 0:
            req.status = 404
            return send(h, 404, {"message": "Not Found"}, rate)
        if used > hub._win.limit:
            req.status, req.action = 403, "over_quota"
            return send(h, 403, PRIMARY_LIMIT_BODY, rate)
        body, nxt = hub.page_body(req.page)
        link = {}
        if nxt:
            link["Link"] = f'<{hub.url}/items?cursor={nxt}>; rel="next"'
        kind = action[0]
        req.action = kind
        if kind == "drop":
            req.status = 0
            return send(h, 200, body, {**rate, **link}, partial=True)
        if kind == "status":
            code = action[1]
            extra = action[2] if len(action) > 2 else {}
            req.status = code
            err = SECONDARY_LIMIT_BODY if code in (403, 429) else {"message": "Service Unavailable"}
            return send(h, code, err, {**rate, **extra})
        req.status = 200
        send(h, 200, body, {**rate, **link})
