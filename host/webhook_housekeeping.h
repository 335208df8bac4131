/* webhook_housekeeping.h — a periodic round (2 s after start, then every
 * 10 minutes) that drops expired idempotency keys and removes processed
 * deliveries past webhook_retention_days, in short batches. */
#ifndef HOSTD_WEBHOOK_HOUSEKEEPING_H
#define HOSTD_WEBHOOK_HOUSEKEEPING_H

#include "hostd.h"

/* Start the timers (loop thread); the first round is tried again until the
 * database is there. */
int housekeeping_start(hostd *h);
/* No more rounds (shutdown); one running finishes. Loop thread. */
void housekeeping_stop(hostd *h);
/* After the workers are joined. */
void housekeeping_free(hostd *h);

#endif
