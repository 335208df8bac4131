/* dispatch.h — hands committed webhook deliveries to their plugin's webhook
 * callback on the worker pool, under a lease; failures retry with backoff
 * and end in the dead letters. Deliveries left pending by a stop or a crash
 * are picked up after restart (or by another host). */
#ifndef HOSTD_DISPATCH_H
#define HOSTD_DISPATCH_H

#include "hostd.h"

/* Start polling (loop thread). */
int dispatch_start(hostd *h);
/* Look for pending deliveries now. Loop thread. */
void dispatch_wake(hostd *h);
/* Stop claiming (shutdown); deliveries in flight finish. Loop thread. */
void dispatch_stop(hostd *h);
void dispatch_free(hostd *h);

#endif
