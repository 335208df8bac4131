"""The GitHub connector (plugins/github) against tests/integration/mock_github.py.

Sync: every stream against a repository shaped like the REST API, the
5,000-pull-request repository (complete first run, a second run that costs
one 304, a third that fetches only what changed, all counted at the mock),
the rate limits (secondary 403 + Retry-After, primary exhaustion), bad
credentials, repositories that cannot be read, organizations, GitHub
Enterprise Server's /api/v3 prefix. Webhooks are in test_github_webhooks.py,
GitHub App and OAuth app credentials in test_github_auth.py; the helpers
here are shared with them.

Connections are created with scheduling disabled ({"schedule": {"*":
{"enabled": false}}}) and synced with `ingest-hostctl sync`, so every
request at the mock belongs to a job the test started.
"""
import json
import secrets
import subprocess
import time

import pytest

from conftest import wait_for
from mock_github import MockGitHub, iso
from store_helpers import DEFAULT_TENANT, q, readyz

TENANT = DEFAULT_TENANT
WEBHOOK_SECRET = "It's a Secret to Everybody"  # GitHub's documented test vector secret
STREAMS = ("issues", "pull_requests", "issue_comments", "pr_reviews")
NO_SCHEDULE = {"schedule": {"*": {"enabled": False}}}
TERMINAL = ("succeeded", "dead", "failed")


# ----------------------------------------------------------------- helpers

def lc(value):
    """A libconfig value: strings quoted, lists of strings, booleans, numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def gh_conf(base_url, extra="", **plugin):
    opts = {"api_base_url": base_url, "webhook_secret": WEBHOOK_SECRET,
            "webhook_tenant_id": TENANT, **plugin}
    body = " ".join(f"{k} = {lc(v)};" for k, v in opts.items())
    return (f'log_level = "debug";\njob_poll_ms = 100;\nbackfill_days = 365;\n{extra}\n'
            f"plugins = {{ github = {{ {body} }}; }};\n")


def start(daemon_factory, mock, env=None, extra="", **plugin):
    d = daemon_factory.start(conf_text=gh_conf(mock.url, extra, **plugin), plugins=["github"],
                             env=env)
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-3000:]}")
    listed = {p["name"]: p for p in d.ctl_json("list", check=True)}
    assert listed.get("github", {}).get("state") == "loaded", listed.get("github")
    return d


def add_connection(d, secrets_=None, auth_kind=None, config=NO_SCHEDULE, tenant=TENANT):
    """A github connection (`ingest-hostctl connection-add`); returns its id."""
    cmd = [str(d.hostctl), "-s", d.sock, "connection-add", "github", "--tenant", tenant,
           "--json", "--config-json", json.dumps(config)]
    if auth_kind:
        cmd += ["--auth-kind", auth_kind]
    r = subprocess.run(cmd, input=json.dumps(secrets_ or {}), capture_output=True, text=True,
                       env=d.env, timeout=30)
    assert r.returncode == 0, f"connection-add exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)["id"]


def pat_connection(d, mock):
    token = mock.add_token(f"ghp_{secrets.token_urlsafe(27)[:36]}")
    return add_connection(d, {"token": token}), token


def sync(pg, db_url, d, cid, *streams, timeout=60, expect="succeeded"):
    """Queue one job per stream (all streams when none is named), wait for
    them; returns {stream: (state, attempts, last_error)}."""
    ids = {}
    for s in streams or (None,):
        args = ["sync", cid] + (["--stream", s] if s else [])
        for job in d.ctl_json(*args, check=True):
            ids[job["id"]] = job["stream"]

    def done():
        rows = q(pg, db_url, "SELECT id::text, state, attempts, coalesce(last_error, '') "
                             "FROM sync_jobs WHERE id = ANY(%s::uuid[])", (list(ids),))
        if len(rows) == len(ids) and all(r[1] in TERMINAL for r in rows):
            return {ids[r[0]]: tuple(r[1:]) for r in rows}
        return None
    out = wait_for(done, timeout, 0.1, msg=f"jobs {ids} unfinished\n{d.log_text()[-5000:]}")
    if expect:
        bad = {s: v for s, v in out.items() if v[0] != expect}
        assert not bad, f"{bad}\n{d.log_text()[-5000:]}"
    return out


def signals(pg, db_url, kind=None):
    sql = ("SELECT kind, dedupe_key, payload, raw, provenance, occurred_at FROM signals "
           "WHERE source = 'github'")
    params = ()
    if kind:
        sql += " AND kind = %s"
        params = (kind,)
    return q(pg, db_url, sql, params)


def keys(pg, db_url):
    return {(r[0], r[1]) for r in signals(pg, db_url)}


def expected_sync_keys(repo, streams=STREAMS):
    """What a complete sync of a mock repository must have stored."""
    out = set()
    for r in repo.records:
        if r.kind == "pr" and "pull_requests" in streams:
            out.add(("pr_opened", f"pr_opened:{r.id}"))
            if r.merged:
                out.add(("pr_merged", f"pr_merged:{r.id}"))
            elif r.closed:
                out.add(("pr_closed", f"pr_closed:{r.id}:{iso(r.closed)}"))
        if r.kind == "issue" and "issues" in streams:
            out.add(("issue_opened", f"issue_opened:{r.issue_id}"))
            if r.closed:
                out.add(("issue_closed", f"issue_closed:{r.issue_id}:{iso(r.closed)}"))
    if "issue_comments" in streams:
        out |= {("comment_added", f"comment_added:{c.id}") for c in repo.comments}
    if "pr_reviews" in streams:
        out |= {("pr_review_submitted", f"pr_review_submitted:{rv.id}") for rv in repo.reviews
                if rv.state != "PENDING"}
    return out


def requests_of(mock, since=0, method="GET"):
    return [r for r in mock.snapshot(method) if r.mono >= since]


@pytest.fixture
def github():
    mocks = []

    def make(**kw):
        m = MockGitHub(**kw).start()
        mocks.append(m)
        return m
    yield make
    for m in mocks:
        m.stop()


# ------------------------------------------------------------------- tests

def test_descriptor_streams_auth_kinds_and_webhooks(daemon_factory, github):
    mock = github()
    d = start(daemon_factory, mock, repositories=["octo/hello"])
    status, _, body = d.http_get("/providers", auth=True)
    assert status == 200, body
    providers = json.loads(body)
    entry = next(p for p in (providers.get("providers") or providers.get("items") or providers)
                 if p["name"] == "github")
    assert [s["name"] for s in entry["streams"]] == list(STREAMS)
    assert all(s["incremental"] and s["cursor_field"] == "updated_at" for s in entry["streams"])
    assert entry["auth"]["kind"] == "token" and entry["auth"]["scopes"] == ["repo", "read:org"]
    assert entry["auth_kinds"] == ["token", "oauth2", "app"]
    assert entry["webhooks"] and entry["sync"] and entry["connection_check"]


def test_all_streams_first_and_second_run(daemon_factory, pg_cluster, db_url, github):
    mock = github()
    repo = mock.add_repo("Octo/Hello", prs=23, issues=17, comments=31, reviews=9)
    d = start(daemon_factory, mock, repositories=["octo/hello"])
    cid, token = pat_connection(d, mock)
    out = sync(pg_cluster, db_url, d, cid)
    assert set(out) == set(STREAMS)
    want = expected_sync_keys(repo)
    assert keys(pg_cluster, db_url) == want

    # Every request: authorized by the host with the PAT, versioned, JSON.
    reqs = mock.snapshot("GET")
    assert reqs and all(r.token == token for r in reqs)
    assert all(r.headers.get("X-GitHub-Api-Version") == "2022-11-28" for r in reqs)
    assert all(r.headers.get("Accept") == "application/vnd.github+json" for r in reqs)
    assert all(r.query.get("per_page") == "100" for r in reqs)
    assert token not in d.log_text()
    # one listing per stream, plus one reviews call per pull request
    prs = sum(1 for r in repo.records if r.kind == "pr")
    assert len(reqs) == 4 + prs, [(r.path, r.query) for r in reqs]

    # Payloads and provenance of one record of each kind.
    by_key = {r[1]: r for r in signals(pg_cluster, db_url)}
    merged = next(r for r in repo.records if r.kind == "pr" and r.merged)
    row = by_key[f"pr_merged:{merged.id}"]
    p = row[2]
    assert p["repo"] == "Octo/Hello" and p["number"] == merged.number
    assert p["id"] == merged.id and p["merged"] is True and p["state"] == "closed"
    assert p["title"] == merged.title and p["author"] == merged.user
    assert p["url"] == f"https://github.com/Octo/Hello/pull/{merged.number}"
    assert p["merged_at"] == iso(merged.merged) and p["created_at"] == iso(merged.created)
    assert p["base_ref"] == "main" and p["head_sha"] == merged.head_sha
    assert row[3]["number"] == merged.number, "the raw record is kept"
    assert row[4]["via"] == "sync" and row[4]["stream"] == "pull_requests"
    assert row[5].timestamp() == merged.merged
    issue = next(r for r in repo.records if r.kind == "issue" and r.closed and r.labels)
    p = by_key[f"issue_closed:{issue.issue_id}:{iso(issue.closed)}"][2]
    assert p["number"] == issue.number and p["state"] == "closed" and p["labels"] == ["bug"]
    assert p["closed_at"] == iso(issue.closed) and p["id"] == issue.issue_id
    c = repo.comments[0]
    p = by_key[f"comment_added:{c.id}"][2]
    assert p["number"] == c.number and p["author"] == c.user and p["body"] == c.body
    assert p["repo"] == "Octo/Hello" and p["title"] is None  # not in the comments listing
    rv = repo.reviews[0]
    p = by_key[f"pr_review_submitted:{rv.id}"][2]
    assert p["state"] == rv.state.lower() and p["number"] == rv.number
    assert p["title"] == repo.pr(rv.number).title and p["submitted_at"] == iso(rv.submitted)

    # Second run, nothing changed: one conditional request per listing, all
    # 304 (free at GitHub); the oldest-first streams ask from the cursor.
    mark = time.monotonic()
    sync(pg_cluster, db_url, d, cid)
    second = requests_of(mock, mark)
    assert len(second) <= 4 + 2, [(r.path, r.query, r.status) for r in second]
    assert sum(1 for r in second if r.status == 304) >= 2
    assert all("since" in r.query for r in second if r.path.endswith(("/issues", "/comments")))
    assert keys(pg_cluster, db_url) == want

    # Third run after a merge, a comment and a review: only those change.
    pr = next(r for r in repo.records if r.kind == "pr" and not r.closed)
    mock.update_pr("Octo/Hello", pr.number, merge=True)
    late = mock.add_comment("Octo/Hello", pr.number)
    review = mock.add_review("Octo/Hello", pr.number)
    mark = time.monotonic()
    sync(pg_cluster, db_url, d, cid)
    third = requests_of(mock, mark)
    assert keys(pg_cluster, db_url) == expected_sync_keys(repo)
    assert ("pr_merged", f"pr_merged:{pr.id}") in keys(pg_cluster, db_url)
    assert ("comment_added", f"comment_added:{late.id}") in keys(pg_cluster, db_url)
    assert ("pr_review_submitted", f"pr_review_submitted:{review.id}") in keys(pg_cluster,
                                                                                 db_url)
    # reviews: the changed pull request, plus what the 60 s lookback re-reads
    reviews_calls = [r.path for r in third if r.path.endswith("/reviews")]
    assert f"/repos/octo/hello/pulls/{pr.number}/reviews" in reviews_calls
    assert len(reviews_calls) <= 3, reviews_calls
    assert len(third) - len(reviews_calls) == 4, [(r.path, r.query, r.status) for r in third]


@pytest.mark.slow
def test_5000_pull_requests_complete_then_incremental(daemon_factory, pg_cluster, db_url,
                                                      github, capsys):
    mock = github()
    repo = mock.add_repo("big/monorepo", prs=5000, step=30)
    d = start(daemon_factory, mock, repositories=["big/monorepo"], streams=["pull_requests"])
    cid, _ = pat_connection(d, mock)

    sync(pg_cluster, db_url, d, cid, "pull_requests", timeout=240)
    first = mock.snapshot("GET")
    want = expected_sync_keys(repo, ("pull_requests",))
    got = keys(pg_cluster, db_url)
    assert len([k for k in got if k[0] == "pr_opened"]) == 5000
    assert got == want
    assert len(first) == 50, f"{len(first)} requests for 5,000 pull requests at 100 per page"
    assert all(r.status == 200 for r in first)
    assert [int(r.query.get("page", 1)) for r in first] == list(range(1, 51))

    # Nothing changed: a single conditional request, answered 304.
    mark = time.monotonic()
    sync(pg_cluster, db_url, d, cid, "pull_requests")
    second = requests_of(mock, mark)
    assert [(r.status, r.headers.get("If-None-Match") is not None) for r in second] == \
        [(304, True)]

    # Seven pull requests change: one page, only their new signals.
    changed = [7, 100, 2501, 4000, 4999, 5000, 11]
    for n in changed:
        if repo.pr(n).closed:
            mock.update_pr("big/monorepo", n, reopen=True, title=f"reopened {n}")
        else:
            mock.update_pr("big/monorepo", n, merge=True)
    before = keys(pg_cluster, db_url)
    mark = time.monotonic()
    sync(pg_cluster, db_url, d, cid, "pull_requests")
    third = requests_of(mock, mark)
    assert [r.status for r in third] == [200], [(r.query, r.status) for r in third]
    new = keys(pg_cluster, db_url) - before
    assert new == {("pr_merged", f"pr_merged:{repo.pr(n).id}") for n in (7, 2501, 4999, 11)}
    with capsys.disabled():
        print(f"\n[github 5000 PRs] first run {len(first)} requests (200), second run "
              f"{len(second)} request(s) ({sum(1 for r in second if r.status == 304)} x 304), "
              f"after 7 changes {len(third)} request(s)")


def test_interrupted_newest_first_walk_resumes(daemon_factory, pg_cluster, db_url, github):
    """A newest-first walk cut short (GitHub fails page 2 with a 500) is
    retried; the retry skips the pull requests the first attempt finished,
    so no pull request's reviews are fetched twice."""
    mock = github()
    repo = mock.add_repo("octo/resume", prs=250, reviews=250)
    d = start(daemon_factory, mock, repositories=["octo/resume"], streams=["pr_reviews"])
    cid, _ = pat_connection(d, mock)
    mock.script(r"/pulls$", ("pass",), ("status", 500, {"message": "Server Error"}))
    out = sync(pg_cluster, db_url, d, cid, "pr_reviews", timeout=90)
    assert out["pr_reviews"][1] == 2, out  # succeeded at the second attempt
    reqs = mock.snapshot("GET")
    cut = next(i for i, r in enumerate(reqs) if r.status == 500)
    before = [r.path for r in reqs[:cut] if r.path.endswith("/reviews")]
    after = [r.path for r in reqs[cut:] if r.path.endswith("/reviews")]
    assert len(before) == 100, "the first page's pull requests were handled"
    # Only the pull request at the boundary time is handled again (others
    # with the same time could have been on the page that failed).
    again = set(before) & set(after)
    assert len(again) <= 1, f"reviews of finished pull requests fetched again: {again}"
    assert len(set(before) | set(after)) == 250
    assert keys(pg_cluster, db_url) == expected_sync_keys(repo, ("pr_reviews",))
    cursor = q(pg_cluster, db_url, "SELECT value FROM cursors WHERE stream = "
                                   "'pr_reviews:octo/resume'")[0][0]
    assert not cursor.startswith("{"), f"the walk finished, yet the cursor is {cursor}"


def test_secondary_rate_limit_403_retry_after(daemon_factory, pg_cluster, db_url, github):
    mock = github()
    repo = mock.add_repo("octo/busy", prs=0, issues=250)
    d = start(daemon_factory, mock, repositories=["octo/busy"], streams=["issues"])
    cid, _ = pat_connection(d, mock)
    mock.script(r"/issues$", ("pass",), ("secondary", 2))
    sync(pg_cluster, db_url, d, cid, "issues")
    reqs = mock.snapshot("GET", r"/issues$")
    limited = next(i for i, r in enumerate(reqs) if r.status == 403)
    gap = reqs[limited + 1].mono - reqs[limited].mono
    assert gap >= 2.0 - 0.05, f"retried {gap:.2f}s after Retry-After: 2"
    assert reqs[limited + 1].query == reqs[limited].query, "the same page is asked again"
    assert keys(pg_cluster, db_url) == expected_sync_keys(repo, ("issues",))


def test_primary_rate_limit_reschedules_without_failing(daemon_factory, pg_cluster, db_url,
                                                        github):
    mock = github()
    mock.add_repo("octo/quota", prs=0, issues=5)
    d = start(daemon_factory, mock, repositories=["octo/quota"], streams=["issues"])
    cid, _ = pat_connection(d, mock)
    mock.script(r"/issues$", ("primary", 300))
    job = d.ctl_json("sync", cid, "--stream", "issues", check=True)[0]["id"]

    def parked():
        r = q(pg_cluster, db_url, "SELECT state, extract(epoch FROM run_after - now()), "
                                  "coalesce(last_error, '') FROM sync_jobs WHERE id = %s", (job,))
        return r and r[0][0] in ("queued", "retrying") and r[0][1] > 200 and r[0]
    state, wait_s, err = wait_for(parked, 30, 0.2, msg=d.log_text()[-4000:])
    assert 200 < wait_s <= 310, wait_s
    assert "-7" in err  # INGEST_ERATELIMITED
    assert len(mock.snapshot("GET", r"/issues$")) == 1, "no hammering of an exhausted quota"


def test_bad_credentials_fail_without_leaking(daemon_factory, pg_cluster, db_url, github):
    mock = github()
    mock.add_repo("octo/hello", issues=3)
    d = start(daemon_factory, mock, repositories=["octo/hello"], streams=["issues"])
    revoked = f"ghp_{secrets.token_urlsafe(27)[:36]}"  # never registered at the mock
    cid = add_connection(d, {"token": revoked})
    out = sync(pg_cluster, db_url, d, cid, "issues", expect=None)
    state, attempts, err = out["issues"]
    assert state in ("dead", "failed", "retrying") and "-8" in err, out  # INGEST_EAUTH
    assert [r.status for r in mock.snapshot("GET")][:1] == [401]
    assert revoked not in d.log_text() and revoked not in err
    assert "Bad credentials" in d.log_text()
    assert keys(pg_cluster, db_url) == set()


def test_unreadable_repository_is_skipped_and_reported(daemon_factory, pg_cluster, db_url,
                                                       github):
    mock = github()
    good = mock.add_repo("octo/good", prs=2, issues=2)
    d = start(daemon_factory, mock, repositories=["octo/gone", "octo/good"],
              streams=["issues", "pull_requests"])
    cid, _ = pat_connection(d, mock)
    sync(pg_cluster, db_url, d, cid, "issues", "pull_requests")
    assert keys(pg_cluster, db_url) == expected_sync_keys(good, ("issues", "pull_requests"))
    health = d.ctl_json("health")
    assert "octo/gone" in json.dumps(health), health
    assert any(r.status == 404 for r in mock.snapshot("GET", "gone"))


def test_organizations_and_enterprise_prefix(daemon_factory, pg_cluster, db_url, github):
    mock = github(prefix="/api/v3")
    repos = mock.add_org("acme", ["api", "web", "old"], archived=("old",))
    d = start(daemon_factory, mock, organizations=["acme"], streams=["pull_requests"])
    assert mock.url.endswith("/api/v3")
    cid, _ = pat_connection(d, mock)
    sync(pg_cluster, db_url, d, cid, "pull_requests")
    want = set()
    for r in repos:
        if not r.archived:
            want |= expected_sync_keys(r, ("pull_requests",))
    assert keys(pg_cluster, db_url) == want
    paths = {r.path for r in mock.snapshot("GET")}
    assert "/orgs/acme/repos" in paths and "/repos/acme/old/pulls" not in paths


def test_full_refresh_rereads_but_stores_nothing_twice(daemon_factory, pg_cluster, db_url,
                                                       github):
    mock = github()
    repo = mock.add_repo("octo/full", prs=5, issues=5, comments=5)
    d = start(daemon_factory, mock, repositories=["octo/full"],
              streams=["issues", "issue_comments"])
    cid, _ = pat_connection(d, mock)
    sync(pg_cluster, db_url, d, cid, "issues", "issue_comments")
    n = q(pg_cluster, db_url, "SELECT count(*) FROM signals")[0][0]
    mark = time.monotonic()
    d.ctl_json("sync", cid, "--full", check=True)
    wait_for(lambda: q(pg_cluster, db_url, "SELECT count(*) FROM sync_jobs WHERE state NOT IN "
                                           "('succeeded', 'dead', 'failed')")[0][0] == 0, 30)
    full = requests_of(mock, mark)
    assert full and all(r.query.get("since", "") <= iso(repo.records[0].created) for r in full)
    assert all(r.status == 200 for r in full), "a full refresh reads everything again"
    assert q(pg_cluster, db_url, "SELECT count(*) FROM signals")[0][0] == n
    assert keys(pg_cluster, db_url) == expected_sync_keys(repo, ("issues", "issue_comments"))


def test_bad_config_is_refused_with_a_reason(daemon_factory, github):
    mock = github()
    d = daemon_factory.start(conf_text=gh_conf(mock.url, repositories=["not a repo"]),
                             plugins=["github"])
    entry = next(p for p in d.ctl_json("list", check=True) if p["name"] == "github")
    assert entry["state"] != "loaded"
    assert "owner/name" in json.dumps(entry)


# ------------------------------------------------- per-connection settings

def conn_config(**settings):
    """A connection's config: no schedule, plus its own GitHub settings."""
    return {**NO_SCHEDULE, **settings}


def keys_by_connection(pg, db_url):
    """{connection id: {(kind, dedupe key), ...}} of the stored signals."""
    out = {}
    for cid, kind, key in q(pg, db_url, "SELECT connection_id::text, kind, dedupe_key "
                                        "FROM signals WHERE source = 'github'"):
        out.setdefault(cid, set()).add((kind, key))
    return out


def test_connections_sync_their_own_repositories(daemon_factory, pg_cluster, db_url, github):
    """One daemon, four connections: each syncs the repositories of its own
    config (one of them at another server, GitHub Enterprise Server style,
    by its api_base_url; one by organization with include_archived, which
    replaces the group's repositories too), one without settings syncs the
    group's default, and every signal belongs to the connection that synced
    it."""
    mock = github()
    ghes = github(prefix="/api/v3", first_id=500000)
    alpha = mock.add_repo("octo/alpha", prs=3, issues=3, comments=2, reviews=1)
    shared = mock.add_repo("octo/shared", prs=2, issues=2)
    mock.add_repo("acme/beta", prs=2, issues=2)  # same name as at ghes: must not be read here
    org = mock.add_org("labs", ["one", "old"], archived=("old",))
    beta = ghes.add_repo("acme/beta", prs=4, issues=2, comments=2)
    d = start(daemon_factory, mock, repositories=["octo/shared"])

    def conn(server, **settings):
        token = server.add_token(f"ghp_{secrets.token_urlsafe(27)[:36]}")
        return add_connection(d, {"token": token}, config=conn_config(**settings)), token

    a, token_a = conn(mock, repositories=["Octo/Alpha"])
    b, token_b = conn(ghes, repositories=["acme/beta"], api_base_url=ghes.url + "/")
    c, token_c = conn(mock)  # the group's default: octo/shared
    o, token_o = conn(mock, organizations=["labs"], include_archived=True,
                      streams=["pull_requests", "issues"])
    for cid in (a, b, c, o):
        sync(pg_cluster, db_url, d, cid)

    got = keys_by_connection(pg_cluster, db_url)
    assert got.get(a) == expected_sync_keys(alpha)
    assert got.get(b) == expected_sync_keys(beta)
    assert got.get(c) == expected_sync_keys(shared)
    want_o = set()
    for r in org:  # archived included for this connection
        want_o |= expected_sync_keys(r, ("pull_requests", "issues"))
    assert got.get(o) == want_o
    assert set(got) == {a, b, c, o}

    def repos_read(server, token):
        return {"/".join(r.path.split("/")[2:4]).lower() for r in server.snapshot("GET")
                if r.token == token and r.path.startswith("/repos/")}
    assert repos_read(mock, token_a) == {"octo/alpha"}
    assert repos_read(mock, token_c) == {"octo/shared"}
    assert repos_read(mock, token_o) == {"labs/one", "labs/old"}
    assert repos_read(ghes, token_b) == {"acme/beta"}
    assert not [r for r in mock.snapshot() if r.token == token_b], "b reads its own server"
    assert not [r for r in ghes.snapshot() if r.token != token_b]
    assert {r.path for r in mock.snapshot("GET") if r.token == token_o} >= {"/orgs/labs/repos"}


def test_streams_per_connection(daemon_factory, pg_cluster, db_url, github):
    """Two connections on one repository: one syncs issues only, the other
    pull requests only; a job for a stream the connection leaves out
    succeeds without a request."""
    mock = github()
    repo = mock.add_repo("octo/split", prs=4, issues=4, comments=3, reviews=2)
    d = start(daemon_factory, mock, repositories=["octo/split"])
    t_issues = mock.add_token(f"ghp_{secrets.token_urlsafe(27)[:36]}")
    t_pulls = mock.add_token(f"ghp_{secrets.token_urlsafe(27)[:36]}")
    issues_only = add_connection(d, {"token": t_issues}, config=conn_config(streams=["issues"]))
    pulls_only = add_connection(d, {"token": t_pulls},
                                config=conn_config(streams=["pull_requests"]))
    out = sync(pg_cluster, db_url, d, issues_only)
    assert set(out) == set(STREAMS)  # every job ran, and succeeded
    sync(pg_cluster, db_url, d, pulls_only)
    got = keys_by_connection(pg_cluster, db_url)
    assert got.get(issues_only) == expected_sync_keys(repo, ("issues",))
    assert got.get(pulls_only) == expected_sync_keys(repo, ("pull_requests",))
    paths = {t: {r.path for r in mock.snapshot("GET") if r.token == t}
             for t in (t_issues, t_pulls)}
    assert paths[t_issues] == {"/repos/octo/split/issues"}
    assert paths[t_pulls] == {"/repos/octo/split/pulls"}


INVALID_SETTINGS = [
    ({"repositories": "not-a-list"}, "repositories must be a list of strings"),
    ({"repositories": ["octo/ok", "no-slash"]}, "repositories[1] 'no-slash' is not owner/name"),
    ({"organizations": [7]}, "organizations[0] is not an organization login"),
    ({"api_base_url": "ftp://example.com"}, "api_base_url must be an http(s) URL"),
    ({"streams": ["issues", "commits"]}, "streams[1] 'commits' is not one of"),
    ({"include_archived": "yes"}, "include_archived must be true or false"),
]


def test_invalid_connection_settings_fail_the_job(daemon_factory, pg_cluster, db_url, github):
    """A connection whose config holds an invalid GitHub setting: its job
    fails with INGEST_EINVAL, the log names the key, nothing is read or
    stored; the daemon's other connections are unaffected."""
    mock = github()
    good_repo = mock.add_repo("octo/ok", issues=3)
    d = start(daemon_factory, mock, repositories=["octo/ok"], streams=["issues"],
              extra="job_max_retries = 0;\ncircuit_failure_threshold = 1000;")
    tokens = []
    for settings, message in INVALID_SETTINGS:
        token = mock.add_token(f"ghp_{secrets.token_urlsafe(27)[:36]}")
        tokens.append(token)
        cid = add_connection(d, {"token": token}, config=conn_config(**settings))
        state, attempts, err = sync(pg_cluster, db_url, d, cid, "issues", expect=None)["issues"]
        assert state in ("dead", "failed") and "status -1" in err, (settings, state, err)
        line = d.wait_for_log(lambda e, m=message: e.get("plugin") == "github" and
                              m in e.get("msg", ""), 10)
        assert line["level"] in ("error", "ERROR"), line
        assert "connection config: " + message.split(" ")[0] in line["msg"], line
    assert not mock.snapshot(), "nothing was requested"
    assert keys(pg_cluster, db_url) == set()
    log = d.log_text()
    assert not [t for t in tokens if t in log]
    # The daemon and its other connections go on.
    cid, _ = pat_connection(d, mock)
    sync(pg_cluster, db_url, d, cid, "issues")
    assert keys(pg_cluster, db_url) == expected_sync_keys(good_repo, ("issues",))
