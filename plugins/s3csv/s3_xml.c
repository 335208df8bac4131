/* s3_xml.c — the two XML documents the connector reads: ListBucketResult
 * (ListObjectsV2) and Error. None of the allowed libraries parses XML and
 * these documents are flat, fixed-shape and attribute-free, so a tag
 * scanner with entity decoding is all they need; anything else in them is
 * ignored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3csv.h"

/* A byte range of the document. */
typedef struct span {
    const char *p, *end;
} span;

/* The content of the first <tag>...</tag> (or <tag/>) in `in`; 0 when
 * absent. `after` (may be NULL) gets the range after the closing tag. */
static int find_element(span in, const char *tag, span *content, span *after)
{
    char open[64], close[64], empty[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    snprintf(empty, sizeof empty, "<%s/>", tag);
    size_t len = (size_t)(in.end - in.p);
    const char *o = memmem(in.p, len, open, strlen(open));
    const char *e = memmem(in.p, len, empty, strlen(empty));
    if (e && (!o || e < o)) {
        *content = (span){e + strlen(empty), e + strlen(empty)};
        if (after)
            *after = (span){content->end, in.end};
        return 1;
    }
    if (!o)
        return 0;
    const char *start = o + strlen(open);
    const char *c = memmem(start, (size_t)(in.end - start), close, strlen(close));
    if (!c)
        return 0;
    *content = (span){start, c};
    if (after)
        *after = (span){c + strlen(close), in.end};
    return 1;
}

static size_t put_utf8(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One entity at s (which starts with '&') into out; its source length, or
 * 0 when it is not one we know (then '&' is kept as it is). */
static size_t decode_entity(const char *s, const char *end, char *out, size_t *written)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        size_t n = strlen(named[i].name);
        if ((size_t)(end - s) >= n && memcmp(s, named[i].name, n) == 0) {
            *out = named[i].c;
            *written = 1;
            return n;
        }
    }
    if (end - s < 4 || s[1] != '#')
        return 0;
    int hex = s[2] == 'x' || s[2] == 'X';
    char *stop;
    unsigned long cp = strtoul(s + 2 + hex, &stop, hex ? 16 : 10);
    if (stop >= end || *stop != ';' || stop == s + 2 + hex || cp == 0 || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    *written = put_utf8(out, cp);
    return (size_t)(stop + 1 - s);
}

/* The decoded text of a span, malloc'd (NUL-terminated). */
static char *decode(span s)
{
    char *out = malloc((size_t)(s.end - s.p) + 1);
    size_t n = 0;
    for (const char *p = s.p; out && p < s.end;) {
        size_t written = 0, used = *p == '&' ? decode_entity(p, s.end, out + n, &written) : 0;
        if (used) {
            n += written;
            p += used;
        } else {
            out[n++] = *p++;
        }
    }
    if (out)
        out[n] = '\0';
    return out;
}

static char *element_text(span in, const char *tag)
{
    span content;
    return find_element(in, tag, &content, NULL) ? decode(content) : NULL;
}

void s3csv_listing_free(s3csv_listing *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_objects; i++) {
        free(l->objects[i].key);
        free(l->objects[i].etag);
    }
    free(l->objects);
    free(l->next_token);
    memset(l, 0, sizeof *l);
}

/* ETags come quoted ("\"abc\""); the quotes are no part of the value. */
static void unquote(char *etag)
{
    size_t n = strlen(etag);
    if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
        memmove(etag, etag + 1, n - 2);
        etag[n - 2] = '\0';
    }
}

static int parse_contents(span c, const s3csv_clock *clock, s3csv_object *o)
{
    char *size = element_text(c, "Size"), *modified = element_text(c, "LastModified");
    o->key = element_text(c, "Key");
    o->etag = element_text(c, "ETag");
    char *end = NULL;
    int ok = o->key && *o->key && size && modified;
    if (ok) {
        o->size = strtoull(size, &end, 10);
        ok = end != size && *end == '\0' && clock->parse_time(modified, &o->last_modified_us) == 0;
    }
    if (o->etag)
        unquote(o->etag);
    else if (ok)
        ok = (o->etag = strdup("")) != NULL;
    free(size);
    free(modified);
    return ok ? 0 : -1;
}

static int add_object(s3csv_listing *out, size_t *cap, const s3csv_object *o)
{
    if (out->n_objects == *cap) {
        size_t grown = *cap ? *cap * 2 : 64;
        s3csv_object *more = realloc(out->objects, grown * sizeof *more);
        if (!more)
            return -1;
        out->objects = more;
        *cap = grown;
    }
    out->objects[out->n_objects++] = *o;
    return 0;
}

int s3csv_parse_listing(const char *xml, size_t len, const s3csv_clock *clock, s3csv_listing *out)
{
    memset(out, 0, sizeof *out);
    /* The root carries an xmlns attribute, so it is found by its name and
     * the members are looked for in the whole document. */
    if (!xml || !memmem(xml, len, "<ListBucketResult", 17))
        return -1;
    span body = {xml, xml + len}, c;
    size_t cap = 0;
    for (span rest = body; find_element(rest, "Contents", &c, &rest);) {
        s3csv_object o = {0};
        if (parse_contents(c, clock, &o) < 0 || add_object(out, &cap, &o) < 0) {
            free(o.key);
            free(o.etag);
            s3csv_listing_free(out);
            return -1;
        }
    }
    char *truncated = element_text(body, "IsTruncated");
    out->truncated = truncated && strcmp(truncated, "true") == 0;
    free(truncated);
    out->next_token = element_text(body, "NextContinuationToken");
    if (out->next_token && !*out->next_token) {
        free(out->next_token);
        out->next_token = NULL;
    }
    return 0;
}

void s3csv_parse_error(const char *xml, size_t len, char *code, size_t code_len, char *message,
                       size_t message_len)
{
    span doc = {xml ? xml : "", xml ? xml + len : ""};
    char *c = element_text(doc, "Code"), *m = element_text(doc, "Message");
    snprintf(code, code_len, "%s", c ? c : "");
    snprintf(message, message_len, "%s", m ? m : "");
    free(c);
    free(m);
}
