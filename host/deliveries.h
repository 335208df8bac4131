/* deliveries.h — stored webhook deliveries in PostgreSQL: claim for
 * processing with leases, record failures (retry, then dead letter). All calls block on the store:
 * workers only. */
#ifndef HOSTD_DELIVERIES_H
#define HOSTD_DELIVERIES_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/plugin.h"
#include "store.h"

/* One claimed delivery; everything owned (free with deliveries_free). */
typedef struct delivery_row {
    char id[37];
    char provider[128];
    char tenant_id[37];     /* "" when none */
    char connection_id[37]; /* "" when none */
    char *delivery_key;
    char *content_type;  /* may be NULL */
    unsigned char *body; /* malloc'd */
    size_t body_len;
    ingest_header *headers; /* names and values owned by the row */
    size_t n_headers;
    int64_t received_at_us;
    int attempts;         /* including this one */
    char remote_addr[64]; /* "" when unknown */
} delivery_row;

/* Claim up to `limit` due deliveries (pending or retrying, run_after passed)
 * of the given providers for `owner`, oldest first per provider; the
 * providers are asked in turn starting at index `first` (rotate it between
 * calls so a busy provider cannot starve the others). Each claim counts an
 * attempt. *rows is malloc'd: free with deliveries_free(rows, n). */
int deliveries_claim(store *st, const char *owner, char *const *providers, size_t n_providers,
                     size_t first, int limit, int lease_s, delivery_row **rows, size_t *n);

/* Put back deliveries whose processing host died (lease expired), or
 * dead-letter them when that was their max_attempts-th attempt, so a
 * delivery that crashes its host cannot loop for ever. It scans the
 * deliveries being processed: call it about once per lease, not per claim. */
int deliveries_reap(store *st, char *const *providers, size_t n_providers, int max_attempts);
void deliveries_free(delivery_row *rows, size_t n);
/* Fill d->headers from the stored form, a JSON object name -> value
 * (`json` is the caller's; the row owns what it gets). -1: not such an
 * object, or out of memory. */
int deliveries_row_set_headers(delivery_row *d, const char *json);
/* Free what one row owns and zero it. */
void deliveries_row_clear(delivery_row *d);

/* Processing failed: retry after delay_ms, or, when attempts reached
 * max_attempts, mark it dead and add a dead_letters row with the error.
 * *dead (may be NULL) tells which happened. Fenced on the lease. */
int deliveries_fail(store *st, const delivery_row *d, const char *owner, const char *error,
                    int max_attempts, int64_t delay_ms, int *dead);

/* Give a delivery back without counting the attempt (plugin not loaded
 * here, worker queue full). */
int deliveries_release(store *st, const delivery_row *d, const char *owner, int64_t delay_ms);

/* Drop idempotency keys past their expiry. */
int deliveries_expire_keys(store *st, long long *removed);

/* Remove up to `limit` processed deliveries received and processed more
 * than `retention_days` ago, in one short transaction; *removed says how
 * many went (fewer than `limit`: nothing more is due). Deliveries that are
 * not processed, or that a dead letter refers to, are never removed. On
 * failure `err` (caller's buffer) holds the database's reason. */
int deliveries_purge(store *st, int retention_days, int limit, long long *removed, char *err,
                     size_t err_len);

#endif
