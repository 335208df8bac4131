/*
 * test_plugin.c — one source, built into several plugins by the defines
 * below, to exercise the loader and reload paths:
 *   PLUGIN_NAME      descriptor name (the file must be ingest_<name>.so)
 *   PLUGIN_VERSION   descriptor version
 *   ENTRY_MAJOR      ABI major in the exported symbol's name (default 1)
 *   HEADER_MAJOR     ABI major written into the descriptor header (default 1)
 *   NO_ENTRY         export no entry symbol at all
 * Config keys let one build fail init, sleep in ticks or emit signals.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/plugin.h"

#ifndef PLUGIN_NAME
#error PLUGIN_NAME must be defined
#endif
#ifndef PLUGIN_VERSION
#define PLUGIN_VERSION "1.0.0"
#endif
#ifndef ENTRY_MAJOR
#define ENTRY_MAJOR 1
#endif
#ifndef HEADER_MAJOR
#define HEADER_MAJOR INGEST_ABI_MAJOR
#endif

typedef struct test_conf {
    int fail_init;
    int64_t interval_ms;
    int64_t tick_sleep_ms;
    const char *tenant_id;
    const char *token;
    int64_t sync_pages;
    int64_t sync_page_size;
    int64_t sync_page_sleep_ms;
    int sync_fail;
    const char *sync_secret;
} test_conf;

static const ingest_config_field test_config[] = {
    {.key = "fail_init",
     .type = INGEST_CONF_BOOL,
     .default_value = "false",
     .offset = offsetof(test_conf, fail_init),
     .doc = "make init() fail"},
    {.key = "interval_ms",
     .type = INGEST_CONF_INT,
     .default_value = "0",
     .min = 0,
     .max = 3600000,
     .offset = offsetof(test_conf, interval_ms),
     .doc = "tick interval; 0 registers no schedule"},
    {.key = "tick_sleep_ms",
     .type = INGEST_CONF_INT,
     .default_value = "0",
     .min = 0,
     .max = 600000,
     .offset = offsetof(test_conf, tick_sleep_ms),
     .doc = "time each tick takes"},
    {.key = "tenant_id",
     .type = INGEST_CONF_STRING,
     .default_value = "00000000-0000-4000-8000-000000000001",
     .offset = offsetof(test_conf, tenant_id),
     .doc = "tenant of emitted signals"},
    {.key = "token",
     .type = INGEST_CONF_SECRET,
     .offset = offsetof(test_conf, token),
     .doc = "a secret that must never reach a log line"},
    {.key = "sync_pages",
     .type = INGEST_CONF_INT,
     .default_value = "3",
     .min = 0,
     .max = 100000,
     .offset = offsetof(test_conf, sync_pages),
     .doc = "pages per sync job"},
    {.key = "sync_page_size",
     .type = INGEST_CONF_INT,
     .default_value = "5",
     .min = 1,
     .max = 100000,
     .offset = offsetof(test_conf, sync_page_size),
     .doc = "signals per page"},
    {.key = "sync_page_sleep_ms",
     .type = INGEST_CONF_INT,
     .default_value = "0",
     .min = 0,
     .max = 600000,
     .offset = offsetof(test_conf, sync_page_sleep_ms),
     .doc = "time each page takes"},
    {.key = "sync_fail",
     .type = INGEST_CONF_BOOL,
     .default_value = "false",
     .offset = offsetof(test_conf, sync_fail),
     .doc = "make every sync fail"},
    {.key = "sync_secret",
     .type = INGEST_CONF_STRING,
     .offset = offsetof(test_conf, sync_secret),
     .doc = "secret field each sync reads; its SHA-256 goes into the payloads"},
};

typedef struct test_state {
    const ingest_host_api *api;
    ingest_ctx *ctx;
    const test_conf *conf;
    ingest_metric *ticks;
} test_state;

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Each tick sleeps (to hold work in flight), then stores one signal keyed by
 * the tick's sequence number, kept in the cursor. */
static int test_tick(ingest_run *run, void *state, void *arg)
{
    (void)arg;
    test_state *st = state;
    if (st->conf->tick_sleep_ms)
        sleep_ms(st->conf->tick_sleep_ms);
    char *cursor = NULL;
    int rc = st->api->cursor_get(run, "ticks", &cursor);
    if (rc != INGEST_OK)
        return rc;
    long long seq = cursor ? atoll(cursor) + 1 : 1;
    st->api->free(cursor);
    char key[64], payload[128], next[32];
    snprintf(key, sizeof key, "tick-%lld", seq);
    snprintf(payload, sizeof payload, "{\"seq\":%lld,\"version\":\"%s\"}", seq, PLUGIN_VERSION);
    ingest_signal sig = {.hdr = INGEST_ABI_HEADER(ingest_signal),
                         .kind = "test.tick",
                         .dedupe_key = key,
                         .occurred_at_us = st->api->now_us(),
                         .payload_json = payload,
                         .tenant_id = st->conf->tenant_id};
    if ((rc = st->api->emit(run, &sig)) != INGEST_OK)
        return rc;
    snprintf(next, sizeof next, "%lld", seq);
    st->api->metric_add(st->ticks, 1);
    if (st->conf->token)
        st->api->log(st->ctx, run, INGEST_LOG_INFO, "tick %lld using token %s", seq,
                     st->conf->token);
    return st->api->cursor_set(run, "ticks", next);
}

/* A sync job: pages of sequential records after the stream's cursor; each
 * page's signals and the cursor after them commit together. */
static int test_sync(ingest_run *run, void *state, const ingest_job *job)
{
    test_state *st = state;
    const ingest_host_api *api = st->api;
    if (st->conf->sync_fail) {
        api->log(st->ctx, run, INGEST_LOG_WARN, "failing on purpose (sync_fail)");
        return INGEST_EIO;
    }
    char secret_hash[65] = "";
    if (st->conf->sync_secret) {
        char *secret = NULL;
        int src = api->secret_get(run, st->conf->sync_secret, &secret);
        if (src != INGEST_OK)
            return src;
        api->sha256_hex(secret, strlen(secret), secret_hash);
        api->secret_free(secret);
    }
    char *cursor = NULL;
    int rc = job->full_refresh ? INGEST_OK : api->cursor_get(run, job->stream, &cursor);
    if (rc != INGEST_OK)
        return rc;
    long long seq = cursor ? atoll(cursor) : 0;
    api->free(cursor);
    const char *scope = job->connection_id ? job->connection_id : job->stream;
    for (int64_t page = 0; page < st->conf->sync_pages; page++) {
        if (st->conf->sync_page_sleep_ms)
            sleep_ms(st->conf->sync_page_sleep_ms);
        for (int64_t i = 0; i < st->conf->sync_page_size; i++) {
            seq++;
            char key[128], payload[256];
            snprintf(key, sizeof key, "%s:%lld", scope, seq);
            snprintf(payload, sizeof payload,
                     "{\"seq\":%lld,\"job\":\"%s\",\"attempt\":%d,\"version\":\"%s\","
                     "\"secret_sha256\":\"%s\"}",
                     seq, job->job_id, job->attempt, PLUGIN_VERSION, secret_hash);
            ingest_signal sig = {.hdr = INGEST_ABI_HEADER(ingest_signal),
                                 .kind = "test.synced",
                                 .dedupe_key = key,
                                 .occurred_at_us = api->now_us(),
                                 .payload_json = payload};
            if ((rc = api->emit(run, &sig)) != INGEST_OK)
                return rc;
        }
        char next[32];
        snprintf(next, sizeof next, "%lld", seq);
        if ((rc = api->cursor_set(run, job->stream, next)) != INGEST_OK)
            return rc;
        api->log(st->ctx, run, INGEST_LOG_INFO, "page %lld committed up to seq %lld",
                 (long long)page + 1, seq);
    }
    return INGEST_OK;
}

static int test_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    const test_conf *c = conf;
    if (c->fail_init) {
        api->set_error(ctx, "refusing to start because fail_init is set");
        return INGEST_EINVAL;
    }
    test_state *st = calloc(1, sizeof *st);
    if (!st)
        return INGEST_ENOMEM;
    st->api = api;
    st->ctx = ctx;
    st->conf = c;
    st->ticks = api->metric_counter(ctx, "test_ticks_total", "ticks run");
    if (c->interval_ms > 0 &&
        api->schedule_every(ctx, "tick", (uint32_t)c->interval_ms, test_tick, NULL) != INGEST_OK) {
        free(st);
        return INGEST_EINVAL;
    }
    *state = st;
    return INGEST_OK;
}

static void test_shutdown(void *state) { free(state); }

static const ingest_plugin descriptor = {
    .hdr = {INGEST_ABI_MAGIC, HEADER_MAJOR, INGEST_ABI_MINOR, sizeof(ingest_plugin)},
    .name = PLUGIN_NAME,
    .version = PLUGIN_VERSION,
    .description = "test plugin " PLUGIN_NAME,
    .config = INGEST_ARRAY(test_config),
    .conf_size = sizeof(test_conf),
    .init = test_init,
    .shutdown = test_shutdown,
    .sync = test_sync,
};

#define ENTRY_NAME_(m) ingest_plugin_v##m
#define ENTRY_NAME(m) ENTRY_NAME_(m)

#ifdef NO_ENTRY
/* Something exported, but not the entry point. */
INGEST_EXPORT const ingest_plugin *not_the_entry_point(void) { return &descriptor; }
#else
INGEST_EXPORT const ingest_plugin *ENTRY_NAME(ENTRY_MAJOR)(void) { return &descriptor; }
#endif
