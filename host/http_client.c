/* http_client.c — libcurl easy handles kept per worker thread (a pthread key
 * per client, so a handle never crosses threads and its connection cache
 * stays warm), one CURLSH for DNS and TLS sessions, and a retry loop that
 * asks the rate limiter before every attempt. */
#include "http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hostd.h"
#include "log.h"
#include "pagination.h"
#include "util.h"

#define SLEEP_SLICE_MS 100
#define MAX_REDIRECTS 5
#define REDACTED "[REDACTED]"
/* Secrets shorter than this are not scrubbed from text: they would mangle
 * ordinary words (the same rule as log_redact_add). */
#define MIN_SECRET_LEN 4

/* ---- client and per-thread handles --------------------------------------- */

typedef struct worker_handle {
    http_client *client;
    CURL *easy;
    int busy; /* a transfer runs on it (a body sink may try to nest one) */
    struct worker_handle *next;
} worker_handle;

enum { CODE_2XX, CODE_3XX, CODE_4XX, CODE_5XX, CODE_ERROR, N_CODES };
enum { RETRY_429, RETRY_5XX, RETRY_TRANSPORT, N_REASONS };
static const char *const code_labels[N_CODES] = {"2xx", "3xx", "4xx", "5xx", "error"};
static const char *const reason_labels[N_REASONS] = {"429", "5xx", "transport"};

/* The series of one provider, registered together on its first request. */
typedef struct provider_metrics {
    char *provider;
    ingest_metric *requests[N_CODES];
    ingest_metric *retries[N_REASONS];
    ingest_metric *too_many_requests;
    ingest_metric *waits, *wait_seconds, *tokens;
    struct provider_metrics *next;
} provider_metrics;

struct http_client {
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    pthread_key_t handle_key;
    pthread_mutex_t lock; /* guards handles and providers */
    worker_handle *handles;
    provider_metrics *providers;
    ratelimit_registry *limits;
    metrics_registry *metrics;
    char *user_agent;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void) { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

static void share_lock(CURL *easy, curl_lock_data data, curl_lock_access access, void *arg)
{
    (void)easy;
    (void)access;
    http_client *c = arg;
    pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *easy, curl_lock_data data, void *arg)
{
    (void)easy;
    http_client *c = arg;
    pthread_mutex_unlock(&c->share_locks[data]);
}

static void handle_destroy(worker_handle *h)
{
    curl_easy_cleanup(h->easy);
    free(h);
}

/* Unlink h from its client and destroy it; runs at thread exit too. */
static void handle_release(void *arg)
{
    worker_handle *h = arg;
    http_client *c = h->client;
    pthread_mutex_lock(&c->lock);
    for (worker_handle **link = &c->handles; *link; link = &(*link)->next) {
        if (*link == h) {
            *link = h->next;
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    handle_destroy(h);
}

static int setup_share(http_client *c)
{
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&c->share_locks[i], NULL);
    c->share = curl_share_init();
    if (!c->share)
        return -1;
    /* Connections stay per handle on purpose: each worker reuses its own. */
    int failed = curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) ||
                 curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
                 curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) ||
                 curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
                 curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return failed ? -1 : 0;
}

http_client *http_client_new(const http_client_options *opts)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK)
        return NULL;
    http_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    if (opts) {
        c->limits = opts->limits;
        c->metrics = opts->metrics;
    }
    const char *agent = opts && opts->user_agent ? opts->user_agent : "ingest-hostd/" HOSTD_VERSION;
    c->user_agent = strdup(agent);
    int key_ok = pthread_key_create(&c->handle_key, handle_release) == 0;
    if (!key_ok || !c->user_agent || setup_share(c) < 0) {
        if (key_ok)
            pthread_key_delete(c->handle_key);
        curl_share_cleanup(c->share);
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
            pthread_mutex_destroy(&c->share_locks[i]);
        pthread_mutex_destroy(&c->lock);
        free(c->user_agent);
        free(c);
        return NULL;
    }
    return c;
}

static void providers_free(provider_metrics *p)
{
    for (provider_metrics *next; p; p = next) {
        next = p->next;
        free(p->provider);
        free(p);
    }
}

void http_client_free(http_client *c)
{
    if (!c)
        return;
    /* No destructor runs for this key after this; the handles are ours. */
    pthread_key_delete(c->handle_key);
    for (worker_handle *h = c->handles, *next; h; h = next) {
        next = h->next;
        handle_destroy(h);
    }
    curl_share_cleanup(c->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&c->share_locks[i]);
    if (c->metrics)
        metrics_remove_owner(c->metrics, c);
    providers_free(c->providers);
    pthread_mutex_destroy(&c->lock);
    free(c->user_agent);
    free(c);
}

void http_client_thread_release(http_client *c)
{
    worker_handle *h = pthread_getspecific(c->handle_key);
    if (h) {
        pthread_setspecific(c->handle_key, NULL);
        handle_release(h);
    }
}

/* The calling thread's handle, made on first use. */
static worker_handle *worker_get(http_client *c)
{
    worker_handle *h = pthread_getspecific(c->handle_key);
    if (h)
        return h;
    h = calloc(1, sizeof *h);
    if (!h || !(h->easy = curl_easy_init())) {
        free(h);
        return NULL;
    }
    h->client = c;
    if (pthread_setspecific(c->handle_key, h) != 0) {
        handle_destroy(h);
        return NULL;
    }
    pthread_mutex_lock(&c->lock);
    h->next = c->handles;
    c->handles = h;
    pthread_mutex_unlock(&c->lock);
    return h;
}

/* ---- metrics ------------------------------------------------------------- */

static int valid_label_value(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("_.-", *s)))
            return 0;
    return 1;
}

static ingest_metric *series(http_client *c, metric_type type, const char *name, const char *help,
                             const char *provider, const char *extra_name, const char *extra)
{
    char labels[256];
    if (extra_name)
        snprintf(labels, sizeof labels, "provider=\"%s\",%s=\"%s\"", provider, extra_name, extra);
    else
        snprintf(labels, sizeof labels, "provider=\"%s\"", provider);
    return metrics_register(c->metrics, type, name, help, labels, c, NULL, 0);
}

static void register_provider(http_client *c, provider_metrics *m)
{
    const char *p = m->provider;
    for (int i = 0; i < N_CODES; i++)
        m->requests[i] =
            series(c, METRIC_COUNTER, "ingest_http_requests_total",
                   "Outbound HTTP requests by status class", p, "code", code_labels[i]);
    for (int i = 0; i < N_REASONS; i++)
        m->retries[i] = series(c, METRIC_COUNTER, "ingest_http_retries_total",
                               "Outbound HTTP retries by reason", p, "reason", reason_labels[i]);
    m->too_many_requests = series(c, METRIC_COUNTER, "ingest_http_429_total",
                                  "Responses with status 429 Too Many Requests", p, NULL, NULL);
    m->waits = series(c, METRIC_COUNTER, "ingest_ratelimit_waits_total",
                      "Requests that waited for the rate limiter", p, NULL, NULL);
    m->wait_seconds = series(c, METRIC_COUNTER, "ingest_ratelimit_wait_seconds_total",
                             "Time spent waiting for the rate limiter", p, NULL, NULL);
    m->tokens = series(c, METRIC_GAUGE, "ingest_ratelimit_tokens",
                       "Rate limiter tokens available (last connection used)", p, NULL, NULL);
}

/* The provider's series; NULL without a metrics registry (or on OOM), which
 * every metrics_* call accepts. */
static provider_metrics *provider_metrics_get(http_client *c, const char *provider)
{
    if (!c->metrics)
        return NULL;
    if (!provider)
        provider = "none";
    else if (!valid_label_value(provider))
        provider = "invalid";
    pthread_mutex_lock(&c->lock);
    provider_metrics *m = c->providers;
    while (m && strcmp(m->provider, provider) != 0)
        m = m->next;
    if (!m && (m = calloc(1, sizeof *m)) && (m->provider = strdup(provider))) {
        register_provider(c, m);
        m->next = c->providers;
        c->providers = m;
    } else if (m && !m->provider) {
        free(m);
        m = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    return m;
}

#define METRIC(m, member) ((m) ? (m)->member : NULL)

static int code_class(long status)
{
    if (status >= 200 && status < 600)
        return (int)(status / 100) - 2;
    return CODE_ERROR;
}

/* ---- redaction ----------------------------------------------------------- */

static const char *const secret_params[] = {
    "access_token",     "refresh_token", "token",           "key",
    "api_key",          "apikey",        "signature",       "sig",
    "client_secret",    "password",      "x-amz-signature", "x-amz-security-token",
    "x-amz-credential",
};

static int is_secret_param(const char *pair, size_t name_len)
{
    int decoded_len = 0;
    char *name = curl_easy_unescape(NULL, pair, (int)name_len, &decoded_len);
    int secret = 0;
    for (size_t i = 0; name && i < sizeof secret_params / sizeof secret_params[0]; i++)
        if (strcasecmp(name, secret_params[i]) == 0)
            secret = 1;
    curl_free(name);
    return secret;
}

/* The raw query with secret parameters' values replaced; malloc'd. */
static char *redact_query(const char *query)
{
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);
    if (!f)
        return NULL;
    for (const char *p = query; *p;) {
        size_t len = strcspn(p, "&");
        size_t name_len = strcspn(p, "=&");
        int secret = name_len < len && is_secret_param(p, name_len);
        if (p != query)
            fputc('&', f);
        if (secret)
            fprintf(f, "%.*s=%s", (int)name_len, p, REDACTED);
        else
            fwrite(p, 1, len, f);
        p += len;
        if (*p == '&')
            p++;
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Drop userinfo and redact secret query values in place; -1 on failure. */
static int strip_credentials(CURLU *u)
{
    curl_url_set(u, CURLUPART_USER, NULL, 0);
    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
    curl_url_set(u, CURLUPART_OPTIONS, NULL, 0);
    char *query = NULL;
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
        return 0; /* no query */
    char *redacted = redact_query(query);
    curl_free(query);
    int rc = redacted && curl_url_set(u, CURLUPART_QUERY, redacted, 0) == CURLUE_OK ? 0 : -1;
    free(redacted);
    return rc;
}

char *http_redact_url(const char *url)
{
    if (!url)
        return strdup("");
    char *out = NULL, *built = NULL;
    CURLU *u = curl_url();
    if (u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        strip_credentials(u) == 0 && curl_url_get(u, CURLUPART_URL, &built, 0) == CURLUE_OK)
        out = strdup(built);
    curl_free(built);
    curl_url_cleanup(u);
    if (out)
        return out;
    /* Not a URL we can take apart: keep only what cannot hold a credential. */
    size_t keep = strcspn(url, "?#");
    return memchr(url, '@', keep) ? strdup("[unparsable URL]") : strndup(url, keep);
}

static int is_secret_header(const char *name)
{
    static const char *const words[] = {"auth", "token",     "cookie",   "secret",
                                        "key",  "signature", "password", "session"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasestr(name, words[i]))
            return 1;
    return 0;
}

/* *text (malloc'd) with every occurrence of secret replaced by REDACTED.
 * On OOM the text is dropped rather than left unredacted. */
static void scrub_one(char **text, const char *secret)
{
    size_t slen = secret ? strlen(secret) : 0;
    if (!*text || slen < MIN_SECRET_LEN || !strstr(*text, secret))
        return;
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);
    for (const char *p = *text, *hit; f; p = hit + slen) {
        hit = strstr(p, secret);
        if (!hit) {
            fputs(p, f);
            break;
        }
        fwrite(p, 1, (size_t)(hit - p), f);
        fputs(REDACTED, f);
    }
    if (!f || fclose(f) != 0) {
        free(out);
        out = NULL;
    }
    free(*text);
    *text = out;
}

/* Remove every credential of req from *text: whole header values and, for
 * "Scheme credentials" values, the credentials alone. */
static void scrub_secrets(char **text, const http_request *req)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        const ingest_header *h = &req->headers[i];
        if (!h->name || !h->value || !is_secret_header(h->name))
            continue;
        scrub_one(text, h->value);
        const char *space = strrchr(h->value, ' ');
        if (space)
            scrub_one(text, space + 1);
    }
    if (req->userpwd) {
        scrub_one(text, req->userpwd);
        const char *colon = strchr(req->userpwd, ':');
        if (colon)
            scrub_one(text, colon + 1);
    }
    scrub_one(text, req->aws_secret_key);
    scrub_one(text, req->aws_session_token);
}

/* printf into a malloc'd string scrubbed of req's credentials; NULL on OOM. */
static char *format_scrubbed(const http_request *req, const char *fmt, va_list ap)
{
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0)
        return NULL;
    scrub_secrets(&text, req);
    return text;
}

/* Log through log.h, scrubbed of the request's credentials. */
static void log_request(ingest_log_level level, const http_request *req, const http_policy *p,
                        const char *fmt, ...) INGEST_PRINTF(4, 5);
static void log_request(ingest_log_level level, const http_request *req, const http_policy *p,
                        const char *fmt, ...)
{
    if (level < log_get_level())
        return;
    va_list ap;
    va_start(ap, fmt);
    char *text = format_scrubbed(req, fmt, ap);
    va_end(ap);
    if (text)
        log_write(level, &(log_fields){.plugin = p->provider}, "%s", text);
    free(text);
}

/* Set resp->error, scrubbed of the request's credentials. */
static void set_error(http_response *resp, const http_request *req, const char *fmt, ...)
    INGEST_PRINTF(3, 4);
static void set_error(http_response *resp, const http_request *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = format_scrubbed(req, fmt, ap);
    va_end(ap);
    snprintf(resp->error, sizeof resp->error, "%s", text ? text : "out of memory");
    free(text);
}

/* ---- one transfer -------------------------------------------------------- */

/* Where a response's body goes, decided at its first byte. */
enum { BODY_UNDECIDED, BODY_BUFFER, BODY_SINK };

typedef struct transfer {
    http_response *resp;
    CURL *easy;
    size_t body_cap, headers_cap;
    size_t max_bytes;
    int too_large;
    const atomic_int *cancel;
    int (*sink)(void *arg, const void *data, size_t len); /* NULL = always buffer */
    void *sink_arg;
    int body_mode;
    int sink_stopped; /* the sink returned non-zero */
    /* Streamed transfers: the stall limit (0 = none) and when bytes last
     * arrived or the sink last returned, whichever is later. */
    int64_t stall_ms, moved_ms;
    curl_off_t seen_bytes;
    int stalled;
} transfer;

static int canceled(const atomic_int *flag) { return flag && atomic_load(flag) != 0; }

/* Only a success body is the plugin's data: an error document is small
 * and the caller wants to read it, so it is buffered. */
static int body_mode_of(transfer *t)
{
    long status = 0;
    if (!t->sink)
        return BODY_BUFFER;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    return status >= 200 && status < 300 ? BODY_SINK : BODY_BUFFER;
}

static size_t to_sink(transfer *t, const char *data, size_t n)
{
    http_response *r = t->resp;
    r->streamed = 1;
    if (t->sink(t->sink_arg, data, n) != 0) {
        t->sink_stopped = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    r->streamed_bytes += n;
    t->moved_ms = util_mono_ms(); /* time spent in the sink is not a stall */
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    transfer *t = arg;
    http_response *r = t->resp;
    size_t n = size * nmemb;
    if (t->body_mode == BODY_UNDECIDED)
        t->body_mode = body_mode_of(t);
    if (t->body_mode == BODY_SINK)
        return to_sink(t, data, n);
    if (n > t->max_bytes - r->body_len) {
        t->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (r->body_len + n + 1 > t->body_cap) {
        size_t cap = t->body_cap ? t->body_cap : 4096;
        while (cap < r->body_len + n + 1)
            cap *= 2;
        char *grown = realloc(r->body, cap);
        if (!grown)
            return 0;
        r->body = grown;
        t->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

static void free_headers(http_response *r)
{
    /* name and value share one allocation that starts at name */
    for (size_t i = 0; i < r->n_headers; i++)
        free((void *)r->headers[i].name);
    r->n_headers = 0;
}

static int add_header(transfer *t, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    http_response *r = t->resp;
    if (r->n_headers == t->headers_cap) {
        size_t cap = t->headers_cap ? t->headers_cap * 2 : 16;
        ingest_header *grown = realloc(r->headers, cap * sizeof *grown);
        if (!grown)
            return -1;
        r->headers = grown;
        t->headers_cap = cap;
    }
    char *block = malloc(name_len + value_len + 2);
    if (!block)
        return -1;
    memcpy(block, name, name_len);
    block[name_len] = '\0';
    memcpy(block + name_len + 1, value, value_len);
    block[name_len + 1 + value_len] = '\0';
    r->headers[r->n_headers++] = (ingest_header){block, block + name_len + 1};
    /* block is owned by r->headers now (freed by http_response_free). */
    // cppcheck-suppress memleak
    return 0;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    transfer *t = arg;
    size_t n = size * nmemb, len = n;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        free_headers(t->resp); /* a new response (redirect, 100 Continue) */
        return n;
    }
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return n;
    const char *value = colon + 1, *end = line + len;
    while (value < end && (*value == ' ' || *value == '\t'))
        value++;
    while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (add_header(t, line, (size_t)(colon - line), value, (size_t)(end - value)) < 0)
        return 0;
    return n;
}

/* curl's own low-speed check averages over its last five seconds, so it
 * notices a stall seconds late; this one counts from the last byte. */
static int stalled(transfer *t, curl_off_t bytes)
{
    int64_t now = util_mono_ms();
    if (!t->stall_ms)
        return 0;
    if (bytes != t->seen_bytes || !t->moved_ms) {
        t->seen_bytes = bytes;
        t->moved_ms = now;
        return 0;
    }
    if (now - t->moved_ms <= t->stall_ms)
        return 0;
    t->stalled = 1;
    return 1;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)ultotal;
    transfer *t = arg;
    return canceled(t->cancel) || stalled(t, dlnow + ulnow); /* non-zero aborts */
}

static const char *method_of(const http_request *req) { return req->method ? req->method : "GET"; }

static int valid_token(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 127 || strchr("()<>@,;:\\\"/[]?={}", *s))
            return 0;
    return 1;
}

/* "Name: value" (or "Name;" for an empty value, curl's way to send one)
 * appended to *list. Refuses CR/LF so no header can smuggle another. */
static int append_header(struct curl_slist **list, const char *name, const char *value)
{
    if (!valid_token(name) || !value || strpbrk(value, "\r\n"))
        return INGEST_EINVAL;
    char *line = NULL;
    int n = *value ? asprintf(&line, "%s: %s", name, value) : asprintf(&line, "%s;", name);
    if (n < 0)
        return INGEST_ENOMEM;
    struct curl_slist *grown = curl_slist_append(*list, line);
    free(line);
    if (!grown)
        return INGEST_ENOMEM;
    *list = grown;
    return INGEST_OK;
}

static int has_header(const http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].name && strcasecmp(req->headers[i].name, name) == 0)
            return 1;
    return 0;
}

static int build_headers(const http_request *req, struct curl_slist **list)
{
    /* "Expect:" without a value removes curl's own "Expect: 100-continue",
     * which would cost a round trip before large bodies. Not with SigV4:
     * curl (7.88) would sign the entry as a header it then never sends,
     * and the server would refuse the signature. */
    *list = req->aws_sigv4 ? NULL : curl_slist_append(NULL, "Expect:");
    int rc = *list || req->aws_sigv4 ? INGEST_OK : INGEST_ENOMEM;
    for (size_t i = 0; rc == INGEST_OK && i < req->n_headers; i++)
        rc = append_header(list, req->headers[i].name, req->headers[i].value);
    if (rc == INGEST_OK && req->aws_sigv4 && req->aws_session_token)
        rc = append_header(list, "x-amz-security-token", req->aws_session_token);
    if (rc == INGEST_OK && req->aws_sigv4 && !has_header(req, "x-amz-content-sha256")) {
        char digest[65];
        util_sha256_hex(req->body_len ? req->body : "", req->body_len, digest);
        rc = append_header(list, "x-amz-content-sha256", digest);
    }
    if (rc != INGEST_OK) {
        curl_slist_free_all(*list);
        *list = NULL;
    }
    return rc;
}

static void set_method(CURL *easy, const http_request *req)
{
    const char *m = req->method ? req->method : "GET";
    if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
        return;
    }
    if (strcmp(m, "GET") == 0 && req->body_len == 0) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
        return;
    }
    /* POST machinery sends the body (and a Content-Length, also 0); the
     * custom method replaces the verb. DELETE without a body sends none. */
    if (req->body_len > 0 || strcmp(m, "DELETE") != 0) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body_len ? (const char *)req->body : "");
    }
    if (strcmp(m, "POST") != 0)
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, m);
}

static int set_credentials(CURL *easy, const http_request *req)
{
    if (req->aws_sigv4) {
        if (curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, req->aws_sigv4) != CURLE_OK)
            return INGEST_EUNSUPPORTED;
        curl_easy_setopt(easy, CURLOPT_USERNAME, req->aws_access_key);
        curl_easy_setopt(easy, CURLOPT_PASSWORD, req->aws_secret_key);
    } else if (req->userpwd) {
        curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(easy, CURLOPT_USERPWD, req->userpwd);
    }
    return INGEST_OK;
}

/* A buffered body gets a total time limit and an early size check on
 * Content-Length (on_body checks the decoded bytes; a HEAD response's
 * length describes no body). A streamed one may be far larger and take
 * as long as it takes while it moves: its limit is a stall, not a total. */
static void set_timeouts(CURL *easy, const http_request *req, const http_policy *p)
{
    if (req->on_body) {
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 0L); /* on_progress watches for stalls */
        return;
    }
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)p->total_timeout_ms);
    if (strcmp(method_of(req), "HEAD") != 0)
        curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)p->max_response_bytes);
}

static int setup_transfer(http_client *c, CURL *easy, const http_request *req, const http_policy *p,
                          struct curl_slist *headers, transfer *t, char *errbuf)
{
    /* reset keeps live connections, the DNS cache and TLS sessions */
    curl_easy_reset(easy);
    curl_easy_setopt(easy, CURLOPT_SHARE, c->share);
    curl_easy_setopt(easy, CURLOPT_URL, req->url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)p->connect_timeout_ms);
    set_timeouts(easy, req, p);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
    set_method(easy, req);
    return set_credentials(easy, req);
}

/* Drop what an earlier attempt left in *r. */
static void clear_response(http_response *r)
{
    free_headers(r);
    free(r->headers);
    r->headers = NULL;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    free(r->next_url);
    r->next_url = NULL;
    r->status = 0;
    r->retry_after_ms = -1;
    r->streamed = 0;
    r->streamed_bytes = 0;
}

/* Status, Retry-After and the next link of a completed transfer. */
static void finish_response(CURL *easy, http_response *r)
{
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (!r->body)
        r->body = calloc(1, 1);
    int64_t wall_ms = util_now_us() / 1000;
    r->retry_after_ms =
        ratelimit_parse_retry_after(http_response_header(r, "Retry-After"), wall_ms);
    char *effective = NULL;
    curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &effective);
    r->next_url = pagination_link_next(http_response_header(r, "Link"), effective);
}

/* ---- waiting ------------------------------------------------------------- */

/* Sleep ms in short slices; 1 when the cancel flag stopped it. */
static int sleep_cancellable(int64_t ms, const atomic_int *cancel)
{
    int64_t deadline = util_mono_ms() + ms;
    for (;;) {
        if (canceled(cancel))
            return 1;
        int64_t left = deadline - util_mono_ms();
        if (left <= 0)
            return 0;
        if (left > SLEEP_SLICE_MS)
            left = SLEEP_SLICE_MS;
        struct timespec ts = {left / 1000, (left % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
}

static void record_wait(http_client *c, const http_policy *p, provider_metrics *m, int64_t ms)
{
    ratelimit_record_wait(c->limits, p->limiter_key, ms);
    metrics_add(METRIC(m, waits), 1);
    metrics_add(METRIC(m, wait_seconds), (double)ms / 1000.0);
}

static void update_tokens_gauge(http_client *c, const http_policy *p, provider_metrics *m)
{
    ratelimit_stats st;
    if (m && ratelimit_get_stats(c->limits, p->limiter_key, util_mono_ms(), &st) == 0)
        metrics_set(m->tokens, st.tokens);
}

/* Block until the limiter hands out a slot, unless that takes longer than
 * the inline budget (then ERATELIMITED with resp->wait_ms set). */
static int wait_for_slot(http_client *c, const http_request *req, const http_policy *p,
                         provider_metrics *m, http_response *resp)
{
    if (!c->limits || !p->limiter_key)
        return INGEST_OK;
    int64_t started = util_mono_ms();
    int slept = 0;
    for (;;) {
        int64_t now = util_mono_ms();
        int64_t wait = ratelimit_reserve(c->limits, p->limiter_key, p->quota, now);
        if (wait <= 0)
            break; /* 0: slot taken; -1: limiter unusable, do not stall */
        if (now - started + wait > p->max_inline_wait_ms) {
            record_wait(c, p, m, wait);
            resp->wait_ms = wait;
            set_error(
                resp, req,
                "rate limit of %s: next slot in %lld ms, more than the %lld ms allowed inline",
                p->limiter_key, (long long)wait, (long long)p->max_inline_wait_ms);
            log_request(INGEST_LOG_INFO, req, p, "%s", resp->error);
            return INGEST_ERATELIMITED;
        }
        if (sleep_cancellable(wait, p->cancel))
            return INGEST_ECANCELED;
        slept = 1;
    }
    /* Only a request that slept waited: the clock may tick between two
     * readings without any wait (a slow or busy machine). */
    if (slept)
        record_wait(c, p, m, util_mono_ms() - started);
    update_tokens_gauge(c, p, m);
    return INGEST_OK;
}

/* ---- the request loop ---------------------------------------------------- */

static int retryable_transport(CURLcode code)
{
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

/* GitHub signals its secondary and primary limits with 403 plus
 * Retry-After or X-RateLimit-Remaining: 0; that is a 429 in all but name. */
static int rate_limited(const http_response *r)
{
    if (r->status == 429)
        return 1;
    const char *remaining = http_response_header(r, "X-RateLimit-Remaining");
    return r->status == 403 &&
           (r->retry_after_ms >= 0 || (remaining && strcmp(remaining, "0") == 0));
}

static int retryable_status(const http_response *r)
{
    return rate_limited(r) || r->status == 502 || r->status == 503 || r->status == 504;
}

static http_policy resolve_policy(const http_policy *in)
{
    http_policy p = in ? *in : (http_policy){0};
    if (p.max_retries == 0)
        p.max_retries = HTTP_DEFAULT_MAX_RETRIES;
    else if (p.max_retries < 0)
        p.max_retries = 0;
    if (p.connect_timeout_ms <= 0)
        p.connect_timeout_ms = HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    if (p.total_timeout_ms <= 0)
        p.total_timeout_ms = HTTP_DEFAULT_TOTAL_TIMEOUT_MS;
    if (p.max_response_bytes == 0)
        p.max_response_bytes = HTTP_DEFAULT_MAX_RESPONSE_BYTES;
    if (p.max_inline_wait_ms <= 0)
        p.max_inline_wait_ms = HTTP_DEFAULT_MAX_INLINE_WAIT_MS;
    if (!p.backoff)
        p.backoff = &backoff_default;
    return p;
}

static int validate(const http_request *req)
{
    if (!req || !req->url || !*req->url || (req->n_headers && !req->headers) ||
        (req->body_len && !req->body) || (req->method && !valid_token(req->method)))
        return INGEST_EINVAL;
    if (req->aws_sigv4 && (!req->aws_access_key || !req->aws_secret_key))
        return INGEST_EINVAL;
    return INGEST_OK;
}

/* Everything one call needs, so the helpers take one argument. */
typedef struct call {
    http_client *client;
    worker_handle *handle;
    CURL *easy;
    const http_request *req;
    http_policy pol;
    provider_metrics *metrics;
    struct curl_slist *headers;
    char *safe_url; /* req->url for messages */
    http_response *resp;
} call;

/* How an attempt ended, besides its curl result. */
typedef struct attempt_flags {
    int too_large;    /* the buffered body passed the cap */
    int sink_stopped; /* on_body asked to stop */
} attempt_flags;

/* A streamed transfer cut after some bytes: what arrived stays the
 * caller's, with the status and headers of the response it came from. */
static void describe_cut(call *k, CURLcode code, const char *errbuf)
{
    curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &k->resp->status);
    set_error(k->resp, k->req, "%s %s: transfer cut after %llu streamed bytes: %s",
              method_of(k->req), k->safe_url, (unsigned long long)k->resp->streamed_bytes,
              errbuf[0] ? errbuf : curl_easy_strerror(code));
}

/* One attempt: returns the curl result; fills resp (status, body, headers)
 * on success and resp->error on failure. */
static CURLcode attempt_once(call *k, attempt_flags *flags)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    transfer t = {.resp = k->resp,
                  .easy = k->easy,
                  .max_bytes = k->pol.max_response_bytes,
                  .cancel = k->pol.cancel,
                  .sink = k->req->on_body,
                  .sink_arg = k->req->on_body_arg,
                  .stall_ms = k->req->on_body ? k->pol.total_timeout_ms : 0};
    clear_response(k->resp);
    int rc = setup_transfer(k->client, k->easy, k->req, &k->pol, k->headers, &t, errbuf);
    if (rc != INGEST_OK) {
        set_error(k->resp, k->req, "AWS SigV4 signing is not supported by this libcurl");
        return CURLE_NOT_BUILT_IN;
    }
    int64_t started = util_mono_ms();
    CURLcode code = curl_easy_perform(k->easy);
    if (code == CURLE_ABORTED_BY_CALLBACK && t.stalled) {
        code = CURLE_OPERATION_TIMEDOUT; /* retried like any timeout while nothing was streamed */
        snprintf(errbuf, sizeof errbuf, "no data for more than %lld ms", (long long)t.stall_ms);
    }
    flags->too_large = t.too_large || code == CURLE_FILESIZE_EXCEEDED;
    flags->sink_stopped = t.sink_stopped;
    if (code == CURLE_OK) {
        finish_response(k->easy, k->resp);
        log_request(
            INGEST_LOG_DEBUG, k->req, &k->pol, "%s %s -> %ld (%llu bytes%s, %lld ms)",
            method_of(k->req), k->safe_url, k->resp->status,
            (unsigned long long)(k->resp->streamed ? k->resp->streamed_bytes : k->resp->body_len),
            k->resp->streamed ? " streamed" : "", (long long)(util_mono_ms() - started));
    } else if (t.sink_stopped) {
        curl_easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &k->resp->status);
        set_error(k->resp, k->req, "%s %s: stopped by the body sink after %llu bytes",
                  method_of(k->req), k->safe_url, (unsigned long long)k->resp->streamed_bytes);
    } else if (k->resp->streamed_bytes > 0) {
        describe_cut(k, code, errbuf);
    } else if (flags->too_large) {
        set_error(k->resp, k->req, "response exceeds %zu bytes", k->pol.max_response_bytes);
    } else {
        set_error(k->resp, k->req, "%s %s: %s", method_of(k->req), k->safe_url,
                  errbuf[0] ? errbuf : curl_easy_strerror(code));
    }
    return code;
}

/* The wait before retry number `retry`: the server's Retry-After, else
 * the backoff policy. */
static int64_t retry_delay(const call *k, int retry)
{
    if (k->resp->retry_after_ms >= 0)
        return k->resp->retry_after_ms;
    return backoff_delay_ms(k->pol.backoff, retry, util_random01());
}

/* Sleep before retry `retry`; returns INGEST_OK to go on, else the final status. */
static int pause_before_retry(call *k, int retry, int reason)
{
    int64_t delay = retry_delay(k, retry);
    if (delay > k->pol.max_inline_wait_ms) {
        k->resp->wait_ms = delay;
        set_error(k->resp, k->req, "%s %s: retry in %lld ms, more than the %lld ms allowed inline",
                  method_of(k->req), k->safe_url, (long long)delay,
                  (long long)k->pol.max_inline_wait_ms);
        return INGEST_ERATELIMITED;
    }
    metrics_add(METRIC(k->metrics, retries[reason]), 1);
    if (k->resp->status)
        log_request(INGEST_LOG_WARN, k->req, &k->pol, "%s %s: HTTP %ld; retry %d of %d in %lld ms",
                    method_of(k->req), k->safe_url, k->resp->status, retry, k->pol.max_retries,
                    (long long)delay);
    else
        log_request(INGEST_LOG_WARN, k->req, &k->pol, "%s; retry %d of %d in %lld ms",
                    k->resp->error, retry, k->pol.max_retries, (long long)delay);
    if (sleep_cancellable(delay, k->pol.cancel))
        return INGEST_ECANCELED;
    k->resp->error[0] = '\0';
    return INGEST_OK;
}

/* What to return when no retry is left (or allowed) for this outcome. */
static int give_up(call *k, CURLcode code, int retry)
{
    if (code != CURLE_OK) {
        log_request(INGEST_LOG_WARN, k->req, &k->pol, "%s (attempt %d)", k->resp->error,
                    k->resp->attempts);
        /* A URL curl cannot use will not get better by retrying. */
        return code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL ? INGEST_EINVAL
                                                                                 : INGEST_EIO;
    }
    if (rate_limited(k->resp)) {
        k->resp->wait_ms = retry_delay(k, retry);
        set_error(k->resp, k->req, "%s %s: still HTTP %ld after %d attempts; wait %lld ms",
                  method_of(k->req), k->safe_url, k->resp->status, k->resp->attempts,
                  (long long)k->resp->wait_ms);
        return INGEST_ERATELIMITED;
    }
    return INGEST_OK; /* a 5xx after the last retry is still a response */
}

static void observe(call *k)
{
    if (k->client->limits && k->pol.limiter_key)
        ratelimit_observe(k->client->limits, k->pol.limiter_key, k->resp->headers,
                          k->resp->n_headers, k->resp->status, util_mono_ms(),
                          util_now_us() / 1000);
}

static void count_response(call *k, CURLcode code)
{
    long status = code == CURLE_OK ? k->resp->status : 0;
    metrics_add(METRIC(k->metrics, requests[code_class(status)]), 1);
    if (status == 429)
        metrics_add(METRIC(k->metrics, too_many_requests), 1);
}

static int run_attempts(call *k)
{
    for (int attempt = 1;; attempt++) {
        int rc = wait_for_slot(k->client, k->req, &k->pol, k->metrics, k->resp);
        if (rc != INGEST_OK)
            return rc;
        attempt_flags flags = {0};
        CURLcode code = attempt_once(k, &flags);
        k->resp->attempts = attempt;
        count_response(k, code);
        if (canceled(k->pol.cancel) || flags.sink_stopped)
            return INGEST_ECANCELED;
        if (flags.too_large)
            return INGEST_EIO;
        if (code == CURLE_NOT_BUILT_IN)
            return INGEST_EUNSUPPORTED;
        if (code == CURLE_OK)
            observe(k);
        /* Bytes the sink has taken cannot be taken back: never repeat them. */
        if (code != CURLE_OK && k->resp->streamed_bytes > 0) {
            log_request(INGEST_LOG_WARN, k->req, &k->pol, "%s", k->resp->error);
            return INGEST_EIO;
        }
        int retryable = code == CURLE_OK ? retryable_status(k->resp) : retryable_transport(code);
        if (!retryable && code == CURLE_OK)
            return INGEST_OK;
        if (!retryable || attempt > k->pol.max_retries)
            return give_up(k, code, attempt);
        int reason = code != CURLE_OK        ? RETRY_TRANSPORT
                     : rate_limited(k->resp) ? RETRY_429
                                             : RETRY_5XX;
        if ((rc = pause_before_retry(k, attempt, reason)) != INGEST_OK)
            return rc;
    }
}

int http_client_perform(http_client *c, const http_request *req, const http_policy *pol,
                        http_response *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->retry_after_ms = -1;
    int rc = c ? validate(req) : INGEST_EINVAL;
    if (rc != INGEST_OK) {
        snprintf(resp->error, sizeof resp->error, "invalid HTTP request");
        return rc;
    }
    call k = {.client = c, .req = req, .pol = resolve_policy(pol), .resp = resp};
    k.handle = worker_get(c);
    if (k.handle && k.handle->busy) {
        snprintf(resp->error, sizeof resp->error,
                 "an HTTP request cannot be made from inside a body sink");
        resp->body = calloc(1, 1);
        return INGEST_ESTATE;
    }
    k.metrics = provider_metrics_get(c, k.pol.provider);
    k.easy = k.handle ? k.handle->easy : NULL;
    k.safe_url = http_redact_url(req->url);
    rc = !k.easy || !k.safe_url ? INGEST_ENOMEM : build_headers(req, &k.headers);
    if (rc == INGEST_OK) {
        k.handle->busy = 1;
        rc = run_attempts(&k);
        k.handle->busy = 0;
    } else {
        snprintf(resp->error, sizeof resp->error,
                 rc == INGEST_EINVAL ? "invalid request header" : "out of memory");
    }
    if (rc == INGEST_ECANCELED && canceled(k.pol.cancel))
        snprintf(resp->error, sizeof resp->error, "canceled");
    if (!resp->body)
        resp->body = calloc(1, 1);
    curl_slist_free_all(k.headers);
    free(k.safe_url);
    return rc;
}

void http_response_free(http_response *resp)
{
    if (!resp)
        return;
    free_headers(resp);
    free(resp->headers);
    free(resp->body);
    free(resp->next_url);
    memset(resp, 0, sizeof *resp);
    resp->retry_after_ms = -1;
}

const char *http_response_header(const http_response *resp, const char *name)
{
    const char *value = NULL;
    for (size_t i = 0; resp && name && i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            value = resp->headers[i].value;
    return value;
}
