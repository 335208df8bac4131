/* deliveries.c — like jobs.c, every update is fenced on (id, lease_owner) so
 * a host that lost its lease changes nothing. */
#include "deliveries.h"

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Deliveries whose host died while processing them go back to retrying
 * (the attempt counted); a last attempt lost that way is dead-lettered. */
static const char reap_sql[] =
    "WITH lost AS ("
    "  UPDATE webhook_deliveries SET lease_owner = NULL, lease_expires_at = NULL,"
    "   last_error = 'the host processing it stopped before finishing',"
    "   state = CASE WHEN attempts >= $2::int THEN 'dead' ELSE 'retrying' END"
    "  WHERE state = 'processing' AND lease_expires_at < now() AND provider = ANY($1::text[])"
    "  RETURNING id, tenant_id, provider, connection_id, delivery_key, attempts, state,"
    "   last_error)"
    " INSERT INTO dead_letters (kind, tenant_id, provider, connection_id, ref_id, payload,"
    "  error, attempts)"
    " SELECT 'webhook', tenant_id, provider, connection_id, id,"
    "  jsonb_build_object('delivery_key', delivery_key), last_error, attempts"
    " FROM lost WHERE state = 'dead'";

/* One provider at a time, so the scan follows webhook_deliveries_claim in
 * order and needs no sort, whatever the planner's statistics say. The claim
 * commits without waiting for its WAL flush (set_config(..., true) holds for
 * this statement's own transaction): a claim lost in a database crash leaves
 * the delivery pending, to be claimed again. */
static const char claim_sql[] =
    "WITH async AS (SELECT set_config('synchronous_commit', 'off', true) AS off),"
    " due AS ("
    "  SELECT id FROM webhook_deliveries"
    "  WHERE provider = $2 AND state IN ('pending', 'retrying') AND run_after <= now()"
    "  ORDER BY run_after"
    "  LIMIT $3"
    "  FOR UPDATE SKIP LOCKED)"
    " UPDATE webhook_deliveries d SET state = 'processing', attempts = d.attempts + 1,"
    "  lease_owner = $1, lease_expires_at = now() + make_interval(secs => $4::int)"
    " FROM due, async WHERE d.id = due.id"
    " RETURNING d.id, d.provider, coalesce(d.tenant_id::text, ''),"
    "  coalesce(d.connection_id::text, ''), d.delivery_key, d.content_type, d.body, d.headers,"
    "  (extract(epoch FROM d.received_at) * 1000000)::bigint, d.attempts,"
    "  coalesce(d.remote_addr, '')";

static const char retry_sql[] =
    "UPDATE webhook_deliveries SET state = 'retrying', lease_owner = NULL,"
    " lease_expires_at = NULL, last_error = $3,"
    " run_after = now() + make_interval(secs => $4::double precision / 1000)"
    " WHERE id = $1 AND lease_owner = $2 AND state = 'processing'";

static const char release_sql[] =
    "UPDATE webhook_deliveries SET state = 'retrying', lease_owner = NULL,"
    " lease_expires_at = NULL, attempts = greatest(attempts - 1, 0),"
    " run_after = now() + make_interval(secs => $3::double precision / 1000)"
    " WHERE id = $1 AND lease_owner = $2 AND state = 'processing'";

static const char dead_sql[] =
    "WITH dead AS ("
    "  UPDATE webhook_deliveries SET state = 'dead', lease_owner = NULL,"
    "   lease_expires_at = NULL, last_error = $3"
    "  WHERE id = $1 AND lease_owner = $2 AND state = 'processing'"
    "  RETURNING id, tenant_id, provider, connection_id, delivery_key, attempts)"
    " INSERT INTO dead_letters (kind, tenant_id, provider, connection_id, ref_id, payload,"
    "  error, attempts)"
    " SELECT 'webhook', tenant_id, provider, connection_id, id,"
    "  jsonb_build_object('delivery_key', delivery_key), $3, attempts FROM dead";

static const char expire_sql[] = "DELETE FROM idempotency_keys WHERE expires_at < now()";

/* The host's delivery ids are UUIDv7, whose leading 48 bits are the receipt
 * time in milliseconds: the smallest id of the cutoff's millisecond bounds a
 * primary-key range scan, so a purge never reads the retained (recent) part
 * of the table. The timestamps decide what goes. SKIP LOCKED lets hosts
 * purge side by side. */
static const char purge_sql[] =
    "WITH cutoff AS ("
    "  SELECT now() - make_interval(days => $1::int) AS t),"
    " bound AS ("
    "  SELECT t, (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0')"
    "   || '70008000000000000000')::uuid AS id FROM cutoff),"
    " doomed AS ("
    "  SELECT d.id FROM webhook_deliveries d, bound"
    "  WHERE d.id < bound.id AND d.state = 'processed'"
    "   AND d.received_at < bound.t AND d.processed_at < bound.t"
    "   AND NOT EXISTS (SELECT 1 FROM dead_letters l WHERE l.ref_id = d.id)"
    "  ORDER BY d.id LIMIT $2"
    "  FOR UPDATE SKIP LOCKED)"
    " DELETE FROM webhook_deliveries d USING doomed WHERE d.id = doomed.id";

typedef struct claim_args {
    const char *owner;
    char *const *providers;
    size_t n_providers, first; /* providers are asked in turn from `first` */
    int limit, lease_s;
    delivery_row *rows;
    size_t n;
} claim_args;

int deliveries_row_set_headers(delivery_row *d, const char *json)
{
    json_object *o = json_tokener_parse(json);
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return -1;
    }
    size_t n = (size_t)json_object_object_length(o);
    d->headers = calloc(n ? n : 1, sizeof *d->headers);
    int rc = d->headers ? 0 : -1;
    json_object_object_foreach(o, name, value)
    {
        if (rc < 0)
            break;
        char *k = strdup(name), *v = strdup(json_object_get_string(value));
        if (!k || !v) {
            free(k);
            free(v);
            rc = -1;
            break;
        }
        d->headers[d->n_headers++] = (ingest_header){k, v};
    }
    json_object_put(o);
    return rc;
}

/* A row's body is plain malloc'd memory (rows also come from the inbox),
 * not libpq's. */
static unsigned char *unescape_body(const char *text, size_t *len)
{
    unsigned char *raw = PQunescapeBytea((const unsigned char *)text, len);
    unsigned char *body = raw ? malloc(*len ? *len : 1) : NULL;
    if (body)
        memcpy(body, raw, *len);
    PQfreemem(raw);
    return body;
}

static int read_row(PGresult *res, int r, delivery_row *d)
{
    snprintf(d->id, sizeof d->id, "%s", PQgetvalue(res, r, 0));
    snprintf(d->provider, sizeof d->provider, "%s", PQgetvalue(res, r, 1));
    snprintf(d->tenant_id, sizeof d->tenant_id, "%s", PQgetvalue(res, r, 2));
    snprintf(d->connection_id, sizeof d->connection_id, "%s", PQgetvalue(res, r, 3));
    d->delivery_key = strdup(PQgetvalue(res, r, 4));
    d->content_type = PQgetisnull(res, r, 5) ? NULL : strdup(PQgetvalue(res, r, 5));
    d->body = unescape_body(PQgetvalue(res, r, 6), &d->body_len);
    d->received_at_us = strtoll(PQgetvalue(res, r, 8), NULL, 10);
    d->attempts = atoi(PQgetvalue(res, r, 9));
    snprintf(d->remote_addr, sizeof d->remote_addr, "%s", PQgetvalue(res, r, 10));
    if (!d->delivery_key || !d->body || deliveries_row_set_headers(d, PQgetvalue(res, r, 7)) < 0)
        return -1;
    return 0;
}

static int claim_provider(PGconn *conn, claim_args *a, const char *provider)
{
    char limit[16], lease[16];
    snprintf(limit, sizeof limit, "%d", a->limit - (int)a->n);
    snprintf(lease, sizeof lease, "%d", a->lease_s);
    const char *p[] = {a->owner, provider, limit, lease};
    PGresult *res = NULL;
    int rc = store_exec_prepared(conn, "deliveries_claim_v3", claim_sql, 4, p, &res, NULL, 0);
    if (rc != INGEST_OK)
        return rc;
    for (int r = 0; r < PQntuples(res) && a->n < (size_t)a->limit; r++) {
        /* Counted before it is filled, so a half-read row is freed too. */
        if (read_row(res, r, &a->rows[a->n++]) < 0)
            rc = INGEST_ENOMEM;
    }
    PQclear(res);
    return rc;
}

static int claim_fn(PGconn *conn, void *arg)
{
    claim_args *a = arg;
    a->rows = calloc((size_t)a->limit, sizeof *a->rows);
    if (!a->rows)
        return INGEST_ENOMEM;
    int rc = INGEST_OK;
    for (size_t i = 0; rc == INGEST_OK && i < a->n_providers && a->n < (size_t)a->limit; i++)
        rc = claim_provider(conn, a, a->providers[(a->first + i) % a->n_providers]);
    return rc;
}

int deliveries_claim(store *st, const char *owner, char *const *providers, size_t n_providers,
                     size_t first, int limit, int lease_s, delivery_row **rows, size_t *n)
{
    claim_args a = {owner, providers, n_providers, first, limit, lease_s, NULL, 0};
    *rows = NULL;
    *n = 0;
    if (n_providers == 0 || limit <= 0)
        return INGEST_OK;
    int rc = store_call(st, claim_fn, &a);
    if (rc != INGEST_OK) {
        /* Claimed rows we cannot hand out expire and are claimed again. */
        deliveries_free(a.rows, a.n);
        return rc;
    }
    *rows = a.rows;
    *n = a.n;
    return INGEST_OK;
}

void deliveries_row_clear(delivery_row *d)
{
    free(d->delivery_key);
    free(d->content_type);
    free(d->body);
    for (size_t i = 0; i < d->n_headers; i++) {
        free((char *)d->headers[i].name);
        free((char *)d->headers[i].value);
    }
    free(d->headers);
    memset(d, 0, sizeof *d);
}

void deliveries_free(delivery_row *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++)
        deliveries_row_clear(&rows[i]);
    free(rows);
}

typedef struct reap_args {
    char *const *providers;
    size_t n_providers;
    int max_attempts;
} reap_args;

static int reap_fn(PGconn *conn, void *arg)
{
    reap_args *a = arg;
    char *providers = store_text_array(a->providers, a->n_providers);
    if (!providers)
        return INGEST_ENOMEM;
    char max_attempts[16];
    snprintf(max_attempts, sizeof max_attempts, "%d", a->max_attempts);
    const char *p[] = {providers, max_attempts};
    int rc = store_exec(conn, reap_sql, 2, p, NULL, NULL, 0);
    free(providers);
    return rc;
}

int deliveries_reap(store *st, char *const *providers, size_t n_providers, int max_attempts)
{
    reap_args a = {providers, n_providers, max_attempts};
    return n_providers ? store_call(st, reap_fn, &a) : INGEST_OK;
}

typedef struct update_args {
    const char *sql;
    const char *const *params;
    int n_params;
    long long affected; /* rows the statement changed */
    char err[256];      /* the database's reason, if it failed */
} update_args;

static int update_fn(PGconn *conn, void *arg)
{
    update_args *a = arg;
    PGresult *res = NULL;
    int rc = store_exec(conn, a->sql, a->n_params, a->params, &res, a->err, sizeof a->err);
    if (rc == INGEST_OK) {
        a->affected = atoll(PQcmdTuples(res));
        PQclear(res);
    }
    return rc;
}

int deliveries_fail(store *st, const delivery_row *d, const char *owner, const char *error,
                    int max_attempts, int64_t delay_ms, int *dead)
{
    int is_dead = d->attempts >= max_attempts;
    if (dead)
        *dead = is_dead;
    char delay[32];
    snprintf(delay, sizeof delay, "%lld", (long long)delay_ms);
    const char *p[] = {d->id, owner, error, delay};
    update_args a = {is_dead ? dead_sql : retry_sql, p, is_dead ? 3 : 4, 0, ""};
    return store_call(st, update_fn, &a);
}

int deliveries_release(store *st, const delivery_row *d, const char *owner, int64_t delay_ms)
{
    char delay[32];
    snprintf(delay, sizeof delay, "%lld", (long long)delay_ms);
    const char *p[] = {d->id, owner, delay};
    update_args a = {release_sql, p, 3, 0, ""};
    return store_call(st, update_fn, &a);
}

int deliveries_purge(store *st, int retention_days, int limit, long long *removed, char *err,
                     size_t err_len)
{
    char days[16], max_rows[16];
    snprintf(days, sizeof days, "%d", retention_days);
    snprintf(max_rows, sizeof max_rows, "%d", limit);
    const char *p[] = {days, max_rows};
    update_args a = {purge_sql, p, 2, 0, ""};
    int rc = store_call(st, update_fn, &a);
    *removed = a.affected;
    if (rc != INGEST_OK)
        snprintf(err, err_len, "%s", a.err[0] ? a.err : "database unavailable");
    return rc;
}

int deliveries_expire_keys(store *st, long long *removed)
{
    update_args a = {expire_sql, NULL, 0, 0, ""};
    int rc = store_call(st, update_fn, &a);
    if (removed)
        *removed = a.affected;
    return rc;
}
