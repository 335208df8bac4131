/* health.c — healthy means: database reachable and migrated, and every
 * plugin loaded and reporting OK. Anything else is degraded. */
#include "health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor.h"
#include "inbox.h"
#include "instance.h"
#include "registry.h"
#include "util.h"

typedef struct health_job {
    hostd *h;
    health_done_fn done;
    void *arg;
    json_object *report;
} health_job;

static const char *const health_names[] = {"ok", "degraded", "failing"};

typedef struct plugin_rows {
    json_object *arr;
    int degraded;
} plugin_rows;

/* Under the registry lock: describe entries whose status needs no callback. */
static void describe(instance *inst, void *arg)
{
    plugin_rows *rows = arg;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(inst->name));
    json_object_object_add(o, "version",
                           inst->version ? json_object_new_string(inst->version) : NULL);
    json_object_object_add(o, "state", json_object_new_string(instance_status_name(inst->status)));
    const char *status = inst->status == INSTANCE_FAILED     ? "failed"
                         : inst->status == INSTANCE_DRAINING ? "draining"
                         : inst->error                       ? "degraded"
                                                             : "ok";
    json_object_object_add(o, "status", json_object_new_string(status));
    json_object_object_add(o, "detail", inst->error ? json_object_new_string(inst->error) : NULL);
    if (inst->status == INSTANCE_FAILED || inst->error)
        rows->degraded = 1;
    json_object_array_add(rows->arr, o);
}

/* The plugin's circuit breaker on this daemon: a circuit that is not closed
 * means its provider keeps failing, so the plugin counts as degraded. */
static void add_circuit(hostd *h, json_object *o, plugin_rows *rows)
{
    const char *state;
    int failures;
    executor_circuit(h, json_object_get_string(json_object_object_get(o, "name")), &state,
                     &failures);
    json_object_object_add(o, "circuit", json_object_new_string(state));
    json_object_object_add(o, "circuit_failures", json_object_new_int(failures));
    if (strcmp(state, "closed") == 0)
        return;
    rows->degraded = 1;
    json_object_object_add(o, "status", json_object_new_string("degraded"));
    if (!json_object_object_get(o, "detail")) {
        char detail[128];
        snprintf(detail, sizeof detail, "circuit %s after %d consecutive failed job(s)", state,
                 failures);
        json_object_object_add(o, "detail", json_object_new_string(detail));
    }
}

/* Outside the lock: ask each loaded plugin's own health callback. */
static void ask_plugins(hostd *h, plugin_rows *rows)
{
    size_t n = json_object_array_length(rows->arr);
    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_array_get_idx(rows->arr, i);
        const char *state = json_object_get_string(json_object_object_get(o, "state"));
        add_circuit(h, o, rows);
        if (strcmp(state, "loaded") != 0)
            continue;
        instance *inst =
            registry_acquire(h->plugins, json_object_get_string(json_object_object_get(o, "name")));
        if (!inst)
            continue;
        if (inst->desc.health) {
            char detail[256] = "";
            ingest_health_state hs = inst->desc.health(inst->state, detail, sizeof detail);
            detail[sizeof detail - 1] = '\0';
            if (hs != INGEST_HEALTH_OK) {
                int idx = hs == INGEST_HEALTH_DEGRADED ? 1 : 2;
                json_object_object_add(o, "status", json_object_new_string(health_names[idx]));
                json_object_object_add(o, "detail", json_object_new_string(detail));
                rows->degraded = 1;
            }
        }
        instance_release(inst);
    }
}

json_object *health_report(hostd *h)
{
    json_object *report = json_object_new_object();
    json_object *daemon = json_object_new_object();
    json_object_object_add(daemon, "status", json_object_new_string("ok"));
    json_object_object_add(daemon, "pid", json_object_new_int(getpid()));
    json_object_object_add(daemon, "version", json_object_new_string(HOSTD_VERSION));
    json_object_object_add(daemon, "uptime_s",
                           json_object_new_int64((util_now_us() - h->started_us) / 1000000));
    json_object_object_add(daemon, "workers_busy",
                           json_object_new_int64((int64_t)workers_busy(h->workers)));

    json_object *db = json_object_new_object();
    int db_ok = store_ready(h->store) && inbox_ready(h->inbox);
    char err[512];
    store_last_error(h->store, err, sizeof err);
    json_object_object_add(db, "status", json_object_new_string(db_ok ? "ok" : "down"));
    json_object_object_add(db, "error", db_ok || !err[0] ? NULL : json_object_new_string(err));

    plugin_rows rows = {json_object_new_array(), 0};
    registry_each(h->plugins, describe, &rows);
    ask_plugins(h, &rows);

    int healthy = db_ok && !rows.degraded;
    json_object_object_add(report, "status",
                           json_object_new_string(healthy ? "healthy" : "degraded"));
    json_object_object_add(report, "daemon", daemon);
    json_object_object_add(report, "database", db);
    json_object_object_add(report, "plugins", rows.arr);
    return report;
}

static void deliver(void *arg)
{
    health_job *job = arg;
    job->done(job->report, job->arg);
    free(job);
}

static void build(void *arg)
{
    health_job *job = arg;
    job->report = health_report(job->h);
    loop_post(job->h->mailbox, deliver, job);
}

int health_check_async(hostd *h, health_done_fn done, void *arg)
{
    health_job *job = calloc(1, sizeof *job);
    if (!job)
        return -1;
    *job = (health_job){h, done, arg, NULL};
    if (workers_submit(h->workers, build, job) < 0) {
        free(job);
        return -1;
    }
    return 0;
}
