/* schema.c — one configured column: how its text becomes a typed JSON
 * value. Values are checked strictly (the whole text must be the value,
 * spaces around non-strings aside) because a half-read number stored as
 * if it were whole is worse than a dead letter that says why. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "s3csv.h"

#define QUOTE_MAX 64 /* bytes of an offending value quoted in a reason */

static const char *const type_names[] = {"string", "int", "float", "bool", "timestamp", "enum"};

const char *s3csv_type_name(s3csv_type t)
{
    return (unsigned)t < sizeof type_names / sizeof type_names[0] ? type_names[t] : "?";
}

void s3csv_column_free(s3csv_column *col)
{
    if (!col)
        return;
    free(col->column);
    free(col->field);
    free(col->format);
    for (size_t i = 0; i < col->n_values; i++)
        free(col->values[i]);
    free(col->values);
    free(col->default_text);
    memset(col, 0, sizeof *col);
}

/* ---- converting one value ------------------------------------------------ */

/* At most QUOTE_MAX bytes of text, cut on a UTF-8 boundary (the parser
 * already refused invalid UTF-8 and NULs are refused before this). */
static int quote_len(const char *text, size_t len)
{
    if (len <= QUOTE_MAX)
        return (int)len;
    size_t n = QUOTE_MAX;
    while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
        n--;
    return (int)n;
}

static int fail(char *why, size_t why_len, const char *what, const char *text, size_t len)
{
    snprintf(why, why_len, "%s: '%.*s'%s", what, quote_len(text, len), text,
             len > QUOTE_MAX ? "..." : "");
    return -1;
}

static void trim(const char **text, size_t *len)
{
    while (*len && (**text == ' ' || **text == '\t')) {
        (*text)++;
        (*len)--;
    }
    while (*len && ((*text)[*len - 1] == ' ' || (*text)[*len - 1] == '\t'))
        (*len)--;
}

/* JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number_text(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (isdigit((unsigned char)*s))
            s++;
    else
        return 0;
    if (*s == '.') {
        if (!isdigit((unsigned char)*++s))
            return 0;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!isdigit((unsigned char)*s))
            return 0;
        while (isdigit((unsigned char)*s))
            s++;
    }
    return *s == '\0';
}

static int to_int(const char *t, size_t len, json_object **out, char *why, size_t why_len)
{
    char buf[32];
    if (len >= sizeof buf || len == 0)
        return fail(why, why_len, "not an integer", t, len);
    memcpy(buf, t, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || end == buf || !(isdigit((unsigned char)buf[0]) || buf[0] == '-' || buf[0] == '+'))
        return fail(why, why_len, "not an integer", t, len);
    if (errno == ERANGE)
        return fail(why, why_len, "integer out of range", t, len);
    *out = json_object_new_int64(v);
    return 0;
}

static int to_float(const char *t, size_t len, json_object **out, char *why, size_t why_len)
{
    char buf[64];
    if (len >= sizeof buf || len == 0 || memchr(t, 'x', len) || memchr(t, 'X', len))
        return fail(why, why_len, "not a number", t, len);
    memcpy(buf, t, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end || end == buf)
        return fail(why, why_len, "not a number", t, len);
    if (!isfinite(v))
        return fail(why, why_len, "not a finite number", t, len);
    if (errno == ERANGE && v != 0)
        return fail(why, why_len, "number out of range", t, len);
    /* Keep the source's digits when they are valid JSON: 0.1 stays 0.1. */
    *out = json_number_text(buf) ? json_object_new_double_s(v, buf) : json_object_new_double(v);
    return 0;
}

static int to_bool(const char *t, size_t len, json_object **out, char *why, size_t why_len)
{
    static const char *const yes[] = {"true", "t", "yes", "y", "1"};
    static const char *const no[] = {"false", "f", "no", "n", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strlen(yes[i]) == len && strncasecmp(t, yes[i], len) == 0) {
            *out = json_object_new_boolean(1);
            return 0;
        }
        if (strlen(no[i]) == len && strncasecmp(t, no[i], len) == 0) {
            *out = json_object_new_boolean(0);
            return 0;
        }
    }
    return fail(why, why_len, "not a boolean", t, len);
}

/* Whole seconds since the epoch (or ms), possibly negative. */
static int parse_unix(const char *buf, int ms, int64_t *us)
{
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    long long limit = ms ? 253402300799999LL : 253402300799LL; /* 9999-12-31 */
    if (*end || end == buf || errno == ERANGE || v > limit || v < -limit)
        return -1;
    *us = ms ? (int64_t)v * 1000 : (int64_t)v * 1000000;
    return 0;
}

/* strptime with the configured format, the whole text consumed; %z is
 * honoured, without it the time is UTC. */
static int parse_format(const char *buf, const char *format, int64_t *us)
{
    struct tm tm = {0};
    const char *end = strptime(buf, format, &tm);
    if (!end || *end)
        return -1;
    long gmtoff = tm.tm_gmtoff;
    tm.tm_isdst = 0;
    time_t secs = timegm(&tm);
    if (secs == (time_t)-1 && !(tm.tm_year == 69 && tm.tm_mday == 31))
        return -1;
    *us = ((int64_t)secs - gmtoff) * 1000000;
    return 0;
}

static int to_time(const s3csv_column *c, const s3csv_clock *clock, const char *t, size_t len,
                   json_object **out, char *why, size_t why_len)
{
    char buf[128];
    if (len >= sizeof buf)
        return fail(why, why_len, "not a timestamp", t, len);
    memcpy(buf, t, len);
    buf[len] = '\0';
    int64_t us = 0;
    int rc;
    if (!c->format)
        rc = clock->parse_time(buf, &us) == INGEST_OK ? 0 : -1;
    else if (strcmp(c->format, "unix") == 0 || strcmp(c->format, "unix_ms") == 0)
        rc = parse_unix(buf, c->format[4] == '_', &us);
    else
        rc = parse_format(buf, c->format, &us);
    if (rc < 0) {
        char what[96];
        snprintf(what, sizeof what, "not a timestamp in format %.40s",
                 c->format ? c->format : "RFC 3339");
        return fail(why, why_len, what, t, len);
    }
    char text[32];
    clock->format_time(us, text);
    *out = json_object_new_string(text);
    return 0;
}

static int to_enum(const s3csv_column *c, const char *t, size_t len, json_object **out, char *why,
                   size_t why_len)
{
    for (size_t i = 0; i < c->n_values; i++)
        if (strlen(c->values[i]) == len && memcmp(c->values[i], t, len) == 0) {
            *out = json_object_new_string_len(t, (int)len);
            return 0;
        }
    return fail(why, why_len, "not one of the allowed values", t, len);
}

static int convert_text(const s3csv_column *c, const s3csv_clock *clock, const char *t, size_t len,
                        json_object **out, char *why, size_t why_len)
{
    switch (c->type) {
    case S3CSV_STRING:
        *out = json_object_new_string_len(t, (int)len);
        return 0;
    case S3CSV_INT:
        return to_int(t, len, out, why, why_len);
    case S3CSV_FLOAT:
        return to_float(t, len, out, why, why_len);
    case S3CSV_BOOL:
        return to_bool(t, len, out, why, why_len);
    case S3CSV_TIMESTAMP:
        return to_time(c, clock, t, len, out, why, why_len);
    case S3CSV_ENUM:
        return to_enum(c, t, len, out, why, why_len);
    }
    snprintf(why, why_len, "unknown type");
    return -1;
}

int s3csv_convert(const s3csv_column *c, const s3csv_clock *clock, const char *text, size_t len,
                  json_object **out, char *why, size_t why_len)
{
    *out = NULL;
    if (text && memchr(text, '\0', len)) {
        snprintf(why, why_len, "holds a NUL byte, which PostgreSQL cannot store in JSON");
        return -1;
    }
    if (!text)
        len = 0;
    if (c->type != S3CSV_STRING && c->type != S3CSV_ENUM)
        trim(&text, &len);
    if (len == 0 && c->default_text)
        return convert_text(c, clock, c->default_text, strlen(c->default_text), out, why, why_len);
    if (len == 0 && c->required) {
        snprintf(why, why_len, "required value is empty");
        return -1;
    }
    if (len == 0 && c->type != S3CSV_STRING)
        return 0; /* JSON null */
    int rc = convert_text(c, clock, text ? text : "", len, out, why, why_len);
    if (rc == 0 && !*out) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    return rc;
}

/* ---- parsing a schema entry ---------------------------------------------- */

static int parse_type(const char *name, s3csv_type *t)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (strcmp(name, type_names[i]) == 0) {
            *t = (s3csv_type)i;
            return 0;
        }
    return -1;
}

static int dup_string(json_object *v, char **out)
{
    if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0 ||
        json_object_get_string_len(v) > 1000)
        return -1;
    *out = strdup(json_object_get_string(v));
    return *out ? 0 : -1;
}

static int parse_values(json_object *v, s3csv_column *col)
{
    size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
    if (n == 0 || n > 10000)
        return -1;
    col->values = calloc(n, sizeof *col->values);
    if (!col->values)
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_object *item = json_object_array_get_idx(v, i);
        /* an empty value is allowed: it is what an empty field means */
        if (!json_object_is_type(item, json_type_string) ||
            !(col->values[col->n_values++] = strdup(json_object_get_string(item))))
            return -1;
    }
    return 0;
}

static int parse_column_ref(json_object *v, s3csv_column *col)
{
    if (json_object_is_type(v, json_type_int)) {
        int64_t i = json_object_get_int64(v);
        if (i < 1 || i > 1000000)
            return -1;
        col->index = (size_t)i;
        return 0;
    }
    return dup_string(v, &col->column);
}

static int parse_bool(json_object *v, int *out)
{
    if (!json_object_is_type(v, json_type_boolean))
        return -1;
    *out = json_object_get_boolean(v);
    return 0;
}

/* One member of a schema entry; 0, or -1 with why. */
static int parse_member(const char *key, json_object *v, s3csv_column *col, char *why,
                        size_t why_len)
{
    int rc = -1;
    if (strcmp(key, "column") == 0)
        rc = parse_column_ref(v, col);
    else if (strcmp(key, "field") == 0)
        rc = dup_string(v, &col->field);
    else if (strcmp(key, "type") == 0)
        rc = json_object_is_type(v, json_type_string)
                 ? parse_type(json_object_get_string(v), &col->type)
                 : -1;
    else if (strcmp(key, "format") == 0)
        rc = dup_string(v, &col->format);
    else if (strcmp(key, "values") == 0)
        rc = parse_values(v, col);
    else if (strcmp(key, "required") == 0)
        rc = parse_bool(v, &col->required);
    else if (strcmp(key, "default") == 0)
        rc = json_object_is_type(v, json_type_string)
                 ? ((col->default_text = strdup(json_object_get_string(v))) ? 0 : -1)
                 : -1;
    else
        return snprintf(why, why_len, "unknown member '%.40s'", key), -1;
    if (rc < 0)
        snprintf(why, why_len, "bad '%s'", key);
    return rc;
}

/* Rules that involve several members. */
static int check_column(s3csv_column *col, const s3csv_clock *clock, char *why, size_t why_len)
{
    if (!col->column && !col->index)
        return snprintf(why, why_len, "needs a column (a header name or a 1-based number)"), -1;
    if (col->format && col->type != S3CSV_TIMESTAMP)
        return snprintf(why, why_len, "format is only for timestamps"), -1;
    if ((col->type == S3CSV_ENUM) != (col->values != NULL))
        return snprintf(why, why_len, "values go with type enum, and enum needs them"), -1;
    if (!col->field) {
        char name[32];
        snprintf(name, sizeof name, "column_%zu", col->index);
        col->field = strdup(col->column ? col->column : name);
        if (!col->field)
            return snprintf(why, why_len, "out of memory"), -1;
    }
    if (col->default_text) {
        json_object *v = NULL;
        char inner[160];
        s3csv_column probe = *col;
        probe.default_text = NULL;
        probe.required = 0;
        int rc = s3csv_convert(&probe, clock, col->default_text, strlen(col->default_text), &v,
                               inner, sizeof inner);
        json_object_put(v);
        if (rc < 0)
            return snprintf(why, why_len, "default %s", inner), -1;
    }
    return 0;
}

int s3csv_column_parse(json_object *entry, size_t position, const s3csv_clock *clock,
                       s3csv_column *col, char *why, size_t why_len)
{
    char inner[200] = "";
    memset(col, 0, sizeof *col);
    if (!json_object_is_type(entry, json_type_object)) {
        snprintf(why, why_len, "schema[%zu] is not an object", position);
        return -1;
    }
    int rc = 0;
    json_object_object_foreach(entry, key, v)
    {
        if (rc == 0)
            rc = parse_member(key, v, col, inner, sizeof inner);
    }
    if (rc == 0)
        rc = check_column(col, clock, inner, sizeof inner);
    if (rc < 0) {
        snprintf(why, why_len, "schema[%zu] %s", position, inner);
        s3csv_column_free(col);
    }
    return rc;
}
