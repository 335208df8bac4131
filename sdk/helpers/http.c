/* http.c — webhook header lookup, status mapping and safe error text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest/helpers.h"

const char *ingest_delivery_header(const ingest_delivery *d, const char *name)
{
    const char *found = NULL;
    for (size_t i = 0; d && name && i < d->n_headers; i++)
        if (d->headers[i].name && strcasecmp(d->headers[i].name, name) == 0)
            found = d->headers[i].value;
    return found;
}

int ingest_http_status_rc(long status)
{
    if ((status >= 200 && status < 300) || status == 304)
        return INGEST_OK;
    switch (status) {
    case 401:
        return INGEST_EAUTH;
    case 403:
    case 404:
    case 410:
        return INGEST_ENOTFOUND;
    case 429:
        return INGEST_ERATELIMITED;
    case 408:
        return INGEST_EAGAIN;
    default:
        return status >= 500 && status < 600 ? INGEST_EAGAIN : INGEST_EIO;
    }
}

/* Copy printable ASCII of `s` into out (at most max characters). */
static void printable(char *out, size_t len, const char *s, size_t max)
{
    size_t n = 0;
    for (; s && *s && n + 1 < len && n < max; s++)
        out[n++] = (*s >= 0x20 && *s < 0x7f) ? *s : ' ';
    out[n < len ? n : len - 1] = '\0';
}

void ingest_http_describe(const ingest_http_response *resp, char *out, size_t len)
{
    if (!out || !len)
        return;
    if (!resp) {
        snprintf(out, len, "no response");
        return;
    }
    char msg[161] = "";
    json_object *body = resp->body_len ? ingest_json_parse(resp->body, resp->body_len) : NULL;
    const char *m = ingest_json_str(body, "message");
    if (!m)
        m = ingest_json_str(body, "error_description");
    if (!m)
        m = ingest_json_str(body, "error");
    if (m)
        printable(msg, sizeof msg, m, sizeof msg - 1);
    else if (resp->error && *resp->error)
        printable(msg, sizeof msg, resp->error, sizeof msg - 1);
    json_object_put(body);
    if (resp->status)
        snprintf(out, len, "HTTP %ld%s%s", resp->status, msg[0] ? ": " : "", msg);
    else
        snprintf(out, len, "no response%s%s", msg[0] ? ": " : "", msg);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

char *ingest_form_value(const void *body, size_t len, const char *name)
{
    const char *p = body, *end = p ? p + len : NULL;
    size_t nlen = name ? strlen(name) : 0;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            char *out = malloc((size_t)(stop - v) + 1), *o = out;
            if (!out)
                return NULL;
            for (; v < stop; v++) {
                if (*v == '+') {
                    *o++ = ' ';
                } else if (*v == '%' && stop - v > 2 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    *o++ = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 2;
                } else {
                    *o++ = *v;
                }
            }
            *o = '\0';
            return out;
        }
        p = amp ? amp + 1 : end;
    }
    return NULL;
}

/* One escaped component; NULL when an escape is malformed or decodes to
 * NUL (a signed body never holds one, and it would cut the string). */
static char *form_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1), *o = out;
    for (size_t i = 0; out && i < len; i++) {
        int hi = s[i] == '%' && i + 2 < len ? hexval(s[i + 1]) : -1;
        int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
        if (s[i] == '%' && (hi < 0 || lo < 0 || (hi | lo) == 0)) {
            free(out);
            return NULL;
        }
        if (s[i] == '%') {
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i] == '+' ? ' ' : s[i];
        }
    }
    if (out)
        *o = '\0';
    return out;
}

/* Add "name=value" (or a bare "name") unless the name is there already. */
static int form_add_pair(json_object *obj, const char *pair, size_t len)
{
    const char *eq = memchr(pair, '=', len);
    size_t name_len = eq ? (size_t)(eq - pair) : len;
    char *name = form_decode(pair, name_len);
    char *value = eq ? form_decode(eq + 1, len - name_len - 1) : strdup("");
    int rc = name && value && *name ? 0 : -1;
    if (rc == 0 && !json_object_object_get_ex(obj, name, NULL)) {
        json_object *v = json_object_new_string(value);
        rc = v && json_object_object_add(obj, name, v) == 0 ? 0 : -1;
    }
    free(name);
    free(value);
    return rc;
}

json_object *ingest_form_parse(const void *body, size_t len)
{
    const char *b = body;
    json_object *obj = json_object_new_object();
    for (size_t start = 0; obj && b && start < len;) {
        const char *amp = memchr(b + start, '&', len - start);
        size_t end = amp ? (size_t)(amp - b) : len;
        if (end > start && form_add_pair(obj, b + start, end - start) != 0) {
            json_object_put(obj);
            return NULL;
        }
        start = end + 1;
    }
    return obj;
}
