/* oauth_refresh.c — keeps access tokens fresh, one renewal per connection
 * at a time: OAuth2 connections by the refresh grant, app connections
 * (INGEST_AUTH_APP) by the plugin's mint_token. Both share the single-flight
 * table, the connection-state checks, needs_reauth and the metric.
 *
 * Why single-flight: providers that rotate refresh tokens (Atlassian, Slack,
 * GitLab, GitHub Apps) accept a refresh token once; a second concurrent
 * request with the same token gets invalid_grant and, at some providers,
 * revokes the whole grant. So every caller for one connection joins the
 * refresh already under way, and a refresh that just succeeded satisfies
 * callers arriving shortly after it.
 *
 * Why a curl handle of our own rather than the plugins' HTTP client: a
 * refresh must not queue behind the provider's API rate limiter, and the
 * request body carries the client secret and refresh token, which must
 * never reach a log line or an error text (only curl_easy_strerror() texts,
 * which name no data, are reported). */
#include "oauth_refresh.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "run.h"
#include "secrets.h"
#include "util.h"

#define RECENT_OK_MS 10000           /* a refresh this recent satisfies the next caller */
#define CONNECT_TIMEOUT_MS 10000L    /* token endpoint: TCP + TLS handshake */
#define TOTAL_TIMEOUT_MS 30000L      /* token endpoint: whole request */
#define MAX_REPLY_BYTES (64 * 1024)  /* a token response is a few hundred bytes */
#define STORE_TRIES 3                /* storing tokens the provider already rotated */
#define MAX_EXPIRES_IN_S 315360000LL /* ten years: anything longer is "does not expire" */

/* One connection's refresh: the leader runs it, later callers wait for it. */
typedef struct flight {
    char connection_id[64];
    int running;       /* a leader is refreshing now */
    unsigned long gen; /* bumped each time a refresh finishes */
    int rc;            /* outcome of the last refresh */
    char err[256];     /* its reason (no secrets) */
    int64_t ok_ms;     /* monotonic time of the last successful refresh, 0 = none */
    int users;         /* callers inside: the entry is kept while > 0 */
    struct flight *next;
} flight;

struct oauth_refresher {
    pthread_mutex_t lock;
    pthread_cond_t done;
    flight *flights;
    int threshold_s; /* snapshot of oauth_refresh_threshold_s (restart key) */
    int curl_ok;     /* curl_global_init succeeded: cleanup is owed */
};

/* What the connection row says, read right before deciding to refresh. */
typedef struct conn_state {
    char status[32];
    char reason[256];
    char auth_kind[32]; /* as stored */
    int has_token;      /* an "access_token" secret exists */
    int expires_known;
    long long expires_in_s; /* seconds left (negative: already expired) */
} conn_state;

/* The token endpoint's answer. Tokens are malloc'd and wiped on release. */
typedef struct token_reply {
    long status;
    char *access_token;
    char *refresh_token;    /* NULL: the provider did not rotate it */
    long long expires_in_s; /* -1: not given */
    char error[64];         /* the RFC 6749 §5.2 "error" code, sanitized */
} token_reply;

/* Everything one refresh needs, borrowed from the caller. */
typedef struct refresh_job {
    hostd *h;
    instance *inst;
    const char *connection_id;
    int force;
    char *err;
    size_t err_len;
    ingest_auth_kind kind; /* OAUTH2 or APP: connections of another kind are left alone */
    ingest_run *run;       /* APP: the caller's run, handed to mint_token */
} refresh_job;

static const char read_state_sql[] =
    "SELECT status, coalesce(status_reason, ''), token_expires_at IS NOT NULL,"
    " coalesce(floor(extract(epoch FROM token_expires_at - now()))::bigint, 0), auth_kind,"
    " EXISTS (SELECT 1 FROM connection_secrets s WHERE s.connection_id = c.id"
    " AND s.field = 'access_token')"
    " FROM connections c WHERE id = $1 AND provider = $2";

/* Only an active connection is marked: a disabled one stays disabled. */
static const char needs_reauth_sql[] =
    "UPDATE connections SET status = 'needs_reauth', status_reason = $2, updated_at = now()"
    " WHERE id = $1 AND status = 'active'";

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */
/* ------------------------------------------------------------------------ */

int oauth_refresher_start(hostd *h)
{
    oauth_refresher *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->done, NULL);
    r->threshold_s = h->cfg ? h->cfg->oauth_refresh_threshold_s : 300;
    /* Reference-counted by libcurl, so this pairs with the HTTP client's own. */
    r->curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    h->oauth = r;
    return 0;
}

void oauth_refresher_free(hostd *h)
{
    oauth_refresher *r = h ? h->oauth : NULL;
    if (!r)
        return;
    for (flight *f = r->flights, *next; f; f = next) {
        next = f->next;
        free(f);
    }
    if (h->metrics)
        metrics_remove_owner(h->metrics, r);
    if (r->curl_ok)
        curl_global_cleanup();
    pthread_cond_destroy(&r->done);
    pthread_mutex_destroy(&r->lock);
    free(r);
    h->oauth = NULL;
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static void set_err(char *err, size_t err_len, const char *fmt, ...) INGEST_PRINTF(3, 4);
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || !err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static const char *token_url_of(const instance *inst)
{
    const char *over = inst->conf ? inst->conf->host.oauth_token_url : NULL;
    return over && *over ? over : inst->desc.auth.token_url;
}

static const char *kind_word(const refresh_job *j)
{
    return j->kind == INGEST_AUTH_APP ? "app" : "oauth";
}

static void count_outcome(const refresh_job *j, const char *outcome)
{
    char labels[256];
    snprintf(labels, sizeof labels, "provider=\"%s\",kind=\"%s\",outcome=\"%s\"", j->inst->name,
             j->kind == INGEST_AUTH_APP ? "app" : "oauth2", outcome);
    ingest_metric *m = metrics_register(
        j->h->metrics, METRIC_COUNTER, "ingest_token_refreshes_total",
        "Access token renewals (OAuth2 refresh, app mint) by provider, kind and outcome", labels,
        j->h->oauth, NULL, 0);
    if (m)
        metrics_add(m, 1);
}

static void reply_clear(token_reply *t)
{
    crypto_wipe_free(t->access_token, 0);
    crypto_wipe_free(t->refresh_token, 0);
    t->access_token = t->refresh_token = NULL;
}

/* Keep only characters an RFC 6749 error code may hold, so a hostile body
 * cannot inject anything into our log lines or status_reason. */
static void copy_error_code(char *out, size_t out_len, const char *code)
{
    size_t n = 0;
    for (const char *p = code; p && *p && n + 1 < out_len; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '_' || *p == '-' || *p == '.')
            out[n++] = *p;
    out[n] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Store                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct state_args {
    const char *connection_id, *provider;
    conn_state *out;
    char *err;
    size_t err_len;
} state_args;

static int read_state_fn(PGconn *conn, void *arg)
{
    state_args *a = arg;
    const char *p[] = {a->connection_id, a->provider};
    PGresult *res = NULL;
    int rc = store_exec(conn, read_state_sql, 2, p, &res, a->err, a->err_len);
    if (rc != INGEST_OK)
        return rc;
    if (PQntuples(res) == 0) {
        set_err(a->err, a->err_len, "connection %s of provider %s does not exist", a->connection_id,
                a->provider);
        rc = INGEST_ENOTFOUND;
    } else {
        snprintf(a->out->status, sizeof a->out->status, "%s", PQgetvalue(res, 0, 0));
        snprintf(a->out->reason, sizeof a->out->reason, "%s", PQgetvalue(res, 0, 1));
        a->out->expires_known = PQgetvalue(res, 0, 2)[0] == 't';
        a->out->expires_in_s = atoll(PQgetvalue(res, 0, 3));
        snprintf(a->out->auth_kind, sizeof a->out->auth_kind, "%s", PQgetvalue(res, 0, 4));
        a->out->has_token = PQgetvalue(res, 0, 5)[0] == 't';
    }
    PQclear(res);
    return rc;
}

static int read_state(const refresh_job *j, conn_state *out)
{
    state_args a = {j->connection_id, j->inst->name, out, j->err, j->err_len};
    set_err(j->err, j->err_len, "database unavailable");
    return store_call(j->h->store, read_state_fn, &a);
}

typedef struct reauth_args {
    const char *connection_id, *reason;
    char *err;
    size_t err_len;
} reauth_args;

static int needs_reauth_fn(PGconn *conn, void *arg)
{
    reauth_args *a = arg;
    const char *p[] = {a->connection_id, a->reason};
    PGresult *res = NULL;
    int rc = store_exec(conn, needs_reauth_sql, 2, p, &res, a->err, a->err_len);
    PQclear(res);
    return rc;
}

/* Not a job failure but the connection's: mark it so the scheduler stops
 * and the operator sees why. */
static int mark_needs_reauth(const refresh_job *j, const char *reason)
{
    char err[256] = "";
    reauth_args a = {j->connection_id, reason, err, sizeof err};
    int rc = store_call(j->h->store, needs_reauth_fn, &a);
    log_fields f = {.plugin = j->inst->name};
    if (rc == INGEST_OK)
        log_write(INGEST_LOG_WARN, &f, "%s: connection %s needs re-authorization: %s", kind_word(j),
                  j->connection_id, reason);
    else
        log_write(INGEST_LOG_ERROR, &f, "%s: cannot mark connection %s needs_reauth: %s",
                  kind_word(j), j->connection_id, err);
    return rc;
}

static int read_secret(const refresh_job *j, const char *field, char **value)
{
    return secrets_get(j->h->store, atomic_load(&j->h->keyring), j->inst->name, j->connection_id,
                       field, value, j->err, j->err_len);
}

/* The provider already rotated the refresh token it answered with: losing
 * it to a short store outage would end the grant, so try a few times. */
static int store_tokens(const refresh_job *j, const token_reply *t)
{
    const char *fields[2] = {"access_token", "refresh_token"};
    const char *values[2] = {t->access_token, t->refresh_token};
    size_t n = t->refresh_token ? 2 : 1;
    int rc = INGEST_EIO;
    for (int attempt = 0; attempt < STORE_TRIES; attempt++) {
        if (attempt) {
            struct timespec pause = {0, 200000000L * attempt};
            nanosleep(&pause, NULL);
        }
        rc = secrets_put_with_expiry(j->h->store, atomic_load(&j->h->keyring), j->connection_id,
                                     fields, values, n, t->expires_in_s, j->err, j->err_len);
        if (rc != INGEST_EIO)
            break;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* HTTP                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct body_buf {
    char *data;
    size_t len, cap;
} body_buf;

static void body_wipe(body_buf *b)
{
    crypto_wipe_free(b->data, b->cap);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Grows by copying into a fresh buffer and wiping the old one: realloc
 * could leave token bytes behind in freed memory. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    body_buf *b = arg;
    size_t n = size * nmemb;
    if (b->len + n + 1 > MAX_REPLY_BYTES)
        return 0;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = calloc(1, cap);
        if (!grown)
            return 0;
        if (b->len)
            memcpy(grown, b->data, b->len);
        crypto_wipe_free(b->data, b->cap);
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Appends "&key=<escaped value>" (no "&" first). -1 on OOM. */
static int form_add(CURL *easy, body_buf *form, const char *key, const char *value)
{
    char *esc = curl_easy_escape(easy, value, 0);
    if (!esc)
        return -1;
    size_t need = strlen(key) + strlen(esc) + 3;
    char *piece = malloc(need);
    int rc = -1;
    if (piece) {
        int n = snprintf(piece, need, "%s%s=%s", form->len ? "&" : "", key, esc);
        rc = on_body(piece, 1, (size_t)n, form) == (size_t)n ? 0 : -1;
        crypto_wipe_free(piece, need);
    }
    memset(esc, 0, strlen(esc));
    curl_free(esc);
    return rc;
}

static int build_form(CURL *easy, const plugin_host_conf *hc, const char *refresh_token,
                      body_buf *form)
{
    int rc = form_add(easy, form, "grant_type", "refresh_token");
    if (rc == 0)
        rc = form_add(easy, form, "refresh_token", refresh_token);
    if (rc == 0)
        rc = form_add(easy, form, "client_id", hc->oauth_client_id);
    if (rc == 0 && hc->oauth_client_secret && *hc->oauth_client_secret)
        rc = form_add(easy, form, "client_secret", hc->oauth_client_secret);
    return rc;
}

static void setup_easy(CURL *easy, const char *url, const body_buf *form, struct curl_slist *hdrs,
                       body_buf *reply)
{
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A redirect would re-send the client secret somewhere we did not choose. */
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "ingest-hostd/" HOSTD_VERSION);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, form->data);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)form->len);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, reply);
}

/* POST the refresh grant. INGEST_OK when the endpoint answered (whatever
 * the status; *status and *reply say what), INGEST_EAGAIN on transport
 * failure, INGEST_ENOMEM. */
static int post_grant(const refresh_job *j, const char *url, const char *refresh_token,
                      long *status, body_buf *reply)
{
    CURL *easy = curl_easy_init();
    if (!easy)
        return set_err(j->err, j->err_len, "cannot create an HTTP handle"), INGEST_ENOMEM;
    body_buf form = {0};
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    /* On success append returns the same list head; on failure hdrs is intact. */
    int have_hdrs = hdrs && curl_slist_append(hdrs, "Content-Type: "
                                                    "application/x-www-form-urlencoded");
    int rc = INGEST_ENOMEM;
    if (have_hdrs && build_form(easy, &j->inst->conf->host, refresh_token, &form) == 0) {
        setup_easy(easy, url, &form, hdrs, reply);
        CURLcode cc = curl_easy_perform(easy);
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
        rc = cc == CURLE_OK ? INGEST_OK : INGEST_EAGAIN;
        if (cc != CURLE_OK) /* strerror names no data; the error buffer could */
            set_err(j->err, j->err_len, "token endpoint %s unreachable: %s", url,
                    curl_easy_strerror(cc));
    } else {
        set_err(j->err, j->err_len, "out of memory building the token request");
    }
    body_wipe(&form);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(easy);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reply parsing                                                             */
/* ------------------------------------------------------------------------ */

static char *dup_string_member(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    return s && *s ? strdup(s) : NULL;
}

static long long expires_in_of(json_object *obj)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, "expires_in", &v))
        return -1;
    /* Some providers send it as a string ("3600"). */
    long long n = json_object_is_type(v, json_type_string) ? atoll(json_object_get_string(v))
                                                           : (long long)json_object_get_int64(v);
    return n > 0 && n <= MAX_EXPIRES_IN_S ? n : -1;
}

/* Fill `t` from the body. json-c copies strings into its tree, so the tree
 * is torn down after the tokens are copied out; its memory is not wiped,
 * which is the price of using json-c (the process keeps the tokens in its
 * store anyway). */
static void parse_reply(const body_buf *body, token_reply *t)
{
    json_object *obj = body->data ? json_tokener_parse(body->data) : NULL;
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return;
    }
    json_object *v = NULL;
    if (json_object_object_get_ex(obj, "error", &v) && json_object_is_type(v, json_type_string))
        copy_error_code(t->error, sizeof t->error, json_object_get_string(v));
    if (!t->error[0]) {
        t->access_token = dup_string_member(obj, "access_token");
        t->refresh_token = dup_string_member(obj, "refresh_token");
        t->expires_in_s = expires_in_of(obj);
    }
    json_object_put(obj);
}

/* RFC 6749 §5.2 codes that mean this grant is gone for good (Slack answers
 * 200 with ok:false and invalid_refresh_token). invalid_client is not one:
 * it is the app's credentials, a config error, not this connection's. */
static int grant_revoked(const token_reply *t)
{
    if (t->status != 400 && t->status != 401 && t->status != 200)
        return 0;
    return strcmp(t->error, "invalid_grant") == 0 || strcmp(t->error, "unauthorized_client") == 0 ||
           strcmp(t->error, "invalid_refresh_token") == 0;
}

/* ------------------------------------------------------------------------ */
/* One refresh                                                               */
/* ------------------------------------------------------------------------ */

/* An app connection without a token needs one minted; an OAuth2 one
 * without a token has nothing to refresh it from but its refresh token,
 * which refresh_oauth handles. */
static int due(const refresh_job *j, const conn_state *cs)
{
    int expiring = cs->expires_known && cs->expires_in_s <= j->h->oauth->threshold_s;
    return expiring || (j->kind == INGEST_AUTH_APP && !cs->has_token);
}

/* Active, or being validated by REST POST /connections (rest_connections.c
 * stores it 'disabled' with reason 'validating' until the plugin's
 * check_connection accepts it): an app connection has no token before its
 * first mint, and the check is what asks for one. */
static int usable(const refresh_job *j, const conn_state *cs)
{
    if (strcmp(cs->status, "active") == 0 ||
        (strcmp(cs->status, "disabled") == 0 && strcmp(cs->reason, "validating") == 0))
        return 1;
    set_err(j->err, j->err_len, "connection is %s%s%s", cs->status, cs->reason[0] ? ": " : "",
            cs->reason);
    return 0;
}

/* Whether the connection renews the way this job does: a plugin with
 * several auth kinds has connections of each (see instance_connection_auth). */
static int applies(const refresh_job *j, const conn_state *cs)
{
    ingest_auth_kind kind;
    return instance_connection_auth(j->inst, cs->auth_kind, &kind, NULL, 0) == INGEST_OK &&
           kind == j->kind;
}

/* A rotating provider may have answered invalid_grant because another
 * daemon on this database used the same refresh token first; then the
 * stored refresh token has changed and the connection is fine. */
static int rotated_elsewhere(const refresh_job *j, const char *sent)
{
    char *now = NULL;
    int rc = read_secret(j, "refresh_token", &now);
    int changed = rc == INGEST_OK && strcmp(now, sent) != 0;
    crypto_wipe_free(now, 0);
    return changed;
}

static int on_revoked(const refresh_job *j, const token_reply *t, const char *sent)
{
    if (rotated_elsewhere(j, sent)) {
        count_outcome(j, "ok");
        return INGEST_OK;
    }
    char reason[256];
    snprintf(reason, sizeof reason,
             "token refresh refused by the provider (%s): the connection must be authorized "
             "again",
             t->error);
    count_outcome(j, "invalid_grant");
    mark_needs_reauth(j, reason);
    set_err(j->err, j->err_len, "%s", reason);
    return INGEST_EAUTH;
}

static int on_refused(const refresh_job *j, const token_reply *t, const char *url)
{
    count_outcome(j, "failed");
    int transient = t->status == 429 || t->status >= 500 || t->status == 0;
    if (t->status >= 200 && t->status < 300)
        set_err(j->err, j->err_len, "token endpoint %s answered %ld without an access_token%s%s",
                url, t->status, t->error[0] ? ": " : "", t->error);
    else
        set_err(j->err, j->err_len, "token endpoint %s answered HTTP %ld%s%s", url, t->status,
                t->error[0] ? ": " : "", t->error);
    return transient ? INGEST_EAGAIN : INGEST_EIO;
}

static int on_granted(const refresh_job *j, const token_reply *t)
{
    log_fields f = {.plugin = j->inst->name};
    int rc = store_tokens(j, t);
    if (rc != INGEST_OK) {
        count_outcome(j, "failed");
        log_write(INGEST_LOG_ERROR, &f,
                  "oauth: connection %s: refreshed token%s could not be stored: %s",
                  j->connection_id, t->refresh_token ? " (rotated)" : "", j->err);
        return rc;
    }
    count_outcome(j, "ok");
    log_write(INGEST_LOG_INFO, &f,
              "oauth: connection %s: access token refreshed%s, expires in %lld s", j->connection_id,
              t->refresh_token ? ", refresh token rotated" : "", t->expires_in_s);
    set_err(j->err, j->err_len, "%s", "");
    return INGEST_OK;
}

/* Ask the provider and act on its answer. */
static int exchange(const refresh_job *j, const char *url, const char *refresh_token)
{
    body_buf body = {0};
    token_reply t = {.expires_in_s = -1};
    int rc = post_grant(j, url, refresh_token, &t.status, &body);
    if (rc != INGEST_OK) {
        count_outcome(j, "failed");
        body_wipe(&body);
        return rc;
    }
    parse_reply(&body, &t);
    body_wipe(&body);
    if (t.status >= 200 && t.status < 300 && t.access_token)
        rc = on_granted(j, &t);
    else if (grant_revoked(&t))
        rc = on_revoked(j, &t, refresh_token);
    else
        rc = on_refused(j, &t, url);
    reply_clear(&t);
    return rc;
}

/* No refresh token: nothing to refresh with. Only an expired (or refused)
 * token makes that the connection's end. */
static int without_refresh_token(const refresh_job *j, const conn_state *cs)
{
    if (!j->force && cs->expires_in_s > 0) {
        set_err(j->err, j->err_len, "%s", "");
        return INGEST_OK;
    }
    const char *reason = "access token expired and no refresh token is stored: the connection "
                         "must be authorized again";
    count_outcome(j, "invalid_grant");
    mark_needs_reauth(j, reason);
    set_err(j->err, j->err_len, "%s", reason);
    return INGEST_EAUTH;
}

/* Exchange the connection's refresh token. */
static int refresh_oauth(const refresh_job *j, const conn_state *cs)
{
    const char *url = token_url_of(j->inst);
    const plugin_host_conf *hc = &j->inst->conf->host;
    if (!url || !*url || !hc->oauth_client_id || !*hc->oauth_client_id) {
        set_err(j->err, j->err_len,
                "cannot refresh the token: plugins.%s.%s is not set in the config", j->inst->name,
                !url || !*url ? "oauth_token_url" : "oauth_client_id");
        return INGEST_EINVAL;
    }
    char *refresh_token = NULL;
    int rc = read_secret(j, "refresh_token", &refresh_token);
    if (rc == INGEST_ENOTFOUND)
        return without_refresh_token(j, cs);
    if (rc != INGEST_OK)
        return rc;
    rc = exchange(j, url, refresh_token);
    crypto_wipe_free(refresh_token, 0);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* One mint (app connections)                                                */
/* ------------------------------------------------------------------------ */

/* The provider refused the app credentials (uninstalled app, revoked or
 * wrong key): minting again cannot help until someone fixes them. */
static int mint_refused(const refresh_job *j)
{
    const char *reason = "minting an access token was refused: the provider rejected the "
                         "connection's app credentials; the connection must be authorized again";
    count_outcome(j, "invalid_grant");
    mark_needs_reauth(j, reason);
    set_err(j->err, j->err_len, "%s", reason);
    return INGEST_EAUTH;
}

/* mint_token said OK: believe it only if a token was stored. */
static int mint_stored(const refresh_job *j)
{
    conn_state cs = {.expires_known = 0};
    int rc = read_state(j, &cs);
    if (rc != INGEST_OK)
        return count_outcome(j, "failed"), INGEST_EIO;
    if (!cs.has_token) {
        count_outcome(j, "failed");
        set_err(j->err, j->err_len,
                "mint_token returned OK without storing an access_token (api->secret_put)");
        return INGEST_EIO;
    }
    count_outcome(j, "ok");
    log_write(INGEST_LOG_INFO, &(log_fields){.plugin = j->inst->name},
              "app: connection %s: access token minted%s%lld%s", j->connection_id,
              cs.expires_known ? ", expires in " : "", cs.expires_known ? cs.expires_in_s : 0LL,
              cs.expires_known ? " s" : " (no expiry given)");
    set_err(j->err, j->err_len, "%s", "");
    return INGEST_OK;
}

/* Run the plugin's mint_token on the leader's run. It must not use
 * INGEST_HTTP_AUTH_CONNECTION meanwhile: that would wait for this very
 * flight (api_http.c refuses it while the run is minting). */
static int mint(const refresh_job *j)
{
    run_set_minting(j->run, 1);
    int rc = j->inst->desc.mint_token(j->run, j->inst->state);
    run_set_minting(j->run, 0);
    if (rc == INGEST_OK)
        return mint_stored(j);
    if (rc == INGEST_EAUTH)
        return mint_refused(j);
    count_outcome(j, "failed");
    const char *why = run_error(j->run);
    set_err(j->err, j->err_len, "mint_token failed (status %d)%s%.200s", rc, why ? ": " : "",
            why ? why : "");
    /* A transient failure stays one; anything that is not a status is a bug. */
    return rc < 0 ? rc : INGEST_EIO;
}

/* The leader's work: re-read the row (another caller or daemon may have
 * renewed meanwhile), then refresh or mint. */
static int refresh_connection(const refresh_job *j)
{
    conn_state cs = {.expires_known = 0};
    int rc = read_state(j, &cs);
    if (rc != INGEST_OK)
        return rc == INGEST_ENOTFOUND ? INGEST_ENOTFOUND : INGEST_EIO;
    if (!usable(j, &cs))
        return INGEST_EAUTH;
    if (!applies(j, &cs) || (!j->force && !due(j, &cs)))
        return set_err(j->err, j->err_len, "%s", ""), INGEST_OK;
    return j->kind == INGEST_AUTH_APP ? mint(j) : refresh_oauth(j, &cs);
}

/* ------------------------------------------------------------------------ */
/* Single-flight                                                             */
/* ------------------------------------------------------------------------ */

static int recent_ok(const flight *f, int64_t now_ms)
{
    return f->ok_ms && now_ms - f->ok_ms < RECENT_OK_MS;
}

/* Under r->lock. NULL on OOM. */
static flight *flight_get(oauth_refresher *r, const char *connection_id)
{
    for (flight *f = r->flights; f; f = f->next)
        if (strcmp(f->connection_id, connection_id) == 0)
            return f;
    flight *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    snprintf(f->connection_id, sizeof f->connection_id, "%s", connection_id);
    f->next = r->flights;
    r->flights = f;
    return f;
}

/* Under r->lock: drop entries nobody uses that no longer vouch for a
 * recent refresh, so the table stays as small as the refreshes in flight. */
static void flights_prune(oauth_refresher *r, int64_t now_ms)
{
    for (flight **pp = &r->flights; *pp;) {
        flight *f = *pp;
        if (f->users == 0 && !f->running && !recent_ok(f, now_ms)) {
            *pp = f->next;
            free(f);
        } else {
            pp = &f->next;
        }
    }
}

/* Under r->lock, which it releases while the refresh runs. */
static int lead(oauth_refresher *r, flight *f, const refresh_job *j)
{
    f->running = 1;
    pthread_mutex_unlock(&r->lock);
    int rc = refresh_connection(j);
    pthread_mutex_lock(&r->lock);
    f->running = 0;
    f->gen++;
    f->rc = rc;
    snprintf(f->err, sizeof f->err, "%s", j->err ? j->err : "");
    if (rc == INGEST_OK)
        f->ok_ms = util_mono_ms();
    pthread_cond_broadcast(&r->done);
    return rc;
}

/* Under r->lock: wait for the leader and take its outcome. */
static int follow(oauth_refresher *r, flight *f, const refresh_job *j)
{
    unsigned long gen = f->gen;
    while (f->running && f->gen == gen)
        pthread_cond_wait(&r->done, &r->lock);
    set_err(j->err, j->err_len, "%s", f->err);
    return f->rc;
}

static int single_flight(const refresh_job *j)
{
    oauth_refresher *r = j->h->oauth;
    pthread_mutex_lock(&r->lock);
    flight *f = flight_get(r, j->connection_id);
    if (!f) {
        pthread_mutex_unlock(&r->lock);
        set_err(j->err, j->err_len, "out of memory");
        return INGEST_ENOMEM;
    }
    f->users++;
    int rc;
    if (f->running)
        rc = follow(r, f, j);
    else if (recent_ok(f, util_mono_ms()))
        rc = INGEST_OK; /* the token stored a moment ago is the fresh one */
    else
        rc = lead(r, f, j);
    f->users--;
    flights_prune(r, util_mono_ms());
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Entry point                                                               */
/* ------------------------------------------------------------------------ */

/* The cheap check every job makes: one indexed row read, no lock. */
static int fresh_enough(const refresh_job *j, int *done_rc)
{
    conn_state cs = {.expires_known = 0};
    int rc = read_state(j, &cs);
    if (rc != INGEST_OK) {
        *done_rc = rc == INGEST_ENOTFOUND ? INGEST_ENOTFOUND : INGEST_EIO;
        return 1;
    }
    *done_rc = INGEST_OK;
    if (!applies(j, &cs))
        return 1; /* a connection of another kind: nothing to renew here */
    if (!usable(j, &cs)) {
        *done_rc = INGEST_EAUTH;
        return 1;
    }
    return !due(j, &cs);
}

int oauth_ensure_fresh(hostd *h, instance *inst, const char *connection_id, int force, char *err,
                       size_t err_len)
{
    set_err(err, err_len, "%s", "");
    if (!h || !h->oauth || !inst || !instance_accepts_auth(inst, INGEST_AUTH_OAUTH2) ||
        !connection_id)
        return INGEST_OK;
    if (!util_is_uuid(connection_id)) {
        set_err(err, err_len, "connection id is not a uuid");
        return INGEST_EINVAL;
    }
    char scratch[256];
    refresh_job j = {h,
                     inst,
                     connection_id,
                     force,
                     err ? err : scratch,
                     err ? err_len : sizeof scratch,
                     INGEST_AUTH_OAUTH2,
                     NULL};
    int rc;
    if (!force && fresh_enough(&j, &rc))
        return rc;
    return single_flight(&j);
}

int oauth_ensure_minted(hostd *h, ingest_run *run, int force, char *err, size_t err_len)
{
    set_err(err, err_len, "%s", "");
    instance *inst = run ? run_instance(run) : NULL;
    const char *connection_id = run ? run_connection(run) : NULL;
    if (!h || !h->oauth || !inst || !instance_accepts_auth(inst, INGEST_AUTH_APP) || !connection_id)
        return INGEST_OK;
    if (!inst->desc.mint_token) { /* the loader refuses such a plugin */
        set_err(err, err_len, "plugin %s has no mint_token callback", inst->name);
        return INGEST_EUNSUPPORTED;
    }
    if (!util_is_uuid(connection_id)) {
        set_err(err, err_len, "connection id is not a uuid");
        return INGEST_EINVAL;
    }
    char scratch[256];
    refresh_job j = {h,
                     inst,
                     connection_id,
                     force,
                     err ? err : scratch,
                     err ? err_len : sizeof scratch,
                     INGEST_AUTH_APP,
                     run};
    int rc;
    if (!force && fresh_enough(&j, &rc))
        return rc;
    return single_flight(&j);
}

int oauth_token_due(const hostd *h, int64_t expires_us)
{
    int threshold_s = h && h->oauth ? h->oauth->threshold_s : 300;
    return expires_us > 0 && expires_us - util_now_us() <= (int64_t)threshold_s * 1000000;
}
