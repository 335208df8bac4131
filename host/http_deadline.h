/* http_deadline.h — a total time limit per HTTP request. evhttp's own
 * timeouts are inactivity timeouts: a client trickling one byte just inside
 * them holds a connection (and its memory) for ever. Here a deadline starts
 * with the first byte of a request and is cleared when its answer starts;
 * a request still unanswered at its deadline loses its connection, as if
 * evhttp's own read timeout had fired (a request already handed to a route
 * stays the route's to answer, to no one). */
#ifndef HOSTD_HTTP_DEADLINE_H
#define HOSTD_HTTP_DEADLINE_H

#include <event2/http.h>
#include <sys/time.h>

/* Give every connection `http` accepts from now on a deadline of `limit`
 * per request (receiving it and answering it). `limit` is read for each
 * new connection: the caller keeps it alive as long as `http`. Loop
 * thread. */
void http_deadline_attach(struct evhttp *http, const struct timeval *limit);

#endif
