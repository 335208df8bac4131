/* executor.c — the loop thread only decides when to claim; claiming, running
 * and recording happen on workers because they block on the store.
 *
 * Fairness and caps: a claim pass lists the (tenant, provider) pairs that
 * have waiting jobs and claims one job at a time, tenant by tenant in
 * round-robin order (a tenant with weight w gets up to w jobs per turn),
 * starting after the tenant served last, so a tenant with 10,000 queued jobs
 * cannot starve one with a single job. Caps are counted here, per daemon,
 * like max_jobs: a job is only claimed when its tenant and provider are
 * under their caps, so no claim ever has to be given back for a cap. */
#include "executor.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backoff.h"
#include "circuit.h"
#include "instance.h"
#include "jobs.h"
#include "log.h"
#include "loop.h"
#include "oauth_refresh.h"
#include "registry.h"
#include "run.h"
#include "util.h"

#define RELEASE_DELAY_MS 5000     /* plugin not loaded here: let another host try */
#define RATE_LIMIT_DELAY_MS 60000 /* vendor said slow down without saying how long */
#define REAP_EVERY_MS 30000       /* the reaper scans waiting jobs: not on every claim */

/* One provider as the executor sees it; created on first use and kept until
 * executor_free, so pointers to it stay valid. */
typedef struct provider_stats {
    char name[128];
    circuit *circuit;
    int running; /* jobs of this provider running here; under ex->lock */
    ingest_metric *m_duration, *m_records, *m_lag, *m_circuit;
    ingest_metric *m_ok, *m_failed, *m_dead, *m_retry_error, *m_retry_rate, *m_retry_circuit,
        *m_retry_released;
    struct provider_stats *next;
} provider_stats;

typedef struct tenant_count {
    char id[37];
    int running;
    struct tenant_count *next;
} tenant_count;

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
    pthread_mutex_t inflight_lock; /* guards inflight_ids, providers, tenants */
    char **inflight_ids;           /* jobs running here: the heartbeat renews these */
    size_t n_inflight, cap_inflight;
    provider_stats *providers;
    tenant_count *tenants;
    char rr_last[37];     /* tenant whose turn it is or was; claim worker only */
    int rr_used;          /* jobs it got in that turn (a turn is `weight` jobs) */
    int64_t last_reap_ms; /* claim worker only */
    atomic_int circuit_threshold, circuit_cooldown_s;
    ingest_metric *m_started, *m_succeeded, *m_failed, *m_dead, *m_lost;
    ingest_metric *m_state[3]; /* ingest_jobs{state}: queued, retrying, running */
};

typedef struct job_task {
    hostd *h;
    instance *inst;
    provider_stats *ps;
    int circuit_permit; /* circuit_allow let it through: report the outcome */
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

/* ---- per-provider and per-tenant bookkeeping (under inflight_lock) ---- */

static void register_provider_metrics(metrics_registry *m, provider_stats *ps, const void *owner)
{
    static const double secs[] = {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
    char l[256];
#define PROVIDER_SERIES(slot, type, name, help, fmt, ...)                                          \
    do {                                                                                           \
        snprintf(l, sizeof l, fmt, __VA_ARGS__);                                                   \
        ps->slot = metrics_register(m, type, name, help, l, owner,                                 \
                                    type == METRIC_HISTOGRAM ? secs : NULL,                        \
                                    type == METRIC_HISTOGRAM ? sizeof secs / sizeof secs[0] : 0);  \
    } while (0)
    const char *n = ps->name;
    PROVIDER_SERIES(m_duration, METRIC_HISTOGRAM, "ingest_job_duration_seconds",
                    "Sync job run time by provider", "provider=\"%s\"", n);
    PROVIDER_SERIES(m_records, METRIC_COUNTER, "ingest_records_total",
                    "Records newly stored by sync jobs", "provider=\"%s\"", n);
    PROVIDER_SERIES(m_lag, METRIC_GAUGE, "ingest_connector_lag_seconds",
                    "Seconds since the newest succeeded sync job of the provider finished",
                    "provider=\"%s\"", n);
    PROVIDER_SERIES(m_circuit, METRIC_GAUGE, "ingest_circuit_state",
                    "Circuit breaker per provider: 0 closed, 1 half-open, 2 open",
                    "provider=\"%s\"", n);
    const char *jh = "Sync job outcomes by provider";
    PROVIDER_SERIES(m_ok, METRIC_COUNTER, "ingest_sync_jobs_total", jh,
                    "provider=\"%s\",outcome=\"succeeded\"", n);
    PROVIDER_SERIES(m_failed, METRIC_COUNTER, "ingest_sync_jobs_total", jh,
                    "provider=\"%s\",outcome=\"failed\"", n);
    PROVIDER_SERIES(m_dead, METRIC_COUNTER, "ingest_sync_jobs_total", jh,
                    "provider=\"%s\",outcome=\"dead\"", n);
    const char *rh = "Sync jobs put back to run later, by reason";
    PROVIDER_SERIES(m_retry_error, METRIC_COUNTER, "ingest_job_retries_total", rh,
                    "provider=\"%s\",reason=\"error\"", n);
    PROVIDER_SERIES(m_retry_rate, METRIC_COUNTER, "ingest_job_retries_total", rh,
                    "provider=\"%s\",reason=\"rate_limited\"", n);
    PROVIDER_SERIES(m_retry_circuit, METRIC_COUNTER, "ingest_job_retries_total", rh,
                    "provider=\"%s\",reason=\"circuit_open\"", n);
    PROVIDER_SERIES(m_retry_released, METRIC_COUNTER, "ingest_job_retries_total", rh,
                    "provider=\"%s\",reason=\"released\"", n);
#undef PROVIDER_SERIES
}

/* Under the lock. NULL only when out of memory. */
static provider_stats *provider_locked(struct executor_state *ex, const char *name)
{
    for (provider_stats *p = ex->providers; p; p = p->next)
        if (strcmp(p->name, name) == 0)
            return p;
    provider_stats *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->circuit = circuit_new(atomic_load(&ex->circuit_threshold),
                             (int64_t)atomic_load(&ex->circuit_cooldown_s) * 1000);
    if (!p->circuit) {
        free(p);
        return NULL;
    }
    register_provider_metrics(ex->h->metrics, p, ex);
    p->next = ex->providers;
    ex->providers = p;
    return p;
}

static provider_stats *provider_get(struct executor_state *ex, const char *name)
{
    pthread_mutex_lock(&ex->inflight_lock);
    provider_stats *p = provider_locked(ex, name);
    pthread_mutex_unlock(&ex->inflight_lock);
    return p;
}

static tenant_count *tenant_locked(struct executor_state *ex, const char *id, int create)
{
    for (tenant_count *t = ex->tenants; t; t = t->next)
        if (strcmp(t->id, id) == 0)
            return t;
    tenant_count *t = create ? calloc(1, sizeof *t) : NULL;
    if (t) {
        snprintf(t->id, sizeof t->id, "%s", id);
        t->next = ex->tenants;
        ex->tenants = t;
    }
    return t;
}

static int tenant_running(struct executor_state *ex, const char *id)
{
    pthread_mutex_lock(&ex->inflight_lock);
    tenant_count *t = tenant_locked(ex, id, 0);
    int n = t ? t->running : 0;
    pthread_mutex_unlock(&ex->inflight_lock);
    return n;
}

static int provider_running(struct executor_state *ex, provider_stats *ps)
{
    pthread_mutex_lock(&ex->inflight_lock);
    int n = ps->running;
    pthread_mutex_unlock(&ex->inflight_lock);
    return n;
}

/* A job starts (+1) or ends (-1) here: the caps count it. */
static void count_job(struct executor_state *ex, provider_stats *ps, const char *tenant, int delta)
{
    pthread_mutex_lock(&ex->inflight_lock);
    tenant_count *t = tenant_locked(ex, tenant, delta > 0);
    if (t)
        t->running += delta;
    ps->running += delta;
    pthread_mutex_unlock(&ex->inflight_lock);
}

static double circuit_gauge(circuit_state s)
{
    return s == CIRCUIT_OPEN ? 2 : s == CIRCUIT_HALF_OPEN ? 1 : 0;
}

/* ---- running one job ------------------------------------------------- */

/* Refused credentials fail for good at once: a retry would be refused the
 * same way, and they say nothing about the provider being up (the circuit
 * only counts JOB_FAILED). */
static job_outcome outcome_of(int rc)
{
    if (rc == INGEST_OK)
        return JOB_SUCCEEDED;
    if (rc == INGEST_ERATELIMITED)
        return JOB_RATE_LIMITED;
    if (rc == INGEST_EAUTH)
        return JOB_DEAD;
    return JOB_FAILED;
}

/* How long a rate-limited job waits. Kept in one place: the run will soon
 * carry the vendor's exact Retry-After, which belongs here. */
/* The wait the vendor (or the plugin) named, else a conservative default. */
static long long rate_limit_delay_ms(const ingest_run *run)
{
    return run_retry_after_ms(run, RATE_LIMIT_DELAY_MS);
}

static void job_done(void *arg)
{
    hostd *h = arg;
    executor_wake(h);
}

/* Where the job starts when the stream has no cursor: backfill_days back.
 * With a cursor (incremental) the plugin follows the cursor: 0. */
static int64_t backfill_since(hostd *h, const job_row *j)
{
    int64_t since = util_now_us() - (int64_t)h->cfg->backfill_days * 86400 * 1000000;
    if (j->full_refresh || !j->connection_id[0])
        return since;
    char *cursor = NULL;
    if (store_cursor_get(h->store, j->provider, j->connection_id, j->stream, &cursor) != INGEST_OK)
        return since; /* unknown: the plugin reads the cursor itself anyway */
    int has = cursor != NULL;
    free(cursor);
    return has ? 0 : since;
}

/* OAuth2 connections get a fresh access token before the plugin runs (the
 * refresh looks at the connection's own kind, so a plugin that accepts
 * several kinds is covered too); one that needs re-authorization fails its
 * job for good. Returns INGEST_OK, INGEST_EAUTH (never retry) or a
 * transient status. */
static int ensure_token(hostd *h, instance *inst, const job_row *j, char *why, size_t why_len)
{
    why[0] = '\0';
    if (!j->connection_id[0])
        return INGEST_OK;
    return oauth_ensure_fresh(h, inst, j->connection_id, 0, why, why_len);
}

typedef struct job_result {
    int rc;
    job_outcome outcome;
    long long records;
    long long delay_ms; /* RATE_LIMITED: how long to wait */
    int lease_lost;     /* another host owns the job now: record nothing */
    char error[600];
} job_result;

static void run_plugin(job_task *t, job_result *r)
{
    hostd *h = t->h;
    struct executor_state *ex = (struct executor_state *)h->executor;
    job_row *j = &t->row;
    char why[400];
    r->rc = ensure_token(h, t->inst, j, why, sizeof why);
    if (r->rc != INGEST_OK) {
        r->outcome = r->rc == INGEST_EAUTH ? JOB_DEAD : JOB_FAILED;
        snprintf(r->error, sizeof r->error, "access token refresh failed (status %d)%s%s", r->rc,
                 why[0] ? ": " : "", why);
        return;
    }
    ingest_job job = {
        .hdr = INGEST_ABI_HEADER(ingest_job),
        .job_id = j->id,
        .tenant_id = j->tenant_id,
        .connection_id = j->connection_id[0] ? j->connection_id : NULL,
        .stream = j->stream,
        .full_refresh = j->full_refresh,
        .attempt = j->attempts,
        .backfill_since_us = backfill_since(h, j),
        .lookback_us = (int64_t)h->cfg->cursor_lookback_s * 1000000,
    };
    ingest_run *run = run_new(t->inst, j->tenant_id, job.connection_id, j->id, NULL);
    int rc = run ? run_set_fence(run, j->id, ex->owner, h->cfg->job_lease_s) : INGEST_ENOMEM;
    if (rc == INGEST_OK)
        rc = run_finish(run, t->inst->desc.sync(run, t->inst->state, &job));
    r->rc = rc;
    r->outcome = outcome_of(rc);
    r->records = run ? run_stored(run) : 0;
    const char *err = run && run_error(run) ? run_error(run) : NULL;
    snprintf(r->error, sizeof r->error, "sync returned status %d%s%s", rc, err ? ": " : "",
             err ? err : "");
    if (rc == INGEST_ECANCELED && err && strstr(err, "lease")) {
        r->outcome = JOB_RELEASED;
        r->lease_lost = 1;
    } else if (rc == INGEST_ECANCELED && atomic_load(&h->shutting_down)) {
        r->outcome = JOB_RELEASED; /* cut short by shutdown: runs again, uncounted */
    }
    if (r->outcome == JOB_RATE_LIMITED)
        r->delay_ms = rate_limit_delay_ms(run);
    run_free(run);
}

/* Only provider trouble moves the circuit: a success closes it, a failure
 * counts; waits (rate limit), lost leases and refused credentials say
 * nothing about the provider being up. */
static void report_circuit(job_task *t, const job_result *r, int lease_lost)
{
    if (!t->circuit_permit || lease_lost)
        return;
    int64_t now = util_mono_ms();
    provider_stats *ps = t->ps;
    if (r->outcome == JOB_SUCCEEDED)
        circuit_record(ps->circuit, 1, now);
    else if (r->outcome == JOB_FAILED)
        circuit_record(ps->circuit, 0, now);
    circuit_state s = circuit_get_state(ps->circuit, now);
    if (s == CIRCUIT_OPEN && metrics_value(ps->m_circuit) != 2)
        log_warn("jobs: circuit of provider %s opened after %d consecutive failed job(s); its "
                 "jobs wait %d s before one probe runs",
                 ps->name, circuit_consecutive_failures(ps->circuit),
                 atomic_load(&((struct executor_state *)t->h->executor)->circuit_cooldown_s));
    else if (s == CIRCUIT_CLOSED && metrics_value(ps->m_circuit) != 0)
        log_info("jobs: circuit of provider %s closed again", ps->name);
    metrics_set(ps->m_circuit, circuit_gauge(s));
}

static void record_outcome(job_task *t, job_result *r, const log_fields *f, int64_t started)
{
    hostd *h = t->h;
    struct executor_state *ex = (struct executor_state *)h->executor;
    job_row *j = &t->row;
    provider_stats *ps = t->ps;
    if (r->lease_lost) {
        metrics_add(ex->m_lost, 1);
        log_write(INGEST_LOG_WARN, f, "job abandoned: %s", r->error);
        report_circuit(t, r, 1);
        return;
    }
    int released = r->outcome == JOB_RELEASED; /* cut short by shutdown */
    long long delay = r->outcome == JOB_RATE_LIMITED ? r->delay_ms
                      : released                     ? 0
                                 : backoff_delay_ms(&backoff_default, j->attempts, util_random01());
    long long records = r->records;
    int ok = r->outcome == JOB_SUCCEEDED;
    int frc = jobs_finish(h->store, j, ex->owner, r->outcome, ok ? NULL : r->error, records, delay);
    int dead =
        r->outcome == JOB_DEAD || (r->outcome == JOB_FAILED && j->attempts >= j->max_attempts);
    double secs = (double)(util_mono_ms() - started) / 1000.0;
    metrics_observe(ps->m_duration, secs);
    metrics_add(ps->m_records, (double)records);
    if (!released) {
        metrics_add(ok ? ex->m_succeeded : dead ? ex->m_dead : ex->m_failed, 1);
        metrics_add(ok ? ps->m_ok : dead ? ps->m_dead : ps->m_failed, 1);
    }
    if (r->outcome == JOB_RATE_LIMITED)
        metrics_add(ps->m_retry_rate, 1);
    else if (released)
        metrics_add(ps->m_retry_released, 1);
    else if (!ok && !dead)
        metrics_add(ps->m_retry_error, 1);
    report_circuit(t, r, 0);
    log_write(ok ? INGEST_LOG_INFO : INGEST_LOG_WARN, f,
              "job %s after %lld ms: %lld record(s) stored%s%s%s",
              ok                               ? "succeeded"
              : r->outcome == JOB_RATE_LIMITED ? "rate limited, requeued"
              : released                       ? "interrupted by shutdown, requeued"
              : dead                           ? "failed for the last time (dead)"
                                               : "failed, will retry",
              (long long)(secs * 1000), records, ok ? "" : "; ", ok ? "" : r->error,
              frc == INGEST_OK ? "" : " (outcome not recorded)");
}

static void execute_job(void *arg)
{
    job_task *t = arg;
    hostd *h = t->h;
    struct executor_state *ex = (struct executor_state *)h->executor;
    job_row *j = &t->row;
    log_fields f = {.plugin = t->inst->name, .tenant = j->tenant_id, .job = j->id};
    int64_t started = util_mono_ms();
    log_write(INGEST_LOG_INFO, &f, "job started: stream %s, %s, attempt %d/%d, owner %s", j->stream,
              j->full_refresh ? "full refresh" : "incremental", j->attempts, j->max_attempts,
              ex->owner);
    metrics_add(ex->m_started, 1);
    job_result r = {0};
    run_plugin(t, &r);
    record_outcome(t, &r, &f, started);
    untrack(ex, j->id);
    count_job(ex, t->ps, j->tenant_id, -1);
    instance_release(t->inst);
    atomic_fetch_sub(&ex->running, 1);
    free(t);
    loop_post(h->mailbox, job_done, h);
}

/* Give a claimed job back without counting the attempt. */
static void release(hostd *h, const job_row *row, const char *why, long long delay_ms)
{
    struct executor_state *ex = (struct executor_state *)h->executor;
    jobs_finish(h->store, row, ex->owner, JOB_RELEASED, why, 0, delay_ms);
}

/* Hand one claimed job to a worker, or give it back if we cannot run it
 * (plugin gone, worker queue full, circuit open). Returns 1 if it runs. */
static int dispatch_one(hostd *h, const job_row *row)
{
    struct executor_state *ex = (struct executor_state *)h->executor;
    provider_stats *ps = provider_get(ex, row->provider);
    int64_t retry_in = 0;
    if (ps && !circuit_allow(ps->circuit, util_mono_ms(), &retry_in)) {
        metrics_add(ps->m_retry_circuit, 1);
        release(h, row, "deferred: the provider's circuit is open", retry_in);
        return 0;
    }
    instance *inst = ps ? registry_acquire(h->plugins, row->provider) : NULL;
    job_task *t = inst && inst->desc.sync ? calloc(1, sizeof *t) : NULL;
    if (t) {
        *t = (job_task){h, inst, ps, 1, *row};
        atomic_fetch_add(&ex->running, 1);
        count_job(ex, ps, row->tenant_id, +1);
        track(ex, row->id);
        if (workers_submit(h->workers, execute_job, t) == 0)
            return 1;
        untrack(ex, row->id);
        count_job(ex, ps, row->tenant_id, -1);
        atomic_fetch_sub(&ex->running, 1);
        free(t);
    }
    if (inst)
        instance_release(inst);
    if (ps) {
        metrics_add(ps->m_retry_released, 1);
        /* The probe permit goes back unused: report nothing, it expires. */
    }
    release(h, row, "could not start here (plugin unloaded or worker queue full)",
            RELEASE_DELAY_MS);
    return 0;
}

/* ---- claiming -------------------------------------------------------- */

typedef struct claim_task {
    hostd *h;
    char **names; /* providers whose jobs this host can run */
    size_t n_names;
    int limit;
    int tenant_cap, provider_cap; /* 0 = none */
    char *weights;                /* "uuid=w,uuid=w" */
    size_t claimed;
} claim_task;

static int tenant_weight(const char *weights, const char *tenant)
{
    const char *hit = weights ? strstr(weights, tenant) : NULL;
    if (!hit || hit[36] != '=')
        return 1;
    int w = atoi(hit + 37);
    return w > 0 ? w : 1;
}

/* May this provider's jobs be claimed now? An open circuit defers them
 * (they stay queued, attempts untouched); a half-open one lets exactly one
 * probe run, so only while none of its jobs runs here. */
static int provider_claimable(struct executor_state *ex, const claim_task *c, provider_stats *ps)
{
    int running = provider_running(ex, ps);
    if (c->provider_cap > 0 && running >= c->provider_cap)
        return 0;
    circuit_state s = circuit_get_state(ps->circuit, util_mono_ms());
    metrics_set(ps->m_circuit, circuit_gauge(s));
    if (s == CIRCUIT_OPEN)
        return 0;
    return s == CIRCUIT_CLOSED || running == 0;
}

typedef struct tenant_group {
    size_t first, count; /* pairs[first .. first+count) */
    size_t next;         /* rotates over the tenant's providers */
    unsigned char *exhausted;
} tenant_group;

/* Claim one job of the tenant from the next provider that may run one.
 * Returns 1 if a job was claimed and dispatched (or given back). */
static int claim_for_tenant(claim_task *c, job_pair *pairs, tenant_group *g)
{
    hostd *h = c->h;
    struct executor_state *ex = (struct executor_state *)h->executor;
    for (size_t k = 0; k < g->count; k++) {
        size_t i = (g->next + k) % g->count;
        if (g->exhausted[i])
            continue;
        job_pair *p = &pairs[g->first + i];
        provider_stats *ps = provider_get(ex, p->provider);
        if (!ps || !provider_claimable(ex, c, ps))
            continue;
        job_row row;
        int got = 0;
        if (jobs_claim_one(h->store, ex->owner, p->tenant_id, p->provider, h->cfg->job_lease_s,
                           &row, &got) != INGEST_OK)
            return -1;
        if (!got) {
            g->exhausted[i] = 1;
            continue;
        }
        g->next = i + 1;
        dispatch_one(h, &row);
        return 1;
    }
    return 0;
}

/* Group the pairs (sorted by tenant) per tenant. */
static tenant_group *group_pairs(job_pair *pairs, size_t n, size_t *n_groups)
{
    tenant_group *g = calloc(n ? n : 1, sizeof *g);
    unsigned char *flags = calloc(n ? n : 1, 1);
    if (!g || !flags) {
        free(g);
        free(flags);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(pairs[i].tenant_id, pairs[i - 1].tenant_id) != 0)
            g[k++] = (tenant_group){i, 0, 0, flags + i};
        g[k - 1].count++;
    }
    *n_groups = k;
    return g;
}

/* Where this pass starts: the tenant whose turn is not over yet (a turn
 * spans claim passes when few slots are free), else the next one after it. */
static size_t rotation_start(const struct executor_state *ex, const claim_task *c,
                             const job_pair *pairs, const tenant_group *g, size_t n_groups)
{
    for (size_t i = 0; i < n_groups; i++)
        if (strcmp(pairs[g[i].first].tenant_id, ex->rr_last) == 0 &&
            ex->rr_used < tenant_weight(c->weights, ex->rr_last))
            return i;
    for (size_t i = 0; i < n_groups; i++)
        if (strcmp(pairs[g[i].first].tenant_id, ex->rr_last) > 0)
            return i;
    return 0;
}

/* Jobs the tenant may still get in its turn. */
static int turn_quota(const struct executor_state *ex, const claim_task *c, const char *tenant)
{
    int w = tenant_weight(c->weights, tenant);
    if (strcmp(tenant, ex->rr_last) == 0 && ex->rr_used < w)
        return w - ex->rr_used;
    return w;
}

/* Record a turn: it goes on while the tenant got all it could ask for
 * and ran out of slots; otherwise it is over. */
static void turn_done(struct executor_state *ex, const claim_task *c, const char *tenant, int quota,
                      int served, int slots_left)
{
    int w = tenant_weight(c->weights, tenant);
    int continuing = strcmp(tenant, ex->rr_last) == 0 && ex->rr_used < w;
    if (served == 0 && !continuing)
        return;
    snprintf(ex->rr_last, sizeof ex->rr_last, "%s", tenant);
    ex->rr_used = (continuing ? ex->rr_used : 0) + served;
    if (served < quota && slots_left > 0)
        ex->rr_used = w; /* nothing more to claim for it now */
}

/* One turn of one tenant: up to its weight in jobs, within its cap. */
static int tenant_turn(claim_task *c, job_pair *pairs, tenant_group *g, int *slots)
{
    struct executor_state *ex = (struct executor_state *)c->h->executor;
    const char *tenant = pairs[g->first].tenant_id;
    int quota = turn_quota(ex, c, tenant), served = 0;
    for (int left = quota; left > 0 && *slots > 0; left--) {
        if (c->tenant_cap > 0 && tenant_running(ex, tenant) >= c->tenant_cap)
            break;
        int rc = claim_for_tenant(c, pairs, g);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        (*slots)--;
        served++;
        c->claimed++;
    }
    turn_done(ex, c, tenant, quota, served, *slots);
    return served;
}

static void claim_round_robin(claim_task *c, int slots)
{
    hostd *h = c->h;
    job_pair *pairs = NULL;
    size_t n = 0, n_groups = 0;
    if (jobs_claimable_pairs(h->store, c->names, c->n_names, &pairs, &n) != INGEST_OK || n == 0) {
        free(pairs);
        return;
    }
    tenant_group *g = group_pairs(pairs, n, &n_groups);
    struct executor_state *ex = (struct executor_state *)h->executor;
    size_t start = g ? rotation_start(ex, c, pairs, g, n_groups) : 0;
    int progress = g != NULL;
    while (progress && slots > 0) {
        progress = 0;
        for (size_t k = 0; k < n_groups && slots > 0; k++) {
            int served = tenant_turn(c, pairs, &g[(start + k) % n_groups], &slots);
            if (served < 0) {
                progress = 0;
                break;
            }
            progress |= served > 0;
        }
    }
    if (g)
        free(g[0].exhausted);
    free(g);
    free(pairs);
}

/* Jobs whose host died come first: they have waited longest. */
static int claim_expired(claim_task *c, int slots)
{
    hostd *h = c->h;
    struct executor_state *ex = (struct executor_state *)h->executor;
    job_row *rows = NULL;
    size_t n = 0;
    if (jobs_claim_expired(h->store, ex->owner, c->names, c->n_names, slots, h->cfg->job_lease_s,
                           &rows, &n) != INGEST_OK)
        return 0;
    for (size_t i = 0; i < n; i++)
        dispatch_one(h, &rows[i]);
    free(rows);
    c->claimed += n;
    return (int)n;
}

static void claim_done(void *arg)
{
    claim_task *c = arg;
    struct executor_state *ex = (struct executor_state *)c->h->executor;
    atomic_store(&ex->claiming, 0);
    /* A full batch suggests more are due: look again right away. */
    if (c->claimed > 0 && (int)c->claimed == c->limit)
        executor_wake(c->h);
    free(c->weights);
    free(c);
}

static void claim_work(void *arg)
{
    claim_task *c = arg;
    hostd *h = c->h;
    struct executor_state *ex = (struct executor_state *)h->executor;
    int64_t now = util_mono_ms();
    if (now - ex->last_reap_ms >= REAP_EVERY_MS || ex->last_reap_ms == 0) {
        jobs_reap(h->store, c->names, c->n_names);
        ex->last_reap_ms = now;
    }
    int slots = c->limit - claim_expired(c, c->limit);
    if (slots > 0)
        claim_round_robin(c, slots);
    util_strv_free(c->names);
    c->names = NULL;
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
    const hostd_config *cfg = h->cfg;
    *c = (claim_task){.h = h,
                      .limit = free_slots,
                      .tenant_cap = cfg->max_jobs_per_tenant,
                      .provider_cap = cfg->max_jobs_per_provider,
                      .weights = strdup(cfg->tenant_weights ? cfg->tenant_weights : "")};
    atomic_store(&ex->circuit_threshold, cfg->circuit_failure_threshold);
    atomic_store(&ex->circuit_cooldown_s, cfg->circuit_cooldown_s);
    c->names = registry_serving_names(h->plugins, has_sync, &c->n_names);
    atomic_store(&ex->claiming, 1);
    if (!c->weights || c->n_names == 0 || workers_submit(h->workers, claim_work, c) < 0) {
        atomic_store(&ex->claiming, 0);
        util_strv_free(c->names);
        free(c->weights);
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
    static const char *const states[3] = {"queued", "retrying", "running"};
    for (int i = 0; i < 3; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "state=\"%s\"", states[i]);
        ex->m_state[i] =
            metrics_register(m, METRIC_GAUGE, "ingest_jobs",
                             "Sync jobs in the database by live state", labels, ex, NULL, 0);
    }
    atomic_store(&ex->circuit_threshold, h->cfg->circuit_failure_threshold);
    atomic_store(&ex->circuit_cooldown_s, h->cfg->circuit_cooldown_s);
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
    loop_event_free(ex->poll_timer);
    loop_event_free(ex->heartbeat_timer);
    loop_event_free(ex->wake);
    for (size_t i = 0; i < ex->n_inflight; i++)
        free(ex->inflight_ids[i]);
    for (provider_stats *p = ex->providers, *next; p; p = next) {
        next = p->next;
        circuit_free(p->circuit);
        free(p);
    }
    for (tenant_count *t = ex->tenants, *next; t; t = next) {
        next = t->next;
        free(t);
    }
    free(ex->inflight_ids);
    pthread_mutex_destroy(&ex->inflight_lock);
    free(ex);
    h->executor = NULL;
}

int executor_circuit(hostd *h, const char *provider, const char **state, int *failures)
{
    struct executor_state *ex = (struct executor_state *)h->executor;
    *state = circuit_state_name(CIRCUIT_CLOSED);
    *failures = 0;
    if (!ex)
        return -1;
    pthread_mutex_lock(&ex->inflight_lock);
    provider_stats *found = NULL;
    for (provider_stats *p = ex->providers; p && !found; p = p->next)
        if (strcmp(p->name, provider) == 0)
            found = p;
    pthread_mutex_unlock(&ex->inflight_lock);
    if (!found)
        return -1;
    *state = circuit_state_name(circuit_get_state(found->circuit, util_mono_ms()));
    *failures = circuit_consecutive_failures(found->circuit);
    return 0;
}

/* Names of the providers seen so far (NULL-terminated, util_strv_free). */
static char **provider_names(struct executor_state *ex, size_t *n)
{
    pthread_mutex_lock(&ex->inflight_lock);
    size_t count = 0;
    for (provider_stats *p = ex->providers; p; p = p->next)
        count++;
    char **names = calloc(count + 1, sizeof *names);
    *n = 0;
    for (provider_stats *p = ex->providers; names && p; p = p->next) {
        names[*n] = strdup(p->name);
        if (!names[*n])
            break;
        (*n)++;
        metrics_set(p->m_circuit, circuit_gauge(circuit_get_state(p->circuit, util_mono_ms())));
    }
    pthread_mutex_unlock(&ex->inflight_lock);
    return names;
}

void executor_refresh_gauges(hostd *h)
{
    struct executor_state *ex = (struct executor_state *)h->executor;
    if (!ex || !store_ready(h->store))
        return;
    long long counts[3];
    if (jobs_live_counts(h->store, counts) == INGEST_OK)
        for (int i = 0; i < 3; i++)
            metrics_set(ex->m_state[i], (double)counts[i]);
    size_t n = 0;
    char **serving = registry_serving_names(h->plugins, has_sync, &n);
    for (size_t i = 0; serving && i < n; i++)
        provider_get(ex, serving[i]); /* lag and circuit series from the start */
    util_strv_free(serving);
    char **names = provider_names(ex, &n);
    double *ages = names && n ? calloc(n, sizeof *ages) : NULL;
    if (ages && jobs_success_age(h->store, names, n, ages) == INGEST_OK) {
        for (size_t i = 0; i < n; i++) {
            provider_stats *ps = ages[i] >= 0 ? provider_get(ex, names[i]) : NULL;
            if (ps)
                metrics_set(ps->m_lag, ages[i]);
        }
    }
    free(ages);
    util_strv_free(names);
}
