"""The Jira Cloud connector (plugins/jira) against tests/integration/mock_jira.py.

Sync over basic auth (account email + API token at the site): enhanced JQL
search with nextPageToken pages, changelog transitions (issue_closed for the
done category), comments beyond the embedded page, custom fields by name,
ADF descriptions as Markdown, the cursor kept in the user's time zone and
re-read a minute early, a second run that stores only what changed, the
host's handling of 429 + Retry-After, Jira's error bodies, bad credentials
and per-connection projects / backfill. ADF is in test_jira_adf.py,
webhooks in test_jira_webhooks.py, OAuth in test_jira_auth.py.

Connections are created with scheduling disabled and synced with
`ingest-hostctl sync`, so every request at the mock belongs to a job the
test started.
"""
import base64
import json
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import wait_for
from mock_jira import MockJira, adf
from store_helpers import DEFAULT_TENANT, q, readyz

TENANT = DEFAULT_TENANT
EMAIL, API_TOKEN = "mia@example.com", "ATATT3xFfGF0-test-token-0123456789"
NO_SCHEDULE = {"schedule": {"*": {"enabled": False}}}
TERMINAL = ("succeeded", "dead", "failed")
WEBHOOK_SECRET = "jira-admin-webhook-secret-7f3e"


def conf(api, extra="", **plugin):
    opts = {"api_base_url": api.url, "webhook_secret": WEBHOOK_SECRET,
            "webhook_tenant_id": TENANT, **plugin}

    def lc(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(json.dumps(x) for x in v) + "]"
        return json.dumps(v) if isinstance(v, str) else str(v)
    body = " ".join(f"{k} = {lc(v)};" for k, v in opts.items())
    return (f'log_level = "debug";\njob_poll_ms = 100;\nbackfill_days = 30;\n{extra}\n'
            f"plugins = {{ jira = {{ {body} }}; }};\n")


def start(daemon_factory, api, extra="", **plugin):
    d = daemon_factory.start(conf_text=conf(api, extra, **plugin), plugins=["jira"])
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-3000:]}")
    listed = {p["name"]: p for p in d.ctl_json("list", check=True)}
    assert listed.get("jira", {}).get("state") == "loaded", listed.get("jira")
    return d


def add_connection(d, secrets_, auth_kind=None, config=None, tenant=TENANT):
    cmd = [str(d.hostctl), "-s", d.sock, "connection-add", "jira", "--tenant", tenant, "--json",
           "--config-json", json.dumps(config if config is not None else NO_SCHEDULE)]
    if auth_kind:
        cmd += ["--auth-kind", auth_kind]
    r = subprocess.run(cmd, input=json.dumps(secrets_), capture_output=True, text=True,
                       env=d.env, timeout=30)
    assert r.returncode == 0, f"connection-add exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)["id"]


def basic_connection(d, api, **config):
    api.add_basic(EMAIL, API_TOKEN)
    cfg = {**NO_SCHEDULE, "site_url": api.site, **config}
    return add_connection(d, {"username": EMAIL, "password": API_TOKEN}, "basic", cfg)


def sync(pg, db_url, d, cid, timeout=60, expect="succeeded"):
    ids = [j["id"] for j in d.ctl_json("sync", cid, check=True)]

    def done():
        rows = q(pg, db_url, "SELECT state, attempts, coalesce(last_error, '') FROM sync_jobs "
                             "WHERE id = ANY(%s::uuid[])", (ids,))
        return rows if len(rows) == len(ids) and all(r[0] in TERMINAL for r in rows) else None
    rows = wait_for(done, timeout, 0.1, msg=f"jobs unfinished\n{d.log_text()[-5000:]}")
    if expect:
        assert all(r[0] == expect for r in rows), f"{rows}\n{d.log_text()[-5000:]}"
    return rows


def signals(pg, db_url, kind=None):
    sql = ("SELECT kind, dedupe_key, payload, raw, provenance, occurred_at FROM signals "
           "WHERE source = 'jira'")
    return q(pg, db_url, sql + (" AND kind = %s" if kind else ""), (kind,) if kind else ())


def keys(pg, db_url):
    return {(r[0], r[1]) for r in signals(pg, db_url)}


def ktime(t):
    """The time part of a dedupe key: UTC with milliseconds."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(t * 1000) % 1000:03d}Z"


def expected_keys(api, issues=None):
    """What a complete sync of the mock must have stored (README's mapping)."""
    out = set()
    for i in (issues or api.issues.values()):
        out.add(("issue_created", f"issue_created:{i['id']}"))
        if i["updated"] != i["created"]:
            out.add(("issue_updated", f"issue_updated:{i['id']}:{ktime(i['updated'])}"))
        for h in i["histories"]:
            st = [it for it in h["items"] if it["field"] == "status"]
            if st:
                out.add(("issue_transitioned", f"issue_transitioned:{i['id']}:{h['id']}"))
                if st[0]["to"] == "10001":
                    out.add(("issue_closed", f"issue_closed:{i['id']}:{h['id']}"))
        for c in i["comments"]:
            out.add(("comment_added", f"comment_added:{c['id']}"))
            if c["updated"] != c["created"]:
                out.add(("comment_updated", f"comment_updated:{c['id']}:{ktime(c['updated'])}"))
    return out


def searches(api, since=0):
    return [r for r in api.snapshot() if r.path.endswith("/rest/api/3/search/jql")
            and r.mono >= since]


@pytest.fixture
def jira():
    mocks = []

    def make(**kw):
        m = MockJira(**kw).start()
        mocks.append(m)
        return m
    yield make
    for m in mocks:
        m.stop()


# ------------------------------------------------------------------- tests

def test_descriptor(daemon_factory, jira):
    api = jira()
    d = start(daemon_factory, api)
    status, _, body = d.http_get("/providers", auth=True)
    assert status == 200, body
    providers = json.loads(body)
    entry = next(p for p in (providers.get("providers") or providers.get("items") or providers)
                 if p["name"] == "jira")
    assert [s["name"] for s in entry["streams"]] == ["issues"]
    assert entry["streams"][0]["cursor_field"] == "updated"
    assert entry["auth"]["kind"] == "oauth2"
    assert entry["auth"]["scopes"] == ["read:jira-work", "read:jira-user", "offline_access"]
    assert entry["auth_kinds"] == ["oauth2", "basic"]
    assert entry["webhooks"] and entry["sync"] and entry["connection_check"]


def seed(api):
    """Seven issues in two projects: transitions (one to Done), edits,
    comments beyond the embedded page, custom fields."""
    a = api.add_issue("PROJ", description=adf("First line", "Second line"),
                      custom={"customfield_10016": 5, "customfield_10050": adf("Given a user"),
                              "customfield_10060": {"self": f"{api.url}/rest/api/3/"
                                                    "customFieldOption/10020", "value": "Blue",
                                                    "id": "10020"}}, labels=["backend"])
    b = api.add_issue("PROJ")
    c = api.add_issue("OPS")
    issues = [a, b, c] + [api.add_issue("PROJ") for _ in range(4)]
    api.transition(a, "3")
    api.transition(a, "10001")
    api.edit(b, "Renamed")
    for n in range(5):
        api.comment(c, f"comment {n}", edit_after=(30 if n == 1 else None))
    api.transition(issues[3], "3")
    return issues


def test_sync_pages_transitions_comments_custom_fields(daemon_factory, pg_cluster, db_url, jira):
    api = jira(tz_hours=10, embed_comments=2, embed_histories=1)
    a, b, c, *_ = seed(api)
    d = start(daemon_factory, api, page_size=3)
    cid = basic_connection(d, api)
    sync(pg_cluster, db_url, d, cid)
    assert keys(pg_cluster, db_url) == expected_keys(api)

    # Three search pages by nextPageToken, the first with the JQL.
    s = searches(api)
    assert [r.status for r in s] == [200, 200, 200]
    assert s[0].query["fields"] == "*all" and s[0].query["expand"] == "changelog"
    assert s[0].query["maxResults"] == "3" and "nextPageToken" not in s[0].query
    assert all("nextPageToken" in r.query for r in s[1:])
    since = (datetime.now(timezone.utc) - timedelta(days=30, hours=14))
    jql = s[0].query["jql"]
    assert jql.startswith('updated >= "') and jql.endswith('" ORDER BY updated ASC'), jql
    lit = datetime.strptime(jql[12:28], "%Y/%m/%d %H:%M").replace(tzinfo=timezone.utc)
    assert abs((lit - since).total_seconds()) < 120, jql
    # Basic auth with the account email and API token, at the site.
    want = "Basic " + base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()
    assert all(r.header("Authorization") == want for r in api.snapshot())
    assert not [r for r in api.snapshot() if r.path.startswith("/ex/")]
    # Comments and changelog beyond the embedded pages were fetched.
    assert [r.query["startAt"] for r in api.requests_to(f"/rest/api/3/issue/{c['id']}/comment")] \
        == ["0"]
    assert [r.query["startAt"] for r in api.requests_to(
        f"/rest/api/3/issue/{a['id']}/changelog")] == ["0"]
    assert api.requests_to("/rest/api/3/field") and api.requests_to("/rest/api/3/status")

    rows = {r[1]: r for r in signals(pg_cluster, db_url)}
    created = rows[f"issue_created:{a['id']}"]
    p = created[2]
    assert p["key"] == "PROJ-1" and p["project"] == "PROJ" and p["status"] == "Done"
    assert p["status_category"] == "done" and p["description"] == "First line\n\nSecond line"
    assert p["custom_fields"] == {"Story point estimate": 5, "Acceptance criteria":
                                  "Given a user", "Team": {"self": f"{api.url}/rest/api/3/"
                                                           "customFieldOption/10020",
                                                           "value": "Blue", "id": "10020"}}
    assert p["labels"] == ["backend"] and p["url"] == f"{api.site}/browse/PROJ-1"
    assert p["assignee"] == "Mia Krystof" and p["issue_type"] == "Task"
    assert created[3]["key"] == "PROJ-1" and created[3]["fields"]["description"]["type"] == "doc"
    assert created[4]["via"] == "sync" and created[4]["stream"] == "issues"
    assert created[5].timestamp() == pytest.approx(a["created"], abs=0.002)

    h_done = a["histories"][1]
    closed = rows[f"issue_closed:{a['id']}:{h_done['id']}"][2]
    assert (closed["from_status"], closed["to_status"]) == ("In Progress", "Done")
    assert closed["to_status_category"] == "done" and closed["author"] == "Mia Krystof"
    moved = rows[f"issue_transitioned:{a['id']}:{a['histories'][0]['id']}"]
    assert (moved[2]["from_status"], moved[2]["to_status"]) == ("To Do", "In Progress")
    assert moved[2]["to_status_category"] == "indeterminate"
    assert moved[5].timestamp() == pytest.approx(a["histories"][0]["created"], abs=0.002)

    cm = c["comments"][4]
    com = rows[f"comment_added:{cm['id']}"]
    assert com[2]["body"] == "comment 4" and com[2]["issue_key"] == "OPS-1"
    assert com[2]["url"] == f"{api.site}/browse/OPS-1?focusedCommentId={cm['id']}"
    assert com[3]["id"] == cm["id"]

    # The cursor: the newest update, as Jira wrote it (user's zone, +10:00).
    cur = q(pg_cluster, db_url, "SELECT value FROM cursors WHERE stream = 'issues'")[0][0]
    newest = max(i["updated"] for i in api.issues.values())
    assert cur == api.fmt(newest)[:-2] + ":" + api.fmt(newest)[-2:]
    assert cur.endswith("+10:00")
    assert API_TOKEN not in d.log_text()


def test_second_run_reads_from_the_cursor_minute(daemon_factory, pg_cluster, db_url, jira):
    """The next run asks from the cursor's minute, a minute early, in the
    user's zone (here UTC-5); what it reads twice is stored once; what
    changed since is stored."""
    api = jira(tz_hours=-5)
    issues = seed(api)
    d = start(daemon_factory, api)
    cid = basic_connection(d, api)
    sync(pg_cluster, db_url, d, cid)
    first = keys(pg_cluster, db_url)
    cur = q(pg_cluster, db_url, "SELECT value FROM cursors WHERE stream = 'issues'")[0][0]
    assert cur.endswith("-05:00")

    mark = time.monotonic()
    hid = api.transition(issues[1], "10001")
    late = api.comment(issues[4], "late comment")
    sync(pg_cluster, db_url, d, cid)
    s = searches(api, mark)
    assert len(s) == 1
    at = datetime.fromisoformat(cur) - timedelta(minutes=1)
    assert s[0].query["jql"] == \
        f'updated >= "{at.strftime("%Y/%m/%d %H:%M")}" ORDER BY updated ASC'
    now = keys(pg_cluster, db_url)
    i1, i4 = issues[1], issues[4]
    assert now - first == {
        ("issue_transitioned", f"issue_transitioned:{i1['id']}:{hid}"),
        ("issue_closed", f"issue_closed:{i1['id']}:{hid}"),
        ("issue_updated", f"issue_updated:{i1['id']}:{ktime(i1['updated'])}"),
        ("comment_added", f"comment_added:{late['id']}"),
        ("issue_updated", f"issue_updated:{i4['id']}:{ktime(i4['updated'])}")}
    assert now == expected_keys(api) | first
    # A third run with nothing new: one search, nothing stored.
    n = len(signals(pg_cluster, db_url))
    sync(pg_cluster, db_url, d, cid)
    assert len(signals(pg_cluster, db_url)) == n


def test_rate_limit_retry_after_is_honoured(daemon_factory, pg_cluster, db_url, jira):
    api = jira()
    seed(api)
    d = start(daemon_factory, api)
    cid = basic_connection(d, api)
    api.rate_limited("/rest/api/3/search/jql", retry_after=2, reset_header=False)
    api.fail_next("/rest/api/3/field", ("status", 503, {}))
    sync(pg_cluster, db_url, d, cid)
    s = searches(api)
    assert [r.status for r in s] == [429, 200]
    assert s[1].mono - s[0].mono >= 1.9, "Retry-After: 2 was not waited for"
    assert [r.status for r in api.requests_to("/rest/api/3/field")] == [503, 200]
    assert keys(pg_cluster, db_url) == expected_keys(api)


def test_rate_limit_with_jiras_iso_reset_header(daemon_factory, pg_cluster, db_url, jira):
    api = jira()
    seed(api)
    d = start(daemon_factory, api)
    cid = basic_connection(d, api)
    api.rate_limited("/rest/api/3/search/jql", retry_after=1)
    sync(pg_cluster, db_url, d, cid, timeout=20)
    assert [r.status for r in searches(api)] == [429, 200]


def test_jira_errors_fail_the_job_with_their_message(daemon_factory, pg_cluster, db_url, jira):
    api = jira()
    seed(api)
    d = start(daemon_factory, api, extra="job_max_retries = 0;")
    cid = basic_connection(d, api, jql="labels = ???")
    rows = sync(pg_cluster, db_url, d, cid, expect=None)
    assert rows[0][0] in ("dead", "failed"), rows
    d.wait_for_log(lambda e: e.get("plugin") == "jira" and "Error in the JQL Query" in
                   e.get("msg", ""), 10)
    assert signals(pg_cluster, db_url) == []
    s = searches(api)
    assert s[0].query["jql"].startswith("(labels = ???) AND updated >= ")


def test_bad_credentials_create_no_connection(daemon_factory, jira):
    api = jira()
    api.add_basic(EMAIL, API_TOKEN)
    d = start(daemon_factory, api)
    headers = {"X-Tenant-Id": TENANT}
    good = {"provider": "jira", "auth_kind": "basic", "auth": {"type": "basic", "username": EMAIL,
                                         "password": API_TOKEN},
            "config": {"site_url": api.site}}
    status, _, data = d.http_post("/connections", body=good, headers=headers, auth=True)
    assert status == 201, data
    assert [(r.path, r.status) for r in api.snapshot()] == [("/rest/api/3/myself", 200)]
    bad = {**good, "auth": {"type": "basic", "username": EMAIL, "password": "wrong"}}
    status, _, data = d.http_post("/connections", body=bad, headers=headers, auth=True)
    assert 400 <= status < 500, data
    assert json.loads(data)["code"] == "credentials_rejected", data
    d.wait_for_log(lambda e: "You are not authenticated" in e.get("msg", ""), 10)
    nosite = {**good, "config": {}}
    status, _, data = d.http_post("/connections", body=nosite, headers=headers, auth=True)
    assert 400 <= status < 500, data
    assert len(api.snapshot()) == 2, "no request without a site"
    assert "wrong" not in d.log_text() and API_TOKEN not in d.log_text()


def test_connection_projects_and_backfill(daemon_factory, pg_cluster, db_url, jira):
    api = jira(tz_hours=0)
    seed(api)
    d = start(daemon_factory, api, projects=["PROJ", "OPS"])
    cid = basic_connection(d, api, projects=["OPS"], backfill_days=2)
    sync(pg_cluster, db_url, d, cid)
    jql = searches(api)[0].query["jql"]
    assert jql.startswith('project in ("OPS") AND updated >= "'), jql
    lit = datetime.strptime(jql.split('"')[3], "%Y/%m/%d %H:%M").replace(tzinfo=timezone.utc)
    want = datetime.now(timezone.utc) - timedelta(days=2, hours=14)
    assert abs((lit - want).total_seconds()) < 120
    ops = [i for i in api.issues.values() if i["project"] == "OPS"]
    assert keys(pg_cluster, db_url) == expected_keys(api, ops)
