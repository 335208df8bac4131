/*
 * slack_webhook.c — Events API, slash commands and interactive payloads.
 *
 * The host verified X-Slack-Signature over "v0:{ts}:{body}" within the
 * 5-minute window and deduplicated Events API retries by the envelope's
 * event_id before any of this runs. The one thing answered synchronously
 * is Slack's url_verification handshake (and the ssl_check probe of slash
 * command URLs): webhook_handshake echoes the challenge, nothing is stored.
 * Everything else is committed to the durable inbox first, so Slack gets
 * its 2xx within its 3-second budget however slow the processing here
 * (users.info lookups included) turns out to be.
 *
 * Each delivery becomes one signal: a stable kind for the events listed in
 * README.md, slack.<type> for the rest (never dropped). A retried delivery
 * that reaches us (its first attempt was never stored) carries
 * X-Slack-Retry-Num, recorded in the signal's provenance.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slack.h"

static int is(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static int is_form(const char *content_type)
{
    return content_type && strncmp(content_type, "application/x-www-form-urlencoded", 33) == 0;
}

static char *body_text(const ingest_delivery *d)
{
    char *text = malloc(d->body_len + 1);
    if (text) {
        memcpy(text, d->body, d->body_len);
        text[d->body_len] = '\0';
    }
    return text;
}

/* ------------------------------------------------------------ handshake */

static int answer_challenge(json_object *env, ingest_webhook_reply *reply)
{
    const char *challenge = ingest_json_str(env, "challenge");
    json_object *out = json_object_new_object();
    if (!challenge || !out) {
        json_object_put(out);
        return 0; /* stored and dead-lettered: visible, not silently lost */
    }
    json_object_object_add(out, "challenge", json_object_new_string(challenge));
    const char *text = json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN);
    int fits = strlen(text) < sizeof reply->body;
    if (fits) {
        reply->status = 200;
        snprintf(reply->content_type, sizeof reply->content_type, "application/json");
        snprintf(reply->body, sizeof reply->body, "%s", text);
    }
    json_object_put(out);
    return fits;
}

int sl_webhook_handshake(void *state, const ingest_delivery *d, ingest_webhook_reply *reply)
{
    (void)state;
    if (is_form(d->content_type)) {
        /* Slack probes a slash command's URL with ssl_check=1: answer 200. */
        char *check = ingest_form_value(d->body, d->body_len, "ssl_check");
        int probe = check && strcmp(check, "1") == 0;
        free(check);
        if (probe)
            reply->status = 200;
        return probe;
    }
    json_object *env =
        d->body_len && d->body[0] == '{' ? ingest_json_parse(d->body, d->body_len) : NULL;
    int handled =
        is(ingest_json_str(env, "type"), "url_verification") && answer_challenge(env, reply);
    json_object_put(env);
    return handled;
}

/* ---------------------------------------------------------------- names */

typedef struct hook_ctx {
    slack_state *st;
    ingest_run *run;
    const ingest_delivery *d;
    const char *conn; /* the delivery's connection, or the one its team routed to */
    char routed[37];
    sl_settings set;
    int have_set; /* a connection whose settings could be read */
    sl_origin o;
} hook_ctx;

/* Names only for deliveries of a connection (the API needs its token). */
static char *name_of(hook_ctx *h, const char *user)
{
    return h->have_set ? sl_user_name(h->st, h->run, &h->set, user) : NULL;
}

/* ------------------------------------------------------------ event_callback */

static int message_event(hook_ctx *h, json_object *ev)
{
    const char *subtype = ingest_json_str(ev, "subtype");
    const char *channel = ingest_json_str(ev, "channel");
    if (!subtype || is(subtype, "thread_broadcast") || is(subtype, "file_share") ||
        is(subtype, "bot_message") || is(subtype, "me_message")) {
        char *name = name_of(h, ingest_json_str(ev, "user"));
        int rc = sl_emit_message(h->st, h->run, ev, channel, name, &h->o);
        free(name);
        return rc;
    }
    if (is(subtype, "message_changed")) {
        json_object *msg = ingest_json_get(ev, "message");
        if (!ingest_json_str(msg, "edited.ts"))
            return INGEST_EINVAL; /* an unfurl or metadata update, not an edit */
        char *name = name_of(h, ingest_json_str(msg, "user"));
        int rc = sl_emit_message_kind(h->st, h->run, "message_edited", msg, channel, name, &h->o);
        free(name);
        return rc;
    }
    if (is(subtype, "message_deleted"))
        return sl_emit_deleted(h->st, h->run, ev, &h->o);
    return INGEST_EINVAL;
}

static int dispatch_event(hook_ctx *h, json_object *ev, const char *type)
{
    if (is(type, "message"))
        return message_event(h, ev);
    if (is(type, "app_mention")) {
        char *name = name_of(h, ingest_json_str(ev, "user"));
        int rc = sl_emit_message_kind(h->st, h->run, "app_mentioned", ev,
                                      ingest_json_str(ev, "channel"), name, &h->o);
        free(name);
        return rc;
    }
    if (is(type, "reaction_added")) {
        char *name = name_of(h, ingest_json_str(ev, "user"));
        int rc = sl_emit_reaction(h->st, h->run, ev, name, &h->o);
        free(name);
        return rc;
    }
    if (is(type, "channel_created"))
        return sl_emit_channel(h->st, h->run, ingest_json_get(ev, "channel"), &h->o);
    return INGEST_EINVAL;
}

static int event_callback(hook_ctx *h, json_object *env)
{
    json_object *ev = ingest_json_get(env, "event");
    const char *type = ingest_json_str(ev, "type");
    const char *subtype = ingest_json_str(ev, "subtype");
    char full[160];
    snprintf(full, sizeof full, "%s%s%s", type ? type : "unknown", subtype ? "." : "",
             subtype ? subtype : "");
    h->o.event_type = full;
    int rc =
        json_object_is_type(ev, json_type_object) ? dispatch_event(h, ev, type) : INGEST_EINVAL;
    if (rc == INGEST_EINVAL) /* no stable kind, or lacking its fields: keep it */
        rc = sl_emit_other(h->st, h->run, full, ev,
                           h->o.event_id ? h->o.event_id : h->d->delivery_id, &h->o);
    return rc;
}

/* Slack dropped events for a minute (30,000 an hour per workspace): a sync
 * fetches what the events would have said. */
static int rate_limited(hook_ctx *h, json_object *env)
{
    ingest_health_degrade(
        &h->st->health, h->st->api, h->st->ctx, h->run,
        "Slack dropped Events API deliveries (app_rate_limited, minute %lld)",
        (long long)(ingest_json_get(env, "minute_rate_limited")
                        ? json_object_get_int64(ingest_json_get(env, "minute_rate_limited"))
                        : 0));
    if (h->st->conf->sync_on_webhook && h->conn && INGEST_API_HAS(h->st->api, request_sync))
        h->st->api->request_sync(h->run, sl_stream_names[SL_MESSAGES]);
    char key[96];
    snprintf(key, sizeof key, "%s:%lld", h->o.team_id ? h->o.team_id : "-",
             (long long)json_object_get_int64(ingest_json_get(env, "minute_rate_limited")));
    return sl_emit_other(h->st, h->run, "app_rate_limited", env, key, &h->o);
}

static void bind_connection(hook_ctx *h);

static int json_delivery(hook_ctx *h, char *text)
{
    json_object *env = ingest_json_parse(text, strlen(text));
    if (!json_object_is_type(env, json_type_object)) {
        json_object_put(env);
        return INGEST_EINVAL;
    }
    json_object_object_del(env, "token"); /* the deprecated verification token */
    h->o.raw = env;
    h->o.team_id = ingest_json_str(env, "team_id");
    h->o.event_id = ingest_json_str(env, "event_id");
    bind_connection(h);
    const char *type = ingest_json_str(env, "type");
    int rc;
    if (is(type, "event_callback"))
        rc = event_callback(h, env);
    else if (is(type, "app_rate_limited"))
        rc = rate_limited(h, env);
    else if (is(type, "url_verification"))
        rc = INGEST_OK; /* answered by the handshake; only a replay gets here */
    else
        rc = sl_emit_other(h->st, h->run, type ? type : "unknown", env, h->d->delivery_id, &h->o);
    json_object_put(env);
    h->o.raw = NULL;
    return rc;
}

/* ------------------------------------------------------ form-encoded bodies */

static int form_delivery(hook_ctx *h, char *text)
{
    json_object *form = ingest_form_parse(text, strlen(text));
    if (!form)
        return INGEST_EINVAL;
    json_object_object_del(form, "token");
    const char *payload = ingest_json_str(form, "payload");
    int rc;
    if (payload) { /* interactivity: the JSON is the payload field */
        json_object *pl = ingest_json_parse(payload, strlen(payload));
        if (json_object_is_type(pl, json_type_object)) {
            json_object_object_del(pl, "token");
            h->o.raw = pl;
            h->o.team_id = ingest_json_str(pl, "team.id");
            h->o.event_type = ingest_json_str(pl, "type");
            bind_connection(h);
            rc = sl_emit_interaction(h->st, h->run, pl, &h->o);
        } else {
            rc = INGEST_EINVAL;
        }
        json_object_put(pl);
    } else {
        h->o.raw = form;
        h->o.team_id = ingest_json_str(form, "team_id");
        h->o.event_type = "slash_command";
        bind_connection(h);
        rc = sl_emit_command(h->st, h->run, form, &h->o);
    }
    h->o.raw = NULL;
    json_object_put(form);
    return rc;
}

/* ------------------------------------------------------------------ entry */

static void load_settings(hook_ctx *h)
{
    char err[256];
    if (!h->conn)
        return;
    h->have_set = sl_settings_load(h->st, h->run, &h->set, err, sizeof err) == INGEST_OK;
    if (!h->have_set)
        h->st->api->log(h->st->ctx, h->run, INGEST_LOG_WARN,
                        "delivery %s: %s; user names are not resolved", h->d->delivery_id, err);
}

/* One Request URL serves every workspace the app is installed in: a
 * delivery on the connection-less route belongs to the connection whose
 * team it names (on_authorized kept each connection's team_id). Without
 * one it is stored as the app's, under the group's webhook_tenant_id. */
static void bind_connection(hook_ctx *h)
{
    const ingest_host_api *api = h->st->api;
    if (!h->conn && h->o.team_id && INGEST_API_HAS(api, connection_route)) {
        int rc = api->connection_route(h->run, "team_id", h->o.team_id, h->routed);
        if (rc == INGEST_OK)
            h->conn = h->routed;
        else
            api->log(h->st->ctx, h->run, rc == INGEST_ENOTFOUND ? INGEST_LOG_INFO : INGEST_LOG_WARN,
                     "delivery %s: no single connection of team %.32s (%d); kept as the app's",
                     h->d->delivery_id, h->o.team_id, rc);
    }
    load_settings(h);
}

static void note_retry(hook_ctx *h)
{
    const char *num = ingest_delivery_header(h->d, "X-Slack-Retry-Num");
    h->o.retry_num = num ? strtoll(num, NULL, 10) : -1;
    h->o.retry_reason = ingest_delivery_header(h->d, "X-Slack-Retry-Reason");
    if (num)
        h->st->api->log(h->st->ctx, h->run, INGEST_LOG_INFO,
                        "delivery %s is Slack's retry %s (%.40s); its first attempt was not "
                        "stored",
                        h->d->delivery_id, num, h->o.retry_reason ? h->o.retry_reason : "-");
}

int sl_handle_webhook(ingest_run *run, void *state, const ingest_delivery *d)
{
    slack_state *st = state;
    st->api->metric_add(st->m_webhooks, 1);
    hook_ctx h = {.st = st, .run = run, .d = d, .conn = d->connection_id};
    h.o =
        (sl_origin){.via = "webhook", .delivery = d->delivery_id, .fallback_us = d->received_at_us};
    note_retry(&h);
    char *text = body_text(d);
    int rc = !text                      ? INGEST_ENOMEM
             : is_form(d->content_type) ? form_delivery(&h, text)
                                        : json_delivery(&h, text);
    if (rc == INGEST_EINVAL)
        st->api->log(st->ctx, run, INGEST_LOG_ERROR,
                     "delivery %s: not a Slack event, command or interaction; kept in the inbox",
                     d->delivery_id);
    free(text);
    if (h.have_set)
        sl_settings_free(&h.set);
    return rc;
}
