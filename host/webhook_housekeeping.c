/* webhook_housekeeping.c — the rounds run on a worker, one at a time; the
 * loop only keeps their timers. */
#include "webhook_housekeeping.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "deliveries.h"
#include "log.h"
#include "loop.h"
#include "workers.h"

#define HOUSEKEEPING_EVERY_S (10 * 60) /* expired keys dropped, old deliveries purged */
#define HOUSEKEEPING_FIRST_S 2         /* the first round, soon after start */
#define PURGE_BATCH 5000               /* deliveries removed per transaction */

struct housekeeping_state {
    struct event *every, *first_round;
    ingest_metric *m_purged;
    atomic_int busy; /* a round is queued or running */
    int stopped;
};

/* Batch after batch, each its own short transaction, until none is due
 * or the host stops; a large backlog does not wait for the next round. */
static long long purge_old_deliveries(hostd *h)
{
    int days = h->cfg->webhook_retention_days;
    long long total = 0, removed = 0;
    int rc = INGEST_OK;
    char why[256] = "";
    while (days > 0 && !atomic_load(&h->shutting_down)) {
        rc = deliveries_purge(h->store, days, PURGE_BATCH, &removed, why, sizeof why);
        if (rc != INGEST_OK)
            break;
        total += removed;
        if (removed < PURGE_BATCH)
            break;
    }
    metrics_add(h->housekeeping->m_purged, (double)total);
    if (total > 0)
        log_info("webhooks: removed %lld processed deliveries older than %d day(s)", total, days);
    if (rc != INGEST_OK)
        log_warn("webhooks: removing old deliveries stopped (next round in %d s): %s",
                 HOUSEKEEPING_EVERY_S, why);
    return total;
}

static void housekeeping_work(void *arg)
{
    hostd *h = arg;
    long long keys = 0;
    if (deliveries_expire_keys(h->store, &keys) == INGEST_OK && keys > 0)
        log_info("webhooks: dropped %lld expired idempotency key(s)", keys);
    long long purged = purge_old_deliveries(h);
    log_debug("webhooks: housekeeping round done (%lld key(s) dropped, %lld deliveries removed)",
              keys, purged);
    atomic_store(&h->housekeeping->busy, 0);
}

/* One round at a time: a slow purge is not joined by the next. */
static int start_housekeeping(hostd *h)
{
    housekeeping_state *hk = h->housekeeping;
    int idle = 0;
    if (!store_ready(h->store) || !atomic_compare_exchange_strong(&hk->busy, &idle, 1))
        return 0;
    if (workers_submit(h->workers, housekeeping_work, h) == 0)
        return 1;
    atomic_store(&hk->busy, 0);
    return 0;
}

static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start_housekeeping(arg);
}

/* The first round is tried again until it runs (the database may still be
 * on its way up). */
static void on_first_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hostd *h = arg;
    struct timeval soon = {HOUSEKEEPING_FIRST_S, 0};
    if (!start_housekeeping(h) && !h->housekeeping->stopped)
        event_add(h->housekeeping->first_round, &soon);
}

int housekeeping_start(hostd *h)
{
    housekeeping_state *hk = calloc(1, sizeof *hk);
    if (!hk)
        return -1;
    h->housekeeping = hk;
    hk->m_purged = metrics_register(
        h->metrics, METRIC_COUNTER, "ingest_webhook_deliveries_purged_total",
        "Processed deliveries removed after webhook_retention_days", "", hk, NULL, 0);
    struct timeval every = {HOUSEKEEPING_EVERY_S, 0}, first = {HOUSEKEEPING_FIRST_S, 0};
    hk->every = event_new(h->base, -1, EV_PERSIST, on_housekeeping, h);
    hk->first_round = event_new(h->base, -1, 0, on_first_housekeeping, h);
    if (!hk->every || !hk->first_round)
        return -1;
    event_add(hk->every, &every);
    event_add(hk->first_round, &first);
    return 0;
}

void housekeeping_stop(hostd *h)
{
    housekeeping_state *hk = h->housekeeping;
    if (!hk)
        return;
    hk->stopped = 1;
    loop_event_del(hk->every);
    loop_event_del(hk->first_round);
}

void housekeeping_free(hostd *h)
{
    housekeeping_state *hk = h->housekeeping;
    if (!hk)
        return;
    loop_event_free(hk->every);
    loop_event_free(hk->first_round);
    free(hk);
    h->housekeeping = NULL;
}
