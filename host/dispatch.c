/* dispatch.c — the loop decides when to claim; claiming, running the
 * plugin and recording outcomes happen on workers because they block. */
#include "dispatch.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backoff.h"
#include "deliveries.h"
#include "instance.h"
#include "log.h"
#include "loop.h"
#include "registry.h"
#include "run.h"
#include "util.h"
#include "webhook_metrics.h"

#define CLAIM_MAX 64
/* A chunk's commit costs PostgreSQL a few statements whatever its size: at
 * 5,000 deliveries/s, chunks of about 100 (128, or what 40 ms gathers) took
 * 0.08-0.09 ms of statement time per delivery, chunks of 32 gathered in
 * 10 ms 0.11 ms (tests/bench/webhook_bench.sh, BENCH_PG_STATEMENTS=1).
 * Signals appear up to 40 ms later on a quiet host; acks do not wait for
 * any of this. */
#define CHUNK_MAX 128         /* deliveries one worker runs, then commits together */
#define CHUNK_COMMIT_MS 200   /* a slow handler does not hold finished ones back */
#define LINGER_MS 40          /* less than a chunk waits this long for more */
#define CHUNKS_PER_WORKER 2   /* in flight: one running, the next gathering */
#define RELEASE_DELAY_MS 5000 /* plugin not loaded here: let another host try */

struct dispatch_state {
    hostd *h;
    char owner[128];
    struct event *poll_timer, *wake, *linger;
    ingest_metric *m_from_inbox, *m_claimed; /* how deliveries reached the workers */
    atomic_int running;                      /* deliveries queued for or on a worker */
    atomic_int reserved; /* room the inbox holds for deliveries it stores leased */
    atomic_int claiming; /* a claim task is queued or running */
    atomic_int more_due; /* deliveries may be waiting in the table */
    pthread_mutex_t queue_lock;
    delivery_row *queued; /* waiting for a drain task, oldest first */
    size_t n_queued, queued_cap;
    int drainers;         /* drain tasks queued or running */
    int drainers_waiting; /* of those, queued: they will take a chunk each */
    int linger_armed;     /* the linger timer will start a task for what is queued */
    int64_t last_reap_ms; /* claim task only (one runs at a time) */
    size_t next_first;    /* claim task only: provider asked first next time */
    int stopped;
};

typedef struct delivery_task {
    instance *inst;
    delivery_row row;
    ingest_run *run;
} delivery_task;

/* Deliveries run one after the other on one worker; those that succeed are
 * finished in one commit (one transaction, a few statements for all). */
typedef struct delivery_chunk {
    hostd *h;
    size_t n;
    delivery_task tasks[CHUNK_MAX];
    store_part parts[CHUNK_MAX];
    delivery_task *waiting[CHUNK_MAX]; /* handled, their commit not yet made */
    size_t n_waiting;
} delivery_chunk;

static int max_inflight(const hostd *h) { return h->cfg->workers * CHUNKS_PER_WORKER * CHUNK_MAX; }

static int has_webhook_handler(const instance *inst) { return inst->desc.handle_webhook != NULL; }

/* A finished chunk makes room: claim into it only when deliveries may be
 * waiting in the table (those stored leased to this host need no claim). */
static void task_done(void *arg)
{
    hostd *h = arg;
    struct dispatch_state *ds = h->dispatch;
    if (ds && ds->wake && !ds->stopped && atomic_load(&ds->more_due))
        event_active(ds->wake, EV_TIMEOUT, 0);
}

/* Run the handler; on success *part holds the delivery's final commit. */
static int run_plugin(hostd *h, delivery_task *t, store_part *part)
{
    delivery_row *d = &t->row;
    ingest_delivery delivery = {
        .hdr = INGEST_ABI_HEADER(ingest_delivery),
        .delivery_id = d->delivery_key,
        .tenant_id = d->tenant_id[0] ? d->tenant_id : NULL,
        .connection_id = d->connection_id[0] ? d->connection_id : NULL,
        .content_type = d->content_type,
        .body = d->body,
        .body_len = d->body_len,
        .headers = d->headers,
        .n_headers = d->n_headers,
        .received_at_us = d->received_at_us,
        .attempt = d->attempts,
        .remote_addr = d->remote_addr[0] ? d->remote_addr : NULL,
    };
    t->run = run_new(t->inst, delivery.tenant_id, delivery.connection_id, NULL, d->id);
    if (!t->run)
        return INGEST_ENOMEM;
    int rc = run_set_delivery_fence(t->run, d->id, h->dispatch->owner, h->cfg->job_lease_s);
    if (rc != INGEST_OK)
        return rc;
    rc = t->inst->desc.handle_webhook(t->run, t->inst->state, &delivery);
    return run_finish_part(t->run, rc, part);
}

static void record_failure(hostd *h, delivery_task *t, int rc, const char *why, webhook_metrics *m)
{
    delivery_row *d = &t->row;
    log_fields f = {.plugin = t->inst->name,
                    .tenant = d->tenant_id[0] ? d->tenant_id : NULL,
                    .delivery = d->id};
    char error[600];
    snprintf(error, sizeof error, "webhook handler returned status %d%s%s", rc, why ? ": " : "",
             why ? why : "");
    int dead = 0;
    int64_t delay = backoff_delay_ms(&backoff_default, d->attempts, util_random01());
    int frc = deliveries_fail(h->store, d, h->dispatch->owner, error, h->cfg->webhook_max_attempts,
                              delay, &dead);
    metrics_add(dead ? m->dead_lettered : m->failed, 1);
    log_write(INGEST_LOG_WARN, &f, "delivery %s attempt %d/%d failed%s: %s%s", d->delivery_key,
              d->attempts, h->cfg->webhook_max_attempts,
              dead ? ", moved to the dead letters" : ", will retry", error,
              frc == INGEST_OK ? "" : " (outcome not recorded; it will be retried)");
}

/* Count, log or retry one delivery's outcome, then let it go. */
static void settle(hostd *h, delivery_task *t, int rc)
{
    webhook_metrics *m = webhook_metrics_for(h, t->row.provider);
    const char *why = t->run ? run_error(t->run) : NULL;
    if (rc == INGEST_OK)
        metrics_add(m->processed, 1);
    else if (rc == INGEST_ECANCELED && why && strstr(why, "lease"))
        log_warn("webhooks: delivery %s abandoned: %s", t->row.id, why);
    else
        record_failure(h, t, rc, why, m);
    run_free(t->run);
    t->run = NULL;
}

static void commit_waiting(delivery_chunk *c)
{
    if (c->n_waiting == 0)
        return;
    store_commit_parts(c->h->store, c->parts, c->n_waiting);
    for (size_t i = 0; i < c->n_waiting; i++) {
        delivery_task *t = c->waiting[i];
        settle(c->h, t, run_part_committed(t->run, &c->parts[i]));
    }
    c->n_waiting = 0;
}

static void run_chunk(delivery_chunk *c)
{
    hostd *h = c->h;
    int64_t since = util_mono_ms();
    for (size_t i = 0; i < c->n; i++) {
        delivery_task *t = &c->tasks[i];
        int rc = run_plugin(h, t, &c->parts[c->n_waiting]);
        if (rc == INGEST_OK)
            c->waiting[c->n_waiting++] = t;
        else
            settle(h, t, rc);
        if (util_mono_ms() - since >= CHUNK_COMMIT_MS) {
            commit_waiting(c);
            since = util_mono_ms();
        }
    }
    commit_waiting(c);
    for (size_t i = 0; i < c->n; i++) {
        instance_release(c->tasks[i].inst);
        deliveries_row_clear(&c->tasks[i].row);
    }
}

static void give_back(hostd *h, delivery_row *row)
{
    deliveries_release(h->store, row, h->dispatch->owner, RELEASE_DELAY_MS);
    deliveries_row_clear(row);
}

/* Run the rows (their contents move) with their plugins, or give them back
 * when their plugin is not here; they stop counting as in flight. */
static void run_rows(hostd *h, delivery_row *rows, size_t n)
{
    if (n == 0)
        return;
    delivery_chunk *c = calloc(1, sizeof *c);
    if (c)
        c->h = h;
    for (size_t i = 0; i < n; i++) {
        instance *inst = c ? registry_acquire(h->plugins, rows[i].provider) : NULL;
        if (!inst || !inst->desc.handle_webhook) {
            if (inst)
                instance_release(inst);
            give_back(h, &rows[i]);
            continue;
        }
        c->tasks[c->n++] = (delivery_task){inst, rows[i], NULL};
        memset(&rows[i], 0, sizeof rows[i]);
    }
    if (c)
        run_chunk(c);
    free(c);
    atomic_fetch_sub(&h->dispatch->running, (int)n);
    loop_post(h->mailbox, task_done, h);
}

static void drain(void *arg);

static int submit_drainer_locked(hostd *h)
{
    if (workers_submit(h->workers, drain, h) < 0)
        return -1;
    h->dispatch->drainers_waiting++;
    return 0;
}

static void start_linger(void *arg)
{
    hostd *h = arg;
    struct timeval linger = {0, LINGER_MS * 1000};
    event_add(h->dispatch->linger, &linger);
}

static void arm_linger_locked(hostd *h)
{
    struct dispatch_state *ds = h->dispatch;
    if (!ds->linger_armed && loop_post(h->mailbox, start_linger, h) == 0)
        ds->linger_armed = 1;
}

/* Drain tasks for the queued rows that no queued task will take, one per
 * worker at most. Less than a chunk waits up to LINGER_MS for more (unless
 * `partial` or the host is stopping), so a busy host commits whole chunks
 * rather than many small ones. Queue lock held. */
static void spawn_drainers_locked(hostd *h, int partial)
{
    struct dispatch_state *ds = h->dispatch;
    int workers = h->cfg->workers > 0 ? h->cfg->workers : 1;
    size_t least = partial || atomic_load(&h->shutting_down) ? 1 : CHUNK_MAX;
    while (ds->drainers < workers &&
           ds->n_queued >= (size_t)ds->drainers_waiting * CHUNK_MAX + least &&
           submit_drainer_locked(h) == 0)
        ds->drainers++;
    if (ds->n_queued > (size_t)ds->drainers_waiting * CHUNK_MAX)
        arm_linger_locked(h);
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hostd *h = arg;
    struct dispatch_state *ds = h->dispatch;
    pthread_mutex_lock(&ds->queue_lock);
    ds->linger_armed = 0;
    spawn_drainers_locked(h, 1);
    pthread_mutex_unlock(&ds->queue_lock);
}

/* Up to CHUNK_MAX queued rows, oldest first, moved to `out`. Queue lock held. */
static size_t take_chunk_locked(struct dispatch_state *ds, delivery_row *out)
{
    size_t k = ds->n_queued < CHUNK_MAX ? ds->n_queued : CHUNK_MAX;
    memcpy(out, ds->queued, k * sizeof *out);
    memmove(ds->queued, ds->queued + k, (ds->n_queued - k) * sizeof *out);
    ds->n_queued -= k;
    return k;
}

/* A chunk at a time; what arrives meanwhile builds up into the next one.
 * Another full chunk goes on as a new task at the back of the pool's queue,
 * so other tasks get their turn. */
static void drain(void *arg)
{
    hostd *h = arg;
    struct dispatch_state *ds = h->dispatch;
    delivery_row rows[CHUNK_MAX];
    for (int first = 1;; first = 0) {
        pthread_mutex_lock(&ds->queue_lock);
        ds->drainers_waiting -= first;
        size_t k = take_chunk_locked(ds, rows);
        pthread_mutex_unlock(&ds->queue_lock);
        run_rows(h, rows, k);
        pthread_mutex_lock(&ds->queue_lock);
        ds->drainers--;
        spawn_drainers_locked(h, 0);
        /* Left over with no task to take it: the pool takes no more
         * (stopping), so carry on here. */
        int carry_on = ds->n_queued > 0 && ds->drainers == 0 && atomic_load(&h->shutting_down);
        ds->drainers += carry_on;
        pthread_mutex_unlock(&ds->queue_lock);
        if (!carry_on)
            return;
    }
}

static int append_locked(struct dispatch_state *ds, delivery_row *rows, size_t n)
{
    size_t need = ds->n_queued + n;
    if (need > ds->queued_cap) {
        delivery_row *grown = realloc(ds->queued, need * sizeof *grown);
        if (!grown)
            return -1;
        ds->queued = grown;
        ds->queued_cap = need;
    }
    memcpy(ds->queued + ds->n_queued, rows, n * sizeof *rows);
    memset(rows, 0, n * sizeof *rows);
    ds->n_queued = need;
    return 0;
}

static void give_back_rows(hostd *h, delivery_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        give_back(h, &rows[i]);
    atomic_fetch_sub(&h->dispatch->running, (int)n);
}

/* Rows that no task or timer will take (the pool is full or stopping) go
 * back to the table rather than stay leased here. */
static void give_back_stranded(hostd *h)
{
    struct dispatch_state *ds = h->dispatch;
    delivery_row rows[CHUNK_MAX];
    for (;;) {
        pthread_mutex_lock(&ds->queue_lock);
        size_t k = ds->drainers == 0 && !ds->linger_armed ? take_chunk_locked(ds, rows) : 0;
        pthread_mutex_unlock(&ds->queue_lock);
        if (k == 0)
            return;
        give_back_rows(h, rows, k);
    }
}

/* Queue rows for the workers; their contents move (the array stays the
 * caller's). */
static void enqueue(hostd *h, delivery_row *rows, size_t n)
{
    struct dispatch_state *ds = h->dispatch;
    if (n == 0)
        return;
    atomic_fetch_add(&ds->running, (int)n);
    pthread_mutex_lock(&ds->queue_lock);
    int queued = append_locked(ds, rows, n) == 0;
    if (queued)
        spawn_drainers_locked(h, 0);
    pthread_mutex_unlock(&ds->queue_lock);
    if (queued)
        give_back_stranded(h);
    else
        give_back_rows(h, rows, n);
}

typedef struct claim_task {
    hostd *h;
    char **names; /* providers whose deliveries this host can process */
    size_t n_names;
    int limit;
    size_t claimed;
} claim_task;

static void claim_done(void *arg)
{
    claim_task *c = arg;
    struct dispatch_state *ds = c->h->dispatch;
    atomic_store(&ds->claiming, 0);
    /* A full batch suggests more are due; so does a delivery stored
     * unleased since the claim began. */
    if ((c->claimed > 0 && (int)c->claimed == c->limit) || atomic_load(&ds->more_due))
        dispatch_wake(c->h);
    free(c);
}

static void claim_work(void *arg)
{
    claim_task *c = arg;
    hostd *h = c->h;
    delivery_row *rows = NULL;
    size_t n = 0;
    struct dispatch_state *ds = h->dispatch;
    int64_t now = util_mono_ms();
    if (now - ds->last_reap_ms >= (int64_t)h->cfg->job_lease_s * 1000 &&
        deliveries_reap(h->store, c->names, c->n_names, h->cfg->webhook_max_attempts) == INGEST_OK)
        ds->last_reap_ms = now;
    size_t first = ds->next_first++ % c->n_names;
    atomic_store(&ds->more_due, 0); /* what is stored from now on sets it again */
    if (deliveries_claim(h->store, ds->owner, c->names, c->n_names, first, c->limit,
                         h->cfg->job_lease_s, &rows, &n) == INGEST_OK) {
        metrics_add(ds->m_claimed, (double)n);
        enqueue(h, rows, n);
    }
    c->claimed = n;
    deliveries_free(rows, n);
    util_strv_free(c->names);
    loop_post(h->mailbox, claim_done, c);
}

static void poll_now(hostd *h)
{
    struct dispatch_state *ds = h->dispatch;
    if (!ds || ds->stopped || atomic_load(&h->shutting_down) || !store_ready(h->store) ||
        atomic_load(&ds->claiming))
        return;
    int free_slots = max_inflight(h) - atomic_load(&ds->running) - atomic_load(&ds->reserved);
    if (free_slots <= 0)
        return;
    claim_task *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->h = h;
    c->limit = free_slots < CLAIM_MAX ? free_slots : CLAIM_MAX;
    c->names = registry_serving_names(h->plugins, has_webhook_handler, &c->n_names);
    atomic_store(&ds->claiming, 1);
    if (c->n_names == 0 || workers_submit(h->workers, claim_work, c) < 0) {
        atomic_store(&ds->claiming, 0);
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

int dispatch_start(hostd *h)
{
    struct dispatch_state *ds = calloc(1, sizeof *ds);
    if (!ds)
        return -1;
    ds->h = h;
    pthread_mutex_init(&ds->queue_lock, NULL);
    h->dispatch = ds;
    char host[64] = "localhost", id[37];
    gethostname(host, sizeof host - 1);
    util_uuid4(id);
    snprintf(ds->owner, sizeof ds->owner, "%s:%d:%.8s", host, (int)getpid(), id);
    static const char dispatched_help[] =
        "Deliveries handed to the workers: straight from the inbox, or claimed from the table";
    ds->m_from_inbox =
        metrics_register(h->metrics, METRIC_COUNTER, "ingest_webhook_deliveries_dispatched_total",
                         dispatched_help, "via=\"inbox\"", ds, NULL, 0);
    ds->m_claimed =
        metrics_register(h->metrics, METRIC_COUNTER, "ingest_webhook_deliveries_dispatched_total",
                         dispatched_help, "via=\"claim\"", ds, NULL, 0);
    int poll_ms = h->cfg->job_poll_ms;
    struct timeval poll = {poll_ms / 1000, (poll_ms % 1000) * 1000};
    ds->poll_timer = event_new(h->base, -1, EV_PERSIST, on_poll, h);
    ds->wake = event_new(h->base, -1, 0, on_poll, h);
    ds->linger = event_new(h->base, -1, 0, on_linger, h);
    if (!ds->poll_timer || !ds->wake || !ds->linger)
        return -1;
    event_add(ds->poll_timer, &poll);
    return 0;
}

void dispatch_wake(hostd *h)
{
    struct dispatch_state *ds = h->dispatch;
    if (!ds)
        return;
    atomic_store(&ds->more_due, 1);
    if (ds->wake && !ds->stopped)
        event_active(ds->wake, EV_TIMEOUT, 0);
}

const char *dispatch_owner(hostd *h) { return h->dispatch ? h->dispatch->owner : ""; }

int dispatch_reserve(hostd *h, int want)
{
    struct dispatch_state *ds = h->dispatch;
    if (!ds || want <= 0 || atomic_load(&h->shutting_down))
        return 0;
    int reserved = atomic_load(&ds->reserved);
    for (;;) {
        int room = max_inflight(h) - atomic_load(&ds->running) - reserved;
        int take = room < want ? room : want;
        if (take <= 0)
            return 0;
        if (atomic_compare_exchange_weak(&ds->reserved, &reserved, reserved + take))
            return take;
    }
}

void dispatch_adopt(hostd *h, delivery_row *rows, size_t n, int reserved)
{
    metrics_add(h->dispatch->m_from_inbox, (double)n);
    enqueue(h, rows, n); /* counted in flight before the room is given back */
    deliveries_free(rows, n);
    atomic_fetch_sub(&h->dispatch->reserved, reserved);
}

void dispatch_stop(hostd *h)
{
    struct dispatch_state *ds = h->dispatch;
    if (!ds)
        return;
    ds->stopped = 1;
    event_del(ds->poll_timer);
    event_del(ds->wake);
    /* What waits for company goes to the workers now, to finish before
     * the host stops. */
    pthread_mutex_lock(&ds->queue_lock);
    spawn_drainers_locked(h, 1);
    pthread_mutex_unlock(&ds->queue_lock);
}

void dispatch_free(hostd *h)
{
    struct dispatch_state *ds = h->dispatch;
    if (!ds)
        return;
    loop_event_free(ds->poll_timer);
    loop_event_free(ds->wake);
    loop_event_free(ds->linger);
    deliveries_free(ds->queued, ds->n_queued); /* none once the workers are joined */
    pthread_mutex_destroy(&ds->queue_lock);
    free(ds);
    h->dispatch = NULL;
}
