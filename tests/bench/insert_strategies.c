/*
 * insert_strategies.c — how fast can one store writer put signals rows into
 * PostgreSQL, by strategy? A standalone libpq program (no daemon) that feeds
 * the real `signals` table (unique (tenant_id, source, dedupe_key), pkey,
 * three more indexes) batch by batch, one transaction per batch with a
 * synchronous commit, exactly as a sync page commits in the daemon.
 *
 *   insert_strategies -d URL [-n ROWS] [-b 1000,5000] [-r RUNS] [-s LIST] [-C] [-O] [-v]
 *
 *   -d URL    a database migrated by `ingest-hostctl migrate` (its signals
 *             table is TRUNCATEd before every trial — use a scratch database;
 *             the last trial's rows are left for inspection)
 *   -n ROWS   rows per trial (default 200000)
 *   -b LIST   batch sizes, rows per transaction (default 1000,5000)
 *   -r RUNS   trials per strategy and batch size; medians are reported (default 3)
 *   -s LIST   strategies, comma-separated (default: all, in this order)
 *   -C        no server-side `provenance || {"ingested_at": now()}`: the client
 *             puts ingested_at in the provenance text instead (what copy_direct
 *             always does, since COPY cannot evaluate expressions)
 *   -O        no ON CONFLICT clause (plain INSERT; only to price the clause)
 *   -D FRAC   re-send: every batch after the first also carries the last
 *             FRAC x batch rows of the batch before (already stored), as an
 *             incremental sync with a look-back window does; the rate counts
 *             new rows only. The repeats go at the END of the batch, the worst
 *             case for copy_try (its failed COPY has done all the work).
 *             copy_direct and copy_all cannot take duplicates and are skipped.
 *   -v        print every trial
 *
 * Strategies (all but the two COPY references keep the daemon's semantics:
 * ON CONFLICT (tenant_id, source, dedupe_key) DO NOTHING and ingested_at =
 * the commit's now()):
 *   json         INSERT ... SELECT ... FROM json_to_recordset($1::json) — the
 *                store's current statement (host/store.c), unprepared, one
 *                JSON array text parameter per batch
 *   values       multi-row INSERT ... VALUES ($1..$9), ($10..$18), ... with
 *                text parameters; prepared once per row count
 *   pipeline     libpq pipeline mode: BEGIN, one prepared single-row INSERT per
 *                row, COMMIT, sync — one round trip per batch
 *   copy_tmp     COPY into a temp table (ON COMMIT DELETE ROWS), then
 *                INSERT INTO signals SELECT ... FROM it ON CONFLICT DO NOTHING
 *   unnest       INSERT ... SELECT ... FROM unnest($1::uuid[], ..., $9::jsonb[])
 *                with nine text-format array parameters; prepared once
 *   copy_try     optimistic: SAVEPOINT; COPY straight into signals; on a
 *                unique violation ROLLBACK TO SAVEPOINT and do copy_tmp. COPY
 *                cannot evaluate now(), so ingested_at comes from the client
 *                (a store would read now() once per transaction)
 *   copy_check   copy_try, but first one query probes the unique index for the
 *                batch's keys (unnest of three arrays): any key already stored
 *                -> copy_tmp at once, none -> COPY straight in (still under a
 *                SAVEPOINT, for a racing writer or a key repeated in the batch)
 *   copy_direct  reference: COPY straight into signals, per batch (no conflict
 *                handling: a duplicate key aborts the whole batch)
 *   copy_all     reference: one COPY of all rows in one transaction, like the
 *                baseline of signals_bench.sh
 *
 * Every trial builds its wire format from the same prepared rows (the field
 * strings the daemon has after emit()), so client-side serialization and
 * escaping are part of the measured time; "client cpu" reports it.
 *
 * Build (not part of the test suite):
 *   cc -O2 -std=c11 -D_GNU_SOURCE $(pkg-config --cflags libpq) \
 *      tests/bench/insert_strategies.c -o /tmp/insert_strategies $(pkg-config --libs libpq)
 */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NCOLS 9
#define MAX_STRATEGIES 16
#define MAX_BATCHES 8
#define MAX_RUNS 64

static const char cols[] = "tenant_id, connection_id, source, kind, occurred_at, dedupe_key,"
                           " payload, raw, provenance";
static const char tenant[] = "00000000-0000-4000-8000-00000000beef";
static const char job_id[] = "3e591bbf-2727-4de4-9f74-82261bcdc4c2";

/* One signal as the store sees it after emit(): every field already text. */
typedef struct row {
    char occurred[32];
    char dedupe[32];
    char payload[48];
    char prov[400]; /* without the closing brace: ingested_at may follow */
} row;

typedef struct opts {
    int server_ingested_at; /* provenance || jsonb_build_object('ingested_at', now()) */
    int on_conflict;
    int verbose;
    double resend; /* -D */
} opts;

static opts O = {1, 1, 0, 0};
static long fallbacks;       /* copy_try batches that took the slow path */
static char ingested_at[32]; /* client-side ingested_at (-C and copy_*) */

/* ------------------------------------------------------------------ utils */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "insert_strategies: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static double now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void buf_reserve(buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *grown = realloc(b->p, cap);
    if (!grown)
        die("out of memory");
    b->p = grown;
    b->cap = cap;
}

static void buf_put(buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Escapers: generic, so their cost is what a real store would pay. */
static void esc_json_string(buf *b, const char *s) /* "..." */
{
    buf_reserve(b, strlen(s) * 2 + 2);
    char *o = b->p + b->len;
    *o++ = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            *o++ = '\\';
        *o++ = *s; /* control characters never occur in these fields */
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
}

static void esc_copy_text(buf *b, const char *s) /* COPY text format field */
{
    buf_reserve(b, strlen(s) * 2);
    char *o = b->p + b->len;
    for (; *s; s++) {
        switch (*s) {
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        default:
            *o++ = *s;
        }
    }
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
}

static void esc_array_elem(buf *b, const char *s) /* "..." inside {...} */
{
    esc_json_string(b, s); /* same rule: backslash-escape " and \ */
}

/* The provenance object text, closed, with or without ingested_at. */
static void put_prov(buf *b, const row *r, int with_ingested_at)
{
    buf_str(b, r->prov);
    if (with_ingested_at) {
        buf_str(b, ",\"ingested_at\":\"");
        buf_str(b, ingested_at);
        buf_str(b, "\"");
    }
    buf_str(b, "}");
}

static const char *prov_expr(void)
{
    return O.server_ingested_at ? "provenance || jsonb_build_object('ingested_at', now())"
                                : "provenance";
}

static const char *conflict_clause(void)
{
    return O.on_conflict ? " ON CONFLICT (tenant_id, source, dedupe_key) DO NOTHING" : "";
}

/* --------------------------------------------------------------- the rows */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fake_uuid(uint64_t *s, char out[37])
{
    uint64_t a = splitmix(s), b = splitmix(s);
    snprintf(out, 37, "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-8%03" PRIx64 "-%012" PRIx64,
             a >> 32, (a >> 16) & 0xffff, a & 0xfff, b >> 52, b & UINT64_C(0xffffffffffff));
}

/* Rows as host/run.c shapes them for the bench plugin: payload
 * {"seq":N,"v":"x"}, provenance with source id/type, content SHA-256,
 * observed_at, batch id (per 5000), job id, plugin name + version. */
static row *make_rows(long n)
{
    row *rows = calloc((size_t)n, sizeof *rows);
    if (!rows)
        die("out of memory for %ld rows", n);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ingested_at, sizeof ingested_at, "%s.000001Z", base);
    uint64_t seed = 42;
    char batch_id[37] = "";
    for (long i = 0; i < n; i++) {
        row *r = &rows[i];
        long seq = i + 1;
        if (i % 5000 == 0)
            fake_uuid(&seed, batch_id);
        char sha[65];
        uint64_t hs = (uint64_t)seq;
        for (int k = 0; k < 4; k++)
            snprintf(sha + 16 * k, 17, "%016" PRIx64, splitmix(&hs));
        snprintf(r->occurred, sizeof r->occurred, "%s.%06ldZ", base, seq % 1000000);
        snprintf(r->dedupe, sizeof r->dedupe, "bench:%ld", seq);
        snprintf(r->payload, sizeof r->payload, "{\"seq\":%ld,\"v\":\"x\"}", seq);
        snprintf(r->prov, sizeof r->prov,
                 "{\"source_id\":\"%ld\",\"source_type\":\"bench\",\"content_sha256\":\"%s\","
                 "\"observed_at\":\"%s\",\"batch_id\":\"%s\",\"job_id\":\"%s\","
                 "\"plugin\":{\"name\":\"bench\",\"version\":\"1.0.0\"}",
                 seq, sha, r->occurred, batch_id, job_id);
    }
    return rows;
}

/* ------------------------------------------------------------------ libpq */

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        die("%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
}

static long check_cmd(PGresult *res, const char *what)
{
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die("%s: %s", what, PQresultErrorMessage(res));
    long n = atol(PQcmdTuples(res));
    PQclear(res);
    return n;
}

static void prepare(PGconn *c, const char *name, const char *sql, int nparams)
{
    PGresult *res = PQprepare(c, name, sql, nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die("prepare %s: %s", name, PQresultErrorMessage(res));
    PQclear(res);
}

static long copy_in(PGconn *c, const char *sql, const buf *data)
{
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        die("%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    const size_t chunk = 1 << 18;
    for (size_t off = 0; off < data->len; off += chunk) {
        size_t n = data->len - off < chunk ? data->len - off : chunk;
        if (PQputCopyData(c, data->p + off, (int)n) != 1)
            die("PQputCopyData: %s", PQerrorMessage(c));
    }
    if (PQputCopyEnd(c, NULL) != 1)
        die("PQputCopyEnd: %s", PQerrorMessage(c));
    return check_cmd(PQgetResult(c), "COPY");
}

/* One COPY text line of a row. */
static void copy_line(buf *b, const row *r, int with_ingested_at)
{
    static buf prov;
    prov.len = 0;
    put_prov(&prov, r, with_ingested_at);
    esc_copy_text(b, tenant);
    buf_str(b, "\t\\N\t");
    esc_copy_text(b, "bench");
    buf_str(b, "\t");
    esc_copy_text(b, "bench.row");
    buf_str(b, "\t");
    esc_copy_text(b, r->occurred);
    buf_str(b, "\t");
    esc_copy_text(b, r->dedupe);
    buf_str(b, "\t");
    esc_copy_text(b, r->payload);
    buf_str(b, "\t\\N\t");
    esc_copy_text(b, prov.p);
    buf_str(b, "\n");
}

/* ------------------------------------------------------------- strategies */

typedef struct strategy {
    const char *name;
    void (*setup)(PGconn *c);                      /* once per connection */
    long (*batch)(PGconn *c, const row *r, int n); /* one transaction; returns rows inserted */
    int whole;                                     /* takes all rows at once (copy_all) */
} strategy;

static buf B; /* scratch, reused */

/* json: the store's statement, as in host/store.c. */
static long json_batch(PGconn *c, const row *r, int n)
{
    static char sql[1024];
    if (!sql[0])
        snprintf(sql, sizeof sql,
                 "INSERT INTO signals (%s) SELECT tenant_id, connection_id, source, kind,"
                 " occurred_at, dedupe_key, payload, raw, %s FROM json_to_recordset($1::json) AS"
                 " r(tenant_id uuid, connection_id uuid, source text, kind text,"
                 " occurred_at timestamptz, dedupe_key text, payload jsonb, raw jsonb,"
                 " provenance jsonb)%s",
                 cols, prov_expr(), conflict_clause());
    B.len = 0;
    buf_str(&B, "[");
    for (int i = 0; i < n; i++) {
        buf_str(&B, i ? ",{\"tenant_id\":" : "{\"tenant_id\":");
        esc_json_string(&B, tenant);
        buf_str(&B, ",\"connection_id\":null,\"source\":");
        esc_json_string(&B, "bench");
        buf_str(&B, ",\"kind\":");
        esc_json_string(&B, "bench.row");
        buf_str(&B, ",\"occurred_at\":");
        esc_json_string(&B, r[i].occurred);
        buf_str(&B, ",\"dedupe_key\":");
        esc_json_string(&B, r[i].dedupe);
        buf_str(&B, ",\"payload\":");
        buf_str(&B, r[i].payload);
        buf_str(&B, ",\"raw\":null,\"provenance\":");
        put_prov(&B, &r[i], !O.server_ingested_at);
        buf_str(&B, "}");
    }
    buf_str(&B, "]");
    exec_ok(c, "BEGIN");
    const char *p[] = {B.p};
    long ins = check_cmd(PQexecParams(c, sql, 1, NULL, p, NULL, NULL, 0), "json insert");
    exec_ok(c, "COMMIT");
    return ins;
}

/* values: multi-row VALUES, prepared once per row count. */
static long values_batch(PGconn *c, const row *r, int n)
{
    static int prepared[1 << 16];
    if (n * NCOLS > 65535)
        die("values: %d rows need %d parameters (> 65535)", n, n * NCOLS);
    char name[32];
    snprintf(name, sizeof name, "values_%d", n);
    if (!prepared[n]) {
        B.len = 0;
        buf_printf(&B, "INSERT INTO signals (%s) VALUES ", cols);
        for (int i = 0; i < n; i++) {
            int k = i * NCOLS;
            buf_printf(&B,
                       "%s($%d::uuid,$%d::uuid,$%d,$%d,$%d::timestamptz,$%d,$%d::jsonb,$%d::jsonb,"
                       "$%d::jsonb%s)",
                       i ? "," : "", k + 1, k + 2, k + 3, k + 4, k + 5, k + 6, k + 7, k + 8, k + 9,
                       O.server_ingested_at ? " || jsonb_build_object('ingested_at', now())" : "");
        }
        buf_str(&B, conflict_clause());
        prepare(c, name, B.p, n * NCOLS);
        prepared[n] = 1;
    }
    static const char **params;
    static size_t cap;
    if ((size_t)n * NCOLS > cap) {
        cap = (size_t)n * NCOLS;
        const char **grown = realloc(params, cap * sizeof *params);
        if (!grown)
            die("out of memory");
        params = grown;
    }
    /* Provenance texts must live until the call: one buffer, offsets. */
    B.len = 0;
    size_t *off = malloc((size_t)n * sizeof *off);
    if (!off)
        die("out of memory");
    for (int i = 0; i < n; i++) {
        off[i] = B.len;
        put_prov(&B, &r[i], !O.server_ingested_at);
        buf_put(&B, "", 1); /* keep the NUL */
    }
    for (int i = 0; i < n; i++) {
        const char **p = params + (size_t)i * NCOLS;
        p[0] = tenant;
        p[1] = NULL;
        p[2] = "bench";
        p[3] = "bench.row";
        p[4] = r[i].occurred;
        p[5] = r[i].dedupe;
        p[6] = r[i].payload;
        p[7] = NULL;
        p[8] = B.p + off[i];
    }
    free(off);
    exec_ok(c, "BEGIN");
    long ins = check_cmd(PQexecPrepared(c, name, n * NCOLS, params, NULL, NULL, 0), "values");
    exec_ok(c, "COMMIT");
    return ins;
}

/* pipeline: BEGIN, n prepared single-row INSERTs, COMMIT, one sync. */
static void pipeline_setup(PGconn *c)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO signals (%s) VALUES ($1::uuid, $2::uuid, $3, $4, $5::timestamptz, $6,"
             " $7::jsonb, $8::jsonb, $9::jsonb%s)%s",
             cols, O.server_ingested_at ? " || jsonb_build_object('ingested_at', now())" : "",
             conflict_clause());
    prepare(c, "ins1", sql, NCOLS);
}

static long pipeline_batch(PGconn *c, const row *r, int n)
{
    if (PQsetnonblocking(c, 1) != 0 || PQenterPipelineMode(c) != 1)
        die("pipeline mode: %s", PQerrorMessage(c));
    static buf prov;                         /* heap, reused */
    int sent = -1, synced = 0, got_sync = 0; /* sent: -1 = BEGIN not sent yet */
    long queued = 0, completed = 0, inserted = 0;
    while (!got_sync) {
        /* Queue a slice of statements, then service the socket. */
        for (int k = 0; k < 256 && !synced; k++) {
            int ok;
            if (sent < 0) {
                ok = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
            } else if (sent < n) {
                const row *x = &r[sent];
                prov.len = 0;
                put_prov(&prov, x, !O.server_ingested_at);
                const char *p[] = {tenant,    NULL,       "bench", "bench.row", x->occurred,
                                   x->dedupe, x->payload, NULL,    prov.p};
                ok = PQsendQueryPrepared(c, "ins1", NCOLS, p, NULL, NULL, 0);
            } else {
                ok = PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) &&
                     PQpipelineSync(c);
                synced = 1;
            }
            if (!ok)
                die("pipeline send: %s", PQerrorMessage(c));
            queued++;
            sent++;
        }
        int pending_out = PQflush(c);
        if (pending_out < 0)
            die("PQflush: %s", PQerrorMessage(c));
        struct pollfd pfd = {PQsocket(c), POLLIN | (pending_out ? POLLOUT : 0), 0};
        if (poll(&pfd, 1, synced ? -1 : 0) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        if ((pfd.revents & POLLIN) && !PQconsumeInput(c))
            die("PQconsumeInput: %s", PQerrorMessage(c));
        while ((completed < queued || (synced && !got_sync)) && !PQisBusy(c)) {
            PGresult *res = PQgetResult(c);
            if (!res) {
                completed++;
                continue;
            }
            ExecStatusType st = PQresultStatus(res);
            if (st == PGRES_PIPELINE_SYNC)
                got_sync = 1;
            else if (st == PGRES_COMMAND_OK)
                inserted += atol(PQcmdTuples(res));
            else
                die("pipeline result: %s %s", PQresStatus(st), PQresultErrorMessage(res));
            PQclear(res);
        }
    }
    /* BEGIN and COMMIT are counted by PQcmdTuples as 0 rows. */
    if (PQexitPipelineMode(c) != 1 || PQsetnonblocking(c, 0) != 0)
        die("leaving pipeline mode: %s", PQerrorMessage(c));
    return inserted;
}

/* copy_tmp: COPY into a temp table, then one INSERT ... SELECT ... ON CONFLICT. */
static void copy_tmp_setup(PGconn *c)
{
    exec_ok(c, "CREATE TEMP TABLE IF NOT EXISTS signals_in (tenant_id uuid, connection_id uuid,"
               " source text, kind text, occurred_at timestamptz, dedupe_key text, payload jsonb,"
               " raw jsonb, provenance jsonb) ON COMMIT DELETE ROWS");
}

static long copy_tmp_batch(PGconn *c, const row *r, int n)
{
    static char ins[1024];
    if (!ins[0])
        snprintf(ins, sizeof ins,
                 "INSERT INTO signals (%s) SELECT tenant_id, connection_id, source, kind,"
                 " occurred_at, dedupe_key, payload, raw, %s FROM signals_in%s",
                 cols, prov_expr(), conflict_clause());
    B.len = 0;
    for (int i = 0; i < n; i++)
        copy_line(&B, &r[i], !O.server_ingested_at);
    exec_ok(c, "BEGIN");
    char copy_sql[256];
    snprintf(copy_sql, sizeof copy_sql, "COPY signals_in (%s) FROM STDIN", cols);
    copy_in(c, copy_sql, &B);
    long ins_n = check_cmd(PQexec(c, ins), "insert from signals_in");
    exec_ok(c, "COMMIT");
    return ins_n;
}

/* unnest: nine array parameters, prepared once. */
static void unnest_setup(PGconn *c)
{
    char sql[1024];
    snprintf(
        sql, sizeof sql,
        "INSERT INTO signals (%s) SELECT t, c, s, k, o, d, p, r, pv%s FROM"
        " unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[],"
        " $6::text[], $7::jsonb[], $8::jsonb[], $9::jsonb[]) AS u(t, c, s, k, o, d, p, r, pv)%s",
        cols, O.server_ingested_at ? " || jsonb_build_object('ingested_at', now())" : "",
        conflict_clause());
    prepare(c, "unnest", sql, NCOLS);
}

static long unnest_batch(PGconn *c, const row *r, int n)
{
    static buf a[NCOLS];
    static buf prov;
    for (int k = 0; k < NCOLS; k++) {
        a[k].len = 0;
        buf_str(&a[k], "{");
    }
    for (int i = 0; i < n; i++) {
        const char *sep = i ? "," : "";
        for (int k = 0; k < NCOLS; k++)
            buf_str(&a[k], sep);
        esc_array_elem(&a[0], tenant);
        buf_str(&a[1], "NULL");
        esc_array_elem(&a[2], "bench");
        esc_array_elem(&a[3], "bench.row");
        esc_array_elem(&a[4], r[i].occurred);
        esc_array_elem(&a[5], r[i].dedupe);
        esc_array_elem(&a[6], r[i].payload);
        buf_str(&a[7], "NULL");
        prov.len = 0;
        put_prov(&prov, &r[i], !O.server_ingested_at);
        esc_array_elem(&a[8], prov.p);
    }
    const char *p[NCOLS];
    for (int k = 0; k < NCOLS; k++) {
        buf_str(&a[k], "}");
        p[k] = a[k].p;
    }
    exec_ok(c, "BEGIN");
    long ins = check_cmd(PQexecPrepared(c, "unnest", NCOLS, p, NULL, NULL, 0), "unnest");
    exec_ok(c, "COMMIT");
    return ins;
}

/* copy_direct / copy_all: COPY straight into signals (reference only). */
static long copy_direct_batch(PGconn *c, const row *r, int n)
{
    B.len = 0;
    for (int i = 0; i < n; i++)
        copy_line(&B, &r[i], 1);
    exec_ok(c, "BEGIN");
    char copy_sql[256];
    snprintf(copy_sql, sizeof copy_sql, "COPY signals (%s) FROM STDIN", cols);
    long ins = copy_in(c, copy_sql, &B);
    exec_ok(c, "COMMIT");
    return ins;
}

/* The slow path of copy_try/copy_check: stage, then ON CONFLICT DO NOTHING. */
static long staged_insert(PGconn *c, const row *r, int n)
{
    B.len = 0;
    for (int i = 0; i < n; i++)
        copy_line(&B, &r[i], 1);
    char copy_sql[256];
    snprintf(copy_sql, sizeof copy_sql, "COPY signals_in (%s) FROM STDIN", cols);
    copy_in(c, copy_sql, &B);
    char ins_sql[512];
    snprintf(ins_sql, sizeof ins_sql,
             "INSERT INTO signals (%s) SELECT %s FROM signals_in"
             " ON CONFLICT (tenant_id, source, dedupe_key) DO NOTHING",
             cols, cols);
    return check_cmd(PQexec(c, ins_sql), "staged insert");
}

/* SAVEPOINT + COPY straight into signals. Returns rows, or -1 after a unique
 * violation (rolled back to the savepoint, transaction still usable). */
static long copy_under_savepoint(PGconn *c, const row *r, int n)
{
    B.len = 0;
    for (int i = 0; i < n; i++)
        copy_line(&B, &r[i], 1);
    exec_ok(c, "SAVEPOINT bulk");
    char copy_sql[256];
    snprintf(copy_sql, sizeof copy_sql, "COPY signals (%s) FROM STDIN", cols);
    PGresult *res = PQexec(c, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        die("%s: %s", copy_sql, PQresultErrorMessage(res));
    PQclear(res);
    const size_t chunk = 1 << 18;
    for (size_t off = 0; off < B.len; off += chunk) {
        size_t k = B.len - off < chunk ? B.len - off : chunk;
        if (PQputCopyData(c, B.p + off, (int)k) != 1)
            die("PQputCopyData: %s", PQerrorMessage(c));
    }
    if (PQputCopyEnd(c, NULL) != 1)
        die("PQputCopyEnd: %s", PQerrorMessage(c));
    res = PQgetResult(c);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        long ins = atol(PQcmdTuples(res));
        PQclear(res);
        exec_ok(c, "RELEASE SAVEPOINT bulk");
        return ins;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (!state || strcmp(state, "23505") != 0)
        die("COPY: %s", PQresultErrorMessage(res));
    PQclear(res);
    while ((res = PQgetResult(c)))
        PQclear(res);
    exec_ok(c, "ROLLBACK TO SAVEPOINT bulk");
    fallbacks++;
    return -1;
}

/* copy_try: COPY straight in; on a duplicate key, redo the batch via staging. */
static long copy_try_batch(PGconn *c, const row *r, int n)
{
    exec_ok(c, "BEGIN");
    long ins = copy_under_savepoint(c, r, n);
    if (ins < 0)
        ins = staged_insert(c, r, n);
    exec_ok(c, "COMMIT");
    return ins;
}

/* copy_check: probe the unique index first; COPY straight in only if clean. */
static void copy_check_setup(PGconn *c)
{
    copy_tmp_setup(c);
    prepare(c, "probe",
            "SELECT EXISTS (SELECT 1 FROM unnest($1::uuid[], $2::text[], $3::text[])"
            " AS k(tenant_id, source, dedupe_key)"
            " JOIN signals s USING (tenant_id, source, dedupe_key))",
            3);
}

static long copy_check_batch(PGconn *c, const row *r, int n)
{
    static buf a[3];
    for (int k = 0; k < 3; k++) {
        a[k].len = 0;
        buf_str(&a[k], "{");
    }
    for (int i = 0; i < n; i++) {
        if (i)
            for (int k = 0; k < 3; k++)
                buf_str(&a[k], ",");
        esc_array_elem(&a[0], tenant);
        esc_array_elem(&a[1], "bench");
        esc_array_elem(&a[2], r[i].dedupe);
    }
    for (int k = 0; k < 3; k++)
        buf_str(&a[k], "}");
    const char *p[] = {a[0].p, a[1].p, a[2].p};
    exec_ok(c, "BEGIN");
    PGresult *res = PQexecPrepared(c, "probe", 3, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        die("probe: %s", PQresultErrorMessage(res));
    int clash = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    long ins = clash ? -1 : copy_under_savepoint(c, r, n);
    if (ins < 0) {
        fallbacks += clash;
        ins = staged_insert(c, r, n);
    }
    exec_ok(c, "COMMIT");
    return ins;
}

static const strategy strategies[] = {
    {"json", NULL, json_batch, 0},
    {"values", NULL, values_batch, 0},
    {"pipeline", pipeline_setup, pipeline_batch, 0},
    {"copy_tmp", copy_tmp_setup, copy_tmp_batch, 0},
    {"unnest", unnest_setup, unnest_batch, 0},
    {"copy_try", copy_tmp_setup, copy_try_batch, 0},
    {"copy_check", copy_check_setup, copy_check_batch, 0},
    {"copy_direct", NULL, copy_direct_batch, 0},
    {"copy_all", NULL, copy_direct_batch, 1},
};
#define N_STRATEGIES (sizeof strategies / sizeof strategies[0])

/* ------------------------------------------------------------------ main */

typedef struct result {
    double rate[MAX_RUNS], cpu[MAX_RUNS], wal[MAX_RUNS];
    int n;
} result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[MAX_RUNS];
    memcpy(s, v, (size_t)n * sizeof *v);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double minimum(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static double maximum(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

static int parse_list(char *text, char **items, int max)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(text, ",", &save); t && n < max;
         t = strtok_r(NULL, ",", &save))
        items[n++] = t;
    return n;
}

int main(int argc, char **argv)
{
    const char *url = getenv("DATABASE_URL");
    long rows_n = 200000;
    int runs = 3;
    char batch_text[128] = "1000,5000";
    char strat_text[256] = "";
    int opt;
    while ((opt = getopt(argc, argv, "d:n:b:r:s:COD:vh")) != -1) {
        switch (opt) {
        case 'd':
            url = optarg;
            break;
        case 'n':
            rows_n = atol(optarg);
            break;
        case 'b':
            snprintf(batch_text, sizeof batch_text, "%s", optarg);
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        case 's':
            snprintf(strat_text, sizeof strat_text, "%s", optarg);
            break;
        case 'C':
            O.server_ingested_at = 0;
            break;
        case 'O':
            O.on_conflict = 0;
            break;
        case 'D':
            O.resend = atof(optarg);
            break;
        case 'v':
            O.verbose = 1;
            break;
        default:
            fprintf(stderr,
                    "usage: %s -d URL [-n ROWS] [-b 1000,5000] [-r RUNS] [-s LIST] [-C] [-O] [-D "
                    "FRAC] [-v]\n",
                    argv[0]);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (!url || rows_n < 1 || runs < 1 || runs > MAX_RUNS || O.resend < 0 || O.resend > 1)
        die("need -d URL, -n >= 1, 1 <= -r <= %d and 0 <= -D <= 1", MAX_RUNS);

    const strategy *chosen[MAX_STRATEGIES];
    int n_chosen = 0;
    if (strat_text[0]) {
        char *names[MAX_STRATEGIES];
        int n = parse_list(strat_text, names, MAX_STRATEGIES);
        for (int i = 0; i < n; i++) {
            size_t k = 0;
            while (k < N_STRATEGIES && strcmp(strategies[k].name, names[i]) != 0)
                k++;
            if (k == N_STRATEGIES)
                die("unknown strategy '%s'", names[i]);
            chosen[n_chosen++] = &strategies[k];
        }
    } else {
        for (size_t k = 0; k < N_STRATEGIES; k++)
            chosen[n_chosen++] = &strategies[k];
    }
    char *batch_items[MAX_BATCHES];
    int n_batches = parse_list(batch_text, batch_items, MAX_BATCHES);
    int batches[MAX_BATCHES];
    for (int i = 0; i < n_batches; i++)
        if ((batches[i] = atoi(batch_items[i])) < 1)
            die("bad batch size '%s'", batch_items[i]);

    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        die("connect: %s", PQerrorMessage(c));
    exec_ok(c, "SET client_min_messages = warning");
    PGresult *res = PQexec(c, "SELECT count(*) FROM signals");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        die("no signals table (migrate the database with ingest-hostctl first): %s",
            PQresultErrorMessage(res));
    PQclear(res);
    for (int i = 0; i < n_chosen; i++)
        if (chosen[i]->setup)
            chosen[i]->setup(c);

    row *rows = make_rows(rows_n);
    int max_batch = 0;
    for (int i = 0; i < n_batches; i++)
        max_batch = batches[i] > max_batch ? batches[i] : max_batch;
    row *staging = malloc((size_t)max_batch * 2 * sizeof *staging);
    if (!staging)
        die("out of memory");
    res = PQexec(c, "SELECT current_setting('synchronous_commit') || ', fsync ' ||"
                    " current_setting('fsync') || ', shared_buffers ' ||"
                    " current_setting('shared_buffers')");
    printf("insert strategies: %ld rows per trial, %d run(s), one transaction per batch;"
           " PostgreSQL %s, synchronous_commit %s\n",
           rows_n, runs, PQparameterStatus(c, "server_version"),
           PQresultStatus(res) == PGRES_TUPLES_OK ? PQgetvalue(res, 0, 0) : "?");
    PQclear(res);
    if (O.resend > 0)
        printf("re-send: every batch after the first repeats %.0f%% of a batch of already stored"
               " rows; rates count new rows\n",
               O.resend * 100);
    printf("semantics: %s, ingested_at %s\n",
           O.on_conflict ? "ON CONFLICT (tenant_id, source, dedupe_key) DO NOTHING"
                         : "no ON CONFLICT (-O)",
           O.server_ingested_at ? "= now() server-side (provenance || jsonb_build_object)"
                                : "in the client's provenance text (-C)");

    static result results[MAX_BATCHES][MAX_STRATEGIES];
    /* Interleave strategies within each run so drift hits all alike. */
    for (int bi = 0; bi < n_batches; bi++) {
        for (int run = 0; run < runs; run++) {
            for (int si = 0; si < n_chosen; si++) {
                const strategy *s = chosen[si];
                if (s->whole && bi > 0)
                    continue; /* batch size does not apply: measure once */
                if (O.resend > 0 && (s->batch == copy_direct_batch))
                    continue; /* cannot take duplicates */
                exec_ok(c, "TRUNCATE signals");
                exec_ok(c, "CHECKPOINT");
                PGresult *lsn = PQexec(c, "SELECT pg_current_wal_insert_lsn()");
                char lsn0[32];
                snprintf(lsn0, sizeof lsn0, "%s", PQgetvalue(lsn, 0, 0));
                PQclear(lsn);
                int b = s->whole ? (int)rows_n : batches[bi];
                long k = (long)(O.resend * b); /* re-sent rows per batch */
                fallbacks = 0;
                double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
                long inserted = 0;
                for (long off = 0; off < rows_n; off += b) {
                    int n = (int)(rows_n - off < b ? rows_n - off : b);
                    long back = off < k ? off : k;
                    if (!back) {
                        inserted += s->batch(c, rows + off, n);
                        continue;
                    }
                    /* New rows first, then the repeats (prepared untimed
                     * would be fairer, but a memcpy of a batch is ~1 ms). */
                    memcpy(staging, rows + off, (size_t)n * sizeof *rows);
                    memcpy(staging + n, rows + off - back, (size_t)back * sizeof *rows);
                    inserted += s->batch(c, staging, n + (int)back);
                }
                double wall = now_s(CLOCK_MONOTONIC) - t0;
                double cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
                const char *lp[] = {lsn0};
                lsn = PQexecParams(c, "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)", 1,
                                   NULL, lp, NULL, NULL, 0);
                double wal = atof(PQgetvalue(lsn, 0, 0));
                PQclear(lsn);
                if (inserted != rows_n)
                    die("%s: inserted %ld of %ld rows", s->name, inserted, rows_n);
                result *r = &results[bi][si];
                r->rate[r->n] = (double)rows_n / wall;
                r->cpu[r->n] = cpu;
                r->wal[r->n] = wal / (double)rows_n;
                r->n++;
                if (O.verbose)
                    fprintf(stderr,
                            "  batch %d run %d %-12s %8.0f rows/s  %.2f s  client cpu %.2f s"
                            "  WAL %.0f B/row%s\n",
                            b, run + 1, s->name, (double)rows_n / wall, wall, cpu,
                            wal / (double)rows_n, fallbacks ? "  (fell back to staging)" : "");
            }
        }
    }

    printf("\n%-12s %6s  %10s  %10s  %10s  %9s  %9s  %s\n", "strategy", "batch", "median/s",
           "min/s", "max/s", "cli cpu s", "WAL B/row", "vs copy_all");
    double copy_all = 0;
    for (int si = 0; si < n_chosen; si++)
        if (chosen[si]->whole)
            copy_all = median(results[0][si].rate, results[0][si].n);
    for (int bi = 0; bi < n_batches; bi++) {
        for (int si = 0; si < n_chosen; si++) {
            const result *r = &results[bi][si];
            if (!r->n)
                continue;
            double m = median(r->rate, r->n);
            char rel[16] = "";
            if (copy_all > 0)
                snprintf(rel, sizeof rel, "%.2f", m / copy_all);
            printf("%-12s %6s  %10.0f  %10.0f  %10.0f  %9.2f  %9.0f  %s\n", chosen[si]->name,
                   chosen[si]->whole ? "all" : batch_items[bi], m, minimum(r->rate, r->n),
                   maximum(r->rate, r->n), median(r->cpu, r->n), median(r->wal, r->n), rel);
        }
    }
    /* The last trial's rows stay, for inspection. */
    free(staging);
    free(rows);
    PQfinish(c);
    return 0;
}
