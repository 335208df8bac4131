/* ratelimit.c — one mutex over a small hash table of limiters. Every
 * operation is O(1) amortised (the send log is a ring that is only trimmed
 * from its old end), so a single lock does not become a bottleneck for a
 * worker pool. */
#include "ratelimit.h"
#include "util.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define N_BUCKETS 256
/* Beyond this allowance the exact log would cost too much memory per key
 * (8 bytes per request in the window); such keys use a bucket whose refill
 * rate leaves room for its capacity instead, which gives the same bound. */
#define MAX_LOGGED_ALLOWANCE 65536u
/* Windows are widened by 1 % (at most 1 s) so that network jitter between
 * our clock and the vendor's never makes two requests one window apart look
 * like they are inside the same window. */
#define GUARD_PERMILLE 10
#define GUARD_MAX_MS 1000
/* X-RateLimit-Reset values below this are seconds from now, not epoch. */
#define EPOCH_THRESHOLD 1e9
/* Two reported resets this close apart describe the same vendor window. */
#define SAME_RESET_TOLERANCE_MS 1500
#define DEFAULT_HEADER_WINDOW_MS 60000
/* floor(600 * 0.7) must be 420 although 600 * 0.7 is 419.999... in binary. */
#define SHARE_EPSILON 1e-9

typedef struct limiter {
    char *key;
    struct limiter *next;

    /* declared quota: smoothing bucket + exact send log */
    ingest_rate_limit quota;
    uint32_t allowance, burst;
    int64_t window_ms; /* the declared window plus its guard */
    double refill_per_ms;
    double tokens;
    int64_t refilled_at_ms;
    int64_t *sent; /* ring of send times, oldest at sent_head */
    uint32_t sent_cap, sent_head, sent_count;

    /* vendor-reported quota */
    int header_known;
    int64_t header_limit, header_remaining, header_reset_ms;

    int64_t blocked_until_ms; /* Retry-After */

    uint64_t granted, waits;
    int64_t wait_ms_total;
} limiter;

struct ratelimit_registry {
    pthread_mutex_t lock;
    double share;
    limiter *buckets[N_BUCKETS];
};

ratelimit_registry *ratelimit_new(double share)
{
    ratelimit_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return NULL;
    pthread_mutex_init(&reg->lock, NULL);
    reg->share = (share > 0 && share <= 1) ? share : RATELIMIT_DEFAULT_SHARE;
    return reg;
}

static void limiter_free(limiter *l)
{
    free(l->key);
    free(l->sent);
    free(l);
}

void ratelimit_free(ratelimit_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        for (limiter *l = reg->buckets[i], *next; l; l = next) {
            next = l->next;
            limiter_free(l);
        }
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

double ratelimit_share(const ratelimit_registry *reg) { return reg->share; }

/* ---- lookup -------------------------------------------------------------- */

static size_t key_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h % N_BUCKETS);
}

static limiter *find(ratelimit_registry *reg, const char *key)
{
    for (limiter *l = reg->buckets[key_hash(key)]; l; l = l->next)
        if (strcmp(l->key, key) == 0)
            return l;
    return NULL;
}

static limiter *find_or_create(ratelimit_registry *reg, const char *key)
{
    limiter *l = find(reg, key);
    if (l)
        return l;
    l = calloc(1, sizeof *l);
    if (!l || !(l->key = strdup(key))) {
        free(l);
        return NULL;
    }
    size_t b = key_hash(key);
    l->next = reg->buckets[b];
    reg->buckets[b] = l;
    return l;
}

/* ---- declared quota: bucket + send log ----------------------------------- */

/* The unit tests and the daemon do not link libm: round by hand. */
static int64_t ceil_positive(double x)
{
    int64_t t = (int64_t)x;
    return (double)t < x ? t + 1 : t;
}

static int64_t share_of(double share, int64_t requests)
{
    double v = (double)requests * share + SHARE_EPSILON;
    if (v >= (double)UINT32_MAX)
        return UINT32_MAX;         /* no vendor quota is this large; keeps casts defined */
    return v < 1 ? 0 : (int64_t)v; /* truncation is floor for v >= 0 */
}

/* Keep the newest `cap` send times in a fresh ring of that size. */
static int resize_log(limiter *l, uint32_t cap)
{
    int64_t *ring = NULL;
    if (cap > 0 && !(ring = malloc(cap * sizeof *ring)))
        return -1;
    uint32_t keep = l->sent_count < cap ? l->sent_count : cap;
    for (uint32_t i = 0; i < keep; i++) {
        uint32_t from = (l->sent_head + l->sent_count - keep + i) % l->sent_cap;
        ring[i] = l->sent[from];
    }
    free(l->sent);
    l->sent = ring;
    l->sent_cap = cap;
    l->sent_head = 0;
    l->sent_count = keep;
    return 0;
}

/* (Re)derive allowance, burst and rates when the declared quota changes. */
static int configure(limiter *l, double share, ingest_rate_limit quota, int64_t now)
{
    int fresh = l->quota.requests == 0;
    uint32_t window_s = quota.window_s ? quota.window_s : 1;
    uint32_t allowance = (uint32_t)share_of(share, quota.requests);
    if (quota.requests > 0 && allowance < 1)
        allowance = 1;
    uint32_t burst = allowance / 10 > 1 ? allowance / 10 : 1;
    int logged = allowance > 0 && allowance <= MAX_LOGGED_ALLOWANCE;
    if (resize_log(l, logged ? allowance : 0) < 0)
        return -1;
    int64_t window_ms = (int64_t)window_s * 1000;
    int64_t guard = window_ms * GUARD_PERMILLE / 1000;
    l->window_ms = window_ms + (guard < GUARD_MAX_MS ? guard : GUARD_MAX_MS);
    /* Without a log the bucket alone must keep burst + refill <= allowance. */
    double per_window = logged ? (double)allowance : (double)(allowance - burst);
    l->refill_per_ms = per_window / (double)(logged ? window_ms : l->window_ms);
    l->quota = quota;
    l->allowance = allowance;
    l->burst = burst;
    if (fresh || l->tokens > burst)
        l->tokens = burst;
    l->refilled_at_ms = now;
    return 0;
}

static void refill(limiter *l, int64_t now)
{
    if (now > l->refilled_at_ms) {
        l->tokens += (double)(now - l->refilled_at_ms) * l->refill_per_ms;
        if (l->tokens > l->burst)
            l->tokens = l->burst;
        l->refilled_at_ms = now;
    }
}

/* Forget sends that no longer fall into any window ending now. */
static void trim_log(limiter *l, int64_t now)
{
    while (l->sent_count > 0 && l->sent[l->sent_head] <= now - l->window_ms) {
        l->sent_head = (l->sent_head + 1) % l->sent_cap;
        l->sent_count--;
    }
}

static int64_t declared_wait(limiter *l, int64_t now)
{
    if (l->allowance == 0)
        return 0;
    refill(l, now);
    int64_t wait = 0;
    if (l->tokens < 1 - SHARE_EPSILON)
        wait = ceil_positive((1 - l->tokens) / l->refill_per_ms);
    if (l->sent_cap > 0) {
        trim_log(l, now);
        if (l->sent_count >= l->sent_cap) {
            int64_t log_wait = l->sent[l->sent_head] + l->window_ms - now;
            if (log_wait > wait)
                wait = log_wait;
        }
    }
    return wait;
}

static void take_declared(limiter *l, int64_t now)
{
    if (l->allowance == 0)
        return;
    l->tokens -= 1;
    if (l->sent_cap > 0) {
        l->sent[(l->sent_head + l->sent_count) % l->sent_cap] = now;
        l->sent_count++;
    }
}

/* ---- vendor-reported quota and Retry-After ------------------------------- */

static int64_t header_wait(limiter *l, double share, int64_t now)
{
    if (!l->header_known)
        return 0;
    if (now >= l->header_reset_ms) {
        l->header_known = 0; /* the vendor's window is over; learn it anew */
        return 0;
    }
    int64_t spent = l->header_limit - l->header_remaining;
    int64_t allowed = share_of(share, l->header_limit) - spent;
    return allowed > 0 ? 0 : l->header_reset_ms - now;
}

int64_t ratelimit_reserve(ratelimit_registry *reg, const char *key, ingest_rate_limit quota,
                          int64_t mono_ms)
{
    if (!reg || !key)
        return -1;
    pthread_mutex_lock(&reg->lock);
    limiter *l = find_or_create(reg, key);
    if (!l || ((l->quota.requests != quota.requests || l->quota.window_s != quota.window_s) &&
               configure(l, reg->share, quota, mono_ms) < 0)) {
        pthread_mutex_unlock(&reg->lock);
        return -1;
    }
    int64_t wait = l->blocked_until_ms - mono_ms;
    int64_t w = header_wait(l, reg->share, mono_ms);
    if (w > wait)
        wait = w;
    w = declared_wait(l, mono_ms);
    if (w > wait)
        wait = w;
    if (wait <= 0) {
        take_declared(l, mono_ms);
        if (l->header_known)
            l->header_remaining--;
        l->granted++;
        wait = 0;
    }
    pthread_mutex_unlock(&reg->lock);
    return wait;
}

static const char *header_get(const ingest_header *headers, size_t n, const char *name)
{
    const char *value = NULL;
    for (size_t i = 0; i < n; i++)
        if (headers[i].name && headers[i].value && strcasecmp(headers[i].name, name) == 0)
            value = headers[i].value;
    return value;
}

/* The leading number of a field value ("100", " 100, 100;w=3600"); -1 if none. */
static double leading_number(const char *value)
{
    if (!value)
        return -1;
    char *end = NULL;
    double v = strtod(value, &end);
    /* Beyond 10^12 no count or time in seconds makes sense (and the int64
     * arithmetic on it would overflow), so such values are ignored. */
    return (end == value || !isfinite(v) || v < 0 || v > 1e12) ? -1 : v;
}

/* The number after `param=` in a structured field ("q=100;w=3600",
 * "limit=100, remaining=5"); -1 if absent. */
static double param_number(const char *value, const char *param)
{
    size_t len = strlen(param);
    for (const char *p = value; p && *p; p++) {
        int at_start = p == value || strchr(" \t;,", p[-1]);
        if (at_start && strncasecmp(p, param, len) == 0 && p[len] == '=')
            return leading_number(p + len + 1);
    }
    return -1;
}

/* What one response said about the vendor's quota; -1 = not said. */
typedef struct reported_quota {
    double limit, remaining;
    double reset_s;  /* seconds from now */
    double window_s; /* from a policy, used when no reset is given */
} reported_quota;

/* X-RateLimit-Reset as seconds from now: a count of seconds, unix epoch
 * seconds (GitHub) or an ISO 8601 time (Jira: "2024-05-01T10:00Z", whose
 * leading "2024" must not pass for 2024 seconds); -1 when unreadable. */
static double x_reset_seconds(const char *value, int64_t wall_ms)
{
    int64_t at_us;
    if (value && strlen(value) >= 10 && value[4] == '-' && value[7] == '-') {
        if (util_parse_time(value, &at_us) != 0)
            return -1;
        double left = (double)at_us / 1e6 - (double)wall_ms / 1000.0;
        return left > 0 ? left : 0;
    }
    double reset = leading_number(value);
    if (reset >= EPOCH_THRESHOLD) {
        reset -= (double)wall_ms / 1000.0; /* GitHub: unix epoch seconds */
        if (reset < 0)
            reset = 0;
    }
    return reset;
}

static void read_x_ratelimit(const ingest_header *h, size_t n, int64_t wall_ms, reported_quota *q)
{
    q->limit = leading_number(header_get(h, n, "X-RateLimit-Limit"));
    q->remaining = leading_number(header_get(h, n, "X-RateLimit-Remaining"));
    q->reset_s = x_reset_seconds(header_get(h, n, "X-RateLimit-Reset"), wall_ms);
}

/* IETF RateLimit-* fields override X-RateLimit-* where both are present. */
static void read_ietf_ratelimit(const ingest_header *h, size_t n, reported_quota *q)
{
    const char *combined = header_get(h, n, "RateLimit");
    double v;
    if ((v = leading_number(header_get(h, n, "RateLimit-Limit"))) >= 0 ||
        (v = param_number(combined, "limit")) >= 0)
        q->limit = v;
    if ((v = leading_number(header_get(h, n, "RateLimit-Remaining"))) >= 0 ||
        (v = param_number(combined, "remaining")) >= 0 || (v = param_number(combined, "r")) >= 0)
        q->remaining = v;
    if ((v = leading_number(header_get(h, n, "RateLimit-Reset"))) >= 0 ||
        (v = param_number(combined, "reset")) >= 0 || (v = param_number(combined, "t")) >= 0)
        q->reset_s = v;
    const char *policy = header_get(h, n, "RateLimit-Policy");
    if (q->limit < 0 && ((v = param_number(policy, "q")) >= 0 || (v = leading_number(policy)) >= 0))
        q->limit = v;
    q->window_s = param_number(policy, "w");
}

static void learn_header_quota(limiter *l, const reported_quota *q, int64_t now)
{
    if (q->remaining < 0)
        return;
    /* Without a reset the report is trusted for one window. */
    int64_t fallback_ms = DEFAULT_HEADER_WINDOW_MS;
    if (q->window_s > 0)
        fallback_ms = (int64_t)(q->window_s * 1000);
    else if (l->quota.requests > 0 && l->quota.window_s > 0)
        fallback_ms = (int64_t)l->quota.window_s * 1000;
    int64_t reset = now + (q->reset_s >= 0 ? ceil_positive(q->reset_s * 1000) : fallback_ms);
    int64_t remaining = (int64_t)q->remaining;
    if (l->header_known && reset < l->header_reset_ms - SAME_RESET_TOLERANCE_MS)
        return; /* a late answer from a window that is already over */
    int same_window =
        l->header_known && llabs(reset - l->header_reset_ms) <= SAME_RESET_TOLERANCE_MS;
    /* Within one window the count only goes down: our own requests still in
     * flight are already subtracted locally, other clients' are not. */
    if (same_window && l->header_remaining < remaining)
        remaining = l->header_remaining;
    /* No reported limit: keep the one we knew, else assume the declared
     * quota (or what is left, if that is more) so the share still applies. */
    int64_t limit = remaining;
    if (q->limit >= 0)
        limit = (int64_t)q->limit;
    else if (l->header_known)
        limit = l->header_limit;
    else if ((int64_t)l->quota.requests > remaining)
        limit = l->quota.requests;
    l->header_known = 1;
    l->header_limit = limit;
    l->header_remaining = remaining;
    l->header_reset_ms = reset;
}

int64_t ratelimit_parse_retry_after(const char *value, int64_t wall_ms)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (*value >= '0' && *value <= '9') {
        char *end = NULL;
        long long s = strtoll(value, &end, 10);
        while (*end == ' ' || *end == '\t')
            end++;
        return (*end || s < 0 || s > INT64_MAX / 1000) ? -1 : (int64_t)s * 1000;
    }
    time_t when = curl_getdate(value, NULL);
    if (when < 0)
        return -1;
    int64_t delay = (int64_t)when * 1000 - wall_ms;
    return delay > 0 ? delay : 0;
}

void ratelimit_observe(ratelimit_registry *reg, const char *key, const ingest_header *headers,
                       size_t n_headers, long http_status, int64_t mono_ms, int64_t wall_ms)
{
    if (!reg || !key)
        return;
    reported_quota q = {-1, -1, -1, -1};
    read_x_ratelimit(headers, n_headers, wall_ms, &q);
    read_ietf_ratelimit(headers, n_headers, &q);
    int64_t retry_ms =
        http_status >= 400
            ? ratelimit_parse_retry_after(header_get(headers, n_headers, "Retry-After"), wall_ms)
            : -1;
    pthread_mutex_lock(&reg->lock);
    limiter *l = find_or_create(reg, key);
    if (l) {
        learn_header_quota(l, &q, mono_ms);
        if (retry_ms >= 0 && mono_ms + retry_ms > l->blocked_until_ms)
            l->blocked_until_ms = mono_ms + retry_ms;
    }
    pthread_mutex_unlock(&reg->lock);
}

void ratelimit_record_wait(ratelimit_registry *reg, const char *key, int64_t waited_ms)
{
    if (!reg || !key)
        return;
    pthread_mutex_lock(&reg->lock);
    limiter *l = find_or_create(reg, key);
    if (l) {
        l->waits++;
        l->wait_ms_total += waited_ms > 0 ? waited_ms : 0;
    }
    pthread_mutex_unlock(&reg->lock);
}

int ratelimit_get_stats(ratelimit_registry *reg, const char *key, int64_t mono_ms,
                        ratelimit_stats *out)
{
    memset(out, 0, sizeof *out);
    out->header_limit = out->header_remaining = out->header_reset_in_ms = -1;
    if (!reg || !key)
        return -1;
    pthread_mutex_lock(&reg->lock);
    limiter *l = find(reg, key);
    if (l) {
        header_wait(l, reg->share, mono_ms); /* expires a finished vendor window */
        if (l->allowance > 0) {
            refill(l, mono_ms);
            if (l->sent_cap > 0)
                trim_log(l, mono_ms);
        }
        out->tokens = l->tokens;
        out->allowance = l->allowance;
        out->in_window = l->sent_count;
        if (l->header_known) {
            out->header_limit = l->header_limit;
            out->header_remaining = l->header_remaining;
            out->header_reset_in_ms = l->header_reset_ms - mono_ms;
        }
        out->blocked_for_ms = l->blocked_until_ms > mono_ms ? l->blocked_until_ms - mono_ms : 0;
        out->granted = l->granted;
        out->waits = l->waits;
        out->wait_ms_total = l->wait_ms_total;
    }
    pthread_mutex_unlock(&reg->lock);
    return l ? 0 : -1;
}
