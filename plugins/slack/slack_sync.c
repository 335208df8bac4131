/*
 * slack_sync.c — the channels and messages streams.
 *
 *   channels  conversations.list (Tier 2), every page -> channel_created
 *             (the same key as the channel_created event, so a missed
 *             event heals); pages follow response_metadata.next_cursor
 *   messages  per channel: conversations.history (Tier 3, or 1/min for
 *             non-Marketplace apps) with oldest = the newest ts already
 *             stored, minus the job's lookback; per thread that has replies
 *             newer than that: conversations.replies with the same oldest
 *
 * conversations.history lists newest first, so the watermark can only move
 * once a walk is complete. Until then every page commits its signals with
 * a cursor that says where the walk is: {"ts": W, "oldest": O, "high": H,
 * "next": "<next_cursor>"}; a walk cut short (rate limit, crash) resumes at
 * "next" with the same oldest and loses nothing. At its end the cursor
 * becomes {"ts": H}. Cursors are per channel: "messages:<channel id>".
 *
 * Replies to a thread whose parent is older than the watermark are not
 * listed by history; they arrive as message events (Events API). Thread
 * replies do not move the watermark (a reply is newer than top-level
 * messages the walk has not seen yet).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slack.h"

#define TS_LEN 32
#define NEXT_LEN 512
#define QUERY_LEN 4096

typedef struct chan_list {
    char **ids;
    size_t n, cap;
} chan_list;

static void chans_free(chan_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->ids[i]);
    free(l->ids);
    memset(l, 0, sizeof *l);
}

static int chans_add(chan_list *l, const char *id)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **grown = realloc(l->ids, cap * sizeof *grown);
        if (!grown)
            return INGEST_ENOMEM;
        l->ids = grown;
        l->cap = cap;
    }
    return (l->ids[l->n] = strdup(id)) ? (l->n++, INGEST_OK) : INGEST_ENOMEM;
}

/* What one job carries. */
typedef struct sync_ctx {
    slack_state *st;
    ingest_run *run;
    const ingest_job *job;
    const sl_settings *set;
    sl_origin o;
    long calls, records, skipped;
} sync_ctx;

/* Percent-encode a query value (cursors are base64 with '=' and '/'). */
static void enc(const char *in, char *out, size_t len)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *in && n + 4 < len; in++) {
        unsigned char c = (unsigned char)*in;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hexd[c >> 4];
            out[n++] = hexd[c & 15];
        }
    }
    out[n] = '\0';
}

static void ts_text(int64_t us, char out[TS_LEN])
{
    snprintf(out, TS_LEN, "%" PRId64 ".%06" PRId64, us / 1000000, us % 1000000);
}

/* The next page's cursor ("" on the last page) into next. */
static void next_cursor(json_object *body, char next[NEXT_LEN])
{
    const char *c = ingest_json_str(body, "response_metadata.next_cursor");
    snprintf(next, NEXT_LEN, "%s", c && strlen(c) < NEXT_LEN ? c : "");
}

static int call(sync_ctx *sc, const char *method, uint32_t per_minute, const char *query,
                json_object **body)
{
    char err[256];
    sl_call c = {.method = method,
                 .query = query,
                 .per_minute = per_minute,
                 .user_token = sc->set->user_token};
    sc->calls++;
    int rc = sl_api_call(sc->st, sc->run, sc->set, &c, body, err, sizeof err);
    if (rc != INGEST_OK)
        sc->st->api->log(sc->st->ctx, sc->run,
                         rc == INGEST_ERATELIMITED ? INGEST_LOG_INFO : INGEST_LOG_WARN,
                         "sync %s: %s", sc->job->stream, err);
    return rc;
}

/* ------------------------------------------------------------- channels */

/* Which channels a messages sync reads: those the token's owner is in (a
 * user token also reads every public channel). */
static int readable(const sync_ctx *sc, json_object *ch)
{
    return ingest_json_true(ch, "is_member") ||
           (sc->set->user_token && !ingest_json_true(ch, "is_private"));
}

/* Walk conversations.list; emit channels (out == NULL) or collect the
 * readable ones' ids. */
static int walk_channels(sync_ctx *sc, chan_list *out)
{
    char next[NEXT_LEN] = "", query[QUERY_LEN], types[128], cur[NEXT_LEN * 3];
    enc(sc->set->types, types, sizeof types);
    int rc = INGEST_OK;
    for (long page = 0; rc == INGEST_OK; page++) {
        enc(next, cur, sizeof cur);
        snprintf(query, sizeof query, "types=%s&exclude_archived=true&limit=%lld%s%s", types,
                 (long long)sc->st->conf->page_limit, next[0] ? "&cursor=" : "", cur);
        json_object *body = NULL;
        rc = call(sc, "conversations.list", SL_TIER2, query, &body);
        json_object *list = ingest_json_get(body, "channels");
        for (size_t i = 0; rc == INGEST_OK && json_object_is_type(list, json_type_array) &&
                           i < json_object_array_length(list);
             i++) {
            json_object *ch = json_object_array_get_idx(list, i);
            const char *id = ingest_json_str(ch, "id");
            sl_origin o = sc->o;
            o.raw = ch;
            if (!out)
                rc = sl_emit_channel(sc->st, sc->run, ch, &o);
            else if (id && readable(sc, ch))
                rc = chans_add(out, id);
            sc->records += !out && rc == INGEST_OK;
        }
        if (rc == INGEST_OK && !out)
            rc = sc->st->api->flush(sc->run);
        next_cursor(body, next);
        json_object_put(body);
        if (!next[0] || (sc->st->conf->max_pages && page + 1 >= sc->st->conf->max_pages))
            break;
    }
    return rc;
}

/* ------------------------------------------------------------- messages */

/* One channel's progress, as stored in its cursor. */
typedef struct chan_cursor {
    char name[64];
    int64_t ts_us;       /* W: everything up to here is stored */
    int64_t oldest_us;   /* the walk's lower bound */
    int64_t high_us;     /* newest top-level ts of the walk */
    char next[NEXT_LEN]; /* where the interrupted walk goes on; "" = none */
} chan_cursor;

static void cursor_parse(chan_cursor *c, const char *text)
{
    json_object *o = text ? ingest_json_parse(text, strlen(text)) : NULL;
    c->ts_us = sl_ts_us(ingest_json_str(o, "ts"));
    c->oldest_us = sl_ts_us(ingest_json_str(o, "oldest"));
    c->high_us = sl_ts_us(ingest_json_str(o, "high"));
    const char *next = ingest_json_str(o, "next");
    snprintf(c->next, sizeof c->next, "%s", next && strlen(next) < NEXT_LEN ? next : "");
    json_object_put(o);
}

static int cursor_load(sync_ctx *sc, const char *channel, chan_cursor *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "messages:%s", channel);
    char *text = NULL;
    int rc = sc->st->api->cursor_get(sc->run, c->name, &text);
    if (rc == INGEST_OK && !sc->job->full_refresh)
        cursor_parse(c, text);
    sc->st->api->free(text);
    if (rc != INGEST_OK || c->next[0])
        return rc; /* resuming: keep the walk's bounds */
    int64_t lookback = INGEST_STRUCT_HAS(sc->job, lookback_us) && sc->job->lookback_us > 0
                           ? sc->job->lookback_us
                           : 0;
    c->oldest_us = c->ts_us                ? c->ts_us - lookback
                   : sc->job->full_refresh ? 0
                                           : sc->job->backfill_since_us;
    if (c->oldest_us < 0)
        c->oldest_us = 0;
    c->high_us = c->ts_us;
    return rc;
}

static void put_ts(json_object *o, const char *key, int64_t us)
{
    char ts[TS_LEN];
    ts_text(us, ts);
    json_object_object_add(o, key, json_object_new_string(ts));
}

/* Built with json-c: a cursor is Slack's opaque text, never spliced in. */
static int cursor_commit(sync_ctx *sc, const chan_cursor *c, const char *next)
{
    json_object *o = json_object_new_object();
    if (!o)
        return INGEST_ENOMEM;
    if (next[0]) {
        put_ts(o, "ts", c->ts_us);
        put_ts(o, "oldest", c->oldest_us);
        put_ts(o, "high", c->high_us);
        json_object_object_add(o, "next", json_object_new_string(next));
    } else {
        put_ts(o, "ts", c->high_us > c->ts_us ? c->high_us : c->ts_us);
    }
    char *text = ingest_json_text(o);
    int rc = text ? sc->st->api->cursor_set(sc->run, c->name, text) : INGEST_ENOMEM;
    free(text);
    json_object_put(o);
    return rc;
}

/* Top-level kinds a sync stores (the Events API stores the others). */
static int postable(json_object *msg)
{
    const char *st = ingest_json_str(msg, "subtype");
    return !st || !strcmp(st, "thread_broadcast") || !strcmp(st, "file_share") ||
           !strcmp(st, "bot_message") || !strcmp(st, "me_message");
}

static int emit_one(sync_ctx *sc, json_object *msg, const char *channel)
{
    if (!postable(msg))
        return INGEST_OK;
    char *name = sl_user_name(sc->st, sc->run, sc->set, ingest_json_str(msg, "user"));
    sl_origin o = sc->o;
    o.raw = msg;
    int rc = sl_emit_message(sc->st, sc->run, msg, channel, name, &o);
    free(name);
    sc->records += rc == INGEST_OK;
    return rc;
}

/* Replies of one thread newer than the walk's oldest (the parent, listed
 * first by Slack, was emitted from history). */
static int replies(sync_ctx *sc, const char *channel, const char *thread, int64_t oldest_us)
{
    char next[NEXT_LEN] = "", query[QUERY_LEN], cur[NEXT_LEN * 3], oldest[TS_LEN];
    ts_text(oldest_us, oldest);
    int rc = INGEST_OK;
    for (long page = 0; rc == INGEST_OK; page++) {
        enc(next, cur, sizeof cur);
        snprintf(query, sizeof query, "channel=%s&ts=%s&limit=%lld%s%s%s%s", channel, thread,
                 (long long)sc->st->conf->page_limit, oldest_us ? "&oldest=" : "",
                 oldest_us ? oldest : "", next[0] ? "&cursor=" : "", cur);
        json_object *body = NULL;
        rc = call(sc, "conversations.replies", (uint32_t)sc->st->conf->history_per_minute, query,
                  &body);
        json_object *list = ingest_json_get(body, "messages");
        for (size_t i = 0; rc == INGEST_OK && json_object_is_type(list, json_type_array) &&
                           i < json_object_array_length(list);
             i++) {
            json_object *m = json_object_array_get_idx(list, i);
            const char *ts = ingest_json_str(m, "ts");
            if (ts && strcmp(ts, thread) != 0 && sl_ts_us(ts) > oldest_us)
                rc = emit_one(sc, m, channel);
        }
        next_cursor(body, next);
        json_object_put(body);
        if (!next[0] || (sc->st->conf->max_pages && page + 1 >= sc->st->conf->max_pages))
            break;
    }
    return rc == INGEST_ENOTFOUND ? INGEST_OK : rc; /* thread deleted meanwhile */
}

static int history_page(sync_ctx *sc, const char *channel, chan_cursor *c, json_object *list)
{
    int rc = INGEST_OK;
    for (size_t i = 0; rc == INGEST_OK && json_object_is_type(list, json_type_array) &&
                       i < json_object_array_length(list);
         i++) {
        json_object *m = json_object_array_get_idx(list, i);
        int64_t us = sl_ts_us(ingest_json_str(m, "ts"));
        if (us > c->high_us)
            c->high_us = us;
        rc = emit_one(sc, m, channel);
        int64_t reply_count = 0;
        if (rc == INGEST_OK && sc->set->include_threads &&
            ingest_json_int64(m, "reply_count", &reply_count) && reply_count > 0 &&
            sl_ts_us(ingest_json_str(m, "latest_reply")) > c->oldest_us)
            rc = replies(sc, channel, ingest_json_str(m, "ts"), c->oldest_us);
    }
    return rc;
}

static int sync_channel(sync_ctx *sc, const char *channel)
{
    chan_cursor c;
    int rc = cursor_load(sc, channel, &c);
    char next[NEXT_LEN], query[QUERY_LEN], cur[NEXT_LEN * 3], oldest[TS_LEN];
    snprintf(next, sizeof next, "%s", c.next);
    ts_text(c.oldest_us, oldest);
    for (long page = 0; rc == INGEST_OK; page++) {
        enc(next, cur, sizeof cur);
        snprintf(query, sizeof query, "channel=%s&limit=%lld%s%s%s%s", channel,
                 (long long)sc->st->conf->page_limit, c.oldest_us ? "&oldest=" : "",
                 c.oldest_us ? oldest : "", next[0] ? "&cursor=" : "", cur);
        json_object *body = NULL;
        rc = call(sc, "conversations.history", (uint32_t)sc->st->conf->history_per_minute, query,
                  &body);
        if (rc == INGEST_OK)
            rc = history_page(sc, channel, &c, ingest_json_get(body, "messages"));
        next_cursor(body, next);
        json_object_put(body);
        if (sc->st->conf->max_pages && page + 1 >= sc->st->conf->max_pages)
            next[0] = '\0'; /* safety stop: what was read counts as the walk */
        if (rc == INGEST_OK)
            rc = cursor_commit(sc, &c, next);
        if (!next[0])
            break;
    }
    return rc;
}

static int sync_messages(sync_ctx *sc)
{
    chan_list chans = {0};
    int rc = INGEST_OK;
    for (size_t i = 0; i < sc->set->channels.count && rc == INGEST_OK; i++)
        rc = chans_add(&chans, sc->set->channels.items[i]);
    if (rc == INGEST_OK && sc->set->channels.count == 0)
        rc = walk_channels(sc, &chans);
    for (size_t i = 0; rc == INGEST_OK && i < chans.n; i++) {
        rc = sync_channel(sc, chans.ids[i]);
        if (rc == INGEST_ENOTFOUND) { /* not_in_channel, channel_not_found */
            ingest_health_degrade(&sc->st->health, sc->st->api, sc->st->ctx, sc->run,
                                  "channel %s cannot be read (not a member, or gone); skipped",
                                  chans.ids[i]);
            sc->skipped++;
            rc = INGEST_OK;
        }
    }
    chans_free(&chans);
    return rc;
}

/* ------------------------------------------------------------------ sync */

static void report(const sync_ctx *sc, int rc)
{
    slack_state *st = sc->st;
    if (rc == INGEST_OK && sc->skipped == 0) {
        char detail[96];
        snprintf(detail, sizeof detail, "last %s sync complete", sc->job->stream);
        ingest_health_set(&st->health, INGEST_HEALTH_OK, detail);
    }
    st->api->log(st->ctx, sc->run, rc == INGEST_OK ? INGEST_LOG_INFO : INGEST_LOG_WARN,
                 "sync %s: %ld calls, %ld records, %ld channels skipped, status %d",
                 sc->job->stream, sc->calls, sc->records, sc->skipped, rc);
}

int sl_sync(ingest_run *run, void *state, const ingest_job *job)
{
    slack_state *st = state;
    int stream = job->stream ? sl_stream_index(job->stream) : -1;
    if (stream < 0)
        return INGEST_ENOTFOUND;
    if (!job->connection_id) {
        st->api->log(st->ctx, run, INGEST_LOG_WARN, "sync of %s needs a connection", job->stream);
        return INGEST_ENOTFOUND;
    }
    sl_settings set;
    char err[256];
    int rc = sl_settings_load(st, run, &set, err, sizeof err);
    if (rc != INGEST_OK) {
        st->api->log(st->ctx, run, INGEST_LOG_ERROR, "sync %s: %s", job->stream, err);
        return rc;
    }
    if (!(set.streams & (1u << stream))) {
        sl_settings_free(&set);
        return INGEST_OK;
    }
    sync_ctx sc = {.st = st, .run = run, .job = job, .set = &set};
    sc.o = (sl_origin){.via = "sync",
                       .team_id = set.team_id[0] ? set.team_id : NULL,
                       .stream = job->stream,
                       .retry_num = -1};
    rc = stream == SL_CHANNELS ? walk_channels(&sc, NULL) : sync_messages(&sc);
    report(&sc, rc);
    sl_settings_free(&set);
    return rc;
}
