"""Webhook ingress: routing, verification schemes, durable inbox, idempotency,
handshakes, dispatch to the plugin, retries, dead letters and replay.

The fixture plugins (tests/plugins/hook_plugin.c) are built once per scheme:
hook_hmac, hook_linear, hook_slack, hook_stamped, hook_token, hook_callback.
Each turns a JSON body into one signal "hook.<event>" keyed by the delivery's
idempotency key.
"""
import hashlib
import hmac
import http.client
import json
import socket
import threading
import time
import uuid

import pytest

from conftest import wait_for
from store_helpers import connection_add, q, readyz

TENANT = "0b9d6c1e-3a2f-4e5d-8c7b-6a5f4e3d2c1b"
SECRET = "wh-secret-0123456789abcdef"
OLD_SECRET = "wh-old-secret-fedcba9876543210"
ALL_HOOKS = ["hook_hmac", "hook_linear", "hook_slack", "hook_stamped", "hook_token",
             "hook_callback"]


def hook_conf(poll_ms=100, max_attempts=5, extra="", **groups):
    """Config with every hook plugin's secret and tenant; groups add keys."""
    parts = []
    for name in ALL_HOOKS:
        items = {"webhook_secret": SECRET, "webhook_tenant_id": TENANT}
        items.update(groups.get(name, {}))
        body = " ".join(f"{k} = {json.dumps(v)};" for k, v in items.items())
        parts.append(f"{name} = {{ {body} }};")
    return (f'log_level = "debug";\njob_poll_ms = {poll_ms};\n'
            f"webhook_max_attempts = {max_attempts};\n{extra}\n"
            f"plugins = {{ {' '.join(parts)} }};\n")


def start(daemon_factory, conf=None, plugins=ALL_HOOKS, **kw):
    d = daemon_factory.start(conf_text=conf or hook_conf(), plugins=list(plugins), **kw)
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-3000:]}")
    return d


def hexmac(secret, data):
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def body_of(event="push", **fields):
    return json.dumps({"event": event, **fields}).encode()


def post(d, path, body, headers=None, content_type="application/json"):
    h = {"Content-Type": content_type} if content_type else {}
    h.update(headers or {})
    status, hdrs, data = d.http_post(path, body=body, headers=h)
    return status, hdrs, data


def post_hmac(d, body, secret=SECRET, delivery=None, path="/webhooks/hook_hmac", extra=None):
    headers = {"X-Hook-Signature": "sha256=" + hexmac(secret, body)}
    if delivery:
        headers["X-Hook-Delivery"] = delivery
    headers.update(extra or {})
    return post(d, path, body, headers)


def problem(status_body):
    return json.loads(status_body)


def deliveries(pg, db_url, provider=None):
    sql = "SELECT delivery_key, state, attempts, tenant_id::text, connection_id::text" \
          " FROM webhook_deliveries"
    if provider:
        return q(pg, db_url, sql + " WHERE provider = %s ORDER BY received_at", (provider,))
    return q(pg, db_url, sql + " ORDER BY received_at")


def signals(pg, db_url, source):
    return q(pg, db_url, "SELECT kind, dedupe_key, tenant_id::text, connection_id::text"
             " FROM signals WHERE source = %s ORDER BY created_at", (source,))


def metric(d, name, **labels):
    text = d.http_get("/metrics")[2].decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{" + want + "}") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_processed(pg, db_url, provider, n, timeout=15):
    wait_for(lambda: sum(1 for r in deliveries(pg, db_url, provider) if r[1] == "processed") >= n,
             timeout, msg=f"{provider}: {n} deliveries never processed: "
             f"{deliveries(pg, db_url, provider)}")


# ------------------------------------------------------------------ routing

def test_routing_limits_and_content_types(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, hook_conf(extra="max_body_bytes = 4096;"),
              plugins=["hook_hmac", "good"])
    s, h, b = post(d, "/webhooks/nope", b"{}")
    assert s == 404 and h["Content-Type"] == "application/problem+json"
    assert problem(b)["code"] == "unknown_provider"
    s, _, b = post(d, "/webhooks/good", b"{}")  # loaded, but takes no webhooks
    assert s == 404 and problem(b)["code"] == "webhooks_not_supported"
    s, _, b = post(d, "/webhooks/hook_hmac/not-a-uuid", b"{}")
    assert s == 404 and problem(b)["code"] == "not_found"
    s, h, b = d.http_get("/webhooks/hook_hmac")
    assert s == 405 and h["Allow"] == "POST"
    big = body_of(pad="x" * 5000)
    s, h, b = post_hmac(d, big)
    assert s == 413 and h["Content-Type"] == "application/problem+json", b
    s, _, b = post(d, "/webhooks/hook_hmac", b"<xml/>", content_type="application/xml",
                   headers={"X-Hook-Signature": "sha256=" + hexmac(SECRET, b"<xml/>")})
    assert s == 415 and problem(b)["code"] == "unsupported_media_type"
    s, _, b = post(d, "/webhooks/hook_hmac", b"{}", content_type="text/html")
    assert s == 415
    assert q(pg_cluster, db_url, "SELECT count(*) FROM webhook_deliveries")[0][0] == 0
    assert metric(d, "ingest_webhooks_rejected_total", provider="hook_hmac",
                  reason="too_large") == 1


def test_unknown_connection_is_404_and_failed_plugin_is_503(daemon_factory, tmp_path):
    d = start(daemon_factory, plugins=["hook_hmac", ("hook_hmac", "ingest_hook_token.so")])
    # ingest_hook_token.so holds the hook_hmac descriptor: refused (name mismatch).
    s, h, b = post(d, "/webhooks/hook_token", b"{}", headers={"X-Hook-Token": SECRET})
    assert s == 503 and int(h["Retry-After"]) > 0, b
    body = body_of()
    s, _, b = post_hmac(d, body, path=f"/webhooks/hook_hmac/{uuid.uuid4()}")
    assert s == 404 and problem(b)["code"] == "unknown_connection"


# ------------------------------------------------------------ verification

def hmac_variants(body):
    good = "sha256=" + hexmac(SECRET, body)
    return {
        "valid": ({"X-Hook-Signature": good}, body, 202),
        "uppercase hex": ({"X-Hook-Signature": "sha256=" + hexmac(SECRET, body).upper()}, body,
                          202),
        "wrong secret": ({"X-Hook-Signature": "sha256=" + hexmac("nope", body)}, body, 401),
        "missing header": ({}, body, 401),
        "malformed header": ({"X-Hook-Signature": "sha256=zz"}, body, 401),
        "no prefix": ({"X-Hook-Signature": hexmac(SECRET, body)}, body, 401),
        "body modified": ({"X-Hook-Signature": good}, body[:-2] + b" }", 401),
    }


@pytest.mark.parametrize("case", list(hmac_variants(b"x")))
def test_hmac_scheme(case, daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, plugins=["hook_hmac"])
    body = body_of(case=case)
    headers, sent, expect = hmac_variants(body)[case]
    s, h, b = post(d, "/webhooks/hook_hmac", sent, headers)
    assert s == expect, b
    if expect == 401:
        assert h["Content-Type"] == "application/problem+json"
        assert q(pg_cluster, db_url, "SELECT count(*) FROM webhook_deliveries")[0][0] == 0
        assert SECRET not in d.log_text()
        reason = problem(b)["code"]
        assert metric(d, "ingest_webhooks_rejected_total", provider="hook_hmac",
                      reason=reason) == 1
    else:
        reply = json.loads(b)
        assert reply["status"] == "accepted"
        stored = q(pg_cluster, db_url, "SELECT body FROM webhook_deliveries")
        assert [bytes(r[0]) for r in stored] == [sent]  # byte for byte
        wait_processed(pg_cluster, db_url, "hook_hmac", 1)
        assert signals(pg_cluster, db_url, "hook_hmac") == [
            ("hook.push", reply["idempotency_key"], TENANT, None)]


def test_rotation_two_active_secrets(daemon_factory):
    conf = hook_conf(hook_hmac={"webhook_secret_previous": OLD_SECRET})
    d = start(daemon_factory, conf, plugins=["hook_hmac"])
    assert post_hmac(d, body_of(n=1), secret=SECRET)[0] == 202
    assert post_hmac(d, body_of(n=2), secret=OLD_SECRET)[0] == 202
    assert post_hmac(d, body_of(n=3), secret="neither")[0] == 401


def slack_headers(body, ts=None, secret=SECRET):
    ts = str(int(time.time()) if ts is None else ts)
    base = b"v0:" + ts.encode() + b":" + body
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + hexmac(secret, base)}


def test_slack_v0_scheme_and_handshake(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, plugins=["hook_slack"])
    path = "/webhooks/hook_slack"
    body = body_of("message", event_id="Ev0001")
    assert post(d, path, body, slack_headers(body))[0] == 202
    # event_id is the idempotency key: a retry with a new timestamp is a duplicate
    s, _, b = post(d, path, body, slack_headers(body, ts=int(time.time()) + 1))
    assert s == 200 and json.loads(b) == {"status": "duplicate", "idempotency_key": "Ev0001"}
    for ts, code in ((int(time.time()) - 400, "stale"), (int(time.time()) + 400, "future")):
        s, _, b = post(d, path, body, slack_headers(body, ts=ts))
        assert s == 401 and problem(b)["code"] == code
    s, _, b = post(d, path, body, {"X-Slack-Signature": "v0=" + "0" * 64})
    assert s == 401 and problem(b)["code"] == "missing_header"
    s, _, b = post(d, path, body, slack_headers(body, secret="wrong"))
    assert s == 401 and problem(b)["code"] == "bad_signature"
    challenge = {"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    cb = json.dumps(challenge).encode()
    s, h, b = post(d, path, cb, slack_headers(cb))
    assert s == 200 and b.decode() == challenge["challenge"]
    assert h["Content-Type"].startswith("text/plain")
    # an unsigned handshake is refused like anything else
    assert post(d, path, cb, slack_headers(cb, secret="wrong"))[0] == 401
    wait_processed(pg_cluster, db_url, "hook_slack", 1)
    assert [r[0] for r in deliveries(pg_cluster, db_url, "hook_slack")] == ["Ev0001"]


def test_timestamped_hmac_scheme(daemon_factory):
    d = start(daemon_factory, plugins=["hook_stamped"])
    path = "/webhooks/hook_stamped"
    body = body_of()

    def headers(ts, secret=SECRET, data=body):
        sig = hexmac(secret, str(ts).encode() + b"." + data)
        return {"X-Hook-Timestamp": str(ts), "X-Hook-Signature": sig}

    now = int(time.time())
    assert post(d, path, body, headers(now))[0] == 202
    assert post(d, path, body_of(n=2), headers(now * 1000, data=body_of(n=2)))[0] == 202  # ms
    for ts, code in ((now - 200, "stale"), (now + 200, "future")):
        s, _, b = post(d, path, body, headers(ts))
        assert s == 401 and problem(b)["code"] == code
    s, _, b = post(d, path, body, {"X-Hook-Signature": headers(now)["X-Hook-Signature"]})
    assert s == 401 and problem(b)["code"] == "missing_header"
    s, _, b = post(d, path, body, {**headers(now), "X-Hook-Timestamp": "soon"})
    assert s == 401 and problem(b)["code"] == "malformed"
    s, _, b = post(d, path, body + b" ", headers(now))
    assert s == 401 and problem(b)["code"] == "bad_signature"


def test_linear_body_timestamp(daemon_factory):
    d = start(daemon_factory, plugins=["hook_linear"])
    path = "/webhooks/hook_linear"

    def send(ts_ms, secret=SECRET):
        body = json.dumps({"event": "Issue", "webhookTimestamp": ts_ms}).encode()
        return post(d, path, body, {"Linear-Signature": hexmac(secret, body)})

    now_ms = int(time.time() * 1000)
    assert send(now_ms)[0] == 202
    s, _, b = send(now_ms - 90_000)
    assert s == 401 and problem(b)["code"] == "stale"
    s, _, b = send(now_ms + 90_000)
    assert s == 401 and problem(b)["code"] == "future"
    assert send(now_ms, secret="wrong")[0] == 401


def test_shared_token_scheme(daemon_factory):
    d = start(daemon_factory, plugins=["hook_token"])
    path = "/webhooks/hook_token"
    assert post(d, path, body_of(), {"X-Hook-Token": SECRET})[0] == 202
    s, _, b = post(d, path, body_of(n=2), {"X-Hook-Token": SECRET + "x"})
    assert s == 401 and problem(b)["code"] == "bad_signature"
    s, _, b = post(d, path, body_of(n=3))
    assert s == 401 and problem(b)["code"] == "missing_header"


def test_unknown_ack_style_falls_back_to_the_default_reply(daemon_factory, pg_cluster, db_url):
    # hook_ackx is hook_token asking for a webhook_ack value of a later minor:
    # it is loaded, warned about, and its deliveries get the default 202.
    conf = hook_conf().replace("plugins = { ", "plugins = { hook_ackx = { webhook_secret = "
                               f'"{SECRET}"; webhook_tenant_id = "{TENANT}"; }}; ', 1)
    d = start(daemon_factory, conf=conf, plugins=["hook_ackx"])
    status, hdrs, data = post(d, "/webhooks/hook_ackx", body_of(n=1), {"X-Hook-Token": SECRET})
    assert status == 202, data
    ack = json.loads(data)
    assert ack["status"] == "accepted", ack
    assert q(pg_cluster, db_url, "SELECT provider FROM webhook_deliveries WHERE id = %s",
             (ack["delivery_id"],)) == [("hook_ackx",)]
    assert "webhook_ack 6 is not known to this host" in d.log_text()


def test_plugin_callback_scheme(daemon_factory):
    d = start(daemon_factory, plugins=["hook_callback"])
    path = "/webhooks/hook_callback"
    body = body_of()
    proof = hashlib.sha256(SECRET.encode()).hexdigest() + ":" + hashlib.sha256(body).hexdigest()
    assert post(d, path, body, {"X-Hook-Proof": proof})[0] == 202
    assert post(d, path, body + b" ", {"X-Hook-Proof": proof})[0] == 401
    assert post(d, path, body)[0] == 401


def test_no_secret_configured_is_503_not_401(daemon_factory):
    conf = 'log_level = "debug";\nplugins = { hook_hmac = { }; };\n'
    d = start(daemon_factory, conf, plugins=["hook_hmac"])
    s, h, b = post_hmac(d, body_of())
    assert s == 503 and problem(b)["code"] == "no_secret" and "Retry-After" in h


# ------------------------------------------------------------ connections

def test_per_connection_secret_and_tenant(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, plugins=["hook_hmac"])
    tenant = str(uuid.uuid4())
    conn_secret = "per-connection-" + uuid.uuid4().hex
    cid = connection_add(d, "hook_hmac", {"webhook_secret": conn_secret}, tenant=tenant)
    path = f"/webhooks/hook_hmac/{cid}"
    s, _, b = post_hmac(d, body_of(n=1), secret=conn_secret, path=path)
    assert s == 202, b
    # the provider-level secret does not open a connection's endpoint
    assert post_hmac(d, body_of(n=2), secret=SECRET, path=path)[0] == 401
    wait_processed(pg_cluster, db_url, "hook_hmac", 1)
    rows = signals(pg_cluster, db_url, "hook_hmac")
    assert [(r[2], r[3]) for r in rows] == [(tenant, cid)]
    # the sender's address reaches the plugin (ingest_delivery.remote_addr)
    assert q(pg_cluster, db_url, "SELECT remote_addr FROM webhook_deliveries") == [("127.0.0.1",)]
    prov = q(pg_cluster, db_url, "SELECT provenance FROM signals WHERE source = 'hook_hmac'")
    assert prov[0][0]["remote_addr"] == "127.0.0.1", prov
    # the same delivery id on another connection is not a duplicate (scoped keys)
    other = connection_add(d, "hook_hmac", {"webhook_secret": conn_secret}, tenant=tenant)
    for p in (path, f"/webhooks/hook_hmac/{other}"):
        s, _, _ = post_hmac(d, body_of(n=3), secret=conn_secret, path=p, delivery="same-id")
        assert s == 202
    assert conn_secret not in d.log_text()


# ------------------------------------------------------------ idempotency

def test_duplicates_by_delivery_id_and_by_body(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, plugins=["hook_hmac"])
    body = body_of(n=1)
    first = post_hmac(d, body, delivery="gh-1")
    assert first[0] == 202
    again = post_hmac(d, body_of(n=999), delivery="gh-1")  # same id, other body
    assert again[0] == 200 and json.loads(again[2])["status"] == "duplicate"
    idem = post_hmac(d, body_of(n=2), extra={"Idempotency-Key": "idem-7"})
    assert idem[0] == 202 and json.loads(idem[2])["idempotency_key"] == "idem-7"
    assert post_hmac(d, body_of(n=3), extra={"Idempotency-Key": "idem-7"})[0] == 200
    plain = body_of(n=4)
    r1 = post_hmac(d, plain)
    assert r1[0] == 202
    key = json.loads(r1[2])["idempotency_key"]
    assert key == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert post_hmac(d, plain)[0] == 200
    # many concurrent redeliveries of one id: exactly one 202
    results = []

    def fire():
        results.append(post_hmac(d, body_of(n=5), delivery="burst")[0])

    threads = [threading.Thread(target=fire) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] * 19 + [202]
    wait_processed(pg_cluster, db_url, "hook_hmac", 4)
    time.sleep(0.5)
    keys = [r[1] for r in signals(pg_cluster, db_url, "hook_hmac")]
    assert sorted(keys) == sorted(["gh-1", "idem-7", key, "burst"])
    assert metric(d, "ingest_webhooks_duplicates_total", provider="hook_hmac") == 22


# ------------------------------------------------------- dispatch failures

def test_dead_letter_after_attempts_then_replay(daemon_factory, pg_cluster, db_url, tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("1")
    conf = hook_conf(max_attempts=2, hook_hmac={"fail_flag_file": str(flag)})
    d = start(daemon_factory, conf, plugins=["hook_hmac"])
    assert post_hmac(d, body_of(), delivery="doomed")[0] == 202
    # attempt 1 fails, the retry waits ~1 s (±25 %), attempt 2 fails: dead
    wait_for(lambda: [r[1:3] for r in deliveries(pg_cluster, db_url)] == [("dead", 2)], 15,
             msg=f"never dead: {deliveries(pg_cluster, db_url)}")
    dl = d.ctl_json("deadletters", check=True)
    assert len(dl) == 1 and dl[0]["kind"] == "webhook" and dl[0]["attempts"] == 2
    assert "status -4" in dl[0]["error"] and dl[0]["payload"]["delivery_key"] == "doomed"
    assert metric(d, "ingest_webhooks_dead_lettered_total", provider="hook_hmac") == 1
    assert metric(d, "ingest_webhooks_failed_total", provider="hook_hmac") == 1
    assert signals(pg_cluster, db_url, "hook_hmac") == []
    flag.unlink()
    r = d.ctl("replay", dl[0]["id"], check=True)
    assert "replayed 1" in r.stdout
    wait_processed(pg_cluster, db_url, "hook_hmac", 1)
    assert [r[1] for r in signals(pg_cluster, db_url, "hook_hmac")] == ["doomed"]
    assert d.ctl_json("deadletters", check=True) == []
    assert len(d.ctl_json("deadletters", "--all", check=True)) == 1
    assert d.ctl("replay", dl[0]["id"]).returncode == 1  # already replayed
    assert d.ctl("replay").returncode == 2  # needs an id or --all


def test_rejected_record_is_a_dead_letter_committed_with_the_delivery(daemon_factory, pg_cluster,
                                                                       db_url):
    d = start(daemon_factory, plugins=["hook_hmac"])
    assert post_hmac(d, body_of(reject="no usable event in it"), delivery="odd")[0] == 202
    assert post_hmac(d, body_of(n=1), delivery="fine")[0] == 202
    wait_processed(pg_cluster, db_url, "hook_hmac", 2)
    assert [r[1] for r in signals(pg_cluster, db_url, "hook_hmac")] == ["fine"]
    dl = d.ctl_json("deadletters", check=True)
    assert len(dl) == 1 and dl[0]["kind"] == "record", dl
    assert dl[0]["error"] == "no usable event in it"
    assert dl[0]["payload"] == {"why": "the body asked for it"}
    ref = q(pg_cluster, db_url, "SELECT d.delivery_key FROM dead_letters l"
                                " JOIN webhook_deliveries d ON d.id = l.ref_id")
    assert ref == [("odd",)]
    assert metric(d, "ingest_records_rejected_total", plugin="hook_hmac") == 1
    # a record is not replayed: the source has to be fixed
    assert "replayed 0" in d.ctl("replay", "--all", check=True).stdout


def test_pending_deliveries_survive_a_restart(daemon_factory, pg_cluster, db_url, tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("1")
    conf = hook_conf(max_attempts=50, hook_hmac={"fail_flag_file": str(flag)})
    d = start(daemon_factory, conf, plugins=["hook_hmac"])
    for i in range(5):
        assert post_hmac(d, body_of(n=i), delivery=f"r{i}")[0] == 202
    d.stop()
    flag.unlink()
    d2 = start(daemon_factory, conf, plugins=["hook_hmac"])
    wait_processed(pg_cluster, db_url, "hook_hmac", 5, timeout=30)
    assert sorted(r[1] for r in signals(pg_cluster, db_url, "hook_hmac")) == \
        [f"r{i}" for i in range(5)]
    assert d2.alive()


def dispatched(d, via):
    return metric(d, "ingest_webhook_deliveries_dispatched_total", via=via)


def test_deliveries_reach_the_workers_without_a_claim_while_there_is_room(daemon_factory,
                                                                          pg_cluster, db_url):
    d = start(daemon_factory, plugins=["hook_hmac"])
    for i in range(5):
        assert post_hmac(d, body_of(n=i), delivery=f"direct{i}")[0] == 202
    wait_processed(pg_cluster, db_url, "hook_hmac", 5)
    assert [r[2] for r in deliveries(pg_cluster, db_url)] == [1] * 5  # one attempt each
    assert dispatched(d, "inbox") == 5 and dispatched(d, "claim") == 0
    assert sorted(r[1] for r in signals(pg_cluster, db_url, "hook_hmac")) == \
        [f"direct{i}" for i in range(5)]


def post_concurrently(d, prefix, threads, each):
    """Statuses of threads x each signed deliveries, keys prefix{thread}-{i}."""
    statuses = []

    def send(t):
        for i in range(each):
            statuses.append(post_hmac(d, body_of(n=i), delivery=f"{prefix}{t}-{i}")[0])

    workers = [threading.Thread(target=send, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return statuses


def test_concurrent_deliveries_share_inbox_commits_on_named_connections(daemon_factory,
                                                                         pg_cluster, db_url):
    d = start(daemon_factory, plugins=["hook_hmac"])
    assert post_concurrently(d, "share", 8, 25) == [202] * 200
    stored = metric(d, "ingest_webhook_inbox_batch_size_sum")
    commits = metric(d, "ingest_webhook_inbox_batch_size_count")
    assert stored == 200
    assert 0 < commits < 200, "no two concurrent deliveries shared a commit"
    assert metric(d, "ingest_webhook_inbox_commit_seconds_count") == commits
    time.sleep(0.1)  # a quiet moment: the next delivery goes alone
    assert post_hmac(d, body_of(n=0), delivery="alone")[0] == 202
    assert metric(d, "ingest_webhook_inbox_batch_size_sum") == 201
    assert metric(d, "ingest_webhook_inbox_batch_size_count") == commits + 1
    names = {r[0] for r in q(pg_cluster, db_url, "SELECT application_name FROM pg_stat_activity"
                                                 " WHERE application_name LIKE %s", ("ingest-hostd%",))}
    assert names == {"ingest-hostd", "ingest-hostd inbox"}


def test_deliveries_beyond_the_workers_room_wait_in_the_table(daemon_factory, pg_cluster, db_url):
    # one worker: room for 256 deliveries in flight (2 chunks of 128), each
    # taking 20 ms
    conf = hook_conf(hook_hmac={"handle_sleep_ms": 20})
    d = start(daemon_factory, conf, plugins=["hook_hmac"], env={"INGEST_WORKERS": "1"})
    assert post_concurrently(d, "busy", 8, 40) == [202] * 320
    wait_processed(pg_cluster, db_url, "hook_hmac", 320, timeout=30)
    assert dispatched(d, "inbox") + dispatched(d, "claim") == 320
    assert dispatched(d, "claim") > 0, "every delivery found room"
    assert {r[2] for r in deliveries(pg_cluster, db_url)} == {1}
    assert len(signals(pg_cluster, db_url, "hook_hmac")) == 320


def test_a_delivery_whose_host_died_while_processing_it_is_processed_again(daemon_factory,
                                                                           pg_cluster, db_url):
    slow = hook_conf(extra="job_lease_s = 2;", hook_hmac={"handle_sleep_ms": 60000})
    d = start(daemon_factory, slow, plugins=["hook_hmac"])
    assert post_hmac(d, body_of(), delivery="orphan")[0] == 202
    wait_for(lambda: [r[1:3] for r in deliveries(pg_cluster, db_url)] == [("processing", 1)], 10,
             msg=f"never processing: {deliveries(pg_cluster, db_url)}")
    d.kill()
    d2 = start(daemon_factory, hook_conf(extra="job_lease_s = 2;"), plugins=["hook_hmac"])
    wait_processed(pg_cluster, db_url, "hook_hmac", 1, timeout=20)
    assert [r[1:3] for r in deliveries(pg_cluster, db_url)] == [("processed", 2)]
    assert [r[1] for r in signals(pg_cluster, db_url, "hook_hmac")] == ["orphan"]
    assert dispatched(d2, "claim") == 1
    assert d2.alive()


def uuid7_at(seconds_ago):
    """A UUIDv7 (as the host makes them) whose time is that many seconds ago."""
    ms = int((time.time() - seconds_ago) * 1000)
    return str(uuid.UUID(hex=f"{ms:012x}7abc8def{uuid.uuid4().hex[:12]}"))


def test_processed_deliveries_past_the_retention_are_removed(daemon_factory, pg_cluster, db_url):
    conf = hook_conf(extra="webhook_retention_days = 7;")
    d = start(daemon_factory, conf, plugins=["hook_hmac"])
    for key in ("old", "recent", "kept-by-letter", "dead"):
        body = body_of(reject="letter") if key == "kept-by-letter" else body_of(k=key)
        assert post_hmac(d, body, delivery=key)[0] == 202
    wait_processed(pg_cluster, db_url, "hook_hmac", 4)
    d.stop()
    eight_days = 8 * 86400
    for key in ("old", "kept-by-letter", "dead"):
        old_id = uuid7_at(eight_days)
        q(pg_cluster, db_url, "UPDATE dead_letters SET ref_id = %s WHERE ref_id ="
          " (SELECT id FROM webhook_deliveries WHERE delivery_key = %s)", (old_id, key))
        q(pg_cluster, db_url, "UPDATE webhook_deliveries SET id = %s,"
          " received_at = now() - interval '8 days', processed_at = now() - interval '8 days'"
          " WHERE delivery_key = %s", (old_id, key))
    q(pg_cluster, db_url,
      "UPDATE webhook_deliveries SET state = 'dead' WHERE delivery_key = 'dead'")

    d = start(daemon_factory, conf, plugins=["hook_hmac"])
    d.wait_for_log(lambda e: "housekeeping round done" in e.get("msg", ""), timeout=15)
    assert metric(d, "ingest_webhook_deliveries_purged_total") == 1
    assert sorted(r[0] for r in deliveries(pg_cluster, db_url)) == \
        ["dead", "kept-by-letter", "recent"]
    assert "removed 1 processed deliveries older than 7 day(s)" in d.log_text()
    # the key outlives the delivery: a late redelivery is still a duplicate
    assert post_hmac(d, body_of(k="old"), delivery="old")[0] == 200
    assert len(signals(pg_cluster, db_url, "hook_hmac")) == 3


def test_a_purge_the_database_refuses_is_logged_and_the_host_goes_on(daemon_factory, pg_cluster,
                                                                     db_url):
    conf = hook_conf(extra="webhook_retention_days = 1;")
    d = start(daemon_factory, conf, plugins=["hook_hmac"])
    assert post_hmac(d, body_of(k=1), delivery="stuck")[0] == 202
    wait_processed(pg_cluster, db_url, "hook_hmac", 1)
    d.stop()
    q(pg_cluster, db_url, "UPDATE webhook_deliveries SET id = %s, received_at = now() -"
      " interval '2 days', processed_at = now() - interval '2 days'", (uuid7_at(2 * 86400),))
    q(pg_cluster, db_url, "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS"
      " $$ BEGIN RAISE EXCEPTION 'deletes are refused here'; END $$")
    q(pg_cluster, db_url, "CREATE TRIGGER refuse BEFORE DELETE ON webhook_deliveries"
      " FOR EACH ROW EXECUTE FUNCTION refuse_delete()")
    try:
        d = start(daemon_factory, conf, plugins=["hook_hmac"])
        line = d.wait_for_log(lambda e: "removing old deliveries stopped" in e.get("msg", ""),
                              timeout=15)
        assert line["level"] == "warn" and "deletes are refused here" in line["msg"], line
        assert [r[0] for r in deliveries(pg_cluster, db_url)] == ["stuck"]
        assert metric(d, "ingest_webhook_deliveries_purged_total") == 0
        assert post_hmac(d, body_of(k=2), delivery="after")[0] == 202
        wait_processed(pg_cluster, db_url, "hook_hmac", 2)
        assert d.alive()
    finally:
        q(pg_cluster, db_url, "DROP TRIGGER refuse ON webhook_deliveries")
        q(pg_cluster, db_url, "DROP FUNCTION refuse_delete()")


def test_retention_zero_keeps_every_delivery(daemon_factory, pg_cluster, db_url):
    conf = hook_conf(extra="webhook_retention_days = 0;")
    d = start(daemon_factory, conf, plugins=["hook_hmac"])
    assert post_hmac(d, body_of(k=1), delivery="ancient")[0] == 202
    wait_processed(pg_cluster, db_url, "hook_hmac", 1)
    d.stop()
    ten_years = 10 * 365 * 86400
    q(pg_cluster, db_url, "UPDATE webhook_deliveries SET id = %s, received_at = now() -"
      " interval '10 years', processed_at = now() - interval '10 years'", (uuid7_at(ten_years),))
    d = start(daemon_factory, conf, plugins=["hook_hmac"])
    d.wait_for_log(lambda e: "housekeeping round done" in e.get("msg", ""), timeout=15)
    assert [r[0] for r in deliveries(pg_cluster, db_url)] == ["ancient"]
    assert metric(d, "ingest_webhook_deliveries_purged_total") == 0


# -------------------------------------------------------- hostile clients

def test_stalled_client_is_cut_off(daemon_factory):
    """A client that stops sending mid-request is disconnected after
    http_timeout_s, and others are served meanwhile."""
    d = start(daemon_factory, hook_conf(extra="http_timeout_s = 2;"), plugins=["hook_hmac"])
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"POST /webhooks/hook_hmac HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    started = time.monotonic()
    assert post_hmac(d, body_of())[0] == 202
    try:
        closed = s.recv(1000) is not None
    except OSError:
        closed = True
    waited = time.monotonic() - started
    assert closed and 1.0 < waited < 6, waited
    s.close()


def test_trickling_client_is_cut_off_at_the_request_deadline(daemon_factory):
    """A slowloris client sending one byte every half second never trips an
    inactivity timeout of 2 s; the per-request deadline (http_timeout_s from
    the request's first byte) still closes its connection, while a normal
    client on another connection is served, and a keep-alive connection
    that sends request after request on time is not cut."""
    d = start(daemon_factory, hook_conf(extra="http_timeout_s = 2;"), plugins=["hook_hmac"])
    slow = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    request = b"POST /webhooks/hook_hmac HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 400
    started = time.monotonic()
    cut_after = None
    for i, byte in enumerate(request):
        try:
            slow.sendall(bytes([byte]))
        except OSError:
            cut_after = time.monotonic() - started
            break
        if i == 2:
            assert post_hmac(d, body_of())[0] == 202
        time.sleep(0.5)
        slow.settimeout(0.01)
        try:
            if slow.recv(1000) == b"":
                cut_after = time.monotonic() - started
                break
        except socket.timeout:
            pass
        except OSError:
            cut_after = time.monotonic() - started
            break
        if time.monotonic() - started > 15:
            break
    slow.close()
    assert cut_after is not None, "the trickling client was never disconnected"
    assert 1.5 < cut_after < 5, cut_after

    # Keep-alive: 6 requests 0.5 s apart span 3 s > http_timeout_s, each on time.
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    for i in range(6):
        body = body_of(n=i, keepalive=True)
        conn.request("POST", "/webhooks/hook_hmac", body=body,
                     headers={"Content-Type": "application/json",
                              "X-Hook-Signature": "sha256=" + hexmac(SECRET, body)})
        r = conn.getresponse()
        r.read()
        assert r.status == 202
        time.sleep(0.5)
    conn.close()


def test_malformed_http_does_not_hurt(daemon_factory):
    d = start(daemon_factory, plugins=["hook_hmac"])
    for junk in (b"\x00\x01\x02garbage\r\n\r\n", b"POST /webhooks/hook_hmac HTTP/1.1\r\n"
                 b"Content-Length: -5\r\n\r\n", b"POST /webhooks/hook_hmac HTTP/9.9\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
            s.sendall(junk)
            try:
                s.recv(1000)
            except OSError:
                pass
    assert d.alive() and post_hmac(d, body_of())[0] == 202


# --------------------------------------------------------------- durability

def load(d, stop, acked, statuses, prefix, body_pad=""):
    """Post signed deliveries until stop is set; record acked keys."""
    n = 0
    while not stop.is_set():
        n += 1
        key = f"{prefix}-{n}"
        try:
            s, _, _ = post_hmac(d, body_of(n=n, pad=body_pad), delivery=key)
        except OSError:
            statuses.append("conn")
            time.sleep(0.05)
            continue
        statuses.append(s)
        if 200 <= s < 300:
            acked.append(key)


def run_load(d, seconds, threads=6, during=None):
    stop, acked, statuses = threading.Event(), [], []
    ts = [threading.Thread(target=load, args=(d, stop, acked, statuses, f"t{i}"))
          for i in range(threads)]
    for t in ts:
        t.start()
    try:
        if during:
            during()
        time.sleep(seconds)
    finally:
        stop.set()
        for t in ts:
            t.join()
    return acked, statuses


def stored_keys(pg, db_url):
    return {r[0] for r in q(pg, db_url, "SELECT delivery_key FROM webhook_deliveries")}


def test_sigkill_under_load_loses_no_acknowledged_delivery(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, plugins=["hook_hmac"])
    acked, statuses = run_load(d, 1.5, during=lambda: (time.sleep(1.0), d.kill()))
    assert len(acked) > 50, statuses[-20:]
    missing = set(acked) - stored_keys(pg_cluster, db_url)
    assert not missing, f"{len(missing)} acknowledged deliveries missing"
    d2 = start(daemon_factory, plugins=["hook_hmac"])
    wait_processed(pg_cluster, db_url, "hook_hmac", len(set(acked)), timeout=60)
    assert d2.alive()


def test_database_outage_gives_503_only_and_recovers(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, hook_conf(extra="database_retry_max_s = 1;"),
              plugins=["hook_hmac"])

    def outage():
        time.sleep(0.7)
        pg_cluster.stop("immediate")
        time.sleep(2.0)
        pg_cluster.start()
        wait_for(lambda: readyz(d) == 200, 30, msg="never ready again")
        time.sleep(0.7)

    acked, statuses = run_load(d, 0, during=outage)
    bad = [s for s in statuses if s not in (200, 202, 503, "conn")]
    assert not bad, f"unexpected statuses {set(bad)}"
    assert 503 in statuses, "the outage was not noticed"
    # traffic recovered after the outage
    assert statuses[-1] in (200, 202)
    missing = set(acked) - stored_keys(pg_cluster, db_url)
    assert not missing, f"{len(missing)} acknowledged deliveries missing"


def test_connection_endpoint_while_database_is_down(daemon_factory, pg_cluster, db_url):
    """A per-connection endpoint whose secret is not cached yet needs the
    database to find it: while PostgreSQL is down that is a 503 with
    Retry-After (not a 401 or a 404), nothing is stored, and the same
    delivery is accepted once the database is back."""
    d = start(daemon_factory, hook_conf(extra="database_retry_max_s = 1;"),
              plugins=["hook_hmac"])
    conn_secret = "per-connection-" + uuid.uuid4().hex
    cid = connection_add(d, "hook_hmac", {"webhook_secret": conn_secret}, tenant=TENANT)
    path = f"/webhooks/hook_hmac/{cid}"
    body = body_of(n="outage")
    pg_cluster.stop("immediate")
    try:
        wait_for(lambda: readyz(d) == 503, 15, msg="the outage was never noticed")
        status, headers, data = post_hmac(d, body, secret=conn_secret, path=path,
                                          delivery="during-outage")
        assert status == 503, data
        assert problem(data)["code"] == "database_unavailable", data
        assert int(dict((k.lower(), v) for k, v in headers.items())["retry-after"]) > 0
    finally:
        pg_cluster.start()
    wait_for(lambda: readyz(d) == 200, 30, msg="never ready again")
    assert deliveries(pg_cluster, db_url, "hook_hmac") == []
    status, _, data = post_hmac(d, body, secret=conn_secret, path=path, delivery="during-outage")
    assert status == 202, data
    assert len(deliveries(pg_cluster, db_url, "hook_hmac")) == 1


def test_reload_under_load_keeps_serving(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, plugins=["hook_hmac"])

    def reloads():
        # a changed plugin config replaces the instance: the old one drains
        for i in range(4):
            time.sleep(0.3)
            d.conf_path.write_text(hook_conf(hook_hmac={"handle_sleep_ms": 1 + i % 2}))
            r = d.ctl("reload", "--json")
            assert r.returncode == 0, r.stdout + r.stderr
            assert "hook_hmac" in json.dumps(json.loads(r.stdout)["replaced"])

    acked, statuses = run_load(d, 0.5, during=reloads)
    bad = [s for s in statuses if s not in (200, 202, 503)]
    assert not bad, f"unexpected statuses during reload: {set(bad)}"
    assert set(acked) <= stored_keys(pg_cluster, db_url)
