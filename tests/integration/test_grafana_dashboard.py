"""etc/grafana/ingest-host.json queries only what the daemon exposes.

The dashboard is parsed; every `ingest_*` metric named in a panel query must
be a metric family of a running daemon's /metrics (a histogram's _bucket,
_sum and _count count as its family), and every label a query groups or
filters by must be a label of that family's series. Families appear when
their first series does, so the daemon is driven first through every path
the dashboard watches: a sync job with outbound HTTP against a mock
provider, an OAuth2 token refresh against a mock token endpoint, a webhook
stored and processed, and one refused.
"""
import hashlib
import hmac
import json
import re
import secrets
from pathlib import Path

from conftest import wait_for
from mock_oauth import MockOAuth
from mock_provider import MockProvider
from store_helpers import DEFAULT_TENANT, connection_add, plugin_items, q, readyz

DASHBOARD = Path(__file__).resolve().parents[2] / "etc" / "grafana" / "ingest-host.json"
WEBHOOK_SECRET = "dashboard-webhook-secret"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
METRIC_RE = re.compile(r"\b(ingest_[a-z0-9_]+)(\{[^}]*\})?")
GROUPING_RE = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER_LABEL_RE = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def dashboard_queries():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["panels"], "the dashboard has no panels"
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def family(name, families):
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in families:
            return name[: -len(suffix)]
    return name


def exposition(text):
    """family -> set of label names seen on its series."""
    families = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            families.setdefault(line.split()[2], set())
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ", line)
        if not m:
            continue
        fam = family(m.group(1), families)
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        families.setdefault(fam, set()).update(labels)
    return families


def drive(daemon_factory, pg, db_url, hub, oauth):
    conf = (
        'log_level = "debug";\njob_poll_ms = 100;\noauth_refresh_threshold_s = 300;\n'
        "plugins = {\n"
        f'  mockhub = {{ base_url = "{hub.url}"; }};\n'
        f"  oauthp = {{ {plugin_items({'oauth_client_id': 'dash-client', 'oauth_token_url': oauth.token_url})} }};\n"
        f'  hook_hmac = {{ webhook_secret = "{WEBHOOK_SECRET}"; webhook_tenant_id = "{DEFAULT_TENANT}"; }};\n'
        "};\n")
    d = daemon_factory.start(conf_text=conf, plugins=["mockhub", "oauthp", "hook_hmac"])
    wait_for(lambda: readyz(d) == 200, 20, msg=f"/readyz never 200\n{d.log_text()[-3000:]}")

    hub_conn = connection_add(d, "mockhub", {"token": f"mh_{secrets.token_urlsafe(16)}"})
    refresh = f"rt-{secrets.token_urlsafe(16)}"
    oauth.add_refresh_token(refresh)
    oauth_conn = connection_add(d, "oauthp", {"access_token": "at-old", "refresh_token": refresh})
    q(pg, db_url, "UPDATE connections SET token_expires_at = now() + interval '10 seconds'"
                  " WHERE id = %s", (oauth_conn,))
    jobs = q(pg, db_url,
             "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream) VALUES"
             " (%s, %s, 'mockhub', 'items'), (%s, %s, 'oauthp', 'items1') RETURNING id::text",
             (DEFAULT_TENANT, hub_conn, DEFAULT_TENANT, oauth_conn))
    ids = [r[0] for r in jobs]

    body = json.dumps({"event": "push", "n": 1}).encode()
    sig = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hook-Signature": sig}
    assert d.http_post("/webhooks/hook_hmac", body=body, headers=headers)[0] == 202
    bad = dict(headers, **{"X-Hook-Signature": "sha256=" + "0" * 64})
    assert d.http_post("/webhooks/hook_hmac", body=body + b" ", headers=bad)[0] == 401

    def finished():
        rows = q(pg, db_url, "SELECT state FROM sync_jobs WHERE id = ANY(%s::uuid[])", (ids,))
        return len(rows) == 2 and all(r[0] == "succeeded" for r in rows)
    wait_for(finished, 30, msg=f"jobs did not succeed\n{d.log_text()[-4000:]}")
    wait_for(lambda: q(pg, db_url, "SELECT count(*) FROM webhook_deliveries "
                                   "WHERE state = 'processed'")[0][0] == 1, 20)
    assert oauth.count >= 1, "the token was never refreshed"
    return d


def test_every_dashboard_metric_is_exposed(daemon_factory, pg_cluster, db_url):
    queries = dashboard_queries()
    hub = MockProvider(n_items=6, page_size=3).start()
    oauth = MockOAuth(client_id="dash-client").start()
    try:
        d = drive(daemon_factory, pg_cluster, db_url, hub, oauth)
        # gauges read from the database refresh every couple of seconds
        wait_for(lambda: "ingest_connector_lag_seconds{" in d.http_get("/metrics")[2].decode(),
                 15, msg="connector lag never exposed")
        families = exposition(d.http_get("/metrics")[2].decode())
    finally:
        hub.stop()
        oauth.stop()

    problems = []
    for title, expr in queries:
        names = {family(m.group(1), families) for m in METRIC_RE.finditer(expr)}
        assert names, f"panel {title!r}: no ingest_ metric in {expr!r}"
        wanted = {label.strip() for g in GROUPING_RE.findall(expr) for label in g.split(",")
                  if label.strip() and label.strip() != "le"}
        for m in METRIC_RE.finditer(expr):
            wanted |= set(MATCHER_LABEL_RE.findall(m.group(2) or ""))
        for name in names:
            if name not in families:
                problems.append(f"{title}: {name} is not exposed")
            elif not wanted <= families[name]:
                problems.append(f"{title}: {name} has labels {sorted(families[name])}, "
                                f"the query uses {sorted(wanted)}")
    assert not problems, "\n".join(problems)


def test_dashboard_covers_what_operators_watch():
    """The panels the sync-engine issue asks for are all there."""
    exprs = " ".join(e for _, e in dashboard_queries())
    for metric in ("ingest_connector_lag_seconds", "ingest_sync_jobs_total",
                   "ingest_records_total", "ingest_webhooks_stored_total",
                   "ingest_ratelimit_tokens", "ingest_token_refreshes_total",
                   "ingest_job_retries_total", "ingest_circuit_state",
                   "ingest_webhook_ack_seconds_bucket"):
        assert metric in exprs, f"no panel queries {metric}"
