/* test_scheduler.c — backoff and jitter of tick delays; schedule registration. */
#include "unit_helpers.h"

#include "instance.h"
#include "scheduler.h"
#include "util.h"

#define ONE_HOUR_MS 3600000u

/* The largest rand01 below 1. */
#define ALMOST_ONE 0.9999999999

/* Lowest and highest delay jitter allows around `base`. */
static void assert_delay_within(uint32_t delay, uint32_t base)
{
    double lo = base * 0.9, hi = base * 1.1;
    if (delay < 1 || (double)delay < lo - 1 || (double)delay > hi) {
        print_error("delay %u not within [%.0f, %.0f] around %u\n", delay, lo, hi, base);
        fail();
    }
}

/* ---- jitter --------------------------------------------------------------- */

static void test_jitter_extremes_and_midpoint(void **state)
{
    (void)state;
    assert_int_equal(scheduler_next_delay_ms(1000, 0, 0.0), 900);
    assert_int_equal(scheduler_next_delay_ms(1000, 0, 0.5), 1000);
    assert_int_equal(scheduler_next_delay_ms(1000, 0, 0.25), 950);
    assert_int_equal(scheduler_next_delay_ms(1000, 0, ALMOST_ONE), 1099);
}

static void test_jitter_within_ten_percent_over_many_draws(void **state)
{
    (void)state;
    const uint32_t interval = 60000;
    uint32_t lo = UINT32_MAX, hi = 0;
    for (int i = 0; i < 20000; i++) {
        double r = util_random01();
        assert_true(r >= 0.0 && r < 1.0);
        uint32_t d = scheduler_next_delay_ms(interval, 0, r);
        assert_in_range(d, 54000, 65999);
        if (d < lo)
            lo = d;
        if (d > hi)
            hi = d;
    }
    /* the draws actually spread over both sides of the interval */
    assert_true(lo < 55000);
    assert_true(hi > 65000);
}

static void test_jitter_is_monotonic_in_rand(void **state)
{
    (void)state;
    uint32_t prev = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t d = scheduler_next_delay_ms(10000, 0, i / 100.0);
        assert_true(d >= prev);
        prev = d;
    }
}

/* ---- backoff -------------------------------------------------------------- */

static void test_backoff_doubles_per_failure(void **state)
{
    (void)state;
    uint32_t expected = 1000;
    for (int failures = 0; failures <= 5; failures++) {
        assert_int_equal(scheduler_next_delay_ms(1000, failures, 0.5), expected);
        assert_int_equal(scheduler_next_delay_ms(1000, failures, 0.0), expected * 9 / 10);
        expected *= 2;
    }
}

static void test_backoff_capped_at_32x(void **state)
{
    (void)state;
    assert_int_equal(scheduler_next_delay_ms(1000, 5, 0.5), 32000);
    assert_int_equal(scheduler_next_delay_ms(1000, 6, 0.5), 32000);
    assert_int_equal(scheduler_next_delay_ms(1000, 50, 0.5), 32000);
    assert_int_equal(scheduler_next_delay_ms(1000, INT32_MAX, 0.5), 32000);
    for (int i = 0; i < 1000; i++)
        assert_delay_within(scheduler_next_delay_ms(1000, 40, util_random01()), 32000);
}

static void test_backoff_capped_at_one_hour(void **state)
{
    (void)state;
    /* 200 s * 32 = 6400 s: the one-hour cap wins, then jitter */
    assert_int_equal(scheduler_next_delay_ms(200000, 5, 0.5), ONE_HOUR_MS);
    assert_int_equal(scheduler_next_delay_ms(200000, 30, 0.0), ONE_HOUR_MS / 10 * 9);
    /* 1000 s doubled twice is 4000 s */
    assert_int_equal(scheduler_next_delay_ms(1000000, 2, 0.5), ONE_HOUR_MS);
    for (int i = 0; i < 1000; i++)
        assert_delay_within(scheduler_next_delay_ms(3000000, 3, util_random01()), ONE_HOUR_MS);
}

static void test_negative_failures_mean_no_backoff(void **state)
{
    (void)state;
    assert_int_equal(scheduler_next_delay_ms(1000, -3, 0.5), 1000);
}

static void test_long_interval_not_shortened_without_failures(void **state)
{
    (void)state;
    assert_int_equal(scheduler_next_delay_ms(86400000u, 0, 0.5), 86400000u);
}

static void test_delay_never_zero(void **state)
{
    (void)state;
    assert_int_equal(scheduler_next_delay_ms(1, 0, 0.0), 1);
    assert_int_equal(scheduler_next_delay_ms(1, 0, 0.49), 1);
    assert_int_equal(scheduler_next_delay_ms(0, 0, 0.0), 1);
    assert_int_equal(scheduler_next_delay_ms(0, 10, 0.5), 1);
    for (int i = 0; i < 1000; i++) {
        double r = util_random01();
        assert_true(scheduler_next_delay_ms(1, i % 8, r) >= 1);
        assert_true(scheduler_next_delay_ms(2, 0, r) >= 1);
    }
}

/* ---- registration (no event loop needed) ---------------------------------- */

static int noop_tick(ingest_run *run, void *state, void *arg)
{
    (void)run;
    (void)state;
    (void)arg;
    return INGEST_OK;
}

static void test_register_validates_and_rejects_duplicates(void **state)
{
    (void)state;
    instance *inst = calloc(1, sizeof *inst);
    assert_non_null(inst);
    assert_int_equal(scheduler_register(inst, "tick", 1000, noop_tick, NULL), INGEST_OK);
    assert_int_equal(scheduler_register(inst, "other", 5, noop_tick, NULL), INGEST_OK);
    assert_int_equal(scheduler_register(inst, "tick", 2000, noop_tick, NULL), INGEST_EINVAL);
    assert_int_equal(scheduler_register(inst, "zero", 0, noop_tick, NULL), INGEST_EINVAL);
    assert_int_equal(scheduler_register(inst, "nofn", 1000, NULL, NULL), INGEST_EINVAL);
    assert_int_equal(scheduler_register(inst, "", 1000, noop_tick, NULL), INGEST_EINVAL);
    assert_int_equal(scheduler_register(inst, NULL, 1000, noop_tick, NULL), INGEST_EINVAL);
    assert_non_null(inst->schedules);
    scheduler_stop(inst); /* nothing armed: harmless */
    scheduler_free(inst);
    assert_null(inst->schedules);
    free(inst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jitter_extremes_and_midpoint),
        cmocka_unit_test(test_jitter_within_ten_percent_over_many_draws),
        cmocka_unit_test(test_jitter_is_monotonic_in_rand),
        cmocka_unit_test(test_backoff_doubles_per_failure),
        cmocka_unit_test(test_backoff_capped_at_32x),
        cmocka_unit_test(test_backoff_capped_at_one_hour),
        cmocka_unit_test(test_negative_failures_mean_no_backoff),
        cmocka_unit_test(test_long_interval_not_shortened_without_failures),
        cmocka_unit_test(test_delay_never_zero),
        cmocka_unit_test(test_register_validates_and_rejects_duplicates),
    };
    return cmocka_run_group_tests_name("scheduler", tests, NULL, NULL);
}
