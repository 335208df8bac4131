"""A mock of Slack's Web API and OAuth v2 for the slack connector's tests.

Shaped after the method reference (https://docs.slack.dev/reference/methods):

  GET  /api/auth.test                 {"ok", "url", "team", "user", "team_id", "user_id",
                                      "bot_id", "is_enterprise_install"}
  GET  /api/conversations.list        types, exclude_archived, limit, cursor ->
                                      {"ok", "channels": [...], "response_metadata":
                                      {"next_cursor": "..." | ""}}
  GET  /api/conversations.history     channel, cursor, limit, oldest, latest, inclusive ->
                                      top-level messages in (oldest, latest], newest first,
                                      "has_more", response_metadata.next_cursor (base64 of
                                      "next_ts:<ts>" as Slack's look)
  GET  /api/conversations.replies     channel, ts, cursor, limit, oldest, latest, inclusive ->
                                      the parent first, then its replies oldest first
  GET  /api/users.info                user -> {"ok", "user": {...}}
  GET  /oauth/v2/authorize            the consent screen, approved at once: 302 to
                                      redirect_uri?code=...&state=...
  POST /api/oauth.v2.access           grant_type authorization_code | refresh_token
                                      (token rotation: the old refresh token is revoked)

Slack's conventions: every method answers HTTP 200 with {"ok": false, "error":
"..."} for not_authed, invalid_auth, token_expired, channel_not_found,
not_in_channel, missing_scope (with "needed"/"provided"), user_not_found,
invalid_refresh_token, invalid_code; a rate-limited call gets HTTP 429 with
Retry-After (seconds) and {"ok": false, "error": "ratelimited"}, counted per
method per workspace over a minute at the method's tier (Tier 2: 20, Tier 3:
50, Tier 4: 100, changeable per method). `fail_next` scripts answers.

Every request is recorded (Request) so tests can check tokens, cursors,
parameters and timing.
"""
import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

TIERS = {"conversations.list": 20, "conversations.history": 50,
         "conversations.replies": 50, "users.info": 100, "auth.test": 100}


def ts_of(t):
    """A Slack ts ("1355517523.000005") from float seconds."""
    return f"{t:.6f}"


def tsf(ts):
    return float(ts)


def next_cursor(ts):
    return base64.b64encode(f"next_ts:{ts.replace('.', '')}".encode()).decode()


def cursor_ts(cursor):
    raw = base64.b64decode(cursor).decode()
    assert raw.startswith("next_ts:"), raw
    digits = raw[len("next_ts:"):]
    return f"{digits[:-6]}.{digits[-6:]}"


@dataclass
class Request:
    method: str  # HTTP method
    api: str  # "conversations.history", "oauth.v2.access", "/oauth/v2/authorize"
    query: dict
    form: dict
    headers: dict
    token: str
    status: int = 0
    error: str = ""
    mono: float = 0.0


@dataclass
class Token:
    value: str
    kind: str  # "bot" | "user"
    expires_at: float = None  # epoch; None = never
    scopes: tuple = ()


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_member: bool = True
    created: int = 1449252889
    creator: str = "W012A3BCD"
    archived: bool = False

    def as_json(self, team):
        return {
            "id": self.id, "name": self.name, "is_channel": not self.is_private,
            "is_group": self.is_private, "is_im": False, "is_mpim": False,
            "is_private": self.is_private, "created": self.created,
            "is_archived": self.archived, "is_general": self.name == "general",
            "unlinked": 0, "name_normalized": self.name, "is_shared": False,
            "is_org_shared": False, "is_pending_ext_shared": False, "pending_shared": [],
            "context_team_id": team, "updated": self.created * 1000,
            "parent_conversation": None, "creator": self.creator, "is_ext_shared": False,
            "shared_team_ids": [team], "pending_connected_team_ids": [],
            "is_member": self.is_member,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
            "previous_names": [], "num_members": 3}


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str
    thread_ts: str = None
    subtype: str = None
    edited: dict = None
    replies: list = field(default_factory=list)  # of Message

    def as_json(self, team):
        m = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts,
             "team": team}
        if self.subtype:
            m["subtype"] = self.subtype
        if self.edited:
            m["edited"] = dict(self.edited)
        if self.thread_ts:
            m["thread_ts"] = self.thread_ts
        if self.replies:
            m.update(thread_ts=self.ts, reply_count=len(self.replies),
                     reply_users_count=len({r.user for r in self.replies}),
                     latest_reply=max(r.ts for r in self.replies),
                     reply_users=sorted({r.user for r in self.replies}),
                     is_locked=False, subscribed=False)
        return m


class MockSlack:
    def __init__(self, team_id="T0123ABCD", team_name="Acme Corp", start_time=None):
        self.lock = threading.RLock()
        self.team_id, self.team_name = team_id, team_name
        self.bot_user_id, self.app_id = "U0BOT12345", "A0APP12345"
        self.requests = []
        self.tokens = {}  # value -> Token
        self.channels = []  # [Channel]
        self.messages = {}  # channel id -> [Message] (top level)
        self.users = {}  # id -> user JSON
        self.tier = dict(TIERS)
        self.calls = {}  # method -> [epoch of answered calls]
        self.scripts = []  # [(api, [answers])]
        self.users_info_delay = 0.0
        self.clock = float(start_time or time.time() - 3 * 86400)
        # OAuth
        self.client_id = "2141029472.691202649728"
        self.client_secret = secrets.token_hex(16)
        self.codes = {}  # code -> redirect_uri
        self.refresh_tokens = {}  # refresh token -> "bot" | "user" (valid ones)
        self.revoked_refresh = set()
        self.rotation = True
        self.token_ttl = 43200
        self.issued = []  # every token issued (for leak checks)
        self._server = None

    # ------------------------------------------------------------ lifecycle
    def start(self):
        handler = type("Handler", (_Handler,), {"mock": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def root(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self):
        """api_base_url: the Web API root."""
        return f"{self.root}/api"

    # --------------------------------------------------------------- data
    def add_token(self, value=None, kind="bot", ttl=None, scopes=()):
        value = value or f"xoxb-{secrets.randbelow(10**12)}-{secrets.token_hex(12)}"
        with self.lock:
            self.tokens[value] = Token(value, kind, time.time() + ttl if ttl else None,
                                       tuple(scopes))
        return value

    def expire_token(self, value):
        with self.lock:
            self.tokens[value].expires_at = time.time() - 1

    def add_user(self, uid, name, display_name="", real_name=""):
        with self.lock:
            self.users[uid] = {
                "id": uid, "team_id": self.team_id, "name": name, "deleted": False,
                "color": "9f69e7", "real_name": real_name or name, "tz": "America/Los_Angeles",
                "tz_label": "Pacific Daylight Time", "tz_offset": -25200,
                "profile": {"real_name": real_name or name, "display_name": display_name,
                            "real_name_normalized": real_name or name,
                            "display_name_normalized": display_name, "team": self.team_id},
                "is_admin": False, "is_owner": False, "is_bot": False, "updated": 1502138686}

    def add_channel(self, cid, name, **kw):
        with self.lock:
            ch = Channel(cid, name, **kw)
            self.channels.append(ch)
            self.messages.setdefault(cid, [])
        return ch

    def tick(self, step=7.25):
        with self.lock:
            self.clock += step
            return ts_of(self.clock)

    def post(self, channel, user, text, **kw):
        with self.lock:
            m = Message(channel, self.tick(), user, text, **kw)
            self.messages[channel].append(m)
            return m

    def reply(self, parent, user, text):
        with self.lock:
            r = Message(parent.channel, self.tick(), user, text, thread_ts=parent.ts)
            parent.replies.append(r)
            return r

    def fail_next(self, api, *answers):
        """The next calls of `api` get these answers in order, each
        (status, headers, body_dict)."""
        with self.lock:
            self.scripts.append((api, list(answers)))

    def snapshot(self, api=None):
        with self.lock:
            return [r for r in self.requests if api is None or r.api == api]

    # ---------------------------------------------------------- dispatch
    def scripted(self, api):
        with self.lock:
            for i, (name, answers) in enumerate(self.scripts):
                if name == api and answers:
                    ans = answers.pop(0)
                    if not answers:
                        self.scripts.pop(i)
                    return ans
        return None

    def over_tier(self, api):
        """Count the call in the method's minute window; the seconds until a
        slot frees when the tier is exhausted, else 0."""
        limit = self.tier.get(api)
        now = time.time()
        with self.lock:
            window = [t for t in self.calls.get(api, []) if t > now - 60]
            if limit and len(window) >= limit:
                self.calls[api] = window
                return max(1, int(window[0] + 60 - now + 1))
            window.append(now)
            self.calls[api] = window
        return 0

    def authorize(self, token):
        """None, or the Slack error code for this token."""
        if not token:
            return "not_authed"
        with self.lock:
            t = self.tokens.get(token)
        if not t:
            return "invalid_auth"
        if t.expires_at is not None and t.expires_at <= time.time():
            return "token_expired"
        return None

    def handle_api(self, api, q, token):
        """(status, headers, body) for a Web API method."""
        err = self.authorize(token)
        if err:
            return 200, {}, {"ok": False, "error": err}
        wait = self.over_tier(api)
        if wait:
            return 429, {"Retry-After": str(wait)}, {"ok": False, "error": "ratelimited"}
        fn = getattr(self, "m_" + api.replace(".", "_"), None)
        if not fn:
            return 200, {}, {"ok": False, "error": "unknown_method"}
        return fn(q, self.tokens[token])

    # ------------------------------------------------------------ methods
    def m_auth_test(self, q, tok):
        return 200, {}, {"ok": True, "url": "https://acme.slack.com/", "team": self.team_name,
                         "user": "ingestbot", "team_id": self.team_id,
                         "user_id": self.bot_user_id if tok.kind == "bot" else "W0USER0001",
                         "bot_id": "B0BOT12345", "is_enterprise_install": False}

    @staticmethod
    def limit_of(q, default=100, most=1000):
        try:
            n = int(q.get("limit", default))
        except ValueError:
            n = default
        return max(1, min(n if n > 0 else default, most))

    def m_conversations_list(self, q, tok):
        types = set((q.get("types") or "public_channel").split(","))
        with self.lock:
            chans = [c for c in self.channels
                     if (("private_channel" in types and c.is_private and
                          (c.is_member or tok.kind == "user")) or
                         ("public_channel" in types and not c.is_private)) and
                     not (c.archived and q.get("exclude_archived") in ("true", "1"))]
        start = int(base64.b64decode(q["cursor"]).decode().split(":")[1]) if q.get("cursor") \
            else 0
        n = self.limit_of(q)
        page = chans[start:start + n]
        nxt = base64.b64encode(f"dGVhbTpD:{start + n}".encode()).decode() \
            if start + n < len(chans) else ""
        return 200, {}, {"ok": True, "channels": [c.as_json(self.team_id) for c in page],
                         "response_metadata": {"next_cursor": nxt}}

    def channel_for(self, q, tok):
        with self.lock:
            ch = next((c for c in self.channels if c.id == q.get("channel")), None)
        if not ch:
            return None, {"ok": False, "error": "channel_not_found"}
        if tok.kind == "bot" and not ch.is_member:
            return None, {"ok": False, "error": "not_in_channel"}
        return ch, None

    @staticmethod
    def in_range(ts, q):
        oldest, latest = tsf(q.get("oldest", "0")), q.get("latest")
        inclusive = q.get("inclusive") in ("true", "1")
        t = tsf(ts)
        lo = t >= oldest if inclusive else t > oldest
        hi = True if latest is None else (t <= tsf(latest) if inclusive else t < tsf(latest))
        return lo and hi

    def m_conversations_history(self, q, tok):
        ch, err = self.channel_for(q, tok)
        if err:
            return 200, {}, err
        with self.lock:
            msgs = sorted((m for m in self.messages[ch.id] if self.in_range(m.ts, q)),
                          key=lambda m: tsf(m.ts), reverse=True)
            if q.get("cursor"):
                before = tsf(cursor_ts(q["cursor"]))
                msgs = [m for m in msgs if tsf(m.ts) < before]
            n = self.limit_of(q, 100, 999)
            page, more = msgs[:n], len(msgs) > n
            body = {"ok": True, "messages": [m.as_json(self.team_id) for m in page],
                    "has_more": more, "pin_count": 0, "channel_actions_ts": None,
                    "channel_actions_count": 0}
            if more:
                body["response_metadata"] = {"next_cursor": next_cursor(page[-1].ts)}
        return 200, {}, body

    def m_conversations_replies(self, q, tok):
        ch, err = self.channel_for(q, tok)
        if err:
            return 200, {}, err
        with self.lock:
            parent = next((m for m in self.messages[ch.id] if m.ts == q.get("ts")), None)
            if not parent:
                return 200, {}, {"ok": False, "error": "thread_not_found"}
            rest = sorted((r for r in parent.replies if self.in_range(r.ts, q)),
                          key=lambda r: tsf(r.ts))
            if q.get("cursor"):
                after = tsf(cursor_ts(q["cursor"]))
                rest = [r for r in rest if tsf(r.ts) > after]
            n = self.limit_of(q, 10, 1000)
            first = [] if q.get("cursor") else [parent]
            page = (first + rest)[:n]
            more = len(first + rest) > n
            body = {"ok": True, "messages": [m.as_json(self.team_id) for m in page],
                    "has_more": more}
            if more:
                body["response_metadata"] = {"next_cursor": next_cursor(page[-1].ts)}
        return 200, {}, body

    def m_users_info(self, q, tok):
        if self.users_info_delay:
            time.sleep(self.users_info_delay)
        with self.lock:
            u = self.users.get(q.get("user"))
        if not u:
            return 200, {}, {"ok": False, "error": "user_not_found"}
        return 200, {}, {"ok": True, "user": u}

    # -------------------------------------------------------------- OAuth
    def new_pair(self, kind):
        prefix = "xoxe.xoxb-1-" if kind == "bot" else "xoxe.xoxp-1-"
        access = self.add_token(prefix + secrets.token_urlsafe(24), kind,
                                ttl=self.token_ttl if self.rotation else None)
        refresh = None
        if self.rotation:
            refresh = "xoxe-1-" + secrets.token_urlsafe(32)
            self.refresh_tokens[refresh] = kind
        self.issued += [access] + ([refresh] if refresh else [])
        return access, refresh

    def installation(self, bot, bot_refresh, user, user_refresh):
        body = {"ok": True, "access_token": bot, "token_type": "bot",
                "scope": "channels:read,channels:history,users:read", "bot_user_id":
                self.bot_user_id, "app_id": self.app_id,
                "team": {"name": self.team_name, "id": self.team_id}, "enterprise": None,
                "is_enterprise_install": False,
                "authed_user": {"id": "W0USER0001", "scope": "channels:history",
                                "access_token": user, "token_type": "user"}}
        if bot_refresh:
            body.update(refresh_token=bot_refresh, expires_in=self.token_ttl)
            body["authed_user"].update(refresh_token=user_refresh, expires_in=self.token_ttl)
        return body

    def oauth_access(self, form, basic):
        cid, secret = basic or (form.get("client_id"), form.get("client_secret"))
        if cid != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        grant = form.get("grant_type", "authorization_code")
        with self.lock:
            if grant == "refresh_token":
                rt = form.get("refresh_token")
                kind = self.refresh_tokens.pop(rt, None)
                if not kind:
                    return {"ok": False, "error": "invalid_refresh_token"}
                self.revoked_refresh.add(rt)
                access, refresh = self.new_pair(kind)
                return {"ok": True, "app_id": self.app_id, "scope": "channels:history",
                        "token_type": kind, "access_token": access,
                        "bot_user_id": self.bot_user_id, "refresh_token": refresh,
                        "expires_in": self.token_ttl,
                        "team": {"id": self.team_id, "name": self.team_name},
                        "enterprise": None, "is_enterprise_install": False}
            redirect = self.codes.pop(form.get("code"), None)
            if redirect is None or redirect != form.get("redirect_uri"):
                return {"ok": False, "error": "invalid_code"}
            bot, bot_refresh = self.new_pair("bot")
            user, user_refresh = self.new_pair("user")
            return self.installation(bot, bot_refresh, user, user_refresh)


class _Handler(BaseHTTPRequestHandler):
    mock = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, headers, body, record):
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else (body or b"")
        record.status = status
        record.error = body.get("error", "") if isinstance(body, dict) else ""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _request(self, method):
        m = self.mock
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()} \
            if raw and "json" not in (self.headers.get("Content-Type") or "") else {}
        authz = self.headers.get("Authorization") or ""
        token = authz[7:] if authz.startswith("Bearer ") else form.get("token")
        api = parts.path[5:] if parts.path.startswith("/api/") else parts.path
        rec = Request(method, api, query, form, dict(self.headers), token, mono=time.monotonic())
        with m.lock:
            m.requests.append(rec)
        return rec, parts, query, form, authz

    def do_GET(self):
        rec, parts, query, form, _ = self._request("GET")
        if parts.path == "/oauth/v2/authorize":
            return self._authorize(rec, query)
        self._api(rec, {**query, **form})

    def do_POST(self):
        rec, parts, query, form, authz = self._request("POST")
        if rec.api == "oauth.v2.access":
            basic = None
            if authz.startswith("Basic "):
                basic = tuple(base64.b64decode(authz[6:]).decode().split(":", 1))
            return self._send(200, {}, self.mock.oauth_access(form, basic), rec)
        self._api(rec, {**query, **form})

    def _api(self, rec, q):
        scripted = self.mock.scripted(rec.api)
        if scripted:
            return self._send(*scripted, rec)
        self._send(*self.mock.handle_api(rec.api, q, rec.token), rec)

    def _authorize(self, rec, q):
        m = self.mock
        if q.get("client_id") != m.client_id:
            return self._send(400, {}, {"ok": False, "error": "invalid_client_id"}, rec)
        code = f"{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
        with m.lock:
            m.codes[code] = q.get("redirect_uri")
        loc = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}"
        rec.status = 302
        self.send_response(302)
        self.send_header("Location", loc)
        self.send_header("Content-Length", "0")
        self.end_headers()
