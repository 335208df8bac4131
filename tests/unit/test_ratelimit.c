/* test_ratelimit.c — the limiter with injected time: the sliding-window
 * guarantee, smoothing, vendor-reported quotas, Retry-After and keys.
 *
 * Time: MONO0 is an arbitrary monotonic origin, WALL0 the matching unix
 * epoch in ms; a test at "t ms" passes MONO0 + t and WALL0 + t. */
#include "unit_helpers.h"

#include <time.h>

#include "ratelimit.h"

#define MONO0 ((int64_t)5000000)
#define WALL0 ((int64_t)1700000000000)
#define MINUTE_MS ((int64_t)60000)
#define HOUR_MS ((int64_t)3600000)

static const ingest_rate_limit per_minute_600 = {600, 60};
static const ingest_rate_limit no_quota = {0, 0};

static int setup(void **state)
{
    *state = ratelimit_new(0.7);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    ratelimit_free(*state);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

/* A grant log of a simulated run. */
typedef struct grants {
    int64_t *t;
    size_t n, cap;
} grants;

static void grants_add(grants *g, int64_t t)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 1024;
        g->t = realloc(g->t, g->cap * sizeof *g->t);
        assert_non_null(g->t);
    }
    g->t[g->n++] = t;
}

/* `callers` greedy callers of one key from MONO0 for duration_ms: each asks,
 * and when told to wait asks again exactly when told. Grants are recorded
 * relative to MONO0, in time order. */
static grants simulate(ratelimit_registry *rl, const char *key, ingest_rate_limit quota,
                       int callers, int64_t duration_ms)
{
    grants g = {0};
    int64_t next[16];
    assert_true(callers <= 16);
    for (int i = 0; i < callers; i++)
        next[i] = MONO0;
    for (;;) {
        int who = 0;
        for (int i = 1; i < callers; i++)
            if (next[i] < next[who])
                who = i;
        int64_t now = next[who];
        if (now >= MONO0 + duration_ms)
            break;
        int64_t wait = ratelimit_reserve(rl, key, quota, now);
        assert_true(wait >= 0);
        if (wait == 0)
            grants_add(&g, now - MONO0);
        else
            next[who] = now + wait;
    }
    return g;
}

/* The largest number of grants inside any window [t, t + window_ms] (closed,
 * the stricter reading) of a sorted log. */
static size_t max_in_window(const grants *g, int64_t window_ms)
{
    size_t best = 0;
    for (size_t lo = 0, hi = 0; lo < g->n; lo++) {
        while (hi < g->n && g->t[hi] <= g->t[lo] + window_ms)
            hi++;
        if (hi - lo > best)
            best = hi - lo;
    }
    return best;
}

static size_t count_before(const grants *g, int64_t t)
{
    size_t n = 0;
    while (n < g->n && g->t[n] < t)
        n++;
    return n;
}

/* Header list literals */
#define H(n, v)                                                                                    \
    (ingest_header) { n, v }

static void observe(ratelimit_registry *rl, const char *key, const ingest_header *h, size_t n,
                    long status, int64_t t)
{
    ratelimit_observe(rl, key, h, n, status, MONO0 + t, WALL0 + t);
}

/* Take `n` slots at time t, asserting each is granted at once. */
static void take_now(ratelimit_registry *rl, const char *key, ingest_rate_limit q, int n, int64_t t)
{
    for (int i = 0; i < n; i++) {
        int64_t wait = ratelimit_reserve(rl, key, q, MONO0 + t);
        if (wait != 0)
            print_error("slot %d of %d at t=%lld: wait %lld\n", i + 1, n, (long long)t,
                        (long long)wait);
        assert_int_equal(wait, 0);
    }
}

/* ---- declared quota: the sliding-window guarantee ------------------------ */

static void test_sliding_window_never_exceeds_share(void **state)
{
    grants g = simulate(*state, "p/c", per_minute_600, 8, 3 * MINUTE_MS);
    size_t worst = max_in_window(&g, MINUTE_MS);
    if (worst > 420)
        print_error("%zu requests in one 60 s window\n", worst);
    assert_true(worst <= 420);
    /* ...and it still uses nearly all of the share */
    assert_true(count_before(&g, MINUTE_MS) >= 415);
    assert_true(g.n >= 3 * 410);
    free(g.t);
}

static void test_single_greedy_caller_throughput(void **state)
{
    grants g = simulate(*state, "p/c", per_minute_600, 1, 10 * MINUTE_MS);
    assert_true(max_in_window(&g, MINUTE_MS) <= 420);
    /* 10 minutes of 420/min, less the 1 % window guard */
    assert_true(g.n >= 10 * 410);
    assert_true(g.n <= 10 * 420);
    free(g.t);
}

static void test_wait_hint_is_exact(void **state)
{
    ratelimit_registry *rl = *state;
    int64_t now = MONO0;
    for (int i = 0; i < 2000; i++) {
        int64_t wait = ratelimit_reserve(rl, "p/c", per_minute_600, now);
        if (wait > 0) {
            now += wait;
            assert_int_equal(ratelimit_reserve(rl, "p/c", per_minute_600, now), 0);
        }
    }
}

/* A very large allowance uses the bounded-memory bucket; the guarantee holds. */
static void test_large_quota_without_log_keeps_guarantee(void **state)
{
    ingest_rate_limit per_day = {1000000, 86400};
    grants g = simulate(*state, "big/c", per_day, 2, 2 * 86400 * (int64_t)1000);
    assert_true(max_in_window(&g, 86400 * (int64_t)1000) <= 700000);
    assert_true(g.n >= 2 * 620000); /* ~90 % of the allowance */
    free(g.t);
}

/* ---- smoothing ----------------------------------------------------------- */

static void test_burst_is_a_tenth_of_the_allowance(void **state)
{
    ratelimit_registry *rl = *state;
    take_now(rl, "p/c", per_minute_600, 42, 0);
    int64_t wait = ratelimit_reserve(rl, "p/c", per_minute_600, MONO0);
    /* 420 per minute refill one token every 60000/420 = 142.9 ms */
    assert_in_range(wait, 142, 143);

    grants g = simulate(rl, "q/c", per_minute_600, 4, 2 * MINUTE_MS);
    size_t same_instant = 1, worst_instant = 1;
    for (size_t i = 1; i < g.n; i++) {
        same_instant = g.t[i] == g.t[i - 1] ? same_instant + 1 : 1;
        if (same_instant > worst_instant)
            worst_instant = same_instant;
    }
    assert_true(worst_instant <= 42);
    /* a second never holds more than the burst plus one second of refill */
    assert_true(max_in_window(&g, 999) <= 42 + 7);
    free(g.t);
}

static void test_small_quota_is_spread_evenly(void **state)
{
    ratelimit_registry *rl = *state;
    ingest_rate_limit five_per_minute = {5, 60}; /* allowance 3, burst 1 */
    grants g = simulate(rl, "p/c", five_per_minute, 3, 3 * MINUTE_MS);
    assert_true(g.n >= 8);
    for (size_t i = 1; i < g.n; i++)
        assert_true(g.t[i] - g.t[i - 1] >= 20000);
    assert_true(max_in_window(&g, MINUTE_MS) <= 3);
    free(g.t);
}

static void test_quota_change_takes_effect(void **state)
{
    ratelimit_registry *rl = *state;
    take_now(rl, "p/c", per_minute_600, 1, 0);
    ratelimit_stats st;
    assert_int_equal(ratelimit_get_stats(rl, "p/c", MONO0, &st), 0);
    assert_int_equal(st.allowance, 420);
    ingest_rate_limit smaller = {100, 60};
    ratelimit_reserve(rl, "p/c", smaller, MONO0 + 10000);
    assert_int_equal(ratelimit_get_stats(rl, "p/c", MONO0 + 10000, &st), 0);
    assert_int_equal(st.allowance, 70);
    assert_true(st.tokens <= 7);
}

/* ---- vendor-reported quota ------------------------------------------------ */

static void test_reported_quota_share_then_wait_for_reset(void **state)
{
    ratelimit_registry *rl = *state;
    char reset[32];
    snprintf(reset, sizeof reset, "%lld", (long long)((WALL0 + HOUR_MS) / 1000));
    ingest_header h[] = {H("X-RateLimit-Limit", "100"), H("X-RateLimit-Remaining", "100"),
                         H("X-RateLimit-Reset", reset)};
    observe(rl, "gh/c", h, 3, 200, 0);
    take_now(rl, "gh/c", no_quota, 70, 0);
    int64_t wait = ratelimit_reserve(rl, "gh/c", no_quota, MONO0 + 1000);
    assert_in_range(wait, HOUR_MS - 1000 - 1, HOUR_MS - 1000);
    /* at the reset the vendor's window is over and requests flow again */
    assert_int_equal(ratelimit_reserve(rl, "gh/c", no_quota, MONO0 + HOUR_MS), 0);
}

/* Jira sends the reset as an ISO 8601 time; its year is not a count of
 * seconds. */
static void test_reported_reset_as_iso_time(void **state)
{
    ratelimit_registry *rl = *state;
    char reset[32];
    time_t at = (time_t)((WALL0 + HOUR_MS) / 1000);
    strftime(reset, sizeof reset, "%Y-%m-%dT%H:%MZ", gmtime(&at));
    ingest_header h[] = {H("X-RateLimit-Limit", "100"), H("X-RateLimit-Remaining", "0"),
                         H("X-RateLimit-Reset", reset)};
    observe(rl, "jira/c", h, 3, 200, 0);
    int64_t wait = ratelimit_reserve(rl, "jira/c", no_quota, MONO0);
    /* WALL0 + 1 h cut to the minute: within a minute of an hour away */
    assert_in_range(wait, HOUR_MS - 60000, HOUR_MS);
    ingest_header bad[] = {H("X-RateLimit-Limit", "100"), H("X-RateLimit-Remaining", "0"),
                           H("X-RateLimit-Reset", "2024-13-99Tnope")};
    observe(rl, "jira/d", bad, 3, 200, 0);
    assert_in_range(ratelimit_reserve(rl, "jira/d", no_quota, MONO0), 0, 61000);
}

static void test_reported_remaining_drops_because_of_other_clients(void **state)
{
    ratelimit_registry *rl = *state;
    ingest_header h[] = {H("X-RateLimit-Limit", "100"), H("X-RateLimit-Remaining", "100"),
                         H("X-RateLimit-Reset", "3600")};
    observe(rl, "gh/c", h, 3, 200, 0);
    take_now(rl, "gh/c", no_quota, 10, 0);
    /* Another client spent 40 more: 50 left, so 70 - 50 = 20 of ours may go. */
    h[1].value = "50";
    observe(rl, "gh/c", h, 3, 200, 100);
    take_now(rl, "gh/c", no_quota, 20, 100);
    assert_true(ratelimit_reserve(rl, "gh/c", no_quota, MONO0 + 100) > 0);
}

static void test_late_report_does_not_undo_local_count(void **state)
{
    ratelimit_registry *rl = *state;
    ingest_header h[] = {H("X-RateLimit-Limit", "100"), H("X-RateLimit-Remaining", "100"),
                         H("X-RateLimit-Reset", "3600")};
    observe(rl, "gh/c", h, 3, 200, 0);
    take_now(rl, "gh/c", no_quota, 10, 0);
    /* the answer to the first of those 10 arrives: it only knows of itself */
    h[1].value = "99";
    observe(rl, "gh/c", h, 3, 200, 50);
    take_now(rl, "gh/c", no_quota, 60, 50);
    assert_true(ratelimit_reserve(rl, "gh/c", no_quota, MONO0 + 50) > 0);
}

static void test_new_vendor_window_resets_the_count(void **state)
{
    ratelimit_registry *rl = *state;
    ingest_header h[] = {H("X-RateLimit-Limit", "10"), H("X-RateLimit-Remaining", "3"),
                         H("X-RateLimit-Reset", "60")};
    observe(rl, "gh/c", h, 3, 200, 0);
    assert_true(ratelimit_reserve(rl, "gh/c", no_quota, MONO0) > 0);
    h[1].value = "10";
    observe(rl, "gh/c", h, 3, 200, MINUTE_MS); /* reset now 60 s further on */
    take_now(rl, "gh/c", no_quota, 7, MINUTE_MS);
    assert_true(ratelimit_reserve(rl, "gh/c", no_quota, MONO0 + MINUTE_MS) > 0);
}

static void test_reported_and_declared_quota_both_apply(void **state)
{
    ratelimit_registry *rl = *state;
    ingest_rate_limit github = {5000, 3600}; /* allowance 3500, burst 350 */
    ingest_header h[] = {H("X-RateLimit-Limit", "5000"), H("X-RateLimit-Remaining", "1550"),
                         H("X-RateLimit-Reset", "1800")};
    observe(rl, "gh/c", h, 3, 200, 0);
    /* 3500 - (5000 - 1550) = 50 left before the reset, fewer than the burst */
    take_now(rl, "gh/c", github, 50, 0);
    int64_t wait = ratelimit_reserve(rl, "gh/c", github, MONO0);
    assert_in_range(wait, 1800000 - 1, 1800000);
}

static void test_epoch_reset_and_delta_reset(void **state)
{
    ratelimit_registry *rl = *state;
    char epoch[32];
    snprintf(epoch, sizeof epoch, "%lld", (long long)(WALL0 / 1000 + 90));
    ingest_header github[] = {H("X-RateLimit-Limit", "60"), H("X-RateLimit-Remaining", "0"),
                              H("X-RateLimit-Reset", epoch)};
    ingest_header delta[] = {H("X-RateLimit-Limit", "60"), H("X-RateLimit-Remaining", "0"),
                             H("X-RateLimit-Reset", "90")};
    observe(rl, "epoch/c", github, 3, 200, 0);
    observe(rl, "delta/c", delta, 3, 200, 0);
    assert_in_range(ratelimit_reserve(rl, "epoch/c", no_quota, MONO0), 89000, 90000);
    assert_in_range(ratelimit_reserve(rl, "delta/c", no_quota, MONO0), 89000, 90000);
    ratelimit_stats st;
    assert_int_equal(ratelimit_get_stats(rl, "epoch/c", MONO0, &st), 0);
    assert_int_equal(st.header_limit, 60);
    assert_int_equal(st.header_remaining, 0);
    assert_in_range(st.header_reset_in_ms, 89000, 90000);
}

static void test_ietf_ratelimit_fields(void **state)
{
    ratelimit_registry *rl = *state;
    ingest_header separate[] = {H("RateLimit-Limit", "10"), H("RateLimit-Remaining", "3"),
                                H("RateLimit-Reset", "30")};
    observe(rl, "a/c", separate, 3, 200, 0);
    assert_in_range(ratelimit_reserve(rl, "a/c", no_quota, MONO0), 29000, 30000);

    ingest_header combined[] = {H("RateLimit", "limit=10, remaining=10, reset=30")};
    observe(rl, "b/c", combined, 1, 200, 0);
    take_now(rl, "b/c", no_quota, 7, 0);
    assert_true(ratelimit_reserve(rl, "b/c", no_quota, MONO0) > 0);

    ingest_header draft8[] = {H("RateLimit-Policy", "\"default\";q=10;w=60"),
                              H("RateLimit", "\"default\";r=4;t=20")};
    observe(rl, "c/c", draft8, 2, 200, 0);
    take_now(rl, "c/c", no_quota, 1, 0); /* 7 - (10 - 4) = 1 */
    assert_in_range(ratelimit_reserve(rl, "c/c", no_quota, MONO0), 19000, 20000);
}

/* ---- Retry-After ----------------------------------------------------------- */

static void test_retry_after_delta_blocks_key(void **state)
{
    ratelimit_registry *rl = *state;
    ingest_header h[] = {H("retry-after", "30")};
    observe(rl, "p/c", h, 1, 429, 0);
    assert_int_equal(ratelimit_reserve(rl, "p/c", per_minute_600, MONO0), 30000);
    assert_int_equal(ratelimit_reserve(rl, "p/c", per_minute_600, MONO0 + 29999), 1);
    assert_int_equal(ratelimit_reserve(rl, "p/c", per_minute_600, MONO0 + 30000), 0);
    ratelimit_stats st;
    assert_int_equal(ratelimit_get_stats(rl, "p/c", MONO0 + 30000, &st), 0);
    assert_int_equal(st.blocked_for_ms, 0);
}

static void test_retry_after_http_date(void **state)
{
    ratelimit_registry *rl = *state;
    struct tm when = {
        .tm_year = 2015 - 1900, .tm_mon = 9, .tm_mday = 21, .tm_hour = 7, .tm_min = 28};
    int64_t date_ms = (int64_t)timegm(&when) * 1000;
    int64_t wall = date_ms - 120000; /* two minutes before the named date */
    ingest_header h[] = {H("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")};
    ratelimit_observe(rl, "p/c", h, 1, 503, MONO0, wall);
    assert_int_equal(ratelimit_reserve(rl, "p/c", no_quota, MONO0), 120000);

    assert_int_equal(ratelimit_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", wall), 120000);
    assert_int_equal(ratelimit_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date_ms + 5), 0);
}

static void test_retry_after_parsing(void **state)
{
    (void)state;
    assert_int_equal(ratelimit_parse_retry_after("120", 0), 120000);
    assert_int_equal(ratelimit_parse_retry_after(" 5 ", 0), 5000);
    assert_int_equal(ratelimit_parse_retry_after("0", 0), 0);
    assert_int_equal(ratelimit_parse_retry_after("-1", 0), -1);
    assert_int_equal(ratelimit_parse_retry_after("12abc", 0), -1);
    assert_int_equal(ratelimit_parse_retry_after("soon", 0), -1);
    assert_int_equal(ratelimit_parse_retry_after("", 0), -1);
    assert_int_equal(ratelimit_parse_retry_after(NULL, 0), -1);
}

static void test_retry_after_on_success_is_ignored(void **state)
{
    ratelimit_registry *rl = *state;
    ingest_header h[] = {H("Retry-After", "30")};
    observe(rl, "p/c", h, 1, 200, 0);
    assert_int_equal(ratelimit_reserve(rl, "p/c", no_quota, MONO0), 0);
}

/* ---- keys and stats -------------------------------------------------------- */

static void test_keys_are_independent(void **state)
{
    ratelimit_registry *rl = *state;
    ingest_header h[] = {H("Retry-After", "60")};
    observe(rl, "github/conn-1", h, 1, 429, 0);
    assert_true(ratelimit_reserve(rl, "github/conn-1", per_minute_600, MONO0) > 0);
    assert_int_equal(ratelimit_reserve(rl, "github/conn-2", per_minute_600, MONO0), 0);
    /* the burst of one key does not spend another's */
    take_now(rl, "slack/conn-1", per_minute_600, 42, 0);
    take_now(rl, "slack/conn-2", per_minute_600, 42, 0);
    assert_true(ratelimit_reserve(rl, "slack/conn-1", per_minute_600, MONO0) > 0);
}

static void test_no_quota_and_no_headers_never_waits(void **state)
{
    ratelimit_registry *rl = *state;
    take_now(rl, "free/c", no_quota, 10000, 0);
}

static void test_stats(void **state)
{
    ratelimit_registry *rl = *state;
    ratelimit_stats st;
    assert_int_equal(ratelimit_get_stats(rl, "unknown", MONO0, &st), -1);
    assert_int_equal(st.header_limit, -1);
    take_now(rl, "p/c", per_minute_600, 12, 0);
    ratelimit_record_wait(rl, "p/c", 250);
    ratelimit_record_wait(rl, "p/c", 750);
    assert_int_equal(ratelimit_get_stats(rl, "p/c", MONO0, &st), 0);
    assert_int_equal(st.granted, 12);
    assert_int_equal(st.in_window, 12);
    assert_int_equal(st.waits, 2);
    assert_int_equal(st.wait_ms_total, 1000);
    assert_true(st.tokens > 29.9 && st.tokens < 30.1);
    assert_int_equal(st.header_limit, -1);
    /* an hour later the log is empty and the bucket full */
    assert_int_equal(ratelimit_get_stats(rl, "p/c", MONO0 + HOUR_MS, &st), 0);
    assert_int_equal(st.in_window, 0);
    assert_true(st.tokens > 41.9);
}

static void test_share_is_validated(void **state)
{
    (void)state;
    ratelimit_registry *rl = ratelimit_new(1.5);
    assert_true(ratelimit_share(rl) > 0.69 && ratelimit_share(rl) < 0.71);
    ratelimit_free(rl);
    rl = ratelimit_new(0.5);
    take_now(rl, "p/c", per_minute_600, 30, 0); /* allowance 300, burst 30 */
    assert_true(ratelimit_reserve(rl, "p/c", per_minute_600, MONO0) > 0);
    ratelimit_free(rl);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_sliding_window_never_exceeds_share),
        T(test_single_greedy_caller_throughput),
        T(test_wait_hint_is_exact),
        T(test_large_quota_without_log_keeps_guarantee),
        T(test_burst_is_a_tenth_of_the_allowance),
        T(test_small_quota_is_spread_evenly),
        T(test_quota_change_takes_effect),
        T(test_reported_quota_share_then_wait_for_reset),
        T(test_reported_reset_as_iso_time),
        T(test_reported_remaining_drops_because_of_other_clients),
        T(test_late_report_does_not_undo_local_count),
        T(test_new_vendor_window_resets_the_count),
        T(test_reported_and_declared_quota_both_apply),
        T(test_epoch_reset_and_delta_reset),
        T(test_ietf_ratelimit_fields),
        T(test_retry_after_delta_blocks_key),
        T(test_retry_after_http_date),
        T(test_retry_after_parsing),
        T(test_retry_after_on_success_is_ignored),
        T(test_keys_are_independent),
        T(test_no_quota_and_no_headers_never_waits),
        T(test_stats),
        T(test_share_is_validated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
