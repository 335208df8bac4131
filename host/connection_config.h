/* connection_config.h — a connection's own settings (connections.config),
 * for the plugin that owns the connection. */
#ifndef HOSTD_CONNECTION_CONFIG_H
#define HOSTD_CONNECTION_CONFIG_H

#include "ingest/plugin.h"

/* api->connection_config: *json is malloc'd JSON object text ("{}" when the
 * connection has none). INGEST_ENOTFOUND when the run has no connection or
 * it is not a connection of the run's plugin. Blocks on the store. */
int connection_config_get(ingest_run *run, char **json);

/* api->connection_config_merge: the members of `json_object` (JSON object
 * text, at most 64 KiB) replace those of the same name in the settings of
 * the run's connection, a null removing its key, in one statement.
 * INGEST_EINVAL for anything but a JSON object, INGEST_ENOTFOUND when the
 * run has no connection of its plugin, INGEST_EIO when the store failed. */
int connection_config_merge(ingest_run *run, const char *json_object);

/* api->connection_route: bind a connection-less delivery's run to the one
 * active connection of its plugin whose setting `key` is the string
 * `value`; its id into id_out. INGEST_ENOTFOUND without one, INGEST_EINVAL
 * when several match (or bad arguments), INGEST_ESTATE as run_route says,
 * INGEST_EIO when the store failed. */
int connection_route(ingest_run *run, const char *key, const char *value, char id_out[37]);

#endif
