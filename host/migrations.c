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
