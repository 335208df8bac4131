/* health.c — a connector's self-reported health behind one lock. */
#include <stdarg.h>
#include <stdio.h>

#include "ingest/helpers.h"

int ingest_health_init(ingest_health_status *h)
{
    h->state = INGEST_HEALTH_OK;
    snprintf(h->detail, sizeof h->detail, "ok");
    return pthread_mutex_init(&h->lock, NULL) == 0 ? INGEST_OK : INGEST_ENOMEM;
}

void ingest_health_destroy(ingest_health_status *h) { pthread_mutex_destroy(&h->lock); }

void ingest_health_set(ingest_health_status *h, ingest_health_state state, const char *detail)
{
    pthread_mutex_lock(&h->lock);
    h->state = state;
    snprintf(h->detail, sizeof h->detail, "%s", detail ? detail : "");
    pthread_mutex_unlock(&h->lock);
}

void ingest_health_degrade(ingest_health_status *h, const ingest_host_api *api, ingest_ctx *ctx,
                           ingest_run *run, const char *fmt, ...)
{
    char text[sizeof h->detail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ingest_health_set(h, INGEST_HEALTH_DEGRADED, text);
    api->log(ctx, run, INGEST_LOG_WARN, "%s", text);
}

ingest_health_state ingest_health_get(ingest_health_status *h, char *detail, size_t len)
{
    pthread_mutex_lock(&h->lock);
    ingest_health_state state = h->state;
    if (detail && len)
        snprintf(detail, len, "%s", h->detail);
    pthread_mutex_unlock(&h->lock);
    return state;
}
