/*
 * github.c — the GitHub connector: descriptor, configuration, init.
 *
 * Streams (sync, per configured repository and every repository of the
 * configured organizations): issues, pull_requests, issue_comments,
 * pr_reviews. Webhooks: X-Hub-Signature-256 (verified by the host),
 * X-GitHub-Delivery as the idempotency key. Signals and their payloads are
 * documented in README.md; the normalization lives in github_normalize.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "github.h"

const char *const gh_stream_names[GH_N_STREAMS] = {"issues", "pull_requests", "issue_comments",
                                                   "pr_reviews"};

const ingest_header gh_headers[2] = {{"Accept", GH_ACCEPT},
                                     {"X-GitHub-Api-Version", GH_API_VERSION}};

/* ------------------------------------------------------------ descriptor */

static const ingest_config_field github_config[] = {
    {.key = "repositories",
     .type = INGEST_CONF_STRING_LIST,
     .offset = offsetof(github_conf, repositories),
     .doc = "repositories to sync, as [\"owner/name\", ...]"},
    {.key = "organizations",
     .type = INGEST_CONF_STRING_LIST,
     .offset = offsetof(github_conf, organizations),
     .doc = "organizations whose repositories are all synced, as [\"org\", ...]"},
    {.key = "api_base_url",
     .type = INGEST_CONF_STRING,
     .default_value = GH_DEFAULT_BASE,
     .min = 8,
     .max = 512,
     .offset = offsetof(github_conf, api_base_url),
     .doc = "REST API root; GitHub Enterprise Server: https://HOST/api/v3"},
    {.key = "streams",
     .type = INGEST_CONF_STRING_LIST,
     .default_value = "issues,pull_requests,issue_comments,pr_reviews",
     .offset = offsetof(github_conf, streams),
     .doc = "which of issues, pull_requests, issue_comments, pr_reviews to sync"},
    {.key = "sync_on_webhook",
     .type = INGEST_CONF_BOOL,
     .default_value = "true",
     .offset = offsetof(github_conf, sync_on_webhook),
     .doc = "a webhook about a configured repository asks for an incremental sync"},
    {.key = "include_archived",
     .type = INGEST_CONF_BOOL,
     .default_value = "false",
     .offset = offsetof(github_conf, include_archived),
     .doc = "also sync archived repositories of the configured organizations"},
    {.key = "max_pages",
     .type = INGEST_CONF_INT,
     .default_value = "0",
     .min = 0,
     .max = 1000000,
     .offset = offsetof(github_conf, max_pages),
     .doc = "safety stop: pages per listing walk (0 = no limit)"},
};

/* Primary keys and the field each incremental cursor follows. */
static const ingest_stream github_streams[] = {
    {.name = "issues",
     .primary_key = "id",
     .cursor_field = "updated_at",
     .default_interval_s = 900},
    {.name = "pull_requests",
     .primary_key = "id",
     .cursor_field = "updated_at",
     .default_interval_s = 900},
    {.name = "issue_comments",
     .primary_key = "id",
     .cursor_field = "updated_at",
     .default_interval_s = 900},
    {.name = "pr_reviews",
     .primary_key = "id",
     .cursor_field = "updated_at",
     .default_interval_s = 900},
};

/* ----------------------------------------------------------- validation */

/* The group's values: the defaults of every connection's settings. */
static int check_conf(github_state *st)
{
    const github_conf *c = st->conf;
    for (size_t i = 0; i < c->repositories.count; i++)
        if (!gh_valid_repo(c->repositories.items[i])) {
            st->api->set_error(st->ctx, "repositories: '%.120s' is not owner/name",
                               c->repositories.items[i]);
            return INGEST_EINVAL;
        }
    for (size_t i = 0; i < c->organizations.count; i++)
        if (!gh_valid_org(c->organizations.items[i])) {
            st->api->set_error(st->ctx, "organizations: '%.120s' is not an organization login",
                               c->organizations.items[i]);
            return INGEST_EINVAL;
        }
    for (size_t i = 0; i < c->streams.count; i++) {
        int found = gh_stream_index(c->streams.items[i]);
        if (found < 0) {
            st->api->set_error(st->ctx,
                               "streams: '%.60s' is not one of issues, pull_requests, "
                               "issue_comments, pr_reviews",
                               c->streams.items[i]);
            return INGEST_EINVAL;
        }
        st->streams |= 1u << found;
    }
    int rc = gh_base_url(c->api_base_url, &st->base);
    if (rc == INGEST_EINVAL)
        st->api->set_error(st->ctx, "api_base_url must be an http(s) URL");
    return rc;
}

/* ----------------------------------------------------------- shared bits */

/* ------------------------------------------------------------- lifecycle */

static void github_shutdown(void *state)
{
    github_state *st = state;
    if (!st)
        return;
    ingest_health_destroy(&st->health);
    free(st->base);
    free(st);
}

static int github_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    github_state *st = calloc(1, sizeof *st);
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
    if (rc != INGEST_OK) {
        github_shutdown(st);
        return rc;
    }
    st->app_auth = INGEST_API_HAS(api, jwt_sign_rs256) && INGEST_API_HAS(api, secret_put);
    st->m_requests =
        api->metric_counter(ctx, "github_requests_total", "Requests made to the GitHub REST API");
    st->m_not_modified = api->metric_counter(ctx, "github_not_modified_total",
                                             "Conditional requests answered 304 Not Modified");
    st->m_signals = api->metric_counter(ctx, "github_signals_total", "Signals emitted");
    st->m_webhooks = api->metric_counter(ctx, "github_webhooks_total", "Deliveries handled");
    st->m_repos_skipped = api->metric_counter(
        ctx, "github_repos_skipped_total", "Repository streams skipped (no access or not found)");
    if (!st->m_requests || !st->m_not_modified || !st->m_signals || !st->m_webhooks ||
        !st->m_repos_skipped) {
        api->set_error(ctx, "cannot register metrics");
        github_shutdown(st);
        return INGEST_EINVAL;
    }
    api->log(ctx, NULL, INGEST_LOG_INFO,
             "defaults: %zu repositories, %zu organizations, api %s (a connection's config "
             "overrides them); GitHub App auth %s",
             st->conf->repositories.count, st->conf->organizations.count, st->base,
             st->app_auth ? "available" : "unavailable (host lacks jwt_sign_rs256)");
    *state = st;
    return INGEST_OK;
}

static ingest_health_state github_health(void *state, char *detail, size_t detail_len)
{
    github_state *st = state;
    char text[sizeof st->health.detail];
    ingest_health_state h = ingest_health_get(&st->health, text, sizeof text);
    snprintf(detail, detail_len, "%s%s", text,
             st->app_auth ? "" : "; app auth unavailable (host lacks jwt_sign_rs256)");
    return h;
}

static const ingest_plugin github_plugin = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = GH_NAME,
    .version = "1.0.0",
    .description = "GitHub: issues, pull requests, comments and reviews; webhooks",
    .auth = {.kind = INGEST_AUTH_TOKEN,
             .authorize_url = "https://github.com/login/oauth/authorize",
             .token_url = "https://github.com/login/oauth/access_token",
             .scopes = "repo read:org",
             .pkce = 0},
    .auth_kinds_also = INGEST_AUTH_BIT(INGEST_AUTH_OAUTH2) | INGEST_AUTH_BIT(INGEST_AUTH_APP),
    .streams = INGEST_ARRAY(github_streams),
    .webhook = {.scheme = INGEST_WEBHOOK_HMAC_SHA256,
                .signature_header = "X-Hub-Signature-256",
                .signature_prefix = "sha256=",
                .delivery_id_header = "X-GitHub-Delivery"},
    /* Authenticated users and installations: 5,000 requests per hour. */
    .rate_limit = {5000, 3600},
    .config = INGEST_ARRAY(github_config),
    .conf_size = sizeof(github_conf),
    .init = github_init,
    .shutdown = github_shutdown,
    .health = github_health,
    .sync = gh_sync,
    .handle_webhook = gh_handle_webhook,
    .check_connection = gh_check_connection,
    .mint_token = gh_mint_token,
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &github_plugin; }
