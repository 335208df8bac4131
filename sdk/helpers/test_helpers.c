/* test_helpers.c — unit tests of the plugin-side helpers (ingest/helpers.h)
 * against a fake host API table: JSON paths, strict parsing, form fields,
 * HTTP descriptions, the Link/ETag pager and timestamp cursors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ingest/helpers.h"

/* ------------------------------------------------------------ fake host */

#define MAX_CURSORS 16
#define MAX_PAGES 8

typedef struct fake_page {
    long status;
    const char *body;
    const char *etag;
    const char *next; /* Link rel="next" target */
} fake_page;

static struct {
    char *cursor_name[MAX_CURSORS], *cursor_value[MAX_CURSORS];
    int cursor_sets, flushes, emits;
    fake_page pages[MAX_PAGES];
    int n_pages, served;
    char *urls[MAX_PAGES * 2], *inm[MAX_PAGES * 2];
    int n_requests;
    char last_kind[64], last_payload[512], last_prov[256];
} fake;

static void fake_reset(void)
{
    for (int i = 0; i < MAX_CURSORS; i++) {
        free(fake.cursor_name[i]);
        free(fake.cursor_value[i]);
    }
    for (int i = 0; i < fake.n_requests; i++) {
        free(fake.urls[i]);
        free(fake.inm[i]);
    }
    memset(&fake, 0, sizeof fake);
}

static int f_cursor_get(ingest_run *run, const char *stream, char **value)
{
    (void)run;
    *value = NULL;
    for (int i = 0; i < MAX_CURSORS; i++)
        if (fake.cursor_name[i] && strcmp(fake.cursor_name[i], stream) == 0)
            *value = strdup(fake.cursor_value[i]);
    return INGEST_OK;
}

static int f_cursor_set(ingest_run *run, const char *stream, const char *value)
{
    (void)run;
    fake.cursor_sets++;
    int slot = -1;
    for (int i = 0; i < MAX_CURSORS && slot < 0; i++)
        if (!fake.cursor_name[i] || strcmp(fake.cursor_name[i], stream) == 0)
            slot = i;
    assert_true(slot >= 0);
    if (!fake.cursor_name[slot])
        fake.cursor_name[slot] = strdup(stream);
    free(fake.cursor_value[slot]);
    fake.cursor_value[slot] = strdup(value);
    return INGEST_OK;
}

static const char *cursor(const char *name)
{
    for (int i = 0; i < MAX_CURSORS; i++)
        if (fake.cursor_name[i] && strcmp(fake.cursor_name[i], name) == 0)
            return fake.cursor_value[i];
    return NULL;
}

static int f_flush(ingest_run *run)
{
    (void)run;
    fake.flushes++;
    return INGEST_OK;
}

static int f_emit(ingest_run *run, const ingest_signal *s)
{
    (void)run;
    fake.emits++;
    snprintf(fake.last_kind, sizeof fake.last_kind, "%s", s->kind);
    snprintf(fake.last_payload, sizeof fake.last_payload, "%s", s->payload_json);
    snprintf(fake.last_prov, sizeof fake.last_prov, "%s",
             s->provenance_json ? s->provenance_json : "");
    return INGEST_OK;
}

static void f_free(void *p) { free(p); }
static int64_t f_now_us(void) { return (int64_t)1700000000 * 1000000; }

static int f_parse_time(const char *text, int64_t *out)
{
    struct tm tm = {0};
    const char *rest = text ? strptime(text, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return INGEST_EINVAL;
    int64_t us = 0;
    if (*rest == '.') {
        int64_t scale = 100000;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, scale /= 10)
            us += (*rest - '0') * scale;
    }
    if (*rest != 'Z')
        return INGEST_EINVAL;
    *out = (int64_t)timegm(&tm) * 1000000 + us;
    return INGEST_OK;
}

static void f_format_time(int64_t us, char out[32])
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06dZ", (int)(us % 1000000));
}

/* The last line logged, for the tests that look at it. */
static char last_log[256];
static ingest_log_level last_log_level;

static void f_log(ingest_ctx *ctx, ingest_run *run, ingest_log_level level, const char *fmt, ...)
{
    (void)ctx;
    (void)run;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_log, sizeof last_log, fmt, ap);
    va_end(ap);
    last_log_level = level;
}

/* Responses: a box whose first member is the public struct. */
typedef struct box {
    ingest_http_response pub;
    ingest_header headers[2];
    char *body;
    const char *next;
} box;

static int f_http_request(ingest_run *run, const ingest_http_request *req,
                          ingest_http_response **resp)
{
    (void)run;
    assert_true(fake.n_requests < MAX_PAGES * 2);
    fake.urls[fake.n_requests] = strdup(req->url);
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcmp(req->headers[i].name, "If-None-Match") == 0)
            fake.inm[fake.n_requests] = strdup(req->headers[i].value);
    const char *inm = fake.inm[fake.n_requests];
    fake.n_requests++;
    assert_true(fake.served < fake.n_pages);
    const fake_page *p = &fake.pages[fake.served++];
    box *b = calloc(1, sizeof *b);
    long status = inm && p->etag && strcmp(inm, p->etag) == 0 ? 304 : p->status;
    b->body = strdup(status == 304 ? "" : p->body);
    b->next = status == 304 ? NULL : p->next;
    size_t n = 0;
    if (p->etag)
        b->headers[n++] = (ingest_header){"ETag", p->etag};
    b->pub = (ingest_http_response){.hdr = INGEST_ABI_HEADER(ingest_http_response),
                                    .status = status,
                                    .headers = b->headers,
                                    .n_headers = n,
                                    .body = b->body,
                                    .body_len = strlen(b->body),
                                    .retry_after_ms = -1,
                                    .error = "",
                                    .url = req->url};
    *resp = &b->pub;
    return INGEST_OK;
}

static void f_http_response_free(ingest_http_response *resp)
{
    box *b = (box *)resp;
    if (b) {
        free(b->body);
        free(b);
    }
}

static const char *f_http_header(const ingest_http_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

static int f_http_next_link(const ingest_http_response *resp, char **url)
{
    const box *b = (const box *)resp;
    *url = b->next ? strdup(b->next) : NULL;
    return INGEST_OK;
}

static int f_url_with_param(const char *url, const char *name, const char *value, char **out)
{
    return asprintf(out, "%s&%s=%s", url, name, value) < 0 ? INGEST_ENOMEM : INGEST_OK;
}

static const ingest_host_api api = {
    .hdr = INGEST_ABI_HEADER(ingest_host_api),
    .log = f_log,
    .free = f_free,
    .emit = f_emit,
    .cursor_get = f_cursor_get,
    .cursor_set = f_cursor_set,
    .flush = f_flush,
    .now_us = f_now_us,
    .parse_time = f_parse_time,
    .format_time = f_format_time,
    .http_request = f_http_request,
    .http_response_free = f_http_response_free,
    .http_header = f_http_header,
    .http_next_link = f_http_next_link,
    .url_with_param = f_url_with_param,
};

static int setup(void **state)
{
    (void)state;
    fake_reset();
    return 0;
}

/* ------------------------------------------------------------------ JSON */

static void test_json_paths(void **state)
{
    (void)state;
    json_object *o = ingest_json_parse("{\"a\":{\"b\":[{\"c\":\"x\"},7]},\"n\":null,\"id\":\"42\","
                                       "\"t\":true,\"when\":\"2024-01-02T03:04:05Z\"}",
                                       100);
    assert_null(o); /* 100 bytes reach past the text: not JSON */
    const char *text = "{\"a\":{\"b\":[{\"c\":\"x\"},7]},\"n\":null,\"id\":\"42\",\"t\":true,"
                       "\"when\":\"2024-01-02T03:04:05Z\"}  \n";
    o = ingest_json_parse(text, strlen(text));
    assert_non_null(o);
    assert_string_equal(ingest_json_str(o, "a.b.0.c"), "x");
    assert_null(ingest_json_str(o, "a.b.1"));
    assert_null(ingest_json_get(o, "a.b.2"));
    assert_null(ingest_json_get(o, "n"));
    assert_null(ingest_json_get(o, "a.missing.deeper"));
    assert_ptr_equal(ingest_json_get(o, ""), o);
    int64_t v = 0;
    assert_true(ingest_json_int64(o, "a.b.1", &v) && v == 7);
    assert_true(ingest_json_int64(o, "id", &v) && v == 42);
    assert_false(ingest_json_int64(o, "a.b.0.c", &v));
    assert_true(ingest_json_true(o, "t"));
    assert_false(ingest_json_true(o, "n"));
    assert_int_equal(ingest_json_time(&api, o, "when", &v), INGEST_OK);
    assert_int_equal(v, (int64_t)1704164645 * 1000000);
    assert_int_equal(ingest_json_time(&api, o, "n", &v), INGEST_ENOTFOUND);
    assert_int_equal(ingest_json_time(&api, o, "t", &v), INGEST_EINVAL);
    json_object *dst = json_object_new_object();
    assert_int_equal(ingest_json_copy(dst, "c", o, "a.b.0.c"), 0);
    assert_int_equal(ingest_json_copy(dst, "gone", o, "nope"), 0);
    char owned[] = "kept";
    assert_int_equal(ingest_json_put_str(dst, "s", owned), 0);
    owned[0] = 'X'; /* dst holds its own copy */
    assert_int_equal(ingest_json_put_str(dst, "none", NULL), 0);
    json_object_put(o); /* dst keeps its own references */
    char *out = ingest_json_text(dst);
    assert_string_equal(out, "{\"c\":\"x\",\"gone\":null,\"s\":\"kept\",\"none\":null}");
    free(out);
    json_object_put(dst);
}

static void test_json_parse_strict(void **state)
{
    (void)state;
    const char *cases[] = {"[1,2]x", "[1,]", "", "   ", "{\"a\":1}{}"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_null(ingest_json_parse(cases[i], strlen(cases[i])));
    json_object *n = ingest_json_parse("12345", 5); /* a number needs its end */
    assert_non_null(n);
    assert_int_equal(json_object_get_int64(n), 12345);
    json_object_put(n);
    const char buf[] = {'[', '1', ']', 'G', 'A', 'R', 'B'}; /* not NUL-terminated */
    json_object *a = ingest_json_parse(buf, 3);
    assert_non_null(a);
    json_object_put(a);
}

static void test_form_value(void **state)
{
    (void)state;
    const char body[] = "a=1&payload=%7B%22x%22%3A+1%7D&payload=second";
    char *v = ingest_form_value(body, strlen(body), "payload");
    assert_string_equal(v, "{\"x\": 1}");
    free(v);
    assert_null(ingest_form_value(body, strlen(body), "pay"));
    v = ingest_form_value("bad=%zz%4", 9, "bad");
    assert_string_equal(v, "%zz%4");
    free(v);
}

static const char *form_field(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* The signing example's slash command (PROVIDERS.md 1.2). */
static void test_form_parse_slash_command(void **state)
{
    (void)state;
    const char *body =
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
        "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
        "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"
        "2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
        "803a0bc887a14d10d2c447fce8b6703c";
    json_object *o = ingest_form_parse(body, strlen(body));
    assert_non_null(o);
    assert_int_equal(json_object_object_length(o), 11);
    assert_string_equal(form_field(o, "command"), "/webhook-collect");
    assert_string_equal(form_field(o, "text"), "");
    assert_string_equal(
        form_field(o, "response_url"),
        "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN");
    assert_string_equal(form_field(o, "trigger_id"),
                        "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c");
    json_object_put(o);
    const char *payload =
        "payload=%7B%22type%22%3A+%22block_actions%22%2C+%22a%22%3A+%22x%2By%22%7D";
    o = ingest_form_parse(payload, strlen(payload));
    assert_string_equal(form_field(o, "payload"), "{\"type\": \"block_actions\", \"a\": \"x+y\"}");
    json_object_put(o);
}

static void test_form_parse_edges_and_refusals(void **state)
{
    (void)state;
    json_object *o = ingest_form_parse("", 0);
    assert_true(o && json_object_object_length(o) == 0);
    json_object_put(o);
    o = ingest_form_parse("a=1&a=2&&b&c=%C3%A9+%41", 23);
    assert_string_equal(form_field(o, "a"), "1"); /* the first of repeated keys wins */
    assert_string_equal(form_field(o, "b"), "");
    assert_string_equal(form_field(o, "c"), "\xc3\xa9 A");
    json_object_put(o);
    o = ingest_form_parse("k=vXYZ", 3); /* not NUL-terminated: only len bytes count */
    assert_string_equal(form_field(o, "k"), "v");
    json_object_put(o);
    static const char *const bad[] = {"a=%", "a=%4", "a=%G1", "=x", "a=%00", "%zz=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(ingest_form_parse(bad[i], strlen(bad[i])));
}

static void test_health_status(void **state)
{
    (void)state;
    ingest_health_status h;
    char detail[8];
    assert_int_equal(ingest_health_init(&h), INGEST_OK);
    assert_int_equal(ingest_health_get(&h, detail, sizeof detail), INGEST_HEALTH_OK);
    assert_string_equal(detail, "ok");
    ingest_health_degrade(&h, &api, NULL, NULL, "page %d refused", 3);
    assert_int_equal(ingest_health_get(&h, detail, sizeof detail), INGEST_HEALTH_DEGRADED);
    assert_string_equal(detail, "page 3 "); /* cut to the caller's buffer */
    assert_string_equal(last_log, "page 3 refused");
    assert_int_equal(last_log_level, INGEST_LOG_WARN);
    ingest_health_set(&h, INGEST_HEALTH_OK, "last sync complete");
    assert_int_equal(ingest_health_get(&h, NULL, 0), INGEST_HEALTH_OK);
    ingest_health_destroy(&h);
}

static void test_describe_and_status(void **state)
{
    (void)state;
    char out[64];
    ingest_http_response r = {
        .status = 404, .body = "{\"message\":\"Not\\nFound\",\"status\":\"404\"}", .error = ""};
    r.body_len = strlen(r.body);
    ingest_http_describe(&r, out, sizeof out);
    assert_string_equal(out, "HTTP 404: Not Found");
    r.body = "<html>";
    r.body_len = 6;
    ingest_http_describe(&r, out, sizeof out);
    assert_string_equal(out, "HTTP 404");
    ingest_http_describe(NULL, out, sizeof out);
    assert_string_equal(out, "no response");
    assert_int_equal(ingest_http_status_rc(304), INGEST_OK);
    assert_int_equal(ingest_http_status_rc(401), INGEST_EAUTH);
    assert_int_equal(ingest_http_status_rc(410), INGEST_ENOTFOUND);
    assert_int_equal(ingest_http_status_rc(429), INGEST_ERATELIMITED);
    assert_int_equal(ingest_http_status_rc(503), INGEST_EAGAIN);
    assert_int_equal(ingest_http_status_rc(422), INGEST_EIO);
    char iso[INGEST_ISO8601_LEN];
    ingest_time_iso8601((int64_t)1704164645 * 1000000 + 999999, iso);
    assert_string_equal(iso, "2024-01-02T03:04:05Z");
}

static void test_emit_json(void **state)
{
    (void)state;
    json_object *p = json_object_new_object(), *prov = json_object_new_object();
    json_object_object_add(p, "url", json_object_new_string("https://x/y"));
    json_object_object_add(prov, "via", json_object_new_string("sync"));
    ingest_json_signal s = {.kind = "k", .dedupe_key = "k:1", .payload = p, .provenance = prov};
    assert_int_equal(ingest_emit_json(&api, NULL, &s), INGEST_OK);
    assert_string_equal(fake.last_payload, "{\"url\":\"https://x/y\"}"); /* '/' unescaped */
    assert_string_equal(fake.last_prov, "{\"via\":\"sync\"}");
    s.dedupe_key = "";
    assert_int_equal(ingest_emit_json(&api, NULL, &s), INGEST_EINVAL);
    json_object_put(p);
    json_object_put(prov);
}

/* ----------------------------------------------------------------- pager */

typedef struct seen {
    int pages, not_modified, stop_at;
    const char *override;
} seen;

static int on_page(void *arg, ingest_page *page)
{
    seen *s = arg;
    s->pages++;
    s->not_modified += page->not_modified;
    if (s->override && page->index == 0)
        return ingest_page_set_next(page, s->override);
    return s->stop_at && s->pages == s->stop_at ? INGEST_PAGE_STOP : INGEST_OK;
}

static void set_pages(const fake_page *pages, int n)
{
    memcpy(fake.pages, pages, (size_t)n * sizeof *pages);
    fake.n_pages = n;
    fake.served = 0;
}

static void test_pager_follows_link_and_keeps_etag(void **state)
{
    (void)state;
    seen s = {0};
    ingest_pager p = {
        .api = &api, .etag_slot = "etag:x", .newest_first = 1, .on_page = on_page, .arg = &s};
    const fake_page walk[] = {
        {200, "[1]", "W/\"a\"", "u2"}, {200, "[2]", "W/\"b\"", "u3"}, {200, "[3]", NULL, NULL}};
    set_pages(walk, 3);
    ingest_pager_stats st;
    assert_int_equal(ingest_pager_run(&p, NULL, "u1", &st), INGEST_OK);
    assert_int_equal(st.requests, 3);
    assert_string_equal(fake.urls[1], "u2");
    assert_string_equal(fake.urls[2], "u3");
    assert_null(fake.inm[0]);
    assert_string_equal(cursor("etag:x"), "{\"url\":\"u1\",\"etag\":\"W/\\\"a\\\"\"}");

    /* Same first URL, unchanged: one 304, the walk ends there. */
    set_pages(walk, 1);
    memset(&s, 0, sizeof s);
    assert_int_equal(ingest_pager_run(&p, NULL, "u1", &st), INGEST_OK);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.not_modified, 1);
    assert_int_equal(s.not_modified, 1);
    assert_string_equal(fake.inm[3], "W/\"a\"");

    /* Another first URL: no If-None-Match. */
    set_pages(walk + 2, 1);
    assert_int_equal(ingest_pager_run(&p, NULL, "other", &st), INGEST_OK);
    assert_null(fake.inm[4]);
}

static void test_pager_etag_only_when_it_proves_something(void **state)
{
    (void)state;
    seen s = {0};
    ingest_pager p = {.api = &api, .etag_slot = "etag:y", .on_page = on_page, .arg = &s};
    const fake_page two[] = {{200, "[1]", "W/\"a\"", "u2"}, {200, "[2]", NULL, NULL}};
    set_pages(two, 2);
    assert_int_equal(ingest_pager_run(&p, NULL, "u1", NULL), INGEST_OK);
    assert_null(cursor("etag:y")); /* oldest-first with more pages: a 304 proves nothing */
    const fake_page one[] = {{200, "[1]", "W/\"c\"", NULL}};
    set_pages(one, 1);
    assert_int_equal(ingest_pager_run(&p, NULL, "u1", NULL), INGEST_OK);
    assert_non_null(cursor("etag:y"));
    /* A walk that fails is never remembered. */
    const fake_page fail[] = {{200, "[1]", "W/\"d\"", "u2"}, {503, "{}", NULL, NULL}};
    p.etag_slot = "etag:z";
    p.newest_first = 1;
    set_pages(fail, 2);
    assert_int_equal(ingest_pager_run(&p, NULL, "u1", NULL), INGEST_EAGAIN);
    assert_null(cursor("etag:z"));
    /* Nor one cut short by max_pages. */
    p.max_pages = 1;
    set_pages(two, 1);
    assert_int_equal(ingest_pager_run(&p, NULL, "u1", NULL), INGEST_OK);
    assert_null(cursor("etag:z"));
}

static void test_pager_stop_override_and_errors(void **state)
{
    (void)state;
    seen s = {.override = "jump"};
    ingest_pager p = {.api = &api, .on_page = on_page, .arg = &s};
    const fake_page walk[] = {
        {200, "[1]", NULL, "u2"}, {200, "[2]", NULL, "u3"}, {200, "[3]", NULL, NULL}};
    set_pages(walk, 3);
    assert_int_equal(ingest_pager_run(&p, NULL, "u1", NULL), INGEST_OK);
    assert_string_equal(fake.urls[1], "jump");
    memset(&s, 0, sizeof s);
    s.stop_at = 1;
    set_pages(walk, 3);
    ingest_pager_stats st;
    assert_int_equal(ingest_pager_run(&p, NULL, "u1", &st), INGEST_OK);
    assert_int_equal(st.requests, 1);
    const fake_page bad[] = {
        {200, "not json", NULL, NULL}, {404, "{}", NULL, NULL}, {401, "{}", NULL, NULL}};
    set_pages(bad, 3);
    assert_int_equal(ingest_pager_run(&p, NULL, "u1", NULL), INGEST_EINVAL);
    assert_int_equal(ingest_pager_run(&p, NULL, "u1", NULL), INGEST_ENOTFOUND);
    assert_int_equal(ingest_pager_run(&p, NULL, "u1", NULL), INGEST_EAUTH);
}

/* ------------------------------------------------------------ ts cursors */

#define S(x) ((int64_t)(x)*1000000)

static void test_ts_cursor_oldest_first(void **state)
{
    (void)state;
    ingest_job job = {
        .hdr = INGEST_ABI_HEADER(ingest_job), .backfill_since_us = S(1000), .lookback_us = S(60)};
    ingest_ts_cursor c;
    assert_int_equal(ingest_ts_cursor_load(&api, NULL, NULL, &job, "s", &c), INGEST_OK);
    assert_int_equal(c.since_us, S(1000)); /* no cursor: backfill */
    ingest_ts_cursor_see(&c, S(5000));
    ingest_ts_cursor_see(&c, S(4000));
    assert_int_equal(ingest_ts_cursor_commit(&api, NULL, &c), INGEST_OK);
    assert_string_equal(cursor("s"), "1970-01-01T01:23:20.000000Z");
    assert_int_equal(ingest_ts_cursor_load(&api, NULL, NULL, &job, "s", &c), INGEST_OK);
    assert_int_equal(c.stored_us, S(5000));
    assert_int_equal(c.since_us, S(5000 - 60)); /* lookback */
    int sets = fake.cursor_sets;
    ingest_ts_cursor_see(&c, S(4990)); /* nothing newer: only a flush */
    assert_int_equal(ingest_ts_cursor_commit(&api, NULL, &c), INGEST_OK);
    assert_int_equal(fake.cursor_sets, sets);
    job.full_refresh = 1;
    assert_int_equal(ingest_ts_cursor_load(&api, NULL, NULL, &job, "s", &c), INGEST_OK);
    assert_int_equal(c.since_us, S(1000));
}

static void test_ts_cursor_newest_first_resumes(void **state)
{
    (void)state;
    ingest_job job = {.hdr = INGEST_ABI_HEADER(ingest_job), .backfill_since_us = S(100)};
    ingest_ts_cursor c;
    assert_int_equal(ingest_ts_cursor_load(&api, NULL, NULL, &job, "p", &c), INGEST_OK);
    /* Page 1: 900..800, checkpoint; then the walk dies. */
    ingest_ts_cursor_see(&c, S(900));
    ingest_ts_cursor_see(&c, S(800));
    assert_int_equal(ingest_ts_cursor_checkpoint(&api, NULL, &c, S(800)), INGEST_OK);
    assert_true(cursor("p")[0] == '{');

    /* The retry: resumes with (800, 900] done and the original floor. */
    assert_int_equal(ingest_ts_cursor_load(&api, NULL, NULL, &job, "p", &c), INGEST_OK);
    assert_int_equal(c.since_us, S(100));
    assert_false(ingest_ts_cursor_done(&c, S(950))); /* changed since: newer */
    assert_true(ingest_ts_cursor_done(&c, S(900)));
    assert_true(ingest_ts_cursor_done(&c, S(801)));
    assert_false(ingest_ts_cursor_done(&c, S(800))); /* the boundary is read again */
    ingest_ts_cursor_see(&c, S(950));
    int flushes = fake.flushes;
    /* Still above the old interval: progress is not one interval yet. */
    assert_int_equal(ingest_ts_cursor_checkpoint(&api, NULL, &c, S(940)), INGEST_OK);
    assert_int_equal(fake.flushes, flushes + 1);
    ingest_ts_cursor_see(&c, S(700));
    assert_int_equal(ingest_ts_cursor_checkpoint(&api, NULL, &c, S(700)), INGEST_OK);
    json_object *o = ingest_json_parse(cursor("p"), strlen(cursor("p")));
    int64_t lo = 0, hi = 0;
    assert_int_equal(ingest_json_time(&api, o, "low", &lo), INGEST_OK);
    assert_int_equal(ingest_json_time(&api, o, "high", &hi), INGEST_OK);
    assert_int_equal(lo, S(700));
    assert_int_equal(hi, S(950));
    json_object_put(o);
    assert_int_equal(ingest_ts_cursor_commit(&api, NULL, &c), INGEST_OK);
    assert_int_equal(ingest_ts_cursor_load(&api, NULL, NULL, &job, "p", &c), INGEST_OK);
    assert_int_equal(c.stored_us, S(950));
    assert_int_equal(c.done_high_us, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_json_paths, setup),
        cmocka_unit_test_setup(test_json_parse_strict, setup),
        cmocka_unit_test_setup(test_form_value, setup),
        cmocka_unit_test_setup(test_describe_and_status, setup),
        cmocka_unit_test_setup(test_emit_json, setup),
        cmocka_unit_test_setup(test_pager_follows_link_and_keeps_etag, setup),
        cmocka_unit_test_setup(test_pager_etag_only_when_it_proves_something, setup),
        cmocka_unit_test_setup(test_pager_stop_override_and_errors, setup),
        cmocka_unit_test(test_health_status),
        cmocka_unit_test(test_form_parse_slash_command),
        cmocka_unit_test(test_form_parse_edges_and_refusals),
        cmocka_unit_test_setup(test_ts_cursor_oldest_first, setup),
        cmocka_unit_test_setup(test_ts_cursor_newest_first_resumes, setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    fake_reset();
    return rc;
}
