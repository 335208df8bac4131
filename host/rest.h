/* rest.h — the operator REST API: routing, bearer auth, tenant scoping,
 * query validation, problem+json errors and the hand-off every route that
 * touches PostgreSQL uses (work on a worker, answer on the loop thread). */
#ifndef HOSTD_REST_H
#define HOSTD_REST_H

#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "hostd.h"
#include "instance.h"

#define REST_LIMIT_DEFAULT 50
#define REST_LIMIT_MAX 200
#define REST_RETRY_DOWN_S 5 /* database unavailable */
#define REST_RETRY_BUSY_S 1 /* worker queue full */
#define REST_MAX_ARG 128    /* longest path segment a route takes */

/* SQL fragments: a timestamptz as unix µs and back, exact to the µs (a
 * cursor must name the same instant PostgreSQL compares with). */
#define REST_US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"
#define REST_TS(param) "('epoch'::timestamptz + " param "::bigint * interval '1 microsecond')"

typedef struct rest_req rest_req;
/* A step of a request; `work` steps run on a worker, the rest on the loop. */
typedef void (*rest_fn)(rest_req *r);

struct rest_req {
    hostd *h;
    struct evhttp_request *req;
    enum evhttp_cmd_type method;
    char arg[2][REST_MAX_ARG]; /* the route's {} path segments, in order */
    char tenant[37];           /* "" on routes that are not tenant-scoped */
    struct evkeyvalq query;    /* parsed query string */
    json_object *body;         /* parsed JSON object body, or NULL */
    const crypto_keyring *kr;  /* keyring when the request arrived */
    instance *inst;            /* plugin reference taken by a route; released at the end */
    /* Pagination (rest_page_params). */
    int limit;
    int has_cursor;
    int64_t cursor_us;
    char cursor_id[37];
    /* The answer: a JSON body with status, or a problem. */
    int status;
    json_object *out;
    char code[48];
    char message[512];
    char param[64]; /* the parameter a 400 is about ("" when none) */
    int retry_after;
    /* Optional step run on the loop after async work, before the reply
     * (for loop-owned state such as caches). */
    rest_fn on_loop;
    /* Route-private state freed with the request. */
    void *ctx;
    void (*ctx_free)(void *ctx);
};

/* Entry point from httpd: every path that is not a webhook or health route. */
void rest_handle(hostd *h, struct evhttp_request *req, const char *path);

/* Record the answer (any thread); the last call wins. rest_ok takes `out`. */
void rest_ok(rest_req *r, int status, json_object *out);
void rest_fail(rest_req *r, int status, const char *code, const char *fmt, ...) INGEST_PRINTF(4, 5);
/* A 400 about one parameter: details.parameter names it. */
void rest_bad_param(rest_req *r, const char *param, const char *fmt, ...) INGEST_PRINTF(3, 4);
/* Send the recorded answer and free the request (loop thread). */
void rest_reply(rest_req *r);
/* Run `work` on a worker, then rest_reply on the loop; 503 when full. */
void rest_async(rest_req *r, rest_fn work);
/* Run fn(conn, r) on a store connection (worker); a failure to reach the
 * database becomes a 503 problem. Returns fn's status. */
int rest_store(rest_req *r, int (*fn)(PGconn *conn, void *r));

/* Query parameter `name` or NULL. */
const char *rest_query(rest_req *r, const char *name);
/* 400 (and -1) when the query has a parameter not in `allowed` (NULL-ended). */
int rest_check_query(rest_req *r, const char *const *allowed);
/* 400 (and -1) when the JSON body has a member not in `allowed`. */
int rest_body_keys(rest_req *r, const char *const *allowed);
/* limit and cursor (scope binds a cursor to its list); -1 after a 400. */
int rest_page_params(rest_req *r, const char *scope);
/* An RFC 3339 parameter as unix µs text into out[24] ("" when absent);
 * -1 after a 400 naming it. */
int rest_time_param(rest_req *r, const char *name, char out[24]);
/* A UUID parameter copied into out[37] ("" when absent); -1 after a 400. */
int rest_uuid_param(rest_req *r, const char *name, char out[37]);

/* Keyset-paginated list (worker, inside rest_store). `sql` selects
 * (item json text, time µs bigint, id text) ordered by (time DESC, id DESC)
 * with parameters $1 tenant, $2 limit + 1, $3 cursor µs, $4 cursor id and
 * the caller's filters from $5 on. Answers {"items", "next_cursor"}. */
int rest_list(rest_req *r, PGconn *conn, const char *scope, const char *sql,
              const char *const *filters, int n_filters);

/* A plugin by name for this request (reference kept until the reply):
 * NULL after a problem with `status` (404 for a path, 400 for a body
 * field) when no loaded plugin serves it. */
instance *rest_plugin(rest_req *r, const char *name, int status);

#endif
