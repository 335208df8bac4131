/* test_backoff.c — exponential backoff with jitter (backoff_delay_ms).
 *
 * The contract (backoff.h): the delay before retry r is base * 2^(r-1),
 * jittered by ±jitter using rand01 in [0, 1), then capped; never below 1 ms. */
#include "unit_helpers.h"

#include "backoff.h"

#define DRAWS 10000
#define MAX_RETRY 10

/* splitmix64: a small seeded PRNG so the draws are reproducible. */
static uint64_t rng_state;

static void rng_seed(uint64_t seed) { rng_state = seed; }

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1): the top 53 bits scaled by 2^-53. */
static double rng_rand01(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; }

/* The largest double below 1: "rand01 -> 1". */
static double almost_one(void) { return 1.0 - 0x1.0p-53; }

/* Small helpers instead of <math.h> (the unit executables do not link libm). */
static double abs_d(double x) { return x < 0 ? -x : x; }

static double pow2(int e)
{
    double v = 1.0;
    for (int i = 0; i < e; i++)
        v *= 2.0;
    return v;
}

/* floor / ceil for the non-negative values used here */
static int64_t floor_nn(double x) { return (int64_t)x; }
static int64_t ceil_nn(double x)
{
    int64_t t = (int64_t)x;
    return (double)t < x ? t + 1 : t;
}

/* base * 2^(retry-1) as a double (no overflow for the retries used here). */
static double nominal(const backoff_policy *p, int retry)
{
    return (double)p->base_ms * pow2(retry - 1);
}

static double min_d(double a, double b) { return a < b ? a : b; }

/* The documented bounds for retry r: the nominal delay is capped first, the
 * jitter spreads it (so retries at the cap still de-synchronise), and no
 * delay exceeds the cap. */
static int64_t lower_bound(const backoff_policy *p, int retry)
{
    double lo = min_d(nominal(p, retry), (double)p->cap_ms) * (1.0 - p->jitter);
    return lo < 1 ? 1 : floor_nn(lo);
}

static int64_t upper_bound(const backoff_policy *p, int retry)
{
    double hi =
        min_d(min_d(nominal(p, retry), (double)p->cap_ms) * (1.0 + p->jitter), (double)p->cap_ms);
    return hi < 1 ? 1 : ceil_nn(hi);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Draw DRAWS delays for `retry`; returns them sorted (caller frees). */
static int64_t *draw_sorted(const backoff_policy *p, int retry)
{
    int64_t *d = malloc(DRAWS * sizeof *d);
    assert_non_null(d);
    for (int i = 0; i < DRAWS; i++)
        d[i] = backoff_delay_ms(p, retry, rng_rand01());
    qsort(d, DRAWS, sizeof *d, cmp_i64);
    return d;
}

/* ---- default policy ---------------------------------------------------- */

static void test_default_policy_values(void **state)
{
    (void)state;
    assert_int_equal(backoff_default.base_ms, 1000);
    assert_int_equal(backoff_default.cap_ms, 60000);
    assert_true(backoff_default.jitter == 0.25);
}

/* Every draw for retries 1..10 lies in
 * [min(base*2^(r-1), cap)*0.75, min(min(base*2^(r-1), cap)*1.25, cap)], within [1, cap]. */
static void test_default_draws_within_bounds(void **state)
{
    (void)state;
    const backoff_policy *p = &backoff_default;
    rng_seed(0x1234abcdULL);
    int bad_retries = 0;
    for (int r = 1; r <= MAX_RETRY; r++) {
        int64_t lo = lower_bound(p, r), hi = upper_bound(p, r);
        int64_t seen_min = INT64_MAX, seen_max = INT64_MIN;
        long out_of_bounds = 0;
        double first_bad_u = -1;
        int64_t first_bad = 0;
        for (int i = 0; i < DRAWS; i++) {
            double u = rng_rand01();
            int64_t d = backoff_delay_ms(p, r, u);
            seen_min = d < seen_min ? d : seen_min;
            seen_max = d > seen_max ? d : seen_max;
            if (d < lo || d > hi || d > p->cap_ms || d < 1) {
                if (out_of_bounds++ == 0) {
                    first_bad_u = u;
                    first_bad = d;
                }
            }
        }
        if (out_of_bounds) {
            bad_retries++;
            print_error("retry %d: %ld of %d delays outside the documented [%lld, %lld] "
                        "(seen [%lld, %lld]; first: rand01=%.6f -> %lld ms)\n",
                        r, out_of_bounds, DRAWS, (long long)lo, (long long)hi, (long long)seen_min,
                        (long long)seen_max, first_bad_u, (long long)first_bad);
        }
    }
    if (bad_retries)
        fail();
}

/* The medians double per retry until the cap, then sit at the cap. */
static void test_default_medians_double_until_cap(void **state)
{
    (void)state;
    const backoff_policy *p = &backoff_default;
    rng_seed(0xfeedfaceULL);
    double medians[MAX_RETRY + 1];
    for (int r = 1; r <= MAX_RETRY; r++) {
        int64_t *d = draw_sorted(p, r);
        medians[r] = (double)(d[DRAWS / 2 - 1] + d[DRAWS / 2]) / 2.0;
        free(d);
        double expect = min_d(nominal(p, r), (double)p->cap_ms);
        if (abs_d(medians[r] - expect) > expect * 0.01) {
            print_error("retry %d: median %.1f ms, expected about %.0f ms\n", r, medians[r],
                        expect);
            fail();
        }
        if (r > 1) {
            if (nominal(p, r) < (double)p->cap_ms) {
                double ratio = medians[r] / medians[r - 1];
                if (abs_d(ratio - 2.0) > 0.04) {
                    print_error("retry %d: median grew x%.3f, expected x2\n", r, ratio);
                    fail();
                }
            } else {
                /* Half the spread lies above the cap and is clipped to it. */
                assert_true(abs_d(medians[r] - (double)p->cap_ms) <= p->cap_ms * 0.01);
            }
        }
    }
    assert_true(abs_d(medians[MAX_RETRY] - 60000.0) <= 600.0);
}

/* rand01 = 0 gives exactly the lower bound. */
static void test_default_rand_zero_gives_lower_bound(void **state)
{
    (void)state;
    const backoff_policy *p = &backoff_default;
    /* 750, 1500, ..., 24000 (r=6), then 0.75 * cap */
    const int64_t want[MAX_RETRY + 1] = {0,     750,   1500,  3000,  6000, 12000,
                                         24000, 45000, 45000, 45000, 45000};
    int bad = 0;
    for (int r = 1; r <= MAX_RETRY; r++) {
        assert_int_equal(want[r], lower_bound(p, r));
        int64_t got = backoff_delay_ms(p, r, 0.0);
        if (got != want[r]) {
            print_error("retry %d, rand01=0: got %lld ms, expected %lld ms "
                        "(min(1000*2^%d, 60000)*0.75)\n",
                        r, (long long)got, (long long)want[r], r - 1);
            bad++;
        }
    }
    if (bad)
        fail();
}

/* rand01 -> 1 gives exactly the upper bound. */
static void test_default_rand_almost_one_gives_upper_bound(void **state)
{
    (void)state;
    const backoff_policy *p = &backoff_default;
    /* 1250, 2500, ..., 40000 (r=6), then the cap */
    const int64_t want[MAX_RETRY + 1] = {0,     1250,  2500,  5000,  10000, 20000,
                                         40000, 60000, 60000, 60000, 60000};
    double u = almost_one();
    assert_true(u < 1.0);
    for (int r = 1; r <= MAX_RETRY; r++) {
        assert_int_equal(want[r], upper_bound(p, r));
        int64_t got = backoff_delay_ms(p, r, u);
        if (got != want[r]) {
            print_error("retry %d, rand01=1-2^-53: got %lld ms, expected %lld ms\n", r,
                        (long long)got, (long long)want[r]);
            fail();
        }
    }
    /* the midpoint is the nominal delay */
    for (int r = 1; r <= 6; r++)
        assert_int_equal(backoff_delay_ms(p, r, 0.5), (int64_t)nominal(p, r));
}

/* Retry 0 and negative retries behave like retry 1. */
static void test_retry_zero_or_negative_is_first_retry(void **state)
{
    (void)state;
    const backoff_policy *p = &backoff_default;
    const int retries[] = {0, -1, -2, -1000, INT_MIN};
    const double us[] = {0.0, 0.1, 0.25, 0.5, 0.75, 0.9, almost_one()};
    for (size_t i = 0; i < sizeof retries / sizeof retries[0]; i++) {
        for (size_t j = 0; j < sizeof us / sizeof us[0]; j++) {
            int64_t first = backoff_delay_ms(p, 1, us[j]);
            int64_t got = backoff_delay_ms(p, retries[i], us[j]);
            if (got != first) {
                print_error("retry %d, rand01=%.3f: %lld ms, retry 1 gives %lld ms\n", retries[i],
                            us[j], (long long)got, (long long)first);
                fail();
            }
        }
    }
    assert_int_equal(backoff_delay_ms(p, 0, 0.0), 750);
    assert_int_equal(backoff_delay_ms(p, -5, 0.5), 1000);
}

/* A custom policy without jitter gives exact doubling then the cap. */
static void test_custom_policy_no_jitter(void **state)
{
    (void)state;
    const backoff_policy p = {50, 500, 0.0};
    const int64_t want[] = {50, 100, 200, 400, 500, 500};
    const double us[] = {0.0, 0.3, 0.5, almost_one()};
    for (size_t j = 0; j < sizeof us / sizeof us[0]; j++) {
        for (int r = 1; r <= 6; r++) {
            int64_t got = backoff_delay_ms(&p, r, us[j]);
            if (got != want[r - 1]) {
                print_error("retry %d, rand01=%.3f: got %lld ms, expected %lld ms\n", r, us[j],
                            (long long)got, (long long)want[r - 1]);
                fail();
            }
        }
    }
}

/* Huge retry numbers neither hang nor overflow: the result is within [1, cap]. */
static void test_huge_retry_stays_capped(void **state)
{
    (void)state;
    const backoff_policy *p = &backoff_default;
    const int retries[] = {31, 63, 64, 1000, 1 << 20, INT_MAX};
    for (size_t i = 0; i < sizeof retries / sizeof retries[0]; i++) {
        int64_t mid = backoff_delay_ms(p, retries[i], 0.5);
        int64_t top = backoff_delay_ms(p, retries[i], almost_one());
        assert_int_equal(mid, p->cap_ms);
        assert_int_equal(top, p->cap_ms);
        int64_t low = backoff_delay_ms(p, retries[i], 0.0);
        assert_in_range(low, 1, p->cap_ms);
    }
}

/* Never below 1 ms, whatever the policy. */
static void test_never_below_one(void **state)
{
    (void)state;
    const backoff_policy tiny = {1, 10, 0.25};
    assert_int_equal(backoff_delay_ms(&tiny, 1, 0.0), 1); /* 0.75 ms -> 1 */
    const backoff_policy zero = {0, 10, 0.25};
    for (int r = 1; r <= 5; r++) {
        assert_int_equal(backoff_delay_ms(&zero, r, 0.0), 1);
        assert_int_equal(backoff_delay_ms(&zero, r, almost_one()), 1);
    }
    const backoff_policy full = {100, 1000, 1.0}; /* ±100 %: rand01 = 0 gives 0 */
    assert_int_equal(backoff_delay_ms(&full, 1, 0.0), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_policy_values),
        cmocka_unit_test(test_default_draws_within_bounds),
        cmocka_unit_test(test_default_medians_double_until_cap),
        cmocka_unit_test(test_default_rand_zero_gives_lower_bound),
        cmocka_unit_test(test_default_rand_almost_one_gives_upper_bound),
        cmocka_unit_test(test_retry_zero_or_negative_is_first_retry),
        cmocka_unit_test(test_custom_policy_no_jitter),
        cmocka_unit_test(test_huge_retry_stays_capped),
        cmocka_unit_test(test_never_below_one),
    };
    return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}
