/*
 * ingest/plugin.h — the one header a connector plugin includes.
 *
 * A plugin is a shared object named ingest_<name>.so that exports exactly one
 * symbol, ingest_plugin_v1 (INGEST_ENTRY_SYMBOL), a function returning a
 * pointer to a static, read-only descriptor (struct ingest_plugin). The host
 * checks the descriptor's ABI header, copies it by its declared size into a
 * zeroed struct of its own, validates the plugin's config section against the
 * declared schema and then calls init() with a const table of host functions
 * (struct ingest_host_api).
 *
 * Compatibility rules
 *  - Every struct that crosses the boundary starts with an ingest_abi_header
 *    (or, for array elements, is described by an element size in its parent).
 *    The host reads min(declared size, its own size) and zero-fills the rest,
 *    so a plugin built against an older minor keeps working.
 *  - The API table only grows at its end. A plugin built against a newer
 *    minor tests a member before use with INGEST_API_HAS(api, member).
 *  - A different ABI major changes the entry symbol's name (ingest_plugin_v2),
 *    so an incompatible plugin is refused cleanly, never called.
 *
 * Threads
 *  - init() and shutdown() run on a worker thread, one plugin at a time.
 *  - tick, sync, webhook and health callbacks run on the host's worker pool and
 *    may run concurrently with each other; state shared between them must be
 *    protected by the plugin. The host never runs two ticks of one schedule at
 *    once.
 *  - Callbacks may block, but only inside host API calls (HTTP, store), so the
 *    host can meter, time out and cancel them.
 *  - A plugin creates no threads, installs no signal handlers or atexit hooks
 *    and keeps no mutable file-scope state: everything lives in the state
 *    pointer returned by init(), so a reload starts from a clean slate.
 *
 * Memory rules (repeated at each declaration)
 *  - Borrowed: pointers the host passes into a callback are valid until that
 *    callback returns. Copy what you keep.
 *  - Copied: every API call that takes a pointer copies what it needs before
 *    it returns; the plugin keeps ownership of its arguments.
 *  - Host-allocated results are released with api->free().
 *  - Descriptor data (strings, arrays) must stay valid while the plugin is
 *    loaded: make them static const.
 */
#ifndef INGEST_PLUGIN_H
#define INGEST_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define INGEST_ABI_MAJOR 1
#define INGEST_ABI_MINOR 3
#define INGEST_ABI_MAGIC 0x50474e49u /* "INGP" little-endian */

/* The entry symbol's name carries the ABI major. */
#define INGEST_ENTRY_SYMBOL "ingest_plugin_v1"

#if defined(__GNUC__)
#define INGEST_EXPORT __attribute__((visibility("default")))
#define INGEST_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define INGEST_EXPORT
#define INGEST_PRINTF(fmt, args)
#endif

/* Status codes: 0 is success, every failure is negative. */
typedef enum ingest_status {
    INGEST_OK = 0,
    INGEST_EINVAL = -1,       /* bad argument or bad input data */
    INGEST_ENOMEM = -2,       /* allocation failed */
    INGEST_EAGAIN = -3,       /* transient failure: retry later */
    INGEST_EIO = -4,          /* store or network I/O failed */
    INGEST_EUNSUPPORTED = -5, /* not available in this host or context */
    INGEST_ENOTFOUND = -6,    /* no such thing (cursor, secret, ...) */
    INGEST_ERATELIMITED = -7, /* vendor said slow down; see retry_after */
    INGEST_EAUTH = -8,        /* credentials rejected */
    INGEST_ECANCELED = -9,    /* host is shutting down or unloading */
    INGEST_ESTATE = -10,      /* call not allowed now (e.g. register outside init) */
} ingest_status;

/* First member of every top-level boundary struct. */
typedef struct ingest_abi_header {
    uint32_t magic;       /* INGEST_ABI_MAGIC */
    uint16_t abi_major;   /* INGEST_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;   /* INGEST_ABI_MINOR the plugin was built with */
    uint32_t struct_size; /* sizeof the enclosing struct as the builder saw it */
} ingest_abi_header;

#define INGEST_ABI_HEADER(type)                                                                    \
    {                                                                                              \
        INGEST_ABI_MAGIC, INGEST_ABI_MAJOR, INGEST_ABI_MINOR, (uint32_t)sizeof(type)               \
    }

/* True when a struct the host handed over (it says its size in its header)
 * is new enough to carry `member`. */
#define INGEST_STRUCT_HAS(ptr, member)                                                             \
    ((size_t)(ptr)->hdr.struct_size >=                                                             \
     (size_t)((const char *)&(ptr)->member - (const char *)(ptr)) + sizeof((ptr)->member))

/* An array handed to the host: pointer, element count and element size, so
 * elements may grow in later minors. Fill with INGEST_ARRAY(static_array). */
#define INGEST_ARRAY(arr) (arr), (sizeof(arr) / sizeof((arr)[0])), sizeof((arr)[0])

/* ------------------------------------------------------------------------ */
/* Opaque host handles                                                       */
/* ------------------------------------------------------------------------ */

/* The plugin instance as the host sees it. Passed to init(), valid until
 * shutdown() returns. Every registration made through it belongs to this
 * instance and is removed by the host when the instance is unloaded. */
typedef struct ingest_ctx ingest_ctx;

/* One unit of work: a scheduled tick, a sync job or a webhook delivery.
 * Borrowed: valid until the callback that received it returns. Signals and
 * cursors are written through it. */
typedef struct ingest_run ingest_run;

/* A metric registered by the plugin; owned by the host, valid until the
 * instance is unloaded. */
typedef struct ingest_metric ingest_metric;

/* ------------------------------------------------------------------------ */
/* Descriptor parts                                                          */
/* ------------------------------------------------------------------------ */

typedef enum ingest_auth_kind {
    INGEST_AUTH_NONE = 0,
    INGEST_AUTH_TOKEN,  /* static API token / personal access token */
    INGEST_AUTH_OAUTH2, /* authorization code flow with refresh */
    INGEST_AUTH_BASIC,  /* username + password (or API token) */
    INGEST_AUTH_AWS,    /* access key id + secret (+ session token), SigV4 */
    /* (ABI minor 2) Tokens the plugin mints from the connection's app
     * credentials, e.g. a GitHub App installation token from a JWT signed
     * with the app's private key: see ingest_plugin.mint_token. */
    INGEST_AUTH_APP,
} ingest_auth_kind;

/* A set of auth kinds, for ingest_plugin.auth_kinds_also. */
#define INGEST_AUTH_BIT(kind) (1u << (unsigned)(kind))

typedef struct ingest_auth_spec {
    ingest_auth_kind kind;
    const char *authorize_url; /* OAuth2 only; NULL otherwise */
    const char *token_url;     /* OAuth2 only */
    const char *scopes;        /* OAuth2: space-separated default scopes */
    int pkce;                  /* OAuth2: non-zero if the provider supports PKCE */
} ingest_auth_spec;

/* A stream the plugin can sync, e.g. "issues". */
typedef struct ingest_stream {
    const char *name;            /* required, unique within the plugin */
    const char *primary_key;     /* field that identifies a record, e.g. "id" */
    const char *cursor_field;    /* field the incremental cursor follows, e.g. "updated_at"; NULL =
                                    full refresh only */
    uint32_t default_interval_s; /* default sync interval, 0 = host default */
} ingest_stream;

typedef enum ingest_webhook_scheme {
    INGEST_WEBHOOK_NONE = 0,    /* the plugin takes no webhooks */
    INGEST_WEBHOOK_HMAC_SHA256, /* hex HMAC-SHA256 of the raw body in a header, optional prefix */
    INGEST_WEBHOOK_SLACK_V0,    /* v0=HMAC("v0:{ts}:{body}") + timestamp header */
    INGEST_WEBHOOK_TIMESTAMPED_HMAC, /* HMAC over "{ts}{separator}{body}", timestamp header */
    INGEST_WEBHOOK_SHARED_TOKEN,     /* header equals the secret (constant-time) */
    INGEST_WEBHOOK_CALLBACK,         /* the plugin's verify callback decides */
} ingest_webhook_scheme;

typedef struct ingest_webhook_spec {
    ingest_webhook_scheme scheme;
    const char *signature_header;     /* e.g. "X-Hub-Signature-256" */
    const char *signature_prefix;     /* e.g. "sha256=" or "v0="; NULL = none */
    const char *timestamp_header;     /* timestamped schemes, e.g. "X-Slack-Request-Timestamp" */
    const char *timestamp_separator;  /* TIMESTAMPED_HMAC: between ts and body, e.g. "." */
    const char *body_timestamp_field; /* JSON body field in ms that must be fresh (Linear) */
    uint32_t tolerance_s;             /* max clock skew for timestamps; 0 = 300 */
    const char *delivery_id_header;   /* idempotency key header, e.g. "X-GitHub-Delivery" */
    const char *delivery_id_field;    /* or a top-level JSON body field, e.g. Slack "event_id" */
} ingest_webhook_spec;

/* How the host acknowledges a verified delivery once it is stored (ABI
 * minor 3; ingest_plugin.webhook_ack). */
typedef enum ingest_webhook_ack {
    /* 202 {"status": "accepted", "delivery_id": ..., "idempotency_key": ...},
     * or 200 {"status": "duplicate", ...} for a delivery already stored. */
    INGEST_WEBHOOK_ACK_DEFAULT = 0,
    /* 200 with an empty body, both times: for providers that show a reply's
     * body to a person or read a non-200 as a failure (Slack's slash
     * commands and interactive payloads, where an empty 200 is a bare
     * acknowledgement). */
    INGEST_WEBHOOK_ACK_EMPTY_200,
} ingest_webhook_ack;

/* What a plugin answers to a provider handshake (see webhook_handshake).
 * Host-owned, zeroed before the call; the plugin fills it. */
typedef struct ingest_webhook_reply {
    int status;            /* HTTP status, e.g. 200 */
    char content_type[64]; /* e.g. "text/plain"; empty = application/json */
    char body[4096];       /* NUL-terminated response body */
} ingest_webhook_reply;

/* The vendor's published quota; the host spends a configurable share of it. */
typedef struct ingest_rate_limit {
    uint32_t requests; /* requests allowed per window; 0 = no declared limit */
    uint32_t window_s; /* window length in seconds */
} ingest_rate_limit;

/* Config schema: one entry per key of the plugin's `plugins.<name>` group.
 * The host validates the group (types, bounds, required keys, unknown keys)
 * before init() and fills a zeroed struct of conf_size bytes by offset. */
typedef enum ingest_config_type {
    INGEST_CONF_STRING = 1,  /* const char * (host-owned, valid until shutdown returns) */
    INGEST_CONF_INT,         /* int64_t */
    INGEST_CONF_BOOL,        /* int (0 or 1) */
    INGEST_CONF_DOUBLE,      /* double */
    INGEST_CONF_STRING_LIST, /* struct ingest_string_list */
    INGEST_CONF_SECRET,      /* const char *, like STRING but never logged or listed */
} ingest_config_type;

typedef struct ingest_string_list {
    const char *const *items; /* host-owned, valid until shutdown returns */
    size_t count;
} ingest_string_list;

typedef struct ingest_config_field {
    const char *key; /* required; [a-z0-9_]+ */
    ingest_config_type type;
    const char *default_value; /* textual default ("30", "true", "a,b"); NULL = none */
    int required;              /* non-zero: refuse the config without it */
    double min, max; /* INT/DOUBLE bounds, STRING length bounds; ignored when min == max == 0 */
    size_t offset;   /* offsetof(the plugin's conf struct, field) */
    const char *doc; /* one-line description for list/--describe */
} ingest_config_field;

/* ------------------------------------------------------------------------ */
/* Work items handed to callbacks                                            */
/* ------------------------------------------------------------------------ */

/* A sync job. Borrowed: valid until the sync callback returns. */
typedef struct ingest_job {
    ingest_abi_header hdr;
    const char *job_id;        /* uuid text */
    const char *tenant_id;     /* uuid text */
    const char *connection_id; /* uuid text, NULL for connection-less runs */
    const char *stream;        /* stream name from the descriptor */
    int full_refresh;          /* non-zero: ignore cursors, re-read everything */
    int attempt;               /* 1 for the first try */
    int64_t backfill_since_us; /* no cursor: start here (unix µs) */
    /* Incremental runs: re-read this much before the cursor (µs) so records
     * committed late at the provider are not missed; dedupe keys make the
     * overlap free. Check hdr.struct_size before reading it. */
    int64_t lookback_us;
} ingest_job;

/* A verified, durably stored webhook delivery. Borrowed: valid until the
 * webhook callback returns. */
typedef struct ingest_header {
    const char *name;
    const char *value;
} ingest_header;

typedef struct ingest_delivery {
    ingest_abi_header hdr;
    const char *delivery_id;   /* idempotency key (provider id or body SHA-256) */
    const char *tenant_id;     /* uuid text; NULL for single-tenant set-ups */
    const char *connection_id; /* uuid text or NULL */
    const char *content_type;
    const unsigned char *body; /* raw bytes, not NUL-terminated */
    size_t body_len;
    const ingest_header *headers; /* the headers that were stored */
    size_t n_headers;
    int64_t received_at_us;
    int attempt;
    /* ABI minor 2 (check INGEST_STRUCT_HAS(delivery, remote_addr)): the
     * sender's IP address as the host saw it (a proxy's when one is in
     * front; its X-Forwarded-For is among the headers), or NULL. */
    const char *remote_addr;
} ingest_delivery;

/* A normalized record. Passed by pointer to api->emit(); the host copies it
 * before returning. */
typedef struct ingest_signal {
    ingest_abi_header hdr;
    const char *kind;            /* required, e.g. "pr_merged" */
    const char *dedupe_key;      /* required; unique per (tenant, source) */
    int64_t occurred_at_us;      /* required, unix epoch microseconds */
    const char *payload_json;    /* required JSON object text (normalized fields) */
    const char *raw_json;        /* optional: the provider's record as JSON */
    const char *tenant_id;       /* optional: defaults to the run's tenant */
    const char *source_id;       /* provenance: the record's id at the provider */
    const char *source_type;     /* provenance: e.g. "issue", "s3", "http" */
    const char *source_uri;      /* provenance: URL or URI of the record */
    const char *provenance_json; /* optional extra provenance fields (JSON object) */
} ingest_signal;

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

typedef enum ingest_log_level {
    INGEST_LOG_DEBUG = 0,
    INGEST_LOG_INFO,
    INGEST_LOG_WARN,
    INGEST_LOG_ERROR,
} ingest_log_level;

typedef enum ingest_health_state {
    INGEST_HEALTH_OK = 0,
    INGEST_HEALTH_DEGRADED,
    INGEST_HEALTH_FAILING,
} ingest_health_state;

struct ingest_host_api;

/* A scheduled tick. Runs on a worker; run is borrowed. Return INGEST_OK, or a
 * negative status (the host logs it, counts it and backs the schedule off). */
typedef int (*ingest_tick_fn)(ingest_run *run, void *state, void *arg);

typedef struct ingest_plugin {
    ingest_abi_header hdr; /* INGEST_ABI_HEADER(struct ingest_plugin) */

    const char *name;        /* [a-z0-9_]+; must match the file name ingest_<name>.so */
    const char *version;     /* semantic version of the plugin */
    const char *description; /* one line */

    ingest_auth_spec auth;
    const ingest_stream *streams; /* use INGEST_ARRAY(); may be NULL with 0 */
    size_t n_streams;
    size_t stream_size;
    ingest_webhook_spec webhook;
    ingest_rate_limit rate_limit;

    const ingest_config_field *config; /* use INGEST_ARRAY(); may be NULL with 0 */
    size_t n_config;
    size_t config_field_size;
    size_t conf_size; /* sizeof the plugin's conf struct filled by the host */

    /* Required. Called once after config validation. `api` is valid until the
     * plugin is unloaded (it may be stored in state). `ctx` is valid until
     * shutdown() returns. `conf` points to the host-filled conf struct, valid
     * until shutdown() returns. On success set *state (may be NULL); on
     * failure return a negative status and describe it with api->set_error().
     * Schedules and metrics may only be registered here. */
    int (*init)(const struct ingest_host_api *api, ingest_ctx *ctx, const void *conf, void **state);

    /* Optional. Called once when the instance is unloaded, after all of its
     * work has drained. Frees everything in state. */
    void (*shutdown)(void *state);

    /* Optional. Cheap self-check; write at most detail_len bytes of a reason
     * into detail (NUL-terminated). */
    ingest_health_state (*health)(void *state, char *detail, size_t detail_len);

    /* Optional. Pull records for one stream of one connection. Emit signals
     * and advance the cursor page by page with api->cursor_set(). Return
     * INGEST_ERATELIMITED to be rescheduled without a failed attempt,
     * INGEST_EAUTH when the provider refused the credentials (the job ends
     * at once as dead: retrying would be refused the same way), any other
     * negative status to be retried with backoff. */
    int (*sync)(ingest_run *run, void *state, const ingest_job *job);

    /* Optional. Turn one stored, verified delivery into signals. */
    int (*handle_webhook)(ingest_run *run, void *state, const ingest_delivery *delivery);

    /* Optional, for INGEST_WEBHOOK_CALLBACK: verify a delivery before it is
     * stored. Runs on a worker. Return INGEST_OK to accept, INGEST_EAUTH to
     * reject. All pointers are borrowed for the duration of the call. */
    int (*verify_webhook)(void *state, const ingest_header *headers, size_t n_headers,
                          const unsigned char *body, size_t body_len, const char *secret);

    /* Optional. Runs on a worker for every verified delivery before it is
     * stored, so set it only if the provider has handshakes (Slack
     * url_verification, Google channel "sync" messages). Return 1 after
     * filling `reply` to answer the request yourself (nothing is stored), 0
     * to store and process the delivery normally. `delivery` is borrowed for
     * the call; its delivery_id is the computed idempotency key and
     * attempt is 0. */
    int (*webhook_handshake)(void *state, const ingest_delivery *delivery,
                             ingest_webhook_reply *reply);

    /* Optional. Test new credentials before the host accepts a connection
     * (REST POST /connections). Runs on a worker with a run bound to the
     * connection being created: api->secret_get and api->http_request with
     * INGEST_HTTP_AUTH_CONNECTION see its secrets, and its tenant and
     * connection id are the new connection's. The connection is not active
     * (no sync, no webhook) while this runs; it is kept only when this
     * returns INGEST_OK and removed otherwise. Return INGEST_EAUTH when the
     * provider refused the credentials, INGEST_EIO/INGEST_EAGAIN/
     * INGEST_ERATELIMITED when it could not be asked; describe the failure
     * with api->set_error() if useful (no secrets in it). `run` is borrowed
     * for the call. Without this callback connections are stored unchecked. */
    int (*check_connection)(ingest_run *run, void *state);

    /* --- ABI minor 2 --------------------------------------------------- */

    /* Further auth kinds a connection of this plugin may use besides
     * auth.kind, as INGEST_AUTH_BIT(INGEST_AUTH_OAUTH2) | ... (GitHub: a
     * personal access token, an OAuth app or a GitHub App). A connection's
     * own auth kind (connections.auth_kind, chosen when it is created;
     * default auth.kind) decides which credentials
     * INGEST_HTTP_AUTH_CONNECTION adds: those listed there for its kind, and
     * for INGEST_AUTH_APP "Authorization: Bearer <secret access_token>",
     * minted by mint_token when missing or about to expire and once after a
     * 401. A connection of a kind the plugin does not accept gets
     * INGEST_EUNSUPPORTED. With OAUTH2 among these kinds, fill auth's
     * authorize_url, token_url, scopes and pkce as an OAUTH2 plugin does.
     * Kinds unknown to the host are ignored. 0 = auth.kind only (and then
     * every connection uses auth.kind, whatever it was stored with). */
    unsigned auth_kinds_also;

    /* Required when INGEST_AUTH_APP is among the plugin's kinds. Mint a new
     * access token for the run's connection from its app credentials (read
     * them with api->secret_get, sign assertions with api->jwt_sign_rs256)
     * and store it with api->secret_put(run, "access_token", token,
     * expires_at_us); wipe the token from plugin memory afterwards. The host
     * calls it on a worker, one call at a time per connection, before a
     * request with INGEST_HTTP_AUTH_CONNECTION when the stored token is
     * missing or expires within oauth_refresh_threshold_s, and once after a
     * 401 from the provider. Return INGEST_EAUTH when the provider refused
     * the app credentials (the connection becomes needs_reauth), another
     * negative status for transient failures. Returning INGEST_OK without
     * storing an access_token counts as a failure (INGEST_EIO). Inside
     * mint_token, api->http_request must use INGEST_HTTP_AUTH_NONE (the
     * plugin sets the assertion header itself): INGEST_HTTP_AUTH_CONNECTION
     * fails with INGEST_ESTATE. A plugin that accepts INGEST_AUTH_APP
     * without mint_token is refused at load. `run` is borrowed. */
    int (*mint_token)(ingest_run *run, void *state);

    /* --- ABI minor 3 --------------------------------------------------- */

    /* Optional, for OAUTH2 connections. Called once after the host has
     * exchanged an authorization code (GET /connect/{provider}/callback) and
     * stored the access and refresh tokens, with a run bound to the new
     * connection, which is not active yet (check_connection is not called
     * for these connections: the provider has just issued the tokens).
     * `token_reply_json` is the token endpoint's reply as it came (borrowed
     * for the call; it holds credentials: never log or keep it). Use it to
     * keep what a provider returns beyond the standard fields (Slack's
     * authed_user.access_token: api->secret_put) and to look up what the
     * connection needs before it can be used (Atlassian's cloud id:
     * api->http_request with INGEST_HTTP_AUTH_CONNECTION, then
     * api->connection_config_merge). Return INGEST_OK to go on; any other
     * status is answered as check_connection's is (INGEST_EAUTH: 422), and
     * the connection is removed. */
    int (*on_authorized)(ingest_run *run, void *state, const char *token_reply_json);

    /* How stored deliveries are acknowledged; 0 = INGEST_WEBHOOK_ACK_DEFAULT.
     * Refusals (401, 413, 503, ...) are problem+json whatever this says. */
    ingest_webhook_ack webhook_ack;
} ingest_plugin;

/* ------------------------------------------------------------------------ */
/* Outbound HTTP (ABI minor 1)                                               */
/* ------------------------------------------------------------------------ */

/* Who puts credentials on a request made with api->http_request. */
typedef enum ingest_http_auth {
    /* The plugin sets its own headers (or needs none). */
    INGEST_HTTP_AUTH_NONE = 0,
    /* The host adds the run's connection credentials, by the connection's
     * auth kind (the plugin's auth.kind unless it accepts others, see
     * auth_kinds_also), so a token never passes through plugin memory:
     *   INGEST_AUTH_OAUTH2  Authorization: Bearer <secret "access_token">;
     *                       a 401 forces one token refresh and one retry;
     *   INGEST_AUTH_TOKEN   Authorization: Bearer <secret "token">, or of
     *                       secret "api_key" when there is no "token";
     *   INGEST_AUTH_BASIC   HTTP basic auth from secrets "username" and
     *                       "password";
     *   INGEST_AUTH_APP     Authorization: Bearer <secret "access_token">,
     *                       minted by the plugin's mint_token (minor 2);
     *   INGEST_AUTH_AWS     AWS Signature V4 in the scope req->aws_sigv4
     *                       names (minor 2) from secrets "access_key_id",
     *                       "secret_access_key" and optional
     *                       "session_token", or, when the connection has
     *                       none of the three, from the daemon's
     *                       AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
     *                       AWS_SESSION_TOKEN; a 401, or a 403 whose body
     *                       names a credential error (InvalidAccessKeyId,
     *                       SignatureDoesNotMatch, ExpiredToken, ...), is
     *                       INGEST_EAUTH.
     * Any Authorization header in req->headers is dropped. Other kinds (and
     * a run without a connection) fail with INGEST_EUNSUPPORTED /
     * INGEST_ENOTFOUND. */
    INGEST_HTTP_AUTH_CONNECTION = 1,
} ingest_http_auth;

/* One request. Borrowed by api->http_request for the call: every pointer
 * (and what it points to) only has to stay valid until the call returns. */
typedef struct ingest_http_request {
    ingest_abi_header hdr;        /* INGEST_ABI_HEADER(ingest_http_request) */
    const char *method;           /* "GET" (also when NULL), "POST", ... */
    const char *url;              /* required, absolute http(s) URL */
    const ingest_header *headers; /* extra request headers; may be NULL with 0 */
    size_t n_headers;
    const void *body; /* request body; may be NULL with 0 */
    size_t body_len;
    ingest_http_auth auth;     /* INGEST_HTTP_AUTH_NONE or _CONNECTION */
    uint32_t timeout_ms;       /* per attempt; 0 = host default (60 s) */
    size_t max_response_bytes; /* decoded body cap; 0 = host default (64 MiB) */

    /* --- ABI minor 2 (the host reads these only when hdr.struct_size
     * covers them, so a minor-1 plugin's request is unchanged) ---------- */

    /* The AWS Signature V4 scope "provider1[:provider2[:region[:service]]]"
     * (curl's CURLOPT_AWS_SIGV4), e.g. "aws:amz:us-east-1:s3". Required
     * with INGEST_HTTP_AUTH_CONNECTION on a connection of auth kind
     * INGEST_AUTH_AWS (INGEST_EINVAL without it), and only allowed there
     * (INGEST_EINVAL otherwise: the host signs only with connection
     * credentials). The host adds x-amz-content-sha256 (the body's SHA-256)
     * unless req->headers has one, and x-amz-security-token when there is
     * a session token; both are signed. Curl signs the URL as given, so
     * give the query parameters sorted by name and every value
     * percent-encoded as RFC 3986 says (A-Z a-z 0-9 - . _ ~ as they are,
     * all else %XX in upper case), and the path encoded the same way
     * ('/' kept): then the signed text is the canonical one. */
    const char *aws_sigv4;

    /* Optional body sink, for responses too large to buffer (an S3 object).
     * When set, the body of a 2xx final response is handed to on_body in
     * the order it arrives, decoded (gzip, ...), in chunks of any size,
     * instead of being collected: the response's body is then "" and its
     * body_len the number of bytes delivered, and max_response_bytes does
     * not apply. The body of any other status (an error document, a 3xx
     * that was not followed) is buffered as usual, so check status first.
     * `data` is borrowed for the call; `on_body_arg` is passed back
     * untouched. on_body runs on the calling worker, inside
     * api->http_request, before it returns; it may call the run's signal,
     * cursor and reject functions (api->emit, api->cursor_set, ...) but not
     * api->http_request (INGEST_ESTATE). Return 0 to go on; any other value
     * stops the transfer and http_request returns INGEST_ECANCELED with
     * body_len counting the bytes accepted before that chunk (keep your own
     * reason). Retries: until the first byte reaches on_body the host
     * retries as usual; after that it never retries, and a transfer cut
     * later (INGEST_EIO, status and headers of the cut response kept) is
     * the plugin's to resume, e.g. with "Range: bytes=<next>-". Timeouts:
     * timeout_ms (0 = 60 s) is not a total but a stall limit: the
     * transfer fails when no byte arrives for that long (waiting for the
     * response included), however long it runs in all. Time spent inside
     * on_body does not count. */
    int (*on_body)(void *arg, const void *data, size_t len);
    void *on_body_arg;

    /* --- ABI minor 3 --------------------------------------------------- */

    /* A quota of its own for this request, for providers that limit each
     * method separately (Slack's tiers: conversations.history 50/min,
     * users.list 20/min, ...). Requests naming the same bucket are metered
     * per connection against rate_bucket_limit (at the host's share of it)
     * instead of the plugin's rate_limit, and a 429's Retry-After or the
     * reported X-RateLimit-* quota holds only that bucket. NULL = the
     * plugin's quota. `rate_bucket` is [A-Za-z0-9._-]{1,64} (INGEST_EINVAL
     * otherwise); rate_bucket_limit.requests == 0 leaves only what the
     * provider's headers and Retry-After say. */
    const char *rate_bucket;
    ingest_rate_limit rate_bucket_limit;
} ingest_http_request;

/* What came back. Host-allocated by api->http_request and owned by the
 * plugin until it passes it to api->http_response_free(); every pointer in
 * it lives exactly as long as the response. Read-only for the plugin. The
 * host's hdr.struct_size tells a newer plugin which members exist. */
typedef struct ingest_http_response {
    ingest_abi_header hdr;
    long status;                  /* final HTTP status; 0 when no response arrived */
    const ingest_header *headers; /* the final response's headers, arrival order */
    size_t n_headers;
    const char *body;       /* never NULL; NUL-terminated for convenience */
    size_t body_len;        /* without the terminating NUL */
    int64_t retry_after_ms; /* the final response's Retry-After; -1 = none */
    int64_t wait_ms;        /* with INGEST_ERATELIMITED: wait this long; else 0 */
    int attempts;           /* transfers made, retries included */
    const char *error;      /* "" or why the call failed; never a credential */
    const char *url;        /* the request's URL (base for relative links) */
} ingest_http_response;

/* ------------------------------------------------------------------------ */
/* The host API table                                                        */
/* ------------------------------------------------------------------------ */

/* const, append-only. Valid from init() until the plugin is unloaded. */
typedef struct ingest_host_api {
    ingest_abi_header hdr;

    /* --- Logging --------------------------------------------------------
     * One JSON object per line, tagged with the plugin's name (and the run's
     * tenant/job/delivery when a run is given). Values of SECRET config keys
     * are redacted from the message. `run` may be NULL. Arguments are
     * borrowed for the call. */
    void (*log)(ingest_ctx *ctx, ingest_run *run, ingest_log_level level, const char *fmt, ...)
        INGEST_PRINTF(4, 5);

    /* Describe the last failure of init() (or a callback) in words; shown in
     * `ingest-hostctl list` and the log. Copied. */
    void (*set_error)(ingest_ctx *ctx, const char *fmt, ...) INGEST_PRINTF(2, 3);

    /* Release memory the host allocated for the plugin (cursor values,
     * encoded strings). NULL is a no-op. */
    void (*free)(void *ptr);

    /* --- Scheduling -----------------------------------------------------
     * Register a tick every interval_ms milliseconds (first tick after one
     * interval, ±10 % jitter). Only inside init(); INGEST_ESTATE elsewhere.
     * `name` is copied; `arg` is passed back to fn untouched. Returns a status. */
    int (*schedule_every)(ingest_ctx *ctx, const char *name, uint32_t interval_ms,
                          ingest_tick_fn fn, void *arg);

    /* --- Signals and cursors --------------------------------------------
     * Queue a signal in the run. The signal and its strings are copied.
     * Queued signals become durable at the next cursor_set()/flush(), or when
     * the callback returns INGEST_OK; they are discarded if it fails. A
     * signal whose (tenant, source, dedupe_key) already exists is a no-op. */
    int (*emit)(ingest_run *run, const ingest_signal *signal);

    /* Read the committed cursor of `stream` for the run's connection.
     * On success *value is a host-allocated NUL-terminated string (free with
     * api->free) or NULL when no cursor exists yet. Blocks on the store. */
    int (*cursor_get)(ingest_run *run, const char *stream, char **value);

    /* Commit every queued signal and the new cursor value in one transaction,
     * blocking until it is durable. A crash never leaves signals without the
     * cursor or the cursor without its signals. A cursor never moves back:
     * when the stored and the new value are both integers, or both RFC 3339
     * timestamps, an older new value is ignored (the signals still commit).
     * Other values are opaque and always replace the stored one. `value` is
     * copied. */
    int (*cursor_set)(ingest_run *run, const char *stream, const char *value);

    /* Commit queued signals without moving any cursor. Blocks until durable. */
    int (*flush)(ingest_run *run);

    /* --- Metrics --------------------------------------------------------
     * Register a metric, exported as ingest_plugin_<name> with a label
     * plugin="<plugin name>". Only inside init(). Names and help are copied.
     * The returned handle is host-owned and valid until unload. Histogram
     * bucket bounds are copied; NULL/0 picks default latency buckets. */
    ingest_metric *(*metric_counter)(ingest_ctx *ctx, const char *name, const char *help);
    ingest_metric *(*metric_gauge)(ingest_ctx *ctx, const char *name, const char *help);
    ingest_metric *(*metric_histogram)(ingest_ctx *ctx, const char *name, const char *help,
                                       const double *bounds, size_t n_bounds);
    void (*metric_add)(ingest_metric *metric, double delta);     /* counter, gauge */
    void (*metric_set)(ingest_metric *metric, double value);     /* gauge */
    void (*metric_observe)(ingest_metric *metric, double value); /* histogram */

    /* --- Utilities ------------------------------------------------------ */
    /* Current wall-clock time, unix epoch microseconds. */
    int64_t (*now_us)(void);
    /* Lower-case hex SHA-256 of data into out[65] (NUL-terminated). */
    void (*sha256_hex)(const void *data, size_t len, char out[65]);
    /* Lower-case hex HMAC-SHA256 into out[65]. */
    void (*hmac_sha256_hex)(const void *key, size_t key_len, const void *data, size_t len,
                            char out[65]);
    /* Parse an RFC 3339 / ISO 8601 timestamp into unix µs; INGEST_EINVAL if malformed. */
    int (*parse_time)(const char *text, int64_t *out_us);
    /* Format unix µs as RFC 3339 UTC with microseconds into out[32]. */
    void (*format_time)(int64_t us, char out[32]);

    /* --- Secrets --------------------------------------------------------
     * Decrypt one secret ("access_token", "refresh_token", "api_key", ...)
     * of the run's connection. Only the connection the run belongs to, and
     * only if it is a connection of this plugin, can be read. On success
     * *value is a host-allocated NUL-terminated string: release it with
     * api->secret_free (which wipes it) as soon as it is used, and never log
     * it. INGEST_ENOTFOUND when the connection has no such secret (or the
     * run has no connection), INGEST_EAUTH when it cannot be decrypted. */
    int (*secret_get)(ingest_run *run, const char *field, char **value);
    void (*secret_free)(char *value);

    /* --- HTTP (ABI minor 1) ---------------------------------------------
     * Perform one request on the calling worker, blocking until it is done.
     * `req` is copied (borrowed for the call only). The host meters it
     * against the plugin's declared rate_limit (a configurable share of it,
     * per connection), honours X-RateLimit-* / RateLimit-* / Retry-After,
     * retries 429/502/503/504 and transport errors with backoff, applies
     * timeouts and the size cap, and stops when the host shuts down.
     * On return *resp is NULL or a host-allocated response, whatever the
     * status: release it with api->http_response_free.
     *  INGEST_OK           a response arrived (any HTTP status: check it);
     *  INGEST_ERATELIMITED the wait is too long to hold a worker; (*resp)->
     *                      wait_ms says how long. Returning INGEST_ERATELIMITED
     *                      from sync then reschedules the job for that time
     *                      without counting a failed attempt;
     *  INGEST_EIO          transport failure after the retries, or too large;
     *  INGEST_EAUTH        AUTH_CONNECTION: the credentials were refused;
     *  INGEST_ECANCELED    the host is shutting down;
     *  INGEST_EINVAL / ENOTFOUND / EUNSUPPORTED / ENOMEM as usual. */
    int (*http_request)(ingest_run *run, const ingest_http_request *req,
                        ingest_http_response **resp);
    /* Release a response and everything it points to. NULL is a no-op. */
    void (*http_response_free)(ingest_http_response *resp);
    /* Value of response header `name` (case-insensitive; the last one wins)
     * or NULL. Borrowed: valid until the response is freed. */
    const char *(*http_header)(const ingest_http_response *resp, const char *name);
    /* The Link header's rel="next" target, resolved against the request
     * URL. *url is host-allocated (free with api->free), or NULL with
     * INGEST_OK on the last page. */
    int (*http_next_link)(const ingest_http_response *resp, char **url);
    /* The value at a dotted `path` into the JSON body ("meta.next_cursor";
     * an all-digit segment indexes an array). *value is host-allocated
     * (free with api->free), or NULL with INGEST_OK when the path is absent,
     * null or "" (the last page); numbers come back as their text.
     * INGEST_EINVAL when the body is not JSON. `path` is borrowed. */
    int (*json_cursor)(const ingest_http_response *resp, const char *path, char **value);
    /* `url` with query parameter `name` set to `value` (URL-encoded by the
     * host; earlier occurrences removed), for page/offset/cursor params.
     * Arguments are borrowed; *out is host-allocated (free with api->free). */
    int (*url_with_param)(const char *url, const char *name, const char *value, char **out);
    /* The plugin was rate limited by other means and knows how long to
     * wait: ms > 0 from now. Returning INGEST_ERATELIMITED from sync then
     * reschedules the job for that time without counting a failure. */
    int (*retry_after)(ingest_run *run, int64_t ms);

    /* --- Sync requests (ABI minor 1) -------------------------------------
     * Ask for an incremental sync of `stream` (NULL: every stream) of the
     * run's connection as soon as a worker is free, e.g. because a webhook
     * says the provider's data changed and a missed delivery should heal.
     * Does not wait for the job. A stream that already has a queued job
     * gets no second one. `stream` is copied. INGEST_ENOTFOUND when the run
     * has no connection or the plugin declares no such stream (or no sync
     * callback); INGEST_EAGAIN when the request could not be queued. */
    int (*request_sync)(ingest_run *run, const char *stream);

    /* --- Minted credentials (ABI minor 2) -------------------------------
     * Sign a JSON Web Token with RS256 using the PEM private key held in
     * secret `key_field` of the run's connection; the key never leaves the
     * host. The header is {"alg":"RS256","typ":"JWT"}; `claims_json` (a
     * JSON object text, borrowed) is the payload as given. *jwt is
     * host-allocated: release it with api->secret_free. INGEST_ENOTFOUND
     * without that secret, INGEST_EINVAL when it is not an unencrypted PEM
     * RSA private key (PKCS#1 or PKCS#8) of at least 2048 bits, or
     * claims_json is not a JSON object (at most 64 KiB). */
    int (*jwt_sign_rs256)(ingest_run *run, const char *key_field, const char *claims_json,
                          char **jwt);
    /* Store a credential the plugin obtained (encrypted like every secret)
     * for the run's connection, with its expiry in unix µs (0 = none). For
     * mint_token; `field` and `value` are copied. Only the run's own
     * connection, and only if it is a connection of this plugin. `field` is
     * [a-z0-9_]{1,64}, `value` non-empty (at most 64 KiB). expires_at_us > 0
     * sets the connection's token expiry (which the host reads as the
     * access token's); storing "access_token" with 0 clears it; another
     * field with 0 leaves it. INGEST_EINVAL, INGEST_ENOTFOUND (no such
     * connection of this plugin, or no connection), INGEST_EIO. */
    int (*secret_put)(ingest_run *run, const char *field, const char *value, int64_t expires_at_us);

    /* --- Connection settings (ABI minor 2) ------------------------------
     * The run's connection's own settings, as given when it was created
     * (REST POST /connections "config", e.g. {"repositories": ["a/b"]}):
     * *json is a host-allocated JSON object text ("{}" when there are
     * none; free with api->free). Read it once per job or delivery; it
     * blocks on the store. INGEST_ENOTFOUND when the run has no
     * connection. */
    int (*connection_config)(ingest_run *run, char **json);

    /* --- Rejected records (ABI minor 2) ---------------------------------
     * Record one input the plugin could not turn into a signal (a
     * malformed CSV row, an event without a required field): it becomes a
     * dead letter of kind "record" of the run's connection, with `error`
     * (why, in words; never a secret) and `detail_json` (a JSON object that
     * locates it, e.g. {"object": "s3://b/k.csv", "line": 17, "column":
     * "amount", "text": "..."}). Queued like a signal: it is committed
     * with the run's next cursor_set/flush or final commit, in the same
     * transaction, so a resumed import never records it twice and a run
     * that fails records nothing. Both strings are copied.
     * `ingest-hostctl deadletters` lists these; they are not replayed (fix
     * the source and sync again). INGEST_EINVAL when detail_json is not a
     * JSON object. */
    int (*reject)(ingest_run *run, const char *error, const char *detail_json);

    /* --- Connection settings, written (ABI minor 3) ---------------------
     * Merge the members of `json_object` (a JSON object text, copied) into
     * the run's connection's settings, top-level keys replacing those of the
     * same name, a null value removing its key; the result is what
     * api->connection_config returns from then on. For what a plugin learns
     * about a connection and should not ask again (Atlassian's cloud id and
     * site URL, a Slack workspace's team id); never for credentials (use
     * api->secret_put). Only the run's own connection, and only if it is a
     * connection of this plugin. Blocks on the store. INGEST_EINVAL when the
     * text is not a JSON object (at most 64 KiB), INGEST_ENOTFOUND without
     * such a connection, INGEST_EIO when the store failed. */
    int (*connection_config_merge)(ingest_run *run, const char *json_object);

    /* --- Deliveries of many accounts on one URL (ABI minor 3) -----------
     * A provider app installed in many accounts often posts every account's
     * events to one URL (a Slack app's Request URL): the connection-less
     * route /webhooks/{provider}, verified with the plugin group's
     * webhook_secret. In handle_webhook, bind such a delivery's run to the
     * one active connection of this plugin whose setting `setting` is the
     * string `value` (e.g. "team_id" = the event's team, kept by
     * on_authorized with connection_config_merge); the signed body vouches
     * for the value. From then on the run is that connection's: its
     * tenant, secrets, settings, credentials and signals. Its id is copied
     * into connection_id. Call it before anything is emitted or rejected.
     * Both strings are borrowed. INGEST_ENOTFOUND when no active connection
     * matches (go on without one), INGEST_EINVAL when several do or an
     * argument is bad, INGEST_ESTATE when the run has a connection already,
     * is not a delivery's or has queued signals, INGEST_EIO. */
    int (*connection_route)(ingest_run *run, const char *setting, const char *value,
                            char connection_id[37]);
} ingest_host_api;

/* True when the host's table is new enough to carry `member` and fills it. */
#define INGEST_API_HAS(api, member)                                                                \
    ((api)->hdr.struct_size >= offsetof(struct ingest_host_api, member) + sizeof((api)->member) && \
     (api)->member != NULL)

/* The entry point every plugin defines:
 *     INGEST_EXPORT const ingest_plugin *ingest_plugin_v1(void) { return &descriptor; }
 * The returned descriptor must be static and outlive the plugin's use. */
typedef const ingest_plugin *(*ingest_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif /* INGEST_PLUGIN_H */
