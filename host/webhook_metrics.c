/* webhook_metrics.c — a small array of per-provider handle sets. Providers
 * are few, and a set is never removed while the daemon runs, so a pointer
 * handed out stays valid. */
#include "webhook_metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PROVIDERS 256

struct webhook_metrics_table {
    pthread_mutex_t lock;
    webhook_metrics *sets[MAX_PROVIDERS];
    size_t n_sets;
    webhook_metrics none; /* all NULL handles: metrics calls ignore them */
};

webhook_metrics_table *webhook_metrics_new(void)
{
    webhook_metrics_table *t = calloc(1, sizeof *t);
    if (t)
        pthread_mutex_init(&t->lock, NULL);
    return t;
}

static ingest_metric *counter(hostd *h, const char *name, const char *help, const char *labels)
{
    return metrics_register(h->metrics, METRIC_COUNTER, name, help, labels, NULL, NULL, 0);
}

static webhook_metrics *create(hostd *h, const char *provider)
{
    webhook_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    snprintf(m->provider, sizeof m->provider, "%s", provider);
    char labels[200];
    snprintf(labels, sizeof labels, "provider=\"%s\"", provider);
    m->received = counter(h, "ingest_webhooks_received_total", "Webhook requests received", labels);
    m->verified = counter(h, "ingest_webhooks_verified_total",
                          "Webhook requests whose signature verified", labels);
    m->duplicates =
        counter(h, "ingest_webhooks_duplicates_total",
                "Redeliveries recognised by their idempotency key (not processed again)", labels);
    m->stored = counter(h, "ingest_webhooks_stored_total",
                        "Deliveries committed to the inbox and acknowledged", labels);
    m->processed = counter(h, "ingest_webhooks_processed_total",
                           "Deliveries the plugin turned into signals", labels);
    m->failed = counter(h, "ingest_webhooks_failed_total",
                        "Delivery processing attempts that failed (will retry)", labels);
    m->dead_lettered = counter(h, "ingest_webhooks_dead_lettered_total",
                               "Deliveries moved to the dead letters", labels);
    static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5};
    m->ack_seconds = metrics_register(h->metrics, METRIC_HISTOGRAM, "ingest_webhook_ack_seconds",
                                      "Time from a webhook request to its acknowledgement", labels,
                                      NULL, bounds, sizeof bounds / sizeof bounds[0]);
    return m;
}

webhook_metrics *webhook_metrics_for(hostd *h, const char *provider)
{
    webhook_metrics_table *t = h->webhook_metrics;
    pthread_mutex_lock(&t->lock);
    webhook_metrics *found = NULL;
    for (size_t i = 0; i < t->n_sets && !found; i++)
        if (strcmp(t->sets[i]->provider, provider) == 0)
            found = t->sets[i];
    if (!found && t->n_sets < MAX_PROVIDERS && (found = create(h, provider)))
        t->sets[t->n_sets++] = found;
    pthread_mutex_unlock(&t->lock);
    return found ? found : &t->none;
}

void webhook_metrics_rejected(hostd *h, const char *provider, const char *reason)
{
    char labels[256];
    snprintf(labels, sizeof labels, "provider=\"%s\",reason=\"%s\"", provider, reason);
    metrics_add(metrics_register(h->metrics, METRIC_COUNTER, "ingest_webhooks_rejected_total",
                                 "Webhook requests refused, by reason", labels, NULL, NULL, 0),
                1);
}

void webhook_metrics_free(webhook_metrics_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_sets; i++)
        free(t->sets[i]);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
