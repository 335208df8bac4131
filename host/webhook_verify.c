/* webhook_verify.c — declarative webhook signature checks (see webhook_verify.h).
 *
 * Order of checks, cheapest and most informative first:
 *   1. the spec itself (UNSUPPORTED) and the secrets (NO_SECRET): operator problems,
 *      reported before anything the sender controls;
 *   2. presence and syntax of the headers (MISSING_HEADER, MALFORMED);
 *   3. header timestamps against the clock (STALE, FUTURE), so replays cost no HMAC;
 *   4. the HMAC / token against every active secret (BAD_SIGNATURE);
 *   5. a timestamp inside the body (Linear) only after the signature matched, so
 *      unauthenticated bodies are never handed to the JSON parser.
 * Reasons name headers from the spec and numbers we computed, never a secret, the
 * expected digest or a value the sender put in a header. */
#include "webhook_verify.h"

#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAC_LEN 32 /* SHA-256 output */
#define HEX_LEN (2 * MAC_LEN)
#define MAX_JSON_DEPTH 64 /* Linear payloads nest a few levels; json-c's default is 32 */

#define SLACK_SIGNATURE_HEADER "X-Slack-Signature"
#define SLACK_TIMESTAMP_HEADER "X-Slack-Request-Timestamp"
#define SLACK_PREFIX "v0="

/* A borrowed, not NUL-terminated run of bytes. */
typedef struct span {
    const char *p;
    size_t len;
} span;

/* A timestamp taken from a header: its text as sent (it is part of what is
 * signed) and its value in seconds or milliseconds. */
typedef struct stamp {
    span text;
    int64_t value;
    int is_ms;
} stamp;

/* ---- small helpers ----------------------------------------------------- */

static const char *const LABELS[] = {
    [VERIFY_OK] = "ok",
    [VERIFY_MISSING_HEADER] = "missing_header",
    [VERIFY_MALFORMED] = "malformed",
    [VERIFY_BAD_SIGNATURE] = "bad_signature",
    [VERIFY_STALE] = "stale",
    [VERIFY_FUTURE] = "future",
    [VERIFY_NO_SECRET] = "no_secret",
    [VERIFY_UNSUPPORTED] = "unsupported",
};

const char *verify_result_label(verify_result r)
{
    if ((unsigned)r >= sizeof LABELS / sizeof LABELS[0])
        return "unknown";
    return LABELS[r];
}

static verify_result say(verify_result r, char *reason, size_t reason_len, const char *fmt, ...)
    INGEST_PRINTF(4, 5);

/* Writes the reason (when there is room for one) and passes r through. */
static verify_result say(verify_result r, char *reason, size_t reason_len, const char *fmt, ...)
{
    if (reason && reason_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, reason_len, fmt, ap);
        va_end(ap);
    }
    return r;
}

/* say() with the reason buffer taken from the enclosing function's parameters. */
#define SAY(r, ...) say((r), reason, reason_len, __VA_ARGS__)

const char *verify_header(const ingest_header *headers, size_t n, const char *name)
{
    if (!headers || !name)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (headers[i].name && headers[i].value && strcasecmp(headers[i].name, name) == 0)
            return headers[i].value;
    }
    return NULL;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Proxies and clients may pad header values with optional whitespace. */
static span trim(const char *s)
{
    size_t len = strlen(s);
    while (len && is_blank(*s)) {
        s++;
        len--;
    }
    while (len && is_blank(s[len - 1]))
        len--;
    return (span){s, len};
}

static int secret_usable(const char *s) { return s && *s; }

static int has_secret(const verify_input *in)
{
    for (size_t i = 0; in->secrets && i < in->n_secrets; i++) {
        if (secret_usable(in->secrets[i]))
            return 1;
    }
    return 0;
}

/* Exactly HEX_LEN hex digits, either case, into MAC_LEN bytes; -1 otherwise. */
static int hex_decode(span hex, unsigned char out[MAC_LEN])
{
    if (hex.len != HEX_LEN)
        return -1;
    char text[HEX_LEN + 1];
    memcpy(text, hex.p, HEX_LEN);
    text[HEX_LEN] = '\0';
    size_t len = 0;
    /* sep '\0': no separators allowed between the digit pairs. */
    if (OPENSSL_hexstr2buf_ex(out, MAC_LEN, &len, text, '\0') != 1 || len != MAC_LEN)
        return -1;
    return 0;
}

/* Decimal digits only (no sign, no blanks), at most what fits in int64_t. */
static int parse_digits(span s, int64_t *out)
{
    if (s.len == 0)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        int d = s.p[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* ---- header parsing ---------------------------------------------------- */

/* The signature header: `prefix` followed by 64 hex digits, decoded into sig. */
static verify_result parse_signature(const char *header, const char *prefix, const verify_input *in,
                                     unsigned char sig[MAC_LEN], char *reason, size_t reason_len)
{
    const char *raw = verify_header(in->headers, in->n_headers, header);
    if (!raw)
        return SAY(VERIFY_MISSING_HEADER, "header %s is missing", header);
    span v = trim(raw);
    size_t plen = prefix ? strlen(prefix) : 0;
    if (v.len < plen || memcmp(v.p, prefix, plen) != 0)
        return SAY(VERIFY_MALFORMED, "header %s does not start with \"%s\"", header, prefix);
    v.p += plen;
    v.len -= plen;
    if (hex_decode(v, sig) != 0)
        return SAY(VERIFY_MALFORMED, "header %s must hold %d hex digits after the prefix", header,
                   HEX_LEN);
    return VERIFY_OK;
}

/* A unix timestamp header: seconds, or milliseconds when allow_ms and 13+ digits
 * (1e12 s is ~31,000 years away, so 13 digits cannot be seconds). */
static verify_result parse_stamp(const char *header, int allow_ms, const verify_input *in,
                                 stamp *ts, char *reason, size_t reason_len)
{
    const char *raw = verify_header(in->headers, in->n_headers, header);
    if (!raw)
        return SAY(VERIFY_MISSING_HEADER, "header %s is missing", header);
    ts->text = trim(raw);
    if (parse_digits(ts->text, &ts->value) != 0)
        return SAY(VERIFY_MALFORMED, "header %s must be a unix time in decimal digits", header);
    ts->is_ms = allow_ms && ts->text.len >= 13;
    return VERIFY_OK;
}

/* ---- freshness ---------------------------------------------------------- */

static uint64_t tolerance_s(const ingest_webhook_spec *spec)
{
    return spec->tolerance_s ? spec->tolerance_s : VERIFY_DEFAULT_TOLERANCE_S;
}

/* |ts - now| <= tol, all in one unit. Differences are taken in uint64_t so no
 * int64 subtraction can overflow, whatever the sender put in the timestamp. */
static verify_result check_window(int64_t ts, int64_t now, uint64_t tol, const char *unit,
                                  char *reason, size_t reason_len)
{
    if (ts >= now) {
        uint64_t ahead = (uint64_t)ts - (uint64_t)now;
        if (ahead > tol)
            return SAY(VERIFY_FUTURE, "timestamp is %llu %s in the future (tolerance %llu %s)",
                       (unsigned long long)ahead, unit, (unsigned long long)tol, unit);
    } else {
        uint64_t age = (uint64_t)now - (uint64_t)ts;
        if (age > tol)
            return SAY(VERIFY_STALE, "timestamp is %llu %s old (tolerance %llu %s)",
                       (unsigned long long)age, unit, (unsigned long long)tol, unit);
    }
    return VERIFY_OK;
}

/* Compares in the timestamp's own unit, as the vendors' SDKs do (whole seconds
 * for Slack, milliseconds for Linear). */
static verify_result check_fresh(const ingest_webhook_spec *spec, int64_t ts, int is_ms,
                                 int64_t now_us, char *reason, size_t reason_len)
{
    uint64_t tol = tolerance_s(spec);
    if (is_ms)
        return check_window(ts, now_us / 1000, tol * 1000, "ms", reason, reason_len);
    return check_window(ts, now_us / 1000000, tol, "s", reason, reason_len);
}

/* ---- HMAC --------------------------------------------------------------- */

static EVP_MAC_CTX *hmac_ctx_new(void)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac)
        return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac); /* holds its own reference to mac */
    EVP_MAC_free(mac);
    return ctx;
}

/* HMAC-SHA256(key, parts[0] || parts[1] || ...) without building the
 * concatenation, so a large body is never copied. */
static int hmac_parts(EVP_MAC_CTX *ctx, const char *key, const span *parts, size_t n_parts,
                      unsigned char out[MAC_LEN])
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_MAC_init(ctx, (const unsigned char *)key, strlen(key), params))
        return -1;
    for (size_t i = 0; i < n_parts; i++) {
        if (parts[i].len && !EVP_MAC_update(ctx, (const unsigned char *)parts[i].p, parts[i].len))
            return -1;
    }
    size_t out_len = 0;
    if (!EVP_MAC_final(ctx, out, &out_len, MAC_LEN) || out_len != MAC_LEN)
        return -1;
    return 0;
}

/* Tries every usable secret (no early exit) and ORs the constant-time
 * comparisons, so during a rotation either secret verifies. */
static verify_result match_hmac(const verify_input *in, const span *parts, size_t n_parts,
                                const unsigned char sig[MAC_LEN], const char *header, char *reason,
                                size_t reason_len)
{
    EVP_MAC_CTX *ctx = hmac_ctx_new();
    int matched = 0, failed = !ctx;
    size_t tried = 0;
    for (size_t i = 0; ctx && i < in->n_secrets; i++) {
        if (!secret_usable(in->secrets[i]))
            continue;
        unsigned char mac[MAC_LEN];
        if (hmac_parts(ctx, in->secrets[i], parts, n_parts, mac) != 0)
            failed = 1;
        else
            matched |= CRYPTO_memcmp(mac, sig, MAC_LEN) == 0;
        OPENSSL_cleanse(mac, sizeof mac);
        tried++;
    }
    EVP_MAC_CTX_free(ctx);
    if (matched)
        return SAY(VERIFY_OK, "signature in %s verified", header);
    if (failed) /* fail closed: an unverifiable delivery is not accepted */
        return SAY(VERIFY_BAD_SIGNATURE, "could not compute HMAC-SHA256 (OpenSSL error)");
    return SAY(VERIFY_BAD_SIGNATURE, "signature in %s matches none of the %zu active secret(s)",
               header, tried);
}

/* ---- Linear: timestamp inside the JSON body ---------------------------- */

/* Parses the whole body as one JSON object (trailing blanks allowed). NULL if it is not. */
static json_object *parse_body(const verify_input *in)
{
    if (in->body_len == 0 || in->body_len > INT_MAX)
        return NULL;
    json_tokener *tok = json_tokener_new_ex(MAX_JSON_DEPTH);
    if (!tok)
        return NULL;
    json_object *obj = json_tokener_parse_ex(tok, (const char *)in->body, (int)in->body_len);
    size_t end = json_tokener_get_parse_end(tok);
    int ok = obj && json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    for (size_t i = end; ok && i < in->body_len; i++)
        ok = is_blank((char)in->body[i]);
    if (!ok || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

/* A JSON number (integer or finite double) as int64; -1 if not a number. */
static int json_number(json_object *v, int64_t *out)
{
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v); /* json-c saturates out-of-range values */
        return 0;
    }
    if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (!isfinite(d) || d < -9.2e18 || d > 9.2e18)
            return -1;
        *out = (int64_t)d;
        return 0;
    }
    return -1;
}

static verify_result check_body_stamp(const ingest_webhook_spec *spec, const verify_input *in,
                                      char *reason, size_t reason_len)
{
    const char *field = spec->body_timestamp_field;
    json_object *root = parse_body(in);
    if (!root)
        return SAY(VERIFY_MALFORMED, "body is not a JSON object (needed for field %s)", field);
    json_object *v = NULL;
    int64_t ms = 0;
    int found = json_object_object_get_ex(root, field, &v);
    int numeric = found && json_number(v, &ms) == 0;
    json_object_put(root);
    if (!found)
        return SAY(VERIFY_MALFORMED, "body has no top-level field %s", field);
    if (!numeric)
        return SAY(VERIFY_MALFORMED, "body field %s is not a number", field);
    verify_result r = check_fresh(spec, ms, 1, in->now_us, reason, reason_len);
    if (r != VERIFY_OK)
        return r;
    return SAY(VERIFY_OK, "signature and body field %s verified", field);
}

/* ---- schemes ------------------------------------------------------------ */

static span body_span(const verify_input *in)
{
    return (span){(const char *)in->body, in->body_len};
}

static span cstr(const char *s) { return (span){s, strlen(s)}; }

static verify_result verify_hmac_body(const ingest_webhook_spec *spec, const verify_input *in,
                                      char *reason, size_t reason_len)
{
    unsigned char sig[MAC_LEN];
    const char *prefix = spec->signature_prefix ? spec->signature_prefix : "";
    verify_result r = parse_signature(spec->signature_header, prefix, in, sig, reason, reason_len);
    if (r != VERIFY_OK)
        return r;
    span parts[] = {body_span(in)};
    r = match_hmac(in, parts, 1, sig, spec->signature_header, reason, reason_len);
    if (r != VERIFY_OK || !spec->body_timestamp_field)
        return r;
    return check_body_stamp(spec, in, reason, reason_len);
}

/* Shared by Slack v0 and the generic timestamped HMAC: HMAC over
 * lead || ts || sep || body, where lead is "v0:" for Slack and empty otherwise. */
typedef struct stamped_scheme {
    const char *sig_header, *ts_header, *prefix, *lead, *sep;
    int allow_ms;
} stamped_scheme;

static verify_result verify_stamped(const ingest_webhook_spec *spec, const stamped_scheme *s,
                                    const verify_input *in, char *reason, size_t reason_len)
{
    stamp ts = {0};
    unsigned char sig[MAC_LEN];
    verify_result r = parse_stamp(s->ts_header, s->allow_ms, in, &ts, reason, reason_len);
    if (r == VERIFY_OK)
        r = parse_signature(s->sig_header, s->prefix, in, sig, reason, reason_len);
    if (r == VERIFY_OK)
        r = check_fresh(spec, ts.value, ts.is_ms, in->now_us, reason, reason_len);
    if (r != VERIFY_OK)
        return r;
    span parts[] = {cstr(s->lead), ts.text, cstr(s->sep), body_span(in)};
    return match_hmac(in, parts, 4, sig, s->sig_header, reason, reason_len);
}

static verify_result verify_slack(const ingest_webhook_spec *spec, const verify_input *in,
                                  char *reason, size_t reason_len)
{
    /* Slack's scheme is fully fixed by the vendor, so a bare spec is enough. */
    stamped_scheme s = {
        .sig_header = spec->signature_header ? spec->signature_header : SLACK_SIGNATURE_HEADER,
        .ts_header = spec->timestamp_header ? spec->timestamp_header : SLACK_TIMESTAMP_HEADER,
        .prefix = spec->signature_prefix ? spec->signature_prefix : SLACK_PREFIX,
        .lead = "v0:",
        .sep = ":",
        .allow_ms = 0,
    };
    return verify_stamped(spec, &s, in, reason, reason_len);
}

static verify_result verify_timestamped(const ingest_webhook_spec *spec, const verify_input *in,
                                        char *reason, size_t reason_len)
{
    stamped_scheme s = {
        .sig_header = spec->signature_header,
        .ts_header = spec->timestamp_header,
        .prefix = spec->signature_prefix ? spec->signature_prefix : "",
        .lead = "",
        .sep = spec->timestamp_separator ? spec->timestamp_separator : ".",
        .allow_ms = 1,
    };
    return verify_stamped(spec, &s, in, reason, reason_len);
}

/* Hashing both sides first makes the comparison fixed-length, so neither the
 * secret's length nor a common prefix leaks through timing. */
static verify_result verify_token(const ingest_webhook_spec *spec, const verify_input *in,
                                  char *reason, size_t reason_len)
{
    const char *header = spec->signature_header;
    const char *raw = verify_header(in->headers, in->n_headers, header);
    if (!raw)
        return SAY(VERIFY_MISSING_HEADER, "header %s is missing", header);
    span v = trim(raw);
    const char *prefix = spec->signature_prefix ? spec->signature_prefix : "";
    size_t plen = strlen(prefix);
    if (v.len < plen || memcmp(v.p, prefix, plen) != 0)
        return SAY(VERIFY_MALFORMED, "header %s does not start with \"%s\"", header, prefix);
    if (v.len == plen)
        return SAY(VERIFY_MALFORMED, "header %s is empty", header);
    unsigned char got[MAC_LEN], want[MAC_LEN];
    int ok = EVP_Digest(v.p + plen, v.len - plen, got, NULL, EVP_sha256(), NULL);
    int matched = 0;
    size_t tried = 0;
    for (size_t i = 0; ok && i < in->n_secrets; i++) {
        if (!secret_usable(in->secrets[i]))
            continue;
        if (!EVP_Digest(in->secrets[i], strlen(in->secrets[i]), want, NULL, EVP_sha256(), NULL))
            ok = 0;
        else
            matched |= CRYPTO_memcmp(got, want, MAC_LEN) == 0;
        tried++;
    }
    OPENSSL_cleanse(want, sizeof want);
    if (matched)
        return SAY(VERIFY_OK, "token in %s verified", header);
    if (!ok)
        return SAY(VERIFY_BAD_SIGNATURE, "could not compute SHA-256 (OpenSSL error)");
    return SAY(VERIFY_BAD_SIGNATURE, "token in %s matches none of the %zu active secret(s)", header,
               tried);
}

/* ---- entry point -------------------------------------------------------- */

/* A spec this module cannot act on: a plugin descriptor bug or a scheme the
 * caller handles itself. NULL when the spec is usable. */
static const char *spec_problem(const ingest_webhook_spec *spec)
{
    switch (spec->scheme) {
    case INGEST_WEBHOOK_HMAC_SHA256:
    case INGEST_WEBHOOK_SHARED_TOKEN:
        return spec->signature_header ? NULL : "the webhook spec names no signature header";
    case INGEST_WEBHOOK_TIMESTAMPED_HMAC:
        if (!spec->signature_header || !spec->timestamp_header)
            return "the webhook spec needs both a signature and a timestamp header";
        return NULL;
    case INGEST_WEBHOOK_SLACK_V0:
        return NULL;
    case INGEST_WEBHOOK_NONE:
        return "the plugin takes no webhooks";
    case INGEST_WEBHOOK_CALLBACK:
        return "the plugin verifies its webhooks with its own callback";
    }
    return "unknown webhook verification scheme";
}

verify_result webhook_verify(const ingest_webhook_spec *spec, const verify_input *in, char *reason,
                             size_t reason_len)
{
    if (!spec)
        return SAY(VERIFY_UNSUPPORTED, "no webhook spec");
    const char *problem = spec_problem(spec);
    if (problem)
        return SAY(VERIFY_UNSUPPORTED, "%s", problem);
    if (!in || (!in->body && in->body_len))
        return SAY(VERIFY_MALFORMED, "no request to verify");
    if (!has_secret(in))
        return SAY(VERIFY_NO_SECRET, "no webhook secret is configured");
    switch (spec->scheme) {
    case INGEST_WEBHOOK_HMAC_SHA256:
        return verify_hmac_body(spec, in, reason, reason_len);
    case INGEST_WEBHOOK_SLACK_V0:
        return verify_slack(spec, in, reason, reason_len);
    case INGEST_WEBHOOK_TIMESTAMPED_HMAC:
        return verify_timestamped(spec, in, reason, reason_len);
    case INGEST_WEBHOOK_SHARED_TOKEN:
        return verify_token(spec, in, reason, reason_len);
    default: /* ruled out by spec_problem() */
        return SAY(VERIFY_UNSUPPORTED, "unknown webhook verification scheme");
    }
}
