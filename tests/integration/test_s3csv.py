"""The S3/CSV connector (plugins/s3csv) against a real S3-compatible server.

The server is s3rver (npm) on loopback behind tests/integration/s3_server.js,
which checks every request's AWS Signature V4 as S3 does, logs requests and
can cut or slow a download (see s3_helpers.py). The daemon and PostgreSQL
are real. Connections are created with scheduling disabled and synced with
`ingest-hostctl sync`, so every request at the server belongs to a job the
test started.

Covered: the golden fixtures in fixtures/s3csv (expected signals, dead
letters, provenance and dedupe keys row by row), multi-page listings, a
large object streamed in batches with bounded memory, resume after SIGKILL
mid-object (ranged GET from the committed offset), a cut download resumed
within the job, re-import and re-upload without duplicates, wrong and
missing credentials (clear error, job fails, nothing stored), session
tokens, the daemon's AWS_* environment, virtual-host addressing, REST
POST /connections for aws connections.
"""
import csv
import datetime as dt
import hashlib
import io
import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import is_asan_build, wait_for
from s3_helpers import S3Server, md5_etag, unavailable_reason
from store_helpers import DEFAULT_TENANT, q, readyz

TENANT = DEFAULT_TENANT
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "s3csv"
NO_SCHEDULE = {"schedule": {"*": {"enabled": False}}}
TERMINAL = ("succeeded", "dead", "failed")
BUCKET = "ingest-test"


# ----------------------------------------------------------------- helpers

@pytest.fixture
def s3():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = S3Server().start()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


def conf_text(extra="", **plugin):
    body = " ".join(f"{k} = {v};" for k, v in plugin.items())
    return (f'log_level = "debug";\njob_poll_ms = 100;\n{extra}\n'
            f"plugins = {{ s3csv = {{ {body} }}; }};\n")


def start(daemon_factory, env=None, extra="", **plugin):
    d = daemon_factory.start(conf_text=conf_text(extra, **plugin), plugins=["s3csv"], env=env)
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-3000:]}")
    listed = {p["name"]: p for p in d.ctl_json("list", check=True)}
    assert listed.get("s3csv", {}).get("state") == "loaded", listed.get("s3csv")
    return d


def connection_config(s3, **config):
    return {**NO_SCHEDULE, "bucket": BUCKET, "endpoint": s3.endpoint, "force_path_style": True,
            **config}


def add_connection(d, config, secrets_=None, tenant=TENANT):
    """An s3csv connection (`ingest-hostctl connection-add`, auth kind aws); its id."""
    cmd = [str(d.hostctl), "-s", d.sock, "connection-add", "s3csv", "--tenant", tenant,
           "--json", "--config-json", json.dumps(config)]
    r = subprocess.run(cmd, input=json.dumps(secrets_ or {}), capture_output=True, text=True,
                       env=d.env, timeout=30)
    assert r.returncode == 0, f"connection-add exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)["id"]


def queue_sync(d, cid, full=False):
    jobs = d.ctl_json("sync", cid, *(["--full"] if full else []), check=True)
    assert len(jobs) == 1, jobs
    return jobs[0]["id"]


def wait_job(pg, db_url, d, job_id, timeout=60):
    def state():
        rows = q(pg, db_url, "SELECT state, attempts, coalesce(last_error, '') FROM sync_jobs "
                             "WHERE id = %s", (job_id,))
        return rows[0] if rows and rows[0][0] in TERMINAL else None
    return wait_for(state, timeout, 0.1,
                    msg=f"job {job_id} unfinished after {timeout}s\n{d.log_text()[-5000:]}")


def sync(pg, db_url, d, cid, expect="succeeded", timeout=60, full=False):
    job = queue_sync(d, cid, full)
    state, attempts, err = wait_job(pg, db_url, d, job, timeout)
    if expect:
        assert state == expect, f"{state} after {attempts}: {err}\n{d.log_text()[-5000:]}"
    return job, state, err


def signals(pg, db_url):
    rows = q(pg, db_url, "SELECT kind, dedupe_key, payload, provenance, occurred_at, "
                         "connection_id::text FROM signals WHERE source = 's3csv' "
                         "ORDER BY (provenance->>'source_uri'), (provenance->>'line')::int")
    return [dict(zip(("kind", "dedupe_key", "payload", "provenance", "occurred_at",
                      "connection_id"), r)) for r in rows]


def dead_letters(pg, db_url):
    rows = q(pg, db_url, "SELECT payload, error, provider, connection_id::text, ref_id::text, "
                         "tenant_id::text FROM dead_letters WHERE kind = 'record' "
                         "ORDER BY (payload->>'key'), (payload->>'line')::int")
    return [dict(zip(("detail", "error", "provider", "connection_id", "job_id", "tenant"), r))
            for r in rows]


def cursor(pg, db_url, cid):
    rows = q(pg, db_url, "SELECT value FROM cursors WHERE provider = 's3csv' AND "
                         "connection_id = %s AND stream = 'objects'", (cid,))
    return json.loads(rows[0][0]) if rows else None


def count(pg, db_url, sql, params=None):
    return q(pg, db_url, sql, params)[0][0]


def namespace(config, prefix=""):
    return f"s3csv/1|{BUCKET}|{prefix}|{config.get('kind', 's3csv.row')}".encode()


def row_sha(fields):
    return hashlib.sha256(b"".join(f.encode() + b"\0" for f in fields)).hexdigest()


def ns_tag(config, prefix):
    return hashlib.sha256(namespace(config, prefix)).hexdigest()[:16]


def expected_dedupe(config, prefix, fields, payload):
    """k:<ns>:<key values as JSON array> (hashed when over 200 bytes), or
    r:<ns>:<row SHA-256>."""
    tag = ns_tag(config, prefix)
    if config.get("key_fields"):
        text = "[" + ",".join(json.dumps(payload[k], ensure_ascii=False, separators=(",", ":"))
                              for k in config["key_fields"]) + "]"
        if len(text.encode()) > 200:
            return f"k:{tag}:sha256:" + hashlib.sha256(text.encode()).hexdigest()
        return f"k:{tag}:{text}"
    return f"r:{tag}:{row_sha(fields)}"


def parse_ts(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_provenance(sig, config, key, etag, job_id, line=None):
    """What every stored row must carry."""
    p = sig["provenance"]
    assert p["source_type"] == "s3", p
    assert p["source_uri"] == f"s3://{BUCKET}/{key}", p
    assert p["etag"] == etag, p
    assert isinstance(p["line"], int) and p["line"] >= 1, p
    if line is not None:
        assert p["line"] == line, p
    # the row's own hash where it is the row's identity (no key fields)
    assert ("row_sha256" in p) == (not config.get("key_fields")), p
    assert re.fullmatch(r"[0-9a-f]{64}", p["content_sha256"]), p
    assert p.get("purpose") == config.get("purpose"), p
    assert p.get("classification") == config.get("classification"), p
    assert p["plugin"] == {"name": "s3csv", "version": "1.0.0"}, p
    uuid.UUID(p["batch_id"])
    assert p["job_id"] == job_id, p
    parse_ts(p["ingested_at"])
    assert sig["kind"] == config.get("kind", "s3csv.row")


def check_every_row(pg, db_url, config, prefix, etags, job_ids=None):
    """Provenance and dedupe key of every stored row of the config's kind;
    etags: {object key: ETag}. Returns how many rows there are."""
    kind = config.get("kind", "s3csv.row")
    rows = q(pg, db_url, "SELECT dedupe_key, payload, provenance FROM signals "
                         "WHERE source = 's3csv' AND kind = %s", (kind,))
    tag = ns_tag(config, prefix)
    for dedupe, payload, p in rows:
        key = p["source_uri"][len(f"s3://{BUCKET}/"):]
        assert p["source_type"] == "s3" and p["etag"] == etags[key], p
        assert isinstance(p["line"], int) and p["line"] >= 2, p
        assert p["plugin"] == {"name": "s3csv", "version": "1.0.0"}, p
        uuid.UUID(p["batch_id"])
        parse_ts(p["ingested_at"])
        if job_ids is not None:
            assert p["job_id"] in job_ids, p
        if config.get("key_fields"):
            assert dedupe == expected_dedupe(config, prefix, None, payload), (dedupe, payload)
            assert p["source_id"] == ",".join(str(payload[k]) for k in config["key_fields"])
        else:
            assert dedupe == f"r:{tag}:{p['row_sha256']}", (dedupe, p)
    return len(rows)


def run_fixture(s3, daemon_factory, pg, db_url, name, prefix="exports/", **plugin):
    config = json.loads((FIXTURES / f"{name}.config.json").read_text())
    expected = json.loads((FIXTURES / f"{name}.expected.json").read_text())
    data = (FIXTURES / f"{name}.csv").read_bytes()
    key = f"{prefix}{name}.csv"
    etag = s3.put_object(BUCKET, key, data)
    assert etag == md5_etag(data)
    d = start(daemon_factory, **plugin)
    creds = s3.new_credentials()
    full_config = connection_config(s3, prefix=prefix, **config)
    cid = add_connection(d, full_config, creds)
    job, _, _ = sync(pg, db_url, d, cid)
    return d, cid, job, config, expected, key, etag, creds


def check_fixture(pg, db_url, s3, cid, job, config, expected, key, etag, prefix):
    got = signals(pg, db_url)
    assert [s["provenance"]["line"] for s in got] == [e["line"] for e in expected["signals"]]
    listed = next(o for o in s3_listing(s3) if o["key"] == key)
    for sig, exp in zip(got, expected["signals"]):
        assert sig["payload"] == exp["payload"], (exp["line"], sig["payload"])
        check_provenance(sig, config, key, etag, job, exp["line"])
        if not config.get("key_fields"):
            assert sig["provenance"]["row_sha256"] == row_sha(exp["fields"])
        assert sig["provenance"]["source_id"] == exp["source_id"]
        assert sig["dedupe_key"] == expected_dedupe(config, prefix, exp["fields"],
                                                    exp["payload"])
        when = parse_ts(exp["occurred_at"]) if "occurred_at" in exp else listed["modified"]
        assert sig["occurred_at"] == when, (exp["line"], sig["occurred_at"], when)
        assert sig["connection_id"] == cid
    dls = dead_letters(pg, db_url)
    want = [(e["line"], e["column"], e["reason"], e.get("text")) for e in expected["dead_letters"]]
    have = [(x["detail"]["line"], x["detail"]["column"], x["detail"]["reason"],
             x["detail"].get("text")) for x in dls]
    assert have == want
    for x in dls:
        det = x["detail"]
        assert det["object"] == f"s3://{BUCKET}/{key}" and det["etag"] == etag, det
        assert x["error"].startswith(f"s3://{BUCKET}/{key} line {det['line']}"), x["error"]
        assert det["reason"] in x["error"]
        assert (x["provider"], x["connection_id"], x["job_id"], x["tenant"]) == \
            ("s3csv", cid, job, TENANT)


def s3_listing(s3):
    """Objects of the bucket as the server lists them (key, modified)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", s3.port, timeout=30)
    conn.request("GET", f"/{BUCKET}?list-type=2", headers={"X-Admin-Token": s3.admin_token})
    body = conn.getresponse().read().decode()
    conn.close()
    out = []
    for m in re.finditer(r"<Key>(.*?)</Key><LastModified>(.*?)</LastModified>", body):
        out.append({"key": m.group(1), "modified": parse_ts(m.group(2))})
    return out


def gen_csv(rows, start=1, width=60):
    """`rows` data rows with a header; ids from `start`; ~width bytes each."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "name", "amount", "note"])
    pad = "x" * max(1, width - 40)
    for i in range(start, start + rows):
        w.writerow([i, f"name {i}", f"{i % 1000}.{i % 100:02d}", f"{pad} {i}"])
    return out.getvalue().encode()


SCHEMA_IDS = {"key_fields": ["id"], "schema": [
    {"column": "id", "type": "int", "required": True},
    {"column": "name"},
    {"column": "amount", "type": "float"},
    {"column": "note"}]}


# ------------------------------------------------------------- golden files

@pytest.mark.parametrize("name", ["orders", "people"])
def test_golden_fixture(s3, daemon_factory, pg_cluster, db_url, name):
    """Every expected signal (payload, provenance, dedupe key, occurred_at)
    and dead letter (line, column, reason, text) of a fixture, with a batch
    size that makes rows and dead letters commit across several batches."""
    d, cid, job, config, expected, key, etag, creds = run_fixture(
        s3, daemon_factory, pg_cluster, db_url, name, batch_rows=2)
    check_fixture(pg_cluster, db_url, s3, cid, job, config, expected, key, etag, "exports/")
    c = cursor(pg_cluster, db_url, cid)
    assert c["pass"] is None and c["since"] > 0, c
    assert [r[0] for r in c["recent"]] == [key]
    log = d.log_text()
    assert creds["secret_access_key"] not in log
    reqs = s3.plugin_requests()
    assert reqs and all(r["signed"] and r["access_key"] == creds["access_key_id"] for r in reqs)

    # The same object again (a second run) and the same file uploaded again
    # under another key: no new signal, and the known version is not even
    # downloaded again.
    s3.clear_log()
    before = count(pg_cluster, db_url, "SELECT count(*) FROM signals")
    sync(pg_cluster, db_url, d, cid)
    assert not [r for r in s3.plugin_requests() if "list-type" not in r["url"]]
    s3.put_object(BUCKET, f"exports/copy-of-{name}.csv", (FIXTURES / f"{name}.csv").read_bytes())
    sync(pg_cluster, db_url, d, cid)
    assert count(pg_cluster, db_url, "SELECT count(*) FROM signals") == before
    assert [(x["detail"]["key"]) for x in dead_letters(pg_cluster, db_url)].count(key) == \
        len(expected["dead_letters"])


def test_key_fields_and_row_hash_dedupe_on_reupload(s3, daemon_factory, pg_cluster, db_url):
    """A re-uploaded file (new ETag, some rows changed, some new) stores only
    what is new: by key field the first version of a key wins; by row hash
    a changed row is a new row."""
    d = start(daemon_factory)
    creds = s3.new_credentials()
    by_key = add_connection(d, connection_config(s3, prefix="k/", kind="k", **SCHEMA_IDS), creds)
    by_row = add_connection(d, connection_config(s3, prefix="r/", kind="r"), creds)
    v1 = gen_csv(20)
    s3.put_object(BUCKET, "k/data.csv", v1)
    s3.put_object(BUCKET, "r/data.csv", v1)
    for cid in (by_key, by_row):
        sync(pg_cluster, db_url, d, cid)
    assert count(pg_cluster, db_url, "SELECT count(*) FROM signals") == 40
    # v2: rows 1..20 with row 5 changed, plus rows 21..25
    v2 = gen_csv(25).replace(b"name 5,", b"name five,")
    s3.put_object(BUCKET, "k/data.csv", v2)
    s3.put_object(BUCKET, "r/data.csv", v2)
    for cid in (by_key, by_row):
        sync(pg_cluster, db_url, d, cid)
    k = q(pg_cluster, db_url, "SELECT payload->>'name' FROM signals WHERE kind = 'k' "
                              "ORDER BY (payload->>'id')::int")
    assert [r[0] for r in k] == [f"name {i}" for i in range(1, 26)]  # key 5 kept its first row
    r = q(pg_cluster, db_url, "SELECT payload->>'name' FROM signals WHERE kind = 'r'")
    names = sorted(x[0] for x in r)
    assert len(names) == 26 and "name five" in names and "name 5" in names
    # every row: from the version that first had it, with its dedupe key
    tag_k, tag_r = ns_tag({"kind": "k"}, "k/"), ns_tag({"kind": "r"}, "r/")
    for sig in signals(pg_cluster, db_url):
        p, pl = sig["provenance"], sig["payload"]
        new_in_v2 = int(pl["id"]) > 20 or pl["name"] == "name five"
        assert p["etag"] == md5_etag(v2 if new_in_v2 else v1), sig
        if sig["kind"] == "k":
            assert sig["dedupe_key"] == f"k:{tag_k}:[{pl['id']}]"
        else:
            assert sig["dedupe_key"] == f"r:{tag_r}:{p['row_sha256']}"


# ------------------------------------------------------------ listing, size

def test_multi_page_listing(s3, daemon_factory, pg_cluster, db_url):
    """Twelve objects listed three per page: every page is asked for with
    the previous page's continuation token, folder markers and other
    suffixes are skipped, every row is stored once."""
    d = start(daemon_factory, list_page_size=3)
    keys = [f"in/part-{i:02d}.csv" for i in range(12)]
    etags = {k: s3.put_object(BUCKET, k, gen_csv(5, start=i * 5 + 1)) for i, k in enumerate(keys)}
    s3.put_object(BUCKET, "in/folder/", b"")
    s3.put_object(BUCKET, "in/_SUCCESS", b"")
    cid = add_connection(d, connection_config(s3, prefix="in/", suffix=".csv", **SCHEMA_IDS),
                         s3.new_credentials())
    job, _, _ = sync(pg_cluster, db_url, d, cid)
    lists = [r for r in s3.plugin_requests() if "list-type=2" in r["url"]]
    assert len(lists) == 5, [r["url"] for r in lists]  # 14 keys, 3 per page
    assert "continuation-token" not in lists[0]["url"]
    assert all("continuation-token=" in r["url"] for r in lists[1:])
    assert all("max-keys=3" in r["url"] and "prefix=in%2F" in r["url"] for r in lists)
    gets = [r["url"] for r in s3.plugin_requests() if "list-type" not in r["url"]]
    assert gets == [f"/{BUCKET}/{k}" for k in keys]
    ids = sorted(int(r[0]) for r in q(pg_cluster, db_url, "SELECT payload->>'id' FROM signals"))
    assert ids == list(range(1, 61))
    assert cursor(pg_cluster, db_url, cid)["pass"] is None
    assert check_every_row(pg_cluster, db_url, SCHEMA_IDS, "in/", etags, {job}) == 60


def test_large_object_streams_with_bounded_memory(s3, daemon_factory, pg_cluster, db_url):
    """A 43 MiB object: streamed in batches (the cursor moves inside it),
    every row stored once, and the daemon's memory grows by far less than
    the object."""
    rows = 400_000
    data = gen_csv(rows, width=120)
    assert len(data) > 40 * 1024 * 1024
    etag = s3.put_object(BUCKET, "big/all.csv", data)
    d = start(daemon_factory, batch_rows=20000)
    cid = add_connection(d, connection_config(s3, prefix="big/", **SCHEMA_IDS),
                         s3.new_credentials())
    rss_before = d.rss_kb()
    offsets, peak = [], [0]

    def watch():
        peak[0] = max(peak[0], d.rss_kb())
        c = cursor(pg_cluster, db_url, cid)
        if c and c["pass"] and c["pass"]["cur"]:
            offsets.append(c["pass"]["cur"]["offset"])
        rows_ = q(pg_cluster, db_url, "SELECT state FROM sync_jobs WHERE connection_id = %s",
                  (cid,))
        return rows_ and rows_[0][0] in TERMINAL
    queue_sync(d, cid)
    wait_for(watch, 300 if is_asan_build() else 120, 0.2)
    state = q(pg_cluster, db_url, "SELECT state, last_error FROM sync_jobs")[0]
    assert state[0] == "succeeded", state
    assert check_every_row(pg_cluster, db_url, SCHEMA_IDS, "big/", {"big/all.csv": etag}) == rows
    assert len(set(offsets)) >= 2, "the cursor never moved inside the object"
    if not is_asan_build():
        grown = peak[0] - rss_before
        assert grown < 40 * 1024, f"RSS grew by {grown} KiB for a {len(data) >> 20} MiB object"


# ------------------------------------------------------------------- resume

def test_resume_after_sigkill_mid_object(s3, daemon_factory, pg_cluster, db_url):
    """SIGKILL while an object streams (slowed to 1 MB/s): the restarted
    daemon takes the job over when its lease expires, probes the object and
    asks for exactly the byte after the last committed row; in the end
    every row is stored once and no row was emitted twice."""
    rows = 100_000
    data = gen_csv(rows, width=60)
    key = "slow/data.csv"
    etag = s3.put_object(BUCKET, key, data)
    s3.set_faults({"key": key, "times": 1, "throttle_bps": 1_000_000})
    extra = "job_lease_s = 3;"
    d = start(daemon_factory, extra=extra, batch_rows=5000)
    cid = add_connection(d, connection_config(s3, prefix="slow/", **SCHEMA_IDS),
                         s3.new_credentials())
    queue_sync(d, cid)

    def mid_object():
        c = cursor(pg_cluster, db_url, cid)
        return c if c and c["pass"] and c["pass"]["cur"] and \
            c["pass"]["cur"]["offset"] > 500_000 else None
    wait_for(mid_object, 60, 0.05)
    d.kill()
    c = cursor(pg_cluster, db_url, cid)
    committed_offset, committed_line = c["pass"]["cur"]["offset"], c["pass"]["cur"]["line"]
    stored = count(pg_cluster, db_url, "SELECT count(*) FROM signals")
    assert 0 < stored < rows
    assert c["pass"]["cur"]["header"] == ["id", "name", "amount", "note"]
    # the committed offset is a record boundary and the stored rows are those before it
    assert data[committed_offset - 1:committed_offset] == b"\n"
    assert data[:committed_offset].count(b"\n") == committed_line - 1
    assert stored == committed_line - 2  # minus the header

    s3.clear_log()
    d2 = daemon_factory.start(conf_text=conf_text(extra, batch_rows=5000), plugins=["s3csv"],
                              env={"INGEST_CRYPTO_KEY": d.env["INGEST_CRYPTO_KEY"]})
    job = q(pg_cluster, db_url, "SELECT id::text FROM sync_jobs")[0][0]
    state, attempts, err = wait_job(pg_cluster, db_url, d2, job, 90)
    assert state == "succeeded", (state, attempts, err, d2.log_text()[-4000:])
    gets = [r for r in s3.plugin_requests() if "list-type" not in r["url"]]
    ranges = [r["range"] for r in gets]
    assert ranges == [f"bytes={committed_offset}-{committed_offset}",
                      f"bytes={committed_offset}-"], ranges
    ids = [int(r[0]) for r in q(pg_cluster, db_url, "SELECT payload->>'id' FROM signals")]
    assert sorted(ids) == list(range(1, rows + 1))
    lines = q(pg_cluster, db_url, "SELECT min((provenance->>'line')::int), "
                                  "max((provenance->>'line')::int) FROM signals")[0]
    assert lines == (2, rows + 1)
    assert check_every_row(pg_cluster, db_url, SCHEMA_IDS, "slow/", {key: etag}, {job}) == rows
    assert "emitted" in d2.log_text()
    emitted = re.findall(r"(\d+) row\(s\) emitted", d2.log_text())
    assert emitted and int(emitted[-1]) == rows - stored, emitted


def test_cut_download_resumes_with_a_range(s3, daemon_factory, pg_cluster, db_url):
    """The server drops the connection twice in one object; the job goes on
    from the last complete row each time, within the same run."""
    data = gen_csv(30_000, width=50)
    key = "cut/data.csv"
    etag = s3.put_object(BUCKET, key, data)
    s3.set_faults({"key": key, "times": 1, "cut_after_bytes": 300_001})
    d = start(daemon_factory, batch_rows=1000)
    cid = add_connection(d, connection_config(s3, prefix="cut/", **SCHEMA_IDS),
                         s3.new_credentials())
    sync(pg_cluster, db_url, d, cid)
    gets = [r for r in s3.plugin_requests() if "list-type" not in r["url"]]
    assert gets[0]["range"] is None and gets[0]["fault"]
    resume = int(gets[1]["range"].split("=")[1].split("-")[0])
    assert 290_000 < resume <= 300_001 and data[resume - 1:resume] == b"\n"
    assert [g["range"] for g in gets[1:]] == [f"bytes={resume}-{resume}", f"bytes={resume}-"]
    ids = sorted(int(r[0]) for r in q(pg_cluster, db_url, "SELECT payload->>'id' FROM signals"))
    assert ids == list(range(1, 30_001))
    assert check_every_row(pg_cluster, db_url, SCHEMA_IDS, "cut/", {key: etag}) == 30_000
    assert "transfer cut; resuming at byte" in d.log_text()


# -------------------------------------------------------------- credentials

# One attempt per job, and no circuit breaker in the way of the next job:
# refused credentials do not get better by retrying.
ONE_ATTEMPT = "job_max_retries = 0;\ncircuit_failure_threshold = 1000;"


def test_wrong_credentials_fail_the_job_and_store_nothing(s3, daemon_factory, pg_cluster,
                                                          db_url):
    s3.put_object(BUCKET, "in/a.csv", gen_csv(10))
    # The default retry policy: refused credentials end the job at once
    # (dead after one attempt), whatever job_max_retries says.
    d = start(daemon_factory)
    good = s3.new_credentials()
    bad_secret = dict(good, secret_access_key=good["secret_access_key"] + "x")
    unknown = {"access_key_id": "AKIAUNKNOWN000000000", "secret_access_key": "nope-" * 6}
    for creds, code in ((bad_secret, "SignatureDoesNotMatch"), (unknown, "InvalidAccessKeyId")):
        cid = add_connection(d, connection_config(s3, prefix="in/"), creds)
        job, state, err = sync(pg_cluster, db_url, d, cid, expect=None)
        assert state == "dead", (state, err)
        assert count(pg_cluster, db_url, "SELECT attempts FROM sync_jobs WHERE id = %s",
                     (job,)) == 1
        assert "status -8" in err, err  # INGEST_EAUTH
        log = d.log_text()
        assert code in log and "ListObjectsV2 of bucket ingest-test failed" in log
        assert creds["secret_access_key"] not in log + err
        assert cursor(pg_cluster, db_url, cid) is None
    assert count(pg_cluster, db_url, "SELECT count(*) FROM signals") == 0
    assert count(pg_cluster, db_url, "SELECT count(*) FROM dead_letters WHERE kind = "
                                     "'record'") == 0


def test_session_token_is_sent_and_signed(s3, daemon_factory, pg_cluster, db_url):
    s3.put_object(BUCKET, "in/a.csv", gen_csv(3))
    d = start(daemon_factory, extra=ONE_ATTEMPT)
    creds = s3.new_credentials(session_token=True)
    cid = add_connection(d, connection_config(s3, prefix="in/"), creds)
    sync(pg_cluster, db_url, d, cid)
    assert all(r["session_token"] for r in s3.plugin_requests())
    assert count(pg_cluster, db_url, "SELECT count(*) FROM signals") == 3
    without = {k: v for k, v in creds.items() if k != "session_token"}
    cid2 = add_connection(d, connection_config(s3, prefix="in/", kind="other"), without)
    _, state, err = sync(pg_cluster, db_url, d, cid2, expect=None)
    assert state in ("failed", "dead") and "status -8" in err
    assert creds["session_token"] not in d.log_text()


def test_daemon_environment_credentials(s3, daemon_factory, pg_cluster, db_url):
    """A connection without keys signs with AWS_ACCESS_KEY_ID & co. of the
    daemon; one with only half a key pair is an error, not a fallback."""
    s3.put_object(BUCKET, "in/a.csv", gen_csv(4))
    creds = s3.new_credentials(session_token=True)
    env = {"AWS_ACCESS_KEY_ID": creds["access_key_id"],
           "AWS_SECRET_ACCESS_KEY": creds["secret_access_key"],
           "AWS_SESSION_TOKEN": creds["session_token"]}
    d = start(daemon_factory, env=env, extra=ONE_ATTEMPT)
    cid = add_connection(d, connection_config(s3, prefix="in/"))
    sync(pg_cluster, db_url, d, cid)
    assert count(pg_cluster, db_url, "SELECT count(*) FROM signals") == 4
    assert {r["access_key"] for r in s3.plugin_requests()} == {creds["access_key_id"]}
    half = add_connection(d, connection_config(s3, prefix="in/", kind="half"),
                          {"access_key_id": creds["access_key_id"]})
    _, state, err = sync(pg_cluster, db_url, d, half, expect=None)
    assert state in ("failed", "dead") and "status -6" in err, err  # INGEST_ENOTFOUND
    assert "has access_key_id but no secret_access_key" in d.log_text()


def test_virtual_host_addressing(s3, daemon_factory, pg_cluster, db_url):
    s3.put_object(BUCKET, "v/a.csv", gen_csv(3))
    d = start(daemon_factory)
    config = connection_config(s3, prefix="v/", endpoint=s3.vhost_endpoint,
                               force_path_style=False)
    cid = add_connection(d, config, s3.new_credentials())
    sync(pg_cluster, db_url, d, cid)
    reqs = s3.plugin_requests()
    assert reqs and all(r["host"] == f"{BUCKET}.localhost:{s3.port}" for r in reqs)
    assert [r["url"] for r in reqs if "list-type" not in r["url"]] == ["/v/a.csv"]
    assert count(pg_cluster, db_url, "SELECT count(*) FROM signals") == 3


def test_rest_connection_is_checked(s3, daemon_factory, pg_cluster, db_url):
    """POST /connections for an aws connection: its keys are tried with one
    listing before it is kept; without keys the daemon's environment is used."""
    creds = s3.new_credentials()
    d = start(daemon_factory, env={"AWS_ACCESS_KEY_ID": creds["access_key_id"],
                                   "AWS_SECRET_ACCESS_KEY": creds["secret_access_key"]})
    hdrs = {"X-Tenant-Id": TENANT}
    body = {"provider": "s3csv", "config": connection_config(s3, prefix="in/"),
            "auth": {"type": "aws", **creds}}
    st, _, resp = d.http_post("/connections", body, headers=hdrs, auth=True)
    assert st == 201, resp
    assert creds["secret_access_key"].encode() not in resp
    bad = dict(body, auth={"type": "aws", "access_key_id": creds["access_key_id"],
                           "secret_access_key": "wrong-secret-value"})
    st, _, resp = d.http_post("/connections", bad, headers=hdrs, auth=True)
    assert 400 <= st < 500, (st, resp)
    env_only = {k: v for k, v in body.items() if k != "auth"}
    st, _, resp = d.http_post("/connections", env_only, headers=hdrs, auth=True)
    assert st == 201, resp
    assert count(pg_cluster, db_url, "SELECT count(*) FROM connections WHERE provider = "
                                     "'s3csv'") == 2
    assert creds["secret_access_key"] not in d.log_text()


def test_bad_connection_config_is_a_clear_error(s3, daemon_factory, pg_cluster, db_url):
    d = start(daemon_factory, extra=ONE_ATTEMPT)
    cid = add_connection(d, connection_config(s3, schema=[{"column": "a", "type": "money"}]),
                         s3.new_credentials())
    _, state, err = sync(pg_cluster, db_url, d, cid, expect=None)
    assert state in ("failed", "dead") and "status -1" in err
    assert "bad connection config: schema[0] bad 'type'" in d.log_text()
    assert not s3.plugin_requests()
