/* rest_connections.c — create (checked through the plugin), list, read and
 * delete a tenant's connections, and trigger syncs by hand. A connection is
 * first stored inactive ('disabled', reason 'validating'), so neither the
 * sync scheduler nor webhook routing uses credentials the plugin has not
 * accepted yet; it becomes 'active' only after the check. */
#include "rest_connections.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rest_routes.h"
#include "run.h"
#include "secrets.h"
#include "sync_scheduler.h"
#include "util.h"
#include "webhook_cache.h"

#define MAX_NAME_LEN 200

/* ------------------------------------------------------------- storing */

typedef struct store_args {
    rest_req *r;
    const char *auth_kind, *name, *config, *id;
    char id_out[37];
} store_args;

static int insert_fn(PGconn *conn, void *arg)
{
    store_args *a = arg;
    const char *p[] = {a->r->tenant, a->r->inst->name, a->auth_kind, a->name, a->config};
    PGresult *res = NULL;
    int rc = store_exec(conn,
                        "INSERT INTO connections (tenant_id, provider, auth_kind, name, config,"
                        " status, status_reason) VALUES ($1, $2, $3, $4,"
                        " coalesce($5::jsonb, '{}'), 'disabled', 'validating') RETURNING id::text",
                        5, p, &res, NULL, 0);
    if (rc == INGEST_OK) {
        snprintf(a->id_out, sizeof a->id_out, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    return rc;
}

static int activate_fn(PGconn *conn, void *arg)
{
    store_args *a = arg;
    const char *p[] = {a->id, a->r->tenant};
    return store_exec(conn,
                      "UPDATE connections SET status = 'active', status_reason = NULL,"
                      " updated_at = now() WHERE id = $1 AND tenant_id = $2",
                      2, p, NULL, NULL, 0);
}

static int remove_fn(PGconn *conn, void *arg)
{
    store_args *a = arg;
    const char *p[] = {a->id, a->r->tenant};
    return store_exec(conn, "DELETE FROM connections WHERE id = $1 AND tenant_id = $2", 2, p, NULL,
                      NULL, 0);
}

static int put_secrets(rest_req *r, const char *id, json_object *secrets, long long expires_in_s)
{
    size_t n = 0, cap = (size_t)json_object_object_length(secrets);
    const char **fields = calloc(cap + 1, sizeof *fields);
    const char **values = calloc(cap + 1, sizeof *values);
    int rc = INGEST_ENOMEM;
    if (fields && values) {
        json_object_object_foreach(secrets, field, value)
        {
            fields[n] = field;
            values[n++] = json_object_get_string(value);
        }
        char err[512];
        rc = secrets_put_with_expiry(r->h->store, r->kr, id, fields, values, n, expires_in_s, err,
                                     sizeof err);
        if (rc != INGEST_OK)
            log_warn("rest: storing the secrets of connection %s failed: %s", id, err);
    }
    free(fields);
    free(values);
    return rc;
}

/* The plugin's verdict as an HTTP answer. */
static void check_failed(rest_req *r, int rc, ingest_run *run)
{
    const char *why = run_error(run);
    if (rc == INGEST_EAUTH)
        rest_fail(r, 422, "credentials_rejected", "%s refused the credentials%s%.300s",
                  r->inst->name, why ? ": " : "", why ? why : "");
    else if (rc == INGEST_ERATELIMITED || rc == INGEST_EAGAIN || rc == INGEST_EIO) {
        rest_fail(r, 503, "provider_unavailable",
                  "the credentials could not be checked at %s now; retry later", r->inst->name);
        r->retry_after = rc == INGEST_ERATELIMITED ? (int)(run_retry_after_ms(run, 5000) / 1000) + 1
                                                   : REST_RETRY_DOWN_S;
    } else
        rest_fail(r, 422, "connection_check_failed", "%s did not accept the connection (%d)",
                  r->inst->name, rc);
}

static int run_check(rest_req *r, const char *id)
{
    const ingest_plugin *d = &r->inst->desc;
    if (!d->check_connection)
        return 0;
    ingest_run *run = run_new(r->inst, r->tenant, id, NULL, NULL);
    if (!run) {
        rest_fail(r, 503, "busy", "out of memory");
        return -1;
    }
    int rc = d->check_connection(run, r->inst->state);
    if (rc != INGEST_OK)
        check_failed(r, rc, run);
    run_free(run);
    return rc == INGEST_OK ? 0 : -1;
}

/* The plugin keeps what the token reply holds beyond the standard fields
 * (ABI minor 3); the connection is not active yet. */
static int run_on_authorized(rest_req *r, const char *id, const char *token_reply)
{
    const ingest_plugin *d = &r->inst->desc;
    if (!d->on_authorized)
        return 0;
    ingest_run *run = run_new(r->inst, r->tenant, id, NULL, NULL);
    if (!run) {
        rest_fail(r, 503, "busy", "out of memory");
        return -1;
    }
    int rc = d->on_authorized(run, r->inst->state, token_reply);
    if (rc != INGEST_OK)
        check_failed(r, rc, run);
    run_free(run);
    return rc == INGEST_OK ? 0 : -1;
}

int rest_connection_store(rest_req *r, const char *auth_kind, const char *name, json_object *config,
                          json_object *secrets, long long expires_in_s, int check,
                          const char *token_reply, char id_out[37])
{
    store_args a = {.r = r, .auth_kind = auth_kind, .name = name};
    a.config = config ? json_object_to_json_string_ext(config, JSON_C_TO_STRING_PLAIN) : NULL;
    if (store_call(r->h->store, insert_fn, &a) != INGEST_OK) {
        rest_fail(r, 503, "database_unavailable", "the connection could not be stored");
        r->retry_after = REST_RETRY_DOWN_S;
        return -1;
    }
    a.id = a.id_out;
    int ok = put_secrets(r, a.id, secrets, expires_in_s) == INGEST_OK;
    if (!ok) {
        rest_fail(r, 503, "database_unavailable", "the connection's secrets could not be stored");
        r->retry_after = REST_RETRY_DOWN_S;
    }
    ok = ok && (!token_reply || run_on_authorized(r, a.id, token_reply) == 0);
    ok = ok && (!check || run_check(r, a.id) == 0);
    if (ok && store_call(r->h->store, activate_fn, &a) != INGEST_OK) {
        rest_fail(r, 503, "database_unavailable", "the connection could not be activated");
        r->retry_after = REST_RETRY_DOWN_S;
        ok = 0;
    }
    if (!ok) {
        if (store_call(r->h->store, remove_fn, &a) != INGEST_OK)
            log_warn("rest: inactive connection %s could not be removed", a.id);
        return -1;
    }
    snprintf(id_out, 37, "%s", a.id);
    log_write(INGEST_LOG_INFO, &(log_fields){.plugin = r->inst->name, .tenant = r->tenant},
              "rest: connection %s created (%s, %d encrypted secret(s))", a.id, auth_kind,
              json_object_object_length(secrets));
    return 0;
}

/* -------------------------------------------------------- POST /connections */

/* What each auth type carries, by connection auth kind: required and
 * optional secret fields. */
typedef struct auth_type {
    const char *type;
    ingest_auth_kind kind;
    const char *required[3];
    const char *optional[2];
} auth_type;

static const auth_type auth_types[] = {
    {"token", INGEST_AUTH_TOKEN, {"token"}, {NULL}},
    {"api_key", INGEST_AUTH_TOKEN, {"api_key"}, {NULL}},
    /* A token obtained elsewhere for an OAuth2 provider is its access token. */
    {"token", INGEST_AUTH_OAUTH2, {"token"}, {"refresh_token"}},
    {"basic", INGEST_AUTH_BASIC, {"username", "password"}, {NULL}},
    {"aws", INGEST_AUTH_AWS, {"access_key_id", "secret_access_key"}, {"session_token"}},
    /* The plugin mints access tokens from these (mint_token); GitHub also
     * accepts the app's client id where it takes the app id. */
    {"app", INGEST_AUTH_APP, {"app_id", "installation_id", "private_key"}, {"client_id"}},
};

typedef struct create_ctx {
    json_object *secrets; /* field -> value, wiped when freed */
    const char *name;
    json_object *config;
    ingest_auth_kind kind; /* the connection's, among the plugin's kinds */
} create_ctx;

static void wipe_json_strings(json_object *o)
{
    json_object_object_foreach(o, k, v)
    {
        (void)k;
        if (json_object_is_type(v, json_type_string))
            OPENSSL_cleanse((void *)json_object_get_string(v),
                            (size_t)json_object_get_string_len(v));
    }
}

static void create_ctx_free(void *p)
{
    create_ctx *c = p;
    if (!c)
        return;
    wipe_json_strings(c->secrets);
    json_object_put(c->secrets);
    free(c);
}

static int has_member(const char *const *list, size_t n, const char *key)
{
    for (size_t i = 0; i < n && list[i]; i++)
        if (strcmp(list[i], key) == 0)
            return 1;
    return 0;
}

static const char *str_member(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* Secret field name as stored: the plugin reads "access_token" for OAuth2. */
static const char *stored_field(ingest_auth_kind kind, const char *field)
{
    return kind == INGEST_AUTH_OAUTH2 && strcmp(field, "token") == 0 ? "access_token" : field;
}

static int take_secrets(rest_req *r, const auth_type *t, json_object *auth, create_ctx *c)
{
    char param[64];
    json_object_object_foreach(auth, key, value)
    {
        snprintf(param, sizeof param, "auth.%.50s", key);
        if (strcmp(key, "type") == 0)
            continue;
        if (!has_member(t->required, 3, key) && !has_member(t->optional, 2, key)) {
            rest_bad_param(r, param, "%s is not a field of auth type %s", param, t->type);
            return -1;
        }
        if (!json_object_is_type(value, json_type_string) ||
            json_object_get_string_len(value) == 0 || json_object_get_string_len(value) > 16384) {
            rest_bad_param(r, param, "%s must be a non-empty string", param);
            return -1;
        }
        json_object_object_add(c->secrets, stored_field(t->kind, key),
                               json_object_new_string(json_object_get_string(value)));
    }
    for (size_t i = 0; i < 3 && t->required[i]; i++)
        if (!str_member(auth, t->required[i])) {
            snprintf(param, sizeof param, "auth.%s", t->required[i]);
            rest_bad_param(r, param, "%s is required for auth type %s", param, t->type);
            return -1;
        }
    return 0;
}

/* The connection's auth kind: "auth_kind" when given, which must be one
 * the plugin accepts, else the plugin's own auth.kind. */
static int parse_kind(rest_req *r, create_ctx *c)
{
    json_object *v = NULL;
    c->kind = r->inst->desc.auth.kind;
    if (!json_object_object_get_ex(r->body, "auth_kind", &v))
        return 0;
    const char *name = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
    if (instance_auth_kind_parse(name, &c->kind) < 0 || !instance_accepts_auth(r->inst, c->kind)) {
        char accepted[128];
        instance_auth_kinds_text(r->inst, accepted, sizeof accepted);
        rest_bad_param(r, "auth_kind", "auth_kind must be one that provider %s accepts: %s",
                       r->inst->name, accepted);
        return -1;
    }
    return 0;
}

static int parse_auth(rest_req *r, create_ctx *c)
{
    if (parse_kind(r, c) < 0)
        return -1;
    ingest_auth_kind kind = c->kind;
    json_object *auth = NULL;
    int present = json_object_object_get_ex(r->body, "auth", &auth);
    /* An aws connection without keys signs with the daemon's AWS_*
     * environment (api_http.c). */
    if ((kind == INGEST_AUTH_NONE || kind == INGEST_AUTH_AWS) && !present)
        return 0;
    if (!json_object_is_type(auth, json_type_object) || !str_member(auth, "type")) {
        rest_bad_param(r, "auth", "auth must be an object with a \"type\"");
        return -1;
    }
    const char *type = str_member(auth, "type");
    for (size_t i = 0; i < sizeof auth_types / sizeof auth_types[0]; i++)
        if (auth_types[i].kind == kind && strcmp(auth_types[i].type, type) == 0)
            return take_secrets(r, &auth_types[i], auth, c);
    rest_bad_param(r, "auth.type",
                   "auth.type '%.32s' does not fit auth kind %s of provider %s (set auth_kind "
                   "for another kind)",
                   type, instance_auth_kind_name(kind) ? instance_auth_kind_name(kind) : "?",
                   r->inst->name);
    return -1;
}

static int parse_create(rest_req *r, create_ctx *c)
{
    static const char *const keys[] = {"provider", "auth_kind", "auth", "config", "name", NULL};
    if (!r->body) {
        rest_bad_param(r, "body", "send a JSON object with provider and auth");
        return -1;
    }
    if (rest_body_keys(r, keys) < 0)
        return -1;
    const char *provider = str_member(r->body, "provider");
    if (!provider) {
        rest_bad_param(r, "provider", "provider is required (a string)");
        return -1;
    }
    if (!rest_plugin(r, provider, 400) || parse_auth(r, c) < 0)
        return -1;
    json_object *v = NULL;
    if (json_object_object_get_ex(r->body, "config", &v) &&
        !json_object_is_type(v, json_type_object)) {
        rest_bad_param(r, "config", "config must be an object");
        return -1;
    }
    c->config = v;
    c->name = str_member(r->body, "name");
    if (json_object_object_get_ex(r->body, "name", &v) &&
        (!c->name || strlen(c->name) > MAX_NAME_LEN)) {
        rest_bad_param(r, "name", "name must be a string of at most %d characters", MAX_NAME_LEN);
        return -1;
    }
    return 0;
}

static void create_work(rest_req *r)
{
    create_ctx *c = r->ctx;
    char id[37];
    const char *kind = instance_auth_kind_name(c->kind);
    if (rest_connection_store(r, kind ? kind : "none", c->name, c->config, c->secrets, -1, 1, NULL,
                              id) < 0)
        return;
    json_object *out = json_object_new_object();
    json_object_object_add(out, "id", json_object_new_string(id));
    json_object_object_add(out, "provider", json_object_new_string(r->inst->name));
    json_object_object_add(out, "status", json_object_new_string("active"));
    rest_ok(r, 201, out);
}

void rest_post_connection(rest_req *r)
{
    create_ctx *c = calloc(1, sizeof *c);
    if (c)
        c->secrets = json_object_new_object();
    r->ctx = c;
    r->ctx_free = create_ctx_free;
    if (!c || !c->secrets) {
        rest_fail(r, 503, "busy", "out of memory");
        rest_reply(r);
        return;
    }
    if (parse_create(r, c) < 0) {
        rest_reply(r);
        return;
    }
    /* The parsed body's copies are not needed any more. */
    json_object *auth = NULL;
    if (json_object_object_get_ex(r->body, "auth", &auth))
        wipe_json_strings(auth);
    rest_async(r, create_work);
}

/* ------------------------------------------------------ GET /connections */

/* clang-format off */
static const char list_sql[] =
    "SELECT " REST_CONNECTION_JSON ", " REST_US("c.created_at") ", c.id::text"
    " FROM connections c WHERE c.tenant_id = $1"
    " AND ($3::bigint IS NULL OR (c.created_at, c.id) < (" REST_TS("$3") ", $4::uuid))"
    " AND ($5::text IS NULL OR c.provider = $5) AND ($6::text IS NULL OR c.status = $6)"
    " ORDER BY c.created_at DESC, c.id DESC LIMIT $2::int";
/* clang-format on */

typedef struct list_ctx {
    char provider[REST_MAX_ARG];
    char status[32];
} list_ctx;

static int list_fn(PGconn *conn, void *arg)
{
    rest_req *r = arg;
    list_ctx *l = r->ctx;
    const char *f[] = {l->provider[0] ? l->provider : NULL, l->status[0] ? l->status : NULL};
    return rest_list(r, conn, "connections", list_sql, f, 2);
}

static void list_work(rest_req *r) { rest_store(r, list_fn); }

void rest_list_connections(rest_req *r)
{
    list_ctx *l = calloc(1, sizeof *l);
    r->ctx = l;
    r->ctx_free = free;
    const char *provider = rest_query(r, "provider"), *status = rest_query(r, "status");
    if (!l)
        rest_fail(r, 503, "busy", "out of memory");
    else if (rest_page_params(r, "connections") < 0)
        ;
    else if (provider && (!*provider || strlen(provider) >= sizeof l->provider))
        rest_bad_param(r, "provider", "provider must be a plugin name");
    else if (status && strcmp(status, "active") != 0 && strcmp(status, "needs_reauth") != 0 &&
             strcmp(status, "disabled") != 0)
        rest_bad_param(r, "status", "status must be one of active, needs_reauth, disabled");
    else {
        snprintf(l->provider, sizeof l->provider, "%s", provider ? provider : "");
        snprintf(l->status, sizeof l->status, "%s", status ? status : "");
        rest_async(r, list_work);
        return;
    }
    rest_reply(r);
}

/* ---------------------------------------------- GET/DELETE /connections/{id} */

static int get_fn(PGconn *conn, void *arg)
{
    rest_req *r = arg;
    const char *p[] = {r->arg[0], r->tenant};
    PGresult *res = NULL;
    int rc = store_exec(conn,
                        "SELECT " REST_CONNECTION_JSON
                        " FROM connections c WHERE c.id = $1 AND c.tenant_id = $2",
                        2, p, &res, NULL, 0);
    if (rc != INGEST_OK)
        return rc;
    if (PQntuples(res) == 1)
        rest_ok(r, 200, json_tokener_parse(PQgetvalue(res, 0, 0)));
    else
        rest_fail(r, 404, "not_found", "no connection %s", r->arg[0]);
    PQclear(res);
    return INGEST_OK;
}

static void get_work(rest_req *r) { rest_store(r, get_fn); }

static int path_id(rest_req *r)
{
    if (util_is_uuid(r->arg[0]))
        return 0;
    rest_bad_param(r, "id", "the connection id must be a UUID");
    rest_reply(r);
    return -1;
}

void rest_get_connection(rest_req *r)
{
    if (path_id(r) == 0)
        rest_async(r, get_work);
}

typedef struct deleted {
    char provider[REST_MAX_ARG];
} deleted;

static int delete_fn(PGconn *conn, void *arg)
{
    rest_req *r = arg;
    const char *p[] = {r->arg[0], r->tenant};
    PGresult *res = NULL;
    int rc = store_exec(conn,
                        "DELETE FROM connections WHERE id = $1 AND tenant_id = $2"
                        " RETURNING provider",
                        2, p, &res, NULL, 0);
    if (rc != INGEST_OK)
        return rc;
    if (PQntuples(res) == 1) {
        deleted *d = r->ctx;
        snprintf(d->provider, sizeof d->provider, "%s", PQgetvalue(res, 0, 0));
        rest_ok(r, 204, NULL);
    } else {
        rest_fail(r, 404, "not_found", "no connection %s", r->arg[0]);
    }
    PQclear(res);
    return INGEST_OK;
}

static void delete_work(rest_req *r) { rest_store(r, delete_fn); }

/* Webhook verification caches the connection's secrets on the loop. */
static void forget_secrets(rest_req *r)
{
    deleted *d = r->ctx;
    if (r->status == 204 && d->provider[0])
        webhook_cache_drop(r->h->webhook_cache, d->provider, r->arg[0]);
}

void rest_delete_connection(rest_req *r)
{
    if (path_id(r) < 0)
        return;
    r->ctx = calloc(1, sizeof(deleted));
    r->ctx_free = free;
    if (!r->ctx) {
        rest_fail(r, 503, "busy", "out of memory");
        rest_reply(r);
        return;
    }
    r->on_loop = forget_secrets;
    rest_async(r, delete_work);
}

/* ------------------------------------------------------- POST /sync/{provider} */

typedef struct sync_ctx {
    char connection_id[37];
    int full;
    json_object *ids; /* connection ids to sync, filled on the worker */
} sync_ctx;

static void sync_ctx_free(void *p)
{
    sync_ctx *s = p;
    if (s)
        json_object_put(s->ids);
    free(s);
}

static int targets_fn(PGconn *conn, void *arg)
{
    rest_req *r = arg;
    sync_ctx *s = r->ctx;
    const char *p[] = {r->tenant, r->inst->name, s->connection_id[0] ? s->connection_id : NULL};
    PGresult *res = NULL;
    int rc = store_exec(conn,
                        "SELECT id::text, status FROM connections WHERE tenant_id = $1"
                        " AND provider = $2 AND ($3::uuid IS NULL OR id = $3)"
                        " ORDER BY created_at, id",
                        3, p, &res, NULL, 0);
    if (rc != INGEST_OK)
        return rc;
    s->ids = json_object_new_array();
    for (int i = 0; i < PQntuples(res); i++)
        if (strcmp(PQgetvalue(res, i, 1), "active") == 0)
            json_object_array_add(s->ids, json_object_new_string(PQgetvalue(res, i, 0)));
    if (s->connection_id[0] && PQntuples(res) == 0)
        rest_fail(r, 404, "not_found", "no connection %s of provider %s", s->connection_id,
                  r->inst->name);
    else if (s->connection_id[0] && json_object_array_length(s->ids) == 0)
        rest_fail(r, 409, "connection_inactive", "connection %s is %s, not active",
                  s->connection_id, PQgetvalue(res, 0, 1));
    PQclear(res);
    return INGEST_OK;
}

/* Queue one connection's streams through the sync scheduler. */
static int sync_one(rest_req *r, const char *id, json_object *jobs)
{
    sync_ctx *s = r->ctx;
    json_object *req = json_object_new_object();
    json_object_object_add(req, "connection_id", json_object_new_string(id));
    json_object_object_add(req, "full", json_object_new_boolean(s->full));
    char err[512] = "";
    json_object *res = sync_scheduler_admin_sync(r->h, req, err, sizeof err);
    json_object_put(req);
    json_object *list = NULL;
    if (!res || !json_object_object_get_ex(res, "jobs", &list)) {
        json_object_put(res);
        rest_fail(r, strncmp(err, "database", 8) == 0 ? 503 : 409, "sync_not_queued",
                  "connection %s: %.400s", id, err);
        return -1;
    }
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *job = json_object_get(json_object_array_get_idx(list, i));
        json_object_object_add(job, "connection_id", json_object_new_string(id));
        json_object_array_add(jobs, job);
    }
    json_object_put(res);
    return 0;
}

static void sync_work(rest_req *r)
{
    sync_ctx *s = r->ctx;
    if (rest_store(r, targets_fn) != INGEST_OK || r->status)
        return;
    json_object *jobs = json_object_new_array(), *ids = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(s->ids); i++)
        if (sync_one(r, json_object_get_string(json_object_array_get_idx(s->ids, i)), jobs) < 0)
            break;
    for (size_t i = 0; i < json_object_array_length(jobs); i++) {
        json_object *id = NULL;
        json_object_object_get_ex(json_object_array_get_idx(jobs, i), "id", &id);
        json_object_array_add(ids, json_object_get(id));
    }
    if (r->status) {
        json_object_put(jobs);
        json_object_put(ids);
        return;
    }
    json_object *out = json_object_new_object();
    json_object_object_add(out, "job_ids", ids);
    json_object_object_add(out, "jobs", jobs);
    rest_ok(r, 202, out);
}

static int parse_sync(rest_req *r, sync_ctx *s)
{
    static const char *const keys[] = {"connection_id", "mode", NULL};
    if (r->body && rest_body_keys(r, keys) < 0)
        return -1;
    json_object *v = NULL;
    if (r->body && json_object_object_get_ex(r->body, "connection_id", &v)) {
        const char *id = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        if (!util_is_uuid(id)) {
            rest_bad_param(r, "connection_id", "connection_id must be a UUID");
            return -1;
        }
        snprintf(s->connection_id, sizeof s->connection_id, "%s", id);
    }
    if (r->body && json_object_object_get_ex(r->body, "mode", &v)) {
        const char *mode =
            json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        if (strcmp(mode, "full") != 0 && strcmp(mode, "incremental") != 0) {
            rest_bad_param(r, "mode", "mode must be \"incremental\" or \"full\"");
            return -1;
        }
        s->full = strcmp(mode, "full") == 0;
    }
    if (!rest_plugin(r, r->arg[0], 404))
        return -1;
    if (!r->inst->desc.sync || r->inst->desc.n_streams == 0) {
        rest_fail(r, 409, "sync_not_supported", "provider %s declares no streams to sync",
                  r->inst->name);
        return -1;
    }
    return 0;
}

void rest_post_sync(rest_req *r)
{
    sync_ctx *s = calloc(1, sizeof *s);
    r->ctx = s;
    r->ctx_free = sync_ctx_free;
    if (!s)
        rest_fail(r, 503, "busy", "out of memory");
    if (!s || parse_sync(r, s) < 0) {
        rest_reply(r);
        return;
    }
    rest_async(r, sync_work);
}
