/* rest_routes.h — the REST API's route handlers, by the file that holds
 * them. Each runs on the loop thread after rest.c has matched the route,
 * checked the bearer token, the tenant and the query parameter names; a
 * handler answers at once or hands its database work to rest_async(). */
#ifndef HOSTD_REST_ROUTES_H
#define HOSTD_REST_ROUTES_H

#include "rest.h"

/* rest_docs.c: GET /providers, /openapi.json, /docs, /docs/{asset} */
void rest_get_providers(rest_req *r);
void rest_get_openapi(rest_req *r);
void rest_get_docs(rest_req *r);
void rest_get_docs_asset(rest_req *r);

/* rest_connections.c: connections and manual sync */
void rest_post_connection(rest_req *r);
void rest_list_connections(rest_req *r);
void rest_get_connection(rest_req *r);
void rest_delete_connection(rest_req *r);
void rest_post_sync(rest_req *r);

/* rest_read.c: jobs, signals, dead letters */
void rest_list_jobs(rest_req *r);
void rest_list_signals(rest_req *r);
void rest_list_deadletters(rest_req *r);
void rest_replay_deadletter(rest_req *r);

/* rest_connect.c: the OAuth2 authorization code flow */
void rest_connect_start(rest_req *r);
void rest_connect_callback(rest_req *r);

#endif
