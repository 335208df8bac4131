/* webhook_verify.h — checks a webhook delivery's signature against the
 * plugin's declarative ingest_webhook_spec (HMAC-SHA256 of the body, Slack v0,
 * timestamped HMAC, shared token).
 *
 * Pure: no I/O, no mutable state, no threads, no libevent; safe to call from
 * any thread, including the event loop (it never blocks; its cost is linear
 * in the body size). The clock is injected (verify_input.now_us) so tests are
 * deterministic. Signatures are compared in constant time with CRYPTO_memcmp.
 *
 * When several things are wrong, the first of these wins: UNSUPPORTED (spec),
 * NO_SECRET, MISSING_HEADER / MALFORMED (headers), STALE / FUTURE (header
 * timestamp), BAD_SIGNATURE, then MALFORMED / STALE / FUTURE for a timestamp
 * inside the body (Linear), which is parsed only once the signature matched. */
#ifndef HOSTD_WEBHOOK_VERIFY_H
#define HOSTD_WEBHOOK_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/plugin.h"

/* Default timestamp tolerance when spec->tolerance_s is 0. */
#define VERIFY_DEFAULT_TOLERANCE_S 300

typedef enum verify_result {
    VERIFY_OK = 0,
    VERIFY_MISSING_HEADER, /* signature or timestamp header absent */
    VERIFY_MALFORMED,      /* header present but not parseable (bad hex, wrong length, wrong
                              prefix, bad timestamp, body field missing/not a number) */
    VERIFY_BAD_SIGNATURE,  /* well-formed but no active secret matches */
    VERIFY_STALE,          /* timestamp older than tolerance */
    VERIFY_FUTURE,         /* timestamp further in the future than tolerance */
    VERIFY_NO_SECRET,      /* no secret configured for this provider/connection */
    VERIFY_UNSUPPORTED,    /* scheme NONE or CALLBACK (the caller handles CALLBACK itself),
                              or a spec that lacks the header names its scheme needs */
} verify_result;

/* Stable short label for metrics ("missing_header", "malformed", "bad_signature", "stale",
 * "future", "no_secret", "unsupported", "ok"; "unknown" for values outside the enum).
 * Returns a static string; never NULL. */
const char *verify_result_label(verify_result r);

/* Everything in here is borrowed: webhook_verify() reads it during the call
 * and keeps no pointer to it afterwards. */
typedef struct verify_input {
    const ingest_header *headers; /* names compared case-insensitively; values trimmed */
    size_t n_headers;             /* headers may be NULL when 0; entries with a NULL name or
                                     value are skipped; the first match wins */
    const unsigned char *body;    /* raw bytes, not NUL-terminated; NULL only if body_len 0 */
    size_t body_len;
    const char *const *secrets; /* 1 or 2 active secrets (rotation: either verifies), used
                                   as-is (not trimmed); the caller keeps and wipes them */
    size_t n_secrets;           /* NULL or empty entries are skipped */
    int64_t now_us;             /* wall clock (unix µs), injected for tests */
} verify_input;

/* Checks `in` against `spec`. Writes a one-line human reason (never containing a secret, the
 * expected signature or any header value sent by the client) into reason (NUL-terminated,
 * truncated to reason_len; reason may be NULL when reason_len is 0). A NULL spec or a
 * spec->scheme of NONE/CALLBACK gives VERIFY_UNSUPPORTED. SLACK_V0 falls back to Slack's own
 * header names and "v0=" when the spec leaves them NULL; the other schemes need theirs. If the
 * HMAC cannot be computed at all (OpenSSL failure) the result is VERIFY_BAD_SIGNATURE: the check
 * fails closed. */
verify_result webhook_verify(const ingest_webhook_spec *spec, const verify_input *in, char *reason,
                             size_t reason_len);

/* Case-insensitive header lookup helper; returns the first non-NULL value (borrowed from
 * `headers`, untrimmed) or NULL when absent or when headers/name is NULL. */
const char *verify_header(const ingest_header *headers, size_t n, const char *name);

#endif
