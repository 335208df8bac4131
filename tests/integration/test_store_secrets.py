"""Encrypted connection secrets (AES-256-GCM, AAD = connection id + field,
key id stored with the ciphertext).

  - no plaintext token (nor its base64 / hex) in a pg_dump of the database
  - round trip: the plugin reads the secret through secret_get (test plugin
    option sync_secret) and its SHA-256 lands in every signal payload
  - tampered ciphertext / nonce / tag / key id, or a value moved to another
    connection or field, is rejected ("cannot decrypt"), never decrypted
  - a plugin cannot read a connection of another provider
  - rotation under load of a new key (config file + reload + rotate-key);
    the wrong key cannot decrypt; a missing or malformed key stops start-up
"""
import base64
import hashlib
import json
import os
import secrets
import subprocess

import pytest

from conftest import wait_for
from store_helpers import connection_add, find_pg_dump, plugin_items, q, readyz

TENANT = "7a0c2f4e-1b7d-4c55-9a63-0d7e5b3f4a10"
SIGNALS_PER_JOB = 2 * 3  # sync_pages * sync_page_size below
TERMINAL = ("succeeded", "dead")


# ----------------------------------------------------------------- helpers

def new_key():
    return base64.b64encode(os.urandom(32)).decode()


def conf_text(sync_secret="access_token", crypto_key=None, previous=None, **plugin):
    top = ['log_level = "debug";', "job_poll_ms = 100;", "job_lease_s = 3;"]
    if crypto_key is not None:
        top.append(f"crypto_key = {json.dumps(crypto_key)};")
    if previous is not None:
        top.append(f"crypto_previous_keys = {json.dumps(previous)};")
    opts = {"sync_pages": 2, "sync_page_size": 3, **plugin}
    if sync_secret:
        opts["sync_secret"] = sync_secret
    return "\n".join(top) + f"\nplugins = {{ good = {{ {plugin_items(opts)} }}; }};\n"


def start(daemon_factory, **kw):
    """A daemon with the good plugin, ready (database connected, plugin loaded)."""
    kw.setdefault("conf_text", conf_text())
    d = daemon_factory.start(plugins=["good"], **kw)
    wait_for(lambda: readyz(d) == 200, 20,
             msg=f"/readyz never 200\n{d.log_text()[-4000:]}")
    listed = {p["name"]: p for p in d.ctl_json("list", check=True)}
    good = listed.get("good", {})
    assert good.get("state") == "loaded", (
        f"test plugin 'good' not loaded (state {good.get('state')!r}): {good.get('error')}")
    return d


def enqueue(pg, db_url, connection_id, provider="good", stream="items", max_attempts=1,
            tenant=TENANT):
    return str(q(pg, db_url,
                 "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, "
                 "max_attempts) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                 (tenant, connection_id, provider, stream, max_attempts))[0][0])


def job(pg, db_url, job_id):
    rows = q(pg, db_url, "SELECT state, attempts, last_error, records, lease_owner "
                         "FROM sync_jobs WHERE id = %s", (job_id,))
    state, attempts, last_error, records, owner = rows[0]
    return {"state": state, "attempts": attempts, "last_error": last_error or "",
            "records": records, "lease_owner": owner}


def wait_job(pg, db_url, job_id, d, timeout=20):
    wait_for(lambda: job(pg, db_url, job_id)["state"] in TERMINAL, timeout,
             msg=f"job {job_id} not finished within {timeout}s: {job(pg, db_url, job_id)}\n"
                 f"{d.log_text()[-4000:]}")
    return job(pg, db_url, job_id)


def payload_hashes(pg, db_url, job_id):
    return [r[0] for r in q(pg, db_url, "SELECT payload->>'secret_sha256' FROM signals "
                                        "WHERE payload->>'job' = %s", (job_id,))]


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def token(prefix):
    # Long and unique so an accidental match is impossible.
    return f"{prefix}-{secrets.token_urlsafe(24)}"


def assert_secrets_absent(text, values, where):
    for v in values:
        forms = {"plain": v, "base64": base64.b64encode(v.encode()).decode(),
                 "hex": v.encode().hex(), "base64url": base64.urlsafe_b64encode(
                     v.encode()).decode().rstrip("=")}
        for form, s in forms.items():
            assert s not in text, f"secret found in {where} ({form})"


def key_ids(pg, db_url):
    return dict(((str(c), f), k) for c, f, k in q(
        pg, db_url, "SELECT connection_id, field, key_id FROM connection_secrets"))


# ------------------------------------------------------------------- tests

def test_pg_dump_holds_no_plaintext_token(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, conf_text=conf_text(sync_secret=None))
    values = {}
    ids = []
    for i in range(2):
        s = {"access_token": token(f"at{i}"), "refresh_token": token(f"rt{i}"),
             "client_secret": token(f"cs{i}")}
        ids.append(connection_add(d, "good", s, name=f"conn{i}"))
        values.update({f"{ids[-1]}/{k}": v for k, v in s.items()})

    rows = q(pg_cluster, db_url, "SELECT connection_id, field, key_id, nonce, ciphertext "
                                 "FROM connection_secrets")
    assert len(rows) == 6
    assert {str(r[0]) for r in rows} == set(ids)
    nonces = set()
    for cid, field, key_id, nonce, ct in rows:
        plain = values[f"{cid}/{field}"]
        assert key_id, "no key id stored with the ciphertext"
        assert len(bytes(nonce)) == 12, "nonce is not 96 bits"
        assert len(bytes(ct)) == len(plain.encode()) + 16, "ciphertext is not value + 16-byte tag"
        assert plain.encode() not in bytes(ct)
        nonces.add(bytes(nonce))
    assert len(nonces) == 6, "nonces are reused"

    r = subprocess.run([find_pg_dump(), db_url], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    dump = r.stdout
    assert "connection_secrets" in dump and all(i in dump for i in ids), \
        "the dump does not contain the connections (wrong database?)"
    assert_secrets_absent(dump, values.values(), "pg_dump")
    assert_secrets_absent(d.log_text(), values.values(), "the daemon's logs")


def test_round_trip_secret_reaches_plugin(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory)
    at, rt = token("at"), token("rt")
    cid = connection_add(d, "good", {"access_token": at, "refresh_token": rt})
    jid = enqueue(pg_cluster, db_url, cid)
    j = wait_job(pg_cluster, db_url, jid, d)
    assert j["state"] == "succeeded", j
    hashes = payload_hashes(pg_cluster, db_url, jid)
    assert len(hashes) == SIGNALS_PER_JOB
    assert set(hashes) == {sha(at)}, "the plugin did not see the stored access_token"
    assert_secrets_absent(d.log_text(), [at, rt], "the daemon's logs")


TAMPERS = {
    # one bit of the encrypted body
    "ciphertext": "UPDATE connection_secrets SET ciphertext = set_byte(ciphertext, 0, "
                  "get_byte(ciphertext, 0) # 1) WHERE connection_id = %(a)s "
                  "AND field = 'access_token'",
    "nonce": "UPDATE connection_secrets SET nonce = set_byte(nonce, 11, get_byte(nonce, 11) # 128)"
             " WHERE connection_id = %(a)s AND field = 'access_token'",
    # the GCM tag is the last 16 bytes
    "tag": "UPDATE connection_secrets SET ciphertext = set_byte(ciphertext, "
           "length(ciphertext) - 1, get_byte(ciphertext, length(ciphertext) - 1) # 1) "
           "WHERE connection_id = %(a)s AND field = 'access_token'",
    "truncated": "UPDATE connection_secrets SET ciphertext = substring(ciphertext from 1 for "
                 "length(ciphertext) - 1) WHERE connection_id = %(a)s AND field = 'access_token'",
    "key_id": "UPDATE connection_secrets SET key_id = 'feedfacefeedface' "
              "WHERE connection_id = %(a)s AND field = 'access_token'",
    # a valid sealed value, moved under another connection id
    "moved_connection": "UPDATE connection_secrets SET connection_id = %(b)s "
                        "WHERE connection_id = %(a)s AND field = 'access_token'",
    # a valid sealed value of another field, renamed
    "moved_field": "DELETE FROM connection_secrets WHERE connection_id = %(a)s "
                   "AND field = 'access_token'; UPDATE connection_secrets "
                   "SET field = 'access_token' WHERE connection_id = %(a)s "
                   "AND field = 'refresh_token'",
}


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_tampered_secret_is_rejected(tamper, daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory)
    at_a, rt_a, at_c = token("at-a"), token("rt-a"), token("at-c")
    a = connection_add(d, "good", {"access_token": at_a, "refresh_token": rt_a})
    b = connection_add(d, "good", {})  # no secrets of its own
    c = connection_add(d, "good", {"access_token": at_c})  # untouched control
    q(pg_cluster, db_url, TAMPERS[tamper], {"a": a, "b": b})

    target = b if tamper == "moved_connection" else a
    bad = enqueue(pg_cluster, db_url, target)
    good = enqueue(pg_cluster, db_url, c)

    jg = wait_job(pg_cluster, db_url, good, d)
    assert jg["state"] == "succeeded", f"the untampered control failed: {jg}"
    assert set(payload_hashes(pg_cluster, db_url, good)) == {sha(at_c)}

    jb = wait_job(pg_cluster, db_url, bad, d)
    assert jb["state"] == "dead", f"a tampered secret was accepted: {jb}"
    assert "cannot decrypt" in jb["last_error"], jb
    assert payload_hashes(pg_cluster, db_url, bad) == [], "signals stored from a tampered secret"
    dl = q(pg_cluster, db_url, "SELECT error FROM dead_letters WHERE ref_id = %s", (bad,))
    assert len(dl) == 1 and "cannot decrypt" in dl[0][0], dl

    everything = d.log_text() + jb["last_error"] + dl[0][0]
    assert_secrets_absent(everything, [at_a, rt_a, at_c], "logs / last_error / dead letter")


def test_plugin_cannot_read_another_providers_connection(daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory)
    foreign = token("other-at")
    cid = connection_add(d, "other", {"access_token": foreign})
    jid = enqueue(pg_cluster, db_url, cid, provider="good")
    j = wait_job(pg_cluster, db_url, jid, d)
    assert j["state"] == "dead", f"plugin 'good' used connection of provider 'other': {j}"
    # Two layers keep it out: the job is refused because its connection belongs
    # to another provider, and secret_get itself only opens the caller's own.
    assert ("connection belongs to another provider" in j["last_error"]
            or "no secret access_token" in j["last_error"]), j
    assert "cannot decrypt" not in j["last_error"], j
    assert payload_hashes(pg_cluster, db_url, jid) == []
    assert_secrets_absent(d.log_text() + j["last_error"], [foreign], "logs / last_error")


def test_key_rotation_reload_rotate_and_wrong_key(daemon_factory, pg_cluster, db_url):
    key_a, key_b, key_c = new_key(), new_key(), new_key()
    no_env_key = {"INGEST_CRYPTO_KEY": None, "INGEST_CRYPTO_PREVIOUS_KEYS": None}
    d = start(daemon_factory, conf_text=conf_text(crypto_key=key_a), env=no_env_key)

    tokens = {}
    for i in range(2):
        s = {"access_token": token(f"at{i}"), "refresh_token": token(f"rt{i}")}
        tokens[connection_add(d, "good", s)] = s
    ids_a = key_ids(pg_cluster, db_url)
    assert len(ids_a) == 4 and len(set(ids_a.values())) == 1
    id_a = next(iter(ids_a.values()))
    sealed_a = {(str(c), f): (bytes(n), bytes(ct)) for c, f, n, ct in q(
        pg_cluster, db_url, "SELECT connection_id, field, nonce, ciphertext "
                            "FROM connection_secrets")}

    # New primary key B, A kept for decryption: no restart.
    d.conf_path.write_text(conf_text(crypto_key=key_b, previous=key_a))
    rel = d.ctl_json("reload")
    assert rel.get("ok") is True, rel
    conn0, conn1 = list(tokens)
    j = wait_job(pg_cluster, db_url, enqueue(pg_cluster, db_url, conn0), d)
    assert j["state"] == "succeeded", f"a secret under the previous key is unreadable: {j}"

    # New values are sealed under B already.
    fresh_tok = token("at-new")
    fresh = connection_add(d, "good", {"access_token": fresh_tok})
    id_b = key_ids(pg_cluster, db_url)[(fresh, "access_token")]
    assert id_b != id_a

    out = d.ctl_json("rotate-key", check=True)
    assert out == {"key_id": id_b, "rotated": 4, "failed": 0}, out
    after = key_ids(pg_cluster, db_url)
    assert set(after.values()) == {id_b}, after
    for (c, f, n, ct) in q(pg_cluster, db_url, "SELECT connection_id, field, nonce, ciphertext "
                                               "FROM connection_secrets"):
        if (str(c), f) in sealed_a:
            old_n, old_ct = sealed_a[(str(c), f)]
            assert bytes(n) != old_n and bytes(ct) != old_ct, f"{c}/{f} not re-encrypted"
    again = d.ctl_json("rotate-key", check=True)
    assert again == {"key_id": id_b, "rotated": 0, "failed": 0}, again

    # Key A retired: everything still opens under B alone.
    d.conf_path.write_text(conf_text(crypto_key=key_b))
    assert d.ctl_json("reload").get("ok") is True
    j = wait_job(pg_cluster, db_url, enqueue(pg_cluster, db_url, conn1), d)
    assert j["state"] == "succeeded", j
    hashes = payload_hashes(pg_cluster, db_url,
                            q(pg_cluster, db_url, "SELECT id::text FROM sync_jobs "
                                                  "WHERE connection_id = %s", (conn1,))[0][0])
    assert set(hashes) == {sha(tokens[conn1]["access_token"])}
    d.stop()

    # Only a wrong key C: nothing decrypts, and rotate-key leaves rows alone.
    d2 = start(daemon_factory, conf_text=conf_text(crypto_key=key_c), env=no_env_key)
    j = wait_job(pg_cluster, db_url, enqueue(pg_cluster, db_url, conn0), d2)
    assert j["state"] == "dead" and "cannot decrypt" in j["last_error"], j
    r = d2.ctl("rotate-key", "--json")
    assert r.returncode == 1, f"rotate-key with undecryptable secrets exited {r.returncode}"
    out = json.loads(r.stdout)
    assert out["rotated"] == 0 and out["failed"] == 5, out
    assert set(key_ids(pg_cluster, db_url).values()) == {id_b}, "undecryptable rows rewritten"

    all_tokens = [v for s in tokens.values() for v in s.values()] + [fresh_tok]
    assert_secrets_absent(d.log_text() + d2.log_text(), all_tokens, "the daemons' logs")


def test_malformed_key_on_reload_keeps_the_running_keyring(daemon_factory, pg_cluster, db_url):
    key_a = new_key()
    d = start(daemon_factory, conf_text=conf_text(crypto_key=key_a),
              env={"INGEST_CRYPTO_KEY": None})
    at = token("at")
    cid = connection_add(d, "good", {"access_token": at})
    d.conf_path.write_text(conf_text(crypto_key="short"))
    r = d.ctl("reload", "--json")
    assert r.returncode == 1, f"reload with a malformed key exited {r.returncode}: {r.stdout}"
    assert json.loads(r.stdout).get("ok") is False
    assert "crypto_key" in json.loads(r.stdout).get("error", ""), r.stdout
    j = wait_job(pg_cluster, db_url, enqueue(pg_cluster, db_url, cid), d)
    assert j["state"] == "succeeded", j
    assert set(payload_hashes(pg_cluster, db_url,
                              q(pg_cluster, db_url, "SELECT id::text FROM sync_jobs")[0][0])) \
        == {sha(at)}


BAD_KEYS = {
    "missing": {"INGEST_CRYPTO_KEY": None},
    "empty": {"INGEST_CRYPTO_KEY": ""},
    "short": {"INGEST_CRYPTO_KEY": "short"},
    "31_bytes": {"INGEST_CRYPTO_KEY": base64.b64encode(b"k" * 31).decode()},
    "33_bytes": {"INGEST_CRYPTO_KEY": base64.b64encode(b"k" * 33).decode()},
    "not_base64": {"INGEST_CRYPTO_KEY": "!" * 43 + "="},
    "bad_previous": {"INGEST_CRYPTO_PREVIOUS_KEYS": "short"},
}


@pytest.mark.parametrize("case", list(BAD_KEYS))
def test_missing_or_malformed_key_exits_2(case, daemon_factory):
    env = BAD_KEYS[case]
    d = daemon_factory.start(env=env, wait_ready=False)
    rc = d.wait_exit(timeout=20)
    assert rc == 2, f"exit {rc} with {case} key\n{d.log_text()}"
    text = d.log_text()
    assert "crypto" in text.lower() or "INGEST_CRYPTO_KEY" in text, text
    bad = next(iter(env.values()))
    if bad and len(bad) > 8:
        assert bad not in text, "the rejected key was echoed in the error message"
