/*
 * jira.c — the Jira Cloud connector: descriptor, configuration, init.
 *
 * One stream, "issues": JQL search by `updated` through
 * /rest/api/3/search/jql, with each issue's changelog (status transitions)
 * and comments. Webhooks: admin webhooks with a secret, signed
 * X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body> (verified by the
 * host), X-Atlassian-Webhook-Identifier as the idempotency key. Auth:
 * OAuth 2.0 (3LO, rotating refresh tokens, refreshed by the host) through
 * api.atlassian.com/ex/jira/{cloud_id}, or basic auth (account email + API
 * token) at the site. Signals and payloads: README.md.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jira.h"

static const ingest_config_field jira_config[] = {
    {.key = "api_base_url",
     .type = INGEST_CONF_STRING,
     .default_value = JIRA_DEFAULT_API_BASE,
     .min = 8,
     .max = 512,
     .offset = offsetof(jira_conf, api_base_url),
     .doc = "Atlassian API gateway (accessible-resources, /ex/jira/{cloud_id}) for OAuth"},
    {.key = "site_url",
     .type = INGEST_CONF_STRING,
     .default_value = "",
     .max = 512,
     .offset = offsetof(jira_conf, site_url),
     .doc = "default site (https://NAME.atlassian.net) of connections that name none"},
    {.key = "projects",
     .type = INGEST_CONF_STRING_LIST,
     .offset = offsetof(jira_conf, projects),
     .doc = "project keys to sync by default, as [\"ABC\", ...]; empty = every project"},
    {.key = "page_size",
     .type = INGEST_CONF_INT,
     .default_value = "100",
     .min = 1,
     .max = 5000,
     .offset = offsetof(jira_conf, page_size),
     .doc = "maxResults of a search page (Jira may return fewer)"},
    {.key = "backfill_days",
     .type = INGEST_CONF_INT,
     .default_value = "0",
     .min = 0,
     .max = 36500,
     .offset = offsetof(jira_conf, backfill_days),
     .doc = "first sync of a connection reads this many days; 0 = the host's backfill_days"},
    {.key = "sync_on_webhook",
     .type = INGEST_CONF_BOOL,
     .default_value = "true",
     .offset = offsetof(jira_conf, sync_on_webhook),
     .doc = "a webhook about a synced project asks for an incremental sync"},
    {.key = "max_pages",
     .type = INGEST_CONF_INT,
     .default_value = "0",
     .min = 0,
     .max = 1000000,
     .offset = offsetof(jira_conf, max_pages),
     .doc = "safety stop: search pages per sync (0 = no limit)"},
    {.key = "field_cache_s",
     .type = INGEST_CONF_INT,
     .default_value = "3600",
     .min = 0,
     .max = 86400,
     .offset = offsetof(jira_conf, field_cache_s),
     .doc = "seconds a connection's custom field names are reused before reading them again"},
};

static const ingest_stream jira_streams[] = {
    {.name = JIRA_STREAM,
     .primary_key = "id",
     .cursor_field = "updated",
     .default_interval_s = 900},
};

/* ------------------------------------------------------------- lifecycle */

static void jira_shutdown(void *state)
{
    jira_state *st = state;
    if (!st)
        return;
    jira_meta_free_all(st);
    pthread_mutex_destroy(&st->lock);
    ingest_health_destroy(&st->health);
    free(st->api_base);
    free(st);
}

static int check_conf(jira_state *st)
{
    int rc = jira_base_url(st->conf->api_base_url, &st->api_base);
    if (rc == INGEST_EINVAL)
        st->api->set_error(st->ctx, "api_base_url must be an http(s) URL");
    char *site = NULL;
    if (rc == INGEST_OK && st->conf->site_url[0] &&
        (rc = jira_base_url(st->conf->site_url, &site)) == INGEST_EINVAL)
        st->api->set_error(st->ctx, "site_url must be an http(s) URL");
    free(site);
    return rc;
}

static int register_metrics(jira_state *st)
{
    const ingest_host_api *api = st->api;
    st->m_requests =
        api->metric_counter(st->ctx, "jira_requests_total", "Requests made to the Jira REST API");
    st->m_signals = api->metric_counter(st->ctx, "jira_signals_total", "Signals emitted");
    st->m_webhooks = api->metric_counter(st->ctx, "jira_webhooks_total", "Deliveries handled");
    return st->m_requests && st->m_signals && st->m_webhooks ? INGEST_OK : INGEST_EINVAL;
}

static int jira_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    jira_state *st = calloc(1, sizeof *st);
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
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        ingest_health_destroy(&st->health);
        free(st);
        return INGEST_ENOMEM;
    }
    int rc = check_conf(st);
    if (rc == INGEST_OK && register_metrics(st) != INGEST_OK) {
        api->set_error(ctx, "cannot register metrics");
        rc = INGEST_EINVAL;
    }
    if (rc != INGEST_OK) {
        jira_shutdown(st);
        return rc;
    }
    api->log(ctx, NULL, INGEST_LOG_INFO, "api %s, %zu default projects; OAuth site lookup %s",
             st->api_base, st->conf->projects.count,
             INGEST_API_HAS(api, connection_config_merge) ? "available"
                                                          : "unavailable (host lacks "
                                                            "connection_config_merge)");
    *state = st;
    return INGEST_OK;
}

static ingest_health_state jira_health(void *state, char *detail, size_t detail_len)
{
    jira_state *st = state;
    return ingest_health_get(&st->health, detail, detail_len);
}

static const ingest_plugin jira_plugin = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = JIRA_NAME,
    .version = "1.0.0",
    .description = "Jira Cloud: issues, transitions and comments by JQL; webhooks",
    /* The host's /connect appends its parameters to this URL's query, so
     * Atlassian's required extras ride along (see README: Auth). */
    .auth = {.kind = INGEST_AUTH_OAUTH2,
             .authorize_url =
                 "https://auth.atlassian.com/authorize?audience=api.atlassian.com&prompt=consent",
             .token_url = "https://auth.atlassian.com/oauth/token",
             .scopes = "read:jira-work read:jira-user offline_access",
             .pkce = 0},
    .auth_kinds_also = INGEST_AUTH_BIT(INGEST_AUTH_BASIC),
    .streams = INGEST_ARRAY(jira_streams),
    .webhook = {.scheme = INGEST_WEBHOOK_HMAC_SHA256,
                .signature_header = "X-Hub-Signature",
                .signature_prefix = "sha256=",
                .delivery_id_header = "X-Atlassian-Webhook-Identifier"},
    /* Atlassian publishes no fixed quota for REST calls (cost- and
     * burst-based limits, answered with 429 + Retry-After and
     * X-RateLimit-* headers, which the host honours); this keeps a sync
     * well below the burst limits. */
    .rate_limit = {.requests = 100, .window_s = 10},
    .config = INGEST_ARRAY(jira_config),
    .conf_size = sizeof(jira_conf),
    .init = jira_init,
    .shutdown = jira_shutdown,
    .health = jira_health,
    .sync = jira_sync,
    .handle_webhook = jira_handle_webhook,
    .check_connection = jira_check_connection,
    .on_authorized = jira_on_authorized,
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &jira_plugin; }
