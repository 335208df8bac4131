/*
 * rest_plugin.c — test plugins for the operator REST API, one per auth
 * kind (see tests/plugins/meson.build): restp (OAuth2 with PKCE, webhooks),
 * restt (token / API key), restb (basic), resta (AWS).
 *
 * check_connection accepts only known-good credentials ("good-token",
 * "good-key", password "good-password", secret key "good-secret"), so tests
 * can see a refused connection never being stored. The OAuth2 variant's
 * endpoints cannot resolve: tests point the host at a mock authorization
 * server with plugins.restp.oauth_authorize_url / oauth_token_url.
 * Its on_authorized keeps a Slack-like reply's extra members: the user
 * token (authed_user.access_token) as a secret, the team in the settings;
 * a reply with "ok": false is refused.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "ingest/plugin.h"

#if defined(AUTH_OAUTH2)
#define PLUGIN_NAME "restp"
#elif defined(AUTH_BASIC)
#define PLUGIN_NAME "restb"
#elif defined(AUTH_AWS)
#define PLUGIN_NAME "resta"
#else
#define PLUGIN_NAME "restt"
#endif

typedef struct rest_state {
    const ingest_host_api *api;
} rest_state;

/* 1 when secret `field` of the run's connection equals `good`. */
static int secret_is(const ingest_host_api *api, ingest_run *run, const char *field,
                     const char *good)
{
    char *value = NULL;
    if (api->secret_get(run, field, &value) != INGEST_OK)
        return 0;
    int same = strcmp(value, good) == 0;
    api->secret_free(value);
    return same;
}

static int rest_check(ingest_run *run, void *state)
{
    const ingest_host_api *api = ((rest_state *)state)->api;
#if defined(AUTH_OAUTH2)
    int ok = secret_is(api, run, "access_token", "good-token");
#elif defined(AUTH_BASIC)
    int ok = secret_is(api, run, "username", "operator") &&
             secret_is(api, run, "password", "good-password");
#elif defined(AUTH_AWS)
    int ok = secret_is(api, run, "secret_access_key", "good-secret");
#else
    int ok =
        secret_is(api, run, "token", "good-token") || secret_is(api, run, "api_key", "good-key");
#endif
    return ok ? INGEST_OK : INGEST_EAUTH;
}

static int rest_sync(ingest_run *run, void *state, const ingest_job *job)
{
    const ingest_host_api *api = ((rest_state *)state)->api;
    ingest_signal sig = {.hdr = INGEST_ABI_HEADER(ingest_signal),
                         .kind = "rest.synced",
                         .dedupe_key = job->job_id,
                         .occurred_at_us = api->now_us(),
                         .payload_json = "{}"};
    return api->emit(run, &sig);
}

#if defined(AUTH_OAUTH2)
static int rest_webhook(ingest_run *run, void *state, const ingest_delivery *delivery)
{
    (void)run;
    (void)state;
    (void)delivery;
    return INGEST_OK;
}
#endif

#if defined(AUTH_OAUTH2)
/* The string at obj.a.b, or NULL. */
static const char *string_at(json_object *obj, const char *a, const char *b)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, a, &v) || (b && !json_object_object_get_ex(v, b, &v)))
        return NULL;
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* The refusals of minor 3's settings calls, checked on every install: a
 * host that accepted any of them fails the connect flow (503). */
static int refusals_hold(const ingest_host_api *api, ingest_run *run)
{
    char id[37];
    return api->connection_config_merge(run, "[1]") == INGEST_EINVAL &&
           api->connection_config_merge(run, "{\"a\": ") == INGEST_EINVAL &&
           api->connection_route(run, "team_id", "T0001", id) == INGEST_ESTATE; /* not a delivery */
}

static int keep_reply_extras(const ingest_host_api *api, ingest_run *run, json_object *reply)
{
    if (!refusals_hold(api, run))
        return INGEST_EIO;
    const char *user_token = string_at(reply, "authed_user", "access_token");
    int rc = user_token ? api->secret_put(run, "user_token", user_token, 0) : INGEST_OK;
    const char *team = string_at(reply, "team", "id");
    if (rc == INGEST_OK && team) {
        json_object *merge = json_object_new_object();
        json_object_object_add(merge, "team_id", json_object_new_string(team));
        json_object_object_add(merge, "drop_me", NULL);
        rc = api->connection_config_merge(run, json_object_to_json_string(merge));
        json_object_put(merge);
    }
    return rc;
}

static int rest_authorized(ingest_run *run, void *state, const char *token_reply_json)
{
    const ingest_host_api *api = ((rest_state *)state)->api;
    json_object *reply = json_tokener_parse(token_reply_json), *ok = NULL;
    int rc = INGEST_EINVAL;
    if (json_object_is_type(reply, json_type_object)) {
        int refused = json_object_object_get_ex(reply, "ok", &ok) && !json_object_get_boolean(ok);
        rc = refused ? INGEST_EAUTH : keep_reply_extras(api, run, reply);
    }
    json_object_put(reply);
    return rc;
}
#endif

static int rest_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    (void)ctx;
    (void)conf;
    rest_state *st = calloc(1, sizeof *st);
    if (!st)
        return INGEST_ENOMEM;
    st->api = api;
    *state = st;
    return INGEST_OK;
}

static void rest_shutdown(void *state) { free(state); }

static const ingest_stream rest_streams[] = {
    {.name = "items", .primary_key = "id", .cursor_field = "updated_at"},
    {.name = "events", .primary_key = "id", .cursor_field = NULL},
};

static const ingest_plugin descriptor = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = PLUGIN_NAME,
    .version = "1.2.3",
    .description = "test plugin for the operator REST API",
#if defined(AUTH_OAUTH2)
    .auth = {.kind = INGEST_AUTH_OAUTH2,
             .authorize_url = "https://oauth.invalid/authorize",
             .token_url = "https://oauth.invalid/token",
             .scopes = "read write",
             .pkce = 1},
    .webhook = {.scheme = INGEST_WEBHOOK_HMAC_SHA256, .signature_header = "X-Rest-Signature"},
    .handle_webhook = rest_webhook,
    .on_authorized = rest_authorized,
#elif defined(AUTH_BASIC)
    .auth = {.kind = INGEST_AUTH_BASIC},
#elif defined(AUTH_AWS)
    .auth = {.kind = INGEST_AUTH_AWS},
#else
    .auth = {.kind = INGEST_AUTH_TOKEN},
#endif
    .streams = INGEST_ARRAY(rest_streams),
    .init = rest_init,
    .shutdown = rest_shutdown,
    .sync = rest_sync,
    .check_connection = rest_check,
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &descriptor; }
