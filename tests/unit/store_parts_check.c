/* store_parts_check.c — store_commit_parts against a real PostgreSQL (the
 * database URL is argv[1]; tests/integration/test_store_parts.py runs it on
 * a fresh database). Several parts in one transaction must behave exactly
 * as if each had been committed alone: per-part counts of new signals,
 * first row wins for a key repeated across or within parts, a lost lease
 * fails only its part and stores none of its rows, bad data in one part
 * fails only that part. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "copy_rows.h"
#include "ingest/plugin.h"
#include "store.h"

static const char *db_url;
static store *st;

typedef struct sql_args {
    const char *sql;
    const char *param;
    char answer[256];
} sql_args;

static int sql_fn(PGconn *conn, void *arg)
{
    sql_args *a = arg;
    PGresult *res = NULL;
    const char *p[] = {a->param};
    int rc = store_exec(conn, a->sql, a->param ? 1 : 0, p, &res, NULL, 0);
    if (rc == INGEST_OK && PQntuples(res) > 0)
        snprintf(a->answer, sizeof a->answer, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

/* The first column of the first row, as text ("" when no row). */
static const char *sql(sql_args *a, const char *text, const char *param)
{
    *a = (sql_args){text, param, ""};
    assert_int_equal(store_call(st, sql_fn, a), INGEST_OK);
    return a->answer;
}

static void add_signal(copy_rows *rows, const char *tenant, const char *key, const char *occurred)
{
    copy_rows_field(rows, tenant);
    copy_rows_field(rows, NULL);
    copy_rows_field(rows, "partscheck");
    copy_rows_field(rows, "thing_happened");
    copy_rows_field(rows, occurred);
    copy_rows_field(rows, key);
    char payload[128];
    snprintf(payload, sizeof payload, "{\"key\": \"%s\"}", key);
    copy_rows_field(rows, payload);
    copy_rows_field(rows, NULL);
    copy_rows_field(rows, "{}");
    copy_rows_end(rows);
}

static void add_reject(copy_rows *rows, const char *tenant, const char *detail, const char *error)
{
    copy_rows_field(rows, "record");
    copy_rows_field(rows, tenant);
    copy_rows_field(rows, "partscheck");
    copy_rows_field(rows, NULL);
    copy_rows_field(rows, NULL);
    copy_rows_field(rows, detail);
    copy_rows_field(rows, error);
    copy_rows_end(rows);
}

/* A delivery in state 'processing' leased to `owner`; its id is written to id. */
static void leased_delivery(const char *owner, char id[64])
{
    sql_args a;
    const char *got = sql(&a,
                          "INSERT INTO webhook_deliveries (provider, delivery_key, body, state,"
                          " attempts, lease_owner, lease_expires_at)"
                          " VALUES ('partscheck', gen_random_uuid()::text, '\\x7b7d', 'processing',"
                          " 1, $1, now() + interval '1 minute') RETURNING id::text",
                          owner);
    snprintf(id, 64, "%s", got);
    assert_true(strlen(id) == 36);
}

static long count(const char *text, const char *param)
{
    sql_args a;
    return atol(sql(&a, text, param));
}

static void test_parts_behave_as_if_alone(void **state)
{
    (void)state;
    const char *tenant = "0a4c3e1d-6b7f-4f2a-9c1e-3d2b1a0f9e01";
    const char *when = "2026-11-22T10:00:00Z";
    char d1[64], d2[64], d3[64];
    leased_delivery("me", d1);
    leased_delivery("me", d2);
    leased_delivery("someone-else", d3);
    store_fence f1 = {d1, "me", 30, FENCE_DELIVERY, 1};
    store_fence f2 = {d2, "me", 30, FENCE_DELIVERY, 1};
    store_fence f3 = {d3, "me", 30, FENCE_DELIVERY, 1};
    copy_rows r[5] = {{0}};
    add_signal(&r[0], tenant, "a", when);
    add_signal(&r[0], tenant, "b", when);
    add_signal(&r[1], tenant, "b", when); /* already offered by part 0 */
    add_signal(&r[1], tenant, "c", when);
    add_signal(&r[2], tenant, "d", when); /* its lease is someone else's */
    add_signal(&r[3], tenant, "a", when);
    add_signal(&r[4], tenant, "e", when);
    add_signal(&r[4], tenant, "e", when); /* twice in one part */
    copy_rows rejects = {0}, lost_rejects = {0};
    add_reject(&rejects, tenant, "{\"line\": 7}", "missing column");
    add_reject(&lost_rejects, tenant, "{\"line\": 9}", "never stored: lease lost");
    store_part parts[5] = {
        {.rows = &r[0], .fence = &f1},
        {.rows = &r[1], .fence = &f2},
        {.rows = &r[2], .fence = &f3, .rejects = &lost_rejects},
        {.rows = &r[3]},
        {.rows = &r[4], .rejects = &rejects},
    };
    assert_int_equal(store_commit_parts(st, parts, 5), INGEST_ECANCELED);
    int want_status[5] = {INGEST_OK, INGEST_OK, INGEST_ECANCELED, INGEST_OK, INGEST_OK};
    int want_inserted[5] = {2, 1, 0, 0, 1};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(parts[i].status, want_status[i]);
        assert_int_equal(parts[i].inserted, want_inserted[i]);
    }
    assert_int_equal(count("SELECT count(*) FROM signals WHERE tenant_id = $1", tenant), 4);
    assert_int_equal(count("SELECT count(*) FROM signals WHERE dedupe_key = 'd'"
                           " AND tenant_id = $1",
                           tenant),
                     0);
    assert_int_equal(count("SELECT count(*) FROM signals WHERE tenant_id = $1"
                           " AND provenance ? 'ingested_at'",
                           tenant),
                     4);
    assert_int_equal(count("SELECT count(*) FROM webhook_deliveries WHERE state = 'processed'"
                           " AND lease_owner IS NULL AND id IN ($1::uuid)",
                           d1),
                     1);
    assert_int_equal(count("SELECT count(*) FROM webhook_deliveries WHERE state = 'processed'"
                           " AND id = $1::uuid",
                           d2),
                     1);
    assert_int_equal(count("SELECT count(*) FROM webhook_deliveries WHERE state = 'processing'"
                           " AND lease_owner = 'someone-else' AND id = $1::uuid",
                           d3),
                     1);
    assert_int_equal(count("SELECT count(*) FROM dead_letters WHERE kind = 'record'"
                           " AND tenant_id = $1 AND error = 'missing column'"
                           " AND payload->>'line' = '7'",
                           tenant),
                     1);
    assert_int_equal(count("SELECT count(*) FROM dead_letters WHERE tenant_id = $1", tenant), 1);
    for (int i = 0; i < 5; i++)
        copy_rows_free(&r[i]);
    copy_rows_free(&rejects);
    copy_rows_free(&lost_rejects);
}

static void test_bad_part_fails_alone(void **state)
{
    (void)state;
    const char *tenant = "0a4c3e1d-6b7f-4f2a-9c1e-3d2b1a0f9e02";
    char d1[64], d2[64];
    leased_delivery("me", d1);
    leased_delivery("me", d2);
    store_fence f1 = {d1, "me", 30, FENCE_DELIVERY, 1};
    store_fence f2 = {d2, "me", 30, FENCE_DELIVERY, 1};
    copy_rows good = {0}, bad = {0};
    add_signal(&good, tenant, "fine", "2026-11-22T10:00:00Z");
    add_signal(&bad, tenant, "broken", "not a time");
    store_cursor cursor = {"partscheck", NULL, "items", "42"};
    store_part parts[2] = {{.rows = &good, .cursor = &cursor, .fence = &f1},
                           {.rows = &bad, .fence = &f2}};
    assert_int_equal(store_commit_parts(st, parts, 2), INGEST_EINVAL);
    assert_int_equal(parts[0].status, INGEST_OK);
    assert_int_equal(parts[0].inserted, 1);
    assert_int_equal(parts[1].status, INGEST_EINVAL);
    assert_int_equal(parts[1].inserted, 0);
    assert_int_equal(count("SELECT count(*) FROM signals WHERE tenant_id = $1", tenant), 1);
    assert_int_equal(count("SELECT count(*) FROM webhook_deliveries WHERE state = 'processed'"
                           " AND id = $1::uuid",
                           d1),
                     1);
    assert_int_equal(count("SELECT count(*) FROM webhook_deliveries WHERE state = 'processing'"
                           " AND id = $1::uuid",
                           d2),
                     1);
    sql_args a;
    assert_string_equal(
        sql(&a, "SELECT value FROM cursors WHERE provider = $1 AND stream = 'items'", "partscheck"),
        "42");
    copy_rows_free(&good);
    copy_rows_free(&bad);
}

static void test_empty_parts_need_no_database(void **state)
{
    (void)state;
    copy_rows none = {0};
    store_part parts[2] = {{.rows = &none, .status = -1, .inserted = 7},
                           {.rejects = &none, .status = -1, .inserted = 7}};
    assert_int_equal(store_commit_parts(st, parts, 2), INGEST_OK);
    assert_int_equal(parts[0].status, INGEST_OK);
    assert_int_equal(parts[1].inserted, 0);
}

/* Many parts with many rows each: the part tags survive large batches. */
static void test_large_batch_counts(void **state)
{
    (void)state;
    const char *tenant = "0a4c3e1d-6b7f-4f2a-9c1e-3d2b1a0f9e03";
    enum { PARTS = 40, ROWS = 250 };
    copy_rows *r = calloc(PARTS, sizeof *r);
    store_part *parts = calloc(PARTS, sizeof *parts);
    assert_non_null(r);
    assert_non_null(parts);
    for (int p = 0; p < PARTS; p++) {
        for (int i = 0; i < ROWS; i++) {
            char key[32];
            /* Odd parts repeat the rows of the part before them. */
            snprintf(key, sizeof key, "k-%d-%d", p - (p % 2), i);
            add_signal(&r[p], tenant, key, "2026-11-22T10:00:00Z");
        }
        parts[p].rows = &r[p];
    }
    assert_int_equal(store_commit_parts(st, parts, PARTS), INGEST_OK);
    for (int p = 0; p < PARTS; p++)
        assert_int_equal(parts[p].inserted, p % 2 ? 0 : ROWS);
    assert_int_equal(count("SELECT count(*) FROM signals WHERE tenant_id = $1", tenant),
                     PARTS / 2 * ROWS);
    for (int p = 0; p < PARTS; p++)
        copy_rows_free(&r[p]);
    free(r);
    free(parts);
}

static int setup(void **state)
{
    (void)state;
    st = store_new(db_url, 1, 2, "store_parts_check");
    for (int i = 0; st && !store_ready(st) && i < 200; i++)
        usleep(50 * 1000);
    return st && store_ready(st) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    store_free(st);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DATABASE_URL\n", argv[0]);
        return 2;
    }
    db_url = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_behave_as_if_alone),
        cmocka_unit_test(test_bad_part_fails_alone),
        cmocka_unit_test(test_empty_parts_need_no_database),
        cmocka_unit_test(test_large_batch_counts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
