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

#include "copy_rows.h"
#include "log.h"
#include "util.h"

/* Deliveries per transaction at most; more wait for the next one. */
#define MAX_BATCH 1024

static const char copy_deliveries_sql[] =
    "COPY deliveries_staging (ord, id, provider, scope, delivery_key, tenant_id, connection_id,"
    " headers, body, content_type, received_at) FROM STDIN";

/* A key already stored makes the delivery a duplicate, unless that key has
 * expired: then it is taken over. DISTINCT ON keeps the first of several
 * deliveries with one key in the same batch, so DO UPDATE never meets a row
 * twice. The key rows reference deliveries that are inserted by the same
 * statement; the foreign key is checked at its end. */
static const char insert_deliveries_sql[] =
    "WITH firsts AS ("
    "  SELECT DISTINCT ON (scope, delivery_key) * FROM deliveries_staging"
    "  ORDER BY scope, delivery_key, ord),"
    " keys AS ("
    "  INSERT INTO idempotency_keys (scope, key, delivery_id)"
    "  SELECT scope, delivery_key, id FROM firsts"
    "  ON CONFLICT (scope, key) DO UPDATE SET delivery_id = EXCLUDED.delivery_id,"
    "    created_at = now(), expires_at = now() + interval '30 days'"
    "  WHERE idempotency_keys.expires_at < now()"
    "  RETURNING delivery_id),"
    " inserted AS (INSERT INTO webhook_deliveries (id, provider, tenant_id, connection_id, "
    "delivery_key,"
    "  headers, body, content_type, received_at)"
    " SELECT f.id, f.provider, f.tenant_id, f.connection_id, f.delivery_key, f.headers, f.body,"
    "  f.content_type, f.received_at FROM firsts f JOIN keys k ON k.delivery_id = f.id"
    " RETURNING id)"
    " SELECT s.ord FROM inserted i JOIN deliveries_staging s ON s.id = i.id";

struct inbox {
    hostd *h;
    int capacity;
    pthread_mutex_t lock;
    pthread_cond_t work;
    inbox_item *head, *tail;
    size_t queued;
    size_t committing;
    int stopping;
    pthread_t *threads;
    int n_threads;
    ingest_metric *m_depth; /* queued + committing */
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
    free(item);
}

/* bytea in COPY text: "\x" and hex digits (copy_rows escapes the backslash). */
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

static int render_rows(const batch *b, copy_rows *rows)
{
    for (size_t i = 0; i < b->n; i++) {
        const inbox_item *it = b->items[i];
        char ord[24], received[32];
        snprintf(ord, sizeof ord, "%zu", i);
        util_format_time(it->received_at_us, received);
        char *body = bytea_hex(it->body, it->body_len);
        if (!body)
            return -1;
        copy_rows_field(rows, ord);
        copy_rows_field(rows, it->id);
        copy_rows_field(rows, it->provider);
        copy_rows_field(rows, it->scope);
        copy_rows_field(rows, it->delivery_key);
        copy_rows_field(rows, it->tenant_id);
        copy_rows_field(rows, it->connection_id);
        copy_rows_field(rows, it->headers_json);
        copy_rows_field(rows, body);
        copy_rows_field(rows, it->content_type);
        copy_rows_field(rows, received);
        copy_rows_end(rows);
        free(body);
    }
    return rows->failed ? -1 : 0;
}

typedef struct commit_arg {
    const batch *b;
    const copy_rows *rows;
    char err[512];
} commit_arg;

/* The positions (ord) that came back were stored; the rest are duplicates. */
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
    if (store_exec_simple(conn, "BEGIN") < 0) {
        snprintf(a->err, sizeof a->err, "%s", PQerrorMessage(conn));
        return INGEST_EIO;
    }
    int rc = store_copy_in(conn, copy_deliveries_sql, a->rows, a->err, sizeof a->err);
    PGresult *res = NULL;
    if (rc == INGEST_OK)
        rc = store_exec(conn, insert_deliveries_sql, 0, NULL, &res, a->err, sizeof a->err);
    if (rc == INGEST_OK && store_exec_simple(conn, "COMMIT") < 0) {
        snprintf(a->err, sizeof a->err, "%s", PQerrorMessage(conn));
        rc = INGEST_EIO;
    }
    if (rc == INGEST_OK)
        mark_outcomes(a->b, res);
    else
        store_exec_simple(conn, "ROLLBACK");
    PQclear(res);
    return rc;
}

static int commit_batch(inbox *ib, const batch *b, char *err, size_t err_len)
{
    copy_rows rows;
    copy_rows_init(&rows);
    commit_arg a = {b, &rows, ""};
    int rc = render_rows(b, &rows) < 0 ? INGEST_ENOMEM : store_call(ib->h->store, commit_fn, &a);
    copy_rows_free(&rows);
    snprintf(err, err_len, "%s", a.err[0] ? a.err : rc == INGEST_ENOMEM ? "out of memory" : "");
    return rc;
}

/* A batch the database refused (one delivery whose connection was just
 * deleted, say) is retried one by one so the others are still stored. */
static void commit_with_fallback(inbox *ib, batch *b)
{
    char err[512] = "";
    int rc = commit_batch(ib, b, err, sizeof err);
    if (rc == INGEST_OK)
        return;
    int retry_alone = rc != INGEST_EIO || store_ready(ib->h->store);
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
    while (b->n < n) {
        inbox_item *it = ib->head;
        ib->head = it->next;
        it->next = NULL;
        b->items[b->n++] = it;
    }
    if (!ib->head)
        ib->tail = NULL;
    ib->queued -= b->n;
    ib->committing += b->n;
    return b;
}

static void *inbox_main(void *arg)
{
    inbox *ib = arg;
    pthread_mutex_lock(&ib->lock);
    for (;;) {
        while (!ib->head && !ib->stopping)
            pthread_cond_wait(&ib->work, &ib->lock);
        if (!ib->head && ib->stopping)
            break;
        batch *b = take_batch(ib);
        pthread_mutex_unlock(&ib->lock);
        if (!b) { /* out of memory: leave the items queued and try again soon */
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
            pthread_mutex_lock(&ib->lock);
            continue;
        }
        commit_with_fallback(ib, b);
        size_t n = b->n;
        if (loop_post(ib->h->mailbox, complete_on_loop, b) < 0)
            log_error("inbox: cannot post %zu completions to the loop", n);
        pthread_mutex_lock(&ib->lock);
        ib->committing -= n;
        metrics_set(ib->m_depth, (double)(ib->queued + ib->committing));
    }
    pthread_mutex_unlock(&ib->lock);
    return NULL;
}

inbox *inbox_new(hostd *h, int capacity, int threads)
{
    inbox *ib = calloc(1, sizeof *ib);
    if (!ib)
        return NULL;
    ib->h = h;
    ib->capacity = capacity;
    ib->threads = calloc((size_t)threads, sizeof *ib->threads);
    if (!ib->threads) {
        free(ib);
        return NULL;
    }
    pthread_mutex_init(&ib->lock, NULL);
    pthread_cond_init(&ib->work, NULL);
    ib->m_depth = metrics_register(h->metrics, METRIC_GAUGE, "ingest_webhook_queue_depth",
                                   "Verified deliveries waiting for their commit", "", ib, NULL, 0);
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
    if (!store_ready(ib->h->store))
        return -1;
    pthread_mutex_lock(&ib->lock);
    int refused = ib->stopping || ib->queued + ib->committing >= (size_t)ib->capacity;
    if (!refused) {
        item->next = NULL;
        if (ib->tail)
            ib->tail->next = item;
        else
            ib->head = item;
        ib->tail = item;
        ib->queued++;
        metrics_set(ib->m_depth, (double)(ib->queued + ib->committing));
        pthread_cond_signal(&ib->work);
    }
    pthread_mutex_unlock(&ib->lock);
    return refused ? -1 : 0;
}

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
    pthread_cond_destroy(&ib->work);
    pthread_mutex_destroy(&ib->lock);
    free(ib->threads);
    free(ib);
}
