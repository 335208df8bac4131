"""The Slack connector (plugins/slack) against tests/integration/mock_slack.py.

Sync: channels (conversations.list) and messages (conversations.history per
channel, conversations.replies per thread) with cursor pagination
(response_metadata.next_cursor) and `oldest` as the incremental cursor;
user ids resolved to names through users.info, once per user (cache);
Slack's HTTP 200 {"ok": false} errors (invalid_auth, not_in_channel,
token_expired); the per-method tiers: a 429 with Retry-After on one method
holds only that method. Webhooks are in test_slack_webhooks.py, OAuth and
token rotation in test_slack_auth.py; the helpers here are shared.

Connections are created with scheduling disabled and synced with
`ingest-hostctl sync`, so every request at the mock belongs to a job the
test started.
"""
import json
import subprocess
import time

import pytest

from conftest import wait_for
from mock_slack import MockSlack, tsf
from store_helpers import DEFAULT_TENANT, q, readyz

TENANT = DEFAULT_TENANT
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # Slack's documented example secret
NO_SCHEDULE = {"schedule": {"*": {"enabled": False}}}
TERMINAL = ("succeeded", "dead", "failed")


# ----------------------------------------------------------------- helpers

def lc(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def slack_conf(base_url, extra="", **plugin):
    opts = {"api_base_url": base_url, "webhook_secret": SIGNING_SECRET,
            "webhook_tenant_id": TENANT, **plugin}
    body = " ".join(f"{k} = {lc(v)};" for k, v in opts.items())
    return (f'log_level = "debug";\njob_poll_ms = 100;\nbackfill_days = 3650;\n'
            f"cursor_lookback_s = 0;\n{extra}\nplugins = {{ slack = {{ {body} }}; }};\n")


def start(daemon_factory, mock, env=None, extra="", **plugin):
    d = daemon_factory.start(conf_text=slack_conf(mock.url, extra, **plugin), plugins=["slack"],
                             env=env)
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-3000:]}")
    listed = {p["name"]: p for p in d.ctl_json("list", check=True)}
    assert listed.get("slack", {}).get("state") == "loaded", listed.get("slack")
    return d


def add_connection(d, secrets_, auth_kind=None, config=None, tenant=TENANT):
    cfg = dict(NO_SCHEDULE, **(config or {}))
    cmd = [str(d.hostctl), "-s", d.sock, "connection-add", "slack", "--tenant", tenant,
           "--json", "--config-json", json.dumps(cfg)]
    if auth_kind:
        cmd += ["--auth-kind", auth_kind]
    r = subprocess.run(cmd, input=json.dumps(secrets_), capture_output=True, text=True,
                       env=d.env, timeout=30)
    assert r.returncode == 0, f"connection-add exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)["id"]


def token_connection(d, mock, config=None):
    token = mock.add_token()
    return add_connection(d, {"token": token}, auth_kind="token", config=config), token


def sync(pg, db_url, d, cid, *streams, timeout=60, expect="succeeded"):
    """One job per stream; waits; {stream: (state, attempts, last_error)}."""
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
    sql = ("SELECT kind, dedupe_key, payload, raw, provenance, occurred_at, "
           "connection_id::text, tenant_id::text FROM signals WHERE source = 'slack'")
    params = ()
    if kind:
        sql += " AND kind = %s"
        params = (kind,)
    return q(pg, db_url, sql + " ORDER BY dedupe_key", params)


def keys(pg, db_url):
    return {(r[0], r[1]) for r in signals(pg, db_url)}


def cursor(pg, db_url, cid, name):
    rows = q(pg, db_url, "SELECT value FROM cursors WHERE connection_id = %s AND stream = %s",
             (cid, name))
    return json.loads(rows[0][0]) if rows else None


def expected_message_keys(mock, channels, threads=True):
    """What a complete messages sync must have stored for `channels`."""
    out = set()
    for cid in channels:
        for m in mock.messages[cid]:
            for x in [m] + (m.replies if threads else []):
                if x.subtype not in (None, "thread_broadcast", "bot_message"):
                    continue
                out.add(("message_posted", f"message_posted:{cid}:{x.ts}"))
                if x.edited:
                    out.add(("message_edited",
                             f"message_edited:{cid}:{x.ts}:{x.edited['ts']}"))
    return out


@pytest.fixture
def slack():
    mocks = []

    def make(**kw):
        m = MockSlack(**kw).start()
        mocks.append(m)
        return m
    yield make
    for m in mocks:
        m.stop()


def workspace(mock, messages=25):
    """Three channels (one public the bot is not in), users, a thread with
    replies, an edit, a broadcast and a join message."""
    for uid, name, display in (("U01AAAA1", "ada", "Ada L."), ("U01BBBB2", "grace", ""),
                               ("U01CCCC3", "linus", "Linus")):
        mock.add_user(uid, name, display_name=display, real_name=name.title() + " Real")
    general = mock.add_channel("C01GENERAL", "general")
    secret = mock.add_channel("G01SECRET", "secret-plans", is_private=True)
    mock.add_channel("C01NOTIN", "random", is_member=False)
    users = ["U01AAAA1", "U01BBBB2", "U01CCCC3"]
    for i in range(messages):
        mock.post(general.id, users[i % 3], f"message {i}")
    parent = mock.messages[general.id][min(3, messages - 1)]
    for i in range(3):
        mock.reply(parent, users[(i + 1) % 3], f"reply {i}")
    mock.post(general.id, "U01AAAA1", "U01AAAA1 has joined the channel", subtype="channel_join")
    edited = mock.messages[general.id][min(5, messages - 1)]
    edited.edited = {"user": edited.user, "ts": mock.tick()}
    mock.post(secret.id, "U01BBBB2", "the plan")
    return general, secret, parent


# ------------------------------------------------------------------- tests

def test_descriptor_streams_auth_and_webhooks(daemon_factory, slack):
    mock = slack()
    d = start(daemon_factory, mock)
    status, _, body = d.http_get("/providers", auth=True)
    assert status == 200, body
    providers = json.loads(body)
    entry = next(p for p in (providers.get("providers") or providers.get("items") or providers)
                 if p["name"] == "slack")
    assert [s["name"] for s in entry["streams"]] == ["channels", "messages"]
    assert entry["auth"]["kind"] == "oauth2"
    assert "channels:history" in entry["auth"]["scopes"]
    assert entry["auth_kinds"] == ["oauth2", "token"]
    assert entry["webhooks"] and entry["sync"] and entry["connection_check"]


def test_channels_messages_threads_and_names(daemon_factory, pg_cluster, db_url, slack):
    mock = slack()
    general, secret, parent = workspace(mock)
    d = start(daemon_factory, mock, page_limit=10)
    cid, token = token_connection(d, mock)

    sync(pg_cluster, db_url, d, cid, "channels")
    chans = signals(pg_cluster, db_url, "channel_created")
    assert [r[1] for r in chans] == ["channel_created:C01GENERAL", "channel_created:C01NOTIN",
                                    "channel_created:G01SECRET"]
    p = {r[1]: r[2] for r in chans}["channel_created:G01SECRET"]
    assert p == {"team_id": None, "id": "G01SECRET", "name": "secret-plans",
                 "creator": "W012A3BCD", "created": 1449252889, "is_private": True}
    lists = mock.snapshot("conversations.list")
    assert [r.query.get("types") for r in lists] == ["public_channel,private_channel"]
    assert lists[0].query["limit"] == "10"

    sync(pg_cluster, db_url, d, cid, "messages")
    want = expected_message_keys(mock, [general.id, secret.id])
    got = keys(pg_cluster, db_url) - {(r[0], r[1]) for r in chans}
    assert got == want
    assert len(want) == 25 + 3 + 1 + 1  # posts, replies, the edit, the private one

    # History: 26 top-level messages at 10 a page = 3 pages, then the private
    # channel; the non-member channel is never asked for.
    hist = mock.snapshot("conversations.history")
    assert [r.query["channel"] for r in hist] == [general.id] * 3 + [secret.id]
    assert [("cursor" in r.query) for r in hist[:3]] == [False, True, True]
    assert all(r.status == 200 and r.token == token for r in hist)
    replies = mock.snapshot("conversations.replies")
    assert [(r.query["channel"], r.query["ts"]) for r in replies] == [(general.id, parent.ts)]

    # users.info once per user (the cache), names in the payloads.
    infos = mock.snapshot("users.info")
    assert sorted(r.query["user"] for r in infos) == ["U01AAAA1", "U01BBBB2", "U01CCCC3"]
    by_key = {r[1]: r for r in signals(pg_cluster, db_url)}
    first = mock.messages[general.id][0]
    row = by_key[f"message_posted:{general.id}:{first.ts}"]
    assert row[2] == {"team_id": None, "channel": general.id, "ts": first.ts, "thread_ts": None,
                      "user": "U01AAAA1", "user_name": "Ada L.", "bot_id": None,
                      "subtype": None, "text": "message 0", "reply_count": None,
                      "edited_by": None, "edited_ts": None, "is_reply": False}
    assert row[5].timestamp() == pytest.approx(tsf(first.ts), abs=1e-6)
    assert row[3]["text"] == "message 0" and row[4]["via"] == "sync"
    assert row[4]["stream"] == "messages" and row[6] == cid
    grace = by_key[f"message_posted:{general.id}:{mock.messages[general.id][1].ts}"][2]
    assert grace["user_name"] == "Grace Real"  # no display name: the real name
    reply = parent.replies[0]
    r = by_key[f"message_posted:{general.id}:{reply.ts}"][2]
    assert r["is_reply"] is True and r["thread_ts"] == parent.ts
    edited = mock.messages[general.id][5]
    e = by_key[f"message_edited:{general.id}:{edited.ts}:{edited.edited['ts']}"]
    assert e[2]["edited_ts"] == edited.edited["ts"]
    assert e[5].timestamp() == pytest.approx(tsf(edited.edited["ts"]), abs=1e-6)
    newest = max(tsf(m.ts) for m in mock.messages[general.id])
    assert cursor(pg_cluster, db_url, cid, f"messages:{general.id}") == {"ts": f"{newest:.6f}"}
    assert token not in d.log_text()

    # Second run: only what is new; oldest = the stored ts (lookback 0).
    mark = time.monotonic()
    new = mock.post(general.id, "U01CCCC3", "a new one")
    late = mock.reply(parent, "U01AAAA1", "a late reply")
    sync(pg_cluster, db_url, d, cid, "messages")
    hist = [r for r in mock.snapshot("conversations.history") if r.mono >= mark]
    assert [(r.query["channel"], r.query.get("oldest")) for r in hist][0] == \
        (general.id, f"{newest:.6f}")
    assert len(hist) == 2  # one page each channel
    new_keys = keys(pg_cluster, db_url) - got - {(r[0], r[1]) for r in chans}
    assert new_keys == {("message_posted", f"message_posted:{general.id}:{new.ts}")}
    # The late reply's parent is older than the cursor: Slack's history does
    # not list it, the Events API delivers it (README: limits).
    assert ("message_posted", f"message_posted:{general.id}:{late.ts}") not in new_keys
    assert not [r for r in mock.snapshot("users.info") if r.mono >= mark], "cache missed"


def test_configured_channels_and_not_in_channel(daemon_factory, pg_cluster, db_url, slack):
    mock = slack()
    general, secret, _ = workspace(mock, messages=4)
    d = start(daemon_factory, mock)
    cid, _ = token_connection(d, mock, config={"channels": ["C01NOTIN", general.id]})
    out = sync(pg_cluster, db_url, d, cid, "messages")
    assert out["messages"][0] == "succeeded"
    assert not mock.snapshot("conversations.list"), "configured channels need no listing"
    hist = mock.snapshot("conversations.history")
    assert [(r.query["channel"], r.error) for r in hist] == [("C01NOTIN", "not_in_channel"),
                                                              (general.id, "")]
    assert keys(pg_cluster, db_url) == expected_message_keys(mock, [general.id])
    assert "channel C01NOTIN cannot be read" in d.log_text()


def test_invalid_auth_is_final(daemon_factory, pg_cluster, db_url, slack):
    mock = slack()
    workspace(mock, messages=2)
    d = start(daemon_factory, mock)
    cid = add_connection(d, {"token": "xoxb-not-a-real-token"}, auth_kind="token")
    out = sync(pg_cluster, db_url, d, cid, "channels", expect=None)
    assert out["channels"][0] == "dead", out
    # One call per attempt, each answered HTTP 200 with ok:false (the host
    # retries a job that returned INGEST_EAUTH like any failure).
    calls = mock.snapshot("conversations.list")
    assert [(r.status, r.error) for r in calls] == [(200, "invalid_auth")] * out["channels"][1]
    assert "invalid_auth" in d.log_text()
    assert not signals(pg_cluster, db_url)


def test_rate_limit_holds_only_its_method(daemon_factory, pg_cluster, db_url, slack):
    """A 429 + Retry-After on conversations.history holds that method (the
    host's bucket for it) while conversations.list goes on, and the held
    call is retried after Retry-After; nothing is lost."""
    mock = slack()
    general, secret, _ = workspace(mock, messages=30)
    for i in range(8):
        mock.add_channel(f"C02EXTRA{i:02d}", f"extra-{i}")
    d = start(daemon_factory, mock, page_limit=5, env={"INGEST_WORKERS": 4})
    cid, _ = token_connection(d, mock, config={"channels": [general.id]})
    mock.fail_next("conversations.history",
                   (429, {"Retry-After": "3"}, {"ok": False, "error": "ratelimited"}))
    ids = [j["id"] for j in d.ctl_json("sync", cid, "--stream", "messages", check=True)]
    wait_for(lambda: mock.snapshot("conversations.history"), 10)
    held = time.monotonic()
    sync(pg_cluster, db_url, d, cid, "channels", timeout=30)
    lists = mock.snapshot("conversations.list")
    assert len(lists) == 3  # 11 channels, 5 a page
    assert lists[0].mono - held < 2.5, "conversations.list waited for history's Retry-After"
    # Its own bucket meters it at Tier 2 (20/min) times the host's 70 % share.
    gaps = [b.mono - a.mono for a, b in zip(lists, lists[1:])]
    assert all(g >= 3.0 for g in gaps), gaps

    def done():
        rows = q(pg_cluster, db_url, "SELECT state FROM sync_jobs WHERE id = %s", (ids[0],))
        return rows and rows[0][0] in TERMINAL and rows[0][0]
    assert wait_for(done, 60) == "succeeded"
    hist = mock.snapshot("conversations.history")
    assert hist[0].status == 429 and hist[1].status == 200
    assert hist[1].mono - hist[0].mono >= 2.9, "Retry-After not honoured"
    assert lists[0].mono < hist[1].mono, "the list call came only after history's hold"
    assert hist[1].query.get("cursor") is None  # the same first page again
    msg_keys = {k for k in keys(pg_cluster, db_url) if k[0] != "channel_created"}
    assert msg_keys == expected_message_keys(mock, [general.id])


def test_walk_interrupted_by_long_rate_limit_resumes(daemon_factory, pg_cluster, db_url, slack):
    """A Retry-After too long to hold a worker ends the job as rate limited
    (rescheduled, not failed); the pages already read are committed with a
    cursor that says where the walk was, and the next run resumes there."""
    mock = slack()
    general, _, _ = workspace(mock, messages=30)
    d = start(daemon_factory, mock, page_limit=10, include_threads=False)
    cid, _ = token_connection(d, mock, config={"channels": [general.id]})
    first_page = mock.m_conversations_history({"channel": general.id, "limit": "10"},
                                              next(iter(mock.tokens.values())))[2]
    mock.fail_next("conversations.history", (200, {}, first_page),
                   (429, {"Retry-After": "3600"}, {"ok": False, "error": "ratelimited"}))
    ids = [j["id"] for j in d.ctl_json("sync", cid, "--stream", "messages", check=True)]

    def settled():
        rows = q(pg_cluster, db_url, "SELECT state, attempts FROM sync_jobs WHERE id = %s",
                 (ids[0],))
        return rows and rows[0][0] != "running" and len(mock.snapshot(
            "conversations.history")) >= 2 and rows[0]
    state = wait_for(settled, 30)
    assert state[0] not in ("dead", "failed"), state
    c = cursor(pg_cluster, db_url, cid, f"messages:{general.id}")
    assert c and c.get("next"), c  # mid-walk
    got = {k for k in keys(pg_cluster, db_url)}
    assert got == {("message_posted", f"message_posted:{general.id}:{m['ts']}")
                   for m in first_page["messages"] if "subtype" not in m}  # page 1, committed
    # The host holds the method's bucket for the hour in memory; a restarted
    # daemon on the same database runs the job now and resumes the walk.
    d.stop()
    d = start(daemon_factory, mock, page_limit=10, include_threads=False,
              env={"INGEST_CRYPTO_KEY": d.env["INGEST_CRYPTO_KEY"]})
    q(pg_cluster, db_url, "UPDATE sync_jobs SET run_after = now() WHERE id = %s", (ids[0],))
    try:
        wait_for(lambda: q(pg_cluster, db_url, "SELECT state FROM sync_jobs WHERE id = %s",
                           (ids[0],))[0][0] == "succeeded", 30)
    except BaseException:
        print(q(pg_cluster, db_url, "SELECT state, attempts, run_after, now(), last_error "
                                    "FROM sync_jobs"))
        raise
    hist = [r for r in mock.snapshot("conversations.history") if r.status == 200]
    assert hist[1].query.get("cursor") == c["next"]  # resumed, not restarted
    assert keys(pg_cluster, db_url) == expected_message_keys(mock, [general.id], threads=False)
    assert not mock.snapshot("conversations.replies")  # include_threads = false
