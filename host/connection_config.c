/* connection_config.c — read by id and provider together, so a plugin only
 * ever sees the settings of its own connections. */
#include "connection_config.h"

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "instance.h"
#include "run.h"
#include "store.h"
#include "util.h"

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

/* Keys set to null go, the others replace or join; one statement, so two
 * merges never lose each other's keys. */
static const char merge_config_sql[] =
    "UPDATE connections SET config ="
    " (COALESCE(config, '{}'::jsonb) - ARRAY(SELECT key FROM jsonb_each($3::jsonb)"
    "                                         WHERE value = 'null'::jsonb))"
    " || (SELECT COALESCE(jsonb_object_agg(key, value), '{}'::jsonb)"
    "     FROM jsonb_each($3::jsonb) WHERE value <> 'null'::jsonb)"
    " WHERE id = $1::uuid AND provider = $2";

#define MERGE_MAX_BYTES (64 * 1024)

typedef struct merge_args {
    const char *connection_id, *provider, *json;
} merge_args;

static int merge_fn(PGconn *conn, void *arg)
{
    merge_args *a = arg;
    const char *p[] = {a->connection_id, a->provider, a->json};
    PGresult *res = NULL;
    int rc = store_exec(conn, merge_config_sql, 3, p, &res, NULL, 0);
    if (rc == INGEST_OK && atoi(PQcmdTuples(res)) != 1)
        rc = INGEST_ENOTFOUND;
    PQclear(res);
    return rc;
}

/* Strictly parsed (what json-c accepts here, jsonb accepts too) and written
 * out again, so PostgreSQL never sees the plugin's own text. */
static char *object_text(const char *text)
{
    json_object *o = util_json_parse_strict(text, MERGE_MAX_BYTES);
    char *out = json_object_is_type(o, json_type_object)
                    ? strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN))
                    : NULL;
    json_object_put(o);
    return out;
}

int connection_config_merge(ingest_run *run, const char *json_object)
{
    instance *inst = run_instance(run);
    merge_args a = {run_connection(run), inst->name, NULL};
    char *text = object_text(json_object);
    if (!text)
        return INGEST_EINVAL;
    a.json = text;
    int rc = a.connection_id ? store_call(inst->host->store, merge_fn, &a) : INGEST_ENOTFOUND;
    free(text);
    return rc;
}

/* Two rows are asked for so that an ambiguous value is seen as such. */
static const char route_sql[] =
    "SELECT id::text, tenant_id::text FROM connections"
    " WHERE provider = $1 AND status = 'active' AND config ->> $2 = $3 LIMIT 2";

typedef struct route_args {
    const char *provider, *key, *value;
    char id[37], tenant[37];
    int matches;
} route_args;

static int route_fn(PGconn *conn, void *arg)
{
    route_args *a = arg;
    const char *p[] = {a->provider, a->key, a->value};
    PGresult *res = NULL;
    int rc = store_exec(conn, route_sql, 3, p, &res, NULL, 0);
    if (rc != INGEST_OK)
        return rc;
    a->matches = PQntuples(res);
    if (a->matches == 1) {
        snprintf(a->id, sizeof a->id, "%s", PQgetvalue(res, 0, 0));
        snprintf(a->tenant, sizeof a->tenant, "%s", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return INGEST_OK;
}

int connection_route(ingest_run *run, const char *key, const char *value, char id_out[37])
{
    id_out[0] = '\0';
    if (!key || !*key || strlen(key) > 64 || !value || !*value || strlen(value) > 1024)
        return INGEST_EINVAL;
    if (run_connection(run) || !run_delivery(run))
        return INGEST_ESTATE;
    instance *inst = run_instance(run);
    route_args a = {.provider = inst->name, .key = key, .value = value};
    int rc = store_call(inst->host->store, route_fn, &a);
    if (rc != INGEST_OK)
        return rc;
    if (a.matches != 1)
        return a.matches == 0 ? INGEST_ENOTFOUND : INGEST_EINVAL;
    rc = run_route(run, a.id, a.tenant);
    if (rc == INGEST_OK)
        snprintf(id_out, 37, "%s", a.id);
    return rc;
}
