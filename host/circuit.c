/* circuit.c — a per-provider circuit breaker for the sync executor.
 *
 * The stored state moves to HALF_OPEN only when a caller takes the probe
 * permit, so stored HALF_OPEN always means "a probe is out since probe_at".
 * An OPEN circuit whose cooldown has passed is reported as half-open by
 * circuit_get_state but stays stored as OPEN until someone takes the probe. */
#include "circuit.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

struct circuit {
    pthread_mutex_t mu;
    int threshold;
    int64_t cooldown_ms;
    circuit_state state; /* guarded by mu, as is everything below */
    int failures;        /* consecutive, saturating */
    int64_t opened_at;   /* OPEN: when the cooldown started */
    int64_t probe_at;    /* HALF_OPEN: when the probe permit was granted */
};

circuit *circuit_new(int failure_threshold, int64_t cooldown_ms)
{
    if (failure_threshold < 1 || cooldown_ms < 0)
        return NULL;
    circuit *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->threshold = failure_threshold;
    c->cooldown_ms = cooldown_ms;
    c->state = CIRCUIT_CLOSED;
    return c;
}

void circuit_free(circuit *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Time left until `since + cooldown`, at least 1 so "deferred" never says
 * "retry in 0 ms"; and at most the cooldown, should the clock step back. */
static int64_t remaining(const circuit *c, int64_t since, int64_t now_ms)
{
    int64_t left = c->cooldown_ms - (now_ms - since);
    if (left > c->cooldown_ms)
        left = c->cooldown_ms;
    return left < 1 ? 1 : left;
}

static int cooldown_over(const circuit *c, int64_t since, int64_t now_ms)
{
    return now_ms - since >= c->cooldown_ms;
}

/* Decide under the lock; returns 1 (go) or 0 with *retry_in set. */
static int allow_locked(circuit *c, int64_t now_ms, int64_t *retry_in)
{
    *retry_in = 0;
    switch (c->state) {
    case CIRCUIT_CLOSED:
        return 1;
    case CIRCUIT_OPEN:
        if (!cooldown_over(c, c->opened_at, now_ms)) {
            *retry_in = remaining(c, c->opened_at, now_ms);
            return 0;
        }
        break; /* take the probe below */
    case CIRCUIT_HALF_OPEN:
        /* A probe is out; it only passes to this caller once it has expired. */
        if (!cooldown_over(c, c->probe_at, now_ms)) {
            *retry_in = remaining(c, c->probe_at, now_ms);
            return 0;
        }
        break;
    }
    c->state = CIRCUIT_HALF_OPEN;
    c->probe_at = now_ms;
    return 1;
}

int circuit_allow(circuit *c, int64_t now_ms, int64_t *retry_in_ms)
{
    int64_t retry_in;
    pthread_mutex_lock(&c->mu);
    int ok = allow_locked(c, now_ms, &retry_in);
    pthread_mutex_unlock(&c->mu);
    if (retry_in_ms)
        *retry_in_ms = retry_in;
    return ok;
}

static void open_locked(circuit *c, int64_t now_ms)
{
    c->state = CIRCUIT_OPEN;
    c->opened_at = now_ms;
}

void circuit_record(circuit *c, int success, int64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    if (success) {
        /* A straggler's success while OPEN is not the probe: the state stays. */
        c->failures = 0;
        if (c->state == CIRCUIT_HALF_OPEN)
            c->state = CIRCUIT_CLOSED;
    } else {
        if (c->failures < INT_MAX)
            c->failures++;
        if (c->state == CIRCUIT_HALF_OPEN ||
            (c->state == CIRCUIT_CLOSED && c->failures >= c->threshold))
            open_locked(c, now_ms);
    }
    pthread_mutex_unlock(&c->mu);
}

circuit_state circuit_get_state(circuit *c, int64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    circuit_state s = c->state;
    if (s == CIRCUIT_OPEN && cooldown_over(c, c->opened_at, now_ms))
        s = CIRCUIT_HALF_OPEN;
    pthread_mutex_unlock(&c->mu);
    return s;
}

const char *circuit_state_name(circuit_state s)
{
    switch (s) {
    case CIRCUIT_CLOSED:
        return "closed";
    case CIRCUIT_OPEN:
        return "open";
    case CIRCUIT_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}

int circuit_consecutive_failures(circuit *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->failures;
    pthread_mutex_unlock(&c->mu);
    return n;
}
