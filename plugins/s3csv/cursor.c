/* cursor.c — the connector's cursor, one JSON object per connection:
 *
 *   {"v": 1, "since": <µs>, "recent": [["<key>", "<etag>", <µs>], ...],
 *    "pass": {"started": <µs>, "full": false, "job": "<uuid>", "after": "<key>",
 *             "recent": [...],
 *             "cur": {"key": "...", "etag": "...", "offset": N, "line": N,
 *                     "header": ["a", "b"]}}}
 *
 * "since": every object modified before it was imported by a finished
 * pass (a pass lists the bucket in key order); "recent": the versions
 * (key, ETag, LastModified) imported by it that were modified after
 * "since", which the next pass sees again and skips. "pass": the pass under way;
 * "after" is the last object it finished, "cur" the object it is in, with
 * the first byte and line not yet imported and the header row needed to
 * parse from there. It is committed with each batch of rows, so the rows
 * and the position after them are durable together. */
#include <stdlib.h>
#include <string.h>

#include "s3csv.h"

void s3csv_position_free(s3csv_position *p)
{
    if (!p)
        return;
    free(p->key);
    free(p->etag);
    for (size_t i = 0; i < p->n_header; i++)
        free(p->header[i]);
    free(p->header);
    memset(p, 0, sizeof *p);
}

void s3csv_seen_free(s3csv_seen_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].key);
        free(l->items[i].etag);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

int s3csv_seen_add(s3csv_seen_list *l, const char *key, const char *etag, int64_t last_modified_us)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        s3csv_seen *grown = realloc(l->items, cap * sizeof *grown);
        if (!grown)
            return -1;
        l->items = grown;
        l->cap = cap;
    }
    s3csv_seen *s = &l->items[l->n];
    s->key = strdup(key);
    s->etag = strdup(etag);
    s->last_modified_us = last_modified_us;
    if (!s->key || !s->etag) {
        free(s->key);
        free(s->etag);
        return -1;
    }
    l->n++;
    return 0;
}

int s3csv_seen_has(const s3csv_seen_list *l, const char *key, const char *etag)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].key, key) == 0 && strcmp(l->items[i].etag, etag) == 0)
            return 1;
    return 0;
}

void s3csv_cursor_free(s3csv_cursor *c)
{
    if (!c)
        return;
    s3csv_seen_free(&c->recent);
    s3csv_seen_free(&c->pass_recent);
    free(c->job_id);
    free(c->after);
    s3csv_position_free(&c->cur);
    memset(c, 0, sizeof *c);
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static int int_of(json_object *o, const char *key, int64_t *out)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    *out = json_object_get_int64(v);
    return 0;
}

static int parse_header(json_object *arr, s3csv_position *p)
{
    if (!arr)
        return 0;
    size_t n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    p->header = n ? calloc(n, sizeof *p->header) : NULL;
    if (n && !p->header)
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_object *f = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(f, json_type_string) ||
            !(p->header[p->n_header++] = strdup(json_object_get_string(f))))
            return -1;
    }
    return 0;
}

static int parse_position(json_object *cur, s3csv_position *p)
{
    if (!cur || json_object_is_type(cur, json_type_null))
        return 0;
    const char *key = str_of(cur, "key"), *etag = str_of(cur, "etag");
    int64_t offset, line;
    json_object *header = NULL;
    json_object_object_get_ex(cur, "header", &header);
    if (!key || !*key || !etag || int_of(cur, "offset", &offset) < 0 || offset < 0 ||
        int_of(cur, "line", &line) < 0 || line < 1)
        return -1;
    p->key = strdup(key);
    p->etag = strdup(etag);
    p->offset = (uint64_t)offset;
    p->line = (uint64_t)line;
    return p->key && p->etag ? parse_header(header, p) : -1;
}

/* [[key, etag, last_modified_us], ...]; absent is empty. */
static int parse_seen(json_object *arr, s3csv_seen_list *l)
{
    size_t n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    if (arr && !json_object_is_type(arr, json_type_array))
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(arr, i);
        json_object *k = json_object_array_get_idx(e, 0), *t = json_object_array_get_idx(e, 1);
        json_object *m = json_object_array_get_idx(e, 2);
        if (!json_object_is_type(e, json_type_array) || !json_object_is_type(k, json_type_string) ||
            !json_object_is_type(t, json_type_string) || !json_object_is_type(m, json_type_int) ||
            s3csv_seen_add(l, json_object_get_string(k), json_object_get_string(t),
                           json_object_get_int64(m)) < 0)
            return -1;
    }
    return 0;
}

static json_object *seen_json(const s3csv_seen_list *l)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < l->n; i++) {
        json_object *e = json_object_new_array();
        json_object_array_add(e, json_object_new_string(l->items[i].key));
        json_object_array_add(e, json_object_new_string(l->items[i].etag));
        json_object_array_add(e, json_object_new_int64(l->items[i].last_modified_us));
        json_object_array_add(arr, e);
    }
    return arr;
}

static int parse_pass(json_object *pass, s3csv_cursor *c)
{
    if (!pass || json_object_is_type(pass, json_type_null))
        return 0;
    json_object *full = NULL, *cur = NULL;
    const char *after = str_of(pass, "after"), *job = str_of(pass, "job");
    if (int_of(pass, "started", &c->started_us) < 0 || !after)
        return -1;
    c->in_pass = 1;
    c->full = json_object_object_get_ex(pass, "full", &full) && json_object_get_boolean(full);
    c->after = strdup(after);
    c->job_id = job ? strdup(job) : NULL;
    if (!c->after || (job && !c->job_id))
        return -1;
    json_object *recent = NULL;
    json_object_object_get_ex(pass, "recent", &recent);
    if (parse_seen(recent, &c->pass_recent) < 0)
        return -1;
    json_object_object_get_ex(pass, "cur", &cur);
    return parse_position(cur, &c->cur);
}

int s3csv_cursor_parse(const char *text, s3csv_cursor *c)
{
    memset(c, 0, sizeof *c);
    if (!text)
        return 0;
    json_object *root = json_tokener_parse(text), *pass = NULL;
    int64_t v = 0;
    int rc = json_object_is_type(root, json_type_object) && int_of(root, "v", &v) == 0 && v == 1 &&
                     int_of(root, "since", &c->since_us) == 0
                 ? 0
                 : -1;
    json_object *recent = NULL;
    if (rc == 0) {
        json_object_object_get_ex(root, "recent", &recent);
        json_object_object_get_ex(root, "pass", &pass);
        rc = parse_seen(recent, &c->recent) == 0 ? parse_pass(pass, c) : -1;
    }
    json_object_put(root);
    if (rc < 0)
        s3csv_cursor_free(c);
    return rc;
}

static json_object *position_json(const s3csv_position *p)
{
    json_object *o = json_object_new_object(), *h = json_object_new_array();
    json_object_object_add(o, "key", json_object_new_string(p->key));
    json_object_object_add(o, "etag", json_object_new_string(p->etag ? p->etag : ""));
    json_object_object_add(o, "offset", json_object_new_int64((int64_t)p->offset));
    json_object_object_add(o, "line", json_object_new_int64((int64_t)p->line));
    for (size_t i = 0; i < p->n_header; i++)
        json_object_array_add(h, json_object_new_string(p->header[i]));
    json_object_object_add(o, "header", h);
    return o;
}

static json_object *pass_json(const s3csv_cursor *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "started", json_object_new_int64(c->started_us));
    json_object_object_add(o, "full", json_object_new_boolean(c->full));
    if (c->job_id)
        json_object_object_add(o, "job", json_object_new_string(c->job_id));
    json_object_object_add(o, "after", json_object_new_string(c->after ? c->after : ""));
    json_object_object_add(o, "recent", seen_json(&c->pass_recent));
    json_object_object_add(o, "cur", c->cur.key ? position_json(&c->cur) : NULL);
    return o;
}

char *s3csv_cursor_text(const s3csv_cursor *c)
{
    json_object *root = json_object_new_object();
    if (!root)
        return NULL;
    json_object_object_add(root, "v", json_object_new_int(1));
    json_object_object_add(root, "since", json_object_new_int64(c->since_us));
    json_object_object_add(root, "recent", seen_json(&c->recent));
    json_object_object_add(root, "pass", c->in_pass ? pass_json(c) : NULL);
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE);
    char *out = text ? strdup(text) : NULL;
    json_object_put(root);
    return out;
}
