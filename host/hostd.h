/* hostd.h — the daemon's shared state, reachable from every module. */
#ifndef HOSTD_HOSTD_H
#define HOSTD_HOSTD_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "crypto.h"
#include "ingest/plugin.h"
#include "loop.h"
#include "metrics.h"
#include "store.h"
#include "workers.h"

#define HOSTD_VERSION "0.1.0"

struct event_base;
struct event;
typedef struct registry registry;
typedef struct httpd httpd;
typedef struct control_server control_server;
typedef struct reload_state reload_state;
typedef struct executor_state executor_state;
typedef struct inbox inbox;
typedef struct dispatch_state dispatch_state;
typedef struct housekeeping_state housekeeping_state;
typedef struct webhook_metrics_table webhook_metrics_table;
typedef struct webhook_cache webhook_cache;
typedef struct sync_scheduler sync_scheduler;
typedef struct oauth_refresher oauth_refresher;
typedef struct http_client http_client;
typedef struct ratelimit_registry ratelimit_registry;

typedef struct hostd {
    struct event_base *base;
    loop_mailbox *mailbox;
    worker_pool *workers;
    store *store;
    metrics_registry *metrics;
    registry *plugins;
    hostd_config *cfg; /* replaced on a successful reload; loop thread only */
    char *config_path; /* -c FILE, NULL for defaults */
    char *runtime_dir; /* private copies of loaded .so files */
    httpd *http;
    control_server *control;
    reload_state *reload;
    executor_state *executor;
    inbox *inbox;                           /* durable webhook inbox (group commit) */
    dispatch_state *dispatch;               /* stored deliveries -> plugin callbacks */
    housekeeping_state *housekeeping;       /* expired keys, old deliveries */
    webhook_metrics_table *webhook_metrics; /* per-provider webhook series */
    webhook_cache *webhook_cache;           /* connection secrets for verification; loop thread */
    sync_scheduler *sync_scheduler;         /* interval/cron sync jobs per connection stream */
    oauth_refresher *oauth;                 /* single-flight OAuth2 token refresh; workers */
    http_client *http_client;               /* outbound HTTP of plugins (api->http_request) */
    ratelimit_registry *limits; /* per provider/connection limiter at rate_limit_share */
    struct event *drain_timer;
    struct event *shutdown_timer;
    int64_t shutdown_deadline_ms;
    atomic_int shutting_down;
    atomic_int plugins_loaded;    /* the first scan has finished */
    atomic_int webhooks_inflight; /* webhook requests accepted but not yet answered */
    int64_t started_us;
    const ingest_host_api *api;
    /* Current keyring; replaced on reload. Retired ones stay allocated until
     * exit because a worker may still be using one. */
    _Atomic(crypto_keyring *) keyring;
    crypto_keyring **retired_keyrings;
    size_t n_retired_keyrings;
    /* Configs replaced by reloads, for the same reason: workers read h->cfg. */
    hostd_config **retired_configs;
    size_t n_retired_configs;

    ingest_metric *m_reloads_ok, *m_reloads_failed;
} hostd;

/* Begin a graceful shutdown (idempotent). Loop thread. */
void hostd_begin_shutdown(hostd *h, const char *why);

/* Build the keyring the config describes; NULL with a reason in err. */
crypto_keyring *hostd_load_keyring(const hostd_config *cfg, char *err, size_t err_len);
/* Install a new keyring (loop thread); the old one is retired. */
void hostd_set_keyring(hostd *h, crypto_keyring *kr);
/* Make `cfg` current (loop thread). The one it replaces stays allocated
 * until exit: a worker may be reading it. */
void hostd_set_config(hostd *h, hostd_config *cfg);

#endif
