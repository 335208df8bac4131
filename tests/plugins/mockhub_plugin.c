/*
 * mockhub_plugin.c — a connector for tests/integration/mock_provider.py that
 * uses only the host's HTTP API: it pages through GET {base_url}/items with
 * a cursor read from each JSON body (meta.next_cursor), emits one signal per
 * item keyed by the item's id, and commits every page with the cursor that
 * fetches the next one, so a retried job resumes where it stopped.
 * Requests carry the connection's credentials (added by the host) when the
 * job has a connection.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/plugin.h"

#define STREAM "items"
#define CURSOR_PATH "meta.next_cursor"

typedef struct mockhub_conf {
    const char *base_url;
    int64_t bucket_requests; /* > 0: every request in rate bucket "items.list" */
    int64_t bucket_window_s;
} mockhub_conf;

static const ingest_config_field mockhub_config[] = {
    {.key = "base_url",
     .type = INGEST_CONF_STRING,
     .required = 1,
     .min = 8,
     .max = 512,
     .offset = offsetof(mockhub_conf, base_url),
     .doc = "the mock provider's base URL, e.g. http://127.0.0.1:8123"},
    {.key = "bucket_requests",
     .type = INGEST_CONF_INT,
     .default_value = "0",
     .min = 0,
     .max = 100000,
     .offset = offsetof(mockhub_conf, bucket_requests),
     .doc = "> 0: requests go in rate bucket items.list with this quota (ABI minor 3)"},
    {.key = "bucket_window_s",
     .type = INGEST_CONF_INT,
     .default_value = "60",
     .min = 1,
     .max = 3600,
     .offset = offsetof(mockhub_conf, bucket_window_s),
     .doc = "the rate bucket's window"},
};

static const ingest_stream mockhub_streams[] = {
    {.name = STREAM, .primary_key = "id", .cursor_field = "id"},
};

typedef struct mockhub_state {
    const ingest_host_api *api;
    ingest_ctx *ctx;
    const mockhub_conf *conf;
} mockhub_state;

/* One item -> one signal; the item's id is the dedupe key, so a page that
 * is fetched twice stores nothing twice. */
static int emit_item(mockhub_state *st, ingest_run *run, json_object *item)
{
    json_object *id = NULL;
    if (!json_object_is_type(item, json_type_object) || !json_object_object_get_ex(item, "id", &id))
        return INGEST_EINVAL;
    const char *text = json_object_to_json_string_ext(item, JSON_C_TO_STRING_PLAIN);
    ingest_signal sig = {.hdr = INGEST_ABI_HEADER(ingest_signal),
                         .kind = "mockhub.item",
                         .dedupe_key = json_object_get_string(id),
                         .occurred_at_us = st->api->now_us(),
                         .payload_json = text,
                         .source_id = json_object_get_string(id),
                         .source_type = "item"};
    return st->api->emit(run, &sig);
}

static int emit_page(mockhub_state *st, ingest_run *run, const ingest_http_response *resp)
{
    json_object *doc = json_tokener_parse(resp->body), *items = NULL;
    int rc = INGEST_EINVAL;
    if (doc && json_object_object_get_ex(doc, "items", &items) &&
        json_object_is_type(items, json_type_array)) {
        rc = INGEST_OK;
        for (size_t i = 0; rc == INGEST_OK && i < json_object_array_length(items); i++)
            rc = emit_item(st, run, json_object_array_get_idx(items, i));
    }
    json_object_put(doc);
    return rc;
}

/* A bucket name that could not be a limiter key is refused before any
 * request goes out (the bucket test fails the job otherwise). */
static int bad_bucket_refused(mockhub_state *st, ingest_run *run, const ingest_http_request *good)
{
    ingest_http_request bad = *good;
    bad.rate_bucket = "items list";
    ingest_http_response *resp = NULL;
    int rc = st->api->http_request(run, &bad, &resp);
    st->api->http_response_free(resp);
    return rc == INGEST_EINVAL;
}

/* GET one page; a non-200 answer that the host did not retry away fails. */
static int fetch(mockhub_state *st, ingest_run *run, const ingest_job *job, const char *url,
                 ingest_http_response **resp)
{
    static const ingest_header accept[] = {{"Accept", "application/json"}};
    ingest_http_request req = {.hdr = INGEST_ABI_HEADER(ingest_http_request),
                               .method = "GET",
                               .url = url,
                               .headers = accept,
                               .n_headers = 1,
                               .auth = job->connection_id ? INGEST_HTTP_AUTH_CONNECTION
                                                          : INGEST_HTTP_AUTH_NONE};
    if (st->conf->bucket_requests > 0) {
        req.rate_bucket = "items.list";
        req.rate_bucket_limit = (ingest_rate_limit){(uint32_t)st->conf->bucket_requests,
                                                    (uint32_t)st->conf->bucket_window_s};
    }
    int rc = st->api->http_request(run, &req, resp);
    if (rc == INGEST_OK && st->conf->bucket_requests > 0 && !bad_bucket_refused(st, run, &req))
        rc = INGEST_EIO;
    if (rc == INGEST_OK && (*resp)->status != 200) {
        st->api->log(st->ctx, run, INGEST_LOG_WARN, "GET items answered HTTP %ld", (*resp)->status);
        rc = (*resp)->status >= 500 ? INGEST_EAGAIN : INGEST_EIO;
    }
    return rc;
}

/* The URL of the page after `cursor` (NULL: the first page). */
static int page_url(mockhub_state *st, const char *cursor, char **url)
{
    char base[600];
    snprintf(base, sizeof base, "%s/items", st->conf->base_url);
    if (cursor)
        return st->api->url_with_param(base, "cursor", cursor, url);
    *url = strdup(base);
    return *url ? INGEST_OK : INGEST_ENOMEM;
}

/* Fetch and commit one page; *cursor becomes the next page's cursor (NULL
 * after the last page). */
static int sync_page(mockhub_state *st, ingest_run *run, const ingest_job *job, char **cursor)
{
    char *url = NULL, *next = NULL;
    ingest_http_response *resp = NULL;
    int rc = page_url(st, *cursor, &url);
    if (rc == INGEST_OK)
        rc = fetch(st, run, job, url, &resp);
    if (rc == INGEST_OK)
        rc = emit_page(st, run, resp);
    if (rc == INGEST_OK)
        rc = st->api->json_cursor(resp, CURSOR_PATH, &next);
    if (rc == INGEST_OK)
        rc = next ? st->api->cursor_set(run, job->stream, next) : st->api->flush(run);
    if (rc != INGEST_OK && resp && resp->error && resp->error[0])
        st->api->log(st->ctx, run, INGEST_LOG_WARN, "page failed (%d): %s", rc, resp->error);
    st->api->http_response_free(resp);
    free(url);
    st->api->free(*cursor);
    *cursor = next;
    return rc;
}

static int mockhub_sync(ingest_run *run, void *state, const ingest_job *job)
{
    mockhub_state *st = state;
    if (!INGEST_API_HAS(st->api, http_request))
        return INGEST_EUNSUPPORTED;
    char *cursor = NULL;
    int rc = job->full_refresh ? INGEST_OK : st->api->cursor_get(run, job->stream, &cursor);
    long pages = 0;
    do {
        if (rc == INGEST_OK)
            rc = sync_page(st, run, job, &cursor);
        pages++;
    } while (rc == INGEST_OK && cursor);
    st->api->free(cursor);
    if (rc == INGEST_OK)
        st->api->log(st->ctx, run, INGEST_LOG_INFO, "sync done: %ld page(s)", pages);
    return rc;
}

static int mockhub_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    mockhub_state *st = calloc(1, sizeof *st);
    if (!st)
        return INGEST_ENOMEM;
    st->api = api;
    st->ctx = ctx;
    st->conf = conf;
    *state = st;
    return INGEST_OK;
}

static void mockhub_shutdown(void *state) { free(state); }

static const ingest_plugin descriptor = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = "mockhub",
    .version = "1.0.0",
    .description = "test connector for the mock provider (HTTP API, cursor pagination)",
    .auth = {.kind = INGEST_AUTH_TOKEN},
    .streams = INGEST_ARRAY(mockhub_streams),
    .rate_limit = {600, 60},
    .config = INGEST_ARRAY(mockhub_config),
    .conf_size = sizeof(mockhub_conf),
    .init = mockhub_init,
    .shutdown = mockhub_shutdown,
    .sync = mockhub_sync,
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &descriptor; }
