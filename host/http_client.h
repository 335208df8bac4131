/* http_client.h — blocking outbound HTTP for plugin code on worker threads.
 *
 * One client per daemon. Each worker thread that calls
 * http_client_perform() gets its own libcurl easy handle, created on first
 * use and kept, so keep-alive connections are reused by that worker; all
 * handles share a DNS cache and TLS sessions. HTTP/2 is used where a TLS
 * server offers it, responses may be gzip/deflate-compressed, and every
 * transfer has connect and total timeouts and a response size cap. Up to 5
 * redirects are followed (http and https only; curl does not forward
 * Authorization to another host).
 *
 * Every request of a plugin goes through the rate limiter (ratelimit.h)
 * under its key, retries 429/502/503/504 and transport errors with
 * backoff_default (a server's Retry-After takes precedence), checks a
 * cancel flag at least every 100 ms while it waits, and never sleeps longer
 * than the policy's max inline wait: a longer wait comes back as
 * INGEST_ERATELIMITED with the wait, so the job is rescheduled instead of
 * holding a worker.
 *
 * Nothing this module logs or returns as error text contains header values
 * of credential-bearing headers (Authorization, Cookie, *token*, *key*, ...),
 * the basic-auth or AWS credentials, or the values of query parameters
 * named access_token, token, key, signature or client_secret. */
#ifndef HOSTD_HTTP_CLIENT_H
#define HOSTD_HTTP_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "backoff.h"
#include "ingest/plugin.h"
#include "metrics.h"
#include "ratelimit.h"

#define HTTP_DEFAULT_MAX_RETRIES 4
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define HTTP_DEFAULT_TOTAL_TIMEOUT_MS 60000
#define HTTP_DEFAULT_MAX_RESPONSE_BYTES ((size_t)64 * 1024 * 1024)
#define HTTP_DEFAULT_MAX_INLINE_WAIT_MS 30000

typedef struct http_client http_client;

typedef struct http_client_options {
    /* Limiter state shared by every request; borrowed, must outlive the
     * client. NULL: requests are not rate-limited (Retry-After and retries
     * still apply). */
    ratelimit_registry *limits;
    /* Where the ingest_http_* and ingest_ratelimit_* series are registered
     * (owned by the client pointer, removed by http_client_free()); borrowed,
     * must outlive the client. NULL: no metrics. */
    metrics_registry *metrics;
    /* User-Agent of every request; copied. NULL: "ingest-hostd/<version>". */
    const char *user_agent;
} http_client_options;

/* Create the client (and initialise libcurl once per process). `opts` may be
 * NULL; it is read during the call only. The caller owns the result and
 * frees it with http_client_free(). NULL on failure. */
http_client *http_client_new(const http_client_options *opts);

/* Free the client, every per-thread handle it made and its metric series.
 * Call it only after every thread that used it has stopped calling it.
 * NULL is a no-op. */
void http_client_free(http_client *client);

/* Release the calling thread's easy handle (and its idle connections) now
 * rather than when the thread exits or the client is freed. Optional. */
void http_client_thread_release(http_client *client);

/* One request. Every pointer is borrowed for the duration of
 * http_client_perform() only. */
typedef struct http_request {
    const char *method;           /* "GET" (also when NULL), "POST", "PUT", "PATCH", "DELETE",
                                     "HEAD", ... */
    const char *url;              /* required, absolute http(s) URL */
    const ingest_header *headers; /* extra request headers; may be NULL with 0 */
    size_t n_headers;
    const void *body; /* request body; may be NULL with 0 */
    size_t body_len;
    const char *userpwd; /* "user:password" for HTTP basic auth, or NULL */
    /* AWS Signature V4 (CURLOPT_AWS_SIGV4), e.g. "aws:amz:us-east-1:s3";
     * NULL = no signing. Needs aws_access_key and aws_secret_key; a session
     * token, when given, is sent as x-amz-security-token and signed, and
     * x-amz-content-sha256 (the hex SHA-256 of the body, which S3 requires
     * and curl before 8.x does not add) is sent and signed unless headers
     * already hold one. */
    const char *aws_sigv4;
    const char *aws_access_key;
    const char *aws_secret_key;
    const char *aws_session_token;
    /* Body sink: when set, the body of a 2xx final response is handed to
     * on_body chunk by chunk as it arrives (decoded) instead of being
     * collected in resp->body, and max_response_bytes does not apply to it;
     * other statuses are buffered as usual. Called on the calling thread
     * inside http_client_perform(); a non-zero return stops the transfer
     * (INGEST_ECANCELED). Once a byte was delivered the request is never
     * retried: a later transport failure is INGEST_EIO with
     * resp->streamed_bytes telling how far it got. The per-attempt total
     * timeout becomes a stall limit (less than 1 byte/s over that time). A
     * perform called from inside on_body on the same thread (same easy
     * handle) fails with INGEST_ESTATE. NULL = buffer the body. */
    int (*on_body)(void *arg, const void *data, size_t len);
    void *on_body_arg;
} http_request;

/* How one call behaves. Zero-initialised members select the defaults. */
typedef struct http_policy {
    /* metrics label and log "plugin" field, e.g. "github"; NULL = "none",
     * anything but [A-Za-z0-9_.-]{1,64} = "invalid" */
    const char *provider;
    const char *limiter_key;    /* "provider/connection_id"; NULL = no rate limiter */
    ingest_rate_limit quota;    /* the plugin's declared vendor quota (0 requests = none) */
    int max_retries;            /* 0 = HTTP_DEFAULT_MAX_RETRIES; < 0 = never retry */
    int64_t connect_timeout_ms; /* 0 = HTTP_DEFAULT_CONNECT_TIMEOUT_MS */
    int64_t total_timeout_ms;   /* per attempt; 0 = HTTP_DEFAULT_TOTAL_TIMEOUT_MS */
    size_t max_response_bytes;  /* decoded body; 0 = HTTP_DEFAULT_MAX_RESPONSE_BYTES */
    int64_t max_inline_wait_ms; /* 0 = HTTP_DEFAULT_MAX_INLINE_WAIT_MS */
    /* Set to non-zero (by any thread) to stop with INGEST_ECANCELED: a wait
     * ends within 100 ms, a transfer at curl's next progress call (well
     * under a second). Borrowed; may be NULL. */
    const atomic_int *cancel;
    const backoff_policy *backoff; /* NULL = backoff_default */
} http_policy;

/* What came back. http_client_perform() overwrites *resp without freeing
 * it, so pass a fresh struct or one released with http_response_free(); the
 * caller owns the members until it calls http_response_free(). */
typedef struct http_response {
    long status;            /* final HTTP status; 0 when no response arrived */
    char *body;             /* malloc'd, NUL-terminated (also when empty) */
    size_t body_len;        /* without the terminating NUL */
    ingest_header *headers; /* the final response's headers in arrival order; malloc'd */
    size_t n_headers;
    char *next_url;         /* Link rel="next", resolved to an absolute URL; NULL = none */
    int64_t retry_after_ms; /* the final response's Retry-After; -1 = none */
    /* With INGEST_ERATELIMITED: how long to wait before trying again. */
    int64_t wait_ms;
    int attempts;    /* transfers made, retries included */
    char error[256]; /* for a failure status: what went wrong (never a credential) */
    /* With req->on_body: non-zero when the final response's body went to
     * the sink (body is then ""), and how many bytes on_body accepted. */
    int streamed;
    uint64_t streamed_bytes;
} http_response;

/* Perform `req` under `pol` (NULL = all defaults) on the calling thread,
 * blocking until it is done. *resp is filled in every case (statuses other
 * than INGEST_OK leave a description in resp->error).
 *
 * Returns
 *  INGEST_OK           a response arrived: any status, including 4xx (not
 *                      retried, except 429 and a 403 that carries Retry-After
 *                      or X-RateLimit-Remaining: 0, GitHub's way of saying
 *                      429), and 502/503/504 after the retries ran out;
 *  INGEST_ERATELIMITED the limiter, a Retry-After or the backoff asks for a
 *                      wait longer than max_inline_wait_ms, or 429 persisted
 *                      after every retry; resp->wait_ms says how long. The
 *                      last response (if any) is in *resp;
 *  INGEST_EIO          transport failure after the retries (or after a byte
 *                      reached on_body), or the response exceeded
 *                      max_response_bytes;
 *  INGEST_ECANCELED    the cancel flag was raised, or on_body returned
 *                      non-zero;
 *  INGEST_EINVAL       bad arguments (no URL, a URL curl cannot use, CR/LF in
 *                      a header, incomplete AWS credentials);
 *  INGEST_ESTATE       called from inside an on_body sink of this thread;
 *  INGEST_EUNSUPPORTED SigV4 was asked for but this libcurl lacks it;
 *  INGEST_ENOMEM       allocation failed. */
int http_client_perform(http_client *client, const http_request *req, const http_policy *pol,
                        http_response *resp);

/* Free the members of *resp (not resp itself) and reset it to an empty
 * response (retry_after_ms = -1). NULL is a no-op. */
void http_response_free(http_response *resp);

/* The value of response header `name` (case-insensitive; the last one wins),
 * or NULL. Valid until http_response_free(). */
const char *http_response_header(const http_response *resp, const char *name);

/* `url` made safe to log: user:password@ is dropped, and the values of the
 * query parameters access_token, refresh_token, token, key, api_key, apikey,
 * signature, sig, client_secret, password and the X-Amz-Signature /
 * -Security-Token / -Credential ones (names case-insensitive) become
 * [REDACTED]. Text that does not parse as a URL keeps only what precedes
 * its query. Returns a malloc'd string the caller frees (NULL on OOM); url
 * is borrowed. */
char *http_redact_url(const char *url);

#endif
