/* connections.c — see connections.h. */
#include "connections.h"

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

int connections_list(store *st, const char *tenant_id, const char *provider, const char *status,
                     int limit, json_object **out, char *err, size_t err_len)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[] = {tenant_id, provider, status, lim};
    return store_query_json(st, list_sql, 4, p, out, err, err_len);
}
