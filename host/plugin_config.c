/* plugin_config.c — the host, not the plugin, parses and validates plugin config. */
#include "plugin_config.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "util.h"

typedef struct build_ctx {
    const char *plugin;
    const char *file;
    plugin_conf *conf;
    size_t conf_size;
    char *err;
    size_t err_len;
    char *fp; /* fingerprint under construction */
    size_t fp_len;
    char *base; /* struct the fields' offsets point into */
} build_ctx;

/* Keys the host itself reads from every plugins.<name> group, beside the
 * plugin's own schema. */
#define HOST_FIELD(k, t, d)                                                                        \
    {                                                                                              \
#k, t, NULL, 0, 0, 0, offsetof(plugin_host_conf, k), d                                     \
    }
static const ingest_config_field host_fields[] = {
    HOST_FIELD(webhook_secret, INGEST_CONF_SECRET,
               "secret that verifies this provider's webhooks (single-tenant set-ups)"),
    HOST_FIELD(webhook_secret_previous, INGEST_CONF_SECRET,
               "the secret being rotated out; either verifies while both are set"),
    HOST_FIELD(webhook_tenant_id, INGEST_CONF_STRING,
               "tenant (uuid) of webhooks that arrive without a connection id"),
    HOST_FIELD(oauth_client_id, INGEST_CONF_STRING, "OAuth2 client id used to refresh tokens"),
    HOST_FIELD(oauth_client_secret, INGEST_CONF_SECRET,
               "OAuth2 client secret used to refresh tokens"),
    HOST_FIELD(oauth_token_url, INGEST_CONF_STRING,
               "token endpoint overriding the plugin's own (self-hosted instances)"),
    HOST_FIELD(oauth_authorize_url, INGEST_CONF_STRING,
               "authorization endpoint overriding the plugin's own (POST /connect)"),
};
#define N_HOST_FIELDS (sizeof host_fields / sizeof host_fields[0])

static int own(plugin_conf *conf, void *ptr)
{
    if (!ptr)
        return -1;
    char **grown = realloc(conf->owned, (conf->n_owned + 1) * sizeof *grown);
    if (!grown) {
        free(ptr);
        return -1;
    }
    conf->owned = grown;
    conf->owned[conf->n_owned++] = ptr;
    return 0;
}

static int fp_append(build_ctx *b, const char *key, const char *value)
{
    char *next = NULL;
    if (asprintf(&next, "%s%s=%s\n", b->fp ? b->fp : "", key, value) < 0)
        return -1;
    free(b->fp);
    b->fp = next;
    return 0;
}

static size_t type_size(ingest_config_type t)
{
    switch (t) {
    case INGEST_CONF_STRING:
    case INGEST_CONF_SECRET:
        return sizeof(const char *);
    case INGEST_CONF_INT:
        return sizeof(int64_t);
    case INGEST_CONF_BOOL:
        return sizeof(int);
    case INGEST_CONF_DOUBLE:
        return sizeof(double);
    case INGEST_CONF_STRING_LIST:
        return sizeof(ingest_string_list);
    }
    return 0;
}

static int fail(build_ctx *b, int line, const char *key, const char *fmt, ...) INGEST_PRINTF(4, 5);
static int fail(build_ctx *b, int line, const char *key, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(b->err, b->err_len, "%s:%d: plugins.%s.%s: %s", b->file, line, b->plugin, key,
                 what);
    else
        snprintf(b->err, b->err_len, "%s: plugins.%s.%s: %s", b->file, b->plugin, key, what);
    return -1;
}

static int valid_key_name(const char *key)
{
    if (!key || !*key)
        return 0;
    for (const char *p = key; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            return 0;
    return 1;
}

static int check_bounds(build_ctx *b, const ingest_config_field *f, double v, int line,
                        const char *what)
{
    if (f->min == 0 && f->max == 0)
        return 0;
    if (v < f->min || v > f->max)
        return fail(b, line, f->key, "%s %g is out of range [%g, %g]", what, v, f->min, f->max);
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

/* Store a string-typed value (STRING, SECRET). */
static int put_string(build_ctx *b, const ingest_config_field *f, const char *value, int line)
{
    if (check_bounds(b, f, (double)strlen(value), line, "length") < 0)
        return -1;
    char *copy = strdup(value);
    if (own(b->conf, copy) < 0)
        return fail(b, line, f->key, "out of memory");
    memcpy(b->base + f->offset, &copy, sizeof copy);
    if (f->type == INGEST_CONF_SECRET) {
        char **grown = realloc(b->conf->secrets, (b->conf->n_secrets + 1) * sizeof *grown);
        if (!grown)
            return fail(b, line, f->key, "out of memory");
        b->conf->secrets = grown;
        b->conf->secrets[b->conf->n_secrets++] = copy;
        char digest[65];
        util_sha256_hex(value, strlen(value), digest);
        return fp_append(b, f->key, digest);
    }
    return fp_append(b, f->key, value);
}

static int put_list(build_ctx *b, const ingest_config_field *f, char **items, size_t count,
                    int line)
{
    /* items and the strings are already owned; store the view and fingerprint. */
    ingest_string_list list = {(const char *const *)items, count};
    memcpy(b->base + f->offset, &list, sizeof list);
    /* JSON keeps ["a,b"] and ["a", "b"] apart. */
    json_object *arr = json_object_new_array();
    for (size_t i = 0; arr && i < count; i++)
        json_object_array_add(arr, json_object_new_string(items[i]));
    int rc = arr ? fp_append(b, f->key, json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN))
                 : fail(b, line, f->key, "out of memory");
    json_object_put(arr);
    return rc;
}

/* A textual value (environment or default) of any type. */
static int put_text(build_ctx *b, const ingest_config_field *f, const char *text, int line)
{
    char *slot = b->base + f->offset;
    char *end;
    switch (f->type) {
    case INGEST_CONF_STRING:
    case INGEST_CONF_SECRET:
        return put_string(b, f, text, line);
    case INGEST_CONF_INT: {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno || end == text || *end)
            return fail(b, line, f->key, "'%s' is not an integer", text);
        if (check_bounds(b, f, (double)v, line, "value") < 0)
            return -1;
        int64_t v64 = v;
        memcpy(slot, &v64, sizeof v64);
        return fp_append(b, f->key, text);
    }
    case INGEST_CONF_BOOL: {
        int v;
        if (parse_bool(text, &v) < 0)
            return fail(b, line, f->key, "'%s' is not a boolean", text);
        memcpy(slot, &v, sizeof v);
        return fp_append(b, f->key, v ? "true" : "false");
    }
    case INGEST_CONF_DOUBLE: {
        errno = 0;
        double v = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(v))
            return fail(b, line, f->key, "'%s' is not a number", text);
        if (check_bounds(b, f, v, line, "value") < 0)
            return -1;
        memcpy(slot, &v, sizeof v);
        return fp_append(b, f->key, text);
    }
    case INGEST_CONF_STRING_LIST: {
        size_t count = 0;
        char **items = util_split(text, ',', &count);
        if (!items || own(b->conf, (char *)items) < 0)
            return fail(b, line, f->key, "out of memory");
        for (size_t i = 0; i < count; i++)
            if (own(b->conf, items[i]) < 0)
                return fail(b, line, f->key, "out of memory");
        return put_list(b, f, items, count, line);
    }
    }
    return fail(b, line, f->key, "unsupported type");
}

/* A value from the config file, typed by libconfig. */
static int put_setting(build_ctx *b, const ingest_config_field *f, const config_setting_t *s)
{
    int line = config_setting_source_line(s);
    int type = config_setting_type(s);
    char *slot = b->base + f->offset;
    char text[64];
    switch (f->type) {
    case INGEST_CONF_STRING:
    case INGEST_CONF_SECRET:
        if (type != CONFIG_TYPE_STRING)
            return fail(b, line, f->key, "expected a string");
        return put_string(b, f, config_setting_get_string(s), line);
    case INGEST_CONF_INT:
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
            return fail(b, line, f->key, "expected an integer");
        snprintf(text, sizeof text, "%lld", config_setting_get_int64(s));
        return put_text(b, f, text, line);
    case INGEST_CONF_BOOL: {
        if (type != CONFIG_TYPE_BOOL)
            return fail(b, line, f->key, "expected true or false");
        int v = config_setting_get_bool(s);
        memcpy(slot, &v, sizeof v);
        return fp_append(b, f->key, v ? "true" : "false");
    }
    case INGEST_CONF_DOUBLE: {
        double v;
        if (type == CONFIG_TYPE_FLOAT)
            v = config_setting_get_float(s);
        else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64)
            v = (double)config_setting_get_int64(s);
        else
            return fail(b, line, f->key, "expected a number");
        snprintf(text, sizeof text, "%.17g", v);
        return put_text(b, f, text, line);
    }
    case INGEST_CONF_STRING_LIST: {
        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
            return fail(b, line, f->key, "expected a list of strings like [\"a\", \"b\"]");
        size_t count = (size_t)config_setting_length(s);
        char **items = calloc(count + 1, sizeof *items);
        if (own(b->conf, (char *)items) < 0)
            return fail(b, line, f->key, "out of memory");
        for (size_t i = 0; i < count; i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            if (config_setting_type(e) != CONFIG_TYPE_STRING)
                return fail(b, line, f->key, "element %zu is not a string", i);
            items[i] = strdup(config_setting_get_string(e));
            if (own(b->conf, items[i]) < 0)
                return fail(b, line, f->key, "out of memory");
        }
        return put_list(b, f, items, count, line);
    }
    }
    return fail(b, line, f->key, "unsupported type");
}

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

static int is_host_key(const char *name)
{
    for (size_t i = 0; i < N_HOST_FIELDS; i++)
        if (strcmp(host_fields[i].key, name) == 0)
            return 1;
    return 0;
}

static int check_unknown_keys(build_ctx *b, const ingest_config_field *fields, size_t n,
                              const config_setting_t *group)
{
    for (int i = 0; group && i < config_setting_length(group); i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(s);
        const char *best = NULL;
        int best_d = 3;
        size_t k;
        for (k = 0; k < n; k++) {
            if (strcmp(fields[k].key, name) == 0)
                break;
            int d = edit_distance(fields[k].key, name);
            if (d < best_d)
                best_d = d, best = fields[k].key;
        }
        if (k < n || is_host_key(name))
            continue;
        if (best)
            return fail(b, config_setting_source_line(s), name, "unknown key (did you mean '%s'?)",
                        best);
        return fail(b, config_setting_source_line(s), name, "unknown key");
    }
    return 0;
}

/* Copy the declared schema into host-sized structs and check it is sane. */
static ingest_config_field *copy_schema(build_ctx *b, const ingest_config_field *fields, size_t n,
                                        size_t field_size)
{
    ingest_config_field *out = calloc(n ? n : 1, sizeof *out);
    if (!out) {
        snprintf(b->err, b->err_len, "out of memory");
        return NULL;
    }
    size_t take = field_size < sizeof *out ? field_size : sizeof *out;
    for (size_t i = 0; i < n; i++) {
        memcpy(&out[i], (const char *)fields + i * field_size, take);
        size_t sz = type_size(out[i].type);
        if (!valid_key_name(out[i].key) || sz == 0 || out[i].offset > b->conf_size ||
            sz > b->conf_size - out[i].offset) {
            snprintf(b->err, b->err_len,
                     "plugin %s declares an invalid config field #%zu (%s): bad key, type or "
                     "offset",
                     b->plugin, i, out[i].key && valid_key_name(out[i].key) ? out[i].key : "?");
            free(out);
            return NULL;
        }
    }
    return out;
}

static int fill_field(build_ctx *b, const ingest_config_field *f, const config_setting_t *group)
{
    char env[160], env_key[128];
    snprintf(env_key, sizeof env_key, "plugins_%s_%s", b->plugin, f->key);
    config_env_name(env_key, env, sizeof env);
    const char *env_value = getenv(env);
    if (env_value) {
        build_ctx eb = *b;
        char where[200];
        snprintf(where, sizeof where, "environment %s", env);
        eb.file = where;
        int rc = put_text(&eb, f, env_value, 0);
        b->fp = eb.fp;
        return rc;
    }
    const config_setting_t *s = group ? config_setting_get_member(group, f->key) : NULL;
    if (s)
        return put_setting(b, f, s);
    if (f->default_value)
        return put_text(b, f, f->default_value, 0);
    if (f->required)
        return fail(b, group ? config_setting_source_line(group) : 0, f->key,
                    "required key is missing");
    return 0;
}

/* The plugin may declare a key of the same name itself; then it is the
 * plugin's, and the host reads the plugin's value. */
static int fill_host_fields(build_ctx *b, const config_setting_t *group)
{
    b->base = (char *)&b->conf->host;
    size_t conf_size = b->conf_size;
    b->conf_size = sizeof b->conf->host;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < N_HOST_FIELDS; i++)
        rc = fill_field(b, &host_fields[i], group);
    b->conf_size = conf_size;
    b->base = b->conf->data;
    if (rc == 0 && b->conf->host.webhook_tenant_id &&
        !util_is_uuid(b->conf->host.webhook_tenant_id))
        rc = fail(b, group ? config_setting_source_line(group) : 0, "webhook_tenant_id",
                  "must be a uuid");
    /* The client secret is sent there: only http(s) URLs, nothing curl would
     * read as another protocol. */
    const char *token_url = b->conf->host.oauth_token_url;
    if (rc == 0 && token_url && strncmp(token_url, "https://", 8) != 0 &&
        strncmp(token_url, "http://", 7) != 0)
        rc = fail(b, group ? config_setting_source_line(group) : 0, "oauth_token_url",
                  "must be an http:// or https:// URL");
    /* Users' browsers are sent there: http(s) only as well. */
    const char *authorize_url = b->conf->host.oauth_authorize_url;
    if (rc == 0 && authorize_url && strncmp(authorize_url, "https://", 8) != 0 &&
        strncmp(authorize_url, "http://", 7) != 0)
        rc = fail(b, group ? config_setting_source_line(group) : 0, "oauth_authorize_url",
                  "must be an http:// or https:// URL");
    return rc;
}

int plugin_conf_build(const char *plugin, const ingest_config_field *fields, size_t n_fields,
                      size_t field_size, size_t conf_size, const config_setting_t *group,
                      const char *file, plugin_conf **out, char *err, size_t err_len)
{
    *out = NULL;
    plugin_conf *conf = calloc(1, sizeof *conf);
    build_ctx b = {plugin, file, conf, conf_size, err, err_len, NULL, 0, NULL};
    if (!conf || !(conf->data = calloc(1, conf_size ? conf_size : 1))) {
        free(conf);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (n_fields && (!fields || field_size == 0)) {
        snprintf(err, err_len, "plugin %s declares config fields without an element size", plugin);
        plugin_conf_free(conf);
        return -1;
    }
    if (group && config_setting_type(group) != CONFIG_TYPE_GROUP) {
        snprintf(err, err_len, "%s:%d: plugins.%s: expected a group { ... }", file,
                 config_setting_source_line(group), plugin);
        plugin_conf_free(conf);
        return -1;
    }
    b.base = conf->data;
    ingest_config_field *schema = copy_schema(&b, fields, n_fields, field_size);
    int rc = schema ? check_unknown_keys(&b, schema, n_fields, group) : -1;
    for (size_t i = 0; rc == 0 && i < n_fields; i++)
        rc = fill_field(&b, &schema[i], group);
    free(schema);
    rc = rc == 0 ? fill_host_fields(&b, group) : rc;
    conf->fingerprint = b.fp ? b.fp : strdup("");
    if (rc < 0 || !conf->fingerprint) {
        plugin_conf_free(conf);
        return -1;
    }
    *out = conf;
    return 0;
}

void plugin_conf_free(plugin_conf *conf)
{
    if (!conf)
        return;
    for (size_t i = 0; i < conf->n_owned; i++)
        free(conf->owned[i]);
    free(conf->owned);
    free(conf->secrets);
    free(conf->fingerprint);
    free(conf->data);
    free(conf);
}

void plugin_conf_redact(const plugin_conf *conf, int add)
{
    for (size_t i = 0; conf && i < conf->n_secrets; i++) {
        if (add)
            log_redact_add(conf->secrets[i]);
        else
            log_redact_remove(conf->secrets[i]);
    }
}
