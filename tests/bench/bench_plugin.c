/*
 * bench_plugin.c — ingest_bench.so, the load generator of
 * tests/bench/signals_bench.sh. Not a connector: it talks to no vendor.
 *
 * A sync job on its one stream, "signals", emits `signals` small signals as
 * fast as the host takes them, through the same API a real connector uses:
 *
 *     kind         "bench.row"
 *     dedupe_key   "bench:<seq>"            (unique per tenant and source)
 *     payload      {"seq":<seq>,"v":"x"}   (about 20 bytes)
 *     occurred_at  now
 *     provenance   source_id "<seq>", source_type "bench" (the host adds the
 *                  content hash, ingested_at, batch id, job id and plugin)
 *
 * for seq = start .. start + signals - 1, and calls cursor_set() after every
 * `page_size` signals, so each page and the cursor after it commit in one
 * transaction — exactly the hot path the benchmark measures.
 *
 * Config (the `plugins.bench` group of hostd.conf):
 *
 *     plugins = { bench = { signals = 1000000; page_size = 5000; }; };
 *
 *     signals    total signals per sync job              (default 1000000)
 *     page_size  signals per cursor_set() transaction    (default 5000)
 *     tenant_id  tenant of every signal                  (default below)
 *     start      first sequence number                   (default 1)
 *
 * `start` lets repeated jobs against one database use fresh dedupe keys (a
 * repeated key stores nothing, which would measure ON CONFLICT, not inserts).
 *
 * The cursor is the last committed sequence number. An incremental job whose
 * cursor lies inside [start, start + signals - 1] resumes after it — a retried
 * job does not redo committed pages; any other cursor (or a full refresh)
 * starts at `start`.
 *
 * Everything is formatted with snprintf of numbers and fixed ASCII, so no
 * string needs JSON escaping and the plugin needs no JSON library.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/plugin.h"

/* 1. Configuration, filled by the host after checking types and bounds. */
typedef struct bench_conf {
    int64_t signals;       /* total signals per sync job */
    int64_t page_size;     /* signals per cursor_set() */
    const char *tenant_id; /* host-owned, valid until shutdown() returns */
    int64_t start;         /* first sequence number */
} bench_conf;

static const ingest_config_field bench_config[] = {
    {.key = "signals",
     .type = INGEST_CONF_INT,
     .default_value = "1000000",
     .min = 1,
     .max = 1000000000,
     .offset = offsetof(bench_conf, signals),
     .doc = "signals emitted by one sync job"},
    {.key = "page_size",
     .type = INGEST_CONF_INT,
     .default_value = "5000",
     .min = 1,
     .max = 1000000,
     .offset = offsetof(bench_conf, page_size),
     .doc = "signals committed per cursor_set() transaction"},
    {.key = "tenant_id",
     .type = INGEST_CONF_STRING,
     .default_value = "00000000-0000-4000-8000-00000000beef",
     .min = 36,
     .max = 36,
     .offset = offsetof(bench_conf, tenant_id),
     .doc = "tenant UUID of every signal"},
    {.key = "start",
     .type = INGEST_CONF_INT,
     .default_value = "1",
     .min = 0,
     .max = 1e15,
     .offset = offsetof(bench_conf, start),
     .doc = "first sequence number (fresh dedupe keys for repeated runs)"},
};

/* The stream a sync job names: INSERT INTO sync_jobs (tenant_id, provider,
 * stream) VALUES ('<uuid>', 'bench', 'signals'). */
static const ingest_stream bench_streams[] = {
    {.name = "signals", .primary_key = "seq", .cursor_field = "seq"},
};

/* 2. All mutable state lives here; one per loaded generation of the plugin. */
typedef struct bench_state {
    const ingest_host_api *api; /* valid until unload */
    ingest_ctx *ctx;            /* valid until shutdown() returns */
    const bench_conf *conf;     /* host-owned, valid until shutdown() returns */
    ingest_metric *emitted;     /* counter: signals committed by cursor_set() */
    ingest_metric *pages;       /* counter: cursor_set() calls that succeeded */
} bench_state;

/* Where an incremental job starts: after a committed cursor of this job's
 * range, else at `start`. */
static int64_t first_seq(const bench_conf *c, const char *cursor)
{
    if (!cursor)
        return c->start;
    char *end;
    long long v = strtoll(cursor, &end, 10);
    if (end == cursor || *end != '\0' || v < c->start || v >= c->start + c->signals)
        return c->start;
    return (int64_t)v + 1;
}

/* Emit one signal. All buffers are on the stack: emit() copies them. */
static int emit_one(const bench_state *st, ingest_run *run, int64_t seq, int64_t now_us)
{
    char key[40], id[24], payload[64];
    snprintf(key, sizeof key, "bench:%" PRId64, seq);
    snprintf(id, sizeof id, "%" PRId64, seq);
    snprintf(payload, sizeof payload, "{\"seq\":%" PRId64 ",\"v\":\"x\"}", seq);
    ingest_signal sig = {
        .hdr = INGEST_ABI_HEADER(ingest_signal),
        .kind = "bench.row",
        .dedupe_key = key,
        .occurred_at_us = now_us,
        .payload_json = payload,
        .tenant_id = st->conf->tenant_id,
        .source_id = id,
        .source_type = "bench",
    };
    return st->api->emit(run, &sig);
}

/* 3. The sync callback: runs on a worker; run and job are borrowed. */
static int bench_sync(ingest_run *run, void *state, const ingest_job *job)
{
    bench_state *st = state;
    const ingest_host_api *api = st->api;
    const bench_conf *c = st->conf;

    char *cursor = NULL; /* host-allocated: freed with api->free */
    int rc = job->full_refresh ? INGEST_OK : api->cursor_get(run, job->stream, &cursor);
    if (rc != INGEST_OK)
        return rc;
    int64_t seq = first_seq(c, cursor);
    api->free(cursor);

    const int64_t last = c->start + c->signals - 1;
    int64_t started = api->now_us(), in_page = 0;
    api->log(st->ctx, run, INGEST_LOG_INFO,
             "emitting signals %" PRId64 "..%" PRId64 ", %" PRId64 " per page", seq, last,
             c->page_size);
    for (; seq <= last; seq++) {
        /* One clock read per page is plenty: the value is only data. */
        if (in_page == 0)
            started = api->now_us();
        if ((rc = emit_one(st, run, seq, started)) != INGEST_OK)
            return rc;
        if (++in_page == c->page_size || seq == last) {
            /* The page's signals and the cursor after them, in one
             * transaction; blocks until durable. */
            char next[24];
            snprintf(next, sizeof next, "%" PRId64, seq);
            if ((rc = api->cursor_set(run, job->stream, next)) != INGEST_OK)
                return rc;
            api->metric_add(st->emitted, (double)in_page);
            api->metric_add(st->pages, 1);
            in_page = 0;
        }
    }
    api->log(st->ctx, run, INGEST_LOG_INFO, "emitted up to %" PRId64, last);
    return INGEST_OK;
}

/* 4. init: called once after the host validated our config. */
static int bench_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    bench_state *st = calloc(1, sizeof *st);
    if (!st) {
        api->set_error(ctx, "out of memory");
        return INGEST_ENOMEM;
    }
    st->api = api;
    st->ctx = ctx;
    st->conf = conf;
    st->emitted = api->metric_counter(ctx, "bench_signals_committed_total",
                                      "Signals committed (stored or deduplicated)");
    st->pages = api->metric_counter(ctx, "bench_pages_total", "Pages committed");
    if (!st->emitted || !st->pages) {
        api->set_error(ctx, "cannot register metrics");
        free(st);
        return INGEST_EINVAL;
    }
    *state = st;
    return INGEST_OK;
}

/* 5. shutdown: all our work has drained. */
static void bench_shutdown(void *state) { free(state); }

static ingest_health_state bench_health(void *state, char *detail, size_t detail_len)
{
    (void)state;
    snprintf(detail, detail_len, "ok");
    return INGEST_HEALTH_OK;
}

/* 6. The descriptor: static, read-only, returned by the one exported symbol. */
static const ingest_plugin bench_plugin = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = "bench",
    .version = "1.0.0",
    .description = "Benchmark load: a sync job emits N small signals with dedupe keys",
    .auth = {.kind = INGEST_AUTH_NONE},
    .streams = INGEST_ARRAY(bench_streams),
    .config = INGEST_ARRAY(bench_config),
    .conf_size = sizeof(bench_conf),
    .init = bench_init,
    .shutdown = bench_shutdown,
    .health = bench_health,
    .sync = bench_sync,
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &bench_plugin; }
