/* jobs.h — sync jobs in PostgreSQL: enqueue, claim with leases, finish. All
 * calls block on the store: workers only. */
#ifndef HOSTD_JOBS_H
#define HOSTD_JOBS_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

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
    JOB_RELEASED, /* we could not run it (plugin gone, circuit open): requeue without counting */
    JOB_DEAD,     /* can never succeed (credentials refused): dead letter now, no retry */
} job_outcome;

/* Claiming is split so the executor can be fair and keep its caps: it
 * lists the (tenant, provider) pairs with waiting jobs, then claims one job
 * of one pair at a time, round-robin over tenants. Each claim counts an
 * attempt and uses FOR UPDATE SKIP LOCKED, so concurrent hosts never take
 * the same job. Every query walks a partial index in its order: no sort,
 * no sequential scan, however many jobs wait. */
typedef struct job_pair {
    char tenant_id[37];
    char provider[128];
} job_pair;

/* Move jobs that can never run to dead letters: their last attempt's host
 * died (lease expired), or their connection belongs to another provider. */
int jobs_reap(store *st, char *const *providers, size_t n_providers);

/* Tenants and providers (of `providers`) that have queued or retrying jobs,
 * due or not, ordered by tenant. *pairs is malloc'd (free()). */
int jobs_claimable_pairs(store *st, char *const *providers, size_t n_providers, job_pair **pairs,
                         size_t *n);

/* Claim the most overdue due job of one tenant and provider; *got = 0 when
 * there is none. */
int jobs_claim_one(store *st, const char *owner, const char *tenant_id, const char *provider,
                   int lease_s, job_row *row, int *got);

/* Take over up to `limit` running jobs of `providers` whose lease expired
 * (their host died). *rows is malloc'd (free()), *n the count. */
int jobs_claim_expired(store *st, const char *owner, char *const *providers, size_t n_providers,
                       int limit, int lease_s, job_row **rows, size_t *n);

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

/* Queue a job now (operator or webhook asked): if the stream already has
 * a live job (queued, retrying or running: one per connection and stream)
 * that one is returned instead; a waiting one is moved up to run now and
 * upgraded to a full refresh if this request is one. id_out (37 bytes, may
 * be NULL) receives the id, *created (may be NULL) whether it is new.
 * max_attempts <= 0 keeps the table default. */
int jobs_enqueue_now(store *st, const char *tenant_id, const char *connection_id,
                     const char *provider, const char *stream, int full_refresh, int max_attempts,
                     char *id_out, int *created);

/* Old entry point: jobs_enqueue_now with the table's default attempts. */
int jobs_enqueue(store *st, const char *tenant_id, const char *connection_id, const char *provider,
                 const char *stream, int full_refresh, char *id_out);

/* The scheduler's enqueue: an incremental job for a connection's stream,
 * unless the stream has a live job, or one was created less than min_gap_s
 * ago (another daemon's scheduler got there first). *created says whether a
 * job was queued; *newest_us the creation time (unix µs) of the stream's
 * newest job afterwards, 0 if it has none. */
int jobs_enqueue_scheduled(store *st, const char *tenant_id, const char *connection_id,
                           const char *provider, const char *stream, int max_attempts,
                           double min_gap_s, int *created, int64_t *newest_us);

/* Creation time (unix µs; 0 = never) of the newest job of each
 * (connection_ids[i], streams[i]), into newest_us[i]. */
int jobs_newest(store *st, char *const *connection_ids, char *const *streams, size_t n,
                int64_t *newest_us);

/* Recent jobs, newest first: filters may be NULL. *out is a new JSON array
 * of objects (id, tenant_id, provider, connection_id, stream, kind, state,
 * attempts, max_attempts, run_after, created_at, last_error, records). */
int jobs_list(store *st, const char *state, const char *provider, const char *connection_id,
              int limit, json_object **out, char *err, size_t err_len);

/* Jobs in the live states, over the whole database: counts[0] queued,
 * [1] retrying, [2] running. */
int jobs_live_counts(store *st, long long counts[3]);

/* Seconds since the newest succeeded job of each provider finished, into
 * age_s[i]; -1 when the provider never had one. */
int jobs_success_age(store *st, char *const *providers, size_t n, double *age_s);

#endif
