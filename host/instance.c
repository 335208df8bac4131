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

/* Indexed by ingest_auth_kind. */
static const char *const auth_kind_names[] = {"none", "token", "oauth2", "basic", "aws", "app"};
#define N_AUTH_KINDS (sizeof auth_kind_names / sizeof auth_kind_names[0])

const char *instance_auth_kind_name(ingest_auth_kind kind)
{
    return (unsigned)kind < N_AUTH_KINDS ? auth_kind_names[kind] : NULL;
}

int instance_auth_kind_parse(const char *name, ingest_auth_kind *kind)
{
    for (size_t i = 0; name && i < N_AUTH_KINDS; i++)
        if (strcmp(name, auth_kind_names[i]) == 0) {
            *kind = (ingest_auth_kind)i;
            return 0;
        }
    return -1;
}

unsigned instance_auth_kinds(const instance *inst)
{
    unsigned primary =
        (unsigned)inst->desc.auth.kind < N_AUTH_KINDS ? INGEST_AUTH_BIT(inst->desc.auth.kind) : 0;
    return (primary | inst->desc.auth_kinds_also) & INSTANCE_AUTH_KNOWN;
}

int instance_accepts_auth(const instance *inst, ingest_auth_kind kind)
{
    return (unsigned)kind < N_AUTH_KINDS && (instance_auth_kinds(inst) & INGEST_AUTH_BIT(kind));
}

void instance_auth_kinds_text(const instance *inst, char *out, size_t out_len)
{
    unsigned kinds = instance_auth_kinds(inst);
    const char *primary = instance_auth_kind_name(inst->desc.auth.kind);
    size_t n = (size_t)snprintf(out, out_len, "%s", primary ? primary : "");
    for (size_t i = 0; i < N_AUTH_KINDS && n < out_len; i++)
        if ((kinds & INGEST_AUTH_BIT(i)) && i != (size_t)inst->desc.auth.kind)
            n += (size_t)snprintf(out + n, out_len - n, "%s%s", n ? ", " : "", auth_kind_names[i]);
}

int instance_connection_auth(const instance *inst, const char *stored, ingest_auth_kind *kind,
                             char *err, size_t err_len)
{
    ingest_auth_kind k;
    if (instance_auth_kind_parse(stored, &k) == 0 && instance_accepts_auth(inst, k)) {
        *kind = k;
        return INGEST_OK;
    }
    if (inst->desc.auth_kinds_also == 0) {
        *kind = inst->desc.auth.kind;
        return INGEST_OK;
    }
    if (err && err_len) {
        char accepted[128];
        instance_auth_kinds_text(inst, accepted, sizeof accepted);
        snprintf(err, err_len, "the connection's auth kind '%.32s' is not one %s accepts (%s)",
                 stored ? stored : "", inst->name, accepted);
    }
    return INGEST_EUNSUPPORTED;
}
