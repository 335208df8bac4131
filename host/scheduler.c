/* scheduler.c — one-shot timers re-armed after each tick, so a slow tick never
 * overlaps itself and failure backoff can stretch the next delay. */
#include "scheduler.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "instance.h"
#include "log.h"
#include "run.h"
#include "util.h"

#define MAX_BACKOFF_FACTOR 32
#define MAX_DELAY_MS 3600000u

struct schedule {
    instance *inst;
    char *name;
    uint32_t interval_ms;
    ingest_tick_fn fn;
    void *arg;
    struct event *timer;
    atomic_int running;
    int consecutive_failures; /* loop thread only */
    int last_status;
    struct schedule *next;
};

uint32_t scheduler_next_delay_ms(uint32_t interval_ms, int consecutive_failures, double rand01)
{
    uint64_t delay = interval_ms;
    for (int i = 0; i < consecutive_failures && delay < (uint64_t)interval_ms * MAX_BACKOFF_FACTOR;
         i++)
        delay *= 2;
    /* Backoff stops growing at an hour, but never shortens a longer interval. */
    uint64_t cap = interval_ms > MAX_DELAY_MS ? interval_ms : MAX_DELAY_MS;
    if (delay > cap)
        delay = cap;
    double jitter = 0.9 + 0.2 * rand01;
    uint64_t out = (uint64_t)((double)delay * jitter);
    return out ? (uint32_t)out : 1;
}

int scheduler_register(instance *inst, const char *name, uint32_t interval_ms, ingest_tick_fn fn,
                       void *arg)
{
    if (!name || !*name || !fn || interval_ms == 0)
        return INGEST_EINVAL;
    for (schedule *s = inst->schedules; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return INGEST_EINVAL;
    schedule *s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name))) {
        free(s);
        return INGEST_ENOMEM;
    }
    s->inst = inst;
    s->interval_ms = interval_ms;
    s->fn = fn;
    s->arg = arg;
    s->next = inst->schedules;
    inst->schedules = s;
    return INGEST_OK;
}

static void arm(schedule *s)
{
    uint32_t ms = scheduler_next_delay_ms(s->interval_ms, s->consecutive_failures, util_random01());
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

/* Back on the loop after a tick: record the outcome, re-arm, drop the ref. */
static void tick_done(void *arg)
{
    schedule *s = arg;
    instance *inst = s->inst;
    if (s->last_status == INGEST_OK)
        s->consecutive_failures = 0;
    else
        s->consecutive_failures++;
    atomic_store(&s->running, 0);
    if (s->timer && inst->status == INSTANCE_LOADED && !atomic_load(&inst->host->shutting_down))
        arm(s);
    instance_release(inst);
}

static void tick_work(void *arg)
{
    schedule *s = arg;
    instance *inst = s->inst;
    ingest_run *run = run_new(inst, NULL, NULL, NULL, NULL);
    int rc = run ? s->fn(run, inst->state, s->arg) : INGEST_ENOMEM;
    if (run)
        rc = run_finish(run, rc);
    atomic_fetch_add(&inst->ticks, 1);
    metrics_add(inst->m_ticks, 1);
    if (rc != INGEST_OK) {
        atomic_fetch_add(&inst->tick_failures, 1);
        metrics_add(inst->m_tick_failures, 1);
        log_write(INGEST_LOG_WARN, &(log_fields){.plugin = inst->name},
                  "tick '%s' failed with status %d%s%s", s->name, rc,
                  run && run_error(run) ? ": " : "", run && run_error(run) ? run_error(run) : "");
    }
    run_free(run);
    s->last_status = rc;
    loop_post(inst->host->mailbox, tick_done, s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    schedule *s = arg;
    instance *inst = s->inst;
    if (inst->status != INSTANCE_LOADED || atomic_load(&inst->host->shutting_down))
        return;
    if (!store_ready(inst->host->store)) {
        /* Every tick needs the store (cursors, signals): wait for it. */
        atomic_fetch_add(&inst->ticks_skipped, 1);
        arm(s);
        return;
    }
    if (atomic_exchange(&s->running, 1)) {
        atomic_fetch_add(&inst->ticks_skipped, 1);
        return; /* tick_done re-arms */
    }
    instance_acquire(inst);
    if (workers_submit(inst->host->workers, tick_work, s) < 0) {
        atomic_fetch_add(&inst->ticks_skipped, 1);
        log_write(INGEST_LOG_WARN, &(log_fields){.plugin = inst->name},
                  "tick '%s' skipped: worker queue full", s->name);
        atomic_store(&s->running, 0);
        instance_release(inst);
        arm(s);
    }
}

void scheduler_start(instance *inst)
{
    for (schedule *s = inst->schedules; s; s = s->next) {
        if (s->timer)
            continue;
        s->timer = evtimer_new(inst->host->base, on_timer, s);
        if (s->timer)
            arm(s);
    }
}

void scheduler_stop(instance *inst)
{
    for (schedule *s = inst->schedules; s; s = s->next) {
        if (s->timer) {
            event_free(s->timer);
            s->timer = NULL;
        }
    }
}

void scheduler_free(instance *inst)
{
    scheduler_stop(inst);
    for (schedule *s = inst->schedules, *next; s; s = next) {
        next = s->next;
        free(s->name);
        free(s);
    }
    inst->schedules = NULL;
}
