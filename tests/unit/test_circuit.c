/* test_circuit.c — the per-provider circuit breaker (circuit.h).
 *
 * Time is injected, so every transition happens at an exact millisecond:
 * threshold 3 and cooldown 1000 ms unless a test says otherwise. */
#include "unit_helpers.h"

#include <pthread.h>

#include "circuit.h"

#define THRESHOLD 3
#define COOLDOWN 1000

/* A circuit opened by THRESHOLD failures at time `t`. */
static circuit *opened_at(int64_t t)
{
    circuit *c = circuit_new(THRESHOLD, COOLDOWN);
    assert_non_null(c);
    for (int i = 0; i < THRESHOLD; i++)
        circuit_record(c, 0, t);
    assert_int_equal(circuit_get_state(c, t), CIRCUIT_OPEN);
    return c;
}

static void test_new_and_names(void **state)
{
    (void)state;
    circuit *c = circuit_new(THRESHOLD, COOLDOWN);
    assert_non_null(c);
    assert_int_equal(circuit_get_state(c, 0), CIRCUIT_CLOSED);
    assert_int_equal(circuit_consecutive_failures(c), 0);
    int64_t retry = -5;
    assert_int_equal(circuit_allow(c, 0, &retry), 1);
    assert_int_equal(retry, 0);
    circuit_free(c);
    circuit_free(NULL);

    assert_string_equal(circuit_state_name(CIRCUIT_CLOSED), "closed");
    assert_string_equal(circuit_state_name(CIRCUIT_OPEN), "open");
    assert_string_equal(circuit_state_name(CIRCUIT_HALF_OPEN), "half_open");
    assert_string_equal(circuit_state_name((circuit_state)42), "unknown");
}

static void test_rejects_bad_arguments(void **state)
{
    (void)state;
    assert_null(circuit_new(0, COOLDOWN));
    assert_null(circuit_new(-1, COOLDOWN));
    assert_null(circuit_new(THRESHOLD, -1));
}

static void test_opens_after_threshold_consecutive_failures(void **state)
{
    (void)state;
    circuit *c = circuit_new(THRESHOLD, COOLDOWN);
    circuit_record(c, 0, 10);
    circuit_record(c, 0, 20);
    assert_int_equal(circuit_get_state(c, 20), CIRCUIT_CLOSED);
    assert_int_equal(circuit_consecutive_failures(c), 2);
    assert_int_equal(circuit_allow(c, 25, NULL), 1);
    circuit_record(c, 0, 30);
    assert_int_equal(circuit_get_state(c, 30), CIRCUIT_OPEN);
    assert_int_equal(circuit_consecutive_failures(c), 3);

    /* deferred, told exactly how long until the probe */
    int64_t retry = 0;
    assert_int_equal(circuit_allow(c, 530, &retry), 0);
    assert_int_equal(retry, 500);
    assert_int_equal(circuit_allow(c, 1029, &retry), 0);
    assert_int_equal(retry, 1);
    circuit_free(c);
}

static void test_success_resets_count_in_closed(void **state)
{
    (void)state;
    circuit *c = circuit_new(THRESHOLD, COOLDOWN);
    circuit_record(c, 0, 1);
    circuit_record(c, 0, 2);
    circuit_record(c, 1, 3);
    assert_int_equal(circuit_consecutive_failures(c), 0);
    /* two more failures: not three in a row, still closed */
    circuit_record(c, 0, 4);
    circuit_record(c, 0, 5);
    assert_int_equal(circuit_get_state(c, 5), CIRCUIT_CLOSED);
    assert_int_equal(circuit_allow(c, 6, NULL), 1);
    circuit_free(c);
}

static void test_full_cycle_open_half_open_closed(void **state)
{
    (void)state;
    circuit *c = opened_at(100);
    int64_t retry = 0;
    assert_int_equal(circuit_get_state(c, 1099), CIRCUIT_OPEN);
    assert_int_equal(circuit_allow(c, 1099, &retry), 0);
    assert_int_equal(retry, 1);
    /* cooldown over: reported half-open before anyone asks */
    assert_int_equal(circuit_get_state(c, 1100), CIRCUIT_HALF_OPEN);
    /* the first caller gets the probe, the next is deferred */
    assert_int_equal(circuit_allow(c, 1100, &retry), 1);
    assert_int_equal(retry, 0);
    assert_int_equal(circuit_allow(c, 1100, &retry), 0);
    assert_int_equal(retry, COOLDOWN);
    assert_int_equal(circuit_allow(c, 1300, &retry), 0);
    assert_int_equal(retry, 800);
    assert_int_equal(circuit_get_state(c, 1300), CIRCUIT_HALF_OPEN);
    /* the probe succeeds: closed, counter reset, everyone allowed */
    circuit_record(c, 1, 1400);
    assert_int_equal(circuit_get_state(c, 1400), CIRCUIT_CLOSED);
    assert_int_equal(circuit_consecutive_failures(c), 0);
    assert_int_equal(circuit_allow(c, 1401, NULL), 1);
    assert_int_equal(circuit_allow(c, 1401, NULL), 1);
    circuit_free(c);
}

static void test_probe_failure_reopens_for_another_cooldown(void **state)
{
    (void)state;
    circuit *c = opened_at(100);
    assert_int_equal(circuit_allow(c, 1100, NULL), 1);
    circuit_record(c, 0, 1200);
    assert_int_equal(circuit_get_state(c, 1200), CIRCUIT_OPEN);
    assert_int_equal(circuit_consecutive_failures(c), THRESHOLD + 1);
    int64_t retry = 0;
    /* the new cooldown runs from the probe's failure, not the first opening */
    assert_int_equal(circuit_allow(c, 1200, &retry), 0);
    assert_int_equal(retry, COOLDOWN);
    assert_int_equal(circuit_allow(c, 2199, &retry), 0);
    assert_int_equal(retry, 1);
    assert_int_equal(circuit_allow(c, 2200, &retry), 1);
    assert_int_equal(circuit_get_state(c, 2200), CIRCUIT_HALF_OPEN);
    circuit_free(c);
}

static void test_unreported_probe_permit_expires(void **state)
{
    (void)state;
    circuit *c = opened_at(100);
    assert_int_equal(circuit_allow(c, 1100, NULL), 1); /* this probe never reports */
    int64_t retry = 0;
    assert_int_equal(circuit_allow(c, 2099, &retry), 0);
    assert_int_equal(retry, 1);
    /* one cooldown after the grant, the next caller gets a fresh probe... */
    assert_int_equal(circuit_allow(c, 2100, &retry), 1);
    assert_int_equal(retry, 0);
    /* ...and it is again the only one */
    assert_int_equal(circuit_allow(c, 2100, &retry), 0);
    assert_int_equal(retry, COOLDOWN);
    circuit_record(c, 1, 2150);
    assert_int_equal(circuit_get_state(c, 2150), CIRCUIT_CLOSED);
    circuit_free(c);
}

/* Jobs that started before the circuit opened and report while it is open
 * change the count but neither close it nor extend the cooldown. */
static void test_stragglers_while_open_do_not_move_state(void **state)
{
    (void)state;
    circuit *c = opened_at(100);
    circuit_record(c, 1, 500);
    assert_int_equal(circuit_get_state(c, 500), CIRCUIT_OPEN);
    assert_int_equal(circuit_consecutive_failures(c), 0);
    assert_int_equal(circuit_allow(c, 600, NULL), 0);
    circuit_record(c, 0, 900);
    assert_int_equal(circuit_consecutive_failures(c), 1);
    assert_int_equal(circuit_allow(c, 1100, NULL), 1); /* cooldown still from 100 */
    circuit_free(c);
}

static void test_threshold_one_and_zero_cooldown(void **state)
{
    (void)state;
    circuit *c = circuit_new(1, 0);
    circuit_record(c, 0, 50);
    /* a zero cooldown is over at once: half-open, one probe */
    assert_int_equal(circuit_get_state(c, 50), CIRCUIT_HALF_OPEN);
    assert_int_equal(circuit_allow(c, 50, NULL), 1);
    circuit_record(c, 0, 51);
    assert_int_equal(circuit_allow(c, 51, NULL), 1);
    circuit_record(c, 1, 52);
    assert_int_equal(circuit_get_state(c, 52), CIRCUIT_CLOSED);
    circuit_free(c);
}

/* ---- concurrency -------------------------------------------------------- */

#define THREADS 8
#define ROUNDS 200

typedef struct race {
    circuit *c;
    pthread_barrier_t *start;
    int64_t now;
    int granted;
} race;

static void *race_allow(void *arg)
{
    race *r = arg;
    pthread_barrier_wait(r->start);
    r->granted = circuit_allow(r->c, r->now, NULL);
    return NULL;
}

/* Run THREADS callers of circuit_allow at one instant; how many got 1. */
static int race_once(circuit *c, int64_t now)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    pthread_t tid[THREADS];
    race r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (race){c, &start, now, -1};
        assert_int_equal(pthread_create(&tid[i], NULL, race_allow, &r[i]), 0);
    }
    int granted = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(tid[i], NULL);
        granted += r[i].granted;
    }
    pthread_barrier_destroy(&start);
    return granted;
}

static void test_single_probe_under_concurrency(void **state)
{
    (void)state;
    for (int round = 0; round < ROUNDS; round++) {
        circuit *c = opened_at(0);
        int granted = race_once(c, COOLDOWN);
        if (granted != 1) {
            print_error("round %d: %d of %d callers got the probe\n", round, granted, THREADS);
            fail();
        }
        circuit_free(c);
    }
}

typedef struct hammer {
    circuit *c;
    int n;
} hammer;

static void *record_failures(void *arg)
{
    hammer *h = arg;
    for (int i = 0; i < h->n; i++)
        circuit_record(h->c, 0, i);
    return NULL;
}

/* Concurrent failures are all counted (the counter is under the mutex). */
static void test_concurrent_records_are_all_counted(void **state)
{
    (void)state;
    circuit *c = circuit_new(1000000, COOLDOWN);
    pthread_t tid[THREADS];
    hammer h = {c, 5000};
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&tid[i], NULL, record_failures, &h), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(tid[i], NULL);
    assert_int_equal(circuit_consecutive_failures(c), THREADS * 5000);
    assert_int_equal(circuit_get_state(c, 0), CIRCUIT_CLOSED);
    circuit_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_and_names),
        cmocka_unit_test(test_rejects_bad_arguments),
        cmocka_unit_test(test_opens_after_threshold_consecutive_failures),
        cmocka_unit_test(test_success_resets_count_in_closed),
        cmocka_unit_test(test_full_cycle_open_half_open_closed),
        cmocka_unit_test(test_probe_failure_reopens_for_another_cooldown),
        cmocka_unit_test(test_unreported_probe_permit_expires),
        cmocka_unit_test(test_stragglers_while_open_do_not_move_state),
        cmocka_unit_test(test_threshold_one_and_zero_cooldown),
        cmocka_unit_test(test_single_probe_under_concurrency),
        cmocka_unit_test(test_concurrent_records_are_all_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
