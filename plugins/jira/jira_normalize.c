/*
 * jira_normalize.c — Jira issues, transitions and comments to signals.
 *
 * Sync (a search result with its changelog and comments) and webhooks
 * (jira:issue_* and comment_* bodies) both come through here, so one event
 * has one kind and one dedupe key whichever way it arrived: a missed
 * delivery is healed by the next sync without a duplicate. Keys therefore
 * use Jira's ids and times, never delivery ids:
 *
 *   issue_created       issue_created:<issue id>
 *   issue_updated       issue_updated:<issue id>:<fields.updated, UTC ms>
 *   issue_transitioned  issue_transitioned:<issue id>:<changelog history id>
 *   issue_closed        issue_closed:<issue id>:<changelog history id>
 *   comment_added       comment_added:<comment id>
 *   comment_updated     comment_updated:<comment id>:<updated, UTC ms>
 *   issue_deleted       issue_deleted:<issue id>
 *   jira.<event>        jira:<delivery id>            (webhooks only)
 *
 * (A webhook's changelog.id is the id of the history the REST changelog
 * lists, which is what lets the two meet.) Times are compared as instants:
 * Jira writes them in the reading user's time zone, webhooks in the site's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jira.h"

/* ------------------------------------------------------------ utilities */

int64_t jira_time(const jira_state *st, json_object *rec, const char *path)
{
    int64_t us = 0;
    const char *text = ingest_json_str(rec, path);
    return text && st->api->parse_time(text, &us) == INGEST_OK ? us : 0;
}

void jira_key_time(int64_t us, char out[32])
{
    time_t s = (time_t)(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
    int ms = (int)((us - (int64_t)s * 1000000) / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm)) {
        snprintf(out, 32, "0");
        return;
    }
    char day[24];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", day, ms);
}

/* Markdown of an ADF (or plain text) value into o[key]. */
static void put_markdown(json_object *o, const char *key, json_object *adf)
{
    char *text = jira_adf_to_markdown(adf);
    ingest_json_put_str(o, key, text);
    free(text);
}

/* An id Jira sends as a string (or, in older bodies, a number). */
static void id_text(json_object *rec, const char *path, char out[32])
{
    int64_t n = 0;
    const char *s = ingest_json_str(rec, path);
    if (s && strlen(s) < 32)
        snprintf(out, 32, "%s", s);
    else if (ingest_json_int64(rec, path, &n))
        snprintf(out, 32, "%" PRId64, n);
    else
        out[0] = '\0';
}

static json_object *provenance(const jira_origin *o)
{
    json_object *p = json_object_new_object();
    if (!p)
        return NULL;
    ingest_json_put_str(p, "via", o->via);
    if (o->event)
        ingest_json_put_str(p, "webhook_event", o->event);
    if (o->delivery)
        ingest_json_put_str(p, "delivery", o->delivery);
    if (!o->event)
        ingest_json_put_str(p, "stream", JIRA_STREAM);
    return p;
}

/* Emit one signal and release `payload` (NULL: out of memory). */
static int emit(jira_state *st, ingest_run *run, const char *kind, const char *key, int64_t at_us,
                json_object *payload, json_object *raw, const char *source_type,
                const char *source_id, const char *uri, const jira_origin *o)
{
    json_object *prov = payload ? provenance(o) : NULL;
    ingest_json_signal sig = {.kind = kind,
                              .dedupe_key = key,
                              .occurred_at_us = at_us > 0 ? at_us : o->fallback_us,
                              .payload = payload,
                              .raw = o->raw_text ? NULL : raw,
                              .raw_text = o->raw_text,
                              .source_id = source_id,
                              .source_type = source_type,
                              .source_uri = uri,
                              .provenance = prov};
    int rc = prov ? ingest_emit_json(st->api, run, &sig) : INGEST_ENOMEM;
    json_object_put(prov);
    json_object_put(payload);
    if (rc == INGEST_OK)
        st->api->metric_add(st->m_signals, 1);
    return rc;
}

/* ------------------------------------------------------------- the issue */

/* The site's browse URL of `key`: the configured site, else the site the
 * record's self link names (never the API gateway). */
static void browse_url(const jira_origin *o, json_object *issue, const char *key, char *out,
                       size_t len)
{
    out[0] = '\0';
    const char *self = ingest_json_str(issue, "self");
    const char *rest = self ? strstr(self, "/rest/api/") : NULL;
    if (!key)
        return;
    if (o->site_url)
        snprintf(out, len, "%s/browse/%s", o->site_url, key);
    else if (rest && !strstr(self, "/ex/jira/"))
        snprintf(out, len, "%.*s/browse/%s", (int)(rest - self), self, key);
}

static int is_adf_doc(json_object *v)
{
    const char *type = ingest_json_str(v, "type");
    return json_object_is_type(v, json_type_object) && type && strcmp(type, "doc") == 0;
}

/* Custom field values under their names; ADF values as Markdown. */
static json_object *custom_fields(json_object *issue, const jira_origin *o)
{
    json_object *out = json_object_new_object(), *fields = ingest_json_get(issue, "fields");
    if (!out || !json_object_is_type(fields, json_type_object))
        return out;
    json_object_object_foreach(fields, id, value)
    {
        if (strncmp(id, "customfield_", 12) != 0 || !value)
            continue;
        json_object *name_obj = NULL;
        const char *name = o->fields && json_object_object_get_ex(o->fields, id, &name_obj)
                               ? json_object_get_string(name_obj)
                               : id;
        char both[320];
        if (json_object_object_get_ex(out, name, NULL)) { /* two fields, one name */
            snprintf(both, sizeof both, "%.200s (%s)", name, id);
            name = both;
        }
        if (is_adf_doc(value))
            put_markdown(out, name, value);
        else
            json_object_object_add(out, name, json_object_get(value));
    }
    return out;
}

static json_object *issue_payload(json_object *issue, const jira_origin *o)
{
    json_object *p = json_object_new_object();
    if (!p)
        return NULL;
    const char *key = ingest_json_str(issue, "key");
    char url[1024];
    browse_url(o, issue, key, url, sizeof url);
    ingest_json_copy(p, "id", issue, "id");
    ingest_json_copy(p, "key", issue, "key");
    ingest_json_copy(p, "project", issue, "fields.project.key");
    ingest_json_copy(p, "project_name", issue, "fields.project.name");
    ingest_json_copy(p, "summary", issue, "fields.summary");
    ingest_json_copy(p, "issue_type", issue, "fields.issuetype.name");
    ingest_json_copy(p, "status", issue, "fields.status.name");
    ingest_json_copy(p, "status_category", issue, "fields.status.statusCategory.key");
    ingest_json_copy(p, "priority", issue, "fields.priority.name");
    ingest_json_copy(p, "resolution", issue, "fields.resolution.name");
    ingest_json_copy(p, "assignee", issue, "fields.assignee.displayName");
    ingest_json_copy(p, "assignee_id", issue, "fields.assignee.accountId");
    ingest_json_copy(p, "reporter", issue, "fields.reporter.displayName");
    ingest_json_copy(p, "reporter_id", issue, "fields.reporter.accountId");
    ingest_json_copy(p, "labels", issue, "fields.labels");
    put_markdown(p, "description", ingest_json_get(issue, "fields.description"));
    ingest_json_put_str(p, "url", url[0] ? url : NULL);
    ingest_json_copy(p, "api_url", issue, "self");
    ingest_json_copy(p, "created", issue, "fields.created");
    ingest_json_copy(p, "updated", issue, "fields.updated");
    ingest_json_copy(p, "resolved", issue, "fields.resolutiondate");
    json_object_object_add(p, "custom_fields", custom_fields(issue, o));
    return p;
}

/* issue_created, keyed by the issue alone: it happens once. */
static int emit_created(jira_state *st, ingest_run *run, json_object *issue, const char *id,
                        const char *uri, const jira_origin *o)
{
    char key[96];
    snprintf(key, sizeof key, "issue_created:%s", id);
    return emit(st, run, "issue_created", key, jira_time(st, issue, "fields.created"),
                issue_payload(issue, o), issue, "issue", id, uri, o);
}

/* issue_updated at the issue's `updated` time: one per state we saw. */
static int emit_updated(jira_state *st, ingest_run *run, json_object *issue, const char *id,
                        const char *uri, const jira_origin *o)
{
    int64_t at = jira_time(st, issue, "fields.updated");
    if (!at)
        at = o->event_us;
    if (!at)
        return INGEST_OK; /* nothing dates it: it cannot be keyed */
    char key[128], when[32];
    jira_key_time(at, when);
    snprintf(key, sizeof key, "issue_updated:%s:%s", id, when);
    return emit(st, run, "issue_updated", key, at, issue_payload(issue, o), issue, "issue", id, uri,
                o);
}

/* The first changelog item about the status, or NULL. */
static json_object *status_item(json_object *history)
{
    json_object *items = ingest_json_get(history, "items");
    for (size_t i = 0;
         json_object_is_type(items, json_type_array) && i < json_object_array_length(items); i++) {
        json_object *it = json_object_array_get_idx(items, i);
        const char *field = ingest_json_str(it, "fieldId");
        if (!field)
            field = ingest_json_str(it, "field");
        if (field && strcmp(field, "status") == 0)
            return it;
    }
    return NULL;
}

/* The category key of status `id`: the site's list, else the issue's
 * current status when it is that one. */
static const char *category_of(json_object *issue, const char *id, const jira_origin *o)
{
    json_object *cat = NULL;
    if (!id)
        return NULL;
    if (o->statuses && json_object_object_get_ex(o->statuses, id, &cat))
        return json_object_get_string(cat);
    const char *current = ingest_json_str(issue, "fields.status.id");
    return current && strcmp(current, id) == 0
               ? ingest_json_str(issue, "fields.status.statusCategory.key")
               : NULL;
}

static json_object *transition_payload(json_object *issue, json_object *history, json_object *item,
                                       const char *category, const jira_origin *o)
{
    json_object *p = issue_payload(issue, o);
    if (!p)
        return NULL;
    ingest_json_copy(p, "history_id", history, "id");
    ingest_json_copy(p, "from_status", item, "fromString");
    ingest_json_copy(p, "to_status", item, "toString");
    ingest_json_copy(p, "from_status_id", item, "from");
    ingest_json_copy(p, "to_status_id", item, "to");
    ingest_json_put_str(p, "to_status_category", category);
    ingest_json_copy(p, "author", history, "author.displayName");
    ingest_json_copy(p, "author_id", history, "author.accountId");
    ingest_json_copy(p, "transitioned_at", history, "created");
    return p;
}

int jira_emit_history(jira_state *st, ingest_run *run, json_object *issue, json_object *history,
                      const jira_origin *o)
{
    json_object *item = status_item(history);
    char id[32], hid[32], uri[1024], key[128];
    id_text(issue, "id", id);
    id_text(history, "id", hid);
    if (!item || !id[0] || !hid[0])
        return INGEST_OK; /* not a transition, or not one we can key */
    browse_url(o, issue, ingest_json_str(issue, "key"), uri, sizeof uri);
    int64_t at = jira_time(st, history, "created");
    if (!at) /* a webhook's changelog has no time: the issue's update is it */
        at = jira_time(st, issue, "fields.updated");
    const char *category = category_of(issue, ingest_json_str(item, "to"), o);
    snprintf(key, sizeof key, "issue_transitioned:%s:%s", id, hid);
    int rc = emit(st, run, "issue_transitioned", key, at,
                  transition_payload(issue, history, item, category, o), issue, "issue", id,
                  uri[0] ? uri : NULL, o);
    if (rc == INGEST_OK && category && strcmp(category, "done") == 0) {
        snprintf(key, sizeof key, "issue_closed:%s:%s", id, hid);
        rc = emit(st, run, "issue_closed", key, at,
                  transition_payload(issue, history, item, category, o), issue, "issue", id,
                  uri[0] ? uri : NULL, o);
    }
    return rc;
}

/* ------------------------------------------------------------- comments */

int jira_emit_comment(jira_state *st, ingest_run *run, json_object *issue, json_object *comment,
                      const char *kind, const jira_origin *o)
{
    char cid[32], key[128], when[32], uri[1100], browse[1024];
    id_text(comment, "id", cid);
    if (!cid[0])
        return INGEST_EINVAL;
    int updated = strcmp(kind, "comment_updated") == 0;
    int64_t at = jira_time(st, comment, updated ? "updated" : "created");
    if (updated && !at)
        return INGEST_EINVAL;
    jira_key_time(at, when);
    if (updated)
        snprintf(key, sizeof key, "comment_updated:%s:%s", cid, when);
    else
        snprintf(key, sizeof key, "comment_added:%s", cid);
    browse_url(o, issue, ingest_json_str(issue, "key"), browse, sizeof browse);
    snprintf(uri, sizeof uri, "%s?focusedCommentId=%s", browse, cid);
    json_object *p = json_object_new_object();
    if (p) {
        ingest_json_copy(p, "id", comment, "id");
        ingest_json_copy(p, "issue_id", issue, "id");
        ingest_json_copy(p, "issue_key", issue, "key");
        ingest_json_copy(p, "project", issue, "fields.project.key");
        ingest_json_copy(p, "summary", issue, "fields.summary");
        ingest_json_copy(p, "author", comment, "author.displayName");
        ingest_json_copy(p, "author_id", comment, "author.accountId");
        put_markdown(p, "body", ingest_json_get(comment, "body"));
        ingest_json_copy(p, "created", comment, "created");
        ingest_json_copy(p, "updated", comment, "updated");
        ingest_json_put_str(p, "url", browse[0] ? uri : NULL);
        ingest_json_copy(p, "api_url", comment, "self");
    }
    return emit(st, run, kind, key, at, p, comment, "comment", cid, browse[0] ? uri : NULL, o);
}

/* comment_added, and comment_updated when it was edited since. */
static int emit_comments(jira_state *st, ingest_run *run, json_object *issue, json_object *list,
                         const jira_origin *o)
{
    int rc = INGEST_OK;
    for (size_t i = 0; rc == INGEST_OK && json_object_is_type(list, json_type_array) &&
                       i < json_object_array_length(list);
         i++) {
        json_object *c = json_object_array_get_idx(list, i);
        rc = jira_emit_comment(st, run, issue, c, "comment_added", o);
        int64_t created = jira_time(st, c, "created"), updated = jira_time(st, c, "updated");
        if (rc == INGEST_OK && updated && updated != created)
            rc = jira_emit_comment(st, run, issue, c, "comment_updated", o);
        if (rc == INGEST_EINVAL)
            rc = INGEST_OK; /* a comment without an id: nothing to key it by */
    }
    return rc;
}

/* --------------------------------------------------------------- issues */

int jira_emit_issue(jira_state *st, ingest_run *run, json_object *issue, json_object *histories,
                    json_object *comments, unsigned what, const jira_origin *o)
{
    char id[32], uri[1024];
    id_text(issue, "id", id);
    if (!id[0] || !ingest_json_get(issue, "fields"))
        return INGEST_EINVAL; /* not an issue as Jira documents it */
    browse_url(o, issue, ingest_json_str(issue, "key"), uri, sizeof uri);
    const char *u = uri[0] ? uri : NULL;
    int rc = INGEST_OK;
    if (what & JIRA_EMIT_CREATED)
        rc = emit_created(st, run, issue, id, u, o);
    /* A snapshot whose update is its creation says nothing more. */
    int64_t created = jira_time(st, issue, "fields.created");
    int64_t updated = jira_time(st, issue, "fields.updated");
    if (rc == INGEST_OK && (what & JIRA_EMIT_UPDATED) &&
        (updated != created || !(what & JIRA_EMIT_CREATED)))
        rc = emit_updated(st, run, issue, id, u, o);
    json_object *h = histories ? histories : ingest_json_get(issue, "changelog.histories");
    for (size_t i = 0; rc == INGEST_OK && (what & JIRA_EMIT_TRANSITIONS) &&
                       json_object_is_type(h, json_type_array) && i < json_object_array_length(h);
         i++)
        rc = jira_emit_history(st, run, issue, json_object_array_get_idx(h, i), o);
    json_object *c = comments ? comments : ingest_json_get(issue, "fields.comment.comments");
    if (rc == INGEST_OK && (what & JIRA_EMIT_COMMENTS))
        rc = emit_comments(st, run, issue, c, o);
    return rc;
}

int jira_emit_deleted(jira_state *st, ingest_run *run, json_object *issue, int64_t at_us,
                      const jira_origin *o)
{
    char id[32], key[96], uri[1024];
    id_text(issue, "id", id);
    if (!id[0])
        return INGEST_EINVAL;
    browse_url(o, issue, ingest_json_str(issue, "key"), uri, sizeof uri);
    snprintf(key, sizeof key, "issue_deleted:%s", id);
    return emit(st, run, "issue_deleted", key, at_us, issue_payload(issue, o), issue, "issue", id,
                uri[0] ? uri : NULL, o);
}

int jira_emit_other(jira_state *st, ingest_run *run, json_object *event, const jira_origin *o)
{
    char kind[96], key[160];
    snprintf(kind, sizeof kind, "jira.%.80s", o->event ? o->event : "unknown");
    snprintf(key, sizeof key, "jira:%.140s", o->delivery ? o->delivery : "");
    json_object *p = json_object_new_object();
    if (p) {
        ingest_json_put_str(p, "event", o->event);
        ingest_json_copy(p, "issue_event_type_name", event, "issue_event_type_name");
        ingest_json_copy(p, "issue_id", event, "issue.id");
        ingest_json_copy(p, "issue_key", event, "issue.key");
        ingest_json_copy(p, "user", event, "user.displayName");
        ingest_json_put_str(p, "delivery_id", o->delivery);
    }
    int64_t ms = 0;
    int64_t at = ingest_json_int64(event, "timestamp", &ms) ? ms * 1000 : 0;
    return emit(st, run, kind, key, at, p, event, o->event ? o->event : "event", NULL, NULL, o);
}
