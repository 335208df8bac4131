/* connections.c — see connections.h. */
#include "connections.h"

#include <libpq-fe.h>
#include <stdio.h>

static const char list_sql[] =
    "SELECT coalesce(json_agg(json_build_object('id', id, 'tenant_id', tenant_id,"
    "  'provider', provider, 'name', name, 'auth_kind', auth_kind, 'status', status,"
    "  'status_reason', status_reason, 'token_expires_at', token_expires_at,"
    "  'created_at', created_at, 'updated_at', updated_at) ORDER BY created_at DESC, id), '[]')"
    " FROM (SELECT * FROM connections"
    "  WHERE ($1::uuid IS NULL OR tenant_id = $1::uuid) AND ($2::text IS NULL OR provider = $2)"
    "   AND ($3::text IS NULL OR status = $3)"
    "  ORDER BY created_at DESC, id LIMIT $4::int) c";

typedef struct list_args {
    const char *tenant_id, *provider, *status;
    int limit;
    json_object *out;
    char *err;
    size_t err_len;
} list_args;

static int list_fn(PGconn *conn, void *arg)
{
    list_args *a = arg;
    char limit[16];
    snprintf(limit, sizeof limit, "%d", a->limit);
    const char *p[] = {a->tenant_id, a->provider, a->status, limit};
    PGresult *res = NULL;
    int rc = store_exec(conn, list_sql, 4, p, &res, a->err, a->err_len);
    if (rc != INGEST_OK)
        return rc;
    a->out = json_tokener_parse(PQgetvalue(res, 0, 0));
    PQclear(res);
    return a->out ? INGEST_OK : INGEST_ENOMEM;
}

int connections_list(store *st, const char *tenant_id, const char *provider, const char *status,
                     int limit, json_object **out, char *err, size_t err_len)
{
    list_args a = {tenant_id, provider, status, limit, NULL, err, err_len};
    snprintf(err, err_len, "database unavailable");
    int rc = store_call(st, list_fn, &a);
    *out = rc == INGEST_OK ? a.out : NULL;
    if (rc != INGEST_OK)
        json_object_put(a.out);
    return rc;
}
