/* test_config.c — hostd.conf parsing, INGEST_* environment overrides, errors. */
#include "unit_helpers.h"

#include "config.h"

/* ---- fixture: a temp dir for config files, a clean INGEST_* environment -- */

typedef struct cfg_fixture {
    char *dir;
    char *path; /* the last file written by write_config() */
    char err[1024];
} cfg_fixture;

/* Remove every INGEST_* variable so neither the caller's environment nor an
 * earlier test can leak into a result. */
static void clear_ingest_env(void)
{
    char *names[256];
    size_t n = 0;
    for (char **e = environ; *e && n < 256; e++) {
        if (strncmp(*e, "INGEST_", 7) == 0) {
            const char *eq = strchr(*e, '=');
            names[n++] = strndup(*e, eq ? (size_t)(eq - *e) : strlen(*e));
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (names[i])
            unsetenv(names[i]);
        free(names[i]);
    }
}

static int cfg_setup(void **state)
{
    clear_ingest_env();
    cfg_fixture *fx = calloc(1, sizeof *fx);
    if (!fx || !(fx->dir = unit_make_temp_dir("config"))) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int cfg_teardown(void **state)
{
    cfg_fixture *fx = *state;
    clear_ingest_env();
    unit_remove_tree(fx->dir);
    free(fx->dir);
    free(fx->path);
    free(fx);
    return 0;
}

/* Write `text` to <dir>/hostd.conf and remember the path. */
static const char *write_config(cfg_fixture *fx, const char *text)
{
    free(fx->path);
    fx->path = unit_path_join(fx->dir, "hostd.conf");
    assert_non_null(fx->path);
    assert_int_equal(unit_write_file(fx->path, text, 0600), 0);
    return fx->path;
}

/* Load `text` and expect success. */
static hostd_config *load_ok(cfg_fixture *fx, const char *text)
{
    fx->err[0] = '\0';
    hostd_config *cfg = config_load(write_config(fx, text), fx->err, sizeof fx->err);
    if (!cfg) {
        print_error("config_load failed: %s\n", fx->err);
        fail();
    }
    return cfg;
}

/* Load `text` and expect failure; the message is in fx->err. */
static const char *load_fails(cfg_fixture *fx, const char *text)
{
    fx->err[0] = '\0';
    hostd_config *cfg = config_load(write_config(fx, text), fx->err, sizeof fx->err);
    if (cfg) {
        config_free(cfg);
        print_error("config_load unexpectedly accepted:\n%s\n", text);
        fail();
    }
    assert_true(fx->err[0] != '\0');
    return fx->err;
}

/* "<path>:<line>:" as the messages spell it. */
static void assert_names_line(const cfg_fixture *fx, int line)
{
    char where[4200];
    snprintf(where, sizeof where, "%s:%d:", fx->path, line);
    assert_contains(fx->err, where);
}

/* ---- defaults ----------------------------------------------------------- */

static void test_defaults_without_file(void **state)
{
    cfg_fixture *fx = *state;
    hostd_config *cfg = config_load(NULL, fx->err, sizeof fx->err);
    assert_non_null(cfg);
    assert_string_equal(cfg->path, "(defaults)");
    assert_string_equal(cfg->listen, "127.0.0.1:8080");
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 8080);
    assert_string_equal(cfg->plugin_dir, INGEST_DEFAULT_PLUGIN_DIR);
    assert_string_equal(cfg->control_socket, "/run/ingest/hostd.sock");
    assert_string_equal(cfg->runtime_dir, "");
    assert_int_equal(cfg->workers, 4);
    assert_int_equal(cfg->work_queue, 1024);
    assert_string_equal(cfg->database_url, "postgresql:///ingest");
    assert_int_equal(cfg->database_pool, 2);
    assert_int_equal(cfg->database_retry_max_s, 30);
    assert_string_equal(cfg->crypto_key, "");
    assert_string_equal(cfg->crypto_key_file, "");
    assert_string_equal(cfg->crypto_previous_keys, "");
    assert_string_equal(cfg->operator_token, "");
    assert_string_equal(cfg->log_level, "info");
    assert_int_equal(cfg->shutdown_timeout_s, 30);
    assert_int_equal(cfg->drain_timeout_s, 60);
    assert_int_equal(cfg->max_body_bytes, 1048576);
    assert_int_equal(cfg->job_lease_s, 30);
    assert_int_equal(cfg->job_poll_ms, 1000);
    assert_int_equal(cfg->max_jobs, 0);
    assert_int_equal(cfg->backfill_days, 30);
    assert_null(config_plugin_group(cfg, "good"));
    config_free(cfg);
}

static void test_empty_file_gives_defaults(void **state)
{
    cfg_fixture *fx = *state;
    hostd_config *cfg = load_ok(fx, "# nothing but a comment\n");
    assert_string_equal(cfg->path, fx->path);
    assert_int_equal(cfg->workers, 4);
    assert_string_equal(cfg->listen, "127.0.0.1:8080");
    config_free(cfg);
}

/* ---- every key from a file --------------------------------------------- */

static void test_every_key_parsed(void **state)
{
    cfg_fixture *fx = *state;
    hostd_config *cfg = load_ok(fx, "listen = \"0.0.0.0:9090\";\n"
                                    "plugin_dir = \"/opt/plugins\";\n"
                                    "control_socket = \"/tmp/ctl.sock\";\n"
                                    "runtime_dir = \"/tmp/rt\";\n"
                                    "workers = 8;\n"
                                    "work_queue = 64;\n"
                                    "database_url = \"postgresql://db/x\";\n"
                                    "database_pool = 5;\n"
                                    "database_retry_max_s = 120;\n"
                                    "crypto_key = \"k3y\";\n"
                                    "crypto_key_file = \"/etc/key\";\n"
                                    "crypto_previous_keys = \"old1,old2\";\n"
                                    "operator_token = \"op-token\";\n"
                                    "log_level = \"debug\";\n"
                                    "shutdown_timeout_s = 0;\n"
                                    "drain_timeout_s = 5;\n"
                                    "max_body_bytes = 2048;\n"
                                    "job_lease_s = 45;\n"
                                    "job_poll_ms = 250;\n"
                                    "max_jobs = 12;\n"
                                    "backfill_days = 7;\n");
    assert_string_equal(cfg->listen, "0.0.0.0:9090");
    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 9090);
    assert_string_equal(cfg->plugin_dir, "/opt/plugins");
    assert_string_equal(cfg->control_socket, "/tmp/ctl.sock");
    assert_string_equal(cfg->runtime_dir, "/tmp/rt");
    assert_int_equal(cfg->workers, 8);
    assert_int_equal(cfg->work_queue, 64);
    assert_string_equal(cfg->database_url, "postgresql://db/x");
    assert_int_equal(cfg->database_pool, 5);
    assert_int_equal(cfg->database_retry_max_s, 120);
    assert_string_equal(cfg->crypto_key, "k3y");
    assert_string_equal(cfg->crypto_key_file, "/etc/key");
    assert_string_equal(cfg->crypto_previous_keys, "old1,old2");
    assert_string_equal(cfg->operator_token, "op-token");
    assert_string_equal(cfg->log_level, "debug");
    assert_int_equal(cfg->shutdown_timeout_s, 0);
    assert_int_equal(cfg->drain_timeout_s, 5);
    assert_int_equal(cfg->max_body_bytes, 2048);
    assert_int_equal(cfg->job_lease_s, 45);
    assert_int_equal(cfg->job_poll_ms, 250);
    assert_int_equal(cfg->max_jobs, 12);
    assert_int_equal(cfg->backfill_days, 7);
    config_free(cfg);
}

static void test_int_bounds_are_inclusive(void **state)
{
    cfg_fixture *fx = *state;
    hostd_config *cfg = load_ok(fx, "workers = 1;\nwork_queue = 1000000;\n");
    assert_int_equal(cfg->workers, 1);
    assert_int_equal(cfg->work_queue, 1000000);
    config_free(cfg);
    cfg = load_ok(fx, "workers = 256;\nwork_queue = 16;\n");
    assert_int_equal(cfg->workers, 256);
    assert_int_equal(cfg->work_queue, 16);
    config_free(cfg);
}

/* ---- file errors ------------------------------------------------------- */

static void test_wrong_type_names_file_line_and_key(void **state)
{
    cfg_fixture *fx = *state;
    load_fails(fx, "# settings\n"
                   "listen = \"127.0.0.1:8080\";\n"
                   "workers = \"many\";\n");
    assert_names_line(fx, 3);
    assert_contains(fx->err, "'workers'");
    assert_contains(fx->err, "expected an integer");
}

static void test_string_key_given_integer(void **state)
{
    cfg_fixture *fx = *state;
    load_fails(fx, "listen = 8080;\n");
    assert_names_line(fx, 1);
    assert_contains(fx->err, "'listen'");
    assert_contains(fx->err, "expected a string");
}

static void test_out_of_range(void **state)
{
    cfg_fixture *fx = *state;
    load_fails(fx, "\n\nworkers = 0;\n");
    assert_names_line(fx, 3);
    assert_contains(fx->err, "'workers'");
    assert_contains(fx->err, "0 is out of range [1, 256]");

    load_fails(fx, "workers = 257;\n");
    assert_names_line(fx, 1);
    assert_contains(fx->err, "257 is out of range [1, 256]");

    load_fails(fx, "max_body_bytes = 1023;\n");
    assert_contains(fx->err, "'max_body_bytes'");
    assert_contains(fx->err, "1023 is out of range [1024, 67108864]");
}

static void test_out_of_range_int64_value(void **state)
{
    cfg_fixture *fx = *state;
    load_fails(fx, "workers = 4294967300L;\n");
    assert_names_line(fx, 1);
    assert_contains(fx->err, "4294967300 is out of range");
}

static void test_unknown_key(void **state)
{
    cfg_fixture *fx = *state;
    load_fails(fx, "workers = 2;\nwokrers = 3;\n");
    assert_names_line(fx, 2);
    assert_contains(fx->err, "unknown key 'wokrers'");
}

static void test_syntax_error_reports_line(void **state)
{
    cfg_fixture *fx = *state;
    load_fails(fx, "workers = 2;\n"
                   "listen = \"127.0.0.1:1\";\n"
                   "this is not libconfig\n");
    assert_names_line(fx, 3);
    assert_contains(fx->err, "syntax error");
}

static void test_missing_file(void **state)
{
    cfg_fixture *fx = *state;
    char *path = unit_path_join(fx->dir, "absent.conf");
    hostd_config *cfg = config_load(path, fx->err, sizeof fx->err);
    assert_null(cfg);
    assert_contains(fx->err, path);
    assert_contains(fx->err, "cannot read file");
    free(path);
}

static void test_plugins_must_be_a_group(void **state)
{
    cfg_fixture *fx = *state;
    load_fails(fx, "workers = 2;\nplugins = 5;\n");
    assert_names_line(fx, 2);
    assert_contains(fx->err, "'plugins': expected a group");
}

static void test_invalid_log_level(void **state)
{
    cfg_fixture *fx = *state;
    load_fails(fx, "log_level = \"verbose\";\n");
    assert_contains(fx->err, "hostd.conf:1:");
    assert_contains(fx->err, "log_level");
    assert_contains(fx->err, "'verbose'");
}

static void test_empty_plugin_dir_refused(void **state)
{
    cfg_fixture *fx = *state;
    load_fails(fx, "plugin_dir = \"\";\n");
    assert_contains(fx->err, "hostd.conf:1:");
    assert_contains(fx->err, "'plugin_dir'");
    assert_contains(fx->err, "must not be empty");
}

/* ---- environment overrides --------------------------------------------- */

static void test_env_overrides_file(void **state)
{
    cfg_fixture *fx = *state;
    setenv("INGEST_WORKERS", "7", 1);
    setenv("INGEST_LOG_LEVEL", "warn", 1);
    hostd_config *cfg = load_ok(fx, "workers = 3;\nlog_level = \"debug\";\nwork_queue = 32;\n");
    assert_int_equal(cfg->workers, 7);
    assert_string_equal(cfg->log_level, "warn");
    assert_int_equal(cfg->work_queue, 32); /* not overridden: file value stays */
    config_free(cfg);
}

static void test_env_overrides_defaults(void **state)
{
    cfg_fixture *fx = *state;
    setenv("INGEST_DATABASE_URL", "postgresql://env/db", 1);
    setenv("INGEST_MAX_BODY_BYTES", "4096", 1);
    hostd_config *cfg = config_load(NULL, fx->err, sizeof fx->err);
    assert_non_null(cfg);
    assert_string_equal(cfg->database_url, "postgresql://env/db");
    assert_int_equal(cfg->max_body_bytes, 4096);
    config_free(cfg);
}

static void test_env_not_an_integer(void **state)
{
    cfg_fixture *fx = *state;
    setenv("INGEST_WORKERS", "abc", 1);
    assert_null(config_load(NULL, fx->err, sizeof fx->err));
    assert_contains(fx->err, "INGEST_WORKERS");
    assert_contains(fx->err, "'abc' is not an integer");

    setenv("INGEST_WORKERS", "7x", 1);
    assert_null(config_load(NULL, fx->err, sizeof fx->err));
    assert_contains(fx->err, "'7x' is not an integer");

    setenv("INGEST_WORKERS", "", 1);
    assert_null(config_load(NULL, fx->err, sizeof fx->err));
    assert_contains(fx->err, "INGEST_WORKERS");
}

static void test_env_out_of_range(void **state)
{
    cfg_fixture *fx = *state;
    setenv("INGEST_WORKERS", "0", 1);
    assert_null(config_load(NULL, fx->err, sizeof fx->err));
    assert_contains(fx->err, "INGEST_WORKERS");
    assert_contains(fx->err, "0 is out of range [1, 256]");
}

static void test_env_bad_listen(void **state)
{
    cfg_fixture *fx = *state;
    setenv("INGEST_LISTEN", "bad", 1);
    assert_null(config_load(NULL, fx->err, sizeof fx->err));
    assert_contains(fx->err, "listen");
    assert_contains(fx->err, "'bad' is not host:port");
}

/* ---- listen parsing ---------------------------------------------------- */

static void assert_listen(cfg_fixture *fx, const char *listen, const char *host, int port)
{
    setenv("INGEST_LISTEN", listen, 1);
    hostd_config *cfg = config_load(NULL, fx->err, sizeof fx->err);
    if (!cfg) {
        print_error("listen '%s' refused: %s\n", listen, fx->err);
        fail();
    }
    assert_string_equal(cfg->listen, listen);
    assert_string_equal(cfg->listen_host, host);
    assert_int_equal(cfg->listen_port, port);
    config_free(cfg);
}

static void assert_listen_refused(cfg_fixture *fx, const char *listen)
{
    setenv("INGEST_LISTEN", listen, 1);
    hostd_config *cfg = config_load(NULL, fx->err, sizeof fx->err);
    if (cfg) {
        config_free(cfg);
        print_error("listen '%s' was accepted\n", listen);
        fail();
    }
    assert_contains(fx->err, "not host:port");
}

static void test_listen_ipv4_and_ipv6(void **state)
{
    cfg_fixture *fx = *state;
    assert_listen(fx, "127.0.0.1:8080", "127.0.0.1", 8080);
    assert_listen(fx, "[::1]:9000", "::1", 9000);
    assert_listen(fx, "localhost:0", "localhost", 0);
    assert_listen(fx, "example.org:65535", "example.org", 65535);
}

static void test_listen_refused_values(void **state)
{
    cfg_fixture *fx = *state;
    assert_listen_refused(fx, "127.0.0.1");
    assert_listen_refused(fx, ":8080");
    assert_listen_refused(fx, "127.0.0.1:");
    assert_listen_refused(fx, "127.0.0.1:65536");
    assert_listen_refused(fx, "127.0.0.1:-1");
    assert_listen_refused(fx, "127.0.0.1:80x");
}

/* ---- plugin groups ---------------------------------------------------- */

static void test_plugin_group_lookup(void **state)
{
    cfg_fixture *fx = *state;
    hostd_config *cfg = load_ok(fx, "workers = 2;\n"
                                    "plugins = {\n"
                                    "  good = { interval_ms = 5; token = \"t0ken\"; };\n"
                                    "  other = { };\n"
                                    "};\n");
    const config_setting_t *g = config_plugin_group(cfg, "good");
    assert_non_null(g);
    assert_true(config_setting_is_group(g));
    assert_int_equal(config_setting_source_line(g), 3);
    int v = 0;
    assert_true(config_setting_lookup_int(g, "interval_ms", &v));
    assert_int_equal(v, 5);
    assert_non_null(config_plugin_group(cfg, "other"));
    assert_null(config_plugin_group(cfg, "missing"));
    config_free(cfg);
}

/* ---- restart keys ------------------------------------------------------ */

static void test_restart_keys_lists_changed_restart_only_keys(void **state)
{
    cfg_fixture *fx = *state;
    hostd_config *old_cfg = config_load(NULL, fx->err, sizeof fx->err);
    assert_non_null(old_cfg);
    hostd_config *new_cfg = load_ok(fx, "listen = \"127.0.0.1:9999\";\n"
                                        "workers = 9;\n"
                                        "database_url = \"postgresql://other/db\";\n"
                                        /* these change without a restart: */
                                        "log_level = \"debug\";\n"
                                        "operator_token = \"tok\";\n"
                                        "drain_timeout_s = 10;\n"
                                        "plugin_dir = \"/elsewhere\";\n");
    char out[256];
    memset(out, 'x', sizeof out);
    config_restart_keys(old_cfg, new_cfg, out, sizeof out);
    assert_string_equal(out, "listen,workers,database_url");

    config_restart_keys(new_cfg, new_cfg, out, sizeof out);
    assert_string_equal(out, "");
    config_free(old_cfg);
    config_free(new_cfg);
}

static void test_restart_keys_only_non_restart_changes(void **state)
{
    cfg_fixture *fx = *state;
    hostd_config *old_cfg = config_load(NULL, fx->err, sizeof fx->err);
    hostd_config *new_cfg = load_ok(fx, "log_level = \"warn\";\nmax_body_bytes = 4096;\n"
                                        "crypto_key = \"new-key\";\njob_poll_ms = 50;\n");
    char out[64] = "junk";
    config_restart_keys(old_cfg, new_cfg, out, sizeof out);
    assert_string_equal(out, "");
    config_free(old_cfg);
    config_free(new_cfg);
}

static void test_restart_keys_never_overflows(void **state)
{
    cfg_fixture *fx = *state;
    hostd_config *old_cfg = config_load(NULL, fx->err, sizeof fx->err);
    hostd_config *new_cfg = load_ok(fx, "listen = \"127.0.0.1:1\";\nworkers = 9;\n");
    char out[12];
    config_restart_keys(old_cfg, new_cfg, out, sizeof out);
    assert_true(strlen(out) < sizeof out);
    assert_string_equal(out, "listen"); /* "listen,workers" does not fit */
    config_free(old_cfg);
    config_free(new_cfg);
}

/* ---- env names -------------------------------------------------------- */

static void test_env_name(void **state)
{
    (void)state;
    char out[64];
    config_env_name("workers", out, sizeof out);
    assert_string_equal(out, "INGEST_WORKERS");
    config_env_name("max_body_bytes", out, sizeof out);
    assert_string_equal(out, "INGEST_MAX_BODY_BYTES");
    config_env_name("plugins.good.token", out, sizeof out);
    assert_string_equal(out, "INGEST_PLUGINS_GOOD_TOKEN");
}

static void test_env_name_truncates_safely(void **state)
{
    (void)state;
    char out[10];
    memset(out, 'x', sizeof out);
    config_env_name("workers", out, sizeof out);
    assert_string_equal(out, "INGEST_WO");
    char tiny[4];
    config_env_name("workers", tiny, sizeof tiny);
    assert_string_equal(tiny, "ING");
}

#define CFG_TEST(f) cmocka_unit_test_setup_teardown(f, cfg_setup, cfg_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CFG_TEST(test_defaults_without_file),
        CFG_TEST(test_empty_file_gives_defaults),
        CFG_TEST(test_every_key_parsed),
        CFG_TEST(test_int_bounds_are_inclusive),
        CFG_TEST(test_wrong_type_names_file_line_and_key),
        CFG_TEST(test_string_key_given_integer),
        CFG_TEST(test_out_of_range),
        CFG_TEST(test_out_of_range_int64_value),
        CFG_TEST(test_unknown_key),
        CFG_TEST(test_syntax_error_reports_line),
        CFG_TEST(test_missing_file),
        CFG_TEST(test_plugins_must_be_a_group),
        CFG_TEST(test_invalid_log_level),
        CFG_TEST(test_empty_plugin_dir_refused),
        CFG_TEST(test_env_overrides_file),
        CFG_TEST(test_env_overrides_defaults),
        CFG_TEST(test_env_not_an_integer),
        CFG_TEST(test_env_out_of_range),
        CFG_TEST(test_env_bad_listen),
        CFG_TEST(test_listen_ipv4_and_ipv6),
        CFG_TEST(test_listen_refused_values),
        CFG_TEST(test_plugin_group_lookup),
        CFG_TEST(test_restart_keys_lists_changed_restart_only_keys),
        CFG_TEST(test_restart_keys_only_non_restart_changes),
        CFG_TEST(test_restart_keys_never_overflows),
        CFG_TEST(test_env_name),
        CFG_TEST(test_env_name_truncates_safely),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
