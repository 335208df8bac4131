/*
 * http_source.c — a generic push source: POST /webhooks/http/{connection_id}
 * with a JSON object, a JSON array or NDJSON; each event becomes one signal.
 *
 * Verification is per connection: a connection with a webhook_secret takes
 * only bodies signed `X-Signature-256: sha256=<hex HMAC-SHA256(secret,
 * body)>`; one without takes unsigned pushes. Idempotency-Key makes a
 * retried request a duplicate (the host answers 200 and stores nothing);
 * without it each event is still deduplicated, by the configured key or by
 * its content hash. Events that cannot become signals are dead-lettered
 * (api->reject) with their position, and the rest of the body is kept.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_events.h"
#include "http_mapping.h"
#include "ingest/helpers.h"
#include "ingest/plugin.h"

#define PLUGIN_VERSION "1.0.0"
#define SIGNATURE_HEADER "X-Signature-256"
#define SIGNATURE_PREFIX "sha256="
#define REJECT_TEXT_MAX 1024 /* bytes of a bad event kept in its dead letter */

typedef struct http_conf {
    const char *kind_path;
    const char *default_kind;
    const char *occurred_at_path;
    const char *dedupe_key_path;
    int64_t max_events;
} http_conf;

static const ingest_config_field http_config[] = {
    {.key = "kind_path",
     .type = INGEST_CONF_STRING,
     .offset = offsetof(http_conf, kind_path),
     .doc = "dotted path of the event's kind (a connection's kind_path overrides it)"},
    {.key = "default_kind",
     .type = INGEST_CONF_STRING,
     .default_value = "http.event",
     .min = 1,
     .max = 200,
     .offset = offsetof(http_conf, default_kind),
     .doc = "signal kind of events without one"},
    {.key = "occurred_at_path",
     .type = INGEST_CONF_STRING,
     .offset = offsetof(http_conf, occurred_at_path),
     .doc = "dotted path of the event's time (RFC 3339 or unix seconds); else receive time"},
    {.key = "dedupe_key_path",
     .type = INGEST_CONF_STRING,
     .offset = offsetof(http_conf, dedupe_key_path),
     .doc = "dotted path of the event's unique id; else its SHA-256"},
    {.key = "max_events",
     .type = INGEST_CONF_INT,
     .default_value = "100000",
     .min = 1,
     .max = 10000000,
     .offset = offsetof(http_conf, max_events),
     .doc = "events taken from one request; the rest are dead-lettered"},
};

typedef struct http_state {
    const ingest_host_api *api;
    ingest_ctx *ctx;
    const http_conf *conf;
    http_mapping defaults; /* from the plugin group */
} http_state;

/* One delivery being turned into signals. */
typedef struct push {
    http_state *st;
    ingest_run *run;
    const ingest_delivery *d;
    const http_mapping *map;
    size_t taken;
} push;

/* ------------------------------------------------------------ verification */

static const char *find_header(const ingest_header *h, size_t n, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(h[i].name, name) == 0)
            v = h[i].value;
    }
    return v;
}

static int http_verify(void *state, const ingest_header *headers, size_t n_headers,
                       const unsigned char *body, size_t body_len, const char *secret)
{
    const http_state *st = state;
    if (!secret)
        return INGEST_OK; /* this connection takes unsigned pushes */
    const char *sig = find_header(headers, n_headers, SIGNATURE_HEADER);
    size_t plen = strlen(SIGNATURE_PREFIX);
    if (!sig || strncasecmp(sig, SIGNATURE_PREFIX, plen) != 0 || strlen(sig + plen) != 64)
        return INGEST_EAUTH;
    char given[65], want[65];
    for (size_t i = 0; i < 64; i++) /* hex may come in either case */
        given[i] = (char)((sig[plen + i] >= 'A' && sig[plen + i] <= 'F') ? sig[plen + i] + 32
                                                                           : sig[plen + i]);
    given[64] = '\0';
    st->api->hmac_sha256_hex(secret, strlen(secret), body, body_len, want);
    int same = CRYPTO_memcmp(given, want, 64) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return same ? INGEST_OK : INGEST_EAUTH;
}

/* -------------------------------------------------------------- rejection */

/* Printable ASCII only, so the detail is valid JSON whatever was sent. */
static json_object *text_excerpt(const char *text, size_t len)
{
    size_t n = len < REJECT_TEXT_MAX ? len : REJECT_TEXT_MAX;
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < n; i++)
        copy[i] = (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
    copy[n] = '\0';
    json_object *s = json_object_new_string(copy);
    free(copy);
    return s;
}

static int reject_event(push *p, const http_event *e, const char *why)
{
    json_object *detail = json_object_new_object();
    json_object_object_add(detail, "delivery_id", json_object_new_string(p->d->delivery_id));
    json_object_object_add(detail, "index", json_object_new_int64((int64_t)e->index));
    if (e->line)
        json_object_object_add(detail, "line", json_object_new_int64((int64_t)e->line));
    json_object_object_add(detail, "text", text_excerpt(e->text, e->text_len));
    int rc = p->st->api->reject(p->run, why, json_object_to_json_string(detail));
    json_object_put(detail);
    return rc;
}

/* ---------------------------------------------------------------- mapping */

static int event_kind(push *p, const http_event *e, const char **kind, char *why, size_t len)
{
    *kind = p->map->default_kind;
    if (!p->map->kind_path)
        return 0;
    *kind = ingest_json_str(e->value, p->map->kind_path);
    if (*kind && **kind)
        return 0;
    snprintf(why, len, "no kind: %s is not a non-empty string", p->map->kind_path);
    return -1;
}

static int event_time(push *p, const http_event *e, int64_t *us, char *why, size_t len)
{
    *us = p->d->received_at_us;
    if (!p->map->occurred_at_path)
        return 0;
    int rc = ingest_json_time(p->st->api, e->value, p->map->occurred_at_path, us);
    if (rc == INGEST_OK)
        return 0;
    snprintf(why, len, "%s: %s", p->map->occurred_at_path,
             rc == INGEST_ENOTFOUND ? "missing" : "not an RFC 3339 time or unix seconds");
    return -1;
}

/* The configured key, or "sha256:" and the hash of the event's compact
 * serialization (so whitespace does not make a repeated event new). */
static int event_key(push *p, const http_event *e, const char *canonical, char *key, size_t key_len,
                     char *why, size_t len)
{
    if (!p->map->dedupe_key_path) {
        char hex[65];
        p->st->api->sha256_hex(canonical, strlen(canonical), hex);
        snprintf(key, key_len, "sha256:%s", hex);
        return 0;
    }
    int64_t number;
    const char *text = ingest_json_str(e->value, p->map->dedupe_key_path);
    if (text && *text && strlen(text) < key_len) {
        snprintf(key, key_len, "%s", text);
        return 0;
    }
    if (!text && ingest_json_int64(e->value, p->map->dedupe_key_path, &number)) {
        snprintf(key, key_len, "%lld", (long long)number);
        return 0;
    }
    snprintf(why, len, "no dedupe key: %s is not a string (under %zu bytes) or an integer",
             p->map->dedupe_key_path, key_len);
    return -1;
}

static json_object *provenance(push *p, const http_event *e, const char *hex)
{
    json_object *o = json_object_new_object();
    char received[INGEST_ISO8601_LEN];
    ingest_time_iso8601(p->d->received_at_us, received);
    const char *addr = INGEST_STRUCT_HAS(p->d, remote_addr) ? p->d->remote_addr : NULL;
    json_object_object_add(o, "remote_addr", addr ? json_object_new_string(addr) : NULL);
    json_object_object_add(o, "content_sha256", json_object_new_string(hex));
    json_object_object_add(o, "received_at", json_object_new_string(received));
    json_object_object_add(o, "delivery_id", json_object_new_string(p->d->delivery_id));
    json_object_object_add(o, "index", json_object_new_int64((int64_t)e->index));
    if (e->line)
        json_object_object_add(o, "line", json_object_new_int64((int64_t)e->line));
    json_object_object_add(o, "plugin_version", json_object_new_string(PLUGIN_VERSION));
    return o;
}

static int emit_event(push *p, const http_event *e)
{
    char why[300], key[512], hex[65];
    const char *kind;
    int64_t occurred;
    const char *canonical = json_object_to_json_string_ext(e->value, JSON_C_TO_STRING_PLAIN);
    if (event_kind(p, e, &kind, why, sizeof why) < 0 ||
        event_time(p, e, &occurred, why, sizeof why) < 0 ||
        event_key(p, e, canonical, key, sizeof key, why, sizeof why) < 0)
        return reject_event(p, e, why);
    p->st->api->sha256_hex(canonical, strlen(canonical), hex);
    json_object *prov = provenance(p, e, hex);
    ingest_json_signal sig = {.kind = kind,
                              .dedupe_key = key,
                              .occurred_at_us = occurred,
                              .payload = e->value,
                              .source_id = key,
                              .source_type = "http",
                              .provenance = prov};
    int rc = ingest_emit_json(p->st->api, p->run, &sig);
    json_object_put(prov);
    return rc;
}

static int on_event(void *arg, const http_event *e)
{
    push *p = arg;
    if (p->taken++ >= (size_t)p->st->conf->max_events) {
        char why[96];
        snprintf(why, sizeof why, "more than %lld events in one request: the rest were not read",
                 (long long)p->st->conf->max_events);
        int rc = reject_event(p, e, why);
        return rc != INGEST_OK ? rc : 1; /* stop the walk */
    }
    int rc = e->error ? reject_event(p, e, e->error) : emit_event(p, e);
    return rc == INGEST_OK ? 0 : rc;
}

/* ------------------------------------------------------------ callbacks */

static int load_mapping(http_state *st, ingest_run *run, const ingest_delivery *d,
                        http_mapping *map)
{
    char *conn = NULL, err[200] = "";
    if (d->connection_id && st->api->connection_config(run, &conn) != INGEST_OK)
        return INGEST_EIO;
    int rc = http_mapping_load(map, &st->defaults, conn, err, sizeof err);
    st->api->free(conn);
    if (rc == INGEST_EINVAL)
        st->api->log(st->ctx, run, INGEST_LOG_WARN, "connection %s: %s", d->connection_id, err);
    return rc;
}

static int http_handle(ingest_run *run, void *state, const ingest_delivery *d)
{
    http_state *st = state;
    http_mapping map;
    int rc = load_mapping(st, run, d, &map);
    if (rc != INGEST_OK)
        return rc;
    push p = {st, run, d, &map, 0};
    rc = http_events_walk(d->body, d->body_len, d->content_type, on_event, &p);
    http_mapping_clear(&map);
    return rc > 0 ? INGEST_OK : rc; /* > 0: stopped at max_events */
}

static int http_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    if (!INGEST_API_HAS(api, reject) || !INGEST_API_HAS(api, connection_config)) {
        api->set_error(ctx, "this host is too old: the http source needs ABI minor 2");
        return INGEST_EUNSUPPORTED;
    }
    http_state *st = calloc(1, sizeof *st);
    if (!st)
        return INGEST_ENOMEM;
    st->api = api;
    st->ctx = ctx;
    st->conf = conf;
    st->defaults = (http_mapping){(char *)st->conf->kind_path, (char *)st->conf->default_kind,
                                  (char *)st->conf->occurred_at_path,
                                  (char *)st->conf->dedupe_key_path};
    *state = st;
    return INGEST_OK;
}

static void http_shutdown(void *state) { free(state); }

static const ingest_plugin http_plugin = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = "http",
    .version = PLUGIN_VERSION,
    .description = "Generic push source: JSON, JSON arrays or NDJSON posted to /webhooks/http",
    .auth = {.kind = INGEST_AUTH_NONE},
    .webhook = {.scheme = INGEST_WEBHOOK_CALLBACK, .delivery_id_header = "Idempotency-Key"},
    .config = INGEST_ARRAY(http_config),
    .conf_size = sizeof(http_conf),
    .init = http_init,
    .shutdown = http_shutdown,
    .handle_webhook = http_handle,
    .verify_webhook = http_verify,
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &http_plugin; }
