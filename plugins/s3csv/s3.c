/* s3.c — S3 addressing and the listing request. Every URL is built in the
 * canonical form SigV4 signs (RFC 3986 encoding, query parameters sorted by
 * name), because the host's libcurl signs the URL exactly as given. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3csv.h"

char *s3csv_uri_encode(const char *text, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(text);
    char *out = malloc(n * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
                    (keep_slash && *p == '/');
        if (plain) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* scheme://bucket.host[:port][/base] for virtual-host addressing. */
static char *vhost_base(const s3csv_settings *s)
{
    const char *sep = strstr(s->endpoint, "://");
    char *out = NULL;
    if (!sep || asprintf(&out, "%.*s%s.%s", (int)(sep + 3 - s->endpoint), s->endpoint, s->bucket,
                         sep + 3) < 0)
        return NULL;
    return out;
}

char *s3csv_url(const s3csv_settings *s, const char *key)
{
    char *path = key ? s3csv_uri_encode(key, 1) : strdup("");
    char *bucket = s3csv_uri_encode(s->bucket, 0);
    char *base = s->force_path_style ? NULL : vhost_base(s);
    char *out = NULL;
    int n = -1;
    if (path && bucket && s->force_path_style)
        n = asprintf(&out, "%s/%s%s%s", s->endpoint, bucket, key ? "/" : "", path);
    else if (path && base)
        n = asprintf(&out, "%s/%s", base, path);
    free(path);
    free(bucket);
    free(base);
    return n < 0 ? NULL : out;
}

/* ListObjectsV2's query, parameters in canonical (sorted) order. */
static char *list_url(const s3csv_settings *s, const char *start_after, const char *token,
                      int64_t max_keys)
{
    char *base = s3csv_url(s, NULL);
    char *tok = token ? s3csv_uri_encode(token, 0) : NULL;
    char *prefix = s->prefix && *s->prefix ? s3csv_uri_encode(s->prefix, 0) : NULL;
    char *after = !token && start_after && *start_after ? s3csv_uri_encode(start_after, 0) : NULL;
    char *out = NULL;
    if (base && (!token || tok) && (!s->prefix || !*s->prefix || prefix) &&
        asprintf(&out, "%s?%s%s%slist-type=2&max-keys=%" PRId64 "%s%s%s%s", base,
                 tok ? "continuation-token=" : "", tok ? tok : "", tok ? "&" : "", max_keys,
                 prefix ? "&prefix=" : "", prefix ? prefix : "", after ? "&start-after=" : "",
                 after ? after : "") < 0)
        out = NULL;
    free(base);
    free(tok);
    free(prefix);
    free(after);
    return out;
}

int s3csv_status(s3csv_job *jb, int rc, const ingest_http_response *resp, const char *what)
{
    char code[64] = "", message[256] = "";
    long status = resp ? resp->status : 0;
    if (resp && status >= 300)
        s3csv_parse_error(resp->body, resp->body_len, code, sizeof code, message, sizeof message);
    int out = rc != INGEST_OK                  ? rc
              : status == 403 || status == 401 ? INGEST_EAUTH
              : status == 404 || status == 301 ? INGEST_EINVAL
              : status == 429 || status >= 500 ? INGEST_EAGAIN
                                               : INGEST_EIO;
    jb->api->log(jb->st->ctx, jb->run, INGEST_LOG_ERROR,
                 "%s of bucket %s failed (status %d): HTTP %ld%s%s%s%s%s", what,
                 jb->settings.bucket, out, status, code[0] ? " " : "", code, message[0] ? ": " : "",
                 message, rc != INGEST_OK && resp && resp->error[0] ? resp->error : "");
    jb->api->set_error(jb->st->ctx, "%s of bucket %s: HTTP %ld %s %s", what, jb->settings.bucket,
                       status, code, message);
    return out;
}

/* One GET with the connection's credentials; the caller frees *resp. */
int s3csv_get(s3csv_job *jb, const char *url, const ingest_header *headers, size_t n_headers,
              int (*sink)(void *, const void *, size_t), void *arg, ingest_http_response **resp)
{
    ingest_http_request req = {
        .hdr = INGEST_ABI_HEADER(ingest_http_request),
        .method = "GET",
        .url = url,
        .headers = headers,
        .n_headers = n_headers,
        .auth = INGEST_HTTP_AUTH_CONNECTION,
        .timeout_ms = (uint32_t)jb->st->conf->stall_timeout_ms,
        .aws_sigv4 = jb->settings.sigv4,
        .on_body = sink,
        .on_body_arg = arg,
    };
    return jb->api->http_request(jb->run, &req, resp);
}

int s3csv_list_page(s3csv_job *jb, const char *start_after, const char *token, int64_t max_keys,
                    s3csv_listing *out)
{
    memset(out, 0, sizeof *out);
    char *url = list_url(&jb->settings, start_after, token, max_keys);
    if (!url)
        return INGEST_ENOMEM;
    ingest_http_response *resp = NULL;
    int rc = s3csv_get(jb, url, NULL, 0, NULL, NULL, &resp);
    free(url);
    if (rc == INGEST_OK && resp->status == 200 &&
        s3csv_parse_listing(resp->body, resp->body_len, &jb->clock, out) < 0) {
        jb->api->log(jb->st->ctx, jb->run, INGEST_LOG_ERROR,
                     "the listing of bucket %s is not a ListBucketResult document",
                     jb->settings.bucket);
        rc = INGEST_EIO;
    } else if (rc != INGEST_OK || resp->status != 200) {
        rc = s3csv_status(jb, rc, resp, "ListObjectsV2");
    }
    jb->api->http_response_free(resp);
    return rc;
}
