/*
 * s3csv.c — the S3/CSV connector: imports CSV objects from a bucket and
 * prefix of any S3-compatible store, one signal per row.
 *
 * A sync job is one pass over the bucket in key order (ListObjectsV2 with
 * continuation tokens). Every object that is new since the last finished
 * pass is streamed (GetObject over the host's HTTP client, SigV4-signed
 * with the connection's AWS credentials, never held in memory) through
 * the streaming CSV parser; each row is mapped and validated by the
 * connection's schema and becomes a signal, or a dead letter saying where
 * and why. Rows commit in batches together with the cursor position after
 * them, so a killed daemon resumes mid-object with a ranged GET, without
 * loss and without repeating a row. See sdk/README.md for the contract and
 * plugins/s3csv/README.md for the connection's settings.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3csv.h"

#define MIN_LOOKBACK_US (300 * (int64_t)1000000) /* S3's clock against ours */

static const ingest_config_field s3csv_config[] = {
    {.key = "batch_rows",
     .type = INGEST_CONF_INT,
     .default_value = "5000",
     .min = 1,
     .max = 1000000,
     .offset = offsetof(s3csv_conf, batch_rows),
     .doc = "rows (and dead letters) committed together with the cursor"},
    {.key = "list_page_size",
     .type = INGEST_CONF_INT,
     .default_value = "1000",
     .min = 1,
     .max = 1000,
     .offset = offsetof(s3csv_conf, list_page_size),
     .doc = "objects per ListObjectsV2 page (max-keys)"},
    {.key = "max_record_bytes",
     .type = INGEST_CONF_INT,
     .default_value = "1048576",
     .min = 1024,
     .max = 1073741824,
     .offset = offsetof(s3csv_conf, max_record_bytes),
     .doc = "largest CSV record; a longer one becomes a dead letter"},
    {.key = "stall_timeout_ms",
     .type = INGEST_CONF_INT,
     .default_value = "60000",
     .min = 1000,
     .max = 3600000,
     .offset = offsetof(s3csv_conf, stall_timeout_ms),
     .doc = "a request that receives nothing for this long fails"},
};

static const ingest_stream s3csv_streams[] = {
    {.name = S3CSV_STREAM, .primary_key = NULL, .cursor_field = NULL, .default_interval_s = 900},
};

/* ---- one job --------------------------------------------------------------- */

static void job_free(s3csv_job *jb)
{
    s3csv_settings_free(&jb->settings);
    s3csv_cursor_free(&jb->cursor);
    free(jb->ns);
}

static int load_settings(s3csv_job *jb)
{
    char *config = NULL, why[300];
    int rc = jb->api->connection_config(jb->run, &config);
    if (rc != INGEST_OK) {
        jb->api->log(jb->st->ctx, jb->run, INGEST_LOG_ERROR,
                     "cannot read the connection's config (status %d)", rc);
        return rc;
    }
    rc = s3csv_settings_parse(config, &jb->clock, &jb->settings, why, sizeof why) == 0
             ? INGEST_OK
             : INGEST_EINVAL;
    jb->api->free(config);
    if (rc != INGEST_OK) {
        jb->api->log(jb->st->ctx, jb->run, INGEST_LOG_ERROR, "bad connection config: %s", why);
        jb->api->set_error(jb->st->ctx, "bad connection config: %s", why);
    }
    return rc;
}

/* Dedupe keys are unique per tenant and source: the same key fields in two
 * datasets (buckets, prefixes, kinds) must not collide. */
static int make_namespace(s3csv_job *jb)
{
    const s3csv_settings *s = &jb->settings;
    size_t n = strlen(s->bucket) + strlen(s->prefix ? s->prefix : "") + strlen(s->kind) + 16;
    jb->ns = malloc(n);
    if (!jb->ns)
        return INGEST_ENOMEM;
    snprintf(jb->ns, n, "s3csv/1|%s|%s|%s", s->bucket, s->prefix ? s->prefix : "", s->kind);
    char hex[65];
    jb->api->sha256_hex(jb->ns, strlen(jb->ns), hex);
    snprintf(jb->ns_tag, sizeof jb->ns_tag, "%.16s", hex);
    return INGEST_OK;
}

static int load_cursor(s3csv_job *jb)
{
    char *text = NULL;
    int rc = jb->api->cursor_get(jb->run, S3CSV_STREAM, &text);
    if (rc != INGEST_OK)
        return rc;
    if (s3csv_cursor_parse(text, &jb->cursor) < 0)
        jb->api->log(jb->st->ctx, jb->run, INGEST_LOG_WARN,
                     "unreadable cursor; importing every object again (dedupe keeps rows "
                     "unique)");
    jb->api->free(text);
    return INGEST_OK;
}

/* A new pass, unless one is under way that this job may continue (a full
 * refresh continues only its own). */
static int begin_pass(s3csv_job *jb)
{
    s3csv_cursor *c = &jb->cursor;
    const ingest_job *job = jb->job;
    int own_full = c->full && c->job_id && job->job_id && strcmp(c->job_id, job->job_id) == 0;
    if (c->in_pass && (!job->full_refresh || own_full))
        return INGEST_OK;
    free(c->after);
    free(c->job_id);
    s3csv_position_free(&c->cur);
    s3csv_seen_free(&c->pass_recent);
    c->in_pass = 1;
    c->started_us = jb->api->now_us();
    c->full = job->full_refresh != 0;
    c->job_id = job->job_id ? strdup(job->job_id) : NULL;
    c->after = strdup("");
    return c->after && (!job->job_id || c->job_id) ? INGEST_OK : INGEST_ENOMEM;
}

/* Is this listed object one to import in this pass? 1, 0, or -1 on OOM.
 * A version the last pass imported (it is seen again because of the
 * look-back) is skipped and stays known to the next pass. */
static int wanted(s3csv_job *jb, const s3csv_object *o)
{
    const s3csv_settings *s = &jb->settings;
    s3csv_cursor *c = &jb->cursor;
    size_t klen = strlen(o->key), slen = s->suffix ? strlen(s->suffix) : 0;
    if (o->key[klen - 1] == '/') /* a "folder" marker */
        return 0;
    if (slen && (klen < slen || strcmp(o->key + klen - slen, s->suffix) != 0))
        return 0;
    if (c->after && *c->after && strcmp(o->key, c->after) <= 0)
        return 0;
    if (c->cur.key && strcmp(c->cur.key, o->key) == 0)
        return 1; /* the object a crash interrupted */
    if (c->full)
        return 1;
    if (o->last_modified_us < c->since_us)
        return 0;
    if (!s3csv_seen_has(&c->recent, o->key, o->etag))
        return 1;
    if (!s3csv_seen_has(&c->pass_recent, o->key, o->etag) &&
        s3csv_seen_add(&c->pass_recent, o->key, o->etag, o->last_modified_us) < 0)
        return -1;
    return 0;
}

static int import_page(s3csv_job *jb, const s3csv_listing *page)
{
    for (size_t i = 0; i < page->n_objects; i++) {
        int want = wanted(jb, &page->objects[i]);
        if (want < 0)
            return INGEST_ENOMEM;
        if (!want)
            continue;
        int rc = s3csv_import_object(jb, &page->objects[i]);
        if (rc != INGEST_OK)
            return rc;
    }
    return INGEST_OK;
}

/* The pass is complete: what was modified before it began is imported;
 * the versions it imported after the new since are remembered. */
static int end_pass(s3csv_job *jb)
{
    s3csv_cursor *c = &jb->cursor;
    c->since_us = c->started_us - jb->lookback_us;
    s3csv_seen_free(&c->recent);
    for (size_t i = 0; i < c->pass_recent.n; i++) {
        const s3csv_seen *s = &c->pass_recent.items[i];
        if (s->last_modified_us >= c->since_us &&
            s3csv_seen_add(&c->recent, s->key, s->etag, s->last_modified_us) < 0)
            return INGEST_ENOMEM;
    }
    s3csv_seen_free(&c->pass_recent);
    c->in_pass = 0;
    free(c->after);
    free(c->job_id);
    c->after = c->job_id = NULL;
    s3csv_position_free(&c->cur);
    return s3csv_commit(jb);
}

static int run_pass(s3csv_job *jb)
{
    int rc = begin_pass(jb);
    char *token = NULL;
    for (int more = rc == INGEST_OK; more;) {
        s3csv_listing page;
        char *after = jb->cursor.after ? strdup(jb->cursor.after) : NULL;
        rc = s3csv_list_page(jb, after, token, jb->st->conf->list_page_size, &page);
        free(after);
        free(token);
        token = NULL;
        if (rc != INGEST_OK)
            break;
        rc = import_page(jb, &page);
        more = rc == INGEST_OK && page.truncated && page.next_token;
        token = more ? page.next_token : NULL;
        page.next_token = more ? NULL : page.next_token;
        s3csv_listing_free(&page);
    }
    free(token);
    return rc == INGEST_OK ? end_pass(jb) : rc;
}

static int job_setup(s3csv_job *jb, s3csv_state *st, ingest_run *run, const ingest_job *job)
{
    memset(jb, 0, sizeof *jb);
    jb->st = st;
    jb->api = st->api;
    jb->run = run;
    jb->job = job;
    jb->clock = (s3csv_clock){st->api->parse_time, st->api->format_time};
    int64_t lookback = INGEST_STRUCT_HAS(job, lookback_us) ? job->lookback_us : 0;
    jb->lookback_us = lookback > MIN_LOOKBACK_US ? lookback : MIN_LOOKBACK_US;
    int rc = load_settings(jb);
    if (rc == INGEST_OK)
        rc = make_namespace(jb);
    return rc;
}

static int s3csv_sync(ingest_run *run, void *state, const ingest_job *job)
{
    s3csv_state *st = state;
    s3csv_job jb;
    int rc = job_setup(&jb, st, run, job);
    if (rc == INGEST_OK)
        rc = load_cursor(&jb);
    if (rc == INGEST_OK)
        rc = run_pass(&jb);
    st->api->log(st->ctx, run, rc == INGEST_OK ? INGEST_LOG_INFO : INGEST_LOG_WARN,
                 "bucket %s: %lld object(s) finished, %lld row(s) emitted, %lld dead letter(s)%s",
                 jb.settings.bucket ? jb.settings.bucket : "?", jb.objects, jb.rows, jb.rejected,
                 rc == INGEST_OK ? "" : "; the pass stopped early");
    job_free(&jb);
    return rc;
}

/* REST POST /connections: one listing of at most one key proves the
 * endpoint, the bucket and the credentials before the connection is kept. */
static int s3csv_check_connection(ingest_run *run, void *state)
{
    s3csv_state *st = state;
    ingest_job none = {.hdr = INGEST_ABI_HEADER(ingest_job)};
    s3csv_job jb;
    int rc = job_setup(&jb, st, run, &none);
    s3csv_listing page;
    if (rc == INGEST_OK && (rc = s3csv_list_page(&jb, NULL, NULL, 1, &page)) == INGEST_OK)
        s3csv_listing_free(&page);
    job_free(&jb);
    return rc;
}

/* ---- lifecycle ------------------------------------------------------------- */

static int s3csv_init(const ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state)
{
    if (!INGEST_API_HAS(api, reject) || !INGEST_API_HAS(api, connection_config)) {
        api->set_error(ctx, "this host lacks connection_config/reject (ABI minor 2)");
        return INGEST_EUNSUPPORTED;
    }
    s3csv_state *st = calloc(1, sizeof *st);
    if (!st) {
        api->set_error(ctx, "out of memory");
        return INGEST_ENOMEM;
    }
    st->api = api;
    st->ctx = ctx;
    st->conf = conf;
    st->m_rows = api->metric_counter(ctx, "s3csv_rows_total", "CSV rows emitted as signals");
    st->m_rejected =
        api->metric_counter(ctx, "s3csv_rejected_total", "CSV rows recorded as dead letters");
    st->m_objects = api->metric_counter(ctx, "s3csv_objects_total", "Objects finished");
    st->m_bytes = api->metric_counter(ctx, "s3csv_bytes_total", "Object bytes parsed");
    *state = st;
    return INGEST_OK;
}

static ingest_health_state s3csv_health(void *state, char *detail, size_t detail_len)
{
    (void)state;
    snprintf(detail, detail_len, "ok");
    return INGEST_HEALTH_OK;
}

static void s3csv_shutdown(void *state) { free(state); }

static const ingest_plugin s3csv_plugin = {
    .hdr = INGEST_ABI_HEADER(ingest_plugin),
    .name = "s3csv",
    .version = S3CSV_VERSION,
    .description = "CSV objects from S3 or any S3-compatible store, one signal per row",
    .auth = {.kind = INGEST_AUTH_AWS},
    .streams = INGEST_ARRAY(s3csv_streams),
    /* S3 serves 5,500 GET per second per prefix */
    .rate_limit = {.requests = 5500, .window_s = 1},
    .config = INGEST_ARRAY(s3csv_config),
    .conf_size = sizeof(s3csv_conf),
    .init = s3csv_init,
    .shutdown = s3csv_shutdown,
    .health = s3csv_health,
    .sync = s3csv_sync,
    .check_connection = s3csv_check_connection,
};

INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &s3csv_plugin; }
