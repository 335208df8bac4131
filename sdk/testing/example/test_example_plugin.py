"""An example of connector tests written with the SDK's test kit only
(ingest_testing): the way a connector outside this repository is tested.

  - plugins/example (ingest_example.so): a synthetic "counter" stream; every
    tick emits the next page of signals and commits the cursor with them.
  - a MockAPI serving paginated JSON to tests/plugins/mockhub_plugin.c
    (ingest_mockhub.so), which pages through GET {base_url}/items.

Run with the binaries of a build directory, or an installed daemon plus the
connector's .so:

    INGEST_BUILD_DIR=build python3 -m pytest sdk/testing/example -q
    INGEST_HOSTD=/usr/sbin/ingest-hostd INGEST_HOSTCTL=/usr/bin/ingest-hostctl \\
        INGEST_PLUGIN=./ingest_acme.so python3 -m pytest tests -q
"""
import secrets

from ingest_testing import MockAPI, connection_add, db_count, plugin_entries, q, readyz, wait_for

TENANT = "0b6e2c3a-9d41-4f7e-8a25-6c1d3e5f7a90"
PAGE = 5


def example_conf(page_size=PAGE, interval_ms=100):
    return ('log_level = "debug";\n'
            f'plugins = {{ example = {{ tenant_id = "{TENANT}"; interval_ms = {interval_ms};'
            f' page_size = {page_size}; greeting = "hi"; }}; }};\n')


def cursor(pg, db_url):
    """The counter stream's cursor (0 before the first page)."""
    return db_count(pg, db_url, "SELECT value::bigint FROM cursors "
                                "WHERE provider = 'example' AND stream = 'counter'")


def seqs(pg, db_url):
    return [r[0] for r in q(pg, db_url, "SELECT (payload->>'seq')::bigint FROM signals "
                                        "WHERE source = 'example' ORDER BY 1")]


def run_until(daemon_factory, pg, db_url, at_least):
    """Start a daemon with the example plugin, let it store up to `at_least`,
    stop it (SIGTERM); returns the cursor it left."""
    d = daemon_factory.start(conf_text=example_conf(), plugins=["example"])
    assert [e["state"] for e in plugin_entries(d, "example")] == ["loaded"]
    wait_for(lambda: cursor(pg, db_url) >= at_least, 20,
             msg=f"cursor stuck at {cursor(pg, db_url)}\n{d.log_text()[-3000:]}")
    d.stop()
    return cursor(pg, db_url)


def test_pages_are_stored_with_the_cursor(daemon_factory, pg_cluster, db_url):
    d = daemon_factory.start(conf_text=example_conf(), plugins=["example"])
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-3000:]}")
    wait_for(lambda: cursor(pg_cluster, db_url) >= 3 * PAGE, 20)
    # Signals and cursor commit together: read both in one snapshot.
    stored, distinct, at = q(pg_cluster, db_url,
                             "SELECT count(*), count(DISTINCT dedupe_key), (SELECT value::bigint"
                             " FROM cursors WHERE provider = 'example') FROM signals"
                             " WHERE source = 'example'")[0]
    assert stored == distinct == at and at % PAGE == 0, (stored, distinct, at)
    kind, key, tenant, payload = q(pg_cluster, db_url,
                                   "SELECT kind, dedupe_key, tenant_id::text, payload FROM signals"
                                   " WHERE source = 'example' AND payload->>'seq' = '1'")[0]
    assert (kind, key, tenant) == ("example.counted", "counter-1", TENANT)
    assert payload == {"seq": 1, "greeting": "hi"}
    assert d.wait_for_log(lambda e: "stored records" in str(e.get("msg", "")))


def test_restart_continues_without_gaps_and_dedupes(daemon_factory, pg_cluster, db_url):
    first = run_until(daemon_factory, pg_cluster, db_url, 2 * PAGE)
    assert seqs(pg_cluster, db_url) == list(range(1, first + 1))

    # A new daemon on the same database continues after the cursor.
    second = run_until(daemon_factory, pg_cluster, db_url, first + 2 * PAGE)
    assert seqs(pg_cluster, db_url) == list(range(1, second + 1))

    # Rewind the cursor into stored data: the records emitted again are
    # dropped by their dedupe key, so nothing is stored twice.
    q(pg_cluster, db_url, "UPDATE cursors SET value = %s WHERE provider = 'example'",
      (str(second - PAGE - 2),))
    third = run_until(daemon_factory, pg_cluster, db_url, second + PAGE)
    assert seqs(pg_cluster, db_url) == list(range(1, third + 1))


def test_mock_api_pages_are_synced(daemon_factory, pg_cluster, db_url):
    items = [{"id": f"it-{i:03d}", "n": i} for i in range(23)]
    with MockAPI() as api:
        # mockhub reads the next cursor from the body (meta.next_cursor).
        api.add_paginated("/items", items, page_size=10,
                          envelope=lambda page, nxt: {"items": page, "meta": {"next_cursor": nxt}})
        api.fail_next("/items", ("status", 503, {"Retry-After": "1"}))  # once, then normal
        conf = f'log_level = "debug";\nplugins = {{ mockhub = {{ base_url = "{api.url}"; }}; }};\n'
        d = daemon_factory.start(conf_text=conf, plugins=["mockhub"])
        wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-3000:]}")
        token = f"mh_{secrets.token_urlsafe(16)}"
        cid = connection_add(d, "mockhub", {"token": token})
        job = d.ctl_json("sync", cid, check=True)[0]["id"]
        state = wait_for(lambda: next((s for (s,) in q(pg_cluster, db_url,
                                      "SELECT state FROM sync_jobs WHERE id = %s", (job,))
                                       if s in ("succeeded", "failed", "dead")), None), 30)
        assert state == "succeeded", d.log_text()[-3000:]

        keys = [r[0] for r in q(pg_cluster, db_url,
                                "SELECT dedupe_key FROM signals WHERE connection_id = %s", (cid,))]
        assert sorted(keys) == [it["id"] for it in items]
        reqs = api.requests_to("/items")
        assert [r.status for r in reqs[:2]] == [503, 200]  # the 503 was retried
        assert [r.query.get("cursor") for r in reqs if r.status == 200][:3] == \
            [None, "c00001eef", "c00003dde"]  # first page, then the cursors it was given
        assert all(r.header("Authorization") == f"Bearer {token}" for r in reqs)
