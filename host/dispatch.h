/* dispatch.h — hands committed webhook deliveries to their plugin's webhook
 * callback on the worker pool, under a lease; failures retry with backoff
 * and end in the dead letters. Deliveries left pending by a stop or a crash
 * are picked up after restart (or by another host).
 *
 * Two ways in: deliveries the inbox stores already leased to this host
 * (while it has room for them) come straight from the inbox, with the
 * request's own body and headers; the rest (stored while the workers were
 * full, retries, those of a host that stopped) are claimed from the table. */
#ifndef HOSTD_DISPATCH_H
#define HOSTD_DISPATCH_H

#include "deliveries.h"
#include "hostd.h"

/* Start polling (loop thread). */
int dispatch_start(hostd *h);
/* Look for pending deliveries now. Loop thread. */
void dispatch_wake(hostd *h);
/* Stop claiming (shutdown); deliveries in flight finish. Loop thread. */
void dispatch_stop(hostd *h);
void dispatch_free(hostd *h);

/* The lease owner this host's dispatcher claims under; "" before
 * dispatch_start. The string lives as long as the dispatcher. */
const char *dispatch_owner(hostd *h);

/* Reserve room for up to `want` deliveries about to be stored leased to
 * this host. Returns how many it may lease (0 when the workers are full or
 * the host is stopping). Every reservation is handed back through
 * dispatch_adopt. Any thread. */
int dispatch_reserve(hostd *h, int want);

/* Run the deliveries stored leased to this host, with attempts = 1, and
 * give back `reserved` (what dispatch_reserve granted for their batch,
 * n <= reserved: a duplicate takes none). Takes the rows' contents and
 * frees `rows`. Blocks (a delivery whose plugin left is given back to the
 * table): inbox threads, not the loop. */
void dispatch_adopt(hostd *h, delivery_row *rows, size_t n, int reserved);

#endif
