/* executor.c — the loop thread only decides when to claim; claiming, running
 * and recording happen on workers because they block on the store. */
#include "executor.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backoff.h"
#include "instance.h"
#include "jobs.h"
#include "log.h"
#include "registry.h"
#include "run.h"
#include "util.h"

#define RELEASE_DELAY_MS 5000     /* plugin not loaded here: let another host try */
#define RATE_LIMIT_DELAY_MS 60000 /* vendor said slow down without saying how long */

struct executor_state {
    hostd *h;
    char owner[128];
    struct event *poll_timer;
    struct event *heartbeat_timer;
    struct event *wake;
    atomic_int running;  /* jobs in flight */
    atomic_int claiming; /* a claim task is queued or running */
    atomic_int heartbeating;
    int stopped;
    pthread_mutex_t inflight_lock; /* guards inflight_ids */
    char **inflight_ids;           /* jobs running here: the heartbeat renews these */
    size_t n_inflight, cap_inflight;
    ingest_metric *m_started, *m_succeeded, *m_failed, *m_dead, *m_lost;
};

typedef struct job_task {
    hostd *h;
    instance *inst;
    job_row row;
} job_task;

static int max_jobs(const hostd *h)
{
    return h->cfg->max_jobs > 0 ? h->cfg->max_jobs : h->cfg->workers;
}

static int has_sync(const instance *inst) { return inst->desc.sync != NULL; }

static void track(struct executor_state *ex, const char *job_id)
{
    pthread_mutex_lock(&ex->inflight_lock);
    if (ex->n_inflight == ex->cap_inflight) {
        size_t cap = ex->cap_inflight ? ex->cap_inflight * 2 : 16;
        char **grown = realloc(ex->inflight_ids, cap * sizeof *grown);
        if (grown) {
            ex->inflight_ids = grown;
            ex->cap_inflight = cap;
        }
    }
    if (ex->n_inflight < ex->cap_inflight) {
        char *copy = strdup(job_id);
        if (copy)
            ex->inflight_ids[ex->n_inflight++] = copy;
    }
    pthread_mutex_unlock(&ex->inflight_lock);
}

static void untrack(struct executor_state *ex, const char *job_id)
{
    pthread_mutex_lock(&ex->inflight_lock);
    for (size_t i = 0; i < ex->n_inflight; i++) {
        if (strcmp(ex->inflight_ids[i], job_id) == 0) {
            free(ex->inflight_ids[i]);
            ex->inflight_ids[i] = ex->inflight_ids[--ex->n_inflight];
            break;
        }
    }
    pthread_mutex_unlock(&ex->inflight_lock);
}

/* A copy of the in-flight ids (NULL-terminated), for the heartbeat. */
static char **inflight_snapshot(struct executor_state *ex, size_t *n)
{
    pthread_mutex_lock(&ex->inflight_lock);
    char **ids = calloc(ex->n_inflight + 1, sizeof *ids);
    *n = 0;
    for (size_t i = 0; ids && i < ex->n_inflight; i++) {
        ids[i] = strdup(ex->inflight_ids[i]);
        if (ids[i])
            (*n)++;
        else
            break;
    }
    pthread_mutex_unlock(&ex->inflight_lock);
    return ids;
}

static job_outcome outcome_of(int rc)
{
    if (rc == INGEST_OK)
        return JOB_SUCCEEDED;
    if (rc == INGEST_ERATELIMITED)
        return JOB_RATE_LIMITED;
    return JOB_FAILED;
}

static void job_done(void *arg)
{
    hostd *h = arg;
    executor_wake(h);
}

static void execute_job(void *arg)
{
    job_task *t = arg;
    hostd *h = t->h;
    struct executor_state *ex = (struct executor_state *)h->executor;
    instance *inst = t->inst;
    job_row *j = &t->row;
    log_fields f = {.plugin = inst->name, .tenant = j->tenant_id, .job = j->id};
    int64_t started = util_mono_ms();
    log_write(INGEST_LOG_INFO, &f, "job started: stream %s, %s, attempt %d/%d, owner %s", j->stream,
              j->full_refresh ? "full refresh" : "incremental", j->attempts, j->max_attempts,
              ex->owner);
    metrics_add(ex->m_started, 1);

    ingest_job job = {
        .hdr = INGEST_ABI_HEADER(ingest_job),
        .job_id = j->id,
        .tenant_id = j->tenant_id,
        .connection_id = j->connection_id[0] ? j->connection_id : NULL,
        .stream = j->stream,
        .full_refresh = j->full_refresh,
        .attempt = j->attempts,
        .backfill_since_us = util_now_us() - (int64_t)h->cfg->backfill_days * 86400 * 1000000,
    };
    ingest_run *run = run_new(inst, j->tenant_id, job.connection_id, j->id, NULL);
    int rc = run ? run_set_fence(run, j->id, ex->owner, h->cfg->job_lease_s) : INGEST_ENOMEM;
    if (rc == INGEST_OK)
        rc = run_finish(run, inst->desc.sync(run, inst->state, &job));
    long long records = run ? run_stored(run) : 0;
    const char *why = run && run_error(run) ? run_error(run) : NULL;
    char error[600];
    snprintf(error, sizeof error, "sync returned status %d%s%s", rc, why ? ": " : "",
             why ? why : "");

    if (rc == INGEST_ECANCELED && why && strstr(why, "lease")) {
        metrics_add(ex->m_lost, 1);
        log_write(INGEST_LOG_WARN, &f, "job abandoned: %s", why);
    } else {
        job_outcome outcome = outcome_of(rc);
        long long delay = outcome == JOB_RATE_LIMITED
                              ? RATE_LIMIT_DELAY_MS
                              : backoff_delay_ms(&backoff_default, j->attempts, util_random01());
        int frc = jobs_finish(h->store, j, ex->owner, outcome, rc == INGEST_OK ? NULL : error,
                              records, delay);
        int dead = outcome == JOB_FAILED && j->attempts >= j->max_attempts;
        metrics_add(rc == INGEST_OK ? ex->m_succeeded : dead ? ex->m_dead : ex->m_failed, 1);
        log_write(rc == INGEST_OK ? INGEST_LOG_INFO : INGEST_LOG_WARN, &f,
                  "job %s after %lld ms: %lld record(s) stored%s%s%s",
                  rc == INGEST_OK               ? "succeeded"
                  : outcome == JOB_RATE_LIMITED ? "rate limited, requeued"
                  : dead                        ? "failed for the last time (dead)"
                                                : "failed, will retry",
                  (long long)(util_mono_ms() - started), records, rc == INGEST_OK ? "" : "; ",
                  rc == INGEST_OK ? "" : error, frc == INGEST_OK ? "" : " (outcome not recorded)");
    }
    run_free(run);
    untrack(ex, j->id);
    instance_release(inst);
    atomic_fetch_sub(&ex->running, 1);
    free(t);
    loop_post(h->mailbox, job_done, h);
}

/* Hand each claimed job to a worker, or give it back if we cannot run it. */
static void dispatch_claimed(hostd *h, job_row *rows, size_t n)
{
    struct executor_state *ex = (struct executor_state *)h->executor;
    for (size_t i = 0; i < n; i++) {
        instance *inst = registry_acquire(h->plugins, rows[i].provider);
        job_task *t = inst && inst->desc.sync ? calloc(1, sizeof *t) : NULL;
        if (t) {
            *t = (job_task){h, inst, rows[i]};
            atomic_fetch_add(&ex->running, 1);
            track(ex, rows[i].id);
            if (workers_submit(h->workers, execute_job, t) == 0)
                continue;
            untrack(ex, rows[i].id);
            atomic_fetch_sub(&ex->running, 1);
            free(t);
        }
        if (inst)
            instance_release(inst);
        jobs_finish(h->store, &rows[i], ex->owner, JOB_RELEASED,
                    "could not start here (plugin unloaded or worker queue full)", 0,
                    RELEASE_DELAY_MS);
    }
}

typedef struct claim_task {
    hostd *h;
    char **names; /* providers whose jobs this host can run */
    size_t n_names;
    int limit;
    size_t claimed;
} claim_task;

static void claim_done(void *arg)
{
    claim_task *c = arg;
    struct executor_state *ex = (struct executor_state *)c->h->executor;
    atomic_store(&ex->claiming, 0);
    /* A full batch suggests more are due: look again right away. */
    if (c->claimed > 0 && (int)c->claimed == c->limit)
        executor_wake(c->h);
    free(c);
}

static void claim_work(void *arg)
{
    claim_task *c = arg;
    hostd *h = c->h;
    struct executor_state *ex = (struct executor_state *)h->executor;
    job_row *rows = NULL;
    size_t n = 0;
    if (jobs_claim(h->store, ex->owner, c->names, c->n_names, c->limit, h->cfg->job_lease_s, &rows,
                   &n) == INGEST_OK)
        dispatch_claimed(h, rows, n);
    c->claimed = n;
    free(rows);
    util_strv_free(c->names);
    loop_post(h->mailbox, claim_done, c);
}

static void poll_now(hostd *h)
{
    struct executor_state *ex = (struct executor_state *)h->executor;
    if (ex->stopped || atomic_load(&h->shutting_down) || !store_ready(h->store) ||
        atomic_load(&ex->claiming))
        return;
    int free_slots = max_jobs(h) - atomic_load(&ex->running);
    if (free_slots <= 0)
        return;
    claim_task *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->h = h;
    c->limit = free_slots;
    c->names = registry_serving_names(h->plugins, has_sync, &c->n_names);
    atomic_store(&ex->claiming, 1);
    if (c->n_names == 0 || workers_submit(h->workers, claim_work, c) < 0) {
        atomic_store(&ex->claiming, 0);
        util_strv_free(c->names);
        free(c);
    }
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    poll_now(arg);
}

static void heartbeat_done(void *arg)
{
    struct executor_state *ex = (struct executor_state *)((hostd *)arg)->executor;
    atomic_store(&ex->heartbeating, 0);
}

static void heartbeat_work(void *arg)
{
    hostd *h = arg;
    struct executor_state *ex = (struct executor_state *)h->executor;
    size_t n = 0;
    char **ids = inflight_snapshot(ex, &n);
    if (ids && jobs_extend_leases(h->store, ex->owner, h->cfg->job_lease_s, ids, n) != INGEST_OK)
        log_warn("jobs: cannot renew leases; other hosts may take over running jobs");
    util_strv_free(ids);
    loop_post(h->mailbox, heartbeat_done, h);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hostd *h = arg;
    struct executor_state *ex = (struct executor_state *)h->executor;
    if (atomic_load(&ex->running) == 0 || atomic_exchange(&ex->heartbeating, 1))
        return;
    if (workers_submit(h->workers, heartbeat_work, h) < 0)
        atomic_store(&ex->heartbeating, 0);
}

int executor_start(hostd *h)
{
    struct executor_state *ex = calloc(1, sizeof *ex);
    if (!ex)
        return -1;
    ex->h = h;
    pthread_mutex_init(&ex->inflight_lock, NULL);
    char host[64] = "localhost", id[37];
    gethostname(host, sizeof host - 1);
    util_uuid4(id);
    snprintf(ex->owner, sizeof ex->owner, "%s:%d:%.8s", host, (int)getpid(), id);
    h->executor = ex;
    metrics_registry *m = h->metrics;
    const char *help = "Sync jobs by outcome on this daemon";
    ex->m_started = metrics_register(m, METRIC_COUNTER, "ingest_jobs_total", help,
                                     "outcome=\"started\"", ex, NULL, 0);
    ex->m_succeeded = metrics_register(m, METRIC_COUNTER, "ingest_jobs_total", help,
                                       "outcome=\"succeeded\"", ex, NULL, 0);
    ex->m_failed = metrics_register(m, METRIC_COUNTER, "ingest_jobs_total", help,
                                    "outcome=\"failed\"", ex, NULL, 0);
    ex->m_dead = metrics_register(m, METRIC_COUNTER, "ingest_jobs_total", help, "outcome=\"dead\"",
                                  ex, NULL, 0);
    ex->m_lost = metrics_register(m, METRIC_COUNTER, "ingest_jobs_total", help,
                                  "outcome=\"lease_lost\"", ex, NULL, 0);
    int poll_ms = h->cfg->job_poll_ms;
    int beat_ms = h->cfg->job_lease_s * 1000 / 3;
    struct timeval poll = {poll_ms / 1000, (poll_ms % 1000) * 1000};
    struct timeval beat = {beat_ms / 1000, (beat_ms % 1000) * 1000};
    ex->poll_timer = event_new(h->base, -1, EV_PERSIST, on_poll, h);
    ex->heartbeat_timer = event_new(h->base, -1, EV_PERSIST, on_heartbeat, h);
    ex->wake = event_new(h->base, -1, 0, on_poll, h);
    if (!ex->poll_timer || !ex->heartbeat_timer || !ex->wake)
        return -1;
    event_add(ex->poll_timer, &poll);
    event_add(ex->heartbeat_timer, &beat);
    log_info("jobs: claiming as %s (lease %d s, up to %d at once)", ex->owner, h->cfg->job_lease_s,
             max_jobs(h));
    return 0;
}

void executor_wake(hostd *h)
{
    struct executor_state *ex = (struct executor_state *)h->executor;
    if (ex && ex->wake)
        event_active(ex->wake, EV_TIMEOUT, 0);
}

void executor_stop(hostd *h)
{
    struct executor_state *ex = (struct executor_state *)h->executor;
    if (!ex)
        return;
    ex->stopped = 1;
    if (ex->poll_timer)
        event_del(ex->poll_timer);
    /* Keep renewing leases while running jobs drain. */
}

void executor_free(hostd *h)
{
    struct executor_state *ex = (struct executor_state *)h->executor;
    if (!ex)
        return;
    if (ex->poll_timer)
        event_free(ex->poll_timer);
    if (ex->heartbeat_timer)
        event_free(ex->heartbeat_timer);
    if (ex->wake)
        event_free(ex->wake);
    for (size_t i = 0; i < ex->n_inflight; i++)
        free(ex->inflight_ids[i]);
    free(ex->inflight_ids);
    pthread_mutex_destroy(&ex->inflight_lock);
    free(ex);
    h->executor = NULL;
}
