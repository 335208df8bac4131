/* migrations.c — append new steps at the end; never edit a released one. */
#include "migrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct migration {
    int version;
    const char *name;
    const char *sql;
} migration;

/* Arbitrary constant: the advisory lock every daemon takes while migrating. */
#define MIGRATION_LOCK_KEY "7301448203559112281"

static const migration migrations[] = {
    {1, "signals and cursors",
     "CREATE TABLE signals ("
     "  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
     "  tenant_id uuid NOT NULL,"
     "  connection_id uuid,"
     "  source text NOT NULL,"
     "  kind text NOT NULL,"
     "  occurred_at timestamptz NOT NULL,"
     "  dedupe_key text NOT NULL,"
     "  payload jsonb NOT NULL,"
     "  raw jsonb,"
     "  provenance jsonb NOT NULL,"
     "  created_at timestamptz NOT NULL DEFAULT now(),"
     "  CONSTRAINT signals_dedupe UNIQUE (tenant_id, source, dedupe_key));"
     "CREATE INDEX signals_tenant_time ON signals (tenant_id, occurred_at DESC, id);"
     "CREATE INDEX signals_source_kind_time ON signals (source, kind, occurred_at DESC);"
     "CREATE TABLE cursors ("
     "  provider text NOT NULL,"
     "  connection_id uuid,"
     "  stream text NOT NULL,"
     "  value text NOT NULL,"
     "  updated_at timestamptz NOT NULL DEFAULT now(),"
     "  CONSTRAINT cursors_key UNIQUE NULLS NOT DISTINCT (provider, connection_id, stream));"},
    {2, "connections, secrets, jobs, webhook inbox, dead letters, idempotency keys",
     "CREATE TABLE providers ("
     "  name text PRIMARY KEY,"
     "  version text NOT NULL,"
     "  description text,"
     "  auth_kind text NOT NULL,"
     "  streams jsonb NOT NULL DEFAULT '[]',"
     "  updated_at timestamptz NOT NULL DEFAULT now());"
     "CREATE TABLE connections ("
     "  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
     "  tenant_id uuid NOT NULL,"
     "  provider text NOT NULL,"
     "  name text,"
     "  auth_kind text NOT NULL,"
     "  config jsonb NOT NULL DEFAULT '{}',"
     "  status text NOT NULL DEFAULT 'active'"
     "    CHECK (status IN ('active', 'needs_reauth', 'disabled')),"
     "  status_reason text,"
     "  token_expires_at timestamptz,"
     "  metadata jsonb NOT NULL DEFAULT '{}',"
     "  created_at timestamptz NOT NULL DEFAULT now(),"
     "  updated_at timestamptz NOT NULL DEFAULT now());"
     "CREATE INDEX connections_tenant_time ON connections (tenant_id, created_at, id);"
     "CREATE INDEX connections_provider ON connections (provider, status);"
     "CREATE TABLE connection_secrets ("
     "  connection_id uuid NOT NULL REFERENCES connections (id) ON DELETE CASCADE,"
     "  field text NOT NULL,"
     "  key_id text NOT NULL,"
     "  nonce bytea NOT NULL CHECK (octet_length(nonce) = 12),"
     "  ciphertext bytea NOT NULL CHECK (octet_length(ciphertext) >= 16),"
     "  updated_at timestamptz NOT NULL DEFAULT now(),"
     "  PRIMARY KEY (connection_id, field));"
     "CREATE INDEX connection_secrets_key ON connection_secrets (key_id);"
     "ALTER TABLE cursors ADD CONSTRAINT cursors_connection_fk FOREIGN KEY (connection_id)"
     "  REFERENCES connections (id) ON DELETE CASCADE;"
     "CREATE TABLE sync_jobs ("
     "  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
     "  tenant_id uuid NOT NULL,"
     "  connection_id uuid REFERENCES connections (id) ON DELETE CASCADE,"
     "  provider text NOT NULL,"
     "  stream text NOT NULL,"
     "  kind text NOT NULL DEFAULT 'incremental' CHECK (kind IN ('full', 'incremental')),"
     "  state text NOT NULL DEFAULT 'queued'"
     "    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'retrying', 'dead')),"
     "  attempts integer NOT NULL DEFAULT 0,"
     "  max_attempts integer NOT NULL DEFAULT 4,"
     "  run_after timestamptz NOT NULL DEFAULT now(),"
     "  lease_owner text,"
     "  lease_expires_at timestamptz,"
     "  last_error text,"
     "  records bigint NOT NULL DEFAULT 0,"
     "  created_at timestamptz NOT NULL DEFAULT now(),"
     "  started_at timestamptz,"
     "  finished_at timestamptz,"
     "  updated_at timestamptz NOT NULL DEFAULT now());"
     "CREATE INDEX sync_jobs_claimable ON sync_jobs (run_after)"
     "  WHERE state IN ('queued', 'retrying');"
     "CREATE INDEX sync_jobs_leases ON sync_jobs (lease_expires_at) WHERE state = 'running';"
     "CREATE INDEX sync_jobs_tenant_time ON sync_jobs (tenant_id, created_at DESC, id);"
     "CREATE INDEX sync_jobs_provider_state_time ON sync_jobs (provider, state, created_at DESC);"
     "CREATE TABLE webhook_deliveries ("
     "  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
     "  provider text NOT NULL,"
     "  tenant_id uuid,"
     "  connection_id uuid REFERENCES connections (id) ON DELETE SET NULL,"
     "  delivery_key text NOT NULL,"
     "  headers jsonb NOT NULL DEFAULT '{}',"
     "  body bytea NOT NULL,"
     "  content_type text,"
     "  received_at timestamptz NOT NULL DEFAULT now(),"
     "  state text NOT NULL DEFAULT 'pending'"
     "    CHECK (state IN ('pending', 'processing', 'processed', 'retrying', 'dead')),"
     "  attempts integer NOT NULL DEFAULT 0,"
     "  run_after timestamptz NOT NULL DEFAULT now(),"
     "  lease_owner text,"
     "  lease_expires_at timestamptz,"
     "  last_error text,"
     "  processed_at timestamptz);"
     "CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (run_after)"
     "  WHERE state IN ('pending', 'retrying');"
     "CREATE INDEX webhook_deliveries_provider_time ON webhook_deliveries"
     "  (provider, received_at DESC);"
     "CREATE TABLE idempotency_keys ("
     "  scope text NOT NULL,"
     "  key text NOT NULL,"
     "  delivery_id uuid REFERENCES webhook_deliveries (id) ON DELETE CASCADE,"
     "  created_at timestamptz NOT NULL DEFAULT now(),"
     "  expires_at timestamptz NOT NULL DEFAULT now() + interval '30 days',"
     "  PRIMARY KEY (scope, key));"
     "CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);"
     "CREATE TABLE dead_letters ("
     "  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
     "  kind text NOT NULL CHECK (kind IN ('webhook', 'job', 'record')),"
     "  tenant_id uuid,"
     "  provider text NOT NULL,"
     "  connection_id uuid,"
     "  ref_id uuid,"
     "  payload jsonb,"
     "  error text NOT NULL,"
     "  attempts integer NOT NULL DEFAULT 0,"
     "  created_at timestamptz NOT NULL DEFAULT now(),"
     "  replayed_at timestamptz);"
     "CREATE INDEX dead_letters_tenant_time ON dead_letters (tenant_id, created_at DESC, id);"
     "CREATE INDEX dead_letters_provider_time ON dead_letters (provider, created_at DESC);"
     "CREATE INDEX signals_connection_time ON signals (connection_id, occurred_at DESC)"
     "  WHERE connection_id IS NOT NULL;"},
    /* Claims ask one provider at a time in run_after order: this index
     * serves them without a sort even before the table was ever analyzed
     * (with the old one a growing inbox got a bitmap scan and an external
     * sort per claim). The reaper's scan for expired leases gets its own. */
    {3, "webhook delivery claim and lease indexes",
     "DROP INDEX webhook_deliveries_pending;"
     "CREATE INDEX webhook_deliveries_claim ON webhook_deliveries (provider, run_after)"
     "  WHERE state IN ('pending', 'retrying');"
     "CREATE INDEX webhook_deliveries_leases ON webhook_deliveries (lease_expires_at)"
     "  WHERE state = 'processing';"},
    /* The sync engine: at most one live (queued, retrying or running) job per
     * connection and stream, so schedulers on several daemons can enqueue
     * with ON CONFLICT DO NOTHING and jobs never pile up (older duplicates of
     * a waiting job are dropped first so the index can be built). Claims go
     * tenant by tenant and provider by provider in run_after order on a
     * partial index, so they never sort; the scheduler finds the newest job
     * of a connection's stream through its own index. */
    {4, "sync scheduling: one live job per stream, per-tenant claim index",
     "DELETE FROM sync_jobs WHERE id IN (SELECT id FROM ("
     "  SELECT id, state, row_number() OVER (PARTITION BY connection_id, stream"
     "   ORDER BY state = 'running' DESC, created_at, id) AS n"
     "  FROM sync_jobs WHERE connection_id IS NOT NULL"
     "   AND state IN ('queued', 'retrying', 'running')) d"
     " WHERE n > 1 AND state <> 'running');"
     "CREATE UNIQUE INDEX sync_jobs_live_once ON sync_jobs (connection_id, stream)"
     "  WHERE state IN ('queued', 'retrying', 'running');"
     "DROP INDEX sync_jobs_claimable;"
     "CREATE INDEX sync_jobs_claim ON sync_jobs (tenant_id, provider, run_after)"
     "  WHERE state IN ('queued', 'retrying');"
     "CREATE INDEX sync_jobs_stream_time ON sync_jobs (connection_id, stream, created_at DESC)"
     "  WHERE connection_id IS NOT NULL;"},
    /* Cursors only move forward. A plugin's cursor is opaque text, but when
     * the stored and the new value are both integers, or both timestamps,
     * an older one is not written (a retried or overlapping run must not
     * rewind a stream). Anything else is taken as it is. */
    {5, "cursors only move forward",
     "CREATE FUNCTION ingest_cursor_not_behind(stored text, proposed text) RETURNS boolean"
     " LANGUAGE plpgsql STABLE AS $fn$"
     " BEGIN"
     "  IF stored ~ '^-?[0-9]{1,18}$' AND proposed ~ '^-?[0-9]{1,18}$' THEN"
     "   RETURN proposed::bigint >= stored::bigint;"
     "  END IF;"
     "  IF stored ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}'"
     "   AND proposed ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}' THEN"
     "   BEGIN"
     "    RETURN proposed::timestamptz >= stored::timestamptz;"
     "   EXCEPTION WHEN others THEN"
     "    RETURN true;" /* not a timestamp after all: opaque */
     "   END;"
     "  END IF;"
     "  RETURN true;"
     " END $fn$;"},
    /* The key's delivery_id only says which delivery claimed the key; its
     * foreign key check (a lookup and a row lock per key in every inbox
     * commit) was a quarter of the inbox statement's time, and deliveries
     * are never deleted while their key lives. */
    {6, "idempotency keys without a foreign key check",
     "ALTER TABLE idempotency_keys DROP CONSTRAINT IF EXISTS idempotency_keys_delivery_id_fkey;"},
    /* Where a delivery came from, for the provenance of push sources. */
    {7, "webhook delivery sender address",
     "ALTER TABLE webhook_deliveries ADD COLUMN remote_addr text;"},
    /* Processed deliveries past their retention are removed unless a dead
     * letter refers to them; that check needs to find the letter by ref. */
    {8, "dead letters found by the row they refer to",
     "CREATE INDEX dead_letters_ref ON dead_letters (ref_id) WHERE ref_id IS NOT NULL;"},
};
#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])

int migrations_latest(void) { return migrations[N_MIGRATIONS - 1].version; }

static int exec_ok(PGconn *conn, const char *sql, char *err, size_t err_len)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, err_len, "%s", PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

static int is_applied(PGconn *conn, int version, int *applied)
{
    char v[16];
    snprintf(v, sizeof v, "%d", version);
    const char *params[] = {v};
    PGresult *res = PQexecParams(conn, "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
                                 NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    *applied = ok && PQntuples(res) > 0;
    PQclear(res);
    return ok ? 0 : -1;
}

static int apply_one(PGconn *conn, const migration *m, char *err, size_t err_len)
{
    char v[16];
    snprintf(v, sizeof v, "%d", m->version);
    const char *params[] = {v, m->name};
    if (exec_ok(conn, "BEGIN", err, err_len) < 0)
        return -1;
    if (exec_ok(conn, m->sql, err, err_len) < 0)
        goto rollback;
    PGresult *res =
        PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, NULL,
                     params, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, err_len, "%s", PQresultErrorMessage(res));
    PQclear(res);
    if (!ok)
        goto rollback;
    return exec_ok(conn, "COMMIT", err, err_len);
rollback:;
    char ignored[8];
    exec_ok(conn, "ROLLBACK", ignored, sizeof ignored);
    return -1;
}

int migrations_apply(PGconn *conn, int *applied, char *err, size_t err_len)
{
    *applied = 0;
    if (exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")", err, err_len) < 0)
        return -1;
    int rc = exec_ok(conn,
                     "CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version integer PRIMARY KEY,"
                     " name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())",
                     err, err_len);
    for (size_t i = 0; rc == 0 && i < N_MIGRATIONS; i++) {
        int done = 0;
        rc = is_applied(conn, migrations[i].version, &done);
        if (rc < 0) {
            snprintf(err, err_len, "%s", PQerrorMessage(conn));
            break;
        }
        if (done)
            continue;
        char step_err[512];
        rc = apply_one(conn, &migrations[i], step_err, sizeof step_err);
        if (rc < 0)
            snprintf(err, err_len, "migration %d (%s): %s", migrations[i].version,
                     migrations[i].name, step_err);
        else
            (*applied)++;
    }
    char unlock_err[256];
    exec_ok(conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")", unlock_err,
            sizeof unlock_err);
    return rc;
}
