/* store.h — PostgreSQL writer threads: connection pool with reconnect and
 * backoff, migrations at connect, group-committed signal pages and cursors.
 * Every call here may block: call from workers, never from the event loop. */
#ifndef HOSTD_STORE_H
#define HOSTD_STORE_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "copy_rows.h"

typedef struct store store;

typedef struct store_cursor {
    const char *provider;
    const char *connection_id; /* NULL for connection-less cursors */
    const char *stream;
    const char *value;
} store_cursor;

/* url: libpq conninfo or URI; connections: writer threads; retry_max_s: the
 * reconnect backoff cap; application_name: what pg_stat_activity shows for
 * these connections (copied; an application_name in the URL wins). Threads
 * start immediately and keep reconnecting. */
store *store_new(const char *url, int connections, int retry_max_s, const char *application_name);

/* Connected and migrated (at least one writer). Lock-free. */
int store_ready(store *st);
/* Copy the most recent connection error ("" when healthy) into out. */
void store_last_error(store *st, char *out, size_t len);

/* Columns of a signal row, in the order copy_rows fields must follow. */
#define STORE_SIGNAL_COLUMNS                                                                       \
    "tenant_id, connection_id, source, kind, occurred_at, dedupe_key, payload, raw, provenance"

/* A commit made by a sync job also proves the job's lease is still held by
 * `owner` and extends it by lease_s: if another host took the job over, the
 * commit is refused (INGEST_ECANCELED) and nothing of it is stored. */
typedef enum store_fence_kind {
    FENCE_JOB = 0,  /* job_id is a sync_jobs id */
    FENCE_DELIVERY, /* job_id is a webhook_deliveries id */
} store_fence_kind;

typedef struct store_fence {
    const char *job_id;
    const char *owner;
    int lease_s;
    store_fence_kind kind;
    /* FENCE_DELIVERY: this commit finishes the delivery; it becomes
     * 'processed' in the same transaction as its signals. */
    int complete;
} store_fence;

/* Columns of a rejected-record row (a dead letter), in copy_rows order. */
#define STORE_REJECT_COLUMNS "kind, tenant_id, provider, connection_id, ref_id, payload, error"

/* One caller's share of a commit, each member may be NULL and all are
 * borrowed until the call returns: signal rows (COPY text format with
 * STORE_SIGNAL_COLUMNS; the store adds ingested_at, the commit's time, to
 * each row's provenance), a cursor to upsert, a fence to prove, and dead
 * letters for the records the caller rejected (COPY text format with
 * STORE_REJECT_COLUMNS). The store writes status (an ingest_status) and
 * inserted (new rows; duplicates by dedupe key are not counted). */
typedef struct store_part {
    const copy_rows *rows;
    const store_cursor *cursor;
    const store_fence *fence;
    int status;
    int inserted;
    const copy_rows *rejects;
} store_part;

/* Commit several parts in one transaction, each standing or falling alone:
 * a lost lease or bad data in one part fails that part only. Returns
 * INGEST_OK when every part committed, else the first failed part's
 * status. Many small parts cost little more than one: their fences,
 * signals and staging cleanup are each one statement for the lot. */
int store_commit_parts(store *st, store_part *parts, size_t n);

/* Run fn(conn, arg) on a writer thread's connection and wait for it. fn
 * returns an ingest_status; it must leave the connection idle (no open
 * transaction). INGEST_EIO when the database is unavailable. */
typedef int (*store_fn)(PGconn *conn, void *arg);
int store_call(store *st, store_fn fn, void *arg);

/* Helpers for store_fn bodies: run a parameterized statement and check its
 * status. On failure they write PQresultErrorMessage into err (if given)
 * and return the mapped status; *res (if given) receives the result, which
 * the caller PQclear()s. */
int store_exec(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **res,
               char *err, size_t err_len);

/* Like store_exec for a statement run often: prepared under `name` on the
 * connection the first time it is used there. `name` must be unique to
 * `sql` across the daemon. Outside transaction blocks only: the first use
 * on a connection fails once before preparing, which would abort one. */
int store_exec_prepared(PGconn *conn, const char *name, const char *sql, int n,
                        const char *const *params, PGresult **res, char *err, size_t err_len);

/* Run `copy_sql` (COPY ... FROM STDIN) and send `rows`. Reads every result,
 * also after a failure, so the connection can take the next command. */
int store_copy_in(PGconn *conn, const char *copy_sql, const copy_rows *rows, char *err,
                  size_t err_len);

/* An array literal '{"a","b"}' for a text[] (or uuid[], jsonb[], bytea[]...)
 * parameter; items may hold any text, a NULL item is an SQL NULL.
 * malloc'd; NULL on OOM. */
char *store_text_array(char *const *items, size_t n);

/* Run a query whose answer is one JSON value (one row, one column, e.g.
 * json_agg(...)) on a writer, and parse it: *out is a new json-c object
 * the caller puts, NULL on failure (err says why). Blocks: workers only. */
int store_query_json(store *st, const char *sql, int n, const char *const *params,
                     json_object **out, char *err, size_t err_len);

/* Run a statement without parameters (BEGIN, COMMIT, ROLLBACK); 0 or -1. */
int store_exec_simple(PGconn *conn, const char *sql);

/* Read a committed cursor; *value is malloc'd or NULL if none. */
int store_cursor_get(store *st, const char *provider, const char *connection_id, const char *stream,
                     char **value);

/* Finish queued requests, close connections, join threads. */
void store_stop(store *st);
void store_free(store *st);

#endif
