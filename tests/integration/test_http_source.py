"""The generic HTTP push source (plugins/http, ingest_http.so): JSON objects,
arrays and NDJSON posted to /webhooks/http/{connection_id} become signals,
mapped by each connection's settings (kind, time and dedupe-key paths), with
provenance; optional per-connection HMAC; Idempotency-Key; events that
cannot be mapped are dead letters of kind "record" and do not cost the rest
of the request."""
import hashlib
import hmac
import json
import uuid

from conftest import wait_for
from store_helpers import connection_add, q, readyz

TENANT = "5d6e7f80-91a2-4b3c-8d4e-5f6a7b8c9d0e"


def start(daemon_factory, group=""):
    conf = ('log_level = "debug";\njob_poll_ms = 100;\n'
            f'plugins = {{ http = {{ webhook_tenant_id = "{TENANT}"; {group} }}; }};\n')
    d = daemon_factory.start(conf_text=conf, plugins=["http"])
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-3000:]}")
    return d


def add(d, pg, db_url, settings=None, secret=None):
    cid = connection_add(d, "http", {"webhook_secret": secret} if secret else {}, tenant=TENANT)
    if settings is not None:
        q(pg, db_url, "UPDATE connections SET config = %s WHERE id = %s",
          (json.dumps(settings), cid))
    return cid


def push(d, cid, body, content_type="application/json", secret=None, key=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type}
    if secret:
        headers["X-Signature-256"] = "sha256=" + hmac.new(secret.encode(), data,
                                                          hashlib.sha256).hexdigest()
    if key:
        headers["Idempotency-Key"] = key
    status, _, reply = d.http_post(f"/webhooks/http/{cid}", body=data, headers=headers)
    return status, reply


def settle(pg, db_url, n):
    """Wait until n deliveries are processed (none pending or failing)."""
    def done():
        rows = q(pg, db_url, "SELECT state FROM webhook_deliveries")
        return len(rows) >= n and all(r[0] == "processed" for r in rows)
    wait_for(done, 20, msg=f"deliveries: {q(pg, db_url, 'SELECT state, last_error FROM webhook_deliveries')}")


def signals(pg, db_url):
    return q(pg, db_url, "SELECT kind, dedupe_key, occurred_at, payload, provenance,"
                         " connection_id::text FROM signals WHERE source = 'http'"
                         " ORDER BY (provenance->>'index')::int, created_at")


MAPPED = {"kind_path": "type", "occurred_at_path": "at", "dedupe_key_path": "id"}


def test_object_array_and_ndjson_are_mapped_with_provenance(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory)
    cid = add(d, pg_cluster, db_url, MAPPED)
    one = {"id": "e1", "type": "order.created", "at": "2026-11-20T10:00:00Z", "total": 5}
    many = [{"id": "e2", "type": "order.paid", "at": 1763632800},
            {"id": 3, "type": "order.shipped", "at": "2026-11-21T08:30:00.5Z"}]
    lines = b'{"id": "e4", "type": "t.a", "at": "2026-11-22T00:00:00Z"}\n\n' \
            b'{"id": "e5", "type": "t.b", "at": "2026-11-22T00:00:01Z"}\r\n'
    assert push(d, cid, one)[0] == 202
    assert push(d, cid, many)[0] == 202
    assert push(d, cid, lines, content_type="application/x-ndjson")[0] == 202
    settle(pg_cluster, db_url, 3)
    rows = {r[1]: r for r in signals(pg_cluster, db_url)}
    assert set(rows) == {"e1", "e2", "3", "e4", "e5"}
    assert rows["e1"][0] == "order.created" and rows["e1"][3] == one
    assert rows["e2"][2].isoformat() == "2025-11-20T10:00:00+00:00"  # unix seconds
    assert rows["3"][0] == "order.shipped"
    for key, r in rows.items():
        prov = r[4]
        assert prov["source_type"] == "http" and prov["source_id"] == key, prov
        assert prov["remote_addr"] == "127.0.0.1", prov
        assert "received_at" in prov and "ingested_at" in prov
        assert prov["plugin_version"] == "1.0.0" and r[5] == cid
    # the content hash is over the event's compact form, as sent
    compact = json.dumps(one, separators=(",", ":")).encode()
    assert rows["e1"][4]["content_sha256"] == hashlib.sha256(compact).hexdigest()
    assert rows["e5"][4]["line"] == 3 and rows["e4"][4]["line"] == 1
    assert [rows[k][4]["index"] for k in ("e2", "3")] == [0, 1]


def test_without_mapping_kind_defaults_and_content_hash_dedupes(daemon_factory, pg_cluster,
                                                                db_url):
    d = start(daemon_factory, group='default_kind = "push.event";')
    cid = add(d, pg_cluster, db_url)
    event = {"a": 1, "b": "x"}
    assert push(d, cid, event)[0] == 202
    # the same event again, spaced differently and inside an array: not new
    assert push(d, cid, b'[ {"a": 1,   "b": "x"}, {"a": 2} ]')[0] == 202
    settle(pg_cluster, db_url, 2)
    rows = signals(pg_cluster, db_url)
    assert sorted(r[3]["a"] for r in rows) == [1, 2]
    assert {r[0] for r in rows} == {"push.event"}
    digest = hashlib.sha256(json.dumps(event, separators=(",", ":")).encode()).hexdigest()
    assert f"sha256:{digest}" in {r[1] for r in rows}


def test_bad_events_are_dead_letters_and_the_rest_is_kept(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory)
    cid = add(d, pg_cluster, db_url, MAPPED)
    body = b'{"id": "ok1", "type": "t", "at": "2026-11-22T00:00:00Z"}\n' \
           b'{"id": "broken", \n' \
           b'[1, 2]\n' \
           b'{"id": "nokind", "at": "2026-11-22T00:00:00Z"}\n' \
           b'{"id": "badtime", "type": "t", "at": "yesterday"}\n' \
           b'{"id": "ok2", "type": "t", "at": "2026-11-22T00:00:02Z"}\n'
    assert push(d, cid, body, content_type="application/x-ndjson")[0] == 202
    settle(pg_cluster, db_url, 1)
    assert sorted(r[1] for r in signals(pg_cluster, db_url)) == ["ok1", "ok2"]
    dl = sorted(d.ctl_json("deadletters", check=True), key=lambda x: x["payload"]["line"])
    assert [x["kind"] for x in dl] == ["record"] * 4
    assert [x["payload"]["line"] for x in dl] == [2, 3, 4, 5]
    assert "not valid JSON" in dl[0]["error"]
    assert "JSON object" in dl[1]["error"]
    assert "type" in dl[2]["error"] and "at" in dl[3]["error"]
    assert dl[0]["payload"]["text"].startswith('{"id": "broken"')
    # a body that is not JSON at all is one dead letter, not a retry loop
    assert push(d, cid, b"\xff\xfe not json")[0] == 202
    settle(pg_cluster, db_url, 2)
    assert len(d.ctl_json("deadletters", check=True)) == 5


def test_hmac_per_connection_and_idempotency_key(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory)
    secret = "push-" + uuid.uuid4().hex
    signed = add(d, pg_cluster, db_url, MAPPED, secret=secret)
    open_ = add(d, pg_cluster, db_url, MAPPED)
    ev = {"id": "s1", "type": "t", "at": "2026-11-22T00:00:00Z"}
    assert push(d, signed, ev)[0] == 401                      # unsigned
    assert push(d, signed, ev, secret="wrong")[0] == 401     # wrong secret
    tampered = json.dumps(ev).encode()
    status, _, _ = d.http_post(
        f"/webhooks/http/{signed}", body=tampered + b" ",
        headers={"Content-Type": "application/json",
                 "X-Signature-256": "sha256=" + hmac.new(secret.encode(), tampered,
                                                         hashlib.sha256).hexdigest()})
    assert status == 401                                     # body changed after signing
    assert push(d, signed, ev, secret=secret, key="k-1")[0] == 202
    assert push(d, signed, ev, secret=secret, key="k-1")[0] == 200   # a retry: duplicate
    assert push(d, open_, {"id": "o1", "type": "t", "at": "2026-11-22T00:00:00Z"})[0] == 202
    settle(pg_cluster, db_url, 2)
    assert q(pg_cluster, db_url, "SELECT count(*) FROM webhook_deliveries")[0][0] == 2
    rows = signals(pg_cluster, db_url)
    assert sorted((r[1], r[5]) for r in rows) == sorted([("s1", signed), ("o1", open_)])
    assert secret not in d.log_text()


def test_connection_settings_override_the_group(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, group='kind_path = "type"; dedupe_key_path = "id";')
    by_group = add(d, pg_cluster, db_url)
    by_conn = add(d, pg_cluster, db_url, {"kind_path": "event.name", "dedupe_key_path": ""})
    bad = add(d, pg_cluster, db_url, {"kind_path": 7})
    assert push(d, by_group, {"id": "g1", "type": "from.group"})[0] == 202
    assert push(d, by_conn, {"id": "c1", "event": {"name": "from.connection"}})[0] == 202
    settle(pg_cluster, db_url, 2)
    got = {r[5]: (r[0], r[1]) for r in signals(pg_cluster, db_url)}
    assert got[by_group] == ("from.group", "g1")
    kind, key = got[by_conn]
    assert kind == "from.connection" and key.startswith("sha256:")  # "" switched the path off
    # a connection whose settings are wrong fails its deliveries (and says why)
    assert push(d, bad, {"id": "b1", "type": "t"})[0] == 202
    wait_for(lambda: "connection setting kind_path must be a string" in d.log_text(), 15,
             msg="no log line names the bad setting")
    assert q(pg_cluster, db_url, "SELECT state <> 'processed' FROM webhook_deliveries"
                                 " WHERE connection_id = %s", (bad,)) == [(True,)]
