/* pager.c — GET page after page along Link rel="next", with an ETag per walk
 * kept in a cursor so an unchanged listing costs one conditional request. */
#include <stdlib.h>
#include <string.h>

#include "ingest/helpers.h"

int ingest_page_set_next(ingest_page *page, const char *url)
{
    char *copy = NULL;
    if (url && !(copy = strdup(url)))
        return INGEST_ENOMEM;
    free(page->next_override_);
    page->next_override_ = copy;
    page->next_set_ = 1;
    return INGEST_OK;
}

/* The remembered first URL and ETag of the last completed walk. */
typedef struct etag_entry {
    char *url;
    char *etag;
} etag_entry;

static void entry_free(etag_entry *e)
{
    free(e->url);
    free(e->etag);
    e->url = e->etag = NULL;
}

static int entry_load(const ingest_pager *p, etag_entry *e)
{
    char *value = NULL;
    int rc = p->api->cursor_get(p->run, p->etag_slot, &value);
    if (rc != INGEST_OK || !value)
        return rc;
    json_object *o = ingest_json_parse(value, strlen(value));
    p->api->free(value);
    const char *url = ingest_json_str(o, "url"), *etag = ingest_json_str(o, "etag");
    if (url && etag) {
        e->url = strdup(url);
        e->etag = strdup(etag);
        if (!e->url || !e->etag)
            entry_free(e);
    }
    json_object_put(o);
    return INGEST_OK;
}

static int entry_store(const ingest_pager *p, const char *url, const char *etag)
{
    json_object *o = json_object_new_object();
    if (!o)
        return INGEST_ENOMEM;
    json_object_object_add(o, "url", json_object_new_string(url));
    json_object_object_add(o, "etag", json_object_new_string(etag));
    char *text = ingest_json_text(o);
    json_object_put(o);
    int rc = text ? p->api->cursor_set(p->run, p->etag_slot, text) : INGEST_ENOMEM;
    free(text);
    return rc;
}

static int fetch(const ingest_pager *p, const char *url, const char *if_none_match,
                 ingest_http_response **resp)
{
    size_t n = p->n_headers + (if_none_match ? 1 : 0);
    ingest_header *h = calloc(n ? n : 1, sizeof *h);
    if (!h)
        return INGEST_ENOMEM;
    for (size_t i = 0; i < p->n_headers; i++)
        h[i] = p->headers[i];
    if (if_none_match)
        h[p->n_headers] = (ingest_header){"If-None-Match", if_none_match};
    ingest_http_request req = {.hdr = INGEST_ABI_HEADER(ingest_http_request),
                               .method = "GET",
                               .url = url,
                               .headers = h,
                               .n_headers = n,
                               .auth = p->auth,
                               .timeout_ms = p->timeout_ms};
    int rc = p->api->http_request(p->run, &req, resp);
    free(h);
    return rc;
}

static void warn(const ingest_pager *p, ingest_ctx *ctx, const ingest_http_response *resp, int rc,
                 const char *what)
{
    if (!ctx)
        return;
    char why[256];
    ingest_http_describe(resp, why, sizeof why);
    p->api->log(ctx, p->run, INGEST_LOG_WARN, "%s (status %d): %s", what, rc, why);
}

/* The Link rel="next" target as a malloc'd string (NULL: last page). */
static int next_link(const ingest_pager *p, const ingest_http_response *resp, char **out)
{
    char *host = NULL;
    *out = NULL;
    int rc = p->api->http_next_link(resp, &host);
    if (rc == INGEST_OK && host && !(*out = strdup(host)))
        rc = INGEST_ENOMEM;
    p->api->free(host);
    return rc;
}

typedef struct walk {
    const ingest_pager *p;
    ingest_ctx *ctx;
    ingest_pager_stats *st;
    etag_entry cached;
    char *first_etag; /* ETag of this walk's first page */
    int first_more;   /* the first page had a next page */
    int complete;     /* the walk ended normally (not max_pages) */
} walk;

/* One page: fetch, hand to the callback. *url becomes the next URL. */
static int one_page(walk *w, int index, char **url)
{
    const ingest_pager *p = w->p;
    const char *inm =
        index == 0 && w->cached.url && strcmp(w->cached.url, *url) == 0 ? w->cached.etag : NULL;
    ingest_http_response *resp = NULL;
    int rc = fetch(p, *url, inm, &resp);
    w->st->requests++;
    if (rc != INGEST_OK) {
        warn(p, w->ctx, resp, rc, "GET failed");
        p->api->http_response_free(resp);
        return rc;
    }
    ingest_page page = {.index = index, .url = *url, .resp = resp};
    json_object *body = NULL;
    char *next = NULL;
    if (resp->status == 304 && inm) {
        w->st->not_modified++;
        page.not_modified = 1;
    } else if (resp->status < 200 || resp->status >= 300) {
        rc = ingest_http_status_rc(resp->status);
        rc = rc == INGEST_OK ? INGEST_EIO : rc;
        warn(p, w->ctx, resp, rc, "GET answered with an error");
    } else if (!(body = ingest_json_parse(resp->body, resp->body_len))) {
        rc = INGEST_EINVAL;
        warn(p, w->ctx, resp, rc, "GET answered with a body that is not JSON");
    } else {
        rc = next_link(p, resp, &next);
        if (rc == INGEST_OK && index == 0) {
            const char *etag = p->api->http_header(resp, "ETag");
            w->first_more = next != NULL;
            if (etag && *etag && !(w->first_etag = strdup(etag)))
                rc = INGEST_ENOMEM;
        }
    }
    if (rc == INGEST_OK) {
        page.body = body;
        page.next_url = next;
        rc = p->on_page(p->arg, &page);
        w->st->pages++;
    }
    free(*url);
    *url = NULL;
    if (rc == INGEST_OK && !page.not_modified) {
        *url = page.next_set_ ? page.next_override_ : next;
        if (page.next_set_)
            page.next_override_ = NULL;
        else
            next = NULL;
    }
    if (rc == INGEST_PAGE_STOP || page.not_modified)
        rc = INGEST_OK; /* the walk ends here: nothing follows */
    free(page.next_override_);
    free(next);
    json_object_put(body);
    p->api->http_response_free(resp);
    return rc;
}

int ingest_pager_run(const ingest_pager *pager, ingest_ctx *ctx, const char *first_url,
                     ingest_pager_stats *stats)
{
    ingest_pager_stats local = {0};
    ingest_pager_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    if (!pager || !pager->api || !pager->on_page || !first_url)
        return INGEST_EINVAL;
    walk w = {.p = pager, .ctx = ctx, .st = st};
    int rc = pager->etag_slot ? entry_load(pager, &w.cached) : INGEST_OK;
    char *url = rc == INGEST_OK ? strdup(first_url) : NULL;
    if (rc == INGEST_OK && !url)
        rc = INGEST_ENOMEM;
    int index = 0;
    while (rc == INGEST_OK && url) {
        if (pager->max_pages > 0 && index >= pager->max_pages)
            break;
        rc = one_page(&w, index++, &url);
    }
    w.complete = rc == INGEST_OK && !url;
    free(url);
    /* Remember this walk's first ETag only when an unchanged first page
     * will mean an unchanged listing, and only for a walk that finished. */
    if (w.complete && pager->etag_slot && w.first_etag && (!w.first_more || pager->newest_first) &&
        !(w.cached.url && strcmp(w.cached.url, first_url) == 0 &&
          strcmp(w.cached.etag, w.first_etag) == 0))
        rc = entry_store(pager, first_url, w.first_etag);
    entry_free(&w.cached);
    free(w.first_etag);
    return rc;
}
