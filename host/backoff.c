/* backoff.c — the nominal delay is capped, then jittered (so retries that
 * reached the cap still spread out), then capped again so none exceeds it. */
#include "backoff.h"

const backoff_policy backoff_default = {1000, 60000, 0.25};

int64_t backoff_delay_ms(const backoff_policy *p, int retry, double rand01)
{
    if (retry < 1)
        retry = 1;
    double delay = (double)p->base_ms;
    for (int i = 1; i < retry && delay < (double)p->cap_ms; i++)
        delay *= 2;
    if (delay > (double)p->cap_ms)
        delay = (double)p->cap_ms;
    delay *= 1.0 + p->jitter * (2.0 * rand01 - 1.0);
    if (delay > (double)p->cap_ms)
        delay = (double)p->cap_ms;
    return delay < 1 ? 1 : (int64_t)delay;
}
