/* json.c — json-c getters by dotted path, strict parsing and compact text. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/helpers.h"

/* One path segment: [seg, seg+len). Digits-only segments index arrays. */
static json_object *step(json_object *cur, const char *seg, size_t len)
{
    if (json_object_is_type(cur, json_type_object)) {
        char key[256];
        if (len >= sizeof key)
            return NULL;
        memcpy(key, seg, len);
        key[len] = '\0';
        json_object *v = NULL;
        return json_object_object_get_ex(cur, key, &v) ? v : NULL;
    }
    if (json_object_is_type(cur, json_type_array) && len > 0 && len < 10) {
        size_t idx = 0;
        for (size_t i = 0; i < len; i++) {
            if (!isdigit((unsigned char)seg[i]))
                return NULL;
            idx = idx * 10 + (size_t)(seg[i] - '0');
        }
        return idx < json_object_array_length(cur) ? json_object_array_get_idx(cur, idx) : NULL;
    }
    return NULL;
}

json_object *ingest_json_get(json_object *root, const char *path)
{
    json_object *cur = root;
    if (!path)
        return cur;
    const char *p = path;
    while (cur && *p) {
        size_t len = strcspn(p, ".");
        cur = step(cur, p, len);
        p += len;
        if (*p == '.')
            p++;
    }
    return cur; /* json-c represents JSON null as NULL */
}

const char *ingest_json_str(json_object *root, const char *path)
{
    json_object *v = ingest_json_get(root, path);
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

int ingest_json_int64(json_object *root, const char *path, int64_t *out)
{
    json_object *v = ingest_json_get(root, path);
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
        return 1;
    }
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        char *end = NULL;
        if (!*s || !isdigit((unsigned char)*s))
            return 0;
        long long n = strtoll(s, &end, 10);
        if (*end)
            return 0;
        *out = n;
        return 1;
    }
    return 0;
}

int ingest_json_true(json_object *root, const char *path)
{
    json_object *v = ingest_json_get(root, path);
    return json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

int ingest_json_time(const ingest_host_api *api, json_object *root, const char *path,
                     int64_t *out_us)
{
    json_object *v = ingest_json_get(root, path);
    if (!v)
        return INGEST_ENOTFOUND;
    if (json_object_is_type(v, json_type_int)) {
        *out_us = json_object_get_int64(v) * 1000000;
        return INGEST_OK;
    }
    if (!json_object_is_type(v, json_type_string))
        return INGEST_EINVAL;
    return api->parse_time(json_object_get_string(v), out_us);
}

int ingest_json_copy(json_object *dst, const char *key, json_object *src, const char *path)
{
    json_object *v = ingest_json_get(src, path);
    return json_object_object_add(dst, key, json_object_get(v)) == 0 ? 0 : -1;
}

int ingest_json_put_str(json_object *dst, const char *key, const char *value)
{
    json_object *v = value ? json_object_new_string(value) : NULL;
    if (value && !v)
        return -1;
    return json_object_object_add(dst, key, v) == 0 ? 0 : -1;
}

json_object *ingest_json_parse(const void *text, size_t len)
{
    if (!text || len > (size_t)INT32_MAX - 1)
        return NULL;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (err == json_tokener_continue) { /* a number or literal that needs its end */
        json_object_put(o);
        char *copy = malloc(len + 1);
        if (!copy)
            return NULL;
        memcpy(copy, text, len);
        copy[len] = '\0';
        tok = json_tokener_new();
        if (!tok) {
            free(copy);
            return NULL;
        }
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, copy, (int)len + 1);
        err = json_tokener_get_error(tok);
        used = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        free(copy);
        if (used > len)
            used = len;
    }
    if (err != json_tokener_success) {
        json_object_put(o);
        return NULL;
    }
    const char *rest = (const char *)text + used;
    for (size_t i = used; i < len; i++, rest++)
        if (!isspace((unsigned char)*rest)) {
            json_object_put(o);
            return NULL;
        }
    return o;
}

char *ingest_json_text(json_object *o)
{
    const char *s =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    return s ? strdup(s) : NULL;
}
