/* http_events.h — one pushed body split into events: a JSON object (one
 * event), a JSON array (one per element) or NDJSON (one per line). */
#ifndef HTTP_EVENTS_H
#define HTTP_EVENTS_H

#include <json-c/json.h>
#include <stddef.h>

typedef struct http_event {
    size_t index;       /* 0-based position in the body */
    size_t line;        /* NDJSON: 1-based line; 0 otherwise */
    json_object *value; /* borrowed for the callback; NULL when unreadable */
    const char *text;   /* the event's own bytes (NDJSON line) or its serialization */
    size_t text_len;
    const char *error; /* why value is NULL or not an object, else NULL */
} http_event;

/* Called once per event; a non-zero return stops the walk and is returned. */
typedef int (*http_event_fn)(void *arg, const http_event *event);

/* Walk `body`. The format follows the content type (application/x-ndjson,
 * application/jsonl, application/ndjson: NDJSON; anything else: JSON), and
 * a JSON body that does not parse as a whole is read as NDJSON when it has
 * several lines. Everything passed to fn is borrowed for the call. Returns
 * 0 or fn's non-zero result. */
int http_events_walk(const unsigned char *body, size_t len, const char *content_type,
                     http_event_fn fn, void *arg);

#endif
