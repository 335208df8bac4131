/* test_metrics.c — series registry and Prometheus text exposition. */
#include "unit_helpers.h"

#include <math.h>

#include "metrics.h"

/* Two distinct owners, as instances would be. */
static const int owner_a_tag, owner_b_tag;
#define OWNER_A ((const void *)&owner_a_tag)
#define OWNER_B ((const void *)&owner_b_tag)

static int reg_setup(void **state)
{
    *state = metrics_new();
    return *state ? 0 : -1;
}

static int reg_teardown(void **state)
{
    metrics_free(*state);
    return 0;
}

static void assert_renders(metrics_registry *reg, const char *expected)
{
    char *text = metrics_render(reg);
    assert_non_null(text);
    assert_string_equal(text, expected);
    free(text);
}

static ingest_metric *counter(metrics_registry *reg, const char *name, const char *labels,
                              const void *owner)
{
    ingest_metric *m =
        metrics_register(reg, METRIC_COUNTER, name, "help text", labels, owner, NULL, 0);
    assert_non_null(m);
    return m;
}

/* ---- exposition format ---------------------------------------------------- */

static void test_empty_registry_renders_empty_text(void **state) { assert_renders(*state, ""); }

static void test_render_counter_gauge_histogram(void **state)
{
    metrics_registry *reg = *state;
    const double bounds[] = {0.5, 1, 2.5};
    ingest_metric *ok = metrics_register(reg, METRIC_COUNTER, "requests_total", "Requests served",
                                         "code=\"200\"", OWNER_A, NULL, 0);
    ingest_metric *bad = metrics_register(reg, METRIC_COUNTER, "requests_total", "Requests served",
                                          "code=\"500\"", OWNER_A, NULL, 0);
    ingest_metric *depth =
        metrics_register(reg, METRIC_GAUGE, "queue_depth", "Queued tasks", "", OWNER_A, NULL, 0);
    ingest_metric *lat = metrics_register(reg, METRIC_HISTOGRAM, "latency_seconds", "Latency",
                                          "route=\"/x\"", OWNER_A, bounds, 3);
    assert_non_null(ok);
    assert_non_null(bad);
    assert_non_null(depth);
    assert_non_null(lat);

    metrics_add(ok, 2);
    metrics_add(ok, 1);
    metrics_add(bad, 1);
    metrics_set(depth, 7.5);
    const double observations[] = {0.25, 0.5, 0.75, 3, 10};
    for (size_t i = 0; i < 5; i++)
        metrics_observe(lat, observations[i]);

    assert_renders(reg, "# HELP requests_total Requests served\n"
                        "# TYPE requests_total counter\n"
                        "requests_total{code=\"200\"} 3\n"
                        "requests_total{code=\"500\"} 1\n"
                        "# HELP queue_depth Queued tasks\n"
                        "# TYPE queue_depth gauge\n"
                        "queue_depth 7.5\n"
                        "# HELP latency_seconds Latency\n"
                        "# TYPE latency_seconds histogram\n"
                        "latency_seconds_bucket{route=\"/x\",le=\"0.5\"} 2\n"
                        "latency_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"
                        "latency_seconds_bucket{route=\"/x\",le=\"2.5\"} 3\n"
                        "latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 5\n"
                        "latency_seconds_sum{route=\"/x\"} 14.5\n"
                        "latency_seconds_count{route=\"/x\"} 5\n");
    assert_float_equal(metrics_value(ok), 3, 0);
    assert_float_equal(metrics_value(lat), 5, 0); /* a histogram's value is its count */
}

static void test_histogram_without_labels_and_no_observations(void **state)
{
    metrics_registry *reg = *state;
    const double bounds[] = {1, 2};
    ingest_metric *h = metrics_register(reg, METRIC_HISTOGRAM, "h", "H", NULL, OWNER_A, bounds, 2);
    assert_non_null(h);
    assert_renders(reg, "# HELP h H\n"
                        "# TYPE h histogram\n"
                        "h_bucket{le=\"1\"} 0\n"
                        "h_bucket{le=\"2\"} 0\n"
                        "h_bucket{le=\"+Inf\"} 0\n"
                        "h_sum 0\n"
                        "h_count 0\n");
    metrics_observe(h, 1); /* on the bound: counts in le="1" */
    metrics_observe(h, 1.5);
    metrics_observe(h, 99);  /* above every bound: only +Inf */
    metrics_observe(h, NAN); /* ignored */
    assert_renders(reg, "# HELP h H\n"
                        "# TYPE h histogram\n"
                        "h_bucket{le=\"1\"} 1\n"
                        "h_bucket{le=\"2\"} 2\n"
                        "h_bucket{le=\"+Inf\"} 3\n"
                        "h_sum 101.5\n"
                        "h_count 3\n");
}

static void test_histogram_default_buckets(void **state)
{
    metrics_registry *reg = *state;
    ingest_metric *h = metrics_register(reg, METRIC_HISTOGRAM, "d", "D", "", OWNER_A, NULL, 0);
    metrics_observe(h, 0.0005);
    char *text = metrics_render(reg);
    /* 12 default buckets + +Inf, each cumulative, all 1 */
    size_t buckets = 0;
    for (const char *p = text; (p = strstr(p, "d_bucket{")); p++)
        buckets++;
    assert_int_equal(buckets, 13);
    assert_contains(text, "d_bucket{le=\"0.001\"} 1\n");
    assert_contains(text, "d_bucket{le=\"10\"} 1\n");
    assert_contains(text, "d_bucket{le=\"+Inf\"} 1\n");
    free(text);
}

static void test_bucket_bounds_render_shortest(void **state)
{
    metrics_registry *reg = *state;
    ingest_metric *h = metrics_register(reg, METRIC_HISTOGRAM, "d", "D", "", OWNER_A, NULL, 0);
    ingest_metric *g = metrics_register(reg, METRIC_GAUGE, "g", "G", "", OWNER_A, NULL, 0);
    metrics_set(g, 0.1);
    (void)h;
    char *text = metrics_render(reg);
    assert_contains(text, "d_bucket{le=\"0.005\"} 0\n");
    assert_contains(text, "d_bucket{le=\"0.1\"} 0\n");
    assert_contains(text, "\ng 0.1\n");
    free(text);
}

static void test_help_text_is_escaped(void **state)
{
    metrics_registry *reg = *state;
    metrics_register(reg, METRIC_GAUGE, "g", "first line\nsecond \\ line", "", OWNER_A, NULL, 0);
    assert_renders(reg, "# HELP g first line\\nsecond \\\\ line\n"
                        "# TYPE g gauge\n"
                        "g 0\n");
}

static void test_family_header_once_even_when_registered_interleaved(void **state)
{
    metrics_registry *reg = *state;
    ingest_metric *a1 = counter(reg, "a_total", "k=\"1\"", OWNER_A);
    ingest_metric *b = counter(reg, "b_total", "", OWNER_A);
    ingest_metric *a2 = counter(reg, "a_total", "k=\"2\"", OWNER_B);
    metrics_add(a1, 1);
    metrics_add(b, 2);
    metrics_add(a2, 3);
    assert_renders(reg, "# HELP a_total help text\n"
                        "# TYPE a_total counter\n"
                        "a_total{k=\"1\"} 1\n"
                        "a_total{k=\"2\"} 3\n"
                        "# HELP b_total help text\n"
                        "# TYPE b_total counter\n"
                        "b_total 2\n");
}

/* ---- updates ---------------------------------------------------------------- */

static void test_counter_ignores_negative_and_non_finite(void **state)
{
    metrics_registry *reg = *state;
    ingest_metric *c = counter(reg, "c_total", "", OWNER_A);
    metrics_add(c, 5);
    metrics_add(c, -2);
    metrics_add(c, NAN);
    metrics_add(c, INFINITY);
    metrics_set(c, 100); /* set is for gauges */
    metrics_observe(c, 1);
    assert_float_equal(metrics_value(c), 5, 0);
    metrics_add(c, 0.5);
    assert_float_equal(metrics_value(c), 5.5, 0);
}

static void test_gauge_add_and_set(void **state)
{
    metrics_registry *reg = *state;
    ingest_metric *g = metrics_register(reg, METRIC_GAUGE, "g", "", "", OWNER_A, NULL, 0);
    metrics_set(g, 10);
    metrics_add(g, -3);
    assert_float_equal(metrics_value(g), 7, 0);
    metrics_set(g, -1.25);
    metrics_set(g, NAN); /* ignored */
    assert_float_equal(metrics_value(g), -1.25, 0);
    assert_renders(reg, "# HELP g \n# TYPE g gauge\ng -1.25\n");
}

static void test_updates_on_null_metric_are_noops(void **state)
{
    (void)state;
    metrics_add(NULL, 1);
    metrics_set(NULL, 1);
    metrics_observe(NULL, 1);
}

/* ---- registration ----------------------------------------------------------- */

static void test_reregister_returns_same_series(void **state)
{
    metrics_registry *reg = *state;
    ingest_metric *first = counter(reg, "x_total", "a=\"1\"", OWNER_A);
    metrics_add(first, 4);
    ingest_metric *again = counter(reg, "x_total", "a=\"1\"", OWNER_A);
    assert_ptr_equal(first, again);
    assert_float_equal(metrics_value(again), 4, 0);

    /* NULL labels and "" are the same series */
    ingest_metric *n1 = counter(reg, "y_total", NULL, OWNER_A);
    ingest_metric *n2 = counter(reg, "y_total", "", OWNER_A);
    assert_ptr_equal(n1, n2);

    /* any difference in labels or owner is a new series */
    assert_ptr_not_equal(first, counter(reg, "x_total", "a=\"2\"", OWNER_A));
    assert_ptr_not_equal(first, counter(reg, "x_total", "a=\"1\"", OWNER_B));
}

static void test_reregister_with_other_type_is_refused(void **state)
{
    metrics_registry *reg = *state;
    counter(reg, "z_total", "", OWNER_A);
    assert_null(metrics_register(reg, METRIC_GAUGE, "z_total", "", "", OWNER_A, NULL, 0));
}

static void test_invalid_names_refused(void **state)
{
    metrics_registry *reg = *state;
    const char *bad[] = {"", "9lives", "with-dash", "with space", "dot.ted", "caf\xc3\xa9", "a{b}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(metrics_valid_name(bad[i]));
        assert_null(metrics_register(reg, METRIC_COUNTER, bad[i], "", "", OWNER_A, NULL, 0));
    }
    assert_false(metrics_valid_name(NULL));
    assert_null(metrics_register(reg, METRIC_COUNTER, NULL, "", "", OWNER_A, NULL, 0));
    const char *good[] = {"a", "_x", "ns:sub_total", "A9", ":colon"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(metrics_valid_name(good[i]));
    assert_renders(reg, "");
}

/* ---- owners ---------------------------------------------------------------- */

static void test_hide_owner_stops_export_but_keeps_series(void **state)
{
    metrics_registry *reg = *state;
    ingest_metric *a = counter(reg, "shared_total", "plugin=\"old\"", OWNER_A);
    ingest_metric *b = counter(reg, "shared_total", "plugin=\"new\"", OWNER_B);
    ingest_metric *a_only = counter(reg, "only_a_total", "", OWNER_A);
    metrics_add(a, 1);
    metrics_add(b, 2);
    metrics_hide_owner(reg, OWNER_A);
    metrics_add(a_only, 1); /* still safe to update while draining */
    assert_float_equal(metrics_value(a_only), 1, 0);
    assert_renders(reg, "# HELP shared_total help text\n"
                        "# TYPE shared_total counter\n"
                        "shared_total{plugin=\"new\"} 2\n");
}

static void test_remove_owner_then_register_more(void **state)
{
    metrics_registry *reg = *state;
    counter(reg, "a_total", "", OWNER_A);
    ingest_metric *b = counter(reg, "b_total", "", OWNER_B);
    counter(reg, "c_total", "", OWNER_A); /* the list's tail */
    metrics_remove_owner(reg, OWNER_A);
    metrics_add(b, 1);
    /* the tail was removed: appending must still work */
    ingest_metric *d = counter(reg, "d_total", "", OWNER_A);
    metrics_add(d, 4);
    assert_renders(reg, "# HELP b_total help text\n"
                        "# TYPE b_total counter\n"
                        "b_total 1\n"
                        "# HELP d_total help text\n"
                        "# TYPE d_total counter\n"
                        "d_total 4\n");
    metrics_remove_owner(reg, OWNER_A);
    metrics_remove_owner(reg, OWNER_B);
    assert_renders(reg, "");
    ingest_metric *e = counter(reg, "e_total", "", OWNER_B);
    assert_non_null(e);
    assert_renders(reg, "# HELP e_total help text\n# TYPE e_total counter\ne_total 0\n");
}

static void test_large_render_grows_buffer(void **state)
{
    metrics_registry *reg = *state;
    char labels[64];
    for (int i = 0; i < 500; i++) {
        snprintf(labels, sizeof labels, "series=\"%03d\"", i);
        metrics_add(counter(reg, "many_total", labels, OWNER_A), i);
    }
    char *text = metrics_render(reg);
    assert_non_null(text);
    assert_true(strlen(text) > 4096);
    assert_contains(text, "many_total{series=\"000\"} 0\n");
    assert_contains(text, "many_total{series=\"499\"} 499\n");
    free(text);
}

#define REG_TEST(f) cmocka_unit_test_setup_teardown(f, reg_setup, reg_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        REG_TEST(test_empty_registry_renders_empty_text),
        REG_TEST(test_render_counter_gauge_histogram),
        REG_TEST(test_histogram_without_labels_and_no_observations),
        REG_TEST(test_histogram_default_buckets),
        REG_TEST(test_bucket_bounds_render_shortest),
        REG_TEST(test_help_text_is_escaped),
        REG_TEST(test_family_header_once_even_when_registered_interleaved),
        REG_TEST(test_counter_ignores_negative_and_non_finite),
        REG_TEST(test_gauge_add_and_set),
        REG_TEST(test_updates_on_null_metric_are_noops),
        REG_TEST(test_reregister_returns_same_series),
        REG_TEST(test_reregister_with_other_type_is_refused),
        REG_TEST(test_invalid_names_refused),
        REG_TEST(test_hide_owner_stops_export_but_keeps_series),
        REG_TEST(test_remove_owner_then_register_more),
        REG_TEST(test_large_render_grows_buffer),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
