/*
 * github.h — what the GitHub connector's files share.
 *
 *   github.c            descriptor, config schema and validation, init,
 *                       health, check_connection
 *   github_sync.c       the four streams: which URLs, in which order, with
 *                       which cursor
 *   github_normalize.c  GitHub records -> signals (kinds, dedupe keys,
 *                       normalized payloads); used by sync and webhooks so
 *                       both produce the same signal for the same event
 *   github_webhook.c    X-GitHub-Event dispatch, request_sync on changes
 *   github_auth.c       GitHub App installation tokens (mint_token)
 *   github_settings.c   per-run settings: the plugin group's values as
 *                       defaults, overridden by the connection's config
 *
 * Generic pieces (JSON paths, signal emission, Link/ETag pager, timestamp
 * cursors) live in the SDK helpers, ingest/helpers.h.
 */
#ifndef INGEST_GITHUB_H
#define INGEST_GITHUB_H

#include <json-c/json.h>
#include <pthread.h>
#include <stdint.h>

#include "ingest/helpers.h"
#include "ingest/plugin.h"

#define GH_NAME "github"
#define GH_DEFAULT_BASE "https://api.github.com"
#define GH_API_VERSION "2022-11-28"
#define GH_ACCEPT "application/vnd.github+json"
#define GH_PER_PAGE "100"

/* The streams, in descriptor order; bit i of github_state.streams. */
typedef enum gh_stream {
    GH_ISSUES = 0,
    GH_PULL_REQUESTS,
    GH_ISSUE_COMMENTS,
    GH_PR_REVIEWS,
    GH_N_STREAMS
} gh_stream;

extern const char *const gh_stream_names[GH_N_STREAMS];

/* plugins.github { ... } as the host validated it: the daemon-wide
 * defaults of repositories, organizations, api_base_url, streams and
 * include_archived, which each connection's config may override. Strings and lists are
 * host-owned and valid until shutdown() returns. */
typedef struct github_conf {
    ingest_string_list repositories;  /* "owner/name" */
    ingest_string_list organizations; /* every repository of these */
    const char *api_base_url;         /* https://api.github.com or GHES .../api/v3 */
    ingest_string_list streams;       /* subset of gh_stream_names */
    int sync_on_webhook;              /* webhooks ask for an incremental sync */
    int include_archived;             /* organization repositories that are archived */
    int64_t max_pages;                /* safety stop per listing walk */
} github_conf;

/* One instance's state. Everything is set in init() and read-only after,
 * except `health`, which guards itself. */
typedef struct github_state {
    const ingest_host_api *api; /* valid until unload */
    ingest_ctx *ctx;            /* valid until shutdown() returns */
    const github_conf *conf;
    char *base;       /* default api_base_url without a trailing '/', malloc'd */
    unsigned streams; /* default streams, bit per gh_stream */
    int app_auth;     /* the host signs JWTs: GitHub App connections work */
    ingest_metric *m_requests, *m_not_modified, *m_signals, *m_webhooks, *m_repos_skipped;
    ingest_health_status health;
} github_state;

/* The standard request headers (Accept, X-GitHub-Api-Version). */
extern const ingest_header gh_headers[2];

/* --- github_settings.c ------------------------------------------------ */

/* An owned list of strings. */
typedef struct gh_list {
    char **items;
    size_t count;
} gh_list;

/* What one job, delivery or credential check runs with: the group's values,
 * overridden key by key by the run's connection's config (repositories and
 * organizations as one: naming either replaces both). Owned. */
typedef struct gh_settings {
    gh_list repositories;  /* "owner/name" */
    gh_list organizations; /* every repository of these */
    char *base;            /* api_base_url without a trailing '/' */
    unsigned streams;      /* bit per gh_stream */
    int include_archived;  /* archived organization repositories too */
} gh_settings;

/* Read the run's connection's config (once: it blocks on the store) over
 * the group's defaults; a run without a connection gets the defaults.
 * INGEST_EINVAL with `err` naming the key when a setting is invalid (no
 * secrets in it); *out is then empty. gh_settings_free releases *out. */
int gh_settings_load(github_state *st, ingest_run *run, gh_settings *out, char *err, size_t len);
void gh_settings_free(gh_settings *s);

/* Is `full_name` ("Owner/Name", any case) covered by the settings (listed
 * in repositories, or its owner in organizations)? */
int gh_repo_configured(const gh_settings *s, const char *full_name);

/* Validators shared by the group's check and the connection's settings. */
int gh_valid_repo(const char *full);   /* owner [A-Za-z0-9-]{1,39} / name [A-Za-z0-9._-]{1,100} */
int gh_valid_org(const char *login);   /* [A-Za-z0-9-]{1,39} */
int gh_stream_index(const char *name); /* gh_stream, or -1 */
/* An http(s) URL without its trailing '/' into *out (malloc'd). */
int gh_base_url(const char *url, char **out);

/* --- github.c --------------------------------------------------------- */

/* Record a problem for health() (DEGRADED with this text) and log it. */

/* --- github_sync.c ---------------------------------------------------- */
int gh_sync(ingest_run *run, void *state, const ingest_job *job);

/* --- github_webhook.c ------------------------------------------------- */
int gh_handle_webhook(ingest_run *run, void *state, const ingest_delivery *delivery);

/* --- github_auth.c ---------------------------------------------------- */
int gh_mint_token(ingest_run *run, void *state);
int gh_check_connection(ingest_run *run, void *state);

/* --- github_normalize.c ----------------------------------------------- */

/* Where a record came from, for provenance. All borrowed. */
typedef struct gh_origin {
    const char *via;      /* "webhook" or "sync" */
    const char *event;    /* webhook: X-GitHub-Event */
    const char *action;   /* webhook: the payload's action, or NULL */
    const char *delivery; /* webhook: X-GitHub-Delivery (the idempotency key) */
    const char *stream;   /* sync: the stream */
    json_object *raw;     /* the record as read (sync) ... */
    const char *raw_text; /* ... or the delivery body (webhook), NUL-terminated */
    int64_t fallback_us;  /* occurred_at when the record has no usable time */
} gh_origin;

/* The repository "owner/name" from an API URL ".../repos/owner/name/...",
 * into out. Returns 0, or -1 when the URL has no such part. */
int gh_repo_from_url(const char *url, char *out, size_t len);

/* Signals of one record. `repo` is "owner/name". `only` names one kind to
 * emit (webhooks: the action says what happened); NULL emits every kind the
 * record's state implies (sync: opened, then merged or closed). */
int gh_emit_pull_request(github_state *st, ingest_run *run, json_object *pr, const char *repo,
                         const char *only, const gh_origin *o);
int gh_emit_issue(github_state *st, ingest_run *run, json_object *issue, const char *repo,
                  const char *only, const gh_origin *o);
/* `issue` may be NULL (sync: comments come without their issue). */
int gh_emit_comment(github_state *st, ingest_run *run, json_object *comment, json_object *issue,
                    const char *repo, const gh_origin *o);
/* `pr` gives number and title. */
int gh_emit_review(github_state *st, ingest_run *run, json_object *review, json_object *pr,
                   const char *repo, const gh_origin *o);
int gh_emit_push(github_state *st, ingest_run *run, json_object *event, const gh_origin *o);
/* github.<event> for everything without a stable kind; keyed by delivery. */
int gh_emit_other(github_state *st, ingest_run *run, json_object *event, const char *delivery_id,
                  const gh_origin *o);

#endif
