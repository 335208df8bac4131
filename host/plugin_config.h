/* plugin_config.h — validate a plugins.<name> group against the plugin's
 * declared schema and fill the plugin's conf struct by offset. */
#ifndef HOSTD_PLUGIN_CONFIG_H
#define HOSTD_PLUGIN_CONFIG_H

#include <libconfig.h>
#include <stddef.h>

#include "ingest/plugin.h"

/* Keys the host reads from a plugin's group whatever the plugin declares. */
typedef struct plugin_host_conf {
    const char *webhook_secret;          /* NULL when unset */
    const char *webhook_secret_previous; /* rotation: also accepted */
    const char *webhook_tenant_id;       /* tenant of connection-less webhooks */
    const char *oauth_client_id;         /* OAuth2 token refresh: client credentials */
    const char *oauth_client_secret;     /* NULL for public clients */
    const char *oauth_token_url;         /* overrides the descriptor's auth.token_url */
    const char *oauth_authorize_url;     /* overrides the descriptor's auth.authorize_url */
} plugin_host_conf;

typedef struct plugin_conf {
    void *data;   /* conf_size bytes handed to init(); owns nothing itself */
    char **owned; /* strings and list arrays the data points into */
    size_t n_owned;
    char **secrets; /* values of SECRET keys (also in owned), for redaction */
    size_t n_secrets;
    char *fingerprint;     /* canonical text of every value (secrets hashed): equal = unchanged */
    plugin_host_conf host; /* strings owned through `owned` */
} plugin_conf;

/* Build the conf for `plugin` (the plugin's name, for env overrides
 * INGEST_PLUGINS_<NAME>_<KEY> and messages) from `group` (may be NULL),
 * read from `file`. `fields`/`n_fields`/`field_size` is the plugin's schema
 * as declared; conf_size the size of its struct. On failure returns -1 and
 * writes a message that names file, line and key into err. */
int plugin_conf_build(const char *plugin, const ingest_config_field *fields, size_t n_fields,
                      size_t field_size, size_t conf_size, const config_setting_t *group,
                      const char *file, plugin_conf **out, char *err, size_t err_len);
void plugin_conf_free(plugin_conf *conf);

/* Register / unregister the conf's secret values with the log redactor. */
void plugin_conf_redact(const plugin_conf *conf, int add);

#endif
