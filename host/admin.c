/* admin.c — validate the request, call the store module, shape the answer. */
#include "admin.h"

#include <stdio.h>
#include <string.h>

#include "connections.h"
#include "deadletters.h"
#include "instance.h"
#include "log.h"
#include "registry.h"
#include "secrets.h"
#include "util.h"

static const char *get_str(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static json_object *get_obj(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
        return NULL;
    return v;
}

/* The kind to store: the one asked for, which must be a known kind and,
 * when the provider's plugin is loaded, one it accepts; else the plugin's
 * own kind ("token" while it is not loaded, as before ABI minor 2). NULL
 * with a reason in err. */
static const char *connection_kind(hostd *h, const char *provider, const char *asked, char *err,
                                   size_t err_len)
{
    ingest_auth_kind kind = INGEST_AUTH_TOKEN;
    if (asked && instance_auth_kind_parse(asked, &kind) < 0) {
        snprintf(err, err_len, "auth_kind must be one of none, token, oauth2, basic, aws, app");
        return NULL;
    }
    instance *inst = h->plugins ? registry_acquire(h->plugins, provider) : NULL;
    int ok = 1;
    if (inst && !asked) {
        kind = inst->desc.auth.kind;
    } else if (inst && !instance_accepts_auth(inst, kind)) {
        char accepted[128];
        instance_auth_kinds_text(inst, accepted, sizeof accepted);
        snprintf(err, err_len, "provider %s does not accept auth_kind %s (it accepts: %s)",
                 provider, asked, accepted);
        ok = 0;
    }
    if (inst)
        instance_release(inst);
    const char *name = instance_auth_kind_name(kind);
    if (ok && !name)
        snprintf(err, err_len, "provider %s declares an auth kind this host does not know",
                 provider);
    return ok ? name : NULL;
}

json_object *admin_connection_add(hostd *h, json_object *req, char *err, size_t err_len)
{
    const char *tenant = get_str(req, "tenant_id");
    const char *provider = get_str(req, "provider");
    json_object *secrets = get_obj(req, "secrets");
    json_object *any = NULL;
    if (!util_is_uuid(tenant)) {
        snprintf(err, err_len, "tenant_id must be a UUID");
        return NULL;
    }
    if (!provider || !*provider) {
        snprintf(err, err_len, "provider is required");
        return NULL;
    }
    if (json_object_object_get_ex(req, "secrets", &any) && !secrets) {
        snprintf(err, err_len, "secrets must be an object of field: \"value\"");
        return NULL;
    }
    const char *auth_kind = connection_kind(h, provider, get_str(req, "auth_kind"), err, err_len);
    if (!auth_kind)
        return NULL;
    char id[37] = "";
    int rc = secrets_create_connection(h->store, atomic_load(&h->keyring), tenant, provider,
                                       auth_kind, get_str(req, "name"), get_obj(req, "config"),
                                       secrets, id, err, err_len);
    if (rc != INGEST_OK)
        return NULL;
    log_write(INGEST_LOG_INFO, &(log_fields){.plugin = provider, .tenant = tenant},
              "connection %s (%s) created with %d encrypted secret(s)", id, auth_kind,
              secrets ? json_object_object_length(secrets) : 0);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "id", json_object_new_string(id));
    return out;
}

json_object *admin_rotate_key(hostd *h, json_object *req, char *err, size_t err_len)
{
    (void)req;
    const crypto_keyring *kr = atomic_load(&h->keyring);
    long long rotated = 0, failed = 0;
    if (secrets_rotate(h->store, kr, &rotated, &failed, err, err_len) != INGEST_OK)
        return NULL;
    log_info("rotate-key: %lld secret(s) re-encrypted under key %s, %lld could not be "
             "decrypted",
             rotated, crypto_primary_id(kr), failed);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "key_id", json_object_new_string(crypto_primary_id(kr)));
    json_object_object_add(out, "rotated", json_object_new_int64(rotated));
    json_object_object_add(out, "failed", json_object_new_int64(failed));
    return out;
}

json_object *admin_deadletters(hostd *h, json_object *req, char *err, size_t err_len)
{
    json_object *v = NULL;
    int include_replayed =
        json_object_object_get_ex(req, "include_replayed", &v) && json_object_get_boolean(v);
    int limit = json_object_object_get_ex(req, "limit", &v) ? json_object_get_int(v) : 100;
    if (limit < 1 || limit > 10000) {
        snprintf(err, err_len, "limit must be from 1 to 10000");
        return NULL;
    }
    json_object *list = NULL;
    if (deadletters_list(h->store, get_str(req, "provider"), include_replayed, limit, &list, err,
                         err_len) != INGEST_OK)
        return NULL;
    json_object *out = json_object_new_object();
    json_object_object_add(out, "dead_letters", list);
    return out;
}

json_object *admin_replay(hostd *h, json_object *req, char *err, size_t err_len)
{
    const char *id = get_str(req, "id");
    if (id && !util_is_uuid(id)) {
        snprintf(err, err_len, "dead letter id must be a UUID");
        return NULL;
    }
    long long replayed = 0;
    if (deadletters_replay(h->store, id, &replayed, err, err_len) != INGEST_OK)
        return NULL;
    log_info("replay: %lld dead letter(s) queued again%s%s", replayed, id ? ": " : "",
             id ? id : "");
    json_object *out = json_object_new_object();
    json_object_object_add(out, "replayed", json_object_new_int64(replayed));
    return out;
}

json_object *admin_connections(hostd *h, json_object *req, char *err, size_t err_len)
{
    static const char *const statuses[] = {"active", "needs_reauth", "disabled"};
    const char *tenant = get_str(req, "tenant_id"), *status = get_str(req, "status");
    json_object *v = NULL;
    int limit = json_object_object_get_ex(req, "limit", &v) ? json_object_get_int(v) : 100;
    int known = !status;
    for (size_t i = 0; !known && i < sizeof statuses / sizeof statuses[0]; i++)
        known = strcmp(status, statuses[i]) == 0;
    if (tenant && !util_is_uuid(tenant)) {
        snprintf(err, err_len, "tenant_id must be a UUID");
        return NULL;
    }
    if (!known || limit < 1 || limit > 10000) {
        snprintf(err, err_len,
                 !known ? "status must be active, needs_reauth or disabled"
                        : "limit must be from 1 to 10000");
        return NULL;
    }
    json_object *list = NULL;
    if (connections_list(h->store, tenant, get_str(req, "provider"), status, limit, &list, err,
                         err_len) != INGEST_OK)
        return NULL;
    json_object *out = json_object_new_object();
    json_object_object_add(out, "connections", list);
    return out;
}
