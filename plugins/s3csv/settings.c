/* settings.c — the connection's own config (REST POST /connections
 * "config"), checked as a whole before any request is made, so a typo is
 * one clear error instead of a half-imported bucket. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3csv.h"

#define MAX_TEXT 1024

void s3csv_settings_free(s3csv_settings *s)
{
    if (!s)
        return;
    free(s->bucket);
    free(s->prefix);
    free(s->region);
    free(s->endpoint);
    free(s->suffix);
    free(s->kind);
    free(s->purpose);
    free(s->classification);
    for (size_t i = 0; i < s->n_key_fields; i++)
        free(s->key_fields[i]);
    free(s->key_fields);
    free(s->occurred_at_field);
    for (size_t i = 0; i < s->n_columns; i++)
        s3csv_column_free(&s->columns[i]);
    free(s->columns);
    free(s->sigv4);
    memset(s, 0, sizeof *s);
}

static int only_chars(const char *s, const char *allowed, size_t max)
{
    size_t n = strlen(s);
    return n > 0 && n <= max && strspn(s, allowed) == n;
}

#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

/* A string member into *out (NULL when absent); -1 when present but not a
 * string of 0..MAX_TEXT bytes (empty only if allow_empty). */
static int get_text(json_object *cfg, const char *key, int allow_empty, char **out)
{
    json_object *v = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(cfg, key, &v) || json_object_is_type(v, json_type_null))
        return 0;
    int len = json_object_is_type(v, json_type_string) ? json_object_get_string_len(v) : -1;
    if (len < (allow_empty ? 0 : 1) || len > MAX_TEXT)
        return -1;
    *out = strdup(json_object_get_string(v));
    return *out ? 0 : -1;
}

static int get_bool(json_object *cfg, const char *key, int dflt, int *out)
{
    json_object *v = NULL;
    *out = dflt;
    if (!json_object_object_get_ex(cfg, key, &v))
        return 0;
    if (!json_object_is_type(v, json_type_boolean))
        return -1;
    *out = json_object_get_boolean(v);
    return 0;
}

/* http(s)://host[:port][/path] without user info, query or fragment. */
static int valid_endpoint(const char *e)
{
    const char *rest = strncmp(e, "https://", 8) == 0  ? e + 8
                       : strncmp(e, "http://", 7) == 0 ? e + 7
                                                       : NULL;
    return rest && *rest && *rest != '/' && !strpbrk(e, "?#@ \t\r\n\\\"");
}

static int parse_location(json_object *cfg, s3csv_settings *s, char *why, size_t why_len)
{
    if (get_text(cfg, "bucket", 0, &s->bucket) < 0 || !s->bucket ||
        !only_chars(s->bucket, ALNUM ".-_", 255))
        return snprintf(why, why_len, "bucket is required: a bucket name ([A-Za-z0-9._-])"), -1;
    if (get_text(cfg, "prefix", 1, &s->prefix) < 0)
        return snprintf(why, why_len, "prefix must be a string"), -1;
    if (get_text(cfg, "region", 0, &s->region) < 0 ||
        (s->region && !only_chars(s->region, "abcdefghijklmnopqrstuvwxyz0123456789-", 40)))
        return snprintf(why, why_len, "region must be an AWS region name such as us-east-1"), -1;
    if (!s->region && !(s->region = strdup("us-east-1")))
        return snprintf(why, why_len, "out of memory"), -1;
    if (get_text(cfg, "endpoint", 0, &s->endpoint) < 0 ||
        (s->endpoint && !valid_endpoint(s->endpoint)))
        return snprintf(why, why_len,
                        "endpoint must be an http(s)://host[:port][/path] URL without user, "
                        "query or fragment"),
               -1;
    if (!s->endpoint && asprintf(&s->endpoint, "https://s3.%s.amazonaws.com", s->region) < 0)
        return s->endpoint = NULL, snprintf(why, why_len, "out of memory"), -1;
    size_t n = strlen(s->endpoint);
    while (n > 0 && s->endpoint[n - 1] == '/')
        s->endpoint[--n] = '\0';
    if (get_bool(cfg, "force_path_style", 0, &s->force_path_style) < 0)
        return snprintf(why, why_len, "force_path_style must be true or false"), -1;
    if (!s->force_path_style && strchr(s->bucket, '.') && strncmp(s->endpoint, "https", 5) == 0)
        s->force_path_style = 1; /* a dotted bucket breaks the TLS wildcard of a virtual host */
    if (asprintf(&s->sigv4, "aws:amz:%s:s3", s->region) < 0)
        return s->sigv4 = NULL, snprintf(why, why_len, "out of memory"), -1;
    return 0;
}

static int parse_format(json_object *cfg, s3csv_settings *s, char *why, size_t why_len)
{
    char *delim = NULL;
    if (get_text(cfg, "delimiter", 0, &delim) < 0 || (delim && strlen(delim) != 1) ||
        (delim && (strchr("\"\r\n", delim[0]) || (unsigned char)delim[0] >= 0x80))) {
        free(delim);
        return snprintf(why, why_len,
                        "delimiter must be one ASCII character other than a quote or a line "
                        "break, e.g. \",\", \";\" or \"\\t\""),
               -1;
    }
    s->delimiter = delim ? delim[0] : ',';
    free(delim);
    if (get_bool(cfg, "has_header", 1, &s->has_header) < 0)
        return snprintf(why, why_len, "has_header must be true or false"), -1;
    if (get_text(cfg, "suffix", 0, &s->suffix) < 0)
        return snprintf(why, why_len, "suffix must be a non-empty string"), -1;
    return 0;
}

static int parse_labels(json_object *cfg, s3csv_settings *s, char *why, size_t why_len)
{
    if (get_text(cfg, "kind", 0, &s->kind) < 0 || (s->kind && strlen(s->kind) > 200))
        return snprintf(why, why_len, "kind must be a string of 1..200 characters"), -1;
    if (!s->kind && !(s->kind = strdup(S3CSV_DEFAULT_KIND)))
        return snprintf(why, why_len, "out of memory"), -1;
    if (get_text(cfg, "purpose", 0, &s->purpose) < 0)
        return snprintf(why, why_len, "purpose must be a non-empty string"), -1;
    if (get_text(cfg, "classification", 0, &s->classification) < 0)
        return snprintf(why, why_len, "classification must be a non-empty string"), -1;
    return 0;
}

static int parse_schema(json_object *cfg, const s3csv_clock *clock, s3csv_settings *s, char *why,
                        size_t why_len)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(cfg, "schema", &v) || json_object_is_type(v, json_type_null))
        return 0;
    size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
    if (n == 0 || n > 4096)
        return snprintf(why, why_len, "schema must be a non-empty array of column entries"), -1;
    s->columns = calloc(n, sizeof *s->columns);
    if (!s->columns)
        return snprintf(why, why_len, "out of memory"), -1;
    for (size_t i = 0; i < n; i++) {
        if (s3csv_column_parse(json_object_array_get_idx(v, i), i, clock, &s->columns[i], why,
                               why_len) < 0)
            return -1;
        s->n_columns++;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->columns[j].field, s->columns[i].field) == 0)
                return snprintf(why, why_len, "schema[%zu] repeats field '%.100s'", i,
                                s->columns[i].field),
                       -1;
    }
    return 0;
}

static const s3csv_column *field_column(const s3csv_settings *s, const char *field)
{
    for (size_t i = 0; i < s->n_columns; i++)
        if (strcmp(s->columns[i].field, field) == 0)
            return &s->columns[i];
    return NULL;
}

static int parse_key_fields(json_object *cfg, s3csv_settings *s, char *why, size_t why_len)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(cfg, "key_fields", &v) || json_object_is_type(v, json_type_null))
        return 0;
    size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
    if (n == 0 || n > 64)
        return snprintf(why, why_len, "key_fields must be a non-empty array of field names"), -1;
    s->key_fields = calloc(n, sizeof *s->key_fields);
    if (!s->key_fields)
        return snprintf(why, why_len, "out of memory"), -1;
    for (size_t i = 0; i < n; i++) {
        json_object *f = json_object_array_get_idx(v, i);
        if (!json_object_is_type(f, json_type_string) || json_object_get_string_len(f) == 0)
            return snprintf(why, why_len, "key_fields[%zu] must be a field name", i), -1;
        const char *name = json_object_get_string(f);
        if (s->n_columns && !field_column(s, name))
            return snprintf(why, why_len, "key_fields[%zu] '%.100s' is not a field of the schema",
                            i, name),
                   -1;
        if (!(s->key_fields[s->n_key_fields++] = strdup(name)))
            return snprintf(why, why_len, "out of memory"), -1;
    }
    return 0;
}

static int parse_occurred_at(json_object *cfg, s3csv_settings *s, char *why, size_t why_len)
{
    if (get_text(cfg, "occurred_at_field", 0, &s->occurred_at_field) < 0)
        return snprintf(why, why_len, "occurred_at_field must be a field name"), -1;
    if (!s->occurred_at_field || !s->n_columns)
        return 0;
    const s3csv_column *c = field_column(s, s->occurred_at_field);
    if (!c || c->type != S3CSV_TIMESTAMP)
        return snprintf(why, why_len,
                        "occurred_at_field '%.100s' must be a timestamp field of "
                        "the schema",
                        s->occurred_at_field),
               -1;
    return 0;
}

/* Members the host reads from the same object, and ours. */
static int known_key(const char *key)
{
    static const char *const keys[] = {
        "bucket",
        "prefix",
        "region",
        "endpoint",
        "force_path_style",
        "delimiter",
        "has_header",
        "suffix",
        "kind",
        "purpose",
        "classification",
        "key_fields",
        "occurred_at_field",
        "schema",
        "schedule",
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i]) == 0)
            return 1;
    return 0;
}

static int parse_all(json_object *cfg, const s3csv_clock *clock, s3csv_settings *s, char *why,
                     size_t why_len)
{
    json_object_object_foreach(cfg, key, value)
    {
        (void)value;
        if (!known_key(key))
            return snprintf(why, why_len, "unknown config key '%.64s'", key), -1;
    }
    if (parse_location(cfg, s, why, why_len) < 0 || parse_format(cfg, s, why, why_len) < 0 ||
        parse_labels(cfg, s, why, why_len) < 0 || parse_schema(cfg, clock, s, why, why_len) < 0 ||
        parse_key_fields(cfg, s, why, why_len) < 0 || parse_occurred_at(cfg, s, why, why_len) < 0)
        return -1;
    for (size_t i = 0; !s->has_header && i < s->n_columns; i++)
        if (!s->columns[i].index)
            return snprintf(why, why_len,
                            "without a header row, schema[%zu] must name its "
                            "column by number",
                            i),
                   -1;
    return 0;
}

int s3csv_settings_parse(const char *json_text, const s3csv_clock *clock, s3csv_settings *out,
                         char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    json_object *cfg = json_text ? json_tokener_parse(json_text) : NULL;
    int rc = -1;
    if (!json_object_is_type(cfg, json_type_object))
        snprintf(why, why_len, "the connection's config is not a JSON object");
    else
        rc = parse_all(cfg, clock, out, why, why_len);
    json_object_put(cfg);
    if (rc < 0)
        s3csv_settings_free(out);
    return rc;
}
