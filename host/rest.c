/* rest.c — every REST request goes through the same gate on the loop
 * thread: route match, bearer token, tenant header, query parameter names,
 * body. Then the route answers at once (no blocking work) or runs its
 * database work on a worker and answers back on the loop (rest_async). */
#include "rest.h"

#include <sys/queue.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpd.h"
#include "log.h"
#include "registry.h"
#include "rest_cursor.h"
#include "rest_routes.h"
#include "util.h"

enum {
    ROUTE_OPEN = 1,   /* no bearer token (OAuth callback, docs page) */
    ROUTE_TENANT = 2, /* X-Tenant-Id required */
};

typedef struct rest_route {
    enum evhttp_cmd_type method;
    const char *pattern; /* "{}" matches one non-empty segment */
    int flags;
    const char *const *params; /* allowed query parameters, NULL-ended */
    rest_fn fn;
} rest_route;

static const char *const no_params[] = {NULL};
static const char *const connection_params[] = {"limit", "cursor", "provider", "status", NULL};
static const char *const job_params[] = {"limit",         "cursor", "provider", "state",
                                         "connection_id", "since",  "until",    NULL};
static const char *const signal_params[] = {"limit", "cursor",        "source", "kind",
                                            "since", "connection_id", "until",  NULL};
static const char *const deadletter_params[] = {"limit", "cursor", "provider", "kind",
                                                "since", "until",  NULL};

static const rest_route routes[] = {
    {EVHTTP_REQ_GET, "/providers", 0, no_params, rest_get_providers},
    {EVHTTP_REQ_POST, "/connect/{}", ROUTE_TENANT, no_params, rest_connect_start},
    /* The callback's parameters are the provider's; it checks its own. */
    {EVHTTP_REQ_GET, "/connect/{}/callback", ROUTE_OPEN, NULL, rest_connect_callback},
    {EVHTTP_REQ_POST, "/connections", ROUTE_TENANT, no_params, rest_post_connection},
    {EVHTTP_REQ_GET, "/connections", ROUTE_TENANT, connection_params, rest_list_connections},
    {EVHTTP_REQ_GET, "/connections/{}", ROUTE_TENANT, no_params, rest_get_connection},
    {EVHTTP_REQ_DELETE, "/connections/{}", ROUTE_TENANT, no_params, rest_delete_connection},
    {EVHTTP_REQ_POST, "/sync/{}", ROUTE_TENANT, no_params, rest_post_sync},
    {EVHTTP_REQ_GET, "/jobs", ROUTE_TENANT, job_params, rest_list_jobs},
    {EVHTTP_REQ_GET, "/signals", ROUTE_TENANT, signal_params, rest_list_signals},
    {EVHTTP_REQ_GET, "/deadletters", ROUTE_TENANT, deadletter_params, rest_list_deadletters},
    {EVHTTP_REQ_POST, "/deadletters/{}/replay", ROUTE_TENANT, no_params, rest_replay_deadletter},
    {EVHTTP_REQ_GET, "/openapi.json", 0, no_params, rest_get_openapi},
    /* A browser cannot send a bearer token when it opens a page: the page
     * holds no data and asks for the token to fetch /openapi.json. */
    {EVHTTP_REQ_GET, "/docs", ROUTE_OPEN, no_params, rest_get_docs},
    {EVHTTP_REQ_GET, "/docs/{}", ROUTE_OPEN, no_params, rest_get_docs_asset},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* ----------------------------------------------------------- answering */

void rest_ok(rest_req *r, int status, json_object *out)
{
    json_object_put(r->out);
    r->out = out;
    r->status = status;
    r->code[0] = '\0';
}

static void vfail(rest_req *r, int status, const char *code, const char *fmt, va_list ap)
{
    json_object_put(r->out);
    r->out = NULL;
    r->status = status;
    snprintf(r->code, sizeof r->code, "%s", code);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
}

void rest_fail(rest_req *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r, status, code, fmt, ap);
    va_end(ap);
    r->param[0] = '\0';
}

void rest_bad_param(rest_req *r, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r, 400, "invalid_parameter", fmt, ap);
    va_end(ap);
    snprintf(r->param, sizeof r->param, "%s", param);
}

static void send_problem(rest_req *r)
{
    json_object *body = json_object_new_object();
    json_object_object_add(body, "status", json_object_new_int(r->status));
    json_object_object_add(body, "code", json_object_new_string(r->code));
    json_object_object_add(body, "message", json_object_new_string(r->message));
    if (r->param[0]) {
        json_object *details = json_object_new_object();
        json_object_object_add(details, "parameter", json_object_new_string(r->param));
        json_object_object_add(body, "details", details);
    }
    if (r->retry_after > 0) {
        char value[16];
        snprintf(value, sizeof value, "%d", r->retry_after);
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", value);
        json_object_object_add(body, "retry_after", json_object_new_int(r->retry_after));
    }
    if (r->status == 401)
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "WWW-Authenticate", "Bearer");
    httpd_send_json(r->req, r->status, "application/problem+json", body);
    json_object_put(body);
}

static void rest_free(rest_req *r)
{
    evhttp_clear_headers(&r->query);
    json_object_put(r->body);
    json_object_put(r->out);
    if (r->inst)
        instance_release(r->inst);
    if (r->ctx_free)
        r->ctx_free(r->ctx);
    free(r);
}

void rest_reply(rest_req *r)
{
    if (!r->req) { /* the route sent its answer itself */
        rest_free(r);
        return;
    }
    if (r->status == 0)
        rest_fail(r, 500, "internal", "the request produced no answer");
    if (r->code[0])
        send_problem(r);
    else if (r->out)
        httpd_send_json(r->req, r->status, "application/json", r->out);
    else
        evhttp_send_reply(r->req, r->status, NULL, NULL);
    rest_free(r);
}

/* ---------------------------------------------------------------- async */

static void async_done(void *arg)
{
    rest_req *r = arg;
    if (r->on_loop)
        r->on_loop(r);
    rest_reply(r);
}

typedef struct async_box {
    rest_req *r;
    rest_fn work;
} async_box;

static void box_work(void *arg)
{
    async_box *b = arg;
    rest_req *r = b->r;
    b->work(r);
    free(b);
    if (loop_post(r->h->mailbox, async_done, r) < 0)
        log_error("rest: cannot hand a reply back to the loop (out of memory)");
}

void rest_async(rest_req *r, rest_fn work)
{
    async_box *b = malloc(sizeof *b);
    if (b) {
        b->r = r;
        b->work = work;
    }
    if (!b || workers_submit(r->h->workers, box_work, b) < 0) {
        free(b);
        rest_fail(r, 503, "busy", "the daemon is busy; retry later");
        r->retry_after = REST_RETRY_BUSY_S;
        rest_reply(r);
    }
}

int rest_store(rest_req *r, int (*fn)(PGconn *conn, void *r))
{
    int rc = store_call(r->h->store, fn, r);
    if (rc != INGEST_OK && r->status == 0) {
        rest_fail(r, 503, "database_unavailable", "the database is unavailable; retry later");
        r->retry_after = REST_RETRY_DOWN_S;
    }
    return rc;
}

/* ---------------------------------------------------------- parameters */

const char *rest_query(rest_req *r, const char *name)
{
    return evhttp_find_header(&r->query, name);
}

int rest_check_query(rest_req *r, const char *const *allowed)
{
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, &r->query, next)
    {
        int known = 0;
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strcmp(allowed[i], kv->key) == 0;
        if (!known) {
            rest_bad_param(r, kv->key, "unknown query parameter '%.64s'", kv->key);
            return -1;
        }
        int seen = 0;
        struct evkeyval *other;
        TAILQ_FOREACH(other, &r->query, next) seen += strcmp(other->key, kv->key) == 0;
        if (seen > 1) {
            rest_bad_param(r, kv->key, "query parameter '%.64s' is given more than once", kv->key);
            return -1;
        }
    }
    return 0;
}

static int parse_limit(rest_req *r)
{
    const char *text = rest_query(r, "limit");
    r->limit = REST_LIMIT_DEFAULT;
    if (!text)
        return 0;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < 1 || v > REST_LIMIT_MAX) {
        rest_bad_param(r, "limit", "limit must be a whole number from 1 to %d", REST_LIMIT_MAX);
        return -1;
    }
    r->limit = (int)v;
    return 0;
}

/* Cursors are bound to their list and tenant. */
static void cursor_scope(const rest_req *r, const char *scope, char *out, size_t len)
{
    snprintf(out, len, "%s:%s", scope, r->tenant);
}

int rest_page_params(rest_req *r, const char *scope)
{
    if (parse_limit(r) < 0)
        return -1;
    const char *cursor = rest_query(r, "cursor");
    if (!cursor)
        return 0;
    char s[96];
    cursor_scope(r, scope, s, sizeof s);
    if (rest_cursor_decode(r->kr, s, cursor, &r->cursor_us, r->cursor_id) < 0) {
        rest_bad_param(r, "cursor", "cursor is not one this list handed out");
        return -1;
    }
    r->has_cursor = 1;
    return 0;
}

int rest_time_param(rest_req *r, const char *name, char out[24])
{
    out[0] = '\0';
    const char *text = rest_query(r, name);
    int64_t us;
    if (!text)
        return 0;
    if (util_parse_time(text, &us) < 0) {
        rest_bad_param(r, name, "%s must be an RFC 3339 time, e.g. 2024-01-02T03:04:05Z", name);
        return -1;
    }
    snprintf(out, 24, "%lld", (long long)us);
    return 0;
}

int rest_uuid_param(rest_req *r, const char *name, char out[37])
{
    out[0] = '\0';
    const char *text = rest_query(r, name);
    if (!text)
        return 0;
    if (!util_is_uuid(text)) {
        rest_bad_param(r, name, "%s must be a UUID", name);
        return -1;
    }
    snprintf(out, 37, "%s", text);
    return 0;
}

int rest_body_keys(rest_req *r, const char *const *allowed)
{
    json_object_object_foreach(r->body, key, value)
    {
        (void)value;
        int known = 0;
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strcmp(allowed[i], key) == 0;
        if (!known) {
            rest_bad_param(r, key, "unknown field '%.64s' in the body", key);
            return -1;
        }
    }
    return 0;
}

/* -------------------------------------------------------------- listing */

static json_object *page_of(rest_req *r, PGresult *res, const char *scope)
{
    json_object *out = json_object_new_object(), *items = json_object_new_array();
    int n = PQntuples(res);
    for (int i = 0; i < n && i < r->limit; i++)
        json_object_array_add(items, json_tokener_parse(PQgetvalue(res, i, 0)));
    json_object_object_add(out, "items", items);
    char *next = NULL;
    if (n > r->limit) {
        char s[96];
        cursor_scope(r, scope, s, sizeof s);
        int last = r->limit - 1;
        next = rest_cursor_encode(r->kr, s, strtoll(PQgetvalue(res, last, 1), NULL, 10),
                                  PQgetvalue(res, last, 2));
    }
    json_object_object_add(out, "next_cursor", next ? json_object_new_string(next) : NULL);
    free(next);
    return out;
}

int rest_list(rest_req *r, PGconn *conn, const char *scope, const char *sql,
              const char *const *filters, int n_filters)
{
    char limit[16], cursor_us[24];
    snprintf(limit, sizeof limit, "%d", r->limit + 1);
    snprintf(cursor_us, sizeof cursor_us, "%lld", (long long)r->cursor_us);
    const char *p[16] = {r->tenant, limit, r->has_cursor ? cursor_us : NULL,
                         r->has_cursor ? r->cursor_id : NULL};
    for (int i = 0; i < n_filters && i < 12; i++)
        p[4 + i] = filters[i];
    PGresult *res = NULL;
    char err[512];
    int rc = store_exec(conn, sql, 4 + n_filters, p, &res, err, sizeof err);
    if (rc != INGEST_OK) {
        log_warn("rest: listing %s failed: %s", scope, err);
        return rc;
    }
    rest_ok(r, 200, page_of(r, res, scope));
    PQclear(res);
    return INGEST_OK;
}

instance *rest_plugin(rest_req *r, const char *name, int status)
{
    instance *inst = name ? registry_acquire(r->h->plugins, name) : NULL;
    if (!inst) {
        if (status == 400)
            rest_bad_param(r, "provider", "no loaded plugin serves provider '%.64s'",
                           name ? name : "");
        else
            rest_fail(r, status, "unknown_provider", "no loaded plugin serves provider '%.64s'",
                      name ? name : "");
        return NULL;
    }
    if (r->inst)
        instance_release(r->inst);
    r->inst = inst;
    return inst;
}

/* ------------------------------------------------------------- the gate */

/* Segment-by-segment match; {} captures into r->arg. */
static int match(const char *pattern, const char *path, rest_req *r)
{
    int n_arg = 0;
    while (*pattern && *path) {
        if (*pattern != '/' || *path != '/')
            return 0;
        pattern++, path++;
        size_t pl = strcspn(pattern, "/"), sl = strcspn(path, "/");
        if (pl == 2 && strncmp(pattern, "{}", 2) == 0) {
            if (sl == 0 || sl >= REST_MAX_ARG || n_arg >= 2)
                return 0;
            memcpy(r->arg[n_arg], path, sl);
            r->arg[n_arg++][sl] = '\0';
        } else if (pl != sl || strncmp(pattern, path, pl) != 0) {
            return 0;
        }
        pattern += pl, path += sl;
    }
    return *pattern == '\0' && *path == '\0';
}

static const rest_route *find_route(rest_req *r, const char *path, char *allow, size_t len)
{
    const rest_route *found = NULL;
    enum evhttp_cmd_type m = r->method == EVHTTP_REQ_HEAD ? EVHTTP_REQ_GET : r->method;
    allow[0] = '\0';
    for (size_t i = 0; i < N_ROUTES && !found; i++) {
        if (!match(routes[i].pattern, path, r))
            continue;
        if (routes[i].method == m) {
            found = &routes[i];
        } else {
            size_t n = strlen(allow);
            snprintf(allow + n, len - n, "%s%s", n ? ", " : "",
                     routes[i].method == EVHTTP_REQ_GET      ? "GET"
                     : routes[i].method == EVHTTP_REQ_DELETE ? "DELETE"
                                                             : "POST");
        }
    }
    return found;
}

/* Constant time over digests, so neither content nor length leaks. */
static int token_ok(const char *given, const char *expected)
{
    char ha[65], hb[65];
    util_sha256_hex(given, strlen(given), ha);
    util_sha256_hex(expected, strlen(expected), hb);
    return CRYPTO_memcmp(ha, hb, 64) == 0;
}

static int check_auth(rest_req *r)
{
    const char *expected = r->h->cfg->operator_token;
    if (!expected || !*expected) {
        rest_fail(r, 503, "operator_api_disabled", "operator API disabled: set operator_token");
        return -1;
    }
    const char *auth =
        evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !token_ok(auth + 7, expected)) {
        rest_fail(r, 401, "unauthorized",
                  auth ? "the bearer token is not valid"
                       : "send Authorization: Bearer <operator token>");
        return -1;
    }
    return 0;
}

static int check_tenant(rest_req *r)
{
    const char *t = evhttp_find_header(evhttp_request_get_input_headers(r->req), "X-Tenant-Id");
    if (!t) {
        rest_bad_param(r, "X-Tenant-Id", "the X-Tenant-Id header (tenant UUID) is required");
        return -1;
    }
    if (!util_is_uuid(t)) {
        rest_bad_param(r, "X-Tenant-Id", "the X-Tenant-Id header must be a UUID");
        return -1;
    }
    for (size_t i = 0; i < 36; i++) /* one spelling for comparisons and cursor scopes */
        r->tenant[i] = (char)(t[i] >= 'A' && t[i] <= 'F' ? t[i] - 'A' + 'a' : t[i]);
    r->tenant[36] = '\0';
    return 0;
}

static int json_content_type(const char *ct)
{
    if (!ct)
        return 0;
    size_t n = strcspn(ct, "; ");
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

static int read_body(rest_req *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(in);
    if (len == 0)
        return 0;
    if (len > (size_t)r->h->cfg->max_body_bytes) {
        rest_fail(r, 413, "too_large", "the body exceeds %d bytes", r->h->cfg->max_body_bytes);
        return -1;
    }
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Content-Type");
    if (!json_content_type(ct)) {
        rest_fail(r, 415, "unsupported_media_type", "send the body as application/json");
        return -1;
    }
    json_tokener *tok = json_tokener_new();
    const char *text = (const char *)evbuffer_pullup(in, -1);
    r->body = tok ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    int complete = tok && json_tokener_get_error(tok) == json_tokener_success &&
                   json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    /* The body may hold credentials: keep no copy beyond the parsed one. */
    OPENSSL_cleanse((void *)text, len);
    if (!complete || !json_object_is_type(r->body, json_type_object)) {
        rest_bad_param(r, "body", "the body must be one JSON object");
        return -1;
    }
    return 0;
}

static int admit(rest_req *r, const rest_route *route, const char *query)
{
    if (!(route->flags & ROUTE_OPEN) && check_auth(r) < 0)
        return -1;
    if ((route->flags & ROUTE_TENANT) && check_tenant(r) < 0)
        return -1;
    if (query && evhttp_parse_query_str(query, &r->query) < 0) {
        rest_bad_param(r, "query", "the query string is malformed");
        return -1;
    }
    if (route->params && rest_check_query(r, route->params) < 0)
        return -1;
    if (atomic_load(&r->h->shutting_down)) {
        rest_fail(r, 503, "shutting_down", "the daemon is stopping");
        r->retry_after = REST_RETRY_DOWN_S;
        return -1;
    }
    return read_body(r);
}

void rest_handle(hostd *h, struct evhttp_request *req, const char *path)
{
    rest_req *r = calloc(1, sizeof *r);
    if (!r) {
        httpd_problem(req, 503, "busy", "out of memory", REST_RETRY_BUSY_S);
        return;
    }
    r->h = h;
    r->req = req;
    r->method = evhttp_request_get_command(req);
    r->kr = atomic_load(&h->keyring);
    TAILQ_INIT(&r->query);
    char allow[64];
    const rest_route *route = find_route(r, path, allow, sizeof allow);
    if (!route && allow[0]) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
        rest_fail(r, 405, "method_not_allowed", "use %s", allow);
    } else if (!route) {
        rest_fail(r, 404, "not_found", "no such route");
    } else if (admit(r, route, evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req))) == 0) {
        route->fn(r);
        return;
    }
    rest_reply(r);
}
