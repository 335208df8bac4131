/*
 * slack_settings.c — what one job or delivery runs with.
 *
 * The plugin group gives the defaults; a connection's own config (REST POST
 * /connections "config", or what on_authorized merged into it) overrides
 * api_base_url, channels, channel_types, streams, include_threads and token
 * ("bot" or "user"). team_id is what on_authorized or the connection check
 * learnt about the workspace. Other keys (the host's "schedule", team_name,
 * ...) are ignored here; a key set to null keeps the default.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slack.h"

static const char *const known_types[] = {"public_channel", "private_channel", "mpim", "im"};

int sl_stream_index(const char *name)
{
    for (int s = 0; s < SL_N_STREAMS; s++)
        if (strcmp(name, sl_stream_names[s]) == 0)
            return s;
    return -1;
}

int sl_base_url(const char *url, char **out)
{
    *out = NULL;
    size_t n = strlen(url);
    if (n < 8 || n > 512 || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
        return INGEST_EINVAL;
    while (n > 8 && url[n - 1] == '/')
        n--;
    return (*out = strndup(url, n)) ? INGEST_OK : INGEST_ENOMEM;
}

static int type_known(const char *t)
{
    for (size_t i = 0; i < sizeof known_types / sizeof known_types[0]; i++)
        if (strcmp(t, known_types[i]) == 0)
            return 1;
    return 0;
}

/* Join validated names with ','; at most the four known types. */
static int join_types(const char *const *items, size_t n, char **out)
{
    char buf[128] = "";
    *out = NULL;
    if (n == 0 || n > 4)
        return INGEST_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!items[i] || !type_known(items[i]))
            return INGEST_EINVAL;
        if (i)
            strcat(buf, ",");
        strcat(buf, items[i]); /* 4 known names fit in buf */
    }
    return (*out = strdup(buf)) ? INGEST_OK : INGEST_ENOMEM;
}

int sl_types_join(const ingest_string_list *types, char **out)
{
    return join_types(types->items, types->count, out);
}

/* A Slack id: upper-case letters and digits (C024BE91L, T123ABC456). */
static int valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 24)
        return 0;
    for (; *s; s++)
        if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s))
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- lists */

static void list_free(sl_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* A JSON array of strings into *out; `ok` checks each. */
static int strings_of(json_object *v, const char *key, int (*ok)(const char *), sl_list *out,
                      char *err, size_t len)
{
    if (!json_object_is_type(v, json_type_array)) {
        snprintf(err, len, "connection config: %s must be a list of strings", key);
        return INGEST_EINVAL;
    }
    size_t n = json_object_array_length(v);
    list_free(out);
    if (!(out->items = calloc(n ? n : 1, sizeof *out->items)))
        return INGEST_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        const char *t = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
        if (!t || !ok(t)) {
            snprintf(err, len, "connection config: %s[%zu] is not valid", key, i);
            return INGEST_EINVAL;
        }
        if (!(out->items[out->count++] = strdup(t)))
            return INGEST_ENOMEM;
    }
    return INGEST_OK;
}

static int stream_ok(const char *s) { return sl_stream_index(s) >= 0; }

/* ------------------------------------------------------------ the keys */

static int set_streams(json_object *v, sl_settings *s, char *err, size_t len)
{
    sl_list names = {0};
    int rc = strings_of(v, "streams", stream_ok, &names, err, len);
    if (rc == INGEST_OK) {
        s->streams = 0;
        for (size_t i = 0; i < names.count; i++)
            s->streams |= 1u << sl_stream_index(names.items[i]);
    }
    list_free(&names);
    return rc;
}

static int set_types(json_object *v, sl_settings *s, char *err, size_t len)
{
    sl_list names = {0};
    char *joined = NULL;
    int rc = strings_of(v, "channel_types", type_known, &names, err, len);
    if (rc == INGEST_OK)
        rc = join_types((const char *const *)names.items, names.count, &joined);
    if (rc == INGEST_EINVAL)
        snprintf(err, len,
                 "connection config: channel_types must name 1 to 4 of "
                 "public_channel, private_channel, mpim, im");
    if (rc == INGEST_OK) {
        free(s->types);
        s->types = joined;
    }
    list_free(&names);
    return rc;
}

static int set_base(json_object *v, sl_settings *s, char *err, size_t len)
{
    char *base = NULL;
    int rc = json_object_is_type(v, json_type_string)
                 ? sl_base_url(json_object_get_string(v), &base)
                 : INGEST_EINVAL;
    if (rc == INGEST_EINVAL)
        snprintf(err, len, "connection config: api_base_url must be an http(s) URL");
    if (rc == INGEST_OK) {
        free(s->base);
        s->base = base;
    }
    return rc;
}

static int set_bool(json_object *v, const char *key, int *out, char *err, size_t len)
{
    if (!json_object_is_type(v, json_type_boolean)) {
        snprintf(err, len, "connection config: %s must be true or false", key);
        return INGEST_EINVAL;
    }
    *out = json_object_get_boolean(v);
    return INGEST_OK;
}

static int set_token(json_object *v, sl_settings *s, char *err, size_t len)
{
    const char *t = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
    if (strcmp(t, "bot") != 0 && strcmp(t, "user") != 0) {
        snprintf(err, len, "connection config: token must be \"bot\" or \"user\"");
        return INGEST_EINVAL;
    }
    s->user_token = strcmp(t, "user") == 0;
    return INGEST_OK;
}

static int apply(json_object *cfg, sl_settings *s, char *err, size_t len)
{
    json_object *v;
    int rc = INGEST_OK;
    if ((v = ingest_json_get(cfg, "api_base_url")))
        rc = set_base(v, s, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "channels")))
        rc = strings_of(v, "channels", valid_id, &s->channels, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "channel_types")))
        rc = set_types(v, s, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "streams")))
        rc = set_streams(v, s, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "include_threads")))
        rc = set_bool(v, "include_threads", &s->include_threads, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "token")))
        rc = set_token(v, s, err, len);
    const char *team = ingest_json_str(cfg, "team_id");
    if (rc == INGEST_OK && team && valid_id(team))
        snprintf(s->team_id, sizeof s->team_id, "%s", team);
    return rc;
}

static int apply_text(const char *text, sl_settings *s, char *err, size_t len)
{
    json_object *cfg = ingest_json_parse(text, strlen(text));
    int rc = INGEST_EINVAL;
    if (json_object_is_type(cfg, json_type_object))
        rc = apply(cfg, s, err, len);
    else
        snprintf(err, len, "connection config: not a JSON object");
    json_object_put(cfg);
    return rc;
}

/* ------------------------------------------------------------------ API */

void sl_settings_free(sl_settings *s)
{
    list_free(&s->channels);
    free(s->base);
    free(s->types);
    memset(s, 0, sizeof *s);
}

int sl_settings_load(slack_state *st, ingest_run *run, sl_settings *out, char *err, size_t len)
{
    memset(out, 0, sizeof *out);
    snprintf(err, len, "out of memory");
    out->streams = st->streams;
    out->include_threads = st->conf->include_threads;
    int rc = (out->base = strdup(st->base)) && (out->types = strdup(st->types)) ? INGEST_OK
                                                                                : INGEST_ENOMEM;
    char *text = NULL;
    if (rc == INGEST_OK && run && INGEST_API_HAS(st->api, connection_config)) {
        rc = st->api->connection_config(run, &text);
        if (rc == INGEST_OK)
            rc = apply_text(text ? text : "{}", out, err, len);
        else if (rc == INGEST_ENOTFOUND) /* no connection: the group's values */
            rc = INGEST_OK;
        else
            snprintf(err, len, "the connection's config cannot be read (status %d)", rc);
    }
    st->api->free(text);
    if (rc != INGEST_OK)
        sl_settings_free(out);
    else
        err[0] = '\0';
    return rc;
}
