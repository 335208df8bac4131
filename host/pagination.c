/* pagination.c — a small scanner for the Link field (commas and semicolons
 * may appear inside <...> and quoted strings, so splitting is not enough),
 * json-c for cursors and libcurl's CURLU API for URLs. */
#include "pagination.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- Link header (RFC 8288) ---------------------------------------------- */

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static int is_token_char(char c) { return c && !strchr(" \t;,=\"<>", c); }

/* Read a parameter value (token or quoted-string) at *p into a malloc'd
 * string; advance *p past it. NULL on malformed input or OOM. */
static char *read_param_value(const char **p)
{
    const char *s = *p;
    size_t cap = strlen(s) + 1, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    if (*s == '"') {
        for (s++; *s && *s != '"'; s++) {
            if (*s == '\\' && s[1])
                s++;
            out[n++] = *s;
        }
        if (*s != '"') {
            free(out);
            return NULL;
        }
        s++;
    } else {
        while (is_token_char(*s))
            out[n++] = *s++;
    }
    out[n] = '\0';
    *p = s;
    return out;
}

/* Does the space-separated list `types` contain `rel`? */
static int rel_list_has(const char *types, const char *rel)
{
    size_t len = strlen(rel);
    for (const char *p = skip_space(types); *p; p = skip_space(p)) {
        size_t word = strcspn(p, " \t");
        if (word == len && strncasecmp(p, rel, len) == 0)
            return 1;
        p += word;
    }
    return 0;
}

/* Parse the parameters after one link's <target>. Sets *matches when a rel
 * parameter lists `rel`. Returns the position after the link (at ',' or end),
 * or NULL when malformed. */
static const char *scan_params(const char *p, const char *rel, int *matches)
{
    int seen_rel = 0;
    for (p = skip_space(p); *p == ';'; p = skip_space(p)) {
        p = skip_space(p + 1);
        const char *name = p;
        while (is_token_char(*p))
            p++;
        size_t name_len = (size_t)(p - name);
        p = skip_space(p);
        if (*p != '=')
            continue; /* a parameter without a value */
        p = skip_space(p + 1);
        char *value = read_param_value(&p);
        if (!value)
            return NULL;
        /* Only the first rel counts (RFC 8288 section 3.3). */
        if (name_len == 3 && strncasecmp(name, "rel", 3) == 0 && !seen_rel) {
            seen_rel = 1;
            *matches = rel_list_has(value, rel);
        }
        free(value);
    }
    return (*p == ',' || *p == '\0') ? p : NULL;
}

/* target resolved against base (when given) via CURLU; malloc'd. */
static char *resolve_target(const char *target, size_t len, const char *base_url)
{
    char *raw = strndup(target, len);
    if (!raw || !base_url)
        return raw;
    CURLU *u = curl_url();
    char *resolved = NULL, *out = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, base_url, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, raw, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &resolved, 0) == CURLUE_OK)
        out = strdup(resolved);
    curl_free(resolved);
    curl_url_cleanup(u);
    free(raw);
    return out;
}

char *pagination_link_rel(const char *link_header, const char *rel, const char *base_url)
{
    if (!link_header || !rel)
        return NULL;
    const char *p = link_header;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p != '<')
            return NULL; /* end of field, or malformed */
        const char *target = p + 1;
        const char *close = strchr(target, '>');
        if (!close)
            return NULL;
        int matches = 0;
        p = scan_params(close + 1, rel, &matches);
        if (!p)
            return NULL;
        if (matches)
            return resolve_target(target, (size_t)(close - target), base_url);
    }
}

char *pagination_link_next(const char *link_header, const char *base_url)
{
    return pagination_link_rel(link_header, "next", base_url);
}

/* ---- JSON cursors -------------------------------------------------------- */

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* Follow one path segment; NULL when absent. */
static json_object *step(json_object *node, const char *segment)
{
    json_object *child = NULL;
    if (json_object_is_type(node, json_type_object)) {
        json_object_object_get_ex(node, segment, &child);
    } else if (json_object_is_type(node, json_type_array) && all_digits(segment)) {
        size_t index = strtoul(segment, NULL, 10);
        if (index < json_object_array_length(node))
            child = json_object_array_get_idx(node, index);
    }
    return child;
}

static json_object *lookup_path(json_object *root, const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return NULL;
    json_object *node = root;
    char *save = NULL;
    for (char *seg = strtok_r(copy, ".", &save); seg && node; seg = strtok_r(NULL, ".", &save))
        node = step(node, seg);
    free(copy);
    return node;
}

/* A cursor value as text: strings as they are, scalars as JSON text. */
static char *cursor_text(json_object *value)
{
    if (!value)
        return NULL;
    if (json_object_is_type(value, json_type_string))
        return json_object_get_string_len(value) ? strdup(json_object_get_string(value)) : NULL;
    if (json_object_is_type(value, json_type_object) || json_object_is_type(value, json_type_array))
        return NULL; /* not a cursor */
    return strdup(json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN));
}

int pagination_json_cursor(const char *body, size_t len, const char *path, char **cursor)
{
    *cursor = NULL;
    if (!body || !path || len > INT32_MAX)
        return -1;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return -1;
    json_object *root = json_tokener_parse_ex(tok, body, (int)len);
    int complete = json_tokener_get_error(tok) == json_tokener_success;
    /* Anything but whitespace after the document makes it invalid. */
    for (size_t i = complete ? json_tokener_get_parse_end(tok) : len; i < len; i++)
        if (!strchr(" \t\r\n", body[i]))
            complete = 0;
    json_tokener_free(tok);
    if (!root || !complete) {
        json_object_put(root);
        return -1;
    }
    *cursor = cursor_text(lookup_path(root, path));
    json_object_put(root);
    return 0;
}

/* ---- page / offset query parameters -------------------------------------- */

/* Does the raw query pair "name=value" (or "name") carry `name`? Names are
 * compared decoded, so "page%5Bnumber%5D" matches "page[number]". */
static int pair_has_name(const char *pair, size_t pair_len, const char *name)
{
    size_t name_len = strcspn(pair, "=&");
    if (name_len > pair_len)
        name_len = pair_len;
    int decoded_len = 0;
    /* The handle argument is unused by curl_easy_unescape. */
    char *decoded = curl_easy_unescape(NULL, pair, (int)name_len, &decoded_len);
    int same = decoded && (size_t)decoded_len == strlen(name) && strcmp(decoded, name) == 0;
    curl_free(decoded);
    return same;
}

/* The query without any pair named `name`; malloc'd ("" when nothing is left). */
static char *query_without(const char *query, const char *name)
{
    char *out = malloc(strlen(query) + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (const char *p = query; *p;) {
        size_t len = strcspn(p, "&");
        if (len > 0 && !pair_has_name(p, len, name)) {
            if (n > 0)
                out[n++] = '&';
            memcpy(out + n, p, len);
            n += len;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    out[n] = '\0';
    return out;
}

static int replace_query(CURLU *u, const char *name, const char *value)
{
    char *query = NULL;
    CURLUcode rc = curl_url_get(u, CURLUPART_QUERY, &query, 0);
    if (rc != CURLUE_OK && rc != CURLUE_NO_QUERY)
        return -1;
    char *kept = query_without(query ? query : "", name);
    curl_free(query);
    if (!kept)
        return -1;
    rc = curl_url_set(u, CURLUPART_QUERY, *kept ? kept : NULL, 0);
    free(kept);
    char *pair = NULL;
    if (rc != CURLUE_OK || asprintf(&pair, "%s=%s", name, value) < 0)
        return -1;
    /* APPENDQUERY + URLENCODE encodes everything but the first '='. */
    rc = curl_url_set(u, CURLUPART_QUERY, pair, CURLU_APPENDQUERY | CURLU_URLENCODE);
    free(pair);
    return rc == CURLUE_OK ? 0 : -1;
}

char *pagination_url_set_param(const char *url, const char *name, const char *value)
{
    if (!url || !name || !*name || !value)
        return NULL;
    CURLU *u = curl_url();
    char *built = NULL, *out = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        replace_query(u, name, value) == 0 &&
        curl_url_get(u, CURLUPART_URL, &built, 0) == CURLUE_OK)
        out = strdup(built);
    curl_free(built);
    curl_url_cleanup(u);
    return out;
}

char *pagination_url_set_int(const char *url, const char *name, int64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, value);
    return pagination_url_set_param(url, name, text);
}
