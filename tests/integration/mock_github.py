"""A mock of GitHub's REST API for the github connector's tests.

Shaped after the REST API reference (api.github.com, version 2022-11-28):

  GET  /repos/{owner}/{repo}/pulls                  pull-request-simple[]
  GET  /repos/{owner}/{repo}/issues                 issue[] (pull requests included, with a
                                                    "pull_request" member, as GitHub does)
  GET  /repos/{owner}/{repo}/issues/comments        issue-comment[]
  GET  /repos/{owner}/{repo}/pulls/{n}/reviews      pull-request-review[]
  GET  /orgs/{org}/repos                            minimal-repository[]
  GET  /rate_limit                                  rate-limit-overview (free, as at GitHub)
  POST /app/installations/{id}/access_tokens        installation-token (JWT RS256 checked)
  GET  /login/oauth/authorize                       an OAuth app's consent, approved at once:
                                                    302 to redirect_uri?code=...&state=...
  POST /login/oauth/access_token                    code -> {"access_token": "gho_...",
                                                    "scope", "token_type": "bearer"} (JSON
                                                    with Accept: application/json)

  - state / sort / direction / since / per_page (max 100) / page as documented;
    `since` keeps records updated at or after the time;
  - Link: <...&page=N>; rel="next", rel="last", rel="first", rel="prev";
  - x-ratelimit-limit/-remaining/-used/-reset/-resource on every answer; a
    304 to a conditional request is not counted (GitHub's rule for
    authorized conditional requests);
  - ETag (weak, a hash of the body) and If-None-Match -> 304 without a body;
  - bearer tokens: 401 {"message": "Bad credentials", ...} for anything
    unknown or expired; installation tokens expire (expire_tokens());
  - GitHub's documented error bodies {"message", "documentation_url",
    "status"}; the primary limit (403, x-ratelimit-remaining: 0) and the
    secondary limit (403 + retry-after) can be scripted;
  - everything may be served under a prefix such as /api/v3 (GitHub
    Enterprise Server).

Every request is recorded (Request) so tests can count them.

    gh = MockGitHub().start()
    repo = gh.add_repo("octo/hello", prs=30, issues=10)
    gh.add_token("ghp_...")
    ...
    gh.stop()
"""
import base64
import calendar
import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

DOCS = "https://docs.github.com/rest"
BAD_CREDENTIALS = {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}
NOT_FOUND = {"message": "Not Found",
             "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository",
             "status": "404"}
SECONDARY_LIMIT = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you "
               "try again. If you reach out to GitHub Support for help, please include the "
               "request ID 0C3B:2F4E:9A1B3C:A1B2C3:65F0A1B2.",
    "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/"
                         "rate-limits-for-the-rest-api#about-secondary-rate-limits",
    "status": "403"}
PRIMARY_LIMIT = {
    "message": "API rate limit exceeded for user ID 583231. If you reach out to GitHub Support "
               "for help, please include the request ID 0C3B:2F4E:9A1B3C:A1B2C3:65F0A1B3 and "
               "timestamp 2024-03-01 00:00:00 UTC.",
    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
    "status": "403"}
JWT_UNDECODABLE = {"message": "A JSON web token could not be decoded",
                   "documentation_url": DOCS, "status": "401"}
JWT_EXPIRED = {"message": "'Expiration time' claim ('exp') must be a numeric value representing "
                          "the future time at which the assertion expires",
               "documentation_url": DOCS, "status": "401"}


def iso(t):
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


def parse_iso(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def node_id(kind, n):
    return base64.b64encode(f"0{len(kind)}:{kind}{n}".encode()).decode()


@dataclass
class Request:
    method: str
    path: str  # without the prefix and the query
    query: dict
    headers: dict
    token: str
    status: int = 0
    mono: float = 0.0


@dataclass
class Record:
    """A pull request or an issue (they share the repository's numbers)."""
    kind: str  # "pr" | "issue"
    number: int
    id: int  # pulls id (pr) or issue id (issue)
    issue_id: int  # a PR's id in the issues API
    title: str
    user: str
    created: int
    updated: int
    closed: int = None
    merged: int = None
    draft: bool = False
    labels: list = field(default_factory=list)
    head_sha: str = ""


@dataclass
class Comment:
    id: int
    number: int
    user: str
    body: str
    created: int
    updated: int


@dataclass
class Review:
    id: int
    number: int
    user: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | PENDING
    submitted: int
    body: str = ""


@dataclass
class Repo:
    id: int
    full_name: str
    archived: bool = False
    records: list = field(default_factory=list)
    comments: list = field(default_factory=list)
    reviews: list = field(default_factory=list)

    @property
    def owner(self):
        return self.full_name.split("/")[0]

    @property
    def name(self):
        return self.full_name.split("/")[1]

    def pr(self, number):
        return next(r for r in self.records if r.number == number)


class MockGitHub:
    def __init__(self, prefix="", rate_limit=5000, start_time=None, first_id=1000):
        self.prefix = prefix.rstrip("/")
        self.lock = threading.RLock()
        self.requests = []
        self.repos = {}  # lower-case full name -> Repo
        self.orgs = {}  # lower-case org -> [Repo]
        self.tokens = set()  # valid bearer tokens (PATs, OAuth tokens)
        self.installation_tokens = {}  # token -> expiry epoch
        self.apps = {}  # app id (str) -> public key (cryptography object)
        self.installations = {}  # installation id (str) -> app id (str)
        self.jwt_claims = []  # claims of every JWT accepted or refused
        self.oauth_client = None  # (client_id, client_secret) of the OAuth app
        self.oauth_codes = {}  # code -> redirect_uri
        self.oauth_requests = []  # parsed forms sent to /login/oauth/access_token
        self.token_ttl = 3600
        self.limit = rate_limit
        self.used = 0
        self.reset = int(time.time()) + 3600
        self.scripts = []  # [(regex, [actions])]
        self.clock = int(start_time or time.time() - 15 * 86400)
        self._next_id = first_id  # a second instance in one test: ids that differ
        self._server = None

    # ------------------------------------------------------------- lifecycle
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
            self._server = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    # ------------------------------------------------------------- data
    def new_id(self):
        with self.lock:
            self._next_id += 1
            return self._next_id

    def tick(self, seconds=1):
        """Advance the mock's clock (never behind the wall clock)."""
        with self.lock:
            self.clock = max(self.clock + seconds, int(time.time()))
            return self.clock

    def add_token(self, token):
        self.tokens.add(token)
        return token

    def add_repo(self, full_name, prs=0, issues=0, comments=0, reviews=0, org=None,
                 archived=False, step=60):
        """A repository with `prs` pull requests and `issues` issues created
        `step` seconds apart (every 3rd PR merged, every 5th closed unmerged;
        every 4th issue closed), `comments` comments spread over the issues
        and pull requests, and `reviews` reviews on the first pull requests."""
        with self.lock:
            repo = Repo(self.new_id(), full_name, archived)
            self.repos[full_name.lower()] = repo
            if org:
                self.orgs.setdefault(org.lower(), []).append(repo)
            kinds = ["pr"] * prs + ["issue"] * issues
            for n, kind in enumerate(kinds, start=1):
                t = self.clock
                self.clock += step
                r = Record(kind, n, self.new_id(), self.new_id(), f"{kind} number {n}",
                           f"user{n % 7}", t, t, head_sha=hashlib.sha1(f"{n}".encode()).hexdigest())
                if kind == "pr" and n % 3 == 0:
                    r.merged = r.closed = r.updated = t + 30
                elif kind == "pr" and n % 5 == 0:
                    r.closed = r.updated = t + 30
                elif kind == "issue" and n % 4 == 0:
                    r.closed = r.updated = t + 30
                if kind == "issue" and n % 3 == 0:
                    r.labels = ["bug"]
                repo.records.append(r)
            for i in range(comments):
                target = repo.records[i % len(repo.records)]
                t = self.clock
                self.clock += step
                repo.comments.append(Comment(self.new_id(), target.number, f"user{i % 5}",
                                             f"comment {i}", t, t))
                target.updated = max(target.updated, t)
            prs_list = [r for r in repo.records if r.kind == "pr"]
            for i in range(reviews):
                target = prs_list[i % len(prs_list)]
                t = self.clock
                self.clock += step
                state = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED")[i % 3]
                repo.reviews.append(Review(self.new_id(), target.number, f"rev{i % 4}", state, t,
                                           f"review {i}"))
                target.updated = max(target.updated, t)
            if reviews:  # one draft review: not submitted, never an event
                target = prs_list[0]
                repo.reviews.append(Review(self.new_id(), target.number, "drafter", "PENDING",
                                           None))
            return repo

    def add_org(self, org, names, archived=()):
        return [self.add_repo(f"{org}/{n}", prs=2, issues=1, org=org, archived=n in archived)
                for n in names]

    def update_pr(self, repo, number, merge=False, close=False, reopen=False, title=None):
        with self.lock:
            r = self.repos[repo.lower()].pr(number)
            t = self.tick()
            r.updated = t
            if merge:
                r.merged = r.closed = t
            elif close:
                r.closed = t
            elif reopen:
                r.closed = None
            if title:
                r.title = title
            return r

    def add_comment(self, repo, number, body="late comment"):
        with self.lock:
            rp = self.repos[repo.lower()]
            t = self.tick()
            c = Comment(self.new_id(), number, "latecomer", body, t, t)
            rp.comments.append(c)
            rp.pr(number).updated = t
            return c

    def add_review(self, repo, number, state="APPROVED"):
        with self.lock:
            rp = self.repos[repo.lower()]
            t = self.tick()
            rv = Review(self.new_id(), number, "late-reviewer", state, t, "lgtm")
            rp.reviews.append(rv)
            rp.pr(number).updated = t
            return rv

    # ------------------------------------------------------------- apps
    def add_app(self, app_id, public_key, installation_id):
        self.apps[str(app_id)] = public_key
        self.installations[str(installation_id)] = str(app_id)

    def oauth_app(self, client_id, client_secret):
        self.oauth_client = (client_id, client_secret)

    @property
    def root(self):
        """The server without the API prefix (github.com's role)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def expire_tokens(self):
        """Every installation token issued so far stops working (401)."""
        with self.lock:
            for t in self.installation_tokens:
                self.installation_tokens[t] = 0

    # ------------------------------------------------------------- scripting
    def script(self, path_regex, *actions):
        """The next requests whose path matches get `actions`, one each:
        ("pass",) (answer normally) | ("secondary", retry_after_s) |
        ("primary", reset_in_s) | ("status", code, body_dict[, headers])."""
        with self.lock:
            self.scripts.append((re.compile(path_regex), list(actions)))

    def _scripted(self, path):
        with self.lock:
            for rx, actions in self.scripts:
                if actions and rx.search(path):
                    return actions.pop(0)
        return None

    # ------------------------------------------------------------- queries
    def snapshot(self, method=None, path=None):
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method) and
                    (path is None or re.search(path, r.path))]

    def clear(self):
        with self.lock:
            self.requests.clear()

    # ------------------------------------------------------------- shapes
    def _user(self, login):
        uid = int(hashlib.sha1(login.encode()).hexdigest()[:7], 16)
        return {"login": login, "id": uid, "node_id": node_id("User", uid),
                "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
                "gravatar_id": "", "url": f"https://api.github.com/users/{login}",
                "html_url": f"https://github.com/{login}", "type": "User", "site_admin": False}

    def _repo_json(self, repo):
        api = f"{self.url}/repos/{repo.full_name}"
        return {"id": repo.id, "node_id": node_id("Repository", repo.id), "name": repo.name,
                "full_name": repo.full_name, "private": False,
                "owner": self._user(repo.owner),
                "html_url": f"https://github.com/{repo.full_name}", "description": None,
                "fork": False, "url": api, "archived": repo.archived, "disabled": False,
                "pulls_url": api + "/pulls{/number}", "issues_url": api + "/issues{/number}",
                "default_branch": "main", "visibility": "public"}

    def _labels(self, r):
        return [{"id": 208045946, "node_id": "MDU6TGFiZWwyMDgwNDU5NDY=",
                 "url": "https://api.github.com/repos/octocat/Hello-World/labels/bug",
                 "name": name, "description": "Something isn't working", "color": "f29513",
                 "default": True} for name in r.labels]

    def pull_json(self, repo, r):
        api = f"{self.url}/repos/{repo.full_name}"
        html = f"https://github.com/{repo.full_name}/pull/{r.number}"
        side = lambda ref, sha: {"label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha,
                                 "user": self._user(repo.owner), "repo": self._repo_json(repo)}
        return {
            "url": f"{api}/pulls/{r.number}", "id": r.id, "node_id": node_id("PullRequest", r.id),
            "html_url": html, "diff_url": html + ".diff", "patch_url": html + ".patch",
            "issue_url": f"{api}/issues/{r.number}",
            "commits_url": f"{api}/pulls/{r.number}/commits",
            "review_comments_url": f"{api}/pulls/{r.number}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{r.number}/comments",
            "statuses_url": f"{api}/statuses/{r.head_sha}",
            "number": r.number, "state": "closed" if r.closed else "open", "locked": False,
            "title": r.title, "user": self._user(r.user), "body": f"Body of {r.title}",
            "labels": self._labels(r), "milestone": None, "active_lock_reason": None,
            "created_at": iso(r.created), "updated_at": iso(r.updated),
            "closed_at": iso(r.closed), "merged_at": iso(r.merged),
            "merge_commit_sha": r.head_sha[::-1] if r.merged else None,
            "assignee": None, "assignees": [], "requested_reviewers": [], "requested_teams": [],
            "head": side(f"feature-{r.number}", r.head_sha), "base": side("main", "0" * 40),
            "_links": {"self": {"href": f"{api}/pulls/{r.number}"}, "html": {"href": html},
                       "issue": {"href": f"{api}/issues/{r.number}"},
                       "comments": {"href": f"{api}/issues/{r.number}/comments"}},
            "author_association": "CONTRIBUTOR", "auto_merge": None, "draft": r.draft}

    def issue_json(self, repo, r):
        api = f"{self.url}/repos/{repo.full_name}"
        kind = "pull" if r.kind == "pr" else "issues"
        html = f"https://github.com/{repo.full_name}/{kind}/{r.number}"
        out = {
            "url": f"{api}/issues/{r.number}", "repository_url": api,
            "labels_url": f"{api}/issues/{r.number}/labels{{/name}}",
            "comments_url": f"{api}/issues/{r.number}/comments",
            "events_url": f"{api}/issues/{r.number}/events", "html_url": html,
            "id": r.issue_id, "node_id": node_id("Issue", r.issue_id), "number": r.number,
            "title": r.title, "user": self._user(r.user), "labels": self._labels(r),
            "state": "closed" if r.closed else "open", "locked": False, "assignee": None,
            "assignees": [], "milestone": None,
            "comments": sum(1 for c in repo.comments if c.number == r.number),
            "created_at": iso(r.created), "updated_at": iso(r.updated),
            "closed_at": iso(r.closed), "author_association": "CONTRIBUTOR",
            "active_lock_reason": None, "body": f"Body of {r.title}",
            "timeline_url": f"{api}/issues/{r.number}/timeline",
            "state_reason": ("completed" if r.closed else None)}
        if r.kind == "pr":
            out["draft"] = r.draft
            out["pull_request"] = {"url": f"{api}/pulls/{r.number}", "html_url": html,
                                   "diff_url": html + ".diff", "patch_url": html + ".patch",
                                   "merged_at": iso(r.merged)}
        return out

    def comment_json(self, repo, c):
        api = f"{self.url}/repos/{repo.full_name}"
        return {"url": f"{api}/issues/comments/{c.id}",
                "html_url": f"https://github.com/{repo.full_name}/issues/{c.number}"
                            f"#issuecomment-{c.id}",
                "issue_url": f"{api}/issues/{c.number}", "id": c.id,
                "node_id": node_id("IssueComment", c.id), "user": self._user(c.user),
                "created_at": iso(c.created), "updated_at": iso(c.updated),
                "author_association": "CONTRIBUTOR", "body": c.body,
                "reactions": {"url": f"{api}/issues/comments/{c.id}/reactions",
                              "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0,
                              "confused": 0, "heart": 0, "rocket": 0, "eyes": 0},
                "performed_via_github_app": None}

    def review_json(self, repo, rv):
        api = f"{self.url}/repos/{repo.full_name}"
        html = f"https://github.com/{repo.full_name}/pull/{rv.number}"
        out = {"id": rv.id, "node_id": node_id("PullRequestReview", rv.id),
               "user": self._user(rv.user), "body": rv.body, "state": rv.state,
               "html_url": f"{html}#pullrequestreview-{rv.id}",
               "pull_request_url": f"{api}/pulls/{rv.number}",
               "_links": {"html": {"href": f"{html}#pullrequestreview-{rv.id}"},
                          "pull_request": {"href": f"{api}/pulls/{rv.number}"}},
               "commit_id": repo.pr(rv.number).head_sha, "author_association": "COLLABORATOR"}
        if rv.submitted is not None:  # pending reviews have no submitted_at
            out["submitted_at"] = iso(rv.submitted)
        return out

    # ------------------------------------------------------------- listing
    def listing(self, path, q):
        """(status, list or error body) for a GET path."""
        m = re.fullmatch(r"/orgs/([^/]+)/repos", path)
        if m:
            repos = self.orgs.get(m.group(1).lower())
            if repos is None:
                return 404, NOT_FOUND
            return 200, [self._repo_json(r) for r in sorted(repos, key=lambda r: r.full_name)]
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/(pulls|issues|issues/comments)", path)
        m2 = re.fullmatch(r"/repos/([^/]+)/([^/]+)/pulls/(\d+)/reviews", path)
        if not m and not m2:
            return 404, NOT_FOUND
        g = m or m2
        repo = self.repos.get(f"{g.group(1)}/{g.group(2)}".lower())
        if repo is None:
            return 404, NOT_FOUND
        if m2:
            number = int(m2.group(3))
            return 200, [self.review_json(repo, rv) for rv in repo.reviews
                         if rv.number == number]
        what = m.group(3)
        state = q.get("state", "open")
        since = parse_iso(q["since"]) if "since" in q else None
        direction = q.get("direction")
        sort = q.get("sort", "created")
        if what == "issues/comments":
            items = [c for c in repo.comments if since is None or c.updated >= since]
            key = (lambda c: (c.updated, c.id)) if sort == "updated" else (lambda c: (c.created,
                                                                                        c.id))
            items.sort(key=key, reverse=(direction == "desc"))
            return 200, [self.comment_json(repo, c) for c in items]
        recs = [r for r in repo.records if what == "issues" or r.kind == "pr"]
        if state != "all":
            recs = [r for r in recs if (r.closed is not None) == (state == "closed")]
        if since is not None and what == "issues":
            recs = [r for r in recs if r.updated >= since]
        key = (lambda r: (r.updated, r.number)) if sort == "updated" else (
            lambda r: (r.created, r.number))
        default_desc = what == "issues" or sort == "created"
        desc = direction == "desc" if direction else default_desc
        recs.sort(key=key, reverse=desc)
        shape = self.pull_json if what == "pulls" else self.issue_json
        return 200, [shape(repo, r) for r in recs]

    def rate_headers(self):
        return {"x-ratelimit-limit": str(self.limit),
                "x-ratelimit-remaining": str(max(0, self.limit - self.used)),
                "x-ratelimit-used": str(min(self.used, self.limit)),
                "x-ratelimit-reset": str(self.reset), "x-ratelimit-resource": "core"}

    def verify_jwt(self, jwt):
        """(ok, app id, claims or reason)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        try:
            h64, c64, s64 = jwt.split(".")
            header = json.loads(b64url_decode(h64))
            claims = json.loads(b64url_decode(c64))
        except (ValueError, TypeError):
            return False, None, "undecodable"
        self.jwt_claims.append(claims)
        if header.get("alg") != "RS256":
            return False, None, "alg"
        app = str(claims.get("iss"))
        key = self.apps.get(app)
        if key is None:
            return False, None, "unknown app"
        try:
            key.verify(b64url_decode(s64), f"{h64}.{c64}".encode(), padding.PKCS1v15(),
                       hashes.SHA256())
        except Exception:  # InvalidSignature
            return False, app, "signature"
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or iat > now + 60 or \
                exp <= now or exp - iat > 600:
            return False, app, "expired"
        return True, app, claims


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mock = None

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body=None, headers=None):
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        hdrs = {"Content-Type": "application/json; charset=utf-8",
                "X-GitHub-Media-Type": "github.v3; format=json",
                "X-GitHub-Api-Version-Selected": "2022-11-28",
                "X-GitHub-Request-Id": f"0C3B:{secrets.token_hex(4).upper()}"}
        hdrs.update(headers or {})
        if status == 304:
            hdrs.pop("Content-Type", None)
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _begin(self, method):
        m = self.mock
        parts = urlsplit(self.path)
        path = parts.path
        if m.prefix and path.startswith(m.prefix):
            path = path[len(m.prefix):]
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        auth = self.headers.get("Authorization") or ""
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        req = Request(method, path, q, dict(self.headers.items()), token, mono=time.monotonic())
        with m.lock:
            m.requests.append(req)
        return req

    def _authorized(self, token):
        m = self.mock
        with m.lock:
            if token in m.tokens:
                return True
            exp = m.installation_tokens.get(token)
            return exp is not None and exp > time.time()

    def do_GET(self):
        m = self.mock
        req = self._begin("GET")
        if req.path == "/login/oauth/authorize" or urlsplit(self.path).path == \
                "/login/oauth/authorize":
            return self._authorize(req)
        if req.headers.get("X-GitHub-Api-Version", "2022-11-28") != "2022-11-28":
            req.status = 400
            return self._send(400, {"message": "Unsupported 'X-GitHub-Api-Version'",
                                    "documentation_url": DOCS, "status": "400"})
        if not self._authorized(req.token):
            req.status = 401
            return self._send(401, BAD_CREDENTIALS, {"WWW-Authenticate": 'Bearer realm="GitHub"'})
        if req.path == "/rate_limit":  # free
            req.status = 200
            core = {"limit": m.limit, "used": m.used, "remaining": m.limit - m.used,
                    "reset": m.reset}
            return self._send(200, {"resources": {"core": core}, "rate": core},
                              m.rate_headers())
        action = m._scripted(req.path)
        if action and action[0] == "pass":
            action = None
        with m.lock:
            m.used += 1
            rate = m.rate_headers()
        if action and action[0] == "secondary":
            req.status = 403
            return self._send(403, SECONDARY_LIMIT, {**rate, "retry-after": str(action[1])})
        if (action and action[0] == "primary") or m.used > m.limit:
            req.status = 403
            reset = int(time.time()) + (action[1] if action else 60)
            return self._send(403, PRIMARY_LIMIT, {**rate, "x-ratelimit-remaining": "0",
                                                   "x-ratelimit-reset": str(reset)})
        if action and action[0] == "status":
            req.status = action[1]
            return self._send(action[1], action[2], {**rate, **(action[3] if len(action) > 3
                                                                else {})})
        with m.lock:
            status, body = m.listing(req.path, req.query)
        if status != 200:
            req.status = status
            return self._send(status, body, rate)
        self._page(req, body, rate)

    def _page(self, req, items, rate):
        m = self.mock
        per_page = max(1, min(100, int(req.query.get("per_page", 30))))
        page = max(1, int(req.query.get("page", 1)))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page:page * per_page]
        data = json.dumps(chunk, separators=(",", ":")).encode()
        etag = 'W/"' + hashlib.sha256(data).hexdigest() + '"'
        inm = req.headers.get("If-None-Match")
        if inm and inm == etag:
            with m.lock:
                m.used -= 1  # an authorized 304 is free
                rate = m.rate_headers()
            req.status = 304
            return self._send(304, None, {**rate, "ETag": etag})

        def link(p):
            q = dict(req.query, page=str(p))
            return f"<{m.url}{req.path}?{urlencode(q)}>"
        rels = []
        if page < last:
            rels += [f'{link(page + 1)}; rel="next"', f'{link(last)}; rel="last"']
        if page > 1:
            rels += [f'{link(1)}; rel="first"', f'{link(page - 1)}; rel="prev"']
        headers = {**rate, "ETag": etag, "Cache-Control": "private, max-age=60, s-maxage=60",
                   "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP"}
        if rels:
            headers["Link"] = ", ".join(rels)
        req.status = 200
        self.send_response(200)
        headers["Content-Type"] = "application/json; charset=utf-8"
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorize(self, req):
        """The user approves at once: back to the app with a code."""
        m = self.mock
        q = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if not m.oauth_client or q.get("client_id") != m.oauth_client[0]:
            req.status = 404
            return self._send(404, NOT_FOUND)
        code = secrets.token_hex(10)
        with m.lock:
            m.oauth_codes[code] = q.get("redirect_uri")
        sep = "&" if "?" in q["redirect_uri"] else "?"
        req.status = 302
        self.send_response(302)
        self.send_header("Location", f"{q['redirect_uri']}{sep}{urlencode({'code': code, 'state': q.get('state', '')})}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _access_token(self, req, raw):
        """GitHub's token endpoint: errors are 200 with an "error" member."""
        m = self.mock
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        with m.lock:
            m.oauth_requests.append(form)
            redirect = m.oauth_codes.pop(form.get("code"), None)
        if not m.oauth_client or (form.get("client_id"), form.get("client_secret")) != \
                m.oauth_client:
            req.status = 200
            return self._send(200, {"error": "incorrect_client_credentials",
                                    "error_description": "The client_id and/or client_secret "
                                                         "passed are incorrect.",
                                    "error_uri": "https://docs.github.com/apps/managing-oauth-"
                                                 "apps/troubleshooting-oauth-app-access-token-"
                                                 "request-errors/#incorrect-client-credentials"})
        if redirect is None or redirect != form.get("redirect_uri"):
            req.status = 200
            return self._send(200, {"error": "bad_verification_code",
                                    "error_description": "The code passed is incorrect or "
                                                         "expired.",
                                    "error_uri": "https://docs.github.com/apps/managing-oauth-"
                                                 "apps/troubleshooting-oauth-app-access-token-"
                                                 "request-errors/#bad-verification-code"})
        token = m.add_token("gho_" + secrets.token_urlsafe(27)[:36])
        req.status = 200
        self._send(200, {"access_token": token, "scope": "repo,read:org",
                         "token_type": "bearer"})

    def do_POST(self):
        m = self.mock
        req = self._begin("POST")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if urlsplit(self.path).path == "/login/oauth/access_token":
            return self._access_token(req, raw)
        mt = re.fullmatch(r"/app/installations/([^/]+)/access_tokens", req.path)
        if not mt:
            req.status = 404
            return self._send(404, NOT_FOUND)
        ok, app, claims = m.verify_jwt(req.token)
        if not ok:
            req.status = 401
            return self._send(401, JWT_EXPIRED if claims == "expired" else JWT_UNDECODABLE)
        if m.installations.get(mt.group(1)) != app:
            req.status = 404
            return self._send(404, {"message": "Not Found", "documentation_url":
                                    "https://docs.github.com/rest/apps/apps"
                                    "#create-an-installation-access-token-for-an-app",
                                    "status": "404"})
        token = "ghs_" + secrets.token_urlsafe(27)[:36]
        expires = int(time.time()) + m.token_ttl
        with m.lock:
            m.installation_tokens[token] = expires
        req.status = 201
        self._send(201, {"token": token, "expires_at": iso(expires),
                         "permissions": {"issues": "read", "metadata": "read",
                                         "pull_requests": "read"},
                         "repository_selection": "selected"})
