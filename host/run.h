/* run.h — the context of one unit of plugin work: buffered signals and the
 * cursor commits that make them durable. */
#ifndef HOSTD_RUN_H
#define HOSTD_RUN_H

#include "ingest/plugin.h"
#include "store.h"

typedef struct ingest_ctx instance;

/* tenant/connection/job/delivery may be NULL; strings are copied. */
ingest_run *run_new(instance *inst, const char *tenant_id, const char *connection_id,
                    const char *job_id, const char *delivery_id);
/* Make every commit of this run prove the job's lease (see store_fence). */
int run_set_fence(ingest_run *run, const char *job_id, const char *owner, int lease_s);
/* The same for a webhook delivery; the run's final commit (run_finish with
 * INGEST_OK) also marks the delivery processed. */
int run_set_delivery_fence(ingest_run *run, const char *delivery_id, const char *owner,
                           int lease_s);
/* Signals newly stored by this run so far. */
long long run_stored(const ingest_run *run);

/* The callback returned `status`: commit what is queued if it is INGEST_OK,
 * discard it otherwise. Returns the final status (a failed commit turns OK
 * into EIO). */
int run_finish(ingest_run *run, int status);
/* run_finish in two steps, so one commit can finish many runs: if status
 * is INGEST_OK, *part describes the final commit (it borrows the run's
 * rows and fence until run_part_committed) and INGEST_OK is returned;
 * otherwise status. After store_commit_parts, run_part_committed counts
 * the outcome and returns the run's final status. */
int run_finish_part(ingest_run *run, int status, store_part *part);
int run_part_committed(ingest_run *run, const store_part *part);
void run_free(ingest_run *run);

/* Last error text recorded on the run (validation or store), or NULL. */
const char *run_error(const ingest_run *run);

/* The API table's signal and cursor entry points. */
int run_emit(ingest_run *run, const ingest_signal *signal);
int run_cursor_get(ingest_run *run, const char *stream, char **value);
int run_cursor_set(ingest_run *run, const char *stream, const char *value);
int run_flush(ingest_run *run);
int run_reject(ingest_run *run, const char *error, const char *detail_json);
int run_secret_get(ingest_run *run, const char *field, char **value);

const char *run_tenant(const ingest_run *run);
const char *run_job(const ingest_run *run);
const char *run_delivery(const ingest_run *run);

/* The run's connection id (NULL for connection-less runs) and instance. */
const char *run_connection(const ingest_run *run);

/* Make a connection-less delivery's run the run of `connection_id` (of
 * `tenant_id`): later signals, rejects, secrets and requests are that
 * connection's. INGEST_ESTATE when the run already has a connection, is
 * not a delivery's, or has queued signals or rejects (they carry the old
 * tenant). Both strings are copied. */
int run_route(ingest_run *run, const char *connection_id, const char *tenant_id);
instance *run_instance(const ingest_run *run);

/* The auth kind the run's connection uses with its plugin (see
 * instance_connection_auth) and when its access token expires (unix µs, 0 =
 * not known). Looked up once per run and cached; `reload` reads the row
 * again (after a token refresh or mint moved the expiry). INGEST_ENOTFOUND
 * for a run without a connection (or a connection of another plugin),
 * INGEST_EUNSUPPORTED when the plugin does not accept the connection's
 * kind, INGEST_EIO; err (may be NULL) gets the reason. */
int run_connection_auth(ingest_run *run, int reload, ingest_auth_kind *kind, int64_t *expires_us,
                        char *err, size_t err_len);

/* The run is inside the plugin's mint_token: it must not ask for the very
 * credentials being minted (INGEST_HTTP_AUTH_CONNECTION). */
void run_set_minting(ingest_run *run, int minting);
int run_minting(const ingest_run *run);

/* How long the vendor asked this run to wait (set by api->http_request on
 * INGEST_ERATELIMITED, or by the plugin through api->retry_after); the
 * largest value set wins. Thread-safe enough for one run on one worker. */
void run_set_retry_after(ingest_run *run, int64_t ms);
/* That wait in ms, or `fallback` when none was set (or run is NULL). */
int64_t run_retry_after_ms(const ingest_run *run, int64_t fallback);

#endif
