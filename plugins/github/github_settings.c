/*
 * github_settings.c — what one job, delivery or credential check runs with.
 *
 * The plugin group (plugins.github { ... }) gives the daemon-wide defaults;
 * a connection's own `config` (REST POST /connections "config") overrides
 * each key it sets: repositories, organizations, api_base_url, streams,
 * include_archived (repositories and organizations together: a connection
 * that names either gets neither of the group's lists). Other keys of the
 * connection's config (its "schedule", ...) are the host's and ignored
 * here; a key set to null keeps the default. The validators are shared with the group's check in
 * github.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "github.h"

/* ----------------------------------------------------------- validators */

static int name_chars(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return 0;
    return 1;
}

int gh_valid_repo(const char *full)
{
    const char *slash = strchr(full, '/');
    if (!slash || slash - full > 39 || strchr(slash + 1, '/'))
        return 0;
    char owner[40];
    memcpy(owner, full, (size_t)(slash - full));
    owner[slash - full] = '\0';
    const char *name = slash + 1;
    return name_chars(owner, 39, "-") && name_chars(name, 100, "._-") && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

int gh_valid_org(const char *login) { return name_chars(login, 39, "-"); }

int gh_stream_index(const char *name)
{
    for (int s = 0; s < GH_N_STREAMS; s++)
        if (strcmp(name, gh_stream_names[s]) == 0)
            return s;
    return -1;
}

int gh_base_url(const char *url, char **out)
{
    *out = NULL;
    size_t n = strlen(url);
    if (n < 8 || n > 512 || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
        return INGEST_EINVAL;
    while (n > 8 && url[n - 1] == '/')
        n--;
    return (*out = strndup(url, n)) ? INGEST_OK : INGEST_ENOMEM;
}

/* ---------------------------------------------------------------- lists */

static void list_free(gh_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* A fresh list of `n` empty slots (at least one, so calloc never sees 0). */
static int list_alloc(gh_list *l, size_t n)
{
    list_free(l);
    l->items = calloc(n ? n : 1, sizeof *l->items);
    return l->items ? INGEST_OK : INGEST_ENOMEM;
}

static int list_copy(gh_list *out, const ingest_string_list *in)
{
    if (list_alloc(out, in->count) != INGEST_OK)
        return INGEST_ENOMEM;
    for (; out->count < in->count; out->count++)
        if (!(out->items[out->count] = strdup(in->items[out->count])))
            return INGEST_ENOMEM;
    return INGEST_OK;
}

/* ------------------------------------------------------------- defaults */

static int defaults(const github_state *st, gh_settings *s)
{
    s->streams = st->streams;
    s->include_archived = st->conf->include_archived;
    if (list_copy(&s->repositories, &st->conf->repositories) != INGEST_OK ||
        list_copy(&s->organizations, &st->conf->organizations) != INGEST_OK ||
        !(s->base = strdup(st->base)))
        return INGEST_ENOMEM;
    return INGEST_OK;
}

/* ------------------------------------------------ the connection's keys */

typedef int (*valid_fn)(const char *);

/* `key`: a JSON array of strings, each accepted by `valid`. */
static int strings_of(json_object *v, const char *key, valid_fn valid, const char *shape,
                      gh_list *out, char *err, size_t len)
{
    if (!json_object_is_type(v, json_type_array)) {
        snprintf(err, len, "connection config: %s must be a list of strings", key);
        return INGEST_EINVAL;
    }
    size_t n = json_object_array_length(v);
    if (list_alloc(out, n) != INGEST_OK)
        return INGEST_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        const char *text =
            json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
        if (!text || !valid(text)) {
            snprintf(err, len, "connection config: %s[%zu] %s%.120s%sis not %s", key, i,
                     text ? "'" : "", text ? text : "", text ? "' " : "", shape);
            return INGEST_EINVAL;
        }
        if (!(out->items[out->count++] = strdup(text)))
            return INGEST_ENOMEM;
    }
    return INGEST_OK;
}

static int valid_stream(const char *name) { return gh_stream_index(name) >= 0; }

static int set_streams(json_object *v, gh_settings *s, char *err, size_t len)
{
    gh_list names = {0};
    int rc =
        strings_of(v, "streams", valid_stream,
                   "one of issues, pull_requests, issue_comments, pr_reviews", &names, err, len);
    if (rc == INGEST_OK) {
        s->streams = 0;
        for (size_t i = 0; i < names.count; i++)
            s->streams |= 1u << gh_stream_index(names.items[i]);
    }
    list_free(&names);
    return rc;
}

static int set_base(json_object *v, gh_settings *s, char *err, size_t len)
{
    char *base = NULL;
    int rc = json_object_is_type(v, json_type_string)
                 ? gh_base_url(json_object_get_string(v), &base)
                 : INGEST_EINVAL;
    if (rc == INGEST_EINVAL)
        snprintf(err, len, "connection config: api_base_url must be an http(s) URL");
    if (rc != INGEST_OK)
        return rc;
    free(s->base);
    s->base = base;
    return INGEST_OK;
}

static int set_archived(json_object *v, gh_settings *s, char *err, size_t len)
{
    if (!json_object_is_type(v, json_type_boolean)) {
        snprintf(err, len, "connection config: include_archived must be true or false");
        return INGEST_EINVAL;
    }
    s->include_archived = json_object_get_boolean(v);
    return INGEST_OK;
}

/* Override the defaults with every key the connection's config sets. */
static int apply(const char *text, gh_settings *s, char *err, size_t len)
{
    json_object *cfg = ingest_json_parse(text, strlen(text));
    int rc = INGEST_OK;
    if (!json_object_is_type(cfg, json_type_object)) {
        snprintf(err, len, "connection config: not a JSON object");
        rc = INGEST_EINVAL;
    }
    json_object *v;
    /* Which repositories is one setting: a connection naming either list
     * does not also get the group's other one. */
    if (rc == INGEST_OK &&
        (ingest_json_get(cfg, "repositories") || ingest_json_get(cfg, "organizations"))) {
        list_free(&s->repositories);
        list_free(&s->organizations);
    }
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "repositories")))
        rc = strings_of(v, "repositories", gh_valid_repo, "owner/name", &s->repositories, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "organizations")))
        rc = strings_of(v, "organizations", gh_valid_org, "an organization login",
                        &s->organizations, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "api_base_url")))
        rc = set_base(v, s, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "streams")))
        rc = set_streams(v, s, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "include_archived")))
        rc = set_archived(v, s, err, len);
    json_object_put(cfg);
    return rc;
}

/* ------------------------------------------------------------------ API */

void gh_settings_free(gh_settings *s)
{
    list_free(&s->repositories);
    list_free(&s->organizations);
    free(s->base);
    memset(s, 0, sizeof *s);
}

int gh_settings_load(github_state *st, ingest_run *run, gh_settings *out, char *err, size_t len)
{
    memset(out, 0, sizeof *out);
    snprintf(err, len, "out of memory");
    int rc = defaults(st, out);
    char *text = NULL;
    if (rc == INGEST_OK && run && INGEST_API_HAS(st->api, connection_config)) {
        rc = st->api->connection_config(run, &text);
        if (rc == INGEST_OK)
            rc = apply(text ? text : "{}", out, err, len);
        else if (rc == INGEST_ENOTFOUND) /* no connection: the group's values */
            rc = INGEST_OK;
        else
            snprintf(err, len, "the connection's config cannot be read (status %d)", rc);
    }
    st->api->free(text);
    if (rc != INGEST_OK)
        gh_settings_free(out);
    else
        err[0] = '\0';
    return rc;
}

int gh_repo_configured(const gh_settings *s, const char *full_name)
{
    for (size_t i = 0; i < s->repositories.count; i++)
        if (strcasecmp(s->repositories.items[i], full_name) == 0)
            return 1;
    const char *slash = strchr(full_name, '/');
    size_t owner = slash ? (size_t)(slash - full_name) : 0;
    for (size_t i = 0; owner && i < s->organizations.count; i++)
        if (strlen(s->organizations.items[i]) == owner &&
            strncasecmp(s->organizations.items[i], full_name, owner) == 0)
            return 1;
    return 0;
}
