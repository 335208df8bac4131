/* http_mapping.h — how a pushed event becomes a signal: where its kind, its
 * time and its deduplication key are found. */
#ifndef HTTP_MAPPING_H
#define HTTP_MAPPING_H

#include <json-c/json.h>

#include "ingest/plugin.h"

/* Dotted paths into the event (see ingest_json_get); NULL = not mapped.
 * Strings are owned by the mapping. */
typedef struct http_mapping {
    char *kind_path;        /* the signal kind; else default_kind */
    char *default_kind;     /* never NULL once loaded */
    char *occurred_at_path; /* RFC 3339 text or unix seconds; else the receive time */
    char *dedupe_key_path;  /* string or integer; else the event's SHA-256 */
} http_mapping;

/* Start from the plugin group's settings (`base`, borrowed) and apply the
 * connection's own (`connection_json`, a JSON object text; NULL = none).
 * Returns INGEST_OK, INGEST_EINVAL with a reason in err (a setting of the
 * wrong type), or INGEST_ENOMEM. Release with http_mapping_clear. */
int http_mapping_load(http_mapping *m, const http_mapping *base, const char *connection_json,
                      char *err, size_t err_len);
void http_mapping_clear(http_mapping *m);

#endif
