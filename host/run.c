/* run.c — signals are validated and shaped into rows as they are emitted, and
 * committed together with the cursor that follows them. */
#include "run.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "instance.h"
#include "log.h"
#include "secrets.h"
#include "store.h"
#include "util.h"

/* Largest signal (payload + raw) the host accepts from a plugin. */
#define MAX_SIGNAL_JSON (4u << 20)

struct ingest_run {
    instance *inst;
    char *tenant_id, *connection_id, *job_id, *delivery_id;
    char batch_id[37];
    json_object *rows; /* pending signal rows */
    char error[512];
    store_fence fence; /* job_id NULL when not a job */
    char *fence_owner;
    long long stored;
};

ingest_run *run_new(instance *inst, const char *tenant_id, const char *connection_id,
                    const char *job_id, const char *delivery_id)
{
    ingest_run *run = calloc(1, sizeof *run);
    if (!run)
        return NULL;
    run->inst = inst;
    run->tenant_id = tenant_id ? strdup(tenant_id) : NULL;
    run->connection_id = connection_id ? strdup(connection_id) : NULL;
    run->job_id = job_id ? strdup(job_id) : NULL;
    run->delivery_id = delivery_id ? strdup(delivery_id) : NULL;
    run->rows = json_object_new_array();
    util_uuid4(run->batch_id);
    return run;
}

int run_set_fence(ingest_run *run, const char *job_id, const char *owner, int lease_s)
{
    free(run->fence_owner);
    run->fence_owner = strdup(owner);
    if (!run->fence_owner || !run->job_id || strcmp(run->job_id, job_id) != 0)
        return INGEST_EINVAL;
    run->fence = (store_fence){run->job_id, run->fence_owner, lease_s};
    return INGEST_OK;
}

long long run_stored(const ingest_run *run) { return run->stored; }

void run_free(ingest_run *run)
{
    if (!run)
        return;
    free(run->fence_owner);
    json_object_put(run->rows);
    free(run->tenant_id);
    free(run->connection_id);
    free(run->job_id);
    free(run->delivery_id);
    free(run);
}

const char *run_tenant(const ingest_run *run) { return run->tenant_id; }
const char *run_job(const ingest_run *run) { return run->job_id; }
const char *run_delivery(const ingest_run *run) { return run->delivery_id; }
const char *run_error(const ingest_run *run) { return run->error[0] ? run->error : NULL; }

static int run_fail(ingest_run *run, int status, const char *fmt, ...) INGEST_PRINTF(3, 4);
static int run_fail(ingest_run *run, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(run->error, sizeof run->error, fmt, ap);
    va_end(ap);
    return status;
}

static json_object *parse_object(const char *text)
{
    if (!text)
        return NULL;
    if (strlen(text) > MAX_SIGNAL_JSON)
        return NULL;
    json_object *o = json_tokener_parse(text);
    if (!o)
        return NULL;
    if (json_object_get_type(o) != json_type_object) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static void add_str(json_object *o, const char *key, const char *value)
{
    if (value)
        json_object_object_add(o, key, json_object_new_string(value));
}

static json_object *build_provenance(ingest_run *run, const ingest_signal *s, json_object *extra)
{
    json_object *p = extra ? extra : json_object_new_object();
    char now[32], digest[65];
    util_format_time(util_now_us(), now);
    const char *hashed = s->raw_json ? s->raw_json : s->payload_json;
    util_sha256_hex(hashed, strlen(hashed), digest);
    add_str(p, "source_id", s->source_id);
    add_str(p, "source_type", s->source_type);
    add_str(p, "source_uri", s->source_uri);
    add_str(p, "content_sha256", digest);
    add_str(p, "observed_at", now); /* ingested_at is added by the store at commit */
    add_str(p, "batch_id", run->batch_id);
    add_str(p, "job_id", run->job_id);
    add_str(p, "delivery_id", run->delivery_id);
    json_object *plugin = json_object_new_object();
    add_str(plugin, "name", run->inst->name);
    add_str(plugin, "version", run->inst->version);
    json_object_object_add(p, "plugin", plugin);
    return p;
}

/* Copy the plugin's signal into a zeroed host-sized struct by its size. */
static int take_signal(ingest_run *run, const ingest_signal *in, ingest_signal *out)
{
    memset(out, 0, sizeof *out);
    if (!in || in->hdr.magic != INGEST_ABI_MAGIC || in->hdr.abi_major != INGEST_ABI_MAJOR ||
        in->hdr.struct_size < offsetof(ingest_signal, payload_json) + sizeof(char *))
        return run_fail(run, INGEST_EINVAL, "signal has a bad ABI header");
    size_t take = in->hdr.struct_size < sizeof *out ? in->hdr.struct_size : sizeof *out;
    memcpy(out, in, take);
    return INGEST_OK;
}

int run_emit(ingest_run *run, const ingest_signal *signal)
{
    ingest_signal s;
    int rc = take_signal(run, signal, &s);
    if (rc != INGEST_OK)
        return rc;
    if (!s.kind || !*s.kind || strlen(s.kind) > 200)
        return run_fail(run, INGEST_EINVAL, "signal needs a kind of 1..200 characters");
    if (!s.dedupe_key || !*s.dedupe_key || strlen(s.dedupe_key) > 1000)
        return run_fail(run, INGEST_EINVAL,
                        "signal '%s' needs a dedupe_key of 1..1000 "
                        "characters",
                        s.kind);
    const char *tenant = s.tenant_id ? s.tenant_id : run->tenant_id;
    if (!util_is_uuid(tenant))
        return run_fail(run, INGEST_EINVAL, "signal '%s' has no valid tenant_id", s.kind);
    json_object *payload = parse_object(s.payload_json);
    if (!payload)
        return run_fail(run, INGEST_EINVAL, "signal '%s': payload_json is not a JSON object",
                        s.kind);
    json_object *raw = NULL, *extra = NULL;
    if (s.raw_json && !(raw = json_tokener_parse(s.raw_json))) {
        json_object_put(payload);
        return run_fail(run, INGEST_EINVAL, "signal '%s': raw_json is not valid JSON", s.kind);
    }
    if (s.provenance_json && !(extra = parse_object(s.provenance_json))) {
        json_object_put(payload);
        json_object_put(raw);
        return run_fail(run, INGEST_EINVAL, "signal '%s': provenance_json is not a JSON object",
                        s.kind);
    }
    char occurred[32];
    util_format_time(s.occurred_at_us, occurred);
    json_object *row = json_object_new_object();
    add_str(row, "tenant_id", tenant);
    add_str(row, "connection_id", run->connection_id);
    add_str(row, "source", run->inst->name);
    add_str(row, "kind", s.kind);
    add_str(row, "occurred_at", occurred);
    add_str(row, "dedupe_key", s.dedupe_key);
    json_object_object_add(row, "payload", payload);
    json_object_object_add(row, "raw", raw);
    json_object_object_add(row, "provenance", build_provenance(run, &s, extra));
    json_object_array_add(run->rows, row);
    atomic_fetch_add(&run->inst->signals_emitted, 1);
    return INGEST_OK;
}

static int commit(ingest_run *run, const store_cursor *cursor)
{
    int inserted = 0;
    int rc = store_commit_fenced(run->inst->host->store, run->rows, cursor,
                                 run->fence.job_id ? &run->fence : NULL, &inserted);
    if (rc == INGEST_ECANCELED)
        return run_fail(run, rc, "the job's lease was lost to another host; nothing committed");
    if (rc != INGEST_OK)
        return run_fail(run, rc, "store commit failed (status %d)", rc);
    run->stored += inserted;
    atomic_fetch_add(&run->inst->signals_stored, (unsigned long long)inserted);
    metrics_add(run->inst->m_signals, inserted);
    json_object_put(run->rows);
    run->rows = json_object_new_array();
    util_uuid4(run->batch_id);
    return INGEST_OK;
}

int run_cursor_get(ingest_run *run, const char *stream, char **value)
{
    *value = NULL;
    if (!stream || !*stream)
        return run_fail(run, INGEST_EINVAL, "cursor_get needs a stream name");
    return store_cursor_get(run->inst->host->store, run->inst->name, run->connection_id, stream,
                            value);
}

int run_cursor_set(ingest_run *run, const char *stream, const char *value)
{
    if (!stream || !*stream || !value)
        return run_fail(run, INGEST_EINVAL, "cursor_set needs a stream name and a value");
    store_cursor c = {run->inst->name, run->connection_id, stream, value};
    return commit(run, &c);
}

int run_flush(ingest_run *run) { return commit(run, NULL); }

int run_secret_get(ingest_run *run, const char *field, char **value)
{
    *value = NULL;
    if (!field || !*field)
        return run_fail(run, INGEST_EINVAL, "secret_get needs a field name");
    if (!run->connection_id)
        return run_fail(run, INGEST_ENOTFOUND, "this run has no connection, so no secrets");
    hostd *h = run->inst->host;
    char err[512];
    int rc = secrets_get(h->store, atomic_load(&h->keyring), run->inst->name, run->connection_id,
                         field, value, err, sizeof err);
    if (rc != INGEST_OK)
        run_fail(run, rc, "%s", err);
    return rc;
}

int run_finish(ingest_run *run, int status)
{
    if (status != INGEST_OK)
        return status;
    return commit(run, NULL);
}
