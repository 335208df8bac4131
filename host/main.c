/* main.c — ingest-hostd: parse arguments, start every module, run the loop,
 * shut down gracefully on SIGTERM/SIGINT, reload on SIGHUP. */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "control.h"
#include "dispatch.h"
#include "executor.h"
#include "hostd.h"
#include "http_client.h"
#include "httpd.h"
#include "inbox.h"
#include "instance.h"
#include "log.h"
#include "loop.h"
#include "oauth_refresh.h"
#include "ratelimit.h"
#include "registry.h"
#include "reload.h"
#include "scheduler.h"
#include "sync_scheduler.h"
#include "util.h"
#include "webhook_cache.h"
#include "webhook_housekeeping.h"
#include "webhook_metrics.h"

#define EXIT_CONFIG 2
#define EXIT_START 1
#define DRAIN_CHECK_MS 200

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ingest-hostd [-c FILE] [--check-config] [--version]\n"
            "  -c, --config FILE   configuration file (default %s when it exists)\n"
            "      --check-config  validate the configuration and exit (0 valid, 2 invalid)\n"
            "  -V, --version       print the version and exit\n"
            "Every key can be overridden by INGEST_<KEY>, e.g. INGEST_DATABASE_URL.\n",
            INGEST_DEFAULT_CONFIG);
}

/* Idle: no plugin work, no reload, and every webhook request answered. */
static int all_idle(hostd *h)
{
    return workers_busy(h->workers) == 0 && !reload_busy(h) &&
           atomic_load(&h->webhooks_inflight) == 0;
}

static void on_shutdown_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hostd *h = arg;
    if (all_idle(h) || util_mono_ms() >= h->shutdown_deadline_ms)
        event_base_loopexit(h->base, NULL);
}

static void stop_timers(instance *inst, void *arg)
{
    (void)arg;
    scheduler_stop(inst);
}

void hostd_begin_shutdown(hostd *h, const char *why)
{
    if (atomic_exchange(&h->shutting_down, 1))
        return;
    log_info("shutting down (%s): accepting no new work, draining in-flight work for up to %d s",
             why, h->cfg->shutdown_timeout_s);
    httpd_stop_accepting(h->http);
    control_stop_accepting(h->control);
    executor_stop(h);
    sync_scheduler_stop(h);
    dispatch_stop(h);
    housekeeping_stop(h);
    registry_each(h->plugins, stop_timers, NULL);
    h->shutdown_deadline_ms = util_mono_ms() + (int64_t)h->cfg->shutdown_timeout_s * 1000;
    struct timeval tv = {0, DRAIN_CHECK_MS * 1000};
    h->shutdown_timer = event_new(h->base, -1, EV_PERSIST, on_shutdown_check, h);
    event_add(h->shutdown_timer, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    hostd *h = arg;
    if (sig == SIGHUP) {
        log_info("SIGHUP: reloading the configuration and the plugins directory");
        reload_request(h, NULL, NULL);
    } else {
        hostd_begin_shutdown(h, sig == SIGTERM ? "SIGTERM" : "SIGINT");
    }
}

static void on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reload_collect_drained(arg, 0);
}

crypto_keyring *hostd_load_keyring(const hostd_config *cfg, char *err, size_t err_len)
{
    return crypto_keyring_load(cfg->crypto_key, cfg->crypto_key_file, cfg->crypto_previous_keys,
                               err, err_len);
}

void hostd_set_keyring(hostd *h, crypto_keyring *kr)
{
    crypto_keyring *old = atomic_exchange(&h->keyring, kr);
    if (!old)
        return;
    crypto_keyring **grown =
        realloc(h->retired_keyrings, (h->n_retired_keyrings + 1) * sizeof *grown);
    if (grown) {
        h->retired_keyrings = grown;
        h->retired_keyrings[h->n_retired_keyrings++] = old;
    }
}

void hostd_set_config(hostd *h, hostd_config *cfg)
{
    hostd_config *old = h->cfg;
    h->cfg = cfg;
    if (!old)
        return;
    hostd_config **grown = realloc(h->retired_configs, (h->n_retired_configs + 1) * sizeof *grown);
    if (grown) { /* else the old one leaks: freeing it could crash a worker */
        h->retired_configs = grown;
        h->retired_configs[h->n_retired_configs++] = old;
    }
}

static void free_retired_configs(hostd *h)
{
    for (size_t i = 0; i < h->n_retired_configs; i++)
        config_free(h->retired_configs[i]);
    free(h->retired_configs);
    h->retired_configs = NULL;
    h->n_retired_configs = 0;
}

static void free_keyrings(hostd *h)
{
    crypto_keyring_free(atomic_exchange(&h->keyring, NULL));
    for (size_t i = 0; i < h->n_retired_keyrings; i++)
        crypto_keyring_free(h->retired_keyrings[i]);
    free(h->retired_keyrings);
    h->retired_keyrings = NULL;
    h->n_retired_keyrings = 0;
}

static int make_runtime_dir(hostd *h, char *err, size_t err_len)
{
    const char *base = h->cfg->runtime_dir[0] ? h->cfg->runtime_dir : getenv("TMPDIR");
    char *tmpl = NULL;
    if (asprintf(&tmpl, "%s/ingest-hostd.XXXXXX", base && *base ? base : "/tmp") < 0)
        return snprintf(err, err_len, "out of memory"), -1;
    if (!mkdtemp(tmpl)) {
        snprintf(err, err_len, "cannot create a runtime directory %s: %s", tmpl, strerror(errno));
        free(tmpl);
        return -1;
    }
    h->runtime_dir = tmpl;
    return 0;
}

/* The control socket's directory (e.g. /run/ingest) may not exist yet. */
static void ensure_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    char *dir = dirname(copy);
    if (mkdir(dir, 0750) < 0 && errno != EEXIST)
        log_warn("cannot create %s: %s", dir, strerror(errno));
    free(copy);
}

static int start_modules(hostd *h, const hostd_config *cfg, char *err, size_t err_len)
{
    h->base = event_base_new();
    h->mailbox = h->base ? loop_mailbox_new(h->base) : NULL;
    h->metrics = metrics_new();
    h->plugins = registry_new();
    h->workers = workers_new(cfg->workers, (size_t)cfg->work_queue);
    h->store =
        store_new(cfg->database_url, cfg->database_pool, cfg->database_retry_max_s, "ingest-hostd");
    h->inbox = h->store ? inbox_new(h, cfg->database_url, cfg->webhook_queue, cfg->database_pool,
                                    cfg->database_retry_max_s)
                        : NULL;
    h->webhook_cache = webhook_cache_new();
    h->webhook_metrics = webhook_metrics_new();
    h->limits = ratelimit_new(cfg->rate_limit_share);
    http_client_options hopts = {.limits = h->limits, .metrics = h->metrics};
    h->http_client = h->limits && h->metrics ? http_client_new(&hopts) : NULL;
    if (!h->limits || !h->http_client)
        return snprintf(err, err_len, "cannot create the outbound HTTP client"), -1;
    if (!h->mailbox || !h->metrics || !h->plugins || !h->workers || !h->store || !h->inbox ||
        !h->webhook_cache || !h->webhook_metrics || reload_init(h) < 0 ||
        oauth_refresher_start(h) < 0)
        return snprintf(err, err_len, "cannot allocate the daemon's modules"), -1;
    h->m_reloads_ok = metrics_register(h->metrics, METRIC_COUNTER, "ingest_reloads_total",
                                       "Reloads by outcome", "result=\"ok\"", h, NULL, 0);
    h->m_reloads_failed = metrics_register(h->metrics, METRIC_COUNTER, "ingest_reloads_total",
                                           "Reloads by outcome", "result=\"refused\"", h, NULL, 0);
    return make_runtime_dir(h, err, err_len);
}

static void add_signal(hostd *h, struct event **slot, int sig)
{
    *slot = evsignal_new(h->base, sig, on_signal, h);
    if (*slot)
        event_add(*slot, NULL);
}

static void teardown(hostd *h, struct event **events, size_t n_events)
{
    reload_join(h);
    inbox_stop(h->inbox); /* commits what is queued: those requests were verified */
    workers_stop(h->workers);
    loop_mailbox_free(h->mailbox); /* runs completions posted by the last tasks */
    h->mailbox = NULL;
    reload_collect_drained(h, 1);
    executor_free(h);
    sync_scheduler_free(h);
    dispatch_free(h);
    housekeeping_free(h);
    oauth_refresher_free(h); /* workers are stopped: no refresh in flight */
    inbox_free(h->inbox);
    for (instance *inst = registry_take_all(h->plugins), *next; inst; inst = next) {
        next = inst->next;
        instance_destroy(inst);
    }
    control_free(h->control);
    httpd_free(h->http);
    for (size_t i = 0; i < n_events; i++)
        loop_event_free(events[i]);
    loop_event_free(h->shutdown_timer);
    loop_event_free(h->drain_timer);
    store_free(h->store);
    workers_free(h->workers);
    reload_free(h);
    registry_free(h->plugins);
    webhook_cache_free(h->webhook_cache);
    webhook_metrics_free(h->webhook_metrics);
    http_client_free(h->http_client); /* workers are joined: nobody uses it any more */
    ratelimit_free(h->limits);
    metrics_free(h->metrics);
    if (h->runtime_dir)
        util_rmdir_flat(h->runtime_dir);
    free(h->runtime_dir);
    config_free(h->cfg);
    free_retired_configs(h);
    free_keyrings(h);
    event_base_free(h->base);
    libevent_global_shutdown();
}

static int run_daemon(hostd *h)
{
    char err[1024];
    if (start_modules(h, h->cfg, err, sizeof err) < 0) {
        log_error("cannot start: %s", err);
        return EXIT_START;
    }
    if (reload_startup(h, err, sizeof err) < 0) {
        log_error("invalid configuration: %s", err);
        teardown(h, NULL, 0);
        return EXIT_CONFIG;
    }
    ensure_parent_dir(h->cfg->control_socket);
    h->control = control_start(h, h->cfg->control_socket, err, sizeof err);
    h->http = h->control ? httpd_start(h, h->cfg->listen_host, h->cfg->listen_port, err, sizeof err)
                         : NULL;
    if (!h->control || !h->http) {
        log_error("cannot start: %s", err);
        teardown(h, NULL, 0);
        return EXIT_START;
    }
    if (executor_start(h) < 0 || sync_scheduler_start(h) < 0 || dispatch_start(h) < 0 ||
        housekeeping_start(h) < 0) {
        log_error("cannot start the job executor, the webhook dispatcher or its housekeeping");
        teardown(h, NULL, 0);
        return EXIT_START;
    }
    struct event *signals[3];
    add_signal(h, &signals[0], SIGHUP);
    add_signal(h, &signals[1], SIGTERM);
    add_signal(h, &signals[2], SIGINT);
    struct timeval tv = {0, DRAIN_CHECK_MS * 1000};
    h->drain_timer = event_new(h->base, -1, EV_PERSIST, on_drain_timer, h);
    event_add(h->drain_timer, &tv);
    log_info("ingest-hostd %s started: http %s:%d, control socket %s, plugins from %s",
             HOSTD_VERSION, h->cfg->listen_host, httpd_port(h->http), h->cfg->control_socket,
             h->cfg->plugin_dir);

    event_base_dispatch(h->base);

    if (!all_idle(h)) {
        /* Work is still running plugin code: unloading it would be unsafe. */
        log_warn("shutdown timeout after %d s: %zu unit(s) of work abandoned",
                 h->cfg->shutdown_timeout_s, workers_busy(h->workers));
        _exit(0);
    }
    teardown(h, signals, 3);
    log_info("stopped");
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config_path = NULL;
    int check_only = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'k':
            check_only = 1;
            break;
        case 'V':
            printf("ingest-hostd %s (plugin ABI %d.%d)\n", HOSTD_VERSION, INGEST_ABI_MAJOR,
                   INGEST_ABI_MINOR);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return EXIT_CONFIG;
    }
    if (!config_path && access(INGEST_DEFAULT_CONFIG, R_OK) == 0)
        config_path = INGEST_DEFAULT_CONFIG;

    char err[1024];
    hostd h = {0};
    h.config_path = (char *)config_path;
    h.cfg = config_load(config_path, err, sizeof err);
    if (!h.cfg) {
        fprintf(stderr, "ingest-hostd: invalid configuration: %s\n", err);
        return EXIT_CONFIG;
    }
    crypto_keyring *kr = hostd_load_keyring(h.cfg, err, sizeof err);
    if (!kr) {
        fprintf(stderr, "ingest-hostd: invalid configuration: %s\n", err);
        config_free(h.cfg);
        return EXIT_CONFIG;
    }
    h.keyring = kr;
    if (check_only) {
        printf("configuration %s is valid\n", config_path ? config_path : "(defaults)");
        config_free(h.cfg);
        free_keyrings(&h);
        return 0;
    }
    log_setup(STDERR_FILENO, (ingest_log_level)log_level_parse(h.cfg->log_level));
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() < 0) {
        log_error("libevent has no pthreads support");
        config_free(h.cfg);
        free_keyrings(&h);
        return EXIT_START;
    }
    h.started_us = util_now_us();
    h.api = api_table();
    int rc = run_daemon(&h);
    log_redact_clear();
    return rc;
}
