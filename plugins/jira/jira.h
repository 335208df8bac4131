/*
 * jira.h — what the Jira Cloud connector's files share.
 *
 *   jira.c            descriptor, config schema, init, health
 *   jira_settings.c   per-run settings: the plugin group's values as
 *                     defaults, overridden by the connection's config; the
 *                     REST base of the connection (OAuth gateway or site)
 *   jira_auth.c       on_authorized (accessible-resources -> cloud id) and
 *                     check_connection
 *   jira_fields.c     custom field discovery (/rest/api/3/field), status
 *                     categories (/rest/api/3/status), cached per connection
 *   jira_sync.c       the issues stream: JQL search with nextPageToken,
 *                     comments and changelog beyond the embedded pages
 *   jira_normalize.c  issues, transitions and comments -> signals, shared by
 *                     sync and webhooks (same kinds, same dedupe keys)
 *   jira_adf.c        Atlassian Document Format -> Markdown
 *   jira_webhook.c    webhookEvent dispatch, request_sync for the project
 */
#ifndef INGEST_JIRA_H
#define INGEST_JIRA_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdint.h>

#include "ingest/helpers.h"
#include "ingest/plugin.h"

#define JIRA_NAME "jira"
#define JIRA_DEFAULT_API_BASE "https://api.atlassian.com"
#define JIRA_STREAM "issues"
/* The cursor overlaps by this much: JQL compares whole minutes. */
#define JIRA_OVERLAP_US ((int64_t)60 * 1000000)

/* plugins.jira { ... } as the host validated it. Strings are host-owned
 * and valid until shutdown() returns. */
typedef struct jira_conf {
    const char *api_base_url;    /* https://api.atlassian.com: accessible-resources, /ex/jira */
    const char *site_url;        /* default site for basic-auth connections; "" = none */
    ingest_string_list projects; /* project keys to sync; empty = every project */
    int64_t page_size;           /* maxResults of a search page */
    int64_t backfill_days;       /* no cursor: this far back; 0 = the host's backfill_days */
    int sync_on_webhook;         /* a webhook asks for an incremental sync */
    int64_t max_pages;           /* safety stop per sync; 0 = none */
    int64_t field_cache_s;       /* how long a connection's field list is reused */
} jira_conf;

/* A connection's custom field names and status categories, cached. */
typedef struct jira_meta jira_meta;

/* One instance's state: read-only after init, except `health` (which
 * guards itself) and the metadata cache, which `lock` guards. */
typedef struct jira_state {
    const ingest_host_api *api;
    ingest_ctx *ctx;
    const jira_conf *conf;
    char *api_base; /* conf->api_base_url without a trailing '/', malloc'd */
    ingest_metric *m_requests, *m_signals, *m_webhooks;
    pthread_mutex_t lock;
    ingest_health_status health;
    jira_meta *meta; /* guarded by lock */
} jira_state;

/* --- jira_settings.c -------------------------------------------------- */

/* What one job or delivery runs with. Owned; jira_settings_free. */
typedef struct jira_settings {
    char *site_url;  /* https://x.atlassian.net, or NULL */
    char *cloud_id;  /* OAuth connections, from on_authorized; or NULL */
    char *rest_base; /* where /rest/api/3 lives: gateway or site */
    char **projects; /* project keys */
    size_t n_projects;
    char *jql;             /* extra JQL, AND-ed; or NULL */
    int64_t backfill_days; /* 0 = the job's backfill_since_us */
} jira_settings;

/* Read the run's connection config over the group's defaults. INGEST_EINVAL
 * with `err` naming the key when a setting is invalid or the connection has
 * neither cloud_id nor site_url (when need_base). */
int jira_settings_load(jira_state *st, ingest_run *run, int need_base, jira_settings *out,
                       char *err, size_t len);
void jira_settings_free(jira_settings *s);
int jira_project_configured(const jira_settings *s, const char *key);
/* An http(s) URL without its trailing '/' into *out (malloc'd). */
int jira_base_url(const char *url, char **out);

/* --- HTTP (jira_sync.c) ------------------------------------------------ */

/* GET `url` with the connection's credentials; a 2xx JSON body into *body
 * (caller json_object_put). Non-2xx: the status mapped, logged with the
 * Atlassian error text. INGEST_ERATELIMITED keeps the host's wait. */
int jira_get_json(jira_state *st, ingest_run *run, const char *url, json_object **body);
/* "errorMessages[0]" or "errors.*" of an Atlassian error body, or the helper's text. */
void jira_describe(const ingest_http_response *resp, char *out, size_t len);

/* --- jira_auth.c ------------------------------------------------------ */
int jira_on_authorized(ingest_run *run, void *state, const char *token_reply_json);
int jira_check_connection(ingest_run *run, void *state);

/* --- jira_fields.c ---------------------------------------------------- */

/* The connection's custom field id -> name map and status id -> category
 * key map: new references the caller releases with json_object_put (both
 * NULL on failure, or INGEST_ENOTFOUND without a connection). Cached per
 * connection for conf->field_cache_s; `refresh` forces a read. */
int jira_meta_get(jira_state *st, ingest_run *run, const char *connection_id,
                  const jira_settings *set, int refresh, json_object **fields,
                  json_object **statuses);
void jira_meta_free_all(jira_state *st);

/* --- jira_sync.c ------------------------------------------------------ */
int jira_sync(ingest_run *run, void *state, const ingest_job *job);

/* --- jira_webhook.c --------------------------------------------------- */
int jira_handle_webhook(ingest_run *run, void *state, const ingest_delivery *delivery);

/* --- jira_adf.c ------------------------------------------------------- */

/* Markdown of an ADF document (or any ADF node) as a malloc'd string; a
 * JSON string (a v2 / webhook body in wiki markup or plain text) is copied
 * as it is; NULL for NULL/JSON null or on allocation failure. */
char *jira_adf_to_markdown(json_object *adf);

/* --- jira_normalize.c ------------------------------------------------- */

/* Where a record came from, for provenance. All borrowed. */
typedef struct jira_origin {
    const char *via;       /* "sync" or "webhook" */
    const char *event;     /* webhook: webhookEvent */
    const char *delivery;  /* webhook: the idempotency key */
    const char *raw_text;  /* webhook: the delivery body (NUL-terminated) */
    const char *site_url;  /* for browse URLs; may be NULL */
    json_object *fields;   /* field id -> name; may be NULL */
    json_object *statuses; /* status id -> category key; may be NULL */
    int64_t fallback_us;   /* occurred_at when a record has no usable time */
    int64_t event_us;      /* webhook: the body's timestamp; dates an issue_updated whose issue has
                              no fields.updated (abbreviated bodies) */
} jira_origin;

/* Which signals a record gives. */
enum {
    JIRA_EMIT_CREATED = 1u << 0,     /* issue_created */
    JIRA_EMIT_UPDATED = 1u << 1,     /* issue_updated at fields.updated */
    JIRA_EMIT_TRANSITIONS = 1u << 2, /* issue_transitioned / issue_closed from the changelog */
    JIRA_EMIT_COMMENTS = 1u << 3,    /* comment_added (and comment_updated) */
};

/* The signals of one issue (a search result or a webhook's issue). The
 * changelog histories are `histories` (an array; NULL = the issue's own
 * changelog.histories), comments `comments` (NULL = fields.comment.comments). */
int jira_emit_issue(jira_state *st, ingest_run *run, json_object *issue, json_object *histories,
                    json_object *comments, unsigned what, const jira_origin *o);
/* One changelog history of `issue` (webhook: the delivery's changelog). */
int jira_emit_history(jira_state *st, ingest_run *run, json_object *issue, json_object *history,
                      const jira_origin *o);
/* One comment of `issue` (`issue` may carry only id/key/fields.summary).
 * kind: "comment_added" or "comment_updated". */
int jira_emit_comment(jira_state *st, ingest_run *run, json_object *issue, json_object *comment,
                      const char *kind, const jira_origin *o);
int jira_emit_deleted(jira_state *st, ingest_run *run, json_object *issue, int64_t at_us,
                      const jira_origin *o);
/* jira.<event> for events without a stable kind, keyed by delivery. */
int jira_emit_other(jira_state *st, ingest_run *run, json_object *event, const jira_origin *o);

/* Jira times ("2024-05-01T10:00:00.000+1000") in unix µs; 0 when absent
 * or malformed. */
int64_t jira_time(const jira_state *st, json_object *rec, const char *path);
/* Unix µs as "YYYY-MM-DDTHH:MM:SS.mmmZ" (the time part of dedupe keys). */
void jira_key_time(int64_t us, char out[32]);

#endif
