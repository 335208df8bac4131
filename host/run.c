/* run.c — signals are validated and shaped into rows as they are emitted, and
 * committed together with the cursor that follows them. */
#include "run.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copy_rows.h"
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
    copy_rows rows;    /* pending signal rows in COPY text format */
    copy_rows rejects; /* pending dead letters of rejected records */
    json_object *prov; /* provenance fields shared by the run's rows */
    char error[512];
    store_fence fence; /* job_id NULL when not a job */
    char *fence_owner;
    long long stored;
    int64_t retry_after_ms; /* -1: the vendor named no wait */
    /* The connection's auth, looked up on first use (run_connection_auth). */
    int auth_rc;                /* 1 = not looked up yet, else its status */
    ingest_auth_kind auth_kind; /* as the plugin uses it */
    int64_t token_expires_us;   /* 0 = no known expiry */
    char auth_error[256];
    int minting; /* inside the plugin's mint_token */
};

ingest_run *run_new(instance *inst, const char *tenant_id, const char *connection_id,
                    const char *job_id, const char *delivery_id)
{
    ingest_run *run = calloc(1, sizeof *run);
    if (!run)
        return NULL;
    run->inst = inst;
    run->retry_after_ms = -1;
    run->auth_rc = 1;
    run->tenant_id = tenant_id ? strdup(tenant_id) : NULL;
    run->connection_id = connection_id ? strdup(connection_id) : NULL;
    run->job_id = job_id ? strdup(job_id) : NULL;
    run->delivery_id = delivery_id ? strdup(delivery_id) : NULL;
    copy_rows_init(&run->rows);
    util_uuid4(run->batch_id);
    run->prov = json_object_new_object();
    if (!run->prov) {
        run_free(run);
        return NULL;
    }
    return run;
}

int run_set_fence(ingest_run *run, const char *job_id, const char *owner, int lease_s)
{
    free(run->fence_owner);
    run->fence_owner = strdup(owner);
    if (!run->fence_owner || !run->job_id || strcmp(run->job_id, job_id) != 0)
        return INGEST_EINVAL;
    run->fence = (store_fence){run->job_id, run->fence_owner, lease_s, FENCE_JOB, 0};
    return INGEST_OK;
}

int run_set_delivery_fence(ingest_run *run, const char *delivery_id, const char *owner, int lease_s)
{
    free(run->fence_owner);
    run->fence_owner = strdup(owner);
    if (!run->fence_owner || !run->delivery_id || strcmp(run->delivery_id, delivery_id) != 0)
        return INGEST_EINVAL;
    run->fence = (store_fence){run->delivery_id, run->fence_owner, lease_s, FENCE_DELIVERY, 0};
    return INGEST_OK;
}

long long run_stored(const ingest_run *run) { return run->stored; }

void run_free(ingest_run *run)
{
    if (!run)
        return;
    free(run->fence_owner);
    copy_rows_free(&run->rows);
    copy_rows_free(&run->rejects);
    json_object_put(run->prov);
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
const char *run_connection(const ingest_run *run) { return run->connection_id; }

int run_route(ingest_run *run, const char *connection_id, const char *tenant_id)
{
    if (run->connection_id || !run->delivery_id || run->rows.n_rows || run->rejects.n_rows)
        return INGEST_ESTATE;
    char *conn = strdup(connection_id), *tenant = strdup(tenant_id);
    if (!conn || !tenant) {
        free(conn);
        free(tenant);
        return INGEST_ENOMEM;
    }
    free(run->tenant_id);
    run->tenant_id = tenant;
    run->connection_id = conn;
    run->auth_rc = 1; /* the connection's auth is looked up afresh */
    return INGEST_OK;
}
instance *run_instance(const ingest_run *run) { return run->inst; }

void run_set_retry_after(ingest_run *run, int64_t ms)
{
    if (run && ms > run->retry_after_ms)
        run->retry_after_ms = ms;
}

int64_t run_retry_after_ms(const ingest_run *run, int64_t fallback)
{
    return run && run->retry_after_ms >= 0 ? run->retry_after_ms : fallback;
}

/* One indexed row read; a transient failure is not cached, so the next
 * request asks again. */
static int lookup_auth(ingest_run *run)
{
    hostd *h = run->inst->host;
    char stored[32] = "";
    int rc = secrets_connection_auth(h->store, run->inst->name, run->connection_id, stored,
                                     sizeof stored, &run->token_expires_us, run->auth_error,
                                     sizeof run->auth_error);
    if (rc == INGEST_OK)
        rc = instance_connection_auth(run->inst, stored, &run->auth_kind, run->auth_error,
                                      sizeof run->auth_error);
    if (rc == INGEST_OK || rc == INGEST_ENOTFOUND || rc == INGEST_EUNSUPPORTED)
        run->auth_rc = rc;
    return rc;
}

int run_connection_auth(ingest_run *run, int reload, ingest_auth_kind *kind, int64_t *expires_us,
                        char *err, size_t err_len)
{
    int rc = run->auth_rc;
    if (!run->connection_id) {
        snprintf(run->auth_error, sizeof run->auth_error,
                 "this run has no connection, so no credentials");
        rc = INGEST_ENOTFOUND;
    } else if (reload || rc == 1) {
        rc = lookup_auth(run);
    }
    *kind = run->auth_kind;
    *expires_us = run->token_expires_us;
    if (rc != INGEST_OK && err && err_len)
        snprintf(err, err_len, "%s", run->auth_error);
    return rc;
}

void run_set_minting(ingest_run *run, int minting) { run->minting = minting; }
int run_minting(const ingest_run *run) { return run->minting; }

static int run_fail(ingest_run *run, int status, const char *fmt, ...) INGEST_PRINTF(3, 4);
static int run_fail(ingest_run *run, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(run->error, sizeof run->error, fmt, ap);
    va_end(ap);
    return status;
}

/* Strict parsing: what json-c accepts here, PostgreSQL's jsonb accepts too.
 * NULL if invalid. */
static json_object *parse_strict(const char *text)
{
    return util_json_parse_strict(text, MAX_SIGNAL_JSON);
}

/* Validate JSON text the plugin handed over; the text itself is what gets
 * stored, so the parsed tree is only looked at, never serialised again. */
static int json_text_ok(const char *text, int must_be_object)
{
    json_object *o = parse_strict(text);
    int ok = o && (!must_be_object || json_object_is_type(o, json_type_object));
    json_object_put(o);
    return ok;
}

static void set_or_del(json_object *o, const char *key, const char *value)
{
    if (value)
        json_object_object_add(o, key, json_object_new_string(value));
    else
        json_object_object_del(o, key);
}

/* Fields that are the same for every row of a batch. */
static void provenance_batch_fields(ingest_run *run, json_object *p)
{
    set_or_del(p, "batch_id", run->batch_id);
    set_or_del(p, "job_id", run->job_id);
    set_or_del(p, "delivery_id", run->delivery_id);
    json_object *plugin = json_object_new_object();
    set_or_del(plugin, "name", run->inst->name);
    set_or_del(plugin, "version", run->inst->version);
    json_object_object_add(p, "plugin", plugin);
}

static void provenance_row_fields(json_object *p, const ingest_signal *s)
{
    char now[32], digest[65];
    util_format_time(util_now_us(), now);
    const char *hashed = s->raw_json ? s->raw_json : s->payload_json;
    util_sha256_hex(hashed, strlen(hashed), digest);
    set_or_del(p, "source_id", s->source_id);
    set_or_del(p, "source_type", s->source_type);
    set_or_del(p, "source_uri", s->source_uri);
    set_or_del(p, "content_sha256", digest);
    set_or_del(p, "observed_at", now); /* ingested_at is added by the store at commit */
}

/* Append the row's provenance as a COPY field. Without plugin extras the
 * run's shared object is updated in place, which spares a tree per row. */
static int add_provenance(ingest_run *run, const ingest_signal *s)
{
    json_object *p = run->prov;
    if (s->provenance_json) {
        p = parse_strict(s->provenance_json);
        if (!p || !json_object_is_type(p, json_type_object)) {
            json_object_put(p);
            return -1;
        }
    }
    if (p != run->prov || json_object_object_length(p) == 0)
        provenance_batch_fields(run, p);
    provenance_row_fields(p, s);
    copy_rows_field(&run->rows, json_object_to_json_string_ext(
                                    p, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    if (p != run->prov)
        json_object_put(p);
    return 0;
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
    if (!json_text_ok(s.payload_json, 1))
        return run_fail(run, INGEST_EINVAL, "signal '%s': payload_json is not a JSON object",
                        s.kind);
    if (s.raw_json && !json_text_ok(s.raw_json, 0))
        return run_fail(run, INGEST_EINVAL, "signal '%s': raw_json is not valid JSON", s.kind);
    char occurred[32];
    util_format_time(s.occurred_at_us, occurred);
    size_t row_start = run->rows.len;
    copy_rows_field(&run->rows, tenant);
    copy_rows_field(&run->rows, run->connection_id);
    copy_rows_field(&run->rows, run->inst->name);
    copy_rows_field(&run->rows, s.kind);
    copy_rows_field(&run->rows, occurred);
    copy_rows_field(&run->rows, s.dedupe_key);
    copy_rows_field(&run->rows, s.payload_json);
    copy_rows_field(&run->rows, s.raw_json);
    if (add_provenance(run, &s) < 0) {
        copy_rows_drop_partial(&run->rows, row_start);
        return run_fail(run, INGEST_EINVAL, "signal '%s': provenance_json is not a JSON object",
                        s.kind);
    }
    copy_rows_end(&run->rows);
    if (run->rows.failed)
        return run_fail(run, INGEST_ENOMEM, "out of memory queueing signal '%s'", s.kind);
    atomic_fetch_add(&run->inst->signals_emitted, 1);
    return INGEST_OK;
}

/* Count what a commit stored and start the next batch. */
static int committed(ingest_run *run, int rc, int inserted)
{
    if (rc == INGEST_ECANCELED)
        return run_fail(run, rc, "the lease was lost to another host; nothing committed");
    if (rc != INGEST_OK)
        return run_fail(run, rc, "store commit failed (status %d)", rc);
    run->stored += inserted;
    atomic_fetch_add(&run->inst->signals_stored, (unsigned long long)inserted);
    metrics_add(run->inst->m_signals, inserted);
    metrics_add(run->inst->m_rejected, (double)run->rejects.n_rows);
    copy_rows_reset(&run->rows);
    copy_rows_reset(&run->rejects);
    util_uuid4(run->batch_id);
    /* The next batch gets its own batch_id: rebuild the shared fields. */
    json_object_put(run->prov);
    run->prov = json_object_new_object();
    return run->prov ? INGEST_OK : run_fail(run, INGEST_ENOMEM, "out of memory");
}

/* The run's pending commit as a store part (borrowing the run's buffers). */
static int as_part(ingest_run *run, const store_cursor *cursor, store_part *part)
{
    if (run->rows.failed || run->rejects.failed)
        return run_fail(run, INGEST_ENOMEM, "out of memory queueing signals; nothing committed");
    *part = (store_part){.rows = &run->rows,
                         .cursor = cursor,
                         .fence = run->fence.job_id ? &run->fence : NULL,
                         .status = INGEST_EIO,
                         .rejects = &run->rejects};
    return INGEST_OK;
}

static int commit(ingest_run *run, const store_cursor *cursor)
{
    store_part part;
    int rc = as_part(run, cursor, &part);
    if (rc != INGEST_OK)
        return rc;
    store_commit_parts(run->inst->host->store, &part, 1);
    return committed(run, part.status, part.inserted);
}

int run_reject(ingest_run *run, const char *error, const char *detail_json)
{
    if (!error || !*error || !detail_json)
        return run_fail(run, INGEST_EINVAL, "reject needs an error and a detail object");
    if (strlen(detail_json) > MAX_SIGNAL_JSON || !json_text_ok(detail_json, 1))
        return run_fail(run, INGEST_EINVAL, "reject: detail_json is not a JSON object");
    copy_rows_field(&run->rejects, "record");
    copy_rows_field(&run->rejects, run->tenant_id);
    copy_rows_field(&run->rejects, run->inst->name);
    copy_rows_field(&run->rejects, run->connection_id);
    copy_rows_field(&run->rejects, run->job_id ? run->job_id : run->delivery_id);
    copy_rows_field(&run->rejects, detail_json);
    copy_rows_field(&run->rejects, error);
    copy_rows_end(&run->rejects);
    if (run->rejects.failed)
        return run_fail(run, INGEST_ENOMEM, "out of memory queueing a rejected record");
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
    run->fence.complete = 1;
    return commit(run, NULL);
}

int run_finish_part(ingest_run *run, int status, store_part *part)
{
    if (status != INGEST_OK)
        return status;
    run->fence.complete = 1;
    return as_part(run, NULL, part);
}

int run_part_committed(ingest_run *run, const store_part *part)
{
    return committed(run, part->status, part->inserted);
}
