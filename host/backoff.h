/* backoff.h — exponential backoff with jitter, one policy for every retry. */
#ifndef HOSTD_BACKOFF_H
#define HOSTD_BACKOFF_H

#include <stdint.h>

typedef struct backoff_policy {
    int64_t base_ms; /* delay before the first retry */
    int64_t cap_ms;  /* no delay exceeds this */
    double jitter;   /* ±fraction, e.g. 0.25 */
} backoff_policy;

/* The default: base 1 s, cap 60 s, ±25 %. */
extern const backoff_policy backoff_default;

/* Delay before retry number `retry` (1 = first retry): min(base * 2^(retry-1),
 * cap), jittered by ±jitter using rand01 in [0, 1), and never above cap. At
 * the cap delays still vary (cap * (1 - jitter) .. cap) so that many jobs
 * failing together do not retry in lockstep. */
int64_t backoff_delay_ms(const backoff_policy *p, int retry, double rand01);

#endif
