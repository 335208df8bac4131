/* webhook_metrics.h — the per-provider webhook series, registered on first
 * use and cached, so the hot path does no registry lookups. */
#ifndef HOSTD_WEBHOOK_METRICS_H
#define HOSTD_WEBHOOK_METRICS_H

#include "hostd.h"

typedef struct webhook_metrics {
    char provider[128];
    ingest_metric *received, *verified, *duplicates, *stored, *processed, *failed, *dead_lettered;
    ingest_metric *ack_seconds; /* histogram: request received -> 2xx sent */
} webhook_metrics;

/* The daemon's table (hostd.webhook_metrics); NULL when out of memory. */
webhook_metrics_table *webhook_metrics_new(void);
void webhook_metrics_free(webhook_metrics_table *t);

/* The provider's series (created on first call). Thread-safe; the result
 * lives until webhook_metrics_free. Never NULL: an unregistrable
 * provider gets a shared set of NULL handles, which the metrics functions
 * ignore. */
webhook_metrics *webhook_metrics_for(hostd *h, const char *provider);

/* Count a rejected request: reason is a short label ("bad_signature",
 * "too_large", ...). */
void webhook_metrics_rejected(hostd *h, const char *provider, const char *reason);

#endif
