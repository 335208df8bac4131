/*
 * test_slack_form.c — the form decoder (slack_form.c) against the bodies
 * Slack sends: the signing example's slash command (PROVIDERS.md 1.2), an
 * interactive payload= field, and malformed input that must be refused.
 */
#include <stdio.h>
#include <string.h>

#include "slack.h"

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static const char *field(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int same(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static void slash_command(void)
{
    const char *body =
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
        "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
        "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"
        "2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
        "803a0bc887a14d10d2c447fce8b6703c";
    json_object *o = sl_form_parse(body, strlen(body));
    CHECK(o != NULL);
    CHECK(json_object_object_length(o) == 11);
    CHECK(same(field(o, "command"), "/webhook-collect"));
    CHECK(same(field(o, "text"), ""));
    CHECK(same(field(o, "response_url"),
               "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN"));
    CHECK(
        same(field(o, "trigger_id"), "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"));
    json_object_put(o);
}

static void payload_field(void)
{
    const char *body = "payload=%7B%22type%22%3A+%22block_actions%22%2C+%22a%22%3A+%22x%2By%22%7D";
    json_object *o = sl_form_parse(body, strlen(body));
    CHECK(same(field(o, "payload"), "{\"type\": \"block_actions\", \"a\": \"x+y\"}"));
    json_object_put(o);
}

static void edge_cases(void)
{
    json_object *o = sl_form_parse("", 0);
    CHECK(o && json_object_object_length(o) == 0);
    json_object_put(o);
    o = sl_form_parse("a=1&a=2&&b&c=%C3%A9+%41", 23);
    CHECK(same(field(o, "a"), "1")); /* the first of repeated keys wins */
    CHECK(same(field(o, "b"), ""));
    CHECK(same(field(o, "c"), "\xc3\xa9 A"));
    json_object_put(o);
    /* Not NUL-terminated: only `len` bytes count. */
    o = sl_form_parse("k=vXYZ", 3);
    CHECK(same(field(o, "k"), "v"));
    json_object_put(o);
    static const char *const bad[] = {"a=%", "a=%4", "a=%G1", "=x", "a=%00", "%zz=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = sl_form_parse(bad[i], strlen(bad[i]));
        if (o)
            fprintf(stderr, "accepted malformed body '%s'\n", bad[i]);
        CHECK(o == NULL);
        json_object_put(o);
    }
}

int main(void)
{
    slash_command();
    payload_field();
    edge_cases();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
