/* test_cron.c — cron expression parsing and next fire times (cron.h).
 *
 * Expected times were worked out by hand from the calendar (2024-01-01 was a
 * Monday, 2024 and 2028 are leap years, 2100 is not) and are written as UTC
 * wall-clock strings so a failure reads as dates, not microseconds. */
#include "unit_helpers.h"

#include <time.h>

#include "cron.h"

#define US INT64_C(1000000)

/* "YYYY-MM-DD HH:MM[:SS]" (UTC) as unix microseconds. */
static int64_t at(const char *text)
{
    struct tm tm = {0};
    int sec = 0;
    int n = sscanf(text, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &sec);
    assert_true(n >= 5);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_sec = sec;
    return (int64_t)timegm(&tm) * US;
}

/* Unix microseconds as "YYYY-MM-DD HH:MM:SS" (UTC), or "-1". */
static const char *show(int64_t us, char buf[64])
{
    if (us == -1)
        return "-1";
    time_t t = (time_t)(us / US);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, 64, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

/* Parse `expr` or fail the test, printing the parser's message. */
static cron_expr *must_parse(const char *expr)
{
    char err[256];
    cron_expr *c = cron_parse(expr, err, sizeof err);
    if (!c) {
        print_error("cron_parse(\"%s\") failed: %s\n", expr, err);
        fail();
    }
    return c;
}

/* The next fire time of `expr` after `after` is `want` ("-1" for none). */
#define expect_next(expr, after, want) check_next((expr), at(after), (want), __LINE__)

static void check_next(const char *expr, int64_t after_us, const char *want, int line)
{
    cron_expr *c = must_parse(expr);
    char buf[64], abuf[64];
    const char *got = show(cron_next(c, after_us), buf);
    cron_free(c);
    if (strcmp(got, want) != 0) {
        print_error("line %d: \"%s\" after %s: want %s, got %s\n", line, expr, show(after_us, abuf),
                    want, got);
        fail();
    }
}

/* Parsing `expr` fails with exactly `want` as the message. */
static void expect_error(const char *expr, const char *want)
{
    char err[256] = "untouched";
    cron_expr *c = cron_parse(expr, err, sizeof err);
    if (c) {
        print_error("cron_parse(\"%s\") unexpectedly succeeded\n", expr);
        cron_free(c);
        fail();
    }
    if (strcmp(err, want) != 0) {
        print_error("cron_parse(\"%s\"):\n  want: %s\n  got:  %s\n", expr, want, err);
        fail();
    }
}

/* ---- syntax elements ---------------------------------------------------- */

static void test_star_is_every_minute_strictly_after(void **state)
{
    (void)state;
    expect_next("* * * * *", "2024-01-01 00:00:00", "2024-01-01 00:01:00");
    expect_next("* * * * *", "2024-01-01 00:00:30", "2024-01-01 00:01:00");
    expect_next("* * * * *", "2024-01-01 00:00:59", "2024-01-01 00:01:00");
    /* one microsecond before a minute boundary fires on that boundary */
    cron_expr *c = must_parse("* * * * *");
    assert_int_equal(cron_next(c, at("2024-01-01 00:01") - 1), at("2024-01-01 00:01"));
    cron_free(c);
}

static void test_epoch_known_answers(void **state)
{
    (void)state;
    cron_expr *c = must_parse("0 0 1 1 *");
    /* 1971-01-01 00:00 UTC = 365 days after the epoch */
    assert_int_equal(cron_next(c, 0), INT64_C(365) * 86400 * US);
    cron_free(c);
    c = must_parse("* * * * *");
    assert_int_equal(cron_next(c, -1), 0);              /* just before the epoch */
    assert_int_equal(cron_next(c, -90 * US), -60 * US); /* 1969-12-31 23:58:30 */
    assert_int_equal(cron_next(c, 1704067200 * US), (1704067200 + 60) * US); /* 2024-01-01 */
    cron_free(c);
}

static void test_single_numbers(void **state)
{
    (void)state;
    expect_next("30 14 * * *", "2024-03-10 14:29:59", "2024-03-10 14:30:00");
    expect_next("30 14 * * *", "2024-03-10 14:30:00", "2024-03-11 14:30:00");
    expect_next("0 0 15 * *", "2024-03-10 00:00", "2024-03-15 00:00:00");
    expect_next("0 0 1 7 *", "2024-03-10 00:00", "2024-07-01 00:00:00");
}

static void test_ranges(void **state)
{
    (void)state;
    expect_next("0 9-17 * * *", "2024-03-10 12:15", "2024-03-10 13:00:00");
    expect_next("0 9-17 * * *", "2024-03-10 17:00", "2024-03-11 09:00:00");
    expect_next("0 9-17 * * *", "2024-03-10 03:00", "2024-03-10 09:00:00");
    expect_next("58-59 * * * *", "2024-03-10 03:58", "2024-03-10 03:59:00");
    expect_next("58-59 * * * *", "2024-03-10 03:59", "2024-03-10 04:58:00");
}

static void test_lists(void **state)
{
    (void)state;
    expect_next("5,20,45 * * * *", "2024-03-10 10:20", "2024-03-10 10:45:00");
    expect_next("5,20,45 * * * *", "2024-03-10 10:45", "2024-03-10 11:05:00");
    /* lists of ranges and steps */
    expect_next("0 0-5,12,20-23/2 * * *", "2024-03-10 05:00", "2024-03-10 12:00:00");
    expect_next("0 0-5,12,20-23/2 * * *", "2024-03-10 12:00", "2024-03-10 20:00:00");
    expect_next("0 0-5,12,20-23/2 * * *", "2024-03-10 20:00", "2024-03-10 22:00:00");
    expect_next("0 0-5,12,20-23/2 * * *", "2024-03-10 22:00", "2024-03-11 00:00:00");
}

static void test_star_steps(void **state)
{
    (void)state;
    /* chaining cron_next walks the quarter hours */
    cron_expr *c = must_parse("*/15 * * * *");
    const char *want[] = {"2024-03-10 10:00:00", "2024-03-10 10:15:00", "2024-03-10 10:30:00",
                          "2024-03-10 10:45:00", "2024-03-10 11:00:00"};
    int64_t t = at("2024-03-10 09:46");
    char buf[64];
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        t = cron_next(c, t);
        assert_string_equal(show(t, buf), want[i]);
    }
    cron_free(c);
    /* steps count from the field's minimum: days 1, 11, 21, 31 */
    expect_next("0 0 */10 * *", "2024-03-21 00:00", "2024-03-31 00:00:00");
    expect_next("0 0 */10 * *", "2024-04-21 00:00", "2024-05-01 00:00:00");
    expect_next("*/1 * * * *", "2024-03-10 10:07", "2024-03-10 10:08:00");
}

static void test_range_steps(void **state)
{
    (void)state;
    expect_next("10-30/10 * * * *", "2024-03-10 10:20", "2024-03-10 10:30:00");
    expect_next("10-30/10 * * * *", "2024-03-10 10:30", "2024-03-10 11:10:00");
    /* hours 1, 7, 13, 19 */
    expect_next("0 1-23/6 * * *", "2024-01-01 19:00", "2024-01-02 01:00:00");
    expect_next("0 1-23/6 * * *", "2024-01-01 07:30", "2024-01-01 13:00:00");
    /* cronie's a/n: 5/20 is 5-59/20 = 5, 25, 45 */
    expect_next("5/20 * * * *", "2024-03-10 10:25", "2024-03-10 10:45:00");
    expect_next("5/20 * * * *", "2024-03-10 10:45", "2024-03-10 11:05:00");
}

/* ---- names and Sunday --------------------------------------------------- */

static void test_month_names(void **state)
{
    (void)state;
    expect_next("0 0 1 jun,DEC *", "2024-06-01 00:00", "2024-12-01 00:00:00");
    expect_next("0 0 1 Jun,dEc *", "2024-12-01 00:00", "2025-06-01 00:00:00");
    /* names in a stepped range: MAR-MAY/2 is March and May */
    expect_next("0 0 1 MAR-may/2 *", "2024-03-01 00:00", "2024-05-01 00:00:00");
    expect_next("0 0 1 MAR-may/2 *", "2024-05-01 00:00", "2025-03-01 00:00:00");
}

static void test_weekday_names(void **state)
{
    (void)state;
    /* 2024-03-08 is a Friday; the next weekday is Monday 03-11 */
    expect_next("0 8 * * MON-FRI", "2024-03-08 08:00", "2024-03-11 08:00:00");
    expect_next("0 8 * * mon-fri", "2024-03-11 08:00", "2024-03-12 08:00:00");
    expect_next("0 8 * * Tue,Thu", "2024-03-08 08:00", "2024-03-12 08:00:00");
    expect_next("0 8 * * sat", "2024-03-08 08:00", "2024-03-09 08:00:00");
}

static void test_sunday_is_0_and_7(void **state)
{
    (void)state;
    /* 2024-03-10 is a Sunday */
    expect_next("0 0 * * 0", "2024-03-08 12:00", "2024-03-10 00:00:00");
    expect_next("0 0 * * 7", "2024-03-08 12:00", "2024-03-10 00:00:00");
    expect_next("0 0 * * SUN", "2024-03-08 12:00", "2024-03-10 00:00:00");
    /* 5-7 is Friday, Saturday, Sunday */
    expect_next("0 0 * * 5-7", "2024-03-10 00:00", "2024-03-15 00:00:00");
    expect_next("0 0 * * 5-7", "2024-03-09 00:00", "2024-03-10 00:00:00");
    /* 7 in a list next to other days */
    expect_next("0 0 * * 3,7", "2024-03-06 00:00", "2024-03-10 00:00:00");
}

/* ---- day-of-month / day-of-week ----------------------------------------- */

static void test_dom_dow_or_when_both_restricted(void **state)
{
    (void)state;
    /* October 2024: Fridays 4, 11, 18, 25; the 13th is a Sunday */
    expect_next("0 0 13 * FRI", "2024-10-11 00:00", "2024-10-13 00:00:00"); /* by day-of-month */
    expect_next("0 0 13 * FRI", "2024-10-13 00:00", "2024-10-18 00:00:00"); /* by day-of-week */
    /* a restricted field that happens to list every weekday still ORs */
    expect_next("0 0 13 * 0-6", "2024-10-13 00:00", "2024-10-14 00:00:00");
}

static void test_dom_dow_and_when_one_is_star(void **state)
{
    (void)state;
    expect_next("0 0 13 * *", "2024-10-11 00:00", "2024-10-13 00:00:00");
    expect_next("0 0 * * FRI", "2024-10-13 00:00", "2024-10-18 00:00:00");
    /* Vixie: a field starting with '*' (even with a step) counts as a star,
     * so this is "the 13th AND Sun/Tue/Thu/Sat": Nov 13 is a Wednesday,
     * Dec 13 a Friday, Jan 13 a Monday, Feb 13 2025 a Thursday. */
    expect_next("0 0 13 * */2", "2024-10-13 00:00", "2025-02-13 00:00:00");
}

/* ---- calendar edges ----------------------------------------------------- */

static void test_month_end(void **state)
{
    (void)state;
    /* the 31st skips February (29 days in 2024) and April */
    expect_next("0 0 31 * *", "2024-01-31 00:00", "2024-03-31 00:00:00");
    expect_next("0 0 31 * *", "2024-03-31 00:00", "2024-05-31 00:00:00");
    expect_next("0 0 30 * *", "2024-01-30 00:00", "2024-03-30 00:00:00");
    /* rolling from the last minute of a 30-day month */
    expect_next("* * * * *", "2024-04-30 23:59", "2024-05-01 00:00:00");
}

static void test_leap_years(void **state)
{
    (void)state;
    expect_next("0 12 29 2 *", "2023-01-01 00:00", "2024-02-29 12:00:00");
    expect_next("0 12 29 2 *", "2024-02-29 12:00", "2028-02-29 12:00:00");
    expect_next("* * * * *", "2024-02-28 23:59", "2024-02-29 00:00:00");
    expect_next("* * * * *", "2023-02-28 23:59", "2023-03-01 00:00:00");
    /* 2100 is not a leap year: the next Feb 29 after 2099-03-01 is in 2104,
     * just inside five years */
    expect_next("0 0 29 2 *", "2099-03-01 00:00", "2104-02-29 00:00:00");
    /* ...but from 2096-03-01 it is eight years away */
    expect_next("0 0 29 2 *", "2096-03-01 00:00", "-1");
}

static void test_year_rollover(void **state)
{
    (void)state;
    expect_next("0 0 1 1 *", "2024-12-31 23:59", "2025-01-01 00:00:00");
    expect_next("59 23 31 12 *", "2024-12-31 23:59", "2025-12-31 23:59:00");
    expect_next("* * * * *", "2024-12-31 23:59:30", "2025-01-01 00:00:00");
    expect_next("0 0 * * MON", "2024-12-30 00:00", "2025-01-06 00:00:00");
}

static void test_impossible_returns_minus_one(void **state)
{
    (void)state;
    expect_next("0 0 30 2 *", "2024-01-01 00:00", "-1");
    expect_next("0 0 31 4,6,9,11 *", "2024-01-01 00:00", "-1");
    expect_next("0 0 31 2 *", "2024-01-01 00:00", "-1");
}

/* The search skips by month/day/hour: even the worst case (an impossible
 * expression, scanning five years) is cheap. Generous bound for sanitizers. */
static void test_search_is_fast(void **state)
{
    (void)state;
    cron_expr *c = must_parse("0 0 30 2 *");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(cron_next(c, at("2024-01-01 00:00") + i * 60 * US), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cron_free(c);
    if (secs > 5.0) {
        print_error("2000 impossible searches took %.2f s\n", secs);
        fail();
    }
}

static void test_extreme_inputs(void **state)
{
    (void)state;
    cron_expr *c = must_parse("* * * * *");
    assert_int_equal(cron_next(c, INT64_MAX), -1); /* the answer would not fit */
    int64_t lo = cron_next(c, INT64_MIN);
    assert_true(lo > INT64_MIN && lo % (60 * US) == 0);
    cron_free(c);
    assert_int_equal(cron_next(NULL, 0), -1);
    cron_free(NULL);
}

/* ---- macros and whitespace ---------------------------------------------- */

static void test_macros(void **state)
{
    (void)state;
    expect_next("@hourly", "2024-03-10 10:15", "2024-03-10 11:00:00");
    expect_next("@daily", "2024-03-10 10:15", "2024-03-11 00:00:00");
    expect_next("@midnight", "2024-03-10 10:15", "2024-03-11 00:00:00");
    expect_next("@weekly", "2024-03-10 00:00", "2024-03-17 00:00:00"); /* Sundays */
    expect_next("@monthly", "2024-03-10 10:15", "2024-04-01 00:00:00");
    expect_next("@yearly", "2024-03-10 10:15", "2025-01-01 00:00:00");
    expect_next("@annually", "2024-03-10 10:15", "2025-01-01 00:00:00");
    expect_next("  @DAILY\t", "2024-03-10 10:15", "2024-03-11 00:00:00");
}

static void test_whitespace(void **state)
{
    (void)state;
    expect_next("  30\t14  *   * \t*  ", "2024-03-10 14:29", "2024-03-10 14:30:00");
}

/* ---- errors ------------------------------------------------------------- */

static void test_error_field_count(void **state)
{
    (void)state;
    expect_error("0 0 * * * *",
                 "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 6");
    expect_error("0 0 * *",
                 "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 4");
    expect_error("", "cron: empty expression");
    expect_error(" \t ", "cron: empty expression");
    expect_error(NULL, "cron: empty expression");
}

static void test_error_out_of_range(void **state)
{
    (void)state;
    expect_error("61 * * * *", "cron: minute field: 61 is out of range 0-59");
    expect_error("0 24 * * *", "cron: hour field: 24 is out of range 0-23");
    expect_error("0 0 0 * *", "cron: day-of-month field: 0 is out of range 1-31");
    expect_error("0 0 32 * *", "cron: day-of-month field: 32 is out of range 1-31");
    expect_error("0 0 * 13 *", "cron: month field: 13 is out of range 1-12");
    expect_error("0 0 * * 8", "cron: day-of-week field: 8 is out of range 0-7");
    expect_error("0 0 * * 1-9", "cron: day-of-week field: 9 is out of range 0-7");
    /* a huge number must not wrap back into range */
    expect_error("99999999999999999999 * * * *",
                 "cron: minute field: 99999999999999999999 is out of range 0-59");
}

static void test_error_bad_step(void **state)
{
    (void)state;
    expect_error("*/0 * * * *", "cron: minute field: step 0 in \"*/0\" is out of range 1-60");
    expect_error("0 */25 * * *", "cron: hour field: step 25 in \"*/25\" is out of range 1-24");
    expect_error("*/x * * * *", "cron: minute field: step \"x\" in \"*/x\" is not a number");
    expect_error("*/ * * * *", "cron: minute field: step \"\" in \"*/\" is not a number");
}

static void test_error_reversed_range(void **state)
{
    (void)state;
    expect_error("0 5-1 * * *", "cron: hour field: 5-1 is a reversed range (5 > 1)");
    expect_error("0 0 * * FRI-MON", "cron: day-of-week field: FRI-MON is a reversed range (5 > 1)");
}

static void test_error_garbage(void **state)
{
    (void)state;
    expect_error("abc * * * *", "cron: minute field: \"abc\" is not a number");
    expect_error("1x * * * *", "cron: minute field: \"1x\" is not a number");
    expect_error("-1 * * * *", "cron: minute field: \"-1\" is not a valid range");
    expect_error("0 1- * * *", "cron: hour field: \"1-\" is not a valid range");
    expect_error("0 1-2-3 * * *", "cron: hour field: \"1-2-3\" is not a valid range");
    expect_error("0 1-x * * *", "cron: hour field: \"x\" is not a number");
    expect_error("1,,2 * * * *", "cron: minute field: empty list element");
    expect_error("0 0 * * monday", "cron: day-of-week field: \"monday\" is not a number or name");
    expect_error("0 0 * JANUARY *", "cron: month field: \"JANUARY\" is not a number or name");
    expect_error("0 MON * * *", "cron: hour field: \"MON\" is not a number");
    expect_error("0 0 * * JAN", "cron: day-of-week field: \"JAN\" is not a number or name");
    expect_error("** * * * *", "cron: minute field: \"**\" is not a number");
    expect_error("@reboot", "cron: unknown macro \"@reboot\"");
    expect_error("@daily 0", "cron: @daily takes no fields after it, got 1");
}

static void test_error_buffer_handling(void **state)
{
    (void)state;
    /* a NULL buffer is allowed with length 0, and a short one is truncated */
    assert_null(cron_parse("61 * * * *", NULL, 0));
    char small[12];
    assert_null(cron_parse("61 * * * *", small, sizeof small));
    assert_string_equal(small, "cron: minut");
    /* success leaves an empty message */
    char err[64] = "stale";
    cron_expr *c = cron_parse("* * * * *", err, sizeof err);
    assert_non_null(c);
    assert_string_equal(err, "");
    cron_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_star_is_every_minute_strictly_after),
        cmocka_unit_test(test_epoch_known_answers),
        cmocka_unit_test(test_single_numbers),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_star_steps),
        cmocka_unit_test(test_range_steps),
        cmocka_unit_test(test_month_names),
        cmocka_unit_test(test_weekday_names),
        cmocka_unit_test(test_sunday_is_0_and_7),
        cmocka_unit_test(test_dom_dow_or_when_both_restricted),
        cmocka_unit_test(test_dom_dow_and_when_one_is_star),
        cmocka_unit_test(test_month_end),
        cmocka_unit_test(test_leap_years),
        cmocka_unit_test(test_year_rollover),
        cmocka_unit_test(test_impossible_returns_minus_one),
        cmocka_unit_test(test_search_is_fast),
        cmocka_unit_test(test_extreme_inputs),
        cmocka_unit_test(test_macros),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_error_field_count),
        cmocka_unit_test(test_error_out_of_range),
        cmocka_unit_test(test_error_bad_step),
        cmocka_unit_test(test_error_reversed_range),
        cmocka_unit_test(test_error_garbage),
        cmocka_unit_test(test_error_buffer_handling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
