/*
 * ingest/helpers.h — optional plugin-side helpers for connector authors.
 *
 * A static library (ingest_helpers, sources in sdk/helpers/) that a plugin
 * links into its own .so; nothing here is part of the host ABI, so using it
 * never ties a plugin to a host version beyond plugin.h. It covers the parts
 * every REST connector repeats:
 *
 *   1. JSON (json-c) field getters by dotted path ("pull_request.user.login");
 *   2. building and emitting a signal from json-c objects with provenance;
 *   3. small HTTP utilities: webhook header lookup, status mapping, a safe
 *      one-line description of a failed response;
 *   4. a paginated GET loop that follows Link rel="next" and keeps an ETag
 *      per walk in a cursor, so an unchanged listing costs one 304;
 *   5. timestamp-cursor bookkeeping (lookback, backfill, resumable
 *      newest-first walks) on top of api->cursor_get / cursor_set.
 *
 * Rules (the same as plugin.h):
 *  - No function keeps state between calls except what the caller passes in;
 *    every function is safe to call from any worker thread as long as the
 *    objects passed to it are not shared with another thread.
 *  - Borrowed: pointer arguments only have to stay valid for the call,
 *    unless a comment says otherwise.
 *  - Results the caller owns say how to release them. The library itself
 *    allocates with malloc/free only; host-allocated strings never escape
 *    it (they are copied and released with api->free internally).
 *  - Status codes are ingest_status values (0 OK, negative failure); the
 *    pager adds the positive INGEST_PAGE_STOP for its callback.
 *
 * Build: `dependencies : ingest_helpers_dep` in the plugin's meson.build (it
 * brings json-c and the SDK include directory).
 */
#ifndef INGEST_HELPERS_H
#define INGEST_HELPERS_H

#include <json-c/json.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* 1. JSON by dotted path                                                    */
/* ------------------------------------------------------------------------ */

/* Paths are member names separated by '.'; an all-digit segment indexes an
 * array ("commits.0.id"). An empty or NULL path names `root` itself. Member
 * names containing '.' cannot be addressed. */

/* The value at `path` under `root`, or NULL when a segment is missing, a
 * parent is not an object/array, or the value is JSON null. Borrowed from
 * `root`: valid while root is (no reference is taken). */
json_object *ingest_json_get(json_object *root, const char *path);

/* The string at `path`, or NULL when absent or not a string. Borrowed from
 * `root` like ingest_json_get. */
const char *ingest_json_str(json_object *root, const char *path);

/* 1 and *out set when the value at `path` is an integer (or a string of
 * decimal digits, as some APIs send ids); 0 otherwise (*out untouched). */
int ingest_json_int64(json_object *root, const char *path, int64_t *out);

/* 1 when the value at `path` is boolean true, else 0 (absent, null, false,
 * any other type). */
int ingest_json_true(json_object *root, const char *path);

/* The RFC 3339 timestamp string at `path` in unix µs, parsed with
 * api->parse_time (integers are taken as unix seconds). INGEST_OK,
 * INGEST_ENOTFOUND when absent/null, INGEST_EINVAL when malformed. */
int ingest_json_time(const ingest_host_api *api, json_object *root, const char *path,
                     int64_t *out_us);

/* dst[key] = a reference to the value at `path` under `src` (JSON null when
 * absent): `dst` takes a new reference, so src and dst stay independent
 * owners. `key` is copied. Returns 0, or -1 on allocation failure. */
int ingest_json_copy(json_object *dst, const char *key, json_object *src, const char *path);

/* dst[key] = a new JSON string holding a copy of `value`, or JSON null when
 * `value` is NULL. Nothing of `value` or `key` is kept. Returns 0, or -1 on
 * allocation failure. */
int ingest_json_put_str(json_object *dst, const char *key, const char *value);

/* Parse `len` bytes (need not be NUL-terminated) as JSON (json-c with
 * JSON_TOKENER_STRICT: no trailing commas, comments or bare words): one value
 * and nothing but whitespace after it. The caller owns the result and
 * releases it with json_object_put(); NULL when the text is not JSON (a
 * literal `null` also gives NULL). */
json_object *ingest_json_parse(const void *text, size_t len);

/* Serialize `o` compactly (no spaces, '/' not escaped) into a malloc'd
 * string the caller frees with free(); NULL on allocation failure. */
char *ingest_json_text(json_object *o);

/* ------------------------------------------------------------------------ */
/* 2. Signals from json-c objects                                            */
/* ------------------------------------------------------------------------ */

/* A signal whose payload (and optionally raw record and provenance) are
 * json-c objects. Every pointer is borrowed for the call of
 * ingest_emit_json; the host copies what it keeps. */
typedef struct ingest_json_signal {
    const char *kind;        /* required, e.g. "pr_merged" */
    const char *dedupe_key;  /* required; unique per (tenant, source) */
    int64_t occurred_at_us;  /* unix µs; 0 = now (api->now_us) */
    json_object *payload;    /* required: a JSON object (normalized fields) */
    json_object *raw;        /* optional: the provider's record, serialized for raw_json */
    const char *raw_text;    /* optional alternative to raw: NUL-terminated JSON text used as
                                is (e.g. a webhook body); ignored when raw is set */
    const char *tenant_id;   /* optional: defaults to the run's tenant */
    const char *source_id;   /* provenance: the record's id at the provider */
    const char *source_type; /* provenance: e.g. "pull_request" */
    const char *source_uri;  /* provenance: URL of the record */
    json_object *provenance; /* optional extra provenance fields (a JSON object) */
} ingest_json_signal;

/* Serialize and api->emit() one signal. Returns api->emit's status, or
 * INGEST_EINVAL (missing kind/key, payload not an object), INGEST_ENOMEM.
 * The serialized texts are freed before returning. */
int ingest_emit_json(const ingest_host_api *api, ingest_run *run, const ingest_json_signal *sig);

/* ------------------------------------------------------------------------ */
/* 3. HTTP utilities                                                         */
/* ------------------------------------------------------------------------ */

/* Value of the delivery's header `name` (case-insensitive, the last one
 * wins) or NULL. Borrowed from the delivery: valid until the webhook
 * callback returns. */
const char *ingest_delivery_header(const ingest_delivery *d, const char *name);

/* The usual meaning of a final HTTP status for a connector:
 * 2xx and 304 -> INGEST_OK; 401 -> INGEST_EAUTH; 403, 404, 410 ->
 * INGEST_ENOTFOUND (no access to, or no such, resource); 429 ->
 * INGEST_ERATELIMITED; 408, 5xx -> INGEST_EAGAIN; anything else (including
 * 0 = no response) -> INGEST_EIO. */
int ingest_http_status_rc(long status);

/* A one-line description of a response for logs and errors, never a
 * credential: "HTTP 404: Not Found" using the JSON body's "message" (or
 * "error_description"/"error") member when there is one, printable ASCII
 * only, truncated to fit `len` (at most 160 characters of message). `resp`
 * may be NULL ("no response"). Writes a NUL-terminated string into out. */
void ingest_http_describe(const ingest_http_response *resp, char *out, size_t len);

/* The value of field `name` in an application/x-www-form-urlencoded body of
 * `len` bytes (need not be NUL-terminated), percent- and '+'-decoded, as a
 * malloc'd NUL-terminated string the caller frees with free(); NULL when
 * the field is absent (or on allocation failure). The first occurrence
 * wins. */
char *ingest_form_value(const void *body, size_t len, const char *name);

/* Every field of an application/x-www-form-urlencoded body of `len` bytes
 * (need not be NUL-terminated) as a JSON object of strings, the WHATWG
 * way ('&' between pairs, the first '=' splits, '+' a space, %XX a byte, a
 * bare name an empty value, the first of repeated names wins), for a
 * provider that posts forms (Slack's slash commands). Stricter than a
 * browser: a malformed escape, a %00 or an empty name gives NULL, as a
 * signed body never holds one. The caller owns the result
 * (json_object_put); NULL also on allocation failure. */
json_object *ingest_form_parse(const void *body, size_t len);

/* ------------------------------------------------------------------------ */
/* 4. Paginated GET with Link rel="next" and an ETag per walk                */
/* ------------------------------------------------------------------------ */

/* Returned by a page callback to end the walk early without an error. */
#define INGEST_PAGE_STOP 1

/* One page as the callback sees it. Borrowed: valid until the callback
 * returns, except that the callback may replace the next URL with
 * ingest_page_set_next(). */
typedef struct ingest_page {
    int index;                        /* 0 for the first page of the walk */
    const char *url;                  /* the URL that was fetched */
    const ingest_http_response *resp; /* the response (status 200..299 or 304) */
    json_object *body;                /* the parsed JSON body; NULL on 304 */
    int not_modified;                 /* 1: the first page answered 304 to our ETag; the
                                         walk ends after this callback */
    const char *next_url;             /* Link rel="next" target, or NULL on the last page */
    char *next_override_;             /* private: set by ingest_page_set_next() */
    int next_set_;                    /* private */
} ingest_page;

/* The walk continues with `url` (copied) instead of next_url; NULL ends the
 * walk after this page. Returns INGEST_OK or INGEST_ENOMEM. */
int ingest_page_set_next(ingest_page *page, const char *url);

/* Called once per page in order. Return INGEST_OK to go on, INGEST_PAGE_STOP
 * to end the walk successfully, or a negative status to abort it (returned
 * by ingest_pager_run). `arg` is ingest_pager.arg. */
typedef int (*ingest_page_fn)(void *arg, ingest_page *page);

typedef struct ingest_pager_stats {
    long requests;     /* HTTP requests made by the walk (host retries not counted) */
    long pages;        /* pages handed to the callback */
    long not_modified; /* 304 answers */
} ingest_pager_stats;

/* How to walk. Borrowed by ingest_pager_run for the call. */
typedef struct ingest_pager {
    const ingest_host_api *api;
    ingest_run *run;
    const ingest_header *headers; /* sent with every request; may be NULL with 0 */
    size_t n_headers;
    ingest_http_auth auth; /* usually INGEST_HTTP_AUTH_CONNECTION */
    uint32_t timeout_ms;   /* per request; 0 = host default */
    long max_pages;        /* safety stop; 0 = no limit */
    /* Conditional requests: the name of a cursor (api->cursor_get/set with
     * this name as the stream) that remembers the first URL of the last
     * completed walk and its ETag. When the next walk starts at the same
     * URL the request carries If-None-Match; a 304 hands the callback one
     * page with not_modified = 1 and ends the walk. The slot is written
     * only after a walk that ended without error (so an interrupted walk
     * is fetched again), and only when an unchanged first page really
     * means an unchanged result: when it was the only page, or when
     * newest_first is set. NULL: no conditional requests. */
    const char *etag_slot;
    /* The listing is ordered by last change, newest first: an unchanged
     * first page means nothing changed anywhere in it. */
    int newest_first;
    ingest_page_fn on_page; /* required */
    void *arg;
} ingest_pager;

/* Walk from `first_url` (borrowed). Returns INGEST_OK when the walk ended
 * (last page, INGEST_PAGE_STOP, 304 or max_pages), the callback's negative
 * status, an http_request status (INGEST_ERATELIMITED, INGEST_EAUTH, ...),
 * the ingest_http_status_rc() of a final non-2xx answer (logged once at WARN
 * with ingest_http_describe; `ctx` may be NULL to skip logging) or
 * INGEST_EINVAL for a body that is not JSON. `stats` may be NULL; it is
 * filled in every case. */
int ingest_pager_run(const ingest_pager *pager, ingest_ctx *ctx, const char *first_url,
                     ingest_pager_stats *stats);

/* ------------------------------------------------------------------------ */
/* 5. Timestamp cursors                                                      */
/* ------------------------------------------------------------------------ */

/* "YYYY-MM-DDTHH:MM:SSZ" (UTC, whole seconds, floored): the ISO 8601 form
 * most REST APIs take as a `since` parameter. */
#define INGEST_ISO8601_LEN 21
void ingest_time_iso8601(int64_t us, char out[INGEST_ISO8601_LEN]);

/* Bookkeeping for a stream whose records carry an "updated at" time.
 *
 * The committed cursor is the watermark W: every record updated at or
 * before W has been stored. A run reads everything updated at or after
 * since_us = W - lookback (the job's lookback_us), or, without a cursor,
 * job->backfill_since_us (0 = everything); full_refresh ignores W.
 *
 * Oldest-first walks call ingest_ts_cursor_see() per record and
 * ingest_ts_cursor_commit() per page: W becomes the newest time seen.
 *
 * Newest-first walks (APIs without a `since` filter, read in descending
 * order until records get older than since_us) cannot move W before they
 * finish. They call ingest_ts_cursor_checkpoint() per page instead, which
 * stores "everything in [low, high] is done" beside W, so a walk cut short
 * (crash, rate limit) resumes without redoing that work: skip records for
 * which ingest_ts_cursor_done() is true. ingest_ts_cursor_commit() at the
 * end moves W to the newest time seen.
 *
 * Stored forms: plain RFC 3339 text for W (the host keeps it from moving
 * back), or {"since": W, "high": H, "low": L} while a newest-first walk is
 * in progress. The struct is the caller's (stack is fine); name is
 * borrowed and must outlive the struct's use. */
typedef struct ingest_ts_cursor {
    const char *name;                  /* cursor (stream) name, e.g. "pull_requests:octo/hello" */
    int64_t stored_us;                 /* committed watermark W; 0 = none */
    int64_t since_us;                  /* lower bound of this run; 0 = everything */
    int64_t high_us;                   /* newest time seen (this run or the resumed one) */
    int64_t done_low_us, done_high_us; /* the interrupted walk's (low, high]; 0 = none */
    int64_t low_us;                    /* newest-first: oldest time reached this run */
    int64_t ck_low_us, ck_high_us;     /* private: the interval committed so far */
} ingest_ts_cursor;

/* Read and interpret the cursor `name` for `job`. An unreadable stored
 * value is logged at WARN (ctx may be NULL) and treated as absent.
 * Returns api->cursor_get's failure status, else INGEST_OK. */
int ingest_ts_cursor_load(const ingest_host_api *api, ingest_ctx *ctx, ingest_run *run,
                          const ingest_job *job, const char *name, ingest_ts_cursor *c);

/* The record updated at `us` was read. */
void ingest_ts_cursor_see(ingest_ts_cursor *c, int64_t us);

/* Newest-first walks: 1 when a record updated at `us` was already handled
 * by the interrupted walk this run resumes: low < us <= high. Records at
 * exactly `low` are handled again, because others with the same time may
 * have been on the page the walk did not reach. */
int ingest_ts_cursor_done(const ingest_ts_cursor *c, int64_t us);

/* Newest-first walks: the walk has handled everything down to `low_us`.
 * Commits queued signals and the progress in one transaction (api->
 * cursor_set); when the progress cannot be expressed as one interval yet it
 * only flushes the signals. */
int ingest_ts_cursor_checkpoint(const ingest_host_api *api, ingest_run *run, ingest_ts_cursor *c,
                                int64_t low_us);

/* Commit queued signals with W = the newest time seen (or just flush when
 * nothing newer than the stored W was seen and no walk was in progress). */
int ingest_ts_cursor_commit(const ingest_host_api *api, ingest_run *run, ingest_ts_cursor *c);

/* ------------------------------------------------------------------------ */
/* 6. Health for ingest_plugin.health                                        */
/* ------------------------------------------------------------------------ */

/* What a connector says of itself in ingest_plugin.health: set by its sync
 * and webhook callbacks on several workers at once, read by the host.
 * Embed one in the plugin state; it is not copyable after init. */
typedef struct ingest_health_status {
    pthread_mutex_t lock;
    ingest_health_state state;
    char detail[256];
} ingest_health_status;

/* OK with the detail "ok". INGEST_ENOMEM when the lock cannot be made. */
int ingest_health_init(ingest_health_status *h);
void ingest_health_destroy(ingest_health_status *h);
/* Replace state and detail (copied; cut at 255 bytes). */
void ingest_health_set(ingest_health_status *h, ingest_health_state state, const char *detail);
/* DEGRADED with the formatted text, which is also logged at WARN through
 * api->log (run may be NULL). Never put a secret in it. */
void ingest_health_degrade(ingest_health_status *h, const ingest_host_api *api, ingest_ctx *ctx,
                           ingest_run *run, const char *fmt, ...) INGEST_PRINTF(5, 6);
/* The state, its detail copied into detail[len] (NUL-terminated). */
ingest_health_state ingest_health_get(ingest_health_status *h, char *detail, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* INGEST_HELPERS_H */
