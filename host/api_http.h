/* api_http.h — the API table's HTTP entries: plugins' outbound requests go
 * through the daemon's http_client (rate limiter, retries, timeouts,
 * cancel on shutdown) with the run's connection credentials added by the
 * host, plus the pagination helpers that read the responses. */
#ifndef HOSTD_API_HTTP_H
#define HOSTD_API_HTTP_H

#include "ingest/plugin.h"

int api_http_request(ingest_run *run, const ingest_http_request *req, ingest_http_response **resp);
void api_http_response_free(ingest_http_response *resp);
const char *api_http_header(const ingest_http_response *resp, const char *name);
int api_http_next_link(const ingest_http_response *resp, char **url);
int api_json_cursor(const ingest_http_response *resp, const char *path, char **value);
int api_url_with_param(const char *url, const char *name, const char *value, char **out);
int api_retry_after(ingest_run *run, int64_t ms);

#endif
