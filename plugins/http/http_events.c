/* http_events.c — bodies are parsed with json-c; an NDJSON line that is not
 * JSON is still an event (with an error) so it can be dead-lettered with its
 * line number instead of failing the whole delivery. */
#include "http_events.h"

#include <string.h>
#include <strings.h>

#include "ingest/helpers.h"

static int is_ndjson_type(const char *content_type)
{
    static const char *const types[] = {"application/x-ndjson", "application/ndjson",
                                        "application/jsonl", "application/x-jsonlines"};
    if (!content_type)
        return 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strncasecmp(content_type, types[i], strlen(types[i])) == 0)
            return 1;
    }
    return 0;
}

static int blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    }
    return 1;
}

static int emit_value(http_event_fn fn, void *arg, http_event *e, json_object *value)
{
    e->value = value;
    e->error = !value                                        ? "not valid JSON"
               : !json_object_is_type(value, json_type_object) ? "an event must be a JSON object"
                                                               : NULL;
    return fn(arg, e);
}

static int walk_ndjson(const char *p, size_t len, http_event_fn fn, void *arg)
{
    size_t index = 0, line = 0;
    const char *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        line++;
        if (!blank(p, n)) {
            json_object *value = ingest_json_parse(p, n);
            http_event e = {.index = index, .line = line, .text = p, .text_len = n};
            index++;
            int rc = emit_value(fn, arg, &e, value);
            json_object_put(value);
            if (rc)
                return rc;
        }
        p += n + (nl ? 1 : 0);
    }
    return 0;
}

static int walk_array(json_object *array, http_event_fn fn, void *arg)
{
    size_t n = json_object_array_length(array);
    for (size_t i = 0; i < n; i++) {
        json_object *value = json_object_array_get_idx(array, i);
        const char *text = value ? json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN)
                                 : "null";
        http_event e = {.index = i, .text = text, .text_len = strlen(text)};
        int rc = emit_value(fn, arg, &e, value);
        if (rc)
            return rc;
    }
    return 0;
}

int http_events_walk(const unsigned char *body, size_t len, const char *content_type,
                     http_event_fn fn, void *arg)
{
    const char *text = (const char *)body;
    if (is_ndjson_type(content_type))
        return walk_ndjson(text, len, fn, arg);
    json_object *whole = ingest_json_parse(text, len);
    int rc;
    if (whole && json_object_is_type(whole, json_type_array)) {
        rc = walk_array(whole, fn, arg);
    } else if (whole || !memchr(text, '\n', len)) {
        http_event e = {.index = 0, .text = text, .text_len = len};
        rc = emit_value(fn, arg, &e, whole);
    } else {
        rc = walk_ndjson(text, len, fn, arg); /* NDJSON sent as application/json */
    }
    json_object_put(whole);
    return rc;
}
