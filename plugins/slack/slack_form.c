/*
 * slack_form.c — application/x-www-form-urlencoded bodies (slash commands,
 * and the payload= field of interactive requests) as a JSON object.
 *
 * Hand-written because the SDK helper returns one named field, and a slash
 * command is stored with all of its fields; the rules are the WHATWG
 * urlencoded parser's: '&' separates pairs, the first '=' splits name and
 * value, '+' is a space, %XX a byte. Unlike a browser we refuse malformed
 * escapes instead of passing them through, since a signed body from Slack
 * never contains one. Tested in test_slack_form.c.
 */
#include <stdlib.h>
#include <string.h>

#include "slack.h"

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode `len` bytes into a malloc'd NUL-terminated string; NULL when an
 * escape is malformed (or out of memory). A decoded NUL byte is refused
 * too: it would cut the string short. */
static char *decode(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; out && i < len; i++) {
        if (s[i] == '+') {
            out[n++] = ' ';
        } else if (s[i] == '%') {
            int hi = i + 2 < len ? hex(s[i + 1]) : -1;
            int lo = hi >= 0 ? hex(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi | lo) == 0) {
                free(out);
                return NULL;
            }
            out[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    if (out)
        out[n] = '\0';
    return out;
}

/* Add one "name=value" pair; 0 or -1 (malformed, out of memory). */
static int add_pair(json_object *obj, const char *pair, size_t len)
{
    const char *eq = memchr(pair, '=', len);
    size_t name_len = eq ? (size_t)(eq - pair) : len;
    char *name = decode(pair, name_len);
    char *value = eq ? decode(eq + 1, len - name_len - 1) : strdup("");
    int rc = name && value && *name ? 0 : -1;
    if (rc == 0 && !json_object_object_get_ex(obj, name, NULL)) {
        json_object *v = json_object_new_string(value);
        rc = v && json_object_object_add(obj, name, v) == 0 ? 0 : -1;
    }
    free(name);
    free(value);
    return rc;
}

json_object *sl_form_parse(const char *body, size_t len)
{
    json_object *obj = json_object_new_object();
    size_t start = 0;
    if (len == 0 || !body)
        return obj;
    while (obj && start <= len) {
        const char *amp = memchr(body + start, '&', len - start);
        size_t end = amp ? (size_t)(amp - body) : len;
        if (end > start && add_pair(obj, body + start, end - start) != 0) {
            json_object_put(obj);
            return NULL;
        }
        start = end + 1;
    }
    return obj;
}
