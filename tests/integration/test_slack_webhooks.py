"""Slack's Events API, slash commands and interactivity through the slack
connector.

  - Slack's documented signing example (PROVIDERS.md 1.2: secret
    8f742231b10e8888abcd99yyyzzz85a5, timestamp 1531420618, a 362-byte slash
    command) verified by the daemon, whose clock is moved to 2018 by an
    LD_PRELOAD shim (fixtures/slack/fake_clock.c); the same request with the
    real clock is refused as stale, a changed digit as forged;
  - every handled event, from Slack's documented example payloads
    (fixtures/slack/events/*.json): message -> message_posted,
    message_changed -> message_edited, message_deleted -> message_deleted,
    reaction_added, app_mention -> app_mentioned, channel_created, each with
    its kind, dedupe key, payload, time and provenance, user ids resolved
    through users.info; a later sync of the same message stores nothing new;
  - url_verification answered with the challenge, nothing stored;
  - retries: X-Slack-Retry-Num with the same event_id is a duplicate (one
    delivery, one signal); a retry whose first attempt never arrived is
    processed and its retry number kept in the provenance;
  - the 3-second budget: the 2xx comes after the durable store, before the
    processing (users.info made slow);
  - a slash command and an interactive payload (payload= JSON), both
    form-encoded and signed the same way, stored as signals without Slack's
    verification token; the connection-less route /webhooks/slack.
"""
import hashlib
import hmac
import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conftest import is_asan_build, wait_for
from mock_slack import Message, tsf
from store_helpers import q
from test_slack import (SIGNING_SECRET, TENANT, add_connection, signals, slack,  # noqa: F401
                        start)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "slack"
CONN_SECRET = "c0nnecti0n-s1gning-secret-4b7e"
VECTOR_TS = 1531420618
VECTOR_SIG = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


# ------------------------------------------------------------------ helpers

def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def signed(body, secret, ts=None):
    ts = str(int(time.time()) if ts is None else ts)
    mac = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + mac}


def post(d, path, body, secret, content_type="application/json", ts=None, extra=None):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    headers = {"Content-Type": content_type,
               "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
               **signed(body, secret, ts), **(extra or {})}
    return d.http_post(path, body=body, headers=headers)


def deliveries(pg, db_url):
    return q(pg, db_url, "SELECT delivery_key, state, attempts, connection_id::text "
                         "FROM webhook_deliveries WHERE provider = 'slack' ORDER BY received_at")


def wait_processed(pg, db_url, n, timeout=60):
    wait_for(lambda: sum(1 for r in deliveries(pg, db_url) if r[1] == "processed") >= n,
             timeout, 0.2, msg=f"not all {n} processed: {deliveries(pg, db_url)}")


def hooked(daemon_factory, pg_cluster, db_url, mock, **plugin):
    """A daemon and a connection with its own signing secret."""
    d = start(daemon_factory, mock, **plugin)
    token = mock.add_token()
    cid = add_connection(d, {"token": token, "webhook_secret": CONN_SECRET}, auth_kind="token",
                         config={"team_id": "T123ABC456"})
    return d, cid, f"/webhooks/slack/{cid}"


def at(ts):
    return pytest.approx(tsf(ts), abs=1e-6)


# ------------------------------------------------------ the signing example

def fake_clock(tmp_path):
    src = FIXTURES / "fake_clock.c"
    out = tmp_path / "fake_clock.so"
    r = subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(out), str(src), "-ldl"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def preload(hostd, shim):
    """LD_PRELOAD for the daemon: a sanitizer build needs its runtime first."""
    libs = [str(shim)]
    if is_asan_build():
        ldd = subprocess.run(["ldd", str(hostd)], capture_output=True, text=True).stdout
        m = re.search(r"(/\S*libasan\.so\S*)", ldd)
        if m:
            libs.insert(0, m.group(1))
    return ":".join(libs)


def test_slack_signing_example_through_the_daemon(daemon_factory, pg_cluster, db_url, slack,
                                                  tmp_path, hostd):
    mock = slack()
    body = (FIXTURES / "signing_example_body.txt").read_bytes()
    assert len(body) == 362
    assert signed(body, SIGNING_SECRET, VECTOR_TS)["X-Slack-Signature"] == VECTOR_SIG
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Slack-Request-Timestamp": str(VECTOR_TS), "X-Slack-Signature": VECTOR_SIG}

    # The real clock: eight years late, refused whatever the signature.
    d = start(daemon_factory, mock)
    status, _, data = d.http_post("/webhooks/slack", body=body, headers=headers)
    assert status == 401, data
    d.stop()

    env = {"LD_PRELOAD": preload(hostd, fake_clock(tmp_path)),
           "INGEST_FAKE_NOW": str(VECTOR_TS + 5)}
    if is_asan_build():
        env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                               ":verify_asan_link_order=0").lstrip(":")
    d = start(daemon_factory, mock, env=env)
    forged = dict(headers, **{"X-Slack-Signature": VECTOR_SIG[:-1] + "4"})
    assert d.http_post("/webhooks/slack", body=body, headers=forged)[0] == 401
    status, _, data = d.http_post("/webhooks/slack", body=body, headers=headers)
    assert status == 200, data
    wait_processed(pg_cluster, db_url, 1)
    (row,) = signals(pg_cluster, db_url)
    kind, key, payload, raw, prov, occurred, conn, tenant = row
    trigger = "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    assert (kind, key) == ("slash_command", f"slash_command:{trigger}")
    assert payload == {
        "command": "/webhook-collect", "text": "", "user_id": "U2CERLKJA",
        "user_name": "roadrunner", "channel_id": "G8PSS9T3V", "channel_name": "foobar",
        "team_id": "T1DC2JH3J", "team_domain": "testteamnow", "enterprise_id": None,
        "api_app_id": None,
        "trigger_id": "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
        "response_url": "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/"
                        "96rGlfmibIGlgcZRskXaIFfN",
        "is_enterprise_install": None}
    assert "token" not in raw and raw["command"] == "/webhook-collect"
    assert "xyzz0WbapA4vBCDEFasx0q6G" not in json.dumps([payload, raw, prov])
    assert conn is None and tenant == TENANT and prov["via"] == "webhook"
    assert abs(occurred.timestamp() - VECTOR_TS) < 120  # the daemon's (shifted) clock


# ------------------------------------------------------------ the events

def expected(name, ev):
    """(kind, key, payload subset, occurred ts) from the README's mapping,
    computed here independently of the plugin."""
    e = ev["event"]
    if name == "message":
        return ("message_posted", f"message_posted:{e['channel']}:{e['ts']}",
                {"channel": e["channel"], "ts": e["ts"], "user": e["user"], "text": e["text"],
                 "user_name": "Egon", "thread_ts": None, "is_reply": False, "subtype": None,
                 "team_id": ev["team_id"]}, e["ts"])
    if name == "message_changed":
        m = e["message"]
        return ("message_edited",
                f"message_edited:{e['channel']}:{m['ts']}:{m['edited']['ts']}",
                {"channel": e["channel"], "ts": m["ts"], "text": m["text"],
                 "edited_by": m["edited"]["user"], "edited_ts": m["edited"]["ts"],
                 "user_name": "Egon"}, m["edited"]["ts"])
    if name == "message_deleted":
        return ("message_deleted", f"message_deleted:{e['channel']}:{e['deleted_ts']}",
                {"channel": e["channel"], "ts": e["deleted_ts"], "deleted_at": e["ts"],
                 "previous_text": None}, e["ts"])
    if name == "reaction_added":
        it = e["item"]
        return ("reaction_added",
                f"reaction_added:{it['channel']}:{it['ts']}:{e['user']}:{e['reaction']}:"
                f"{e['event_ts']}",
                {"item_type": "message", "channel": it["channel"], "ts": it["ts"],
                 "file": None, "user": e["user"], "user_name": "Egon",
                 "reaction": e["reaction"], "item_user": e["item_user"],
                 "event_ts": e["event_ts"]}, e["event_ts"])
    if name == "app_mention":
        return ("app_mentioned", f"app_mentioned:{e['channel']}:{e['ts']}",
                {"channel": e["channel"], "ts": e["ts"], "user": e["user"], "text": e["text"],
                 "user_name": None}, e["ts"])  # U061F7AUR: users.info says user_not_found
    if name == "channel_created":
        c = e["channel"]
        return ("channel_created", f"channel_created:{c['id']}",
                {"id": c["id"], "name": c["name"], "creator": c["creator"],
                 "created": c["created"], "is_private": False}, str(c["created"]))
    raise AssertionError(name)


EVENTS = ("message", "message_changed", "message_deleted", "reaction_added", "app_mention",
          "channel_created")


def test_every_handled_event_gives_its_signal(daemon_factory, pg_cluster, db_url, slack):
    mock = slack()
    mock.add_user("U123ABC456", "egon", display_name="Egon", real_name="Egon Spengler")
    d, cid, path = hooked(daemon_factory, pg_cluster, db_url, mock)
    want = {}
    for name in EVENTS:
        ev = fixture(f"events/{name}.json")
        ev["event_id"] = f"Ev{name.upper().replace('_', '')}01"  # each its own (see README)
        status, _, data = post(d, path, ev, CONN_SECRET)
        assert status == 200 and not data, (name, data)
        want[name] = (ev, expected(name, ev))
    wait_processed(pg_cluster, db_url, len(EVENTS))
    # Each stored under its event_id (the empty 200 does not say it).
    assert sorted(r[0] for r in deliveries(pg_cluster, db_url)) == \
        sorted(w[0]["event_id"] for w in want.values())
    assert not d.ctl_json("deadletters", check=True)
    rows = {(r[0], r[1]): r for r in signals(pg_cluster, db_url)}
    assert set(rows) == {w[1][:2] for w in want.values()}
    for name, (ev, (kind, key, fields, ts)) in want.items():
        _, _, payload, raw, prov, occurred, conn, tenant = rows[(kind, key)]
        assert {k: payload.get(k) for k in fields} == fields, (name, payload)
        assert payload["team_id"] == "T123ABC456"
        assert occurred.timestamp() == at(ts), name
        assert prov["via"] == "webhook" and prov["event_id"] == ev["event_id"]
        assert prov["delivery"] == ev["event_id"] and prov["team_id"] == "T123ABC456"
        assert "slack_retry_num" not in prov
        assert prov["event_type"] == ev["event"]["type"] + (
            "." + ev["event"]["subtype"] if "subtype" in ev["event"] else "")
        assert "token" not in raw and raw["event"] == ev["event"]
        assert conn == cid and tenant == TENANT
    # users.info once for the known user (cached), once for the unknown one.
    assert sorted(r.query["user"] for r in mock.snapshot("users.info")) == \
        ["U061F7AUR", "U123ABC456"]

    # A sync that lists the same message stores nothing new.
    msg = fixture("events/message.json")["event"]
    mock.add_channel(msg["channel"], "general")
    with mock.lock:
        mock.messages[msg["channel"]].append(Message(msg["channel"], msg["ts"], msg["user"],
                                                     msg["text"]))
    for job in d.ctl_json("sync", cid, "--full", "--stream", "messages", check=True):
        wait_for(lambda: q(pg_cluster, db_url, "SELECT state FROM sync_jobs WHERE id = %s",
                           (job["id"],))[0][0] == "succeeded", 30)
    assert mock.snapshot("conversations.history")
    same = [r for r in signals(pg_cluster, db_url, "message_posted")]
    assert len(same) == 1 and same[0][4]["via"] == "webhook"


def test_url_verification_answered_not_stored(daemon_factory, pg_cluster, db_url, slack):
    mock = slack()
    d, cid, path = hooked(daemon_factory, pg_cluster, db_url, mock)
    body = (FIXTURES / "url_verification.json").read_bytes()
    status, headers, data = post(d, path, body, CONN_SECRET)
    assert status == 200, data
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(data) == {"challenge": fixture("url_verification.json")["challenge"]}
    # Signed with another secret: refused before the plugin sees it.
    assert post(d, path, body, "not-the-secret")[0] == 401
    # Slack's signing secret of the group verifies the connection-less route.
    status, _, data = post(d, "/webhooks/slack", body, SIGNING_SECRET)
    assert status == 200 and json.loads(data)["challenge"]
    time.sleep(0.5)
    assert deliveries(pg_cluster, db_url) == []
    assert signals(pg_cluster, db_url) == []


def test_stale_timestamp_refused(daemon_factory, pg_cluster, db_url, slack):
    mock = slack()
    d, cid, path = hooked(daemon_factory, pg_cluster, db_url, mock)
    ev = fixture("events/message.json")
    for ts in (int(time.time()) - 301, int(time.time()) + 301):
        status, _, data = post(d, path, ev, CONN_SECRET, ts=ts)
        assert status == 401, data
    assert post(d, path, ev, CONN_SECRET, ts=int(time.time()) - 250)[0] == 200
    wait_processed(pg_cluster, db_url, 1)


def test_retries_deduplicated_by_event_id(daemon_factory, pg_cluster, db_url, slack):
    mock = slack()
    mock.add_user("U123ABC456", "egon", display_name="Egon")
    d, cid, path = hooked(daemon_factory, pg_cluster, db_url, mock)
    ev = fixture("events/message.json")
    ev["event_id"] = "Ev0RETRY0001"
    status, _, data = post(d, path, ev, CONN_SECRET)
    # INGEST_WEBHOOK_ACK_EMPTY_200: Slack reads an empty 200 as a bare
    # acknowledgement (a body would be shown to the user of a command).
    assert status == 200 and not data, data
    for n, reason in ((1, "http_timeout"), (2, "http_timeout"), (3, "http_error")):
        status, _, data = post(d, path, ev, CONN_SECRET,
                               extra={"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": reason})
        assert status == 200 and not data, data  # an empty 200, as for the first
    # A retry whose first attempt never reached us (another event).
    other = fixture("events/message.json")
    other["event_id"], other["event"]["ts"] = "Ev0RETRY0002", "1355517524.000001"
    status, _, data = post(d, path, other, CONN_SECRET,
                           extra={"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_timeout"})
    assert status == 200, data
    wait_processed(pg_cluster, db_url, 2)
    assert [r[0] for r in deliveries(pg_cluster, db_url)] == ["Ev0RETRY0001", "Ev0RETRY0002"]
    rows = signals(pg_cluster, db_url, "message_posted")
    assert [r[1] for r in rows] == ["message_posted:C123ABC456:1355517523.000005",
                                    "message_posted:C123ABC456:1355517524.000001"]
    assert "slack_retry_num" not in rows[0][4]
    assert rows[1][4]["slack_retry_num"] == 2 and rows[1][4]["slack_retry_reason"] == \
        "http_timeout"


def test_answered_within_three_seconds_processing_after(daemon_factory, pg_cluster, db_url,
                                                        slack):
    mock = slack()
    mock.add_user("U123ABC456", "egon", display_name="Egon")
    mock.users_info_delay = 4.0  # the processing needs longer than Slack waits
    d, cid, path = hooked(daemon_factory, pg_cluster, db_url, mock)
    ev = fixture("events/message.json")
    t0 = time.monotonic()
    status, _, data = post(d, path, ev, CONN_SECRET)
    took = time.monotonic() - t0
    assert status == 200 and took < 3.0, (status, took)
    assert deliveries(pg_cluster, db_url)[0][0] == ev["event_id"]  # durable before the 2xx
    wait_processed(pg_cluster, db_url, 1, timeout=30)
    (row,) = signals(pg_cluster, db_url)
    assert row[2]["user_name"] == "Egon"
    assert mock.snapshot("users.info")[0].mono - t0 >= 0  # looked up after the answer


def test_slash_command_and_interactive_payload(daemon_factory, pg_cluster, db_url, slack):
    mock = slack()
    d, cid, path = hooked(daemon_factory, pg_cluster, db_url, mock)
    form = "application/x-www-form-urlencoded"
    # Slack's documented slash command example (api.slack.com/slash-commands).
    command = (b"token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&team_domain=example&"
               b"channel_id=C2147483705&channel_name=test&user_id=U2147483697&user_name=Steve&"
               b"command=/weather&text=94070")
    status, _, data = post(d, path, command, CONN_SECRET, content_type=form)
    assert status == 200 and not data, data
    # No event_id in a form body: the body's SHA-256 is the idempotency key.
    command_key = "sha256:" + hashlib.sha256(command).hexdigest()
    actions = fixture("block_actions.json")
    body = urlencode({"payload": json.dumps(actions)}).encode()
    status, _, data = post(d, path, body, CONN_SECRET, content_type=form)
    assert status == 200, data
    # A forged interaction is refused like any other request.
    assert post(d, path, body, "forged", content_type=form)[0] == 401
    wait_processed(pg_cluster, db_url, 2)
    assert not d.ctl_json("deadletters", check=True)
    assert command_key in [r[0] for r in deliveries(pg_cluster, db_url)]

    (cmd,) = signals(pg_cluster, db_url, "slash_command")
    assert cmd[1] == f"slash_command:{command_key}"  # no trigger_id in this example
    assert {k: cmd[2][k] for k in ("command", "text", "user_id", "user_name", "channel_id",
                                   "team_id", "trigger_id")} == \
        {"command": "/weather", "text": "94070", "user_id": "U2147483697", "user_name": "Steve",
         "channel_id": "C2147483705", "team_id": "T0001", "trigger_id": None}
    assert "token" not in cmd[3] and "gIkuvaNzQIHg97ATvDxqgjtO" not in json.dumps(cmd[2:5])

    (it,) = signals(pg_cluster, db_url, "interaction")
    kind, key, payload, raw, prov, occurred, conn, _ = it
    assert key == "interaction:block_actions:111.222.valid"
    assert payload == {
        "type": "block_actions", "team_id": "T111", "user_id": "W111",
        "user_name": "primary-owner", "channel_id": "C111", "message_ts": "111.222",
        "callback_id": None, "trigger_id": "111.222.valid",
        "response_url": "https://hooks.slack.com/actions/T111/111/random-value",
        "actions": [{"action_id": "a", "block_id": "b", "type": "button",
                     "value": "click_me_123", "action_ts": "1596530385.194939"}]}
    assert occurred.timestamp() == at("1596530385.194939")
    assert "token" not in raw and raw["actions"] == actions["actions"]
    assert prov["event_type"] == "block_actions" and prov["team_id"] == "T111"
    assert conn == cid


def test_connectionless_route(daemon_factory, pg_cluster, db_url, slack):
    """/webhooks/slack: the group's signing secret and webhook_tenant_id;
    no connection, so no users.info (no token to ask with)."""
    mock = slack()
    mock.add_user("U123ABC456", "egon", display_name="Egon")
    d = start(daemon_factory, mock)
    ev = fixture("events/reaction_added.json")
    status, _, data = post(d, "/webhooks/slack", ev, SIGNING_SECRET)
    assert status == 200, data
    wait_processed(pg_cluster, db_url, 1)
    (row,) = signals(pg_cluster, db_url)
    assert row[0] == "reaction_added" and row[2]["user_name"] is None
    assert row[6] is None and row[7] == TENANT
    assert deliveries(pg_cluster, db_url)[0][3] is None
    assert not mock.snapshot()
    assert post(d, "/webhooks/slack", ev, CONN_SECRET)[0] == 401
    unknown = str(uuid.uuid4())
    assert post(d, f"/webhooks/slack/{unknown}", ev, SIGNING_SECRET)[0] == 404


OTHER_TENANT = "00000000-0000-4000-8000-0000000051ac"


def test_app_request_url_routes_by_team(daemon_factory, pg_cluster, db_url, slack):
    """One Request URL for every workspace (api->connection_route): a
    delivery on /webhooks/slack belongs to the connection whose team_id it
    names, with that connection's tenant and token; an unknown team, or a
    team two connections claim, stays the app's."""
    mock = slack()
    mock.add_user("U123ABC456", "egon", display_name="Egon")
    d = start(daemon_factory, mock)
    token = mock.add_token()
    cid = add_connection(d, {"token": token}, auth_kind="token",
                         config={"team_id": "T123ABC456"}, tenant=OTHER_TENANT)
    ev = fixture("events/reaction_added.json")
    ev["event_id"] = "Ev0ROUTED001"
    assert post(d, "/webhooks/slack", ev, SIGNING_SECRET)[0] == 200
    lost = dict(ev, team_id="T999NOBODY", event_id="Ev0UNKNOWN01")
    lost["event"] = dict(ev["event"], event_ts="1360782804.083114")
    assert post(d, "/webhooks/slack", lost, SIGNING_SECRET)[0] == 200
    wait_processed(pg_cluster, db_url, 2)
    rows = {r[1]: r for r in signals(pg_cluster, db_url)}
    routed = next(r for r in rows.values() if r[6] is not None)
    assert routed[6] == cid and routed[7] == OTHER_TENANT
    assert routed[2]["user_name"] == "Egon"  # users.info with the connection's token
    assert [r.token for r in mock.snapshot("users.info")] == [token]
    others = [r for r in rows.values() if r is not routed]
    assert len(others) == 1 and others[0][6] is None and others[0][7] == TENANT

    # A second connection claiming the team makes it ambiguous: the app's.
    add_connection(d, {"token": mock.add_token()}, auth_kind="token",
                   config={"team_id": "T123ABC456"})
    again = dict(ev, event_id="Ev0AMBIGUOUS")
    again["event"] = dict(ev["event"], event_ts="1360782904.083115")
    assert post(d, "/webhooks/slack", again, SIGNING_SECRET)[0] == 200
    wait_processed(pg_cluster, db_url, 3)
    assert sum(1 for r in signals(pg_cluster, db_url) if r[6] is None) == 2


def test_unknown_events_kept(daemon_factory, pg_cluster, db_url, slack):
    """Events without a stable kind are stored as slack.<type>, never
    dropped; a message subtype without one as slack.message.<subtype>."""
    mock = slack()
    d, cid, path = hooked(daemon_factory, pg_cluster, db_url, mock)
    join = fixture("events/message.json")
    join["event_id"] = "Ev0JOIN00001"
    join["event"].update(subtype="channel_join", text="<@U123ABC456> has joined the channel")
    removed = fixture("events/reaction_added.json")
    removed["event_id"] = "Ev0REMOVED01"
    removed["event"]["type"] = "reaction_removed"
    for ev in (join, removed):
        assert post(d, path, ev, CONN_SECRET)[0] == 200
    wait_processed(pg_cluster, db_url, 2)
    rows = {r[0]: r for r in signals(pg_cluster, db_url)}
    assert set(rows) == {"slack.message.channel_join", "slack.reaction_removed"}
    assert rows["slack.message.channel_join"][1] == \
        "slack.message.channel_join:Ev0JOIN00001"
    assert rows["slack.reaction_removed"][2]["event"] == removed["event"]
    assert rows["slack.reaction_removed"][5].timestamp() == \
        at(removed["event"]["event_ts"])
