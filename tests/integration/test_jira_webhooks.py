"""Jira webhooks through the jira connector.

  - admin webhooks with a secret: X-Hub-Signature: sha256=<hex HMAC-SHA256
    of the raw body>, verified by the host as the descriptor declares;
    X-Atlassian-Webhook-Identifier is the idempotency key (unchanged across
    Jira's retries);
  - Atlassian's documented example callback for an issue-related event
    (fixtures/jira/webhooks/issue_updated.documented.json, verbatim) and
    cases derived from it with only fields Jira sends in those events
    (*.derived.json): jira:issue_created, jira:issue_updated (edit,
    transition to a done status, comment), jira:issue_deleted,
    comment_created, comment_updated, and an event without a stable kind;
  - a webhook on a connection gives the same dedupe keys as a sync of the
    same data (so a later sync stores nothing twice), and asks for an
    incremental sync when the issue's project is one the connection syncs.
"""
import copy
import json
import uuid
from pathlib import Path

from conftest import wait_for
from mock_jira import sign
from store_helpers import q
from test_jira import (WEBHOOK_SECRET, add_connection, basic_connection,  # noqa: F401
                       expected_keys, jira, keys, seed, signals, start, sync)

FIXTURES = Path(__file__).parent / "fixtures" / "jira" / "webhooks"


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def deliver(d, payload, delivery=None, path="/webhooks/jira", secret=WEBHOOK_SECRET, body=None,
            signature=None):
    delivery = delivery or str(uuid.uuid4())
    body = body if body is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json; charset=utf-8",
               "X-Atlassian-Webhook-Identifier": delivery,
               "X-Atlassian-Webhook-Flow": "Primary",
               "User-Agent": "Atlassian Webhook HTTP Client"}
    if signature is not False:
        headers["X-Hub-Signature"] = signature or sign(body, secret)
    status, _, data = d.http_post(path, body=body, headers=headers)
    return status, data, delivery


def deliveries(pg, db_url):
    return q(pg, db_url, "SELECT delivery_key, state, attempts FROM webhook_deliveries "
                         "WHERE provider = 'jira'")


def wait_processed(pg, db_url, n, timeout=30):
    wait_for(lambda: sum(1 for r in deliveries(pg, db_url) if r[1] == "processed") >= n,
             timeout, 0.2, msg=f"not all {n} processed: {deliveries(pg, db_url)}")


def test_signature_and_delivery_identifier(daemon_factory, pg_cluster, db_url, jira):
    api = jira()
    d = start(daemon_factory, api)
    ex = fixture("issue_created.derived.json")
    body = json.dumps(ex).encode()
    status, data, delivery = deliver(d, ex, body=body)
    assert status == 202, data
    assert json.loads(data)["idempotency_key"] == delivery
    status, data, _ = deliver(d, ex, delivery=delivery, body=body)  # Jira's retry
    assert status == 200 and json.loads(data)["status"] == "duplicate"
    for bad in (sign(body, "another secret"), sign(body, WEBHOOK_SECRET)[7:],
                "sha1=" + sign(body, WEBHOOK_SECRET)[7:]):
        assert deliver(d, ex, body=body, signature=bad)[0] == 401
    assert deliver(d, ex, body=body, signature=False)[0] == 401
    wait_processed(pg_cluster, db_url, 1)
    assert [(r[0], r[1]) for r in signals(pg_cluster, db_url)] == \
        [("issue_created", "issue_created:99291")]


def test_documented_and_derived_payloads(daemon_factory, pg_cluster, db_url, jira):
    api = jira()
    d = start(daemon_factory, api)
    sent = {}
    names = sorted(p.name for p in FIXTURES.glob("*.json"))
    for name in names:
        status, data, delivery = deliver(d, fixture(name))
        assert status == 202, (name, data)
        sent[name] = delivery
    wait_processed(pg_cluster, db_url, len(names))
    assert not d.ctl_json("deadletters", check=True)
    rows = {(r[0], r[1]): r for r in signals(pg_cluster, db_url)}
    assert set(rows) == {
        ("issue_updated", "issue_updated:99291:2018-05-07T13:03:57.764Z"),  # documented
        ("issue_created", "issue_created:99291"),
        ("issue_updated", "issue_updated:99291:2011-06-07T15:35:01.000Z"),
        ("issue_transitioned", "issue_transitioned:99291:10125"),
        ("issue_closed", "issue_closed:99291:10125"),
        ("issue_updated", "issue_updated:99291:2011-06-07T15:31:26.805Z"),
        ("comment_added", "comment_added:252789"),  # issue_commented and comment_created
        ("comment_updated", "comment_updated:252789:2011-06-07T16:00:00.000Z"),
        ("issue_deleted", "issue_deleted:99291"),
        ("jira.worklog_created", f"jira:{sent['worklog_created.derived.json']}"),
    }, set(rows)
    doc = rows[("issue_updated", "issue_updated:99291:2018-05-07T13:03:57.764Z")]
    p = doc[2]
    assert p["key"] == "JRA-20002" and p["summary"] == "I feel the need for speed"
    assert p["description"] == "Make the issue nav load 10x faster"  # v2 body: kept as is
    assert p["labels"] == ["UI", "dialogue", "move"]
    assert p["url"] == "https://jira.atlassian.com/browse/JRA-20002"
    assert doc[3] == fixture("issue_updated.documented.json"), "the raw body is kept"
    assert doc[4]["via"] == "webhook" and doc[4]["webhook_event"] == "jira:issue_updated"
    closed = rows[("issue_closed", "issue_closed:99291:10125")]
    assert (closed[2]["from_status"], closed[2]["to_status"]) == ("In Progress", "Done")
    assert closed[2]["to_status_category"] == "done"
    assert closed[5].isoformat() == "2011-06-07T15:35:01+00:00"
    com = rows[("comment_added", "comment_added:252789")][2]
    assert com["body"] == "Just in time for AtlasCamp!" and com["issue_key"] == "JRA-20002"
    assert com["author"] == "Bryan Rollins [Atlassian]"
    upd = rows[("comment_updated", "comment_updated:252789:2011-06-07T16:00:00.000Z")][2]
    assert upd["body"] == "Just in time for AtlasCamp! (edited)"
    other = rows[("jira.worklog_created", f"jira:{sent['worklog_created.derived.json']}")][2]
    assert other["event"] == "worklog_created"
    assert other["delivery_id"] == sent["worklog_created.derived.json"]


def webhook_of(api, issue, event, **extra):
    """A delivery body for `issue` as Jira builds it: the issue as REST
    returns it (at the site), the event's name and timestamp."""
    body = {"timestamp": int(issue["updated"] * 1000), "webhookEvent": event,
            "user": api._user(api.site), "issue": api.issue_json(api.site, issue)}
    body["issue"]["fields"].pop("comment")
    body.update(extra)
    return body


def test_webhooks_meet_the_sync_and_request_it(daemon_factory, pg_cluster, db_url, jira):
    api = jira(tz_hours=2)
    issues = seed(api)
    d = start(daemon_factory, api)
    secret = "per-connection-" + uuid.uuid4().hex
    api.add_basic("mia@example.com", "ATATT3xFfGF0-test-token-0123456789")
    cid = add_connection(d, {"username": "mia@example.com",
                             "password": "ATATT3xFfGF0-test-token-0123456789",
                             "webhook_secret": secret}, "basic",
                         {"schedule": {"*": {"enabled": False}}, "site_url": api.site,
                          "projects": ["PROJ"]})
    path = f"/webhooks/jira/{cid}"
    a, ops = issues[0], issues[2]
    h = a["histories"][1]
    transition = webhook_of(api, a, "jira:issue_updated", issue_event_type_name="issue_generic",
                            changelog={"id": h["id"], "items": copy.deepcopy(h["items"])})
    comment = api._comment(api.site, ops, ops["comments"][0])
    commented = {"timestamp": 1, "webhookEvent": "comment_created", "comment": comment,
                 "issue": {"id": ops["id"], "key": ops["key"], "self": api.issue_json(
                     api.site, ops)["self"], "fields": {"summary": ops["summary"], "project": {
                         "key": "OPS"}}}}
    # OPS is not among the connection's projects: stored, no sync asked.
    assert deliver(d, commented, path=path, secret=secret)[0] == 202
    wait_processed(pg_cluster, db_url, 1)
    assert q(pg_cluster, db_url, "SELECT count(*) FROM sync_jobs")[0][0] == 0
    assert deliver(d, transition, path=path, secret=secret)[0] == 202
    wait_processed(pg_cluster, db_url, 2)
    jobs = wait_for(lambda: q(pg_cluster, db_url, "SELECT stream, connection_id::text, state "
                                                  "FROM sync_jobs"), 15)
    assert [(j[0], j[1]) for j in jobs] == [("issues", cid)]
    wait_for(lambda: q(pg_cluster, db_url, "SELECT state FROM sync_jobs")[0][0] == "succeeded",
             30, msg=d.log_text()[-4000:])
    by_webhook = {(r[0], r[1]) for r in signals(pg_cluster, db_url)
                  if r[4]["via"] == "webhook"}
    assert by_webhook == {
        ("issue_updated", f"issue_updated:{a['id']}:{__import__('test_jira').ktime(a['updated'])}"),
        ("issue_transitioned", f"issue_transitioned:{a['id']}:{h['id']}"),
        ("issue_closed", f"issue_closed:{a['id']}:{h['id']}"),
        ("comment_added", f"comment_added:{comment['id']}")}
    proj = [i for i in api.issues.values() if i["project"] == "PROJ"]
    # The sync (PROJ only) met the webhook's keys and stored nothing twice.
    assert keys(pg_cluster, db_url) == expected_keys(api, proj) | {
        ("comment_added", f"comment_added:{comment['id']}")}
    rows = signals(pg_cluster, db_url)
    assert len(rows) == len({(r[0], r[1]) for r in rows})
    webhook_closed = [r for r in rows if r[0] == "issue_closed"][0]
    assert webhook_closed[2]["custom_fields"]["Story point estimate"] == 5, \
        "custom fields by name in webhooks too"
    assert secret not in d.log_text()
