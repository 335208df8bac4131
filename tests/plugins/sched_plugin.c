/*
 * sched_plugin.c — ingest_sched.so, a fixture for the sync engine tests.
 * Two streams ("alpha": host default interval, "beta": 7200 s). Each sync
 * sleeps sleep_ms, then fails (fail = true, or while the file fail_file
 * exists) or stores one signal keyed by the job id and moves the stream's
 * cursor to the job's attempt count. Webhooks (HMAC-SHA256 hex in
 * X-Sched-Signature) ask for a sync of the stream named by the body
 * ("alpha", "beta", or anything else to get the host's refusal logged).
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingest/plugin.h"

typedef struct sched_conf {
    int64_t sleep_ms;
    int fail;
    const char *fail_file;
} sched_conf;

static const ingest_config_field sched_config[] = {
    {.key = "sleep_ms",
     .type = INGEST_CONF_INT,
     .default_value = "0",
     .min = 0,
     .max = 600000,
     .offset = offsetof(sched_conf, sleep_ms),
     .doc = "time each sync takes"},
    {.key = "fail",
     .type = INGEST_CONF_BOOL,
     .default_value = "false",
     .offset = offsetof(sched_conf, fail),
     .doc = "make every sync fail"},
    {.key = "fail_file",
     .type = INGEST_CONF_STRING,
     .default_value = "",
     .offset = offsetof(sched_conf, fail_file),
     .doc = "syncs fail while this file exists"},
};

static const ingest_stream sched_streams[] = {
    {.name = "alpha", .primary_key = "id", .cursor_field = "seq", .default_interval_s = 0},
    {.name = "beta", .primary_key = "id", .cursor_field = "seq", .default_interval_s = 7200},
};

typedef struct sched_state {
    const ingest_host_api *api;
    ingest_ctx *ctx;
    const sched_conf *conf;
} sched_state;

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int should_fail(const sched_conf *c)
{
    return c->fail || (c->fail_file && *c->fail_file && access(c->fail_file, F_OK) == 0);
}

static int sched_sync(ingest_run *run, void *state, const ingest_job *job)
{
    sched_state *st = state;
    const ingest_host_api *api = st->api;
    if (st->conf->sleep_ms)
        sleep_ms(st->conf->sleep_ms);
    if (should_fail(st->conf)) {
        api->log(st->ctx, run, INGEST_LOG_WARN, "sched: failing on purpose");
        return INGEST_EIO;
    }
    /* The payload echoes the job and the connection's own settings. */
    char *config = NULL;
    if (INGEST_API_HAS(api, connection_config) && api->connection_config(run, &config) != INGEST_OK)
        return INGEST_EIO;
    json_object *p = json_object_new_object();
    json_object_object_add(p, "job", json_object_new_string(job->job_id));
    json_object_object_add(p, "stream", json_object_new_string(job->stream));
    json_object_object_add(p, "full", json_object_new_int(job->full_refresh));
    json_object_object_add(p, "backfill_since_us", json_object_new_int64(job->backfill_since_us));
    json_object_object_add(p, "lookback_us", json_object_new_int64(job->lookback_us));
    json_object_object_add(p, "config", config ? json_tokener_parse(config) : NULL);
    api->free(config);
    ingest_signal sig = {.hdr = INGEST_ABI_HEADER(ingest_signal),
                         .kind = "sched.synced",
                         .dedupe_key = job->job_id,
                         .occurred_at_us = api->now_us(),
                         .payload_json = json_object_to_json_string(p)};
    int rc = api->emit(run, &sig);
    json_object_put(p);
    if (rc != INGEST_OK)
        return rc;
    char cursor[32];
    snprintf(cursor, sizeof cursor, "%d", job->attempt);
    return api->cursor_set(run, job->stream, cursor);
}

static int sched_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    sched_state *st = calloc(1, sizeof *st);
    if (!st)
        return INGEST_ENOMEM;
    *st = (sched_state){api, ctx, conf};
    *state = st;
    return INGEST_OK;
}

static void sched_shutdown(void *state) { free(state); }

/* The body is the stream's name; "*" asks for every stream. */
static int sched_webhook(ingest_run *run, void *state, const ingest_delivery *d)
{
    sched_state *st = state;
    char stream[64];
    size_t n = d->body_len < sizeof stream - 1 ? d->body_len : sizeof stream - 1;
    memcpy(stream, d->body, n);
    stream[n] = '\0';
    int rc = st->api->request_sync(run, strcmp(stream, "*") == 0 ? NULL : stream);
    st->api->log(st->ctx, run, INGEST_LOG_INFO, "sched: sync of %s requested: status %d", stream,
                 rc);
    return rc == INGEST_ENOTFOUND ? INGEST_OK : rc; /* an unknown stream is not worth a retry */
}

static const ingest_plugin descriptor = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = "sched",
    .version = "1.0.0",
    .description = "sync engine test plugin",
    .streams = INGEST_ARRAY(sched_streams),
    .config = INGEST_ARRAY(sched_config),
    .conf_size = sizeof(sched_conf),
    .init = sched_init,
    .shutdown = sched_shutdown,
    .sync = sched_sync,
    .webhook = {.scheme = INGEST_WEBHOOK_HMAC_SHA256, .signature_header = "X-Sched-Signature"},
    .handle_webhook = sched_webhook,
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &descriptor; }
