/*
 * slack_auth.c — what an installation leaves behind, and the credential check.
 *
 * oauth.v2.access answers an installation with the bot token at the top
 * level (stored by the host as access_token, with refresh_token and
 * expires_in when the app rotates tokens) and, when user scopes were
 * granted, a user token under authed_user. on_authorized keeps the user
 * token as secret user_token (and its refresh token) and what identifies
 * the workspace (team id and name, bot user, app) in the connection's
 * settings, so neither sync nor webhooks ever have to ask again.
 *
 * The user token's expiry is kept in the settings, not as the secret's
 * expiry: the host reads a connection's token expiry as the bot token's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slack.h"

static void put_copy(json_object *dst, const char *key, json_object *src, const char *path)
{
    json_object *v = ingest_json_get(src, path);
    if (v)
        json_object_object_add(dst, key, json_object_get(v));
}

/* The workspace facts of an oauth.v2.access reply, as settings. */
static json_object *workspace_of(const slack_state *st, json_object *reply)
{
    json_object *cfg = json_object_new_object();
    if (!cfg)
        return NULL;
    put_copy(cfg, "team_id", reply, "team.id");
    put_copy(cfg, "team_name", reply, "team.name");
    put_copy(cfg, "enterprise_id", reply, "enterprise.id");
    put_copy(cfg, "bot_user_id", reply, "bot_user_id");
    put_copy(cfg, "app_id", reply, "app_id");
    put_copy(cfg, "bot_scopes", reply, "scope");
    put_copy(cfg, "authed_user_id", reply, "authed_user.id");
    put_copy(cfg, "user_scopes", reply, "authed_user.scope");
    int64_t expires_in = 0;
    if (ingest_json_get(reply, "authed_user.access_token") &&
        ingest_json_int64(reply, "authed_user.expires_in", &expires_in) && expires_in > 0) {
        char at[32];
        st->api->format_time(st->api->now_us() + expires_in * 1000000, at);
        json_object_object_add(cfg, "user_token_expires_at", json_object_new_string(at));
    }
    return cfg;
}

static int keep_user_token(slack_state *st, ingest_run *run, json_object *reply)
{
    const char *token = ingest_json_str(reply, "authed_user.access_token");
    const char *refresh = ingest_json_str(reply, "authed_user.refresh_token");
    int rc = INGEST_OK;
    if (token && *token)
        rc = st->api->secret_put(run, "user_token", token, 0);
    if (rc == INGEST_OK && refresh && *refresh)
        rc = st->api->secret_put(run, "user_refresh_token", refresh, 0);
    return rc;
}

int sl_on_authorized(ingest_run *run, void *state, const char *token_reply_json)
{
    slack_state *st = state;
    if (!INGEST_API_HAS(st->api, secret_put) || !INGEST_API_HAS(st->api, connection_config_merge))
        return INGEST_EUNSUPPORTED;
    json_object *reply = ingest_json_parse(token_reply_json, strlen(token_reply_json));
    if (!ingest_json_true(reply, "ok")) {
        const char *code = ingest_json_str(reply, "error");
        st->api->set_error(st->ctx, "oauth.v2.access refused the installation: %.64s",
                           code ? code : "no ok:true in the reply");
        json_object_put(reply);
        return INGEST_EAUTH;
    }
    int rc = keep_user_token(st, run, reply);
    json_object *cfg = rc == INGEST_OK ? workspace_of(st, reply) : NULL;
    char *text = cfg ? ingest_json_text(cfg) : NULL;
    if (rc == INGEST_OK)
        rc = text ? st->api->connection_config_merge(run, text) : INGEST_ENOMEM;
    st->api->log(st->ctx, run, rc == INGEST_OK ? INGEST_LOG_INFO : INGEST_LOG_ERROR,
                 "installed in workspace %.32s (%.80s)%s: status %d",
                 ingest_json_str(reply, "team.id") ? ingest_json_str(reply, "team.id") : "?",
                 ingest_json_str(reply, "team.name") ? ingest_json_str(reply, "team.name") : "?",
                 ingest_json_get(reply, "authed_user.access_token") ? " with a user token" : "",
                 rc);
    free(text);
    json_object_put(cfg);
    json_object_put(reply);
    return rc;
}

/* Remember the workspace auth.test named, unless the settings know it. */
static void remember_team(slack_state *st, ingest_run *run, const sl_settings *set,
                          json_object *body)
{
    if (set->team_id[0] || !INGEST_API_HAS(st->api, connection_config_merge))
        return;
    json_object *cfg = json_object_new_object();
    if (!cfg)
        return;
    put_copy(cfg, "team_id", body, "team_id");
    put_copy(cfg, "team_name", body, "team");
    put_copy(cfg, "team_url", body, "url");
    put_copy(cfg, "bot_user_id", body, "user_id");
    char *text = ingest_json_text(cfg);
    int rc = text ? st->api->connection_config_merge(run, text) : INGEST_ENOMEM;
    if (rc != INGEST_OK)
        st->api->log(st->ctx, run, INGEST_LOG_WARN, "workspace not remembered (status %d)", rc);
    free(text);
    json_object_put(cfg);
}

/* auth.test: the cheapest call that proves a token (Slack answers 200 with
 * ok:false invalid_auth for a bad one). */
int sl_check_connection(ingest_run *run, void *state)
{
    slack_state *st = state;
    sl_settings set;
    char err[256];
    int rc = sl_settings_load(st, run, &set, err, sizeof err);
    if (rc != INGEST_OK) {
        st->api->set_error(st->ctx, "%s", err);
        return rc;
    }
    sl_call call = {.method = "auth.test", .user_token = set.user_token};
    json_object *body = NULL;
    rc = sl_api_call(st, run, &set, &call, &body, err, sizeof err);
    if (rc == INGEST_OK)
        remember_team(st, run, &set, body);
    else
        st->api->set_error(st->ctx, "Slack refused the credentials: %s", err);
    json_object_put(body);
    sl_settings_free(&set);
    return rc == INGEST_EAGAIN ? INGEST_EAUTH : rc;
}
