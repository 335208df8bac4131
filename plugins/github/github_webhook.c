/*
 * github_webhook.c — one verified, stored delivery to signals.
 *
 * The host checked X-Hub-Signature-256 (declared in the descriptor) and
 * deduplicated by X-GitHub-Delivery before we run. Here: X-GitHub-Event and
 * the payload's action pick a stable kind; everything without one is kept
 * as github.<event> (never dropped); a change to a repository of the
 * connection's settings asks for an incremental sync of the matching
 * stream, so a delivery GitHub never sent (or we missed) is healed by the
 * sync. Events about other repositories are stored all the same.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "github.h"

/* Which stream a delivery of `event` invalidates (-1: none). */
static int stream_of(const char *event)
{
    static const struct {
        const char *event;
        gh_stream stream;
    } map[] = {
        {"pull_request", GH_PULL_REQUESTS},
        {"pull_request_review", GH_PR_REVIEWS},
        {"issues", GH_ISSUES},
        {"issue_comment", GH_ISSUE_COMMENTS},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(event, map[i].event) == 0)
            return (int)map[i].stream;
    return -1;
}

static int is(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* The stable kind of (event, action), or NULL. */
static const char *kind_of(const char *event, const char *action, json_object *ev)
{
    if (is(event, "pull_request")) {
        if (is(action, "opened"))
            return "pr_opened";
        if (is(action, "reopened"))
            return "pr_reopened";
        if (is(action, "closed")) /* "If merged is true, the pull request was merged" */
            return ingest_json_true(ev, "pull_request.merged") ||
                           ingest_json_get(ev, "pull_request.merged_at")
                       ? "pr_merged"
                       : "pr_closed";
    } else if (is(event, "pull_request_review")) {
        if (is(action, "submitted"))
            return "pr_review_submitted";
    } else if (is(event, "issues")) {
        if (is(action, "opened"))
            return "issue_opened";
        if (is(action, "closed"))
            return "issue_closed";
        if (is(action, "reopened"))
            return "issue_reopened";
    } else if (is(event, "issue_comment")) {
        if (is(action, "created"))
            return "comment_added";
    } else if (is(event, "push")) {
        return "push";
    }
    return NULL;
}

static int emit_kind(github_state *st, ingest_run *run, const char *kind, json_object *ev,
                     const gh_origin *o)
{
    const char *repo = ingest_json_str(ev, "repository.full_name");
    if (strncmp(kind, "pr_review", 9) == 0)
        return gh_emit_review(st, run, ingest_json_get(ev, "review"),
                              ingest_json_get(ev, "pull_request"), repo, o);
    if (strncmp(kind, "pr_", 3) == 0)
        return gh_emit_pull_request(st, run, ingest_json_get(ev, "pull_request"), repo, kind, o);
    if (strncmp(kind, "issue_", 6) == 0)
        return gh_emit_issue(st, run, ingest_json_get(ev, "issue"), repo, kind, o);
    if (strcmp(kind, "comment_added") == 0)
        return gh_emit_comment(st, run, ingest_json_get(ev, "comment"),
                               ingest_json_get(ev, "issue"), repo, o);
    return gh_emit_push(st, run, ev, o);
}

/* Is `repo` one of the connection's, and `stream` one it syncs? Reads the
 * connection's settings (once per delivery); invalid settings: no. */
static int connection_syncs(github_state *st, ingest_run *run, const ingest_delivery *d,
                            const char *repo, int stream)
{
    gh_settings set;
    char err[256];
    if (gh_settings_load(st, run, &set, err, sizeof err) != INGEST_OK) {
        st->api->log(st->ctx, run, INGEST_LOG_ERROR,
                     "delivery %s: %s; no sync requested (the event is stored)", d->delivery_id,
                     err);
        return 0;
    }
    int yes = (set.streams & (1u << stream)) && gh_repo_configured(&set, repo);
    gh_settings_free(&set);
    return yes;
}

/* A change to one of the connection's repositories: ask for an incremental
 * sync of the stream it touches (the host queues at most one job per
 * stream). */
static void heal(github_state *st, ingest_run *run, const ingest_delivery *d, const char *event,
                 json_object *ev)
{
    int stream = stream_of(event);
    const char *repo = ingest_json_str(ev, "repository.full_name");
    if (stream < 0 || !st->conf->sync_on_webhook || !d->connection_id || !repo ||
        !INGEST_API_HAS(st->api, request_sync) || !connection_syncs(st, run, d, repo, stream))
        return;
    int rc = st->api->request_sync(run, gh_stream_names[stream]);
    st->api->log(st->ctx, run, rc == INGEST_OK ? INGEST_LOG_DEBUG : INGEST_LOG_WARN,
                 "%s event on %s: incremental %s sync requested (status %d)", event, repo,
                 gh_stream_names[stream], rc);
}

/* The event as JSON text: the body itself, or the `payload` field of a
 * form-encoded delivery (a hook with content type "form"). malloc'd. */
static char *event_text(const ingest_delivery *d)
{
    const char *ct = d->content_type ? d->content_type : "";
    if (strncmp(ct, "application/x-www-form-urlencoded", 33) == 0)
        return ingest_form_value(d->body, d->body_len, "payload");
    char *text = malloc(d->body_len + 1);
    if (text) {
        memcpy(text, d->body, d->body_len);
        text[d->body_len] = '\0';
    }
    return text;
}

int gh_handle_webhook(ingest_run *run, void *state, const ingest_delivery *d)
{
    github_state *st = state;
    const ingest_host_api *api = st->api;
    api->metric_add(st->m_webhooks, 1);
    const char *event = ingest_delivery_header(d, "X-GitHub-Event");
    char *text = event_text(d);
    json_object *ev = text ? ingest_json_parse(text, strlen(text)) : NULL;
    if (!json_object_is_type(ev, json_type_object)) {
        api->log(st->ctx, run, INGEST_LOG_ERROR,
                 "delivery %s (%s): the body is not a JSON object; kept in the inbox",
                 d->delivery_id, event ? event : "no X-GitHub-Event");
        json_object_put(ev);
        free(text);
        return INGEST_EINVAL; /* retried, then dead-lettered: visible, replayable */
    }
    const char *action = ingest_json_str(ev, "action");
    gh_origin o = {.via = "webhook",
                   .event = event ? event : "unknown",
                   .action = action,
                   .delivery = d->delivery_id,
                   .raw_text = text,
                   .fallback_us = d->received_at_us};
    int rc = INGEST_OK;
    if (is(event, "ping")) {
        /* GitHub's hello when a hook is created: stored and acknowledged
         * (that is the answer GitHub waits for); no signal. */
        int64_t hook = 0;
        ingest_json_int64(ev, "hook_id", &hook);
        api->log(st->ctx, run, INGEST_LOG_INFO, "ping from hook %" PRId64 ": %.200s", hook,
                 ingest_json_str(ev, "zen") ? ingest_json_str(ev, "zen") : "");
    } else {
        const char *kind = kind_of(event, action, ev);
        rc = kind ? emit_kind(st, run, kind, ev, &o) : INGEST_EINVAL;
        if (kind && rc == INGEST_EINVAL)
            api->log(st->ctx, run, INGEST_LOG_WARN,
                     "delivery %s: %s.%s lacks the fields of %s; stored as github.%s",
                     d->delivery_id, o.event, action ? action : "-", kind, o.event);
        if (rc == INGEST_EINVAL)
            rc = gh_emit_other(st, run, ev, d->delivery_id, &o);
        if (rc == INGEST_OK)
            heal(st, run, d, o.event, ev);
    }
    json_object_put(ev);
    free(text);
    return rc;
}
