/* test_http_client.c — the HTTP client against a scripted evhttp server on
 * 127.0.0.1 in a background thread. The server records when each request
 * arrived and when its reply went out, and which TCP connection carried it,
 * so waits and connection reuse are measured where they matter. */
#include "unit_helpers.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "http_client.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "util.h"

#define MAX_STEPS 16
#define MAX_REQUESTS 64
#define SECRET_BEARER "s3cr3t-T0KEN-value-0123456789"
#define SECRET_API_KEY "k3y-value-abcdef"
#define SECRET_PASSWORD "pa55word-xyz"
#define SECRET_URL_TOKEN "url-t0ken-abc"

/* ---- the scripted server ------------------------------------------------- */

typedef struct step {
    int status;
    const char *headers[6]; /* "Name: value" */
    const char *body;       /* NULL = "" */
    size_t body_len;        /* 0 = strlen(body) */
    int chunked;            /* send without Content-Length */
    int stall;              /* chunked: send the first half of the body, then nothing */
} step;

typedef struct seen_request {
    int64_t arrived_ms, replied_ms; /* util_mono_ms() */
    uint16_t peer_port;
    char method[8];
    char *uri, *authorization, *amz_token, *amz_sha256, *range, *body;
} seen_request;

typedef struct mock {
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
    int port;
    pthread_mutex_t lock;
    step script[MAX_STEPS]; /* after the last step, the last one repeats */
    size_t n_steps;
    seen_request seen[MAX_REQUESTS];
    size_t n_seen;
    /* replies left open by stall steps (loop thread only) */
    struct evhttp_request *stalled[MAX_REQUESTS];
    size_t n_stalled;
} mock;

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    default:
        return "OTHER";
    }
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static seen_request *record(mock *m, struct evhttp_request *req)
{
    seen_request *r = &m->seen[m->n_seen < MAX_REQUESTS ? m->n_seen++ : MAX_REQUESTS - 1];
    r->arrived_ms = util_mono_ms();
    char *addr = NULL;
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &r->peer_port);
    snprintf(r->method, sizeof r->method, "%s", method_name(evhttp_request_get_command(req)));
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    r->uri = dup_or_null(evhttp_request_get_uri(req));
    r->authorization = dup_or_null(evhttp_find_header(in, "Authorization"));
    r->amz_token = dup_or_null(evhttp_find_header(in, "x-amz-security-token"));
    r->amz_sha256 = dup_or_null(evhttp_find_header(in, "x-amz-content-sha256"));
    r->range = dup_or_null(evhttp_find_header(in, "Range"));
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    r->body = calloc(1, len + 1);
    evbuffer_copyout(body, r->body, len);
    return r;
}

static void add_step_headers(struct evhttp_request *req, const step *s)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    for (size_t i = 0; i < 6 && s->headers[i]; i++) {
        char name[128];
        const char *colon = strchr(s->headers[i], ':');
        snprintf(name, sizeof name, "%.*s", (int)(colon - s->headers[i]), s->headers[i]);
        evhttp_add_header(out, name, colon + 1 + strspn(colon + 1, " "));
    }
}

static void on_request(struct evhttp_request *req, void *arg)
{
    mock *m = arg;
    pthread_mutex_lock(&m->lock);
    seen_request *r = record(m, req);
    step s = m->script[(m->n_seen - 1 < m->n_steps ? m->n_seen : m->n_steps) - 1];
    pthread_mutex_unlock(&m->lock);

    add_step_headers(req, &s);
    struct evbuffer *buf = evbuffer_new();
    const char *body = s.body ? s.body : "";
    size_t len = s.body_len ? s.body_len : strlen(body);
    evbuffer_add(buf, body, s.stall ? len / 2 : len);
    if (s.stall) {
        /* the rest never comes; mock_stop() ends the reply */
        evhttp_send_reply_start(req, s.status, NULL);
        evhttp_send_reply_chunk(req, buf);
        if (m->n_stalled < MAX_REQUESTS)
            m->stalled[m->n_stalled++] = req;
    } else if (s.chunked) {
        evhttp_send_reply_start(req, s.status, NULL);
        evhttp_send_reply_chunk(req, buf);
        evhttp_send_reply_end(req);
    } else {
        evhttp_send_reply(req, s.status, NULL, buf);
    }
    evbuffer_free(buf);
    pthread_mutex_lock(&m->lock);
    r->replied_ms = util_mono_ms();
    pthread_mutex_unlock(&m->lock);
}

static void *serve(void *arg)
{
    mock *m = arg;
    event_base_dispatch(m->base);
    return NULL;
}

static int bound_port(struct evhttp_bound_socket *bound)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&addr, &len) != 0)
        return -1;
    return ntohs(addr.sin_port);
}

static mock *mock_start(void)
{
    mock *m = calloc(1, sizeof *m);
    assert_non_null(m);
    pthread_mutex_init(&m->lock, NULL);
    m->base = event_base_new();
    m->http = evhttp_new(m->base);
    assert_non_null(m->http);
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(m->http, on_request, m);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(m->http, "127.0.0.1", 0);
    assert_non_null(bound);
    m->port = bound_port(bound);
    assert_true(m->port > 0);
    m->script[0] = (step){.status = 200, .body = "ok"};
    m->n_steps = 1;
    assert_int_equal(pthread_create(&m->thread, NULL, serve, m), 0);
    return m;
}

/* End the replies stall steps left open (libevent frees a request whose
 * client went away only then), and stop the loop. */
static void break_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    mock *m = arg;
    for (size_t i = 0; i < m->n_stalled; i++)
        evhttp_send_reply_end(m->stalled[i]);
    event_base_loopbreak(m->base);
}

static void mock_stop(mock *m)
{
    /* A loopbreak sent before the loop started would be forgotten when it
     * starts; an event is not. */
    struct timeval now = {0, 0};
    event_base_once(m->base, -1, EV_TIMEOUT, break_loop, m, &now);
    pthread_join(m->thread, NULL);
    evhttp_free(m->http);
    event_base_free(m->base);
    for (size_t i = 0; i < m->n_seen; i++) {
        free(m->seen[i].uri);
        free(m->seen[i].authorization);
        free(m->seen[i].amz_token);
        free(m->seen[i].amz_sha256);
        free(m->seen[i].range);
        free(m->seen[i].body);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void mock_script(mock *m, const step *steps, size_t n)
{
    pthread_mutex_lock(&m->lock);
    memcpy(m->script, steps, n * sizeof *steps);
    m->n_steps = n;
    pthread_mutex_unlock(&m->lock);
}

static size_t mock_count(mock *m)
{
    pthread_mutex_lock(&m->lock);
    size_t n = m->n_seen;
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* Distinct TCP connections (client ports) that carried requests. */
static size_t mock_connections(mock *m)
{
    size_t distinct = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_seen; i++) {
        int first = 1;
        for (size_t j = 0; j < i; j++)
            if (m->seen[j].peer_port == m->seen[i].peer_port)
                first = 0;
        distinct += first;
    }
    pthread_mutex_unlock(&m->lock);
    return distinct;
}

/* ---- fixture ------------------------------------------------------------- */

typedef struct fixture {
    mock *server;
    metrics_registry *metrics;
    ratelimit_registry *limits;
    http_client *client;
    char url[128];
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    fx->server = mock_start();
    fx->metrics = metrics_new();
    fx->limits = ratelimit_new(0.7);
    http_client_options opts = {.limits = fx->limits, .metrics = fx->metrics};
    fx->client = http_client_new(&opts);
    snprintf(fx->url, sizeof fx->url, "http://127.0.0.1:%d/items", fx->server->port);
    *state = fx;
    return fx->client && fx->metrics && fx->limits ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    http_client_free(fx->client);
    ratelimit_free(fx->limits);
    metrics_free(fx->metrics);
    mock_stop(fx->server);
    free(fx);
    return 0;
}

/* A fast retry policy for tests that only care that retries happen. */
static const backoff_policy quick_backoff = {20, 100, 0.25};

static int get(fixture *fx, const http_policy *pol, http_response *resp)
{
    http_request req = {.url = fx->url};
    return http_client_perform(fx->client, &req, pol, resp);
}

static void assert_metric(fixture *fx, const char *series_line)
{
    char *text = metrics_render(fx->metrics);
    assert_contains(text, series_line);
    free(text);
}

/* ---- plain requests ------------------------------------------------------- */

static void test_get_200_with_body_and_headers(void **state)
{
    fixture *fx = *state;
    step s[] = {{.status = 200, .headers = {"X-Test: one", "x-test: two"}, .body = "hello"}};
    mock_script(fx->server, s, 1);
    ingest_header hdrs[] = {{"Accept", "application/json"}};
    http_request req = {.url = fx->url, .headers = hdrs, .n_headers = 1};
    http_response resp;
    assert_int_equal(
        http_client_perform(fx->client, &req, &(http_policy){.provider = "mock"}, &resp),
        INGEST_OK);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body, "hello");
    assert_int_equal(resp.body_len, 5);
    assert_string_equal(http_response_header(&resp, "X-TEST"), "two"); /* last one wins */
    assert_null(http_response_header(&resp, "X-Missing"));
    assert_null(resp.next_url);
    assert_int_equal(resp.retry_after_ms, -1);
    assert_int_equal(resp.attempts, 1);
    assert_string_equal(resp.error, "");
    assert_string_equal(fx->server->seen[0].method, "GET");
    assert_string_equal(fx->server->seen[0].uri, "/items");
    assert_metric(fx, "ingest_http_requests_total{provider=\"mock\",code=\"2xx\"} 1");
    http_response_free(&resp);
}

static void test_empty_body_is_nul_terminated(void **state)
{
    fixture *fx = *state;
    step s[] = {{.status = 204}};
    mock_script(fx->server, s, 1);
    http_response resp;
    assert_int_equal(get(fx, NULL, &resp), INGEST_OK);
    assert_int_equal(resp.status, 204);
    assert_non_null(resp.body);
    assert_int_equal(resp.body_len, 0);
    assert_string_equal(resp.body, "");
    http_response_free(&resp);
}

static void test_post_put_delete_send_method_and_body(void **state)
{
    fixture *fx = *state;
    const char *json = "{\"q\":\"x\"}";
    const char *methods[] = {"POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < 4; i++) {
        http_request req = {
            .method = methods[i], .url = fx->url, .body = json, .body_len = strlen(json)};
        http_response resp;
        assert_int_equal(http_client_perform(fx->client, &req, NULL, &resp), INGEST_OK);
        http_response_free(&resp);
        assert_string_equal(fx->server->seen[i].method, methods[i]);
        assert_string_equal(fx->server->seen[i].body, json);
    }
}

static void test_client_error_is_returned_not_retried(void **state)
{
    fixture *fx = *state;
    step s[] = {{.status = 404, .body = "{\"message\":\"Not Found\"}"}};
    mock_script(fx->server, s, 1);
    http_response resp;
    assert_int_equal(get(fx, &(http_policy){.provider = "mock"}, &resp), INGEST_OK);
    assert_int_equal(resp.status, 404);
    assert_int_equal(resp.attempts, 1);
    assert_int_equal(mock_count(fx->server), 1);
    assert_metric(fx, "ingest_http_requests_total{provider=\"mock\",code=\"4xx\"} 1");
    http_response_free(&resp);
}

static void test_link_next_is_parsed(void **state)
{
    fixture *fx = *state;
    step s[] = {{.status = 200,
                 .headers = {"Link: </items?page=3>; rel=\"next\", </items?page=9>; rel=\"last\""},
                 .body = "[]"}};
    mock_script(fx->server, s, 1);
    http_response resp;
    assert_int_equal(get(fx, NULL, &resp), INGEST_OK);
    char expected[160];
    snprintf(expected, sizeof expected, "http://127.0.0.1:%d/items?page=3", fx->server->port);
    assert_non_null(resp.next_url);
    assert_string_equal(resp.next_url, expected);
    http_response_free(&resp);
}

/* ---- retries ------------------------------------------------------------ */

static void test_429_retry_after_is_honoured(void **state)
{
    fixture *fx = *state;
    step s[] = {{.status = 429, .headers = {"Retry-After: 2"}}, {.status = 200, .body = "done"}};
    mock_script(fx->server, s, 2);
    http_response resp;
    assert_int_equal(get(fx, &(http_policy){.provider = "mock"}, &resp), INGEST_OK);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body, "done");
    assert_int_equal(resp.attempts, 2);
    assert_int_equal(mock_count(fx->server), 2);
    int64_t gap = fx->server->seen[1].arrived_ms - fx->server->seen[0].replied_ms;
    if (gap < 2000)
        print_error("second request %lld ms after the 429\n", (long long)gap);
    assert_true(gap >= 2000);
    assert_true(gap < 3000);
    assert_metric(fx, "ingest_http_429_total{provider=\"mock\"} 1");
    assert_metric(fx, "ingest_http_retries_total{provider=\"mock\",reason=\"429\"} 1");
    http_response_free(&resp);
}

static void test_503_twice_then_200_backs_off(void **state)
{
    fixture *fx = *state;
    step s[] = {{.status = 503}, {.status = 503}, {.status = 200, .body = "ok"}};
    mock_script(fx->server, s, 3);
    http_response resp;
    assert_int_equal(get(fx, &(http_policy){.provider = "mock"}, &resp), INGEST_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.attempts, 3);
    seen_request *seen = fx->server->seen;
    int64_t first = seen[1].arrived_ms - seen[0].replied_ms;
    int64_t second = seen[2].arrived_ms - seen[1].replied_ms;
    /* backoff_default: 1 s then 2 s, each ±25 % (plus scheduling slack) */
    assert_in_range(first, 750, 1250 + 250);
    assert_in_range(second, 1500, 2500 + 250);
    assert_metric(fx, "ingest_http_retries_total{provider=\"mock\",reason=\"5xx\"} 2");
    assert_metric(fx, "ingest_http_requests_total{provider=\"mock\",code=\"5xx\"} 2");
    http_response_free(&resp);
}

static void test_5xx_after_last_retry_is_a_response(void **state)
{
    fixture *fx = *state;
    step s[] = {{.status = 502, .body = "bad gateway"}};
    mock_script(fx->server, s, 1);
    http_response resp;
    http_policy pol = {.max_retries = 2, .backoff = &quick_backoff};
    assert_int_equal(get(fx, &pol, &resp), INGEST_OK);
    assert_int_equal(resp.status, 502);
    assert_int_equal(resp.attempts, 3);
    assert_int_equal(mock_count(fx->server), 3);
    http_response_free(&resp);
}

static void test_connection_refused_is_eio_after_retries(void **state)
{
    fixture *fx = *state;
    /* a port that was just free: bind, read the port, close */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    close(fd);
    snprintf(fx->url, sizeof fx->url, "http://127.0.0.1:%d/x", ntohs(addr.sin_port));

    http_response resp;
    http_policy pol = {.provider = "mock", .max_retries = 2, .backoff = &quick_backoff};
    int64_t started = util_mono_ms();
    assert_int_equal(get(fx, &pol, &resp), INGEST_EIO);
    assert_true(util_mono_ms() - started >= 15 + 30); /* two backoff sleeps */
    assert_int_equal(resp.attempts, 3);
    assert_int_equal(resp.status, 0);
    assert_true(strlen(resp.error) > 0);
    assert_contains(resp.error, "127.0.0.1");
    assert_metric(fx, "ingest_http_retries_total{provider=\"mock\",reason=\"transport\"} 2");
    assert_metric(fx, "ingest_http_requests_total{provider=\"mock\",code=\"error\"} 3");
    http_response_free(&resp);
}

/* ---- limits ------------------------------------------------------------- */

static void test_response_over_cap_is_a_clear_error(void **state)
{
    fixture *fx = *state;
    static char big[5000];
    memset(big, 'x', sizeof big);
    step with_length[] = {{.status = 200, .body = big, .body_len = sizeof big}};
    step chunked[] = {{.status = 200, .body = big, .body_len = sizeof big, .chunked = 1}};
    const step *variants[] = {with_length, chunked};
    for (size_t i = 0; i < 2; i++) {
        mock_script(fx->server, variants[i], 1);
        http_response resp;
        assert_int_equal(get(fx, &(http_policy){.max_response_bytes = 1000}, &resp), INGEST_EIO);
        assert_string_equal(resp.error, "response exceeds 1000 bytes");
        assert_int_equal(resp.attempts, 1); /* not retried */
        http_response_free(&resp);
    }
    /* at the cap is fine */
    step exact[] = {{.status = 200, .body = big, .body_len = 1000}};
    mock_script(fx->server, exact, 1);
    http_response resp;
    assert_int_equal(get(fx, &(http_policy){.max_response_bytes = 1000}, &resp), INGEST_OK);
    assert_int_equal(resp.body_len, 1000);
    http_response_free(&resp);
}

static void test_keep_alive_reuses_one_connection_per_worker(void **state)
{
    fixture *fx = *state;
    for (int i = 0; i < 5; i++) {
        http_response resp;
        assert_int_equal(get(fx, NULL, &resp), INGEST_OK);
        http_response_free(&resp);
    }
    assert_int_equal(mock_count(fx->server), 5);
    assert_int_equal(mock_connections(fx->server), 1);
}

typedef struct worker_arg {
    fixture *fx;
    int rc;
} worker_arg;

static void *second_worker(void *arg)
{
    worker_arg *w = arg;
    for (int i = 0; i < 3; i++) {
        http_response resp;
        w->rc |= get(w->fx, NULL, &resp);
        http_response_free(&resp);
    }
    return NULL; /* the thread's handle is released by the key destructor */
}

static void test_each_worker_has_its_own_connection(void **state)
{
    fixture *fx = *state;
    http_response resp;
    assert_int_equal(get(fx, NULL, &resp), INGEST_OK);
    http_response_free(&resp);
    worker_arg w = {fx, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, second_worker, &w), 0);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, INGEST_OK);
    assert_int_equal(get(fx, NULL, &resp), INGEST_OK);
    http_response_free(&resp);
    assert_int_equal(mock_count(fx->server), 5);
    assert_int_equal(mock_connections(fx->server), 2);
}

static void test_limiter_paces_requests(void **state)
{
    fixture *fx = *state;
    /* 10 per second at 70 %: 7 per second, burst 1 */
    http_policy pol = {.provider = "mock", .limiter_key = "mock/conn", .quota = {10, 1}};
    int64_t started = util_mono_ms();
    for (int i = 0; i < 10; i++) {
        http_response resp;
        assert_int_equal(get(fx, &pol, &resp), INGEST_OK);
        http_response_free(&resp);
    }
    assert_true(util_mono_ms() - started >= 9 * 142);
    seen_request *seen = fx->server->seen;
    for (size_t i = 0; i < 10; i++) {
        size_t in_window = 0;
        for (size_t j = i; j < 10; j++)
            in_window += seen[j].arrived_ms - seen[i].arrived_ms < 1000;
        assert_true(in_window <= 7);
    }
    ratelimit_stats st;
    assert_int_equal(ratelimit_get_stats(fx->limits, "mock/conn", util_mono_ms(), &st), 0);
    assert_int_equal(st.granted, 10);
    assert_in_range(st.waits, 8, 9); /* the first request needs no wait */
    char line[80];
    snprintf(line, sizeof line, "ingest_ratelimit_waits_total{provider=\"mock\"} %llu",
             (unsigned long long)st.waits);
    assert_metric(fx, line);
    assert_metric(fx, "ingest_ratelimit_wait_seconds_total{provider=\"mock\"} ");
    assert_metric(fx, "ingest_ratelimit_tokens{provider=\"mock\"} ");
}

static void test_reported_quota_defers_instead_of_failing(void **state)
{
    fixture *fx = *state;
    step s[8];
    static char remaining[8][40];
    for (int i = 0; i < 8; i++) {
        snprintf(remaining[i], sizeof remaining[i], "X-RateLimit-Remaining: %d", 9 - i);
        s[i] = (step){.status = 200,
                      .headers = {"X-RateLimit-Limit: 10", remaining[i], "X-RateLimit-Reset: 3600"},
                      .body = "[]"};
    }
    mock_script(fx->server, s, 8);
    http_policy pol = {.provider = "mock", .limiter_key = "mock/conn"};
    http_response resp;
    for (int i = 0; i < 7; i++) {
        assert_int_equal(get(fx, &pol, &resp), INGEST_OK);
        http_response_free(&resp);
    }
    int64_t started = util_mono_ms();
    assert_int_equal(get(fx, &pol, &resp), INGEST_ERATELIMITED);
    assert_true(util_mono_ms() - started < 500); /* no sleeping */
    assert_in_range(resp.wait_ms, 3590000, 3600000);
    assert_contains(resp.error, "mock/conn");
    assert_int_equal(mock_count(fx->server), 7);
    http_response_free(&resp);
}

static void test_max_inline_wait_exceeded_returns_ratelimited(void **state)
{
    fixture *fx = *state;
    step s[] = {{.status = 429, .headers = {"Retry-After: 120"}}};
    mock_script(fx->server, s, 1);
    http_response resp;
    http_policy pol = {.provider = "mock", .limiter_key = "mock/conn"};
    int64_t started = util_mono_ms();
    assert_int_equal(get(fx, &pol, &resp), INGEST_ERATELIMITED);
    assert_true(util_mono_ms() - started < 1000);
    assert_int_equal(resp.wait_ms, 120000);
    assert_int_equal(resp.status, 429);
    assert_int_equal(resp.retry_after_ms, 120000);
    http_response_free(&resp);

    /* the key stays blocked: the next call does not even reach the server */
    assert_int_equal(get(fx, &pol, &resp), INGEST_ERATELIMITED);
    assert_in_range(resp.wait_ms, 118000, 120000);
    assert_int_equal(mock_count(fx->server), 1);
    http_response_free(&resp);
}

static void test_persistent_429_is_ratelimited_after_retries(void **state)
{
    fixture *fx = *state;
    step s[] = {{.status = 429, .body = "slow down"}};
    mock_script(fx->server, s, 1);
    http_response resp;
    http_policy pol = {.max_retries = 2, .backoff = &quick_backoff};
    assert_int_equal(get(fx, &pol, &resp), INGEST_ERATELIMITED);
    assert_int_equal(resp.attempts, 3);
    assert_int_equal(resp.status, 429);
    assert_true(resp.wait_ms > 0);
    http_response_free(&resp);
}

typedef struct canceler {
    atomic_int *flag;
    int delay_ms;
} canceler;

static void *cancel_later(void *arg)
{
    canceler *c = arg;
    usleep((useconds_t)c->delay_ms * 1000);
    atomic_store(c->flag, 1);
    return NULL;
}

static void test_cancel_interrupts_a_long_wait(void **state)
{
    fixture *fx = *state;
    step s[] = {{.status = 503, .headers = {"Retry-After: 10"}}, {.status = 200}};
    mock_script(fx->server, s, 2);
    atomic_int flag = 0;
    canceler c = {&flag, 300};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_later, &c), 0);
    http_response resp;
    int64_t started = util_mono_ms();
    assert_int_equal(get(fx, &(http_policy){.cancel = &flag}, &resp), INGEST_ECANCELED);
    int64_t took = util_mono_ms() - started;
    pthread_join(t, NULL);
    assert_in_range(took, 290, 800);
    assert_int_equal(mock_count(fx->server), 1);
    http_response_free(&resp);
}

static void test_cancel_during_limiter_wait(void **state)
{
    fixture *fx = *state;
    atomic_int flag = 1;
    http_response resp;
    http_policy pol = {.cancel = &flag, .limiter_key = "mock/conn", .quota = {1, 3600}};
    /* spend the only slot, so the second call has to wait and sees the flag */
    atomic_store(&flag, 0);
    assert_int_equal(get(fx, &pol, &resp), INGEST_OK);
    http_response_free(&resp);
    atomic_store(&flag, 1);
    pol.max_inline_wait_ms = 7200000;
    assert_int_equal(get(fx, &pol, &resp), INGEST_ECANCELED);
    http_response_free(&resp);
}

/* ---- credentials ---------------------------------------------------------- */

static void test_invalid_requests(void **state)
{
    fixture *fx = *state;
    http_response resp;
    http_request no_url = {0};
    assert_int_equal(http_client_perform(fx->client, &no_url, NULL, &resp), INGEST_EINVAL);
    http_response_free(&resp);
    ingest_header smuggle[] = {{"X-A", "1\r\nX-Injected: yes"}};
    http_request bad_header = {.url = fx->url, .headers = smuggle, .n_headers = 1};
    assert_int_equal(http_client_perform(fx->client, &bad_header, NULL, &resp), INGEST_EINVAL);
    http_response_free(&resp);
    http_request half_aws = {.url = fx->url, .aws_sigv4 = "aws:amz:us-east-1:s3"};
    assert_int_equal(http_client_perform(fx->client, &half_aws, NULL, &resp), INGEST_EINVAL);
    http_response_free(&resp);
    http_request bad_method = {.method = "GE T", .url = fx->url};
    assert_int_equal(http_client_perform(fx->client, &bad_method, NULL, &resp), INGEST_EINVAL);
    http_response_free(&resp);
    assert_int_equal(mock_count(fx->server), 0);
}

static void test_basic_auth_and_sigv4_are_sent(void **state)
{
    fixture *fx = *state;
    http_response resp;
    http_request basic = {.url = fx->url, .userpwd = "user:" SECRET_PASSWORD};
    assert_int_equal(http_client_perform(fx->client, &basic, NULL, &resp), INGEST_OK);
    http_response_free(&resp);
    assert_non_null(fx->server->seen[0].authorization);
    assert_contains(fx->server->seen[0].authorization, "Basic ");

    http_request aws = {.url = fx->url,
                        .aws_sigv4 = "aws:amz:us-east-1:s3",
                        .aws_access_key = "AKIDEXAMPLE",
                        .aws_secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                        .aws_session_token = "FQoGZXIvYXdzEXAMPLETOKEN"};
    assert_int_equal(http_client_perform(fx->client, &aws, NULL, &resp), INGEST_OK);
    http_response_free(&resp);
    seen_request *seen = &fx->server->seen[1];
    assert_non_null(seen->authorization);
    assert_contains(seen->authorization, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/");
    assert_contains(seen->authorization, "/us-east-1/s3/aws4_request");
    assert_contains(seen->authorization, "x-amz-security-token");
    assert_non_null(seen->amz_token);
    assert_string_equal(seen->amz_token, "FQoGZXIvYXdzEXAMPLETOKEN");
}

static void test_redact_url(void **state)
{
    (void)state;
    char *u = http_redact_url("https://bob:hunter22@api.x.test/v1/a?page=2&access_token=abc123&"
                              "Token=t0k&key=k&signature=s&client_secret=cs&keep=1#frag");
    assert_non_null(u);
    assert_string_equal(u, "https://api.x.test/v1/a?page=2&access_token=[REDACTED]&"
                           "Token=[REDACTED]&key=[REDACTED]&signature=[REDACTED]&"
                           "client_secret=[REDACTED]&keep=1#frag");
    free(u);
    u = http_redact_url("https://api.x.test/plain");
    assert_string_equal(u, "https://api.x.test/plain");
    free(u);
    u = http_redact_url("not a url ?access_token=abc123");
    assert_string_equal(u, "not a url ");
    free(u);
}

/* Every log line and error text of a run that retries and fails. */
static void test_credentials_never_logged(void **state)
{
    fixture *fx = *state;
    char *dir = unit_make_temp_dir("http-log");
    char *path = unit_path_join(dir, "log");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    log_setup(fd, INGEST_LOG_DEBUG);

    step s[] = {{.status = 503}, {.status = 401, .body = "bad credentials"}};
    mock_script(fx->server, s, 2);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/items?page=2&access_token=%s", fx->server->port,
             SECRET_URL_TOKEN);
    ingest_header hdrs[] = {{"Authorization", "Bearer " SECRET_BEARER},
                            {"X-Api-Key", SECRET_API_KEY}};
    http_request req = {
        .url = url, .headers = hdrs, .n_headers = 2, .userpwd = "user:" SECRET_PASSWORD};
    http_policy pol = {.provider = "mock", .backoff = &quick_backoff, .max_retries = 2};
    http_response resp;
    assert_int_equal(http_client_perform(fx->client, &req, &pol, &resp), INGEST_OK);
    assert_int_equal(resp.status, 401);
    http_response_free(&resp);
    /* the server did receive the bearer token */
    assert_string_equal(fx->server->seen[0].authorization, "Bearer " SECRET_BEARER);

    /* a transport failure (nothing listens on port 1) with the bearer token
     * in the URL's path and another token in its query */
    snprintf(url, sizeof url, "http://127.0.0.1:1/" SECRET_BEARER "?token=%s", SECRET_URL_TOKEN);
    assert_int_equal(http_client_perform(fx->client, &req, &pol, &resp), INGEST_EIO);
    assert_not_contains(resp.error, SECRET_BEARER);
    assert_not_contains(resp.error, SECRET_URL_TOKEN);
    http_response_free(&resp);

    log_setup(2, INGEST_LOG_INFO);
    close(fd);
    char *text = unit_read_file(path);
    assert_non_null(text);
    assert_contains(text, "retry 1 of 2");
    assert_contains(text, "access_token=[REDACTED]");
    assert_not_contains(text, SECRET_BEARER);
    assert_not_contains(text, SECRET_API_KEY);
    assert_not_contains(text, SECRET_PASSWORD);
    assert_not_contains(text, SECRET_URL_TOKEN);
    free(text);
    unit_remove_tree(dir);
    free(path);
    free(dir);
}

/* ---- streamed bodies ------------------------------------------------------ */

#define BIG_BODY (1024 * 1024 + 17)

/* What a body sink saw. */
typedef struct sink {
    char *data;
    size_t len, calls;
    size_t stop_after; /* refuse the chunk that comes after this many bytes; 0 = never */
    fixture *fx;       /* set: try a nested request from the sink, once */
    int nested_rc;
} sink;

static int get(fixture *fx, const http_policy *pol, http_response *resp);

static int sink_take(void *arg, const void *data, size_t len)
{
    sink *k = arg;
    if (k->stop_after && k->len >= k->stop_after)
        return 1;
    if (k->fx) {
        http_response inner;
        k->nested_rc = get(k->fx, NULL, &inner);
        http_response_free(&inner);
        k->fx = NULL;
    }
    char *grown = realloc(k->data, k->len + len);
    assert_non_null(grown);
    memcpy(grown + k->len, data, len);
    k->data = grown;
    k->len += len;
    k->calls++;
    return 0;
}

static char *pattern(size_t n)
{
    char *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    return p;
}

static int get_streamed(fixture *fx, sink *k, const http_policy *pol, http_response *resp)
{
    http_request req = {.url = fx->url, .on_body = sink_take, .on_body_arg = k};
    return http_client_perform(fx->client, &req, pol, resp);
}

static void test_streamed_body_goes_to_the_sink_in_order(void **state)
{
    fixture *fx = *state;
    char *big = pattern(BIG_BODY);
    step with_length[] = {{.status = 200, .body = big, .body_len = BIG_BODY}};
    step chunked[] = {{.status = 206, .body = big, .body_len = BIG_BODY, .chunked = 1}};
    const step *variants[] = {with_length, chunked};
    for (size_t i = 0; i < 2; i++) {
        mock_script(fx->server, variants[i], 1);
        sink k = {0};
        http_response resp;
        /* the buffered-body cap does not apply to a streamed body */
        http_policy pol = {.max_response_bytes = 1000};
        assert_int_equal(get_streamed(fx, &k, &pol, &resp), INGEST_OK);
        assert_int_equal(resp.status, i == 0 ? 200 : 206);
        assert_true(resp.streamed);
        assert_int_equal(resp.streamed_bytes, BIG_BODY);
        assert_string_equal(resp.body, "");
        assert_int_equal(resp.body_len, 0);
        assert_int_equal(k.len, BIG_BODY);
        assert_true(k.calls > 1);
        assert_memory_equal(k.data, big, BIG_BODY);
        http_response_free(&resp);
        free(k.data);
    }
    free(big);
}

static void test_streamed_error_body_is_buffered(void **state)
{
    fixture *fx = *state;
    const char *xml = "<Error><Code>NoSuchKey</Code></Error>";
    step s[] = {{.status = 404, .body = xml}};
    mock_script(fx->server, s, 1);
    sink k = {0};
    http_response resp;
    assert_int_equal(get_streamed(fx, &k, NULL, &resp), INGEST_OK);
    assert_int_equal(resp.status, 404);
    assert_false(resp.streamed);
    assert_string_equal(resp.body, xml);
    assert_int_equal(k.calls, 0);
    http_response_free(&resp);
}

static void test_streamed_retries_before_the_first_byte(void **state)
{
    fixture *fx = *state;
    step s[] = {{.status = 503, .body = "busy"}, {.status = 200, .body = "a,b\n1,2\n"}};
    mock_script(fx->server, s, 2);
    sink k = {0};
    http_response resp;
    http_policy pol = {.backoff = &quick_backoff};
    assert_int_equal(get_streamed(fx, &k, &pol, &resp), INGEST_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.attempts, 2);
    assert_int_equal(k.len, 8); /* the 503's body never reached the sink */
    assert_memory_equal(k.data, "a,b\n1,2\n", 8);
    http_response_free(&resp);
    free(k.data);
}

static void test_streamed_transfer_cut_is_not_retried(void **state)
{
    fixture *fx = *state;
    char *big = pattern(200000);
    step s[] = {{.status = 200, .body = big, .body_len = 200000, .stall = 1},
                {.status = 200, .body = "again"}};
    mock_script(fx->server, s, 2);
    sink k = {0};
    http_response resp;
    /* the stall limit: less than 1 byte/s for 1 s */
    http_policy pol = {.total_timeout_ms = 1000, .backoff = &quick_backoff};
    int64_t started = util_mono_ms();
    assert_int_equal(get_streamed(fx, &k, &pol, &resp), INGEST_EIO);
    assert_in_range(util_mono_ms() - started, 900, 5000);
    assert_int_equal(resp.attempts, 1);
    assert_int_equal(mock_count(fx->server), 1);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.streamed_bytes, 100000);
    assert_int_equal(k.len, 100000);
    assert_memory_equal(k.data, big, 100000);
    assert_contains(resp.error, "transfer cut after 100000 streamed bytes");
    http_response_free(&resp);
    free(k.data);
    free(big);
}

static void test_sink_can_stop_the_transfer(void **state)
{
    fixture *fx = *state;
    char *big = pattern(BIG_BODY);
    step s[] = {{.status = 200, .body = big, .body_len = BIG_BODY}};
    mock_script(fx->server, s, 1);
    sink k = {.stop_after = 1};
    http_response resp;
    assert_int_equal(get_streamed(fx, &k, NULL, &resp), INGEST_ECANCELED);
    assert_int_equal(resp.attempts, 1);
    assert_int_equal(mock_count(fx->server), 1);
    assert_int_equal(resp.streamed_bytes, k.len);
    assert_true(k.len > 0 && k.len < BIG_BODY);
    assert_contains(resp.error, "stopped by the body sink");
    http_response_free(&resp);
    free(k.data);

    /* the worker's handle is usable again afterwards */
    step small[] = {{.status = 200, .body = "ok"}};
    mock_script(fx->server, small, 1);
    assert_int_equal(get(fx, NULL, &resp), INGEST_OK);
    http_response_free(&resp);
    free(big); /* the script no longer points at it */
}

static void test_request_from_inside_a_sink_is_refused(void **state)
{
    fixture *fx = *state;
    step s[] = {{.status = 200, .body = "data"}};
    mock_script(fx->server, s, 1);
    sink k = {.fx = fx, .nested_rc = 1};
    http_response resp;
    assert_int_equal(get_streamed(fx, &k, NULL, &resp), INGEST_OK);
    assert_int_equal(k.nested_rc, INGEST_ESTATE);
    assert_int_equal(k.len, 4);
    assert_int_equal(mock_count(fx->server), 1);
    http_response_free(&resp);
    free(k.data);
}

static void test_sigv4_sends_the_payload_hash(void **state)
{
    fixture *fx = *state;
    http_response resp;
    http_request aws = {.url = fx->url,
                        .aws_sigv4 = "aws:amz:us-east-1:s3",
                        .aws_access_key = "AKIDEXAMPLE",
                        .aws_secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};
    assert_int_equal(http_client_perform(fx->client, &aws, NULL, &resp), INGEST_OK);
    http_response_free(&resp);
    seen_request *seen = &fx->server->seen[0];
    assert_non_null(seen->amz_sha256);
    /* the SHA-256 of the empty body */
    assert_string_equal(seen->amz_sha256,
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_contains(seen->authorization, "x-amz-content-sha256");
    /* every signed header is sent: no "Expect:" removal entry among them */
    assert_not_contains(seen->authorization, "expect");
    assert_null(seen->amz_token);

    /* the plugin's own value wins; without one, the body's hash */
    ingest_header own[] = {{"x-amz-content-sha256", "UNSIGNED-PAYLOAD"}};
    aws.method = "PUT";
    aws.body = "abc";
    aws.body_len = 3;
    aws.headers = own;
    aws.n_headers = 1;
    assert_int_equal(http_client_perform(fx->client, &aws, NULL, &resp), INGEST_OK);
    http_response_free(&resp);
    assert_string_equal(fx->server->seen[1].amz_sha256, "UNSIGNED-PAYLOAD");
    aws.n_headers = 0;
    assert_int_equal(http_client_perform(fx->client, &aws, NULL, &resp), INGEST_OK);
    http_response_free(&resp);
    assert_string_equal(fx->server->seen[2].amz_sha256,
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        T(test_get_200_with_body_and_headers),
        T(test_empty_body_is_nul_terminated),
        T(test_post_put_delete_send_method_and_body),
        T(test_client_error_is_returned_not_retried),
        T(test_link_next_is_parsed),
        T(test_429_retry_after_is_honoured),
        T(test_503_twice_then_200_backs_off),
        T(test_5xx_after_last_retry_is_a_response),
        T(test_connection_refused_is_eio_after_retries),
        T(test_response_over_cap_is_a_clear_error),
        T(test_keep_alive_reuses_one_connection_per_worker),
        T(test_each_worker_has_its_own_connection),
        T(test_limiter_paces_requests),
        T(test_reported_quota_defers_instead_of_failing),
        T(test_max_inline_wait_exceeded_returns_ratelimited),
        T(test_persistent_429_is_ratelimited_after_retries),
        T(test_cancel_interrupts_a_long_wait),
        T(test_cancel_during_limiter_wait),
        T(test_invalid_requests),
        T(test_basic_auth_and_sigv4_are_sent),
        T(test_redact_url),
        T(test_credentials_never_logged),
        T(test_streamed_body_goes_to_the_sink_in_order),
        T(test_streamed_error_body_is_buffered),
        T(test_streamed_retries_before_the_first_byte),
        T(test_streamed_transfer_cut_is_not_retried),
        T(test_sink_can_stop_the_transfer),
        T(test_request_from_inside_a_sink_is_refused),
        T(test_sigv4_sends_the_payload_hash),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    libevent_global_shutdown();
    return rc;
}
