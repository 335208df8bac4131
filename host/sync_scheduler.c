/* sync_scheduler.c — the loop thread only runs a timer; each tick's work
 * (listing connections, enqueuing) blocks on the store, so it runs on a
 * worker, one tick at a time. The schedule table is touched by that tick
 * only, so it needs no lock. */
#include "sync_scheduler.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "executor.h"
#include "instance.h"
#include "jobs.h"
#include "log.h"
#include "loop.h"
#include "registry.h"
#include "util.h"

#define GAUGES_EVERY_MS 2000 /* database gauges: often enough for a dashboard */
#define CRON_MIN_GAP_S 30.0  /* cron fires at most once a minute */

/* One (connection, stream) and when it runs next. */
typedef struct sched_entry {
    char conn[37], tenant[37], provider[128], stream[128];
    char spec[200];  /* "i:<seconds>", "c:<cron>" or "off": the resolved schedule */
    int64_t next_us; /* 0 = not known yet (read the newest job) */
} sched_entry;

struct sync_scheduler {
    hostd *h;
    struct event *timer;
    atomic_int ticking;
    int stopped;
    sched_entry *entries; /* sorted by (conn, stream); tick worker only */
    size_t n_entries;
    int64_t last_gauges_ms;
};

static int entry_cmp(const void *a, const void *b)
{
    const sched_entry *x = a, *y = b;
    int c = strcmp(x->conn, y->conn);
    return c ? c : strcmp(x->stream, y->stream);
}

static int has_sync(const instance *inst) { return inst->desc.sync != NULL; }

static uint32_t stream_default_interval(const instance *inst, const ingest_stream *s)
{
    size_t need = offsetof(ingest_stream, default_interval_s) + sizeof s->default_interval_s;
    return inst->desc.stream_size >= need ? s->default_interval_s : 0;
}

/* ---- schedule resolution ---------------------------------------------- */

/* S from the connection's {"schedule": {...}} for this stream, or NULL. */
static json_object *connection_rule(json_object *schedule, const char *stream)
{
    json_object *rule = NULL;
    if (!schedule || !json_object_is_type(schedule, json_type_object))
        return NULL;
    if (json_object_object_get_ex(schedule, stream, &rule) &&
        json_object_is_type(rule, json_type_object))
        return rule;
    if (json_object_object_get_ex(schedule, "*", &rule) &&
        json_object_is_type(rule, json_type_object))
        return rule;
    return NULL;
}

/* Resolve the spec text: the connection's rule, the plugin's default, or
 * the host's. A bad rule is logged and falls back to the defaults. */
static void resolve_spec(hostd *h, const instance *inst, const ingest_stream *s,
                         json_object *schedule, const char *conn, char *spec, size_t len)
{
    json_object *rule = connection_rule(schedule, s->name), *v = NULL;
    if (rule && json_object_object_get_ex(rule, "enabled", &v) && !json_object_get_boolean(v)) {
        snprintf(spec, len, "off");
        return;
    }
    if (rule && json_object_object_get_ex(rule, "cron", &v) &&
        json_object_is_type(v, json_type_string)) {
        snprintf(spec, len, "c:%s", json_object_get_string(v));
        return;
    }
    if (rule && json_object_object_get_ex(rule, "interval_s", &v) &&
        json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 1) {
        snprintf(spec, len, "i:%lld", (long long)json_object_get_int64(v));
        return;
    }
    if (rule)
        log_warn("sync: connection %s stream %s: schedule needs interval_s >= 1, cron or "
                 "enabled; using the default",
                 conn, s->name);
    uint32_t def = stream_default_interval(inst, s);
    snprintf(spec, len, "i:%u", def ? def : (uint32_t)h->cfg->sync_interval_s);
}

/* Seconds between runs of an interval spec; 0 for cron or off. */
static double spec_interval_s(const char *spec)
{
    return strncmp(spec, "i:", 2) == 0 ? strtod(spec + 2, NULL) : 0;
}

/* The run after `from_us` (a job's creation time). -1: never. */
static int64_t next_after(hostd *h, const sched_entry *e, int64_t from_us)
{
    if (strncmp(e->spec, "c:", 2) == 0) {
        char err[256];
        cron_expr *c = cron_parse(e->spec + 2, err, sizeof err);
        if (!c) {
            log_warn("sync: connection %s stream %s: %s; not scheduled", e->conn, e->stream, err);
            return -1;
        }
        int64_t next = cron_next(c, from_us);
        cron_free(c);
        return next;
    }
    double interval = spec_interval_s(e->spec);
    if (interval <= 0)
        return -1;
    double jitter = (double)h->cfg->sync_jitter_pct / 100.0 * (2.0 * util_random01() - 1.0);
    return from_us + (int64_t)(interval * (1.0 + jitter) * 1e6);
}

/* A job created less than this ago means another daemon already ran the
 * schedule: half the shortest jittered interval. */
static double min_gap_s(hostd *h, const sched_entry *e)
{
    double interval = spec_interval_s(e->spec);
    if (interval <= 0)
        return CRON_MIN_GAP_S;
    return interval * (1.0 - (double)h->cfg->sync_jitter_pct / 100.0) * 0.5;
}

/* ---- one tick ----------------------------------------------------------- */

typedef struct entry_list {
    sched_entry *items;
    size_t n, cap;
} entry_list;

static sched_entry *entry_add(entry_list *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        sched_entry *grown = realloc(l->items, cap * sizeof *grown);
        if (!grown)
            return NULL;
        l->items = grown;
        l->cap = cap;
    }
    sched_entry *e = &l->items[l->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* Every stream of one connection, with the next run carried over from the
 * previous tick when its schedule did not change. */
static void add_connection(sync_scheduler *s, entry_list *l, PGresult *res, int row)
{
    hostd *h = s->h;
    const char *provider = PQgetvalue(res, row, 2);
    instance *inst = registry_acquire(h->plugins, provider);
    if (!inst)
        return;
    if (!inst->desc.sync) { /* a webhook-only plugin: nothing to schedule */
        instance_release(inst);
        return;
    }
    json_object *schedule =
        PQgetisnull(res, row, 3) ? NULL : json_tokener_parse(PQgetvalue(res, row, 3));
    for (size_t i = 0; i < inst->desc.n_streams; i++) {
        const ingest_stream *st = instance_stream(inst, i);
        sched_entry *e = st ? entry_add(l) : NULL;
        if (!e)
            continue;
        snprintf(e->conn, sizeof e->conn, "%s", PQgetvalue(res, row, 0));
        snprintf(e->tenant, sizeof e->tenant, "%s", PQgetvalue(res, row, 1));
        snprintf(e->provider, sizeof e->provider, "%s", provider);
        snprintf(e->stream, sizeof e->stream, "%s", st->name);
        resolve_spec(h, inst, st, schedule, e->conn, e->spec, sizeof e->spec);
        const sched_entry *old =
            s->n_entries ? bsearch(e, s->entries, s->n_entries, sizeof *e, entry_cmp) : NULL;
        if (old && strcmp(old->spec, e->spec) == 0)
            e->next_us = old->next_us;
    }
    json_object_put(schedule);
    instance_release(inst);
}

static const char active_sql[] =
    "SELECT id::text, tenant_id::text, provider, (config->'schedule')::text FROM connections"
    " WHERE status = 'active' AND provider = ANY($1::text[])";

typedef struct list_args {
    const char *providers;
    PGresult *res;
} list_args;

static int list_fn(PGconn *conn, void *arg)
{
    list_args *a = arg;
    char err[512];
    const char *p[] = {a->providers};
    int rc = store_exec(conn, active_sql, 1, p, &a->res, err, sizeof err);
    if (rc != INGEST_OK)
        log_warn("sync: cannot list connections: %s", err);
    return rc;
}

/* Build the table of streams for this tick; 0 on success. */
static int build_entries(sync_scheduler *s, entry_list *l)
{
    size_t n = 0;
    char **names = registry_serving_names(s->h->plugins, has_sync, &n);
    char *providers = names && n ? store_text_array(names, n) : NULL;
    util_strv_free(names);
    if (!providers)
        return n ? -1 : 0;
    list_args a = {providers, NULL};
    int rc = store_call(s->h->store, list_fn, &a);
    free(providers);
    if (rc != INGEST_OK) {
        PQclear(a.res);
        return -1;
    }
    for (int i = 0; i < PQntuples(a.res); i++)
        add_connection(s, l, a.res, i);
    PQclear(a.res);
    if (l->n > 1) /* items is NULL when there are none */
        qsort(l->items, l->n, sizeof *l->items, entry_cmp);
    return 0;
}

/* Streams seen for the first time: their next run follows their newest job. */
static void fill_unknown(sync_scheduler *s, entry_list *l, int64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += l->items[i].next_us == 0;
    if (n == 0)
        return;
    char **conns = calloc(n + 1, sizeof *conns), **streams = calloc(n + 1, sizeof *streams);
    size_t *at = calloc(n, sizeof *at);
    int64_t *newest = calloc(n, sizeof *newest);
    size_t k = 0;
    for (size_t i = 0; conns && streams && at && newest && i < l->n; i++) {
        if (l->items[i].next_us != 0)
            continue;
        conns[k] = l->items[i].conn; /* borrowed: not freed below */
        streams[k] = l->items[i].stream;
        at[k++] = i;
    }
    if (k == n && jobs_newest(s->h->store, conns, streams, n, newest) == INGEST_OK) {
        for (size_t j = 0; j < n; j++) {
            sched_entry *e = &l->items[at[j]];
            int off = strcmp(e->spec, "off") == 0;
            e->next_us = off ? -1 : newest[j] ? next_after(s->h, e, newest[j]) : now;
        }
    }
    free(conns);
    free(streams);
    free(at);
    free(newest);
}

/* Queue the due streams; returns how many jobs were created. */
static int enqueue_due(sync_scheduler *s, entry_list *l, int64_t now)
{
    hostd *h = s->h;
    int created_total = 0;
    for (size_t i = 0; i < l->n && !atomic_load(&h->shutting_down); i++) {
        sched_entry *e = &l->items[i];
        if (e->next_us <= 0 || e->next_us > now)
            continue; /* unknown, never (-1), or not yet */
        int created = 0;
        int64_t newest = 0;
        if (jobs_enqueue_scheduled(h->store, e->tenant, e->conn, e->provider, e->stream,
                                   h->cfg->job_max_retries + 1, min_gap_s(h, e), &created,
                                   &newest) != INGEST_OK)
            continue; /* try again next tick */
        if (created) {
            created_total++;
            log_fields f = {.plugin = e->provider, .tenant = e->tenant};
            log_write(INGEST_LOG_DEBUG, &f, "sync: scheduled stream %s of connection %s (%s)",
                      e->stream, e->conn, e->spec);
        }
        int64_t next = next_after(h, e, newest ? newest : now);
        /* A live job kept us out and the next run is already due: look again
         * next tick rather than spinning. */
        e->next_us = next != 0 ? next : -1;
    }
    return created_total;
}

static void tick_done(void *arg)
{
    hostd *h = arg;
    sync_scheduler *s = h->sync_scheduler;
    int created = atomic_exchange(&s->ticking, 0);
    if (created > 1)
        executor_wake(h);
}

static void tick_work(void *arg)
{
    hostd *h = arg;
    sync_scheduler *s = h->sync_scheduler;
    int created = 0;
    entry_list l = {0};
    if (store_ready(h->store) && build_entries(s, &l) == 0) {
        int64_t now = util_now_us();
        fill_unknown(s, &l, now);
        created = enqueue_due(s, &l, now);
        free(s->entries);
        s->entries = l.items;
        s->n_entries = l.n;
    } else {
        free(l.items);
    }
    int64_t mono = util_mono_ms();
    if (mono - s->last_gauges_ms >= GAUGES_EVERY_MS) {
        executor_refresh_gauges(h);
        s->last_gauges_ms = mono;
    }
    /* ticking carries "1 + jobs created" back to the loop thread. */
    atomic_store(&s->ticking, 1 + created);
    loop_post(h->mailbox, tick_done, h);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hostd *h = arg;
    sync_scheduler *s = h->sync_scheduler;
    if (s->stopped || atomic_load(&h->shutting_down))
        return;
    int idle = 0;
    if (!atomic_compare_exchange_strong(&s->ticking, &idle, 1))
        return; /* the previous tick is still running */
    if (workers_submit(h->workers, tick_work, h) < 0)
        atomic_store(&s->ticking, 0);
}

int sync_scheduler_start(hostd *h)
{
    sync_scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->h = h;
    h->sync_scheduler = s;
    int ms = h->cfg->schedule_poll_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    s->timer = event_new(h->base, -1, EV_PERSIST, on_tick, h);
    if (!s->timer)
        return -1;
    event_add(s->timer, &tv);
    log_info("sync: scheduling connection streams every %d ms (default interval %d s, ±%d %%)", ms,
             h->cfg->sync_interval_s, h->cfg->sync_jitter_pct);
    return 0;
}

void sync_scheduler_stop(hostd *h)
{
    sync_scheduler *s = h->sync_scheduler;
    if (!s)
        return;
    s->stopped = 1;
    loop_event_del(s->timer);
}

void sync_scheduler_free(hostd *h)
{
    sync_scheduler *s = h->sync_scheduler;
    if (!s)
        return;
    loop_event_free(s->timer);
    free(s->entries);
    free(s);
    h->sync_scheduler = NULL;
}

/* ---- runs on request ---------------------------------------------------- */

static const char connection_sql[] =
    "SELECT tenant_id::text, provider, status FROM connections WHERE id = $1::uuid";

typedef struct conn_info {
    const char *id;
    char tenant[37], provider[128], status[32];
    int found;
} conn_info;

static int conn_fn(PGconn *conn, void *arg)
{
    conn_info *c = arg;
    PGresult *res = NULL;
    const char *p[] = {c->id};
    int rc = store_exec(conn, connection_sql, 1, p, &res, NULL, 0);
    if (rc == INGEST_OK && PQntuples(res) == 1) {
        c->found = 1;
        snprintf(c->tenant, sizeof c->tenant, "%s", PQgetvalue(res, 0, 0));
        snprintf(c->provider, sizeof c->provider, "%s", PQgetvalue(res, 0, 1));
        snprintf(c->status, sizeof c->status, "%s", PQgetvalue(res, 0, 2));
    }
    PQclear(res);
    return rc;
}

/* Queue one job and describe it in `jobs` (a JSON array). */
static int enqueue_one(hostd *h, const conn_info *c, const char *stream, int full,
                       json_object *jobs, char *err, size_t err_len)
{
    char id[37];
    int created = 0;
    int rc = jobs_enqueue_now(h->store, c->tenant, c->id, c->provider, stream, full,
                              h->cfg->job_max_retries + 1, id, &created);
    if (rc != INGEST_OK) {
        snprintf(err, err_len, "cannot queue a job for stream %s (status %d)", stream, rc);
        return rc;
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "stream", json_object_new_string(stream));
    json_object_object_add(o, "kind", json_object_new_string(full ? "full" : "incremental"));
    json_object_object_add(o, "created", json_object_new_boolean(created));
    json_object_array_add(jobs, o);
    return INGEST_OK;
}

static void wake_executor(void *arg) { executor_wake(arg); }

/* Queue runs for a connection now: one stream, or all of its plugin's. */
static json_object *enqueue_connection(hostd *h, const char *connection_id, const char *stream,
                                       int full, char *err, size_t err_len)
{
    conn_info c = {.id = connection_id};
    if (!util_is_uuid(connection_id)) {
        snprintf(err, err_len, "'%.64s' is not a connection id (uuid)", connection_id);
        return NULL;
    }
    if (store_call(h->store, conn_fn, &c) != INGEST_OK) {
        snprintf(err, err_len, "database unavailable");
        return NULL;
    }
    if (!c.found || strcmp(c.status, "active") != 0) {
        snprintf(err, err_len, c.found ? "connection %s is %s, not active" : "no connection %s%s",
                 connection_id, c.found ? c.status : "");
        return NULL;
    }
    instance *inst = stream ? NULL : registry_acquire(h->plugins, c.provider);
    if (!stream && (!inst || inst->desc.n_streams == 0)) {
        snprintf(err, err_len,
                 "plugin %s is not loaded here or declares no streams: name one "
                 "with --stream",
                 c.provider);
        if (inst)
            instance_release(inst);
        return NULL;
    }
    json_object *jobs = json_object_new_array();
    int rc = INGEST_OK;
    if (stream)
        rc = enqueue_one(h, &c, stream, full, jobs, err, err_len);
    for (size_t i = 0; inst && rc == INGEST_OK && i < inst->desc.n_streams; i++) {
        const ingest_stream *st = instance_stream(inst, i);
        if (st)
            rc = enqueue_one(h, &c, st->name, full, jobs, err, err_len);
    }
    if (inst)
        instance_release(inst);
    loop_post(h->mailbox, wake_executor, h);
    if (rc != INGEST_OK) {
        json_object_put(jobs);
        return NULL;
    }
    return jobs;
}

static const char *req_str(json_object *req, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

json_object *sync_scheduler_admin_sync(hostd *h, json_object *req, char *err, size_t err_len)
{
    const char *conn = req_str(req, "connection_id");
    json_object *v = NULL;
    int full = json_object_object_get_ex(req, "full", &v) && json_object_get_boolean(v);
    if (!conn) {
        snprintf(err, err_len, "sync needs a connection_id");
        return NULL;
    }
    json_object *jobs = enqueue_connection(h, conn, req_str(req, "stream"), full, err, err_len);
    if (!jobs)
        return NULL;
    json_object *out = json_object_new_object();
    json_object_object_add(out, "jobs", jobs);
    return out;
}

json_object *sync_scheduler_admin_jobs(hostd *h, json_object *req, char *err, size_t err_len)
{
    json_object *v = NULL;
    int limit = json_object_object_get_ex(req, "limit", &v) ? json_object_get_int(v) : 50;
    if (limit < 1 || limit > 10000) {
        snprintf(err, err_len, "limit must be from 1 to 10000");
        return NULL;
    }
    const char *conn = req_str(req, "connection_id");
    if (conn && !util_is_uuid(conn)) {
        snprintf(err, err_len, "'%.64s' is not a connection id (uuid)", conn);
        return NULL;
    }
    json_object *list = NULL;
    if (jobs_list(h->store, req_str(req, "state"), req_str(req, "provider"), conn, limit, &list,
                  err, err_len) != INGEST_OK)
        return NULL;
    json_object *out = json_object_new_object();
    json_object_object_add(out, "jobs", list);
    return out;
}

typedef struct request_task {
    hostd *h;
    char *connection_id;
    char *stream;
} request_task;

static void request_work(void *arg)
{
    request_task *t = arg;
    char err[512];
    json_object *jobs = enqueue_connection(t->h, t->connection_id, t->stream, 0, err, sizeof err);
    if (!jobs)
        log_warn("sync: requested run of connection %s not queued: %s", t->connection_id, err);
    json_object_put(jobs);
    free(t->connection_id);
    free(t->stream);
    free(t);
}

int sync_scheduler_request(hostd *h, const char *connection_id, const char *stream)
{
    request_task *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->h = h;
    t->connection_id = strdup(connection_id);
    t->stream = stream ? strdup(stream) : NULL;
    if (!t->connection_id || (stream && !t->stream) ||
        workers_submit(h->workers, request_work, t) < 0) {
        free(t->connection_id);
        free(t->stream);
        free(t);
        return -1;
    }
    return 0;
}
