/* webhook.c — each request goes through the same steps: accept (route, size,
 * content type), find the secrets, verify, let the plugin answer handshakes,
 * store. Steps that block (a database lookup, plugin code) run on a worker
 * and come back to the loop through the mailbox; the declarative signature
 * check runs on the loop itself, since it is only an HMAC over the body. */
#include "webhook.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "dispatch.h"
#include "httpd.h"
#include "inbox.h"
#include "instance.h"
#include "log.h"
#include "registry.h"
#include "secrets.h"
#include "util.h"
#include "webhook_cache.h"
#include "webhook_metrics.h"
#include "webhook_verify.h"

#define MAX_KEY_LEN 200      /* longer provider ids are hashed */
#define RETRY_AFTER_BUSY_S 1 /* inbox full */
#define RETRY_AFTER_DOWN_S 5 /* database or plugin unavailable */

typedef struct wh_req {
    hostd *h;
    struct evhttp_request *req;
    instance *inst; /* reference held until wh_free */
    webhook_metrics *m;
    char provider[128];
    char connection_id[37]; /* "" when the URL has none */
    char tenant_id[37];     /* "" when unknown */
    ingest_header *headers; /* owned copies of the request headers */
    size_t n_headers;
    unsigned char *body;
    size_t body_len;
    char *content_type;
    char remote_addr[64]; /* the peer's address ("" if unknown) */
    char *secrets[2];     /* owned; wiped on free */
    int secrets_cached;   /* came from the cache: may be stale after a rotation */
    int64_t received_us, start_mono_us;
    /* Results of worker steps. */
    int found;
    verify_result verdict;
    char reason[256];
    int handled;
    ingest_webhook_reply reply;
} wh_req;

static void step_secrets(wh_req *w);
static void step_verify(wh_req *w);
static void step_handshake(wh_req *w);
static void step_store(wh_req *w);

/* --------------------------------------------------------------- helpers */

static void wipe_secrets(wh_req *w)
{
    for (int i = 0; i < 2; i++) {
        if (w->secrets[i])
            crypto_wipe_free(w->secrets[i], strlen(w->secrets[i]));
        w->secrets[i] = NULL;
    }
}

static void wh_free(wh_req *w)
{
    if (!w)
        return;
    atomic_fetch_sub(&w->h->webhooks_inflight, 1);
    if (w->inst)
        instance_release(w->inst);
    for (size_t i = 0; i < w->n_headers; i++) {
        free((char *)w->headers[i].name);
        free((char *)w->headers[i].value);
    }
    free(w->headers);
    free(w->body);
    free(w->content_type);
    wipe_secrets(w);
    free(w);
}

/* Refuse, count and log (without secrets: reasons never contain them). */
static void reject(wh_req *w, int status, const char *code, const char *message, int retry_after)
{
    webhook_metrics_rejected(w->h, w->provider, code);
    log_fields f = {.plugin = w->provider, .tenant = w->tenant_id[0] ? w->tenant_id : NULL};
    log_write(status >= 500 ? INGEST_LOG_WARN : INGEST_LOG_INFO, &f,
              "webhook refused with %d (%s): %s", status, code, message);
    httpd_problem(w->req, status, code, message, retry_after);
    wh_free(w);
}

static const char *header_value(const wh_req *w, const char *name)
{
    return verify_header(w->headers, w->n_headers, name);
}

/* Post a worker step; on a full queue the request gets 503. */
static void run_on_worker(wh_req *w, worker_fn fn)
{
    if (workers_submit(w->h->workers, fn, w) < 0)
        reject(w, 503, "busy", "the daemon is busy; retry later", RETRY_AFTER_BUSY_S);
}

/* ---------------------------------------------------------------- accept */

static int content_type_ok(const char *ct)
{
    if (!ct)
        return 0;
    size_t n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    static const char *const accepted[] = {"application/json", "application/x-www-form-urlencoded",
                                           "application/x-ndjson", "application/ndjson",
                                           "text/plain"};
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        if (strlen(accepted[i]) == n && strncasecmp(ct, accepted[i], n) == 0)
            return 1;
    /* application/<anything>+json, e.g. application/cloudevents+json */
    return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + n - 5, "+json", 5) == 0;
}

typedef struct name_probe {
    const char *name;
    int seen;
} name_probe;

static void probe_name(instance *inst, void *arg)
{
    name_probe *p = arg;
    if (strcmp(inst->name, p->name) == 0)
        p->seen = 1;
}

/* "/webhooks/github" or "/webhooks/github/<uuid>"; 0 if the shape is wrong. */
static int parse_path(const char *path, char *provider, size_t plen, char *connection)
{
    const char *rest = path + strlen("/webhooks/");
    size_t n = strcspn(rest, "/");
    if (n == 0 || n >= plen)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = rest[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    memcpy(provider, rest, n);
    provider[n] = '\0';
    connection[0] = '\0';
    rest += n;
    if (*rest == '\0' || strcmp(rest, "/") == 0)
        return 1;
    rest++;
    size_t m = strcspn(rest, "/");
    if (m != 36 || (rest[m] && strcmp(rest + m, "/") != 0))
        return 0;
    memcpy(connection, rest, 36);
    connection[36] = '\0';
    return util_is_uuid(connection);
}

static int copy_request(wh_req *w)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(w->req);
    size_t n = 0;
    for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next)
        n++;
    w->headers = calloc(n ? n : 1, sizeof *w->headers);
    if (!w->headers)
        return -1;
    for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
        char *k = strdup(kv->key), *v = strdup(kv->value);
        if (!k || !v) {
            free(k);
            free(v);
            return -1;
        }
        w->headers[w->n_headers++] = (ingest_header){k, v};
    }
    struct evbuffer *buf = evhttp_request_get_input_buffer(w->req);
    w->body_len = evbuffer_get_length(buf);
    w->body = malloc(w->body_len ? w->body_len : 1);
    if (!w->body)
        return -1;
    evbuffer_copyout(buf, w->body, w->body_len);
    const char *ct = header_value(w, "Content-Type");
    w->content_type = ct ? strdup(ct) : NULL;
    return ct && !w->content_type ? -1 : 0;
}

/* The TCP peer (a proxy's address when one is in front: its forwarding
 * headers are kept with the delivery's other headers). */
static void note_peer(wh_req *w)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(w->req);
    char *addr = NULL; /* the connection's own string */
    ev_uint16_t port = 0;
    if (conn)
        evhttp_connection_get_peer(conn, &addr, &port);
    snprintf(w->remote_addr, sizeof w->remote_addr, "%s", addr ? addr : "");
}

void webhook_handle(hostd *h, struct evhttp_request *req, const char *path)
{
    wh_req *w = calloc(1, sizeof *w);
    if (!w) {
        httpd_problem(req, 503, "busy", "out of memory", RETRY_AFTER_BUSY_S);
        return;
    }
    w->h = h;
    w->req = req;
    atomic_fetch_add(&h->webhooks_inflight, 1);
    w->received_us = util_now_us();
    w->start_mono_us = util_mono_us();
    note_peer(w);
    if (!parse_path(path, w->provider, sizeof w->provider, w->connection_id)) {
        httpd_problem(req, 404, "not_found",
                      "use /webhooks/{provider} or /webhooks/{provider}/{connection uuid}", 0);
        wh_free(w);
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        httpd_problem(req, 405, "method_not_allowed", "webhooks are delivered with POST", 0);
        wh_free(w);
        return;
    }
    w->inst = registry_acquire(h->plugins, w->provider);
    if (!w->inst) {
        name_probe p = {w->provider, 0};
        registry_each(h->plugins, probe_name, &p);
        if (!p.seen) {
            httpd_problem(req, 404, "unknown_provider", "no plugin serves this provider", 0);
            wh_free(w);
            return;
        }
        reject(w, 503, "plugin_unavailable", "the provider's plugin is not loaded",
               RETRY_AFTER_DOWN_S);
        return;
    }
    w->m = webhook_metrics_for(h, w->provider);
    metrics_add(w->m->received, 1);
    if (w->inst->desc.webhook.scheme == INGEST_WEBHOOK_NONE || !w->inst->desc.handle_webhook) {
        reject(w, 404, "webhooks_not_supported", "this provider's plugin takes no webhooks", 0);
        return;
    }
    size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    if (len > (size_t)h->cfg->max_body_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "the body exceeds %d bytes", h->cfg->max_body_bytes);
        reject(w, 413, "too_large", msg, 0);
        return;
    }
    if (copy_request(w) < 0) {
        reject(w, 503, "busy", "out of memory", RETRY_AFTER_BUSY_S);
        return;
    }
    if (!content_type_ok(w->content_type)) {
        reject(w, 415, "unsupported_media_type",
               "Content-Type must be JSON, NDJSON, form-encoded or text/plain", 0);
        return;
    }
    if (atomic_load(&h->shutting_down)) {
        reject(w, 503, "shutting_down", "the daemon is stopping", RETRY_AFTER_DOWN_S);
        return;
    }
    step_secrets(w);
}

/* --------------------------------------------------------------- secrets */

typedef struct lookup_args {
    const char *provider, *connection_id;
    char tenant_id[37];
    int found;
} lookup_args;

static int lookup_connection_fn(PGconn *conn, void *arg)
{
    lookup_args *a = arg;
    const char *p[] = {a->connection_id, a->provider};
    PGresult *res = NULL;
    int rc = store_exec(conn, "SELECT tenant_id FROM connections WHERE id = $1 AND provider = $2",
                        2, p, &res, NULL, 0);
    if (rc != INGEST_OK)
        return rc;
    a->found = PQntuples(res) == 1;
    if (a->found)
        snprintf(a->tenant_id, sizeof a->tenant_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return INGEST_OK;
}

static void lookup_done(void *arg);

static void lookup_work(void *arg)
{
    wh_req *w = arg;
    hostd *h = w->h;
    lookup_args a = {w->provider, w->connection_id, "", 0};
    int rc = store_call(h->store, lookup_connection_fn, &a);
    static const char *const fields[2] = {"webhook_secret", "webhook_secret_previous"};
    for (int i = 0; rc == INGEST_OK && a.found && i < 2; i++) {
        char err[256];
        int src = secrets_get(h->store, atomic_load(&h->keyring), w->provider, w->connection_id,
                              fields[i], &w->secrets[i], err, sizeof err);
        if (src != INGEST_OK && src != INGEST_ENOTFOUND) {
            snprintf(w->reason, sizeof w->reason,
                     "cannot read the connection's webhook secret: %.180s", err);
            rc = src;
        }
    }
    w->found = rc == INGEST_OK ? a.found : -1;
    snprintf(w->tenant_id, sizeof w->tenant_id, "%s", a.tenant_id);
    loop_post(h->mailbox, lookup_done, w);
}

static void lookup_done(void *arg)
{
    wh_req *w = arg;
    if (w->found < 0) {
        reject(w, 503, "database_unavailable",
               w->reason[0] ? w->reason : "cannot look the connection up", RETRY_AFTER_DOWN_S);
        return;
    }
    webhook_conn e = {.found = w->found, .fetched_ms = util_mono_ms()};
    snprintf(e.connection_id, sizeof e.connection_id, "%s", w->connection_id);
    snprintf(e.provider, sizeof e.provider, "%s", w->provider);
    snprintf(e.tenant_id, sizeof e.tenant_id, "%s", w->tenant_id);
    for (int i = 0; i < 2; i++)
        e.secrets[i] = w->secrets[i] ? strdup(w->secrets[i]) : NULL;
    webhook_cache_put(w->h->webhook_cache, &e);
    for (int i = 0; i < 2; i++)
        if (e.secrets[i])
            crypto_wipe_free(e.secrets[i], strlen(e.secrets[i]));
    if (!w->found) {
        reject(w, 404, "unknown_connection", "no such connection for this provider", 0);
        return;
    }
    step_verify(w);
}

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

static void step_secrets(wh_req *w)
{
    if (!w->connection_id[0]) {
        const plugin_host_conf *hc = &w->inst->conf->host;
        w->secrets[0] = dup_or_null(hc->webhook_secret);
        w->secrets[1] = dup_or_null(hc->webhook_secret_previous);
        if (hc->webhook_tenant_id)
            snprintf(w->tenant_id, sizeof w->tenant_id, "%s", hc->webhook_tenant_id);
        step_verify(w);
        return;
    }
    const webhook_conn *e =
        webhook_cache_get(w->h->webhook_cache, w->provider, w->connection_id, util_mono_ms());
    if (!e) {
        if (!store_ready(w->h->store)) {
            reject(w, 503, "database_unavailable", "the database is unavailable",
                   RETRY_AFTER_DOWN_S);
            return;
        }
        run_on_worker(w, lookup_work);
        return;
    }
    if (!e->found) {
        reject(w, 404, "unknown_connection", "no such connection for this provider", 0);
        return;
    }
    snprintf(w->tenant_id, sizeof w->tenant_id, "%s", e->tenant_id);
    for (int i = 0; i < 2; i++)
        w->secrets[i] = e->secrets[i] ? strdup(e->secrets[i]) : NULL;
    w->secrets_cached = 1;
    step_verify(w);
}

/* ---------------------------------------------------------------- verify */

static void verify_done(void *arg);

static void verify_callback_work(void *arg)
{
    wh_req *w = arg;
    const ingest_plugin *d = &w->inst->desc;
    w->verdict = VERIFY_BAD_SIGNATURE;
    for (int i = 0; i < 2 && w->verdict != VERIFY_OK; i++) {
        if (!w->secrets[i] && i > 0)
            continue;
        if (d->verify_webhook &&
            d->verify_webhook(w->inst->state, w->headers, w->n_headers, w->body, w->body_len,
                              w->secrets[i]) == INGEST_OK)
            w->verdict = VERIFY_OK;
    }
    snprintf(w->reason, sizeof w->reason, "%s",
             w->verdict == VERIFY_OK ? "" : "the plugin's verification refused the delivery");
    loop_post(w->h->mailbox, verify_done, w);
}

static void verify_done(void *arg)
{
    wh_req *w = arg;
    if (w->verdict != VERIFY_OK) {
        /* A cached secret may predate a rotation: look again once. */
        if (w->secrets_cached && w->verdict == VERIFY_BAD_SIGNATURE) {
            webhook_cache_drop(w->h->webhook_cache, w->provider, w->connection_id);
            wipe_secrets(w);
            w->secrets_cached = 0;
            step_secrets(w);
            return;
        }
        int no_secret = w->verdict == VERIFY_NO_SECRET || w->verdict == VERIFY_UNSUPPORTED;
        reject(w, no_secret ? 503 : 401, verify_result_label(w->verdict), w->reason,
               no_secret ? RETRY_AFTER_DOWN_S : 0);
        return;
    }
    metrics_add(w->m->verified, 1);
    step_handshake(w);
}

static void step_verify(wh_req *w)
{
    const ingest_webhook_spec *spec = &w->inst->desc.webhook;
    if (spec->scheme == INGEST_WEBHOOK_CALLBACK) {
        run_on_worker(w, verify_callback_work);
        return;
    }
    const char *secrets[2] = {w->secrets[0], w->secrets[1]};
    verify_input in = {w->headers, w->n_headers, w->body, w->body_len, secrets, 2, w->received_us};
    w->verdict = webhook_verify(spec, &in, w->reason, sizeof w->reason);
    verify_done(w);
}

/* ------------------------------------------------------------- handshake */

static void handshake_done(void *arg);

static ingest_delivery delivery_view(const wh_req *w, const char *key)
{
    return (ingest_delivery){
        .hdr = INGEST_ABI_HEADER(ingest_delivery),
        .delivery_id = key,
        .tenant_id = w->tenant_id[0] ? w->tenant_id : NULL,
        .connection_id = w->connection_id[0] ? w->connection_id : NULL,
        .content_type = w->content_type,
        .body = w->body,
        .body_len = w->body_len,
        .headers = w->headers,
        .n_headers = w->n_headers,
        .received_at_us = w->received_us,
        .attempt = 0,
    };
}

static void handshake_work(void *arg)
{
    wh_req *w = arg;
    ingest_delivery d = delivery_view(w, "");
    w->handled = w->inst->desc.webhook_handshake(w->inst->state, &d, &w->reply) == 1;
    loop_post(w->h->mailbox, handshake_done, w);
}

static void handshake_done(void *arg)
{
    wh_req *w = arg;
    if (!w->handled) {
        step_store(w);
        return;
    }
    ingest_webhook_reply *r = &w->reply;
    r->body[sizeof r->body - 1] = '\0';
    r->content_type[sizeof r->content_type - 1] = '\0';
    int status = r->status >= 200 && r->status < 600 ? r->status : 200;
    struct evkeyvalq *out = evhttp_request_get_output_headers(w->req);
    evhttp_add_header(out, "Content-Type",
                      r->content_type[0] ? r->content_type : "application/json");
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, r->body, strlen(r->body));
    evhttp_send_reply(w->req, status, NULL, buf);
    evbuffer_free(buf);
    log_debug("webhook: %s handshake answered by the plugin with %d", w->provider, status);
    wh_free(w);
}

static void step_handshake(wh_req *w)
{
    if (w->inst->desc.webhook_handshake)
        run_on_worker(w, handshake_work);
    else
        step_store(w);
}

/* ----------------------------------------------------------------- store */

/* A top-level string or number field of a JSON body, or NULL. */
static char *body_field(const wh_req *w, const char *field)
{
    if (!field || w->body_len == 0 || w->body[0] != '{')
        return NULL;
    json_tokener *tok = json_tokener_new();
    json_object *o =
        tok ? json_tokener_parse_ex(tok, (const char *)w->body, (int)w->body_len) : NULL;
    json_tokener_free(tok);
    json_object *v = NULL;
    char *out = NULL;
    if (o && json_object_object_get_ex(o, field, &v) &&
        (json_object_is_type(v, json_type_string) || json_object_is_type(v, json_type_int)))
        out = strdup(json_object_get_string(v));
    json_object_put(o);
    return out;
}

/* The provider's delivery id, an Idempotency-Key, a body field, or the
 * body's SHA-256; over-long ids are hashed so the key stays indexable. */
static char *delivery_key(const wh_req *w)
{
    const ingest_webhook_spec *spec = &w->inst->desc.webhook;
    const char *id = spec->delivery_id_header ? header_value(w, spec->delivery_id_header) : NULL;
    if (!id || !*id)
        id = header_value(w, "Idempotency-Key");
    char *from_body = (!id || !*id) ? body_field(w, spec->delivery_id_field) : NULL;
    if (from_body)
        id = from_body;
    char digest[65], *key = NULL;
    if (id && *id && strlen(id) <= MAX_KEY_LEN) {
        key = strdup(id);
    } else {
        if (id && *id)
            util_sha256_hex(id, strlen(id), digest);
        else
            util_sha256_hex(w->body, w->body_len, digest);
        if (asprintf(&key, "sha256:%s", digest) < 0)
            key = NULL;
    }
    free(from_body);
    return key;
}

/* Stored headers: everything but credentials meant for us or a proxy. */
static char *headers_json(const wh_req *w)
{
    static const char *const dropped[] = {"authorization", "proxy-authorization", "cookie"};
    json_object *o = json_object_new_object();
    for (size_t i = 0; o && i < w->n_headers; i++) {
        int drop = 0;
        for (size_t k = 0; k < sizeof dropped / sizeof dropped[0]; k++)
            drop |= strcasecmp(w->headers[i].name, dropped[k]) == 0;
        if (!drop)
            json_object_object_add(o, w->headers[i].name,
                                   json_object_new_string(w->headers[i].value));
    }
    char *text = o ? strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) : NULL;
    json_object_put(o);
    return text;
}

static void send_ack_json(wh_req *w, const inbox_item *it, int fresh)
{
    json_object *body = json_object_new_object();
    json_object_object_add(body, "status",
                           json_object_new_string(fresh ? "accepted" : "duplicate"));
    if (fresh)
        json_object_object_add(body, "delivery_id", json_object_new_string(it->id));
    json_object_object_add(body, "idempotency_key", json_object_new_string(it->delivery_key));
    httpd_send_json(w->req, fresh ? 202 : 200, "application/json", body);
    json_object_put(body);
}

static void stored(inbox_item *it, void *arg)
{
    wh_req *w = arg;
    if (it->outcome == INBOX_FAILED) {
        inbox_item_free(it);
        reject(w, 503, "database_unavailable", "the delivery could not be stored; retry later",
               RETRY_AFTER_DOWN_S);
        return;
    }
    int fresh = it->outcome == INBOX_STORED;
    if (w->inst->desc.webhook_ack == INGEST_WEBHOOK_ACK_EMPTY_200)
        evhttp_send_reply(w->req, 200, "OK", NULL);
    else
        send_ack_json(w, it, fresh);
    metrics_add(fresh ? w->m->stored : w->m->duplicates, 1);
    metrics_observe(w->m->ack_seconds, (double)(util_mono_us() - w->start_mono_us) / 1e6);
    if (fresh && !it->leased) /* a leased one is already on its way to a worker */
        dispatch_wake(w->h);
    inbox_item_free(it);
    wh_free(w);
}

static inbox_item *make_item(wh_req *w)
{
    inbox_item *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    util_uuid7(it->id);
    it->provider = strdup(w->provider);
    it->delivery_key = delivery_key(w);
    if (w->connection_id[0]) {
        it->connection_id = strdup(w->connection_id);
        if (asprintf(&it->scope, "%s/%s", w->provider, w->connection_id) < 0)
            it->scope = NULL;
    } else {
        it->scope = strdup(w->provider);
    }
    it->tenant_id = w->tenant_id[0] ? strdup(w->tenant_id) : NULL;
    it->headers_json = headers_json(w);
    it->remote_addr = w->remote_addr[0] ? strdup(w->remote_addr) : NULL;
    it->content_type = w->content_type ? strdup(w->content_type) : NULL;
    it->body = w->body; /* moved */
    it->body_len = w->body_len;
    w->body = NULL;
    it->received_at_us = w->received_us;
    it->done = stored;
    it->done_arg = w;
    if (!it->provider || !it->delivery_key || !it->scope || !it->headers_json ||
        (w->connection_id[0] && !it->connection_id)) {
        inbox_item_free(it);
        return NULL;
    }
    return it;
}

static void step_store(wh_req *w)
{
    inbox_item *it = make_item(w);
    if (!it) {
        reject(w, 503, "busy", "out of memory", RETRY_AFTER_BUSY_S);
        return;
    }
    if (inbox_submit(w->h->inbox, it) < 0) {
        int down = !inbox_ready(w->h->inbox);
        inbox_item_free(it);
        reject(w, 503, down ? "database_unavailable" : "busy",
               down ? "the database is unavailable; retry later"
                    : "too many deliveries waiting to be stored; retry later",
               down ? RETRY_AFTER_DOWN_S : RETRY_AFTER_BUSY_S);
    }
}
