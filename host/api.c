/* api.c — each entry checks its arguments and forwards to the module that
 * owns the behaviour; plugins never reach host internals any other way. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_http.h"
#include "connection_config.h"
#include "crypto.h"
#include "instance.h"
#include "jwt.h"
#include "log.h"
#include "metrics.h"
#include "run.h"
#include "scheduler.h"
#include "secrets.h"
#include "sync_scheduler.h"
#include "util.h"

static void api_log(ingest_ctx *ctx, ingest_run *run, ingest_log_level level, const char *fmt, ...)
{
    if (!ctx || !fmt)
        return;
    log_fields f = {.plugin = ctx->name};
    if (run) {
        f.tenant = run_tenant(run);
        f.job = run_job(run);
        f.delivery = run_delivery(run);
    }
    va_list ap;
    va_start(ap, fmt);
    log_writev(level, &f, fmt, ap);
    va_end(ap);
}

static void api_set_error(ingest_ctx *ctx, const char *fmt, ...)
{
    if (!ctx || !fmt)
        return;
    char text[sizeof ctx->init_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    char *clean = log_redact(text);
    snprintf(ctx->init_error, sizeof ctx->init_error, "%s", clean ? clean : "");
    free(clean);
}

static void api_free(void *ptr) { free(ptr); }

static int api_schedule_every(ingest_ctx *ctx, const char *name, uint32_t interval_ms,
                              ingest_tick_fn fn, void *arg)
{
    if (!ctx)
        return INGEST_EINVAL;
    if (!ctx->in_init)
        return INGEST_ESTATE;
    return scheduler_register(ctx, name, interval_ms, fn, arg);
}

static int api_emit(ingest_run *run, const ingest_signal *signal)
{
    return run ? run_emit(run, signal) : INGEST_EINVAL;
}

static int api_cursor_get(ingest_run *run, const char *stream, char **value)
{
    if (!run || !value)
        return INGEST_EINVAL;
    return run_cursor_get(run, stream, value);
}

static int api_cursor_set(ingest_run *run, const char *stream, const char *value)
{
    return run ? run_cursor_set(run, stream, value) : INGEST_EINVAL;
}

static int api_flush(ingest_run *run) { return run ? run_flush(run) : INGEST_EINVAL; }

static ingest_metric *register_metric(ingest_ctx *ctx, metric_type type, const char *name,
                                      const char *help, const double *bounds, size_t n)
{
    if (!ctx || !ctx->in_init || !metrics_valid_name(name))
        return NULL;
    char full[256], labels[160];
    snprintf(full, sizeof full, "ingest_plugin_%s", name);
    snprintf(labels, sizeof labels, "plugin=\"%s\"", ctx->name);
    return metrics_register(ctx->host->metrics, type, full, help, labels, ctx, bounds, n);
}

static ingest_metric *api_metric_counter(ingest_ctx *ctx, const char *name, const char *help)
{
    return register_metric(ctx, METRIC_COUNTER, name, help, NULL, 0);
}

static ingest_metric *api_metric_gauge(ingest_ctx *ctx, const char *name, const char *help)
{
    return register_metric(ctx, METRIC_GAUGE, name, help, NULL, 0);
}

static ingest_metric *api_metric_histogram(ingest_ctx *ctx, const char *name, const char *help,
                                           const double *bounds, size_t n_bounds)
{
    for (size_t i = 1; bounds && i < n_bounds; i++)
        if (!(bounds[i] > bounds[i - 1]))
            return NULL; /* bounds must increase */
    return register_metric(ctx, METRIC_HISTOGRAM, name, help, bounds, n_bounds);
}

static int api_parse_time(const char *text, int64_t *out_us)
{
    return out_us && util_parse_time(text, out_us) == 0 ? INGEST_OK : INGEST_EINVAL;
}

static int api_secret_get(ingest_run *run, const char *field, char **value)
{
    if (!run || !value)
        return INGEST_EINVAL;
    return run_secret_get(run, field, value);
}

static void api_secret_free(char *value) { crypto_wipe_free(value, 0); }

static void api_warn(ingest_run *run, const char *fmt, ...) INGEST_PRINTF(2, 3);
static void api_warn(ingest_run *run, const char *fmt, ...)
{
    log_fields f = {.plugin = run_instance(run)->name,
                    .tenant = run_tenant(run),
                    .job = run_job(run),
                    .delivery = run_delivery(run)};
    va_list ap;
    va_start(ap, fmt);
    log_writev(INGEST_LOG_WARN, &f, fmt, ap);
    va_end(ap);
}

/* The key is read and used here, so it never reaches plugin memory. */
static int api_jwt_sign_rs256(ingest_run *run, const char *key_field, const char *claims_json,
                              char **jwt)
{
    if (!jwt)
        return INGEST_EINVAL;
    *jwt = NULL;
    if (!run || !key_field || !*key_field || !claims_json)
        return INGEST_EINVAL;
    char *key = NULL;
    int rc = run_secret_get(run, key_field, &key);
    if (rc != INGEST_OK)
        return rc;
    char err[256] = "";
    rc = jwt_sign_rs256(key, strlen(key), claims_json, jwt, err, sizeof err);
    crypto_wipe_free(key, 0);
    if (rc != INGEST_OK)
        api_warn(run, "jwt_sign_rs256 with secret %.64s of connection %s: %s", key_field,
                 run_connection(run), err);
    return rc;
}

/* Field names as the REST API and the store spell them. */
static int field_name_ok(const char *field)
{
    size_t n = field ? strlen(field) : 0;
    if (n == 0 || n > 64)
        return 0;
    for (const char *p = field; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

/* Only the run's own connection, and only if it is this plugin's: the
 * store checks the provider in the same transaction that writes. */
static int api_secret_put(ingest_run *run, const char *field, const char *value,
                          int64_t expires_at_us)
{
    if (!run || !field_name_ok(field) || !value || !*value || strlen(value) > 65536 ||
        expires_at_us < 0)
        return INGEST_EINVAL;
    const char *connection = run_connection(run);
    if (!connection)
        return INGEST_ENOTFOUND;
    instance *inst = run_instance(run);
    hostd *h = inst->host;
    char err[256] = "";
    int rc = secrets_put_owned(h->store, atomic_load(&h->keyring), inst->name, connection, field,
                               value, expires_at_us, err, sizeof err);
    if (rc != INGEST_OK)
        api_warn(run, "secret_put of %s for connection %s failed: %s", field, connection, err);
    return rc;
}

static int api_request_sync(ingest_run *run, const char *stream)
{
    if (!run)
        return INGEST_EINVAL;
    instance *inst = run_instance(run);
    const char *connection = run_connection(run);
    if (!connection || !inst->desc.sync || (stream && !instance_has_stream(inst, stream)))
        return INGEST_ENOTFOUND;
    return sync_scheduler_request(inst->host, connection, stream) == 0 ? INGEST_OK : INGEST_EAGAIN;
}

static int api_connection_config(ingest_run *run, char **json)
{
    if (!json)
        return INGEST_EINVAL;
    *json = NULL;
    return run ? connection_config_get(run, json) : INGEST_EINVAL;
}

static int api_connection_config_merge(ingest_run *run, const char *json_object)
{
    return run ? connection_config_merge(run, json_object) : INGEST_EINVAL;
}

static int api_connection_route(ingest_run *run, const char *setting, const char *value,
                                char connection_id[37])
{
    if (!run || !connection_id)
        return INGEST_EINVAL;
    return connection_route(run, setting, value, connection_id);
}

static int api_reject(ingest_run *run, const char *error, const char *detail_json)
{
    return run ? run_reject(run, error, detail_json) : INGEST_EINVAL;
}

static const ingest_host_api table = {
    .hdr = INGEST_ABI_HEADER(ingest_host_api),
    .log = api_log,
    .set_error = api_set_error,
    .free = api_free,
    .schedule_every = api_schedule_every,
    .emit = api_emit,
    .cursor_get = api_cursor_get,
    .cursor_set = api_cursor_set,
    .flush = api_flush,
    .metric_counter = api_metric_counter,
    .metric_gauge = api_metric_gauge,
    .metric_histogram = api_metric_histogram,
    .metric_add = metrics_add,
    .metric_set = metrics_set,
    .metric_observe = metrics_observe,
    .now_us = util_now_us,
    .sha256_hex = util_sha256_hex,
    .hmac_sha256_hex = util_hmac_sha256_hex,
    .parse_time = api_parse_time,
    .format_time = util_format_time,
    .secret_get = api_secret_get,
    .secret_free = api_secret_free,
    .http_request = api_http_request,
    .http_response_free = api_http_response_free,
    .http_header = api_http_header,
    .http_next_link = api_http_next_link,
    .json_cursor = api_json_cursor,
    .url_with_param = api_url_with_param,
    .retry_after = api_retry_after,
    .request_sync = api_request_sync,
    .jwt_sign_rs256 = api_jwt_sign_rs256,
    .secret_put = api_secret_put,
    .connection_config = api_connection_config,
    .reject = api_reject,
    .connection_config_merge = api_connection_config_merge,
    .connection_route = api_connection_route,
};

const ingest_host_api *api_table(void) { return &table; }
