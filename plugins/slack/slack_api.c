/*
 * slack_api.c — one call to a Slack Web API method.
 *
 * Slack limits each method separately (Tier 1 to 4, per workspace and app),
 * so every call names its method as the host's rate bucket with that tier's
 * quota: a 429's Retry-After then holds only that method. Slack reports most
 * failures as HTTP 200 with {"ok": false, "error": "..."}, so the HTTP status
 * alone says little; the error code decides. An expired rotating token
 * (token_expired) is not a 401 the host would renew on: the plugin marks the
 * stored token expired so that the host renews it before the next attempt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "slack.h"

/* Error codes that mean the credentials, not the request, are the problem. */
static const char *const auth_errors[] = {
    "invalid_auth",           "not_authed",        "account_inactive",
    "token_revoked",          "no_permission",     "missing_scope",
    "not_allowed_token_type", "ekm_access_denied", "team_access_not_granted",
    "org_login_required",
};

/* Errors about one object (a channel we may not read, a deleted user). */
static const char *const missing_errors[] = {
    "channel_not_found", "not_in_channel", "user_not_found",
    "thread_not_found",  "is_archived",    "access_denied",
};

static int listed(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(code, list[i]) == 0)
            return 1;
    return 0;
}

/* "Authorization: Bearer <user token>" for calls made as the user. */
static int user_auth(slack_state *st, ingest_run *run, char **header)
{
    char *token = NULL;
    int rc = st->api->secret_get(run, "user_token", &token);
    if (rc == INGEST_ENOTFOUND)
        st->api->log(st->ctx, run, INGEST_LOG_ERROR,
                     "token \"user\" is set but the connection has no user token (install with "
                     "user scopes)");
    if (rc != INGEST_OK)
        return rc == INGEST_ENOTFOUND ? INGEST_EAUTH : rc;
    size_t n = strlen(token) + sizeof "Bearer ";
    *header = malloc(n);
    if (*header)
        snprintf(*header, n, "Bearer %s", token);
    st->api->secret_free(token);
    return *header ? INGEST_OK : INGEST_ENOMEM;
}

/* OPENSSL_cleanse, as the GitHub connector wipes its tokens: a plain
 * memset before free() may be optimised away. */
static void wipe_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

/* The bot token Slack called expired: store it again with an expiry in
 * the past, which makes the host renew it (refresh_token grant) before the
 * next request of a new run. The token passes through plugin memory only
 * for this and is wiped. */
static int mark_expired(slack_state *st, ingest_run *run, int user_token)
{
    if (user_token) {
        st->api->log(st->ctx, run, INGEST_LOG_ERROR,
                     "the user token expired; the host renews only the bot token, so the "
                     "connection must be authorized again");
        return INGEST_EAUTH;
    }
    char *token = NULL;
    int rc = INGEST_API_HAS(st->api, secret_put) ? st->api->secret_get(run, "access_token", &token)
                                                 : INGEST_EUNSUPPORTED;
    if (rc == INGEST_OK)
        rc = st->api->secret_put(run, "access_token", token, st->api->now_us());
    st->api->secret_free(token);
    if (rc != INGEST_OK) {
        st->api->log(st->ctx, run, INGEST_LOG_ERROR,
                     "Slack says the token expired and it cannot be renewed (status %d): "
                     "authorize the connection again",
                     rc);
        return INGEST_EAUTH;
    }
    st->api->log(st->ctx, run, INGEST_LOG_WARN,
                 "Slack says the access token expired; marked for renewal before the next "
                 "attempt");
    return INGEST_EAGAIN;
}

/* Slack's ok:false code -> status. */
static int error_rc(slack_state *st, ingest_run *run, const sl_call *call, const char *code,
                    const ingest_http_response *resp)
{
    if (strcmp(code, "ratelimited") == 0) {
        int64_t ms = resp->retry_after_ms > 0 ? resp->retry_after_ms : 60000;
        if (INGEST_API_HAS(st->api, retry_after))
            st->api->retry_after(run, ms);
        return INGEST_ERATELIMITED;
    }
    if (strcmp(code, "token_expired") == 0)
        return mark_expired(st, run, call->user_token);
    if (listed(code, auth_errors, sizeof auth_errors / sizeof auth_errors[0]))
        return INGEST_EAUTH;
    if (listed(code, missing_errors, sizeof missing_errors / sizeof missing_errors[0]))
        return INGEST_ENOTFOUND;
    return INGEST_EIO;
}

/* Copy Slack's error code (letters, digits, '_') into err. */
static void error_text(json_object *body, const char *method, char *err, size_t len)
{
    const char *code = ingest_json_str(body, "error");
    const char *needed = ingest_json_str(body, "needed");
    char clean[64];
    size_t n = 0;
    for (const char *p = code ? code : "unknown_error"; *p && n + 1 < sizeof clean; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
            clean[n++] = *p;
    clean[n] = '\0';
    snprintf(err, len, "%s: %s%s%.80s", method, clean, needed ? ", needed scope " : "",
             needed ? needed : "");
}

static int perform(slack_state *st, ingest_run *run, const sl_settings *set, const sl_call *call,
                   ingest_http_response **resp)
{
    char url[6144];
    int n = snprintf(url, sizeof url, "%s/%s%s%s", set->base, call->method,
                     call->query && *call->query ? "?" : "", call->query ? call->query : "");
    if (n < 0 || (size_t)n >= sizeof url)
        return INGEST_EINVAL;
    char *authz = NULL;
    int rc = call->user_token ? user_auth(st, run, &authz) : INGEST_OK;
    if (rc != INGEST_OK)
        return rc;
    ingest_header hdrs[1] = {{"Authorization", authz}};
    ingest_http_request req = {.hdr = INGEST_ABI_HEADER(ingest_http_request),
                               .method = "GET",
                               .url = url,
                               .headers = authz ? hdrs : NULL,
                               .n_headers = authz ? 1 : 0,
                               .auth = authz ? INGEST_HTTP_AUTH_NONE : INGEST_HTTP_AUTH_CONNECTION,
                               .rate_bucket = call->method,
                               .rate_bucket_limit = {call->per_minute, 60}};
    rc = st->api->http_request(run, &req, resp);
    wipe_free(authz);
    st->api->metric_add(st->m_calls, 1);
    return rc;
}

int sl_api_call(slack_state *st, ingest_run *run, const sl_settings *set, const sl_call *call,
                json_object **out, char *err, size_t len)
{
    *out = NULL;
    ingest_http_response *resp = NULL;
    int rc = perform(st, run, set, call, &resp);
    json_object *body = NULL;
    if (rc == INGEST_OK && resp->status == 429) { /* the host's retries ran out */
        if (INGEST_API_HAS(st->api, retry_after))
            st->api->retry_after(run, resp->retry_after_ms > 0 ? resp->retry_after_ms : 60000);
        rc = INGEST_ERATELIMITED;
    } else if (rc == INGEST_OK && resp->status != 200) {
        rc = ingest_http_status_rc(resp->status);
        rc = rc == INGEST_OK ? INGEST_EIO : rc;
    }
    if (rc != INGEST_OK) {
        char why[200];
        ingest_http_describe(resp, why, sizeof why);
        snprintf(err, len, "%s: %s (status %d)", call->method, why, rc);
    } else if (!json_object_is_type(body = ingest_json_parse(resp->body, resp->body_len),
                                    json_type_object)) {
        snprintf(err, len, "%s: the answer is not a JSON object", call->method);
        rc = INGEST_EIO;
    } else if (!ingest_json_true(body, "ok")) {
        error_text(body, call->method, err, len);
        rc = error_rc(st, run, call,
                      ingest_json_str(body, "error") ? ingest_json_str(body, "error") : "", resp);
    }
    if (rc != INGEST_OK) {
        st->api->metric_add(st->m_errors, 1);
        json_object_put(body);
        body = NULL;
    }
    st->api->http_response_free(resp);
    *out = body;
    return rc;
}
