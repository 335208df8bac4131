/*
 * jira_sync.c — the issues stream.
 *
 *   GET {base}/rest/api/3/search/jql?jql=<JQL>&fields=*all&expand=changelog
 *       &maxResults=N[&nextPageToken=T]
 *   -> {"issues": [...], "nextPageToken": "...", "isLast": false}
 *
 * with JQL `[project in (...) AND][(jql) AND] updated >= "yyyy/MM/dd HH:mm"
 * ORDER BY updated ASC`. The last page has no nextPageToken (JRACLOUD-92184:
 * the key is absent rather than null) or isLast true. Every page is emitted
 * and committed with its cursor: the newest `updated` read, kept with the
 * offset Jira wrote it in. That offset matters: JQL reads a date literal in
 * the time zone of the user running the query, which is the zone Jira
 * writes that user's times in, so the next run's literal is the cursor's
 * local time in its own offset, a minute earlier (JQL compares minutes;
 * the dedupe keys absorb what is read twice). Without a cursor the zone is
 * unknown and the start is moved 14 hours earlier (the largest offset).
 *
 * An issue's embedded changelog and comments are pages too: when they
 * hold fewer than their total, the rest comes from
 * /rest/api/3/issue/{id}/changelog (values, isLast) and
 * /rest/api/3/issue/{id}/comment (comments, startAt/total).
 *
 * 429 with Retry-After and 5xx are retried by the host (api->http_request);
 * a wait too long to hold a worker comes back as INGEST_ERATELIMITED, which
 * reschedules the job.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jira.h"

#define SUB_PAGE 100       /* changelog / comment page size */
#define SUB_MAX_PAGES 1000 /* safety stop for one issue's sub-walks */
#define UNKNOWN_ZONE_US ((int64_t)14 * 3600 * 1000000)

/* ------------------------------------------------------------------ HTTP */

/* Printable ASCII of `in` into out (no control bytes from the provider in
 * our logs). */
static void printable(const char *in, char *out, size_t len)
{
    size_t n = 0;
    for (; in && *in && n + 1 < len && n < 200; in++)
        out[n++] = (*in >= 0x20 && *in < 0x7f) ? *in : '?';
    out[n] = '\0';
}

void jira_describe(const ingest_http_response *resp, char *out, size_t len)
{
    json_object *body = resp ? ingest_json_parse(resp->body, resp->body_len) : NULL;
    const char *msg = ingest_json_str(body, "errorMessages.0");
    json_object *errors = ingest_json_get(body, "errors");
    if (!msg && json_object_is_type(errors, json_type_object)) {
        json_object_object_foreach(errors, field, text)
        {
            (void)field;
            if (json_object_is_type(text, json_type_string)) {
                msg = json_object_get_string(text);
                break;
            }
        }
    }
    if (msg) {
        char safe[256];
        printable(msg, safe, sizeof safe);
        snprintf(out, len, "HTTP %ld: %s", resp->status, safe);
    } else {
        ingest_http_describe(resp, out, len);
    }
    json_object_put(body);
}

static const ingest_header json_accept[] = {{"Accept", "application/json"}};

int jira_get_json(jira_state *st, ingest_run *run, const char *url, json_object **body)
{
    *body = NULL;
    ingest_http_request req = {.hdr = INGEST_ABI_HEADER(ingest_http_request),
                               .method = "GET",
                               .url = url,
                               .headers = json_accept,
                               .n_headers = 1,
                               .auth = INGEST_HTTP_AUTH_CONNECTION};
    ingest_http_response *resp = NULL;
    int rc = st->api->http_request(run, &req, &resp);
    st->api->metric_add(st->m_requests, 1);
    if (rc == INGEST_OK && (resp->status < 200 || resp->status > 299)) {
        rc = ingest_http_status_rc(resp->status);
        rc = rc == INGEST_OK ? INGEST_EIO : rc;
        if (resp->status == 400)
            rc = INGEST_EINVAL; /* a JQL or parameter error: retrying will not help */
    }
    if (rc == INGEST_OK && !(*body = ingest_json_parse(resp->body, resp->body_len)))
        rc = INGEST_EINVAL;
    if (rc != INGEST_OK) {
        char why[320];
        jira_describe(resp, why, sizeof why);
        const char *path = strstr(url, "/rest/");
        st->api->log(st->ctx, run, rc == INGEST_ERATELIMITED ? INGEST_LOG_INFO : INGEST_LOG_WARN,
                     "GET %.120s: %s (status %d)", path ? path : "(url)", why, rc);
    }
    st->api->http_response_free(resp);
    return rc;
}

/* ---------------------------------------------------------------- times */

/* The offset (seconds east of UTC) a Jira/RFC 3339 time text ends with
 * into *off ("Z" is 0); 0 when it has none. */
static int offset_of(const char *text, long *off)
{
    size_t n = text ? strlen(text) : 0;
    if (n > 0 && (text[n - 1] == 'Z' || text[n - 1] == 'z')) {
        *off = 0;
        return 1;
    }
    const char *p = NULL;
    if (n >= 6 && (text[n - 6] == '+' || text[n - 6] == '-') && text[n - 3] == ':')
        p = text + n - 6; /* +HH:MM */
    else if (n >= 5 && (text[n - 5] == '+' || text[n - 5] == '-'))
        p = text + n - 5; /* +HHMM */
    const char *m = p && p[3] == ':' ? p + 4 : p ? p + 3 : NULL;
    if (!p || !isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) ||
        !isdigit((unsigned char)m[0]) || !isdigit((unsigned char)m[1]))
        return 0;
    long hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (m[0] - '0') * 10 + (m[1] - '0');
    *off = (p[0] == '-' ? -1 : 1) * (hh * 3600L + mm * 60L);
    return 1;
}

/* Jira's "2024-05-01T10:00:00.000+1000" as RFC 3339 ("...+10:00"), which
 * the host (and PostgreSQL) compare as instants. */
static void rfc3339_of(const char *jira, char *out, size_t len)
{
    size_t n = strlen(jira);
    if (n >= 5 && n + 2 < len && (jira[n - 5] == '+' || jira[n - 5] == '-') &&
        isdigit((unsigned char)jira[n - 1]) && jira[n - 3] != ':')
        snprintf(out, len, "%.*s:%s", (int)(n - 2), jira, jira + n - 2);
    else
        snprintf(out, len, "%s", jira);
}

/* A JQL date literal "yyyy/MM/dd HH:mm" of instant `us` seen at offset `off`. */
static void jql_time(int64_t us, long off, char out[24])
{
    time_t s = (time_t)(us / 1000000 + off);
    struct tm tm;
    if (!gmtime_r(&s, &tm) || strftime(out, 24, "%Y/%m/%d %H:%M", &tm) == 0)
        snprintf(out, 24, "1970/01/01 00:00");
}

/* ----------------------------------------------------------- the walk */

typedef struct walk {
    jira_state *st;
    ingest_run *run;
    const ingest_job *job;
    jira_settings *set;
    jira_origin origin;
    int64_t high_us;    /* newest `updated` read */
    char high_text[64]; /* ... as Jira wrote it, RFC 3339 */
    int64_t stored_us;  /* the committed cursor */
    long requests, pages, issues;
} walk;

/* Where this run starts: the cursor's minute in its own zone, less the
 * overlap; or the backfill with the unknown-zone margin; 0 = everything. */
static int start_literal(walk *w, char out[24])
{
    const ingest_host_api *api = w->st->api;
    char *cursor = NULL;
    int rc = api->cursor_get(w->run, JIRA_STREAM, &cursor);
    if (rc != INGEST_OK)
        return rc;
    int64_t at = 0;
    long off = 0;
    if (cursor && !w->job->full_refresh && api->parse_time(cursor, &at) == INGEST_OK &&
        offset_of(cursor, &off)) {
        w->stored_us = at;
        int64_t back = JIRA_OVERLAP_US;
        if (INGEST_STRUCT_HAS(w->job, lookback_us) && w->job->lookback_us > back)
            back = w->job->lookback_us;
        jql_time(at - back, off, out);
    } else {
        int64_t since = w->set->backfill_days > 0
                            ? api->now_us() - w->set->backfill_days * 86400 * (int64_t)1000000
                            : w->job->backfill_since_us;
        if (w->job->full_refresh && w->set->backfill_days <= 0)
            since = w->job->backfill_since_us;
        out[0] = '\0';
        if (since > 0)
            jql_time(since - UNKNOWN_ZONE_US, 0, out);
    }
    api->free(cursor);
    return INGEST_OK;
}

static char *build_jql(const walk *w, const char *since)
{
    size_t cap = 256 + (w->set->jql ? strlen(w->set->jql) : 0);
    for (size_t i = 0; i < w->set->n_projects; i++)
        cap += strlen(w->set->projects[i]) + 4;
    char *q = malloc(cap);
    if (!q)
        return NULL;
    size_t n = 0;
    q[0] = '\0';
    for (size_t i = 0; i < w->set->n_projects; i++)
        n += (size_t)snprintf(q + n, cap - n, "%s\"%s\"", i ? ", " : "project in (",
                              w->set->projects[i]);
    if (w->set->n_projects)
        n += (size_t)snprintf(q + n, cap - n, ") AND ");
    if (w->set->jql)
        n += (size_t)snprintf(q + n, cap - n, "(%s) AND ", w->set->jql);
    if (since[0])
        n += (size_t)snprintf(q + n, cap - n, "updated >= \"%s\" ", since);
    else if (n >= 5 && strcmp(q + n - 5, " AND ") == 0)
        n -= 5, q[n++] = ' ', q[n] = '\0';
    snprintf(q + n, cap - n, "ORDER BY updated ASC");
    return q;
}

/* url?name=value... built by the host (URL-encoded). */
static int with_params(const ingest_host_api *api, const char *base, const char *const *kv,
                       size_t n, char **out)
{
    char *url = strdup(base);
    int rc = url ? INGEST_OK : INGEST_ENOMEM;
    for (size_t i = 0; rc == INGEST_OK && i + 1 < n; i += 2) {
        if (!kv[i + 1])
            continue;
        char *next = NULL;
        rc = api->url_with_param(url, kv[i], kv[i + 1], &next);
        free(url);
        url = next ? strdup(next) : NULL;
        api->free(next);
        if (rc == INGEST_OK && !url)
            rc = INGEST_ENOMEM;
    }
    if (rc != INGEST_OK) {
        free(url);
        url = NULL;
    }
    *out = url;
    return rc;
}

/* The rest of a list the issue embeds in part: GET path?startAt=... until
 * `total` (comments) or isLast (changelog), appended to `into`. */
static int rest_of(walk *w, const char *issue_id, const char *what, const char *list_key,
                   json_object *into)
{
    char base[1200], start[24], *url = NULL;
    snprintf(base, sizeof base, "%s/rest/api/3/issue/%s/%s", w->set->rest_base, issue_id, what);
    int rc = INGEST_OK;
    for (int page = 0; rc == INGEST_OK && page < SUB_MAX_PAGES; page++) {
        snprintf(start, sizeof start, "%zu", json_object_array_length(into));
        const char *kv[] = {"startAt", start, "maxResults", "100"};
        json_object *body = NULL;
        rc = with_params(w->st->api, base, kv, 4, &url);
        if (rc == INGEST_OK)
            rc = jira_get_json(w->st, w->run, url, &body);
        free(url);
        url = NULL;
        w->requests++;
        json_object *list = ingest_json_get(body, list_key);
        size_t got =
            json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
        for (size_t i = 0; rc == INGEST_OK && i < got; i++)
            json_object_array_add(into, json_object_get(json_object_array_get_idx(list, i)));
        int64_t total = 0;
        int done = got == 0 || ingest_json_true(body, "isLast") ||
                   (ingest_json_int64(body, "total", &total) &&
                    (int64_t)json_object_array_length(into) >= total);
        json_object_put(body);
        if (done)
            break;
    }
    return rc;
}

/* A copy of the embedded list `path`, completed when its total says more. */
static int complete(walk *w, json_object *issue, const char *path, const char *total_path,
                    const char *what, const char *list_key, json_object **out)
{
    json_object *embedded = ingest_json_get(issue, path);
    *out = json_object_new_array();
    if (!*out)
        return INGEST_ENOMEM;
    for (size_t i = 0;
         json_object_is_type(embedded, json_type_array) && i < json_object_array_length(embedded);
         i++)
        json_object_array_add(*out, json_object_get(json_object_array_get_idx(embedded, i)));
    int64_t total = 0;
    const char *id = ingest_json_str(issue, "id");
    if (!id || !ingest_json_int64(issue, total_path, &total) ||
        total <= (int64_t)json_object_array_length(*out))
        return INGEST_OK;
    /* Start over from 0: the embedded page may be the newest, not the first. */
    json_object_put(*out);
    *out = json_object_new_array();
    return *out ? rest_of(w, id, what, list_key, *out) : INGEST_ENOMEM;
}

static int one_issue(walk *w, json_object *issue)
{
    json_object *histories = NULL, *comments = NULL;
    int rc = complete(w, issue, "changelog.histories", "changelog.total", "changelog", "values",
                      &histories);
    if (rc == INGEST_OK)
        rc = complete(w, issue, "fields.comment.comments", "fields.comment.total", "comment",
                      "comments", &comments);
    if (rc == INGEST_OK)
        rc = jira_emit_issue(w->st, w->run, issue, histories, comments,
                             JIRA_EMIT_CREATED | JIRA_EMIT_UPDATED | JIRA_EMIT_TRANSITIONS |
                                 JIRA_EMIT_COMMENTS,
                             &w->origin);
    if (rc == INGEST_EINVAL) {
        w->st->api->log(w->st->ctx, w->run, INGEST_LOG_WARN,
                        "a search result without id or fields was skipped");
        rc = INGEST_OK;
    }
    json_object_put(histories);
    json_object_put(comments);
    const char *updated = ingest_json_str(issue, "fields.updated");
    int64_t at = jira_time(w->st, issue, "fields.updated");
    if (rc == INGEST_OK && at > w->high_us && updated && strlen(updated) < 48) {
        w->high_us = at;
        rfc3339_of(updated, w->high_text, sizeof w->high_text);
    }
    return rc;
}

/* Emit a page and commit it with the cursor. */
static int page_of(walk *w, json_object *body)
{
    json_object *issues = ingest_json_get(body, "issues");
    if (!json_object_is_type(issues, json_type_array)) {
        w->st->api->log(w->st->ctx, w->run, INGEST_LOG_WARN, "search answered without issues");
        return INGEST_EINVAL;
    }
    int rc = INGEST_OK;
    for (size_t i = 0; rc == INGEST_OK && i < json_object_array_length(issues); i++, w->issues++)
        rc = one_issue(w, json_object_array_get_idx(issues, i));
    if (rc != INGEST_OK)
        return rc;
    w->pages++;
    return w->high_us > w->stored_us ? w->st->api->cursor_set(w->run, JIRA_STREAM, w->high_text)
                                     : w->st->api->flush(w->run);
}

static int search(walk *w, const char *jql)
{
    char base[1200], size[24], *url = NULL, *token = NULL;
    snprintf(base, sizeof base, "%s/rest/api/3/search/jql", w->set->rest_base);
    snprintf(size, sizeof size, "%" PRId64, w->st->conf->page_size);
    int rc = INGEST_OK;
    for (;;) {
        const char *kv[] = {"jql",       jql,          "fields", "*all",          "expand",
                            "changelog", "maxResults", size,     "nextPageToken", token};
        json_object *body = NULL;
        rc = with_params(w->st->api, base, kv, sizeof kv / sizeof kv[0], &url);
        if (rc == INGEST_OK)
            rc = jira_get_json(w->st, w->run, url, &body);
        free(url);
        url = NULL;
        w->requests++;
        if (rc == INGEST_OK)
            rc = page_of(w, body);
        const char *next = ingest_json_str(body, "nextPageToken");
        free(token);
        token = next && *next && !ingest_json_true(body, "isLast") ? strdup(next) : NULL;
        json_object_put(body);
        if (rc != INGEST_OK || !token ||
            (w->st->conf->max_pages > 0 && w->pages >= w->st->conf->max_pages))
            break;
    }
    free(token);
    return rc;
}

static int run_walk(walk *w)
{
    char since[24], *jql = NULL;
    int rc = start_literal(w, since);
    if (rc == INGEST_OK && !(jql = build_jql(w, since)))
        rc = INGEST_ENOMEM;
    if (rc == INGEST_OK) {
        w->st->api->log(w->st->ctx, w->run, INGEST_LOG_DEBUG, "search: %s", jql);
        rc = search(w, jql);
    }
    free(jql);
    return rc;
}

int jira_sync(ingest_run *run, void *state, const ingest_job *job)
{
    jira_state *st = state;
    const ingest_host_api *api = st->api;
    if (!job->stream || strcmp(job->stream, JIRA_STREAM) != 0)
        return INGEST_ENOTFOUND;
    if (!INGEST_API_HAS(api, http_request) || !INGEST_API_HAS(api, url_with_param))
        return INGEST_EUNSUPPORTED;
    if (!job->connection_id) {
        api->log(st->ctx, run, INGEST_LOG_WARN, "a sync needs a connection");
        return INGEST_ENOTFOUND;
    }
    jira_settings set;
    char err[256];
    int rc = jira_settings_load(st, run, 1, &set, err, sizeof err);
    if (rc != INGEST_OK) {
        api->log(st->ctx, run, INGEST_LOG_ERROR, "sync: %s", err);
        return rc;
    }
    walk w = {.st = st, .run = run, .job = job, .set = &set};
    w.origin = (jira_origin){.via = "sync", .site_url = set.site_url, .fallback_us = api->now_us()};
    rc = jira_meta_get(st, run, job->connection_id, &set, 1, &w.origin.fields, &w.origin.statuses);
    if (rc == INGEST_OK)
        rc = run_walk(&w);
    if (rc == INGEST_OK)
        ingest_health_set(&st->health, INGEST_HEALTH_OK, "last sync complete");
    api->log(st->ctx, run, rc == INGEST_OK ? INGEST_LOG_INFO : INGEST_LOG_WARN,
             "sync: %ld requests, %ld pages, %ld issues, status %d", w.requests, w.pages, w.issues,
             rc);
    json_object_put(w.origin.fields);
    json_object_put(w.origin.statuses);
    jira_settings_free(&set);
    return rc;
}
