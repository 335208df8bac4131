/* ts_cursor.c — "updated at" watermarks with lookback, backfill and
 * resumable newest-first walks, stored through api->cursor_get/cursor_set. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/helpers.h"

void ingest_time_iso8601(int64_t us, char out[INGEST_ISO8601_LEN])
{
    int64_t s = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    time_t t = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, INGEST_ISO8601_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, INGEST_ISO8601_LEN, "1970-01-01T00:00:00Z");
}

static int64_t job_lookback(const ingest_job *job)
{
    size_t need = offsetof(ingest_job, lookback_us) + sizeof job->lookback_us;
    return job && job->hdr.struct_size >= need && job->lookback_us > 0 ? job->lookback_us : 0;
}

static int64_t time_member(const ingest_host_api *api, json_object *o, const char *key)
{
    int64_t us = 0;
    return ingest_json_time(api, o, key, &us) == INGEST_OK ? us : 0;
}

/* {"since": W|null, "floor": F, "high": H, "low": L}: a newest-first walk
 * in progress. Returns 0 when the text has that form. */
static int load_partial(const ingest_host_api *api, const char *text, ingest_ts_cursor *c,
                        int64_t *floor_us)
{
    json_object *o = ingest_json_parse(text, strlen(text));
    int ok = json_object_is_type(o, json_type_object);
    if (ok) {
        c->stored_us = time_member(api, o, "since");
        *floor_us = time_member(api, o, "floor");
        c->done_high_us = time_member(api, o, "high");
        c->done_low_us = time_member(api, o, "low");
        if (!c->done_high_us || !c->done_low_us || c->done_low_us > c->done_high_us)
            c->done_high_us = c->done_low_us = 0;
        c->high_us = c->done_high_us;
    }
    json_object_put(o);
    return ok ? 0 : -1;
}

int ingest_ts_cursor_load(const ingest_host_api *api, ingest_ctx *ctx, ingest_run *run,
                          const ingest_job *job, const char *name, ingest_ts_cursor *c)
{
    memset(c, 0, sizeof *c);
    c->name = name;
    char *value = NULL;
    int rc = api->cursor_get(run, name, &value);
    if (rc != INGEST_OK)
        return rc;
    int64_t floor_us = 0;
    if (value && value[0] == '{') {
        if (load_partial(api, value, c, &floor_us) < 0 && ctx)
            api->log(ctx, run, INGEST_LOG_WARN, "cursor %s: unreadable value, starting over", name);
    } else if (value && api->parse_time(value, &c->stored_us) != INGEST_OK) {
        c->stored_us = 0;
        if (ctx)
            api->log(ctx, run, INGEST_LOG_WARN,
                     "cursor %s: '%.40s' is not a timestamp, "
                     "starting over",
                     name, value);
    }
    api->free(value);
    int64_t backfill = job ? job->backfill_since_us : 0;
    if (job && job->full_refresh) {
        c->stored_us = 0; /* read everything again; the host keeps W from moving back */
        c->done_low_us = c->done_high_us = c->high_us = 0;
        c->since_us = backfill;
    } else if (c->stored_us) {
        int64_t since = c->stored_us - job_lookback(job);
        c->since_us = since > 0 ? since : 0;
    } else {
        c->since_us = floor_us ? floor_us : backfill;
    }
    return INGEST_OK;
}

void ingest_ts_cursor_see(ingest_ts_cursor *c, int64_t us)
{
    if (us <= 0)
        return;
    if (us > c->high_us)
        c->high_us = us;
    if (!c->low_us || us < c->low_us)
        c->low_us = us;
}

int ingest_ts_cursor_done(const ingest_ts_cursor *c, int64_t us)
{
    return c->done_high_us && us > c->done_low_us && us <= c->done_high_us;
}

static int put_time(const ingest_host_api *api, json_object *o, const char *key, int64_t us)
{
    char text[32];
    api->format_time(us, text);
    return json_object_object_add(o, key, us ? json_object_new_string(text) : NULL);
}

int ingest_ts_cursor_checkpoint(const ingest_host_api *api, ingest_run *run, ingest_ts_cursor *c,
                                int64_t low_us)
{
    /* This walk handled [low_us, high_us]; with what is committed already
     * (the resumed interval, or earlier checkpoints) that is one interval
     * only once the walk has come down to it. */
    if (!c->ck_high_us) {
        c->ck_low_us = c->done_low_us;
        c->ck_high_us = c->done_high_us;
    }
    if (low_us <= 0 || !c->high_us || (c->ck_high_us && low_us > c->ck_high_us))
        return api->flush(run);
    int64_t low = c->ck_low_us && c->ck_low_us < low_us ? c->ck_low_us : low_us;
    int64_t high = c->high_us > c->ck_high_us ? c->high_us : c->ck_high_us;
    json_object *o = json_object_new_object();
    if (!o || put_time(api, o, "since", c->stored_us) || put_time(api, o, "floor", c->since_us) ||
        put_time(api, o, "high", high) || put_time(api, o, "low", low)) {
        json_object_put(o);
        return INGEST_ENOMEM;
    }
    char *text = ingest_json_text(o);
    json_object_put(o);
    int rc = text ? api->cursor_set(run, c->name, text) : INGEST_ENOMEM;
    free(text);
    if (rc == INGEST_OK) {
        c->ck_low_us = low;
        c->ck_high_us = high;
    }
    return rc;
}

int ingest_ts_cursor_commit(const ingest_host_api *api, ingest_run *run, ingest_ts_cursor *c)
{
    int in_progress = c->done_high_us != 0 || c->ck_high_us != 0;
    if (!c->high_us || (c->high_us <= c->stored_us && !in_progress))
        return api->flush(run);
    int64_t w = c->high_us > c->stored_us ? c->high_us : c->stored_us;
    char text[32];
    api->format_time(w, text);
    int rc = api->cursor_set(run, c->name, text);
    if (rc == INGEST_OK) {
        c->stored_us = w;
        c->done_low_us = c->done_high_us = c->ck_low_us = c->ck_high_us = 0;
    }
    return rc;
}
