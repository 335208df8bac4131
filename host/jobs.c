/* jobs.c — every statement is parameterized and every update is fenced on
 * (id, lease_owner) so a host that lost its lease changes nothing. */
#include "jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/plugin.h"
#include "log.h"
#include "util.h"

static const char claim_sql[] =
    "WITH due AS ("
    "  SELECT id FROM sync_jobs"
    "  WHERE provider = ANY($2::text[]) AND ("
    "    (state IN ('queued', 'retrying') AND run_after <= now())"
    "    OR (state = 'running' AND lease_expires_at < now()))"
    "  ORDER BY run_after, created_at"
    "  LIMIT $3"
    "  FOR UPDATE SKIP LOCKED)"
    " UPDATE sync_jobs j SET state = 'running', attempts = j.attempts + 1,"
    "  lease_owner = $1, lease_expires_at = now() + make_interval(secs => $4::int),"
    "  started_at = now(), finished_at = NULL, updated_at = now()"
    " FROM due WHERE j.id = due.id"
    " RETURNING j.id, j.tenant_id, coalesce(j.connection_id::text, ''), j.provider, j.stream,"
    "  j.kind = 'full', j.attempts, j.max_attempts";

static const char succeed_sql[] =
    "UPDATE sync_jobs SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL,"
    " last_error = NULL, records = $3::bigint, finished_at = now(), updated_at = now()"
    " WHERE id = $1 AND lease_owner = $2 AND state = 'running'";

static const char retry_sql[] =
    "UPDATE sync_jobs SET state = 'retrying', lease_owner = NULL, lease_expires_at = NULL,"
    " last_error = $3, records = $4::bigint, finished_at = now(), updated_at = now(),"
    " run_after = now() + make_interval(secs => $5::double precision / 1000)"
    " WHERE id = $1 AND lease_owner = $2 AND state = 'running'";

static const char requeue_sql[] =
    "UPDATE sync_jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,"
    " attempts = greatest(attempts - 1, 0), last_error = $3, updated_at = now(),"
    " run_after = now() + make_interval(secs => $4::double precision / 1000)"
    " WHERE id = $1 AND lease_owner = $2 AND state = 'running'";

static const char dead_sql[] =
    "WITH dead AS ("
    "  UPDATE sync_jobs SET state = 'dead', lease_owner = NULL, lease_expires_at = NULL,"
    "   last_error = $3, records = $4::bigint, finished_at = now(), updated_at = now()"
    "  WHERE id = $1 AND lease_owner = $2 AND state = 'running'"
    "  RETURNING id, tenant_id, provider, connection_id, attempts, stream, kind)"
    " INSERT INTO dead_letters (kind, tenant_id, provider, connection_id, ref_id, payload,"
    "  error, attempts)"
    " SELECT 'job', tenant_id, provider, connection_id, id,"
    "  jsonb_build_object('stream', stream, 'kind', kind), $3, attempts FROM dead";

/* Only the jobs this host is really running: a job whose outcome could not be
 * recorded must be left to expire and be claimed again. */
static const char extend_sql[] =
    "UPDATE sync_jobs SET lease_expires_at = now() + make_interval(secs => $2::int)"
    " WHERE lease_owner = $1 AND state = 'running' AND id = ANY($3::uuid[])";

/* Jobs that must not be claimed again: the last attempt's host died (its
 * lease expired), or the connection belongs to another provider. */
static const char reap_sql[] =
    "WITH doomed AS ("
    "  UPDATE sync_jobs j SET state = 'dead', lease_owner = NULL, lease_expires_at = NULL,"
    "   finished_at = now(), updated_at = now(),"
    "   last_error = CASE WHEN j.state = 'running'"
    "    THEN 'the host running its last attempt stopped renewing its lease'"
    "    ELSE 'the connection belongs to another provider' END"
    "  WHERE j.provider = ANY($1::text[]) AND ("
    "   (j.state = 'running' AND j.lease_expires_at < now() AND j.attempts >= j.max_attempts)"
    "   OR (j.state IN ('queued', 'retrying') AND j.connection_id IS NOT NULL"
    "    AND NOT EXISTS (SELECT 1 FROM connections c"
    "     WHERE c.id = j.connection_id AND c.provider = j.provider)))"
    "  RETURNING id, tenant_id, provider, connection_id, attempts, stream, kind, last_error)"
    " INSERT INTO dead_letters (kind, tenant_id, provider, connection_id, ref_id, payload,"
    "  error, attempts)"
    " SELECT 'job', tenant_id, provider, connection_id, id,"
    "  jsonb_build_object('stream', stream, 'kind', kind), last_error, attempts FROM doomed";

static const char enqueue_sql[] =
    "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, kind)"
    " VALUES ($1, $2, $3, $4, $5) RETURNING id";

typedef struct claim_args {
    const char *owner;
    char *const *providers;
    size_t n_providers;
    int limit, lease_s;
    job_row *rows;
    size_t n;
} claim_args;

static void copy_field(char *dst, size_t len, PGresult *res, int row, int col)
{
    snprintf(dst, len, "%s", PQgetvalue(res, row, col));
}

static int claim_fn(PGconn *conn, void *arg)
{
    claim_args *a = arg;
    char *providers = store_text_array(a->providers, a->n_providers);
    if (!providers)
        return INGEST_ENOMEM;
    char reap_err[512];
    const char *rp[] = {providers};
    if (store_exec(conn, reap_sql, 1, rp, NULL, reap_err, sizeof reap_err) != INGEST_OK)
        log_warn("jobs: cannot dead-letter unrunnable jobs: %s", reap_err);
    char limit[16], lease[16];
    snprintf(limit, sizeof limit, "%d", a->limit);
    snprintf(lease, sizeof lease, "%d", a->lease_s);
    const char *p[] = {a->owner, providers, limit, lease};
    PGresult *res = NULL;
    char err[512];
    int rc = store_exec(conn, claim_sql, 4, p, &res, err, sizeof err);
    free(providers);
    if (rc != INGEST_OK) {
        log_warn("jobs: claim failed: %s", err);
        return rc;
    }
    int n = PQntuples(res);
    a->rows = n ? calloc((size_t)n, sizeof *a->rows) : NULL;
    for (int i = 0; a->rows && i < n; i++) {
        job_row *j = &a->rows[i];
        copy_field(j->id, sizeof j->id, res, i, 0);
        copy_field(j->tenant_id, sizeof j->tenant_id, res, i, 1);
        copy_field(j->connection_id, sizeof j->connection_id, res, i, 2);
        copy_field(j->provider, sizeof j->provider, res, i, 3);
        copy_field(j->stream, sizeof j->stream, res, i, 4);
        j->full_refresh = PQgetvalue(res, i, 5)[0] == 't';
        j->attempts = atoi(PQgetvalue(res, i, 6));
        j->max_attempts = atoi(PQgetvalue(res, i, 7));
    }
    a->n = a->rows ? (size_t)n : 0;
    PQclear(res);
    return n && !a->rows ? INGEST_ENOMEM : INGEST_OK;
}

int jobs_claim(store *st, const char *owner, char *const *providers, size_t n_providers, int limit,
               int lease_s, job_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    if (n_providers == 0 || limit <= 0)
        return INGEST_OK;
    claim_args a = {owner, providers, n_providers, limit, lease_s, NULL, 0};
    int rc = store_call(st, claim_fn, &a);
    if (rc != INGEST_OK) {
        free(a.rows);
        return rc;
    }
    *rows = a.rows;
    *n = a.n;
    return INGEST_OK;
}

typedef struct finish_args {
    const char *sql;
    const char *params[5];
    int n_params;
} finish_args;

static int finish_fn(PGconn *conn, void *arg)
{
    finish_args *a = arg;
    PGresult *res = NULL;
    char err[512];
    int rc = store_exec(conn, a->sql, a->n_params, a->params, &res, err, sizeof err);
    if (rc != INGEST_OK) {
        log_warn("jobs: cannot record a job outcome: %s", err);
        return rc;
    }
    int changed = atoi(PQcmdTuples(res));
    PQclear(res);
    return changed ? INGEST_OK : INGEST_ECANCELED;
}

int jobs_finish(store *st, const job_row *job, const char *owner, job_outcome outcome,
                const char *error, long long records, long long delay_ms)
{
    char recs[32], delay[32];
    snprintf(recs, sizeof recs, "%lld", records);
    snprintf(delay, sizeof delay, "%lld", delay_ms);
    const char *err = error ? error : "";
    finish_args a = {0};
    int last_attempt = job->attempts >= job->max_attempts;
    switch (outcome) {
    case JOB_SUCCEEDED:
        a = (finish_args){succeed_sql, {job->id, owner, recs}, 3};
        break;
    case JOB_FAILED:
        if (last_attempt)
            a = (finish_args){dead_sql, {job->id, owner, err, recs}, 4};
        else
            a = (finish_args){retry_sql, {job->id, owner, err, recs, delay}, 5};
        break;
    case JOB_RATE_LIMITED:
    case JOB_RELEASED:
        a = (finish_args){requeue_sql, {job->id, owner, err, delay}, 4};
        break;
    }
    return store_call(st, finish_fn, &a);
}

typedef struct extend_args {
    const char *owner;
    int lease_s;
    const char *ids; /* '{uuid,uuid}' */
} extend_args;

static int extend_fn(PGconn *conn, void *arg)
{
    extend_args *a = arg;
    char lease[16];
    snprintf(lease, sizeof lease, "%d", a->lease_s);
    const char *p[] = {a->owner, lease, a->ids};
    return store_exec(conn, extend_sql, 3, p, NULL, NULL, 0);
}

int jobs_extend_leases(store *st, const char *owner, int lease_s, char *const *job_ids,
                       size_t n_ids)
{
    if (n_ids == 0)
        return INGEST_OK;
    char *ids = store_text_array(job_ids, n_ids);
    if (!ids)
        return INGEST_ENOMEM;
    extend_args a = {owner, lease_s, ids};
    int rc = store_call(st, extend_fn, &a);
    free(ids);
    return rc;
}

typedef struct enqueue_args {
    const char *params[5];
    char *id_out;
} enqueue_args;

static int enqueue_fn(PGconn *conn, void *arg)
{
    enqueue_args *a = arg;
    PGresult *res = NULL;
    char err[512];
    int rc = store_exec(conn, enqueue_sql, 5, a->params, &res, err, sizeof err);
    if (rc != INGEST_OK) {
        log_warn("jobs: cannot queue a job: %s", err);
        return rc;
    }
    if (a->id_out)
        snprintf(a->id_out, 37, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return INGEST_OK;
}

int jobs_enqueue(store *st, const char *tenant_id, const char *connection_id, const char *provider,
                 const char *stream, int full_refresh, char *id_out)
{
    enqueue_args a = {{tenant_id, connection_id && *connection_id ? connection_id : NULL, provider,
                       stream, full_refresh ? "full" : "incremental"},
                      id_out};
    return store_call(st, enqueue_fn, &a);
}
