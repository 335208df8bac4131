/* executor.h — runs sync jobs: claims due jobs from the store for the
 * plugins loaded here, runs each plugin's sync() on the worker pool under a
 * lease, renews leases, records outcomes with retries and dead letters. */
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

#endif
