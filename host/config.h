/* config.h — the daemon's settings: libconfig file + INGEST_* environment overrides. */
#ifndef HOSTD_CONFIG_H
#define HOSTD_CONFIG_H

#include <libconfig.h>
#include <stddef.h>

typedef struct hostd_config {
    char *path; /* the file it was read from */

    char *listen;      /* host:port */
    char *listen_host; /* derived from listen */
    int listen_port;   /* derived from listen */
    char *plugin_dir;
    char *control_socket;
    char *runtime_dir; /* private copies of loaded plugins */
    int workers;
    int work_queue; /* worker queue capacity */
    char *database_url;
    int database_pool;
    int database_retry_max_s;
    char *crypto_key;
    char *crypto_key_file;
    char *crypto_previous_keys; /* comma-separated, decryption only (rotation) */
    char *operator_token;
    char *log_level;
    int shutdown_timeout_s;
    int drain_timeout_s;
    int max_body_bytes;
    int job_lease_s;            /* a claimed job is ours this long without a heartbeat */
    int job_poll_ms;            /* how often to look for due jobs */
    int max_jobs;               /* sync jobs running at once; 0 = workers */
    int backfill_days;          /* first sync without a cursor starts this far back */
    int http_timeout_s;         /* a client must send its request within this */
    int webhook_queue;          /* deliveries waiting for their commit, at most */
    int webhook_max_attempts;   /* processing tries before a delivery is dead-lettered */
    int webhook_retention_days; /* processed deliveries are removed after this; 0 = kept */
    /* Sync engine (sync_scheduler.c, executor.c) */
    int sync_interval_s;       /* stream schedule when neither plugin nor connection sets one */
    int sync_jitter_pct;       /* ± jitter of interval schedules, percent */
    int schedule_poll_ms;      /* how often the scheduler looks for due streams */
    int max_jobs_per_tenant;   /* sync jobs of one tenant at once on this daemon; 0 = no cap */
    int max_jobs_per_provider; /* sync jobs of one provider at once on this daemon; 0 = no cap */
    char *tenant_weights;      /* "uuid=3,uuid=2": claim shares per round; default 1 */
    int job_max_retries;       /* retries after the first attempt before a job is dead */
    int circuit_failure_threshold; /* consecutive failed jobs that open a provider's circuit */
    int circuit_cooldown_s;        /* an open circuit lets one probe job through after this */
    int cursor_lookback_s;         /* ingest_job.lookback_us: re-read this much before a cursor */
    double rate_limit_share;       /* share of a vendor's declared quota plugins may spend */
    int oauth_refresh_threshold_s; /* refresh an OAuth2 access token this close to expiry */
    char *public_url; /* base URL of this daemon for OAuth redirects; "" = http://<listen> */
    char *docs_dir;   /* local swagger-ui-dist files for GET /docs */

    config_t tree; /* kept for the plugins.<name> groups */
} hostd_config;

/* Read `path` (NULL: built-in defaults only), apply environment overrides,
 * validate. On failure returns NULL and writes a message naming the file, line
 * and key into err. The result is freed with config_free(). */
hostd_config *config_load(const char *path, char *err, size_t err_len);
void config_free(hostd_config *cfg);

/* The plugins.<name> group, or NULL when the file has none. Borrowed from cfg. */
const config_setting_t *config_plugin_group(const hostd_config *cfg, const char *plugin);

/* Names of host keys whose change needs a restart (listen, workers, ...):
 * writes a comma-separated list of those that differ into out. */
void config_restart_keys(const hostd_config *old_cfg, const hostd_config *new_cfg, char *out,
                         size_t out_len);

/* Environment variable for a key: INGEST_ + upper-case key. */
void config_env_name(const char *key, char *out, size_t out_len);

#endif
