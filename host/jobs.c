/* jobs.c — every statement is parameterized and every update is fenced on
 * (id, lease_owner) so a host that lost its lease changes nothing. */
#include "jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/plugin.h"
#include "log.h"
#include "util.h"

/* The columns every claim returns, in the order row_from() reads them. */
#define CLAIM_SET                                                                                  \
    " UPDATE sync_jobs j SET state = 'running', attempts = j.attempts + 1,"                        \
    "  lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2::int),"               \
    "  started_at = now(), finished_at = NULL, updated_at = now()"                                 \
    " FROM due WHERE j.id = due.id"                                                                \
    " RETURNING j.id, j.tenant_id, coalesce(j.connection_id::text, ''), j.provider, j.stream,"     \
    "  j.kind = 'full', j.attempts, j.max_attempts"

/* One tenant's, one provider's most overdue job: a range scan of the
 * sync_jobs_claim partial index (tenant_id, provider, run_after). */
static const char claim_one_sql[] =
    "WITH due AS ("
    "  SELECT id FROM sync_jobs"
    "  WHERE tenant_id = $3::uuid AND provider = $4 AND state IN ('queued', 'retrying')"
    "   AND run_after <= now()"
    "  ORDER BY run_after LIMIT 1"
    "  FOR UPDATE SKIP LOCKED)" CLAIM_SET;

/* Orphans of a dead host, through the sync_jobs_leases partial index. */
static const char claim_expired_sql[] =
    "WITH due AS ("
    "  SELECT id FROM sync_jobs"
    "  WHERE state = 'running' AND lease_expires_at < now() AND provider = ANY($3::text[])"
    "  ORDER BY lease_expires_at LIMIT $4"
    "  FOR UPDATE SKIP LOCKED)" CLAIM_SET;

/* A loose index scan: one index probe per distinct (tenant, provider) with
 * waiting jobs, instead of reading every waiting job. */
static const char pairs_sql[] =
    "WITH RECURSIVE pairs AS ("
    "  (SELECT tenant_id, provider FROM sync_jobs WHERE state IN ('queued', 'retrying')"
    "   ORDER BY tenant_id, provider LIMIT 1)"
    "  UNION ALL"
    "  SELECT n.tenant_id, n.provider FROM pairs p CROSS JOIN LATERAL ("
    "   SELECT tenant_id, provider FROM sync_jobs WHERE state IN ('queued', 'retrying')"
    "    AND (tenant_id, provider) > (p.tenant_id, p.provider)"
    "   ORDER BY tenant_id, provider LIMIT 1) n)"
    " SELECT tenant_id::text, provider FROM pairs WHERE provider = ANY($1::text[]) LIMIT 100000";

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

static void copy_field(char *dst, size_t len, PGresult *res, int row, int col)
{
    snprintf(dst, len, "%s", PQgetvalue(res, row, col));
}

static void row_from(job_row *j, PGresult *res, int i)
{
    copy_field(j->id, sizeof j->id, res, i, 0);
    copy_field(j->tenant_id, sizeof j->tenant_id, res, i, 1);
    copy_field(j->connection_id, sizeof j->connection_id, res, i, 2);
    copy_field(j->provider, sizeof j->provider, res, i, 3);
    copy_field(j->stream, sizeof j->stream, res, i, 4);
    j->full_refresh = PQgetvalue(res, i, 5)[0] == 't';
    j->attempts = atoi(PQgetvalue(res, i, 6));
    j->max_attempts = atoi(PQgetvalue(res, i, 7));
}

/* A statement with up to 6 text parameters; the result goes to res. */
typedef struct query_args {
    const char *sql;
    const char *params[6];
    int n_params;
    PGresult *res;
    char err[512];
} query_args;

static int query_fn(PGconn *conn, void *arg)
{
    query_args *a = arg;
    return store_exec(conn, a->sql, a->n_params, a->params, &a->res, a->err, sizeof a->err);
}

/* Run a query on a writer; on success a->res holds the result (PQclear). */
static int run_query(store *st, query_args *a, const char *what)
{
    a->res = NULL;
    a->err[0] = '\0';
    int rc = store_call(st, query_fn, a);
    if (rc != INGEST_OK) {
        if (a->err[0])
            log_warn("jobs: %s failed: %s", what, a->err);
        PQclear(a->res);
        a->res = NULL;
    }
    return rc;
}

int jobs_reap(store *st, char *const *providers, size_t n_providers)
{
    if (n_providers == 0)
        return INGEST_OK;
    char *list = store_text_array(providers, n_providers);
    if (!list)
        return INGEST_ENOMEM;
    query_args a = {.sql = reap_sql, .params = {list}, .n_params = 1};
    int rc = run_query(st, &a, "dead-lettering unrunnable jobs");
    PQclear(a.res);
    free(list);
    return rc;
}

int jobs_claimable_pairs(store *st, char *const *providers, size_t n_providers, job_pair **pairs,
                         size_t *n)
{
    *pairs = NULL;
    *n = 0;
    if (n_providers == 0)
        return INGEST_OK;
    char *list = store_text_array(providers, n_providers);
    if (!list)
        return INGEST_ENOMEM;
    query_args a = {.sql = pairs_sql, .params = {list}, .n_params = 1};
    int rc = run_query(st, &a, "listing waiting jobs");
    free(list);
    if (rc != INGEST_OK)
        return rc;
    int rows = PQntuples(a.res);
    *pairs = rows ? calloc((size_t)rows, sizeof **pairs) : NULL;
    for (int i = 0; *pairs && i < rows; i++) {
        copy_field((*pairs)[i].tenant_id, sizeof(*pairs)[i].tenant_id, a.res, i, 0);
        copy_field((*pairs)[i].provider, sizeof(*pairs)[i].provider, a.res, i, 1);
    }
    *n = *pairs ? (size_t)rows : 0;
    PQclear(a.res);
    return rows && !*pairs ? INGEST_ENOMEM : INGEST_OK;
}

int jobs_claim_one(store *st, const char *owner, const char *tenant_id, const char *provider,
                   int lease_s, job_row *row, int *got)
{
    *got = 0;
    char lease[16];
    snprintf(lease, sizeof lease, "%d", lease_s);
    query_args a = {
        .sql = claim_one_sql, .params = {owner, lease, tenant_id, provider}, .n_params = 4};
    int rc = run_query(st, &a, "claim");
    if (rc != INGEST_OK)
        return rc;
    if (PQntuples(a.res) > 0) {
        row_from(row, a.res, 0);
        *got = 1;
    }
    PQclear(a.res);
    return INGEST_OK;
}

int jobs_claim_expired(store *st, const char *owner, char *const *providers, size_t n_providers,
                       int limit, int lease_s, job_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    if (n_providers == 0 || limit <= 0)
        return INGEST_OK;
    char *list = store_text_array(providers, n_providers);
    if (!list)
        return INGEST_ENOMEM;
    char lease[16], lim[16];
    snprintf(lease, sizeof lease, "%d", lease_s);
    snprintf(lim, sizeof lim, "%d", limit);
    query_args a = {.sql = claim_expired_sql, .params = {owner, lease, list, lim}, .n_params = 4};
    int rc = run_query(st, &a, "taking over expired leases");
    free(list);
    if (rc != INGEST_OK)
        return rc;
    int count = PQntuples(a.res);
    *rows = count ? calloc((size_t)count, sizeof **rows) : NULL;
    for (int i = 0; *rows && i < count; i++)
        row_from(&(*rows)[i], a.res, i);
    *n = *rows ? (size_t)count : 0;
    PQclear(a.res);
    return count && !*rows ? INGEST_ENOMEM : INGEST_OK;
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
    case JOB_DEAD:
        a = (finish_args){dead_sql, {job->id, owner, err, recs}, 4};
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

/* One live job per connection and stream (index sync_jobs_live_once): a
 * second request returns the live one, moved up if it is still waiting. */
static const char enqueue_now_sql[] =
    "INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, kind, max_attempts)"
    " VALUES ($1, $2, $3, $4, $5, coalesce($6::int, 4))"
    " ON CONFLICT (connection_id, stream) WHERE state IN ('queued', 'retrying', 'running')"
    " DO UPDATE SET"
    "  kind = CASE WHEN sync_jobs.state <> 'running' AND excluded.kind = 'full'"
    "   THEN 'full' ELSE sync_jobs.kind END,"
    "  run_after = CASE WHEN sync_jobs.state = 'running' THEN sync_jobs.run_after"
    "   ELSE least(sync_jobs.run_after, now()) END,"
    "  updated_at = now()"
    " RETURNING id, xmax = 0";

/* The scheduler's: nothing if the stream has a live job or a recent one. */
static const char enqueue_scheduled_sql[] =
    "WITH last AS ("
    "  SELECT created_at AS at FROM sync_jobs WHERE connection_id = $2::uuid AND stream = $4"
    "  ORDER BY created_at DESC LIMIT 1),"
    " ins AS ("
    "  INSERT INTO sync_jobs (tenant_id, connection_id, provider, stream, kind, max_attempts)"
    "  SELECT $1, $2, $3, $4, 'incremental', coalesce($5::int, 4)"
    "  WHERE NOT EXISTS (SELECT 1 FROM last"
    "   WHERE at > now() - make_interval(secs => $6::double precision))"
    "  ON CONFLICT (connection_id, stream) WHERE state IN ('queued', 'retrying', 'running')"
    "  DO NOTHING RETURNING id, created_at)"
    " SELECT (SELECT id::text FROM ins),"
    "  coalesce((extract(epoch FROM coalesce((SELECT created_at FROM ins), (SELECT at FROM last)))"
    "   * 1000000)::bigint, 0)";

static const char newest_sql[] =
    "SELECT coalesce((SELECT (extract(epoch FROM created_at) * 1000000)::bigint FROM sync_jobs j"
    "  WHERE j.connection_id = p.c AND j.stream = p.s ORDER BY created_at DESC LIMIT 1), 0)"
    " FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS p(c, s, i) ORDER BY p.i";

static const char list_sql[] =
    "SELECT coalesce(json_agg(j), '[]')::text FROM ("
    " SELECT id, tenant_id, provider, connection_id, stream, kind, state, attempts, max_attempts,"
    "  run_after, created_at, started_at, finished_at, records, last_error FROM sync_jobs"
    " WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR provider = $2)"
    "  AND ($3::uuid IS NULL OR connection_id = $3::uuid)"
    " ORDER BY created_at DESC, id DESC LIMIT $4::int) j";

static const char live_counts_sql[] =
    "SELECT (SELECT count(*) FROM sync_jobs WHERE state = 'queued'),"
    " (SELECT count(*) FROM sync_jobs WHERE state = 'retrying'),"
    " (SELECT count(*) FROM sync_jobs WHERE state = 'running')";

/* Newest by created_at (index sync_jobs_provider_state_time), not by
 * finished_at: one index probe per provider, never a scan of the history. */
static const char success_age_sql[] =
    "SELECT coalesce((SELECT extract(epoch FROM now() - finished_at)::double precision"
    "  FROM sync_jobs WHERE provider = p.name AND state = 'succeeded'"
    "  ORDER BY created_at DESC LIMIT 1), -1)"
    " FROM unnest($1::text[]) WITH ORDINALITY AS p(name, i) ORDER BY p.i";

static const char *attempts_param(int max_attempts, char *buf, size_t len)
{
    if (max_attempts <= 0)
        return NULL;
    snprintf(buf, len, "%d", max_attempts);
    return buf;
}

int jobs_enqueue_now(store *st, const char *tenant_id, const char *connection_id,
                     const char *provider, const char *stream, int full_refresh, int max_attempts,
                     char *id_out, int *created)
{
    char att[16];
    query_args a = {.sql = enqueue_now_sql,
                    .params = {tenant_id, connection_id && *connection_id ? connection_id : NULL,
                               provider, stream, full_refresh ? "full" : "incremental",
                               attempts_param(max_attempts, att, sizeof att)},
                    .n_params = 6};
    int rc = run_query(st, &a, "queueing a job");
    if (rc != INGEST_OK)
        return rc;
    if (id_out)
        snprintf(id_out, 37, "%s", PQgetvalue(a.res, 0, 0));
    if (created)
        *created = PQgetvalue(a.res, 0, 1)[0] == 't';
    PQclear(a.res);
    return INGEST_OK;
}

int jobs_enqueue(store *st, const char *tenant_id, const char *connection_id, const char *provider,
                 const char *stream, int full_refresh, char *id_out)
{
    return jobs_enqueue_now(st, tenant_id, connection_id, provider, stream, full_refresh, 0, id_out,
                            NULL);
}

int jobs_enqueue_scheduled(store *st, const char *tenant_id, const char *connection_id,
                           const char *provider, const char *stream, int max_attempts,
                           double min_gap_s, int *created, int64_t *newest_us)
{
    char att[16], gap[32];
    snprintf(gap, sizeof gap, "%.3f", min_gap_s);
    query_args a = {.sql = enqueue_scheduled_sql,
                    .params = {tenant_id, connection_id, provider, stream,
                               attempts_param(max_attempts, att, sizeof att), gap},
                    .n_params = 6};
    int rc = run_query(st, &a, "scheduling a job");
    if (rc != INGEST_OK)
        return rc;
    *created = !PQgetisnull(a.res, 0, 0);
    *newest_us = strtoll(PQgetvalue(a.res, 0, 1), NULL, 10);
    PQclear(a.res);
    return INGEST_OK;
}

int jobs_newest(store *st, char *const *connection_ids, char *const *streams, size_t n,
                int64_t *newest_us)
{
    if (n == 0)
        return INGEST_OK;
    char *conns = store_text_array(connection_ids, n);
    char *strs = store_text_array(streams, n);
    int rc = INGEST_ENOMEM;
    if (conns && strs) {
        query_args a = {.sql = newest_sql, .params = {conns, strs}, .n_params = 2};
        rc = run_query(st, &a, "reading the newest jobs");
        for (int i = 0; rc == INGEST_OK && i < PQntuples(a.res) && (size_t)i < n; i++)
            newest_us[i] = strtoll(PQgetvalue(a.res, i, 0), NULL, 10);
        PQclear(a.res);
    }
    free(conns);
    free(strs);
    return rc;
}

int jobs_list(store *st, const char *state, const char *provider, const char *connection_id,
              int limit, json_object **out, char *err, size_t err_len)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : 50);
    const char *p[] = {state, provider, connection_id, lim};
    return store_query_json(st, list_sql, 4, p, out, err, err_len);
}

int jobs_live_counts(store *st, long long counts[3])
{
    query_args a = {.sql = live_counts_sql};
    int rc = run_query(st, &a, "counting jobs");
    for (int i = 0; rc == INGEST_OK && i < 3; i++)
        counts[i] = strtoll(PQgetvalue(a.res, 0, i), NULL, 10);
    PQclear(a.res);
    return rc;
}

int jobs_success_age(store *st, char *const *providers, size_t n, double *age_s)
{
    if (n == 0)
        return INGEST_OK;
    char *list = store_text_array(providers, n);
    if (!list)
        return INGEST_ENOMEM;
    query_args a = {.sql = success_age_sql, .params = {list}, .n_params = 1};
    int rc = run_query(st, &a, "reading connector lag");
    for (int i = 0; rc == INGEST_OK && i < PQntuples(a.res) && (size_t)i < n; i++)
        age_s[i] = strtod(PQgetvalue(a.res, i, 0), NULL);
    PQclear(a.res);
    free(list);
    return rc;
}
