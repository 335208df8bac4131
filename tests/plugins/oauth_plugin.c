/*
 * oauth_plugin.c — test plugin "oauthp" (ingest_oauthp.so) for OAuth2 token
 * refresh. Its descriptor declares INGEST_AUTH_OAUTH2 with a token URL that
 * cannot resolve; tests point the host at a mock token endpoint with the
 * host-reserved key plugins.oauthp.oauth_token_url.
 *
 * Each sync job reads the connection's "access_token" and emits one signal
 * whose payload carries the token's SHA-256, so a test can tell which token
 * a job used without the token ever being stored in clear. With api_url
 * set, the job first GETs that URL with the connection's credentials (so a
 * 401 makes the host force a refresh and retry) and records the status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/plugin.h"

typedef struct oauth_conf {
    int64_t sync_sleep_ms;
    const char *api_url;
} oauth_conf;

static const ingest_config_field oauth_config[] = {
    {.key = "sync_sleep_ms",
     .type = INGEST_CONF_INT,
     .default_value = "0",
     .min = 0,
     .max = 60000,
     .offset = offsetof(oauth_conf, sync_sleep_ms),
     .doc = "pause inside each sync job (to overlap jobs)"},
    {.key = "api_url",
     .type = INGEST_CONF_STRING,
     .offset = offsetof(oauth_conf, api_url),
     .doc = "GET this with the connection's token in each job"},
};

typedef struct oauth_state {
    const ingest_host_api *api;
    ingest_ctx *ctx;
    const oauth_conf *conf;
} oauth_state;

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The token's hash, never the token: signals are stored in clear. */
static int token_hash(const ingest_host_api *api, ingest_run *run, char out[65])
{
    char *token = NULL;
    int rc = api->secret_get(run, "access_token", &token);
    if (rc != INGEST_OK)
        return rc;
    api->sha256_hex(token, strlen(token), out);
    api->secret_free(token);
    return INGEST_OK;
}

/* GET api_url with the host adding the bearer token; *status gets the
 * final HTTP status (after the host's refresh-and-retry on 401). */
static int call_api(const oauth_state *st, ingest_run *run, long *status)
{
    const ingest_host_api *api = st->api;
    *status = 0;
    if (!st->conf->api_url)
        return INGEST_OK;
    if (!INGEST_API_HAS(api, http_request))
        return INGEST_EUNSUPPORTED;
    ingest_http_request req = {.hdr = INGEST_ABI_HEADER(ingest_http_request),
                               .method = "GET",
                               .url = st->conf->api_url,
                               .auth = INGEST_HTTP_AUTH_CONNECTION};
    ingest_http_response *resp = NULL;
    int rc = api->http_request(run, &req, &resp);
    if (resp)
        *status = resp->status;
    api->http_response_free(resp);
    return rc;
}

static int oauth_sync(ingest_run *run, void *state, const ingest_job *job)
{
    oauth_state *st = state;
    const ingest_host_api *api = st->api;
    long status = 0;
    int rc = call_api(st, run, &status);
    if (rc != INGEST_OK)
        return rc;
    char hash[65];
    if ((rc = token_hash(api, run, hash)) != INGEST_OK)
        return rc;
    if (st->conf->sync_sleep_ms)
        sleep_ms(st->conf->sync_sleep_ms);
    char payload[256];
    snprintf(payload, sizeof payload, "{\"job\":\"%s\",\"token_sha256\":\"%s\",\"api_status\":%ld}",
             job->job_id, hash, status);
    ingest_signal sig = {.hdr = INGEST_ABI_HEADER(ingest_signal),
                         .kind = "oauth.synced",
                         .dedupe_key = job->job_id,
                         .occurred_at_us = api->now_us(),
                         .payload_json = payload};
    return api->emit(run, &sig);
}

static int oauth_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    oauth_state *st = calloc(1, sizeof *st);
    if (!st)
        return INGEST_ENOMEM;
    st->api = api;
    st->ctx = ctx;
    st->conf = conf;
    *state = st;
    return INGEST_OK;
}

static void oauth_shutdown(void *state) { free(state); }

static const ingest_stream oauth_streams[] = {
    {.name = "items", .primary_key = "id", .cursor_field = NULL},
};

static const ingest_plugin descriptor = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = "oauthp",
    .version = "1.0.0",
    .description = "test plugin for OAuth2 token refresh",
    .auth = {.kind = INGEST_AUTH_OAUTH2,
             .authorize_url = "https://oauth.invalid/authorize",
             .token_url = "https://oauth.invalid/token",
             .scopes = "read"},
    .streams = INGEST_ARRAY(oauth_streams),
    .config = INGEST_ARRAY(oauth_config),
    .conf_size = sizeof(oauth_conf),
    .init = oauth_init,
    .shutdown = oauth_shutdown,
    .sync = oauth_sync,
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &descriptor; }
