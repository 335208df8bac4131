/*
 * example.c — the smallest complete connector: copy this file to start a new one.
 *
 * It talks to no real provider. Instead it "pulls" a synthetic stream named
 * "counter": every tick it reads its cursor (the last sequence number it
 * stored), emits the next page of records as signals, and commits the page
 * together with the new cursor. Stop the daemon between two ticks and start
 * it again: the stream continues where it left off, without gaps or
 * duplicates. That is the same loop a real connector runs over an API's pages.
 *
 * What it shows, in order:
 *   1. the config struct and its schema (the host parses and validates it);
 *   2. the descriptor (name, version, streams, config, callbacks);
 *   3. init(): keep the api table, register a schedule and metrics;
 *   4. the tick: cursor_get -> emit -> cursor_set, and metrics updates;
 *   5. health() and shutdown().
 *
 * Rules a plugin follows (see sdk/ingest/plugin.h for the full contract):
 *   - everything mutable lives in the state struct returned by init();
 *   - no threads, signal handlers, sockets or database handles of its own;
 *   - registrations (schedules, metrics) only inside init().
 */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/plugin.h"

/* 1. Configuration: the host fills this struct from `plugins.example { ... }`
 * in hostd.conf (or INGEST_PLUGINS_EXAMPLE_<KEY>) after checking types and
 * bounds. Strings are host-owned and valid until shutdown() returns. */
typedef struct example_conf {
    const char *tenant_id; /* signals belong to a tenant */
    int64_t interval_ms;   /* how often to pull a page */
    int64_t page_size;     /* records per page */
    const char *greeting;  /* copied into every record, to show string config */
} example_conf;

static const ingest_config_field example_config[] = {
    {.key = "tenant_id",
     .type = INGEST_CONF_STRING,
     .required = 1,
     .min = 36,
     .max = 36,
     .offset = offsetof(example_conf, tenant_id),
     .doc = "tenant UUID the signals belong to"},
    {.key = "interval_ms",
     .type = INGEST_CONF_INT,
     .default_value = "60000",
     .min = 10,
     .max = 86400000,
     .offset = offsetof(example_conf, interval_ms),
     .doc = "milliseconds between two pages"},
    {.key = "page_size",
     .type = INGEST_CONF_INT,
     .default_value = "10",
     .min = 1,
     .max = 10000,
     .offset = offsetof(example_conf, page_size),
     .doc = "records emitted per page"},
    {.key = "greeting",
     .type = INGEST_CONF_STRING,
     .default_value = "hello",
     .offset = offsetof(example_conf, greeting),
     .doc = "text copied into every record"},
};

/* A stream the connector can pull; the host shows it in `list` and the API. */
static const ingest_stream example_streams[] = {
    {.name = "counter", .primary_key = "seq", .cursor_field = "seq"},
};

#define STREAM "counter"

/* All mutable state. One instance per loaded generation of the plugin. */
typedef struct example_state {
    const ingest_host_api *api;  /* valid until unload */
    ingest_ctx *ctx;             /* valid until shutdown() returns */
    const example_conf *conf;    /* host-owned, valid until shutdown() returns */
    ingest_metric *pages;        /* counter */
    ingest_metric *records;      /* counter */
    ingest_metric *last_seq;     /* gauge */
    ingest_metric *page_seconds; /* histogram */
} example_state;

/* Build one record's normalized payload with json-c (never by hand). The
 * returned string is malloc'd by us and freed by us. */
static char *record_payload(const example_state *st, int64_t seq)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "seq", json_object_new_int64(seq));
    json_object_object_add(o, "greeting", json_object_new_string(st->conf->greeting));
    char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return text;
}

/* Parse our cursor: the last stored sequence number, as decimal text. */
static int parse_cursor(const char *text, int64_t *seq)
{
    char *end;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < 0)
        return -1;
    *seq = v;
    return 0;
}

static int emit_record(example_state *st, ingest_run *run, int64_t seq)
{
    char dedupe[32];
    snprintf(dedupe, sizeof dedupe, "counter-%" PRId64, seq);
    char *payload = record_payload(st, seq);
    if (!payload)
        return INGEST_ENOMEM;
    ingest_signal sig = {
        .hdr = INGEST_ABI_HEADER(ingest_signal),
        .kind = "example.counted",
        .dedupe_key = dedupe, /* re-emitting the same seq stores nothing new */
        .occurred_at_us = st->api->now_us(),
        .payload_json = payload,
        .tenant_id = st->conf->tenant_id,
        .source_id = dedupe,
        .source_type = "counter",
    };
    int rc = st->api->emit(run, &sig); /* the host copies the signal */
    free(payload);
    return rc;
}

/* 4. A tick: runs on a worker thread; `run` is borrowed for this call. */
static int example_tick(ingest_run *run, void *state, void *arg)
{
    (void)arg;
    example_state *st = state;
    const ingest_host_api *api = st->api;
    int64_t started = api->now_us();

    char *cursor = NULL; /* host-allocated: we free it with api->free */
    int rc = api->cursor_get(run, STREAM, &cursor);
    if (rc != INGEST_OK)
        return rc; /* e.g. database down: the host logs and backs off */
    int64_t last = 0;
    if (cursor && parse_cursor(cursor, &last) < 0) {
        api->log(st->ctx, run, INGEST_LOG_ERROR, "unreadable cursor '%s', starting over", cursor);
        last = 0;
    }
    api->free(cursor);

    for (int64_t seq = last + 1; seq <= last + st->conf->page_size; seq++) {
        rc = emit_record(st, run, seq);
        if (rc != INGEST_OK)
            return rc;
    }
    /* One transaction: the page's signals and the cursor after them. */
    char next[32];
    snprintf(next, sizeof next, "%" PRId64, last + st->conf->page_size);
    rc = api->cursor_set(run, STREAM, next);
    if (rc != INGEST_OK)
        return rc;

    api->metric_add(st->pages, 1);
    api->metric_add(st->records, (double)st->conf->page_size);
    api->metric_set(st->last_seq, (double)(last + st->conf->page_size));
    api->metric_observe(st->page_seconds, (double)(api->now_us() - started) / 1e6);
    api->log(st->ctx, run, INGEST_LOG_DEBUG, "stored records %" PRId64 "..%" PRId64, last + 1,
             last + st->conf->page_size);
    return INGEST_OK;
}

/* 3. init: called once, after the host validated our config. */
static int example_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    example_state *st = calloc(1, sizeof *st);
    if (!st) {
        api->set_error(ctx, "out of memory");
        return INGEST_ENOMEM;
    }
    st->api = api;
    st->ctx = ctx;
    st->conf = conf;
    st->pages = api->metric_counter(ctx, "example_pages_total", "Pages stored");
    st->records = api->metric_counter(ctx, "example_records_total", "Records emitted");
    st->last_seq = api->metric_gauge(ctx, "example_last_seq", "Last stored sequence number");
    st->page_seconds =
        api->metric_histogram(ctx, "example_page_seconds", "Time to store one page", NULL, 0);
    int rc = api->schedule_every(ctx, "pull", (uint32_t)st->conf->interval_ms, example_tick, NULL);
    if (rc != INGEST_OK || !st->pages || !st->records || !st->last_seq || !st->page_seconds) {
        api->set_error(ctx, "cannot register the schedule or metrics (status %d)", rc);
        free(st);
        return rc != INGEST_OK ? rc : INGEST_EINVAL;
    }
    api->log(ctx, NULL, INGEST_LOG_INFO, "pulling %" PRId64 " records every %" PRId64 " ms",
             st->conf->page_size, st->conf->interval_ms);
    *state = st;
    return INGEST_OK;
}

/* 5. health: cheap, no I/O. */
static ingest_health_state example_health(void *state, char *detail, size_t detail_len)
{
    (void)state;
    snprintf(detail, detail_len, "ok");
    return INGEST_HEALTH_OK;
}

/* 5. shutdown: all our work has drained; free what init allocated. */
static void example_shutdown(void *state) { free(state); }

/* 2. The descriptor: static, read-only, returned by the one exported symbol. */
static const ingest_plugin example_plugin = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = "example",
    .version = "1.0.0",
    .description = "Synthetic counter stream showing schedules, cursors, signals and metrics",
    .auth = {.kind = INGEST_AUTH_NONE},
    .streams = INGEST_ARRAY(example_streams),
    .config = INGEST_ARRAY(example_config),
    .conf_size = sizeof(example_conf),
    .init = example_init,
    .shutdown = example_shutdown,
    .health = example_health,
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &example_plugin; }
