/*
 * jira_webhook.c — Jira webhooks to signals.
 *
 * The host has verified X-Hub-Signature (sha256=<hex HMAC-SHA256 of the
 * body with the webhook's secret>) and stored the delivery under
 * X-Atlassian-Webhook-Identifier, which stays the same across Jira's
 * retries. The body says what happened in webhookEvent:
 *
 *   jira:issue_created   issue_created
 *   jira:issue_updated   issue_updated; issue_transitioned (+ issue_closed
 *                        when the new status is in the "done" category) when
 *                        the changelog moves the status; comment_added when
 *                        the update was a comment (issue_event_type_name
 *                        "issue_commented" with a comment)
 *   jira:issue_deleted   issue_deleted
 *   comment_created      comment_added
 *   comment_updated      comment_updated
 *   anything else        jira.<webhookEvent>, keyed by the delivery
 *
 * through jira_normalize.c, as sync does, so the keys match. Webhook bodies
 * carry the issue in the REST v2 shape (description and comment bodies as
 * wiki-markup strings rather than ADF): those are kept as they are.
 * A delivery about a project the connection syncs asks for an incremental
 * sync, which heals anything a lost delivery would have told us.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jira.h"

static int is(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static int on_issue_updated(jira_state *st, ingest_run *run, json_object *ev, const jira_origin *o)
{
    json_object *issue = ingest_json_get(ev, "issue");
    json_object *changelog = ingest_json_get(ev, "changelog");
    json_object *histories = json_object_new_array();
    if (!histories)
        return INGEST_ENOMEM;
    if (json_object_is_type(changelog, json_type_object))
        json_object_array_add(histories, json_object_get(changelog));
    int rc = jira_emit_issue(st, run, issue, histories, NULL,
                             JIRA_EMIT_UPDATED | JIRA_EMIT_TRANSITIONS, o);
    json_object_put(histories);
    json_object *comment = ingest_json_get(ev, "comment");
    if (rc == INGEST_OK && comment &&
        is(ingest_json_str(ev, "issue_event_type_name"), "issue_commented"))
        rc = jira_emit_comment(st, run, issue, comment, "comment_added", o);
    return rc;
}

static int dispatch(jira_state *st, ingest_run *run, json_object *ev, const jira_origin *o)
{
    const char *event = o->event;
    json_object *issue = ingest_json_get(ev, "issue");
    json_object *comment = ingest_json_get(ev, "comment");
    if (is(event, "jira:issue_created"))
        return jira_emit_issue(st, run, issue, NULL, NULL, JIRA_EMIT_CREATED, o);
    if (is(event, "jira:issue_updated"))
        return on_issue_updated(st, run, ev, o);
    if (is(event, "jira:issue_deleted")) {
        int64_t ms = 0;
        return jira_emit_deleted(st, run, issue,
                                 ingest_json_int64(ev, "timestamp", &ms) ? ms * 1000 : 0, o);
    }
    if (is(event, "comment_created") && comment)
        return jira_emit_comment(st, run, issue, comment, "comment_added", o);
    if (is(event, "comment_updated") && comment)
        return jira_emit_comment(st, run, issue, comment, "comment_updated", o);
    return INGEST_EINVAL; /* jira.<event> */
}

/* A change in a project the connection syncs: ask for an incremental sync
 * (the host queues at most one per stream). An event that names no
 * project (some comment bodies carry only the issue's id) asks too. */
static void heal(jira_state *st, ingest_run *run, const ingest_delivery *d,
                 const jira_settings *set, json_object *ev)
{
    const char *project = ingest_json_str(ev, "issue.fields.project.key");
    if (!st->conf->sync_on_webhook || !d->connection_id || !set ||
        !INGEST_API_HAS(st->api, request_sync) || !ingest_json_get(ev, "issue") ||
        (project && !jira_project_configured(set, project)))
        return;
    int rc = st->api->request_sync(run, JIRA_STREAM);
    st->api->log(st->ctx, run, rc == INGEST_OK ? INGEST_LOG_DEBUG : INGEST_LOG_WARN,
                 "delivery %s about %s: incremental sync requested (status %d)", d->delivery_id,
                 project ? project : "an issue", rc);
}

/* The connection's settings and field names, for URLs and custom field
 * names; a delivery is processed without them when they cannot be read. */
static int context_of(jira_state *st, ingest_run *run, const ingest_delivery *d, jira_settings *set,
                      jira_origin *o)
{
    char err[256];
    if (!d->connection_id || jira_settings_load(st, run, 1, set, err, sizeof err) != INGEST_OK)
        return 0;
    o->site_url = set->site_url;
    int rc = jira_meta_get(st, run, d->connection_id, set, 0, &o->fields, &o->statuses);
    if (rc != INGEST_OK)
        st->api->log(st->ctx, run, INGEST_LOG_WARN,
                     "delivery %s: field names unavailable (status %d); custom fields keep "
                     "their ids",
                     d->delivery_id, rc);
    return 1;
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

int jira_handle_webhook(ingest_run *run, void *state, const ingest_delivery *d)
{
    jira_state *st = state;
    st->api->metric_add(st->m_webhooks, 1);
    char *text = body_text(d);
    json_object *ev = text ? ingest_json_parse(text, d->body_len) : NULL;
    const char *event = ingest_json_str(ev, "webhookEvent");
    if (!json_object_is_type(ev, json_type_object) || !event) {
        st->api->log(st->ctx, run, INGEST_LOG_ERROR,
                     "delivery %s: not a Jira event (no JSON object with webhookEvent); kept in "
                     "the inbox",
                     d->delivery_id);
        json_object_put(ev);
        free(text);
        return INGEST_EINVAL; /* retried, then dead-lettered: visible, replayable */
    }
    jira_settings set = {0};
    jira_origin o = {.via = "webhook",
                     .event = event,
                     .delivery = d->delivery_id,
                     .raw_text = text,
                     .fallback_us = d->received_at_us};
    int64_t ms = 0;
    if (ingest_json_int64(ev, "timestamp", &ms) && ms > 0)
        o.event_us = ms * 1000;
    int have_set = context_of(st, run, d, &set, &o);
    int rc = dispatch(st, run, ev, &o);
    if (rc == INGEST_EINVAL)
        rc = jira_emit_other(st, run, ev, &o);
    if (rc == INGEST_OK)
        heal(st, run, d, have_set ? &set : NULL, ev);
    json_object_put(o.fields);
    json_object_put(o.statuses);
    if (have_set)
        jira_settings_free(&set);
    json_object_put(ev);
    free(text);
    return rc;
}
