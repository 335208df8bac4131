/*
 * github_sync.c — the four streams, per repository of the connection's
 * settings (github_settings.c).
 *
 *   issues          GET /repos/{r}/issues?state=all&sort=updated&direction=asc&since=W
 *                   (pull requests are listed too; they are skipped here)
 *   issue_comments  GET /repos/{r}/issues/comments?sort=updated&direction=asc&since=W
 *   pull_requests   GET /repos/{r}/pulls?state=all&sort=updated&direction=desc, read until
 *                   records are older than W (the endpoint has no `since`)
 *   pr_reviews      the same pulls walk (own cursor); GET /repos/{r}/pulls/{n}/reviews for
 *                   every pull request that changed
 *
 * Oldest-first walks commit their cursor with every page and page by time
 * ("since" = the newest time read, minus a second) rather than by page
 * number, so records that change during the walk, and move to its end,
 * cannot shift others past a page boundary unseen. Link rel="next" is
 * still what says whether there is more, and is followed as is when a
 * page's times do not advance. Newest-first walks checkpoint the part they
 * finished, so a walk cut short by a rate limit resumes instead of
 * starting over. Each walk's first page is a conditional request: an
 * unchanged repository costs one 304, which GitHub does not count against
 * the rate limit.
 *
 * Cursors are per repository: "<stream>:<owner>/<name>" (lower case), and
 * "etag:<stream>:<owner>/<name>" for the conditional requests.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "github.h"

#define REPO_LEN 256

typedef struct repo_list {
    char **items;
    size_t n, cap;
} repo_list;

static void repos_free(repo_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

static int repos_add(repo_list *l, const char *full_name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcasecmp(l->items[i], full_name) == 0)
            return INGEST_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **grown = realloc(l->items, cap * sizeof *grown);
        if (!grown)
            return INGEST_ENOMEM;
        l->items = grown;
        l->cap = cap;
    }
    if (!(l->items[l->n] = strdup(full_name)))
        return INGEST_ENOMEM;
    l->n++;
    return INGEST_OK;
}

/* What one sync job carries through the page callbacks. */
typedef struct sync_ctx {
    github_state *st;
    ingest_run *run;
    const ingest_job *job;
    const gh_settings *set; /* this connection's repositories, base URL, ... */
    gh_stream stream;
    const char *repo; /* the repository being walked */
    char first_url[1024];
    ingest_ts_cursor cur;
    int64_t page_since_us; /* oldest-first: the `since` of the current request */
    repo_list *repos;      /* organization listing */
    long requests, not_modified, records, skipped;
} sync_ctx;

static void add_stats(sync_ctx *sc, const ingest_pager_stats *ps)
{
    sc->requests += ps->requests;
    sc->not_modified += ps->not_modified;
    sc->st->api->metric_add(sc->st->m_requests, (double)ps->requests);
    sc->st->api->metric_add(sc->st->m_not_modified, (double)ps->not_modified);
}

static ingest_pager pager_for(sync_ctx *sc, ingest_page_fn fn, const char *etag_slot,
                              int newest_first)
{
    return (ingest_pager){.api = sc->st->api,
                          .run = sc->run,
                          .headers = gh_headers,
                          .n_headers = 2,
                          .auth = INGEST_HTTP_AUTH_CONNECTION,
                          .max_pages = sc->st->conf->max_pages,
                          .etag_slot = etag_slot,
                          .newest_first = newest_first,
                          .on_page = fn,
                          .arg = sc};
}

static gh_origin origin_of(const sync_ctx *sc, json_object *record)
{
    return (gh_origin){.via = "sync", .stream = gh_stream_names[sc->stream], .raw = record};
}

/* The records of a page: a JSON array. NULL for a 304 (nothing to read),
 * or, logged, for any other body: the callers fail the walk then. */
static json_object *records(sync_ctx *sc, const ingest_page *page)
{
    if (page->not_modified)
        return NULL;
    if (!json_object_is_type(page->body, json_type_array)) {
        sc->st->api->log(sc->st->ctx, sc->run, INGEST_LOG_WARN,
                         "%s: %s answered with a JSON %s, not a list", sc->repo, page->url,
                         json_type_to_name(json_object_get_type(page->body)));
        return NULL;
    }
    return page->body;
}

static int64_t updated_at(const sync_ctx *sc, json_object *rec)
{
    int64_t us = 0;
    return ingest_json_time(sc->st->api, rec, "updated_at", &us) == INGEST_OK ? us : 0;
}

/* The canonical "Owner/Name" of a record, else the configured one. */
static const char *record_repo(const sync_ctx *sc, json_object *rec, const char *url_path,
                               char out[REPO_LEN])
{
    const char *full = ingest_json_str(rec, "base.repo.full_name");
    if (full && strlen(full) < REPO_LEN)
        return full;
    if (url_path && gh_repo_from_url(ingest_json_str(rec, url_path), out, REPO_LEN) == 0)
        return out;
    return sc->repo;
}

/* ------------------------------------------------- oldest-first (since) */

/* Page by time: continue at the newest time read (minus a second, in case
 * `since` is exclusive at whole seconds); follow Link as is when that does
 * not advance. */
static int next_by_time(sync_ctx *sc, ingest_page *page)
{
    if (!page->next_url)
        return INGEST_OK;
    int64_t next_since = sc->cur.high_us - 1000000;
    if (next_since / 1000000 <= sc->page_since_us / 1000000)
        return INGEST_OK; /* no progress by time: page by number this once */
    char since[INGEST_ISO8601_LEN], *url = NULL;
    ingest_time_iso8601(next_since, since);
    int rc = sc->st->api->url_with_param(sc->first_url, "since", since, &url);
    if (rc == INGEST_OK)
        rc = ingest_page_set_next(page, url);
    sc->st->api->free(url);
    if (rc == INGEST_OK)
        sc->page_since_us = next_since;
    return rc;
}

static int issues_page(void *arg, ingest_page *page)
{
    sync_ctx *sc = arg;
    json_object *list = records(sc, page);
    if (!list && !page->not_modified)
        return INGEST_EINVAL;
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *issue = json_object_array_get_idx(list, i);
        ingest_ts_cursor_see(&sc->cur, updated_at(sc, issue));
        if (ingest_json_get(issue, "pull_request"))
            continue; /* the pull_requests stream has them, with more detail */
        char buf[REPO_LEN];
        gh_origin o = origin_of(sc, issue);
        int rc =
            gh_emit_issue(sc->st, sc->run, issue, record_repo(sc, issue, "url", buf), NULL, &o);
        if (rc != INGEST_OK)
            return rc;
        sc->records++;
    }
    int rc = ingest_ts_cursor_commit(sc->st->api, sc->run, &sc->cur);
    return rc == INGEST_OK ? next_by_time(sc, page) : rc;
}

static int comments_page(void *arg, ingest_page *page)
{
    sync_ctx *sc = arg;
    json_object *list = records(sc, page);
    if (!list && !page->not_modified)
        return INGEST_EINVAL;
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *comment = json_object_array_get_idx(list, i);
        ingest_ts_cursor_see(&sc->cur, updated_at(sc, comment));
        char buf[REPO_LEN];
        gh_origin o = origin_of(sc, comment);
        int rc = gh_emit_comment(sc->st, sc->run, comment, NULL,
                                 record_repo(sc, comment, "url", buf), &o);
        if (rc != INGEST_OK)
            return rc;
        sc->records++;
    }
    int rc = ingest_ts_cursor_commit(sc->st->api, sc->run, &sc->cur);
    return rc == INGEST_OK ? next_by_time(sc, page) : rc;
}

/* ------------------------------------------------- newest-first (pulls) */

static int emit_reviews(sync_ctx *sc, json_object *pr, const char *repo);

static int pulls_page(void *arg, ingest_page *page)
{
    sync_ctx *sc = arg;
    json_object *list = records(sc, page);
    if (!list && !page->not_modified)
        return INGEST_EINVAL;
    int64_t low = 0;
    int older = 0;
    for (size_t i = 0; list && i < json_object_array_length(list) && !older; i++) {
        json_object *pr = json_object_array_get_idx(list, i);
        int64_t upd = updated_at(sc, pr);
        if (upd && upd < sc->cur.since_us) {
            older = 1; /* sorted by update, newest first: the rest is older too */
            break;
        }
        ingest_ts_cursor_see(&sc->cur, upd);
        low = upd ? upd : low;
        if (ingest_ts_cursor_done(&sc->cur, upd))
            continue; /* an interrupted walk handled it */
        char buf[REPO_LEN];
        const char *repo = record_repo(sc, pr, "url", buf);
        gh_origin o = origin_of(sc, pr);
        int rc = sc->stream == GH_PR_REVIEWS
                     ? emit_reviews(sc, pr, repo)
                     : gh_emit_pull_request(sc->st, sc->run, pr, repo, NULL, &o);
        if (rc != INGEST_OK)
            return rc;
        sc->records++;
    }
    int rc = low ? ingest_ts_cursor_checkpoint(sc->st->api, sc->run, &sc->cur, low)
                 : sc->st->api->flush(sc->run);
    return rc != INGEST_OK ? rc : older ? INGEST_PAGE_STOP : INGEST_OK;
}

/* Reviews of one pull request (nested walk, no ETag: one slot per pull
 * request would grow without bound). */
typedef struct review_walk {
    sync_ctx *sc;
    json_object *pr;
    const char *repo;
} review_walk;

static int reviews_page(void *arg, ingest_page *page)
{
    review_walk *rw = arg;
    json_object *list = records(rw->sc, page);
    if (!list && !page->not_modified)
        return INGEST_EINVAL;
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *review = json_object_array_get_idx(list, i);
        const char *state = ingest_json_str(review, "state");
        if (!ingest_json_get(review, "submitted_at") ||
            (state && strcasecmp(state, "PENDING") == 0))
            continue; /* a draft review is no event yet */
        gh_origin o = origin_of(rw->sc, review);
        int rc = gh_emit_review(rw->sc->st, rw->sc->run, review, rw->pr, rw->repo, &o);
        if (rc != INGEST_OK)
            return rc;
    }
    return INGEST_OK;
}

static int emit_reviews(sync_ctx *sc, json_object *pr, const char *repo)
{
    int64_t number = 0;
    if (!ingest_json_int64(pr, "number", &number))
        return INGEST_OK;
    char url[1024];
    snprintf(url, sizeof url, "%s/repos/%s/pulls/%lld/reviews?per_page=" GH_PER_PAGE, sc->set->base,
             sc->repo, (long long)number);
    review_walk rw = {sc, pr, repo};
    ingest_pager p = pager_for(sc, reviews_page, NULL, 0);
    p.arg = &rw;
    ingest_pager_stats ps;
    int rc = ingest_pager_run(&p, sc->st->ctx, url, &ps);
    add_stats(sc, &ps);
    if (rc == INGEST_ENOTFOUND) { /* this pull request only (deleted, transferred) */
        sc->st->api->log(sc->st->ctx, sc->run, INGEST_LOG_WARN,
                         "%s: reviews of pull request %lld cannot be read; skipped", sc->repo,
                         (long long)number);
        rc = INGEST_OK;
    }
    return rc;
}

/* ------------------------------------------------------------ one repo */

static void lower_copy(char *out, size_t len, const char *in)
{
    size_t i = 0;
    for (; in[i] && i + 1 < len; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

static int sync_repo(sync_ctx *sc, const char *repo)
{
    github_state *st = sc->st;
    const char *stream = gh_stream_names[sc->stream];
    char lower[REPO_LEN], name[REPO_LEN + 32], slot[REPO_LEN + 40];
    lower_copy(lower, sizeof lower, repo);
    snprintf(name, sizeof name, "%s:%s", stream, lower);
    snprintf(slot, sizeof slot, "etag:%s", name);
    sc->repo = repo;
    int rc = ingest_ts_cursor_load(st->api, st->ctx, sc->run, sc->job, name, &sc->cur);
    if (rc != INGEST_OK)
        return rc;
    int newest_first = sc->stream == GH_PULL_REQUESTS || sc->stream == GH_PR_REVIEWS;
    ingest_page_fn fn = newest_first              ? pulls_page
                        : sc->stream == GH_ISSUES ? issues_page
                                                  : comments_page;
    if (newest_first)
        snprintf(sc->first_url, sizeof sc->first_url,
                 "%s/repos/%s/pulls?state=all&sort=updated&direction=desc&per_page=" GH_PER_PAGE,
                 sc->set->base, repo);
    else
        snprintf(sc->first_url, sizeof sc->first_url,
                 "%s/repos/%s/issues%s?%ssort=updated&direction=asc&per_page=" GH_PER_PAGE,
                 sc->set->base, repo, sc->stream == GH_ISSUES ? "" : "/comments",
                 sc->stream == GH_ISSUES ? "state=all&" : "");
    char url[sizeof sc->first_url + 64];
    snprintf(url, sizeof url, "%s", sc->first_url);
    sc->page_since_us = 0;
    if (!newest_first && sc->cur.since_us > 0) {
        char since[INGEST_ISO8601_LEN], *with = NULL;
        ingest_time_iso8601(sc->cur.since_us, since);
        rc = st->api->url_with_param(sc->first_url, "since", since, &with);
        if (rc == INGEST_OK)
            snprintf(url, sizeof url, "%s", with);
        st->api->free(with);
        sc->page_since_us = sc->cur.since_us;
    }
    /* A full refresh reads everything again: no conditional requests. */
    ingest_pager p = pager_for(sc, fn, sc->job->full_refresh ? NULL : slot, newest_first);
    ingest_pager_stats ps = {0};
    if (rc == INGEST_OK)
        rc = ingest_pager_run(&p, st->ctx, url, &ps);
    add_stats(sc, &ps);
    if (rc == INGEST_OK)
        rc = ingest_ts_cursor_commit(st->api, sc->run, &sc->cur);
    return rc;
}

/* --------------------------------------------------------- organizations */

static int org_page(void *arg, ingest_page *page)
{
    sync_ctx *sc = arg;
    json_object *list = records(sc, page);
    if (!list && !page->not_modified)
        return INGEST_EINVAL;
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *r = json_object_array_get_idx(list, i);
        const char *full = ingest_json_str(r, "full_name");
        if (!full || strlen(full) >= REPO_LEN ||
            (ingest_json_true(r, "archived") && !sc->set->include_archived))
            continue;
        int rc = repos_add(sc->repos, full);
        if (rc != INGEST_OK)
            return rc;
    }
    return INGEST_OK;
}

/* The configured repositories plus every repository of the configured
 * organizations, without duplicates. An organization we cannot list is
 * skipped (and reported), not fatal. */
static int resolve_repos(sync_ctx *sc, repo_list *out)
{
    const gh_settings *c = sc->set;
    int rc = INGEST_OK;
    for (size_t i = 0; rc == INGEST_OK && i < c->repositories.count; i++)
        rc = repos_add(out, c->repositories.items[i]);
    sc->repos = out;
    for (size_t i = 0; rc == INGEST_OK && i < c->organizations.count; i++) {
        char url[1024];
        snprintf(url, sizeof url, "%s/orgs/%s/repos?type=all&sort=full_name&per_page=" GH_PER_PAGE,
                 c->base, c->organizations.items[i]);
        sc->repo = c->organizations.items[i];
        ingest_pager p = pager_for(sc, org_page, NULL, 0);
        ingest_pager_stats ps;
        rc = ingest_pager_run(&p, sc->st->ctx, url, &ps);
        add_stats(sc, &ps);
        if (rc == INGEST_ENOTFOUND) {
            ingest_health_degrade(&sc->st->health, sc->st->api, sc->st->ctx, sc->run,
                                  "organization %s cannot be listed (no access or no such "
                                  "organization); skipped",
                                  c->organizations.items[i]);
            sc->skipped++;
            rc = INGEST_OK;
        }
    }
    return rc;
}

/* ------------------------------------------------------------------ sync */

/* Every repository of the settings, one after the other. */
static int sync_repos(sync_ctx *sc, repo_list *repos)
{
    github_state *st = sc->st;
    int rc = resolve_repos(sc, repos);
    for (size_t i = 0; rc == INGEST_OK && i < repos->n; i++) {
        rc = sync_repo(sc, repos->items[i]);
        if (rc == INGEST_ENOTFOUND) { /* 403/404/410: gone, private or disabled */
            ingest_health_degrade(&st->health, st->api, st->ctx, sc->run,
                                  "%s of %s cannot be read (no access, no such repository, or "
                                  "the feature is disabled); skipped",
                                  sc->job->stream, repos->items[i]);
            st->api->metric_add(st->m_repos_skipped, 1);
            sc->skipped++;
            rc = INGEST_OK;
        }
    }
    return rc;
}

/* Health (OK after a sync that skipped nothing) and the job's summary. */
static void report(const sync_ctx *sc, size_t n_repos, int rc)
{
    github_state *st = sc->st;
    const char *stream = sc->job->stream;
    if (rc == INGEST_OK && sc->skipped == 0) {
        char detail[96];
        snprintf(detail, sizeof detail, "last %s sync complete", stream);
        ingest_health_set(&st->health, INGEST_HEALTH_OK, detail);
    }
    st->api->log(st->ctx, sc->run, rc == INGEST_OK ? INGEST_LOG_INFO : INGEST_LOG_WARN,
                 "sync %s: %zu repositories, %ld requests (%ld not modified), %ld records, "
                 "%ld skipped, status %d",
                 stream, n_repos, sc->requests, sc->not_modified, sc->records, sc->skipped, rc);
}

int gh_sync(ingest_run *run, void *state, const ingest_job *job)
{
    github_state *st = state;
    const ingest_host_api *api = st->api;
    int stream = job->stream ? gh_stream_index(job->stream) : -1;
    if (stream < 0)
        return INGEST_ENOTFOUND;
    if (!INGEST_API_HAS(api, http_request) || !INGEST_API_HAS(api, url_with_param))
        return INGEST_EUNSUPPORTED;
    if (!job->connection_id) {
        api->log(st->ctx, run, INGEST_LOG_WARN, "sync of %s needs a connection", job->stream);
        return INGEST_ENOTFOUND;
    }
    gh_settings set;
    char err[256];
    int rc = gh_settings_load(st, run, &set, err, sizeof err);
    if (rc != INGEST_OK) {
        api->log(st->ctx, run, INGEST_LOG_ERROR, "sync %s: %s", job->stream, err);
        return rc;
    }
    if (!(set.streams & (1u << stream))) {
        api->log(st->ctx, run, INGEST_LOG_DEBUG, "stream %s is not in the connection's streams",
                 job->stream);
        gh_settings_free(&set);
        return INGEST_OK;
    }
    sync_ctx sc = {.st = st, .run = run, .job = job, .set = &set, .stream = (gh_stream)stream};
    repo_list repos = {0};
    rc = sync_repos(&sc, &repos);
    report(&sc, repos.n, rc);
    repos_free(&repos);
    gh_settings_free(&set);
    return rc;
}
