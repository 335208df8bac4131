/* api_http.c — plugins never see the http_client or its policy: the host
 * decides the limiter key, quota, cancel flag and credentials from the run,
 * so a plugin cannot exceed its share or read a token it does not need. */
#include "api_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "http_client.h"
#include "instance.h"
#include "log.h"
#include "oauth_refresh.h"
#include "pagination.h"
#include "run.h"
#include "secrets.h"
#include "util.h"

/* The plugin's ingest_http_response is the first member, so the pointer
 * it gets back is the box's and http_response_free finds the rest. */
typedef struct response_box {
    ingest_http_response pub;
    http_response inner;
    char *url; /* the request URL: base for relative Link targets */
} response_box;

/* Credentials and the header array handed to the http_client. The header
 * array is ours; its plugin strings are borrowed from the request. */
typedef struct auth_parts {
    ingest_header *headers;
    size_t n_headers;
    char *authorization; /* "Bearer ..."; wiped when released */
    char *userpwd;       /* "user:password"; wiped when released */
    /* AWS SigV4 credentials (the key id too: it names the account); all
     * wiped when released. aws_token may stay NULL. */
    char *aws_key, *aws_secret, *aws_token;
} auth_parts;

static void auth_release(auth_parts *a)
{
    free(a->headers);
    crypto_wipe_free(a->authorization, 0);
    crypto_wipe_free(a->userpwd, 0);
    crypto_wipe_free(a->aws_key, 0);
    crypto_wipe_free(a->aws_secret, 0);
    crypto_wipe_free(a->aws_token, 0);
    memset(a, 0, sizeof *a);
}

/* "provider1[:provider2[:region[:service]]]": what curl parses, nothing
 * that could bend a header. */
static int valid_sigv4(const char *scope)
{
    size_t n = strlen(scope);
    return n > 0 && n <= 128 &&
           strspn(scope, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.-") == n;
}

/* A bucket name becomes part of the limiter key (and of log lines). */
static int valid_bucket(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n <= 64 &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* Copy the plugin's request into a zeroed host-sized struct by its size.
 * Members past the plugin's struct_size (minor 2's aws_sigv4 and on_body
 * for a minor-1 plugin) stay zero. */
static int take_request(const ingest_http_request *in, ingest_http_request *out)
{
    memset(out, 0, sizeof *out);
    if (!in || in->hdr.magic != INGEST_ABI_MAGIC || in->hdr.abi_major != INGEST_ABI_MAJOR ||
        in->hdr.struct_size < offsetof(ingest_http_request, url) + sizeof(char *))
        return INGEST_EINVAL;
    size_t take = in->hdr.struct_size < sizeof *out ? in->hdr.struct_size : sizeof *out;
    memcpy(out, in, take);
    if (!out->url || (out->n_headers && !out->headers) || (out->body_len && !out->body))
        return INGEST_EINVAL;
    if (out->aws_sigv4 &&
        (out->auth != INGEST_HTTP_AUTH_CONNECTION || !valid_sigv4(out->aws_sigv4)))
        return INGEST_EINVAL;
    if (out->rate_bucket && !valid_bucket(out->rate_bucket))
        return INGEST_EINVAL;
    return out->auth == INGEST_HTTP_AUTH_NONE || out->auth == INGEST_HTTP_AUTH_CONNECTION
               ? INGEST_OK
               : INGEST_EINVAL;
}

static int read_secret(ingest_run *run, const char *field, char **value, char *err, size_t len)
{
    instance *inst = run_instance(run);
    hostd *h = inst->host;
    return secrets_get(h->store, atomic_load(&h->keyring), inst->name, run_connection(run), field,
                       value, err, len);
}

/* Renew the connection's OAuth2 or app token (force: after a 401), then
 * re-read the run's cached expiry, which the renewal moved. */
static int renew(ingest_run *run, ingest_auth_kind kind, int force, char *err, size_t len)
{
    instance *inst = run_instance(run);
    int rc = kind == INGEST_AUTH_APP
                 ? oauth_ensure_minted(inst->host, run, force, err, len)
                 : oauth_ensure_fresh(inst->host, inst, run_connection(run), force, err, len);
    ingest_auth_kind again;
    int64_t expires_us;
    if (rc == INGEST_OK)
        run_connection_auth(run, 1, &again, &expires_us, NULL, 0);
    return rc;
}

/* Renew a token that is due. A transient failure while the token still
 * has a little life left is no reason to fail the request: it is used, and
 * the next request tries again. */
static int renew_due(ingest_run *run, ingest_auth_kind kind, int64_t expires_us, char *err,
                     size_t len)
{
    int rc = renew(run, kind, 0, err, len);
    if (rc == INGEST_OK || rc == INGEST_EAUTH || expires_us <= util_now_us())
        return rc;
    log_fields f = {
        .plugin = run_instance(run)->name, .tenant = run_tenant(run), .job = run_job(run)};
    log_write(INGEST_LOG_WARN, &f,
              "renewing the token of connection %s failed (%s); using the current one until it "
              "expires",
              run_connection(run), err[0] ? err : "unknown");
    err[0] = '\0';
    return INGEST_OK;
}

/* The token of an OAuth2 or app connection, renewed first when the run's
 * cached expiry says it is due (no store round trip otherwise); an app
 * connection without a token yet gets its first one minted. */
static int fresh_token(ingest_run *run, ingest_auth_kind kind, int64_t expires_us, char **token,
                       char *err, size_t len)
{
    int rc = oauth_token_due(run_instance(run)->host, expires_us)
                 ? renew_due(run, kind, expires_us, err, len)
                 : INGEST_OK;
    if (rc == INGEST_OK)
        rc = read_secret(run, "access_token", token, err, len);
    if (rc == INGEST_ENOTFOUND && kind == INGEST_AUTH_APP) {
        rc = renew(run, kind, 0, err, len);
        if (rc == INGEST_OK)
            rc = read_secret(run, "access_token", token, err, len);
    }
    return rc;
}

/* "Bearer <token>" from the secret the connection's auth kind names. */
static int bearer(ingest_run *run, ingest_auth_kind kind, int64_t expires_us, char **out, char *err,
                  size_t len)
{
    char *token = NULL;
    int rc;
    if (kind == INGEST_AUTH_OAUTH2 || kind == INGEST_AUTH_APP) {
        rc = fresh_token(run, kind, expires_us, &token, err, len);
    } else {
        rc = read_secret(run, "token", &token, err, len);
        if (rc == INGEST_ENOTFOUND)
            rc = read_secret(run, "api_key", &token, err, len);
    }
    if (rc != INGEST_OK)
        return rc;
    if (asprintf(out, "Bearer %s", token) < 0) {
        *out = NULL;
        rc = INGEST_ENOMEM;
    }
    crypto_wipe_free(token, 0);
    return rc;
}

static int basic(ingest_run *run, char **out, char *err, size_t len)
{
    char *user = NULL, *password = NULL;
    int rc = read_secret(run, "username", &user, err, len);
    if (rc == INGEST_OK)
        rc = read_secret(run, "password", &password, err, len);
    if (rc == INGEST_OK && asprintf(out, "%s:%s", user, password) < 0) {
        *out = NULL;
        rc = INGEST_ENOMEM;
    }
    crypto_wipe_free(user, 0);
    crypto_wipe_free(password, 0);
    return rc;
}

/* 1 when found, 0 when the connection has no such secret, else a status. */
static int optional_secret(ingest_run *run, const char *field, char **value, char *err, size_t len)
{
    int rc = read_secret(run, field, value, err, len);
    if (rc == INGEST_ENOTFOUND) {
        err[0] = '\0';
        return 0;
    }
    return rc == INGEST_OK ? 1 : rc;
}

/* The daemon's own AWS credentials, the standard environment variables. */
static int aws_from_environment(auth_parts *a, char *err, size_t len)
{
    const char *key = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");
    if (!key || !*key || !secret || !*secret)
        return snprintf(err, len,
                        "the aws connection has no access_key_id and secret_access_key, and "
                        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set for the daemon"),
               INGEST_ENOTFOUND;
    a->aws_key = strdup(key);
    a->aws_secret = strdup(secret);
    a->aws_token = token && *token ? strdup(token) : NULL;
    if (!a->aws_key || !a->aws_secret || (token && *token && !a->aws_token))
        return INGEST_ENOMEM;
    return INGEST_OK;
}

/* SigV4 credentials of an aws connection: its secrets access_key_id,
 * secret_access_key and optional session_token, or the environment's
 * when it has none of them. Half a key pair is a mistake, not a cue to
 * fall back. */
static int aws_credentials(ingest_run *run, auth_parts *a, char *err, size_t len)
{
    int key = optional_secret(run, "access_key_id", &a->aws_key, err, len);
    int secret =
        key < 0 ? key : optional_secret(run, "secret_access_key", &a->aws_secret, err, len);
    int token =
        secret < 0 ? secret : optional_secret(run, "session_token", &a->aws_token, err, len);
    if (key < 0 || secret < 0 || token < 0)
        return key < 0 ? key : secret < 0 ? secret : token;
    if (!key && !secret && !token)
        return aws_from_environment(a, err, len);
    if (!key || !secret)
        return snprintf(err, len, "the aws connection has %s but no %s",
                        key ? "access_key_id" : "secret_access_key",
                        key ? "secret_access_key" : "access_key_id"),
               INGEST_ENOTFOUND;
    return INGEST_OK;
}

/* Fetch the credentials of the connection's own auth kind (looked up once
 * per run): one plugin may have token, OAuth2, app and aws connections. */
static int connection_credentials(ingest_run *run, const ingest_http_request *req, auth_parts *a,
                                  char *err, size_t len)
{
    if (run_minting(run))
        return snprintf(err, len,
                        "mint_token cannot use INGEST_HTTP_AUTH_CONNECTION: the connection's "
                        "token is what it is minting"),
               INGEST_ESTATE;
    ingest_auth_kind kind;
    int64_t expires_us;
    int rc = run_connection_auth(run, 0, &kind, &expires_us, err, len);
    if (rc != INGEST_OK)
        return rc;
    if ((kind == INGEST_AUTH_AWS) != (req->aws_sigv4 != NULL))
        return snprintf(err, len,
                        kind == INGEST_AUTH_AWS
                            ? "requests of an aws connection need aws_sigv4 (the signing scope)"
                            : "aws_sigv4 is only for connections of auth kind aws"),
               INGEST_EINVAL;
    switch (kind) {
    case INGEST_AUTH_OAUTH2:
    case INGEST_AUTH_TOKEN:
    case INGEST_AUTH_APP:
        return bearer(run, kind, expires_us, &a->authorization, err, len);
    case INGEST_AUTH_BASIC:
        return basic(run, &a->userpwd, err, len);
    case INGEST_AUTH_AWS:
        return aws_credentials(run, a, err, len);
    default:
        snprintf(err, len, "AUTH_CONNECTION does not support connections of auth kind %s",
                 instance_auth_kind_name(kind) ? instance_auth_kind_name(kind) : "unknown");
        return INGEST_EUNSUPPORTED;
    }
}

/* The plugin's headers, without Authorization when the host sets it, plus
 * ours. Credentials are (re)read on every call so a refreshed token is
 * picked up. */
static int build_auth(ingest_run *run, const ingest_http_request *req, auth_parts *a, char *err,
                      size_t len)
{
    memset(a, 0, sizeof *a);
    int with_conn = req->auth == INGEST_HTTP_AUTH_CONNECTION;
    int rc = with_conn ? connection_credentials(run, req, a, err, len) : INGEST_OK;
    if (rc != INGEST_OK)
        return auth_release(a), rc;
    a->headers = calloc(req->n_headers + 1, sizeof *a->headers);
    if (!a->headers)
        return auth_release(a), INGEST_ENOMEM;
    for (size_t i = 0; i < req->n_headers; i++) {
        const ingest_header *hd = &req->headers[i];
        if (!hd->name || !hd->value)
            return auth_release(a), snprintf(err, len, "header %zu has no name or value", i),
                   INGEST_EINVAL;
        if (!with_conn || strcasecmp(hd->name, "Authorization") != 0)
            a->headers[a->n_headers++] = *hd;
    }
    if (a->authorization)
        a->headers[a->n_headers++] = (ingest_header){"Authorization", a->authorization};
    return INGEST_OK;
}

static int perform(ingest_run *run, const ingest_http_request *req, const auth_parts *a,
                   http_response *out)
{
    instance *inst = run_instance(run);
    hostd *h = inst->host;
    const char *conn = run_connection(run);
    /* A rate bucket is a limiter key of its own: its quota, its Retry-After. */
    char key[256];
    if (req->rate_bucket)
        snprintf(key, sizeof key, "%s/%s/%s", inst->name, conn ? conn : "-", req->rate_bucket);
    else
        snprintf(key, sizeof key, "%s/%s", inst->name, conn ? conn : "-");
    http_request hr = {.method = req->method,
                       .url = req->url,
                       .headers = a->headers,
                       .n_headers = a->n_headers,
                       .body = req->body,
                       .body_len = req->body_len,
                       .userpwd = a->userpwd,
                       .aws_sigv4 = a->aws_key ? req->aws_sigv4 : NULL,
                       .aws_access_key = a->aws_key,
                       .aws_secret_key = a->aws_secret,
                       .aws_session_token = a->aws_token,
                       .on_body = req->on_body,
                       .on_body_arg = req->on_body_arg};
    /* Shutdown raises shutting_down: waits and transfers end promptly. */
    http_policy pol = {.provider = inst->name,
                       .limiter_key = key,
                       .quota = req->rate_bucket ? req->rate_bucket_limit : inst->desc.rate_limit,
                       .total_timeout_ms = req->timeout_ms,
                       .max_response_bytes = req->max_response_bytes,
                       .cancel = &h->shutting_down};
    return http_client_perform(h->http_client, &hr, &pol, out);
}

static int perform_with_auth(ingest_run *run, const ingest_http_request *req, http_response *out)
{
    auth_parts a;
    char err[256] = "";
    int rc = build_auth(run, req, &a, err, sizeof err);
    if (rc != INGEST_OK) {
        memset(out, 0, sizeof *out);
        out->retry_after_ms = -1;
        snprintf(out->error, sizeof out->error, "%s", err[0] ? err : "cannot prepare the request");
        return rc;
    }
    rc = perform(run, req, &a, out);
    auth_release(&a);
    return rc;
}

/* A 401 to a token the host can renew: the connection's kind (already
 * looked up by the request) is OAuth2 or app. */
static int refreshable(ingest_run *run, const ingest_http_request *req, int rc,
                       const http_response *r, ingest_auth_kind *kind)
{
    int64_t expires_us;
    return rc == INGEST_OK && r->status == 401 && req->auth == INGEST_HTTP_AUTH_CONNECTION &&
           run_connection_auth(run, 0, kind, &expires_us, NULL, 0) == INGEST_OK &&
           (*kind == INGEST_AUTH_OAUTH2 || *kind == INGEST_AUTH_APP);
}

/* The provider refused the access token: force one refresh (or mint),
 * retry once. */
static int refresh_and_retry(ingest_run *run, ingest_auth_kind kind, const ingest_http_request *req,
                             http_response *out)
{
    instance *inst = run_instance(run);
    log_fields f = {.plugin = inst->name, .tenant = run_tenant(run), .job = run_job(run)};
    log_write(INGEST_LOG_INFO, &f, "HTTP 401 with the connection's token: %s it once",
              kind == INGEST_AUTH_APP ? "minting a new one" : "refreshing");
    char err[256] = "";
    int rc = renew(run, kind, 1, err, sizeof err);
    if (rc != INGEST_OK) {
        log_write(INGEST_LOG_WARN, &f, "token refresh failed: %s", err[0] ? err : "unknown");
        snprintf(out->error, sizeof out->error, "token refresh failed: %.200s", err);
        return rc;
    }
    http_response_free(out);
    return perform_with_auth(run, req, out);
}

/* AWS answers 403 to bad credentials, and to good ones without the
 * permission; only the error code in the body tells them apart. */
static int aws_refused(const ingest_http_request *req, const http_response *r)
{
    static const char *const codes[] = {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    };
    if (!req->aws_sigv4 || r->status != 403 || !r->body)
        return 0;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strstr(r->body, codes[i]))
            return 1;
    return 0;
}

static void publish(response_box *box)
{
    http_response *in = &box->inner;
    box->pub = (ingest_http_response){
        .hdr = INGEST_ABI_HEADER(ingest_http_response),
        .status = in->status,
        .headers = in->headers,
        .n_headers = in->n_headers,
        .body = in->body ? in->body : "",
        .body_len = in->streamed ? (size_t)in->streamed_bytes
                    : in->body   ? in->body_len
                                 : 0,
        .retry_after_ms = in->retry_after_ms,
        .wait_ms = in->wait_ms,
        .attempts = in->attempts,
        .error = in->error,
        .url = box->url,
    };
}

int api_http_request(ingest_run *run, const ingest_http_request *req, ingest_http_response **resp)
{
    if (!resp)
        return INGEST_EINVAL;
    *resp = NULL;
    ingest_http_request r;
    if (!run || take_request(req, &r) != INGEST_OK)
        return INGEST_EINVAL;
    response_box *box = calloc(1, sizeof *box);
    if (box)
        box->url = strdup(r.url);
    if (!box || !box->url) {
        free(box);
        return INGEST_ENOMEM;
    }
    int rc = perform_with_auth(run, &r, &box->inner);
    ingest_auth_kind kind;
    if (refreshable(run, &r, rc, &box->inner, &kind))
        rc = refresh_and_retry(run, kind, &r, &box->inner);
    if (rc == INGEST_OK && r.auth == INGEST_HTTP_AUTH_CONNECTION &&
        (box->inner.status == 401 || aws_refused(&r, &box->inner)))
        rc = INGEST_EAUTH; /* the host's credentials were refused: not the plugin's to fix */
    if (rc == INGEST_ERATELIMITED)
        run_set_retry_after(run, box->inner.wait_ms);
    publish(box);
    *resp = &box->pub;
    return rc;
}

void api_http_response_free(ingest_http_response *resp)
{
    if (!resp)
        return;
    response_box *box = (response_box *)resp;
    http_response_free(&box->inner);
    free(box->url);
    free(box);
}

const char *api_http_header(const ingest_http_response *resp, const char *name)
{
    return resp ? http_response_header(&((const response_box *)resp)->inner, name) : NULL;
}

int api_http_next_link(const ingest_http_response *resp, char **url)
{
    if (!url)
        return INGEST_EINVAL;
    *url = NULL;
    if (!resp)
        return INGEST_EINVAL;
    const char *link = api_http_header(resp, "Link");
    if (link)
        *url = pagination_link_next(link, resp->url);
    return INGEST_OK;
}

int api_json_cursor(const ingest_http_response *resp, const char *path, char **value)
{
    if (!value)
        return INGEST_EINVAL;
    *value = NULL;
    if (!resp || !path || !*path)
        return INGEST_EINVAL;
    return pagination_json_cursor(resp->body, resp->body_len, path, value) == 0 ? INGEST_OK
                                                                                : INGEST_EINVAL;
}

int api_url_with_param(const char *url, const char *name, const char *value, char **out)
{
    if (!out)
        return INGEST_EINVAL;
    *out = NULL;
    if (!url || !name || !*name || !value)
        return INGEST_EINVAL;
    *out = pagination_url_set_param(url, name, value);
    return *out ? INGEST_OK : INGEST_EINVAL;
}

int api_retry_after(ingest_run *run, int64_t ms)
{
    if (!run || ms <= 0)
        return INGEST_EINVAL;
    run_set_retry_after(run, ms);
    return INGEST_OK;
}
