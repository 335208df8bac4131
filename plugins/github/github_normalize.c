/*
 * github_normalize.c — GitHub records to signals.
 *
 * The same record reaches us from a webhook (pull_request.closed carries the
 * pull request) and from a sync (GET /pulls lists it). Both paths call the
 * functions here, so the signal for one event has one kind and one dedupe
 * key whichever way it came: a delivery that was missed is healed by the
 * next sync without duplicates, and a sync after a webhook stores nothing
 * new. Keys therefore use GitHub's ids and event times, never delivery ids
 * (except for github.<event>, which only webhooks produce).
 *
 * Payload schemas are documented in README.md; every member is always
 * present (JSON null when GitHub did not send it).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "github.h"

/* ------------------------------------------------------------ utilities */

int gh_repo_from_url(const char *url, char *out, size_t len)
{
    const char *p = url ? strstr(url, "/repos/") : NULL;
    if (!p)
        return -1;
    p += strlen("/repos/");
    const char *slash = strchr(p, '/');
    if (!slash || slash == p)
        return -1;
    size_t n = strcspn(slash + 1, "/?#");
    size_t total = (size_t)(slash - p) + 1 + n;
    if (n == 0 || total >= len)
        return -1;
    memcpy(out, p, total);
    out[total] = '\0';
    return 0;
}

/* The time at the first of `paths` that holds one, else the fallback. */
static int64_t first_time(const github_state *st, json_object *rec, const char *const *paths,
                          size_t n, int64_t fallback)
{
    int64_t us = 0;
    for (size_t i = 0; i < n; i++)
        if (paths[i] && ingest_json_time(st->api, rec, paths[i], &us) == INGEST_OK && us > 0)
            return us;
    return fallback > 0 ? fallback : st->api->now_us();
}

static void put_bool(json_object *o, const char *key, int value)
{
    json_object_object_add(o, key, json_object_new_boolean(value));
}

/* "%lld" of the integer at `path`, or "" */
static void id_text(json_object *rec, const char *path, char out[24])
{
    int64_t id = 0;
    if (ingest_json_int64(rec, path, &id))
        snprintf(out, 24, "%" PRId64, id);
    else
        out[0] = '\0';
}

static json_object *provenance(const gh_origin *o)
{
    json_object *p = json_object_new_object();
    if (!p)
        return NULL;
    ingest_json_put_str(p, "via", o->via);
    if (o->event)
        ingest_json_put_str(p, "github_event", o->event);
    if (o->action)
        ingest_json_put_str(p, "action", o->action);
    if (o->delivery)
        ingest_json_put_str(p, "github_delivery", o->delivery);
    if (o->stream)
        ingest_json_put_str(p, "stream", o->stream);
    return p;
}

/* Emit one signal and release `payload` (which may be NULL: out of memory).
 * Every signal of this file goes through here. */
static int emit(github_state *st, ingest_run *run, const char *kind, const char *key, int64_t at_us,
                json_object *payload, const char *source_type, const char *source_id,
                const char *source_uri, const gh_origin *o)
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
                              .source_uri = source_uri,
                              .provenance = prov};
    int rc = prov ? ingest_emit_json(st->api, run, &sig) : INGEST_ENOMEM;
    json_object_put(prov);
    json_object_put(payload);
    if (rc == INGEST_OK)
        st->api->metric_add(st->m_signals, 1);
    return rc;
}

/* A kind, the times that date it (first present wins) and whether the
 * record can have it more than once. */
typedef struct kind_rule {
    const char *kind;
    const char *times[2];
    int time_in_key;
} kind_rule;

static const kind_rule *rule_of(const kind_rule *rules, size_t n, const char *kind)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rules[i].kind, kind) == 0)
            return &rules[i];
    return NULL;
}

/* ---------------------------------------------------------- pull requests */

static const kind_rule pr_rules[] = {
    {"pr_opened", {"created_at", NULL}, 0},
    {"pr_closed", {"closed_at", "updated_at"}, 1},
    {"pr_merged", {"merged_at", "closed_at"}, 0},
    {"pr_reopened", {"updated_at", NULL}, 1},
};

static json_object *pr_payload(json_object *pr, const char *repo)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    ingest_json_put_str(o, "repo", repo);
    ingest_json_copy(o, "id", pr, "id");
    ingest_json_copy(o, "node_id", pr, "node_id");
    ingest_json_copy(o, "number", pr, "number");
    ingest_json_copy(o, "title", pr, "title");
    ingest_json_copy(o, "state", pr, "state");
    put_bool(o, "draft", ingest_json_true(pr, "draft"));
    put_bool(o, "merged", ingest_json_get(pr, "merged_at") != NULL);
    ingest_json_copy(o, "author", pr, "user.login");
    ingest_json_copy(o, "url", pr, "html_url");
    ingest_json_copy(o, "api_url", pr, "url");
    ingest_json_copy(o, "base_ref", pr, "base.ref");
    ingest_json_copy(o, "head_ref", pr, "head.ref");
    ingest_json_copy(o, "head_sha", pr, "head.sha");
    ingest_json_copy(o, "merge_commit_sha", pr, "merge_commit_sha");
    ingest_json_copy(o, "created_at", pr, "created_at");
    ingest_json_copy(o, "updated_at", pr, "updated_at");
    ingest_json_copy(o, "closed_at", pr, "closed_at");
    ingest_json_copy(o, "merged_at", pr, "merged_at");
    return o;
}

/* A record's signal of kind `r`: keyed "<kind>:<id>" (":<time>" when the
 * record can have the event more than once), dated by the rule's times. */
static int emit_by_rule(github_state *st, ingest_run *run, const kind_rule *r,
                        const char *source_type, json_object *rec, json_object *payload,
                        const gh_origin *o)
{
    char id[24], key[160], when[INGEST_ISO8601_LEN];
    id_text(rec, "id", id);
    if (!id[0]) {
        json_object_put(payload);
        return INGEST_EINVAL; /* not the record GitHub documents */
    }
    int64_t at = first_time(st, rec, r->times, 2, o->fallback_us);
    ingest_time_iso8601(at, when);
    if (r->time_in_key)
        snprintf(key, sizeof key, "%s:%s:%s", r->kind, id, when);
    else
        snprintf(key, sizeof key, "%s:%s", r->kind, id);
    return emit(st, run, r->kind, key, at, payload, source_type, id,
                ingest_json_str(rec, "html_url"), o);
}

int gh_emit_pull_request(github_state *st, ingest_run *run, json_object *pr, const char *repo,
                         const char *only, const gh_origin *o)
{
    const size_t n = sizeof pr_rules / sizeof pr_rules[0];
    if (only) {
        const kind_rule *r = rule_of(pr_rules, n, only);
        return r ? emit_by_rule(st, run, r, "pull_request", pr, pr_payload(pr, repo), o)
                 : INGEST_EINVAL;
    }
    /* What a snapshot proves: it was opened; merged, or else closed. */
    int rc = emit_by_rule(st, run, &pr_rules[0], "pull_request", pr, pr_payload(pr, repo), o);
    if (rc == INGEST_OK && ingest_json_get(pr, "merged_at"))
        rc = emit_by_rule(st, run, &pr_rules[2], "pull_request", pr, pr_payload(pr, repo), o);
    else if (rc == INGEST_OK && ingest_json_get(pr, "closed_at"))
        rc = emit_by_rule(st, run, &pr_rules[1], "pull_request", pr, pr_payload(pr, repo), o);
    return rc;
}

/* ----------------------------------------------------------------- issues */

static const kind_rule issue_rules[] = {
    {"issue_opened", {"created_at", NULL}, 0},
    {"issue_closed", {"closed_at", "updated_at"}, 1},
    {"issue_reopened", {"updated_at", NULL}, 1},
};

static json_object *label_names(json_object *issue)
{
    json_object *labels = ingest_json_get(issue, "labels");
    if (!json_object_is_type(labels, json_type_array))
        return json_object_new_array();
    json_object *out = json_object_new_array();
    for (size_t i = 0; out && i < json_object_array_length(labels); i++) {
        const char *name = ingest_json_str(json_object_array_get_idx(labels, i), "name");
        if (name)
            json_object_array_add(out, json_object_new_string(name));
    }
    return out;
}

static json_object *issue_payload(json_object *issue, const char *repo)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    ingest_json_put_str(o, "repo", repo);
    ingest_json_copy(o, "id", issue, "id");
    ingest_json_copy(o, "node_id", issue, "node_id");
    ingest_json_copy(o, "number", issue, "number");
    ingest_json_copy(o, "title", issue, "title");
    ingest_json_copy(o, "state", issue, "state");
    ingest_json_copy(o, "state_reason", issue, "state_reason");
    ingest_json_copy(o, "author", issue, "user.login");
    json_object_object_add(o, "labels", label_names(issue));
    ingest_json_copy(o, "url", issue, "html_url");
    ingest_json_copy(o, "api_url", issue, "url");
    ingest_json_copy(o, "created_at", issue, "created_at");
    ingest_json_copy(o, "updated_at", issue, "updated_at");
    ingest_json_copy(o, "closed_at", issue, "closed_at");
    return o;
}

int gh_emit_issue(github_state *st, ingest_run *run, json_object *issue, const char *repo,
                  const char *only, const gh_origin *o)
{
    const size_t n = sizeof issue_rules / sizeof issue_rules[0];
    if (only) {
        const kind_rule *r = rule_of(issue_rules, n, only);
        return r ? emit_by_rule(st, run, r, "issue", issue, issue_payload(issue, repo), o)
                 : INGEST_EINVAL;
    }
    int rc = emit_by_rule(st, run, &issue_rules[0], "issue", issue, issue_payload(issue, repo), o);
    if (rc == INGEST_OK && ingest_json_get(issue, "closed_at"))
        rc = emit_by_rule(st, run, &issue_rules[1], "issue", issue, issue_payload(issue, repo), o);
    return rc;
}

/* --------------------------------------------------------------- comments */

/* The issue or pull request number at the end of an issue_url. */
static json_object *number_from_url(const char *url)
{
    const char *slash = url ? strrchr(url, '/') : NULL;
    char *end = NULL;
    long long n = slash ? strtoll(slash + 1, &end, 10) : 0;
    return slash && end && !*end && n > 0 ? json_object_new_int64(n) : NULL;
}

int gh_emit_comment(github_state *st, ingest_run *run, json_object *comment, json_object *issue,
                    const char *repo, const gh_origin *o)
{
    json_object *p = json_object_new_object();
    if (p) {
        ingest_json_put_str(p, "repo", repo);
        ingest_json_copy(p, "id", comment, "id");
        ingest_json_copy(p, "node_id", comment, "node_id");
        if (issue)
            ingest_json_copy(p, "number", issue, "number");
        else
            json_object_object_add(p, "number",
                                   number_from_url(ingest_json_str(comment, "issue_url")));
        ingest_json_copy(p, "title", issue, "title");
        json_object_object_add(
            p, "is_pull_request",
            issue ? json_object_new_boolean(ingest_json_get(issue, "pull_request") != NULL) : NULL);
        ingest_json_copy(p, "author", comment, "user.login");
        ingest_json_copy(p, "body", comment, "body");
        ingest_json_copy(p, "url", comment, "html_url");
        ingest_json_copy(p, "api_url", comment, "url");
        ingest_json_copy(p, "issue_url", comment, "issue_url");
        ingest_json_copy(p, "created_at", comment, "created_at");
        ingest_json_copy(p, "updated_at", comment, "updated_at");
    }
    static const kind_rule r = {"comment_added", {"created_at", NULL}, 0};
    return emit_by_rule(st, run, &r, "issue_comment", comment, p, o);
}

/* ---------------------------------------------------------------- reviews */

int gh_emit_review(github_state *st, ingest_run *run, json_object *review, json_object *pr,
                   const char *repo, const gh_origin *o)
{
    json_object *p = json_object_new_object();
    if (p) {
        char state[32] = "";
        const char *s = ingest_json_str(review, "state");
        for (size_t i = 0; s && s[i] && i + 1 < sizeof state; i++)
            state[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
        ingest_json_put_str(p, "repo", repo);
        ingest_json_copy(p, "id", review, "id");
        ingest_json_copy(p, "node_id", review, "node_id");
        ingest_json_copy(p, "number", pr, "number");
        ingest_json_copy(p, "title", pr, "title");
        ingest_json_copy(p, "pr_id", pr, "id");
        ingest_json_put_str(p, "state",
                            s ? state : NULL); /* REST says APPROVED, webhooks approved */
        ingest_json_copy(p, "author", review, "user.login");
        ingest_json_copy(p, "body", review, "body");
        ingest_json_copy(p, "url", review, "html_url");
        ingest_json_copy(p, "pr_url", pr, "html_url");
        ingest_json_copy(p, "commit_id", review, "commit_id");
        ingest_json_copy(p, "submitted_at", review, "submitted_at");
    }
    static const kind_rule r = {"pr_review_submitted", {"submitted_at", NULL}, 0};
    return emit_by_rule(st, run, &r, "pull_request_review", review, p, o);
}

/* ------------------------------------------------------------------- push */

int gh_emit_push(github_state *st, ingest_run *run, json_object *ev, const gh_origin *o)
{
    const char *ref = ingest_json_str(ev, "ref");
    if (!ref || !ingest_json_str(ev, "after"))
        return INGEST_EINVAL; /* not a push as GitHub documents it */
    json_object *p = json_object_new_object();
    if (!p)
        return INGEST_ENOMEM;
    const char *branch = ref && strncmp(ref, "refs/heads/", 11) == 0 ? ref + 11 : NULL;
    const char *tag = ref && strncmp(ref, "refs/tags/", 10) == 0 ? ref + 10 : NULL;
    json_object *commits = ingest_json_get(ev, "commits");
    static const char *const times[] = {"head_commit.timestamp", "repository.pushed_at"};
    int64_t at = first_time(st, ev, times, 2, o->fallback_us);
    char pushed[INGEST_ISO8601_LEN];
    ingest_time_iso8601(at, pushed);
    ingest_json_copy(p, "repo", ev, "repository.full_name");
    ingest_json_copy(p, "repo_id", ev, "repository.id");
    ingest_json_put_str(p, "ref", ref);
    ingest_json_put_str(p, "branch", branch);
    ingest_json_put_str(p, "tag", tag);
    ingest_json_copy(p, "before", ev, "before");
    ingest_json_copy(p, "after", ev, "after");
    put_bool(p, "created", ingest_json_true(ev, "created"));
    put_bool(p, "deleted", ingest_json_true(ev, "deleted"));
    put_bool(p, "forced", ingest_json_true(ev, "forced"));
    ingest_json_copy(p, "pusher", ev, "pusher.name");
    ingest_json_copy(p, "author", ev, "sender.login");
    json_object_object_add(p, "commit_count",
                           json_object_new_int64(json_object_is_type(commits, json_type_array)
                                                     ? (int64_t)json_object_array_length(commits)
                                                     : 0));
    ingest_json_copy(p, "head_commit_id", ev, "head_commit.id");
    ingest_json_copy(p, "head_commit_message", ev, "head_commit.message");
    ingest_json_copy(p, "url", ev, "compare");
    ingest_json_put_str(p, "pushed_at", pushed);

    /* One push is (repository, ref, before, after): a redelivery or a
     * second hook on the same repository is the same signal. */
    char repo_id[24], key[400];
    const char *before = ingest_json_str(ev, "before"), *after = ingest_json_str(ev, "after");
    id_text(ev, "repository.id", repo_id);
    snprintf(key, sizeof key, "push:%s:%.200s:%.40s:%.40s", repo_id[0] ? repo_id : "-",
             ref ? ref : "", before ? before : "", after ? after : "");
    return emit(st, run, "push", key, at, p, "push", after, ingest_json_str(ev, "compare"), o);
}

/* ------------------------------------------------------------------ other */

int gh_emit_other(github_state *st, ingest_run *run, json_object *ev, const char *delivery_id,
                  const gh_origin *o)
{
    char kind[96], key[300];
    snprintf(kind, sizeof kind, "github.%.80s", o->event ? o->event : "unknown");
    snprintf(key, sizeof key, "github:%.250s", delivery_id ? delivery_id : "");
    json_object *p = json_object_new_object();
    if (!p)
        return INGEST_ENOMEM;
    int64_t installation = 0;
    ingest_json_put_str(p, "event", o->event);
    ingest_json_put_str(p, "action", o->action);
    ingest_json_copy(p, "repo", ev, "repository.full_name");
    ingest_json_copy(p, "organization", ev, "organization.login");
    ingest_json_copy(p, "sender", ev, "sender.login");
    json_object_object_add(p, "installation_id",
                           ingest_json_int64(ev, "installation.id", &installation)
                               ? json_object_new_int64(installation)
                               : NULL);
    ingest_json_put_str(p, "delivery_id", delivery_id);
    return emit(st, run, kind, key, o->fallback_us, p, "event", delivery_id,
                ingest_json_str(ev, "repository.html_url"), o);
}
