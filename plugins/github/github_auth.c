/*
 * github_auth.c — credentials.
 *
 * Personal access tokens and OAuth app tokens need nothing here: the host
 * adds "Authorization: Bearer <token>" to every INGEST_HTTP_AUTH_CONNECTION
 * request and refreshes OAuth tokens itself. A GitHub App connection holds
 * the secrets app_id, installation_id and private_key; the host calls
 * gh_mint_token when it needs an installation token (none yet, expiring
 * within oauth_refresh_threshold_s, or refused with 401), and we trade a
 * JWT the host signs (the key never enters plugin memory) for one:
 *   POST {api_base_url}/app/installations/{installation_id}/access_tokens
 * (the connection's api_base_url: GitHub Enterprise Server installations
 * mint at their own server)
 *   -> 201 {"token": "ghs_...", "expires_at": "2016-07-11T22:14:10Z", ...}
 * Installation tokens live one hour; the host re-mints before expiry.
 */
#include <ctype.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "github.h"

/* GitHub accepts the app id (a number) or the client id ("Iv1.…") as iss. */
static json_object *issuer(const char *app_id)
{
    int digits = *app_id != '\0';
    for (const char *p = app_id; *p; p++)
        digits &= isdigit((unsigned char)*p) != 0;
    return digits ? json_object_new_int64(strtoll(app_id, NULL, 10))
                  : json_object_new_string(app_id);
}

static int all_digits(const char *s)
{
    if (!s || !*s || strlen(s) > 20)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

/* {"iat": now - 60, "exp": now + 540, "iss": app_id}: GitHub allows at most
 * ten minutes and recommends backdating iat for clock drift. */
static char *claims(const github_state *st, const char *app_id)
{
    int64_t now = st->api->now_us() / 1000000;
    json_object *c = json_object_new_object();
    if (!c)
        return NULL;
    json_object_object_add(c, "iat", json_object_new_int64(now - 60));
    json_object_object_add(c, "exp", json_object_new_int64(now + 540));
    json_object_object_add(c, "iss", issuer(app_id));
    char *text = ingest_json_text(c);
    json_object_put(c);
    return text;
}

/* Store the token of a 201 answer; wipe every copy we made of it. */
static int store_token(github_state *st, ingest_run *run, const ingest_http_response *resp)
{
    json_object *o = ingest_json_parse(resp->body, resp->body_len);
    json_object *tok = ingest_json_get(o, "token");
    const char *token =
        json_object_is_type(tok, json_type_string) ? json_object_get_string(tok) : NULL;
    int64_t expires = 0;
    int rc = INGEST_EIO;
    if (token && *token) {
        if (ingest_json_time(st->api, o, "expires_at", &expires) != INGEST_OK)
            expires = st->api->now_us() + (int64_t)55 * 60 * 1000000; /* documented: 1 hour */
        rc = st->api->secret_put(run, "access_token", token, expires);
        OPENSSL_cleanse((void *)token, (size_t)json_object_get_string_len(tok));
    } else {
        st->api->log(st->ctx, run, INGEST_LOG_ERROR,
                     "installation token answer without a token (HTTP %ld)", resp->status);
    }
    json_object_put(o);
    /* The response is ours until we free it: do not leave the token in it. */
    OPENSSL_cleanse((void *)resp->body, resp->body_len);
    return rc;
}

/* Run with the connection's settings (its api_base_url); log why not. */
static int load_settings(github_state *st, ingest_run *run, const char *what, gh_settings *set)
{
    char err[256];
    int rc = gh_settings_load(st, run, set, err, sizeof err);
    if (rc != INGEST_OK) {
        st->api->log(st->ctx, run, INGEST_LOG_ERROR, "%s: %s", what, err);
        st->api->set_error(st->ctx, "%s: %s", what, err);
    }
    return rc;
}

static int exchange(github_state *st, ingest_run *run, const char *installation, const char *jwt)
{
    gh_settings set;
    int rc = load_settings(st, run, "installation token", &set);
    if (rc != INGEST_OK)
        return rc;
    char url[1024], *bearer = NULL;
    snprintf(url, sizeof url, "%s/app/installations/%s/access_tokens", set.base, installation);
    gh_settings_free(&set);
    if (asprintf(&bearer, "Bearer %s", jwt) < 0)
        return INGEST_ENOMEM;
    ingest_header h[] = {{"Authorization", bearer}, gh_headers[0], gh_headers[1]};
    ingest_http_request req = {.hdr = INGEST_ABI_HEADER(ingest_http_request),
                               .method = "POST",
                               .url = url,
                               .headers = h,
                               .n_headers = 3,
                               .auth = INGEST_HTTP_AUTH_NONE};
    ingest_http_response *resp = NULL;
    rc = st->api->http_request(run, &req, &resp);
    OPENSSL_cleanse(bearer, strlen(bearer));
    free(bearer);
    st->api->metric_add(st->m_requests, 1);
    if (rc == INGEST_OK && resp->status == 201) {
        rc = store_token(st, run, resp);
    } else {
        char why[256];
        ingest_http_describe(resp, why, sizeof why);
        if (rc == INGEST_OK) { /* the app or installation was refused, or GitHub failed */
            long s = resp->status;
            rc = s == 401 || s == 403 || s == 404 ? INGEST_EAUTH : ingest_http_status_rc(s);
            rc = rc == INGEST_OK ? INGEST_EIO : rc;
        }
        st->api->log(st->ctx, run, rc == INGEST_EAUTH ? INGEST_LOG_ERROR : INGEST_LOG_WARN,
                     "installation token for installation %s: %s (status %d)", installation, why,
                     rc);
        if (resp)
            OPENSSL_cleanse((void *)resp->body, resp->body_len);
    }
    st->api->http_response_free(resp);
    return rc;
}

int gh_mint_token(ingest_run *run, void *state)
{
    github_state *st = state;
    const ingest_host_api *api = st->api;
    if (!INGEST_API_HAS(api, jwt_sign_rs256) || !INGEST_API_HAS(api, secret_put))
        return INGEST_EUNSUPPORTED;
    char *app_id = NULL, *installation = NULL, *jwt = NULL, *text = NULL;
    int rc = api->secret_get(run, "app_id", &app_id);
    if (rc == INGEST_OK)
        rc = api->secret_get(run, "installation_id", &installation);
    if (rc == INGEST_ENOTFOUND)
        api->log(st->ctx, run, INGEST_LOG_ERROR,
                 "a GitHub App connection needs the secrets app_id, installation_id and "
                 "private_key");
    if (rc == INGEST_OK && !all_digits(installation)) {
        api->log(st->ctx, run, INGEST_LOG_ERROR, "secret installation_id is not a number");
        rc = INGEST_EAUTH;
    }
    if (rc == INGEST_OK && !(text = claims(st, app_id)))
        rc = INGEST_ENOMEM;
    if (rc == INGEST_OK)
        rc = api->jwt_sign_rs256(run, "private_key", text, &jwt);
    if (rc == INGEST_ENOTFOUND || rc == INGEST_EINVAL)
        rc = INGEST_EAUTH; /* no usable key: only new credentials help */
    if (rc == INGEST_OK)
        rc = exchange(st, run, installation, jwt);
    free(text);
    api->secret_free(jwt);
    api->secret_free(app_id);
    api->secret_free(installation);
    return rc;
}

/* GET /rate_limit: works for every kind of token and costs no quota. */
int gh_check_connection(ingest_run *run, void *state)
{
    github_state *st = state;
    gh_settings set;
    int rc = load_settings(st, run, "checking the connection", &set);
    if (rc != INGEST_OK)
        return rc;
    char url[1024];
    snprintf(url, sizeof url, "%s/rate_limit", set.base);
    gh_settings_free(&set);
    ingest_http_request req = {.hdr = INGEST_ABI_HEADER(ingest_http_request),
                               .method = "GET",
                               .url = url,
                               .headers = gh_headers,
                               .n_headers = 2,
                               .auth = INGEST_HTTP_AUTH_CONNECTION};
    ingest_http_response *resp = NULL;
    rc = st->api->http_request(run, &req, &resp);
    if (rc == INGEST_OK && resp->status != 200)
        rc = resp->status == 403 ? INGEST_EAUTH : ingest_http_status_rc(resp->status);
    if (rc == INGEST_OK && resp->status != 200)
        rc = INGEST_EIO;
    if (rc != INGEST_OK) {
        char why[256];
        ingest_http_describe(resp, why, sizeof why);
        st->api->set_error(st->ctx, "checking the connection at GitHub failed: %s", why);
    }
    st->api->http_response_free(resp);
    return rc;
}
