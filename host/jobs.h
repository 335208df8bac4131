/* jobs.h — sync jobs in PostgreSQL: enqueue, claim with leases, finish. All
 * calls block on the store: workers only. */
#ifndef HOSTD_JOBS_H
#define HOSTD_JOBS_H

#include <stddef.h>

#include "store.h"

typedef struct job_row {
    char id[37];
    char tenant_id[37];
    char connection_id[37]; /* "" when the job has no connection */
    char provider[128];
    char stream[128];
    int full_refresh;
    int attempts; /* including this one */
    int max_attempts;
} job_row;

typedef enum {
    JOB_SUCCEEDED,
    JOB_FAILED,       /* counts an attempt: retry with backoff, then dead */
    JOB_RATE_LIMITED, /* vendor asked to wait: requeue without counting */
    JOB_RELEASED,     /* we could not run it (plugin gone): requeue without counting */
} job_outcome;

/* Claim up to `limit` runnable jobs (queued/retrying and due, or running with
 * an expired lease) of the given providers for `owner`, with FOR UPDATE SKIP
 * LOCKED so concurrent hosts never take the same job. Each claim counts an
 * attempt. Jobs that can never run (their last attempt's host died, or their
 * connection belongs to another provider) are moved to dead letters first.
 * *rows is malloc'd (free()), *n the count. */
int jobs_claim(store *st, const char *owner, char *const *providers, size_t n_providers, int limit,
               int lease_s, job_row **rows, size_t *n);

/* Record the outcome of a job this owner holds. delay_ms: for FAILED the
 * backoff before the retry, for RATE_LIMITED the vendor's wait. A job that
 * failed its last attempt becomes dead and gets a dead_letters row. Returns
 * INGEST_ECANCELED when the lease was lost (another host owns the job). */
int jobs_finish(store *st, const job_row *job, const char *owner, job_outcome outcome,
                const char *error, long long records, long long delay_ms);

/* Extend the leases of the given jobs, those `owner` is running right now
 * (heartbeat). */
int jobs_extend_leases(store *st, const char *owner, int lease_s, char *const *job_ids,
                       size_t n_ids);

/* Queue a job; id_out (37 bytes, may be NULL) receives its id. */
int jobs_enqueue(store *st, const char *tenant_id, const char *connection_id, const char *provider,
                 const char *stream, int full_refresh, char *id_out);

#endif
