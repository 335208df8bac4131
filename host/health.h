/* health.h — the daemon's, the database's and every plugin's health. */
#ifndef HOSTD_HEALTH_H
#define HOSTD_HEALTH_H

#include <json-c/json.h>

#include "hostd.h"

/* Called on the loop thread; takes ownership of `report`. */
typedef void (*health_done_fn)(json_object *report, void *arg);

/* Build the report on a worker (plugin health callbacks may take a moment)
 * and deliver it on the loop. -1 when the worker queue is full. */
int health_check_async(hostd *h, health_done_fn done, void *arg);

/* {"status": "healthy" | "degraded", "daemon": {...}, "database": {...},
 * "plugins": [...]}. Calls plugin callbacks: not on the loop thread. */
json_object *health_report(hostd *h);

#endif
