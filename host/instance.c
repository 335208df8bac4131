/* instance.c — lifetime of one plugin generation. */
#include "instance.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "registry.h"
#include "scheduler.h"
#include "util.h"

instance *instance_new_failed(hostd *h, const char *name, const char *file, const char *version,
                              const char *error)
{
    instance *inst = calloc(1, sizeof *inst);
    if (!inst)
        return NULL;
    inst->host = h;
    inst->name = strdup(name);
    inst->file = strdup(file);
    inst->version = version ? strdup(version) : NULL;
    inst->error = strdup(error);
    inst->status = INSTANCE_FAILED;
    inst->since_us = util_now_us();
    if (!inst->name || !inst->file || !inst->error) {
        instance_destroy(inst);
        return NULL;
    }
    return inst;
}

void instance_acquire(instance *inst) { atomic_fetch_add(&inst->inflight, 1); }
void instance_release(instance *inst) { atomic_fetch_sub(&inst->inflight, 1); }

void instance_set_error(instance *inst, const char *fmt, ...)
{
    char *text = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
            text = NULL;
        va_end(ap);
    }
    if (inst->host && inst->host->plugins)
        registry_lock(inst->host->plugins);
    free(inst->error);
    inst->error = text;
    if (inst->host && inst->host->plugins)
        registry_unlock(inst->host->plugins);
}

void instance_destroy(instance *inst)
{
    if (!inst)
        return;
    if (inst->initialized && inst->desc.shutdown) {
        log_write(INGEST_LOG_DEBUG, &(log_fields){.plugin = inst->name}, "calling shutdown");
        inst->desc.shutdown(inst->state);
    }
    scheduler_free(inst);
    if (inst->host && inst->host->metrics)
        metrics_remove_owner(inst->host->metrics, inst);
    plugin_conf_redact(inst->conf, 0);
    plugin_conf_free(inst->conf);
    if (inst->dl)
        dlclose(inst->dl);
    if (inst->copy_path)
        unlink(inst->copy_path);
    free(inst->copy_path);
    free(inst->name);
    free(inst->file);
    free(inst->version);
    free(inst->description);
    free(inst->error);
    free(inst);
}

const char *instance_status_name(instance_status s)
{
    switch (s) {
    case INSTANCE_LOADED:
        return "loaded";
    case INSTANCE_FAILED:
        return "failed";
    case INSTANCE_DRAINING:
        return "draining";
    }
    return "unknown";
}

const ingest_stream *instance_stream(const instance *inst, size_t i)
{
    const ingest_stream *s =
        (const ingest_stream *)((const char *)inst->desc.streams + i * inst->desc.stream_size);
    return s->name ? s : NULL;
}

int instance_has_stream(const instance *inst, const char *name)
{
    for (size_t i = 0; i < inst->desc.n_streams; i++) {
        const ingest_stream *s = instance_stream(inst, i);
        if (s && strcmp(s->name, name) == 0)
            return 1;
    }
    return 0;
}
