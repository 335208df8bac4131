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
