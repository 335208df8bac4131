/* test_log.c — JSON log lines, level filtering and secret redaction. */
#include "unit_helpers.h"

#include <json-c/json.h>

#include "log.h"
#include "util.h"

/* ---- fixture: the log goes to a temp file we read back ------------------ */

typedef struct log_fixture {
    char path[256];
    int fd;
    char *lines[64]; /* the last capture, split into lines */
    size_t n_lines;
    json_object *json[64];
} log_fixture;

static void release_capture(log_fixture *fx)
{
    for (size_t i = 0; i < fx->n_lines; i++) {
        free(fx->lines[i]);
        json_object_put(fx->json[i]);
        fx->lines[i] = NULL;
        fx->json[i] = NULL;
    }
    fx->n_lines = 0;
}

static int log_setup_fx(void **state)
{
    log_fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(fx->path, sizeof fx->path, "%s/unit-log-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    fx->fd = mkstemp(fx->path);
    if (fx->fd < 0) {
        free(fx);
        return -1;
    }
    log_setup(fx->fd, INGEST_LOG_DEBUG);
    log_redact_clear();
    *state = fx;
    return 0;
}

static int log_teardown_fx(void **state)
{
    log_fixture *fx = *state;
    log_setup(2, INGEST_LOG_INFO);
    log_redact_clear();
    release_capture(fx);
    close(fx->fd);
    unlink(fx->path);
    free(fx);
    return 0;
}

/* Read everything written since the last capture: every line must be a
 * complete JSON object. Returns the number of lines. */
static size_t capture(log_fixture *fx)
{
    release_capture(fx);
    char *all = unit_read_file(fx->path);
    assert_non_null(all);
    assert_int_equal(ftruncate(fx->fd, 0), 0);
    assert_int_equal(lseek(fx->fd, 0, SEEK_SET), 0);
    size_t len = strlen(all);
    if (len > 0)
        assert_int_equal(all[len - 1], '\n'); /* every line is terminated */
    char *save = NULL;
    for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        assert_true(fx->n_lines < 64);
        json_object *obj = json_tokener_parse(line);
        if (!obj || !json_object_is_type(obj, json_type_object)) {
            print_error("log line is not a JSON object: %s\n", line);
            json_object_put(obj);
            free(all);
            fail();
        }
        fx->lines[fx->n_lines] = strdup(line);
        fx->json[fx->n_lines] = obj;
        fx->n_lines++;
    }
    free(all);
    return fx->n_lines;
}

/* String member `key` of captured line i, or NULL when absent. */
static const char *field(log_fixture *fx, size_t i, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(fx->json[i], key, &v))
        return NULL;
    assert_true(json_object_is_type(v, json_type_string));
    return json_object_get_string(v);
}

static void assert_ts_format(const char *ts)
{
    /* 2024-01-02T03:04:05.678Z */
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < 24; i++) {
        if (shape[i] == 'd')
            assert_true(ts[i] >= '0' && ts[i] <= '9');
        else
            assert_int_equal(ts[i], shape[i]);
    }
}

/* ---- line format --------------------------------------------------------- */

static void test_line_is_json_with_standard_fields(void **state)
{
    log_fixture *fx = *state;
    int64_t before = util_now_us();
    log_write(INGEST_LOG_INFO, &(log_fields){.plugin = "github"}, "hello %s %d", "world", 42);
    int64_t after = util_now_us();

    assert_int_equal(capture(fx), 1);
    assert_string_equal(field(fx, 0, "level"), "info");
    assert_string_equal(field(fx, 0, "msg"), "hello world 42");
    assert_string_equal(field(fx, 0, "plugin"), "github");
    assert_null(field(fx, 0, "tenant"));
    assert_null(field(fx, 0, "job"));
    assert_null(field(fx, 0, "delivery"));
    const char *ts = field(fx, 0, "ts");
    assert_ts_format(ts);
    int64_t ts_us = 0;
    assert_int_equal(util_parse_time(ts, &ts_us), 0);
    assert_true(ts_us >= before - 1000 && ts_us <= after); /* ms precision */
    assert_int_equal(json_object_object_length(fx->json[0]), 4);
}

static void test_all_context_fields(void **state)
{
    log_fixture *fx = *state;
    log_write(INGEST_LOG_ERROR,
              &(log_fields){.plugin = "p", .tenant = "t-1", .job = "j-2", .delivery = "d-3"},
              "boom");
    assert_int_equal(capture(fx), 1);
    assert_string_equal(field(fx, 0, "level"), "error");
    assert_string_equal(field(fx, 0, "plugin"), "p");
    assert_string_equal(field(fx, 0, "tenant"), "t-1");
    assert_string_equal(field(fx, 0, "job"), "j-2");
    assert_string_equal(field(fx, 0, "delivery"), "d-3");
    assert_int_equal(json_object_object_length(fx->json[0]), 7);
}

static void test_no_fields_means_no_plugin_key(void **state)
{
    log_fixture *fx = *state;
    log_info("plain");
    assert_int_equal(capture(fx), 1);
    assert_null(field(fx, 0, "plugin"));
    assert_string_equal(field(fx, 0, "msg"), "plain");
    assert_int_equal(json_object_object_length(fx->json[0]), 3);
}

static void test_special_characters_stay_on_one_line(void **state)
{
    log_fixture *fx = *state;
    log_info("quote \" backslash \\ newline \n tab \t path a/b unicode \xc3\xa9");
    log_warn("second");
    assert_int_equal(capture(fx), 2);
    assert_string_equal(field(fx, 0, "msg"),
                        "quote \" backslash \\ newline \n tab \t path a/b unicode \xc3\xa9");
    assert_contains(fx->lines[0], "a/b"); /* slashes are not escaped */
    assert_string_equal(field(fx, 1, "msg"), "second");
    assert_string_equal(field(fx, 1, "level"), "warn");
}

static void test_long_message_is_not_truncated(void **state)
{
    log_fixture *fx = *state;
    char big[9000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_info("%s", big);
    assert_int_equal(capture(fx), 1);
    assert_string_equal(field(fx, 0, "msg"), big);
}

/* ---- levels -------------------------------------------------------------- */

static void write_one_of_each(void)
{
    log_debug("d");
    log_info("i");
    log_warn("w");
    log_error("e");
}

static void test_level_filtering(void **state)
{
    log_fixture *fx = *state;
    log_set_level(INGEST_LOG_DEBUG);
    write_one_of_each();
    assert_int_equal(capture(fx), 4);
    assert_string_equal(field(fx, 0, "level"), "debug");
    assert_string_equal(field(fx, 3, "level"), "error");

    log_set_level(INGEST_LOG_WARN);
    assert_int_equal(log_get_level(), INGEST_LOG_WARN);
    write_one_of_each();
    assert_int_equal(capture(fx), 2);
    assert_string_equal(field(fx, 0, "msg"), "w");
    assert_string_equal(field(fx, 1, "msg"), "e");

    log_setup(fx->fd, INGEST_LOG_ERROR);
    write_one_of_each();
    assert_int_equal(capture(fx), 1);
    assert_string_equal(field(fx, 0, "msg"), "e");
}

static void test_out_of_range_level_is_dropped(void **state)
{
    log_fixture *fx = *state;
    log_write((ingest_log_level)(INGEST_LOG_ERROR + 1), NULL, "nope");
    assert_int_equal(capture(fx), 0);
}

static void test_level_parse(void **state)
{
    (void)state;
    assert_int_equal(log_level_parse("debug"), INGEST_LOG_DEBUG);
    assert_int_equal(log_level_parse("info"), INGEST_LOG_INFO);
    assert_int_equal(log_level_parse("warn"), INGEST_LOG_WARN);
    assert_int_equal(log_level_parse("error"), INGEST_LOG_ERROR);
    assert_int_equal(log_level_parse("warning"), -1);
    assert_int_equal(log_level_parse("INFO"), -1);
    assert_int_equal(log_level_parse("info "), -1);
    assert_int_equal(log_level_parse(""), -1);
    assert_int_equal(log_level_parse(NULL), -1);
}

/* ---- redaction ------------------------------------------------------------ */

static void assert_redacts(const char *text, const char *expected)
{
    char *out = log_redact(text);
    assert_non_null(out);
    assert_string_equal(out, expected);
    free(out);
}

static void test_redact_several_secrets(void **state)
{
    (void)state;
    log_redact_add("alpha-secret");
    log_redact_add("beta-secret");
    log_redact_add("p@ss.w*rd");
    assert_redacts("a=alpha-secret b=beta-secret c=p@ss.w*rd again alpha-secret",
                   "a=[REDACTED] b=[REDACTED] c=[REDACTED] again [REDACTED]");
    assert_redacts("nothing secret here", "nothing secret here");
    assert_redacts("", "");
    assert_redacts(NULL, "");
}

static void test_redact_adjacent_and_overlapping_occurrences(void **state)
{
    (void)state;
    log_redact_add("s3cr3t");
    assert_redacts("s3cr3ts3cr3t", "[REDACTED][REDACTED]");
    log_redact_clear();
    log_redact_add("abab");
    /* leftmost match wins, matches do not overlap */
    assert_redacts("ababab", "[REDACTED]ab");
    assert_redacts("abababab", "[REDACTED][REDACTED]");
}

static void test_redact_secret_containing_another(void **state)
{
    (void)state;
    log_redact_add("token123456789");
    log_redact_add("token123");
    assert_redacts("long=token123456789 short=token123", "long=[REDACTED] short=[REDACTED]");
}

static void test_redact_prefix_secret_registered_first(void **state)
{
    (void)state;
    log_redact_add("token123");
    log_redact_add("token123456789");
    assert_redacts("long=token123456789", "long=[REDACTED]");
}

static void test_redact_ignores_short_secrets(void **state)
{
    (void)state;
    log_redact_add("abc");
    log_redact_add("");
    log_redact_add(NULL);
    assert_redacts("abc is a word", "abc is a word");
    log_redact_add("abcd"); /* four bytes is enough */
    assert_redacts("abcd abc", "[REDACTED] abc");
}

static void test_redact_remove_and_clear(void **state)
{
    (void)state;
    log_redact_add("first-secret");
    log_redact_add("second-secret");
    log_redact_add("third-secret");
    log_redact_remove("second-secret");
    assert_redacts("first-secret second-secret third-secret",
                   "[REDACTED] second-secret [REDACTED]");
    log_redact_remove("not-registered"); /* no-op */
    log_redact_remove(NULL);
    assert_redacts("first-secret third-secret", "[REDACTED] [REDACTED]");
    log_redact_clear();
    assert_redacts("first-secret third-secret", "first-secret third-secret");
    log_redact_clear(); /* twice is fine */
}

static void test_redact_registrations_are_counted(void **state)
{
    (void)state;
    log_redact_add("shared-secret");
    log_redact_add("shared-secret");
    log_redact_add("other-secret");
    log_redact_remove("shared-secret");
    assert_redacts("shared-secret other-secret", "[REDACTED] [REDACTED]");
    log_redact_remove("shared-secret");
    assert_redacts("shared-secret other-secret", "shared-secret [REDACTED]");
    log_redact_remove("shared-secret"); /* more removes than adds: no-op */
    log_redact_add("shared-secret");
    assert_redacts("shared-secret", "[REDACTED]");
}

static void test_redaction_applies_to_log_lines(void **state)
{
    log_fixture *fx = *state;
    log_redact_add("hunter22");
    log_write(INGEST_LOG_WARN, &(log_fields){.plugin = "p"}, "password is %s!", "hunter22");
    assert_int_equal(capture(fx), 1);
    assert_string_equal(field(fx, 0, "msg"), "password is [REDACTED]!");
    assert_not_contains(fx->lines[0], "hunter22");
}

#define LOG_TEST(f) cmocka_unit_test_setup_teardown(f, log_setup_fx, log_teardown_fx)

int main(void)
{
    const struct CMUnitTest tests[] = {
        LOG_TEST(test_line_is_json_with_standard_fields),
        LOG_TEST(test_all_context_fields),
        LOG_TEST(test_no_fields_means_no_plugin_key),
        LOG_TEST(test_special_characters_stay_on_one_line),
        LOG_TEST(test_long_message_is_not_truncated),
        LOG_TEST(test_level_filtering),
        LOG_TEST(test_out_of_range_level_is_dropped),
        LOG_TEST(test_level_parse),
        LOG_TEST(test_redact_several_secrets),
        LOG_TEST(test_redact_adjacent_and_overlapping_occurrences),
        LOG_TEST(test_redact_secret_containing_another),
        LOG_TEST(test_redact_prefix_secret_registered_first),
        LOG_TEST(test_redact_ignores_short_secrets),
        LOG_TEST(test_redact_remove_and_clear),
        LOG_TEST(test_redact_registrations_are_counted),
        LOG_TEST(test_redaction_applies_to_log_lines),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
