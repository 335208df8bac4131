/* connection_config.h — a connection's own settings (connections.config),
 * for the plugin that owns the connection. */
#ifndef HOSTD_CONNECTION_CONFIG_H
#define HOSTD_CONNECTION_CONFIG_H

#include "ingest/plugin.h"

/* api->connection_config: *json is malloc'd JSON object text ("{}" when the
 * connection has none). INGEST_ENOTFOUND when the run has no connection or
 * it is not a connection of the run's plugin. Blocks on the store. */
int connection_config_get(ingest_run *run, char **json);

#endif
