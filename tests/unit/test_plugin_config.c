/* test_plugin_config.c — plugins.<name> groups validated against a declared schema. */
#include "unit_helpers.h"

#include "config.h"
#include "log.h"
#include "plugin_config.h"
#include "util.h"

#define CONF_FILE "/etc/ingest/hostd.conf" /* only used in messages */

/* ---- the schema of an imaginary plugin "demo" -------------------------- */

typedef struct demo_conf {
    const char *name;        /* STRING, length 1..16, default "demo" */
    int64_t retries;         /* INT 0..10, default 3 */
    int verbose;             /* BOOL, default false */
    double ratio;            /* DOUBLE 0..1, default 0.5 */
    ingest_string_list tags; /* STRING_LIST, default "a,b" */
    const char *api_key;     /* SECRET, required */
    const char *endpoint;    /* STRING, optional, no default */
} demo_conf;

static const ingest_config_field demo_schema[] = {
    {.key = "name",
     .type = INGEST_CONF_STRING,
     .default_value = "demo",
     .min = 1,
     .max = 16,
     .offset = offsetof(demo_conf, name),
     .doc = "display name"},
    {.key = "retries",
     .type = INGEST_CONF_INT,
     .default_value = "3",
     .min = 0,
     .max = 10,
     .offset = offsetof(demo_conf, retries),
     .doc = "retries"},
    {.key = "verbose",
     .type = INGEST_CONF_BOOL,
     .default_value = "false",
     .offset = offsetof(demo_conf, verbose),
     .doc = "chatty"},
    {.key = "ratio",
     .type = INGEST_CONF_DOUBLE,
     .default_value = "0.5",
     .min = 0,
     .max = 1,
     .offset = offsetof(demo_conf, ratio),
     .doc = "share"},
    {.key = "tags",
     .type = INGEST_CONF_STRING_LIST,
     .default_value = "a,b",
     .offset = offsetof(demo_conf, tags),
     .doc = "tags"},
    {.key = "api_key",
     .type = INGEST_CONF_SECRET,
     .required = 1,
     .offset = offsetof(demo_conf, api_key),
     .doc = "secret key"},
    {.key = "endpoint",
     .type = INGEST_CONF_STRING,
     .offset = offsetof(demo_conf, endpoint),
     .doc = "optional URL"},
};
#define N_DEMO (sizeof demo_schema / sizeof demo_schema[0])

static const char *const demo_env_vars[] = {
    "INGEST_PLUGINS_DEMO_NAME",     "INGEST_PLUGINS_DEMO_RETRIES", "INGEST_PLUGINS_DEMO_VERBOSE",
    "INGEST_PLUGINS_DEMO_RATIO",    "INGEST_PLUGINS_DEMO_TAGS",    "INGEST_PLUGINS_DEMO_API_KEY",
    "INGEST_PLUGINS_DEMO_ENDPOINT", "INGEST_PLUGINS_OLD_TOKEN",    "INGEST_PLUGINS_OLD_LIMIT",
};

/* ---- fixture ----------------------------------------------------------- */

typedef struct pc_fixture {
    config_t tree;
    int tree_used;
    plugin_conf *conf;
    char err[1024];
} pc_fixture;

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof demo_env_vars / sizeof demo_env_vars[0]; i++)
        unsetenv(demo_env_vars[i]);
}

static int pc_setup(void **state)
{
    clear_env();
    pc_fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    *state = fx;
    return 0;
}

static int pc_teardown(void **state)
{
    pc_fixture *fx = *state;
    plugin_conf_free(fx->conf);
    if (fx->tree_used)
        config_destroy(&fx->tree);
    log_redact_clear();
    clear_env();
    free(fx);
    return 0;
}

/* Parse a whole config text; return plugins.<plugin> (may be NULL). */
static const config_setting_t *parse_group(pc_fixture *fx, const char *text, const char *plugin)
{
    if (fx->tree_used)
        config_destroy(&fx->tree);
    config_init(&fx->tree);
    fx->tree_used = 1;
    if (!config_read_string(&fx->tree, text)) {
        print_error("test config does not parse: line %d: %s\n", config_error_line(&fx->tree),
                    config_error_text(&fx->tree));
        fail();
    }
    config_setting_t *plugins = config_lookup(&fx->tree, "plugins");
    return plugins ? config_setting_get_member(plugins, plugin) : NULL;
}

/* Build "demo" from `text` (NULL: no group at all); returns the rc. */
static int build_demo(pc_fixture *fx, const char *text)
{
    const config_setting_t *group = text ? parse_group(fx, text, "demo") : NULL;
    plugin_conf_free(fx->conf);
    fx->conf = NULL;
    fx->err[0] = '\0';
    return plugin_conf_build("demo", demo_schema, N_DEMO, sizeof demo_schema[0], sizeof(demo_conf),
                             group, CONF_FILE, &fx->conf, fx->err, sizeof fx->err);
}

static const demo_conf *build_demo_ok(pc_fixture *fx, const char *text)
{
    if (build_demo(fx, text) != 0) {
        print_error("plugin_conf_build failed: %s\n", fx->err);
        fail();
    }
    assert_non_null(fx->conf);
    return fx->conf->data;
}

static const char *build_demo_fails(pc_fixture *fx, const char *text)
{
    int rc = build_demo(fx, text);
    if (rc != -1) {
        print_error("plugin_conf_build accepted:\n%s\n", text ? text : "(no group)");
        fail();
    }
    assert_null(fx->conf);
    assert_true(fx->err[0] != '\0');
    return fx->err;
}

/* A fingerprint copy that survives the next build. */
static char *demo_fingerprint(pc_fixture *fx, const char *text)
{
    build_demo_ok(fx, text);
    char *fp = strdup(fx->conf->fingerprint);
    assert_non_null(fp);
    return fp;
}

static void assert_list(const ingest_string_list *l, size_t count, const char *const *items)
{
    assert_int_equal(l->count, count);
    for (size_t i = 0; i < count; i++)
        assert_string_equal(l->items[i], items[i]);
}

/* ---- values from a group, defaults ------------------------------------- */

static void test_values_from_group(void **state)
{
    pc_fixture *fx = *state;
    const demo_conf *c = build_demo_ok(fx, "plugins = { demo = {\n"
                                           "  name = \"Demo One\";\n"
                                           "  retries = 7;\n"
                                           "  verbose = true;\n"
                                           "  ratio = 0.25;\n"
                                           "  tags = [\"x\", \"y\", \"z\"];\n"
                                           "  api_key = \"s3cr3t-key\";\n"
                                           "  endpoint = \"https://example.org\";\n"
                                           "}; };\n");
    assert_string_equal(c->name, "Demo One");
    assert_int_equal(c->retries, 7);
    assert_int_equal(c->verbose, 1);
    assert_float_equal(c->ratio, 0.25, 0);
    assert_list(&c->tags, 3, (const char *const[]){"x", "y", "z"});
    assert_string_equal(c->api_key, "s3cr3t-key");
    assert_string_equal(c->endpoint, "https://example.org");
    assert_int_equal(fx->conf->n_secrets, 1);
    assert_string_equal(fx->conf->secrets[0], "s3cr3t-key");
}

static void test_defaults_fill_missing_keys(void **state)
{
    pc_fixture *fx = *state;
    const demo_conf *c = build_demo_ok(fx, "plugins = { demo = { api_key = \"k-123456\"; }; };");
    assert_string_equal(c->name, "demo");
    assert_int_equal(c->retries, 3);
    assert_int_equal(c->verbose, 0);
    assert_float_equal(c->ratio, 0.5, 0);
    assert_list(&c->tags, 2, (const char *const[]){"a", "b"});
    assert_string_equal(c->api_key, "k-123456");
    assert_null(c->endpoint); /* no default: left zeroed */
}

static void test_double_accepts_integer_and_list_syntax(void **state)
{
    pc_fixture *fx = *state;
    const demo_conf *c =
        build_demo_ok(fx, "plugins = { demo = { api_key = \"k-123456\"; ratio = 1;\n"
                          "  tags = (\"p\", \"q\"); }; };");
    assert_float_equal(c->ratio, 1.0, 0);
    assert_list(&c->tags, 2, (const char *const[]){"p", "q"});
}

static void test_empty_list_from_file(void **state)
{
    pc_fixture *fx = *state;
    const demo_conf *c =
        build_demo_ok(fx, "plugins = { demo = { api_key = \"k-123456\"; tags = []; }; };");
    assert_int_equal(c->tags.count, 0);
}

static void test_empty_schema_and_no_group(void **state)
{
    pc_fixture *fx = *state;
    int rc = plugin_conf_build("empty", NULL, 0, 0, 0, NULL, CONF_FILE, &fx->conf, fx->err,
                               sizeof fx->err);
    assert_int_equal(rc, 0);
    assert_non_null(fx->conf);
    assert_string_equal(fx->conf->fingerprint, "");
}

/* ---- environment overrides --------------------------------------------- */

static void test_env_overrides_every_type(void **state)
{
    pc_fixture *fx = *state;
    setenv("INGEST_PLUGINS_DEMO_NAME", "from-env", 1);
    setenv("INGEST_PLUGINS_DEMO_RETRIES", "9", 1);
    setenv("INGEST_PLUGINS_DEMO_VERBOSE", "yes", 1);
    setenv("INGEST_PLUGINS_DEMO_RATIO", "0.75", 1);
    setenv("INGEST_PLUGINS_DEMO_TAGS", " one, two ,,three ", 1);
    setenv("INGEST_PLUGINS_DEMO_API_KEY", "env-secret", 1);
    setenv("INGEST_PLUGINS_DEMO_ENDPOINT", "http://env", 1);
    /* the file sets everything too: the environment must win */
    const demo_conf *c =
        build_demo_ok(fx, "plugins = { demo = {\n"
                          "  name = \"file\"; retries = 1; verbose = false;\n"
                          "  ratio = 0.1; tags = [\"f\"]; api_key = \"file-key\";\n"
                          "  endpoint = \"http://file\";\n"
                          "}; };\n");
    assert_string_equal(c->name, "from-env");
    assert_int_equal(c->retries, 9);
    assert_int_equal(c->verbose, 1);
    assert_float_equal(c->ratio, 0.75, 0);
    assert_list(&c->tags, 3, (const char *const[]){"one", "two", "three"});
    assert_string_equal(c->api_key, "env-secret");
    assert_string_equal(c->endpoint, "http://env");
    assert_int_equal(fx->conf->n_secrets, 1);
    assert_string_equal(fx->conf->secrets[0], "env-secret");
}

static void test_env_satisfies_required_key(void **state)
{
    pc_fixture *fx = *state;
    setenv("INGEST_PLUGINS_DEMO_API_KEY", "only-in-env", 1);
    const demo_conf *c = build_demo_ok(fx, NULL);
    assert_string_equal(c->api_key, "only-in-env");
}

static void test_env_bool_spellings(void **state)
{
    pc_fixture *fx = *state;
    setenv("INGEST_PLUGINS_DEMO_API_KEY", "k-123456", 1);
    const char *truthy[] = {"true", "TRUE", "1", "yes", "on", "On"};
    const char *falsy[] = {"false", "0", "no", "off", "OFF"};
    for (size_t i = 0; i < sizeof truthy / sizeof truthy[0]; i++) {
        setenv("INGEST_PLUGINS_DEMO_VERBOSE", truthy[i], 1);
        assert_int_equal(build_demo_ok(fx, NULL)->verbose, 1);
    }
    for (size_t i = 0; i < sizeof falsy / sizeof falsy[0]; i++) {
        setenv("INGEST_PLUGINS_DEMO_VERBOSE", falsy[i], 1);
        assert_int_equal(build_demo_ok(fx, NULL)->verbose, 0);
    }
}

static void expect_env_error(pc_fixture *fx, const char *var, const char *value,
                             const char *key_path, const char *what)
{
    clear_env();
    setenv("INGEST_PLUGINS_DEMO_API_KEY", "k-123456", 1);
    setenv(var, value, 1);
    build_demo_fails(fx, NULL);
    assert_contains(fx->err, "environment ");
    assert_contains(fx->err, var);
    assert_contains(fx->err, key_path);
    assert_contains(fx->err, what);
}

static void test_env_errors_name_variable_and_key(void **state)
{
    pc_fixture *fx = *state;
    expect_env_error(fx, "INGEST_PLUGINS_DEMO_RETRIES", "abc", "plugins.demo.retries",
                     "'abc' is not an integer");
    expect_env_error(fx, "INGEST_PLUGINS_DEMO_RETRIES", "11", "plugins.demo.retries",
                     "value 11 is out of range [0, 10]");
    expect_env_error(fx, "INGEST_PLUGINS_DEMO_VERBOSE", "maybe", "plugins.demo.verbose",
                     "'maybe' is not a boolean");
    expect_env_error(fx, "INGEST_PLUGINS_DEMO_RATIO", "nan", "plugins.demo.ratio",
                     "'nan' is not a number");
    expect_env_error(fx, "INGEST_PLUGINS_DEMO_RATIO", "1.5", "plugins.demo.ratio",
                     "value 1.5 is out of range [0, 1]");
    expect_env_error(fx, "INGEST_PLUGINS_DEMO_NAME", "", "plugins.demo.name",
                     "length 0 is out of range [1, 16]");
}

/* ---- file errors -------------------------------------------------------- */

static void expect_file_error(pc_fixture *fx, const char *group_body, int line,
                              const char *key_path, const char *what)
{
    char text[1024];
    /* line 1 opens the group, the body starts on line 2 */
    snprintf(text, sizeof text, "plugins = { demo = {\n%s\n}; };\n", group_body);
    build_demo_fails(fx, text);
    char where[128];
    snprintf(where, sizeof where, CONF_FILE ":%d: ", line);
    assert_contains(fx->err, where);
    assert_contains(fx->err, key_path);
    assert_contains(fx->err, what);
}

static void test_file_wrong_types(void **state)
{
    pc_fixture *fx = *state;
    expect_file_error(fx, "api_key = \"k-123456\";\nretries = \"x\";", 3, "plugins.demo.retries",
                      "expected an integer");
    expect_file_error(fx, "verbose = 1;\napi_key = \"k-123456\";", 2, "plugins.demo.verbose",
                      "expected true or false");
    expect_file_error(fx, "api_key = \"k-123456\";\n\nratio = \"half\";", 4, "plugins.demo.ratio",
                      "expected a number");
    expect_file_error(fx, "api_key = \"k-123456\";\ntags = \"a\";", 3, "plugins.demo.tags",
                      "expected a list of strings");
    expect_file_error(fx, "api_key = \"k-123456\";\ntags = (\"a\", 1);", 3, "plugins.demo.tags",
                      "element 1 is not a string");
    expect_file_error(fx, "api_key = 12345;", 2, "plugins.demo.api_key", "expected a string");
    expect_file_error(fx, "api_key = \"k-123456\";\nname = true;", 3, "plugins.demo.name",
                      "expected a string");
}

static void test_file_out_of_range(void **state)
{
    pc_fixture *fx = *state;
    expect_file_error(fx, "api_key = \"k-123456\";\nretries = 11;", 3, "plugins.demo.retries",
                      "value 11 is out of range [0, 10]");
    expect_file_error(fx, "api_key = \"k-123456\";\nretries = -1;", 3, "plugins.demo.retries",
                      "value -1 is out of range [0, 10]");
    expect_file_error(fx, "api_key = \"k-123456\";\nratio = 1.5;", 3, "plugins.demo.ratio",
                      "value 1.5 is out of range [0, 1]");
    expect_file_error(fx, "api_key = \"k-123456\";\nname = \"this name is far too long\";", 3,
                      "plugins.demo.name", "length 25 is out of range [1, 16]");
}

static void test_bounds_are_inclusive(void **state)
{
    pc_fixture *fx = *state;
    const demo_conf *c = build_demo_ok(
        fx, "plugins = { demo = { api_key = \"k\"; retries = 10; ratio = 0.0; name = \"x\"; }; };");
    assert_int_equal(c->retries, 10);
    assert_float_equal(c->ratio, 0.0, 0);
    assert_string_equal(c->name, "x");
}

static void test_missing_required_key(void **state)
{
    pc_fixture *fx = *state;
    build_demo_fails(fx, "workers = 2;\nplugins = {\n  demo = { retries = 2; };\n};\n");
    assert_contains(fx->err, CONF_FILE ":3: plugins.demo.api_key: required key is missing");

    /* without any group there is no line to name */
    build_demo_fails(fx, NULL);
    assert_string_equal(fx->err, CONF_FILE ": plugins.demo.api_key: required key is missing");
}

static void test_unknown_key_suggests_closest(void **state)
{
    pc_fixture *fx = *state;
    build_demo_fails(fx, "plugins = { demo = {\n  api_key = \"k-123456\";\n  retires = 2;\n}; };");
    assert_string_equal(fx->err, CONF_FILE
                        ":3: plugins.demo.retires: unknown key (did you mean 'retries'?)");

    build_demo_fails(fx, "plugins = { demo = {\n  api_kye = \"k-123456\";\n}; };");
    assert_contains(fx->err, ":2: plugins.demo.api_kye: unknown key (did you mean 'api_key'?)");
}

static void test_unknown_key_without_close_match(void **state)
{
    pc_fixture *fx = *state;
    build_demo_fails(fx,
                     "plugins = { demo = {\n  api_key = \"k-123456\";\n  frobnicate = 1;\n}; };");
    assert_string_equal(fx->err, CONF_FILE ":3: plugins.demo.frobnicate: unknown key");
    assert_not_contains(fx->err, "did you mean");
}

static void test_group_must_be_a_group(void **state)
{
    pc_fixture *fx = *state;
    build_demo_fails(fx, "plugins = {\n demo = 5;\n};");
    assert_string_equal(fx->err, CONF_FILE ":2: plugins.demo: expected a group { ... }");
}

/* ---- schema validation -------------------------------------------------- */

static int build_with_schema(pc_fixture *fx, const ingest_config_field *fields, size_t n,
                             size_t conf_size)
{
    plugin_conf_free(fx->conf);
    fx->conf = NULL;
    fx->err[0] = '\0';
    return plugin_conf_build("bad", fields, n, sizeof fields[0], conf_size, NULL, CONF_FILE,
                             &fx->conf, fx->err, sizeof fx->err);
}

static void test_invalid_schema_bad_key_name(void **state)
{
    pc_fixture *fx = *state;
    const char *bad_keys[] = {"Upper", "with-dash", "has space", ""};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        const ingest_config_field fields[] = {
            {.key = "fine", .type = INGEST_CONF_INT, .offset = 0},
            {.key = bad_keys[i], .type = INGEST_CONF_INT, .offset = 8},
        };
        assert_int_equal(build_with_schema(fx, fields, 2, 16), -1);
        assert_null(fx->conf);
        assert_string_equal(fx->err, "plugin bad declares an invalid config field #1 (?): bad "
                                     "key, type or offset");
    }
    const ingest_config_field null_key[] = {{.key = NULL, .type = INGEST_CONF_INT}};
    assert_int_equal(build_with_schema(fx, null_key, 1, 16), -1);
    assert_contains(fx->err, "invalid config field #0");
}

static void test_invalid_schema_offset_beyond_conf_size(void **state)
{
    pc_fixture *fx = *state;
    /* an int64 at offset 8 needs 16 bytes */
    const ingest_config_field fields[] = {{.key = "count", .type = INGEST_CONF_INT, .offset = 8}};
    assert_int_equal(build_with_schema(fx, fields, 1, 15), -1);
    assert_string_equal(fx->err, "plugin bad declares an invalid config field #0 (count): bad "
                                 "key, type or offset");
    /* exactly fitting is fine */
    assert_int_equal(build_with_schema(fx, fields, 1, 16), 0);
}

static void test_invalid_schema_unknown_type(void **state)
{
    pc_fixture *fx = *state;
    const ingest_config_field fields[] = {{.key = "x", .type = (ingest_config_type)42}};
    assert_int_equal(build_with_schema(fx, fields, 1, 64), -1);
    assert_contains(fx->err, "invalid config field #0 (x)");
}

static void test_invalid_schema_without_element_size(void **state)
{
    pc_fixture *fx = *state;
    int rc = plugin_conf_build("bad", demo_schema, N_DEMO, 0, sizeof(demo_conf), NULL, CONF_FILE,
                               &fx->conf, fx->err, sizeof fx->err);
    assert_int_equal(rc, -1);
    assert_null(fx->conf);
    assert_string_equal(fx->err, "plugin bad declares config fields without an element size");
}

static void test_invalid_schema_offset_wraps_around(void **state)
{
    pc_fixture *fx = *state;
    /* no default and no value: nothing is written, so the test fails cleanly */
    const ingest_config_field fields[] = {
        {.key = "count", .type = INGEST_CONF_INT, .offset = SIZE_MAX - 3}};
    assert_int_equal(build_with_schema(fx, fields, 1, 16), -1);
}

/* ---- element size: older and newer field structs ------------------------ */

/* ingest_config_field as an older SDK minor might have declared it: without
 * the trailing `doc` member, so elements are smaller than the host's. */
typedef struct old_config_field {
    const char *key;
    ingest_config_type type;
    const char *default_value;
    int required;
    double min, max;
    size_t offset;
} old_config_field;

/* ...and a conf struct from that older plugin, with fewer members. */
typedef struct old_conf {
    const char *token;
    int64_t limit;
    int enabled;
} old_conf;

static void test_older_smaller_field_elements(void **state)
{
    pc_fixture *fx = *state;
    assert_true(sizeof(old_config_field) < sizeof(ingest_config_field));
    static const old_config_field old_schema[] = {
        {"token", INGEST_CONF_SECRET, NULL, 1, 0, 0, offsetof(old_conf, token)},
        {"limit", INGEST_CONF_INT, "5", 0, 1, 100, offsetof(old_conf, limit)},
        {"enabled", INGEST_CONF_BOOL, "true", 0, 0, 0, offsetof(old_conf, enabled)},
    };
    const config_setting_t *group =
        parse_group(fx, "plugins = { old = {\n token = \"old-token\";\n limit = 42;\n}; };", "old");
    int rc = plugin_conf_build("old", (const ingest_config_field *)(const void *)old_schema, 3,
                               sizeof old_schema[0], sizeof(old_conf), group, CONF_FILE, &fx->conf,
                               fx->err, sizeof fx->err);
    if (rc != 0) {
        print_error("old schema refused: %s\n", fx->err);
        fail();
    }
    const old_conf *c = fx->conf->data;
    assert_string_equal(c->token, "old-token");
    assert_int_equal(c->limit, 42);
    assert_int_equal(c->enabled, 1);

    /* bounds of the second element are read at the old stride */
    group = parse_group(fx, "plugins = { old = {\n token = \"old-token\";\n limit = 101;\n}; };",
                        "old");
    plugin_conf_free(fx->conf);
    fx->conf = NULL;
    rc = plugin_conf_build("old", (const ingest_config_field *)(const void *)old_schema, 3,
                           sizeof old_schema[0], sizeof(old_conf), group, CONF_FILE, &fx->conf,
                           fx->err, sizeof fx->err);
    assert_int_equal(rc, -1);
    assert_string_equal(fx->err,
                        CONF_FILE ":3: plugins.old.limit: value 101 is out of range [1, 100]");
}

/* ...and a newer SDK's, with a member the host does not know yet. */
typedef struct new_config_field {
    ingest_config_field base;
    const char *future_member;
    uint64_t more_future;
} new_config_field;

static void test_newer_larger_field_elements(void **state)
{
    pc_fixture *fx = *state;
    static const new_config_field new_schema[] = {
        {{.key = "token",
          .type = INGEST_CONF_STRING,
          .default_value = "dflt",
          .offset = offsetof(old_conf, token)},
         "ignored",
         1},
        {{.key = "limit",
          .type = INGEST_CONF_INT,
          .default_value = "7",
          .min = 0,
          .max = 10,
          .offset = offsetof(old_conf, limit)},
         "ignored",
         2},
    };
    int rc =
        plugin_conf_build("new", &new_schema[0].base, 2, sizeof new_schema[0], sizeof(old_conf),
                          NULL, CONF_FILE, &fx->conf, fx->err, sizeof fx->err);
    assert_int_equal(rc, 0);
    const old_conf *c = fx->conf->data;
    assert_string_equal(c->token, "dflt");
    assert_int_equal(c->limit, 7);
}

/* ---- fingerprint --------------------------------------------------------- */

#define FULL_DEMO                                                                                  \
    "plugins = { demo = { name = \"n\"; retries = 4; verbose = true; ratio = 0.25;\n"              \
    "  tags = [\"x\", \"y\"]; api_key = \"fingerprint-secret\"; endpoint = \"http://e\"; }; };"

static void test_fingerprint_exact_text(void **state)
{
    pc_fixture *fx = *state;
    build_demo_ok(fx, FULL_DEMO);
    char digest[65];
    util_sha256_hex("fingerprint-secret", strlen("fingerprint-secret"), digest);
    char expected[512];
    snprintf(expected, sizeof expected,
             "name=n\nretries=4\nverbose=true\nratio=0.25\ntags=[\"x\",\"y\"]\napi_key=%s\n"
             "endpoint=http://e\n",
             digest);
    assert_string_equal(fx->conf->fingerprint, expected);
}

static void test_fingerprint_equal_for_equal_values(void **state)
{
    pc_fixture *fx = *state;
    char *a = demo_fingerprint(fx, FULL_DEMO);
    /* same values, different layout and order in the file */
    char *b = demo_fingerprint(fx, "plugins = {\n demo = {\n  endpoint = \"http://e\";\n"
                                   "  api_key = \"fingerprint-secret\";\n  tags = (\"x\", \"y\");\n"
                                   "  ratio = 0.25; verbose = true; retries = 4; name = \"n\";\n"
                                   " };\n};\n");
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void test_fingerprint_changes_with_any_value(void **state)
{
    pc_fixture *fx = *state;
    char *base = demo_fingerprint(fx, FULL_DEMO);
    const char *variants[] = {
        "plugins = { demo = { name = \"m\"; retries = 4; verbose = true; ratio = 0.25;\n"
        "  tags = [\"x\", \"y\"]; api_key = \"fingerprint-secret\"; endpoint = \"http://e\"; }; };",
        "plugins = { demo = { name = \"n\"; retries = 5; verbose = true; ratio = 0.25;\n"
        "  tags = [\"x\", \"y\"]; api_key = \"fingerprint-secret\"; endpoint = \"http://e\"; }; };",
        "plugins = { demo = { name = \"n\"; retries = 4; verbose = false; ratio = 0.25;\n"
        "  tags = [\"x\", \"y\"]; api_key = \"fingerprint-secret\"; endpoint = \"http://e\"; }; };",
        "plugins = { demo = { name = \"n\"; retries = 4; verbose = true; ratio = 0.3;\n"
        "  tags = [\"x\", \"y\"]; api_key = \"fingerprint-secret\"; endpoint = \"http://e\"; }; };",
        "plugins = { demo = { name = \"n\"; retries = 4; verbose = true; ratio = 0.25;\n"
        "  tags = [\"x\"]; api_key = \"fingerprint-secret\"; endpoint = \"http://e\"; }; };",
        "plugins = { demo = { name = \"n\"; retries = 4; verbose = true; ratio = 0.25;\n"
        "  tags = [\"x\", \"y\"]; api_key = \"fingerprint-secreT\"; endpoint = \"http://e\"; }; };",
        "plugins = { demo = { name = \"n\"; retries = 4; verbose = true; ratio = 0.25;\n"
        "  tags = [\"x\", \"y\"]; api_key = \"fingerprint-secret\"; }; };",
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char *fp = demo_fingerprint(fx, variants[i]);
        if (strcmp(fp, base) == 0) {
            print_error("variant %zu has the same fingerprint as the base config\n", i);
            fail();
        }
        free(fp);
    }
    free(base);
}

static void test_fingerprint_changes_with_env_override(void **state)
{
    pc_fixture *fx = *state;
    char *base = demo_fingerprint(fx, FULL_DEMO);
    setenv("INGEST_PLUGINS_DEMO_RETRIES", "6", 1);
    char *with_env = demo_fingerprint(fx, FULL_DEMO);
    assert_string_not_equal(base, with_env);
    assert_contains(with_env, "retries=6\n");
    free(base);
    free(with_env);
}

static void test_fingerprint_hides_secret_value(void **state)
{
    pc_fixture *fx = *state;
    build_demo_ok(fx, FULL_DEMO);
    assert_not_contains(fx->conf->fingerprint, "fingerprint-secret");
    setenv("INGEST_PLUGINS_DEMO_API_KEY", "env-only-secret", 1);
    build_demo_ok(fx, FULL_DEMO);
    assert_not_contains(fx->conf->fingerprint, "env-only-secret");
}

static void test_fingerprint_list_elements_with_commas(void **state)
{
    pc_fixture *fx = *state;
    char *one = demo_fingerprint(
        fx, "plugins = { demo = { api_key = \"k-123456\"; tags = [\"a,b\"]; }; };");
    char *two = demo_fingerprint(
        fx, "plugins = { demo = { api_key = \"k-123456\"; tags = [\"a\", \"b\"]; }; };");
    assert_string_not_equal(one, two);
    free(one);
    free(two);
}

/* ---- redaction ----------------------------------------------------------- */

static void test_redact_registers_secret_values(void **state)
{
    pc_fixture *fx = *state;
    build_demo_ok(fx, FULL_DEMO);
    char *before = log_redact("key=fingerprint-secret name=n");
    assert_string_equal(before, "key=fingerprint-secret name=n");
    free(before);

    plugin_conf_redact(fx->conf, 1);
    char *during = log_redact("key=fingerprint-secret name=n");
    assert_string_equal(during, "key=[REDACTED] name=n");
    free(during);

    plugin_conf_redact(fx->conf, 0);
    char *after = log_redact("key=fingerprint-secret name=n");
    assert_string_equal(after, "key=fingerprint-secret name=n");
    free(after);
}

static void test_redact_null_conf_is_noop(void **state)
{
    (void)state;
    plugin_conf_redact(NULL, 1);
    plugin_conf_redact(NULL, 0);
    char *s = log_redact("nothing to hide");
    assert_string_equal(s, "nothing to hide");
    free(s);
}

#define PC_TEST(f) cmocka_unit_test_setup_teardown(f, pc_setup, pc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        PC_TEST(test_values_from_group),
        PC_TEST(test_defaults_fill_missing_keys),
        PC_TEST(test_double_accepts_integer_and_list_syntax),
        PC_TEST(test_empty_list_from_file),
        PC_TEST(test_empty_schema_and_no_group),
        PC_TEST(test_env_overrides_every_type),
        PC_TEST(test_env_satisfies_required_key),
        PC_TEST(test_env_bool_spellings),
        PC_TEST(test_env_errors_name_variable_and_key),
        PC_TEST(test_file_wrong_types),
        PC_TEST(test_file_out_of_range),
        PC_TEST(test_bounds_are_inclusive),
        PC_TEST(test_missing_required_key),
        PC_TEST(test_unknown_key_suggests_closest),
        PC_TEST(test_unknown_key_without_close_match),
        PC_TEST(test_group_must_be_a_group),
        PC_TEST(test_invalid_schema_bad_key_name),
        PC_TEST(test_invalid_schema_offset_beyond_conf_size),
        PC_TEST(test_invalid_schema_unknown_type),
        PC_TEST(test_invalid_schema_without_element_size),
        PC_TEST(test_invalid_schema_offset_wraps_around),
        PC_TEST(test_older_smaller_field_elements),
        PC_TEST(test_newer_larger_field_elements),
        PC_TEST(test_fingerprint_exact_text),
        PC_TEST(test_fingerprint_equal_for_equal_values),
        PC_TEST(test_fingerprint_changes_with_any_value),
        PC_TEST(test_fingerprint_changes_with_env_override),
        PC_TEST(test_fingerprint_hides_secret_value),
        PC_TEST(test_fingerprint_list_elements_with_commas),
        PC_TEST(test_redact_registers_secret_values),
        PC_TEST(test_redact_null_conf_is_noop),
    };
    return cmocka_run_group_tests_name("plugin_config", tests, NULL, NULL);
}
