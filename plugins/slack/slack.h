/*
 * slack.h — what the Slack connector's files share.
 *
 *   slack.c            descriptor, config schema, init, health
 *   slack_settings.c   per-run settings: the plugin group's values as
 *                      defaults, overridden by the connection's config
 *   slack_api.c        one Web API call: URL, token, per-method rate bucket,
 *                      Slack's {"ok": false, "error": ...} answers
 *   slack_sync.c       the channels and messages streams (history, replies)
 *   slack_users.c      user id -> name, cached per workspace
 *   slack_normalize.c  Slack records -> signals, shared by sync and the
 *                      Events API so both give one kind and key per event
 *   slack_webhook.c    url_verification, event_callback dispatch, slash
 *                      commands and interactive payloads
 *   slack_auth.c       on_authorized (oauth.v2.access reply), auth.test
 */
#ifndef INGEST_SLACK_H
#define INGEST_SLACK_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdint.h>

#include "ingest/helpers.h"
#include "ingest/plugin.h"

#define SL_NAME "slack"
#define SL_DEFAULT_BASE "https://slack.com/api"

/* The streams, in descriptor order; bit i of a stream set. */
typedef enum sl_stream { SL_CHANNELS = 0, SL_MESSAGES, SL_N_STREAMS } sl_stream;

extern const char *const sl_stream_names[SL_N_STREAMS];

/* plugins.slack { ... } as the host validated it: daemon-wide defaults a
 * connection's config may override (see slack_settings.c). Host-owned,
 * valid until shutdown() returns. */
typedef struct slack_conf {
    const char *api_base_url;         /* https://slack.com/api */
    ingest_string_list channel_types; /* conversations.list types */
    ingest_string_list streams;       /* subset of sl_stream_names */
    int include_threads;              /* conversations.replies for threads */
    int resolve_users;                /* users.info names in payloads */
    int64_t history_per_minute;       /* conversations.history/replies quota */
    int64_t page_limit;               /* `limit` per page */
    int64_t max_pages;                /* safety stop per walk, 0 = none */
    int64_t user_cache_ttl_s;         /* how long a resolved name is kept */
    int sync_on_webhook;              /* app_rate_limited asks for a sync */
} slack_conf;

typedef struct sl_user_cache sl_user_cache;

/* One instance. Set in init(), read-only after, except `health` and the
 * user cache, which guard themselves. */
typedef struct slack_state {
    const ingest_host_api *api;
    ingest_ctx *ctx;
    const slack_conf *conf;
    char *base;       /* default api_base_url without trailing '/' */
    unsigned streams; /* default streams, bit per sl_stream */
    char *types;      /* default channel types, comma-joined */
    sl_user_cache *users;
    ingest_metric *m_calls, *m_errors, *m_signals, *m_webhooks, *m_user_lookups;
    ingest_health_status health;
} slack_state;

/* --- slack_settings.c ------------------------------------------------- */

typedef struct sl_list {
    char **items;
    size_t count;
} sl_list;

/* What one job or delivery runs with. Owned; sl_settings_free. */
typedef struct sl_settings {
    char *base;          /* api_base_url without trailing '/' */
    char *types;         /* "public_channel,private_channel" */
    sl_list channels;    /* channel ids to sync; empty = every member channel */
    unsigned streams;    /* bit per sl_stream */
    int include_threads; /* thread replies too */
    int user_token;      /* read with the user token (authed_user) */
    char team_id[32];    /* the workspace, from on_authorized / auth.test; "" */
} sl_settings;

int sl_settings_load(slack_state *st, ingest_run *run, sl_settings *out, char *err, size_t len);
void sl_settings_free(sl_settings *s);
int sl_stream_index(const char *name);
int sl_base_url(const char *url, char **out);
/* Comma-joined channel types, each one Slack knows. */
int sl_types_join(const ingest_string_list *types, char **out);

/* --- slack_api.c ------------------------------------------------------ */

/* Slack's documented per-method tiers (requests per minute). */
typedef enum sl_tier { SL_TIER1 = 1, SL_TIER2 = 20, SL_TIER3 = 50, SL_TIER4 = 100 } sl_tier;

/* One call to a Web API method. All borrowed. */
typedef struct sl_call {
    const char *method;  /* "conversations.history" (also the rate bucket) */
    const char *query;   /* "channel=C1&limit=200", already encoded; may be NULL */
    uint32_t per_minute; /* the method's quota; 0 = only what Slack says */
    int user_token;      /* authorize with the connection's user token */
} sl_call;

/* Perform `call` and parse the answer. On INGEST_OK *out is the body (a
 * JSON object with "ok": true; json_object_put it). Otherwise *out is NULL
 * and the status says why: INGEST_EAUTH (invalid_auth, token_revoked,
 * missing_scope, ...), INGEST_EAGAIN (token_expired: the token is marked
 * expired so the next attempt renews it), INGEST_ERATELIMITED,
 * INGEST_ENOTFOUND (channel_not_found, not_in_channel, user_not_found),
 * INGEST_EIO. `err` receives Slack's error code or a description (never a
 * token). */
int sl_api_call(slack_state *st, ingest_run *run, const sl_settings *set, const sl_call *call,
                json_object **out, char *err, size_t len);

/* --- slack_users.c ---------------------------------------------------- */
sl_user_cache *sl_users_new(void);
void sl_users_free(sl_user_cache *c);
/* The display name of `user` in the run's workspace (malloc'd) or NULL
 * when it cannot be resolved (unknown, no scope, rate limited: the caller
 * stores the id alone). Never fails the caller. */
char *sl_user_name(slack_state *st, ingest_run *run, const sl_settings *set, const char *user);

/* --- slack_normalize.c ------------------------------------------------ */

/* Where a record came from. All borrowed. */
typedef struct sl_origin {
    const char *via;        /* "webhook" or "sync" */
    const char *team_id;    /* the workspace, or NULL */
    const char *event_id;   /* Events API event_id */
    const char *event_type; /* Events API event.type (and subtype) */
    const char *delivery;   /* the host's delivery id */
    int64_t retry_num;      /* X-Slack-Retry-Num, -1 = first attempt */
    const char *retry_reason;
    const char *stream;   /* sync: stream */
    json_object *raw;     /* the record as read (sync) ... */
    const char *raw_text; /* ... or the delivery body, NUL-terminated */
    int64_t fallback_us;  /* when the record carries no time */
} sl_origin;

/* A Slack "ts" ("1355517523.000005") in unix µs; 0 when malformed. */
int64_t sl_ts_us(const char *ts);

/* The signal kinds of a message record `msg` in `channel`: message_posted,
 * and message_edited when it carries `edited`. `user_name` may be NULL.
 * Returns INGEST_EINVAL when it lacks channel or ts. */
int sl_emit_message(slack_state *st, ingest_run *run, json_object *msg, const char *channel,
                    const char *user_name, const sl_origin *o);
/* One kind for a message-like event: "message_posted", "message_edited"
 * (msg = the new message, edited_ts its edit time) or "app_mentioned". */
int sl_emit_message_kind(slack_state *st, ingest_run *run, const char *kind, json_object *msg,
                         const char *channel, const char *user_name, const sl_origin *o);
int sl_emit_deleted(slack_state *st, ingest_run *run, json_object *ev, const sl_origin *o);
int sl_emit_reaction(slack_state *st, ingest_run *run, json_object *ev, const char *user_name,
                     const sl_origin *o);
int sl_emit_channel(slack_state *st, ingest_run *run, json_object *channel, const sl_origin *o);
/* slack_command / slack_interaction from a form-encoded delivery. */
int sl_emit_command(slack_state *st, ingest_run *run, json_object *form, const sl_origin *o);
int sl_emit_interaction(slack_state *st, ingest_run *run, json_object *payload, const sl_origin *o);
/* slack.<type> for everything without a stable kind; keyed by `key`. */
int sl_emit_other(slack_state *st, ingest_run *run, const char *type, json_object *ev,
                  const char *key, const sl_origin *o);

/* --- slack_sync.c / slack_webhook.c / slack_auth.c -------------------- */
int sl_sync(ingest_run *run, void *state, const ingest_job *job);
int sl_handle_webhook(ingest_run *run, void *state, const ingest_delivery *delivery);
int sl_webhook_handshake(void *state, const ingest_delivery *delivery, ingest_webhook_reply *reply);
int sl_check_connection(ingest_run *run, void *state);
int sl_on_authorized(ingest_run *run, void *state, const char *token_reply_json);

#endif
