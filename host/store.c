/* store.c — N writer threads share one request queue. A writer takes every
 * queued commit at once and runs them in a single transaction (group commit);
 * each caller is woken when that transaction ends. */
#include "store.h"

#include <json-c/json.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/plugin.h"
#include "log.h"
#include "migrations.h"
#include "util.h"

#define MAX_BATCH 128
/* Dead rows the staging table may collect before it is truncated: every
 * DELETE and every scan of it reads them all. */
#define STAGING_DEAD_ROWS_MAX 2000

typedef enum { REQ_COMMIT, REQ_CURSOR_GET, REQ_CALL } req_kind;

typedef struct store_req {
    req_kind kind;
    store_part *parts; /* REQ_COMMIT; borrowed from the caller, who is blocked */
    size_t n_parts;
    const store_cursor *cursor; /* REQ_CURSOR_GET */
    store_fn fn;
    void *fn_arg;
    int status;
    char *value;
    int done;
    struct store_req *next;
} store_req;

typedef struct writer {
    store *st;
    pthread_t thread;
    PGconn *conn;
    int started;
    size_t staged_rows; /* since signals_staging was last truncated */
    store_part **parts; /* the parts of the batch being committed */
    size_t parts_cap;
    char *tagged; /* their rows with part and sequence columns added */
    size_t tagged_cap;
} writer;

struct store {
    char *url;
    char *application_name;
    int retry_max_s;
    pthread_mutex_t lock;
    pthread_cond_t work; /* requests queued or stopping */
    pthread_cond_t done; /* some request finished */
    store_req *head, *tail;
    int stopping;
    atomic_int connected; /* writers connected and migrated */
    char last_error[512];
    writer *writers;
    int n_writers;
};

/* Signals arrive by COPY into a per-connection staging table, then move in
 * one statement that lets the unique key drop duplicates (COPY itself cannot
 * skip conflicts). Measured in tests/bench: about 1.5x the throughput of
 * json_to_recordset with the same semantics. Not ON COMMIT DELETE ROWS:
 * that truncates at every commit, about 1.3 ms of server time each, which
 * made a one-signal webhook commit ten times dearer than its work. */
static const char create_staging_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS signals_staging (tenant_id uuid, connection_id uuid,"
    " source text, kind text, occurred_at timestamptz, dedupe_key text, payload jsonb,"
    " raw jsonb, provenance jsonb, part int, seq bigint)";

static const char copy_staging_sql[] = "COPY signals_staging (" STORE_SIGNAL_COLUMNS ") FROM STDIN";

static const char copy_rejects_sql[] = "COPY dead_letters (" STORE_REJECT_COLUMNS ") FROM STDIN";

/* Rows of several parts go in by one COPY, each tagged with its part's
 * index in the batch and its place in the batch. */
static const char copy_tagged_sql[] =
    "COPY signals_staging (" STORE_SIGNAL_COLUMNS ", part, seq) FROM STDIN";

/* The first row with a key, in batch order, is the one offered, as if the
 * parts were inserted one after the other; the answer is how many rows
 * each part stored. */
static const char insert_tagged_sql[] =
    "WITH firsts AS ("
    "  SELECT DISTINCT ON (tenant_id, source, dedupe_key) * FROM signals_staging"
    "  ORDER BY tenant_id, source, dedupe_key, seq),"
    " stored AS ("
    "  INSERT INTO signals (" STORE_SIGNAL_COLUMNS ")"
    "  SELECT tenant_id, connection_id, source, kind, occurred_at, dedupe_key, payload, raw,"
    "   provenance || jsonb_build_object('ingested_at', now()) FROM firsts"
    "  ON CONFLICT (tenant_id, source, dedupe_key) DO NOTHING"
    "  RETURNING tenant_id, source, dedupe_key)"
    " SELECT f.part, count(*) FROM stored JOIN firsts f USING (tenant_id, source, dedupe_key)"
    " GROUP BY f.part";

static const char insert_signals_sql[] =
    "INSERT INTO signals (" STORE_SIGNAL_COLUMNS ")"
    " SELECT tenant_id, connection_id, source, kind, occurred_at, dedupe_key, payload, raw,"
    /* ingested_at is the commit's own time, so it is true of every stored row. */
    " provenance || jsonb_build_object('ingested_at', now()) FROM signals_staging"
    " ON CONFLICT (tenant_id, source, dedupe_key) DO NOTHING";

static const char upsert_cursor_sql[] =
    "INSERT INTO cursors (provider, connection_id, stream, value) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (provider, connection_id, stream)"
    " DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
    " WHERE ingest_cursor_not_behind(cursors.value, EXCLUDED.value)";

static const char fence_sql[] =
    "UPDATE sync_jobs SET lease_expires_at = now() + make_interval(secs => $3::int),"
    " updated_at = now() WHERE id = $1 AND lease_owner = $2 AND state = 'running'";

static const char fence_delivery_sql[] =
    "UPDATE webhook_deliveries SET lease_expires_at = now() + make_interval(secs => $3::int)"
    " WHERE id = $1 AND lease_owner = $2 AND state = 'processing'";

static const char complete_delivery_sql[] =
    "UPDATE webhook_deliveries SET state = 'processed', processed_at = now(),"
    " lease_owner = NULL, lease_expires_at = NULL, last_error = NULL"
    " WHERE id = $1 AND lease_owner = $2 AND state = 'processing'";

/* Every delivery of a batch finished by one statement; the ids that come
 * back are those whose lease still held. Not prepared: a generic plan made
 * while the table was small (a sequential scan and a hash join) would stay
 * with the connection as the table grows; planned each time, the primary
 * key is used whatever the statistics say. */
static const char complete_deliveries_sql[] =
    "UPDATE webhook_deliveries d SET state = 'processed', processed_at = now(),"
    " lease_owner = NULL, lease_expires_at = NULL, last_error = NULL"
    " FROM unnest($1::uuid[], $2::text[]) AS f(id, owner)"
    " WHERE d.id = f.id AND d.lease_owner = f.owner AND d.state = 'processing'"
    " RETURNING d.id::text";

static const char select_cursor_sql[] =
    "SELECT value FROM cursors WHERE provider = $1"
    " AND connection_id IS NOT DISTINCT FROM $2::uuid AND stream = $3";

static const char clear_staging_sql[] = "DELETE FROM signals_staging";

/* The statements of every commit, prepared once per connection: parsing
 * and planning them each time cost more server time than running them. */
typedef struct hot_statement {
    const char *name, *sql;
    int n_params;
} hot_statement;

enum {
    HOT_FENCE_JOB,
    HOT_FENCE_DELIVERY,
    HOT_COMPLETE_DELIVERY,
    HOT_INSERT_SIGNALS,
    HOT_INSERT_TAGGED,
    HOT_CLEAR_STAGING,
    HOT_UPSERT_CURSOR,
    N_HOT
};

static const hot_statement hot[N_HOT] = {
    [HOT_FENCE_JOB] = {"store_fence_job", fence_sql, 3},
    [HOT_FENCE_DELIVERY] = {"store_fence_delivery", fence_delivery_sql, 3},
    [HOT_COMPLETE_DELIVERY] = {"store_complete_delivery", complete_delivery_sql, 2},
    [HOT_INSERT_SIGNALS] = {"store_insert_signals", insert_signals_sql, 0},
    [HOT_INSERT_TAGGED] = {"store_insert_tagged", insert_tagged_sql, 0},
    [HOT_CLEAR_STAGING] = {"store_clear_staging", clear_staging_sql, 0},
    [HOT_UPSERT_CURSOR] = {"store_upsert_cursor", upsert_cursor_sql, 4},
};

static int prepare_hot(PGconn *conn, char *err, size_t err_len)
{
    for (int i = 0; i < N_HOT; i++) {
        PGresult *r = PQprepare(conn, hot[i].name, hot[i].sql, hot[i].n_params, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(err, err_len, "preparing %s: %s", hot[i].name, PQresultErrorMessage(r));
        PQclear(r);
        if (!ok)
            return -1;
    }
    return 0;
}

static void set_error(store *st, const char *msg)
{
    pthread_mutex_lock(&st->lock);
    snprintf(st->last_error, sizeof st->last_error, "%s", msg);
    /* libpq messages end with a newline; keep log lines tidy. */
    size_t n = strlen(st->last_error);
    while (n && (st->last_error[n - 1] == '\n' || st->last_error[n - 1] == ' '))
        st->last_error[--n] = '\0';
    pthread_mutex_unlock(&st->lock);
}

/* Server notices ("relation already exists, skipping") become debug log lines
 * instead of raw text on stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    size_t n = strlen(message);
    while (n && message[n - 1] == '\n')
        n--;
    log_debug("store: server notice: %.*s", (int)n, message);
}

static PGconn *connect_once(store *st, char *err, size_t err_len)
{
    /* Settings before dbname, so a value in the URL wins. */
    const char *keys[] = {"connect_timeout", "application_name", "keepalives_idle", "dbname", NULL};
    const char *vals[] = {"5", st->application_name, "30", st->url, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, err_len, "%s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, on_notice, NULL);
    int applied = 0;
    if (migrations_apply(conn, &applied, err, err_len) < 0 ||
        store_exec(conn, create_staging_sql, 0, NULL, NULL, err, err_len) != INGEST_OK ||
        prepare_hot(conn, err, err_len) < 0) {
        PQfinish(conn);
        return NULL;
    }
    if (applied > 0)
        log_info("store: applied %d migration(s), schema now at version %d", applied,
                 migrations_latest());
    return conn;
}

/* Sleep until the deadline or until the store stops; returns 1 if stopping. */
static int wait_or_stop(store *st, double seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)seconds;
    until.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st->lock);
    while (!st->stopping && pthread_cond_timedwait(&st->work, &st->lock, &until) == 0)
        ;
    int stopping = st->stopping;
    pthread_mutex_unlock(&st->lock);
    return stopping;
}

/* With no writer connected, queued requests would wait for a reconnect that
 * may take long: fail them now so callers see EIO at once. */
static void fail_queued_if_disconnected(store *st)
{
    pthread_mutex_lock(&st->lock);
    if (atomic_load(&st->connected) == 0) {
        for (store_req *r = st->head; r; r = r->next) {
            r->status = INGEST_EIO;
            r->done = 1;
        }
        st->head = st->tail = NULL;
        pthread_cond_broadcast(&st->done);
    }
    pthread_mutex_unlock(&st->lock);
}

static void writer_connect(writer *w)
{
    store *st = w->st;
    double delay = 0.1;
    int logged = 0;
    while (!w->conn) {
        pthread_mutex_lock(&st->lock);
        int stopping = st->stopping;
        pthread_mutex_unlock(&st->lock);
        if (stopping)
            return;
        char err[512];
        w->conn = connect_once(st, err, sizeof err);
        if (w->conn) {
            atomic_fetch_add(&st->connected, 1);
            set_error(st, "");
            log_info("store: connected to PostgreSQL");
            return;
        }
        set_error(st, err);
        fail_queued_if_disconnected(st);
        if (!logged++)
            log_warn("store: cannot connect to PostgreSQL, retrying with backoff: %s",
                     st->last_error);
        if (wait_or_stop(st, delay))
            return;
        delay = delay * 2 > st->retry_max_s ? st->retry_max_s : delay * 2;
    }
}

static void writer_disconnect(writer *w, const char *why)
{
    if (!w->conn)
        return;
    set_error(w->st, why);
    log_warn("store: lost the PostgreSQL connection: %s", w->st->last_error);
    PQfinish(w->conn);
    w->conn = NULL;
    atomic_fetch_sub(&w->st->connected, 1);
}

/* Map a failed result to a status: bad data is EINVAL, the rest EIO. */
static int result_status(PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
        return INGEST_EINVAL;
    return INGEST_EIO;
}

/* Every element double-quoted, so commas, braces, quotes, backslashes and
 * spaces in it are data; a NULL item is the SQL NULL. Sized first, then
 * written in one pass: the inbox passes megabytes of hex through here. */
static size_t quoted_len(const char *item)
{
    if (!item)
        return 4; /* NULL */
    size_t n = 2;
    for (const char *c = item; *c; c++)
        n += (*c == '"' || *c == '\\') ? 2 : 1;
    return n;
}

static char *put_quoted(char *out, const char *item)
{
    if (!item) {
        memcpy(out, "NULL", 4);
        return out + 4;
    }
    *out++ = '"';
    for (const char *c = item; *c; c++) {
        if (*c == '"' || *c == '\\')
            *out++ = '\\';
        *out++ = *c;
    }
    *out++ = '"';
    return out;
}

char *store_text_array(char *const *items, size_t n)
{
    size_t len = 3; /* braces and the terminator */
    for (size_t i = 0; i < n; i++)
        len += quoted_len(items[i]) + 1;
    char *out = malloc(len);
    if (!out)
        return NULL;
    char *p = out;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *p++ = ',';
        p = put_quoted(p, items[i]);
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

int store_exec_simple(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok ? 0 : -1;
}

static int finish_exec(PGresult *r, PGresult **res, char *err, size_t err_len)
{
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (res)
            *res = r;
        else
            PQclear(r);
        return INGEST_OK;
    }
    if (err)
        snprintf(err, err_len, "%s", PQresultErrorMessage(r));
    int status = result_status(r);
    PQclear(r);
    if (res)
        *res = NULL;
    return status;
}

int store_exec(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **res,
               char *err, size_t err_len)
{
    return finish_exec(PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0), res, err, err_len);
}

/* Prepared on first use on each connection (a reconnect starts without
 * it: "26000 prepared statement does not exist" prepares it again). */
int store_exec_prepared(PGconn *conn, const char *name, const char *sql, int n,
                        const char *const *params, PGresult **res, char *err, size_t err_len)
{
    PGresult *r = PQexecPrepared(conn, name, n, params, NULL, NULL, 0);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (state && strcmp(state, "26000") == 0) {
        PQclear(r);
        r = PQprepare(conn, name, sql, n, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return finish_exec(r, res, err, err_len);
        PQclear(r);
        r = PQexecPrepared(conn, name, n, params, NULL, NULL, 0);
    }
    return finish_exec(r, res, err, err_len);
}

static int exec_hot(PGconn *conn, int which, const char *const *params, PGresult **res, char *err,
                    size_t err_len)
{
    PGresult *r = PQexecPrepared(conn, hot[which].name, hot[which].n_params, params, NULL, NULL, 0);
    return finish_exec(r, res, err, err_len);
}

typedef struct json_query {
    const char *sql;
    int n;
    const char *const *params;
    json_object *out;
    char *err;
    size_t err_len;
} json_query;

static int json_query_fn(PGconn *conn, void *arg)
{
    json_query *q = arg;
    PGresult *res = NULL;
    int rc = store_exec(conn, q->sql, q->n, q->params, &res, q->err, q->err_len);
    if (rc != INGEST_OK)
        return rc;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        q->out = json_tokener_parse(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!q->out) {
        snprintf(q->err, q->err_len, "unreadable answer from the database");
        return INGEST_EIO;
    }
    return INGEST_OK;
}

int store_query_json(store *st, const char *sql, int n, const char *const *params,
                     json_object **out, char *err, size_t err_len)
{
    json_query q = {sql, n, params, NULL, err, err_len};
    snprintf(err, err_len, "database unavailable");
    int rc = store_call(st, json_query_fn, &q);
    *out = rc == INGEST_OK ? q.out : NULL;
    if (rc != INGEST_OK)
        json_object_put(q.out);
    return rc;
}

/* The job or delivery must still be ours; refresh its lease (or finish
 * the delivery) in the same transaction. A lost lease fails the part
 * alone: the UPDATE that found nothing changed nothing. */
static int check_fence(PGconn *conn, store_part *part, char *err, size_t err_len)
{
    const store_fence *f = part->fence;
    char lease[16];
    snprintf(lease, sizeof lease, "%d", f->lease_s);
    const char *p[] = {f->job_id, f->owner, lease};
    int which = f->kind == FENCE_JOB ? HOT_FENCE_JOB
                : f->complete        ? HOT_COMPLETE_DELIVERY
                                     : HOT_FENCE_DELIVERY;
    PGresult *res = NULL;
    int rc = exec_hot(conn, which, p, &res, err, err_len);
    if (rc != INGEST_OK)
        return rc;
    if (atoi(PQcmdTuples(res)) != 1)
        part->status = INGEST_ECANCELED;
    PQclear(res);
    return INGEST_OK;
}

static int finishes_delivery(const store_part *p)
{
    return p->fence && p->fence->kind == FENCE_DELIVERY && p->fence->complete;
}

static int live(const store_part *p) { return p->status == INGEST_OK; }

static int held_in(PGresult *res, const char *id)
{
    for (int r = 0; r < PQntuples(res); r++) {
        if (strcmp(PQgetvalue(res, r, 0), id) == 0)
            return 1;
    }
    return 0;
}

/* The deliveries the batch finishes, in one UPDATE. */
static int complete_deliveries(PGconn *conn, store_part **parts, size_t n, char *err,
                               size_t err_len)
{
    char **ids = calloc(n, sizeof *ids), **owners = calloc(n, sizeof *owners);
    char *id_array = NULL, *owner_array = NULL;
    size_t m = 0;
    for (size_t i = 0; ids && owners && i < n; i++) {
        if (finishes_delivery(parts[i])) {
            ids[m] = (char *)parts[i]->fence->job_id;
            owners[m++] = (char *)parts[i]->fence->owner;
        }
    }
    if (ids && owners) {
        id_array = store_text_array(ids, m);
        owner_array = store_text_array(owners, m);
    }
    free(ids);
    free(owners);
    int rc = INGEST_ENOMEM;
    PGresult *res = NULL;
    if (id_array && owner_array) {
        const char *p[] = {id_array, owner_array};
        rc = store_exec(conn, complete_deliveries_sql, 2, p, &res, err, err_len);
    } else {
        snprintf(err, err_len, "out of memory finishing deliveries");
    }
    free(id_array);
    free(owner_array);
    for (size_t i = 0; rc == INGEST_OK && i < n; i++) {
        if (finishes_delivery(parts[i]) && !held_in(res, parts[i]->fence->job_id))
            parts[i]->status = INGEST_ECANCELED;
    }
    PQclear(res);
    return rc;
}

static int check_fences(PGconn *conn, store_part **parts, size_t n, char *err, size_t err_len)
{
    size_t finishing = 0;
    for (size_t i = 0; i < n; i++)
        finishing += (size_t)finishes_delivery(parts[i]);
    int together = finishing >= 2;
    int rc = together ? complete_deliveries(conn, parts, n, err, err_len) : INGEST_OK;
    for (size_t i = 0; rc == INGEST_OK && i < n; i++) {
        if (parts[i]->fence && !(together && finishes_delivery(parts[i])))
            rc = check_fence(conn, parts[i], err, err_len);
    }
    return rc;
}

int store_copy_in(PGconn *conn, const char *copy_sql, const copy_rows *rows, char *err,
                  size_t err_len)
{
    PGresult *res = PQexec(conn, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        snprintf(err, err_len, "%s", PQresultErrorMessage(res));
        int status = result_status(res);
        PQclear(res);
        return status;
    }
    PQclear(res);
    const size_t chunk = 1u << 20;
    int sent = 1;
    for (size_t off = 0; sent == 1 && off < rows->len; off += chunk) {
        size_t n = rows->len - off < chunk ? rows->len - off : chunk;
        sent = PQputCopyData(conn, rows->data + off, (int)n);
    }
    if (sent != 1 || PQputCopyEnd(conn, NULL) != 1) {
        snprintf(err, err_len, "COPY failed: %s", PQerrorMessage(conn));
        while ((res = PQgetResult(conn)))
            PQclear(res);
        return INGEST_EIO;
    }
    int status = INGEST_OK;
    while ((res = PQgetResult(conn))) {
        if (status == INGEST_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
            snprintf(err, err_len, "%s", PQresultErrorMessage(res));
            status = result_status(res);
        }
        PQclear(res);
    }
    return status;
}

/* COPY, then move what is new into signals, then empty the staging table,
 * so each request of a batch counts only its own rows and the commit
 * leaves it empty. */
static int insert_signals(PGconn *conn, const copy_rows *rows, int *inserted, char *err,
                          size_t err_len)
{
    int rc = store_copy_in(conn, copy_staging_sql, rows, err, err_len);
    if (rc != INGEST_OK)
        return rc;
    PGresult *res = NULL;
    rc = exec_hot(conn, HOT_INSERT_SIGNALS, NULL, &res, err, err_len);
    if (rc != INGEST_OK)
        return rc;
    *inserted = atoi(PQcmdTuples(res));
    PQclear(res);
    return exec_hot(conn, HOT_CLEAR_STAGING, NULL, NULL, err, err_len);
}

/* Room for the two tags added to a row: tab, part, tab, sequence. */
#define TAG_MAX 48

static int grow_tagged(writer *w, size_t need)
{
    if (need <= w->tagged_cap)
        return 0;
    char *p = realloc(w->tagged, need);
    if (!p)
        return -1;
    w->tagged = p;
    w->tagged_cap = need;
    return 0;
}

/* Rows end at a newline (copy_rows escapes those inside data), so the tags
 * go in before each one. */
static int tag_rows(writer *w, store_part **parts, size_t n, copy_rows *out)
{
    size_t need = 1;
    for (size_t i = 0; i < n; i++) {
        if (live(parts[i]) && parts[i]->rows)
            need += parts[i]->rows->len + parts[i]->rows->n_rows * TAG_MAX;
    }
    if (grow_tagged(w, need) < 0)
        return -1;
    char *o = w->tagged;
    long long seq = 0;
    for (size_t i = 0; i < n; i++) {
        if (!live(parts[i]) || !parts[i]->rows)
            continue;
        const char *d = parts[i]->rows->data, *end = d + parts[i]->rows->len;
        const char *nl;
        while (d < end && (nl = memchr(d, '\n', (size_t)(end - d)))) {
            memcpy(o, d, (size_t)(nl - d));
            o += nl - d;
            o += sprintf(o, "\t%zu\t%lld\n", i, seq++);
            d = nl + 1;
        }
    }
    *out = (copy_rows){.data = w->tagged, .len = (size_t)(o - w->tagged), .n_rows = (size_t)seq};
    return 0;
}

/* The rows of several parts: one COPY, one INSERT, one DELETE for all. */
static int insert_tagged(writer *w, store_part **parts, size_t n, char *err, size_t err_len)
{
    copy_rows tagged;
    if (tag_rows(w, parts, n, &tagged) < 0) {
        snprintf(err, err_len, "out of memory batching signals");
        return INGEST_ENOMEM;
    }
    int rc = store_copy_in(w->conn, copy_tagged_sql, &tagged, err, err_len);
    PGresult *res = NULL;
    if (rc == INGEST_OK)
        rc = exec_hot(w->conn, HOT_INSERT_TAGGED, NULL, &res, err, err_len);
    if (rc != INGEST_OK)
        return rc;
    for (int r = 0; r < PQntuples(res); r++) {
        size_t part = strtoul(PQgetvalue(res, r, 0), NULL, 10);
        if (part < n)
            parts[part]->inserted = atoi(PQgetvalue(res, r, 1));
    }
    PQclear(res);
    return exec_hot(w->conn, HOT_CLEAR_STAGING, NULL, NULL, err, err_len);
}

static int insert_rows(writer *w, store_part **parts, size_t n, char *err, size_t err_len)
{
    size_t with_rows = 0, last = 0;
    for (size_t i = 0; i < n; i++) {
        if (live(parts[i]) && parts[i]->rows) {
            with_rows++;
            last = i;
        }
    }
    if (with_rows == 0)
        return INGEST_OK;
    if (with_rows == 1)
        return insert_signals(w->conn, parts[last]->rows, &parts[last]->inserted, err, err_len);
    return insert_tagged(w, parts, n, err, err_len);
}

static int upsert_cursors(PGconn *conn, store_part **parts, size_t n, char *err, size_t err_len)
{
    int rc = INGEST_OK;
    for (size_t i = 0; rc == INGEST_OK && i < n; i++) {
        const store_cursor *c = parts[i]->cursor;
        if (!live(parts[i]) || !c)
            continue;
        const char *p[] = {c->provider, c->connection_id, c->stream, c->value};
        rc = exec_hot(conn, HOT_UPSERT_CURSOR, p, NULL, err, err_len);
    }
    return rc;
}

static int insert_rejects(PGconn *conn, store_part **parts, size_t n, char *err, size_t err_len)
{
    int rc = INGEST_OK;
    for (size_t i = 0; rc == INGEST_OK && i < n; i++) {
        if (live(parts[i]) && parts[i]->rejects)
            rc = store_copy_in(conn, copy_rejects_sql, parts[i]->rejects, err, err_len);
    }
    return rc;
}

static void set_status(store_part **parts, size_t n, int status)
{
    for (size_t i = 0; i < n; i++)
        parts[i]->status = status;
}

/* A transaction that only finishes webhook deliveries need not wait for its
 * WAL flush. No one outside is answered on its commit, and if a database
 * crash loses it, its deliveries are still leased in the table: the reaper
 * hands them out again and the signals' dedupe keys keep the second pass
 * from storing anything twice. Anything else (a sync page moving a cursor,
 * a job's outcome) commits synchronously. */
static const char *begin_sql(store_part **parts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!finishes_delivery(parts[i]))
            return "BEGIN";
    }
    return "BEGIN; SET LOCAL synchronous_commit = off";
}

/* One transaction for the parts. Returns 0 if it committed (parts whose
 * lease was lost say so in their status), -1 if nothing did. */
static int commit_parts(writer *w, store_part **parts, size_t n, char *err, size_t err_len)
{
    for (size_t i = 0; i < n; i++)
        parts[i]->inserted = 0;
    set_status(parts, n, INGEST_OK);
    if (store_exec_simple(w->conn, begin_sql(parts, n)) < 0) {
        snprintf(err, err_len, "%s", PQerrorMessage(w->conn));
        set_status(parts, n, INGEST_EIO);
        return -1;
    }
    int rc = check_fences(w->conn, parts, n, err, err_len);
    if (rc == INGEST_OK)
        rc = insert_rows(w, parts, n, err, err_len);
    if (rc == INGEST_OK)
        rc = insert_rejects(w->conn, parts, n, err, err_len);
    if (rc == INGEST_OK)
        rc = upsert_cursors(w->conn, parts, n, err, err_len);
    if (rc != INGEST_OK) {
        store_exec_simple(w->conn, "ROLLBACK");
        set_status(parts, n, rc);
        return -1;
    }
    if (store_exec_simple(w->conn, "COMMIT") < 0) {
        snprintf(err, err_len, "%s", PQerrorMessage(w->conn));
        set_status(parts, n, INGEST_EIO);
        return -1;
    }
    return 0;
}

/* The staging table is emptied by DELETE in each transaction; its dead
 * rows are cut back by a TRUNCATE now and then (a temp table is never
 * autovacuumed). */
static void trim_staging(writer *w, store_part **parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        w->staged_rows += parts[i]->rows ? parts[i]->rows->n_rows : 0;
    if (w->staged_rows < STAGING_DEAD_ROWS_MAX)
        return;
    w->staged_rows = 0;
    if (store_exec_simple(w->conn, "TRUNCATE signals_staging") < 0)
        log_warn("store: cannot truncate signals_staging: %s", PQerrorMessage(w->conn));
}

/* The parts of every request in the batch, in queue order. */
static size_t gather_parts(writer *w, store_req **batch, int n)
{
    size_t total = 0, k = 0;
    for (int i = 0; i < n; i++)
        total += batch[i]->n_parts;
    if (total > w->parts_cap) {
        store_part **p = realloc(w->parts, total * sizeof *p);
        if (!p)
            return 0;
        w->parts = p;
        w->parts_cap = total;
    }
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < batch[i]->n_parts; j++)
            w->parts[k++] = &batch[i]->parts[j];
    }
    return k;
}

/* A request's status: its first failed part's, else OK. */
static void settle(store_req **batch, int n)
{
    for (int i = 0; i < n; i++) {
        batch[i]->status = INGEST_OK;
        for (size_t j = 0; j < batch[i]->n_parts && batch[i]->status == INGEST_OK; j++)
            batch[i]->status = batch[i]->parts[j].status;
    }
}

static void process_commits(writer *w, store_req **batch, int n)
{
    char err[1024] = "";
    size_t n_parts = gather_parts(w, batch, n);
    if (n_parts == 0) {
        for (int i = 0; i < n; i++)
            batch[i]->status = INGEST_ENOMEM;
        return;
    }
    if (commit_parts(w, w->parts, n_parts, err, sizeof err) < 0) {
        if (PQstatus(w->conn) != CONNECTION_OK) {
            set_status(w->parts, n_parts, INGEST_EIO);
            writer_disconnect(w, err);
            settle(batch, n);
            return;
        }
        /* One bad page must not fail its neighbours: retry each on its own. */
        for (size_t i = 0; n_parts > 1 && i < n_parts; i++) {
            if (commit_parts(w, &w->parts[i], 1, err, sizeof err) < 0)
                log_warn("store: commit failed: %s", err);
        }
        if (n_parts == 1)
            log_warn("store: commit failed: %s", err);
    }
    if (PQstatus(w->conn) == CONNECTION_OK)
        trim_staging(w, w->parts, n_parts);
    settle(batch, n);
}

static void process_cursor_get(writer *w, store_req *r)
{
    const store_cursor *c = r->cursor;
    const char *p[] = {c->provider, c->connection_id, c->stream};
    PGresult *res = PQexecParams(w->conn, select_cursor_sql, 3, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        r->status = result_status(res);
        char err[512];
        snprintf(err, sizeof err, "%s", PQresultErrorMessage(res));
        PQclear(res);
        if (PQstatus(w->conn) != CONNECTION_OK)
            writer_disconnect(w, err);
        return;
    }
    r->status = INGEST_OK;
    r->value = PQntuples(res) > 0 ? strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
}

static void process_call(writer *w, store_req *r)
{
    r->status = r->fn(w->conn, r->fn_arg);
    if (PQstatus(w->conn) != CONNECTION_OK)
        writer_disconnect(w, PQerrorMessage(w->conn));
    else if (PQtransactionStatus(w->conn) != PQTRANS_IDLE)
        store_exec_simple(w->conn, "ROLLBACK"); /* never leak a transaction to the next caller */
}

/* Take either one read or up to MAX_BATCH commits from the queue. */
static int take_batch(store *st, store_req **batch)
{
    int n = 0;
    if (st->head && st->head->kind != REQ_COMMIT) {
        batch[n++] = st->head;
        st->head = st->head->next;
    } else {
        store_req **link = &st->head;
        while (*link && n < MAX_BATCH) {
            if ((*link)->kind == REQ_COMMIT) {
                batch[n++] = *link;
                *link = (*link)->next;
            } else {
                link = &(*link)->next;
            }
        }
    }
    st->tail = NULL;
    for (store_req *r = st->head; r; r = r->next)
        st->tail = r;
    return n;
}

static void finish(store *st, store_req **batch, int n)
{
    pthread_mutex_lock(&st->lock);
    for (int i = 0; i < n; i++)
        batch[i]->done = 1;
    pthread_cond_broadcast(&st->done);
    pthread_mutex_unlock(&st->lock);
}

/* Health probe while idle so readiness notices a dead server. */
static void probe(writer *w)
{
    PGresult *res = PQexec(w->conn, "SELECT 1");
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    char err[512];
    snprintf(err, sizeof err, "%s", ok ? "" : PQerrorMessage(w->conn));
    PQclear(res);
    if (!ok)
        writer_disconnect(w, err);
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    store *st = w->st;
    store_req *batch[MAX_BATCH];
    for (;;) {
        writer_connect(w);
        pthread_mutex_lock(&st->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 2;
        int timed_out = 0;
        while (!st->head && !st->stopping && !timed_out)
            timed_out = pthread_cond_timedwait(&st->work, &st->lock, &until) != 0;
        if (st->stopping && (!st->head || !w->conn)) {
            pthread_mutex_unlock(&st->lock);
            break;
        }
        int n = st->head && w->conn ? take_batch(st, batch) : 0;
        pthread_mutex_unlock(&st->lock);
        if (n == 0) {
            if (w->conn && timed_out)
                probe(w);
            continue;
        }
        if (batch[0]->kind == REQ_COMMIT)
            process_commits(w, batch, n);
        else if (batch[0]->kind == REQ_CALL)
            process_call(w, batch[0]);
        else
            process_cursor_get(w, batch[0]);
        finish(st, batch, n);
    }
    if (w->conn) {
        PQfinish(w->conn);
        w->conn = NULL;
        atomic_fetch_sub(&st->connected, 1);
    }
    fail_queued_if_disconnected(st);
    free(w->parts);
    free(w->tagged);
    w->parts = NULL;
    w->tagged = NULL;
    return NULL;
}

store *store_new(const char *url, int connections, int retry_max_s, const char *application_name)
{
    store *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->url = strdup(url);
    st->application_name = strdup(application_name);
    st->retry_max_s = retry_max_s;
    st->writers = calloc((size_t)connections, sizeof *st->writers);
    if (!st->url || !st->application_name || !st->writers) {
        free(st->url);
        free(st->application_name);
        free(st->writers);
        free(st);
        return NULL;
    }
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->work, NULL);
    pthread_cond_init(&st->done, NULL);
    snprintf(st->last_error, sizeof st->last_error, "not connected yet");
    for (int i = 0; i < connections; i++) {
        st->writers[i].st = st;
        if (pthread_create(&st->writers[i].thread, NULL, writer_main, &st->writers[i]) == 0) {
            st->writers[i].started = 1;
            st->n_writers++;
        }
    }
    return st;
}

int store_ready(store *st) { return atomic_load(&st->connected) > 0; }

void store_last_error(store *st, char *out, size_t len)
{
    pthread_mutex_lock(&st->lock);
    snprintf(out, len, "%s", st->last_error);
    pthread_mutex_unlock(&st->lock);
}

/* Queue a request and wait for a writer to finish it. */
static int submit_and_wait(store *st, store_req *r)
{
    if (!store_ready(st))
        return INGEST_EIO;
    pthread_mutex_lock(&st->lock);
    if (st->stopping) {
        pthread_mutex_unlock(&st->lock);
        return INGEST_ECANCELED;
    }
    if (st->tail)
        st->tail->next = r;
    else
        st->head = r;
    st->tail = r;
    pthread_cond_signal(&st->work);
    while (!r->done)
        pthread_cond_wait(&st->done, &st->lock);
    pthread_mutex_unlock(&st->lock);
    return r->status;
}

int store_call(store *st, store_fn fn, void *arg)
{
    store_req r = {.kind = REQ_CALL, .fn = fn, .fn_arg = arg, .status = INGEST_EIO};
    return submit_and_wait(st, &r);
}

int store_commit_parts(store *st, store_part *parts, size_t n)
{
    size_t pending = 0;
    for (size_t i = 0; i < n; i++) {
        parts[i].inserted = 0;
        if (parts[i].rows && parts[i].rows->n_rows == 0)
            parts[i].rows = NULL;
        if (parts[i].rejects && parts[i].rejects->n_rows == 0)
            parts[i].rejects = NULL;
        int empty = !parts[i].rows && !parts[i].cursor && !parts[i].fence && !parts[i].rejects;
        parts[i].status = empty ? INGEST_OK : INGEST_EIO;
        pending += (size_t)!empty;
    }
    if (pending == 0)
        return INGEST_OK;
    store_req r = {.kind = REQ_COMMIT, .parts = parts, .n_parts = n, .status = INGEST_EIO};
    int status = submit_and_wait(st, &r);
    for (size_t i = 0; !r.done && i < n; i++) {
        if (parts[i].status != INGEST_OK)
            parts[i].status = status; /* never reached a writer */
    }
    return status;
}

int store_cursor_get(store *st, const char *provider, const char *connection_id, const char *stream,
                     char **value)
{
    store_cursor c = {provider, connection_id, stream, NULL};
    store_req r = {.kind = REQ_CURSOR_GET, .cursor = &c, .status = INGEST_EIO};
    int status = submit_and_wait(st, &r);
    *value = status == INGEST_OK ? r.value : NULL;
    if (status != INGEST_OK)
        free(r.value);
    return status;
}

void store_stop(store *st)
{
    pthread_mutex_lock(&st->lock);
    st->stopping = 1;
    pthread_cond_broadcast(&st->work);
    pthread_mutex_unlock(&st->lock);
    for (int i = 0; i < st->n_writers; i++) {
        if (st->writers[i].started) {
            pthread_join(st->writers[i].thread, NULL);
            st->writers[i].started = 0;
        }
    }
}

void store_free(store *st)
{
    if (!st)
        return;
    store_stop(st);
    pthread_cond_destroy(&st->work);
    pthread_cond_destroy(&st->done);
    pthread_mutex_destroy(&st->lock);
    free(st->writers);
    free(st->url);
    free(st->application_name);
    free(st);
}
