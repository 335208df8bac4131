/* inbox.c — group commit of webhook deliveries. The queue is bounded: a full
 * queue is answered 503 by the caller rather than buffered. */
#include "inbox.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deliveries.h"
#include "dispatch.h"
#include "log.h"
#include "util.h"

/* Deliveries per transaction at most, and their body bytes at most (a
 * batch of large bodies is sent as one statement). More wait for the next. */
#define MAX_BATCH 1024
#define MAX_BATCH_BYTES (16u << 20)
#define RECONNECT_WAIT_MS 1000
/* Every commit costs PostgreSQL a round trip, a statement start and a WAL
 * flush whatever its size. While deliveries keep coming (the last batch
 * held more than one), a batch waits up to GATHER_US from its first
 * delivery for company, or until GATHER_FULL are queued; a lone delivery
 * on a quiet host goes at once. */
#define GATHER_US 2000
#define GATHER_FULL 64

/* One self-committing statement per batch: the deliveries arrive as arrays,
 * one per column. A key already stored makes the delivery a duplicate,
 * unless that key has expired: then it is taken over. DISTINCT ON keeps the
 * first of several deliveries with one key in the same batch, so DO UPDATE
 * never meets a row twice. The key rows reference deliveries inserted by the
 * same statement; the foreign key is checked at its end. A delivery this
 * host's dispatcher has room for is stored already leased to it ($13, for
 * $14 seconds) and handed over from memory: it is never claimed, and its
 * row is written once less. What comes back is the positions (0-based) of
 * the deliveries stored. */
static const char insert_deliveries_sql[] =
    "WITH input AS ("
    "  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[],"
    "   $6::uuid[], $7::jsonb[], $8::bytea[], $9::text[], $10::timestamptz[], $11::text[],"
    "   $12::boolean[])"
    "  WITH ORDINALITY AS t(id, provider, scope, delivery_key, tenant_id, connection_id,"
    "   headers, body, content_type, received_at, remote_addr, leased, ord)),"
    " firsts AS ("
    "  SELECT DISTINCT ON (scope, delivery_key) * FROM input ORDER BY scope, delivery_key, ord),"
    " keys AS ("
    "  INSERT INTO idempotency_keys (scope, key, delivery_id)"
    "  SELECT scope, delivery_key, id FROM firsts"
    "  ON CONFLICT (scope, key) DO UPDATE SET delivery_id = EXCLUDED.delivery_id,"
    "    created_at = now(), expires_at = now() + interval '30 days'"
    "  WHERE idempotency_keys.expires_at < now()"
    "  RETURNING delivery_id),"
    " inserted AS (INSERT INTO webhook_deliveries (id, provider, tenant_id, connection_id,"
    "  delivery_key, headers, body, content_type, received_at, remote_addr, state, attempts,"
    "  lease_owner, lease_expires_at)"
    "  SELECT f.id, f.provider, f.tenant_id, f.connection_id, f.delivery_key, f.headers, f.body,"
    "   f.content_type, f.received_at, f.remote_addr,"
    "   CASE WHEN f.leased THEN 'processing' ELSE 'pending' END, f.leased::int,"
    "   CASE WHEN f.leased THEN $13::text END,"
    "   CASE WHEN f.leased THEN now() + make_interval(secs => $14::int) END"
    "  FROM firsts f JOIN keys k ON k.delivery_id = f.id"
    "  RETURNING id)"
    " SELECT i.ord - 1 FROM inserted ins JOIN input i ON i.id = ins.id";

enum {
    COL_ID,
    COL_PROVIDER,
    COL_SCOPE,
    COL_KEY,
    COL_TENANT,
    COL_CONNECTION,
    COL_HEADERS,
    COL_BODY,
    COL_CONTENT_TYPE,
    COL_RECEIVED,
    COL_REMOTE,
    COL_LEASED,
    N_COLS,
    PARAM_OWNER = N_COLS,
    PARAM_LEASE_S,
    N_PARAMS
};

struct inbox {
    hostd *h;
    store *db; /* the inbox's own connections: an ack never waits behind other writes */
    int capacity;
    pthread_mutex_t lock;
    pthread_cond_t work;
    inbox_item *head, *tail;
    size_t queued;
    size_t committing;
    int stopping;
    pthread_t *threads;
    int n_threads;
    size_t last_batch;      /* deliveries in the batch taken last */
    ingest_metric *m_depth; /* queued + committing */
    ingest_metric *m_commit_seconds, *m_batch_size;
};

typedef struct batch {
    inbox_item **items;
    size_t n;
} batch;

void inbox_item_free(inbox_item *item)
{
    if (!item)
        return;
    free(item->provider);
    free(item->scope);
    free(item->delivery_key);
    free(item->tenant_id);
    free(item->connection_id);
    free(item->headers_json);
    free(item->body);
    free(item->content_type);
    free(item->remote_addr);
    free(item);
}

/* bytea input: "\x" and hex digits. */
static char *bytea_hex(const unsigned char *data, size_t len)
{
    size_t cap = 2 * len + 3;
    char *out = malloc(cap);
    size_t written = 0;
    if (!out)
        return NULL;
    out[0] = '\\';
    out[1] = 'x';
    out[2] = '\0';
    /* sep '\0': digits without separators. */
    if (len > 0 && OPENSSL_buf2hexstr_ex(out + 2, cap - 2, &written, data, len, '\0') != 1) {
        free(out);
        return NULL;
    }
    return out;
}

/* The batch as one array literal per column; bodies and times are rendered
 * into `scratch` (n * 2 strings) which the caller frees. */
static int render_columns(const batch *b, char **scratch, char *columns[N_COLS])
{
    char **col[N_COLS];
    int rc = 0;
    for (int c = 0; c < N_COLS; c++)
        if (!(col[c] = calloc(b->n ? b->n : 1, sizeof(char *))))
            rc = -1;
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        inbox_item *it = b->items[i];
        char **body = &scratch[2 * i], **received = &scratch[2 * i + 1];
        *body = bytea_hex(it->body, it->body_len);
        *received = malloc(32);
        if (!*body || !*received) {
            rc = -1;
            break;
        }
        util_format_time(it->received_at_us, *received);
        col[COL_ID][i] = it->id;
        col[COL_PROVIDER][i] = it->provider;
        col[COL_SCOPE][i] = it->scope;
        col[COL_KEY][i] = it->delivery_key;
        col[COL_TENANT][i] = it->tenant_id;
        col[COL_CONNECTION][i] = it->connection_id;
        col[COL_HEADERS][i] = it->headers_json;
        col[COL_BODY][i] = *body;
        col[COL_CONTENT_TYPE][i] = it->content_type;
        col[COL_RECEIVED][i] = *received;
        col[COL_REMOTE][i] = it->remote_addr;
        col[COL_LEASED][i] = it->leased ? "t" : "f";
    }
    for (int c = 0; c < N_COLS; c++) {
        columns[c] = rc == 0 ? store_text_array(col[c], b->n) : NULL;
        if (!columns[c])
            rc = -1;
        free(col[c]);
    }
    return rc;
}

typedef struct commit_arg {
    const batch *b;
    const char *const *params;
    char err[512];
} commit_arg;

/* The positions that came back were stored; the rest are duplicates. */
static void mark_outcomes(const batch *b, PGresult *res)
{
    for (size_t i = 0; i < b->n; i++)
        b->items[i]->outcome = INBOX_DUPLICATE;
    for (int r = 0; r < PQntuples(res); r++) {
        size_t ord = (size_t)strtoul(PQgetvalue(res, r, 0), NULL, 10);
        if (ord < b->n)
            b->items[ord]->outcome = INBOX_STORED;
    }
}

static int commit_fn(PGconn *conn, void *arg)
{
    commit_arg *a = arg;
    PGresult *res = NULL;
    int rc = store_exec_prepared(conn, "inbox_insert_deliveries", insert_deliveries_sql, N_PARAMS,
                                 a->params, &res, a->err, sizeof a->err);
    if (rc == INGEST_OK)
        mark_outcomes(a->b, res);
    PQclear(res);
    return rc;
}

static int commit_batch(inbox *ib, const batch *b, char *err, size_t err_len)
{
    char *columns[N_COLS] = {0}, lease_s[16];
    char **scratch = calloc(2 * b->n + 1, sizeof *scratch);
    int rendered = scratch && render_columns(b, scratch, columns) == 0;
    const char *params[N_PARAMS];
    for (int c = 0; c < N_COLS; c++)
        params[c] = columns[c];
    snprintf(lease_s, sizeof lease_s, "%d", ib->h->cfg->job_lease_s);
    params[PARAM_OWNER] = dispatch_owner(ib->h);
    params[PARAM_LEASE_S] = lease_s;
    commit_arg a = {b, params, ""};
    int rc = rendered ? store_call(ib->db, commit_fn, &a) : INGEST_ENOMEM;
    for (size_t i = 0; scratch && i < 2 * b->n; i++)
        free(scratch[i]);
    free(scratch);
    for (int c = 0; c < N_COLS; c++)
        free(columns[c]);
    snprintf(err, err_len, "%s", a.err[0] ? a.err : rc == INGEST_ENOMEM ? "out of memory" : "");
    return rc;
}

/* A connection found broken reconnects at once when the database is up;
 * wait that long rather than answer 503 for a database that is there. */
static int reconnected(inbox *ib)
{
    for (int waited_ms = 0; !store_ready(ib->db) && waited_ms < RECONNECT_WAIT_MS; waited_ms += 10)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    return store_ready(ib->db);
}

/* A batch the database refused (one delivery whose connection was just
 * deleted, say) is retried one by one so the others are still stored. */
static void commit_with_fallback(inbox *ib, batch *b)
{
    char err[512] = "";
    int rc = commit_batch(ib, b, err, sizeof err);
    /* A connection that broke since its last use (the database restarted)
     * fails once and is dropped; another may be fresh, so each gets a try.
     * If a failed try did commit after all, the keys make the next one a
     * duplicate. */
    for (int retries = ib->n_threads; rc == INGEST_EIO && retries > 0 && reconnected(ib); retries--)
        rc = commit_batch(ib, b, err, sizeof err);
    if (rc == INGEST_OK)
        return;
    int retry_alone = rc != INGEST_EIO || store_ready(ib->db);
    size_t failed = 0;
    for (size_t i = 0; i < b->n; i++) {
        batch one = {&b->items[i], 1};
        if (retry_alone && b->n > 1 && commit_batch(ib, &one, err, sizeof err) == INGEST_OK)
            continue;
        b->items[i]->outcome = INBOX_FAILED;
        failed++;
    }
    log_warn("inbox: %zu of %zu deliveries not stored: %s", failed, b->n,
             err[0] ? err : "database unavailable");
}

/* The first deliveries of the batch, as many as this host's dispatcher has
 * room for, are stored leased to it. */
static int lease_to_dispatcher(inbox *ib, batch *b)
{
    int reserved = dispatch_reserve(ib->h, (int)b->n);
    for (size_t i = 0; i < b->n; i++)
        b->items[i]->leased = (int)i < reserved;
    return reserved;
}

/* The dispatcher's copy of a stored delivery, as a claim would have read
 * it back; the body and content type move (the HTTP reply needs neither). */
static int row_from_item(inbox_item *it, delivery_row *d)
{
    snprintf(d->id, sizeof d->id, "%s", it->id);
    snprintf(d->provider, sizeof d->provider, "%s", it->provider);
    snprintf(d->tenant_id, sizeof d->tenant_id, "%s", it->tenant_id ? it->tenant_id : "");
    snprintf(d->connection_id, sizeof d->connection_id, "%s",
             it->connection_id ? it->connection_id : "");
    snprintf(d->remote_addr, sizeof d->remote_addr, "%s", it->remote_addr ? it->remote_addr : "");
    d->received_at_us = it->received_at_us;
    d->attempts = 1;
    d->body = it->body ? it->body : calloc(1, 1);
    d->body_len = it->body_len;
    it->body = NULL;
    d->content_type = it->content_type;
    it->content_type = NULL;
    d->delivery_key = strdup(it->delivery_key);
    if (!d->delivery_key || !d->body || deliveries_row_set_headers(d, it->headers_json) < 0)
        return -1;
    return 0;
}

/* Rows for the deliveries stored leased to the dispatcher. One whose row
 * cannot be made (out of memory) stays leased in the table until its lease
 * runs out; then it is claimed like any other. */
static delivery_row *leased_rows(batch *b, size_t *n)
{
    delivery_row *rows = calloc(b->n, sizeof *rows);
    *n = 0;
    for (size_t i = 0; i < b->n; i++) {
        inbox_item *it = b->items[i];
        if (it->outcome != INBOX_STORED)
            it->leased = 0;
        if (!it->leased || !rows)
            continue;
        if (row_from_item(it, &rows[*n]) == 0)
            (*n)++;
        else
            deliveries_row_clear(&rows[*n]);
    }
    return rows;
}

static void complete_on_loop(void *arg)
{
    batch *b = arg;
    for (size_t i = 0; i < b->n; i++)
        b->items[i]->done(b->items[i], b->items[i]->done_arg);
    free(b->items);
    free(b);
}

static batch *take_batch(inbox *ib)
{
    batch *b = calloc(1, sizeof *b);
    size_t n = ib->queued < MAX_BATCH ? ib->queued : MAX_BATCH;
    if (b)
        b->items = calloc(n, sizeof *b->items);
    if (!b || !b->items) {
        free(b);
        return NULL;
    }
    size_t bytes = 0;
    while (b->n < n && (b->n == 0 || bytes + ib->head->body_len <= MAX_BATCH_BYTES)) {
        inbox_item *it = ib->head;
        bytes += it->body_len;
        ib->head = it->next;
        it->next = NULL;
        b->items[b->n++] = it;
    }
    if (!ib->head)
        ib->tail = NULL;
    ib->queued -= b->n;
    ib->committing += b->n;
    ib->last_batch = b->n;
    return b;
}

/* Called with the lock held and something queued: under load, wait until
 * the batch is worth a commit (see GATHER_US). queued_us and the condition
 * variable both run on CLOCK_MONOTONIC. */
static void gather(inbox *ib)
{
    if (ib->last_batch < 2)
        return;
    int64_t due_us = ib->head->queued_us + GATHER_US;
    struct timespec due = {(time_t)(due_us / 1000000), (long)(due_us % 1000000) * 1000};
    while (ib->head && ib->queued < GATHER_FULL && !ib->stopping)
        if (pthread_cond_timedwait(&ib->work, &ib->lock, &due) != 0)
            break;
}

static void *inbox_main(void *arg)
{
    inbox *ib = arg;
    pthread_mutex_lock(&ib->lock);
    for (;;) {
        while (!ib->head && !ib->stopping)
            pthread_cond_wait(&ib->work, &ib->lock);
        if (!ib->head) /* stopping, and nothing left to store */
            break;
        gather(ib);
        if (!ib->head) /* another thread took them meanwhile */
            continue;
        batch *b = take_batch(ib);
        pthread_mutex_unlock(&ib->lock);
        if (!b) { /* out of memory: leave the items queued and try again soon */
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
            pthread_mutex_lock(&ib->lock);
            continue;
        }
        int reserved = lease_to_dispatcher(ib, b);
        int64_t commit_start_us = util_mono_us();
        commit_with_fallback(ib, b);
        metrics_observe(ib->m_commit_seconds, (double)(util_mono_us() - commit_start_us) / 1e6);
        metrics_observe(ib->m_batch_size, (double)b->n);
        size_t n = b->n, n_rows = 0;
        delivery_row *rows = reserved ? leased_rows(b, &n_rows) : NULL;
        if (loop_post(ib->h->mailbox, complete_on_loop, b) < 0)
            log_error("inbox: cannot post %zu completions to the loop", n);
        if (reserved)
            dispatch_adopt(ib->h, rows, n_rows, reserved);
        pthread_mutex_lock(&ib->lock);
        ib->committing -= n;
        metrics_set(ib->m_depth, (double)(ib->queued + ib->committing));
    }
    pthread_mutex_unlock(&ib->lock);
    return NULL;
}

inbox *inbox_new(hostd *h, const char *database_url, int capacity, int threads, int retry_max_s)
{
    inbox *ib = calloc(1, sizeof *ib);
    if (!ib)
        return NULL;
    ib->h = h;
    ib->capacity = capacity;
    ib->threads = calloc((size_t)threads, sizeof *ib->threads);
    ib->db = store_new(database_url, threads, retry_max_s, "ingest-hostd inbox");
    if (!ib->threads || !ib->db) {
        store_free(ib->db);
        free(ib->threads);
        free(ib);
        return NULL;
    }
    pthread_mutex_init(&ib->lock, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC); /* gather()'s deadlines */
    pthread_cond_init(&ib->work, &monotonic);
    pthread_condattr_destroy(&monotonic);
    ib->m_depth = metrics_register(h->metrics, METRIC_GAUGE, "ingest_webhook_queue_depth",
                                   "Verified deliveries waiting for their commit", "", ib, NULL, 0);
    static const double seconds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
    static const double sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
    ib->m_commit_seconds =
        metrics_register(h->metrics, METRIC_HISTOGRAM, "ingest_webhook_inbox_commit_seconds",
                         "Time one inbox batch took to commit (its deliveries wait for this)", "",
                         ib, seconds, sizeof seconds / sizeof seconds[0]);
    ib->m_batch_size = metrics_register(
        h->metrics, METRIC_HISTOGRAM, "ingest_webhook_inbox_batch_size",
        "Deliveries stored per inbox commit", "", ib, sizes, sizeof sizes / sizeof sizes[0]);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&ib->threads[ib->n_threads], NULL, inbox_main, ib) == 0)
            ib->n_threads++;
    if (ib->n_threads == 0) {
        inbox_free(ib);
        return NULL;
    }
    return ib;
}

int inbox_submit(inbox *ib, inbox_item *item)
{
    if (!store_ready(ib->db))
        return -1;
    pthread_mutex_lock(&ib->lock);
    int refused = ib->stopping || ib->queued + ib->committing >= (size_t)ib->capacity;
    if (!refused) {
        item->next = NULL;
        item->queued_us = util_mono_us();
        int was_empty = !ib->head;
        if (ib->tail)
            ib->tail->next = item;
        else
            ib->head = item;
        ib->tail = item;
        ib->queued++;
        metrics_set(ib->m_depth, (double)(ib->queued + ib->committing));
        /* A thread is woken for the first delivery and for a full batch;
         * one gathering meanwhile would only go back to sleep. */
        if (was_empty || ib->queued == GATHER_FULL)
            pthread_cond_signal(&ib->work);
    }
    pthread_mutex_unlock(&ib->lock);
    return refused ? -1 : 0;
}

int inbox_ready(inbox *ib) { return store_ready(ib->db); }

size_t inbox_depth(inbox *ib)
{
    pthread_mutex_lock(&ib->lock);
    size_t n = ib->queued + ib->committing;
    pthread_mutex_unlock(&ib->lock);
    return n;
}

void inbox_stop(inbox *ib)
{
    if (!ib)
        return;
    pthread_mutex_lock(&ib->lock);
    ib->stopping = 1;
    pthread_cond_broadcast(&ib->work);
    pthread_mutex_unlock(&ib->lock);
    for (int i = 0; i < ib->n_threads; i++)
        pthread_join(ib->threads[i], NULL);
    ib->n_threads = 0;
}

void inbox_free(inbox *ib)
{
    if (!ib)
        return;
    inbox_stop(ib);
    store_free(ib->db);
    pthread_cond_destroy(&ib->work);
    pthread_mutex_destroy(&ib->lock);
    free(ib->threads);
    free(ib);
}
