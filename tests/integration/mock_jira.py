"""A mock of Jira Cloud (REST API v3) and Atlassian's OAuth 2.0 (3LO) for the
jira connector's tests, built on the SDK kit's MockAPI.

Shaped after developer.atlassian.com (Jira Cloud platform REST API v3, OAuth
2.0 3LO apps, rate limiting):

  GET  /rest/api/3/search/jql        enhanced search: jql, fields, expand,
                                     maxResults, nextPageToken -> {"issues",
                                     "nextPageToken", "isLast"}; the last page
                                     has no nextPageToken key (JRACLOUD-92184)
  GET  /rest/api/3/issue/{id}/comment    {"startAt","maxResults","total","comments"}
  GET  /rest/api/3/issue/{id}/changelog  {"self","maxResults","startAt","total",
                                          "isLast","values"}
  GET  /rest/api/3/field             [{"id","key","name","custom","schema",...}]
  GET  /rest/api/3/status            [{"id","name","statusCategory":{...},...}]
  GET  /rest/api/3/myself            the calling user
  GET  /oauth/token/accessible-resources   [{"id","url","name","scopes","avatarUrl"}]
  GET  /authorize                    consent, approved at once: 302 to
                                     redirect_uri?code=...&state=...
  POST /oauth/token                  authorization_code and refresh_token grants
                                     (form or JSON); refresh tokens rotate: a
                                     used one is refused with invalid_grant

  - every Jira path is served at the site (basic auth: account email + API
    token) and under /ex/jira/{cloud_id} (OAuth bearer tokens), as the
    gateway serves them; the wrong credentials for either get 401;
  - JQL: `[project in ("A", ...) AND ][(...) AND ]updated >= "yyyy/MM/dd
    HH:mm" ORDER BY updated ASC` (the date literal read in the user's time
    zone, as Jira does); anything else is a 400 with Jira's error body;
  - times are written in the user's time zone ("2024-05-01T10:00:00.000+1000");
  - error bodies {"errorMessages": [...], "errors": {}}; 429 with
    Retry-After, X-RateLimit-Limit/-Remaining/-Reset (ISO 8601) and
    RateLimit-Reason can be scripted with rate_limited().
"""
import base64
import copy
import json
import re
import secrets
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode

from ingest_testing import MockAPI, Reply

STATUSES = {  # id -> (name, category id, key, colour, category name)
    "10000": ("To Do", 2, "new", "blue-gray", "To Do"),
    "3": ("In Progress", 4, "indeterminate", "yellow", "In Progress"),
    "10001": ("Done", 3, "done", "green", "Done"),
}
CUSTOM_FIELDS = {  # id -> (name, schema type, custom type)
    "customfield_10016": ("Story point estimate", "number",
                          "com.pyxis.greenhopper.jira:jsw-story-points"),
    "customfield_10050": ("Acceptance criteria", "string",
                          "com.atlassian.jira.plugin.system.customfieldtypes:textarea"),
    "customfield_10060": ("Team", "option",
                          "com.atlassian.jira.plugin.system.customfieldtypes:select"),
}
SYSTEM_FIELDS = [("summary", "Summary", "string"), ("status", "Status", "status"),
                 ("description", "Description", "string"), ("updated", "Updated", "datetime")]
NOT_AUTHENTICATED = {"errorMessages": ["You are not authenticated. Authentication required to "
                                       "perform this operation."], "errors": {}}
GATEWAY_UNAUTHORIZED = {"code": 401, "message": "Unauthorized"}
USER = {"accountId": "5b10a2844c20165700ede21g", "displayName": "Mia Krystof",
        "accountType": "atlassian", "active": True, "timeZone": "Australia/Sydney"}


def adf(*paragraphs):
    """A small ADF document with one paragraph per text."""
    return {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": t}]} for t in paragraphs]}


class MockJira(MockAPI):
    def __init__(self, tz_hours=10, cloud_id="35273b54-3f06-40d2-880f-dd28cf8daafa",
                 page_cap=100, embed_comments=20, embed_histories=100):
        super().__init__()
        self.tz = timezone(timedelta(hours=tz_hours))
        self.cloud_id = cloud_id
        self.page_cap = page_cap
        self.embed_comments = embed_comments
        self.embed_histories = embed_histories
        self.issues = {}  # id -> dict(fields..., comments, histories)
        self.next_id = 10000
        self.clock = time.time() - 86400  # issue times advance from a day ago
        self.basic = {}  # email -> api token
        self.access_tokens = {}  # token -> expires (epoch s)
        self.refresh_tokens = {}  # token -> "live" | "used"
        self.codes = {}
        self.oauth_client = None
        self.oauth_posts = []
        self.resources = []
        self.tokens_issued = []
        self.page_tokens = {}
        self._mlock = threading.Lock()
        self._install()

    # ----------------------------------------------------------- data set-up
    @property
    def site(self):
        return self.url

    def gateway(self):
        return f"/ex/jira/{self.cloud_id}"

    def tick(self, seconds=61):
        self.clock += seconds
        return self.clock

    def fmt(self, t):
        """A Jira time in the user's zone: 2024-05-01T10:00:00.000+1000."""
        d = datetime.fromtimestamp(t, self.tz)
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t * 1000) % 1000:03d}" + \
            d.strftime("%z")

    def add_basic(self, email, token):
        self.basic[email] = token

    def add_issue(self, project="PROJ", summary=None, description=None, status="10000",
                  custom=None, labels=()):
        with self._mlock:
            self.next_id += 1
            iid = str(self.next_id)
            n = sum(1 for i in self.issues.values() if i["project"] == project) + 1
            t = self.tick()
            self.issues[iid] = {"id": iid, "key": f"{project}-{n}", "project": project,
                                "summary": summary or f"Issue {n} of {project}",
                                "description": description if description is not None
                                else adf(f"Description of {project}-{n}"),
                                "status": status, "created": t, "updated": t,
                                "custom": dict(custom or {}), "labels": list(labels),
                                "comments": [], "histories": []}
            return self.issues[iid]

    def transition(self, issue, to):
        with self._mlock:
            t = self.tick()
            self.next_id += 1
            hid = str(self.next_id)
            frm = issue["status"]
            issue["histories"].append({
                "id": hid, "author": USER, "created": t,
                "items": [{"field": "status", "fieldtype": "jira", "fieldId": "status",
                           "from": frm, "fromString": STATUSES[frm][0], "to": to,
                           "toString": STATUSES[to][0]}]})
            issue["status"] = to
            issue["updated"] = t
            return hid

    def edit(self, issue, summary):
        with self._mlock:
            t = self.tick()
            self.next_id += 1
            issue["histories"].append({
                "id": str(self.next_id), "author": USER, "created": t,
                "items": [{"field": "summary", "fieldtype": "jira", "fieldId": "summary",
                           "from": None, "fromString": issue["summary"], "to": None,
                           "toString": summary}]})
            issue["summary"] = summary
            issue["updated"] = t

    def comment(self, issue, text, edit_after=None):
        with self._mlock:
            t = self.tick()
            self.next_id += 1
            c = {"id": str(self.next_id), "body": adf(text) if isinstance(text, str) else text,
                 "created": t, "updated": t + (edit_after or 0)}
            issue["comments"].append(c)
            issue["updated"] = max(issue["updated"], c["updated"])
            return c

    def add_resource(self, url=None, name="your-domain", scopes=("read:jira-work",
                                                                 "read:jira-user"),
                     cloud_id=None):
        self.resources.append({"id": cloud_id or self.cloud_id, "url": url or self.site,
                               "name": name, "scopes": list(scopes),
                               "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-"
                                            "paas.net/avatars/240/rocket.png"})

    def oauth_app(self, client_id, client_secret):
        self.oauth_client = (client_id, client_secret)

    def expire_access_tokens(self):
        for t in list(self.access_tokens):
            self.access_tokens[t] = 0

    def rate_limited(self, path, retry_after=1, times=1, reset_header=True):
        """The next `times` requests to `path` get Jira's 429: Retry-After
        (seconds), RateLimit-Reason and, with reset_header, X-RateLimit-Reset
        as Jira writes it (ISO 8601, yyyy-MM-ddTHH:mmZ) with -Limit/-Remaining."""
        headers = {"Retry-After": str(retry_after), "RateLimit-Reason": "jira-burst-based"}
        if reset_header:
            headers.update({"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": (datetime.now(timezone.utc) + timedelta(
                                seconds=retry_after)).strftime("%Y-%m-%dT%H:%MZ")})
        reply = Reply(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, headers)
        self.fail_next(path, *([reply] * times))

    # ------------------------------------------------------------ JSON shapes
    def _status(self, base, sid):
        name, cid, key, colour, cname = STATUSES[sid]
        return {"self": f"{base}/rest/api/3/status/{sid}", "description": "", "iconUrl":
                f"{base}/images/icons/statuses/generic.png", "name": name, "id": sid,
                "statusCategory": {"self": f"{base}/rest/api/3/statuscategory/{cid}", "id": cid,
                                   "key": key, "colorName": colour, "name": cname}}

    def _user(self, base):
        u = dict(USER)
        u["self"] = f"{base}/rest/api/3/user?accountId={u['accountId']}"
        return u

    def _comment(self, base, issue, c):
        return {"self": f"{base}/rest/api/3/issue/{issue['id']}/comment/{c['id']}",
                "id": c["id"], "author": self._user(base), "body": c["body"],
                "updateAuthor": self._user(base), "created": self.fmt(c["created"]),
                "updated": self.fmt(c["updated"]), "jsdPublic": True}

    def _history(self, base, h):
        return {"id": h["id"], "author": self._user(base), "created": self.fmt(h["created"]),
                "items": copy.deepcopy(h["items"])}

    def issue_json(self, base, i, with_fields=True, changelog=False):
        out = {"expand": "renderedFields,names,schema,operations,editmeta,changelog,"
                         "versionedRepresentations", "id": i["id"],
               "self": f"{base}/rest/api/3/issue/{i['id']}", "key": i["key"]}
        if changelog:
            hs = i["histories"]
            out["changelog"] = {"startAt": 0, "maxResults": self.embed_histories,
                                "total": len(hs), "histories": [
                                    self._history(base, h) for h in hs[:self.embed_histories]]}
        if not with_fields:
            return out
        done = i["status"] == "10001"
        cs = i["comments"]
        fields = {
            "summary": i["summary"], "status": self._status(base, i["status"]),
            "issuetype": {"self": f"{base}/rest/api/3/issuetype/10001", "id": "10001",
                          "description": "A small, distinct piece of work.", "name": "Task",
                          "subtask": False, "hierarchyLevel": 0},
            "project": {"self": f"{base}/rest/api/3/project/{i['project']}", "id": "10000",
                        "key": i["project"], "name": f"Project {i['project']}",
                        "projectTypeKey": "software", "simplified": False},
            "priority": {"self": f"{base}/rest/api/3/priority/3", "iconUrl": "", "name":
                         "Medium", "id": "3"},
            "resolution": {"self": f"{base}/rest/api/3/resolution/10000", "id": "10000",
                           "description": "Work has been completed on this issue.",
                           "name": "Done"} if done else None,
            "resolutiondate": self.fmt(i["updated"]) if done else None,
            "assignee": self._user(base), "reporter": self._user(base),
            "labels": i["labels"], "description": i["description"],
            "created": self.fmt(i["created"]), "updated": self.fmt(i["updated"]),
            "comment": {"comments": [self._comment(base, i, c) for c in
                                     cs[:self.embed_comments]],
                        "self": f"{base}/rest/api/3/issue/{i['id']}/comment",
                        "maxResults": self.embed_comments, "total": len(cs), "startAt": 0},
        }
        for fid in CUSTOM_FIELDS:
            fields[fid] = i["custom"].get(fid)
        out["fields"] = fields
        return out

    # --------------------------------------------------------------- serving
    def _base(self, req):
        return f"{self.url}{self.gateway()}" if req.path.startswith("/ex/jira/") else self.url

    def _auth_error(self, req):
        """None when the request carries the credentials its path needs."""
        auth = req.header("Authorization") or ""
        if req.path.startswith("/ex/jira/"):
            if not req.path.startswith(self.gateway() + "/"):
                return Reply(404, {"errorMessages": ["Site not found"], "errors": {}})
            tok = auth[7:] if auth.startswith("Bearer ") else None
            if tok is None or self.access_tokens.get(tok, 0) < time.time():
                return Reply(401, GATEWAY_UNAUTHORIZED)
            return None
        if auth.startswith("Basic "):
            try:
                email, token = base64.b64decode(auth[6:]).decode().split(":", 1)
            except ValueError:
                return Reply(401, NOT_AUTHENTICATED)
            if self.basic.get(email) == token:
                return None
        return Reply(401, NOT_AUTHENTICATED)

    def _jira(self, handler):
        def wrapped(req):
            bad = self._auth_error(req)
            return bad if bad else handler(req, self._base(req))
        return wrapped

    def _install(self):
        for prefix in ("", "/ex/jira/{cloud}"):
            self.route("GET", prefix + "/rest/api/3/search/jql", self._jira(self._search))
            self.route("GET", prefix + "/rest/api/3/issue/{issue}/comment",
                       self._jira(self._comments))
            self.route("GET", prefix + "/rest/api/3/issue/{issue}/changelog",
                       self._jira(self._changelog))
            self.route("GET", prefix + "/rest/api/3/field", self._jira(self._fields))
            self.route("GET", prefix + "/rest/api/3/status", self._jira(self._statuses))
            self.route("GET", prefix + "/rest/api/3/myself",
                       self._jira(lambda req, base: self._user(base)))
        self.route("GET", "/oauth/token/accessible-resources", self._resources)
        self.route("GET", "/authorize", self._authorize)
        self.route("POST", "/oauth/token", self._token)

    JQL = re.compile(r'^(?:project in \((?P<projects>"[A-Za-z0-9_]+"(?:, "[A-Za-z0-9_]+")*)\) '
                     r'AND )?(?:\((?P<extra>[a-z]+ !?= "?[A-Za-z0-9 _-]+"?)\) AND )?'
                     r'(?:updated >= "(?P<since>\d{4}/\d{2}/\d{2} \d{2}:\d{2})" )?'
                     r'ORDER BY updated ASC$')

    def _jql_error(self, jql):
        return Reply(400, {"errorMessages": [f"Error in the JQL Query: the query {jql!r} is not "
                                             "supported by this mock."], "errors": {}})

    def _search(self, req, base):
        q = req.query
        token = q.get("nextPageToken")
        if token:
            with self._mlock:
                state = self.page_tokens.get(token)
            if state is None:
                return Reply(400, {"errorMessages": ["Invalid nextPageToken"], "errors": {}})
            ids, pos, size, fields, changelog = state
        else:
            jql = q.get("jql", "")
            m = self.JQL.match(jql)
            if not m:
                return self._jql_error(jql)
            projects = re.findall(r'"([^"]+)"', m.group("projects") or "")
            since = None
            if m.group("since"):
                local = datetime.strptime(m.group("since"), "%Y/%m/%d %H:%M")
                since = local.replace(tzinfo=self.tz).timestamp()
            with self._mlock:
                found = [i for i in self.issues.values()
                         if (not projects or i["project"] in projects) and
                         (since is None or i["updated"] >= since)]
            found.sort(key=lambda i: (i["updated"], int(i["id"])))
            ids = [i["id"] for i in found]
            pos = 0
            size = max(1, min(int(q.get("maxResults", 50)), self.page_cap))
            fields = q.get("fields")
            changelog = "changelog" in (q.get("expand") or "").split(",")
        chunk = ids[pos:pos + size]
        with self._mlock:
            issues = [self.issue_json(base, self.issues[i], bool(fields), changelog)
                      for i in chunk if i in self.issues]
        body = {"issues": issues}
        if pos + size < len(ids):
            nxt = secrets.token_urlsafe(24)
            with self._mlock:
                self.page_tokens[nxt] = (ids, pos + size, size, fields, changelog)
            body["nextPageToken"] = nxt
            body["isLast"] = False
        else:
            body["isLast"] = True
        return body

    def _issue(self, req):
        with self._mlock:
            return self.issues.get(req.params["issue"]) or next(
                (i for i in self.issues.values() if i["key"] == req.params["issue"]), None)

    def _comments(self, req, base):
        issue = self._issue(req)
        if issue is None:
            return Reply(404, {"errorMessages": ["Issue does not exist or you do not have "
                                                 "permission to see it."], "errors": {}})
        start, size = int(req.query.get("startAt", 0)), int(req.query.get("maxResults", 100))
        cs = issue["comments"]
        return {"startAt": start, "maxResults": size, "total": len(cs),
                "comments": [self._comment(base, issue, c) for c in cs[start:start + size]]}

    def _changelog(self, req, base):
        issue = self._issue(req)
        if issue is None:
            return Reply(404, {"errorMessages": ["Issue does not exist or you do not have "
                                                 "permission to see it."], "errors": {}})
        start, size = int(req.query.get("startAt", 0)), int(req.query.get("maxResults", 100))
        hs = issue["histories"]
        return {"self": f"{base}/rest/api/3/issue/{issue['id']}/changelog?startAt={start}",
                "maxResults": size, "startAt": start, "total": len(hs),
                "isLast": start + size >= len(hs),
                "values": [self._history(base, h) for h in hs[start:start + size]]}

    def _fields(self, req, base):
        out = [{"id": fid, "key": fid, "name": name, "custom": False, "orderable": True,
                "navigable": True, "searchable": True, "clauseNames": [fid],
                "schema": {"type": typ, "system": fid}} for fid, name, typ in SYSTEM_FIELDS]
        for fid, (name, typ, custom) in CUSTOM_FIELDS.items():
            out.append({"id": fid, "key": fid, "name": name, "untranslatedName": name,
                        "custom": True, "orderable": True, "navigable": True,
                        "searchable": True, "clauseNames": [f"cf[{fid[12:]}]", name],
                        "schema": {"type": typ, "custom": custom,
                                   "customId": int(fid[12:])}})
        return out

    def _statuses(self, req, base):
        return [dict(self._status(base, sid), untranslatedName=STATUSES[sid][0])
                for sid in STATUSES]

    # ----------------------------------------------------------------- OAuth
    def _resources(self, req):
        auth = req.header("Authorization") or ""
        tok = auth[7:] if auth.startswith("Bearer ") else None
        if tok is None or self.access_tokens.get(tok, 0) < time.time():
            return Reply(401, GATEWAY_UNAUTHORIZED)
        return self.resources

    def _authorize(self, req):
        q = req.query
        if not self.oauth_client or q.get("client_id") != self.oauth_client[0]:
            return Reply(400, "unknown client")
        code = secrets.token_urlsafe(16)
        self.codes[code] = q.get("redirect_uri")
        sep = "&" if "?" in q["redirect_uri"] else "?"
        loc = f"{q['redirect_uri']}{sep}{urlencode({'code': code, 'state': q.get('state', '')})}"
        return Reply(302, b"", {"Location": loc})

    def _issue_tokens(self, scope):
        access, refresh = f"eyJ{secrets.token_urlsafe(40)}", secrets.token_urlsafe(40)
        self.access_tokens[access] = time.time() + 3600
        self.refresh_tokens[refresh] = "live"
        self.tokens_issued.append(access)
        return {"access_token": access, "expires_in": 3600, "token_type": "Bearer",
                "refresh_token": refresh, "scope": scope}

    def _token(self, req):
        ctype = req.header("Content-Type") or ""
        if ctype.startswith("application/json"):
            form = req.json()
        else:
            form = {k: v[-1] for k, v in parse_qs(req.body.decode()).items()}
        self.oauth_posts.append(form)
        if not self.oauth_client or (form.get("client_id"), form.get("client_secret")) != \
                self.oauth_client:
            return Reply(401, {"error": "access_denied", "error_description": "Unauthorized"})
        scope = "read:jira-work read:jira-user offline_access"
        grant = form.get("grant_type")
        if grant == "authorization_code" and self.codes.pop(form.get("code"), None):
            return self._issue_tokens(scope)
        if grant == "refresh_token" and self.refresh_tokens.get(form.get("refresh_token")) == \
                "live":
            self.refresh_tokens[form["refresh_token"]] = "used"  # rotation
            return self._issue_tokens(scope)
        return Reply(403, {"error": "invalid_grant",
                           "error_description": "Unknown or invalid refresh token."})


def sign(body, secret):
    import hashlib
    import hmac
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dumps(obj):
    return json.dumps(obj).encode()
