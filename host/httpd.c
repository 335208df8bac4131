/* httpd.c — evhttp with a small route table; health, readiness, metrics. */
#include "httpd.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_deadline.h"
#include "inbox.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "rest.h"
#include "webhook.h"

/* evhttp itself refuses bodies beyond this many times max_body_bytes (with
 * its own HTML 413); below it the webhook route answers problem+json. */
#define HARD_BODY_FACTOR 4

struct httpd {
    hostd *h;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    struct timeval request_limit; /* read by http_deadline for each connection */
    int port;
};

typedef void (*route_fn)(hostd *h, struct evhttp_request *req);

void httpd_send_json(struct evhttp_request *req, int status, const char *content_type,
                     json_object *body)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", content_type);
    evhttp_add_header(headers, "Cache-Control", "no-store");
    struct evbuffer *buf = evbuffer_new();
    const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
    evbuffer_add(buf, text, strlen(text));
    evhttp_send_reply(req, status, NULL, buf);
    evbuffer_free(buf);
}

void httpd_problem(struct evhttp_request *req, int status, const char *code, const char *message,
                   int retry_after_s)
{
    json_object *body = json_object_new_object();
    json_object_object_add(body, "status", json_object_new_int(status));
    json_object_object_add(body, "code", json_object_new_string(code));
    json_object_object_add(body, "message", json_object_new_string(message));
    if (retry_after_s > 0) {
        char value[16];
        snprintf(value, sizeof value, "%d", retry_after_s);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", value);
        json_object_object_add(body, "retry_after", json_object_new_int(retry_after_s));
    }
    httpd_send_json(req, status, "application/problem+json", body);
    json_object_put(body);
}

static void route_healthz(hostd *h, struct evhttp_request *req)
{
    (void)h;
    json_object *body = json_object_new_object();
    json_object_object_add(body, "status", json_object_new_string("ok"));
    httpd_send_json(req, 200, "application/json", body);
    json_object_put(body);
}

static void route_readyz(hostd *h, struct evhttp_request *req)
{
    int db = store_ready(h->store) && inbox_ready(h->inbox);
    int plugins = atomic_load(&h->plugins_loaded);
    int stopping = atomic_load(&h->shutting_down);
    if (db && plugins && !stopping) {
        json_object *body = json_object_new_object();
        json_object_object_add(body, "status", json_object_new_string("ready"));
        httpd_send_json(req, 200, "application/json", body);
        json_object_put(body);
        return;
    }
    char msg[700], err[512] = "";
    if (!db)
        store_last_error(h->store, err, sizeof err);
    snprintf(msg, sizeof msg, "%s%s%s",
             stopping ? "shutting down"
             : !db    ? "database unavailable"
                      : "plugins not loaded yet",
             err[0] ? ": " : "", err);
    httpd_problem(req, 503,
                  stopping ? "shutting_down"
                  : !db    ? "database_unavailable"
                           : "starting",
                  msg, 5);
}

static void route_metrics(hostd *h, struct evhttp_request *req)
{
    char *text = metrics_render(h->metrics);
    if (!text) {
        httpd_problem(req, 500, "internal", "cannot render metrics", 0);
        return;
    }
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", "text/plain; version=0.0.4");
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, text, strlen(text));
    evhttp_send_reply(req, 200, NULL, buf);
    evbuffer_free(buf);
    free(text);
}

typedef struct route {
    const char *path;
    route_fn fn;
} route;

static const route routes[] = {
    {"/healthz", route_healthz},
    {"/readyz", route_readyz},
    {"/metrics", route_metrics},
};

static void on_request(struct evhttp_request *req, void *arg)
{
    httpd *s = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path)
        path = "/";
    if (strncmp(path, "/webhooks/", 10) == 0) {
        webhook_handle(s->h, req, path);
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
        if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
            httpd_problem(req, 405, "method_not_allowed", "use GET", 0);
            return;
        }
        routes[i].fn(s->h, req);
        return;
    }
    /* Everything else is the operator REST API (it answers 404 itself). */
    rest_handle(s->h, req, path);
}

/* Like evhttp_bind_socket, with a deep accept queue: a burst of new
 * connections (a provider's retry storm) must not overflow it, since a
 * dropped SYN costs the client a one-second retransmit. */
static struct evconnlistener *listen_on(struct event_base *base, const char *host, int port)
{
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_protocol = IPPROTO_TCP,
                                    .ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG};
    struct evutil_addrinfo *found = NULL;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    if (evutil_getaddrinfo(host, service, &hints, &found) != 0)
        return NULL;
    struct evconnlistener *listener = NULL;
    for (struct evutil_addrinfo *a = found; a && !listener; a = a->ai_next)
        listener = evconnlistener_new_bind(
            base, NULL, NULL, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
            SOMAXCONN, a->ai_addr, (int)a->ai_addrlen);
    evutil_freeaddrinfo(found);
    return listener;
}

httpd *httpd_start(hostd *h, const char *host, int port, char *err, size_t err_len)
{
    httpd *s = calloc(1, sizeof *s);
    if (!s)
        return snprintf(err, err_len, "out of memory"), NULL;
    s->h = h;
    s->http = evhttp_new(h->base);
    if (!s->http) {
        free(s);
        snprintf(err, err_len, "cannot create the HTTP server");
        return NULL;
    }
    evhttp_set_timeout(s->http, h->cfg->http_timeout_s);
    evhttp_set_max_body_size(s->http, (ev_ssize_t)h->cfg->max_body_bytes * HARD_BODY_FACTOR);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(s->http, on_request, s);
    s->request_limit = (struct timeval){h->cfg->http_timeout_s, 0};
    http_deadline_attach(s->http, &s->request_limit);
    struct evconnlistener *listener = listen_on(h->base, host, port);
    s->bound = listener ? evhttp_bind_listener(s->http, listener) : NULL;
    if (!s->bound) {
        if (listener)
            evconnlistener_free(listener);
        snprintf(err, err_len, "cannot listen on %s:%d (address in use or not local?)", host, port);
        evhttp_free(s->http);
        free(s);
        return NULL;
    }
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof ss;
    evutil_socket_t fd = evhttp_bound_socket_get_fd(s->bound);
    s->port = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return s;
}

int httpd_port(const httpd *s) { return s->port; }

void httpd_stop_accepting(httpd *s)
{
    if (s && s->bound) {
        evhttp_del_accept_socket(s->http, s->bound);
        s->bound = NULL;
    }
}

void httpd_free(httpd *s)
{
    if (!s)
        return;
    evhttp_free(s->http);
    free(s);
}
