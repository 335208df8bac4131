/* connections.h — reading connections for operators (ingest-hostctl
 * connections): who is connected to what, and which connections need
 * attention (needs_reauth after a refused token refresh, disabled). */
#ifndef HOSTD_CONNECTIONS_H
#define HOSTD_CONNECTIONS_H

#include <json-c/json.h>
#include <stddef.h>

#include "ingest/plugin.h"
#include "store.h"

/* Connections newest first, filtered by tenant, provider and status (each
 * NULL for any), at most `limit`. *out is a new JSON array of objects
 * {id, tenant_id, provider, name, auth_kind, status, status_reason,
 * token_expires_at, created_at, updated_at} (the caller puts it); no
 * secret is read. Blocks on the store: workers only. */
int connections_list(store *st, const char *tenant_id, const char *provider, const char *status,
                     int limit, json_object **out, char *err, size_t err_len);

#endif
