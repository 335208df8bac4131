/* connection_config.c — read by id and provider together, so a plugin only
 * ever sees the settings of its own connections. */
#include "connection_config.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "instance.h"
#include "run.h"
#include "store.h"

static const char select_config_sql[] =
    "SELECT config::text FROM connections WHERE id = $1::uuid AND provider = $2";

typedef struct config_args {
    const char *connection_id, *provider;
    char *json;
} config_args;

static int select_fn(PGconn *conn, void *arg)
{
    config_args *a = arg;
    const char *p[] = {a->connection_id, a->provider};
    PGresult *res = NULL;
    int rc = store_exec(conn, select_config_sql, 2, p, &res, NULL, 0);
    if (rc != INGEST_OK)
        return rc;
    if (PQntuples(res) == 1) {
        a->json = strdup(PQgetisnull(res, 0, 0) ? "{}" : PQgetvalue(res, 0, 0));
        rc = a->json ? INGEST_OK : INGEST_ENOMEM;
    } else {
        rc = INGEST_ENOTFOUND;
    }
    PQclear(res);
    return rc;
}

int connection_config_get(ingest_run *run, char **json)
{
    *json = NULL;
    instance *inst = run_instance(run);
    config_args a = {run_connection(run), inst->name, NULL};
    if (!a.connection_id)
        return INGEST_ENOTFOUND;
    int rc = store_call(inst->host->store, select_fn, &a);
    if (rc == INGEST_OK)
        *json = a.json;
    else
        free(a.json);
    return rc;
}
