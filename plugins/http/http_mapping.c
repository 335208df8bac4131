/* http_mapping.c — a connection's settings override the plugin group's, key
 * by key, so one daemon can take differently shaped pushes per connection. */
#include "http_mapping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/helpers.h"

static const char *const keys[] = {"kind_path", "default_kind", "occurred_at_path",
                                   "dedupe_key_path"};

static char **slot(http_mapping *m, size_t i)
{
    char **slots[] = {&m->kind_path, &m->default_kind, &m->occurred_at_path, &m->dedupe_key_path};
    return slots[i];
}

static int copy_base(http_mapping *m, const http_mapping *base)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = *slot((http_mapping *)base, i);
        if (v && *v && !(*slot(m, i) = strdup(v)))
            return INGEST_ENOMEM;
    }
    return INGEST_OK;
}

static int apply_connection(http_mapping *m, json_object *conf, char *err, size_t err_len)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_object *v = NULL;
        if (!json_object_object_get_ex(conf, keys[i], &v) || !v)
            continue;
        if (!json_object_is_type(v, json_type_string)) {
            snprintf(err, err_len, "connection setting %s must be a string", keys[i]);
            return INGEST_EINVAL;
        }
        char *copy = strdup(json_object_get_string(v));
        if (!copy)
            return INGEST_ENOMEM;
        free(*slot(m, i));
        *slot(m, i) = *copy ? copy : NULL; /* "" switches a group setting off */
        if (!*copy)
            free(copy);
    }
    return INGEST_OK;
}

int http_mapping_load(http_mapping *m, const http_mapping *base, const char *connection_json,
                      char *err, size_t err_len)
{
    memset(m, 0, sizeof *m);
    int rc = copy_base(m, base);
    json_object *conf = connection_json ? ingest_json_parse(connection_json,
                                                            strlen(connection_json))
                                        : NULL;
    if (rc == INGEST_OK && conf)
        rc = apply_connection(m, conf, err, err_len);
    json_object_put(conf);
    if (rc == INGEST_OK && !m->default_kind && !(m->default_kind = strdup("http.event")))
        rc = INGEST_ENOMEM;
    if (rc != INGEST_OK)
        http_mapping_clear(m);
    return rc;
}

void http_mapping_clear(http_mapping *m)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        free(*slot(m, i));
        *slot(m, i) = NULL;
    }
}
