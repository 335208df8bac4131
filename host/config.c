/* config.c — one table describes every host key: type, default, bounds, doc.
 * File values are read first, then INGEST_<KEY> environment variables win. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef enum { KEY_STRING, KEY_INT, KEY_DOUBLE } key_type;

/* Checks a string value; returns NULL if fine, else why not. */
typedef const char *(*value_check)(const char *value);

typedef struct key_spec {
    const char *key;
    key_type type;
    size_t offset;
    const char *default_value;
    long min, max; /* INT bounds */
    int restart;   /* a change only takes effect after a restart */
    value_check check;
    double dmin, dmax; /* DOUBLE bounds */
} key_spec;

static const char *check_listen(const char *value);
static const char *check_log_level(const char *value);
static const char *check_not_empty(const char *value);
static const char *check_tenant_weights(const char *value);
static const char *check_public_url(const char *value);

/* clang-format off */
#define STR(k, def, restart) \
    {#k, KEY_STRING, offsetof(hostd_config, k), def, 0, 0, restart, NULL, 0, 0}
#define STRC(k, def, restart, check) \
    {#k, KEY_STRING, offsetof(hostd_config, k), def, 0, 0, restart, check, 0, 0}
#define INT(k, def, lo, hi, restart) \
    {#k, KEY_INT, offsetof(hostd_config, k), #def, lo, hi, restart, NULL, 0, 0}
#define DBL(k, def, lo, hi, restart) \
    {#k, KEY_DOUBLE, offsetof(hostd_config, k), #def, 0, 0, restart, NULL, lo, hi}
/* clang-format on */

static const key_spec key_specs[] = {
    STRC(listen, "127.0.0.1:8080", 1, check_listen),
    STRC(plugin_dir, INGEST_DEFAULT_PLUGIN_DIR, 0, check_not_empty),
    STRC(control_socket, "/run/ingest/hostd.sock", 1, check_not_empty),
    STR(runtime_dir, "", 1),
    INT(workers, 4, 1, 256, 1),
    INT(work_queue, 1024, 16, 1000000, 1),
    STR(database_url, "postgresql:///ingest", 1),
    INT(database_pool, 2, 1, 64, 1),
    INT(database_retry_max_s, 30, 1, 3600, 0),
    STR(crypto_key, "", 0),
    STR(crypto_key_file, "", 0),
    STR(crypto_previous_keys, "", 0),
    STR(operator_token, "", 0),
    STRC(log_level, "info", 0, check_log_level),
    INT(shutdown_timeout_s, 30, 0, 3600, 0),
    INT(drain_timeout_s, 60, 1, 86400, 0),
    INT(max_body_bytes, 1048576, 1024, 67108864, 0),
    INT(job_lease_s, 30, 2, 3600, 0),
    INT(job_poll_ms, 1000, 20, 60000, 0),
    INT(max_jobs, 0, 0, 4096, 0),
    INT(backfill_days, 30, 1, 3650, 0),
    INT(http_timeout_s, 30, 1, 3600, 1),
    INT(webhook_queue, 10000, 16, 1000000, 1),
    INT(webhook_max_attempts, 5, 1, 100, 0),
    INT(webhook_retention_days, 7, 0, 36500, 0),
    INT(sync_interval_s, 3600, 1, 31536000, 0),
    INT(sync_jitter_pct, 10, 0, 50, 0),
    INT(schedule_poll_ms, 5000, 50, 600000, 0),
    INT(max_jobs_per_tenant, 0, 0, 4096, 0),
    INT(max_jobs_per_provider, 0, 0, 4096, 0),
    STRC(tenant_weights, "", 0, check_tenant_weights),
    INT(job_max_retries, 3, 0, 100, 0),
    INT(circuit_failure_threshold, 5, 1, 10000, 0),
    INT(circuit_cooldown_s, 60, 1, 86400, 0),
    INT(cursor_lookback_s, 60, 0, 86400, 0),
    DBL(rate_limit_share, 0.7, 0.05, 1.0, 1),
    INT(oauth_refresh_threshold_s, 300, 0, 86400, 1),
    STRC(public_url, "", 0, check_public_url),
    STR(docs_dir, "/usr/share/ingest/docs", 0),
};
#define N_KEYS (sizeof key_specs / sizeof key_specs[0])

void config_env_name(const char *key, char *out, size_t out_len)
{
    size_t n = (size_t)snprintf(out, out_len, "INGEST_");
    for (const char *p = key; *p && n + 1 < out_len; p++)
        out[n++] = (char)toupper((unsigned char)(*p == '.' ? '_' : *p));
    out[n < out_len ? n : out_len - 1] = '\0';
}

static char **str_slot(hostd_config *cfg, const key_spec *k)
{
    return (char **)((char *)cfg + k->offset);
}

static int *int_slot(hostd_config *cfg, const key_spec *k)
{
    return (int *)((char *)cfg + k->offset);
}

static double *dbl_slot(hostd_config *cfg, const key_spec *k)
{
    void *slot = (char *)cfg + k->offset; /* via void *: the offset names a double */
    return slot;
}

static int set_double(hostd_config *cfg, const key_spec *k, double v, const char *where, char *err,
                      size_t err_len)
{
    if (!(v >= k->dmin && v <= k->dmax)) { /* also refuses NaN */
        snprintf(err, err_len, "%s: key '%s': %g is out of range [%g, %g]", where, k->key, v,
                 k->dmin, k->dmax);
        return -1;
    }
    *dbl_slot(cfg, k) = v;
    return 0;
}

static int parse_double(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int set_string(hostd_config *cfg, const key_spec *k, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return -1;
    free(*str_slot(cfg, k));
    *str_slot(cfg, k) = copy;
    return 0;
}

/* Set a string key, checking its value; `where` names the file:line or the
 * environment variable so the message says where the bad value came from. */
static int set_checked_string(hostd_config *cfg, const key_spec *k, const char *value,
                              const char *where, char *err, size_t err_len)
{
    const char *why = k->check ? k->check(value) : NULL;
    if (why) {
        snprintf(err, err_len, "%s: key '%s': '%s' %s", where, k->key, value, why);
        return -1;
    }
    if (set_string(cfg, k, value) < 0) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_int(const char *text, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int set_int(hostd_config *cfg, const key_spec *k, long v, const char *where, char *err,
                   size_t err_len)
{
    if (v < k->min || v > k->max) {
        snprintf(err, err_len, "%s: key '%s': %ld is out of range [%ld, %ld]", where, k->key, v,
                 k->min, k->max);
        return -1;
    }
    *int_slot(cfg, k) = (int)v;
    return 0;
}

static const key_spec *find_key(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(key_specs[i].key, name) == 0)
            return &key_specs[i];
    return NULL;
}

static int apply_defaults(hostd_config *cfg)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const key_spec *k = &key_specs[i];
        if (k->type == KEY_STRING) {
            if (set_string(cfg, k, k->default_value) < 0)
                return -1;
        } else if (k->type == KEY_DOUBLE) {
            *dbl_slot(cfg, k) = strtod(k->default_value, NULL);
        } else {
            *int_slot(cfg, k) = atoi(k->default_value);
        }
    }
    return 0;
}

static int apply_setting(hostd_config *cfg, const config_setting_t *s, char *err, size_t err_len)
{
    char where[PATH_MAX + 32];
    snprintf(where, sizeof where, "%s:%d", cfg->path, config_setting_source_line(s));
    const char *name = config_setting_name(s);
    const key_spec *k = find_key(name);
    if (!k) {
        snprintf(err, err_len, "%s: unknown key '%s'", where, name);
        return -1;
    }
    int type = config_setting_type(s);
    if (k->type == KEY_STRING) {
        if (type != CONFIG_TYPE_STRING) {
            snprintf(err, err_len, "%s: key '%s': expected a string", where, name);
            return -1;
        }
        return set_checked_string(cfg, k, config_setting_get_string(s), where, err, err_len);
    }
    if (k->type == KEY_DOUBLE) {
        if (type != CONFIG_TYPE_FLOAT && type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
            snprintf(err, err_len, "%s: key '%s': expected a number", where, name);
            return -1;
        }
        double v = type == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                                             : (double)config_setting_get_int64(s);
        return set_double(cfg, k, v, where, err, err_len);
    }
    if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
        snprintf(err, err_len, "%s: key '%s': expected an integer", where, name);
        return -1;
    }
    return set_int(cfg, k, (long)config_setting_get_int64(s), where, err, err_len);
}

static int apply_file(hostd_config *cfg, char *err, size_t err_len)
{
    if (!config_read_file(&cfg->tree, cfg->path)) {
        if (config_error_type(&cfg->tree) == CONFIG_ERR_FILE_IO)
            snprintf(err, err_len, "%s: cannot read file", cfg->path);
        else
            snprintf(err, err_len, "%s:%d: %s",
                     config_error_file(&cfg->tree) ? config_error_file(&cfg->tree) : cfg->path,
                     config_error_line(&cfg->tree), config_error_text(&cfg->tree));
        return -1;
    }
    config_setting_t *root = config_root_setting(&cfg->tree);
    for (int i = 0; i < config_setting_length(root); i++) {
        config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        if (strcmp(config_setting_name(s), "plugins") == 0) {
            if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
                snprintf(err, err_len, "%s:%d: key 'plugins': expected a group", cfg->path,
                         config_setting_source_line(s));
                return -1;
            }
            continue;
        }
        if (apply_setting(cfg, s, err, err_len) < 0)
            return -1;
    }
    return 0;
}

static int apply_env(hostd_config *cfg, char *err, size_t err_len)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const key_spec *k = &key_specs[i];
        char env[96];
        config_env_name(k->key, env, sizeof env);
        const char *value = getenv(env);
        if (!value)
            continue;
        char where[128];
        snprintf(where, sizeof where, "environment %s", env);
        if (k->type == KEY_STRING) {
            if (set_checked_string(cfg, k, value, where, err, err_len) < 0)
                return -1;
            continue;
        }
        double d;
        if (k->type == KEY_DOUBLE) {
            if (parse_double(value, &d) < 0) {
                snprintf(err, err_len, "%s: key '%s': '%s' is not a number", where, k->key, value);
                return -1;
            }
            if (set_double(cfg, k, d, where, err, err_len) < 0)
                return -1;
            continue;
        }
        long v;
        if (parse_int(value, &v) < 0) {
            snprintf(err, err_len, "%s: key '%s': '%s' is not an integer", where, k->key, value);
            return -1;
        }
        if (set_int(cfg, k, v, where, err, err_len) < 0)
            return -1;
    }
    return 0;
}

/* Split "host:port" ("[v6]:port" too). */
static int split_host_port(const char *s, char **host_out, int *port_out)
{
    const char *colon = strrchr(s, ':');
    long port;
    if (!colon || colon == s || parse_int(colon + 1, &port) < 0 || port < 0 || port > 65535)
        return -1;
    const char *host = s;
    size_t host_len = (size_t)(colon - s);
    if (host[0] == '[' && host_len > 2 && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    }
    if (host_out && !(*host_out = strndup(host, host_len)))
        return -1;
    if (port_out)
        *port_out = (int)port;
    return 0;
}

static const char *check_listen(const char *value)
{
    return split_host_port(value, NULL, NULL) < 0 ? "is not host:port" : NULL;
}

static const char *check_log_level(const char *value)
{
    return log_level_parse(value) < 0 ? "is not one of debug, info, warn, error" : NULL;
}

static const char *check_not_empty(const char *value)
{
    return value[0] ? NULL : "must not be empty";
}

/* "uuid=weight,uuid=weight" with weights 1..1000 (sync job claims per
 * round-robin pass; tenants not listed weigh 1). */
static const char *check_tenant_weights(const char *value)
{
    const char *p = value;
    while (*p) {
        const char *eq = strchr(p, '=');
        const char *comma = strchr(p, ',');
        if (!eq || (comma && comma < eq) || eq - p != 36)
            return "is not a list of tenant-uuid=weight separated by commas";
        char *end;
        long w = strtol(eq + 1, &end, 10);
        if (end == eq + 1 || w < 1 || w > 1000 || (*end && *end != ','))
            return "has a weight that is not a whole number from 1 to 1000";
        p = *end ? end + 1 : end;
    }
    return NULL;
}

/* The OAuth redirect URI is built on it: empty, or http(s) without a
 * trailing slash. */
static const char *check_public_url(const char *value)
{
    if (!value[0])
        return NULL;
    if (strncmp(value, "https://", 8) != 0 && strncmp(value, "http://", 7) != 0)
        return "must start with http:// or https://";
    return value[strlen(value) - 1] == '/' ? "must not end with /" : NULL;
}

/* Every value was checked where it was set; derive the parts of listen. */
static int derive(hostd_config *cfg, char *err, size_t err_len)
{
    free(cfg->listen_host);
    cfg->listen_host = NULL;
    if (split_host_port(cfg->listen, &cfg->listen_host, &cfg->listen_port) < 0) {
        snprintf(err, err_len, "key 'listen': '%s' is not host:port", cfg->listen);
        return -1;
    }
    return 0;
}

hostd_config *config_load(const char *path, char *err, size_t err_len)
{
    hostd_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    config_init(&cfg->tree);
    cfg->path = strdup(path ? path : "(defaults)");
    if (!cfg->path || apply_defaults(cfg) < 0) {
        snprintf(err, err_len, "out of memory");
        config_free(cfg);
        return NULL;
    }
    if ((path && apply_file(cfg, err, err_len) < 0) || apply_env(cfg, err, err_len) < 0 ||
        derive(cfg, err, err_len) < 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

void config_free(hostd_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < N_KEYS; i++)
        if (key_specs[i].type == KEY_STRING)
            free(*str_slot(cfg, &key_specs[i]));
    free(cfg->listen_host);
    free(cfg->path);
    config_destroy(&cfg->tree);
    free(cfg);
}

const config_setting_t *config_plugin_group(const hostd_config *cfg, const char *plugin)
{
    config_setting_t *plugins = config_lookup((config_t *)&cfg->tree, "plugins");
    if (!plugins)
        return NULL;
    return config_setting_get_member(plugins, plugin);
}

void config_restart_keys(const hostd_config *old_cfg, const hostd_config *new_cfg, char *out,
                         size_t out_len)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N_KEYS; i++) {
        const key_spec *k = &key_specs[i];
        if (!k->restart)
            continue;
        int differs;
        if (k->type == KEY_STRING)
            differs = strcmp(*str_slot((hostd_config *)old_cfg, k),
                             *str_slot((hostd_config *)new_cfg, k)) != 0;
        else if (k->type == KEY_DOUBLE)
            differs =
                *dbl_slot((hostd_config *)old_cfg, k) != *dbl_slot((hostd_config *)new_cfg, k);
        else
            differs =
                *int_slot((hostd_config *)old_cfg, k) != *int_slot((hostd_config *)new_cfg, k);
        if (differs && n + strlen(k->key) + 2 < out_len)
            n += (size_t)snprintf(out + n, out_len - n, "%s%s", n ? "," : "", k->key);
    }
}
