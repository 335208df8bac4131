/* test_loader.c — loading the fixture plugins from TEST_PLUGIN_DIR into instances. */
#include "unit_helpers.h"

#include <dirent.h>

#include "api.h"
#include "config.h"
#include "hostd.h"
#include "instance.h"
#include "loader.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "util.h"

#define GOOD_TOKEN "good-plugin-token-1234"

/* ---- fixture: a minimal hostd, a plugin dir and a runtime dir ------------- */

typedef struct loader_fixture {
    hostd h;
    hostd_config *cfg;
    const char *fixtures; /* TEST_PLUGIN_DIR: where the .so fixtures were built */
    char *tmp;            /* everything below lives here */
    char *plugin_dir;
    char *runtime_dir;
    char *conf_path;
    char err[1024];
    char *version;
    instance *inst;
} loader_fixture;

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

static int loader_setup(void **state)
{
    clear_ingest_env();
    log_setup(2, INGEST_LOG_ERROR); /* keep the test output readable */
    loader_fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    fx->fixtures = getenv("TEST_PLUGIN_DIR");
    if (!fx->fixtures || !*fx->fixtures) {
        print_error("TEST_PLUGIN_DIR is not set\n");
        free(fx);
        return -1;
    }
    fx->tmp = unit_make_temp_dir("loader");
    if (!fx->tmp) {
        free(fx);
        return -1;
    }
    fx->plugin_dir = unit_path_join(fx->tmp, "plugins");
    fx->runtime_dir = unit_path_join(fx->tmp, "runtime");
    fx->conf_path = unit_path_join(fx->tmp, "hostd.conf");
    if (mkdir(fx->plugin_dir, 0700) < 0 || mkdir(fx->runtime_dir, 0700) < 0)
        return -1;

    fx->h.api = api_table();
    fx->h.metrics = metrics_new();
    fx->h.plugins = registry_new();
    fx->h.runtime_dir = fx->runtime_dir;
    fx->cfg = config_load(NULL, fx->err, sizeof fx->err);
    if (!fx->h.metrics || !fx->h.plugins || !fx->cfg)
        return -1;
    fx->h.cfg = fx->cfg;
    *state = fx;
    return 0;
}

static int loader_teardown(void **state)
{
    loader_fixture *fx = *state;
    instance_destroy(fx->inst);
    free(fx->version);
    config_free(fx->cfg);
    metrics_free(fx->h.metrics);
    registry_free(fx->h.plugins);
    log_redact_clear();
    log_setup(2, INGEST_LOG_INFO);
    clear_ingest_env();
    unit_remove_tree(fx->tmp);
    free(fx->tmp);
    free(fx->plugin_dir);
    free(fx->runtime_dir);
    free(fx->conf_path);
    free(fx);
    return 0;
}

/* Replace the host config with one read from `text`. */
static void use_config(loader_fixture *fx, const char *text)
{
    assert_int_equal(unit_write_file(fx->conf_path, text, 0600), 0);
    hostd_config *cfg = config_load(fx->conf_path, fx->err, sizeof fx->err);
    if (!cfg) {
        print_error("test config refused: %s\n", fx->err);
        fail();
    }
    config_free(fx->cfg);
    fx->cfg = fx->h.cfg = cfg;
}

/* Copy fixture ingest_<fixture>.so into the plugin dir as `as_file`; returns
 * the new path (malloc'd). */
static char *install(loader_fixture *fx, const char *fixture, const char *as_file)
{
    char src[4096];
    snprintf(src, sizeof src, "%s/ingest_%s.so", fx->fixtures, fixture);
    char *dst = unit_path_join(fx->plugin_dir, as_file);
    assert_non_null(dst);
    if (util_copy_file(src, dst) != 0) {
        print_error("cannot copy fixture %s: %s\n", src, strerror(errno));
        free(dst);
        fail();
    }
    return dst;
}

/* loader_load() of `path` as plugin `name`; the result is kept in fx->inst
 * (destroyed by the teardown) and fx->version. */
static instance *load(loader_fixture *fx, const char *path, const char *name)
{
    free(fx->version);
    fx->version = NULL;
    fx->err[0] = '\0';
    instance *inst =
        loader_load(&fx->h, fx->cfg, path, name, &fx->version, fx->err, sizeof fx->err);
    instance_destroy(fx->inst);
    fx->inst = inst;
    return inst;
}

static instance *load_ok(loader_fixture *fx, const char *path, const char *name)
{
    instance *inst = load(fx, path, name);
    if (!inst) {
        print_error("loading %s failed: %s\n", path, fx->err);
        fail();
    }
    return inst;
}

/* Load and expect failure with `expected` in the message. */
static void load_fails_with(loader_fixture *fx, const char *path, const char *name,
                            const char *expected)
{
    instance *inst = load(fx, path, name);
    if (inst) {
        print_error("loading %s unexpectedly succeeded\n", path);
        fail();
    }
    assert_contains(fx->err, expected);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Nothing of a failed load may remain: no private copy, no metrics. */
static void assert_nothing_left(loader_fixture *fx)
{
    assert_int_equal(count_entries(fx->runtime_dir), 0);
    char *text = metrics_render(fx->h.metrics);
    assert_string_equal(text, "");
    free(text);
}

static void assert_redacted(const char *secret, int expected)
{
    char *out = log_redact(secret);
    if (expected)
        assert_string_equal(out, "[REDACTED]");
    else
        assert_string_equal(out, secret);
    free(out);
}

/* ---- loader_name_from_file -------------------------------------------------- */

static void assert_name(const char *file, const char *expected)
{
    char name[64] = "untouched";
    int ok = loader_name_from_file(file, name, sizeof name);
    if (expected) {
        if (!ok) {
            print_error("'%s' was refused\n", file);
            fail();
        }
        assert_string_equal(name, expected);
    } else if (ok) {
        print_error("'%s' was accepted as '%s'\n", file, name);
        fail();
    }
}

static void test_name_from_file(void **state)
{
    (void)state;
    assert_name("ingest_good.so", "good");
    assert_name("/usr/lib/ingest/plugins/ingest_github.so", "github");
    assert_name("ingest_a.so", "a");
    assert_name("ingest_x_1.so", "x_1");
    assert_name("ingest_9.so", "9");
    assert_name("/tmp/ingest_dir.so/ingest_inner.so", "inner");
    assert_name("ingest_.so", NULL);
    assert_name("ingest_Good.so", NULL);
    assert_name("ingest_a-b.so", NULL);
    assert_name("ingest_a.b.so", NULL);
    assert_name("good.so", NULL);
    assert_name("ingest-good.so", NULL);
    assert_name("ingest_good.so.1", NULL);
    assert_name("ingest_good.sox", NULL);
    assert_name("ingest_good", NULL);
    assert_name("libingest_good.so", NULL);
    assert_name("", NULL);
    assert_name("/plugins/", NULL);
}

static void test_name_from_file_buffer_size(void **state)
{
    (void)state;
    char exact[5], small[4];
    assert_int_equal(loader_name_from_file("ingest_good.so", exact, sizeof exact), 1);
    assert_string_equal(exact, "good");
    assert_int_equal(loader_name_from_file("ingest_good.so", small, sizeof small), 0);
}

/* ---- successful loads ---------------------------------------------------------- */

static void test_load_good(void **state)
{
    loader_fixture *fx = *state;
    char *path = install(fx, "good", "ingest_good.so");
    instance *inst = load_ok(fx, path, "good");

    assert_int_equal(inst->status, INSTANCE_LOADED);
    assert_string_equal(inst->name, "good");
    assert_string_equal(inst->version, "1.0.0");
    assert_string_equal(fx->version, "1.0.0");
    assert_string_equal(inst->description, "test plugin good");
    assert_string_equal(inst->file, path);
    assert_string_equal(inst->desc.name, "good");
    assert_true(inst->initialized);
    assert_false(inst->in_init);
    assert_non_null(inst->state);
    assert_non_null(inst->conf);
    assert_null(inst->schedules); /* interval_ms defaults to 0 */
    assert_true(inst->since_us > 0);

    char sha[65];
    assert_int_equal(util_sha256_file(path, sha), 0);
    assert_string_equal(inst->sha256, sha);

    /* it runs from a private copy in the runtime dir */
    assert_non_null(inst->copy_path);
    assert_int_equal(strncmp(inst->copy_path, fx->runtime_dir, strlen(fx->runtime_dir)), 0);
    assert_int_equal(access(inst->copy_path, R_OK), 0);
    assert_int_equal(count_entries(fx->runtime_dir), 1);

    /* host metrics and the plugin's own counter, labelled with its name */
    char *text = metrics_render(fx->h.metrics);
    assert_contains(text, "ingest_plugin_ticks_total{plugin=\"good\"} 0\n");
    assert_contains(text, "ingest_plugin_tick_failures_total{plugin=\"good\"} 0\n");
    assert_contains(text, "ingest_plugin_test_ticks_total{plugin=\"good\"} 0\n");
    free(text);

    /* destroying it removes the copy and every metric it owned */
    instance_destroy(fx->inst);
    fx->inst = NULL;
    assert_nothing_left(fx);
    free(path);
}

static void test_load_other_plugins_and_versions(void **state)
{
    loader_fixture *fx = *state;
    char *other = install(fx, "other", "ingest_other.so");
    instance *inst = load_ok(fx, other, "other");
    assert_string_equal(inst->name, "other");
    assert_string_equal(inst->version, "0.3.0");

    char *v2 = install(fx, "good_v2", "ingest_good.so");
    inst = load_ok(fx, v2, "good");
    assert_string_equal(inst->version, "2.0.0");
    assert_string_equal(fx->version, "2.0.0");
    free(other);
    free(v2);
}

static void test_two_generations_get_distinct_copies(void **state)
{
    loader_fixture *fx = *state;
    char *path = install(fx, "good", "ingest_good.so");
    char *version = NULL;
    instance *first = loader_load(&fx->h, fx->cfg, path, "good", &version, fx->err, sizeof fx->err);
    assert_non_null(first);
    free(version);
    instance *second = load_ok(fx, path, "good");
    assert_string_not_equal(first->copy_path, second->copy_path);
    assert_int_equal(count_entries(fx->runtime_dir), 2);
    assert_ptr_not_equal(first->state, second->state);
    instance_destroy(first);
    assert_int_equal(count_entries(fx->runtime_dir), 1);
    free(path);
}

static void test_plugin_config_group_reaches_init(void **state)
{
    loader_fixture *fx = *state;
    use_config(fx, "plugins = {\n  good = {\n    token = \"" GOOD_TOKEN "\";\n"
                   "    tenant_id = \"00000000-0000-4000-8000-000000000002\";\n  };\n};\n");
    char *path = install(fx, "good", "ingest_good.so");
    instance *inst = load_ok(fx, path, "good");
    assert_int_equal(inst->conf->n_secrets, 1);
    assert_string_equal(inst->conf->secrets[0], GOOD_TOKEN);
    /* the secret is redacted from logs while the instance lives */
    assert_redacted(GOOD_TOKEN, 1);
    instance_destroy(fx->inst);
    fx->inst = NULL;
    assert_redacted(GOOD_TOKEN, 0);
    free(path);
}

static void test_conf_for_matches_fingerprint(void **state)
{
    loader_fixture *fx = *state;
    char *path = install(fx, "good", "ingest_good.so");
    instance *inst = load_ok(fx, path, "good");
    plugin_conf *same = loader_conf_for(inst, fx->cfg, fx->err, sizeof fx->err);
    assert_non_null(same);
    assert_string_equal(same->fingerprint, inst->conf->fingerprint);
    plugin_conf_free(same);

    use_config(fx, "plugins = { good = { tick_sleep_ms = 5; }; };");
    plugin_conf *changed = loader_conf_for(inst, fx->cfg, fx->err, sizeof fx->err);
    assert_non_null(changed);
    assert_string_not_equal(changed->fingerprint, inst->conf->fingerprint);
    plugin_conf_free(changed);

    use_config(fx, "plugins = { good = { tick_sleep_ms = \"slow\"; }; };");
    assert_null(loader_conf_for(inst, fx->cfg, fx->err, sizeof fx->err));
    assert_contains(fx->err, "plugins.good.tick_sleep_ms");
    free(path);
}

/* ---- refused plugins ------------------------------------------------------------ */

static void test_missing_entry_symbol(void **state)
{
    loader_fixture *fx = *state;
    char *path = install(fx, "nosym", "ingest_nosym.so");
    load_fails_with(fx, path, "nosym", "entry symbol ingest_plugin_v1 not found");
    assert_string_equal(fx->err, "not an ingest plugin: entry symbol ingest_plugin_v1 not found");
    assert_null(fx->version);
    assert_nothing_left(fx);
    free(path);
}

static void test_abi_major_in_symbol_name(void **state)
{
    loader_fixture *fx = *state;
    char *path = install(fx, "abi2", "ingest_abi2.so");
    load_fails_with(fx, path, "abi2", "ABI mismatch");
    assert_contains(fx->err, "ingest_plugin_v2");
    assert_contains(fx->err, "ABI major 2");
    assert_null(fx->version);
    assert_nothing_left(fx);
    free(path);
}

static void test_abi_major_in_descriptor_header(void **state)
{
    loader_fixture *fx = *state;
    char *path = install(fx, "hdrmajor", "ingest_hdrmajor.so");
    load_fails_with(fx, path, "hdrmajor", "ABI mismatch");
    assert_string_equal(fx->err,
                        "ABI mismatch: plugin built for ABI major 2, this host speaks ABI major 1");
    assert_null(fx->version);
    assert_nothing_left(fx);
    free(path);
}

static void test_not_a_shared_object(void **state)
{
    loader_fixture *fx = *state;
    char *path = unit_path_join(fx->plugin_dir, "ingest_garbage.so");
    assert_int_equal(unit_write_file(path, "this is just text, not ELF\n", 0644), 0);
    load_fails_with(fx, path, "garbage", "not a loadable shared object");
    /* the message must not point at the private copy */
    assert_not_contains(fx->err, fx->runtime_dir);
    assert_nothing_left(fx);
    free(path);
}

static void test_descriptor_name_must_match_file(void **state)
{
    loader_fixture *fx = *state;
    char *path = install(fx, "good", "ingest_wrong.so");
    load_fails_with(fx, path, "wrong", "does not match file name");
    assert_string_equal(fx->err, "descriptor name 'good' does not match file name ingest_wrong.so");
    assert_nothing_left(fx);
    free(path);
}

static void test_init_failure(void **state)
{
    loader_fixture *fx = *state;
    use_config(fx, "plugins = { good = { fail_init = true; }; };");
    char *path = install(fx, "good", "ingest_good.so");
    load_fails_with(fx, path, "good", "init failed");
    assert_contains(fx->err, "fail_init");
    assert_string_equal(fx->err,
                        "init failed (status -1): refusing to start because fail_init is set");
    /* the version was known before init ran */
    assert_non_null(fx->version);
    assert_string_equal(fx->version, "1.0.0");
    assert_nothing_left(fx);
    free(path);
}

static void test_init_failure_from_environment(void **state)
{
    loader_fixture *fx = *state;
    setenv("INGEST_PLUGINS_GOOD_FAIL_INIT", "true", 1);
    char *path = install(fx, "good", "ingest_good.so");
    load_fails_with(fx, path, "good", "init failed");
    unsetenv("INGEST_PLUGINS_GOOD_FAIL_INIT");
    load_ok(fx, path, "good");
    free(path);
}

static void test_invalid_plugin_config(void **state)
{
    loader_fixture *fx = *state;
    use_config(fx, "workers = 2;\nplugins = {\n  good = {\n    interval_ms = \"x\";\n  };\n};\n");
    char *path = install(fx, "good", "ingest_good.so");
    load_fails_with(fx, path, "good", "plugins.good.interval_ms");
    char where[4200];
    snprintf(where, sizeof where, "%s:4: ", fx->conf_path);
    assert_contains(fx->err, where);
    assert_contains(fx->err, "expected an integer");
    assert_nothing_left(fx);
    free(path);
}

static void test_unknown_plugin_config_key(void **state)
{
    loader_fixture *fx = *state;
    use_config(fx, "plugins = { good = { intervl_ms = 5; }; };");
    char *path = install(fx, "good", "ingest_good.so");
    load_fails_with(fx, path, "good",
                    "plugins.good.intervl_ms: unknown key (did you mean "
                    "'interval_ms'?)");
    free(path);
}

static void test_refuses_symlink(void **state)
{
    loader_fixture *fx = *state;
    char *real = install(fx, "good", "real_good.so");
    char *link = unit_path_join(fx->plugin_dir, "ingest_good.so");
    assert_int_equal(symlink(real, link), 0);
    load_fails_with(fx, link, "good", "refusing symlink");
    assert_nothing_left(fx);
    free(real);
    free(link);
}

static void test_refuses_writable_by_others(void **state)
{
    loader_fixture *fx = *state;
    char *path = install(fx, "good", "ingest_good.so");
    assert_int_equal(chmod(path, 0666), 0);
    load_fails_with(fx, path, "good", "group- or world-writable");
    assert_int_equal(chmod(path, 0620), 0);
    load_fails_with(fx, path, "good", "group- or world-writable");
    assert_int_equal(chmod(path, 0602), 0);
    load_fails_with(fx, path, "good", "group- or world-writable");
    assert_int_equal(chmod(path, 0644), 0);
    load_ok(fx, path, "good");
    free(path);
}

static void test_refuses_non_regular_and_missing(void **state)
{
    loader_fixture *fx = *state;
    char *dir = unit_path_join(fx->plugin_dir, "ingest_dir.so");
    assert_int_equal(mkdir(dir, 0755), 0);
    load_fails_with(fx, dir, "dir", "is not a regular file");
    char *missing = unit_path_join(fx->plugin_dir, "ingest_missing.so");
    load_fails_with(fx, missing, "missing", "cannot stat");
    assert_nothing_left(fx);
    free(dir);
    free(missing);
}

/* ---- secrets across generations --------------------------------------------- */

static void test_secret_stays_redacted_while_another_generation_uses_it(void **state)
{
    /* An old and a new generation share the secret during a reload (or a
     * failed reload attempt is torn down while the old one serves):
     * destroying one must not unmask the other's secret. */
    loader_fixture *fx = *state;
    use_config(fx, "plugins = { good = { token = \"" GOOD_TOKEN "\"; }; };");
    char *path = install(fx, "good", "ingest_good.so");
    char *version = NULL;
    instance *old_gen =
        loader_load(&fx->h, fx->cfg, path, "good", &version, fx->err, sizeof fx->err);
    assert_non_null(old_gen);
    free(version);
    load_ok(fx, path, "good"); /* the new generation, same token */
    instance_destroy(old_gen); /* the old one drained */
    assert_redacted(GOOD_TOKEN, 1);
    instance_destroy(fx->inst); /* the last user is gone */
    fx->inst = NULL;
    assert_redacted(GOOD_TOKEN, 0);
    free(path);
}

#define LOADER_TEST(f) cmocka_unit_test_setup_teardown(f, loader_setup, loader_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_from_file),
        cmocka_unit_test(test_name_from_file_buffer_size),
        LOADER_TEST(test_load_good),
        LOADER_TEST(test_load_other_plugins_and_versions),
        LOADER_TEST(test_two_generations_get_distinct_copies),
        LOADER_TEST(test_plugin_config_group_reaches_init),
        LOADER_TEST(test_conf_for_matches_fingerprint),
        LOADER_TEST(test_missing_entry_symbol),
        LOADER_TEST(test_abi_major_in_symbol_name),
        LOADER_TEST(test_abi_major_in_descriptor_header),
        LOADER_TEST(test_not_a_shared_object),
        LOADER_TEST(test_descriptor_name_must_match_file),
        LOADER_TEST(test_init_failure),
        LOADER_TEST(test_init_failure_from_environment),
        LOADER_TEST(test_invalid_plugin_config),
        LOADER_TEST(test_unknown_plugin_config_key),
        LOADER_TEST(test_refuses_symlink),
        LOADER_TEST(test_refuses_writable_by_others),
        LOADER_TEST(test_refuses_non_regular_and_missing),
        LOADER_TEST(test_secret_stays_redacted_while_another_generation_uses_it),
    };
    return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
