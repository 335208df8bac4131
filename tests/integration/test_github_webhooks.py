"""GitHub webhooks through the github connector.

  - X-Hub-Signature-256 with GitHub's documented test vector (secret "It's a
    Secret to Everybody", payload "Hello, World!"), verified by the host as
    the descriptor declares; X-GitHub-Delivery is the idempotency key;
  - every example payload of @octokit/webhooks-examples (npm, found under
    $INGEST_NPM_PREFIX, default ~/.cache/ingest-host/npm; .ci/run installs
    it) for pull_request, pull_request_review, issues, issue_comment and push
    gives the expected signal kind, dedupe key, normalized fields and time,
    plus the two cases the package lacks (a merged pull request, a closed
    issue), derived from its examples;
  - every other example (all other events and actions) is processed and
    stored as github.<event>; ping gives none; nothing is dead-lettered;
  - form-encoded hooks, unknown events, and a webhook about a configured
    repository asking for the incremental sync that heals a missed delivery
    (configured: by the connection's own settings, the group's by default).
"""
import copy
import hashlib
import hmac
import json
import os
import secrets
import shutil
import subprocess
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conftest import wait_for
from mock_github import iso
from store_helpers import q
from test_github import (TENANT, WEBHOOK_SECRET, add_connection, github,  # noqa: F401
                         keys, signals, start)

HANDLED = ("pull_request", "pull_request_review", "issues", "issue_comment", "push")


# ----------------------------------------------------------------- examples

def npm_prefix():
    return Path(os.environ.get("INGEST_NPM_PREFIX",
                               Path.home() / ".cache" / "ingest-host" / "npm"))


def examples():
    """{event: [payload, ...]} from @octokit/webhooks-examples (installed
    into the npm prefix if missing, as .ci/run does)."""
    prefix = npm_prefix()
    index = prefix / "node_modules" / "@octokit" / "webhooks-examples" / "api.github.com" / \
        "index.json"
    if not index.is_file():
        if not shutil.which("npm"):
            pytest.fail("npm is needed for @octokit/webhooks-examples (see .ci/run)")
        r = subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit",
                            "--no-fund", "@octokit/webhooks-examples@7"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    return {e["name"]: e["examples"] for e in json.loads(index.read_text())}


def derived(all_examples):
    """The cases the package has no example for (PROVIDERS.md §17): a merged
    pull request and a closed issue, edited from its own examples."""
    pr = copy.deepcopy(next(e for e in all_examples["pull_request"]
                            if e["action"] == "closed"))
    pr["pull_request"].update(merged=True, merged_at=pr["pull_request"]["closed_at"],
                              merge_commit_sha="c4295bd74fb0f4fda03689c3df3f2803b658fd85")
    issue = copy.deepcopy(next(e for e in all_examples["issues"] if e["action"] == "opened"))
    issue["action"] = "closed"
    issue["issue"].update(state="closed", closed_at="2019-05-15T15:21:00Z",
                          updated_at="2019-05-15T15:21:00Z", state_reason="completed")
    return [("pull_request", pr), ("issues", issue)]


# ------------------------------------------------------------------- oracle

def canon(t):
    """GitHub time (text with Z or an offset, or epoch seconds) -> ISO Z."""
    if t is None:
        return None
    if isinstance(t, (int, float)):
        return iso(t)
    return iso(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp())


def expected(event, ex, delivery):
    """(kind, dedupe key, {field: value}, occurred ISO or None) per the
    README's mapping, computed independently of the plugin."""
    a = ex.get("action")
    repo = (ex.get("repository") or {}).get("full_name")
    login = lambda o: (o.get("user") or {}).get("login")  # noqa: E731
    if event == "pull_request" and a in ("opened", "closed", "reopened"):
        pr = ex["pull_request"]
        merged = bool(pr.get("merged") or pr.get("merged_at"))
        if a == "opened":
            kind, key, at = "pr_opened", f"pr_opened:{pr['id']}", pr["created_at"]
        elif a == "reopened":
            at = pr["updated_at"]
            kind, key = "pr_reopened", f"pr_reopened:{pr['id']}:{canon(at)}"
        elif merged:
            kind, key, at = "pr_merged", f"pr_merged:{pr['id']}", pr["merged_at"]
        else:
            at = pr.get("closed_at") or pr["updated_at"]
            kind, key = "pr_closed", f"pr_closed:{pr['id']}:{canon(at)}"
        fields = {"repo": repo, "id": pr["id"], "number": pr["number"], "title": pr["title"],
                  "state": pr.get("state"), "author": login(pr), "url": pr["html_url"],
                  "api_url": pr["url"], "merged": bool(pr.get("merged_at")),
                  "draft": bool(pr.get("draft")), "created_at": pr["created_at"],
                  "closed_at": pr.get("closed_at"), "merged_at": pr.get("merged_at"),
                  "head_sha": pr["head"]["sha"], "base_ref": pr["base"]["ref"]}
        return kind, key, fields, canon(at)
    if event == "pull_request_review" and a == "submitted":
        rv, pr = ex["review"], ex["pull_request"]
        fields = {"repo": repo, "id": rv["id"], "number": pr["number"], "title": pr["title"],
                  "pr_id": pr["id"], "state": rv["state"].lower(), "author": login(rv),
                  "url": rv["html_url"], "submitted_at": rv["submitted_at"]}
        return ("pr_review_submitted", f"pr_review_submitted:{rv['id']}", fields,
                canon(rv["submitted_at"]))
    if event == "issues" and a in ("opened", "closed", "reopened"):
        i = ex["issue"]
        if a == "opened":
            kind, key, at = "issue_opened", f"issue_opened:{i['id']}", i["created_at"]
        elif a == "closed":
            at = i.get("closed_at") or i["updated_at"]
            kind, key = "issue_closed", f"issue_closed:{i['id']}:{canon(at)}"
        else:
            at = i["updated_at"]
            kind, key = "issue_reopened", f"issue_reopened:{i['id']}:{canon(at)}"
        fields = {"repo": repo, "id": i["id"], "number": i["number"], "title": i["title"],
                  "state": i.get("state"), "author": login(i), "url": i["html_url"],
                  "labels": [lb["name"] for lb in i.get("labels") or []],
                  "created_at": i["created_at"], "closed_at": i.get("closed_at")}
        return kind, key, fields, canon(at)
    if event == "issue_comment" and a == "created":
        c, i = ex["comment"], ex["issue"]
        fields = {"repo": repo, "id": c["id"], "number": i["number"], "title": i["title"],
                  "is_pull_request": "pull_request" in i, "author": login(c),
                  "body": c["body"], "url": c["html_url"], "created_at": c["created_at"]}
        return "comment_added", f"comment_added:{c['id']}", fields, canon(c["created_at"])
    if event == "push":
        head = ex.get("head_commit") or {}
        at = head.get("timestamp") or ex["repository"].get("pushed_at")
        key = f"push:{ex['repository']['id']}:{ex['ref']}:{ex['before']}:{ex['after']}"
        fields = {"repo": repo, "repo_id": ex["repository"]["id"], "ref": ex["ref"],
                  "before": ex["before"], "after": ex["after"],
                  "forced": bool(ex.get("forced")), "pusher": ex["pusher"]["name"],
                  "author": ex["sender"]["login"], "commit_count": len(ex["commits"]),
                  "head_commit_id": head.get("id"), "url": ex.get("compare"),
                  "branch": ex["ref"][11:] if ex["ref"].startswith("refs/heads/") else None,
                  "pushed_at": canon(at)}
        return "push", key, fields, canon(at)
    if event == "ping":
        return None
    fields = {"event": event, "action": a, "repo": repo,
              "sender": (ex.get("sender") or {}).get("login"), "delivery_id": delivery}
    return f"github.{event}", f"github:{delivery}", fields, None


# ------------------------------------------------------------------ helpers

def sign(body, secret=WEBHOOK_SECRET):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(d, event, payload, delivery=None, path="/webhooks/github", secret=WEBHOOK_SECRET,
            content_type="application/json", body=None):
    delivery = delivery or str(uuid.uuid4())
    body = body if body is not None else json.dumps(payload).encode()
    headers = {"Content-Type": content_type, "X-GitHub-Event": event,
               "X-GitHub-Delivery": delivery, "X-GitHub-Hook-ID": "292430182",
               "User-Agent": "GitHub-Hookshot/044aadd", "X-Hub-Signature-256": sign(body, secret)}
    status, _, data = d.http_post(path, body=body, headers=headers)
    return status, data, delivery


def deliveries(pg, db_url):
    return q(pg, db_url, "SELECT delivery_key, state, attempts FROM webhook_deliveries "
                         "WHERE provider = 'github'")


def wait_processed(pg, db_url, n, timeout=60):
    wait_for(lambda: sum(1 for r in deliveries(pg, db_url) if r[1] == "processed") >= n,
             timeout, 0.2, msg=f"not all {n} processed: "
             f"{[r for r in deliveries(pg, db_url) if r[1] != 'processed'][:5]}")


def started(daemon_factory, mock, **kw):
    kw.setdefault("repositories", ["Codertocat/Hello-World"])
    return start(daemon_factory, mock, **kw)


# -------------------------------------------------------------------- tests

def test_signature_test_vector_and_delivery_id(daemon_factory, pg_cluster, db_url, github):
    mock = github()
    d = started(daemon_factory, mock, extra="webhook_max_attempts = 1;")
    vector = b"Hello, World!"
    assert sign(vector) == ("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043"
                            "e17")  # GitHub's documented value
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "ping",
               "X-GitHub-Delivery": "vector-1",
               "X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46"
                                      "f4379c8b043e17"}
    status, _, body = d.http_post("/webhooks/github", body=vector, headers=headers)
    assert status == 202, body
    assert json.loads(body)["idempotency_key"] == "vector-1"
    for bad in ({**headers, "X-Hub-Signature-256": sign(vector, "It's a Secret to Nobody")},
                {**headers, "X-Hub-Signature-256": headers["X-Hub-Signature-256"][7:]},
                {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}):
        status, _, _ = d.http_post("/webhooks/github", body=vector, headers=bad)
        assert status == 401
    stored = q(pg_cluster, db_url, "SELECT body FROM webhook_deliveries")
    assert [bytes(r[0]) for r in stored] == [vector]
    # Not JSON: the plugin refuses it, and it is dead-lettered, not dropped.
    wait_for(lambda: [r[1] for r in deliveries(pg_cluster, db_url)] == ["dead"], 20)
    assert d.ctl_json("deadletters", check=True)[0]["payload"]["delivery_key"] == "vector-1"

    ping = examples()["ping"][0]
    status, data, delivery = deliver(d, "ping", ping)
    assert status == 202, data
    status, data, _ = deliver(d, "ping", ping, delivery=delivery)  # GitHub's redelivery
    assert status == 200 and json.loads(data)["status"] == "duplicate"
    wait_processed(pg_cluster, db_url, 1)
    assert signals(pg_cluster, db_url) == []  # ping is answered, not a signal


def test_every_handled_example_gives_its_signal(daemon_factory, pg_cluster, db_url, github):
    mock = github()
    d = started(daemon_factory, mock)
    ex = examples()
    cases = [(e, p) for e in HANDLED for p in ex[e]] + derived(ex)
    want = {}
    for event, payload in cases:
        status, data, delivery = deliver(d, event, payload)
        assert status == 202, (event, data)
        want.setdefault(expected(event, payload, delivery)[:2], []).append(
            expected(event, payload, delivery))
    wait_processed(pg_cluster, db_url, len(cases))
    assert not d.ctl_json("deadletters", check=True)
    rows = {(r[0], r[1]): r for r in signals(pg_cluster, db_url)}
    assert set(rows) == set(want), (set(want) ^ set(rows))
    kinds = {k for k, _ in rows}
    assert {"pr_opened", "pr_closed", "pr_merged", "pr_reopened", "pr_review_submitted",
            "issue_opened", "issue_closed", "issue_reopened", "comment_added", "push"} <= kinds
    for k, options in want.items():
        kind, key, payload, raw, prov, occurred = rows[k]
        assert prov["via"] == "webhook" and prov["github_event"] in HANDLED + ("unknown",)

        def matches(opt):
            fields, at = opt[2], opt[3]
            return all(payload.get(f) == v for f, v in fields.items()) and \
                (at is None or iso(occurred.timestamp()) == at)
        assert any(matches(o) for o in options), (k, payload, [o[2] for o in options])
        assert isinstance(raw, dict) and raw, "the raw event is kept"
        if not kind.startswith("github."):
            assert set(payload) >= {"repo", "id" if kind != "push" else "ref", "url"}


def test_every_other_event_is_stored_not_dropped(daemon_factory, pg_cluster, db_url, github):
    mock = github()
    d = started(daemon_factory, mock)
    ex = examples()
    cases = []
    for event, payloads in ex.items():
        for p in payloads:
            e = expected(event, p, "x")
            if event == "ping" or e[0].startswith("github."):
                cases.append((event, p))
    assert len({e for e, _ in cases}) >= 50, "the package's other events"
    sent = []
    for event, payload in cases:
        status, data, delivery = deliver(d, event, payload)
        assert status == 202, (event, data)
        sent.append((event, payload, delivery))
    wait_processed(pg_cluster, db_url, len(cases), timeout=90)
    assert all(r[1] == "processed" for r in deliveries(pg_cluster, db_url))
    assert not d.ctl_json("deadletters", check=True)
    rows = {r[1]: r for r in signals(pg_cluster, db_url)}
    for event, payload, delivery in sent:
        e = expected(event, payload, delivery)
        if e is None:
            continue
        kind, key, fields, _ = e
        assert key in rows, (event, payload.get("action"))
        row = rows[key]
        assert row[0] == kind and all(row[2].get(f) == v for f, v in fields.items()), row[2]
        assert row[3] == payload, "the raw event is kept as sent"
    assert not [r for r in rows.values() if r[0] == "github.ping"]


def test_form_encoded_and_unknown_events(daemon_factory, pg_cluster, db_url, github):
    mock = github()
    d = started(daemon_factory, mock)
    opened = next(p for p in examples()["issues"] if p["action"] == "opened")
    form = urlencode({"payload": json.dumps(opened)}).encode()
    status, data, _ = deliver(d, "issues", None, body=form,
                              content_type="application/x-www-form-urlencoded")
    assert status == 202, data
    status, data, delivery = deliver(d, "brand_new_thing", {"action": "sparkled",
                                                            "sender": {"login": "octocat"}})
    assert status == 202, data
    wait_processed(pg_cluster, db_url, 2)
    got = {(r[0], r[1]): r for r in signals(pg_cluster, db_url)}
    assert ("issue_opened", f"issue_opened:{opened['issue']['id']}") in got
    row = got[("github.brand_new_thing", f"github:{delivery}")]
    assert row[2]["action"] == "sparkled" and row[2]["sender"] == "octocat"
    assert row[2]["repo"] is None


def test_webhook_on_a_connection_heals_a_missed_delivery(daemon_factory, pg_cluster, db_url,
                                                         github):
    """GitHub never delivered "closed" for one pull request (merged at the
    mock); the next pull_request event about the repository, on the
    connection's endpoint, asks for an incremental sync that stores the
    missing pr_merged. An event about another repository asks for none."""
    mock = github()
    mock.add_repo("Codertocat/Hello-World", prs=6)
    d = started(daemon_factory, mock, streams=["pull_requests"])
    token = mock.add_token(f"ghp_{secrets.token_urlsafe(27)[:36]}")
    hook_secret = "per-connection-" + uuid.uuid4().hex
    cid = add_connection(d, {"token": token, "webhook_secret": hook_secret})
    path = f"/webhooks/github/{cid}"
    missed = mock.update_pr("Codertocat/Hello-World", 1, merge=True)

    other = copy.deepcopy(next(p for p in examples()["pull_request"] if p["action"] == "labeled"))
    other["repository"]["full_name"] = "someone/else"
    assert deliver(d, "pull_request", other, path=path, secret=hook_secret)[0] == 202
    wait_processed(pg_cluster, db_url, 1)
    assert q(pg_cluster, db_url, "SELECT count(*) FROM sync_jobs")[0][0] == 0

    labeled = next(p for p in examples()["pull_request"] if p["action"] == "labeled")
    assert deliver(d, "pull_request", labeled, path=path, secret=hook_secret)[0] == 202
    wait_processed(pg_cluster, db_url, 2)
    job = wait_for(lambda: q(pg_cluster, db_url, "SELECT stream, state, connection_id::text "
                                                 "FROM sync_jobs"), 15)
    assert [(j[0], j[2]) for j in job] == [("pull_requests", cid)]
    wait_for(lambda: q(pg_cluster, db_url, "SELECT state FROM sync_jobs")[0][0] == "succeeded",
             30, msg=d.log_text()[-4000:])
    assert ("pr_merged", f"pr_merged:{missed.id}") in keys(pg_cluster, db_url)
    rows = signals(pg_cluster, db_url, "github.pull_request")
    assert len(rows) == 2 and {r[2]["action"] for r in rows} == {"labeled"}
    assert token not in d.log_text() and hook_secret not in d.log_text()


def test_webhook_syncs_only_the_connections_repositories(daemon_factory, pg_cluster, db_url,
                                                         github):
    """The connection's config names its repositories and streams; the
    group's (Codertocat/Hello-World) are only the default. An event about a
    repository outside the connection's settings is stored as usual but asks
    for no sync; so is one about its repository for a stream it does not
    sync; one about its repository and stream asks for that sync. A
    connection with an invalid setting still stores its events (and logs
    the key), requesting nothing."""
    mock = github()
    mock.add_repo("octo/mine", prs=3)
    mock.add_repo("Codertocat/Hello-World", prs=2)
    d = started(daemon_factory, mock)
    token = mock.add_token(f"ghp_{secrets.token_urlsafe(27)[:36]}")
    hook_secret = "per-connection-" + uuid.uuid4().hex
    config = {"schedule": {"*": {"enabled": False}}, "repositories": ["octo/mine"],
              "streams": ["pull_requests"]}
    cid = add_connection(d, {"token": token, "webhook_secret": hook_secret}, config=config)
    path = f"/webhooks/github/{cid}"

    def send(event, payload, n):
        assert deliver(d, event, payload, path=path, secret=hook_secret)[0] == 202
        wait_processed(pg_cluster, db_url, n)

    def jobs():
        return q(pg_cluster, db_url, "SELECT stream, state, connection_id::text FROM sync_jobs")

    labeled = next(p for p in examples()["pull_request"] if p["action"] == "labeled")
    assert labeled["repository"]["full_name"] == "Codertocat/Hello-World"
    send("pull_request", labeled, 1)  # the group's repository, not the connection's
    opened = copy.deepcopy(next(p for p in examples()["issues"] if p["action"] == "opened"))
    opened["repository"]["full_name"] = "octo/mine"
    send("issues", opened, 2)  # the connection's repository, a stream it does not sync
    assert jobs() == []
    rows = q(pg_cluster, db_url, "SELECT kind, connection_id::text FROM signals")
    assert sorted(rows) == [("github.pull_request", cid), ("issue_opened", cid)]

    mine = copy.deepcopy(labeled)
    mine["repository"]["full_name"] = "octo/mine"
    send("pull_request", mine, 3)
    wait_for(lambda: [(j[0], j[2]) for j in jobs()] == [("pull_requests", cid)], 15)
    wait_for(lambda: jobs()[0][1] == "succeeded", 30, msg=d.log_text()[-4000:])
    assert {r.path for r in mock.snapshot("GET")} == {"/repos/octo/mine/pulls"}
    assert len(signals(pg_cluster, db_url, "github.pull_request")) == 2

    # Invalid settings: the delivery is still processed and stored.
    bad_secret = "bad-settings-" + uuid.uuid4().hex
    bad = add_connection(d, {"token": token, "webhook_secret": bad_secret},
                         config={"schedule": {"*": {"enabled": False}},
                                 "repositories": "not-a-list"})
    other = copy.deepcopy(mine)
    assert deliver(d, "pull_request", other, path=f"/webhooks/github/{bad}",
                   secret=bad_secret)[0] == 202
    wait_processed(pg_cluster, db_url, 4)
    d.wait_for_log(lambda e: e.get("plugin") == "github" and
                   "repositories must be a list of strings" in e.get("msg", ""), 10)
    assert q(pg_cluster, db_url, "SELECT count(*) FROM signals WHERE connection_id = %s",
             (bad,))[0][0] == 1
    assert len(jobs()) == 1
    assert token not in d.log_text() and hook_secret not in d.log_text()
