/* httpd.h — the daemon's HTTP server on the event loop. */
#ifndef HOSTD_HTTPD_H
#define HOSTD_HTTPD_H

#include <json-c/json.h>
#include <stddef.h>

#include "hostd.h"

struct evhttp_request;

httpd *httpd_start(hostd *h, const char *host, int port, char *err, size_t err_len);
/* Stop accepting new connections; requests in progress finish. */
void httpd_stop_accepting(httpd *s);
void httpd_free(httpd *s);
/* The port actually bound (useful with port 0). */
int httpd_port(const httpd *s);

/* Reply with `body` serialised (borrowed) as content_type, no-store. */
void httpd_send_json(struct evhttp_request *req, int status, const char *content_type,
                     json_object *body);

/* Reply with application/problem+json {"code", "message"[, "retry_after"]}. */
void httpd_problem(struct evhttp_request *req, int status, const char *code, const char *message,
                   int retry_after_s);

#endif
