/*
 * app_plugin.c — test plugin "appp" (ingest_appp.so) for per-connection auth
 * kinds and plugin-minted tokens (ABI minor 2). Its auth.kind is TOKEN and
 * it also accepts OAUTH2 and APP connections, like a GitHub connector that
 * takes a personal access token, an OAuth app or a GitHub App.
 *
 * mint_token does what a GitHub App connector does: it signs a JWT
 * {iat, exp, iss: <secret app_id>} with api->jwt_sign_rs256 (secret
 * private_key), POSTs it to {app_api_base}/app/installations/<secret
 * installation_id>/access_tokens and stores the returned token with its
 * expires_at through api->secret_put. tests/integration/mock_app_server.py
 * answers like GitHub and verifies the JWT with the public key.
 *
 * Each sync job GETs api_url with INGEST_HTTP_AUTH_CONNECTION (so the host
 * adds the connection's credentials by its kind, minting or refreshing as
 * needed) and emits one signal with the final HTTP status; check_connection
 * does the same GET and accepts a 200.
 *
 * Built twice: -DNO_MINT gives "appnomint", which declares APP without a
 * mint_token callback and must be refused by the loader.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/plugin.h"

#ifdef NO_MINT
#define PLUGIN_NAME "appnomint"
#else
#define PLUGIN_NAME "appp"
#endif

#define JWT_LIFETIME_S 540 /* GitHub takes at most 10 minutes */
#define JWT_BACKDATE_S 60  /* against clock drift, as GitHub advises */

typedef struct app_conf {
    const char *api_url;
    const char *app_api_base;
    int64_t sync_sleep_ms;
} app_conf;

static const ingest_config_field app_config[] = {
    {.key = "api_url",
     .type = INGEST_CONF_STRING,
     .offset = offsetof(app_conf, api_url),
     .doc = "GET this with the connection's credentials in each job and in the check"},
    {.key = "app_api_base",
     .type = INGEST_CONF_STRING,
     .default_value = "https://api.github.invalid",
     .offset = offsetof(app_conf, app_api_base),
     .doc = "where POST /app/installations/{id}/access_tokens goes"},
    {.key = "sync_sleep_ms",
     .type = INGEST_CONF_INT,
     .default_value = "0",
     .min = 0,
     .max = 60000,
     .offset = offsetof(app_conf, sync_sleep_ms),
     .doc = "pause inside each sync job (to overlap jobs)"},
};

typedef struct app_state {
    const ingest_host_api *api;
    ingest_ctx *ctx;
    const app_conf *conf;
} app_state;

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* GET api_url with the host adding the connection's credentials. */
static int call_api(const app_state *st, ingest_run *run, long *status)
{
    const ingest_host_api *api = st->api;
    *status = 0;
    if (!st->conf->api_url)
        return INGEST_OK;
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

static int app_sync(ingest_run *run, void *state, const ingest_job *job)
{
    app_state *st = state;
    long status = 0;
    int rc = call_api(st, run, &status);
    if (rc != INGEST_OK)
        return rc;
    if (st->conf->sync_sleep_ms)
        sleep_ms(st->conf->sync_sleep_ms);
    char payload[256];
    snprintf(payload, sizeof payload, "{\"job\":\"%s\",\"api_status\":%ld}", job->job_id, status);
    ingest_signal sig = {.hdr = INGEST_ABI_HEADER(ingest_signal),
                         .kind = "appp.synced",
                         .dedupe_key = job->job_id,
                         .occurred_at_us = st->api->now_us(),
                         .payload_json = payload};
    return st->api->emit(run, &sig);
}

static int app_check(ingest_run *run, void *state)
{
    long status = 0;
    int rc = call_api(state, run, &status);
    if (rc != INGEST_OK)
        return rc;
    return status == 200 ? INGEST_OK : INGEST_EAUTH;
}

#ifndef NO_MINT
/* The app's assertion: {"iat", "exp", "iss"} signed by the host with the
 * connection's private key. *jwt is host-allocated (api->secret_free). */
static int sign_assertion(const ingest_host_api *api, ingest_run *run, const char *app_id,
                          char **jwt)
{
    int64_t now = api->now_us() / 1000000;
    json_object *claims = json_object_new_object();
    if (!claims)
        return INGEST_ENOMEM;
    json_object_object_add(claims, "iat", json_object_new_int64(now - JWT_BACKDATE_S));
    json_object_object_add(claims, "exp", json_object_new_int64(now + JWT_LIFETIME_S));
    json_object_object_add(claims, "iss", json_object_new_string(app_id));
    int rc = api->jwt_sign_rs256(
        run, "private_key", json_object_to_json_string_ext(claims, JSON_C_TO_STRING_PLAIN), jwt);
    json_object_put(claims);
    return rc;
}

static int digits_only(const char *s)
{
    if (!s || !*s || strlen(s) > 20)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* 201 {"token", "expires_at"} -> the stored access token. */
static int store_token(const ingest_host_api *api, ingest_run *run,
                       const ingest_http_response *resp)
{
    json_object *doc = json_tokener_parse(resp->body), *token = NULL, *expires = NULL;
    int64_t expires_us = 0;
    int rc = INGEST_EIO;
    if (doc && json_object_object_get_ex(doc, "token", &token) &&
        json_object_is_type(token, json_type_string)) {
        if (json_object_object_get_ex(doc, "expires_at", &expires) &&
            api->parse_time(json_object_get_string(expires), &expires_us) != INGEST_OK)
            expires_us = 0;
        rc = api->secret_put(run, "access_token", json_object_get_string(token), expires_us);
        explicit_bzero((void *)json_object_get_string(token),
                       (size_t)json_object_get_string_len(token));
    }
    json_object_put(doc);
    return rc;
}

/* GitHub: 401 bad JWT, 403 suspended, 404 uninstalled — all need a person. */
static int exchange(const app_state *st, ingest_run *run, const char *installation_id,
                    const char *jwt)
{
    const ingest_host_api *api = st->api;
    char url[1024], bearer[4096];
    snprintf(url, sizeof url, "%s/app/installations/%s/access_tokens", st->conf->app_api_base,
             installation_id);
    if ((size_t)snprintf(bearer, sizeof bearer, "Bearer %s", jwt) >= sizeof bearer)
        return INGEST_EINVAL;
    const ingest_header headers[] = {{"Authorization", bearer},
                                     {"Accept", "application/vnd.github+json"},
                                     {"X-GitHub-Api-Version", "2022-11-28"}};
    ingest_http_request req = {.hdr = INGEST_ABI_HEADER(ingest_http_request),
                               .method = "POST",
                               .url = url,
                               .headers = headers,
                               .n_headers = sizeof headers / sizeof headers[0],
                               .auth = INGEST_HTTP_AUTH_NONE};
    ingest_http_response *resp = NULL;
    int rc = api->http_request(run, &req, &resp);
    explicit_bzero(bearer, sizeof bearer);
    if (rc == INGEST_OK && resp->status == 201)
        rc = store_token(api, run, resp);
    else if (rc == INGEST_OK && (resp->status == 401 || resp->status == 403 || resp->status == 404))
        rc = INGEST_EAUTH;
    else if (rc == INGEST_OK)
        rc = resp->status == 429 || resp->status >= 500 ? INGEST_EAGAIN : INGEST_EIO;
    api->http_response_free(resp);
    return rc;
}

static int app_mint(ingest_run *run, void *state)
{
    app_state *st = state;
    const ingest_host_api *api = st->api;
    char *app_id = NULL, *installation_id = NULL, *jwt = NULL;
    int rc = api->secret_get(run, "app_id", &app_id);
    if (rc == INGEST_OK)
        rc = api->secret_get(run, "installation_id", &installation_id);
    if (rc == INGEST_OK && !digits_only(installation_id))
        rc = INGEST_EAUTH; /* not an installation GitHub could have */
    if (rc == INGEST_OK)
        rc = sign_assertion(api, run, app_id, &jwt);
    if (rc == INGEST_OK)
        rc = exchange(st, run, installation_id, jwt);
    if (rc == INGEST_ENOTFOUND || rc == INGEST_EINVAL)
        rc = INGEST_EAUTH; /* the connection's app credentials are incomplete or bad */
    api->secret_free(jwt);
    api->secret_free(app_id);
    api->secret_free(installation_id);
    if (rc != INGEST_OK)
        api->log(st->ctx, run, INGEST_LOG_WARN, "minting an installation token failed (%d)", rc);
    return rc;
}
#endif

static int app_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    if (!INGEST_API_HAS(api, secret_put) || !INGEST_API_HAS(api, jwt_sign_rs256)) {
        api->set_error(ctx, "this host has no jwt_sign_rs256/secret_put (ABI minor 2)");
        return INGEST_EUNSUPPORTED;
    }
    app_state *st = calloc(1, sizeof *st);
    if (!st)
        return INGEST_ENOMEM;
    st->api = api;
    st->ctx = ctx;
    st->conf = conf;
    *state = st;
    return INGEST_OK;
}

static void app_shutdown(void *state) { free(state); }

static const ingest_stream app_streams[] = {
    {.name = "items", .primary_key = "id", .cursor_field = NULL},
};

static const ingest_plugin descriptor = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = PLUGIN_NAME,
    .version = "1.0.0",
    .description = "test plugin for per-connection auth kinds and minted app tokens",
    .auth = {.kind = INGEST_AUTH_TOKEN,
             .authorize_url = "https://oauth.invalid/authorize",
             .token_url = "https://oauth.invalid/token",
             .scopes = "repo"},
    .streams = INGEST_ARRAY(app_streams),
    .config = INGEST_ARRAY(app_config),
    .conf_size = sizeof(app_conf),
    .init = app_init,
    .shutdown = app_shutdown,
    .sync = app_sync,
    .check_connection = app_check,
    .auth_kinds_also = INGEST_AUTH_BIT(INGEST_AUTH_OAUTH2) | INGEST_AUTH_BIT(INGEST_AUTH_APP),
#ifndef NO_MINT
    .mint_token = app_mint,
#endif
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &descriptor; }
