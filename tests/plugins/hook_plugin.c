/*
 * hook_plugin.c — webhook fixtures: one source built into one plugin per
 * verification scheme (SCHEME_* below), each named hook_<scheme>.
 *
 * handle_webhook() turns a JSON body into one signal: kind "hook.<event>"
 * (event from the body's "event" field, else "unknown"), dedupe key = the
 * delivery's idempotency key, payload = the body. It fails on purpose while
 * the file named by the config key fail_flag_file exists, or when the body
 * has "fail": true, so retries and dead letters can be tested.
 * The Slack-style variant answers {"type": "url_verification"} handshakes.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ingest/plugin.h"

#ifndef PLUGIN_NAME
#error PLUGIN_NAME must be defined
#endif
/* meson defines one scheme per build; lint runs see none and get HMAC. */
#if !defined(SCHEME_HMAC) && !defined(SCHEME_LINEAR) && !defined(SCHEME_SLACK) &&                  \
    !defined(SCHEME_STAMPED) && !defined(SCHEME_TOKEN) && !defined(SCHEME_CALLBACK)
#define SCHEME_HMAC
#endif

typedef struct hook_conf {
    const char *fail_flag_file;
    int64_t handle_sleep_ms;
} hook_conf;

static const ingest_config_field hook_config[] = {
    {.key = "fail_flag_file",
     .type = INGEST_CONF_STRING,
     .offset = offsetof(hook_conf, fail_flag_file),
     .doc = "while this file exists, every delivery fails"},
    {.key = "handle_sleep_ms",
     .type = INGEST_CONF_INT,
     .default_value = "0",
     .min = 0,
     .max = 60000,
     .offset = offsetof(hook_conf, handle_sleep_ms),
     .doc = "sleep this long in each webhook callback"},
};

typedef struct hook_state {
    const ingest_host_api *api;
    ingest_ctx *ctx;
    const hook_conf *conf;
} hook_state;

static int hook_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    hook_state *st = calloc(1, sizeof *st);
    if (!st)
        return INGEST_ENOMEM;
    *st = (hook_state){api, ctx, conf};
    *state = st;
    return INGEST_OK;
}

static void hook_shutdown(void *state) { free(state); }

static json_object *parse_body(const ingest_delivery *d)
{
    json_tokener *tok = json_tokener_new();
    json_object *o =
        tok ? json_tokener_parse_ex(tok, (const char *)d->body, (int)d->body_len) : NULL;
    json_tokener_free(tok);
    if (o && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

static int hook_handle(ingest_run *run, void *state, const ingest_delivery *d)
{
    hook_state *st = state;
    const ingest_host_api *api = st->api;
    if (st->conf->handle_sleep_ms > 0)
        usleep((useconds_t)st->conf->handle_sleep_ms * 1000);
    if (st->conf->fail_flag_file && access(st->conf->fail_flag_file, F_OK) == 0) {
        api->log(st->ctx, run, INGEST_LOG_WARN, "failing on purpose: %s exists",
                 st->conf->fail_flag_file);
        return INGEST_EIO;
    }
    json_object *body = parse_body(d);
    if (!body) {
        api->log(st->ctx, run, INGEST_LOG_WARN, "delivery %s: body is not a JSON object",
                 d->delivery_id);
        return INGEST_EINVAL;
    }
    json_object *v = NULL;
    int fail = json_object_object_get_ex(body, "fail", &v) && json_object_get_boolean(v);
    const char *event =
        json_object_object_get_ex(body, "event", &v) ? json_object_get_string(v) : "unknown";
    char kind[160];
    snprintf(kind, sizeof kind, "hook.%s", event);
    json_object *prov = json_object_new_object();
    if (INGEST_STRUCT_HAS(d, remote_addr) && d->remote_addr)
        json_object_object_add(prov, "remote_addr", json_object_new_string(d->remote_addr));
    ingest_signal sig = {.hdr = INGEST_ABI_HEADER(ingest_signal),
                         .kind = kind,
                         .dedupe_key = d->delivery_id,
                         .occurred_at_us = d->received_at_us,
                         .payload_json =
                             json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN),
                         .source_type = "webhook",
                         .provenance_json = json_object_to_json_string(prov)};
    const char *reject =
        json_object_object_get_ex(body, "reject", &v) ? json_object_get_string(v) : NULL;
    int rc = fail     ? INGEST_EIO
             : reject ? api->reject(run, reject, "{\"why\": \"the body asked for it\"}")
                      : api->emit(run, &sig);
    json_object_put(prov);
    json_object_put(body);
    return rc;
}

#ifdef SCHEME_SLACK
static int hook_handshake(void *state, const ingest_delivery *d, ingest_webhook_reply *reply)
{
    (void)state;
    json_object *body = parse_body(d), *type = NULL, *challenge = NULL;
    int handled = body && json_object_object_get_ex(body, "type", &type) &&
                  strcmp(json_object_get_string(type), "url_verification") == 0 &&
                  json_object_object_get_ex(body, "challenge", &challenge);
    if (handled) {
        reply->status = 200;
        snprintf(reply->content_type, sizeof reply->content_type, "text/plain");
        snprintf(reply->body, sizeof reply->body, "%s", json_object_get_string(challenge));
    }
    json_object_put(body);
    return handled;
}
#endif

#ifdef SCHEME_CALLBACK
/* An "exotic" scheme: X-Hook-Proof must be the secret's SHA-256 followed by
 * ":" and the body's SHA-256. */
static int hook_verify(void *state, const ingest_header *headers, size_t n_headers,
                       const unsigned char *body, size_t body_len, const char *secret)
{
    hook_state *st = state;
    if (!secret)
        return INGEST_EAUTH;
    char a[65], b[65], expected[140];
    st->api->sha256_hex(secret, strlen(secret), a);
    st->api->sha256_hex(body, body_len, b);
    snprintf(expected, sizeof expected, "%s:%s", a, b);
    for (size_t i = 0; i < n_headers; i++)
        if (strcasecmp(headers[i].name, "X-Hook-Proof") == 0 &&
            strcmp(headers[i].value, expected) == 0)
            return INGEST_OK;
    return INGEST_EAUTH;
}
#endif

static const ingest_plugin descriptor = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = PLUGIN_NAME,
    .version = "1.0.0",
    .description = "webhook test plugin " PLUGIN_NAME,
#if defined(SCHEME_HMAC)
    .webhook = {.scheme = INGEST_WEBHOOK_HMAC_SHA256,
                .signature_header = "X-Hook-Signature",
                .signature_prefix = "sha256=",
                .delivery_id_header = "X-Hook-Delivery"},
#elif defined(SCHEME_LINEAR)
    .webhook = {.scheme = INGEST_WEBHOOK_HMAC_SHA256,
                .signature_header = "Linear-Signature",
                .body_timestamp_field = "webhookTimestamp",
                .tolerance_s = 60,
                .delivery_id_header = "Linear-Delivery"},
#elif defined(SCHEME_SLACK)
    .webhook = {.scheme = INGEST_WEBHOOK_SLACK_V0,
                .signature_header = "X-Slack-Signature",
                .timestamp_header = "X-Slack-Request-Timestamp",
                .delivery_id_field = "event_id"},
    .webhook_handshake = hook_handshake,
#elif defined(SCHEME_STAMPED)
    .webhook = {.scheme = INGEST_WEBHOOK_TIMESTAMPED_HMAC,
                .signature_header = "X-Hook-Signature",
                .timestamp_header = "X-Hook-Timestamp",
                .timestamp_separator = ".",
                .tolerance_s = 120},
#elif defined(SCHEME_TOKEN)
    .webhook = {.scheme = INGEST_WEBHOOK_SHARED_TOKEN, .signature_header = "X-Hook-Token"},
#elif defined(SCHEME_CALLBACK)
    .webhook = {.scheme = INGEST_WEBHOOK_CALLBACK},
    .verify_webhook = hook_verify,
#endif
#ifdef WEBHOOK_ACK_FROM_A_LATER_MINOR
    .webhook_ack = (ingest_webhook_ack)(INGEST_WEBHOOK_ACK_EMPTY_200 + 5),
#endif
    .config = INGEST_ARRAY(hook_config),
    .conf_size = sizeof(hook_conf),
    .init = hook_init,
    .shutdown = hook_shutdown,
    .handle_webhook = hook_handle,
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &descriptor; }
