/* circuit.h — a per-provider circuit breaker for the sync executor.
 *
 * closed --(failure_threshold consecutive failures)--> open
 * open --(cooldown_ms passed; the next circuit_allow takes the probe)--> half-open
 * half-open --(probe succeeds)--> closed, counter reset
 * half-open --(probe fails)--> open for another cooldown
 *
 * While open, and in half-open for everyone but the probe holder, callers are
 * told to defer the job (not to fail it). If the probe holder never reports
 * (e.g. its job crashed), its permit expires cooldown_ms after it was granted
 * and the next caller gets a fresh probe, so the circuit cannot wedge.
 *
 * Outcomes recorded while open (jobs that started before the circuit opened)
 * update the consecutive-failure count but do not move the state or its
 * timer: only a probe decides. In half-open any recorded outcome counts as the
 * probe's, since there is no way to tell a late straggler from the probe and
 * both are fresh evidence.
 *
 * Time is injected: every `now_ms` is a monotonic clock in milliseconds
 * (CLOCK_MONOTONIC in the daemon, anything in tests). All functions are
 * thread-safe; each circuit has its own mutex. */
#ifndef HOSTD_CIRCUIT_H
#define HOSTD_CIRCUIT_H

#include <stdint.h>

typedef enum circuit_state {
    CIRCUIT_CLOSED = 0,
    CIRCUIT_OPEN = 1,
    CIRCUIT_HALF_OPEN = 2
} circuit_state;

typedef struct circuit circuit;

/* A new closed circuit, owned by the caller and freed with circuit_free.
 * failure_threshold >= 1, cooldown_ms >= 0; NULL if either is out of range or
 * on allocation failure. */
circuit *circuit_new(int failure_threshold, int64_t cooldown_ms);

/* Free a circuit; no other thread may be using it. NULL is a no-op. */
void circuit_free(circuit *c);

/* May a job for this provider run now? 1 = go ahead (in half-open this caller
 * now holds the single probe permit and must report through circuit_record);
 * 0 = defer the job. *retry_in_ms (may be NULL; caller-owned) gets 0 when
 * allowed, otherwise how long until a probe may be attempted (>= 1). */
int circuit_allow(circuit *c, int64_t now_ms, int64_t *retry_in_ms);

/* Report the outcome of an allowed job: success != 0 for success. Call it
 * once per job that circuit_allow let through, including the probe. */
void circuit_record(circuit *c, int success, int64_t now_ms);

/* The state as of now_ms: an open circuit whose cooldown has passed reports
 * CIRCUIT_HALF_OPEN even before anyone asked for the probe. Read-only. */
circuit_state circuit_get_state(circuit *c, int64_t now_ms);

/* "closed", "open" or "half_open" (static strings; "unknown" otherwise). */
const char *circuit_state_name(circuit_state s);

/* Failures recorded since the last success (saturates at INT_MAX). */
int circuit_consecutive_failures(circuit *c);

#endif
