/* test_webhook_verify.c — declarative webhook signature checks: the official
 * GitHub and Slack vectors as known-answer tests, Python-computed vectors for
 * Plane, Linear and the generic timestamped scheme, and every failure path
 * (missing / malformed headers, stale and future timestamps, modified bodies,
 * secret rotation, no secret). Every call also checks that the reason text
 * never carries a secret or the expected digest. */
#include "unit_helpers.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "webhook_verify.h"

/* ---- fixtures ---------------------------------------------------------- */

#define SEC_US INT64_C(1000000)

/* PROVIDERS.md §1.1 — GitHub's documented example. */
static const char GH_SECRET[] = "It's a Secret to Everybody";
static const char GH_BODY[] = "Hello, World!";
static const char GH_HEX[] = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
static const char GH_SIG[] =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

/* PROVIDERS.md §1.2 — Slack's documented worked example. */
static const char SLACK_SECRET[] = "8f742231b10e8888abcd99yyyzzz85a5";
static const char SLACK_TS[] = "1531420618";
static const char SLACK_BODY[] =
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%"
    "2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
    "803a0bc887a14d10d2c447fce8b6703c";
static const char SLACK_HEX[] = "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
static const char SLACK_SIG[] =
    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

/* Computed with Python hmac/hashlib (hmac.new(secret, msg, sha256).hexdigest()). */
static const char PLANE_SECRET[] = "plane-secret";
static const char PLANE_BODY[] =
    "{\"event\": \"issue\", \"action\": \"created\", \"data\": {\"id\": \"7\"}}";
static const char PLANE_HEX[] = "900c69302f8dcf8af5ec26d174fd42b2ded11d003b9aaec5446bde49fe2a9f76";

static const char LINEAR_SECRET[] = "lin_wh_5ecret";
static const char LINEAR_BODY[] =
    "{\"action\":\"create\",\"type\":\"Issue\",\"data\":{\"id\":\"abc\"},"
    "\"webhookTimestamp\":1700000000000}";
static const char LINEAR_HEX[] = "ffce8b1bf4ca757c90f5afd76531c5e19a5ce2527234cd85866b5272e5bcfb5f";
static const int64_t LINEAR_TS_MS = INT64_C(1700000000000);

static const char TS_SECRET[] = "whsec_t3st";
static const char TS_VALUE[] = "1700000000";
static const char TS_BODY[] = "{\"id\":1}";
static const char TS_HEX[] = "d8332ee4eaf3fb930e40b6fd54c3b8168639cf65315863752c51a7b13c9420f8";

static const char OTHER_SECRET[] = "not-the-right-secret";

/* The specs plugins would declare. */
static const ingest_webhook_spec GITHUB = {
    .scheme = INGEST_WEBHOOK_HMAC_SHA256,
    .signature_header = "X-Hub-Signature-256",
    .signature_prefix = "sha256=",
    .delivery_id_header = "X-GitHub-Delivery",
};
static const ingest_webhook_spec JIRA = {
    .scheme = INGEST_WEBHOOK_HMAC_SHA256,
    .signature_header = "X-Hub-Signature",
    .signature_prefix = "sha256=",
};
static const ingest_webhook_spec PLANE = {
    .scheme = INGEST_WEBHOOK_HMAC_SHA256,
    .signature_header = "X-Plane-Signature",
};
static const ingest_webhook_spec LINEAR = {
    .scheme = INGEST_WEBHOOK_HMAC_SHA256,
    .signature_header = "Linear-Signature",
    .body_timestamp_field = "webhookTimestamp",
    .tolerance_s = 60,
};
static const ingest_webhook_spec SLACK = {
    .scheme = INGEST_WEBHOOK_SLACK_V0,
    .signature_header = "X-Slack-Signature",
    .signature_prefix = "v0=",
    .timestamp_header = "X-Slack-Request-Timestamp",
};
static const ingest_webhook_spec STAMPED = {
    .scheme = INGEST_WEBHOOK_TIMESTAMPED_HMAC,
    .signature_header = "X-Signature",
    .timestamp_header = "X-Timestamp",
};
static const ingest_webhook_spec GITLAB = {
    .scheme = INGEST_WEBHOOK_SHARED_TOKEN,
    .signature_header = "X-Gitlab-Token",
};

/* ---- request builder ---------------------------------------------------- */

#define MAX_HEADERS 4
#define MAX_SECRETS 3

typedef struct req {
    ingest_header headers[MAX_HEADERS];
    size_t n_headers;
    const char *body; /* NUL-terminated here for convenience; passed by length */
    size_t body_len;
    const char *secrets[MAX_SECRETS];
    size_t n_secrets;
    int64_t now_us;
    const char *hidden[2]; /* extra strings the reason must never contain */
    char values[MAX_HEADERS][160];
    char reason[256];
} req;

static void req_init(req *r, const char *body, const char *secret, int64_t now_us)
{
    memset(r, 0, sizeof *r);
    r->body = body;
    r->body_len = body ? strlen(body) : 0;
    if (secret)
        r->secrets[r->n_secrets++] = secret;
    r->now_us = now_us;
}

/* Adds a header; the value is formatted into the request's own storage. */
static void req_header(req *r, const char *name, const char *fmt, ...) INGEST_PRINTF(3, 4);
static void req_header(req *r, const char *name, const char *fmt, ...)
{
    assert_true(r->n_headers < MAX_HEADERS);
    char *slot = r->values[r->n_headers];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slot, sizeof r->values[0], fmt, ap);
    va_end(ap);
    r->headers[r->n_headers++] = (ingest_header){name, slot};
}

static void lower_upper(const char *in, char *lower, char *upper, size_t len)
{
    for (size_t i = 0; i < len && in[i]; i++) {
        lower[i] = (char)tolower((unsigned char)in[i]);
        upper[i] = (char)toupper((unsigned char)in[i]);
    }
}

/* The reason must never echo a secret or a digest, in either hex case. */
static void assert_reason_clean(const char *reason, const char *secret)
{
    char lower[128] = {0}, upper[128] = {0};
    assert_true(strlen(secret) < sizeof lower);
    lower_upper(secret, lower, upper, strlen(secret));
    assert_not_contains(reason, secret);
    assert_not_contains(reason, lower);
    assert_not_contains(reason, upper);
}

/* Runs the verifier and applies the checks every call must pass. */
static verify_result run(const ingest_webhook_spec *spec, req *r)
{
    verify_input in = {
        .headers = r->headers,
        .n_headers = r->n_headers,
        .body = (const unsigned char *)r->body,
        .body_len = r->body_len,
        .secrets = r->secrets,
        .n_secrets = r->n_secrets,
        .now_us = r->now_us,
    };
    memset(r->reason, 0, sizeof r->reason);
    verify_result res = webhook_verify(spec, &in, r->reason, sizeof r->reason);
    assert_true(strlen(r->reason) > 0);
    assert_null(strchr(r->reason, '\n'));
    for (size_t i = 0; i < r->n_secrets; i++) {
        if (r->secrets[i] && *r->secrets[i])
            assert_reason_clean(r->reason, r->secrets[i]);
    }
    for (size_t i = 0; i < 2; i++) {
        if (r->hidden[i])
            assert_reason_clean(r->reason, r->hidden[i]);
    }
    return res;
}

/* Lower-case hex HMAC-SHA256(secret, a || b || c || d) via OpenSSL's one-shot
 * HMAC(): a separate code path from the module's EVP_MAC streaming. */
static void sign_hex(const char *secret, const char *a, const char *b, const char *c, const char *d,
                     char out[65])
{
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "%s%s%s%s", a, b ? b : "", c ? c : "", d ? d : "");
    assert_true(n >= 0 && (size_t)n < sizeof msg);
    unsigned char md[32];
    unsigned int md_len = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg,
                         (size_t)n, md, &md_len));
    assert_int_equal(md_len, 32);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void to_upper(char *s)
{
    for (; *s; s++)
        *s = (char)toupper((unsigned char)*s);
}

/* ---- labels and header lookup ------------------------------------------ */

static void test_labels(void **state)
{
    (void)state;
    assert_string_equal(verify_result_label(VERIFY_OK), "ok");
    assert_string_equal(verify_result_label(VERIFY_MISSING_HEADER), "missing_header");
    assert_string_equal(verify_result_label(VERIFY_MALFORMED), "malformed");
    assert_string_equal(verify_result_label(VERIFY_BAD_SIGNATURE), "bad_signature");
    assert_string_equal(verify_result_label(VERIFY_STALE), "stale");
    assert_string_equal(verify_result_label(VERIFY_FUTURE), "future");
    assert_string_equal(verify_result_label(VERIFY_NO_SECRET), "no_secret");
    assert_string_equal(verify_result_label(VERIFY_UNSUPPORTED), "unsupported");
    assert_string_equal(verify_result_label((verify_result)99), "unknown");
    assert_string_equal(verify_result_label((verify_result)-1), "unknown");
}

static void test_header_lookup_case_insensitive(void **state)
{
    (void)state;
    const ingest_header h[] = {
        {NULL, "skipped"},
        {"Content-Type", "application/json"},
        {"x-hub-SIGNATURE-256", "first"},
        {"X-Hub-Signature-256", "second"},
    };
    assert_string_equal(verify_header(h, 4, "X-HUB-SIGNATURE-256"), "first");
    assert_string_equal(verify_header(h, 4, "content-type"), "application/json");
    assert_null(verify_header(h, 4, "X-Hub-Signature"));
    assert_null(verify_header(h, 1, "Content-Type")); /* n bounds the search */
    assert_null(verify_header(NULL, 0, "Content-Type"));
    assert_null(verify_header(h, 4, NULL));
}

/* ---- unsupported specs and bad input ------------------------------------ */

static void test_unsupported_schemes(void **state)
{
    (void)state;
    req r;
    req_init(&r, GH_BODY, GH_SECRET, 0);
    ingest_webhook_spec none = {.scheme = INGEST_WEBHOOK_NONE};
    ingest_webhook_spec callback = {.scheme = INGEST_WEBHOOK_CALLBACK, .signature_header = "X-Sig"};
    ingest_webhook_spec unknown = {.scheme = (ingest_webhook_scheme)42};
    ingest_webhook_spec no_header = {.scheme = INGEST_WEBHOOK_HMAC_SHA256};
    ingest_webhook_spec no_ts = {.scheme = INGEST_WEBHOOK_TIMESTAMPED_HMAC,
                                 .signature_header = "X-Sig"};
    assert_int_equal(run(&none, &r), VERIFY_UNSUPPORTED);
    assert_int_equal(run(&callback, &r), VERIFY_UNSUPPORTED);
    assert_int_equal(run(&unknown, &r), VERIFY_UNSUPPORTED);
    assert_int_equal(run(&no_header, &r), VERIFY_UNSUPPORTED);
    assert_int_equal(run(&no_ts, &r), VERIFY_UNSUPPORTED);
    assert_int_equal(run(NULL, &r), VERIFY_UNSUPPORTED);
}

static void test_null_input_and_reason(void **state)
{
    (void)state;
    char reason[64] = "";
    assert_int_equal(webhook_verify(&GITHUB, NULL, reason, sizeof reason), VERIFY_MALFORMED);
    assert_true(strlen(reason) > 0);
    /* A body pointer is required whenever a length is given. */
    const char *secrets[] = {GH_SECRET};
    verify_input in = {.body_len = 5, .secrets = secrets, .n_secrets = 1};
    assert_int_equal(webhook_verify(&GITHUB, &in, reason, sizeof reason), VERIFY_MALFORMED);
    /* No reason buffer at all is fine, and a tiny one is truncated, not overrun. */
    ingest_header h = {"X-Hub-Signature-256", GH_SIG};
    in = (verify_input){.headers = &h,
                        .n_headers = 1,
                        .body = (const unsigned char *)GH_BODY,
                        .body_len = strlen(GH_BODY),
                        .secrets = secrets,
                        .n_secrets = 1};
    assert_int_equal(webhook_verify(&GITHUB, &in, NULL, 0), VERIFY_OK);
    char tiny[4] = {'x', 'x', 'x', 'x'};
    assert_int_equal(webhook_verify(&GITHUB, &in, tiny, sizeof tiny), VERIFY_OK);
    assert_int_equal(tiny[3], '\0');
}

/* ---- HMAC-SHA256 of the body (GitHub, Jira, Plane) ---------------------- */

static void github_req(req *r, const char *secret, const char *sig_header_value)
{
    req_init(r, GH_BODY, secret, 0);
    req_header(r, "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    req_header(r, "X-Hub-Signature-256", "%s", sig_header_value);
    r->hidden[0] = GH_HEX;
}

static void test_github_known_answer(void **state)
{
    (void)state;
    req r;
    github_req(&r, GH_SECRET, GH_SIG);
    assert_int_equal(run(&GITHUB, &r), VERIFY_OK);
}

static void test_github_uppercase_hex(void **state)
{
    (void)state;
    char hex[65];
    snprintf(hex, sizeof hex, "%s", GH_HEX);
    to_upper(hex);
    req r;
    req_init(&r, GH_BODY, GH_SECRET, 0);
    req_header(&r, "X-Hub-Signature-256", "sha256=%s", hex);
    r.hidden[0] = GH_HEX;
    assert_int_equal(run(&GITHUB, &r), VERIFY_OK);
}

static void test_github_header_case_and_whitespace(void **state)
{
    (void)state;
    req r;
    req_init(&r, GH_BODY, GH_SECRET, 0);
    req_header(&r, "x-hub-signature-256", " \tsha256=%s \r\n", GH_HEX);
    assert_int_equal(run(&GITHUB, &r), VERIFY_OK);
}

static void test_github_wrong_secret(void **state)
{
    (void)state;
    req r;
    github_req(&r, OTHER_SECRET, GH_SIG);
    assert_int_equal(run(&GITHUB, &r), VERIFY_BAD_SIGNATURE);
}

static void test_github_missing_header(void **state)
{
    (void)state;
    req r;
    req_init(&r, GH_BODY, GH_SECRET, 0);
    req_header(&r, "X-Hub-Signature", "sha256=%s", GH_HEX); /* the SHA-1 header's name */
    assert_int_equal(run(&GITHUB, &r), VERIFY_MISSING_HEADER);
    assert_contains(r.reason, "X-Hub-Signature-256");
}

static void test_github_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        /* wrong prefixes */
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha25",
        /* bad hex */
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1g",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e 7",
        "sha256=+57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        /* wrong lengths */
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1700",
        "sha256=",
        "",
        "   ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        req r;
        github_req(&r, GH_SECRET, bad[i]);
        verify_result res = run(&GITHUB, &r);
        if (res != VERIFY_MALFORMED)
            fail_msg("\"%s\" gave %s", bad[i], verify_result_label(res));
    }
}

static void test_github_body_modified(void **state)
{
    (void)state;
    req r;
    github_req(&r, GH_SECRET, GH_SIG);
    r.body = "Hello, World?";
    assert_int_equal(run(&GITHUB, &r), VERIFY_BAD_SIGNATURE);
    r.body = GH_BODY;
    r.body_len = strlen(GH_BODY) - 1; /* one byte shorter: the length is honoured */
    assert_int_equal(run(&GITHUB, &r), VERIFY_BAD_SIGNATURE);
}

static void test_github_rotation(void **state)
{
    (void)state;
    req r;
    github_req(&r, OTHER_SECRET, GH_SIG);
    r.secrets[r.n_secrets++] = GH_SECRET; /* only the second (new) secret matches */
    assert_int_equal(run(&GITHUB, &r), VERIFY_OK);
    /* NULL and empty entries are skipped, not treated as keys. */
    r.secrets[0] = NULL;
    assert_int_equal(run(&GITHUB, &r), VERIFY_OK);
    r.secrets[0] = "";
    assert_int_equal(run(&GITHUB, &r), VERIFY_OK);
    /* Neither matches. */
    r.secrets[1] = "also-wrong";
    assert_int_equal(run(&GITHUB, &r), VERIFY_BAD_SIGNATURE);
}

static void test_github_no_secret(void **state)
{
    (void)state;
    req r;
    github_req(&r, NULL, GH_SIG);
    assert_int_equal(run(&GITHUB, &r), VERIFY_NO_SECRET);
    r.secrets[0] = NULL;
    r.secrets[1] = "";
    r.n_secrets = 2;
    assert_int_equal(run(&GITHUB, &r), VERIFY_NO_SECRET);
}

static void test_hmac_ignores_timestamp_header(void **state)
{
    (void)state;
    ingest_webhook_spec spec = GITHUB;
    spec.timestamp_header = "X-Request-Timestamp";
    req r;
    github_req(&r, GH_SECRET, GH_SIG);
    r.now_us = INT64_C(4000000000) * SEC_US; /* no timestamp at all: still fine */
    assert_int_equal(run(&spec, &r), VERIFY_OK);
    req_header(&r, "X-Request-Timestamp", "not-a-number");
    assert_int_equal(run(&spec, &r), VERIFY_OK);
}

static void test_jira_admin_webhook(void **state)
{
    (void)state;
    /* Same primitive as GitHub, under the legacy header name. */
    req r;
    req_init(&r, GH_BODY, GH_SECRET, 0);
    req_header(&r, "X-Hub-Signature", "sha256=%s", GH_HEX);
    assert_int_equal(run(&JIRA, &r), VERIFY_OK);
    r.headers[0].value = "sha1=0123456789abcdef0123456789abcdef01234567";
    assert_int_equal(run(&JIRA, &r), VERIFY_MALFORMED);
}

static void test_plane_known_answer(void **state)
{
    (void)state;
    req r;
    req_init(&r, PLANE_BODY, PLANE_SECRET, 0);
    req_header(&r, "x-plane-signature", "%s", PLANE_HEX);
    r.hidden[0] = PLANE_HEX;
    assert_int_equal(run(&PLANE, &r), VERIFY_OK);
    /* Re-serialized JSON (no spaces) is a different body: verify raw bytes only. */
    r.body = "{\"event\":\"issue\",\"action\":\"created\",\"data\":{\"id\":\"7\"}}";
    r.body_len = strlen(r.body);
    assert_int_equal(run(&PLANE, &r), VERIFY_BAD_SIGNATURE);
    /* No prefix declared, so a prefixed value is not 64 hex digits. */
    r.body = PLANE_BODY;
    r.body_len = strlen(PLANE_BODY);
    r.headers[0].value = "sha256=900c69302f8dcf8af5ec26d174fd42b2ded11d003b9aaec5446bde49fe2a9f76";
    assert_int_equal(run(&PLANE, &r), VERIFY_MALFORMED);
}

static void test_hmac_empty_body(void **state)
{
    (void)state;
    char hex[65];
    sign_hex(PLANE_SECRET, "", NULL, NULL, NULL, hex);
    req r;
    req_init(&r, NULL, PLANE_SECRET, 0); /* body NULL, length 0 */
    req_header(&r, "X-Plane-Signature", "%s", hex);
    assert_int_equal(run(&PLANE, &r), VERIFY_OK);
}

/* The binary body must be read by length, NUL bytes included. */
static void test_hmac_binary_body(void **state)
{
    (void)state;
    static const unsigned char body[] = {'a', 0, 'b', 0xff, 0};
    unsigned char md[32];
    unsigned int md_len = 0;
    HMAC(EVP_sha256(), PLANE_SECRET, (int)strlen(PLANE_SECRET), body, sizeof body, md, &md_len);
    char hex[65];
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    ingest_header h = {"X-Plane-Signature", hex};
    const char *secrets[] = {PLANE_SECRET};
    verify_input in = {&h, 1, body, sizeof body, secrets, 1, 0};
    char reason[128];
    assert_int_equal(webhook_verify(&PLANE, &in, reason, sizeof reason), VERIFY_OK);
    in.body_len = sizeof body - 1;
    assert_int_equal(webhook_verify(&PLANE, &in, reason, sizeof reason), VERIFY_BAD_SIGNATURE);
}

/* ---- Linear: HMAC of the body + webhookTimestamp in the body ------------ */

static void linear_req(req *r, const char *body, const char *secret, int64_t now_ms)
{
    char hex[65];
    sign_hex(LINEAR_SECRET, body, NULL, NULL, NULL, hex);
    req_init(r, body, secret, now_ms * 1000);
    req_header(r, "Linear-Delivery", "234d1a4e-b617-4388-90fe-adc3633d6b72");
    req_header(r, "linear-signature", "%s", hex);
    r->hidden[0] = r->values[1];
}

static void test_linear_known_answer(void **state)
{
    (void)state;
    req r;
    req_init(&r, LINEAR_BODY, LINEAR_SECRET, (LINEAR_TS_MS + 1500) * 1000);
    req_header(&r, "Linear-Signature", "%s", LINEAR_HEX);
    r.hidden[0] = LINEAR_HEX;
    assert_int_equal(run(&LINEAR, &r), VERIFY_OK);
    /* The helper signs the same body identically. */
    req r2;
    linear_req(&r2, LINEAR_BODY, LINEAR_SECRET, LINEAR_TS_MS);
    assert_string_equal(r2.values[1], LINEAR_HEX);
}

static void test_linear_window(void **state)
{
    (void)state;
    static const struct {
        int64_t now_ms;
        verify_result want;
    } cases[] = {
        {LINEAR_TS_MS, VERIFY_OK},
        {LINEAR_TS_MS + 60000, VERIFY_OK}, /* |now - ts| <= 60 s is accepted */
        {LINEAR_TS_MS - 60000, VERIFY_OK},
        {LINEAR_TS_MS + 60001, VERIFY_STALE},
        {LINEAR_TS_MS + 3600000, VERIFY_STALE},
        {LINEAR_TS_MS - 60001, VERIFY_FUTURE},
        {0, VERIFY_FUTURE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        req r;
        linear_req(&r, LINEAR_BODY, LINEAR_SECRET, cases[i].now_ms);
        verify_result res = run(&LINEAR, &r);
        if (res != cases[i].want)
            fail_msg("case %zu: got %s (%s)", i, verify_result_label(res), r.reason);
    }
}

static void test_linear_default_tolerance(void **state)
{
    (void)state;
    ingest_webhook_spec spec = LINEAR;
    spec.tolerance_s = 0; /* 0 means 300 s */
    req r;
    linear_req(&r, LINEAR_BODY, LINEAR_SECRET, LINEAR_TS_MS + 299000);
    assert_int_equal(run(&spec, &r), VERIFY_OK);
    linear_req(&r, LINEAR_BODY, LINEAR_SECRET, LINEAR_TS_MS + 301000);
    assert_int_equal(run(&spec, &r), VERIFY_STALE);
}

static void test_linear_body_field_malformed(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"action\":\"create\"}",                         /* field missing */
        "{\"webhookTimestamp\":\"1700000000000\"}",        /* a string */
        "{\"webhookTimestamp\":null}",                     /* null */
        "{\"webhookTimestamp\":true}",                     /* bool */
        "{\"data\":{\"webhookTimestamp\":1700000000000}}", /* not top level */
        "[{\"webhookTimestamp\":1700000000000}]",          /* not an object */
        "{\"webhookTimestamp\":1700000000000",             /* truncated */
        "{\"webhookTimestamp\":1700000000000} trailing",   /* trailing garbage */
        "{\"webhookTimestamp\":1700000000000}{}",          /* two documents */
        "not json at all",
        "",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        req r;
        linear_req(&r, bodies[i], LINEAR_SECRET, LINEAR_TS_MS);
        verify_result res = run(&LINEAR, &r);
        if (res != VERIFY_MALFORMED)
            fail_msg("body %zu (%s): got %s", i, bodies[i], verify_result_label(res));
    }
}

static void test_linear_body_field_forms(void **state)
{
    (void)state;
    /* A double-typed number and trailing whitespace are both fine. */
    req r;
    linear_req(&r, "{\"webhookTimestamp\":1.7e12}\n", LINEAR_SECRET, LINEAR_TS_MS);
    assert_int_equal(run(&LINEAR, &r), VERIFY_OK);
    /* Absurd values neither overflow nor pass. */
    linear_req(&r, "{\"webhookTimestamp\":99999999999999999999999}", LINEAR_SECRET, LINEAR_TS_MS);
    assert_int_equal(run(&LINEAR, &r), VERIFY_FUTURE);
    linear_req(&r, "{\"webhookTimestamp\":-9223372036854775808}", LINEAR_SECRET, LINEAR_TS_MS);
    assert_int_equal(run(&LINEAR, &r), VERIFY_STALE);
    linear_req(&r, "{\"webhookTimestamp\":1e300}", LINEAR_SECRET, LINEAR_TS_MS);
    assert_int_equal(run(&LINEAR, &r), VERIFY_MALFORMED);
}

static void test_linear_signature_checked_before_body(void **state)
{
    (void)state;
    /* An unsigned body is rejected on its signature and never parsed: garbage
     * and stale timestamps both report bad_signature. */
    req r;
    linear_req(&r, "not json", OTHER_SECRET, LINEAR_TS_MS);
    assert_int_equal(run(&LINEAR, &r), VERIFY_BAD_SIGNATURE);
    linear_req(&r, LINEAR_BODY, OTHER_SECRET, LINEAR_TS_MS + 3600000);
    assert_int_equal(run(&LINEAR, &r), VERIFY_BAD_SIGNATURE);
}

static void test_linear_failures(void **state)
{
    (void)state;
    req r;
    /* body modified by one byte */
    linear_req(&r, LINEAR_BODY, LINEAR_SECRET, LINEAR_TS_MS);
    char body[sizeof LINEAR_BODY];
    memcpy(body, LINEAR_BODY, sizeof body);
    body[2] = 'b';
    r.body = body;
    assert_int_equal(run(&LINEAR, &r), VERIFY_BAD_SIGNATURE);
    /* missing header */
    linear_req(&r, LINEAR_BODY, LINEAR_SECRET, LINEAR_TS_MS);
    r.n_headers = 1;
    assert_int_equal(run(&LINEAR, &r), VERIFY_MISSING_HEADER);
    /* malformed: a prefix Linear does not send */
    linear_req(&r, LINEAR_BODY, LINEAR_SECRET, LINEAR_TS_MS);
    r.headers[1].value = "sha256=ffce8b1bf4ca757c90f5afd76531c5e19a5ce2527234cd85866b5272e5bcfb5f";
    assert_int_equal(run(&LINEAR, &r), VERIFY_MALFORMED);
    /* rotation: the second secret verifies */
    linear_req(&r, LINEAR_BODY, OTHER_SECRET, LINEAR_TS_MS);
    r.secrets[r.n_secrets++] = LINEAR_SECRET;
    assert_int_equal(run(&LINEAR, &r), VERIFY_OK);
    /* uppercase hex */
    linear_req(&r, LINEAR_BODY, LINEAR_SECRET, LINEAR_TS_MS);
    to_upper(r.values[1]);
    assert_int_equal(run(&LINEAR, &r), VERIFY_OK);
    /* no secret */
    linear_req(&r, LINEAR_BODY, NULL, LINEAR_TS_MS);
    assert_int_equal(run(&LINEAR, &r), VERIFY_NO_SECRET);
}

/* ---- Slack v0 ------------------------------------------------------------ */

static const int64_t SLACK_NOW_US = INT64_C(1531420618) * SEC_US;

static void slack_req(req *r, const char *ts, const char *sig, const char *secret, int64_t now_us)
{
    req_init(r, SLACK_BODY, secret, now_us);
    req_header(r, "X-Slack-Request-Timestamp", "%s", ts);
    req_header(r, "X-Slack-Signature", "%s", sig);
    r->hidden[0] = SLACK_HEX;
}

/* A fresh, correctly signed Slack request for timestamp ts (seconds). */
static void slack_signed(req *r, int64_t ts, int64_t now_us)
{
    char ts_text[24], hex[65];
    snprintf(ts_text, sizeof ts_text, "%lld", (long long)ts);
    sign_hex(SLACK_SECRET, "v0:", ts_text, ":", SLACK_BODY, hex);
    req_init(r, SLACK_BODY, SLACK_SECRET, now_us);
    req_header(r, "X-Slack-Request-Timestamp", "%s", ts_text);
    req_header(r, "X-Slack-Signature", "v0=%s", hex);
    r->hidden[0] = r->values[1] + 3;
}

static void test_slack_known_answer(void **state)
{
    (void)state;
    req r;
    assert_int_equal(strlen(SLACK_BODY), 362);
    slack_req(&r, SLACK_TS, SLACK_SIG, SLACK_SECRET, SLACK_NOW_US);
    assert_int_equal(run(&SLACK, &r), VERIFY_OK);
    /* The helper reproduces the documented signature. */
    req r2;
    slack_signed(&r2, INT64_C(1531420618), SLACK_NOW_US);
    assert_string_equal(r2.values[1], SLACK_SIG);
}

static void test_slack_defaults_and_case(void **state)
{
    (void)state;
    /* Slack's headers and prefix are fixed by the vendor; a bare spec works. */
    ingest_webhook_spec bare = {.scheme = INGEST_WEBHOOK_SLACK_V0};
    req r;
    req_init(&r, SLACK_BODY, SLACK_SECRET, SLACK_NOW_US + 10 * SEC_US);
    req_header(&r, "x-slack-request-timestamp", " %s ", SLACK_TS);
    req_header(&r, "X-SLACK-SIGNATURE", "v0=%s",
               "A2114D57B48EAC39B9AD189DD8316235A7B4A8D21A10BD27519666489C69B503");
    r.hidden[0] = SLACK_HEX;
    assert_int_equal(run(&bare, &r), VERIFY_OK);
    assert_int_equal(run(&SLACK, &r), VERIFY_OK);
}

static void test_slack_window(void **state)
{
    (void)state;
    static const struct {
        int64_t now_offset_s;
        verify_result want;
    } cases[] = {
        {0, VERIFY_OK},        {300, VERIFY_OK},      {-300, VERIFY_OK},       {301, VERIFY_STALE},
        {86400, VERIFY_STALE}, {-301, VERIFY_FUTURE}, {-86400, VERIFY_FUTURE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        req r;
        slack_req(&r, SLACK_TS, SLACK_SIG, SLACK_SECRET,
                  SLACK_NOW_US + cases[i].now_offset_s * SEC_US);
        verify_result res = run(&SLACK, &r);
        if (res != cases[i].want)
            fail_msg("offset %lld: got %s (%s)", (long long)cases[i].now_offset_s,
                     verify_result_label(res), r.reason);
    }
    /* A custom tolerance. */
    ingest_webhook_spec tight = SLACK;
    tight.tolerance_s = 30;
    req r;
    slack_req(&r, SLACK_TS, SLACK_SIG, SLACK_SECRET, SLACK_NOW_US + 31 * SEC_US);
    assert_int_equal(run(&tight, &r), VERIFY_STALE);
}

static void test_slack_stale_even_when_signed(void **state)
{
    (void)state;
    /* A correctly signed but old request is a replay. */
    req r;
    slack_signed(&r, INT64_C(1531420618), SLACK_NOW_US + 600 * SEC_US);
    assert_int_equal(run(&SLACK, &r), VERIFY_STALE);
    slack_signed(&r, INT64_C(1531420618) + 600, SLACK_NOW_US);
    assert_int_equal(run(&SLACK, &r), VERIFY_FUTURE);
}

static void test_slack_missing_headers(void **state)
{
    (void)state;
    req r;
    slack_req(&r, SLACK_TS, SLACK_SIG, SLACK_SECRET, SLACK_NOW_US);
    r.headers[0].name = "X-Slack-Timestamp";
    assert_int_equal(run(&SLACK, &r), VERIFY_MISSING_HEADER);
    assert_contains(r.reason, "X-Slack-Request-Timestamp");
    slack_req(&r, SLACK_TS, SLACK_SIG, SLACK_SECRET, SLACK_NOW_US);
    r.n_headers = 1;
    assert_int_equal(run(&SLACK, &r), VERIFY_MISSING_HEADER);
    assert_contains(r.reason, "X-Slack-Signature");
}

static void test_slack_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *ts, *sig;
    } cases[] = {
        {"1531420618a", SLACK_SIG},
        {"-1531420618", SLACK_SIG},
        {"+1531420618", SLACK_SIG},
        {"1531420618.5", SLACK_SIG},
        {"1531 420618", SLACK_SIG},
        {"", SLACK_SIG},
        {"abc", SLACK_SIG},
        {"99999999999999999999", SLACK_SIG}, /* beyond int64 */
        {SLACK_TS, "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"},
        {SLACK_TS, "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"},
        {SLACK_TS, "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b50"},
        {SLACK_TS, "v0=z2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"},
        {SLACK_TS, "v0="},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        req r;
        slack_req(&r, cases[i].ts, cases[i].sig, SLACK_SECRET, SLACK_NOW_US);
        verify_result res = run(&SLACK, &r);
        if (res != VERIFY_MALFORMED)
            fail_msg("case %zu: got %s (%s)", i, verify_result_label(res), r.reason);
    }
}

static void test_slack_huge_timestamp_no_overflow(void **state)
{
    (void)state;
    /* INT64_MAX seconds parses, and the window check must not overflow (UBSan). */
    req r;
    slack_req(&r, "9223372036854775807", SLACK_SIG, SLACK_SECRET, INT64_MIN + 1);
    assert_int_equal(run(&SLACK, &r), VERIFY_FUTURE);
    slack_req(&r, "0", SLACK_SIG, SLACK_SECRET, INT64_MAX);
    assert_int_equal(run(&SLACK, &r), VERIFY_STALE);
}

static void test_slack_bad_signature(void **state)
{
    (void)state;
    req r;
    /* wrong secret */
    slack_req(&r, SLACK_TS, SLACK_SIG, OTHER_SECRET, SLACK_NOW_US);
    assert_int_equal(run(&SLACK, &r), VERIFY_BAD_SIGNATURE);
    /* body modified by one byte */
    slack_req(&r, SLACK_TS, SLACK_SIG, SLACK_SECRET, SLACK_NOW_US);
    char body[sizeof SLACK_BODY];
    memcpy(body, SLACK_BODY, sizeof body);
    body[sizeof body - 2] ^= 1;
    r.body = body;
    assert_int_equal(run(&SLACK, &r), VERIFY_BAD_SIGNATURE);
    /* a fresh timestamp on an old signature (replay with a rewritten header) */
    slack_req(&r, "1531420619", SLACK_SIG, SLACK_SECRET, SLACK_NOW_US);
    assert_int_equal(run(&SLACK, &r), VERIFY_BAD_SIGNATURE);
    /* leading zero: same number, different signed text */
    slack_req(&r, "01531420618", SLACK_SIG, SLACK_SECRET, SLACK_NOW_US);
    assert_int_equal(run(&SLACK, &r), VERIFY_BAD_SIGNATURE);
}

static void test_slack_rotation_and_no_secret(void **state)
{
    (void)state;
    req r;
    slack_req(&r, SLACK_TS, SLACK_SIG, OTHER_SECRET, SLACK_NOW_US);
    r.secrets[r.n_secrets++] = SLACK_SECRET;
    assert_int_equal(run(&SLACK, &r), VERIFY_OK);
    slack_req(&r, SLACK_TS, SLACK_SIG, NULL, SLACK_NOW_US);
    assert_int_equal(run(&SLACK, &r), VERIFY_NO_SECRET);
}

/* ---- generic timestamped HMAC ------------------------------------------- */

static const int64_t TS_NOW_US = INT64_C(1700000000) * SEC_US;

static void stamped_req(req *r, const char *ts, const char *sig, const char *secret, int64_t now_us)
{
    req_init(r, TS_BODY, secret, now_us);
    req_header(r, "X-Timestamp", "%s", ts);
    req_header(r, "X-Signature", "%s", sig);
    r->hidden[0] = TS_HEX;
}

static void test_stamped_known_answer(void **state)
{
    (void)state;
    req r;
    stamped_req(&r, TS_VALUE, TS_HEX, TS_SECRET, TS_NOW_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_OK);
    char upper[65];
    snprintf(upper, sizeof upper, "%s", TS_HEX);
    to_upper(upper);
    stamped_req(&r, TS_VALUE, upper, TS_SECRET, TS_NOW_US);
    r.headers[0].name = "x-TIMESTAMP";
    r.headers[1].name = "x-signature";
    assert_int_equal(run(&STAMPED, &r), VERIFY_OK);
}

static void test_stamped_separator_and_prefix(void **state)
{
    (void)state;
    ingest_webhook_spec spec = STAMPED;
    spec.timestamp_separator = ":";
    spec.signature_prefix = "sha256=";
    char hex[65];
    sign_hex(TS_SECRET, TS_VALUE, ":", TS_BODY, NULL, hex);
    req r;
    req_init(&r, TS_BODY, TS_SECRET, TS_NOW_US);
    req_header(&r, "X-Timestamp", "%s", TS_VALUE);
    req_header(&r, "X-Signature", "sha256=%s", hex);
    r.hidden[0] = hex;
    assert_int_equal(run(&spec, &r), VERIFY_OK);
    /* The default "." separator gives a different MAC. */
    spec.timestamp_separator = NULL;
    assert_int_equal(run(&spec, &r), VERIFY_BAD_SIGNATURE);
    /* The declared prefix is required. */
    spec.timestamp_separator = ":";
    r.headers[1].value = hex;
    assert_int_equal(run(&spec, &r), VERIFY_MALFORMED);
}

static void test_stamped_milliseconds(void **state)
{
    (void)state;
    const char *ts_ms = "1700000000123";
    char hex[65];
    sign_hex(TS_SECRET, ts_ms, ".", TS_BODY, NULL, hex);
    req r;
    stamped_req(&r, ts_ms, hex, TS_SECRET, TS_NOW_US);
    r.hidden[0] = hex;
    assert_int_equal(run(&STAMPED, &r), VERIFY_OK);
    /* Windows apply in milliseconds: 300 s = 300000 ms. */
    r.now_us = (INT64_C(1700000000123) + 300000) * 1000;
    assert_int_equal(run(&STAMPED, &r), VERIFY_OK);
    r.now_us = (INT64_C(1700000000123) + 300001) * 1000;
    assert_int_equal(run(&STAMPED, &r), VERIFY_STALE);
    r.now_us = (INT64_C(1700000000123) - 300001) * 1000;
    assert_int_equal(run(&STAMPED, &r), VERIFY_FUTURE);
}

static void test_stamped_window(void **state)
{
    (void)state;
    req r;
    stamped_req(&r, TS_VALUE, TS_HEX, TS_SECRET, TS_NOW_US + 301 * SEC_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_STALE);
    stamped_req(&r, TS_VALUE, TS_HEX, TS_SECRET, TS_NOW_US - 301 * SEC_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_FUTURE);
    stamped_req(&r, TS_VALUE, TS_HEX, TS_SECRET, TS_NOW_US + 300 * SEC_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_OK);
    /* Stale wins over a bad signature: no HMAC is spent on replays. */
    stamped_req(&r, TS_VALUE, TS_HEX, OTHER_SECRET, TS_NOW_US + 301 * SEC_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_STALE);
}

static void test_stamped_malformed_and_missing(void **state)
{
    (void)state;
    req r;
    stamped_req(&r, "17e8", TS_HEX, TS_SECRET, TS_NOW_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_MALFORMED);
    stamped_req(&r, "2023-11-14T22:13:20Z", TS_HEX, TS_SECRET, TS_NOW_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_MALFORMED);
    stamped_req(&r, TS_VALUE, "d8332ee4eaf3fb930e40b6fd54c3b8168639cf65315863752c51a7b13c9420f",
                TS_SECRET, TS_NOW_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_MALFORMED);
    stamped_req(&r, TS_VALUE, "d8332ee4eaf3fb930e40b6fd54c3b8168639cf65315863752c51a7b13c9420fx",
                TS_SECRET, TS_NOW_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_MALFORMED);
    stamped_req(&r, TS_VALUE, TS_HEX, TS_SECRET, TS_NOW_US);
    r.headers[0].name = "X-Other";
    assert_int_equal(run(&STAMPED, &r), VERIFY_MISSING_HEADER);
    stamped_req(&r, TS_VALUE, TS_HEX, TS_SECRET, TS_NOW_US);
    r.headers[1].name = "X-Other";
    assert_int_equal(run(&STAMPED, &r), VERIFY_MISSING_HEADER);
}

static void test_stamped_bad_signature(void **state)
{
    (void)state;
    req r;
    stamped_req(&r, TS_VALUE, TS_HEX, OTHER_SECRET, TS_NOW_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_BAD_SIGNATURE);
    stamped_req(&r, TS_VALUE, TS_HEX, TS_SECRET, TS_NOW_US);
    r.body = "{\"id\":2}";
    assert_int_equal(run(&STAMPED, &r), VERIFY_BAD_SIGNATURE);
    stamped_req(&r, "1700000001", TS_HEX, TS_SECRET, TS_NOW_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_BAD_SIGNATURE);
}

static void test_stamped_rotation_and_no_secret(void **state)
{
    (void)state;
    req r;
    stamped_req(&r, TS_VALUE, TS_HEX, OTHER_SECRET, TS_NOW_US);
    r.secrets[r.n_secrets++] = TS_SECRET;
    assert_int_equal(run(&STAMPED, &r), VERIFY_OK);
    stamped_req(&r, TS_VALUE, TS_HEX, "", TS_NOW_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_NO_SECRET);
}

/* ---- shared token (GitLab) ---------------------------------------------- */

static const char GL_TOKEN[] = "glwh-Secret-Token-0123";

static void token_req(req *r, const char *value, const char *secret)
{
    req_init(r, "{\"object_kind\":\"issue\"}", secret, 0);
    req_header(r, "X-Gitlab-Event", "Issue Hook");
    req_header(r, "X-Gitlab-Token", "%s", value);
}

static void test_token_valid(void **state)
{
    (void)state;
    req r;
    token_req(&r, GL_TOKEN, GL_TOKEN);
    assert_int_equal(run(&GITLAB, &r), VERIFY_OK);
    token_req(&r, "  glwh-Secret-Token-0123\t", GL_TOKEN);
    r.headers[1].name = "x-gitlab-token";
    assert_int_equal(run(&GITLAB, &r), VERIFY_OK);
    /* The body is not part of a token check. */
    r.body = "anything";
    r.body_len = 8;
    assert_int_equal(run(&GITLAB, &r), VERIFY_OK);
}

static void test_token_mismatch(void **state)
{
    (void)state;
    static const char *const wrong[] = {
        "glwh-Secret-Token-012",   /* prefix of the secret */
        "glwh-Secret-Token-01234", /* secret plus one */
        "GLWH-SECRET-TOKEN-0123",  /* tokens are case-sensitive */
        "x",
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        req r;
        token_req(&r, wrong[i], GL_TOKEN);
        assert_int_equal(run(&GITLAB, &r), VERIFY_BAD_SIGNATURE);
    }
    req r;
    token_req(&r, GL_TOKEN, OTHER_SECRET);
    assert_int_equal(run(&GITLAB, &r), VERIFY_BAD_SIGNATURE);
}

static void test_token_missing_and_malformed(void **state)
{
    (void)state;
    req r;
    token_req(&r, GL_TOKEN, GL_TOKEN);
    r.n_headers = 1;
    assert_int_equal(run(&GITLAB, &r), VERIFY_MISSING_HEADER);
    token_req(&r, "   ", GL_TOKEN);
    assert_int_equal(run(&GITLAB, &r), VERIFY_MALFORMED);
    /* With a declared prefix, the token follows it. */
    ingest_webhook_spec bearer = GITLAB;
    bearer.signature_prefix = "Bearer ";
    token_req(&r, "Bearer glwh-Secret-Token-0123", GL_TOKEN);
    assert_int_equal(run(&bearer, &r), VERIFY_OK);
    token_req(&r, GL_TOKEN, GL_TOKEN);
    assert_int_equal(run(&bearer, &r), VERIFY_MALFORMED);
}

static void test_token_rotation_and_no_secret(void **state)
{
    (void)state;
    req r;
    token_req(&r, GL_TOKEN, OTHER_SECRET);
    r.secrets[r.n_secrets++] = GL_TOKEN;
    assert_int_equal(run(&GITLAB, &r), VERIFY_OK);
    token_req(&r, GL_TOKEN, NULL);
    assert_int_equal(run(&GITLAB, &r), VERIFY_NO_SECRET);
}

/* ---- reason hygiene ----------------------------------------------------- */

static void test_reason_never_leaks(void **state)
{
    (void)state;
    /* The client sends the expected signature for a different body: the reason
     * must contain neither the secret nor the digest we computed nor what the
     * client sent. */
    static const char secret[] = "SuperSecretValue-42";
    char expected[65], sent[65];
    sign_hex(secret, "real body", NULL, NULL, NULL, expected);
    sign_hex(secret, "other body", NULL, NULL, NULL, sent);
    req r;
    req_init(&r, "real body", secret, 0);
    req_header(&r, "X-Plane-Signature", "%s", sent);
    r.hidden[0] = expected;
    r.hidden[1] = sent;
    assert_int_equal(run(&PLANE, &r), VERIFY_BAD_SIGNATURE);
    assert_contains(r.reason, "X-Plane-Signature");

    /* Same for a shared token that differs from the secret in one character. */
    token_req(&r, "SuperSecretValue-43", secret);
    r.hidden[0] = "SuperSecretValue";
    assert_int_equal(run(&GITLAB, &r), VERIFY_BAD_SIGNATURE);

    /* And on every other outcome. */
    token_req(&r, "  ", secret);
    assert_int_equal(run(&GITLAB, &r), VERIFY_MALFORMED);
    stamped_req(&r, "12x", TS_HEX, secret, TS_NOW_US);
    assert_int_equal(run(&STAMPED, &r), VERIFY_MALFORMED);
    stamped_req(&r, TS_VALUE, TS_HEX, secret, 0);
    assert_int_equal(run(&STAMPED, &r), VERIFY_FUTURE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_header_lookup_case_insensitive),
        cmocka_unit_test(test_unsupported_schemes),
        cmocka_unit_test(test_null_input_and_reason),
        cmocka_unit_test(test_github_known_answer),
        cmocka_unit_test(test_github_uppercase_hex),
        cmocka_unit_test(test_github_header_case_and_whitespace),
        cmocka_unit_test(test_github_wrong_secret),
        cmocka_unit_test(test_github_missing_header),
        cmocka_unit_test(test_github_malformed),
        cmocka_unit_test(test_github_body_modified),
        cmocka_unit_test(test_github_rotation),
        cmocka_unit_test(test_github_no_secret),
        cmocka_unit_test(test_hmac_ignores_timestamp_header),
        cmocka_unit_test(test_jira_admin_webhook),
        cmocka_unit_test(test_plane_known_answer),
        cmocka_unit_test(test_hmac_empty_body),
        cmocka_unit_test(test_hmac_binary_body),
        cmocka_unit_test(test_linear_known_answer),
        cmocka_unit_test(test_linear_window),
        cmocka_unit_test(test_linear_default_tolerance),
        cmocka_unit_test(test_linear_body_field_malformed),
        cmocka_unit_test(test_linear_body_field_forms),
        cmocka_unit_test(test_linear_signature_checked_before_body),
        cmocka_unit_test(test_linear_failures),
        cmocka_unit_test(test_slack_known_answer),
        cmocka_unit_test(test_slack_defaults_and_case),
        cmocka_unit_test(test_slack_window),
        cmocka_unit_test(test_slack_stale_even_when_signed),
        cmocka_unit_test(test_slack_missing_headers),
        cmocka_unit_test(test_slack_malformed),
        cmocka_unit_test(test_slack_huge_timestamp_no_overflow),
        cmocka_unit_test(test_slack_bad_signature),
        cmocka_unit_test(test_slack_rotation_and_no_secret),
        cmocka_unit_test(test_stamped_known_answer),
        cmocka_unit_test(test_stamped_separator_and_prefix),
        cmocka_unit_test(test_stamped_milliseconds),
        cmocka_unit_test(test_stamped_window),
        cmocka_unit_test(test_stamped_malformed_and_missing),
        cmocka_unit_test(test_stamped_bad_signature),
        cmocka_unit_test(test_stamped_rotation_and_no_secret),
        cmocka_unit_test(test_token_valid),
        cmocka_unit_test(test_token_mismatch),
        cmocka_unit_test(test_token_missing_and_malformed),
        cmocka_unit_test(test_token_rotation_and_no_secret),
        cmocka_unit_test(test_reason_never_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
