/*
 * jira_settings.c — what one job, delivery or credential check runs with.
 *
 * The plugin group gives defaults (site_url, projects, backfill_days); a
 * connection's own config overrides each key it sets, and holds what
 * on_authorized learned (cloud_id, site_url). Keys: site_url, cloud_id,
 * projects, jql, backfill_days. Other keys (the host's "schedule", ...) are
 * ignored here; a key set to null keeps the default.
 *
 * Where the REST API lives: an OAuth connection (it has a cloud_id) goes
 * through the gateway, {api_base_url}/ex/jira/{cloud_id}; a basic-auth
 * connection straight to its site_url. Requests to the gateway with a
 * basic-auth token, or to a site with an OAuth token, are refused by
 * Atlassian, so the choice follows from what the connection holds.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jira.h"

int jira_base_url(const char *url, char **out)
{
    *out = NULL;
    size_t n = url ? strlen(url) : 0;
    if (n < 8 || n > 512 || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
        return INGEST_EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= ' ' || url[i] == '"' || url[i] == '\\')
            return INGEST_EINVAL;
    while (n > 8 && url[n - 1] == '/')
        n--;
    return (*out = strndup(url, n)) ? INGEST_OK : INGEST_ENOMEM;
}

/* Project keys: an uppercase letter, then letters, digits, '_' (Jira's
 * default key pattern); quoted in JQL anyway. */
static int valid_project(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 64 || !isalpha((unsigned char)key[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)key[i]) && key[i] != '_')
            return 0;
    return 1;
}

/* A cloud id is a UUID-like token; anything else would leak into a URL. */
static int valid_cloud_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '-')
            return 0;
    return 1;
}

void jira_settings_free(jira_settings *s)
{
    free(s->site_url);
    free(s->cloud_id);
    free(s->rest_base);
    for (size_t i = 0; i < s->n_projects; i++)
        free(s->projects[i]);
    free(s->projects);
    free(s->jql);
    memset(s, 0, sizeof *s);
}

static int projects_from_conf(const jira_state *st, jira_settings *s)
{
    size_t n = st->conf->projects.count;
    s->projects = calloc(n ? n : 1, sizeof *s->projects);
    if (!s->projects)
        return INGEST_ENOMEM;
    for (; s->n_projects < n; s->n_projects++)
        if (!(s->projects[s->n_projects] = strdup(st->conf->projects.items[s->n_projects])))
            return INGEST_ENOMEM;
    return INGEST_OK;
}

static int defaults(const jira_state *st, jira_settings *s, char *err, size_t len)
{
    s->backfill_days = st->conf->backfill_days;
    for (size_t i = 0; i < st->conf->projects.count; i++)
        if (!valid_project(st->conf->projects.items[i])) {
            snprintf(err, len, "projects: '%.64s' is not a project key",
                     st->conf->projects.items[i]);
            return INGEST_EINVAL;
        }
    if (st->conf->site_url[0] && jira_base_url(st->conf->site_url, &s->site_url) != INGEST_OK)
        return INGEST_ENOMEM; /* validated at init: only memory can fail */
    return projects_from_conf(st, s);
}

static int set_projects(json_object *v, jira_settings *s, char *err, size_t len)
{
    if (!json_object_is_type(v, json_type_array)) {
        snprintf(err, len, "connection config: projects must be a list of project keys");
        return INGEST_EINVAL;
    }
    for (size_t i = 0; i < s->n_projects; i++)
        free(s->projects[i]);
    s->n_projects = 0;
    size_t n = json_object_array_length(v);
    char **grown = realloc(s->projects, (n ? n : 1) * sizeof *grown);
    if (!grown)
        return INGEST_ENOMEM;
    s->projects = grown;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        const char *key =
            json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
        if (!key || !valid_project(key)) {
            snprintf(err, len, "connection config: projects[%zu] is not a project key", i);
            return INGEST_EINVAL;
        }
        if (!(s->projects[s->n_projects] = strdup(key)))
            return INGEST_ENOMEM;
        s->n_projects++;
    }
    return INGEST_OK;
}

/* A string setting into *dst (replacing it), checked by `valid`. */
static int set_string(json_object *v, const char *key, int (*valid)(const char *), char **dst,
                      char *err, size_t len)
{
    const char *text = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
    if (!text || !valid(text)) {
        snprintf(err, len, "connection config: %s is not valid", key);
        return INGEST_EINVAL;
    }
    char *copy = strdup(text);
    if (!copy)
        return INGEST_ENOMEM;
    free(*dst);
    *dst = copy;
    return INGEST_OK;
}

static int valid_jql(const char *jql) { return strlen(jql) > 0 && strlen(jql) <= 2000; }

static int set_site(json_object *v, jira_settings *s, char *err, size_t len)
{
    char *site = NULL;
    int rc = json_object_is_type(v, json_type_string)
                 ? jira_base_url(json_object_get_string(v), &site)
                 : INGEST_EINVAL;
    if (rc == INGEST_EINVAL)
        snprintf(err, len, "connection config: site_url must be an http(s) URL");
    if (rc != INGEST_OK)
        return rc;
    free(s->site_url);
    s->site_url = site;
    return INGEST_OK;
}

static int set_backfill(json_object *v, jira_settings *s, char *err, size_t len)
{
    int64_t days = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
    if (days < 0 || days > 36500) {
        snprintf(err, len, "connection config: backfill_days must be an integer 0..36500");
        return INGEST_EINVAL;
    }
    s->backfill_days = days;
    return INGEST_OK;
}

static int apply(const char *text, jira_settings *s, char *err, size_t len)
{
    json_object *cfg = ingest_json_parse(text, strlen(text)), *v;
    int rc = INGEST_OK;
    if (!json_object_is_type(cfg, json_type_object)) {
        snprintf(err, len, "connection config: not a JSON object");
        rc = INGEST_EINVAL;
    }
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "site_url")))
        rc = set_site(v, s, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "cloud_id")))
        rc = set_string(v, "cloud_id", valid_cloud_id, &s->cloud_id, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "projects")))
        rc = set_projects(v, s, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "jql")))
        rc = set_string(v, "jql", valid_jql, &s->jql, err, len);
    if (rc == INGEST_OK && (v = ingest_json_get(cfg, "backfill_days")))
        rc = set_backfill(v, s, err, len);
    json_object_put(cfg);
    return rc;
}

static int rest_base(const jira_state *st, jira_settings *s, char *err, size_t len)
{
    int n = -1;
    if (s->cloud_id)
        n = asprintf(&s->rest_base, "%s/ex/jira/%s", st->api_base, s->cloud_id);
    else if (s->site_url)
        n = asprintf(&s->rest_base, "%s", s->site_url);
    else {
        snprintf(err, len,
                 "the connection has neither a cloud_id (OAuth) nor a site_url (basic auth)");
        return INGEST_EINVAL;
    }
    if (n < 0) {
        s->rest_base = NULL;
        return INGEST_ENOMEM;
    }
    return INGEST_OK;
}

int jira_settings_load(jira_state *st, ingest_run *run, int need_base, jira_settings *out,
                       char *err, size_t len)
{
    memset(out, 0, sizeof *out);
    snprintf(err, len, "out of memory");
    int rc = defaults(st, out, err, len);
    char *text = NULL;
    if (rc == INGEST_OK && run && INGEST_API_HAS(st->api, connection_config)) {
        rc = st->api->connection_config(run, &text);
        if (rc == INGEST_OK)
            rc = apply(text ? text : "{}", out, err, len);
        else if (rc == INGEST_ENOTFOUND)
            rc = INGEST_OK; /* no connection: the group's values */
        else
            snprintf(err, len, "the connection's config cannot be read (status %d)", rc);
    }
    st->api->free(text);
    if (rc == INGEST_OK && need_base)
        rc = rest_base(st, out, err, len);
    if (rc != INGEST_OK)
        jira_settings_free(out);
    else
        err[0] = '\0';
    return rc;
}

int jira_project_configured(const jira_settings *s, const char *key)
{
    if (s->n_projects == 0)
        return 1;
    for (size_t i = 0; key && i < s->n_projects; i++)
        if (strcasecmp(s->projects[i], key) == 0)
            return 1;
    return 0;
}
