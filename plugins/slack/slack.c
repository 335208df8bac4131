/*
 * slack.c — the Slack connector: descriptor, configuration, init.
 *
 * Streams: channels (conversations.list) and messages (conversations.history
 * per channel, conversations.replies per thread). Events API, slash commands
 * and interactive payloads arrive signed with Slack's v0 scheme, which the
 * host verifies (INGEST_WEBHOOK_SLACK_V0, 5-minute window) and deduplicates
 * by the envelope's event_id before anything reaches this plugin. Signals
 * and settings are documented in README.md.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slack.h"

const char *const sl_stream_names[SL_N_STREAMS] = {"channels", "messages"};

static const ingest_config_field slack_config[] = {
    {.key = "api_base_url",
     .type = INGEST_CONF_STRING,
     .default_value = SL_DEFAULT_BASE,
     .min = 8,
     .max = 512,
     .offset = offsetof(slack_conf, api_base_url),
     .doc = "Web API root; methods are <api_base_url>/<method>"},
    {.key = "channel_types",
     .type = INGEST_CONF_STRING_LIST,
     .default_value = "public_channel,private_channel",
     .offset = offsetof(slack_conf, channel_types),
     .doc = "conversations.list types: public_channel, private_channel, mpim, im"},
    {.key = "streams",
     .type = INGEST_CONF_STRING_LIST,
     .default_value = "channels,messages",
     .offset = offsetof(slack_conf, streams),
     .doc = "which of channels, messages to sync"},
    {.key = "include_threads",
     .type = INGEST_CONF_BOOL,
     .default_value = "true",
     .offset = offsetof(slack_conf, include_threads),
     .doc = "read thread replies (conversations.replies) of threads that changed"},
    {.key = "resolve_users",
     .type = INGEST_CONF_BOOL,
     .default_value = "true",
     .offset = offsetof(slack_conf, resolve_users),
     .doc = "add user names (users.info, cached) to message payloads"},
    {.key = "history_per_minute",
     .type = INGEST_CONF_INT,
     .default_value = "50",
     .min = 1,
     .max = 1000,
     .offset = offsetof(slack_conf, history_per_minute),
     .doc = "conversations.history/replies quota: 50 (Tier 3), 1 for non-Marketplace apps"},
    {.key = "page_limit",
     .type = INGEST_CONF_INT,
     .default_value = "200",
     .min = 1,
     .max = 999,
     .offset = offsetof(slack_conf, page_limit),
     .doc = "items per page (`limit`); 15 for non-Marketplace apps' history"},
    {.key = "max_pages",
     .type = INGEST_CONF_INT,
     .default_value = "0",
     .min = 0,
     .max = 1000000,
     .offset = offsetof(slack_conf, max_pages),
     .doc = "safety stop: pages per walk (0 = no limit)"},
    {.key = "user_cache_ttl_s",
     .type = INGEST_CONF_INT,
     .default_value = "3600",
     .min = 0,
     .max = 604800,
     .offset = offsetof(slack_conf, user_cache_ttl_s),
     .doc = "how long a resolved user name is reused (0 = always ask users.info)"},
    {.key = "sync_on_webhook",
     .type = INGEST_CONF_BOOL,
     .default_value = "true",
     .offset = offsetof(slack_conf, sync_on_webhook),
     .doc = "app_rate_limited (events Slack dropped) asks for a messages sync"},
};

/* Messages are keyed by channel and ts; ts is also the cursor. */
static const ingest_stream slack_streams[] = {
    {.name = "channels", .primary_key = "id", .cursor_field = NULL, .default_interval_s = 3600},
    {.name = "messages", .primary_key = "ts", .cursor_field = "ts", .default_interval_s = 600},
};

/* ----------------------------------------------------------- validation */

static int check_conf(slack_state *st)
{
    const slack_conf *c = st->conf;
    for (size_t i = 0; i < c->streams.count; i++) {
        int s = sl_stream_index(c->streams.items[i]);
        if (s < 0) {
            st->api->set_error(st->ctx, "streams: '%.60s' is not one of channels, messages",
                               c->streams.items[i]);
            return INGEST_EINVAL;
        }
        st->streams |= 1u << s;
    }
    int rc = sl_types_join(&c->channel_types, &st->types);
    if (rc == INGEST_EINVAL) {
        st->api->set_error(st->ctx, "channel_types: each must be one of public_channel, "
                                    "private_channel, mpim, im");
        return rc;
    }
    if (rc == INGEST_OK)
        rc = sl_base_url(c->api_base_url, &st->base);
    if (rc == INGEST_EINVAL)
        st->api->set_error(st->ctx, "api_base_url must be an http(s) URL");
    return rc;
}

/* ----------------------------------------------------------- shared bits */

/* ------------------------------------------------------------- lifecycle */

static void slack_shutdown(void *state)
{
    slack_state *st = state;
    if (!st)
        return;
    sl_users_free(st->users);
    ingest_health_destroy(&st->health);
    free(st->base);
    free(st->types);
    free(st);
}

static int register_metrics(slack_state *st)
{
    const ingest_host_api *api = st->api;
    st->m_calls = api->metric_counter(st->ctx, "slack_api_calls_total", "Slack Web API calls");
    st->m_errors = api->metric_counter(st->ctx, "slack_api_errors_total",
                                       "Slack Web API answers with ok:false or HTTP errors");
    st->m_signals = api->metric_counter(st->ctx, "slack_signals_total", "Signals emitted");
    st->m_webhooks = api->metric_counter(st->ctx, "slack_webhooks_total", "Deliveries handled");
    st->m_user_lookups =
        api->metric_counter(st->ctx, "slack_user_lookups_total", "users.info calls (cache misses)");
    return st->m_calls && st->m_errors && st->m_signals && st->m_webhooks && st->m_user_lookups
               ? INGEST_OK
               : INGEST_EINVAL;
}

static int slack_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    slack_state *st = calloc(1, sizeof *st);
    if (!st) {
        api->set_error(ctx, "out of memory");
        return INGEST_ENOMEM;
    }
    st->api = api;
    st->ctx = ctx;
    st->conf = conf;
    if (ingest_health_init(&st->health) != INGEST_OK) {
        free(st);
        return INGEST_ENOMEM;
    }
    int rc = check_conf(st);
    if (rc == INGEST_OK && !(st->users = sl_users_new()))
        rc = INGEST_ENOMEM;
    if (rc == INGEST_OK && register_metrics(st) != INGEST_OK) {
        api->set_error(ctx, "cannot register metrics");
        rc = INGEST_EINVAL;
    }
    if (rc == INGEST_OK && !INGEST_API_HAS(api, http_request)) {
        api->set_error(ctx, "the host lacks api->http_request (ABI minor 1)");
        rc = INGEST_EUNSUPPORTED;
    }
    if (rc != INGEST_OK) {
        slack_shutdown(st);
        return rc;
    }
    api->log(ctx, NULL, INGEST_LOG_INFO,
             "defaults: api %s, channel types %s, history %lld/min, page limit %lld; "
             "per-method rate buckets %s, connection settings %s",
             st->base, st->types, (long long)st->conf->history_per_minute,
             (long long)st->conf->page_limit,
             INGEST_API_HAS(api, connection_config_merge) ? "available" : "unavailable",
             INGEST_API_HAS(api, connection_config) ? "available" : "unavailable");
    *state = st;
    return INGEST_OK;
}

static ingest_health_state slack_health(void *state, char *detail, size_t detail_len)
{
    slack_state *st = state;
    return ingest_health_get(&st->health, detail, detail_len);
}

static const ingest_plugin slack_plugin = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = SL_NAME,
    .version = "1.0.0",
    .description = "Slack: channels, messages and threads; Events API, slash commands, "
                   "interactivity",
    .auth = {.kind = INGEST_AUTH_OAUTH2,
             .authorize_url = "https://slack.com/oauth/v2/authorize",
             .token_url = "https://slack.com/api/oauth.v2.access",
             .scopes = "channels:read groups:read channels:history groups:history users:read "
                       "reactions:read app_mentions:read commands",
             .pkce = 0},
    /* A bot token pasted by an admin (xoxb-..., no rotation) also works. */
    .auth_kinds_also = INGEST_AUTH_BIT(INGEST_AUTH_TOKEN),
    .streams = INGEST_ARRAY(slack_streams),
    .webhook = {.scheme = INGEST_WEBHOOK_SLACK_V0,
                .signature_header = "X-Slack-Signature",
                .signature_prefix = "v0=",
                .timestamp_header = "X-Slack-Request-Timestamp",
                .tolerance_s = 300,
                /* Events API retries carry the same event_id; slash commands
                 * and interactions (form bodies) fall back to the body hash. */
                .delivery_id_field = "event_id"},
    /* Every call names its method's bucket (Tier 2/3/4); this is only the
     * quota of calls that would not. */
    .rate_limit = {SL_TIER2, 60},
    .config = INGEST_ARRAY(slack_config),
    .conf_size = sizeof(slack_conf),
    .init = slack_init,
    .shutdown = slack_shutdown,
    .health = slack_health,
    .sync = sl_sync,
    .handle_webhook = sl_handle_webhook,
    .webhook_handshake = sl_webhook_handshake,
    /* Slack shows a reply body to the user of a slash command: an empty 200
     * is the bare acknowledgement it expects of every request. */
    .webhook_ack = INGEST_WEBHOOK_ACK_EMPTY_200,
    .check_connection = sl_check_connection,
    .on_authorized = sl_on_authorized,
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &slack_plugin; }
