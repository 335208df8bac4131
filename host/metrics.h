/* metrics.h — counters, gauges and histograms, rendered as Prometheus text. */
#ifndef HOSTD_METRICS_H
#define HOSTD_METRICS_H

#include <stddef.h>

#include "ingest/plugin.h"

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type;

typedef struct metrics_registry metrics_registry;

metrics_registry *metrics_new(void);
void metrics_free(metrics_registry *reg);

/* Register a series. `labels` is the inside of {...} ("" for none), e.g.
 * plugin="github". `owner` tags the series so metrics_remove_owner() can
 * sweep everything a plugin instance registered. Strings and bounds are
 * copied. Registering an existing name+labels+owner returns the same series. */
ingest_metric *metrics_register(metrics_registry *reg, metric_type type, const char *name,
                                const char *help, const char *labels, const void *owner,
                                const double *bounds, size_t n_bounds);
void metrics_add(ingest_metric *m, double delta);
void metrics_set(ingest_metric *m, double value);
void metrics_observe(ingest_metric *m, double value);
double metrics_value(ingest_metric *m);

/* Hide (stop exporting) or remove every series of an owner. */
void metrics_hide_owner(metrics_registry *reg, const void *owner);
void metrics_remove_owner(metrics_registry *reg, const void *owner);

/* Prometheus text exposition format 0.0.4; malloc'd. */
char *metrics_render(metrics_registry *reg);

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]* */
int metrics_valid_name(const char *name);

#endif
