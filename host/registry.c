/* registry.c — a list under one mutex; mutated only on the loop thread,
 * read from workers and the reload thread. */
#include "registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct registry {
    pthread_mutex_t lock;
    instance *head;
};

registry *registry_new(void)
{
    registry *reg = calloc(1, sizeof *reg);
    if (reg)
        pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

void registry_free(registry *reg)
{
    if (!reg)
        return;
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

void registry_lock(registry *reg) { pthread_mutex_lock(&reg->lock); }
void registry_unlock(registry *reg) { pthread_mutex_unlock(&reg->lock); }

instance *registry_acquire(registry *reg, const char *name)
{
    pthread_mutex_lock(&reg->lock);
    instance *found = NULL;
    for (instance *i = reg->head; i; i = i->next) {
        if (i->status == INSTANCE_LOADED && strcmp(i->name, name) == 0) {
            found = i;
            instance_acquire(i);
            break;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    return found;
}

void registry_add(registry *reg, instance *inst)
{
    instance *stale = NULL;
    pthread_mutex_lock(&reg->lock);
    for (instance **link = &reg->head; *link; link = &(*link)->next) {
        if ((*link)->status == INSTANCE_FAILED && strcmp((*link)->name, inst->name) == 0) {
            stale = *link;
            *link = stale->next;
            break;
        }
    }
    inst->next = NULL;
    instance **tail = &reg->head;
    while (*tail)
        tail = &(*tail)->next;
    *tail = inst;
    pthread_mutex_unlock(&reg->lock);
    instance_destroy(stale); /* failed entries own no plugin code */
}

void registry_remove(registry *reg, instance *inst)
{
    pthread_mutex_lock(&reg->lock);
    for (instance **link = &reg->head; *link; link = &(*link)->next) {
        if (*link == inst) {
            *link = inst->next;
            break;
        }
    }
    inst->next = NULL;
    pthread_mutex_unlock(&reg->lock);
}

instance *registry_take_all(registry *reg)
{
    pthread_mutex_lock(&reg->lock);
    instance *all = reg->head;
    reg->head = NULL;
    pthread_mutex_unlock(&reg->lock);
    return all;
}

void registry_each(registry *reg, void (*fn)(instance *, void *), void *arg)
{
    pthread_mutex_lock(&reg->lock);
    for (instance *i = reg->head, *next; i; i = next) {
        next = i->next;
        fn(i, arg);
    }
    pthread_mutex_unlock(&reg->lock);
}

char **registry_serving_names(registry *reg, int (*want)(const instance *), size_t *n)
{
    pthread_mutex_lock(&reg->lock);
    size_t cap = 0;
    for (instance *i = reg->head; i; i = i->next)
        cap++;
    char **names = calloc(cap + 1, sizeof *names);
    *n = 0;
    for (instance *i = reg->head; names && i; i = i->next) {
        if (i->status != INSTANCE_LOADED || !want(i))
            continue;
        if (!(names[*n] = strdup(i->name))) {
            util_strv_free(names);
            names = NULL;
            *n = 0;
            break;
        }
        (*n)++;
    }
    pthread_mutex_unlock(&reg->lock);
    return names;
}

static json_object *str_or_null(const char *s) { return s ? json_object_new_string(s) : NULL; }

static json_object *instance_json(instance *i)
{
    json_object *o = json_object_new_object();
    char since[32];
    util_format_time(i->since_us, since);
    json_object_object_add(o, "name", json_object_new_string(i->name));
    json_object_object_add(o, "version", str_or_null(i->version));
    json_object_object_add(o, "file", json_object_new_string(i->file));
    json_object_object_add(o, "state", json_object_new_string(instance_status_name(i->status)));
    json_object_object_add(o, "since", json_object_new_string(since));
    json_object_object_add(o, "error", str_or_null(i->error));
    json_object_object_add(o, "description", str_or_null(i->description));
    json_object_object_add(o, "sha256", i->sha256[0] ? json_object_new_string(i->sha256) : NULL);
    json_object *counts = json_object_new_object();
    json_object_object_add(counts, "inflight", json_object_new_int(atomic_load(&i->inflight)));
    json_object_object_add(counts, "ticks", json_object_new_uint64(atomic_load(&i->ticks)));
    json_object_object_add(counts, "tick_failures",
                           json_object_new_uint64(atomic_load(&i->tick_failures)));
    json_object_object_add(counts, "ticks_skipped",
                           json_object_new_uint64(atomic_load(&i->ticks_skipped)));
    json_object_object_add(counts, "signals_emitted",
                           json_object_new_uint64(atomic_load(&i->signals_emitted)));
    json_object_object_add(counts, "signals_stored",
                           json_object_new_uint64(atomic_load(&i->signals_stored)));
    json_object_object_add(o, "counts", counts);
    return o;
}

json_object *registry_list_json(registry *reg)
{
    json_object *arr = json_object_new_array();
    pthread_mutex_lock(&reg->lock);
    for (instance *i = reg->head; i; i = i->next)
        json_object_array_add(arr, instance_json(i));
    pthread_mutex_unlock(&reg->lock);
    return arr;
}
