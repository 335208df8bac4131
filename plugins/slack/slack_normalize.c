/*
 * slack_normalize.c — Slack records to signals.
 *
 * A message reaches us from the Events API (a message event) and from a
 * sync (conversations.history lists it). Both paths call the functions
 * here, so one message has one kind and one dedupe key whichever way it
 * came: a missed event is healed by the next sync without a duplicate.
 * Keys are built from Slack's own identifiers (channel id and message ts,
 * which Slack documents as unique per channel), never from delivery ids,
 * except for slack.<type> records, which only webhooks produce.
 *
 * Payload members are always present (JSON null when Slack did not send
 * them). Slack's deprecated verification `token` is never copied into a
 * payload or raw record.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slack.h"

#define KEY_LEN 320

/* ------------------------------------------------------------ utilities */

int64_t sl_ts_us(const char *ts)
{
    if (!ts || !*ts)
        return 0;
    int64_t sec = 0, frac = 0;
    int digits = 0, fdigits = 0;
    const char *p = ts;
    for (; *p >= '0' && *p <= '9' && digits < 18; p++, digits++)
        sec = sec * 10 + (*p - '0');
    if (digits == 0)
        return 0;
    if (*p == '\0') /* "1515449522000016": µs without the dot; else seconds */
        return digits >= 13 ? sec : sec * 1000000;
    if (*p++ != '.')
        return 0;
    for (; *p >= '0' && *p <= '9'; p++)
        if (fdigits < 6) {
            frac = frac * 10 + (*p - '0');
            fdigits++;
        }
    if (*p != '\0' || digits > 11)
        return 0;
    for (; fdigits < 6; fdigits++)
        frac *= 10;
    return sec * 1000000 + frac;
}

static json_object *provenance(const sl_origin *o)
{
    json_object *p = json_object_new_object();
    if (!p)
        return NULL;
    ingest_json_put_str(p, "via", o->via);
    if (o->team_id)
        ingest_json_put_str(p, "team_id", o->team_id);
    if (o->event_id)
        ingest_json_put_str(p, "event_id", o->event_id);
    if (o->event_type)
        ingest_json_put_str(p, "event_type", o->event_type);
    if (o->delivery)
        ingest_json_put_str(p, "delivery", o->delivery);
    if (o->retry_num >= 0)
        json_object_object_add(p, "slack_retry_num", json_object_new_int64(o->retry_num));
    if (o->retry_reason)
        ingest_json_put_str(p, "slack_retry_reason", o->retry_reason);
    if (o->stream)
        ingest_json_put_str(p, "stream", o->stream);
    return p;
}

/* The first usable time among `ts` values, else the origin's fallback. */
static int64_t time_of(const slack_state *st, const sl_origin *o, const char *a, const char *b)
{
    int64_t us = sl_ts_us(a);
    if (us <= 0)
        us = sl_ts_us(b);
    if (us <= 0)
        us = o->fallback_us;
    return us > 0 ? us : st->api->now_us();
}

/* Emit one signal and release `payload` (NULL: out of memory). */
static int emit(slack_state *st, ingest_run *run, const char *kind, const char *key, int64_t at_us,
                json_object *payload, const char *source_type, const char *source_id,
                const sl_origin *o)
{
    json_object *prov = payload ? provenance(o) : NULL;
    ingest_json_signal sig = {.kind = kind,
                              .dedupe_key = key,
                              .occurred_at_us = at_us,
                              .payload = payload,
                              .raw = o->raw,
                              .raw_text = o->raw_text,
                              .source_id = source_id,
                              .source_type = source_type,
                              .provenance = prov};
    int rc = prov ? ingest_emit_json(st->api, run, &sig) : INGEST_ENOMEM;
    json_object_put(prov);
    json_object_put(payload);
    if (rc == INGEST_OK)
        st->api->metric_add(st->m_signals, 1);
    return rc;
}

/* ------------------------------------------------------------- messages */

static json_object *message_payload(json_object *msg, const char *channel, const char *user_name,
                                    const sl_origin *o)
{
    json_object *p = json_object_new_object();
    if (!p)
        return NULL;
    ingest_json_put_str(p, "team_id", o->team_id);
    ingest_json_put_str(p, "channel", channel);
    ingest_json_copy(p, "ts", msg, "ts");
    ingest_json_copy(p, "thread_ts", msg, "thread_ts");
    ingest_json_copy(p, "user", msg, "user");
    ingest_json_put_str(p, "user_name", user_name);
    ingest_json_copy(p, "bot_id", msg, "bot_id");
    ingest_json_copy(p, "subtype", msg, "subtype");
    ingest_json_copy(p, "text", msg, "text");
    ingest_json_copy(p, "reply_count", msg, "reply_count");
    ingest_json_copy(p, "edited_by", msg, "edited.user");
    ingest_json_copy(p, "edited_ts", msg, "edited.ts");
    const char *ts = ingest_json_str(msg, "ts"), *thread = ingest_json_str(msg, "thread_ts");
    json_object_object_add(p, "is_reply",
                           json_object_new_boolean(ts && thread && strcmp(ts, thread) != 0));
    return p;
}

int sl_emit_message_kind(slack_state *st, ingest_run *run, const char *kind, json_object *msg,
                         const char *channel, const char *user_name, const sl_origin *o)
{
    const char *ts = ingest_json_str(msg, "ts");
    if (!ts || !channel)
        return INGEST_EINVAL;
    char key[KEY_LEN], id[KEY_LEN];
    const char *edited = ingest_json_str(msg, "edited.ts");
    int64_t at;
    if (strcmp(kind, "message_edited") == 0) {
        if (!edited)
            return INGEST_EINVAL;
        snprintf(key, sizeof key, "message_edited:%s:%s:%s", channel, ts, edited);
        at = time_of(st, o, edited, NULL);
    } else {
        snprintf(key, sizeof key, "%s:%s:%s", kind, channel, ts);
        at = time_of(st, o, ts, NULL);
    }
    snprintf(id, sizeof id, "%s/%s", channel, ts);
    return emit(st, run, kind, key, at, message_payload(msg, channel, user_name, o), "message", id,
                o);
}

int sl_emit_message(slack_state *st, ingest_run *run, json_object *msg, const char *channel,
                    const char *user_name, const sl_origin *o)
{
    int rc = sl_emit_message_kind(st, run, "message_posted", msg, channel, user_name, o);
    if (rc == INGEST_OK && ingest_json_str(msg, "edited.ts"))
        rc = sl_emit_message_kind(st, run, "message_edited", msg, channel, user_name, o);
    return rc;
}

int sl_emit_deleted(slack_state *st, ingest_run *run, json_object *ev, const sl_origin *o)
{
    const char *channel = ingest_json_str(ev, "channel");
    const char *deleted = ingest_json_str(ev, "deleted_ts");
    if (!deleted)
        deleted = ingest_json_str(ev, "previous_message.ts");
    if (!channel || !deleted)
        return INGEST_EINVAL;
    json_object *p = json_object_new_object();
    if (p) {
        ingest_json_put_str(p, "team_id", o->team_id);
        ingest_json_put_str(p, "channel", channel);
        ingest_json_put_str(p, "ts", deleted);
        ingest_json_copy(p, "deleted_at", ev, "ts");
        ingest_json_copy(p, "previous_user", ev, "previous_message.user");
        ingest_json_copy(p, "previous_text", ev, "previous_message.text");
    }
    char key[KEY_LEN], id[KEY_LEN];
    snprintf(key, sizeof key, "message_deleted:%s:%s", channel, deleted);
    snprintf(id, sizeof id, "%s/%s", channel, deleted);
    return emit(st, run, "message_deleted", key,
                time_of(st, o, ingest_json_str(ev, "ts"), ingest_json_str(ev, "event_ts")), p,
                "message", id, o);
}

/* ------------------------------------------------------------ reactions */

int sl_emit_reaction(slack_state *st, ingest_run *run, json_object *ev, const char *user_name,
                     const sl_origin *o)
{
    const char *user = ingest_json_str(ev, "user"), *reaction = ingest_json_str(ev, "reaction");
    const char *type = ingest_json_str(ev, "item.type");
    const char *channel = ingest_json_str(ev, "item.channel"), *ts = ingest_json_str(ev, "item.ts");
    const char *file = ingest_json_str(ev, "item.file");
    const char *event_ts = ingest_json_str(ev, "event_ts");
    char item[KEY_LEN];
    if (channel && ts)
        snprintf(item, sizeof item, "%s:%s", channel, ts);
    else if (file)
        snprintf(item, sizeof item, "%s", file);
    else
        return INGEST_EINVAL;
    if (!user || !reaction || !event_ts)
        return INGEST_EINVAL;
    json_object *p = json_object_new_object();
    if (p) {
        ingest_json_put_str(p, "team_id", o->team_id);
        ingest_json_put_str(p, "item_type", type);
        ingest_json_put_str(p, "channel", channel);
        ingest_json_put_str(p, "ts", ts);
        ingest_json_put_str(p, "file", file);
        ingest_json_put_str(p, "user", user);
        ingest_json_put_str(p, "user_name", user_name);
        ingest_json_put_str(p, "reaction", reaction);
        ingest_json_copy(p, "item_user", ev, "item_user");
        ingest_json_put_str(p, "event_ts", event_ts);
    }
    char key[KEY_LEN * 2];
    snprintf(key, sizeof key, "reaction_added:%s:%s:%s:%s", item, user, reaction, event_ts);
    return emit(st, run, "reaction_added", key, time_of(st, o, event_ts, NULL), p, "reaction", item,
                o);
}

/* ------------------------------------------------------------- channels */

int sl_emit_channel(slack_state *st, ingest_run *run, json_object *ch, const sl_origin *o)
{
    const char *id = ingest_json_str(ch, "id");
    if (!id)
        return INGEST_EINVAL;
    int64_t created = 0;
    ingest_json_int64(ch, "created", &created);
    json_object *p = json_object_new_object();
    if (p) {
        ingest_json_put_str(p, "team_id", o->team_id);
        ingest_json_put_str(p, "id", id);
        ingest_json_copy(p, "name", ch, "name");
        ingest_json_copy(p, "creator", ch, "creator");
        ingest_json_copy(p, "created", ch, "created");
        json_object_object_add(p, "is_private",
                               json_object_new_boolean(ingest_json_true(ch, "is_private")));
    }
    char key[KEY_LEN];
    snprintf(key, sizeof key, "channel_created:%s", id);
    int64_t at = created > 0 ? created * 1000000 : time_of(st, o, NULL, NULL);
    return emit(st, run, "channel_created", key, at, p, "channel", id, o);
}

/* ------------------------------------------------- commands, interactions */

int sl_emit_command(slack_state *st, ingest_run *run, json_object *form, const sl_origin *o)
{
    static const char *const fields[] = {"command",
                                         "text",
                                         "user_id",
                                         "user_name",
                                         "channel_id",
                                         "channel_name",
                                         "team_id",
                                         "team_domain",
                                         "enterprise_id",
                                         "api_app_id",
                                         "trigger_id",
                                         "response_url",
                                         "is_enterprise_install"};
    const char *command = ingest_json_str(form, "command");
    if (!command)
        return INGEST_EINVAL;
    json_object *p = json_object_new_object();
    for (size_t i = 0; p && i < sizeof fields / sizeof fields[0]; i++)
        ingest_json_copy(p, fields[i], form, fields[i]);
    const char *trigger = ingest_json_str(form, "trigger_id");
    char key[KEY_LEN];
    snprintf(key, sizeof key, "slash_command:%s", trigger ? trigger : o->delivery);
    return emit(st, run, "slash_command", key, time_of(st, o, NULL, NULL), p, "command", command,
                o);
}

/* action_id, block_id, type, value (or selected_option.value) per action. */
static json_object *actions_of(json_object *payload)
{
    json_object *list = ingest_json_get(payload, "actions");
    json_object *out = json_object_new_array();
    for (size_t i = 0;
         out && json_object_is_type(list, json_type_array) && i < json_object_array_length(list);
         i++) {
        json_object *a = json_object_array_get_idx(list, i), *o = json_object_new_object();
        if (!o)
            break;
        ingest_json_copy(o, "action_id", a, "action_id");
        ingest_json_copy(o, "block_id", a, "block_id");
        ingest_json_copy(o, "type", a, "type");
        ingest_json_copy(o, "value", a,
                         ingest_json_get(a, "value") ? "value" : "selected_option.value");
        ingest_json_copy(o, "action_ts", a, "action_ts");
        json_object_array_add(out, o);
    }
    return out;
}

int sl_emit_interaction(slack_state *st, ingest_run *run, json_object *pl, const sl_origin *o)
{
    const char *type = ingest_json_str(pl, "type");
    if (!type)
        return INGEST_EINVAL;
    json_object *p = json_object_new_object();
    if (p) {
        ingest_json_put_str(p, "type", type);
        ingest_json_copy(p, "team_id", pl, "team.id");
        ingest_json_copy(p, "user_id", pl, "user.id");
        ingest_json_copy(p, "user_name", pl, "user.username");
        ingest_json_copy(p, "channel_id", pl,
                         ingest_json_get(pl, "channel.id") ? "channel.id" : "container.channel_id");
        ingest_json_copy(p, "message_ts", pl, "container.message_ts");
        ingest_json_copy(p, "callback_id", pl,
                         ingest_json_get(pl, "callback_id") ? "callback_id" : "view.callback_id");
        ingest_json_copy(p, "trigger_id", pl, "trigger_id");
        ingest_json_copy(p, "response_url", pl, "response_url");
        json_object_object_add(p, "actions", actions_of(pl));
    }
    const char *trigger = ingest_json_str(pl, "trigger_id");
    char key[KEY_LEN];
    snprintf(key, sizeof key, "interaction:%s:%s", type, trigger ? trigger : o->delivery);
    const char *action_ts = ingest_json_str(pl, "actions.0.action_ts");
    if (!action_ts)
        action_ts = ingest_json_str(pl, "action_ts");
    return emit(st, run, "interaction", key, time_of(st, o, action_ts, NULL), p, "interaction",
                type, o);
}

int sl_emit_other(slack_state *st, ingest_run *run, const char *type, json_object *ev,
                  const char *key, const sl_origin *o)
{
    char kind[128], k[KEY_LEN];
    snprintf(kind, sizeof kind, "slack.%.100s", type);
    snprintf(k, sizeof k, "%s:%s", kind, key);
    json_object *p = json_object_new_object();
    if (p) {
        ingest_json_put_str(p, "team_id", o->team_id);
        ingest_json_put_str(p, "type", type);
        json_object_object_add(p, "event", json_object_get(ev));
    }
    return emit(st, run, kind, k,
                time_of(st, o, ingest_json_str(ev, "event_ts"), ingest_json_str(ev, "ts")), p,
                "event", type, o);
}
