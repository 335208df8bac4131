/* rest_read.c — the tenant's jobs, signals and dead letters, newest first,
 * in keyset pages; and replay of one dead letter. Every statement carries
 * tenant_id = $1, so another tenant's rows are simply not there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadletters.h"
#include "log.h"
#include "rest.h"
#include "rest_routes.h"
#include "util.h"

/* Filter values for $5.. of a list statement, owned by the request. */
typedef struct list_filters {
    const char *scope, *sql;
    char text[6][128];
    const char *v[6];
    int n;
} list_filters;

static void add_text(list_filters *f, const char *value)
{
    if (value) {
        snprintf(f->text[f->n], sizeof f->text[f->n], "%s", value);
        f->v[f->n] = f->text[f->n];
    } else {
        f->v[f->n] = NULL;
    }
    f->n++;
}

/* A query parameter that is a plain name (provider, kind, ...). */
static int add_name(rest_req *r, list_filters *f, const char *param)
{
    const char *v = rest_query(r, param);
    if (v && (!*v || strlen(v) >= sizeof f->text[0])) {
        rest_bad_param(r, param, "%s must be 1 to %zu characters", param, sizeof f->text[0] - 1);
        return -1;
    }
    add_text(f, v);
    return 0;
}

static int add_uuid(rest_req *r, list_filters *f, const char *param)
{
    char id[37];
    if (rest_uuid_param(r, param, id) < 0)
        return -1;
    add_text(f, id[0] ? id : NULL);
    return 0;
}

/* since (inclusive) and until (exclusive) as two filters. */
static int add_range(rest_req *r, list_filters *f)
{
    char since[24], until[24];
    if (rest_time_param(r, "since", since) < 0 || rest_time_param(r, "until", until) < 0)
        return -1;
    add_text(f, since[0] ? since : NULL);
    add_text(f, until[0] ? until : NULL);
    return 0;
}

static int one_of(rest_req *r, const char *param, const char *const *allowed)
{
    const char *v = rest_query(r, param);
    for (size_t i = 0; v && allowed[i]; i++)
        if (strcmp(v, allowed[i]) == 0)
            return 0;
    if (!v)
        return 0;
    char list[256] = "";
    for (size_t i = 0; allowed[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 allowed[i]);
    rest_bad_param(r, param, "%s must be one of %s", param, list);
    return -1;
}

static int list_fn(PGconn *conn, void *arg)
{
    rest_req *r = arg;
    const list_filters *f = r->ctx;
    return rest_list(r, conn, f->scope, f->sql, f->v, f->n);
}

static void list_work(rest_req *r) { rest_store(r, list_fn); }

static list_filters *new_filters(rest_req *r, const char *scope, const char *sql)
{
    list_filters *f = calloc(1, sizeof *f);
    if (!f) {
        rest_fail(r, 503, "busy", "out of memory");
        return NULL;
    }
    f->scope = scope;
    f->sql = sql;
    r->ctx = f;
    r->ctx_free = free;
    return f;
}

/* ------------------------------------------------------------------ jobs */

/* clang-format off */
static const char jobs_sql[] =
    "SELECT json_build_object('id', id, 'provider', provider, 'connection_id', connection_id,"
    "  'stream', stream, 'kind', kind, 'state', state, 'attempts', attempts,"
    "  'max_attempts', max_attempts, 'run_after', run_after, 'last_error', last_error,"
    "  'records', records, 'created_at', created_at, 'started_at', started_at,"
    "  'finished_at', finished_at, 'updated_at', updated_at)::text," REST_US("created_at")
    ", id::text FROM sync_jobs WHERE tenant_id = $1"
    " AND ($3::bigint IS NULL OR (created_at, id) < (" REST_TS("$3") ", $4::uuid))"
    " AND ($5::text IS NULL OR provider = $5) AND ($6::text IS NULL OR state = $6)"
    " AND ($7::uuid IS NULL OR connection_id = $7)"
    " AND ($8::bigint IS NULL OR created_at >= " REST_TS("$8") ")"
    " AND ($9::bigint IS NULL OR created_at < " REST_TS("$9") ")"
    " ORDER BY created_at DESC, id DESC LIMIT $2::int";
/* clang-format on */

void rest_list_jobs(rest_req *r)
{
    static const char *const states[] = {"queued",   "running", "succeeded", "failed",
                                         "retrying", "dead",    NULL};
    list_filters *f = new_filters(r, "jobs", jobs_sql);
    if (!f || rest_page_params(r, "jobs") < 0 || one_of(r, "state", states) < 0 ||
        add_name(r, f, "provider") < 0 || add_name(r, f, "state") < 0 ||
        add_uuid(r, f, "connection_id") < 0 || add_range(r, f) < 0) {
        rest_reply(r);
        return;
    }
    rest_async(r, list_work);
}

/* --------------------------------------------------------------- signals */

/* clang-format off */
static const char signals_sql[] =
    "SELECT json_build_object('id', id, 'connection_id', connection_id, 'source', source,"
    "  'kind', kind, 'occurred_at', occurred_at, 'dedupe_key', dedupe_key,"
    "  'payload', payload, 'provenance', provenance, 'created_at', created_at)::text, "
    REST_US("occurred_at") ", id::text FROM signals WHERE tenant_id = $1"
    " AND ($3::bigint IS NULL OR (occurred_at, id) < (" REST_TS("$3") ", $4::uuid))"
    " AND ($5::text IS NULL OR source = $5) AND ($6::text IS NULL OR kind = $6)"
    " AND ($7::uuid IS NULL OR connection_id = $7)"
    " AND ($8::bigint IS NULL OR occurred_at >= " REST_TS("$8") ")"
    " AND ($9::bigint IS NULL OR occurred_at < " REST_TS("$9") ")"
    " ORDER BY occurred_at DESC, id DESC LIMIT $2::int";
/* clang-format on */

void rest_list_signals(rest_req *r)
{
    list_filters *f = new_filters(r, "signals", signals_sql);
    if (!f || rest_page_params(r, "signals") < 0 || add_name(r, f, "source") < 0 ||
        add_name(r, f, "kind") < 0 || add_uuid(r, f, "connection_id") < 0 || add_range(r, f) < 0) {
        rest_reply(r);
        return;
    }
    rest_async(r, list_work);
}

/* ---------------------------------------------------------- dead letters */

/* clang-format off */
static const char deadletters_sql[] =
    "SELECT json_build_object('id', id, 'kind', kind, 'provider', provider,"
    "  'connection_id', connection_id, 'ref_id', ref_id, 'payload', payload, 'error', error,"
    "  'attempts', attempts, 'created_at', created_at, 'replayed_at', replayed_at)::text, "
    REST_US("created_at") ", id::text FROM dead_letters WHERE tenant_id = $1"
    " AND ($3::bigint IS NULL OR (created_at, id) < (" REST_TS("$3") ", $4::uuid))"
    " AND ($5::text IS NULL OR provider = $5) AND ($6::text IS NULL OR kind = $6)"
    " AND ($7::bigint IS NULL OR created_at >= " REST_TS("$7") ")"
    " AND ($8::bigint IS NULL OR created_at < " REST_TS("$8") ")"
    " ORDER BY created_at DESC, id DESC LIMIT $2::int";
/* clang-format on */

void rest_list_deadletters(rest_req *r)
{
    static const char *const kinds[] = {"webhook", "job", "record", NULL};
    list_filters *f = new_filters(r, "deadletters", deadletters_sql);
    if (!f || rest_page_params(r, "deadletters") < 0 || one_of(r, "kind", kinds) < 0 ||
        add_name(r, f, "provider") < 0 || add_name(r, f, "kind") < 0 || add_range(r, f) < 0) {
        rest_reply(r);
        return;
    }
    rest_async(r, list_work);
}

/* ---------------------------------------------------------------- replay */

static int owned_fn(PGconn *conn, void *arg)
{
    rest_req *r = arg;
    const char *p[] = {r->arg[0], r->tenant};
    PGresult *res = NULL;
    int rc = store_exec(conn, "SELECT 1 FROM dead_letters WHERE id = $1 AND tenant_id = $2", 2, p,
                        &res, NULL, 0);
    if (rc != INGEST_OK)
        return rc;
    if (PQntuples(res) == 0)
        rest_fail(r, 404, "not_found", "no dead letter %s", r->arg[0]);
    PQclear(res);
    return INGEST_OK;
}

static void replay_work(rest_req *r)
{
    /* Ownership first, in its own call: deadletters_replay runs its own. */
    if (rest_store(r, owned_fn) != INGEST_OK || r->status)
        return;
    long long replayed = 0;
    char err[512];
    int rc = deadletters_replay(r->h->store, r->arg[0], &replayed, err, sizeof err);
    if (rc == INGEST_ENOTFOUND) {
        rest_fail(r, 409, "not_replayable", "%s", err);
        return;
    }
    if (rc != INGEST_OK) {
        log_warn("rest: replay of %s failed: %s", r->arg[0], err);
        rest_fail(r, 503, "database_unavailable", "the replay could not be stored; retry later");
        r->retry_after = REST_RETRY_DOWN_S;
        return;
    }
    log_write(INGEST_LOG_INFO, &(log_fields){.tenant = r->tenant}, "rest: dead letter %s replayed",
              r->arg[0]);
    json_object *out = json_object_new_object();
    json_object_object_add(out, "id", json_object_new_string(r->arg[0]));
    json_object_object_add(out, "replayed", json_object_new_int64(replayed));
    rest_ok(r, 202, out);
}

void rest_replay_deadletter(rest_req *r)
{
    if (!util_is_uuid(r->arg[0])) {
        rest_bad_param(r, "id", "the dead letter id must be a UUID");
        rest_reply(r);
        return;
    }
    rest_async(r, replay_work);
}
