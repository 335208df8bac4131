/*
 * jira_fields.c — what a connection's issues need to be read by name.
 *
 * Custom fields arrive as "customfield_10016"; their names ("Story
 * points") come from GET /rest/api/3/field. Whether a status means "done"
 * comes from its category, GET /rest/api/3/status ([{id, name,
 * statusCategory: {key: "new" | "indeterminate" | "done"}}]), which also
 * dates transitions in the changelog that ended in a status the issue has
 * since left. Both change rarely and are per site, so they are cached per
 * connection for field_cache_s; a sync reads them afresh (refresh = 1),
 * webhooks reuse the cache.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jira.h"

struct jira_meta {
    char connection_id[64];
    int64_t fetched_us;
    json_object *fields;   /* {"customfield_10016": "Story points", ...} */
    json_object *statuses; /* {"10001": "done", ...} */
    struct jira_meta *next;
};

void jira_meta_free_all(jira_state *st)
{
    pthread_mutex_lock(&st->lock);
    while (st->meta) {
        jira_meta *m = st->meta;
        st->meta = m->next;
        json_object_put(m->fields);
        json_object_put(m->statuses);
        free(m);
    }
    pthread_mutex_unlock(&st->lock);
}

/* {id: name} of the custom fields of a /rest/api/3/field answer. */
static json_object *field_names(json_object *list)
{
    json_object *out = json_object_new_object();
    for (size_t i = 0;
         out && json_object_is_type(list, json_type_array) && i < json_object_array_length(list);
         i++) {
        json_object *f = json_object_array_get_idx(list, i);
        const char *id = ingest_json_str(f, "id"), *name = ingest_json_str(f, "name");
        if (id && name && (ingest_json_true(f, "custom") || strncmp(id, "customfield_", 12) == 0))
            json_object_object_add(out, id, json_object_new_string(name));
    }
    return out;
}

/* {id: category key} of a /rest/api/3/status answer. */
static json_object *status_categories(json_object *list)
{
    json_object *out = json_object_new_object();
    for (size_t i = 0;
         out && json_object_is_type(list, json_type_array) && i < json_object_array_length(list);
         i++) {
        json_object *s = json_object_array_get_idx(list, i);
        const char *id = ingest_json_str(s, "id");
        const char *cat = ingest_json_str(s, "statusCategory.key");
        if (id && cat)
            json_object_object_add(out, id, json_object_new_string(cat));
    }
    return out;
}

static int fetch(jira_state *st, ingest_run *run, const jira_settings *set, const char *path,
                 json_object *(*convert)(json_object *), json_object **out)
{
    char url[1200];
    snprintf(url, sizeof url, "%s/rest/api/3/%s", set->rest_base, path);
    json_object *body = NULL;
    int rc = jira_get_json(st, run, url, &body);
    if (rc == INGEST_OK && !(*out = convert(body)))
        rc = INGEST_ENOMEM;
    json_object_put(body);
    return rc;
}

/* The cached entry of a connection (lock held), or NULL. */
static jira_meta *find(jira_state *st, const char *connection_id)
{
    for (jira_meta *m = st->meta; m; m = m->next)
        if (strcmp(m->connection_id, connection_id) == 0)
            return m;
    return NULL;
}

/* Keep (fields, statuses) for the connection; takes the references. */
static void store(jira_state *st, const char *connection_id, json_object *fields,
                  json_object *statuses)
{
    pthread_mutex_lock(&st->lock);
    jira_meta *m = find(st, connection_id);
    if (!m && (m = calloc(1, sizeof *m))) {
        snprintf(m->connection_id, sizeof m->connection_id, "%s", connection_id);
        m->next = st->meta;
        st->meta = m;
    }
    if (m) {
        json_object_put(m->fields);
        json_object_put(m->statuses);
        m->fields = fields;
        m->statuses = statuses;
        m->fetched_us = st->api->now_us();
    } else {
        json_object_put(fields);
        json_object_put(statuses);
    }
    pthread_mutex_unlock(&st->lock);
}

/* New references to a fresh enough cached entry; 1 when there was one. */
static int cached(jira_state *st, const char *connection_id, json_object **fields,
                  json_object **statuses)
{
    int64_t ttl = st->conf->field_cache_s * 1000000;
    pthread_mutex_lock(&st->lock);
    jira_meta *m = find(st, connection_id);
    int hit = m && st->api->now_us() - m->fetched_us < ttl;
    if (hit) {
        *fields = json_object_get(m->fields);
        *statuses = json_object_get(m->statuses);
    }
    pthread_mutex_unlock(&st->lock);
    return hit;
}

int jira_meta_get(jira_state *st, ingest_run *run, const char *connection_id,
                  const jira_settings *set, int refresh, json_object **fields,
                  json_object **statuses)
{
    *fields = *statuses = NULL;
    if (!connection_id || !set->rest_base)
        return INGEST_ENOTFOUND;
    if (!refresh && cached(st, connection_id, fields, statuses))
        return INGEST_OK;
    int rc = fetch(st, run, set, "field", field_names, fields);
    if (rc == INGEST_OK)
        rc = fetch(st, run, set, "status", status_categories, statuses);
    if (rc != INGEST_OK) {
        json_object_put(*fields);
        *fields = NULL;
        return rc;
    }
    store(st, connection_id, json_object_get(*fields), json_object_get(*statuses));
    return INGEST_OK;
}
