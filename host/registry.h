/* registry.h — every plugin instance the daemon knows, by name. */
#ifndef HOSTD_REGISTRY_H
#define HOSTD_REGISTRY_H

#include <json-c/json.h>

#include "instance.h"

registry *registry_new(void);
void registry_free(registry *reg);

/* Lock shared with instance fields marked (reg). */
void registry_lock(registry *reg);
void registry_unlock(registry *reg);

/* The serving instance of `name`, with a reference taken; NULL if none. */
instance *registry_acquire(registry *reg, const char *name);

/* Insert; an older FAILED entry of the same name is dropped and destroyed. */
void registry_add(registry *reg, instance *inst);
/* Unlink without destroying. */
void registry_remove(registry *reg, instance *inst);

/* Unlink and return every instance (a list through ->next). Shutdown only. */
instance *registry_take_all(registry *reg);

/* Call fn for each instance under the lock (fn must not re-lock). */
void registry_each(registry *reg, void (*fn)(instance *, void *), void *arg);

/* Names of the serving instances for which want() is true (called under
 * the lock). A NULL-terminated array, count in *n; free with
 * util_strv_free. NULL when out of memory. */
char **registry_serving_names(registry *reg, int (*want)(const instance *), size_t *n);

/* `ingest-hostctl list --json`: one object per instance. */
json_object *registry_list_json(registry *reg);

#endif
