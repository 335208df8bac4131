/* deadletters.c — listing and replay. A replay resets the original row
 * (delivery or job) and stamps the dead letter in the same transaction, so
 * a replay is never lost or applied twice. */
#include "deadletters.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/plugin.h"

static const char list_sql[] =
    "SELECT coalesce(json_agg(json_build_object('id', id, 'kind', kind, 'tenant_id', tenant_id,"
    "  'provider', provider, 'connection_id', connection_id, 'ref_id', ref_id,"
    "  'payload', payload, 'error', error, 'attempts', attempts, 'created_at', created_at,"
    "  'replayed_at', replayed_at) ORDER BY created_at DESC, id), '[]')"
    " FROM (SELECT * FROM dead_letters"
    "  WHERE ($1::text IS NULL OR provider = $1) AND ($2::bool OR replayed_at IS NULL)"
    "  ORDER BY created_at DESC, id LIMIT $3::int) d";

/* Records (rows a bulk import refused) are fixed at their source and
 * imported again; only deliveries and jobs can be replayed from here. */
static const char replay_sql[] =
    "WITH picked AS ("
    "  UPDATE dead_letters SET replayed_at = now()"
    "  WHERE replayed_at IS NULL AND kind IN ('webhook', 'job')"
    "   AND ($1::uuid IS NULL OR id = $1::uuid)"
    "  RETURNING kind, ref_id),"
    " webhooks AS ("
    "  UPDATE webhook_deliveries d SET state = 'pending', attempts = 0, run_after = now(),"
    "   last_error = NULL, lease_owner = NULL, lease_expires_at = NULL"
    "  FROM picked p WHERE p.kind = 'webhook' AND d.id = p.ref_id RETURNING d.id),"
    /* A stream has one live job at most (sync_jobs_live_once): a dead job
     * whose stream already has one is covered by it and not requeued, and
     * of several dead jobs of one stream only the newest is. */
    " requeue AS ("
    "  SELECT DISTINCT ON (s.connection_id, s.stream) s.id FROM sync_jobs s"
    "  JOIN picked p ON p.kind = 'job' AND s.id = p.ref_id"
    "  WHERE NOT EXISTS (SELECT 1 FROM sync_jobs l WHERE l.connection_id = s.connection_id"
    "   AND l.stream = s.stream AND l.state IN ('queued', 'retrying', 'running'))"
    "  ORDER BY s.connection_id, s.stream, s.created_at DESC),"
    " jobs AS ("
    "  UPDATE sync_jobs j SET state = 'queued', attempts = 0, run_after = now(),"
    "   last_error = NULL, lease_owner = NULL, lease_expires_at = NULL, finished_at = NULL,"
    "   updated_at = now()"
    "  FROM requeue r WHERE j.id = r.id RETURNING j.id)"
    " SELECT (SELECT count(*) FROM picked), (SELECT count(*) FROM webhooks),"
    "  (SELECT count(*) FROM jobs)";

int deadletters_list(store *st, const char *provider, int include_replayed, int limit,
                     json_object **out, char *err, size_t err_len)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {provider, include_replayed ? "true" : "false", lim};
    return store_query_json(st, list_sql, 3, p, out, err, err_len);
}

typedef struct replay_args {
    const char *id;
    long long picked, reset;
    char *err;
    size_t err_len;
} replay_args;

static int replay_fn(PGconn *conn, void *arg)
{
    replay_args *a = arg;
    const char *p[] = {a->id};
    PGresult *res = NULL;
    int rc = store_exec(conn, replay_sql, 1, p, &res, a->err, a->err_len);
    if (rc != INGEST_OK)
        return rc;
    a->picked = atoll(PQgetvalue(res, 0, 0));
    a->reset = atoll(PQgetvalue(res, 0, 1)) + atoll(PQgetvalue(res, 0, 2));
    PQclear(res);
    return INGEST_OK;
}

int deadletters_replay(store *st, const char *id, long long *replayed, char *err, size_t err_len)
{
    replay_args a = {id, 0, 0, err, err_len};
    snprintf(err, err_len, "database unavailable");
    int rc = store_call(st, replay_fn, &a);
    *replayed = a.reset;
    if (rc == INGEST_OK && id && a.picked == 0) {
        snprintf(err, err_len,
                 "no dead letter %s waiting for replay (unknown, already replayed, or a record)",
                 id);
        return INGEST_ENOTFOUND;
    }
    if (rc == INGEST_OK)
        err[0] = '\0';
    return rc;
}
