/* ratelimit.h — per (provider, connection) request limiter at a share of the
 * vendor's quota.
 *
 * Each key ("provider/connection_id") combines three gates; a request goes
 * out only when all of them agree:
 *
 *  1. The declared quota (requests per window_s) times the share gives the
 *     allowance A. A smoothing token bucket (capacity max(1, A/10), refill
 *     A per window) keeps requests spread out, and an exact log of the
 *     requests sent in the last window guarantees that no window_s-long
 *     window, wherever it starts, ever holds more than A of them (a bucket
 *     alone would allow capacity + A).
 *  2. A quota the vendor reports in response headers (X-RateLimit-* or the
 *     IETF RateLimit-* fields): at most floor(limit * share) requests are
 *     spent before the reported reset; after that the key waits for the
 *     reset instead of running into 429.
 *  3. Retry-After blocks the key until the time the vendor named.
 *
 * Time is always passed in, so every decision is reproducible in tests:
 * mono_ms is a monotonic clock (util_mono_ms()), wall_ms is unix epoch
 * milliseconds (util_now_us() / 1000), needed only to read epoch resets and
 * HTTP dates. All functions are thread-safe. */
#ifndef HOSTD_RATELIMIT_H
#define HOSTD_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/plugin.h"

/* The default share of a vendor quota. */
#define RATELIMIT_DEFAULT_SHARE 0.7

typedef struct ratelimit_registry ratelimit_registry;

/* A new, empty registry. `share` in (0, 1] is the part of every quota this
 * host may spend; anything else selects RATELIMIT_DEFAULT_SHARE. The caller
 * owns the result and releases it with ratelimit_free(). NULL on OOM. */
ratelimit_registry *ratelimit_new(double share);

/* Free the registry and every key in it. NULL is a no-op. No other call on
 * this registry may run concurrently or afterwards. */
void ratelimit_free(ratelimit_registry *reg);

/* The share the registry was created with (after defaulting). */
double ratelimit_share(const ratelimit_registry *reg);

/* Ask for one request slot of `key` (borrowed for the call; copied when the
 * key is new). `quota` is the plugin's declared vendor quota; requests == 0
 * means "none declared" and leaves only the header and Retry-After gates.
 * A changed quota for an existing key takes effect at once.
 *
 * Returns 0 when the request may go now (the slot is taken and counted),
 * or > 0: the number of milliseconds after which asking again can succeed
 * (nothing was taken). Returns -1 only when the key cannot be stored (OOM
 * or key NULL); callers should treat that as "go" rather than stall. */
int64_t ratelimit_reserve(ratelimit_registry *reg, const char *key, ingest_rate_limit quota,
                          int64_t mono_ms);

/* Learn from a response to a request of `key`: rate-limit headers and
 * Retry-After. `headers` (n_headers entries, borrowed for the call) are
 * looked up case-insensitively, the last occurrence of a name winning.
 *
 *  - X-RateLimit-Limit / -Remaining / -Reset: Reset is unix epoch seconds
 *    (GitHub) or, when below 10^9, seconds from now.
 *  - RateLimit-Limit / -Remaining / -Reset (IETF draft; Reset in seconds
 *    from now), RateLimit-Policy ("100;w=3600" or "name";q=100;w=3600) for
 *    the limit, and the combined RateLimit field ("limit=100, remaining=5,
 *    reset=30" or "name";r=5;t=30).
 *  - Retry-After (delay seconds or HTTP-date) on a status >= 400 blocks the
 *    key until then.
 * Unknown or malformed values are ignored. */
void ratelimit_observe(ratelimit_registry *reg, const char *key, const ingest_header *headers,
                       size_t n_headers, long http_status, int64_t mono_ms, int64_t wall_ms);

/* Count a wait that a caller of `key` went through (or, when it gave up and
 * rescheduled, was told to go through) before a slot. Feeds the stats. */
void ratelimit_record_wait(ratelimit_registry *reg, const char *key, int64_t waited_ms);

/* A snapshot of one key, for metrics and the admin CLI. */
typedef struct ratelimit_stats {
    double tokens;              /* smoothing-bucket tokens available now (declared quota) */
    uint32_t allowance;         /* floor(declared requests * share); 0 = none declared */
    uint32_t in_window;         /* requests sent in the current declared window */
    int64_t header_limit;       /* quota reported by the vendor; -1 = none known */
    int64_t header_remaining;   /* the vendor's remaining count as we track it; -1 = none */
    int64_t header_reset_in_ms; /* ms until the reported reset; -1 = none */
    int64_t blocked_for_ms;     /* ms left of a Retry-After block; 0 = none */
    uint64_t granted;           /* slots handed out */
    uint64_t waits;             /* waits recorded with ratelimit_record_wait() */
    int64_t wait_ms_total;      /* their sum in milliseconds */
} ratelimit_stats;

/* Fill *out for `key` as of mono_ms. Returns 0, or -1 when the key is
 * unknown (then *out is zeroed with header fields at -1). */
int ratelimit_get_stats(ratelimit_registry *reg, const char *key, int64_t mono_ms,
                        ratelimit_stats *out);

/* Parse a Retry-After value: delay seconds ("120") or an HTTP-date ("Wed,
 * 21 Oct 2015 07:28:00 GMT", read relative to wall_ms). Returns the delay
 * in milliseconds (0 for a date in the past), or -1 when value is NULL or
 * malformed. */
int64_t ratelimit_parse_retry_after(const char *value, int64_t wall_ms);

#endif
