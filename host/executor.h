/* executor.h — runs sync jobs: claims due jobs from the store for the
 * plugins loaded here, fairly across tenants (weighted round-robin) and
 * within the overall, per-tenant and per-provider caps; runs each plugin's
 * sync() on the worker pool under a lease, renews leases, records outcomes
 * with retries and dead letters, and keeps a circuit breaker per provider. */
#ifndef HOSTD_EXECUTOR_H
#define HOSTD_EXECUTOR_H

#include <stddef.h>

#include "hostd.h"

/* Start polling (loop thread). `owner` identifies this daemon in leases. */
int executor_start(hostd *h);
/* Look for due jobs now rather than at the next poll. Any thread. */
void executor_wake(hostd *h);
/* Stop polling and renewing (shutdown); running jobs finish. Loop thread. */
void executor_stop(hostd *h);
void executor_free(hostd *h);

/* The circuit of `provider` on this daemon: its state name ("closed",
 * "open", "half_open") and consecutive failures. Returns 0, or -1 when no
 * job of the provider ran here yet (then it is closed). Any thread. */
int executor_circuit(hostd *h, const char *provider, const char **state, int *failures);

/* Refresh the gauges that need the database (ingest_jobs{state},
 * ingest_connector_lag_seconds) and ingest_circuit_state. Blocks: workers. */
void executor_refresh_gauges(hostd *h);

#endif
