/* rest_connections.h — storing a new connection for the REST API, shared by
 * POST /connections and the OAuth callback. */
#ifndef HOSTD_REST_CONNECTIONS_H
#define HOSTD_REST_CONNECTIONS_H

#include <json-c/json.h>

#include "rest.h"

/* On a worker, for r->tenant and r->inst's provider: insert the connection
 * inactive, store `secrets` (field -> string, borrowed) encrypted through
 * secrets.c with token_expires_at = now + expires_in_s (none when < 0),
 * let the plugin's check_connection test it when `check` is set, then
 * activate it; on any failure remove it again and record the problem.
 * 0 with the new id in id_out[37], or -1. */
int rest_connection_store(rest_req *r, const char *auth_kind, const char *name, json_object *config,
                          json_object *secrets, long long expires_in_s, int check,
                          const char *token_reply, char id_out[37]);

/* The connection as the API shows it: names of its secrets, never values. */
#define REST_CONNECTION_JSON                                                                       \
    "json_build_object('id', c.id, 'provider', c.provider, 'name', c.name,"                        \
    " 'auth_kind', c.auth_kind, 'config', c.config, 'status', c.status,"                           \
    " 'status_reason', c.status_reason, 'token_expires_at', c.token_expires_at,"                   \
    " 'secret_fields', (SELECT coalesce(json_agg(s.field ORDER BY s.field), '[]')"                 \
    "   FROM connection_secrets s WHERE s.connection_id = c.id),"                                  \
    " 'created_at', c.created_at, 'updated_at', c.updated_at)::text"

#endif
